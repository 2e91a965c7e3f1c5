/* SPDX-License-Identifier: MIT */
/*
 * browser_peer: the native side of the browser suite's cases that need the native side to act,
 * not only to echo. It joins a tern-signal room through the library's signaling client and,
 * like tern-echo, echoes every message on every channel, except on the channel labelled "ctl",
 * which carries commands from the test page, one per text message:
 *
 *   "ID VERB ARGS"  ->  "ID ok [RESULT]" or "ID err REASON"
 *
 *   info LABEL            state=.. id=.. ordered=0|1 rtx=N life=N neg=0|1 proto=P rx=N
 *                         (rtx and life are -1 when not of that kind, as W3C's null)
 *   open LABEL [OPT...]   create a channel; OPT: ordered=0 rtx=N life=MS proto=P neg=ID
 *   open-many SPEC...     several at once; SPEC is LABEL[,OPT]...
 *   send LABEL TEXT       send TEXT (the rest of the line) on an open channel
 *   close LABEL           close a channel (W3C close)
 *   close-pc              close the peer connection (W3C close), shortly after the reply
 *   pair                  the selected pair: local=ADDR ltype=T remote=ADDR rtype=T rtt=US
 *
 * LABEL and P are percent-encoded as JavaScript's encodeURIComponent does. A channel's state is
 * kept after it closes, so "info" can report "closed". Events also go to stdout, one line each
 * ("event open LABEL", "event close LABEL", "event pc STATE", ...), for what the page cannot
 * learn over a connection it has just closed; the driver reads them. With --offer it offers and
 * opens "ctl" itself; with --answer the browser offers and opens "ctl".
 *
 * Usage: browser_peer --signal ws://HOST:PORT/ws/ROOM (--offer|--answer) [--loopback]
 *                     [--bind ADDR]...
 * (the options of tern-echo that the suite uses, so that the driver starts both alike)
 * Ends on SIGTERM or SIGINT, freeing everything (leak-checked under ASan), with status 0.
 */
#include <tern/signaling.h>
#include <tern/tern.h>

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MAX_CHANNELS 256
#define MAX_LABEL 256
#define MAX_REPLY 1024

/* What is known of a channel, kept after it closes. */
typedef struct chan {
    char label[MAX_LABEL];
    char proto[MAX_LABEL];
    tern_dc_t *dc; /* NULL once closed */
    int id;
    bool ordered, negotiated;
    int64_t rtx, life;
    uint64_t rx;
} chan_t;

