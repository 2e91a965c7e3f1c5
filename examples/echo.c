/* SPDX-License-Identifier: MIT */
/*
 * tern-echo: joins a room of a tern-signal server and echoes. Every data channel a peer opens
 * is accepted (and, when this side offers, it opens one named "echo"), and every message comes
 * back unchanged on the channel it arrived on: text as text, binary as binary, empty ones too.
 * File channels of the demo page (examples/web/FILE-PROTOCOL.md) are echoed the same way, so
 * the page can check the SHA-256 of what it gets back.
 *
 * It prints one line on stdout, flushed, for each of these (tests read them):
 *   joined SELF_ID              the room is joined
 *   open PEER_ID LABEL          a channel opened
 *   close PEER_ID LABEL         a channel closed
 * It runs until SIGINT or SIGTERM (exit 0, after saying bye to the room) or until the
 * signaling connection ends (exit 1).
 */
#include <tern/signaling.h>
#include <tern/tern.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MAX_LIST 16

typedef struct app {
    tern_loop_t *loop;
    tern_signaling_t *sig;
    int exit_code;
    unsigned long send_failures;
} app_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: tern-echo --signal ws://HOST:PORT/ws/ROOM [options]\n"
               "Join a tern-signal room and echo every data channel message back.\n"
               "  --signal URL       the room (ws:// or wss://)\n"
               "  --offer            always offer (default: offer to newcomers, answer others)\n"
               "  --answer           never offer\n"
               "  --ice-server URL   SCHEME:[USER:PASS@]HOST[:PORT][?QUERY], SCHEME one of stun,\n"
               "                     stuns, turn, turns (repeatable; replaces the room's servers)\n"
               "  --bind ADDR        bind ICE sockets only to this local address (repeatable)\n"
               "  --loopback         gather loopback candidates too\n"
               "  --insecure         wss: do not verify the server's certificate\n"
               "  --ca FILE          wss: trust the certificates in this PEM file\n"
               "  --help             this text\n"
               "Prints 'joined ID', 'open PEER LABEL' and 'close PEER LABEL' lines on stdout.\n"
               "Exits 0 on SIGINT/SIGTERM, 1 if the signaling connection fails or ends.\n");
}

