/* SPDX-License-Identifier: MIT */
/*
 * The two-peer simulation driver (simpeer.h): contexts and peer connections on vnet hosts,
 * in-process signaling with a delay, the virtual-time event loop that jumps to the earliest
 * deadline or delivery and drains after every call, and the checks of the driver contract
 * (unannounced output, deadlines that move earlier unannounced, busy loops).
 */
#include "simpeer.h"

#include "util/rng.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PEERS 8
#define MAX_HOSTS 4
#define MAX_REPORTED 20 /* failure lines printed per run; later ones are only counted */
#define MAX_KNOWN 8
#define KNOWN_PRINTED 2           /* runs per program whose known issue is printed in full */
#define BUSY_LIMIT 100000         /* steps at one instant before the run is declared stuck */
#define STUCK_DRAIN_LIMIT 1000000 /* datagrams and events from one drain: a runaway pc */

typedef enum { SIG_OFFER, SIG_ANSWER, SIG_CANDIDATE } sig_kind_t;

typedef struct sig_msg {
    tern_time_t at;
    uint64_t seq;
    simpeer_t *to;
    sig_kind_t kind;
    char *text; /* SDP or candidate ("" ends the candidates) */
    char *mid;
} sig_msg_t;

struct simpeer {
    sim_t *sim;
    char name[32];
    tern_ctx_t *ctx; /* owned unless shared */
    uint64_t rng;    /* the context's random source, when it owns one */
    tern_pc_t *pc;
    vnet_host_t *hosts[MAX_HOSTS];
    size_t host_count;
    simpeer_t *remote; /* signaling partner */
    simpeer_event_fn on_event;
    void *on_event_user;
    tern_time_t connected_at;
    tern_time_t cached_deadline; /* what a loop would have read after the last drain */
    simpeer_counts_t counts;
};

struct sim {
    sim_config_t cfg;
    vnet_t *net;
    uint64_t rng;
    tern_ctx_t *shared_ctx;
    uint64_t shared_rng;
    simpeer_t *peers[MAX_PEERS];
    size_t peer_count;
    sig_msg_t *sig;
    size_t sig_count, sig_cap;
    uint64_t sig_seq;
    sim_step_fn on_step;
    void *on_step_user;
    tern_time_t start;
    tern_time_t last_step_at;
    unsigned same_instant_steps;
    unsigned failures;
    uint64_t violations;
    char known[MAX_KNOWN][8]; /* known issues seen in this run */
    size_t known_count;
    bool strict;    /* SIM_STRICT: known issues fail too */
    int log_level;  /* from SIM_LOG; 0: silent */
    bool print_sdp; /* SIM_SDP: print descriptions and candidates as they are signaled */
    bool stuck;     /* a fatal driver failure: stop running */
};

/* ---- failures and logging ---- */

