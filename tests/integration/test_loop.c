/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of tern_loop on real sockets, loopback only: the deadline heap and pointer
 * map against brute force, one-shot timers (order, cancel, from callbacks), tern_loop_post from
 * several threads (each function once, on the loop thread), run_once timeouts, interface
 * enumeration and UDP binding, the stderr log sink's filter, a failmalloc sweep, and the pc
 * driver with real peer connections: sockets handed to the pc (interfaces or bind_addresses),
 * two pcs on one loop connecting over loopback and exchanging messages, commands from posted
 * functions, and removal (and freeing) of a pc from inside callbacks, its own and another's.
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
/* The pc driver, with real peer connections                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct peer {
    tern_ctx_t *ctx;
    tern_loop_t *loop;
    tern_pc_t *pc;
    struct peer *other; /* where candidates are trickled */
    int candidates, loopback_v4, loopback_v6, ipv6;
    tern_addr_t loopback_addr; /* the 127.0.0.1 candidate's address */
    bool gathered;
    bool in_add_pc; /* set around tern_loop_add_pc: no callback may run then */
    bool bad;
    tern_dc_t *dc;
    bool open;
    bool closed; /* the channel's on_close ran */
    tern_pc_state_t state;
    int messages;
    char last[64];
    /* what the callbacks do */
    bool reply;                   /* answer each message with "world" */
    tern_pc_t *remove_on_message; /* remove this pc from the loop and free it */
    struct peer *removed_peer;
} peer_t;

/* A host candidate's address: "candidate:F 1 udp PRIO ADDR PORT typ host ...". */
static void count_candidate(peer_t *p, const char *candidate)
{
    char addr[64] = "", type[16] = "";
    unsigned port = 0;
    if (sscanf(candidate, "candidate:%*s %*s %*s %*s %63s %u typ %15s", addr, &port, type) != 3) {
        p->bad = true;
        return;
    }
    p->candidates++;
    if (strcmp(addr, "127.0.0.1") == 0) {
        p->loopback_v4++;
        tern_addr_parse("127.0.0.1", &p->loopback_addr);
        p->loopback_addr.port = (uint16_t)port;
    }
    if (strcmp(addr, "::1") == 0)
        p->loopback_v6++;
    if (strchr(addr, ':'))
        p->ipv6++;
    if (port == 0 || strcmp(type, "host") != 0)
        p->bad = true;
}

static void on_candidate(tern_pc_t *pc, void *user, const char *candidate, const char *mid,
                         int mline_index)
{
    peer_t *p = user;
    (void)mline_index;
    if (pc != p->pc || p->in_add_pc || !candidate)
        p->bad = true;
    if (candidate && *candidate)
        count_candidate(p, candidate);
    if (p->other && p->other->pc &&
        tern_pc_add_ice_candidate(p->other->pc, tern_loop_now(p->loop), candidate, mid) != 0)
        p->bad = true;
}

static void on_gathering(tern_pc_t *pc, void *user, tern_ice_gathering_state_t s)
{
    peer_t *p = user;
    (void)pc;
    if (s == TERN_ICE_GATHERING_COMPLETE)
        p->gathered = true;
}

static void on_data_channel(tern_pc_t *pc, void *user, tern_dc_t *dc)
{
    peer_t *p = user;
    (void)pc;
    p->dc = dc;
}

static void on_open(tern_dc_t *dc, void *user)
{
    peer_t *p = user;
    p->dc = dc;
    p->open = true;
}

static void on_close(tern_dc_t *dc, void *user)
{
    peer_t *p = user;
    (void)dc;
    p->closed = true;
}

static void on_connection_state(tern_pc_t *pc, void *user, tern_pc_state_t s)
{
    peer_t *p = user;
    (void)pc;
    p->state = s;
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    peer_t *p = user;
    p->messages++;
    size_t n = len < sizeof p->last - 1 ? len : sizeof p->last - 1;
    memcpy(p->last, data, n);
    p->last[n] = '\0';
    if (!is_text)
        p->bad = true;
    if (p->reply && tern_dc_send_text(dc, tern_loop_now(p->loop), "world", 5) != 0)
        p->bad = true;
    if (p->remove_on_message) {
        tern_pc_t *victim = p->remove_on_message;
        peer_t *owner = tern_pc_user_data(victim);
        p->remove_on_message = NULL;
        if (tern_loop_remove_pc(p->loop, victim) != 0)
            p->bad = true;
        tern_pc_free(victim); /* allowed once removed, even from its own callback */
        owner->pc = NULL;
        p->removed_peer = owner;
    }
}

