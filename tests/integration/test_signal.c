/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of tern-signal, the real program on loopback, driven through the signaling
 * protocol (signaling-protocol.md) by WebSocket clients written here on the sans-IO src/ws/
 * endpoint: welcome with peers and iceServers, join and leave (close, lost connection),
 * relay to one peer and to the room with "from" set and "to" removed, every error code and
 * limit (bad-json, unknown-peer, too-large with 1009, rate-limited, room-full with 1008),
 * binary frames (1003) and protocol violations (1002), the upgrade and ping timeouts (made
 * short by options), a slow reader dropped while its room goes on, /healthz, static files
 * (content types, HEAD, 405, traversal and links refused), 400 for bad room names, wss:// and
 * https:// with a self-signed certificate made here, the STUN responder, and a clean exit on
 * SIGTERM. With --valgrind PATH every server runs under valgrind, which must find no error and
 * no leak (exit status 0).
 */
#include "check.h"
#include "io/io.h"
#include "io/io_stream.h"
#include "stun/stun.h"
#include "util/util.h"
#include "ws/ws.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TERN_SIGNAL_BIN
int main(void)
{
    printf("1..0 # SKIP tern-signal is not built (TERN_BUILD_SIGNALING=OFF)\n");
    return 0;
}
#else

/* Generous: only says when to give up. */
#define GIVE_UP_MS 10000

static const char *valgrind; /* --valgrind PATH */
static int child_fd_limit;   /* > 0: RLIMIT_NOFILE of the next server */
static tern_ctx_t *ctx;

