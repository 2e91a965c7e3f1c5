/* SPDX-License-Identifier: MIT */
/*
 * Bulk throughput of one reliable ordered channel. The offerer sends --bytes in messages of one
 * size (16 or 64 KiB), with the flow control a browser application uses: the
 * buffered-amount-low threshold at --low, and each buffered-amount-low event refills the channel
 * up to --high. It stops early after --seconds. Then a text message "end COUNT BYTES HASH" tells
 * the receiver what was sent; the receiver, which checked every message on arrival (its size,
 * its sequence number and a position-dependent sum of its body), compares and answers
 * "ok CPU" or "bad WHY". Prints MB/s (bytes over the time from the channel's open to the
 * answer) and the CPU seconds of the process(es) over that time.
 *
 * Message bodies come from a pool of pseudo-random buffers made the same way on both sides, so
 * the receiver can check each message in one pass and the sender pays nothing per byte.
 */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL 8
#define FNV_PRIME 0x100000001b3ull

typedef struct bulk_state {
    const bench_opts_t *opts;
    size_t msg_size;
    uint8_t *pool[POOL];
    uint64_t body_sum[POOL];

    /* sender */
    uint64_t total_bytes;
    uint64_t sent_msgs, sent_bytes, send_hash;
    uint64_t low_events;
    bool end_sent, capped, done;
    int64_t t_start, t_end;
    double cpu_start, cpu_used, peer_cpu;

    /* receiver */
    uint64_t recv_msgs, recv_bytes, recv_hash;
    double recv_cpu_start;
    bool recv_started;
} bulk_state_t;

/* The receiver's state in the answering process (one channel there). */
static bulk_state_t child_state;

/* ---- message bodies ---- */

static uint64_t next_random(uint64_t *x)
{
    /* xorshift64*: fast, and the same sequence on both sides. */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545f4914f6cdd1dull;
}

/* A sum that depends on where each word is, so moved or swapped words are caught too. */
static uint64_t sum_body(const uint8_t *p, size_t len)
{
    uint64_t s = 0, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        s += w ^ i;
    }
    for (; i < len; i++)
        s += (uint64_t)p[i] << (i % 8 * 8);
    return s;
}

static bool make_pool(bulk_state_t *st, size_t msg_size)
{
    st->msg_size = msg_size;
    for (int k = 0; k < POOL; k++) {
        uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(k + 1);
        st->pool[k] = malloc(msg_size);
        if (!st->pool[k])
            return false;
        for (size_t i = 0; i < msg_size; i++)
            st->pool[k][i] = (uint8_t)next_random(&x);
        st->body_sum[k] = sum_body(st->pool[k] + 8, msg_size - 8);
    }
    return true;
}

static void free_pool(bulk_state_t *st)
{
    for (int k = 0; k < POOL; k++)
        free(st->pool[k]);
}

static uint64_t mix(uint64_t hash, uint64_t seq, uint64_t body_sum)
{
    return (hash ^ (seq * 0x9e3779b97f4a7c15ull + body_sum)) * FNV_PRIME;
}

/* ---- sender ---- */

static void send_end(bench_conn_t *c, bulk_state_t *st)
{
    char text[128];
    int len = snprintf(text, sizeof text, "end %" PRIu64 " %" PRIu64 " %" PRIu64, st->sent_msgs,
                       st->sent_bytes, st->send_hash);
    st->end_sent = true;
    int rc = tern_dc_send_text(c->dc, tern_loop_now(c->node->loop), text, (size_t)len);
    if (rc != TERN_OK)
        bench_fail(c->node, "sending the end message: %s", tern_strerror(rc));
}

