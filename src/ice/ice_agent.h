/* SPDX-License-Identifier: MIT */
/*
 * The ICE agent's private state, shared by ice.c (lifecycle, commands, gathering, events,
 * states) and ice_check.c (pairs, the check list and its scheduler, STUN transactions, answers to
 * incoming checks, nomination, consent). Nothing outside src/ice/ includes this file.
 */
#ifndef TERN_ICE_ICE_AGENT_H
#define TERN_ICE_ICE_AGENT_H

#include "ice/ice.h"
#include "ice/ice_mdns.h"

#include <string.h>

/* Timers (microseconds). */
#define ICE_DEFAULT_TA_US 20000             /* brief: 20 ms pacing (RFC 8445 §14.2 allows it) */
#define ICE_DEFAULT_DISCONNECTED_US 5000000 /* 5 s without consent */
#define ICE_DEFAULT_FAILED_US 30000000      /* RFC 7675 §5.1: consent expires after 30 s */
#define ICE_DEFAULT_CONSENT_US 5000000      /* RFC 7675 §5.1: every 5 s, randomized ±20 % */
#define ICE_DEFAULT_NOMINATION_US 200000    /* grace time before nominating a lesser pair */
#define ICE_RTO_MIN_US 500000               /* RFC 8445 §14.3: RTO >= 500 ms */
/* Backoff cap and transmissions (RFC 8489 §6.2.1 Rc = 7): a check fails after ~9.5 s. */
#define ICE_RTO_MAX_US 1600000
#define ICE_CHECK_MAX_SENDS 7
#define ICE_SRFLX_MAX_SENDS 3      /* a STUN server gets ~3 s (0, 0.5, 1.5 s; done at 3.1 s) */
#define ICE_TXN_LINGER_US 10000000 /* answers to cancelled transactions count this long */

/* A relay pair that succeeded first waits this long for a direct one that may still work (a
 * first check lost to a filtering NAT costs one RTO, 500 ms): a relay must not win merely
 * because its path answered first. */
#define ICE_RELAY_NOMINATION_US 1500000

/* Defaults of the bounds. */
#define ICE_DEFAULT_MAX_REMOTE 100
#define ICE_DEFAULT_MAX_PAIRS 100 /* RFC 8445 §6.1.2.5 */
#define ICE_DEFAULT_MAX_LOCAL 32
#define ICE_DEFAULT_MAX_SERVERS 4
#define ICE_MAX_PRFLX_LOCAL 8      /* local peer-reflexive candidates learnt from responses */
#define ICE_DEFAULT_MDNS_LOOKUPS 4 /* a browser hides each of its host addresses behind a name */

#define ICE_TXQ_ENTRIES 64 /* datagrams waiting to be polled */

/* Largest STUN message the agent writes: two ufrags of at most 256 chars (RFC 8839 §5.4) in
 * USERNAME, and a few fixed-size attributes. */
#define ICE_STUN_MAX 1024

typedef enum {
    PAIR_FROZEN,
    PAIR_WAITING,
    PAIR_IN_PROGRESS,
    PAIR_SUCCEEDED,
    PAIR_FAILED,
} ice_pair_state_t;

typedef enum {
    TXN_FREE = 0,
    TXN_CHECK,   /* connectivity check (or nomination) of a pair */
    TXN_CONSENT, /* consent freshness check of the selected pair (RFC 7675) */
    TXN_SRFLX,   /* Binding request to a STUN server from a host base */
} ice_txn_kind_t;

typedef struct ice_local {
    tern_ice_candidate_t c;
    tern_addr_t base;    /* the socket the candidate sends from */
    uint16_t base_index; /* index of the host candidate of that base (itself for a host) */
    uint16_t server;     /* srflx: index of the STUN server that told it */
    uint16_t local_pref;
    bool signaled; /* reported as TERN_ICE_EV_LOCAL_CANDIDATE (prflx ones never are) */
} ice_local_t;

typedef struct ice_remote {
    tern_ice_candidate_t c;
    bool legacy; /* kept across a restart for the selected pair only */
} ice_remote_t;

