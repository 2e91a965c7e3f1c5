/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of the loop's fd and stream support, on real sockets over loopback: fd
 * watches on pipes (readiness, changing events, unwatching itself and another watch from a
 * callback in the same iteration, watches left at tern_loop_free, bad arguments), TCP listen,
 * connect and accept over IPv4, IPv6 and a dual-stack "::" listener, a refused connect, and
 * streams moving a megabyte each way through the loop, plain and over TLS with a self-signed
 * certificate made here (verified by name, refused by the wrong name, insecure mode), with the
 * peer's orderly close seen as TERN_ERR_CLOSED.
 */
#include "check.h"
#include "io/io.h"
#include "io/io_loop.h"
#include "io/io_stream.h"
#include "util/util.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIVE_UP_MS 20000

static tern_ctx_t *new_ctx(void)
{
    tern_ctx_t *ctx = NULL;
    tern_ctx_config_t cfg = {.log_level = TERN_LOG_WARN};
    tern_ctx_new(&cfg, &ctx);
    return ctx;
}

static bool run_until(tern_loop_t *loop, const bool *flag)
{
    tern_time_t give_up = tern_loop_now(loop) + TERN_MS(GIVE_UP_MS);
    while (!*flag && tern_loop_now(loop) < give_up)
        tern_loop_run_once(loop, 10);
    return *flag;
}

/* ------------------------------------------------------------------------------------------ */
/* A self-signed certificate for "localhost" in two temporary PEM files                       */
/* ------------------------------------------------------------------------------------------ */

static char cert_path[64], key_path[64];

static bool write_pem(char *path, bool is_cert, X509 *x, EVP_PKEY *k)
{
    strcpy(path, "/tmp/tern-test-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return false;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return false;
    }
    int ok = is_cert ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    return ok == 1;
}

static bool make_cert(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    bool good = k && x;
    if (good) {
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_NAME *name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                                   -1, 0);
        X509_set_issuer_name(x, name);
        X509_set_pubkey(x, k);
        X509_EXTENSION *ext =
            X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        good = ext && X509_add_ext(x, ext, -1) == 1;
        X509_EXTENSION_free(ext);
        good = good && X509_sign(x, k, EVP_sha256()) > 0;
        good = good && write_pem(cert_path, true, x, k) && write_pem(key_path, false, x, k);
    }
    X509_free(x);
    EVP_PKEY_free(k);
    return good;
}

/* ------------------------------------------------------------------------------------------ */
/* fd watches                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct pipe_watch {
    tern_loop_t *loop;
    tern_fd_watch_t *w;
    tern_fd_watch_t *victim; /* unwatched from this watch's callback */
    int calls;
    unsigned last_events;
    bool unwatch_self;
} pipe_watch_t;

static void on_pipe(void *arg, int fd, unsigned events)
{
    pipe_watch_t *p = arg;
    (void)fd;
    p->calls++;
    p->last_events = events;
    if (p->unwatch_self) {
        tern_loop_unwatch_fd(p->loop, p->w);
        p->w = NULL;
    }
    if (p->victim) {
        tern_loop_unwatch_fd(p->loop, p->victim);
        p->victim = NULL;
    }
}

static void make_pipe(int fds[2])
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        fds[0] = fds[1] = -1;
}

