/* SPDX-License-Identifier: MIT */
/*
 * A bounded FIFO of outgoing datagrams with pooled, headroom-reserving buffers, whose ring grows
 * on demand and which gives its memory back when idle (see txq.h).
 */
#include "util/txq.h"

#include <string.h>

#define TXQ_DEFAULT_ENTRIES 256
#define TXQ_POOL_MAX 64
/* The ring's first size, and the peak under which an emptied queue counts as quiet. */
#define TXQ_SMALL_ENTRIES 8
/* Quiet empties in a row after which the ring shrinks to TXQ_SMALL_ENTRIES and the pool goes:
 * a busy queue empties after every burst too, but with a large peak. */
#define TXQ_QUIET_TRIM 4

int tern_txq_init(tern_txq_t *q, tern_ctx_t *ctx, size_t max_entries)
{
    memset(q, 0, sizeof *q);
    q->ctx = ctx;
    q->max_entries = max_entries ? max_entries : TXQ_DEFAULT_ENTRIES;
    q->pool_max = TXQ_POOL_MAX;
    return TERN_OK;
}

static void release_buffer(tern_txq_t *q, uint8_t *buf, size_t cap)
{
    if (!buf)
        return;
    if (cap == TERN_TXQ_SLOT_PAYLOAD && !q->spare) {
        q->spare = buf;
        return;
    }
    if (cap == TERN_TXQ_SLOT_PAYLOAD && q->pool_count < q->pool_max) {
        if (!q->pool) {
            q->pool = tern_calloc(q->ctx, q->pool_max, sizeof *q->pool);
            if (!q->pool) {
                tern_free(q->ctx, buf);
                return;
            }
        }
        q->pool[q->pool_count++] = buf;
        return;
    }
    tern_free(q->ctx, buf);
}

/* Free the pooled buffers but the spare. */
static void free_pool(tern_txq_t *q)
{
    for (size_t i = 0; i < q->pool_count; i++)
        tern_free(q->ctx, q->pool[i]);
    tern_free(q->ctx, q->pool);
    q->pool = NULL;
    q->pool_count = 0;
}

static uint8_t *take_pooled(tern_txq_t *q)
{
    if (q->pool_count > 0)
        return q->pool[--q->pool_count];
    uint8_t *buf = q->spare;
    q->spare = NULL;
    return buf;
}

/* Free the ring, which holds no datagram: only a reservation left uncommitted may own a buffer. */
static void free_ring(tern_txq_t *q)
{
    for (size_t i = 0; i < q->cap; i++)
        tern_free(q->ctx, q->ring[i].buf);
    tern_free(q->ctx, q->ring);
    q->ring = NULL;
    q->cap = 0;
    q->head = 0;
}

/* The queue just became empty: after TXQ_QUIET_TRIM quiet times in a row, memory goes back at
 * the next call (the datagram just popped is still the caller's until then). */
static void note_empty(tern_txq_t *q)
{
    q->quiet = q->peak <= TXQ_SMALL_ENTRIES ? q->quiet + 1 : 0;
    q->peak = 0;
}

/*
 * Called first by every operation: the last popped datagram's buffer is no longer borrowed. After
 * quiet rounds, the big ring and the pool go, but for one spare buffer: a queue that carries one
 * datagram at a time (the pc moves them so) keeps reusing it without allocating.
 */
static void release_last_popped(tern_txq_t *q)
{
    release_buffer(q, q->last_popped.buf, q->last_popped.cap);
    q->last_popped.buf = NULL;
    if (q->quiet >= TXQ_QUIET_TRIM && q->count == 0) {
        q->quiet = 0;
        if (q->cap > TXQ_SMALL_ENTRIES)
            free_ring(q);
        free_pool(q);
    }
}

void tern_txq_clear(tern_txq_t *q)
{
    release_last_popped(q);
    while (q->count > 0) {
        tern_txq_entry_t *e = &q->ring[q->head];
        release_buffer(q, e->buf, e->cap);
        e->buf = NULL;
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
}

void tern_txq_dispose(tern_txq_t *q)
{
    if (!q->ctx)
        return;
    tern_txq_clear(q);
    free_pool(q);
    tern_free(q->ctx, q->spare);
    free_ring(q);
    memset(q, 0, sizeof *q);
}

/* Room for one more entry: the first ring, or one twice as large (up to max_entries) with the
 * queued entries moved to its start. Only called with count < max_entries. */
static bool make_room(tern_txq_t *q)
{
    if (q->ring && q->count < q->cap)
        return true;
    size_t cap = q->cap ? q->cap * 2 : TXQ_SMALL_ENTRIES;
    if (cap > q->max_entries)
        cap = q->max_entries;
    tern_txq_entry_t *ring = tern_calloc(q->ctx, cap, sizeof *ring);
    if (!ring)
        return false;
    /* A full ring has no free slot, so no stray reservation buffer to carry over. */
    for (size_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) % q->cap];
    tern_free(q->ctx, q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
    return true;
}

uint8_t *tern_txq_reserve(tern_txq_t *q, size_t max_len)
{
    release_last_popped(q);
    if (q->count >= q->max_entries) {
        q->dropped++;
        return NULL;
    }
    if (!make_room(q))
        return NULL;
    tern_txq_entry_t *e = &q->ring[(q->head + q->count) % q->cap];
    if (e->buf && e->cap < max_len) {
        release_buffer(q, e->buf, e->cap);
        e->buf = NULL;
    }
    if (!e->buf) {
        size_t cap = max_len <= TERN_TXQ_SLOT_PAYLOAD ? TERN_TXQ_SLOT_PAYLOAD : max_len;
        if (cap == TERN_TXQ_SLOT_PAYLOAD && (q->pool_count > 0 || q->spare))
            e->buf = take_pooled(q);
        else
            e->buf = tern_malloc(q->ctx, TERN_TX_HEADROOM + cap);
        if (!e->buf)
            return NULL;
        e->cap = cap;
    }
    return e->buf + TERN_TX_HEADROOM;
}

void tern_txq_commit(tern_txq_t *q, size_t len, const tern_addr_t *local, const tern_addr_t *remote)
{
    tern_txq_entry_t *e = &q->ring[(q->head + q->count) % q->cap];
    e->len = len;
    e->local = *local;
    e->remote = *remote;
    q->count++;
    if (q->count > q->peak)
        q->peak = q->count;
}

int tern_txq_push(tern_txq_t *q, const tern_addr_t *local, const tern_addr_t *remote,
                  const uint8_t *data, size_t len)
{
    bool full = q->count >= q->max_entries;
    uint8_t *dst = tern_txq_reserve(q, len);
    if (!dst)
        return full ? TERN_ERR_AGAIN : TERN_ERR_NOMEM;
    if (len)
        memcpy(dst, data, len);
    tern_txq_commit(q, len, local, remote);
    return TERN_OK;
}

bool tern_txq_pop(tern_txq_t *q, tern_transmit_t *out)
{
    release_last_popped(q);
    if (q->count == 0)
        return false;
    tern_txq_entry_t *e = &q->ring[q->head];
    q->last_popped = *e;
    e->buf = NULL;
    q->head = (q->head + 1) % q->cap;
    if (--q->count == 0)
        note_empty(q);
    out->local = q->last_popped.local;
    out->remote = q->last_popped.remote;
    out->data = q->last_popped.buf + TERN_TX_HEADROOM;
    out->len = q->last_popped.len;
    return true;
}
