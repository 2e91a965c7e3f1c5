/* SPDX-License-Identifier: MIT */
/*
 * The two-peer harness of tern-bench. A node is one process's side: a context, a loop and its
 * connections (one pc bound to 127.0.0.1 with one reliable ordered data channel). Offers,
 * answers and trickled candidates go straight to the other side when both are in one process
 * (as the hello example does), and otherwise over a socketpair to a forked child, as messages
 * "TYPE ID LEN\n" followed by LEN payload bytes: offer, answer, cand ("mid\ncandidate"), close,
 * quit, stat?/stat, and the benchmarks' own control messages. The socket is watched by the
 * loop itself (tern_loop_watch_fd), as an application's signaling connection would be, so
 * signaling costs no thread hop and everything runs on the loop thread. Connections are closed with
 * tern_pc_close and freed two loop iterations later, once their closing datagrams have been drained
 * to the sockets.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Largest signaling payload accepted (an SDP is a few KiB). */
#define MAX_PAYLOAD (1 << 20)

static const char *const loopback_only[] = {"127.0.0.1"};

/* ---- failure and lookup ---- */

void bench_fail(bench_node_t *n, const char *fmt, ...)
{
    if (!n->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(n->why, sizeof n->why, fmt, ap);
        va_end(ap);
        n->failed = true;
        bench_note("FAILED (%s process): %s", n->is_child ? "answering" : "main", n->why);
    }
    tern_loop_stop(n->loop);
}