static void test_fd_watch(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop = NULL;
    eq_int(tern_loop_new(ctx, &loop), TERN_OK);
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);

    /* Readable once written; level-triggered until read. */
    pipe_watch_t pa = {.loop = loop};
    eq_int(tern_loop_watch_fd(loop, a[0], TERN_FD_READABLE, on_pipe, &pa, &pa.w), TERN_OK);
    tern_loop_run_once(loop, 0);
    eq_int(pa.calls, 0);
    ok(write(a[1], "x", 1) == 1);
    tern_loop_run_once(loop, 1000);
    eq_int(pa.calls, 1);
    eq_int(pa.last_events, TERN_FD_READABLE);
    tern_loop_run_once(loop, 1000);
    eq_int(pa.calls, 2);
    char c;
    ok(read(a[0], &c, 1) == 1);
    tern_loop_run_once(loop, 0);
    eq_int(pa.calls, 2);

    /* Paused (0), then writable on the write end. */
    eq_int(tern_loop_update_fd(loop, pa.w, 0), TERN_OK);
    ok(write(a[1], "x", 1) == 1);
    tern_loop_run_once(loop, 0);
    eq_int(pa.calls, 2);
    pipe_watch_t pw = {.loop = loop};
    eq_int(tern_loop_watch_fd(loop, a[1], TERN_FD_WRITABLE, on_pipe, &pw, &pw.w), TERN_OK);
    tern_loop_run_once(loop, 1000);
    eq_int(pw.calls, 1);
    eq_int(pw.last_events, TERN_FD_WRITABLE);
    eq_int(tern_loop_update_fd(loop, pw.w, TERN_FD_READABLE | TERN_FD_WRITABLE | 8),
           TERN_ERR_INVALID_ARG);

    /* The same fd twice, bad arguments, a regular file. */
    tern_fd_watch_t *dup = NULL;
    eq_int(tern_loop_watch_fd(loop, a[0], TERN_FD_READABLE, on_pipe, &pa, &dup), TERN_ERR_IO);
    ok(dup == NULL);
    eq_int(tern_loop_watch_fd(loop, -1, TERN_FD_READABLE, on_pipe, &pa, NULL),
           TERN_ERR_INVALID_ARG);
    eq_int(tern_loop_watch_fd(loop, a[0], 16, on_pipe, &pa, NULL), TERN_ERR_INVALID_ARG);
    eq_int(tern_loop_watch_fd(loop, a[0], TERN_FD_READABLE, NULL, &pa, NULL), TERN_ERR_INVALID_ARG);
    char path[] = "/tmp/tern-test-XXXXXX";
    int file = mkstemp(path);
    eq_int(tern_loop_watch_fd(loop, file, TERN_FD_READABLE, on_pipe, &pa, NULL), TERN_ERR_IO);
    close(file);
    unlink(path);
    tern_loop_unwatch_fd(loop, pw.w);
    tern_loop_unwatch_fd(loop, NULL);

    /* Two watches ready in the same iteration: each unwatches itself, and the first also the
     * other; whichever runs first, the other is never called after its removal. */
    eq_int(tern_loop_update_fd(loop, pa.w, TERN_FD_READABLE), TERN_OK);
    ok(write(b[1], "y", 1) == 1);
    pipe_watch_t pb = {.loop = loop};
    eq_int(tern_loop_watch_fd(loop, b[0], TERN_FD_READABLE, on_pipe, &pb, &pb.w), TERN_OK);
    pa.unwatch_self = pb.unwatch_self = true;
    pa.victim = pb.w;
    pb.victim = pa.w;
    pa.calls = pb.calls = 0;
    tern_loop_run_once(loop, 1000);
    eq_int(pa.calls + pb.calls, 1);
    tern_loop_run_once(loop, 0);
    eq_int(pa.calls + pb.calls, 1);

    /* A hang-up: the read end reports an error (and readable) when the write end closes. */
    int h[2];
    make_pipe(h);
    pipe_watch_t ph = {.loop = loop};
    eq_int(tern_loop_watch_fd(loop, h[0], TERN_FD_READABLE, on_pipe, &ph, &ph.w), TERN_OK);
    close(h[1]);
    tern_loop_run_once(loop, 1000);
    eq_int(ph.calls, 1);
    eq_int(ph.last_events, TERN_FD_READABLE | TERN_FD_ERROR);

    /* A watch still there at tern_loop_free is freed; its fd stays open. */
    tern_loop_free(loop);
    ok(fcntl(h[0], F_GETFD) >= 0);
    close(h[0]);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
    tern_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* TCP and TLS streams through the loop                                                       */
/* ------------------------------------------------------------------------------------------ */

#define BULK_BYTES (1024 * 1024)

/* One end of a connection: sends `bulk` bytes of a pattern, reads and checks the other's. */
typedef struct end {
    tern_loop_t *loop;
    tern_io_stream_t s;
    tern_fd_watch_t *w;
    size_t sent, received;
    bool closed_by_peer, failed, done_sending, shut;
    long last_error;
    char error[96];
} end_t;

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7 + (i >> 11));
}

static void end_refresh(end_t *e)
{
    if (e->w)
        tern_loop_update_fd(e->loop, e->w, tern_io_stream_events(&e->s, !e->done_sending));
}

static void end_stop(end_t *e, bool failed, long err)
{
    e->failed = failed;
    e->last_error = err;
    memcpy(e->error, e->s.error, sizeof e->error);
    tern_loop_unwatch_fd(e->loop, e->w);
    e->w = NULL;
}

static void end_write(end_t *e)
{
    uint8_t buf[16384];
    while (!e->done_sending) {
        size_t n = TERN_MIN(sizeof buf, (size_t)BULK_BYTES - e->sent);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(e->sent + i);
        long rc = tern_io_stream_write(&e->s, buf, n);
        if (rc == TERN_ERR_AGAIN)
            return;
        if (rc < 0) {
            end_stop(e, true, rc);
            return;
        }
        e->sent += (size_t)rc;
        e->done_sending = e->sent == BULK_BYTES;
    }
}

