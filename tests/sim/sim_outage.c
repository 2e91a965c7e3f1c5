/* SPDX-License-Identifier: MIT */
/*
 * Connections that lose their path, over several seeds: a short outage (nothing fails, every
 * message sent meanwhile arrives); a long one (both pcs go disconnected, come back to connected
 * once the path returns, and deliver what was sent meanwhile); a permanent one (both pcs go
 * failed after the consent timeout, RFC 7675, their channels close, and they stop sending); and
 * an idle connection behind NATs whose mappings expire after 30 s (consent freshness and SCTP
 * heartbeats must keep them open for minutes). SIM_ONLY=a,b selects tests by name.
 */
#include "check.h"
#include "simpeer.h"
#include "simpeer_traffic.h"

#include <stdlib.h>
#include <string.h>

#define MS 1000
#define SEC 1000000
#define FAILED_TIMEOUT_S 30 /* tern_pc_config_t.ice_failed_timeout_ms default */

typedef struct world {
    sim_t *sim;
    simpeer_t *peer[2];
    tern_dc_t *dc[2];
    bool open[2];
    unsigned closes[2];
    unsigned disconnected[2], reconnected[2], failed[2];
    tern_time_t failed_at[2];
    simstream_t st[2]; /* st[s]: sent by side s */
} world_t;

static void on_event(simpeer_t *p, const tern_event_t *ev, void *user)
{
    world_t *w = user;
    int side = p == w->peer[1];
    switch (ev->type) {
    case TERN_EV_DATA_CHANNEL:
        w->dc[side] = ev->dc;
        w->open[side] = true;
        break;
    case TERN_EV_DC_OPEN:
        w->open[side] = true;
        break;
    case TERN_EV_DC_MESSAGE:
        simstream_receive(&w->st[1 - side], ev->u.message.data, ev->u.message.len,
                          ev->u.message.is_text);
        break;
    case TERN_EV_DC_CLOSE:
        w->closes[side]++;
        w->dc[side] = NULL;
        break;
    case TERN_EV_CONNECTION_STATE:
        if (ev->u.pc_state == TERN_PC_STATE_DISCONNECTED)
            w->disconnected[side]++;
        if (ev->u.pc_state == TERN_PC_STATE_CONNECTED && w->disconnected[side])
            w->reconnected[side]++;
        if (ev->u.pc_state == TERN_PC_STATE_FAILED) {
            w->failed[side]++;
            w->failed_at[side] = sim_now(w->sim);
        }
        break;
    default:
        break;
    }
}

static bool both_open(sim_t *sim, void *arg)
{
    (void)sim;
    world_t *w = arg;
    return w->open[0] && w->open[1];
}

/* Alice (behind `a_nat` if given) and bob, connected, with one reliable channel open. */
static bool world_open(world_t *w, uint64_t seed, vnet_nat_t *(*make_nat)(vnet_t *net))
{
    memset(w, 0, sizeof *w);
    w->sim = sim_new(&(sim_config_t){.seed = seed});
    vnet_nat_t *nat = make_nat ? make_nat(sim_vnet(w->sim)) : NULL;
    const char *a_ip[] = {nat ? "192.168.1.10" : "10.0.0.1"};
    w->peer[0] = sim_peer_new(
        w->sim, &(simpeer_config_t){.name = "alice", .ips = a_ip, .ip_count = 1, .behind = nat});
    w->peer[1] = sim_peer_new(w->sim, &(simpeer_config_t){.name = "bob"});
    simstream_init(&w->st[0], 1, true, true, false);
    simstream_init(&w->st[1], 2, true, true, false);
    if (!w->peer[0] || !w->peer[1])
        return false;
    for (int s = 0; s < 2; s++) {
        *vnet_host_up(simpeer_host(w->peer[s], 0)) = (vnet_link_t){.delay_us = 15 * MS};
        simpeer_on_event(w->peer[s], on_event, w);
    }
    int err = tern_pc_create_data_channel(simpeer_pc(w->peer[0]), sim_now(w->sim), "data", NULL,
                                          &w->dc[0]);
    sim_drain(w->sim, w->peer[0]);
    if (err) {
        sim_fail(w->sim, "create_data_channel: %s", tern_err_name(err));
        return false;
    }
    sim_negotiate(w->sim, w->peer[0], w->peer[1]);
    if (!sim_run_until(w->sim, both_open, w, 5 * SEC)) {
        sim_fail(w->sim, "channel not open in 5 s");
        return false;
    }
    return true;
}

