/* SPDX-License-Identifier: MIT */
/*
 * The signaling server (signaling-protocol.md, version 1) on one tern_loop thread: a TCP
 * listener (TLS optional) whose connections each run a sans-IO WebSocket endpoint (src/ws/),
 * rooms of peers with server-assigned ids, the relay with "to" and "from", every error and
 * limit of the protocol (bad-json, unknown-peer, too-large with 1009, rate-limited with a
 * token bucket, room-full with 1008), plain HTTP (/healthz, static files, 400 for a bad room),
 * and the embedded STUN responder on UDP.
 *
 * Scaling: ids and rooms are in SipHash tables, a room keeps its peers in an array (swap
 * removal), so joining, leaving and routing are O(1) apart from the broadcast itself. Every
 * connection's WebSocket deadline sits in one heap, updated lazily (only when it moves
 * earlier: a timer that fires early finds nothing to do and is put back), behind a single loop
 * timer. A peer's output is bounded (max_output_bytes): a reader that falls that far behind is
 * dropped, so nothing one client does holds memory or time for the others.
 *
 * Detached (tern_signal_server_new_detached): the same code without a loop or sockets, for the
 * fuzz harness; connections are opened and fed by the caller, output goes to its sink, time is
 * its `now`. Only the socket edges differ: conn_new/read_input/flush's write/arm_timer.
 *
 * Re-entrancy: sending to a peer can drop it (slow reader), and a drop sends "leave" to its
 * room, which can drop more. So a connection is never freed where it is found dead: it goes
 * on a list that settle() empties once the current callback is done, after flushing the
 * output of every connection written to (one write per peer per callback, however many
 * messages it got).
 */
#include "io/io.h"
#include "io/io_stream.h"
#include "signaling.h"
#include "ws/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes read from one connection per readiness: one busy client cannot starve the rest. */
#define READ_BUDGET (256 * 1024)
#define READ_CHUNK (16 * 1024)
/* Connections accepted per readiness of the listener. */
#define ACCEPT_BUDGET 64
/* Datagrams answered per readiness of a STUN socket. */
#define STUN_BUDGET 64
/* How long an ended connection may take to write what it still has (a static file). */
#define LINGER_US TERN_SEC(5)
/* How long shutdown waits for the close handshakes. */
#define SHUTDOWN_WAIT_MS 1000
/* Bytes of static files all connections may hold in their output at once: a crowd that asks
 * for files and never reads them gets 503 instead of growing the heap without bound. */
#define HTTP_BUDGET_BYTES (64 * 1024 * 1024)
/* Pause of the listener when the process is out of file descriptors. */
#define ACCEPT_PAUSE_MS 100
#define ID_CHARS 10

typedef struct room room_t;

typedef struct conn {
    /* configuration */
    tern_signal_server_t *srv;
    uint32_t serial; /* "conn 17" in log lines */
    tern_addr_t remote;
    tern_time_t started;

    /* state */
    tern_io_stream_t stream;
    tern_fd_watch_t *watch;
    unsigned watched; /* events the watch waits for */
    tern_ws_t *ws;
    tern_io_heap_node_t timer;
    char room_name[TERN_SIGNAL_MAX_ROOM_LEN + 1];
    room_t *room; /* NULL unless joined */
    size_t room_index;
    tern_signal_entry_t id_entry; /* in srv->ids while joined; key = id */
    char id[ID_CHARS + 1];
    int64_t tokens_u; /* rate limit: tokens times 1e6 */
    tern_time_t refilled;
    bool is_ws;   /* upgraded */
    bool ended;   /* the WebSocket endpoint is closed: write what is left, then free */
    bool dead;    /* on the dead list: freed by settle() */
    bool dirty;   /* on the dirty list: output to flush */
    bool limited; /* the last message was refused by the rate limit */
    tern_time_t linger_until;
    char http[96];     /* the request's log summary ("GET /x 200") */
    size_t http_bytes; /* of the HTTP budget, held until freed */
    int close_code;

    /* stats */
    uint64_t msgs_in, msgs_relayed, errors_sent, rate_drops;

    /* lists */
    struct conn *prev, *next;
    struct conn *next_dirty, *next_dead;
} conn_t;

struct room {
    tern_signal_entry_t entry; /* in srv->rooms; key = name */
    char name[TERN_SIGNAL_MAX_ROOM_LEN + 1];
    conn_t **peers;
    size_t count, cap;
};

enum { ERR_BAD_JSON, ERR_UNKNOWN_PEER, ERR_TOO_LARGE, ERR_RATE_LIMITED, ERR_ROOM_FULL, ERR_COUNT };

static const struct {
    const char *code;
    const char *message;
} error_texts[ERR_COUNT] = {
    [ERR_BAD_JSON] = {"bad-json", "a message must be a JSON object with a string \"type\""},
    [ERR_UNKNOWN_PEER] = {"unknown-peer", "\"to\" names no peer of this room"},
    [ERR_TOO_LARGE] = {"too-large", "the message is over the size limit"},
    [ERR_RATE_LIMITED] = {"rate-limited", "too many messages: this one was dropped"},
    [ERR_ROOM_FULL] = {"room-full", "the room has its maximum of peers"},
};

struct tern_signal_server {
    /* configuration */
    tern_loop_t *loop;       /* NULL when detached */
    tern_signal_sink_t sink; /* detached only */
    tern_ctx_t *ctx;
    tern_signal_config_t cfg;
    json_t *ice_servers;
    tern_io_tls_t *tls;
    int root_fd;
    char *errors[ERR_COUNT]; /* prebuilt error messages */
    size_t error_lens[ERR_COUNT];

    /* sockets */
    int listen_fd;
    tern_fd_watch_t *listen_watch;
    tern_addr_t tcp_addr;
    int stun_fds[2];
    tern_fd_watch_t *stun_watches[2];
    tern_addr_t stun_addr;
    tern_timer_t *accept_resume;
    bool accept_failing; /* the last accept ran out of descriptors */

    /* state */
    tern_signal_table_t ids;
    tern_signal_table_t rooms;
    tern_io_heap_t heap;
    tern_timer_t *timer;
    tern_time_t timer_at;
    conn_t *conns;
    size_t conn_count, peer_count;
    size_t http_bytes; /* static file bytes held by connections (HTTP_BUDGET_BYTES) */
    conn_t *dirty, *dead;
    uint32_t next_serial;
    bool shutting_down;
    tern_time_t now; /* detached only: the caller's time */
    void (*done)(void *arg);
    void *done_arg;
    tern_timer_t *shutdown_timer;
    uint8_t rx[READ_CHUNK];
};

static tern_time_t now_of(const tern_signal_server_t *s)
{
    return s->loop ? tern_loop_now(s->loop) : s->now;
}

static const char *addr_text(const tern_signal_server_t *s, const tern_addr_t *a,
                             char buf[TERN_ADDR_STRLEN])
{
    return tern_addr_log(s->ctx, a, buf);
}