static void end_read(end_t *e)
{
    uint8_t buf[4096];
    for (;;) {
        long rc = tern_io_stream_read(&e->s, buf, sizeof buf);
        if (rc == TERN_ERR_AGAIN)
            return;
        if (rc < 0) {
            e->closed_by_peer = rc == TERN_ERR_CLOSED;
            end_stop(e, rc != TERN_ERR_CLOSED, rc);
            return;
        }
        for (long i = 0; i < rc; i++)
            if (buf[i] != pattern(e->received + (size_t)i))
                e->failed = true;
        e->received += (size_t)rc;
    }
}

static void on_end(void *arg, int fd, unsigned events)
{
    end_t *e = arg;
    (void)fd;
    (void)events;
    end_write(e);
    if (e->w)
        end_read(e);
    end_refresh(e);
}

static bool end_start(end_t *e, tern_loop_t *loop, int fd, tern_io_tls_t *tls, const char *name)
{
    memset(e, 0, sizeof *e);
    e->loop = loop;
    if (tern_io_stream_init(&e->s, fd, tls, name) != TERN_OK)
        return false;
    return tern_loop_watch_fd(loop, fd, TERN_FD_READABLE | TERN_FD_WRITABLE, on_end, e, &e->w) ==
           TERN_OK;
}

static bool both_received(end_t *a, end_t *b)
{
    return a->received == BULK_BYTES && b->received == BULK_BYTES;
}

/* Connect to a listener at addr, accept, move BULK_BYTES each way, close one side. */
static void exchange(tern_loop_t *loop, const tern_addr_t *addr, tern_io_tls_t *server_tls,
                     tern_io_tls_t *client_tls, const char *name, bool expect_ok)
{
    tern_addr_t bound;
    int lfd = tern_io_tcp_listen(addr, 16, &bound);
    ok(lfd >= 0);
    if (lfd < 0)
        return;
    ok(bound.port != 0);
    int cfd = tern_io_tcp_connect(&bound, NULL);
    ok(cfd >= 0);
    int sfd = TERN_ERR_AGAIN;
    tern_time_t give_up = tern_loop_now(loop) + TERN_MS(GIVE_UP_MS);
    tern_addr_t remote;
    while (sfd == TERN_ERR_AGAIN && tern_loop_now(loop) < give_up) {
        sfd = tern_io_tcp_accept(lfd, &remote);
        if (sfd == TERN_ERR_AGAIN)
            usleep(1000);
    }
    ok(sfd >= 0);
    eq_int(remote.family, bound.family);
    eq_int(tern_io_tcp_connect_result(cfd), TERN_OK);
    tern_addr_t local;
    eq_int(tern_io_tcp_local_addr(cfd, &local), TERN_OK);
    eq_int(local.port, remote.port);

    static end_t client, server;
    ok(end_start(&server, loop, sfd, server_tls, NULL));
    ok(end_start(&client, loop, cfd, client_tls, name));
    bool done = false;
    while (!done && tern_loop_now(loop) < give_up) {
        tern_loop_run_once(loop, 10);
        done = both_received(&client, &server) || client.failed || server.failed ||
               (!client.w && !server.w);
    }
    if (expect_ok) {
        ok(both_received(&client, &server));
        ok(!client.failed && !server.failed);
        if (client.failed || server.failed)
            printf("# client: %s / server: %s\n", client.error, server.error);
        /* An orderly close by the client is seen by the server as TERN_ERR_CLOSED. */
        tern_loop_unwatch_fd(loop, client.w);
        client.w = NULL;
        tern_io_stream_close(&client.s);
        run_until(loop, &server.closed_by_peer);
        ok(server.closed_by_peer);
        ok(!server.failed);
    } else {
        ok(client.failed);
        ok(client.received == 0);
        ok(strlen(client.error) > 0);
        tern_loop_unwatch_fd(loop, client.w);
        client.w = NULL;
        tern_io_stream_close(&client.s);
    }
    tern_loop_unwatch_fd(loop, server.w);
    server.w = NULL;
    tern_io_stream_close(&server.s);
    tern_io_stream_close(&client.s); /* twice: a no-op */
    close(lfd);
}

