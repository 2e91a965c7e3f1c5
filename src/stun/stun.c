/* SPDX-License-Identifier: MIT */
/*
 * STUN message parsing (RFC 8489 §5, §14; RFC 8656 §18; RFC 8445 §16.1; RFC 5780 §7): the quick
 * classifier tern_stun_is_message, the strict parser tern_stun_parse that fills a borrowed view
 * of every attribute the stack uses, and the method and attribute tables.
 */
#include "stun/stun.h"

#include <string.h>

/*
 * Maximum value sizes of text attributes. USERNAME: RFC 8489 §14.3 asks senders for fewer than
 * 509 bytes, RFC 5389 §15.3 allowed fewer than 513, which is what receivers accept. REALM,
 * NONCE, SOFTWARE and the reason phrase: up to 763 bytes (RFC 8489 §14.8-§14.10, §14.14).
 */
#define MAX_USERNAME_BYTES 512
#define MAX_TEXT_BYTES 763

/* Attribute families in address attributes (RFC 8489 §14.1). */
#define STUN_FAMILY_IPV4 0x01
#define STUN_FAMILY_IPV6 0x02

/* Where parsing stands relative to the integrity and fingerprint attributes (RFC 8489 §14.5). */
typedef enum {
    PHASE_OPEN,        /* every attribute counts */
    PHASE_AFTER_MI,    /* only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count */
    PHASE_AFTER_MI256, /* only FINGERPRINT counts */
    PHASE_DONE,        /* after FINGERPRINT nothing counts */
} parse_phase_t;

bool tern_stun_is_message(const uint8_t *data, size_t len)
{
    if (!data || len < TERN_STUN_HEADER_LEN || (data[0] & 0xC0) != 0)
        return false;
    size_t body = tern_load_u16(data + 2);
    return body % 4 == 0 && body + TERN_STUN_HEADER_LEN == len &&
           tern_load_u32(data + 4) == TERN_STUN_MAGIC_COOKIE;
}

static int decode_addr(const uint8_t *v, size_t n, bool xored, const uint8_t *tid, tern_addr_t *out)
{
    if (n < 4)
        return TERN_ERR_PARSE;
    uint8_t family = v[1];
    size_t ip_len = family == STUN_FAMILY_IPV4 ? 4 : family == STUN_FAMILY_IPV6 ? 16 : 0;
    if (ip_len == 0 || n != 4 + ip_len)
        return TERN_ERR_PARSE;
    tern_addr_t a;
    memset(&a, 0, sizeof a);
    a.family = ip_len == 4 ? TERN_AF_INET : TERN_AF_INET6;
    a.port = tern_load_u16(v + 2);
    memcpy(a.ip, v + 4, ip_len);
    if (xored) {
        /* RFC 8489 §14.2: port xor the cookie's top half; address xor cookie || tid. */
        uint8_t pad[16];
        tern_store_u32(pad, TERN_STUN_MAGIC_COOKIE);
        memcpy(pad + 4, tid, TERN_STUN_TID_LEN);
        a.port ^= (uint16_t)(TERN_STUN_MAGIC_COOKIE >> 16);
        for (size_t i = 0; i < ip_len; i++)
            a.ip[i] ^= pad[i];
    }
    *out = a;
    return TERN_OK;
}

static int decode_error_code(const uint8_t *v, size_t n, tern_stun_msg_t *m)
{
    /* RFC 8489 §14.8: 21 reserved bits, class 3..6 in 3 bits, number 0..99 in 8 bits. */
    if (n < 4 || n - 4 > MAX_TEXT_BYTES)
        return TERN_ERR_PARSE;
    unsigned cls = v[2] & 0x07, number = v[3];
    if (cls < 3 || cls > 6 || number > 99)
        return TERN_ERR_PARSE;
    m->error_code = (uint16_t)(cls * 100 + number);
    m->error_reason.p = v + 4;
    m->error_reason.len = n - 4;
    return TERN_OK;
}