static const tern_pc_callbacks_t peer_cbs = {
    .on_ice_candidate = on_candidate,
    .on_ice_gathering_state = on_gathering,
    .on_data_channel = on_data_channel,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
    .on_connection_state = on_connection_state,
};

static bool new_peer(tern_ctx_t *ctx, tern_loop_t *loop, peer_t *p, const tern_pc_config_t *cfg)
{
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    p->loop = loop;
    if (tern_pc_new(ctx, cfg, tern_loop_now(loop), &p->pc) != 0)
        return false;
    tern_pc_set_user_data(p->pc, p);
    return true;
}

static int add_peer(peer_t *p)
{
    p->in_add_pc = true;
    int rc = tern_loop_add_pc(p->loop, p->pc, &peer_cbs, p);
    p->in_add_pc = false;
    return rc;
}

static void free_peer(peer_t *p)
{
    tern_pc_free(p->pc);
    p->pc = NULL;
}

/* Offer from a (with a channel "chat"), answer from b; candidates trickle through callbacks. */
static bool negotiate(peer_t *a, peer_t *b)
{
    tern_time_t now = tern_loop_now(a->loop);
    char *offer = NULL, *answer = NULL;
    a->other = b;
    b->other = a;
    bool good = tern_pc_create_data_channel(a->pc, now, "chat", NULL, &a->dc) == 0 &&
                tern_pc_create_offer(a->pc, now, &offer) == 0 &&
                tern_pc_set_local_description(a->pc, now, TERN_SDP_OFFER, offer) == 0 &&
                tern_pc_set_remote_description(b->pc, now, TERN_SDP_OFFER, offer) == 0 &&
                tern_pc_create_answer(b->pc, now, &answer) == 0 &&
                tern_pc_set_local_description(b->pc, now, TERN_SDP_ANSWER, answer) == 0 &&
                tern_pc_set_remote_description(a->pc, now, TERN_SDP_ANSWER, answer) == 0;
    tern_free(a->ctx, offer);
    tern_free(a->ctx, answer);
    return good && add_peer(a) == 0 && add_peer(b) == 0;
}

/* Make and apply an offer, which starts gathering. */
static bool start_gathering(peer_t *p)
{
    tern_time_t now = tern_loop_now(p->loop);
    tern_dc_t *dc;
    char *offer = NULL;
    bool good = tern_pc_create_data_channel(p->pc, now, "x", NULL, &dc) == 0 &&
                tern_pc_create_offer(p->pc, now, &offer) == 0 &&
                tern_pc_set_local_description(p->pc, now, TERN_SDP_OFFER, offer) == 0;
    tern_free(p->ctx, offer);
    return good;
}

