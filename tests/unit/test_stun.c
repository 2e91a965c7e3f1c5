/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of stun/: the RFC 5769 sample messages parsed and written byte for byte, integrity
 * (short- and long-term), fingerprint, every decoded attribute round-tripped through the
 * writer, and malformed messages refused (truncated, bad lengths, padding, cookie, values).
 */
#include "check.h"
#include "guard.h"
#include "stun/stun.h"

#include <arpa/inet.h>
#include <stdlib.h>

static tern_ctx_t ctx;

/* RFC 5769 §2.1: sample request, short-term credentials. */
static const uint8_t rfc5769_request[] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

/* RFC 5769 §2.2: sample IPv4 response. */
static const uint8_t rfc5769_response_v4[] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

/* RFC 5769 §2.3: sample IPv6 response. */
static const uint8_t rfc5769_response_v6[] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

/* RFC 5769 §2.4: sample request with long-term authentication. */
static const uint8_t rfc5769_request_lt[] = {
    0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72,
    0xc0, 0x29, 0xda, 0x41, 0x2e, 0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88,
    0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00, 0x00,
    0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36,
    0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79, 0x36, 0x34, 0x73,
    0x41, 0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72,
    0x67, 0x00, 0x00, 0x08, 0x00, 0x14, 0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02,
    0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66,
};

static const char rfc5769_pwd[] = "VOkJxbRl1RmTxUk/WvJxBt";
/* "マトリックス" in UTF-8, and the password after SASLprep (RFC 5769 §2.4). */
static const char rfc5769_lt_user[] =
    "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";
static const char rfc5769_lt_pwd[] = "TheMatrIX";

static bool bytes_eq(tern_stun_bytes_t b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

/* Parse with the input against a guard page. */
static int parse_guarded(const uint8_t *data, size_t len, tern_stun_msg_t *m, guarded_t *g)
{
    const uint8_t *p = guard_copy(g, data, len);
    return tern_stun_parse(p, len, m);
}

static void test_rfc5769_request(void)
{
    guarded_t g;
    tern_stun_msg_t m;
    eq_int(parse_guarded(rfc5769_request, sizeof rfc5769_request, &m, &g), 0);
    eq_int(m.msg_class, TERN_STUN_REQUEST);
    eq_int(m.method, TERN_STUN_BINDING);
    ok(bytes_eq(m.software, "STUN test client"));
    ok(bytes_eq(m.username, "evtj:h6vY"));
    ok(m.present & TERN_STUN_HAS_PRIORITY);
    eq_int(m.priority, 0x6e0001ff);
    ok(m.present & TERN_STUN_HAS_ICE_CONTROLLED);
    ok(m.ice_controlled == 0x932ff9b151263b36ull);
    ok(!(m.present & TERN_STUN_HAS_ICE_CONTROLLING));
    eq_int(tern_stun_check_integrity(&m, (const uint8_t *)rfc5769_pwd, strlen(rfc5769_pwd)), 0);
    eq_int(tern_stun_check_integrity(&m, (const uint8_t *)"wrong", 5), TERN_ERR_CRYPTO);
    eq_int(tern_stun_check_integrity_sha256(&m, (const uint8_t *)"x", 1), TERN_ERR_NOT_FOUND);
    eq_int(tern_stun_check_fingerprint(&m), 0);
    eq_int(m.unknown_required_count, 0);
    guard_free(&g);

    /* Written back byte for byte (RFC 5769 pads with spaces). */
    uint8_t buf[256];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, m.tid);
    sw.pad_byte = 0x20;
    tern_stun_put_string(&sw, TERN_STUN_ATTR_SOFTWARE, "STUN test client");
    tern_stun_put_u32(&sw, TERN_STUN_ATTR_PRIORITY, 0x6e0001ff);
    tern_stun_put_u64(&sw, TERN_STUN_ATTR_ICE_CONTROLLED, 0x932ff9b151263b36ull);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, "evtj:h6vY");
    tern_stun_put_integrity(&sw, (const uint8_t *)rfc5769_pwd, strlen(rfc5769_pwd));
    tern_stun_put_fingerprint(&sw);
    size_t len = 0;
    eq_int(tern_stun_writer_end(&sw, &len), 0);
    eq_int(len, sizeof rfc5769_request);
    ok(len == sizeof rfc5769_request && memcmp(buf, rfc5769_request, len) == 0);
}

