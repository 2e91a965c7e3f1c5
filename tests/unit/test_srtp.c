/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the srtp layer: the RFC 7983 classification at every boundary, RTP headers and
 * RFC 8285 extension elements (parse, refuse, write back), RTCP compounds (RFC 3550 A.2
 * checks, SR/RR, SDES, BYE, APP, NACK, PLI), and SRTP/SRTCP sessions against libsrtp2's
 * published test vectors (AES-CM-128/HMAC-SHA1-80 and AEAD-AES-128-GCM), with tampering,
 * replay and malformed input refused and counted. Parser inputs sit against a guard page.
 */
#include "srtp/srtp.h"

#include "check.h"
#include "guard.h"

#include <stdlib.h>

static tern_ctx_t ctx;

/* ---- RFC 7983 ---- */

static void test_demux(void)
{
    static const struct {
        uint8_t first, second;
        tern_demux_t want;
    } cases[] = {
        {0, 1, TERN_DEMUX_STUN},          {3, 0, TERN_DEMUX_STUN},
        {4, 0, TERN_DEMUX_DROP},          {15, 0, TERN_DEMUX_DROP},
        {16, 0, TERN_DEMUX_ZRTP},         {19, 0, TERN_DEMUX_ZRTP},
        {20, 0, TERN_DEMUX_DTLS},         {22, 254, TERN_DEMUX_DTLS},
        {63, 0, TERN_DEMUX_DTLS},         {64, 0, TERN_DEMUX_TURN_CHANNEL},
        {79, 0, TERN_DEMUX_TURN_CHANNEL}, {80, 0, TERN_DEMUX_DROP},
        {127, 0, TERN_DEMUX_DROP},        {128, 0, TERN_DEMUX_RTP},
        {0x80, 111, TERN_DEMUX_RTP},      {0x80, 0xef, TERN_DEMUX_RTP}, /* marker, PT 111 */
        {0x80, 191, TERN_DEMUX_RTP},      {0x81, 192, TERN_DEMUX_RTCP},
        {0x81, 200, TERN_DEMUX_RTCP},     {0x8f, 206, TERN_DEMUX_RTCP},
        {0x80, 223, TERN_DEMUX_RTCP},     {0x80, 224, TERN_DEMUX_RTP},
        {191, 200, TERN_DEMUX_RTCP},      {192, 200, TERN_DEMUX_DROP},
        {255, 0, TERN_DEMUX_DROP},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(cases); i++) {
        uint8_t d[2] = {cases[i].first, cases[i].second};
        guarded_t g;
        uint8_t *p = guard_copy(&g, d, 2);
        if (tern_srtp_demux(p, 2) != cases[i].want)
            printf("# demux %u %u: %s\n", d[0], d[1], tern_srtp_demux_name(tern_srtp_demux(p, 2)));
        eq_int(tern_srtp_demux(p, 2), cases[i].want);
        guard_free(&g);
    }
    eq_int(tern_srtp_demux(NULL, 0), TERN_DEMUX_DROP);
    uint8_t one = 0x80;
    eq_int(tern_srtp_demux(&one, 1), TERN_DEMUX_DROP); /* RTP range, but no second byte */
    one = 0;
    eq_int(tern_srtp_demux(&one, 1), TERN_DEMUX_STUN);
    eq_str(tern_srtp_demux_name(TERN_DEMUX_TURN_CHANNEL), "turn-channel");
}

/* ---- RTP ---- */

/* libsrtp2's test packet: V=2, PT 15, seq 0x1234, ts 0xdecafbad, SSRC 0xcafebabe, 16 x 0xab. */
static const uint8_t rtp_plain[28] = {
    0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
};

static int parse_guarded(const uint8_t *d, size_t n, tern_rtp_header_t *h)
{
    guarded_t g;
    uint8_t *p = guard_copy(&g, d, n);
    int rc = tern_rtp_parse(p, n, h);
    /* the view must not outlive the copy: compare offsets only */
    if (rc == TERN_OK) {
        h->payload = d + (h->payload - p);
        if (h->ext)
            h->ext = d + (h->ext - p);
    }
    guard_free(&g);
    return rc;
}

static void test_rtp_basic(void)
{
    tern_rtp_header_t h;
    eq_int(parse_guarded(rtp_plain, sizeof rtp_plain, &h), TERN_OK);
    eq_int(h.payload_type, 15);
    ok(!h.marker && !h.padding && !h.extension);
    eq_int(h.sequence, 0x1234);
    eq_int(h.timestamp, 0xdecafbad);
    eq_int(h.ssrc, 0xcafebabe);
    eq_int(h.header_len, 12);
    eq_int(h.payload_len, 16);

    uint8_t out[64];
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, out, sizeof out);
    eq_int(tern_rtp_write(&h, &w), TERN_OK);
    eq_int(w.len, sizeof rtp_plain);
    ok(eq_mem(out, rtp_plain, sizeof rtp_plain));

    /* every truncation of the fixed header is refused, against the guard page */
    for (size_t n = 0; n < TERN_RTP_HEADER_MIN; n++)
        eq_int(parse_guarded(rtp_plain, n, &h), TERN_ERR_PARSE);
    uint8_t bad[28];
    memcpy(bad, rtp_plain, sizeof bad);
    bad[0] = 0x40; /* version 1 */
    eq_int(parse_guarded(bad, sizeof bad, &h), TERN_ERR_PARSE);
    bad[0] = 0xc0; /* version 3 */
    eq_int(parse_guarded(bad, sizeof bad, &h), TERN_ERR_PARSE);
}

