/* SPDX-License-Identifier: MIT */
/*
 * DTLS 1.2 (RFC 6347) for WebRTC (RFC 8827, RFC 8842), as a sans-IO object over OpenSSL.
 *
 * The context holds one identity: an ECDSA P-256 self-signed certificate made once (or the
 * certificate and key the user gave in PEM), its SHA-256 fingerprint for a=fingerprint, and one
 * SSL_CTX shared by every DTLS endpoint of the context. Each endpoint is one SSL object whose
 * BIO is the module's own: a read hands OpenSSL exactly one received datagram, and each write of
 * OpenSSL becomes one datagram on a transmit queue (handshake records of one call are packed
 * into datagrams up to the MTU; an application record is always a datagram of its own). The
 * peer's certificate is accepted only if its digest matches the fingerprint of the remote SDP
 * (RFC 8122 §5); this may be learnt after the handshake has finished, and CONNECTED is reported
 * only once it matched.
 *
 * Input is screened before OpenSSL sees it (dtls_record.c): OpenSSL 3.0 answers some malformed
 * records (an AEAD record shorter than its nonce and tag, an unknown content type, a handshake
 * fragment that overruns its message) with a fatal alert, so such datagrams are dropped whole.
 *
 * Time. OpenSSL keeps the DTLS retransmission timer itself and checks its expiry against the
 * wall clock (it calls the C library's gettimeofday). The module sets the timer's durations
 * through DTLS_set_timer_cb (first timeout: config.initial_rto_us, then doubling up to 60 s,
 * RFC 6347 §4.2.4.1), learns when OpenSSL arms or stops it, and reports the matching deadline in
 * the caller's `now` (next_deadline). tern_dtls_handle_timeout then asks OpenSSL to retransmit
 * (DTLSv1_handle_timeout). When `now` runs at the speed of the real clock this agrees with
 * OpenSSL (which allows 15 ms of slack); if OpenSSL finds its timer not yet expired, the deadline
 * moves to what OpenSSL says is left. Under a virtual clock that runs faster than the real one a
 * handshake with loss therefore does not retransmit on time: loss is tested with real time
 * (tests/integration/test_dtls_loss.c) or with a test executable that interposes gettimeofday
 * with its virtual clock (tests/unit/test_dtls.c: it must have default visibility, since the build
 * hides symbols, or libssl will not see it). A handshake fails after 12 timeouts (OpenSSL's
 * limit); the timer does not run once the handshake is done.
 *
 * Scope (deliberately unsupported): DTLS 1.0 and DTLS 1.3 (the version is pinned to 1.2; a
 * ClientHello offering 1.3 is answered with 1.2), cookie exchange (HelloVerifyRequest: ICE has
 * already proven the path), renegotiation, session resumption, certificate chains (the peer's
 * leaf certificate is only compared with the fingerprint; its dates and issuer are not checked),
 * RSA certificate generation (a user-given RSA certificate works), MTU discovery (the MTU is
 * fixed by the config).
 */
#ifndef TERN_DTLS_DTLS_H
#define TERN_DTLS_DTLS_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- identity (one per context) ---- */

/** Longest fingerprint text, "AB:CD:..." of a SHA-512 digest, with its NUL. */
#define TERN_DTLS_FINGERPRINT_MAX (64 * 3)

/**
 * Make the context's DTLS identity: the certificate and private key given in PEM, or, if both
 * are NULL, a fresh ECDSA P-256 self-signed certificate (CN "tern", a random serial, valid from
 * 2000-01-01 to 9999-12-31 so that no clock is read; browsers check only the fingerprint). It
 * holds the SSL_CTX shared by the context's endpoints. Stored in ctx->dtls_identity with
 * ctx->dtls_identity_free set; the context's owner calls ctx->dtls_identity_free on it.
 * tern_dtls_new calls this with NULL, NULL if the context has no identity yet.
 * @param cert_pem  NUL-terminated PEM certificate, or NULL; read, not kept.
 * @param key_pem   NUL-terminated PEM private key matching it, or NULL; read, not kept.
 * @return 0; TERN_ERR_INVALID_ARG if exactly one of the PEMs is given;
 *         TERN_ERR_INVALID_STATE if the context already has an identity;
 *         TERN_ERR_CRYPTO if the PEM cannot be read, the key does not match the certificate, or
 *         OpenSSL fails to make a key or a certificate; TERN_ERR_NOMEM.
 */
