/* SPDX-License-Identifier: MIT */
/*
 * Two peer connections wired together in one process, for the stateful fuzz harnesses
 * (fuzz_pc, fuzz_demux): A (the target, 10.0.0.1:5000) offers a data channel, B (the peer,
 * 10.0.0.2:5000) answers; candidates are trickled by hand and every datagram is handed across
 * at once (quicly's exchange_until_idle). Time is virtual and starts at 1 s; the random source
 * is a splitmix generator reseeded for every input; both pcs share one context with a fixed
 * certificate, made once (loading it is the slow part). OpenSSL's own randomness (DTLS
 * randoms, ECDHE keys) cannot be fixed, so ciphertexts differ from run to run, but what the
 * target does with the harness's input does not: the harness never branches on a random value.
 *
 * B's SCTP packets are taken from its association and sent through its DTLS by the harness
 * itself (what the pc does in move_one_datagram), so that the verification tag A expects is
 * learnt and the harness can forge SCTP packets that A's association accepts.
 * Header-only: each harness is one translation unit.
 */
#ifndef TERN_FUZZ_PCPAIR_H
#define TERN_FUZZ_PCPAIR_H

#include "rtc/rtc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAIR_START TERN_SEC(1)
#define PAIR_MAX_CHANNELS 8

static const char pair_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9CquCL7t4gbIEGZD\n"
    "x7JpuiGbem+Asj2s/1PWmYrMEJChRANCAATYFQ7t+Rpq7khnxslcoB7myE31Wzii\n"
    "qL0CC/1I1a4v0+HqrjgYPfymXOqAhNVv5/62RmFBXywWtBy/2fNLryRA\n"
    "-----END PRIVATE KEY-----\n";
static const char pair_cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBgDCCASWgAwIBAgIUJBQSJxvnf42MkH93lOkZdNmOOQowCgYIKoZIzj0EAwIw\n"
    "FDESMBAGA1UEAwwJdGVybi1mdXp6MCAXDTI2MTIwMzA4NDE1OVoYDzIxMjYxMTA5\n"
    "MDg0MTU5WjAUMRIwEAYDVQQDDAl0ZXJuLWZ1enowWTATBgcqhkjOPQIBBggqhkjO\n"
    "PQMBBwNCAATYFQ7t+Rpq7khnxslcoB7myE31WziiqL0CC/1I1a4v0+HqrjgYPfym\n"
    "XOqAhNVv5/62RmFBXywWtBy/2fNLryRAo1MwUTAdBgNVHQ4EFgQUTEW0C1vOd4P6\n"
    "TV8W5fOCsEzxS7IwHwYDVR0jBBgwFoAUTEW0C1vOd4P6TV8W5fOCsEzxS7IwDwYD\n"
    "VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAjyypvwGVAKE+HyQZb5rU\n"
    "ls3IDBvKbcURAtrEj52SEt0CIQDhqaGxVX0Jcij4Tbu3/PkoHyNGYHaXmTQswXW8\n"
    "vpOYOA==\n"
    "-----END CERTIFICATE-----\n";

typedef struct pair {
    tern_ctx_t *ctx;
    tern_pc_t *pc[2]; /* [0] A, the target; [1] B, the peer */
    tern_addr_t addr[2];
    tern_time_t now;
    /* A's channels (valid until their CLOSE event is polled) */
    tern_dc_t *channels[PAIR_MAX_CHANNELS];
    size_t channel_count;
    bool b_has_channel;
    /* learnt from B's SCTP packets: what A's association expects */
    uint32_t vtag;
    uint16_t sport, dport;
    bool vtag_known;
    /* counts, for invariants */
    unsigned delivered;
} pair_t;

static uint64_t pair_seed;

/* usrsctp starts its stack (and a thread) with the first association and ends it with the
 * last: one association that is never connected keeps it up between inputs (fuzz_dcep does the
 * same), which makes an input several times cheaper. It holds no state an input could see. */
static inline void pair_keep_sctp_up(void)
{
    static tern_ctx_t base;
    static tern_sctp_t *keep;
    static uint64_t seed = 1;
    if (keep)
        return;
    tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
    tern_ctx_init_base(&base, &cfg);
    if (tern_sctp_new(&base, NULL, PAIR_START, &keep) != TERN_OK)
        abort();
}

