/* SPDX-License-Identifier: MIT */
/*
 * The event loop core: epoll, an eventfd that wakes the loop for functions posted from other
 * threads (tern_loop_post, behind a mutex: the only thread-safe entry point), one min-heap of
 * deadlines (the loop's one-shot timers, every driven pc's next deadline and the context's), and
 * the iteration itself (tern_loop_run_once): wait until the earliest deadline or a socket, then
 * handle sockets and watched fds, posts, due timers, the context's timers, and drain the pcs
 * that wait.
 * The wait uses epoll_pwait2's nanosecond timeout, so a deadline is neither handled early nor
 * rounded a millisecond late; without it (kernels before 5.11) it rounds up to milliseconds.
 */
#include "io/io_loop.h"
#include "util/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* epoll events taken per wait. */
#define MAX_EVENTS 64

/* Set once epoll_pwait2 said ENOSYS (kernels before 5.11, valgrind 3.19), for every loop. */
static atomic_bool no_pwait2;

/* ---- creation ---- */

static int alloc_batch(tern_loop_t *loop, tern_io_batch_t *b)
{
    memset(b, 0, sizeof *b);
    /* Large and lazily touched: only the pages datagrams land on become resident. */
    b->buf = tern_malloc(loop->ctx, (size_t)TERN_IO_BATCH * TERN_IO_SLOT_BYTES);
    return b->buf ? TERN_OK : TERN_ERR_NOMEM;
}

static int open_fds(tern_loop_t *loop)
{
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        return TERN_ERR_IO;
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakefd < 0)
        return TERN_ERR_IO;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &loop->wake_kind};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) != 0)
        return TERN_ERR_IO;
    return TERN_OK;
}

