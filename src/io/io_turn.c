/* SPDX-License-Identifier: MIT */
/*
 * The loop's side of a pc's ICE servers: host names resolved on the resolver's helper thread
 * (io_resolve.c) and handed to the pc with tern_pc_set_ice_server_addr, and the TCP and TLS
 * connections to TURN servers (RFC 8656 §3.1, RFC 7065 "turns:") that the pc asks for through
 * the stream seam of tern.h: opened without blocking (io_tcp.c, io_tls.c), watched with
 * tern_loop_watch_fd, fed to tern_pc_handle_stream_input, written from an output queue that
 * only appends (TLS needs the same bytes offered again after EAGAIN), and closed when the pc
 * asks, fails, or leaves the loop.
 */
#include "io/io_turn.h"
#include "io/io_resolve.h"
#include "io/io_stream.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define IO_TURN_MAX_STREAMS 8         /* as the agent's allocations */
#define IO_TURN_MAX_SERVERS 32        /* as tern_pc_new's bound on ice_servers */
#define IO_TURN_READ_BYTES 65536      /* one read, at most what the pc takes in one call */
#define IO_TURN_MAX_READS 16          /* reads per readiness, so one stream cannot starve */
#define IO_TURN_OUT_MAX (1024 * 1024) /* unwritten bytes per connection before giving up */

typedef struct io_turn_stream {
    struct tern_io_turn *owner;
    uint32_t id;        /* 0: free slot */
    int connect_fd;     /* while connecting; -1 after */
    tern_io_stream_t s; /* s.fd -1 until connected */
    bool tls;
    bool close_when_flushed; /* the pc asked to close: write what is left first */
    char server_name[TERN_IO_RESOLVE_MAX_HOST + 1];
    tern_addr_t remote; /* the TURN server, for log lines */
    tern_fd_watch_t *watch;
    uint8_t *out;
    size_t out_len, out_cap;
} io_turn_stream_t;

typedef struct io_turn_resolve {
    struct tern_io_turn *owner;
    size_t index;
    tern_io_resolve_t *r; /* NULL once it reported */
} io_turn_resolve_t;

struct tern_io_turn {
    tern_loop_t *loop;
    tern_io_pc_t *e;
    io_turn_resolve_t resolves[IO_TURN_MAX_SERVERS];
    io_turn_stream_t streams[IO_TURN_MAX_STREAMS];
    tern_io_tls_t *tls; /* the client configuration, made with the first TLS connection */
    uint8_t *rbuf;      /* IO_TURN_READ_BYTES, made with the first connection */
};

/* ---- name resolution ---- */

static void on_resolved(void *arg, int err, const tern_addr_t *addrs, size_t count,
                        const char *reason)
{
    io_turn_resolve_t *r = arg;
    struct tern_io_turn *t = r->owner;
    r->r = NULL;
    if (err != TERN_OK)
        TERN_LOG_WARN(t->loop->ctx, "io", "driver %u ICE server %zu not resolved: %s", t->e->id,
                      r->index, reason);
    /* The pc marks itself pending: the loop drains it at the end of this iteration. */
    tern_pc_set_ice_server_addr(t->e->pc, tern_io_clock_now(), r->index, addrs,
                                err == TERN_OK ? count : 0);
}

static struct tern_io_turn *state(tern_loop_t *loop, tern_io_pc_t *e)
{
    if (!e->turn) {
        e->turn = tern_calloc(loop->ctx, 1, sizeof *e->turn);
        if (e->turn) {
            e->turn->loop = loop;
            e->turn->e = e;
        }
    }
    return e->turn;
}

int tern_io_turn_attach(tern_loop_t *loop, tern_io_pc_t *e)
{
    const tern_pc_config_t *cfg = tern_pc_config(e->pc);
    int first_err = TERN_OK;
    for (size_t i = 0; i < cfg->ice_server_count && i < IO_TURN_MAX_SERVERS; i++) {
        const char *host;
        uint16_t port;
        if (!tern_pc_ice_server_to_resolve(e->pc, i, &host, &port))
            continue;
        struct tern_io_turn *t = state(loop, e);
        if (!t)
            return TERN_ERR_NOMEM;
        io_turn_resolve_t *r = &t->resolves[i];
        r->owner = t;
        r->index = i;
        int rc = tern_io_resolve_start(loop, host, port, on_resolved, r, &r->r);
        if (rc != TERN_OK) {
            /* Gathering must not wait for a name nobody resolves. */
            tern_pc_set_ice_server_addr(e->pc, tern_io_clock_now(), i, NULL, 0);
            if (first_err == TERN_OK)
                first_err = rc;
        }
    }
    return first_err;
}

/* ---- connections ---- */

static io_turn_stream_t *find_stream(struct tern_io_turn *t, uint32_t id)
{
    for (size_t i = 0; t && id != 0 && i < IO_TURN_MAX_STREAMS; i++)
        if (t->streams[i].id == id)
            return &t->streams[i];
    return NULL;
}

