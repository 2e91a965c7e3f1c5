/* SPDX-License-Identifier: MIT */
/*
 * NAT models of RFC 4787 for vnet: endpoint-independent, address-dependent and
 * address-and-port-dependent mapping (§4.1) and filtering (§5), port preservation, sequential
 * or random port assignment (§4.2.1), hairpinning (§6), and mappings that expire after an idle
 * time measured in virtual time (§4.3), refreshed by outbound and optionally inbound datagrams.
 * A NAT sits between its private realm (the hosts created behind it) and the realm of its
 * public address (the internet, or another NAT's inside, for carrier-grade NAT chains). Expiry
 * is checked lazily when the NAT handles a datagram, so NATs add no events to the clock.
 */
#include "vnet_int.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_US 120000000 /* RFC 4787 §4.3 REQ-5: at least 2 minutes */
#define DEFAULT_PORT_BASE 49152
#define DEFAULT_MAX_MAPPINGS 4096
#define RANDOM_PORT_TRIES 64

vnet_nat_config_t vnet_nat_config_of(vnet_nat_kind_t kind)
{
    vnet_nat_config_t c = {0};
    switch (kind) {
    case VNET_NAT_FULL_CONE:
        break;
    case VNET_NAT_RESTRICTED_CONE:
        c.filtering = VNET_FILTER_ADDRESS_DEPENDENT;
        break;
    case VNET_NAT_PORT_RESTRICTED_CONE:
        c.filtering = VNET_FILTER_ADDRESS_PORT_DEPENDENT;
        break;
    case VNET_NAT_SYMMETRIC:
        c.mapping = VNET_MAP_ADDRESS_PORT_DEPENDENT;
        c.filtering = VNET_FILTER_ADDRESS_PORT_DEPENDENT;
        c.ports = VNET_PORT_SEQUENTIAL;
        break;
    }
    return c;
}

vnet_nat_t *vnet_nat_new(vnet_t *net, vnet_nat_t *behind, const char *public_ip,
                         const vnet_nat_config_t *cfg)
{
    tern_addr_t addr;
    if (tern_addr_parse(public_ip, &addr) != 0 || addr.port != 0 ||
        vnet_ip_in_use(net, behind, &addr))
        return NULL;
    vnet_nat_t *nat = calloc(1, sizeof *nat);
    if (!nat)
        return NULL;
    nat->net = net;
    nat->realm = behind;
    nat->addr = addr;
    if (cfg)
        nat->cfg = *cfg;
    if (!nat->cfg.mapping_timeout_us)
        nat->cfg.mapping_timeout_us = DEFAULT_TIMEOUT_US;
    if (!nat->cfg.port_base)
        nat->cfg.port_base = DEFAULT_PORT_BASE;
    if (!nat->cfg.max_mappings)
        nat->cfg.max_mappings = DEFAULT_MAX_MAPPINGS;
    nat->next_port = nat->cfg.port_base;
    vnet_nat_t **tail = &net->nats;
    while (*tail)
        tail = &(*tail)->next;
    *tail = nat;
    return nat;
}

void vnet_nat_destroy(vnet_nat_t *nat)
{
    for (size_t i = 0; i < nat->map_count; i++)
        free(nat->maps[i].perms);
    free(nat->maps);
    free(nat);
}

vnet_link_t *vnet_nat_up(vnet_nat_t *nat)
{
    return &nat->up.cfg;
}

vnet_link_t *vnet_nat_down(vnet_nat_t *nat)
{
    return &nat->down.cfg;
}

const tern_addr_t *vnet_nat_public_addr(const vnet_nat_t *nat)
{
    return &nat->addr;
}

/* ---- mappings ---- */

static bool expired(const vnet_nat_t *nat, tern_time_t last, tern_time_t now)
{
    return now - last >= nat->cfg.mapping_timeout_us;
}

static void purge(vnet_nat_t *nat, tern_time_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < nat->map_count; i++) {
        if (expired(nat, nat->maps[i].last, now))
            free(nat->maps[i].perms);
        else
            nat->maps[keep++] = nat->maps[i];
    }
    nat->map_count = keep;
}

/* The part of the remote endpoint that selects a mapping (RFC 4787 §4.1). */
static tern_addr_t mapping_key(const vnet_nat_t *nat, const tern_addr_t *remote)
{
    tern_addr_t key = {0};
    if (nat->cfg.mapping == VNET_MAP_ENDPOINT_INDEPENDENT)
        return key;
    key = *remote;
    key.scope_id = 0;
    if (nat->cfg.mapping == VNET_MAP_ADDRESS_DEPENDENT)
        key.port = 0;
    return key;
}

