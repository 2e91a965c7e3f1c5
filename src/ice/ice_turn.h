/* SPDX-License-Identifier: MIT */
/*
 * ICE servers for the agent: the URL forms browsers take (RFC 7064 stun:/stuns:, RFC 7065
 * turn:/turns:), and a sans-IO TURN client (RFC 8656) that gives the agent relay candidates.
 * The TURN client allocates with long-term credentials (RFC 8489 §9.2: 401 and 438 handled),
 * refreshes the allocation before it expires, creates (and refreshes) a permission for the IP
 * of every remote candidate paired with a relay candidate, binds a channel to the remote of the
 * selected pair, wraps what the agent sends from a relay candidate in Send indications or
 * ChannelData, unwraps Data indications and ChannelData from peers that have a permission, and
 * deallocates on close. Over TCP and TLS (RFC 8656 §3.1, RFC 7065 "turns:") the agent asks its
 * driver for a connection and exchanges framed bytes with it (ChannelData padded to 4 bytes,
 * RFC 8656 §12.5): the stream seam below.
 *
 * Scope (deliberately unsupported): DTLS to the TURN server ("turns:...?transport=udp"), TCP
 * allocations to peers (RFC 6062), 300 Try-Alternate, EVEN-PORT and reservation tokens,
 * MESSAGE-INTEGRITY-SHA256 and PASSWORD-ALGORITHMS (the SHA-1 mechanism coturn and every
 * deployed server speak), IPv6 relay addresses (REQUESTED-ADDRESS-FAMILY is not sent: the server
 * gives its default, IPv4), zone ids in IPv6 URL literals, and "stuns:" (STUN over TLS tells the
 * mapping of a TCP connection, useless for UDP candidates: such a URL is accepted and ignored).
 */
#ifndef TERN_ICE_ICE_TURN_H
#define TERN_ICE_ICE_TURN_H

#include "ice/ice.h"

/* ---- ICE server URLs (ice_url.c) ---- */

#define TERN_ICE_URL_STUN_PORT 3478  /* RFC 8489 §18.6 */
#define TERN_ICE_URL_STUNS_PORT 5349 /* RFC 8489 §18.6 */
#define TERN_ICE_URL_HOST_MAX 253    /* RFC 1035 §2.3.4, as text */

typedef enum {
    TERN_ICE_URL_STUN,
    TERN_ICE_URL_STUNS,
    TERN_ICE_URL_TURN,
    TERN_ICE_URL_TURNS,
} tern_ice_url_scheme_t;

typedef enum {
    TERN_ICE_URL_TRANSPORT_ANY = 0, /* no ?transport= */
    TERN_ICE_URL_TRANSPORT_UDP,
    TERN_ICE_URL_TRANSPORT_TCP,
} tern_ice_url_transport_t;

/** A parsed ICE server URL. */
typedef struct tern_ice_url {
    tern_ice_url_scheme_t scheme;
    tern_ice_url_transport_t transport;
    char host[TERN_ICE_URL_HOST_MAX + 1]; /**< a name, or an IP without brackets */
    uint16_t port;                        /**< as written, or the scheme's default */
    bool host_is_ip;                      /**< then `addr` holds it, with `port` */
    tern_addr_t addr;
} tern_ice_url_t;

/**
 * Parse "stun:host[:port]", "stuns:...", "turn:host[:port][?transport=udp|tcp]", "turns:..."
 * (schemes and the transport name case-insensitive; IPv6 literals in brackets). A "stun:" URL
 * may carry "?transport=udp" (some services write it; it changes nothing).
 * @param url  NUL-terminated; borrowed.
 * @param out  filled on success, untouched on failure.
 * @return 0; TERN_ERR_PARSE if malformed (unknown scheme, user info, bad host or port, an unknown
 *         query); TERN_ERR_UNSUPPORTED for "turns:...?transport=udp" (DTLS to the server);
 *         TERN_ERR_INVALID_ARG for NULL.
 */
int tern_ice_url_parse(const char *url, tern_ice_url_t *out);

/* ---- TURN servers of an agent (ice_turn.c) ---- */

typedef enum {
    TERN_TURN_UDP = 0,
    TERN_TURN_TCP = 1,
    TERN_TURN_TLS = 2,
} tern_turn_transport_t;

#define TERN_TURN_CRED_MAX 256 /* longest user name and password accepted */

/** A TURN server for tern_ice_add_turn_server. */
typedef struct tern_ice_turn_server {
    tern_addr_t addr; /**< resolved, with its port */
    tern_turn_transport_t transport;
    const char *username;    /**< NUL-terminated; copied */
    const char *password;    /**< NUL-terminated; copied (zeroed when freed) */
    const char *server_name; /**< TLS: SNI and the certificate's name; NULL: none; copied */
    /**
     * A fallback: start only if the allocation `fallback_of` (an index returned earlier) has
     * had no answer after `fallback_delay_us`. Used for a "turn:" URL without a transport: UDP
     * first, TCP soon after if UDP seems blocked. -1: start at once.
     */
    int fallback_of;
    uint32_t fallback_delay_us;
} tern_ice_turn_server_t;

