/* SPDX-License-Identifier: MIT */
/*
 * Two peers connect over the simulated network and use a data channel, under each network
 * condition and over several seeds: host candidates only; no impairment, delay, loss (5, 10,
 * 20 %, independent and in bursts), duplication, reordering, all at once, a small MTU, slow
 * signaling, IPv6, one shared context, implicit descriptions, and NATs that host and
 * peer-reflexive candidates can cross (one side behind a full-cone, port-restricted or
 * symmetric NAT, both behind the same one). Each run checks that the
 * channel opens within a virtual-time budget, that every reliable message in both directions
 * arrives once, intact and in order, that closing the channel reaches both sides, and that the
 * driver contract holds. SIM_ONLY=a,b runs only the conditions whose name contains one of the
 * texts.
 */
#include "check.h"
#include "simpeer.h"
#include "simpeer_traffic.h"

#include <stdlib.h>
#include <string.h>

#define MS 1000
#define SEC 1000000
#define MESSAGES 40

/* Where the NATs are: alice behind one and bob public (bob learns alice as peer-reflexive
 * from her checks), or both behind the same one (their private addresses reach each other). */
typedef enum {
    NAT_NONE,
    NAT_ALICE_FULL_CONE,
    NAT_ALICE_PORT_RESTRICTED,
    NAT_ALICE_SYMMETRIC,
    NAT_BOTH_SAME,
} nat_place_t;

typedef struct condition {
    const char *name;
    vnet_link_t link; /* each peer's up link: every datagram crosses one */
    tern_time_t open_budget_us;
    tern_time_t transfer_budget_us;
    unsigned seeds;
    bool shared_ctx;
    bool ipv6;
    bool implicit_sdp;
    tern_time_t signaling_delay_us;
    nat_place_t nat;
    unsigned drop_dtls_handshake; /* first DTLS handshake datagrams each side loses */
} condition_t;

static const condition_t conditions[] = {
    {.name = "no impairment", .open_budget_us = 2 * SEC, .transfer_budget_us = 5 * SEC, .seeds = 6},
    {.name = "delay 50 ms",
     .link = {.delay_us = 50 * MS},
     .open_budget_us = 5 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 6},
    {.name = "loss 5%",
     .link = {.delay_us = 10 * MS, .loss = 0.05},
     .open_budget_us = 20 * SEC,
     .transfer_budget_us = 60 * SEC,
     .seeds = 10},
    {.name = "loss 10%",
     .link = {.delay_us = 10 * MS, .loss = 0.10},
     .open_budget_us = 30 * SEC,
     .transfer_budget_us = 90 * SEC,
     .seeds = 10},
    /* 20 % each way loses a third of round trips: SCTP's RTO backs off to its 10 s maximum
     * and a transfer can idle for long stretches, so the budget is generous. */
    {.name = "loss 20%",
     .link = {.delay_us = 10 * MS, .loss = 0.20},
     .open_budget_us = 60 * SEC,
     .transfer_budget_us = 600 * SEC,
     .seeds = 10},
    /* Bursts count datagrams, so on a quiet link a long one is a long outage; a mean of 2
     * keeps outages shorter than ICE's check timeout (longer ones fail ICE, as they should).
     * The open budget allows for the slow SCTP setup of README observation O1 (seed 6048). */
    {.name = "burst loss 10%",
     .link = {.delay_us = 10 * MS, .loss = 0.10, .loss_burst = 2},
     .open_budget_us = 60 * SEC,
     .transfer_budget_us = 90 * SEC,
     .seeds = 6},
    {.name = "duplication 10%",
     .link = {.delay_us = 10 * MS, .duplicate = 0.10},
     .open_budget_us = 5 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 6},
    {.name = "reordering 10%",
     .link = {.delay_us = 10 * MS, .jitter_us = 5 * MS, .reorder = 0.10, .reorder_us = 15 * MS},
     .open_budget_us = 5 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 6},
    {.name = "everything",
     .link = {.delay_us = 30 * MS,
              .jitter_us = 10 * MS,
              .loss = 0.05,
              .duplicate = 0.05,
              .reorder = 0.05,
              .reorder_us = 20 * MS},
     .open_budget_us = 30 * SEC,
     .transfer_budget_us = 90 * SEC,
     .seeds = 10},
    {.name = "mtu 1280",
     .link = {.delay_us = 5 * MS, .mtu = 1280},
     .open_budget_us = 5 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 4},
    {.name = "slow signaling",
     .link = {.delay_us = 10 * MS},
     .signaling_delay_us = 300 * MS,
     .open_budget_us = 5 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 4},
    {.name = "ipv6",
     .link = {.delay_us = 10 * MS},
     .ipv6 = true,
     .open_budget_us = 5 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 4},
    {.name = "shared context",
     .link = {.delay_us = 10 * MS, .loss = 0.05},
     .shared_ctx = true,
     .open_budget_us = 20 * SEC,
     .transfer_budget_us = 60 * SEC,
     .seeds = 4},
    {.name = "alice behind a full-cone nat",
     .link = {.delay_us = 10 * MS},
     .nat = NAT_ALICE_FULL_CONE,
     .open_budget_us = 5 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 4},
    {.name = "alice behind a port-restricted nat",
     .link = {.delay_us = 10 * MS, .loss = 0.05},
     .nat = NAT_ALICE_PORT_RESTRICTED,
     .open_budget_us = 20 * SEC,
     .transfer_budget_us = 60 * SEC,
     .seeds = 4},
    {.name = "alice behind a symmetric nat",
     .link = {.delay_us = 10 * MS},
     .nat = NAT_ALICE_SYMMETRIC,
     .open_budget_us = 5 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 4},
    {.name = "both behind one nat",
     .link = {.delay_us = 2 * MS},
     .nat = NAT_BOTH_SAME,
     .open_budget_us = 5 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 4},
    /* If OpenSSL's retransmission timer did not run on the virtual clock (vnet_clock.c), the
     * handshake would never recover from these losses in a simulation. */
    {.name = "dtls handshake loss",
     .link = {.delay_us = 10 * MS},
     .drop_dtls_handshake = 3,
     .open_budget_us = 10 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 2},
    {.name = "implicit descriptions",
     .link = {.delay_us = 10 * MS},
     .implicit_sdp = true,
     .open_budget_us = 5 * SEC,
     .transfer_budget_us = 20 * SEC,
     .seeds = 4},
};