static bool same_endpoint(const tern_addr_t *a, const tern_addr_t *b)
{
    return vnet_same_ip(a, b) && a->port == b->port;
}

static bool same_key(const tern_addr_t *a, const tern_addr_t *b)
{
    return a->family == b->family && (a->family == 0 || same_endpoint(a, b));
}

static vnet_nat_map_t *find_outbound(vnet_nat_t *nat, const tern_addr_t *internal,
                                     const tern_addr_t *key)
{
    for (size_t i = 0; i < nat->map_count; i++) {
        vnet_nat_map_t *m = &nat->maps[i];
        if (same_endpoint(&m->internal, internal) && same_key(&m->remote, key))
            return m;
    }
    return NULL;
}

static vnet_nat_map_t *find_inbound(vnet_nat_t *nat, uint16_t port)
{
    for (size_t i = 0; i < nat->map_count; i++)
        if (nat->maps[i].external_port == port)
            return &nat->maps[i];
    return NULL;
}

static bool port_free(vnet_nat_t *nat, uint16_t port)
{
    return port != 0 && find_inbound(nat, port) == NULL;
}

static uint16_t next_sequential(vnet_nat_t *nat)
{
    for (uint32_t tries = 0; tries < 65536; tries++) {
        uint16_t p = nat->next_port++;
        if (nat->next_port == 0 || nat->next_port < nat->cfg.port_base)
            nat->next_port = nat->cfg.port_base;
        if (p >= nat->cfg.port_base && port_free(nat, p))
            return p;
    }
    return 0;
}

/* RFC 4787 §4.2.1: which external port a new mapping gets; 0 if none is free. */
static uint16_t allocate_port(vnet_nat_t *nat, uint16_t internal_port)
{
    switch (nat->cfg.ports) {
    case VNET_PORT_PRESERVE:
        if (port_free(nat, internal_port))
            return internal_port;
        return next_sequential(nat);
    case VNET_PORT_RANDOM: {
        uint32_t span = 65536u - nat->cfg.port_base;
        for (int i = 0; i < RANDOM_PORT_TRIES; i++) {
            uint16_t p = (uint16_t)(nat->cfg.port_base + vnet_random(nat->net) % span);
            if (port_free(nat, p))
                return p;
        }
        return next_sequential(nat);
    }
    case VNET_PORT_SEQUENTIAL:
    default:
        return next_sequential(nat);
    }
}

static vnet_nat_map_t *create_mapping(vnet_nat_t *nat, const tern_addr_t *internal,
                                      const tern_addr_t *key)
{
    if (nat->map_count >= nat->cfg.max_mappings)
        return NULL;
    uint16_t port = allocate_port(nat, internal->port);
    if (port == 0)
        return NULL;
    if (nat->map_count == nat->map_cap) {
        size_t cap = nat->map_cap ? nat->map_cap * 2 : 16;
        vnet_nat_map_t *maps = realloc(nat->maps, cap * sizeof *maps);
        if (!maps)
            return NULL;
        nat->maps = maps;
        nat->map_cap = cap;
    }
    vnet_nat_map_t *m = &nat->maps[nat->map_count++];
    *m = (vnet_nat_map_t){.internal = *internal, .remote = *key, .external_port = port};
    nat->net->stats.nat_mappings++;
    return m;
}

/* Record that the inside sent to `remote` through m, for filtering (RFC 4787 §5). */
static bool permit(vnet_nat_map_t *m, const tern_addr_t *remote, tern_time_t now)
{
    for (size_t i = 0; i < m->perm_count; i++) {
        if (same_endpoint(&m->perms[i].remote, remote)) {
            m->perms[i].last = now;
            return true;
        }
    }
    if (m->perm_count == m->perm_cap) {
        size_t cap = m->perm_cap ? m->perm_cap * 2 : 4;
        vnet_nat_perm_t *p = realloc(m->perms, cap * sizeof *p);
        if (!p)
            return false;
        m->perms = p;
        m->perm_cap = cap;
    }
    m->perms[m->perm_count++] = (vnet_nat_perm_t){.remote = *remote, .last = now};
    return true;
}

static bool filter_allows(const vnet_nat_t *nat, const vnet_nat_map_t *m, const tern_addr_t *remote,
                          tern_time_t now)
{
    if (nat->cfg.filtering == VNET_FILTER_ENDPOINT_INDEPENDENT)
        return true;
    for (size_t i = 0; i < m->perm_count; i++) {
        const vnet_nat_perm_t *p = &m->perms[i];
        if (expired(nat, p->last, now) || !vnet_same_ip(&p->remote, remote))
            continue;
        if (nat->cfg.filtering == VNET_FILTER_ADDRESS_DEPENDENT || p->remote.port == remote->port)
            return true;
    }
    return false;
}

