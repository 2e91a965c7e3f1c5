/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of ice/: the candidate line codec over every browser capture, the priority
 * formulas, and two agents wired through an in-test network with a virtual clock (starting at
 * 1000000) and a seeded rng: connectivity, dual stack, trickle in every order, role conflicts,
 * a check dropped by a filtering NAT and recovered by a triggered check, peer-reflexive
 * candidates behind a NAT, server-reflexive gathering, bad credentials answered 400/401/420
 * without any state change, consent loss and recovery, failure, restart, bounds and close;
 * and ".local" candidates resolved through an in-test mDNS responder that answers as the
 * browsers do (by multicast only): resolution, no answer (prflx still connects), late answers,
 * the cache, IPv6 names, answers that must be ignored, bounds and the lookup cap.
 */
#include "check.h"
#include "guard.h"
#include "ice/ice_agent.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

static tern_ctx_t ctx;
static uint64_t seed;
static tern_time_t now;

static void test_log(void *user, tern_log_level_t level, const char *module, const char *msg)
{
    (void)user;
    fprintf(stderr, "[%d] %s: %s\n", (int)level, module, msg);
}

static tern_addr_t addr(const char *text)
{
    tern_addr_t a;
    if (tern_addr_parse(text, &a) != 0)
        abort();
    return a;
}

/* ------------------------------------------------------------------------------------------ */
/* Candidate lines                                                                            */
/* ------------------------------------------------------------------------------------------ */

static int parse_line(const char *line, size_t len, tern_ice_candidate_t *c)
{
    guarded_t g;
    const char *p = (const char *)guard_copy(&g, line, len);
    int ret = tern_ice_candidate_parse(p, len, c);
    guard_free(&g);
    return ret;
}

static int lines_checked;

static void check_line(const char *line, size_t len)
{
    tern_ice_candidate_t c, again;
    int ret = parse_line(line, len, &c);
    if (ret != 0) {
        printf("# refused: %.*s\n", (int)len, line);
        ok(false);
        return;
    }
    char buf[TERN_ICE_CANDIDATE_STRLEN];
    int n = tern_ice_candidate_format(&c, buf, sizeof buf);
    ok(n > 0);
    ok(parse_line(buf, (size_t)n, &again) == 0 && memcmp(&c, &again, sizeof c) == 0);
    lines_checked++;
}

static void check_file(const char *path, bool sdp)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        ok(false);
        return;
    }
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        if (sdp ? strncmp(line, "a=candidate:", 12) == 0 : strncmp(line, "candidate:", 10) == 0)
            check_line(line, len);
    }
    fclose(f);
}

static void test_candidate_captures(void)
{
    const char *dir = TERN_TEST_DATA "/sdp";
    DIR *d = opendir(dir);
    ok(d != NULL);
    if (!d)
        return;
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n > 11 && strcmp(e->d_name + n - 11, ".candidates") == 0) {
            check_file(path, false);
            files++;
        } else if (n > 4 && strcmp(e->d_name + n - 4, ".sdp") == 0) {
            check_file(path, true);
            files++;
        }
    }
    closedir(d);
    ok(files > 10);
    ok(lines_checked > 50);
    printf("# %d candidate lines from %d files\n", lines_checked, files);
}

static void test_candidate_fields(void)
{
    tern_ice_candidate_t c;
    const char *chrome = "candidate:1076727081 1 udp 2113942271 "
                         "7f6b8c98-9b23-46d8-b9a4-64634663a569.local 56899 typ host generation 0 "
                         "ufrag NtMH network-cost 999";
    eq_int(parse_line(chrome, strlen(chrome), &c), 0);
    eq_str(c.foundation, "1076727081");
    eq_int(c.component, 1);
    eq_int(c.transport, TERN_TRANSPORT_UDP);
    ok(c.priority == 2113942271u);
    eq_str(c.hostname, "7f6b8c98-9b23-46d8-b9a4-64634663a569.local");
    eq_int(c.addr.family, TERN_AF_UNSPEC);
    eq_int(c.addr.port, 56899);
    eq_int(c.type, TERN_ICE_CAND_HOST);

    const char *ff = "a=candidate:3 2 TCP 2105524478 ::1 9 typ host tcptype active\r\n";
    eq_int(parse_line(ff, strlen(ff), &c), 0);
    eq_int(c.transport, TERN_TRANSPORT_TCP);
    eq_int(c.tcptype, TERN_ICE_TCPTYPE_ACTIVE);
    eq_int(c.component, 2);
    eq_int(c.addr.family, TERN_AF_INET6);
    eq_int(c.addr.port, 9);

    const char *srflx = "candidate:842163049 1 udp 1677729535 203.0.113.7 61234 typ srflx raddr "
                        "192.168.1.10 rport 50000 generation 0 network-cost 999";
    eq_int(parse_line(srflx, strlen(srflx), &c), 0);
    eq_int(c.type, TERN_ICE_CAND_SRFLX);
    tern_addr_t want = addr("192.168.1.10:50000");
    ok(tern_addr_equal(&c.related, &want));
    char buf[TERN_ICE_CANDIDATE_STRLEN];
    int n = tern_ice_candidate_format(&c, buf, sizeof buf);
    eq_str(buf, "candidate:842163049 1 udp 1677729535 203.0.113.7 61234 typ srflx raddr "
                "192.168.1.10 rport 50000");
    eq_int(n, (int)strlen(buf));
    eq_int(tern_ice_candidate_format(&c, buf, 20), TERN_ERR_TOO_LARGE);

    /* Chrome hides a relay's base as 0.0.0.0 or an mDNS name: accepted. */
    const char *hidden = "candidate:1 1 udp 25108223 198.51.100.1 3478 typ relay raddr "
                         "abc.local rport 0";
    eq_int(parse_line(hidden, strlen(hidden), &c), 0);
    eq_int(c.related.family, TERN_AF_UNSPEC);
    eq_int(c.type, TERN_ICE_CAND_RELAY);
}

static void test_candidate_refused(void)
{
    static const char *bad[] = {
        "",
        "candidate:",
        "candidate:1 1 udp 1 1.2.3.4 5 typ",
        "candidate:1 1 udp 1 1.2.3.4 5 host",
        "candidate:1 1 udp 1 1.2.3.4 5 typ bogus",
        "candidate:1 0 udp 1 1.2.3.4 5 typ host",
        "candidate:1 257 udp 1 1.2.3.4 5 typ host",
        "candidate:1 1 sctp 1 1.2.3.4 5 typ host",
        "candidate:1 1 udp 4294967296 1.2.3.4 5 typ host",
        "candidate:1 1 udp 1 1.2.3.4 65536 typ host",
        "candidate:1 1 udp 1 1.2.3.4 -5 typ host",
        "candidate:1 1 udp x 1.2.3.4 5 typ host",
        "candidate:f@o 1 udp 1 1.2.3.4 5 typ host",
        "candidate:123456789012345678901234567890123 1 udp 1 1.2.3.4 5 typ host",
        "candidate:1 1 udp 1 bad..name 5 typ host",
        "candidate:1 1 udp 1 1.2.3.4 5 typ host generation",
        "candidate:1 1 udp 1 1.2.3.4 5 typ srflx raddr 1.2.3.4 rport 70000",
        "candidate:1 1 udp 1 1.2.3.4 5 typ host tcptype active",
        "candidate:1 1 tcp 1 1.2.3.4 5 typ host tcptype sideways",
        "a=candidat:1 1 udp 1 1.2.3.4 5 typ host",
        "candidate:1 1 udp 1 [::1] 5 typ host",
    };
    tern_ice_candidate_t c;
    memset(&c, 0x5A, sizeof c);
    tern_ice_candidate_t before = c;
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad); i++) {
        int ret = parse_line(bad[i], strlen(bad[i]), &c);
        if (ret != TERN_ERR_PARSE)
            printf("# accepted: %s\n", bad[i]);
        eq_int(ret, TERN_ERR_PARSE);
    }
    ok(memcmp(&c, &before, sizeof c) == 0); /* failures leave out untouched */
    /* An embedded NUL is refused, not cut. */
    eq_int(tern_ice_candidate_parse("candidate:1 1 udp 1 1.2.3.4 5 typ host\0x", 40, &c),
           TERN_ERR_PARSE);
    eq_int(tern_ice_candidate_parse(NULL, 0, &c), TERN_ERR_INVALID_ARG);
}

static void test_priorities(void)
{
    /* RFC 8445 §5.1.2.1 with the captures' values: Chrome and Firefox host priorities. */
    ok(tern_ice_priority(TERN_ICE_CAND_HOST, 65535, 1) == 2130706431u);
    ok(tern_ice_priority(TERN_ICE_CAND_HOST, 0x7F1E, 1) == 2122260223u);
    ok(tern_ice_priority(TERN_ICE_CAND_HOST, 0x7E00, 1) == 2122187007u);
    ok(tern_ice_priority(TERN_ICE_CAND_HOST, 0x7E00, 2) == 2122187006u);
    ok(tern_ice_priority(TERN_ICE_CAND_SRFLX, 65535, 1) == (100u << 24 | 65535u << 8 | 255u));
    ok(tern_ice_priority(TERN_ICE_CAND_PRFLX, 0, 1) == (110u << 24 | 255u));
    ok(tern_ice_priority(TERN_ICE_CAND_RELAY, 1, 256) == (1u << 8));
    eq_str(tern_ice_cand_type_name(TERN_ICE_CAND_PRFLX), "prflx");
}

/* ------------------------------------------------------------------------------------------ */
/* A simulated network                                                                        */
/* ------------------------------------------------------------------------------------------ */

#define MAX_PEERS 3
#define MAX_PKTS 4096

typedef struct peer {
    tern_ice_t *ice;
    tern_ice_candidate_t cands[16];
    int cand_count;
    bool gathering_complete;
    tern_ice_state_t states[32];
    int state_count;
    int selected_events;
    int role_events;
    tern_addr_t nat_private; /* a 1:1 NAT maps this address ... */
    tern_addr_t nat_public;  /* ... to this one */
    bool nat_filtering;      /* inbound only from addresses the peer has sent to */
    tern_addr_t permitted[16];
    int permitted_count;
} peer_t;

typedef struct packet {
    tern_time_t at;
    tern_datagram_t d;
    uint8_t data[1500];
} packet_t;

static peer_t peers[MAX_PEERS];
static packet_t *pkts;
static int pkt_count;
static tern_time_t one_way_us = 10000;
/* A test may drop packets: return true to drop. */
static bool (*drop_rule)(int from, const tern_transmit_t *t);
static tern_addr_t stun_server; /* answered by the network itself when set */
static int stun_server_hits;
static bool stun_server_silent;
static void answer_mdns(const tern_transmit_t *t); /* the in-test mDNS responder, below */

static peer_t *peer_by_local(const tern_addr_t *a, int *index)
{
    for (int i = 0; i < MAX_PEERS; i++) {
        if (!peers[i].ice)
            continue;
        for (size_t l = 0; l < peers[i].ice->local_count; l++) {
            /* As the kernel does, a destination without a zone reaches the zoned socket. */
            if (peers[i].ice->locals[l].c.type == TERN_ICE_CAND_HOST &&
                ice_remote_addr_match(&peers[i].ice->locals[l].base, a)) {
                *index = i;
                return &peers[i];
            }
        }
    }
    return NULL;
}

static void enqueue(const tern_addr_t *from, const tern_addr_t *to, const uint8_t *data, size_t len,
                    tern_time_t at)
{
    if (pkt_count >= MAX_PKTS || len > sizeof pkts[0].data)
        abort();
    packet_t *p = &pkts[pkt_count++];
    p->at = at;
    p->d.remote = *from;
    p->d.local = *to;
    memcpy(p->data, data, len);
    p->d.data = p->data;
    p->d.len = len;
}

