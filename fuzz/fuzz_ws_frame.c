/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the WebSocket endpoint's frame handling (RFC 6455 §5-§7) after a valid opening
 * handshake.
 *
 * The first input byte is a configuration: bit 0 the role (0: a server that has accepted the
 * RFC 6455 §1.2 request, so frames must be masked; 1: a client that has received a valid 101,
 * so frames must not be), bits 1-3 the size of the pieces the rest is fed in (1, 2, 3, 7, 16,
 * 100, 1000 bytes or all at once), bit 4 a small message limit (200 bytes instead of 64 KiB),
 * bit 5 a small output limit (300 bytes), bit 6 a time step after each piece (the next input
 * byte, in seconds, so the keepalive, idle and close timers run), bit 7 echo every message
 * back (the send path and its output limit).
 *
 * Checked after every piece: at most one CLOSE event and nothing after it, text messages are
 * UTF-8, messages fit the limit, the output stays within its bound, and the round trip: each
 * message received is sent by a reference client to a reference server (both in memory) and
 * must arrive identical. The frame header at the start of the input is also parsed, written
 * back and compared. Deterministic: no clock, a fixed random source; everything is freed.
 */
#include "ws/ws.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_INPUT 70000 /* a 64 KiB message with its header, and some more */

static tern_ctx_t ctx;

static int fixed_random(void *user, uint8_t *buf, size_t len)
{
    (void)user;
    memset(buf, 0x5a, len);
    return 0;
}

static const char request[] = "GET /ws/fuzz HTTP/1.1\r\n"
                              "Host: fuzz.example\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";

typedef struct fuzz_state {
    tern_time_t now;
    tern_ws_t *ws;
    size_t max_message;
    size_t max_output;
    bool echo;
    bool closed;
    tern_ws_t *ref_client; /* the round trip */
    tern_ws_t *ref_server;
} fuzz_state_t;

/* Move everything the endpoint wrote nowhere: the peer reads instantly. */
static void discard_output(tern_ws_t *ws)
{
    tern_ws_consume_output(ws, tern_ws_buffered_amount(ws));
}

/* Pass bytes from one endpoint to another until both are quiet; returns the server's event. */
static void ref_exchange(fuzz_state_t *st, const uint8_t *msg, size_t len, bool is_text)
{
    const uint8_t *data;
    size_t n;
    while (tern_ws_poll_output(st->ref_client, &data, &n)) {
        if (tern_ws_handle_input(st->ref_server, st->now, data, n) != TERN_OK)
            abort();
        tern_ws_consume_output(st->ref_client, n);
    }
    tern_ws_event_t ev;
    if (!tern_ws_poll_event(st->ref_server, &ev) || ev.type != TERN_WS_EV_MESSAGE ||
        ev.u.message.is_text != is_text || ev.u.message.len != len ||
        (len && memcmp(ev.u.message.data, msg, len) != 0))
        abort();
    if (tern_ws_poll_event(st->ref_server, &ev))
        abort();
    discard_output(st->ref_server);
}

static void round_trip(fuzz_state_t *st, const uint8_t *msg, size_t len, bool is_text)
{
    int rc = is_text ? tern_ws_send_text(st->ref_client, st->now, (const char *)msg, len)
                     : tern_ws_send_binary(st->ref_client, st->now, msg, len);
    if (rc != TERN_OK)
        abort();
    ref_exchange(st, msg, len, is_text);
}

static void check_message(fuzz_state_t *st, const tern_ws_event_t *ev)
{
    const uint8_t *data = ev->u.message.data;
    size_t len = ev->u.message.len;
    if (len > st->max_message || (len && !data))
        abort();
    if (ev->u.message.is_text && !tern_utf8_valid(data, len))
        abort();
    round_trip(st, data, len, ev->u.message.is_text);
    if (st->echo) {
        int rc = ev->u.message.is_text ? tern_ws_send_text(st->ws, st->now, (const char *)data, len)
                                       : tern_ws_send_binary(st->ws, st->now, data, len);
        if (rc != TERN_OK && rc != TERN_ERR_AGAIN && rc != TERN_ERR_TOO_LARGE &&
            rc != TERN_ERR_INVALID_STATE)
            abort();
    }
}

static void drain(fuzz_state_t *st)
{
    tern_ws_event_t ev;
    while (tern_ws_poll_event(st->ws, &ev)) {
        if (st->closed)
            abort(); /* nothing after the CLOSE event */
        if (ev.type == TERN_WS_EV_MESSAGE)
            check_message(st, &ev);
        else if (ev.type == TERN_WS_EV_CLOSE)
            st->closed = true;
        else
            abort(); /* REQUEST and OPEN came before the fuzzed part */
    }
    if (st->closed != (tern_ws_state(st->ws) == TERN_WS_STATE_CLOSED))
        abort();
    /* Data frames respect the limit; a pong (only below it) and a close may go past it. */
    if (tern_ws_buffered_amount(st->ws) > st->max_output + 2 * (TERN_WS_MAX_FRAME_HEADER + 125))
        abort();
    discard_output(st->ws);
}

