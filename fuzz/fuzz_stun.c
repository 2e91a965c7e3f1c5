/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness of the STUN codec: parse a datagram; if it parses, check its integrity and
 * fingerprint (exercising the HMAC paths), write every decoded attribute back with the writer
 * (plus integrity under a fixed key and a fingerprint), parse that again and require the same
 * decoded view.
 */
#include "stun/stun.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 65536

static const uint8_t fuzz_key[] = "fuzz-key-0123456789";

static void die(void)
{
    abort();
}

static void put_bytes(tern_stun_writer_t *sw, uint16_t type, tern_stun_bytes_t b)
{
    tern_stun_put_attr(sw, type, b.p, b.len);
}

static void put_error_code(tern_stun_writer_t *sw, const tern_stun_msg_t *m)
{
    /* Written raw: the decoded reason may hold bytes put_error_code would cut. */
    uint8_t v[4 + 763];
    v[0] = v[1] = 0;
    v[2] = (uint8_t)(m->error_code / 100);
    v[3] = (uint8_t)(m->error_code % 100);
    memcpy(v + 4, m->error_reason.p, m->error_reason.len);
    tern_stun_put_attr(sw, TERN_STUN_ATTR_ERROR_CODE, v, 4 + m->error_reason.len);
}

static void put_addresses(tern_stun_writer_t *sw, const tern_stun_msg_t *m)
{
    if (m->present & TERN_STUN_HAS_MAPPED_ADDRESS)
        tern_stun_put_addr(sw, TERN_STUN_ATTR_MAPPED_ADDRESS, &m->mapped_address);
    if (m->present & TERN_STUN_HAS_XOR_MAPPED_ADDRESS)
        tern_stun_put_xor_addr(sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &m->xor_mapped_address);
    if (m->present & TERN_STUN_HAS_XOR_RELAYED_ADDRESS)
        tern_stun_put_xor_addr(sw, TERN_STUN_ATTR_XOR_RELAYED_ADDRESS, &m->xor_relayed_address);
    for (uint8_t i = 0; i < m->xor_peer_address_count; i++)
        tern_stun_put_xor_addr(sw, TERN_STUN_ATTR_XOR_PEER_ADDRESS, &m->xor_peer_address[i]);
    if (m->present & TERN_STUN_HAS_ALTERNATE_SERVER)
        tern_stun_put_addr(sw, TERN_STUN_ATTR_ALTERNATE_SERVER, &m->alternate_server);
    if (m->present & TERN_STUN_HAS_RESPONSE_ORIGIN)
        tern_stun_put_addr(sw, TERN_STUN_ATTR_RESPONSE_ORIGIN, &m->response_origin);
    if (m->present & TERN_STUN_HAS_OTHER_ADDRESS)
        tern_stun_put_addr(sw, TERN_STUN_ATTR_OTHER_ADDRESS, &m->other_address);
}

static void put_texts(tern_stun_writer_t *sw, const tern_stun_msg_t *m)
{
    if (m->present & TERN_STUN_HAS_USERNAME)
        put_bytes(sw, TERN_STUN_ATTR_USERNAME, m->username);
    if (m->present & TERN_STUN_HAS_SOFTWARE)
        put_bytes(sw, TERN_STUN_ATTR_SOFTWARE, m->software);
    if (m->present & TERN_STUN_HAS_REALM)
        put_bytes(sw, TERN_STUN_ATTR_REALM, m->realm);
    if (m->present & TERN_STUN_HAS_NONCE)
        put_bytes(sw, TERN_STUN_ATTR_NONCE, m->nonce);
    if (m->present & TERN_STUN_HAS_DATA)
        put_bytes(sw, TERN_STUN_ATTR_DATA, m->data_attr);
    if (m->present & TERN_STUN_HAS_RESERVATION_TOKEN)
        put_bytes(sw, TERN_STUN_ATTR_RESERVATION_TOKEN, m->reservation_token);
    if (m->present & TERN_STUN_HAS_ERROR_CODE)
        put_error_code(sw, m);
    if (m->present & TERN_STUN_HAS_UNKNOWN_ATTRIBUTES) {
        uint8_t v[2 * TERN_STUN_MAX_UNKNOWN];
        for (uint8_t i = 0; i < m->unknown_attributes_count; i++)
            tern_store_u16(v + 2 * i, m->unknown_attributes[i]);
        tern_stun_put_attr(sw, TERN_STUN_ATTR_UNKNOWN_ATTRIBUTES, v,
                           2 * (size_t)m->unknown_attributes_count);
    }
}

