/* SPDX-License-Identifier: MIT */
/*
 * The signaling client's negotiation (include/tern/signaling.h, signaling-protocol.md v1):
 * welcome, join, leave and error from the server; offer, answer, candidate and bye from the
 * peers. One pc per remote peer, made when this side offers (a newcomer's `join`, or the peers
 * of `welcome` for ROLE_OFFER) or when a peer's first offer arrives. Each pc is driven by the
 * loop with the client's callbacks, which send local candidates to the peer and forward every
 * event to the application's own callbacks. Crossing offers are resolved as the W3C "perfect
 * negotiation" pattern does: the polite side applies the remote offer (implicit rollback of
 * its own) and answers, the impolite side ignores it.
 *
 * Everything from the server is untrusted: a message that is not a JSON object with the
 * fields its type needs is dropped and logged at debug level.
 */
#include "io/io_signal_client.h"

#include <string.h>

#define MODULE "signal"

static tern_time_t now_of(const tern_signaling_t *s)
{
    return tern_loop_now(s->loop);
}

/* A string field, or NULL if absent or not a string. */
static const char *get_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* Ids are the server's, but still input: printable ASCII only, so that they are safe in log
 * lines and in what the examples print. */
static bool id_ok(const char *id)
{
    if (!id || !id[0])
        return false;
    size_t n = 0;
    for (; id[n]; n++)
        if ((unsigned char)id[n] <= 0x20 || (unsigned char)id[n] >= 0x7f || n >= TERN_SIG_MAX_ID)
            return false;
    return true;
}

/* ---- peers ---- */

