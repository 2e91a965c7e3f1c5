/* SPDX-License-Identifier: MIT */
/*
 * The signaling client's connection (include/tern/signaling.h): parses the ws:// or wss://
 * URL, resolves a host name through the io layer's helper thread, connects over TCP (each
 * resolved address in turn), runs TLS for wss:// and the RFC 6455 client handshake with the
 * ws layer's endpoint, and moves bytes between the socket and the endpoint on the loop's fd
 * watch. It keeps the endpoint's deadline on a loop timer, gives up when `welcome` has not come
 * within the connect timeout, and reports the end of the connection once (on_closed), always
 * from a loop callback. The protocol's messages are handled in signal_client_peers.c.
 *
 * Re-entrancy: every entry point from the loop (fd, timers, the resolver's result, the pcs'
 * callbacks) is bracketed by tern_sig_enter/leave. The application may call anything from a
 * callback, tern_signaling_free included: freeing then waits until the outermost entry point
 * returns, and no callback runs after it was asked for.
 */
#include "io/io_signal_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MODULE "signal"

/* Reads per readiness, so that a flood from the server cannot hold the loop. */
#define MAX_READS_PER_WAKEUP 16

static void fail(tern_signaling_t *s, int code, const char *reason);
static void on_fd(void *arg, int fd, unsigned events);

/* ---- small helpers ---- */

void tern_sig_set_error(tern_signaling_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
    va_end(ap);
}

static tern_time_t now_of(const tern_signaling_t *s)
{
    return tern_loop_now(s->loop);
}

static void cancel_timer(tern_signaling_t *s, tern_timer_t **t)
{
    if (*t) {
        tern_loop_cancel_timer(s->loop, *t);
        *t = NULL;
    }
}

/* ---- URL ---- */

static bool host_char_ok(char c)
{
    return c > 0x20 && c < 0x7f && c != '/' && c != '?' && c != '#' && c != '@' && c != '[' &&
           c != ']' && c != '\\';
}

static int parse_port(const char *p, size_t n, uint16_t *out)
{
    uint32_t v = 0;
    if (n == 0 || n > 5)
        return TERN_ERR_PARSE;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return TERN_ERR_PARSE;
        v = v * 10 + (uint32_t)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return TERN_ERR_PARSE;
    *out = (uint16_t)v;
    return TERN_OK;
}