static void vfail(sim_t *sim, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void vfail(sim_t *sim, const char *fmt, va_list ap)
{
    sim->failures++;
    if (sim->failures > MAX_REPORTED)
        return;
    tern_time_t t = vnet_now(sim->net) - sim->start;
    printf("# FAIL seed %llu t=+%lld.%06llds: ", (unsigned long long)sim->cfg.seed,
           (long long)(t / 1000000), (long long)(t % 1000000));
    vprintf(fmt, ap);
    printf("\n");
    if (sim->failures == MAX_REPORTED)
        printf("# (further failures of this run are only counted)\n");
    fflush(stdout);
}

void sim_fail(sim_t *sim, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(sim, fmt, ap);
    va_end(ap);
}

static void violation(sim_t *sim, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void violation(sim_t *sim, const char *fmt, ...)
{
    sim->violations++;
    va_list ap;
    va_start(ap, fmt);
    vfail(sim, fmt, ap);
    va_end(ap);
}

void sim_known_issue(sim_t *sim, const char *id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (sim->strict) {
        vfail(sim, fmt, ap);
        va_end(ap);
        return;
    }
    for (size_t i = 0; i < sim->known_count; i++) {
        if (strcmp(sim->known[i], id) == 0) {
            va_end(ap);
            return; /* reported once per run */
        }
    }
    if (sim->known_count < MAX_KNOWN)
        snprintf(sim->known[sim->known_count++], sizeof sim->known[0], "%s", id);
    if (sim_known_total(id, 1) > KNOWN_PRINTED) {
        va_end(ap);
        return; /* counted; the summary line says how often */
    }
    tern_time_t t = vnet_now(sim->net) - sim->start;
    printf("# KNOWN ISSUE %s seed %llu t=+%lld.%06llds: ", id, (unsigned long long)sim->cfg.seed,
           (long long)(t / 1000000), (long long)(t % 1000000));
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* Runs in which each known issue showed, over the whole program. */
static struct {
    char id[8];
    unsigned runs;
} known_totals[MAX_KNOWN];

unsigned sim_known_total(const char *id, unsigned add)
{
    for (size_t i = 0; i < MAX_KNOWN; i++) {
        if (known_totals[i].id[0] == '\0')
            snprintf(known_totals[i].id, sizeof known_totals[i].id, "%s", id);
        if (strcmp(known_totals[i].id, id) == 0)
            return known_totals[i].runs += add;
    }
    return 0;
}

void sim_print_known_issues(void)
{
    for (size_t i = 0; i < MAX_KNOWN && known_totals[i].id[0]; i++)
        printf("# known issue %s showed in %u runs (SIM_STRICT=1 makes it fail)\n",
               known_totals[i].id, known_totals[i].runs);
}

unsigned sim_failures(const sim_t *sim)
{
    return sim->failures;
}

uint64_t sim_contract_violations(const sim_t *sim)
{
    return sim->violations;
}

static int parse_log_level(const char *s)
{
    static const char *const names[] = {"none", "error", "warn", "info", "debug", "trace"};
    if (!s || !*s)
        return 0;
    for (int i = 0; i < 6; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return TERN_LOG_DEBUG;
}

static void log_sink(void *user, tern_log_level_t level, const char *module, const char *msg)
{
    sim_t *sim = user;
    static const char *const names[] = {"-", "E", "W", "I", "D", "T"};
    tern_time_t t = vnet_now(sim->net) - sim->start;
    fprintf(stderr, "[+%lld.%06lld %s %s] %s\n", (long long)(t / 1000000), (long long)(t % 1000000),
            level <= TERN_LOG_TRACE ? names[level] : "?", module, msg);
}

/* ---- the sim ---- */

sim_t *sim_new(const sim_config_t *cfg)
{
    sim_t *sim = calloc(1, sizeof *sim);
    if (!sim)
        abort();
    sim->cfg = *cfg;
    sim->rng = cfg->seed ^ 0x5157u;
    sim->start = vnet_clock_next_start();
    /* SIM_EPOCH=seconds: start the process clock that late, as in a long-running process. */
    const char *epoch = getenv("SIM_EPOCH");
    if (epoch && *epoch) {
        tern_time_t at = (tern_time_t)strtoll(epoch, NULL, 0) * 1000000;
        if (at > sim->start)
            sim->start = at;
    }
    sim->net = vnet_new(cfg->seed, sim->start);
    if (!sim->net)
        abort();
    sim->last_step_at = -1;
    sim->log_level = parse_log_level(getenv("SIM_LOG"));
    const char *strict = getenv("SIM_STRICT");
    sim->strict = strict && *strict && strcmp(strict, "0") != 0;
    const char *sdp = getenv("SIM_SDP");
    sim->print_sdp = sdp && *sdp && strcmp(sdp, "0") != 0;
    const char *trace = getenv("SIM_TRACE");
    if (trace && *trace && strcmp(trace, "0") != 0)
        vnet_set_trace(sim->net, stderr);
    return sim;
}

void sim_free(sim_t *sim)
{
    if (!sim)
        return;
    for (size_t i = 0; i < sim->peer_count; i++) {
        simpeer_t *p = sim->peers[i];
        tern_pc_free(p->pc);
        if (p->ctx != sim->shared_ctx)
            tern_ctx_free(p->ctx);
        free(p);
    }
    tern_ctx_free(sim->shared_ctx);
    for (size_t i = 0; i < sim->sig_count; i++) {
        free(sim->sig[i].text);
        free(sim->sig[i].mid);
    }
    free(sim->sig);
    vnet_free(sim->net);
    free(sim);
}

vnet_t *sim_vnet(sim_t *sim)
{
    return sim->net;
}

tern_time_t sim_now(const sim_t *sim)
{
    return vnet_now(sim->net);
}

uint64_t sim_seed(const sim_t *sim)
{
    return sim->cfg.seed;
}

uint64_t sim_random(sim_t *sim)
{
    return tern_splitmix_next(&sim->rng);
}

void sim_on_step(sim_t *sim, sim_step_fn fn, void *user)
{
    sim->on_step = fn;
    sim->on_step_user = user;
}

static tern_ctx_t *make_ctx(sim_t *sim, uint64_t *rng_state)
{
    tern_ctx_config_t cc = {
        .random_bytes = tern_splitmix_random_bytes,
        .random_user = rng_state,
    };
    if (sim->log_level) {
        cc.log = log_sink;
        cc.log_user = sim;
        cc.log_level = (tern_log_level_t)sim->log_level;
    }
    tern_ctx_t *ctx = NULL;
    int err = tern_ctx_new(&cc, &ctx);
    if (err)
        sim_fail(sim, "tern_ctx_new: %s", tern_err_name(err));
    return ctx;
}

/* ---- peers ---- */

simpeer_t *sim_peer_new(sim_t *sim, const simpeer_config_t *cfg)
{
    if (sim->peer_count == MAX_PEERS || (cfg->ip_count > MAX_HOSTS)) {
        sim_fail(sim, "sim_peer_new: too many peers or addresses");
        return NULL;
    }
    simpeer_t *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    size_t index = sim->peer_count;
    p->sim = sim;
    p->connected_at = TERN_TIME_NEVER;
    p->cached_deadline = TERN_TIME_NEVER;
    snprintf(p->name, sizeof p->name, "%s", cfg->name ? cfg->name : "peer");
    if (!cfg->name)
        snprintf(p->name, sizeof p->name, "peer%zu", index + 1);
    sim->peers[sim->peer_count++] = p; /* from here sim_free owns it */

    char default_ip[32];
    snprintf(default_ip, sizeof default_ip, "10.0.0.%zu", index + 1);
    const char *one[] = {default_ip};
    const char *const *ips = cfg->ips ? cfg->ips : one;
    size_t n = cfg->ips ? cfg->ip_count : 1;
    for (size_t i = 0; i < n; i++) {
        p->hosts[i] = vnet_host_new(sim->net, cfg->behind, ips[i], p);
        if (!p->hosts[i]) {
            sim_fail(sim, "%s: bad or used address %s", p->name, ips[i]);
            return NULL;
        }
        p->host_count++;
    }

    if (sim->cfg.shared_ctx) {
        if (!sim->shared_ctx) {
            sim->shared_rng = sim->cfg.seed * 0x9E3779B97F4A7C15ull + 1;
            sim->shared_ctx = make_ctx(sim, &sim->shared_rng);
        }
        p->ctx = sim->shared_ctx;
    } else {
        p->rng = sim->cfg.seed * 0x9E3779B97F4A7C15ull + index + 1;
        p->ctx = make_ctx(sim, &p->rng);
    }
    if (!p->ctx)
        return NULL;
    tern_time_t now = sim_now(sim);
    int err = tern_pc_new(p->ctx, cfg->pc, now, &p->pc);
    if (err) {
        sim_fail(sim, "%s: tern_pc_new: %s", p->name, tern_err_name(err));
        return NULL;
    }
    tern_pc_set_user_data(p->pc, p);
    for (size_t i = 0; i < p->host_count; i++) {
        tern_addr_t addr;
        if (vnet_host_bind(p->hosts[i], 0, &addr) != 0)
            abort();
        err = tern_pc_add_local_socket(p->pc, now, &addr);
        if (err)
            sim_fail(sim, "%s: tern_pc_add_local_socket: %s", p->name, tern_err_name(err));
    }
    err = tern_pc_local_sockets_done(p->pc, now);
    if (err)
        sim_fail(sim, "%s: tern_pc_local_sockets_done: %s", p->name, tern_err_name(err));
    sim_drain(sim, p);
    return p;
}

tern_pc_t *simpeer_pc(const simpeer_t *p)
{
    return p->pc;
}

tern_ctx_t *simpeer_ctx(const simpeer_t *p)
{
    return p->ctx;
}

const char *simpeer_name(const simpeer_t *p)
{
    return p->name;
}

size_t simpeer_host_count(const simpeer_t *p)
{
    return p->host_count;
}

vnet_host_t *simpeer_host(const simpeer_t *p, size_t i)
{
    return i < p->host_count ? p->hosts[i] : NULL;
}

void simpeer_set_link(simpeer_t *p, const vnet_link_t *link)
{
    for (size_t i = 0; i < p->host_count; i++)
        vnet_host_set_link(p->hosts[i], link);
}

tern_time_t simpeer_connected_at(const simpeer_t *p)
{
    return p->connected_at;
}

const simpeer_counts_t *simpeer_counts(const simpeer_t *p)
{
    return &p->counts;
}

void simpeer_on_event(simpeer_t *p, simpeer_event_fn fn, void *user)
{
    p->on_event = fn;
    p->on_event_user = user;
}

/* ---- signaling ---- */

static char *dup_or_die(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

static void sig_push(sim_t *sim, simpeer_t *to, sig_kind_t kind, const char *text, const char *mid)
{
    if (sim->sig_count == sim->sig_cap) {
        sim->sig_cap = sim->sig_cap ? sim->sig_cap * 2 : 32;
        sim->sig = realloc(sim->sig, sim->sig_cap * sizeof *sim->sig);
        if (!sim->sig)
            abort();
    }
    /* Kept sorted by (at, seq): a FIFO per direction since the delay is constant. */
    sig_msg_t m = {.at = sim_now(sim) + sim->cfg.signaling_delay_us,
                   .seq = sim->sig_seq++,
                   .to = to,
                   .kind = kind,
                   .text = dup_or_die(text),
                   .mid = mid ? dup_or_die(mid) : NULL};
    if (sim->print_sdp)
        fprintf(stderr, "[signal to %s] %s%s%s\n", to->name,
                kind == SIG_OFFER    ? "offer:\n"
                : kind == SIG_ANSWER ? "answer:\n"
                                     : "candidate: ",
                m.text, kind == SIG_CANDIDATE && !*m.text ? "(end of candidates)" : "");
    size_t i = sim->sig_count;
    while (i > 0 && sim->sig[i - 1].at > m.at)
        i--;
    memmove(&sim->sig[i + 1], &sim->sig[i], (sim->sig_count - i) * sizeof m);
    sim->sig[i] = m;
    sim->sig_count++;
}

/* Create and set a local description of `type`; returns it (caller frees) or NULL. */
static char *make_local_description(sim_t *sim, simpeer_t *p, tern_sdp_type_t type)
{
    tern_time_t now = sim_now(sim);
    char *sdp = NULL;
    int err;
    if (sim->cfg.implicit_sdp) {
        err = tern_pc_set_local_description(p->pc, now, type, NULL);
        const char *local = tern_pc_local_description(p->pc);
        if (!err && local)
            sdp = dup_or_die(local);
        else if (!err)
            sim_fail(sim, "%s: implicit %s set but no local description", p->name,
                     tern_sdp_type_name(type));
    } else {
        char *made = NULL;
        err = type == TERN_SDP_OFFER ? tern_pc_create_offer(p->pc, now, &made)
                                     : tern_pc_create_answer(p->pc, now, &made);
        if (err) {
            sim_fail(sim, "%s: create %s: %s (%s)", p->name, tern_sdp_type_name(type),
                     tern_err_name(err), tern_pc_last_error(p->pc));
            return NULL;
        }
        err = tern_pc_set_local_description(p->pc, now, type, made);
        if (!err)
            sdp = dup_or_die(made);
        tern_free(p->ctx, made);
    }
    if (err)
        sim_fail(sim, "%s: set_local_description(%s): %s (%s)", p->name, tern_sdp_type_name(type),
                 tern_err_name(err), tern_pc_last_error(p->pc));
    return sdp;
}

void sim_negotiate(sim_t *sim, simpeer_t *offerer, simpeer_t *answerer)
{
    offerer->remote = answerer;
    answerer->remote = offerer;
    char *offer = make_local_description(sim, offerer, TERN_SDP_OFFER);
    if (offer)
        sig_push(sim, answerer, SIG_OFFER, offer, NULL);
    free(offer);
    sim_drain(sim, offerer);
}

static void deliver_signal(sim_t *sim, sig_msg_t *m)
{
    simpeer_t *p = m->to;
    tern_time_t now = sim_now(sim);
    int err;
    switch (m->kind) {
    case SIG_OFFER:
    case SIG_ANSWER: {
        tern_sdp_type_t type = m->kind == SIG_OFFER ? TERN_SDP_OFFER : TERN_SDP_ANSWER;
        err = tern_pc_set_remote_description(p->pc, now, type, m->text);
        if (err) {
            sim_fail(sim, "%s: set_remote_description(%s): %s (%s)", p->name,
                     tern_sdp_type_name(type), tern_err_name(err), tern_pc_last_error(p->pc));
            break;
        }
        if (type == TERN_SDP_OFFER) {
            char *answer = make_local_description(sim, p, TERN_SDP_ANSWER);
            if (answer && p->remote)
                sig_push(sim, p->remote, SIG_ANSWER, answer, NULL);
            free(answer);
        }
        break;
    }
    case SIG_CANDIDATE:
        err = tern_pc_add_ice_candidate(p->pc, now, m->text, m->mid);
        if (err)
            sim_fail(sim, "%s: add_ice_candidate(\"%s\"): %s (%s)", p->name, m->text,
                     tern_err_name(err), tern_pc_last_error(p->pc));
        break;
    }
    sim_drain(sim, p);
}

/* ---- draining ---- */

static vnet_host_t *host_for(simpeer_t *p, const tern_addr_t *local)
{
    for (size_t i = 0; i < p->host_count; i++) {
        const tern_addr_t *a = vnet_host_addr(p->hosts[i]);
        if (a->family == local->family && memcmp(a->ip, local->ip, 16) == 0)
            return p->hosts[i];
    }
    return NULL;
}

static void send_transmit(sim_t *sim, simpeer_t *p, const tern_transmit_t *t)
{
    vnet_host_t *h = host_for(p, &t->local);
    if (!h || vnet_send(sim->net, h, &t->local, &t->remote, t->data, t->len) != 0) {
        char l[TERN_ADDR_STRLEN], r[TERN_ADDR_STRLEN];
        violation(sim, "%s: transmit from %s (not one of its sockets) to %s", p->name,
                  tern_addr_format(&t->local, l, sizeof l),
                  tern_addr_format(&t->remote, r, sizeof r));
    }
}

static void note_event(sim_t *sim, simpeer_t *p, const tern_event_t *ev)
{
    simpeer_counts_t *c = &p->counts;
    switch (ev->type) {
    case TERN_EV_ICE_CANDIDATE: {
        const char *cand = ev->u.ice_candidate.candidate;
        if (!cand) {
            violation(sim, "%s: candidate event with a NULL candidate", p->name);
            break;
        }
        if (*cand)
            c->candidates++;
        else
            c->end_of_candidates++;
        if (p->remote)
            sig_push(sim, p->remote, SIG_CANDIDATE, cand, ev->u.ice_candidate.mid);
        break;
    }
    case TERN_EV_CONNECTION_STATE:
        if (ev->u.pc_state == TERN_PC_STATE_CONNECTED && p->connected_at == TERN_TIME_NEVER)
            p->connected_at = sim_now(sim);
        if (ev->u.pc_state == TERN_PC_STATE_FAILED)
            c->failed++;
        break;
    case TERN_EV_NEGOTIATION_NEEDED:
        c->negotiation_needed++;
        break;
    case TERN_EV_DATA_CHANNEL:
        c->data_channels++;
        break;
    case TERN_EV_DC_OPEN:
        c->dc_open++;
        break;
    case TERN_EV_DC_MESSAGE:
        c->messages++;
        c->message_bytes += ev->u.message.len;
        break;
    case TERN_EV_DC_CLOSING:
        c->dc_closing++;
        break;
    case TERN_EV_DC_CLOSE:
        c->dc_close++;
        break;
    case TERN_EV_DC_ERROR:
        c->dc_error++;
        break;
    default:
        break;
    }
    if (ev->type >= TERN_EV_DATA_CHANNEL && !ev->dc)
        violation(sim, "%s: channel event %d without a channel", p->name, ev->type);
}

/* Poll one pc until a round yields neither a datagram nor an event. */
static bool drain_pc(sim_t *sim, simpeer_t *p)
{
    bool any = false;
    unsigned long total = 0;
    for (;;) {
        bool progress = false;
        tern_transmit_t t;
        while (tern_pc_poll_transmit(p->pc, &t)) {
            send_transmit(sim, p, &t);
            progress = true;
            total++;
        }
        tern_event_t ev;
        while (tern_pc_poll_event(p->pc, &ev)) {
            note_event(sim, p, &ev);
            if (p->on_event)
                p->on_event(p, &ev, p->on_event_user);
            progress = true;
            total++;
        }
        if (!progress)
            break;
        any = true;
        if (total > STUCK_DRAIN_LIMIT) {
            sim_fail(sim, "%s: drain never ends (more than %d outputs)", p->name,
                     STUCK_DRAIN_LIMIT);
            sim->stuck = true;
            break;
        }
    }
    p->cached_deadline = tern_pc_next_deadline(p->pc);
    return any;
}

static tern_ctx_t *ctx_at(sim_t *sim, size_t i)
{
    return sim->cfg.shared_ctx ? (i == 0 ? sim->shared_ctx : NULL) : sim->peers[i]->ctx;
}

/* Drain every pc that a context lists as pending. */
static void drain_pending(sim_t *sim)
{
    for (size_t i = 0; i < sim->peer_count; i++) {
        tern_ctx_t *ctx = ctx_at(sim, i);
        if (!ctx)
            continue;
        tern_pc_t *pc;
        unsigned guard = 0;
        while ((pc = tern_ctx_poll_pending_pc(ctx)) != NULL && guard++ < 100000) {
            simpeer_t *p = tern_pc_user_data(pc);
            if (!p) {
                violation(sim, "pending pc without user data");
                continue;
            }
            drain_pc(sim, p);
        }
    }
}

void sim_drain(sim_t *sim, simpeer_t *p)
{
    drain_pc(sim, p);
    drain_pending(sim);
}

/* ---- the loop ---- */

static tern_time_t earliest(sim_t *sim)
{
    tern_time_t t = vnet_next_delivery(sim->net);
    if (sim->sig_count && sim->sig[0].at < t)
        t = sim->sig[0].at;
    for (size_t i = 0; i < sim->peer_count; i++) {
        simpeer_t *p = sim->peers[i];
        tern_time_t d = tern_pc_next_deadline(p->pc);
        if (d < p->cached_deadline) {
            violation(sim, "%s: deadline moved earlier (%lld < %lld, %s) with no drain asked",
                      p->name, (long long)d, (long long)p->cached_deadline,
                      tern_pc_timeout_reason(p->pc));
            p->cached_deadline = d;
        }
        if (d < t)
            t = d;
        tern_ctx_t *ctx = ctx_at(sim, i);
        if (ctx && tern_ctx_next_deadline(ctx) < t)
            t = tern_ctx_next_deadline(ctx);
    }
    return t;
}

/* After a step every pc must be empty: anything left was not announced. */
static void sweep(sim_t *sim)
{
    for (size_t i = 0; i < sim->peer_count; i++) {
        simpeer_t *p = sim->peers[i];
        tern_transmit_t t;
        tern_event_t ev;
        bool tx = tern_pc_poll_transmit(p->pc, &t);
        if (tx)
            send_transmit(sim, p, &t);
        bool evt = !tx && tern_pc_poll_event(p->pc, &ev);
        if (evt) {
            note_event(sim, p, &ev);
            if (p->on_event)
                p->on_event(p, &ev, p->on_event_user);
        }
        if (tx || evt) {
            violation(sim, "%s: %s waiting that no drain was asked for (pending list missed it)",
                      p->name, tx ? "a datagram" : "an event");
            sim_drain(sim, p);
        }
    }
}

static void deliver_datagrams(sim_t *sim)
{
    vnet_delivery_t d;
    while (vnet_poll_delivery(sim->net, &d)) {
        simpeer_t *p = vnet_host_user(d.host);
        int err = tern_pc_handle_input(p->pc, sim_now(sim), &d.dgram);
        if (err)
            sim_fail(sim, "%s: handle_input: %s", p->name, tern_err_name(err));
        sim_drain(sim, p);
    }
}

static void deliver_signals(sim_t *sim)
{
    while (sim->sig_count && sim->sig[0].at <= sim_now(sim)) {
        sig_msg_t m = sim->sig[0];
        sim->sig_count--;
        memmove(&sim->sig[0], &sim->sig[1], sim->sig_count * sizeof m);
        deliver_signal(sim, &m);
        free(m.text);
        free(m.mid);
    }
}

static void run_timers(sim_t *sim)
{
    tern_time_t now = sim_now(sim);
    for (size_t i = 0; i < sim->peer_count; i++) {
        tern_ctx_t *ctx = ctx_at(sim, i);
        if (ctx && tern_ctx_next_deadline(ctx) <= now) {
            tern_ctx_handle_timeout(ctx, now);
            drain_pending(sim);
        }
    }
    for (size_t i = 0; i < sim->peer_count; i++) {
        simpeer_t *p = sim->peers[i];
        if (tern_pc_next_deadline(p->pc) <= now) {
            tern_pc_handle_timeout(p->pc, now);
            sim_drain(sim, p);
        }
    }
}

/* A deadline that stays at or before now after its timeout ran: the loop would spin. */
static void check_busy(sim_t *sim, tern_time_t t)
{
    if (t != sim->last_step_at) {
        sim->last_step_at = t;
        sim->same_instant_steps = 0;
        return;
    }
    if (++sim->same_instant_steps < BUSY_LIMIT)
        return;
    const char *who = "network or signaling";
    for (size_t i = 0; i < sim->peer_count; i++) {
        if (tern_pc_next_deadline(sim->peers[i]->pc) <= t)
            who = tern_pc_timeout_reason(sim->peers[i]->pc);
        tern_ctx_t *ctx = ctx_at(sim, i);
        if (ctx && tern_ctx_next_deadline(ctx) <= t)
            who = "context (sctp tick)";
    }
    violation(sim, "busy loop: %d steps at the same instant, deadline of %s stays in the past",
              BUSY_LIMIT, who);
    sim->stuck = true;
}

/* One step: returns false if there is nothing left to do before `limit`. */
static bool step(sim_t *sim, tern_time_t limit)
{
    tern_time_t t = earliest(sim);
    if (t == TERN_TIME_NEVER || t > limit) {
        vnet_advance(sim->net, limit);
        return false;
    }
    if (t < sim_now(sim))
        t = sim_now(sim);
    check_busy(sim, t);
    vnet_advance(sim->net, t);
    deliver_datagrams(sim);
    deliver_signals(sim);
    run_timers(sim);
    if (sim->on_step) {
        sim->on_step(sim, sim->on_step_user);
        for (size_t i = 0; i < sim->peer_count; i++)
            sim_drain(sim, sim->peers[i]);
    }
    sweep(sim);
    return true;
}

bool sim_run_until(sim_t *sim, sim_cond_fn cond, void *arg, tern_time_t budget_us)
{
    tern_time_t limit = sim_now(sim) + budget_us;
    if (cond && cond(sim, arg))
        return true;
    while (!sim->stuck) {
        bool more = step(sim, limit);
        if (cond && cond(sim, arg))
            return true;
        if (!more)
            break;
    }
    return false;
}

void sim_run_for(sim_t *sim, tern_time_t duration_us)
{
    sim_run_until(sim, NULL, NULL, duration_us);
    vnet_advance(sim->net, sim_now(sim)); /* keep the process clock in step */
}

/* ---- reporting ---- */

void sim_print_summary(const sim_t *sim, const char *label)
{
    const vnet_stats_t *s = vnet_stats(sim->net);
    tern_time_t t = vnet_now(sim->net) - sim->start;
    printf("# %s seed %llu: %lld.%03llds virtual, sent %llu delivered %llu lost %llu dup %llu "
           "reordered %llu too_big %llu unbound %llu\n",
           label, (unsigned long long)sim->cfg.seed, (long long)(t / 1000000),
           (long long)(t % 1000000 / 1000), (unsigned long long)s->sent,
           (unsigned long long)s->delivered, (unsigned long long)s->lost,
           (unsigned long long)s->duplicated, (unsigned long long)s->reordered,
           (unsigned long long)s->too_big, (unsigned long long)s->unbound);
}

bool sim_selected(const char *name)
{
    const char *only = getenv("SIM_ONLY");
    if (!only || !*only)
        return true;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", only);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (*tok && strstr(name, tok))
            return true;
    return false;
}

void sim_seeds(uint64_t first, unsigned count, uint64_t *out_first, unsigned *out_count)
{
    const char *one = getenv("SIM_SEED");
    const char *many = getenv("SIM_SEEDS");
    *out_first = first;
    *out_count = count;
    if (one && *one) {
        *out_first = strtoull(one, NULL, 0);
        *out_count = 1;
    } else if (many && *many) {
        *out_count = (unsigned)strtoul(many, NULL, 0);
    }
}
