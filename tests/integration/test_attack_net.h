/* SPDX-License-Identifier: MIT */
/*
 * The network driver of the peer-connection attack tests (test_attack_pc.c,
 * test_attack_turn.c): peer connections on real UDP sockets bound to loopback, driven here
 * through the sans-IO surface (so that a test can reach into a pc, as an attacker with its
 * keys would), trickling candidates to each other, a channel "chat" per pair, and a raw UDP
 * socket for the attacker. Hooks let a test watch every datagram a node sends or receives.
 * Header-only, included by one test file each.
 */
#ifndef TERN_TESTS_TEST_ATTACK_NET_H
#define TERN_TESTS_TEST_ATTACK_NET_H

#include "check.h"
#include "io/io.h"
#include "rtc/rtc.h"
#include "stun/stun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define GIVE_UP_MS 20000
#define MAX_NODES 4

typedef struct node {
    const char *name;
    tern_pc_t *pc;
    int fd;
    tern_addr_t addr;
    struct node *peer;
    tern_dc_t *dc; /* the channel "chat" (valid until its close event) */
    bool dc_open, dc_closed;
    unsigned messages; /* received on dc */
    unsigned dc_errors;
    char dc_error[128]; /* the reason of the last TERN_EV_DC_ERROR */
    /* learnt from this node's own SCTP packets: the tag its peer's association expects */
    uint32_t vtag;
    uint16_t sport, dport;
    bool snoop;          /* send this node's SCTP through its DTLS by hand (to learn the tag) */
    tern_addr_t relayed; /* its relay candidate's address, once gathered */
} node_t;

static tern_ctx_t *ctx;
static node_t *nodes[MAX_NODES];
static size_t node_count;
static int attacker = -1;
static tern_addr_t attacker_addr;
/* what the attacker received: STUN only is allowed */
static unsigned attacker_got, attacker_got_other;

static inline tern_time_t now_us(void)
{
    return tern_io_clock_now();
}

/* A UDP socket on ip ("127.0.0.1"; any 127/8 address works on Linux), ephemeral port. */
static inline int udp_bind_ip(const char *ip, tern_addr_t *out)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
        abort();
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        abort();
    memset(out, 0, sizeof *out);
    out->family = TERN_AF_INET;
    out->port = ntohs(sa.sin_port);
    memcpy(out->ip, &sa.sin_addr, 4);
    return fd;
}

static inline int udp_bind(tern_addr_t *out)
{
    return udp_bind_ip("127.0.0.1", out);
}

/* Hooks: every datagram a node sends (before it leaves) and receives (before the pc). */
static void (*on_node_send)(node_t *n, const tern_transmit_t *t);
static void (*on_node_receive)(node_t *n, const tern_addr_t *from, const uint8_t *data, size_t len);

static inline void send_to(int fd, const tern_addr_t *to, const uint8_t *data, size_t len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(to->port)};
    memcpy(&sa.sin_addr, to->ip, 4);
    (void)sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
}

static inline void node_new(node_t *n, const char *name, const tern_pc_config_t *cfg)
{
    memset(n, 0, sizeof *n);
    n->name = name;
    n->fd = udp_bind(&n->addr);
    if (tern_pc_new(ctx, cfg, now_us(), &n->pc) != TERN_OK ||
        tern_pc_add_local_socket(n->pc, now_us(), &n->addr) != TERN_OK ||
        tern_pc_local_sockets_done(n->pc, now_us()) != TERN_OK)
        abort();
    nodes[node_count++] = n;
}

static inline void node_free(node_t *n)
{
    tern_pc_free(n->pc);
    close(n->fd);
    for (size_t i = 0; i < node_count; i++)
        if (nodes[i] == n) {
            nodes[i] = nodes[--node_count];
            break;
        }
}

static inline void snoop_sctp(node_t *n)
{
    tern_pc_t *pc = n->pc;
    tern_ice_pair_view_t view;
    tern_transmit_t t;
    if (!n->snoop || !pc->sctp || !pc->dtls ||
        tern_dtls_state(pc->dtls) != TERN_DTLS_STATE_CONNECTED ||
        !tern_ice_selected_pair(pc->ice, &view))
        return;
    while (tern_sctp_poll_transmit(pc->sctp, &t)) {
        if (t.len >= 12 && tern_load_u32(t.data + 4) != 0) {
            n->sport = tern_load_u16(t.data);
            n->dport = tern_load_u16(t.data + 2);
            n->vtag = tern_load_u32(t.data + 4);
        }
        (void)tern_dtls_send(pc->dtls, pc->now, t.data, t.len);
    }
}

/* "candidate:F 1 udp P IP PORT typ relay ...": remember IP:PORT. */
static inline void note_relay(node_t *n, const char *cand)
{
    char ip[64];
    unsigned port;
    if (!strstr(cand, " typ relay") ||
        sscanf(cand, "candidate:%*s %*u %*s %*u %63s %u", ip, &port) != 2)
        return;
    char text[96];
    snprintf(text, sizeof text, "%s:%u", ip, port);
    (void)tern_addr_parse(text, &n->relayed);
}

