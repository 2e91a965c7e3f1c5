/* SPDX-License-Identifier: MIT */
/*
 * Verifiable message streams (simpeer_traffic.h): generation of self-describing messages, and
 * the receiver's checks for duplicates, corruption, order and completeness.
 */
#include "simpeer_traffic.h"

#include "util/rng.h"

#include <stdlib.h>
#include <string.h>

#define HEADER_BYTES 12 /* sequence, length, key: three little-endian u32 */

static size_t header_len(const simstream_t *s)
{
    return s->text ? 2 * HEADER_BYTES : HEADER_BYTES; /* text: one letter per nibble */
}

/* Byte i of the pattern of message seq (after the header, if any). */
static void fill_pattern(const simstream_t *s, uint32_t seq, size_t len, uint8_t *out)
{
    uint64_t state = ((uint64_t)s->key << 32 | seq) ^ ((uint64_t)len * 0x9E3779B97F4A7C15ull);
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = tern_splitmix_next(&state);
        size_t n = len - i < 8 ? len - i : 8;
        for (size_t j = 0; j < n; j++) {
            uint8_t b = (uint8_t)(v >> (8 * j));
            out[i + j] = s->text ? (uint8_t)('a' + (b & 15)) : b;
        }
    }
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_header(const simstream_t *s, uint8_t *out, uint32_t seq, size_t len)
{
    uint8_t h[HEADER_BYTES];
    put_u32(h, seq);
    put_u32(h + 4, (uint32_t)len);
    put_u32(h + 8, s->key);
    if (!s->text) {
        memcpy(out, h, sizeof h);
        return;
    }
    for (size_t i = 0; i < sizeof h; i++) {
        out[2 * i] = (uint8_t)('a' + (h[i] >> 4));
        out[2 * i + 1] = (uint8_t)('a' + (h[i] & 15));
    }
}

static bool get_header(const simstream_t *s, const uint8_t *in, uint32_t *seq, uint32_t *len,
                       uint32_t *key)
{
    uint8_t h[HEADER_BYTES];
    if (s->text) {
        for (size_t i = 0; i < sizeof h; i++) {
            uint8_t hi = (uint8_t)(in[2 * i] - 'a'), lo = (uint8_t)(in[2 * i + 1] - 'a');
            if (hi > 15 || lo > 15)
                return false;
            h[i] = (uint8_t)(hi << 4 | lo);
        }
    } else {
        memcpy(h, in, sizeof h);
    }
    *seq = get_u32(h);
    *len = get_u32(h + 4);
    *key = get_u32(h + 8);
    return true;
}

/* The whole message seq of len bytes, in a buffer the caller frees. */
static uint8_t *make_message(const simstream_t *s, uint32_t seq, size_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        abort();
    size_t h = len >= header_len(s) ? header_len(s) : 0;
    if (h)
        put_header(s, buf, seq, len);
    fill_pattern(s, seq, len - h, buf + h);
    return buf;
}

void simstream_init(simstream_t *s, uint32_t key, bool ordered, bool reliable, bool text)
{
    memset(s, 0, sizeof *s);
    s->key = key;
    s->ordered = ordered;
    s->reliable = reliable;
    s->text = text;
    s->last_seq = -1;
}