/* Split "ws[s]://host[:port][/path][?query]" into the client's fields. */
static int parse_url(tern_signaling_t *s, const char *url)
{
    const char *p;
    if (strncasecmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else if (strncasecmp(url, "wss://", 6) == 0) {
        p = url + 6;
        s->secure = true;
    } else {
        tern_sig_set_error(s, "url: not ws:// or wss://");
        return TERN_ERR_INVALID_ARG;
    }
    s->port = s->secure ? 443 : 80;
    const char *host, *host_end, *rest;
    bool v6 = *p == '[';
    if (v6) {
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            tern_sig_set_error(s, "url: unterminated [IPv6 address]");
            return TERN_ERR_INVALID_ARG;
        }
        rest = host_end + 1;
        for (const char *c = host; c < host_end; c++)
            if (!(host_char_ok(*c) || *c == '%')) {
                tern_sig_set_error(s, "url: bad character in the IPv6 address");
                return TERN_ERR_INVALID_ARG;
            }
    } else {
        host = p;
        for (host_end = p; host_char_ok(*host_end) && *host_end != ':'; host_end++)
            ;
        rest = host_end;
    }
    if (host_end == host || (size_t)(host_end - host) > TERN_IO_RESOLVE_MAX_HOST) {
        tern_sig_set_error(s, "url: no host, or a host over %d characters",
                           TERN_IO_RESOLVE_MAX_HOST);
        return TERN_ERR_INVALID_ARG;
    }
    if (*rest == ':') {
        const char *port = ++rest;
        while (*rest >= '0' && *rest <= '9')
            rest++;
        if (parse_port(port, (size_t)(rest - port), &s->port) != TERN_OK) {
            tern_sig_set_error(s, "url: bad port");
            return TERN_ERR_INVALID_ARG;
        }
    }
    if (*rest != '\0' && *rest != '/' && *rest != '?' && *rest != '#') {
        tern_sig_set_error(s, "url: unexpected character after the host");
        return TERN_ERR_INVALID_ARG;
    }
    size_t target_len = strcspn(rest, "#");
    for (size_t i = 0; i < target_len; i++)
        if ((unsigned char)rest[i] <= 0x20 || rest[i] == 0x7f) {
            tern_sig_set_error(s, "url: space or control character in the path");
            return TERN_ERR_INVALID_ARG;
        }
    s->host = tern_strndup(s->ctx, host, (size_t)(host_end - host));
    /* A target must start with '/' (RFC 9112 §3.2.1 origin-form). */
    bool slash = target_len > 0 && rest[0] == '/';
    s->target = tern_malloc(s->ctx, target_len + 2);
    /* Host: the URL's authority, with the port only when it is not the default (RFC 6455
     * §4.1 item 4, RFC 9110 §7.2). */
    char hdr[TERN_IO_RESOLVE_MAX_HOST + 16];
    char port_text[8] = "";
    if (s->port != (s->secure ? 443 : 80))
        snprintf(port_text, sizeof port_text, ":%u", (unsigned)s->port);
    snprintf(hdr, sizeof hdr, "%s%.*s%s%s", v6 ? "[" : "", (int)(host_end - host), host,
             v6 ? "]" : "", port_text);
    s->host_hdr = tern_strdup(s->ctx, hdr);
    if (!s->host || !s->target || !s->host_hdr)
        return TERN_ERR_NOMEM;
    snprintf(s->target, target_len + 2, "%s%.*s", slash ? "" : "/", (int)target_len, rest);
    return TERN_OK;
}

/* ---- configuration copies ---- */

static int copy_ice_servers(tern_signaling_t *s, const tern_pc_config_t *cfg)
{
    if (cfg->ice_server_count == 0)
        return TERN_OK;
    if (!cfg->ice_servers)
        return TERN_ERR_INVALID_ARG;
    s->own_ice = tern_calloc(s->ctx, cfg->ice_server_count, sizeof *s->own_ice);
    if (!s->own_ice)
        return TERN_ERR_NOMEM;
    s->own_ice_count = cfg->ice_server_count;
    for (size_t i = 0; i < cfg->ice_server_count; i++) {
        const tern_ice_server_t *from = &cfg->ice_servers[i];
        tern_ice_server_t *to = &s->own_ice[i];
        to->url = tern_strdup(s->ctx, from->url);
        to->username = tern_strdup(s->ctx, from->username);
        to->credential = tern_strdup(s->ctx, from->credential);
        if ((from->url && !to->url) || (from->username && !to->username) ||
            (from->credential && !to->credential))
            return TERN_ERR_NOMEM;
    }
    return TERN_OK;
}

static void free_ice_servers(tern_ctx_t *ctx, tern_ice_server_t *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        tern_free(ctx, (char *)list[i].url);
        tern_free(ctx, (char *)list[i].username);
        if (list[i].credential)
            tern_free_secret(ctx, (char *)list[i].credential, strlen(list[i].credential));
        list[i] = (tern_ice_server_t){0};
    }
}

void tern_sig_room_ice_clear(tern_signaling_t *s)
{
    free_ice_servers(s->ctx, s->room_ice, s->room_ice_count);
    s->room_ice_count = 0;
}

