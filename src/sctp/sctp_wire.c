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

bool tern_sctp_wire_sack_cum(const uint8_t *pkt, size_t len, uint32_t *cum)
{
    if (!pkt || len < COMMON_HEADER)
        return false;
    uint8_t type;
    size_t l;
    bool found = false;
    for (size_t off = COMMON_HEADER; next_chunk(pkt, len, off, &type, &l); off += padded(l)) {
        if (type == CHUNK_SACK && l >= CHUNK_HEADER + 4) {
            *cum = tern_load_u32(pkt + off + CHUNK_HEADER);
            found = true;
        }
    }
    return found;
}

bool tern_sctp_wire_last_data_tsn(const uint8_t *pkt, size_t len, uint32_t *tsn)
{
    if (!pkt || len < COMMON_HEADER)
        return false;
    uint8_t type;
    size_t l;
    bool found = false;
    for (size_t off = COMMON_HEADER; next_chunk(pkt, len, off, &type, &l); off += padded(l)) {
        if (type == CHUNK_DATA && l >= DATA_HEADER) {
            *tsn = tern_load_u32(pkt + off + CHUNK_HEADER);
            found = true;
        }
    }
    return found;
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
