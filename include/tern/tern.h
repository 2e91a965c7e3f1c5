/* SPDX-License-Identifier: MIT */
/*
 * tern: WebRTC data channels in C.
 *
 * This one header is the common case: a context, a peer connection (W3C RTCPeerConnection), its
 * data channels (W3C RTCDataChannel) and an event loop that drives them. The peer connection is
 * sans-IO: it never touches a socket or a clock, so it can be driven by any event loop through
 * tern_pc_handle_input / _handle_timeout / _poll_transmit / _poll_event / _next_deadline. The
 * tern_loop at the end of this header is the driver for the common case.
 *
 * Threads: objects are not thread-safe. One thread drives a loop and every callback runs on it;
 * tern_loop_post is the only call allowed from another thread.
 */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TERN_STATIC_DEFINE)
#define TERN_EXPORT
#elif defined(__GNUC__)
#define TERN_EXPORT __attribute__((visibility("default")))
#else
#define TERN_EXPORT
#endif

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/** Return values: 0 is success, every failure is one of these negative values. */
typedef enum {
    TERN_OK = 0,
    TERN_ERR_INVALID_ARG = -1,
    TERN_ERR_INVALID_STATE = -2,
    TERN_ERR_NOMEM = -3,
    TERN_ERR_PARSE = -4,
    TERN_ERR_TRUNCATED = -5,
    TERN_ERR_TOO_LARGE = -6,
    TERN_ERR_AGAIN = -7,
    TERN_ERR_NOT_FOUND = -8,
    TERN_ERR_CLOSED = -9,
    TERN_ERR_UNSUPPORTED = -10,
    TERN_ERR_CRYPTO = -11,
    TERN_ERR_IO = -12,
    TERN_ERR_INTERNAL = -13,
} tern_err_t;

/**
 * Describe an error code in a few words ("invalid state").
 * @return a static string; "unknown error" for a value that is not a tern_err_t.
 */
TERN_EXPORT const char *tern_strerror(int err);

/**
 * Name an error code as it is spelled in this header ("TERN_ERR_INVALID_STATE").
 * @return a static string; "TERN_ERR_UNKNOWN" for a value that is not a tern_err_t.
 */
TERN_EXPORT const char *tern_err_name(int err);

/* ------------------------------------------------------------------------------------------ */
/* Time, addresses, datagrams                                                                 */
/* ------------------------------------------------------------------------------------------ */

/** Monotonic time in microseconds, chosen by the caller; it never goes backwards. */
typedef int64_t tern_time_t;
#define TERN_TIME_NEVER INT64_MAX

/** Address families of tern_addr_t. */
typedef enum {
    TERN_AF_UNSPEC = 0,
    TERN_AF_INET = 4,
    TERN_AF_INET6 = 6,
} tern_af_t;

/** An IP address and port, independent of the socket API. */
typedef struct tern_addr {
    uint8_t family;    /**< tern_af_t; TERN_AF_UNSPEC means "no address" */
    uint8_t pad_;      /**< zero */
    uint16_t port;     /**< host byte order */
    uint32_t scope_id; /**< IPv6 link-local scope (interface index); 0 otherwise */
    uint8_t ip[16];    /**< network byte order; IPv4 uses the first 4 bytes, the rest are zero */
} tern_addr_t;

/** Longest text tern_addr_format writes, with its NUL: "[ipv6%scope]:port". */
#define TERN_ADDR_STRLEN 64

/**
 * Parse "1.2.3.4:5", "[::1]:5", "1.2.3.4" or "::1" (port 0 when absent).
 * @return 0; TERN_ERR_PARSE if the text is not an address.
 */
TERN_EXPORT int tern_addr_parse(const char *text, tern_addr_t *out);

/**
 * Write an address as "1.2.3.4:5" or "[::1]:5" into buf (at least TERN_ADDR_STRLEN bytes).
 * @return buf.
 */
TERN_EXPORT char *tern_addr_format(const tern_addr_t *addr, char *buf, size_t cap);

/** @return true if both addresses have the same family, IP, port and scope. */
TERN_EXPORT bool tern_addr_equal(const tern_addr_t *a, const tern_addr_t *b);

/** Transport protocol of a datagram or a candidate. */
typedef enum {
    TERN_TRANSPORT_UDP = 0,
    TERN_TRANSPORT_TCP = 1,
} tern_transport_t;

/** A datagram received on a local socket, handed to a sans-IO object. Borrowed for the call. */
typedef struct tern_datagram {
    tern_addr_t local;  /**< the local socket's address (where it arrived) */
    tern_addr_t remote; /**< the sender */
    const uint8_t *data;
    size_t len;
} tern_datagram_t;

/** A datagram a sans-IO object wants sent: from the socket bound to `local`, to `remote`. */
typedef struct tern_transmit {
    tern_addr_t local;
    tern_addr_t remote;
    const uint8_t *data; /**< valid until the next call on the object that produced it */
    size_t len;
} tern_transmit_t;

/** Bytes every internally built transmit keeps free in front of its data (TURN framing). */
#define TERN_TX_HEADROOM 36

/* ------------------------------------------------------------------------------------------ */
/* Logging, memory, context                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef enum {
    TERN_LOG_NONE = 0,
    TERN_LOG_ERROR = 1,
    TERN_LOG_WARN = 2,
    TERN_LOG_INFO = 3,
    TERN_LOG_DEBUG = 4,
    TERN_LOG_TRACE = 5,
} tern_log_level_t;

/** A log sink: one call per line, `msg` has no trailing newline. */
typedef void (*tern_log_fn)(void *user, tern_log_level_t level, const char *module,
                            const char *msg);