/* ------------------------------------------------------------------------------------------ */
/* Lists, timers                                                                              */
/* ------------------------------------------------------------------------------------------ */

static void mark_dirty(conn_t *c)
{
    if (c->dirty || c->dead)
        return;
    c->dirty = true;
    c->next_dirty = c->srv->dirty;
    c->srv->dirty = c;
}

static conn_t *conn_of_node(tern_io_heap_node_t *n)
{
    return (conn_t *)(void *)((char *)n - offsetof(conn_t, timer));
}

/* Put the connection's deadline in the heap if it moved earlier (see the file comment). */
static void schedule(conn_t *c)
{
    if (c->dead)
        return;
    tern_time_t d = c->ws ? tern_ws_next_deadline(c->ws) : TERN_TIME_NEVER;
    if (c->ended)
        d = TERN_MIN(d, c->linger_until);
    if (d == TERN_TIME_NEVER)
        return;
    if (c->timer.index == TERN_IO_HEAP_NONE || d < c->timer.deadline)
        tern_io_heap_set(&c->srv->heap, &c->timer, d);
}

static void on_timer(void *arg);

static void arm_timer(tern_signal_server_t *s)
{
    const tern_io_heap_node_t *top = tern_io_heap_peek(&s->heap);
    if (!s->loop || !top || (s->timer && s->timer_at <= top->deadline))
        return;
    tern_loop_cancel_timer(s->loop, s->timer);
    s->timer = NULL;
    tern_time_t wait = TERN_MAX(top->deadline - now_of(s), 0);
    uint32_t ms = (uint32_t)TERN_MIN((wait + 999) / 1000, (tern_time_t)UINT32_MAX);
    if (tern_loop_add_timer(s->loop, ms, on_timer, s, &s->timer) == TERN_OK)
        s->timer_at = top->deadline;
}

/* ------------------------------------------------------------------------------------------ */
/* Rooms and peers                                                                            */
/* ------------------------------------------------------------------------------------------ */

static room_t *room_find(tern_signal_server_t *s, const char *name)
{
    tern_signal_entry_t *e = tern_signal_table_get(&s->rooms, name, strlen(name));
    return e ? (room_t *)(void *)e : NULL;
}

static room_t *room_get(tern_signal_server_t *s, const char *name)
{
    room_t *r = room_find(s, name);
    if (r)
        return r;
    r = tern_calloc(s->ctx, 1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->entry.key = r->name;
    r->entry.key_len = strlen(r->name);
    if (tern_signal_table_put(&s->rooms, &r->entry) != TERN_OK) {
        tern_free(s->ctx, r);
        return NULL;
    }
    return r;
}

static void room_release_if_empty(tern_signal_server_t *s, room_t *r)
{
    if (r->count > 0)
        return;
    tern_signal_table_remove(&s->rooms, &r->entry);
    tern_free(s->ctx, r->peers);
    tern_free(s->ctx, r);
}

static int room_add(tern_signal_server_t *s, room_t *r, conn_t *c)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        conn_t **p = tern_realloc(s->ctx, r->peers, cap * sizeof *p);
        if (!p)
            return TERN_ERR_NOMEM;
        r->peers = p;
        r->cap = cap;
    }
    c->room = r;
    c->room_index = r->count;
    r->peers[r->count++] = c;
    return TERN_OK;
}

static void room_remove(room_t *r, conn_t *c)
{
    size_t i = c->room_index;
    r->peers[i] = r->peers[--r->count];
    r->peers[i]->room_index = i;
    c->room = NULL;
}