static bench_conn_t *find_conn(const bench_node_t *n, uint32_t id)
{
    for (bench_conn_t *c = n->conns; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static tern_time_t now_us(const bench_node_t *n)
{
    return tern_loop_now(n->loop);
}

/* ---- connections ---- */

static bench_conn_t *conn_new(bench_node_t *n, uint32_t id, bool offerer)
{
    bench_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        bench_fail(n, "out of memory");
        return NULL;
    }
    c->node = n;
    c->id = id;
    c->offerer = offerer;
    c->next = n->conns;
    n->conns = c;
    n->conn_count++;
    return c;
}

/* Remove a connection from its node and free it with its pc. */
static void conn_free(bench_conn_t *c)
{
    bench_node_t *n = c->node;
    for (bench_conn_t **p = &n->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    n->conn_count--;
    if (c->open)
        n->open_count--;
    if (c->peer)
        c->peer->peer = NULL;
    if (c->pc) {
        tern_loop_remove_pc(n->loop, c->pc);
        tern_pc_free(c->pc);
    }
    free(c);
}

static void mark_open(bench_conn_t *c)
{
    bench_node_t *n = c->node;
    if (c->open || c->closing)
        return;
    c->open = true;
    c->t_open_ns = bench_clock_ns();
    n->open_count++;
    const bench_role_t *role = c->offerer ? n->offer_role : n->answer_role;
    if (role && role->on_open)
        role->on_open(c);
    if (n->on_conn_open && !n->failed)
        n->on_conn_open(c);
}

/* ---- pc callbacks ---- */

/*
 * A trickled candidate the pc refuses. tern.h documents TERN_ERR_INVALID_STATE only for a
 * closed pc, but the stack also refuses a candidate that arrives after the remote description's
 * a=end-of-candidates, and it puts its candidates and end-of-candidates in its SDP and trickles
 * them as well: every trickled candidate is refused that way. It is counted and reported, not
 * fatal (an application would ignore it too: the candidate is already known).
 */
static void candidate_refused(bench_conn_t *c, tern_pc_t *pc, int rc, const char *candidate)
{
    bench_node_t *n = c->node;
    if (rc == TERN_ERR_INVALID_STATE && tern_pc_signaling_state(pc) != TERN_SIGNALING_CLOSED) {
        if (n->candidate_refusals++ == 0)
            bench_note("note: tern_pc_add_ice_candidate(\"%s\") on an open pc returned "
                       "TERN_ERR_INVALID_STATE (counted, not fatal)",
                       candidate);
        return;
    }
    bench_fail(n, "conn %u: add_ice_candidate \"%s\": %s (%s)", c->id, candidate, tern_strerror(rc),
               tern_pc_last_error(pc));
}

static void send_candidate(bench_conn_t *c, const char *candidate, const char *mid)
{
    bench_node_t *n = c->node;
    if (c->peer) {
        if (c->peer->closing)
            return;
        int rc = tern_pc_add_ice_candidate(c->peer->pc, now_us(n), candidate, mid);
        if (rc != TERN_OK)
            candidate_refused(c->peer, c->peer->pc, rc, candidate ? candidate : "");
        return;
    }
    char buf[1024];
    int len = snprintf(buf, sizeof buf, "%s\n%s", mid ? mid : "", candidate ? candidate : "");
    if (len < 0 || (size_t)len >= sizeof buf) {
        bench_fail(n, "conn %u: candidate too long", c->id);
        return;
    }
    bench_send_control(n, "cand", c->id, buf, (size_t)len);
}

static void on_ice_candidate(tern_pc_t *pc, void *user, const char *candidate, const char *mid,
                             int mline_index)
{
    (void)pc;
    (void)mline_index;
    bench_conn_t *c = user;
    if (!c->closing)
        send_candidate(c, candidate, mid);
}

static void on_ice_connection_state(tern_pc_t *pc, void *user, tern_ice_state_t s)
{
    (void)pc;
    bench_conn_t *c = user;
    if (s == TERN_ICE_STATE_CONNECTED && !c->t_ice_ns)
        c->t_ice_ns = bench_clock_ns();
}

static void on_connection_state(tern_pc_t *pc, void *user, tern_pc_state_t s)
{
    bench_conn_t *c = user;
    bench_node_t *n = c->node;
    if (s == TERN_PC_STATE_CONNECTED && !c->t_conn_ns)
        c->t_conn_ns = bench_clock_ns();
    if (c->closing || n->shutting_down)
        return;
    if (s == TERN_PC_STATE_DISCONNECTED)
        n->disconnects++;
    if (s == TERN_PC_STATE_FAILED)
        bench_fail(n, "conn %u (%s): connection failed: %s", c->id,
                   c->offerer ? "offerer" : "answerer", tern_pc_last_error(pc));
}

static void on_data_channel(tern_pc_t *pc, void *user, tern_dc_t *dc)
{
    (void)pc;
    bench_conn_t *c = user;
    if (!c->dc)
        c->dc = dc;
    /* A remote channel is announced by TERN_EV_DATA_CHANNEL and then TERN_EV_DC_OPEN (as the
     * W3C "announce the data channel as open" steps fire both): the first one counts. */
    mark_open(c);
}

static void on_open(tern_dc_t *dc, void *user)
{
    bench_conn_t *c = user;
    if (!c->dc)
        c->dc = dc;
    mark_open(c);
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    (void)dc;
    bench_conn_t *c = user;
    const bench_role_t *role = c->offerer ? c->node->offer_role : c->node->answer_role;
    if (!c->closing && role && role->on_message)
        role->on_message(c, data, len, is_text);
}

static void on_buffered_amount_low(tern_dc_t *dc, void *user)
{
    (void)dc;
    bench_conn_t *c = user;
    const bench_role_t *role = c->offerer ? c->node->offer_role : c->node->answer_role;
    if (!c->closing && role && role->on_low)
        role->on_low(c);
}

static void on_close(tern_dc_t *dc, void *user)
{
    bench_conn_t *c = user;
    if (c->dc == dc)
        c->dc = NULL;
    if (!c->closing && !c->node->shutting_down)
        c->node->remote_closes++;
}

/*
 * A channel error on the offering side (which drives every benchmark) is a failure. On the
 * answering side it is what the remote's close looks like when its ABORT arrives before our
 * "close" message (the stack reports it as an error, as Chromium reports "User-Initiated
 * Abort"): counted and noted; a real failure there shows up on the offering side anyway.
 */
static void on_error(tern_dc_t *dc, void *user, int code, const char *reason)
{
    (void)dc;
    bench_conn_t *c = user;
    bench_node_t *n = c->node;
    if (c->closing || n->shutting_down)
        return;
    if (c->offerer) {
        bench_fail(n, "conn %u: channel error %s: %s", c->id, tern_err_name(code),
                   reason ? reason : "");
        return;
    }
    if (n->remote_errors++ == 0)
        bench_note("note: answering side, conn %u: channel error %s: %s (counted, not fatal: "
                   "the remote closing)",
                   c->id, tern_err_name(code), reason ? reason : "");
}

static const tern_pc_callbacks_t callbacks = {
    .on_ice_candidate = on_ice_candidate,
    .on_ice_connection_state = on_ice_connection_state,
    .on_connection_state = on_connection_state,
    .on_data_channel = on_data_channel,
    .on_open = on_open,
    .on_message = on_message,
    .on_buffered_amount_low = on_buffered_amount_low,
    .on_close = on_close,
    .on_error = on_error,
};

static int new_pc(bench_conn_t *c)
{
    bench_node_t *n = c->node;
    tern_pc_config_t cfg = {.bind_addresses = loopback_only, .bind_address_count = 1};
    int rc = tern_pc_new(n->ctx, &cfg, now_us(n), &c->pc);
    if (rc != TERN_OK) {
        bench_fail(n, "tern_pc_new: %s", tern_strerror(rc));
        return rc;
    }
    tern_pc_set_user_data(c->pc, c);
    rc = tern_loop_add_pc(n->loop, c->pc, &callbacks, c);
    if (rc != TERN_OK) {
        bench_fail(n, "tern_loop_add_pc: %s (open files: raise the limit?)", tern_strerror(rc));
        tern_pc_free(c->pc);
        c->pc = NULL;
    }
    return rc;
}

/* ---- offer and answer ---- */

static void apply_answer(bench_conn_t *c, const char *sdp)
{
    int rc = tern_pc_set_remote_description(c->pc, now_us(c->node), TERN_SDP_ANSWER, sdp);
    if (rc != TERN_OK)
        bench_fail(c->node, "conn %u: set_remote_description(answer): %s (%s)", c->id,
                   tern_strerror(rc), tern_pc_last_error(c->pc));
}

/* The answerer's side of an offer: a new pc, the remote offer, our answer back. */
static bench_conn_t *answer_offer(bench_node_t *n, uint32_t id, const char *offer,
                                  bench_conn_t *offerer)
{
    int64_t t0 = bench_clock_ns();
    bench_conn_t *c = conn_new(n, id, false);
    if (!c || new_pc(c) != TERN_OK)
        return NULL;
    c->t_start_ns = t0;
    c->peer = offerer;
    if (offerer)
        offerer->peer = c;
    char *answer = NULL;
    tern_time_t now = now_us(n);
    int rc = tern_pc_set_remote_description(c->pc, now, TERN_SDP_OFFER, offer);
    const char *step = "set_remote_description(offer)";
    if (rc == TERN_OK) {
        rc = tern_pc_create_answer(c->pc, now, &answer);
        step = "create_answer";
    }
    if (rc == TERN_OK) {
        rc = tern_pc_set_local_description(c->pc, now, TERN_SDP_ANSWER, answer);
        step = "set_local_description(answer)";
    }
    if (rc != TERN_OK) {
        bench_fail(n, "conn %u: %s: %s (%s)", id, step, tern_strerror(rc),
                   tern_pc_last_error(c->pc));
    } else if (offerer) {
        apply_answer(offerer, answer);
    } else {
        bench_send_control(n, "answer", id, answer, strlen(answer));
    }
    tern_free(n->ctx, answer);
    return c;
}

bench_conn_t *bench_connect(bench_node_t *n, void *app)
{
    bench_conn_t *c = conn_new(n, ++n->next_id, true);
    if (!c)
        return NULL;
    c->app = app;
    if (new_pc(c) != TERN_OK)
        return NULL;
    int rc = tern_pc_create_data_channel(c->pc, now_us(n), "bench", NULL, &c->dc);
    if (rc != TERN_OK) {
        bench_fail(n, "create_data_channel: %s", tern_strerror(rc));
        return NULL;
    }
    c->t_start_ns = bench_clock_ns();
    char *offer = NULL;
    tern_time_t now = now_us(n);
    rc = tern_pc_create_offer(c->pc, now, &offer);
    if (rc == TERN_OK)
        rc = tern_pc_set_local_description(c->pc, now, TERN_SDP_OFFER, offer);
    if (rc != TERN_OK) {
        bench_fail(n, "conn %u: offer: %s (%s)", c->id, tern_strerror(rc),
                   tern_pc_last_error(c->pc));
        tern_free(n->ctx, offer);
        return NULL;
    }
    if (n->sig_fd < 0) {
        bench_conn_t *a = answer_offer(n, c->id, offer, c);
        if (a)
            a->app = app;
    } else {
        bench_send_control(n, "offer", c->id, offer, strlen(offer));
    }
    tern_free(n->ctx, offer);
    return n->failed ? NULL : c;
}

/* ---- closing ---- */

static void reap_closed(void *arg);

/*
 * Closing takes three steps: tern_pc_close now; the reaper's first run marks the pc; its next
 * run, an iteration later (a timer set while timers run waits for the next iteration), removes
 * and frees it, after the loop has drained what tern_pc_close queued. One reaper is pending at
 * a time, so two runs never happen in the same iteration.
 */
static void schedule_reap(bench_node_t *n)
{
    if (n->reap_scheduled)
        return;
    if (tern_loop_add_timer(n->loop, 0, reap_closed, n, NULL) != TERN_OK)
        bench_fail(n, "cannot add a timer");
    else
        n->reap_scheduled = true;
}

static void reap_closed(void *arg)
{
    bench_node_t *n = arg;
    bool again = false;
    n->reap_scheduled = false;
    bench_conn_t *c = n->conns;
    while (c) {
        bench_conn_t *next = c->next;
        if (c->reap_stage == 1) {
            c->reap_stage = 2;
            again = true;
        } else if (c->reap_stage == 2) {
            conn_free(c);
        }
        c = next;
    }
    if (again)
        schedule_reap(n);
}

static void close_one(bench_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->reap_stage = 1;
    tern_pc_close(c->pc, now_us(c->node));
    schedule_reap(c->node);
}

void bench_conn_close(bench_conn_t *c)
{
    bench_node_t *n = c->node;
    bench_conn_t *peer = c->peer;
    if (c->closing)
        return;
    if (n->sig_fd >= 0 && c->offerer)
        bench_send_control(n, "close", c->id, NULL, 0);
    close_one(c);
    if (peer)
        close_one(peer);
}

/* ---- signaling between processes ---- */

/* One message: "TYPE ID LEN\n" and LEN payload bytes (NUL-terminated here for the handlers). */
typedef struct sig_msg {
    char type[16];
    uint32_t id;
    size_t len;
    char *payload;
} sig_msg_t;

/* Longest header line accepted. */
#define MAX_HEADER 128

static bool buf_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    /* One byte more than the content, so that a payload can be NUL-terminated in place. */
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n + 1)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return false;
        *buf = b;
        *cap = c;
    }
    if (n)
        memcpy(*buf + *len, p, n);
    *len += n;
    return true;
}

