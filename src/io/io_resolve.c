/* SPDX-License-Identifier: MIT */
/*
 * Host name resolution off the loop thread: tern_io_resolve_start runs getaddrinfo on a
 * detached helper thread, which hands the result to the loop with tern_loop_post; the loop then
 * calls the owner back. Cancelling only marks the request: whichever side last holds it frees
 * it (the thread, if it has not posted yet; the posted function otherwise). Also the loop's
 * context for code outside io/ (tern_io_loop_ctx).
 */
#include "io/io_resolve.h"
#include "io/io_loop.h"
#include "util/log.h"

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct tern_io_resolve {
    /* configuration */
    tern_loop_t *loop;
    tern_io_resolve_fn fn;
    void *arg;
    char host[TERN_IO_RESOLVE_MAX_HOST + 1];
    uint16_t port;

    /* result, written by the thread before it posts */
    int err;
    char reason[96];
    tern_addr_t addrs[TERN_IO_RESOLVE_MAX];
    size_t count;

    /* shared between the thread and the loop thread, under lock */
    pthread_mutex_t lock;
    bool cancelled; /* the owner no longer wants the result */
    bool posted;    /* the result is queued on the loop: the posted function frees */
    bool orphaned;  /* the post failed: the owner's cancel frees */
};

tern_ctx_t *tern_io_loop_ctx(const tern_loop_t *loop)
{
    return loop ? loop->ctx : NULL;
}

/* The request outlives its owner, and possibly the context, while getaddrinfo runs: it is
 * allocated with the C library, not the context's allocator, so the helper thread can free it
 * whenever it finishes. */
static void request_free(tern_io_resolve_t *r)
{
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void fill_result(tern_io_resolve_t *r)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    /* No AI_ADDRCONFIG: with only loopback up (test namespaces) glibc would then refuse
     * "localhost" itself. */
    int rc = getaddrinfo(r->host, NULL, &hints, &res);
    if (rc != 0) {
        r->err = (rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_FAIL) ? TERN_ERR_NOT_FOUND
                                                                          : TERN_ERR_IO;
        snprintf(r->reason, sizeof r->reason, "%s", gai_strerror(rc));
        return;
    }
    for (struct addrinfo *ai = res; ai && r->count < TERN_IO_RESOLVE_MAX; ai = ai->ai_next) {
        tern_addr_t a;
        if (!tern_io_addr_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &a))
            continue;
        bool seen = false;
        for (size_t i = 0; i < r->count && !seen; i++)
            seen = tern_addr_equal(&r->addrs[i], &a);
        if (seen)
            continue;
        a.port = r->port;
        r->addrs[r->count++] = a;
    }
    freeaddrinfo(res);
    if (r->count == 0) {
        r->err = TERN_ERR_NOT_FOUND;
        snprintf(r->reason, sizeof r->reason, "no address");
    }
}

/* On the loop thread: hand the result over unless cancelled meanwhile, then free. */
static void deliver(void *arg)
{
    tern_io_resolve_t *r = arg;
    pthread_mutex_lock(&r->lock);
    bool cancelled = r->cancelled;
    pthread_mutex_unlock(&r->lock);
    if (!cancelled)
        r->fn(r->arg, r->err, r->addrs, r->count, r->reason);
    request_free(r);
}

static void *run(void *arg)
{
    tern_io_resolve_t *r = arg;
    fill_result(r);
    pthread_mutex_lock(&r->lock);
    if (r->cancelled) {
        pthread_mutex_unlock(&r->lock);
        request_free(r);
        return NULL;
    }
    /* Posted under the lock: the owner cannot cancel (and then free the loop) in between. */
    if (tern_loop_post(r->loop, deliver, r) == TERN_OK)
        r->posted = true;
    else
        r->orphaned = true;
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int tern_io_resolve_start(tern_loop_t *loop, const char *host, uint16_t port, tern_io_resolve_fn fn,
                          void *arg, tern_io_resolve_t **out)
{
    if (!loop || !host || !fn || !out)
        return TERN_ERR_INVALID_ARG;
    size_t len = strlen(host);
    if (len == 0 || len > TERN_IO_RESOLVE_MAX_HOST)
        return TERN_ERR_INVALID_ARG;
    tern_io_resolve_t *r = calloc(1, sizeof *r);
    if (!r)
        return TERN_ERR_NOMEM;
    r->loop = loop;
    r->fn = fn;
    r->arg = arg;
    memcpy(r->host, host, len + 1);
    r->port = port;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return TERN_ERR_NOMEM;
    }
    pthread_attr_t attr;
    pthread_t thread;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&thread, &attr, run, r);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        TERN_LOG_WARN(loop->ctx, "io", "no resolver thread for %s: %s", host, strerror(rc));
        request_free(r);
        return TERN_ERR_IO;
    }
    *out = r;
    return TERN_OK;
}

void tern_io_resolve_cancel(tern_io_resolve_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->cancelled = true;
    bool orphaned = r->orphaned;
    pthread_mutex_unlock(&r->lock);
    /* Otherwise the thread (not posted yet) or the posted function frees it. */
    if (orphaned)
        request_free(r);
}