static tern_sig_peer_t *peer_find(const tern_signaling_t *s, const char *id)
{
    for (tern_sig_peer_t *p = s->peers; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    return NULL;
}

static size_t peer_count(const tern_signaling_t *s)
{
    size_t n = 0;
    for (const tern_sig_peer_t *p = s->peers; p; p = p->next)
        n++;
    return n;
}

static void peer_free(tern_signaling_t *s, tern_sig_peer_t *p)
{
    tern_pc_free(p->pc);
    tern_free(s->ctx, p->id);
    tern_free(s->ctx, p);
}

void tern_sig_peers_reap(tern_signaling_t *s)
{
    while (s->dead_peers) {
        tern_sig_peer_t *p = s->dead_peers;
        s->dead_peers = p->next;
        peer_free(s, p);
    }
}

void tern_sig_peer_kill(tern_signaling_t *s, tern_sig_peer_t *p)
{
    for (tern_sig_peer_t **pp = &s->peers; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u peer %s closed", s->id, p->id);
    p->dead = true;
    if (p->pc) {
        /* Close first: the loop sends the close_notify it queues as it lets the pc go. */
        tern_pc_close(p->pc, now_of(s));
        tern_loop_remove_pc(s->loop, p->pc);
    }
    p->next = s->dead_peers;
    s->dead_peers = p;
    if (s->depth == 0)
        tern_sig_peers_reap(s);
}

void tern_sig_peers_kill_all(tern_signaling_t *s, bool bye)
{
    if (bye && s->peers) {
        json_t *msg = json_pack("{s:s}", "type", "bye");
        if (msg)
            tern_sig_send_json(s, msg);
        json_decref(msg);
    }
    while (s->peers)
        tern_sig_peer_kill(s, s->peers);
}

/* ---- the pc callbacks: ours, forwarding to the application's ---- */

static void on_ice_candidate(tern_pc_t *pc, void *user, const char *candidate, const char *mid,
                             int mline_index)
{
    tern_sig_peer_t *p = user;
    tern_signaling_t *s = p->s;
    tern_sig_enter(s);
    /* RTCIceCandidateInit, as browsers send it; "" is the end of candidates. */
    json_t *msg = json_pack("{s:s, s:s, s:s?, s:i, s:s}", "type", "candidate", "candidate",
                            candidate ? candidate : "", "sdpMid", mid, "sdpMLineIndex", mline_index,
                            "to", p->id);
    if (msg && tern_sig_send_json(s, msg) == TERN_OK)
        tern_sig_flush(s);
    json_decref(msg);
    if (!s->free_pending && s->app_pc_cbs.on_ice_candidate)
        s->app_pc_cbs.on_ice_candidate(pc, s->pc_user, candidate, mid, mline_index);
    tern_sig_leave(s);
}

/* The rest only forward (the peer may be hung up inside: nothing touches it afterwards). */
#define FORWARD_PC(name, ...)                                                                      \
    do {                                                                                           \
        tern_signaling_t *s_ = ((tern_sig_peer_t *)user)->s;                                       \
        tern_sig_enter(s_);                                                                        \
        if (!s_->free_pending && s_->app_pc_cbs.name)                                              \
            s_->app_pc_cbs.name(__VA_ARGS__);                                                      \
        tern_sig_leave(s_);                                                                        \
    } while (0)

#define S_PC_USER (((tern_sig_peer_t *)user)->s->pc_user)

static void on_ice_gathering_state(tern_pc_t *pc, void *user, tern_ice_gathering_state_t st)
{
    FORWARD_PC(on_ice_gathering_state, pc, S_PC_USER, st);
}

static void on_ice_connection_state(tern_pc_t *pc, void *user, tern_ice_state_t st)
{
    FORWARD_PC(on_ice_connection_state, pc, S_PC_USER, st);
}

static void on_connection_state(tern_pc_t *pc, void *user, tern_pc_state_t st)
{
    tern_sig_peer_t *p = user;
    TERN_LOG_DEBUG(p->s->ctx, MODULE, "signal %u peer %s %s", p->s->id, p->id,
                   tern_pc_state_name(st));
    FORWARD_PC(on_connection_state, pc, S_PC_USER, st);
}

static void on_signaling_state(tern_pc_t *pc, void *user, tern_signaling_state_t st)
{
    FORWARD_PC(on_signaling_state, pc, S_PC_USER, st);
}

static void on_negotiation_needed(tern_pc_t *pc, void *user)
{
    FORWARD_PC(on_negotiation_needed, pc, S_PC_USER);
}

static void on_data_channel(tern_pc_t *pc, void *user, tern_dc_t *dc)
{
    FORWARD_PC(on_data_channel, pc, S_PC_USER, dc);
}

static void on_open(tern_dc_t *dc, void *user)
{
    FORWARD_PC(on_open, dc, S_PC_USER);
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    FORWARD_PC(on_message, dc, S_PC_USER, data, len, is_text);
}

static void on_buffered_amount_low(tern_dc_t *dc, void *user)
{
    FORWARD_PC(on_buffered_amount_low, dc, S_PC_USER);
}

static void on_closing(tern_dc_t *dc, void *user)
{
    FORWARD_PC(on_closing, dc, S_PC_USER);
}

static void on_close(tern_dc_t *dc, void *user)
{
    FORWARD_PC(on_close, dc, S_PC_USER);
}

static void on_error(tern_dc_t *dc, void *user, int code, const char *reason)
{
    FORWARD_PC(on_error, dc, S_PC_USER, code, reason);
}

static const tern_pc_callbacks_t forward_cbs = {
    .on_ice_candidate = on_ice_candidate,
    .on_ice_gathering_state = on_ice_gathering_state,
    .on_ice_connection_state = on_ice_connection_state,
    .on_connection_state = on_connection_state,
    .on_signaling_state = on_signaling_state,
    .on_negotiation_needed = on_negotiation_needed,
    .on_data_channel = on_data_channel,
    .on_open = on_open,
    .on_message = on_message,
    .on_buffered_amount_low = on_buffered_amount_low,
    .on_closing = on_closing,
    .on_close = on_close,
    .on_error = on_error,
};

/* ---- making a pc ---- */

static int new_pc(tern_signaling_t *s, tern_pc_t **out)
{
    tern_pc_config_t cfg = s->pc_cfg;
    /* The application's ICE servers win over the room's (signaling.h). */
    if (s->own_ice_count) {
        cfg.ice_servers = s->own_ice;
        cfg.ice_server_count = s->own_ice_count;
    } else {
        cfg.ice_servers = s->room_ice;
        cfg.ice_server_count = s->room_ice_count;
    }
    int err = tern_pc_new(s->ctx, &cfg, now_of(s), out);
    if (err == TERN_ERR_INVALID_ARG && !s->own_ice_count && s->room_ice_count) {
        TERN_LOG_WARN(s->ctx, MODULE,
                      "signal %u the room's ICE servers are refused; going on "
                      "without them",
                      s->id);
        cfg.ice_servers = NULL;
        cfg.ice_server_count = 0;
        err = tern_pc_new(s->ctx, &cfg, now_of(s), out);
    }
    return err;
}

/*
 * Make the peer's pc, put it on the loop and let the application set it up. Returns the peer,
 * or NULL if it could not be made or the application hung up on it in its callback.
 */
static tern_sig_peer_t *peer_make(tern_signaling_t *s, const char *id, bool offering)
{
    if (peer_count(s) >= s->max_peers) {
        TERN_LOG_WARN(s->ctx, MODULE, "signal %u peer %s refused: %u peers already", s->id, id,
                      (unsigned)s->max_peers);
        return NULL;
    }
    tern_sig_peer_t *p = tern_calloc(s->ctx, 1, sizeof *p);
    if (!p)
        return NULL;
    p->s = s;
    p->id = tern_strdup(s->ctx, id);
    int err = p->id ? new_pc(s, &p->pc) : TERN_ERR_NOMEM;
    if (!err) {
        err = tern_loop_add_pc(s->loop, p->pc, &forward_cbs, p);
        if (err) {
            tern_pc_free(p->pc);
            p->pc = NULL;
        }
    }
    if (err) {
        tern_sig_set_error(s, "no pc for peer %s: %s", id, tern_strerror(err));
        TERN_LOG_WARN(s->ctx, MODULE, "signal %u %s", s->id, s->last_error);
        tern_free(s->ctx, p->id);
        tern_free(s->ctx, p);
        return NULL;
    }
    p->next = s->peers;
    s->peers = p;
    TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u peer %s: pc made (%s)", s->id, id,
                   offering ? "offering" : "answering");
    if (s->cbs.on_peer_connection)
        s->cbs.on_peer_connection(s, s->user, p->id, p->pc, offering);
    return p->dead || s->free_pending ? NULL : p;
}

/* Tell the peer we give up on it and forget it (a negotiation step that failed). */
static void peer_abandon(tern_signaling_t *s, tern_sig_peer_t *p, const char *what, int err)
{
    tern_sig_set_error(s, "peer %s: %s: %s (%s)", p->id, what, tern_strerror(err),
                       tern_pc_last_error(p->pc));
    TERN_LOG_WARN(s->ctx, MODULE, "signal %u %s", s->id, s->last_error);
    json_t *msg = json_pack("{s:s, s:s}", "type", "bye", "to", p->id);
    if (msg)
        tern_sig_send_json(s, msg);
    json_decref(msg);
    if (s->cbs.on_peer_left && !s->free_pending)
        s->cbs.on_peer_left(s, s->user, p->id, p->pc);
    if (!p->dead)
        tern_sig_peer_kill(s, p);
}

/* Create a description, apply it, send it. */
static int send_description(tern_signaling_t *s, tern_sig_peer_t *p, tern_sdp_type_t type)
{
    char *sdp = NULL;
    tern_time_t now = now_of(s);
    int err = type == TERN_SDP_OFFER ? tern_pc_create_offer(p->pc, now, &sdp)
                                     : tern_pc_create_answer(p->pc, now, &sdp);
    if (!err)
        err = tern_pc_set_local_description(p->pc, now, type, sdp);
    if (!err) {
        json_t *msg =
            json_pack("{s:s, s:s, s:s}", "type", tern_sdp_type_name(type), "sdp", sdp, "to", p->id);
        err = msg ? tern_sig_send_json(s, msg) : TERN_ERR_NOMEM;
        json_decref(msg);
    }
    tern_free(s->ctx, sdp);
    return err;
}

/* Offer to a peer; from_welcome: we are the newcomer (see handle_offer for why it matters). */
static void offer_to(tern_signaling_t *s, const char *id, bool from_welcome)
{
    if (!id_ok(id) || (s->self_id && strcmp(id, s->self_id) == 0) || peer_find(s, id))
        return;
    tern_sig_peer_t *p = peer_make(s, id, true);
    if (!p)
        return;
    p->insists = from_welcome;
    int err = send_description(s, p, TERN_SDP_OFFER);
    if (err)
        peer_abandon(s, p, "offer", err);
    else
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u offer sent to %s", s->id, id);
}

/* ---- server messages ---- */

static void add_room_ice_server(tern_signaling_t *s, const char *url, const char *username,
                                const char *credential)
{
    static const char *const schemes[] = {"stun:", "stuns:", "turn:", "turns:"};
    bool known = false;
    for (size_t i = 0; i < TERN_ARRAY_LEN(schemes) && url; i++)
        known = known || strncmp(url, schemes[i], strlen(schemes[i])) == 0;
    if (!known || s->room_ice_count >= TERN_SIG_MAX_ICE_SERVERS) {
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u ice server skipped", s->id);
        return;
    }
    tern_ice_server_t *d = &s->room_ice[s->room_ice_count];
    d->url = tern_strdup(s->ctx, url);
    d->username = tern_strdup(s->ctx, username);
    d->credential = tern_strdup(s->ctx, credential);
    if (!d->url || (username && !d->username) || (credential && !d->credential)) {
        tern_free(s->ctx, (char *)d->url);
        tern_free(s->ctx, (char *)d->username);
        tern_free(s->ctx, (char *)d->credential);
        *d = (tern_ice_server_t){0};
        return;
    }
    s->room_ice_count++;
}

/* W3C RTCIceServer: {"urls": "url" or ["url", ...], "username"?, "credential"?}. */
static void take_ice_servers(tern_signaling_t *s, json_t *list)
{
    tern_sig_room_ice_clear(s);
    size_t i;
    json_t *server;
    if (!json_is_array(list))
        return;
    json_array_foreach(list, i, server)
    {
        json_t *urls = json_object_get(server, "urls");
        if (!urls)
            urls = json_object_get(server, "url"); /* the older, singular spelling */
        const char *user = get_str(server, "username");
        const char *cred = get_str(server, "credential");
        if (json_is_string(urls)) {
            add_room_ice_server(s, json_string_value(urls), user, cred);
        } else if (json_is_array(urls)) {
            size_t j;
            json_t *url;
            json_array_foreach(urls, j, url)
            {
                add_room_ice_server(s, json_string_value(url), user, cred);
            }
        }
    }
}

static void handle_welcome(tern_signaling_t *s, json_t *msg)
{
    const char *id = get_str(msg, "id");
    const char *room = get_str(msg, "room");
    json_t *peers = json_object_get(msg, "peers");
    if (s->state != TERN_SIG_JOINING || !id_ok(id)) {
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u unexpected or bad welcome dropped", s->id);
        return;
    }
    s->self_id = tern_strdup(s->ctx, id);
    s->room = tern_strdup(s->ctx, room && strlen(room) <= TERN_SIG_MAX_ID ? room : "");
    if (!s->self_id || !s->room) {
        tern_free(s->ctx, s->self_id);
        tern_free(s->ctx, s->room);
        s->self_id = s->room = NULL;
        return;
    }
    take_ice_servers(s, json_object_get(msg, "iceServers"));
    s->state = TERN_SIG_JOINED;
    if (s->connect_timer) {
        tern_loop_cancel_timer(s->loop, s->connect_timer);
        s->connect_timer = NULL;
    }
    TERN_LOG_INFO(s->ctx, MODULE, "signal %u joined room %s as %s (%zu peers, %zu ice servers)",
                  s->id, s->room, s->self_id, json_array_size(peers), s->room_ice_count);
    if (s->cbs.on_connected)
        s->cbs.on_connected(s, s->user, s->self_id, s->room);
    size_t i;
    json_t *peer;
    json_array_foreach(peers, i, peer)
    {
        const char *pid = json_string_value(peer);
        if (s->free_pending || s->state != TERN_SIG_JOINED)
            return;
        if (!id_ok(pid))
            continue;
        if (s->cbs.on_peer_joined)
            s->cbs.on_peer_joined(s, s->user, pid);
        /* The newcomer waits for offers (signaling-protocol.md), unless told to offer. */
        if (s->role == TERN_SIGNALING_ROLE_OFFER && !s->free_pending && s->state == TERN_SIG_JOINED)
            offer_to(s, pid, true);
    }
}

static void handle_join(tern_signaling_t *s, const char *id)
{
    if (s->cbs.on_peer_joined)
        s->cbs.on_peer_joined(s, s->user, id);
    if (s->role != TERN_SIGNALING_ROLE_ANSWER && !s->free_pending && s->state == TERN_SIG_JOINED)
        offer_to(s, id, false);
}

static void handle_gone(tern_signaling_t *s, const char *id, const char *why)
{
    tern_sig_peer_t *p = peer_find(s, id);
    TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u peer %s %s", s->id, id, why);
    if (s->cbs.on_peer_left)
        s->cbs.on_peer_left(s, s->user, id, p ? p->pc : NULL);
    /* Found again: the application may have hung up on it inside the callback. */
    if (p && (p = peer_find(s, id)) != NULL)
        tern_sig_peer_kill(s, p);
}

/* ---- peer messages ---- */

static void handle_offer(tern_signaling_t *s, const char *from, const char *sdp)
{
    tern_sig_peer_t *p = peer_find(s, from);
    /*
     * Perfect negotiation's politeness, when offers cross: they cross only between a newcomer
     * that offers from welcome (ROLE_OFFER) and a member that offers on its join (ROLE_AUTO or
     * ROLE_OFFER). Both sides know which of the two they are, so the newcomer's offer stands
     * and the member gives way, whatever their roles.
     */
    if (p && tern_pc_signaling_state(p->pc) == TERN_SIGNALING_HAVE_LOCAL_OFFER && p->insists) {
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u offers crossed with %s: ours stands", s->id,
                       from);
        return;
    }
    bool fresh = !p;
    if (fresh && !(p = peer_make(s, from, false)))
        return;
    /* In have-local-offer this is the implicit rollback of W3C setRemoteDescription. */
    int err = tern_pc_set_remote_description(p->pc, now_of(s), TERN_SDP_OFFER, sdp);
    if (!err)
        err = send_description(s, p, TERN_SDP_ANSWER);
    if (!err) {
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u answer sent to %s", s->id, from);
        return;
    }
    if (fresh)
        peer_abandon(s, p, "offer refused", err);
    else
        TERN_LOG_WARN(s->ctx, MODULE, "signal %u offer of %s refused: %s (%s)", s->id, from,
                      tern_strerror(err), tern_pc_last_error(p->pc));
}

