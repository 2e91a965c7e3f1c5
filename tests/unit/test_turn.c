/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of ICE servers: URL parsing (RFC 7064, RFC 7065: every form browsers take and the
 * malformed ones), the pc handing STUN and TURN servers to the agent (IP literals at once, names
 * after tern_pc_set_ice_server_addr, gathering held meanwhile), and the TURN client against a
 * scripted server in virtual time (clock from 1000000, seeded rng): 401 then an authenticated
 * Allocate, 438 with a new nonce, wrong credentials, unauthenticated answers dropped, refresh
 * timing, permissions and their refresh, Send and Data indications, ChannelBind and ChannelData
 * (UDP, and TCP with padding), a peer without permission dropped both ways, deallocation on
 * close, relay-only gathering, and ChannelData framing.
 */
#include "check.h"
#include "guard.h"
#include "ice/ice_agent.h"
#include "ice/ice_turn.h"
#include "rtc/rtc.h"

#include <stdio.h>
#include <stdlib.h>

static tern_ctx_t *ctx;
static uint64_t seed = 42;
static tern_time_t now;

static int seeded_random(void *user, uint8_t *buf, size_t len)
{
    (void)user;
    for (size_t i = 0; i < len; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(seed >> 56);
    }
    return 0;
}

static tern_addr_t addr(const char *text)
{
    tern_addr_t a;
    if (tern_addr_parse(text, &a) != 0)
        abort();
    return a;
}

/* ------------------------------------------------------------------------------------------ */
/* URLs                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static int parse_url(const char *url, tern_ice_url_t *u)
{
    guarded_t g;
    const char *p = (const char *)guard_copy(&g, url, strlen(url) + 1);
    int ret = tern_ice_url_parse(p, u);
    guard_free(&g);
    return ret;
}

static void url_forms(void)
{
    tern_ice_url_t u;
    eq_int(parse_url("stun:stun.example.org", &u), 0);
    eq_int(u.scheme, TERN_ICE_URL_STUN);
    eq_str(u.host, "stun.example.org");
    eq_int(u.port, 3478);
    ok(!u.host_is_ip);

    eq_int(parse_url("STUN:Stun.Example.org:19302", &u), 0);
    eq_int(u.scheme, TERN_ICE_URL_STUN);
    eq_int(u.port, 19302);

    eq_int(parse_url("stuns:stun.example.org", &u), 0);
    eq_int(u.scheme, TERN_ICE_URL_STUNS);
    eq_int(u.port, 5349);

    eq_int(parse_url("turn:192.0.2.1", &u), 0);
    eq_int(u.scheme, TERN_ICE_URL_TURN);
    eq_int(u.transport, TERN_ICE_URL_TRANSPORT_ANY);
    ok(u.host_is_ip);
    ok(tern_addr_equal(&u.addr, &(tern_addr_t){0}) == false);
    tern_addr_t want = addr("192.0.2.1:3478");
    ok(tern_addr_equal(&u.addr, &want));

    eq_int(parse_url("turn:[2001:db8::1]:3479?transport=tcp", &u), 0);
    eq_int(u.transport, TERN_ICE_URL_TRANSPORT_TCP);
    want = addr("[2001:db8::1]:3479");
    ok(u.host_is_ip && tern_addr_equal(&u.addr, &want));
    eq_str(u.host, "2001:db8::1");

    eq_int(parse_url("turn:turn.example.org?transport=UDP", &u), 0);
    eq_int(u.transport, TERN_ICE_URL_TRANSPORT_UDP);
    eq_int(u.port, 3478);

    eq_int(parse_url("turns:turn.example.org", &u), 0);
    eq_int(u.scheme, TERN_ICE_URL_TURNS);
    eq_int(u.port, 5349);
    eq_int(parse_url("turns:turn.example.org:443?transport=tcp", &u), 0);
    eq_int(u.port, 443);

    /* What Twilio and others hand out. */
    eq_int(parse_url("stun:global.stun.twilio.com:3478?transport=udp", &u), 0);
    eq_int(parse_url("turn:[::1]", &u), 0);
    eq_int(u.addr.family, TERN_AF_INET6);
    eq_int(parse_url("turn:a_b-c.example:1", &u), 0);
    eq_int(parse_url("turn:x:65535", &u), 0);
    eq_int(u.port, 65535);
}

