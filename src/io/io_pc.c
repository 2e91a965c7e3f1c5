/* SPDX-License-Identifier: MIT */
/*
 * The pc driver of the loop: tern_loop_add_pc binds one UDP socket per usable local address and
 * hands them to the pc; datagrams read with recvmmsg go to tern_pc_handle_input; after every
 * mutation the pc is drained (CONVENTIONS.md §2 rule 3): transmits are copied into a sendmmsg
 * batch for the socket bound to their source address (runs of same-size datagrams to one
 * destination leave as one UDP GSO send where the kernel allows it; on receive, UDP GRO hands
 * such runs up whole and they are cut here), events go to the callbacks, and the pc's next
 * deadline moves its heap node. Callbacks may call into any pc and may remove any pc, their own
 * included: a removed entry is never touched again and is freed at the end of the iteration,
 * when no epoll event, batch or stack frame can still point at it.
 */
#include "io/io_loop.h"
#include "io/io_mdns.h"
#include "io/io_turn.h"
#include "util/util.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Datagrams read from one socket per readiness, so one busy socket cannot starve the rest. */
#define MAX_READS_PER_WAKEUP (4 * TERN_IO_BATCH)
/* UDP GSO limits: the kernel's UDP_MAX_SEGMENTS (64 before Linux 6.9), and the whole send must
 * fit one IP datagram's 16-bit length with its headers. */
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000

/* Set once the kernel or a device refused UDP GSO: every send goes one datagram at a time. */
static atomic_bool gso_refused;

/* ---- sockets ---- */

static void close_sock(tern_loop_t *loop, tern_io_sock_t *s)
{
    if (s->fd < 0)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
}

static tern_io_sock_t *find_sock(tern_io_pc_t *e, const tern_addr_t *local)
{
    for (size_t i = 0; i < e->sock_count; i++)
        if (e->socks[i].fd >= 0 && tern_addr_equal(&e->socks[i].local, local))
            return &e->socks[i];
    return NULL;
}

static bool open_sock(tern_loop_t *loop, tern_io_pc_t *e, const tern_addr_t *addr,
                      tern_io_sock_t *s)
{
    char buf[TERN_ADDR_STRLEN];
    s->kind = TERN_IO_HANDLE_SOCKET;
    s->owner = e;
    s->fd = tern_io_udp_bind(addr, &s->local);
    if (s->fd < 0) {
        TERN_LOG_WARN(loop->ctx, "io", "driver %u cannot bind %s: %s", e->id,
                      tern_addr_log(loop->ctx, addr, buf), strerror(errno));
        return false;
    }
    /* UDP GRO (Linux 5.0): a run of same-size datagrams from one sender comes up as one, with
     * its segment size (deliver cuts it); on loopback a GSO send is not even split. Without it
     * (an older kernel) datagrams come one by one, as before. */
    const int on = 1;
    (void)setsockopt(s->fd, IPPROTO_UDP, UDP_GRO, &on, sizeof on);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
        TERN_LOG_WARN(loop->ctx, "io", "driver %u cannot poll a socket: %s", e->id,
                      strerror(errno));
        close(s->fd);
        s->fd = -1;
        return false;
    }
    TERN_LOG_DEBUG(loop->ctx, "io", "driver %u socket bound %s", e->id,
                   tern_addr_log(loop->ctx, &s->local, buf));
    return true;
}

/* Bind on every usable address. Returns how many sockets are open. */
static size_t open_socks(tern_loop_t *loop, tern_io_pc_t *e, const tern_addr_t *addrs, size_t n)
{
    size_t open = 0;
    for (size_t i = 0; i < n; i++)
        if (open_sock(loop, e, &addrs[i], &e->socks[open]))
            open++;
    e->sock_count = open;
    return open;
}

/* ---- sending ---- */

static void log_send_error(tern_loop_t *loop, const tern_io_sock_t *s, int err)
{
    loop->tx_errors++;
    /* Warn on the 1st, 2nd, 4th, 8th... error: an unreachable peer must not flood the log. */
    tern_log_level_t level =
        (loop->tx_errors & (loop->tx_errors - 1)) == 0 ? TERN_LOG_WARN : TERN_LOG_DEBUG;
    char buf[TERN_ADDR_STRLEN];
    TERN_LOG_AT(loop->ctx, level, "io", "driver %u send from %s failed: %s (%llu errors)",
                s->owner->id, tern_addr_log(loop->ctx, &s->local, buf), strerror(err),
                (unsigned long long)loop->tx_errors);
}

