/* SPDX-License-Identifier: MIT */
/*
 * A DTLS 1.2 endpoint (RFC 6347) as a sans-IO object over one OpenSSL SSL: the handshake in
 * either role, the peer's certificate checked against the remote fingerprint (RFC 8122 §5,
 * RFC 8827 §6.5) even when that arrives after the handshake, application records in and out,
 * alerts and close_notify (RFC 5246 §7.2), the retransmission timer mirrored in the caller's time,
 * and the SRTP keying material exporter (RFC 5764 §4.2). Provides tern_dtls_new, _free,
 * _set_remote_fingerprint, _start, _handle_input, _handle_timeout, _send, _poll_transmit,
 * _poll_event, _next_deadline, _close and _export_srtp.
 */
#include "dtls/dtls_internal.h"

#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/srtp.h>
#include <openssl/x509.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DTLS_DEFAULT_MTU 1200
#define DTLS_MIN_MTU 256             /* OpenSSL's smallest link MTU */
#define DTLS_DEFAULT_RTO_US 1000000u /* RFC 6347 §4.2.4.1 */
#define DTLS_MIN_RTO_US 10000u
#define DTLS_DEFAULT_TXQ 1024
#define DTLS_DEFAULT_RXQ 64
/* Record header 13 + explicit nonce 8 + tag 16 (AES-GCM, RFC 5288 §3), the largest offered. */
#define DTLS_WORST_OVERHEAD 37
#define DTLS_AEAD_GCM_MIN 24    /* explicit nonce 8 + tag 16, RFC 5288 §3 */
#define DTLS_AEAD_CHACHA_MIN 16 /* tag 16, RFC 7905 §2 */

/* ---- failure and events ---- */

static void push_event(tern_dtls_t *d, tern_dtls_event_type_t type, uint64_t after_records)
{
    if (d->event_count == TERN_DTLS_MAX_EVENTS) {
        TERN_LOG_WARN(d->ctx, "dtls", "dtls %u event queue full, event %d dropped", d->id, type);
        return;
    }
    d->events[d->event_count++] = (dtls_pending_event_t){type, after_records};
}

static void drop_unverified_records(tern_dtls_t *d)
{
    if (d->verified)
        return;
    tern_txq_clear(&d->rxq);
    d->records_queued = d->records_polled;
}

/* Fail with the reason already written to d->reason. */
static void fail(tern_dtls_t *d, tern_dtls_failure_t kind)
{
    if (d->state == TERN_DTLS_STATE_FAILED || d->state == TERN_DTLS_STATE_CLOSED)
        return;
    d->failure = kind;
    d->state = TERN_DTLS_STATE_FAILED;
    d->deadline = TERN_TIME_NEVER;
    drop_unverified_records(d);
    push_event(d, TERN_DTLS_EV_FAILED, d->records_queued);
    TERN_LOG_INFO(d->ctx, "dtls", "dtls %u failed now=%" PRId64 ": %s", d->id, d->now, d->reason);
}

static const char *openssl_detail(unsigned long e)
{
    const char *s = e ? ERR_reason_error_string(e) : NULL;
    return s ? s : "no detail";
}

/* Name the failure OpenSSL just reported, from the alerts seen and its error queue. */
static void fail_from_openssl(tern_dtls_t *d, const char *during)
{
    unsigned long e = ERR_peek_last_error();
    char *r = d->reason;
    size_t cap = sizeof d->reason;
    tern_dtls_failure_t kind;
    if (d->failure == TERN_DTLS_FAIL_FINGERPRINT) {
        kind = TERN_DTLS_FAIL_FINGERPRINT; /* the reason was written by the check */
    } else if (d->alert_received >= 0) {
        kind = TERN_DTLS_FAIL_ALERT_RECEIVED;
        snprintf(r, cap, "received fatal alert during %s: %s", during,
                 SSL_alert_desc_string_long(d->alert_received));
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_READ_TIMEOUT_EXPIRED) {
        kind = TERN_DTLS_FAIL_TIMEOUT;
        snprintf(r, cap, "handshake timed out after %" PRIu64 " retransmissions",
                 d->stats.retransmissions);
    } else if (d->alert_sent >= 0) {
        kind = TERN_DTLS_FAIL_PROTOCOL;
        snprintf(r, cap, "sent fatal alert during %s: %s (%s)", during,
                 SSL_alert_desc_string_long(d->alert_sent), openssl_detail(e));
    } else {
        kind = TERN_DTLS_FAIL_INTERNAL;
        snprintf(r, cap, "%s failed: %s", during, openssl_detail(e));
    }
    fail(d, kind);
    ERR_clear_error();
}

