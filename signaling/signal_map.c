/* SPDX-License-Identifier: MIT */
/*
 * Hash tables of the signaling server (peer ids, room names): SipHash-2-4 (Aumasson and
 * Bernstein, 2012) under a key drawn from the context's rng at start, so that clients, who
 * choose room names, cannot aim many names at one bucket; and an intrusive table with chained
 * buckets that doubles when it holds as many entries as buckets (O(1) expected per operation).
 */
#include "signaling.h"

#include <string.h>

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

typedef struct sip {
    uint64_t v0, v1, v2, v3;
} sip_t;

static void sip_round(sip_t *s)
{
    s->v0 += s->v1;
    s->v1 = rotl(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = rotl(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = rotl(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = rotl(s->v2, 32);
}

static void sip_block(sip_t *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

uint64_t tern_signal_siphash(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    /* The initialisation constants spell "somepseudorandomlygeneratedbytes". */
    sip_t s = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
               k1 ^ 0x7465646279746573ULL};
    size_t full = len - len % 8;
    for (size_t i = 0; i < full; i += 8)
        sip_block(&s, load_le64(in + i));
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < len % 8; i++)
        last |= (uint64_t)in[full + i] << (8 * i);
    sip_block(&s, last);
    s.v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

int tern_signal_table_init(tern_signal_table_t *t, tern_ctx_t *ctx)
{
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    return tern_random_bytes(ctx, t->key, sizeof t->key) == TERN_OK ? TERN_OK : TERN_ERR_CRYPTO;
}

void tern_signal_table_dispose(tern_signal_table_t *t)
{
    tern_free(t->ctx, t->buckets);
    t->buckets = NULL;
    t->cap = t->count = 0;
}

tern_signal_entry_t *tern_signal_table_get(const tern_signal_table_t *t, const char *key,
                                           size_t key_len)
{
    if (t->count == 0)
        return NULL;
    uint64_t h = tern_signal_siphash(t->key, key, key_len);
    for (tern_signal_entry_t *e = t->buckets[h & (t->cap - 1)]; e; e = e->next)
        if (e->hash == h && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e;
    return NULL;
}

static int grow(tern_signal_table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    tern_signal_entry_t **b = tern_calloc(t->ctx, cap, sizeof *b);
    if (!b)
        return TERN_ERR_NOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        tern_signal_entry_t *e = t->buckets[i];
        while (e) {
            tern_signal_entry_t *next = e->next;
            size_t j = e->hash & (cap - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    tern_free(t->ctx, t->buckets);
    t->buckets = b;
    t->cap = cap;
    return TERN_OK;
}

int tern_signal_table_put(tern_signal_table_t *t, tern_signal_entry_t *e)
{
    if (t->count >= t->cap && grow(t) != TERN_OK)
        return TERN_ERR_NOMEM;
    e->hash = tern_signal_siphash(t->key, e->key, e->key_len);
    size_t j = e->hash & (t->cap - 1);
    e->next = t->buckets[j];
    t->buckets[j] = e;
    t->count++;
    return TERN_OK;
}

void tern_signal_table_remove(tern_signal_table_t *t, tern_signal_entry_t *e)
{
    if (t->cap == 0)
        return;
    tern_signal_entry_t **pp = &t->buckets[e->hash & (t->cap - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = e->next;
        e->next = NULL;
        t->count--;
    }
}