int tern_dtls_identity_init(tern_ctx_t *ctx, const char *cert_pem, const char *key_pem);

/**
 * The SHA-256 fingerprint of the context's certificate, "AB:CD:..." (uppercase hex, colons), as
 * a=fingerprint:sha-256 carries it.
 * @return a string owned by the context's identity; NULL if the context has no identity.
 */
const char *tern_dtls_identity_fingerprint(const tern_ctx_t *ctx);

/**
 * The identity's SSL_CTX, for tests and tools that need to adjust it (an extension to make a
 * ClientHello larger, for instance). Endpoints made afterwards inherit the change.
 * @return the SSL_CTX (an `SSL_CTX *`), owned by the identity; NULL if there is none.
 */
void *tern_dtls_identity_ssl_ctx(const tern_ctx_t *ctx);

/* ---- endpoint ---- */

typedef struct tern_dtls tern_dtls_t;

/** The DTLS role, from a=setup (RFC 8842 §5.2): active is the client. */
typedef enum {
    TERN_DTLS_ROLE_CLIENT = 0,
    TERN_DTLS_ROLE_SERVER = 1,
} tern_dtls_role_t;

/** Configuration of one endpoint; zero fields mean defaults. */
typedef struct tern_dtls_config {
    tern_dtls_role_t role;
    /** Largest datagram the module sends, DTLS header included; 0: 1200. At least 256, at
     * most 16384. Handshake messages are fragmented to fit; application data must fit
     * (tern_dtls_max_payload). */
    uint16_t mtu;
    /** First retransmission timeout of the handshake; 0: 1 s (RFC 6347 §4.2.4.1). The pc passes
     * a value derived from the ICE round trip so a lost flight costs little. At least 10 ms. */
    uint32_t initial_rto_us;
    /** Datagrams that may wait in the transmit queue; 0: 1024. A write when it is full is
     * dropped (as the network would) and counted. */
    uint32_t max_queued_datagrams;
    /** Decrypted records that may wait to be polled as DATA events; 0: 64. Records past it are
     * dropped and counted (the layer above retransmits). */
    uint32_t max_queued_records;
} tern_dtls_config_t;

/** State of an endpoint. */
typedef enum {
    TERN_DTLS_STATE_NEW = 0,    /**< made; a client waits for tern_dtls_start */
    TERN_DTLS_STATE_CONNECTING, /**< handshaking, or handshake done and fingerprint unknown */
    TERN_DTLS_STATE_CONNECTED,  /**< handshake done and the peer's fingerprint matched */
    TERN_DTLS_STATE_FAILED,     /**< an alert, a mismatch, a timeout: see tern_dtls_last_error */
    TERN_DTLS_STATE_CLOSED,     /**< close_notify sent or received */
} tern_dtls_state_t;

/** Why an endpoint failed. */
typedef enum {
    TERN_DTLS_FAIL_NONE = 0,
    TERN_DTLS_FAIL_ALERT_RECEIVED, /**< the peer sent a fatal alert */
    TERN_DTLS_FAIL_PROTOCOL,       /**< we sent a fatal alert (bad message, no shared cipher...) */
    TERN_DTLS_FAIL_FINGERPRINT,    /**< the peer's certificate does not match the fingerprint */
    TERN_DTLS_FAIL_TIMEOUT,        /**< the handshake gave up after too many retransmissions */
    TERN_DTLS_FAIL_INTERNAL,       /**< OpenSSL failed (allocation, key export...) */
} tern_dtls_failure_t;

/** Event types. */
typedef enum {
    TERN_DTLS_EV_NONE = 0,
    TERN_DTLS_EV_CONNECTED, /**< once: handshake done and fingerprint matched */
    TERN_DTLS_EV_DATA,      /**< u.data: one decrypted application record */
    TERN_DTLS_EV_FAILED,    /**< u.failed: once; the endpoint is dead */
    TERN_DTLS_EV_CLOSED,    /**< the peer sent close_notify (we answered with ours) */
} tern_dtls_event_type_t;