static void test_bind_sockets(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    tern_pc_config_t with_lo = {.include_loopback = true};
    tern_pc_config_t no_lo_v4 = {.disable_ipv6 = true};
    peer_t a, b;
    ok(new_peer(ctx, loop, &a, &with_lo));
    ok(new_peer(ctx, loop, &b, &no_lo_v4));
    eq_int(add_peer(&a), TERN_OK);
    eq_int(tern_loop_add_pc(loop, a.pc, &peer_cbs, &a), TERN_ERR_INVALID_STATE);
    int rc = add_peer(&b);
    /* Candidates come once a local description is set (W3C: gathering starts there). */
    ok(start_gathering(&a));
    if (rc == TERN_OK)
        ok(start_gathering(&b));
    ok(run_until(loop, &a.gathered));
    ok(a.loopback_v4 == 1);
    if (has_ipv6_loopback())
        ok(a.loopback_v6 == 1);
    /* b: no loopback, no IPv6; a machine without another interface has nothing to bind. */
    if (rc == TERN_OK) {
        ok(run_until(loop, &b.gathered));
        eq_int(b.loopback_v4 + b.ipv6, 0);
    } else {
        eq_int(rc, TERN_ERR_IO);
    }
    ok(!a.bad && !b.bad);
    eq_int(tern_loop_remove_pc(loop, a.pc), TERN_OK);
    eq_int(tern_loop_remove_pc(loop, a.pc), TERN_ERR_NOT_FOUND);

    /* bind_addresses: exactly those (IPv6 ones unless disable_ipv6), listed twice or not. */
    static const char *const only_lo[] = {"127.0.0.1", "::1", "127.0.0.1"};
    tern_pc_config_t bound = {.bind_addresses = only_lo, .bind_address_count = 3};
    peer_t c, d;
    ok(new_peer(ctx, loop, &c, &bound));
    bound.disable_ipv6 = true;
    ok(new_peer(ctx, loop, &d, &bound));
    eq_int(add_peer(&c), TERN_OK);
    eq_int(add_peer(&d), TERN_OK);
    ok(start_gathering(&c) && start_gathering(&d));
    ok(run_until(loop, &c.gathered) && run_until(loop, &d.gathered));
    eq_int(c.loopback_v4, 1);
    eq_int(c.candidates, has_ipv6_loopback() ? 2 : 1);
    eq_int(d.loopback_v4, 1);
    eq_int(d.candidates, 1);
    ok(!c.bad && !d.bad);
    /* b, c, d stay on the loop: tern_loop_free removes them and closes their sockets. */
    tern_loop_free(loop);
    free_peer(&a);
    free_peer(&b);
    free_peer(&c);
    free_peer(&d);
    tern_ctx_free(ctx);
}

/* Two pcs on one loop connect over loopback and exchange a message each way. */
static bool connect_pair(tern_ctx_t *ctx, tern_loop_t *loop, peer_t *a, peer_t *b)
{
    tern_pc_config_t cfg = {.include_loopback = true};
    if (!new_peer(ctx, loop, a, &cfg) || !new_peer(ctx, loop, b, &cfg) || !negotiate(a, b))
        return false;
    return run_until(loop, &a->open);
}

static void test_exchange(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    peer_t a, b;
    ok(connect_pair(ctx, loop, &a, &b));
    b.reply = true;
    eq_int(tern_dc_send_text(a.dc, tern_loop_now(loop), "hello", 5), TERN_OK);
    ok(run_until_count(loop, &a.messages, 1));
    eq_str(b.last, "hello");
    eq_str(a.last, "world");
    eq_str(tern_dc_label(b.dc), "chat");
    ok(!a.bad && !b.bad);
    /* Both pcs stay on the loop: tern_loop_free removes them. */
    tern_loop_free(loop);
    free_peer(&a);
    free_peer(&b);
    tern_ctx_free(ctx);
}

/* A pc removes itself from the loop and frees itself in its own callback, with more messages
 * for it on the way; then a pc removes and frees another one. */
static void test_remove_in_callback(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    peer_t a, b;
    ok(connect_pair(ctx, loop, &a, &b));
    b.remove_on_message = b.pc;
    for (int i = 0; i < 5; i++)
        tern_dc_send_text(a.dc, tern_loop_now(loop), "hello", 5);
    ok(run_until_count(loop, &b.messages, 1));
    for (int i = 0; i < 10; i++)
        tern_loop_run_once(loop, 5);
    eq_int(b.messages, 1);
    ok(b.removed_peer == &b && b.pc == NULL);

    peer_t c, d;
    ok(connect_pair(ctx, loop, &c, &d));
    c.remove_on_message = d.pc; /* c removes d when d's message arrives */
    ok(run_until(loop, &d.open));
    for (int i = 0; i < 5; i++)
        tern_dc_send_text(d.dc, tern_loop_now(loop), "hello", 5);
    ok(run_until_count(loop, &c.messages, 1));
    for (int i = 0; i < 10; i++)
        tern_loop_run_once(loop, 5);
    ok(c.removed_peer == &d && d.pc == NULL);
    ok(!a.bad && !b.bad && !c.bad && !d.bad);
    tern_loop_free(loop);
    free_peer(&a);
    free_peer(&c);
    tern_ctx_free(ctx);
}

