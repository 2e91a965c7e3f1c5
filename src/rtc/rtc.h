/* SPDX-License-Identifier: MIT */
/*
 * The peer connection as one sans-IO object composing the layers (str0m's Rtc): the RFC 7983
 * demultiplexer sends STUN to ICE and DTLS records to DTLS; DTLS application data goes to SCTP
 * and SCTP packets back through DTLS; the data channel manager sits on SCTP; the ICE-selected
 * pair carries every datagram. JSEP (RFC 8829) decides what the descriptions say.
 *
 * Files: rtc_ctx.c (the context: identity, global timers, the to-drain list), rtc_pc.c (life
 * cycle, input, output, routing between layers, states), rtc_jsep.c (offers, answers,
 * descriptions, candidates), rtc_events.c (the pc's own event queue).
 *
 * Scope: one data-channel section (BUNDLE, one component); audio and video sections of a remote
 * offer are rejected in the answer. Renegotiation keeps the transport and only applies ICE
 * restarts and new candidates.
 */
#ifndef TERN_RTC_RTC_H
#define TERN_RTC_RTC_H

#include "dc/dc.h"
#include "dtls/dtls.h"
#include "ice/ice.h"
#include "ice/ice_turn.h"
#include "sctp/sctp.h"
#include "sdp/sdp.h"
#include "util/util.h"

/* One queued pc-level event, with copies of the strings it carries. */
typedef struct rtc_event {
    tern_event_type_t type;
    int value; /* the state, for the state events */
    int mline_index;
    char mid[TERN_SDP_MID_SIZE];
    char candidate[TERN_ICE_CANDIDATE_STRLEN];
} rtc_event_t;

typedef struct rtc_event_queue {
    rtc_event_t *ring;
    size_t cap, head, count;
} rtc_event_queue_t;

#define RTC_MAX_QUEUED_EVENTS 1024
#define RTC_MAX_EARLY_DATAGRAMS 8

struct tern_pc {
    /* configuration */
    tern_ctx_t *ctx;
    uint32_t id;
    tern_pc_config_t cfg;
    tern_ice_server_t *ice_servers; /* copies of cfg's, with their strings */
    char **bind_addresses;          /* copies of cfg's */
    struct rtc_server *servers;     /* the ICE server URLs parsed (rtc_servers.c) */
    char *turn_tls_ca_file;         /* copy of cfg's */
    void *user;

    /* children */
    tern_ice_t *ice;
    tern_dtls_t *dtls;
    tern_sctp_t *sctp;
    tern_dcm_t *dcm;

    /* signaling */
    tern_signaling_state_t signaling;
    char *local_sdp;  /* current local description, as text */
    char *remote_sdp; /* current remote description, as text */
    tern_sdp_t *remote;
    bool offered_once;           /* we made an offer that was answered, or answered one */
    bool negotiated;             /* a data section is agreed: transport may start */
    char mid[TERN_SDP_MID_SIZE]; /* our data section's mid */
    int mline_index;
    uint64_t session_id, session_version;
    bool remote_old_sctp_form; /* remote wrote DTLS/SCTP + sctpmap: answer the same way */
    bool restart_pending;      /* restartIce called: the next offer has new credentials */

    /* DTLS and SCTP parameters learnt from the descriptions */
    bool dtls_role_known;
    tern_dtls_role_t dtls_role;
    tern_sdp_setup_t local_setup;
    char remote_fp_alg[TERN_SDP_FP_ALG_SIZE];
    char remote_fp[TERN_SDP_FP_SIZE];
    uint16_t remote_sctp_port;
    size_t remote_max_message_size;
    bool sctp_started;

    /* local candidates, formatted, for descriptions and trickle */
    char **local_candidates;
    size_t local_candidate_count;
    size_t local_candidates_announced; /* how many went out as events */
    bool gathering_complete;
    bool end_of_candidates_announced;

    /* states */
    tern_time_t now;
    tern_pc_state_t state;
    tern_ice_state_t ice_state;
    tern_ice_gathering_state_t gathering;
    bool closed;
    bool ice_closed;
    bool dtls_failed;
    char last_error[256];

    /* datagrams that arrived before DTLS existed (an early ClientHello) */
    uint8_t *early[RTC_MAX_EARLY_DATAGRAMS];
    size_t early_len[RTC_MAX_EARLY_DATAGRAMS];
    size_t early_count;

    /* queues */
    rtc_event_queue_t events;
    rtc_event_t current_event; /* storage behind the last event returned */
    const char *timeout_reason;

    /* the context's to-drain list */
    struct tern_pc *pending_next;
    bool pending;

    tern_pc_stats_t stats;
};

/* rtc_ctx.c: put the pc on its context's to-drain list (once), take it off. */
void tern_rtc_mark_pending(tern_pc_t *pc);
void tern_rtc_unlink_pending(tern_pc_t *pc);
/* on_pending hook for children: the owner is the pc. */
void tern_rtc_on_child_pending(void *pc);

/* rtc_events.c */
int tern_rtc_queue_event(tern_pc_t *pc, const rtc_event_t *ev);
int tern_rtc_queue_state_event(tern_pc_t *pc, tern_event_type_t type, int value);
bool tern_rtc_pop_event(tern_pc_t *pc, tern_event_t *out);
void tern_rtc_events_dispose(tern_pc_t *pc);

/* rtc_pc.c */
void tern_rtc_set_error(tern_pc_t *pc, const char *fmt, ...) TERN_PRINTF(2, 3);

/*
 * The entry of an API call that needs an open pc: TERN_ERR_INVALID_ARG without one,
 * TERN_ERR_INVALID_STATE once it is closed; else the pc's time moves on to *now (it never goes
 * back: a caller may pass an older reading) and *now becomes that time.
 */
int tern_rtc_enter(tern_pc_t *pc, tern_time_t *now);
/* Recompute the W3C connection state from ICE and DTLS; queue the event if it changed. */
void tern_rtc_update_state(tern_pc_t *pc);
/* Move everything that waits between the children (events, input data) until nothing moves. */
void tern_rtc_pump(tern_pc_t *pc, tern_time_t now);
/* The DTLS role is now known: make the DTLS endpoint, tell the channels. */
int tern_rtc_set_dtls_role(tern_pc_t *pc, tern_time_t now, tern_dtls_role_t role);
/* Hand the remote fingerprint to DTLS if both exist. */
void tern_rtc_apply_remote_fingerprint(tern_pc_t *pc, tern_time_t now);

/* Hand the datagrams peers sent through TURN relays (unwrapped by ICE) to the layers. */
void tern_rtc_deliver_relayed(tern_pc_t *pc, tern_time_t now);

/* rtc_servers.c: ICE servers from the configuration to the agent. */
/* Check one configured server (URL, credentials for TURN); sets the last error. */
int tern_rtc_check_server(tern_pc_t *pc, const tern_ice_server_t *s);
/* Copy what drivers read of the configuration (turn_tls_ca_file). */
int tern_rtc_copy_server_config(tern_pc_t *pc, const tern_pc_config_t *cfg);
/* Once ICE exists: servers given as IP addresses go to the agent, named ones wait. */
int tern_rtc_start_servers(tern_pc_t *pc, tern_time_t now);
void tern_rtc_free_servers(tern_pc_t *pc);

/* rtc_jsep.c */
/* A new local candidate from ICE: keep it for descriptions, announce it if allowed. */
int tern_rtc_add_local_candidate(tern_pc_t *pc, const tern_ice_candidate_t *c);
/* Announce candidates held back until the local description was set. */
void tern_rtc_announce_candidates(tern_pc_t *pc);

#endif
