/* SPDX-License-Identifier: MIT */
/*
 * One SCTP association over DTLS (RFC 8261), through usrsctp, behind the sans-IO contract
 * (CONVENTIONS.md §2): DTLS application data goes into tern_sctp_handle_input, SCTP packets come
 * out of tern_sctp_poll_transmit (to be sent as DTLS application data), and whole messages,
 * stream resets and state changes come out of tern_sctp_poll_event.
 *
 * usrsctp keeps one stack per process. It is initialised (usrsctp_init_nothreads) by the first
 * association and finished by the last, and its timers are global: usrsctp_handle_timers ticks
 * every association of the process at once. So the timers are exposed at the context level
 * (tern_sctp_global_next_deadline / tern_sctp_global_handle_timeout), and an association whose
 * state changes during a global tick (a retransmission, a timeout, a close) calls the on_pending
 * hook of its config so that its owner can put itself on the context's list of objects to drain.
 * Only the loop thread may call any function of this header.
 *
 * Scope: one association per owner, AF_CONN only (no UDP encapsulation, no multi-homing),
 * no message interleaving (RFC 8260, I-DATA), no SCTP-AUTH, no ASCONF, no stream adding
 * (SCTP_ADD_STREAMS): 1024 streams each way, what browsers use.
 */
#ifndef TERN_SCTP_SCTP_H
#define TERN_SCTP_SCTP_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tern_sctp tern_sctp_t;

/** SCTP port when the SDP has none (RFC 8841 §5 default, a=sctp-port). */
#define TERN_SCTP_DEFAULT_PORT 5000
/** Streams negotiated each way (what Chromium and Firefox ask for). */
#define TERN_SCTP_STREAMS 1024
/** Our max-message-size when the config says 0 (what Chromium advertises). */
#define TERN_SCTP_DEFAULT_MAX_MESSAGE_SIZE 262144
/**
 * Largest SCTP packet when the config says 0: 1200 bytes of UDP payload (what browsers use,
 * safe on IPv6's 1280) less the DTLS 1.2 AES-GCM record overhead (13 header + 8 explicit nonce
 * + 16 tag; ChaCha20-Poly1305 needs less).
 */
#define TERN_SCTP_DEFAULT_MTU 1163

/** Association configuration; all zero means defaults. Copied by tern_sctp_new. */
typedef struct tern_sctp_config {
    uint16_t local_port;  /**< our a=sctp-port; 0: 5000 */
    uint16_t remote_port; /**< the remote a=sctp-port; 0: 5000 */
    /**
     * Largest message we accept (our advertised a=max-message-size); 0: 262144. Incoming
     * messages larger than this are dropped whole and counted (stats.messages_too_large).
     */
    size_t max_message_size;
    /** Largest SCTP packet we send, common header included; 0: TERN_SCTP_DEFAULT_MTU. */
    uint16_t mtu;
    /**
     * Packets usrsctp may send at once beyond those in flight (SCTP_MAX_BURST, applied through
     * the congestion window); 0: 32. Tests set usrsctp's own default, 4, to act as a peer that
     * keeps it (Firefox).
     */
    uint16_t max_burst;
    /**
     * Called when the association has something new to drain (packets, events) because of
     * something that was not a call on it: a global timer tick, or a send buffer that drained.
     * It must only note the owner (put it on a to-drain list); it must not call back into
     * this association. May be NULL.
     */
    void (*on_pending)(void *owner);
    void *owner;
} tern_sctp_config_t;

/** Partial reliability policy of one message (RFC 3758, RFC 7496). */
typedef enum {
    TERN_SCTP_PR_NONE = 0, /**< reliable */
    TERN_SCTP_PR_RTX = 1,  /**< pr_value: retransmissions allowed (SCTP_PR_SCTP_RTX) */
    TERN_SCTP_PR_TTL = 2,  /**< pr_value: lifetime in milliseconds (SCTP_PR_SCTP_TTL) */
} tern_sctp_pr_policy_t;

