/* SPDX-License-Identifier: MIT */
/*
 * netlab_peer: the tern peer of the NAT lab's cases (tests/netlab). It joins a tern-signal room
 * through the library's signaling client. The answering side (--answer) echoes every message on
 * every channel, as tern-echo does. The offering side (--offer) opens the channel "netlab" to
 * the first peer of the room and takes commands from the driver on stdin, one per line:
 *
 *   send N SIZE     send N binary messages of SIZE bytes, paced by the buffered amount, and
 *                   check that every one comes back, in order and byte for byte
 *   pair            print the selected pair
 *   progress        print how far the running send is: "progress SENT ECHOED BUFFERED"
 *   restart         ICE restart: new credentials in a new offer, sent through the room
 *   quit            leave the room and exit
 *
 * It prints one line per fact on stdout, flushed, that the driver reads ("T" is milliseconds
 * since the offer was created, or since the start before that):
 *
 *   joined ID                   the room is joined
 *   candidate TYPE TRANSPORT ADDR:PORT    a local candidate (also "candidate end")
 *   ice STATE T / pc STATE T    ICE connection state and connection state changes
 *   open LABEL T                the channel opened: T is the time from offer to open
 *   pair LTYPE RTYPE LOCAL REMOTE RTT_US  the selected pair (also printed on every
 *                               "ice connected" and "ice completed")
 *   sent N SIZE T / echoed N SIZE T       a send command finished sending / all came back
 *   bad ...                     an echoed message differs from what was sent
 *   error ...                   anything else that went wrong
 *
 * With --gather instead of --signal, it only gathers: it makes a peer connection with one
 * channel, creates and applies an offer, prints every local candidate and then "gathered T"
 * when gathering completes, or "gather-timeout T" after --gather-ms (default 5000), and exits.
 *
 * Usage: netlab_peer (--signal ws://HOST:PORT/ws/ROOM (--offer|--answer) | --gather)
 *        [--ice-server URL]... [--disconnected-ms N] [--failed-ms N] [--gather-ms N]
 *        [--turn-ca PEM] [--relay-only]
 * --ice-server takes SCHEME:[USER:PASS@]HOST:PORT[?transport=udp|tcp] and replaces the room's
 * servers; --turn-ca names the certificates trusted for turns: servers (the lab's self-signed
 * one), --relay-only sets the W3C iceTransportPolicy "relay". Ends on "quit", end of input
 * (offering side), SIGTERM or SIGINT, freeing everything.
 */
#include <tern/signaling.h>
#include <tern/tern.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MAX_SERVERS 8
#define MAX_MSG (256 * 1024)
/* Pacing of "send": keep at most this much buffered, refill when it drops below the low mark. */
#define HIGH_WATER (512 * 1024)
#define LOW_WATER (128 * 1024)

typedef struct app {
    tern_ctx_t *ctx;
    tern_loop_t *loop;
    tern_signaling_t *sig;
    tern_pc_t *pc;
    tern_dc_t *dc; /* the offering side's "netlab" channel */
    bool offering;
    tern_time_t start, t0; /* t0: offer created (0 before) */
    /* the running send command */
    uint64_t n_total, n_sent, n_echoed;
    size_t size;
    bool sending, checking;
    uint8_t *buf;
    /* stdin line assembly */
    char line[256];
    size_t line_len;
    tern_fd_watch_t *stdin_watch;
    bool gathering; /* --gather */
    int failures;
} app_t;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Milliseconds since the offer was created (since the start before that), for every line. */
static double ms_since(const app_t *app)
{
    tern_time_t now = tern_loop_now(app->loop);
    return (double)(now - (app->t0 ? app->t0 : app->start)) / 1000.0;
}

/* Message i's bytes: its number, then a pattern of it, so a swap or a stale byte shows. */
static void fill_message(uint8_t *p, size_t size, uint64_t i)
{
    for (size_t j = 0; j < size; j++)
        p[j] = j < 8 ? (uint8_t)(i >> (8 * j)) : (uint8_t)(i * 131 + j * 7 + (j >> 8));
}

static void print_pair(app_t *app)
{
    tern_pc_pair_info_t pi;
    char la[TERN_ADDR_STRLEN], ra[TERN_ADDR_STRLEN];
    if (!app->pc || tern_pc_selected_pair(app->pc, &pi) != 0) {
        say("pair none");
        return;
    }
    say("pair %s %s %s %s %u", pi.local_type, pi.remote_type,
        tern_addr_format(&pi.local, la, sizeof la), tern_addr_format(&pi.remote, ra, sizeof ra),
        pi.rtt_us);
}

