/* SPDX-License-Identifier: MIT */
/*
 * ICE (RFC 8445) as a sans-IO full agent with trickle (RFC 8838) and consent freshness
 * (RFC 7675), plus the a=candidate line codec (RFC 8839 §5.1). The agent is fed the local socket
 * addresses, the remote credentials and candidates, and every STUN datagram that arrives on its
 * sockets; it answers with datagrams to send (tern_ice_poll_transmit), events
 * (tern_ice_poll_event) and a deadline (tern_ice_next_deadline), the contract of
 * CONVENTIONS.md §2. It gathers host candidates from the addresses handed in and server-reflexive
 * ones through STUN servers, forms, prunes, sorts and paces the check list, answers and triggers
 * checks, learns peer-reflexive candidates, resolves role conflicts, nominates (regular
 * nomination, early: as soon as the best pair it can hope for succeeds, or after a short grace
 * time), keeps consent, and restarts.
 *
 * Scope (deliberately unsupported): one data stream with one component (BUNDLE and rtcp-mux, as
 * every WebRTC peer does), so remote candidates of component 2 are ignored; ICE-TCP candidates
 * are accepted and ignored; mDNS ".local" host names are resolved by the agent itself (one-shot
 * multicast queries, RFC 6762, see ice_mdns.h: the driver must deliver what arrives on
 * 224.0.0.251:5353 once the agent sends there) while other host names are accepted and ignored
 * (resolve them and add the candidate again with `addr` set); ICE-lite is not implemented (the
 * agent is always full, and it works with a lite peer if made controlling); aggressive nomination
 * is not sent (RFC 8445 removed it) but a USE-CANDIDATE on any check is honoured. Relay candidates
 * come from the TURN client of ice_turn.h (tern_ice_add_turn_server): transmits from a relay
 * candidate leave tern_ice_poll_transmit already wrapped for the TURN server, and what peers send
 * through a relay is unwrapped by tern_ice_turn_handle_input / tern_ice_poll_relayed.
 */
#ifndef TERN_ICE_ICE_H
#define TERN_ICE_ICE_H

#include "stun/stun.h"
#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* Candidates                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/** Candidate types (RFC 8445 §5.1.1), in the order of their type preference (low to high). */
typedef enum {
    TERN_ICE_CAND_HOST,
    TERN_ICE_CAND_SRFLX,
    TERN_ICE_CAND_PRFLX,
    TERN_ICE_CAND_RELAY,
} tern_ice_cand_type_t;

/** ICE-TCP candidate kinds (RFC 6544 §4.5); UDP candidates have TERN_ICE_TCPTYPE_NONE. */
typedef enum {
    TERN_ICE_TCPTYPE_NONE = 0,
    TERN_ICE_TCPTYPE_ACTIVE,
    TERN_ICE_TCPTYPE_PASSIVE,
    TERN_ICE_TCPTYPE_SO,
} tern_ice_tcptype_t;

#define TERN_ICE_FOUNDATION_MAX 32 /* RFC 8839 §5.1: 1*32ice-char */
#define TERN_ICE_HOSTNAME_MAX 255  /* RFC 1035 §2.3.4 */
/* Longest line tern_ice_candidate_format writes, with its NUL. */
#define TERN_ICE_CANDIDATE_STRLEN 512
/* ICE credential lengths (RFC 8839 §5.4): ufrag 4..256 chars, pwd 22..256 chars. */
#define TERN_ICE_UFRAG_MIN 4
#define TERN_ICE_PWD_MIN 22
#define TERN_ICE_CRED_MAX 256

/** One candidate, local or remote. Plain data: copy it freely. */
typedef struct tern_ice_candidate {
    char foundation[TERN_ICE_FOUNDATION_MAX + 1];
    uint16_t component; /**< 1..256; the agent uses 1 */
    tern_transport_t transport;
    uint32_t priority;
    tern_addr_t addr; /**< family TERN_AF_UNSPEC while `hostname` is unresolved */
    /** An mDNS ".local" name (or other FQDN) as received; "" if the address was an IP. */
    char hostname[TERN_ICE_HOSTNAME_MAX + 1];
    tern_ice_cand_type_t type;
    /** raddr/rport: the base of a srflx/prflx/relay candidate; TERN_AF_UNSPEC if none. */
    tern_addr_t related;
    uint8_t tcptype; /**< tern_ice_tcptype_t */
} tern_ice_candidate_t;

