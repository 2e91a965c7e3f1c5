/* SPDX-License-Identifier: MIT */
/*
 * What the files of dtls/ share and nobody else sees: the endpoint's struct, the identity's
 * struct, the datagram BIO (dtls_bio.c) and the certificate check (dtls.c) that the identity's
 * SSL_CTX (dtls_identity.c) installs.
 */
#ifndef TERN_DTLS_DTLS_INTERNAL_H
#define TERN_DTLS_DTLS_INTERNAL_H

#include "dtls/dtls.h"

#include <openssl/ssl.h>

/* RFC 6347 §4.1: a record's plaintext is at most 2^14 bytes. */
#define TERN_DTLS_MAX_RECORD 16384

typedef struct tern_dtls_identity {
    tern_ctx_t *ctx;
    SSL_CTX *ssl_ctx;
    BIO_METHOD *bio_method; /* the datagram BIO, made once per context (no global state) */
    char fingerprint[TERN_DTLS_FINGERPRINT_MAX]; /* SHA-256 of our certificate */
    /* SSL_read's destination, TERN_DTLS_MAX_RECORD bytes, made on first use: a record is copied
     * out at once, so the context's endpoints (one thread) share it. */
    uint8_t *scratch;
} tern_dtls_identity_t;

/* An expected peer fingerprint (RFC 8122 §5). */
typedef struct dtls_fingerprint {
    const EVP_MD *md; /* NULL: none set */
    char alg[8];      /* "sha-256", lowercase */
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned len;
} dtls_fingerprint_t;

/* A state event waiting to be polled, ordered against the DATA records around it. */
typedef struct dtls_pending_event {
    tern_dtls_event_type_t type;
    uint64_t after_records; /* deliver once this many records have been polled */
} dtls_pending_event_t;

#define TERN_DTLS_MAX_EVENTS 4

struct tern_dtls {
    /* configuration */
    tern_ctx_t *ctx;
    tern_dtls_role_t role;
    uint16_t mtu;
    uint32_t initial_rto_us;
    uint32_t id; /* short id for log lines */

    /* state */
    tern_dtls_identity_t *identity; /* the context's, which outlives its endpoints */
    SSL *ssl;
    tern_dtls_state_t state;
    tern_time_t now;
    bool started;
    bool handshake_done; /* OpenSSL finished; CONNECTED waits for the fingerprint */
    bool verified;       /* the peer's certificate matched */
    dtls_fingerprint_t remote_fp;
    tern_dtls_failure_t failure;
    char reason[512];
    int alert_received; /* last fatal alert (level << 8 | description); -1: none */
    int alert_sent;

    /* input: the datagram the BIO hands to OpenSSL's next read (borrowed for one call) */
    const uint8_t *in;
    size_t in_len;

    /* retransmission timer (see dtls.h: OpenSSL's own, mirrored in our time) */
    bool timer_armed;
    bool timer_changed;         /* OpenSSL armed or stopped it since we last looked */
    uint32_t timer_duration_us; /* the current timeout, as our timer callback set it */
    tern_time_t deadline;

    /* output: handshake records of one call are packed into one datagram up to the MTU */
    bool pack;
    uint8_t *pack_buf; /* mtu bytes, made when first needed and freed after the handshake */
    size_t pack_len;
    tern_txq_t txq;

    /* decrypted records waiting as DATA events, and state events */
    tern_txq_t rxq;
    uint64_t records_queued;
    uint64_t records_polled;
    dtls_pending_event_t events[TERN_DTLS_MAX_EVENTS];
    unsigned event_count;

    /* stats */
    tern_dtls_stats_t stats;
};

/* dtls_bio.c: the datagram BIO and the timer callback. */
BIO_METHOD *tern_dtls_bio_method_new(void);
BIO *tern_dtls_bio_new(tern_dtls_t *d, BIO_METHOD *method);
unsigned int tern_dtls_timer_cb(SSL *ssl, unsigned int previous_us);
/* Queue the packed datagram, if any (call at the end of every entry point). */
void tern_dtls_flush(tern_dtls_t *d);

/* dtls_record.c: whether a datagram's records are framed well enough to hand to OpenSSL;
 * aead_min is the smallest body of an encrypted record under the negotiated cipher. */
bool tern_dtls_datagram_acceptable(const uint8_t *data, size_t len, size_t aead_min);

/* dtls.c: the SSL_CTX's certificate check, against the endpoint's expected fingerprint. */
int tern_dtls_verify_cb(X509_STORE_CTX *store, void *arg);

/* dtls_identity.c: the context's identity, made on first use. Returns as identity_init. */
int tern_dtls_identity_get(tern_ctx_t *ctx, tern_dtls_identity_t **out);

#endif
