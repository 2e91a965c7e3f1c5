/* SPDX-License-Identifier: MIT */
/*
 * The io layer's internal API: the monotonic clock, the deadline heap, a pointer map, UDP sockets
 * and interface enumeration, which tern_loop (io_loop.c, io_pc.c) is built from. This is the only
 * code of the library that makes syscalls, reads the clock, starts threads or reads the
 * environment.
 *
 * Scope: UDP only (no ICE-TCP sockets yet), one loop thread per process (usrsctp is global), and
 * interfaces are enumerated once, when a pc is added (no network-change monitoring).
 */
#ifndef TERN_IO_IO_H
#define TERN_IO_IO_H

#include "tern/tern.h"
#include "util/ctx.h"

#include <sys/socket.h>

/* ---- clock (io_clock.c) ---- */

/* CLOCK_MONOTONIC in microseconds. */
tern_time_t tern_io_clock_now(void);

/* ---- deadline heap (io_heap.c) ---- */

/*
 * A node is embedded in whatever owns the deadline (a timer, a pc, the context) and holds its own
 * position, so that moving or removing it is O(log n). Ties break on insertion order (seq), so
 * timers with equal deadlines fire in the order they were set.
 */
typedef struct tern_io_heap_node {
    tern_time_t deadline;
    uint64_t seq;
    size_t index; /* position in the heap; TERN_IO_HEAP_NONE when not in it */
    int kind;     /* what owns the node; the heap does not look at it */
} tern_io_heap_node_t;

#define TERN_IO_HEAP_NONE SIZE_MAX

typedef struct tern_io_heap {
    tern_ctx_t *ctx;
    tern_io_heap_node_t **items;
    size_t count;
    size_t cap;
    size_t reserved; /* nodes that may be in the heap at once (see tern_io_heap_reserve) */
    uint64_t next_seq;
} tern_io_heap_t;

void tern_io_heap_init(tern_io_heap_t *h, tern_ctx_t *ctx);
void tern_io_heap_dispose(tern_io_heap_t *h);
void tern_io_node_init(tern_io_heap_node_t *n, int kind);

/* Make room for one more node, so that tern_io_heap_set of it never fails. 0 or NOMEM. */
int tern_io_heap_reserve(tern_io_heap_t *h);
/* Give back a reservation (the node is gone for good). */
void tern_io_heap_unreserve(tern_io_heap_t *h);

/*
 * Put a node in the heap with this deadline, or move it there; TERN_TIME_NEVER takes it out.
 * A node that is (re)inserted gets a new seq; one whose deadline is unchanged keeps its place.
 */
void tern_io_heap_set(tern_io_heap_t *h, tern_io_heap_node_t *n, tern_time_t deadline);
void tern_io_heap_remove(tern_io_heap_t *h, tern_io_heap_node_t *n);

/* The earliest node, or NULL if the heap is empty. */
static inline tern_io_heap_node_t *tern_io_heap_peek(const tern_io_heap_t *h)
{
    return h->count ? h->items[0] : NULL;
}

/* ---- pointer map (io_map.c) ---- */

/* An open-addressing hash map from a pointer to a pointer (a pc to its driver state). */
typedef struct tern_io_map {
    tern_ctx_t *ctx;
    struct tern_io_map_slot {
        const void *key;
        void *value;
    } * slots;
    size_t cap; /* a power of two, or 0 */
    size_t count;
} tern_io_map_t;

void tern_io_map_init(tern_io_map_t *m, tern_ctx_t *ctx);
void tern_io_map_dispose(tern_io_map_t *m);
/* 0; NOMEM. The key must not be present yet. */
int tern_io_map_put(tern_io_map_t *m, const void *key, void *value);
/* The value, or NULL. */
void *tern_io_map_get(const tern_io_map_t *m, const void *key);
/* Remove a key; does nothing if it is absent. */
void tern_io_map_remove(tern_io_map_t *m, const void *key);

/* ---- UDP sockets and addresses (io_udp.c) ---- */

/* Convert between tern_addr_t and the socket API. to_sockaddr returns the length, 0 if unset. */
socklen_t tern_io_addr_to_sockaddr(const tern_addr_t *addr, struct sockaddr_storage *out);
bool tern_io_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, tern_addr_t *out);

/* Socket buffer sizes asked for (the kernel may grant less). */
#define TERN_IO_SOCKET_BUFFER_BYTES (4 * 1024 * 1024)

/*
 * Open a non-blocking UDP socket bound to addr (port 0: ephemeral), with large buffers.
 * bound receives the address with its real port. Returns the fd, or a negative tern_err_t
 * (TERN_ERR_IO; errno tells why).
 */
int tern_io_udp_bind(const tern_addr_t *addr, tern_addr_t *bound);

/* ---- interfaces (io_iface.c) ---- */

/* Most local addresses one pc binds sockets on. */
#define TERN_IO_MAX_LOCAL_ADDRS 16

/*
 * List the addresses to bind a pc's sockets on: interfaces that are up; loopback only if
 * include_loopback (then only 127.0.0.1 and ::1); no IPv6 if disable_ipv6; never IPv6
 * link-local, deprecated, tentative or duplicate addresses. Returns how many were written (at
 * most cap), or TERN_ERR_IO if the interfaces cannot be read.
 */
int tern_io_iface_list(bool include_loopback, bool disable_ipv6, tern_addr_t *out, size_t cap);

#endif
