/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of dtls/: two endpoints wired in-process complete the handshake and exchange data
 * both ways; the remote fingerprint set early, late or wrong; garbage input; loss of each
 * handshake datagram recovered by retransmission; a handshake that times out; close_notify; a
 * user-given PEM certificate; SRTP key export; a ClientHello split over two datagrams.
 *
 * OpenSSL checks its DTLS timer against the wall clock (see dtls.h), so this executable
 * interposes gettimeofday with the tests' virtual clock: OpenSSL in this process sees the same
 * time as the endpoints' `now`, and retransmissions happen in virtual time, instantly.
 */
#include "check.h"
#include "dtls/dtls.h"
#include "dtls/dtls_internal.h"
#include "util/util.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* ---- the virtual clock, also seen by OpenSSL ---- */

static tern_time_t now_us = 1000000;

/* Default visibility: the build hides symbols, and libssl must find this one. */
__attribute__((visibility("default"))) int gettimeofday(struct timeval *restrict tv,
                                                        void *restrict tz)
{
    (void)tz;
    tv->tv_sec = (time_t)(now_us / 1000000);
    tv->tv_usec = (suseconds_t)(now_us % 1000000);
    return 0;
}

/* ---- contexts ---- */

static uint64_t rng_state_a = 1, rng_state_b = 2, rng_state_c = 3, rng_test = 42;

static void ctx_init(tern_ctx_t *ctx, uint64_t *rng_state)
{
    tern_ctx_config_t cfg = {
        .random_bytes = tern_splitmix_random_bytes,
        .random_user = rng_state,
    };
    memset(ctx, 0, sizeof *ctx);
    ok(tern_ctx_init_base(ctx, &cfg) == 0);
}

static void ctx_dispose(tern_ctx_t *ctx)
{
    if (ctx->dtls_identity)
        ctx->dtls_identity_free(ctx->dtls_identity);
    ctx->dtls_identity = NULL;
}

static tern_ctx_t ctx_a, ctx_b;

/* ---- a side of a wired pair ---- */

typedef struct side {
    tern_dtls_t *d;
    int connected, failed, closed, data_events;
    bool data_before_connected;
    tern_dtls_failure_t fail_kind;
    char reason[600];
    uint8_t rx[70000];
    size_t rx_len;
    size_t last_len;
    size_t max_datagram; /* largest datagram this side sent */
    unsigned sent;       /* datagrams this side sent */
} side_t;

/* Whether to lose datagram number `index` (counted over both directions) sent by `from`. */
typedef bool (*lose_fn)(const side_t *from, unsigned index, const uint8_t *data, size_t len,
                        void *user);

static void drain_events(side_t *s)
{
    tern_dtls_event_t ev;
    while (tern_dtls_poll_event(s->d, &ev)) {
        switch (ev.type) {
        case TERN_DTLS_EV_CONNECTED:
            s->connected++;
            break;
        case TERN_DTLS_EV_DATA:
            if (!s->connected)
                s->data_before_connected = true;
            s->data_events++;
            s->last_len = ev.u.data.len;
            if (s->rx_len + ev.u.data.len <= sizeof s->rx) {
                memcpy(s->rx + s->rx_len, ev.u.data.data, ev.u.data.len);
                s->rx_len += ev.u.data.len;
            }
            break;
        case TERN_DTLS_EV_FAILED:
            s->failed++;
            s->fail_kind = ev.u.failed.kind;
            snprintf(s->reason, sizeof s->reason, "%s", ev.u.failed.reason);
            break;
        case TERN_DTLS_EV_CLOSED:
            s->closed++;
            break;
        default:
            ok(!"unknown event");
        }
    }
}

/* Move datagrams from one side to the other; returns how many moved. */
static unsigned transfer(side_t *from, side_t *to, unsigned *index, lose_fn lose, void *user)
{
    tern_transmit_t t;
    unsigned moved = 0;
    uint8_t copy[20000];
    while (tern_dtls_poll_transmit(from->d, &t)) {
        moved++;
        from->sent++;
        if (t.len > from->max_datagram)
            from->max_datagram = t.len;
        ok(t.len <= sizeof copy);
        memcpy(copy, t.data, t.len);
        unsigned i = (*index)++;
        if (lose && lose(from, i, copy, t.len, user))
            continue;
        ok(tern_dtls_handle_input(to->d, now_us, copy, t.len) == 0);
        drain_events(to);
    }
    return moved;
}

static tern_time_t min_time(tern_time_t a, tern_time_t b)
{
    return a < b ? a : b;
}

/* Run both sides until nothing moves and no timer is left, or until `limit` of virtual time. */
static unsigned run(side_t *a, side_t *b, lose_fn lose, void *user, tern_time_t limit)
{
    unsigned index = 0;
    tern_time_t end = now_us + limit;
    for (int rounds = 0; rounds < 10000; rounds++) {
        drain_events(a);
        drain_events(b);
        unsigned moved = transfer(a, b, &index, lose, user);
        moved += transfer(b, a, &index, lose, user);
        if (moved)
            continue;
        tern_time_t next = min_time(tern_dtls_next_deadline(a->d), tern_dtls_next_deadline(b->d));
        if (next == TERN_TIME_NEVER || next > end)
            break;
        if (next > now_us)
            now_us = next;
        tern_dtls_handle_timeout(a->d, now_us);
        tern_dtls_handle_timeout(b->d, now_us);
    }
    drain_events(a);
    drain_events(b);
    return index;
}

static void pair_new(side_t *c, side_t *s, const tern_dtls_config_t *ccfg,
                     const tern_dtls_config_t *scfg, tern_ctx_t *cctx, tern_ctx_t *sctx)
{
    memset(c, 0, sizeof *c);
    memset(s, 0, sizeof *s);
    tern_dtls_config_t cc = ccfg ? *ccfg : (tern_dtls_config_t){0};
    tern_dtls_config_t sc = scfg ? *scfg : (tern_dtls_config_t){0};
    cc.role = TERN_DTLS_ROLE_CLIENT;
    sc.role = TERN_DTLS_ROLE_SERVER;
    ok(tern_dtls_new(cctx, &cc, now_us, &c->d) == 0);
    ok(tern_dtls_new(sctx, &sc, now_us, &s->d) == 0);
}

static void pair_free(side_t *c, side_t *s)
{
    tern_dtls_free(c->d);
    tern_dtls_free(s->d);
    c->d = s->d = NULL;
}

/* Give each side the other's real fingerprint. */
static void exchange_fingerprints(side_t *c, side_t *s, tern_ctx_t *cctx, tern_ctx_t *sctx)
{
    ok(tern_dtls_set_remote_fingerprint(c->d, now_us, "sha-256",
                                        tern_dtls_identity_fingerprint(sctx)) == 0);
    ok(tern_dtls_set_remote_fingerprint(s->d, now_us, "sha-256",
                                        tern_dtls_identity_fingerprint(cctx)) == 0);
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + seed);
}

/* Send one message each way and check it arrives whole, as one record. */
static void check_data_both_ways(side_t *c, side_t *s, size_t len)
{
    static uint8_t msg[16384];
    fill_pattern(msg, len, (unsigned)len);
    size_t c_before = c->rx_len, s_before = s->rx_len;
    int c_events = c->data_events, s_events = s->data_events;
    eq_int(tern_dtls_send(c->d, now_us, msg, len), 0);
    eq_int(tern_dtls_send(s->d, now_us, msg, len), 0);
    run(c, s, NULL, NULL, 0);
    eq_int(s->data_events, s_events + 1);
    eq_int(c->data_events, c_events + 1);
    eq_int(s->last_len, len);
    eq_int(c->last_len, len);
    eq_int(s->rx_len, s_before + len);
    eq_int(c->rx_len, c_before + len);
    if (s->rx_len == s_before + len && c->rx_len == c_before + len) {
        eq_mem(s->rx + s_before, msg, len);
        eq_mem(c->rx + c_before, msg, len);
    }
}

/* ---- tests ---- */