static void answer_stun_server(const tern_addr_t *from, const tern_transmit_t *t)
{
    tern_stun_msg_t m;
    stun_server_hits++;
    if (stun_server_silent || tern_stun_parse(t->data, t->len, &m) != 0 ||
        m.msg_class != TERN_STUN_REQUEST)
        return;
    uint8_t buf[128];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_SUCCESS, TERN_STUN_BINDING, m.tid);
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, from);
    tern_stun_put_fingerprint(&sw);
    size_t len;
    tern_stun_writer_end(&sw, &len);
    enqueue(&stun_server, from, buf, len, now + 2 * one_way_us);
}

/* Route one datagram a peer sends: NAT on the way out, the STUN server, NAT on the way in. */
static void route(int from, const tern_transmit_t *t)
{
    peer_t *src = &peers[from];
    tern_addr_t source = t->local;
    if (src->nat_public.family && tern_addr_equal(&source, &src->nat_private)) {
        source = src->nat_public;
        if (src->permitted_count < 16)
            src->permitted[src->permitted_count++] = t->remote;
    }
    if (drop_rule && drop_rule(from, t))
        return;
    if (stun_server.family && tern_addr_equal(&t->remote, &stun_server)) {
        answer_stun_server(&source, t);
        return;
    }
    if (t->remote.family == TERN_AF_INET && t->remote.ip[0] == 224 && t->remote.port == 5353) {
        answer_mdns(t);
        return;
    }
    enqueue(&source, &t->remote, t->data, t->len, now + one_way_us);
}

/* Inbound NAT: public address back to private, with the filtering the NAT does. */
static bool deliver_to(packet_t *p, int *index)
{
    for (int i = 0; i < MAX_PEERS; i++) {
        peer_t *dst = &peers[i];
        if (!dst->ice || !dst->nat_public.family || !tern_addr_equal(&p->d.local, &dst->nat_public))
            continue;
        if (dst->nat_filtering) {
            bool allowed = false;
            for (int k = 0; k < dst->permitted_count; k++)
                allowed |= tern_addr_equal(&dst->permitted[k], &p->d.remote);
            if (!allowed)
                return false;
        }
        p->d.local = dst->nat_private;
        *index = i;
        return true;
    }
    return peer_by_local(&p->d.local, index) != NULL;
}

static void record_event(peer_t *p, const tern_ice_event_t *e)
{
    switch (e->type) {
    case TERN_ICE_EV_LOCAL_CANDIDATE:
        if (p->cand_count < 16)
            p->cands[p->cand_count++] = *e->u.candidate;
        break;
    case TERN_ICE_EV_GATHERING_COMPLETE:
        p->gathering_complete = true;
        break;
    case TERN_ICE_EV_STATE:
        if (p->state_count < 32)
            p->states[p->state_count++] = e->u.state;
        break;
    case TERN_ICE_EV_SELECTED_PAIR:
        p->selected_events++;
        ok(e->u.pair.local != NULL && e->u.pair.remote != NULL);
        break;
    case TERN_ICE_EV_ROLE_CHANGED:
        p->role_events++;
        break;
    default:
        ok(false);
    }
}

static void drain(int i)
{
    peer_t *p = &peers[i];
    tern_transmit_t t;
    tern_ice_event_t e;
    while (tern_ice_poll_transmit(p->ice, &t))
        route(i, &t);
    while (tern_ice_poll_event(p->ice, &e))
        record_event(p, &e);
}

static void drain_all(void)
{
    for (int i = 0; i < MAX_PEERS; i++)
        if (peers[i].ice)
            drain(i);
}

/* Run the network and the agents until `until` (virtual time). */
static void run_until(tern_time_t until)
{
    int guard = 0;
    drain_all();
    for (;;) {
        tern_time_t next = TERN_TIME_NEVER;
        for (int i = 0; i < MAX_PEERS; i++)
            if (peers[i].ice)
                next = TERN_MIN(next, tern_ice_next_deadline(peers[i].ice));
        for (int k = 0; k < pkt_count; k++)
            next = TERN_MIN(next, pkts[k].at);
        if (next > until)
            break;
        if (next < now) {
            ok(next >= now); /* deadlines are never in the past */
            next = now;
        }
        if (++guard > 200000) {
            ok(!"busy loop");
            break;
        }
        now = next;
        /* Deliver due packets in order. */
        for (int k = 0; k < pkt_count;) {
            if (pkts[k].at > now) {
                k++;
                continue;
            }
            packet_t p = pkts[k];
            memmove(&pkts[k], &pkts[k + 1], (size_t)(pkt_count - k - 1) * sizeof pkts[0]);
            pkt_count--;
            p.d.data = p.data;
            if (p.d.local.family == TERN_AF_INET && p.d.local.ip[0] == 224) {
                /* Multicast: every agent's mDNS socket gets it. */
                for (int i = 0; i < MAX_PEERS; i++) {
                    if (!peers[i].ice)
                        continue;
                    eq_int(tern_ice_handle_input(peers[i].ice, now, &p.d), 0);
                    drain(i);
                }
                continue;
            }
            int dst;
            if (deliver_to(&p, &dst)) {
                /* The socket it arrives on has the zone. */
                for (size_t j = 0; j < peers[dst].ice->local_count; j++)
                    if (ice_remote_addr_match(&peers[dst].ice->locals[j].base, &p.d.local))
                        p.d.local = peers[dst].ice->locals[j].base;
                eq_int(tern_ice_handle_input(peers[dst].ice, now, &p.d), 0);
                drain(dst);
            }
        }
        for (int i = 0; i < MAX_PEERS; i++) {
            if (peers[i].ice && tern_ice_next_deadline(peers[i].ice) <= now) {
                eq_int(tern_ice_handle_timeout(peers[i].ice, now), 0);
                drain(i);
            }
        }
    }
    now = TERN_MAX(now, until);
}

static tern_ice_config_t default_cfg(bool controlling)
{
    tern_ice_config_t cfg = {.controlling = controlling};
    return cfg;
}

static void setup_peer(int i, const tern_ice_config_t *cfg, const char **addrs, int n)
{
    peer_t *p = &peers[i];
    memset(p, 0, sizeof *p);
    eq_int(tern_ice_new(&ctx, cfg, now, &p->ice), 0);
    for (int k = 0; k < n; k++) {
        tern_addr_t a = addr(addrs[k]);
        eq_int(tern_ice_add_local_address(p->ice, now, &a), 0);
    }
    eq_int(tern_ice_local_addresses_done(p->ice, now), 0);
    drain(i);
}

static void give_credentials(int from, int to)
{
    eq_int(tern_ice_set_remote_credentials(peers[to].ice, now,
                                           tern_ice_local_ufrag(peers[from].ice),
                                           tern_ice_local_pwd(peers[from].ice)),
           0);
}

/* Candidates travel as text, as through signaling (a zone or anything else not in the line is
 * lost on the way). */
static void give_candidates(int from, int to)
{
    for (int k = 0; k < peers[from].cand_count; k++) {
        char line[TERN_ICE_CANDIDATE_STRLEN];
        tern_ice_candidate_t c;
        ok(tern_ice_candidate_format(&peers[from].cands[k], line, sizeof line) > 0);
        eq_int(tern_ice_candidate_parse(line, strlen(line), &c), 0);
        eq_int(tern_ice_add_remote_candidate(peers[to].ice, now, &c), 0);
    }
}

static void exchange_all(void)
{
    give_credentials(0, 1);
    give_credentials(1, 0);
    give_candidates(0, 1);
    give_candidates(1, 0);
    eq_int(tern_ice_remote_candidates_done(peers[0].ice, now), 0);
    eq_int(tern_ice_remote_candidates_done(peers[1].ice, now), 0);
}

static void reset_world(void)
{
    for (int i = 0; i < MAX_PEERS; i++) {
        tern_ice_free(peers[i].ice);
        memset(&peers[i], 0, sizeof peers[i]);
    }
    pkt_count = 0;
    drop_rule = NULL;
    one_way_us = 10000;
    memset(&stun_server, 0, sizeof stun_server);
    stun_server_hits = 0;
    stun_server_silent = false;
    now = 1000000;
    seed = 42;
}

static tern_ice_state_t state_of(int i)
{
    return tern_ice_state(peers[i].ice);
}

static bool saw_state(int i, tern_ice_state_t s)
{
    for (int k = 0; k < peers[i].state_count; k++)
        if (peers[i].states[k] == s)
            return true;
    return false;
}

static void expect_selected(int i, const char *local, const char *remote)
{
    tern_ice_pair_view_t v;
    ok(tern_ice_selected_pair(peers[i].ice, &v));
    tern_addr_t l = addr(local), r = addr(remote);
    ok(tern_addr_equal(&v.local_socket, &l));
    ok(tern_addr_equal(&v.remote_addr, &r));
}

/* ------------------------------------------------------------------------------------------ */
/* Agent scenarios                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void test_connect_basic(void)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    ok(peers[0].gathering_complete && peers[1].gathering_complete);
    eq_int(peers[0].cand_count, 1);
    eq_int(peers[0].cands[0].type, TERN_ICE_CAND_HOST);
    eq_int(tern_ice_gathering_state(peers[0].ice), TERN_ICE_GATHERING_COMPLETE);
    eq_int(strlen(tern_ice_local_ufrag(peers[0].ice)), 16);
    eq_int(strlen(tern_ice_local_pwd(peers[0].ice)), 32);
    eq_int(state_of(0), TERN_ICE_STATE_NEW);
    tern_time_t start = now;
    exchange_all();
    while (state_of(1) != TERN_ICE_STATE_COMPLETED && now < start + 2000000)
        run_until(now + 1000);
    printf("# completed after %lld ms\n", (long long)(now - start) / 1000);
    ok(now - start <= 100000);
    run_until(now + 1000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    ok(saw_state(0, TERN_ICE_STATE_CHECKING));
    expect_selected(0, "10.0.0.1:1000", "10.0.0.2:2000");
    expect_selected(1, "10.0.0.2:2000", "10.0.0.1:1000");
    tern_ice_pair_view_t v;
    ok(tern_ice_selected_pair(peers[1].ice, &v) && v.nominated);
    ok(v.rtt_us == 20000);
    ok(tern_ice_is_controlling(peers[0].ice) && !tern_ice_is_controlling(peers[1].ice));
    /* Fast: a host pair on a 20 ms RTT path completes in a few round trips. */
    ok(peers[0].ice->stats.checks_sent <= 4);

    /* Data goes on the selected pair. */
    eq_int(tern_ice_send(peers[0].ice, now, (const uint8_t *)"dtls", 4), 0);
    tern_transmit_t t;
    ok(tern_ice_poll_transmit(peers[0].ice, &t));
    tern_addr_t to = addr("10.0.0.2:2000");
    ok(t.len == 4 && tern_addr_equal(&t.remote, &to));
    tern_datagram_t d = {.local = to, .remote = addr("10.0.0.1:1000"), .data = t.data, .len = 4};
    ok(tern_ice_accepts(peers[1].ice, &d));
    d.remote = addr("10.9.9.9:1");
    ok(!tern_ice_accepts(peers[1].ice, &d));

    /* Consent keeps it completed for a long time. */
    run_until(now + 60000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    ok(peers[0].ice->stats.checks_sent > 10);
    ok(!saw_state(0, TERN_ICE_STATE_DISCONNECTED));
}

static void test_dual_stack(void)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000", "[2001:db8::1]:1000"};
    const char *b[] = {"10.0.0.2:2000", "[2001:db8::2]:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 2);
    setup_peer(1, &cb, b, 2);
    /* RFC 8421: IPv6 gets the higher local preference. */
    ok(peers[0].cands[1].priority > peers[0].cands[0].priority);
    ok(strcmp(peers[0].cands[0].foundation, peers[0].cands[1].foundation) != 0);
    exchange_all();
    run_until(now + 2000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    expect_selected(0, "[2001:db8::1]:1000", "[2001:db8::2]:2000");
    expect_selected(1, "[2001:db8::2]:2000", "[2001:db8::1]:1000");
    eq_int(peers[0].ice->pair_count, 2); /* no cross-family pairs */
    /* The IPv4 pair (trickled first) works first and is selected, then the better IPv6 pair,
     * nominated at once since nothing better can come: three selected-pair events. */
    eq_int(peers[0].selected_events, 3);
}

static void test_pair_priority(void)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000"};
    tern_ice_config_t ca = default_cfg(true);
    setup_peer(0, &ca, a, 1);
    tern_ice_candidate_t r = {.component = 1, .priority = 1000, .addr = addr("10.0.0.2:2000")};
    snprintf(r.foundation, sizeof r.foundation, "x");
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &r), 0);
    uint64_t g = peers[0].ice->locals[0].c.priority, d = 1000;
    /* RFC 8445 §6.1.2.3 */
    ok(peers[0].ice->pairs[0].priority == (d << 32) + 2 * g + 1);
    eq_int(tern_ice_set_controlling(peers[0].ice, false), 0);
    ok(peers[0].ice->pairs[0].priority == (d << 32) + 2 * g + 0);
}

