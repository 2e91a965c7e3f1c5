/* SPDX-License-Identifier: MIT */
/*
 * The context (tern_ctx_new): allocator, log, random source and the DTLS identity shared by its
 * peer connections; the timers global to the process (usrsctp's); and the list of peer
 * connections that have something to drain because of a call that was not made on them.
 */
#include "rtc/rtc.h"

#include <string.h>

int tern_ctx_new(const tern_ctx_config_t *cfg, tern_ctx_t **out)
{
    static const tern_ctx_config_t defaults;
    if (!out)
        return TERN_ERR_INVALID_ARG;
    if (!cfg)
        cfg = &defaults;
    if (!cfg->certificate_pem != !cfg->private_key_pem)
        return TERN_ERR_INVALID_ARG;

    tern_ctx_t base;
    memset(&base, 0, sizeof base);
    int err = tern_ctx_init_base(&base, cfg);
    if (err)
        return err;
    tern_ctx_t *ctx = tern_malloc(&base, sizeof *ctx);
    if (!ctx)
        return TERN_ERR_NOMEM;
    *ctx = base;
    err = tern_dtls_identity_init(ctx, cfg->certificate_pem, cfg->private_key_pem);
    if (err) {
        tern_free(ctx, ctx);
        return err;
    }
    *out = ctx;
    return TERN_OK;
}

void tern_ctx_free(tern_ctx_t *ctx)
{
    if (!ctx)
        return;
    if (ctx->dtls_identity && ctx->dtls_identity_free)
        ctx->dtls_identity_free(ctx->dtls_identity);
    tern_mem_t mem = ctx->mem;
    mem.free(ctx, mem.user);
}

const char *tern_ctx_fingerprint(const tern_ctx_t *ctx)
{
    return ctx ? tern_dtls_identity_fingerprint(ctx) : NULL;
}

tern_time_t tern_ctx_next_deadline(const tern_ctx_t *ctx)
{
    return tern_sctp_global_next_deadline(ctx);
}

int tern_ctx_handle_timeout(tern_ctx_t *ctx, tern_time_t now)
{
    return tern_sctp_global_handle_timeout(ctx, now);
}

tern_pc_t *tern_ctx_poll_pending_pc(tern_ctx_t *ctx)
{
    tern_pc_t *pc = ctx->pending_head;
    if (!pc)
        return NULL;
    ctx->pending_head = pc->pending_next;
    if (!ctx->pending_head)
        ctx->pending_tail = NULL;
    pc->pending_next = NULL;
    pc->pending = false;
    return pc;
}

void tern_rtc_mark_pending(tern_pc_t *pc)
{
    if (pc->pending)
        return;
    tern_ctx_t *ctx = pc->ctx;
    pc->pending = true;
    pc->pending_next = NULL;
    if (ctx->pending_tail)
        ctx->pending_tail->pending_next = pc;
    else
        ctx->pending_head = pc;
    ctx->pending_tail = pc;
}

void tern_rtc_unlink_pending(tern_pc_t *pc)
{
    if (!pc->pending)
        return;
    tern_ctx_t *ctx = pc->ctx;
    tern_pc_t *prev = NULL;
    for (tern_pc_t *it = ctx->pending_head; it; prev = it, it = it->pending_next) {
        if (it != pc)
            continue;
        if (prev)
            prev->pending_next = it->pending_next;
        else
            ctx->pending_head = it->pending_next;
        if (ctx->pending_tail == it)
            ctx->pending_tail = prev;
        break;
    }
    pc->pending = false;
    pc->pending_next = NULL;
}

void tern_rtc_on_child_pending(void *pc)
{
    tern_rtc_mark_pending(pc);
}
