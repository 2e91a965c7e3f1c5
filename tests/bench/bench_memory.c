/* SPDX-License-Identifier: MIT */
/*
 * Resident memory per idle connection and idle CPU. After one connection is opened and closed
 * (so that what the stack sets up once per process, usrsctp, OpenSSL, the loop's buffers, is in
 * the baseline), connections are opened, a few at a time, until the measured process holds
 * --conns N peer connections with an open channel each, then M; at each point, after a second
 * of rest, (RSS - baseline RSS) / connections, RSS from /proc/self/statm. In one process the N
 * pcs are N/2 connected pairs; in two processes each process holds N pcs, and the answering
 * process reports its own figure too. Then the CPU seconds the process(es) use during --idle
 * seconds with M connections open, doing nothing; and a check that every connection is still
 * open afterwards.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

/* Connections being set up at once. */
#define IN_FLIGHT 16
/* Seconds to rest before reading RSS, so that setup's transient buffers are gone (--quick: a
 * smoke run, whose figures mean nothing anyway, rests less). */
#define SETTLE_SECONDS(opts) ((opts)->quick ? 0.2 : 1.0)

typedef struct mem_state {
    bench_node_t *node;
    bool two_proc;
    int target;  /* connections (pairs in one process) to have open */
    int started; /* connections started in this phase, towards target */
} mem_state_t;

/* Connections counted towards the target: offerer-side opens. */
static int opened(const bench_node_t *n)
{
    int k = 0;
    for (const bench_conn_t *c = n->conns; c; c = c->next)
        k += c->offerer && c->open && (!c->peer || c->peer->open);
    return k;
}

static void start_more(mem_state_t *st)
{
    bench_node_t *n = st->node;
    int in_flight = (int)n->conn_count / (st->two_proc ? 1 : 2) - opened(n);
    while (!n->failed && st->started < st->target && in_flight < IN_FLIGHT) {
        if (!bench_connect(n, st))
            return;
        st->started++;
        in_flight++;
    }
}

static void on_conn_open(bench_conn_t *c)
{
    mem_state_t *st = c->app;
    bench_node_t *n = c->node;
    if (opened(n) >= st->target) {
        n->done = true;
        tern_loop_stop(n->loop);
        return;
    }
    start_more(st);
}

/* Open connections until `pairs` are open, a few at a time. */
static int open_until(mem_state_t *st, int pairs)
{
    bench_node_t *n = st->node;
    st->target = pairs;
    n->done = false;
    start_more(st);
    int rc = bench_node_run(n, 60 + pairs * 0.2);
    n->done = false;
    return rc;
}

/* The warm-up connection: open it, close it, wait until it is gone on this side. */
static int warm_up(mem_state_t *st)
{
    bench_node_t *n = st->node;
    if (open_until(st, 1) != 0)
        return -1;
    for (bench_conn_t *c = n->conns; c; c = c->next)
        bench_conn_close(c);
    st->started = 0;
    for (int i = 0; i < 100 && n->conn_count > 0 && !n->failed; i++)
        bench_node_run_for(n, 0.02);
    return bench_node_run_for(n, SETTLE_SECONDS(n->opts));
}

static int take_stats(mem_state_t *st, bench_stat_t *self, bench_stat_t *peer)
{
    bench_self_stat(st->node, self);
    memset(peer, 0, sizeof *peer);
    return st->two_proc ? bench_peer_stat(st->node, peer) : 0;
}

static void report_memory(const char *name, int pcs, const bench_stat_t *base,
                          const bench_stat_t *now, const char *suffix)
{
    char fig[96];
    double per = ((double)now->rss_bytes - (double)base->rss_bytes) / pcs / 1024.0;
    bench_note("%s: %s RSS %.1f MiB with %d pcs, baseline %.1f MiB", name,
               suffix[0] ? "answering process" : "measured process",
               (double)now->rss_bytes / 1048576.0, pcs, (double)base->rss_bytes / 1048576.0);
    snprintf(fig, sizeof fig, "mem_%s_%d%s", strstr(name, "2proc") ? "2proc" : "1proc", pcs,
             suffix);
    bench_figure(fig, per, 1, "KiB/pc");
}

