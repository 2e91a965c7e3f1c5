/* SPDX-License-Identifier: MIT */
/*
 * The ws layer's internal API: WebSocket (RFC 6455) and the HTTP/1.1 upgrade, sans-IO. Three
 * parts, usable on their own:
 * - an HTTP/1.1 head parser for requests and responses (RFC 9112 §2-§5), bounded, with the
 *   picohttpparser contract (complete / need more / error), and a writer of plain responses;
 * - the WebSocket codec pieces: Sec-WebSocket-Accept (RFC 6455 §4.2.2), frame headers (§5.2),
 *   masking (§5.3), close codes (§7.4) and an incremental UTF-8 validator (RFC 3629);
 * - an endpoint (tern_ws_t), server or client, fed the bytes of one TCP (or TLS) stream. It
 *   parses the upgrade, frames, reassembles and validates messages, answers pings, runs the
 *   close handshake, the keepalive and the handshake deadline, and writes the bytes to send
 *   into a bounded output buffer.
 *
 * Driving an endpoint (CONVENTIONS.md §2):
 *   tern_ws_handle_input(ws, now, bytes read from the socket)   (or tern_ws_handle_eof)
 *   tern_ws_handle_timeout(ws, now)                              when next_deadline has passed
 *   then drain, until both return false:
 *     tern_ws_poll_event(ws, &ev)                                 REQUEST, OPEN, MESSAGE, CLOSE
 *     tern_ws_poll_output(ws, &data, &len) + tern_ws_consume_output(ws, n_written)
 *   tern_ws_poll_event may add output (a pong, a close echo, frames that arrived behind a full
 *   event queue), so drain events before output, or loop until both are empty.
 *   After the CLOSE event (state CLOSED) nothing more happens: write what is left of the
 *   output, then close the TCP connection and free the endpoint. A server answering plain HTTP
 *   (tern_ws_respond) ends the same way.
 *
 * Server flow: the endpoint parses the request head and reports TERN_WS_EV_REQUEST with the
 * method, target (path and query) and headers; the user then either accepts the upgrade
 * (tern_ws_accept, the request must be a valid WebSocket upgrade) or answers with an HTTP
 * response (tern_ws_respond: 404, 400 for a bad room, 200 with a static file, 426 for a wrong
 * Sec-WebSocket-Version). A malformed request head is answered with 400 by the endpoint
 * itself and ends with a CLOSE event (cause TERN_WS_CAUSE_BAD_HTTP).
 * Client flow: tern_ws_new writes the upgrade request (random key from the ctx rng) at once;
 * the response is checked (status 101, Upgrade, Connection, Sec-WebSocket-Accept, no
 * extension, the protocol offered) and TERN_WS_EV_OPEN follows.
 *
 * Scope (deliberately not supported):
 * - No extensions: permessage-deflate (RFC 7692) is never offered nor accepted; an offer in
 *   a request is ignored, a server that answers with any extension fails the client handshake.
 * - Messages are sent as one frame each (no outgoing fragmentation); incoming fragmentation is
 *   fully supported.
 * - Plain HTTP is one request per connection: every response says "Connection: close" and the
 *   endpoint ends after it (no keep-alive, no pipelining, request bodies are ignored).
 * - No chunked transfer coding on input (the client's 101 response has no body anyway) and no
 *   obs-fold header lines (refused, RFC 9112 §5.2).
 * - Redirects (3xx) and authentication in the client are the caller's business: the handshake
 *   fails with cause TERN_WS_CAUSE_BAD_HANDSHAKE and the HTTP status in the event.
 */
#ifndef TERN_WS_WS_H
#define TERN_WS_WS_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* HTTP/1.1 head parsing and writing (RFC 9112)                                              */
/* ------------------------------------------------------------------------------------------ */

/* Limits (tern's choices): a request or response head larger than these is refused. */
#define TERN_HTTP_MAX_HEAD_BYTES 8192 /* request/status line + headers + the empty line */
#define TERN_HTTP_MAX_LINE 4096       /* one line, without its line end */
#define TERN_HTTP_MAX_HEADERS 32      /* header fields in one head */