/** Options of one message; NULL or all zero: ordered and reliable. */
typedef struct tern_sctp_send_opts {
    bool unordered;
    tern_sctp_pr_policy_t pr_policy;
    uint32_t pr_value;
} tern_sctp_send_opts_t;

/** Association state, as the owner sees it. */
typedef enum {
    TERN_SCTP_STATE_NEW = 0,    /**< created, tern_sctp_connect not called */
    TERN_SCTP_STATE_CONNECTING, /**< INIT sent (or received) */
    TERN_SCTP_STATE_CONNECTED,  /**< established: messages flow */
    TERN_SCTP_STATE_CLOSING,    /**< tern_sctp_close called, SHUTDOWN in progress */
    TERN_SCTP_STATE_CLOSED,     /**< shut down gracefully, or closed locally */
    TERN_SCTP_STATE_FAILED,     /**< aborted by the peer, lost, or could not start */
} tern_sctp_state_t;

typedef enum {
    TERN_SCTP_EV_NONE = 0,
    TERN_SCTP_EV_CONNECTED,    /**< the association is up (SCTP_COMM_UP) */
    TERN_SCTP_EV_CLOSED,       /**< graceful end: SHUTDOWN completed (either side began it) */
    TERN_SCTP_EV_FAILED,       /**< u.failed: ABORT received, peer unreachable, INIT failed */
    TERN_SCTP_EV_MESSAGE,      /**< u.message: one whole message */
    TERN_SCTP_EV_STREAM_RESET, /**< u.stream_reset: one stream's reset completed */
    TERN_SCTP_EV_SEND_READY,   /**< a send that failed with TERN_ERR_AGAIN may be retried */
} tern_sctp_event_type_t;

/** One event; pointers are borrowed until the next call on the association. */
typedef struct tern_sctp_event {
    tern_sctp_event_type_t type;
    union {
        struct {
            uint16_t stream;
            uint32_t ppid; /**< payload protocol identifier, host order */
            const uint8_t *data;
            size_t len;
            bool unordered; /**< delivered out of order (the U bit was set) */
        } message;
        struct {
            uint16_t stream;
            /**
             * incoming: the peer reset its outgoing side of this stream (it closed the
             * channel, RFC 8831 §6.7); outgoing: our own reset of this stream completed.
             */
            bool incoming;
            bool outgoing;
        } stream_reset;
        struct {
            int code;           /**< a tern_err_t: TERN_ERR_CLOSED (aborted), TERN_ERR_IO */
            const char *reason; /**< static text: "aborted by peer", "peer unreachable", ... */
        } failed;
    } u;
} tern_sctp_event_t;

/** Counters of one association. */
typedef struct tern_sctp_stats {
    uint64_t packets_sent, packets_received, bytes_sent, bytes_received;
    uint64_t packets_dropped; /**< output refused by a full transmit queue */
    uint64_t messages_sent, messages_received;
    uint64_t messages_too_large; /**< incoming messages over max_message_size, dropped */
    /** incoming messages delivered in parts whose sender abandoned them (PR-SCTP), dropped */
    uint64_t messages_abandoned;
} tern_sctp_stats_t;

/**
 * Create an association (no packet is sent until tern_sctp_connect). Initialises usrsctp on
 * first use in the process.
 * @param cfg  may be NULL (defaults); copied.
 * @param out  receives the association, owned by the caller (tern_sctp_free).
 * @return 0; TERN_ERR_INVALID_ARG for an MTU under 576 or a NULL out; TERN_ERR_IO if usrsctp
 *         refuses a socket or an option; TERN_ERR_NOMEM.
 */
int tern_sctp_new(tern_ctx_t *ctx, const tern_sctp_config_t *cfg, tern_time_t now,
                  tern_sctp_t **out);

