/* SPDX-License-Identifier: MIT */
/*
 * Just enough reading of SCTP packets (RFC 4960 §3: common header, then chunks of type, flags,
 * length, padded to 4 bytes) for the association wrapper to work around a usrsctp behaviour:
 * tern_sctp_wire_find_reset_request finds an Outgoing SSN Reset Request (RFC 6525 §4.1) in an
 * incoming RE-CONFIG chunk, tern_sctp_wire_sack_cum reads the cumulative TSN of an outgoing
 * SACK (RFC 4960 §3.3.4), tern_sctp_wire_has_data tells whether a packet carries DATA (for the
 * SACK policy), tern_sctp_wire_last_data_tsn reads the last TSN an outgoing packet carries (for
 * the tick's pace), and tern_sctp_wire_without_chunk copies a packet minus one chunk.
 * Everything here reads untrusted bytes and is bounds-checked.
 */
#include "sctp/sctp.h"

#include <stdio.h>
#include <string.h>

#define COMMON_HEADER 12
#define CHUNK_HEADER 4
#define CHUNK_DATA 0        /* RFC 4960 §3.3.1 */
#define DATA_HEADER 16      /* chunk header, TSN, stream, sequence, PPID */
#define CHUNK_SACK 3        /* RFC 4960 §3.3.4 */
#define CHUNK_RECONFIG 0x82 /* RFC 6525 §3.1 */
/* Outgoing SSN Reset Request Parameter (RFC 6525 §4.1): type, length, request sequence,
 * response sequence, sender's last assigned TSN, then the streams. */
#define PARAM_OUT_RESET 13
#define OUT_RESET_MIN_LEN 16