/**
 * Parse a candidate attribute (RFC 8839 §5.1): "candidate:..." or "a=candidate:...", with or
 * without a trailing CR/LF. Extension pairs the agent does not use (generation, network-id,
 * network-cost, ufrag, ...) are skipped. Accepts what Chromium and Firefox send (upper- or
 * lowercase transport, mDNS names, "tcptype"), refuses anything else malformed. A name that is
 * not an IP address lands in `hostname`, with `addr` left TERN_AF_UNSPEC (port kept in
 * addr.port).
 * @param text  borrowed; need not be NUL-terminated.
 * @param out   filled on success (zeroed first, so two parses of one line compare equal with
 *              memcmp); untouched on failure.
 * @return 0; TERN_ERR_PARSE if malformed; TERN_ERR_INVALID_ARG for NULL arguments.
 */
int tern_ice_candidate_parse(const char *text, size_t len, tern_ice_candidate_t *out);

/**
 * Write a candidate as "candidate:<foundation> <component> <udp|tcp> <priority> <address>
 * <port> typ <type> [raddr <ip> rport <port>] [tcptype <kind>]", without "a=" and without a line
 * end, NUL-terminated. The address is `hostname` if set, else `addr`.
 * @param buf  at least TERN_ICE_CANDIDATE_STRLEN bytes is always enough.
 * @return the length written (without the NUL); TERN_ERR_TOO_LARGE if cap is too small;
 *         TERN_ERR_INVALID_ARG if the candidate has neither address nor hostname.
 */
int tern_ice_candidate_format(const tern_ice_candidate_t *c, char *buf, size_t cap);

/**
 * The priority formula of RFC 8445 §5.1.2.1:
 * (2^24) * type preference + (2^8) * local_pref + (256 - component), with the recommended type
 * preferences of §5.1.2.2 (host 126, prflx 110, srflx 100, relay 0).
 * @param local_pref  0..65535 (larger values are cut to 16 bits).
 */
uint32_t tern_ice_priority(tern_ice_cand_type_t type, uint32_t local_pref, uint16_t component);

/** @return "host", "srflx", "prflx" or "relay". */
const char *tern_ice_cand_type_name(tern_ice_cand_type_t type);

/* ------------------------------------------------------------------------------------------ */
/* Agent                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct tern_ice tern_ice_t;

/** Agent configuration. All zero means defaults. Copied by tern_ice_new. */
typedef struct tern_ice_config {
    bool controlling;                 /**< initial role; may change on a 487 role conflict */
    uint32_t ta_us;                   /**< check pacing Ta (RFC 8445 §14.2); 0: 20 ms */
    uint32_t disconnected_timeout_us; /**< 0: 5 s without consent -> disconnected */
    uint32_t failed_timeout_us;       /**< 0: 30 s without consent -> failed (RFC 7675 §5.1) */
    uint16_t max_remote_candidates;   /**< 0: 100 */
    uint16_t max_pairs;               /**< 0: 100 (RFC 8445 §6.1.2.5) */
    uint16_t max_local_candidates;    /**< 0: 32 */
    uint16_t max_stun_servers;        /**< 0: 4 */
    /**
     * Consent check period (RFC 7675 §5.1: 5 s, each interval randomized ±20 %); 0: 5 s. The
     * agent uses at most half of disconnected_timeout_us, so one lost check does not flap the
     * state (2.5 s with the defaults).
     */
    uint32_t consent_interval_us;
    /**
     * How long the controlling agent waits, after its first pair succeeds, for a better pair
     * before nominating the best one it has; 0: 200 ms. A pair that cannot be beaten (the
     * highest-priority pair of the list) is nominated at once.
     */
    uint32_t nomination_delay_us;
    /** mDNS names looked up at once (more wait their turn); 0: 4. */
    uint16_t max_mdns_lookups;
    /** true: ".local" candidates are ignored, no mDNS query is ever sent. */
    bool disable_mdns;
    /**
     * Use relay candidates only (W3C iceTransportPolicy "relay"): host addresses serve only as
     * the sockets of TURN allocations and are neither announced nor paired, and no
     * server-reflexive candidate is gathered.
     */
    bool relay_only;
} tern_ice_config_t;

