/* SPDX-License-Identifier: MIT */
/*
 * Self-test of the simulated network (vnet.c, vnet_nat.c, vnet_clock.c), with no peer
 * connection: delivery and timing over each link impairment, statistics of loss, burst loss,
 * duplication and reordering against their configured rates, MTU and rate limits, bound ports,
 * determinism for a seed, every RFC 4787 mapping and filtering behaviour, port assignment,
 * mapping expiry, hairpinning, nested NATs, and the clock interposition (libc readings and
 * OpenSSL's DTLS retransmission timer follow the virtual clock).
 */
#include "check.h"
#include "vnet.h"

#include "stun/stun.h"

#include <openssl/ssl.h>

#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#define T0 1000000
#define MS 1000
#define SEC 1000000

/* ---- helpers ---- */

typedef struct got {
    vnet_host_t *host;
    tern_addr_t local, remote;
    tern_time_t at;
    size_t len;
    uint32_t tag; /* first 4 bytes of the payload */
} got_t;

typedef struct inbox {
    got_t *items;
    size_t count, cap;
} inbox_t;

static void inbox_add(inbox_t *in, vnet_t *net, const vnet_delivery_t *d)
{
    if (in->count == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 64;
        in->items = realloc(in->items, in->cap * sizeof *in->items);
        if (!in->items)
            abort();
    }
    got_t *g = &in->items[in->count++];
    *g = (got_t){.host = d->host,
                 .local = d->dgram.local,
                 .remote = d->dgram.remote,
                 .at = vnet_now(net),
                 .len = d->dgram.len};
    if (d->dgram.len >= 4)
        memcpy(&g->tag, d->dgram.data, 4);
}

/* Jump from event to event until nothing is in flight or `until` is reached. */
static void run(vnet_t *net, inbox_t *in, tern_time_t until)
{
    vnet_delivery_t d;
    for (;;) {
        while (vnet_poll_delivery(net, &d))
            inbox_add(in, net, &d);
        tern_time_t next = vnet_next_delivery(net);
        if (next == TERN_TIME_NEVER || next > until)
            break;
        vnet_advance(net, next);
    }
    if (until != TERN_TIME_NEVER)
        vnet_advance(net, until);
}

static void send_tagged(vnet_t *net, vnet_host_t *h, const tern_addr_t *src, const tern_addr_t *dst,
                        uint32_t tag, size_t len)
{
    uint8_t buf[2048] = {0};
    memcpy(buf, &tag, sizeof tag);
    vnet_send(net, h, src, dst, buf, len < 4 ? 4 : len);
}

static tern_addr_t addr_of(const char *text)
{
    tern_addr_t a;
    if (tern_addr_parse(text, &a) != 0)
        abort();
    return a;
}

static bool same_endpoint(const tern_addr_t *a, const tern_addr_t *b)
{
    return tern_addr_equal(a, b);
}

typedef struct pair {
    vnet_t *net;
    vnet_host_t *a, *b;
    tern_addr_t aa, ba;
    inbox_t in;
} pair_t;

static void pair_open(pair_t *p, uint64_t seed, const vnet_link_t *link)
{
    memset(p, 0, sizeof *p);
    p->net = vnet_new(seed, T0);
    p->a = vnet_host_new(p->net, NULL, "10.0.0.1", NULL);
    p->b = vnet_host_new(p->net, NULL, "10.0.0.2", NULL);
    vnet_host_bind(p->a, 5000, &p->aa);
    vnet_host_bind(p->b, 6000, &p->ba);
    if (link)
        *vnet_host_up(p->a) = *link;
}

static void pair_close(pair_t *p)
{
    vnet_free(p->net);
    free(p->in.items);
}

/* ---- links ---- */

static void test_perfect_link(void)
{
    pair_t p;
    pair_open(&p, 1, NULL);
    eq_int(vnet_next_delivery(p.net), TERN_TIME_NEVER);
    send_tagged(p.net, p.a, &p.aa, &p.ba, 7, 100);
    eq_int(vnet_next_delivery(p.net), T0);
    run(p.net, &p.in, TERN_TIME_NEVER);
    eq_int(p.in.count, 1);
    ok(p.in.items[0].host == p.b);
    ok(same_endpoint(&p.in.items[0].local, &p.ba));
    ok(same_endpoint(&p.in.items[0].remote, &p.aa));
    eq_int(p.in.items[0].at, T0);
    eq_int(p.in.items[0].len, 100);
    eq_int(p.in.items[0].tag, 7);
    eq_int(vnet_stats(p.net)->sent, 1);
    eq_int(vnet_stats(p.net)->delivered, 1);
    pair_close(&p);
}