/* Send datagrams [from, to) of the batch one per message. Returns how many were sent (or
 * dropped as unsendable); fewer than asked when the socket buffer is full. */
static size_t send_plain(tern_loop_t *loop, size_t from, size_t to)
{
    tern_io_batch_t *b = &loop->tx;
    size_t done = from;
    while (done < to && b->sock->fd >= 0) {
        int sent = sendmmsg(b->sock->fd, b->msgs + done, (unsigned)(to - done), 0);
        if (sent > 0) {
            done += (size_t)sent;
            loop->tx_datagrams += (size_t)sent;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
            /* The socket buffer is full: UDP is lossy, the protocols above retransmit. */
            break;
        } else {
            /* This datagram cannot go (unreachable, wrong family): drop it, send the rest. */
            log_send_error(loop, b->sock, errno);
            done++;
        }
    }
    return done - from;
}

/* sendmmsg vector of one flush with GSO: each message is a run of batch datagrams. */
typedef struct gso_batch {
    struct mmsghdr msgs[TERN_IO_BATCH];
    size_t first[TERN_IO_BATCH]; /* the run's first datagram in the batch */
    size_t count[TERN_IO_BATCH]; /* datagrams in the run */
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl[TERN_IO_BATCH];
    size_t n;
} gso_batch_t;

static bool same_destination(const tern_io_batch_t *b, size_t i, size_t j)
{
    const struct msghdr *x = &b->msgs[i].msg_hdr, *y = &b->msgs[j].msg_hdr;
    return x->msg_namelen == y->msg_namelen &&
           memcmp(x->msg_name, y->msg_name, x->msg_namelen) == 0;
}

/* How many datagrams from i can go as one GSO send: same destination, every one but the last
 * exactly the first's size, the last no larger (the kernel cuts at the first's size). */
static size_t gso_run(const tern_io_batch_t *b, size_t i)
{
    size_t seg = b->iov[i].iov_len, total = seg, n = 1;
    if (seg == 0)
        return 1;
    while (i + n < b->count && n < GSO_MAX_SEGMENTS && b->iov[i + n - 1].iov_len == seg) {
        size_t len = b->iov[i + n].iov_len;
        if (len == 0 || len > seg || total + len > GSO_MAX_BYTES || !same_destination(b, i, i + n))
            break;
        total += len;
        n++;
    }
    return n;
}

/* One message per run; a run of one is an ordinary datagram. */
static void build_gso(tern_io_batch_t *b, gso_batch_t *g)
{
    g->n = 0;
    for (size_t i = 0; i < b->count;) {
        size_t n = gso_run(b, i), m = g->n++;
        g->first[m] = i;
        g->count[m] = n;
        g->msgs[m].msg_hdr = b->msgs[i].msg_hdr;
        g->msgs[m].msg_hdr.msg_iov = &b->iov[i];
        g->msgs[m].msg_hdr.msg_iovlen = n;
        if (n > 1) {
            /* UDP_SEGMENT (Linux 4.18): the kernel splits the payload into datagrams of this
             * size, so one pass through the stack sends the whole run. */
            memset(&g->ctl[m], 0, sizeof g->ctl[m]);
            g->msgs[m].msg_hdr.msg_control = g->ctl[m].buf;
            g->msgs[m].msg_hdr.msg_controllen = sizeof g->ctl[m].buf;
            struct cmsghdr *c = CMSG_FIRSTHDR(&g->msgs[m].msg_hdr);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t seg = (uint16_t)b->iov[i].iov_len;
            memcpy(CMSG_DATA(c), &seg, sizeof seg);
        }
        i += n;
    }
}

/*
 * A GSO send failed. EIO: the device cannot checksum it (the kernel's condition for GSO);
 * ENOPROTOOPT/EOPNOTSUPP: a kernel without UDP_SEGMENT. Both hold for every later send too, so
 * GSO is given up for the process. Others (EINVAL for a segment over the path MTU, EMSGSIZE)
 * concern this run only. Either way the run goes again one datagram at a time.
 */