static void url_malformed(void)
{
    static const char *const bad[] = {
        "",
        "stun",
        "stun:",
        "http://example.org",
        "stun://example.org",
        "stun:user@example.org",
        "stun:example.org/path",
        "stun:example.org:",
        "stun:example.org:0",
        "stun:example.org:65536",
        "stun:example.org:12a",
        "stun:example.org:123456",
        "stun:example.org?transport=tcp",
        "stuns:example.org?transport=udp",
        "turn:example.org?transport=sctp",
        "turn:example.org?transport=",
        "turn:example.org?foo=bar",
        "turn:example.org?transport=udp&x=y",
        "turn:[2001:db8::1",
        "turn:[]",
        "turn:[192.0.2.1]",
        "turn:[fe80::1%25eth0]",
        "turn:2001:db8::1",
        "turn:1.2.3",
        "turn:1.2.3.256",
        "turn:exa mple.org",
        "turn:.example.org",
        "turn:example..org",
        "turn:-example.org",
        "turn:[::1]x",
        "turn:[::1]:",
        " turn:example.org",
    };
    tern_ice_url_t u;
    memset(&u, 0x5A, sizeof u);
    tern_ice_url_t before = u;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int ret = parse_url(bad[i], &u);
        if (ret != TERN_ERR_PARSE)
            printf("# accepted or odd (%d): \"%s\"\n", ret, bad[i]);
        eq_int(ret, TERN_ERR_PARSE);
    }
    eq_int(parse_url("turns:example.org?transport=udp", &u), TERN_ERR_UNSUPPORTED);
    ok(memcmp(&u, &before, sizeof u) == 0); /* untouched on failure */
    eq_int(tern_ice_url_parse(NULL, &u), TERN_ERR_INVALID_ARG);

    /* A label of 64 characters, and a name of 254. */
    char url[400];
    snprintf(url, sizeof url, "turn:%064d.example", 0);
    eq_int(parse_url(url, &u), TERN_ERR_PARSE);
    snprintf(url, sizeof url, "turn:%063d.example", 0);
    eq_int(parse_url(url, &u), 0);
    char name[260];
    memset(name, 'a', sizeof name);
    for (int i = 50; i < 254; i += 51)
        name[i] = '.';
    name[254] = '\0';
    snprintf(url, sizeof url, "turn:%s", name);
    eq_int(parse_url(url, &u), TERN_ERR_PARSE);
    name[253] = '\0';
    snprintf(url, sizeof url, "turn:%s", name);
    eq_int(parse_url(url, &u), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* The pc hands its servers to the agent                                                      */
/* ------------------------------------------------------------------------------------------ */

static int count_to(tern_pc_t *pc, const tern_addr_t *server, tern_transmit_t *last)
{
    tern_transmit_t t;
    int n = 0;
    while (tern_pc_poll_transmit(pc, &t)) {
        if (tern_addr_equal(&t.remote, server)) {
            n++;
            if (last)
                *last = t;
        }
    }
    return n;
}

static void drain_events(tern_pc_t *pc, int *gathering_complete, int *candidates)
{
    /* Candidates and the gathering state are announced only after setLocalDescription: the
     * pc's own record tells. */
    tern_event_t ev;
    while (tern_pc_poll_event(pc, &ev))
        ;
    if (gathering_complete)
        *gathering_complete = pc->gathering_complete;
    if (candidates)
        *candidates = (int)pc->local_candidate_count;
}

static void pc_config_errors(void)
{
    tern_pc_t *pc = NULL;
    tern_ice_server_t bad_url = {.url = "stun:exa mple"};
    tern_pc_config_t cfg = {.ice_servers = &bad_url, .ice_server_count = 1};
    eq_int(tern_pc_new(ctx, &cfg, now, &pc), TERN_ERR_INVALID_ARG);
    ok(pc == NULL);
    tern_ice_server_t no_cred = {.url = "turn:192.0.2.1", .username = "u"};
    cfg.ice_servers = &no_cred;
    eq_int(tern_pc_new(ctx, &cfg, now, &pc), TERN_ERR_INVALID_ARG);
    tern_ice_server_t ok_stuns = {.url = "stuns:192.0.2.1"};
    cfg.ice_servers = &ok_stuns;
    eq_int(tern_pc_new(ctx, &cfg, now, &pc), 0);
    ok(!tern_pc_ice_server_to_resolve(pc, 0, NULL, NULL));
    eq_int(tern_pc_set_ice_server_addr(pc, now, 0, NULL, 0), TERN_ERR_INVALID_STATE);
    eq_int(tern_pc_set_ice_server_addr(pc, now, 1, NULL, 0), TERN_ERR_INVALID_ARG);
    tern_pc_free(pc);
}

/* Several STUN servers at once, one of them named: srflx requests go to each, and gathering
 * waits for the name. */
static void pc_stun_servers(void)
{
    tern_ice_server_t servers[] = {
        {.url = "stun:192.0.2.1"},
        {.url = "stun:[2001:db8::2]:3479"},
        {.url = "stun:stun.example.org:19302"},
    };
    tern_pc_config_t cfg = {.ice_servers = servers, .ice_server_count = 3};
    tern_pc_t *pc;
    eq_int(tern_pc_new(ctx, &cfg, now, &pc), 0);
    const char *host = NULL;
    uint16_t port = 0;
    ok(!tern_pc_ice_server_to_resolve(pc, 0, &host, &port));
    ok(tern_pc_ice_server_to_resolve(pc, 2, &host, &port));
    eq_str(host, "stun.example.org");
    eq_int(port, 19302);

    tern_addr_t local4 = addr("10.0.0.1:5000"), s1 = addr("192.0.2.1:3478");
    eq_int(tern_pc_add_local_socket(pc, now, &local4), 0);
    eq_int(tern_pc_local_sockets_done(pc, now), 0);
    eq_int(count_to(pc, &s1, NULL), 1);
    int complete = 0;
    drain_events(pc, &complete, NULL);

    /* The name resolves to two addresses of one family: only the first is used. */
    tern_addr_t resolved[] = {addr("198.51.100.7:1"), addr("198.51.100.8:1")};
    eq_int(tern_pc_set_ice_server_addr(pc, now, 2, resolved, 2), 0);
    ok(!tern_pc_ice_server_to_resolve(pc, 2, &host, &port));
    eq_int(tern_pc_set_ice_server_addr(pc, now, 2, resolved, 2), TERN_ERR_INVALID_STATE);
    tern_addr_t s3 = addr("198.51.100.7:19302"), s3b = addr("198.51.100.8:19302");
    tern_transmit_t t;
    memset(&t, 0, sizeof t);
    int sent = 0, other = 0;
    while (tern_pc_poll_transmit(pc, &t)) {
        sent += tern_addr_equal(&t.remote, &s3);
        other += tern_addr_equal(&t.remote, &s3b);
    }
    eq_int(sent, 1);
    eq_int(other, 0);

    /* RFC 8489 retransmissions, then gathering completes: nothing answers. */
    int resent = 0;
    for (int i = 0; i < 100 && complete == 0; i++) {
        now = TERN_MAX(now + 1000, tern_pc_next_deadline(pc));
        tern_pc_handle_timeout(pc, now);
        resent += count_to(pc, &s1, NULL);
        drain_events(pc, &complete, NULL);
    }
    ok(resent >= 2);
    eq_int(complete, 1);
    tern_pc_free(pc);
}

/* A named server that does not resolve must not hold gathering forever. */
static void pc_unresolved_name(void)
{
    tern_ice_server_t servers[] = {
        {.url = "turn:turn.invalid", .username = "u", .credential = "p"}};
    tern_pc_config_t cfg = {.ice_servers = servers, .ice_server_count = 1};
    tern_pc_t *pc;
    eq_int(tern_pc_new(ctx, &cfg, now, &pc), 0);
    tern_addr_t local4 = addr("10.0.0.1:5000");
    tern_pc_add_local_socket(pc, now, &local4);
    tern_pc_local_sockets_done(pc, now);
    int complete = 0;
    drain_events(pc, &complete, NULL);
    eq_int(complete, 0);
    eq_int(tern_pc_set_ice_server_addr(pc, now, 0, NULL, 0), 0);
    drain_events(pc, &complete, NULL);
    eq_int(complete, 1);
    tern_pc_free(pc);
}

/* ------------------------------------------------------------------------------------------ */
/* The TURN client against a scripted server                                                  */
/* ------------------------------------------------------------------------------------------ */

#define USER "user"
#define PASS "pass"
#define REALM "example.org"

typedef struct fake {
    bool stale_once;   /* the first authenticated request gets 438 with a new nonce */
    bool wrong_creds;  /* authenticated requests get 401 again */
    bool no_mi_once;   /* the first success goes out without MESSAGE-INTEGRITY */
    int count[16];     /* requests per method */
    int authenticated; /* requests that carried a valid MESSAGE-INTEGRITY */
    uint32_t last_lifetime;
    tern_addr_t last_peer; /* of the last CreatePermission, ChannelBind or Send */
    uint16_t last_channel;
    int sends; /* Send indications */
    uint8_t send_data[2048];
    size_t send_len;
    int channel_data; /* ChannelData messages */
    uint8_t cd[2048];
    size_t cd_len;
    const char *nonce;
} fake_t;

static const tern_addr_t *server_addr(void)
{
    static tern_addr_t a;
    a = addr("192.0.2.1:3478");
    return &a;
}

static uint8_t fake_key[16];

/* Answer one message from the client; returns the answer's length (0: none). */
static size_t fake_answer(fake_t *f, const uint8_t *req, size_t len, uint8_t *out, bool stream)
{
    if (len >= 4 && req[0] >= 0x40 && req[0] <= 0x4F) {
        uint16_t ch;
        const uint8_t *p;
        size_t n, frame;
        if (tern_turn_channel_data_parse(req, len, stream, &ch, &p, &n, &frame) == 0) {
            f->channel_data++;
            f->last_channel = ch;
            if (n > 0 && p[0] == 22) { /* DTLS: what the test sent */
                memcpy(f->cd, p, n);
                f->cd_len = n;
            }
        }
        return 0;
    }
    tern_stun_msg_t m;
    if (tern_stun_parse(req, len, &m) != 0)
        return 0;
    if (m.msg_class == TERN_STUN_INDICATION && m.method == TERN_STUN_SEND) {
        f->sends++;
        f->last_peer = m.xor_peer_address[0];
        memcpy(f->send_data, m.data_attr.p, m.data_attr.len);
        f->send_len = m.data_attr.len;
        return 0;
    }
    if (m.msg_class != TERN_STUN_REQUEST)
        return 0;
    f->count[m.method & 15]++;
    bool auth = (m.present & TERN_STUN_HAS_INTEGRITY) &&
                tern_stun_check_integrity(&m, fake_key, sizeof fake_key) == 0;
    f->authenticated += auth;
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, out, 1024);
    if (!auth || f->wrong_creds || (f->stale_once && f->nonce == NULL)) {
        bool stale = auth && !f->wrong_creds;
        tern_stun_writer_begin(&sw, &w, TERN_STUN_ERROR, m.method, m.tid);
        tern_stun_put_error_code(&sw, stale ? 438 : 401, NULL);
        tern_stun_put_string(&sw, TERN_STUN_ATTR_REALM, REALM);
        tern_stun_put_string(&sw, TERN_STUN_ATTR_NONCE, stale ? "nonce-2" : "nonce-1");
        if (stale)
            f->nonce = "nonce-2";
    } else {
        tern_stun_writer_begin(&sw, &w, TERN_STUN_SUCCESS, m.method, m.tid);
        if (m.method == TERN_STUN_ALLOCATE) {
            tern_addr_t relayed = addr("198.51.100.1:50000"), mapped = addr("203.0.113.5:40000");
            tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_RELAYED_ADDRESS, &relayed);
            tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &mapped);
            tern_stun_put_u32(&sw, TERN_STUN_ATTR_LIFETIME, 600);
        } else if (m.method == TERN_STUN_REFRESH) {
            f->last_lifetime = m.lifetime;
            tern_stun_put_u32(&sw, TERN_STUN_ATTR_LIFETIME, m.lifetime);
        } else if (m.method == TERN_STUN_CREATE_PERMISSION || m.method == TERN_STUN_CHANNEL_BIND) {
            f->last_peer = m.xor_peer_address[0];
            f->last_channel = m.channel_number;
        }
        if (f->no_mi_once)
            f->no_mi_once = false;
        else
            tern_stun_put_integrity(&sw, fake_key, sizeof fake_key);
    }
    tern_stun_put_fingerprint(&sw);
    size_t n = 0;
    return tern_stun_writer_end(&sw, &n) == 0 ? n : 0;
}

