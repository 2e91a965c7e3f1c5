/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of tern_loop on real sockets, loopback only: the deadline heap and pointer
 * map against brute force, one-shot timers (order, cancel, from callbacks), tern_loop_post from
 * several threads (each function once, on the loop thread), run_once timeouts, interface
 * enumeration and UDP binding, and the pc driver: sockets handed to the pc, datagrams both
 * ways, batches, pc and context timers, commands drained through the context's pending list,
 * and removal of a pc from inside callbacks.
 *
 * The pc here is a fake that implements the sans-IO surface of tern.h (until src/rtc/ provides
 * tern_pc_*): it announces its sockets as candidates, answers "ping" with "pong", reports every
 * datagram as a message event and poisons the previous transmit and message on each call, so
 * a driver that keeps a borrowed pointer too long is caught.
 */
#include "check.h"
#include "io/io.h"
#include "io/io_loop.h"
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Generous: only says when to give up. */
#define GIVE_UP_MS 20000

/* ------------------------------------------------------------------------------------------ */
/* A fake peer connection and context (the sans-IO surface the loop drives)                   */
/* ------------------------------------------------------------------------------------------ */

#define FAKE_MAX_SOCKS 16
#define FAKE_QUEUE 512
#define FAKE_DATA 256

typedef struct fake_tx {
    tern_addr_t local, remote;
    size_t len;
    uint8_t data[FAKE_DATA];
} fake_tx_t;

typedef struct fake_ev {
    tern_event_type_t type;
    int value;
    char text[FAKE_DATA];
    size_t len;
} fake_ev_t;

struct tern_pc {
    tern_ctx_t *ctx;
    tern_pc_config_t cfg;
    tern_addr_t socks[FAKE_MAX_SOCKS];
    size_t sock_count;
    bool sockets_done;
    fake_tx_t tx[FAKE_QUEUE];
    size_t tx_head, tx_count;
    fake_ev_t ev[FAKE_QUEUE];
    size_t ev_head, ev_count;
    fake_tx_t last_tx;        /* what poll_transmit handed out, poisoned on the next call */
    char last_msg[FAKE_DATA]; /* the same for a message event */
    tern_time_t deadline;
    tern_time_t timeout_at; /* `now` of the last handle_timeout that ran a timer */
    int timeouts;
    int inputs;
    bool echo;
    bool pending;
    struct tern_pc *pending_next;
};

static tern_time_t fake_ctx_deadline = TERN_TIME_NEVER;
static int fake_ctx_timeouts;

static void poison(tern_pc_t *pc)
{
    memset(pc->last_tx.data, 0xdd, sizeof pc->last_tx.data);
    memset(pc->last_msg, 0xdd, sizeof pc->last_msg);
}

static void mark_pending(tern_pc_t *pc)
{
    if (pc->pending)
        return;
    pc->pending = true;
    pc->pending_next = NULL;
    if (pc->ctx->pending_tail)
        pc->ctx->pending_tail->pending_next = pc;
    else
        pc->ctx->pending_head = pc;
    pc->ctx->pending_tail = pc;
}

static void unlink_pending(tern_pc_t *pc)
{
    tern_pc_t *prev = NULL;
    for (tern_pc_t *it = pc->ctx->pending_head; it; prev = it, it = it->pending_next) {
        if (it != pc)
            continue;
        if (prev)
            prev->pending_next = it->pending_next;
        else
            pc->ctx->pending_head = it->pending_next;
        if (pc->ctx->pending_tail == it)
            pc->ctx->pending_tail = prev;
        break;
    }
    pc->pending = false;
}

int tern_ctx_new(const tern_ctx_config_t *cfg, tern_ctx_t **out)
{
    tern_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return TERN_ERR_NOMEM;
    tern_ctx_init_base(ctx, cfg);
    *out = ctx;
    return TERN_OK;
}

void tern_ctx_free(tern_ctx_t *ctx)
{
    free(ctx);
}

tern_time_t tern_ctx_next_deadline(const tern_ctx_t *ctx)
{
    (void)ctx;
    return fake_ctx_deadline;
}

int tern_ctx_handle_timeout(tern_ctx_t *ctx, tern_time_t now)
{
    (void)ctx;
    if (now >= fake_ctx_deadline) {
        fake_ctx_timeouts++;
        fake_ctx_deadline = TERN_TIME_NEVER;
    }
    return TERN_OK;
}

tern_pc_t *tern_ctx_poll_pending_pc(tern_ctx_t *ctx)
{
    tern_pc_t *pc = ctx->pending_head;
    if (pc)
        unlink_pending(pc);
    return pc;
}

static tern_pc_t *fake_pc_new(tern_ctx_t *ctx, const tern_pc_config_t *cfg)
{
    tern_pc_t *pc = calloc(1, sizeof *pc);
    pc->ctx = ctx;
    if (cfg)
        pc->cfg = *cfg;
    pc->deadline = TERN_TIME_NEVER;
    pc->echo = true;
    return pc;
}

static void fake_pc_free(tern_pc_t *pc)
{
    if (!pc)
        return;
    unlink_pending(pc);
    memset(pc, 0xee, sizeof *pc); /* anything the loop still reads is garbage (ASan sees more) */
    free(pc);
}

const tern_pc_config_t *tern_pc_config(const tern_pc_t *pc)
{
    return &pc->cfg;
}

