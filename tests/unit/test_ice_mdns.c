/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the mDNS message codec (src/ice/ice_mdns.c): the query tern sends, byte for
 * byte; answers shaped as Chromium's responder writes them (an A record with the cache-flush
 * bit and an NSEC record whose next name is a compression pointer; the negative answer with
 * the AAAA record in the additional section) and as Firefox's writes them (the query's ID, an
 * uncompressed name); compression written and read back; round trips; and malformed messages
 * refused at every truncation, with forward, self and looping pointers, pointers into the
 * header, over-long names, wrong RDATA sizes, reserved label types, non-zero OPCODE or RCODE
 * and lying counts, each input against a guard page, and the output untouched on failure.
 * The agent's resolver is tested in test_ice.c, over its simulated network.
 */
#include "check.h"
#include "guard.h"
#include "ice/ice_mdns.h"

#include <stdio.h>
#include <stdlib.h>

#define UUID_NAME "7a260010-c2e5-4c14-95ae-817e3b1311fc.local"

static tern_addr_t addr(const char *text)
{
    tern_addr_t a;
    if (tern_addr_parse(text, &a) != 0)
        abort();
    return a;
}

/* Parse with the input right before a guard page. */
static int parse(const uint8_t *data, size_t len, tern_mdns_msg_t *out)
{
    guarded_t g;
    const uint8_t *p = guard_copy(&g, data, len);
    int ret = tern_mdns_parse(p, len, out);
    guard_free(&g);
    return ret;
}

/* Append a dotted name in wire form (the test's own encoder, to check the library's). */
static size_t put_wire_name(uint8_t *p, const char *name)
{
    size_t n = 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        p[n++] = (uint8_t)l;
        memcpy(p + n, name, l);
        n += l;
        name += l + (dot ? 1 : 0);
    }
    p[n++] = 0;
    return n;
}

static size_t put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

static size_t put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
    return 4;
}

static size_t put_header(uint8_t *p, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
                         uint16_t ns, uint16_t ar)
{
    size_t n = put16(p, id);
    n += put16(p + n, flags);
    n += put16(p + n, qd);
    n += put16(p + n, an);
    n += put16(p + n, ns);
    n += put16(p + n, ar);
    return n;
}

/* A record header after its name: type, class, TTL, RDLENGTH. */
static size_t put_rr(uint8_t *p, uint16_t type, uint16_t rclass, uint32_t ttl, uint16_t rdlength)
{
    size_t n = put16(p, type);
    n += put16(p + n, rclass);
    n += put32(p + n, ttl);
    n += put16(p + n, rdlength);
    return n;
}

/* ------------------------------------------------------------------------------------------ */

static void test_query_bytes(void)
{
    uint8_t buf[TERN_MDNS_QUERY_MAX], want[TERN_MDNS_QUERY_MAX];
    int len = tern_mdns_write_query(buf, sizeof buf, 0, UUID_NAME, TERN_MDNS_TYPE_A, false);
    /* ID 0, no flags, one question; the name in full; type A, class IN without QU. */
    size_t n = put_header(want, 0, 0, 1, 0, 0, 0);
    n += put_wire_name(want + n, UUID_NAME);
    n += put16(want + n, TERN_MDNS_TYPE_A);
    n += put16(want + n, TERN_MDNS_CLASS_IN);
    eq_int(len, (int)n);
    eq_int(n, 12 + 1 + 36 + 1 + 5 + 1 + 4);
    ok(len > 0 && eq_mem(buf, want, n));

    /* It parses back as Chromium's DnsQuery::Parse wants it: one question, class exactly IN. */
    tern_mdns_msg_t m;
    eq_int(parse(buf, (size_t)len, &m), 0);
    ok(!m.is_response);
    eq_int(m.qdcount, 1);
    eq_int(m.question_count, 1);
    eq_str(m.questions[0].name, UUID_NAME);
    eq_int(m.questions[0].type, TERN_MDNS_TYPE_A);
    eq_int(m.questions[0].qclass, TERN_MDNS_CLASS_IN);
    ok(!m.questions[0].unicast_response);

    /* The QU bit, a trailing dot, an ID. */
    len = tern_mdns_write_query(buf, sizeof buf, 0x1234, "host.local.", TERN_MDNS_TYPE_AAAA, true);
    eq_int(len, 12 + 12 + 4);
    eq_int(parse(buf, (size_t)len, &m), 0);
    eq_int(m.id, 0x1234);
    eq_str(m.questions[0].name, "host.local");
    eq_int(m.questions[0].type, TERN_MDNS_TYPE_AAAA);
    eq_int(m.questions[0].qclass, TERN_MDNS_CLASS_IN);
    ok(m.questions[0].unicast_response);
    eq_int(buf[len - 2], 0x80);

    /* The longest name fits TERN_MDNS_QUERY_MAX: 3 labels of 63 and one of 61 (255 bytes). */
    char longest[300];
    memset(longest, 'a', sizeof longest);
    longest[63] = longest[127] = longest[191] = '.';
    longest[253] = '\0';
    len = tern_mdns_write_query(buf, sizeof buf, 0, longest, TERN_MDNS_TYPE_A, false);
    eq_int(len, TERN_MDNS_QUERY_MAX);
    eq_int(parse(buf, (size_t)len, &m), 0);
    eq_str(m.questions[0].name, longest);
    eq_int(tern_mdns_write_query(buf, (size_t)len - 1, 0, longest, TERN_MDNS_TYPE_A, false),
           TERN_ERR_TOO_LARGE);
    longest[253] = 'a';
    longest[254] = '\0'; /* 256 bytes in wire form */
    eq_int(tern_mdns_write_query(buf, sizeof buf, 0, longest, TERN_MDNS_TYPE_A, false),
           TERN_ERR_INVALID_ARG);
}

