/* SPDX-License-Identifier: MIT */
/*
 * Attacks on tern-signal, the real program on loopback (issue 5), beyond what test_signal
 * already checks (bad-json, unknown ids, binary frames, too-large, an unmasked frame, the
 * rate limit, a full room of two, the upgrade and ping timeouts, a slow reader):
 * - WebSocket protocol violations, each on its own connection: a frame header announcing
 *   2^63 bytes (1002: the top bit must be 0, RFC 6455 §5.2) or 2^62 (1009), reserved opcodes
 *   and RSV bits, a continuation with nothing to continue, a data frame inside a fragmented
 *   message, a fragmented or oversized control frame (1002), close frames with codes that must
 *   not be sent or a one-byte body (1002), text and close reasons that are not UTF-8 (1007);
 * - a half-closed connection (the peer shuts its sending side), a request trickled one byte at
 *   a time that never ends (cut at the upgrade timeout all the same), a head over the limit;
 * - a flood of 10,000 messages from one peer (rate-limited, the room hears the burst only);
 * - 1,000 connections opened at once into one room (16 welcomed, the rest room-full and 1008)
 *   and dropped, some with a reset, twice;
 * - a message to a peer of another room (unknown-peer, nothing crosses).
 * After each, witnesses in the attacked room and in another room still talk to each other,
 * /healthz counts what is left, and the server's resident memory after a second round of the
 * same attack is no larger than after the first (what the first round took is reused, not
 * leaked); at SIGTERM it exits with status 0 (under ASan, LeakSanitizer is part of that).
 */
#include "check.h"
#include "io/io.h"
#include "util/util.h"
#include "ws/ws.h"

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GIVE_UP_MS 10000
#define CROWD 1000

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* How much more a second round of an attack may leave resident than the first: a leak of
 * what one round holds (a thousand connections, ten thousand messages) is far above this.
 * ASan's allocator keeps more around. */
#ifdef UNDER_ASAN
#define RSS_SLACK (4 * 1024 * 1024)
#else
#define RSS_SLACK (1024 * 1024)
#endif

static tern_ctx_t *ctx;
static char signal_bin[4096];