static void queue_event(tern_pc_t *pc, tern_event_type_t type, int value, const void *text,
                        size_t len)
{
    if (pc->ev_count == FAKE_QUEUE)
        return;
    fake_ev_t *ev = &pc->ev[(pc->ev_head + pc->ev_count++) % FAKE_QUEUE];
    ev->type = type;
    ev->value = value;
    ev->len = len < FAKE_DATA - 1 ? len : FAKE_DATA - 1;
    memcpy(ev->text, text ? text : "", ev->len);
    ev->text[ev->len] = '\0';
}

static void queue_tx(tern_pc_t *pc, const tern_addr_t *local, const tern_addr_t *remote,
                     const void *data, size_t len)
{
    if (pc->tx_count == FAKE_QUEUE || len > FAKE_DATA)
        return;
    fake_tx_t *tx = &pc->tx[(pc->tx_head + pc->tx_count++) % FAKE_QUEUE];
    tx->local = *local;
    tx->remote = *remote;
    tx->len = len;
    memcpy(tx->data, data, len);
}

int tern_pc_add_local_socket(tern_pc_t *pc, tern_time_t now, const tern_addr_t *addr)
{
    (void)now;
    poison(pc);
    if (pc->sock_count == FAKE_MAX_SOCKS)
        return TERN_ERR_TOO_LARGE;
    pc->socks[pc->sock_count++] = *addr;
    char buf[TERN_ADDR_STRLEN];
    tern_addr_format(addr, buf, sizeof buf);
    queue_event(pc, TERN_EV_ICE_CANDIDATE, 0, buf, strlen(buf));
    mark_pending(pc);
    return TERN_OK;
}

int tern_pc_local_sockets_done(tern_pc_t *pc, tern_time_t now)
{
    (void)now;
    poison(pc);
    pc->sockets_done = true;
    queue_event(pc, TERN_EV_ICE_GATHERING_STATE, TERN_ICE_GATHERING_COMPLETE, NULL, 0);
    mark_pending(pc);
    return TERN_OK;
}

int tern_pc_handle_input(tern_pc_t *pc, tern_time_t now, const tern_datagram_t *in)
{
    (void)now;
    poison(pc);
    pc->inputs++;
    queue_event(pc, TERN_EV_DC_MESSAGE, 0, in->data, in->len);
    if (pc->echo && in->len >= 4 && memcmp(in->data, "ping", 4) == 0) {
        uint8_t reply[FAKE_DATA];
        size_t len = in->len < FAKE_DATA ? in->len : FAKE_DATA;
        memcpy(reply, in->data, len);
        memcpy(reply, "pong", 4);
        queue_tx(pc, &in->local, &in->remote, reply, len);
    }
    return TERN_OK;
}

int tern_pc_handle_timeout(tern_pc_t *pc, tern_time_t now)
{
    poison(pc);
    if (now >= pc->deadline) {
        pc->timeouts++;
        pc->timeout_at = now;
        pc->deadline = TERN_TIME_NEVER;
    }
    return TERN_OK;
}

bool tern_pc_poll_transmit(tern_pc_t *pc, tern_transmit_t *out)
{
    poison(pc);
    if (!pc->tx_count)
        return false;
    pc->last_tx = pc->tx[pc->tx_head];
    pc->tx_head = (pc->tx_head + 1) % FAKE_QUEUE;
    pc->tx_count--;
    *out =
        (tern_transmit_t){pc->last_tx.local, pc->last_tx.remote, pc->last_tx.data, pc->last_tx.len};
    return true;
}

bool tern_pc_poll_event(tern_pc_t *pc, tern_event_t *out)
{
    poison(pc);
    if (!pc->ev_count)
        return false;
    fake_ev_t *ev = &pc->ev[pc->ev_head];
    pc->ev_head = (pc->ev_head + 1) % FAKE_QUEUE;
    pc->ev_count--;
    memset(out, 0, sizeof *out);
    out->type = ev->type;
    memcpy(pc->last_msg, ev->text, ev->len + 1);
    switch (ev->type) {
    case TERN_EV_ICE_CANDIDATE:
        out->u.ice_candidate.candidate = pc->last_msg;
        out->u.ice_candidate.mid = "0";
        break;
    case TERN_EV_ICE_GATHERING_STATE:
        out->u.ice_gathering_state = (tern_ice_gathering_state_t)ev->value;
        break;
    case TERN_EV_DC_MESSAGE:
        out->u.message.data = (const uint8_t *)pc->last_msg;
        out->u.message.len = ev->len;
        break;
    default:
        break;
    }
    return true;
}

tern_time_t tern_pc_next_deadline(const tern_pc_t *pc)
{
    return pc->deadline;
}

/* A command: queue datagrams to send, as tern_dc_send would. */
static void fake_send(tern_pc_t *pc, const tern_addr_t *local, const tern_addr_t *remote,
                      const char *text, int count)
{
    poison(pc);
    for (int i = 0; i < count; i++)
        queue_tx(pc, local, remote, text, strlen(text));
    mark_pending(pc);
}