static void test_delay_and_jitter(void)
{
    vnet_link_t link = {.delay_us = 50 * MS};
    pair_t p;
    pair_open(&p, 2, &link);
    *vnet_host_down(p.b) = (vnet_link_t){.delay_us = 10 * MS};
    send_tagged(p.net, p.a, &p.aa, &p.ba, 1, 10);
    eq_int(vnet_next_delivery(p.net), T0 + 50 * MS); /* enters b's down link */
    vnet_delivery_t d;
    vnet_advance(p.net, T0 + 50 * MS);
    ok(!vnet_poll_delivery(p.net, &d));
    eq_int(vnet_next_delivery(p.net), T0 + 60 * MS);
    vnet_advance(p.net, T0 + 59 * MS);
    ok(!vnet_poll_delivery(p.net, &d));
    run(p.net, &p.in, TERN_TIME_NEVER);
    eq_int(p.in.count, 1);
    eq_int(p.in.items[0].at, T0 + 60 * MS);
    pair_close(&p);

    /* Jitter spreads arrivals but never reorders. */
    link = (vnet_link_t){.delay_us = 20 * MS, .jitter_us = 30 * MS};
    pair_open(&p, 3, &link);
    for (uint32_t i = 0; i < 1000; i++) {
        send_tagged(p.net, p.a, &p.aa, &p.ba, i, 10);
        vnet_advance(p.net, vnet_now(p.net) + 1 * MS);
    }
    run(p.net, &p.in, TERN_TIME_NEVER);
    eq_int(p.in.count, 1000);
    bool in_order = true, spread = false;
    for (size_t i = 0; i < p.in.count; i++) {
        in_order &= p.in.items[i].tag == i;
        tern_time_t sent = T0 + (tern_time_t)i * MS;
        tern_time_t delay = p.in.items[i].at - sent;
        ok(delay >= 20 * MS); /* a late predecessor may push it past delay + jitter */
        spread |= delay > 35 * MS;
    }
    ok(in_order);
    ok(spread);
    pair_close(&p);
}

static void test_loss(void)
{
    vnet_link_t link = {.loss = 0.1};
    pair_t p;
    pair_open(&p, 4, &link);
    for (uint32_t i = 0; i < 10000; i++)
        send_tagged(p.net, p.a, &p.aa, &p.ba, i, 10);
    run(p.net, &p.in, TERN_TIME_NEVER);
    /* Binomial(10000, 0.9): sd 30; 5 sd either side. */
    ok(p.in.count > 8850 && p.in.count < 9150);
    eq_int(vnet_stats(p.net)->lost + p.in.count, 10000);
    pair_close(&p);

    /* Bursts: same long-run rate, mean run of losses near the configured length. */
    link = (vnet_link_t){.loss = 0.1, .loss_burst = 4};
    pair_open(&p, 5, &link);
    for (uint32_t i = 0; i < 40000; i++)
        send_tagged(p.net, p.a, &p.aa, &p.ba, i, 10);
    run(p.net, &p.in, TERN_TIME_NEVER);
    size_t lost = 40000 - p.in.count, bursts = 0;
    uint32_t expect = 0;
    for (size_t i = 0; i < p.in.count; i++) {
        if (p.in.items[i].tag != expect)
            bursts++;
        expect = p.in.items[i].tag + 1;
    }
    double rate = (double)lost / 40000, mean = bursts ? (double)lost / (double)bursts : 0;
    printf("# burst loss: rate %.3f, mean burst %.2f\n", rate, mean);
    ok(rate > 0.08 && rate < 0.12);
    ok(mean > 3.3 && mean < 4.7);
    pair_close(&p);

    /* A link that is down drops everything; back up, it delivers again. */
    link = (vnet_link_t){.down = true};
    pair_open(&p, 6, &link);
    send_tagged(p.net, p.a, &p.aa, &p.ba, 1, 10);
    vnet_host_up(p.a)->down = false;
    send_tagged(p.net, p.a, &p.aa, &p.ba, 2, 10);
    run(p.net, &p.in, TERN_TIME_NEVER);
    eq_int(p.in.count, 1);
    eq_int(p.in.count ? p.in.items[0].tag : 0, 2);
    pair_close(&p);
}

static void test_duplicate_and_reorder(void)
{
    vnet_link_t link = {.duplicate = 0.05};
    pair_t p;
    pair_open(&p, 7, &link);
    for (uint32_t i = 0; i < 10000; i++)
        send_tagged(p.net, p.a, &p.aa, &p.ba, i, 10);
    run(p.net, &p.in, TERN_TIME_NEVER);
    ok(p.in.count > 10400 && p.in.count < 10600);
    eq_int(p.in.count, 10000 + vnet_stats(p.net)->duplicated);
    pair_close(&p);

    link = (vnet_link_t){.delay_us = 5 * MS, .reorder = 0.1, .reorder_us = 20 * MS};
    pair_open(&p, 8, &link);
    for (uint32_t i = 0; i < 2000; i++) {
        send_tagged(p.net, p.a, &p.aa, &p.ba, i, 10);
        vnet_advance(p.net, vnet_now(p.net) + 1 * MS);
    }
    run(p.net, &p.in, TERN_TIME_NEVER);
    eq_int(p.in.count, 2000);
    size_t late = 0;
    uint32_t highest = 0;
    for (size_t i = 0; i < p.in.count; i++) {
        if (i > 0 && p.in.items[i].tag < highest)
            late++;
        if (p.in.items[i].tag > highest)
            highest = p.in.items[i].tag;
    }
    printf("# late %zu reordered %llu\n", late, (unsigned long long)vnet_stats(p.net)->reordered);
    ok(late > 150 && late < 250);
    ok(vnet_stats(p.net)->reordered > 150);
    pair_close(&p);
}

