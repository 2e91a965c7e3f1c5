/* SPDX-License-Identifier: MIT */
/*
 * RTCP compound packets (RFC 3550 §6.1, §6.4 and the validity checks of its appendix A.2,
 * reduced size RFC 5506 §3.1): the common header of each packet, sender and receiver reports
 * with their report blocks, SDES chunks and items (§6.5), BYE (§6.6), APP (§6.7), and the
 * transport and payload-specific feedback messages of RFC 4585 §6.1 (generic NACK expanded,
 * §6.2.1). Every reader has a writer. Verbs: tern_rtcp_iter_init, tern_rtcp_next,
 * tern_rtcp_check_compound, tern_rtcp_write_packet, tern_rtcp_parse_report,
 * tern_rtcp_write_report, tern_rtcp_sdes_iter_init, tern_rtcp_sdes_next,
 * tern_rtcp_write_sdes, tern_rtcp_parse_bye, tern_rtcp_write_bye, tern_rtcp_parse_fb,
 * tern_rtcp_write_fb, tern_rtcp_nack_sequences.
 */
#include "srtp/srtp.h"

#include <string.h>

/* RFC 3550 §6.4.1: the length field counts 32-bit words minus one, in 16 bits. */
#define RTCP_MAX_PACKET (65536u * 4)
#define SR_SENDER_INFO 20
#define SDES_END 0

void tern_rtcp_iter_init(tern_rtcp_iter_t *it, const uint8_t *data, size_t len)
{
    it->p = data;
    it->end = data ? data + len : data;
    it->err = false;
}

static bool fail(bool *err)
{
    *err = true;
    return false;
}

bool tern_rtcp_next(tern_rtcp_iter_t *it, tern_rtcp_packet_t *out)
{
    if (it->err || it->p == it->end)
        return false;
    size_t left = (size_t)(it->end - it->p);
    if (left < TERN_RTCP_HEADER_LEN)
        return fail(&it->err);
    const uint8_t *p = it->p;
    if (p[0] >> 6 != 2)
        return fail(&it->err);
    size_t len = ((size_t)tern_load_u16(p + 2) + 1) * 4;
    if (len > left)
        return fail(&it->err);
    tern_rtcp_packet_t pkt = {
        .padding = p[0] & 0x20,
        .count = p[0] & 0x1f,
        .type = p[1],
        .body = p + TERN_RTCP_HEADER_LEN,
        .body_len = len - TERN_RTCP_HEADER_LEN,
        .len = len,
    };
    if (pkt.padding) {
        /* RFC 3550 A.2: only the last packet may be padded; the count includes itself and
         * is a multiple of four (§6.4.1). */
        uint8_t n = p[len - 1];
        if (len != left || n == 0 || n % 4 != 0 || n > pkt.body_len)
            return fail(&it->err);
        pkt.padding_len = n;
        pkt.body_len -= n;
    }
    it->p += len;
    *out = pkt;
    return true;
}

int tern_rtcp_check_compound(const uint8_t *data, size_t len, bool reduced_size)
{
    if (!data || len == 0)
        return TERN_ERR_PARSE;
    tern_rtcp_iter_t it;
    tern_rtcp_packet_t pkt;
    int count = 0;
    tern_rtcp_iter_init(&it, data, len);
    while (tern_rtcp_next(&it, &pkt)) {
        /* RFC 3550 §6.1: a compound packet starts with a report. */
        if (count == 0 && !reduced_size && pkt.type != TERN_RTCP_SR && pkt.type != TERN_RTCP_RR)
            return TERN_ERR_PARSE;
        count++;
    }
    return it.err || count == 0 ? TERN_ERR_PARSE : count;
}

static void write_header(tern_wbuf_t *w, bool padding, uint8_t count, uint8_t type, size_t len)
{
    tern_wbuf_u8(w, (uint8_t)(2 << 6 | (padding ? 0x20 : 0) | count));
    tern_wbuf_u8(w, type);
    tern_wbuf_u16(w, (uint16_t)(len / 4 - 1));
}