/**
 * The default log sink: writes "tern LEVEL module: msg" to stderr, filtered by the TERN_LOG
 * environment variable ("info", "ice=trace,dtls=debug", "warn,sctp=debug"). Default level: warn.
 * Part of the io library (the sans-IO core never reads the environment).
 */
TERN_EXPORT void tern_log_stderr(void *user, tern_log_level_t level, const char *module,
                                 const char *msg);

/**
 * The most verbose level the default logger's filter lets through (TERN_LOG read on first use).
 * tern_loop_new gives it to a context whose sink it installs, so that disabled lines are never
 * formatted: set the filter before tern_loop_new.
 */
TERN_EXPORT tern_log_level_t tern_log_stderr_max_level(void);

/**
 * Set the default logger's filter from a TERN_LOG-style string (as read from the environment
 * on first use); NULL restores the environment's value.
 */
TERN_EXPORT void tern_log_stderr_set_filter(const char *filter);

/** An allocator: every allocation of the stack goes through it (nghttp2_mem style). */
typedef struct tern_mem {
    void *user;
    void *(*malloc)(size_t size, void *user);
    void *(*calloc)(size_t n, size_t size, void *user);
    void *(*realloc)(void *ptr, size_t size, void *user);
    void (*free)(void *ptr, void *user);
} tern_mem_t;

typedef struct tern_ctx tern_ctx_t;
typedef struct tern_pc tern_pc_t;
typedef struct tern_dc tern_dc_t;

/** Context configuration. All zero means defaults. */
typedef struct tern_ctx_config {
    /** Log sink; NULL: silent (tern_loop_new installs tern_log_stderr on a silent context). */
    tern_log_fn log;
    void *log_user;
    /** Most verbose level passed to the sink; 0: TERN_LOG_TRACE (the sink filters). */
    tern_log_level_t log_level;
    /** Replace IP addresses in log lines by "<redacted>". */
    bool redact_addresses;
    /** Allocator; NULL: the C library's. Copied. */
    const tern_mem_t *mem;
    /**
     * Random source; NULL: OpenSSL's RAND_bytes. Tests pass a seeded generator here.
     * Must fill `len` bytes; return 0, or a negative value on failure.
     */
    int (*random_bytes)(void *user, uint8_t *buf, size_t len);
    void *random_user;
    /**
     * DTLS certificate and private key in PEM; both NULL: an ECDSA P-256 self-signed
     * certificate is made once for the context and shared by its peer connections. Copied.
     */
    const char *certificate_pem;
    const char *private_key_pem;
} tern_ctx_config_t;

/**
 * Create a context: allocator, random source, log, DTLS certificate, shared by peer connections.
 * @param cfg  may be NULL (defaults); copied.
 * @return 0; TERN_ERR_CRYPTO if the certificate cannot be made or loaded; TERN_ERR_NOMEM.
 */
TERN_EXPORT int tern_ctx_new(const tern_ctx_config_t *cfg, tern_ctx_t **out);

/** Free a context. Every peer connection of it must be freed first. NULL is a no-op. */
TERN_EXPORT void tern_ctx_free(tern_ctx_t *ctx);

/**
 * The SHA-256 fingerprint of the context's certificate, "AB:CD:...", as in a=fingerprint.
 * @return a string owned by the context.
 */
TERN_EXPORT const char *tern_ctx_fingerprint(const tern_ctx_t *ctx);

/**
 * When tern_ctx_handle_timeout must next be called; TERN_TIME_NEVER if no timer runs.
 * The context owns the timers that are global to the process (SCTP's, usrsctp being one stack
 * per process), so that their cost does not grow with the number of peer connections. A driver
 * of peer connections drives its context too; tern_loop does this.
 */
TERN_EXPORT tern_time_t tern_ctx_next_deadline(const tern_ctx_t *ctx);

/** Run the context's timers whose deadline has passed. @return 0. */
TERN_EXPORT int tern_ctx_handle_timeout(tern_ctx_t *ctx, tern_time_t now);

/**
 * Take the next peer connection of this context that has something to drain (datagrams,
 * events or a new deadline) since its last drain, caused by a call on another object (the
 * context's timers, or a command). Each pc is returned once until it is drained again.
 * @return the pc, or NULL when none waits.
 */
TERN_EXPORT tern_pc_t *tern_ctx_poll_pending_pc(tern_ctx_t *ctx);

/**
 * Free memory the library handed to the caller (SDP strings and the like). NULL is a no-op.
 */
TERN_EXPORT void tern_free(tern_ctx_t *ctx, void *ptr);

