/* SPDX-License-Identifier: MIT */
/*
 * A small hash map from pointers to pointers (open addressing, linear probing, backward-shift
 * deletion, at most half full), so the loop finds a pc's driver state in O(1) when the context
 * hands it a pc to drain, however many pcs it drives.
 */
#include "io/io.h"

#include <string.h>

void tern_io_map_init(tern_io_map_t *m, tern_ctx_t *ctx)
{
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
}

void tern_io_map_dispose(tern_io_map_t *m)
{
    if (m->ctx)
        tern_free(m->ctx, m->slots);
    memset(m, 0, sizeof *m);
}

static size_t slot_of(const tern_io_map_t *m, const void *key)
{
    /* Fibonacci hashing: heap pointers share their low bits, the multiply spreads them. */
    uint64_t h = (uint64_t)(uintptr_t)key * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & (m->cap - 1);
}

static void insert_slot(tern_io_map_t *m, const void *key, void *value)
{
    size_t i = slot_of(m, key);
    while (m->slots[i].key)
        i = (i + 1) & (m->cap - 1);
    m->slots[i].key = key;
    m->slots[i].value = value;
    m->count++;
}

static int grow(tern_io_map_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct tern_io_map_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = tern_calloc(m->ctx, cap, sizeof *m->slots);
    if (!m->slots) {
        m->slots = old;
        return TERN_ERR_NOMEM;
    }
    m->cap = cap;
    m->count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            insert_slot(m, old[i].key, old[i].value);
    tern_free(m->ctx, old);
    return TERN_OK;
}

int tern_io_map_put(tern_io_map_t *m, const void *key, void *value)
{
    if (!key)
        return TERN_ERR_INVALID_ARG;
    if ((m->count + 1) * 2 > m->cap) {
        int rc = grow(m);
        if (rc != TERN_OK)
            return rc;
    }
    insert_slot(m, key, value);
    return TERN_OK;
}

static size_t find(const tern_io_map_t *m, const void *key)
{
    if (!m->cap || !key)
        return SIZE_MAX;
    for (size_t i = slot_of(m, key);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == key)
            return i;
        if (!m->slots[i].key)
            return SIZE_MAX;
    }
}

void *tern_io_map_get(const tern_io_map_t *m, const void *key)
{
    size_t i = find(m, key);
    return i == SIZE_MAX ? NULL : m->slots[i].value;
}

void tern_io_map_remove(tern_io_map_t *m, const void *key)
{
    size_t i = find(m, key);
    if (i == SIZE_MAX)
        return;
    size_t mask = m->cap - 1;
    /* Backward shift: pull later members of the probe run into the hole, so lookups never need
     * tombstones. A slot moves if its home is not cyclically within (hole, slot]. */
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(m, m->slots[j].key);
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->slots[i].value = NULL;
    m->count--;
}