static int64_t now_ms(void)
{
    return tern_io_clock_now() / 1000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* The server process                                                                         */
/* ------------------------------------------------------------------------------------------ */

typedef struct server {
    pid_t pid;
    int out; /* its stdout */
    tern_addr_t tcp;
    tern_addr_t stun;
    bool tls;
} server_t;

/* Read the start line: "tern-signal: ws://ADDR/ws/ROOM http://ADDR/ stun:ADDR". */
static bool read_start_line(server_t *s)
{
    char line[512];
    size_t n = 0;
    int64_t give_up = now_ms() + (valgrind ? 60000 : GIVE_UP_MS);
    while (n + 1 < sizeof line && now_ms() < give_up) {
        struct pollfd p = {.fd = s->out, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(s->out, line + n, 1);
        if (r <= 0)
            return false;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    const char *ws = strstr(line, "://");
    const char *stun = strstr(line, "stun:");
    if (!ws || !stun)
        return false;
    char addr[128];
    size_t len = strcspn(ws + 3, "/");
    if (len >= sizeof addr)
        return false;
    memcpy(addr, ws + 3, len);
    addr[len] = '\0';
    if (tern_addr_parse(addr, &s->tcp) != TERN_OK)
        return false;
    memset(&s->stun, 0, sizeof s->stun);
    if (strncmp(stun + 5, "off", 3) != 0)
        tern_addr_parse(stun + 5, &s->stun);
    return true;
}

/* Start tern-signal on 127.0.0.1 with ephemeral ports and the given extra options. */
static bool server_start(server_t *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    const char *argv[64];
    int n = 0;
    if (valgrind) {
        argv[n++] = valgrind;
        argv[n++] = "-q";
        argv[n++] = "--error-exitcode=9";
        argv[n++] = "--leak-check=full";
        argv[n++] = "--errors-for-leak-kinds=definite,indirect";
    }
    argv[n++] = TERN_SIGNAL_BIN;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--stun-port";
    argv[n++] = "0";
    argv[n++] = "--log";
    argv[n++] = getenv("TERN_LOG") ? getenv("TERN_LOG") : "warn";
    for (int i = 0; extra && extra[i] && n < 62; i++) {
        argv[n++] = extra[i];
        if (strcmp(extra[i], "--tls-cert") == 0)
            s->tls = true;
    }
    argv[n] = NULL;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return false;
    s->pid = fork();
    if (s->pid == 0) {
        dup2(pipefd[1], 1);
        if (child_fd_limit > 0) {
            struct rlimit rl = {(rlim_t)child_fd_limit, (rlim_t)child_fd_limit};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    s->out = pipefd[0];
    if (s->pid < 0 || !read_start_line(s)) {
        printf("# the server did not start\n");
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
        }
        close(s->out);
        s->pid = 0;
        return false;
    }
    return true;
}

/* SIGTERM and wait; returns the exit status (-1: it had to be killed or died of a signal). */
static int server_stop(server_t *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int status = 0;
    int64_t give_up = now_ms() + (valgrind ? 60000 : GIVE_UP_MS);
    pid_t r = 0;
    while ((r = waitpid(s->pid, &status, WNOHANG)) == 0 && now_ms() < give_up)
        sleep_ms(10);
    if (r == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        status = -1;
    }
    close(s->out);
    s->pid = 0;
    if (status == -1 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* ------------------------------------------------------------------------------------------ */
/* A self-signed certificate for "localhost"                                                  */
/* ------------------------------------------------------------------------------------------ */

static char cert_path[64], key_path[64];

static bool write_pem(char *path, bool is_cert, X509 *x, EVP_PKEY *k)
{
    strcpy(path, "/tmp/tern-signal-XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return false;
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
/* Streams with a deadline (poll on a non-blocking socket)                                    */
/* ------------------------------------------------------------------------------------------ */

static tern_io_tls_t *client_tls;

static bool wait_fd(int fd, short events, int64_t until)
{
    struct pollfd p = {.fd = fd, .events = events};
    int64_t left = until - now_ms();
    return left > 0 && poll(&p, 1, (int)TERN_MIN(left, 100)) > 0;
}

/* Connect a stream (TLS to "localhost" if the server has a certificate). */
static bool stream_open(tern_io_stream_t *st, const server_t *s)
{
    int fd = tern_io_tcp_connect(&s->tcp, NULL);
    if (fd < 0)
        return false;
    int64_t until = now_ms() + GIVE_UP_MS;
    while (!wait_fd(fd, POLLOUT, until))
        if (now_ms() >= until) {
            close(fd);
            return false;
        }
    if (tern_io_tcp_connect_result(fd) != TERN_OK) {
        close(fd);
        return false;
    }
    return tern_io_stream_init(st, fd, s->tls ? client_tls : NULL, "localhost") == TERN_OK;
}

/* Write all of it, waiting as needed. */
static bool stream_write_all(tern_io_stream_t *st, const void *data, size_t len)
{
    const uint8_t *p = data;
    int64_t until = now_ms() + GIVE_UP_MS;
    while (len > 0) {
        long n = tern_io_stream_write(st, p, len);
        if (n == TERN_ERR_AGAIN) {
            if (now_ms() >= until)
                return false;
            wait_fd(st->fd, st->write_wants_read ? POLLIN : POLLOUT, until);
            continue;
        }
        if (n < 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Read what comes until EOF or the deadline into buf; returns the length. */
static size_t stream_read_until_eof(tern_io_stream_t *st, char *buf, size_t cap, bool *eof,
                                    int64_t until)
{
    size_t n = 0;
    *eof = false;
    while (now_ms() < until && n + 1 < cap) {
        long r = tern_io_stream_read(st, buf + n, cap - 1 - n);
        if (r == TERN_ERR_AGAIN) {
            wait_fd(st->fd, st->read_wants_write ? POLLOUT : POLLIN, until);
            continue;
        }
        if (r < 0) {
            *eof = true;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* WebSocket clients                                                                          */
/* ------------------------------------------------------------------------------------------ */

#define INBOX 4096

typedef struct client {
    tern_io_stream_t st;
    tern_ws_t *ws;
    bool open;
    bool closed;
    bool eof;
    uint16_t close_code; /* the server's close code; 1006 if none came */
    bool deaf;           /* do not read: a slow or silent client */
    json_t *inbox[INBOX];
    size_t head, count;
    char id[64];
} client_t;

static tern_time_t now_us(void)
{
    return tern_io_clock_now();
}

static void client_drain(client_t *c)
{
    tern_ws_event_t ev;
    while (tern_ws_poll_event(c->ws, &ev)) {
        if (ev.type == TERN_WS_EV_OPEN) {
            c->open = true;
        } else if (ev.type == TERN_WS_EV_MESSAGE) {
            json_t *j = json_loadb((const char *)ev.u.message.data, ev.u.message.len, 0, NULL);
            if (!j)
                j = json_string("(not json)");
            if (c->count < INBOX)
                c->inbox[(c->head + c->count++) % INBOX] = j;
            else
                json_decref(j);
        } else if (ev.type == TERN_WS_EV_CLOSE) {
            c->closed = true;
            c->close_code = ev.u.close.code;
        }
    }
    const uint8_t *data;
    size_t len;
    while (tern_ws_poll_output(c->ws, &data, &len)) {
        long n = tern_io_stream_write(&c->st, data, len);
        if (n <= 0)
            break;
        tern_ws_consume_output(c->ws, (size_t)n);
    }
}

/* One round: read what is there (waiting up to wait_ms), feed it, drain. */
static void client_pump(client_t *c, int wait_ms)
{
    if (c->eof) {
        if (wait_ms > 0)
            sleep_ms(wait_ms);
        return;
    }
    tern_ws_handle_timeout(c->ws, now_us());
    client_drain(c);
    bool out = tern_ws_buffered_amount(c->ws) > 0;
    struct pollfd p = {.fd = c->st.fd, .events = (short)(POLLIN | (out ? POLLOUT : 0))};
    if (c->deaf) {
        if (wait_ms > 0)
            sleep_ms(wait_ms);
        return;
    }
    if (!tern_io_stream_has_buffered(&c->st))
        poll(&p, 1, wait_ms);
    uint8_t buf[65536];
    for (;;) {
        long n = tern_io_stream_read(&c->st, buf, sizeof buf);
        if (n == TERN_ERR_AGAIN)
            break;
        if (n < 0) {
            c->eof = true;
            tern_ws_handle_eof(c->ws, now_us());
            break;
        }
        tern_ws_handle_input(c->ws, now_us(), buf, (size_t)n);
        client_drain(c);
    }
    client_drain(c);
}

static client_t *client_new(const server_t *s, const char *target)
{
    client_t *c = calloc(1, sizeof *c);
    char host[TERN_ADDR_STRLEN];
    tern_addr_format(&s->tcp, host, sizeof host);
    tern_ws_config_t cfg = {.role = TERN_WS_ROLE_CLIENT,
                            .host = host,
                            .target = target,
                            .max_message_bytes = 1 << 20,
                            .max_output_bytes = 64 << 20};
    if (!stream_open(&c->st, s) || tern_ws_new(ctx, &cfg, now_us(), &c->ws) != TERN_OK) {
        free(c);
        return NULL;
    }
    c->close_code = TERN_WS_CLOSE_ABNORMAL;
    client_drain(c);
    return c;
}

static void client_free(client_t *c)
{
    if (!c)
        return;
    while (c->count) {
        json_decref(c->inbox[c->head]);
        c->head = (c->head + 1) % INBOX;
        c->count--;
    }
    tern_ws_free(c->ws);
    tern_io_stream_close(&c->st);
    free(c);
}

/* The next message, waiting up to ms; NULL if none came. Owned by the caller. */
static json_t *client_next(client_t *c, int ms)
{
    int64_t until = now_ms() + ms;
    while (c->count == 0 && !c->closed && now_ms() < until)
        client_pump(c, 20);
    if (c->count == 0)
        return NULL;
    json_t *j = c->inbox[c->head];
    c->head = (c->head + 1) % INBOX;
    c->count--;
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    const char *v = json_string_value(json_object_get(j, key));
    return v ? v : "";
}

/* The next message must be of this type (and, for an error, this code). */
static bool expect_type(client_t *c, const char *type, const char *code)
{
    json_t *j = client_next(c, GIVE_UP_MS);
    bool good =
        j && strcmp(jstr(j, "type"), type) == 0 && (!code || strcmp(jstr(j, "code"), code) == 0);
    if (!good) {
        char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
        printf("#   expected %s %s, got %s\n", type, code ? code : "", t ? t : "nothing");
        free(t);
    }
    json_decref(j);
    return good;
}

static void client_send(client_t *c, const char *text)
{
    tern_ws_send_text(c->ws, now_us(), text, strlen(text));
    client_drain(c);
}

/* Join a room: connect, upgrade, take the welcome. */
static client_t *join(const server_t *s, const char *room, json_t **welcome)
{
    char target[128];
    snprintf(target, sizeof target, "/ws/%s", room);
    client_t *c = client_new(s, target);
    if (!c)
        return NULL;
    json_t *w = client_next(c, GIVE_UP_MS);
    if (w && strcmp(jstr(w, "type"), "welcome") == 0)
        snprintf(c->id, sizeof c->id, "%s", jstr(w, "id"));
    if (welcome)
        *welcome = w;
    else
        json_decref(w);
    return c;
}

/* Wait until the client's connection is closed by the server; returns the close code. */
static int wait_closed(client_t *c, int ms)
{
    int64_t until = now_ms() + ms;
    while (!c->closed && now_ms() < until)
        client_pump(c, 20);
    return c->closed ? c->close_code : -1;
}

/* Nothing arrives within ms. */
static bool expect_silence(client_t *c, int ms)
{
    json_t *j = client_next(c, ms);
    if (j) {
        char *t = json_dumps(j, JSON_COMPACT);
        printf("#   unexpected %s\n", t);
        free(t);
        json_decref(j);
        return false;
    }
    return true;
}

/* Pump several clients for a while (so that each answers pings and reads). */
static void pump_all(client_t **cs, size_t n, int ms)
{
    int64_t until = now_ms() + ms;
    while (now_ms() < until)
        for (size_t i = 0; i < n; i++)
            if (cs[i])
                client_pump(cs[i], 5);
}

/* ------------------------------------------------------------------------------------------ */
/* Plain HTTP                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct reply {
    int status;
    char head[2048];
    char body[8192];
    size_t body_len;
} reply_t;

/* Send a raw request and read the whole response (the server closes after it). */
static bool http_raw(const server_t *s, const char *request, reply_t *r)
{
    memset(r, 0, sizeof *r);
    tern_io_stream_t st;
    if (!stream_open(&st, s))
        return false;
    static char buf[65536];
    bool eof = false;
    bool sent = stream_write_all(&st, request, strlen(request));
    size_t n = sent ? stream_read_until_eof(&st, buf, sizeof buf, &eof, now_ms() + GIVE_UP_MS) : 0;
    tern_io_stream_close(&st);
    char *end = strstr(buf, "\r\n\r\n");
    if (!sent || !end || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1)
        return false;
    size_t head_len = (size_t)(end - buf);
    snprintf(r->head, sizeof r->head, "%.*s", (int)TERN_MIN(head_len, sizeof r->head - 1), buf);
    r->body_len = n - head_len - 4;
    memcpy(r->body, end + 4, TERN_MIN(r->body_len, sizeof r->body - 1));
    return true;
}

static int http_get(const server_t *s, const char *path, reply_t *r)
{
    char req[1024];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    return http_raw(s, req, r) ? r->status : -1;
}

static bool has_header(const reply_t *r, const char *line)
{
    return strstr(r->head, line) != NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_rooms_and_relay(void)
{
    server_t s;
    const char *opts[] = {"--ice-server", "stun:stun.example.org:3478", "--ice-server",
                          "turn:al%40ice:pa%3As@turn.example.org:3478?transport=tcp", NULL};
    ok(server_start(&s, opts));
    json_t *w = NULL;
    client_t *a = join(&s, "room-1", &w);
    ok(a != NULL);
    if (!a) {
        server_stop(&s);
        return;
    }
    eq_str(jstr(w, "type"), "welcome");
    eq_str(jstr(w, "room"), "room-1");
    ok(strlen(a->id) > 0);
    eq_int(json_array_size(json_object_get(w, "peers")), 0);
    json_t *ice = json_object_get(w, "iceServers");
    eq_int(json_array_size(ice), 2);
    eq_str(jstr(json_array_get(ice, 0), "urls"), "stun:stun.example.org:3478");
    ok(!json_object_get(json_array_get(ice, 0), "username"));
    eq_str(jstr(json_array_get(ice, 1), "urls"), "turn:turn.example.org:3478?transport=tcp");
    eq_str(jstr(json_array_get(ice, 1), "username"), "al@ice");
    eq_str(jstr(json_array_get(ice, 1), "credential"), "pa:s");
    json_decref(w);

    /* B enters: its welcome lists A; A hears join. */
    client_t *b = join(&s, "room-1", &w);
    ok(b && strlen(b->id) > 0 && strcmp(a->id, b->id) != 0);
    eq_int(json_array_size(json_object_get(w, "peers")), 1);
    eq_str(json_string_value(json_array_get(json_object_get(w, "peers"), 0)), a->id);
    json_decref(w);
    json_t *j = client_next(a, GIVE_UP_MS);
    eq_str(jstr(j, "type"), "join");
    eq_str(jstr(j, "id"), b->id);
    json_decref(j);
    client_t *c = join(&s, "room-1", &w);
    eq_int(json_array_size(json_object_get(w, "peers")), 2);
    json_decref(w);
    ok(expect_type(a, "join", NULL));
    ok(expect_type(b, "join", NULL));
    /* Another room hears nothing of this one. */
    client_t *other = join(&s, "room-2", &w);
    eq_int(json_array_size(json_object_get(w, "peers")), 0);
    json_decref(w);

    /* To the room: everyone else, "from" overwritten in place, the rest unchanged. */
    client_send(a, "{\"type\":\"offer\",\"from\":\"forged\",\"sdp\":\"v=0\\r\\n\",\"n\":1.5,"
                   "\"x\":[1,{\"y\":null}],\"u\":\"\\u00e9\"}");
    for (int i = 0; i < 2; i++) {
        client_t *to = i ? c : b;
        j = client_next(to, GIVE_UP_MS);
        char *t = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        char want[256];
        snprintf(want, sizeof want,
                 "{\"type\":\"offer\",\"from\":\"%s\",\"sdp\":\"v=0\\r\\n\",\"n\":1.5,"
                 "\"x\":[1,{\"y\":null}],\"u\":\"\\u00E9\"}",
                 a->id);
        eq_str(t, want);
        free(t);
        json_decref(j);
    }
    ok(expect_silence(a, 100));
    ok(expect_silence(other, 50));

    /* To one peer: only it, "to" removed, "from" added. */
    char msg[256];
    snprintf(msg, sizeof msg, "{\"to\":\"%s\",\"type\":\"answer\",\"sdp\":\"s\"}", b->id);
    client_send(a, msg);
    j = client_next(b, GIVE_UP_MS);
    ok(j && !json_object_get(j, "to"));
    eq_str(jstr(j, "from"), a->id);
    eq_str(jstr(j, "type"), "answer");
    eq_str(jstr(j, "sdp"), "s");
    json_decref(j);
    ok(expect_silence(c, 100));

    /* A peer of another room is unknown here. */
    snprintf(msg, sizeof msg, "{\"type\":\"x\",\"to\":\"%s\"}", other->id);
    client_send(a, msg);
    ok(expect_type(a, "error", "unknown-peer"));
    ok(expect_silence(other, 50));

    /* Leaving: a clean close, then a lost connection. */
    tern_ws_close(c->ws, now_us(), TERN_WS_CLOSE_NORMAL, NULL);
    client_drain(c);
    eq_int(wait_closed(c, GIVE_UP_MS), TERN_WS_CLOSE_NORMAL);
    j = client_next(a, GIVE_UP_MS);
    eq_str(jstr(j, "type"), "leave");
    eq_str(jstr(j, "id"), c->id);
    json_decref(j);
    ok(expect_type(b, "leave", NULL));
    client_free(c);
    tern_io_stream_close(&b->st); /* no close frame: the TCP connection just ends */
    j = client_next(a, GIVE_UP_MS);
    eq_str(jstr(j, "type"), "leave");
    eq_str(jstr(j, "id"), b->id);
    json_decref(j);
    client_free(b);

    /* /healthz counts what is left: room-1 with a, room-2 with other. */
    reply_t r;
    eq_int(http_get(&s, "/healthz", &r), 200);
    eq_str(r.body, "{\"ok\":true,\"rooms\":2,\"peers\":2}");
    ok(has_header(&r, "Content-Type: application/json"));

    client_free(a);
    client_free(other);
    eq_int(server_stop(&s), 0);
}

static void test_errors(void)
{
    server_t s;
    const char *opts[] = {"--max-message-bytes", "1024", NULL};
    ok(server_start(&s, opts));
    client_t *a = join(&s, "errors", NULL);
    client_t *b = join(&s, "errors", NULL);
    ok(a && b);
    if (!a || !b) {
        client_free(a);
        client_free(b);
        server_stop(&s);
        return;
    }
    ok(expect_type(a, "join", NULL));

    /* bad-json: the connection stays, and the next good message goes through. */
    const char *bad[] = {
        "not json",          "[1,2]",
        "\"type\"",          "{\"type\":5}",
        "{\"no\":\"type\"}", "{\"type\":\"a\",\"type\":\"b\"}",
        "{\"type\":\"x\"",   "",
        "{\"type\":null}",   "{\"type\":\"x\",\"n\":123456789012345678901234567890}"};
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad); i++) {
        client_send(a, bad[i]);
        ok(expect_type(a, "error", "bad-json"));
    }
    ok(expect_silence(b, 50));
    /* unknown-peer: a missing id, a "to" that is not a string. */
    client_send(a, "{\"type\":\"x\",\"to\":\"nobody\"}");
    ok(expect_type(a, "error", "unknown-peer"));
    client_send(a, "{\"type\":\"x\",\"to\":5}");
    ok(expect_type(a, "error", "unknown-peer"));
    client_send(a, "{\"type\":\"x\",\"to\":null}");
    ok(expect_type(a, "error", "unknown-peer"));
    client_send(a, "{\"type\":\"still-here\"}");
    ok(expect_type(b, "still-here", NULL));

    /* Binary frames: closed with 1003; B hears leave. */
    tern_ws_send_binary(a->ws, now_us(), "\x01\x02", 2);
    client_drain(a);
    eq_int(wait_closed(a, GIVE_UP_MS), TERN_WS_CLOSE_UNSUPPORTED_DATA);
    ok(expect_type(b, "leave", NULL));
    client_free(a);

    /* too-large: the error, then 1009; the room goes on. */
    client_t *c = join(&s, "errors", NULL);
    ok(expect_type(b, "join", NULL));
    char *big = malloc(1600);
    snprintf(big, 1600, "{\"type\":\"big\",\"pad\":\"%01480d\"}", 0);
    client_send(c, big);
    ok(expect_type(c, "error", "too-large"));
    eq_int(wait_closed(c, GIVE_UP_MS), TERN_WS_CLOSE_MESSAGE_TOO_BIG);
    ok(expect_type(b, "leave", NULL));
    client_free(c);
    /* Far over the limit, the WebSocket layer closes with 1009 by itself. */
    c = join(&s, "errors", NULL);
    ok(expect_type(b, "join", NULL));
    big = realloc(big, 5001);
    memset(big, ' ', 5000);
    big[5000] = 0;
    big[0] = '{';
    big[4999] = '}';
    client_send(c, big);
    eq_int(wait_closed(c, GIVE_UP_MS), TERN_WS_CLOSE_MESSAGE_TOO_BIG);
    client_free(c);
    free(big);
    ok(expect_type(b, "leave", NULL));

    /* A protocol violation (an unmasked client frame): 1002. */
    c = join(&s, "errors", NULL);
    ok(expect_type(b, "join", NULL));
    static const uint8_t unmasked[] = {0x81, 0x02, '{', '}'};
    ok(stream_write_all(&c->st, unmasked, sizeof unmasked));
    eq_int(wait_closed(c, GIVE_UP_MS), TERN_WS_CLOSE_PROTOCOL_ERROR);
    client_free(c);
    ok(expect_type(b, "leave", NULL));

    /* B was never disturbed. */
    client_send(b, "{\"type\":\"ping-self\"}");
    ok(expect_silence(b, 50));
    eq_int(b->closed, false);
    client_free(b);
    eq_int(server_stop(&s), 0);
}

static void test_rate_limit(void)
{
    server_t s;
    const char *opts[] = {"--rate", "10/s", NULL};
    ok(server_start(&s, opts));
    client_t *a = join(&s, "rate", NULL);
    client_t *b = join(&s, "rate", NULL);
    ok(a && b);
    if (!a || !b) {
        client_free(a);
        client_free(b);
        server_stop(&s);
        return;
    }
    ok(expect_type(a, "join", NULL));
    /* 60 at once: the burst (20) passes, the rest is refused with rate-limited. */
    for (int i = 0; i < 60; i++)
        client_send(a, "{\"type\":\"flood\"}");
    int relayed = 0, limited = 0;
    json_t *j;
    pump_all((client_t *[]){a, b}, 2, 300);
    while ((j = client_next(b, 50)) != NULL) {
        relayed += strcmp(jstr(j, "type"), "flood") == 0;
        json_decref(j);
    }
    while ((j = client_next(a, 50)) != NULL) {
        limited += strcmp(jstr(j, "code"), "rate-limited") == 0;
        json_decref(j);
    }
    ok(relayed >= 20 && relayed <= 26);
    ok(limited >= 34 && limited <= 40);
    eq_int(relayed + limited, 60);
    /* The bucket refills: a second later messages pass again, on the same connection. */
    sleep_ms(1000);
    client_send(a, "{\"type\":\"later\"}");
    ok(expect_type(b, "later", NULL));
    ok(!a->closed);
    client_free(a);
    client_free(b);
    eq_int(server_stop(&s), 0);
}

static void test_room_full(void)
{
    server_t s;
    const char *opts[] = {"--max-room-peers", "2", NULL};
    ok(server_start(&s, opts));
    client_t *a = join(&s, "full", NULL);
    client_t *b = join(&s, "full", NULL);
    json_t *w = NULL;
    client_t *c = client_new(&s, "/ws/full");
    ok(a && b && c);
    if (c) {
        ok(expect_type(c, "error", "room-full"));
        eq_int(wait_closed(c, GIVE_UP_MS), TERN_WS_CLOSE_POLICY_VIOLATION);
    }
    /* A and B heard nothing of it; another room is not full. */
    ok(expect_type(a, "join", NULL));
    ok(expect_silence(a, 100));
    client_t *d = join(&s, "other", &w);
    eq_str(jstr(w, "type"), "welcome");
    json_decref(w);
    client_free(a);
    client_free(b);
    client_free(c);
    client_free(d);
    eq_int(server_stop(&s), 0);
}

static void test_timeouts(void)
{
    server_t s;
    const char *opts[] = {"--upgrade-timeout-ms",
                          "300",
                          "--ping-interval-ms",
                          "100",
                          "--pong-timeout-ms",
                          "500",
                          NULL};
    ok(server_start(&s, opts));
    /* Silent after connecting, or a request that never ends: dropped after the upgrade
     * timeout. */
    for (int i = 0; i < 2; i++) {
        tern_io_stream_t st;
        ok(stream_open(&st, &s));
        if (i == 1)
            stream_write_all(&st, "GET /ws/x HTTP/1.1\r\nHost: a\r\n", 29);
        int64_t t0 = now_ms();
        char buf[1024];
        bool eof;
        stream_read_until_eof(&st, buf, sizeof buf, &eof, t0 + GIVE_UP_MS);
        ok(eof);
        ok(now_ms() - t0 >= 250);
        tern_io_stream_close(&st);
    }
    /* A peer that answers pings stays; one that reads nothing is dropped and its room hears
     * leave. */
    client_t *a = join(&s, "pings", NULL);
    client_t *b = join(&s, "pings", NULL);
    ok(a && b);
    if (a && b) {
        ok(expect_type(a, "join", NULL));
        b->deaf = true;
        int64_t t0 = now_ms();
        json_t *j = client_next(a, GIVE_UP_MS);
        eq_str(jstr(j, "type"), "leave");
        eq_str(jstr(j, "id"), b->id);
        json_decref(j);
        ok(now_ms() - t0 >= 400);
        pump_all(&a, 1, 800);
        ok(!a->closed);
        tern_ws_stats_t st;
        tern_ws_get_stats(a->ws, &st);
        ok(st.frames_in > st.messages_in); /* pings came */
    }
    client_free(a);
    client_free(b);
    eq_int(server_stop(&s), 0);
}

static void test_slow_reader(void)
{
    server_t s;
    const char *opts[] = {"--rate", "1000000/s", "--max-output-bytes", "262144", NULL};
    ok(server_start(&s, opts));
    client_t *a = join(&s, "slow", NULL);
    client_t *b = join(&s, "slow", NULL);
    client_t *c = join(&s, "slow", NULL);
    ok(a && b && c);
    if (a && b && c) {
        ok(expect_type(a, "join", NULL));
        ok(expect_type(a, "join", NULL));
        ok(expect_type(b, "join", NULL));
        b->deaf = true;
        /* A sends up to 64 MB; C reads it all, B reads nothing and must be dropped. */
        char *msg = malloc(16001);
        snprintf(msg, 16001, "{\"type\":\"bulk\",\"pad\":\"%015970d\"}", 0);
        int received = 0;
        bool left = false;
        for (int i = 0; i < 4000 && !left; i++) {
            client_send(a, msg);
            for (int k = 0; k < 4; k++) {
                client_pump(a, 0);
                client_pump(c, 1);
            }
            json_t *j;
            while ((j = client_next(c, 0)) != NULL) {
                received += strcmp(jstr(j, "type"), "bulk") == 0;
                json_decref(j);
            }
            while ((j = client_next(a, 0)) != NULL) {
                left = left ||
                       (strcmp(jstr(j, "type"), "leave") == 0 && strcmp(jstr(j, "id"), b->id) == 0);
                json_decref(j);
            }
        }
        free(msg);
        ok(left);
        ok(received > 0);
        ok(!a->closed);
        ok(!c->closed);
    }
    client_free(a);
    client_free(b);
    client_free(c);
    eq_int(server_stop(&s), 0);
}

static char root_dir[64];

static void write_file(const char *rel, const char *content)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root_dir, rel);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(content, f);
        fclose(f);
    }
}

static void make_root(void)
{
    strcpy(root_dir, "/tmp/tern-signal-root-XXXXXX");
    if (!mkdtemp(root_dir))
        return;
    char path[256];
    snprintf(path, sizeof path, "%s/sub", root_dir);
    mkdir(path, 0755);
    write_file("index.html", "<h1>demo</h1>");
    write_file("app.js", "let x = 1;");
    write_file("style.css", "a{}");
    write_file("img.png", "PNG");
    write_file("pic.svg", "<svg/>");
    write_file("data.json", "{}");
    write_file("other.bin", "??");
    write_file(".secret", "secret");
    write_file("sub/index.html", "sub index");
    snprintf(path, sizeof path, "%s/passwd", root_dir);
    (void)symlink("/etc/passwd", path);
    snprintf(path, sizeof path, "%s/inside", root_dir);
    (void)symlink("app.js", path);
}

static void remove_root(void)
{
    static const char *const files[] = {"index.html",     "app.js",    "style.css", "img.png",
                                        "pic.svg",        "data.json", "other.bin", ".secret",
                                        "sub/index.html", "passwd",    "inside"};
    char path[256];
    for (size_t i = 0; i < TERN_ARRAY_LEN(files); i++) {
        snprintf(path, sizeof path, "%s/%s", root_dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/sub", root_dir);
    rmdir(path);
    rmdir(root_dir);
}

static void test_http(void)
{
    make_root();
    server_t s;
    const char *opts[] = {"--root", root_dir, NULL};
    ok(server_start(&s, opts));
    reply_t r;
    static const struct {
        const char *path;
        int status;
        const char *type;
        const char *body;
    } cases[] = {
        {"/", 200, "text/html; charset=utf-8", "<h1>demo</h1>"},
        {"/index.html", 200, "text/html; charset=utf-8", "<h1>demo</h1>"},
        {"/app.js", 200, "text/javascript; charset=utf-8", "let x = 1;"},
        {"/style.css", 200, "text/css; charset=utf-8", "a{}"},
        {"/img.png", 200, "image/png", "PNG"},
        {"/pic.svg", 200, "image/svg+xml", "<svg/>"},
        {"/data.json", 200, "application/json", "{}"},
        {"/other.bin", 200, "application/octet-stream", "??"},
        {"/sub/", 200, "text/html", "sub index"},
        {"/sub", 200, "text/html", "sub index"},
        {"/%61pp.js?v=2", 200, "text/javascript", "let x = 1;"},
        {"/inside", 200, NULL, "let x = 1;"},
        {"/missing.html", 404, NULL, NULL},
        {"/.secret", 404, NULL, NULL},
        {"/../etc/passwd", 404, NULL, NULL},
        {"/sub/../../etc/passwd", 404, NULL, NULL},
        {"/%2e%2e/etc/passwd", 404, NULL, NULL},
        {"/%2E%2E%2Fetc%2Fpasswd", 404, NULL, NULL},
        {"/passwd", 404, NULL, NULL},
        {"/%00", 404, NULL, NULL},
        {"/%zz", 404, NULL, NULL},
        {"/healthz", 200, "application/json", "{\"ok\":true,\"rooms\":0,\"peers\":0}"},
        {"/ws/bad%20room", 400, NULL, NULL},
        {"/ws/", 400, NULL, NULL},
        {"/ws", 400, NULL, NULL},
        {"/ws/a/b", 400, NULL, NULL},
        {"/ws/01234567890123456789012345678901234567890123456789012345678901234", 400, NULL, NULL},
        {"/ws/ok-room", 426, NULL, NULL},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(cases); i++) {
        /* Without openat2 (valgrind does not know it) no link is followed at all. */
        if (valgrind && strcmp(cases[i].path, "/inside") == 0)
            continue;
        int status = http_get(&s, cases[i].path, &r);
        if (status != cases[i].status)
            printf("#   %s: %d\n", cases[i].path, status);
        eq_int(status, cases[i].status);
        if (cases[i].type) {
            char line[128];
            snprintf(line, sizeof line, "Content-Type: %s", cases[i].type);
            ok(has_header(&r, line));
        }
        if (cases[i].body)
            eq_str(r.body, cases[i].body);
    }
    /* An upgrade to a bad room is 400 too; HEAD has no body; other methods 405. */
    ok(http_raw(&s,
                "GET /ws/b%C3%A4d HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n",
                &r));
    eq_int(r.status, 400);
    ok(http_raw(&s, "HEAD /app.js HTTP/1.1\r\nHost: x\r\n\r\n", &r));
    eq_int(r.status, 200);
    ok(has_header(&r, "Content-Length: 10"));
    eq_int(r.body_len, 0);
    ok(http_raw(&s, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r));
    eq_int(r.status, 405);
    ok(has_header(&r, "Allow: GET, HEAD"));
    ok(http_raw(&s, "garbage\r\n\r\n", &r));
    eq_int(r.status, 400);

    /* Static files held unread by many connections are bounded (64 MiB): 503 past that. */
    char big[256];
    snprintf(big, sizeof big, "%s/big.bin", root_dir);
    FILE *f = fopen(big, "w");
    ok(f && ftruncate(fileno(f), 16 * 1024 * 1024) == 0);
    if (f)
        fclose(f);
    tern_io_stream_t held[5];
    for (int i = 0; i < 5; i++) {
        ok(stream_open(&held[i], &s));
        static const char req[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
        ok(stream_write_all(&held[i], req, sizeof req - 1));
        char line[16] = "";
        size_t got = 0;
        int64_t until = now_ms() + GIVE_UP_MS;
        while (got < 12 && now_ms() < until) {
            long n = tern_io_stream_read(&held[i], line + got, 12 - got);
            if (n > 0)
                got += (size_t)n;
            else if (n == TERN_ERR_AGAIN)
                wait_fd(held[i].fd, POLLIN, until);
            else
                break;
        }
        eq_str(line, i < 4 ? "HTTP/1.1 200" : "HTTP/1.1 503");
    }
    for (int i = 0; i < 5; i++)
        tern_io_stream_close(&held[i]);
    unlink(big);
    eq_int(http_get(&s, "/app.js", &r), 200);
    eq_int(server_stop(&s), 0);
    remove_root();

    /* Without --root there are no files, /healthz still answers. */
    ok(server_start(&s, NULL));
    eq_int(http_get(&s, "/", &r), 404);
    eq_int(http_get(&s, "/healthz", &r), 200);
    eq_int(server_stop(&s), 0);
}

static void test_tls(void)
{
    ok(make_cert());
    char err[256];
    ok(tern_io_tls_client_new(ctx, cert_path, false, &client_tls, err, sizeof err) == TERN_OK);
    server_t s;
    const char *opts[] = {"--tls-cert", cert_path, "--tls-key", key_path, NULL};
    ok(server_start(&s, opts));
    json_t *w = NULL;
    client_t *a = join(&s, "secure", &w);
    eq_str(jstr(w, "type"), "welcome");
    json_decref(w);
    client_t *b = join(&s, "secure", NULL);
    ok(a && b);
    if (a && b) {
        ok(expect_type(a, "join", NULL));
        /* A message bigger than a TLS record goes through whole. */
        char *msg = malloc(40001);
        snprintf(msg, 40001, "{\"type\":\"big\",\"pad\":\"%039970d\"}", 0);
        client_send(b, msg);
        json_t *j = client_next(a, GIVE_UP_MS);
        eq_str(jstr(j, "type"), "big");
        eq_int(strlen(jstr(j, "pad")), 39970);
        json_decref(j);
        free(msg);
    }
    reply_t r;
    eq_int(http_get(&s, "/healthz", &r), 200);
    eq_str(r.body, "{\"ok\":true,\"rooms\":1,\"peers\":2}");
    client_free(a);
    client_free(b);
    /* A plain-text client gets nowhere on a TLS port (and does not hurt it). */
    server_t plain = s;
    plain.tls = false;
    ok(http_get(&plain, "/healthz", &r) < 0 || r.status != 200);
    eq_int(http_get(&s, "/healthz", &r), 200);
    eq_int(server_stop(&s), 0);
    /* A key that does not match: a clear error at start, exit status 1. */
    const char *bad[] = {"--tls-cert", cert_path, "--tls-key", cert_path, NULL};
    ok(!server_start(&s, bad));
    tern_io_tls_free(client_tls);
    client_tls = NULL;
    unlink(cert_path);
    unlink(key_path);
}

static void test_stun(void)
{
    server_t s;
    ok(server_start(&s, NULL));
    ok(s.stun.family == TERN_AF_INET && s.stun.port != 0);
    tern_addr_t local = {.family = TERN_AF_INET, .ip = {127, 0, 0, 1}};
    tern_addr_t bound;
    int fd = tern_io_udp_bind(&local, &bound);
    struct sockaddr_storage to;
    socklen_t tolen = tern_io_addr_to_sockaddr(&s.stun, &to);
    for (int method = 0; method < 2; method++) {
        uint8_t req[64],
            tid[TERN_STUN_TID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, (uint8_t)method};
        tern_wbuf_t w;
        tern_wbuf_init(&w, NULL, req, sizeof req);
        tern_stun_writer_t sw;
        tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST,
                               method ? TERN_STUN_ALLOCATE : TERN_STUN_BINDING, tid);
        tern_stun_put_fingerprint(&sw);
        size_t len = 0;
        eq_int(tern_stun_writer_end(&sw, &len), TERN_OK);
        uint8_t resp[1024];
        ssize_t n = -1;
        for (int attempt = 0; attempt < 5 && n <= 0; attempt++) {
            sendto(fd, req, len, 0, (struct sockaddr *)&to, tolen);
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 1000) > 0)
                n = recv(fd, resp, sizeof resp, 0);
        }
        tern_stun_msg_t m;
        ok(n > 0 && tern_stun_parse(resp, (size_t)n, &m) == TERN_OK);
        if (n <= 0)
            continue;
        ok(memcmp(m.tid, tid, sizeof tid) == 0);
        eq_int(tern_stun_check_fingerprint(&m), TERN_OK);
        if (method == 0) {
            eq_int(m.msg_class, TERN_STUN_SUCCESS);
            ok(m.present & TERN_STUN_HAS_XOR_MAPPED_ADDRESS);
            ok(tern_addr_equal(&m.xor_mapped_address, &bound));
        } else {
            eq_int(m.msg_class, TERN_STUN_ERROR);
            eq_int(m.error_code, 400);
        }
    }
    /* Garbage gets no answer, and the responder goes on. */
    sendto(fd, "hello", 5, 0, (struct sockaddr *)&to, tolen);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    eq_int(poll(&p, 1, 200), 0);
    close(fd);
    eq_int(server_stop(&s), 0);

    /* --no-stun: none. */
    const char *off[] = {"--no-stun", NULL};
    ok(server_start(&s, off));
    eq_int(s.stun.family, 0);
    eq_int(server_stop(&s), 0);
}

static void test_sigterm(void)
{
    server_t s;
    ok(server_start(&s, NULL));
    client_t *a = join(&s, "bye", NULL);
    client_t *b = join(&s, "bye", NULL);
    tern_io_stream_t idle; /* a connection that never sent a request */
    ok(stream_open(&idle, &s));
    ok(a && b);
    if (a)
        ok(expect_type(a, "join", NULL));
    kill(s.pid, SIGTERM);
    /* Both peers get a close frame 1001 (the client endpoints answer it). */
    if (a && b) {
        int64_t until = now_ms() + GIVE_UP_MS;
        while ((!a->closed || !b->closed) && now_ms() < until) {
            client_pump(a, 10);
            client_pump(b, 10);
        }
        eq_int(a->close_code, TERN_WS_CLOSE_GOING_AWAY);
        eq_int(b->close_code, TERN_WS_CLOSE_GOING_AWAY);
    }
    int64_t t0 = now_ms();
    eq_int(server_stop(&s), 0);
    ok(now_ms() - t0 < 5000);
    tern_io_stream_close(&idle);
    client_free(a);
    client_free(b);
}

/* CPU seconds the process has used (user + system). */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void test_out_of_fds(void)
{
    /* A server with few descriptors: more connections than it can take wait in the backlog;
     * it pauses accepting instead of spinning, and serves again once some are gone. */
    server_t s;
    child_fd_limit = 24;
    bool started = server_start(&s, NULL);
    child_fd_limit = 0;
    ok(started);
    if (!started)
        return;
    enum { N = 40 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = tern_io_tcp_connect(&s.tcp, NULL);
    sleep_ms(200);
    double cpu0 = cpu_seconds(s.pid);
    sleep_ms(1000);
    double cpu = cpu_seconds(s.pid) - cpu0;
    ok(cpu >= 0 && cpu < 0.5);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    json_t *w = NULL;
    client_t *a = join(&s, "after", &w);
    eq_str(jstr(w, "type"), "welcome");
    json_decref(w);
    client_free(a);
    reply_t r;
    eq_int(http_get(&s, "/healthz", &r), 200);
    eq_int(server_stop(&s), 0);
}

static void test_options(void)
{
    static const char *const bad[][4] = {
        {"--listen", "nonsense", NULL},
        {"--listen", "127.0.0.1:99999", NULL},
        {"--listen", "127.0.0.1:0", "--rate", "fast"},
        {"--listen", "127.0.0.1:0", "--ice-server", "http://x"},
        {"--listen", "127.0.0.1:0", "--tls-cert", "x"},
        {"--listen", "127.0.0.1:0", "--max-room-peers", "0"},
        {"--listen", "127.0.0.1:0", "--bogus", "1"},
        {NULL},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad); i++) {
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 2);
            const char *argv[6] = {TERN_SIGNAL_BIN};
            for (int k = 0; k < 4 && bad[i][k]; k++)
                argv[k + 1] = bad[i][k];
            execv(TERN_SIGNAL_BIN, (char *const *)argv);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        ok(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--valgrind") == 0)
        valgrind = argv[2];
    signal(SIGPIPE, SIG_IGN);
    tern_ctx_config_t cfg = {.log_level = TERN_LOG_WARN};
    tern_ctx_new(&cfg, &ctx);
    subtest("rooms and relay", test_rooms_and_relay);
    subtest("errors", test_errors);
    subtest("rate limit", test_rate_limit);
    subtest("room full", test_room_full);
    subtest("timeouts", test_timeouts);
    subtest("slow reader", test_slow_reader);
    subtest("http", test_http);
    subtest("tls", test_tls);
    subtest("stun", test_stun);
    subtest("sigterm", test_sigterm);
    if (!valgrind) {
        subtest("out of fds", test_out_of_fds);
        subtest("options", test_options);
    }
    tern_ctx_free(ctx);
    return check_done();
}

#endif