static void info_cb(const SSL *ssl, int where, int ret)
{
    tern_dtls_t *d = SSL_get_app_data(ssl);
    if (!d || !(where & SSL_CB_ALERT))
        return;
    bool fatal = (ret >> 8) == SSL3_AL_FATAL;
    TERN_LOG_DEBUG(d->ctx, "dtls", "dtls %u %s %s alert: %s", d->id,
                   where & SSL_CB_READ ? "received" : "sent", SSL_alert_type_string_long(ret),
                   SSL_alert_desc_string_long(ret));
    if (!fatal)
        return;
    if (where & SSL_CB_READ)
        d->alert_received = ret;
    else
        d->alert_sent = ret;
}

/* ---- fingerprints (RFC 8122 §5) ---- */

static const EVP_MD *fingerprint_md(const char *alg)
{
    static const struct {
        const char *name;
        const EVP_MD *(*md)(void);
    } algs[] = {
        {"sha-1", EVP_sha1},     {"sha-224", EVP_sha224}, {"sha-256", EVP_sha256},
        {"sha-384", EVP_sha384}, {"sha-512", EVP_sha512},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(algs); i++)
        if (strcasecmp(alg, algs[i].name) == 0)
            return algs[i].md();
    return NULL;
}

static int parse_fingerprint(const char *alg, const char *hex, dtls_fingerprint_t *out)
{
    const EVP_MD *md = fingerprint_md(alg);
    if (!md)
        return TERN_ERR_UNSUPPORTED;
    long n = tern_hex_colon_decode(hex, strlen(hex), out->digest, sizeof out->digest);
    if (n < 0 || n != EVP_MD_get_size(md))
        return TERN_ERR_PARSE;
    out->md = md;
    out->len = (unsigned)n;
    size_t i = 0;
    for (; alg[i] && i + 1 < sizeof out->alg; i++)
        out->alg[i] = (char)(alg[i] >= 'A' && alg[i] <= 'Z' ? alg[i] + 32 : alg[i]);
    out->alg[i] = '\0';
    return TERN_OK;
}

/* Compare a certificate with the expected fingerprint; on a mismatch, write the reason. */
static bool certificate_matches(tern_dtls_t *d, X509 *cert)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!cert || X509_digest(cert, d->remote_fp.md, md, &len) != 1) {
        snprintf(d->reason, sizeof d->reason, "peer certificate missing or unreadable");
        d->failure = TERN_DTLS_FAIL_FINGERPRINT;
        return false;
    }
    if (len == d->remote_fp.len && tern_ct_equal(md, d->remote_fp.digest, len))
        return true;
    char expected[TERN_DTLS_FINGERPRINT_MAX], got[TERN_DTLS_FINGERPRINT_MAX];
    tern_hex_colon_encode(d->remote_fp.digest, d->remote_fp.len, expected);
    tern_hex_colon_encode(md, len, got);
    snprintf(d->reason, sizeof d->reason,
             "fingerprint mismatch: the remote description has %s %s, the peer's certificate has "
             "%s",
             d->remote_fp.alg, expected, got);
    d->failure = TERN_DTLS_FAIL_FINGERPRINT;
    return false;
}

int tern_dtls_verify_cb(X509_STORE_CTX *store, void *arg)
{
    (void)arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    tern_dtls_t *d = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *cert = X509_STORE_CTX_get0_cert(store);
    if (!d || !cert)
        return 0;
    /* Self-signed by design: only the fingerprint counts. Unknown yet: checked when set. */
    if (!d->remote_fp.md || certificate_matches(d, cert))
        return 1;
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
    return 0;
}