int tern_rtcp_write_packet(tern_wbuf_t *w, uint8_t type, uint8_t count, const uint8_t *body,
                           size_t body_len, uint8_t padding_len)
{
    size_t len = TERN_RTCP_HEADER_LEN + body_len + padding_len;
    if (count > TERN_RTCP_MAX_COUNT || len % 4 != 0 || len > RTCP_MAX_PACKET || (body_len && !body))
        return TERN_ERR_INVALID_ARG;
    write_header(w, padding_len > 0, count, type, len);
    tern_wbuf_bytes(w, body, body_len);
    if (padding_len) {
        tern_wbuf_zeros(w, padding_len - 1u);
        tern_wbuf_u8(w, padding_len);
    }
    return w->err ? TERN_ERR_NOMEM : TERN_OK;
}

/* ---- SR and RR ---- */

static void read_block(tern_rbuf_t *r, tern_rtcp_report_t *b)
{
    b->ssrc = tern_rbuf_u32(r);
    b->fraction_lost = tern_rbuf_u8(r);
    uint32_t lost = tern_rbuf_u24(r);
    /* 24-bit two's complement (RFC 3550 §6.4.1: it may go negative with duplicates) */
    b->cumulative_lost = (int32_t)(lost ^ 0x800000u) - 0x800000;
    b->highest_seq = tern_rbuf_u32(r);
    b->jitter = tern_rbuf_u32(r);
    b->lsr = tern_rbuf_u32(r);
    b->dlsr = tern_rbuf_u32(r);
}

int tern_rtcp_parse_report(const tern_rtcp_packet_t *p, tern_rtcp_report_packet_t *out)
{
    if (p->type != TERN_RTCP_SR && p->type != TERN_RTCP_RR)
        return TERN_ERR_INVALID_ARG;
    tern_rtcp_report_packet_t r;
    memset(&r, 0, sizeof r);
    r.is_sr = p->type == TERN_RTCP_SR;
    r.report_count = p->count;
    size_t need =
        4 + (r.is_sr ? SR_SENDER_INFO : 0) + (size_t)r.report_count * TERN_RTCP_REPORT_BLOCK_LEN;
    if (p->body_len < need)
        return TERN_ERR_PARSE;
    tern_rbuf_t rb;
    tern_rbuf_init(&rb, p->body, p->body_len);
    r.ssrc = tern_rbuf_u32(&rb);
    if (r.is_sr) {
        r.ntp = tern_rbuf_u64(&rb);
        r.rtp_timestamp = tern_rbuf_u32(&rb);
        r.packet_count = tern_rbuf_u32(&rb);
        r.octet_count = tern_rbuf_u32(&rb);
    }
    for (unsigned i = 0; i < r.report_count; i++)
        read_block(&rb, &r.reports[i]);
    if (rb.err)
        return TERN_ERR_PARSE;
    r.extension_len = tern_rbuf_left(&rb);
    r.extension = r.extension_len ? rb.p : NULL;
    *out = r;
    return TERN_OK;
}

int tern_rtcp_write_report(tern_wbuf_t *w, const tern_rtcp_report_packet_t *r)
{
    size_t len = TERN_RTCP_HEADER_LEN + 4 + (r->is_sr ? SR_SENDER_INFO : 0) +
                 (size_t)r->report_count * TERN_RTCP_REPORT_BLOCK_LEN + r->extension_len;
    if (r->report_count > TERN_RTCP_MAX_COUNT || r->extension_len % 4 != 0 ||
        len > RTCP_MAX_PACKET || (r->extension_len && !r->extension))
        return TERN_ERR_INVALID_ARG;
    for (unsigned i = 0; i < r->report_count; i++)
        if (r->reports[i].cumulative_lost < -0x800000 || r->reports[i].cumulative_lost > 0x7fffff)
            return TERN_ERR_INVALID_ARG;
    write_header(w, false, r->report_count, r->is_sr ? TERN_RTCP_SR : TERN_RTCP_RR, len);
    tern_wbuf_u32(w, r->ssrc);
    if (r->is_sr) {
        tern_wbuf_u64(w, r->ntp);
        tern_wbuf_u32(w, r->rtp_timestamp);
        tern_wbuf_u32(w, r->packet_count);
        tern_wbuf_u32(w, r->octet_count);
    }
    for (unsigned i = 0; i < r->report_count; i++) {
        const tern_rtcp_report_t *b = &r->reports[i];
        tern_wbuf_u32(w, b->ssrc);
        tern_wbuf_u8(w, b->fraction_lost);
        tern_wbuf_u24(w, (uint32_t)b->cumulative_lost & 0xffffffu);
        tern_wbuf_u32(w, b->highest_seq);
        tern_wbuf_u32(w, b->jitter);
        tern_wbuf_u32(w, b->lsr);
        tern_wbuf_u32(w, b->dlsr);
    }
    tern_wbuf_bytes(w, r->extension, r->extension_len);
    return w->err ? TERN_ERR_NOMEM : TERN_OK;
}

