/* SPDX-License-Identifier: MIT */
/*
 * A screen for received datagrams before OpenSSL sees them: the DTLS record framing
 * (RFC 6347 §4.1) and, for plaintext records, the fragment headers of handshake messages
 * (§4.2.2), the size of alerts and ChangeCipherSpec. DTLS discards invalid records silently
 * (§4.1.2.7), but OpenSSL 3.0 answers some malformed ones with a fatal alert and kills the
 * connection: an AEAD record shorter than its nonce and tag (internal_error), a record longer
 * than 2^14 plaintext bytes (record_overflow), an unknown content type, a handshake fragment
 * that overruns its message (illegal_parameter). Anyone who can put a datagram on the path
 * could end a session that way, so such datagrams are dropped whole here: a conforming peer
 * never sends one. Provides tern_dtls_datagram_acceptable.
 */
#include "dtls/dtls_internal.h"

/* RFC 6347 §4.1 record and §4.2.2 handshake headers. */
#define RECORD_HEADER_LEN 13
#define HANDSHAKE_HEADER_LEN 12
#define CT_CHANGE_CIPHER_SPEC 20
#define CT_ALERT 21
#define CT_HANDSHAKE 22
#define CT_APPLICATION_DATA 23
/* OpenSSL's limit on a handshake message: SSL_MAX_CERT_LIST_DEFAULT, 100 KiB. */
#define MAX_HANDSHAKE_MESSAGE (100 * 1024)
/* An AEAD record grows by at most its nonce and tag (24 bytes); OpenSSL refuses more than
 * 2^14 + 320 bytes of ciphertext, so this leaves a margin on both sides. */
#define MAX_CIPHERTEXT (TERN_DTLS_MAX_RECORD + 256)

/* The handshake fragments of a plaintext record each fit their message and the record. */
static bool handshake_fragments_ok(tern_rbuf_t body)
{
    if (tern_rbuf_left(&body) == 0)
        return false;
    while (tern_rbuf_left(&body) > 0) {
        if (tern_rbuf_left(&body) < HANDSHAKE_HEADER_LEN)
            return false;
        tern_rbuf_skip(&body, 1); /* msg_type */
        uint32_t msg_len = tern_rbuf_u24(&body);
        tern_rbuf_skip(&body, 2); /* message_seq */
        uint32_t frag_off = tern_rbuf_u24(&body);
        uint32_t frag_len = tern_rbuf_u24(&body);
        if (msg_len > MAX_HANDSHAKE_MESSAGE || frag_off + frag_len > msg_len ||
            frag_len > tern_rbuf_left(&body))
            return false;
        tern_rbuf_skip(&body, frag_len);
    }
    return !body.err;
}

static bool plaintext_record_ok(uint8_t type, tern_rbuf_t body)
{
    size_t len = tern_rbuf_left(&body);
    if (len > TERN_DTLS_MAX_RECORD)
        return false;
    switch (type) {
    case CT_CHANGE_CIPHER_SPEC: /* RFC 5246 §7.1: one byte, 1 */
        return len == 1 && tern_rbuf_u8(&body) == 1;
    case CT_ALERT: { /* RFC 5246 §7.2: level (1 or 2), description */
        uint8_t level = tern_rbuf_u8(&body);
        return len == 2 && (level == 1 || level == 2);
    }
    case CT_HANDSHAKE:
        return handshake_fragments_ok(body);
    default: /* application data is never sent in epoch 0 */
        return false;
    }
}

static bool record_ok(uint8_t type, uint16_t epoch, tern_rbuf_t body, size_t aead_min)
{
    if (type < CT_CHANGE_CIPHER_SPEC || type > CT_APPLICATION_DATA)
        return false;
    if (epoch == 0)
        return plaintext_record_ok(type, body);
    size_t len = tern_rbuf_left(&body);
    return len >= aead_min && len <= MAX_CIPHERTEXT;
}

bool tern_dtls_datagram_acceptable(const uint8_t *data, size_t len, size_t aead_min)
{
    tern_rbuf_t r;
    tern_rbuf_init(&r, data, len);
    if (len < RECORD_HEADER_LEN)
        return false;
    while (tern_rbuf_left(&r) > 0) {
        if (tern_rbuf_left(&r) < RECORD_HEADER_LEN)
            return false;
        uint8_t type = tern_rbuf_u8(&r);
        tern_rbuf_skip(&r, 2); /* version: OpenSSL drops a wrong one silently */
        uint16_t epoch = tern_rbuf_u16(&r);
        tern_rbuf_skip(&r, 6); /* sequence_number */
        uint16_t length = tern_rbuf_u16(&r);
        if (length > tern_rbuf_left(&r))
            return false;
        if (!record_ok(type, epoch, tern_rbuf_sub(&r, length), aead_min))
            return false;
    }
    return !r.err;
}