static void set_connected(tern_dtls_t *d)
{
    d->verified = true;
    d->state = TERN_DTLS_STATE_CONNECTED;
    /* Before any record already waiting: those are only delivered once verified. */
    push_event(d, TERN_DTLS_EV_CONNECTED, d->records_polled);
    TERN_LOG_INFO(d->ctx, "dtls", "dtls %u connected now=%" PRId64 " %s", d->id, d->now,
                  SSL_get_cipher_name(d->ssl));
}

static void check_peer(tern_dtls_t *d)
{
    if (certificate_matches(d, SSL_get0_peer_certificate(d->ssl)))
        set_connected(d);
    else
        fail(d, TERN_DTLS_FAIL_FINGERPRINT);
}

/* ---- driving OpenSSL ---- */

static void enter(tern_dtls_t *d, tern_time_t now)
{
    if (now > d->now)
        d->now = now;
}

/* Queue what OpenSSL wrote and mirror its timer in our time. */
static void leave(tern_dtls_t *d)
{
    tern_dtls_flush(d);
    if (d->handshake_done && d->pack_buf) {
        /* Only alerts are packed from now on: an idle endpoint does not keep the buffer. */
        tern_free(d->ctx, d->pack_buf);
        d->pack_buf = NULL;
    }
    if (d->state != TERN_DTLS_STATE_CONNECTING && d->state != TERN_DTLS_STATE_NEW) {
        d->deadline = TERN_TIME_NEVER;
    } else if (d->timer_changed) {
        d->deadline = d->timer_armed ? d->now + d->timer_duration_us : TERN_TIME_NEVER;
    }
    d->timer_changed = false;
}

static void on_handshake_done(tern_dtls_t *d)
{
    d->handshake_done = true;
    const SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(d->ssl);
    TERN_LOG_DEBUG(d->ctx, "dtls", "dtls %u handshake done now=%" PRId64 " %s %s srtp=%s", d->id,
                   d->now, SSL_get_version(d->ssl), SSL_get_cipher_name(d->ssl),
                   p ? p->name : "none");
    if (d->remote_fp.md)
        check_peer(d);
    else
        TERN_LOG_DEBUG(d->ctx, "dtls", "dtls %u waits for the remote fingerprint", d->id);
}

static void drive_handshake(tern_dtls_t *d)
{
    ERR_clear_error();
    int r = SSL_do_handshake(d->ssl);
    if (r == 1) {
        on_handshake_done(d);
        return;
    }
    int err = SSL_get_error(d->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return;
    }
    fail_from_openssl(d, "handshake");
}

static void queue_record(tern_dtls_t *d, const uint8_t *record, size_t len)
{
    static const tern_addr_t none;
    d->stats.records_received++;
    if (tern_txq_push(&d->rxq, &none, &none, record, len) != 0) {
        d->stats.records_dropped++;
        TERN_LOG_DEBUG(d->ctx, "dtls", "dtls %u receive queue full, record of %zu dropped", d->id,
                       len);
        return;
    }
    d->records_queued++;
}

/* RFC 5246 §7.2.1: answer a close_notify with our own. */
static void on_close_notify(tern_dtls_t *d)
{
    TERN_LOG_INFO(d->ctx, "dtls", "dtls %u close_notify received now=%" PRId64, d->id, d->now);
    d->state = TERN_DTLS_STATE_CLOSED;
    push_event(d, TERN_DTLS_EV_CLOSED, d->records_queued);
    ERR_clear_error();
    SSL_shutdown(d->ssl);
    ERR_clear_error();
}

/*
 * SSL_get_error reads the thread's error queue, which must be empty before an SSL call
 * (SSL_get_error(3)). It is, unless something failed since it was last emptied, and emptying
 * it (every slot) costs much more than looking: per record, that is worth avoiding.
 */
static void clear_stale_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

