/* SPDX-License-Identifier: MIT */
/*
 * The context as every layer sees it: allocator, log sink, random source, and slots that the
 * layers above fill (the DTLS identity, the list of peer connections waiting to be drained).
 * tern_ctx_new itself lives in rtc/, the one layer that knows all the others.
 */
#ifndef TERN_UTIL_CTX_H
#define TERN_UTIL_CTX_H

#include "tern/tern.h"

/* printf-style format checking of a function's (format, first variadic) argument positions;
 * compiler extensions live in util/ only (CONVENTIONS.md §8). */
#if defined(__GNUC__)
#define TERN_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define TERN_PRINTF(fmt_index, first_arg)
#endif

struct tern_pc;

struct tern_ctx {
    /* configuration */
    tern_mem_t mem;
    tern_log_fn log;
    void *log_user;
    tern_log_level_t log_level;
    bool redact_addresses;
    int (*random_bytes)(void *user, uint8_t *buf, size_t len);
    void *random_user;

    /* state owned by upper layers */
    void *dtls_identity;            /* dtls/: certificate, key, SSL_CTX and fingerprint */
    void (*dtls_identity_free)(void *identity);
    struct tern_pc *pending_head;   /* rtc/: pcs to drain, linked through the pc */
    struct tern_pc *pending_tail;
    uint32_t next_object_id;        /* short ids for log lines */
    unsigned sctp_users;            /* sctp/: associations alive in this context */
};

/* Allocation through the context's allocator. */
void *tern_malloc(tern_ctx_t *ctx, size_t size);
void *tern_calloc(tern_ctx_t *ctx, size_t n, size_t size);
void *tern_realloc(tern_ctx_t *ctx, void *ptr, size_t size);
/* tern_free(ctx, ptr) is public (tern.h). */

/* A NUL-terminated copy of s (NULL gives NULL); tern_strndup copies at most n bytes. */
char *tern_strdup(tern_ctx_t *ctx, const char *s);
char *tern_strndup(tern_ctx_t *ctx, const char *s, size_t n);
void *tern_memdup(tern_ctx_t *ctx, const void *p, size_t n);

/* Free a secret after zeroing its first n bytes. */
void tern_free_secret(tern_ctx_t *ctx, void *ptr, size_t n);

/* Fill the context's plain fields from a config (used by tern_ctx_new). */
int tern_ctx_init_base(tern_ctx_t *ctx, const tern_ctx_config_t *cfg);

/* A fresh short id for an object's log lines. */
uint32_t tern_ctx_new_object_id(tern_ctx_t *ctx);

#endif