static int64_t now_ms(void)
{
    return tern_io_clock_now() / 1000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* tern-signal sits in the build tree at signaling/, beside this program's tests/ folder. */
static bool find_signal_bin(void)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *dir = dirname(self);
    const char *tries[] = {"/../signaling/tern-signal", "/../../signaling/tern-signal"};
    for (size_t i = 0; i < TERN_ARRAY_LEN(tries); i++) {
        snprintf(signal_bin, sizeof signal_bin, "%s%s", dir, tries[i]);
        if (access(signal_bin, X_OK) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* The server                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct server {
    pid_t pid;
    int out;
    uint16_t port;
} server_t;

static bool server_start(server_t *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    const char *log = getenv("TERN_LOG") ? getenv("TERN_LOG") : "warn";
    const char *argv[32] = {signal_bin, "--listen", "127.0.0.1:0", "--no-stun", "--log", log};
    int n = 6;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return false;
    s->pid = fork();
    if (s->pid == 0) {
        dup2(pipefd[1], 1);
#ifdef UNDER_ASAN
        /* Freed memory must be reused for the RSS comparison, not parked in quarantine. */
        char opts[512];
        const char *old = getenv("ASAN_OPTIONS");
        snprintf(opts, sizeof opts, "%s%squarantine_size_mb=0", old ? old : "", old ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
#endif
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    s->out = pipefd[0];
    char line[512];
    size_t len = 0;
    int64_t give_up = now_ms() + GIVE_UP_MS;
    while (len + 1 < sizeof line && now_ms() < give_up) {
        struct pollfd p = {.fd = s->out, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (read(s->out, line + len, 1) != 1)
            break;
        if (line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    const char *colon = strstr(line, "127.0.0.1:");
    if (s->pid < 0 || !colon) {
        printf("# tern-signal did not start: '%s'\n", line);
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
        }
        close(s->out);
        return false;
    }
    s->port = (uint16_t)atoi(colon + 10);
    return true;
}

static int server_stop(server_t *s)
{
    kill(s->pid, SIGTERM);
    int status = 0;
    pid_t r = 0;
    int64_t give_up = now_ms() + GIVE_UP_MS;
    while ((r = waitpid(s->pid, &status, WNOHANG)) == 0 && now_ms() < give_up)
        sleep_ms(10);
    if (r == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        status = -1;
    }
    close(s->out);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Resident bytes of the server (/proc/PID/statm, second field, in pages). */
static long server_rss(const server_t *s)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)s->pid);
    FILE *f = fopen(path, "r");
    long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static int tcp_connect(uint16_t port, bool nonblocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static bool write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    int64_t give_up = now_ms() + GIVE_UP_MS;
    while (len > 0 && now_ms() < give_up) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        } else {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            poll(&pf, 1, 50);
        }
    }
    return len == 0;
}

/* GET /healthz: {"ok":true,"rooms":N,"peers":N}. */
static bool healthz(uint16_t port, int *rooms, int *peers)
{
    int fd = tcp_connect(port, false);
    if (fd < 0)
        return false;
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[2048];
    size_t len = 0;
    bool ok = write_all(fd, req, sizeof req - 1);
    struct timeval tv = {.tv_sec = GIVE_UP_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n;
    while (ok && len + 1 < sizeof buf && (n = recv(fd, buf + len, sizeof buf - 1 - len, 0)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    const char *r = strstr(buf, "\"rooms\":"), *p = strstr(buf, "\"peers\":");
    if (!ok || !r || !p)
        return false;
    *rooms = atoi(r + 8);
    *peers = atoi(p + 8);
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* A WebSocket client on the sans-IO endpoint                                                 */
/* ------------------------------------------------------------------------------------------ */

#define QUEUE 4096

typedef struct client {
    int fd;
    tern_ws_t *ws;
    bool open, closed;
    uint16_t close_code; /* the code of the server's close frame (1006: none came) */
    char id[32];
    json_t *queue[QUEUE];
    size_t head, count;
    unsigned dropped; /* messages that did not fit the queue */
} client_t;

static void client_flush(client_t *c)
{
    const uint8_t *data;
    size_t len;
    while (tern_ws_poll_output(c->ws, &data, &len)) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            return;
        tern_ws_consume_output(c->ws, (size_t)n);
    }
}

static void client_events(client_t *c)
{
    tern_ws_event_t ev;
    while (tern_ws_poll_event(c->ws, &ev)) {
        if (ev.type == TERN_WS_EV_OPEN) {
            c->open = true;
        } else if (ev.type == TERN_WS_EV_CLOSE) {
            c->closed = true;
            c->close_code = ev.u.close.code;
        } else if (ev.type == TERN_WS_EV_MESSAGE && ev.u.message.is_text) {
            json_t *j = json_loadb((const char *)ev.u.message.data, ev.u.message.len, 0, NULL);
            const char *type = json_string_value(json_object_get(j, "type"));
            const char *id = json_string_value(json_object_get(j, "id"));
            if (type && strcmp(type, "welcome") == 0 && id)
                snprintf(c->id, sizeof c->id, "%s", id);
            if (j && c->count < QUEUE) {
                c->queue[(c->head + c->count++) % QUEUE] = j;
            } else {
                json_decref(j);
                c->dropped++;
            }
        }
    }
}

/* Run the endpoint for up to ms (0: only what is there now). */
static void client_pump(client_t *c, int ms)
{
    int64_t until = now_ms() + ms;
    do {
        client_flush(c);
        if (c->fd < 0)
            return;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int wait = (int)TERN_MAX(until - now_ms(), 0);
        if (poll(&p, 1, TERN_MIN(wait, 20)) > 0) {
            uint8_t buf[16384];
            ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0)
                tern_ws_handle_input(c->ws, tern_io_clock_now(), buf, (size_t)n);
            else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                tern_ws_handle_eof(c->ws, tern_io_clock_now());
                client_events(c);
                close(c->fd);
                c->fd = -1;
                return;
            }
        }
        tern_ws_handle_timeout(c->ws, tern_io_clock_now());
        client_events(c);
    } while (now_ms() < until && !c->closed);
    client_flush(c);
}

static void client_free(client_t *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    tern_ws_free(c->ws);
    while (c->count) {
        json_decref(c->queue[c->head]);
        c->head = (c->head + 1) % QUEUE;
        c->count--;
    }
    free(c);
}

/* Connect to /ws/ROOM and wait for welcome (or the end). */
static client_t *client_join(uint16_t port, const char *room)
{
    client_t *c = calloc(1, sizeof *c);
    char host[32], target[96];
    snprintf(host, sizeof host, "127.0.0.1:%u", port);
    snprintf(target, sizeof target, "/ws/%s", room);
    tern_ws_config_t cfg = {.role = TERN_WS_ROLE_CLIENT, .host = host, .target = target};
    c->fd = tcp_connect(port, false);
    if (c->fd < 0 || tern_ws_new(ctx, &cfg, tern_io_clock_now(), &c->ws) != TERN_OK) {
        client_free(c);
        return NULL;
    }
    int64_t give_up = now_ms() + GIVE_UP_MS;
    while (!c->id[0] && !c->closed && c->fd >= 0 && now_ms() < give_up)
        client_pump(c, 20);
    return c;
}

/* The next message, waiting up to ms; NULL if none came. The caller decrefs. */
static json_t *client_next(client_t *c, int ms)
{
    int64_t until = now_ms() + ms;
    while (c->count == 0 && now_ms() < until && !c->closed)
        client_pump(c, 20);
    if (c->count == 0)
        client_pump(c, 0);
    if (c->count == 0)
        return NULL;
    json_t *j = c->queue[c->head];
    c->head = (c->head + 1) % QUEUE;
    c->count--;
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

/* Skip messages until one of this type (and error code, if given) comes. */
static bool expect(client_t *c, const char *type, const char *code)
{
    int64_t give_up = now_ms() + GIVE_UP_MS;
    while (now_ms() < give_up) {
        json_t *j = client_next(c, 100);
        if (!j) {
            if (c->closed)
                return false;
            continue;
        }
        bool hit = strcmp(jstr(j, "type"), type) == 0 && (!code || !strcmp(jstr(j, "code"), code));
        json_decref(j);
        if (hit)
            return true;
    }
    return false;
}

static void client_send(client_t *c, const char *text)
{
    tern_ws_send_text(c->ws, tern_io_clock_now(), text, strlen(text));
    client_flush(c);
}

/* Until the server's close frame (or the end of the stream); its code, 1006 if none. */
static int wait_closed(client_t *c)
{
    int64_t give_up = now_ms() + GIVE_UP_MS;
    while (!c->closed && c->fd >= 0 && now_ms() < give_up)
        client_pump(c, 20);
    return c->closed ? c->close_code : -1;
}

/* A frame as the attacker writes it: any header, masked or not, payload as given. */
static size_t raw_frame(uint8_t *out, uint8_t b0, bool masked, uint64_t announced,
                        const void *payload, size_t len)
{
    size_t k = 0;
    out[k++] = b0;
    uint8_t m = masked ? 0x80 : 0;
    if (announced < 126) {
        out[k++] = (uint8_t)(m | announced);
    } else if (announced <= 0xffff) {
        out[k++] = m | 126;
        out[k++] = (uint8_t)(announced >> 8);
        out[k++] = (uint8_t)announced;
    } else {
        out[k++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[k++] = (uint8_t)(announced >> (8 * i));
    }
    static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    if (masked) {
        memcpy(out + k, key, 4);
        k += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[k + i] = ((const uint8_t *)payload)[i] ^ (masked ? key[i & 3] : 0);
    return k + len;
}

/* Two witnesses in the attacked room and one in another: still served? */
typedef struct witnesses {
    client_t *w1, *w2, *far;
} witnesses_t;

static bool witnesses_join(witnesses_t *w, uint16_t port, const char *room)
{
    w->w1 = client_join(port, room);
    w->w2 = client_join(port, room);
    w->far = client_join(port, "elsewhere");
    return w->w1 && w->w2 && w->far && w->w1->id[0] && w->w2->id[0] && w->far->id[0] &&
           expect(w->w1, "join", NULL);
}

/* w1 -> w2 in the room, far -> far's room has nobody else: far sends and hears nothing. */
static bool witnesses_talk(witnesses_t *w)
{
    char msg[128];
    snprintf(msg, sizeof msg, "{\"type\":\"still-here\",\"to\":\"%s\"}", w->w2->id);
    client_send(w->w1, msg);
    bool ok1 = expect(w->w2, "still-here", NULL);
    client_send(w->far, "{\"type\":\"ping-self\",\"to\":\"nobody\"}");
    bool ok2 = expect(w->far, "error", "unknown-peer");
    client_pump(w->w1, 0);
    return ok1 && ok2 && !w->w1->closed && !w->w2->closed && !w->far->closed;
}

/* Let them answer the server's pings (a witness that reads nothing for 30 s is dropped). */
static void witnesses_pump(witnesses_t *w)
{
    client_pump(w->w1, 0);
    client_pump(w->w2, 0);
    client_pump(w->far, 0);
}

static void witnesses_free(witnesses_t *w)
{
    client_free(w->w1);
    client_free(w->w2);
    client_free(w->far);
}

/* ------------------------------------------------------------------------------------------ */
/* Attacks                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void test_protocol_violations(void)
{
    server_t s;
    if (!ok(server_start(&s, NULL)))
        return;
    witnesses_t w;
    ok(witnesses_join(&w, s.port, "v"));
    static const uint8_t bad_utf8[][4] = {
        {0xc0, 0x80}, {0xed, 0xa0, 0x80}, {0xf4, 0x90, 0x80, 0x80}, {0xe2, 0x82}, {0xff}};
    static const size_t bad_len[] = {2, 3, 4, 2, 1};
    static const uint16_t bad_codes[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000};
    struct attack {
        const char *what;
        uint8_t bytes[64];
        size_t len;
        int code;
    } attacks[64];
    size_t n = 0;
    uint8_t close_body[32];
    /* frame length fields */
    attacks[n] = (struct attack){"2^63 bytes", {0}, 0, TERN_WS_CLOSE_PROTOCOL_ERROR};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x81, true, 1ull << 63, NULL, 0);
    n++;
    attacks[n] = (struct attack){"2^64-1 bytes", {0}, 0, TERN_WS_CLOSE_PROTOCOL_ERROR};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x82, true, UINT64_MAX, NULL, 0);
    n++;
    attacks[n] = (struct attack){"2^62 bytes", {0}, 0, TERN_WS_CLOSE_MESSAGE_TOO_BIG};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x81, true, 1ull << 62, NULL, 0);
    n++;
    /* reserved opcodes and bits */
    static const uint8_t opcodes[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf};
    for (size_t i = 0; i < sizeof opcodes; i++) {
        attacks[n] = (struct attack){"reserved opcode", {0}, 0, TERN_WS_CLOSE_PROTOCOL_ERROR};
        attacks[n].len = raw_frame(attacks[n].bytes, 0x80 | opcodes[i], true, 2, "{}", 2);
        n++;
    }
    for (int bit = 0; bit < 3; bit++) {
        attacks[n] = (struct attack){"RSV bit", {0}, 0, TERN_WS_CLOSE_PROTOCOL_ERROR};
        attacks[n].len =
            raw_frame(attacks[n].bytes, (uint8_t)(0x81 | (0x40 >> bit)), true, 2, "{}", 2);
        n++;
    }
    /* fragmentation */
    attacks[n] = (struct attack){"lone continuation", {0}, 0, TERN_WS_CLOSE_PROTOCOL_ERROR};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x80, true, 2, "{}", 2);
    n++;
    attacks[n] =
        (struct attack){"text inside a fragmented text", {0}, 0, TERN_WS_CLOSE_PROTOCOL_ERROR};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x01, true, 1, "{", 1);
    attacks[n].len += raw_frame(attacks[n].bytes + attacks[n].len, 0x81, true, 1, "}", 1);
    n++;
    attacks[n] = (struct attack){"fragmented ping", {0}, 0, TERN_WS_CLOSE_PROTOCOL_ERROR};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x09, true, 1, "x", 1);
    n++;
    attacks[n] = (struct attack){"ping of 126 bytes", {0}, 0, TERN_WS_CLOSE_PROTOCOL_ERROR};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x89, true, 126, NULL, 0);
    n++;
    /* close frames */
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad_codes); i++) {
        tern_store_u16(close_body, bad_codes[i]);
        attacks[n] = (struct attack){"bad close code", {0}, 0, TERN_WS_CLOSE_PROTOCOL_ERROR};
        attacks[n].len = raw_frame(attacks[n].bytes, 0x88, true, 2, close_body, 2);
        n++;
    }
    attacks[n] = (struct attack){"one-byte close", {0}, 0, TERN_WS_CLOSE_PROTOCOL_ERROR};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x88, true, 1, "\x03", 1);
    n++;
    memcpy(close_body, "\x03\xe8\xc0\x80", 4);
    attacks[n] = (struct attack){"close reason not UTF-8", {0}, 0, TERN_WS_CLOSE_INVALID_DATA};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x88, true, 4, close_body, 4);
    n++;
    /* text that is not UTF-8, whole or split across fragments */
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad_len); i++) {
        attacks[n] = (struct attack){"text not UTF-8", {0}, 0, TERN_WS_CLOSE_INVALID_DATA};
        attacks[n].len =
            raw_frame(attacks[n].bytes, 0x81, true, bad_len[i], bad_utf8[i], bad_len[i]);
        n++;
    }
    attacks[n] = (struct attack){"split bad UTF-8", {0}, 0, TERN_WS_CLOSE_INVALID_DATA};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x01, true, 2, "\"\xed", 2);
    attacks[n].len += raw_frame(attacks[n].bytes + attacks[n].len, 0x80, true, 2, "\xa0\x80", 2);
    n++;
    /* and the one that is fine: a clean close is echoed */
    tern_store_u16(close_body, 1000);
    attacks[n] = (struct attack){"clean close", {0}, 0, TERN_WS_CLOSE_NORMAL};
    attacks[n].len = raw_frame(attacks[n].bytes, 0x88, true, 2, close_body, 2);
    n++;

    for (size_t i = 0; i < n; i++) {
        client_t *a = client_join(s.port, "v");
        ok(a && a->id[0]);
        if (!a || !a->id[0]) {
            client_free(a);
            continue;
        }
        ok(expect(w.w1, "join", NULL));
        ok(write_all(a->fd, attacks[i].bytes, attacks[i].len));
        int code = wait_closed(a);
        if (code != attacks[i].code)
            printf("# %s: closed with %d, expected %d\n", attacks[i].what, code, attacks[i].code);
        eq_int(code, attacks[i].code);
        ok(expect(w.w1, "leave", NULL));
        client_free(a);
        witnesses_pump(&w);
    }
    ok(witnesses_talk(&w));
    int rooms = -1, peers = -1;
    ok(healthz(s.port, &rooms, &peers));
    eq_int(rooms, 2);
    eq_int(peers, 3);
    witnesses_free(&w);
    eq_int(server_stop(&s), 0);
}