static void read_records(tern_dtls_t *d)
{
    tern_dtls_identity_t *id = d->identity;
    if (!id->scratch)
        id->scratch = tern_malloc(d->ctx, TERN_DTLS_MAX_RECORD);
    if (!id->scratch)
        return; /* OpenSSL keeps the record; it is read with the next datagram */
    for (;;) {
        clear_stale_errors();
        int n = SSL_read(d->ssl, id->scratch, TERN_DTLS_MAX_RECORD);
        if (n > 0) {
            queue_record(d, id->scratch, (size_t)n);
            continue;
        }
        int err = SSL_get_error(d->ssl, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            return; /* no error was queued (SSL_get_error would have said so) */
        if (err == SSL_ERROR_ZERO_RETURN)
            on_close_notify(d);
        else
            fail_from_openssl(d, "read");
        return;
    }
}

/* The smallest encrypted record body under the negotiated (or any offered) cipher. */
static size_t aead_min_body(const tern_dtls_t *d)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(d->ssl);
    if (c && SSL_CIPHER_get_cipher_nid(c) == NID_chacha20_poly1305)
        return DTLS_AEAD_CHACHA_MIN;
    return DTLS_AEAD_GCM_MIN;
}

static bool takes_input(const tern_dtls_t *d)
{
    switch (d->state) {
    case TERN_DTLS_STATE_NEW:
        return d->role == TERN_DTLS_ROLE_SERVER; /* a client has not sent its ClientHello */
    case TERN_DTLS_STATE_CONNECTING:
    case TERN_DTLS_STATE_CONNECTED:
        return true;
    default:
        return false;
    }
}

/* ---- lifetime ---- */

static int check_config(const tern_dtls_config_t *cfg)
{
    if (cfg->role != TERN_DTLS_ROLE_CLIENT && cfg->role != TERN_DTLS_ROLE_SERVER)
        return TERN_ERR_INVALID_ARG;
    if (cfg->mtu != 0 && (cfg->mtu < DTLS_MIN_MTU || cfg->mtu > TERN_DTLS_MAX_RECORD))
        return TERN_ERR_INVALID_ARG;
    return TERN_OK;
}

static int make_ssl(tern_dtls_t *d, tern_dtls_identity_t *id)
{
    d->ssl = SSL_new(id->ssl_ctx);
    if (!d->ssl)
        return TERN_ERR_CRYPTO;
    SSL_set_app_data(d->ssl, d);
    BIO *bio = tern_dtls_bio_new(d, id->bio_method);
    if (!bio)
        return TERN_ERR_NOMEM;
    SSL_set_bio(d->ssl, bio, bio); /* one BIO for both directions; the SSL owns it */
    SSL_set_info_callback(d->ssl, info_cb);
    DTLS_set_timer_cb(d->ssl, tern_dtls_timer_cb);
    SSL_set_options(d->ssl, SSL_OP_NO_QUERY_MTU);
    if (DTLS_set_link_mtu(d->ssl, d->mtu) != 1)
        return TERN_ERR_INVALID_ARG;
    if (d->role == TERN_DTLS_ROLE_CLIENT)
        SSL_set_connect_state(d->ssl);
    else
        SSL_set_accept_state(d->ssl);
    return TERN_OK;
}

static int endpoint_init(tern_dtls_t *d, tern_ctx_t *ctx, const tern_dtls_config_t *cfg,
                         tern_time_t now)
{
    d->ctx = ctx;
    d->role = cfg->role;
    d->mtu = cfg->mtu ? cfg->mtu : DTLS_DEFAULT_MTU;
    d->initial_rto_us = cfg->initial_rto_us ? cfg->initial_rto_us : DTLS_DEFAULT_RTO_US;
    if (d->initial_rto_us < DTLS_MIN_RTO_US)
        d->initial_rto_us = DTLS_MIN_RTO_US;
    d->id = tern_ctx_new_object_id(ctx);
    d->now = now;
    d->deadline = TERN_TIME_NEVER;
    d->alert_received = d->alert_sent = -1;
    d->pack = true;
    tern_txq_init(&d->txq, ctx,
                  cfg->max_queued_datagrams ? cfg->max_queued_datagrams : DTLS_DEFAULT_TXQ);
    tern_txq_init(&d->rxq, ctx,
                  cfg->max_queued_records ? cfg->max_queued_records : DTLS_DEFAULT_RXQ);
    int err = tern_dtls_identity_get(ctx, &d->identity);
    return err ? err : make_ssl(d, d->identity);
}