static void test_query_bad_names(void)
{
    uint8_t buf[TERN_MDNS_QUERY_MAX];
    char label64[80];
    memset(label64, 'x', 64);
    strcpy(label64 + 64, ".local");
    const char *bad[] = {"a..local", ".local",          "..",           "a.local..",
                         label64,    "tab\there.local", "del\x7f.local"};
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad); i++)
        eq_int(tern_mdns_write_query(buf, sizeof buf, 0, bad[i], TERN_MDNS_TYPE_A, false),
               TERN_ERR_INVALID_ARG);
    eq_int(tern_mdns_write_query(buf, sizeof buf, 0, NULL, TERN_MDNS_TYPE_A, false),
           TERN_ERR_INVALID_ARG);
    /* 63 is the longest label. */
    label64[63] = '\0';
    ok(tern_mdns_write_query(buf, sizeof buf, 0, label64, TERN_MDNS_TYPE_A, false) > 0);
}

/* Chromium's CreateResolutionResponse: ID 0, QR and AA, the A record (cache-flush, TTL 120),
 * and an NSEC record for the same name whose next-domain name is a pointer to it. */
static size_t chromium_answer(uint8_t *b, const char *name, const uint8_t ip[4])
{
    size_t n = put_header(b, 0, 0x8400, 0, 1, 0, 1);
    size_t name_at = n;
    n += put_wire_name(b + n, name);
    n += put_rr(b + n, TERN_MDNS_TYPE_A, 0x8001, 120, 4);
    memcpy(b + n, ip, 4);
    n += 4;
    b[n++] = (uint8_t)(0xC0 | name_at >> 8);
    b[n++] = (uint8_t)name_at;
    n += put_rr(b + n, 47, 0x8001, 120, 5);
    b[n++] = (uint8_t)(0xC0 | name_at >> 8);
    b[n++] = (uint8_t)name_at;
    memcpy(b + n, "\x00\x01\x40", 3);
    return n + 3;
}