/* Drops the first DTLS handshake records (content type 22, RFC 6347 §4.1) of each side. */
typedef struct dtls_dropper {
    unsigned limit;
    unsigned dropped[2];
    const vnet_host_t *hosts[2];
} dtls_dropper_t;

static bool drop_handshake(void *user, tern_time_t now, const vnet_packet_t *pkt)
{
    (void)now;
    dtls_dropper_t *d = user;
    if (pkt->len == 0 || pkt->data[0] != 22)
        return false;
    int side = pkt->from == d->hosts[1];
    if (d->dropped[side] >= d->limit)
        return false;
    d->dropped[side]++;
    return true;
}

/* What one run watches. */
typedef struct run {
    sim_t *sim;
    simpeer_t *a, *b;
    tern_dc_t *a_dc, *b_dc;
    bool a_open;
    unsigned a_closed, b_closed;
    simstream_t ab, ba; /* a to b, b to a */
} run_t;

static void on_a_event(simpeer_t *p, const tern_event_t *ev, void *user)
{
    (void)p;
    run_t *r = user;
    switch (ev->type) {
    case TERN_EV_DC_OPEN:
        if (ev->dc != r->a_dc)
            sim_fail(r->sim, "alice: open event for an unknown channel");
        r->a_open = true;
        break;
    case TERN_EV_DC_MESSAGE:
        simstream_receive(&r->ba, ev->u.message.data, ev->u.message.len, ev->u.message.is_text);
        break;
    case TERN_EV_DC_CLOSE:
        r->a_closed++;
        r->a_dc = NULL;
        break;
    case TERN_EV_DATA_CHANNEL:
        sim_fail(r->sim, "alice: unexpected incoming channel \"%s\"", tern_dc_label(ev->dc));
        break;
    default:
        break;
    }
}

static void on_b_event(simpeer_t *p, const tern_event_t *ev, void *user)
{
    (void)p;
    run_t *r = user;
    switch (ev->type) {
    case TERN_EV_DATA_CHANNEL:
        if (r->b_dc)
            sim_fail(r->sim, "bob: a second incoming channel");
        r->b_dc = ev->dc;
        if (strcmp(tern_dc_label(ev->dc), "chat") != 0 || !tern_dc_ordered(ev->dc) ||
            tern_dc_max_retransmits(ev->dc) != -1 || tern_dc_max_packet_life_time(ev->dc) != -1 ||
            tern_dc_state(ev->dc) != TERN_DC_STATE_OPEN)
            sim_fail(r->sim, "bob: incoming channel has the wrong properties");
        if (strcmp(tern_dc_protocol(ev->dc), "sim-proto") != 0)
            sim_fail(r->sim, "bob: protocol \"%s\"", tern_dc_protocol(ev->dc));
        break;
    case TERN_EV_DC_MESSAGE:
        simstream_receive(&r->ab, ev->u.message.data, ev->u.message.len, ev->u.message.is_text);
        break;
    case TERN_EV_DC_CLOSE:
        r->b_closed++;
        r->b_dc = NULL;
        break;
    default:
        break;
    }
}