static void check_response(const uint8_t *vec, size_t vec_len, const char *ip)
{
    guarded_t g;
    tern_stun_msg_t m;
    eq_int(parse_guarded(vec, vec_len, &m, &g), 0);
    eq_int(m.msg_class, TERN_STUN_SUCCESS);
    eq_int(m.method, TERN_STUN_BINDING);
    ok(bytes_eq(m.software, "test vector"));
    ok(m.present & TERN_STUN_HAS_XOR_MAPPED_ADDRESS);
    tern_addr_t want;
    eq_int(tern_addr_parse(ip, &want), 0);
    want.port = 32853;
    ok(tern_addr_equal(&m.xor_mapped_address, &want));
    eq_int(tern_stun_check_integrity(&m, (const uint8_t *)rfc5769_pwd, strlen(rfc5769_pwd)), 0);
    eq_int(tern_stun_check_fingerprint(&m), 0);
    guard_free(&g);

    uint8_t buf[256];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_SUCCESS, TERN_STUN_BINDING, m.tid);
    sw.pad_byte = 0x20;
    tern_stun_put_string(&sw, TERN_STUN_ATTR_SOFTWARE, "test vector");
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &want);
    tern_stun_put_integrity(&sw, (const uint8_t *)rfc5769_pwd, strlen(rfc5769_pwd));
    tern_stun_put_fingerprint(&sw);
    size_t len = 0;
    eq_int(tern_stun_writer_end(&sw, &len), 0);
    ok(len == vec_len && memcmp(buf, vec, len) == 0);
}

static void test_rfc5769_responses(void)
{
    check_response(rfc5769_response_v4, sizeof rfc5769_response_v4, "192.0.2.1");
    check_response(rfc5769_response_v6, sizeof rfc5769_response_v6,
                   "2001:db8:1234:5678:11:2233:4455:6677");
}

static void test_rfc5769_long_term(void)
{
    guarded_t g;
    tern_stun_msg_t m;
    eq_int(parse_guarded(rfc5769_request_lt, sizeof rfc5769_request_lt, &m, &g), 0);
    ok(bytes_eq(m.username, rfc5769_lt_user));
    ok(bytes_eq(m.nonce, "f//499k954d6OL34oL9FSTvy64sA"));
    ok(bytes_eq(m.realm, "example.org"));
    uint8_t key[TERN_STUN_LONG_TERM_KEY_LEN];
    eq_int(tern_stun_long_term_key(rfc5769_lt_user, "example.org", rfc5769_lt_pwd, key), 0);
    eq_int(tern_stun_check_integrity(&m, key, sizeof key), 0);
    eq_int(tern_stun_check_fingerprint(&m), TERN_ERR_NOT_FOUND);
    guard_free(&g);

    uint8_t buf[256];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, m.tid);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, rfc5769_lt_user);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_NONCE, "f//499k954d6OL34oL9FSTvy64sA");
    tern_stun_put_string(&sw, TERN_STUN_ATTR_REALM, "example.org");
    tern_stun_put_integrity(&sw, key, sizeof key);
    size_t len = 0;
    eq_int(tern_stun_writer_end(&sw, &len), 0);
    ok(len == sizeof rfc5769_request_lt && memcmp(buf, rfc5769_request_lt, len) == 0);
}

static int parse_copy(const uint8_t *data, size_t len)
{
    guarded_t g;
    tern_stun_msg_t m;
    memset(&m, 0xAB, sizeof m);
    tern_stun_msg_t before = m;
    int ret = parse_guarded(data, len, &m, &g);
    guard_free(&g);
    if (ret != 0 && memcmp(&m, &before, sizeof m) != 0)
        return 1; /* a failed parse must leave the view untouched */
    return ret;
}