static void test_chromium_answer(void)
{
    static const uint8_t ip[4] = {192, 168, 1, 20};
    uint8_t b[512];
    size_t n = chromium_answer(b, UUID_NAME, ip);
    tern_mdns_msg_t m;
    eq_int(parse(b, n, &m), 0);
    ok(m.is_response);
    eq_int(m.id, 0);
    eq_int(m.ancount, 1);
    eq_int(m.arcount, 1);
    eq_int(m.record_count, 1);
    eq_int(m.skipped, 1); /* the NSEC record */
    const tern_mdns_record_t *r = &m.records[0];
    eq_str(r->name, UUID_NAME);
    eq_int(r->type, TERN_MDNS_TYPE_A);
    eq_int(r->rclass, TERN_MDNS_CLASS_IN);
    ok(r->cache_flush);
    eq_int(r->ttl, 120);
    eq_int(r->section, TERN_MDNS_SECTION_ANSWER);
    tern_addr_t want = addr("192.168.1.20");
    ok(tern_addr_equal(&r->addr, &want));

    /* Chromium's CreateNegativeResponse to an A question for an IPv6 name: the NSEC record
     * answers, and the AAAA record comes in the additional section. */
    n = put_header(b, 0, 0x8400, 0, 1, 0, 1);
    size_t name_at = n;
    n += put_wire_name(b + n, UUID_NAME);
    n += put_rr(b + n, 47, 0x8001, 120, 8);
    b[n++] = 0xC0;
    b[n++] = (uint8_t)name_at;
    memcpy(b + n, "\x00\x04\x00\x00\x00\x08", 6);
    n += 6;
    b[n++] = 0xC0;
    b[n++] = (uint8_t)name_at;
    n += put_rr(b + n, TERN_MDNS_TYPE_AAAA, 0x8001, 120, 16);
    tern_addr_t v6 = addr("2001:db8::20");
    memcpy(b + n, v6.ip, 16);
    n += 16;
    eq_int(parse(b, n, &m), 0);
    eq_int(m.record_count, 1);
    eq_int(m.records[0].type, TERN_MDNS_TYPE_AAAA);
    eq_int(m.records[0].section, TERN_MDNS_SECTION_ADDITIONAL);
    eq_str(m.records[0].name, UUID_NAME);
    ok(tern_addr_equal(&m.records[0].addr, &v6));
}

static void test_firefox_answer(void)
{
    /* Firefox's create_answer: the query's ID, QR and AA, no question, each name in full. */
    uint8_t b[512];
    size_t n = put_header(b, 0x0000, 0x8400, 0, 2, 0, 0);
    n += put_wire_name(b + n, "0c9afb1a-14ef-4c85-aea3-7024d6c29e7d.local");
    n += put_rr(b + n, TERN_MDNS_TYPE_A, 0x8001, 120, 4);
    memcpy(b + n, "\x0a\x00\x00\x02", 4);
    n += 4;
    n += put_wire_name(b + n, "a1418946-b250-4113-aee5-3560ff386b12.local");
    n += put_rr(b + n, TERN_MDNS_TYPE_AAAA, 0x8001, 120, 16);
    tern_addr_t v6 = addr("fd00::2");
    memcpy(b + n, v6.ip, 16);
    n += 16;
    tern_mdns_msg_t m;
    eq_int(parse(b, n, &m), 0);
    eq_int(m.record_count, 2);
    eq_int(m.skipped, 0);
    eq_str(m.records[1].name, "a1418946-b250-4113-aee5-3560ff386b12.local");
    ok(tern_addr_equal(&m.records[1].addr, &v6));
    /* Bytes after the last record are ignored. */
    b[n] = 0xEE;
    eq_int(parse(b, n + 1, &m), 0);
}

static tern_mdns_record_t record(const char *name, const char *ip, tern_mdns_section_t section,
                                 uint32_t ttl)
{
    tern_mdns_record_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", name);
    r.addr = addr(ip);
    r.type = r.addr.family == TERN_AF_INET ? TERN_MDNS_TYPE_A : TERN_MDNS_TYPE_AAAA;
    r.rclass = TERN_MDNS_CLASS_IN;
    r.cache_flush = true;
    r.ttl = ttl;
    r.section = section;
    return r;
}

static bool same_record(const tern_mdns_record_t *a, const tern_mdns_record_t *b)
{
    return strcmp(a->name, b->name) == 0 && a->type == b->type && a->rclass == b->rclass &&
           a->cache_flush == b->cache_flush && a->ttl == b->ttl && a->section == b->section &&
           tern_addr_equal(&a->addr, &b->addr);
}