/**
 * Free an association: aborts it if still up (the ABORT is not sent: the owner is going
 * away). No callback or on_pending is called after this returns. Finishes usrsctp when the
 * last association of the process goes. NULL is a no-op.
 */
void tern_sctp_free(tern_sctp_t *s);

/**
 * Start the association (INIT). Both sides call this once DTLS is up: SCTP's simultaneous
 * open (RFC 4960 §5.2.1) makes it work, which is what browsers do. An SCTP packet fed before
 * this call starts the association too (the peer's INIT may arrive first).
 * @return 0, also when already connecting or connected; TERN_ERR_INVALID_STATE once closing,
 *         closed or failed; TERN_ERR_IO if usrsctp fails.
 */
int tern_sctp_connect(tern_sctp_t *s, tern_time_t now);

/**
 * Feed one SCTP packet (a DTLS application data record). Malformed packets are dropped by
 * usrsctp (checksum, verification tag).
 * @param packet  borrowed for the call.
 * @return 0 (also for a dropped packet); TERN_ERR_INVALID_ARG for NULL with len > 0.
 */
int tern_sctp_handle_input(tern_sctp_t *s, tern_time_t now, const uint8_t *packet, size_t len);

/**
 * Take the next SCTP packet to send through DTLS. The transmit's addresses are zero.
 * @return false when nothing waits. out->data is valid until the next call on s.
 */
bool tern_sctp_poll_transmit(tern_sctp_t *s, tern_transmit_t *out);

/**
 * Take the next event. Reading messages may open the receive window, which queues a packet:
 * keep polling both transmits and events until both return false.
 * @return false when there is none. Pointers in out are valid until the next call on s.
 */
bool tern_sctp_poll_event(tern_sctp_t *s, tern_sctp_event_t *out);

/**
 * Queue one whole message on a stream. The message is taken entirely or not at all: when
 * usrsctp's send buffer takes only its head, the association keeps a copy of the rest and
 * pushes it as room comes (any size works; until then every send returns TERN_ERR_AGAIN).
 * @param data  borrowed; len 0 is refused (SCTP cannot carry an empty message: RFC 8831 §6.6
 *              sends one byte with an "empty" PPID instead; that is the caller's job).
 * @param opts  NULL: ordered, reliable.
 * @return 0; TERN_ERR_AGAIN when usrsctp's send buffer has no room for it now (the caller keeps
 *         the message and retries after TERN_SCTP_EV_SEND_READY); TERN_ERR_INVALID_STATE
 *         unless connected; TERN_ERR_INVALID_ARG for len 0, a stream >= TERN_SCTP_STREAMS or
 *         a bad policy; TERN_ERR_CLOSED if the stream is being reset; TERN_ERR_IO if usrsctp
 *         fails otherwise.
 */
int tern_sctp_send(tern_sctp_t *s, tern_time_t now, uint16_t stream, uint32_t ppid,
                   const uint8_t *data, size_t len, const tern_sctp_send_opts_t *opts);

/**
 * Reset the outgoing side of a stream (RFC 6525 §5.1.2, Outgoing SSN Reset Request): the peer
 * sees TERN_SCTP_EV_STREAM_RESET incoming, and we see one with outgoing once it is done.
 * Messages already queued on the stream are sent first. The request waits (a second at most)
 * until none of our data is unacknowledged, is retried while the peer answers "in progress",
 * and requests made meanwhile are batched.
 * @return 0; TERN_ERR_INVALID_STATE unless connected; TERN_ERR_INVALID_ARG for a bad stream.
 */
int tern_sctp_reset_stream(tern_sctp_t *s, tern_time_t now, uint16_t stream);

/**
 * Shut the association down gracefully (SHUTDOWN, RFC 4960 §9.2) after what is queued is
 * delivered; TERN_SCTP_EV_CLOSED follows. @return 0 (also when already closing or closed).
 */
int tern_sctp_close(tern_sctp_t *s, tern_time_t now);