/* ---- the send command ---- */

static void pump(app_t *app)
{
    tern_time_t now = tern_loop_now(app->loop);
    while (app->sending && app->n_sent < app->n_total &&
           tern_dc_buffered_amount(app->dc) < HIGH_WATER) {
        fill_message(app->buf, app->size, app->n_sent);
        int rc = tern_dc_send(app->dc, now, app->buf, app->size);
        if (rc != 0) {
            say("error send %llu: %s", (unsigned long long)app->n_sent, tern_strerror(rc));
            app->sending = app->checking = false;
            app->failures++;
            return;
        }
        app->n_sent++;
    }
    if (app->sending && app->n_sent == app->n_total) {
        app->sending = false;
        say("sent %llu %zu %.1f", (unsigned long long)app->n_total, app->size, ms_since(app));
    }
}

static void start_send(app_t *app, uint64_t n, size_t size)
{
    if (!app->dc || tern_dc_state(app->dc) != TERN_DC_STATE_OPEN) {
        say("error send: the channel is not open");
        return;
    }
    if (app->sending || app->checking) {
        say("error send: a send is running");
        return;
    }
    if (size < 8 || size > MAX_MSG || n == 0) {
        say("error send: bad arguments");
        return;
    }
    app->n_total = n;
    app->n_sent = app->n_echoed = 0;
    app->size = size;
    app->sending = app->checking = true;
    pump(app);
}

static void check_echo(app_t *app, const uint8_t *data, size_t len)
{
    if (!app->checking) {
        say("bad unexpected message of %zu bytes", len);
        app->failures++;
        return;
    }
    uint64_t i = app->n_echoed;
    fill_message(app->buf, app->size, i);
    if (len != app->size || memcmp(data, app->buf, len) != 0) {
        uint64_t got = 0;
        for (size_t j = 0; j < 8 && j < len; j++)
            got |= (uint64_t)data[j] << (8 * j);
        say("bad message %llu: %zu bytes, numbered %llu", (unsigned long long)i, len,
            (unsigned long long)got);
        app->failures++;
        app->checking = app->sending = false;
        return;
    }
    if (++app->n_echoed == app->n_total) {
        app->checking = false;
        say("echoed %llu %zu %.1f", (unsigned long long)app->n_total, app->size, ms_since(app));
    }
}

/* ---- ICE restart: the signaling client does not start one, so the offer is sent here ---- */

