/* SPDX-License-Identifier: MIT */
/*
 * Fuzz SRTP/SRTCP unprotection (RFC 3711, RFC 7714) with a fixed key, for both profiles.
 * 1. The input is unprotected as SRTP and as SRTCP by a fresh receiving session (replay state
 *    must not leak from one input to the next): almost always refused, and never touching a
 *    byte outside the input, nor changing its length on failure.
 * 2. If it is an RTP packet (or starts like an RTCP one), it is protected by the sender and
 *    unprotected by the receiver: the round trip must give the input back; then one bit of
 *    the protected packet, chosen by the input, is flipped, and the receiver must refuse it.
 * Deterministic: fixed keys, fresh sessions.
 */
#include "srtp/srtp.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 8192 /* a datagram, and then some */

static tern_ctx_t ctx;
static const uint8_t key[16] = {0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0,
                                0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39};
static const uint8_t salt[14] = {0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe,
                                 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6};

static tern_srtp_t *session(tern_srtp_profile_t profile)
{
    tern_srtp_config_t cfg = {profile, key, salt, key, salt, 64};
    tern_srtp_t *s = NULL;
    if (tern_srtp_new(&ctx, &cfg, &s) != TERN_OK)
        abort();
    return s;
}

/* Unprotect a copy sitting at the end of a heap block: ASan sees any read past the input. */
static int unprotect_copy(tern_srtp_t *s, const uint8_t *data, size_t size, bool rtcp)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return TERN_ERR_NOMEM;
    if (size)
        memcpy(copy, data, size);
    size_t len = size;
    int rc =
        rtcp ? tern_srtp_unprotect_rtcp(s, copy, &len) : tern_srtp_unprotect_rtp(s, copy, &len);
    if ((rc != TERN_OK && len != size) || (rc == TERN_OK && len > size))
        abort();
    free(copy);
    return rc;
}

static void round_trip(tern_srtp_profile_t profile, const uint8_t *data, size_t size, bool rtcp)
{
    tern_srtp_t *tx = session(profile), *rx = session(profile);
    size_t cap = size + TERN_SRTP_MAX_OVERHEAD;
    uint8_t *buf = malloc(cap);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    size_t len = size;
    int rc = rtcp ? tern_srtp_protect_rtcp(tx, buf, &len, cap)
                  : tern_srtp_protect_rtp(tx, buf, &len, cap);
    if (rc == TERN_OK) {
        size_t protected_len = len;
        uint8_t *saved = malloc(protected_len);
        if (!saved)
            abort();
        memcpy(saved, buf, protected_len);
        rc =
            rtcp ? tern_srtp_unprotect_rtcp(rx, buf, &len) : tern_srtp_unprotect_rtp(rx, buf, &len);
        if (rc != TERN_OK || len != size || memcmp(buf, data, size) != 0)
            abort();
        /* one flipped bit anywhere: refused (a fresh receiver, so not as a replay) */
        tern_srtp_t *rx2 = session(profile);
        size_t bit = (size * 31 + data[size / 2]) % (protected_len * 8);
        saved[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        len = protected_len;
        rc = rtcp ? tern_srtp_unprotect_rtcp(rx2, saved, &len)
                  : tern_srtp_unprotect_rtp(rx2, saved, &len);
        if (rc == TERN_OK)
            abort();
        tern_srtp_free(rx2);
        free(saved);
    }
    free(buf);
    tern_srtp_free(tx);
    tern_srtp_free(rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    if (!ctx.random_bytes) {
        static uint64_t seed = 5;
        tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
        tern_ctx_init_base(&ctx, &cfg);
    }
    static const tern_srtp_profile_t profiles[] = {TERN_SRTP_PROFILE_AES128_CM_SHA1_80,
                                                   TERN_SRTP_PROFILE_AEAD_AES_128_GCM};
    for (size_t i = 0; i < TERN_ARRAY_LEN(profiles); i++) {
        tern_srtp_t *rx = session(profiles[i]);
        (void)unprotect_copy(rx, data, size, false);
        (void)unprotect_copy(rx, data, size, true);
        tern_srtp_free(rx);
        if (size > 0) {
            round_trip(profiles[i], data, size, false);
            round_trip(profiles[i], data, size, true);
        }
    }
    return 0;
}