/* ------------------------------------------------------------------------------------------ */
/* States (W3C values, one for one)                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef enum {
    TERN_PC_STATE_NEW,
    TERN_PC_STATE_CONNECTING,
    TERN_PC_STATE_CONNECTED,
    TERN_PC_STATE_DISCONNECTED,
    TERN_PC_STATE_FAILED,
    TERN_PC_STATE_CLOSED,
} tern_pc_state_t;

typedef enum {
    TERN_ICE_STATE_NEW,
    TERN_ICE_STATE_CHECKING,
    TERN_ICE_STATE_CONNECTED,
    TERN_ICE_STATE_COMPLETED,
    TERN_ICE_STATE_DISCONNECTED,
    TERN_ICE_STATE_FAILED,
    TERN_ICE_STATE_CLOSED,
} tern_ice_state_t;

typedef enum {
    TERN_ICE_GATHERING_NEW,
    TERN_ICE_GATHERING_GATHERING,
    TERN_ICE_GATHERING_COMPLETE,
} tern_ice_gathering_state_t;

typedef enum {
    TERN_SIGNALING_STABLE,
    TERN_SIGNALING_HAVE_LOCAL_OFFER,
    TERN_SIGNALING_HAVE_REMOTE_OFFER,
    TERN_SIGNALING_HAVE_LOCAL_PRANSWER,
    TERN_SIGNALING_HAVE_REMOTE_PRANSWER,
    TERN_SIGNALING_CLOSED,
} tern_signaling_state_t;

typedef enum {
    TERN_DC_STATE_CONNECTING,
    TERN_DC_STATE_OPEN,
    TERN_DC_STATE_CLOSING,
    TERN_DC_STATE_CLOSED,
} tern_dc_state_t;

typedef enum {
    TERN_SDP_OFFER,
    TERN_SDP_ANSWER,
    TERN_SDP_PRANSWER,
    TERN_SDP_ROLLBACK,
} tern_sdp_type_t;

/** @return the W3C spelling of a state ("connected", "have-local-offer", ...). */
TERN_EXPORT const char *tern_pc_state_name(tern_pc_state_t s);
TERN_EXPORT const char *tern_ice_state_name(tern_ice_state_t s);
TERN_EXPORT const char *tern_ice_gathering_state_name(tern_ice_gathering_state_t s);
TERN_EXPORT const char *tern_signaling_state_name(tern_signaling_state_t s);
TERN_EXPORT const char *tern_dc_state_name(tern_dc_state_t s);
/** @return "offer", "answer", "pranswer", "rollback". */
TERN_EXPORT const char *tern_sdp_type_name(tern_sdp_type_t t);
/** Parse "offer"/"answer"/"pranswer"/"rollback". @return 0; TERN_ERR_PARSE. */
TERN_EXPORT int tern_sdp_type_parse(const char *name, tern_sdp_type_t *out);

/* ------------------------------------------------------------------------------------------ */
/* Peer connection                                                                            */
/* ------------------------------------------------------------------------------------------ */

/**
 * An ICE server as the W3C RTCIceServer has it, with one URL (RFC 7064, RFC 7065):
 * "stun:host[:port]", "turn:host[:port][?transport=udp|tcp]", "turns:host[:port]"; a host is a
 * name, an IPv4 address or a bracketed IPv6 literal; ports default to 3478 (5349 for turns:).
 * A "turn:" URL without a transport tries UDP, and TCP too if UDP has not answered within
 * 300 ms. "stuns:" is accepted and ignored. Names are resolved by the driver
 * (tern_pc_set_ice_server_addr).
 */
typedef struct tern_ice_server {
    const char *url;
    const char *username;   /**< required for turn: and turns: */
    const char *credential; /**< the long-term password; required for turn: and turns: */
} tern_ice_server_t;

/** Peer connection configuration. All zero means defaults. Copied by tern_pc_new. */
typedef struct tern_pc_config {
    const tern_ice_server_t *ice_servers;
    size_t ice_server_count;
    /** Gather candidates on loopback interfaces too (off by default, as browsers do). */
    bool include_loopback;
    /** Do not gather IPv6 host candidates. */
    bool disable_ipv6;
    /**
     * Bind only to these local IP addresses ("127.0.0.1", "::1"), instead of every usable
     * interface; NULL: every interface (loopback as include_loopback says). Copied.
     */
    const char *const *bind_addresses;
    size_t bind_address_count;
    /** Our a=max-message-size; 0: 262144 (what Chromium advertises). */
    size_t max_message_size;
    /** Our SCTP port in the SDP; 0: 5000. */
    uint16_t sctp_port;
    /** Most data channels open at once; 0: 1024. */
    uint16_t max_channels;
    /** Bytes all channels of the pc may buffer in total before send fails; 0: 16 MiB. */
    size_t max_buffered_bytes;
    /** Most remote candidates kept; 0: 100. */
    uint16_t max_remote_candidates;
    /** The ICE connection goes disconnected after this long without consent; 0: 5 s. */
    uint32_t ice_disconnected_timeout_ms;
    /** ...and failed after this long without consent (RFC 7675); 0: 30 s. */
    uint32_t ice_failed_timeout_ms;
    /** Ta, the pacing of connectivity checks (RFC 8445 §14.2); 0: 20 ms. */
    uint32_t ice_pacing_ms;
    /**
     * W3C iceTransportPolicy "relay": gather and use relay (TURN) candidates only, so that no
     * local address is ever revealed to the peer or used directly.
     */
    bool ice_transport_policy_relay;
    /**
     * For drivers: a PEM file of the certificates trusted for "turns:" servers (a private CA,
     * or a test's self-signed certificate); NULL: the system's. Copied.
     */
    const char *turn_tls_ca_file;
} tern_pc_config_t;

/**
 * Create a peer connection (W3C new RTCPeerConnection).
 * @param cfg  may be NULL; copied, with everything it points to.
 * @return 0; TERN_ERR_INVALID_ARG for a bad ICE server URL (tern_pc_last_error says which) or a
 *         turn: or turns: server without username or credential (W3C InvalidAccessError);
 *         TERN_ERR_NOMEM.
 */
