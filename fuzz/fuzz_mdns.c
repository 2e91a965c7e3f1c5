/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness of the mDNS codec and the agent's resolver (src/ice/ice_mdns.c). The input is
 * one datagram. The codec part parses it; if it parses, every question kept is written again
 * as a query and every address record kept as a response (plain and compressed), and those
 * must parse back to the same questions and records. The resolver part hands the input, as if
 * it arrived on 224.0.0.251:5353 from port 5353, to an agent that waits for two ".local"
 * names (the seeds answer them), asks tern_ice_accepts first, then runs the agent's timers to
 * the end of every lookup, draining as a driver does. Deterministic: virtual time, fixed rng.
 */
#include "ice/ice_mdns.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 65536

static void die(void)
{
    abort();
}

static bool same_question(const tern_mdns_question_t *a, const tern_mdns_question_t *b)
{
    return strcmp(a->name, b->name) == 0 && a->type == b->type && a->qclass == b->qclass &&
           a->unicast_response == b->unicast_response;
}

static bool same_record(const tern_mdns_record_t *a, const tern_mdns_record_t *b)
{
    return strcmp(a->name, b->name) == 0 && a->type == b->type && a->rclass == b->rclass &&
           a->cache_flush == b->cache_flush && a->ttl == b->ttl && a->section == b->section &&
           tern_addr_equal(&a->addr, &b->addr);
}

static void check_questions(const tern_mdns_msg_t *m)
{
    for (size_t i = 0; i < m->question_count; i++) {
        const tern_mdns_question_t *q = &m->questions[i];
        if (q->qclass != TERN_MDNS_CLASS_IN)
            continue; /* the writer only makes class IN */
        uint8_t buf[TERN_MDNS_QUERY_MAX];
        int len =
            tern_mdns_write_query(buf, sizeof buf, m->id, q->name, q->type, q->unicast_response);
        if (len <= 0)
            die(); /* every name the parser keeps must encode */
        static tern_mdns_msg_t again;
        if (tern_mdns_parse(buf, (size_t)len, &again) != TERN_OK || again.question_count != 1 ||
            again.id != m->id || again.is_response || !same_question(&again.questions[0], q))
            die();
    }
}

static void check_records(const tern_mdns_msg_t *m)
{
    static uint8_t buf[MAX_INPUT];
    for (int compress = 0; compress < 2; compress++) {
        int len = tern_mdns_write_response(buf, sizeof buf, m->id, m->records, m->record_count,
                                           compress != 0);
        if (len <= 0)
            die();
        static tern_mdns_msg_t again;
        if (tern_mdns_parse(buf, (size_t)len, &again) != TERN_OK ||
            again.record_count != m->record_count || !again.is_response || again.skipped != 0)
            die();
        /* Both list the records section by section, in message order within each. */
        for (size_t i = 0; i < m->record_count; i++)
            if (!same_record(&again.records[i], &m->records[i]))
                die();
    }
}

static void check_codec(const uint8_t *data, size_t size)
{
    static tern_mdns_msg_t m;
    int ret = tern_mdns_parse(data, size, &m);
    if (ret != TERN_OK) {
        if (ret != TERN_ERR_PARSE)
            die();
        return;
    }
    if (m.question_count > TERN_MDNS_MAX_QUESTIONS || m.record_count > TERN_MDNS_MAX_RECORDS ||
        m.question_count + m.record_count + m.skipped !=
            (size_t)m.qdcount + m.ancount + m.nscount + m.arcount)
        die();
    check_questions(&m);
    check_records(&m);
}

static tern_addr_t addr_of(const char *text)
{
    tern_addr_t a;
    if (tern_addr_parse(text, &a) != TERN_OK)
        abort();
    return a;
}

static void drain(tern_ice_t *ice)
{
    tern_transmit_t t;
    tern_ice_event_t e;
    while (tern_ice_poll_transmit(ice, &t) || tern_ice_poll_event(ice, &e)) {
    }
}

static void add_named(tern_ice_t *ice, tern_time_t now, const char *line)
{
    tern_ice_candidate_t c;
    if (tern_ice_candidate_parse(line, strlen(line), &c) != TERN_OK ||
        tern_ice_add_remote_candidate(ice, now, &c) != TERN_OK)
        die();
}

static void check_resolver(const uint8_t *data, size_t size)
{
    uint64_t seed = 7;
    tern_ctx_t ctx;
    tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
    if (tern_ctx_init_base(&ctx, &cfg) != TERN_OK)
        die();
    tern_time_t now = 1000000;
    tern_ice_t *ice;
    if (tern_ice_new(&ctx, NULL, now, &ice) != TERN_OK)
        die();
    tern_addr_t v4 = addr_of("10.0.0.1:1000"), v6 = addr_of("[2001:db8::1]:1000");
    if (tern_ice_add_local_address(ice, now, &v4) != TERN_OK ||
        tern_ice_add_local_address(ice, now, &v6) != TERN_OK ||
        tern_ice_set_remote_credentials(ice, now, "fuzzR", "fuzzRemotePassword012345") != TERN_OK)
        die();
    add_named(ice, now, "candidate:1 1 udp 2113937151 fuzz.local 5000 typ host");
    add_named(ice, now, "candidate:2 1 udp 2113937150 other.fuzz.local 5001 typ host");
    drain(ice);
    tern_datagram_t d = {.local = addr_of("224.0.0.251:5353"),
                         .remote = addr_of("10.0.0.2:5353"),
                         .data = data,
                         .len = size};
    (void)tern_ice_accepts(ice, &d);
    if (tern_ice_handle_input(ice, now, &d) != TERN_OK)
        die();
    drain(ice);
    /* The same again, late: after the lookups gave up, within their linger time. */
    now += 6000000;
    tern_ice_handle_timeout(ice, now);
    if (tern_ice_handle_input(ice, now, &d) != TERN_OK)
        die();
    drain(ice);
    for (int i = 0; i < 64 && tern_ice_next_deadline(ice) != TERN_TIME_NEVER; i++) {
        tern_time_t next = tern_ice_next_deadline(ice);
        if (next < now)
            die(); /* deadlines are never in the past */
        now = next;
        tern_ice_handle_timeout(ice, now);
        drain(ice);
    }
    tern_ice_free(ice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    check_codec(data, size);
    check_resolver(data, size);
    return 0;
}
