/* SPDX-License-Identifier: MIT */
/*
 * STUN message writing (RFC 8489 §5, §14; RFC 8656 §18): a header, then attributes appended one
 * by one with zero padding, the header's length kept current after each, XOR'ed addresses,
 * ERROR-CODE, and the trailing MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
 * computed over the bytes written so far.
 */
#include "stun/stun.h"

#include <string.h>

#define STUN_MAX_BODY 65535 /* the 16-bit length field (RFC 8489 §5) */

static void fail(tern_stun_writer_t *sw, int err)
{
    if (sw->err == TERN_OK)
        sw->err = err;
}

static uint16_t encode_type(tern_stun_class_t msg_class, uint16_t method)
{
    /* RFC 8489 §5: M11..M7, C1, M6..M4, C0, M3..M0. */
    unsigned c = (unsigned)msg_class & 3, m = method & 0x0FFF;
    return (uint16_t)((m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) |
                      ((c & 2) << 7));
}

static void update_length(tern_stun_writer_t *sw)
{
    tern_wbuf_t *w = sw->w;
    if (w->err)
        return;
    size_t body = w->len - sw->start - TERN_STUN_HEADER_LEN;
    if (body > STUN_MAX_BODY) {
        fail(sw, TERN_ERR_TOO_LARGE);
        w->err = true;
        return;
    }
    tern_wbuf_put_u16_at(w, sw->start + 2, (uint16_t)body);
}

void tern_stun_writer_begin(tern_stun_writer_t *sw, tern_wbuf_t *w, tern_stun_class_t msg_class,
                            uint16_t method, const uint8_t tid[TERN_STUN_TID_LEN])
{
    sw->w = w;
    sw->start = w->len;
    sw->err = TERN_OK;
    sw->pad_byte = 0;
    if (method > 0x0FFF)
        fail(sw, TERN_ERR_INVALID_ARG);
    tern_wbuf_u16(w, encode_type(msg_class, method));
    tern_wbuf_u16(w, 0);
    tern_wbuf_u32(w, TERN_STUN_MAGIC_COOKIE);
    tern_wbuf_bytes(w, tid, TERN_STUN_TID_LEN);
}

/* Reserve an attribute of n value bytes plus padding; returns where the value goes. */
static uint8_t *reserve_attr(tern_stun_writer_t *sw, uint16_t type, size_t n)
{
    if (n > STUN_MAX_BODY - 4) {
        fail(sw, TERN_ERR_TOO_LARGE);
        return NULL;
    }
    size_t padded = (n + 3) & ~(size_t)3;
    uint8_t *p = tern_wbuf_reserve(sw->w, 4 + padded);
    if (!p)
        return NULL;
    tern_store_u16(p, type);
    tern_store_u16(p + 2, (uint16_t)n);
    memset(p + 4 + n, sw->pad_byte, padded - n);
    update_length(sw);
    return sw->w->err ? NULL : p + 4;
}

void tern_stun_put_attr(tern_stun_writer_t *sw, uint16_t type, const void *value, size_t len)
{
    if (len && !value) {
        fail(sw, TERN_ERR_INVALID_ARG);
        return;
    }
    uint8_t *v = reserve_attr(sw, type, len);
    if (v && len)
        memcpy(v, value, len);
}

void tern_stun_put_flag(tern_stun_writer_t *sw, uint16_t type)
{
    (void)reserve_attr(sw, type, 0);
}

void tern_stun_put_string(tern_stun_writer_t *sw, uint16_t type, const char *s)
{
    if (!s) {
        fail(sw, TERN_ERR_INVALID_ARG);
        return;
    }
    tern_stun_put_attr(sw, type, s, strlen(s));
}

void tern_stun_put_u32(tern_stun_writer_t *sw, uint16_t type, uint32_t v)
{
    uint8_t *p = reserve_attr(sw, type, 4);
    if (p)
        tern_store_u32(p, v);
}

void tern_stun_put_u64(tern_stun_writer_t *sw, uint16_t type, uint64_t v)
{
    uint8_t *p = reserve_attr(sw, type, 8);
    if (p) {
        tern_store_u32(p, (uint32_t)(v >> 32));
        tern_store_u32(p + 4, (uint32_t)v);
    }
}