static void link_closed(bench_node_t *n, const char *why)
{
    n->peer_gone = true;
    n->out_len = 0;
    if (n->sig_watch) {
        tern_loop_unwatch_fd(n->loop, n->sig_watch);
        n->sig_watch = NULL;
    }
    if (!n->done && !n->shutting_down)
        bench_fail(n, "the signaling link to the other process: %s", why);
}

/* Watch for writability only while output waits. */
static void watch_output(bench_node_t *n, bool want)
{
    if (!n->sig_watch || n->watching_output == want)
        return;
    n->watching_output = want;
    unsigned events = TERN_FD_READABLE | (want ? TERN_FD_WRITABLE : 0);
    if (tern_loop_update_fd(n->loop, n->sig_watch, events) != TERN_OK)
        bench_fail(n, "tern_loop_update_fd failed");
}

/* Write what is queued, as far as the socket takes it. */
static void flush_output(bench_node_t *n)
{
    size_t done = 0;
    while (done < n->out_len) {
        ssize_t w =
            send(n->sig_fd, n->out_buf + done, n->out_len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            done += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            link_closed(n, w < 0 ? strerror(errno) : "closed");
            return;
        }
    }
    memmove(n->out_buf, n->out_buf + done, n->out_len - done);
    n->out_len -= done;
    watch_output(n, n->out_len > 0);
}