static void close_stream(io_turn_stream_t *st)
{
    tern_loop_t *loop = st->owner->loop;
    tern_loop_unwatch_fd(loop, st->watch);
    st->watch = NULL;
    if (st->connect_fd >= 0)
        close(st->connect_fd);
    st->connect_fd = -1;
    tern_io_stream_close(&st->s);
    tern_free(loop->ctx, st->out);
    st->out = NULL;
    st->out_len = st->out_cap = 0;
    st->id = 0;
}

/*
 * The connection is gone: tell the pc (which drains at the end of the iteration). A failure
 * the pc did not ask for is a warning: a refused connection or an untrusted certificate is a
 * configuration problem that otherwise only shows as a missing relay candidate.
 */
static void lose_stream(io_turn_stream_t *st, const char *why)
{
    struct tern_io_turn *t = st->owner;
    uint32_t id = st->id;
    bool asked_to_close = st->close_when_flushed || t->e->removed;
    char buf[TERN_ADDR_STRLEN];
    TERN_LOG_AT(t->loop->ctx, asked_to_close ? TERN_LOG_DEBUG : TERN_LOG_WARN, "io",
                "driver %u TURN server %s%s: connection %u lost: %s", t->e->id,
                tern_addr_log(t->loop->ctx, &st->remote, buf), st->tls ? " (tls)" : "",
                (unsigned)id, why);
    close_stream(st);
    if (!asked_to_close)
        tern_pc_handle_stream_event(t->e->pc, tern_io_clock_now(), id, false, NULL);
}

static void update_watch(io_turn_stream_t *st)
{
    unsigned events = st->s.fd >= 0 ? tern_io_stream_events(&st->s, st->out_len > 0)
                                    : TERN_FD_WRITABLE; /* connecting */
    tern_loop_update_fd(st->owner->loop, st->watch, events);
}

/* Write what can be written. Returns false if the connection was lost (or closed as asked). */
static bool flush_stream(io_turn_stream_t *st)
{
    while (st->out_len > 0 && st->s.fd >= 0) {
        long n = tern_io_stream_write(&st->s, st->out, st->out_len);
        if (n == TERN_ERR_AGAIN)
            break;
        if (n < 0) {
            lose_stream(st, st->s.error);
            return false;
        }
        memmove(st->out, st->out + n, st->out_len - (size_t)n);
        st->out_len -= (size_t)n;
    }
    if (st->close_when_flushed && st->out_len == 0 && st->s.fd >= 0) {
        close_stream(st);
        return false;
    }
    update_watch(st);
    return true;
}

static void read_stream(io_turn_stream_t *st)
{
    struct tern_io_turn *t = st->owner;
    for (int i = 0; i < IO_TURN_MAX_READS && st->id != 0; i++) {
        long n = tern_io_stream_read(&st->s, t->rbuf, IO_TURN_READ_BYTES);
        if (n == TERN_ERR_AGAIN && !tern_io_stream_has_buffered(&st->s))
            return;
        if (n == TERN_ERR_AGAIN)
            continue;
        if (n < 0) {
            lose_stream(st, n == TERN_ERR_CLOSED ? "closed by the server" : st->s.error);
            return;
        }
        if (st->close_when_flushed)
            continue; /* the pc is done with it */
        tern_pc_handle_stream_input(t->e->pc, tern_io_clock_now(), st->id, t->rbuf, (size_t)n);
    }
}

static void on_stream_fd(void *arg, int fd, unsigned events);

static bool watch(io_turn_stream_t *st, int fd, unsigned events)
{
    return tern_loop_watch_fd(st->owner->loop, fd, events, on_stream_fd, st, &st->watch) == TERN_OK;
}

static void on_connected(io_turn_stream_t *st)
{
    struct tern_io_turn *t = st->owner;
    int fd = st->connect_fd;
    if (tern_io_tcp_connect_result(fd) != TERN_OK) {
        lose_stream(st, strerror(errno));
        return;
    }
    tern_addr_t local;
    bool has_local = tern_io_tcp_local_addr(fd, &local) == TERN_OK;
    tern_loop_unwatch_fd(t->loop, st->watch);
    st->watch = NULL;
    st->connect_fd = -1;
    /* With TLS the handshake runs inside the first writes and reads. */
    if (tern_io_stream_init(&st->s, fd, st->tls ? t->tls : NULL,
                            st->server_name[0] ? st->server_name : NULL) != TERN_OK) {
        lose_stream(st, "no TLS session");
        return;
    }
    if (!watch(st, st->s.fd, tern_io_stream_events(&st->s, false))) {
        lose_stream(st, "cannot watch the socket");
        return;
    }
    TERN_LOG_DEBUG(t->loop->ctx, "io", "driver %u turn stream %u connected%s", t->e->id,
                   (unsigned)st->id, st->tls ? " (tls)" : "");
    tern_pc_handle_stream_event(t->e->pc, tern_io_clock_now(), st->id, true,
                                has_local ? &local : NULL);
}

