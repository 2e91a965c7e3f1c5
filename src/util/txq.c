/* SPDX-License-Identifier: MIT */
/* A bounded FIFO of outgoing datagrams with pooled, headroom-reserving buffers. */
#include "util/txq.h"

#include <string.h>

#define TXQ_DEFAULT_ENTRIES 256
#define TXQ_POOL_MAX 64

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

static void release_last_popped(tern_txq_t *q)
{
    release_buffer(q, q->last_popped.buf, q->last_popped.cap);
    q->last_popped.buf = NULL;
}

void tern_txq_clear(tern_txq_t *q)
{
    release_last_popped(q);
    while (q->count > 0) {
        tern_txq_entry_t *e = &q->ring[q->head];
        release_buffer(q, e->buf, e->cap);
        e->buf = NULL;
        q->head = (q->head + 1) % q->max_entries;
        q->count--;
    }
}

void tern_txq_dispose(tern_txq_t *q)
{
    if (!q->ctx)
        return;
    tern_txq_clear(q);
    for (size_t i = 0; i < q->pool_count; i++)
        tern_free(q->ctx, q->pool[i]);
    tern_free(q->ctx, q->pool);
    tern_free(q->ctx, q->ring);
    memset(q, 0, sizeof *q);
}

uint8_t *tern_txq_reserve(tern_txq_t *q, size_t max_len)
{
    release_last_popped(q);
    if (q->count >= q->max_entries) {
        q->dropped++;
        return NULL;
    }
    if (!q->ring) {
        q->ring = tern_calloc(q->ctx, q->max_entries, sizeof *q->ring);
        if (!q->ring)
            return NULL;
    }
    tern_txq_entry_t *e = &q->ring[(q->head + q->count) % q->max_entries];
    if (e->buf && e->cap < max_len) {
        release_buffer(q, e->buf, e->cap);
        e->buf = NULL;
    }
    if (!e->buf) {
        size_t cap = max_len <= TERN_TXQ_SLOT_PAYLOAD ? TERN_TXQ_SLOT_PAYLOAD : max_len;
        if (cap == TERN_TXQ_SLOT_PAYLOAD && q->pool_count > 0)
            e->buf = q->pool[--q->pool_count];
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
    tern_txq_entry_t *e = &q->ring[(q->head + q->count) % q->max_entries];
    e->len = len;
    e->local = *local;
    e->remote = *remote;
    q->count++;
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
    q->head = (q->head + 1) % q->max_entries;
    q->count--;
    out->local = q->last_popped.local;
    out->remote = q->last_popped.remote;
    out->data = q->last_popped.buf + TERN_TX_HEADROOM;
    out->len = q->last_popped.len;
    return true;
}
