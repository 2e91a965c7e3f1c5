/* SPDX-License-Identifier: MIT */
/*
 * Two peer connections in one process over real UDP sockets on loopback, driven by tern_loop:
 * thousands of messages of random sizes (0 B to 256 KiB) on several kinds of channel at once,
 * every byte checked; channels closed from either side; a peer closed while sending; a wrong
 * fingerprint refused. Deadlines here only say when to give up, never how fast things must be.
 */
#include "check.h"

#include <tern/tern.h>

#include <stdlib.h>
#include <string.h>

#define GIVE_UP_MS 120000
#define MAX_MESSAGE (256 * 1024)

enum { CH_ORDERED, CH_UNORDERED, CH_LOSSY, CH_NEGOTIATED, CH_COUNT };
static const char *const channel_labels[CH_COUNT] = {"ordered", "unordered", "lossy",
                                                     "negotiated"};

typedef struct peer peer_t;

typedef struct channel_side {
    tern_dc_t *dc;
    bool open, closed;
    uint32_t sent;        /* messages of 4 bytes or more sent on it (they carry a sequence) */
    uint32_t total_sent;  /* every message sent on it */
    uint32_t received;    /* messages received on it */
    uint32_t next_seq;    /* ordered channels: the sequence number expected next */
    uint8_t *seen;        /* one flag per sequence number: duplicates are errors */
    uint32_t corrupt;     /* messages whose bytes did not match */
    uint32_t out_of_order;
    uint32_t duplicates;
} channel_side_t;

struct peer {
    const char *name;
    tern_ctx_t *ctx;
    tern_loop_t *loop;
    tern_pc_t *pc;
    peer_t *other;
    channel_side_t ch[CH_COUNT];
    uint32_t to_send; /* messages still to send, over all channels */
    uint64_t rng;
    tern_pc_state_t state;
    bool failed;
    bool dropped_candidates; /* for the wrong-fingerprint test: no trickle needed */
};

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Sizes spread over every order of magnitude up to 256 KiB, with the edges (0, 1, max). */
static size_t random_size(uint64_t *rng)
{
    uint64_t r = splitmix(rng);
    switch (r % 16) {
    case 0:
        return 0;
    case 1:
        return 1;
    case 2:
        return MAX_MESSAGE;
    default: {
        unsigned bits = (unsigned)((r >> 8) % 18) + 1; /* up to 2^18 = 256 KiB */
        return (size_t)((r >> 16) & ((1u << bits) - 1));
    }
    }
}

/* Message layout: 4-byte sequence, then bytes derived from (channel, sequence, offset); text
 * messages use printable ASCII so they are valid UTF-8. */
static uint8_t pattern_byte(int channel, uint32_t seq, size_t i, bool text)
{
    uint32_t v = (uint32_t)channel * 2654435761u ^ seq * 40503u ^ (uint32_t)i * 2246822519u;
    v ^= v >> 13;
    return text ? (uint8_t)(' ' + v % 95) : (uint8_t)v;
}

static void fill_message(uint8_t *buf, size_t len, int channel, uint32_t seq, bool text)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_byte(channel, seq, i, text);
    if (len >= 4) { /* the sequence number leads, in a form that stays printable for text */
        for (int k = 0; k < 4; k++)
            buf[k] = (uint8_t)('A' + ((seq >> (k * 4)) & 15));
    }
}

static bool decode_seq(const uint8_t *data, size_t len, uint32_t *seq)
{
    if (len < 4)
        return false;
    *seq = 0;
    for (int k = 0; k < 4; k++) {
        if (data[k] < 'A' || data[k] > 'A' + 15)
            return false;
        *seq |= (uint32_t)(data[k] - 'A') << (k * 4);
    }
    return true;
}

static int channel_index(tern_dc_t *dc)
{
    for (int i = 0; i < CH_COUNT; i++)
        if (strcmp(tern_dc_label(dc), channel_labels[i]) == 0)
            return i;
    return -1;
}

static void pump_sends(peer_t *p);

static void on_ice_candidate(tern_pc_t *pc, void *user, const char *candidate, const char *mid,
                             int mline_index)
{
    (void)pc;
    (void)mline_index;
    peer_t *p = user;
    if (!p->dropped_candidates)
        tern_pc_add_ice_candidate(p->other->pc, tern_loop_now(p->loop), candidate, mid);
}

static void on_connection_state(tern_pc_t *pc, void *user, tern_pc_state_t s)
{
    (void)pc;
    peer_t *p = user;
    p->state = s;
    if (s == TERN_PC_STATE_FAILED)
        p->failed = true;
}