static bool is_open(sim_t *sim, void *arg)
{
    (void)sim;
    run_t *r = arg;
    return r->a_open && r->b_dc != NULL;
}

static bool all_delivered(sim_t *sim, void *arg)
{
    (void)sim;
    run_t *r = arg;
    return simstream_complete(&r->ab) && simstream_complete(&r->ba);
}

static bool both_closed(sim_t *sim, void *arg)
{
    (void)sim;
    run_t *r = arg;
    return r->a_closed && r->b_closed;
}

/* Message sizes: mostly small, some several packets long, a few large. */
static size_t pick_size(sim_t *sim)
{
    uint64_t x = sim_random(sim);
    unsigned kind = (unsigned)(x % 100);
    x >>= 8;
    if (kind < 70)
        return 12 + x % 1189;
    if (kind < 95)
        return 1200 + x % 15185;
    return 16384 + x % 49153;
}

static void send_all(run_t *r)
{
    tern_time_t now = sim_now(r->sim);
    for (int i = 0; i < MESSAGES; i++) {
        int e1 = r->a_dc ? simstream_send(&r->ab, r->a_dc, now, pick_size(r->sim)) : -1;
        int e2 = r->b_dc ? simstream_send(&r->ba, r->b_dc, now, pick_size(r->sim)) : -1;
        if (e1 || e2) {
            sim_fail(r->sim, "send failed: %s / %s", tern_err_name(e1), tern_err_name(e2));
            break;
        }
    }
    sim_drain(r->sim, r->a);
    sim_drain(r->sim, r->b);
}

typedef struct tally {
    tern_time_t open_us[64];
    unsigned count;
} tally_t;