static void test_rtp_csrc_ext_padding(void)
{
    /* 2 CSRCs, a one-byte extension of 2 words, marker, PT 111, 3 bytes payload, 4 padding */
    static const uint8_t pkt[] = {
        0xb2, 0xef, 0x00, 0x01, 0x00, 0x00, 0x00, 0x10, 0x11, 0x22, 0x33, 0x44, /* fixed */
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,                         /* CSRCs */
        0xbe, 0xde, 0x00, 0x02,                                                 /* ext hdr */
        0x10, 0xaa, 0x00, 0x21, 0xbb, 0xcc, 0x00, 0x00,                         /* elements */
        'a',  'b',  'c',  0x00, 0x00, 0x00, 0x04,                               /* payload */
    };
    tern_rtp_header_t h;
    eq_int(parse_guarded(pkt, sizeof pkt, &h), TERN_OK);
    eq_int(h.csrc_count, 2);
    eq_int(h.csrc[1], 2);
    ok(h.marker);
    eq_int(h.payload_type, 111);
    ok(h.extension);
    eq_int(h.ext_profile, TERN_RTP_EXT_ONE_BYTE);
    eq_int(h.ext_len, 8);
    eq_int(h.header_len, 32);
    eq_int(h.payload_len, 3);
    ok(h.padding);
    eq_int(h.padding_len, 4);
    ok(h.payload && memcmp(h.payload, "abc", 3) == 0);

    /* elements: id 1 len 1, padding, id 2 len 2, padding */
    tern_rtp_ext_iter_t it;
    tern_rtp_ext_elem_t e;
    eq_int(tern_rtp_ext_iter_init(&it, &h), TERN_OK);
    ok(tern_rtp_ext_next(&it, &e));
    eq_int(e.id, 1);
    eq_int(e.len, 1);
    eq_int(e.data[0], 0xaa);
    ok(tern_rtp_ext_next(&it, &e));
    eq_int(e.id, 2);
    eq_int(e.len, 2);
    eq_int(e.data[1], 0xcc);
    ok(!tern_rtp_ext_next(&it, &e)); /* then padding */
    ok(!it.err);

    /* written back: same bytes */
    uint8_t out[64];
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, out, sizeof out);
    eq_int(tern_rtp_write(&h, &w), TERN_OK);
    eq_int(w.len, sizeof pkt);
    ok(eq_mem(out, pkt, sizeof pkt));

    /* refusals: padding 0, padding over the payload, extension or CSRCs past the end */
    uint8_t bad[sizeof pkt];
    memcpy(bad, pkt, sizeof pkt);
    bad[sizeof bad - 1] = 0;
    eq_int(parse_guarded(bad, sizeof bad, &h), TERN_ERR_PARSE);
    bad[sizeof bad - 1] = 8;
    eq_int(parse_guarded(bad, sizeof bad, &h), TERN_ERR_PARSE);
    bad[sizeof bad - 1] = 7; /* payload and padding exactly */
    eq_int(parse_guarded(bad, sizeof bad, &h), TERN_OK);
    eq_int(h.payload_len, 0);
    memcpy(bad, pkt, sizeof pkt);
    bad[23] = 0x05; /* extension of 5 words */
    eq_int(parse_guarded(bad, sizeof bad, &h), TERN_ERR_PARSE);
    eq_int(tern_rtp_parse_header(bad, 24 + 19, &h), TERN_ERR_PARSE);
    memcpy(bad, pkt, sizeof pkt);
    bad[0] = 0x8f; /* 15 CSRCs: 72 bytes needed */
    eq_int(parse_guarded(bad, sizeof bad, &h), TERN_ERR_PARSE);

    /* the header-only parse ignores padding (it is under the cipher in SRTP) */
    memcpy(bad, pkt, sizeof pkt);
    bad[sizeof bad - 1] = 200;
    eq_int(tern_rtp_parse_header(bad, sizeof bad, &h), TERN_OK);
    eq_int(h.payload_len, 7);
}

