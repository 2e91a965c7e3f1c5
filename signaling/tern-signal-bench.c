/* SPDX-License-Identifier: MIT */
/*
 * tern-signal-bench: many WebSocket clients against a tern-signal server, on one thread (the
 * project's own loop, streams and src/ws/ client endpoint). Clients join rooms of two; each
 * sends its partner messages carrying the send time ("to" the partner's id), and the receiver
 * measures the relay latency (both processes read the same CLOCK_MONOTONIC). Two phases per
 * client count:
 *   paced:  every client sends --pace messages a second (latency under a light, even load);
 *   closed: every client keeps --window messages in flight, answering each message it gets
 *           with a new one (the server's relay rate at saturation, and the latency then).
 * With --spawn PATH (the default when tern-signal sits beside this program and no --server is
 * given) it starts the server itself, without rate limit, and reads the server's RSS to report
 * memory per connection. Figures are lines "bench NAME VALUE UNIT"; everything else starts
 * with '#'. Not installed; asserts nothing about speed.
 */
#include "io/io.h"
#include "io/io_stream.h"
#include "util/util.h"
#include "ws/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LATENCIES (4u << 20)
#define CONNECTS_IN_FLIGHT 256

static const char usage[] =
    "usage: tern-signal-bench [--server HOST:PORT | --spawn PATH] [options]\n"
    "  --clients N[,N...]   client counts to run, one after the other (default 1000,10000)\n"
    "  --seconds S          length of each phase (default 5)\n"
    "  --pace R             messages per second per client in the paced phase (default 1)\n"
    "  --window W           messages in flight per client in the closed phase (default 1)\n"
    "  --size B             message size in bytes, about (default 200)\n"
    "  --server HOST:PORT   a running server (start it with --rate 1000000/s)\n"
    "  --spawn PATH         start PATH (tern-signal) on 127.0.0.1 and measure its memory\n";

typedef struct bench bench_t;

typedef struct client {
    bench_t *b;
    int index;
    tern_io_stream_t st;
    tern_fd_watch_t *w;
    unsigned watched;
    tern_ws_t *ws;
    bool connecting, open, welcomed, failed;
    char id[32];
    struct client *partner;
    uint64_t seq;
} client_t;

struct bench {
    tern_ctx_t *ctx;
    tern_loop_t *loop;
    tern_addr_t server;
    client_t *clients;
    int n;
    int started, welcomed, failed, connecting;
    /* measurement */
    bool measuring, closed_loop;
    uint64_t received, sent;
    uint32_t *lat_us;
    size_t lat_count;
    int size;
    char host[TERN_ADDR_STRLEN];
};

static tern_time_t now_us(void)
{
    return tern_io_clock_now();
}

/* ---- one client ---- */

static void client_fail(client_t *c)
{
    if (c->failed)
        return;
    c->failed = true;
    c->b->failed++;
    tern_loop_unwatch_fd(c->b->loop, c->w);
    c->w = NULL;
}

static void client_flush(client_t *c)
{
    const uint8_t *data;
    size_t len;
    while (tern_ws_poll_output(c->ws, &data, &len)) {
        long n = tern_io_stream_write(&c->st, data, len);
        if (n == TERN_ERR_AGAIN)
            break;
        if (n < 0) {
            client_fail(c);
            return;
        }
        tern_ws_consume_output(c->ws, (size_t)n);
    }
    unsigned want = tern_io_stream_events(&c->st, tern_ws_buffered_amount(c->ws) > 0);
    if (c->w && want != c->watched && tern_loop_update_fd(c->b->loop, c->w, want) == TERN_OK)
        c->watched = want;
}

static void client_send(client_t *c)
{
    if (!c->partner || !c->partner->welcomed || c->failed)
        return;
    char msg[4096];
    int pad = TERN_MAX(c->b->size - 80, 0);
    int n = snprintf(msg, sizeof msg, "{\"type\":\"b\",\"to\":\"%s\",\"t\":%lld,\"p\":\"%0*d\"}",
                     c->partner->id, (long long)now_us(), TERN_MIN(pad, 3900), 0);
    if (tern_ws_send_text(c->ws, now_us(), msg, (size_t)n) == TERN_OK)
        c->b->sent++;
    client_flush(c);
}