static int copy_pc_config(tern_signaling_t *s, const tern_pc_config_t *cfg)
{
    if (!cfg)
        return TERN_OK;
    s->pc_cfg = *cfg;
    s->pc_cfg.ice_servers = NULL;
    s->pc_cfg.ice_server_count = 0;
    s->pc_cfg.bind_addresses = NULL;
    s->pc_cfg.bind_address_count = 0;
    int err = copy_ice_servers(s, cfg);
    if (err)
        return err;
    if (cfg->bind_address_count == 0)
        return TERN_OK;
    if (!cfg->bind_addresses)
        return TERN_ERR_INVALID_ARG;
    s->bind_addrs = tern_calloc(s->ctx, cfg->bind_address_count, sizeof *s->bind_addrs);
    if (!s->bind_addrs)
        return TERN_ERR_NOMEM;
    s->pc_cfg.bind_addresses = (const char *const *)s->bind_addrs;
    s->pc_cfg.bind_address_count = cfg->bind_address_count;
    for (size_t i = 0; i < cfg->bind_address_count; i++)
        if (!(s->bind_addrs[i] = tern_strdup(s->ctx, cfg->bind_addresses[i])))
            return TERN_ERR_NOMEM;
    return TERN_OK;
}

/* ---- the socket and the endpoint ---- */

static void set_watch(tern_signaling_t *s)
{
    if (!s->watch)
        return;
    unsigned want;
    if (s->state == TERN_SIG_CONNECTING)
        want = TERN_FD_WRITABLE;
    else
        want = tern_io_stream_events(&s->stream, s->ws && tern_ws_buffered_amount(s->ws) > 0);
    if (want != s->watch_events && tern_loop_update_fd(s->loop, s->watch, want) == TERN_OK)
        s->watch_events = want;
}

/* Close the socket and free the endpoint; the client itself stays. */
static void drop_connection(tern_signaling_t *s)
{
    if (s->watch) {
        tern_loop_unwatch_fd(s->loop, s->watch);
        s->watch = NULL;
        s->watch_events = 0;
    }
    if (s->stream_open) {
        tern_io_stream_close(&s->stream);
        s->stream_open = false;
    }
    tern_ws_free(s->ws);
    s->ws = NULL;
    cancel_timer(s, &s->ws_timer);
    cancel_timer(s, &s->connect_timer);
    tern_io_resolve_cancel(s->resolve);
    s->resolve = NULL;
}

static void deliver_closed(void *arg)
{
    tern_signaling_t *s = arg;
    s->report_timer = NULL;
    tern_sig_enter(s);
    if (!s->free_pending && s->cbs.on_closed)
        s->cbs.on_closed(s, s->user, s->closed_code, s->closed_reason);
    tern_sig_leave(s);
}

/* End the connection and have on_closed reported from a loop callback of its own. */
static void fail(tern_signaling_t *s, int code, const char *reason)
{
    if (s->state == TERN_SIG_CLOSED)
        return;
    bool joined = s->state == TERN_SIG_JOINED || s->state == TERN_SIG_CLOSING;
    s->state = TERN_SIG_CLOSED;
    drop_connection(s);
    s->closed_code = code;
    snprintf(s->closed_reason, sizeof s->closed_reason, "%s", reason ? reason : "");
    if (s->free_pending)
        return; /* nobody to tell */
    if (code != TERN_WS_CLOSE_NORMAL)
        tern_sig_set_error(s, "closed: %d %s", code, s->closed_reason);
    if (joined && (code == TERN_WS_CLOSE_NORMAL || code == TERN_WS_CLOSE_GOING_AWAY))
        TERN_LOG_INFO(s->ctx, MODULE, "signal %u closed: %d %s", s->id, code, s->closed_reason);
    else
        TERN_LOG_WARN(s->ctx, MODULE, "signal %u closed: %d %s", s->id, code, s->closed_reason);
    if (tern_loop_add_timer(s->loop, 0, deliver_closed, s, &s->report_timer) != TERN_OK)
        s->report_timer = NULL; /* out of memory: on_closed is lost, the log line stays */
}

static void on_ws_timer(void *arg);

