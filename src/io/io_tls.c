/* SPDX-License-Identifier: MIT */
/*
 * Streams over TCP, plain or with TLS (OpenSSL), for the loop: server and client
 * configurations from PEM files, and non-blocking read and write that run the handshake
 * implicitly and report what the fd must wait for. The TLS socket I/O goes through a small BIO
 * of our own that sends with MSG_NOSIGNAL, so that writing to a connection the peer reset
 * never raises SIGPIPE in the application (OpenSSL's socket BIO uses write()).
 * Idle connections release their TLS buffers (SSL_MODE_RELEASE_BUFFERS): a server holds
 * thousands of them.
 */
#include "io/io_stream.h"
#include "util/util.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct tern_io_tls {
    tern_ctx_t *ctx;
    SSL_CTX *ssl_ctx;
    bool is_server;
    bool insecure;
};

/* ---- the socket BIO ---- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_fd(BIO *b)
{
    return (int)(intptr_t)BIO_get_data(b);
}

static int bio_write(BIO *b, const char *data, int len)
{
    BIO_clear_retry_flags(b);
    ssize_t n;
    do
        n = send(bio_fd(b), data, (size_t)len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)n;
}

static int bio_read(BIO *b, char *buf, int cap)
{
    BIO_clear_retry_flags(b);
    ssize_t n;
    do
        n = recv(bio_fd(b), buf, (size_t)cap, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* A socket has nothing buffered to flush; every other control is unsupported. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tern tcp");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create)) {
        bio_method = m;
        return;
    }
    BIO_meth_free(m);
}

static BIO *new_socket_bio(int fd)
{
    pthread_once(&bio_once, make_bio_method);
    if (!bio_method)
        return NULL;
    BIO *b = BIO_new(bio_method);
    if (b)
        BIO_set_data(b, (void *)(intptr_t)fd);
    return b;
}

/* ---- configurations ---- */

/* Append src to the NUL-terminated dst, cutting it to fit cap (a log line may be cut short). */
static void append_cut(char *dst, size_t cap, const char *src)
{
    size_t len = strlen(dst);
    while (*src && len + 1 < cap)
        dst[len++] = *src++;
    dst[len] = '\0';
}

/* Put OpenSSL's first queued error (or `what`) into error, for a one-line log. */
static void take_error(char *error, size_t cap, const char *what)
{
    unsigned long e = ERR_get_error();
    if (error && cap) {
        error[0] = '\0';
        append_cut(error, cap, what);
        if (e) {
            char reason[160];
            ERR_error_string_n(e, reason, sizeof reason);
            append_cut(error, cap, ": ");
            append_cut(error, cap, reason);
        }
    }
    ERR_clear_error();
}

static int new_tls(tern_ctx_t *ctx, bool is_server, tern_io_tls_t **out, char *error, size_t cap)
{
    tern_io_tls_t *t = tern_calloc(ctx, 1, sizeof *t);
    if (!t)
        return TERN_ERR_NOMEM;
    t->ctx = ctx;
    t->is_server = is_server;
    t->ssl_ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (!t->ssl_ctx) {
        take_error(error, cap, "cannot make a TLS context");
        tern_free(ctx, t);
        return TERN_ERR_CRYPTO;
    }
    SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_2_VERSION);
    /* Partial and moving writes: the caller's output queue offers its head again, maybe
     * longer and elsewhere in memory, after a short write (see tern_io_stream_write). */
    SSL_CTX_set_mode(t->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                     SSL_MODE_RELEASE_BUFFERS);
    /* A peer that closes TCP without close_notify simply ended: WebSocket and TURN frame their
     * own messages, so a truncation is seen there. No renegotiation (a CPU-cost lever). */
    SSL_CTX_set_options(t->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    *out = t;
    return TERN_OK;
}

