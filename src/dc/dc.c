/* SPDX-License-Identifier: MIT */
/*
 * The data channel manager (RFC 8831, RFC 8832) and the public tern_dc_* functions of tern.h.
 *
 * A channel is opened in band by sending DATA_CHANNEL_OPEN on its stream (RFC 8832 §6) and is
 * open from then on (the initiator may send right after the OPEN; until the ACK comes, an
 * unordered channel sends ordered so no message can pass the OPEN), or out of band
 * ("negotiated") by both sides creating it with the same id. A DATA_CHANNEL_OPEN from the peer
 * creates a channel, answered with DATA_CHANNEL_ACK. Stream ids follow the DTLS role: even for
 * the DTLS client, odd for the server (RFC 8832 §6). Messages carry PPIDs 51/53, and empty ones
 * one byte with 56/57 (RFC 8831 §6.6). Closing resets the outgoing stream; the peer resets its
 * own, and the channel is closed once both directions are reset (RFC 8831 §6.7).
 *
 * Each channel has a FIFO of messages usrsctp has not taken yet (its buffered_amount); channels
 * with queued messages take turns, one message each (round-robin), whenever the association
 * has room (SEND_READY). A send on an idle channel goes straight to the association without a
 * copy. Incoming messages are copied into the event queue, since the SCTP event's data is only
 * valid until the next call on the association.
 */
#include "dc/dc.h"

#include <string.h>

#define DC_LOG "dc"

#define DEFAULT_MAX_CHANNELS 1024
#define DEFAULT_MAX_BUFFERED ((size_t)16 << 20)
/* RFC 8841 §6: a remote description without a=max-message-size means 64 KiB. */
#define DEFAULT_REMOTE_MAX_MESSAGE 65536
/* Largest id a negotiated channel may ask for (W3C: id must be below 65535). */
#define MAX_NEGOTIATED_ID 65534
/* Label and protocol are 16-bit lengths on the wire (RFC 8832 §5.1). */
#define MAX_STRING_BYTES 65535
/* Incoming messages waiting in the event queue before new ones are dropped: the owner drains
 * after every SCTP event (CONVENTIONS.md §2 rule 3), so this only bounds a misbehaving owner. */
#define MAX_QUEUED_MESSAGES 65536
#define MAX_QUEUED_MESSAGE_BYTES ((size_t)64 << 20)

/* A message waiting to go to the association. */
typedef struct dc_msg {
    struct dc_msg *next;
    uint32_t ppid;
    size_t len;      /* bytes on the wire (1 for an empty message) */
    size_t user_len; /* what it counts in buffered_amount */
    uint8_t data[];
} dc_msg_t;

struct tern_dc {
    /* configuration */
    tern_dcm_t *m;
    char *label;
    char *protocol;
    bool negotiated;
    bool unordered;
    tern_dc_reliability_t reliability;
    uint32_t reliability_value;
    uint16_t priority;
    bool remote; /* the peer opened it */

    /* state */
    int id; /* -1 until assigned */
    tern_dc_state_t state;
    bool opened;         /* OPEN sent (in band) or opened (negotiated) */
    bool acked;          /* the peer knows the channel: ACK or any message from it */
    bool close_wanted;   /* reset the stream once the queue is empty */
    bool reset_sent;     /* our outgoing reset was requested */
    bool reset_out_done; /* our outgoing stream is reset */
    bool reset_in_done;  /* the peer's outgoing stream is reset */
    bool dead;           /* CLOSE queued: no more events, id released */
    bool close_returned; /* CLOSE handed to the owner: freed on the next poll */
    size_t buffered;
    size_t low_threshold;
    void *user;

    /* queue */
    dc_msg_t *q_head;
    dc_msg_t *q_tail;
    bool active; /* on the manager's round-robin list */

    /* links */
    struct tern_dc *prev;
    struct tern_dc *next;
    struct tern_dc *rr_next;
};

typedef struct dcm_event {
    tern_event_type_t type;
    tern_dc_t *dc;
    uint8_t *data; /* owned copy of a message */
    size_t len;
    bool is_text;
    int code;
    const char *reason;
} dcm_event_t;

struct tern_dcm {
    /* configuration */
    tern_ctx_t *ctx;
    uint32_t id;
    tern_dcm_config_t cfg;

    /* state */
    tern_time_t now;
    bool role_known;
    bool dtls_client;
    tern_sctp_t *sctp;
    bool sctp_up;
    size_t remote_max_message_size;
    bool closed;
    size_t live_count; /* channels not dead */
    size_t buffered_total;

    /* channels */
    tern_dc_t *head; /* every channel in creation order, dead ones included until freed */
    tern_dc_t *tail;
    tern_dc_t **by_id; /* TERN_SCTP_STREAMS entries, live channels with an id */
    tern_dc_t *rr_head;
    tern_dc_t *rr_tail;

    /* events */
    dcm_event_t *evq;
    size_t ev_head;
    size_t ev_count;
    size_t ev_cap;
    size_t ev_messages;
    size_t ev_message_bytes;
    uint8_t *returned_data; /* data of the message event last returned */

    /* stats */
    tern_dcm_stats_t stats;
};

/* ---- events ---- */