/* Keep one loop timer on the endpoint's deadline (millisecond timer, rounded up). */
static void arm_ws_timer(tern_signaling_t *s)
{
    tern_time_t at = s->ws ? tern_ws_next_deadline(s->ws) : TERN_TIME_NEVER;
    /* A later deadline keeps the timer: it fires early (a no-op for the endpoint) and is set
     * again then, which saves a timer per message (each one moves the idle deadline). */
    if (s->ws_timer && at >= s->ws_timer_at)
        return;
    cancel_timer(s, &s->ws_timer);
    s->ws_timer_at = at;
    if (at == TERN_TIME_NEVER)
        return;
    tern_time_t now = now_of(s);
    tern_time_t delay_us = at > now ? at - now : 0;
    uint32_t delay_ms = (uint32_t)TERN_MIN((delay_us + 999) / 1000, (tern_time_t)UINT32_MAX);
    if (tern_loop_add_timer(s->loop, delay_ms, on_ws_timer, s, &s->ws_timer) != TERN_OK)
        s->ws_timer = NULL;
}

static void close_reason(tern_signaling_t *s, const tern_ws_event_t *ev, char *buf, size_t cap)
{
    switch (ev->u.close.cause) {
    case TERN_WS_CAUSE_CLEAN:
        snprintf(buf, cap, "%.*s", (int)ev->u.close.reason_len, ev->u.close.reason);
        break;
    case TERN_WS_CAUSE_BAD_HANDSHAKE:
        if (ev->u.close.http_status)
            snprintf(buf, cap, "HTTP %d", ev->u.close.http_status);
        else
            snprintf(buf, cap, "bad handshake response");
        break;
    case TERN_WS_CAUSE_PROTOCOL_ERROR:
        snprintf(buf, cap, "protocol error from the server (closed with %u)",
                 ev->u.close.sent_code);
        break;
    case TERN_WS_CAUSE_HANDSHAKE_TIMEOUT:
        snprintf(buf, cap, "timed out");
        break;
    case TERN_WS_CAUSE_IDLE_TIMEOUT:
        snprintf(buf, cap, "server silent");
        break;
    case TERN_WS_CAUSE_CLOSE_TIMEOUT:
        snprintf(buf, cap, "no answer to our close");
        break;
    case TERN_WS_CAUSE_EOF:
        snprintf(buf, cap, "%s", s->stream.error[0] ? s->stream.error : "connection lost");
        break;
    default:
        snprintf(buf, cap, "out of memory");
        break;
    }
}

static void handle_ws_close(tern_signaling_t *s, const tern_ws_event_t *ev)
{
    char reason[200];
    close_reason(s, ev, reason, sizeof reason);
    int code = ev->u.close.code;
    if (ev->u.close.cause == TERN_WS_CAUSE_CLEAN && !ev->u.close.by_peer &&
        code == TERN_WS_CLOSE_ABNORMAL)
        code = TERN_WS_CLOSE_NORMAL; /* our close before the upgrade: no frame, no fault */
    /* Write what is left (the echo of the server's close) before the socket goes. */
    const uint8_t *data;
    size_t len;
    while (s->stream_open && tern_ws_poll_output(s->ws, &data, &len)) {
        long n = tern_io_stream_write(&s->stream, data, len);
        if (n <= 0)
            break;
        tern_ws_consume_output(s->ws, (size_t)n);
    }
    fail(s, code, reason);
}

/* Take every event of the endpoint; false once the connection is gone. */
static bool drain_events(tern_signaling_t *s)
{
    tern_ws_event_t ev;
    while (s->ws && tern_ws_poll_event(s->ws, &ev)) {
        switch (ev.type) {
        case TERN_WS_EV_OPEN:
            TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u websocket open, waiting for welcome", s->id);
            s->state = TERN_SIG_JOINING;
            break;
        case TERN_WS_EV_MESSAGE:
            if (!ev.u.message.is_text) {
                TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u binary message dropped", s->id);
                break;
            }
            if (!s->free_pending)
                tern_sig_handle_message(s, ev.u.message.data, ev.u.message.len);
            break;
        case TERN_WS_EV_CLOSE:
            handle_ws_close(s, &ev);
            return false;
        default:
            break;
        }
    }
    return s->ws != NULL;
}