/* Append s to out as the body of a JSON string. @return the length, or 0 if it does not fit. */
static size_t json_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s; s++) {
        char esc = *s == '"' ? '"' : *s == '\\' ? '\\' : *s == '\n' ? 'n' : *s == '\r' ? 'r' : 0;
        if (n + 7 >= cap)
            return 0;
        if (esc) {
            out[n++] = '\\';
            out[n++] = esc;
        } else if ((unsigned char)*s < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", (unsigned char)*s);
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
    return n;
}

static void restart_ice(app_t *app)
{
    const char *peer = app->pc ? tern_signaling_peer_id(app->sig, app->pc) : NULL;
    if (!peer) {
        say("error restart: no peer connection");
        return;
    }
    tern_time_t now = tern_loop_now(app->loop);
    char *sdp = NULL;
    int rc = tern_pc_restart_ice(app->pc, now);
    if (rc == 0)
        rc = tern_pc_create_offer(app->pc, now, &sdp);
    if (rc == 0)
        rc = tern_pc_set_local_description(app->pc, now, TERN_SDP_OFFER, sdp);
    size_t cap = sdp ? 6 * strlen(sdp) + 64 : 0; /* \\u00XX at worst */
    char *json = rc == 0 ? malloc(cap) : NULL;
    if (rc == 0 && !json)
        rc = TERN_ERR_NOMEM;
    if (rc == 0) {
        int head = snprintf(json, cap, "{\"type\":\"offer\",\"sdp\":\"");
        size_t body = json_escape(sdp, json + head, cap - (size_t)head - 3);
        memcpy(json + (size_t)head + body, "\"}", 3);
        rc = tern_signaling_send(app->sig, peer, json);
    }
    if (rc != 0) {
        say("error restart: %s (%s)", tern_strerror(rc), tern_pc_last_error(app->pc));
        app->failures++;
    } else {
        say("restarted %.1f", ms_since(app));
    }
    free(json);
    tern_free(app->ctx, sdp);
}

/* ---- commands on stdin ---- */

static void run_line(app_t *app, char *line)
{
    unsigned long long n = 0;
    size_t size = 0;
    if (sscanf(line, "send %llu %zu", &n, &size) == 2)
        start_send(app, n, size);
    else if (strcmp(line, "pair") == 0)
        print_pair(app);
    else if (strcmp(line, "progress") == 0)
        say("progress %llu %llu %zu", (unsigned long long)app->n_sent,
            (unsigned long long)app->n_echoed, app->dc ? tern_dc_buffered_amount(app->dc) : 0);
    else if (strcmp(line, "restart") == 0)
        restart_ice(app);
    else if (strcmp(line, "quit") == 0)
        tern_loop_stop(app->loop);
    else if (line[0])
        say("error unknown command %s", line);
}

static void on_stdin(void *arg, int fd, unsigned events)
{
    (void)events;
    app_t *app = arg;
    char chunk[256];
    ssize_t got = read(fd, chunk, sizeof chunk);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (got <= 0) {
        tern_loop_unwatch_fd(app->loop, app->stdin_watch);
        app->stdin_watch = NULL;
        tern_loop_stop(app->loop);
        return;
    }
    for (ssize_t i = 0; i < got; i++) {
        if (chunk[i] != '\n' && app->line_len + 1 < sizeof app->line) {
            app->line[app->line_len++] = chunk[i];
            continue;
        }
        app->line[app->line_len] = '\0';
        app->line_len = 0;
        run_line(app, app->line);
    }
}

/* ---- callbacks ---- */

/* "candidate:F C udp P 1.2.3.4 5 typ host ..." -> type, transport, address. */
static void on_ice_candidate(tern_pc_t *pc, void *user, const char *candidate, const char *mid,
                             int mline_index)
{
    (void)pc;
    (void)user;
    (void)mid;
    (void)mline_index;
    char transport[16] = "", ip[64] = "", type[16] = "";
    unsigned port = 0;
    if (!candidate || !candidate[0]) {
        say("candidate end");
        return;
    }
    const char *typ = strstr(candidate, " typ ");
    if (sscanf(candidate, "%*s %*s %15s %*s %63s %u", transport, ip, &port) != 3 || !typ ||
        sscanf(typ, " typ %15s", type) != 1) {
        say("candidate unparsed %s", candidate);
        return;
    }
    say("candidate %s %s %s:%u", type, transport, ip, port);
}

static void on_ice_connection_state(tern_pc_t *pc, void *user, tern_ice_state_t s)
{
    (void)pc;
    app_t *app = user;
    say("ice %s %.1f", tern_ice_state_name(s), ms_since(app));
    if (s == TERN_ICE_STATE_CONNECTED || s == TERN_ICE_STATE_COMPLETED)
        print_pair(app);
}

static void on_ice_gathering_state(tern_pc_t *pc, void *user, tern_ice_gathering_state_t s)
{
    (void)pc;
    app_t *app = user;
    if (app->gathering && s == TERN_ICE_GATHERING_COMPLETE) {
        say("gathered %.1f", ms_since(app));
        tern_loop_stop(app->loop);
    }
}

static void on_gather_timeout(void *arg)
{
    app_t *app = arg;
    say("gather-timeout %.1f", ms_since(app));
    tern_loop_stop(app->loop);
}

/* --gather: a pc of our own, off any room, that only gathers. */
static int start_gathering(app_t *app, const tern_pc_config_t *cfg, const tern_pc_callbacks_t *cbs,
                           uint32_t limit_ms)
{
    tern_time_t now = tern_loop_now(app->loop);
    char *sdp = NULL;
    int rc = tern_pc_new(app->ctx, cfg, now, &app->pc);
    if (rc == 0)
        rc = tern_loop_add_pc(app->loop, app->pc, cbs, app);
    if (rc == 0)
        rc = tern_pc_create_data_channel(app->pc, now, "netlab", NULL, &app->dc);
    app->t0 = now;
    if (rc == 0)
        rc = tern_pc_create_offer(app->pc, now, &sdp);
    if (rc == 0)
        rc = tern_pc_set_local_description(app->pc, now, TERN_SDP_OFFER, sdp);
    if (rc == 0)
        rc = tern_loop_add_timer(app->loop, limit_ms, on_gather_timeout, app, NULL);
    tern_free(app->ctx, sdp);
    if (rc != 0)
        say("error gather: %s (%s)", tern_strerror(rc), app->pc ? tern_pc_last_error(app->pc) : "");
    return rc;
}

static void on_connection_state(tern_pc_t *pc, void *user, tern_pc_state_t s)
{
    (void)pc;
    app_t *app = user;
    say("pc %s %.1f", tern_pc_state_name(s), ms_since(app));
}

static void on_open(tern_dc_t *dc, void *user)
{
    app_t *app = user;
    say("open %s %.1f", tern_dc_label(dc), ms_since(app));
}

static void on_data_channel(tern_pc_t *pc, void *user, tern_dc_t *dc)
{
    (void)pc;
    on_open(dc, user);
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    app_t *app = user;
    if (app->offering) {
        check_echo(app, data, len);
        return;
    }
    tern_time_t now = tern_loop_now(app->loop);
    int rc = is_text ? tern_dc_send_text(dc, now, (const char *)data, len)
                     : tern_dc_send(dc, now, data, len);
    if (rc != 0) {
        say("error echo %zu: %s", len, tern_strerror(rc));
        app->failures++;
    }
}

static void on_buffered_amount_low(tern_dc_t *dc, void *user)
{
    (void)dc;
    pump(user);
}

static void on_close(tern_dc_t *dc, void *user)
{
    app_t *app = user;
    say("close %s %.1f", tern_dc_label(dc), ms_since(app));
    if (dc == app->dc) {
        app->dc = NULL;
        app->sending = app->checking = false;
    }
}

static void on_error(tern_dc_t *dc, void *user, int code, const char *reason)
{
    (void)user;
    say("error channel %s: %s %s", tern_dc_label(dc), tern_err_name(code), reason);
}

static void on_connected(tern_signaling_t *s, void *user, const char *self_id, const char *room)
{
    (void)s;
    (void)user;
    (void)room;
    say("joined %s", self_id);
}

static void on_peer_connection(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc,
                               bool offering)
{
    (void)s;
    app_t *app = user;
    if (app->pc) {
        say("error extra peer %s ignored", peer_id);
        return;
    }
    app->pc = pc;
    /* The offer is created right after this returns: the time to open starts here. */
    app->t0 = tern_loop_now(app->loop);
    say("peer %s %s", peer_id, offering ? "offering" : "answering");
    if (!app->offering)
        return;
    int rc = tern_pc_create_data_channel(pc, app->t0, "netlab", NULL, &app->dc);
    if (rc != 0) {
        say("error create channel: %s", tern_strerror(rc));
        app->failures++;
        return;
    }
    tern_dc_set_buffered_amount_low_threshold(app->dc, LOW_WATER);
}

static void on_peer_left(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc)
{
    (void)s;
    app_t *app = user;
    say("peer-left %s", peer_id);
    if (pc && pc == app->pc) {
        /* The client frees the pc and its channels without callbacks. */
        app->pc = NULL;
        app->dc = NULL;
        app->sending = app->checking = false;
    }
}

static void on_closed(tern_signaling_t *s, void *user, int code, const char *reason)
{
    (void)s;
    (void)user;
    say("signaling-closed %d %s", code, reason);
}

static void on_signal(void *arg, int fd, unsigned events)
{
    (void)events;
    app_t *app = arg;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof si) != (ssize_t)sizeof si)
        return;
    tern_loop_stop(app->loop);
}