static void test_rtp_ext_elements(void)
{
    /* one-byte: a bad padding byte (length nibble set) and an element past the end */
    static const uint8_t bad_pad[] = {0x01, 0x00, 0x00, 0x00};
    static const uint8_t too_long[] = {0x13, 0x01, 0x02, 0x00, 0x00};
    static const uint8_t stop[] = {0x10, 0x01, 0xf3, 0x99};
    tern_rtp_header_t h = {.extension = true, .ext_profile = TERN_RTP_EXT_ONE_BYTE};
    tern_rtp_ext_iter_t it;
    tern_rtp_ext_elem_t e;
    h.ext = bad_pad;
    h.ext_len = sizeof bad_pad;
    tern_rtp_ext_iter_init(&it, &h);
    ok(!tern_rtp_ext_next(&it, &e));
    ok(it.err);
    h.ext = too_long;
    h.ext_len = 4;
    tern_rtp_ext_iter_init(&it, &h);
    ok(!tern_rtp_ext_next(&it, &e));
    ok(it.err);
    h.ext = stop; /* ID 15 ends processing, without error */
    h.ext_len = sizeof stop;
    tern_rtp_ext_iter_init(&it, &h);
    ok(tern_rtp_ext_next(&it, &e));
    eq_int(e.id, 1);
    ok(!tern_rtp_ext_next(&it, &e));
    ok(!it.err);

    /* two-byte form (profile 0x1000 plus appbits): zero-length elements allowed */
    static const uint8_t two[] = {0x01, 0x00, 0x00, 0x20, 0x02, 0x55, 0x66, 0x00};
    h.ext_profile = 0x1003;
    h.ext = two;
    h.ext_len = sizeof two;
    eq_int(tern_rtp_ext_iter_init(&it, &h), TERN_OK);
    ok(tern_rtp_ext_next(&it, &e));
    eq_int(e.id, 1);
    eq_int(e.len, 0);
    ok(tern_rtp_ext_next(&it, &e));
    eq_int(e.id, 0x20);
    eq_int(e.len, 2);
    ok(!tern_rtp_ext_next(&it, &e));
    ok(!it.err);
    static const uint8_t two_short[] = {0x05, 0x09, 0x00, 0x00};
    h.ext = two_short;
    h.ext_len = sizeof two_short;
    tern_rtp_ext_iter_init(&it, &h);
    ok(!tern_rtp_ext_next(&it, &e));
    ok(it.err);

    h.ext_profile = 0xabcd;
    eq_int(tern_rtp_ext_iter_init(&it, &h), TERN_ERR_UNSUPPORTED);
    h.extension = false;
    eq_int(tern_rtp_ext_iter_init(&it, &h), TERN_ERR_NOT_FOUND);

    /* writing elements: limits of each form, then padding */
    uint8_t buf[32];
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    uint8_t data[17] = {0};
    eq_int(tern_rtp_ext_write(&w, false, &(tern_rtp_ext_elem_t){.id = 15, .data = data, .len = 1}),
           TERN_ERR_INVALID_ARG);
    eq_int(tern_rtp_ext_write(&w, false, &(tern_rtp_ext_elem_t){.id = 1, .data = data, .len = 17}),
           TERN_ERR_INVALID_ARG);
    eq_int(tern_rtp_ext_write(&w, false, &(tern_rtp_ext_elem_t){.id = 1, .data = data, .len = 0}),
           TERN_ERR_INVALID_ARG);
    eq_int(tern_rtp_ext_write(&w, true, &(tern_rtp_ext_elem_t){.id = 0, .data = data, .len = 1}),
           TERN_ERR_INVALID_ARG);
    eq_int(w.len, 0);
    eq_int(tern_rtp_ext_write(&w, false, &(tern_rtp_ext_elem_t){.id = 3, .data = data, .len = 16}),
           TERN_OK);
    tern_rtp_ext_pad(&w, 0);
    eq_int(w.len, 20);
    eq_int(buf[0], 0x3f);
}

/* ---- RTCP ---- */

/* An SR with one report block, then SDES with a CNAME: a browser's compound, by hand. */
static const uint8_t compound[] = {
    0x81, 0xc8, 0x00, 0x0c,                         /* SR, RC 1, 13 words */
    0x11, 0x22, 0x33, 0x44,                         /* SSRC */
    0xe4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, /* NTP */
    0x00, 0x00, 0x10, 0x00,                         /* RTP ts */
    0x00, 0x00, 0x00, 0x05,                         /* packets */
    0x00, 0x00, 0x01, 0x00,                         /* octets */
    0xaa, 0xbb, 0xcc, 0xdd,                         /* block: SSRC */
    0x10, 0xff, 0xff, 0xfe,                         /* fraction 16, cumulative -2 */
    0x00, 0x01, 0x00, 0x20, 0x00, 0x00, 0x00, 0x07, /* highest seq, jitter */
    0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x10, 0x00, /* LSR, DLSR */
    0x81, 0xca, 0x00, 0x03,                         /* SDES, 1 chunk, 4 words */
    0x11, 0x22, 0x33, 0x44,                         /* SSRC */
    0x01, 0x05, 'a',  'b',  'c',  'd',  'e',  0x00, /* CNAME "abcde", END */
};