/** One parsed header field: pointers into the parsed buffer, not NUL-terminated. */
typedef struct tern_http_header {
    const char *name; /**< field name as sent (compare case-insensitively) */
    size_t name_len;
    const char *value; /**< without leading and trailing whitespace */
    size_t value_len;
} tern_http_header_t;

/** What a request asks for, as far as the WebSocket upgrade is concerned (RFC 6455 §4.2.1). */
typedef enum {
    /** No "Upgrade: websocket": a plain HTTP request (serve a file, /healthz, 404...). */
    TERN_WS_UPGRADE_NONE = 0,
    /** A valid WebSocket opening handshake: tern_ws_accept may take it. */
    TERN_WS_UPGRADE_VALID,
    /** "Upgrade: websocket" but something else is wrong (method, version of HTTP, Host,
     *  Connection, Sec-WebSocket-Key): answer 400 (RFC 6455 §4.2.2). */
    TERN_WS_UPGRADE_INVALID,
    /** Valid except Sec-WebSocket-Version is not 13: answer 426 (RFC 6455 §4.4);
     *  tern_ws_respond adds "Sec-WebSocket-Version: 13" to a 426 by itself. */
    TERN_WS_UPGRADE_BAD_VERSION,
} tern_ws_upgrade_t;

/** A parsed request head. Every pointer points into the parsed buffer (not NUL-terminated). */
typedef struct tern_http_request {
    const char *method; /**< "GET", "HEAD", ...: case-sensitive (RFC 9110 §9.1) */
    size_t method_len;
    const char *target; /**< request-target as sent: "/ws/room?x=1", "*", "http://h/p" */
    size_t target_len;
    const char *path; /**< target up to '?' (the whole target when there is no query) */
    size_t path_len;
    const char *query; /**< after '?', without it; NULL when there is no '?' */
    size_t query_len;
    int minor_version; /**< 0 or 1 (HTTP/1.x); other major versions are refused */
    tern_http_header_t headers[TERN_HTTP_MAX_HEADERS];
    size_t num_headers;
    /* Filled by tern_http_parse_request from the headers: */
    tern_ws_upgrade_t upgrade;
    /** Sec-WebSocket-Accept for the key, NUL-terminated, when upgrade is VALID or BAD_VERSION. */
    char accept[29];
} tern_http_request_t;

/** A parsed response head. Pointers point into the parsed buffer (not NUL-terminated). */
typedef struct tern_http_response {
    int minor_version;
    int status;         /**< 100..999 */
    const char *reason; /**< reason-phrase, may be empty */
    size_t reason_len;
    tern_http_header_t headers[TERN_HTTP_MAX_HEADERS];
    size_t num_headers;
} tern_http_response_t;

/**
 * Parse an HTTP/1.x request head (request line, header fields, empty line) at the start of
 * data. Lines may end in CRLF or a bare LF; empty lines before the request line are skipped
 * (RFC 9112 §2.2), at most 4 of them. The method is a token of at most 32 characters; header
 * names must be tokens, no whitespace before the colon (§5.1), no obs-fold (§5.2), no control
 * characters in values. Also classifies the request as a
 * WebSocket upgrade (out->upgrade) and computes out->accept.
 * @param data  borrowed; out points into it.
 * @return the head's length in bytes (> 0; what follows is body or frames);
 *         TERN_ERR_AGAIN if the head is not complete yet (feed more and call again with the
 *         whole buffer); TERN_ERR_PARSE if malformed (already detected on a partial head when
 *         possible); TERN_ERR_TOO_LARGE if the head, a line or the header count exceeds the
 *         limits above (TERN_HTTP_MAX_*). On error out is undefined.
 */
int tern_http_parse_request(const uint8_t *data, size_t len, tern_http_request_t *out);