static void fill(bench_conn_t *c, bulk_state_t *st)
{
    tern_time_t now = tern_loop_now(c->node->loop);
    int64_t stop_at = st->t_start + (int64_t)(st->opts->bulk_seconds * 1e9);
    while (!st->end_sent && !c->node->failed) {
        st->capped = bench_clock_ns() > stop_at;
        if (st->sent_bytes >= st->total_bytes || st->capped) {
            send_end(c, st);
            return;
        }
        if (tern_dc_buffered_amount(c->dc) >= st->opts->bulk_high)
            return;
        uint64_t seq = st->sent_msgs;
        uint8_t *msg = st->pool[seq % POOL];
        memcpy(msg, &seq, 8);
        int rc = tern_dc_send(c->dc, now, msg, st->msg_size);
        if (rc != TERN_OK) {
            bench_fail(c->node, "message %" PRIu64 ": tern_dc_send: %s (buffered %zu)", seq,
                       tern_strerror(rc), tern_dc_buffered_amount(c->dc));
            return;
        }
        st->send_hash = mix(st->send_hash, seq, st->body_sum[seq % POOL]);
        st->sent_msgs++;
        st->sent_bytes += st->msg_size;
    }
}

static void sender_on_open(bench_conn_t *c)
{
    bulk_state_t *st = c->app;
    tern_dc_set_buffered_amount_low_threshold(c->dc, st->opts->bulk_low);
    st->t_start = bench_clock_ns();
    st->cpu_start = bench_cpu_seconds();
    fill(c, st);
}

static void sender_on_low(bench_conn_t *c)
{
    bulk_state_t *st = c->app;
    st->low_events++;
    fill(c, st);
}

static void sender_on_message(bench_conn_t *c, const uint8_t *data, size_t len, bool is_text)
{
    bulk_state_t *st = c->app;
    char text[256];
    snprintf(text, sizeof text, "%.*s", (int)len, (const char *)data);
    st->t_end = bench_clock_ns();
    st->cpu_used = bench_cpu_seconds() - st->cpu_start;
    if (!is_text || sscanf(text, "ok %lf", &st->peer_cpu) != 1) {
        bench_fail(c->node, "the receiver says: %s", text);
        return;
    }
    st->done = true;
    c->node->done = true;
    tern_loop_stop(c->node->loop);
}

/* ---- receiver ---- */

static void reply(bench_conn_t *c, const char *text)
{
    int rc = tern_dc_send_text(c->dc, tern_loop_now(c->node->loop), text, strlen(text));
    if (rc != TERN_OK)
        bench_fail(c->node, "sending the verdict: %s", tern_strerror(rc));
}

static void check_end(bench_conn_t *c, bulk_state_t *st, const uint8_t *data, size_t len)
{
    char text[256], verdict[320];
    uint64_t msgs, bytes, hash;
    snprintf(text, sizeof text, "%.*s", (int)len, (const char *)data);
    if (sscanf(text, "end %" SCNu64 " %" SCNu64 " %" SCNu64, &msgs, &bytes, &hash) != 3) {
        snprintf(verdict, sizeof verdict, "bad: unexpected text \"%s\"", text);
    } else if (msgs != st->recv_msgs || bytes != st->recv_bytes || hash != st->recv_hash) {
        snprintf(verdict, sizeof verdict,
                 "bad: sent %" PRIu64 " messages, %" PRIu64 " bytes, hash %" PRIx64
                 "; received %" PRIu64 ", %" PRIu64 ", %" PRIx64,
                 msgs, bytes, hash, st->recv_msgs, st->recv_bytes, st->recv_hash);
    } else {
        double cpu = st->recv_started ? bench_cpu_seconds() - st->recv_cpu_start : 0;
        snprintf(verdict, sizeof verdict, "ok %.6f", cpu);
    }
    if (verdict[0] == 'b')
        bench_note("receiver: %s", verdict);
    reply(c, verdict);
}