TERN_EXPORT int tern_pc_new(tern_ctx_t *ctx, const tern_pc_config_t *cfg, tern_time_t now,
                            tern_pc_t **out);

/** Free a peer connection and all its data channels. NULL is a no-op. */
TERN_EXPORT void tern_pc_free(tern_pc_t *pc);

/**
 * The pc's configuration as given to tern_pc_new (ICE server strings copied), for drivers that
 * bind sockets (include_loopback, disable_ipv6). Owned by the pc.
 */
TERN_EXPORT const tern_pc_config_t *tern_pc_config(const tern_pc_t *pc);

/**
 * Create an offer (W3C createOffer).
 * @param sdp_out  receives a NUL-terminated SDP owned by the caller, freed with tern_free.
 * @return 0; TERN_ERR_INVALID_STATE if closed or in have-remote-offer; TERN_ERR_NOMEM.
 */
TERN_EXPORT int tern_pc_create_offer(tern_pc_t *pc, tern_time_t now, char **sdp_out);

/**
 * Create an answer to the remote offer (W3C createAnswer).
 * @return 0; TERN_ERR_INVALID_STATE unless in have-remote-offer; TERN_ERR_NOMEM.
 */
TERN_EXPORT int tern_pc_create_answer(tern_pc_t *pc, tern_time_t now, char **sdp_out);

/**
 * Apply a local description (W3C setLocalDescription).
 * @param sdp  NUL-terminated SDP from create_offer/create_answer, copied; NULL: the implicit
 *             form (creates the offer or answer the signaling state calls for).
 * @return 0; TERN_ERR_INVALID_STATE if the type is not allowed in this signaling state;
 *         TERN_ERR_PARSE if malformed; TERN_ERR_NOMEM. On error the pc is unchanged.
 */
TERN_EXPORT int tern_pc_set_local_description(tern_pc_t *pc, tern_time_t now,
                                              tern_sdp_type_t type, const char *sdp);

/**
 * Apply the remote offer or answer (W3C setRemoteDescription).
 * @param sdp  NUL-terminated SDP; copied.
 * @return 0; TERN_ERR_INVALID_STATE if not allowed in this signaling state; TERN_ERR_PARSE if
 *         malformed (tern_pc_last_error names the line); TERN_ERR_UNSUPPORTED if it has no
 *         data-channel section we can use; TERN_ERR_NOMEM. On error the pc is unchanged.
 */
TERN_EXPORT int tern_pc_set_remote_description(tern_pc_t *pc, tern_time_t now,
                                               tern_sdp_type_t type, const char *sdp);

/**
 * The current local or remote description, NULL if none. Owned by the pc, valid until the next
 * call that changes it.
 */
TERN_EXPORT const char *tern_pc_local_description(const tern_pc_t *pc);
TERN_EXPORT const char *tern_pc_remote_description(const tern_pc_t *pc);

/**
 * Add a remote candidate (W3C addIceCandidate), before or after the remote description.
 * @param candidate  "candidate:..." (an "a=" prefix is accepted); "" or NULL: end of candidates.
 * @param mid        the sdpMid it belongs to; NULL: the data section.
 * @return 0, also for a well-formed candidate the stack ignores (TCP, unresolvable mDNS name);
 *         TERN_ERR_PARSE if malformed; TERN_ERR_NOT_FOUND if mid names no section;
 *         TERN_ERR_INVALID_STATE if closed; TERN_ERR_TOO_LARGE past max_remote_candidates.
 */
TERN_EXPORT int tern_pc_add_ice_candidate(tern_pc_t *pc, tern_time_t now, const char *candidate,
                                          const char *mid);

/**
 * Hand the pc a local UDP socket's address (gathering is split: the loop binds sockets and
 * tells the pc; the pc makes host candidates, and server-reflexive and relay ones through it).
 * @return 0; TERN_ERR_INVALID_STATE if closed; TERN_ERR_TOO_LARGE past the candidate limit.
 */
TERN_EXPORT int tern_pc_add_local_socket(tern_pc_t *pc, tern_time_t now, const tern_addr_t *addr);

/**
 * Tell the pc that every local socket has been handed in (host gathering is complete).
 * @return 0; TERN_ERR_INVALID_STATE if closed.
 */
TERN_EXPORT int tern_pc_local_sockets_done(tern_pc_t *pc, tern_time_t now);

/**
 * For drivers: the host name of ICE server `index` (in the order of tern_pc_config_t's
 * ice_servers) that must be resolved, and the port to resolve it with. Servers given as IP
 * addresses, and "stuns:" ones, need nothing.
 * @param host  receives a string owned by the pc.
 * @return true if the driver must resolve it and call tern_pc_set_ice_server_addr; false
 *         otherwise (also for an index out of range or a server already resolved).
 */
TERN_EXPORT bool tern_pc_ice_server_to_resolve(const tern_pc_t *pc, size_t index, const char **host,
                                               uint16_t *port);

/**
 * Hand in the addresses a driver resolved for ICE server `index` (tern_loop does this from a
 * resolver thread). The pc uses the first IPv4 and the first IPv6 address, with the URL's port,
 * for STUN or TURN; gathering completes only once every named server was handed in, so call it
 * with count 0 when the name does not resolve.
 * @param addrs  borrowed for the call.
 * @return 0; TERN_ERR_INVALID_ARG for an index out of range or NULL addrs with count > 0;
 *         TERN_ERR_INVALID_STATE if that server needs no resolution or was handed in already.
 */
