/* SPDX-License-Identifier: MIT */
/*
 * Connection setup time: from just before create_offer to the data channel being open on both
 * sides, over --runs runs, each with new peer connections on the same context (the answerer's
 * pc is made when the offer arrives, as a real answerer would). One run at a time; the next
 * starts once the previous pcs are freed. In two processes the answerer reports its times
 * (CLOCK_MONOTONIC is shared by the processes). Prints the median, p99 and maximum, how many
 * runs took over 100 ms and over 1 s, the median of each step on the offerer's side (ICE
 * connected, DTLS connected, channel open) and the slowest runs step by step, to show where
 * setup time goes, and the CPU time per run of both sides (setup and teardown), which unlike
 * the wall-clock figures does not depend on what else runs on the machine.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A run not done after this long is a connection that failed. */
#define RUN_LIMIT_MS 10000

typedef struct connect_state {
    const bench_opts_t *opts;
    bench_node_t *node;
    const char *name;
    int runs, done_runs;
    double *total_ms, *ice_ms, *dtls_ms, *open_ms, *answer_open_ms;
    bench_conn_t *cur;
    bool answer_open;
    int64_t answer_open_ns;
    tern_timer_t *watchdog;
} connect_state_t;

static void start_run(void *arg);

static double ms_between(int64_t from, int64_t to)
{
    return (double)(to - from) / 1e6;
}

static void on_watchdog(void *arg)
{
    connect_state_t *st = arg;
    st->watchdog = NULL;
    bench_fail(st->node, "run %d: channel not open on both sides after %d ms; the connections:",
               st->done_runs + 1, RUN_LIMIT_MS);
    bench_node_dump(st->node);
}

/* Start the next run once the previous run's pcs are gone. */
static void wait_then_start(void *arg)
{
    connect_state_t *st = arg;
    bench_node_t *n = st->node;
    if (n->failed)
        return;
    if (n->conn_count > 0) {
        if (tern_loop_add_timer(n->loop, 1, wait_then_start, st, NULL) != TERN_OK)
            bench_fail(n, "cannot add a timer");
        return;
    }
    start_run(st);
}

static void finish_run(connect_state_t *st)
{
    bench_conn_t *c = st->cur;
    int64_t t_answer = c->peer ? c->peer->t_open_ns : st->answer_open_ns;
    int64_t t_last = c->t_open_ns > t_answer ? c->t_open_ns : t_answer;
    int i = st->done_runs++;
    st->total_ms[i] = ms_between(c->t_start_ns, t_last);
    st->ice_ms[i] = c->t_ice_ns ? ms_between(c->t_start_ns, c->t_ice_ns) : 0;
    st->dtls_ms[i] = c->t_conn_ns ? ms_between(c->t_start_ns, c->t_conn_ns) : 0;
    st->open_ms[i] = ms_between(c->t_start_ns, c->t_open_ns);
    st->answer_open_ms[i] = ms_between(c->t_start_ns, t_answer);
    tern_loop_cancel_timer(st->node->loop, st->watchdog);
    st->watchdog = NULL;
    st->cur = NULL;
    bench_conn_close(c);
    if (st->done_runs == st->runs) {
        st->node->done = true;
        tern_loop_stop(st->node->loop);
        return;
    }
    wait_then_start(st);
}

static void check_done(connect_state_t *st)
{
    bench_conn_t *c = st->cur;
    if (!c || !c->open)
        return;
    if (c->peer ? c->peer->open : st->answer_open)
        finish_run(st);
}

static void start_run(void *arg)
{
    connect_state_t *st = arg;
    st->answer_open = false;
    st->cur = bench_connect(st->node, st);
    if (!st->cur)
        return;
    if (tern_loop_add_timer(st->node->loop, RUN_LIMIT_MS, on_watchdog, st, &st->watchdog) !=
        TERN_OK)
        bench_fail(st->node, "cannot add a timer");
}

static void on_conn_open(bench_conn_t *c)
{
    check_done(c->app);
}

/* Two processes: the answerer tells when its channel opened. */
static void answer_on_open(bench_conn_t *c)
{
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%lld", (long long)c->t_open_ns);
    bench_send_control(c->node, "opened", c->id, buf, (size_t)len);
}

static const bench_role_t answer_role = {.on_open = answer_on_open};

static void on_control(bench_node_t *n, const char *type, uint32_t id, const char *payload,
                       size_t len)
{
    (void)len;
    connect_state_t *st = n->app;
    if (strcmp(type, "opened") != 0 || !st->cur || st->cur->id != id)
        return;
    st->answer_open_ns = strtoll(payload, NULL, 10);
    st->answer_open = true;
    check_done(st);
}