static void handle_answer(tern_signaling_t *s, const char *from, const char *sdp)
{
    tern_sig_peer_t *p = peer_find(s, from);
    if (!p || tern_pc_signaling_state(p->pc) != TERN_SIGNALING_HAVE_LOCAL_OFFER) {
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u unexpected answer from %s dropped", s->id, from);
        return;
    }
    int err = tern_pc_set_remote_description(p->pc, now_of(s), TERN_SDP_ANSWER, sdp);
    if (err)
        peer_abandon(s, p, "answer refused", err);
}

static void handle_candidate(tern_signaling_t *s, const char *from, json_t *msg)
{
    tern_sig_peer_t *p = peer_find(s, from);
    json_t *c = json_object_get(msg, "candidate");
    if (!p || !(json_is_string(c) || json_is_null(c) || !c)) {
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u candidate from %s dropped", s->id, from);
        return;
    }
    /* Absent or null (some pages send the end of candidates so) is the end, as "" is. */
    const char *candidate = json_is_string(c) ? json_string_value(c) : "";
    const char *mid = get_str(msg, "sdpMid");
    int err = tern_pc_add_ice_candidate(p->pc, now_of(s), candidate, mid);
    if (err)
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u candidate from %s refused: %s", s->id, from,
                       tern_strerror(err));
}