/**
 * Parse an HTTP/1.x response head (status line, header fields, empty line). Same rules and
 * return values as tern_http_parse_request. A status line without a reason phrase
 * ("HTTP/1.1 101\r\n") is accepted.
 */
int tern_http_parse_response(const uint8_t *data, size_t len, tern_http_response_t *out);

/**
 * Find a header field by name, case-insensitively (RFC 9110 §5.1).
 * @return the first field of that name, or NULL.
 */
const tern_http_header_t *tern_http_find_header(const tern_http_header_t *headers, size_t n,
                                                const char *name);

/**
 * Tell whether a comma-separated field value (the #token lists of RFC 9110 §5.6.1, as in
 * "Connection: keep-alive, Upgrade") holds token, case-insensitively. Empty list elements and
 * whitespace around elements are allowed.
 * @return true if present.
 */
bool tern_http_has_token(const char *value, size_t value_len, const char *token);

/** The standard reason phrase of a status code ("Not Found"); "Unknown" for others. */
const char *tern_http_status_text(int status);

/** A header field to write: NUL-terminated name and value, borrowed for the call. */
typedef struct tern_http_field {
    const char *name;
    const char *value;
} tern_http_field_t;

/**
 * Append a complete HTTP/1.1 response to w: status line with the standard reason phrase, the
 * given fields, "Content-Length" (always, from body_len), "Connection: close", the empty line
 * and the body (omitted when omit_body, for HEAD, with Content-Length still that of the body).
 * Names and values containing CR, LF or NUL are refused.
 * @return 0; TERN_ERR_INVALID_ARG if status is not 100..999 or a field is unsafe;
 *         TERN_ERR_NOMEM if w could not grow (w->err set).
 */
int tern_http_write_response(tern_wbuf_t *w, int status, const tern_http_field_t *fields,
                             size_t num_fields, const void *body, size_t body_len, bool omit_body);

/* ------------------------------------------------------------------------------------------ */
/* WebSocket codec pieces (RFC 6455)                                                          */
/* ------------------------------------------------------------------------------------------ */

/** Length of a Sec-WebSocket-Accept value (base64 of 20 bytes), without its NUL. */
#define TERN_WS_ACCEPT_LEN 28
/** Length of a Sec-WebSocket-Key value (base64 of 16 bytes), without its NUL. */
#define TERN_WS_KEY_LEN 24

/**
 * Compute Sec-WebSocket-Accept: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
 * (RFC 6455 §4.2.2 step 5.4). The key is used as given (trim it first).
 * @param out  TERN_WS_ACCEPT_LEN + 1 bytes; NUL-terminated.
 * @return 0; TERN_ERR_CRYPTO if SHA-1 is unavailable.
 */
int tern_ws_accept_key(const char *key, size_t key_len, char out[TERN_WS_ACCEPT_LEN + 1]);

/**
 * Tell whether a Sec-WebSocket-Key is valid: base64 (padded) of exactly 16 bytes
 * (RFC 6455 §4.1 item 7, §4.2.1 item 5).
 */
bool tern_ws_key_valid(const char *key, size_t key_len);

/** Frame opcodes (RFC 6455 §5.2, §11.8). */
typedef enum {
    TERN_WS_OP_CONTINUATION = 0x0,
    TERN_WS_OP_TEXT = 0x1,
    TERN_WS_OP_BINARY = 0x2,
    TERN_WS_OP_CLOSE = 0x8,
    TERN_WS_OP_PING = 0x9,
    TERN_WS_OP_PONG = 0xA,
} tern_ws_opcode_t;

