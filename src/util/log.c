/* SPDX-License-Identifier: MIT */
/* Formatting of log lines for the context's sink. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void tern_log_write(tern_ctx_t *ctx, tern_log_level_t level, const char *module, const char *fmt,
                    ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ctx->log(ctx->log_user, level, module, line);
}

const char *tern_addr_log(const tern_ctx_t *ctx, const tern_addr_t *addr, char buf[TERN_ADDR_STRLEN])
{
    if (ctx->redact_addresses) {
        snprintf(buf, TERN_ADDR_STRLEN, "<redacted>");
        return buf;
    }
    return tern_addr_format(addr, buf, TERN_ADDR_STRLEN);
}