static bool has_ipv6_loopback(void)
{
    tern_addr_t a;
    tern_addr_parse("[::1]:0", &a);
    int fd = tern_io_tcp_listen(&a, 1, NULL);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static void test_tcp(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop = NULL;
    tern_loop_new(ctx, &loop);
    tern_addr_t v4, v6, any6;
    tern_addr_parse("127.0.0.1:0", &v4);
    tern_addr_parse("[::1]:0", &v6);
    tern_addr_parse("[::]:0", &any6);

    subtest_call("tcp ipv4", exchange(loop, &v4, NULL, NULL, NULL, true));
    if (has_ipv6_loopback()) {
        subtest_call("tcp ipv6", exchange(loop, &v6, NULL, NULL, NULL, true));
        /* A dual-stack listener on "::" takes an IPv4 connection, seen as IPv4. */
        tern_addr_t bound;
        int lfd = tern_io_tcp_listen(&any6, 4, &bound);
        ok(lfd >= 0);
        tern_addr_t to = v4;
        to.port = bound.port;
        int cfd = tern_io_tcp_connect(&to, NULL);
        ok(cfd >= 0);
        tern_addr_t remote = {0};
        int sfd = TERN_ERR_AGAIN;
        for (int i = 0; i < 2000 && sfd == TERN_ERR_AGAIN; i++) {
            sfd = tern_io_tcp_accept(lfd, &remote);
            if (sfd == TERN_ERR_AGAIN)
                usleep(1000);
        }
        ok(sfd >= 0);
        eq_int(remote.family, TERN_AF_INET);
        close(sfd);
        close(cfd);
        close(lfd);
    } else {
        printf("# no IPv6 loopback: IPv6 cases skipped\n");
    }

    /* Nothing listens: the connect fails, and says so once writable. */
    tern_addr_t bound;
    int lfd = tern_io_tcp_listen(&v4, 1, &bound);
    close(lfd);
    int cfd = tern_io_tcp_connect(&bound, NULL);
    ok(cfd >= 0);
    int rc = TERN_OK;
    for (int i = 0; i < 2000; i++) {
        rc = tern_io_tcp_connect_result(cfd);
        if (rc != TERN_OK && errno != ENOTCONN)
            break;
        usleep(1000);
    }
    eq_int(rc, TERN_ERR_IO);
    eq_int(errno, ECONNREFUSED);
    close(cfd);
    eq_int(tern_io_tcp_accept(-1, NULL), TERN_ERR_IO);
    tern_addr_t unset = {0};
    eq_int(tern_io_tcp_listen(&unset, 1, NULL), TERN_ERR_INVALID_ARG);
    eq_int(tern_io_tcp_connect(&unset, NULL), TERN_ERR_INVALID_ARG);

    tern_loop_free(loop);
    tern_ctx_free(ctx);
}

static void test_tls(void)
{
    tern_ctx_t *ctx = new_ctx();
    tern_loop_t *loop = NULL;
    tern_loop_new(ctx, &loop);
    tern_addr_t v4;
    tern_addr_parse("127.0.0.1:0", &v4);
    ok(make_cert());
    char err[256] = "";
    tern_io_tls_t *server = NULL, *verifying = NULL, *insecure = NULL, *bad = NULL;
    eq_int(tern_io_tls_server_new(ctx, cert_path, key_path, &server, err, sizeof err), TERN_OK);
    eq_int(tern_io_tls_client_new(ctx, cert_path, false, &verifying, err, sizeof err), TERN_OK);
    eq_int(tern_io_tls_client_new(ctx, NULL, true, &insecure, err, sizeof err), TERN_OK);

    subtest_call("tls verified", exchange(loop, &v4, server, verifying, "localhost", true));
    subtest_call("tls insecure", exchange(loop, &v4, server, insecure, NULL, true));
    subtest_call("tls wrong name", exchange(loop, &v4, server, verifying, "example.org", false));

    /* The key swapped for the certificate, a missing file: refused with a reason. */
    err[0] = 0;
    eq_int(tern_io_tls_server_new(ctx, cert_path, cert_path, &bad, err, sizeof err),
           TERN_ERR_CRYPTO);
    ok(bad == NULL);
    ok(strstr(err, "private key") != NULL);
    eq_int(tern_io_tls_server_new(ctx, "/nonexistent", key_path, &bad, err, sizeof err),
           TERN_ERR_CRYPTO);
    ok(strstr(err, "certificate") != NULL);
    eq_int(tern_io_tls_client_new(ctx, "/nonexistent", false, &bad, err, sizeof err),
           TERN_ERR_CRYPTO);

    /* Configurations may be freed while their streams live on. */
    tern_io_tls_free(server);
    tern_io_tls_free(verifying);
    tern_io_tls_free(insecure);
    tern_io_tls_free(NULL);
    unlink(cert_path);
    unlink(key_path);
    tern_loop_free(loop);
    tern_ctx_free(ctx);
}

int main(void)
{
    subtest("fd watch", test_fd_watch);
    test_tcp();
    test_tls();
    return check_done();
}