static void test_trickle_candidates_first(void)
{
    /* Remote candidates before the remote credentials, both ways, trickled late. */
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    give_candidates(0, 1);
    give_candidates(1, 0);
    run_until(now + 500000);
    eq_int(state_of(0), TERN_ICE_STATE_NEW); /* no credentials, no checks */
    eq_int(peers[0].ice->stats.checks_sent, 0);
    give_credentials(0, 1);
    give_credentials(1, 0);
    run_until(now + 2000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
}

static void test_trickle_checks_before_credentials(void)
{
    /*
     * B gets A's credentials late: A's checks reach B first, B answers them (it only needs its
     * own password) and keeps them as triggered checks until A's credentials arrive.
     */
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    give_credentials(1, 0);
    give_candidates(1, 0);
    run_until(now + 300000);
    ok(peers[1].ice->stats.checks_received >= 1);
    eq_int(peers[1].ice->pair_count, 1); /* learnt as peer-reflexive */
    eq_int(peers[1].ice->remotes[0].c.type, TERN_ICE_CAND_PRFLX);
    ok(peers[1].ice->trig_count == 1);
    eq_int(peers[1].ice->stats.checks_sent, 0);
    /* A's own checks succeeded already, nomination included (B answers without A's
     * credentials): A is completed, B waits. */
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_NEW);
    tern_time_t t0 = now;
    give_credentials(0, 1);
    run_until(now + 100000);
    /* The queued triggered check goes at once: completed within a round trip or two. */
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    ok(now - t0 <= 100000);
    /* The signaled candidate arriving afterwards replaces the prflx one. */
    give_candidates(0, 1);
    eq_int(peers[1].ice->remotes[0].c.type, TERN_ICE_CAND_HOST);
    eq_int(peers[1].ice->remote_count, 1);
    run_until(now + 1000000);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
}

static void test_trickle_end_of_candidates_failed(void)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    give_credentials(1, 0);
    tern_ice_free(peers[1].ice); /* the peer is gone: nothing answers */
    peers[1].ice = NULL;
    tern_ice_candidate_t r = peers[1].cands[0];
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &r), 0);
    eq_int(tern_ice_remote_candidates_done(peers[0].ice, now), 0);
    /* The same candidate again after end-of-candidates (SDP and trickle both carry it). */
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &r), 0);
    eq_int(peers[0].ice->remote_count, 1);
    run_until(now + 5000000);
    eq_int(state_of(0), TERN_ICE_STATE_CHECKING);
    run_until(now + 6000000);
    /* The only pair failed after its retransmissions (~9.5 s): failed. */
    eq_int(state_of(0), TERN_ICE_STATE_FAILED);
    eq_int(tern_ice_send(peers[0].ice, now, (const uint8_t *)"x", 1), TERN_ERR_INVALID_STATE);
    ok(peers[0].ice->stats.retransmissions >= 5);
    eq_int(tern_ice_next_deadline(peers[0].ice), TERN_TIME_NEVER);
}

static void test_role_conflict(bool both_controlling, bool a_wins)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(both_controlling), cb = default_cfg(both_controlling);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    /* Both orders of the tie-breakers: A's check meets B's role (a 487 answer, or B yields). */
    peers[0].ice->tie_breaker = a_wins ? 900 : 100;
    peers[1].ice->tie_breaker = a_wins ? 100 : 900;
    exchange_all();
    run_until(now + 3000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    /* Exactly one controls now, and the one that switched said so. */
    ok(tern_ice_is_controlling(peers[0].ice) != tern_ice_is_controlling(peers[1].ice));
    eq_int(peers[0].role_events + peers[1].role_events, 1);
    ok(peers[0].ice->stats.role_conflicts + peers[1].ice->stats.role_conflicts == 1);
    /* The larger tie-breaker takes the controlling role (RFC 8445 §7.3.1.1). */
    ok(tern_ice_is_controlling(peers[a_wins ? 0 : 1].ice));
    expect_selected(0, "10.0.0.1:1000", "10.0.0.2:2000");
}

static void test_role_conflict_controlling(void)
{
    test_role_conflict(true, true);
    test_role_conflict(true, false);
}

static void test_role_conflict_controlled(void)
{
    test_role_conflict(false, true);
    test_role_conflict(false, false);
}

static void test_triggered_recovers_drop(void)
{
    /*
     * A sits behind a filtering NAT: B's first check to A's public address is dropped. A's own
     * check opens the NAT; B answers it and sends a triggered check, which gets through. B's
     * pair succeeds within a round trip, long before its own check's retransmission (500 ms).
     */
    reset_world();
    const char *a[] = {"192.168.1.2:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    peers[0].nat_private = addr("192.168.1.2:1000");
    peers[0].nat_public = addr("203.0.113.1:40000");
    peers[0].nat_filtering = true;
    /* A's public address as a srflx candidate for B; B's host for A (given later). */
    tern_ice_candidate_t srflx = {.component = 1,
                                  .type = TERN_ICE_CAND_SRFLX,
                                  .priority = tern_ice_priority(TERN_ICE_CAND_SRFLX, 65535, 1),
                                  .addr = addr("203.0.113.1:40000"),
                                  .related = addr("192.168.1.2:1000")};
    snprintf(srflx.foundation, sizeof srflx.foundation, "7");
    give_credentials(0, 1);
    give_credentials(1, 0);
    eq_int(tern_ice_add_remote_candidate(peers[1].ice, now, &srflx), 0);
    run_until(now + 100000); /* B's first check dies in A's NAT */
    ok(peers[1].ice->stats.checks_sent == 1);
    eq_int(state_of(1), TERN_ICE_STATE_CHECKING);
    tern_time_t t0 = now;
    give_candidates(1, 0);
    run_until(t0 + 150000);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(peers[1].ice->stats.retransmissions, 0); /* no RTO was needed */
    tern_ice_pair_view_t v;
    ok(tern_ice_selected_pair(peers[0].ice, &v));
    /* A learnt its public address as a local peer-reflexive candidate. */
    eq_int(v.local->type, TERN_ICE_CAND_PRFLX);
    tern_addr_t pub = addr("203.0.113.1:40000");
    ok(tern_addr_equal(&v.local->addr, &pub));
    tern_addr_t base = addr("192.168.1.2:1000");
    ok(tern_addr_equal(&v.local_socket, &base));
}

static void test_prflx_behind_nat(void)
{
    /* B never hears of A's candidates: it learns A's NAT address from A's checks. */
    reset_world();
    const char *a[] = {"192.168.1.2:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(false), cb = default_cfg(true);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    peers[0].nat_private = addr("192.168.1.2:1000");
    peers[0].nat_public = addr("203.0.113.1:40000");
    give_credentials(0, 1);
    give_credentials(1, 0);
    give_candidates(1, 0);
    run_until(now + 2000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    tern_ice_pair_view_t v;
    ok(tern_ice_selected_pair(peers[1].ice, &v));
    eq_int(v.remote->type, TERN_ICE_CAND_PRFLX);
    tern_addr_t pub = addr("203.0.113.1:40000");
    ok(tern_addr_equal(&v.remote_addr, &pub));
    ok(v.nominated);
}

static void test_srflx_gathering(void)
{
    reset_world();
    stun_server = addr("198.51.100.9:3478");
    peers[0].nat_private = addr("192.168.1.2:1000");
    peers[0].nat_public = addr("203.0.113.1:40000");
    tern_ice_config_t ca = default_cfg(true);
    peer_t *p = &peers[0];
    eq_int(tern_ice_new(&ctx, &ca, now, &p->ice), 0);
    eq_int(tern_ice_add_stun_server(p->ice, now, &stun_server), 0);
    tern_addr_t host = addr("192.168.1.2:1000"), v6 = addr("[2001:db8::5]:1000");
    eq_int(tern_ice_add_local_address(p->ice, now, &host), 0);
    eq_int(tern_ice_add_local_address(p->ice, now, &v6), 0);
    eq_int(tern_ice_local_addresses_done(p->ice, now), 0);
    drain(0);
    ok(!p->gathering_complete); /* waiting for the server */
    eq_int(tern_ice_gathering_state(p->ice), TERN_ICE_GATHERING_GATHERING);
    run_until(now + 100000);
    ok(p->gathering_complete);
    eq_int(stun_server_hits, 1); /* IPv4 only: the server is IPv4 */
    eq_int(p->cand_count, 3);
    eq_int(p->cands[2].type, TERN_ICE_CAND_SRFLX);
    tern_addr_t pub = addr("203.0.113.1:40000");
    ok(tern_addr_equal(&p->cands[2].addr, &pub));
    ok(tern_addr_equal(&p->cands[2].related, &host));
    ok(p->cands[2].priority < p->cands[0].priority);
    eq_int(tern_ice_add_stun_server(p->ice, now, &stun_server), TERN_ERR_INVALID_STATE);

    /* A server that never answers holds gathering for about three seconds, no more. */
    reset_world();
    stun_server = addr("198.51.100.9:3478");
    stun_server_silent = true;
    p = &peers[0];
    eq_int(tern_ice_new(&ctx, &ca, now, &p->ice), 0);
    eq_int(tern_ice_add_local_address(p->ice, now, &host), 0);
    eq_int(tern_ice_add_stun_server(p->ice, now, &stun_server), 0);
    eq_int(tern_ice_local_addresses_done(p->ice, now), 0);
    run_until(now + 2900000);
    ok(!p->gathering_complete);
    run_until(now + 500000);
    ok(p->gathering_complete);
    eq_int(stun_server_hits, 3);
}

/* Send a hand-made Binding request to peer 1 and return its answer's parsed copy. */
static uint8_t answer_buf[1024];

static int request_answer(const char *username, const char *pwd, bool unknown_attr,
                          tern_stun_msg_t *answer)
{
    uint8_t buf[512], tid[12] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, tid);
    if (username)
        tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, username);
    tern_stun_put_u32(&sw, TERN_STUN_ATTR_PRIORITY, 12345);
    tern_stun_put_u64(&sw, TERN_STUN_ATTR_ICE_CONTROLLING, 1);
    if (unknown_attr)
        tern_stun_put_u32(&sw, 0x0777, 0);
    if (pwd)
        tern_stun_put_integrity(&sw, (const uint8_t *)pwd, strlen(pwd));
    tern_stun_put_fingerprint(&sw);
    size_t len;
    tern_stun_writer_end(&sw, &len);
    tern_datagram_t d = {
        .local = addr("10.0.0.2:2000"), .remote = addr("10.0.0.66:6666"), .data = buf, .len = len};
    eq_int(tern_ice_handle_input(peers[1].ice, now, &d), 0);
    tern_transmit_t t;
    if (!tern_ice_poll_transmit(peers[1].ice, &t))
        return -1;
    memcpy(answer_buf, t.data, t.len);
    if (tern_stun_parse(answer_buf, t.len, answer) != 0)
        return -1;
    return answer->msg_class == TERN_STUN_ERROR ? answer->error_code : 0;
}

static void test_bad_credentials(void)
{
    reset_world();
    const char *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t cb = default_cfg(false);
    setup_peer(1, &cb, b, 1);
    eq_int(tern_ice_set_local_credentials(peers[1].ice, "bbbb", "bbbbbbbbbbbbbbbbbbbbbb"), 0);
    tern_stun_msg_t m;
    const char *pwd = "bbbbbbbbbbbbbbbbbbbbbb";
    eq_int(request_answer("bbbb:aaaa", "wrong-password", false, &m), 401);
    ok(!(m.present & TERN_STUN_HAS_INTEGRITY));
    eq_int(request_answer("cccc:aaaa", pwd, false, &m), 401);
    eq_int(request_answer("bbbbaaaa", pwd, false, &m), 401);
    eq_int(request_answer(NULL, pwd, false, &m), 400);
    eq_int(request_answer("bbbb:aaaa", NULL, false, &m), 400);
    /* Nothing changed: no pair, no candidate, no check, still new; and credentials can change. */
    eq_int(peers[1].ice->pair_count, 0);
    eq_int(peers[1].ice->remote_count, 0);
    eq_int(state_of(1), TERN_ICE_STATE_NEW);
    ok(peers[1].ice->stats.dropped == 5);
    ok(!peers[1].ice->checks_started);
    /* Unknown comprehension-required attribute: 420 naming it, authenticated. */
    eq_int(request_answer("bbbb:aaaa", pwd, true, &m), 420);
    eq_int(m.unknown_attributes_count, 1);
    eq_int(m.unknown_attributes[0], 0x0777);
    eq_int(tern_stun_check_integrity(&m, (const uint8_t *)pwd, strlen(pwd)), 0);
    eq_int(peers[1].ice->pair_count, 0);
    /* The right credentials: success with our mapped address, authenticated, fingerprinted. */
    eq_int(request_answer("bbbb:aaaa", pwd, false, &m), 0);
    eq_int(m.msg_class, TERN_STUN_SUCCESS);
    tern_addr_t src = addr("10.0.0.66:6666");
    ok(tern_addr_equal(&m.xor_mapped_address, &src));
    eq_int(tern_stun_check_integrity(&m, (const uint8_t *)pwd, strlen(pwd)), 0);
    eq_int(tern_stun_check_fingerprint(&m), 0);
    eq_int(peers[1].ice->pair_count, 1);
    eq_int(tern_ice_set_local_credentials(peers[1].ice, "dddd", "dddddddddddddddddddddd"),
           TERN_ERR_INVALID_STATE);
    /* A response to no transaction of ours, or a corrupted datagram, is dropped. */
    uint64_t dropped = peers[1].ice->stats.dropped;
    tern_datagram_t d = {.local = addr("10.0.0.2:2000"),
                         .remote = addr("10.0.0.66:6666"),
                         .data = answer_buf,
                         .len = m.len};
    eq_int(tern_ice_handle_input(peers[1].ice, now, &d), 0);
    d.len = 7;
    eq_int(tern_ice_handle_input(peers[1].ice, now, &d), 0);
    ok(peers[1].ice->stats.dropped == dropped + 2);
    eq_int(tern_ice_handle_input(peers[1].ice, now, NULL), TERN_ERR_INVALID_ARG);
}

static void test_forged_response_ignored(void)
{
    /* An answer with the right transaction id but a wrong MESSAGE-INTEGRITY changes nothing. */
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    give_credentials(1, 0);
    give_candidates(1, 0);
    tern_transmit_t t;
    ok(tern_ice_poll_transmit(peers[0].ice, &t));
    tern_stun_msg_t req;
    eq_int(tern_stun_parse(t.data, t.len, &req), 0);
    ok(req.present & TERN_STUN_HAS_ICE_CONTROLLING);
    ok(req.present & TERN_STUN_HAS_PRIORITY);
    uint8_t buf[256];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_SUCCESS, TERN_STUN_BINDING, req.tid);
    tern_addr_t mapped = addr("10.0.0.1:1000");
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &mapped);
    tern_stun_put_integrity(&sw, (const uint8_t *)"forged", 6);
    size_t len;
    tern_stun_writer_end(&sw, &len);
    tern_datagram_t d = {.local = t.local, .remote = t.remote, .data = buf, .len = len};
    eq_int(tern_ice_handle_input(peers[0].ice, now, &d), 0);
    eq_int(peers[0].ice->pairs[0].state, PAIR_IN_PROGRESS);
    ok(!tern_ice_selected_pair(peers[0].ice, &(tern_ice_pair_view_t){0}));
    ok(peers[0].ice->stats.dropped == 1);
    ok(tern_ice_accepts(peers[0].ice, &d)); /* it names our transaction */
}