/* tern_pc_close then tern_loop_remove_pc at once: the close still reaches the peer (long before
 * its 30 s consent timeout, which is past the give-up time here). */
static void test_close_then_remove(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    peer_t a, b;
    ok(connect_pair(ctx, loop, &a, &b));
    ok(run_until(loop, &b.open));
    eq_int(tern_pc_close(a.pc, tern_loop_now(loop)), TERN_OK);
    eq_int(tern_loop_remove_pc(loop, a.pc), TERN_OK);
    ok(run_until(loop, &b.closed));
    ok(!a.bad && !b.bad);
    tern_loop_free(loop);
    free_peer(&a);
    free_peer(&b);
    tern_ctx_free(ctx);
}

/* Garbage of every size up to the largest UDP payload, from a stranger, at a connected pc's
 * socket: dropped and counted by the pc; the connection goes on. */
static void test_hostile_input(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    peer_t a, b;
    ok(connect_pair(ctx, loop, &a, &b));
    ok(b.loopback_addr.port != 0);
    tern_addr_t any;
    tern_addr_parse("127.0.0.1", &any);
    tern_addr_t from;
    int fd = tern_io_udp_bind(&any, &from);
    ok(fd >= 0);
    struct sockaddr_storage to;
    socklen_t to_len = tern_io_addr_to_sockaddr(&b.loopback_addr, &to);
    static uint8_t junk[65507];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)lcg();
    int sent = 0;
    for (int i = 0; i < 600; i++) {
        size_t len = i == 0 ? sizeof junk : lcg() % 1500;
        junk[0] = (uint8_t)(i % 256); /* every first byte: STUN, DTLS, RTP ranges and the rest */
        if (sendto(fd, junk, len, 0, (struct sockaddr *)&to, to_len) == (ssize_t)len)
            sent++;
        if (i % 100 == 99)
            tern_loop_run_once(loop, 0);
    }
    ok(sent > 0);
    b.reply = true;
    eq_int(tern_dc_send_text(a.dc, tern_loop_now(loop), "hello", 5), TERN_OK);
    ok(run_until_count(loop, &a.messages, 1));
    eq_str(a.last, "world");
    tern_pc_stats_t stats;
    tern_pc_get_stats(b.pc, &stats);
    ok(stats.datagrams_dropped > 0);
    eq_int(loop->rx_errors, 0); /* nothing truncated */
    ok(!a.bad && !b.bad);
    close(fd);
    tern_loop_free(loop);
    free_peer(&a);
    free_peer(&b);
    tern_ctx_free(ctx);
}

static void post_send(void *arg)
{
    peer_t *p = arg;
    if (tern_dc_send_text(p->dc, tern_loop_now(p->loop), "posted", 6) != 0)
        p->bad = true;
}

static void *post_from_thread(void *arg)
{
    peer_t *p = arg;
    if (tern_loop_post(p->loop, post_send, p) != 0)
        p->bad = true;
    return NULL;
}

/* A command issued by a function posted from another thread reaches the peer. */
static void test_post_drives_pc(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    peer_t a, b;
    ok(connect_pair(ctx, loop, &a, &b));
    pthread_t th;
    pthread_create(&th, NULL, post_from_thread, &a);
    ok(run_until_count(loop, &b.messages, 1));
    pthread_join(th, NULL);
    eq_str(b.last, "posted");
    ok(!a.bad && !b.bad);
    eq_int(tern_loop_remove_pc(loop, a.pc), TERN_OK);
    eq_int(tern_loop_remove_pc(loop, b.pc), TERN_OK);
    tern_loop_free(loop);
    free_peer(&a);
    free_peer(&b);
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
        tern_loop_t *loop = NULL;
        tern_pc_t *pc = NULL;
        tern_pc_new(ctx, &pc_cfg, 1000000, &pc);
        alloc_countdown = fail_at;
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
        tern_pc_free(pc);
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
    subtest("remove in callback", test_remove_in_callback);
    subtest("close then remove", test_close_then_remove);
    subtest("hostile input", test_hostile_input);
    subtest("post drives pc", test_post_drives_pc);
    subtest("failmalloc", test_failmalloc);
    return check_done();
}