static void test_response_round_trip(void)
{
    tern_mdns_record_t recs[4] = {
        record(UUID_NAME, "10.1.2.3", TERN_MDNS_SECTION_ADDITIONAL, 120),
        record(UUID_NAME, "2001:db8::1", TERN_MDNS_SECTION_ANSWER, 120),
        record("other.local", "10.9.9.9", TERN_MDNS_SECTION_AUTHORITY, 0),
        record(UUID_NAME, "10.1.2.4", TERN_MDNS_SECTION_ANSWER, 4500),
    };
    recs[2].cache_flush = false;
    /* Written section by section: answers (1, 3), authority (2), additional (0). */
    static const int order[4] = {1, 3, 2, 0};
    uint8_t plain[1024], packed[1024];
    int lp = tern_mdns_write_response(plain, sizeof plain, 7, recs, 4, false);
    int lc = tern_mdns_write_response(packed, sizeof packed, 7, recs, 4, true);
    ok(lp > 0 && lc > 0);
    /* Compression saves the name twice: 44 wire bytes each, a 2-byte pointer instead. */
    eq_int(lp - lc, 2 * (44 - 2));
    for (int k = 0; k < 2; k++) {
        tern_mdns_msg_t m;
        eq_int(parse(k ? packed : plain, (size_t)(k ? lc : lp), &m), 0);
        ok(m.is_response);
        eq_int(m.flags, 0x8400);
        eq_int(m.id, 7);
        eq_int(m.ancount, 2);
        eq_int(m.nscount, 1);
        eq_int(m.arcount, 1);
        eq_int(m.record_count, 4);
        for (int i = 0; i < 4; i++)
            ok(same_record(&m.records[i], &recs[order[i]]));
    }
    /* Exact fit, one byte short. */
    uint8_t small[1024];
    eq_int(tern_mdns_write_response(small, (size_t)lc, 7, recs, 4, true), lc);
    eq_int(tern_mdns_write_response(small, (size_t)lc - 1, 7, recs, 4, true), TERN_ERR_TOO_LARGE);
    /* A type that does not match the address, a bad name. */
    recs[0].type = TERN_MDNS_TYPE_AAAA;
    eq_int(tern_mdns_write_response(small, sizeof small, 0, recs, 1, false), TERN_ERR_INVALID_ARG);
    recs[0] = record("bad..local", "10.0.0.1", TERN_MDNS_SECTION_ANSWER, 1);
    eq_int(tern_mdns_write_response(small, sizeof small, 0, recs, 1, false), TERN_ERR_INVALID_ARG);
    /* No record at all. */
    eq_int(tern_mdns_write_response(small, sizeof small, 0, NULL, 0, false), 12);
}

static void test_caps_and_skips(void)
{
    /* 20 A records, an OPT record (root name), a TXT record, and a name with a dot inside a
     * label: all checked, 16 kept. */
    uint8_t b[2048];
    size_t n = put_header(b, 0, 0x8400, 6, 20, 0, 3);
    for (int i = 0; i < 6; i++) {
        n += put_wire_name(b + n, "q.local");
        n += put16(b + n, TERN_MDNS_TYPE_ANY);
        n += put16(b + n, i == 0 ? 0x8001 : 1);
    }
    for (int i = 0; i < 20; i++) {
        n += put_wire_name(b + n, "many.local");
        n += put_rr(b + n, TERN_MDNS_TYPE_A, 1, (uint32_t)i, 4);
        memcpy(b + n, "\x0a\x00\x00\x01", 4);
        n += 4;
    }
    b[n++] = 0; /* OPT (RFC 6891): root name, class = UDP payload size */
    n += put_rr(b + n, 41, 1440, 0, 0);
    n += put_wire_name(b + n, "t.local");
    n += put_rr(b + n, 16, 1, 10, 3);
    memcpy(b + n, "\x02hi", 3);
    n += 3;
    memcpy(b + n,
           "\x03"
           "a.b"
           "\x05local\x00",
           11); /* "a.b" is one label */
    n += 11;
    n += put_rr(b + n, TERN_MDNS_TYPE_A, 1, 10, 4);
    memcpy(b + n, "\x0a\x00\x00\x02", 4);
    n += 4;
    tern_mdns_msg_t m;
    eq_int(parse(b, n, &m), 0);
    eq_int(m.question_count, TERN_MDNS_MAX_QUESTIONS);
    ok(m.questions[0].unicast_response);
    eq_int(m.record_count, TERN_MDNS_MAX_RECORDS);
    eq_int(m.skipped, 2 + 4 + 3);
    eq_int(m.records[15].ttl, 15);
    /* A CHAOS-class record of type A is not an address: skipped, whatever its size. */
    n = put_header(b, 0, 0x8400, 0, 1, 0, 0);
    n += put_wire_name(b + n, "c.local");
    n += put_rr(b + n, TERN_MDNS_TYPE_A, 3, 10, 2);
    n += put16(b + n, 7);
    eq_int(parse(b, n, &m), 0);
    eq_int(m.record_count, 0);
    eq_int(m.skipped, 1);
}