static void test_rtcp_compound(void)
{
    guarded_t g;
    uint8_t *p = guard_copy(&g, compound, sizeof compound);
    eq_int(tern_rtcp_check_compound(p, sizeof compound, false), 2);
    tern_rtcp_iter_t it;
    tern_rtcp_packet_t pkt;
    tern_rtcp_iter_init(&it, p, sizeof compound);
    ok(tern_rtcp_next(&it, &pkt));
    eq_int(pkt.type, TERN_RTCP_SR);
    eq_int(pkt.len, 52);
    tern_rtcp_report_packet_t r;
    eq_int(tern_rtcp_parse_report(&pkt, &r), TERN_OK);
    ok(r.is_sr);
    eq_int(r.ssrc, 0x11223344);
    eq_int(r.packet_count, 5);
    eq_int(r.report_count, 1);
    eq_int(r.reports[0].fraction_lost, 16);
    eq_int(r.reports[0].cumulative_lost, -2);
    eq_int(r.reports[0].highest_seq, 0x10020);
    eq_int(r.reports[0].dlsr, 0x1000);
    eq_int(r.extension_len, 0);

    uint8_t out[128];
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, out, sizeof out);
    eq_int(tern_rtcp_write_report(&w, &r), TERN_OK);
    eq_int(w.len, 52);
    ok(eq_mem(out, compound, 52));

    ok(tern_rtcp_next(&it, &pkt));
    eq_int(pkt.type, TERN_RTCP_SDES);
    tern_rtcp_sdes_iter_t si;
    tern_rtcp_sdes_item_t item;
    eq_int(tern_rtcp_sdes_iter_init(&si, &pkt), TERN_OK);
    ok(tern_rtcp_sdes_next(&si, &item));
    eq_int(item.ssrc, 0x11223344);
    eq_int(item.type, 1);
    eq_int(item.len, 5);
    ok(memcmp(item.text, "abcde", 5) == 0);
    ok(!tern_rtcp_sdes_next(&si, &item));
    ok(!si.err);
    tern_wbuf_init(&w, NULL, out, sizeof out);
    item.text = (const uint8_t *)"abcde";
    eq_int(tern_rtcp_write_sdes(&w, &item, 1), TERN_OK);
    eq_int(w.len, 16);
    ok(eq_mem(out, compound + 52, 16));
    ok(!tern_rtcp_next(&it, &pkt));
    ok(!it.err);

    /* a compound must start with a report, unless reduced size (RFC 5506) */
    eq_int(tern_rtcp_check_compound(p + 52, 16, false), TERN_ERR_PARSE);
    eq_int(tern_rtcp_check_compound(p + 52, 16, true), 1);
    /* truncated anywhere: refused */
    for (size_t n = 0; n < sizeof compound; n++)
        if (n != 52)
            eq_int(tern_rtcp_check_compound(p, n, false), TERN_ERR_PARSE);
    guard_free(&g);

    /* padding on the first packet of two is refused; on the last it is fine */
    uint8_t padded[sizeof compound + 4];
    memcpy(padded, compound, sizeof compound);
    padded[0] |= 0x20;
    eq_int(tern_rtcp_check_compound(padded, sizeof compound, false), TERN_ERR_PARSE);
    memcpy(padded, compound, sizeof compound);
    padded[52] |= 0x20;
    padded[55] = 0x04; /* 5 words */
    memset(padded + sizeof compound, 0, 3);
    padded[sizeof padded - 1] = 4;
    eq_int(tern_rtcp_check_compound(padded, sizeof padded, false), 2);
    padded[sizeof padded - 1] = 3; /* not a multiple of four */
    eq_int(tern_rtcp_check_compound(padded, sizeof padded, false), TERN_ERR_PARSE);
    padded[sizeof padded - 1] = 24; /* larger than the body */
    eq_int(tern_rtcp_check_compound(padded, sizeof padded, false), TERN_ERR_PARSE);
}