/** Close status codes used by this layer (RFC 6455 §7.4.1, IANA registry). */
#define TERN_WS_CLOSE_NORMAL 1000
#define TERN_WS_CLOSE_GOING_AWAY 1001
#define TERN_WS_CLOSE_PROTOCOL_ERROR 1002
#define TERN_WS_CLOSE_UNSUPPORTED_DATA 1003
#define TERN_WS_CLOSE_NO_STATUS 1005 /* never sent: the peer's close frame had no code */
#define TERN_WS_CLOSE_ABNORMAL 1006  /* never sent: the connection ended without a close frame */
#define TERN_WS_CLOSE_INVALID_DATA 1007
#define TERN_WS_CLOSE_POLICY_VIOLATION 1008
#define TERN_WS_CLOSE_MESSAGE_TOO_BIG 1009
#define TERN_WS_CLOSE_MANDATORY_EXTENSION 1010
#define TERN_WS_CLOSE_INTERNAL_ERROR 1011

/** Longest control frame payload (RFC 6455 §5.5), and close reason (125 minus the code). */
#define TERN_WS_MAX_CONTROL_PAYLOAD 125
#define TERN_WS_MAX_CLOSE_REASON 123
/** Longest frame header: 2 + 8 (64-bit length) + 4 (masking key). */
#define TERN_WS_MAX_FRAME_HEADER 14

/**
 * Tell whether a close code may appear in a close frame on the wire (RFC 6455 §7.4): 1000-1003,
 * 1007-1014 (1012-1014 registered by IANA since), 3000-4999. 1004-1006, 1015, other values
 * below 3000 and 5000 and above are not.
 */
bool tern_ws_close_code_valid(uint16_t code);

/** A parsed frame header (RFC 6455 §5.2). */
typedef struct tern_ws_frame_header {
    bool fin;
    uint8_t rsv;    /**< RSV1..3 as bits 0x4, 0x2, 0x1 */
    uint8_t opcode; /**< 0..15 as sent (reserved values are not refused here) */
    bool masked;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t header_len; /**< 2..14 */
} tern_ws_frame_header_t;

/**
 * Parse a frame header at the start of data. Refuses (TERN_ERR_PARSE) only what makes the
 * length unreadable or non-canonical: a 64-bit length with its most significant bit set, and a
 * length not in its minimal encoding (RFC 6455 §5.2). Opcodes, RSV bits, masking and control
 * frame rules are the caller's to check (the endpoint does).
 * @return 0 with *out filled; TERN_ERR_AGAIN if data is shorter than the header;
 *         TERN_ERR_PARSE as said above.
 */
int tern_ws_frame_header_parse(const uint8_t *data, size_t len, tern_ws_frame_header_t *out);

/**
 * Write a frame header into out (TERN_WS_MAX_FRAME_HEADER bytes), with the minimal length
 * encoding; mask is NULL for an unmasked (server) frame.
 * @return the header length (2..14).
 */
size_t tern_ws_frame_header_write(uint8_t *out, bool fin, uint8_t opcode, uint64_t payload_len,
                                  const uint8_t mask[4]);

/**
 * XOR data in place with the masking key (RFC 6455 §5.3), starting at byte offset `offset` of
 * the payload (so a payload can be unmasked in pieces). Masking and unmasking are the same.
 */
void tern_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/**
 * Incremental UTF-8 validation (RFC 3629 §4: no overlong forms, no surrogates U+D800..DFFF,
 * nothing above U+10FFFF). Start from TERN_UTF8_ACCEPT; feed pieces with tern_utf8_feed; a
 * sequence may be split anywhere between pieces.
 */
#define TERN_UTF8_ACCEPT 0u /* at a character boundary: the text so far is complete and valid */
#define TERN_UTF8_REJECT 1u /* invalid: stays so */

/**
 * Feed bytes to the validator.
 * @return the new state: TERN_UTF8_REJECT as soon as the input can no longer be valid UTF-8,
 *         TERN_UTF8_ACCEPT at a character boundary, another value inside a character.
 */
uint32_t tern_utf8_feed(uint32_t state, const uint8_t *data, size_t len);