/* ---- SDES ---- */

int tern_rtcp_sdes_iter_init(tern_rtcp_sdes_iter_t *it, const tern_rtcp_packet_t *p)
{
    if (p->type != TERN_RTCP_SDES)
        return TERN_ERR_INVALID_ARG;
    memset(it, 0, sizeof *it);
    it->base = it->p = p->body;
    it->end = p->body + p->body_len;
    it->chunks_left = p->count;
    return TERN_OK;
}

/* Past END: zeros up to the next 32-bit boundary from the body's start (RFC 3550 §6.5). */
static bool end_chunk(tern_rtcp_sdes_iter_t *it)
{
    size_t off = (size_t)(it->p - it->base);
    size_t pad = (4 - off % 4) % 4;
    if ((size_t)(it->end - it->p) < pad)
        return fail(&it->err);
    for (size_t i = 0; i < pad; i++)
        if (it->p[i] != 0)
            return fail(&it->err);
    it->p += pad;
    it->in_chunk = false;
    return true;
}

bool tern_rtcp_sdes_next(tern_rtcp_sdes_iter_t *it, tern_rtcp_sdes_item_t *out)
{
    while (!it->err) {
        if (!it->in_chunk) {
            if (it->chunks_left == 0) {
                /* Bytes after the last chunk: the count and the length disagree. */
                if (it->p != it->end)
                    it->err = true;
                return false;
            }
            if (it->end - it->p < 4)
                return fail(&it->err);
            it->ssrc = tern_load_u32(it->p);
            it->p += 4;
            it->chunks_left--;
            it->in_chunk = true;
        }
        if (it->p >= it->end) /* no END item */
            return fail(&it->err);
        uint8_t type = it->p[0];
        if (type == SDES_END) {
            it->p++;
            if (!end_chunk(it))
                return false;
            continue;
        }
        if (it->end - it->p < 2 || (size_t)(it->end - it->p) - 2 < it->p[1])
            return fail(&it->err);
        out->ssrc = it->ssrc;
        out->type = type;
        out->len = it->p[1];
        out->text = it->p + 2;
        it->p += 2 + (size_t)out->len;
        return true;
    }
    return false;
}

int tern_rtcp_write_sdes(tern_wbuf_t *w, const tern_rtcp_sdes_item_t *items, size_t n)
{
    size_t chunks = 0, len = TERN_RTCP_HEADER_LEN;
    for (size_t i = 0; i < n; i++) {
        if (items[i].type == SDES_END || (items[i].len && !items[i].text))
            return TERN_ERR_INVALID_ARG;
        bool starts = i == 0 || items[i].ssrc != items[i - 1].ssrc;
        bool ends = i + 1 == n || items[i + 1].ssrc != items[i].ssrc;
        if (starts) {
            chunks++;
            len += 4;
        }
        len += 2 + (size_t)items[i].len;
        if (ends)
            len = (len + 1 + 3) / 4 * 4; /* END, then zeros to the boundary */
    }
    if (chunks > TERN_RTCP_MAX_COUNT || len > RTCP_MAX_PACKET)
        return TERN_ERR_INVALID_ARG;
    size_t start = w->len;
    write_header(w, false, (uint8_t)chunks, TERN_RTCP_SDES, len);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || items[i].ssrc != items[i - 1].ssrc)
            tern_wbuf_u32(w, items[i].ssrc);
        tern_wbuf_u8(w, items[i].type);
        tern_wbuf_u8(w, items[i].len);
        tern_wbuf_bytes(w, items[i].text, items[i].len);
        if (i + 1 == n || items[i + 1].ssrc != items[i].ssrc) {
            tern_wbuf_u8(w, SDES_END);
            size_t used = w->len - start;
            tern_wbuf_zeros(w, (4 - used % 4) % 4);
        }
    }
    return w->err ? TERN_ERR_NOMEM : TERN_OK;
}

/* ---- BYE ---- */

