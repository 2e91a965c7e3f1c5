/* SPDX-License-Identifier: MIT */
/*
 * Attacks on peer connections over real UDP sockets on loopback (issue 5), end to end, beyond
 * the unit tests of each layer: a raw UDP socket plays the attacker against a connected pc A
 * (its peer B, and a bystander pair C-D on the same context, keep exchanging messages):
 * - STUN checks with a wrong password or an unknown ufrag (401, no integrity), without
 *   credentials (400), with a bad FINGERPRINT (silence), and a flood of them;
 * - role conflicts from someone who knows the credentials (a rogue signaling party): a lower
 *   tie-breaker gets 487, a higher one makes A yield its role, and the pair sorts it out;
 * - DTLS records from an address ICE never validated, before ICE is connected and after
 *   (dropped: RFC 8445 §12, only a checked path carries DTLS);
 * - SCTP garbage from the peer inside DTLS (B is driven here, so its DTLS session can carry
 *   anything): random bytes, a wrong verification tag (RFC 4960 §8.5: discarded), malformed
 *   chunks, a message over A's max-message-size (dropped whole) and finally an ABORT (the
 *   channel closes with an event, nothing else is disturbed);
 * - a remote description with 10,000 candidates, and one with a line of 1 MB; 10,000
 *   trickled candidates.
 * After each: A-B still carry messages (unless the attack ended them, which must then show as
 * events), C-D are untouched, A never sends anything but STUN answers to the attacker, and the
 * whole run is leak-free under ASan.
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>

#include "test_attack_net.h"

static void test_stun_attacks(void)
{
    node_t a, b, c, d;
    tern_pc_config_t cfg = {0};
    node_new(&a, "A", &cfg);
    node_new(&b, "B", &cfg);
    node_new(&c, "C", &cfg);
    node_new(&d, "D", &cfg);
    ok(connect_pair(&a, &b));
    ok(connect_pair(&c, &d));
    attacker = udp_bind(&attacker_addr);
    attacker_got = attacker_got_other = 0;
    const char *a_ufrag = tern_ice_local_ufrag(a.pc->ice), *a_pwd = tern_ice_local_pwd(a.pc->ice);
    const char *b_ufrag = tern_ice_local_ufrag(b.pc->ice);
    char user[128], wrong_user[128];
    snprintf(user, sizeof user, "%s:%s", a_ufrag, b_ufrag);
    snprintf(wrong_user, sizeof wrong_user, "nobody:%s", b_ufrag);
    tern_pc_stats_t before, after;
    tern_pc_get_stats(a.pc, &before);
    uint8_t req[512];
    size_t len;
    bool mi = true;

    /* wrong password, unknown ufrag: 401 without integrity (RFC 8489 §9.1.3) */
    len = build_check(req, sizeof req, user, "not-the-password-at-all", true, 1, false);
    eq_int(check_answer(&a, req, len, &mi), TERN_STUN_ERR_UNAUTHORIZED);
    ok(!mi);
    len = build_check(req, sizeof req, wrong_user, a_pwd, true, 1, false);
    eq_int(check_answer(&a, req, len, &mi), TERN_STUN_ERR_UNAUTHORIZED);
    /* no credentials at all: 400 */
    len = build_check(req, sizeof req, NULL, NULL, true, 1, false);
    eq_int(check_answer(&a, req, len, &mi), TERN_STUN_ERR_BAD_REQUEST);
    /* a bad FINGERPRINT: not STUN as far as A is concerned, no answer */
    len = build_check(req, sizeof req, user, a_pwd, true, 1, true);
    eq_int(check_answer(&a, req, len, NULL), -1);
    /* a flood of 10,000 bad checks: A answers what it answers, B and C-D go on */
    for (int i = 0; i < 10000; i++) {
        len = build_check(req, sizeof req, user, "wrong", i & 1, (uint64_t)i, i % 3 == 0);
        send_to(attacker, &a.addr, req, len);
        if (i % 500 == 0)
            run(5, NULL, NULL);
    }
    run(200, NULL, NULL);
    tern_pc_get_stats(a.pc, &after);
    ok(after.datagrams_dropped >= before.datagrams_dropped + 4);
    ok(talk(&a, &b, 20));
    ok(talk(&c, &d, 20));
    ok(selected_is(&a, &b));

    /* Role conflicts from someone who knows the credentials (RFC 8445 §7.3.1.1). A offered, so
     * it is controlling: a lower tie-breaker is told 487, a higher one makes A controlled. */
    bool a_controlling = a.pc->ice && tern_ice_is_controlling(a.pc->ice);
    ok(a_controlling);
    len = build_check(req, sizeof req, user, a_pwd, true, 0, false);
    eq_int(check_answer(&a, req, len, &mi), TERN_STUN_ERR_ROLE_CONFLICT);
    ok(mi);
    ok(tern_ice_is_controlling(a.pc->ice));
    len = build_check(req, sizeof req, user, a_pwd, true, UINT64_MAX, false);
    eq_int(check_answer(&a, req, len, &mi), 0);
    ok(!tern_ice_is_controlling(a.pc->ice));
    /* A and B are both controlled now: their next checks sort it out, and data still flows */
    run(3000, NULL, NULL);
    ok(tern_ice_is_controlling(a.pc->ice) != tern_ice_is_controlling(b.pc->ice));
    ok(talk(&a, &b, 20));
    ok(talk(&b, &a, 20));
    eq_int(tern_pc_connection_state(a.pc), TERN_PC_STATE_CONNECTED);
    ok(talk(&c, &d, 5));
    /* only STUN ever went to the attacker */
    read_attacker();
    ok(attacker_got > 0);
    eq_int(attacker_got_other, 0);

    close(attacker);
    attacker = -1;
    memset(&attacker_addr, 0, sizeof attacker_addr);
    node_free(&a);
    node_free(&b);
    node_free(&c);
    node_free(&d);
}

