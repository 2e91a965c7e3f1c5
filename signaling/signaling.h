/* SPDX-License-Identifier: MIT */
/*
 * tern-signal's internal API: the signaling server of the project's signaling-protocol.md
 * (version 1) on a tern_loop. Parts:
 * - signal_msg.c: the client message validator (bad-json / to / type) and the builders of the
 *   server's messages (welcome, join, leave, error), with jansson;
 * - signal_map.c: keyed hashing (SipHash-2-4 with a random key, so room names and ids chosen
 *   by clients cannot flood one bucket) and an intrusive string-keyed hash table;
 * - signal_stun.c: the embedded STUN Binding responder (RFC 8489), pure;
 * - signal_http.c: plain HTTP routes: /healthz, static files under --root, room names;
 * - signal_server.c: listeners, clients, rooms, relay, limits, timers, shutdown;
 * - signal_main.c: the command line, signals, the loop.
 *
 * Scope: one thread; HTTP/1.1 with one request per connection (no keep-alive); no
 * permessage-deflate; no per-IP connection limits; static files are read whole, up to
 * TERN_SIGNAL_MAX_FILE_BYTES. A message over max_message_bytes gets the error too-large, then
 * 1009; one over twice that is cut off by the WebSocket layer, with 1009 and no error message
 * (it is never buffered whole).
 */
#ifndef TERN_SIGNALING_SIGNAL_H
#define TERN_SIGNALING_SIGNAL_H

#include "tern/tern.h"
#include "util/util.h"

#include <jansson.h>

/* ---- limits and defaults (signaling-protocol.md "Errors and limits") ---- */

#define TERN_SIGNAL_DEFAULT_MAX_MESSAGE_BYTES 65536
#define TERN_SIGNAL_DEFAULT_RATE 100 /* messages per second; the burst is twice this */
#define TERN_SIGNAL_DEFAULT_MAX_ROOM_PEERS 16
#define TERN_SIGNAL_DEFAULT_UPGRADE_TIMEOUT_MS 10000
#define TERN_SIGNAL_DEFAULT_PING_INTERVAL_MS 10000
#define TERN_SIGNAL_DEFAULT_PONG_TIMEOUT_MS 30000
#define TERN_SIGNAL_DEFAULT_MAX_OUTPUT_BYTES (256 * 1024)
#define TERN_SIGNAL_DEFAULT_STUN_PORT 3478 /* RFC 8489 §13 */
#define TERN_SIGNAL_MAX_ROOM_LEN 64
#define TERN_SIGNAL_MAX_ID_LEN 16
#define TERN_SIGNAL_MAX_FILE_BYTES (16 * 1024 * 1024)
#define TERN_SIGNAL_MAX_ICE_SERVERS 16

/* ---- client messages (signal_msg.c) ---- */

/* The verdict on one text frame from a client. */
typedef enum {
    TERN_SIGNAL_MSG_OK = 0,
    /* Not a JSON object with a string "type" (also: invalid JSON, duplicate keys, an integer
     * outside int64): error bad-json. */
    TERN_SIGNAL_MSG_BAD_JSON,
} tern_signal_verdict_t;

/* A parsed client message. */
typedef struct tern_signal_msg {
    json_t *root;     /* the object, owned; NULL unless OK */
    const char *type; /* borrowed from root */
    /* "to": absent (has_to false), or present; to is NULL when it is not a string (which
     * names no peer: error unknown-peer). */
    bool has_to;
    const char *to;
    size_t to_len;
} tern_signal_msg_t;

/*
 * Judge a text frame (UTF-8, not NUL-terminated; the WebSocket layer checked the encoding).
 * On OK, out holds the object; release it with tern_signal_msg_dispose.
 */
tern_signal_verdict_t tern_signal_msg_parse(const char *text, size_t len, tern_signal_msg_t *out);

/*
 * The text to forward: the object without "to" and with "from" set to from (a "from" the
 * client wrote is overwritten in place; otherwise it is added last). Compact JSON; key order
 * kept; reals written so they read back the same.
 * Returns a NUL-terminated string to release with free(), and its length; NULL on NOMEM.
 */
char *tern_signal_msg_relay(tern_signal_msg_t *m, const char *from, size_t *len);

/* Release the parsed object (a zeroed msg is fine). */
void tern_signal_msg_dispose(tern_signal_msg_t *m);

/* Server messages, as compact JSON text to release with free(); NULL on NOMEM. */
char *tern_signal_msg_welcome(const char *id, const char *room, const char *const *peers,
                              size_t peer_count, json_t *ice_servers, size_t *len);