static void test_mtu_and_rate(void)
{
    vnet_link_t link = {.mtu = 1500};
    pair_t p;
    pair_open(&p, 9, &link);
    send_tagged(p.net, p.a, &p.aa, &p.ba, 1, 1472);
    send_tagged(p.net, p.a, &p.aa, &p.ba, 2, 1473);
    run(p.net, &p.in, TERN_TIME_NEVER);
    eq_int(p.in.count, 1);
    eq_int(vnet_stats(p.net)->too_big, 1);
    pair_close(&p);

    /* IPv6 headers are 20 bytes longer. */
    vnet_t *net = vnet_new(10, T0);
    vnet_host_t *a = vnet_host_new(net, NULL, "2001:db8::1", NULL);
    vnet_host_t *b = vnet_host_new(net, NULL, "2001:db8::2", NULL);
    tern_addr_t aa, ba;
    vnet_host_bind(a, 0, &aa);
    vnet_host_bind(b, 0, &ba);
    vnet_host_up(a)->mtu = 1500;
    inbox_t in = {0};
    send_tagged(net, a, &aa, &ba, 1, 1452);
    send_tagged(net, a, &aa, &ba, 2, 1453);
    run(net, &in, TERN_TIME_NEVER);
    eq_int(in.count, 1);
    vnet_free(net);
    free(in.items);

    /* 1 Mbit/s: 1250-byte packets take 10 ms each; the 100 ms queue holds 10 behind one. */
    link = (vnet_link_t){.rate_bps = 1000000, .delay_us = 5 * MS};
    pair_open(&p, 11, &link);
    for (uint32_t i = 0; i < 100; i++)
        send_tagged(p.net, p.a, &p.aa, &p.ba, i, 1250 - 28);
    run(p.net, &p.in, TERN_TIME_NEVER);
    eq_int(p.in.count, 11);
    eq_int(vnet_stats(p.net)->queue_dropped, 89);
    if (p.in.count == 11) {
        eq_int(p.in.items[0].at, T0 + 15 * MS);
        eq_int(p.in.items[10].at, T0 + 115 * MS);
    }
    pair_close(&p);
}

static void test_ports_and_filter_state(void)
{
    pair_t p;
    pair_open(&p, 12, NULL);
    tern_addr_t unbound = p.ba;
    unbound.port = 6001;
    send_tagged(p.net, p.a, &p.aa, &unbound, 1, 10);
    tern_addr_t foreign = addr_of("10.0.0.9:5000");
    eq_int(vnet_send(p.net, p.a, &foreign, &p.ba, (const uint8_t *)"x", 1), -1);
    tern_addr_t v6 = addr_of("[2001:db8::2]:6000");
    eq_int(vnet_send(p.net, p.a, &p.aa, &v6, (const uint8_t *)"x", 1), -1);
    tern_addr_t nowhere = addr_of("10.9.9.9:1");
    send_tagged(p.net, p.a, &p.aa, &nowhere, 1, 10);
    run(p.net, &p.in, TERN_TIME_NEVER);
    eq_int(p.in.count, 0);
    eq_int(vnet_stats(p.net)->unbound, 1);
    eq_int(vnet_stats(p.net)->bad_source, 2);
    eq_int(vnet_stats(p.net)->no_route, 1);

    /* Binding: a taken port fails, port 0 picks a fresh one, unbinding stops delivery. */
    tern_addr_t x;
    eq_int(vnet_host_bind(p.b, 6000, &x), -1);
    eq_int(vnet_host_bind(p.b, 0, &x), 0);
    ok(x.port != 0 && x.port != 6000);
    vnet_host_unbind(p.b, 6000);
    send_tagged(p.net, p.a, &p.aa, &p.ba, 1, 10);
    run(p.net, &p.in, TERN_TIME_NEVER);
    eq_int(p.in.count, 0);
    ok(vnet_host_new(p.net, NULL, "10.0.0.1", NULL) == NULL); /* address in use */
    ok(vnet_host_new(p.net, NULL, "not an ip", NULL) == NULL);
    eq_str(vnet_host_name(p.a), "10.0.0.1");
    pair_close(&p);
}