static bool grow_events(tern_dcm_t *m)
{
    size_t cap = m->ev_cap ? m->ev_cap * 2 : 16;
    dcm_event_t *q = tern_calloc(m->ctx, cap, sizeof *q);
    if (!q)
        return false;
    for (size_t i = 0; i < m->ev_count; i++)
        q[i] = m->evq[(m->ev_head + i) % m->ev_cap];
    tern_free(m->ctx, m->evq);
    m->evq = q;
    m->ev_cap = cap;
    m->ev_head = 0;
    return true;
}

static bool push_event(tern_dcm_t *m, const dcm_event_t *ev)
{
    if (m->ev_count == m->ev_cap && !grow_events(m)) {
        TERN_LOG_WARN(m->ctx, DC_LOG, "dcm %u out of memory: event %d lost", m->id, ev->type);
        return false;
    }
    m->evq[(m->ev_head + m->ev_count) % m->ev_cap] = *ev;
    m->ev_count++;
    return true;
}

static void queue_event(tern_dcm_t *m, tern_event_type_t type, tern_dc_t *dc)
{
    dcm_event_t ev = {.type = type, .dc = dc};
    push_event(m, &ev);
}

static void queue_error(tern_dcm_t *m, tern_dc_t *dc, int code, const char *reason)
{
    dcm_event_t ev = {.type = TERN_EV_DC_ERROR, .dc = dc, .code = code, .reason = reason};
    push_event(m, &ev);
}

static void notify_owner(tern_dcm_t *m)
{
    if (m->cfg.on_pending)
        m->cfg.on_pending(m->cfg.owner);
}

/* ---- channel bookkeeping ---- */

static tern_dc_t *find_channel(const tern_dcm_t *m, int id)
{
    if (id < 0)
        return NULL;
    if (id < TERN_SCTP_STREAMS)
        return m->by_id ? m->by_id[id] : NULL;
    for (tern_dc_t *dc = m->head; dc; dc = dc->next)
        if (!dc->dead && dc->id == id)
            return dc;
    return NULL;
}

static bool ensure_by_id(tern_dcm_t *m)
{
    if (!m->by_id)
        m->by_id = tern_calloc(m->ctx, TERN_SCTP_STREAMS, sizeof *m->by_id);
    return m->by_id != NULL;
}

static void set_id(tern_dc_t *dc, int id)
{
    dc->id = id;
    if (id >= 0 && id < TERN_SCTP_STREAMS)
        dc->m->by_id[id] = dc;
}

static void release_id(tern_dc_t *dc)
{
    tern_dcm_t *m = dc->m;
    if (dc->id >= 0 && dc->id < TERN_SCTP_STREAMS && m->by_id && m->by_id[dc->id] == dc)
        m->by_id[dc->id] = NULL;
}

/* Lowest free id of our parity (RFC 8832 §6), or -1. */
static int pick_id(const tern_dcm_t *m)
{
    int limit = TERN_SCTP_STREAMS;
    if (m->sctp_up) {
        int streams = tern_sctp_outgoing_streams(m->sctp);
        if (streams > 0 && streams < limit)
            limit = streams;
    }
    for (int id = m->dtls_client ? 0 : 1; id < limit; id += 2)
        if (!find_channel(m, id))
            return id;
    return -1;
}

static void free_queue(tern_dc_t *dc)
{
    tern_dcm_t *m = dc->m;
    while (dc->q_head) {
        dc_msg_t *msg = dc->q_head;
        dc->q_head = msg->next;
        m->buffered_total -= msg->user_len;
        tern_free(m->ctx, msg);
    }
    dc->q_tail = NULL;
    /* buffered_amount keeps its value (W3C: it is not reset when the channel closes). */
}

static void rr_remove(tern_dc_t *dc)
{
    tern_dcm_t *m = dc->m;
    if (!dc->active)
        return;
    tern_dc_t **link = &m->rr_head, *prev = NULL;
    while (*link && *link != dc) {
        prev = *link;
        link = &(*link)->rr_next;
    }
    if (*link)
        *link = dc->rr_next;
    if (m->rr_tail == dc)
        m->rr_tail = prev;
    dc->rr_next = NULL;
    dc->active = false;
}

static void rr_append(tern_dc_t *dc)
{
    tern_dcm_t *m = dc->m;
    if (dc->active)
        return;
    dc->active = true;
    dc->rr_next = NULL;
    if (m->rr_tail)
        m->rr_tail->rr_next = dc;
    else
        m->rr_head = dc;
    m->rr_tail = dc;
}

static void free_channel(tern_dc_t *dc)
{
    tern_dcm_t *m = dc->m;
    rr_remove(dc);
    free_queue(dc);
    release_id(dc);
    if (dc->prev)
        dc->prev->next = dc->next;
    else
        m->head = dc->next;
    if (dc->next)
        dc->next->prev = dc->prev;
    else
        m->tail = dc->prev;
    if (!dc->dead)
        m->live_count--;
    tern_free(m->ctx, dc->label);
    tern_free(m->ctx, dc->protocol);
    tern_free(m->ctx, dc);
}

/* The channel is closed: last event, its id is free again. */
static void finish_close(tern_dc_t *dc)
{
    if (dc->dead)
        return;
    tern_dcm_t *m = dc->m;
    rr_remove(dc);
    free_queue(dc);
    release_id(dc);
    dc->state = TERN_DC_STATE_CLOSED;
    dc->dead = true;
    m->live_count--;
    queue_event(m, TERN_EV_DC_CLOSE, dc);
    TERN_LOG_DEBUG(m->ctx, DC_LOG, "dcm %u channel %d closed now=%lld", m->id, dc->id,
                   (long long)m->now);
}