/* ---- DTLS from an address ICE never checked ---- */

static void test_dtls_from_stranger(void)
{
    node_t a, b;
    tern_pc_config_t cfg = {0};
    node_new(&a, "A", &cfg);
    node_new(&b, "B", &cfg);
    attacker = udp_bind(&attacker_addr);
    attacker_got = attacker_got_other = 0;
    /* A DTLS 1.2 ClientHello header and some body, as a record (RFC 6347 §4.1). */
    uint8_t hello[120] = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 107, 1, 0, 0, 95};
    for (size_t i = 17; i < sizeof hello; i++)
        hello[i] = (uint8_t)i;
    /* before anything: A has no description at all */
    send_to(attacker, &a.addr, hello, sizeof hello);
    run(50, NULL, NULL);
    /* during the offer/answer and ICE: again and again */
    a.peer = &b;
    b.peer = &a;
    char *offer = NULL, *answer = NULL;
    ok(tern_pc_create_data_channel(a.pc, now_us(), "chat", NULL, &a.dc) == TERN_OK);
    ok(tern_pc_create_offer(a.pc, now_us(), &offer) == TERN_OK);
    ok(tern_pc_set_local_description(a.pc, now_us(), TERN_SDP_OFFER, offer) == TERN_OK);
    for (int i = 0; i < 5; i++)
        send_to(attacker, &a.addr, hello, sizeof hello);
    run(20, NULL, NULL);
    ok(tern_pc_set_remote_description(b.pc, now_us(), TERN_SDP_OFFER, offer) == TERN_OK);
    ok(tern_pc_create_answer(b.pc, now_us(), &answer) == TERN_OK);
    ok(tern_pc_set_local_description(b.pc, now_us(), TERN_SDP_ANSWER, answer) == TERN_OK);
    ok(tern_pc_set_remote_description(a.pc, now_us(), TERN_SDP_ANSWER, answer) == TERN_OK);
    for (int i = 0; i < 5; i++) {
        send_to(attacker, &a.addr, hello, sizeof hello);
        send_to(attacker, &b.addr, hello, sizeof hello);
        run(2, NULL, NULL);
    }
    tern_free(ctx, offer);
    tern_free(ctx, answer);
    node_t *pair[2] = {&a, &b};
    ok(run(GIVE_UP_MS, both_open, pair));
    /* and once connected */
    for (int i = 0; i < 20; i++)
        send_to(attacker, &a.addr, hello, sizeof hello);
    ok(talk(&a, &b, 10));
    ok(selected_is(&a, &b) && selected_is(&b, &a));
    read_attacker();
    eq_int(attacker_got, 0); /* no ServerHello, no alert, nothing */
    close(attacker);
    attacker = -1;
    memset(&attacker_addr, 0, sizeof attacker_addr);
    node_free(&a);
    node_free(&b);
}

/* ---- SCTP garbage from the peer, inside its DTLS session ---- */

static void send_in_dtls(node_t *from, node_t *to, const uint8_t *data, size_t len)
{
    (void)tern_dtls_send(from->pc->dtls, now_us(), data, len);
    tern_transmit_t t;
    while (tern_dtls_poll_transmit(from->pc->dtls, &t))
        send_to(from->fd, &to->addr, t.data, t.len);
    run(50, NULL, NULL);
}

static size_t sctp_packet(uint8_t *out, const node_t *from, uint32_t vtag, const uint8_t *chunks,
                          size_t len)
{
    tern_store_u16(out, from->sport);
    tern_store_u16(out + 2, from->dport);
    tern_store_u32(out + 4, vtag);
    memset(out + 8, 0, 4); /* checksum: the receiver leaves it to DTLS (sctp.c) */
    memcpy(out + 12, chunks, len);
    return 12 + len;
}