static void test_malformed(void)
{
    uint8_t msg[sizeof rfc5769_request];
    /* Every truncation is refused. */
    for (size_t n = 0; n < sizeof rfc5769_request; n++)
        eq_int(parse_copy(rfc5769_request, n), TERN_ERR_PARSE);
    ok(!tern_stun_is_message(rfc5769_request, 19));
    ok(!tern_stun_is_message(NULL, 0));
    ok(tern_stun_is_message(rfc5769_request, sizeof rfc5769_request));

    /* Wrong cookie. */
    memcpy(msg, rfc5769_request, sizeof msg);
    msg[4] ^= 1;
    eq_int(parse_copy(msg, sizeof msg), TERN_ERR_PARSE);
    /* First two bits set (RFC 7983: not STUN). */
    memcpy(msg, rfc5769_request, sizeof msg);
    msg[0] |= 0x80;
    eq_int(parse_copy(msg, sizeof msg), TERN_ERR_PARSE);
    /* Length field not matching the datagram, or not a multiple of 4. */
    memcpy(msg, rfc5769_request, sizeof msg);
    msg[3] = 0x54;
    eq_int(parse_copy(msg, sizeof msg), TERN_ERR_PARSE);
    msg[3] = 0x57;
    eq_int(parse_copy(msg, sizeof msg), TERN_ERR_PARSE);
    eq_int(parse_copy(msg, 0x57 + 20), TERN_ERR_PARSE);
    /* An attribute running over the end: SOFTWARE claims 0x60 bytes. */
    memcpy(msg, rfc5769_request, sizeof msg);
    msg[23] = 0x60;
    eq_int(parse_copy(msg, sizeof msg), TERN_ERR_PARSE);
    /* Bad padding: the last attribute's value fits but its padding does not. */
    static const uint8_t pad_over[] = {
        0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 1,    2,    3,   4,   5,   6,
        7,    8,    9,    10,   11,   12,   0x00, 0x06, 0x00, 0x05, 'a', 'b', 'c', 'd',
    };
    eq_int(parse_copy(pad_over, sizeof pad_over), TERN_ERR_PARSE);
    /* Bad values: ICE-CONTROLLED of 4 bytes, MESSAGE-INTEGRITY of 16, XOR address family 3. */
    static const uint8_t short_controlled[] = {
        0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 1,    2,    3, 4, 5, 6,
        7,    8,    9,    10,   11,   12,   0x80, 0x29, 0x00, 0x04, 1, 2, 3, 4,
    };
    eq_int(parse_copy(short_controlled, sizeof short_controlled), TERN_ERR_PARSE);
    static const uint8_t short_mi[] = {
        0x00, 0x01, 0x00, 0x14, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        0x00, 0x08, 0x00, 0x10, 0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0,  0,
    };
    eq_int(parse_copy(short_mi, sizeof short_mi), TERN_ERR_PARSE);
    static const uint8_t bad_family[] = {
        0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42, 1,    2,    3,    4,    5, 6, 7, 8,
        9,    10,   11,   12,   0x00, 0x20, 0x00, 0x08, 0x00, 0x03, 0x12, 0x34, 1, 2, 3, 4,
    };
    eq_int(parse_copy(bad_family, sizeof bad_family), TERN_ERR_PARSE);
    /* ERROR-CODE of class 7. */
    static const uint8_t bad_class[] = {
        0x01, 0x11, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 1,    2,    3,    4,    5,    6,
        7,    8,    9,    10,   11,   12,   0x00, 0x09, 0x00, 0x04, 0x00, 0x00, 0x07, 0x01,
    };
    eq_int(parse_copy(bad_class, sizeof bad_class), TERN_ERR_PARSE);
    /* A fingerprint that does not match. */
    tern_stun_msg_t m;
    memcpy(msg, rfc5769_request, sizeof msg);
    msg[sizeof msg - 1] ^= 1;
    eq_int(tern_stun_parse(msg, sizeof msg, &m), 0);
    eq_int(tern_stun_check_fingerprint(&m), TERN_ERR_PARSE);
    /* A flipped bit in a covered attribute breaks the integrity. */
    memcpy(msg, rfc5769_request, sizeof msg);
    msg[30] ^= 1;
    eq_int(tern_stun_parse(msg, sizeof msg, &m), 0);
    eq_int(tern_stun_check_integrity(&m, (const uint8_t *)rfc5769_pwd, strlen(rfc5769_pwd)),
           TERN_ERR_CRYPTO);
}