static void maybe_finish_close(tern_dc_t *dc)
{
    if (dc->reset_out_done && dc->reset_in_done)
        finish_close(dc);
}

/* ---- sending ---- */

static tern_sctp_send_opts_t send_opts(const tern_dc_t *dc)
{
    tern_sctp_send_opts_t o = {0};
    /* Before the ACK, unordered data could overtake the OPEN: send it ordered (RFC 8832 §6). */
    o.unordered = dc->unordered && dc->acked;
    if (dc->reliability == TERN_DC_MAX_RETRANSMITS)
        o.pr_policy = TERN_SCTP_PR_RTX;
    else if (dc->reliability == TERN_DC_MAX_LIFETIME)
        o.pr_policy = TERN_SCTP_PR_TTL;
    o.pr_value = dc->reliability_value;
    return o;
}

static int sctp_send_one(tern_dc_t *dc, uint32_t ppid, const uint8_t *data, size_t len)
{
    tern_dcm_t *m = dc->m;
    tern_sctp_send_opts_t opts = send_opts(dc);
    /* DCEP messages are always ordered and reliable (RFC 8832 §6). */
    if (ppid == TERN_PPID_DCEP)
        memset(&opts, 0, sizeof opts);
    int ret = tern_sctp_send(m->sctp, m->now, (uint16_t)dc->id, ppid, data, len, &opts);
    if (ret == TERN_OK && ppid != TERN_PPID_DCEP) {
        m->stats.messages_sent++;
        m->stats.bytes_sent += len;
    }
    return ret;
}

static void start_reset(tern_dc_t *dc)
{
    tern_dcm_t *m = dc->m;
    if (dc->reset_sent)
        return;
    dc->reset_sent = true;
    int ret = m->sctp_up ? tern_sctp_reset_stream(m->sctp, m->now, (uint16_t)dc->id)
                         : TERN_ERR_INVALID_STATE;
    if (ret != TERN_OK) {
        /* Nothing to reset on: the association is gone or going. */
        finish_close(dc);
    }
}

static void lower_buffered(tern_dc_t *dc, size_t n)
{
    size_t before = dc->buffered;
    dc->buffered -= n;
    dc->m->buffered_total -= n;
    /* W3C bufferedamountlow: fired when the amount falls to or below the threshold. */
    if (n > 0 && before > dc->low_threshold && dc->buffered <= dc->low_threshold &&
        dc->state == TERN_DC_STATE_OPEN)
        queue_event(dc->m, TERN_EV_DC_BUFFERED_AMOUNT_LOW, dc);
}

static bool can_send(const tern_dcm_t *m)
{
    return m->sctp && m->sctp_up;
}

int tern_dcm_flush(tern_dcm_t *m, tern_time_t now)
{
    if (!m)
        return TERN_ERR_INVALID_ARG;
    if (now > m->now)
        m->now = now;
    while (can_send(m) && m->rr_head) {
        tern_dc_t *dc = m->rr_head;
        dc_msg_t *msg = dc->q_head;
        int ret = sctp_send_one(dc, msg->ppid, msg->data, msg->len);
        if (ret == TERN_ERR_AGAIN)
            break;
        if (ret != TERN_OK) {
            m->stats.messages_dropped++;
            TERN_LOG_DEBUG(m->ctx, DC_LOG, "dcm %u channel %d message dropped: %s", m->id, dc->id,
                           tern_strerror(ret));
        }
        dc->q_head = msg->next;
        if (!dc->q_head)
            dc->q_tail = NULL;
        size_t user_len = msg->user_len;
        tern_free(m->ctx, msg);
        /* One message per turn: the channel goes to the back of the line. */
        rr_remove(dc);
        if (dc->q_head)
            rr_append(dc);
        lower_buffered(dc, user_len);
        if (!dc->q_head && dc->close_wanted)
            start_reset(dc);
    }
    return TERN_OK;
}

static int enqueue(tern_dc_t *dc, uint32_t ppid, const uint8_t *data, size_t len, size_t user_len,
                   bool front)
{
    tern_dcm_t *m = dc->m;
    dc_msg_t *msg = tern_malloc(m->ctx, sizeof *msg + len);
    if (!msg)
        return TERN_ERR_NOMEM;
    msg->next = NULL;
    msg->ppid = ppid;
    msg->len = len;
    msg->user_len = user_len;
    memcpy(msg->data, data, len);
    if (front) {
        msg->next = dc->q_head;
        dc->q_head = msg;
        if (!dc->q_tail)
            dc->q_tail = msg;
    } else {
        if (dc->q_tail)
            dc->q_tail->next = msg;
        else
            dc->q_head = msg;
        dc->q_tail = msg;
    }
    dc->buffered += user_len;
    m->buffered_total += user_len;
    rr_append(dc);
    return TERN_OK;
}

