/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket endpoint (RFC 6455), server or client, sans-IO: the opening handshake over
 * HTTP/1.1 (§4), framing with reassembly of fragments (§5.4), masking rules (§5.1, §5.3),
 * control frames (§5.5: ping answered by pong, close handshake §7.1), the errors that fail
 * the connection with 1002, 1007 or 1009 (§7.1.7, §7.4.1), a keepalive (ping after silence,
 * failure after longer silence), the handshake and close deadlines, and a bounded output
 * buffer for the TCP stream.
 *
 * Memory: one receive buffer and one output buffer per endpoint, grown on demand and given
 * back when empty and large, so that thousands of idle connections stay small and the relay
 * path does not allocate per frame. Input is appended to the receive buffer and unmasked in
 * place; a fragmented message is made contiguous by moving each continuation's payload down
 * to the end of the part assembled so far. Message events point into the receive buffer,
 * which is compacted only when no event is pending.
 */
#include "ws/ws.h"

#include <string.h>

#define WS_EVENT_QUEUE 8          /* events parsed ahead of the user (more: parse later) */
#define WS_KEEP_BUFFER_BYTES 4096 /* buffers larger than this are freed when they empty */
#define WS_MIN_BUFFER_BYTES 512
#define WS_UNDRAINED_SLACK 65536 /* input accepted beyond a message while events wait */

/* Handshake progress of a CONNECTING endpoint. */
enum {
    HS_WAIT_HEAD = 0, /* server: waiting for the request; client: for the response */
    HS_WAIT_DECISION, /* server: REQUEST reported, waiting for accept or respond */
    HS_DONE,
};

typedef struct ws_event_rec {
    tern_ws_event_type_t type;
    bool is_text;
    size_t off; /* message payload in rx */
    size_t len;
} ws_event_rec_t;

struct tern_ws {
    /* configuration */
    tern_ctx_t *ctx;
    uint32_t id;
    tern_ws_role_t role;
    size_t max_message_bytes;
    size_t max_output_bytes;
    tern_time_t handshake_timeout_us;
    tern_time_t ping_interval_us;
    tern_time_t idle_timeout_us;
    tern_time_t close_timeout_us;
    char *target;   /* owned, NUL-terminated; NULL reads as "" */
    char *protocol; /* client: offered, then agreed; server: agreed; NULL reads as "" */
    char expected_accept[TERN_WS_ACCEPT_LEN + 1]; /* client */

    /* state */
    tern_ws_state_t state;
    int hs;
    tern_time_t now;
    tern_time_t handshake_deadline;
    tern_time_t last_rx;
    tern_time_t last_ping;
    tern_time_t close_deadline;
    bool close_sent;
    uint16_t sent_code;
    tern_http_request_t *request; /* server, from the head until the decision is settled */
    bool request_done;            /* decided: free the request and drop the head when settled */
    bool request_is_head;         /* HEAD: answer without body */
    size_t head_len;
    size_t head_scanned;    /* bytes of the head already looked at */
    size_t head_line_start; /* where the head's current line starts */

    /* the end, reported by the CLOSE event */
    bool close_pending;
    tern_ws_cause_t cause;
    bool by_peer;
    uint16_t peer_code;
    int http_status;
    char peer_reason[TERN_WS_MAX_CLOSE_REASON + 1];
    size_t peer_reason_len;

    /* receive buffer: [assembled message part][dead bytes][unparsed input] */
    uint8_t *rx;
    size_t rx_len;
    size_t rx_cap;
    size_t rx_parse;
    bool in_message;
    bool msg_text;
    size_t msg_start;
    size_t msg_len;
    uint32_t utf8;

    /* events */
    ws_event_rec_t ev[WS_EVENT_QUEUE];
    size_t ev_head;
    size_t ev_count;

    /* output: bytes [tx_off, tx_len) wait for the socket */
    uint8_t *tx;
    size_t tx_off;
    size_t tx_len;
    size_t tx_cap;

    tern_ws_stats_t stats;
};

/* ---- small helpers ---- */

static tern_time_t add_time(tern_time_t t, tern_time_t d)
{
    if (t == TERN_TIME_NEVER || d == TERN_TIME_NEVER || t > TERN_TIME_NEVER - d)
        return TERN_TIME_NEVER;
    return t + d;
}

static tern_time_t pick_duration(tern_time_t v, tern_time_t dflt)
{
    return v <= 0 ? dflt : v;
}

static void advance_time(tern_ws_t *ws, tern_time_t now)
{
    /* CONVENTIONS.md §2 rule 2: a clock going backwards keeps the previous now. */
    if (now > ws->now)
        ws->now = now;
}

static bool is_safe_text(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}

static size_t next_cap(size_t cap, size_t need)
{
    size_t c = cap ? cap : WS_MIN_BUFFER_BYTES;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return need;
        c *= 2;
    }
    return c;
}

/* ---- output buffer ---- */

static size_t count_pending(const tern_ws_t *ws)
{
    return ws->tx_len - ws->tx_off;
}

/* Room for n more bytes at tx + tx_len, or NULL (allocation failed). */
static uint8_t *tx_reserve(tern_ws_t *ws, size_t n)
{
    if (ws->tx_len + n > ws->tx_cap && ws->tx_off > 0) {
        size_t pending = count_pending(ws);
        memmove(ws->tx, ws->tx + ws->tx_off, pending);
        ws->tx_off = 0;
        ws->tx_len = pending;
    }
    if (n > SIZE_MAX - ws->tx_len)
        return NULL;
    if (ws->tx_len + n > ws->tx_cap) {
        size_t cap = next_cap(ws->tx_cap, ws->tx_len + n);
        uint8_t *p = tern_realloc(ws->ctx, ws->tx, cap);
        if (!p)
            return NULL;
        ws->tx = p;
        ws->tx_cap = cap;
    }
    return ws->tx + ws->tx_len;
}

