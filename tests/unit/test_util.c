/* SPDX-License-Identifier: MIT */
/* Unit tests of util/: cursors, encodings, checksums, addresses, the transmit queue, rng. */
#include "check.h"
#include "guard.h"
#include "util/util.h"

#include <stdlib.h>

static tern_ctx_t ctx;

static void test_rbuf(void)
{
    static const uint8_t data[] = {1, 2, 3, 4, 5, 6, 7};
    guarded_t g;
    const uint8_t *p = guard_copy(&g, data, sizeof data);
    tern_rbuf_t r;
    tern_rbuf_init(&r, p, sizeof data);
    eq_int(tern_rbuf_u8(&r), 1);
    eq_int(tern_rbuf_u16(&r), 0x0203);
    eq_int(tern_rbuf_u32(&r), 0x04050607);
    ok(!r.err);
    eq_int(tern_rbuf_u8(&r), 0);
    ok(r.err);
    eq_int(tern_rbuf_left(&r), 0);
    tern_rbuf_init(&r, p, sizeof data);
    tern_rbuf_t sub = tern_rbuf_sub(&r, 3);
    eq_int(tern_rbuf_u24(&sub), 0x010203);
    ok(!sub.err);
    tern_rbuf_t bad = tern_rbuf_sub(&r, 100);
    ok(bad.err && r.err);
    guard_free(&g);
}

static void test_wbuf(void)
{
    uint8_t small[4];
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, small, sizeof small);
    tern_wbuf_u32(&w, 0xdeadbeef);
    ok(!w.err);
    tern_wbuf_u8(&w, 1);
    ok(w.err); /* fixed storage never grows */

    tern_wbuf_init(&w, &ctx, small, sizeof small);
    tern_wbuf_u16(&w, 0x0102);
    tern_wbuf_printf(&w, "x=%d", 12345);
    tern_wbuf_u64(&w, 0x1122334455667788ull);
    ok(!w.err && w.on_heap);
    eq_int(w.len, 2 + 7 + 8);
    eq_mem(w.base + 2, "x=12345", 7);
    tern_wbuf_put_u16_at(&w, 0, 0xabcd);
    eq_int(tern_load_u16(w.base), 0xabcd);
    tern_wbuf_dispose(&w);
}

static void test_base64_hex(void)
{
    char out[64];
    uint8_t back[64];
    /* RFC 4648 §10 vectors */
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        tern_base64_encode((const uint8_t *)plain[i], strlen(plain[i]), out);
        eq_str(out, coded[i]);
        long n = tern_base64_decode(coded[i], strlen(coded[i]), back, sizeof back);
        eq_int(n, (long)strlen(plain[i]));
        ok(memcmp(back, plain[i], (size_t)n) == 0);
    }
    eq_int(tern_base64_decode("Zm9", 3, back, sizeof back), -1);
    eq_int(tern_base64_decode("Z=9v", 4, back, sizeof back), -1);
    eq_int(tern_base64_decode("Zm9vYmFy", 8, back, 5), -1);

    const uint8_t fp[] = {0xab, 0x01, 0xff};
    tern_hex_colon_encode(fp, 3, out);
    eq_str(out, "AB:01:FF");
    eq_int(tern_hex_colon_decode("ab:01:FF", 8, back, sizeof back), 3);
    ok(memcmp(back, fp, 3) == 0);
    eq_int(tern_hex_colon_decode("ab:0", 4, back, sizeof back), -1);
    eq_int(tern_hex_colon_decode("ab01", 4, back, sizeof back), -1);
    eq_int(tern_hex_colon_decode("", 0, back, sizeof back), -1);
}