static tern_ws_t *open_server(fuzz_state_t *st, const tern_ws_config_t *cfg)
{
    tern_ws_t *ws = NULL;
    tern_ws_event_t ev;
    if (tern_ws_new(&ctx, cfg, st->now, &ws) != TERN_OK ||
        tern_ws_handle_input(ws, st->now, (const uint8_t *)request, sizeof(request) - 1) ||
        !tern_ws_poll_event(ws, &ev) || ev.type != TERN_WS_EV_REQUEST ||
        tern_ws_accept(ws, st->now, NULL) != TERN_OK || !tern_ws_poll_event(ws, &ev) ||
        ev.type != TERN_WS_EV_OPEN)
        abort();
    discard_output(ws);
    return ws;
}

/* A client, opened against a server endpoint in memory. */
static tern_ws_t *open_client(fuzz_state_t *st, const tern_ws_config_t *cfg, tern_ws_t **peer)
{
    tern_ws_t *c = NULL, *s = NULL;
    tern_ws_event_t ev;
    const uint8_t *data;
    size_t n;
    if (tern_ws_new(&ctx, cfg, st->now, &c) != TERN_OK ||
        tern_ws_new(&ctx, NULL, st->now, &s) != TERN_OK || !tern_ws_poll_output(c, &data, &n) ||
        tern_ws_handle_input(s, st->now, data, n) != TERN_OK)
        abort();
    tern_ws_consume_output(c, n);
    if (!tern_ws_poll_event(s, &ev) || ev.type != TERN_WS_EV_REQUEST ||
        tern_ws_accept(s, st->now, NULL) != TERN_OK || !tern_ws_poll_output(s, &data, &n) ||
        tern_ws_handle_input(c, st->now, data, n) != TERN_OK || !tern_ws_poll_event(c, &ev) ||
        ev.type != TERN_WS_EV_OPEN)
        abort();
    tern_ws_consume_output(s, n);
    if (!tern_ws_poll_event(s, &ev) || ev.type != TERN_WS_EV_OPEN)
        abort();
    if (peer)
        *peer = s;
    else
        tern_ws_free(s);
    return c;
}

static void check_header_round_trip(const uint8_t *data, size_t size)
{
    tern_ws_frame_header_t h;
    if (tern_ws_frame_header_parse(data, size, &h) != TERN_OK)
        return;
    if (h.header_len < 2 || h.header_len > TERN_WS_MAX_FRAME_HEADER || h.header_len > size)
        abort();
    uint8_t out[TERN_WS_MAX_FRAME_HEADER];
    size_t n =
        tern_ws_frame_header_write(out, h.fin, h.opcode, h.payload_len, h.masked ? h.mask : NULL);
    out[0] |= (uint8_t)(h.rsv << 4);
    if (n != h.header_len || memcmp(out, data, n) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    if (!ctx.random_bytes) {
        tern_ctx_config_t cfg = {.random_bytes = fixed_random};
        tern_ctx_init_base(&ctx, &cfg);
    }
    static const size_t pieces[] = {1, 2, 3, 7, 16, 100, 1000, FUZZ_MAX_INPUT};
    uint8_t conf = data[0];
    data++;
    size--;
    check_header_round_trip(data, size);

    fuzz_state_t st = {.now = 1000000};
    bool client = conf & 1;
    size_t piece = pieces[(conf >> 1) & 7];
    bool step_time = conf & 0x40;
    st.echo = conf & 0x80;
    st.max_message = conf & 0x10 ? 200 : TERN_WS_DEFAULT_MAX_MESSAGE_BYTES;
    st.max_output = conf & 0x20 ? 300 : TERN_WS_DEFAULT_MAX_OUTPUT_BYTES;
    tern_ws_config_t cfg = {.role = client ? TERN_WS_ROLE_CLIENT : TERN_WS_ROLE_SERVER,
                            .host = "fuzz.example",
                            .target = "/ws/fuzz",
                            .max_message_bytes = st.max_message,
                            .max_output_bytes = st.max_output};
    tern_ws_t *peer = NULL;
    st.ws = client ? open_client(&st, &cfg, &peer) : open_server(&st, &cfg);
    tern_ws_free(peer);
    tern_ws_config_t ref_cfg = {.role = TERN_WS_ROLE_CLIENT,
                                .host = "ref",
                                .max_output_bytes = 1 << 20,
                                .ping_interval_us = TERN_TIME_NEVER,
                                .idle_timeout_us = TERN_TIME_NEVER};
    st.ref_client = open_client(&st, &ref_cfg, &st.ref_server);

    size_t off = 0;
    while (off < size) {
        size_t n = TERN_MIN(piece, size - off);
        if (tern_ws_handle_input(st.ws, st.now, data + off, n) != TERN_OK)
            abort();
        drain(&st);
        if (step_time) {
            st.now += TERN_SEC(data[off]);
            if (tern_ws_next_deadline(st.ws) <= st.now)
                tern_ws_handle_timeout(st.ws, st.now);
            drain(&st);
        }
        off += n;
    }
    tern_ws_handle_eof(st.ws, st.now);
    drain(&st);
    if (!st.closed)
        abort(); /* the end of the stream always ends the endpoint */

    tern_ws_free(st.ws);
    tern_ws_free(st.ref_client);
    tern_ws_free(st.ref_server);
    return 0;
}