static bool drop_odd(void *user, tern_time_t now, const vnet_packet_t *pkt)
{
    (void)now;
    int *seen = user;
    (*seen)++;
    uint32_t tag;
    memcpy(&tag, pkt->data, 4);
    return tag % 2 == 1;
}

static void test_filter(void)
{
    pair_t p;
    pair_open(&p, 13, NULL);
    int seen = 0;
    vnet_set_filter(p.net, drop_odd, &seen);
    for (uint32_t i = 0; i < 10; i++)
        send_tagged(p.net, p.a, &p.aa, &p.ba, i, 10);
    run(p.net, &p.in, TERN_TIME_NEVER);
    eq_int(seen, 10);
    eq_int(p.in.count, 5);
    eq_int(vnet_stats(p.net)->filtered, 5);
    pair_close(&p);
}

/* A digest of everything a lossy, jittery, duplicating run delivers, and when. */
static uint64_t run_digest(uint64_t seed)
{
    vnet_link_t link = {
        .delay_us = 30 * MS, .jitter_us = 10 * MS, .loss = 0.2, .duplicate = 0.05, .reorder = 0.05};
    pair_t p;
    pair_open(&p, seed, &link);
    for (uint32_t i = 0; i < 500; i++) {
        send_tagged(p.net, p.a, &p.aa, &p.ba, i, 10);
        vnet_advance(p.net, vnet_now(p.net) + 2 * MS);
    }
    run(p.net, &p.in, TERN_TIME_NEVER);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < p.in.count; i++)
        h = (h ^ (uint64_t)p.in.items[i].at ^ ((uint64_t)p.in.items[i].tag << 40)) *
            1099511628211ull;
    pair_close(&p);
    return h;
}

static void test_determinism(void)
{
    ok(run_digest(42) == run_digest(42));
    ok(run_digest(42) != run_digest(43));
}

/* ---- NATs ---- */

typedef struct natlab {
    vnet_t *net;
    vnet_nat_t *nat;
    vnet_host_t *h1, *h2, *s1, *s2;
    tern_addr_t h1a, h2a, s1a, s1b, s2a; /* s1b: a second port on s1 */
    inbox_t in;
} natlab_t;

static void natlab_open(natlab_t *l, const vnet_nat_config_t *cfg)
{
    memset(l, 0, sizeof *l);
    l->net = vnet_new(20, T0);
    l->nat = vnet_nat_new(l->net, NULL, "203.0.113.1", cfg);
    l->h1 = vnet_host_new(l->net, l->nat, "192.168.1.2", NULL);
    l->h2 = vnet_host_new(l->net, l->nat, "192.168.1.3", NULL);
    l->s1 = vnet_host_new(l->net, NULL, "198.51.100.1", NULL);
    l->s2 = vnet_host_new(l->net, NULL, "198.51.100.2", NULL);
    vnet_host_bind(l->h1, 5000, &l->h1a);
    vnet_host_bind(l->h2, 5000, &l->h2a);
    vnet_host_bind(l->s1, 3478, &l->s1a);
    vnet_host_bind(l->s1, 3479, &l->s1b);
    vnet_host_bind(l->s2, 3478, &l->s2a);
}

static void natlab_close(natlab_t *l)
{
    vnet_free(l->net);
    free(l->in.items);
}

/* Send from `h` to `dst` and return the source address the receiver saw (family 0: lost). */
static tern_addr_t seen_as(natlab_t *l, vnet_host_t *h, const tern_addr_t *src,
                           const tern_addr_t *dst)
{
    l->in.count = 0;
    send_tagged(l->net, h, src, dst, 0x5eed, 20);
    run(l->net, &l->in, TERN_TIME_NEVER);
    tern_addr_t none = {0};
    return l->in.count == 1 ? l->in.items[0].remote : none;
}

/* Whether a datagram from (h, src) to dst arrives. */
static bool reaches(natlab_t *l, vnet_host_t *h, const tern_addr_t *src, const tern_addr_t *dst)
{
    return seen_as(l, h, src, dst).family != 0;
}

