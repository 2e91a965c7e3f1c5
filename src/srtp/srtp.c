/* SPDX-License-Identifier: MIT */
/*
 * SRTP and SRTCP sessions (RFC 3711, AEAD AES-GCM RFC 7714) on libsrtp2, keyed with the master
 * keys DTLS-SRTP exports (RFC 5764 §4.2). libsrtp2 is already sans-IO: it protects and
 * unprotects in place, with no clock and no socket. This wrapper checks every received packet
 * with the layer's own RTP/RTCP parsers before libsrtp2 sees it (so libsrtp2 only ever reads a
 * well-formed header), maps its status codes to tern errors and counts what is dropped.
 * Verbs: tern_srtp_new, tern_srtp_free, tern_srtp_protect_rtp, tern_srtp_protect_rtcp,
 * tern_srtp_unprotect_rtp, tern_srtp_unprotect_rtcp, tern_srtp_get_stats.
 */
#include "srtp/srtp.h"

#include <openssl/crypto.h>
#include <srtp2/srtp.h>
#include <string.h>

/* Master key and salt lengths of the two profiles (RFC 3711 §8.2, RFC 7714 §12). */
#define KEY_LEN 16
#define SALT_LEN_CM 14
#define SALT_LEN_GCM 12
#define DEFAULT_REPLAY_WINDOW 1024
/* SRTCP's trailer: E flag and index (RFC 3711 §3.4), then the tag. */
#define SRTCP_INDEX_LEN 4

struct tern_srtp {
    /* configuration */
    tern_ctx_t *ctx;
    tern_srtp_profile_t profile;

    /* state */
    srtp_t tx;
    srtp_t rx;

    /* stats */
    tern_srtp_stats_t stats;
};

/* libsrtp2's crypto kernel is one per process; srtp_shutdown is never called (it would pull
 * the kernel from under sessions of other contexts). Loop thread only, as usrsctp.
 * Debian builds libsrtp2 on NSS, which libsrtp2 starts with its first cipher and stops with
 * its last: a peer connection that comes after all others are gone would load NSS's softoken
 * again (a few milliseconds of dlopen and /dev/urandom reads). One idle session, made with the
 * kernel and never freed, keeps it loaded. */
static bool kernel_started;
static srtp_t idle_session;

static int start_kernel(void)
{
    if (kernel_started)
        return TERN_OK;
    if (srtp_init() != srtp_err_status_ok)
        return TERN_ERR_CRYPTO;
    uint8_t key[SRTP_AES_ICM_128_KEY_LEN_WSALT] = {0};
    srtp_policy_t pol;
    memset(&pol, 0, sizeof pol);
    srtp_crypto_policy_set_rtp_default(&pol.rtp);
    srtp_crypto_policy_set_rtcp_default(&pol.rtcp);
    pol.ssrc.type = ssrc_any_inbound;
    pol.key = key;
    if (srtp_create(&idle_session, &pol) != srtp_err_status_ok)
        return TERN_ERR_CRYPTO;
    kernel_started = true;
    return TERN_OK;
}

static size_t salt_len_of(tern_srtp_profile_t p)
{
    return p == TERN_SRTP_PROFILE_AEAD_AES_128_GCM ? SALT_LEN_GCM : SALT_LEN_CM;
}

static void set_policy_crypto(srtp_policy_t *pol, tern_srtp_profile_t profile)
{
    if (profile == TERN_SRTP_PROFILE_AEAD_AES_128_GCM) {
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol->rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol->rtcp);
    } else {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol->rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol->rtcp);
    }
}

/* One direction: a policy for any SSRC of that direction, keyed with key || salt. */
static int make_stream(const tern_srtp_config_t *cfg, bool outbound, srtp_t *out)
{
    uint8_t key[KEY_LEN + SALT_LEN_CM];
    size_t salt_len = salt_len_of(cfg->profile);
    memcpy(key, outbound ? cfg->local_key : cfg->remote_key, KEY_LEN);
    memcpy(key + KEY_LEN, outbound ? cfg->local_salt : cfg->remote_salt, salt_len);
    srtp_policy_t pol;
    memset(&pol, 0, sizeof pol);
    set_policy_crypto(&pol, cfg->profile);
    pol.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
    pol.key = key;
    pol.window_size = cfg->replay_window ? cfg->replay_window : DEFAULT_REPLAY_WINDOW;
    /* RFC 3711 §3.3.2: our own retransmissions (RTX, NACK answers) reuse an index. */
    pol.allow_repeat_tx = outbound;
    srtp_err_status_t st = srtp_create(out, &pol);
    OPENSSL_cleanse(key, sizeof key);
    if (st == srtp_err_status_alloc_fail)
        return TERN_ERR_NOMEM;
    return st == srtp_err_status_ok ? TERN_OK : TERN_ERR_CRYPTO;
}

