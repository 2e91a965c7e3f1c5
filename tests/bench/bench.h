/* SPDX-License-Identifier: MIT */
/*
 * Shared declarations of tern-bench: the options, the output helpers (one "bench NAME VALUE
 * UNIT" line per figure, "#" before anything else), the clocks and process counters the
 * benchmarks read (CPU time, resident memory), and the two-peer harness of bench_net.c: a node
 * (one context and one loop, i.e. one process's side) holding connections (one pc with one data
 * channel each), whose offer/answer and candidates go either straight to the other side in the
 * same process or, for two processes, as lines over a socketpair to a forked child.
 * Only the public API of tern.h is used.
 */
#ifndef TERN_TESTS_BENCH_BENCH_H
#define TERN_TESTS_BENCH_BENCH_H

#include <tern/tern.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Format checking of the printf-like helpers, where the compiler has it. */
#if defined(__GNUC__)
#define BENCH_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define BENCH_PRINTF(fmt_index, first_arg)
#endif

/* ---- options ---- */

typedef struct bench_opts {
    bool quick;
    const char *only;    /* comma-separated substrings of benchmark names; NULL: all */
    size_t bulk_bytes;   /* bytes moved per throughput run */
    double bulk_seconds; /* ... or stop sending after this long */
    size_t bulk_low;     /* buffered-amount-low threshold */
    size_t bulk_high;    /* refill up to this buffered amount */
    int connect_runs;
    int rtt_warmup;
    int rtt_pings;
    int conns_small; /* pcs in the measured process, first memory point */
    int conns_large; /* second memory point */
    double idle_seconds;
    double limit_seconds; /* a benchmark still running after this long is killed */
    bool verbose;         /* TERN_LOG-style info from the stack */
} bench_opts_t;

/* ---- output and measurement (bench_main.c) ---- */

/* One figure: "bench NAME VALUE UNIT". */
void bench_figure(const char *name, double value, int decimals, const char *unit);
/* A comment line: "# ...". */
void bench_note(const char *fmt, ...) BENCH_PRINTF(1, 2);

/* CLOCK_MONOTONIC in nanoseconds (the same clock as tern_loop_now, finer). */
int64_t bench_clock_ns(void);
/* User + system CPU seconds of this process (all its threads). */
double bench_cpu_seconds(void);
/* Resident set size of this process in bytes, from /proc/self/statm. */
size_t bench_rss_bytes(void);

/* Sort v and return the value at quantile q (nearest rank; q in [0, 1]). */
double bench_quantile(double *v, size_t n, double q);

/* ---- the two-peer harness (bench_net.c) ---- */

typedef struct bench_node bench_node_t;
typedef struct bench_conn bench_conn_t;

/* What a benchmark does with the channel of one side. Any member may be NULL. */
typedef struct bench_role {
    void (*on_open)(bench_conn_t *c);
    void (*on_message)(bench_conn_t *c, const uint8_t *data, size_t len, bool is_text);
    void (*on_low)(bench_conn_t *c);
} bench_role_t;

/* A control message between the processes that the harness does not handle itself. */
typedef void (*bench_control_fn)(bench_node_t *n, const char *type, uint32_t id,
                                 const char *payload, size_t len);

/* One peer connection with its one data channel. */
struct bench_conn {
    bench_node_t *node;
    uint32_t id; /* the same on both sides of a connection */
    bool offerer;
    tern_pc_t *pc;
    tern_dc_t *dc;
    bool open;          /* the channel opened (once) */
    bool closing;       /* bench_conn_close was called */
    int reap_stage;     /* 0: live; 1: closed; 2: seen once by the reaper, freed at its next run */
    int64_t t_start_ns; /* offerer: just before create_offer; answerer: offer received */
    int64_t t_ice_ns;   /* ICE connected here (0: not yet) */
    int64_t t_conn_ns;  /* the pc connected here (DTLS done) */
    int64_t t_open_ns;  /* the channel opened here */
    bench_conn_t *peer; /* the other side in the same process; NULL across processes */
    void *app;          /* the benchmark's state for this connection */
    bench_conn_t *next;
};

/* One process's side: a context, a loop, its connections, its signaling link. */
struct bench_node {
    tern_ctx_t *ctx;
    tern_loop_t *loop;
    const bench_opts_t *opts;
    const bench_role_t *offer_role;  /* behaviour of channels this node offers */
    const bench_role_t *answer_role; /* behaviour of channels this node answers */
    bench_control_fn on_control;
    /* Called when a connection's channel opens (after the role's on_open). */
    void (*on_conn_open)(bench_conn_t *c);
    void *app;

    bool is_child; /* the answering process of a two-process benchmark */