static void note_gso_refused(tern_loop_t *loop, int err)
{
    if (err != EIO && err != ENOPROTOOPT && err != EOPNOTSUPP)
        return;
    if (!atomic_exchange_explicit(&gso_refused, true, memory_order_relaxed))
        TERN_LOG_INFO(loop->ctx, "io",
                      "loop %u: UDP GSO refused (%s), sending datagrams one by one", loop->id,
                      strerror(err));
}

/* Send the batch as runs. Returns how many datagrams were sent or dropped as unsendable. */
static size_t send_gso(tern_loop_t *loop)
{
    tern_io_batch_t *b = &loop->tx;
    gso_batch_t g;
    build_gso(b, &g);
    size_t m = 0, done = 0;
    while (m < g.n && b->sock->fd >= 0) {
        int sent = sendmmsg(b->sock->fd, g.msgs + m, (unsigned)(g.n - m), 0);
        if (sent > 0) {
            size_t n = 0;
            for (int k = 0; k < sent; k++, m++)
                n += g.count[m];
            done += n;
            loop->tx_datagrams += n;
            continue;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
            break;
        if (g.count[m] > 1)
            note_gso_refused(loop, err);
        /* One datagram at a time: what cannot go is logged and dropped as before. */
        size_t n = send_plain(loop, g.first[m], g.first[m] + g.count[m]);
        done += n;
        if (n < g.count[m])
            break;
        m++;
    }
    return done;
}

void tern_io_pc_flush(tern_loop_t *loop)
{
    tern_io_batch_t *b = &loop->tx;
    size_t done = 0;
    if (b->count > 1 && !atomic_load_explicit(&gso_refused, memory_order_relaxed))
        done = send_gso(loop);
    else if (b->count > 0)
        done = send_plain(loop, 0, b->count);
    loop->tx_dropped_full += b->count - done;
    b->count = 0;
    b->sock = NULL;
}

static void queue_transmit(tern_loop_t *loop, tern_io_pc_t *e, const tern_transmit_t *t)
{
    tern_io_mdns_on_transmit(loop, e, t); /* an mDNS query: listen for its answer first */
    tern_io_sock_t *s = find_sock(e, &t->local);
    if (!s || t->len > TERN_IO_SLOT_BYTES) {
        char buf[TERN_ADDR_STRLEN];
        loop->tx_dropped_no_socket++;
        TERN_LOG_DEBUG(loop->ctx, "io", "driver %u transmit dropped: no socket for %s or %zu bytes",
                       e->id, tern_addr_log(loop->ctx, &t->local, buf), t->len);
        return;
    }
    tern_io_batch_t *b = &loop->tx;
    if (b->count == TERN_IO_BATCH || (b->count > 0 && b->sock != s))
        tern_io_pc_flush(loop);
    size_t i = b->count++;
    b->sock = s;
    uint8_t *slot = b->buf + i * TERN_IO_SLOT_BYTES;
    if (t->len)
        memcpy(slot, t->data, t->len);
    b->iov[i] = (struct iovec){.iov_base = slot, .iov_len = t->len};
    b->msgs[i].msg_hdr = (struct msghdr){
        .msg_name = &b->addrs[i],
        .msg_namelen = tern_io_addr_to_sockaddr(&t->remote, &b->addrs[i]),
        .msg_iov = &b->iov[i],
        .msg_iovlen = 1,
    };
}

/* ---- events ---- */

static void dispatch_dc(const tern_io_pc_t *e, const tern_event_t *ev)
{
    const tern_pc_callbacks_t *c = &e->cbs;
    switch (ev->type) {
    case TERN_EV_DATA_CHANNEL:
        if (c->on_data_channel)
            c->on_data_channel(e->pc, e->user, ev->dc);
        break;
    case TERN_EV_DC_OPEN:
        if (c->on_open)
            c->on_open(ev->dc, e->user);
        break;
    case TERN_EV_DC_MESSAGE:
        if (c->on_message)
            c->on_message(ev->dc, e->user, ev->u.message.data, ev->u.message.len,
                          ev->u.message.is_text);
        break;
    case TERN_EV_DC_BUFFERED_AMOUNT_LOW:
        if (c->on_buffered_amount_low)
            c->on_buffered_amount_low(ev->dc, e->user);
        break;
    case TERN_EV_DC_CLOSING:
        if (c->on_closing)
            c->on_closing(ev->dc, e->user);
        break;
    case TERN_EV_DC_CLOSE:
        if (c->on_close)
            c->on_close(ev->dc, e->user);
        break;
    case TERN_EV_DC_ERROR:
        if (c->on_error)
            c->on_error(ev->dc, e->user, ev->u.error.code, ev->u.error.reason);
        break;
    default:
        break;
    }
}

static void dispatch(const tern_io_pc_t *e, const tern_event_t *ev)
{
    const tern_pc_callbacks_t *c = &e->cbs;
    switch (ev->type) {
    case TERN_EV_ICE_CANDIDATE:
        if (c->on_ice_candidate)
            c->on_ice_candidate(e->pc, e->user, ev->u.ice_candidate.candidate,
                                ev->u.ice_candidate.mid, ev->u.ice_candidate.mline_index);
        break;
    case TERN_EV_ICE_GATHERING_STATE:
        if (c->on_ice_gathering_state)
            c->on_ice_gathering_state(e->pc, e->user, ev->u.ice_gathering_state);
        break;
    case TERN_EV_ICE_CONNECTION_STATE:
        if (c->on_ice_connection_state)
            c->on_ice_connection_state(e->pc, e->user, ev->u.ice_state);
        break;
    case TERN_EV_CONNECTION_STATE:
        if (c->on_connection_state)
            c->on_connection_state(e->pc, e->user, ev->u.pc_state);
        break;
    case TERN_EV_SIGNALING_STATE:
        if (c->on_signaling_state)
            c->on_signaling_state(e->pc, e->user, ev->u.signaling_state);
        break;
    case TERN_EV_NEGOTIATION_NEEDED:
        if (c->on_negotiation_needed)
            c->on_negotiation_needed(e->pc, e->user);
        break;
    default:
        dispatch_dc(e, ev);
        break;
    }
}

/* ---- draining ---- */

/*
 * Take everything the pc has to give: transmits into the batch, events to the callbacks, until
 * both are empty; then move its deadline. A callback may remove the pc (and the application may
 * then free it), so the pc is not touched after a callback that removed it.
 */
static void drain_pc(tern_loop_t *loop, tern_io_pc_t *e)
{
    if (e->removed || e->draining)
        return;
    e->draining = true;
    for (;;) {
        tern_transmit_t t;
        while (tern_pc_poll_transmit(e->pc, &t))
            queue_transmit(loop, e, &t);
        tern_io_turn_drain(loop, e); /* TURN over TCP and TLS */
        tern_event_t ev;
        if (tern_pc_poll_event(e->pc, &ev)) {
            dispatch(e, &ev);
            if (e->removed)
                return;
            continue;
        }
        /* Polling may itself make datagrams (an SCTP window update after a read): done only
         * when both are empty in the same round (tern.h, the drain rule). */
        if (!tern_pc_poll_transmit(e->pc, &t))
            break;
        queue_transmit(loop, e, &t);
    }
    e->draining = false;
    tern_io_heap_set(&loop->heap, &e->timer, tern_pc_next_deadline(e->pc));
}

static void mark_dirty(tern_loop_t *loop, tern_io_pc_t *e)
{
    if (e->dirty)
        return;
    e->dirty = true;
    e->next_dirty = NULL;
    if (loop->dirty_tail)
        loop->dirty_tail->next_dirty = e;
    else
        loop->dirty_head = e;
    loop->dirty_tail = e;
}

static tern_io_pc_t *pop_dirty(tern_loop_t *loop)
{
    tern_io_pc_t *e = loop->dirty_head;
    if (!e)
        return NULL;
    loop->dirty_head = e->next_dirty;
    if (!loop->dirty_head)
        loop->dirty_tail = NULL;
    e->dirty = false;
    e->next_dirty = NULL;
    return e;
}

static void unlink_dirty(tern_loop_t *loop, tern_io_pc_t *e)
{
    if (!e->dirty)
        return;
    tern_io_pc_t *prev = NULL;
    for (tern_io_pc_t *p = loop->dirty_head; p; prev = p, p = p->next_dirty) {
        if (p != e)
            continue;
        if (prev)
            prev->next_dirty = e->next_dirty;
        else
            loop->dirty_head = e->next_dirty;
        if (loop->dirty_tail == e)
            loop->dirty_tail = prev;
        break;
    }
    e->dirty = false;
    e->next_dirty = NULL;
}

void tern_io_pc_drain_pending(tern_loop_t *loop)
{
    /* Bounded, in case a pc keeps reporting itself pending: what is left waits for the next
     * iteration, which starts by draining again. */
    size_t budget = 1024 + 4 * loop->pcs.count;
    while (budget-- > 0) {
        tern_io_pc_t *e = pop_dirty(loop);
        if (!e) {
            tern_pc_t *pc = tern_ctx_poll_pending_pc(loop->ctx);
            if (!pc)
                break;
            /* A pc of the context that another driver runs is not ours to drain. */
            e = tern_io_map_get(&loop->pcs, pc);
            if (!e)
                continue;
        }
        drain_pc(loop, e);
    }
}

/* ---- input and timers ---- */

/* Room for each received datagram's ancillary data: the UDP_GRO segment size. */
typedef union rx_ctl {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
} rx_ctl_t;

static void prepare_rx(tern_io_batch_t *b, rx_ctl_t *ctl)
{
    for (size_t i = 0; i < TERN_IO_BATCH; i++) {
        b->iov[i] = (struct iovec){.iov_base = b->buf + i * TERN_IO_SLOT_BYTES,
                                   .iov_len = TERN_IO_SLOT_BYTES};
        b->msgs[i].msg_hdr = (struct msghdr){
            .msg_name = &b->addrs[i],
            .msg_namelen = sizeof b->addrs[i],
            .msg_iov = &b->iov[i],
            .msg_iovlen = 1,
            .msg_control = ctl[i].buf,
            .msg_controllen = sizeof ctl[i].buf,
        };
    }
}

/* The size of the datagrams a GRO receive joined; 0 if it is one datagram. */
static size_t gro_segment(struct msghdr *h)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int seg;
            memcpy(&seg, CMSG_DATA(c), sizeof seg);
            return seg > 0 ? (size_t)seg : 0;
        }
    }
    return 0;
}