static void forward_other(tern_signaling_t *s, const char *from, const char *type,
                          const uint8_t *data, size_t len)
{
    if (!s->cbs.on_message)
        return;
    char *text = tern_malloc(s->ctx, len + 1);
    if (!text)
        return;
    memcpy(text, data, len);
    text[len] = '\0';
    s->cbs.on_message(s, s->user, from, type, text);
    tern_free(s->ctx, text);
}

static void handle_from_server(tern_signaling_t *s, json_t *msg, const char *type,
                               const uint8_t *data, size_t len)
{
    if (strcmp(type, "welcome") == 0) {
        handle_welcome(s, msg);
        return;
    }
    if (s->state != TERN_SIG_JOINED) {
        if (strcmp(type, "error") == 0)
            forward_other(s, NULL, type, data, len);
        return;
    }
    const char *id = get_str(msg, "id");
    bool join = strcmp(type, "join") == 0, leave = strcmp(type, "leave") == 0;
    if ((join || leave) && !id_ok(id)) {
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u %s without a good id dropped", s->id, type);
    } else if (join) {
        handle_join(s, id);
    } else if (leave) {
        handle_gone(s, id, "left");
    } else if (strcmp(type, "error") == 0) {
        TERN_LOG_WARN(s->ctx, MODULE, "signal %u server error %s: %s", s->id,
                      get_str(msg, "code") ? get_str(msg, "code") : "?",
                      get_str(msg, "message") ? get_str(msg, "message") : "");
        forward_other(s, NULL, type, data, len);
    } else {
        forward_other(s, NULL, type, data, len);
    }
}

