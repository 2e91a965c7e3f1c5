/* SPDX-License-Identifier: MIT */
/*
 * tern-chat: a line chat over data channels. It joins a room of a tern-signal server; each
 * line typed on stdin goes to every peer on a channel named "chat" (opened by whichever side
 * offers), and each line received is printed as "PEER_ID: text". The demo page
 * (examples/web/) speaks the same channel, so a terminal and a browser can chat.
 * End of input (Ctrl-D) or SIGINT/SIGTERM leaves the room.
 */
#include <tern/signaling.h>
#include <tern/tern.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MAX_CHANNELS 64
#define MAX_LINE 4096

typedef struct app {
    tern_loop_t *loop;
    tern_signaling_t *sig;
    tern_dc_t *chats[MAX_CHANNELS]; /* open "chat" channels, one per peer */
    size_t chat_count;
    char line[MAX_LINE];
    size_t line_len;
    bool input_done;
    char late_ids[MAX_CHANNELS][128]; /* peers to give a "chat" channel soon */
    size_t late_count;
    int exit_code;
} app_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: tern-chat --signal ws://HOST:PORT/ws/ROOM [options]\n"
               "Lines on stdin go to every peer of the room (channel \"chat\"); lines from\n"
               "them are printed as 'PEER: text'. End of input or Ctrl-C leaves the room.\n"
               "  --signal URL       the room (ws:// or wss://)\n"
               "  --offer            always offer (default: offer to newcomers, answer others)\n"
               "  --answer           never offer\n"
               "  --ice-server URL   a STUN server, stun:HOST[:PORT] (repeatable; replaces the\n"
               "                     room's servers; TURN with credentials: see tern-echo)\n"
               "  --bind ADDR        bind ICE sockets only to this local address (repeatable)\n"
               "  --loopback         gather loopback candidates too\n"
               "  --insecure         wss: do not verify the server's certificate\n"
               "  --ca FILE          wss: trust the certificates in this PEM file\n");
}

static const char *peer_of(app_t *app, tern_dc_t *dc)
{
    const char *id = tern_signaling_peer_id(app->sig, tern_dc_pc(dc));
    return id ? id : "?";
}

/* ---- channels ---- */

static void on_open(tern_dc_t *dc, void *user)
{
    app_t *app = user;
    if (strcmp(tern_dc_label(dc), "chat") != 0 || app->chat_count == MAX_CHANNELS)
        return;
    app->chats[app->chat_count++] = dc;
    fprintf(stderr, "* %s is here\n", peer_of(app, dc));
}

static void on_close(tern_dc_t *dc, void *user)
{
    app_t *app = user;
    for (size_t i = 0; i < app->chat_count; i++)
        if (app->chats[i] == dc) {
            app->chats[i] = app->chats[--app->chat_count];
            fprintf(stderr, "* %s left\n", peer_of(app, dc));
            return;
        }
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    app_t *app = user;
    if (!is_text)
        printf("%s: (%zu bytes of binary)\n", peer_of(app, dc), len);
    else
        printf("%s: %.*s\n", peer_of(app, dc), (int)len, (const char *)data);
    fflush(stdout);
}

static bool has_chat(const app_t *app, const tern_pc_t *pc)
{
    for (size_t i = 0; i < app->chat_count; i++)
        if (tern_dc_pc(app->chats[i]) == pc)
            return true;
    return false;
}

static void open_chat(app_t *app, tern_pc_t *pc)
{
    tern_dc_t *dc;
    if (tern_pc_create_data_channel(pc, tern_loop_now(app->loop), "chat", NULL, &dc) != 0)
        fprintf(stderr, "tern-chat: no chat channel for %s\n",
                tern_signaling_peer_id(app->sig, pc));
}

static void on_peer_connection(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc,
                               bool offering)
{
    (void)s;
    (void)peer_id;
    if (offering)
        open_chat(user, pc);
}

/* A peer that offered without a "chat" channel (tern-echo): open one ourselves, once the
 * connection is up and its own channels had their chance to arrive. Peers wait by id, not pc
 * (the pc may be gone when the timer fires), in order: every wait is as long. */
static void open_late_chat(void *arg)
{
    app_t *app = arg;
    if (app->late_count == 0)
        return;
    tern_pc_t *pc = tern_signaling_pc(app->sig, app->late_ids[0]);
    if (pc && !has_chat(app, pc))
        open_chat(app, pc);
    memmove(app->late_ids[0], app->late_ids[1], --app->late_count * sizeof app->late_ids[0]);
}

static void on_connection_state(tern_pc_t *pc, void *user, tern_pc_state_t state)
{
    app_t *app = user;
    const char *id = tern_signaling_peer_id(app->sig, pc);
    if (state != TERN_PC_STATE_CONNECTED || !id || has_chat(app, pc) ||
        app->late_count == MAX_CHANNELS ||
        tern_loop_add_timer(app->loop, 500, open_late_chat, app, NULL) != 0)
        return;
    snprintf(app->late_ids[app->late_count++], sizeof app->late_ids[0], "%s", id);
}