/* Every strict prefix of a valid message is refused, and the output is left alone. */
static void check_truncations(const uint8_t *b, size_t n)
{
    tern_mdns_msg_t m, before;
    memset(&m, 0x5A, sizeof m);
    before = m;
    for (size_t len = 0; len < n; len++)
        if (parse(b, len, &m) != TERN_ERR_PARSE)
            printf("# prefix of %zu bytes accepted\n", len), ok(false);
    ok(memcmp(&m, &before, sizeof m) == 0);
    ok(parse(b, n, &m) == 0);
}

static void test_truncations(void)
{
    static const uint8_t ip[4] = {10, 0, 0, 1};
    uint8_t b[512];
    check_truncations(b, chromium_answer(b, UUID_NAME, ip));
    int len = tern_mdns_write_query(b, sizeof b, 0, UUID_NAME, TERN_MDNS_TYPE_A, false);
    check_truncations(b, (size_t)len);
}

static void expect_refused(const char *what, const uint8_t *b, size_t n)
{
    tern_mdns_msg_t m;
    memset(&m, 0x5A, sizeof m);
    tern_mdns_msg_t before = m;
    int ret = parse(b, n, &m);
    if (ret != TERN_ERR_PARSE)
        printf("# accepted: %s\n", what);
    eq_int(ret, TERN_ERR_PARSE);
    ok(memcmp(&m, &before, sizeof m) == 0);
}

/* A response with one A record whose name is given as raw bytes. */
static size_t answer_with_name(uint8_t *b, const uint8_t *name, size_t name_len)
{
    size_t n = put_header(b, 0, 0x8400, 0, 1, 0, 0);
    memcpy(b + n, name, name_len);
    n += name_len;
    n += put_rr(b + n, TERN_MDNS_TYPE_A, 1, 10, 4);
    memcpy(b + n, "\x0a\x00\x00\x01", 4);
    return n + 4;
}