static int decode_unknown_attributes(const uint8_t *v, size_t n, tern_stun_msg_t *m)
{
    if (n % 2 != 0)
        return TERN_ERR_PARSE;
    m->unknown_attributes_count = 0;
    for (size_t i = 0; i + 1 < n && m->unknown_attributes_count < TERN_STUN_MAX_UNKNOWN; i += 2)
        m->unknown_attributes[m->unknown_attributes_count++] = tern_load_u16(v + i);
    return TERN_OK;
}

static int decode_text(const uint8_t *v, size_t n, size_t max, tern_stun_bytes_t *out)
{
    if (n > max)
        return TERN_ERR_PARSE;
    out->p = v;
    out->len = n;
    return TERN_OK;
}

static int need_len(size_t n, size_t want)
{
    return n == want ? TERN_OK : TERN_ERR_PARSE;
}

static void note_unknown(tern_stun_msg_t *m, uint16_t type)
{
    /* RFC 8489 §6.3.1.1: comprehension-required types 0x0000-0x7FFF need a 420 answer. */
    if (type >= 0x8000 || m->unknown_required_count >= TERN_STUN_MAX_UNKNOWN)
        return;
    for (uint8_t i = 0; i < m->unknown_required_count; i++)
        if (m->unknown_required[i] == type)
            return;
    m->unknown_required[m->unknown_required_count++] = type;
}