static void attach_channel(peer_t *p, tern_dc_t *dc)
{
    int i = channel_index(dc);
    if (i < 0)
        return;
    p->ch[i].dc = dc;
    tern_dc_set_buffered_amount_low_threshold(dc, 256 * 1024);
}

static void on_data_channel(tern_pc_t *pc, void *user, tern_dc_t *dc)
{
    (void)pc;
    attach_channel(user, dc);
}

static void on_open(tern_dc_t *dc, void *user)
{
    peer_t *p = user;
    int i = channel_index(dc);
    if (i < 0)
        return;
    p->ch[i].dc = dc;
    p->ch[i].open = true;
    pump_sends(p);
}

/* Sequence numbers per channel are bounded by the messages a side sends. */
#define MAX_SEQ 16384

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    peer_t *p = user;
    int i = channel_index(dc);
    if (i < 0)
        return;
    channel_side_t *c = &p->ch[i];
    c->received++;
    uint32_t seq = 0;
    if (len < 4) {
        /* Short messages carry no sequence: check their bytes against every possible one is
         * not possible, so they only count (their content is checked by length and text). */
        if (len > 0 && is_text && (data[0] < ' ' || data[0] > '~'))
            c->corrupt++;
        return;
    }
    if (!decode_seq(data, len, &seq) || seq >= MAX_SEQ) {
        fprintf(stderr, "# %s: corrupt header on %s: len %zu text %d\n", p->name,
                channel_labels[i], len, is_text);
        c->corrupt++;
        return;
    }
    for (size_t k = 4; k < len; k++) {
        if (data[k] != pattern_byte(i, seq, k, is_text)) {
            fprintf(stderr, "# %s: corrupt byte on %s: seq %u len %zu text %d at %zu\n", p->name,
                    channel_labels[i], seq, len, is_text, k);
            c->corrupt++;
            return;
        }
    }
    if (c->seen[seq])
        c->duplicates++;
    c->seen[seq] = 1;
    if (i == CH_ORDERED || i == CH_NEGOTIATED) {
        if (seq < c->next_seq)
            c->out_of_order++;
        c->next_seq = seq + 1;
    }
}

static void on_buffered_amount_low(tern_dc_t *dc, void *user)
{
    (void)dc;
    pump_sends(user);
}

static void on_close(tern_dc_t *dc, void *user)
{
    peer_t *p = user;
    int i = channel_index(dc);
    if (i >= 0) {
        p->ch[i].closed = true;
        p->ch[i].open = false;
        p->ch[i].dc = NULL;
    }
}

static const tern_pc_callbacks_t callbacks = {
    .on_ice_candidate = on_ice_candidate,
    .on_connection_state = on_connection_state,
    .on_data_channel = on_data_channel,
    .on_open = on_open,
    .on_message = on_message,
    .on_buffered_amount_low = on_buffered_amount_low,
    .on_close = on_close,
};

/* Send while the channels' buffers are below 1 MiB; the low-threshold event resumes. */
static void pump_sends(peer_t *p)
{
    static uint8_t buf[MAX_MESSAGE];
    while (p->to_send > 0) {
        int i = (int)(splitmix(&p->rng) % CH_COUNT);
        channel_side_t *c = &p->ch[i];
        if (!c->open || !c->dc || tern_dc_buffered_amount(c->dc) > (1u << 20))
            return;
        size_t len = random_size(&p->rng);
        bool text = splitmix(&p->rng) & 1;
        uint32_t seq = c->sent;
        if (len >= 4 && seq >= MAX_SEQ)
            return;
        fill_message(buf, len, i, seq, text);
        tern_time_t now = tern_loop_now(p->loop);
        int err = text ? tern_dc_send_text(c->dc, now, (const char *)buf, len)
                       : tern_dc_send(c->dc, now, buf, len);
        if (err)
            return;
        if (len >= 4)
            c->sent++;
        c->total_sent++;
        p->to_send--;
    }
}

static void peer_init(peer_t *p, const char *name, tern_ctx_t *ctx, tern_loop_t *loop,
                      uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    p->ctx = ctx;
    p->loop = loop;
    p->rng = seed;
    for (int i = 0; i < CH_COUNT; i++)
        p->ch[i].seen = calloc(MAX_SEQ, 1);
    static const char *const loopback[] = {"127.0.0.1"};
    tern_pc_config_t cfg = {.include_loopback = true, .bind_addresses = loopback,
                            .bind_address_count = 1};
    ok(tern_pc_new(ctx, &cfg, tern_loop_now(loop), &p->pc) == TERN_OK);
    ok(tern_loop_add_pc(loop, p->pc, &callbacks, p) == TERN_OK);
}