typedef struct peer_hook {
    const char *pwd; /* answer Binding requests relayed to the peer with this password */
    tern_addr_t peer;
    int answered;
} peer_hook_t;

/* The peer behind the relay answers a relayed check: a Data indication to the client. */
static size_t peer_answer(peer_hook_t *h, const uint8_t *req, size_t len, uint8_t *out)
{
    tern_stun_msg_t m;
    if (!h || !h->pwd || tern_stun_parse(req, len, &m) != 0 || m.msg_class != TERN_STUN_REQUEST)
        return 0;
    uint8_t inner[512];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, inner, sizeof inner);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_SUCCESS, TERN_STUN_BINDING, m.tid);
    tern_addr_t relayed = addr("198.51.100.1:50000");
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &relayed);
    tern_stun_put_integrity(&sw, (const uint8_t *)h->pwd, strlen(h->pwd));
    tern_stun_put_fingerprint(&sw);
    size_t n = 0;
    tern_stun_writer_end(&sw, &n);
    uint8_t tid[12] = {9};
    tern_wbuf_init(&w, NULL, out, 1024);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_INDICATION, TERN_STUN_DATA, tid);
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_PEER_ADDRESS, &h->peer);
    tern_stun_put_attr(&sw, TERN_STUN_ATTR_DATA, inner, n);
    size_t total = 0;
    tern_stun_writer_end(&sw, &total);
    h->answered++;
    return total;
}