/** Event types (RFC 8445 / W3C vocabulary). */
typedef enum {
    TERN_ICE_EV_NONE = 0,
    TERN_ICE_EV_LOCAL_CANDIDATE,    /**< u.candidate: a new local candidate to signal */
    TERN_ICE_EV_GATHERING_COMPLETE, /**< every local candidate has been reported */
    TERN_ICE_EV_STATE,              /**< u.state: the W3C iceConnectionState changed */
    /**
     * u.pair: the pair application data goes on changed, or was nominated (u.pair.nominated).
     * The view is made when the event is polled, so it shows the pair selected then.
     */
    TERN_ICE_EV_SELECTED_PAIR,
    TERN_ICE_EV_ROLE_CHANGED, /**< u.controlling: the role after a 487 conflict */
} tern_ice_event_type_t;

/**
 * A candidate pair as the agent exposes it. Pointers borrow from the agent: valid until the
 * next call on it.
 */
typedef struct tern_ice_pair_view {
    const tern_ice_candidate_t *local;  /**< the local candidate (host, srflx, prflx or relay) */
    const tern_ice_candidate_t *remote; /**< the remote candidate */
    tern_addr_t local_socket; /**< the local base: a socket's address, or a relayed address */
    tern_addr_t remote_addr;  /**< where to send to */
    uint32_t rtt_us;          /**< last measured round-trip time; 0 if unknown */
    bool nominated;
} tern_ice_pair_view_t;

/** One event; pointers inside borrow from the agent until the next call on it. */
typedef struct tern_ice_event {
    tern_ice_event_type_t type;
    union {
        const tern_ice_candidate_t *candidate;
        tern_ice_state_t state;
        tern_ice_pair_view_t pair;
        bool controlling;
    } u;
} tern_ice_event_t;

/** Counters of one agent. */
typedef struct tern_ice_stats {
    uint64_t checks_sent; /**< connectivity and consent checks, retransmissions included */
    uint64_t retransmissions;
    uint64_t checks_received;    /**< authenticated Binding requests */
    uint64_t responses_received; /**< authenticated responses to our transactions */
    uint64_t role_conflicts;
    uint64_t dropped;       /**< malformed, unauthenticated or unexpected datagrams */
    uint64_t tx_dropped;    /**< datagrams not queued because the transmit queue was full */
    uint64_t mdns_queries;  /**< mDNS query datagrams sent (one per IPv4 socket and attempt) */
    uint64_t mdns_resolved; /**< ".local" names resolved */
    uint64_t mdns_failed;   /**< ".local" names given up on (no answer in 5 s) */
    uint64_t mdns_ignored;  /**< mDNS datagrams that answered nothing asked, or malformed */
} tern_ice_stats_t;

/**
 * Create an agent with random local credentials (ufrag 16 chars, pwd 32 chars, RFC 8839 §5.4)
 * and a random tie-breaker, all from the context's random source.
 * @param ctx  borrowed; must outlive the agent.
 * @param cfg  may be NULL (defaults); copied.
 * @return 0; TERN_ERR_NOMEM; TERN_ERR_CRYPTO if the random source fails. *out untouched on error.
 */
int tern_ice_new(tern_ctx_t *ctx, const tern_ice_config_t *cfg, tern_time_t now, tern_ice_t **out);

/** Free an agent (its password is zeroed). NULL is a no-op. */
void tern_ice_free(tern_ice_t *ice);

/** @return the local ufrag, NUL-terminated, owned by the agent (changes on restart). */
const char *tern_ice_local_ufrag(const tern_ice_t *ice);

/** @return the local password, NUL-terminated, owned by the agent (changes on restart). */
const char *tern_ice_local_pwd(const tern_ice_t *ice);

/**
 * Replace the local credentials (tests, fuzzers, or a caller that must keep given ones).
 * Allowed only before any check has been sent or answered.
 * @param ufrag, pwd  NUL-terminated ice-chars (RFC 8839 §5.4), copied.
 * @return 0; TERN_ERR_INVALID_ARG for bad lengths or characters; TERN_ERR_INVALID_STATE once
 *         checks have started or after close.
 */
int tern_ice_set_local_credentials(tern_ice_t *ice, const char *ufrag, const char *pwd);

/** @return true if the agent is currently controlling. */
bool tern_ice_is_controlling(const tern_ice_t *ice);

/**
 * Set the role (the offerer controls, RFC 8445 §6.1.1, unless the peer is ICE-lite).
 * @return 0 (also for the current role at any time); TERN_ERR_INVALID_STATE for the other role
 *         once checks have started (a 487 conflict still changes it) or after close.
 */