static void test_half_closed_and_slow_requests(void)
{
    server_t s;
    const char *opts[] = {"--upgrade-timeout-ms", "600", NULL};
    if (!ok(server_start(&s, opts)))
        return;
    witnesses_t w;
    ok(witnesses_join(&w, s.port, "h"));

    /* A peer that shuts its sending side: the server ends it at once, the room hears leave. */
    client_t *a = client_join(s.port, "h");
    ok(a && a->id[0]);
    ok(expect(w.w1, "join", NULL));
    int64_t t0 = now_ms();
    shutdown(a->fd, SHUT_WR);
    ok(expect(w.w1, "leave", NULL));
    ok(now_ms() - t0 < 2000);
    client_free(a);

    /* A request trickled a byte every 50 ms, never finished: cut at the upgrade timeout. */
    int fd = tcp_connect(s.port, false);
    static const char slow[] = "GET /ws/h HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa"
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    t0 = now_ms();
    bool cut = false;
    for (size_t i = 0; i < sizeof slow - 1 && !cut; i++) {
        if (send(fd, slow + i, 1, MSG_NOSIGNAL) != 1)
            cut = true;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            char buf[256];
            cut = recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0;
        }
    }
    ok(cut);
    ok(now_ms() - t0 >= 500 && now_ms() - t0 < 3000);
    close(fd);

    /* A head over the limit (TERN_HTTP_MAX_HEAD_BYTES): an error status and the end. */
    fd = tcp_connect(s.port, false);
    char *head = malloc(70000);
    int len = snprintf(head, 70000, "GET / HTTP/1.1\r\nHost: x\r\n");
    while (len < 65000)
        len += snprintf(head + len, (size_t)(70000 - len), "X-Pad-%d: %040d\r\n", len, 0);
    (void)write_all(fd, head, (size_t)len);
    char buf[512] = {0};
    struct timeval tv = {.tv_sec = GIVE_UP_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
    ok(got > 0 && (strncmp(buf, "HTTP/1.1 431", 12) == 0 || strncmp(buf, "HTTP/1.1 400", 12) == 0));
    close(fd);
    free(head);

    ok(witnesses_talk(&w));
    int rooms = -1, peers = -1;
    ok(healthz(s.port, &rooms, &peers));
    eq_int(peers, 3);
    witnesses_free(&w);
    eq_int(server_stop(&s), 0);
}