TERN_EXPORT int tern_pc_set_ice_server_addr(tern_pc_t *pc, tern_time_t now, size_t index,
                                            const tern_addr_t *addrs, size_t count);

/**
 * A TCP connection the pc asks its driver to open or close: TURN over TCP or TLS (RFC 8656
 * §3.1, "turns:"). The pc exchanges bytes over it with tern_pc_poll_stream_transmit and
 * tern_pc_handle_stream_input; the driver reports how it goes with tern_pc_handle_stream_event.
 * tern_loop does all this by itself.
 */
typedef struct tern_stream_request {
    uint32_t id;             /**< the pc's name for the connection; never 0 */
    bool close;              /**< true: close connection `id` (after writing what it was given) */
    tern_addr_t remote;      /**< open: where to connect */
    bool tls;                /**< open: TLS on the connection (the server's certificate checked) */
    const char *server_name; /**< open, TLS: SNI and the name to check; NULL: none. Borrowed */
} tern_stream_request_t;

/**
 * Take the next connection request. Part of the drain rule: poll after tern_pc_poll_transmit.
 * @return false when there is none.
 */
TERN_EXPORT bool tern_pc_poll_stream_request(tern_pc_t *pc, tern_stream_request_t *out);

/**
 * Take every byte waiting to be written on one connection, in order after those taken before.
 * Poll after tern_pc_poll_transmit (which moves data into the streams) until false.
 * @param data  receives a pointer valid until the next call on the pc: copy the bytes.
 * @return false when no connection has bytes waiting.
 */
TERN_EXPORT bool tern_pc_poll_stream_transmit(tern_pc_t *pc, uint32_t *id, const uint8_t **data,
                                              size_t *len);

/**
 * Tell the pc a connection came up (connected true, with TLS: after the handshake; local may be
 * NULL) or is gone (connected false: it failed, was reset or closed; do not close it again).
 * @return 0; TERN_ERR_NOT_FOUND for an id the pc does not know (any more).
 */
TERN_EXPORT int tern_pc_handle_stream_event(tern_pc_t *pc, tern_time_t now, uint32_t id,
                                            bool connected, const tern_addr_t *local);

/**
 * Feed bytes read from a connection (any amount, up to 64 KiB a call). Malformed framing
 * makes the pc close the connection (a close request follows).
 * @return 0; TERN_ERR_NOT_FOUND for an unknown id; TERN_ERR_INVALID_ARG for NULL data.
 */
TERN_EXPORT int tern_pc_handle_stream_input(tern_pc_t *pc, tern_time_t now, uint32_t id,
                                            const uint8_t *data, size_t len);

/** Start an ICE restart (W3C restartIce): the next offer carries new credentials. @return 0. */
TERN_EXPORT int tern_pc_restart_ice(tern_pc_t *pc, tern_time_t now);

/**
 * Close the connection (W3C close): channels close, DTLS sends close_notify, ICE stops.
 * The caller keeps draining until nothing is left to send. @return 0 (also when closed).
 */
TERN_EXPORT int tern_pc_close(tern_pc_t *pc, tern_time_t now);

TERN_EXPORT tern_pc_state_t tern_pc_connection_state(const tern_pc_t *pc);
TERN_EXPORT tern_ice_state_t tern_pc_ice_connection_state(const tern_pc_t *pc);
TERN_EXPORT tern_ice_gathering_state_t tern_pc_ice_gathering_state(const tern_pc_t *pc);
TERN_EXPORT tern_signaling_state_t tern_pc_signaling_state(const tern_pc_t *pc);

/** The human-readable reason of the pc's last failure (a refused SDP line, a DTLS alert). */
TERN_EXPORT const char *tern_pc_last_error(const tern_pc_t *pc);

/** The selected candidate pair, for display. */
typedef struct tern_pc_pair_info {
    tern_addr_t local;
    tern_addr_t remote;
    const char *local_type;  /**< "host", "srflx", "prflx", "relay" */
    const char *remote_type; /**< same */
    uint32_t rtt_us;         /**< last measured round-trip time; 0 if unknown */
} tern_pc_pair_info_t;

/** @return 0; TERN_ERR_NOT_FOUND if no pair is selected. */
TERN_EXPORT int tern_pc_selected_pair(const tern_pc_t *pc, tern_pc_pair_info_t *out);

/** Counters of one peer connection. */
typedef struct tern_pc_stats {
    uint64_t datagrams_sent, datagrams_received, bytes_sent, bytes_received;
    uint64_t datagrams_dropped; /**< malformed, unauthenticated or unexpected input */
    uint64_t messages_sent, messages_received;
} tern_pc_stats_t;

TERN_EXPORT void tern_pc_get_stats(const tern_pc_t *pc, tern_pc_stats_t *out);

/** Attach caller data to a pc. */
TERN_EXPORT void tern_pc_set_user_data(tern_pc_t *pc, void *user);
TERN_EXPORT void *tern_pc_user_data(const tern_pc_t *pc);

/* ---- the sans-IO surface ----
 *
 * The drain rule: after any handle_* call or command on a pc (and after calling back into the
 * application, which may issue commands), call tern_pc_poll_transmit and tern_pc_poll_event
 * until BOTH return false in the same round (polling events can make datagrams to send, such as
 * an SCTP window update, and the other way round); only then read tern_pc_next_deadline.
 */