/* Translate an outbound datagram's source; false if no mapping can be made. */
static bool translate_out(vnet_nat_t *nat, tern_time_t now, const tern_addr_t *src,
                          const tern_addr_t *dst, tern_addr_t *external)
{
    tern_addr_t key = mapping_key(nat, dst);
    vnet_nat_map_t *m = find_outbound(nat, src, &key);
    if (!m)
        m = create_mapping(nat, src, &key);
    if (!m || !permit(m, dst, now))
        return false;
    m->last = now; /* RFC 4787 §4.3 REQ-6: outbound refresh */
    *external = nat->addr;
    external->port = m->external_port;
    return true;
}

/* Find where an inbound datagram goes; false (counted) if the NAT drops it. */
static bool translate_in(vnet_nat_t *nat, tern_time_t now, const tern_addr_t *src,
                         const tern_addr_t *dst, tern_addr_t *internal)
{
    vnet_nat_map_t *m = find_inbound(nat, dst->port);
    if (!m) {
        nat->net->stats.nat_no_mapping++;
        return false;
    }
    if (!filter_allows(nat, m, src, now)) {
        nat->net->stats.nat_filtered++;
        return false;
    }
    if (nat->cfg.inbound_refresh)
        m->last = now;
    *internal = m->internal;
    return true;
}

/* ---- hops ---- */

void vnet_nat_from_inside(vnet_nat_t *nat, const vnet_event_t *ev)
{
    vnet_t *net = nat->net;
    purge(nat, ev->at);
    bool hairpin = vnet_same_ip(&ev->dst, &nat->addr);
    if (hairpin && !nat->cfg.hairpinning) {
        net->stats.nat_hairpin_dropped++;
        vnet_trace(net, ev->at, "drop-nohairpin", &ev->src, &ev->dst, ev->data, ev->len);
        return;
    }
    tern_addr_t external;
    if (!translate_out(nat, ev->at, &ev->src, &ev->dst, &external)) {
        net->stats.nat_full++;
        vnet_trace(net, ev->at, "drop-natfull", &ev->src, &ev->dst, ev->data, ev->len);
        return;
    }
    if (!hairpin) {
        vnet_trace(net, ev->at, "nat-out", &external, &ev->dst, ev->data, ev->len);
        vnet_carry(net, nat->realm, &nat->up, ev->at, &external, &ev->dst, ev->data, ev->len);
        return;
    }
    /* RFC 4787 §6 REQ-9: a hairpinned datagram carries the sender's external address, and is
     * filtered as if it came from outside. */
    tern_addr_t internal;
    if (!translate_in(nat, ev->at, &external, &ev->dst, &internal)) {
        vnet_trace(net, ev->at, "drop-nat-in", &external, &ev->dst, ev->data, ev->len);
        return;
    }
    net->stats.nat_hairpin++;
    vnet_trace(net, ev->at, "nat-hairpin", &external, &internal, ev->data, ev->len);
    vnet_carry(net, nat, NULL, ev->at, &external, &internal, ev->data, ev->len);
}

void vnet_nat_from_outside(vnet_nat_t *nat, const vnet_event_t *ev)
{
    vnet_t *net = nat->net;
    purge(nat, ev->at);
    tern_addr_t internal;
    if (!translate_in(nat, ev->at, &ev->src, &ev->dst, &internal)) {
        vnet_trace(net, ev->at, "drop-nat-in", &ev->src, &ev->dst, ev->data, ev->len);
        return;
    }
    vnet_trace(net, ev->at, "nat-in", &ev->src, &internal, ev->data, ev->len);
    vnet_carry(net, nat, NULL, ev->at, &ev->src, &internal, ev->data, ev->len);
}

/* ---- inspection ---- */

size_t vnet_nat_mapping_count(vnet_nat_t *nat)
{
    purge(nat, nat->net->now);
    return nat->map_count;
}

int vnet_nat_find_mapping(vnet_nat_t *nat, const tern_addr_t *internal, const tern_addr_t *remote,
                          tern_addr_t *external)
{
    purge(nat, nat->net->now);
    tern_addr_t key = mapping_key(nat, remote);
    vnet_nat_map_t *m = find_outbound(nat, internal, &key);
    if (!m)
        return -1;
    *external = nat->addr;
    external->port = m->external_port;
    return 0;
}
