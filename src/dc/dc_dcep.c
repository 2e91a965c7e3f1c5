/* SPDX-License-Identifier: MIT */
/*
 * The Data Channel Establishment Protocol codec (RFC 8832 §5): tern_dcep_parse reads a
 * DATA_CHANNEL_OPEN or DATA_CHANNEL_ACK from the payload of a PPID 50 message, and
 * tern_dcep_encode writes one. Parsing is strict: every length must match the message exactly.
 */
#include "dc/dc.h"

#include <string.h>

static bool channel_type_known(uint8_t type)
{
    switch (type & (uint8_t)~TERN_DCEP_CHANNEL_UNORDERED) {
    case TERN_DCEP_CHANNEL_RELIABLE:
    case TERN_DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT:
    case TERN_DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED:
        return true;
    default:
        return false;
    }
}

static int parse_open(tern_rbuf_t *r, tern_dcep_msg_t *m)
{
    m->channel_type = tern_rbuf_u8(r);
    m->priority = tern_rbuf_u16(r);
    m->reliability = tern_rbuf_u32(r);
    m->label_len = tern_rbuf_u16(r);
    m->protocol_len = tern_rbuf_u16(r);
    m->label = tern_rbuf_take(r, m->label_len);
    m->protocol = tern_rbuf_take(r, m->protocol_len);
    if (r->err || tern_rbuf_left(r) != 0 || !channel_type_known(m->channel_type))
        return TERN_ERR_PARSE;
    return TERN_OK;
}

int tern_dcep_parse(const uint8_t *data, size_t len, tern_dcep_msg_t *out)
{
    if (!out || (!data && len))
        return TERN_ERR_INVALID_ARG;
    tern_rbuf_t r;
    tern_rbuf_init(&r, data, len);
    tern_dcep_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = tern_rbuf_u8(&r);
    if (r.err)
        return TERN_ERR_PARSE;
    switch (m.type) {
    case TERN_DCEP_ACK:
        /* RFC 8832 §5.2: the ACK is the message type alone. */
        if (tern_rbuf_left(&r) != 0)
            return TERN_ERR_PARSE;
        break;
    case TERN_DCEP_OPEN:
        if (parse_open(&r, &m) != TERN_OK)
            return TERN_ERR_PARSE;
        break;
    default:
        return TERN_ERR_PARSE;
    }
    *out = m;
    return TERN_OK;
}

int tern_dcep_encode(const tern_dcep_msg_t *msg, tern_wbuf_t *w)
{
    if (!msg || !w)
        return TERN_ERR_INVALID_ARG;
    if (msg->type == TERN_DCEP_ACK) {
        tern_wbuf_u8(w, TERN_DCEP_ACK);
        return w->err ? TERN_ERR_NOMEM : TERN_OK;
    }
    if (msg->type != TERN_DCEP_OPEN || !channel_type_known(msg->channel_type) ||
        (msg->label_len && !msg->label) || (msg->protocol_len && !msg->protocol))
        return TERN_ERR_INVALID_ARG;
    tern_wbuf_u8(w, TERN_DCEP_OPEN);
    tern_wbuf_u8(w, msg->channel_type);
    tern_wbuf_u16(w, msg->priority);
    tern_wbuf_u32(w, msg->reliability);
    tern_wbuf_u16(w, msg->label_len);
    tern_wbuf_u16(w, msg->protocol_len);
    tern_wbuf_bytes(w, msg->label, msg->label_len);
    tern_wbuf_bytes(w, msg->protocol, msg->protocol_len);
    return w->err ? TERN_ERR_NOMEM : TERN_OK;
}