/**
 * Feed a datagram received on one of the pc's local sockets. Malformed or unexpected input is
 * dropped and counted; it never fails the call.
 * @return 0; TERN_ERR_INVALID_ARG for a NULL datagram.
 */
TERN_EXPORT int tern_pc_handle_input(tern_pc_t *pc, tern_time_t now, const tern_datagram_t *in);

/** Run timers whose deadline has passed (calling early does nothing). @return 0. */
TERN_EXPORT int tern_pc_handle_timeout(tern_pc_t *pc, tern_time_t now);

/**
 * Take the next datagram to send. A transmit to 224.0.0.251:5353 is an mDNS query for a peer's
 * ".local" candidate (RFC 6762): browsers answer only by multicast, so a driver keeps a UDP
 * socket bound to 224.0.0.251:5353 (SO_REUSEADDR, SO_REUSEPORT) joined to that group on the
 * interface of the transmit's `local` address, and hands what it receives to
 * tern_pc_handle_input with `local` set to 224.0.0.251:5353. tern_loop does this by itself.
 * @return false when there is nothing to send.
 */
TERN_EXPORT bool tern_pc_poll_transmit(tern_pc_t *pc, tern_transmit_t *out);

/** Event types (W3C event handlers, one for one). */
typedef enum {
    TERN_EV_NONE = 0,
    TERN_EV_ICE_CANDIDATE,        /**< u.ice_candidate; candidate "" means end of candidates */
    TERN_EV_ICE_GATHERING_STATE,  /**< u.ice_gathering_state */
    TERN_EV_ICE_CONNECTION_STATE, /**< u.ice_state */
    TERN_EV_CONNECTION_STATE,     /**< u.pc_state */
    TERN_EV_SIGNALING_STATE,      /**< u.signaling_state */
    TERN_EV_NEGOTIATION_NEEDED,
    TERN_EV_DATA_CHANNEL, /**< dc: a channel the remote opened (already open) */
    TERN_EV_DC_OPEN,      /**< dc */
    TERN_EV_DC_MESSAGE,   /**< dc, u.message */
    TERN_EV_DC_BUFFERED_AMOUNT_LOW, /**< dc */
    TERN_EV_DC_CLOSING,             /**< dc */
    TERN_EV_DC_CLOSE, /**< dc; the handle stays valid until the next poll call */
    TERN_EV_DC_ERROR, /**< dc, u.error */
} tern_event_type_t;

/** One event. Pointers inside are borrowed: valid until the next call on the pc. */
typedef struct tern_event {
    tern_event_type_t type;
    tern_dc_t *dc; /**< the channel, for TERN_EV_DATA_CHANNEL and TERN_EV_DC_* */
    union {
        struct {
            const char *candidate; /**< "candidate:..." without "a="; "" ends the candidates */
            const char *mid;
            int mline_index;
        } ice_candidate;
        tern_ice_gathering_state_t ice_gathering_state;
        tern_ice_state_t ice_state;
        tern_pc_state_t pc_state;
        tern_signaling_state_t signaling_state;
        struct {
            const uint8_t *data;
            size_t len;
            bool is_text;
        } message;
        struct {
            int code;           /**< a tern_err_t */
            const char *reason; /**< human-readable */
        } error;
    } u;
} tern_event_t;

/** Take the next event. @return false when there is none. */
TERN_EXPORT bool tern_pc_poll_event(tern_pc_t *pc, tern_event_t *out);

/** When tern_pc_handle_timeout must next be called; TERN_TIME_NEVER if no timer runs. */
TERN_EXPORT tern_time_t tern_pc_next_deadline(const tern_pc_t *pc);

/** Which part set the current deadline ("ice", "dtls", "sctp", ...), for debugging. */
TERN_EXPORT const char *tern_pc_timeout_reason(const tern_pc_t *pc);

/**
 * Whether a datagram belongs to this pc, to find the pc of a datagram on a shared socket:
 * a STUN request whose USERNAME starts with our ufrag, or anything from a known remote address.
 */
TERN_EXPORT bool tern_pc_accepts(const tern_pc_t *pc, const tern_datagram_t *in);

/* ------------------------------------------------------------------------------------------ */
/* Data channel                                                                               */
/* ------------------------------------------------------------------------------------------ */

/** Reliability of a channel. */
typedef enum {
    TERN_DC_RELIABLE = 0,
    TERN_DC_MAX_RETRANSMITS = 1, /**< value: retransmissions allowed (0 is valid) */
    TERN_DC_MAX_LIFETIME = 2,    /**< value: milliseconds a message may be retried */
} tern_dc_reliability_t;

/** W3C RTCDataChannelInit; all zero means a reliable, ordered, in-band negotiated channel. */
typedef struct tern_dc_init {
    bool unordered;
    tern_dc_reliability_t reliability;
    uint32_t reliability_value;
    const char *protocol; /**< NULL: "" */
    /** Negotiated out of band: no DCEP, both sides create it with the same `id`. */
    bool negotiated;
    uint16_t id; /**< only with negotiated (0..65534) */
} tern_dc_init_t;

