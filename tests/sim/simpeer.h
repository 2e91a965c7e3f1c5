/* SPDX-License-Identifier: MIT */
/*
 * simpeer: whole peer connections driven over vnet in virtual time, through the public sans-IO
 * API only. A `sim` is one run: a network, a seed, contexts, peers, and in-process signaling
 * (offer, answer and trickled candidates passed as strings, after a configurable delay).
 *
 * The driver is the thinnest correct event loop (quicly examples/echo.c run_loop, str0m
 * tests/common.rs progress): jump to the earliest of the network's next event, the signaling
 * queue, every pc's tern_pc_next_deadline and every context's tern_ctx_next_deadline; run what is
 * due; after every call on a pc drain it (poll_transmit and poll_event until both are empty in the
 * same round, tern.h's drain rule), and drain what tern_ctx_poll_pending_pc returns.
 *
 * It also checks the driver contract, as a real loop relies on it: after each step every pc is
 * polled once more, and output found there (datagrams or events nobody announced through the
 * pending list) counts as a contract violation, as does a deadline that moved earlier without the
 * pc being drained, or a deadline that stays in the past (a busy loop). Failures print the seed
 * and the virtual time; SIM_SEED=n reruns one seed, SIM_SEEDS=n runs n seeds, SIM_TRACE=1
 * prints every datagram, SIM_LOG=debug (or error, warn, info, trace) prints the stack's log,
 * SIM_SDP=1 prints what is signaled.
 */
#ifndef TERN_TESTS_SIM_SIMPEER_H
#define TERN_TESTS_SIM_SIMPEER_H

#include "vnet.h"

typedef struct sim sim_t;
typedef struct simpeer simpeer_t;

typedef struct sim_config {
    uint64_t seed;
    bool shared_ctx;                /* every peer on one context (else one context each) */
    tern_time_t signaling_delay_us; /* one-way delay of offer, answer and candidates */
    bool implicit_sdp;              /* set_local_description(NULL) instead of create_* */
} sim_config_t;

/* A new run (vnet starts at vnet_clock_next_start()). Aborts if out of memory. */
sim_t *sim_new(const sim_config_t *cfg);

/* Free the peers (their pcs, channels and contexts) and the network. NULL is a no-op. */
void sim_free(sim_t *sim);

vnet_t *sim_vnet(sim_t *sim);
tern_time_t sim_now(const sim_t *sim);
uint64_t sim_seed(const sim_t *sim);
/* Randomness for the scenario, separate from the network's. */
uint64_t sim_random(sim_t *sim);

/* ---- peers ---- */

typedef struct simpeer_config {
    const char *name;       /* for messages; NULL: "peerN" */
    const char *const *ips; /* its host addresses; NULL: one, 10.0.0.N */
    size_t ip_count;
    vnet_nat_t *behind;         /* NULL: the internet */
    const tern_pc_config_t *pc; /* NULL: defaults; copied by tern_pc_new */
} simpeer_config_t;

/*
 * Add a peer: its hosts, a context (or the shared one), a pc, one bound socket per host handed
 * in with tern_pc_add_local_socket, then tern_pc_local_sockets_done. NULL on failure (reported).
 */
simpeer_t *sim_peer_new(sim_t *sim, const simpeer_config_t *cfg);

tern_pc_t *simpeer_pc(const simpeer_t *p);
tern_ctx_t *simpeer_ctx(const simpeer_t *p);
const char *simpeer_name(const simpeer_t *p);
size_t simpeer_host_count(const simpeer_t *p);
vnet_host_t *simpeer_host(const simpeer_t *p, size_t i);
/* Set both directions of every host's link. */
void simpeer_set_link(simpeer_t *p, const vnet_link_t *link);

/* When the pc first reported `connected`; TERN_TIME_NEVER if not yet. */
tern_time_t simpeer_connected_at(const simpeer_t *p);
/* Counters of what the peer saw. */
typedef struct simpeer_counts {
    unsigned candidates; /* local candidates announced (not counting the end) */
    unsigned end_of_candidates;
    unsigned negotiation_needed;
    unsigned data_channels; /* TERN_EV_DATA_CHANNEL */
    unsigned dc_open, dc_close, dc_closing, dc_error;
    uint64_t messages, message_bytes;
    unsigned failed; /* connection state went failed */
} simpeer_counts_t;
const simpeer_counts_t *simpeer_counts(const simpeer_t *p);

/*
 * Called for every event the pc returns, after the driver's own bookkeeping. Commands on any
 * pc are allowed from it (the driver drains afterwards). A channel's handle stays valid during
 * the call for its TERN_EV_DC_CLOSE, not after.
 */
typedef void (*simpeer_event_fn)(simpeer_t *p, const tern_event_t *ev, void *user);
void simpeer_on_event(simpeer_t *p, simpeer_event_fn fn, void *user);

/* ---- signaling ---- */

/*
 * Start an offer/answer exchange: the offerer creates and sets its offer now; the answerer gets
 * it after the signaling delay, answers, and the answer comes back after the delay. Candidates
 * each pc announces from then on go to the other peer in order, after the same delay. Failures
 * are reported (sim_failures).
 */
void sim_negotiate(sim_t *sim, simpeer_t *offerer, simpeer_t *answerer);

/* ---- running ---- */

typedef bool (*sim_cond_fn)(sim_t *sim, void *arg);

/*
 * Run until cond is true (checked after each step; NULL: never), `budget_us` of virtual time has
 * passed, or nothing is left to do. Returns whether cond became true.
 */
bool sim_run_until(sim_t *sim, sim_cond_fn cond, void *arg, tern_time_t budget_us);

/* Run for a span of virtual time. */
void sim_run_for(sim_t *sim, tern_time_t duration_us);

/* Called after each step; commands are allowed (every pc is drained after it). */
typedef void (*sim_step_fn)(sim_t *sim, void *user);
void sim_on_step(sim_t *sim, sim_step_fn fn, void *user);

/* Drain a pc after the scenario called a command on it (or on one of its channels). */
void sim_drain(sim_t *sim, simpeer_t *p);

/* ---- failures ---- */

/* Report a failure of this run: printed with the seed and the virtual time, and counted. */
void sim_fail(sim_t *sim, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Report a failure the stack is known to have (listed in tests/sim/README.md with its cause, to
 * be fixed in the stack): printed once per run as "# KNOWN ISSUE <id>" and counted apart, not
 * as a failure, unless SIM_STRICT=1, which makes it a failure like any other.
 */
void sim_known_issue(sim_t *sim, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Add to the program-wide count of runs that showed known issue `id`; returns the count. */
unsigned sim_known_total(const char *id, unsigned add);

/* Print, for each known issue seen, in how many runs it showed. */
void sim_print_known_issues(void);

unsigned sim_failures(const sim_t *sim);
uint64_t sim_contract_violations(const sim_t *sim);

/* Print a one-line summary of the run (times, network counters) to stdout as a TAP comment. */
void sim_print_summary(const sim_t *sim, const char *label);

/* Whether a condition or test of this name runs: SIM_ONLY is a comma-separated list of
 * substrings of names to run (unset: all). */
bool sim_selected(const char *name);

/*
 * The seeds to run: SIM_SEED=n gives just n; otherwise `count` seeds from `first`, or
 * SIM_SEEDS=n of them.
 */
void sim_seeds(uint64_t first, unsigned count, uint64_t *out_first, unsigned *out_count);

#endif