/* Deliver a datagram from the server as the pc does: TURN first, then what was relayed. */
static void from_server(tern_ice_t *ice, const tern_addr_t *local, const uint8_t *p, size_t n)
{
    tern_datagram_t d = {.local = *local, .remote = *server_addr(), .data = p, .len = n};
    ok(tern_ice_turn_claims(ice, &d));
    tern_ice_turn_handle_input(ice, now, &d);
    tern_datagram_t inner;
    while (tern_ice_poll_relayed(ice, &inner))
        tern_ice_handle_input(ice, now, &inner);
}

/* Run client and server (and peer) until neither has anything to say. */
static void pump(tern_ice_t *ice, fake_t *f, peer_hook_t *h)
{
    for (int round = 0; round < 50; round++) {
        tern_transmit_t t;
        uint8_t answers[8][1024];
        size_t lens[8];
        tern_addr_t locals[8];
        int n = 0;
        while (tern_ice_poll_transmit(ice, &t)) {
            if (!tern_addr_equal(&t.remote, server_addr()) || n == 8)
                continue;
            uint8_t copy[2048];
            memcpy(copy, t.data, t.len);
            size_t len = fake_answer(f, copy, t.len, answers[n], false);
            if (len == 0 && f->sends && f->send_len && h)
                len = peer_answer(h, f->send_data, f->send_len, answers[n]), f->send_len = 0;
            if (len) {
                lens[n] = len;
                locals[n++] = t.local;
            }
        }
        if (n == 0)
            return;
        for (int i = 0; i < n; i++)
            from_server(ice, &locals[i], answers[i], lens[i]);
    }
}