static void test_identity(void)
{
    const char *fp = tern_dtls_identity_fingerprint(&ctx_a);
    ok(fp != NULL);
    eq_int(strlen(fp), 32 * 3 - 1);
    for (size_t i = 0; fp && fp[i]; i++)
        ok(i % 3 == 2 ? fp[i] == ':'
                      : (fp[i] >= '0' && fp[i] <= '9') || (fp[i] >= 'A' && fp[i] <= 'F'));
    ok(strcmp(fp, tern_dtls_identity_fingerprint(&ctx_b)) != 0);
    eq_int(tern_dtls_identity_init(&ctx_a, NULL, NULL), TERN_ERR_INVALID_STATE);
    ok(tern_dtls_identity_ssl_ctx(&ctx_a) != NULL);

    /* The certificate is ECDSA P-256, self-signed, with the fingerprint we announce. */
    SSL *ssl = SSL_new(tern_dtls_identity_ssl_ctx(&ctx_a));
    X509 *cert = ssl ? SSL_get_certificate(ssl) : NULL;
    ok(cert != NULL);
    if (cert) {
        EVP_PKEY *key = X509_get0_pubkey(cert);
        ok(key && EVP_PKEY_is_a(key, "EC"));
        char group[32] = "";
        size_t glen = 0;
        ok(EVP_PKEY_get_group_name(key, group, sizeof group, &glen) == 1);
        eq_str(group, "prime256v1");
        ok(X509_check_issued(cert, cert) == X509_V_OK);
        uint8_t md[32];
        unsigned n = 0;
        char hex[TERN_DTLS_FINGERPRINT_MAX];
        X509_digest(cert, EVP_sha256(), md, &n);
        tern_hex_colon_encode(md, n, hex);
        eq_str(hex, fp);
    }
    SSL_free(ssl);

    tern_ctx_t c;
    ctx_init(&c, &rng_state_c);
    eq_int(tern_dtls_identity_init(&c, "x", NULL), TERN_ERR_INVALID_ARG);
    eq_int(tern_dtls_identity_init(&c, "not a pem", "nor this"), TERN_ERR_CRYPTO);
    ok(c.dtls_identity == NULL);
    ok(tern_dtls_identity_fingerprint(&c) == NULL);
    ctx_dispose(&c);
}

static void test_handshake(void)
{
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_NEW);
    eq_int(tern_dtls_state(s.d), TERN_DTLS_STATE_NEW);
    eq_int(tern_dtls_role(c.d), TERN_DTLS_ROLE_CLIENT);
    eq_int(tern_dtls_role(s.d), TERN_DTLS_ROLE_SERVER);
    eq_int(tern_dtls_send(c.d, now_us, (const uint8_t *)"x", 1), TERN_ERR_INVALID_STATE);
    eq_int(tern_dtls_start(s.d, now_us), 0); /* nothing for a server */
    ok(!tern_dtls_poll_transmit(s.d, &(tern_transmit_t){0}));
    eq_int(tern_dtls_start(c.d, now_us), 0);
    eq_int(tern_dtls_start(c.d, now_us), TERN_ERR_INVALID_STATE);
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_CONNECTING);
    eq_int(tern_dtls_next_deadline(c.d), now_us + 1000000); /* RFC 6347 §4.2.4.1 default */

    tern_time_t start = now_us;
    run(&c, &s, NULL, NULL, TERN_SEC(1));
    eq_int(now_us, start); /* no timer fired */
    eq_int(c.connected, 1);
    eq_int(s.connected, 1);
    eq_int(c.failed + s.failed + c.closed + s.closed, 0);
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_CONNECTED);
    eq_int(tern_dtls_state(s.d), TERN_DTLS_STATE_CONNECTED);
    eq_int(tern_dtls_next_deadline(c.d), TERN_TIME_NEVER);
    eq_int(tern_dtls_next_deadline(s.d), TERN_TIME_NEVER);
    eq_str(tern_dtls_last_error(c.d), "");
    /* Flights are packed: 4 datagrams in all (ClientHello, server flight, client flight,
     * server's ChangeCipherSpec and Finished), none above the MTU. */
    eq_int(c.sent + s.sent, 4);
    ok(c.max_datagram <= 1200 && s.max_datagram <= 1200);

    /* AES-128-GCM: 13 header + 8 nonce + 16 tag. */
    eq_int(tern_dtls_max_payload(c.d), 1200 - 37);
    /* The cheapest key exchange both offer: X25519, not P-256 (the handshake's CPU is mostly
     * key exchange, signatures and parsing the peer's certificate). */
    eq_int(SSL_get_negotiated_group(c.d->ssl), NID_X25519);
    eq_int(SSL_get_negotiated_group(s.d->ssl), NID_X25519);
    /* One certificate per context: every endpoint presents the same one, made once. */
    ok(SSL_get_certificate(c.d->ssl) == SSL_CTX_get0_certificate(c.d->identity->ssl_ctx));
    size_t sizes[] = {1, 100, 1163, 1200, 4000, 16384};
    for (size_t i = 0; i < TERN_ARRAY_LEN(sizes); i++)
        check_data_both_ways(&c, &s, sizes[i]);
    eq_int(tern_dtls_send(c.d, now_us, (const uint8_t *)"x", 0), TERN_ERR_INVALID_ARG);
    static uint8_t big[16385];
    eq_int(tern_dtls_send(c.d, now_us, big, sizeof big), TERN_ERR_TOO_LARGE);
    eq_int(c.connected, 1); /* exactly once */
    eq_int(s.connected, 1);

    tern_dtls_stats_t st;
    tern_dtls_get_stats(s.d, &st);
    eq_int(st.records_received, TERN_ARRAY_LEN(sizes));
    eq_int(st.records_sent, TERN_ARRAY_LEN(sizes));
    eq_int(st.retransmissions, 0);
    eq_int(st.datagrams_dropped, 0);

    /* Setting the same fingerprint again is harmless; another one is refused. */
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "SHA-256",
                                            tern_dtls_identity_fingerprint(&ctx_b)),
           0);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256",
                                            tern_dtls_identity_fingerprint(&ctx_a)),
           TERN_ERR_INVALID_STATE);
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_CONNECTED);
    pair_free(&c, &s);
}

/* Many records queued before they are polled come out in order, each whole. */
static void test_burst(void)
{
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    uint8_t msg[1000];
    for (unsigned i = 0; i < 50; i++) {
        fill_pattern(msg, sizeof msg, i);
        eq_int(tern_dtls_send(c.d, now_us, msg, sizeof msg), 0);
    }
    run(&c, &s, NULL, NULL, 0);
    eq_int(s.data_events, 50);
    eq_int(s.rx_len, 50 * sizeof msg);
    bool all = true;
    for (unsigned i = 0; i < 50; i++) {
        fill_pattern(msg, sizeof msg, i);
        all = all && memcmp(s.rx + i * sizeof msg, msg, sizeof msg) == 0;
    }
    ok(all);

    /* A full transmit queue refuses a send instead of losing it. */
    tern_dtls_t *d = c.d;
    unsigned refused = 0;
    for (unsigned i = 0; i < 1100; i++)
        refused += tern_dtls_send(d, now_us, msg, 10) == TERN_ERR_AGAIN;
    eq_int(refused, 1100 - 1024);
    run(&c, &s, NULL, NULL, 0);
    eq_int(s.data_events, 50 + 1024);
    pair_free(&c, &s);
}

/* An error some other code left in the thread's OpenSSL error queue must not be taken for a
 * failure of ours: the endpoints only look at the queue before each record, they do not empty
 * it unasked, so a stale entry must still be cleared before SSL_read and SSL_write. */
static void test_stale_error_queue(void)
{
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_CONNECTED);
    for (size_t i = 0; i < 3; i++) {
        ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
        check_data_both_ways(&c, &s, 100 + i);
    }
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_CONNECTED);
    eq_int(tern_dtls_state(s.d), TERN_DTLS_STATE_CONNECTED);
    ok(ERR_peek_error() == 0);
    pair_free(&c, &s);
}

/* Endpoints of one context share its SSL_read buffer (each record is copied out at once), and
 * none keeps a packing buffer once connected: records of interleaved pairs land where they
 * belong, intact. */
static void test_shared_read_buffer(void)
{
    static side_t c1, s1, c2, s2;
    pair_new(&c1, &s1, NULL, NULL, &ctx_a, &ctx_a);
    pair_new(&c2, &s2, NULL, NULL, &ctx_a, &ctx_a);
    exchange_fingerprints(&c1, &s1, &ctx_a, &ctx_a);
    exchange_fingerprints(&c2, &s2, &ctx_a, &ctx_a);
    tern_dtls_start(c1.d, now_us);
    tern_dtls_start(c2.d, now_us);
    run(&c1, &s1, NULL, NULL, 0);
    run(&c2, &s2, NULL, NULL, 0);
    eq_int(tern_dtls_state(s1.d), TERN_DTLS_STATE_CONNECTED);
    eq_int(tern_dtls_state(s2.d), TERN_DTLS_STATE_CONNECTED);
    ok(!c1.d->pack_buf && !s1.d->pack_buf && !c2.d->pack_buf && !s2.d->pack_buf);
    uint8_t a[700], b[900];
    bool all = true;
    for (unsigned i = 0; i < 20; i++) {
        fill_pattern(a, sizeof a, i);
        fill_pattern(b, sizeof b, 100 + i);
        eq_int(tern_dtls_send(c1.d, now_us, a, sizeof a), 0);
        eq_int(tern_dtls_send(c2.d, now_us, b, sizeof b), 0);
        /* Both receivers decrypt before either drains its events. */
        tern_transmit_t t;
        ok(tern_dtls_poll_transmit(c1.d, &t));
        tern_dtls_handle_input(s1.d, now_us, t.data, t.len);
        ok(tern_dtls_poll_transmit(c2.d, &t));
        tern_dtls_handle_input(s2.d, now_us, t.data, t.len);
        size_t before1 = s1.rx_len, before2 = s2.rx_len;
        drain_events(&s1);
        drain_events(&s2);
        all = all && s1.rx_len == before1 + sizeof a && s2.rx_len == before2 + sizeof b &&
              memcmp(s1.rx + before1, a, sizeof a) == 0 &&
              memcmp(s2.rx + before2, b, sizeof b) == 0;
    }
    ok(all);
    /* A close_notify needs a packing buffer again, and gets one. */
    eq_int(tern_dtls_close(c1.d, now_us), 0);
    run(&c1, &s1, NULL, NULL, 0);
    eq_int(s1.closed, 1);
    pair_free(&c1, &s1);
    pair_free(&c2, &s2);
}

