/* SPDX-License-Identifier: MIT */
/* Bounds-checked read and write cursors with sticky errors. */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const uint8_t *tern_rbuf_take(tern_rbuf_t *r, size_t n)
{
    if (r->err || (size_t)(r->end - r->p) < n) {
        r->err = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

void tern_rbuf_skip(tern_rbuf_t *r, size_t n)
{
    (void)tern_rbuf_take(r, n);
}

void tern_rbuf_copy(tern_rbuf_t *r, void *out, size_t n)
{
    const uint8_t *p = tern_rbuf_take(r, n);
    if (p)
        memcpy(out, p, n);
    else if (n)
        memset(out, 0, n);
}

tern_rbuf_t tern_rbuf_sub(tern_rbuf_t *r, size_t n)
{
    tern_rbuf_t sub;
    const uint8_t *p = tern_rbuf_take(r, n);
    tern_rbuf_init(&sub, p, p ? n : 0);
    sub.err = p == NULL;
    return sub;
}

uint8_t tern_rbuf_u8(tern_rbuf_t *r)
{
    const uint8_t *p = tern_rbuf_take(r, 1);
    return p ? p[0] : 0;
}

uint16_t tern_rbuf_u16(tern_rbuf_t *r)
{
    const uint8_t *p = tern_rbuf_take(r, 2);
    return p ? tern_load_u16(p) : 0;
}

uint32_t tern_rbuf_u24(tern_rbuf_t *r)
{
    const uint8_t *p = tern_rbuf_take(r, 3);
    return p ? (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2] : 0;
}

uint32_t tern_rbuf_u32(tern_rbuf_t *r)
{
    const uint8_t *p = tern_rbuf_take(r, 4);
    return p ? tern_load_u32(p) : 0;
}

uint64_t tern_rbuf_u64(tern_rbuf_t *r)
{
    uint64_t hi = tern_rbuf_u32(r);
    return hi << 32 | tern_rbuf_u32(r);
}

void tern_wbuf_init(tern_wbuf_t *w, tern_ctx_t *ctx, void *storage, size_t cap)
{
    w->base = storage;
    w->len = 0;
    w->cap = storage ? cap : 0;
    w->ctx = ctx;
    w->on_heap = false;
    w->err = false;
}

void tern_wbuf_dispose(tern_wbuf_t *w)
{
    if (w->on_heap)
        tern_free(w->ctx, w->base);
    w->base = NULL;
    w->len = w->cap = 0;
    w->on_heap = false;
}

static bool wbuf_grow(tern_wbuf_t *w, size_t need)
{
    if (!w->ctx)
        return false;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    uint8_t *p;
    if (w->on_heap) {
        p = tern_realloc(w->ctx, w->base, cap);
    } else {
        p = tern_malloc(w->ctx, cap);
        if (p && w->len)
            memcpy(p, w->base, w->len);
    }
    if (!p)
        return false;
    w->base = p;
    w->cap = cap;
    w->on_heap = true;
    return true;
}

uint8_t *tern_wbuf_reserve(tern_wbuf_t *w, size_t n)
{
    if (w->err)
        return NULL;
    if (n > SIZE_MAX - w->len || (w->len + n > w->cap && !wbuf_grow(w, w->len + n))) {
        w->err = true;
        return NULL;
    }
    uint8_t *p = w->base + w->len;
    w->len += n;
    return p;
}

void tern_wbuf_bytes(tern_wbuf_t *w, const void *p, size_t n)
{
    uint8_t *dst = tern_wbuf_reserve(w, n);
    if (dst && n)
        memcpy(dst, p, n);
}

void tern_wbuf_zeros(tern_wbuf_t *w, size_t n)
{
    uint8_t *dst = tern_wbuf_reserve(w, n);
    if (dst && n)
        memset(dst, 0, n);
}

void tern_wbuf_str(tern_wbuf_t *w, const char *s)
{
    tern_wbuf_bytes(w, s, strlen(s));
}

void tern_wbuf_u8(tern_wbuf_t *w, uint8_t v)
{
    tern_wbuf_bytes(w, &v, 1);
}

void tern_wbuf_u16(tern_wbuf_t *w, uint16_t v)
{
    uint8_t *p = tern_wbuf_reserve(w, 2);
    if (p)
        tern_store_u16(p, v);
}

void tern_wbuf_u24(tern_wbuf_t *w, uint32_t v)
{
    uint8_t *p = tern_wbuf_reserve(w, 3);
    if (p) {
        p[0] = (uint8_t)(v >> 16);
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)v;
    }
}

void tern_wbuf_u32(tern_wbuf_t *w, uint32_t v)
{
    uint8_t *p = tern_wbuf_reserve(w, 4);
    if (p)
        tern_store_u32(p, v);
}

void tern_wbuf_u64(tern_wbuf_t *w, uint64_t v)
{
    tern_wbuf_u32(w, (uint32_t)(v >> 32));
    tern_wbuf_u32(w, (uint32_t)v);
}

void tern_wbuf_printf(tern_wbuf_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        w->err = true;
        return;
    }
    /* Reserve room for the NUL too, then give that byte back: it stays after the data. */
    uint8_t *dst = tern_wbuf_reserve(w, (size_t)n + 1);
    if (!dst)
        return;
    va_start(ap, fmt);
    vsnprintf((char *)dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->len -= 1;
}

void tern_wbuf_put_u16_at(tern_wbuf_t *w, size_t off, uint16_t v)
{
    if (!w->err && off + 2 <= w->len)
        tern_store_u16(w->base + off, v);
}

void tern_wbuf_put_u32_at(tern_wbuf_t *w, size_t off, uint32_t v)
{
    if (!w->err && off + 4 <= w->len)
        tern_store_u32(w->base + off, v);
}