static void test_nat_full_cone(void)
{
    vnet_nat_config_t cfg = vnet_nat_config_of(VNET_NAT_FULL_CONE);
    natlab_t l;
    natlab_open(&l, &cfg);
    tern_addr_t m1 = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    eq_int(m1.port, 5000); /* preserved */
    tern_addr_t pub = *vnet_nat_public_addr(l.nat);
    pub.port = m1.port;
    ok(same_endpoint(&m1, &pub));
    /* EIM: the same mapping toward another server. */
    tern_addr_t m2 = seen_as(&l, l.h1, &l.h1a, &l.s2a);
    ok(same_endpoint(&m1, &m2));
    /* EIF: anyone may send to it, and the reply reaches h1 with its source intact. */
    tern_addr_t stranger;
    vnet_host_t *s3 = vnet_host_new(l.net, NULL, "198.51.100.3", NULL);
    vnet_host_bind(s3, 9999, &stranger);
    tern_addr_t back = seen_as(&l, s3, &stranger, &m1);
    ok(same_endpoint(&back, &stranger));
    ok(l.in.count == 1 && l.in.items[0].host == l.h1 &&
       same_endpoint(&l.in.items[0].local, &l.h1a));
    /* The second host's port 5000 is taken outside: it gets another one. */
    tern_addr_t m3 = seen_as(&l, l.h2, &l.h2a, &l.s1a);
    ok(m3.port != 5000 && m3.port >= 49152);
    eq_int(vnet_nat_mapping_count(l.nat), 2);
    tern_addr_t found;
    eq_int(vnet_nat_find_mapping(l.nat, &l.h1a, &l.s2a, &found), 0);
    ok(same_endpoint(&found, &m1));
    /* An unmapped port is dropped. */
    tern_addr_t nomap = pub;
    nomap.port = 7777;
    ok(!reaches(&l, l.s1, &l.s1a, &nomap));
    eq_int(vnet_stats(l.net)->nat_no_mapping, 1);
    natlab_close(&l);
}

static void test_nat_filtering(void)
{
    /* Address-dependent: the contacted server from any port, nobody else. */
    vnet_nat_config_t cfg = vnet_nat_config_of(VNET_NAT_RESTRICTED_CONE);
    natlab_t l;
    natlab_open(&l, &cfg);
    tern_addr_t m = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    ok(reaches(&l, l.s1, &l.s1a, &m));
    ok(reaches(&l, l.s1, &l.s1b, &m));
    ok(!reaches(&l, l.s2, &l.s2a, &m));
    eq_int(vnet_stats(l.net)->nat_filtered, 1);
    natlab_close(&l);

    /* Address- and port-dependent: only the exact endpoint contacted. */
    cfg = vnet_nat_config_of(VNET_NAT_PORT_RESTRICTED_CONE);
    natlab_open(&l, &cfg);
    m = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    ok(reaches(&l, l.s1, &l.s1a, &m));
    ok(!reaches(&l, l.s1, &l.s1b, &m));
    ok(!reaches(&l, l.s2, &l.s2a, &m));
    /* Once h1 has sent to s2, s2 may answer through the same (EIM) mapping. */
    tern_addr_t m2 = seen_as(&l, l.h1, &l.h1a, &l.s2a);
    ok(same_endpoint(&m, &m2));
    ok(reaches(&l, l.s2, &l.s2a, &m));
    natlab_close(&l);
}

static void test_nat_mapping_behaviour(void)
{
    /* Symmetric: a new port per destination endpoint, sequential. */
    vnet_nat_config_t cfg = vnet_nat_config_of(VNET_NAT_SYMMETRIC);
    natlab_t l;
    natlab_open(&l, &cfg);
    tern_addr_t a = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    tern_addr_t b = seen_as(&l, l.h1, &l.h1a, &l.s1b);
    tern_addr_t c = seen_as(&l, l.h1, &l.h1a, &l.s2a);
    tern_addr_t a2 = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    eq_int(a.port, 49152);
    eq_int(b.port, 49153);
    eq_int(c.port, 49154);
    ok(same_endpoint(&a, &a2));
    /* s2 cannot use the mapping made for s1. */
    ok(!reaches(&l, l.s2, &l.s2a, &a));
    ok(reaches(&l, l.s2, &l.s2a, &c));
    natlab_close(&l);

    /* Address-dependent mapping: same server IP, any port, shares the mapping. */
    cfg = (vnet_nat_config_t){.mapping = VNET_MAP_ADDRESS_DEPENDENT};
    natlab_open(&l, &cfg);
    a = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    b = seen_as(&l, l.h1, &l.h1a, &l.s1b);
    c = seen_as(&l, l.h1, &l.h1a, &l.s2a);
    ok(same_endpoint(&a, &b));
    ok(!same_endpoint(&a, &c));
    natlab_close(&l);

    /* Random port assignment stays in range and differs from the internal port. */
    cfg = (vnet_nat_config_t){
        .mapping = VNET_MAP_ADDRESS_PORT_DEPENDENT, .ports = VNET_PORT_RANDOM, .port_base = 20000};
    natlab_open(&l, &cfg);
    a = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    b = seen_as(&l, l.h1, &l.h1a, &l.s1b);
    ok(a.port >= 20000 && b.port >= 20000 && a.port != b.port);
    natlab_close(&l);

    /* A full NAT refuses new flows but keeps the old ones. */
    cfg = (vnet_nat_config_t){.mapping = VNET_MAP_ADDRESS_PORT_DEPENDENT, .max_mappings = 1};
    natlab_open(&l, &cfg);
    ok(reaches(&l, l.h1, &l.h1a, &l.s1a));
    ok(!reaches(&l, l.h1, &l.h1a, &l.s2a));
    ok(reaches(&l, l.h1, &l.h1a, &l.s1a));
    eq_int(vnet_stats(l.net)->nat_full, 1);
    natlab_close(&l);
}

