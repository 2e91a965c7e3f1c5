/* SPDX-License-Identifier: MIT */
/*
 * tern-signal's command line: options, the process set-up (file descriptor limit, SIGPIPE,
 * SIGINT/SIGTERM through a signalfd watched by the loop), and the run. The first SIGINT or
 * SIGTERM starts a clean stop (close frames, at most a second for the close handshakes); a
 * second one ends at once. Everything is freed before exit.
 */
#include "signaling.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define EXIT_USAGE 2

static const char usage[] =
    "usage: tern-signal --listen HOST:PORT [options]\n"
    "\n"
    "The tern signaling server: WebSocket rooms at ws://HOST:PORT/ws/ROOM (wss:// with\n"
    "--tls-cert/--tls-key), GET /healthz, static files, and a STUN Binding responder on UDP.\n"
    "\n"
    "  --listen HOST:PORT       TCP address: 127.0.0.1:8080, [::1]:8080, localhost:8080;\n"
    "                           0.0.0.0 is every IPv4 address, [::] every address (v4 and v6);\n"
    "                           port 0 picks a free port (printed at start)\n"
    "  --root DIR               serve the files under DIR (/ is DIR/index.html)\n"
    "  --stun-port N            UDP port of the STUN responder, on HOST (default 3478; 0: any)\n"
    "  --no-stun                no STUN responder\n"
    "  --ice-server URL         an ICE server handed out in welcome (repeatable), as\n"
    "                           SCHEME:[USER:CREDENTIAL@]HOST[:PORT][?transport=udp|tcp]\n"
    "                           with SCHEME stun, stuns, turn or turns; write ':' '@' '%'\n"
    "                           inside USER or CREDENTIAL as %3A %40 %25. Examples:\n"
    "                             stun:stun.example.org:3478\n"
    "                             turn:alice:s3cret@turn.example.org:3478?transport=udp\n"
    "  --tls-cert FILE          PEM certificate (chain) for wss:// and https://\n"
    "  --tls-key FILE           PEM private key of that certificate\n"
    "  --max-room-peers N       peers per room (default 16); more: error room-full, 1008\n"
    "  --max-message-bytes N    largest message (default 65536); more: too-large, 1009\n"
    "  --rate N/s               messages per second per peer (default 100/s, burst twice\n"
    "                           that); more: error rate-limited, the message is dropped\n"
    "  --max-output-bytes N     bytes queued for one peer before it is dropped as a slow\n"
    "                           reader (default 262144)\n"
    "  --upgrade-timeout-ms N   time to finish the HTTP upgrade (default 10000)\n"
    "  --ping-interval-ms N     ping a silent peer this often (default 10000)\n"
    "  --pong-timeout-ms N      drop a peer silent this long, pings unanswered (default 30000)\n"
    "  --log FILTER             log filter as TERN_LOG: info (default), debug, warn,\n"
    "                           signal=debug,io=warn ...\n"
    "  --help                   this text\n"
    "\n"
    "Logs one line per connection and per error on stderr. SIGINT or SIGTERM stops it cleanly.\n";

typedef struct options {
    tern_signal_config_t cfg;
    const char *listen;
    const char *log;
} options_t;

static int usage_error(const char *fmt, ...) TERN_PRINTF(1, 2);

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tern-signal: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(tern-signal --help lists the options)\n");
    va_end(ap);
    return EXIT_USAGE;
}

/* An integer in [min, max], the whole text. */
static bool parse_uint(const char *text, unsigned long long min, unsigned long long max,
                       unsigned long long *out)
{
    if (!text || *text < '0' || *text > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* HOST:PORT, [V6]:PORT; a name is resolved (its first address). */
static bool parse_listen(const char *text, tern_addr_t *out)
{
    const char *colon = strrchr(text, ':');
    unsigned long long port;
    if (!colon || !parse_uint(colon + 1, 0, 65535, &port))
        return false;
    char host[256];
    size_t n = (size_t)(colon - text);
    if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
        text++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof host)
        return false;
    memcpy(host, text, n);
    host[n] = '\0';
    bool ok = tern_addr_parse(host, out) == TERN_OK;
    if (!ok) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
        struct addrinfo *res = NULL;
        if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
            return false;
        char ip[TERN_ADDR_STRLEN];
        ok = getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof ip, NULL, 0, NI_NUMERICHOST) ==
                 0 &&
             tern_addr_parse(ip, out) == TERN_OK;
        freeaddrinfo(res);
    }
    out->port = (uint16_t)port;
    return ok;
}