int tern_dtls_new(tern_ctx_t *ctx, const tern_dtls_config_t *cfg, tern_time_t now,
                  tern_dtls_t **out)
{
    static const tern_dtls_config_t defaults;
    if (!ctx || !out)
        return TERN_ERR_INVALID_ARG;
    if (!cfg)
        cfg = &defaults;
    int err = check_config(cfg);
    if (err)
        return err;
    tern_dtls_t *d = tern_calloc(ctx, 1, sizeof *d);
    if (!d)
        return TERN_ERR_NOMEM;
    ERR_clear_error();
    err = endpoint_init(d, ctx, cfg, now);
    ERR_clear_error();
    if (err) {
        tern_dtls_free(d);
        return err;
    }
    TERN_LOG_DEBUG(ctx, "dtls", "dtls %u created now=%" PRId64 " %s mtu=%u rto=%uus", d->id, now,
                   d->role == TERN_DTLS_ROLE_CLIENT ? "client" : "server", d->mtu,
                   d->initial_rto_us);
    *out = d;
    return TERN_OK;
}

void tern_dtls_free(tern_dtls_t *d)
{
    if (!d)
        return;
    SSL_free(d->ssl); /* frees the BIO too */
    tern_txq_dispose(&d->txq);
    tern_txq_dispose(&d->rxq);
    tern_free(d->ctx, d->pack_buf);
    tern_free(d->ctx, d);
}

/* ---- commands ---- */

int tern_dtls_set_remote_fingerprint(tern_dtls_t *d, tern_time_t now, const char *alg,
                                     const char *hex)
{
    if (!d || !alg || !hex)
        return TERN_ERR_INVALID_ARG;
    dtls_fingerprint_t fp = {0};
    int err = parse_fingerprint(alg, hex, &fp);
    if (err)
        return err;
    if (d->state == TERN_DTLS_STATE_FAILED || d->state == TERN_DTLS_STATE_CLOSED)
        return TERN_ERR_INVALID_STATE;
    if (d->verified) {
        bool same = fp.md == d->remote_fp.md && fp.len == d->remote_fp.len &&
                    memcmp(fp.digest, d->remote_fp.digest, fp.len) == 0;
        return same ? TERN_OK : TERN_ERR_INVALID_STATE;
    }
    enter(d, now);
    d->remote_fp = fp;
    if (d->handshake_done)
        check_peer(d);
    leave(d);
    return TERN_OK;
}

int tern_dtls_start(tern_dtls_t *d, tern_time_t now)
{
    if (!d)
        return TERN_ERR_INVALID_ARG;
    if (d->role == TERN_DTLS_ROLE_SERVER)
        return d->state == TERN_DTLS_STATE_FAILED || d->state == TERN_DTLS_STATE_CLOSED
                   ? TERN_ERR_INVALID_STATE
                   : TERN_OK;
    if (d->started || d->state != TERN_DTLS_STATE_NEW)
        return TERN_ERR_INVALID_STATE;
    enter(d, now);
    d->started = true;
    d->state = TERN_DTLS_STATE_CONNECTING;
    drive_handshake(d);
    leave(d);
    return TERN_OK;
}

int tern_dtls_handle_input(tern_dtls_t *d, tern_time_t now, const uint8_t *data, size_t len)
{
    if (!d || (!data && len))
        return TERN_ERR_INVALID_ARG;
    enter(d, now);
    d->stats.datagrams_received++;
    if (!takes_input(d) || !tern_dtls_datagram_acceptable(data, len, aead_min_body(d))) {
        d->stats.datagrams_dropped++;
        TERN_LOG_DEBUG(d->ctx, "dtls", "dtls %u dropped a datagram of %zu in state %d", d->id, len,
                       d->state);
        return TERN_OK;
    }
    d->in = data;
    d->in_len = len;
    if (!d->handshake_done)
        drive_handshake(d);
    if (d->state == TERN_DTLS_STATE_NEW && SSL_get_state(d->ssl) != TLS_ST_BEFORE)
        d->state = TERN_DTLS_STATE_CONNECTING; /* a server read its first ClientHello */
    if (d->handshake_done && takes_input(d))
        read_records(d);
    if (d->in) {
        /* OpenSSL still held earlier records and did not want this datagram. */
        d->stats.datagrams_dropped++;
        d->in = NULL;
    }
    leave(d);
    return TERN_OK;
}