/* Send a DCEP message (OPEN or ACK) ahead of anything queued on the channel. */
static int send_dcep(tern_dc_t *dc, const tern_dcep_msg_t *msg)
{
    tern_dcm_t *m = dc->m;
    uint8_t storage[256];
    tern_wbuf_t w;
    tern_wbuf_init(&w, m->ctx, storage, sizeof storage);
    int ret = tern_dcep_encode(msg, &w);
    if (ret == TERN_OK) {
        ret = dc->q_head ? TERN_ERR_AGAIN : sctp_send_one(dc, TERN_PPID_DCEP, w.base, w.len);
        if (ret == TERN_ERR_AGAIN)
            ret = enqueue(dc, TERN_PPID_DCEP, w.base, w.len, 0, true);
    }
    tern_wbuf_dispose(&w);
    return ret;
}

static int send_user_message(tern_dc_t *dc, tern_time_t now, const uint8_t *data, size_t len,
                             bool is_text)
{
    if (!dc)
        return TERN_ERR_INVALID_ARG;
    if (!data && len)
        return TERN_ERR_INVALID_ARG;
    tern_dcm_t *m = dc->m;
    if (now > m->now)
        m->now = now;
    if (dc->state != TERN_DC_STATE_OPEN)
        return TERN_ERR_INVALID_STATE;
    if (len > m->remote_max_message_size)
        return TERN_ERR_TOO_LARGE;
    if (len > m->cfg.max_buffered_bytes - m->buffered_total)
        return TERN_ERR_TOO_LARGE;
    /* RFC 8831 §6.6: SCTP cannot carry an empty message; send one byte with an "empty" PPID. */
    static const uint8_t empty_payload[1] = {0};
    uint32_t ppid = is_text ? TERN_PPID_STRING : TERN_PPID_BINARY;
    const uint8_t *wire = data;
    size_t wire_len = len;
    if (len == 0) {
        ppid = is_text ? TERN_PPID_STRING_EMPTY : TERN_PPID_BINARY_EMPTY;
        wire = empty_payload;
        wire_len = 1;
    }
    int ret = TERN_ERR_AGAIN;
    /* Nothing waiting anywhere: hand it over directly, without a copy. */
    if (!m->rr_head && can_send(m))
        ret = sctp_send_one(dc, ppid, wire, wire_len);
    if (ret == TERN_ERR_AGAIN) {
        ret = enqueue(dc, ppid, wire, wire_len, len, false);
        if (ret == TERN_OK)
            tern_dcm_flush(m, now);
    }
    if (ret == TERN_OK)
        notify_owner(m);
    return ret;
}

/* ---- opening ---- */

static uint8_t dcep_channel_type(const tern_dc_t *dc)
{
    uint8_t type = TERN_DCEP_CHANNEL_RELIABLE;
    if (dc->reliability == TERN_DC_MAX_RETRANSMITS)
        type = TERN_DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT;
    else if (dc->reliability == TERN_DC_MAX_LIFETIME)
        type = TERN_DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED;
    return dc->unordered ? (uint8_t)(type | TERN_DCEP_CHANNEL_UNORDERED) : type;
}

static void fail_channel(tern_dc_t *dc, int code, const char *reason)
{
    queue_error(dc->m, dc, code, reason);
    finish_close(dc);
}

/* Open a channel now that it has an id and the association is up. */
static void open_channel(tern_dc_t *dc)
{
    tern_dcm_t *m = dc->m;
    if (dc->opened || dc->dead || dc->id < 0 || !m->sctp_up)
        return;
    if (dc->id >= tern_sctp_outgoing_streams(m->sctp)) {
        fail_channel(dc, TERN_ERR_TOO_LARGE, "stream id beyond the negotiated streams");
        return;
    }
    dc->opened = true;
    if (!dc->negotiated) {
        tern_dcep_msg_t open = {
            .type = TERN_DCEP_OPEN,
            .channel_type = dcep_channel_type(dc),
            .priority = dc->priority,
            .reliability = dc->reliability == TERN_DC_RELIABLE ? 0 : dc->reliability_value,
            .label = (const uint8_t *)dc->label,
            .label_len = (uint16_t)strlen(dc->label),
            .protocol = (const uint8_t *)dc->protocol,
            .protocol_len = (uint16_t)strlen(dc->protocol),
        };
        int ret = send_dcep(dc, &open);
        if (ret != TERN_OK) {
            fail_channel(dc, ret, "cannot send DATA_CHANNEL_OPEN");
            return;
        }
    } else {
        dc->acked = true; /* both sides know the channel already */
    }
    if (dc->close_wanted) {
        /* close() came before the open: nothing to announce, go straight to the reset */
        dc->state = TERN_DC_STATE_CLOSING;
        if (!dc->q_head)
            start_reset(dc);
        return;
    }
    dc->state = TERN_DC_STATE_OPEN;
    queue_event(m, TERN_EV_DC_OPEN, dc);
    TERN_LOG_DEBUG(m->ctx, DC_LOG, "dcm %u channel %d open (%s) now=%lld", m->id, dc->id,
                   dc->negotiated ? "negotiated" : "in band", (long long)m->now);
}

static void open_all(tern_dcm_t *m)
{
    for (tern_dc_t *dc = m->head; dc; dc = dc->next)
        open_channel(dc);
}

static void assign_ids(tern_dcm_t *m)
{
    for (tern_dc_t *dc = m->head; dc; dc = dc->next) {
        if (dc->dead || dc->id >= 0)
            continue;
        int id = pick_id(m);
        if (id < 0) {
            fail_channel(dc, TERN_ERR_TOO_LARGE, "no stream id left");
            continue;
        }
        set_id(dc, id);
    }
}