static void test_unknown_and_trailers(void)
{
    /* An unknown required 0x7777, an unknown optional 0xC057 (Chrome's GOOG-NETWORK-INFO),
     * then MESSAGE-INTEGRITY, an attribute after it (ignored), and FINGERPRINT. */
    uint8_t buf[256];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    uint8_t tid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, tid);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, "a:b");
    tern_stun_put_u32(&sw, 0x7777, 1);
    tern_stun_put_u32(&sw, 0x7777, 2);
    tern_stun_put_u32(&sw, 0xC057, 3);
    tern_stun_put_integrity(&sw, (const uint8_t *)"key", 3);
    tern_stun_put_u32(&sw, TERN_STUN_ATTR_PRIORITY, 99);
    tern_stun_put_fingerprint(&sw);
    size_t len;
    eq_int(tern_stun_writer_end(&sw, &len), 0);
    tern_stun_msg_t m;
    eq_int(tern_stun_parse(buf, len, &m), 0);
    eq_int(m.unknown_required_count, 1);
    eq_int(m.unknown_required[0], 0x7777);
    ok(!(m.present & TERN_STUN_HAS_PRIORITY)); /* after MESSAGE-INTEGRITY: ignored */
    eq_int(tern_stun_check_integrity(&m, (const uint8_t *)"key", 3), 0);
    eq_int(tern_stun_check_fingerprint(&m), 0);

    /* SHA-256 integrity, and a truncated one (RFC 8489 §14.6). */
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_SUCCESS, TERN_STUN_ALLOCATE, tid);
    tern_stun_put_integrity(&sw, (const uint8_t *)"k1", 2);
    tern_stun_put_integrity_sha256(&sw, (const uint8_t *)"k2", 2);
    tern_stun_put_fingerprint(&sw);
    eq_int(tern_stun_writer_end(&sw, &len), 0);
    eq_int(tern_stun_parse(buf, len, &m), 0);
    eq_int(m.method, TERN_STUN_ALLOCATE);
    eq_int(m.msg_class, TERN_STUN_SUCCESS);
    eq_int(tern_stun_check_integrity(&m, (const uint8_t *)"k1", 2), 0);
    eq_int(tern_stun_check_integrity_sha256(&m, (const uint8_t *)"k2", 2), 0);
    eq_int(tern_stun_check_integrity_sha256(&m, (const uint8_t *)"k1", 2), TERN_ERR_CRYPTO);
    eq_int(tern_stun_check_fingerprint(&m), 0);

    /* Truncate MI-SHA256 to 16 bytes by hand: rewrite the attribute length and drop 16. */
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, tid);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, "u");
    tern_stun_put_integrity_sha256(&sw, (const uint8_t *)"k2", 2);
    eq_int(tern_stun_writer_end(&sw, &len), 0);
    size_t mi_off = len - 36;
    tern_store_u16(buf + mi_off + 2, 16);
    len -= 16;
    tern_store_u16(buf + 2, (uint16_t)(len - 20));
    /* The HMAC was computed with the full length, so recompute over the truncated header. */
    uint8_t mac[32];
    uint8_t hdr[20];
    memcpy(hdr, buf, 20);
    eq_int(tern_stun_hmac(true, (const uint8_t *)"k2", 2, hdr, buf + 20, mi_off - 20, mac), 0);
    memcpy(buf + mi_off + 4, mac, 16);
    eq_int(tern_stun_parse(buf, len, &m), 0);
    eq_int(m.integrity_sha256_len, 16);
    eq_int(tern_stun_check_integrity_sha256(&m, (const uint8_t *)"k2", 2), 0);
}