static void test_nat_timeout(void)
{
    vnet_nat_config_t cfg = {.mapping_timeout_us = 30 * SEC};
    natlab_t l;
    natlab_open(&l, &cfg);
    tern_addr_t m = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    run(l.net, &l.in, vnet_now(l.net) + 29 * SEC);
    ok(reaches(&l, l.s1, &l.s1a, &m)); /* inbound does not refresh by default */
    run(l.net, &l.in, vnet_now(l.net) + 1 * SEC);
    ok(!reaches(&l, l.s1, &l.s1a, &m));
    eq_int(vnet_nat_mapping_count(l.nat), 0);
    /* Outbound keepalives hold it open. */
    m = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    for (int i = 0; i < 5; i++) {
        run(l.net, &l.in, vnet_now(l.net) + 20 * SEC);
        ok(reaches(&l, l.h1, &l.h1a, &l.s1a));
    }
    ok(reaches(&l, l.s1, &l.s1a, &m));
    natlab_close(&l);

    cfg.inbound_refresh = true;
    natlab_open(&l, &cfg);
    m = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    for (int i = 0; i < 5; i++) {
        run(l.net, &l.in, vnet_now(l.net) + 20 * SEC);
        ok(reaches(&l, l.s1, &l.s1a, &m));
    }
    natlab_close(&l);
}

static void test_nat_hairpin(void)
{
    vnet_nat_config_t cfg = vnet_nat_config_of(VNET_NAT_PORT_RESTRICTED_CONE);
    cfg.hairpinning = true;
    natlab_t l;
    natlab_open(&l, &cfg);
    tern_addr_t m1 = seen_as(&l, l.h1, &l.h1a, &l.s1a);
    tern_addr_t m2 = seen_as(&l, l.h2, &l.h2a, &l.s1a);
    /* h1 never sent to h2's external address, so h2's first datagram is filtered, but it
     * opens h2's own filter toward h1 (as crossing ICE checks do). */
    ok(!reaches(&l, l.h2, &l.h2a, &m1));
    tern_addr_t seen = seen_as(&l, l.h1, &l.h1a, &m2);
    ok(same_endpoint(&seen, &m1)); /* REQ-9: the external source */
    ok(l.in.count == 1 && l.in.items[0].host == l.h2);
    ok(vnet_stats(l.net)->nat_hairpin >= 1);
    natlab_close(&l);

    cfg.hairpinning = false;
    natlab_open(&l, &cfg);
    m2 = seen_as(&l, l.h2, &l.h2a, &l.s1a);
    ok(!reaches(&l, l.h1, &l.h1a, &m2));
    eq_int(vnet_stats(l.net)->nat_hairpin_dropped, 1);
    /* Private addresses reach each other directly inside the realm. */
    tern_addr_t direct = seen_as(&l, l.h1, &l.h1a, &l.h2a);
    ok(same_endpoint(&direct, &l.h1a));
    natlab_close(&l);
}

static void test_nat_nested_and_links(void)
{
    vnet_t *net = vnet_new(30, T0);
    vnet_nat_t *cgn = vnet_nat_new(net, NULL, "203.0.113.9", NULL);
    vnet_nat_t *home = vnet_nat_new(net, cgn, "100.64.0.2", NULL);
    vnet_host_t *h = vnet_host_new(net, home, "192.168.1.2", NULL);
    vnet_host_t *s = vnet_host_new(net, NULL, "198.51.100.1", NULL);
    vnet_host_t *h6 = vnet_host_new(net, home, "fd00::2", NULL);
    vnet_host_t *s6 = vnet_host_new(net, NULL, "2001:db8::1", NULL);
    ok(net && cgn && home && h && s && h6 && s6);
    ok(vnet_nat_new(net, NULL, "203.0.113.9", NULL) == NULL); /* in use */
    tern_addr_t ha, sa, h6a, s6a;
    vnet_host_bind(h, 4000, &ha);
    vnet_host_bind(s, 3478, &sa);
    vnet_host_bind(h6, 4000, &h6a);
    vnet_host_bind(s6, 3478, &s6a);
    *vnet_host_up(h) = (vnet_link_t){.delay_us = 1 * MS};
    *vnet_nat_up(home) = (vnet_link_t){.delay_us = 2 * MS};
    *vnet_nat_up(cgn) = (vnet_link_t){.delay_us = 4 * MS};
    *vnet_host_down(s) = (vnet_link_t){.delay_us = 8 * MS};
    inbox_t in = {0};
    send_tagged(net, h, &ha, &sa, 1, 10);
    run(net, &in, TERN_TIME_NEVER);
    eq_int(in.count, 1);
    if (in.count == 1) {
        eq_int(in.items[0].at, T0 + 15 * MS);
        tern_addr_t pub = addr_of("203.0.113.9:4000");
        ok(same_endpoint(&in.items[0].remote, &pub));
        /* The reply finds its way back through both NATs (no delay inbound). */
        tern_addr_t from = in.items[0].remote;
        in.count = 0;
        send_tagged(net, s, &sa, &from, 2, 10);
        run(net, &in, TERN_TIME_NEVER);
        ok(in.count == 1 && in.items[0].host == h && same_endpoint(&in.items[0].remote, &sa));
    }
    /* An IPv4 NAT does not carry IPv6. */
    in.count = 0;
    send_tagged(net, h6, &h6a, &s6a, 3, 10);
    run(net, &in, TERN_TIME_NEVER);
    eq_int(in.count, 0);
    eq_int(vnet_stats(net)->no_route, 1);
    vnet_free(net);
    free(in.items);
}