static inline void node_events(node_t *n)
{
    tern_event_t ev;
    while (tern_pc_poll_event(n->pc, &ev)) {
        switch (ev.type) {
        case TERN_EV_ICE_CANDIDATE:
            note_relay(n, ev.u.ice_candidate.candidate);
            if (n->peer)
                (void)tern_pc_add_ice_candidate(n->peer->pc, now_us(), ev.u.ice_candidate.candidate,
                                                ev.u.ice_candidate.mid);
            break;
        case TERN_EV_DATA_CHANNEL:
            n->dc = ev.dc;
            n->dc_open = true;
            break;
        case TERN_EV_DC_OPEN:
            if (ev.dc == n->dc)
                n->dc_open = true;
            break;
        case TERN_EV_DC_MESSAGE:
            if (ev.dc == n->dc)
                n->messages++;
            break;
        case TERN_EV_DC_ERROR:
            n->dc_errors++;
            snprintf(n->dc_error, sizeof n->dc_error, "%s", ev.u.error.reason);
            break;
        case TERN_EV_DC_CLOSE:
            if (ev.dc == n->dc) {
                n->dc = NULL;
                n->dc_closed = true;
            }
            break;
        default:
            break;
        }
    }
}

static inline void node_drain(node_t *n)
{
    for (int round = 0; round < 16; round++) {
        bool moved = false;
        tern_transmit_t t;
        snoop_sctp(n);
        while (tern_pc_poll_transmit(n->pc, &t)) {
            if (on_node_send)
                on_node_send(n, &t);
            send_to(n->fd, &t.remote, t.data, t.len);
            if (tern_addr_equal(&t.remote, &attacker_addr) && t.len && t.data[0] > 3)
                attacker_got_other++; /* counted again on arrival; this is the sender's view */
            moved = true;
            snoop_sctp(n);
        }
        node_events(n);
        if (!moved)
            break;
    }
}