static void fake_set_deadline(tern_pc_t *pc, tern_time_t deadline)
{
    pc->deadline = deadline;
    mark_pending(pc);
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static tern_ctx_t *new_ctx(void)
{
    tern_ctx_t *ctx = NULL;
    tern_ctx_config_t cfg = {.log_level = TERN_LOG_WARN};
    tern_ctx_new(&cfg, &ctx);
    return ctx;
}

/* Run iterations until *flag is true or GIVE_UP_MS pass; returns *flag. */
static bool run_until(tern_loop_t *loop, const bool *flag)
{
    tern_time_t give_up = tern_loop_now(loop) + TERN_MS(GIVE_UP_MS);
    while (!*flag && tern_loop_now(loop) < give_up)
        tern_loop_run_once(loop, 10);
    return *flag;
}

static bool run_until_count(tern_loop_t *loop, const int *count, int want)
{
    tern_time_t give_up = tern_loop_now(loop) + TERN_MS(GIVE_UP_MS);
    while (*count < want && tern_loop_now(loop) < give_up)
        tern_loop_run_once(loop, 10);
    return *count >= want;
}

static bool has_ipv6_loopback(void)
{
    tern_addr_t addrs[TERN_IO_MAX_LOCAL_ADDRS];
    int n = tern_io_iface_list(true, false, addrs, TERN_IO_MAX_LOCAL_ADDRS);
    for (int i = 0; i < n; i++)
        if (addrs[i].family == TERN_AF_INET6 && addrs[i].ip[15] == 1 && addrs[i].ip[0] == 0)
            return true;
    return false;
}

static bool is_loopback(const tern_addr_t *a)
{
    return (a->family == TERN_AF_INET && a->ip[0] == 127) ||
           (a->family == TERN_AF_INET6 && a->ip[0] == 0 && a->ip[15] == 1);
}

/* The pc's socket on the loopback address of this family. */
static const tern_addr_t *loopback_sock(const tern_pc_t *pc, int family)
{
    for (size_t i = 0; i < pc->sock_count; i++)
        if (pc->socks[i].family == family && is_loopback(&pc->socks[i]))
            return &pc->socks[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Heap and map                                                                               */
/* ------------------------------------------------------------------------------------------ */

static uint64_t lcg_state = 12345;

static uint32_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 33);
}

static void test_heap(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_io_heap_t h;
    tern_io_heap_init(&h, ctx);
    enum { N = 200 };
    static tern_io_heap_node_t nodes[N];
    for (int i = 0; i < N; i++) {
        tern_io_node_init(&nodes[i], 0);
        eq_int(tern_io_heap_reserve(&h), TERN_OK);
    }
    bool good = true;
    for (int step = 0; step < 20000 && good; step++) {
        tern_io_heap_node_t *n = &nodes[lcg() % N];
        uint32_t op = lcg() % 4;
        if (op == 0)
            tern_io_heap_remove(&h, n);
        else
            tern_io_heap_set(&h, n, op == 3 ? TERN_TIME_NEVER : 1000 + (tern_time_t)(lcg() % 50));
        /* Brute force: the top is the earliest (deadline, seq) of the nodes in the heap. */
        const tern_io_heap_node_t *best = NULL;
        size_t in_heap = 0;
        for (int i = 0; i < N; i++) {
            if (nodes[i].index == TERN_IO_HEAP_NONE)
                continue;
            in_heap++;
            if (h.items[nodes[i].index] != &nodes[i])
                good = false;
            if (!best || nodes[i].deadline < best->deadline ||
                (nodes[i].deadline == best->deadline && nodes[i].seq < best->seq))
                best = &nodes[i];
        }
        if (in_heap != h.count || tern_io_heap_peek(&h) != best)
            good = false;
    }
    ok(good);
    /* Equal deadlines come out in insertion order. */
    while (h.count)
        tern_io_heap_remove(&h, tern_io_heap_peek(&h));
    for (int i = 0; i < 10; i++)
        tern_io_heap_set(&h, &nodes[i], 5000);
    bool fifo = true;
    for (int i = 0; i < 10; i++) {
        tern_io_heap_node_t *top = tern_io_heap_peek(&h);
        fifo = fifo && top == &nodes[i];
        tern_io_heap_remove(&h, top);
    }
    ok(fifo);
    tern_io_heap_dispose(&h);
    tern_ctx_free(ctx);
}

static void test_map(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_io_map_t m;
    tern_io_map_init(&m, ctx);
    enum { N = 1000 };
    static char keys[N];
    static bool present[N];
    bool good = true;
    for (int step = 0; step < 50000 && good; step++) {
        int k = (int)(lcg() % N);
        if (lcg() % 2) {
            if (!present[k]) {
                good = tern_io_map_put(&m, &keys[k], &present[k]) == TERN_OK;
                present[k] = true;
            }
        } else {
            tern_io_map_remove(&m, &keys[k]);
            present[k] = false;
        }
        int probe = (int)(lcg() % N);
        void *v = tern_io_map_get(&m, &keys[probe]);
        if (v != (present[probe] ? (void *)&present[probe] : NULL))
            good = false;
    }
    ok(good);
    ok(tern_io_map_get(&m, NULL) == NULL);
    tern_io_map_dispose(&m);
    tern_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* Timers, posts, run_once                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct timer_log {
    tern_loop_t *loop;
    int order[16];
    int count;
    tern_time_t fired_at[16];
    tern_timer_t *to_cancel;
} timer_log_t;

static timer_log_t tlog;

static void record_timer(void *arg)
{
    int id = (int)(intptr_t)arg;
    if (tlog.count < 16) {
        tlog.fired_at[tlog.count] = tern_loop_now(tlog.loop);
        tlog.order[tlog.count++] = id;
    }
}

static void cancel_other(void *arg)
{
    record_timer(arg);
    tern_loop_cancel_timer(tlog.loop, tlog.to_cancel);
}

static void test_timers_order_and_cancel(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    memset(&tlog, 0, sizeof tlog);
    tlog.loop = loop;
    tern_timer_t *t30, *t10, *t20, *t10b, *t40, *t50;
    tern_time_t start = tern_loop_now(loop);
    eq_int(tern_loop_add_timer(loop, 30, record_timer, (void *)30, &t30), TERN_OK);
    eq_int(tern_loop_add_timer(loop, 10, record_timer, (void *)10, &t10), TERN_OK);
    eq_int(tern_loop_add_timer(loop, 20, record_timer, (void *)20, &t20), TERN_OK);
    eq_int(tern_loop_add_timer(loop, 10, record_timer, (void *)11, &t10b), TERN_OK);
    eq_int(tern_loop_add_timer(loop, 40, cancel_other, (void *)40, &t40), TERN_OK);
    eq_int(tern_loop_add_timer(loop, 45, record_timer, (void *)50, &t50), TERN_OK);
    tlog.to_cancel = t50;               /* cancelled by t40's callback */
    tern_loop_cancel_timer(loop, t20);  /* cancelled before it fires */
    tern_loop_cancel_timer(loop, NULL); /* no-op */
    int guard = 0;
    while (tlog.count < 4 && guard++ < 1000)
        tern_loop_run_once(loop, 100);
    eq_int(tlog.count, 4);
    eq_int(tlog.order[0], 10);
    eq_int(tlog.order[1], 11);
    eq_int(tlog.order[2], 30);
    eq_int(tlog.order[3], 40);
    ok(tlog.fired_at[0] >= start + TERN_MS(10));
    ok(tlog.fired_at[2] >= start + TERN_MS(30));
    /* t50 was cancelled: nothing fires within its time. */
    tern_loop_run_once(loop, 30);
    eq_int(tlog.count, 4);
    eq_int(loop->heap.count, 0);
    eq_int(loop->heap.reserved, 1); /* the context's node only: every timer gave its slot back */
    tern_loop_free(loop);
    tern_ctx_free(ctx);
}

typedef struct respawn {
    tern_loop_t *loop;
    int fired;
    int limit;
} respawn_t;

/* A timer that sets a zero-delay timer again: each iteration runs it once, no spin. */
static void respawn_timer(void *arg)
{
    respawn_t *r = arg;
    r->fired++;
    if (r->fired < r->limit)
        tern_loop_add_timer(r->loop, 0, respawn_timer, r, NULL);
}

static void cancel_self(void *arg)
{
    tern_timer_t **self = arg;
    tern_loop_cancel_timer(tlog.loop, *self); /* safe: it is freed when the callback returns */
    tlog.count++;
}

static void test_timers_from_callbacks(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    respawn_t r = {loop, 0, 5};
    tern_loop_add_timer(loop, 0, respawn_timer, &r, NULL);
    tern_loop_run_once(loop, 0);
    eq_int(r.fired, 1);
    for (int i = 0; i < 10; i++)
        tern_loop_run_once(loop, 100);
    eq_int(r.fired, 5);

    memset(&tlog, 0, sizeof tlog);
    tlog.loop = loop;
    static tern_timer_t *self;
    tern_loop_add_timer(loop, 1, cancel_self, &self, &self);
    for (int i = 0; i < 100 && tlog.count == 0; i++)
        tern_loop_run_once(loop, 10);
    eq_int(tlog.count, 1);

    /* Timers still set when the loop is freed are freed with it. */
    tern_loop_add_timer(loop, 100000, record_timer, NULL, NULL);
    tern_loop_free(loop);
    tern_ctx_free(ctx);
}

static void test_run_once_timeout(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    tern_time_t t0 = tern_loop_now(loop);
    eq_int(tern_loop_run_once(loop, 50), TERN_OK);
    tern_time_t waited = tern_loop_now(loop) - t0;
    ok(waited >= TERN_MS(50));
    ok(waited < TERN_SEC(5));
    t0 = tern_loop_now(loop);
    eq_int(tern_loop_run_once(loop, 0), TERN_OK);
    ok(tern_loop_now(loop) - t0 < TERN_SEC(1));
    /* The loop installed the stderr sink on a silent context and kept its level. */
    ok(ctx->log == tern_log_stderr);
    eq_int(ctx->log_level, TERN_LOG_WARN);
    tern_loop_free(loop);
    tern_ctx_free(ctx);
}

enum { POST_THREADS = 4, POSTS_PER_THREAD = 2000 };

typedef struct post_test {
    tern_loop_t *loop;
    pthread_t loop_thread;
    int runs[POST_THREADS][POSTS_PER_THREAD];
    int total;
    bool wrong_thread;
    bool done;
} post_test_t;

static post_test_t pt;

typedef struct post_arg {
    int thread, index;
} post_arg_t;

static void posted(void *arg)
{
    post_arg_t *a = arg;
    if (!pthread_equal(pthread_self(), pt.loop_thread))
        pt.wrong_thread = true;
    pt.runs[a->thread][a->index]++;
    if (++pt.total == POST_THREADS * POSTS_PER_THREAD)
        tern_loop_stop(pt.loop);
    free(a);
}

static void *poster(void *arg)
{
    int thread = (int)(intptr_t)arg;
    for (int i = 0; i < POSTS_PER_THREAD; i++) {
        post_arg_t *a = malloc(sizeof *a);
        a->thread = thread;
        a->index = i;
        if (tern_loop_post(pt.loop, posted, a) != TERN_OK)
            free(a);
        if (i % 256 == 0)
            usleep(100);
    }
    return NULL;
}

static void on_give_up(void *arg)
{
    tern_loop_stop(arg);
}

static void count_free_post(void *arg)
{
    (*(int *)arg)++;
}

static void test_post_threads(void)
{
    tern_ctx_t *ctx = new_ctx();
    memset(&pt, 0, sizeof pt);
    eq_int(tern_loop_new(ctx, &pt.loop), TERN_OK);
    pt.loop_thread = pthread_self();
    pthread_t threads[POST_THREADS];
    for (int i = 0; i < POST_THREADS; i++)
        pthread_create(&threads[i], NULL, poster, (void *)(intptr_t)i);
    tern_timer_t *give_up;
    tern_loop_add_timer(pt.loop, GIVE_UP_MS, on_give_up, pt.loop, &give_up);
    eq_int(tern_loop_run(pt.loop), TERN_OK);
    tern_loop_cancel_timer(pt.loop, give_up);
    for (int i = 0; i < POST_THREADS; i++)
        pthread_join(threads[i], NULL);
    eq_int(pt.total, POST_THREADS * POSTS_PER_THREAD);
    bool once = true;
    for (int t = 0; t < POST_THREADS; t++)
        for (int i = 0; i < POSTS_PER_THREAD; i++)
            once = once && pt.runs[t][i] == 1;
    ok(once);
    ok(!pt.wrong_thread);
    eq_int(tern_loop_post(pt.loop, NULL, NULL), TERN_ERR_INVALID_ARG);

    /* A post accepted before tern_loop_free still runs once, inside it. */
    static int ran;
    eq_int(tern_loop_post(pt.loop, count_free_post, &ran), TERN_OK);
    tern_loop_free(pt.loop);
    eq_int(ran, 1);
    tern_ctx_free(ctx);
}

static void stop_from_post(void *arg)
{
    tern_loop_stop(arg);
}

static void test_run_stop(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    eq_int(tern_loop_post(loop, stop_from_post, loop), TERN_OK);
    eq_int(tern_loop_run(loop), TERN_OK); /* returns: the post stopped it */
    eq_int(tern_loop_run_once(NULL, 0), TERN_ERR_INVALID_ARG);
    tern_loop_free(loop);
    tern_loop_free(NULL);
    tern_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* Interfaces and UDP                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void test_iface_and_udp(void)
{
    tern_addr_t addrs[TERN_IO_MAX_LOCAL_ADDRS];
    int n = tern_io_iface_list(true, false, addrs, TERN_IO_MAX_LOCAL_ADDRS);
    ok(n > 0);
    bool v4_loopback = false, link_local = false, dup = false;
    for (int i = 0; i < n; i++) {
        if (addrs[i].family == TERN_AF_INET && addrs[i].ip[0] == 127)
            v4_loopback = true;
        if (addrs[i].family == TERN_AF_INET6 && addrs[i].ip[0] == 0xfe &&
            (addrs[i].ip[1] & 0xc0) == 0x80)
            link_local = true;
        for (int j = 0; j < i; j++)
            dup = dup || tern_addr_equal(&addrs[i], &addrs[j]);
        eq_int(addrs[i].port, 0);
    }
    ok(v4_loopback);
    ok(!link_local);
    ok(!dup);

    n = tern_io_iface_list(false, true, addrs, TERN_IO_MAX_LOCAL_ADDRS);
    bool only_v4_public = true;
    for (int i = 0; i < n; i++)
        only_v4_public =
            only_v4_public && addrs[i].family == TERN_AF_INET && !is_loopback(&addrs[i]);
    ok(only_v4_public);
    eq_int(tern_io_iface_list(true, false, addrs, 1), 1); /* capped */

    tern_addr_t lo, bound;
    tern_addr_parse("127.0.0.1", &lo);
    int fd = tern_io_udp_bind(&lo, &bound);
    ok(fd >= 0);
    ok(bound.port != 0);
    bound.port = lo.port;
    ok(tern_addr_equal(&bound, &lo));
    if (fd >= 0)
        close(fd);
    tern_addr_t none = {0};
    ok(tern_io_udp_bind(&none, &bound) < 0);

    struct sockaddr_storage ss;
    tern_addr_t v6, back;
    tern_addr_parse("[2001:db8::7]:4242", &v6);
    socklen_t len = tern_io_addr_to_sockaddr(&v6, &ss);
    ok(tern_io_addr_from_sockaddr((struct sockaddr *)&ss, len, &back));
    ok(tern_addr_equal(&v6, &back));
    /* A v4-mapped sender is reported as IPv4. */
    tern_addr_t mapped, v4;
    tern_addr_parse("[::ffff:10.1.2.3]:99", &mapped);
    len = tern_io_addr_to_sockaddr(&mapped, &ss);
    ok(tern_io_addr_from_sockaddr((struct sockaddr *)&ss, len, &back));
    tern_addr_parse("10.1.2.3:99", &v4);
    ok(tern_addr_equal(&back, &v4));
}

/* ------------------------------------------------------------------------------------------ */
/* The pc driver                                                                              */
/* ------------------------------------------------------------------------------------------ */

typedef struct peer {
    tern_loop_t *loop;
    tern_pc_t *pc;
    int candidates;
    bool gathered;
    int messages;
    int pongs;
    bool bad_message;
    /* what the callback does on a message */
    tern_pc_t *remove_on_message; /* remove (and free) this pc */
    tern_pc_t *removed_pc;
} peer_t;

static void on_candidate(tern_pc_t *pc, void *user, const char *candidate, const char *mid,
                         int mline_index)
{
    peer_t *p = user;
    (void)mline_index;
    if (pc != p->pc || !candidate || strcmp(mid, "0") != 0)
        p->bad_message = true;
    p->candidates++;
}

static void on_gathering(tern_pc_t *pc, void *user, tern_ice_gathering_state_t s)
{
    peer_t *p = user;
    (void)pc;
    if (s == TERN_ICE_GATHERING_COMPLETE)
        p->gathered = true;
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    peer_t *p = user;
    (void)dc;
    (void)is_text;
    p->messages++;
    if (len >= 4 && memcmp(data, "pong", 4) == 0)
        p->pongs++;
    else if (len < 4 || memcmp(data, "ping", 4) != 0)
        p->bad_message = true;
    if (p->remove_on_message) {
        tern_pc_t *victim = p->remove_on_message;
        p->remove_on_message = NULL;
        if (tern_loop_remove_pc(p->loop, victim) != TERN_OK)
            p->bad_message = true;
        fake_pc_free(victim);
        p->removed_pc = victim;
    }
}

static const tern_pc_callbacks_t peer_cbs = {
    .on_ice_candidate = on_candidate,
    .on_ice_gathering_state = on_gathering,
    .on_message = on_message,
};

static void test_bind_sockets(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    tern_pc_config_t with_lo = {.include_loopback = true};
    tern_pc_config_t no_lo_v4 = {.disable_ipv6 = true};
    peer_t a = {.loop = loop}, b = {.loop = loop};
    a.pc = fake_pc_new(ctx, &with_lo);
    b.pc = fake_pc_new(ctx, &no_lo_v4);
    eq_int(tern_loop_add_pc(loop, a.pc, &peer_cbs, &a), TERN_OK);
    eq_int(tern_loop_add_pc(loop, a.pc, &peer_cbs, &a), TERN_ERR_INVALID_STATE);
    int rc = tern_loop_add_pc(loop, b.pc, &peer_cbs, &b);
    /* No callback runs inside add_pc; the pc has its sockets and knows they are all in. */
    eq_int(a.candidates, 0);
    ok(a.pc->sockets_done);
    ok(a.pc->sock_count > 0);
    ok(loopback_sock(a.pc, TERN_AF_INET) != NULL);
    if (has_ipv6_loopback())
        ok(loopback_sock(a.pc, TERN_AF_INET6) != NULL);
    bool ports = true;
    for (size_t i = 0; i < a.pc->sock_count; i++)
        ports = ports && a.pc->socks[i].port != 0;
    ok(ports);
    /* b: no loopback, no IPv6; a machine without another interface has nothing to bind. */
    if (rc == TERN_OK) {
        bool v4_public = true;
        for (size_t i = 0; i < b.pc->sock_count; i++)
            v4_public =
                v4_public && b.pc->socks[i].family == TERN_AF_INET && !is_loopback(&b.pc->socks[i]);
        ok(v4_public);
    } else {
        eq_int(rc, TERN_ERR_IO);
    }
    ok(run_until(loop, &a.gathered));
    eq_int(a.candidates, (int)a.pc->sock_count);
    ok(!a.bad_message);
    eq_int(tern_loop_remove_pc(loop, a.pc), TERN_OK);
    eq_int(tern_loop_remove_pc(loop, a.pc), TERN_ERR_NOT_FOUND);
    /* b stays on the loop: tern_loop_free removes it and closes its sockets. */
    tern_loop_free(loop);
    fake_pc_free(a.pc);
    fake_pc_free(b.pc);
    tern_ctx_free(ctx);
}

/* Two pcs on one loop, loopback: a sends pings to b's socket, b answers each with a pong. */
static void exchange(tern_ctx_t *ctx, int family, int count)
{
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    tern_pc_config_t cfg = {.include_loopback = true};
    peer_t a = {.loop = loop}, b = {.loop = loop};
    a.pc = fake_pc_new(ctx, &cfg);
    b.pc = fake_pc_new(ctx, &cfg);
    eq_int(tern_loop_add_pc(loop, a.pc, &peer_cbs, &a), TERN_OK);
    eq_int(tern_loop_add_pc(loop, b.pc, &peer_cbs, &b), TERN_OK);
    const tern_addr_t *from = loopback_sock(a.pc, family), *to = loopback_sock(b.pc, family);
    ok(from && to);
    if (from && to) {
        fake_send(a.pc, from, to, "ping 0123456789", count);
        ok(run_until_count(loop, &a.pongs, count));
        eq_int(b.messages, count);
        eq_int(a.pongs, count);
        ok(!a.bad_message && !b.bad_message);
        eq_int(loop->tx_dropped_full, 0);
    }
    tern_loop_free(loop);
    fake_pc_free(a.pc);
    fake_pc_free(b.pc);
}

static void test_exchange(void)
{
    tern_ctx_t *ctx = new_ctx();
    exchange(ctx, TERN_AF_INET, 1);
    exchange(ctx, TERN_AF_INET, 300); /* several recvmmsg / sendmmsg batches */
    if (has_ipv6_loopback())
        exchange(ctx, TERN_AF_INET6, 5);
    tern_ctx_free(ctx);
}

static void test_pc_and_ctx_timers(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    tern_pc_config_t cfg = {.include_loopback = true};
    peer_t a = {.loop = loop};
    a.pc = fake_pc_new(ctx, &cfg);
    eq_int(tern_loop_add_pc(loop, a.pc, &peer_cbs, &a), TERN_OK);
    tern_time_t deadline = tern_loop_now(loop) + TERN_MS(20);
    fake_set_deadline(a.pc, deadline); /* a command outside callbacks: drained next iteration */
    fake_ctx_timeouts = 0;
    fake_ctx_deadline = tern_loop_now(loop) + TERN_MS(15);
    tern_time_t ctx_deadline = fake_ctx_deadline;
    ok(run_until_count(loop, &a.pc->timeouts, 1));
    ok(a.pc->timeout_at >= deadline); /* never early */
    eq_int(fake_ctx_timeouts, 1);
    ok(tern_loop_now(loop) >= ctx_deadline);
    /* Idle: no timer left in the heap but the ones nobody set. */
    eq_int(loop->heap.count, 0);
    tern_loop_run_once(loop, 20);
    eq_int(a.pc->timeouts, 1);
    tern_loop_free(loop);
    fake_pc_free(a.pc);
    tern_ctx_free(ctx);
}

static void test_remove_in_callback(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    tern_pc_config_t cfg = {.include_loopback = true};
    peer_t a = {.loop = loop}, b = {.loop = loop}, c = {.loop = loop};
    a.pc = fake_pc_new(ctx, &cfg);
    b.pc = fake_pc_new(ctx, &cfg);
    c.pc = fake_pc_new(ctx, &cfg);
    eq_int(tern_loop_add_pc(loop, a.pc, &peer_cbs, &a), TERN_OK);
    eq_int(tern_loop_add_pc(loop, b.pc, &peer_cbs, &b), TERN_OK);
    eq_int(tern_loop_add_pc(loop, c.pc, &peer_cbs, &c), TERN_OK);
    ok(run_until(loop, &c.gathered));

    /* b removes and frees itself on its first message, with more datagrams already queued to
     * it in the same batch: none of them may reach the freed pc. */
    b.remove_on_message = b.pc;
    fake_send(a.pc, loopback_sock(a.pc, TERN_AF_INET), loopback_sock(b.pc, TERN_AF_INET),
              "ping self", 20);
    tern_pc_t *b_pc = b.pc;
    ok(run_until_count(loop, &b.messages, 1));
    for (int i = 0; i < 5; i++)
        tern_loop_run_once(loop, 5);
    eq_int(b.messages, 1);
    ok(b.removed_pc == b_pc);
    eq_int(tern_loop_remove_pc(loop, b_pc), TERN_ERR_NOT_FOUND);

    /* c removes a (another pc) on its first message while pings go to both a and c. */
    c.remove_on_message = a.pc;
    tern_pc_t *a_pc = a.pc;
    fake_send(c.pc, loopback_sock(c.pc, TERN_AF_INET), loopback_sock(a.pc, TERN_AF_INET),
              "ping other", 10);
    fake_send(c.pc, loopback_sock(c.pc, TERN_AF_INET), loopback_sock(c.pc, TERN_AF_INET),
              "ping other", 10);
    ok(run_until_count(loop, &c.messages, 1));
    for (int i = 0; i < 5; i++)
        tern_loop_run_once(loop, 5);
    ok(c.removed_pc == a_pc);
    eq_int(tern_loop_remove_pc(loop, a_pc), TERN_ERR_NOT_FOUND);
    ok(!a.bad_message && !b.bad_message && !c.bad_message);
    tern_loop_free(loop);
    fake_pc_free(c.pc);
    tern_ctx_free(ctx);
}

/* Transmits from an address the pc has no socket for are dropped; the loop goes on. */
static void test_unknown_source(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    tern_pc_config_t cfg = {.include_loopback = true};
    peer_t a = {.loop = loop}, b = {.loop = loop};
    a.pc = fake_pc_new(ctx, &cfg);
    b.pc = fake_pc_new(ctx, &cfg);
    eq_int(tern_loop_add_pc(loop, a.pc, &peer_cbs, &a), TERN_OK);
    eq_int(tern_loop_add_pc(loop, b.pc, &peer_cbs, &b), TERN_OK);
    tern_addr_t bogus;
    tern_addr_parse("127.0.0.1:9", &bogus);
    fake_send(a.pc, &bogus, loopback_sock(b.pc, TERN_AF_INET), "ping lost", 3);
    fake_send(a.pc, loopback_sock(a.pc, TERN_AF_INET), loopback_sock(b.pc, TERN_AF_INET),
              "ping kept", 1);
    ok(run_until_count(loop, &a.pongs, 1));
    eq_int(loop->tx_dropped_no_socket, 3);
    eq_int(b.messages, 1);
    tern_loop_free(loop);
    fake_pc_free(a.pc);
    fake_pc_free(b.pc);
    tern_ctx_free(ctx);
}

typedef struct cross_post {
    peer_t *from;
    const tern_addr_t *to;
} cross_post_t;

static void post_send(void *arg)
{
    cross_post_t *cp = arg;
    fake_send(cp->from->pc, loopback_sock(cp->from->pc, TERN_AF_INET), cp->to, "ping posted", 1);
}

static void *post_from_thread(void *arg)
{
    cross_post_t *cp = arg;
    tern_loop_post(cp->from->loop, post_send, cp);
    return NULL;
}

/* A command issued by a function posted from another thread is drained in that iteration. */
static void test_post_drives_pc(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    tern_pc_config_t cfg = {.include_loopback = true};
    peer_t a = {.loop = loop}, b = {.loop = loop};
    a.pc = fake_pc_new(ctx, &cfg);
    b.pc = fake_pc_new(ctx, &cfg);
    eq_int(tern_loop_add_pc(loop, a.pc, &peer_cbs, &a), TERN_OK);
    eq_int(tern_loop_add_pc(loop, b.pc, &peer_cbs, &b), TERN_OK);
    ok(run_until(loop, &b.gathered));
    cross_post_t cp = {&a, loopback_sock(b.pc, TERN_AF_INET)};
    pthread_t th;
    pthread_create(&th, NULL, post_from_thread, &cp);
    ok(run_until_count(loop, &a.pongs, 1));
    pthread_join(th, NULL);
    tern_loop_remove_pc(loop, a.pc);
    tern_loop_remove_pc(loop, b.pc);
    tern_loop_free(loop);
    fake_pc_free(a.pc);
    fake_pc_free(b.pc);
    tern_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* Allocation failures                                                                        */
/* ------------------------------------------------------------------------------------------ */

static int alloc_countdown = -1; /* fail the allocation when it reaches 0; -1: never */

static bool should_fail(void)
{
    return alloc_countdown >= 0 && alloc_countdown-- == 0;
}

static void *fail_malloc(size_t size, void *user)
{
    (void)user;
    return should_fail() ? NULL : malloc(size);
}

static void *fail_calloc(size_t n, size_t size, void *user)
{
    (void)user;
    return should_fail() ? NULL : calloc(n, size);
}

static void *fail_realloc(void *ptr, size_t size, void *user)
{
    (void)user;
    return should_fail() ? NULL : realloc(ptr, size);
}

static void fail_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static void noop_post(void *arg)
{
    (*(int *)arg)++;
}

/* Fail each allocation of a loop's life in turn: every failure is reported and nothing leaks. */
static void test_failmalloc(void)
{
    static const tern_mem_t mem = {NULL, fail_malloc, fail_calloc, fail_realloc, fail_free};
    tern_ctx_config_t cfg = {.log_level = TERN_LOG_ERROR, .mem = &mem};
    tern_ctx_t *ctx = NULL;
    tern_ctx_new(&cfg, &ctx);
    tern_pc_config_t pc_cfg = {.include_loopback = true};
    bool completed = false, reported = true;
    for (int fail_at = 0; fail_at < 200 && !completed; fail_at++) {
        alloc_countdown = fail_at;
        tern_loop_t *loop = NULL;
        tern_pc_t *pc = fake_pc_new(ctx, &pc_cfg);
        int posts = 0;
        int rc = tern_loop_new(ctx, &loop);
        if (rc == TERN_OK)
            rc = tern_loop_add_timer(loop, 1000, record_timer, NULL, NULL);
        if (rc == TERN_OK)
            rc = tern_loop_add_pc(loop, pc, NULL, NULL);
        if (rc == TERN_OK)
            rc = tern_loop_post(loop, noop_post, &posts);
        if (rc == TERN_OK) {
            tern_loop_run_once(loop, 0);
            completed = posts == 1;
        } else if (rc != TERN_ERR_NOMEM) {
            reported = false;
        }
        alloc_countdown = -1;
        tern_loop_free(loop);
        fake_pc_free(pc);
    }
    ok(completed);
    ok(reported);
    tern_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* The stderr log sink                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Log through the sink with stderr sent to a file; returns what was written. */
static void capture_stderr(const char *filter, char *out, size_t cap)
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    fflush(stderr);
    dup2(fileno(tmp), STDERR_FILENO);
    tern_log_stderr_set_filter(filter);
    tern_log_stderr(NULL, TERN_LOG_WARN, "ice", "w-ice");
    tern_log_stderr(NULL, TERN_LOG_INFO, "ice", "i-ice");
    tern_log_stderr(NULL, TERN_LOG_DEBUG, "io", "d-io");
    tern_log_stderr(NULL, TERN_LOG_TRACE, "io", "t-io");
    tern_log_stderr(NULL, (tern_log_level_t)42, "io", "bad-level");
    tern_log_stderr(NULL, TERN_LOG_ERROR, NULL, "no-module");
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
}

static void test_log_stderr(void)
{
    char text[1024];
    capture_stderr("warn,io=debug", text, sizeof text);
    ok(strstr(text, "w-ice") != NULL);
    ok(strstr(text, "i-ice") == NULL);
    ok(strstr(text, "d-io") != NULL);
    ok(strstr(text, "t-io") == NULL);
    ok(strstr(text, "bad-level") == NULL && strstr(text, "no-module") == NULL);
    capture_stderr("error", text, sizeof text);
    ok(strstr(text, "w-ice") == NULL && strstr(text, "d-io") == NULL);
    capture_stderr("trace", text, sizeof text);
    ok(strstr(text, "t-io") != NULL && strstr(text, "i-ice") != NULL);
    tern_log_stderr_set_filter(NULL); /* back to the environment's */
}

int main(void)
{
    subtest("heap", test_heap);
    subtest("map", test_map);
    subtest("timers order and cancel", test_timers_order_and_cancel);
    subtest("timers from callbacks", test_timers_from_callbacks);
    subtest("run_once timeout", test_run_once_timeout);
    subtest("post from threads", test_post_threads);
    subtest("run and stop", test_run_stop);
    subtest("interfaces and udp", test_iface_and_udp);
    subtest("log sink", test_log_stderr);
    subtest("pc sockets", test_bind_sockets);
    subtest("pc exchange", test_exchange);
    subtest("pc and ctx timers", test_pc_and_ctx_timers);
    subtest("remove in callback", test_remove_in_callback);
    subtest("unknown source", test_unknown_source);
    subtest("post drives pc", test_post_drives_pc);
    subtest("failmalloc", test_failmalloc);
    return check_done();
}