static void test_sctp_garbage(void)
{
    node_t a, b, c, d;
    tern_pc_config_t cfg = {.max_message_size = 16384};
    node_new(&a, "A", &cfg);
    node_new(&b, "B", &cfg);
    node_new(&c, "C", &cfg);
    node_new(&d, "D", &cfg);
    b.snoop = true;
    ok(connect_pair(&a, &b));
    ok(connect_pair(&c, &d));
    ok(talk(&b, &a, 3)); /* B's packets carry the tag A expects */
    ok(b.vtag != 0);
    uint8_t pkt[2048];
    size_t len;

    /* random bytes as SCTP */
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    send_in_dtls(&b, &a, junk, sizeof junk);
    send_in_dtls(&b, &a, junk, 3);
    ok(talk(&b, &a, 5));

    /* a DATA chunk with the wrong tag: discarded (RFC 4960 §8.5) */
    static const uint8_t data_chunk[] = {0, 3, 0, 21, 0,   0,   0,   9,   0,   0, 0, 0,
                                         0, 0, 0, 51, 'e', 'v', 'i', 'l', '!', 0, 0, 0};
    len = sctp_packet(pkt, &b, b.vtag ^ 0x5a5a5a5a, data_chunk, sizeof data_chunk);
    send_in_dtls(&b, &a, pkt, len);
    /* a chunk type nobody knows, with the "skip and report" bits (RFC 4960 §3.2) */
    static const uint8_t unknown[] = {0xff, 0, 0, 8, 1, 2, 3, 4};
    len = sctp_packet(pkt, &b, b.vtag, unknown, sizeof unknown);
    send_in_dtls(&b, &a, pkt, len);
    ok(talk(&b, &a, 5));
    /* a message over A's max-message-size, on the channel's stream: dropped whole */
    uint8_t *big = calloc(1, 20000);
    unsigned before = a.messages;
    ok(tern_sctp_send(b.pc->sctp, now_us(), (uint16_t)tern_dc_id(b.dc), TERN_PPID_BINARY, big,
                      20000, NULL) == TERN_OK);
    free(big);
    run(300, NULL, NULL);
    eq_int(a.messages, before);
    ok(talk(&b, &a, 5));
    ok(talk(&a, &b, 5));
    eq_int(a.dc_errors, 0);
    eq_int(tern_pc_connection_state(a.pc), TERN_PC_STATE_CONNECTED);

    /* A malformed chunk (a length below its header) with the right tag: usrsctp aborts the
     * association (RFC 4960 §3.2 leaves the choice); A's channel ends with an error event
     * that says so, and nothing outside this pc notices. */
    static const uint8_t zero_len[] = {0, 3, 0, 0};
    len = sctp_packet(pkt, &b, b.vtag, zero_len, sizeof zero_len);
    send_in_dtls(&b, &a, pkt, len);
    run(500, NULL, NULL);
    printf("# after a zero-length chunk: channel %s, error '%s'\n", a.dc_closed ? "closed" : "open",
           a.dc_error);
    if (a.dc_closed)
        ok(a.dc_errors == 1 && a.dc_error[0]);
    else
        ok(talk(&b, &a, 2));
    /* C-D never noticed */
    ok(talk(&c, &d, 10));
    ok(talk(&d, &c, 10));
    node_free(&a);
    node_free(&b);
    node_free(&c);
    node_free(&d);
}

/* ---- descriptions and candidates out of proportion ---- */

static char *offer_with_candidates(const char *offer, int count)
{
    char *out = malloc((size_t)count * 80 + strlen(offer) + 1);
    size_t k = (size_t)sprintf(out, "%s", offer);
    for (int i = 0; i < count; i++)
        k += (size_t)sprintf(out + k, "a=candidate:%d 1 udp %d 10.%d.%d.%d %d typ host\r\n", i,
                             2000000000 - i, (i >> 16) & 255, (i >> 8) & 255, i & 255,
                             1024 + i % 60000);
    return out;
}

/* A refused description leaves the pc as it was, with a reason. */
static void expect_refused(tern_pc_t *pc, const char *what, const char *sdp)
{
    int rc = tern_pc_set_remote_description(pc, now_us(), TERN_SDP_OFFER, sdp);
    printf("# %s: %s (%s)\n", what, tern_err_name(rc), tern_pc_last_error(pc));
    ok(rc == TERN_ERR_PARSE || rc == TERN_ERR_TOO_LARGE);
    ok(tern_pc_last_error(pc)[0] != '\0');
    eq_int(tern_pc_signaling_state(pc), TERN_SIGNALING_STABLE);
    ok(tern_pc_remote_description(pc) == NULL);
}