int tern_io_tls_server_new(tern_ctx_t *ctx, const char *cert_file, const char *key_file,
                           tern_io_tls_t **out, char *error, size_t cap)
{
    *out = NULL;
    if (!ctx || !cert_file || !key_file)
        return TERN_ERR_INVALID_ARG;
    ERR_clear_error();
    tern_io_tls_t *t;
    int rc = new_tls(ctx, true, &t, error, cap);
    if (rc != TERN_OK)
        return rc;
    const char *what = NULL;
    if (SSL_CTX_use_certificate_chain_file(t->ssl_ctx, cert_file) != 1)
        what = "cannot load the certificate";
    else if (SSL_CTX_use_PrivateKey_file(t->ssl_ctx, key_file, SSL_FILETYPE_PEM) != 1)
        what = "cannot load the private key";
    else if (SSL_CTX_check_private_key(t->ssl_ctx) != 1)
        what = "the private key does not match the certificate";
    if (what) {
        take_error(error, cap, what);
        tern_io_tls_free(t);
        return TERN_ERR_CRYPTO;
    }
    *out = t;
    return TERN_OK;
}

int tern_io_tls_client_new(tern_ctx_t *ctx, const char *ca_file, bool insecure, tern_io_tls_t **out,
                           char *error, size_t cap)
{
    *out = NULL;
    if (!ctx)
        return TERN_ERR_INVALID_ARG;
    ERR_clear_error();
    tern_io_tls_t *t;
    int rc = new_tls(ctx, false, &t, error, cap);
    if (rc != TERN_OK)
        return rc;
    t->insecure = insecure;
    if (!insecure) {
        SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_PEER, NULL);
        int ok = ca_file ? SSL_CTX_load_verify_locations(t->ssl_ctx, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(t->ssl_ctx);
        if (ok != 1) {
            take_error(error, cap, "cannot load the trusted certificates");
            tern_io_tls_free(t);
            return TERN_ERR_CRYPTO;
        }
    }
    *out = t;
    return TERN_OK;
}

void tern_io_tls_free(tern_io_tls_t *tls)
{
    if (!tls)
        return;
    /* Streams hold their own reference to the SSL_CTX (SSL_new counts it). */
    SSL_CTX_free(tls->ssl_ctx);
    tern_free(tls->ctx, tls);
}

/* ---- streams ---- */

static int setup_ssl(tern_io_stream_t *s, tern_io_tls_t *tls, const char *server_name)
{
    SSL *ssl = SSL_new(tls->ssl_ctx);
    BIO *bio = ssl ? new_socket_bio(s->fd) : NULL;
    if (!bio) {
        SSL_free(ssl);
        return TERN_ERR_NOMEM;
    }
    SSL_set_bio(ssl, bio, bio);
    s->ssl = ssl;
    if (tls->is_server) {
        SSL_set_accept_state(ssl);
        return TERN_OK;
    }
    SSL_set_connect_state(ssl);
    if (server_name && SSL_set_tlsext_host_name(ssl, server_name) != 1)
        return TERN_ERR_CRYPTO;
    if (server_name && !tls->insecure && SSL_set1_host(ssl, server_name) != 1)
        return TERN_ERR_CRYPTO;
    return TERN_OK;
}

int tern_io_stream_init(tern_io_stream_t *s, int fd, tern_io_tls_t *tls, const char *server_name)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    if (!tls)
        return TERN_OK;
    ERR_clear_error();
    int rc = setup_ssl(s, tls, server_name);
    if (rc != TERN_OK) {
        take_error(s->error, sizeof s->error, "cannot set up TLS");
        SSL_free(s->ssl);
        s->ssl = NULL;
        close(s->fd);
        s->fd = -1;
    }
    return rc;
}

static long plain_result(tern_io_stream_t *s, ssize_t n, const char *what)
{
    if (n >= 0)
        return (long)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return TERN_ERR_AGAIN;
    snprintf(s->error, sizeof s->error, "%s: %s", what, strerror(errno));
    return TERN_ERR_IO;
}

/* OpenSSL's queued error says only "certificate verify failed": add why (expired, self-signed,
 * the name does not match). */
