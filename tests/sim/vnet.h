/* SPDX-License-Identifier: MIT */
/*
 * vnet: an in-memory UDP network with a virtual clock, for driving whole peers in one process.
 *
 * Hosts (one IP address each; a multi-homed machine is several hosts sharing a user pointer)
 * live either on the "internet" or behind a NAT (vnet_nat.c, RFC 4787 models), and NATs can
 * nest. Every host and NAT has a link in each direction with a fixed delay, jitter, loss
 * (independent or in Gilbert-Elliott bursts), duplication, reordering, an MTU and an optional
 * rate with a drop-tail queue; all random choices come from one generator seeded by the caller,
 * so a run is a function of its seed. A datagram from host A to host B crosses A's up link and
 * B's down link (and, through a NAT, the NAT's links), hop by hop, in virtual time.
 *
 * Time only moves when the caller says so (vnet_advance); the driver jumps to the earliest of
 * its peers' deadlines and vnet_next_delivery (str0m tests/common.rs progress(), quicly t/test.c
 * exchange_until_idle). vnet_advance also moves the process clock of vnet_clock.c, which libssl
 * and libusrsctp read through gettimeofday/clock_gettime. One vnet at a time per process.
 */
#ifndef TERN_TESTS_SIM_VNET_H
#define TERN_TESTS_SIM_VNET_H

#include "tern/tern.h"

#include <stdio.h>

typedef struct vnet vnet_t;
typedef struct vnet_host vnet_host_t;
typedef struct vnet_nat vnet_nat_t;

/* Impairments of one direction of a link. All zero: perfect, no delay, no limit. */
typedef struct vnet_link {
    tern_time_t delay_us;   /* fixed one-way delay */
    tern_time_t jitter_us;  /* plus a uniform [0, jitter_us]; order is kept unless reordered */
    double loss;            /* probability that a datagram is dropped */
    double loss_burst;      /* mean length of a loss burst (Gilbert-Elliott); <= 1: independent */
    double duplicate;       /* probability that a datagram is delivered twice */
    double reorder;         /* probability that a datagram is held back by reorder_us */
    tern_time_t reorder_us; /* 0: 10 ms */
    size_t mtu;             /* largest IP packet (IP + UDP headers + payload); 0: no limit */
    uint64_t rate_bps;      /* serialization rate in bits per second; 0: unlimited */
    tern_time_t queue_us;   /* with rate_bps: most queueing delay before tail drop; 0: 100 ms */
    bool down;              /* drop everything, as a cut cable */
} vnet_link_t;

/* Counters of the whole network. */
typedef struct vnet_stats {
    uint64_t sent;      /* datagrams handed to vnet_send */
    uint64_t delivered; /* datagrams returned by vnet_poll_delivery */
    uint64_t bytes_delivered;
    uint64_t lost;                /* dropped by a link's loss or because it was down */
    uint64_t duplicated;          /* extra copies made */
    uint64_t reordered;           /* datagrams held back */
    uint64_t too_big;             /* over a link's MTU */
    uint64_t queue_dropped;       /* tail drops of a rate-limited link */
    uint64_t filtered;            /* dropped by the caller's filter */
    uint64_t no_route;            /* no host or NAT has the destination address in that realm */
    uint64_t unbound;             /* destination port not bound on the host */
    uint64_t bad_source;          /* the source address is not bound on the sending host */
    uint64_t nat_no_mapping;      /* inbound to a NAT port with no live mapping */
    uint64_t nat_filtered;        /* inbound refused by a NAT's filtering */
    uint64_t nat_hairpin;         /* hairpinned datagrams */
    uint64_t nat_hairpin_dropped; /* datagrams to the NAT's own address with hairpinning off */
    uint64_t nat_mappings;        /* mappings created */
    uint64_t nat_full;            /* new flows refused: max_mappings reached or no free port */
} vnet_stats_t;

/* One datagram as the caller's filter and trace see it. */
typedef struct vnet_packet {
    const vnet_host_t *from;
    tern_addr_t src;
    tern_addr_t dst;
    const uint8_t *data;
    size_t len;
} vnet_packet_t;

/* Return true to drop the datagram (it counts in stats.filtered). */
typedef bool (*vnet_filter_fn)(void *user, tern_time_t now, const vnet_packet_t *pkt);

/* A datagram that reached a host: hand it to that host's peer. */
typedef struct vnet_delivery {
    vnet_host_t *host;
    tern_datagram_t dgram; /* dgram.data valid until the next vnet call */
} vnet_delivery_t;

/* ---- network and time ---- */