static void test_huge_descriptions(void)
{
    node_t a, b, c, d;
    tern_pc_config_t cfg = {0};
    node_new(&a, "A", &cfg);
    node_new(&b, "B", &cfg);
    node_new(&c, "C", &cfg);
    node_new(&d, "D", &cfg);
    ok(connect_pair(&c, &d));
    a.peer = &b;
    b.peer = &a;
    char *offer = NULL;
    ok(tern_pc_create_data_channel(a.pc, now_us(), "chat", NULL, &a.dc) == TERN_OK);
    ok(tern_pc_create_offer(a.pc, now_us(), &offer) == TERN_OK);
    ok(tern_pc_set_local_description(a.pc, now_us(), TERN_SDP_OFFER, offer) == TERN_OK);

    /* 10,000 candidates (past the size limit), 3,000 (past the count limit), a 1 MB line */
    char *many = offer_with_candidates(offer, 10000);
    expect_refused(b.pc, "10,000 candidates", many);
    free(many);
    many = offer_with_candidates(offer, 3000);
    expect_refused(b.pc, "3,000 candidates", many);
    free(many);
    char *huge = malloc(strlen(offer) + (1 << 20) + 16);
    size_t k = (size_t)sprintf(huge, "%sa=x-junk:", offer);
    memset(huge + k, 'j', 1 << 20);
    memcpy(huge + k + (1 << 20), "\r\n", 3);
    expect_refused(b.pc, "a line of 1 MB", huge);
    free(huge);

    /* the true offer still works after all of them */
    ok(tern_pc_set_remote_description(b.pc, now_us(), TERN_SDP_OFFER, offer) == TERN_OK);
    char *answer = NULL;
    ok(tern_pc_create_answer(b.pc, now_us(), &answer) == TERN_OK);
    ok(tern_pc_set_local_description(b.pc, now_us(), TERN_SDP_ANSWER, answer) == TERN_OK);
    ok(tern_pc_set_remote_description(a.pc, now_us(), TERN_SDP_ANSWER, answer) == TERN_OK);
    tern_free(ctx, offer);
    tern_free(ctx, answer);
    node_t *pair[2] = {&a, &b};
    ok(run(GIVE_UP_MS, both_open, pair));

    /* 10,000 trickled candidates on the connected pc, and one of 1 MB: refused past the
     * limit (no growth), and the connection does not notice */
    int refused = 0, taken = 0;
    for (int i = 0; i < 10000; i++) {
        char cand[128];
        snprintf(cand, sizeof cand, "candidate:%d 1 udp %d 10.9.%d.%d %d typ host", i, 100 + i,
                 (i >> 8) & 255, i & 255, 2000 + i % 60000);
        int r = tern_pc_add_ice_candidate(a.pc, now_us(), cand, NULL);
        taken += r == TERN_OK;
        refused += r == TERN_ERR_TOO_LARGE;
        if (i % 1000 == 0)
            run(5, NULL, NULL);
    }
    printf("# 10,000 trickled candidates: %d taken, %d refused as too many\n", taken, refused);
    ok(taken <= 100);
    eq_int(taken + refused, 10000);
    char *long_cand = malloc((1 << 20) + 64);
    size_t lk = (size_t)sprintf(long_cand, "candidate:1 1 udp 1 10.0.0.1 9 typ host x ");
    memset(long_cand + lk, 'x', 1 << 20);
    long_cand[lk + (1 << 20)] = '\0';
    ok(tern_pc_add_ice_candidate(a.pc, now_us(), long_cand, NULL) != TERN_OK);
    free(long_cand);
    run(500, NULL, NULL);
    ok(talk(&a, &b, 5));
    ok(selected_is(&a, &b));
    ok(talk(&c, &d, 5));
    node_free(&a);
    node_free(&b);
    node_free(&c);
    node_free(&d);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    uint64_t seed = 99;
    tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
    if (getenv("TERN_LOG")) /* to see why an attack did what it did */
        cfg.log = tern_log_stderr;
    if (tern_ctx_new(&cfg, &ctx) != TERN_OK)
        return 1;
    srand(7);
    if (!only || strstr("stun", only))
        subtest("stun attacks on a connected pc", test_stun_attacks);
    if (!only || strstr("dtls", only))
        subtest("dtls from a stranger", test_dtls_from_stranger);
    if (!only || strstr("sctp", only))
        subtest("sctp garbage from the peer", test_sctp_garbage);
    if (!only || strstr("sdp", only))
        subtest("huge descriptions and candidates", test_huge_descriptions);
    /* usrsctp's timers for the freed associations */
    tern_ctx_handle_timeout(ctx, now_us() + TERN_SEC(60));
    tern_ctx_free(ctx);
    return check_done();
}