static void release(tern_loop_t *loop)
{
    if (loop->wakefd >= 0)
        close(loop->wakefd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    tern_free(loop->ctx, loop->rx.buf);
    tern_free(loop->ctx, loop->tx.buf);
    tern_free(loop->ctx, loop->posts);
    tern_free(loop->ctx, loop->posts_running);
    tern_io_map_dispose(&loop->pcs);
    tern_io_heap_dispose(&loop->heap);
    pthread_mutex_destroy(&loop->post_lock);
    tern_free(loop->ctx, loop);
}

int tern_loop_new(tern_ctx_t *ctx, tern_loop_t **out)
{
    if (!ctx || !out)
        return TERN_ERR_INVALID_ARG;
    tern_loop_t *loop = tern_calloc(ctx, 1, sizeof *loop);
    if (!loop)
        return TERN_ERR_NOMEM;
    loop->ctx = ctx;
    loop->epfd = loop->wakefd = -1;
    loop->wake_kind = TERN_IO_HANDLE_WAKE;
    pthread_mutex_init(&loop->post_lock, NULL);
    tern_io_heap_init(&loop->heap, ctx);
    tern_io_map_init(&loop->pcs, ctx);
    tern_io_node_init(&loop->ctx_timer, TERN_IO_NODE_CTX);
    int rc = open_fds(loop);
    if (rc == TERN_OK)
        rc = alloc_batch(loop, &loop->rx);
    if (rc == TERN_OK)
        rc = alloc_batch(loop, &loop->tx);
    if (rc == TERN_OK)
        rc = tern_io_heap_reserve(&loop->heap); /* the context's node */
    if (rc != TERN_OK) {
        release(loop);
        return rc;
    }
    if (!ctx->log) {
        ctx->log = tern_log_stderr;
        ctx->log_user = NULL;
        /* Lines the filter drops are then never formatted: the macros test ctx->log_level. */
        tern_log_level_t filter_max = tern_log_stderr_max_level();
        if (filter_max < ctx->log_level)
            ctx->log_level = filter_max;
    }
    loop->id = tern_ctx_new_object_id(ctx);
    TERN_LOG_DEBUG(ctx, "io", "loop %u created", loop->id);
    *out = loop;
    return TERN_OK;
}

/* ---- posts (any thread) ---- */

int tern_loop_post(tern_loop_t *loop, void (*fn)(void *arg), void *arg)
{
    if (!loop || !fn)
        return TERN_ERR_INVALID_ARG;
    int rc = TERN_OK;
    bool wake = false;
    pthread_mutex_lock(&loop->post_lock);
    if (loop->closing) {
        rc = TERN_ERR_CLOSED;
    } else if (loop->post_count == loop->post_cap) {
        /* The allocator is called from the posting thread here: a context whose loop takes
         * posts from other threads needs a thread-safe allocator (the default one is). */
        size_t cap = loop->post_cap ? loop->post_cap * 2 : 16;
        tern_io_post_t *posts = tern_realloc(loop->ctx, loop->posts, cap * sizeof *posts);
        if (!posts) {
            rc = TERN_ERR_NOMEM;
        } else {
            loop->posts = posts;
            loop->post_cap = cap;
        }
    }
    if (rc == TERN_OK) {
        loop->posts[loop->post_count++] = (tern_io_post_t){fn, arg};
        /* One eventfd write per batch of posts: the loop clears the flag when it takes them. */
        wake = !loop->post_signaled;
        loop->post_signaled = true;
    }
    pthread_mutex_unlock(&loop->post_lock);
    if (wake) {
        uint64_t one = 1;
        /* Only fails with EAGAIN when the counter is saturated, and then the loop wakes anyway. */
        ssize_t n = write(loop->wakefd, &one, sizeof one);
        (void)n;
    }
    return rc;
}

/* Take the posted functions and run them; posts made meanwhile wait for the next round. */
static void run_posts(tern_loop_t *loop)
{
    uint64_t count;
    ssize_t n = read(loop->wakefd, &count, sizeof count);
    (void)n;
    pthread_mutex_lock(&loop->post_lock);
    tern_io_post_t *posts = loop->posts;
    size_t post_count = loop->post_count;
    size_t cap = loop->post_cap;
    loop->posts = loop->posts_running;
    loop->post_cap = loop->running_cap;
    loop->post_count = 0;
    loop->post_signaled = false;
    loop->posts_running = posts;
    loop->running_cap = cap;
    pthread_mutex_unlock(&loop->post_lock);
    for (size_t i = 0; i < post_count; i++)
        posts[i].fn(posts[i].arg);
}

/* ---- timers ---- */

int tern_loop_add_timer(tern_loop_t *loop, uint32_t delay_ms, void (*fn)(void *arg), void *arg,
                        tern_timer_t **out)
{
    if (out)
        *out = NULL;
    if (!loop || !fn)
        return TERN_ERR_INVALID_ARG;
    tern_timer_t *t = tern_calloc(loop->ctx, 1, sizeof *t);
    if (!t)
        return TERN_ERR_NOMEM;
    if (tern_io_heap_reserve(&loop->heap) != TERN_OK) {
        tern_free(loop->ctx, t);
        return TERN_ERR_NOMEM;
    }
    tern_io_node_init(&t->node, TERN_IO_NODE_TIMER);
    t->fn = fn;
    t->arg = arg;
    tern_io_heap_set(&loop->heap, &t->node, tern_io_clock_now() + TERN_MS(delay_ms));
    if (out)
        *out = t;
    return TERN_OK;
}

static void free_timer(tern_loop_t *loop, tern_timer_t *t)
{
    tern_io_heap_remove(&loop->heap, &t->node);
    tern_io_heap_unreserve(&loop->heap);
    tern_free(loop->ctx, t);
}

void tern_loop_cancel_timer(tern_loop_t *loop, tern_timer_t *timer)
{
    if (!loop || !timer)
        return;
    /* Cancelled from its own callback: it is already out of the heap and is freed on return. */
    if (timer->firing)
        return;
    free_timer(loop, timer);
}

static void fire_timer(tern_loop_t *loop, tern_timer_t *t)
{
    t->firing = true;
    t->fn(t->arg);
    free_timer(loop, t);
}

static void ctx_on_timeout(tern_loop_t *loop, tern_time_t now)
{
    tern_ctx_handle_timeout(loop->ctx, now);
    tern_io_heap_set(&loop->heap, &loop->ctx_timer, tern_ctx_next_deadline(loop->ctx));
}

/*
 * Run what is due. A node that is set again while running (a timer added with no delay, a pc
 * whose deadline stays in the past) gets a newer seq and waits for the next iteration, so a
 * callback can never keep this loop spinning.
 */
static void run_due(tern_loop_t *loop)
{
    tern_time_t now = tern_io_clock_now();
    uint64_t first_new_seq = loop->heap.next_seq;
    tern_io_heap_node_t *n;
    while ((n = tern_io_heap_peek(&loop->heap)) && n->deadline <= now && n->seq < first_new_seq) {
        tern_io_heap_remove(&loop->heap, n);
        switch (n->kind) {
        case TERN_IO_NODE_TIMER:
            fire_timer(loop, (tern_timer_t *)n);
            break;
        case TERN_IO_NODE_PC:
            tern_io_pc_on_timeout(loop, (tern_io_pc_t *)((char *)n - offsetof(tern_io_pc_t, timer)),
                                  now);
            break;
        case TERN_IO_NODE_CTX:
            ctx_on_timeout(loop, now);
            break;
        default:
            break;
        }
    }
}

/* ---- the iteration ---- */

tern_time_t tern_loop_now(const tern_loop_t *loop)
{
    (void)loop;
    return tern_io_clock_now();
}

/* Whether the loop has work that must not wait: pcs to drain, or a node already due. */
static bool has_work_now(const tern_loop_t *loop, tern_time_t now)
{
    const tern_io_heap_node_t *n = tern_io_heap_peek(&loop->heap);
    return loop->dirty_head || (n && n->deadline <= now);
}

static int wait_events(tern_loop_t *loop, struct epoll_event *events, int timeout_ms)
{
    tern_time_t now = tern_io_clock_now();
    tern_time_t until = timeout_ms >= 0 ? now + TERN_MS(timeout_ms) : TERN_TIME_NEVER;
    const tern_io_heap_node_t *first = tern_io_heap_peek(&loop->heap);
    if (first && first->deadline < until)
        until = first->deadline;
    if (has_work_now(loop, now))
        until = now;
    for (;;) {
        int n;
        tern_time_t wait_us = until == TERN_TIME_NEVER ? -1 : TERN_MAX(until - now, 0);
        if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
            struct timespec ts = {.tv_sec = wait_us / 1000000, .tv_nsec = wait_us % 1000000 * 1000};
            n = epoll_pwait2(loop->epfd, events, MAX_EVENTS, wait_us < 0 ? NULL : &ts, NULL);
            if (n < 0 && errno == ENOSYS) {
                atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
                continue;
            }
        } else {
            /* Round up, so a deadline is never met early and then waited for again in a spin. */
            int ms =
                wait_us < 0 ? -1 : (int)TERN_MIN((wait_us + 999) / 1000, (tern_time_t)INT32_MAX);
            n = epoll_wait(loop->epfd, events, MAX_EVENTS, ms);
        }
        if (n >= 0 || errno != EINTR)
            return n;
        now = tern_io_clock_now();
    }
}

