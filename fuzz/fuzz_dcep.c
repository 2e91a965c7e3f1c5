/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the DCEP codec (RFC 8832 §5) and the data channel manager's handling of peer input.
 *
 * 1. The whole input is parsed as a DCEP message; what parses is encoded again and must give
 *    the same bytes (the codec is strict, so the encoding is unique) and parse to the same
 *    fields.
 * 2. The input is then read as a list of SCTP events for a manager: each step is
 *    [op][stream hi][stream lo][len][len bytes of payload], where op picks a MESSAGE with one
 *    of the PPIDs (DCEP included), a stream reset in either direction, SEND_READY, CONNECTED,
 *    CLOSED, or an application action (create, send, close a channel). The manager is attached
 *    to an association that never connects, so nothing is sent, and the process-wide usrsctp
 *    stack is started once and kept (its start-up is slow).
 * 3. The input is also read as an SCTP packet by the association's packet helpers (sctp_wire.c,
 *    the RE-CONFIG and SACK readers), which see the same untrusted DTLS payloads.
 * Deterministic: no clock, a fixed random source, and every object freed after each input.
 */
#include "dc/dc.h"

#include <stdlib.h>
#include <string.h>

static tern_ctx_t ctx;
static tern_sctp_t *sctp;

static int fixed_random(void *user, uint8_t *buf, size_t len)
{
    (void)user;
    memset(buf, 0x5a, len);
    return 0;
}

static void setup(void)
{
    if (sctp)
        return;
    tern_ctx_config_t cfg = {.random_bytes = fixed_random};
    tern_ctx_init_base(&ctx, &cfg);
    if (tern_sctp_new(&ctx, NULL, 1000000, &sctp) != TERN_OK)
        abort();
}

static void check_round_trip(const uint8_t *data, size_t size)
{
    tern_dcep_msg_t m;
    if (tern_dcep_parse(data, size, &m) != TERN_OK)
        return;
    uint8_t storage[128];
    tern_wbuf_t w;
    tern_wbuf_init(&w, &ctx, storage, sizeof storage);
    if (tern_dcep_encode(&m, &w) != TERN_OK)
        abort();
    if (w.len != size || memcmp(w.base, data, size) != 0)
        abort();
    tern_dcep_msg_t again;
    if (tern_dcep_parse(w.base, w.len, &again) != TERN_OK)
        abort();
    if (again.type != m.type || again.channel_type != m.channel_type ||
        again.priority != m.priority || again.reliability != m.reliability ||
        again.label_len != m.label_len || again.protocol_len != m.protocol_len ||
        (m.label_len && memcmp(again.label, m.label, m.label_len) != 0) ||
        (m.protocol_len && memcmp(again.protocol, m.protocol, m.protocol_len) != 0))
        abort();
    tern_wbuf_dispose(&w);
}

static void check_wire(const uint8_t *data, size_t size)
{
    size_t off, len;
    uint32_t tsn, cum;
    (void)tern_sctp_wire_sack_cum(data, size, &cum);
    if (!tern_sctp_wire_find_reset_request(data, size, &off, &len, &tsn))
        return;
    if (off + len > size || len < 4)
        abort();
    uint8_t *rest = malloc(size);
    if (!rest)
        return;
    size_t n = tern_sctp_wire_without_chunk(data, size, off, len, rest);
    if (n >= size || n < off)
        abort();
    free(rest);
}

static void drain(tern_dcm_t *m, tern_dc_t **last)
{
    tern_event_t ev;
    while (tern_dcm_poll_event(m, &ev)) {
        /* Touch what the event points at, so a stale pointer shows under ASan. */
        if (ev.dc)
            (void)tern_dc_state(ev.dc);
        if (ev.type == TERN_EV_DC_MESSAGE && ev.u.message.len)
            (void)ev.u.message.data[ev.u.message.len - 1];
        if (ev.type == TERN_EV_DATA_CHANNEL)
            *last = ev.dc;
        if (ev.type == TERN_EV_DC_CLOSE && ev.dc == *last)
            *last = NULL;
    }
}

static const uint32_t ppids[] = {
    TERN_PPID_DCEP,
    TERN_PPID_STRING,
    TERN_PPID_BINARY,
    TERN_PPID_STRING_EMPTY,
    TERN_PPID_BINARY_EMPTY,
    TERN_PPID_STRING_PARTIAL,
    0,
};

static void run_events(const uint8_t *data, size_t size)
{
    tern_dcm_config_t cfg = {.max_channels = 8, .max_buffered_bytes = 4096};
    tern_dcm_t *m = NULL;
    if (tern_dcm_new(&ctx, &cfg, &m) != TERN_OK)
        return;
    tern_dcm_set_dtls_role(m, size & 1);
    tern_dcm_attach(m, 1000000, sctp, 1024);
    tern_dc_t *last = NULL; /* a channel we may act on (valid until its CLOSE is polled) */
    tern_time_t now = 1000000;
    tern_rbuf_t r;
    tern_rbuf_init(&r, data, size);
    while (tern_rbuf_left(&r) >= 4) {
        uint8_t op = tern_rbuf_u8(&r);
        uint16_t stream = tern_rbuf_u16(&r);
        uint8_t len = tern_rbuf_u8(&r);
        size_t take = TERN_MIN(len, tern_rbuf_left(&r));
        const uint8_t *payload = tern_rbuf_take(&r, take);
        tern_sctp_event_t ev;
        memset(&ev, 0, sizeof ev);
        now += 1000;
        int kind = op % 12;
        if (kind < (int)TERN_ARRAY_LEN(ppids)) {
            ev.type = TERN_SCTP_EV_MESSAGE;
            ev.u.message.stream = stream;
            ev.u.message.ppid = ppids[kind];
            ev.u.message.data = payload;
            ev.u.message.len = take;
            ev.u.message.unordered = op & 0x80;
        }
        switch (kind) {
        case 7:
            ev.type = TERN_SCTP_EV_STREAM_RESET;
            ev.u.stream_reset.stream = stream;
            ev.u.stream_reset.incoming = op & 0x40;
            ev.u.stream_reset.outgoing = op & 0x80;
            break;
        case 8:
            ev.type = (op & 0x80) ? TERN_SCTP_EV_SEND_READY : TERN_SCTP_EV_CONNECTED;
            break;
        case 9: {
            tern_dc_t *dc = NULL;
            tern_dc_init_t init = {.negotiated = op & 0x80, .id = stream, .unordered = op & 0x40};
            if (tern_dcm_create_channel(m, now, "fuzz", &init, &dc) == TERN_OK)
                last = dc;
            break;
        }
        case 10:
            if (last && (op & 0x80))
                tern_dc_close(last, now);
            else if (last)
                tern_dc_send(last, now, payload, take);
            break;
        case 11:
            ev.type = (op & 0x80) ? TERN_SCTP_EV_CLOSED : TERN_SCTP_EV_FAILED;
            break;
        default:
            break;
        }
        if (ev.type != TERN_SCTP_EV_NONE)
            tern_dcm_handle_sctp_event(m, now, &ev);
        drain(m, &last);
    }
    tern_dcm_close_all(m, now);
    drain(m, &last);
    tern_dcm_detach(m, now);
    drain(m, &last);
    tern_dcm_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    setup();
    check_round_trip(data, size);
    check_wire(data, size);
    run_events(data, size);
    return 0;
}