static int tx_append(tern_ws_t *ws, const void *data, size_t n)
{
    uint8_t *p = tx_reserve(ws, n);
    if (!p)
        return TERN_ERR_NOMEM;
    if (n)
        memcpy(p, data, n);
    ws->tx_len += n;
    return TERN_OK;
}

/*
 * Queue one frame. Data frames respect max_output_bytes; control frames always go (a pong
 * or close must not be lost to a full buffer, and they are at most 139 bytes).
 */
static int send_frame(tern_ws_t *ws, uint8_t opcode, const void *data, size_t len)
{
    bool control = opcode >= TERN_WS_OP_CLOSE;
    uint8_t mask[4];
    const uint8_t *maskp = NULL;
    if (ws->role == TERN_WS_ROLE_CLIENT) {
        /* RFC 6455 §5.3: a fresh, unpredictable masking key for every frame. */
        if (tern_random_bytes(ws->ctx, mask, 4) < 0)
            return TERN_ERR_CRYPTO;
        maskp = mask;
    }
    uint8_t hdr[TERN_WS_MAX_FRAME_HEADER];
    size_t hlen = tern_ws_frame_header_write(hdr, true, opcode, len, maskp);
    if (!control) {
        if (len > ws->max_output_bytes || hlen > ws->max_output_bytes - len)
            return TERN_ERR_TOO_LARGE;
        if (hlen + len > ws->max_output_bytes - TERN_MIN(count_pending(ws), ws->max_output_bytes))
            return TERN_ERR_AGAIN;
    }
    uint8_t *p = tx_reserve(ws, hlen + len);
    if (!p)
        return TERN_ERR_NOMEM;
    memcpy(p, hdr, hlen);
    if (len) {
        memcpy(p + hlen, data, len);
        if (maskp)
            tern_ws_mask(p + hlen, len, maskp, 0);
    }
    ws->tx_len += hlen + len;
    return TERN_OK;
}

static int send_close_frame(tern_ws_t *ws, uint16_t code, const char *reason, size_t reason_len)
{
    uint8_t body[2 + TERN_WS_MAX_CLOSE_REASON];
    size_t n = 0;
    if (code) {
        tern_store_u16(body, code);
        if (reason_len)
            memcpy(body + 2, reason, reason_len);
        n = 2 + reason_len;
    }
    int rc = send_frame(ws, TERN_WS_OP_CLOSE, body, n);
    if (rc == TERN_OK) {
        ws->close_sent = true;
        ws->sent_code = code;
    }
    return rc;
}

/* ---- events and the end ---- */

static bool push_event(tern_ws_t *ws, tern_ws_event_type_t type, bool is_text, size_t off,
                       size_t len)
{
    if (ws->ev_count == WS_EVENT_QUEUE)
        return false;
    ws_event_rec_t *e = &ws->ev[(ws->ev_head + ws->ev_count) % WS_EVENT_QUEUE];
    e->type = type;
    e->is_text = is_text;
    e->off = off;
    e->len = len;
    ws->ev_count++;
    return true;
}

/* The endpoint is done: CLOSED, with one CLOSE event after the events already queued. */
static void end_ws(tern_ws_t *ws, tern_ws_cause_t cause)
{
    if (ws->state == TERN_WS_STATE_CLOSED)
        return;
    ws->state = TERN_WS_STATE_CLOSED;
    ws->cause = cause;
    ws->close_pending = true;
    /* Whatever input was not parsed is dropped. */
    if (ws->rx_len > ws->rx_parse) {
        ws->stats.input_dropped += ws->rx_len - ws->rx_parse;
        ws->rx_len = ws->rx_parse;
    }
    TERN_LOG_DEBUG(ws->ctx, "ws", "ws %u closed cause=%d peer_code=%u sent_code=%u http=%d", ws->id,
                   (int)cause, ws->peer_code, ws->sent_code, ws->http_status);
}

/* RFC 6455 §7.1.7 "Fail the WebSocket Connection": a close frame with the code, then done. */
static void fail_ws(tern_ws_t *ws, uint16_t code, const char *why)
{
    TERN_LOG_DEBUG(ws->ctx, "ws", "ws %u failing with %u: %s", ws->id, code, why);
    if (!ws->close_sent && send_close_frame(ws, code, why, strlen(why)) == TERN_ERR_NOMEM) {
        end_ws(ws, TERN_WS_CAUSE_NOMEM);
        return;
    }
    end_ws(ws, TERN_WS_CAUSE_PROTOCOL_ERROR);
}

/* ---- receive buffer ---- */

/* Move the live bytes (assembled message part, unparsed input) to the front. */
static void rx_compact(tern_ws_t *ws)
{
    size_t keep_msg = ws->in_message ? ws->msg_len : 0;
    size_t raw = ws->rx_len - ws->rx_parse;
    if (keep_msg && ws->msg_start > 0)
        memmove(ws->rx, ws->rx + ws->msg_start, keep_msg);
    if (raw && ws->rx_parse > keep_msg)
        memmove(ws->rx + keep_msg, ws->rx + ws->rx_parse, raw);
    ws->msg_start = 0;
    ws->rx_parse = keep_msg;
    ws->rx_len = keep_msg + raw;
    ws->head_scanned = TERN_MIN(ws->head_scanned, ws->rx_len);
    if (ws->rx_len == 0 && ws->rx_cap > WS_KEEP_BUFFER_BYTES) {
        tern_free(ws->ctx, ws->rx);
        ws->rx = NULL;
        ws->rx_cap = 0;
    }
}

