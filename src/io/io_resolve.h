/* SPDX-License-Identifier: MIT */
/*
 * What code outside io/ that runs on a tern_loop needs from it and cannot do itself (it must
 * stay free of syscalls and threads): the loop's context, and host name resolution.
 * getaddrinfo blocks, so it runs on a helper thread of its own, which reports back only through
 * tern_loop_post (CONVENTIONS.md §6).
 *
 * Scope: one thread per resolution (a client resolves once, at connect time); at most
 * TERN_IO_RESOLVE_MAX addresses; no cancellation of a getaddrinfo already running (its thread
 * finishes on its own and frees its state; nothing is called back).
 */
#ifndef TERN_IO_IO_RESOLVE_H
#define TERN_IO_IO_RESOLVE_H

#include "tern/tern.h"

/* Most addresses a resolution reports (IPv6 and IPv4 of a dual-stack name, a few of each). */
#define TERN_IO_RESOLVE_MAX 8
/* Longest host name resolved (RFC 1035 §2.3.4: 255 octets on the wire, 253 as text). */
#define TERN_IO_RESOLVE_MAX_HOST 253

/* The context a loop was made with. */
tern_ctx_t *tern_io_loop_ctx(const tern_loop_t *loop);

typedef struct tern_io_resolve tern_io_resolve_t;

/*
 * Called on the loop thread with the result: err 0 and 1..TERN_IO_RESOLVE_MAX addresses (in
 * getaddrinfo's order, each with `port`), or err TERN_ERR_NOT_FOUND (no such name, or no
 * address) / TERN_ERR_IO (the resolver failed) with count 0; reason is getaddrinfo's message
 * ("" on success). Everything is borrowed for the call. The handle is gone once this runs.
 */
typedef void (*tern_io_resolve_fn)(void *arg, int err, const tern_addr_t *addrs, size_t count,
                                   const char *reason);

/*
 * Resolve host (a name or a numeric address, without brackets) for TCP, on a helper thread.
 * fn(arg, ...) runs later on the loop thread, never inside this call, unless the resolution is
 * cancelled first. out receives the handle (valid until fn runs or tern_io_resolve_cancel).
 * Returns 0; TERN_ERR_INVALID_ARG (empty or too long host); TERN_ERR_NOMEM; TERN_ERR_IO (no
 * thread could be started).
 */
int tern_io_resolve_start(tern_loop_t *loop, const char *host, uint16_t port, tern_io_resolve_fn fn,
                          void *arg, tern_io_resolve_t **out);

/*
 * Cancel a resolution whose fn has not run: fn is never called. Loop thread only, and before
 * tern_loop_free. NULL is a no-op.
 */
void tern_io_resolve_cancel(tern_io_resolve_t *r);

#endif