static inline tern_ctx_t *pair_ctx(void)
{
    static tern_ctx_t *ctx;
    pair_seed = 0x7e57f022ull;
    pair_keep_sctp_up();
    if (!ctx) {
        tern_ctx_config_t cfg = {
            .random_bytes = tern_splitmix_random_bytes,
            .random_user = &pair_seed,
            .certificate_pem = pair_cert_pem,
            .private_key_pem = pair_key_pem,
        };
        if (tern_ctx_new(&cfg, &ctx) != TERN_OK)
            abort();
    }
    return ctx;
}

static inline void pair_forget_channel(pair_t *p, const tern_dc_t *dc)
{
    for (size_t i = 0; i < p->channel_count; i++)
        if (p->channels[i] == dc) {
            p->channels[i] = p->channels[--p->channel_count];
            return;
        }
}

static inline void pair_note_channel(pair_t *p, tern_dc_t *dc)
{
    for (size_t i = 0; i < p->channel_count; i++)
        if (p->channels[i] == dc)
            return;
    if (p->channel_count < PAIR_MAX_CHANNELS)
        p->channels[p->channel_count++] = dc;
}

/* Take every event of one pc: trickle candidates across, track A's channels. */
static inline void pair_events(pair_t *p, int i)
{
    tern_event_t ev;
    while (tern_pc_poll_event(p->pc[i], &ev)) {
        switch (ev.type) {
        case TERN_EV_ICE_CANDIDATE:
            (void)tern_pc_add_ice_candidate(p->pc[1 - i], p->now, ev.u.ice_candidate.candidate,
                                            ev.u.ice_candidate.mid);
            break;
        case TERN_EV_DATA_CHANNEL:
        case TERN_EV_DC_OPEN:
            if (i == 0)
                pair_note_channel(p, ev.dc);
            else
                p->b_has_channel = true;
            break;
        case TERN_EV_DC_MESSAGE:
            /* touch the payload: a stale pointer shows under ASan */
            if (ev.u.message.len)
                (void)ev.u.message.data[ev.u.message.len - 1];
            break;
        case TERN_EV_DC_CLOSE:
            if (i == 0)
                pair_forget_channel(p, ev.dc);
            break;
        default:
            break;
        }
    }
}

/* B's SCTP output through B's DTLS, by hand, learning A's verification tag on the way. */
static inline void pair_snoop_sctp(pair_t *p)
{
    tern_pc_t *b = p->pc[1];
    tern_transmit_t t;
    if (!b->sctp || !b->dtls || tern_dtls_state(b->dtls) != TERN_DTLS_STATE_CONNECTED)
        return;
    tern_ice_pair_view_t view;
    if (!tern_ice_selected_pair(b->ice, &view))
        return;
    while (tern_sctp_poll_transmit(b->sctp, &t)) {
        /* RFC 4960 §3.1: ports, then the receiver's tag (0 only in INIT). */
        if (t.len >= 12 && tern_load_u32(t.data + 4) != 0) {
            p->sport = tern_load_u16(t.data);
            p->dport = tern_load_u16(t.data + 2);
            p->vtag = tern_load_u32(t.data + 4);
            p->vtag_known = true;
        }
        (void)tern_dtls_send(b->dtls, b->now, t.data, t.len);
    }
}

static inline void pair_deliver(pair_t *p, int to, const tern_addr_t *from, const uint8_t *data,
                                size_t len)
{
    tern_datagram_t d = {.local = p->addr[to], .remote = *from, .data = data, .len = len};
    if (tern_pc_handle_input(p->pc[to], p->now, &d) != TERN_OK)
        abort();
    p->delivered++;
}

/* Hand every queued datagram of pc i to the other; returns how many moved. */
static inline unsigned pair_flush(pair_t *p, int i)
{
    unsigned moved = 0;
    tern_transmit_t t;
    if (i == 1)
        pair_snoop_sctp(p);
    while (tern_pc_poll_transmit(p->pc[i], &t)) {
        if (t.len == 0)
            abort();
        moved++;
        /* Only what goes to the other's address arrives (mDNS queries and the like do not). */
        if (tern_addr_equal(&t.remote, &p->addr[1 - i]))
            pair_deliver(p, 1 - i, &t.local, t.data, t.len);
        if (i == 1)
            pair_snoop_sctp(p);
    }
    return moved;
}

/* The context's pending pcs and every queue, until nothing moves (bounded). */
static inline void pair_exchange(pair_t *p)
{
    for (int round = 0; round < 64; round++) {
        unsigned moved = 0;
        tern_pc_t *pc;
        while ((pc = tern_ctx_poll_pending_pc(p->ctx)) != NULL)
            (void)pc; /* both are drained below anyway */
        for (int i = 0; i < 2; i++) {
            pair_events(p, i);
            moved += pair_flush(p, i);
            pair_events(p, i);
        }
        if (!moved)
            return;
    }
}