static int rx_append(tern_ws_t *ws, const uint8_t *data, size_t len)
{
    if (len > SIZE_MAX - ws->rx_len)
        return TERN_ERR_NOMEM;
    if (ws->rx_len + len > ws->rx_cap) {
        size_t cap = next_cap(ws->rx_cap, ws->rx_len + len);
        uint8_t *p = tern_realloc(ws->ctx, ws->rx, cap);
        if (!p)
            return TERN_ERR_NOMEM;
        ws->rx = p;
        ws->rx_cap = cap;
    }
    memcpy(ws->rx + ws->rx_len, data, len);
    ws->rx_len += len;
    return TERN_OK;
}

/*
 * Before handling a call: once no event is pending (so no pointer handed out is still
 * valid), free a decided request and reclaim the receive buffer's dead bytes.
 */
static void settle(tern_ws_t *ws)
{
    if (ws->ev_count > 0)
        return;
    if (ws->request && ws->request_done) {
        tern_free(ws->ctx, ws->request);
        ws->request = NULL;
    }
    if (!ws->request)
        rx_compact(ws);
}

/* ---- frames (RFC 6455 §5) ---- */

static bool is_known_opcode(uint8_t op)
{
    return op <= TERN_WS_OP_BINARY || (op >= TERN_WS_OP_CLOSE && op <= TERN_WS_OP_PONG);
}

