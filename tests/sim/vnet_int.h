/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by vnet.c (hosts, links, the event heap, routing) and vnet_nat.c (the
 * RFC 4787 NAT models). Scenarios include vnet.h only.
 */
#ifndef TERN_TESTS_SIM_VNET_INT_H
#define TERN_TESTS_SIM_VNET_INT_H

#include "vnet.h"

/* One direction of a link: its impairments and the state they need. */
typedef struct vnet_link_state {
    vnet_link_t cfg;
    bool in_burst;            /* Gilbert-Elliott: in the lossy state */
    tern_time_t last_arrival; /* jitter never reorders: arrivals are kept monotonic */
    tern_time_t busy_until;   /* rate limit: when the link finishes serializing */
} vnet_link_state_t;

struct vnet_host {
    vnet_t *net;
    vnet_nat_t *realm; /* the NAT it is behind; NULL: the internet */
    tern_addr_t addr;  /* port 0 */
    char name[TERN_ADDR_STRLEN];
    void *user;
    vnet_link_state_t up, down;
    uint16_t *ports;
    size_t port_count, port_cap;
    uint16_t next_ephemeral;
    vnet_responder_fn responder;
    void *responder_user;
    uint64_t answered, ignored; /* a STUN server's counters (vnet_stun.c) */
    vnet_host_t *next;
};

typedef struct vnet_nat_perm {
    tern_addr_t remote; /* where the inside sent to (filtering state) */
    tern_time_t last;
} vnet_nat_perm_t;

typedef struct vnet_nat_map {
    tern_addr_t internal; /* ip and port inside */
    tern_addr_t remote;   /* mapping key: unused (EIM), ip (ADM), ip and port (APDM) */
    uint16_t external_port;
    tern_time_t last; /* last refresh */
    vnet_nat_perm_t *perms;
    size_t perm_count, perm_cap;
} vnet_nat_map_t;

struct vnet_nat {
    vnet_t *net;
    vnet_nat_t *realm; /* where its public address lives; NULL: the internet */
    tern_addr_t addr;  /* public address, port 0 */
    vnet_nat_config_t cfg;
    vnet_link_state_t up, down;
    vnet_nat_map_t *maps;
    size_t map_count, map_cap;
    uint16_t next_port;
    vnet_nat_t *next;
};

/* Where a datagram in flight is going next. */
typedef enum {
    VNET_HOP_HOST,        /* to a host (delivery) */
    VNET_HOP_NAT_INSIDE,  /* to a NAT, from its private realm */
    VNET_HOP_NAT_OUTSIDE, /* to a NAT's public address */
} vnet_hop_t;

typedef struct vnet_event {
    tern_time_t at;
    uint64_t seq; /* ties at the same time keep sending order */
    vnet_hop_t hop;
    bool at_down_link; /* about to enter the node's down link, not yet at the node */
    void *node;        /* vnet_host_t or vnet_nat_t */
    tern_addr_t src, dst;
    size_t len;
    uint8_t data[];
} vnet_event_t;

struct vnet {
    tern_time_t now;
    uint64_t rng;
    uint64_t seq;
    vnet_event_t **heap;
    size_t heap_len, heap_cap;
    vnet_event_t *delivered; /* the last delivery, freed on the next call */
    vnet_host_t *hosts;
    vnet_nat_t *nats;
    vnet_stats_t stats;
    vnet_filter_fn filter;
    void *filter_user;
    FILE *trace;
};

/* True if a and b have the same family and IP (ports ignored). */
bool vnet_same_ip(const tern_addr_t *a, const tern_addr_t *b);

/* True if a host or a NAT already uses ip in the realm. */
bool vnet_ip_in_use(const vnet_t *net, const vnet_nat_t *realm, const tern_addr_t *ip);

/*
 * A datagram leaves a node at time t into `realm`, through the node's up link (NULL: an ideal
 * one). Routes it and schedules its next hop(s), or counts why it is dropped.
 */
void vnet_carry(vnet_t *net, vnet_nat_t *realm, vnet_link_state_t *up, tern_time_t t,
                const tern_addr_t *src, const tern_addr_t *dst, const uint8_t *data, size_t len);

/* One trace line, if tracing is on. */
void vnet_trace(vnet_t *net, tern_time_t t, const char *what, const tern_addr_t *src,
                const tern_addr_t *dst, const uint8_t *data, size_t len);

/* The NAT hops (vnet_nat.c), run when a datagram reaches the NAT. */
void vnet_nat_from_inside(vnet_nat_t *nat, const vnet_event_t *ev);
void vnet_nat_from_outside(vnet_nat_t *nat, const vnet_event_t *ev);
void vnet_nat_destroy(vnet_nat_t *nat);

#endif