int tern_ice_set_controlling(tern_ice_t *ice, bool controlling);

/**
 * Hand in a local UDP socket's address: the agent makes a host candidate for it
 * (TERN_ICE_EV_LOCAL_CANDIDATE) and pairs it with the remote candidates of its family. Local
 * preference follows RFC 8445 §5.1.2.2 and RFC 8421: IPv6 before IPv4, then the order the
 * addresses were handed in (interface order), link-local and loopback addresses last.
 * The same address twice is ignored.
 * @param addr  copied; family INET or INET6 with a port.
 * @return 0; TERN_ERR_INVALID_ARG for an unusable address (no family, port 0, unspecified or
 *         multicast IP); TERN_ERR_TOO_LARGE past max_local_candidates;
 *         TERN_ERR_INVALID_STATE after close; TERN_ERR_NOMEM.
 */
int tern_ice_add_local_address(tern_ice_t *ice, tern_time_t now, const tern_addr_t *addr);

/**
 * Gather server-reflexive candidates through a STUN server (RFC 8445 §5.1.1.2): every host
 * candidate of the same family sends it a Binding request (retransmitted, given up after about
 * 3 s). Servers may be added before or after the local addresses.
 * @param server  copied; the server's resolved address.
 * @return 0; TERN_ERR_INVALID_ARG for an unusable address; TERN_ERR_TOO_LARGE past
 *         max_stun_servers; TERN_ERR_INVALID_STATE once gathering is complete or after close.
 */
int tern_ice_add_stun_server(tern_ice_t *ice, tern_time_t now, const tern_addr_t *server);

/**
 * Say that every local address has been handed in. Gathering completes
 * (TERN_ICE_EV_GATHERING_COMPLETE) once the STUN server transactions are done too.
 * @return 0; TERN_ERR_INVALID_STATE after close.
 */
int tern_ice_local_addresses_done(tern_ice_t *ice, tern_time_t now);

/** @return the W3C iceGatheringState of the agent. */
tern_ice_gathering_state_t tern_ice_gathering_state(const tern_ice_t *ice);

/**
 * Set the remote ufrag and pwd (from the remote description). Checks start once there are
 * credentials and pairs; checks that arrived earlier are answered already, and are replayed as
 * triggered checks now (RFC 8445 §7.3.1.4). Setting different credentials later is a remote
 * ICE restart: call tern_ice_restart first, then this.
 * @param ufrag, pwd  NUL-terminated, copied. Lengths are checked loosely (1..256) because
 *                    some peers send short ones.
 * @return 0; TERN_ERR_INVALID_ARG for an empty or over-long value; TERN_ERR_INVALID_STATE after
 *         close or if they differ from the current ones without a restart.
 */
int tern_ice_set_remote_credentials(tern_ice_t *ice, tern_time_t now, const char *ufrag,
                                    const char *pwd);

/**
 * Add a remote candidate (trickled or from the description), before or after the remote
 * credentials, and also after end-of-candidates (a late candidate is still checked). A
 * duplicate of a known one (same transport and address) is ignored except that it upgrades a
 * peer-reflexive candidate's type and priority (RFC 8445 §7.3.1.3).
 * @param c  copied.
 * A candidate whose address is a ".local" name waits while the agent resolves the name by
 * mDNS (transmits to 224.0.0.251:5353 from its IPv4 host sockets), and joins the check list
 * when the answer comes; an unresolved name is given up after 5 s and never fails the agent.
 * @return 0, also for a well-formed candidate the agent ignores (TCP, component other than 1,
 *         a hostname that is not ".local", a duplicate) or waits to resolve;
 *         TERN_ERR_INVALID_ARG for a candidate of no family that has no hostname either;
 *         TERN_ERR_TOO_LARGE past max_remote_candidates (or 16 candidates waiting for names);
 *         TERN_ERR_INVALID_STATE after close; TERN_ERR_NOMEM.
 */
int tern_ice_add_remote_candidate(tern_ice_t *ice, tern_time_t now, const tern_ice_candidate_t *c);

/**
 * Say that the remote peer will send no more candidates (RFC 8838 §8.2, a=end-of-candidates).
 * Afterwards the agent fails once every pair has failed.
 * @return 0; TERN_ERR_INVALID_STATE after close.
 */
int tern_ice_remote_candidates_done(tern_ice_t *ice, tern_time_t now);