/* Check a frame header against §5.1-§5.5 and the message limit; false: the ws failed. */
static bool accept_frame_header(tern_ws_t *ws, const tern_ws_frame_header_t *h)
{
    if (h->rsv)
        fail_ws(ws, TERN_WS_CLOSE_PROTOCOL_ERROR, "reserved bit set"); /* §5.2: no extension */
    else if (!is_known_opcode(h->opcode))
        fail_ws(ws, TERN_WS_CLOSE_PROTOCOL_ERROR, "reserved opcode"); /* §5.2 */
    else if (h->masked != (ws->role == TERN_WS_ROLE_SERVER))
        /* §5.1: a server MUST close on an unmasked frame, a client on a masked one. */
        fail_ws(ws, TERN_WS_CLOSE_PROTOCOL_ERROR, h->masked ? "masked frame" : "unmasked frame");
    else if (h->opcode >= TERN_WS_OP_CLOSE && (!h->fin || h->payload_len > 125))
        fail_ws(ws, TERN_WS_CLOSE_PROTOCOL_ERROR, "bad control frame"); /* §5.5 */
    else if (h->opcode == TERN_WS_OP_CONTINUATION && !ws->in_message)
        fail_ws(ws, TERN_WS_CLOSE_PROTOCOL_ERROR, "continuation without a message"); /* §5.4 */
    else if ((h->opcode == TERN_WS_OP_TEXT || h->opcode == TERN_WS_OP_BINARY) && ws->in_message)
        fail_ws(ws, TERN_WS_CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one");
    else if (h->opcode < TERN_WS_OP_CLOSE &&
             h->payload_len > ws->max_message_bytes - (ws->in_message ? ws->msg_len : 0))
        /* Refused on the header alone: a 2^62-byte length is never waited for. */
        fail_ws(ws, TERN_WS_CLOSE_MESSAGE_TOO_BIG, "message too big");
    else
        return true;
    return false;
}

static void handle_data_frame(tern_ws_t *ws, const tern_ws_frame_header_t *h, size_t payload_off)
{
    size_t len = (size_t)h->payload_len;
    if (h->opcode != TERN_WS_OP_CONTINUATION) {
        ws->in_message = true;
        ws->msg_text = h->opcode == TERN_WS_OP_TEXT;
        ws->msg_start = payload_off;
        ws->msg_len = 0;
        ws->utf8 = TERN_UTF8_ACCEPT;
    }
    uint8_t *dst = ws->rx + ws->msg_start + ws->msg_len;
    if (len && dst != ws->rx + payload_off)
        memmove(dst, ws->rx + payload_off, len);
    if (ws->msg_text) {
        /* §8.1: text is validated as it arrives, so a bad fragment fails at once. */
        ws->utf8 = tern_utf8_feed(ws->utf8, dst, len);
        if (ws->utf8 == TERN_UTF8_REJECT || (h->fin && ws->utf8 != TERN_UTF8_ACCEPT)) {
            fail_ws(ws, TERN_WS_CLOSE_INVALID_DATA, "text is not utf-8");
            return;
        }
    }
    ws->msg_len += len;
    if (!h->fin)
        return;
    ws->in_message = false;
    ws->stats.messages_in++;
    push_event(ws, TERN_WS_EV_MESSAGE, ws->msg_text, ws->msg_start, ws->msg_len);
}

static void handle_close_frame(tern_ws_t *ws, const uint8_t *p, size_t len)
{
    /* §5.5.1: empty, or a 2-byte code and a UTF-8 reason. */
    uint16_t code = TERN_WS_CLOSE_NO_STATUS;
    if (len == 1) {
        fail_ws(ws, TERN_WS_CLOSE_PROTOCOL_ERROR, "close frame of one byte");
        return;
    }
    if (len >= 2) {
        code = tern_load_u16(p);
        if (!tern_ws_close_code_valid(code)) {
            fail_ws(ws, TERN_WS_CLOSE_PROTOCOL_ERROR, "invalid close code"); /* §7.4 */
            return;
        }
        if (!tern_utf8_valid(p + 2, len - 2)) {
            fail_ws(ws, TERN_WS_CLOSE_INVALID_DATA, "close reason is not utf-8");
            return;
        }
        memcpy(ws->peer_reason, p + 2, len - 2);
        ws->peer_reason_len = len - 2;
        ws->peer_reason[len - 2] = '\0';
    }
    ws->peer_code = code;
    ws->by_peer = !ws->close_sent;
    if (!ws->close_sent) {
        /* §5.5.1: answer with a close frame, echoing the code (RFC 6455 §7.1.5 and common
         * practice); an empty close is answered with an empty one. */
        uint16_t echo = code == TERN_WS_CLOSE_NO_STATUS ? 0 : code;
        if (send_close_frame(ws, echo, NULL, 0) == TERN_ERR_NOMEM) {
            end_ws(ws, TERN_WS_CAUSE_NOMEM);
            return;
        }
    }
    end_ws(ws, TERN_WS_CAUSE_CLEAN);
}

static void handle_control_frame(tern_ws_t *ws, const tern_ws_frame_header_t *h, const uint8_t *p)
{
    size_t len = (size_t)h->payload_len;
    if (h->opcode == TERN_WS_OP_PING) {
        /* §5.5.2: answer with a pong carrying the same data, unless we are closing. A peer
         * that pings without reading would grow the output forever: past the output limit
         * its pings go unanswered (§5.5.3 allows answering only the latest). */
        if (ws->state == TERN_WS_STATE_OPEN && count_pending(ws) < ws->max_output_bytes &&
            send_frame(ws, TERN_WS_OP_PONG, p, len) < 0)
            end_ws(ws, TERN_WS_CAUSE_NOMEM);
    } else if (h->opcode == TERN_WS_OP_PONG) {
        ws->stats.pongs_in++;
    } else {
        handle_close_frame(ws, p, len);
    }
}

/* Parse and handle one frame; false if none is complete (or the endpoint ended). */
static bool process_frame(tern_ws_t *ws)
{
    size_t avail = ws->rx_len - ws->rx_parse;
    if (avail == 0)
        return false;
    tern_ws_frame_header_t h;
    int rc = tern_ws_frame_header_parse(ws->rx + ws->rx_parse, avail, &h);
    if (rc == TERN_ERR_AGAIN)
        return false;
    if (rc < 0) {
        fail_ws(ws, TERN_WS_CLOSE_PROTOCOL_ERROR, "bad frame length");
        return false;
    }
    if (!accept_frame_header(ws, &h))
        return false;
    if (h.payload_len > avail - h.header_len)
        return false;
    size_t payload_off = ws->rx_parse + h.header_len;
    size_t len = (size_t)h.payload_len;
    uint8_t *payload = ws->rx + payload_off;
    if (h.masked)
        tern_ws_mask(payload, len, h.mask, 0);
    ws->rx_parse = payload_off + len;
    ws->stats.frames_in++;
    if (h.opcode >= TERN_WS_OP_CLOSE)
        handle_control_frame(ws, &h, payload);
    else
        handle_data_frame(ws, &h, payload_off);
    return ws->state != TERN_WS_STATE_CLOSED;
}

/* ---- opening handshake ---- */

static void enter_open(tern_ws_t *ws)
{
    ws->state = TERN_WS_STATE_OPEN;
    ws->hs = HS_DONE;
    ws->last_rx = ws->now;
    ws->last_ping = ws->now;
    push_event(ws, TERN_WS_EV_OPEN, false, 0, 0);
}

/* Server: answer a head that did not parse, then end. */
static void reject_bad_http(tern_ws_t *ws, int status)
{
    tern_wbuf_t w;
    tern_wbuf_init(&w, ws->ctx, NULL, 0);
    int rc = tern_http_write_response(&w, status, NULL, 0, NULL, 0, false);
    if (rc == TERN_OK)
        rc = tx_append(ws, w.base, w.len);
    tern_wbuf_dispose(&w);
    ws->http_status = status;
    end_ws(ws, rc == TERN_OK ? TERN_WS_CAUSE_BAD_HTTP : TERN_WS_CAUSE_NOMEM);
}

/*
 * Whether a full parse of the head may say something new, looking only at bytes not seen
 * before, so that feeding a head byte by byte costs O(n) and not O(n^2), and gives the same
 * verdict as a parse of the whole: a line ended; a control byte came (an error wherever it
 * is), or the byte after a CR (a bare CR is one); the current line is over the limit; the
 * head is; or the head is still short enough for the method to be checked (a TLS handshake
 * or a frame on the wrong port is told apart there).
 */
static bool head_worth_parsing(tern_ws_t *ws)
{
    size_t from = ws->head_scanned;
    if (from >= ws->rx_len)
        return false;
    ws->head_scanned = ws->rx_len;
    /* 48: four empty lines, a 32-character method and its space fit before it */
    bool worth = from < 48 || ws->rx_len >= TERN_HTTP_MAX_HEAD_BYTES;
    for (size_t i = from ? from - 1 : 0; i < ws->rx_len; i++) {
        uint8_t c = ws->rx[i];
        if (c == '\n')
            ws->head_line_start = i + 1;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            worth = true; /* LF, CR, or a byte no head may hold */
    }
    return worth || ws->rx_len - ws->head_line_start > TERN_HTTP_MAX_LINE;
}

static bool process_request(tern_ws_t *ws)
{
    if (!head_worth_parsing(ws))
        return false;
    if (!ws->request) {
        ws->request = tern_malloc(ws->ctx, sizeof(*ws->request));
        if (!ws->request) {
            end_ws(ws, TERN_WS_CAUSE_NOMEM);
            return false;
        }
    }
    int rc = tern_http_parse_request(ws->rx, ws->rx_len, ws->request);
    if (rc == TERN_ERR_AGAIN)
        return false;
    if (rc < 0) {
        /* RFC 6585 §5: 431 for a head over our limits; 400 for anything malformed. */
        reject_bad_http(ws, rc == TERN_ERR_TOO_LARGE ? 431 : 400);
        return false;
    }
    tern_http_request_t *req = ws->request;
    char *target = tern_strndup(ws->ctx, req->target, req->target_len);
    if (!target) {
        end_ws(ws, TERN_WS_CAUSE_NOMEM);
        return false;
    }
    tern_free(ws->ctx, ws->target);
    ws->target = target;
    ws->head_len = (size_t)rc;
    ws->request_is_head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    ws->hs = HS_WAIT_DECISION;
    push_event(ws, TERN_WS_EV_REQUEST, false, 0, 0);
    TERN_LOG_DEBUG(ws->ctx, "ws", "ws %u request upgrade=%d", ws->id, (int)req->upgrade);
    return false;
}

/* RFC 6455 §4.1, the client's checks of the server's response (items 1-6 of the list). */
static const char *find_response_error(tern_ws_t *ws, const tern_http_response_t *res)
{
    const tern_http_header_t *h = res->headers;
    size_t n = res->num_headers;
    if (res->status != 101)
        return "status is not 101";
    const tern_http_header_t *up = tern_http_find_header(h, n, "Upgrade");
    if (!up || !tern_http_has_token(up->value, up->value_len, "websocket"))
        return "no upgrade to websocket";
    bool conn = false; /* Connection may come in several field lines (RFC 9110 §5.3) */
    for (size_t i = 0; i < n; i++)
        conn = conn || (tern_http_find_header(&h[i], 1, "Connection") &&
                        tern_http_has_token(h[i].value, h[i].value_len, "Upgrade"));
    if (!conn)
        return "no connection upgrade";
    const tern_http_header_t *acc = tern_http_find_header(h, n, "Sec-WebSocket-Accept");
    if (!acc || acc->value_len != TERN_WS_ACCEPT_LEN ||
        memcmp(acc->value, ws->expected_accept, TERN_WS_ACCEPT_LEN) != 0)
        return "wrong sec-websocket-accept";
    const tern_http_header_t *ext = tern_http_find_header(h, n, "Sec-WebSocket-Extensions");
    if (ext && ext->value_len)
        return "extension not offered"; /* item 5: we offered none */
    const tern_http_header_t *proto = tern_http_find_header(h, n, "Sec-WebSocket-Protocol");
    if (proto && proto->value_len) {
        /* item 6: only the protocol we offered may come back. */
        if (!ws->protocol || strlen(ws->protocol) != proto->value_len ||
            memcmp(ws->protocol, proto->value, proto->value_len) != 0)
            return "protocol not offered";
    } else if (ws->protocol) {
        ws->protocol[0] = '\0'; /* the server chose none */
    }
    return NULL;
}

static bool process_response(tern_ws_t *ws)
{
    if (!head_worth_parsing(ws))
        return false;
    tern_http_response_t res;
    int rc = tern_http_parse_response(ws->rx, ws->rx_len, &res);
    if (rc == TERN_ERR_AGAIN)
        return false;
    const char *why = rc < 0 ? "malformed response" : find_response_error(ws, &res);
    if (why) {
        TERN_LOG_DEBUG(ws->ctx, "ws", "ws %u handshake failed: %s", ws->id, why);
        ws->http_status = rc < 0 ? 0 : res.status;
        end_ws(ws, TERN_WS_CAUSE_BAD_HANDSHAKE);
        return false;
    }
    ws->rx_parse = (size_t)rc;
    enter_open(ws);
    return true;
}

/* Handle what the receive buffer holds, until it is used up, the queue is full or we end. */
static void process(tern_ws_t *ws)
{
    while (ws->state != TERN_WS_STATE_CLOSED && ws->ev_count < WS_EVENT_QUEUE) {
        if (ws->state == TERN_WS_STATE_CONNECTING) {
            if (ws->hs != HS_WAIT_HEAD)
                return;
            bool more =
                ws->role == TERN_WS_ROLE_SERVER ? process_request(ws) : process_response(ws);
            if (!more)
                return;
        } else if (!process_frame(ws)) {
            return;
        }
    }
}

/* ---- public API ---- */

static int copy_config(tern_ws_t *ws, const tern_ws_config_t *cfg)
{
    ws->role = cfg->role;
    ws->max_message_bytes =
        cfg->max_message_bytes ? cfg->max_message_bytes : TERN_WS_DEFAULT_MAX_MESSAGE_BYTES;
    ws->max_output_bytes =
        cfg->max_output_bytes ? cfg->max_output_bytes : TERN_WS_DEFAULT_MAX_OUTPUT_BYTES;
    ws->handshake_timeout_us =
        pick_duration(cfg->handshake_timeout_us, TERN_WS_DEFAULT_HANDSHAKE_TIMEOUT_US);
    ws->ping_interval_us = pick_duration(cfg->ping_interval_us, TERN_WS_DEFAULT_PING_INTERVAL_US);
    ws->idle_timeout_us = pick_duration(cfg->idle_timeout_us, TERN_WS_DEFAULT_IDLE_TIMEOUT_US);
    ws->close_timeout_us = pick_duration(cfg->close_timeout_us, TERN_WS_DEFAULT_CLOSE_TIMEOUT_US);
    if (cfg->role != TERN_WS_ROLE_CLIENT)
        return cfg->role == TERN_WS_ROLE_SERVER ? TERN_OK : TERN_ERR_INVALID_ARG;
    const char *target = cfg->target ? cfg->target : "/";
    if (!cfg->host || !cfg->host[0] || !is_safe_text(cfg->host) || target[0] != '/' ||
        !is_safe_text(target) || strchr(target, ' ') ||
        (cfg->origin && !is_safe_text(cfg->origin)) ||
        (cfg->protocol && (!cfg->protocol[0] || !is_safe_text(cfg->protocol))) ||
        (cfg->num_headers && !cfg->headers))
        return TERN_ERR_INVALID_ARG;
    ws->target = tern_strdup(ws->ctx, target);
    if (!ws->target)
        return TERN_ERR_NOMEM;
    if (cfg->protocol && !(ws->protocol = tern_strdup(ws->ctx, cfg->protocol)))
        return TERN_ERR_NOMEM;
    return TERN_OK;
}

/* RFC 6455 §4.1: the client's opening handshake. */
static int write_request(tern_ws_t *ws, const tern_ws_config_t *cfg)
{
    uint8_t nonce[16];
    char key[TERN_BASE64_LEN(16)];
    if (tern_random_bytes(ws->ctx, nonce, sizeof(nonce)) < 0)
        return TERN_ERR_CRYPTO;
    tern_base64_encode(nonce, sizeof(nonce), key);
    if (tern_ws_accept_key(key, strlen(key), ws->expected_accept) < 0)
        return TERN_ERR_CRYPTO;
    for (size_t i = 0; i < cfg->num_headers; i++) {
        const tern_http_field_t *f = &cfg->headers[i];
        if (!f->name || !f->value || !f->name[0] || !is_safe_text(f->name) ||
            !is_safe_text(f->value))
            return TERN_ERR_INVALID_ARG;
    }
    tern_wbuf_t w;
    tern_wbuf_init(&w, ws->ctx, NULL, 0);
    tern_wbuf_printf(&w,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n",
                     ws->target, cfg->host, key);
    if (cfg->origin)
        tern_wbuf_printf(&w, "Origin: %s\r\n", cfg->origin);
    if (ws->protocol)
        tern_wbuf_printf(&w, "Sec-WebSocket-Protocol: %s\r\n", ws->protocol);
    for (size_t i = 0; i < cfg->num_headers; i++)
        tern_wbuf_printf(&w, "%s: %s\r\n", cfg->headers[i].name, cfg->headers[i].value);
    tern_wbuf_str(&w, "\r\n");
    int rc = w.err ? TERN_ERR_NOMEM : tx_append(ws, w.base, w.len);
    tern_wbuf_dispose(&w);
    return rc;
}

int tern_ws_new(tern_ctx_t *ctx, const tern_ws_config_t *cfg, tern_time_t now, tern_ws_t **out)
{
    static const tern_ws_config_t defaults = {0};
    if (!ctx || !out)
        return TERN_ERR_INVALID_ARG;
    *out = NULL;
    if (!cfg)
        cfg = &defaults;
    tern_ws_t *ws = tern_calloc(ctx, 1, sizeof(*ws));
    if (!ws)
        return TERN_ERR_NOMEM;
    ws->ctx = ctx;
    ws->id = tern_ctx_new_object_id(ctx);
    ws->now = now;
    ws->state = TERN_WS_STATE_CONNECTING;
    ws->hs = HS_WAIT_HEAD;
    ws->peer_code = TERN_WS_CLOSE_ABNORMAL;
    int rc = copy_config(ws, cfg);
    if (rc == TERN_OK && ws->role == TERN_WS_ROLE_CLIENT)
        rc = write_request(ws, cfg);
    if (rc < 0) {
        tern_ws_free(ws);
        return rc;
    }
    ws->handshake_deadline = add_time(now, ws->handshake_timeout_us);
    TERN_LOG_DEBUG(ctx, "ws", "ws %u new %s at %lld", ws->id,
                   ws->role == TERN_WS_ROLE_CLIENT ? "client" : "server", (long long)now);
    *out = ws;
    return TERN_OK;
}

void tern_ws_free(tern_ws_t *ws)
{
    if (!ws)
        return;
    tern_ctx_t *ctx = ws->ctx;
    tern_free(ctx, ws->request);
    tern_free(ctx, ws->target);
    tern_free(ctx, ws->protocol);
    tern_free(ctx, ws->rx);
    tern_free(ctx, ws->tx);
    tern_free(ctx, ws);
}

/* The most input kept while events wait to be drained. */
static size_t compute_undrained_limit(const tern_ws_t *ws)
{
    size_t m = ws->max_message_bytes;
    size_t lim = TERN_HTTP_MAX_HEAD_BYTES + WS_UNDRAINED_SLACK;
    return m > (SIZE_MAX - lim) / 2 ? SIZE_MAX : 2 * m + lim;
}

int tern_ws_handle_input(tern_ws_t *ws, tern_time_t now, const uint8_t *data, size_t len)
{
    if (!ws || (len && !data))
        return TERN_ERR_INVALID_ARG;
    advance_time(ws, now);
    settle(ws);
    ws->stats.bytes_in += len;
    if (ws->state == TERN_WS_STATE_CLOSED) {
        ws->stats.input_dropped += len;
        return TERN_OK;
    }
    if (len == 0)
        return TERN_OK;
    if (ws->ev_count > 0 && ws->rx_len + len > compute_undrained_limit(ws)) {
        ws->stats.bytes_in -= len;
        return TERN_ERR_AGAIN;
    }
    if (ws->hs == HS_WAIT_DECISION &&
        ws->rx_len + len > ws->head_len + ws->max_message_bytes + TERN_WS_MAX_FRAME_HEADER) {
        /* RFC 6455 §4.1: a client waits for the response before sending frames; one that
         * floods while the server decides is cut off rather than buffered. */
        ws->stats.input_dropped += len;
        reject_bad_http(ws, 400);
        return TERN_OK;
    }
    if (rx_append(ws, data, len) < 0) {
        end_ws(ws, TERN_WS_CAUSE_NOMEM);
        return TERN_ERR_NOMEM;
    }
    ws->last_rx = ws->now;
    process(ws);
    return TERN_OK;
}

int tern_ws_handle_eof(tern_ws_t *ws, tern_time_t now)
{
    if (!ws)
        return TERN_ERR_INVALID_ARG;
    advance_time(ws, now);
    settle(ws);
    end_ws(ws, TERN_WS_CAUSE_EOF);
    return TERN_OK;
}

static tern_time_t compute_ping_deadline(const tern_ws_t *ws)
{
    return add_time(TERN_MAX(ws->last_rx, ws->last_ping), ws->ping_interval_us);
}

tern_time_t tern_ws_next_deadline(const tern_ws_t *ws)
{
    if (!ws)
        return TERN_TIME_NEVER;
    switch (ws->state) {
    case TERN_WS_STATE_CONNECTING:
        return ws->handshake_deadline;
    case TERN_WS_STATE_OPEN:
        return TERN_MIN(compute_ping_deadline(ws), add_time(ws->last_rx, ws->idle_timeout_us));
    case TERN_WS_STATE_CLOSING:
        return ws->close_deadline;
    default:
        return TERN_TIME_NEVER;
    }
}

int tern_ws_handle_timeout(tern_ws_t *ws, tern_time_t now)
{
    if (!ws)
        return TERN_ERR_INVALID_ARG;
    advance_time(ws, now);
    settle(ws);
    now = ws->now;
    switch (ws->state) {
    case TERN_WS_STATE_CONNECTING:
        if (now >= ws->handshake_deadline)
            end_ws(ws, TERN_WS_CAUSE_HANDSHAKE_TIMEOUT);
        break;
    case TERN_WS_STATE_OPEN:
        if (now >= add_time(ws->last_rx, ws->idle_timeout_us)) {
            end_ws(ws, TERN_WS_CAUSE_IDLE_TIMEOUT);
        } else if (now >= compute_ping_deadline(ws)) {
            ws->last_ping = now;
            if (send_frame(ws, TERN_WS_OP_PING, NULL, 0) < 0)
                end_ws(ws, TERN_WS_CAUSE_NOMEM);
            else
                ws->stats.pings_sent++;
        }
        break;
    case TERN_WS_STATE_CLOSING:
        if (now >= ws->close_deadline)
            end_ws(ws, TERN_WS_CAUSE_CLOSE_TIMEOUT);
        break;
    default:
        break;
    }
    return TERN_OK;
}

static void make_close_event(tern_ws_t *ws, tern_ws_event_t *out)
{
    out->type = TERN_WS_EV_CLOSE;
    out->u.close.cause = ws->cause;
    out->u.close.by_peer = ws->by_peer;
    out->u.close.code = ws->peer_code;
    out->u.close.reason = ws->peer_reason;
    out->u.close.reason_len = ws->peer_reason_len;
    out->u.close.sent_code = ws->sent_code;
    out->u.close.http_status = ws->http_status;
}

bool tern_ws_poll_event(tern_ws_t *ws, tern_ws_event_t *out)
{
    if (!ws || !out)
        return false;
    if (ws->ev_count == 0) {
        /* Input left behind a full queue, or frames that came with the request. */
        settle(ws);
        process(ws);
    }
    memset(out, 0, sizeof(*out));
    if (ws->ev_count == 0) {
        if (!ws->close_pending)
            return false;
        ws->close_pending = false;
        make_close_event(ws, out);
        return true;
    }
    ws_event_rec_t *e = &ws->ev[ws->ev_head];
    ws->ev_head = (ws->ev_head + 1) % WS_EVENT_QUEUE;
    ws->ev_count--;
    out->type = e->type;
    switch (e->type) {
    case TERN_WS_EV_REQUEST:
        out->u.request.request = ws->request;
        break;
    case TERN_WS_EV_OPEN:
        out->u.open.target = tern_ws_target(ws);
        out->u.open.protocol = tern_ws_protocol(ws);
        break;
    case TERN_WS_EV_MESSAGE:
        out->u.message.is_text = e->is_text;
        out->u.message.data = ws->rx + e->off;
        out->u.message.len = e->len;
        break;
    default:
        break;
    }
    return true;
}

bool tern_ws_poll_output(tern_ws_t *ws, const uint8_t **data, size_t *len)
{
    if (!ws || !data || !len)
        return false;
    *len = count_pending(ws);
    *data = *len ? ws->tx + ws->tx_off : NULL;
    return *len > 0;
}

void tern_ws_consume_output(tern_ws_t *ws, size_t n)
{
    if (!ws)
        return;
    n = TERN_MIN(n, count_pending(ws));
    ws->tx_off += n;
    ws->stats.bytes_out += n;
    if (ws->tx_off == ws->tx_len) {
        ws->tx_off = ws->tx_len = 0;
        if (ws->tx_cap > WS_KEEP_BUFFER_BYTES) {
            tern_free(ws->ctx, ws->tx);
            ws->tx = NULL;
            ws->tx_cap = 0;
        }
    }
}

size_t tern_ws_buffered_amount(const tern_ws_t *ws)
{
    return ws ? count_pending(ws) : 0;
}

static bool is_waiting_decision(const tern_ws_t *ws)
{
    return ws->role == TERN_WS_ROLE_SERVER && ws->state == TERN_WS_STATE_CONNECTING &&
           ws->hs == HS_WAIT_DECISION && ws->request;
}

int tern_ws_accept(tern_ws_t *ws, tern_time_t now, const char *protocol)
{
    if (!ws)
        return TERN_ERR_INVALID_ARG;
    advance_time(ws, now);
    if (!is_waiting_decision(ws) || ws->request->upgrade != TERN_WS_UPGRADE_VALID)
        return TERN_ERR_INVALID_STATE;
    if (protocol && (!protocol[0] || !is_safe_text(protocol)))
        return TERN_ERR_INVALID_ARG;
    char *proto = protocol ? tern_strdup(ws->ctx, protocol) : NULL;
    if (protocol && !proto)
        return TERN_ERR_NOMEM;
    /* RFC 6455 §4.2.2 step 5. */
    tern_wbuf_t w;
    tern_wbuf_init(&w, ws->ctx, NULL, 0);
    tern_wbuf_printf(&w,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
                     ws->request->accept);
    if (proto)
        tern_wbuf_printf(&w, "Sec-WebSocket-Protocol: %s\r\n", proto);
    tern_wbuf_str(&w, "\r\n");
    int rc = w.err ? TERN_ERR_NOMEM : tx_append(ws, w.base, w.len);
    tern_wbuf_dispose(&w);
    if (rc < 0) {
        tern_free(ws->ctx, proto);
        return rc;
    }
    tern_free(ws->ctx, ws->protocol);
    ws->protocol = proto;
    ws->request_done = true;
    ws->rx_parse = ws->head_len; /* frames behind the head are parsed at the next poll */
    enter_open(ws);
    TERN_LOG_DEBUG(ws->ctx, "ws", "ws %u accepted at %lld", ws->id, (long long)ws->now);
    return TERN_OK;
}

int tern_ws_respond(tern_ws_t *ws, tern_time_t now, int status, const tern_http_field_t *fields,
                    size_t num_fields, const void *body, size_t body_len)
{
    if (!ws)
        return TERN_ERR_INVALID_ARG;
    advance_time(ws, now);
    if (!is_waiting_decision(ws))
        return TERN_ERR_INVALID_STATE;
    if (num_fields > TERN_HTTP_MAX_HEADERS || (num_fields && !fields))
        return TERN_ERR_INVALID_ARG;
    tern_http_field_t all[TERN_HTTP_MAX_HEADERS + 1];
    if (num_fields)
        memcpy(all, fields, num_fields * sizeof(*fields));
    size_t n = num_fields;
    if (status == 426) /* RFC 6455 §4.4: say which version we speak */
        all[n++] = (tern_http_field_t){"Sec-WebSocket-Version", "13"};
    tern_wbuf_t w;
    tern_wbuf_init(&w, ws->ctx, NULL, 0);
    int rc = tern_http_write_response(&w, status, all, n, body, body_len, ws->request_is_head);
    if (rc == TERN_OK)
        rc = tx_append(ws, w.base, w.len);
    tern_wbuf_dispose(&w);
    if (rc < 0)
        return rc;
    ws->request_done = true;
    ws->rx_parse = ws->rx_len;
    ws->http_status = status;
    ws->hs = HS_DONE;
    end_ws(ws, TERN_WS_CAUSE_HTTP_RESPONSE);
    return TERN_OK;
}

static int send_message(tern_ws_t *ws, tern_time_t now, uint8_t opcode, const void *data,
                        size_t len)
{
    if (!ws || (len && !data))
        return TERN_ERR_INVALID_ARG;
    advance_time(ws, now);
    if (ws->state != TERN_WS_STATE_OPEN)
        return TERN_ERR_INVALID_STATE;
    int rc = send_frame(ws, opcode, data, len);
    if (rc == TERN_OK)
        ws->stats.messages_out++;
    return rc;
}

int tern_ws_send_text(tern_ws_t *ws, tern_time_t now, const char *data, size_t len)
{
    if (data && !tern_utf8_valid((const uint8_t *)data, len))
        return TERN_ERR_INVALID_ARG;
    return send_message(ws, now, TERN_WS_OP_TEXT, data, len);
}

int tern_ws_send_binary(tern_ws_t *ws, tern_time_t now, const void *data, size_t len)
{
    return send_message(ws, now, TERN_WS_OP_BINARY, data, len);
}

int tern_ws_ping(tern_ws_t *ws, tern_time_t now, const void *data, size_t len)
{
    if (!ws || (len && !data) || len > TERN_WS_MAX_CONTROL_PAYLOAD)
        return TERN_ERR_INVALID_ARG;
    advance_time(ws, now);
    if (ws->state != TERN_WS_STATE_OPEN)
        return TERN_ERR_INVALID_STATE;
    int rc = send_frame(ws, TERN_WS_OP_PING, data, len);
    if (rc == TERN_OK) {
        ws->stats.pings_sent++;
        ws->last_ping = ws->now;
    }
    return rc;
}

int tern_ws_close(tern_ws_t *ws, tern_time_t now, uint16_t code, const char *reason)
{
    if (!ws)
        return TERN_ERR_INVALID_ARG;
    size_t rlen = reason ? strlen(reason) : 0;
    if ((code && !tern_ws_close_code_valid(code)) || (rlen && !code) ||
        rlen > TERN_WS_MAX_CLOSE_REASON || !tern_utf8_valid((const uint8_t *)reason, rlen))
        return TERN_ERR_INVALID_ARG;
    advance_time(ws, now);
    if (ws->state == TERN_WS_STATE_CONNECTING) {
        end_ws(ws, TERN_WS_CAUSE_CLEAN);
        return TERN_OK;
    }
    if (ws->state != TERN_WS_STATE_OPEN)
        return TERN_OK;
    int rc = send_close_frame(ws, code, reason, rlen);
    if (rc < 0)
        return rc;
    ws->state = TERN_WS_STATE_CLOSING;
    ws->close_deadline = add_time(ws->now, ws->close_timeout_us);
    return TERN_OK;
}

tern_ws_state_t tern_ws_state(const tern_ws_t *ws)
{
    return ws->state;
}

tern_ws_role_t tern_ws_role(const tern_ws_t *ws)
{
    return ws->role;
}

const char *tern_ws_target(const tern_ws_t *ws)
{
    return ws->target ? ws->target : "";
}

const char *tern_ws_protocol(const tern_ws_t *ws)
{
    return ws->protocol && ws->hs == HS_DONE ? ws->protocol : "";
}

void tern_ws_get_stats(const tern_ws_t *ws, tern_ws_stats_t *out)
{
    *out = ws->stats;
}