typedef struct ice_pair {
    uint16_t local;  /* index of the host (base) candidate in ice->locals */
    uint16_t remote; /* index in ice->remotes */
    uint16_t mapped; /* local candidate the check's mapped address matched (may be prflx) */
    uint64_t priority;
    ice_pair_state_t state;
    bool queued;           /* in the triggered-check queue */
    bool nominate_pending; /* controlling: the next check carries USE-CANDIDATE */
    bool remote_nominated; /* controlled: the peer sent USE-CANDIDATE on this pair */
    bool nominated;
    bool legacy; /* the previous generation's selected pair, kept during a restart */
    int txn;     /* the retransmitting transaction, or -1 */
    uint32_t rtt_us;
    tern_time_t consent_at;   /* last authenticated response on this pair */
    tern_time_t next_consent; /* when to send the next consent check */
} ice_pair_t;

typedef struct ice_txn {
    ice_txn_kind_t kind;
    uint8_t tid[TERN_STUN_TID_LEN];
    uint16_t index; /* pair index, or for TXN_SRFLX the local index */
    uint16_t server;
    bool use_candidate;
    bool was_controlling; /* the role the request was sent in (RFC 8445 §7.2.5.1) */
    bool retransmitting;  /* false once cancelled or done: only a late answer is awaited */
    uint8_t sends;
    uint8_t max_sends;
    uint32_t rto_us;
    uint32_t prflx_priority; /* the PRIORITY the request carried */
    tern_time_t first_sent, last_sent, next_send, expires;
    tern_addr_t local, remote;
} ice_txn_t;

/* A queued event; pointers are made when it is polled, so they are fresh. */
typedef struct ice_event {
    tern_ice_event_type_t type;
    uint16_t local; /* TERN_ICE_EV_LOCAL_CANDIDATE */
    tern_ice_state_t state;
    bool controlling;
} ice_event_t;

struct tern_ice {
    /* configuration */
    tern_ctx_t *ctx;
    tern_ice_config_t cfg;
    uint32_t id; /* for log lines */

    /* credentials */
    char local_ufrag[TERN_ICE_CRED_MAX + 1];
    char local_pwd[TERN_ICE_CRED_MAX + 1];
    char remote_ufrag[TERN_ICE_CRED_MAX + 1];
    char remote_pwd[TERN_ICE_CRED_MAX + 1];
    char old_local_ufrag[TERN_ICE_CRED_MAX + 1]; /* previous generation, during a restart */
    char old_local_pwd[TERN_ICE_CRED_MAX + 1];
    char old_remote_ufrag[TERN_ICE_CRED_MAX + 1];
    char old_remote_pwd[TERN_ICE_CRED_MAX + 1];
    bool has_remote_credentials;
    bool has_old_credentials;
    uint64_t tie_breaker;
    bool controlling;

    /* state */
    tern_time_t now;
    tern_ice_state_t state;
    tern_ice_gathering_state_t gathering;
    bool local_done;
    bool remote_done;
    bool checks_started; /* a check was sent or answered: credentials and role are fixed */
    bool failed;         /* sticky until a restart */
    bool closed;
    bool gathering_announced;
    tern_time_t checking_since;
    tern_time_t last_check_sent;
    tern_time_t first_success_at; /* controlling: the nomination grace time runs from here */
    uint32_t prflx_remote_seq;
    uint16_t host_count;

    /* Tables grow on demand (most connections need a few entries) up to their *_cap bound. */
    ice_local_t *locals;
    size_t local_count, local_alloc, local_cap;
    ice_remote_t *remotes;
    size_t remote_count, remote_alloc, remote_cap;
    ice_pair_t *pairs;
    size_t pair_count, pair_alloc, pair_cap;
    int selected; /* pair index or -1 */
    tern_addr_t *servers;
    size_t server_count, server_cap;
    ice_txn_t *txns;
    size_t txn_alloc, txn_cap;

    int nominating;          /* controlling: the pair being nominated, or -1 */
    uint32_t foundation_seq; /* local foundations are small decimal numbers */

    /* queues */
    uint16_t *triggered; /* ring of pair indices */
    size_t trig_head, trig_count;
    ice_event_t *events; /* ring, turned into tern_ice_event_t when polled */
    size_t ev_head, ev_count, ev_cap;
    tern_txq_t txq;

    /* mDNS names being resolved and the candidates waiting for them (ice_mdns.c); allocated
     * with the first ".local" candidate */
    ice_mdns_t *mdns;

    /* TURN allocations (ice_turn.c); allocated with the first TURN server */
    struct ice_turn *turn;

    /* stats */
    tern_ice_stats_t stats;
};

/*
 * A remote address as signaled against one seen on the wire: a link-local IPv6 candidate comes
 * without its zone (scope 0) while a received datagram carries the interface's.
 */