static void test_rtcp_sdes_errors(void)
{
    /* chunk without END, END not followed by zeros, count larger than the chunks */
    static const uint8_t no_end[] = {0x81, 0xca, 0x00, 0x02, 1, 2, 3, 4, 0x01, 0x02, 'a', 'b'};
    static const uint8_t bad_pad[] = {0x81, 0xca, 0x00, 0x02, 1, 2, 3, 4, 0x00, 0x01, 0x00, 0x00};
    static const uint8_t missing[] = {0x82, 0xca, 0x00, 0x02, 1, 2, 3, 4, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t extra[] = {0x80, 0xca, 0x00, 0x01, 1, 2, 3, 4};
    const uint8_t *cases[] = {no_end, bad_pad, missing, extra};
    size_t lens[] = {sizeof no_end, sizeof bad_pad, sizeof missing, sizeof extra};
    for (size_t i = 0; i < 4; i++) {
        tern_rtcp_iter_t it;
        tern_rtcp_packet_t pkt;
        tern_rtcp_iter_init(&it, cases[i], lens[i]);
        ok(tern_rtcp_next(&it, &pkt));
        tern_rtcp_sdes_iter_t si;
        tern_rtcp_sdes_item_t item;
        eq_int(tern_rtcp_sdes_iter_init(&si, &pkt), TERN_OK);
        while (tern_rtcp_sdes_next(&si, &item))
            ;
        ok(si.err);
    }
    /* an empty chunk (SSRC, END, zeros) yields nothing and is no error */
    static const uint8_t empty[] = {0x81, 0xca, 0x00, 0x02, 1, 2, 3, 4, 0, 0, 0, 0};
    tern_rtcp_iter_t it;
    tern_rtcp_packet_t pkt;
    tern_rtcp_iter_init(&it, empty, sizeof empty);
    ok(tern_rtcp_next(&it, &pkt));
    tern_rtcp_sdes_iter_t si;
    tern_rtcp_sdes_item_t item;
    tern_rtcp_sdes_iter_init(&si, &pkt);
    ok(!tern_rtcp_sdes_next(&si, &item));
    ok(!si.err);
    eq_int(tern_rtcp_sdes_iter_init(&si, &(tern_rtcp_packet_t){.type = TERN_RTCP_BYE}),
           TERN_ERR_INVALID_ARG);
}

static void test_rtcp_bye_fb(void)
{
    static const uint8_t bye[] = {0x81, 0xcb, 0x00, 0x02, 1, 2, 3, 4, 0x03, 'b', 'y', 'e'};
    tern_rtcp_iter_t it;
    tern_rtcp_packet_t pkt;
    tern_rtcp_iter_init(&it, bye, sizeof bye);
    ok(tern_rtcp_next(&it, &pkt));
    tern_rtcp_bye_t b;
    eq_int(tern_rtcp_parse_bye(&pkt, &b), TERN_OK);
    eq_int(b.count, 1);
    eq_int(b.ssrc[0], 0x01020304);
    eq_int(b.reason_len, 3);
    ok(memcmp(b.reason, "bye", 3) == 0);
    uint8_t out[64];
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, out, sizeof out);
    eq_int(tern_rtcp_write_bye(&w, &b), TERN_OK);
    eq_int(w.len, sizeof bye);
    ok(eq_mem(out, bye, sizeof bye));
    /* a reason longer than the packet */
    uint8_t bad[sizeof bye];
    memcpy(bad, bye, sizeof bad);
    bad[8] = 4;
    tern_rtcp_iter_init(&it, bad, sizeof bad);
    ok(tern_rtcp_next(&it, &pkt));
    eq_int(tern_rtcp_parse_bye(&pkt, &b), TERN_ERR_PARSE);
    /* SC 2 but one SSRC */
    bad[8] = 3;
    bad[0] = 0x82;
    bad[3] = 0x01;
    tern_rtcp_iter_init(&it, bad, 8);
    ok(tern_rtcp_next(&it, &pkt));
    eq_int(tern_rtcp_parse_bye(&pkt, &b), TERN_ERR_PARSE);

    /* generic NACK: PID 100 with BLP bits 0 and 15 -> 100, 101, 116 */
    static const uint8_t nack[] = {0x81, 0xcd, 0x00, 0x03, 0, 0,   0,    1,
                                   0,    0,    0,    2,    0, 100, 0x80, 0x01};
    tern_rtcp_iter_init(&it, nack, sizeof nack);
    ok(tern_rtcp_next(&it, &pkt));
    tern_rtcp_fb_t f;
    eq_int(tern_rtcp_parse_fb(&pkt, &f), TERN_OK);
    eq_int(f.fmt, TERN_RTCP_FMT_NACK);
    eq_int(f.sender_ssrc, 1);
    eq_int(f.media_ssrc, 2);
    uint16_t seqs[20];
    eq_int(tern_rtcp_nack_sequences(&f, seqs, 20), 3);
    eq_int(seqs[0], 100);
    eq_int(seqs[1], 101);
    eq_int(seqs[2], 116);
    eq_int(tern_rtcp_nack_sequences(&f, seqs, 2), 2);
    tern_wbuf_init(&w, NULL, out, sizeof out);
    eq_int(tern_rtcp_write_fb(&w, TERN_RTCP_RTPFB, &f), TERN_OK);
    ok(w.len == sizeof nack && eq_mem(out, nack, sizeof nack));

    /* PLI: no FCI. A feedback packet shorter than its two SSRCs is refused. */
    static const uint8_t pli[] = {0x81, 0xce, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2};
    tern_rtcp_iter_init(&it, pli, sizeof pli);
    ok(tern_rtcp_next(&it, &pkt));
    eq_int(tern_rtcp_parse_fb(&pkt, &f), TERN_OK);
    eq_int(f.fci_len, 0);
    pkt.body_len = 4;
    eq_int(tern_rtcp_parse_fb(&pkt, &f), TERN_ERR_PARSE);

    /* APP: name and data */
    static const uint8_t app[] = {0x85, 0xcc, 0x00, 0x03, 0, 0, 0, 9,
                                  'q',  'r',  's',  't',  1, 2, 3, 4};
    tern_rtcp_iter_init(&it, app, sizeof app);
    ok(tern_rtcp_next(&it, &pkt));
    eq_int(tern_rtcp_parse_fb(&pkt, &f), TERN_OK);
    eq_int(f.fmt, 5);
    eq_str(f.name, "qrst");
    eq_int(f.fci_len, 4);
    tern_wbuf_init(&w, NULL, out, sizeof out);
    eq_int(tern_rtcp_write_fb(&w, TERN_RTCP_APP, &f), TERN_OK);
    ok(w.len == sizeof app && eq_mem(out, app, sizeof app));
    eq_int(tern_rtcp_parse_fb(&(tern_rtcp_packet_t){.type = TERN_RTCP_SR}, &f),
           TERN_ERR_INVALID_ARG);

    /* RR with fewer bytes than its RC says */
    static const uint8_t rr[] = {0x81, 0xc9, 0x00, 0x01, 0, 0, 0, 1};
    tern_rtcp_iter_init(&it, rr, sizeof rr);
    ok(tern_rtcp_next(&it, &pkt));
    tern_rtcp_report_packet_t r;
    eq_int(tern_rtcp_parse_report(&pkt, &r), TERN_ERR_PARSE);
}