/* Hand the received datagrams to the pc, one at a time, draining after each. */
static void deliver(tern_loop_t *loop, tern_io_sock_t *s, int n)
{
    tern_io_batch_t *b = &loop->rx;
    tern_io_pc_t *e = s->owner;
    for (int i = 0; i < n && !e->removed; i++) {
        struct msghdr *h = &b->msgs[i].msg_hdr;
        tern_datagram_t d = {.local = s->local};
        if ((h->msg_flags & MSG_TRUNC) ||
            !tern_io_addr_from_sockaddr(h->msg_name, h->msg_namelen, &d.remote)) {
            loop->rx_errors++;
            continue;
        }
        const uint8_t *p = h->msg_iov->iov_base;
        size_t left = b->msgs[i].msg_len, seg = gro_segment(h);
        if (seg == 0 || seg > left)
            seg = left;
        do { /* each datagram of a GRO run, the last one possibly shorter */
            d.data = p;
            d.len = TERN_MIN(seg, left);
            p += d.len;
            left -= d.len;
            loop->rx_datagrams++;
            tern_pc_handle_input(e->pc, tern_io_clock_now(), &d);
            drain_pc(loop, e);
        } while (left > 0 && !e->removed);
    }
}

void tern_io_pc_on_readable(tern_loop_t *loop, tern_io_sock_t *s)
{
    rx_ctl_t ctl[TERN_IO_BATCH];
    for (int read = 0; read < MAX_READS_PER_WAKEUP;) {
        if (s->fd < 0 || s->owner->removed)
            return;
        prepare_rx(&loop->rx, ctl);
        int n = recvmmsg(s->fd, loop->rx.msgs, TERN_IO_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                loop->rx_errors++;
                TERN_LOG_DEBUG(loop->ctx, "io", "driver %u receive failed: %s", s->owner->id,
                               strerror(errno));
                /* An ICMP error queued on the socket is consumed by this call: read on. */
                if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH)
                    continue;
            }
            return;
        }
        deliver(loop, s, n);
        if (n < TERN_IO_BATCH)
            return;
        read += n;
    }
}