/**
 * End the association at once with an ABORT (RFC 4960 §9.1), queued for sending now: what a
 * peer connection's close does, so the peer learns of it in one datagram. The state becomes
 * CLOSED without an event. @return 0 (also when not connected).
 */
int tern_sctp_abort(tern_sctp_t *s, tern_time_t now);

/** @return the association's state. */
tern_sctp_state_t tern_sctp_state(const tern_sctp_t *s);

/** @return the streams the peer accepts for our outgoing data (0 before connected). */
uint16_t tern_sctp_outgoing_streams(const tern_sctp_t *s);

/** Copy the association's counters. */
void tern_sctp_get_stats(const tern_sctp_t *s, tern_sctp_stats_t *out);

/* ---- usrsctp's process-wide timers, driven through the context ---- */

/**
 * When tern_sctp_global_handle_timeout must next be called while this context has an
 * association (TERN_TIME_NEVER otherwise): 10 ms after the last tick while some association of
 * the process may have a short timer running (DATA unacknowledged either way, a handshake or a
 * shutdown in progress, a stream reset pending), 250 ms after it otherwise. usrsctp's other
 * timers (heartbeats, its secret key) are long and lose nothing by firing up to 250 ms late,
 * and an idle process ticks 4 times a second instead of 100.
 */
tern_time_t tern_sctp_global_next_deadline(const tern_ctx_t *ctx);

/**
 * Tick usrsctp's timers by the time elapsed since the process's last tick (one clock for the
 * process, so that two contexts never tick twice for the same time; time going backwards
 * restarts it). Associations that have something new call their on_pending hook.
 * @return 0.
 */
int tern_sctp_global_handle_timeout(tern_ctx_t *ctx, tern_time_t now);

/* ---- checksum (sctp_crc32c.c) ---- */

/**
 * CRC32c of a packet (RFC 4960 Appendix B), with the SSE4.2 instruction where the CPU has it.
 * The packet's checksum field holds it least significant byte first.
 */
uint32_t tern_sctp_crc32c(const uint8_t *data, size_t len);

/** The same, always in software (usrsctp's tables): the fallback, exposed for tests. */
uint32_t tern_sctp_crc32c_software(const uint8_t *data, size_t len);

/* ---- packet reading for the wrapper's own use (sctp_wire.c); exposed for tests ---- */

/**
 * Find an Outgoing SSN Reset Request (RFC 6525 §4.1) in a packet's RE-CONFIG chunks.
 * @return true with the chunk's offset and length and the request's Sender's Last Assigned
 *         TSN; false if there is none or the packet is malformed before it.
 */
bool tern_sctp_wire_find_reset_request(const uint8_t *pkt, size_t len, size_t *chunk_off,
                                       size_t *chunk_len, uint32_t *last_tsn);

/** @return true with the Cumulative TSN Ack of the packet's last SACK chunk; false if none. */
bool tern_sctp_wire_sack_cum(const uint8_t *pkt, size_t len, uint32_t *cum);

/** @return whether the packet holds a DATA chunk (RFC 4960 §3.3.1). */
bool tern_sctp_wire_has_data(const uint8_t *pkt, size_t len);

/** @return true with the TSN of the packet's last DATA chunk (RFC 4960 §3.3.1); false if none. */
bool tern_sctp_wire_last_data_tsn(const uint8_t *pkt, size_t len, uint32_t *tsn);

/**
 * Copy a packet without one of its chunks (offset and length as found above) into out, which
 * has room for len bytes. @return the new length.
 */
size_t tern_sctp_wire_without_chunk(const uint8_t *pkt, size_t len, size_t chunk_off,
                                    size_t chunk_len, uint8_t *out);

/** Describe a packet's chunks for a trace line (" DATA(tsn=… sid=… len=…) SACK(cum=…)"),
 *  truncated to size bytes (always terminated). */
void tern_sctp_wire_describe(const uint8_t *pkt, size_t len, char *out, size_t size);

#endif