/* The server learns the client's fingerprint only after its handshake has finished. */
static void test_late_fingerprint(void)
{
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    ok(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256",
                                        tern_dtls_identity_fingerprint(&ctx_b)) == 0);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(c.connected, 1);
    eq_int(s.connected, 0);
    eq_int(tern_dtls_state(s.d), TERN_DTLS_STATE_CONNECTING);
    eq_int(tern_dtls_send(s.d, now_us, (const uint8_t *)"x", 1), TERN_ERR_INVALID_STATE);
    /* The client may already send; the server holds the record until it verified the peer. */
    eq_int(tern_dtls_send(c.d, now_us, (const uint8_t *)"early", 5), 0);
    run(&c, &s, NULL, NULL, 0);
    eq_int(s.data_events, 0);

    /* sha-1 of the client's certificate works as well as sha-256. */
    SSL *ssl = SSL_new(tern_dtls_identity_ssl_ctx(&ctx_a));
    uint8_t md[20];
    unsigned n = 0;
    char hex[TERN_DTLS_FINGERPRINT_MAX];
    X509_digest(SSL_get_certificate(ssl), EVP_sha1(), md, &n);
    tern_hex_colon_encode(md, n, hex);
    SSL_free(ssl);
    eq_int(tern_dtls_set_remote_fingerprint(s.d, now_us, "sha-1", hex), 0);
    drain_events(&s);
    eq_int(s.connected, 1);
    ok(!s.data_before_connected);
    eq_int(s.data_events, 1);
    ok(s.rx_len == 5 && memcmp(s.rx, "early", 5) == 0);
    eq_int(tern_dtls_state(s.d), TERN_DTLS_STATE_CONNECTED);
    check_data_both_ways(&c, &s, 500);
    pair_free(&c, &s);
}

static void test_wrong_fingerprint(void)
{
    /* Known during the handshake: the client refuses the server's certificate. */
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    const char *wrong = tern_dtls_identity_fingerprint(&ctx_a);
    ok(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256", wrong) == 0);
    ok(tern_dtls_set_remote_fingerprint(s.d, now_us, "sha-256",
                                        tern_dtls_identity_fingerprint(&ctx_a)) == 0);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, TERN_SEC(100));
    eq_int(c.failed, 1);
    eq_int(c.connected, 0);
    eq_int(c.fail_kind, TERN_DTLS_FAIL_FINGERPRINT);
    ok(strstr(c.reason, "fingerprint mismatch") != NULL);
    ok(strstr(c.reason, wrong) != NULL);
    ok(strstr(c.reason, tern_dtls_identity_fingerprint(&ctx_b)) != NULL);
    eq_str(tern_dtls_last_error(c.d), c.reason);
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_FAILED);
    /* The server hears the bad_certificate alert. */
    eq_int(s.failed, 1);
    eq_int(s.connected, 0);
    eq_int(s.fail_kind, TERN_DTLS_FAIL_ALERT_RECEIVED);
    ok(strstr(s.reason, "bad certificate") != NULL);
    eq_int(tern_dtls_next_deadline(c.d), TERN_TIME_NEVER);
    eq_int(tern_dtls_next_deadline(s.d), TERN_TIME_NEVER);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256", wrong), TERN_ERR_INVALID_STATE);
    pair_free(&c, &s);

    /* Learnt after the handshake: the server fails, and drops the unverified data. */
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    ok(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256",
                                        tern_dtls_identity_fingerprint(&ctx_b)) == 0);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(tern_dtls_send(c.d, now_us, (const uint8_t *)"secret", 6), 0);
    run(&c, &s, NULL, NULL, 0);
    eq_int(tern_dtls_set_remote_fingerprint(s.d, now_us, "sha-256",
                                            tern_dtls_identity_fingerprint(&ctx_b)),
           0);
    drain_events(&s);
    eq_int(s.failed, 1);
    eq_int(s.connected, 0);
    eq_int(s.data_events, 0);
    eq_int(s.fail_kind, TERN_DTLS_FAIL_FINGERPRINT);
    ok(strstr(s.reason, tern_dtls_identity_fingerprint(&ctx_a)) != NULL);
    eq_int(tern_dtls_state(s.d), TERN_DTLS_STATE_FAILED);
    pair_free(&c, &s);
}

static void test_fingerprint_args(void)
{
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    const char *fp = tern_dtls_identity_fingerprint(&ctx_b);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "md5", fp), TERN_ERR_UNSUPPORTED);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-384", fp), TERN_ERR_PARSE);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-1", fp), TERN_ERR_PARSE);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256", "AB:CD"), TERN_ERR_PARSE);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256", ""), TERN_ERR_PARSE);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256", "zz"), TERN_ERR_PARSE);
    char longer[200];
    snprintf(longer, sizeof longer, "%s:00", fp);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256", longer), TERN_ERR_PARSE);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, NULL, fp), TERN_ERR_INVALID_ARG);
    eq_int(tern_dtls_set_remote_fingerprint(NULL, now_us, "sha-256", fp), TERN_ERR_INVALID_ARG);
    /* Lowercase hex is accepted; a failed call changed nothing, so the handshake succeeds. */
    char lower[TERN_DTLS_FINGERPRINT_MAX];
    for (size_t i = 0; i <= strlen(fp); i++)
        lower[i] = (char)(fp[i] >= 'A' && fp[i] <= 'F' ? fp[i] + 32 : fp[i]);
    eq_int(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256", lower), 0);
    ok(tern_dtls_set_remote_fingerprint(s.d, now_us, "sha-256",
                                        tern_dtls_identity_fingerprint(&ctx_a)) == 0);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(c.connected, 1);
    eq_int(s.connected, 1);
    pair_free(&c, &s);
}

static void test_config(void)
{
    tern_dtls_t *d = NULL;
    tern_dtls_config_t cfg = {.mtu = 100};
    eq_int(tern_dtls_new(&ctx_a, &cfg, now_us, &d), TERN_ERR_INVALID_ARG);
    cfg = (tern_dtls_config_t){.role = 7};
    eq_int(tern_dtls_new(&ctx_a, &cfg, now_us, &d), TERN_ERR_INVALID_ARG);
    eq_int(tern_dtls_new(NULL, NULL, now_us, &d), TERN_ERR_INVALID_ARG);
    ok(d == NULL);
    eq_int(tern_dtls_new(&ctx_a, NULL, now_us, &d), 0); /* a client with defaults */
    eq_int(tern_dtls_role(d), TERN_DTLS_ROLE_CLIENT);
    eq_int(tern_dtls_max_payload(d), 1200 - 37);
    eq_int(tern_dtls_next_deadline(d), TERN_TIME_NEVER);
    eq_int(tern_dtls_handle_timeout(d, now_us + TERN_SEC(10)), 0);
    eq_int(tern_dtls_handle_input(d, now_us, NULL, 3), TERN_ERR_INVALID_ARG);
    eq_int(tern_dtls_close(d, now_us), 0);
    eq_int(tern_dtls_state(d), TERN_DTLS_STATE_CLOSED);
    eq_int(tern_dtls_start(d, now_us), TERN_ERR_INVALID_STATE);
    ok(!tern_dtls_poll_transmit(d, &(tern_transmit_t){0}));
    tern_dtls_free(d);
    tern_dtls_free(NULL);

    /* A context without identity gets one on its first endpoint. */
    tern_ctx_t c;
    ctx_init(&c, &rng_state_c);
    ok(tern_dtls_identity_fingerprint(&c) == NULL);
    eq_int(tern_dtls_new(&c, NULL, now_us, &d), 0);
    ok(tern_dtls_identity_fingerprint(&c) != NULL);
    tern_dtls_free(d);
    ctx_dispose(&c);

    static const uint8_t b[] = {19, 20, 63, 64, 0, 128};
    ok(!tern_dtls_is_record(b, 1));
    ok(tern_dtls_is_record(b + 1, 1));
    ok(tern_dtls_is_record(b + 2, 1));
    ok(!tern_dtls_is_record(b + 3, 1));
    ok(!tern_dtls_is_record(b + 4, 1));
    ok(!tern_dtls_is_record(b + 5, 1));
    ok(!tern_dtls_is_record(b + 1, 0));
    ok(!tern_dtls_is_record(NULL, 1));
}

