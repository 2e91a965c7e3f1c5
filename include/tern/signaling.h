/* SPDX-License-Identifier: MIT */
/*
 * tern signaling client: joins a room of a tern-signal server (ws://HOST:PORT/ws/ROOM or
 * wss://) and negotiates one peer connection per remote peer of the room, over the tern
 * signaling protocol, version 1 (offers, answers and trickled candidates relayed as JSON).
 *
 * It runs on a tern_loop: it creates each tern_pc_t, adds it to the loop, hands it offers,
 * answers and candidates from the room, sends its local candidates to that peer, and closes
 * and frees it when the peer says `bye` or leaves. The application sees its pcs through its
 * own tern_pc_callbacks_t (every callback is forwarded, on_ice_candidate after the client
 * sent the candidate), and is told about peers through tern_signaling_callbacks_t.
 *
 * Who offers (signaling-protocol.md): with TERN_SIGNALING_ROLE_AUTO, a peer already in the
 * room offers to a newcomer when it sees `join`, and the newcomer answers. ROLE_OFFER also
 * offers to the peers listed in `welcome` and to every newcomer; ROLE_ANSWER never offers.
 * Offers cross when a ROLE_OFFER newcomer offers to a member that offers to it on seeing its
 * `join` (ROLE_AUTO or ROLE_OFFER): the member gives way, dropping its own offer (implicit
 * rollback) and answering, so any two roles that offer at all end up connected.
 *
 * Every callback runs on the loop thread. No callback runs inside a call of this API.
 *
 * Scope (deliberately not supported): no reconnection after the WebSocket closes (the pcs it
 * made stay up; make a new client to rejoin); no ICE restart or renegotiation started by this
 * side (a remote renegotiation offer is answered); no HTTP proxy, redirect or authentication;
 * one room per client.
 */
#ifndef TERN_SIGNALING_H
#define TERN_SIGNALING_H

#include <tern/tern.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_signaling tern_signaling_t;

/** Who sends the offer to a remote peer. */
typedef enum {
    /** The protocol's rule: offer to newcomers, answer the peers already in the room. */
    TERN_SIGNALING_ROLE_AUTO = 0,
    /** Always offer: to the peers in the room when joining, and to every newcomer. */
    TERN_SIGNALING_ROLE_OFFER = 1,
    /** Never offer: wait for each peer's offer. */
    TERN_SIGNALING_ROLE_ANSWER = 2,
} tern_signaling_role_t;

/** What the client tells the application; any may be NULL. All run on the loop thread. */
typedef struct tern_signaling_callbacks {
    /**
     * The server welcomed us (the room is joined): self_id is our id in the room, room its
     * name. The peers already there follow as on_peer_joined calls.
     */
    void (*on_connected)(tern_signaling_t *s, void *user, const char *self_id, const char *room);
    /** A peer is in the room: listed by `welcome`, or announced by `join`. */
    void (*on_peer_joined)(tern_signaling_t *s, void *user, const char *peer_id);
    /**
     * A pc was made for peer_id, before the first offer or answer is created: create its
     * data channels here (tern_pc_create_data_channel). offering is true when this side
     * sends the offer. The pc belongs to the client; do not free it or take it off the loop.
     */
    void (*on_peer_connection)(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc,
                               bool offering);
    /**
     * A peer said `bye` or left the room, or the negotiation with it failed (its offer or
     * answer was refused by the pc: the client then says `bye` to it). pc is its pc, or NULL
     * if none was made; it is closed and freed (with its channels, without further callbacks)
     * when this returns.
     */
    void (*on_peer_left)(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc);
    /**
     * A message of a type the client does not handle itself (not offer, answer, candidate
     * or bye), for custom extensions of the protocol: type is its "type", from its "from"
     * (NULL if absent), json the whole object as received (NUL-terminated). Also the
     * server's `error` messages (type "error"), which the client logs as well.
     */
    void (*on_message)(tern_signaling_t *s, void *user, const char *from, const char *type,
                       const char *json);
    /**
     * The WebSocket is gone, or never came up; the last callback of the signaling
     * connection (the pcs already made stay up and keep calling their callbacks).
     * @param code    the close code the server sent (1000, 1008 room-full, 1009 too-large,
     *                ...); 1005 for a close frame without a code; 1006 when the connection
     *                failed or ended without a close frame (reason says why: "connection
     *                refused", "timed out", "HTTP 400", a TLS error, ...).
     * @param reason  NUL-terminated, borrowed for the call; "" if none.
     */
    void (*on_closed)(tern_signaling_t *s, void *user, int code, const char *reason);
} tern_signaling_callbacks_t;