void tern_io_pc_on_timeout(tern_loop_t *loop, tern_io_pc_t *e, tern_time_t now)
{
    if (e->removed)
        return;
    tern_pc_handle_timeout(e->pc, now);
    drain_pc(loop, e);
}

/* ---- adding and removing ---- */

static void free_entry(tern_loop_t *loop, tern_io_pc_t *e)
{
    for (size_t i = 0; i < e->sock_count; i++)
        close_sock(loop, &e->socks[i]);
    tern_free(loop->ctx, e->socks);
    tern_free(loop->ctx, e);
}

/* Hand the sockets to the pc; a socket it refuses is closed. Returns the first error. */
static int announce_socks(tern_loop_t *loop, tern_io_pc_t *e)
{
    tern_time_t now = tern_io_clock_now();
    int first_err = TERN_OK;
    size_t accepted = 0;
    for (size_t i = 0; i < e->sock_count; i++) {
        int rc = tern_pc_add_local_socket(e->pc, now, &e->socks[i].local);
        if (rc == TERN_OK) {
            accepted++;
            continue;
        }
        if (first_err == TERN_OK)
            first_err = rc;
        close_sock(loop, &e->socks[i]);
    }
    if (accepted == 0)
        return first_err != TERN_OK ? first_err : TERN_ERR_IO;
    return tern_pc_local_sockets_done(e->pc, now);
}