/* A smaller MTU fragments the handshake; no datagram exceeds it. */
static void test_small_mtu(void)
{
    side_t c, s;
    tern_dtls_config_t cfg = {.mtu = 300};
    pair_new(&c, &s, &cfg, &cfg, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(c.connected, 1);
    eq_int(s.connected, 1);
    ok(c.max_datagram <= 300);
    ok(s.max_datagram <= 300);
    ok(c.sent + s.sent > 4);
    eq_int(tern_dtls_max_payload(c.d), 300 - 37);
    check_data_both_ways(&c, &s, 263);
    pair_free(&c, &s);
}

static uint64_t rng_next(void)
{
    return tern_splitmix_next(&rng_test);
}

static void feed_random(tern_dtls_t *d, unsigned count, bool dtls_header)
{
    uint8_t buf[1500];
    for (unsigned i = 0; i < count; i++) {
        size_t len = (size_t)(rng_next() % sizeof buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rng_next();
        if (dtls_header && len >= 13) {
            /* Plausible record headers: a content type, DTLS 1.2 or 1.0, epoch 0 or 1. */
            static const uint8_t types[] = {20, 21, 22, 23};
            buf[0] = types[rng_next() % 4];
            buf[1] = 0xfe;
            buf[2] = rng_next() % 2 ? 0xfd : 0xff;
            buf[3] = 0;
            buf[4] = (uint8_t)(rng_next() % 2);
            size_t body = len - 13;
            buf[11] = (uint8_t)(body >> 8);
            buf[12] = (uint8_t)body;
        }
        ok(tern_dtls_handle_input(d, now_us, buf, len) == 0);
    }
}

static void test_garbage(void)
{
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    /* Before the handshake: a client that has not started drops everything. */
    feed_random(c.d, 200, true);
    drain_events(&c);
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_NEW);
    ok(!tern_dtls_poll_transmit(c.d, &(tern_transmit_t){0}));
    tern_dtls_stats_t st;
    tern_dtls_get_stats(c.d, &st);
    eq_int(st.datagrams_dropped, 200);
    /* A server sees only random bytes: nothing that parses as a ClientHello. */
    feed_random(s.d, 2000, false);
    drain_events(&s);
    eq_int(s.failed, 0);
    eq_int(tern_dtls_state(s.d), TERN_DTLS_STATE_NEW);
    ok(!tern_dtls_poll_transmit(s.d, &(tern_transmit_t){0}));
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(c.connected, 1);
    eq_int(s.connected, 1);

    /* Connected: random bytes and records with plausible headers are discarded (records that
     * fail authentication are dropped silently, RFC 6347 §4.1.2.7). */
    feed_random(c.d, 3000, false);
    feed_random(s.d, 3000, true);
    feed_random(c.d, 3000, true);
    drain_events(&c);
    drain_events(&s);
    if (c.failed || s.failed)
        printf("# client: %s\n# server: %s\n", c.reason, s.reason);
    eq_int(c.failed + s.failed, 0);
    eq_int(c.data_events + s.data_events, 0);
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_CONNECTED);
    check_data_both_ways(&c, &s, 700);

    /* Truncated and bit-flipped copies of a real record are dropped too. */
    uint8_t msg[300];
    fill_pattern(msg, sizeof msg, 9);
    eq_int(tern_dtls_send(c.d, now_us, msg, sizeof msg), 0);
    tern_transmit_t t;
    ok(tern_dtls_poll_transmit(c.d, &t));
    uint8_t rec[400];
    int before = s.data_events;
    size_t rec_len = t.len;
    memcpy(rec, t.data, rec_len);
    for (size_t cut = 0; cut < rec_len; cut += 7)
        tern_dtls_handle_input(s.d, now_us, rec, cut);
    for (size_t bit = 0; bit < rec_len * 8; bit += 13) {
        uint8_t flip[400];
        memcpy(flip, rec, rec_len);
        flip[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        tern_dtls_handle_input(s.d, now_us, flip, rec_len);
    }
    drain_events(&s);
    eq_int(s.failed, 0);
    eq_int(s.data_events, before); /* every change fails authentication (RFC 5288 §3 AAD) */
    /* The original is accepted once; a replay is dropped (RFC 6347 §4.1.2.6). */
    tern_dtls_handle_input(s.d, now_us, rec, rec_len);
    tern_dtls_handle_input(s.d, now_us, rec, rec_len);
    drain_events(&s);
    eq_int(s.data_events, before + 1);
    eq_int(s.last_len, sizeof msg);
    eq_mem(s.rx + s.rx_len - sizeof msg, msg, sizeof msg);
    eq_int(tern_dtls_state(s.d), TERN_DTLS_STATE_CONNECTED);
    pair_free(&c, &s);
}

/* ---- loss ---- */

typedef struct loss_plan {
    unsigned drop_index; /* lose the datagram with this index */
    unsigned drop_count; /* and this many after it */
    unsigned lost;
} loss_plan_t;

static bool lose_planned(const side_t *from, unsigned index, const uint8_t *data, size_t len,
                         void *user)
{
    (void)from;
    (void)data;
    (void)len;
    loss_plan_t *p = user;
    if (index >= p->drop_index && index < p->drop_index + p->drop_count) {
        p->lost++;
        return true;
    }
    return false;
}

static void test_loss(void)
{
    /* Lose each datagram of the handshake in turn (and then two in a row): it still ends. */
    for (unsigned count = 1; count <= 2; count++) {
        for (unsigned i = 0; i < 4; i++) {
            side_t c, s;
            tern_dtls_config_t cfg = {.initial_rto_us = 50000};
            pair_new(&c, &s, &cfg, &cfg, &ctx_a, &ctx_b);
            exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
            loss_plan_t plan = {.drop_index = i, .drop_count = count};
            tern_time_t start = now_us;
            tern_dtls_start(c.d, now_us);
            run(&c, &s, lose_planned, &plan, TERN_SEC(30));
            ok(plan.lost >= 1);
            if (c.connected != 1 || s.connected != 1)
                printf("# lost %u from %u: c %d/%d s %d/%d after %lldus: %s / %s\n", count, i,
                       c.connected, c.failed, s.connected, s.failed, (long long)(now_us - start),
                       c.reason, s.reason);
            eq_int(c.connected, 1);
            eq_int(s.connected, 1);
            eq_int(c.failed + s.failed, 0);
            /* Recovered in a few initial timeouts, not seconds. */
            ok(now_us - start <= 50000 * 8);
            tern_dtls_stats_t sc, ss;
            tern_dtls_get_stats(c.d, &sc);
            tern_dtls_get_stats(s.d, &ss);
            ok(sc.retransmissions + ss.retransmissions >= 1);
            check_data_both_ways(&c, &s, 1000);
            pair_free(&c, &s);
        }
    }
}

/* The first flight is lost: the ClientHello comes again after initial_rto_us. */
static void test_lost_first_flight(void)
{
    side_t c, s;
    tern_dtls_config_t cfg = {.initial_rto_us = 100000};
    pair_new(&c, &s, &cfg, &cfg, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    tern_time_t start = now_us;
    tern_dtls_start(c.d, now_us);
    tern_transmit_t t;
    ok(tern_dtls_poll_transmit(c.d, &t)); /* lost */
    ok(!tern_dtls_poll_transmit(c.d, &t));
    eq_int(tern_dtls_next_deadline(c.d), start + 100000);
    eq_int(tern_dtls_handle_timeout(c.d, start + 50000), 0); /* early: nothing */
    ok(!tern_dtls_poll_transmit(c.d, &t));
    now_us = start + 100000;
    eq_int(tern_dtls_handle_timeout(c.d, now_us), 0);
    ok(tern_dtls_poll_transmit(c.d, &t));
    uint8_t hello[1500];
    size_t hello_len = t.len;
    memcpy(hello, t.data, t.len);
    eq_int(tern_dtls_next_deadline(c.d), now_us + 200000); /* doubled */
    ok(tern_dtls_handle_input(s.d, now_us, hello, hello_len) == 0);
    /* A duplicate of the ClientHello does not disturb the server. */
    ok(tern_dtls_handle_input(s.d, now_us, hello, hello_len) == 0);
    run(&c, &s, NULL, NULL, TERN_SEC(1));
    eq_int(c.connected, 1);
    eq_int(s.connected, 1);
    ok(now_us - start < 300000);
    tern_dtls_stats_t st;
    tern_dtls_get_stats(c.d, &st);
    eq_int(st.retransmissions, 1);
    pair_free(&c, &s);
}

/* The client's handle_timeout comes before OpenSSL's clock reached the deadline. */
static void test_timer_behind(void)
{
    side_t c, s;
    tern_dtls_config_t cfg = {.initial_rto_us = 100000};
    pair_new(&c, &s, &cfg, &cfg, &ctx_a, &ctx_b);
    tern_time_t start = now_us;
    tern_dtls_start(c.d, start);
    tern_transmit_t t;
    ok(tern_dtls_poll_transmit(c.d, &t));
    /* The caller's clock runs ahead of the wall clock OpenSSL reads. */
    now_us = start + 40000;
    eq_int(tern_dtls_handle_timeout(c.d, start + 100000), 0);
    ok(!tern_dtls_poll_transmit(c.d, &t));
    eq_int(tern_dtls_next_deadline(c.d), start + 100000 + 60000);
    now_us = start + 100000;
    eq_int(tern_dtls_handle_timeout(c.d, start + 160000), 0);
    ok(tern_dtls_poll_transmit(c.d, &t));
    pair_free(&c, &s);
}

static bool lose_all_from_client(const side_t *from, unsigned index, const uint8_t *data,
                                 size_t len, void *user)
{
    (void)index;
    (void)data;
    (void)len;
    return from == user;
}

static void test_timeout(void)
{
    side_t c, s;
    tern_dtls_config_t cfg = {.initial_rto_us = 10000};
    pair_new(&c, &s, &cfg, &cfg, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, lose_all_from_client, &c, TERN_SEC(600));
    eq_int(c.failed, 1);
    eq_int(c.fail_kind, TERN_DTLS_FAIL_TIMEOUT);
    ok(strstr(c.reason, "timed out") != NULL);
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_FAILED);
    eq_int(tern_dtls_next_deadline(c.d), TERN_TIME_NEVER);
    tern_dtls_stats_t st;
    tern_dtls_get_stats(c.d, &st);
    ok(st.retransmissions >= 10);
    eq_int(s.failed + s.connected, 0);
    pair_free(&c, &s);
}

static void test_close(void)
{
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(tern_dtls_send(c.d, now_us, (const uint8_t *)"bye", 3), 0);
    eq_int(tern_dtls_close(c.d, now_us), 0);
    eq_int(tern_dtls_state(c.d), TERN_DTLS_STATE_CLOSED);
    eq_int(tern_dtls_send(c.d, now_us, (const uint8_t *)"x", 1), TERN_ERR_INVALID_STATE);
    /* Polled one by one: the data before the close_notify comes first. */
    tern_transmit_t t;
    ok(tern_dtls_poll_transmit(c.d, &t));
    ok(tern_dtls_handle_input(s.d, now_us, t.data, t.len) == 0);
    ok(tern_dtls_poll_transmit(c.d, &t));
    ok(tern_dtls_handle_input(s.d, now_us, t.data, t.len) == 0);
    ok(!tern_dtls_poll_transmit(c.d, &t));
    tern_dtls_event_t ev;
    ok(tern_dtls_poll_event(s.d, &ev) && ev.type == TERN_DTLS_EV_DATA);
    ok(tern_dtls_poll_event(s.d, &ev) && ev.type == TERN_DTLS_EV_CLOSED);
    ok(!tern_dtls_poll_event(s.d, &ev));
    eq_int(tern_dtls_state(s.d), TERN_DTLS_STATE_CLOSED);
    /* The server answered with its own close_notify (RFC 5246 §7.2.1). */
    ok(tern_dtls_poll_transmit(s.d, &t));
    ok(t.len > 0 && t.data[0] == 21);
    eq_int(tern_dtls_close(s.d, now_us), 0);
    run(&c, &s, NULL, NULL, 0);
    eq_int(c.closed + c.failed, 0); /* a local close reports nothing */
    eq_int(tern_dtls_next_deadline(s.d), TERN_TIME_NEVER);
    pair_free(&c, &s);

    /* Closing in the middle of the handshake sends nothing and stops the timer. */
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    tern_dtls_start(c.d, now_us);
    ok(tern_dtls_poll_transmit(c.d, &t));
    eq_int(tern_dtls_close(c.d, now_us), 0);
    ok(!tern_dtls_poll_transmit(c.d, &t));
    eq_int(tern_dtls_next_deadline(c.d), TERN_TIME_NEVER);
    pair_free(&c, &s);
}

static char *pem_of_cert(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = calloc(1, (size_t)n + 1);
    memcpy(s, p, (size_t)n);
    BIO_free(b);
    return s;
}

static char *pem_of_key(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = calloc(1, (size_t)n + 1);
    memcpy(s, p, (size_t)n);
    BIO_free(b);
    return s;
}

/* A user's certificate, made here with OpenSSL: RSA, to also exercise the ECDHE-RSA suites. */
static void make_user_cert(char **cert_pem, char **key_pem, char fp[TERN_DTLS_FINGERPRINT_MAX])
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 77);
    ASN1_TIME_set_string_X509(X509_getm_notBefore(x), "20200101000000Z");
    ASN1_TIME_set_string_X509(X509_getm_notAfter(x), "20300101000000Z");
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"user", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, k, EVP_sha256());
    uint8_t md[32];
    unsigned n = 0;
    X509_digest(x, EVP_sha256(), md, &n);
    tern_hex_colon_encode(md, n, fp);
    *cert_pem = pem_of_cert(x);
    *key_pem = pem_of_key(k);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_user_pem(void)
{
    char *cert_pem, *key_pem, fp[TERN_DTLS_FINGERPRINT_MAX];
    make_user_cert(&cert_pem, &key_pem, fp);
    tern_ctx_t u;
    ctx_init(&u, &rng_state_c);
    /* A key that does not match the certificate is refused. */
    char *other_cert, *other_key, other_fp[TERN_DTLS_FINGERPRINT_MAX];
    make_user_cert(&other_cert, &other_key, other_fp);
    eq_int(tern_dtls_identity_init(&u, cert_pem, other_key), TERN_ERR_CRYPTO);
    ok(u.dtls_identity == NULL);
    eq_int(tern_dtls_identity_init(&u, cert_pem, key_pem), 0);
    eq_str(tern_dtls_identity_fingerprint(&u), fp);

    /* The user's RSA certificate on the server, our ECDSA one on the client. */
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &u);
    exchange_fingerprints(&c, &s, &ctx_a, &u);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(c.connected, 1);
    eq_int(s.connected, 1);
    check_data_both_ways(&c, &s, 1000);
    pair_free(&c, &s);

    /* And on the client. */
    pair_new(&c, &s, NULL, NULL, &u, &ctx_b);
    exchange_fingerprints(&c, &s, &u, &ctx_b);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(c.connected, 1);
    eq_int(s.connected, 1);
    pair_free(&c, &s);

    ctx_dispose(&u);
    free(cert_pem);
    free(key_pem);
    free(other_cert);
    free(other_key);
}