static void put_numbers(tern_stun_writer_t *sw, const tern_stun_msg_t *m)
{
    if (m->present & TERN_STUN_HAS_PRIORITY)
        tern_stun_put_u32(sw, TERN_STUN_ATTR_PRIORITY, m->priority);
    if (m->present & TERN_STUN_HAS_USE_CANDIDATE)
        tern_stun_put_flag(sw, TERN_STUN_ATTR_USE_CANDIDATE);
    if (m->present & TERN_STUN_HAS_ICE_CONTROLLED)
        tern_stun_put_u64(sw, TERN_STUN_ATTR_ICE_CONTROLLED, m->ice_controlled);
    if (m->present & TERN_STUN_HAS_ICE_CONTROLLING)
        tern_stun_put_u64(sw, TERN_STUN_ATTR_ICE_CONTROLLING, m->ice_controlling);
    if (m->present & TERN_STUN_HAS_LIFETIME)
        tern_stun_put_u32(sw, TERN_STUN_ATTR_LIFETIME, m->lifetime);
    if (m->present & TERN_STUN_HAS_CHANNEL_NUMBER)
        tern_stun_put_channel_number(sw, m->channel_number);
    if (m->present & TERN_STUN_HAS_REQUESTED_TRANSPORT)
        tern_stun_put_requested_transport(sw, m->requested_transport);
    if (m->present & TERN_STUN_HAS_REQUESTED_ADDRESS_FAMILY)
        tern_stun_put_requested_address_family(sw, m->requested_address_family);
    if (m->present & TERN_STUN_HAS_EVEN_PORT)
        tern_stun_put_even_port(sw, m->even_port_reserve);
    if (m->present & TERN_STUN_HAS_DONT_FRAGMENT)
        tern_stun_put_flag(sw, TERN_STUN_ATTR_DONT_FRAGMENT);
    if (m->present & TERN_STUN_HAS_CHANGE_REQUEST)
        tern_stun_put_u32(sw, TERN_STUN_ATTR_CHANGE_REQUEST, m->change_request);
    /* Unknown required types come back as empty attributes, so the list survives. */
    for (uint8_t i = 0; i < m->unknown_required_count; i++)
        tern_stun_put_flag(sw, m->unknown_required[i]);
}

static bool same_bytes(tern_stun_bytes_t a, tern_stun_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void compare(const tern_stun_msg_t *a, const tern_stun_msg_t *b)
{
    uint32_t trailers =
        TERN_STUN_HAS_INTEGRITY | TERN_STUN_HAS_INTEGRITY_SHA256 | TERN_STUN_HAS_FINGERPRINT;
    if (a->msg_class != b->msg_class || a->method != b->method ||
        memcmp(a->tid, b->tid, sizeof a->tid) != 0 ||
        (a->present & ~trailers) != (b->present & ~trailers))
        die();
    if (!tern_addr_equal(&a->mapped_address, &b->mapped_address) ||
        !tern_addr_equal(&a->xor_mapped_address, &b->xor_mapped_address) ||
        !tern_addr_equal(&a->xor_relayed_address, &b->xor_relayed_address) ||
        !tern_addr_equal(&a->alternate_server, &b->alternate_server) ||
        !tern_addr_equal(&a->response_origin, &b->response_origin) ||
        !tern_addr_equal(&a->other_address, &b->other_address) ||
        a->xor_peer_address_count != b->xor_peer_address_count)
        die();
    for (uint8_t i = 0; i < a->xor_peer_address_count; i++)
        if (!tern_addr_equal(&a->xor_peer_address[i], &b->xor_peer_address[i]))
            die();
    if (!same_bytes(a->username, b->username) || !same_bytes(a->software, b->software) ||
        !same_bytes(a->realm, b->realm) || !same_bytes(a->nonce, b->nonce) ||
        !same_bytes(a->data_attr, b->data_attr) ||
        !same_bytes(a->reservation_token, b->reservation_token) ||
        !same_bytes(a->error_reason, b->error_reason))
        die();
    if (a->error_code != b->error_code || a->priority != b->priority ||
        a->ice_controlled != b->ice_controlled || a->ice_controlling != b->ice_controlling ||
        a->lifetime != b->lifetime || a->channel_number != b->channel_number ||
        a->requested_transport != b->requested_transport ||
        a->requested_address_family != b->requested_address_family ||
        a->even_port_reserve != b->even_port_reserve || a->change_request != b->change_request)
        die();
    if (a->unknown_attributes_count != b->unknown_attributes_count ||
        memcmp(a->unknown_attributes, b->unknown_attributes,
               a->unknown_attributes_count * sizeof a->unknown_attributes[0]) != 0 ||
        a->unknown_required_count != b->unknown_required_count ||
        memcmp(a->unknown_required, b->unknown_required,
               a->unknown_required_count * sizeof a->unknown_required[0]) != 0)
        die();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    (void)tern_stun_is_message(data, size);
    tern_stun_msg_t m;
    if (tern_stun_parse(data, size, &m) != TERN_OK)
        return 0;
    (void)tern_stun_check_integrity(&m, fuzz_key, sizeof fuzz_key - 1);
    (void)tern_stun_check_integrity_sha256(&m, fuzz_key, sizeof fuzz_key - 1);
    (void)tern_stun_check_fingerprint(&m);

    tern_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    tern_ctx_init_base(&ctx, NULL);
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, &ctx, NULL, 0);
    tern_stun_writer_begin(&sw, &w, m.msg_class, m.method, m.tid);
    put_addresses(&sw, &m);
    put_texts(&sw, &m);
    put_numbers(&sw, &m);
    tern_stun_put_integrity(&sw, fuzz_key, sizeof fuzz_key - 1);
    tern_stun_put_integrity_sha256(&sw, fuzz_key, sizeof fuzz_key - 1);
    tern_stun_put_fingerprint(&sw);
    size_t len = 0;
    int ret = tern_stun_writer_end(&sw, &len);
    if (ret == TERN_OK) {
        /* Whatever parsed must fit again: the writer adds at most the trailers and the
         * empty unknown attributes, so only an input near 64 KiB may overflow. */
        tern_stun_msg_t again;
        if (tern_stun_parse(w.base, len, &again) != TERN_OK)
            die();
        compare(&m, &again);
        if (tern_stun_check_integrity(&again, fuzz_key, sizeof fuzz_key - 1) != TERN_OK ||
            tern_stun_check_integrity_sha256(&again, fuzz_key, sizeof fuzz_key - 1) != TERN_OK ||
            tern_stun_check_fingerprint(&again) != TERN_OK)
            die();
    } else if (ret != TERN_ERR_TOO_LARGE) {
        die();
    }
    tern_wbuf_dispose(&w);
    return 0;
}