static int measure_point(mem_state_t *st, const char *name, int pcs, const bench_stat_t *base,
                         const bench_stat_t *peer_base)
{
    bench_stat_t self, peer;
    int pairs = st->two_proc ? pcs : (pcs + 1) / 2;
    int64_t t0 = bench_clock_ns();
    if (open_until(st, pairs) != 0)
        return -1;
    bench_note("%s: %d connections open in %.2f s", name, pairs,
               (double)(bench_clock_ns() - t0) / 1e9);
    if (bench_node_run_for(st->node, SETTLE_SECONDS(st->node->opts)) != 0 ||
        take_stats(st, &self, &peer) != 0)
        return -1;
    int here = st->two_proc ? pairs : 2 * pairs;
    report_memory(name, here, base, &self, "");
    if (st->two_proc)
        report_memory(name, (int)peer.conns, peer_base, &peer, "_answerer");
    return 0;
}

static int measure_idle(mem_state_t *st, const char *name, int pcs)
{
    bench_node_t *n = st->node;
    bench_stat_t self0, peer0, self1, peer1;
    char fig[96];
    const char *mode = st->two_proc ? "2proc" : "1proc";
    if (take_stats(st, &self0, &peer0) != 0 || bench_node_run_for(n, n->opts->idle_seconds) != 0 ||
        take_stats(st, &self1, &peer1) != 0)
        return -1;
    bench_note("%s: CPU seconds over %.1f s idle with %d pcs in the process", name,
               n->opts->idle_seconds, pcs);
    snprintf(fig, sizeof fig, "idle_cpu_%s_%d", mode, pcs);
    bench_figure(fig, self1.cpu_seconds - self0.cpu_seconds, 3, "s");
    if (st->two_proc) {
        snprintf(fig, sizeof fig, "idle_cpu_%s_%d_answerer", mode, pcs);
        bench_figure(fig, peer1.cpu_seconds - peer0.cpu_seconds, 3, "s");
    }
    return 0;
}

/* Every connection must still be open after the idle time. */
static int check_still_open(mem_state_t *st, const char *name)
{
    bench_node_t *n = st->node;
    size_t bad = 0;
    for (const bench_conn_t *c = n->conns; c; c = c->next)
        bad += !c->dc || tern_dc_state(c->dc) != TERN_DC_STATE_OPEN ||
               tern_pc_connection_state(c->pc) != TERN_PC_STATE_CONNECTED;
    if (n->disconnects || n->remote_closes || bad)
        bench_note("%s: %u disconnected state changes, %u channels closed by the remote, %zu "
                   "connections not open/connected",
                   name, n->disconnects, n->remote_closes, bad);
    if (bad) {
        bench_fail(n, "%zu connections did not stay open while idle:", bad);
        bench_node_dump(n);
        return -1;
    }
    return 0;
}

int bench_memory(const bench_opts_t *opts, bool two_proc, const char *name)
{
    int sig_fd = -1;
    pid_t child = 0;
    if (two_proc && (child = bench_spawn_peer(opts, NULL, NULL, &sig_fd)) < 0)
        return -1;
    bench_node_t *n = bench_node_new(opts, sig_fd);
    mem_state_t st = {.node = n, .two_proc = two_proc};
    bench_stat_t base, peer_base;
    int rc = -1;
    if (n) {
        n->on_conn_open = on_conn_open;
        rc = warm_up(&st);
        if (rc == 0)
            rc = take_stats(&st, &base, &peer_base);
        if (rc == 0)
            rc = measure_point(&st, name, opts->conns_small, &base, &peer_base);
        if (rc == 0)
            rc = measure_point(&st, name, opts->conns_large, &base, &peer_base);
        if (rc == 0)
            rc = measure_idle(&st, name, opts->conns_large);
        if (rc == 0)
            rc = check_still_open(&st, name);
    }
    if (two_proc && bench_reap_peer(n, child) != 0)
        rc = -1;
    bench_node_free(n);
    return rc;
}