/* A message: the welcome (our id) or a relayed one (its latency). */
static void client_message(client_t *c, const char *text, size_t len)
{
    bench_t *b = c->b;
    if (!c->welcomed) {
        const char *p = strstr(text, "\"id\":\"");
        if (!p || len < 8)
            return;
        p += 6;
        size_t n = strcspn(p, "\"");
        snprintf(c->id, sizeof c->id, "%.*s", (int)TERN_MIN(n, sizeof c->id - 1), p);
        c->welcomed = true;
        b->welcomed++;
        return;
    }
    const char *t = strstr(text, "\"t\":");
    if (!t)
        return;
    long long sent_at = strtoll(t + 4, NULL, 10);
    if (b->measuring) {
        b->received++;
        if (b->lat_count < MAX_LATENCIES)
            b->lat_us[b->lat_count++] = (uint32_t)TERN_MIN(now_us() - sent_at, UINT32_MAX);
    }
    if (b->closed_loop)
        client_send(c);
}

static void client_drain(client_t *c)
{
    tern_ws_event_t ev;
    while (!c->failed && tern_ws_poll_event(c->ws, &ev)) {
        if (ev.type == TERN_WS_EV_OPEN)
            c->open = true;
        else if (ev.type == TERN_WS_EV_MESSAGE)
            client_message(c, (const char *)ev.u.message.data, ev.u.message.len);
        else if (ev.type == TERN_WS_EV_CLOSE)
            client_fail(c);
    }
    if (!c->failed)
        client_flush(c);
}

static void on_client(void *arg, int fd, unsigned events)
{
    client_t *c = arg;
    (void)fd;
    if (c->connecting) {
        if (!(events & (TERN_FD_WRITABLE | TERN_FD_ERROR)))
            return;
        c->connecting = false;
        c->b->connecting--;
        if (tern_io_tcp_connect_result(c->st.fd) != TERN_OK) {
            client_fail(c);
            return;
        }
        client_flush(c);
        return;
    }
    if (events & TERN_FD_WRITABLE)
        client_flush(c);
    uint8_t buf[16384];
    while (!c->failed) {
        long n = tern_io_stream_read(&c->st, buf, sizeof buf);
        if (n == TERN_ERR_AGAIN)
            break;
        if (n < 0) {
            client_fail(c);
            break;
        }
        tern_ws_handle_input(c->ws, now_us(), buf, (size_t)n);
        client_drain(c);
        if ((size_t)n < sizeof buf)
            break; /* drained: the fd is level-triggered */
    }
}

/* Start connecting client `index` (counted in started whatever happens). */
static void client_start(bench_t *b, client_t *c, int index)
{
    memset(c, 0, sizeof *c);
    c->b = b;
    c->index = index;
    c->st.fd = -1;
    b->started++;
    int fd = tern_io_tcp_connect(&b->server, NULL);
    if (fd < 0) {
        printf("# cannot start client %d: %s\n", index, strerror(errno));
        client_fail(c);
        return;
    }
    tern_io_stream_init(&c->st, fd, NULL, NULL);
    char target[64];
    snprintf(target, sizeof target, "/ws/bench-%d", index / 2);
    tern_ws_config_t cfg = {.role = TERN_WS_ROLE_CLIENT,
                            .host = b->host,
                            .target = target,
                            .ping_interval_us = TERN_TIME_NEVER,
                            .idle_timeout_us = TERN_TIME_NEVER,
                            .max_output_bytes = 1 << 20};
    c->watched = TERN_FD_READABLE | TERN_FD_WRITABLE;
    if (tern_ws_new(b->ctx, &cfg, now_us(), &c->ws) != TERN_OK ||
        tern_loop_watch_fd(b->loop, fd, c->watched, on_client, c, &c->w) != TERN_OK) {
        client_fail(c);
        return;
    }
    c->connecting = true;
    b->connecting++;
}

static void clients_free(bench_t *b)
{
    for (int i = 0; i < b->started; i++) {
        client_t *c = &b->clients[i];
        tern_loop_unwatch_fd(b->loop, c->w);
        tern_ws_free(c->ws);
        tern_io_stream_close(&c->st);
    }
    free(b->clients);
    b->clients = NULL;
    b->started = b->welcomed = b->failed = b->connecting = 0;
    /* Let the loop free the unwatched entries. */
    tern_loop_run_once(b->loop, 0);
}

/* ---- the server process ---- */

typedef struct server {
    pid_t pid;
    int out;
} server_t;

