/* SPDX-License-Identifier: MIT */
/*
 * The signaling client's private structures, shared by its connection half
 * (signal_client.c: URL, resolution, TCP/TLS, the WebSocket, timers, lifetime) and its
 * negotiation half (signal_client_peers.c: the protocol's messages, one pc per remote peer,
 * offers, answers, candidates, bye and leave).
 *
 * Unlike the rest of src/ws/ this is not sans-IO: it drives a tern_loop through the io layer's
 * stream helpers (io/io_stream.h) and resolver (io/io_resolve.h), and makes no syscall itself.
 */
#ifndef TERN_IO_IO_SIGNAL_CLIENT_H
#define TERN_IO_IO_SIGNAL_CLIENT_H

#include "tern/signaling.h"
#include "io/io_resolve.h"
#include "io/io_stream.h"
#include "util/util.h"
#include "ws/ws.h"

#include <jansson.h>

/* Limits (tern's choices). */
#define TERN_SIG_MAX_ID 128         /* longest peer id, room name or self id taken */
#define TERN_SIG_MAX_ICE_SERVERS 16 /* URLs kept from welcome's iceServers */
#define TERN_SIG_MAX_MESSAGE 65536  /* the server's default message limit */
#define TERN_SIG_DEFAULT_MAX_PEERS 64
#define TERN_SIG_DEFAULT_CONNECT_MS 10000

typedef enum {
    TERN_SIG_RESOLVING,  /* waiting for the helper thread's addresses */
    TERN_SIG_CONNECTING, /* TCP connect in progress */
    TERN_SIG_HANDSHAKE,  /* TLS and the HTTP upgrade */
    TERN_SIG_JOINING,    /* WebSocket open, waiting for welcome */
    TERN_SIG_JOINED,     /* in the room */
    TERN_SIG_CLOSING,    /* our close frame is out */
    TERN_SIG_CLOSED,     /* nothing left of the connection */
} tern_sig_state_t;

typedef struct tern_sig_peer tern_sig_peer_t;

/* One remote peer that has a pc. */
struct tern_sig_peer {
    tern_signaling_t *s;
    char *id;
    tern_pc_t *pc;
    bool dead;             /* hung up: off the loop, freed once no callback of ours runs */
    bool insists;          /* we offered from welcome: our offer stands when offers cross */
    tern_sig_peer_t *next; /* s->peers, or s->dead_peers once dead */
};

struct tern_signaling {
    /* configuration */
    tern_loop_t *loop;
    tern_ctx_t *ctx;
    uint32_t id; /* short id for log lines */
    tern_signaling_callbacks_t cbs;
    void *user;
    tern_pc_callbacks_t app_pc_cbs;
    void *pc_user;
    tern_signaling_role_t role;
    bool secure;    /* wss */
    char *host;     /* as in the URL, without brackets */
    char *host_hdr; /* Host header: host, bracketed if IPv6, with a non-default port */
    char *target;   /* path and query */
    uint16_t port;
    uint32_t connect_timeout_ms;
    uint16_t max_peers;
    tern_pc_config_t pc_cfg;    /* deep copy; ice servers per the rules below */
    tern_ice_server_t *own_ice; /* the application's ice servers (copied), or NULL */
    size_t own_ice_count;
    char **bind_addrs;
    tern_io_tls_t *tls;

    /* state */
    tern_sig_state_t state;
    tern_io_resolve_t *resolve;
    tern_addr_t addrs[TERN_IO_RESOLVE_MAX];
    size_t addr_count, addr_next;
    tern_io_stream_t stream;
    bool stream_open;
    tern_fd_watch_t *watch;
    unsigned watch_events;
    tern_ws_t *ws;
    tern_timer_t *connect_timer;
    tern_timer_t *ws_timer;
    tern_time_t ws_timer_at;
    tern_timer_t *report_timer; /* delivers on_closed outside the call that closed */
    int closed_code;
    char closed_reason[200];
    char *self_id;
    char *room;
    tern_ice_server_t room_ice[TERN_SIG_MAX_ICE_SERVERS]; /* from welcome, strings owned */
    size_t room_ice_count;
    tern_sig_peer_t *peers;
    tern_sig_peer_t *dead_peers;
    int depth;         /* nesting of our entry points (fd, timers, pc callbacks) */
    bool free_pending; /* tern_signaling_free was called inside one of them */
    char last_error[232];
    uint8_t rbuf[16384];
};

/* signal_client.c: the connection, for the negotiation half. */

/* Enter and leave one of our entry points; leaving the outermost one completes a deferred
 * free and frees the peers that died meanwhile. */
void tern_sig_enter(tern_signaling_t *s);
void tern_sig_leave(tern_signaling_t *s);

/* Send one JSON object as a text message. 0; the tern_ws_send_text errors;
 * TERN_ERR_INVALID_STATE if not in the room; TERN_ERR_TOO_LARGE; TERN_ERR_NOMEM. */
int tern_sig_send_json(tern_signaling_t *s, json_t *obj);

/* Write the WebSocket's output to the socket and re-arm its timer, without taking events (so
 * without calling back: for API calls and pc callbacks, after a send). */
void tern_sig_flush(tern_signaling_t *s);

/* Take the endpoint's events (messages, close), then flush (loop entry points only). */
void tern_sig_pump(tern_signaling_t *s);

/* Record the reason of a failure for tern_signaling_last_error. */
void tern_sig_set_error(tern_signaling_t *s, const char *fmt, ...) TERN_PRINTF(2, 3);

/* signal_client_peers.c: the protocol, for the connection half. */

/* Handle one text message from the server (not NUL-terminated). */
void tern_sig_handle_message(tern_signaling_t *s, const uint8_t *data, size_t len);

/* Take a peer off the loop and close its pc; freed now, or when no callback of ours runs. */
void tern_sig_peer_kill(tern_signaling_t *s, tern_sig_peer_t *p);

/* Free the dead peers (depth 0 only). */
void tern_sig_peers_reap(tern_signaling_t *s);

/* Kill every peer (leaving the room); with bye, one `bye` to the room goes first. */
void tern_sig_peers_kill_all(tern_signaling_t *s, bool bye);

/* Free the ice servers welcome gave. */
void tern_sig_room_ice_clear(tern_signaling_t *s);

#endif