void tern_stun_put_channel_number(tern_stun_writer_t *sw, uint16_t channel)
{
    tern_stun_put_u32(sw, TERN_STUN_ATTR_CHANNEL_NUMBER, (uint32_t)channel << 16);
}

void tern_stun_put_requested_transport(tern_stun_writer_t *sw, uint8_t protocol)
{
    tern_stun_put_u32(sw, TERN_STUN_ATTR_REQUESTED_TRANSPORT, (uint32_t)protocol << 24);
}

void tern_stun_put_requested_address_family(tern_stun_writer_t *sw, uint8_t family)
{
    tern_stun_put_u32(sw, TERN_STUN_ATTR_REQUESTED_ADDRESS_FAMILY, (uint32_t)family << 24);
}

void tern_stun_put_even_port(tern_stun_writer_t *sw, bool reserve)
{
    uint8_t v = reserve ? 0x80 : 0x00;
    tern_stun_put_attr(sw, TERN_STUN_ATTR_EVEN_PORT, &v, 1);
}

static void put_address(tern_stun_writer_t *sw, uint16_t type, const tern_addr_t *addr, bool xored)
{
    if (!addr || (addr->family != TERN_AF_INET && addr->family != TERN_AF_INET6)) {
        fail(sw, TERN_ERR_INVALID_ARG);
        return;
    }
    size_t ip_len = addr->family == TERN_AF_INET ? 4 : 16;
    uint8_t *p = reserve_attr(sw, type, 4 + ip_len);
    if (!p)
        return;
    p[0] = 0;
    p[1] = addr->family == TERN_AF_INET ? 0x01 : 0x02; /* RFC 8489 §14.1 */
    uint16_t port = addr->port;
    memcpy(p + 4, addr->ip, ip_len);
    if (xored) {
        /* RFC 8489 §14.2; the transaction id sits in our own header, already written. */
        uint8_t pad[16];
        tern_store_u32(pad, TERN_STUN_MAGIC_COOKIE);
        memcpy(pad + 4, sw->w->base + sw->start + 8, TERN_STUN_TID_LEN);
        port ^= (uint16_t)(TERN_STUN_MAGIC_COOKIE >> 16);
        for (size_t i = 0; i < ip_len; i++)
            p[4 + i] ^= pad[i];
    }
    tern_store_u16(p + 2, port);
}

void tern_stun_put_addr(tern_stun_writer_t *sw, uint16_t type, const tern_addr_t *addr)
{
    put_address(sw, type, addr, false);
}

void tern_stun_put_xor_addr(tern_stun_writer_t *sw, uint16_t type, const tern_addr_t *addr)
{
    put_address(sw, type, addr, true);
}

static const char *default_reason(uint16_t code)
{
    switch (code) {
    case TERN_STUN_ERR_TRY_ALTERNATE:
        return "Try Alternate";
    case TERN_STUN_ERR_BAD_REQUEST:
        return "Bad Request";
    case TERN_STUN_ERR_UNAUTHORIZED:
        return "Unauthenticated";
    case TERN_STUN_ERR_FORBIDDEN:
        return "Forbidden";
    case TERN_STUN_ERR_UNKNOWN_ATTRIBUTE:
        return "Unknown Attribute";
    case TERN_STUN_ERR_ALLOCATION_MISMATCH:
        return "Allocation Mismatch";
    case TERN_STUN_ERR_STALE_NONCE:
        return "Stale Nonce";
    case TERN_STUN_ERR_ADDRESS_FAMILY_NOT_SUPPORTED:
        return "Address Family not Supported";
    case TERN_STUN_ERR_WRONG_CREDENTIALS:
        return "Wrong Credentials";
    case TERN_STUN_ERR_UNSUPPORTED_TRANSPORT:
        return "Unsupported Transport Protocol";
    case TERN_STUN_ERR_PEER_ADDRESS_FAMILY_MISMATCH:
        return "Peer Address Family Mismatch";
    case TERN_STUN_ERR_ALLOCATION_QUOTA:
        return "Allocation Quota Reached";
    case TERN_STUN_ERR_ROLE_CONFLICT:
        return "Role Conflict";
    case TERN_STUN_ERR_SERVER_ERROR:
        return "Server Error";
    case TERN_STUN_ERR_INSUFFICIENT_CAPACITY:
        return "Insufficient Capacity";
    default:
        return "";
    }
}