static void test_srtp(void)
{
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    tern_dtls_srtp_keys_t kc, ks;
    eq_int(tern_dtls_export_srtp(c.d, &kc), TERN_ERR_INVALID_STATE);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(tern_dtls_export_srtp(c.d, &kc), 0);
    eq_int(tern_dtls_export_srtp(s.d, &ks), 0);
    eq_int(kc.profile, TERN_SRTP_AEAD_AES_128_GCM); /* our first choice */
    eq_int(kc.key_len, 16);
    eq_int(kc.salt_len, 12);
    eq_int(ks.profile, kc.profile);
    eq_mem(kc.local_key, ks.remote_key, 16);
    eq_mem(kc.remote_key, ks.local_key, 16);
    eq_mem(kc.local_salt, ks.remote_salt, 12);
    eq_mem(kc.remote_salt, ks.local_salt, 12);
    ok(memcmp(kc.local_key, kc.remote_key, 16) != 0);
    static const uint8_t zero[16];
    ok(memcmp(kc.local_key, zero, 16) != 0);
    pair_free(&c, &s);
}

/* A peer that offers only AES-CM gets it; a peer without use_srtp gets NOT_FOUND. */
static void test_srtp_profiles(void)
{
    tern_ctx_t p;
    ctx_init(&p, &rng_state_c);
    ok(tern_dtls_identity_init(&p, NULL, NULL) == 0);
    SSL_CTX *sc = tern_dtls_identity_ssl_ctx(&p);
    eq_int(SSL_CTX_set_tlsext_use_srtp(sc, "SRTP_AES128_CM_SHA1_80"), 0);
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &p, &ctx_b);
    exchange_fingerprints(&c, &s, &p, &ctx_b);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    tern_dtls_srtp_keys_t kc, ks;
    eq_int(tern_dtls_export_srtp(c.d, &kc), 0);
    eq_int(tern_dtls_export_srtp(s.d, &ks), 0);
    eq_int(kc.profile, TERN_SRTP_AES128_CM_SHA1_80);
    eq_int(kc.salt_len, 14);
    eq_mem(kc.local_key, ks.remote_key, 16);
    eq_mem(kc.local_salt, ks.remote_salt, 14);
    pair_free(&c, &s);
    ctx_dispose(&p);
}