/** Client configuration. All zero (but the url) means defaults. Copied by tern_signaling_new. */
typedef struct tern_signaling_config {
    /** "ws://HOST[:PORT]/PATH" or "wss://..." (default ports 80 and 443); tern-signal's rooms
     *  are at /ws/ROOM. HOST is a name, an IPv4 address or a bracketed IPv6 address. */
    const char *url;
    tern_signaling_role_t role;
    /**
     * Configuration of every pc made (deep-copied); NULL: defaults. Its ice_servers, if any,
     * replace the `iceServers` the server hands out in `welcome`.
     */
    const tern_pc_config_t *pc_config;
    /** The application's callbacks for every pc (copied); NULL: none. */
    const tern_pc_callbacks_t *pc_callbacks;
    /** Passed as `user` to every pc callback; tern_signaling_peer_id(s, pc) names the peer. */
    void *pc_user;
    /** Time allowed from tern_signaling_new to `welcome` (resolution, TCP, TLS, upgrade);
     *  0: 10 s. */
    uint32_t connect_timeout_ms;
    /** wss: PEM file of the certificates to trust; NULL: the system's. */
    const char *tls_ca_file;
    /** wss: do not verify the server's certificate (self-signed test servers). */
    bool tls_insecure;
    /** Most peers with a pc at once (more offers are refused and logged); 0: 64. */
    uint16_t max_peers;
} tern_signaling_config_t;

/**
 * Start joining a room: resolve the host (on a helper thread when it is a name), connect,
 * upgrade to WebSocket. Progress is reported by the callbacks, from the next loop iteration.
 * @param loop  borrowed; must outlive the client. Its context makes the pcs.
 * @param cfg   copied, with everything it points to.
 * @param cbs   copied; may be NULL.
 * @param user  passed to every tern_signaling_callbacks_t callback.
 * @param out   receives the client, freed with tern_signaling_free.
 * @return 0; TERN_ERR_INVALID_ARG for a NULL argument or a URL that is not ws:// or wss://
 *         with a host (see tern_signaling_last_error); TERN_ERR_CRYPTO if the TLS
 *         configuration cannot be made (a bad tls_ca_file); TERN_ERR_IO if the connection
 *         cannot even be started; TERN_ERR_NOMEM. On error nothing is left behind.
 */
TERN_EXPORT int tern_signaling_new(tern_loop_t *loop, const tern_signaling_config_t *cfg,
                                   const tern_signaling_callbacks_t *cbs, void *user,
                                   tern_signaling_t **out);

/**
 * Leave the room and free the client: say `bye` to every peer and send a WebSocket close as
 * far as the socket takes them without waiting, then close and free every pc it made (with
 * their channels; no callback runs). Safe from any callback of the client or of its pcs (the
 * freeing then completes when that callback returns). Must come before tern_loop_free.
 * NULL is a no-op.
 */
TERN_EXPORT void tern_signaling_free(tern_signaling_t *s);

/**
 * Leave the room gracefully: say `bye` to every peer, close and free their pcs (no
 * on_peer_left for them), and start the WebSocket close handshake; on_closed follows when it
 * ends (at most a few seconds later). Doing it twice, or after on_closed, does nothing.
 * @return 0.
 */
TERN_EXPORT int tern_signaling_close(tern_signaling_t *s);

/**
 * Hang up on one peer: send it `bye`, then close and free its pc (no on_peer_left for it).
 * The peer stays in the room; a new offer from it makes a new pc.
 * @return 0; TERN_ERR_NOT_FOUND if that peer has no pc; TERN_ERR_INVALID_ARG for NULL.
 */
TERN_EXPORT int tern_signaling_hang_up(tern_signaling_t *s, const char *peer_id);

/**
 * Send a message of the application's own to one peer or to the whole room.
 * @param to    a peer id; NULL: every other peer of the room.
 * @param json  a JSON object with a string "type" (its "to" and "from", if any, are
 *              replaced); borrowed.
 * @return 0; TERN_ERR_INVALID_STATE before on_connected or after the connection closed;
 *         TERN_ERR_PARSE if json is not such an object; TERN_ERR_AGAIN if the connection's
 *         output buffer is full (a stalled server); TERN_ERR_TOO_LARGE past the server's
 *         message limit (64 KiB); TERN_ERR_NOMEM.
 */
TERN_EXPORT int tern_signaling_send(tern_signaling_t *s, const char *to, const char *json);

/** @return our id in the room (owned by the client), or NULL before on_connected. */
TERN_EXPORT const char *tern_signaling_self_id(const tern_signaling_t *s);

/** @return the id of the peer a pc of this client talks to (owned by the client, valid while
 *          the pc is), or NULL if the pc is not one of this client's. */
TERN_EXPORT const char *tern_signaling_peer_id(const tern_signaling_t *s, const tern_pc_t *pc);

/** @return the pc of a peer, or NULL if it has none. */
TERN_EXPORT tern_pc_t *tern_signaling_pc(const tern_signaling_t *s, const char *peer_id);

/** @return how many peers have a pc of this client. */
TERN_EXPORT size_t tern_signaling_peer_count(const tern_signaling_t *s);

/** @return a human-readable reason of the client's last failure ("" if none). */
TERN_EXPORT const char *tern_signaling_last_error(const tern_signaling_t *s);

#ifdef __cplusplus
}
#endif

#endif /* TERN_SIGNALING_H */