/* Write as much output as the socket takes. */
static bool flush_output(tern_signaling_t *s)
{
    const uint8_t *data;
    size_t len;
    while (s->ws && s->stream_open && tern_ws_poll_output(s->ws, &data, &len)) {
        long n = tern_io_stream_write(&s->stream, data, len);
        if (n == TERN_ERR_AGAIN)
            break;
        if (n < 0) {
            tern_ws_handle_eof(s->ws, now_of(s));
            return false;
        }
        tern_ws_consume_output(s->ws, (size_t)n);
    }
    return true;
}

void tern_sig_flush(tern_signaling_t *s)
{
    flush_output(s);
    set_watch(s);
    arm_ws_timer(s);
}

void tern_sig_pump(tern_signaling_t *s)
{
    /* A write failure ends the endpoint (EOF), whose CLOSE event the next round takes. */
    for (int round = 0; round < 4 && s->ws; round++) {
        if (!drain_events(s))
            return;
        if (flush_output(s))
            break;
    }
    set_watch(s);
    arm_ws_timer(s);
}

static void on_ws_timer(void *arg)
{
    tern_signaling_t *s = arg;
    s->ws_timer = NULL;
    s->ws_timer_at = TERN_TIME_NEVER;
    tern_sig_enter(s);
    if (s->ws) {
        tern_ws_handle_timeout(s->ws, now_of(s));
        tern_sig_pump(s);
    }
    tern_sig_leave(s);
}

/* Feed bytes, draining events whenever the endpoint's queue is full. */
static void feed(tern_signaling_t *s, const uint8_t *data, size_t len)
{
    while (s->ws) {
        int err = tern_ws_handle_input(s->ws, now_of(s), data, len);
        if (err != TERN_ERR_AGAIN)
            return;
        if (!drain_events(s))
            return;
    }
}

static void read_input(tern_signaling_t *s)
{
    /* Bytes TLS has already decrypted do not wake the fd again: take them in any case. */
    for (int i = 0; s->ws && s->stream_open && !s->free_pending &&
                    (i < MAX_READS_PER_WAKEUP || tern_io_stream_has_buffered(&s->stream));
         i++) {
        long n = tern_io_stream_read(&s->stream, s->rbuf, sizeof s->rbuf);
        if (n == TERN_ERR_AGAIN)
            return;
        if (n < 0) {
            tern_ws_handle_eof(s->ws, now_of(s));
            return;
        }
        feed(s, s->rbuf, (size_t)n);
        if (!drain_events(s))
            return;
        if (!flush_output(s))
            return;
    }
}

/* ---- connecting ---- */

static int start_endpoint(tern_signaling_t *s, int fd)
{
    int err = tern_io_stream_init(&s->stream, fd, s->tls, s->secure ? s->host : NULL);
    if (err)
        return err; /* the fd is closed */
    s->stream_open = true;
    tern_ws_config_t wcfg = {
        .role = TERN_WS_ROLE_CLIENT,
        .max_message_bytes = TERN_SIG_MAX_MESSAGE,
        /* The connect timer bounds the whole join; the endpoint's own limit is a backstop. */
        .handshake_timeout_us = TERN_MS(s->connect_timeout_ms) + TERN_SEC(1),
        .host = s->host_hdr,
        .target = s->target,
    };
    err = tern_ws_new(s->ctx, &wcfg, now_of(s), &s->ws);
    if (err)
        return err;
    s->state = TERN_SIG_HANDSHAKE;
    return TERN_OK;
}