/**
 * Restart ICE (RFC 8445 §9): new local ufrag and pwd, remote candidates and credentials
 * forgotten, the local candidates reported again (TERN_ICE_EV_LOCAL_CANDIDATE for each known
 * host and srflx candidate, then TERN_ICE_EV_GATHERING_COMPLETE once local addresses are done;
 * STUN servers are not asked again), checks start anew once the new remote credentials arrive.
 * The role may be set again (tern_ice_set_controlling) until the new checks start. The selected
 * pair keeps carrying data, with consent checks under the old credentials, until a pair of the new
 * generation is selected.
 * @return 0; TERN_ERR_INVALID_STATE after close; TERN_ERR_CRYPTO if the random source fails.
 */
int tern_ice_restart(tern_ice_t *ice, tern_time_t now);

/**
 * Stop the agent: no more checks, nothing more sent, state closed (TERN_ICE_EV_STATE).
 * @return 0 (also when already closed).
 */
int tern_ice_close(tern_ice_t *ice, tern_time_t now);

/**
 * Feed a datagram that arrived on one of the local sockets, or on an mDNS socket (bound to
 * port 5353 and joined to 224.0.0.251, `local` set to 224.0.0.251:5353). mDNS answers for names
 * the agent resolves are consumed (see tern_ice_add_remote_candidate). Otherwise only STUN is
 * consumed: requests are
 * authenticated and answered (RFC 8445 §7.3), responses matched to our transactions. Anything
 * malformed, unauthenticated or unexpected is dropped and counted, and never changes the state;
 * a request with a wrong USERNAME or MESSAGE-INTEGRITY is answered 400/401 as RFC 8489 §9.1.3
 * says.
 * Allocation failures while answering only cost the answer (counted in tx_dropped).
 * @param in  borrowed for the call.
 * @return 0; TERN_ERR_INVALID_ARG for a NULL datagram.
 */
int tern_ice_handle_input(tern_ice_t *ice, tern_time_t now, const tern_datagram_t *in);

/** Run the timers whose deadline has passed (calling early does nothing). @return 0. */
int tern_ice_handle_timeout(tern_ice_t *ice, tern_time_t now);

/**
 * Take the next datagram to send.
 * @param out  filled; out->data is valid until the next call on the agent.
 * @return false when there is nothing to send.
 */
bool tern_ice_poll_transmit(tern_ice_t *ice, tern_transmit_t *out);

/** Take the next event. @return false when there is none. */
bool tern_ice_poll_event(tern_ice_t *ice, tern_ice_event_t *out);

/** @return when tern_ice_handle_timeout must next be called; TERN_TIME_NEVER if never. */
tern_time_t tern_ice_next_deadline(const tern_ice_t *ice);

/** @return the W3C iceConnectionState. */
tern_ice_state_t tern_ice_state(const tern_ice_t *ice);

/**
 * The pair application data goes on: the nominated pair, or before nomination the best
 * succeeded pair, so DTLS can start on the first working pair.
 * @param out  filled when a pair is selected; its pointers borrow from the agent.
 * @return true; false if no pair is selected (out untouched).
 */
bool tern_ice_selected_pair(const tern_ice_t *ice, tern_ice_pair_view_t *out);

/**
 * Send application data (DTLS records) on the selected pair: queued as a transmit from the
 * pair's local socket to its remote address. This is the path that will also work over relay
 * candidates; it refuses to send without consent (RFC 7675 §5.3).
 * @param data  copied.
 * @return 0; TERN_ERR_INVALID_STATE if no pair is selected, consent is lost or closed;
 *         TERN_ERR_AGAIN if the transmit queue is full; TERN_ERR_NOMEM.
 */
int tern_ice_send(tern_ice_t *ice, tern_time_t now, const uint8_t *data, size_t len);

/**
 * Whether a datagram is for this agent, to route datagrams on a socket shared by several
 * agents: a STUN request whose USERNAME starts with our ufrag and ':', a STUN response to one of
 * our transactions, an mDNS answer (on 224.0.0.251:5353) about a name the agent resolves, or
 * anything from the remote address of a known pair.
 * @param in  borrowed for the call.
 */
bool tern_ice_accepts(const tern_ice_t *ice, const tern_datagram_t *in);

/** Copy the agent's counters into *out. */
void tern_ice_get_stats(const tern_ice_t *ice, tern_ice_stats_t *out);

#endif