/* ---- command line ---- */

static int usage(void)
{
    fprintf(stderr, "usage: netlab_peer (--signal ws://HOST:PORT/ws/ROOM (--offer|--answer) |\n"
                    "       --gather) [--ice-server URL]... [--disconnected-ms N] [--failed-ms N]\n"
                    "       [--gather-ms N] [--turn-ca PEM] [--relay-only]\n");
    return 2;
}

/* SCHEME:[USER:PASS@]HOST... -> url without the credentials, user, pass (arg is modified). */
static int parse_server(char *arg, tern_ice_server_t *out)
{
    static char urls[MAX_SERVERS][256];
    static size_t nurls;
    char *colon = strchr(arg, ':');
    char *at = strrchr(arg, '@');
    memset(out, 0, sizeof *out);
    if (!colon || nurls == MAX_SERVERS)
        return -1;
    if (!at) {
        out->url = arg;
        return 0;
    }
    char *pass = strchr(colon + 1, ':');
    if (!pass || pass > at)
        return -1;
    *pass++ = '\0';
    *at = '\0';
    out->username = colon + 1;
    out->credential = pass;
    snprintf(urls[nurls], sizeof urls[nurls], "%.*s:%s", (int)(colon - arg), arg, at + 1);
    out->url = urls[nurls++];
    return 0;
}