static void world_close(world_t *w, const char *name)
{
    if (sim_failures(w->sim))
        sim_print_summary(w->sim, name);
    ok(sim_failures(w->sim) == 0);
    simstream_dispose(&w->st[0]);
    simstream_dispose(&w->st[1]);
    sim_free(w->sim);
}

/* Cut or restore both directions of both peers' links. */
static void set_down(world_t *w, bool down)
{
    for (int s = 0; s < 2; s++) {
        vnet_host_t *h = simpeer_host(w->peer[s], 0);
        vnet_host_up(h)->down = down;
        vnet_host_down(h)->down = down;
    }
}

static void send_some(world_t *w, int count)
{
    for (int i = 0; i < count; i++) {
        for (int s = 0; s < 2; s++) {
            if (!w->dc[s])
                continue;
            int err = simstream_send(&w->st[s], w->dc[s], sim_now(w->sim),
                                     12 + sim_random(w->sim) % 3000);
            if (err)
                sim_fail(w->sim, "send: %s", tern_err_name(err));
        }
    }
    sim_drain(w->sim, w->peer[0]);
    sim_drain(w->sim, w->peer[1]);
}

static bool delivered(sim_t *sim, void *arg)
{
    (void)sim;
    world_t *w = arg;
    return simstream_complete(&w->st[0]) && simstream_complete(&w->st[1]);
}

static bool reconnected(sim_t *sim, void *arg)
{
    (void)sim;
    world_t *w = arg;
    return tern_pc_connection_state(simpeer_pc(w->peer[0])) == TERN_PC_STATE_CONNECTED &&
           tern_pc_connection_state(simpeer_pc(w->peer[1])) == TERN_PC_STATE_CONNECTED;
}

static void check_streams(world_t *w)
{
    simstream_check(&w->st[0], w->sim, "alice to bob", true);
    simstream_check(&w->st[1], w->sim, "bob to alice", true);
}

/* ---- tests ---- */

static void test_short_outage(uint64_t seed)
{
    world_t w;
    if (world_open(&w, seed, NULL)) {
        send_some(&w, 5);
        sim_run_for(w.sim, 1 * SEC);
        set_down(&w, true);
        send_some(&w, 10);
        sim_run_for(w.sim, 3 * SEC);
        set_down(&w, false);
        if (!sim_run_until(w.sim, delivered, &w, 30 * SEC))
            sim_fail(w.sim, "messages sent during a 3 s outage not delivered in 30 s");
        check_streams(&w);
        if (w.failed[0] || w.failed[1] || w.closes[0] || w.closes[1])
            sim_fail(w.sim, "a 3 s outage failed the connection or closed the channel");
    }
    world_close(&w, "short outage");
}

static void test_long_outage(uint64_t seed)
{
    world_t w;
    if (world_open(&w, seed, NULL)) {
        set_down(&w, true);
        send_some(&w, 10);
        sim_run_for(w.sim, 15 * SEC);
        if (!w.disconnected[0] || !w.disconnected[1])
            sim_fail(w.sim, "15 s without consent and not disconnected (alice %u, bob %u)",
                     w.disconnected[0], w.disconnected[1]);
        set_down(&w, false);
        if (!sim_run_until(w.sim, reconnected, &w, 15 * SEC))
            sim_fail(w.sim, "not connected again 15 s after the path came back (alice %s, bob %s)",
                     tern_pc_state_name(tern_pc_connection_state(simpeer_pc(w.peer[0]))),
                     tern_pc_state_name(tern_pc_connection_state(simpeer_pc(w.peer[1]))));
        /* SCTP may sit in a backed-off RTO (at most 10 s) before it retransmits. */
        if (!sim_run_until(w.sim, delivered, &w, 30 * SEC))
            sim_fail(w.sim, "messages sent during a 15 s outage not delivered");
        check_streams(&w);
        if (w.failed[0] || w.failed[1] || w.closes[0] || w.closes[1])
            sim_fail(w.sim, "a 15 s outage failed the connection or closed the channel");
    }
    world_close(&w, "long outage");
}

static bool both_failed_and_closed(sim_t *sim, void *arg)
{
    (void)sim;
    world_t *w = arg;
    return w->failed[0] && w->failed[1] && w->closes[0] && w->closes[1];
}