/* Closing the pcs with their channels (removed with them, so forget them first). */
static void on_peer_left(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc)
{
    app_t *app = user;
    (void)s;
    (void)peer_id;
    for (size_t i = 0; i < app->chat_count;)
        if (tern_dc_pc(app->chats[i]) == pc) {
            fprintf(stderr, "* %s left\n", peer_id);
            app->chats[i] = app->chats[--app->chat_count];
        } else {
            i++;
        }
}

static void on_connected(tern_signaling_t *s, void *user, const char *self_id, const char *room)
{
    (void)s;
    (void)user;
    fprintf(stderr, "* joined room %s as %s\n", room, self_id);
}

static void on_closed(tern_signaling_t *s, void *user, int code, const char *reason)
{
    app_t *app = user;
    (void)s;
    if (!app->input_done) {
        fprintf(stderr, "tern-chat: signaling closed: %d %s\n", code, reason);
        app->exit_code = 1;
    }
    tern_loop_stop(app->loop);
}

/* ---- stdin ---- */

static void send_line(app_t *app, const char *text, size_t len)
{
    if (app->chat_count == 0) {
        fprintf(stderr, "* nobody to talk to yet\n");
        return;
    }
    for (size_t i = 0; i < app->chat_count; i++)
        tern_dc_send_text(app->chats[i], tern_loop_now(app->loop), text, len);
}

static void quit_soon(void *arg)
{
    app_t *app = arg;
    /* A graceful close: bye to the room; on_closed stops the loop. */
    tern_signaling_close(app->sig);
}

static void on_stdin(void *arg, int fd, unsigned events)
{
    app_t *app = arg;
    (void)events;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        if (app->input_done)
            return;
        app->input_done = true;
        /* Leave the last lines a moment to reach the peers before the pcs close. */
        tern_loop_add_timer(app->loop, 500, quit_soon, app, NULL);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            send_line(app, app->line, app->line_len);
            app->line_len = 0;
        } else if (app->line_len < MAX_LINE) {
            app->line[app->line_len++] = buf[i];
        }
    }
}

static void on_signal(void *arg, int fd, unsigned events)
{
    app_t *app = arg;
    struct signalfd_siginfo info;
    (void)events;
    if (read(fd, &info, sizeof info) == (ssize_t)sizeof info)
        tern_loop_stop(app->loop);
}

int main(int argc, char **argv)
{
    const char *url = NULL, *ca = NULL;
    tern_signaling_role_t role = TERN_SIGNALING_ROLE_AUTO;
    tern_ice_server_t ice[16];
    const char *binds[16];
    size_t ice_count = 0, bind_count = 0;
    bool loopback = false, insecure = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--signal") == 0 && has_value)
            url = argv[++i];
        else if (strcmp(a, "--offer") == 0)
            role = TERN_SIGNALING_ROLE_OFFER;
        else if (strcmp(a, "--answer") == 0)
            role = TERN_SIGNALING_ROLE_ANSWER;
        else if (strcmp(a, "--ice-server") == 0 && has_value && ice_count < 16)
            ice[ice_count++] = (tern_ice_server_t){.url = argv[++i]};
        else if (strcmp(a, "--bind") == 0 && has_value && bind_count < 16)
            binds[bind_count++] = argv[++i];
        else if (strcmp(a, "--loopback") == 0)
            loopback = true;
        else if (strcmp(a, "--insecure") == 0)
            insecure = true;
        else if (strcmp(a, "--ca") == 0 && has_value)
            ca = argv[++i];
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!url) {
        usage(stderr);
        return 2;
    }

    static app_t app = {.exit_code = 0};
    tern_ctx_t *ctx = NULL;
    int sigfd = -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int err = tern_ctx_new(NULL, &ctx);
    if (!err)
        err = tern_loop_new(ctx, &app.loop);
    if (!err && ((sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
                 tern_loop_watch_fd(app.loop, sigfd, TERN_FD_READABLE, on_signal, &app, NULL)))
        err = TERN_ERR_IO;
    if (!err &&
        tern_loop_watch_fd(app.loop, STDIN_FILENO, TERN_FD_READABLE, on_stdin, &app, NULL) != 0) {
        fprintf(stderr, "tern-chat: stdin must be a terminal or a pipe\n");
        err = TERN_ERR_IO;
    }
    tern_pc_config_t pc_cfg = {
        .ice_servers = ice,
        .ice_server_count = ice_count,
        .include_loopback = loopback,
        .bind_addresses = binds,
        .bind_address_count = bind_count,
    };
    tern_pc_callbacks_t pc_cbs = {
        .on_connection_state = on_connection_state,
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
        .on_peer_left = on_peer_left,
        .on_closed = on_closed,
    };
    if (!err)
        err = tern_signaling_new(app.loop, &cfg, &cbs, &app, &app.sig);
    if (!err)
        err = tern_loop_run(app.loop);
    if (err) {
        fprintf(stderr, "tern-chat: %s\n", tern_strerror(err));
        app.exit_code = 1;
    }
    tern_signaling_free(app.sig);
    tern_loop_free(app.loop);
    if (sigfd >= 0)
        close(sigfd);
    tern_ctx_free(ctx);
    return app.exit_code;
}