static void test_rtcp_writer_limits(void)
{
    uint8_t out[16];
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, out, sizeof out);
    uint8_t body[8] = {0};
    eq_int(tern_rtcp_write_packet(&w, 200, 32, body, 4, 0), TERN_ERR_INVALID_ARG);
    eq_int(tern_rtcp_write_packet(&w, 200, 0, body, 3, 0), TERN_ERR_INVALID_ARG);
    eq_int(tern_rtcp_write_packet(&w, 200, 0, body, 3, 1), TERN_OK);
    eq_int(w.len, 8);
    tern_rtcp_iter_t it;
    tern_rtcp_packet_t pkt;
    tern_rtcp_iter_init(&it, out, w.len);
    ok(!tern_rtcp_next(&it, &pkt)); /* padding 1 is not a multiple of four */
    ok(it.err);
    tern_wbuf_init(&w, NULL, out, sizeof out);
    eq_int(tern_rtcp_write_packet(&w, 201, 0, body, 4, 8), TERN_OK);
    tern_rtcp_iter_init(&it, out, w.len);
    ok(tern_rtcp_next(&it, &pkt));
    eq_int(pkt.body_len, 4);
    eq_int(pkt.padding_len, 8);
    /* fixed storage too small: NOMEM, nothing claimed */
    tern_wbuf_init(&w, NULL, out, 8);
    eq_int(tern_rtcp_write_packet(&w, 201, 0, body, 8, 0), TERN_ERR_NOMEM);
}

/* ---- SRTP ---- */

/* libsrtp2's SRTCP vectors protect an SR whose length field (12 words) is longer than the
 * packet: the session checks only what it reads (header and SSRC), tern_rtcp_next the rest. */

static const uint8_t cm_key[16] = {0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0,
                                   0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39};
static const uint8_t cm_salt[14] = {0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe,
                                    0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6};
static const uint8_t cm_rtp[38] = {0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe,
                                   0xba, 0xbe, 0x4e, 0x55, 0xdc, 0x4c, 0xe7, 0x99, 0x78, 0xd8,
                                   0x8c, 0xa4, 0xd2, 0x15, 0x94, 0x9d, 0x24, 0x02, 0xb7, 0x8d,
                                   0x6a, 0xcc, 0x99, 0xea, 0x17, 0x9b, 0x8d, 0xbb};
static const uint8_t rtcp_plain[24] = {0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe,
                                       0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
                                       0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab};
static const uint8_t cm_rtcp[38] = {0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0x71, 0x28,
                                    0x03, 0x5b, 0xe4, 0x87, 0xb9, 0xbd, 0xbe, 0xf8, 0x90, 0x41,
                                    0xf9, 0x77, 0xa5, 0xa8, 0x80, 0x00, 0x00, 0x01, 0x99, 0x3e,
                                    0x08, 0xcd, 0x54, 0xd6, 0xc1, 0x23, 0x07, 0x98};
static const uint8_t gcm_key[16] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                    0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};
static const uint8_t gcm_salt[12] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5,
                                     0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab};
static const uint8_t gcm_rtp[44] = {
    0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0xc5, 0x00, 0x2e,
    0xde, 0x04, 0xcf, 0xdd, 0x2e, 0xb9, 0x11, 0x59, 0xe0, 0x88, 0x0a, 0xa0, 0x6e, 0xd2, 0x97,
    0x68, 0x26, 0xf7, 0x96, 0xb2, 0x01, 0xdf, 0x31, 0x31, 0xa1, 0x27, 0xe8, 0xa3, 0x92};
static const uint8_t gcm_rtcp[44] = {
    0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0xc9, 0x8b, 0x8b, 0x5d, 0xf0, 0x39, 0x2a,
    0x55, 0x85, 0x2b, 0x6c, 0x21, 0xac, 0x8e, 0x70, 0x25, 0xc5, 0x2c, 0x6f, 0xbe, 0xa2, 0xb3,
    0xb4, 0x46, 0xea, 0x31, 0x12, 0x3b, 0xa8, 0x8c, 0xe6, 0x1e, 0x80, 0x00, 0x00, 0x01};