typedef struct app {
    tern_loop_t *loop;
    tern_signaling_t *sig;
    tern_pc_t *pc;
    chan_t chans[MAX_CHANNELS];
    size_t nchans;
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

/* ---- channel table ---- */

static chan_t *find_chan(app_t *app, const char *label)
{
    for (size_t i = app->nchans; i-- > 0;)
        if (strcmp(app->chans[i].label, label) == 0)
            return &app->chans[i];
    return NULL;
}

static chan_t *chan_of(tern_dc_t *dc)
{
    return tern_dc_user_data(dc);
}

/* Record a channel (ours or the peer's); NULL when the table is full. */
static chan_t *track_chan(app_t *app, tern_dc_t *dc)
{
    if (app->nchans == MAX_CHANNELS)
        return NULL;
    chan_t *c = &app->chans[app->nchans++];
    memset(c, 0, sizeof *c);
    snprintf(c->label, sizeof c->label, "%s", tern_dc_label(dc));
    snprintf(c->proto, sizeof c->proto, "%s", tern_dc_protocol(dc));
    c->dc = dc;
    c->id = tern_dc_id(dc);
    c->ordered = tern_dc_ordered(dc);
    c->negotiated = tern_dc_negotiated(dc);
    c->rtx = tern_dc_max_retransmits(dc);
    c->life = tern_dc_max_packet_life_time(dc);
    tern_dc_set_user_data(dc, c);
    return c;
}

/* ---- percent-encoding, as encodeURIComponent ---- */

static void encode(const char *in, char *out, size_t cap)
{
    static const char keep[] = "-_.!~*'()";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && n + 4 < cap; p++) {
        if (isalnum(*p) || strchr(keep, *p))
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
    }
    out[n] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void decode(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    while (*in && n + 1 < cap) {
        int hi, lo;
        if (in[0] == '%' && (hi = hexval(in[1])) >= 0 && (lo = hexval(in[2])) >= 0) {
            out[n++] = (char)(hi * 16 + lo);
            in += 3;
        } else {
            out[n++] = *in++;
        }
    }
    out[n] = '\0';
}

/* ---- commands ---- */

static void describe_chan(const chan_t *c, char *out, size_t cap)
{
    char proto[3 * MAX_LABEL];
    encode(c->proto, proto, sizeof proto);
    const char *state = c->dc ? tern_dc_state_name(tern_dc_state(c->dc)) : "closed";
    int id = c->dc ? tern_dc_id(c->dc) : c->id;
    snprintf(out, cap, "state=%s id=%d ordered=%d rtx=%lld life=%lld neg=%d proto=%s rx=%llu",
             state, id, c->ordered, (long long)c->rtx, (long long)c->life, c->negotiated, proto,
             (unsigned long long)c->rx);
}

/* Parse "LABEL[,OPT]..." or options after a label into a channel init; proto is its storage. */
static int parse_opts(char *opts, tern_dc_init_t *init, char *proto, size_t cap)
{
    memset(init, 0, sizeof *init);
    for (char *save = NULL, *o = strtok_r(opts, ", ", &save); o; o = strtok_r(NULL, ", ", &save)) {
        if (strcmp(o, "ordered=0") == 0) {
            init->unordered = true;
        } else if (strncmp(o, "rtx=", 4) == 0) {
            init->reliability = TERN_DC_MAX_RETRANSMITS;
            init->reliability_value = (uint32_t)strtoul(o + 4, NULL, 10);
        } else if (strncmp(o, "life=", 5) == 0) {
            init->reliability = TERN_DC_MAX_LIFETIME;
            init->reliability_value = (uint32_t)strtoul(o + 5, NULL, 10);
        } else if (strncmp(o, "proto=", 6) == 0) {
            decode(o + 6, proto, cap);
            init->protocol = proto;
        } else if (strncmp(o, "neg=", 4) == 0) {
            init->negotiated = true;
            init->id = (uint16_t)strtoul(o + 4, NULL, 10);
        } else {
            return -1;
        }
    }
    return 0;
}

/* Create a channel from "LABEL OPT..." (sep ' ') or "LABEL,OPT..." (sep ','). */
static int open_chan(app_t *app, char *spec, char sep, char *err, size_t cap)
{
    if (!app->pc) {
        snprintf(err, cap, "no peer connection");
        return -1;
    }
    char *opts = strchr(spec, sep);
    if (opts)
        *opts++ = '\0';
    char label[MAX_LABEL], proto[MAX_LABEL];
    decode(spec, label, sizeof label);
    tern_dc_init_t init;
    if (parse_opts(opts ? opts : (char[]){""}, &init, proto, sizeof proto) != 0) {
        snprintf(err, cap, "bad options for %s", label);
        return -1;
    }
    tern_dc_t *dc = NULL;
    int rc = tern_pc_create_data_channel(app->pc, tern_loop_now(app->loop), label, &init, &dc);
    if (rc != 0) {
        snprintf(err, cap, "create %s: %s", label, tern_strerror(rc));
        return -1;
    }
    if (!track_chan(app, dc)) {
        snprintf(err, cap, "too many channels");
        return -1;
    }
    say("event created %s", label);
    return 0;
}

static void close_pc_later(void *arg)
{
    app_t *app = arg;
    if (app->pc) {
        say("event closing-pc");
        tern_pc_close(app->pc, tern_loop_now(app->loop));
    }
}

/* Run one command; the reply (without the id) goes to out. */
static void run_command(app_t *app, char *line, char *out, size_t cap)
{
    char *verb = line;
    char *rest = strchr(line, ' '); /* the text after the verb, unsplit */
    if (rest)
        *rest++ = '\0';
    char label[MAX_LABEL], err[MAX_REPLY / 2] = "";
    if (!*verb) {
        snprintf(out, cap, "err empty command");
    } else if (strcmp(verb, "info") == 0 && rest && *rest) {
        decode(rest, label, sizeof label);
        chan_t *c = find_chan(app, label);
        if (!c) {
            snprintf(out, cap, "err no channel %s", label);
            return;
        }
        char desc[MAX_REPLY - 8];
        describe_chan(c, desc, sizeof desc);
        snprintf(out, cap, "ok %s", desc);
    } else if (strcmp(verb, "open") == 0 && rest && *rest) {
        snprintf(out, cap, open_chan(app, rest, ' ', err, sizeof err) ? "err %s" : "ok", err);
    } else if (strcmp(verb, "open-many") == 0 && rest) {
        for (char *s2 = NULL, *spec = strtok_r(rest, " ", &s2); spec;
             spec = strtok_r(NULL, " ", &s2))
            if (open_chan(app, spec, ',', err, sizeof err) != 0)
                break;
        snprintf(out, cap, err[0] ? "err %s" : "ok", err);
    } else if (strcmp(verb, "send") == 0 && rest && *rest) {
        char *text = strchr(rest, ' ');
        if (text)
            *text++ = '\0';
        decode(rest, label, sizeof label);
        chan_t *c = find_chan(app, label);
        int rc = !c || !c->dc ? TERN_ERR_NOT_FOUND
                              : tern_dc_send_text(c->dc, tern_loop_now(app->loop), text ? text : "",
                                                  text ? strlen(text) : 0);
        snprintf(out, cap, rc ? "err send %s: %s" : "ok", label, tern_strerror(rc));
    } else if (strcmp(verb, "close") == 0 && rest && *rest) {
        decode(rest, label, sizeof label);
        chan_t *c = find_chan(app, label);
        if (!c || !c->dc) {
            snprintf(out, cap, "err no open channel %s", label);
            return;
        }
        tern_dc_close(c->dc, tern_loop_now(app->loop));
        snprintf(out, cap, "ok");
    } else if (strcmp(verb, "pair") == 0) {
        tern_pc_pair_info_t pi;
        char la[TERN_ADDR_STRLEN], ra[TERN_ADDR_STRLEN];
        if (!app->pc || tern_pc_selected_pair(app->pc, &pi) != 0) {
            snprintf(out, cap, "err no selected pair");
            return;
        }
        snprintf(out, cap, "ok local=%s ltype=%s remote=%s rtype=%s rtt=%u",
                 tern_addr_format(&pi.local, la, sizeof la), pi.local_type,
                 tern_addr_format(&pi.remote, ra, sizeof ra), pi.remote_type, pi.rtt_us);
    } else if (strcmp(verb, "close-pc") == 0) {
        /* Later, so that this reply leaves before the association goes. */
        tern_loop_add_timer(app->loop, 100, close_pc_later, app, NULL);
        snprintf(out, cap, "ok");
    } else {
        snprintf(out, cap, "err unknown command %s", verb);
    }
}

static void on_ctl_message(app_t *app, tern_dc_t *dc, const uint8_t *data, size_t len)
{
    char line[MAX_REPLY], reply[MAX_REPLY], out[MAX_REPLY + 32];
    if (len >= sizeof line) {
        say("event ctl-too-long %zu", len);
        return;
    }
    memcpy(line, data, len);
    line[len] = '\0';
    char *cmd = strchr(line, ' ');
    if (!cmd) {
        say("event ctl-bad %s", line);
        return;
    }
    *cmd++ = '\0';
    say("ctl %s %s", line, cmd);
    run_command(app, cmd, reply, sizeof reply);
    int n = snprintf(out, sizeof out, "%s %s", line, reply);
    say("ctl-reply %s", out);
    if (tern_dc_send_text(dc, tern_loop_now(app->loop), out, (size_t)n) != 0)
        say("event ctl-send-failed");
}

/* ---- callbacks ---- */

static void on_connection_state(tern_pc_t *pc, void *user, tern_pc_state_t s)
{
    (void)pc;
    (void)user;
    say("event pc %s", tern_pc_state_name(s));
}

static void on_data_channel(tern_pc_t *pc, void *user, tern_dc_t *dc)
{
    (void)pc;
    app_t *app = user;
    if (!track_chan(app, dc))
        say("event too-many-channels");
    say("event datachannel %s %d", tern_dc_label(dc), tern_dc_id(dc));
}

static void on_open(tern_dc_t *dc, void *user)
{
    (void)user;
    chan_t *c = chan_of(dc);
    if (c)
        c->id = tern_dc_id(dc);
    say("event open %s %d", tern_dc_label(dc), tern_dc_id(dc));
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    app_t *app = user;
    chan_t *c = chan_of(dc);
    if (c)
        c->rx++;
    if (strcmp(tern_dc_label(dc), "ctl") == 0 && is_text) {
        on_ctl_message(app, dc, data, len);
        return;
    }
    tern_time_t now = tern_loop_now(app->loop);
    int rc = is_text ? tern_dc_send_text(dc, now, (const char *)data, len)
                     : tern_dc_send(dc, now, data, len);
    if (rc != 0)
        say("event echo-failed %s %zu %s", tern_dc_label(dc), len, tern_strerror(rc));
}

static void on_close(tern_dc_t *dc, void *user)
{
    (void)user;
    chan_t *c = chan_of(dc);
    if (c)
        c->dc = NULL;
    say("event close %s", tern_dc_label(dc));
}

static void on_error(tern_dc_t *dc, void *user, int code, const char *reason)
{
    (void)user;
    say("event error %s %s %s", tern_dc_label(dc), tern_err_name(code), reason);
}

static void on_connected(tern_signaling_t *s, void *user, const char *self_id, const char *room)
{
    (void)s;
    (void)user;
    say("event joined %s %s", room, self_id);
}

static void on_peer_connection(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc,
                               bool offering)
{
    (void)s;
    app_t *app = user;
    say("event peer %s %s", peer_id, offering ? "offering" : "answering");
    if (app->pc) {
        say("event extra-peer-ignored %s", peer_id);
        return;
    }
    app->pc = pc;
    if (offering) {
        tern_dc_t *dc = NULL;
        int rc = tern_pc_create_data_channel(pc, tern_loop_now(app->loop), "ctl", NULL, &dc);
        if (rc != 0 || !track_chan(app, dc)) {
            say("event error cannot create ctl: %s", tern_strerror(rc));
            app->failures++;
        }
    }
}

static void on_peer_left(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc)
{
    (void)s;
    app_t *app = user;
    say("event peer-left %s", peer_id);
    if (pc && pc == app->pc) {
        /* The client frees the pc and its channels without callbacks. */
        app->pc = NULL;
        for (size_t i = 0; i < app->nchans; i++)
            app->chans[i].dc = NULL;
    }
}

static void on_closed(tern_signaling_t *s, void *user, int code, const char *reason)
{
    (void)s;
    (void)user;
    say("event signaling-closed %d %s", code, reason);
}

static void on_signal(void *arg, int fd, unsigned events)
{
    (void)events;
    app_t *app = arg;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
        say("event stop %s", strsignal((int)si.ssi_signo));
    tern_loop_stop(app->loop);
}

static int usage(void)
{
    fprintf(stderr, "usage: browser_peer --signal ws://HOST:PORT/ws/ROOM (--offer|--answer) "
                    "[--loopback] [--bind ADDR]...\n");
    return 2;
}

int main(int argc, char **argv)
{
    tern_signaling_role_t role = TERN_SIGNALING_ROLE_AUTO;
    bool loopback = false;
    const char *url = NULL;
    const char *binds[8];
    size_t nbind = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--offer") == 0)
            role = TERN_SIGNALING_ROLE_OFFER;
        else if (strcmp(argv[i], "--answer") == 0)
            role = TERN_SIGNALING_ROLE_ANSWER;
        else if (strcmp(argv[i], "--loopback") == 0)
            loopback = true;
        else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc && nbind < 8)
            binds[nbind++] = argv[++i];
        else if (strcmp(argv[i], "--signal") == 0 && i + 1 < argc)
            url = argv[++i];
        else
            return usage();
    }
    if (!url)
        return usage();

    /* Signals arrive through the loop, so the ending is an ordinary, leak-free one. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    static app_t app;
    tern_ctx_t *ctx = NULL;
    int rc = tern_ctx_new(NULL, &ctx);
    if (rc == 0)
        rc = tern_loop_new(ctx, &app.loop);
    if (rc == 0 && sfd >= 0)
        rc = tern_loop_watch_fd(app.loop, sfd, TERN_FD_READABLE, on_signal, &app, NULL);
    const char *lo[] = {"127.0.0.1"};
    tern_pc_config_t pcfg = {.disable_ipv6 = loopback};
    if (loopback) {
        pcfg.include_loopback = true;
        pcfg.bind_addresses = lo;
        pcfg.bind_address_count = 1;
    }
    if (nbind) {
        pcfg.bind_addresses = binds;
        pcfg.bind_address_count = nbind;
    }
    tern_pc_callbacks_t pcbs = {
        .on_connection_state = on_connection_state,
        .on_data_channel = on_data_channel,
        .on_open = on_open,
        .on_message = on_message,
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
    if (rc == 0)
        rc = tern_signaling_new(app.loop, &scfg, &scbs, &app, &app.sig);
    if (rc == 0)
        rc = tern_loop_run(app.loop);
    if (rc != 0)
        fprintf(stderr, "browser_peer: %s%s%s\n", tern_strerror(rc), app.sig ? ": " : "",
                app.sig ? tern_signaling_last_error(app.sig) : "");
    tern_signaling_free(app.sig);
    tern_loop_free(app.loop);
    tern_ctx_free(ctx);
    if (sfd >= 0)
        close(sfd);
    return rc != 0 || app.failures ? 1 : 0;
}