    /* signaling to the other process; -1 within one process */
    int sig_fd;
    tern_fd_watch_t *sig_watch;
    bool watching_output;
    char *in_buf, *out_buf; /* received and not yet handled; queued and not yet sent */
    size_t in_len, in_cap, out_len, out_cap;
    bool shutting_down;
    bool reap_scheduled;
    bool peer_gone; /* the other process closed the link */

    bench_conn_t *conns;
    size_t conn_count;
    size_t open_count;
    uint32_t next_id;

    double cpu_mark; /* this process's CPU seconds when the other side sent "mark" */

    /* reply to the last "stat?" request */
    bool stat_ready;
    char stat_reply[128];

    /* counters of stack behaviour worth a note */
    unsigned disconnects;        /* a pc went disconnected */
    unsigned remote_closes;      /* a channel closed that we did not close */
    unsigned remote_errors;      /* an answering channel's error before we closed it */
    unsigned candidate_refusals; /* add_ice_candidate said INVALID_STATE on an open pc */

    bool done;
    bool failed;
    char why[512];
};

/* What a process reports about itself. */
typedef struct bench_stat {
    size_t rss_bytes;
    double cpu_seconds;
    double cpu_since_mark; /* CPU seconds since the last "mark" control message */
    size_t conns;
    size_t open;
} bench_stat_t;

/*
 * Create a node: a context and a loop (the stack's log at warn, or info with verbose).
 * sig_fd: the socketpair end to the other process, or -1. Returns NULL on failure (printed).
 */
bench_node_t *bench_node_new(const bench_opts_t *opts, int sig_fd);
/* Remove and free every connection, free the loop and context, close the link. */
void bench_node_free(bench_node_t *n);

/* Mark the node failed with a reason (the first reason is kept) and stop its loop. */
void bench_fail(bench_node_t *n, const char *fmt, ...) BENCH_PRINTF(2, 3);

/*
 * Run the loop until n->done or n->failed, or for at most limit_s seconds (then fail, after
 * printing every connection's state). Returns 0 if done, -1 otherwise.
 */
int bench_node_run(bench_node_t *n, double limit_s);
/* Run the loop for exactly this long (idle measurements), unless the node fails. */
int bench_node_run_for(bench_node_t *n, double seconds);

/* Print every connection's states, buffered amount, counters and next deadline as "#" lines. */
void bench_node_dump(const bench_node_t *n);

/*
 * Start a connection: make an offerer pc with one reliable ordered channel, create and apply
 * the offer and signal it: to a new answerer connection in this node (same process) or to the
 * other process. Returns the offerer's connection, or NULL (the node is then failed).
 */
bench_conn_t *bench_connect(bench_node_t *n, void *app);

/*
 * Close a connection's pc (and, in the same process, its peer's); in two processes, tell the
 * other side to close its end. The pcs are removed and freed an iteration later, after their
 * closing datagrams have been handed to the sockets.
 */
void bench_conn_close(bench_conn_t *c);

/* Send a control message to the other process. Returns 0, or -1 if the link is broken. */
int bench_send_control(bench_node_t *n, const char *type, uint32_t id, const void *payload,
                       size_t len);

/*
 * Fork the answering process for a two-process benchmark. In the child, a node is made on the
 * link with the given roles and control handler, runs until the parent sends "quit", and the
 * child exits (0, or 1 if its node failed). In the parent, returns the child's pid and sets
 * *sig_fd to the parent's end of the link; -1 on failure.
 */
pid_t bench_spawn_peer(const bench_opts_t *opts, const bench_role_t *answer_role,
                       bench_control_fn on_control, int *sig_fd);

/* This process's figures. */
void bench_self_stat(const bench_node_t *n, bench_stat_t *out);

/* Ask the other process for its figures (runs the loop until it answers). 0, or -1. */
int bench_peer_stat(bench_node_t *n, bench_stat_t *out);

/*
 * CPU seconds of this process, and of the other one in two processes (asked with "stat?"),
 * so that a benchmark can count what both sides spend. -1 if the other does not answer.
 */
double bench_total_cpu(bench_node_t *n);

/*
 * End a two-process benchmark: send "quit", wait for the child (at most a few seconds, then
 * kill it). Returns 0 if it exited with status 0, -1 otherwise (printed).
 */
int bench_reap_peer(bench_node_t *n, pid_t child);

/* ---- the benchmarks; each returns 0, or -1 if it could not run ---- */

int bench_throughput(const bench_opts_t *opts, bool two_proc, size_t msg_size, const char *name);
int bench_connect_time(const bench_opts_t *opts, bool two_proc, const char *name);
int bench_rtt(const bench_opts_t *opts, bool two_proc, const char *name);
int bench_memory(const bench_opts_t *opts, bool two_proc, const char *name);
/* A large file from tern-send to tern-recv, beside the raw channel (bench_files.c). */
int bench_files(const bench_opts_t *opts, const char *name);

#endif
