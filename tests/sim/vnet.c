/* SPDX-License-Identifier: MIT */
/*
 * vnet core: hosts and their bound ports, link impairments (delay, jitter, loss with optional
 * Gilbert-Elliott bursts, duplication, reordering, MTU, rate with a drop-tail queue), routing
 * between realms (the internet and each NAT's private side), and the heap of datagrams in flight
 * ordered by arrival time then sending order. vnet_poll_delivery runs the NAT hops that are due
 * (vnet_nat.c) and hands out datagrams that reached a host.
 */
#include "vnet_int.h"

#include "util/rng.h"

#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>

#define EPHEMERAL_FIRST 50000 /* deterministic, easy to read in traces */
#define DEFAULT_REORDER_US 10000
#define DEFAULT_QUEUE_US 100000
#define MAX_IN_FLIGHT 200000 /* a runaway sender fails loudly instead of eating memory */

/* ---- random ---- */

uint64_t vnet_random(vnet_t *net)
{
    return tern_splitmix_next(&net->rng);
}

double vnet_random_unit(vnet_t *net)
{
    return (double)(vnet_random(net) >> 11) * (1.0 / 9007199254740992.0);
}

static bool chance(vnet_t *net, double p)
{
    if (p <= 0)
        return false;
    if (p >= 1)
        return true;
    return vnet_random_unit(net) < p;
}

/* ---- addresses and tracing ---- */

bool vnet_same_ip(const tern_addr_t *a, const tern_addr_t *b)
{
    size_t n = a->family == TERN_AF_INET ? 4 : 16;
    return a->family == b->family && memcmp(a->ip, b->ip, n) == 0;
}

static const char *classify(const uint8_t *data, size_t len)
{
    if (len == 0)
        return "empty";
    uint8_t b = data[0];
    if (b <= 3) /* RFC 7983 §7 */
        return "stun";
    if (b >= 20 && b <= 63) {
        switch (b) {
        case 20:
            return "dtls-ccs";
        case 21:
            return "dtls-alert";
        case 22:
            return "dtls-hs";
        case 23:
            return "dtls-app";
        default:
            return "dtls";
        }
    }
    if (b >= 128 && b <= 191)
        return "rtp";
    return "other";
}

void vnet_trace(vnet_t *net, tern_time_t t, const char *what, const tern_addr_t *src,
                const tern_addr_t *dst, const uint8_t *data, size_t len)
{
    if (!net->trace)
        return;
    char s[TERN_ADDR_STRLEN], d[TERN_ADDR_STRLEN];
    tern_addr_format(src, s, sizeof s);
    tern_addr_format(dst, d, sizeof d);
    fprintf(net->trace, "vnet %lld.%06lld %-14s %s > %s len=%zu %s\n", (long long)(t / 1000000),
            (long long)(t % 1000000), what, s, d, len, classify(data, len));
}

/* ---- the event heap ---- */