/** @return true if data is complete, valid UTF-8. */
bool tern_utf8_valid(const uint8_t *data, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* The endpoint                                                                               */
/* ------------------------------------------------------------------------------------------ */

typedef struct tern_ws tern_ws_t;

typedef enum {
    TERN_WS_ROLE_SERVER = 0,
    TERN_WS_ROLE_CLIENT = 1,
} tern_ws_role_t;

/* Defaults of tern_ws_config_t (tern's choices; the server's figures from
 * signaling-protocol.md). */
#define TERN_WS_DEFAULT_MAX_MESSAGE_BYTES 65536
#define TERN_WS_DEFAULT_MAX_OUTPUT_BYTES 262144
#define TERN_WS_DEFAULT_HANDSHAKE_TIMEOUT_US 10000000 /* 10 s */
#define TERN_WS_DEFAULT_PING_INTERVAL_US 10000000     /* 10 s */
#define TERN_WS_DEFAULT_IDLE_TIMEOUT_US 30000000      /* 30 s */
#define TERN_WS_DEFAULT_CLOSE_TIMEOUT_US 5000000      /* 5 s */

/**
 * Endpoint configuration. All zero means a server with the defaults. Durations are in
 * microseconds: 0 means the default, TERN_TIME_NEVER disables the timer. Strings are copied.
 */
typedef struct tern_ws_config {
    tern_ws_role_t role;
    /** Largest message (after reassembly) accepted; a larger one closes with 1009. */
    size_t max_message_bytes;
    /**
     * Most bytes waiting in the output buffer for the socket. A send that would go over it
     * fails with TERN_ERR_AGAIN (the server drops such a slow reader). Control frames (pong,
     * close) and the handshake always fit: they may exceed it by a few hundred bytes, and an
     * HTTP response by its body.
     */
    size_t max_output_bytes;
    /** Time allowed from tern_ws_new to the end of the opening handshake: for a server, until
     *  tern_ws_accept or tern_ws_respond; for a client, until the 101 response. */
    tern_time_t handshake_timeout_us;
    /** Send a ping after this long without receiving anything (repeated while silent). */
    tern_time_t ping_interval_us;
    /** Fail with TERN_WS_CAUSE_IDLE_TIMEOUT after this long without receiving anything (a pong
     *  or any other byte) while open. */
    tern_time_t idle_timeout_us;
    /** After sending a close frame, how long to wait for the peer's. */
    tern_time_t close_timeout_us;

    /* Client only. */
    const char *host;     /**< Host header value ("example.com:8080"); required for a client */
    const char *target;   /**< request target, "/ws/room?x=y"; NULL: "/" */
    const char *origin;   /**< Origin header; NULL: none */
    const char *protocol; /**< Sec-WebSocket-Protocol to offer (one value); NULL: none */
    const tern_http_field_t *headers; /**< extra request header fields (User-Agent, ...) */
    size_t num_headers;
} tern_ws_config_t;

/** Endpoint states (as the W3C WebSocket readyState). */
typedef enum {
    /** Opening handshake in progress (server: before the request, or waiting for the user's
     *  decision on it; client: waiting for the response). */
    TERN_WS_STATE_CONNECTING = 0,
    /** Messages flow both ways. */
    TERN_WS_STATE_OPEN,
    /** We sent a close frame and wait for the peer's; incoming messages are still delivered,
     *  sending is refused. */
    TERN_WS_STATE_CLOSING,
    /** Done: the CLOSE event is queued or delivered; write the rest of the output, then close
     *  the TCP connection and free the endpoint. */
    TERN_WS_STATE_CLOSED,
} tern_ws_state_t;

/** Why an endpoint ended (TERN_WS_EV_CLOSE). */
typedef enum {
    /** The close handshake completed, started by either side (by_peer says which). */
    TERN_WS_CAUSE_CLEAN = 0,
    /** Server: the user answered with tern_ws_respond (no WebSocket was opened). */
    TERN_WS_CAUSE_HTTP_RESPONSE,
    /** Server: the request head was malformed or too large; the endpoint answered 400 (or
     *  431 for a head over TERN_HTTP_MAX_HEAD_BYTES). */
    TERN_WS_CAUSE_BAD_HTTP,
    /** Client: the response was malformed, not 101, or failed a check of RFC 6455 §4.1
     *  (http_status says which status came, 0 if the head did not parse). */
    TERN_WS_CAUSE_BAD_HANDSHAKE,
    /** The peer broke the protocol; we sent a close frame with sent_code (1002, 1007, 1009)
     *  and ended at once ("Fail the WebSocket Connection", RFC 6455 §7.1.7). */
    TERN_WS_CAUSE_PROTOCOL_ERROR,
    /** The opening handshake did not finish within handshake_timeout_us. */
    TERN_WS_CAUSE_HANDSHAKE_TIMEOUT,
    /** Nothing (not even a pong) arrived within idle_timeout_us while open. */
    TERN_WS_CAUSE_IDLE_TIMEOUT,
    /** Our close frame got no answer within close_timeout_us. */
    TERN_WS_CAUSE_CLOSE_TIMEOUT,
    /** The stream ended (tern_ws_handle_eof) before the close handshake completed. */
    TERN_WS_CAUSE_EOF,
    /** An allocation failed; the endpoint gave up. */
    TERN_WS_CAUSE_NOMEM,
} tern_ws_cause_t;

typedef enum {
    /** Server: a request head arrived; call tern_ws_accept or tern_ws_respond (at once, or at
     *  the latest before the handshake deadline). */
    TERN_WS_EV_REQUEST = 1,
    /** The upgrade completed: the endpoint is OPEN. */
    TERN_WS_EV_OPEN,
    /** A complete message (text is valid UTF-8). */
    TERN_WS_EV_MESSAGE,
    /** The endpoint ended (state CLOSED). Always the last event, exactly once. */
    TERN_WS_EV_CLOSE,
} tern_ws_event_type_t;

/**
 * One event. Pointers inside are borrowed and stay valid until the next tern_ws_poll_event,
 * tern_ws_handle_input, tern_ws_handle_timeout, tern_ws_handle_eof or tern_ws_free on the
 * same endpoint; sending, closing, accepting, responding and output calls do not invalidate
 * them (a server may reply on the same endpoint while it still reads the message).
 */
typedef struct tern_ws_event {
    tern_ws_event_type_t type;
    union {
        struct {
            const tern_http_request_t *request; /**< method, target, path, query, headers */
        } request;
        struct {
            const char *target;   /**< NUL-terminated, as tern_ws_target */
            const char *protocol; /**< NUL-terminated subprotocol agreed; "" if none */
        } open;
        struct {
            bool is_text; /**< text (valid UTF-8, not NUL-terminated) or binary */
            const uint8_t *data;
            size_t len;
        } message;
        struct {
            tern_ws_cause_t cause;
            bool by_peer; /**< for CLEAN: the peer sent the first close frame */
            /** The code in the peer's close frame; TERN_WS_CLOSE_NO_STATUS if it had none;
             *  TERN_WS_CLOSE_ABNORMAL if no close frame came from the peer. */
            uint16_t code;
            const char *reason; /**< the peer's close reason (UTF-8, NUL-terminated); "" */
            size_t reason_len;
            /** The code of the close frame we sent (0 if none, or if it had no code). */
            uint16_t sent_code;
            /** HTTP status: the one we answered (server, HTTP_RESPONSE or BAD_HTTP), or
             *  received (client, BAD_HANDSHAKE); 0 otherwise. */
            int http_status;
        } close;
    } u;
} tern_ws_event_t;

/** Counters for logs and tests. */
typedef struct tern_ws_stats {
    uint64_t bytes_in;      /**< bytes fed to handle_input */
    uint64_t bytes_out;     /**< bytes consumed from the output */
    uint64_t frames_in;     /**< complete frames parsed */
    uint64_t messages_in;   /**< messages delivered */
    uint64_t messages_out;  /**< messages sent */
    uint64_t pings_sent;    /**< keepalive pings and tern_ws_ping calls */
    uint64_t pongs_in;      /**< pongs received */
    uint64_t input_dropped; /**< bytes ignored because the endpoint was closed */
} tern_ws_stats_t;

/**
 * Create an endpoint. A client writes its opening handshake into the output at once (the key
 * is 16 bytes from the ctx rng, RFC 6455 §4.1 item 7).
 * @param ctx  borrowed; must outlive the endpoint.
 * @param cfg  NULL: a server with the defaults; copied.
 * @return 0 with *out set; TERN_ERR_INVALID_ARG if a client has no host, or a string of the
 *         request holds CR, LF or NUL, or the target does not start with '/';
 *         TERN_ERR_CRYPTO if the rng or SHA-1 failed; TERN_ERR_NOMEM.
 */
int tern_ws_new(tern_ctx_t *ctx, const tern_ws_config_t *cfg, tern_time_t now, tern_ws_t **out);

/** Free an endpoint and everything it holds. NULL is a no-op. */
void tern_ws_free(tern_ws_t *ws);

/**
 * Feed bytes read from the stream. Never fails because of what the peer sent: violations end
 * the endpoint with a CLOSE event. In state CLOSED the bytes are dropped (and counted).
 * @param data  borrowed for the call.
 * @return 0; TERN_ERR_AGAIN if events were left undrained and the input buffer is full
 *         (nothing was taken: drain, then feed again); TERN_ERR_NOMEM if an allocation failed
 *         (the endpoint ended with cause NOMEM).
 */
int tern_ws_handle_input(tern_ws_t *ws, tern_time_t now, const uint8_t *data, size_t len);

/**
 * The stream ended (read returned 0, or the socket failed). Ends the endpoint with cause EOF
 * unless it is already CLOSED (a completed close handshake stays CLEAN). Messages parsed
 * before are still delivered, then the CLOSE event.
 * @return 0.
 */
int tern_ws_handle_eof(tern_ws_t *ws, tern_time_t now);

/**
 * Run the timers whose deadline has passed (handshake, ping, idle, close). Early calls do
 * nothing.
 * @return 0.
 */
int tern_ws_handle_timeout(tern_ws_t *ws, tern_time_t now);

/** @return when tern_ws_handle_timeout must next be called; TERN_TIME_NEVER if no timer runs. */
tern_time_t tern_ws_next_deadline(const tern_ws_t *ws);

/**
 * Take the next event.
 * @return false when there is none. Pointers in out: see tern_ws_event_t.
 */
bool tern_ws_poll_event(tern_ws_t *ws, tern_ws_event_t *out);

/**
 * Look at the bytes waiting to be written to the stream, without removing them: write what
 * the socket takes, then tell tern_ws_consume_output how much.
 * @param data  set to the bytes (valid until the next call on ws other than
 *              tern_ws_poll_output itself).
 * @return false when nothing waits (*len is 0).
 */
bool tern_ws_poll_output(tern_ws_t *ws, const uint8_t **data, size_t *len);

/** Remove n bytes (at most what tern_ws_poll_output showed) from the front of the output. */
void tern_ws_consume_output(tern_ws_t *ws, size_t n);

/** @return the bytes waiting in the output (the W3C bufferedAmount, plus framing). */
size_t tern_ws_buffered_amount(const tern_ws_t *ws);

/**
 * Server: accept the upgrade of the request reported by TERN_WS_EV_REQUEST: write "101
 * Switching Protocols" with Sec-WebSocket-Accept; the endpoint becomes OPEN, TERN_WS_EV_OPEN
 * follows, and frames that arrived behind the request are processed at the next poll.
 * @param protocol  the Sec-WebSocket-Protocol to answer (one the client offered); NULL: none.
 * @return 0; TERN_ERR_INVALID_STATE if not a server waiting for its decision, or if the
 *         request is not TERN_WS_UPGRADE_VALID; TERN_ERR_INVALID_ARG for a protocol holding
 *         CR, LF or NUL; TERN_ERR_NOMEM.
 */
int tern_ws_accept(tern_ws_t *ws, tern_time_t now, const char *protocol);

/**
 * Server: answer the request reported by TERN_WS_EV_REQUEST with a plain HTTP response
 * (tern_http_write_response: Content-Length and Connection: close are added, the body is left
 * out for a HEAD request, and a 426 gets "Sec-WebSocket-Version: 13"). The endpoint becomes
 * CLOSED and a CLOSE event (cause HTTP_RESPONSE) follows: write the output, then close.
 * The body is copied into the output whatever max_output_bytes says.
 * @param fields  extra fields ("Content-Type"), borrowed for the call.
 * @return 0; TERN_ERR_INVALID_STATE if not a server waiting for its decision;
 *         TERN_ERR_INVALID_ARG for a bad status or field; TERN_ERR_NOMEM.
 */
int tern_ws_respond(tern_ws_t *ws, tern_time_t now, int status, const tern_http_field_t *fields,
                    size_t num_fields, const void *body, size_t body_len);

/**
 * Send a text message (one frame). The text must be valid UTF-8 (checked).
 * @param data  borrowed; copied into the output.
 * @return 0; TERN_ERR_INVALID_STATE unless OPEN; TERN_ERR_INVALID_ARG if not UTF-8;
 *         TERN_ERR_TOO_LARGE if the frame alone exceeds max_output_bytes; TERN_ERR_AGAIN if it
 *         does not fit in the output now (a slow reader: nothing was queued); TERN_ERR_NOMEM;
 *         TERN_ERR_CRYPTO (client: no masking key from the rng).
 */
int tern_ws_send_text(tern_ws_t *ws, tern_time_t now, const char *data, size_t len);

/** Send a binary message (one frame). Same as tern_ws_send_text without the UTF-8 check. */
int tern_ws_send_binary(tern_ws_t *ws, tern_time_t now, const void *data, size_t len);

/**
 * Send a ping with up to 125 bytes of application data (the keepalive sends its own).
 * @return 0; TERN_ERR_INVALID_STATE unless OPEN; TERN_ERR_INVALID_ARG if len > 125;
 *         TERN_ERR_NOMEM; TERN_ERR_CRYPTO.
 */
int tern_ws_ping(tern_ws_t *ws, tern_time_t now, const void *data, size_t len);

/**
 * Start the close handshake (RFC 6455 §7.1.2): send a close frame and wait (close_timeout_us)
 * for the peer's; the endpoint becomes CLOSING, then CLOSED with a CLOSE event. In
 * CONNECTING (before any WebSocket exists) the endpoint simply ends (cause CLEAN, no frame);
 * in CLOSING or CLOSED this does nothing.
 * @param code    0 for a close frame without a code, else a code tern_ws_close_code_valid.
 * @param reason  UTF-8, at most TERN_WS_MAX_CLOSE_REASON bytes; NULL or "" for none; copied.
 * @return 0; TERN_ERR_INVALID_ARG for a bad code or reason, or a reason without a code;
 *         TERN_ERR_NOMEM; TERN_ERR_CRYPTO.
 */
int tern_ws_close(tern_ws_t *ws, tern_time_t now, uint16_t code, const char *reason);

/** @return the current state. */
tern_ws_state_t tern_ws_state(const tern_ws_t *ws);

/** @return the role given at creation. */
tern_ws_role_t tern_ws_role(const tern_ws_t *ws);

/**
 * The request target: a client's configured one; a server's from the request, once it has
 * arrived (after TERN_WS_EV_REQUEST), kept for the endpoint's life.
 * @return a NUL-terminated string owned by ws; "" before the request.
 */
const char *tern_ws_target(const tern_ws_t *ws);

/** @return the agreed subprotocol, owned by ws; "" if none (or not yet open). */
const char *tern_ws_protocol(const tern_ws_t *ws);

/** Copy the counters into *out. */
void tern_ws_get_stats(const tern_ws_t *ws, tern_ws_stats_t *out);

#endif