static bool spawn_server(const char *path, server_t *s, tern_addr_t *addr)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return false;
    s->pid = fork();
    if (s->pid == 0) {
        dup2(p[1], 1);
        execl(path, path, "--listen", "127.0.0.1:0", "--no-stun", "--rate", "1000000/s",
              "--max-room-peers", "4", "--log", "warn", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    s->out = p[0];
    char line[512];
    size_t n = 0;
    while (n + 1 < sizeof line) {
        struct pollfd pf = {.fd = s->out, .events = POLLIN};
        if (poll(&pf, 1, 10000) <= 0 || read(s->out, line + n, 1) != 1)
            return false;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    const char *a = strstr(line, "://");
    if (!a)
        return false;
    char text[128];
    snprintf(text, sizeof text, "%.*s", (int)strcspn(a + 3, "/"), a + 3);
    return tern_addr_parse(text, addr) == TERN_OK;
}

static size_t server_rss_kib(const server_t *s)
{
    if (s->pid <= 0)
        return 0;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r");
    size_t kib = 0;
    while (f && fgets(buf, sizeof buf, f))
        if (sscanf(buf, "VmRSS: %zu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static double server_cpu_s(const server_t *s)
{
    if (s->pid <= 0)
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)s->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    /* Fields after the command: state is 3rd, utime 14th, stime 15th. */
    if (p &&
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) == 2)
        return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

static void stop_server(server_t *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    close(s->out);
    s->pid = 0;
}

/* ---- phases ---- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void run_for(bench_t *b, double seconds, double pace)
{
    tern_time_t end = now_us() + (tern_time_t)(seconds * 1e6);
    /* Paced sending: each client's turn comes every 1/pace s, spread over that interval. */
    double interval_us = pace > 0 ? 1e6 / pace : 0;
    tern_time_t start = now_us();
    uint64_t turns_done = 0;
    while (now_us() < end) {
        tern_loop_run_once(b->loop, pace > 0 ? 1 : 10);
        if (pace <= 0)
            continue;
        double elapsed = (double)(now_us() - start);
        uint64_t due = (uint64_t)(elapsed / interval_us * b->n);
        for (; turns_done < due; turns_done++)
            client_send(&b->clients[turns_done % (uint64_t)b->n]);
    }
}

static void report_phase(bench_t *b, const char *name, int n, double seconds)
{
    char label[64];
    snprintf(label, sizeof label, "signal_%s_%d", name, n);
    printf("bench %s_rate %.0f msg/s\n", label, (double)b->received / seconds);
    if (b->lat_count) {
        qsort(b->lat_us, b->lat_count, sizeof *b->lat_us, cmp_u32);
        printf("bench %s_p50 %u us\n", label, b->lat_us[b->lat_count / 2]);
        printf("bench %s_p99 %u us\n", label, b->lat_us[b->lat_count * 99 / 100]);
    }
    printf("# %s: %llu sent, %llu received, %zu latencies\n", label, (unsigned long long)b->sent,
           (unsigned long long)b->received, b->lat_count);
    fflush(stdout);
}

static void measure_start(bench_t *b, bool closed)
{
    b->received = b->sent = 0;
    b->lat_count = 0;
    b->closed_loop = closed;
    b->measuring = true;
}

static int run_count(bench_t *b, int n, double seconds, double pace, int window,
                     const server_t *srv)
{
    b->n = n;
    b->clients = calloc((size_t)n, sizeof *b->clients);
    size_t rss0 = server_rss_kib(srv);
    tern_time_t t0 = now_us();
    tern_time_t give_up = t0 + TERN_SEC(60);
    /* Connect, at most CONNECTS_IN_FLIGHT handshakes at a time (a burst of SYNs larger than
     * the backlog would only measure SYN retransmission). */
    while ((b->welcomed + b->failed < n) && now_us() < give_up) {
        while (b->started < n && b->started - b->welcomed - b->failed < CONNECTS_IN_FLIGHT)
            client_start(b, &b->clients[b->started], b->started);
        tern_loop_run_once(b->loop, 10);
    }
    double connect_s = (double)(now_us() - t0) / 1e6;
    printf("# %d clients: %d welcomed, %d failed in %.2f s\n", n, b->welcomed, b->failed,
           connect_s);
    if (b->welcomed < n) {
        clients_free(b);
        return 1;
    }
    printf("bench signal_connect_%d %.3f s\n", n, connect_s);
    for (int i = 0; i + 1 < n; i += 2) {
        b->clients[i].partner = &b->clients[i + 1];
        b->clients[i + 1].partner = &b->clients[i];
    }
    /* Let the join messages settle, then read the server's memory. */
    run_for(b, 1.0, 0);
    size_t rss1 = server_rss_kib(srv);
    if (rss1 && rss0)
        printf("bench signal_server_kib_per_conn_%d %.1f KiB\n", n,
               (double)(rss1 - rss0) / (double)n);

    measure_start(b, false);
    double cpu0 = server_cpu_s(srv);
    run_for(b, seconds, pace);
    b->measuring = false;
    report_phase(b, "paced", n, seconds);
    run_for(b, 0.5, 0); /* drain */

    measure_start(b, true);
    cpu0 = server_cpu_s(srv);
    for (int w = 0; w < window; w++)
        for (int i = 0; i < n; i++)
            client_send(&b->clients[i]);
    run_for(b, seconds, 0);
    b->measuring = false;
    b->closed_loop = false;
    double cpu = server_cpu_s(srv) - cpu0;
    report_phase(b, "closed", n, seconds);
    if (srv->pid > 0 && cpu > 0)
        printf("# server CPU %.2f s over %.1f s: %.0f msg per CPU second\n", cpu, seconds,
               (double)b->received / cpu);
    run_for(b, 0.5, 0);
    int failed = b->failed;
    clients_free(b);
    return failed ? 1 : 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static const char *sibling_server(const char *argv0, char *buf, size_t cap)
{
    const char *slash = strrchr(argv0, '/');
    int dir = slash ? (int)(slash - argv0 + 1) : 0;
    snprintf(buf, cap, "%.*stern-signal", dir, argv0);
    return access(buf, X_OK) == 0 ? buf : NULL;
}

int main(int argc, char **argv)
{
    const char *counts = "1000,10000", *server_arg = NULL, *spawn = NULL;
    double seconds = 5, pace = 1;
    int window = 1, size = 200;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (v && strcmp(argv[i], "--clients") == 0) {
            counts = v;
        } else if (v && strcmp(argv[i], "--seconds") == 0) {
            seconds = atof(v);
        } else if (v && strcmp(argv[i], "--pace") == 0) {
            pace = atof(v);
        } else if (v && strcmp(argv[i], "--window") == 0) {
            window = atoi(v);
        } else if (v && strcmp(argv[i], "--size") == 0) {
            size = atoi(v);
        } else if (v && strcmp(argv[i], "--server") == 0) {
            server_arg = v;
        } else if (v && strcmp(argv[i], "--spawn") == 0) {
            spawn = v;
        } else {
            fprintf(stderr, "tern-signal-bench: bad argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    bench_t b = {.size = size};
    server_t srv = {0};
    char path[PATH_MAX];
    if (!server_arg && !spawn)
        spawn = sibling_server(argv[0], path, sizeof path);
    if (server_arg) {
        if (tern_addr_parse(server_arg, &b.server) != TERN_OK) {
            fprintf(stderr, "tern-signal-bench: bad --server '%s'\n", server_arg);
            return 2;
        }
    } else if (!spawn || !spawn_server(spawn, &srv, &b.server)) {
        fprintf(stderr, "tern-signal-bench: no server (give --server or --spawn)\n");
        return 2;
    }
    tern_addr_format(&b.server, b.host, sizeof b.host);
    double load[3] = {0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
            load[0] = 0;
        fclose(la);
    }
    printf("# tern-signal-bench against %s%s; load average %.2f; %ld cpus\n", b.host,
           srv.pid ? " (spawned)" : "", load[0], sysconf(_SC_NPROCESSORS_ONLN));
    printf("# phases of %.1f s: paced %.1f msg/s per client, closed loop %d in flight per "
           "client; ~%d-byte messages\n",
           seconds, pace, window, size);
    tern_ctx_config_t cfg = {.log_level = TERN_LOG_ERROR};
    tern_ctx_new(&cfg, &b.ctx);
    tern_loop_new(b.ctx, &b.loop);
    b.lat_us = malloc(MAX_LATENCIES * sizeof *b.lat_us);
    int rc = 0;
    for (const char *p = counts; *p;) {
        int n = atoi(p);
        if (n >= 2)
            rc |= run_count(&b, n - n % 2, seconds, pace, window, &srv);
        p += strcspn(p, ",");
        p += *p == ',';
    }
    free(b.lat_us);
    tern_loop_free(b.loop);
    tern_ctx_free(b.ctx);
    stop_server(&srv);
    return rc;
}