/* ---- the manager ---- */

int tern_dcm_new(tern_ctx_t *ctx, const tern_dcm_config_t *cfg, tern_dcm_t **out)
{
    static const tern_dcm_config_t defaults;
    if (!ctx || !out)
        return TERN_ERR_INVALID_ARG;
    if (!cfg)
        cfg = &defaults;
    tern_dcm_t *m = tern_calloc(ctx, 1, sizeof *m);
    if (!m)
        return TERN_ERR_NOMEM;
    m->ctx = ctx;
    m->id = tern_ctx_new_object_id(ctx);
    m->cfg = *cfg;
    if (!m->cfg.max_channels)
        m->cfg.max_channels = DEFAULT_MAX_CHANNELS;
    if (!m->cfg.max_buffered_bytes)
        m->cfg.max_buffered_bytes = DEFAULT_MAX_BUFFERED;
    m->remote_max_message_size = DEFAULT_REMOTE_MAX_MESSAGE;
    *out = m;
    return TERN_OK;
}

static void free_events(tern_dcm_t *m)
{
    for (size_t i = 0; i < m->ev_count; i++)
        tern_free(m->ctx, m->evq[(m->ev_head + i) % m->ev_cap].data);
    tern_free(m->ctx, m->evq);
    m->evq = NULL;
    m->ev_count = m->ev_cap = m->ev_head = 0;
    tern_free(m->ctx, m->returned_data);
    m->returned_data = NULL;
}

void tern_dcm_free(tern_dcm_t *m)
{
    if (!m)
        return;
    while (m->head)
        free_channel(m->head);
    free_events(m);
    tern_free(m->ctx, m->by_id);
    tern_free(m->ctx, m);
}

static int check_init(const tern_dcm_t *m, const char *label, const tern_dc_init_t *init)
{
    if (!label || strnlen(label, MAX_STRING_BYTES + 1) > MAX_STRING_BYTES)
        return TERN_ERR_INVALID_ARG;
    if (init->protocol && strnlen(init->protocol, MAX_STRING_BYTES + 1) > MAX_STRING_BYTES)
        return TERN_ERR_INVALID_ARG;
    if (init->reliability > TERN_DC_MAX_LIFETIME)
        return TERN_ERR_INVALID_ARG;
    if (init->negotiated && (init->id > MAX_NEGOTIATED_ID || find_channel(m, init->id)))
        return TERN_ERR_INVALID_ARG;
    if (m->live_count >= m->cfg.max_channels)
        return TERN_ERR_TOO_LARGE;
    return TERN_OK;
}

static tern_dc_t *new_channel(tern_dcm_t *m, const char *label, size_t label_len,
                              const char *protocol, size_t protocol_len)
{
    tern_dc_t *dc = tern_calloc(m->ctx, 1, sizeof *dc);
    if (!dc)
        return NULL;
    dc->label = tern_strndup(m->ctx, label, label_len);
    dc->protocol = tern_strndup(m->ctx, protocol, protocol_len);
    if (!dc->label || !dc->protocol) {
        tern_free(m->ctx, dc->label);
        tern_free(m->ctx, dc->protocol);
        tern_free(m->ctx, dc);
        return NULL;
    }
    dc->m = m;
    dc->id = -1;
    dc->state = TERN_DC_STATE_CONNECTING;
    /* Appended, so that ids are given in creation order. */
    dc->prev = m->tail;
    if (m->tail)
        m->tail->next = dc;
    else
        m->head = dc;
    m->tail = dc;
    m->live_count++;
    return dc;
}

int tern_dcm_create_channel(tern_dcm_t *m, tern_time_t now, const char *label,
                            const tern_dc_init_t *init, tern_dc_t **out)
{
    static const tern_dc_init_t defaults;
    if (!m || !out)
        return TERN_ERR_INVALID_ARG;
    if (!init)
        init = &defaults;
    if (now > m->now)
        m->now = now;
    if (m->closed)
        return TERN_ERR_INVALID_STATE;
    int ret = check_init(m, label, init);
    if (ret)
        return ret;
    if (!ensure_by_id(m))
        return TERN_ERR_NOMEM;
    int id = -1;
    if (init->negotiated) {
        id = init->id;
    } else if (m->role_known) {
        id = pick_id(m);
        if (id < 0)
            return TERN_ERR_TOO_LARGE; /* W3C: OperationError, no id available */
    }
    const char *protocol = init->protocol ? init->protocol : "";
    tern_dc_t *dc = new_channel(m, label, strlen(label), protocol, strlen(protocol));
    if (!dc)
        return TERN_ERR_NOMEM;
    dc->negotiated = init->negotiated;
    dc->unordered = init->unordered;
    dc->reliability = init->reliability;
    dc->reliability_value = init->reliability == TERN_DC_RELIABLE ? 0 : init->reliability_value;
    set_id(dc, id);
    TERN_LOG_DEBUG(m->ctx, DC_LOG, "dcm %u channel %d created%s now=%lld", m->id, id,
                   init->negotiated ? " (negotiated)" : "", (long long)m->now);
    open_channel(dc);
    *out = dc;
    if (m->ev_count)
        notify_owner(m);
    return TERN_OK;
}

