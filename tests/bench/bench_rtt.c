/* SPDX-License-Identifier: MIT */
/*
 * Round-trip time of a 32-byte binary message on an open reliable ordered channel: the offerer
 * sends, the answerer echoes from its message callback, the offerer times the echo and sends the
 * next one at once (ping-pong, one message in flight). The first --warmup round trips are not
 * measured. Prints p50 and p99 in microseconds (and the mean and maximum as a note), and the CPU
 * time both sides spend per measured round trip.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PING_BYTES 32

typedef struct rtt_state {
    bench_node_t *node;
    int warmup, pings, sent, received;
    int64_t t_sent;
    double cpu_start; /* this process's CPU seconds when measuring began */
    double *us;
} rtt_state_t;

static void send_ping(bench_conn_t *c, rtt_state_t *st)
{
    uint8_t msg[PING_BYTES];
    memset(msg, 0xa5, sizeof msg);
    memcpy(msg, &st->sent, sizeof st->sent);
    st->sent++;
    st->t_sent = bench_clock_ns();
    int rc = tern_dc_send(c->dc, tern_loop_now(c->node->loop), msg, sizeof msg);
    if (rc != TERN_OK)
        bench_fail(c->node, "ping %d: tern_dc_send: %s", st->sent, tern_strerror(rc));
}

static void offer_on_open(bench_conn_t *c)
{
    send_ping(c, c->app);
}

static void offer_on_message(bench_conn_t *c, const uint8_t *data, size_t len, bool is_text)
{
    rtt_state_t *st = c->app;
    int64_t t = bench_clock_ns();
    int seq;
    memcpy(&seq, data, len >= sizeof seq ? sizeof seq : 0);
    if (len != PING_BYTES || is_text || seq != st->received) {
        bench_fail(c->node, "echo %d: %zu bytes, %s, number %d: not the ping sent", st->received,
                   len, is_text ? "text" : "binary", len >= sizeof seq ? seq : -1);
        return;
    }
    if (st->received >= st->warmup)
        st->us[st->received - st->warmup] = (double)(t - st->t_sent) / 1e3;
    st->received++;
    if (st->received == st->warmup) {
        /* The answering process counts its CPU from here too (a "mark" message). */
        st->cpu_start = bench_cpu_seconds();
        if (c->node->sig_fd >= 0)
            bench_send_control(c->node, "mark", 0, NULL, 0);
    }
    if (st->received == st->warmup + st->pings) {
        c->node->done = true;
        tern_loop_stop(c->node->loop);
        return;
    }
    send_ping(c, st);
}

static void answer_on_message(bench_conn_t *c, const uint8_t *data, size_t len, bool is_text)
{
    int rc = is_text
                 ? tern_dc_send_text(c->dc, tern_loop_now(c->node->loop), (const char *)data, len)
                 : tern_dc_send(c->dc, tern_loop_now(c->node->loop), data, len);
    if (rc != TERN_OK)
        bench_fail(c->node, "echo: tern_dc_send: %s", tern_strerror(rc));
}

static const bench_role_t offer_role = {.on_open = offer_on_open, .on_message = offer_on_message};
static const bench_role_t answer_role = {.on_message = answer_on_message};

static void report(const rtt_state_t *st, const char *name, double cpu)
{
    char fig[96];
    double mean = 0, *us = st->us;
    size_t n = (size_t)st->pings;
    for (size_t i = 0; i < n; i++)
        mean += us[i] / (double)n;
    double p50 = bench_quantile(us, n, 0.5), p99 = bench_quantile(us, n, 0.99);
    bench_note("%s: %d round trips after %d of warm-up, mean %.1f us, max %.1f us", name, st->pings,
               st->warmup, mean, bench_quantile(us, n, 1.0));
    snprintf(fig, sizeof fig, "%s_p50", name);
    bench_figure(fig, p50, 1, "us");
    snprintf(fig, sizeof fig, "%s_p99", name);
    bench_figure(fig, p99, 1, "us");
    /* CPU per round trip, both sides: what the latency costs, whatever else runs. */
    snprintf(fig, sizeof fig, "%s_cpu", name);
    bench_figure(fig, cpu / st->pings * 1e6, 1, "us");
}

int bench_rtt(const bench_opts_t *opts, bool two_proc, const char *name)
{
    int sig_fd = -1;
    pid_t child = 0;
    if (two_proc && (child = bench_spawn_peer(opts, &answer_role, NULL, &sig_fd)) < 0)
        return -1;
    bench_node_t *n = bench_node_new(opts, sig_fd);
    rtt_state_t st = {.node = n, .warmup = opts->rtt_warmup, .pings = opts->rtt_pings};
    st.us = calloc((size_t)st.pings, sizeof *st.us);
    int rc = -1;
    if (n && st.us) {
        n->offer_role = &offer_role;
        n->answer_role = &answer_role;
        if (bench_connect(n, &st))
            rc = bench_node_run(n, 60 + (double)(st.warmup + st.pings) * 0.01);
        bench_stat_t peer = {0};
        double self = bench_cpu_seconds() - st.cpu_start;
        if (rc == 0 && two_proc && bench_peer_stat(n, &peer) != 0)
            rc = -1;
        if (rc == 0)
            report(&st, name, self + peer.cpu_since_mark);
    }
    if (two_proc && bench_reap_peer(n, child) != 0)
        rc = -1;
    bench_node_free(n);
    free(st.us);
    return rc;
}