typedef struct seen {
    int relay, srflx, host, complete;
    tern_ice_candidate_t relay_c;
} seen_t;

static void take_events(tern_ice_t *ice, seen_t *s)
{
    tern_ice_event_t ev;
    while (tern_ice_poll_event(ice, &ev)) {
        if (ev.type == TERN_ICE_EV_GATHERING_COMPLETE)
            s->complete++;
        if (ev.type != TERN_ICE_EV_LOCAL_CANDIDATE)
            continue;
        if (ev.u.candidate->type == TERN_ICE_CAND_RELAY) {
            s->relay++;
            s->relay_c = *ev.u.candidate;
        }
        s->srflx += ev.u.candidate->type == TERN_ICE_CAND_SRFLX;
        s->host += ev.u.candidate->type == TERN_ICE_CAND_HOST;
    }
}

static tern_ice_t *new_agent(bool relay_only, tern_turn_transport_t transport)
{
    tern_ice_config_t cfg = {.controlling = true, .relay_only = relay_only};
    tern_ice_t *ice;
    if (tern_ice_new(ctx, &cfg, now, &ice) != 0)
        abort();
    tern_addr_t local = addr("10.0.0.1:5000");
    tern_ice_add_local_address(ice, now, &local);
    tern_ice_turn_server_t s = {
        .addr = *server_addr(),
        .transport = transport,
        .username = USER,
        .password = PASS,
        .fallback_of = -1,
    };
    eq_int(tern_ice_add_turn_server(ice, now, &s), 0);
    tern_ice_local_addresses_done(ice, now);
    return ice;
}

static void turn_allocate(void)
{
    fake_t f = {0};
    tern_ice_t *ice = new_agent(false, TERN_TURN_UDP);
    seen_t s = {0};
    take_events(ice, &s);
    eq_int(s.complete, 0); /* the allocation is pending */
    pump(ice, &f, NULL);
    take_events(ice, &s);
    eq_int(f.count[TERN_STUN_ALLOCATE], 2); /* 401, then with credentials */
    eq_int(f.authenticated, 1);
    eq_int(s.relay, 1);
    eq_int(s.srflx, 1);
    eq_int(s.host, 1);
    eq_int(s.complete, 1);
    tern_addr_t relayed = addr("198.51.100.1:50000"), mapped = addr("203.0.113.5:40000");
    ok(tern_addr_equal(&s.relay_c.addr, &relayed));
    ok(tern_addr_equal(&s.relay_c.related, &mapped));
    eq_int(s.relay_c.priority >> 24, 0); /* type preference 0 (RFC 8445 §5.1.2.2) */
    char line[TERN_ICE_CANDIDATE_STRLEN];
    ok(tern_ice_candidate_format(&s.relay_c, line, sizeof line) > 0);
    ok(strstr(line, "typ relay raddr 203.0.113.5 rport 40000") != NULL);

    /* Close deallocates: a Refresh with LIFETIME 0. */
    tern_ice_close(ice, now);
    pump(ice, &f, NULL);
    eq_int(f.count[TERN_STUN_REFRESH], 1);
    eq_int(f.last_lifetime, 0);
    tern_ice_free(ice);
}

static void turn_stale_nonce(void)
{
    fake_t f = {.stale_once = true};
    tern_ice_t *ice = new_agent(false, TERN_TURN_UDP);
    pump(ice, &f, NULL);
    seen_t s = {0};
    take_events(ice, &s);
    eq_int(f.count[TERN_STUN_ALLOCATE], 3); /* 401, 438, then the new nonce */
    eq_int(s.relay, 1);
    tern_ice_free(ice);
}

static void turn_wrong_credentials(void)
{
    fake_t f = {.wrong_creds = true};
    tern_ice_t *ice = new_agent(false, TERN_TURN_UDP);
    pump(ice, &f, NULL);
    seen_t s = {0};
    take_events(ice, &s);
    eq_int(f.count[TERN_STUN_ALLOCATE], 2); /* a 401 to credentials is final */
    eq_int(s.relay, 0);
    eq_int(s.complete, 1);
    eq_int(tern_ice_next_deadline(ice) < now + TERN_SEC(1), false);
    tern_ice_free(ice);
}

static void turn_unauthenticated_answer(void)
{
    fake_t f = {.no_mi_once = true};
    tern_ice_t *ice = new_agent(false, TERN_TURN_UDP);
    tern_ice_stats_t before;
    tern_ice_get_stats(ice, &before);
    pump(ice, &f, NULL);
    seen_t s = {0};
    take_events(ice, &s);
    eq_int(s.relay, 0); /* an answer without MESSAGE-INTEGRITY changes nothing */
    tern_ice_stats_t after;
    tern_ice_get_stats(ice, &after);
    ok(after.dropped > before.dropped);
    /* The retransmission gets a proper answer. */
    now = tern_ice_next_deadline(ice);
    tern_ice_handle_timeout(ice, now);
    pump(ice, &f, NULL);
    take_events(ice, &s);
    eq_int(s.relay, 1);
    tern_ice_free(ice);
}