int tern_dcm_set_dtls_role(tern_dcm_t *m, bool dtls_client)
{
    if (!m)
        return TERN_ERR_INVALID_ARG;
    if (m->role_known)
        return m->dtls_client == dtls_client ? TERN_OK : TERN_ERR_INVALID_STATE;
    if (!ensure_by_id(m))
        return TERN_ERR_NOMEM;
    m->role_known = true;
    m->dtls_client = dtls_client;
    assign_ids(m);
    open_all(m);
    return TERN_OK;
}

int tern_dcm_attach(tern_dcm_t *m, tern_time_t now, tern_sctp_t *sctp,
                    size_t remote_max_message_size)
{
    if (!m || !sctp)
        return TERN_ERR_INVALID_ARG;
    if (!m->role_known || (m->sctp && m->sctp != sctp))
        return TERN_ERR_INVALID_STATE;
    if (now > m->now)
        m->now = now;
    m->sctp = sctp;
    m->remote_max_message_size =
        remote_max_message_size ? remote_max_message_size : DEFAULT_REMOTE_MAX_MESSAGE;
    if (tern_sctp_state(sctp) == TERN_SCTP_STATE_CONNECTED && !m->sctp_up) {
        m->sctp_up = true;
        open_all(m);
        tern_dcm_flush(m, now);
    }
    return TERN_OK;
}

/* The association is gone or going: every channel closes, with an error if it failed. */
static void close_everything(tern_dcm_t *m, int code, const char *reason)
{
    m->sctp_up = false;
    for (tern_dc_t *dc = m->head; dc; dc = dc->next) {
        if (dc->dead)
            continue;
        if (reason && dc->state == TERN_DC_STATE_OPEN)
            queue_error(m, dc, code, reason);
        finish_close(dc);
    }
}

void tern_dcm_detach(tern_dcm_t *m, tern_time_t now)
{
    if (!m)
        return;
    if (now > m->now)
        m->now = now;
    close_everything(m, TERN_OK, NULL);
    m->sctp = NULL;
}

int tern_dcm_close_all(tern_dcm_t *m, tern_time_t now)
{
    if (!m)
        return TERN_ERR_INVALID_ARG;
    m->closed = true;
    for (tern_dc_t *dc = m->head; dc; dc = dc->next)
        if (!dc->dead)
            tern_dc_close(dc, now);
    return TERN_OK;
}

/* ---- incoming ---- */

static void reliability_from_type(tern_dc_t *dc, uint8_t type, uint32_t value)
{
    dc->unordered = (type & TERN_DCEP_CHANNEL_UNORDERED) != 0;
    switch (type & (uint8_t)~TERN_DCEP_CHANNEL_UNORDERED) {
    case TERN_DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT:
        dc->reliability = TERN_DC_MAX_RETRANSMITS;
        dc->reliability_value = value;
        break;
    case TERN_DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED:
        dc->reliability = TERN_DC_MAX_LIFETIME;
        dc->reliability_value = value;
        break;
    default:
        dc->reliability = TERN_DC_RELIABLE;
        dc->reliability_value = 0;
        break;
    }
}

static void refuse_open(tern_dcm_t *m, uint16_t stream, const char *why)
{
    m->stats.opens_refused++;
    TERN_LOG_DEBUG(m->ctx, DC_LOG, "dcm %u open on stream %u refused: %s", m->id, stream, why);
}

static void on_open(tern_dcm_t *m, uint16_t stream, const tern_dcep_msg_t *msg)
{
    if (find_channel(m, stream)) {
        /* An OPEN on a live channel's id would merge two channels: ignore it, keep ours. */
        refuse_open(m, stream, "id in use");
        return;
    }
    if (m->closed || m->live_count >= m->cfg.max_channels || !ensure_by_id(m)) {
        /* RFC 8832 §6: a channel that cannot be opened is closed by resetting its stream. */
        refuse_open(m, stream, "too many channels or closing");
        tern_sctp_reset_stream(m->sctp, m->now, stream);
        return;
    }
    tern_dc_t *dc = new_channel(m, (const char *)msg->label, msg->label_len,
                                (const char *)msg->protocol, msg->protocol_len);
    if (!dc) {
        refuse_open(m, stream, "out of memory");
        tern_sctp_reset_stream(m->sctp, m->now, stream);
        return;
    }
    dc->remote = true;
    dc->acked = true;
    dc->opened = true;
    dc->priority = msg->priority;
    reliability_from_type(dc, msg->channel_type, msg->reliability);
    set_id(dc, stream);
    tern_dcep_msg_t ack = {.type = TERN_DCEP_ACK};
    if (send_dcep(dc, &ack) != TERN_OK) {
        /* Without the ACK the peer still works (data implies it); not worth failing for. */
        TERN_LOG_DEBUG(m->ctx, DC_LOG, "dcm %u channel %u ack not sent", m->id, stream);
    }
    dc->state = TERN_DC_STATE_OPEN;
    /* W3C: the datachannel event, then the channel announces itself open. */
    queue_event(m, TERN_EV_DATA_CHANNEL, dc);
    queue_event(m, TERN_EV_DC_OPEN, dc);
    TERN_LOG_DEBUG(m->ctx, DC_LOG, "dcm %u channel %u opened by the peer now=%lld", m->id, stream,
                   (long long)m->now);
}