/* Move virtual time to `to`, firing every deadline on the way (a bounded number of them). */
static inline void pair_advance(pair_t *p, tern_time_t to)
{
    for (int guard = 0; guard < 1000; guard++) {
        tern_time_t d = tern_ctx_next_deadline(p->ctx);
        for (int i = 0; i < 2; i++)
            d = TERN_MIN(d, tern_pc_next_deadline(p->pc[i]));
        if (d > to)
            break;
        p->now = TERN_MAX(p->now, d);
        tern_ctx_handle_timeout(p->ctx, p->now);
        for (int i = 0; i < 2; i++)
            tern_pc_handle_timeout(p->pc[i], p->now);
        pair_exchange(p);
    }
    p->now = TERN_MAX(p->now, to);
    tern_ctx_handle_timeout(p->ctx, p->now);
    for (int i = 0; i < 2; i++)
        tern_pc_handle_timeout(p->pc[i], p->now);
    pair_exchange(p);
}

static inline bool pair_connected(const pair_t *p)
{
    return tern_pc_connection_state(p->pc[0]) == TERN_PC_STATE_CONNECTED &&
           tern_pc_connection_state(p->pc[1]) == TERN_PC_STATE_CONNECTED && p->channel_count > 0 &&
           p->b_has_channel && p->vtag_known;
}

/*
 * Build the pair: pcs, sockets, A's channel "fuzz", offer and answer. With `connect`, run
 * until both are connected and the channel is open on both sides (abort if that does not
 * happen within 10 s of virtual time: the harness would test nothing).
 */
static inline void pair_new(pair_t *p, bool connect)
{
    memset(p, 0, sizeof *p);
    p->ctx = pair_ctx();
    p->now = PAIR_START;
    if (tern_addr_parse("10.0.0.1:5000", &p->addr[0]) != TERN_OK ||
        tern_addr_parse("10.0.0.2:5000", &p->addr[1]) != TERN_OK)
        abort();
    tern_pc_config_t cfg = {.max_channels = 16, .max_buffered_bytes = 1 << 20};
    for (int i = 0; i < 2; i++) {
        if (tern_pc_new(p->ctx, &cfg, p->now, &p->pc[i]) != TERN_OK ||
            tern_pc_add_local_socket(p->pc[i], p->now, &p->addr[i]) != TERN_OK ||
            tern_pc_local_sockets_done(p->pc[i], p->now) != TERN_OK)
            abort();
    }
    tern_dc_t *dc = NULL;
    char *offer = NULL, *answer = NULL;
    if (tern_pc_create_data_channel(p->pc[0], p->now, "fuzz", NULL, &dc) != TERN_OK ||
        tern_pc_create_offer(p->pc[0], p->now, &offer) != TERN_OK ||
        tern_pc_set_local_description(p->pc[0], p->now, TERN_SDP_OFFER, offer) != TERN_OK ||
        tern_pc_set_remote_description(p->pc[1], p->now, TERN_SDP_OFFER, offer) != TERN_OK ||
        tern_pc_create_answer(p->pc[1], p->now, &answer) != TERN_OK ||
        tern_pc_set_local_description(p->pc[1], p->now, TERN_SDP_ANSWER, answer) != TERN_OK)
        abort();
    pair_note_channel(p, dc);
    tern_free(p->ctx, offer);
    tern_free(p->ctx, answer);
    if (!connect)
        return;
    if (tern_pc_set_remote_description(p->pc[0], p->now, TERN_SDP_ANSWER,
                                       tern_pc_local_description(p->pc[1])) != TERN_OK)
        abort();
    pair_exchange(p);
    for (tern_time_t t = p->now; !pair_connected(p) && t < PAIR_START + TERN_SEC(10);
         t += TERN_MS(10))
        pair_advance(p, t);
    if (!pair_connected(p))
        abort();
}

/* Close both (draining what they still send), then free them. */
static inline void pair_free(pair_t *p)
{
    for (int i = 0; i < 2; i++)
        tern_pc_close(p->pc[i], p->now);
    pair_exchange(p);
    for (int i = 0; i < 2; i++)
        tern_pc_free(p->pc[i]);
    /* usrsctp may still hold timers for the freed associations: run them out. */
    tern_ctx_handle_timeout(p->ctx, p->now + TERN_SEC(60));
    memset(p, 0, sizeof *p);
}

#endif