static void retransmit_timeout(tern_dtls_t *d)
{
    ERR_clear_error();
    int r = DTLSv1_handle_timeout(d->ssl);
    if (r > 0) {
        d->stats.retransmissions++;
        TERN_LOG_DEBUG(d->ctx, "dtls", "dtls %u retransmitted now=%" PRId64 " next in %uus", d->id,
                       d->now, d->timer_duration_us);
        return;
    }
    if (r < 0) {
        fail_from_openssl(d, "retransmission");
        return;
    }
    /* OpenSSL's wall clock says the timer has not expired yet: wait for what it says is left. */
    struct timeval tv;
    if (DTLSv1_get_timeout(d->ssl, &tv) == 1) {
        tern_time_t left = (tern_time_t)tv.tv_sec * 1000000 + tv.tv_usec;
        d->deadline = d->now + (left > 1000 ? left : 1000);
    } else {
        d->deadline = TERN_TIME_NEVER;
    }
}

int tern_dtls_handle_timeout(tern_dtls_t *d, tern_time_t now)
{
    if (!d)
        return TERN_ERR_INVALID_ARG;
    enter(d, now);
    if (d->deadline == TERN_TIME_NEVER || d->now < d->deadline)
        return TERN_OK;
    if (d->state == TERN_DTLS_STATE_CONNECTING && !d->handshake_done)
        retransmit_timeout(d);
    else
        d->deadline = TERN_TIME_NEVER;
    leave(d);
    return TERN_OK;
}

int tern_dtls_send(tern_dtls_t *d, tern_time_t now, const uint8_t *data, size_t len)
{
    if (!d || (!data && len))
        return TERN_ERR_INVALID_ARG;
    if (d->state != TERN_DTLS_STATE_CONNECTED)
        return TERN_ERR_INVALID_STATE;
    if (len == 0)
        return TERN_ERR_INVALID_ARG;
    if (len > TERN_DTLS_MAX_RECORD)
        return TERN_ERR_TOO_LARGE; /* OpenSSL would fail the connection */
    if (tern_txq_count(&d->txq) >= d->txq.max_entries) {
        d->stats.transmit_dropped++;
        return TERN_ERR_AGAIN;
    }
    enter(d, now);
    d->pack = false;
    clear_stale_errors();
    int r = SSL_write(d->ssl, data, (int)len);
    d->pack = true;
    int err = TERN_OK;
    if (r > 0) {
        d->stats.records_sent++;
    } else {
        fail_from_openssl(d, "write");
        err = TERN_ERR_CRYPTO;
    }
    leave(d);
    return err;
}

size_t tern_dtls_max_payload(const tern_dtls_t *d)
{
    if (!d)
        return 0;
    if (d->handshake_done) {
        size_t n = DTLS_get_data_mtu(d->ssl);
        if (n > 0)
            return n;
    }
    return d->mtu - DTLS_WORST_OVERHEAD;
}

int tern_dtls_close(tern_dtls_t *d, tern_time_t now)
{
    if (!d || d->state == TERN_DTLS_STATE_FAILED || d->state == TERN_DTLS_STATE_CLOSED)
        return TERN_OK;
    enter(d, now);
    if (d->handshake_done) {
        ERR_clear_error();
        SSL_shutdown(d->ssl); /* close_notify, RFC 5246 §7.2.1 */
        ERR_clear_error();
    }
    d->state = TERN_DTLS_STATE_CLOSED;
    TERN_LOG_DEBUG(d->ctx, "dtls", "dtls %u closed now=%" PRId64, d->id, d->now);
    leave(d);
    return TERN_OK;
}

/* ---- output ---- */

bool tern_dtls_poll_transmit(tern_dtls_t *d, tern_transmit_t *out)
{
    if (!d || !out)
        return false;
    return tern_txq_pop(&d->txq, out);
}