static void test_crc(void)
{
    /* The standard check values of both polynomials. */
    eq_int(tern_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
    eq_int(tern_crc32c((const uint8_t *)"123456789", 9), 0xE3069283u);
    ok(tern_ct_equal("abc", "abc", 3));
    ok(!tern_ct_equal("abc", "abd", 3));
}

static void test_addr(void)
{
    tern_addr_t a, b;
    char buf[TERN_ADDR_STRLEN];
    eq_int(tern_addr_parse("192.0.2.1:3478", &a), 0);
    eq_int(a.family, TERN_AF_INET);
    eq_int(a.port, 3478);
    eq_str(tern_addr_format(&a, buf, sizeof buf), "192.0.2.1:3478");
    eq_int(tern_addr_parse("[2001:db8::1]:5000", &b), 0);
    eq_int(b.family, TERN_AF_INET6);
    eq_str(tern_addr_format(&b, buf, sizeof buf), "[2001:db8::1]:5000");
    eq_int(tern_addr_parse("fe80::1%3", &b), 0);
    eq_int(b.scope_id, 3);
    eq_int(b.port, 0);
    eq_int(tern_addr_parse("::1", &b), 0);
    ok(!tern_addr_equal(&a, &b));
    eq_int(tern_addr_parse("1.2.3.4:99999", &a), TERN_ERR_PARSE);
    eq_int(tern_addr_parse("nonsense", &a), TERN_ERR_PARSE);
    eq_int(tern_addr_parse("[::1", &a), TERN_ERR_PARSE);
}

static void test_txq(void)
{
    tern_txq_t q;
    tern_addr_t l = {.family = TERN_AF_INET, .port = 1}, r = {.family = TERN_AF_INET, .port = 2};
    tern_txq_init(&q, &ctx, 3);
    uint8_t big[5000];
    memset(big, 7, sizeof big);
    eq_int(tern_txq_push(&q, &l, &r, (const uint8_t *)"a", 1), 0);
    eq_int(tern_txq_push(&q, &l, &r, big, sizeof big), 0);
    eq_int(tern_txq_push(&q, &l, &r, (const uint8_t *)"", 0), 0);
    eq_int(tern_txq_push(&q, &l, &r, (const uint8_t *)"x", 1), TERN_ERR_AGAIN);
    tern_transmit_t t;
    ok(tern_txq_pop(&q, &t));
    ok(t.len == 1 && t.data[0] == 'a' && t.remote.port == 2);
    ok(tern_txq_pop(&q, &t));
    ok(t.len == sizeof big && memcmp(t.data, big, sizeof big) == 0);
    eq_int(tern_txq_push(&q, &l, &r, (const uint8_t *)"b", 1), 0);
    ok(tern_txq_pop(&q, &t) && t.len == 0);
    ok(tern_txq_pop(&q, &t) && t.len == 1 && t.data[0] == 'b');
    ok(!tern_txq_pop(&q, &t));
    /* Headroom is writable in front of the data (TURN framing in place). */
    uint8_t *p = tern_txq_reserve(&q, 10);
    memcpy(p, "0123456789", 10);
    memset(p - TERN_TX_HEADROOM, 0, TERN_TX_HEADROOM);
    tern_txq_commit(&q, 10, &l, &r);
    eq_int(tern_txq_count(&q), 1);
    tern_txq_dispose(&q);

    /* The ring starts small and grows as needed, keeping the order across a wrapped head. */
    tern_txq_init(&q, &ctx, 100);
    uint8_t v = 0, want = 0;
    bool in_order = true;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++, v++)
            eq_int(tern_txq_push(&q, &l, &r, &v, 1), 0);
        for (int i = 0; i < 3; i++, want++)
            in_order = in_order && tern_txq_pop(&q, &t) && t.len == 1 && t.data[0] == want;
    }
    ok(q.cap <= 8);
    for (int i = 0; i < 97; i++, v++)
        eq_int(tern_txq_push(&q, &l, &r, &v, 1), 0);
    eq_int(tern_txq_count(&q), 100);
    eq_int(q.cap, 100);
    eq_int(tern_txq_push(&q, &l, &r, &v, 1), TERN_ERR_AGAIN);
    while (tern_txq_pop(&q, &t))
        in_order = in_order && t.len == 1 && t.data[0] == want++;
    ok(in_order);
    eq_int(want, 109);
    /* A burst left a big ring and pooled buffers; a few quiet rounds give them back. */
    ok(q.cap == 100 && q.pool_count > 0);
    for (int i = 0; i < 4; i++) {
        eq_int(tern_txq_push(&q, &l, &r, &v, 1), 0);
        ok(tern_txq_pop(&q, &t) && t.data[0] == v); /* still readable after the queue emptied */
        ok(!tern_txq_pop(&q, &t));
    }
    eq_int(q.cap, 0);
    eq_int(q.pool_count, 0);
    ok(q.ring == NULL && q.pool == NULL && q.last_popped.buf == NULL && q.spare != NULL);
    /* One datagram at a time reuses the spare: nothing is allocated. */
    uint8_t *spare = q.spare;
    for (int i = 0; i < 20; i++) {
        eq_int(tern_txq_push(&q, &l, &r, &v, 1), 0);
        ok(tern_txq_pop(&q, &t) && t.data == spare + TERN_TX_HEADROOM);
    }
    /* Busy rounds (peaks over the small size) keep them. */
    for (int i = 0; i < 8; i++) {
        for (int k = 0; k < 20; k++)
            eq_int(tern_txq_push(&q, &l, &r, &v, 1), 0);
        while (tern_txq_pop(&q, &t))
            ;
    }
    eq_int(q.cap, 32);
    ok(q.spare && q.pool_count + 1 >= 20);
    tern_txq_dispose(&q);
}

static void test_rng(void)
{
    uint64_t seed = 42;
    tern_ctx_t seeded = ctx;
    seeded.random_bytes = tern_splitmix_random_bytes;
    seeded.random_user = &seed;
    uint32_t first = tern_random_u32(&seeded);
    seed = 42;
    eq_int(tern_random_u32(&seeded), first);
    char ufrag[17];
    tern_random_ice_chars(&seeded, ufrag, 16);
    eq_int(strlen(ufrag), 16);
    for (int i = 0; i < 1000; i++)
        ok(tern_random_below(&seeded, 7) < 7);
}

static void test_names(void)
{
    eq_str(tern_strerror(TERN_ERR_INVALID_STATE), "invalid state");
    eq_str(tern_err_name(TERN_ERR_PARSE), "TERN_ERR_PARSE");
    eq_str(tern_err_name(-999), "TERN_ERR_UNKNOWN");
    eq_str(tern_signaling_state_name(TERN_SIGNALING_HAVE_LOCAL_OFFER), "have-local-offer");
    eq_str(tern_ice_state_name(TERN_ICE_STATE_COMPLETED), "completed");
    tern_sdp_type_t t;
    eq_int(tern_sdp_type_parse("answer", &t), 0);
    eq_int(t, TERN_SDP_ANSWER);
    eq_int(tern_sdp_type_parse("bogus", &t), TERN_ERR_PARSE);
}

int main(void)
{
    tern_ctx_init_base(&ctx, NULL);
    subtest("rbuf", test_rbuf);
    subtest("wbuf", test_wbuf);
    subtest("base64 and hex", test_base64_hex);
    subtest("crc", test_crc);
    subtest("addr", test_addr);
    subtest("txq", test_txq);
    subtest("rng", test_rng);
    subtest("names", test_names);
    return check_done();
}
