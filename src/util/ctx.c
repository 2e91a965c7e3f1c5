/* SPDX-License-Identifier: MIT */
/* The context's allocator, ids and plain configuration. */
#include "util/ctx.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdlib.h>
#include <string.h>

static void *libc_malloc(size_t size, void *user)
{
    (void)user;
    return malloc(size);
}

static void *libc_calloc(size_t n, size_t size, void *user)
{
    (void)user;
    return calloc(n, size);
}

static void *libc_realloc(void *ptr, size_t size, void *user)
{
    (void)user;
    return realloc(ptr, size);
}

static void libc_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static int openssl_random_bytes(void *user, uint8_t *buf, size_t len)
{
    (void)user;
    while (len > 0) {
        int chunk = len > 1 << 20 ? 1 << 20 : (int)len;
        if (RAND_bytes(buf, chunk) != 1)
            return TERN_ERR_CRYPTO;
        buf += chunk;
        len -= (size_t)chunk;
    }
    return TERN_OK;
}

int tern_ctx_init_base(tern_ctx_t *ctx, const tern_ctx_config_t *cfg)
{
    static const tern_ctx_config_t defaults;
    if (!cfg)
        cfg = &defaults;
    if (cfg->mem) {
        if (!cfg->mem->malloc || !cfg->mem->calloc || !cfg->mem->realloc || !cfg->mem->free)
            return TERN_ERR_INVALID_ARG;
        ctx->mem = *cfg->mem;
    } else {
        ctx->mem = (tern_mem_t){NULL, libc_malloc, libc_calloc, libc_realloc, libc_free};
    }
    ctx->log = cfg->log;
    ctx->log_user = cfg->log_user;
    ctx->log_level = cfg->log_level ? cfg->log_level : TERN_LOG_TRACE;
    ctx->redact_addresses = cfg->redact_addresses;
    ctx->random_bytes = cfg->random_bytes ? cfg->random_bytes : openssl_random_bytes;
    ctx->random_user = cfg->random_user;
    ctx->next_object_id = 1;
    return TERN_OK;
}

uint32_t tern_ctx_new_object_id(tern_ctx_t *ctx)
{
    return ctx->next_object_id++;
}

void *tern_malloc(tern_ctx_t *ctx, size_t size)
{
    return ctx->mem.malloc(size ? size : 1, ctx->mem.user);
}

void *tern_calloc(tern_ctx_t *ctx, size_t n, size_t size)
{
    if (n == 0 || size == 0)
        n = size = 1;
    return ctx->mem.calloc(n, size, ctx->mem.user);
}

void *tern_realloc(tern_ctx_t *ctx, void *ptr, size_t size)
{
    return ctx->mem.realloc(ptr, size ? size : 1, ctx->mem.user);
}

void tern_free(tern_ctx_t *ctx, void *ptr)
{
    if (ptr)
        ctx->mem.free(ptr, ctx->mem.user);
}

void tern_free_secret(tern_ctx_t *ctx, void *ptr, size_t n)
{
    if (!ptr)
        return;
    OPENSSL_cleanse(ptr, n);
    tern_free(ctx, ptr);
}

void *tern_memdup(tern_ctx_t *ctx, const void *p, size_t n)
{
    void *copy = tern_malloc(ctx, n);
    if (copy && n)
        memcpy(copy, p, n);
    return copy;
}

char *tern_strndup(tern_ctx_t *ctx, const char *s, size_t n)
{
    if (!s)
        return NULL;
    size_t len = strnlen(s, n);
    char *copy = tern_malloc(ctx, len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *tern_strdup(tern_ctx_t *ctx, const char *s)
{
    return s ? tern_strndup(ctx, s, strlen(s)) : NULL;
}