static void add_verify_reason(tern_io_stream_t *s)
{
    long v = SSL_get_verify_result(s->ssl);
    if (v == X509_V_OK)
        return;
    append_cut(s->error, sizeof s->error, " (");
    append_cut(s->error, sizeof s->error, X509_verify_cert_error_string(v));
    append_cut(s->error, sizeof s->error, ")");
}

/* Map an SSL_read/SSL_write failure; sets the want flags. */
static long tls_failure(tern_io_stream_t *s, int ret, bool reading)
{
    int err = SSL_get_error(s->ssl, ret);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        if (!reading)
            s->write_wants_read = true;
        return TERN_ERR_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        if (reading)
            s->read_wants_write = true;
        return TERN_ERR_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        s->eof = true;
        return TERN_ERR_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            /* errno 0 here is an EOF OpenSSL did not classify (it ignores unexpected EOF). */
            if (errno == 0) {
                s->eof = true;
                return TERN_ERR_CLOSED;
            }
            snprintf(s->error, sizeof s->error, "TLS %s: %s", reading ? "read" : "write",
                     strerror(errno));
            return TERN_ERR_IO;
        }
        take_error(s->error, sizeof s->error, reading ? "TLS read" : "TLS write");
        add_verify_reason(s);
        return TERN_ERR_IO;
    default:
        take_error(s->error, sizeof s->error, reading ? "TLS read" : "TLS write");
        add_verify_reason(s);
        return TERN_ERR_IO;
    }
}

long tern_io_stream_read(tern_io_stream_t *s, void *buf, size_t cap)
{
    if (s->fd < 0)
        return TERN_ERR_CLOSED;
    if (cap == 0)
        return TERN_ERR_INVALID_ARG;
    if (!s->ssl) {
        ssize_t n;
        do
            n = recv(s->fd, buf, cap, 0);
        while (n < 0 && errno == EINTR);
        if (n == 0) {
            s->eof = true;
            return TERN_ERR_CLOSED;
        }
        return plain_result(s, n, "read");
    }
    s->read_wants_write = false;
    ERR_clear_error();
    errno = 0;
    size_t got = 0;
    if (SSL_read_ex(s->ssl, buf, cap, &got) == 1)
        return (long)got;
    return tls_failure(s, 0, true);
}

long tern_io_stream_write(tern_io_stream_t *s, const void *buf, size_t len)
{
    if (s->fd < 0)
        return TERN_ERR_CLOSED;
    if (len == 0)
        return TERN_ERR_INVALID_ARG;
    if (!s->ssl) {
        ssize_t n;
        do
            n = send(s->fd, buf, len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n == 0 ? TERN_ERR_AGAIN : plain_result(s, n, "write");
    }
    s->write_wants_read = false;
    ERR_clear_error();
    errno = 0;
    size_t put = 0;
    if (SSL_write_ex(s->ssl, buf, len, &put) == 1)
        return (long)put;
    long rc = tls_failure(s, 0, false);
    /* A write cannot meet an orderly end: the peer closed while we still talk. */
    if (rc == TERN_ERR_CLOSED) {
        snprintf(s->error, sizeof s->error, "TLS write: peer closed");
        rc = TERN_ERR_IO;
    }
    return rc;
}

bool tern_io_stream_has_buffered(const tern_io_stream_t *s)
{
    return s->ssl && SSL_pending(s->ssl) > 0;
}

unsigned tern_io_stream_events(const tern_io_stream_t *s, bool has_output)
{
    unsigned ev = TERN_FD_READABLE;
    if (has_output || s->read_wants_write)
        ev |= TERN_FD_WRITABLE;
    return ev;
}

void tern_io_stream_close(tern_io_stream_t *s)
{
    if (s->ssl) {
        /* Only after a finished handshake: a close_notify mid-handshake just adds noise. */
        if (SSL_is_init_finished(s->ssl)) {
            ERR_clear_error();
            (void)SSL_shutdown(s->ssl);
        }
        ERR_clear_error();
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}