static void link_entry(tern_loop_t *loop, tern_io_pc_t *e)
{
    e->prev = NULL;
    e->next = loop->pc_list;
    if (loop->pc_list)
        loop->pc_list->prev = e;
    loop->pc_list = e;
}

static void unlink_entry(tern_loop_t *loop, tern_io_pc_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        loop->pc_list = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

static tern_io_pc_t *new_entry(tern_loop_t *loop, tern_pc_t *pc, const tern_pc_callbacks_t *cbs,
                               void *user, size_t max_socks)
{
    tern_io_pc_t *e = tern_calloc(loop->ctx, 1, sizeof *e);
    if (!e)
        return NULL;
    e->socks = tern_calloc(loop->ctx, max_socks, sizeof *e->socks);
    if (!e->socks) {
        tern_free(loop->ctx, e);
        return NULL;
    }
    e->loop = loop;
    e->pc = pc;
    if (cbs)
        e->cbs = *cbs;
    e->user = user;
    e->id = tern_ctx_new_object_id(loop->ctx);
    tern_io_node_init(&e->timer, TERN_IO_NODE_PC);
    return e;
}

/* The pc's bind_addresses if it has some (IPv6 ones only if allowed), else the interfaces'. */
static int local_addresses(tern_loop_t *loop, const tern_pc_config_t *cfg, tern_addr_t *out,
                           size_t cap)
{
    if (cfg->bind_address_count == 0) {
        int n = tern_io_iface_list(cfg->include_loopback, cfg->disable_ipv6, out, cap);
        if (n < 0)
            TERN_LOG_WARN(loop->ctx, "io", "loop %u cannot list interfaces: %s", loop->id,
                          strerror(errno));
        return n;
    }
    static const uint8_t unspecified[16];
    size_t n = 0;
    for (size_t i = 0; i < cfg->bind_address_count && n < cap; i++) {
        tern_addr_t a;
        if (!cfg->bind_addresses[i] || tern_addr_parse(cfg->bind_addresses[i], &a) != TERN_OK ||
            memcmp(a.ip, unspecified, sizeof unspecified) == 0) {
            TERN_LOG_WARN(loop->ctx, "io", "loop %u ignores bind address %s", loop->id,
                          cfg->bind_addresses[i] ? cfg->bind_addresses[i] : "(null)");
            continue;
        }
        if (a.family == TERN_AF_INET6 && cfg->disable_ipv6)
            continue;
        a.port = 0; /* always an ephemeral port */
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++)
            seen = tern_addr_equal(&out[j], &a);
        if (!seen)
            out[n++] = a;
    }
    return (int)n;
}