void simstream_dispose(simstream_t *s)
{
    free(s->sizes);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

int simstream_send(simstream_t *s, tern_dc_t *dc, tern_time_t now, size_t len)
{
    uint8_t *msg = make_message(s, s->sent, len);
    int err = s->text ? tern_dc_send_text(dc, now, (const char *)msg, len)
                      : tern_dc_send(dc, now, msg, len);
    free(msg);
    if (err)
        return err;
    if (s->sent == s->sizes_cap) {
        s->sizes_cap = s->sizes_cap ? s->sizes_cap * 2 : 64;
        s->sizes = realloc(s->sizes, s->sizes_cap * sizeof *s->sizes);
        if (!s->sizes)
            abort();
    }
    s->sizes[s->sent++] = (uint32_t)len;
    s->sent_bytes += len;
    return 0;
}

static bool was_seen(const simstream_t *s, uint32_t seq)
{
    return seq / 8 < s->seen_cap && (s->seen[seq / 8] >> (seq % 8) & 1);
}

static void mark_seen(simstream_t *s, uint32_t seq)
{
    if (seq / 8 >= s->seen_cap) {
        size_t cap = s->seen_cap ? s->seen_cap : 64;
        while (seq / 8 >= cap)
            cap *= 2;
        s->seen = realloc(s->seen, cap);
        if (!s->seen)
            abort();
        memset(s->seen + s->seen_cap, 0, cap - s->seen_cap);
        s->seen_cap = cap;
    }
    s->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
}

static bool content_matches(const simstream_t *s, uint32_t seq, const uint8_t *data, size_t len)
{
    if (seq >= s->sent || s->sizes[seq] != len)
        return false;
    uint8_t *want = make_message(s, seq, len);
    bool same = len == 0 || memcmp(want, data, len) == 0;
    free(want);
    return same;
}

/* Which message a short (headerless) one is: the first unseen match after last_seq if
 * ordered, else any unseen match; a seen match makes it a duplicate. */
static bool identify_short(const simstream_t *s, const uint8_t *data, size_t len, uint32_t *seq,
                           bool *dup)
{
    uint32_t first = s->ordered && s->last_seq >= 0 ? (uint32_t)(s->last_seq + 1) : 0;
    for (uint32_t i = first; i < s->sent; i++) {
        if (!was_seen(s, i) && content_matches(s, i, data, len)) {
            *seq = i;
            *dup = false;
            return true;
        }
    }
    for (uint32_t i = 0; i < s->sent; i++) {
        if (was_seen(s, i) && content_matches(s, i, data, len)) {
            *seq = i;
            *dup = true;
            return true;
        }
    }
    return false;
}

bool simstream_receive(simstream_t *s, const uint8_t *data, size_t len, bool is_text)
{
    uint32_t seq;
    bool dup = false;
    if (is_text != s->text) {
        s->corrupt++;
        return false;
    }
    if (len >= header_len(s)) {
        uint32_t hlen, key;
        if (!get_header(s, data, &seq, &hlen, &key) || hlen != len || key != s->key ||
            !content_matches(s, seq, data, len)) {
            s->corrupt++;
            return false;
        }
        dup = was_seen(s, seq);
    } else if (!identify_short(s, data, len, &seq, &dup)) {
        s->corrupt++;
        return false;
    }
    if (dup) {
        s->duplicates++;
        return false;
    }
    mark_seen(s, seq);
    s->received++;
    s->received_bytes += len;
    bool good = true;
    if (s->ordered && (int64_t)seq < s->last_seq) {
        s->out_of_order++;
        good = false;
    } else if (s->ordered && s->reliable && (int64_t)seq > s->last_seq + 1) {
        s->gaps++;
        good = false;
    }
    if ((int64_t)seq > s->last_seq)
        s->last_seq = seq;
    return good;
}

bool simstream_ok(const simstream_t *s)
{
    return s->duplicates == 0 && s->corrupt == 0 && s->out_of_order == 0 && s->gaps == 0 &&
           s->received <= s->sent;
}

bool simstream_complete(const simstream_t *s)
{
    return s->received == s->sent;
}

void simstream_check(const simstream_t *s, sim_t *sim, const char *what, bool want_complete)
{
    if (simstream_ok(s) && (!want_complete || simstream_complete(s)))
        return;
    sim_fail(sim,
             "%s (key %u, %s %s%s): sent %u, received %u, duplicates %u, corrupt %u, "
             "out of order %u, gaps %u",
             what, s->key, s->ordered ? "ordered" : "unordered",
             s->reliable ? "reliable" : "partially reliable", s->text ? " text" : "", s->sent,
             s->received, s->duplicates, s->corrupt, s->out_of_order, s->gaps);
}