static void receiver_on_message(bench_conn_t *c, const uint8_t *data, size_t len, bool is_text)
{
    bulk_state_t *st = c->app ? c->app : &child_state;
    if (is_text) {
        check_end(c, st, data, len);
        return;
    }
    if (!st->recv_started) {
        st->recv_started = true;
        st->recv_cpu_start = bench_cpu_seconds();
        if (!st->pool[0] && (len < 16 || !make_pool(st, len))) {
            bench_fail(c->node, "receiver: first message of %zu bytes", len);
            return;
        }
    }
    uint64_t seq;
    memcpy(&seq, data, len >= 8 ? 8 : 0);
    if (len != st->msg_size || seq != st->recv_msgs ||
        sum_body(data + 8, len - 8) != st->body_sum[seq % POOL]) {
        bench_fail(c->node,
                   "receiver: message %" PRIu64 " corrupt or out of order (%zu bytes, "
                   "number %" PRIu64 ")",
                   st->recv_msgs, len, len == st->msg_size ? seq : 0);
        return;
    }
    st->recv_hash = mix(st->recv_hash, seq, st->body_sum[seq % POOL]);
    st->recv_msgs++;
    st->recv_bytes += len;
}

static const bench_role_t sender_role = {
    .on_open = sender_on_open, .on_message = sender_on_message, .on_low = sender_on_low};
static const bench_role_t receiver_role = {.on_message = receiver_on_message};

/* ---- the benchmark ---- */

static void note_stack_counters(const bench_node_t *n, const char *name)
{
    for (const bench_conn_t *c = n->conns; c; c = c->next) {
        tern_pc_stats_t s;
        tern_pc_get_stats(c->pc, &s);
        bench_note("%s: %s pc sent %llu datagrams (%.0f B average), received %llu, dropped %llu",
                   name, c->offerer ? "sending" : "receiving", (unsigned long long)s.datagrams_sent,
                   s.datagrams_sent ? (double)s.bytes_sent / (double)s.datagrams_sent : 0.0,
                   (unsigned long long)s.datagrams_received,
                   (unsigned long long)s.datagrams_dropped);
    }
}

static void report(const bulk_state_t *st, const bench_node_t *n, bool two_proc, const char *name)
{
    char fig[96];
    double secs = (double)(st->t_end - st->t_start) / 1e9;
    double cpu = st->cpu_used + (two_proc ? st->peer_cpu : 0);
    char split[96] = "one process: the split between sender and receiver is not known";
    if (two_proc)
        snprintf(split, sizeof split, "sender %.2f s, receiver %.2f s", st->cpu_used, st->peer_cpu);
    bench_note("%s: %" PRIu64 " bytes in %" PRIu64 " messages in %.3f s%s; CPU %.2f s (%s); "
               "%" PRIu64 " buffered-amount-low events",
               name, st->sent_bytes, st->sent_msgs, secs,
               st->capped ? " (stopped at --seconds)" : "", cpu, split, st->low_events);
    /* Bytes per CPU second do not depend on what else runs on the machine: with a core for
     * each side (2proc) or one core (1proc), the wall-clock figure cannot beat it. */
    bench_note("%s: %.1f MB per CPU second (all processes)", name,
               cpu > 0 ? (double)st->sent_bytes / 1e6 / cpu : 0.0);
    note_stack_counters(n, name);
    bench_figure(name, (double)st->sent_bytes / 1e6 / secs, 1, "MB/s");
    snprintf(fig, sizeof fig, "%s_cpu", name);
    bench_figure(fig, cpu, 2, "s");
}

int bench_throughput(const bench_opts_t *opts, bool two_proc, size_t msg_size, const char *name)
{
    int sig_fd = -1;
    pid_t child = 0;
    if (two_proc && (child = bench_spawn_peer(opts, &receiver_role, NULL, &sig_fd)) < 0)
        return -1;
    bench_node_t *n = bench_node_new(opts, sig_fd);
    bulk_state_t st = {.opts = opts, .total_bytes = opts->bulk_bytes};
    int rc = -1;
    if (n && make_pool(&st, msg_size)) {
        n->offer_role = &sender_role;
        n->answer_role = &receiver_role;
        if (bench_connect(n, &st))
            rc = bench_node_run(n, opts->bulk_seconds + 60);
        if (rc == 0)
            report(&st, n, two_proc, name);
    }
    if (two_proc && bench_reap_peer(n, child) != 0)
        rc = -1;
    bench_node_free(n);
    free_pool(&st);
    return rc;
}