static void test_round_trip(void)
{
    uint8_t tid[12] = {0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 1, 2, 3, 4, 5, 6};
    tern_addr_t v4, v6, peer2;
    tern_addr_parse("203.0.113.5:4000", &v4);
    tern_addr_parse("[2001:db8::77]:65535", &v6);
    tern_addr_parse("198.51.100.1:1", &peer2);
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, &ctx, NULL, 0);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_ERROR, TERN_STUN_CREATE_PERMISSION, tid);
    tern_stun_put_addr(&sw, TERN_STUN_ATTR_MAPPED_ADDRESS, &v4);
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &v6);
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_RELAYED_ADDRESS, &v4);
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_PEER_ADDRESS, &v6);
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_PEER_ADDRESS, &peer2);
    tern_stun_put_addr(&sw, TERN_STUN_ATTR_ALTERNATE_SERVER, &v6);
    tern_stun_put_addr(&sw, TERN_STUN_ATTR_RESPONSE_ORIGIN, &v4);
    tern_stun_put_addr(&sw, TERN_STUN_ATTR_OTHER_ADDRESS, &peer2);
    tern_stun_put_error_code(&sw, 438, NULL);
    uint16_t unknown[] = {0x1234, 0x0042, 0x7fff};
    tern_stun_put_unknown_attributes(&sw, unknown, 3);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_REALM, "realm");
    tern_stun_put_string(&sw, TERN_STUN_ATTR_NONCE, "nonce-123");
    tern_stun_put_u32(&sw, TERN_STUN_ATTR_LIFETIME, 600);
    tern_stun_put_channel_number(&sw, 0x4001);
    tern_stun_put_requested_transport(&sw, 17);
    tern_stun_put_requested_address_family(&sw, 0x02);
    tern_stun_put_even_port(&sw, true);
    tern_stun_put_flag(&sw, TERN_STUN_ATTR_DONT_FRAGMENT);
    tern_stun_put_u64(&sw, TERN_STUN_ATTR_RESERVATION_TOKEN, 0x0102030405060708ull);
    tern_stun_put_u32(&sw, TERN_STUN_ATTR_CHANGE_REQUEST, 6);
    tern_stun_put_attr(&sw, TERN_STUN_ATTR_DATA, "hello", 5);
    tern_stun_put_u64(&sw, TERN_STUN_ATTR_ICE_CONTROLLING, 42);
    tern_stun_put_flag(&sw, TERN_STUN_ATTR_USE_CANDIDATE);
    tern_stun_put_fingerprint(&sw);
    size_t len;
    eq_int(tern_stun_writer_end(&sw, &len), 0);
    eq_int(len, w.len);
    tern_stun_msg_t m;
    guarded_t g;
    eq_int(parse_guarded(w.base, len, &m, &g), 0);
    eq_int(m.msg_class, TERN_STUN_ERROR);
    eq_int(m.method, TERN_STUN_CREATE_PERMISSION);
    ok(memcmp(m.tid, tid, 12) == 0);
    ok(tern_addr_equal(&m.mapped_address, &v4));
    ok(tern_addr_equal(&m.xor_mapped_address, &v6));
    ok(tern_addr_equal(&m.xor_relayed_address, &v4));
    eq_int(m.xor_peer_address_count, 2);
    ok(tern_addr_equal(&m.xor_peer_address[0], &v6));
    ok(tern_addr_equal(&m.xor_peer_address[1], &peer2));
    ok(tern_addr_equal(&m.alternate_server, &v6));
    ok(tern_addr_equal(&m.response_origin, &v4));
    ok(tern_addr_equal(&m.other_address, &peer2));
    eq_int(m.error_code, 438);
    ok(bytes_eq(m.error_reason, "Stale Nonce"));
    eq_int(m.unknown_attributes_count, 3);
    eq_int(m.unknown_attributes[2], 0x7fff);
    ok(bytes_eq(m.realm, "realm"));
    ok(bytes_eq(m.nonce, "nonce-123"));
    eq_int(m.lifetime, 600);
    eq_int(m.channel_number, 0x4001);
    eq_int(m.requested_transport, 17);
    eq_int(m.requested_address_family, 2);
    ok(m.even_port_reserve);
    ok(m.present & TERN_STUN_HAS_DONT_FRAGMENT);
    eq_int(m.reservation_token.len, 8);
    eq_int(m.change_request, 6);
    ok(m.data_attr.len == 5 && memcmp(m.data_attr.p, "hello", 5) == 0);
    ok(m.ice_controlling == 42);
    ok(m.present & TERN_STUN_HAS_USE_CANDIDATE);
    eq_int(tern_stun_check_fingerprint(&m), 0);
    eq_int(m.unknown_required_count, 0);
    guard_free(&g);
    tern_wbuf_dispose(&w);
}

