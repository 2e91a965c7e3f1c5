/* SPDX-License-Identifier: MIT */
/*
 * A bounded FIFO of datagrams to send, shared by every sans-IO module. Buffers are pooled so the
 * steady-state data path allocates nothing, and each keeps TERN_TX_HEADROOM bytes in front of its
 * data so a TURN header can be prepended in place. An idle connection keeps several queues, so
 * they cost little until used: the ring starts at a few entries and doubles up to max_entries as
 * bursts need it, and once the queue has emptied a few times in a row without holding more than
 * those few, the big ring and the pooled buffers but one are given back.
 */
#ifndef TERN_UTIL_TXQ_H
#define TERN_UTIL_TXQ_H

#include "util/ctx.h"

/* Payload that fits a pooled buffer; larger datagrams get a buffer of their own. */
#define TERN_TXQ_SLOT_PAYLOAD (2048 - TERN_TX_HEADROOM)

typedef struct tern_txq_entry {
    tern_addr_t local;
    tern_addr_t remote;
    uint8_t *buf; /* TERN_TX_HEADROOM bytes, then the data */
    size_t len;
    size_t cap; /* payload capacity of buf */
} tern_txq_entry_t;

typedef struct tern_txq {
    tern_ctx_t *ctx;
    tern_txq_entry_t *ring; /* cap entries, allocated on first use */
    size_t cap;
    size_t max_entries;
    size_t head;
    size_t count;
    size_t peak;                  /* most entries held since the queue was last empty */
    unsigned quiet;               /* times in a row it emptied with a small peak */
    tern_txq_entry_t last_popped; /* kept alive until the next pop, push or dispose */
    uint8_t *spare;               /* a free pooled buffer, kept when the pool is trimmed */
    uint8_t **pool;               /* more free pooled buffers */
    size_t pool_count;
    size_t pool_max;
    uint64_t dropped; /* pushes refused because the queue was full */
} tern_txq_t;

/* max_entries: how many datagrams may wait (0: 256). */
int tern_txq_init(tern_txq_t *q, tern_ctx_t *ctx, size_t max_entries);
void tern_txq_dispose(tern_txq_t *q);

/*
 * Reserve room for a datagram of at most max_len bytes and return where to write it; finish with
 * tern_txq_commit (or drop the reservation by not committing). NULL: TERN_ERR_NOMEM or full.
 */
uint8_t *tern_txq_reserve(tern_txq_t *q, size_t max_len);
void tern_txq_commit(tern_txq_t *q, size_t len, const tern_addr_t *local,
                     const tern_addr_t *remote);

/* Copy a datagram in. Returns 0, TERN_ERR_AGAIN if the queue is full, or TERN_ERR_NOMEM. */
int tern_txq_push(tern_txq_t *q, const tern_addr_t *local, const tern_addr_t *remote,
                  const uint8_t *data, size_t len);

/* Take the oldest datagram; its data stays valid until the next call on the queue. */
bool tern_txq_pop(tern_txq_t *q, tern_transmit_t *out);

static inline size_t tern_txq_count(const tern_txq_t *q)
{
    return q->count;
}

/* Drop every queued datagram. */
void tern_txq_clear(tern_txq_t *q);

#endif