static bool event_before(const vnet_event_t *a, const vnet_event_t *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_swap(vnet_t *net, size_t i, size_t j)
{
    vnet_event_t *tmp = net->heap[i];
    net->heap[i] = net->heap[j];
    net->heap[j] = tmp;
}

static bool heap_push(vnet_t *net, vnet_event_t *ev)
{
    if (net->heap_len == net->heap_cap) {
        size_t cap = net->heap_cap ? net->heap_cap * 2 : 256;
        vnet_event_t **h = realloc(net->heap, cap * sizeof *h);
        if (!h)
            return false;
        net->heap = h;
        net->heap_cap = cap;
    }
    size_t i = net->heap_len++;
    net->heap[i] = ev;
    while (i > 0 && event_before(net->heap[i], net->heap[(i - 1) / 2])) {
        heap_swap(net, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return true;
}

static vnet_event_t *heap_pop(vnet_t *net)
{
    vnet_event_t *top = net->heap[0];
    net->heap[0] = net->heap[--net->heap_len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < net->heap_len && event_before(net->heap[l], net->heap[m]))
            m = l;
        if (r < net->heap_len && event_before(net->heap[r], net->heap[m]))
            m = r;
        if (m == i)
            break;
        heap_swap(net, i, m);
        i = m;
    }
    return top;
}

static void schedule(vnet_t *net, tern_time_t at, vnet_hop_t hop, bool at_down_link, void *node,
                     const tern_addr_t *src, const tern_addr_t *dst, const uint8_t *data,
                     size_t len)
{
    if (net->heap_len >= MAX_IN_FLIGHT) {
        fprintf(stderr, "vnet: more than %d datagrams in flight, dropping\n", MAX_IN_FLIGHT);
        net->stats.queue_dropped++;
        return;
    }
    vnet_event_t *ev = malloc(sizeof *ev + len);
    if (!ev)
        abort(); /* a test program out of memory cannot report anything useful */
    ev->at = at;
    ev->seq = net->seq++;
    ev->hop = hop;
    ev->at_down_link = at_down_link;
    ev->node = node;
    ev->src = *src;
    ev->dst = *dst;
    ev->len = len;
    if (len)
        memcpy(ev->data, data, len);
    if (!heap_push(net, ev))
        abort();
}

/* ---- links ---- */

static bool lose(vnet_t *net, vnet_link_state_t *ls)
{
    const vnet_link_t *c = &ls->cfg;
    if (c->loss_burst <= 1.0 || c->loss >= 1.0)
        return chance(net, c->loss);
    /* Gilbert-Elliott with a lossless good state and a lossy bad state: leaving the bad state
     * with r = 1/burst gives bursts of mean length `burst`, and entering it with
     * p = loss*r/(1-loss) makes the long-run loss p/(p+r) equal to `loss`. */
    double r = 1.0 / c->loss_burst;
    double p = c->loss * r / (1.0 - c->loss);
    ls->in_burst = ls->in_burst ? !chance(net, r) : chance(net, p);
    return ls->in_burst;
}

/*
 * Pass a datagram sent at t through one direction of a link. Fills arrival times (0, 1 or 2 of
 * them: dropped, delivered, duplicated) and returns how many.
 */
static int cross_link(vnet_t *net, vnet_link_state_t *ls, tern_time_t t, const tern_addr_t *src,
                      const tern_addr_t *dst, const uint8_t *data, size_t len, tern_time_t out[2])
{
    const vnet_link_t *c = &ls->cfg;
    size_t overhead = dst->family == TERN_AF_INET6 ? 48 : 28; /* IP + UDP headers */
    if (c->down || lose(net, ls)) {
        net->stats.lost++;
        vnet_trace(net, t, "drop-loss", src, dst, data, len);
        return 0;
    }
    if (c->mtu && len + overhead > c->mtu) {
        net->stats.too_big++;
        vnet_trace(net, t, "drop-mtu", src, dst, data, len);
        return 0;
    }
    tern_time_t sent = t;
    if (c->rate_bps) {
        tern_time_t start = ls->busy_until > t ? ls->busy_until : t;
        tern_time_t queue = c->queue_us ? c->queue_us : DEFAULT_QUEUE_US;
        if (start - t > queue) {
            net->stats.queue_dropped++;
            vnet_trace(net, t, "drop-queue", src, dst, data, len);
            return 0;
        }
        uint64_t bits = (uint64_t)(len + overhead) * 8;
        ls->busy_until = start + (tern_time_t)((bits * 1000000 + c->rate_bps - 1) / c->rate_bps);
        sent = ls->busy_until;
    }
    tern_time_t at = sent + c->delay_us;
    if (c->jitter_us > 0)
        at += (tern_time_t)(vnet_random(net) % (uint64_t)(c->jitter_us + 1));
    if (chance(net, c->reorder)) {
        at += c->reorder_us ? c->reorder_us : DEFAULT_REORDER_US;
        net->stats.reordered++;
    } else {
        if (at < ls->last_arrival)
            at = ls->last_arrival;
        ls->last_arrival = at;
    }
    out[0] = at;
    if (chance(net, c->duplicate)) {
        net->stats.duplicated++;
        out[1] = at;
        return 2;
    }
    return 1;
}

/* ---- routing ---- */

bool vnet_ip_in_use(const vnet_t *net, const vnet_nat_t *realm, const tern_addr_t *ip)
{
    for (const vnet_host_t *h = net->hosts; h; h = h->next)
        if (h->realm == realm && vnet_same_ip(&h->addr, ip))
            return true;
    for (const vnet_nat_t *n = net->nats; n; n = n->next)
        if (n->realm == realm && vnet_same_ip(&n->addr, ip))
            return true;
    return false;
}

/* Find the next hop for dst in a realm. Returns false if nothing there has it. */
static bool route(vnet_t *net, vnet_nat_t *realm, const tern_addr_t *dst, vnet_hop_t *hop,
                  void **node, vnet_link_state_t **down)
{
    for (vnet_host_t *h = net->hosts; h; h = h->next) {
        if (h->realm == realm && vnet_same_ip(&h->addr, dst)) {
            *hop = VNET_HOP_HOST;
            *node = h;
            *down = &h->down;
            return true;
        }
    }
    for (vnet_nat_t *n = net->nats; n; n = n->next) {
        if (n->realm == realm && vnet_same_ip(&n->addr, dst)) {
            *hop = VNET_HOP_NAT_OUTSIDE;
            *node = n;
            *down = &n->down;
            return true;
        }
    }
    /* Inside a NAT anything else goes to the NAT (its inside interface is ideal); a NAT only
     * translates its own address family. */
    if (realm && realm->addr.family == dst->family) {
        *hop = VNET_HOP_NAT_INSIDE;
        *node = realm;
        *down = NULL;
        return true;
    }
    return false;
}

void vnet_carry(vnet_t *net, vnet_nat_t *realm, vnet_link_state_t *up, tern_time_t t,
                const tern_addr_t *src, const tern_addr_t *dst, const uint8_t *data, size_t len)
{
    vnet_hop_t hop;
    void *node;
    vnet_link_state_t *down;
    if (!route(net, realm, dst, &hop, &node, &down)) {
        net->stats.no_route++;
        vnet_trace(net, t, "drop-noroute", src, dst, data, len);
        return;
    }
    /* The down link is crossed when the datagram gets there (an event of its own), so that
     * datagrams enter it in their order of arrival, as on a real FIFO link. */
    tern_time_t at[2] = {t, t};
    int n = up ? cross_link(net, up, t, src, dst, data, len, at) : 1;
    for (int i = 0; i < n; i++)
        schedule(net, at[i], hop, down != NULL, node, src, dst, data, len);
}

static vnet_link_state_t *down_link_of(vnet_event_t *ev)
{
    if (ev->hop == VNET_HOP_HOST)
        return &((vnet_host_t *)ev->node)->down;
    return &((vnet_nat_t *)ev->node)->down;
}

static void enter_down_link(vnet_t *net, vnet_event_t *ev)
{
    tern_time_t at[2];
    int n = cross_link(net, down_link_of(ev), ev->at, &ev->src, &ev->dst, ev->data, ev->len, at);
    for (int i = 0; i < n; i++)
        schedule(net, at[i], ev->hop, false, ev->node, &ev->src, &ev->dst, ev->data, ev->len);
}

/* ---- network ---- */

vnet_t *vnet_new(uint64_t seed, tern_time_t start)
{
    vnet_t *net = calloc(1, sizeof *net);
    if (!net)
        return NULL;
    net->now = start;
    net->rng = seed;
    vnet_clock_begin_run(start);
    return net;
}

void vnet_free(vnet_t *net)
{
    if (!net)
        return;
    for (size_t i = 0; i < net->heap_len; i++)
        free(net->heap[i]);
    free(net->heap);
    free(net->delivered);
    while (net->hosts) {
        vnet_host_t *h = net->hosts;
        net->hosts = h->next;
        free(h->ports);
        free(h);
    }
    while (net->nats) {
        vnet_nat_t *n = net->nats;
        net->nats = n->next;
        vnet_nat_destroy(n);
    }
    free(net);
}

tern_time_t vnet_now(const vnet_t *net)
{
    return net->now;
}

void vnet_advance(vnet_t *net, tern_time_t t)
{
    if (t > net->now)
        net->now = t;
    vnet_clock_set(net->now);
}

tern_time_t vnet_next_delivery(const vnet_t *net)
{
    return net->heap_len ? net->heap[0]->at : TERN_TIME_NEVER;
}

size_t vnet_in_flight(const vnet_t *net)
{
    return net->heap_len;
}

const vnet_stats_t *vnet_stats(const vnet_t *net)
{
    return &net->stats;
}

void vnet_set_filter(vnet_t *net, vnet_filter_fn fn, void *user)
{
    net->filter = fn;
    net->filter_user = user;
}

void vnet_set_trace(vnet_t *net, FILE *out)
{
    net->trace = out;
}

static bool port_bound(const vnet_host_t *h, uint16_t port)
{
    for (size_t i = 0; i < h->port_count; i++)
        if (h->ports[i] == port)
            return true;
    return false;
}

bool vnet_poll_delivery(vnet_t *net, vnet_delivery_t *out)
{
    free(net->delivered);
    net->delivered = NULL;
    while (net->heap_len && net->heap[0]->at <= net->now) {
        vnet_event_t *ev = heap_pop(net);
        if (ev->at_down_link) {
            enter_down_link(net, ev);
        } else if (ev->hop == VNET_HOP_NAT_INSIDE) {
            vnet_nat_from_inside(ev->node, ev);
        } else if (ev->hop == VNET_HOP_NAT_OUTSIDE) {
            vnet_nat_from_outside(ev->node, ev);
        } else if (!port_bound(ev->node, ev->dst.port)) {
            net->stats.unbound++;
            vnet_trace(net, ev->at, "drop-unbound", &ev->src, &ev->dst, ev->data, ev->len);
        } else if (((vnet_host_t *)ev->node)->responder) {
            vnet_host_t *h = ev->node;
            net->stats.delivered++;
            net->stats.bytes_delivered += ev->len;
            vnet_trace(net, ev->at, "respond", &ev->src, &ev->dst, ev->data, ev->len);
            tern_datagram_t dg = {
                .local = ev->dst, .remote = ev->src, .data = ev->data, .len = ev->len};
            h->responder(h->responder_user, net, h, &dg);
        } else {
            net->stats.delivered++;
            net->stats.bytes_delivered += ev->len;
            vnet_trace(net, ev->at, "deliver", &ev->src, &ev->dst, ev->data, ev->len);
            net->delivered = ev;
            out->host = ev->node;
            out->dgram = (tern_datagram_t){
                .local = ev->dst, .remote = ev->src, .data = ev->data, .len = ev->len};
            return true;
        }
        free(ev);
    }
    return false;
}

int vnet_send(vnet_t *net, vnet_host_t *host, const tern_addr_t *src, const tern_addr_t *dst,
              const uint8_t *data, size_t len)
{
    net->stats.sent++;
    if (!vnet_same_ip(src, &host->addr) || !port_bound(host, src->port) ||
        src->family != dst->family) {
        net->stats.bad_source++;
        vnet_trace(net, net->now, "bad-source", src, dst, data, len);
        return -1;
    }
    vnet_packet_t pkt = {.from = host, .src = *src, .dst = *dst, .data = data, .len = len};
    if (net->filter && net->filter(net->filter_user, net->now, &pkt)) {
        net->stats.filtered++;
        vnet_trace(net, net->now, "drop-filter", src, dst, data, len);
        return 0;
    }
    vnet_trace(net, net->now, "send", src, dst, data, len);
    vnet_carry(net, host->realm, &host->up, net->now, src, dst, data, len);
    return 0;
}

/* ---- hosts ---- */

vnet_host_t *vnet_host_new(vnet_t *net, vnet_nat_t *behind, const char *ip, void *user)
{
    tern_addr_t addr;
    if (tern_addr_parse(ip, &addr) != 0 || addr.port != 0 || vnet_ip_in_use(net, behind, &addr))
        return NULL;
    vnet_host_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->net = net;
    h->realm = behind;
    h->addr = addr;
    inet_ntop(addr.family == TERN_AF_INET ? AF_INET : AF_INET6, addr.ip, h->name, sizeof h->name);
    h->user = user;
    h->next_ephemeral = EPHEMERAL_FIRST;
    /* Appended, so routing and traces list hosts in creation order. */
    vnet_host_t **tail = &net->hosts;
    while (*tail)
        tail = &(*tail)->next;
    *tail = h;
    return h;
}

int vnet_host_bind(vnet_host_t *h, uint16_t port, tern_addr_t *out)
{
    if (port == 0) {
        for (int tries = 0; tries < 65536 && port == 0; tries++) {
            uint16_t p = h->next_ephemeral++;
            if (h->next_ephemeral == 0)
                h->next_ephemeral = 1024;
            if (p != 0 && !port_bound(h, p))
                port = p;
        }
        if (port == 0)
            return -1;
    } else if (port_bound(h, port)) {
        return -1;
    }
    if (h->port_count == h->port_cap) {
        size_t cap = h->port_cap ? h->port_cap * 2 : 8;
        uint16_t *p = realloc(h->ports, cap * sizeof *p);
        if (!p)
            return -1;
        h->ports = p;
        h->port_cap = cap;
    }
    h->ports[h->port_count++] = port;
    if (out) {
        *out = h->addr;
        out->port = port;
    }
    return 0;
}

void vnet_host_unbind(vnet_host_t *h, uint16_t port)
{
    for (size_t i = 0; i < h->port_count; i++) {
        if (h->ports[i] == port) {
            h->ports[i] = h->ports[--h->port_count];
            return;
        }
    }
}

vnet_link_t *vnet_host_up(vnet_host_t *h)
{
    return &h->up.cfg;
}

vnet_link_t *vnet_host_down(vnet_host_t *h)
{
    return &h->down.cfg;
}

void vnet_host_set_link(vnet_host_t *h, const vnet_link_t *link)
{
    h->up.cfg = *link;
    h->down.cfg = *link;
}

void vnet_host_set_responder(vnet_host_t *h, vnet_responder_fn fn, void *user)
{
    h->responder = fn;
    h->responder_user = user;
}

const tern_addr_t *vnet_host_addr(const vnet_host_t *h)
{
    return &h->addr;
}

void *vnet_host_user(const vnet_host_t *h)
{
    return h->user;
}

const char *vnet_host_name(const vnet_host_t *h)
{
    return h->name;
}
