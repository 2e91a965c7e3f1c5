/* SPDX-License-Identifier: MIT */
/*
 * Bounds-checked byte cursors. A read cursor (tern_rbuf) and a write cursor (tern_wbuf) both keep
 * a sticky error flag, so a parser or an encoder checks once at the end instead of after every
 * field (picotls ptls_buffer_t, Go's cryptobyte). Wire integers are big-endian.
 */
#ifndef TERN_UTIL_BUF_H
#define TERN_UTIL_BUF_H

#include "util/ctx.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tern_rbuf {
    const uint8_t *p;
    const uint8_t *end;
    bool err; /* a read went past the end; every later read returns zeros */
} tern_rbuf_t;

static inline void tern_rbuf_init(tern_rbuf_t *r, const void *data, size_t len)
{
    r->p = data;
    r->end = r->p + len;
    r->err = false;
}

static inline size_t tern_rbuf_left(const tern_rbuf_t *r)
{
    return r->err ? 0 : (size_t)(r->end - r->p);
}

uint8_t tern_rbuf_u8(tern_rbuf_t *r);
uint16_t tern_rbuf_u16(tern_rbuf_t *r);
uint32_t tern_rbuf_u24(tern_rbuf_t *r);
uint32_t tern_rbuf_u32(tern_rbuf_t *r);
uint64_t tern_rbuf_u64(tern_rbuf_t *r);
/* Copy n bytes out (zeros on error). */
void tern_rbuf_copy(tern_rbuf_t *r, void *out, size_t n);
/* Borrow n bytes; NULL (and err set) if fewer are left. */
const uint8_t *tern_rbuf_take(tern_rbuf_t *r, size_t n);
/* Skip n bytes. */
void tern_rbuf_skip(tern_rbuf_t *r, size_t n);
/* A sub-cursor over the next n bytes, which this cursor skips. */
tern_rbuf_t tern_rbuf_sub(tern_rbuf_t *r, size_t n);

typedef struct tern_wbuf {
    uint8_t *base;
    size_t len;
    size_t cap;
    tern_ctx_t *ctx; /* non-NULL: grows through the context's allocator */
    bool on_heap;    /* base was allocated here */
    bool err;        /* an append did not fit (fixed storage) or allocation failed */
} tern_wbuf_t;

/* Start on caller storage; with ctx non-NULL it moves to the heap when it outgrows it. */
void tern_wbuf_init(tern_wbuf_t *w, tern_ctx_t *ctx, void *storage, size_t cap);
/* Free heap storage, if any. A zeroed wbuf is fine. */
void tern_wbuf_dispose(tern_wbuf_t *w);
/* Make room for n more bytes; returns a pointer to them, or NULL (err set). */
uint8_t *tern_wbuf_reserve(tern_wbuf_t *w, size_t n);
void tern_wbuf_u8(tern_wbuf_t *w, uint8_t v);
void tern_wbuf_u16(tern_wbuf_t *w, uint16_t v);
void tern_wbuf_u24(tern_wbuf_t *w, uint32_t v);
void tern_wbuf_u32(tern_wbuf_t *w, uint32_t v);
void tern_wbuf_u64(tern_wbuf_t *w, uint64_t v);
void tern_wbuf_bytes(tern_wbuf_t *w, const void *p, size_t n);
void tern_wbuf_zeros(tern_wbuf_t *w, size_t n);
/* Append a NUL-terminated string without its NUL. */
void tern_wbuf_str(tern_wbuf_t *w, const char *s);
/* printf-style append, keeping a NUL after the data (not counted in len). */
void tern_wbuf_printf(tern_wbuf_t *w, const char *fmt, ...) TERN_PRINTF(2, 3);
/* Write a big-endian u16/u32 at an earlier offset (for lengths known later). */
void tern_wbuf_put_u16_at(tern_wbuf_t *w, size_t off, uint16_t v);
void tern_wbuf_put_u32_at(tern_wbuf_t *w, size_t off, uint32_t v);

/* Big-endian loads and stores on raw memory whose bounds the caller checked. */
static inline uint16_t tern_load_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t tern_load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void tern_store_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void tern_store_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