/* Start a TCP connection to the next address; false when none is left to try. */
static bool connect_next(tern_signaling_t *s, char *why, size_t cap)
{
    while (s->addr_next < s->addr_count) {
        const tern_addr_t *a = &s->addrs[s->addr_next++];
        char text[TERN_ADDR_STRLEN];
        int fd = tern_io_tcp_connect(a, NULL);
        if (fd < 0) {
            snprintf(why, cap, "connect %s: %s", tern_addr_log(s->ctx, a, text), tern_strerror(fd));
            continue;
        }
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u connecting to %s", s->id,
                       tern_addr_log(s->ctx, a, text));
        int err = tern_loop_watch_fd(s->loop, fd, TERN_FD_WRITABLE, on_fd, s, &s->watch);
        if (err) {
            tern_io_stream_t tmp = {.fd = fd};
            tern_io_stream_close(&tmp);
            snprintf(why, cap, "watch: %s", tern_strerror(err));
            continue;
        }
        s->watch_events = TERN_FD_WRITABLE;
        s->stream = (tern_io_stream_t){.fd = fd};
        s->state = TERN_SIG_CONNECTING;
        return true;
    }
    return false;
}

static void finish_connect(tern_signaling_t *s, int fd)
{
    char why[200];
    if (tern_io_tcp_connect_result(fd) != TERN_OK) {
        char text[TERN_ADDR_STRLEN];
        snprintf(why, sizeof why, "connect %s: %s",
                 tern_addr_log(s->ctx, &s->addrs[s->addr_next - 1], text), strerror(errno));
        tern_loop_unwatch_fd(s->loop, s->watch);
        s->watch = NULL;
        tern_io_stream_close(&s->stream);
        if (!connect_next(s, why, sizeof why))
            fail(s, TERN_WS_CLOSE_ABNORMAL, why);
        return;
    }
    int err = start_endpoint(s, fd);
    if (err) {
        snprintf(why, sizeof why, "%s", s->stream.error[0] ? s->stream.error : tern_strerror(err));
        fail(s, TERN_WS_CLOSE_ABNORMAL, why);
        return;
    }
    TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u connected, upgrading %s%s", s->id, s->host_hdr,
                   s->target);
    tern_sig_pump(s);
}

static void on_fd(void *arg, int fd, unsigned events)
{
    tern_signaling_t *s = arg;
    tern_sig_enter(s);
    if (s->state == TERN_SIG_CONNECTING) {
        finish_connect(s, fd);
    } else if (s->ws) {
        (void)events; /* a read tells more than the bits (TLS may need it either way) */
        read_input(s);
        if (s->ws)
            tern_sig_pump(s);
    }
    tern_sig_leave(s);
}

static void on_resolved(void *arg, int err, const tern_addr_t *addrs, size_t count,
                        const char *reason)
{
    tern_signaling_t *s = arg;
    s->resolve = NULL;
    tern_sig_enter(s);
    char why[160];
    if (err) {
        snprintf(why, sizeof why, "resolve %s: %s", s->host, reason);
        fail(s, TERN_WS_CLOSE_ABNORMAL, why);
    } else {
        memcpy(s->addrs, addrs, count * sizeof *addrs);
        s->addr_count = count;
        s->addr_next = 0;
        snprintf(why, sizeof why, "no address");
        if (!connect_next(s, why, sizeof why))
            fail(s, TERN_WS_CLOSE_ABNORMAL, why);
    }
    tern_sig_leave(s);
}

static void on_connect_timeout(void *arg)
{
    tern_signaling_t *s = arg;
    s->connect_timer = NULL;
    tern_sig_enter(s);
    if (s->state < TERN_SIG_JOINED)
        fail(s, TERN_WS_CLOSE_ABNORMAL, "timed out");
    tern_sig_leave(s);
}