static void handle_events(tern_loop_t *loop, const struct epoll_event *events, int n)
{
    bool posted = false;
    for (int i = 0; i < n; i++) {
        int kind = *(const int *)events[i].data.ptr;
        if (kind == TERN_IO_HANDLE_WAKE)
            posted = true;
        else if (kind == TERN_IO_HANDLE_SOCKET)
            tern_io_pc_on_readable(loop, events[i].data.ptr);
        else if (kind == TERN_IO_HANDLE_FD)
            tern_io_fd_dispatch(loop, events[i].data.ptr, events[i].events);
    }
    tern_io_pc_flush(loop);
    if (posted)
        run_posts(loop);
}

int tern_loop_run_once(tern_loop_t *loop, int timeout_ms)
{
    if (!loop)
        return TERN_ERR_INVALID_ARG;
    /* Not from a callback: the iteration's buffers and event list are in use. */
    if (loop->in_iteration)
        return TERN_ERR_INVALID_STATE;
    loop->in_iteration = true;
    /* Commands issued since the last iteration (outside callbacks) left pcs to drain, and the
     * context's deadline may have moved. */
    tern_io_pc_drain_pending(loop);
    tern_io_heap_set(&loop->heap, &loop->ctx_timer, tern_ctx_next_deadline(loop->ctx));

    struct epoll_event events[MAX_EVENTS];
    int n = wait_events(loop, events, timeout_ms);
    int rc = TERN_OK;
    if (n < 0) {
        TERN_LOG_WARN(loop->ctx, "io", "loop %u epoll wait failed: %s", loop->id, strerror(errno));
        rc = TERN_ERR_IO;
    } else {
        handle_events(loop, events, n);
        run_due(loop);
        tern_io_pc_drain_pending(loop);
    }
    tern_io_heap_set(&loop->heap, &loop->ctx_timer, tern_ctx_next_deadline(loop->ctx));
    tern_io_pc_flush(loop);
    tern_io_pc_free_dead(loop);
    tern_io_fd_free_dead(loop);
    loop->in_iteration = false;
    return rc;
}

int tern_loop_run(tern_loop_t *loop)
{
    if (!loop)
        return TERN_ERR_INVALID_ARG;
    int rc = TERN_OK;
    while (!loop->stop && rc == TERN_OK)
        rc = tern_loop_run_once(loop, -1);
    loop->stop = false;
    return rc;
}

void tern_loop_stop(tern_loop_t *loop)
{
    if (loop)
        loop->stop = true;
}

/* ---- teardown ---- */

static void free_timers(tern_loop_t *loop)
{
    while (loop->heap.count > 0) {
        tern_io_heap_node_t *n = loop->heap.items[loop->heap.count - 1];
        tern_io_heap_remove(&loop->heap, n);
        if (n->kind == TERN_IO_NODE_TIMER)
            free_timer(loop, (tern_timer_t *)n);
    }
}

void tern_loop_free(tern_loop_t *loop)
{
    if (!loop)
        return;
    pthread_mutex_lock(&loop->post_lock);
    loop->closing = true;
    bool pending_posts = loop->post_count > 0;
    pthread_mutex_unlock(&loop->post_lock);
    /* A post that was accepted runs exactly once, even if the loop never iterates again; it
     * may own its argument. Run them while the loop still works. */
    if (pending_posts) {
        loop->in_iteration = true;
        run_posts(loop);
        tern_io_pc_flush(loop);
        tern_io_pc_free_dead(loop);
        tern_io_fd_free_dead(loop);
        loop->in_iteration = false;
    }
    tern_io_pc_remove_all(loop);
    tern_io_fd_remove_all(loop);
    free_timers(loop);
    TERN_LOG_DEBUG(
        loop->ctx, "io",
        "loop %u freed: rx %llu datagrams (%llu errors), tx %llu (%llu dropped full, "
        "%llu without socket, %llu errors)",
        loop->id, (unsigned long long)loop->rx_datagrams, (unsigned long long)loop->rx_errors,
        (unsigned long long)loop->tx_datagrams, (unsigned long long)loop->tx_dropped_full,
        (unsigned long long)loop->tx_dropped_no_socket, (unsigned long long)loop->tx_errors);
    release(loop);
}
