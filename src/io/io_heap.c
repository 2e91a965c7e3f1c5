/* SPDX-License-Identifier: MIT */
/*
 * A binary min-heap of deadlines for the loop: its own timers, every pc's next deadline and the
 * context's. Nodes live in their owners and remember their index, so set (insert, move) and
 * remove are O(log n) and the earliest deadline is O(1): the loop's idle cost depends on the
 * timers that are due, never on how many pcs it drives. Equal deadlines are ordered by seq.
 */
#include "io/io.h"

#include <string.h>

void tern_io_heap_init(tern_io_heap_t *h, tern_ctx_t *ctx)
{
    memset(h, 0, sizeof *h);
    h->ctx = ctx;
}

void tern_io_heap_dispose(tern_io_heap_t *h)
{
    if (!h->ctx)
        return;
    for (size_t i = 0; i < h->count; i++)
        h->items[i]->index = TERN_IO_HEAP_NONE;
    tern_free(h->ctx, h->items);
    memset(h, 0, sizeof *h);
}

void tern_io_node_init(tern_io_heap_node_t *n, int kind)
{
    n->deadline = TERN_TIME_NEVER;
    n->seq = 0;
    n->index = TERN_IO_HEAP_NONE;
    n->kind = kind;
}

int tern_io_heap_reserve(tern_io_heap_t *h)
{
    if (h->reserved < h->cap) {
        h->reserved++;
        return TERN_OK;
    }
    size_t cap = h->cap ? h->cap * 2 : 16;
    tern_io_heap_node_t **items = tern_realloc(h->ctx, h->items, cap * sizeof *items);
    if (!items)
        return TERN_ERR_NOMEM;
    h->items = items;
    h->cap = cap;
    h->reserved++;
    return TERN_OK;
}

void tern_io_heap_unreserve(tern_io_heap_t *h)
{
    if (h->reserved > 0)
        h->reserved--;
}

static bool node_before(const tern_io_heap_node_t *a, const tern_io_heap_node_t *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void place(tern_io_heap_t *h, size_t i, tern_io_heap_node_t *n)
{
    h->items[i] = n;
    n->index = i;
}

static void sift_up(tern_io_heap_t *h, size_t i)
{
    tern_io_heap_node_t *n = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!node_before(n, h->items[parent]))
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, n);
}

static void sift_down(tern_io_heap_t *h, size_t i)
{
    tern_io_heap_node_t *n = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count)
            break;
        if (child + 1 < h->count && node_before(h->items[child + 1], h->items[child]))
            child++;
        if (!node_before(h->items[child], n))
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, n);
}

void tern_io_heap_remove(tern_io_heap_t *h, tern_io_heap_node_t *n)
{
    size_t i = n->index;
    if (i == TERN_IO_HEAP_NONE || i >= h->count || h->items[i] != n)
        return;
    n->index = TERN_IO_HEAP_NONE;
    n->deadline = TERN_TIME_NEVER;
    h->count--;
    if (i == h->count)
        return;
    place(h, i, h->items[h->count]);
    sift_down(h, i);
    sift_up(h, h->items[i]->index);
}

void tern_io_heap_set(tern_io_heap_t *h, tern_io_heap_node_t *n, tern_time_t deadline)
{
    if (deadline == TERN_TIME_NEVER) {
        tern_io_heap_remove(h, n);
        return;
    }
    if (n->index != TERN_IO_HEAP_NONE) {
        if (n->deadline == deadline)
            return;
        tern_time_t old = n->deadline;
        n->deadline = deadline;
        n->seq = h->next_seq++;
        if (deadline < old)
            sift_up(h, n->index);
        else
            sift_down(h, n->index);
        return;
    }
    /* Callers reserve a slot per node, so the array is large enough; refuse rather than
     * overflow if one did not. */
    if (h->count >= h->cap)
        return;
    n->deadline = deadline;
    n->seq = h->next_seq++;
    place(h, h->count, n);
    h->count++;
    sift_up(h, n->index);
}