/* ---- the STUN server ---- */

static size_t binding_request(uint8_t *out, uint8_t tid_byte)
{
    static const uint8_t head[] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42};
    memcpy(out, head, sizeof head);
    memset(out + 8, tid_byte, 12);
    return 20;
}

/* Ask the server through h and return what the stack's own STUN parser reads in the answer. */
static bool ask_stun(vnet_t *net, vnet_host_t *h, const tern_addr_t *src, const tern_addr_t *srv,
                     tern_addr_t *mapped)
{
    uint8_t req[20];
    vnet_send(net, h, src, srv, req, binding_request(req, 0x5a));
    vnet_delivery_t d;
    bool got = false;
    for (;;) {
        while (vnet_poll_delivery(net, &d)) {
            tern_stun_msg_t m;
            got = d.host == h && tern_stun_parse(d.dgram.data, d.dgram.len, &m) == 0 &&
                  m.msg_class == TERN_STUN_SUCCESS && m.method == 0x001 && m.tid[0] == 0x5a &&
                  m.tid[11] == 0x5a && tern_stun_check_fingerprint(&m) == 0 &&
                  (m.present & TERN_STUN_HAS_XOR_MAPPED_ADDRESS);
            if (got)
                *mapped = m.xor_mapped_address;
        }
        tern_time_t next = vnet_next_delivery(net);
        if (next == TERN_TIME_NEVER)
            break;
        vnet_advance(net, next);
    }
    return got;
}

static void test_stun_server(void)
{
    vnet_t *net = vnet_new(50, T0);
    vnet_nat_config_t sym = vnet_nat_config_of(VNET_NAT_SYMMETRIC);
    vnet_nat_t *nat = vnet_nat_new(net, NULL, "203.0.113.7", &sym);
    vnet_host_t *h = vnet_host_new(net, nat, "192.168.0.10", NULL);
    vnet_host_t *h6 = vnet_host_new(net, NULL, "2001:db8::10", NULL);
    vnet_host_t *srv = vnet_stun_server_new(net, NULL, "198.51.100.20", 3478);
    vnet_host_t *srv6 = vnet_stun_server_new(net, NULL, "2001:db8::20", 3478);
    ok(srv && srv6 && h && h6);
    tern_addr_t ha, h6a, mapped, external;
    vnet_host_bind(h, 4444, &ha);
    vnet_host_bind(h6, 4444, &h6a);
    tern_addr_t sa = addr_of("198.51.100.20:3478"), s6a = addr_of("[2001:db8::20]:3478");
    ok(ask_stun(net, h, &ha, &sa, &mapped));
    eq_int(vnet_nat_find_mapping(nat, &ha, &sa, &external), 0);
    ok(tern_addr_equal(&mapped, &external));
    ok(ask_stun(net, h6, &h6a, &s6a, &mapped));
    ok(tern_addr_equal(&mapped, &h6a));
    eq_int(vnet_stun_answered(srv), 1);
    eq_int(vnet_stun_answered(srv6), 1);
    /* Anything else is ignored: a truncated request, a response, not STUN at all. */
    uint8_t bad[24];
    binding_request(bad, 1);
    vnet_send(net, h, &ha, &sa, bad, 19);
    bad[0] = 0x01; /* 0x0101: a Binding success response, not a request */
    bad[1] = 0x01;
    vnet_send(net, h, &ha, &sa, bad, 20);
    binding_request(bad, 1);
    bad[3] = 4; /* length says 4 more bytes, none follow */
    vnet_send(net, h, &ha, &sa, bad, 20);
    vnet_send(net, h, &ha, &sa, (const uint8_t *)"\x17hello", 6);
    inbox_t in = {0};
    run(net, &in, TERN_TIME_NEVER);
    eq_int(in.count, 0);
    eq_int(vnet_stun_ignored(srv), 4);
    free(in.items);
    vnet_free(net);
}

/* ---- the process clock ---- */

static tern_time_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (tern_time_t)ts.tv_sec * SEC + ts.tv_nsec / 1000;
}

static tern_time_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (tern_time_t)tv.tv_sec * SEC + tv.tv_usec;
}