/* A custom extension large enough to push the ClientHello past the MTU. */
static int add_big_ext(SSL *s, unsigned int ext_type, const unsigned char **out, size_t *outlen,
                       int *al, void *add_arg)
{
    (void)s;
    (void)ext_type;
    (void)al;
    (void)add_arg;
    static unsigned char blob[1300];
    memset(blob, 0x5a, sizeof blob);
    *out = blob;
    *outlen = sizeof blob;
    return 1;
}

/* Like a browser's ClientHello with a post-quantum key share: ~1.5 KB over two datagrams. */
static void test_split_client_hello(void)
{
    tern_ctx_t p;
    ctx_init(&p, &rng_state_c);
    ok(tern_dtls_identity_init(&p, NULL, NULL) == 0);
    /* A codepoint from the private range (RFC 8446 §4.2); the server ignores it. */
    ok(SSL_CTX_add_client_custom_ext(tern_dtls_identity_ssl_ctx(&p), 0xfe42, add_big_ext, NULL,
                                     NULL, NULL, NULL) == 1);
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &p, &ctx_b);
    exchange_fingerprints(&c, &s, &p, &ctx_b);
    tern_dtls_start(c.d, now_us);
    /* The ClientHello is in two datagrams, each within the MTU. */
    tern_transmit_t t;
    uint8_t first[1500], second[1500];
    size_t first_len, second_len;
    ok(tern_dtls_poll_transmit(c.d, &t));
    first_len = t.len;
    memcpy(first, t.data, t.len);
    ok(tern_dtls_poll_transmit(c.d, &t));
    second_len = t.len;
    memcpy(second, t.data, t.len);
    ok(!tern_dtls_poll_transmit(c.d, &t));
    ok(first_len <= 1200 && second_len <= 1200);
    ok(first_len + second_len > 1300);
    /* Delivered in reverse order, the server still reassembles it and answers. */
    ok(tern_dtls_handle_input(s.d, now_us, second, second_len) == 0);
    ok(!tern_dtls_poll_transmit(s.d, &t));
    ok(tern_dtls_handle_input(s.d, now_us, first, first_len) == 0);
    run(&c, &s, NULL, NULL, 0);
    eq_int(c.connected, 1);
    eq_int(s.connected, 1);
    check_data_both_ways(&c, &s, 100);
    pair_free(&c, &s);
    ctx_dispose(&p);
}

/* Build a record: type, epoch, a body of `len` bytes of `fill`. */
static size_t make_record(uint8_t *out, uint8_t type, uint16_t epoch, uint64_t seq,
                          const uint8_t *body, size_t len)
{
    out[0] = type;
    out[1] = 0xfe;
    out[2] = 0xfd;
    out[3] = (uint8_t)(epoch >> 8);
    out[4] = (uint8_t)epoch;
    for (int i = 0; i < 6; i++)
        out[5 + i] = (uint8_t)(seq >> (8 * (5 - i)));
    out[11] = (uint8_t)(len >> 8);
    out[12] = (uint8_t)len;
    if (len)
        memcpy(out + 13, body, len);
    return 13 + len;
}

/* A handshake fragment header (RFC 6347 §4.2.2) followed by frag_len bytes. */
static size_t make_fragment(uint8_t *out, uint32_t msg_len, uint32_t frag_off, uint32_t frag_len)
{
    out[0] = 1; /* client_hello */
    out[1] = (uint8_t)(msg_len >> 16);
    out[2] = (uint8_t)(msg_len >> 8);
    out[3] = (uint8_t)msg_len;
    out[4] = out[5] = 0;
    out[6] = (uint8_t)(frag_off >> 16);
    out[7] = (uint8_t)(frag_off >> 8);
    out[8] = (uint8_t)frag_off;
    out[9] = (uint8_t)(frag_len >> 16);
    out[10] = (uint8_t)(frag_len >> 8);
    out[11] = (uint8_t)frag_len;
    memset(out + 12, 0x33, frag_len);
    return 12 + frag_len;
}

static void test_record_screen(void)
{
    static uint8_t dg[20000], body[17000];
    memset(body, 0xab, sizeof body);
    size_t n;
    /* ChangeCipherSpec: exactly one byte, 1. */
    n = make_record(dg, 20, 0, 1, (const uint8_t *)"\x01", 1);
    ok(tern_dtls_datagram_acceptable(dg, n, 24));
    n = make_record(dg, 20, 0, 1, (const uint8_t *)"\x02", 1);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    n = make_record(dg, 20, 0, 1, (const uint8_t *)"\x01\x01", 2);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    /* Alerts: two bytes, level 1 or 2. */
    n = make_record(dg, 21, 0, 1, (const uint8_t *)"\x02\x28", 2);
    ok(tern_dtls_datagram_acceptable(dg, n, 24));
    n = make_record(dg, 21, 0, 1, (const uint8_t *)"\x03\x28", 2);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    n = make_record(dg, 21, 0, 1, (const uint8_t *)"\x02", 1);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    /* Application data never travels in epoch 0; unknown content types never. */
    n = make_record(dg, 23, 0, 1, body, 30);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    n = make_record(dg, 24, 1, 1, body, 30);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    n = make_record(dg, 63, 1, 1, body, 30);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    /* Encrypted records: at least nonce and tag, at most 2^14 plus expansion. */
    n = make_record(dg, 23, 1, 1, body, 24);
    ok(tern_dtls_datagram_acceptable(dg, n, 24));
    n = make_record(dg, 23, 1, 1, body, 23);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    ok(tern_dtls_datagram_acceptable(dg, n, 16));
    n = make_record(dg, 21, 1, 1, body, 15);
    ok(!tern_dtls_datagram_acceptable(dg, n, 16));
    n = make_record(dg, 23, 1, 1, body, 16384 + 24);
    ok(tern_dtls_datagram_acceptable(dg, n, 24));
    n = make_record(dg, 23, 1, 1, body, 16384 + 257);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    /* Handshake fragments must fit their message and their record. */
    uint8_t frag[2000];
    size_t f = make_fragment(frag, 1000, 0, 500);
    n = make_record(dg, 22, 0, 1, frag, f);
    ok(tern_dtls_datagram_acceptable(dg, n, 24));
    f = make_fragment(frag, 1000, 600, 500);
    n = make_record(dg, 22, 0, 1, frag, f);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    f = make_fragment(frag, 1000, 0, 500);
    n = make_record(dg, 22, 0, 1, frag, f - 1); /* fragment cut short */
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    f = make_fragment(frag, 200 * 1024, 0, 500);
    n = make_record(dg, 22, 0, 1, frag, f);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    n = make_record(dg, 22, 0, 1, frag, 0);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    /* Two fragments in one record, then two records in one datagram. */
    f = make_fragment(frag, 1000, 0, 100);
    f += make_fragment(frag + f, 1000, 100, 100);
    n = make_record(dg, 22, 0, 1, frag, f);
    ok(tern_dtls_datagram_acceptable(dg, n, 24));
    size_t n2 = n + make_record(dg + n, 23, 1, 2, body, 40);
    ok(tern_dtls_datagram_acceptable(dg, n2, 24));
    /* A record that overruns the datagram, a trailing partial header, an oversized plaintext. */
    ok(!tern_dtls_datagram_acceptable(dg, n2 - 1, 24));
    dg[n2] = 23;
    ok(!tern_dtls_datagram_acceptable(dg, n2 + 5, 24));
    ok(!tern_dtls_datagram_acceptable(dg, 12, 24));
    f = make_fragment(body, 16400, 0, 16388);
    n = make_record(dg, 22, 0, 1, body, f);
    ok(!tern_dtls_datagram_acceptable(dg, n, 24));
    memset(body, 0xab, sizeof body);
}

