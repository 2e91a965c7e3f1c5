/* SPDX-License-Identifier: MIT */
/*
 * RTP headers (RFC 3550 §5.1) and their extension elements (RFC 8285 §4), parsed from untrusted
 * datagrams into borrowed views and written back from them; and the RFC 7983 §7
 * demultiplexer's classification of a datagram, with RFC 5761 §4 to tell RTCP from RTP.
 * Verbs: tern_srtp_demux, tern_rtp_parse, tern_rtp_parse_header, tern_rtp_write,
 * tern_rtp_ext_iter_init, tern_rtp_ext_next, tern_rtp_ext_write, tern_rtp_ext_pad.
 */
#include "srtp/srtp.h"

#include <string.h>

/* RFC 3550 §5.3.1: the extension's length is a count of 32-bit words in 16 bits. */
#define RTP_EXT_MAX_BYTES (65535u * 4)

tern_demux_t tern_srtp_demux(const uint8_t *data, size_t len)
{
    if (!data || len == 0)
        return TERN_DEMUX_DROP;
    uint8_t b = data[0];
    if (b <= 3)
        return TERN_DEMUX_STUN;
    if (b >= 16 && b <= 19)
        return TERN_DEMUX_ZRTP;
    if (b >= 20 && b <= 63)
        return TERN_DEMUX_DTLS;
    if (b >= 64 && b <= 79)
        return TERN_DEMUX_TURN_CHANNEL;
    if (b >= 128 && b <= 191) {
        if (len < 2)
            return TERN_DEMUX_DROP;
        /* RFC 5761 §4: RTCP packet types 192..223 never collide with RTP payload types
         * (which avoid 64..95 when multiplexed), whatever the marker bit. */
        return data[1] >= 192 && data[1] <= 223 ? TERN_DEMUX_RTCP : TERN_DEMUX_RTP;
    }
    return TERN_DEMUX_DROP;
}

const char *tern_srtp_demux_name(tern_demux_t d)
{
    switch (d) {
    case TERN_DEMUX_STUN:
        return "stun";
    case TERN_DEMUX_ZRTP:
        return "zrtp";
    case TERN_DEMUX_DTLS:
        return "dtls";
    case TERN_DEMUX_TURN_CHANNEL:
        return "turn-channel";
    case TERN_DEMUX_RTP:
        return "rtp";
    case TERN_DEMUX_RTCP:
        return "rtcp";
    case TERN_DEMUX_DROP:
        break;
    }
    return "drop";
}

/* The fixed header, the CSRC list and the extension; the payload is the rest. */
static int parse_fixed(const uint8_t *data, size_t len, tern_rtp_header_t *h)
{
    if (!data || len < TERN_RTP_HEADER_MIN)
        return TERN_ERR_PARSE;
    tern_rbuf_t r;
    tern_rbuf_init(&r, data, len);
    uint8_t b0 = tern_rbuf_u8(&r);
    uint8_t b1 = tern_rbuf_u8(&r);
    if (b0 >> 6 != TERN_RTP_VERSION)
        return TERN_ERR_PARSE;
    memset(h, 0, sizeof *h);
    h->padding = b0 & 0x20;
    h->extension = b0 & 0x10;
    h->csrc_count = b0 & 0x0f;
    h->marker = b1 & 0x80;
    h->payload_type = b1 & 0x7f;
    h->sequence = tern_rbuf_u16(&r);
    h->timestamp = tern_rbuf_u32(&r);
    h->ssrc = tern_rbuf_u32(&r);
    for (unsigned i = 0; i < h->csrc_count; i++)
        h->csrc[i] = tern_rbuf_u32(&r);
    if (h->extension) {
        h->ext_profile = tern_rbuf_u16(&r);
        h->ext_len = (size_t)tern_rbuf_u16(&r) * 4;
        h->ext = tern_rbuf_take(&r, h->ext_len);
    }
    if (r.err)
        return TERN_ERR_PARSE;
    h->header_len = (size_t)(r.p - data);
    h->payload = r.p;
    h->payload_len = len - h->header_len;
    return TERN_OK;
}

int tern_rtp_parse_header(const uint8_t *data, size_t len, tern_rtp_header_t *out)
{
    tern_rtp_header_t h;
    int rc = parse_fixed(data, len, &h);
    if (rc == TERN_OK)
        *out = h;
    return rc;
}

int tern_rtp_parse(const uint8_t *data, size_t len, tern_rtp_header_t *out)
{
    tern_rtp_header_t h;
    int rc = parse_fixed(data, len, &h);
    if (rc != TERN_OK)
        return rc;
    if (h.padding) {
        /* RFC 3550 §5.1: the last octet counts the padding, itself included. */
        uint8_t n = data[len - 1];
        if (n == 0 || n > h.payload_len)
            return TERN_ERR_PARSE;
        h.padding_len = n;
        h.payload_len -= n;
    }
    *out = h;
    return TERN_OK;
}