static size_t padded(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* The chunk at *off: its type and length; false at the end or on a malformed length. */
static bool next_chunk(const uint8_t *pkt, size_t len, size_t off, uint8_t *type, size_t *chunk_len)
{
    if (off + CHUNK_HEADER > len)
        return false;
    size_t l = tern_load_u16(pkt + off + 2);
    if (l < CHUNK_HEADER || l > len - off)
        return false;
    *type = pkt[off];
    *chunk_len = l;
    return true;
}

static bool find_out_reset_param(const uint8_t *chunk, size_t chunk_len, uint32_t *last_tsn)
{
    size_t off = CHUNK_HEADER;
    while (off + 4 <= chunk_len) {
        uint16_t type = tern_load_u16(chunk + off);
        size_t l = tern_load_u16(chunk + off + 2);
        if (l < 4 || l > chunk_len - off)
            return false;
        if (type == PARAM_OUT_RESET && l >= OUT_RESET_MIN_LEN) {
            *last_tsn = tern_load_u32(chunk + off + 12);
            return true;
        }
        off += padded(l);
    }
    return false;
}

bool tern_sctp_wire_find_reset_request(const uint8_t *pkt, size_t len, size_t *chunk_off,
                                       size_t *chunk_len, uint32_t *last_tsn)
{
    if (!pkt || len < COMMON_HEADER)
        return false;
    uint8_t type;
    size_t l;
    for (size_t off = COMMON_HEADER; next_chunk(pkt, len, off, &type, &l); off += padded(l)) {
        if (type == CHUNK_RECONFIG && find_out_reset_param(pkt + off, l, last_tsn)) {
            *chunk_off = off;
            *chunk_len = l;
            return true;
        }
    }
    return false;
}

/* The first 32-bit field after the header of the packet's last chunk of this type (the SACK's
 * cumulative TSN, the DATA chunk's TSN); false if there is none of at least min_len bytes. */
static bool last_chunk_field(const uint8_t *pkt, size_t len, uint8_t want, size_t min_len,
                             uint32_t *out)
{
    if (!pkt || len < COMMON_HEADER)
        return false;
    uint8_t type;
    size_t l;
    bool found = false;
    for (size_t off = COMMON_HEADER; next_chunk(pkt, len, off, &type, &l); off += padded(l)) {
        if (type == want && l >= min_len) {
            *out = tern_load_u32(pkt + off + CHUNK_HEADER);
            found = true;
        }
    }
    return found;
}

bool tern_sctp_wire_sack_cum(const uint8_t *pkt, size_t len, uint32_t *cum)
{
    return last_chunk_field(pkt, len, CHUNK_SACK, CHUNK_HEADER + 4, cum);
}

bool tern_sctp_wire_last_data_tsn(const uint8_t *pkt, size_t len, uint32_t *tsn)
{
    return last_chunk_field(pkt, len, CHUNK_DATA, DATA_HEADER, tsn);
}

bool tern_sctp_wire_has_data(const uint8_t *pkt, size_t len)
{
    if (!pkt || len < COMMON_HEADER)
        return false;
    uint8_t type;
    size_t l;
    for (size_t off = COMMON_HEADER; next_chunk(pkt, len, off, &type, &l); off += padded(l))
        if (type == CHUNK_DATA)
            return true;
    return false;
}

size_t tern_sctp_wire_without_chunk(const uint8_t *pkt, size_t len, size_t chunk_off,
                                    size_t chunk_len, uint8_t *out)
{
    size_t skip = TERN_MIN(padded(chunk_len), len - chunk_off);
    memcpy(out, pkt, chunk_off);
    memcpy(out + chunk_off, pkt + chunk_off + skip, len - chunk_off - skip);
    return len - skip;
}

/* Chunk names of RFC 4960 §3.2 and its extensions (RFC 3758 FORWARD-TSN, RFC 6525 RE-CONFIG). */
static const char *chunk_name(uint8_t type)
{
    static const char *const base[] = {
        "DATA", "INIT", "INIT-ACK", "SACK", "HEARTBEAT", "HEARTBEAT-ACK", "ABORT", "SHUTDOWN",
        "SHUTDOWN-ACK", "ERROR", "COOKIE-ECHO", "COOKIE-ACK", "ECNE", "CWR", "SHUTDOWN-COMPLETE"};
    if (type < sizeof base / sizeof base[0])
        return base[type];
    return type == 0xc0 ? "FORWARD-TSN" : type == CHUNK_RECONFIG ? "RE-CONFIG" : NULL;
}

/* One chunk's words: its name and what tells it apart (a TSN, a cumulative ack, a cause). */
static int describe_chunk(const uint8_t *c, size_t l, char *out, size_t size)
{
    const char *name = chunk_name(c[0]);
    char unknown[16];
    if (!name) {
        snprintf(unknown, sizeof unknown, "0x%02x", c[0]);
        name = unknown;
    }
    if (c[0] == CHUNK_DATA && l >= DATA_HEADER)
        return snprintf(out, size, " DATA(tsn=%u sid=%u len=%zu%s%s)", tern_load_u32(c + 4),
                        tern_load_u16(c + 8), l - DATA_HEADER, (c[1] & 2) ? " B" : "",
                        (c[1] & 1) ? " E" : "");
    if (c[0] == CHUNK_SACK && l >= 16) {
        unsigned gaps = tern_load_u16(c + 12), shown = 0;
        int n = snprintf(out, size, " SACK(cum=%u a_rwnd=%u dups=%u gaps", tern_load_u32(c + 4),
                         tern_load_u32(c + 8), tern_load_u16(c + 14));
        for (; shown < gaps && shown < 4 && 20 + 4 * (size_t)shown <= l && n > 0 &&
               (size_t)n < size;
             shown++) /* each block: start and end, offsets from the cumulative TSN */
            n += snprintf(out + n, size - (size_t)n, " +%u-%u", tern_load_u16(c + 16 + 4 * shown),
                          tern_load_u16(c + 18 + 4 * shown));
        if (n > 0 && (size_t)n < size)
            n += snprintf(out + n, size - (size_t)n, "%s)", shown < gaps ? " ..." : "");
        return n;
    }
    if ((c[0] == 6 || c[0] == 9) && l >= 8) { /* ABORT, ERROR: the first cause, with its text */
        size_t cause_len = TERN_MIN((size_t)tern_load_u16(c + 6), l - 4), text = 0;
        if (tern_load_u16(c + 4) == 13 && cause_len > 4) /* Protocol Violation: printable text */
            while (text < cause_len - 4 && text < 120 && c[8 + text] >= 0x20 && c[8 + text] < 0x7f)
                text++;
        return snprintf(out, size, " %s(T=%u cause=%u%s%.*s)", name, c[1] & 1,
                        tern_load_u16(c + 4), text ? " " : "", (int)text, (const char *)c + 8);
    }
    if (c[0] == 6)
        return snprintf(out, size, " ABORT(T=%u)", c[1] & 1);
    return snprintf(out, size, " %s(len=%zu)", name, l);
}

void tern_sctp_wire_describe(const uint8_t *pkt, size_t len, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    if (!pkt || len < COMMON_HEADER) {
        snprintf(out, size, " (%zu bytes: no common header)", len);
        return;
    }
    uint8_t type;
    size_t l, off = COMMON_HEADER;
    for (; next_chunk(pkt, len, off, &type, &l) && used < size; off += padded(l)) {
        int n = describe_chunk(pkt + off, l, out + used, size - used);
        if (n < 0)
            return;
        used += (size_t)n;
    }
    if (off < len && used < size)
        snprintf(out + used, size - used, " (%zu malformed bytes)", len - off);
}