/* Cut a reason phrase to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

void tern_stun_put_error_code(tern_stun_writer_t *sw, uint16_t code, const char *reason)
{
    if (code < 300 || code > 699) {
        fail(sw, TERN_ERR_INVALID_ARG);
        return;
    }
    if (!reason)
        reason = default_reason(code);
    size_t n = utf8_cut(reason, TERN_STUN_MAX_REASON);
    uint8_t *p = reserve_attr(sw, TERN_STUN_ATTR_ERROR_CODE, 4 + n);
    if (!p)
        return;
    p[0] = p[1] = 0;
    p[2] = (uint8_t)(code / 100);
    p[3] = (uint8_t)(code % 100);
    memcpy(p + 4, reason, n);
}

void tern_stun_put_unknown_attributes(tern_stun_writer_t *sw, const uint16_t *types, size_t n)
{
    if (!types || n == 0 || n > (STUN_MAX_BODY - 4) / 2) {
        fail(sw, TERN_ERR_INVALID_ARG);
        return;
    }
    uint8_t *p = reserve_attr(sw, TERN_STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * n);
    if (!p)
        return;
    for (size_t i = 0; i < n; i++)
        tern_store_u16(p + 2 * i, types[i]);
}

static void put_mac(tern_stun_writer_t *sw, bool sha256, const uint8_t *key, size_t key_len)
{
    if (!key && key_len) {
        fail(sw, TERN_ERR_INVALID_ARG);
        return;
    }
    uint16_t type =
        sha256 ? TERN_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 : TERN_STUN_ATTR_MESSAGE_INTEGRITY;
    size_t n = sha256 ? TERN_STUN_INTEGRITY_SHA256_LEN : TERN_STUN_INTEGRITY_LEN;
    size_t attr_off = sw->w->len - sw->start;
    /* Reserving updates the header length to count this attribute, as §14.5 wants. */
    uint8_t *v = reserve_attr(sw, type, n);
    if (!v)
        return;
    const uint8_t *msg = sw->w->base + sw->start;
    uint8_t mac[TERN_STUN_INTEGRITY_SHA256_LEN];
    if (tern_stun_hmac(sha256, key, key_len, msg, msg + TERN_STUN_HEADER_LEN,
                       attr_off - TERN_STUN_HEADER_LEN, mac) != TERN_OK) {
        fail(sw, TERN_ERR_CRYPTO);
        return;
    }
    memcpy(v, mac, n);
}

void tern_stun_put_integrity(tern_stun_writer_t *sw, const uint8_t *key, size_t key_len)
{
    put_mac(sw, false, key, key_len);
}

void tern_stun_put_integrity_sha256(tern_stun_writer_t *sw, const uint8_t *key, size_t key_len)
{
    put_mac(sw, true, key, key_len);
}

void tern_stun_put_fingerprint(tern_stun_writer_t *sw)
{
    size_t attr_off = sw->w->len - sw->start;
    uint8_t *v = reserve_attr(sw, TERN_STUN_ATTR_FINGERPRINT, 4);
    if (!v)
        return;
    uint32_t crc = tern_crc32(sw->w->base + sw->start, attr_off) ^ TERN_STUN_FINGERPRINT_XOR;
    tern_store_u32(v, crc);
}

int tern_stun_writer_end(tern_stun_writer_t *sw, size_t *len_out)
{
    if (sw->err != TERN_OK)
        return sw->err;
    if (sw->w->err)
        return sw->w->ctx ? TERN_ERR_NOMEM : TERN_ERR_TOO_LARGE;
    if (len_out)
        *len_out = sw->w->len - sw->start;
    return TERN_OK;
}