/**
 * Create a data channel (W3C createDataChannel). It opens once the connection is up.
 * @param label  NUL-terminated, copied; at most 65535 bytes.
 * @param init   may be NULL.
 * @param out    receives the channel, owned by the pc.
 * @return 0; TERN_ERR_INVALID_ARG (bad label, negotiated id out of range or in use);
 *         TERN_ERR_TOO_LARGE past max_channels; TERN_ERR_INVALID_STATE if closed; NOMEM.
 */
TERN_EXPORT int tern_pc_create_data_channel(tern_pc_t *pc, tern_time_t now, const char *label,
                                            const tern_dc_init_t *init, tern_dc_t **out);

/**
 * Send a binary message (W3C send(ArrayBuffer)); 0 bytes is allowed.
 * @return 0; TERN_ERR_INVALID_STATE unless open; TERN_ERR_TOO_LARGE if larger than the
 *         remote's max-message-size or it would pass the pc's buffer limit; NOMEM.
 */
TERN_EXPORT int tern_dc_send(tern_dc_t *dc, tern_time_t now, const void *data, size_t len);

/** Send a text message (W3C send(string)); the text is UTF-8. Returns as tern_dc_send. */
TERN_EXPORT int tern_dc_send_text(tern_dc_t *dc, tern_time_t now, const char *text, size_t len);

/** Close the channel (W3C close): the stream is reset. @return 0 (also when closing/closed). */
TERN_EXPORT int tern_dc_close(tern_dc_t *dc, tern_time_t now);

TERN_EXPORT tern_dc_state_t tern_dc_state(const tern_dc_t *dc);
TERN_EXPORT const char *tern_dc_label(const tern_dc_t *dc);
TERN_EXPORT const char *tern_dc_protocol(const tern_dc_t *dc);
/** @return the SCTP stream id; -1 while not yet assigned (before the DTLS role is known). */
TERN_EXPORT int tern_dc_id(const tern_dc_t *dc);
TERN_EXPORT bool tern_dc_ordered(const tern_dc_t *dc);
/** @return the limit, or -1 if the channel is not of that kind (W3C null). */
TERN_EXPORT int64_t tern_dc_max_retransmits(const tern_dc_t *dc);
TERN_EXPORT int64_t tern_dc_max_packet_life_time(const tern_dc_t *dc);
TERN_EXPORT bool tern_dc_negotiated(const tern_dc_t *dc);
/** Bytes queued by send and not yet handed to the network. */
TERN_EXPORT size_t tern_dc_buffered_amount(const tern_dc_t *dc);
TERN_EXPORT size_t tern_dc_buffered_amount_low_threshold(const tern_dc_t *dc);
TERN_EXPORT void tern_dc_set_buffered_amount_low_threshold(tern_dc_t *dc, size_t bytes);
TERN_EXPORT void tern_dc_set_user_data(tern_dc_t *dc, void *user);
TERN_EXPORT void *tern_dc_user_data(const tern_dc_t *dc);
/** The pc a channel belongs to. */
TERN_EXPORT tern_pc_t *tern_dc_pc(const tern_dc_t *dc);

/* ------------------------------------------------------------------------------------------ */
/* Event loop                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct tern_loop tern_loop_t;

/**
 * Create an event loop (epoll) for a context. Installs tern_log_stderr on a silent context.
 * @return 0; TERN_ERR_IO if epoll or eventfd cannot be made; TERN_ERR_NOMEM.
 */
TERN_EXPORT int tern_loop_new(tern_ctx_t *ctx, tern_loop_t **out);

/**
 * Free the loop, after removing (not freeing) every pc still on it. Posted functions already
 * accepted run once, inside this call; the pcs still on the loop are never called (they may be
 * freed already). Not from a callback of the loop. NULL is a no-op.
 */
TERN_EXPORT void tern_loop_free(tern_loop_t *loop);

/** The loop's monotonic clock, in microseconds: the `now` to pass to the sans-IO calls. */
TERN_EXPORT tern_time_t tern_loop_now(const tern_loop_t *loop);

/**
 * Run until tern_loop_stop is called.
 * @return 0; TERN_ERR_IO if epoll fails; TERN_ERR_INVALID_STATE from a callback of this loop.
 */
TERN_EXPORT int tern_loop_run(tern_loop_t *loop);

/**
 * Wait at most timeout_ms (-1: no limit) for something to do, do it, and return.
 * @return 0; TERN_ERR_IO if epoll fails; TERN_ERR_INVALID_STATE from a callback of this loop.
 */
TERN_EXPORT int tern_loop_run_once(tern_loop_t *loop, int timeout_ms);

/** Make tern_loop_run return after the current iteration. Loop thread only. */
TERN_EXPORT void tern_loop_stop(tern_loop_t *loop);

/**
 * Run fn(arg) on the loop thread soon. The one call safe from any thread (the context's
 * allocator may be called from the posting thread, so a custom allocator must be thread-safe).
 * @return 0; TERN_ERR_NOMEM; TERN_ERR_CLOSED if the loop is being freed.
 */
TERN_EXPORT int tern_loop_post(tern_loop_t *loop, void (*fn)(void *arg), void *arg);

/** A one-shot timer of the loop. */
typedef struct tern_timer tern_timer_t;

/**
 * Call fn(arg) on the loop thread after delay_ms. The timer frees itself after firing.
 * @return 0; TERN_ERR_NOMEM.
 */
TERN_EXPORT int tern_loop_add_timer(tern_loop_t *loop, uint32_t delay_ms, void (*fn)(void *arg),
                                    void *arg, tern_timer_t **out);