static void test_renomination(void)
{
    /* The controlling peer (Chrome does this) nominates another pair later: B follows it. */
    reset_world();
    const char *a[] = {"10.0.0.1:1000", "[2001:db8::1]:1000"};
    const char *b[] = {"10.0.0.2:2000", "[2001:db8::2]:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 2);
    setup_peer(1, &cb, b, 2);
    exchange_all();
    run_until(now + 1000000);
    expect_selected(1, "[2001:db8::2]:2000", "[2001:db8::1]:1000");
    char user[80];
    snprintf(user, sizeof user, "%s:%s", tern_ice_local_ufrag(peers[1].ice),
             tern_ice_local_ufrag(peers[0].ice));
    const char *pwd = tern_ice_local_pwd(peers[1].ice);
    uint8_t buf[256], tid[12] = {7, 7, 7};
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, tid);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, user);
    tern_stun_put_u32(&sw, TERN_STUN_ATTR_PRIORITY, 1);
    tern_stun_put_u64(&sw, TERN_STUN_ATTR_ICE_CONTROLLING, peers[0].ice->tie_breaker);
    tern_stun_put_flag(&sw, TERN_STUN_ATTR_USE_CANDIDATE);
    tern_stun_put_integrity(&sw, (const uint8_t *)pwd, strlen(pwd));
    tern_stun_put_fingerprint(&sw);
    size_t len;
    eq_int(tern_stun_writer_end(&sw, &len), 0);
    tern_datagram_t d = {
        .local = addr("10.0.0.2:2000"), .remote = addr("10.0.0.1:1000"), .data = buf, .len = len};
    ok(tern_ice_accepts(peers[1].ice, &d));
    eq_int(tern_ice_handle_input(peers[1].ice, now, &d), 0);
    run_until(now + 1000000);
    expect_selected(1, "10.0.0.2:2000", "10.0.0.1:1000");
    tern_ice_pair_view_t v;
    ok(tern_ice_selected_pair(peers[1].ice, &v) && v.nominated);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    run_until(now + 10000000);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
}