static int parse_args(int argc, char **argv, options_t *o, json_t *ice)
{
    memset(o, 0, sizeof *o);
    o->cfg.stun_enabled = true;
    o->cfg.stun_port = TERN_SIGNAL_DEFAULT_STUN_PORT;
    o->cfg.ice_servers = ice;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        if (strcmp(opt, "--no-stun") == 0) {
            o->cfg.stun_enabled = false;
            continue;
        }
        if (strncmp(opt, "--", 2) != 0)
            return usage_error("unexpected argument '%s'", opt);
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            return usage_error("%s needs a value", opt);
        i++;
        unsigned long long v = 0;
        char err[512];
        if (strcmp(opt, "--listen") == 0) {
            o->listen = val;
            if (!parse_listen(val, &o->cfg.listen))
                return usage_error("bad --listen '%s': HOST:PORT expected", val);
        } else if (strcmp(opt, "--root") == 0) {
            o->cfg.root = val;
        } else if (strcmp(opt, "--stun-port") == 0) {
            if (!parse_uint(val, 0, 65535, &v))
                return usage_error("bad --stun-port '%s': 0 to 65535", val);
            o->cfg.stun_port = (uint16_t)v;
        } else if (strcmp(opt, "--ice-server") == 0) {
            if (json_array_size(ice) >= TERN_SIGNAL_MAX_ICE_SERVERS)
                return usage_error("too many --ice-server (%d at most)",
                                   TERN_SIGNAL_MAX_ICE_SERVERS);
            if (tern_signal_ice_server_add(ice, val, err, sizeof err) != TERN_OK)
                return usage_error("%s", err);
        } else if (strcmp(opt, "--tls-cert") == 0) {
            o->cfg.tls_cert = val;
        } else if (strcmp(opt, "--tls-key") == 0) {
            o->cfg.tls_key = val;
        } else if (strcmp(opt, "--max-room-peers") == 0) {
            if (!parse_uint(val, 1, 100000, &v))
                return usage_error("bad --max-room-peers '%s': 1 to 100000", val);
            o->cfg.max_room_peers = (size_t)v;
        } else if (strcmp(opt, "--max-message-bytes") == 0) {
            if (!parse_uint(val, 256, 16 * 1024 * 1024, &v))
                return usage_error("bad --max-message-bytes '%s': 256 to 16777216", val);
            o->cfg.max_message_bytes = (size_t)v;
        } else if (strcmp(opt, "--rate") == 0) {
            char num[32];
            size_t n = strcspn(val, "/");
            if (n >= sizeof num || (val[n] && strcmp(val + n, "/s") != 0))
                return usage_error("bad --rate '%s': N/s expected", val);
            memcpy(num, val, n);
            num[n] = '\0';
            if (!parse_uint(num, 1, 1000000, &v))
                return usage_error("bad --rate '%s': 1/s to 1000000/s", val);
            o->cfg.rate_per_s = (uint32_t)v;
        } else if (strcmp(opt, "--max-output-bytes") == 0) {
            if (!parse_uint(val, 4096, 1024ULL * 1024 * 1024, &v))
                return usage_error("bad --max-output-bytes '%s': 4096 to 1 GiB", val);
            o->cfg.max_output_bytes = (size_t)v;
        } else if (strcmp(opt, "--upgrade-timeout-ms") == 0 ||
                   strcmp(opt, "--ping-interval-ms") == 0 ||
                   strcmp(opt, "--pong-timeout-ms") == 0) {
            if (!parse_uint(val, 1, 86400000, &v))
                return usage_error("bad value '%s': 1 to 86400000 ms", val);
            if (opt[2] == 'u')
                o->cfg.upgrade_timeout_ms = (uint32_t)v;
            else if (opt[3] == 'i')
                o->cfg.ping_interval_ms = (uint32_t)v;
            else
                o->cfg.pong_timeout_ms = (uint32_t)v;
        } else if (strcmp(opt, "--log") == 0) {
            o->log = val;
        } else {
            return usage_error("unknown option '%s'", opt);
        }
    }
    if (!o->listen)
        return usage_error("%s", "--listen HOST:PORT is required");
    if (!o->cfg.tls_cert != !o->cfg.tls_key)
        return usage_error("%s", "--tls-cert and --tls-key go together");
    return 0;
}