/* Decode one attribute of the open phase; the first occurrence of each wins. */
static int decode_attr(tern_stun_msg_t *m, uint16_t type, const uint8_t *v, size_t n)
{
    int ret = TERN_OK;
    uint32_t bit = 0;
    switch (type) {
    case TERN_STUN_ATTR_MAPPED_ADDRESS:
        bit = TERN_STUN_HAS_MAPPED_ADDRESS;
        if (!(m->present & bit))
            ret = decode_addr(v, n, false, m->tid, &m->mapped_address);
        break;
    case TERN_STUN_ATTR_XOR_MAPPED_ADDRESS:
        bit = TERN_STUN_HAS_XOR_MAPPED_ADDRESS;
        if (!(m->present & bit))
            ret = decode_addr(v, n, true, m->tid, &m->xor_mapped_address);
        break;
    case TERN_STUN_ATTR_XOR_RELAYED_ADDRESS:
        bit = TERN_STUN_HAS_XOR_RELAYED_ADDRESS;
        if (!(m->present & bit))
            ret = decode_addr(v, n, true, m->tid, &m->xor_relayed_address);
        break;
    case TERN_STUN_ATTR_XOR_PEER_ADDRESS: {
        tern_addr_t a;
        bit = TERN_STUN_HAS_XOR_PEER_ADDRESS;
        ret = decode_addr(v, n, true, m->tid, &a);
        if (ret == TERN_OK && m->xor_peer_address_count < TERN_STUN_MAX_PEER_ADDRS)
            m->xor_peer_address[m->xor_peer_address_count++] = a;
        break;
    }
    case TERN_STUN_ATTR_ALTERNATE_SERVER:
        bit = TERN_STUN_HAS_ALTERNATE_SERVER;
        if (!(m->present & bit))
            ret = decode_addr(v, n, false, m->tid, &m->alternate_server);
        break;
    case TERN_STUN_ATTR_RESPONSE_ORIGIN:
        bit = TERN_STUN_HAS_RESPONSE_ORIGIN;
        if (!(m->present & bit))
            ret = decode_addr(v, n, false, m->tid, &m->response_origin);
        break;
    case TERN_STUN_ATTR_OTHER_ADDRESS:
        bit = TERN_STUN_HAS_OTHER_ADDRESS;
        if (!(m->present & bit))
            ret = decode_addr(v, n, false, m->tid, &m->other_address);
        break;
    case TERN_STUN_ATTR_USERNAME:
        bit = TERN_STUN_HAS_USERNAME;
        if (!(m->present & bit))
            ret = decode_text(v, n, MAX_USERNAME_BYTES, &m->username);
        break;
    case TERN_STUN_ATTR_SOFTWARE:
        bit = TERN_STUN_HAS_SOFTWARE;
        if (!(m->present & bit))
            ret = decode_text(v, n, MAX_TEXT_BYTES, &m->software);
        break;
    case TERN_STUN_ATTR_REALM:
        bit = TERN_STUN_HAS_REALM;
        if (!(m->present & bit))
            ret = decode_text(v, n, MAX_TEXT_BYTES, &m->realm);
        break;
    case TERN_STUN_ATTR_NONCE:
        bit = TERN_STUN_HAS_NONCE;
        if (!(m->present & bit))
            ret = decode_text(v, n, MAX_TEXT_BYTES, &m->nonce);
        break;
    case TERN_STUN_ATTR_DATA:
        bit = TERN_STUN_HAS_DATA;
        if (!(m->present & bit)) {
            m->data_attr.p = v;
            m->data_attr.len = n;
        }
        break;
    case TERN_STUN_ATTR_RESERVATION_TOKEN:
        bit = TERN_STUN_HAS_RESERVATION_TOKEN;
        ret = need_len(n, 8);
        if (ret == TERN_OK && !(m->present & bit)) {
            m->reservation_token.p = v;
            m->reservation_token.len = n;
        }
        break;
    case TERN_STUN_ATTR_ERROR_CODE:
        bit = TERN_STUN_HAS_ERROR_CODE;
        if (!(m->present & bit))
            ret = decode_error_code(v, n, m);
        break;
    case TERN_STUN_ATTR_UNKNOWN_ATTRIBUTES:
        bit = TERN_STUN_HAS_UNKNOWN_ATTRIBUTES;
        if (!(m->present & bit))
            ret = decode_unknown_attributes(v, n, m);
        break;
    case TERN_STUN_ATTR_PRIORITY:
        bit = TERN_STUN_HAS_PRIORITY;
        ret = need_len(n, 4);
        if (ret == TERN_OK && !(m->present & bit))
            m->priority = tern_load_u32(v);
        break;
    case TERN_STUN_ATTR_USE_CANDIDATE:
        bit = TERN_STUN_HAS_USE_CANDIDATE;
        ret = need_len(n, 0);
        break;
    case TERN_STUN_ATTR_DONT_FRAGMENT:
        bit = TERN_STUN_HAS_DONT_FRAGMENT;
        ret = need_len(n, 0);
        break;
    case TERN_STUN_ATTR_ICE_CONTROLLED:
    case TERN_STUN_ATTR_ICE_CONTROLLING: {
        bool controlled = type == TERN_STUN_ATTR_ICE_CONTROLLED;
        bit = controlled ? TERN_STUN_HAS_ICE_CONTROLLED : TERN_STUN_HAS_ICE_CONTROLLING;
        ret = need_len(n, 8);
        if (ret == TERN_OK && !(m->present & bit)) {
            uint64_t tb = (uint64_t)tern_load_u32(v) << 32 | tern_load_u32(v + 4);
            if (controlled)
                m->ice_controlled = tb;
            else
                m->ice_controlling = tb;
        }
        break;
    }
    case TERN_STUN_ATTR_LIFETIME:
        bit = TERN_STUN_HAS_LIFETIME;
        ret = need_len(n, 4);
        if (ret == TERN_OK && !(m->present & bit))
            m->lifetime = tern_load_u32(v);
        break;
    case TERN_STUN_ATTR_CHANGE_REQUEST:
        bit = TERN_STUN_HAS_CHANGE_REQUEST;
        ret = need_len(n, 4);
        if (ret == TERN_OK && !(m->present & bit))
            m->change_request = tern_load_u32(v);
        break;
    case TERN_STUN_ATTR_CHANNEL_NUMBER:
        bit = TERN_STUN_HAS_CHANNEL_NUMBER;
        ret = need_len(n, 4);
        if (ret == TERN_OK && !(m->present & bit))
            m->channel_number = tern_load_u16(v);
        break;
    case TERN_STUN_ATTR_REQUESTED_TRANSPORT:
        bit = TERN_STUN_HAS_REQUESTED_TRANSPORT;
        ret = need_len(n, 4);
        if (ret == TERN_OK && !(m->present & bit))
            m->requested_transport = v[0];
        break;
    case TERN_STUN_ATTR_REQUESTED_ADDRESS_FAMILY:
        bit = TERN_STUN_HAS_REQUESTED_ADDRESS_FAMILY;
        ret = need_len(n, 4);
        if (ret == TERN_OK && !(m->present & bit))
            m->requested_address_family = v[0];
        break;
    case TERN_STUN_ATTR_EVEN_PORT:
        bit = TERN_STUN_HAS_EVEN_PORT;
        ret = need_len(n, 1);
        if (ret == TERN_OK && !(m->present & bit))
            m->even_port_reserve = (v[0] & 0x80) != 0;
        break;
    default:
        if (!tern_stun_attr_is_known(type))
            note_unknown(m, type);
        return TERN_OK;
    }
    m->present |= bit;
    return ret;
}