static void test_double_restart(void)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    exchange_all();
    run_until(now + 1000000);
    /* Two restarts before either completes: the first generation's pair carries on. */
    for (int round = 0; round < 2; round++) {
        eq_int(tern_ice_restart(peers[0].ice, now), 0);
        eq_int(tern_ice_restart(peers[1].ice, now), 0);
        run_until(now + 3000000);
    }
    run_until(now + 6000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    ok(!saw_state(0, TERN_ICE_STATE_DISCONNECTED));
    peers[0].cand_count = peers[1].cand_count = 0;
    drain_all();
    peers[0].cands[0] = peers[0].ice->locals[0].c;
    peers[1].cands[0] = peers[1].ice->locals[0].c;
    peers[0].cand_count = peers[1].cand_count = 1;
    exchange_all();
    run_until(now + 2000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    ok(!peers[0].ice->pairs[peers[0].ice->selected].legacy);
    ok(!peers[1].ice->pairs[peers[1].ice->selected].legacy);
}

static void test_link_local_and_no_nat(void)
{
    reset_world();
    stun_server = addr("198.51.100.9:3478");
    const char *a[] = {"[fe80::1%2]:1000", "10.0.0.1:1000"};
    tern_ice_config_t ca = default_cfg(true);
    peer_t *p = &peers[0];
    eq_int(tern_ice_new(&ctx, &ca, now, &p->ice), 0);
    eq_int(tern_ice_add_stun_server(p->ice, now, &stun_server), 0);
    for (int i = 0; i < 2; i++) {
        tern_addr_t l = addr(a[i]);
        eq_int(tern_ice_add_local_address(p->ice, now, &l), 0);
    }
    eq_int(tern_ice_local_addresses_done(p->ice, now), 0);
    run_until(now + 100000);
    /* No NAT: the server saw the host address, so there is no srflx candidate. */
    ok(p->gathering_complete);
    eq_int(p->cand_count, 2);
    tern_ice_candidate_t r = {.component = 1, .priority = 5, .addr = addr("[2001:db8::9]:9")};
    snprintf(r.foundation, sizeof r.foundation, "g");
    eq_int(tern_ice_add_remote_candidate(p->ice, now, &r), 0);
    eq_int(p->ice->pair_count, 0); /* link-local pairs only with link-local */
    r.addr = addr("[fe80::9%2]:9");
    eq_int(tern_ice_add_remote_candidate(p->ice, now, &r), 0);
    eq_int(p->ice->pair_count, 1);

    /* Two peers on link-local addresses: the signaled candidates lose the zone, the datagrams
     * carry it, and they still match. */
    reset_world();
    const char *la[] = {"[fe80::1%2]:1000"}, *lb[] = {"[fe80::2%2]:2000"};
    tern_ice_config_t cb = default_cfg(false);
    setup_peer(0, &ca, la, 1);
    setup_peer(1, &cb, lb, 1);
    exchange_all();
    run_until(now + 1000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    eq_int(peers[1].ice->remote_count, 1); /* no peer-reflexive twin */
    eq_int(peers[1].ice->local_count, 1);  /* the zone-less mapped address is the host's */
}

/* ---- allocation: memory per agent, and every allocation failing in turn ---- */

static long alloc_count, alloc_fail_at;
static long bytes_in_use, bytes_peak;

typedef struct alloc_hdr {
    size_t size;
    size_t pad_;
} alloc_hdr_t;

static void *count_malloc(size_t size, void *user)
{
    (void)user;
    if (alloc_fail_at && ++alloc_count == alloc_fail_at)
        return NULL;
    alloc_hdr_t *h = malloc(sizeof *h + size);
    if (!h)
        return NULL;
    h->size = size;
    bytes_in_use += (long)size;
    bytes_peak = TERN_MAX(bytes_peak, bytes_in_use);
    return h + 1;
}

static void *count_calloc(size_t n, size_t size, void *user)
{
    void *p = count_malloc(n * size, user);
    if (p)
        memset(p, 0, n * size);
    return p;
}

static void count_free(void *ptr, void *user)
{
    (void)user;
    if (!ptr)
        return;
    alloc_hdr_t *h = (alloc_hdr_t *)ptr - 1;
    bytes_in_use -= (long)h->size;
    free(h);
}

static void *count_realloc(void *ptr, size_t size, void *user)
{
    if (!ptr)
        return count_malloc(size, user);
    alloc_hdr_t *old = (alloc_hdr_t *)ptr - 1;
    void *p = count_malloc(size, user);
    if (!p)
        return NULL;
    memcpy(p, ptr, TERN_MIN(old->size, size));
    count_free(ptr, user);
    return p;
}

static const tern_mem_t count_mem = {NULL, count_malloc, count_calloc, count_realloc, count_free};

/* Two agents connect, leniently: with allocations failing, any step may refuse. */
static void lenient_connect(void)
{
    reset_world();
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    const char *addrs[2] = {"10.0.0.1:1000", "10.0.0.2:2000"};
    for (int i = 0; i < 2; i++) {
        if (tern_ice_new(&ctx, i ? &cb : &ca, now, &peers[i].ice) != 0)
            return;
        tern_addr_t a = addr(addrs[i]);
        (void)tern_ice_add_local_address(peers[i].ice, now, &a);
        (void)tern_ice_local_addresses_done(peers[i].ice, now);
        drain(i);
    }
    for (int i = 0; i < 2; i++) {
        int o = 1 - i;
        (void)tern_ice_set_remote_credentials(peers[o].ice, now, tern_ice_local_ufrag(peers[i].ice),
                                              tern_ice_local_pwd(peers[i].ice));
        for (int k = 0; k < peers[i].cand_count; k++)
            (void)tern_ice_add_remote_candidate(peers[o].ice, now, &peers[i].cands[k]);
    }
    run_until(now + 3000000);
}

static void test_memory_and_failmalloc(void)
{
    reset_world(); /* what the libc allocator made goes back to it */
    tern_mem_t saved = ctx.mem;
    ctx.mem = count_mem;
    alloc_fail_at = 0;
    bytes_in_use = bytes_peak = 0;
    lenient_connect();
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    printf("# memory of two connected agents: %ld bytes in use, %ld peak\n", bytes_in_use,
           bytes_peak);
    ok(bytes_in_use < 2 * 20 * 1024);
    reset_world();
    eq_int(bytes_in_use, 0);
    /* Count the allocations of the scenario, then fail each in turn. */
    alloc_count = 0;
    alloc_fail_at = -1;
    lenient_connect();
    reset_world();
    long total = alloc_count;
    for (long n = 1; n <= total; n++) {
        alloc_count = 0;
        alloc_fail_at = n;
        lenient_connect();
        reset_world();
    }
    alloc_fail_at = 0;
    eq_int(bytes_in_use, 0); /* nothing leaked on any path */
    printf("# failmalloc: %ld allocations swept\n", total);
    ctx.mem = saved;
}

static void test_role_conflict_487(void)
{
    /*
     * Only A checks at first (B does not know A's candidates): both think they control, B has
     * the larger tie-breaker and answers 487 (RFC 8445 §7.3.1.1); A yields and checks again.
     */
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(true);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    peers[0].ice->tie_breaker = 100;
    peers[1].ice->tie_breaker = 900;
    give_credentials(0, 1);
    give_credentials(1, 0);
    give_candidates(1, 0);
    run_until(now + 25000);
    ok(!tern_ice_is_controlling(peers[0].ice)); /* switched on the 487 answer */
    eq_int(peers[0].role_events, 1);
    eq_int(peers[1].role_events, 0);
    run_until(now + 1000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    ok(tern_ice_is_controlling(peers[1].ice));
}

static void test_frozen_foundations(void)
{
    /* Two remote candidates of one foundation: the second pair waits frozen (RFC 8445
     * §6.1.2.6) until the first succeeds, which unfreezes it (§7.2.5.3.3). */
    reset_world();
    const char *a[] = {"10.0.0.1:1000", "10.0.0.1:1001"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 2);
    setup_peer(1, &cb, b, 1);
    /* Two sockets on one IP share a foundation (RFC 8445 §5.1.1.3). */
    eq_str(peers[0].cands[0].foundation, peers[0].cands[1].foundation);
    give_credentials(0, 1);
    give_credentials(1, 0);
    give_candidates(1, 0);
    eq_int(peers[0].ice->pair_count, 2);
    eq_int(peers[0].ice->pairs[0].state, PAIR_IN_PROGRESS);
    eq_int(peers[0].ice->pairs[1].state, PAIR_FROZEN);
    run_until(now + 15000);
    eq_int(peers[0].ice->pairs[1].state, PAIR_FROZEN);
    run_until(now + 10000); /* the first answer is back */
    ok(peers[0].ice->pairs[1].state != PAIR_FROZEN);
    run_until(now + 1000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    expect_selected(0, "10.0.0.1:1000", "10.0.0.2:2000");
}

static char logged_secret[64];
static int secret_leaks, log_lines;

static void secret_log(void *user, tern_log_level_t level, const char *module, const char *msg)
{
    (void)user;
    (void)level;
    (void)module;
    log_lines++;
    if (logged_secret[0] && strstr(msg, logged_secret))
        secret_leaks++;
}

static void test_logs_keep_secrets(void)
{
    reset_world();
    ctx.log = secret_log;
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    snprintf(logged_secret, sizeof logged_secret, "%s", tern_ice_local_pwd(peers[0].ice));
    exchange_all();
    run_until(now + 3000000);
    eq_int(tern_ice_restart(peers[0].ice, now), 0);
    run_until(now + 1000000);
    ctx.log = NULL;
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    ok(log_lines > 10);
    eq_int(secret_leaks, 0);
    /* Addresses can be redacted. */
    ctx.log = secret_log;
    ctx.redact_addresses = true;
    snprintf(logged_secret, sizeof logged_secret, "10.0.0.");
    log_lines = 0;
    tern_addr_t x = addr("10.0.0.7:7");
    eq_int(tern_ice_add_local_address(peers[0].ice, now, &x), 0);
    ok(log_lines > 0);
    eq_int(secret_leaks, 0);
    ctx.redact_addresses = false;
    ctx.log = NULL;
}

static void send_signed(int to, const tern_datagram_t *shape, tern_stun_class_t cls,
                        uint16_t method, const uint8_t *tid, const char *pwd, bool corrupt_fp)
{
    uint8_t buf[256];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, cls, method, tid);
    tern_addr_t mapped = shape->remote;
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &mapped);
    if (pwd)
        tern_stun_put_integrity(&sw, (const uint8_t *)pwd, strlen(pwd));
    tern_stun_put_fingerprint(&sw);
    size_t len;
    eq_int(tern_stun_writer_end(&sw, &len), 0);
    if (corrupt_fp)
        buf[len - 1] ^= 1;
    tern_datagram_t d = *shape;
    d.data = buf;
    d.len = len;
    eq_int(tern_ice_handle_input(peers[to].ice, now, &d), 0);
}

static void test_odd_messages(void)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    give_credentials(1, 0);
    give_candidates(1, 0);
    tern_transmit_t t;
    ok(tern_ice_poll_transmit(peers[0].ice, &t));
    tern_stun_msg_t req;
    eq_int(tern_stun_parse(t.data, t.len, &req), 0);
    uint8_t tid[12];
    memcpy(tid, req.tid, sizeof tid);
    const char *pwd = tern_ice_local_pwd(peers[1].ice);
    tern_datagram_t path = {.local = t.local, .remote = t.remote};
    uint64_t dropped = peers[0].ice->stats.dropped;
    /* A broken fingerprint, another method, an indication: dropped or ignored, no change. */
    send_signed(0, &path, TERN_STUN_SUCCESS, TERN_STUN_BINDING, tid, pwd, true);
    send_signed(0, &path, TERN_STUN_SUCCESS, TERN_STUN_ALLOCATE, tid, pwd, false);
    send_signed(0, &path, TERN_STUN_INDICATION, TERN_STUN_BINDING, tid, NULL, false);
    eq_int(peers[0].ice->stats.dropped, dropped + 2);
    eq_int(peers[0].ice->pairs[0].state, PAIR_IN_PROGRESS);
    /* The right answer from the wrong address: not symmetric, the pair fails (§7.2.5.2.1). */
    tern_datagram_t wrong = path;
    wrong.remote = addr("10.0.0.2:2999");
    send_signed(0, &wrong, TERN_STUN_SUCCESS, TERN_STUN_BINDING, tid, pwd, false);
    eq_int(peers[0].ice->pairs[0].state, PAIR_FAILED);
    tern_ice_stats_t st;
    tern_ice_get_stats(peers[0].ice, &st);
    ok(st.checks_sent == 1 && st.dropped == dropped + 3);
}

static int b_sent;

/* B lets exactly one answer out, then nothing. */
static bool drop_b_after_first(int from, const tern_transmit_t *t)
{
    tern_stun_msg_t m;
    if (from != 1)
        return false;
    bool answer = tern_stun_parse(t->data, t->len, &m) == 0 && m.msg_class == TERN_STUN_SUCCESS;
    return !answer || ++b_sent > 1;
}

static void test_nomination_lost(void)
{
    /*
     * B answers A's first check, then goes silent: A's nomination check times out, the pair
     * fails and, the candidates being done, A fails. (The nomination timer once stayed in the
     * past here and made the driver spin: the loop guard of run_until catches that.)
     */
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    b_sent = 0;
    drop_rule = drop_b_after_first;
    exchange_all();
    run_until(now + 100000);
    eq_int(state_of(0), TERN_ICE_STATE_CONNECTED);
    run_until(now + 12000000);
    eq_int(state_of(0), TERN_ICE_STATE_FAILED);
    ok(saw_state(0, TERN_ICE_STATE_CONNECTED));
    eq_int(tern_ice_next_deadline(peers[0].ice), TERN_TIME_NEVER);
}

static bool drop_all(int from, const tern_transmit_t *t)
{
    (void)from;
    (void)t;
    return true;
}

static void test_consent(void)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    exchange_all();
    run_until(now + 1000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    /* The path dies: disconnected after ~5 s without consent. */
    drop_rule = drop_all;
    tern_time_t cut = now;
    run_until(cut + 4000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    run_until(cut + 5500000);
    eq_int(state_of(0), TERN_ICE_STATE_DISCONNECTED);
    eq_int(state_of(1), TERN_ICE_STATE_DISCONNECTED);
    /* It comes back: completed again at the next consent check. */
    drop_rule = NULL;
    run_until(now + 4000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    /* It dies for good: failed after 30 s (RFC 7675), and sending stops. */
    drop_rule = drop_all;
    cut = now;
    run_until(cut + 25000000);
    eq_int(state_of(0), TERN_ICE_STATE_DISCONNECTED);
    eq_int(tern_ice_send(peers[0].ice, now, (const uint8_t *)"x", 1), 0);
    tern_transmit_t t;
    while (tern_ice_poll_transmit(peers[0].ice, &t))
        ;
    run_until(cut + 31000000);
    eq_int(state_of(0), TERN_ICE_STATE_FAILED);
    eq_int(state_of(1), TERN_ICE_STATE_FAILED);
    eq_int(tern_ice_send(peers[0].ice, now, (const uint8_t *)"x", 1), TERN_ERR_INVALID_STATE);
    uint64_t sent = peers[0].ice->stats.checks_sent;
    drop_rule = NULL;
    run_until(now + 10000000);
    ok(peers[0].ice->stats.checks_sent == sent); /* failed is final until a restart */
    eq_int(state_of(0), TERN_ICE_STATE_FAILED);
    /* The state sequence of the controlling side. */
    int seq[] = {TERN_ICE_STATE_CHECKING,     TERN_ICE_STATE_CONNECTED, TERN_ICE_STATE_COMPLETED,
                 TERN_ICE_STATE_DISCONNECTED, TERN_ICE_STATE_COMPLETED, TERN_ICE_STATE_DISCONNECTED,
                 TERN_ICE_STATE_FAILED};
    bool same = peers[0].state_count == 7;
    for (int k = 0; same && k < 7; k++)
        same = (int)peers[0].states[k] == seq[k];
    ok(same);
}

static void test_restart(void)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    exchange_all();
    run_until(now + 1000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    char old_ufrag[64];
    snprintf(old_ufrag, sizeof old_ufrag, "%s", tern_ice_local_ufrag(peers[0].ice));
    /* A restarts (new offer), B restarts in its answer. */
    peers[0].cand_count = peers[1].cand_count = 0;
    eq_int(tern_ice_restart(peers[0].ice, now), 0);
    ok(strcmp(old_ufrag, tern_ice_local_ufrag(peers[0].ice)) != 0);
    eq_int(tern_ice_restart(peers[1].ice, now), 0);
    drain_all();
    eq_int(peers[0].cand_count, 1); /* local candidates again, for the new generation */
    ok(peers[0].gathering_complete);
    /* Meanwhile data still flows on the old pair, whose consent runs on the old credentials. */
    ok(tern_ice_selected_pair(peers[0].ice, &(tern_ice_pair_view_t){0}));
    eq_int(tern_ice_send(peers[0].ice, now, (const uint8_t *)"x", 1), 0);
    run_until(now + 8000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    int events_before = peers[0].selected_events;
    exchange_all();
    run_until(now + 2000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    ok(peers[0].selected_events > events_before);
    ok(!peers[0].ice->has_old_credentials);
    ok(!peers[0].ice->pairs[peers[0].ice->selected].legacy);
    /* The old username no longer opens anything. */
    tern_datagram_t d = {.local = addr("10.0.0.1:1000"), .remote = addr("10.0.0.2:2000")};
    uint8_t buf[256], tid[12] = {1};
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, tid);
    char user[80];
    snprintf(user, sizeof user, "%s:x", old_ufrag);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, user);
    size_t len;
    tern_stun_writer_end(&sw, &len);
    d.data = buf;
    d.len = len;
    ok(!tern_ice_accepts(peers[0].ice, &d));
    run_until(now + 20000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
}

static void test_ignored_candidates_and_bounds(void)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000", "[::1]:1000"};
    tern_ice_config_t ca = default_cfg(true);
    ca.max_remote_candidates = 3;
    ca.max_pairs = 2;
    setup_peer(0, &ca, a, 2);
    tern_ice_candidate_t c;
    const char *tcp = "candidate:2 1 TCP 2105458943 10.0.0.9 9 typ host tcptype active";
    const char *mdns = "candidate:1 1 udp 2113937151 7a26.local 60540 typ host";
    const char *rtcp = "candidate:0 2 UDP 2122187006 10.0.0.9 32967 typ host";
    eq_int(tern_ice_candidate_parse(tcp, strlen(tcp), &c), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    eq_int(tern_ice_candidate_parse(mdns, strlen(mdns), &c), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    eq_int(tern_ice_candidate_parse(rtcp, strlen(rtcp), &c), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    eq_int(peers[0].ice->remote_count, 0);
    memset(&c, 0, sizeof c);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), TERN_ERR_INVALID_ARG);
    /* Bounds: three remotes, two pairs (IPv6 loopback pairs with nothing of these). */
    char line[128];
    for (int i = 0; i < 3; i++) {
        snprintf(line, sizeof line, "candidate:%d 1 udp %d 10.0.1.%d 5000 typ host", i, 1000 + i,
                 i + 1);
        eq_int(tern_ice_candidate_parse(line, strlen(line), &c), 0);
        eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    }
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0); /* a duplicate */
    snprintf(line, sizeof line, "candidate:9 1 udp 1 10.0.1.99 5000 typ host");
    eq_int(tern_ice_candidate_parse(line, strlen(line), &c), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), TERN_ERR_TOO_LARGE);
    eq_int(peers[0].ice->remote_count, 3);
    eq_int(peers[0].ice->pair_count, 2);
    /* The two best pairs were kept (lower ones pruned, RFC 8445 §6.1.2.5). */
    ok(peers[0].ice->pairs[0].remote != 0 && peers[0].ice->pairs[1].remote != 0);
    /* Bad local addresses. */
    tern_addr_t bad = addr("0.0.0.0:5"), mc = addr("239.1.1.1:5"), noport = addr("10.0.0.3");
    eq_int(tern_ice_add_local_address(peers[0].ice, now, &bad), TERN_ERR_INVALID_ARG);
    eq_int(tern_ice_add_local_address(peers[0].ice, now, &mc), TERN_ERR_INVALID_ARG);
    eq_int(tern_ice_add_local_address(peers[0].ice, now, &noport), TERN_ERR_INVALID_ARG);
    tern_addr_t dup = addr("10.0.0.1:1000");
    eq_int(tern_ice_add_local_address(peers[0].ice, now, &dup), 0);
    eq_int(peers[0].ice->local_count, 2);
    /* Loopback local addresses get the lowest preference. */
    ok(peers[0].ice->locals[1].c.priority < peers[0].ice->locals[0].c.priority);
    /* Bad remote credentials. */
    eq_int(tern_ice_set_remote_credentials(peers[0].ice, now, "a:b", "pwd"), TERN_ERR_INVALID_ARG);
    eq_int(tern_ice_set_remote_credentials(peers[0].ice, now, "", "pwd"), TERN_ERR_INVALID_ARG);
    eq_int(tern_ice_set_remote_credentials(peers[0].ice, now, "abcd", "pwd"), 0);
    eq_int(tern_ice_set_remote_credentials(peers[0].ice, now, "abcd", "pwd"), 0);
    eq_int(tern_ice_set_remote_credentials(peers[0].ice, now, "efgh", "pwd"),
           TERN_ERR_INVALID_STATE);
    eq_int(tern_ice_set_local_credentials(peers[0].ice, "abc", "0123456789012345678901"),
           TERN_ERR_INVALID_ARG);
}

static void test_prflx_flood_bounded(void)
{
    /* Authenticated requests from many addresses: remotes and pairs stay within bounds. */
    reset_world();
    const char *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t cb = default_cfg(false);
    cb.max_remote_candidates = 10;
    cb.max_pairs = 8;
    setup_peer(1, &cb, b, 1);
    eq_int(tern_ice_set_local_credentials(peers[1].ice, "bbbb", "bbbbbbbbbbbbbbbbbbbbbb"), 0);
    for (int i = 0; i < 50; i++) {
        uint8_t buf[256], tid[12] = {(uint8_t)i, 1};
        tern_wbuf_t w;
        tern_stun_writer_t sw;
        tern_wbuf_init(&w, NULL, buf, sizeof buf);
        tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, tid);
        tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, "bbbb:aaaa");
        tern_stun_put_u32(&sw, TERN_STUN_ATTR_PRIORITY, (uint32_t)(1000 + i));
        tern_stun_put_integrity(&sw, (const uint8_t *)"bbbbbbbbbbbbbbbbbbbbbb", 22);
        size_t len;
        tern_stun_writer_end(&sw, &len);
        char src[32];
        snprintf(src, sizeof src, "10.0.%d.%d:999", i / 200, i % 200 + 1);
        tern_datagram_t d = {
            .local = addr("10.0.0.2:2000"), .remote = addr(src), .data = buf, .len = len};
        eq_int(tern_ice_handle_input(peers[1].ice, now, &d), 0);
        drain(1);
    }
    eq_int(peers[1].ice->remote_count, 10);
    eq_int(peers[1].ice->pair_count, 8);
    ok(peers[1].ice->stats.checks_received == 50);
}

