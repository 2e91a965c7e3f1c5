/* SPDX-License-Identifier: MIT */
/*
 * Verifiable message streams over data channels. Each message is generated from (stream key,
 * sequence number, length): from 12 bytes up (24 for text) it starts with a header (sequence,
 * length, key) and the rest is a pattern derived from all three, so the receiver can tell a
 * message that arrived twice, out of order, truncated, corrupted or from another channel, with
 * no side channel. Shorter messages carry only the pattern and are recognised by size and
 * content among those not yet received (use them on reliable ordered channels, where the next
 * one is known; a 0-byte message is recognised by its size alone).
 */
#ifndef TERN_TESTS_SIM_SIMPEER_TRAFFIC_H
#define TERN_TESTS_SIM_SIMPEER_TRAFFIC_H

#include "simpeer.h"

typedef struct simstream {
    /* configuration */
    uint32_t key;
    bool ordered;
    bool reliable;
    bool text;
    /* sender */
    uint32_t sent;
    uint64_t sent_bytes;
    uint32_t *sizes; /* size of each message sent */
    size_t sizes_cap;
    /* receiver */
    uint32_t received;
    uint64_t received_bytes;
    uint32_t duplicates;   /* a message seen twice */
    uint32_t corrupt;      /* bad header, content, length, key or type */
    uint32_t out_of_order; /* ordered: a message older than one already received */
    uint32_t gaps;         /* reliable and ordered: a message skipped over */
    int64_t last_seq;      /* highest sequence received; -1: none */
    uint8_t *seen;         /* one bit per sequence number */
    size_t seen_cap;       /* bytes */
} simstream_t;

void simstream_init(simstream_t *s, uint32_t key, bool ordered, bool reliable, bool text);
void simstream_dispose(simstream_t *s);

/*
 * Send the stream's next message, of `len` bytes, on dc (tern_dc_send, or tern_dc_send_text
 * for a text stream). Counts it only if the send succeeded. Returns the send's result.
 */
int simstream_send(simstream_t *s, tern_dc_t *dc, tern_time_t now, size_t len);

/* Check one received message against the stream. Returns false if it is wrong (counted). */
bool simstream_receive(simstream_t *s, const uint8_t *data, size_t len, bool is_text);

/* No duplicate, corruption, reordering (ordered) or gap (reliable ordered); received <= sent. */
bool simstream_ok(const simstream_t *s);

/* Everything sent has arrived (for reliable streams). */
bool simstream_complete(const simstream_t *s);

/* Report what is wrong with the stream through sim_fail (nothing if it is fine). */
void simstream_check(const simstream_t *s, sim_t *sim, const char *what, bool want_complete);

#endif
