/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the RTCP parsers (RFC 3550 §6, A.2; RFC 4585 §6). The input is read as a compound packet;
 * the compound check must agree with the iteration, and every packet is written back from its
 * header fields and body (the same bytes, padding aside) and by the typed writer of its kind
 * (SR/RR, SDES, BYE, APP, RTPFB/PSFB), whose output must parse to the same view. Generic NACKs
 * are expanded within bounds. Deterministic and allocation-free apart from fixed buffers.
 */
#include "srtp/srtp.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 65536
#define MAX_ITEMS 1024

static uint8_t buf[MAX_INPUT * 2];

static bool inside(const uint8_t *p, size_t n, const uint8_t *data, size_t size)
{
    return n == 0 || (p >= data && n <= size && (size_t)(p - data) <= size - n);
}

/* Parse the one packet the writer produced. */
static tern_rtcp_packet_t reparse(const tern_wbuf_t *w)
{
    tern_rtcp_iter_t it;
    tern_rtcp_packet_t p;
    tern_rtcp_iter_init(&it, w->base, w->len);
    if (!tern_rtcp_next(&it, &p) || it.p != it.end)
        abort();
    return p;
}

static void check_report(const tern_rtcp_packet_t *p)
{
    tern_rtcp_report_packet_t r, again;
    if (tern_rtcp_parse_report(p, &r) != TERN_OK)
        return;
    if (r.report_count != p->count || !inside(r.extension, r.extension_len, p->body, p->body_len))
        abort();
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    if (tern_rtcp_write_report(&w, &r) != TERN_OK)
        abort();
    tern_rtcp_packet_t q = reparse(&w);
    if (tern_rtcp_parse_report(&q, &again) != TERN_OK || again.is_sr != r.is_sr ||
        again.ssrc != r.ssrc || again.ntp != r.ntp || again.rtp_timestamp != r.rtp_timestamp ||
        again.packet_count != r.packet_count || again.octet_count != r.octet_count ||
        again.report_count != r.report_count ||
        memcmp(again.reports, r.reports, sizeof r.reports[0] * r.report_count) != 0 ||
        again.extension_len != r.extension_len ||
        (r.extension_len && memcmp(again.extension, r.extension, r.extension_len) != 0))
        abort();
    /* without padding, the writer gives the very bytes */
    if (!p->padding && (w.len != p->len || memcmp(w.base, p->body - 4, p->len) != 0))
        abort();
}

static size_t read_items(tern_rtcp_sdes_iter_t *it, const tern_rtcp_packet_t *p,
                         tern_rtcp_sdes_item_t *items, bool *err)
{
    size_t n = 0;
    tern_rtcp_sdes_item_t item;
    while (n < MAX_ITEMS && tern_rtcp_sdes_next(it, &item)) {
        if (item.type == 0 || !inside(item.text, item.len, p->body, p->body_len))
            abort();
        items[n++] = item;
    }
    *err = it->err || n == MAX_ITEMS;
    return n;
}