static void pop_event(tern_dtls_t *d, tern_dtls_event_t *out)
{
    tern_dtls_event_type_t type = d->events[0].type;
    memmove(d->events, d->events + 1, (d->event_count - 1) * sizeof d->events[0]);
    d->event_count--;
    memset(out, 0, sizeof *out);
    out->type = type;
    if (type == TERN_DTLS_EV_FAILED) {
        out->u.failed.kind = d->failure;
        out->u.failed.reason = d->reason;
    }
}

bool tern_dtls_poll_event(tern_dtls_t *d, tern_dtls_event_t *out)
{
    if (!d || !out)
        return false;
    if (d->event_count > 0 && d->events[0].after_records <= d->records_polled) {
        pop_event(d, out);
        return true;
    }
    tern_transmit_t rec;
    if (d->verified && tern_txq_pop(&d->rxq, &rec)) {
        d->records_polled++;
        memset(out, 0, sizeof *out);
        out->type = TERN_DTLS_EV_DATA;
        out->u.data.data = rec.data;
        out->u.data.len = rec.len;
        return true;
    }
    if (d->event_count > 0) {
        pop_event(d, out);
        return true;
    }
    return false;
}

tern_time_t tern_dtls_next_deadline(const tern_dtls_t *d)
{
    return d ? d->deadline : TERN_TIME_NEVER;
}

tern_dtls_state_t tern_dtls_state(const tern_dtls_t *d)
{
    return d ? d->state : TERN_DTLS_STATE_FAILED;
}

tern_dtls_role_t tern_dtls_role(const tern_dtls_t *d)
{
    return d ? d->role : TERN_DTLS_ROLE_CLIENT;
}

const char *tern_dtls_last_error(const tern_dtls_t *d)
{
    return d && d->state == TERN_DTLS_STATE_FAILED ? d->reason : "";
}

void tern_dtls_get_stats(const tern_dtls_t *d, tern_dtls_stats_t *out)
{
    if (d && out)
        *out = d->stats;
}

/* ---- SRTP keying material ---- */

int tern_dtls_export_srtp(const tern_dtls_t *d, tern_dtls_srtp_keys_t *out)
{
    if (!d || !out)
        return TERN_ERR_INVALID_ARG;
    if (d->state != TERN_DTLS_STATE_CONNECTED)
        return TERN_ERR_INVALID_STATE;
    const SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(d->ssl);
    if (!p || (p->id != TERN_SRTP_AES128_CM_SHA1_80 && p->id != TERN_SRTP_AEAD_AES_128_GCM))
        return TERN_ERR_NOT_FOUND;
    size_t key_len = 16, salt_len = p->id == TERN_SRTP_AEAD_AES_128_GCM ? 12 : 14;
    uint8_t m[2 * (16 + 14)];
    size_t n = 2 * (key_len + salt_len);
    static const char label[] = "EXTRACTOR-dtls_srtp"; /* RFC 5764 §4.2 */
    ERR_clear_error();
    if (SSL_export_keying_material(d->ssl, m, n, label, sizeof label - 1, NULL, 0, 0) != 1) {
        ERR_clear_error();
        return TERN_ERR_CRYPTO;
    }
    /* client key | server key | client salt | server salt */
    bool client = d->role == TERN_DTLS_ROLE_CLIENT;
    memset(out, 0, sizeof *out);
    out->profile = (uint16_t)p->id;
    out->key_len = (uint8_t)key_len;
    out->salt_len = (uint8_t)salt_len;
    memcpy(out->local_key, m + (client ? 0 : key_len), key_len);
    memcpy(out->remote_key, m + (client ? key_len : 0), key_len);
    memcpy(out->local_salt, m + 2 * key_len + (client ? 0 : salt_len), salt_len);
    memcpy(out->remote_salt, m + 2 * key_len + (client ? salt_len : 0), salt_len);
    OPENSSL_cleanse(m, sizeof m);
    return TERN_OK;
}

bool tern_dtls_is_record(const uint8_t *data, size_t len)
{
    return data && len > 0 && data[0] >= 20 && data[0] <= 63; /* RFC 7983 §7 */
}