/* ---- signals ---- */

typedef struct run {
    tern_ctx_t *ctx;
    tern_loop_t *loop;
    tern_signal_server_t *server;
    int sigfd;
    tern_fd_watch_t *sigwatch;
    int signals;
} run_t;

static void on_done(void *arg)
{
    run_t *r = arg;
    tern_loop_stop(r->loop);
}

static void on_signal(void *arg, int fd, unsigned events)
{
    run_t *r = arg;
    (void)events;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (++r->signals == 1) {
            TERN_LOG_INFO(r->ctx, "signal", "%s: stopping", strsignal((int)si.ssi_signo));
            tern_signal_server_shutdown(r->server, on_done, r);
        } else {
            tern_loop_stop(r->loop);
        }
    }
}

static int open_signalfd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Thousands of clients need thousands of descriptors: take what the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void print_addrs(const tern_signal_server_t *s, bool tls)
{
    tern_addr_t tcp, stun;
    tern_signal_server_addrs(s, &tcp, &stun);
    char a[TERN_ADDR_STRLEN], b[TERN_ADDR_STRLEN];
    tern_addr_format(&tcp, a, sizeof a);
    /* One line on stdout, for people and for scripts that started us with port 0. */
    printf("tern-signal: %s://%s/ws/ROOM %s://%s/ %s%s\n", tls ? "wss" : "ws", a,
           tls ? "https" : "http", a, stun.family ? "stun:" : "stun:off",
           stun.family ? tern_addr_format(&stun, b, sizeof b) : "");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    json_t *ice = json_array();
    options_t o;
    int rc = ice ? parse_args(argc, argv, &o, ice) : 1;
    if (rc != 0) {
        json_decref(ice);
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    if (o.log)
        tern_log_stderr_set_filter(o.log);
    else if (!getenv("TERN_LOG"))
        tern_log_stderr_set_filter("info");

    run_t r = {.sigfd = -1};
    tern_ctx_t *ctx = NULL;
    int exit_code = 1;
    char err[512] = "";
    if (tern_ctx_new(NULL, &ctx) != TERN_OK || tern_loop_new(ctx, &r.loop) != TERN_OK) {
        fprintf(stderr, "tern-signal: cannot set up the event loop\n");
        goto out;
    }
    r.ctx = ctx;
    if (tern_signal_server_new(r.loop, ctx, &o.cfg, &r.server, err, sizeof err) != TERN_OK) {
        fprintf(stderr, "tern-signal: %s\n", err);
        goto out;
    }
    r.sigfd = open_signalfd();
    if (r.sigfd < 0 ||
        tern_loop_watch_fd(r.loop, r.sigfd, TERN_FD_READABLE, on_signal, &r, &r.sigwatch) != 0) {
        fprintf(stderr, "tern-signal: cannot watch signals: %s\n", strerror(errno));
        goto out;
    }
    print_addrs(r.server, o.cfg.tls_cert != NULL);
    exit_code = tern_loop_run(r.loop) == TERN_OK ? 0 : 1;
out:
    tern_signal_server_free(r.server);
    if (r.loop)
        tern_loop_unwatch_fd(r.loop, r.sigwatch);
    if (r.sigfd >= 0)
        close(r.sigfd);
    tern_loop_free(r.loop);
    tern_ctx_free(ctx);
    json_decref(ice);
    return exit_code;
}