int bench_send_control(bench_node_t *n, const char *type, uint32_t id, const void *payload,
                       size_t len)
{
    char head[64];
    int hl = snprintf(head, sizeof head, "%s %u %zu\n", type, id, len);
    if (n->sig_fd < 0 || n->peer_gone) {
        if (!n->shutting_down)
            bench_fail(n, "no signaling link to send \"%s\" on", type);
        return -1;
    }
    if (!buf_append(&n->out_buf, &n->out_len, &n->out_cap, head, (size_t)hl) ||
        !buf_append(&n->out_buf, &n->out_len, &n->out_cap, payload, len)) {
        bench_fail(n, "out of memory");
        return -1;
    }
    flush_output(n);
    return n->peer_gone ? -1 : 0;
}

static void handle_stat_request(bench_node_t *n)
{
    bench_stat_t s;
    char buf[128];
    bench_self_stat(n, &s);
    int len =
        snprintf(buf, sizeof buf, "%zu %.6f %zu %zu", s.rss_bytes, s.cpu_seconds, s.conns, s.open);
    bench_send_control(n, "stat", 0, buf, (size_t)len);
}

static void handle_candidate(bench_node_t *n, bench_conn_t *c, char *payload)
{
    char *nl = strchr(payload, '\n');
    if (!nl) {
        bench_fail(n, "malformed cand message");
        return;
    }
    *nl = '\0';
    const char *mid = payload[0] ? payload : NULL;
    int rc = tern_pc_add_ice_candidate(c->pc, now_us(n), nl + 1, mid);
    if (rc != TERN_OK)
        candidate_refused(c, c->pc, rc, nl + 1);
}