/* Start resolving or connecting; errors here are returned by tern_signaling_new. */
static int start(tern_signaling_t *s)
{
    tern_addr_t a;
    int err = tern_loop_add_timer(s->loop, s->connect_timeout_ms, on_connect_timeout, s,
                                  &s->connect_timer);
    if (err)
        return err;
    if (tern_addr_parse(s->host, &a) == TERN_OK) {
        a.port = s->port;
        s->addrs[0] = a;
        s->addr_count = 1;
        char why[128] = "";
        if (!connect_next(s, why, sizeof why)) {
            tern_sig_set_error(s, "%s", why);
            return TERN_ERR_IO;
        }
        return TERN_OK;
    }
    s->state = TERN_SIG_RESOLVING;
    err = tern_io_resolve_start(s->loop, s->host, s->port, on_resolved, s, &s->resolve);
    if (err)
        tern_sig_set_error(s, "cannot resolve %s: %s", s->host, tern_strerror(err));
    return err;
}

/* ---- lifetime ---- */

void tern_sig_enter(tern_signaling_t *s)
{
    s->depth++;
}

static void destroy(tern_signaling_t *s);

void tern_sig_leave(tern_signaling_t *s)
{
    if (--s->depth > 0)
        return;
    if (s->free_pending)
        destroy(s);
    else
        tern_sig_peers_reap(s);
}

static void destroy(tern_signaling_t *s)
{
    s->free_pending = true;
    tern_sig_peers_kill_all(s, false);
    tern_sig_peers_reap(s);
    s->state = TERN_SIG_CLOSED;
    drop_connection(s);
    cancel_timer(s, &s->report_timer);
    tern_io_tls_free(s->tls);
    tern_sig_room_ice_clear(s);
    free_ice_servers(s->ctx, s->own_ice, s->own_ice_count);
    tern_free(s->ctx, s->own_ice);
    for (size_t i = 0; s->bind_addrs && i < s->pc_cfg.bind_address_count; i++)
        tern_free(s->ctx, s->bind_addrs[i]);
    tern_free(s->ctx, s->bind_addrs);
    tern_free(s->ctx, s->host);
    tern_free(s->ctx, s->host_hdr);
    tern_free(s->ctx, s->target);
    tern_free(s->ctx, s->self_id);
    tern_free(s->ctx, s->room);
    TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u freed", s->id);
    tern_free(s->ctx, s);
}

int tern_signaling_new(tern_loop_t *loop, const tern_signaling_config_t *cfg,
                       const tern_signaling_callbacks_t *cbs, void *user, tern_signaling_t **out)
{
    if (!loop || !cfg || !cfg->url || !out || (unsigned)cfg->role > TERN_SIGNALING_ROLE_ANSWER)
        return TERN_ERR_INVALID_ARG;
    tern_ctx_t *ctx = tern_io_loop_ctx(loop);
    tern_signaling_t *s = tern_calloc(ctx, 1, sizeof *s);
    if (!s)
        return TERN_ERR_NOMEM;
    s->loop = loop;
    s->ctx = ctx;
    s->id = tern_ctx_new_object_id(ctx);
    if (cbs)
        s->cbs = *cbs;
    s->user = user;
    if (cfg->pc_callbacks)
        s->app_pc_cbs = *cfg->pc_callbacks;
    s->pc_user = cfg->pc_user;
    s->role = cfg->role;
    s->connect_timeout_ms =
        cfg->connect_timeout_ms ? cfg->connect_timeout_ms : TERN_SIG_DEFAULT_CONNECT_MS;
    s->max_peers = cfg->max_peers ? cfg->max_peers : TERN_SIG_DEFAULT_MAX_PEERS;
    s->stream.fd = -1;
    s->ws_timer_at = TERN_TIME_NEVER;
    s->state = TERN_SIG_CONNECTING;
    int err = parse_url(s, cfg->url);
    if (!err)
        err = copy_pc_config(s, cfg->pc_config);
    if (!err && s->secure) {
        char why[128] = "";
        err = tern_io_tls_client_new(ctx, cfg->tls_ca_file, cfg->tls_insecure, &s->tls, why,
                                     sizeof why);
        if (err)
            tern_sig_set_error(s, "tls: %s", why);
    }
    if (!err)
        err = start(s);
    if (err) {
        TERN_LOG_WARN(ctx, MODULE, "signal %u: %s", s->id,
                      s->last_error[0] ? s->last_error : tern_strerror(err));
        destroy(s);
        return err;
    }
    TERN_LOG_INFO(ctx, MODULE, "signal %u joining %s://%s%s", s->id, s->secure ? "wss" : "ws",
                  s->host_hdr, s->target);
    *out = s;
    return TERN_OK;
}