static void check_sdes(const tern_rtcp_packet_t *p)
{
    static tern_rtcp_sdes_item_t items[MAX_ITEMS], again[MAX_ITEMS];
    tern_rtcp_sdes_iter_t it;
    if (tern_rtcp_sdes_iter_init(&it, p) != TERN_OK)
        abort();
    bool err;
    size_t n = read_items(&it, p, items, &err);
    if (err)
        return;
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    /* never more chunks than the packet had (empty ones go, neighbours of one SSRC merge) */
    if (tern_rtcp_write_sdes(&w, items, n) != TERN_OK)
        abort();
    tern_rtcp_packet_t q = reparse(&w);
    if (tern_rtcp_sdes_iter_init(&it, &q) != TERN_OK)
        abort();
    size_t m = read_items(&it, &q, again, &err);
    if (err || m != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (again[i].ssrc != items[i].ssrc || again[i].type != items[i].type ||
            again[i].len != items[i].len || memcmp(again[i].text, items[i].text, items[i].len))
            abort();
}

static void check_bye(const tern_rtcp_packet_t *p)
{
    tern_rtcp_bye_t b, again;
    if (tern_rtcp_parse_bye(p, &b) != TERN_OK)
        return;
    if (b.reason && !inside(b.reason, b.reason_len, p->body, p->body_len))
        abort();
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    if (tern_rtcp_write_bye(&w, &b) != TERN_OK)
        abort();
    tern_rtcp_packet_t q = reparse(&w);
    if (tern_rtcp_parse_bye(&q, &again) != TERN_OK || again.count != b.count ||
        memcmp(again.ssrc, b.ssrc, sizeof b.ssrc[0] * b.count) != 0 || !again.reason != !b.reason ||
        again.reason_len != b.reason_len ||
        (b.reason_len && memcmp(again.reason, b.reason, b.reason_len) != 0))
        abort();
}

static void check_fb(const tern_rtcp_packet_t *p)
{
    tern_rtcp_fb_t f, again;
    if (tern_rtcp_parse_fb(p, &f) != TERN_OK)
        return;
    if (!inside(f.fci, f.fci_len, p->body, p->body_len) || f.fci_len + 8 != p->body_len)
        abort();
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    if (tern_rtcp_write_fb(&w, p->type, &f) != TERN_OK)
        abort();
    tern_rtcp_packet_t q = reparse(&w);
    if (tern_rtcp_parse_fb(&q, &again) != TERN_OK || again.fmt != f.fmt ||
        again.sender_ssrc != f.sender_ssrc || again.media_ssrc != f.media_ssrc ||
        memcmp(again.name, f.name, sizeof f.name) != 0 || again.fci_len != f.fci_len ||
        (f.fci_len && memcmp(again.fci, f.fci, f.fci_len) != 0))
        abort();
    if (p->type == TERN_RTCP_RTPFB && f.fmt == TERN_RTCP_FMT_NACK) {
        uint16_t seqs[64];
        int n = tern_rtcp_nack_sequences(&f, seqs, TERN_ARRAY_LEN(seqs));
        if (n < 0 || n > (int)TERN_ARRAY_LEN(seqs) || (f.fci_len >= 4 && n == 0))
            abort();
    }
}

static void check_packet(const uint8_t *data, size_t size, const tern_rtcp_packet_t *p)
{
    if (p->len < 4 || p->len % 4 != 0 || !inside(p->body - 4, p->len, data, size) ||
        p->body_len + p->padding_len + 4 != p->len || p->count > 31)
        abort();
    /* the generic writer gives the same bytes, padding bytes aside */
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    if (tern_rtcp_write_packet(&w, p->type, p->count, p->body, p->body_len, p->padding_len) !=
            TERN_OK ||
        w.len != p->len || memcmp(w.base, p->body - 4, 4 + p->body_len) != 0 ||
        w.base[w.len - 1] != p->body[p->len - 5])
        abort();
    switch (p->type) {
    case TERN_RTCP_SR:
    case TERN_RTCP_RR:
        check_report(p);
        break;
    case TERN_RTCP_SDES:
        check_sdes(p);
        break;
    case TERN_RTCP_BYE:
        check_bye(p);
        break;
    case TERN_RTCP_APP:
    case TERN_RTCP_RTPFB:
    case TERN_RTCP_PSFB:
        check_fb(p);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    tern_rtcp_iter_t it;
    tern_rtcp_packet_t p;
    int count = 0;
    uint8_t first = 0;
    tern_rtcp_iter_init(&it, data, size);
    while (tern_rtcp_next(&it, &p)) {
        if (count++ == 0)
            first = p.type;
        check_packet(data, size, &p);
    }
    int reduced = tern_rtcp_check_compound(data, size, true);
    int full = tern_rtcp_check_compound(data, size, false);
    bool good = !it.err && count > 0;
    if ((reduced >= 0) != good || (good && reduced != count) ||
        (full >= 0) != (good && (first == TERN_RTCP_SR || first == TERN_RTCP_RR)))
        abort();
    /* SRTCP's clear header check must not read past a short input */
    (void)tern_srtp_demux(data, size);
    return 0;
}