/* The slowest runs, step by step: which step the outliers lose their time in. */
static void note_slowest(const connect_state_t *st)
{
    int n = st->done_runs, shown[3] = {-1, -1, -1};
    for (int k = 0; k < 3 && k < n; k++) {
        int worst = -1;
        for (int i = 0; i < n; i++) {
            bool taken = i == shown[0] || i == shown[1];
            if (!taken && (worst < 0 || st->total_ms[i] > st->total_ms[worst]))
                worst = i;
        }
        shown[k] = worst;
        bench_note("%s: slow run %d: %.2f ms: ICE connected %.2f ms, DTLS %.2f ms, offerer's "
                   "channel %.2f ms, answerer's %.2f ms",
                   st->name, worst + 1, st->total_ms[worst], st->ice_ms[worst], st->dtls_ms[worst],
                   st->open_ms[worst], st->answer_open_ms[worst]);
    }
}

static void report(connect_state_t *st, double cpu_per_run)
{
    char name[96];
    int n = st->done_runs, over_10 = 0, over_100 = 0, over_1000 = 0;
    double mean = 0;
    for (int i = 0; i < n; i++) {
        over_10 += st->total_ms[i] > 10;
        over_100 += st->total_ms[i] > 100;
        over_1000 += st->total_ms[i] > 1000;
        mean += st->total_ms[i] / n;
    }
    note_slowest(st);
    /* bench_quantile sorts: the per-run arrays lose their order from here on. */
    double ice = bench_quantile(st->ice_ms, (size_t)n, 0.5);
    double dtls = bench_quantile(st->dtls_ms, (size_t)n, 0.5);
    double open = bench_quantile(st->open_ms, (size_t)n, 0.5);
    double answer = bench_quantile(st->answer_open_ms, (size_t)n, 0.5);
    bench_note("%s: %d runs, mean %.2f ms, %d over 10 ms, %d over 100 ms, %d over 1 s", st->name, n,
               mean, over_10, over_100, over_1000);
    bench_note("%s: medians from create_offer, offerer side: ICE connected %.2f ms, DTLS "
               "connected %.2f ms, channel open %.2f ms; answerer's channel open %.2f ms",
               st->name, ice, dtls, open, answer);
    snprintf(name, sizeof name, "%s_median", st->name);
    bench_figure(name, bench_quantile(st->total_ms, (size_t)n, 0.5), 2, "ms");
    snprintf(name, sizeof name, "%s_p99", st->name);
    bench_figure(name, bench_quantile(st->total_ms, (size_t)n, 0.99), 2, "ms");
    snprintf(name, sizeof name, "%s_max", st->name);
    bench_figure(name, bench_quantile(st->total_ms, (size_t)n, 1.0), 2, "ms");
    /* CPU does not depend on other load: setup and teardown, both sides, per run. */
    snprintf(name, sizeof name, "%s_cpu", st->name);
    bench_figure(name, cpu_per_run * 1e3, 2, "ms");
}

int bench_connect_time(const bench_opts_t *opts, bool two_proc, const char *name)
{
    int sig_fd = -1;
    pid_t child = 0;
    if (two_proc && (child = bench_spawn_peer(opts, &answer_role, NULL, &sig_fd)) < 0)
        return -1;
    bench_node_t *n = bench_node_new(opts, sig_fd);
    connect_state_t st = {.opts = opts, .node = n, .name = name, .runs = opts->connect_runs};
    double *arrays = calloc((size_t)st.runs * 5, sizeof *arrays);
    int rc = -1;
    if (n && arrays) {
        st.total_ms = arrays;
        st.ice_ms = arrays + st.runs;
        st.dtls_ms = arrays + 2 * st.runs;
        st.open_ms = arrays + 3 * st.runs;
        st.answer_open_ms = arrays + 4 * st.runs;
        n->app = &st;
        n->on_conn_open = on_conn_open;
        n->on_control = on_control;
        double cpu0 = bench_total_cpu(n);
        if (cpu0 >= 0) {
            start_run(&st);
            rc = bench_node_run(n, 1e6);
        }
        double cpu1 = rc == 0 ? bench_total_cpu(n) : -1;
        if (cpu1 >= 0)
            report(&st, (cpu1 - cpu0) / st.runs);
    }
    if (two_proc && bench_reap_peer(n, child) != 0)
        rc = -1;
    bench_node_free(n);
    free(arrays);
    return rc;
}