static void run_one(const condition_t *c, uint64_t seed, tally_t *tally)
{
    sim_config_t sc = {.seed = seed,
                       .shared_ctx = c->shared_ctx,
                       .signaling_delay_us = c->signaling_delay_us,
                       .implicit_sdp = c->implicit_sdp};
    run_t r = {0};
    r.sim = sim_new(&sc);
    simstream_init(&r.ab, 1, true, true, false);
    simstream_init(&r.ba, 2, true, true, false);
    const char *a_ip[] = {c->ipv6 ? "2001:db8::1" : "10.0.0.1"};
    const char *b_ip[] = {c->ipv6 ? "2001:db8::2" : "10.0.0.2"};
    vnet_nat_t *a_nat = NULL, *b_nat = NULL;
    if (c->nat != NAT_NONE) {
        vnet_nat_kind_t kind = c->nat == NAT_ALICE_SYMMETRIC         ? VNET_NAT_SYMMETRIC
                               : c->nat == NAT_ALICE_PORT_RESTRICTED ? VNET_NAT_PORT_RESTRICTED_CONE
                                                                     : VNET_NAT_FULL_CONE;
        vnet_nat_config_t nc = vnet_nat_config_of(kind);
        a_nat = vnet_nat_new(sim_vnet(r.sim), NULL, "203.0.113.1", &nc);
        a_ip[0] = "192.168.1.10";
        if (c->nat == NAT_BOTH_SAME) {
            b_nat = a_nat;
            b_ip[0] = "192.168.1.20";
        }
    }
    r.a = sim_peer_new(
        r.sim, &(simpeer_config_t){.name = "alice", .ips = a_ip, .ip_count = 1, .behind = a_nat});
    r.b = sim_peer_new(
        r.sim, &(simpeer_config_t){.name = "bob", .ips = b_ip, .ip_count = 1, .behind = b_nat});
    if (!r.a || !r.b)
        goto out;
    *vnet_host_up(simpeer_host(r.a, 0)) = c->link;
    *vnet_host_up(simpeer_host(r.b, 0)) = c->link;
    simpeer_on_event(r.a, on_a_event, &r);
    simpeer_on_event(r.b, on_b_event, &r);
    dtls_dropper_t dropper = {.limit = c->drop_dtls_handshake,
                              .hosts = {simpeer_host(r.a, 0), simpeer_host(r.b, 0)}};
    if (dropper.limit)
        vnet_set_filter(sim_vnet(r.sim), drop_handshake, &dropper);

    tern_time_t start = sim_now(r.sim);
    tern_dc_init_t init = {.protocol = "sim-proto"};
    int err = tern_pc_create_data_channel(simpeer_pc(r.a), start, "chat", &init, &r.a_dc);
    sim_drain(r.sim, r.a);
    if (err) {
        sim_fail(r.sim, "create_data_channel: %s", tern_err_name(err));
        goto out;
    }
    sim_negotiate(r.sim, r.a, r.b);
    if (!sim_run_until(r.sim, is_open, &r, c->open_budget_us)) {
        sim_fail(r.sim, "channel not open within %llds: alice %s/%s, bob %s/%s",
                 (long long)(c->open_budget_us / SEC),
                 tern_pc_state_name(tern_pc_connection_state(simpeer_pc(r.a))),
                 tern_ice_state_name(tern_pc_ice_connection_state(simpeer_pc(r.a))),
                 tern_pc_state_name(tern_pc_connection_state(simpeer_pc(r.b))),
                 tern_ice_state_name(tern_pc_ice_connection_state(simpeer_pc(r.b))));
        goto out;
    }
    if (dropper.limit && (dropper.dropped[0] < dropper.limit || dropper.dropped[1] < dropper.limit))
        sim_fail(r.sim, "only %u/%u DTLS handshake datagrams were there to drop",
                 dropper.dropped[0], dropper.dropped[1]);
    tern_time_t opened = sim_now(r.sim) - start;
    if (tally->count < 64)
        tally->open_us[tally->count++] = opened;
    if (simpeer_connected_at(r.a) == TERN_TIME_NEVER ||
        simpeer_connected_at(r.b) == TERN_TIME_NEVER)
        sim_fail(r.sim, "a channel opened but a pc never reported connected");
    if (simpeer_counts(r.a)->candidates == 0 || simpeer_counts(r.b)->candidates == 0)
        sim_fail(r.sim, "a peer announced no candidate");

    send_all(&r);
    if (!sim_run_until(r.sim, all_delivered, &r, c->transfer_budget_us))
        sim_fail(r.sim, "messages not all delivered within %llds",
                 (long long)(c->transfer_budget_us / SEC));
    simstream_check(&r.ab, r.sim, "alice to bob", true);
    simstream_check(&r.ba, r.sim, "bob to alice", true);

    /* Close the channel from alice; both sides see it closed, once. */
    if (r.a_dc) {
        tern_dc_close(r.a_dc, sim_now(r.sim));
        sim_drain(r.sim, r.a);
    }
    if (!sim_run_until(r.sim, both_closed, &r, c->open_budget_us))
        sim_fail(r.sim, "channel close not seen by both sides (alice %u, bob %u)", r.a_closed,
                 r.b_closed);
    /* Close alice's pc and let the goodbyes go out; nothing may break on either side. */
    tern_pc_close(simpeer_pc(r.a), sim_now(r.sim));
    sim_drain(r.sim, r.a);
    sim_run_for(r.sim, 2 * SEC);
    if (tern_pc_connection_state(simpeer_pc(r.a)) != TERN_PC_STATE_CLOSED)
        sim_fail(r.sim, "alice's pc is %s after close",
                 tern_pc_state_name(tern_pc_connection_state(simpeer_pc(r.a))));
    if (r.a_closed > 1 || r.b_closed > 1)
        sim_fail(r.sim, "a channel closed twice");

out:
    if (sim_failures(r.sim))
        sim_print_summary(r.sim, c->name);
    ok(sim_failures(r.sim) == 0);
    simstream_dispose(&r.ab);
    simstream_dispose(&r.ba);
    sim_free(r.sim);
}

static int cmp_time(const void *a, const void *b)
{
    tern_time_t x = *(const tern_time_t *)a, y = *(const tern_time_t *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    tern_time_t real_start = vnet_clock_real_us();
    for (size_t i = 0; i < sizeof conditions / sizeof conditions[0]; i++) {
        const condition_t *c = &conditions[i];
        if (!sim_selected(c->name))
            continue;
        uint64_t first;
        unsigned count;
        sim_seeds(1000 * (i + 1), c->seeds, &first, &count);
        tally_t tally = {0};
        int before = check_failed_;
        check_subtest_ = c->name;
        for (unsigned s = 0; s < count; s++)
            run_one(c, first + s, &tally);
        qsort(tally.open_us, tally.count, sizeof tally.open_us[0], cmp_time);
        printf("# %s %s: %u seeds, open in %.3f..%.3f s (median %.3f) virtual\n",
               before == check_failed_ ? "pass" : "FAIL", c->name, count,
               tally.count ? (double)tally.open_us[0] / SEC : 0.0,
               tally.count ? (double)tally.open_us[tally.count - 1] / SEC : 0.0,
               tally.count ? (double)tally.open_us[tally.count / 2] / SEC : 0.0);
        check_subtest_ = "";
        fflush(stdout);
    }
    sim_print_known_issues();
    printf("# real time %.2f s\n", (double)(vnet_clock_real_us() - real_start) / SEC);
    return check_done();
}
