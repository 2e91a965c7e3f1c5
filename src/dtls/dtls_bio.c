/* SPDX-License-Identifier: MIT */
/*
 * The datagram BIO between OpenSSL and the endpoint, and the retransmission timer callback.
 * A read hands OpenSSL the one datagram being fed (borrowed, never copied by us), whole, as a
 * UDP socket would (RFC 6347 §4.1.1: records never span datagrams, so each datagram is its own
 * read). Each write of OpenSSL is one record: application records become datagrams of their own;
 * handshake records are packed into one datagram up to the MTU, with BIO_CTRL_WPENDING telling
 * OpenSSL how much room is left so it fragments handshake messages to fit, and the datagram goes
 * out on BIO_CTRL_FLUSH (the end of a flight) or at the end of the call. OpenSSL reports arming
 * and stopping its timer through BIO_CTRL_DGRAM_SET_NEXT_TIMEOUT; the timer callback chooses
 * the durations (RFC 6347 §4.2.4.1).
 */
#include "dtls/dtls_internal.h"

#include <string.h>
#include <sys/time.h>

/* RFC 6347 §4.2.4.1: double the timeout on each retransmission, up to at least 60 s. */
#define DTLS_MAX_RTO_US 60000000u

static void queue_datagram(tern_dtls_t *d, const uint8_t *data, size_t len)
{
    static const tern_addr_t none;
    if (tern_txq_push(&d->txq, &none, &none, data, len) != 0) {
        d->stats.transmit_dropped++;
        TERN_LOG_DEBUG(d->ctx, "dtls", "dtls %u transmit queue full, datagram of %zu dropped",
                       d->id, len);
        return;
    }
    d->stats.datagrams_sent++;
}

void tern_dtls_flush(tern_dtls_t *d)
{
    if (d->pack_len == 0)
        return;
    queue_datagram(d, d->pack_buf, d->pack_len);
    d->pack_len = 0;
}

static int bio_write(BIO *b, const char *buf, int len)
{
    tern_dtls_t *d = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!d || len < 0)
        return -1;
    size_t n = (size_t)len;
    if (d->pack && !d->pack_buf)
        d->pack_buf = tern_malloc(d->ctx, d->mtu); /* without it, records go unpacked */
    if (!d->pack || !d->pack_buf || n > d->mtu) {
        tern_dtls_flush(d);
        queue_datagram(d, (const uint8_t *)buf, n);
        return len;
    }
    if (d->pack_len + n > d->mtu)
        tern_dtls_flush(d);
    memcpy(d->pack_buf + d->pack_len, buf, n);
    d->pack_len += n;
    return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
    tern_dtls_t *d = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!d || !d->in || len < 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    /* Like a UDP socket: one datagram per read; what does not fit is cut off. */
    size_t n = d->in_len < (size_t)len ? d->in_len : (size_t)len;
    memcpy(buf, d->in, n);
    d->in = NULL;
    d->in_len = 0;
    return (int)n;
}

static void note_timer(tern_dtls_t *d, const struct timeval *tv)
{
    d->timer_armed = tv && (tv->tv_sec != 0 || tv->tv_usec != 0);
    d->timer_changed = true;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    tern_dtls_t *d = BIO_get_data(b);
    (void)num;
    if (!d)
        return 0;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        tern_dtls_flush(d);
        return 1;
    case BIO_CTRL_WPENDING:
        return (long)d->pack_len;
    case BIO_CTRL_DGRAM_SET_NEXT_TIMEOUT:
        note_timer(d, ptr);
        return 1;
    default:
        /* No MTU query, no peer address, no MTU overhead: the endpoint's MTU is the datagram. */
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    BIO_set_data(b, NULL);
    return 1;
}

/*
 * A fixed type number rather than BIO_get_new_index: that one hands out a process-wide counter
 * that newer OpenSSL releases refuse past 255, and a method is made per context (a server, or a
 * fuzzer, makes thousands). The number only names the BIO for BIO_find_type, which nobody calls
 * on ours; 255 is the last of the range left to applications.
 */
#define DTLS_BIO_TYPE (255 | BIO_TYPE_SOURCE_SINK)

BIO_METHOD *tern_dtls_bio_method_new(void)
{
    BIO_METHOD *m = BIO_meth_new(DTLS_BIO_TYPE, "tern datagram");
    if (!m)
        return NULL;
    if (BIO_meth_set_write(m, bio_write) != 1 || BIO_meth_set_read(m, bio_read) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1 ||
        BIO_meth_set_destroy(m, bio_destroy) != 1) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

BIO *tern_dtls_bio_new(tern_dtls_t *d, BIO_METHOD *method)
{
    BIO *b = BIO_new(method);
    if (b)
        BIO_set_data(b, d);
    return b;
}

unsigned int tern_dtls_timer_cb(SSL *ssl, unsigned int previous_us)
{
    tern_dtls_t *d = SSL_get_app_data(ssl);
    uint64_t next = previous_us == 0 ? d->initial_rto_us : (uint64_t)previous_us * 2;
    if (next > DTLS_MAX_RTO_US)
        next = DTLS_MAX_RTO_US;
    d->timer_duration_us = (uint32_t)next;
    return (unsigned int)next;
}