static inline bool ice_remote_addr_match(const tern_addr_t *a, const tern_addr_t *b)
{
    return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, 16) == 0 &&
           (a->scope_id == b->scope_id || a->scope_id == 0 || b->scope_id == 0);
}

/* ice.c */
void tern_ice_log(tern_ice_t *ice, tern_log_level_t level, const char *fmt, ...) TERN_PRINTF(3, 4);
#define ICE_LOG(ice, level, ...)                                                                   \
    do {                                                                                           \
        if (TERN_LOG_ENABLED((ice)->ctx, level))                                                   \
            tern_ice_log((ice), (level), __VA_ARGS__);                                             \
    } while (0)
#define ICE_DEBUG(ice, ...) ICE_LOG(ice, TERN_LOG_DEBUG, __VA_ARGS__)
#define ICE_TRACE(ice, ...) ICE_LOG(ice, TERN_LOG_TRACE, __VA_ARGS__)
/*
 * Make room for `need` entries in a table of `*alloc` entries of `elem` bytes, at most `max`:
 * returns the table (moved, the new entries zeroed), or NULL (nothing changed) if over the
 * bound or out of memory. Pointers into the table do not survive a call.
 */
void *tern_ice_grow(tern_ice_t *ice, void *table, size_t *alloc, size_t max, size_t elem,
                    size_t need);
void tern_ice_push_event(tern_ice_t *ice, tern_ice_event_type_t type, uint16_t local);
void tern_ice_update_state(tern_ice_t *ice);
void tern_ice_check_gathering_done(tern_ice_t *ice);
int tern_ice_add_srflx(tern_ice_t *ice, uint16_t base, uint16_t server, const tern_addr_t *mapped);
int tern_ice_find_local_by_addr(const tern_ice_t *ice, const tern_addr_t *addr);
int tern_ice_add_prflx_local(tern_ice_t *ice, uint16_t base, const tern_addr_t *mapped,
                             uint32_t priority);
/* Add a remote candidate that has an address (no service run); tern_ice_add_remote_candidate's
 * return values. */
int tern_ice_add_remote(tern_ice_t *ice, const tern_ice_candidate_t *c);

/* Add a relay candidate (its base is itself, RFC 8445 §5.1.1.2), announce and pair it: its
 * index, or -1 past the bounds. */
int tern_ice_add_relay(tern_ice_t *ice, uint16_t server, const tern_addr_t *relayed,
                       const tern_addr_t *mapped, uint16_t local_pref);

/* ice_turn.c */
#define TERN_ICE_WRAP_PASS 0     /* not from a relay candidate: send as it is */
#define TERN_ICE_WRAP_SENT 1     /* rewritten in place into a datagram to the TURN server */
#define TERN_ICE_WRAP_CONSUMED 2 /* went into a stream, or dropped (counted) */
int tern_ice_turn_wrap(tern_ice_t *ice, tern_transmit_t *t);
void tern_ice_turn_service(tern_ice_t *ice);
tern_time_t tern_ice_turn_deadline(const tern_ice_t *ice);
bool tern_ice_turn_gathering(const tern_ice_t *ice);
void tern_ice_turn_permit(tern_ice_t *ice, uint16_t local, const tern_addr_t *peer);
bool tern_ice_turn_accepts(const tern_ice_t *ice, const tern_datagram_t *in);
bool tern_ice_turn_is_relay(const tern_ice_t *ice, const tern_addr_t *local);
void tern_ice_turn_close(tern_ice_t *ice);
void tern_ice_turn_free(tern_ice_t *ice);

/* ice_check.c */
void tern_ice_pair_local(tern_ice_t *ice, uint16_t local);
void tern_ice_pair_remote(tern_ice_t *ice, uint16_t remote);
void tern_ice_recompute_priorities(tern_ice_t *ice);
void tern_ice_service(tern_ice_t *ice);
void tern_ice_start_srflx(tern_ice_t *ice, uint16_t local, uint16_t server);
int tern_ice_handle_stun(tern_ice_t *ice, const tern_datagram_t *in, const tern_stun_msg_t *m);
void tern_ice_reset_checks(tern_ice_t *ice, int keep_pair);
tern_time_t tern_ice_checks_deadline(const tern_ice_t *ice);
void tern_ice_select(tern_ice_t *ice, int pair);
void tern_ice_pair_view(const tern_ice_t *ice, int pair, tern_ice_pair_view_t *out);
bool tern_ice_has_txn(const tern_ice_t *ice, const uint8_t tid[TERN_STUN_TID_LEN]);

#endif