/**
 * Allocate on a TURN server: the allocation starts once the agent has a host address of the
 * server's family (UDP) or at once (TCP, TLS: a stream request), and its relayed address becomes
 * a relay candidate (TERN_ICE_EV_LOCAL_CANDIDATE; the mapped address a server-reflexive one).
 * Gathering completes once every allocation succeeded or failed.
 * @return the allocation's index (>= 0); TERN_ERR_INVALID_ARG for an unusable address or
 *         missing or over-long credentials; TERN_ERR_TOO_LARGE past 8 allocations;
 *         TERN_ERR_INVALID_STATE once gathering is complete or after close; TERN_ERR_NOMEM.
 */
int tern_ice_add_turn_server(tern_ice_t *ice, tern_time_t now, const tern_ice_turn_server_t *s);

/**
 * Keep gathering open (delta +1) until a server's name is resolved and its addresses handed
 * in (delta -1), so that TERN_ICE_EV_GATHERING_COMPLETE does not come before its candidates.
 */
void tern_ice_hold_gathering(tern_ice_t *ice, tern_time_t now, int delta);

/**
 * Whether a datagram is TURN traffic from one of the agent's servers over UDP (a response, a
 * Data indication or ChannelData arriving on the allocation's host socket). STUN Binding
 * messages are not: a TURN server is often the STUN server too.
 */
bool tern_ice_turn_claims(const tern_ice_t *ice, const tern_datagram_t *in);

/**
 * Take a datagram tern_ice_turn_claims said yes to: responses drive the allocation, and the
 * data a peer sent through the relay waits for tern_ice_poll_relayed. Drops and counts what is
 * malformed, unauthenticated or from a peer without a permission. @return 0.
 */
int tern_ice_turn_handle_input(tern_ice_t *ice, tern_time_t now, const tern_datagram_t *in);

/**
 * Take the next datagram a peer sent through a relay: `local` is the relay candidate's address,
 * `remote` the peer's. The caller handles it as if it had arrived on a socket (STUN to
 * tern_ice_handle_input, DTLS upwards). Its data borrows from the input or the agent: valid
 * until the next call on the agent.
 * @return false when there is none.
 */
bool tern_ice_poll_relayed(tern_ice_t *ice, tern_datagram_t *out);

/* ---- the stream seam: TURN over TCP and TLS ---- */

/** A connection the agent wants opened (or closed, `close`) by its driver. */
typedef struct tern_ice_stream_request {
    uint32_t id; /**< never 0 */
    bool close;  /**< true: close connection `id`; the rest is unset */
    tern_addr_t remote;
    bool tls;
    const char *server_name; /**< borrowed until the next call on the agent; NULL: none */
} tern_ice_stream_request_t;

/** Take the next connection request. @return false when there is none. */
bool tern_ice_poll_stream_request(tern_ice_t *ice, tern_ice_stream_request_t *out);

/**
 * Take every byte waiting for one connection; the driver writes them in order after those it
 * took before. *data is valid until the next call on the agent. @return false when none waits.
 */
bool tern_ice_poll_stream_transmit(tern_ice_t *ice, uint32_t *id, const uint8_t **data,
                                   size_t *len);

/**
 * The driver's news of a connection: connected (local: its local address, may be NULL), or
 * gone (connected false: failed to connect, reset, closed by the server). @return 0;
 * TERN_ERR_NOT_FOUND for an unknown or closed id.
 */
int tern_ice_stream_event(tern_ice_t *ice, tern_time_t now, uint32_t id, bool connected,
                          const tern_addr_t *local);

/**
 * Bytes read from a connection, in order. Complete frames are handled at once (TURN responses)
 * or wait for tern_ice_poll_relayed (a peer's data); a malformed frame or more than 64 KiB of
 * unframed bytes closes the connection. @return 0; TERN_ERR_NOT_FOUND for an unknown id.
 */
int tern_ice_stream_input(tern_ice_t *ice, tern_time_t now, uint32_t id, const uint8_t *data,
                          size_t len);

/* ---- ChannelData framing (RFC 8656 §12.4, §12.5) ---- */

#define TERN_TURN_CHANNEL_MIN 0x4000 /* RFC 8656 §12 */
#define TERN_TURN_CHANNEL_MAX 0x4FFF
#define TERN_TURN_CHANNEL_HEADER 4

/**
 * Parse one ChannelData message at the start of data. On a stream (`stream` true) the message
 * is padded to a multiple of 4 bytes and data may hold more after it; in a datagram the
 * datagram must hold the message (trailing padding allowed, RFC 8656 §12.5).
 * @param frame_len  receives the bytes the message takes, padding included.
 * @return 0; TERN_ERR_TRUNCATED if a stream needs more bytes; TERN_ERR_PARSE if malformed
 *         (channel number outside 0x4000-0x4FFF, length past the datagram).
 */
int tern_turn_channel_data_parse(const uint8_t *data, size_t len, bool stream, uint16_t *channel,
                                 const uint8_t **payload, size_t *payload_len, size_t *frame_len);

/**
 * Write a ChannelData header and, on a stream, the padding after the payload (which the caller
 * has put at out + 4). @param cap  room at out. @return the message length; TERN_ERR_TOO_LARGE
 * if it does not fit or the payload exceeds 65535 bytes.
 */
int tern_turn_channel_data_frame(uint8_t *out, size_t cap, uint16_t channel, size_t payload_len,
                                 bool stream);

/**
 * How long the frame at the start of a stream is (a STUN message or padded ChannelData).
 * @return the length; 0 if more bytes are needed to tell; TERN_ERR_PARSE if it is neither.
 */
long tern_turn_stream_frame_len(const uint8_t *data, size_t len);

#endif