char *tern_signal_msg_join(const char *id, size_t *len);
char *tern_signal_msg_leave(const char *id, size_t *len);
char *tern_signal_msg_error(const char *code, const char *message, size_t *len);

/*
 * Turn an --ice-server URL into a W3C RTCIceServer object, added to the array `servers`:
 *   SCHEME:[USERNAME:CREDENTIAL@]HOST[:PORT][?QUERY]   SCHEME is stun, stuns, turn or turns;
 * a ':' or '@' inside USERNAME or CREDENTIAL is written %3A / %40 (and '%' as %25).
 * {"urls":"SCHEME:HOST[:PORT][?QUERY]","username":...,"credential":...}.
 * Returns 0; TERN_ERR_PARSE with a reason in error (cap bytes); TERN_ERR_NOMEM.
 */
int tern_signal_ice_server_add(json_t *servers, const char *url, char *error, size_t cap);

/* ---- hashing and tables (signal_map.c) ---- */

/* SipHash-2-4 of data under a 128-bit key. */
uint64_t tern_signal_siphash(const uint8_t key[16], const void *data, size_t len);

/* A table entry, embedded in what it indexes; the key is borrowed from the owner. */
typedef struct tern_signal_entry {
    const char *key;
    size_t key_len;
    uint64_t hash;
    struct tern_signal_entry *next;
} tern_signal_entry_t;

typedef struct tern_signal_table {
    tern_ctx_t *ctx;
    uint8_t key[16];
    tern_signal_entry_t **buckets;
    size_t cap; /* a power of two, or 0 */
    size_t count;
} tern_signal_table_t;

/* Start empty, with a hashing key from the ctx rng. 0; TERN_ERR_CRYPTO. */
int tern_signal_table_init(tern_signal_table_t *t, tern_ctx_t *ctx);
void tern_signal_table_dispose(tern_signal_table_t *t);
/* The entry with this key, or NULL. */
tern_signal_entry_t *tern_signal_table_get(const tern_signal_table_t *t, const char *key,
                                           size_t key_len);
/* Insert (e->key and e->key_len set, the key absent). 0; TERN_ERR_NOMEM (not inserted). */
int tern_signal_table_put(tern_signal_table_t *t, tern_signal_entry_t *e);
/* Remove an entry that is in the table. */
void tern_signal_table_remove(tern_signal_table_t *t, tern_signal_entry_t *e);

/* ---- STUN Binding responder (signal_stun.c) ---- */

/*
 * Answer one datagram that arrived from `from` (RFC 8489 §6.3): a Binding request gets a
 * success response with XOR-MAPPED-ADDRESS, SOFTWARE and FINGERPRINT; a request with unknown
 * comprehension-required attributes a 420 with UNKNOWN-ATTRIBUTES; a request of another method
 * a 400. Anything else (not STUN, a bad FINGERPRINT, indications, responses) gets nothing.
 * Returns the response length written to out (cap bytes), or 0 for no answer.
 */
size_t tern_signal_stun_answer(tern_ctx_t *ctx, const uint8_t *in, size_t len,
                               const tern_addr_t *from, uint8_t *out, size_t cap);

/* ---- HTTP routes (signal_http.c) ---- */

/* Whether a room name is valid: 1 to 64 of [A-Za-z0-9_.-]. */
bool tern_signal_room_valid(const char *name, size_t len);

/* The room of a request path "/ws/ROOM": sets *room and *room_len and returns true when the
 * path starts with "/ws/" (the name still needs tern_signal_room_valid); false otherwise. */
bool tern_signal_ws_path(const char *path, size_t len, const char **room, size_t *room_len);

/* A response to a plain HTTP request: status, content type and body (owned, tern_free). */
typedef struct tern_signal_reply {
    int status;
    const char *content_type; /* static */
    char *body;
    size_t body_len;
} tern_signal_reply_t;

/*
 * Answer a GET or HEAD of `path` (not NUL-terminated, percent-encoded) from the files under
 * root_fd (-1: no static files): "/" is index.html, a directory serves its index.html,
 * "..", ".", dot-files, files over TERN_SIGNAL_MAX_FILE_BYTES, anything but regular files and
 * anything leaving the root (symbolic links included) are 404. The caller checks the method.
 * Returns 0; TERN_ERR_NOMEM.
 */
int tern_signal_http_file(tern_ctx_t *ctx, int root_fd, const char *path, size_t len,
                          tern_signal_reply_t *out);

/* ---- the server (signal_server.c) ---- */

