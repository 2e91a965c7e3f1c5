/* SPDX-License-Identifier: MIT */
/*
 * Stateful fuzz harness of the ICE agent: an agent with fixed credentials, two local addresses
 * and a STUN server is driven by steps read from the input, each a time advance (timers fire on
 * the way) and one of: a raw datagram, a STUN message built from fuzz fields and signed with the
 * right or a wrong key (so authenticated paths are reached: checks, answers to our own
 * transactions, role conflicts, nominations), or a command (remote candidate, end of
 * candidates, restart, send, close). After each step everything is drained and invariants are
 * checked. Deterministic: virtual time and a fixed-seed rng.
 */
#include "ice/ice.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 65536
#define MAX_STEPS 256
#define RECENT 8

static const char local_ufrag[] = "fuzzL";
static const char local_pwd[] = "fuzzLocalPassword0123456";
static const char remote_ufrag[] = "fuzzR";
static const char remote_pwd[] = "fuzzRemotePassword012345";

static const char *locals[] = {"10.0.0.1:1000", "[2001:db8::1]:1000"};
static const char *sources[] = {"10.0.0.2:2000",     "10.0.0.3:3000",     "[2001:db8::2]:2000",
                                "198.51.100.9:3478", "203.0.113.7:40000", "[2001:db8::3]:2"};

typedef struct reader {
    const uint8_t *p, *end;
} reader_t;

typedef struct recent_request {
    uint8_t tid[TERN_STUN_TID_LEN];
    tern_addr_t local, remote;
} recent_t;

typedef struct harness {
    tern_ctx_t ctx;
    uint64_t seed;
    tern_ice_t *ice;
    tern_time_t now;
    recent_t recent[RECENT];
    unsigned recent_count;
} harness_t;

static uint8_t take_u8(reader_t *r)
{
    return r->p < r->end ? *r->p++ : 0;
}

static uint16_t take_u16(reader_t *r)
{
    uint16_t hi = take_u8(r);
    return (uint16_t)(hi << 8 | take_u8(r));
}

static uint32_t take_u32(reader_t *r)
{
    uint32_t hi = take_u16(r);
    return hi << 16 | take_u16(r);
}

static uint64_t take_u64(reader_t *r)
{
    uint64_t hi = take_u32(r);
    return hi << 32 | take_u32(r);
}

static tern_addr_t addr_of(const char *text)
{
    tern_addr_t a;
    if (tern_addr_parse(text, &a) != TERN_OK)
        abort();
    return a;
}

static void remember_request(harness_t *h, const tern_transmit_t *t)
{
    tern_stun_msg_t m;
    if (tern_stun_parse(t->data, t->len, &m) != TERN_OK || m.msg_class != TERN_STUN_REQUEST)
        return;
    recent_t *r = &h->recent[h->recent_count++ % RECENT];
    memcpy(r->tid, m.tid, sizeof r->tid);
    r->local = t->local;
    r->remote = t->remote;
}

static void check_pair(const tern_ice_pair_view_t *v)
{
    if (!v->local || !v->remote || v->local_socket.family == TERN_AF_UNSPEC ||
        v->remote_addr.family == TERN_AF_UNSPEC)
        abort();
}

static void drain(harness_t *h)
{
    tern_transmit_t t;
    while (tern_ice_poll_transmit(h->ice, &t)) {
        if (t.len == 0 || t.local.family == TERN_AF_UNSPEC || t.remote.family == TERN_AF_UNSPEC)
            abort();
        remember_request(h, &t);
    }
    tern_ice_event_t e;
    while (tern_ice_poll_event(h->ice, &e)) {
        char line[TERN_ICE_CANDIDATE_STRLEN];
        if (e.type == TERN_ICE_EV_LOCAL_CANDIDATE &&
            tern_ice_candidate_format(e.u.candidate, line, sizeof line) <= 0)
            abort();
        if (e.type == TERN_ICE_EV_SELECTED_PAIR)
            check_pair(&e.u.pair);
    }
    tern_ice_pair_view_t v;
    if (tern_ice_selected_pair(h->ice, &v))
        check_pair(&v);
    if (tern_ice_next_deadline(h->ice) < h->now)
        abort();
}