static tern_srtp_t *session(tern_srtp_profile_t profile, const uint8_t *key, const uint8_t *salt)
{
    tern_srtp_config_t cfg = {.profile = profile,
                              .local_key = key,
                              .local_salt = salt,
                              .remote_key = key,
                              .remote_salt = salt};
    tern_srtp_t *s = NULL;
    if (tern_srtp_new(&ctx, &cfg, &s) != TERN_OK)
        return NULL;
    return s;
}

static void check_vectors(tern_srtp_profile_t profile, const uint8_t *key, const uint8_t *salt,
                          const uint8_t *srtp, size_t srtp_len, const uint8_t *srtcp,
                          size_t srtcp_len)
{
    tern_srtp_t *tx = session(profile, key, salt), *rx = session(profile, key, salt);
    ok(tx && rx);
    if (!tx || !rx) {
        tern_srtp_free(tx);
        tern_srtp_free(rx);
        return;
    }
    uint8_t buf[256];
    size_t len = sizeof rtp_plain;
    memcpy(buf, rtp_plain, len);
    eq_int(tern_srtp_protect_rtp(tx, buf, &len, sizeof buf), TERN_OK);
    eq_int(len, srtp_len);
    ok(eq_mem(buf, srtp, srtp_len));
    eq_int(tern_srtp_unprotect_rtp(rx, buf, &len), TERN_OK);
    eq_int(len, sizeof rtp_plain);
    ok(eq_mem(buf, rtp_plain, sizeof rtp_plain));

    len = sizeof rtcp_plain;
    memcpy(buf, rtcp_plain, len);
    eq_int(tern_srtp_protect_rtcp(tx, buf, &len, sizeof buf), TERN_OK);
    eq_int(len, srtcp_len);
    ok(eq_mem(buf, srtcp, srtcp_len));
    eq_int(tern_srtp_unprotect_rtcp(rx, buf, &len), TERN_OK);
    eq_int(len, sizeof rtcp_plain);
    ok(eq_mem(buf, rtcp_plain, sizeof rtcp_plain));

    /* a replay of either is refused and counted */
    memcpy(buf, srtp, srtp_len);
    len = srtp_len;
    eq_int(tern_srtp_unprotect_rtp(rx, buf, &len), TERN_ERR_CRYPTO);
    memcpy(buf, srtcp, srtcp_len);
    len = srtcp_len;
    eq_int(tern_srtp_unprotect_rtcp(rx, buf, &len), TERN_ERR_CRYPTO);
    tern_srtp_stats_t st;
    tern_srtp_get_stats(rx, &st);
    eq_int(st.replayed, 2);
    eq_int(st.unprotected_rtp, 1);
    eq_int(st.unprotected_rtcp, 1);
    tern_srtp_free(tx);
    tern_srtp_free(rx);
}

static void test_srtp_vectors(void)
{
    check_vectors(TERN_SRTP_PROFILE_AES128_CM_SHA1_80, cm_key, cm_salt, cm_rtp, sizeof cm_rtp,
                  cm_rtcp, sizeof cm_rtcp);
    check_vectors(TERN_SRTP_PROFILE_AEAD_AES_128_GCM, gcm_key, gcm_salt, gcm_rtp, sizeof gcm_rtp,
                  gcm_rtcp, sizeof gcm_rtcp);
}