static void peer_dispose(peer_t *p)
{
    tern_loop_remove_pc(p->loop, p->pc);
    tern_pc_free(p->pc);
    for (int i = 0; i < CH_COUNT; i++)
        free(p->ch[i].seen);
}

/* Run the loop until cond(arg) holds or GIVE_UP_MS pass. */
static bool run_until(tern_loop_t *loop, bool (*cond)(void *), void *arg, int give_up_ms)
{
    tern_time_t end = tern_loop_now(loop) + (tern_time_t)give_up_ms * 1000;
    while (!cond(arg)) {
        if (tern_loop_now(loop) > end)
            return false;
        tern_loop_run_once(loop, 50);
    }
    return true;
}

static int negotiate(peer_t *offerer, peer_t *answerer, bool corrupt_fingerprint)
{
    tern_time_t now = tern_loop_now(offerer->loop);
    char *offer = NULL, *answer = NULL;
    int err = tern_pc_create_offer(offerer->pc, now, &offer);
    if (!err)
        err = tern_pc_set_local_description(offerer->pc, now, TERN_SDP_OFFER, offer);
    if (!err)
        err = tern_pc_set_remote_description(answerer->pc, now, TERN_SDP_OFFER, offer);
    if (!err)
        err = tern_pc_create_answer(answerer->pc, now, &answer);
    if (!err)
        err = tern_pc_set_local_description(answerer->pc, now, TERN_SDP_ANSWER, answer);
    if (!err && corrupt_fingerprint) {
        /* Change one hex digit of the answerer's fingerprint as the offerer receives it. */
        char *fp = strstr(answer, "a=fingerprint:sha-256 ");
        if (fp) {
            char *digit = fp + strlen("a=fingerprint:sha-256 ");
            *digit = *digit == 'A' ? 'B' : 'A';
        }
    }
    if (!err)
        err = tern_pc_set_remote_description(offerer->pc, now, TERN_SDP_ANSWER, answer);
    tern_free(offerer->ctx, offer);
    tern_free(offerer->ctx, answer);
    return err;
}

typedef struct pair {
    peer_t a, b;
} pair_t;

static bool all_open(void *arg)
{
    pair_t *t = arg;
    for (int i = 0; i < CH_COUNT; i++)
        if (!t->a.ch[i].open || !t->b.ch[i].open)
            return false;
    return true;
}

/* Every reliable channel has delivered all it was given, in both directions. */
static bool all_sent_and_delivered(void *arg)
{
    pair_t *t = arg;
    peer_t *sides[2] = {&t->a, &t->b};
    if (t->a.failed || t->b.failed)
        return true;
    for (int s = 0; s < 2; s++) {
        peer_t *p = sides[s];
        if (p->to_send > 0)
            return false;
        for (int i = 0; i < CH_COUNT; i++) {
            if (i == CH_LOSSY)
                continue; /* may lose messages: not waited for */
            if (p->other->ch[i].received < p->ch[i].total_sent)
                return false;
        }
    }
    return true;
}

static bool closed_both(void *arg)
{
    pair_t *t = arg;
    return t->a.ch[CH_ORDERED].closed && t->b.ch[CH_ORDERED].closed &&
           t->a.ch[CH_UNORDERED].closed && t->b.ch[CH_UNORDERED].closed;
}

static bool bob_closed(void *arg)
{
    pair_t *t = arg;
    for (int i = 0; i < CH_COUNT; i++)
        if (t->b.ch[i].dc && !t->b.ch[i].closed)
            return false;
    return t->b.state == TERN_PC_STATE_CLOSED || t->b.state == TERN_PC_STATE_FAILED ||
           t->b.state == TERN_PC_STATE_DISCONNECTED;
}

static void open_channels(pair_t *t)
{
    tern_time_t now = tern_loop_now(t->a.loop);
    tern_dc_t *dc;
    tern_dc_init_t init[CH_COUNT] = {
        [CH_ORDERED] = {0},
        [CH_UNORDERED] = {.unordered = true},
        [CH_LOSSY] = {.unordered = true, .reliability = TERN_DC_MAX_RETRANSMITS},
        [CH_NEGOTIATED] = {.negotiated = true, .id = 100},
    };
    for (int i = 0; i < CH_COUNT; i++) {
        eq_int(tern_pc_create_data_channel(t->a.pc, now, channel_labels[i], &init[i], &dc), 0);
        attach_channel(&t->a, dc);
    }
    /* The negotiated channel exists on both sides by agreement, with no DCEP. */
    eq_int(tern_pc_create_data_channel(t->b.pc, now, channel_labels[CH_NEGOTIATED],
                                       &init[CH_NEGOTIATED], &dc),
           0);
    attach_channel(&t->b, dc);
}