static void handle_msg(bench_node_t *n, const sig_msg_t *m)
{
    bench_conn_t *c = m->id ? find_conn(n, m->id) : NULL;
    if (strcmp(m->type, "offer") == 0) {
        answer_offer(n, m->id, m->payload, NULL);
    } else if (strcmp(m->type, "answer") == 0) {
        if (c && !c->closing)
            apply_answer(c, m->payload);
    } else if (strcmp(m->type, "cand") == 0) {
        if (c && !c->closing)
            handle_candidate(n, c, m->payload);
    } else if (strcmp(m->type, "close") == 0) {
        if (c)
            close_one(c);
    } else if (strcmp(m->type, "quit") == 0) {
        n->done = true;
        tern_loop_stop(n->loop);
    } else if (strcmp(m->type, "mark") == 0) {
        n->cpu_mark = bench_cpu_seconds();
    } else if (strcmp(m->type, "stat?") == 0) {
        handle_stat_request(n);
    } else if (strcmp(m->type, "stat") == 0) {
        snprintf(n->stat_reply, sizeof n->stat_reply, "%s", m->payload);
        n->stat_ready = true;
    } else if (n->on_control) {
        n->on_control(n, m->type, m->id, m->payload, m->len);
    }
}

/* Handle every whole message in the input buffer; keep the rest for later. */
static void parse_input(bench_node_t *n)
{
    size_t pos = 0;
    while (!n->shutting_down && !n->failed) {
        char *start = n->in_buf + pos, *nl = memchr(start, '\n', n->in_len - pos);
        char line[MAX_HEADER];
        sig_msg_t m;
        if (!nl) {
            if (n->in_len - pos >= MAX_HEADER)
                bench_fail(n, "signaling: header line too long");
            break;
        }
        size_t head = (size_t)(nl - start) + 1;
        snprintf(line, sizeof line, "%.*s", (int)(head - 1), start);
        if (head > MAX_HEADER || sscanf(line, "%15s %u %zu", m.type, &m.id, &m.len) != 3 ||
            m.len > MAX_PAYLOAD) {
            bench_fail(n, "signaling: malformed header \"%s\"", line);
            break;
        }
        if (n->in_len - pos < head + m.len)
            break;
        m.payload = start + head;
        char saved = m.payload[m.len]; /* in the buffer: buf_append keeps a spare byte */
        m.payload[m.len] = '\0';
        handle_msg(n, &m);
        m.payload[m.len] = saved;
        pos += head + m.len;
    }
    memmove(n->in_buf, n->in_buf + pos, n->in_len - pos);
    n->in_len -= pos;
}