/* Integrity and fingerprint attributes, which also end the phase that allows them. */
static int decode_trailer(tern_stun_msg_t *m, uint16_t type, const uint8_t *v, size_t n, size_t off,
                          parse_phase_t *phase)
{
    switch (type) {
    case TERN_STUN_ATTR_MESSAGE_INTEGRITY:
        if (n != TERN_STUN_INTEGRITY_LEN)
            return TERN_ERR_PARSE;
        m->present |= TERN_STUN_HAS_INTEGRITY;
        m->integrity = v;
        m->integrity_off = off;
        *phase = PHASE_AFTER_MI;
        return TERN_OK;
    case TERN_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
        /* RFC 8489 §14.6: 16 to 32 bytes, a multiple of 4 (truncation). */
        if (n < 16 || n > TERN_STUN_INTEGRITY_SHA256_LEN || n % 4 != 0)
            return TERN_ERR_PARSE;
        m->present |= TERN_STUN_HAS_INTEGRITY_SHA256;
        m->integrity_sha256 = v;
        m->integrity_sha256_len = n;
        m->integrity_sha256_off = off;
        *phase = PHASE_AFTER_MI256;
        return TERN_OK;
    case TERN_STUN_ATTR_FINGERPRINT:
        if (n != 4)
            return TERN_ERR_PARSE;
        m->present |= TERN_STUN_HAS_FINGERPRINT;
        m->fingerprint = tern_load_u32(v);
        m->fingerprint_off = off;
        *phase = PHASE_DONE;
        return TERN_OK;
    default:
        return TERN_OK;
    }
}

static bool phase_allows(parse_phase_t phase, uint16_t type)
{
    switch (phase) {
    case PHASE_OPEN:
        return true;
    case PHASE_AFTER_MI:
        return type == TERN_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 ||
               type == TERN_STUN_ATTR_FINGERPRINT;
    case PHASE_AFTER_MI256:
        return type == TERN_STUN_ATTR_FINGERPRINT;
    case PHASE_DONE:
    default:
        return false;
    }
}

static bool is_trailer(uint16_t type)
{
    return type == TERN_STUN_ATTR_MESSAGE_INTEGRITY ||
           type == TERN_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 || type == TERN_STUN_ATTR_FINGERPRINT;
}

static int parse_attrs(tern_stun_msg_t *m)
{
    parse_phase_t phase = PHASE_OPEN;
    size_t off = TERN_STUN_HEADER_LEN;
    while (off < m->len) {
        /* The body length is a multiple of 4, so 4 bytes of attribute header always fit. */
        uint16_t type = tern_load_u16(m->data + off);
        size_t n = tern_load_u16(m->data + off + 2);
        size_t padded = (n + 3) & ~(size_t)3;
        if (padded > m->len - off - 4)
            return TERN_ERR_PARSE; /* value or its padding past the end (RFC 8489 §14) */
        const uint8_t *v = m->data + off + 4;
        if (phase_allows(phase, type)) {
            int ret = is_trailer(type) ? decode_trailer(m, type, v, n, off, &phase)
                                       : decode_attr(m, type, v, n);
            if (ret != TERN_OK)
                return ret;
        }
        off += 4 + padded;
    }
    return TERN_OK;
}