static void test_srtp_hostile(void)
{
    tern_srtp_t *rx = session(TERN_SRTP_PROFILE_AES128_CM_SHA1_80, cm_key, cm_salt);
    ok(rx != NULL);
    if (!rx)
        return;
    uint8_t buf[64];
    size_t len;
    /* every single-bit flip of the vector is refused (header, payload, tag) */
    int refused = 0;
    for (size_t bit = 0; bit < sizeof cm_rtp * 8; bit++) {
        memcpy(buf, cm_rtp, sizeof cm_rtp);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        len = sizeof cm_rtp;
        refused += tern_srtp_unprotect_rtp(rx, buf, &len) != TERN_OK;
    }
    eq_int(refused, (int)sizeof cm_rtp * 8);
    /* every truncation too */
    for (size_t n = 0; n < sizeof cm_rtp; n++) {
        memcpy(buf, cm_rtp, sizeof cm_rtp);
        len = n;
        ok(tern_srtp_unprotect_rtp(rx, buf, &len) != TERN_OK);
        eq_int(len, n);
    }
    for (size_t n = 0; n < sizeof cm_rtcp; n++) {
        memcpy(buf, cm_rtcp, sizeof cm_rtcp);
        len = n;
        ok(tern_srtp_unprotect_rtcp(rx, buf, &len) != TERN_OK);
    }
    tern_srtp_stats_t st;
    tern_srtp_get_stats(rx, &st);
    ok(st.malformed > 0 && st.auth_failed > 0);
    eq_int(st.unprotected_rtp, 0);
    /* the untouched vector still passes after all that */
    memcpy(buf, cm_rtp, sizeof cm_rtp);
    len = sizeof cm_rtp;
    eq_int(tern_srtp_unprotect_rtp(rx, buf, &len), TERN_OK);

    /* protect: not RTP, no room for the tag */
    memcpy(buf, rtp_plain, sizeof rtp_plain);
    len = sizeof rtp_plain;
    eq_int(tern_srtp_protect_rtp(rx, buf, &len, sizeof buf), TERN_ERR_TOO_LARGE);
    buf[0] = 0x40;
    eq_int(tern_srtp_protect_rtp(rx, buf, &len, sizeof buf), TERN_ERR_PARSE);
    memcpy(buf, rtcp_plain, sizeof rtcp_plain);
    len = 7; /* no room for the SSRC */
    eq_int(tern_srtp_protect_rtcp(rx, buf, &len, sizeof buf), TERN_ERR_PARSE);
    len = 24;
    buf[1] = 0x60; /* not an RTCP packet type */
    eq_int(tern_srtp_protect_rtcp(rx, buf, &len, sizeof buf), TERN_ERR_PARSE);
    tern_srtp_free(rx);

    /* config errors */
    tern_srtp_t *s = NULL;
    tern_srtp_config_t cfg = {.profile = 3,
                              .local_key = cm_key,
                              .local_salt = cm_salt,
                              .remote_key = cm_key,
                              .remote_salt = cm_salt};
    eq_int(tern_srtp_new(&ctx, &cfg, &s), TERN_ERR_INVALID_ARG);
    cfg.profile = TERN_SRTP_PROFILE_AES128_CM_SHA1_80;
    cfg.remote_salt = NULL;
    eq_int(tern_srtp_new(&ctx, &cfg, &s), TERN_ERR_INVALID_ARG);
    ok(s == NULL);
    tern_srtp_free(NULL);
}

/* Two sessions with crossed keys talk both ways; sequence numbers wrap (ROC, RFC 3711 §3.3.1). */
static void test_srtp_pair(void)
{
    uint8_t ka[16], sa[14], kb[16], sb[14];
    for (int i = 0; i < 16; i++) {
        ka[i] = (uint8_t)i;
        kb[i] = (uint8_t)(0xf0 + i);
    }
    memcpy(sa, cm_salt, 14);
    memcpy(sb, cm_salt, 14);
    sb[0] ^= 1;
    tern_srtp_config_t ca = {TERN_SRTP_PROFILE_AES128_CM_SHA1_80, ka, sa, kb, sb, 64};
    tern_srtp_config_t cb = {TERN_SRTP_PROFILE_AES128_CM_SHA1_80, kb, sb, ka, sa, 64};
    tern_srtp_t *a = NULL, *b = NULL;
    eq_int(tern_srtp_new(&ctx, &ca, &a), TERN_OK);
    eq_int(tern_srtp_new(&ctx, &cb, &b), TERN_OK);
    if (!a || !b) {
        tern_srtp_free(a);
        tern_srtp_free(b);
        return;
    }
    int good = 0;
    for (uint32_t i = 0; i < 8; i++) {
        uint8_t buf[256];
        memcpy(buf, rtp_plain, sizeof rtp_plain);
        uint16_t seq = (uint16_t)(65532 + i);
        tern_store_u16(buf + 2, seq);
        size_t len = sizeof rtp_plain;
        tern_srtp_t *from = i % 2 ? a : b, *to = i % 2 ? b : a;
        if (tern_srtp_protect_rtp(from, buf, &len, sizeof buf) == TERN_OK &&
            tern_srtp_unprotect_rtp(to, buf, &len) == TERN_OK && len == sizeof rtp_plain &&
            tern_load_u16(buf + 2) == seq)
            good++;
        /* the wrong session cannot read it (another SSRC: each has its own ROC) */
        memcpy(buf, rtp_plain, sizeof rtp_plain);
        buf[11] ^= 1;
        len = sizeof rtp_plain;
        tern_srtp_protect_rtp(from, buf, &len, sizeof buf);
        ok(tern_srtp_unprotect_rtp(from, buf, &len) != TERN_OK);
    }
    eq_int(good, 8);
    tern_srtp_free(a);
    tern_srtp_free(b);
}

int main(void)
{
    uint64_t seed = 7;
    tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
    tern_ctx_init_base(&ctx, &cfg);
    subtest("demux", test_demux);
    subtest("rtp basic", test_rtp_basic);
    subtest("rtp csrc, extension, padding", test_rtp_csrc_ext_padding);
    subtest("rtp extension elements", test_rtp_ext_elements);
    subtest("rtcp compound", test_rtcp_compound);
    subtest("rtcp sdes errors", test_rtcp_sdes_errors);
    subtest("rtcp bye, feedback, app", test_rtcp_bye_fb);
    subtest("rtcp writer limits", test_rtcp_writer_limits);
    subtest("srtp vectors", test_srtp_vectors);
    subtest("srtp hostile input", test_srtp_hostile);
    subtest("srtp pair", test_srtp_pair);
    return check_done();
}