static void test_writer_errors(void)
{
    uint8_t small[24], tid[12] = {0};
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, small, sizeof small);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, tid);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, "too long for the buffer");
    eq_int(tern_stun_writer_end(&sw, NULL), TERN_ERR_TOO_LARGE);

    uint8_t buf[128];
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_ERROR, TERN_STUN_BINDING, tid);
    tern_stun_put_error_code(&sw, 700, "x");
    eq_int(tern_stun_writer_end(&sw, NULL), TERN_ERR_INVALID_ARG);

    tern_addr_t none = {0};
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_SUCCESS, TERN_STUN_BINDING, tid);
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &none);
    eq_int(tern_stun_writer_end(&sw, NULL), TERN_ERR_INVALID_ARG);

    /* A long reason is cut at a UTF-8 boundary under 128 bytes. */
    char reason[300];
    for (int i = 0; i < 100; i++)
        memcpy(reason + 3 * i, "\xe2\x82\xac", 3); /* the euro sign */
    reason[299] = '\0';
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_wbuf_init(&w, &ctx, NULL, 0);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_ERROR, TERN_STUN_BINDING, tid);
    tern_stun_put_error_code(&sw, 400, reason);
    size_t len;
    eq_int(tern_stun_writer_end(&sw, &len), 0);
    tern_stun_msg_t m;
    eq_int(tern_stun_parse(w.base, len, &m), 0);
    eq_int(m.error_code, 400);
    eq_int(m.error_reason.len, 126);
    tern_wbuf_dispose(&w);

    /* Bad arguments fail the writer with the first error, and the buffer stays a message. */
    static const uint16_t codes[] = {300, 400, 401, 403, 420, 437, 438, 440,
                                     441, 442, 443, 486, 487, 500, 508};
    for (size_t i = 0; i < TERN_ARRAY_LEN(codes); i++) {
        tern_wbuf_init(&w, NULL, buf, sizeof buf);
        tern_stun_writer_begin(&sw, &w, TERN_STUN_ERROR, TERN_STUN_ALLOCATE, tid);
        tern_stun_put_error_code(&sw, codes[i], NULL);
        eq_int(tern_stun_writer_end(&sw, &len), 0);
        eq_int(tern_stun_parse(buf, len, &m), 0);
        eq_int(m.error_code, codes[i]);
        ok(m.error_reason.len > 0);
    }
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, tid);
    tern_stun_put_attr(&sw, TERN_STUN_ATTR_DATA, NULL, 4);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_SOFTWARE, NULL);
    tern_stun_put_unknown_attributes(&sw, NULL, 0);
    eq_int(tern_stun_writer_end(&sw, &len), TERN_ERR_INVALID_ARG);
    tern_wbuf_init(&w, &ctx, NULL, 0);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_INDICATION, TERN_STUN_SEND, tid);
    static uint8_t big[70000];
    tern_stun_put_attr(&sw, TERN_STUN_ATTR_DATA, big, sizeof big);
    eq_int(tern_stun_writer_end(&sw, &len), TERN_ERR_TOO_LARGE);
    tern_wbuf_dispose(&w);
    tern_wbuf_init(&w, &ctx, NULL, 0);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_INDICATION, TERN_STUN_SEND, tid);
    tern_stun_put_attr(&sw, TERN_STUN_ATTR_DATA, big, 40000);
    tern_stun_put_attr(&sw, TERN_STUN_ATTR_DATA, big, 40000); /* together over 64 KiB */
    eq_int(tern_stun_writer_end(&sw, &len), TERN_ERR_TOO_LARGE);
    tern_wbuf_dispose(&w);
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, 0x1000, tid);
    eq_int(tern_stun_writer_end(&sw, &len), TERN_ERR_INVALID_ARG);

    eq_str(tern_stun_method_name(TERN_STUN_CHANNEL_BIND), "channel-bind");
    eq_str(tern_stun_method_name(0x0FF), "unknown");
    ok(tern_stun_attr_is_known(TERN_STUN_ATTR_FINGERPRINT));
    ok(!tern_stun_attr_is_known(0x7777));
}

static void test_method_class_bits(void)
{
    /* Every method and class survives the interleaved type encoding (RFC 8489 §5). */
    uint8_t buf[32], tid[12] = {0};
    for (unsigned method = 0; method < 0x1000; method += 37) {
        for (int cls = 0; cls < 4; cls++) {
            tern_wbuf_t w;
            tern_stun_writer_t sw;
            tern_wbuf_init(&w, NULL, buf, sizeof buf);
            tern_stun_writer_begin(&sw, &w, (tern_stun_class_t)cls, (uint16_t)method, tid);
            size_t len;
            tern_stun_msg_t m;
            if (tern_stun_writer_end(&sw, &len) != 0 || tern_stun_parse(buf, len, &m) != 0 ||
                m.method != method || (int)m.msg_class != cls) {
                ok(false);
                return;
            }
        }
    }
    /* Binding success response is 0x0101, error 0x0111, indication 0x0011. */
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_ERROR, TERN_STUN_BINDING, tid);
    eq_int(tern_load_u16(buf), 0x0111);
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_INDICATION, TERN_STUN_DATA, tid);
    eq_int(tern_load_u16(buf), 0x0017);
    ok(true);
}

int main(void)
{
    uint64_t seed = 1;
    tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
    tern_ctx_init_base(&ctx, &cfg);
    subtest("rfc5769 request", test_rfc5769_request);
    subtest("rfc5769 responses", test_rfc5769_responses);
    subtest("rfc5769 long-term", test_rfc5769_long_term);
    subtest("malformed", test_malformed);
    subtest("unknown and trailers", test_unknown_and_trailers);
    subtest("round trip", test_round_trip);
    subtest("writer errors", test_writer_errors);
    subtest("method and class bits", test_method_class_bits);
    return check_done();
}
