/* SPDX-License-Identifier: MIT */
/* Random values drawn from the context's random source. */
#include "util/rng.h"

#include <string.h>

int tern_random_bytes(tern_ctx_t *ctx, void *buf, size_t len)
{
    if (ctx->random_bytes(ctx->random_user, buf, len) != 0) {
        memset(buf, 0, len);
        return TERN_ERR_CRYPTO;
    }
    return TERN_OK;
}

uint32_t tern_random_u32(tern_ctx_t *ctx)
{
    uint32_t v;
    tern_random_bytes(ctx, &v, sizeof v);
    return v;
}

uint64_t tern_random_u64(tern_ctx_t *ctx)
{
    uint64_t v;
    tern_random_bytes(ctx, &v, sizeof v);
    return v;
}

uint32_t tern_random_below(tern_ctx_t *ctx, uint32_t bound)
{
    /* Rejection sampling keeps the result uniform. */
    uint32_t limit = UINT32_MAX - UINT32_MAX % bound;
    uint32_t v;
    do {
        v = tern_random_u32(ctx);
    } while (v >= limit);
    return v % bound;
}

int tern_random_ice_chars(tern_ctx_t *ctx, char *out, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t raw[256];
    if (len > sizeof raw)
        return TERN_ERR_INVALID_ARG;
    int err = tern_random_bytes(ctx, raw, len);
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[raw[i] & 63];
    out[len] = '\0';
    return err;
}

uint64_t tern_splitmix_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int tern_splitmix_random_bytes(void *state_u64, uint8_t *buf, size_t len)
{
    uint64_t *state = state_u64;
    while (len > 0) {
        uint64_t v = tern_splitmix_next(state);
        size_t n = len < 8 ? len : 8;
        memcpy(buf, &v, n);
        buf += n;
        len -= n;
    }
    return 0;
}