static void on_dcep(tern_dcm_t *m, uint16_t stream, const uint8_t *data, size_t len)
{
    tern_dcep_msg_t msg;
    if (tern_dcep_parse(data, len, &msg) != TERN_OK) {
        m->stats.messages_dropped++;
        TERN_LOG_DEBUG(m->ctx, DC_LOG, "dcm %u bad DCEP message on stream %u", m->id, stream);
        return;
    }
    if (msg.type == TERN_DCEP_OPEN) {
        on_open(m, stream, &msg);
        return;
    }
    tern_dc_t *dc = find_channel(m, stream);
    if (dc && !dc->remote)
        dc->acked = true;
    else
        m->stats.messages_dropped++;
}

static void deliver(tern_dcm_t *m, tern_dc_t *dc, const uint8_t *data, size_t len, bool is_text)
{
    if (m->ev_messages >= MAX_QUEUED_MESSAGES ||
        len > MAX_QUEUED_MESSAGE_BYTES - m->ev_message_bytes) {
        m->stats.messages_dropped++;
        TERN_LOG_WARN(m->ctx, DC_LOG, "dcm %u event queue full: message dropped", m->id);
        return;
    }
    dcm_event_t ev = {.type = TERN_EV_DC_MESSAGE, .dc = dc, .len = len, .is_text = is_text};
    if (len) {
        ev.data = tern_memdup(m->ctx, data, len);
        if (!ev.data) {
            m->stats.messages_dropped++;
            return;
        }
    }
    if (!push_event(m, &ev)) {
        tern_free(m->ctx, ev.data);
        m->stats.messages_dropped++;
        return;
    }
    m->ev_messages++;
    m->ev_message_bytes += len;
    m->stats.messages_received++;
    m->stats.bytes_received += len;
}

static void on_message(tern_dcm_t *m, const tern_sctp_event_t *ev)
{
    uint16_t stream = ev->u.message.stream;
    uint32_t ppid = ev->u.message.ppid;
    if (ppid == TERN_PPID_DCEP) {
        on_dcep(m, stream, ev->u.message.data, ev->u.message.len);
        return;
    }
    tern_dc_t *dc = find_channel(m, stream);
    bool is_text = ppid == TERN_PPID_STRING || ppid == TERN_PPID_STRING_EMPTY;
    bool known = ppid == TERN_PPID_STRING || ppid == TERN_PPID_BINARY ||
                 ppid == TERN_PPID_STRING_EMPTY || ppid == TERN_PPID_BINARY_EMPTY;
    /* W3C: messages are delivered only while the channel is open. */
    if (!dc || !known || dc->state != TERN_DC_STATE_OPEN) {
        m->stats.messages_dropped++;
        TERN_LOG_DEBUG(m->ctx, DC_LOG, "dcm %u message on stream %u ppid %u dropped", m->id, stream,
                       ppid);
        return;
    }
    dc->acked = true; /* the peer sends on it, so it has seen our OPEN */
    bool empty = ppid == TERN_PPID_STRING_EMPTY || ppid == TERN_PPID_BINARY_EMPTY;
    deliver(m, dc, ev->u.message.data, empty ? 0 : ev->u.message.len, is_text);
}

static void on_reset_incoming(tern_dcm_t *m, uint16_t stream)
{
    tern_dc_t *dc = find_channel(m, stream);
    if (!dc)
        return;
    dc->reset_in_done = true;
    if (!dc->reset_sent) {
        /* The peer closed the channel: W3C closing, then our reset (RFC 8831 §6.7). Messages
         * not yet taken by SCTP are dropped; what SCTP has goes before the reset. */
        if (dc->state == TERN_DC_STATE_OPEN)
            queue_event(m, TERN_EV_DC_CLOSING, dc);
        dc->state = TERN_DC_STATE_CLOSING;
        dc->close_wanted = true;
        rr_remove(dc);
        free_queue(dc);
        start_reset(dc);
    }
    maybe_finish_close(dc);
}

static void on_reset_outgoing(tern_dcm_t *m, uint16_t stream)
{
    tern_dc_t *dc = find_channel(m, stream);
    if (!dc || !dc->reset_sent)
        return;
    dc->reset_out_done = true;
    maybe_finish_close(dc);
}

int tern_dcm_handle_sctp_event(tern_dcm_t *m, tern_time_t now, const tern_sctp_event_t *ev)
{
    if (!m || !ev)
        return TERN_ERR_INVALID_ARG;
    if (now > m->now)
        m->now = now;
    if (!m->sctp)
        return TERN_OK; /* not attached (or detached): nothing of ours on it */
    switch (ev->type) {
    case TERN_SCTP_EV_CONNECTED:
        m->sctp_up = true;
        open_all(m);
        tern_dcm_flush(m, now);
        break;
    case TERN_SCTP_EV_MESSAGE:
        on_message(m, ev);
        break;
    case TERN_SCTP_EV_STREAM_RESET:
        if (ev->u.stream_reset.incoming)
            on_reset_incoming(m, ev->u.stream_reset.stream);
        if (ev->u.stream_reset.outgoing)
            on_reset_outgoing(m, ev->u.stream_reset.stream);
        break;
    case TERN_SCTP_EV_SEND_READY:
        tern_dcm_flush(m, now);
        break;
    case TERN_SCTP_EV_CLOSED:
        close_everything(m, TERN_OK, NULL);
        break;
    case TERN_SCTP_EV_FAILED:
        close_everything(m, ev->u.failed.code ? ev->u.failed.code : TERN_ERR_CLOSED,
                         "sctp-failure");
        break;
    default:
        break;
    }
    return TERN_OK;
}