int main(int argc, char **argv)
{
    static app_t app;
    tern_signaling_role_t role = TERN_SIGNALING_ROLE_AUTO;
    const char *url = NULL;
    tern_ice_server_t servers[MAX_SERVERS];
    size_t nservers = 0;
    tern_pc_config_t pcfg = {.disable_ipv6 = true};
    uint32_t gather_ms = 5000;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--offer") == 0) {
            role = TERN_SIGNALING_ROLE_OFFER;
            app.offering = true;
        } else if (strcmp(argv[i], "--answer") == 0) {
            role = TERN_SIGNALING_ROLE_ANSWER;
        } else if (strcmp(argv[i], "--gather") == 0) {
            app.gathering = true;
        } else if (strcmp(argv[i], "--gather-ms") == 0 && v) {
            gather_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--signal") == 0 && v) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--ice-server") == 0 && v && nservers < MAX_SERVERS) {
            if (parse_server(argv[++i], &servers[nservers++]) != 0)
                return usage();
        } else if (strcmp(argv[i], "--disconnected-ms") == 0 && v) {
            pcfg.ice_disconnected_timeout_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--turn-ca") == 0 && v) {
            pcfg.turn_tls_ca_file = argv[++i];
        } else if (strcmp(argv[i], "--relay-only") == 0) {
            pcfg.ice_transport_policy_relay = true;
        } else if (strcmp(argv[i], "--failed-ms") == 0 && v) {
            pcfg.ice_failed_timeout_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else {
            return usage();
        }
    }
    if (app.gathering ? url != NULL : !url || role == TERN_SIGNALING_ROLE_AUTO)
        return usage();
    pcfg.ice_servers = nservers ? servers : NULL;
    pcfg.ice_server_count = nservers;

    /* Signals arrive through the loop, so the ending is an ordinary, leak-free one. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    app.buf = malloc(MAX_MSG);
    int rc = app.buf && sfd >= 0 ? tern_ctx_new(NULL, &app.ctx) : TERN_ERR_NOMEM;
    if (rc == 0)
        rc = tern_loop_new(app.ctx, &app.loop);
    if (rc == 0)
        rc = tern_loop_watch_fd(app.loop, sfd, TERN_FD_READABLE, on_signal, &app, NULL);
    if (rc == 0 && app.offering)
        rc = tern_loop_watch_fd(app.loop, STDIN_FILENO, TERN_FD_READABLE, on_stdin, &app,
                                &app.stdin_watch);
    if (rc == 0)
        app.start = tern_loop_now(app.loop);
    tern_pc_callbacks_t pcbs = {
        .on_ice_candidate = on_ice_candidate,
        .on_ice_gathering_state = on_ice_gathering_state,
        .on_ice_connection_state = on_ice_connection_state,
        .on_connection_state = on_connection_state,
        .on_data_channel = on_data_channel,
        .on_open = on_open,
        .on_message = on_message,
        .on_buffered_amount_low = on_buffered_amount_low,
        .on_close = on_close,
        .on_error = on_error,
    };
    tern_signaling_config_t scfg = {
        .url = url,
        .role = role,
        .pc_config = &pcfg,
        .pc_callbacks = &pcbs,
        .pc_user = &app,
    };
    tern_signaling_callbacks_t scbs = {
        .on_connected = on_connected,
        .on_peer_connection = on_peer_connection,
        .on_peer_left = on_peer_left,
        .on_closed = on_closed,
    };
    if (rc == 0 && app.gathering)
        rc = start_gathering(&app, &pcfg, &pcbs, gather_ms);
    else if (rc == 0)
        rc = tern_signaling_new(app.loop, &scfg, &scbs, &app, &app.sig);
    if (rc == 0)
        rc = tern_loop_run(app.loop);
    if (rc != 0)
        fprintf(stderr, "netlab_peer: %s%s%s\n", tern_strerror(rc), app.sig ? ": " : "",
                app.sig ? tern_signaling_last_error(app.sig) : "");
    tern_signaling_free(app.sig);
    if (app.gathering && app.pc) {
        tern_loop_remove_pc(app.loop, app.pc);
        tern_pc_free(app.pc);
    }
    if (app.stdin_watch)
        tern_loop_unwatch_fd(app.loop, app.stdin_watch);
    tern_loop_free(app.loop);
    tern_ctx_free(app.ctx);
    free(app.buf);
    if (sfd >= 0)
        close(sfd);
    return rc != 0 || app.failures ? 1 : 0;
}