int tern_rtp_write(const tern_rtp_header_t *h, tern_wbuf_t *w)
{
    if (h->csrc_count > TERN_RTP_MAX_CSRC || h->payload_type > 127 ||
        (h->extension &&
         (h->ext_len % 4 != 0 || h->ext_len > RTP_EXT_MAX_BYTES || (h->ext_len && !h->ext))) ||
        (h->padding && h->padding_len == 0) || (h->payload_len && !h->payload))
        return TERN_ERR_INVALID_ARG;
    tern_wbuf_u8(w, (uint8_t)(TERN_RTP_VERSION << 6 | (h->padding ? 0x20 : 0) |
                              (h->extension ? 0x10 : 0) | h->csrc_count));
    tern_wbuf_u8(w, (uint8_t)((h->marker ? 0x80 : 0) | h->payload_type));
    tern_wbuf_u16(w, h->sequence);
    tern_wbuf_u32(w, h->timestamp);
    tern_wbuf_u32(w, h->ssrc);
    for (unsigned i = 0; i < h->csrc_count; i++)
        tern_wbuf_u32(w, h->csrc[i]);
    if (h->extension) {
        tern_wbuf_u16(w, h->ext_profile);
        tern_wbuf_u16(w, (uint16_t)(h->ext_len / 4));
        tern_wbuf_bytes(w, h->ext, h->ext_len);
    }
    tern_wbuf_bytes(w, h->payload, h->payload_len);
    if (h->padding) {
        tern_wbuf_zeros(w, h->padding_len - 1u);
        tern_wbuf_u8(w, h->padding_len);
    }
    return w->err ? TERN_ERR_NOMEM : TERN_OK;
}

/* ---- RFC 8285 extension elements ---- */

int tern_rtp_ext_iter_init(tern_rtp_ext_iter_t *it, const tern_rtp_header_t *h)
{
    if (!h->extension)
        return TERN_ERR_NOT_FOUND;
    bool one = h->ext_profile == TERN_RTP_EXT_ONE_BYTE;
    bool two = (h->ext_profile & 0xfff0) == TERN_RTP_EXT_TWO_BYTE;
    if (!one && !two)
        return TERN_ERR_UNSUPPORTED;
    it->p = h->ext;
    it->end = h->ext + h->ext_len;
    it->two_byte = two;
    it->err = false;
    return TERN_OK;
}

/* One-byte form (RFC 8285 §4.2): ID in the high nibble, length - 1 in the low one. */
static bool next_one_byte(tern_rtp_ext_iter_t *it, tern_rtp_ext_elem_t *out)
{
    while (it->p < it->end) {
        uint8_t b = *it->p;
        uint8_t id = b >> 4;
        if (id == 0) { /* a padding byte (RFC 8285 §4.1); its length nibble must be 0 */
            if (b != 0) {
                it->err = true;
                return false;
            }
            it->p++;
            continue;
        }
        if (id == 15) { /* reserved: stop here */
            it->p = it->end;
            return false;
        }
        size_t n = (size_t)(b & 0x0f) + 1;
        if ((size_t)(it->end - it->p) - 1 < n) {
            it->err = true;
            return false;
        }
        out->id = id;
        out->data = it->p + 1;
        out->len = n;
        it->p += 1 + n;
        return true;
    }
    return false;
}

/* Two-byte form (RFC 8285 §4.3): an ID byte, a length byte, then that many bytes. */
static bool next_two_byte(tern_rtp_ext_iter_t *it, tern_rtp_ext_elem_t *out)
{
    while (it->p < it->end) {
        uint8_t id = *it->p;
        if (id == 0) { /* padding */
            it->p++;
            continue;
        }
        if (it->end - it->p < 2) {
            it->err = true;
            return false;
        }
        size_t n = it->p[1];
        if ((size_t)(it->end - it->p) - 2 < n) {
            it->err = true;
            return false;
        }
        out->id = id;
        out->data = it->p + 2;
        out->len = n;
        it->p += 2 + n;
        return true;
    }
    return false;
}

bool tern_rtp_ext_next(tern_rtp_ext_iter_t *it, tern_rtp_ext_elem_t *out)
{
    if (it->err)
        return false;
    return it->two_byte ? next_two_byte(it, out) : next_one_byte(it, out);
}

int tern_rtp_ext_write(tern_wbuf_t *w, bool two_byte, const tern_rtp_ext_elem_t *e)
{
    if (e->len && !e->data)
        return TERN_ERR_INVALID_ARG;
    if (two_byte) {
        if (e->id == 0 || e->len > 255)
            return TERN_ERR_INVALID_ARG;
        tern_wbuf_u8(w, e->id);
        tern_wbuf_u8(w, (uint8_t)e->len);
    } else {
        if (e->id == 0 || e->id >= 15 || e->len == 0 || e->len > 16)
            return TERN_ERR_INVALID_ARG;
        tern_wbuf_u8(w, (uint8_t)(e->id << 4 | (e->len - 1)));
    }
    tern_wbuf_bytes(w, e->data, e->len);
    return w->err ? TERN_ERR_NOMEM : TERN_OK;
}

void tern_rtp_ext_pad(tern_wbuf_t *w, size_t start)
{
    size_t used = w->len >= start ? w->len - start : 0;
    tern_wbuf_zeros(w, (4 - used % 4) % 4);
}