static void test_clock(void)
{
    vnet_t *net = vnet_new(40, T0);
    tern_time_t m0 = mono_us(), w0 = wall_us();
    eq_int(mono_us(), m0); /* frozen while virtual time stands still */
    vnet_advance(net, T0 + 1234567);
    eq_int(mono_us() - m0, 1234567);
    eq_int(wall_us() - w0, 1234567);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    eq_int((tern_time_t)rt.tv_sec * SEC + rt.tv_nsec / 1000 - w0, 1234567);
    vnet_advance(net, T0); /* never backwards */
    eq_int(mono_us() - m0, 1234567);
    ok(w0 > 1700000000 * (tern_time_t)SEC); /* wall time is anchored to the real date */
    vnet_free(net);

    /* A new run restarts its own now but the process clock keeps going forward. */
    tern_time_t before = mono_us();
    net = vnet_new(41, T0);
    ok(mono_us() > before);
    tern_time_t m1 = mono_us();
    vnet_advance(net, T0 + 500);
    eq_int(mono_us() - m1, 500);
    vnet_free(net);

    /* A run started at vnet_clock_next_start has no offset: its now is the process time. */
    tern_time_t next = vnet_clock_next_start();
    ok(next >= mono_us() + SEC && next % SEC == 0);
    net = vnet_new(43, next);
    eq_int(mono_us(), next);
    vnet_advance(net, next + 777);
    eq_int(mono_us(), next + 777);
    vnet_free(net);

    /* Other clocks are real. */
    struct timespec cpu;
    eq_int(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu), 0);
    ok(cpu.tv_sec > 0 || cpu.tv_nsec > 0);
    ok(vnet_clock_real_us() > 0);

    /* The libraries find our definitions first (same lookup as their own imports). */
    void *gtod = dlsym(RTLD_DEFAULT, "gettimeofday");
    void *cgt = dlsym(RTLD_DEFAULT, "clock_gettime");
    ok(gtod == (void *)gettimeofday);
    ok(cgt == (void *)clock_gettime);
}

/* OpenSSL's DTLS retransmission timer must run on the virtual clock. */
static void test_clock_dtls_timer(void)
{
    vnet_t *net = vnet_new(42, T0);
    SSL_CTX *sctx = SSL_CTX_new(DTLS_client_method());
    SSL *ssl = sctx ? SSL_new(sctx) : NULL;
    ok(ssl != NULL);
    if (!ssl) {
        SSL_CTX_free(sctx);
        vnet_free(net);
        return;
    }
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_connect_state(ssl);
    uint64_t reads = vnet_clock_virtual_reads();
    ok(SSL_do_handshake(ssl) <= 0);
    size_t hello = BIO_ctrl_pending(wbio);
    ok(hello > 0);
    ok(vnet_clock_virtual_reads() > reads); /* libssl asked our clock */
    struct timeval tv;
    ok(DTLSv1_get_timeout(ssl, &tv) == 1);
    eq_int((tern_time_t)tv.tv_sec * SEC + tv.tv_usec, 1 * SEC); /* RFC 6347 §4.2.4.1 */
    vnet_advance(net, T0 + 400 * MS);
    ok(DTLSv1_get_timeout(ssl, &tv) == 1);
    eq_int((tern_time_t)tv.tv_sec * SEC + tv.tv_usec, 600 * MS);
    eq_int(DTLSv1_handle_timeout(ssl), 0); /* not yet */
    eq_int(BIO_ctrl_pending(wbio), hello);
    vnet_advance(net, T0 + 1001 * MS);
    eq_int(DTLSv1_handle_timeout(ssl), 1); /* retransmitted, in virtual time */
    eq_int(BIO_ctrl_pending(wbio), 2 * hello);
    ok(DTLSv1_get_timeout(ssl, &tv) == 1);
    eq_int((tern_time_t)tv.tv_sec * SEC + tv.tv_usec, 2 * SEC); /* doubled */
    SSL_free(ssl);
    SSL_CTX_free(sctx);
    vnet_free(net);
}

int main(void)
{
    subtest("perfect link", test_perfect_link);
    subtest("delay and jitter", test_delay_and_jitter);
    subtest("loss", test_loss);
    subtest("duplication and reordering", test_duplicate_and_reorder);
    subtest("mtu and rate", test_mtu_and_rate);
    subtest("ports", test_ports_and_filter_state);
    subtest("filter", test_filter);
    subtest("determinism", test_determinism);
    subtest("nat full cone", test_nat_full_cone);
    subtest("nat filtering", test_nat_filtering);
    subtest("nat mapping", test_nat_mapping_behaviour);
    subtest("nat timeout", test_nat_timeout);
    subtest("nat hairpin", test_nat_hairpin);
    subtest("nat nested", test_nat_nested_and_links);
    subtest("stun server", test_stun_server);
    subtest("clock", test_clock);
    subtest("clock drives dtls timer", test_clock_dtls_timer);
    return check_done();
}