static void on_stream_fd(void *arg, int fd, unsigned events)
{
    io_turn_stream_t *st = arg;
    (void)fd;
    if (st->id == 0 || st->owner->e->removed)
        return;
    if (st->connect_fd >= 0) {
        on_connected(st);
        return;
    }
    if (events & (TERN_FD_READABLE | TERN_FD_ERROR))
        read_stream(st);
    if (st->id != 0)
        flush_stream(st);
}

static bool ensure_tls(struct tern_io_turn *t)
{
    if (t->tls)
        return true;
    char error[160];
    const char *ca = tern_pc_config(t->e->pc)->turn_tls_ca_file;
    if (tern_io_tls_client_new(t->loop->ctx, ca, false, &t->tls, error, sizeof error) != TERN_OK) {
        TERN_LOG_WARN(t->loop->ctx, "io", "driver %u no TLS for TURN: %s", t->e->id, error);
        return false;
    }
    return true;
}

static void open_stream(struct tern_io_turn *t, const tern_stream_request_t *r)
{
    io_turn_stream_t *st = NULL;
    for (size_t i = 0; i < IO_TURN_MAX_STREAMS && !st; i++)
        if (t->streams[i].id == 0)
            st = &t->streams[i];
    bool ok = st && (t->rbuf || (t->rbuf = tern_malloc(t->loop->ctx, IO_TURN_READ_BYTES))) &&
              (!r->tls || ensure_tls(t));
    if (ok) {
        memset(st, 0, sizeof *st);
        st->owner = t;
        st->id = r->id;
        st->s.fd = -1;
        st->tls = r->tls;
        st->remote = r->remote;
        if (r->server_name)
            snprintf(st->server_name, sizeof st->server_name, "%s", r->server_name);
        st->connect_fd = tern_io_tcp_connect(&r->remote, NULL);
        ok = st->connect_fd >= 0 && watch(st, st->connect_fd, TERN_FD_WRITABLE);
        if (!ok) {
            close_stream(st);
            st = NULL;
        }
    }
    char buf[TERN_ADDR_STRLEN];
    TERN_LOG_DEBUG(t->loop->ctx, "io", "driver %u turn stream %u to %s%s", t->e->id,
                   (unsigned)r->id, tern_addr_log(t->loop->ctx, &r->remote, buf),
                   ok ? "" : " cannot start");
    if (!ok)
        tern_pc_handle_stream_event(t->e->pc, tern_io_clock_now(), r->id, false, NULL);
}

static void queue_bytes(io_turn_stream_t *st, const uint8_t *data, size_t len)
{
    tern_ctx_t *ctx = st->owner->loop->ctx;
    if (st->out_len + len > IO_TURN_OUT_MAX) {
        lose_stream(st, "output backlog");
        return;
    }
    if (st->out_len + len > st->out_cap) {
        size_t cap = TERN_MAX(st->out_cap * 2, st->out_len + len);
        cap = TERN_MAX(cap, (size_t)16384);
        uint8_t *grown = tern_realloc(ctx, st->out, cap);
        if (!grown) {
            lose_stream(st, "out of memory");
            return;
        }
        st->out = grown;
        st->out_cap = cap;
    }
    memcpy(st->out + st->out_len, data, len);
    st->out_len += len;
    flush_stream(st);
}

void tern_io_turn_drain(tern_loop_t *loop, tern_io_pc_t *e)
{
    uint32_t id;
    const uint8_t *data;
    size_t len;
    /* Bytes first: a close request comes after the last bytes of its connection. */
    while (tern_pc_poll_stream_transmit(e->pc, &id, &data, &len)) {
        io_turn_stream_t *st = find_stream(e->turn, id);
        if (st && st->s.fd >= 0)
            queue_bytes(st, data, len);
    }
    tern_stream_request_t r;
    while (tern_pc_poll_stream_request(e->pc, &r)) {
        struct tern_io_turn *t = state(loop, e);
        if (!t)
            break;
        if (!r.close) {
            open_stream(t, &r);
            continue;
        }
        io_turn_stream_t *st = find_stream(t, r.id);
        if (st && st->s.fd >= 0 && st->out_len > 0 && !e->removed) {
            st->close_when_flushed = true;
            flush_stream(st);
        } else if (st) {
            close_stream(st);
        }
    }
}

void tern_io_turn_detach(tern_loop_t *loop, tern_io_pc_t *e)
{
    struct tern_io_turn *t = e->turn;
    if (!t)
        return;
    for (size_t i = 0; i < IO_TURN_MAX_SERVERS; i++)
        if (t->resolves[i].r)
            tern_io_resolve_cancel(t->resolves[i].r);
    for (size_t i = 0; i < IO_TURN_MAX_STREAMS; i++) {
        io_turn_stream_t *st = &t->streams[i];
        if (st->id == 0)
            continue;
        if (st->s.fd >= 0 && st->out_len > 0)
            tern_io_stream_write(&st->s, st->out, st->out_len); /* a last try, without waiting */
        close_stream(st);
    }
    tern_io_tls_free(t->tls);
    tern_free(loop->ctx, t->rbuf);
    tern_free(loop->ctx, t);
    e->turn = NULL;
}