/* Advance time, firing every deadline on the way; a deadline that does not move is a bug. */
static void advance(harness_t *h, tern_time_t to)
{
    for (int guard = 0;; guard++) {
        tern_time_t d = tern_ice_next_deadline(h->ice);
        if (d > to)
            break;
        if (guard > 100000)
            abort();
        h->now = d;
        tern_ice_handle_timeout(h->ice, h->now);
        drain(h);
    }
    h->now = to;
}

static void feed(harness_t *h, const tern_addr_t *local, const tern_addr_t *remote,
                 const uint8_t *data, size_t len)
{
    tern_datagram_t d = {.local = *local, .remote = *remote, .data = data, .len = len};
    (void)tern_ice_accepts(h->ice, &d);
    if (tern_ice_handle_input(h->ice, h->now, &d) != TERN_OK)
        abort();
    drain(h);
}

static void step_raw(harness_t *h, reader_t *r)
{
    uint8_t where = take_u8(r);
    size_t len = take_u16(r) % 1500;
    size_t left = (size_t)(r->end - r->p);
    if (len > left)
        len = left;
    tern_addr_t local = addr_of(locals[where & 1]);
    tern_addr_t remote = addr_of(sources[(where >> 1) % TERN_ARRAY_LEN(sources)]);
    feed(h, &local, &remote, r->p, len);
    r->p += len;
}

/* A STUN message from fuzz fields, signed with the key the agent expects unless told not to. */
static void step_stun(harness_t *h, reader_t *r)
{
    uint8_t cls = take_u8(r) & 3, flags = take_u8(r), where = take_u8(r);
    uint32_t priority = take_u32(r);
    uint64_t tie = take_u64(r);
    uint16_t code = (uint16_t)(300 + take_u16(r) % 400);
    uint8_t tid[TERN_STUN_TID_LEN];
    for (size_t i = 0; i < sizeof tid; i++)
        tid[i] = take_u8(r);
    tern_addr_t local = addr_of(locals[where & 1]);
    tern_addr_t remote = addr_of(sources[(where >> 1) % TERN_ARRAY_LEN(sources)]);
    /* Answer one of our recent requests: its transaction id, on its path. */
    if ((flags & 0x01) && h->recent_count > 0) {
        const recent_t *rq = &h->recent[(h->recent_count - 1 - (where >> 5)) % RECENT];
        if ((unsigned)(where >> 5) < h->recent_count) {
            memcpy(tid, rq->tid, sizeof tid);
            local = rq->local;
            remote = rq->remote;
        }
    }
    uint8_t buf[512];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, (tern_stun_class_t)cls,
                           (flags & 0x80) ? TERN_STUN_ALLOCATE : TERN_STUN_BINDING, tid);
    if (cls == TERN_STUN_REQUEST || cls == TERN_STUN_INDICATION) {
        if (!(flags & 0x02))
            tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME,
                                 (flags & 0x04) ? "fuzzL:fuzzR" : "nobody:fuzzR");
        tern_stun_put_u32(&sw, TERN_STUN_ATTR_PRIORITY, priority);
        tern_stun_put_u64(
            &sw, (flags & 0x08) ? TERN_STUN_ATTR_ICE_CONTROLLING : TERN_STUN_ATTR_ICE_CONTROLLED,
            tie);
        if (flags & 0x10)
            tern_stun_put_flag(&sw, TERN_STUN_ATTR_USE_CANDIDATE);
    } else if (cls == TERN_STUN_SUCCESS) {
        tern_addr_t mapped = addr_of(sources[(priority >> 8) % TERN_ARRAY_LEN(sources)]);
        if (flags & 0x08)
            tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &mapped);
        else if (flags & 0x10)
            tern_stun_put_addr(&sw, TERN_STUN_ATTR_MAPPED_ADDRESS, &mapped);
    } else {
        tern_stun_put_error_code(&sw, (flags & 0x08) ? TERN_STUN_ERR_ROLE_CONFLICT : code, NULL);
    }
    if (flags & 0x20)
        tern_stun_put_u32(&sw, 0x0777, 0); /* an unknown comprehension-required attribute */
    if (!(flags & 0x40)) {
        const char *key = cls == TERN_STUN_REQUEST ? local_pwd : remote_pwd;
        if (flags & 0x02)
            key = "wrong-key";
        tern_stun_put_integrity(&sw, (const uint8_t *)key, strlen(key));
    }
    tern_stun_put_fingerprint(&sw);
    size_t len;
    if (tern_stun_writer_end(&sw, &len) != TERN_OK)
        abort();
    feed(h, &local, &remote, buf, len);
}