/* Best effort, without waiting: bye to the room and a close frame, as far as the socket takes
 * them now. */
static void say_goodbye(tern_signaling_t *s)
{
    if (s->state == TERN_SIG_JOINED) {
        tern_sig_peers_kill_all(s, true);
        tern_ws_close(s->ws, now_of(s), TERN_WS_CLOSE_GOING_AWAY, NULL);
        s->state = TERN_SIG_CLOSING;
        flush_output(s);
    }
}

void tern_signaling_free(tern_signaling_t *s)
{
    if (!s || s->free_pending)
        return;
    say_goodbye(s);
    if (s->depth > 0) {
        s->free_pending = true;
        return;
    }
    destroy(s);
}

int tern_signaling_close(tern_signaling_t *s)
{
    if (!s)
        return TERN_ERR_INVALID_ARG;
    if (s->state == TERN_SIG_CLOSED || s->state == TERN_SIG_CLOSING)
        return TERN_OK;
    tern_sig_enter(s);
    if (s->state == TERN_SIG_JOINED)
        tern_sig_peers_kill_all(s, true);
    if (s->ws && (s->state == TERN_SIG_JOINED || s->state == TERN_SIG_JOINING)) {
        s->state = TERN_SIG_CLOSING;
        tern_ws_close(s->ws, now_of(s), TERN_WS_CLOSE_NORMAL, NULL);
        tern_sig_flush(s);
    } else {
        fail(s, TERN_WS_CLOSE_NORMAL, "closed before joining");
    }
    tern_sig_leave(s);
    return TERN_OK;
}

int tern_sig_send_json(tern_signaling_t *s, json_t *obj)
{
    if (s->state != TERN_SIG_JOINED || !s->ws)
        return TERN_ERR_INVALID_STATE;
    size_t len = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    if (len == 0)
        return TERN_ERR_NOMEM;
    if (len > TERN_SIG_MAX_MESSAGE)
        return TERN_ERR_TOO_LARGE;
    char *buf = tern_malloc(s->ctx, len);
    if (!buf)
        return TERN_ERR_NOMEM;
    json_dumpb(obj, buf, len, JSON_COMPACT);
    int err = tern_ws_send_text(s->ws, now_of(s), buf, len);
    tern_free(s->ctx, buf);
    if (err)
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u send failed: %s", s->id, tern_strerror(err));
    return err;
}

int tern_signaling_send(tern_signaling_t *s, const char *to, const char *json)
{
    if (!s || !json)
        return TERN_ERR_INVALID_ARG;
    if (s->state != TERN_SIG_JOINED)
        return TERN_ERR_INVALID_STATE;
    json_t *obj = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
    int err = TERN_OK;
    if (!obj || !json_is_object(obj) || !json_is_string(json_object_get(obj, "type")))
        err = TERN_ERR_PARSE;
    if (!err) {
        json_object_del(obj, "from");
        json_object_del(obj, "to");
        if (to && json_object_set_new(obj, "to", json_string(to)) != 0)
            err = TERN_ERR_NOMEM;
    }
    if (!err)
        err = tern_sig_send_json(s, obj);
    json_decref(obj);
    if (!err)
        tern_sig_flush(s);
    return err;
}

const char *tern_signaling_self_id(const tern_signaling_t *s)
{
    return s ? s->self_id : NULL;
}

const char *tern_signaling_last_error(const tern_signaling_t *s)
{
    return s ? s->last_error : "";
}