typedef struct tern_signal_config {
    tern_addr_t listen;   /* TCP address for HTTP and WebSocket */
    bool stun_enabled;    /* answer STUN on UDP */
    uint16_t stun_port;   /* on the listen address's IP; 0: ephemeral */
    const char *root;     /* static files; NULL: none */
    const char *tls_cert; /* PEM files; both set: wss:// and https:// only */
    const char *tls_key;
    json_t *ice_servers;      /* array handed out in welcome; borrowed (a reference is taken) */
    size_t max_room_peers;    /* 0: default */
    size_t max_message_bytes; /* 0: default */
    uint32_t rate_per_s;      /* 0: default; the burst is twice this */
    size_t max_output_bytes;  /* per client, before it is dropped as a slow reader; 0: default */
    uint32_t upgrade_timeout_ms;
    uint32_t ping_interval_ms;
    uint32_t pong_timeout_ms;
} tern_signal_config_t;

typedef struct tern_signal_server tern_signal_server_t;

/*
 * Start a server on a loop: bind the listener (and the STUN socket), load TLS and open the
 * root. Logs why it failed into error (cap bytes).
 * Returns 0; TERN_ERR_IO (bind, root); TERN_ERR_CRYPTO (certificate); TERN_ERR_NOMEM.
 */
int tern_signal_server_new(tern_loop_t *loop, tern_ctx_t *ctx, const tern_signal_config_t *cfg,
                           tern_signal_server_t **out, char *error, size_t cap);

/* The bound TCP address and STUN address (family 0 when STUN is off). */
void tern_signal_server_addrs(const tern_signal_server_t *s, tern_addr_t *tcp, tern_addr_t *stun);

/*
 * Begin a clean stop: close the listener, send every client a close frame (1001), and call
 * done(arg) once every connection has ended (or after a second at most).
 */
void tern_signal_server_shutdown(tern_signal_server_t *s, void (*done)(void *arg), void *arg);

/* Free the server and every connection (closing them at once). NULL is a no-op. */
void tern_signal_server_free(tern_signal_server_t *s);

/* ---- detached: the server without a loop or sockets (fuzz/fuzz_signal_server.c) ----
 * The same connection code (HTTP, upgrade, rooms, relay, every limit and timer, closing) with
 * the socket edges handed to the caller: it opens connections, feeds their bytes and runs the
 * timers with its own `now` (which never goes back); what the server writes goes to the sink.
 * No listener, no STUN, no static files (404), no TLS. Calls other than these and
 * tern_signal_server_shutdown/_free return TERN_ERR_INVALID_STATE on a loop's server. */

typedef struct tern_signal_sink {
    /* Take up to len bytes written to connection `conn`: return how many (0: the socket would
     * block, retry on tern_signal_server_writable; negative: the socket failed, the
     * connection is dropped). NULL: everything is taken. */
    long (*write)(void *user, uint32_t conn, const uint8_t *data, size_t len);
    void *user;
} tern_signal_sink_t;

/* A detached server. sink is copied (may be NULL). 0; TERN_ERR_CRYPTO; TERN_ERR_NOMEM. */
int tern_signal_server_new_detached(tern_ctx_t *ctx, const tern_signal_config_t *cfg,
                                    const tern_signal_sink_t *sink, tern_time_t now,
                                    tern_signal_server_t **out);
/* A connection from `remote` was accepted; *conn receives its serial. 0; TERN_ERR_NOMEM. */
int tern_signal_server_open(tern_signal_server_t *s, tern_time_t now, const tern_addr_t *remote,
                            uint32_t *conn);
/* Bytes from the peer of `conn`; len 0: the peer closed its side. 0; TERN_ERR_NOT_FOUND if the
 * connection is gone (the server dropped or finished it). */
int tern_signal_server_input(tern_signal_server_t *s, tern_time_t now, uint32_t conn,
                             const uint8_t *data, size_t len);
/* The socket of `conn` can take more: write what waits. 0; TERN_ERR_NOT_FOUND. */
int tern_signal_server_writable(tern_signal_server_t *s, tern_time_t now, uint32_t conn);
/* Run the timers that are due (upgrade, ping, pong and linger timeouts). 0. */
int tern_signal_server_handle_timeout(tern_signal_server_t *s, tern_time_t now);
/* When the next timer is due; TERN_TIME_NEVER if none. It may be early (see the file comment of
 * signal_server.c): calling handle_timeout then just finds nothing to do. */
tern_time_t tern_signal_server_next_deadline(const tern_signal_server_t *s);
/* Connections alive, peers in rooms, rooms (what /healthz counts, and connections). */
void tern_signal_server_counts(const tern_signal_server_t *s, size_t *conns, size_t *peers,
                               size_t *rooms);

#endif