/** Cancel a timer that has not fired. NULL is a no-op. */
TERN_EXPORT void tern_loop_cancel_timer(tern_loop_t *loop, tern_timer_t *timer);

/** A file descriptor watched by a loop (a TCP socket, a signalfd, a pipe). */
typedef struct tern_fd_watch tern_fd_watch_t;

/** Readiness bits of tern_loop_watch_fd and tern_fd_fn. */
#define TERN_FD_READABLE 1u
#define TERN_FD_WRITABLE 2u
/** Only reported, never asked for: an error or hang-up on the fd (a read or write tells which);
 *  it comes whatever the watched events, with TERN_FD_READABLE if that is watched. */
#define TERN_FD_ERROR 4u

/**
 * Called on the loop thread when a watched fd is ready (level-triggered: it is called again at
 * the next iteration while the fd stays ready for a watched event).
 * @param events  TERN_FD_READABLE, TERN_FD_WRITABLE and/or TERN_FD_ERROR.
 */
typedef void (*tern_fd_fn)(void *arg, int fd, unsigned events);

/**
 * Watch an fd: call fn(arg, fd, events) whenever it is ready for one of `events`. The fd stays
 * the caller's (the loop never reads, writes or closes it); make it non-blocking.
 * @param events  TERN_FD_READABLE and/or TERN_FD_WRITABLE; 0 watches errors only (paused).
 * @param out     receives the watch, owned by the loop until tern_loop_unwatch_fd; may be NULL.
 * @return 0; TERN_ERR_INVALID_ARG for a NULL loop or fn, a negative fd or unknown event bits;
 *         TERN_ERR_IO if epoll refuses the fd (already watched, or not pollable: a regular
 *         file); TERN_ERR_NOMEM.
 */
TERN_EXPORT int tern_loop_watch_fd(tern_loop_t *loop, int fd, unsigned events, tern_fd_fn fn,
                                   void *arg, tern_fd_watch_t **out);

/**
 * Change the events a watch waits for (add TERN_FD_WRITABLE while output is queued).
 * @return 0; TERN_ERR_INVALID_ARG for NULL or unknown bits; TERN_ERR_INVALID_STATE if the watch
 *         was removed; TERN_ERR_IO if epoll refuses (the fd was closed under the watch).
 */
TERN_EXPORT int tern_loop_update_fd(tern_loop_t *loop, tern_fd_watch_t *w, unsigned events);

/**
 * Stop watching an fd; it is not closed (close it after this call, not before). Safe from any
 * callback of the loop, the watch's own included: fn is never called again, and the watch is
 * freed once the current iteration no longer refers to it. NULL is a no-op. Watches still there
 * at tern_loop_free are freed by it (their fds are left open).
 */
TERN_EXPORT void tern_loop_unwatch_fd(tern_loop_t *loop, tern_fd_watch_t *w);

/** Callbacks of a pc driven by a loop; any may be NULL. All run on the loop thread. */
typedef struct tern_pc_callbacks {
    void (*on_ice_candidate)(tern_pc_t *pc, void *user, const char *candidate, const char *mid,
                             int mline_index);
    void (*on_ice_gathering_state)(tern_pc_t *pc, void *user, tern_ice_gathering_state_t s);
    void (*on_ice_connection_state)(tern_pc_t *pc, void *user, tern_ice_state_t s);
    void (*on_connection_state)(tern_pc_t *pc, void *user, tern_pc_state_t s);
    void (*on_signaling_state)(tern_pc_t *pc, void *user, tern_signaling_state_t s);
    void (*on_negotiation_needed)(tern_pc_t *pc, void *user);
    void (*on_data_channel)(tern_pc_t *pc, void *user, tern_dc_t *dc);
    void (*on_open)(tern_dc_t *dc, void *user);
    void (*on_message)(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text);
    void (*on_buffered_amount_low)(tern_dc_t *dc, void *user);
    void (*on_closing)(tern_dc_t *dc, void *user);
    /** The last call for this channel: the handle is invalid once it returns. */
    void (*on_close)(tern_dc_t *dc, void *user);
    void (*on_error)(tern_dc_t *dc, void *user, int code, const char *reason);
} tern_pc_callbacks_t;

/**
 * Drive a pc from the loop: bind a UDP socket on every usable interface (loopback only if the
 * pc's config asks for it), hand them to the pc, and deliver its events to the callbacks.
 * No callback runs inside this call; events are delivered from the next iteration.
 * @param cbs   copied; may be NULL (events are then discarded).
 * @param user  passed to every callback.
 * @return 0; TERN_ERR_IO if no socket could be bound; TERN_ERR_INVALID_ARG for NULL;
 *         TERN_ERR_INVALID_STATE if the pc is already on the loop; TERN_ERR_NOMEM.
 */
TERN_EXPORT int tern_loop_add_pc(tern_loop_t *loop, tern_pc_t *pc, const tern_pc_callbacks_t *cbs,
                                 void *user);

/**
 * Stop driving a pc and close its sockets; the pc itself is not freed. Datagrams the pc has
 * already queued (the close_notify after tern_pc_close) are sent first; no callback runs. Safe
 * from a callback of that pc (the removal completes when the callback returns).
 * @return 0; TERN_ERR_NOT_FOUND.
 */
TERN_EXPORT int tern_loop_remove_pc(tern_loop_t *loop, tern_pc_t *pc);

#ifdef __cplusplus
}
#endif

#endif /* TERN_TERN_H */
