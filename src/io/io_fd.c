/* SPDX-License-Identifier: MIT */
/*
 * File descriptors watched for the application (tern_loop_watch_fd, _update_fd, _unwatch_fd):
 * TCP and TLS streams, a signalfd, pipes. Each watch is one level-triggered epoll registration
 * whose tag is the watch itself. A watch removed while the loop iterates stays allocated (and is
 * skipped) until the iteration ends, because the epoll event list of that iteration may still
 * point at it: so a callback may unwatch any watch, its own included.
 */
#include "io/io_loop.h"
#include "util/util.h"

#include <sys/epoll.h>

#define KNOWN_EVENTS (TERN_FD_READABLE | TERN_FD_WRITABLE)

static uint32_t to_epoll(unsigned events)
{
    uint32_t ev = 0;
    if (events & TERN_FD_READABLE)
        ev |= EPOLLIN;
    if (events & TERN_FD_WRITABLE)
        ev |= EPOLLOUT;
    return ev;
}

static void link_watch(tern_loop_t *loop, tern_fd_watch_t *w)
{
    w->prev = NULL;
    w->next = loop->watches;
    if (loop->watches)
        loop->watches->prev = w;
    loop->watches = w;
}

static void unlink_watch(tern_loop_t *loop, tern_fd_watch_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        loop->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

int tern_loop_watch_fd(tern_loop_t *loop, int fd, unsigned events, tern_fd_fn fn, void *arg,
                       tern_fd_watch_t **out)
{
    if (out)
        *out = NULL;
    if (!loop || !fn || fd < 0 || (events & ~KNOWN_EVENTS))
        return TERN_ERR_INVALID_ARG;
    tern_fd_watch_t *w = tern_calloc(loop->ctx, 1, sizeof *w);
    if (!w)
        return TERN_ERR_NOMEM;
    w->kind = TERN_IO_HANDLE_FD;
    w->fd = fd;
    w->events = events;
    w->fn = fn;
    w->arg = arg;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        tern_free(loop->ctx, w);
        return TERN_ERR_IO;
    }
    link_watch(loop, w);
    if (out)
        *out = w;
    return TERN_OK;
}

int tern_loop_update_fd(tern_loop_t *loop, tern_fd_watch_t *w, unsigned events)
{
    if (!loop || !w || (events & ~KNOWN_EVENTS))
        return TERN_ERR_INVALID_ARG;
    if (w->removed)
        return TERN_ERR_INVALID_STATE;
    if (events == w->events)
        return TERN_OK;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0)
        return TERN_ERR_IO;
    w->events = events;
    return TERN_OK;
}

void tern_loop_unwatch_fd(tern_loop_t *loop, tern_fd_watch_t *w)
{
    if (!loop || !w || w->removed)
        return;
    w->removed = true;
    /* Fails only if the fd was closed first, which already took it out of the epoll set. */
    (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    unlink_watch(loop, w);
    if (loop->in_iteration) {
        w->next_dead = loop->dead_watches;
        loop->dead_watches = w;
    } else {
        tern_free(loop->ctx, w);
    }
}

void tern_io_fd_dispatch(tern_loop_t *loop, tern_fd_watch_t *w, uint32_t epoll_events)
{
    (void)loop;
    if (w->removed)
        return;
    unsigned events = 0;
    if (epoll_events & EPOLLIN)
        events |= TERN_FD_READABLE;
    if (epoll_events & EPOLLOUT)
        events |= TERN_FD_WRITABLE;
    if (epoll_events & (EPOLLERR | EPOLLHUP)) {
        /* A read is what tells the owner why (EOF, ECONNRESET), so offer it one. */
        events |= TERN_FD_ERROR | (w->events & TERN_FD_READABLE);
    }
    events &= w->events | TERN_FD_ERROR;
    if (events)
        w->fn(w->arg, w->fd, events);
}

void tern_io_fd_free_dead(tern_loop_t *loop)
{
    while (loop->dead_watches) {
        tern_fd_watch_t *w = loop->dead_watches;
        loop->dead_watches = w->next_dead;
        tern_free(loop->ctx, w);
    }
}

void tern_io_fd_remove_all(tern_loop_t *loop)
{
    while (loop->watches)
        tern_loop_unwatch_fd(loop, loop->watches);
    tern_io_fd_free_dead(loop);
}
