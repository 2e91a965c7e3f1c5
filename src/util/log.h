/* SPDX-License-Identifier: MIT */
/*
 * Log macros. The level is tested before anything is formatted (libjuice JLOG_*_ENABLED), so a
 * disabled line costs one comparison. Lines carry the object's short id and the stack time
 * (`now`), never a clock reading; addresses go through tern_addr_log so they can be redacted.
 */
#ifndef TERN_UTIL_LOG_H
#define TERN_UTIL_LOG_H

#include "util/ctx.h"

#define TERN_LOG_ENABLED(ctx, level) ((ctx)->log != NULL && (level) <= (ctx)->log_level)

#define TERN_LOG_AT(ctx, level, module, ...)                                                      \
    do {                                                                                          \
        if (TERN_LOG_ENABLED(ctx, level))                                                         \
            tern_log_write((ctx), (level), (module), __VA_ARGS__);                                \
    } while (0)

#define TERN_LOG_ERROR(ctx, module, ...) TERN_LOG_AT(ctx, TERN_LOG_ERROR, module, __VA_ARGS__)
#define TERN_LOG_WARN(ctx, module, ...) TERN_LOG_AT(ctx, TERN_LOG_WARN, module, __VA_ARGS__)
#define TERN_LOG_INFO(ctx, module, ...) TERN_LOG_AT(ctx, TERN_LOG_INFO, module, __VA_ARGS__)
#define TERN_LOG_DEBUG(ctx, module, ...) TERN_LOG_AT(ctx, TERN_LOG_DEBUG, module, __VA_ARGS__)
#define TERN_LOG_TRACE(ctx, module, ...) TERN_LOG_AT(ctx, TERN_LOG_TRACE, module, __VA_ARGS__)

/* Format and emit one line (use the macros, which test the level first). */
void tern_log_write(tern_ctx_t *ctx, tern_log_level_t level, const char *module, const char *fmt,
                    ...) TERN_PRINTF(4, 5);

/* Format an address for a log line: as tern_addr_format, or "<redacted>" if the context says so. */
const char *tern_addr_log(const tern_ctx_t *ctx, const tern_addr_t *addr, char buf[TERN_ADDR_STRLEN]);

#endif