int tern_srtp_new(tern_ctx_t *ctx, const tern_srtp_config_t *cfg, tern_srtp_t **out)
{
    if (!ctx || !cfg || !out || !cfg->local_key || !cfg->local_salt || !cfg->remote_key ||
        !cfg->remote_salt)
        return TERN_ERR_INVALID_ARG;
    if (cfg->profile != TERN_SRTP_PROFILE_AES128_CM_SHA1_80 &&
        cfg->profile != TERN_SRTP_PROFILE_AEAD_AES_128_GCM)
        return TERN_ERR_INVALID_ARG;
    int rc = start_kernel();
    if (rc != TERN_OK)
        return rc;
    tern_srtp_t *s = tern_calloc(ctx, 1, sizeof *s);
    if (!s)
        return TERN_ERR_NOMEM;
    s->ctx = ctx;
    s->profile = cfg->profile;
    rc = make_stream(cfg, true, &s->tx);
    if (rc == TERN_OK)
        rc = make_stream(cfg, false, &s->rx);
    if (rc != TERN_OK) {
        tern_srtp_free(s);
        return rc;
    }
    *out = s;
    return TERN_OK;
}

void tern_srtp_free(tern_srtp_t *s)
{
    if (!s)
        return;
    /* libsrtp2 zeroes its key state as it frees a session. */
    if (s->tx)
        srtp_dealloc(s->tx);
    if (s->rx)
        srtp_dealloc(s->rx);
    tern_free(s->ctx, s);
}

/* libsrtp2 takes int lengths; a datagram is far below that, but the caller's buffer may not be. */
static bool fits_int(size_t n)
{
    return n <= (size_t)INT32_MAX - TERN_SRTP_MAX_OVERHEAD;
}

int tern_srtp_protect_rtp(tern_srtp_t *s, uint8_t *buf, size_t *len, size_t cap)
{
    tern_rtp_header_t h;
    if (tern_rtp_parse(buf, *len, &h) != TERN_OK)
        return TERN_ERR_PARSE;
    if (cap < *len || cap - *len < TERN_SRTP_MAX_OVERHEAD || !fits_int(*len))
        return TERN_ERR_TOO_LARGE;
    int n = (int)*len;
    if (srtp_protect(s->tx, buf, &n) != srtp_err_status_ok)
        return TERN_ERR_CRYPTO;
    *len = (size_t)n;
    s->stats.protected_rtp++;
    return TERN_OK;
}

/* What libsrtp2 reads of an RTCP packet in the clear: the first header and the sender's SSRC
 * (RFC 3711 §3.4). The rest of the compound is for tern_rtcp_next to judge. */
static bool rtcp_head_ok(const uint8_t *buf, size_t len)
{
    return buf && len >= 8 && buf[0] >> 6 == 2 && tern_srtp_demux(buf, len) == TERN_DEMUX_RTCP;
}

int tern_srtp_protect_rtcp(tern_srtp_t *s, uint8_t *buf, size_t *len, size_t cap)
{
    if (!rtcp_head_ok(buf, *len))
        return TERN_ERR_PARSE;
    if (cap < *len || cap - *len < TERN_SRTP_MAX_OVERHEAD || !fits_int(*len))
        return TERN_ERR_TOO_LARGE;
    int n = (int)*len;
    if (srtp_protect_rtcp(s->tx, buf, &n) != srtp_err_status_ok)
        return TERN_ERR_CRYPTO;
    *len = (size_t)n;
    s->stats.protected_rtcp++;
    return TERN_OK;
}

/* Count a libsrtp2 refusal of peer input. */
static int count_failure(tern_srtp_t *s, srtp_err_status_t st)
{
    if (st == srtp_err_status_auth_fail)
        s->stats.auth_failed++;
    else if (st == srtp_err_status_replay_fail || st == srtp_err_status_replay_old)
        s->stats.replayed++;
    else
        s->stats.other_failed++;
    return TERN_ERR_CRYPTO;
}

/* The smallest SRTP packet: the header and the tag (10 bytes for HMAC-SHA1-80, 16 for GCM). */
static size_t tag_len(const tern_srtp_t *s)
{
    return s->profile == TERN_SRTP_PROFILE_AEAD_AES_128_GCM ? 16 : 10;
}

int tern_srtp_unprotect_rtp(tern_srtp_t *s, uint8_t *buf, size_t *len)
{
    tern_rtp_header_t h;
    if (tern_rtp_parse_header(buf, *len, &h) != TERN_OK || h.payload_len < tag_len(s) ||
        !fits_int(*len)) {
        s->stats.malformed++;
        return TERN_ERR_PARSE;
    }
    int n = (int)*len;
    srtp_err_status_t st = srtp_unprotect(s->rx, buf, &n);
    if (st != srtp_err_status_ok)
        return count_failure(s, st);
    *len = (size_t)n;
    s->stats.unprotected_rtp++;
    return TERN_OK;
}

int tern_srtp_unprotect_rtcp(tern_srtp_t *s, uint8_t *buf, size_t *len)
{
    /* The first header and SSRC are in the clear; the rest is encrypted, so only they can be
     * checked before the tag is. */
    if (!rtcp_head_ok(buf, *len) || *len < 8 + SRTCP_INDEX_LEN + tag_len(s) || !fits_int(*len)) {
        s->stats.malformed++;
        return TERN_ERR_PARSE;
    }
    int n = (int)*len;
    srtp_err_status_t st = srtp_unprotect_rtcp(s->rx, buf, &n);
    if (st != srtp_err_status_ok)
        return count_failure(s, st);
    *len = (size_t)n;
    s->stats.unprotected_rtcp++;
    return TERN_OK;
}

void tern_srtp_get_stats(const tern_srtp_t *s, tern_srtp_stats_t *out)
{
    *out = s->stats;
}