static inline void read_attacker(void)
{
    uint8_t buf[2048];
    ssize_t n;
    while (attacker >= 0 && (n = recv(attacker, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        attacker_got++;
        if (buf[0] > 3)
            attacker_got_other++;
    }
}

/* Run every node (sockets, timers, drains) for up to ms, or until cond holds. */
static inline bool run(int ms, bool (*cond)(void *), void *arg)
{
    int64_t until = now_us() + (int64_t)ms * 1000;
    for (;;) {
        tern_pc_t *pc;
        while ((pc = tern_ctx_poll_pending_pc(ctx)) != NULL)
            (void)pc; /* every node is drained below */
        for (size_t i = 0; i < node_count; i++)
            node_drain(nodes[i]);
        if (cond && cond(arg))
            return true;
        tern_time_t now = now_us();
        if (now >= until)
            return cond == NULL;
        tern_time_t deadline = TERN_MIN(until, tern_ctx_next_deadline(ctx));
        for (size_t i = 0; i < node_count; i++)
            deadline = TERN_MIN(deadline, tern_pc_next_deadline(nodes[i]->pc));
        struct pollfd pfd[MAX_NODES + 1];
        size_t np = 0;
        for (size_t i = 0; i < node_count; i++)
            pfd[np++] = (struct pollfd){.fd = nodes[i]->fd, .events = POLLIN};
        if (attacker >= 0)
            pfd[np++] = (struct pollfd){.fd = attacker, .events = POLLIN};
        int wait_ms = (int)TERN_MAX((deadline - now + 999) / 1000, 0);
        poll(pfd, np, TERN_MIN(wait_ms, 50));
        for (size_t i = 0; i < node_count; i++) {
            uint8_t buf[65536];
            struct sockaddr_in sa;
            socklen_t sl = sizeof sa;
            ssize_t len;
            while ((len = recvfrom(nodes[i]->fd, buf, sizeof buf, MSG_DONTWAIT,
                                   (struct sockaddr *)&sa, &sl)) >= 0) {
                tern_datagram_t d = {.local = nodes[i]->addr, .data = buf, .len = (size_t)len};
                d.remote.family = TERN_AF_INET;
                d.remote.port = ntohs(sa.sin_port);
                memcpy(d.remote.ip, &sa.sin_addr, 4);
                if (on_node_receive)
                    on_node_receive(nodes[i], &d.remote, d.data, d.len);
                tern_pc_handle_input(nodes[i]->pc, now_us(), &d);
                sl = sizeof sa;
            }
        }
        now = now_us();
        tern_ctx_handle_timeout(ctx, now);
        for (size_t i = 0; i < node_count; i++)
            if (tern_pc_next_deadline(nodes[i]->pc) <= now)
                tern_pc_handle_timeout(nodes[i]->pc, now);
    }
}

static inline bool both_open(void *arg)
{
    node_t **p = arg;
    return p[0]->dc_open && p[1]->dc_open && p[0]->dc && p[1]->dc &&
           tern_pc_connection_state(p[0]->pc) == TERN_PC_STATE_CONNECTED &&
           tern_pc_connection_state(p[1]->pc) == TERN_PC_STATE_CONNECTED;
}

/* a offers a channel "chat", b answers; run until both see it open. */
static inline bool connect_pair(node_t *a, node_t *b)
{
    a->peer = b;
    b->peer = a;
    char *offer = NULL, *answer = NULL;
    if (tern_pc_create_data_channel(a->pc, now_us(), "chat", NULL, &a->dc) != TERN_OK ||
        tern_pc_create_offer(a->pc, now_us(), &offer) != TERN_OK ||
        tern_pc_set_local_description(a->pc, now_us(), TERN_SDP_OFFER, offer) != TERN_OK ||
        tern_pc_set_remote_description(b->pc, now_us(), TERN_SDP_OFFER, offer) != TERN_OK ||
        tern_pc_create_answer(b->pc, now_us(), &answer) != TERN_OK ||
        tern_pc_set_local_description(b->pc, now_us(), TERN_SDP_ANSWER, answer) != TERN_OK ||
        tern_pc_set_remote_description(a->pc, now_us(), TERN_SDP_ANSWER, answer) != TERN_OK) {
        tern_free(ctx, offer);
        tern_free(ctx, answer);
        return false;
    }
    tern_free(ctx, offer);
    tern_free(ctx, answer);
    node_t *pair[2] = {a, b};
    return run(GIVE_UP_MS, both_open, pair);
}

typedef struct expect_count {
    node_t *n;
    unsigned want;
} expect_count_t;

static inline bool got_messages(void *arg)
{
    expect_count_t *e = arg;
    return e->n->messages >= e->want;
}

/* n messages from -> to; true once all arrived. */
static inline bool talk(node_t *from, node_t *to, unsigned n)
{
    if (!from->dc || !to->dc)
        return false;
    expect_count_t e = {to, to->messages + n};
    for (unsigned i = 0; i < n; i++)
        if (tern_dc_send_text(from->dc, now_us(), "hello", 5) != TERN_OK)
            return false;
    return run(GIVE_UP_MS, got_messages, &e);
}

/* ---- STUN from the attacker ---- */

static inline size_t build_check(uint8_t *buf, size_t cap, const char *username, const char *key,
                                 bool controlling, uint64_t tie, bool bad_fingerprint)
{
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    uint8_t tid[TERN_STUN_TID_LEN];
    for (size_t i = 0; i < sizeof tid; i++)
        tid[i] = (uint8_t)(rand() & 0xff);
    tern_wbuf_init(&w, NULL, buf, cap);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, tid);
    if (username)
        tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, username);
    tern_stun_put_u32(&sw, TERN_STUN_ATTR_PRIORITY, 0x6e0001ff);
    tern_stun_put_u64(
        &sw, controlling ? TERN_STUN_ATTR_ICE_CONTROLLING : TERN_STUN_ATTR_ICE_CONTROLLED, tie);
    if (key)
        tern_stun_put_integrity(&sw, (const uint8_t *)key, strlen(key));
    tern_stun_put_fingerprint(&sw);
    size_t len = 0;
    if (tern_stun_writer_end(&sw, &len) != TERN_OK)
        abort();
    if (bad_fingerprint)
        buf[len - 1] ^= 1;
    return len;
}

/* Send a check to A and wait for the answer: its error code, 0 for success, -1 for none. */
static inline int check_answer(node_t *a, const uint8_t *req, size_t len, bool *has_integrity)
{
    read_attacker();
    send_to(attacker, &a->addr, req, len);
    int64_t until = now_us() + 500000;
    while (now_us() < until) {
        run(20, NULL, NULL);
        uint8_t buf[2048];
        ssize_t n = recv(attacker, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            continue;
        attacker_got++;
        tern_stun_msg_t m;
        if (tern_stun_parse(buf, (size_t)n, &m) != TERN_OK) {
            attacker_got_other++;
            continue;
        }
        if (memcmp(m.tid, req + 8, TERN_STUN_TID_LEN) != 0)
            continue;
        if (has_integrity)
            *has_integrity = m.present & TERN_STUN_HAS_INTEGRITY;
        return m.msg_class == TERN_STUN_SUCCESS ? 0 : m.error_code;
    }
    return -1;
}

static inline bool selected_is(node_t *a, node_t *b)
{
    tern_pc_pair_info_t info;
    return tern_pc_selected_pair(a->pc, &info) == TERN_OK &&
           tern_addr_equal(&info.remote, &b->addr);
}

#endif