/* A fresh id, unique among the connected peers: 50 random bits in [a-z2-9] minus look-alikes. */
static bool new_id(tern_signal_server_t *s, char out[ID_CHARS + 1])
{
    static const char alphabet[32] = "abcdefghijkmnpqrstuvwxyz23456789";
    for (int attempt = 0; attempt < 8; attempt++) {
        uint8_t r[ID_CHARS];
        if (tern_random_bytes(s->ctx, r, sizeof r) != TERN_OK)
            return false;
        for (int i = 0; i < ID_CHARS; i++)
            out[i] = alphabet[r[i] % 32];
        out[ID_CHARS] = '\0';
        if (!tern_signal_table_get(&s->ids, out, ID_CHARS))
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Sending                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void conn_drop(conn_t *c, const char *why);

/* Queue a text message; a reader whose output is full is dropped. */
static void send_text(conn_t *c, const char *text, size_t len)
{
    if (c->dead || c->ended || !c->ws)
        return;
    int rc = tern_ws_send_text(c->ws, now_of(c->srv), text, len);
    if (rc == TERN_OK) {
        mark_dirty(c);
    } else if (rc == TERN_ERR_AGAIN || rc == TERN_ERR_TOO_LARGE) {
        conn_drop(c, "slow reader: output over the limit");
    } else if (rc == TERN_ERR_NOMEM) {
        conn_drop(c, "out of memory");
    }
    /* TERN_ERR_INVALID_STATE: closing, it gets nothing more. */
}

static void send_error(conn_t *c, int which)
{
    tern_signal_server_t *s = c->srv;
    c->errors_sent++;
    send_text(c, s->errors[which], s->error_lens[which]);
}

static void broadcast(conn_t *from, const char *text, size_t len)
{
    room_t *r = from->room;
    /* send_text never removes a peer from the room (drops are deferred), so the array holds. */
    for (size_t i = 0; i < r->count; i++)
        if (r->peers[i] != from)
            send_text(r->peers[i], text, len);
}

/* Close the WebSocket with a code (the endpoint then waits for the peer's close frame). */
static void close_ws(conn_t *c, uint16_t code, const char *reason)
{
    if (c->ws && !c->ended) {
        tern_ws_close(c->ws, now_of(c->srv), code, reason);
        c->close_code = code;
        mark_dirty(c);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Joining and leaving                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void conn_join(conn_t *c)
{
    tern_signal_server_t *s = c->srv;
    room_t *r = room_find(s, c->room_name);
    if (r && r->count >= s->cfg.max_room_peers) {
        char buf[TERN_ADDR_STRLEN];
        TERN_LOG_INFO(s->ctx, "signal", "conn %u %s room %s is full (%zu in it)", c->serial,
                      addr_text(s, &c->remote, buf), c->room_name, r->count);
        send_error(c, ERR_ROOM_FULL);
        close_ws(c, TERN_WS_CLOSE_POLICY_VIOLATION, "room-full");
        return;
    }
    r = room_get(s, c->room_name);
    if (!r || !new_id(s, c->id)) {
        if (r)
            room_release_if_empty(s, r);
        close_ws(c, TERN_WS_CLOSE_INTERNAL_ERROR, "server error");
        return;
    }
    c->id_entry.key = c->id;
    c->id_entry.key_len = strlen(c->id);
    if (tern_signal_table_put(&s->ids, &c->id_entry) != TERN_OK) {
        room_release_if_empty(s, r);
        close_ws(c, TERN_WS_CLOSE_INTERNAL_ERROR, "server error");
        return;
    }
    /* The ids of the others, for welcome. */
    const char *stack_ids[TERN_SIGNAL_DEFAULT_MAX_ROOM_PEERS];
    const char **ids = r->count <= TERN_ARRAY_LEN(stack_ids)
                           ? stack_ids
                           : tern_malloc(s->ctx, r->count * sizeof *ids);
    int rc = ids ? room_add(s, r, c) : TERN_ERR_NOMEM;
    if (rc != TERN_OK) {
        if (ids != stack_ids)
            tern_free(s->ctx, ids);
        tern_signal_table_remove(&s->ids, &c->id_entry);
        room_release_if_empty(s, r);
        close_ws(c, TERN_WS_CLOSE_INTERNAL_ERROR, "server error");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < r->count; i++)
        if (r->peers[i] != c)
            ids[n++] = r->peers[i]->id;
    s->peer_count++;
    size_t len = 0;
    char *welcome = tern_signal_msg_welcome(c->id, r->name, ids, n, s->ice_servers, &len);
    if (ids != stack_ids)
        tern_free(s->ctx, ids);
    if (welcome)
        send_text(c, welcome, len);
    free(welcome);
    char *join = tern_signal_msg_join(c->id, &len);
    if (join)
        broadcast(c, join, len);
    free(join);
    char buf[TERN_ADDR_STRLEN];
    TERN_LOG_INFO(s->ctx, "signal", "conn %u %s joined room %s as %s (%zu in the room)", c->serial,
                  addr_text(s, &c->remote, buf), r->name, c->id, r->count);
}

/* Leave the room (once): the others get "leave". */
static void conn_leave(conn_t *c)
{
    room_t *r = c->room;
    if (!r)
        return;
    tern_signal_server_t *s = c->srv;
    room_remove(r, c);
    tern_signal_table_remove(&s->ids, &c->id_entry);
    s->peer_count--;
    size_t len = 0;
    char *leave = tern_signal_msg_leave(c->id, &len);
    if (leave)
        for (size_t i = 0; i < r->count; i++)
            send_text(r->peers[i], leave, len);
    free(leave);
    room_release_if_empty(s, r);
}

/* The connection's one log line. */
static void log_end(conn_t *c, const char *why)
{
    tern_signal_server_t *s = c->srv;
    char buf[TERN_ADDR_STRLEN];
    double secs = (double)(now_of(s) - c->started) / 1e6;
    if (!c->is_ws) {
        TERN_LOG_INFO(s->ctx, "signal", "conn %u %s %s%s%s (%.1f s)", c->serial,
                      addr_text(s, &c->remote, buf), c->http[0] ? c->http : "no request",
                      why ? ": " : "", why ? why : "", secs);
        return;
    }
    TERN_LOG_INFO(s->ctx, "signal",
                  "conn %u %s ws room %s id %s ended: %s; %llu messages in, %llu relayed, "
                  "%llu errors, %llu rate-limited (%.1f s)",
                  c->serial, addr_text(s, &c->remote, buf), c->room_name, c->id[0] ? c->id : "-",
                  why, (unsigned long long)c->msgs_in, (unsigned long long)c->msgs_relayed,
                  (unsigned long long)c->errors_sent, (unsigned long long)c->rate_drops, secs);
}

/* Drop at once (a slow reader, a socket error): no more output, freed by settle(). */
static void conn_drop(conn_t *c, const char *why)
{
    if (c->dead)
        return;
    if (why)
        log_end(c, why);
    c->dead = true;
    c->next_dead = c->srv->dead;
    c->srv->dead = c;
    conn_leave(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Messages                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* The token bucket: rate_per_s tokens a second, up to twice that; one per message. */
static bool take_token(conn_t *c, tern_time_t now)
{
    const tern_signal_config_t *cfg = &c->srv->cfg;
    int64_t burst_u = (int64_t)cfg->rate_per_s * 2 * 1000000;
    tern_time_t elapsed = now - c->refilled;
    c->refilled = now;
    /* Bounded first, so the product cannot overflow: a full refill takes 2 s at most. */
    if (elapsed > TERN_SEC(2) || elapsed < 0)
        elapsed = elapsed < 0 ? 0 : TERN_SEC(2);
    c->tokens_u = TERN_MIN(c->tokens_u + elapsed * (int64_t)cfg->rate_per_s, burst_u);
    if (c->tokens_u < 1000000)
        return false;
    c->tokens_u -= 1000000;
    return true;
}

static void relay(conn_t *c, tern_signal_msg_t *m)
{
    tern_signal_server_t *s = c->srv;
    conn_t *target = NULL;
    if (m->has_to) {
        tern_signal_entry_t *e = m->to ? tern_signal_table_get(&s->ids, m->to, m->to_len) : NULL;
        target = e ? (conn_t *)(void *)((char *)e - offsetof(conn_t, id_entry)) : NULL;
        if (!target || target->room != c->room) {
            char buf[TERN_ADDR_STRLEN];
            TERN_LOG_INFO(s->ctx, "signal", "conn %u %s id %s: unknown-peer", c->serial,
                          addr_text(s, &c->remote, buf), c->id);
            send_error(c, ERR_UNKNOWN_PEER);
            return;
        }
    }
    size_t len = 0;
    char *text = tern_signal_msg_relay(m, c->id, &len);
    if (!text) {
        conn_drop(c, "out of memory");
        return;
    }
    c->msgs_relayed++;
    if (target)
        send_text(target, text, len);
    else
        broadcast(c, text, len);
    free(text);
}

static void on_message(conn_t *c, const uint8_t *data, size_t len, bool is_text)
{
    tern_signal_server_t *s = c->srv;
    char buf[TERN_ADDR_STRLEN];
    if (!c->room || tern_ws_state(c->ws) != TERN_WS_STATE_OPEN)
        return;
    c->msgs_in++;
    if (!is_text) {
        /* The protocol carries text frames only; RFC 6455 §7.4.1 names 1003 for data of a
         * type the endpoint cannot accept. */
        TERN_LOG_INFO(s->ctx, "signal", "conn %u %s id %s: binary frame, closing with 1003",
                      c->serial, addr_text(s, &c->remote, buf), c->id);
        close_ws(c, TERN_WS_CLOSE_UNSUPPORTED_DATA, "text frames only");
        return;
    }
    if (len > s->cfg.max_message_bytes) {
        TERN_LOG_INFO(s->ctx, "signal", "conn %u %s id %s: too-large (%zu bytes), closing",
                      c->serial, addr_text(s, &c->remote, buf), c->id, len);
        send_error(c, ERR_TOO_LARGE);
        close_ws(c, TERN_WS_CLOSE_MESSAGE_TOO_BIG, "too-large");
        return;
    }
    if (!take_token(c, now_of(s))) {
        /* One line per burst, not per dropped message: the count is in the final line. */
        if (!c->limited)
            TERN_LOG_INFO(s->ctx, "signal", "conn %u %s id %s: rate-limited", c->serial,
                          addr_text(s, &c->remote, buf), c->id);
        c->limited = true;
        c->rate_drops++;
        /* Each refused message is answered, but the answers must not become a flood of their
         * own: one read can hold thousands of messages, and their errors (four times their
         * size) would push a peer that does read over max_output_bytes and drop it as a slow
         * reader, though the protocol says it stays. Past half the bound they are left out;
         * the count above still has them. */
        if (tern_ws_buffered_amount(c->ws) <= s->cfg.max_output_bytes / 2)
            send_error(c, ERR_RATE_LIMITED);
        return;
    }
    c->limited = false;
    tern_signal_msg_t m;
    if (tern_signal_msg_parse((const char *)data, len, &m) != TERN_SIGNAL_MSG_OK) {
        TERN_LOG_INFO(s->ctx, "signal", "conn %u %s id %s: bad-json", c->serial,
                      addr_text(s, &c->remote, buf), c->id);
        send_error(c, ERR_BAD_JSON);
        return;
    }
    relay(c, &m);
    tern_signal_msg_dispose(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void respond(conn_t *c, int status, const char *type, const char *body, size_t len,
                    const tern_http_field_t *extra, size_t n_extra)
{
    tern_http_field_t fields[4];
    size_t n = 0;
    fields[n++] = (tern_http_field_t){"Content-Type", type};
    fields[n++] = (tern_http_field_t){"Cache-Control", "no-store"};
    for (size_t i = 0; i < n_extra && n < TERN_ARRAY_LEN(fields); i++)
        fields[n++] = extra[i];
    size_t used = strlen(c->http);
    snprintf(c->http + used, sizeof c->http - used, " %d", status);
    if (tern_ws_respond(c->ws, now_of(c->srv), status, fields, n, body, len) != TERN_OK)
        conn_drop(c, "cannot respond");
    mark_dirty(c);
}

static void respond_text(conn_t *c, int status, const char *text)
{
    respond(c, status, "text/plain; charset=utf-8", text, strlen(text), NULL, 0);
}

static void respond_healthz(conn_t *c)
{
    tern_signal_server_t *s = c->srv;
    char body[96];
    int n = snprintf(body, sizeof body, "{\"ok\":true,\"rooms\":%zu,\"peers\":%zu}", s->rooms.count,
                     s->peer_count);
    respond(c, 200, "application/json", body, (size_t)n, NULL, 0);
}

static void respond_file(conn_t *c, const char *path, size_t len)
{
    tern_signal_reply_t r;
    if (tern_signal_http_file(c->srv->ctx, c->srv->root_fd, path, len, &r) != TERN_OK) {
        respond_text(c, 500, "server error\n");
        return;
    }
    tern_signal_server_t *s = c->srv;
    if (r.body_len > HTTP_BUDGET_BYTES - s->http_bytes) {
        tern_free(s->ctx, r.body);
        respond_text(c, 503, "busy, try again\n");
        return;
    }
    c->http_bytes = r.body_len;
    s->http_bytes += r.body_len;
    respond(c, r.status, r.content_type, r.body, r.body_len, NULL, 0);
    tern_free(s->ctx, r.body);
}

static bool method_is(const tern_http_request_t *q, const char *m)
{
    return q->method_len == strlen(m) && memcmp(q->method, m, q->method_len) == 0;
}

static void on_request(conn_t *c, const tern_http_request_t *q)
{
    tern_signal_server_t *s = c->srv;
    snprintf(c->http, sizeof c->http, "%.*s %.*s", (int)TERN_MIN(q->method_len, 8), q->method,
             (int)TERN_MIN(q->path_len, 64), q->path);
    for (char *p = c->http; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?'; /* logged: keep the line one line of ASCII */
    const char *room;
    size_t room_len;
    if (tern_signal_ws_path(q->path, q->path_len, &room, &room_len)) {
        if (!tern_signal_room_valid(room, room_len)) {
            respond_text(c, 400, "bad room name: 1 to 64 of A-Z a-z 0-9 _ . -\n");
        } else if (q->upgrade == TERN_WS_UPGRADE_BAD_VERSION) {
            respond_text(c, 426, "WebSocket version 13 only\n");
        } else if (q->upgrade != TERN_WS_UPGRADE_VALID) {
            static const tern_http_field_t up = {"Upgrade", "websocket"};
            respond(c, q->upgrade == TERN_WS_UPGRADE_NONE ? 426 : 400, "text/plain; charset=utf-8",
                    "a WebSocket upgrade is expected here\n",
                    strlen("a WebSocket upgrade is expected here\n"), &up, 1);
        } else if (s->shutting_down) {
            respond_text(c, 503, "shutting down\n");
        } else {
            memcpy(c->room_name, room, room_len);
            c->room_name[room_len] = '\0';
            if (tern_ws_accept(c->ws, now_of(s), NULL) == TERN_OK) {
                c->is_ws = true;
                mark_dirty(c);
            } else {
                conn_drop(c, "cannot accept the upgrade");
            }
        }
        return;
    }
    if (!method_is(q, "GET") && !method_is(q, "HEAD")) {
        static const tern_http_field_t allow = {"Allow", "GET, HEAD"};
        respond(c, 405, "text/plain; charset=utf-8", "GET or HEAD only\n",
                strlen("GET or HEAD only\n"), &allow, 1);
        return;
    }
    if (q->path_len == 8 && memcmp(q->path, "/healthz", 8) == 0)
        respond_healthz(c);
    else if (q->upgrade != TERN_WS_UPGRADE_NONE)
        respond_text(c, 404, "no WebSocket here: use /ws/ROOM\n");
    else
        respond_file(c, q->path, q->path_len);
}

/* ------------------------------------------------------------------------------------------ */
/* Connection I/O                                                                             */
/* ------------------------------------------------------------------------------------------ */

static const char *cause_text(const tern_ws_event_t *ev, char *buf, size_t cap)
{
    static const char *const names[] = {
        [TERN_WS_CAUSE_CLEAN] = "closed",
        [TERN_WS_CAUSE_HTTP_RESPONSE] = "http response",
        [TERN_WS_CAUSE_BAD_HTTP] = "bad http request",
        [TERN_WS_CAUSE_BAD_HANDSHAKE] = "bad handshake",
        [TERN_WS_CAUSE_PROTOCOL_ERROR] = "protocol error",
        [TERN_WS_CAUSE_HANDSHAKE_TIMEOUT] = "upgrade timeout",
        [TERN_WS_CAUSE_IDLE_TIMEOUT] = "ping timeout",
        [TERN_WS_CAUSE_CLOSE_TIMEOUT] = "close timeout",
        [TERN_WS_CAUSE_EOF] = "connection lost",
        [TERN_WS_CAUSE_NOMEM] = "out of memory",
    };
    unsigned cause = ev->u.close.cause;
    const char *name = cause < TERN_ARRAY_LEN(names) && names[cause] ? names[cause] : "ended";
    if (ev->u.close.cause == TERN_WS_CAUSE_CLEAN)
        snprintf(buf, cap, "%s by %s (%u)", name, ev->u.close.by_peer ? "peer" : "server",
                 ev->u.close.by_peer ? ev->u.close.code : ev->u.close.sent_code);
    else if (ev->u.close.sent_code)
        snprintf(buf, cap, "%s (sent %u)", name, ev->u.close.sent_code);
    else if (ev->u.close.http_status)
        snprintf(buf, cap, "%s (%d)", name, ev->u.close.http_status);
    else
        snprintf(buf, cap, "%s", name);
    return buf;
}

static void on_ws_close(conn_t *c, const tern_ws_event_t *ev)
{
    char why[96];
    cause_text(ev, why, sizeof why);
    if (ev->u.close.cause == TERN_WS_CAUSE_HTTP_RESPONSE)
        log_end(c, NULL);
    else
        log_end(c, why);
    conn_leave(c);
    c->ended = true;
    c->linger_until = now_of(c->srv) + LINGER_US;
    mark_dirty(c);
}

/* Take the endpoint's events until none is left. */
static void drain_events(conn_t *c)
{
    tern_ws_event_t ev;
    while (!c->dead && !c->ended && tern_ws_poll_event(c->ws, &ev)) {
        switch (ev.type) {
        case TERN_WS_EV_REQUEST:
            on_request(c, ev.u.request.request);
            break;
        case TERN_WS_EV_OPEN:
            conn_join(c);
            break;
        case TERN_WS_EV_MESSAGE:
            on_message(c, ev.u.message.data, ev.u.message.len, ev.u.message.is_text);
            break;
        case TERN_WS_EV_CLOSE:
            on_ws_close(c, &ev);
            break;
        }
    }
    schedule(c);
}

static void update_watch(conn_t *c, bool has_output)
{
    if (!c->watch)
        return;
    unsigned want = tern_io_stream_events(&c->stream, has_output);
    if (want != c->watched && tern_loop_update_fd(c->srv->loop, c->watch, want) == TERN_OK)
        c->watched = want;
}

/* Write to the socket, or to the caller's sink when detached. */
static long write_out(conn_t *c, const uint8_t *data, size_t len)
{
    tern_signal_server_t *s = c->srv;
    if (s->loop)
        return tern_io_stream_write(&c->stream, data, len);
    long n = s->sink.write ? s->sink.write(s->sink.user, c->serial, data, len) : (long)len;
    if (n == 0)
        return TERN_ERR_AGAIN;
    if (n < 0 || (size_t)n > len) {
        snprintf(c->stream.error, sizeof c->stream.error, "sink failed");
        return TERN_ERR_IO;
    }
    return n;
}

/* Write what the endpoint has for the socket; free an ended connection once all is out. */
static void flush(conn_t *c)
{
    if (c->dead)
        return;
    const uint8_t *data;
    size_t len;
    while (tern_ws_poll_output(c->ws, &data, &len)) {
        long n = write_out(c, data, len);
        if (n == TERN_ERR_AGAIN)
            break;
        if (n < 0) {
            conn_drop(c, c->ended ? NULL : c->stream.error);
            return;
        }
        tern_ws_consume_output(c->ws, (size_t)n);
    }
    bool pending = tern_ws_buffered_amount(c->ws) > 0;
    if (c->ended && !pending) {
        conn_drop(c, NULL);
        return;
    }
    update_watch(c, pending);
}

/* Hand bytes to the endpoint; it takes everything unless its event queue is full: drain, retry. */
static void feed_bytes(conn_t *c, const uint8_t *data, size_t n)
{
    tern_signal_server_t *s = c->srv;
    size_t off = 0;
    while (!c->dead && off < n) {
        int rc = tern_ws_handle_input(c->ws, now_of(s), data + off, n - off);
        if (rc == TERN_ERR_AGAIN) {
            drain_events(c);
            continue;
        }
        off = n;
    }
    drain_events(c);
}

/* The peer closed its side (or the socket failed). */
static void feed_eof(conn_t *c)
{
    if (c->ended) {
        conn_drop(c, NULL);
        return;
    }
    tern_ws_handle_eof(c->ws, now_of(c->srv));
    drain_events(c);
    /* Whatever it still had to say cannot be heard: the peer is gone. */
    conn_drop(c, NULL);
}

/* Feed what the socket has to the endpoint, within a budget. */
static void read_input(conn_t *c)
{
    tern_signal_server_t *s = c->srv;
    size_t budget = READ_BUDGET;
    while (!c->dead && (budget > 0 || tern_io_stream_has_buffered(&c->stream))) {
        long n = tern_io_stream_read(&c->stream, s->rx, sizeof s->rx);
        if (n == TERN_ERR_AGAIN)
            break;
        if (n < 0) {
            if (!c->ended && n != TERN_ERR_CLOSED)
                TERN_LOG_DEBUG(s->ctx, "signal", "conn %u: %s", c->serial, c->stream.error);
            feed_eof(c);
            return;
        }
        budget -= TERN_MIN(budget, (size_t)n);
        /* A short plain read drained the socket: skip the read that would say EAGAIN (the
         * fd is level-triggered, anything newer is reported again). */
        if ((size_t)n < sizeof s->rx && !c->stream.ssl)
            budget = 0;
        feed_bytes(c, s->rx, (size_t)n);
    }
}

static void settle(tern_signal_server_t *s);

static void on_conn_fd(void *arg, int fd, unsigned events)
{
    conn_t *c = arg;
    tern_signal_server_t *s = c->srv;
    (void)fd;
    if (events & TERN_FD_WRITABLE || c->stream.write_wants_read)
        flush(c);
    if (!c->dead && (events & (TERN_FD_READABLE | TERN_FD_ERROR)))
        read_input(c);
    settle(s);
}

static void conn_free(conn_t *c)
{
    tern_signal_server_t *s = c->srv;
    tern_loop_unwatch_fd(s->loop, c->watch);
    tern_io_stream_close(&c->stream);
    tern_io_heap_remove(&s->heap, &c->timer);
    tern_io_heap_unreserve(&s->heap);
    tern_ws_free(c->ws);
    s->http_bytes -= c->http_bytes;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->conn_count--;
    tern_free(s->ctx, c);
}

/* ------------------------------------------------------------------------------------------ */
/* Accepting                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* What a connection is without its socket: ids, limits, the endpoint, its heap slot. */
static int conn_init(tern_signal_server_t *s, conn_t *c, const tern_addr_t *remote)
{
    c->srv = s;
    c->serial = ++s->next_serial;
    c->remote = *remote;
    c->started = now_of(s);
    c->refilled = c->started;
    c->tokens_u = (int64_t)s->cfg.rate_per_s * 2 * 1000000;
    tern_io_node_init(&c->timer, 0);
    size_t ws_max = s->cfg.max_message_bytes <= SIZE_MAX / 2 ? s->cfg.max_message_bytes * 2
                                                             : s->cfg.max_message_bytes;
    tern_ws_config_t wcfg = {
        .role = TERN_WS_ROLE_SERVER,
        /* Room above the protocol's limit, so that a message somewhat over it is refused with
         * the error too-large before the 1009; the endpoint closes on larger ones itself. */
        .max_message_bytes = ws_max,
        .max_output_bytes = s->cfg.max_output_bytes,
        .handshake_timeout_us = TERN_MS(s->cfg.upgrade_timeout_ms),
        .ping_interval_us = TERN_MS(s->cfg.ping_interval_ms),
        .idle_timeout_us = TERN_MS(s->cfg.pong_timeout_ms),
    };
    int rc = tern_io_heap_reserve(&s->heap);
    if (rc == TERN_OK) {
        rc = tern_ws_new(s->ctx, &wcfg, c->started, &c->ws);
        if (rc != TERN_OK)
            tern_io_heap_unreserve(&s->heap);
    }
    return rc;
}

static void conn_link(tern_signal_server_t *s, conn_t *c)
{
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->conn_count++;
    schedule(c);
}

static int conn_new(tern_signal_server_t *s, int fd, const tern_addr_t *remote)
{
    conn_t *c = tern_calloc(s->ctx, 1, sizeof *c);
    if (!c) {
        close(fd);
        return TERN_ERR_NOMEM;
    }
    int rc = tern_io_stream_init(&c->stream, fd, s->tls, NULL);
    if (rc != TERN_OK) {
        tern_free(s->ctx, c);
        return rc;
    }
    rc = conn_init(s, c, remote);
    if (rc == TERN_OK) {
        c->watched = TERN_FD_READABLE;
        rc = tern_loop_watch_fd(s->loop, fd, c->watched, on_conn_fd, c, &c->watch);
        if (rc != TERN_OK) {
            tern_ws_free(c->ws);
            tern_io_heap_unreserve(&s->heap);
        }
    }
    if (rc != TERN_OK) {
        tern_io_stream_close(&c->stream);
        tern_free(s->ctx, c);
        return rc;
    }
    conn_link(s, c);
    return TERN_OK;
}

static void on_accept_resume(void *arg)
{
    tern_signal_server_t *s = arg;
    s->accept_resume = NULL;
    if (s->listen_watch)
        tern_loop_update_fd(s->loop, s->listen_watch, TERN_FD_READABLE);
}

static void on_listen(void *arg, int fd, unsigned events)
{
    tern_signal_server_t *s = arg;
    (void)events;
    for (int i = 0; i < ACCEPT_BUDGET; i++) {
        tern_addr_t remote;
        int cfd = tern_io_tcp_accept(fd, &remote);
        if (cfd == TERN_ERR_AGAIN)
            break;
        if (cfd < 0) {
            /* Out of fds (EMFILE): the connection stays queued; pause instead of spinning,
             * and say so once until an accept works again. */
            if (!s->accept_failing)
                TERN_LOG_WARN(s->ctx, "signal", "accept failed: %s; retrying every %d ms",
                              strerror(errno), ACCEPT_PAUSE_MS);
            s->accept_failing = true;
            tern_loop_update_fd(s->loop, s->listen_watch, 0);
            if (!s->accept_resume)
                tern_loop_add_timer(s->loop, ACCEPT_PAUSE_MS, on_accept_resume, s,
                                    &s->accept_resume);
            break;
        }
        s->accept_failing = false;
        int rc = conn_new(s, cfd, &remote);
        if (rc != TERN_OK) {
            char buf[TERN_ADDR_STRLEN];
            TERN_LOG_WARN(s->ctx, "signal", "cannot take a connection from %s: %s",
                          addr_text(s, &remote, buf), tern_strerror(rc));
        }
    }
    settle(s);
}

/* ------------------------------------------------------------------------------------------ */
/* STUN                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void on_stun(void *arg, int fd, unsigned events)
{
    tern_signal_server_t *s = arg;
    (void)events;
    uint8_t in[1500], out[512];
    for (int i = 0; i < STUN_BUDGET; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        ssize_t n = recvfrom(fd, in, sizeof in, 0, (struct sockaddr *)&ss, &sl);
        if (n < 0)
            break;
        tern_addr_t from;
        if (!tern_io_addr_from_sockaddr((struct sockaddr *)&ss, sl, &from))
            continue;
        size_t len = tern_signal_stun_answer(s->ctx, in, (size_t)n, &from, out, sizeof out);
        if (len > 0)
            (void)sendto(fd, out, len, MSG_DONTWAIT, (struct sockaddr *)&ss, sl);
    }
}

static bool is_any_v6(const tern_addr_t *a)
{
    static const uint8_t zero[16];
    return a->family == TERN_AF_INET6 && memcmp(a->ip, zero, 16) == 0;
}

static int open_stun(tern_signal_server_t *s, char *error, size_t cap)
{
    tern_addr_t a = s->cfg.listen;
    a.port = s->cfg.stun_port;
    tern_addr_t bound;
    int fd = tern_io_udp_bind(&a, &bound);
    if (fd < 0) {
        char buf[TERN_ADDR_STRLEN];
        snprintf(error, cap, "cannot bind STUN on udp %s: %s",
                 tern_addr_format(&a, buf, sizeof buf), strerror(errno));
        return TERN_ERR_IO;
    }
    s->stun_fds[0] = fd;
    s->stun_addr = bound;
    /* The UDP sockets are IPv6-only: "::" gets a second socket for IPv4 on the same port. */
    if (is_any_v6(&a)) {
        tern_addr_t v4 = {.family = TERN_AF_INET, .port = bound.port};
        tern_addr_t b4;
        s->stun_fds[1] = tern_io_udp_bind(&v4, &b4);
    }
    for (int i = 0; i < 2; i++)
        if (s->stun_fds[i] >= 0 && tern_loop_watch_fd(s->loop, s->stun_fds[i], TERN_FD_READABLE,
                                                      on_stun, s, &s->stun_watches[i]) != TERN_OK) {
            snprintf(error, cap, "cannot watch the STUN socket");
            return TERN_ERR_IO;
        }
    return TERN_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Settling, timers, shutdown                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void maybe_done(tern_signal_server_t *s)
{
    if (!s->shutting_down || s->conn_count > 0 || !s->done)
        return;
    void (*done)(void *) = s->done;
    s->done = NULL;
    tern_loop_cancel_timer(s->loop, s->shutdown_timer);
    s->shutdown_timer = NULL;
    done(s->done_arg);
}

/* Flush every connection written to, free the dead, until nothing is left (see the file
 * comment); then set the timer for the earliest deadline. */
static void settle(tern_signal_server_t *s)
{
    while (s->dirty || s->dead) {
        while (s->dirty) {
            conn_t *c = s->dirty;
            s->dirty = c->next_dirty;
            c->dirty = false;
            if (!c->dead) {
                drain_events(c);
                flush(c);
                schedule(c);
            }
        }
        while (s->dead) {
            conn_t *c = s->dead;
            s->dead = c->next_dead;
            conn_free(c);
        }
    }
    arm_timer(s);
    maybe_done(s);
}

static void run_timers(tern_signal_server_t *s, tern_time_t now)
{
    tern_io_heap_node_t *n;
    while ((n = tern_io_heap_peek(&s->heap)) && n->deadline <= now) {
        tern_io_heap_remove(&s->heap, n);
        conn_t *c = conn_of_node(n);
        if (c->dead)
            continue;
        if (c->ended && now >= c->linger_until) {
            conn_drop(c, NULL);
            continue;
        }
        if (!c->ended) {
            tern_ws_handle_timeout(c->ws, now);
            drain_events(c);
        }
        mark_dirty(c);
        schedule(c);
    }
    settle(s);
}

static void on_timer(void *arg)
{
    tern_signal_server_t *s = arg;
    s->timer = NULL;
    run_timers(s, now_of(s));
}

static void on_shutdown_timeout(void *arg)
{
    tern_signal_server_t *s = arg;
    s->shutdown_timer = NULL;
    /* Whoever has not finished the close handshake by now is cut off. */
    for (conn_t *c = s->conns; c; c = c->next)
        if (!c->dead)
            conn_drop(c, c->ended ? NULL : "server shutting down");
    settle(s);
    if (s->done) {
        void (*done)(void *) = s->done;
        s->done = NULL;
        done(s->done_arg);
    }
}

void tern_signal_server_shutdown(tern_signal_server_t *s, void (*done)(void *arg), void *arg)
{
    if (!s || s->shutting_down)
        return;
    s->shutting_down = true;
    s->done = done;
    s->done_arg = arg;
    TERN_LOG_INFO(s->ctx, "signal", "shutting down: %zu connections, %zu peers in %zu rooms",
                  s->conn_count, s->peer_count, s->rooms.count);
    if (s->listen_watch) {
        tern_loop_unwatch_fd(s->loop, s->listen_watch);
        s->listen_watch = NULL;
    }
    for (conn_t *c = s->conns; c; c = c->next) {
        if (c->dead || c->ended)
            continue;
        if (tern_ws_state(c->ws) == TERN_WS_STATE_CONNECTING) {
            conn_drop(c, "server shutting down");
            continue;
        }
        close_ws(c, TERN_WS_CLOSE_GOING_AWAY, "server shutting down");
    }
    if (s->loop)
        tern_loop_add_timer(s->loop, SHUTDOWN_WAIT_MS, on_shutdown_timeout, s, &s->shutdown_timer);
    settle(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Creation                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void apply_defaults(tern_signal_config_t *c)
{
    if (!c->max_room_peers)
        c->max_room_peers = TERN_SIGNAL_DEFAULT_MAX_ROOM_PEERS;
    if (!c->max_message_bytes)
        c->max_message_bytes = TERN_SIGNAL_DEFAULT_MAX_MESSAGE_BYTES;
    if (!c->rate_per_s)
        c->rate_per_s = TERN_SIGNAL_DEFAULT_RATE;
    if (!c->max_output_bytes)
        c->max_output_bytes = TERN_SIGNAL_DEFAULT_MAX_OUTPUT_BYTES;
    if (!c->upgrade_timeout_ms)
        c->upgrade_timeout_ms = TERN_SIGNAL_DEFAULT_UPGRADE_TIMEOUT_MS;
    if (!c->ping_interval_ms)
        c->ping_interval_ms = TERN_SIGNAL_DEFAULT_PING_INTERVAL_MS;
    if (!c->pong_timeout_ms)
        c->pong_timeout_ms = TERN_SIGNAL_DEFAULT_PONG_TIMEOUT_MS;
}

static int build_errors(tern_signal_server_t *s)
{
    for (int i = 0; i < ERR_COUNT; i++) {
        s->errors[i] =
            tern_signal_msg_error(error_texts[i].code, error_texts[i].message, &s->error_lens[i]);
        if (!s->errors[i])
            return TERN_ERR_NOMEM;
    }
    return TERN_OK;
}

static int open_listener(tern_signal_server_t *s, char *error, size_t cap)
{
    char buf[TERN_ADDR_STRLEN];
    s->listen_fd = tern_io_tcp_listen(&s->cfg.listen, 1024, &s->tcp_addr);
    if (s->listen_fd < 0) {
        snprintf(error, cap, "cannot listen on tcp %s: %s",
                 tern_addr_format(&s->cfg.listen, buf, sizeof buf), strerror(errno));
        return TERN_ERR_IO;
    }
    if (tern_loop_watch_fd(s->loop, s->listen_fd, TERN_FD_READABLE, on_listen, s,
                           &s->listen_watch) != TERN_OK) {
        snprintf(error, cap, "cannot watch the listener");
        return TERN_ERR_IO;
    }
    return TERN_OK;
}

/* The state every server has, with sockets or without. */
static int init_state(tern_signal_server_t *s, char *error, size_t cap)
{
    int rc = build_errors(s);
    if (rc != TERN_OK) {
        snprintf(error, cap, "out of memory");
        return rc;
    }
    if (tern_signal_table_init(&s->ids, s->ctx) != TERN_OK ||
        tern_signal_table_init(&s->rooms, s->ctx) != TERN_OK) {
        snprintf(error, cap, "no random numbers");
        return TERN_ERR_CRYPTO;
    }
    return TERN_OK;
}

static int open_all(tern_signal_server_t *s, char *error, size_t cap)
{
    int rc = init_state(s, error, cap);
    if (rc != TERN_OK)
        return rc;
    if (s->cfg.root) {
        s->root_fd = open(s->cfg.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->root_fd < 0) {
            snprintf(error, cap, "cannot open --root %s: %s", s->cfg.root, strerror(errno));
            return TERN_ERR_IO;
        }
    }
    if (s->cfg.tls_cert || s->cfg.tls_key) {
        rc = tern_io_tls_server_new(s->ctx, s->cfg.tls_cert, s->cfg.tls_key, &s->tls, error, cap);
        if (rc != TERN_OK)
            return rc;
    }
    rc = open_listener(s, error, cap);
    if (rc == TERN_OK && s->cfg.stun_enabled)
        rc = open_stun(s, error, cap);
    return rc;
}

static tern_signal_server_t *server_alloc(tern_ctx_t *ctx, const tern_signal_config_t *cfg)
{
    tern_signal_server_t *s = tern_calloc(ctx, 1, sizeof *s);
    if (!s)
        return NULL;
    s->ctx = ctx;
    s->cfg = *cfg;
    s->cfg.root = NULL; /* only used while opening; not kept */
    s->cfg.tls_cert = s->cfg.tls_key = NULL;
    apply_defaults(&s->cfg);
    s->ice_servers = cfg->ice_servers ? json_incref(cfg->ice_servers) : json_array();
    s->root_fd = s->listen_fd = -1;
    s->stun_fds[0] = s->stun_fds[1] = -1;
    tern_io_heap_init(&s->heap, ctx);
    return s;
}

int tern_signal_server_new(tern_loop_t *loop, tern_ctx_t *ctx, const tern_signal_config_t *cfg,
                           tern_signal_server_t **out, char *error, size_t cap)
{
    *out = NULL;
    tern_signal_server_t *s = server_alloc(ctx, cfg);
    if (!s) {
        snprintf(error, cap, "out of memory");
        return TERN_ERR_NOMEM;
    }
    s->loop = loop;
    s->cfg.root = cfg->root;
    s->cfg.tls_cert = cfg->tls_cert;
    s->cfg.tls_key = cfg->tls_key;
    int rc = s->ice_servers ? open_all(s, error, cap) : TERN_ERR_NOMEM;
    s->cfg.root = NULL;
    s->cfg.tls_cert = s->cfg.tls_key = NULL;
    if (rc != TERN_OK) {
        tern_signal_server_free(s);
        return rc;
    }
    char a[TERN_ADDR_STRLEN], b[TERN_ADDR_STRLEN];
    TERN_LOG_INFO(ctx, "signal", "listening on %s://%s, STUN on %s", s->tls ? "https" : "http",
                  tern_addr_format(&s->tcp_addr, a, sizeof a),
                  s->stun_fds[0] >= 0 ? tern_addr_format(&s->stun_addr, b, sizeof b) : "(off)");
    *out = s;
    return TERN_OK;
}

void tern_signal_server_addrs(const tern_signal_server_t *s, tern_addr_t *tcp, tern_addr_t *stun)
{
    if (tcp)
        *tcp = s->tcp_addr;
    if (stun) {
        memset(stun, 0, sizeof *stun);
        if (s->stun_fds[0] >= 0)
            *stun = s->stun_addr;
    }
}

void tern_signal_server_free(tern_signal_server_t *s)
{
    if (!s)
        return;
    /* No leave messages at this point: everyone goes at once. */
    while (s->conns) {
        conn_t *c = s->conns;
        if (c->room) {
            room_t *r = c->room;
            room_remove(r, c);
            tern_signal_table_remove(&s->ids, &c->id_entry);
            s->peer_count--;
            room_release_if_empty(s, r);
        }
        conn_free(c);
    }
    s->dirty = s->dead = NULL;
    tern_loop_cancel_timer(s->loop, s->timer);
    tern_loop_cancel_timer(s->loop, s->accept_resume);
    tern_loop_cancel_timer(s->loop, s->shutdown_timer);
    tern_loop_unwatch_fd(s->loop, s->listen_watch);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    for (int i = 0; i < 2; i++) {
        tern_loop_unwatch_fd(s->loop, s->stun_watches[i]);
        if (s->stun_fds[i] >= 0)
            close(s->stun_fds[i]);
    }
    if (s->root_fd >= 0)
        close(s->root_fd);
    tern_io_tls_free(s->tls);
    for (int i = 0; i < ERR_COUNT; i++)
        free(s->errors[i]);
    json_decref(s->ice_servers);
    tern_signal_table_dispose(&s->ids);
    tern_signal_table_dispose(&s->rooms);
    tern_io_heap_dispose(&s->heap);
    tern_free(s->ctx, s);
}

/* ------------------------------------------------------------------------------------------ */
/* Detached: no loop, no sockets (the fuzz harness)                                           */
/* ------------------------------------------------------------------------------------------ */

int tern_signal_server_new_detached(tern_ctx_t *ctx, const tern_signal_config_t *cfg,
                                    const tern_signal_sink_t *sink, tern_time_t now,
                                    tern_signal_server_t **out)
{
    tern_signal_server_t *s = server_alloc(ctx, cfg);
    if (!s)
        return TERN_ERR_NOMEM;
    s->now = now;
    if (sink)
        s->sink = *sink;
    char error[64];
    int rc = s->ice_servers ? init_state(s, error, sizeof error) : TERN_ERR_NOMEM;
    if (rc != TERN_OK) {
        tern_signal_server_free(s);
        return rc;
    }
    *out = s;
    return TERN_OK;
}

/* Time only moves forward (CONVENTIONS.md §2). */
static void set_now(tern_signal_server_t *s, tern_time_t now)
{
    if (now > s->now)
        s->now = now;
}

static conn_t *conn_by_serial(tern_signal_server_t *s, uint32_t serial)
{
    for (conn_t *c = s->conns; c; c = c->next)
        if (c->serial == serial)
            return c->dead ? NULL : c;
    return NULL;
}

int tern_signal_server_open(tern_signal_server_t *s, tern_time_t now, const tern_addr_t *remote,
                            uint32_t *conn)
{
    if (s->loop)
        return TERN_ERR_INVALID_STATE;
    set_now(s, now);
    conn_t *c = tern_calloc(s->ctx, 1, sizeof *c);
    if (!c)
        return TERN_ERR_NOMEM;
    c->stream.fd = -1;
    int rc = conn_init(s, c, remote);
    if (rc != TERN_OK) {
        tern_free(s->ctx, c);
        return rc;
    }
    conn_link(s, c);
    *conn = c->serial;
    settle(s);
    return TERN_OK;
}

int tern_signal_server_input(tern_signal_server_t *s, tern_time_t now, uint32_t conn,
                             const uint8_t *data, size_t len)
{
    if (s->loop)
        return TERN_ERR_INVALID_STATE;
    set_now(s, now);
    conn_t *c = conn_by_serial(s, conn);
    if (!c)
        return TERN_ERR_NOT_FOUND;
    if (len == 0)
        feed_eof(c);
    else if (!c->ended)
        feed_bytes(c, data, len);
    settle(s);
    return TERN_OK;
}

int tern_signal_server_writable(tern_signal_server_t *s, tern_time_t now, uint32_t conn)
{
    if (s->loop)
        return TERN_ERR_INVALID_STATE;
    set_now(s, now);
    conn_t *c = conn_by_serial(s, conn);
    if (!c)
        return TERN_ERR_NOT_FOUND;
    flush(c);
    settle(s);
    return TERN_OK;
}

int tern_signal_server_handle_timeout(tern_signal_server_t *s, tern_time_t now)
{
    if (s->loop)
        return TERN_ERR_INVALID_STATE;
    set_now(s, now);
    run_timers(s, s->now);
    return TERN_OK;
}

tern_time_t tern_signal_server_next_deadline(const tern_signal_server_t *s)
{
    const tern_io_heap_node_t *top = tern_io_heap_peek(&s->heap);
    return top ? top->deadline : TERN_TIME_NEVER;
}

void tern_signal_server_counts(const tern_signal_server_t *s, size_t *conns, size_t *peers,
                               size_t *rooms)
{
    *conns = s->conn_count;
    *peers = s->peer_count;
    *rooms = s->rooms.count;
}