static void handle_from_peer(tern_signaling_t *s, json_t *msg, const char *from, const char *type,
                             const uint8_t *data, size_t len)
{
    const char *sdp = get_str(msg, "sdp");
    if (s->state != TERN_SIG_JOINED || (s->self_id && strcmp(from, s->self_id) == 0))
        return;
    if (strcmp(type, "offer") == 0 && sdp)
        handle_offer(s, from, sdp);
    else if (strcmp(type, "answer") == 0 && sdp)
        handle_answer(s, from, sdp);
    else if (strcmp(type, "candidate") == 0)
        handle_candidate(s, from, msg);
    else if (strcmp(type, "bye") == 0)
        handle_gone(s, from, "said bye");
    else if (strcmp(type, "offer") != 0 && strcmp(type, "answer") != 0)
        forward_other(s, from, type, data, len);
    else
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u %s without sdp from %s dropped", s->id, type,
                       from);
}

void tern_sig_handle_message(tern_signaling_t *s, const uint8_t *data, size_t len)
{
    json_error_t jerr;
    json_t *msg = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *type = get_str(msg, "type");
    if (!json_is_object(msg) || !type) {
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u bad message dropped (%s)", s->id,
                       msg ? "no type" : jerr.text);
        json_decref(msg);
        return;
    }
    /* The server sets "from" on everything it relays and on nothing of its own. */
    json_t *from = json_object_get(msg, "from");
    if (!from)
        handle_from_server(s, msg, type, data, len);
    else if (id_ok(json_string_value(from)))
        handle_from_peer(s, msg, json_string_value(from), type, data, len);
    else
        TERN_LOG_DEBUG(s->ctx, MODULE, "signal %u message with a bad from dropped", s->id);
    json_decref(msg);
}