static void free_returned(tern_dcm_t *m)
{
    tern_free(m->ctx, m->returned_data);
    m->returned_data = NULL;
    for (tern_dc_t *dc = m->head, *next; dc; dc = next) {
        next = dc->next;
        if (dc->close_returned)
            free_channel(dc);
    }
}

bool tern_dcm_poll_event(tern_dcm_t *m, tern_event_t *out)
{
    if (!m || !out)
        return false;
    free_returned(m);
    if (m->ev_count == 0)
        return false;
    dcm_event_t ev = m->evq[m->ev_head];
    m->ev_head = (m->ev_head + 1) % m->ev_cap;
    m->ev_count--;
    memset(out, 0, sizeof *out);
    out->type = ev.type;
    out->dc = ev.dc;
    switch (ev.type) {
    case TERN_EV_DC_MESSAGE:
        m->ev_messages--;
        m->ev_message_bytes -= ev.len;
        m->returned_data = ev.data;
        out->u.message.data = ev.data;
        out->u.message.len = ev.len;
        out->u.message.is_text = ev.is_text;
        break;
    case TERN_EV_DC_ERROR:
        out->u.error.code = ev.code;
        out->u.error.reason = ev.reason;
        break;
    case TERN_EV_DC_CLOSE:
        ev.dc->close_returned = true;
        break;
    default:
        break;
    }
    return true;
}

size_t tern_dcm_channel_count(const tern_dcm_t *m)
{
    size_t n = 0;
    for (const tern_dc_t *dc = m ? m->head : NULL; dc; dc = dc->next)
        n++;
    return n;
}

void tern_dcm_get_stats(const tern_dcm_t *m, tern_dcm_stats_t *out)
{
    if (m && out)
        *out = m->stats;
}

/* ---- the public channel API (tern.h) ---- */

int tern_dc_send(tern_dc_t *dc, tern_time_t now, const void *data, size_t len)
{
    return send_user_message(dc, now, data, len, false);
}

int tern_dc_send_text(tern_dc_t *dc, tern_time_t now, const char *text, size_t len)
{
    return send_user_message(dc, now, (const uint8_t *)text, len, true);
}

int tern_dc_close(tern_dc_t *dc, tern_time_t now)
{
    if (!dc)
        return TERN_ERR_INVALID_ARG;
    tern_dcm_t *m = dc->m;
    if (now > m->now)
        m->now = now;
    if (dc->dead || dc->state == TERN_DC_STATE_CLOSING || dc->state == TERN_DC_STATE_CLOSED)
        return TERN_OK;
    dc->close_wanted = true;
    if (!dc->opened) {
        /* Never announced to the peer: nothing to reset. */
        finish_close(dc);
    } else {
        /* W3C close(): closing, then the reset once what is queued has been sent. */
        dc->state = TERN_DC_STATE_CLOSING;
        if (!dc->q_head)
            start_reset(dc);
    }
    notify_owner(m);
    return TERN_OK;
}

tern_dc_state_t tern_dc_state(const tern_dc_t *dc)
{
    return dc ? dc->state : TERN_DC_STATE_CLOSED;
}

const char *tern_dc_label(const tern_dc_t *dc)
{
    return dc ? dc->label : "";
}

const char *tern_dc_protocol(const tern_dc_t *dc)
{
    return dc ? dc->protocol : "";
}

int tern_dc_id(const tern_dc_t *dc)
{
    return dc ? dc->id : -1;
}

bool tern_dc_ordered(const tern_dc_t *dc)
{
    return dc ? !dc->unordered : true;
}

int64_t tern_dc_max_retransmits(const tern_dc_t *dc)
{
    return dc && dc->reliability == TERN_DC_MAX_RETRANSMITS ? (int64_t)dc->reliability_value : -1;
}

int64_t tern_dc_max_packet_life_time(const tern_dc_t *dc)
{
    return dc && dc->reliability == TERN_DC_MAX_LIFETIME ? (int64_t)dc->reliability_value : -1;
}

bool tern_dc_negotiated(const tern_dc_t *dc)
{
    return dc ? dc->negotiated : false;
}

size_t tern_dc_buffered_amount(const tern_dc_t *dc)
{
    return dc ? dc->buffered : 0;
}

size_t tern_dc_buffered_amount_low_threshold(const tern_dc_t *dc)
{
    return dc ? dc->low_threshold : 0;
}

void tern_dc_set_buffered_amount_low_threshold(tern_dc_t *dc, size_t bytes)
{
    if (dc)
        dc->low_threshold = bytes;
}

void tern_dc_set_user_data(tern_dc_t *dc, void *user)
{
    if (dc)
        dc->user = user;
}

void *tern_dc_user_data(const tern_dc_t *dc)
{
    return dc ? dc->user : NULL;
}

tern_pc_t *tern_dc_pc(const tern_dc_t *dc)
{
    return dc ? dc->m->cfg.pc : NULL;
}