/* 10,000 messages as fast as the socket takes them; the attacker reads its errors. */
static void test_flood(void)
{
    server_t s;
    if (!ok(server_start(&s, NULL)))
        return;
    witnesses_t w;
    ok(witnesses_join(&w, s.port, "flood"));
    long rss_before = server_rss(&s);
    for (int round = 0; round < 2; round++) {
        client_t *a = client_join(s.port, "flood");
        ok(a && a->id[0]);
        ok(expect(w.w1, "join", NULL));
        ok(expect(w.w2, "join", NULL));
        int limited = 0, relayed = 0;
        int64_t t0 = now_ms();
        for (int i = 0; i < 10000 && a->fd >= 0; i++) {
            while (tern_ws_send_text(a->ws, tern_io_clock_now(), "{\"type\":\"flood\"}", 16) ==
                       TERN_ERR_AGAIN &&
                   a->fd >= 0)
                client_pump(a, 5);
            if (i % 64 == 0) {
                client_pump(a, 0);
                client_pump(w.w2, 0);
            }
            json_t *j;
            while (a->count && (j = client_next(a, 0)) != NULL) {
                limited += strcmp(jstr(j, "code"), "rate-limited") == 0;
                json_decref(j);
            }
            while (w.w2->count && (j = client_next(w.w2, 0)) != NULL) {
                relayed += strcmp(jstr(j, "type"), "flood") == 0;
                json_decref(j);
            }
        }
        /* collect the tail */
        for (int64_t until = now_ms() + 1500; now_ms() < until;) {
            json_t *j = client_next(a, 20);
            if (j) {
                limited += strcmp(jstr(j, "code"), "rate-limited") == 0;
                json_decref(j);
            }
            while ((j = client_next(w.w2, 0)) != NULL) {
                relayed += strcmp(jstr(j, "type"), "flood") == 0;
                json_decref(j);
            }
        }
        double secs = (double)(now_ms() - t0) / 1000 + 0.5;
        printf("# flood round %d: %d relayed, %d rate-limited, %u lost by the client queue%s %d\n",
               round, relayed, limited, a->dropped + w.w2->dropped,
               a->closed ? ", attacker closed with" : "", a->close_code);
        ok(!a->closed);
        /* the burst (200) plus 100/s while it lasted, no more */
        ok(relayed >= 150 && relayed <= 200 + (int)(100 * secs));
        /* every refused message is answered until the answers would fill half the output
         * bound; after that they are left out (signal_server.c on_message) */
        ok(limited >= 1000 && limited + relayed <= 10000);
        ok(a->dropped + w.w2->dropped == 0);
        client_free(a);
        ok(expect(w.w1, "leave", NULL));
        ok(witnesses_talk(&w));
        if (round == 0)
            rss_before = server_rss(&s);
    }
    long rss_after = server_rss(&s);
    printf("# server RSS after the first flood %ld KiB, after the second %ld KiB\n",
           rss_before / 1024, rss_after / 1024);
    ok(rss_after <= rss_before + RSS_SLACK);
    witnesses_free(&w);
    eq_int(server_stop(&s), 0);
}