/* Advance virtual time by steps of at most `step`, serving, until `until`. */
static void run_until(tern_ice_t *ice, fake_t *f, tern_time_t until)
{
    while (now < until) {
        tern_time_t d = tern_ice_next_deadline(ice);
        now = TERN_MIN(TERN_MAX(d, now + 1), until);
        tern_ice_handle_timeout(ice, now);
        pump(ice, f, NULL);
    }
}

static tern_ice_candidate_t remote_host(const char *a)
{
    tern_ice_candidate_t c = {.component = 1, .type = TERN_ICE_CAND_HOST, .priority = 2130706431};
    snprintf(c.foundation, sizeof c.foundation, "9");
    c.addr = addr(a);
    return c;
}

static void turn_refresh_and_permissions(void)
{
    fake_t f = {0};
    tern_ice_t *ice = new_agent(true, TERN_TURN_UDP);
    pump(ice, &f, NULL);
    seen_t s = {0};
    take_events(ice, &s);
    eq_int(s.relay, 1);
    eq_int(s.host, 0); /* relay only: the host address is never a candidate */
    eq_int(s.srflx, 0);
    tern_time_t allocated = now;

    tern_ice_candidate_t c = remote_host("203.0.113.77:6000");
    tern_ice_add_remote_candidate(ice, now, &c);
    pump(ice, &f, NULL);
    eq_int(f.count[TERN_STUN_CREATE_PERMISSION], 1);
    tern_addr_t peer_ip = addr("203.0.113.77:0");
    ok(memcmp(f.last_peer.ip, peer_ip.ip, 16) == 0);
    /* A second candidate on the same IP needs no new permission. */
    c = remote_host("203.0.113.77:6001");
    tern_ice_add_remote_candidate(ice, now, &c);
    pump(ice, &f, NULL);
    eq_int(f.count[TERN_STUN_CREATE_PERMISSION], 1);

    /* Permissions are refreshed before their 5 minutes run out (RFC 8656 §9). */
    run_until(ice, &f, allocated + TERN_SEC(299));
    eq_int(f.count[TERN_STUN_CREATE_PERMISSION], 2);
    eq_int(f.count[TERN_STUN_REFRESH], 0);
    /* The allocation is refreshed a minute before its 600 s lifetime ends. */
    run_until(ice, &f, allocated + TERN_SEC(541));
    eq_int(f.count[TERN_STUN_REFRESH], 1);
    eq_int(f.last_lifetime, 600);
    run_until(ice, &f, allocated + TERN_SEC(1200));
    eq_int(f.count[TERN_STUN_REFRESH], 2);
    tern_ice_free(ice);
}

static void turn_data_path(void)
{
    fake_t f = {0};
    tern_ice_t *ice = new_agent(true, TERN_TURN_UDP);
    tern_ice_set_local_credentials(ice, "lufrag", "lpwd0123456789012345678");
    pump(ice, &f, NULL);
    tern_ice_candidate_t c = remote_host("203.0.113.77:6000");
    tern_ice_add_remote_candidate(ice, now, &c);
    pump(ice, &f, NULL);

    /* A Data indication from a peer without permission is dropped. */
    tern_addr_t local = addr("10.0.0.1:5000"), stranger = addr("203.0.113.99:6000");
    uint8_t buf[1024];
    peer_hook_t bad = {.pwd = "x", .peer = stranger};
    uint8_t fake_req[64] = {0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42};
    size_t n = peer_answer(&bad, fake_req, 20, buf);
    ok(n > 0);
    tern_ice_stats_t st0, st1;
    tern_ice_get_stats(ice, &st0);
    tern_datagram_t d = {.local = local, .remote = *server_addr(), .data = buf, .len = n};
    tern_ice_turn_handle_input(ice, now, &d);
    tern_datagram_t inner;
    ok(!tern_ice_poll_relayed(ice, &inner));
    tern_ice_get_stats(ice, &st1);
    eq_int(st1.dropped, st0.dropped + 1);

    /* Checks go out as Send indications; the peer answers through the relay. */
    peer_hook_t h = {.pwd = "rpwd0123456789012345678", .peer = c.addr};
    tern_ice_set_remote_credentials(ice, now, "rufrag", h.pwd);
    for (int i = 0; i < 20 && h.answered == 0; i++) {
        pump(ice, &f, &h);
        now += 20000;
        tern_ice_handle_timeout(ice, now);
    }
    ok(f.sends >= 1);
    ok(tern_addr_equal(&f.last_peer, &c.addr));
    ok(h.answered >= 1);
    pump(ice, &f, &h);
    tern_ice_pair_view_t pv;
    ok(tern_ice_selected_pair(ice, &pv));
    eq_int(pv.local->type, TERN_ICE_CAND_RELAY);
    /* The selected pair gets a channel; data then goes as ChannelData. */
    eq_int(f.count[TERN_STUN_CHANNEL_BIND], 1);
    eq_int(f.last_channel, 0x4000);
    static const uint8_t dtls[] = {22, 254, 253, 0, 0, 1, 2, 3, 4};
    eq_int(tern_ice_send(ice, now, dtls, sizeof dtls), 0);
    pump(ice, &f, NULL);
    ok(f.channel_data >= 1); /* consent checks may go the same way */
    eq_int(f.cd_len, sizeof dtls);
    ok(memcmp(f.cd, dtls, sizeof dtls) == 0);

    /* ChannelData from the server on the bound channel is the peer's; others are dropped. */
    uint8_t cd[32] = {0x40, 0x00, 0, sizeof dtls};
    memcpy(cd + 4, dtls, sizeof dtls);
    d.data = cd;
    d.len = 4 + sizeof dtls;
    ok(tern_ice_turn_claims(ice, &d));
    tern_ice_turn_handle_input(ice, now, &d);
    ok(tern_ice_poll_relayed(ice, &inner));
    tern_addr_t relayed = addr("198.51.100.1:50000");
    ok(tern_addr_equal(&inner.local, &relayed) && tern_addr_equal(&inner.remote, &c.addr));
    eq_int(inner.len, sizeof dtls);
    ok(!tern_ice_poll_relayed(ice, &inner));
    cd[1] = 0x01; /* channel 0x4001: never bound */
    tern_ice_turn_handle_input(ice, now, &d);
    ok(!tern_ice_poll_relayed(ice, &inner));
    cd[1] = 0x00;
    cd[3] = 200; /* longer than the datagram */
    tern_ice_turn_handle_input(ice, now, &d);
    ok(!tern_ice_poll_relayed(ice, &inner));
    tern_ice_free(ice);
}