int tern_stun_parse(const uint8_t *data, size_t len, tern_stun_msg_t *out)
{
    if (!out || !tern_stun_is_message(data, len))
        return TERN_ERR_PARSE;
    tern_stun_msg_t m;
    memset(&m, 0, sizeof m);
    uint16_t type = tern_load_u16(data);
    /* RFC 8489 §5: the class bits C1 (bit 8) and C0 (bit 4) sit among the method bits. */
    m.msg_class = (tern_stun_class_t)(((type >> 4) & 1) | ((type >> 7) & 2));
    m.method = (uint16_t)((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
    memcpy(m.tid, data + 8, TERN_STUN_TID_LEN);
    m.data = data;
    m.len = len;
    int ret = parse_attrs(&m);
    if (ret != TERN_OK)
        return ret;
    *out = m;
    return TERN_OK;
}

const char *tern_stun_method_name(uint16_t method)
{
    switch (method) {
    case TERN_STUN_BINDING:
        return "binding";
    case TERN_STUN_ALLOCATE:
        return "allocate";
    case TERN_STUN_REFRESH:
        return "refresh";
    case TERN_STUN_SEND:
        return "send";
    case TERN_STUN_DATA:
        return "data";
    case TERN_STUN_CREATE_PERMISSION:
        return "create-permission";
    case TERN_STUN_CHANNEL_BIND:
        return "channel-bind";
    default:
        return "unknown";
    }
}

bool tern_stun_attr_is_known(uint16_t type)
{
    switch (type) {
    case TERN_STUN_ATTR_MAPPED_ADDRESS:
    case TERN_STUN_ATTR_CHANGE_REQUEST:
    case TERN_STUN_ATTR_USERNAME:
    case TERN_STUN_ATTR_MESSAGE_INTEGRITY:
    case TERN_STUN_ATTR_ERROR_CODE:
    case TERN_STUN_ATTR_UNKNOWN_ATTRIBUTES:
    case TERN_STUN_ATTR_CHANNEL_NUMBER:
    case TERN_STUN_ATTR_LIFETIME:
    case TERN_STUN_ATTR_XOR_PEER_ADDRESS:
    case TERN_STUN_ATTR_DATA:
    case TERN_STUN_ATTR_REALM:
    case TERN_STUN_ATTR_NONCE:
    case TERN_STUN_ATTR_XOR_RELAYED_ADDRESS:
    case TERN_STUN_ATTR_REQUESTED_ADDRESS_FAMILY:
    case TERN_STUN_ATTR_EVEN_PORT:
    case TERN_STUN_ATTR_REQUESTED_TRANSPORT:
    case TERN_STUN_ATTR_DONT_FRAGMENT:
    case TERN_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
    case TERN_STUN_ATTR_PASSWORD_ALGORITHM:
    case TERN_STUN_ATTR_USERHASH:
    case TERN_STUN_ATTR_XOR_MAPPED_ADDRESS:
    case TERN_STUN_ATTR_RESERVATION_TOKEN:
    case TERN_STUN_ATTR_PRIORITY:
    case TERN_STUN_ATTR_USE_CANDIDATE:
    case TERN_STUN_ATTR_PADDING:
    case TERN_STUN_ATTR_RESPONSE_PORT:
    case TERN_STUN_ATTR_PASSWORD_ALGORITHMS:
    case TERN_STUN_ATTR_ALTERNATE_DOMAIN:
    case TERN_STUN_ATTR_SOFTWARE:
    case TERN_STUN_ATTR_ALTERNATE_SERVER:
    case TERN_STUN_ATTR_FINGERPRINT:
    case TERN_STUN_ATTR_ICE_CONTROLLED:
    case TERN_STUN_ATTR_ICE_CONTROLLING:
    case TERN_STUN_ATTR_RESPONSE_ORIGIN:
    case TERN_STUN_ATTR_OTHER_ADDRESS:
        return true;
    default:
        return false;
    }
}