static void read_input(bench_node_t *n)
{
    char chunk[65536];
    for (;;) {
        ssize_t r = recv(n->sig_fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (r > 0) {
            if (!buf_append(&n->in_buf, &n->in_len, &n->in_cap, chunk, (size_t)r)) {
                bench_fail(n, "out of memory");
                return;
            }
            if ((size_t)r == sizeof chunk)
                continue;
            break;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        parse_input(n);
        link_closed(n, r == 0 ? "the other process closed it" : strerror(errno));
        return;
    }
    parse_input(n);
}

static void on_sig_ready(void *arg, int fd, unsigned events)
{
    (void)fd;
    bench_node_t *n = arg;
    if (events & TERN_FD_WRITABLE)
        flush_output(n);
    if (!n->peer_gone && (events & (TERN_FD_READABLE | TERN_FD_ERROR)))
        read_input(n);
}

/* ---- nodes ---- */

bench_node_t *bench_node_new(const bench_opts_t *opts, int sig_fd)
{
    bench_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->opts = opts;
    n->sig_fd = sig_fd;
    int rc = tern_ctx_new(NULL, &n->ctx);
    if (rc == TERN_OK)
        rc = tern_loop_new(n->ctx, &n->loop);
    if (rc != TERN_OK) {
        bench_note("cannot create a context and loop: %s", tern_strerror(rc));
        tern_ctx_free(n->ctx);
        free(n);
        return NULL;
    }
    if (opts->verbose)
        tern_log_stderr_set_filter("info");
    if (sig_fd >= 0) {
        int flags = fcntl(sig_fd, F_GETFL);
        rc = flags < 0 || fcntl(sig_fd, F_SETFL, flags | O_NONBLOCK) != 0
                 ? TERN_ERR_IO
                 : tern_loop_watch_fd(n->loop, sig_fd, TERN_FD_READABLE, on_sig_ready, n,
                                      &n->sig_watch);
        if (rc != TERN_OK) {
            bench_note("cannot watch the signaling socket: %s", tern_strerror(rc));
            bench_node_free(n);
            return NULL;
        }
    }
    return n;
}

void bench_node_free(bench_node_t *n)
{
    if (!n)
        return;
    n->shutting_down = true;
    tern_loop_unwatch_fd(n->loop, n->sig_watch);
    while (n->conns)
        conn_free(n->conns);
    tern_loop_free(n->loop);
    tern_ctx_free(n->ctx);
    if (n->sig_fd >= 0)
        close(n->sig_fd);
    free(n->in_buf);
    free(n->out_buf);
    free(n);
}

int bench_node_run(bench_node_t *n, double limit_s)
{
    int64_t end = bench_clock_ns() + (int64_t)(limit_s * 1e9);
    while (!n->done && !n->failed) {
        int64_t left_ms = (end - bench_clock_ns()) / 1000000;
        if (left_ms <= 0) {
            bench_fail(n, "no result after %.0f s; the connections:", limit_s);
            bench_node_dump(n);
            break;
        }
        int rc = tern_loop_run_once(n->loop, left_ms > 1000 ? 1000 : (int)left_ms);
        if (rc != TERN_OK)
            bench_fail(n, "tern_loop_run_once: %s", tern_strerror(rc));
    }
    return n->failed ? -1 : 0;
}

int bench_node_run_for(bench_node_t *n, double seconds)
{
    int64_t end = bench_clock_ns() + (int64_t)(seconds * 1e9);
    for (;;) {
        int64_t left_ms = (end - bench_clock_ns() + 999999) / 1000000;
        if (n->failed || left_ms <= 0)
            break;
        int rc = tern_loop_run_once(n->loop, left_ms > 1000 ? 1000 : (int)left_ms);
        if (rc != TERN_OK)
            bench_fail(n, "tern_loop_run_once: %s", tern_strerror(rc));
    }
    return n->failed ? -1 : 0;
}

static void dump_conn(const bench_node_t *n, const bench_conn_t *c)
{
    tern_pc_stats_t st;
    tern_pc_get_stats(c->pc, &st);
    tern_time_t deadline = tern_pc_next_deadline(c->pc);
    char when[32] = "never";
    if (deadline != TERN_TIME_NEVER)
        snprintf(when, sizeof when, "%+.1f ms", (double)(deadline - now_us(n)) / 1000.0);
    bench_note("  conn %u %s%s: pc %s, ice %s, signaling %s, dc %s (buffered %zu), sent %llu/%llu "
               "B, received %llu/%llu B, dropped %llu, messages %llu/%llu, deadline %s (%s)%s%s",
               c->id, c->offerer ? "offerer" : "answerer", c->closing ? " closing" : "",
               tern_pc_state_name(tern_pc_connection_state(c->pc)),
               tern_ice_state_name(tern_pc_ice_connection_state(c->pc)),
               tern_signaling_state_name(tern_pc_signaling_state(c->pc)),
               c->dc ? tern_dc_state_name(tern_dc_state(c->dc)) : "none",
               c->dc ? tern_dc_buffered_amount(c->dc) : 0, (unsigned long long)st.datagrams_sent,
               (unsigned long long)st.bytes_sent, (unsigned long long)st.datagrams_received,
               (unsigned long long)st.bytes_received, (unsigned long long)st.datagrams_dropped,
               (unsigned long long)st.messages_sent, (unsigned long long)st.messages_received, when,
               tern_pc_timeout_reason(c->pc), tern_pc_last_error(c->pc)[0] ? ", last error: " : "",
               tern_pc_last_error(c->pc));
}

void bench_node_dump(const bench_node_t *n)
{
    size_t shown = 0, not_open = 0;
    for (const bench_conn_t *c = n->conns; c; c = c->next)
        not_open += !c->open;
    bench_note("  %zu connection(s) here, %zu open, %zu not open", n->conn_count, n->open_count,
               not_open);
    /* The ones that did not open first: they are the interesting ones. */
    for (int pass = 0; pass < 2; pass++)
        for (const bench_conn_t *c = n->conns; c && shown < 12; c = c->next)
            if (c->pc && (pass == 0) == !c->open) {
                dump_conn(n, c);
                shown++;
            }
}

/* ---- process figures ---- */

void bench_self_stat(const bench_node_t *n, bench_stat_t *out)
{
    out->rss_bytes = bench_rss_bytes();
    out->cpu_seconds = bench_cpu_seconds();
    out->conns = n->conn_count;
    out->open = n->open_count;
    out->cpu_since_mark = out->cpu_seconds - n->cpu_mark;
}

int bench_peer_stat(bench_node_t *n, bench_stat_t *out)
{
    n->stat_ready = false;
    if (bench_send_control(n, "stat?", 0, NULL, 0) != 0)
        return -1;
    int64_t end = bench_clock_ns() + 30 * (int64_t)1000000000;
    while (!n->stat_ready && !n->failed && bench_clock_ns() < end)
        tern_loop_run_once(n->loop, 100);
    if (!n->stat_ready) {
        bench_fail(n, "the other process does not answer stat?");
        return -1;
    }
    if (sscanf(n->stat_reply, "%zu %lf %zu %zu", &out->rss_bytes, &out->cpu_seconds, &out->conns,
               &out->open) != 4) {
        bench_fail(n, "malformed stat reply \"%s\"", n->stat_reply);
        return -1;
    }
    return 0;
}

double bench_total_cpu(bench_node_t *n)
{
    bench_stat_t peer = {0};
    if (n->sig_fd >= 0 && bench_peer_stat(n, &peer) != 0)
        return -1;
    return bench_cpu_seconds() + peer.cpu_seconds;
}

/* ---- the second process ---- */

pid_t bench_spawn_peer(const bench_opts_t *opts, const bench_role_t *answer_role,
                       bench_control_fn on_control, int *sig_fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        bench_note("socketpair: %s", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        bench_note("fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        bench_node_t *n = bench_node_new(opts, sv[1]);
        if (!n)
            exit(1);
        n->is_child = true;
        n->answer_role = answer_role;
        n->on_control = on_control;
        /* Until "quit"; the parent kills what outlives it. */
        int rc = bench_node_run(n, 1e7);
        bench_node_free(n);
        fflush(stdout);
        exit(rc == 0 ? 0 : 1);
    }
    close(sv[1]);
    *sig_fd = sv[0];
    return pid;
}

int bench_reap_peer(bench_node_t *n, pid_t child)
{
    int status = 0;
    if (child <= 0)
        return -1;
    if (!n) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        return -1;
    }
    bench_send_control(n, "quit", 0, NULL, 0);
    int64_t end = bench_clock_ns() + 10 * (int64_t)1000000000;
    /* What the socket did not take yet goes out with the loop's help. */
    while (n->out_len > 0 && !n->peer_gone && bench_clock_ns() < end)
        tern_loop_run_once(n->loop, 100);
    for (;;) {
        pid_t r = waitpid(child, &status, WNOHANG);
        if (r == child)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (bench_clock_ns() > end) {
            bench_note("the answering process does not exit after quit: killed");
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            return -1;
        }
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    if (WIFSIGNALED(status)) {
        bench_note("the answering process was killed by signal %d (%s)", WTERMSIG(status),
                   strsignal(WTERMSIG(status)));
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bench_note("the answering process failed (exit status %d)", WEXITSTATUS(status));
        return -1;
    }
    return 0;
}