/* TURN over TCP: a stream request, then framed bytes both ways, fed one byte at a time. */
static void turn_tcp(void)
{
    fake_t f = {0};
    tern_ice_t *ice = new_agent(true, TERN_TURN_TCP);
    tern_ice_stream_request_t r;
    ok(tern_ice_poll_stream_request(ice, &r));
    ok(!r.close && !r.tls && r.id != 0);
    ok(tern_addr_equal(&r.remote, server_addr()));
    ok(!tern_ice_poll_stream_request(ice, &r) || r.close == false);
    tern_addr_t local = addr("10.0.0.1:40001");
    eq_int(tern_ice_stream_event(ice, now, r.id, true, &local), 0);
    seen_t s = {0};
    for (int round = 0; round < 4; round++) {
        uint32_t id;
        const uint8_t *data;
        size_t len;
        uint8_t copy[4096];
        size_t total = 0;
        while (tern_ice_poll_stream_transmit(ice, &id, &data, &len)) {
            eq_int(id, r.id);
            memcpy(copy + total, data, len);
            total += len;
        }
        /* Answer each framed request; deliver the answers one byte at a time. */
        size_t off = 0;
        while (off < total) {
            long fl = tern_turn_stream_frame_len(copy + off, total - off);
            if (fl <= 0)
                break;
            uint8_t ans[1024];
            size_t n = fake_answer(&f, copy + off, (size_t)fl, ans, true);
            for (size_t i = 0; i < n; i++)
                eq_int(tern_ice_stream_input(ice, now, r.id, ans + i, 1), 0);
            off += (size_t)fl;
        }
    }
    take_events(ice, &s);
    eq_int(s.relay, 1);
    eq_int(f.count[TERN_STUN_ALLOCATE], 2);
    /* A peer's ChannelData on a stream is padded; a Data indication arrives whole. */
    tern_ice_candidate_t c = remote_host("203.0.113.77:6000");
    tern_ice_add_remote_candidate(ice, now, &c);
    uint32_t id;
    const uint8_t *data;
    size_t len;
    while (tern_ice_poll_stream_transmit(ice, &id, &data, &len))
        ;
    peer_hook_t h = {.pwd = "x", .peer = c.addr};
    uint8_t req[20] = {0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42};
    uint8_t ind[1024];
    size_t n = peer_answer(&h, req, 20, ind);
    eq_int(tern_ice_stream_input(ice, now, r.id, ind, n), 0);
    tern_datagram_t inner;
    ok(tern_ice_poll_relayed(ice, &inner));
    ok(tern_addr_equal(&inner.remote, &c.addr));
    ok(!tern_ice_poll_relayed(ice, &inner));

    /* Garbage on the stream closes it and fails the allocation. */
    static const uint8_t junk[] = {0xFF, 0xFF, 0xFF, 0xFF};
    eq_int(tern_ice_stream_input(ice, now, r.id, junk, sizeof junk), 0);
    ok(tern_ice_poll_stream_request(ice, &r));
    ok(r.close);
    eq_int(tern_ice_stream_input(ice, now, r.id, junk, sizeof junk), TERN_ERR_NOT_FOUND);
    tern_ice_free(ice);
}