int tern_loop_add_pc(tern_loop_t *loop, tern_pc_t *pc, const tern_pc_callbacks_t *cbs, void *user)
{
    if (!loop || !pc)
        return TERN_ERR_INVALID_ARG;
    if (tern_io_map_get(&loop->pcs, pc))
        return TERN_ERR_INVALID_STATE;
    tern_addr_t addrs[TERN_IO_MAX_LOCAL_ADDRS];
    int n = local_addresses(loop, tern_pc_config(pc), addrs, TERN_IO_MAX_LOCAL_ADDRS);
    if (n < 0)
        return n;
    /* One socket per address, and a spare slot for the mDNS listener (io_mdns.c). */
    tern_io_pc_t *e = new_entry(loop, pc, cbs, user, (n > 0 ? (size_t)n : 1) + TERN_IO_MDNS_SOCKS);
    if (!e)
        return TERN_ERR_NOMEM;
    if (tern_io_heap_reserve(&loop->heap) != TERN_OK) {
        free_entry(loop, e);
        return TERN_ERR_NOMEM;
    }
    int rc = tern_io_map_put(&loop->pcs, pc, e);
    if (rc == TERN_OK && open_socks(loop, e, addrs, (size_t)n) == 0) {
        TERN_LOG_WARN(loop->ctx, "io", "driver %u has no usable local address", e->id);
        rc = TERN_ERR_IO;
    }
    if (rc == TERN_OK)
        rc = announce_socks(loop, e);
    if (rc != TERN_OK) {
        tern_io_map_remove(&loop->pcs, pc);
        tern_io_heap_unreserve(&loop->heap);
        free_entry(loop, e);
        return rc;
    }
    link_entry(loop, e);
    if (tern_io_turn_attach(loop, e) != TERN_OK)
        TERN_LOG_WARN(loop->ctx, "io", "driver %u cannot resolve its ICE servers", e->id);
    TERN_LOG_DEBUG(loop->ctx, "io", "driver %u drives a pc on loop %u with %zu sockets", e->id,
                   loop->id, e->sock_count);
    /* Drained by the next iteration, not here: callbacks never run inside tern_loop_add_pc. */
    mark_dirty(loop, e);
    return TERN_OK;
}

/* Send what the pc has queued and not yet handed over: after tern_pc_close, its DTLS
 * close_notify (RFC 5246 §7.2.1, kept by DTLS 1.2), so the peer learns at once rather than by
 * its consent timeout. Events stay queued: no callback runs inside tern_loop_remove_pc. */
static void send_queued(tern_loop_t *loop, tern_io_pc_t *e)
{
    tern_transmit_t t;
    for (int i = 0; i < 4 * TERN_IO_BATCH && tern_pc_poll_transmit(e->pc, &t); i++)
        queue_transmit(loop, e, &t);
    if (loop->tx.count > 0 && loop->tx.sock->owner == e)
        tern_io_pc_flush(loop);
}

/* Stop driving an entry. touch_pc: the pc is still alive and may be polled. */
static void remove_entry(tern_loop_t *loop, tern_io_pc_t *e, bool touch_pc)
{
    tern_io_map_remove(&loop->pcs, e->pc);
    e->removed = true;
    tern_io_heap_remove(&loop->heap, &e->timer);
    tern_io_heap_unreserve(&loop->heap);
    unlink_dirty(loop, e);
    unlink_entry(loop, e);
    if (touch_pc) {
        send_queued(loop, e);
        tern_io_turn_drain(loop, e); /* the deallocations of TURN over TCP and TLS */
    } else if (loop->tx.count > 0 && loop->tx.sock->owner == e) {
        tern_io_pc_flush(loop);
    }
    tern_io_turn_detach(loop, e);
    for (size_t i = 0; i < e->sock_count; i++)
        close_sock(loop, &e->socks[i]);
    TERN_LOG_DEBUG(loop->ctx, "io", "driver %u removed", e->id);
    if (loop->in_iteration) {
        e->next_dead = loop->dead;
        loop->dead = e;
    } else {
        free_entry(loop, e);
    }
}

int tern_loop_remove_pc(tern_loop_t *loop, tern_pc_t *pc)
{
    if (!loop || !pc)
        return TERN_ERR_INVALID_ARG;
    tern_io_pc_t *e = tern_io_map_get(&loop->pcs, pc);
    if (!e)
        return TERN_ERR_NOT_FOUND;
    remove_entry(loop, e, true);
    return TERN_OK;
}

void tern_io_pc_free_dead(tern_loop_t *loop)
{
    while (loop->dead) {
        tern_io_pc_t *e = loop->dead;
        loop->dead = e->next_dead;
        free_entry(loop, e);
    }
}

void tern_io_pc_remove_all(tern_loop_t *loop)
{
    /* The application may have freed its pcs already: tern_loop_free never calls into them. */
    while (loop->pc_list)
        remove_entry(loop, loop->pc_list, false);
    tern_io_pc_free_dead(loop);
}