static void test_malformed(void)
{
    uint8_t b[2048];
    size_t n;

    /* Pointers: to itself, forward, into the header, and a pair pointing at each other. */
    static const uint8_t self[] = {0xC0, 12};
    expect_refused("self pointer", b, answer_with_name(b, self, sizeof self));
    static const uint8_t forward[] = {0xC0, 14, 1, 'a', 0};
    expect_refused("forward pointer", b, answer_with_name(b, forward, sizeof forward));
    static const uint8_t header[] = {1, 'a', 0xC0, 4};
    expect_refused("pointer into the header", b, answer_with_name(b, header, sizeof header));
    /* Question name at 12 points to 18; the record's name at 18 points back to 12. */
    n = put_header(b, 0, 0x8400, 1, 1, 0, 0);
    b[n++] = 0xC0;
    b[n++] = 18;
    n += put16(b + n, 1);
    n += put16(b + n, 1);
    b[n++] = 0xC0;
    b[n++] = 12;
    n += put_rr(b + n, TERN_MDNS_TYPE_A, 1, 10, 4);
    memcpy(b + n, "\x0a\x00\x00\x01", 4);
    expect_refused("pointer loop", b, n + 4);
    static const uint8_t half_pointer[] = {0xC0};
    n = put_header(b, 0, 0x8400, 0, 0, 0, 1);
    memcpy(b + n, half_pointer, 1);
    expect_refused("half a pointer", b, n + 1);

    /* Reserved label types 01 and 10 (RFC 6891 §5). */
    static const uint8_t ext1[] = {0x41, 'a', 0};
    expect_refused("label type 01", b, answer_with_name(b, ext1, sizeof ext1));
    static const uint8_t ext2[] = {0x81, 'a', 0};
    expect_refused("label type 10", b, answer_with_name(b, ext2, sizeof ext2));

    /* Names of 256 and 257 wire bytes, a label before a pointer to a question's 253-byte name;
     * 255 is the limit. */
    for (size_t prefix = 1; prefix <= 3; prefix++) {
        n = put_header(b, 0, 0x8400, 1, 1, 0, 0);
        size_t start = n;
        for (int i = 0; i < 4; i++) {
            size_t l = i < 3 ? 63 : 59;
            b[n++] = (uint8_t)l;
            memset(b + n, 'a' + i, l);
            n += l;
        }
        b[n++] = 0;
        n += put16(b + n, TERN_MDNS_TYPE_A);
        n += put16(b + n, TERN_MDNS_CLASS_IN);
        b[n++] = (uint8_t)prefix;
        memset(b + n, 'p', prefix);
        n += prefix;
        b[n++] = (uint8_t)(0xC0 | start >> 8);
        b[n++] = (uint8_t)start;
        n += put_rr(b + n, TERN_MDNS_TYPE_A, 1, 10, 4);
        memcpy(b + n, "\x0a\x00\x00\x01", 4);
        n += 4;
        if (prefix == 1) {
            tern_mdns_msg_t m;
            eq_int(parse(b, n, &m), 0);
            eq_int(strlen(m.records[0].name), TERN_MDNS_NAME_MAX);
        } else {
            expect_refused("name over 255 bytes", b, n);
        }
    }

    /* Address records of the wrong size. */
    n = put_header(b, 0, 0x8400, 0, 1, 0, 0);
    n += put_wire_name(b + n, "x.local");
    n += put_rr(b + n, TERN_MDNS_TYPE_A, 0x8001, 10, 5);
    memset(b + n, 1, 5);
    expect_refused("A of 5 bytes", b, n + 5);
    n = put_header(b, 0, 0x8400, 0, 1, 0, 0);
    n += put_wire_name(b + n, "x.local");
    n += put_rr(b + n, TERN_MDNS_TYPE_AAAA, 1, 10, 4);
    memset(b + n, 1, 4);
    expect_refused("AAAA of 4 bytes", b, n + 4);
    /* RDLENGTH past the end. */
    n = put_header(b, 0, 0x8400, 0, 1, 0, 0);
    n += put_wire_name(b + n, "x.local");
    n += put_rr(b + n, 16, 1, 10, 40);
    memset(b + n, 1, 39);
    expect_refused("RDATA past the end", b, n + 39);

    /* OPCODE and RCODE must be zero (RFC 6762 §18.3, §18.11). */
    static const uint8_t ip[4] = {10, 0, 0, 1};
    n = chromium_answer(b, "a.local", ip);
    b[2] |= 0x08; /* OPCODE 1 */
    expect_refused("opcode 1", b, n);
    b[2] &= (uint8_t)~0x08;
    b[3] |= 0x03; /* RCODE 3 */
    expect_refused("rcode 3", b, n);
    b[3] &= (uint8_t)~0x03;
    ok(parse(b, n, NULL) == TERN_ERR_INVALID_ARG);
    /* Counts that cannot fit the message. */
    b[7] = 200;
    expect_refused("ancount 200", b, n);
    memset(b, 0xFF, 12);
    expect_refused("all counts 65535", b, 12);
    expect_refused("short header", b, 11);
    eq_int(tern_mdns_parse(NULL, 0, NULL), TERN_ERR_INVALID_ARG);
}

static void test_names(void)
{
    ok(tern_mdns_name_equal("AbC.Local", "abc.local."));
    ok(tern_mdns_name_equal("", "."));
    ok(!tern_mdns_name_equal("abc.local", "abd.local"));
    ok(!tern_mdns_name_equal("abc.local", "abc.locals"));
    ok(tern_mdns_is_local_name(UUID_NAME));
    ok(tern_mdns_is_local_name("x.LOCAL."));
    ok(!tern_mdns_is_local_name("local"));
    ok(!tern_mdns_is_local_name(".local"));
    ok(!tern_mdns_is_local_name("a..local"));
    ok(!tern_mdns_is_local_name("example.com"));
    ok(!tern_mdns_is_local_name("notlocal"));
    ok(!tern_mdns_is_local_name("x.local.com"));
    ok(!tern_mdns_is_local_name(NULL));
    /* A record's name matched without case. */
    static const uint8_t ip[4] = {10, 0, 0, 1};
    uint8_t b[512];
    size_t n = chromium_answer(b, "7A260010-C2E5-4C14-95AE-817E3B1311FC.LOCAL", ip);
    tern_mdns_msg_t m;
    eq_int(parse(b, n, &m), 0);
    ok(tern_mdns_name_equal(m.records[0].name, UUID_NAME));
}

int main(void)
{
    subtest("query bytes", test_query_bytes);
    subtest("query bad names", test_query_bad_names);
    subtest("chromium answers", test_chromium_answer);
    subtest("firefox answer", test_firefox_answer);
    subtest("response round trip", test_response_round_trip);
    subtest("caps and skips", test_caps_and_skips);
    subtest("truncations", test_truncations);
    subtest("malformed", test_malformed);
    subtest("names", test_names);
    return check_done();
}
