/* SPDX-License-Identifier: MIT */
/* Randomness, only from the context's source (tests seed it; the default is OpenSSL's). */
#ifndef TERN_UTIL_RNG_H
#define TERN_UTIL_RNG_H

#include "util/ctx.h"

/* Fill buf; returns 0 or TERN_ERR_CRYPTO. */
int tern_random_bytes(tern_ctx_t *ctx, void *buf, size_t len);
uint32_t tern_random_u32(tern_ctx_t *ctx);
uint64_t tern_random_u64(tern_ctx_t *ctx);
/* A uniformly random value in [0, bound) (bound > 0). */
uint32_t tern_random_below(tern_ctx_t *ctx, uint32_t bound);
/* Fill out with len characters of [A-Za-z0-9+/] (the ICE char set, RFC 8839 §5.4) and a NUL. */
int tern_random_ice_chars(tern_ctx_t *ctx, char *out, size_t len);

/*
 * A small deterministic generator (splitmix64) for tests, simulations and fuzzers, to pass as
 * tern_ctx_config_t.random_bytes with a pointer to its state as random_user.
 */
int tern_splitmix_random_bytes(void *state_u64, uint8_t *buf, size_t len);
uint64_t tern_splitmix_next(uint64_t *state);

#endif