static void test_time_and_close(void)
{
    reset_world();
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    exchange_all();
    drain_all();
    /* Time going backwards is ignored (CONVENTIONS.md §2 rule 2). */
    eq_int(tern_ice_handle_timeout(peers[0].ice, now - 500000), 0);
    ok(tern_ice_next_deadline(peers[0].ice) >= now);
    run_until(now + 1000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(tern_ice_close(peers[0].ice, now), 0);
    eq_int(tern_ice_close(peers[0].ice, now), 0);
    drain(0);
    eq_int(state_of(0), TERN_ICE_STATE_CLOSED);
    ok(saw_state(0, TERN_ICE_STATE_CLOSED));
    eq_int(tern_ice_next_deadline(peers[0].ice), TERN_TIME_NEVER);
    tern_transmit_t t;
    ok(!tern_ice_poll_transmit(peers[0].ice, &t));
    eq_int(tern_ice_send(peers[0].ice, now, (const uint8_t *)"x", 1), TERN_ERR_INVALID_STATE);
    tern_addr_t x = addr("10.0.0.5:5");
    eq_int(tern_ice_add_local_address(peers[0].ice, now, &x), TERN_ERR_INVALID_STATE);
    eq_int(tern_ice_restart(peers[0].ice, now), TERN_ERR_INVALID_STATE);
    tern_ice_free(NULL);
    /* The peer notices through consent. */
    run_until(now + 6000000);
    eq_int(state_of(1), TERN_ICE_STATE_DISCONNECTED);
}

static bool lossy_drop(int from, const tern_transmit_t *t)
{
    (void)from;
    (void)t;
    static uint64_t loss_state = 7;
    return tern_splitmix_next(&loss_state) % 100 < 30;
}

static void test_lossy_network(void)
{
    /* 30 % loss both ways: retransmissions and triggered checks still get there. */
    for (int run = 0; run < 20; run++) {
        reset_world();
        seed = 1000 + (uint64_t)run;
        const char *a[] = {"10.0.0.1:1000", "[2001:db8::1]:1000"};
        const char *b[] = {"10.0.0.2:2000", "[2001:db8::2]:2000"};
        tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
        setup_peer(0, &ca, a, 2);
        setup_peer(1, &cb, b, 2);
        exchange_all();
        drop_rule = lossy_drop;
        run_until(now + 20000000);
        if (state_of(0) != TERN_ICE_STATE_COMPLETED || state_of(1) != TERN_ICE_STATE_COMPLETED)
            printf("# lossy run %d: %s / %s\n", run, tern_ice_state_name(state_of(0)),
                   tern_ice_state_name(state_of(1)));
        eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
        eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* mDNS: ".local" candidates                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* The in-test responder, a browser's: names it owns, answered by multicast only, like
 * Chromium's (one question, class exactly IN, ID 0) or like Firefox's (the query's ID). */
#define ZONE_MAX 24
static struct {
    char name[64];
    tern_addr_t ip;
} zone[ZONE_MAX];
static int zone_count;
static int mdns_queries_seen; /* well-formed queries that reached the responder */
static int mdns_answers_sent;
static bool mdns_silent;          /* never answers */
static tern_time_t mdns_delay_us; /* answer delay after the query */
static int mdns_answer_limit;     /* answers at most this many queries (0: all) */
static char mdns_last_question[TERN_MDNS_NAME_MAX + 1];
static const tern_addr_t *mdns_last_from;
static tern_addr_t mdns_last_source;

static void reset_mdns(void)
{
    zone_count = mdns_queries_seen = mdns_answers_sent = mdns_answer_limit = 0;
    mdns_silent = false;
    mdns_delay_us = 0;
    mdns_last_question[0] = '\0';
    mdns_last_from = NULL;
}

static tern_addr_t mdns_group(void)
{
    return addr("224.0.0.251:5353");
}

static void answer_mdns(const tern_transmit_t *t)
{
    tern_mdns_msg_t q;
    mdns_last_source = t->local;
    mdns_last_from = &mdns_last_source;
    /* What Chromium's DnsQuery::Parse takes: a query with one question of class exactly IN. */
    if (tern_mdns_parse(t->data, t->len, &q) != 0 || q.is_response || q.qdcount != 1 ||
        q.question_count != 1 || q.questions[0].qclass != TERN_MDNS_CLASS_IN ||
        q.questions[0].unicast_response) {
        ok(!"a query the browsers would refuse");
        return;
    }
    mdns_queries_seen++;
    snprintf(mdns_last_question, sizeof mdns_last_question, "%s", q.questions[0].name);
    if (mdns_silent || (mdns_answer_limit && mdns_answers_sent >= mdns_answer_limit))
        return;
    for (int i = 0; i < zone_count; i++) {
        if (strcmp(zone[i].name, q.questions[0].name) != 0)
            continue;
        tern_mdns_record_t r;
        memset(&r, 0, sizeof r);
        memcpy(r.name, zone[i].name, sizeof zone[i].name);
        r.addr = zone[i].ip;
        r.addr.port = 0;
        r.rclass = TERN_MDNS_CLASS_IN;
        r.cache_flush = true;
        r.ttl = 120;
        /* An A question for an IPv6 name: Chromium puts the AAAA record in the additional
         * section (its answer is an NSEC record, which tern skips). */
        r.type = r.addr.family == TERN_AF_INET ? TERN_MDNS_TYPE_A : TERN_MDNS_TYPE_AAAA;
        r.section =
            r.type == TERN_MDNS_TYPE_A ? TERN_MDNS_SECTION_ANSWER : TERN_MDNS_SECTION_ADDITIONAL;
        uint8_t buf[512];
        int len = tern_mdns_write_response(buf, sizeof buf, q.id, &r, 1, true);
        ok(len > 0);
        tern_addr_t from = zone[i].ip, to = mdns_group();
        from.port = 5353;
        enqueue(&from, &to, buf, (size_t)len, now + (mdns_delay_us ? mdns_delay_us : one_way_us));
        mdns_answers_sent++;
    }
}

/* Give `from`'s host candidates to `to` with their addresses hidden behind names, as a browser
 * does, and put the names in the responder's zone. */
static void give_candidates_mdns(int from, int to)
{
    for (int k = 0; k < peers[from].cand_count; k++) {
        tern_ice_candidate_t c = peers[from].cands[k];
        if (c.type == TERN_ICE_CAND_HOST && zone_count < ZONE_MAX) {
            snprintf(zone[zone_count].name, sizeof zone[0].name, "%08x-0000-4000-8000-%012d.local",
                     (unsigned)(from + 1), zone_count);
            zone[zone_count].ip = c.addr;
            snprintf(c.hostname, sizeof c.hostname, "%s", zone[zone_count].name);
            zone_count++;
            memset(c.addr.ip, 0, sizeof c.addr.ip);
            c.addr.family = TERN_AF_UNSPEC;
        }
        char line[TERN_ICE_CANDIDATE_STRLEN];
        tern_ice_candidate_t parsed;
        ok(tern_ice_candidate_format(&c, line, sizeof line) > 0);
        eq_int(tern_ice_candidate_parse(line, strlen(line), &parsed), 0);
        eq_int(tern_ice_add_remote_candidate(peers[to].ice, now, &parsed), 0);
    }
}

static tern_ice_stats_t stats_of(int i)
{
    tern_ice_stats_t st;
    tern_ice_get_stats(peers[i].ice, &st);
    return st;
}

/* Peer 0 is tern; peer 1 plays the browser, whose host candidates reach tern as names. */
static void setup_mdns_pair(const char **a, int na, const char **b, int nb, bool b_learns_a)
{
    reset_world();
    reset_mdns();
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, na);
    setup_peer(1, &cb, b, nb);
    give_credentials(0, 1);
    give_credentials(1, 0);
    give_candidates_mdns(1, 0);
    if (b_learns_a)
        give_candidates(0, 1);
    eq_int(tern_ice_remote_candidates_done(peers[0].ice, now), 0);
    eq_int(tern_ice_remote_candidates_done(peers[1].ice, now), 0);
}

static void test_mdns_resolve(void)
{
    /* The browser never learns tern's candidates: only the resolved name can connect. */
    const char *a[] = {"10.0.0.1:1000", "127.0.0.1:1001"}, *b[] = {"10.0.0.2:2000"};
    setup_mdns_pair(a, 2, b, 1, false);
    eq_int(peers[0].ice->remote_count, 0);
    /* The first query went out at once, from the IPv4 host socket only (not loopback). */
    drain_all();
    eq_int(mdns_queries_seen, 1);
    tern_addr_t from = addr("10.0.0.1:1000");
    ok(mdns_last_from && tern_addr_equal(mdns_last_from, &from));
    eq_str(mdns_last_question, zone[0].name);
    eq_int(tern_ice_state(peers[0].ice), TERN_ICE_STATE_NEW);
    run_until(now + 3000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    expect_selected(0, "10.0.0.1:1000", "10.0.0.2:2000");
    tern_ice_pair_view_t v;
    ok(tern_ice_selected_pair(peers[0].ice, &v));
    eq_int(v.remote->type, TERN_ICE_CAND_HOST);
    eq_str(v.remote->hostname, zone[0].name);
    tern_ice_stats_t st = stats_of(0);
    eq_int(st.mdns_resolved, 1);
    eq_int(st.mdns_failed, 0);
    eq_int(st.mdns_queries, 1); /* answered before the retry at 250 ms */
    eq_int(mdns_queries_seen, 1);
    /* Nothing more is sent for the name. */
    run_until(now + 10000000);
    eq_int(mdns_queries_seen, 1);
}

static void test_mdns_no_answer(void)
{
    /* The responder is silent; the browser checks us, so the pair is learnt peer-reflexive. */
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    setup_mdns_pair(a, 1, b, 1, true);
    mdns_silent = true;
    run_until(now + 4000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    tern_ice_pair_view_t v;
    ok(tern_ice_selected_pair(peers[0].ice, &v));
    eq_int(v.remote->type, TERN_ICE_CAND_PRFLX);
    /* Five queries (0, 0.1, 0.5, 1.5, 3 s), then it gives up at 5 s without changing the
     * state. */
    run_until(now + 10000000);
    eq_int(mdns_queries_seen, 5);
    tern_ice_stats_t st = stats_of(0);
    eq_int(st.mdns_failed, 1);
    eq_int(st.mdns_resolved, 0);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    ok(!saw_state(0, TERN_ICE_STATE_FAILED));
    /* The deadline no longer follows mDNS. */
    ok(tern_ice_mdns_deadline(peers[0].ice) == TERN_TIME_NEVER);
    /* The same candidate again is a duplicate; after an ICE restart, the name is asked again
     * (and now answered). */
    char line[256];
    snprintf(line, sizeof line, "candidate:1 1 udp 2113937151 %s 2000 typ host", zone[0].name);
    tern_ice_candidate_t c;
    eq_int(tern_ice_candidate_parse(line, strlen(line), &c), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    drain_all();
    eq_int(mdns_queries_seen, 5);
    eq_int(tern_ice_restart(peers[0].ice, now), 0);
    eq_int(tern_ice_restart(peers[1].ice, now), 0);
    drain_all();
    give_credentials(0, 1);
    give_credentials(1, 0);
    mdns_silent = false;
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    run_until(now + 3000000);
    eq_int(mdns_queries_seen, 6);
    eq_int(stats_of(0).mdns_resolved, 1);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    expect_selected(0, "10.0.0.1:1000", "10.0.0.2:2000");
    ok(!peers[0].ice->pairs[peers[0].ice->selected].legacy);
}

static void test_mdns_only_names_unresolved(void)
{
    /* Nobody answers and nobody checks: ICE waits for a peer-reflexive candidate and the
     * unresolved name does not fail it before the failed timeout. */
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    setup_mdns_pair(a, 1, b, 1, false);
    mdns_silent = true;
    run_until(now + 20000000);
    ok(!saw_state(0, TERN_ICE_STATE_FAILED));
    eq_int(stats_of(0).mdns_failed, 1);
}

static void test_mdns_late_answers(void)
{
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    /* Answered 4 s after the first query (after the last retry, before giving up). */
    setup_mdns_pair(a, 1, b, 1, false);
    mdns_delay_us = 4000000;
    mdns_answer_limit = 1;
    run_until(now + 3900000);
    eq_int(peers[0].ice->remote_count, 0);
    run_until(now + 3000000);
    eq_int(stats_of(0).mdns_resolved, 1);
    eq_int(stats_of(0).mdns_failed, 0);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);

    /* Answered after giving up (at 8 s): a late answer is still taken. */
    setup_mdns_pair(a, 1, b, 1, false);
    mdns_delay_us = 8000000;
    mdns_answer_limit = 1;
    run_until(now + 6000000);
    eq_int(stats_of(0).mdns_failed, 1);
    eq_int(peers[0].ice->remote_count, 0);
    run_until(now + 4000000);
    eq_int(stats_of(0).mdns_resolved, 1);
    eq_int(peers[0].ice->remote_count, 1);
    run_until(now + 3000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);

    /* An answer after the linger time finds nothing waiting. */
    setup_mdns_pair(a, 1, b, 1, false);
    mdns_delay_us = 40000000;
    mdns_answer_limit = 1;
    run_until(now + 45000000);
    eq_int(stats_of(0).mdns_resolved, 0);
    eq_int(peers[0].ice->remote_count, 0);
    ok(stats_of(0).mdns_ignored >= 1);
}

static void test_mdns_cache(void)
{
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    setup_mdns_pair(a, 1, b, 1, false);
    run_until(now + 3000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    uint64_t queries = stats_of(0).mdns_queries;
    /* The same candidate again (trickled after the description): a duplicate, no query. */
    char line[256];
    snprintf(line, sizeof line, "candidate:9 1 udp 2113937151 %s 2000 typ host", zone[0].name);
    tern_ice_candidate_t again;
    eq_int(tern_ice_candidate_parse(line, strlen(line), &again), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &again), 0);
    eq_int(peers[0].ice->remote_count, 1);
    /* A candidate on another port of the same name: paired at once from the cache. */
    snprintf(line, sizeof line, "candidate:9 1 udp 2113937151 %s 2001 typ host", zone[0].name);
    tern_ice_candidate_t c;
    eq_int(tern_ice_candidate_parse(line, strlen(line), &c), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    eq_int(peers[0].ice->remote_count, 2);
    tern_addr_t want = addr("10.0.0.2:2001");
    ok(tern_addr_equal(&peers[0].ice->remotes[1].c.addr, &want));
    /* After an ICE restart the browser keeps its names: still no query. */
    eq_int(tern_ice_restart(peers[0].ice, now), 0);
    eq_int(tern_ice_restart(peers[1].ice, now), 0);
    drain_all();
    give_credentials(0, 1);
    give_credentials(1, 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &again), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    run_until(now + 3000000);
    eq_int(stats_of(0).mdns_queries, queries);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    expect_selected(0, "10.0.0.1:1000", "10.0.0.2:2000");
    ok(!peers[0].ice->pairs[peers[0].ice->selected].legacy);
    /* The cache lasts the TTL (120 s): then the name is asked again. */
    run_until(now + 121000000);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    drain_all();
    eq_int(stats_of(0).mdns_queries, queries + 1);
    /* A goodbye (TTL 0) empties the cache. */
    run_until(now + 1000000);
    eq_int(stats_of(0).mdns_resolved, 2);
    tern_mdns_record_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", zone[0].name);
    r.addr = addr("10.0.0.2");
    r.type = TERN_MDNS_TYPE_A;
    r.rclass = TERN_MDNS_CLASS_IN;
    uint8_t buf[256];
    int len = tern_mdns_write_response(buf, sizeof buf, 0, &r, 1, false);
    tern_datagram_t d = {
        .local = mdns_group(), .remote = addr("10.0.0.2:5353"), .data = buf, .len = (size_t)len};
    eq_int(tern_ice_handle_input(peers[0].ice, now, &d), 0);
    snprintf(line, sizeof line, "candidate:9 1 udp 2113937151 %s 2002 typ host", zone[0].name);
    eq_int(tern_ice_candidate_parse(line, strlen(line), &c), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    drain_all();
    eq_int(stats_of(0).mdns_queries, queries + 2);
}

static void test_mdns_ipv6_name(void)
{
    /* The browser's IPv6 address behind a name: the AAAA record in the additional section. */
    const char *a[] = {"10.0.0.1:1000", "[2001:db8::1]:1000"};
    const char *b[] = {"[2001:db8::2]:2000"};
    setup_mdns_pair(a, 2, b, 1, false);
    run_until(now + 3000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    expect_selected(0, "[2001:db8::1]:1000", "[2001:db8::2]:2000");
    /* Queried over IPv4 all the same. */
    tern_addr_t from = addr("10.0.0.1:1000");
    ok(mdns_last_from && tern_addr_equal(mdns_last_from, &from));
}

static void test_mdns_peer_on_port_5353(void)
{
    /* A peer whose socket is on port 5353 is an ordinary peer: only the group is mDNS. */
    reset_world();
    reset_mdns();
    const char *a[] = {"10.0.0.1:5353"}, *b[] = {"10.0.0.2:5353"};
    tern_ice_config_t ca = default_cfg(true), cb = default_cfg(false);
    setup_peer(0, &ca, a, 1);
    setup_peer(1, &cb, b, 1);
    exchange_all();
    run_until(now + 2000000);
    eq_int(state_of(0), TERN_ICE_STATE_COMPLETED);
    eq_int(state_of(1), TERN_ICE_STATE_COMPLETED);
    tern_datagram_t d = {.local = addr("10.0.0.1:5353"),
                         .remote = addr("10.0.0.2:5353"),
                         .data = (const uint8_t *)"\x17\xfe\xfd",
                         .len = 3};
    ok(tern_ice_accepts(peers[0].ice, &d)); /* DTLS from the pair's address */
}

static int send_answer(int to, const char *name, const char *ip, tern_addr_t local,
                       const char *remote, bool response)
{
    tern_mdns_record_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", name);
    r.addr = addr(ip);
    r.type = r.addr.family == TERN_AF_INET ? TERN_MDNS_TYPE_A : TERN_MDNS_TYPE_AAAA;
    r.rclass = TERN_MDNS_CLASS_IN;
    r.ttl = 120;
    uint8_t buf[512];
    int len = tern_mdns_write_response(buf, sizeof buf, 0, &r, 1, false);
    if (!response)
        buf[2] &= 0x7F; /* QR 0: a query with an answer in it */
    tern_datagram_t d = {.local = local, .remote = addr(remote), .data = buf, .len = (size_t)len};
    return tern_ice_handle_input(peers[to].ice, now, &d);
}

static void test_mdns_ignored(void)
{
    const char *a[] = {"10.0.0.1:1000"}, *b[] = {"10.0.0.2:2000"};
    setup_mdns_pair(a, 1, b, 1, false);
    mdns_silent = true;
    drain_all();
    tern_addr_t group = mdns_group(), host = addr("10.0.0.1:1000");
    uint64_t ignored = stats_of(0).mdns_ignored;
    /* A name never asked. */
    eq_int(send_answer(0, "ffffffff-0000-4000-8000-000000000000.local", "10.6.6.6", group,
                       "10.0.0.9:5353", true),
           0);
    eq_int(stats_of(0).mdns_ignored, ignored + 1);
    /* The right name, but unicast to a host socket (legacy unicast is not taken): not STUN,
     * dropped. */
    uint64_t dropped = stats_of(0).dropped;
    eq_int(send_answer(0, zone[0].name, "10.6.6.6", host, "10.0.0.9:5353", true), 0);
    eq_int(stats_of(0).dropped, dropped + 1);
    /* From a port other than 5353 (RFC 6762 §6), and a query rather than a response. */
    eq_int(send_answer(0, zone[0].name, "10.6.6.6", group, "10.0.0.9:5354", true), 0);
    eq_int(send_answer(0, zone[0].name, "10.6.6.6", group, "10.0.0.9:5353", false), 0);
    eq_int(stats_of(0).mdns_ignored, ignored + 3);
    eq_int(stats_of(0).mdns_resolved, 0);
    eq_int(peers[0].ice->remote_count, 0);
    /* Garbage and STUN on the group are never answered. */
    uint8_t junk[64];
    memset(junk, 0, sizeof junk);
    tern_datagram_t d = {
        .local = group, .remote = addr("10.0.0.9:5353"), .data = junk, .len = sizeof junk};
    eq_int(tern_ice_handle_input(peers[0].ice, now, &d), 0);
    uint8_t req[128], tid[12] = {1};
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, req, sizeof req);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, TERN_STUN_BINDING, tid);
    size_t len;
    tern_stun_writer_end(&sw, &len);
    d.data = req;
    d.len = len;
    d.remote = addr("10.0.0.9:4000");
    eq_int(tern_ice_handle_input(peers[0].ice, now, &d), 0);
    tern_transmit_t t;
    ok(!tern_ice_poll_transmit(peers[0].ice, &t));
    ok(!tern_ice_accepts(peers[0].ice, &d));
    /* The answer about a name being resolved is accepted (tern_ice_accepts) and taken. */
    tern_mdns_record_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", zone[0].name);
    r.addr = addr("10.0.0.2");
    r.type = TERN_MDNS_TYPE_A;
    r.rclass = TERN_MDNS_CLASS_IN;
    r.ttl = 120;
    uint8_t buf[256];
    d.len = (size_t)tern_mdns_write_response(buf, sizeof buf, 0, &r, 1, false);
    d.data = buf;
    d.remote = addr("10.0.0.2:5353");
    ok(tern_ice_accepts(peers[0].ice, &d));
    eq_int(tern_ice_handle_input(peers[0].ice, now, &d), 0);
    eq_int(stats_of(0).mdns_resolved, 1);
    eq_int(peers[0].ice->remote_count, 1);
    /* An agent with no name to resolve ignores mDNS. */
    ok(!tern_ice_accepts(peers[1].ice, &d));
    eq_int(tern_ice_handle_input(peers[1].ice, now, &d), 0);
    eq_int(stats_of(1).mdns_ignored, 1);
}

static void add_named(int to, const char *name, int port, int expect)
{
    char line[256];
    snprintf(line, sizeof line, "candidate:1 1 udp 2113937151 %s %d typ host", name, port);
    tern_ice_candidate_t c;
    eq_int(tern_ice_candidate_parse(line, strlen(line), &c), 0);
    eq_int(tern_ice_add_remote_candidate(peers[to].ice, now, &c), expect);
}

static void test_mdns_bounds(void)
{
    reset_world();
    reset_mdns();
    mdns_silent = true;
    const char *a[] = {"10.0.0.1:1000"};
    tern_ice_config_t ca = default_cfg(true);
    setup_peer(0, &ca, a, 1);
    char name[64];
    /* Six names: four are looked up at once, the others wait their turn. */
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "n%d.local", i);
        add_named(0, name, 5000, 0);
    }
    drain_all();
    eq_int(mdns_queries_seen, 4);
    run_until(now + 5100000); /* the first four give up at 5 s; the last two start, retry */
    eq_int(stats_of(0).mdns_failed, 4);
    eq_int(mdns_queries_seen, 4 * 5 + 2 * 2);
    /* Sixteen candidates wait at most; the same one twice is a duplicate. */
    for (int i = 6; i < 16; i++) {
        snprintf(name, sizeof name, "n%d.local", i);
        add_named(0, name, 5000, 0);
    }
    add_named(0, "n6.local", 5000, 0);
    add_named(0, "n6.local", 5001, TERN_ERR_TOO_LARGE);
    /* Names that are not ".local", and ICE-TCP or RTCP ones, are ignored. */
    add_named(0, "example.com", 5000, 0);
    tern_ice_candidate_t c;
    const char *tcp = "candidate:2 1 TCP 2105458943 n99.local 9 typ host tcptype active";
    eq_int(tern_ice_candidate_parse(tcp, strlen(tcp), &c), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    const char *rtcp = "candidate:0 2 UDP 2122187006 n98.local 32967 typ host";
    eq_int(tern_ice_candidate_parse(rtcp, strlen(rtcp), &c), 0);
    eq_int(tern_ice_add_remote_candidate(peers[0].ice, now, &c), 0);
    /* After the linger time the unresolved names and their candidates are forgotten. */
    run_until(now + 60000000);
    add_named(0, "n20.local", 5000, 0);
    eq_int(peers[0].ice->remote_count, 0);

    /* Disabled: no query at all. */
    reset_world();
    reset_mdns();
    ca.disable_mdns = true;
    setup_peer(0, &ca, a, 1);
    add_named(0, "n0.local", 5000, 0);
    run_until(now + 1000000);
    eq_int(mdns_queries_seen, 0);

    /* With no IPv4 socket the name waits; a socket added later starts the lookup. */
    reset_world();
    reset_mdns();
    const char *v6[] = {"[2001:db8::1]:1000"};
    tern_ice_config_t cb = default_cfg(true);
    cb.max_mdns_lookups = 1;
    setup_peer(0, &cb, v6, 1);
    add_named(0, "n0.local", 5000, 0);
    add_named(0, "n1.local", 5000, 0);
    run_until(now + 1000000);
    eq_int(mdns_queries_seen, 0);
    tern_addr_t v4 = addr("10.0.0.1:1000");
    eq_int(tern_ice_add_local_address(peers[0].ice, now, &v4), 0);
    drain_all();
    eq_int(mdns_queries_seen, 1); /* one lookup at a time */
    /* Freed with names pending: no leak (ASan). */
}

/* tern resolves a name and checks it, leniently: with allocations failing, any step may
 * refuse. */
static void lenient_mdns(void)
{
    reset_mdns();
    snprintf(zone[0].name, sizeof zone[0].name, "abc.local");
    zone[0].ip = addr("10.0.0.2:2000");
    zone_count = 1;
    tern_ice_config_t ca = default_cfg(true);
    if (tern_ice_new(&ctx, &ca, now, &peers[0].ice) != 0)
        return;
    tern_addr_t a = addr("10.0.0.1:1000");
    tern_ice_add_local_address(peers[0].ice, now, &a);
    tern_ice_set_remote_credentials(peers[0].ice, now, "bbbb", "bbbbbbbbbbbbbbbbbbbbbb");
    const char *line = "candidate:1 1 udp 1 abc.local 2000 typ host";
    tern_ice_candidate_t c;
    eq_int(tern_ice_candidate_parse(line, strlen(line), &c), 0);
    int ret = tern_ice_add_remote_candidate(peers[0].ice, now, &c);
    ok(ret == 0 || ret == TERN_ERR_NOMEM);
    run_until(now + 1000000);
}

static void test_mdns_failmalloc(void)
{
    reset_world();
    tern_mem_t saved = ctx.mem;
    ctx.mem = count_mem;
    bytes_in_use = 0;
    alloc_count = 0;
    alloc_fail_at = -1;
    lenient_mdns();
    eq_int(peers[0].ice->remote_count, 1); /* resolved when nothing fails */
    reset_world();
    long total = alloc_count;
    for (long n = 1; n <= total; n++) {
        alloc_count = 0;
        alloc_fail_at = n;
        lenient_mdns();
        reset_world();
    }
    alloc_fail_at = 0;
    eq_int(bytes_in_use, 0);
    printf("# mdns failmalloc: %ld allocations swept\n", total);
    ctx.mem = saved;
}

int main(void)
{
    tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
    if (getenv("TERN_TEST_LOG"))
        cfg.log = test_log;
    tern_ctx_init_base(&ctx, &cfg);
    pkts = calloc(MAX_PKTS, sizeof *pkts);
    now = 1000000;
    subtest("candidate captures", test_candidate_captures);
    subtest("candidate fields", test_candidate_fields);
    subtest("candidate refused", test_candidate_refused);
    subtest("priorities", test_priorities);
    subtest("pair priority", test_pair_priority);
    subtest("connect", test_connect_basic);
    subtest("dual stack", test_dual_stack);
    subtest("trickle: candidates first", test_trickle_candidates_first);
    subtest("trickle: checks before credentials", test_trickle_checks_before_credentials);
    subtest("trickle: end of candidates, failed", test_trickle_end_of_candidates_failed);
    subtest("role conflict: both controlling", test_role_conflict_controlling);
    subtest("role conflict: both controlled", test_role_conflict_controlled);
    subtest("triggered check recovers a drop", test_triggered_recovers_drop);
    subtest("prflx behind a NAT", test_prflx_behind_nat);
    subtest("srflx gathering", test_srflx_gathering);
    subtest("bad credentials", test_bad_credentials);
    subtest("forged response", test_forged_response_ignored);
    subtest("role conflict: 487 answer", test_role_conflict_487);
    subtest("frozen foundations", test_frozen_foundations);
    subtest("logs keep secrets", test_logs_keep_secrets);
    subtest("odd messages", test_odd_messages);
    subtest("renomination", test_renomination);
    subtest("double restart", test_double_restart);
    subtest("link-local and no NAT", test_link_local_and_no_nat);
    subtest("nomination lost", test_nomination_lost);
    subtest("consent", test_consent);
    subtest("restart", test_restart);
    subtest("ignored candidates and bounds", test_ignored_candidates_and_bounds);
    subtest("prflx flood bounded", test_prflx_flood_bounded);
    subtest("time and close", test_time_and_close);
    subtest("lossy network", test_lossy_network);
    subtest("memory and failmalloc", test_memory_and_failmalloc);
    subtest("mdns: resolve", test_mdns_resolve);
    subtest("mdns: no answer, prflx connects", test_mdns_no_answer);
    subtest("mdns: only names, none resolved", test_mdns_only_names_unresolved);
    subtest("mdns: late answers", test_mdns_late_answers);
    subtest("mdns: cache", test_mdns_cache);
    subtest("mdns: ipv6 name", test_mdns_ipv6_name);
    subtest("mdns: ignored answers", test_mdns_ignored);
    subtest("mdns: a peer on port 5353", test_mdns_peer_on_port_5353);
    subtest("mdns: bounds", test_mdns_bounds);
    subtest("mdns: failmalloc", test_mdns_failmalloc);
    reset_world();
    free(pkts);
    return check_done();
}