static void test_permanent_outage(uint64_t seed)
{
    world_t w;
    if (world_open(&w, seed, NULL)) {
        tern_time_t cut = sim_now(w.sim);
        set_down(&w, true);
        send_some(&w, 3);
        if (!sim_run_until(w.sim, both_failed_and_closed, &w, (FAILED_TIMEOUT_S + 20) * SEC))
            sim_fail(w.sim, "%d s after the cut: failed %u/%u, channel closes %u/%u",
                     FAILED_TIMEOUT_S + 20, w.failed[0], w.failed[1], w.closes[0], w.closes[1]);
        for (int s = 0; s < 2; s++) {
            tern_time_t after = w.failed_at[s] - cut;
            if (w.failed[s] &&
                (after < (FAILED_TIMEOUT_S - 5) * SEC || after > (FAILED_TIMEOUT_S + 10) * SEC))
                sim_fail(w.sim, "%s failed %.1f s after the cut (consent timeout %d s)",
                         s ? "bob" : "alice", (double)after / SEC, FAILED_TIMEOUT_S);
        }
        /* RFC 7675 §5.1: once consent is lost, stop sending; a failed pc stays quiet. */
        uint64_t sent = vnet_stats(sim_vnet(w.sim))->sent;
        sim_run_for(w.sim, 60 * SEC);
        uint64_t more = vnet_stats(sim_vnet(w.sim))->sent - sent;
        if (more > 0)
            sim_fail(w.sim, "failed pcs sent %llu datagrams in the next 60 s",
                     (unsigned long long)more);
        if (w.failed[0] > 1 || w.failed[1] > 1 || w.closes[0] > 1 || w.closes[1] > 1)
            sim_fail(w.sim, "failed or closed more than once");
    }
    world_close(&w, "permanent outage");
}

static vnet_nat_t *nat_30s_port_restricted(vnet_t *net)
{
    vnet_nat_config_t c = vnet_nat_config_of(VNET_NAT_PORT_RESTRICTED_CONE);
    c.mapping_timeout_us = 30 * SEC;
    return vnet_nat_new(net, NULL, "203.0.113.1", &c);
}

static vnet_nat_t *nat_30s_symmetric(vnet_t *net)
{
    vnet_nat_config_t c = vnet_nat_config_of(VNET_NAT_SYMMETRIC);
    c.mapping_timeout_us = 30 * SEC;
    return vnet_nat_new(net, NULL, "203.0.113.1", &c);
}

static void idle_behind(uint64_t seed, vnet_nat_t *(*make_nat)(vnet_t *net), const char *name)
{
    world_t w;
    if (world_open(&w, seed, make_nat)) {
        send_some(&w, 3);
        sim_run_for(w.sim, 180 * SEC); /* six mapping lifetimes without application data */
        send_some(&w, 10);
        if (!sim_run_until(w.sim, delivered, &w, 20 * SEC))
            sim_fail(w.sim, "after 3 idle minutes behind a NAT, messages not delivered");
        check_streams(&w);
        if (w.disconnected[0] || w.disconnected[1] || w.failed[0] || w.failed[1])
            sim_fail(w.sim, "idle behind a NAT: disconnected %u/%u, failed %u/%u",
                     w.disconnected[0], w.disconnected[1], w.failed[0], w.failed[1]);
    }
    world_close(&w, name);
}

static void test_idle_port_restricted(uint64_t seed)
{
    idle_behind(seed, nat_30s_port_restricted, "idle behind a port-restricted nat");
}

static void test_idle_symmetric(uint64_t seed)
{
    idle_behind(seed, nat_30s_symmetric, "idle behind a symmetric nat");
}

typedef struct test {
    const char *name;
    void (*fn)(uint64_t seed);
    unsigned seeds;
} test_t;

static const test_t tests[] = {
    {"short outage", test_short_outage, 3},
    {"long outage", test_long_outage, 3},
    {"permanent outage", test_permanent_outage, 3},
    {"idle behind a port-restricted nat", test_idle_port_restricted, 2},
    {"idle behind a symmetric nat", test_idle_symmetric, 2},
};

int main(void)
{
    tern_time_t real_start = vnet_clock_real_us();
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        const test_t *t = &tests[i];
        if (!sim_selected(t->name))
            continue;
        uint64_t first;
        unsigned count;
        sim_seeds(100 * (i + 1), t->seeds, &first, &count);
        int before = check_failed_;
        check_subtest_ = t->name;
        for (unsigned s = 0; s < count; s++)
            t->fn(first + s);
        printf("# %s %s (%u seeds)\n", before == check_failed_ ? "pass" : "FAIL", t->name, count);
        check_subtest_ = "";
        fflush(stdout);
    }
    sim_print_known_issues();
    printf("# real time %.2f s\n", (double)(vnet_clock_real_us() - real_start) / SEC);
    return check_done();
}