/* ---- public lookups and hang-up ---- */

const char *tern_signaling_peer_id(const tern_signaling_t *s, const tern_pc_t *pc)
{
    for (const tern_sig_peer_t *p = s && pc ? s->peers : NULL; p; p = p->next)
        if (p->pc == pc)
            return p->id;
    return NULL;
}

tern_pc_t *tern_signaling_pc(const tern_signaling_t *s, const char *peer_id)
{
    const tern_sig_peer_t *p = s && peer_id ? peer_find(s, peer_id) : NULL;
    return p ? p->pc : NULL;
}

size_t tern_signaling_peer_count(const tern_signaling_t *s)
{
    return s ? peer_count(s) : 0;
}

int tern_signaling_hang_up(tern_signaling_t *s, const char *peer_id)
{
    if (!s || !peer_id)
        return TERN_ERR_INVALID_ARG;
    tern_sig_peer_t *p = peer_find(s, peer_id);
    if (!p)
        return TERN_ERR_NOT_FOUND;
    json_t *msg = json_pack("{s:s, s:s}", "type", "bye", "to", p->id);
    if (msg && tern_sig_send_json(s, msg) == TERN_OK)
        tern_sig_flush(s);
    json_decref(msg);
    tern_sig_peer_kill(s, p);
    return TERN_OK;
}