/*
 * Create a network whose clock starts at `start` (tests use 1000000). The seed drives every
 * random choice. Starts a new run of the process clock (vnet_clock_begin_run).
 * Returns NULL if out of memory.
 */
vnet_t *vnet_new(uint64_t seed, tern_time_t start);

/* Free the network, its hosts, NATs and every datagram in flight. NULL is a no-op. */
void vnet_free(vnet_t *net);

tern_time_t vnet_now(const vnet_t *net);

/* Move the clock to t (ignored if t is earlier than now). */
void vnet_advance(vnet_t *net, tern_time_t t);

/*
 * When the network next has work: a datagram in flight reaching a link, a NAT or a host
 * (advance there and poll; an internal hop delivers nothing). TERN_TIME_NEVER if none.
 */
tern_time_t vnet_next_delivery(const vnet_t *net);

/*
 * Take the next datagram due at or before now, after running the NAT hops that are due.
 * Returns false when nothing more is due.
 */
bool vnet_poll_delivery(vnet_t *net, vnet_delivery_t *out);

/*
 * Send a datagram now from `host`, from its bound address `src` to `dst` (a transmit's local
 * and remote). Returns 0, also when the network drops it; -1 if src is not bound on the host
 * or the families differ (counted in stats.bad_source: a bug of the sender).
 */
int vnet_send(vnet_t *net, vnet_host_t *host, const tern_addr_t *src, const tern_addr_t *dst,
              const uint8_t *data, size_t len);

/* Datagrams in flight right now. */
size_t vnet_in_flight(const vnet_t *net);

const vnet_stats_t *vnet_stats(const vnet_t *net);

/* Drop datagrams the filter chooses (NULL: none); it sees each datagram once, when sent. */
void vnet_set_filter(vnet_t *net, vnet_filter_fn fn, void *user);

/* Print one line per datagram sent, dropped and delivered to `out` (NULL: off). */
void vnet_set_trace(vnet_t *net, FILE *out);

/* A uniformly random 64-bit value, or double in [0, 1), from the network's generator. */
uint64_t vnet_random(vnet_t *net);
double vnet_random_unit(vnet_t *net);

/* ---- hosts ---- */

/*
 * Add a host with address `ip` ("10.0.0.1", "2001:db8::1") on the internet (behind == NULL) or
 * behind a NAT. `user` is returned by vnet_host_user. Returns NULL if the address does not
 * parse, is already used in that realm, or memory runs out.
 */
vnet_host_t *vnet_host_new(vnet_t *net, vnet_nat_t *behind, const char *ip, void *user);

/*
 * Bind a UDP port on the host (0: the next free ephemeral port) and return its address.
 * Returns 0; -1 if the port is in use.
 */
int vnet_host_bind(vnet_host_t *host, uint16_t port, tern_addr_t *out);

/* Unbind a port: later datagrams to it are dropped (stats.unbound). */
void vnet_host_unbind(vnet_host_t *host, uint16_t port);

/* The host's links, to read or change at any time (changes apply to later datagrams). */
vnet_link_t *vnet_host_up(vnet_host_t *host);
vnet_link_t *vnet_host_down(vnet_host_t *host);
/* Set both directions to the same impairments. */
void vnet_host_set_link(vnet_host_t *host, const vnet_link_t *link);

/*
 * Let the network answer for a host: datagrams that reach it go to fn (which may vnet_send
 * replies) instead of out of vnet_poll_delivery. NULL: deliver as usual.
 */
typedef void (*vnet_responder_fn)(void *user, vnet_t *net, vnet_host_t *host,
                                  const tern_datagram_t *dgram);
void vnet_host_set_responder(vnet_host_t *host, vnet_responder_fn fn, void *user);

const tern_addr_t *vnet_host_addr(const vnet_host_t *host); /* port 0 */
void *vnet_host_user(const vnet_host_t *host);
const char *vnet_host_name(const vnet_host_t *host); /* its address as text */

/* ---- NATs (vnet_nat.c) ---- */

/* RFC 4787 §4.1 mapping behaviour. */
typedef enum {
    VNET_MAP_ENDPOINT_INDEPENDENT = 0,
    VNET_MAP_ADDRESS_DEPENDENT,
    VNET_MAP_ADDRESS_PORT_DEPENDENT, /* "symmetric" */
} vnet_nat_mapping_t;

/* RFC 4787 §5 filtering behaviour. */
typedef enum {
    VNET_FILTER_ENDPOINT_INDEPENDENT = 0,
    VNET_FILTER_ADDRESS_DEPENDENT,
    VNET_FILTER_ADDRESS_PORT_DEPENDENT,
} vnet_nat_filtering_t;