/* ---- --ice-server: SCHEME:[USER:PASS@]HOST[:PORT][?QUERY], as tern-signal takes it ---- */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *percent_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; out && i < n; i++) {
        int hi = 0, lo = 0;
        if (s[i] == '%' && (i + 2 >= n || (hi = hex_digit(s[i + 1])) < 0 ||
                            (lo = hex_digit(s[i + 2])) < 0 || (hi | lo) == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = s[i] == '%' ? (char)(hi * 16 + lo) : s[i];
        i += s[i] == '%' ? 2 : 0;
    }
    if (out)
        out[o] = '\0';
    return out;
}

static bool parse_ice_server(const char *arg, tern_ice_server_t *out)
{
    const char *colon = strchr(arg, ':');
    const char *at = colon ? strrchr(colon, '@') : NULL;
    *out = (tern_ice_server_t){0};
    if (!colon)
        return false;
    if (!at) {
        out->url = strdup(arg);
        return out->url != NULL;
    }
    const char *sep = memchr(colon + 1, ':', (size_t)(at - colon - 1));
    if (!sep)
        return false;
    char *user = percent_decode(colon + 1, (size_t)(sep - colon - 1));
    char *pass = percent_decode(sep + 1, (size_t)(at - sep - 1));
    size_t scheme = (size_t)(colon - arg) + 1;
    char *url = malloc(scheme + strlen(at + 1) + 1);
    if (!user || !pass || !url || !*user) {
        free(user);
        free(pass);
        free(url);
        return false;
    }
    memcpy(url, arg, scheme);
    strcpy(url + scheme, at + 1);
    *out = (tern_ice_server_t){.url = url, .username = user, .credential = pass};
    return true;
}

/* ---- the channels ---- */

static const char *peer_of(app_t *app, tern_dc_t *dc)
{
    const char *id = tern_signaling_peer_id(app->sig, tern_dc_pc(dc));
    return id ? id : "?";
}

static void on_open(tern_dc_t *dc, void *user)
{
    app_t *app = user;
    printf("open %s %s\n", peer_of(app, dc), tern_dc_label(dc));
    fflush(stdout);
}

static void on_close(tern_dc_t *dc, void *user)
{
    app_t *app = user;
    printf("close %s %s\n", peer_of(app, dc), tern_dc_label(dc));
    fflush(stdout);
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    app_t *app = user;
    tern_time_t now = tern_loop_now(app->loop);
    int err = is_text ? tern_dc_send_text(dc, now, (const char *)data, len)
                      : tern_dc_send(dc, now, data, len);
    if (err && app->send_failures++ < 10)
        fprintf(stderr, "tern-echo: echo on %s failed: %s\n", tern_dc_label(dc),
                tern_strerror(err));
}

/* ---- the room ---- */

static void on_connected(tern_signaling_t *s, void *user, const char *self_id, const char *room)
{
    (void)s;
    (void)user;
    fprintf(stderr, "tern-echo: in room %s\n", room);
    printf("joined %s\n", self_id);
    fflush(stdout);
}

static void on_peer_connection(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc,
                               bool offering)
{
    app_t *app = user;
    (void)s;
    if (!offering)
        return;
    tern_dc_t *dc;
    int err = tern_pc_create_data_channel(pc, tern_loop_now(app->loop), "echo", NULL, &dc);
    if (err)
        fprintf(stderr, "tern-echo: no channel for %s: %s\n", peer_id, tern_strerror(err));
}

static void on_closed(tern_signaling_t *s, void *user, int code, const char *reason)
{
    app_t *app = user;
    (void)s;
    fprintf(stderr, "tern-echo: signaling closed: %d %s\n", code, reason);
    app->exit_code = 1;
    tern_loop_stop(app->loop);
}

/* SIGINT and SIGTERM arrive through a signalfd, so the loop stops between two callbacks. */
static void on_signal(void *arg, int fd, unsigned events)
{
    app_t *app = arg;
    struct signalfd_siginfo info;
    (void)events;
    if (read(fd, &info, sizeof info) == (ssize_t)sizeof info) {
        app->exit_code = 0;
        tern_loop_stop(app->loop);
    }
}

static int watch_signals(app_t *app)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (tern_loop_watch_fd(app->loop, fd, TERN_FD_READABLE, on_signal, app, NULL) != TERN_OK) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *ca = NULL;
    tern_signaling_role_t role = TERN_SIGNALING_ROLE_AUTO;
    tern_ice_server_t ice[MAX_LIST];
    const char *binds[MAX_LIST];
    size_t ice_count = 0, bind_count = 0;
    bool loopback = false, insecure = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--signal") == 0 && has_value) {
            url = argv[++i];
        } else if (strcmp(a, "--offer") == 0) {
            role = TERN_SIGNALING_ROLE_OFFER;
        } else if (strcmp(a, "--answer") == 0) {
            role = TERN_SIGNALING_ROLE_ANSWER;
        } else if (strcmp(a, "--ice-server") == 0 && has_value && ice_count < MAX_LIST) {
            if (!parse_ice_server(argv[++i], &ice[ice_count++])) {
                fprintf(stderr, "tern-echo: bad --ice-server '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--bind") == 0 && has_value && bind_count < MAX_LIST) {
            binds[bind_count++] = argv[++i];
        } else if (strcmp(a, "--loopback") == 0) {
            loopback = true;
        } else if (strcmp(a, "--insecure") == 0) {
            insecure = true;
        } else if (strcmp(a, "--ca") == 0 && has_value) {
            ca = argv[++i];
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tern-echo: unknown, repeated too often or incomplete option '%s'\n",
                    a);
            usage(stderr);
            return 2;
        }
    }
    if (!url) {
        fprintf(stderr, "tern-echo: --signal URL is required\n");
        usage(stderr);
        return 2;
    }

    app_t app = {.exit_code = 1};
    tern_ctx_t *ctx = NULL;
    int sigfd = -1;
    int err = tern_ctx_new(NULL, &ctx);
    if (!err)
        err = tern_loop_new(ctx, &app.loop);
    if (!err && (sigfd = watch_signals(&app)) < 0)
        err = TERN_ERR_IO;
    tern_pc_config_t pc_cfg = {
        .ice_servers = ice,
        .ice_server_count = ice_count,
        .include_loopback = loopback,
        .bind_addresses = binds,
        .bind_address_count = bind_count,
    };
    tern_pc_callbacks_t pc_cbs = {
        .on_open = on_open,
        .on_message = on_message,
        .on_close = on_close,
    };
    tern_signaling_config_t cfg = {
        .url = url,
        .role = role,
        .pc_config = &pc_cfg,
        .pc_callbacks = &pc_cbs,
        .pc_user = &app,
        .tls_ca_file = ca,
        .tls_insecure = insecure,
    };
    tern_signaling_callbacks_t cbs = {
        .on_connected = on_connected,
        .on_peer_connection = on_peer_connection,
        .on_closed = on_closed,
    };
    if (!err) {
        err = tern_signaling_new(app.loop, &cfg, &cbs, &app, &app.sig);
    }
    if (!err)
        err = tern_loop_run(app.loop);
    if (err) {
        fprintf(stderr, "tern-echo: %s\n", tern_strerror(err));
        app.exit_code = 1;
    }
    /* Says bye to the room; the pcs' close_notify leave as they come off the loop. */
    tern_signaling_free(app.sig);
    tern_loop_free(app.loop);
    if (sigfd >= 0)
        close(sigfd);
    tern_ctx_free(ctx);
    for (size_t i = 0; i < ice_count; i++) {
        free((char *)ice[i].url);
        free((char *)ice[i].username);
        free((char *)ice[i].credential);
    }
    return app.exit_code;
}
