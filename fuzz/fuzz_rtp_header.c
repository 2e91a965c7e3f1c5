/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the RTP header parsers (RFC 3550 §5.1) and RFC 8285 extension elements.
 *
 * 1. The input is parsed as plain RTP and as an SRTP header. What parses must lie inside the
 *    input, add up to it, and agree between the two parsers; it is written back and must give
 *    the same bytes (padding bytes other than the count are written as zeros, so those are
 *    compared by their count) and parse to the same view.
 * 2. The extension's elements are read, written again in the same form, and must read back
 *    the same; the input itself is also read as extension data of either form.
 * Deterministic and allocation-free apart from the write buffer.
 */
#include "srtp/srtp.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 65536
#define MAX_ELEMS 256

static bool inside(const uint8_t *p, size_t n, const uint8_t *data, size_t size)
{
    return n == 0 || (p >= data && n <= size && (size_t)(p - data) <= size - n);
}

static bool same_view(const tern_rtp_header_t *a, const tern_rtp_header_t *b)
{
    return a->padding == b->padding && a->extension == b->extension && a->marker == b->marker &&
           a->csrc_count == b->csrc_count && a->payload_type == b->payload_type &&
           a->sequence == b->sequence && a->timestamp == b->timestamp && a->ssrc == b->ssrc &&
           memcmp(a->csrc, b->csrc, sizeof a->csrc) == 0 && a->ext_profile == b->ext_profile &&
           a->ext_len == b->ext_len && (!a->ext_len || memcmp(a->ext, b->ext, a->ext_len) == 0) &&
           a->header_len == b->header_len && a->payload_len == b->payload_len &&
           (!a->payload_len || memcmp(a->payload, b->payload, a->payload_len) == 0) &&
           a->padding_len == b->padding_len;
}

typedef struct elems {
    tern_rtp_ext_elem_t e[MAX_ELEMS];
    size_t n;
    bool err;
} elems_t;

static void read_elems(tern_rtp_ext_iter_t *it, const uint8_t *ext, size_t len, elems_t *out)
{
    out->n = 0;
    tern_rtp_ext_elem_t e;
    while (out->n < MAX_ELEMS && tern_rtp_ext_next(it, &e)) {
        if (!inside(e.data, e.len, ext, len) || e.id == 0 ||
            (!it->two_byte && (e.id == 15 || e.len < 1 || e.len > 16)))
            abort();
        out->e[out->n++] = e;
    }
    out->err = it->err;
}

/* Elements read from an extension, written again, read again: the same list. */
static void check_elements(const uint8_t *ext, size_t len, uint16_t profile)
{
    tern_rtp_header_t h = {.extension = true, .ext_profile = profile, .ext = ext, .ext_len = len};
    tern_rtp_ext_iter_t it;
    if (tern_rtp_ext_iter_init(&it, &h) != TERN_OK)
        return;
    static elems_t first, again;
    read_elems(&it, ext, len, &first);
    if (first.err || first.n == MAX_ELEMS)
        return;
    static uint8_t buf[MAX_INPUT * 2];
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    for (size_t i = 0; i < first.n; i++)
        if (tern_rtp_ext_write(&w, it.two_byte, &first.e[i]) != TERN_OK)
            abort();
    tern_rtp_ext_pad(&w, 0);
    if (w.err || w.len % 4 != 0)
        abort();
    h.ext = buf;
    h.ext_len = w.len;
    if (tern_rtp_ext_iter_init(&it, &h) != TERN_OK)
        abort();
    read_elems(&it, buf, w.len, &again);
    if (again.err || again.n != first.n)
        abort();
    for (size_t i = 0; i < first.n; i++)
        if (again.e[i].id != first.e[i].id || again.e[i].len != first.e[i].len ||
            memcmp(again.e[i].data, first.e[i].data, first.e[i].len) != 0)
            abort();
}

static void check_packet(const uint8_t *data, size_t size)
{
    tern_rtp_header_t h, hdr, again;
    int rc = tern_rtp_parse(data, size, &h);
    int rc2 = tern_rtp_parse_header(data, size, &hdr);
    if (rc == TERN_OK && rc2 != TERN_OK)
        abort();
    if (rc2 == TERN_OK) {
        if (hdr.header_len + hdr.payload_len != size || hdr.header_len < TERN_RTP_HEADER_MIN ||
            !inside(hdr.payload, hdr.payload_len, data, size) ||
            (hdr.extension && !inside(hdr.ext, hdr.ext_len, data, size)) || hdr.padding_len)
            abort();
        if (hdr.extension)
            check_elements(hdr.ext, hdr.ext_len, hdr.ext_profile);
    }
    if (rc != TERN_OK)
        return;
    if (h.header_len != hdr.header_len || h.header_len + h.payload_len + h.padding_len != size ||
        (h.padding != (h.padding_len > 0)) || !inside(h.payload, h.payload_len, data, size))
        abort();
    static uint8_t buf[MAX_INPUT + 16];
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    if (tern_rtp_write(&h, &w) != TERN_OK || w.len != size)
        abort();
    /* identical up to the padding; the padding's last byte is its count */
    size_t body = h.header_len + h.payload_len;
    if (memcmp(buf, data, body) != 0 || (h.padding && buf[size - 1] != data[size - 1]))
        abort();
    if (tern_rtp_parse(buf, w.len, &again) != TERN_OK)
        abort();
    if (!same_view(&h, &again))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    check_packet(data, size);
    /* the bytes as extension data of each form (a multiple of 4, as the header makes it) */
    size_t ext = size / 4 * 4;
    check_elements(data, ext, TERN_RTP_EXT_ONE_BYTE);
    check_elements(data, ext, TERN_RTP_EXT_TWO_BYTE | (size & 0xf));
    return 0;
}