/* Short encrypted records, which OpenSSL 3.0 would answer with internal_error, are dropped. */
static void feed_short_records(side_t *to)
{
    uint8_t dg[100], body[64];
    memset(body, 0x77, sizeof body);
    for (uint8_t type = 20; type <= 23; type++) {
        for (size_t len = 0; len <= 40; len++) {
            size_t n = make_record(dg, type, 1, 5000 + len, body, len);
            ok(tern_dtls_handle_input(to->d, now_us, dg, n) == 0);
        }
    }
    drain_events(to);
}

static void test_short_records(void)
{
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    feed_short_records(&c);
    feed_short_records(&s);
    eq_int(c.failed + s.failed, 0);
    check_data_both_ways(&c, &s, 10);
    pair_free(&c, &s);
}

/* A peer that only offers ChaCha20-Poly1305 (RFC 7905): its 16-byte tag, no explicit nonce. */
static void test_chacha(void)
{
    tern_ctx_t p;
    ctx_init(&p, &rng_state_c);
    ok(tern_dtls_identity_init(&p, NULL, NULL) == 0);
    ok(SSL_CTX_set_cipher_list(tern_dtls_identity_ssl_ctx(&p), "ECDHE-ECDSA-CHACHA20-POLY1305"));
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &p, &ctx_b);
    exchange_fingerprints(&c, &s, &p, &ctx_b);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(c.connected, 1);
    eq_int(s.connected, 1);
    eq_int(tern_dtls_max_payload(s.d), 1200 - 29);
    feed_short_records(&c);
    feed_short_records(&s);
    eq_int(c.failed + s.failed, 0);
    check_data_both_ways(&c, &s, 1171);
    /* A close_notify under ChaCha is 2 + 16 bytes: not mistaken for a short record. */
    eq_int(tern_dtls_close(c.d, now_us), 0);
    run(&c, &s, NULL, NULL, 0);
    eq_int(s.closed, 1);
    pair_free(&c, &s);
    ctx_dispose(&p);
}

/* Records nobody polls wait up to max_queued_records; the rest are dropped and counted. */
static void test_receive_queue_limit(void)
{
    side_t c, s;
    tern_dtls_config_t scfg = {.max_queued_records = 8};
    pair_new(&c, &s, NULL, &scfg, &ctx_a, &ctx_b);
    exchange_fingerprints(&c, &s, &ctx_a, &ctx_b);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    uint8_t msg[100];
    for (unsigned i = 0; i < 20; i++) {
        fill_pattern(msg, sizeof msg, i);
        eq_int(tern_dtls_send(c.d, now_us, msg, sizeof msg), 0);
    }
    tern_transmit_t t;
    while (tern_dtls_poll_transmit(c.d, &t))
        ok(tern_dtls_handle_input(s.d, now_us, t.data, t.len) == 0);
    drain_events(&s);
    eq_int(s.data_events, 8);
    fill_pattern(msg, sizeof msg, 0);
    eq_mem(s.rx, msg, sizeof msg);
    tern_dtls_stats_t st;
    tern_dtls_get_stats(s.d, &st);
    eq_int(st.records_received, 20);
    eq_int(st.records_dropped, 12);
    pair_free(&c, &s);
}

/* The peer closes before we learnt its fingerprint: CLOSED, no CONNECTED, no data. */
static void test_close_before_fingerprint(void)
{
    side_t c, s;
    pair_new(&c, &s, NULL, NULL, &ctx_a, &ctx_b);
    ok(tern_dtls_set_remote_fingerprint(c.d, now_us, "sha-256",
                                        tern_dtls_identity_fingerprint(&ctx_b)) == 0);
    tern_dtls_start(c.d, now_us);
    run(&c, &s, NULL, NULL, 0);
    eq_int(tern_dtls_send(c.d, now_us, (const uint8_t *)"hi", 2), 0);
    eq_int(tern_dtls_close(c.d, now_us), 0);
    run(&c, &s, NULL, NULL, 0);
    eq_int(s.closed, 1);
    eq_int(s.connected, 0);
    eq_int(s.data_events, 0);
    eq_int(tern_dtls_state(s.d), TERN_DTLS_STATE_CLOSED);
    eq_int(tern_dtls_set_remote_fingerprint(s.d, now_us, "sha-256",
                                            tern_dtls_identity_fingerprint(&ctx_a)),
           TERN_ERR_INVALID_STATE);
    pair_free(&c, &s);
}

/* ---- a browser-like ClientHello ---- */

typedef struct hello_buf {
    uint8_t b[2048];
    size_t n;
} hello_buf_t;

static void put8(hello_buf_t *h, unsigned v)
{
    h->b[h->n++] = (uint8_t)v;
}

static void put16(hello_buf_t *h, unsigned v)
{
    put8(h, v >> 8);
    put8(h, v);
}

static void put_fill(hello_buf_t *h, size_t n, uint8_t v)
{
    memset(h->b + h->n, v, n);
    h->n += n;
}

/* An extension: type, then a body given as 16-bit words (len bytes). */
static void put_ext16(hello_buf_t *h, unsigned type, const uint16_t *words, size_t count)
{
    put16(h, type);
    put16(h, (unsigned)(2 + 2 * count));
    put16(h, (unsigned)(2 * count));
    for (size_t i = 0; i < count; i++)
        put16(h, words[i]);
}

/*
 * A ClientHello shaped like Chromium's with DTLS 1.3 enabled: supported_versions offers DTLS 1.3
 * (0xfefc) and 1.2, and key_share carries an X25519MLKEM768 share (1216 bytes) and an X25519
 * one, so the message is about 1.5 KB.
 */
static size_t build_browser_client_hello(uint8_t *msg)
{
    hello_buf_t h = {.n = 0};
    put16(&h, 0xfefd);      /* client_version: DTLS 1.2 */
    put_fill(&h, 32, 0x11); /* random */
    put8(&h, 0);            /* session_id */
    put8(&h, 0);            /* cookie */
    static const uint16_t suites[] = {0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xcca9,
                                      0xcca8, 0xc009, 0xc013, 0x009c, 0x002f, 0x0035};
    put16(&h, sizeof suites);
    for (size_t i = 0; i < TERN_ARRAY_LEN(suites); i++)
        put16(&h, suites[i]);
    put8(&h, 1); /* compression_methods: null */
    put8(&h, 0);
    size_t ext_len_at = h.n;
    put16(&h, 0);
    put16(&h, 23); /* extended_master_secret */
    put16(&h, 0);
    put16(&h, 0xff01); /* renegotiation_info */
    put16(&h, 1);
    put8(&h, 0);
    static const uint16_t groups[] = {0x11ec, 0x001d, 0x0017, 0x0018};
    put_ext16(&h, 10, groups, TERN_ARRAY_LEN(groups)); /* supported_groups */
    put16(&h, 11);                                     /* ec_point_formats: uncompressed */
    put16(&h, 2);
    put8(&h, 1);
    put8(&h, 0);
    static const uint16_t sigalgs[] = {0x0403, 0x0804, 0x0401, 0x0503,
                                       0x0805, 0x0501, 0x0806, 0x0601};
    put_ext16(&h, 13, sigalgs, TERN_ARRAY_LEN(sigalgs)); /* signature_algorithms */
    put16(&h, 14); /* use_srtp: AEAD_AES_256_GCM, AEAD_AES_128_GCM, AES128_CM_SHA1_80 */
    put16(&h, 9);
    put16(&h, 6);
    put16(&h, 0x0008);
    put16(&h, 0x0007);
    put16(&h, 0x0001);
    put8(&h, 0);   /* MKI */
    put16(&h, 51); /* key_share */
    put16(&h, 2 + 4 + 1216 + 4 + 32);
    put16(&h, 4 + 1216 + 4 + 32);
    put16(&h, 0x11ec);
    put16(&h, 1216);
    put_fill(&h, 1216, 0x5c);
    put16(&h, 0x001d);
    put16(&h, 32);
    put_fill(&h, 32, 0x09);
    put16(&h, 45); /* psk_key_exchange_modes: psk_dhe_ke */
    put16(&h, 2);
    put8(&h, 1);
    put8(&h, 1);
    static const uint16_t versions[] = {0xfefc, 0xfefd};
    put16(&h, 43); /* supported_versions */
    put16(&h, 1 + 4);
    put8(&h, 4);
    put16(&h, versions[0]);
    put16(&h, versions[1]);
    size_t ext_len = h.n - ext_len_at - 2;
    h.b[ext_len_at] = (uint8_t)(ext_len >> 8);
    h.b[ext_len_at + 1] = (uint8_t)ext_len;
    memcpy(msg, h.b, h.n);
    return h.n;
}

/* One handshake fragment of the ClientHello in its own record (epoch 0, DTLS 1.0 record
 * version as browsers write their first flight). */