/* Whether a string occurs in bytes that may hold NULs (frame headers). */
static bool has(const char *data, size_t len, const char *s)
{
    return memmem(data, len, s, strlen(s)) != NULL;
}

/* CROWD connections at once into one room, then all dropped (a third with a reset). */
static void crowd_round(server_t *s, int *welcomed, int *full, int *closed_1008)
{
    static int fds[CROWD];
    static char seen[CROWD][4096];
    static size_t seen_len[CROWD];
    *welcomed = *full = *closed_1008 = 0;
    for (int i = 0; i < CROWD; i++) {
        fds[i] = tcp_connect(s->port, true);
        seen_len[i] = 0;
    }
    static const char req[] =
        "GET /ws/crowd HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    for (int i = 0; i < CROWD; i++)
        if (fds[i] >= 0 && !write_all(fds[i], req, sizeof req - 1)) {
            close(fds[i]);
            fds[i] = -1;
        }
    /* Read until every connection has its welcome or its room-full, or the time is up. */
    int64_t give_up = now_ms() + 3 * GIVE_UP_MS;
    static struct pollfd pfd[CROWD];
    for (;;) {
        int waiting = 0;
        for (int i = 0; i < CROWD; i++) {
            pfd[i].fd = -1;
            if (fds[i] < 0)
                continue;
            bool done =
                has(seen[i], seen_len[i], "\"welcome\"") ||
                (has(seen[i], seen_len[i], "room-full") && has(seen[i], seen_len[i], "\x88")) ||
                seen_len[i] == sizeof seen[i];
            if (!done) {
                pfd[i].fd = fds[i];
                pfd[i].events = POLLIN;
                waiting++;
            }
        }
        if (!waiting || now_ms() > give_up)
            break;
        if (poll(pfd, CROWD, 100) <= 0)
            continue;
        for (int i = 0; i < CROWD; i++) {
            if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n =
                recv(fds[i], seen[i] + seen_len[i], sizeof seen[i] - 1 - seen_len[i], MSG_DONTWAIT);
            if (n > 0)
                seen_len[i] += (size_t)n;
            else if (n == 0 || errno != EAGAIN) {
                close(fds[i]);
                fds[i] = -1;
            }
        }
    }
    for (int i = 0; i < CROWD; i++) {
        if (has(seen[i], seen_len[i], "\"welcome\""))
            (*welcomed)++;
        if (has(seen[i], seen_len[i], "room-full")) {
            (*full)++;
            /* the close frame after it: 0x88, length 2+, code 1008 (0x03f0) */
            const char *f = memmem(seen[i], seen_len[i], "\x88", 1);
            if (f && (size_t)(f - seen[i]) + 4 <= seen_len[i] && (uint8_t)f[2] == 0x03 &&
                (uint8_t)f[3] == 0xf0)
                (*closed_1008)++;
        }
    }
    /* Drop them all at once: a third with a reset (SO_LINGER 0), the rest with a FIN. */
    for (int i = 0; i < CROWD; i++) {
        if (fds[i] < 0)
            continue;
        if (i % 3 == 0) {
            struct linger l = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(fds[i]);
    }
}

static void test_crowd(void)
{
    server_t s;
    if (!ok(server_start(&s, NULL)))
        return;
    witnesses_t w;
    ok(witnesses_join(&w, s.port, "calm"));
    long rss_first = 0;
    for (int round = 0; round < 2; round++) {
        int welcomed, full, closed_1008;
        crowd_round(&s, &welcomed, &full, &closed_1008);
        printf("# crowd round %d: %d welcomed, %d room-full (%d with 1008)\n", round, welcomed,
               full, closed_1008);
        eq_int(welcomed, TERN_MIN(CROWD, 16)); /* the default room limit */
        eq_int(full, CROWD - 16);
        eq_int(closed_1008, CROWD - 16);
        /* everyone gone: only the witnesses are left */
        int rooms = -1, peers = -1;
        int64_t give_up = now_ms() + GIVE_UP_MS;
        while (now_ms() < give_up && (!healthz(s.port, &rooms, &peers) || peers != 3))
            sleep_ms(50);
        eq_int(rooms, 2);
        eq_int(peers, 3);
        ok(witnesses_talk(&w));
        if (round == 0)
            rss_first = server_rss(&s);
    }
    long rss_second = server_rss(&s);
    printf("# server RSS after the first crowd %ld KiB, after the second %ld KiB\n",
           rss_first / 1024, rss_second / 1024);
    ok(rss_second <= rss_first + RSS_SLACK);

    /* The same crowd that never upgrades: just connects and leaves. */
    static int fds[CROWD];
    for (int i = 0; i < CROWD; i++)
        fds[i] = tcp_connect(s.port, true);
    sleep_ms(200);
    for (int i = 0; i < CROWD; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    ok(witnesses_talk(&w));
    witnesses_free(&w);
    eq_int(server_stop(&s), 0);
}

static void test_other_room(void)
{
    server_t s;
    if (!ok(server_start(&s, NULL)))
        return;
    client_t *a = client_join(s.port, "one");
    client_t *b = client_join(s.port, "two");
    client_t *c = client_join(s.port, "two");
    ok(a && b && c && a->id[0] && b->id[0]);
    if (a && b && c) {
        ok(expect(b, "join", NULL));
        char msg[128];
        snprintf(msg, sizeof msg, "{\"type\":\"offer\",\"sdp\":\"x\",\"to\":\"%s\"}", b->id);
        client_send(a, msg);
        ok(expect(a, "error", "unknown-peer"));
        /* nothing reached room two: b hears c's message first */
        client_send(c, "{\"type\":\"marker\"}");
        json_t *j = client_next(b, GIVE_UP_MS);
        eq_str(jstr(j, "type"), "marker");
        json_decref(j);
        /* nor does a broadcast cross rooms */
        client_send(a, "{\"type\":\"to-all\"}");
        client_send(c, "{\"type\":\"marker2\"}");
        j = client_next(b, GIVE_UP_MS);
        eq_str(jstr(j, "type"), "marker2");
        json_decref(j);
    }
    client_free(a);
    client_free(b);
    client_free(c);
    eq_int(server_stop(&s), 0);
}

/* Run a subtest unless the command line names others (a word of their names). */
static const char *only;
#define RUN(name, fn)                                                                              \
    do {                                                                                           \
        if (!only || strstr(name, only))                                                           \
            subtest(name, fn);                                                                     \
    } while (0)

int main(int argc, char **argv)
{
    only = argc > 1 ? argv[1] : NULL;
    signal(SIGPIPE, SIG_IGN);
    if (!find_signal_bin()) {
        printf("1..0 # SKIP tern-signal is not built beside this test\n");
        return 0;
    }
    uint64_t seed = 42;
    tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
    if (tern_ctx_new(&cfg, &ctx) != TERN_OK)
        return 1;
    RUN("protocol violations", test_protocol_violations);
    RUN("half-closed, slow and huge requests", test_half_closed_and_slow_requests);
    RUN("a message to another room", test_other_room);
    RUN("flood of 10000 messages", test_flood);
    RUN("1000 connections at once", test_crowd);
    tern_ctx_free(ctx);
    return check_done();
}
