/* SPDX-License-Identifier: MIT */
/*
 * Byte streams for the loop: non-blocking TCP sockets (listen, accept, connect; IPv4 and IPv6)
 * and TLS over them with OpenSSL (server and client), behind one read/write interface, so that
 * the signaling server and client (ws:// and wss://) and TURN over TCP/TLS share them. Nothing
 * here waits: the owner watches the fd with tern_loop_watch_fd for the events that
 * tern_io_stream_events names and calls read or write again when the fd is ready.
 *
 * Scope: no name resolution (addresses are tern_addr_t), TLS 1.2 and 1.3 only, PEM files for
 * certificates and keys, no client certificates, no session resumption.
 */
#ifndef TERN_IO_IO_STREAM_H
#define TERN_IO_IO_STREAM_H

#include "tern/tern.h"
#include "util/ctx.h"

/* ---- TCP sockets (io_tcp.c) ---- */

/*
 * Listen on addr (port 0: ephemeral) with SO_REUSEADDR; a non-blocking, close-on-exec socket.
 * IPv6 sockets are IPv6-only, except on the unspecified address "::", which takes IPv4 too
 * (peers then appear as IPv4 addresses). bound (may be NULL) receives the real address.
 * Returns the fd; TERN_ERR_INVALID_ARG for an unset family; TERN_ERR_IO (errno says why).
 */
int tern_io_tcp_listen(const tern_addr_t *addr, int backlog, tern_addr_t *bound);

/*
 * Accept one connection: a non-blocking, close-on-exec socket with TCP_NODELAY. remote (may be
 * NULL) receives the peer's address. Returns the fd; TERN_ERR_AGAIN when none waits (or it
 * vanished before it was taken: ECONNABORTED); TERN_ERR_IO (errno: EMFILE and the like, which
 * leave the connection queued, so the owner should pause accepting for a while).
 */
int tern_io_tcp_accept(int listen_fd, tern_addr_t *remote);

/*
 * Start connecting to remote, from local if it is set (NULL or unset: any). The connection
 * completes when the fd is writable; tern_io_tcp_connect_result then tells how it went.
 * Returns the fd; TERN_ERR_INVALID_ARG for an unset remote; TERN_ERR_IO (errno says why).
 */
int tern_io_tcp_connect(const tern_addr_t *remote, const tern_addr_t *local);

/* 0 if the connection started by tern_io_tcp_connect is up; TERN_ERR_IO (errno set) if not. */
int tern_io_tcp_connect_result(int fd);

/* The local and remote addresses of a connected socket. 0; TERN_ERR_IO. */
int tern_io_tcp_local_addr(int fd, tern_addr_t *out);
int tern_io_tcp_remote_addr(int fd, tern_addr_t *out);

/* ---- TLS configurations (io_tls.c) ---- */

/* One OpenSSL SSL_CTX: a server's certificate and key, or a client's trust settings. */
typedef struct tern_io_tls tern_io_tls_t;

/*
 * A TLS server configuration from PEM files: cert_file holds the certificate (and its chain),
 * key_file the private key matching it. error (may be NULL, cap bytes) receives a one-line
 * reason on failure. Returns 0; TERN_ERR_CRYPTO (unreadable file, key does not match);
 * TERN_ERR_NOMEM.
 */
int tern_io_tls_server_new(tern_ctx_t *ctx, const char *cert_file, const char *key_file,
                           tern_io_tls_t **out, char *error, size_t cap);

/*
 * A TLS client configuration. ca_file: PEM file of trusted certificates; NULL: the system's.
 * insecure: do not verify the server at all (tests with self-signed certificates).
 * Returns 0; TERN_ERR_CRYPTO; TERN_ERR_NOMEM.
 */
int tern_io_tls_client_new(tern_ctx_t *ctx, const char *ca_file, bool insecure, tern_io_tls_t **out,
                           char *error, size_t cap);

/* Free a configuration; streams made from it keep what they need. NULL is a no-op. */
void tern_io_tls_free(tern_io_tls_t *tls);

/* ---- streams (io_tls.c) ---- */

/* A connected TCP socket, with TLS on it or not. The struct is the owner's to embed. */
typedef struct tern_io_stream {
    int fd;                /* -1 once closed */
    struct ssl_st *ssl;    /* NULL: plain TCP */
    bool read_wants_write; /* TLS: the last read needs the fd writable to go on */
    bool write_wants_read; /* TLS: the last write needs the fd readable to go on */
    bool eof;              /* the peer closed its side (FIN or close_notify) */
    char error[192];       /* why the last TERN_ERR_IO / TERN_ERR_CRYPTO happened, for logs */
} tern_io_stream_t;

/*
 * Take a connected fd (ownership passes to the stream). tls NULL: plain TCP. With tls, the
 * handshake runs inside the first reads and writes, as a server or a client as tls was made;
 * a client sends server_name (may be NULL) as SNI and, unless insecure, checks the
 * certificate names it (without a server_name only the chain is verified). On failure the fd
 * is closed too.
 * Returns 0; TERN_ERR_NOMEM; TERN_ERR_CRYPTO.
 */
int tern_io_stream_init(tern_io_stream_t *s, int fd, tern_io_tls_t *tls, const char *server_name);

/*
 * Read up to cap bytes. Returns how many (> 0); TERN_ERR_AGAIN when nothing is there now (wait
 * for tern_io_stream_events); TERN_ERR_CLOSED at the peer's orderly end; TERN_ERR_IO on a reset
 * or a TLS failure (s->error says which).
 * With TLS, call again while tern_io_stream_has_buffered: the fd does not signal those bytes.
 */
long tern_io_stream_read(tern_io_stream_t *s, void *buf, size_t cap);

/*
 * Write up to len bytes (len > 0). Returns how many were taken (> 0, maybe fewer than len);
 * TERN_ERR_AGAIN when none could be; TERN_ERR_IO (s->error says why). With TLS, after
 * TERN_ERR_AGAIN the next call must offer at least the same bytes again (from any address:
 * moving buffers are allowed), which an output queue that only appends does.
 */
long tern_io_stream_write(tern_io_stream_t *s, const void *buf, size_t len);

/* Bytes TLS has decrypted and not handed out yet (0 for plain TCP). */
bool tern_io_stream_has_buffered(const tern_io_stream_t *s);

/*
 * The fd events to watch: TERN_FD_READABLE always (to see input and the peer's close), and
 * TERN_FD_WRITABLE when has_output or when TLS needs it to go on.
 */
unsigned tern_io_stream_events(const tern_io_stream_t *s, bool has_output);

/*
 * Close: with TLS, try to send a close_notify (without waiting); then close the fd and free
 * the TLS state. The struct may be reused with tern_io_stream_init. Closing twice is a no-op.
 */
void tern_io_stream_close(tern_io_stream_t *s);

#endif