/** One event. Pointers inside are valid until the next call on the endpoint. */
typedef struct tern_dtls_event {
    tern_dtls_event_type_t type;
    union {
        struct {
            const uint8_t *data;
            size_t len;
        } data;
        struct {
            tern_dtls_failure_t kind;
            const char *reason; /**< human-readable: the alert, both fingerprints, ... */
        } failed;
    } u;
} tern_dtls_event_t;

/** Counters of an endpoint. */
typedef struct tern_dtls_stats {
    uint64_t datagrams_received; /**< handed to handle_input */
    uint64_t datagrams_dropped;  /**< not DTLS, too short, or in a state that takes no input */
    uint64_t datagrams_sent;     /**< queued for sending */
    uint64_t records_received;   /**< decrypted application records */
    uint64_t records_sent;       /**< application records (tern_dtls_send) */
    uint64_t records_dropped;    /**< decrypted records the receive queue had no room for */
    uint64_t transmit_dropped;   /**< datagrams the full transmit queue refused */
    uint64_t retransmissions;    /**< handshake flights sent again on a timeout */
} tern_dtls_stats_t;

/**
 * Make an endpoint. A server accepts a ClientHello from now on; a client sends its ClientHello
 * on tern_dtls_start. Makes the context's identity first if it has none.
 * @param cfg  may be NULL (a client with defaults); copied.
 * @param out  receives the endpoint, owned by the caller (tern_dtls_free).
 * @return 0; TERN_ERR_INVALID_ARG for a bad mtu or role; TERN_ERR_CRYPTO if OpenSSL fails;
 *         TERN_ERR_NOMEM. On error *out is untouched.
 */
int tern_dtls_new(tern_ctx_t *ctx, const tern_dtls_config_t *cfg, tern_time_t now,
                  tern_dtls_t **out);

/** Free an endpoint without sending anything (call tern_dtls_close first for close_notify).
 * NULL is a no-op. */
void tern_dtls_free(tern_dtls_t *d);

/**
 * Set the remote fingerprint from the SDP's a=fingerprint (RFC 8122). If the peer's certificate
 * is already known (the handshake finished before the answer arrived, an early ClientHello), it
 * is checked now: CONNECTED or FAILED (TERN_DTLS_FAIL_FINGERPRINT) is queued. If the handshake
 * is still running, the certificate is checked as it arrives and a mismatch fails the handshake
 * with a bad_certificate alert.
 * @param alg  "sha-1", "sha-224", "sha-256", "sha-384" or "sha-512" (any case); copied.
 * @param hex  "AB:CD:..." (any case); copied.
 * @return 0 (also when the check fails: that is reported as an event); TERN_ERR_INVALID_ARG
 *         for a NULL argument; TERN_ERR_UNSUPPORTED for another hash; TERN_ERR_PARSE if hex is
 * malformed or has the wrong length for alg; TERN_ERR_INVALID_STATE if a different fingerprint was
 * already verified, or the endpoint has failed or closed. On error nothing changes.
 */
int tern_dtls_set_remote_fingerprint(tern_dtls_t *d, tern_time_t now, const char *alg,
                                     const char *hex);

/**
 * Start the handshake: a client sends its ClientHello; for a server this does nothing (it
 * waits for the ClientHello, which it accepts from creation).
 * @return 0; TERN_ERR_INVALID_STATE if already started (client), failed or closed.
 */
int tern_dtls_start(tern_dtls_t *d, tern_time_t now);

/**
 * Feed one received datagram (a DTLS datagram by RFC 7983: first byte 20..63). It may hold
 * several records; a handshake message split over datagrams is reassembled. Garbage, records
 * that fail authentication and input in a state that takes none are dropped and counted; a
 * fatal alert (received, or sent because of a malformed handshake) is reported as FAILED.
 * @param data  borrowed for the call.
 * @return 0; TERN_ERR_INVALID_ARG if data is NULL with len > 0.
 */
int tern_dtls_handle_input(tern_dtls_t *d, tern_time_t now, const uint8_t *data, size_t len);

/**
 * Run the retransmission timer if its deadline has passed (calling early does nothing).
 * @return 0.
 */
int tern_dtls_handle_timeout(tern_dtls_t *d, tern_time_t now);

