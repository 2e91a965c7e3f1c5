/* SPDX-License-Identifier: MIT */
/*
 * The loop's private structures, shared by the loop core (io_loop.c: epoll, the eventfd for
 * posts, the deadline heap, timers), the pc driver (io_pc.c: sockets, datagram batches,
 * draining a pc into its sockets and callbacks) and the fd watches (io_fd.c).
 */
#ifndef TERN_IO_IO_LOOP_H
#define TERN_IO_IO_LOOP_H

#include "io/io.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* What a heap node belongs to. */
enum { TERN_IO_NODE_TIMER = 1, TERN_IO_NODE_PC, TERN_IO_NODE_CTX };

/* What an epoll registration points at (the first member of the registered object). */
enum { TERN_IO_HANDLE_WAKE = 1, TERN_IO_HANDLE_SOCKET, TERN_IO_HANDLE_FD };

/* Datagrams moved per recvmmsg / sendmmsg call. */
#define TERN_IO_BATCH 32
/* Room per datagram: the largest UDP payload, so nothing is ever truncated (loopback's MTU is
 * 64 KiB). The slots are allocated once and the kernel only touches the bytes it writes. */
#define TERN_IO_SLOT_BYTES 65536

typedef struct tern_io_pc tern_io_pc_t;

/* One UDP socket of a driven pc. */
typedef struct tern_io_sock {
    int kind; /* TERN_IO_HANDLE_SOCKET; first, it is the epoll tag */
    int fd;   /* -1 once closed */
    tern_addr_t local;
    tern_io_pc_t *owner;
} tern_io_sock_t;

/* A pc driven by the loop. */
struct tern_io_pc {
    /* configuration */
    tern_loop_t *loop;
    tern_pc_t *pc;
    tern_pc_callbacks_t cbs;
    void *user;
    uint32_t id; /* short id for log lines ("driver 7"): the pc's own id is not public */

    /* state */
    tern_io_sock_t *socks;
    size_t sock_count;
    tern_io_heap_node_t timer;
    /* ICE server names and TURN connections (io_turn.c); NULL if none */
    struct tern_io_turn *turn;
    bool removed;  /* tern_loop_remove_pc was called; never touch pc again */
    bool draining; /* inside drain_pc: a nested drain of the same pc is a no-op */
    bool dirty;    /* on the loop's dirty list */

    /* lists */
    tern_io_pc_t *prev, *next; /* every live entry */
    tern_io_pc_t *next_dirty;  /* to drain at the next iteration */
    tern_io_pc_t *next_dead;   /* removed, freed at the end of the iteration */
};

/* recvmmsg / sendmmsg vectors and their buffers. */
typedef struct tern_io_batch {
    struct mmsghdr msgs[TERN_IO_BATCH];
    struct iovec iov[TERN_IO_BATCH];
    struct sockaddr_storage addrs[TERN_IO_BATCH];
    uint8_t *buf;         /* TERN_IO_BATCH slots of TERN_IO_SLOT_BYTES */
    size_t count;         /* tx: datagrams queued */
    tern_io_sock_t *sock; /* tx: the socket they leave from */
} tern_io_batch_t;

/* A function posted from any thread. */
typedef struct tern_io_post {
    void (*fn)(void *arg);
    void *arg;
} tern_io_post_t;

/* An fd watched for the application (tern_loop_watch_fd, io_fd.c). */
struct tern_fd_watch {
    int kind; /* TERN_IO_HANDLE_FD; first, it is the epoll tag */
    int fd;
    unsigned events; /* TERN_FD_READABLE | TERN_FD_WRITABLE */
    tern_fd_fn fn;
    void *arg;
    bool removed; /* unwatched: fn is never called again; freed at the end of the iteration */
    tern_fd_watch_t *prev, *next; /* every live watch */
    tern_fd_watch_t *next_dead;
};

struct tern_timer {
    tern_io_heap_node_t node; /* TERN_IO_NODE_TIMER */
    void (*fn)(void *arg);
    void *arg;
    bool firing;
};

struct tern_loop {
    /* configuration */
    tern_ctx_t *ctx;
    uint32_t id;
    int epfd;
    int wakefd;
    int wake_kind; /* TERN_IO_HANDLE_WAKE: the eventfd's epoll tag */

    /* state */
    tern_io_heap_t heap;
    tern_io_heap_node_t ctx_timer; /* TERN_IO_NODE_CTX */
    tern_io_map_t pcs;             /* tern_pc_t * -> tern_io_pc_t * */
    tern_io_pc_t *pc_list;
    tern_io_pc_t *dirty_head, *dirty_tail;
    tern_io_pc_t *dead;
    tern_fd_watch_t *watches;      /* live fd watches */
    tern_fd_watch_t *dead_watches; /* unwatched during this iteration */
    bool stop;
    bool in_iteration;
    tern_io_batch_t rx;
    tern_io_batch_t tx;

    /* posts, the only state shared with other threads */
    pthread_mutex_t post_lock;
    tern_io_post_t *posts;
    size_t post_count, post_cap;
    bool post_signaled; /* the eventfd was written since the loop last took the posts */
    bool closing;
    tern_io_post_t *posts_running; /* swapped with posts, so the lock is held briefly */
    size_t running_cap;

    /* stats */
    uint64_t rx_datagrams, rx_errors;
    uint64_t tx_datagrams, tx_dropped_full, tx_dropped_no_socket, tx_errors;
};

/* io_pc.c: the pc driver, called by the loop core. */

/* Read the sockets that epoll reported readable, feeding each datagram to its pc. */
void tern_io_pc_on_readable(tern_loop_t *loop, tern_io_sock_t *sock);
/* Run a pc's timers and drain it (its heap node came due). */
void tern_io_pc_on_timeout(tern_loop_t *loop, tern_io_pc_t *entry, tern_time_t now);
/* Drain every pc that waits: the dirty list, then the context's pending pcs, until none. */
void tern_io_pc_drain_pending(tern_loop_t *loop);
/* Send the queued datagrams. */
void tern_io_pc_flush(tern_loop_t *loop);
/* Free the entries removed during this iteration. */
void tern_io_pc_free_dead(tern_loop_t *loop);
/* Remove and free every entry (tern_loop_free). */
void tern_io_pc_remove_all(tern_loop_t *loop);

/* io_fd.c: fd watches, called by the loop core. */

/* Call a watch's function for the epoll events it got (nothing if it was unwatched). */
void tern_io_fd_dispatch(tern_loop_t *loop, tern_fd_watch_t *w, uint32_t epoll_events);
/* Free the watches unwatched during this iteration. */
void tern_io_fd_free_dead(tern_loop_t *loop);
/* Free every watch (tern_loop_free); the fds are left open, they are the application's. */
void tern_io_fd_remove_all(tern_loop_t *loop);

#endif