static void step_command(harness_t *h, reader_t *r)
{
    uint8_t cmd = take_u8(r), arg = take_u8(r);
    tern_ice_candidate_t c;
    memset(&c, 0, sizeof c);
    switch (cmd % 9) {
    case 0:
    case 1:
        c.component = (arg & 0x80) ? 2 : 1;
        c.transport = (arg & 0x40) ? TERN_TRANSPORT_TCP : TERN_TRANSPORT_UDP;
        c.type = (tern_ice_cand_type_t)(arg & 3);
        c.priority = take_u32(r);
        c.addr = addr_of(sources[(arg >> 2) % TERN_ARRAY_LEN(sources)]);
        memcpy(c.foundation, "f", 2);
        c.foundation[0] = (char)('a' + arg % 26);
        (void)tern_ice_add_remote_candidate(h->ice, h->now, &c);
        break;
    case 2:
        (void)tern_ice_remote_candidates_done(h->ice, h->now);
        break;
    case 3:
        (void)tern_ice_restart(h->ice, h->now);
        (void)tern_ice_set_remote_credentials(h->ice, h->now, remote_ufrag, remote_pwd);
        break;
    case 4:
        (void)tern_ice_send(h->ice, h->now, (const uint8_t *)"\x16\xfe\xfd", 3);
        break;
    case 5:
        if (arg == 0x5A)
            (void)tern_ice_close(h->ice, h->now);
        break;
    case 6: {
        tern_addr_t a = addr_of(sources[arg % TERN_ARRAY_LEN(sources)]);
        (void)tern_ice_add_local_address(h->ice, h->now, &a);
        break;
    }
    case 7:
        (void)tern_ice_set_controlling(h->ice, arg & 1);
        break;
    default: {
        tern_ice_stats_t stats;
        tern_ice_get_stats(h->ice, &stats);
        (void)tern_ice_state(h->ice);
        (void)tern_ice_gathering_state(h->ice);
        break;
    }
    }
    drain(h);
}

static int setup(harness_t *h, bool controlling)
{
    memset(h, 0, sizeof *h);
    h->seed = 0x1CE;
    tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &h->seed};
    tern_ctx_init_base(&h->ctx, &cfg);
    h->now = 1000000;
    tern_ice_config_t icfg = {
        .controlling = controlling, .max_pairs = 16, .max_remote_candidates = 8};
    if (tern_ice_new(&h->ctx, &icfg, h->now, &h->ice) != TERN_OK)
        return -1;
    if (tern_ice_set_local_credentials(h->ice, local_ufrag, local_pwd) != TERN_OK)
        abort();
    tern_addr_t server = addr_of(sources[3]);
    (void)tern_ice_add_stun_server(h->ice, h->now, &server);
    for (size_t i = 0; i < TERN_ARRAY_LEN(locals); i++) {
        tern_addr_t a = addr_of(locals[i]);
        if (tern_ice_add_local_address(h->ice, h->now, &a) != TERN_OK)
            abort();
    }
    (void)tern_ice_local_addresses_done(h->ice, h->now);
    drain(h);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_INPUT)
        return 0;
    reader_t r = {data, data + size};
    uint8_t first = take_u8(&r);
    harness_t h;
    if (setup(&h, first & 1) != 0)
        return 0;
    if (first & 2)
        (void)tern_ice_set_remote_credentials(h.ice, h.now, remote_ufrag, remote_pwd);
    for (int steps = 0; r.p < r.end && steps < MAX_STEPS; steps++) {
        uint8_t op = take_u8(&r);
        /* Up to ~65 s per step, in milliseconds, so consent and failure timers are reached. */
        advance(&h, h.now + (tern_time_t)take_u16(&r) * 1000);
        switch (op & 3) {
        case 0:
            step_raw(&h, &r);
            break;
        case 1:
            step_stun(&h, &r);
            break;
        case 2:
            step_command(&h, &r);
            break;
        default:
            break;
        }
    }
    advance(&h, h.now + 60000000);
    tern_ice_free(h.ice);
    return 0;
}