/**
 * Encrypt one application message (one SCTP packet) into one record in one datagram.
 * @param data  borrowed for the call; len 1..16384 (keep it within tern_dtls_max_payload so the
 *              datagram fits the MTU).
 * @return 0; TERN_ERR_INVALID_STATE unless CONNECTED; TERN_ERR_INVALID_ARG for len 0;
 *         TERN_ERR_TOO_LARGE above 16384 bytes (RFC 6347 §4.1, 2^14); TERN_ERR_AGAIN if the
 *         transmit queue is full (nothing was sent); TERN_ERR_CRYPTO if OpenSSL fails.
 */
int tern_dtls_send(tern_dtls_t *d, tern_time_t now, const uint8_t *data, size_t len);

/**
 * The largest message tern_dtls_send fits in one datagram of the configured MTU: exact for the
 * negotiated cipher once connected, the worst case of the offered ciphers before.
 */
size_t tern_dtls_max_payload(const tern_dtls_t *d);

/**
 * Take the next datagram to send; its local and remote addresses are zero (the pc fills them
 * from the ICE pair). out->data stays valid until the next call on the endpoint.
 * @return false when there is nothing to send.
 */
bool tern_dtls_poll_transmit(tern_dtls_t *d, tern_transmit_t *out);

/**
 * Take the next event: CONNECTED before any DATA, DATA in arrival order, CLOSED after the data
 * that preceded the close_notify. A DATA event's bytes stay valid until the next
 * tern_dtls_poll_event, tern_dtls_handle_input or tern_dtls_free (so they may be handed to SCTP
 * while it sends through tern_dtls_send); a FAILED reason until tern_dtls_free.
 * @return false when there is none.
 */
bool tern_dtls_poll_event(tern_dtls_t *d, tern_dtls_event_t *out);

/** When tern_dtls_handle_timeout must next be called; TERN_TIME_NEVER if no timer runs. */
tern_time_t tern_dtls_next_deadline(const tern_dtls_t *d);

/**
 * Close: send close_notify if the handshake has finished, and stop. Input is dropped from then
 * on. No CLOSED event is queued for a local close.
 * @return 0 (also when already closed or failed).
 */
int tern_dtls_close(tern_dtls_t *d, tern_time_t now);

tern_dtls_state_t tern_dtls_state(const tern_dtls_t *d);
tern_dtls_role_t tern_dtls_role(const tern_dtls_t *d);

/** The reason of the failure, or "" if the endpoint has not failed. Owned by the endpoint. */
const char *tern_dtls_last_error(const tern_dtls_t *d);

void tern_dtls_get_stats(const tern_dtls_t *d, tern_dtls_stats_t *out);

/* ---- SRTP keying material (RFC 5764 §4.2) ---- */

/** SRTP protection profiles offered in use_srtp (RFC 5764 §4.1.2, RFC 7714 §14.2). */
#define TERN_SRTP_AES128_CM_SHA1_80 0x0001
#define TERN_SRTP_AEAD_AES_128_GCM 0x0007

/** SRTP master keys and salts for both directions, from this endpoint's point of view. */
typedef struct tern_dtls_srtp_keys {
    uint16_t profile; /**< TERN_SRTP_* */
    uint8_t key_len;  /**< 16 for both profiles */
    uint8_t salt_len; /**< 14 (AES-CM, RFC 3711), 12 (AEAD-GCM, RFC 7714 §12) */
    uint8_t local_key[32];
    uint8_t local_salt[14];
    uint8_t remote_key[32];
    uint8_t remote_salt[14];
} tern_dtls_srtp_keys_t;

/**
 * Export the SRTP master keys (RFC 5764 §4.2, label "EXTRACTOR-dtls_srtp"): the client's write
 * key is local for the client and remote for the server. The caller zeroes *out when done.
 * @return 0; TERN_ERR_INVALID_STATE unless CONNECTED; TERN_ERR_NOT_FOUND if the peer did not
 *         agree on a profile (no use_srtp: data channels only); TERN_ERR_CRYPTO.
 */
int tern_dtls_export_srtp(const tern_dtls_t *d, tern_dtls_srtp_keys_t *out);

/** RFC 7983 §7: a datagram whose first byte is 20..63 is DTLS. */
bool tern_dtls_is_record(const uint8_t *data, size_t len);

#endif