static tern_ctx_t *ctx;
static tern_loop_t *loop;

static void test_many_messages(void)
{
    pair_t t;
    peer_init(&t.a, "alice", ctx, loop, 1);
    peer_init(&t.b, "bob", ctx, loop, 2);
    t.a.other = &t.b;
    t.b.other = &t.a;
    open_channels(&t);
    eq_int(negotiate(&t.a, &t.b, false), 0);
    ok(run_until(loop, all_open, &t, 20000));
    eq_int(t.a.state, TERN_PC_STATE_CONNECTED);
    eq_int(t.b.state, TERN_PC_STATE_CONNECTED);

    tern_pc_pair_info_t pair;
    eq_int(tern_pc_selected_pair(t.a.pc, &pair), 0);

    t.a.to_send = t.b.to_send = 5000; /* 10,000 messages in all, both directions */
    pump_sends(&t.a);
    pump_sends(&t.b);
    ok(run_until(loop, all_sent_and_delivered, &t, GIVE_UP_MS));
    ok(!t.a.failed && !t.b.failed);
    peer_t *sides[2] = {&t.a, &t.b};
    for (int s = 0; s < 2; s++) {
        peer_t *rx = sides[s];
        for (int i = 0; i < CH_COUNT; i++) {
            eq_int(rx->ch[i].corrupt, 0);
            eq_int(rx->ch[i].duplicates, 0);
            eq_int(rx->ch[i].out_of_order, 0);
            if (i != CH_LOSSY) /* reliable: exactly what was sent, no more, no less */
                eq_int(rx->ch[i].received, rx->other->ch[i].total_sent);
        }
        /* The lossy channel never delivers more than was sent. */
        ok(rx->ch[CH_LOSSY].received <= rx->other->ch[CH_LOSSY].total_sent);
    }

    /* Close "ordered" from alice and "unordered" from bob: both sides see both close. */
    tern_time_t now = tern_loop_now(loop);
    eq_int(tern_dc_close(t.a.ch[CH_ORDERED].dc, now), 0);
    eq_int(tern_dc_close(t.b.ch[CH_UNORDERED].dc, now), 0);
    ok(run_until(loop, closed_both, &t, 20000));
    eq_int(tern_pc_connection_state(t.a.pc), TERN_PC_STATE_CONNECTED);

    /* A peer closed while sending: bob sees its channels close and the connection end. */
    t.a.to_send = 1000;
    pump_sends(&t.a);
    eq_int(tern_pc_close(t.a.pc, tern_loop_now(loop)), 0);
    ok(run_until(loop, bob_closed, &t, 40000));
    peer_dispose(&t.a);
    peer_dispose(&t.b);
}

static bool offerer_failed(void *arg)
{
    pair_t *t = arg;
    return t->a.failed;
}

static void test_wrong_fingerprint(void)
{
    pair_t t;
    peer_init(&t.a, "alice", ctx, loop, 3);
    peer_init(&t.b, "bob", ctx, loop, 4);
    t.a.other = &t.b;
    t.b.other = &t.a;
    tern_dc_t *dc;
    eq_int(tern_pc_create_data_channel(t.a.pc, tern_loop_now(loop), "x", NULL, &dc), 0);
    eq_int(negotiate(&t.a, &t.b, true), 0);
    ok(run_until(loop, offerer_failed, &t, 20000));
    eq_int(tern_pc_connection_state(t.a.pc), TERN_PC_STATE_FAILED);
    ok(strstr(tern_pc_last_error(t.a.pc), "fingerprint") != NULL);
    ok(!t.a.ch[0].open);
    peer_dispose(&t.a);
    peer_dispose(&t.b);
}

int main(void)
{
    ok(tern_ctx_new(NULL, &ctx) == TERN_OK);
    ok(tern_loop_new(ctx, &loop) == TERN_OK);
    subtest("10,000 messages on four kinds of channel, closes, close while sending",
            test_many_messages);
    subtest("wrong fingerprint refused", test_wrong_fingerprint);
    tern_loop_free(loop);
    tern_ctx_free(ctx);
    return check_done();
}