/* RFC 4787 §4.2.1 port assignment. */
typedef enum {
    VNET_PORT_PRESERVE = 0, /* keep the internal port when free, else the next sequential one */
    VNET_PORT_SEQUENTIAL,   /* port_base, port_base + 1, ... (predictable) */
    VNET_PORT_RANDOM,       /* uniform in [port_base, 65535] */
} vnet_nat_ports_t;

typedef struct vnet_nat_config {
    vnet_nat_mapping_t mapping;
    vnet_nat_filtering_t filtering;
    vnet_nat_ports_t ports;
    bool hairpinning; /* RFC 4787 §6 REQ-9 */
    /* Idle time after which a mapping is gone; 0: 120 s (RFC 4787 §4.3 REQ-5 minimum). */
    tern_time_t mapping_timeout_us;
    /* Inbound datagrams refresh the mapping too (RFC 4787 §4.3 REQ-6 makes it optional). */
    bool inbound_refresh;
    uint16_t port_base;  /* 0: 49152 */
    size_t max_mappings; /* 0: 4096; past it new flows are dropped */
} vnet_nat_config_t;

/* The classic names, for readability in scenarios. */
typedef enum {
    VNET_NAT_FULL_CONE,            /* EIM + EIF */
    VNET_NAT_RESTRICTED_CONE,      /* EIM + ADF */
    VNET_NAT_PORT_RESTRICTED_CONE, /* EIM + APDF */
    VNET_NAT_SYMMETRIC,            /* APDM + APDF, sequential ports */
} vnet_nat_kind_t;

vnet_nat_config_t vnet_nat_config_of(vnet_nat_kind_t kind);

/*
 * Add a NAT whose outside address `public_ip` is on the internet (behind == NULL) or inside
 * another NAT. Hosts created behind it form its private realm. `cfg` NULL: full cone.
 * Returns NULL for a bad or used address, or out of memory.
 */
vnet_nat_t *vnet_nat_new(vnet_t *net, vnet_nat_t *behind, const char *public_ip,
                         const vnet_nat_config_t *cfg);

/* The NAT's outside links (toward its own realm). */
vnet_link_t *vnet_nat_up(vnet_nat_t *nat);
vnet_link_t *vnet_nat_down(vnet_nat_t *nat);

const tern_addr_t *vnet_nat_public_addr(const vnet_nat_t *nat);

/* Live (unexpired) mappings now. */
size_t vnet_nat_mapping_count(vnet_nat_t *nat);

/*
 * The external address a datagram from `internal` to `remote` would leave with, if a live
 * mapping exists. Returns 0; -1 if there is none.
 */
int vnet_nat_find_mapping(vnet_nat_t *nat, const tern_addr_t *internal, const tern_addr_t *remote,
                          tern_addr_t *external);

/* ---- a STUN server (vnet_stun.c) ---- */

/*
 * Add a host at `ip` (behind a NAT or on the internet) that answers STUN Binding requests on
 * `port` with the source it saw (RFC 8489 §6.3.1: XOR-MAPPED-ADDRESS, FINGERPRINT), as a public
 * STUN server does. It ignores everything else. Returns the host, NULL on failure.
 */
vnet_host_t *vnet_stun_server_new(vnet_t *net, vnet_nat_t *behind, const char *ip, uint16_t port);

/* Binding requests a STUN server host answered, and datagrams it ignored. */
uint64_t vnet_stun_answered(const vnet_host_t *server);
uint64_t vnet_stun_ignored(const vnet_host_t *server);

/* ---- the process clock (vnet_clock.c) ---- */

/*
 * Begin a run whose clock starts at `start`: from now on the process clock reads
 * offset + t for the run's time t, with the offset chosen so that it never goes backwards
 * across runs (0 if start is vnet_clock_next_start() or later).
 */
void vnet_clock_begin_run(tern_time_t start);

/*
 * A start time for the next run that keeps the process clock monotonic with no offset: one
 * second after the last run's time, rounded up to a whole second (1000000 for the first run).
 * Runs of whole peers use it, since the stack keeps process-wide state (usrsctp's tick).
 */
tern_time_t vnet_clock_next_start(void);

/* Set the run's time (from vnet_advance); earlier values are ignored. */
void vnet_clock_set(tern_time_t now);

/* The real monotonic clock in microseconds, for reporting how long a program took. */
tern_time_t vnet_clock_real_us(void);

/* How many times libc-clock readings were answered from the virtual clock (for self-tests). */
uint64_t vnet_clock_virtual_reads(void);

#endif