/* A "turn:" URL without transport: TCP starts only if UDP stays silent. */
static void turn_fallback(void)
{
    for (int silent = 0; silent < 2; silent++) {
        tern_ice_config_t cfg = {.relay_only = true};
        tern_ice_t *ice;
        tern_ice_new(ctx, &cfg, now, &ice);
        tern_addr_t local = addr("10.0.0.1:5000");
        tern_ice_add_local_address(ice, now, &local);
        tern_ice_turn_server_t s = {
            .addr = *server_addr(), .username = USER, .password = PASS, .fallback_of = -1};
        eq_int(tern_ice_add_turn_server(ice, now, &s), 0);
        s.transport = TERN_TURN_TCP;
        s.fallback_of = 0;
        s.fallback_delay_us = 300000;
        eq_int(tern_ice_add_turn_server(ice, now, &s), 1);
        fake_t f = {0};
        if (!silent)
            pump(ice, &f, NULL);
        tern_time_t start = now;
        while (now < start + 400000) {
            now = TERN_MIN(TERN_MAX(tern_ice_next_deadline(ice), now + 1), start + 400000);
            tern_ice_handle_timeout(ice, now);
        }
        tern_ice_stream_request_t r;
        eq_int(tern_ice_poll_stream_request(ice, &r), silent ? true : false);
        tern_ice_free(ice);
    }
}

static void channel_data_framing(void)
{
    uint8_t buf[64];
    memset(buf, 0xEE, sizeof buf);
    memcpy(buf + 4, "hello", 5);
    eq_int(tern_turn_channel_data_frame(buf, sizeof buf, 0x4001, 5, false), 9);
    eq_int(tern_turn_channel_data_frame(buf, sizeof buf, 0x4001, 5, true), 12);
    ok(buf[9] == 0 && buf[10] == 0 && buf[11] == 0); /* RFC 8656 §12.5 padding */
    eq_int(tern_turn_channel_data_frame(buf, 11, 0x4001, 5, true), TERN_ERR_TOO_LARGE);
    uint16_t ch;
    const uint8_t *p;
    size_t n, frame;
    eq_int(tern_turn_channel_data_parse(buf, 12, true, &ch, &p, &n, &frame), 0);
    eq_int(ch, 0x4001);
    eq_int(n, 5);
    eq_int(frame, 12);
    ok(memcmp(p, "hello", 5) == 0);
    eq_int(tern_turn_channel_data_parse(buf, 11, true, &ch, &p, &n, &frame), TERN_ERR_TRUNCATED);
    eq_int(tern_turn_channel_data_parse(buf, 9, false, &ch, &p, &n, &frame), 0);
    eq_int(tern_turn_channel_data_parse(buf, 8, false, &ch, &p, &n, &frame), TERN_ERR_PARSE);
    eq_int(tern_turn_channel_data_parse(buf, 3, false, &ch, &p, &n, &frame), TERN_ERR_PARSE);
    buf[0] = 0x50; /* 0x5001: outside 0x4000-0x4FFF */
    eq_int(tern_turn_channel_data_parse(buf, 12, true, &ch, &p, &n, &frame), TERN_ERR_PARSE);
    eq_int(tern_turn_stream_frame_len(buf, 3), 0);
    static const uint8_t stun[4] = {0x01, 0x13, 0x00, 0x08};
    eq_int(tern_turn_stream_frame_len(stun, 4), 28);
    static const uint8_t odd[4] = {0x01, 0x13, 0x00, 0x07};
    eq_int(tern_turn_stream_frame_len(odd, 4), TERN_ERR_PARSE);
    static const uint8_t rtp[4] = {0x80, 0, 0, 0};
    eq_int(tern_turn_stream_frame_len(rtp, 4), TERN_ERR_PARSE);
}

int main(void)
{
    tern_ctx_config_t cc = {.random_bytes = seeded_random};
    if (getenv("TEST_LOG"))
        cc.log = NULL;
    if (tern_ctx_new(&cc, &ctx) != 0)
        return 1;
    now = 1000000;
    subtest("url: forms", url_forms);
    subtest("url: malformed", url_malformed);
    subtest("pc: config errors", pc_config_errors);
    subtest("pc: stun servers", pc_stun_servers);
    subtest("pc: unresolved name", pc_unresolved_name);
    if (tern_stun_long_term_key(USER, REALM, PASS, fake_key) != 0)
        return 1;
    subtest("turn: allocate, 401, close", turn_allocate);
    subtest("turn: 438 stale nonce", turn_stale_nonce);
    subtest("turn: wrong credentials", turn_wrong_credentials);
    subtest("turn: unauthenticated answer", turn_unauthenticated_answer);
    subtest("turn: refresh and permissions", turn_refresh_and_permissions);
    subtest("turn: data path", turn_data_path);
    subtest("turn: tcp", turn_tcp);
    subtest("turn: tcp fallback", turn_fallback);
    subtest("turn: channel data framing", channel_data_framing);
    tern_ctx_free(ctx);
    return check_done();
}