static size_t client_hello_datagram(uint8_t *out, const uint8_t *msg, size_t msg_len, size_t off,
                                    size_t len, uint64_t seq)
{
    uint8_t frag[1500];
    frag[0] = 1;
    frag[1] = (uint8_t)(msg_len >> 16);
    frag[2] = (uint8_t)(msg_len >> 8);
    frag[3] = (uint8_t)msg_len;
    frag[4] = frag[5] = 0;
    frag[6] = (uint8_t)(off >> 16);
    frag[7] = (uint8_t)(off >> 8);
    frag[8] = (uint8_t)off;
    frag[9] = (uint8_t)(len >> 16);
    frag[10] = (uint8_t)(len >> 8);
    frag[11] = (uint8_t)len;
    memcpy(frag + 12, msg + off, len);
    size_t n = make_record(out, 22, 0, seq, frag, 12 + len);
    out[2] = 0xff;
    return n;
}

static void test_browser_client_hello(void)
{
    uint8_t msg[2048];
    size_t msg_len = build_browser_client_hello(msg);
    ok(msg_len > 1400);
    uint8_t first[1500], second[1500];
    size_t first_len = client_hello_datagram(first, msg, msg_len, 0, 1000, 0);
    size_t second_len = client_hello_datagram(second, msg, msg_len, 1000, msg_len - 1000, 1);
    ok(first_len <= 1200 && second_len <= 1200);

    tern_dtls_t *s;
    tern_dtls_config_t cfg = {.role = TERN_DTLS_ROLE_SERVER};
    ok(tern_dtls_new(&ctx_b, &cfg, now_us, &s) == 0);
    ok(tern_dtls_handle_input(s, now_us, second, second_len) == 0);
    tern_transmit_t t;
    ok(!tern_dtls_poll_transmit(s, &t)); /* half a ClientHello: nothing yet */
    ok(tern_dtls_handle_input(s, now_us, first, first_len) == 0);
    eq_int(tern_dtls_state(s), TERN_DTLS_STATE_CONNECTING);
    /* The answer: a ServerHello for DTLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 and
     * SRTP_AEAD_AES_128_GCM, and the rest of the server's flight packed behind it. */
    ok(tern_dtls_poll_transmit(s, &t));
    ok(t.len > 13 + 12 + 38 && t.len <= 1200);
    if (t.len > 13 + 12 + 38) {
        eq_int(t.data[0], 22);                      /* handshake record */
        eq_int(t.data[13], 2);                      /* server_hello */
        eq_int(tern_load_u16(t.data + 25), 0xfefd); /* server_version: DTLS 1.2 */
        size_t sid_len = t.data[25 + 2 + 32];
        eq_int(tern_load_u16(t.data + 25 + 2 + 32 + 1 + sid_len), 0xc02b);
        size_t hello_len = 13 + 12 + (size_t)((t.data[14] << 16) | (t.data[15] << 8) | t.data[16]);
        ok(t.len > hello_len); /* Certificate and the rest follow in the same datagram */
    }
    tern_dtls_event_t ev;
    ok(!tern_dtls_poll_event(s, &ev));
    ok(tern_dtls_next_deadline(s) != TERN_TIME_NEVER); /* its flight is on the timer */
    tern_dtls_free(s);
}

/* ---- allocation failures ---- */

typedef struct failing_mem {
    long countdown; /* allocations left before the one that fails; <0: never fail */
    long failed;
} failing_mem_t;

static bool should_fail(failing_mem_t *m)
{
    if (m->countdown < 0)
        return false;
    if (m->countdown-- == 0) {
        m->failed++;
        return true;
    }
    return false;
}

static void *fm_malloc(size_t n, void *user)
{
    return should_fail(user) ? NULL : malloc(n);
}

static void *fm_calloc(size_t n, size_t size, void *user)
{
    return should_fail(user) ? NULL : calloc(n, size);
}

static void *fm_realloc(void *p, size_t n, void *user)
{
    return should_fail(user) ? NULL : realloc(p, n);
}

static void fm_free(void *p, void *user)
{
    (void)user;
    free(p);
}

/* Fail the Nth allocation of the stack's own, for every N, from the identity to data: each run
 * ends cleanly (ASan checks for leaks), and once the failures stop, things work. */
static void test_failmalloc(void)
{
    int completed = 0;
    long n;
    for (n = 0; n < 200; n++) {
        failing_mem_t fm = {.countdown = n};
        tern_mem_t mem = {&fm, fm_malloc, fm_calloc, fm_realloc, fm_free};
        uint64_t seed = 9;
        tern_ctx_config_t cfg = {
            .mem = &mem, .random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
        tern_ctx_t c;
        memset(&c, 0, sizeof c);
        if (tern_ctx_init_base(&c, &cfg) != 0)
            continue;
        side_t a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        tern_dtls_config_t ac = {.role = TERN_DTLS_ROLE_CLIENT, .initial_rto_us = 20000};
        tern_dtls_config_t bc = {.role = TERN_DTLS_ROLE_SERVER, .initial_rto_us = 20000};
        int err = tern_dtls_new(&c, &ac, now_us, &a.d);
        if (err == 0)
            err = tern_dtls_new(&ctx_b, &bc, now_us, &b.d);
        if (err == 0) {
            exchange_fingerprints(&a, &b, &c, &ctx_b);
            tern_dtls_start(a.d, now_us);
            run(&a, &b, NULL, NULL, TERN_SEC(200));
            /* A failed allocation on the data path loses the record, as the network would. */
            for (int i = 0;
                 i < 3 && a.connected && b.connected && (a.data_events == 0 || b.data_events == 0);
                 i++) {
                ok(tern_dtls_send(a.d, now_us, (const uint8_t *)"ping", 4) == 0);
                ok(tern_dtls_send(b.d, now_us, (const uint8_t *)"pong", 4) == 0);
                run(&a, &b, NULL, NULL, 0);
            }
            ok(!a.connected || !b.connected || (a.data_events > 0 && b.data_events > 0));
        } else {
            ok(err == TERN_ERR_NOMEM || err == TERN_ERR_CRYPTO);
            ok(a.d == NULL || b.d == NULL);
        }
        completed += a.connected && b.connected;
        tern_dtls_free(a.d);
        tern_dtls_free(b.d);
        ctx_dispose(&c);
        if (fm.failed == 0)
            break; /* every allocation of a full run has been failed once */
    }
    printf("# failmalloc: failed each of %ld allocations, %d runs still connected\n", n, completed);
    ok(n < 200);
    ok(completed >= 1);
}

/* Contexts come and go (a fuzzer makes one per input): each gets its identity and BIO. */
static void test_many_contexts(void)
{
    int failures = 0;
    for (int i = 0; i < 300; i++) {
        tern_ctx_t c;
        uint64_t seed = (uint64_t)i + 100;
        ctx_init(&c, &seed);
        tern_dtls_t *d = NULL;
        failures += tern_dtls_new(&c, NULL, now_us, &d) != 0;
        failures += d && tern_dtls_start(d, now_us) != 0;
        tern_dtls_free(d);
        ctx_dispose(&c);
    }
    eq_int(failures, 0);
}

int main(void)
{
    ctx_init(&ctx_a, &rng_state_a);
    ctx_init(&ctx_b, &rng_state_b);
    ok(tern_dtls_identity_init(&ctx_a, NULL, NULL) == 0);
    ok(tern_dtls_identity_init(&ctx_b, NULL, NULL) == 0);

    subtest("identity", test_identity);
    subtest("config", test_config);
    subtest("handshake", test_handshake);
    subtest("burst", test_burst);
    subtest("stale error queue", test_stale_error_queue);
    subtest("shared read buffer", test_shared_read_buffer);
    subtest("late fingerprint", test_late_fingerprint);
    subtest("wrong fingerprint", test_wrong_fingerprint);
    subtest("fingerprint args", test_fingerprint_args);
    subtest("small mtu", test_small_mtu);
    subtest("garbage", test_garbage);
    subtest("loss", test_loss);
    subtest("lost first flight", test_lost_first_flight);
    subtest("timer behind", test_timer_behind);
    subtest("timeout", test_timeout);
    subtest("close", test_close);
    subtest("user pem", test_user_pem);
    subtest("srtp", test_srtp);
    subtest("srtp profiles", test_srtp_profiles);
    subtest("split client hello", test_split_client_hello);
    subtest("record screen", test_record_screen);
    subtest("short records", test_short_records);
    subtest("chacha", test_chacha);
    subtest("receive queue limit", test_receive_queue_limit);
    subtest("close before fingerprint", test_close_before_fingerprint);
    subtest("browser client hello", test_browser_client_hello);
    subtest("many contexts", test_many_contexts);
    subtest("failmalloc", test_failmalloc);

    ctx_dispose(&ctx_a);
    ctx_dispose(&ctx_b);
    return check_done();
}
