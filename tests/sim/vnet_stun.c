/* SPDX-License-Identifier: MIT */
/*
 * A STUN server for vnet: a host that answers Binding requests (RFC 8489 §6.3.1) with a success
 * response carrying XOR-MAPPED-ADDRESS (§14.2) and FINGERPRINT (§14.7), as a public STUN server
 * does, so peers behind vnet NATs can learn server-reflexive addresses. It is written apart from
 * the stack's STUN codec on purpose, so that a bug there is not mirrored here. No
 * authentication, no RFC 5780 attributes; anything that is not a well-formed Binding request is
 * ignored and counted.
 */
#include "vnet_int.h"

#include "util/encode.h"

#include <string.h>

#define STUN_HEADER 20
#define STUN_COOKIE 0x2112A442u     /* RFC 8489 §5 */
#define STUN_BINDING_REQUEST 0x0001 /* RFC 8489 §18.2 */
#define STUN_BINDING_SUCCESS 0x0101
#define ATTR_XOR_MAPPED_ADDRESS 0x0020 /* RFC 8489 §18.3 */
#define ATTR_FINGERPRINT 0x8028
#define FINGERPRINT_XOR 0x5354554eu /* RFC 8489 §14.7 */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/* A Binding request: header with the cookie, a length that matches, attributes that fit. */
static bool is_binding_request(const uint8_t *d, size_t len)
{
    if (len < STUN_HEADER || get16(d) != STUN_BINDING_REQUEST || get32(d + 4) != STUN_COOKIE)
        return false;
    size_t body = get16(d + 2);
    if (body % 4 != 0 || STUN_HEADER + body != len)
        return false;
    for (size_t off = STUN_HEADER; off < len;) {
        if (len - off < 4)
            return false;
        size_t alen = get16(d + off + 2);
        size_t padded = (alen + 3) & ~(size_t)3;
        if (padded > len - off - 4)
            return false;
        off += 4 + padded;
    }
    return true;
}

/* Build the success response to request `req` from `mapped` into out; returns its length. */
static size_t build_response(const uint8_t *req, const tern_addr_t *mapped, uint8_t out[64])
{
    size_t n = STUN_HEADER;
    memcpy(out + 8, req + 8, 12); /* transaction id */
    put16(out, STUN_BINDING_SUCCESS);
    put32(out + 4, STUN_COOKIE);
    bool v6 = mapped->family == TERN_AF_INET6;
    size_t ip_len = v6 ? 16 : 4;
    put16(out + n, ATTR_XOR_MAPPED_ADDRESS);
    put16(out + n + 2, (uint16_t)(4 + ip_len));
    out[n + 4] = 0;
    out[n + 5] = v6 ? 2 : 1;
    put16(out + n + 6, (uint16_t)(mapped->port ^ (STUN_COOKIE >> 16)));
    for (size_t i = 0; i < ip_len; i++) /* XOR with the cookie, then the transaction id */
        out[n + 8 + i] = (uint8_t)(mapped->ip[i] ^ out[4 + i]);
    n += 8 + ip_len;
    put16(out + n, ATTR_FINGERPRINT);
    put16(out + n + 2, 4);
    put16(out + 2, (uint16_t)(n + 8 - STUN_HEADER)); /* the length covers the fingerprint */
    put32(out + n + 4, tern_crc32(out, n) ^ FINGERPRINT_XOR);
    return n + 8;
}

static void answer(void *user, vnet_t *net, vnet_host_t *host, const tern_datagram_t *dg)
{
    (void)user;
    if (!is_binding_request(dg->data, dg->len)) {
        host->ignored++;
        return;
    }
    uint8_t out[64];
    size_t n = build_response(dg->data, &dg->remote, out);
    host->answered++;
    vnet_send(net, host, &dg->local, &dg->remote, out, n);
}

vnet_host_t *vnet_stun_server_new(vnet_t *net, vnet_nat_t *behind, const char *ip, uint16_t port)
{
    vnet_host_t *h = vnet_host_new(net, behind, ip, NULL);
    if (!h || vnet_host_bind(h, port, NULL) != 0)
        return NULL;
    vnet_host_set_responder(h, answer, NULL);
    return h;
}

uint64_t vnet_stun_answered(const vnet_host_t *server)
{
    return server->answered;
}

uint64_t vnet_stun_ignored(const vnet_host_t *server)
{
    return server->ignored;
}