int tern_rtcp_parse_bye(const tern_rtcp_packet_t *p, tern_rtcp_bye_t *out)
{
    if (p->type != TERN_RTCP_BYE)
        return TERN_ERR_INVALID_ARG;
    tern_rtcp_bye_t b;
    memset(&b, 0, sizeof b);
    b.count = p->count;
    tern_rbuf_t r;
    tern_rbuf_init(&r, p->body, p->body_len);
    for (unsigned i = 0; i < b.count; i++)
        b.ssrc[i] = tern_rbuf_u32(&r);
    if (tern_rbuf_left(&r) > 0) {
        b.reason_len = tern_rbuf_u8(&r);
        b.reason = tern_rbuf_take(&r, b.reason_len);
    }
    if (r.err)
        return TERN_ERR_PARSE;
    *out = b;
    return TERN_OK;
}

int tern_rtcp_write_bye(tern_wbuf_t *w, const tern_rtcp_bye_t *b)
{
    if (b->count > TERN_RTCP_MAX_COUNT || (b->reason_len && !b->reason))
        return TERN_ERR_INVALID_ARG;
    size_t body = (size_t)b->count * 4;
    if (b->reason)
        body += (1 + (size_t)b->reason_len + 3) / 4 * 4;
    write_header(w, false, b->count, TERN_RTCP_BYE, TERN_RTCP_HEADER_LEN + body);
    for (unsigned i = 0; i < b->count; i++)
        tern_wbuf_u32(w, b->ssrc[i]);
    if (b->reason) {
        tern_wbuf_u8(w, b->reason_len);
        tern_wbuf_bytes(w, b->reason, b->reason_len);
        tern_wbuf_zeros(w, (4 - (1 + (size_t)b->reason_len) % 4) % 4);
    }
    return w->err ? TERN_ERR_NOMEM : TERN_OK;
}

/* ---- feedback and APP ---- */

int tern_rtcp_parse_fb(const tern_rtcp_packet_t *p, tern_rtcp_fb_t *out)
{
    bool app = p->type == TERN_RTCP_APP;
    if (!app && p->type != TERN_RTCP_RTPFB && p->type != TERN_RTCP_PSFB)
        return TERN_ERR_INVALID_ARG;
    /* RFC 4585 §6.1: two SSRCs; RFC 3550 §6.7: an SSRC and a four-letter name. */
    if (p->body_len < 8)
        return TERN_ERR_PARSE;
    tern_rtcp_fb_t f;
    memset(&f, 0, sizeof f);
    f.fmt = p->count;
    f.sender_ssrc = tern_load_u32(p->body);
    if (app)
        memcpy(f.name, p->body + 4, 4);
    else
        f.media_ssrc = tern_load_u32(p->body + 4);
    f.fci_len = p->body_len - 8;
    f.fci = f.fci_len ? p->body + 8 : NULL;
    *out = f;
    return TERN_OK;
}

int tern_rtcp_write_fb(tern_wbuf_t *w, uint8_t type, const tern_rtcp_fb_t *f)
{
    bool app = type == TERN_RTCP_APP;
    size_t len = TERN_RTCP_HEADER_LEN + 8 + f->fci_len;
    if ((!app && type != TERN_RTCP_RTPFB && type != TERN_RTCP_PSFB) ||
        f->fmt > TERN_RTCP_MAX_COUNT || f->fci_len % 4 != 0 || len > RTCP_MAX_PACKET ||
        (f->fci_len && !f->fci))
        return TERN_ERR_INVALID_ARG;
    write_header(w, false, f->fmt, type, len);
    tern_wbuf_u32(w, f->sender_ssrc);
    if (app)
        tern_wbuf_bytes(w, f->name, 4);
    else
        tern_wbuf_u32(w, f->media_ssrc);
    tern_wbuf_bytes(w, f->fci, f->fci_len);
    return w->err ? TERN_ERR_NOMEM : TERN_OK;
}

int tern_rtcp_nack_sequences(const tern_rtcp_fb_t *f, uint16_t *out, size_t cap)
{
    if (f->fci_len % 4 != 0)
        return TERN_ERR_PARSE;
    size_t n = 0;
    for (size_t off = 0; off < f->fci_len && n < cap; off += 4) {
        /* RFC 4585 §6.2.1: PID, then a bitmask of the 16 packets after it. */
        uint16_t pid = tern_load_u16(f->fci + off);
        uint16_t blp = tern_load_u16(f->fci + off + 2);
        out[n++] = pid;
        for (unsigned bit = 0; bit < 16 && n < cap; bit++)
            if (blp & (1u << bit))
                out[n++] = (uint16_t)(pid + bit + 1);
    }
    return (int)TERN_MIN(n, (size_t)INT32_MAX);
}
