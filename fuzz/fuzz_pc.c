/* SPDX-License-Identifier: MIT */
/*
 * Stateful fuzz harness of a CONNECTED peer connection (CONVENTIONS.md §11): two pcs (pcpair.h)
 * are handshaken in-process (ICE, DTLS with a fixed certificate, SCTP, the channel "fuzz" open
 * on both sides), then the input is read as steps, each [op][len][len bytes], and after every
 * step both pcs are drained and everything they send is handed across until nothing moves:
 *   0  a raw datagram to A from B's address (the RFC 7983 demultiplexer, DTLS records, STUN);
 *   1  a raw datagram to A from an address ICE does not know;
 *   2  a STUN message to A built from the bytes and signed with A's password (or a wrong one),
 *      possibly answering one of A's own recent requests (consent, role conflicts, nomination);
 *   3  an SCTP packet whose chunks are the bytes, with the ports and verification tag A
 *      expects, encrypted by B's DTLS session: usrsctp and the data channels see it as real;
 *   4  a message from B's SCTP association on any stream with any PPID (DCEP included);
 *   5  virtual time passes (timers of ICE, DTLS and SCTP fire);
 *   6  an application call on A (create, send, close a channel, restart ICE, close the pc);
 *   7  a remote candidate line for A, from the bytes;
 *   8  a DTLS record of any content type from B's address (header from the bytes).
 *
 * Why a fresh pair per input: a pair kept alive across inputs carries the state earlier
 * inputs left (SCTP TSNs, closed channels, consent timers), so a crash would depend on the
 * whole history and a saved input would not reproduce it; and OpenSSL and usrsctp state cannot
 * be snapshotted. So each input pays for a full handshake (see the harness's speed in
 * scripts/fuzz.sh output) and stays reproducible on its own.
 */
#include "pcpair.h"

#define MAX_INPUT 65536
#define MAX_STEPS 256
#define RECENT 4

typedef struct harness {
    pair_t p;
    /* A's recent STUN requests (transaction id, path), to answer */
    uint8_t tid[RECENT][TERN_STUN_TID_LEN];
    tern_addr_t tid_local[RECENT], tid_remote[RECENT];
    unsigned tids;
} harness_t;

static const char *strangers[] = {"10.0.0.9:9", "10.0.0.2:5001", "[2001:db8::5]:5000",
                                  "203.0.113.1:3478"};

static tern_addr_t addr_of(const char *text)
{
    tern_addr_t a;
    if (tern_addr_parse(text, &a) != TERN_OK)
        abort();
    return a;
}

static uint8_t at(const uint8_t *b, size_t n, size_t i)
{
    return i < n ? b[i] : 0;
}

static uint32_t u32_at(const uint8_t *b, size_t n, size_t i)
{
    return (uint32_t)at(b, n, i) << 24 | (uint32_t)at(b, n, i + 1) << 16 |
           (uint32_t)at(b, n, i + 2) << 8 | at(b, n, i + 3);
}

/* Remember A's STUN requests as they leave (a wrapper around the pair's flush of A). */
static void note_requests(harness_t *h)
{
    tern_transmit_t t;
    while (tern_pc_poll_transmit(h->p.pc[0], &t)) {
        tern_stun_msg_t m;
        if (t.len && t.data[0] <= 3 && tern_stun_parse(t.data, t.len, &m) == TERN_OK &&
            m.msg_class == TERN_STUN_REQUEST) {
            unsigned i = h->tids++ % RECENT;
            memcpy(h->tid[i], m.tid, TERN_STUN_TID_LEN);
            h->tid_local[i] = t.local;
            h->tid_remote[i] = t.remote;
        }
        if (tern_addr_equal(&t.remote, &h->p.addr[1]))
            pair_deliver(&h->p, 1, &t.local, t.data, t.len);
    }
}

static void settle(harness_t *h)
{
    for (int round = 0; round < 8; round++) {
        pair_events(&h->p, 0);
        note_requests(h);
        pair_exchange(&h->p);
    }
}

static void step_stun(harness_t *h, const uint8_t *b, size_t n)
{
    pair_t *p = &h->p;
    uint8_t flags = at(b, n, 0), cls = at(b, n, 1) & 3;
    tern_addr_t from = p->addr[1], to = p->addr[0];
    if (flags & 0x01)
        from = addr_of(strangers[(flags >> 1) % TERN_ARRAY_LEN(strangers)]);
    uint8_t tid[TERN_STUN_TID_LEN];
    for (size_t i = 0; i < sizeof tid; i++)
        tid[i] = at(b, n, 2 + i);
    bool answer = cls == TERN_STUN_SUCCESS || cls == TERN_STUN_ERROR;
    if (answer && (flags & 0x08) && h->tids) {
        unsigned i = (h->tids - 1) % RECENT;
        memcpy(tid, h->tid[i], sizeof tid);
        from = h->tid_remote[i];
        to = h->tid_local[i];
    }
    const char *a_ufrag = tern_ice_local_ufrag(p->pc[0]->ice);
    const char *a_pwd = tern_ice_local_pwd(p->pc[0]->ice);
    const char *b_ufrag = tern_ice_local_ufrag(p->pc[1]->ice);
    const char *b_pwd = tern_ice_local_pwd(p->pc[1]->ice);
    uint8_t buf[1024];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, (tern_stun_class_t)cls, TERN_STUN_BINDING, tid);
    if (!answer) {
        char user[160];
        snprintf(user, sizeof user, "%s:%s", (flags & 0x10) ? "x" : a_ufrag, b_ufrag);
        tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, user);
        tern_stun_put_u32(&sw, TERN_STUN_ATTR_PRIORITY, u32_at(b, n, 14));
        tern_stun_put_u64(
            &sw, (flags & 0x20) ? TERN_STUN_ATTR_ICE_CONTROLLING : TERN_STUN_ATTR_ICE_CONTROLLED,
            (uint64_t)u32_at(b, n, 18) << 32 | u32_at(b, n, 22));
        if (flags & 0x40)
            tern_stun_put_flag(&sw, TERN_STUN_ATTR_USE_CANDIDATE);
    } else if (cls == TERN_STUN_SUCCESS) {
        tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &from);
    } else {
        uint16_t code = (flags & 0x20) ? TERN_STUN_ERR_ROLE_CONFLICT
                                       : (uint16_t)(300 + (at(b, n, 14) << 8 | at(b, n, 15)) % 400);
        tern_stun_put_error_code(&sw, code, NULL);
    }
    /* the rest of the bytes as one more attribute (type from two of them) */
    if (n > 28)
        tern_stun_put_attr(&sw, (uint16_t)(at(b, n, 26) << 8 | at(b, n, 27)), b + 28,
                           TERN_MIN(n - 28, (size_t)512));
    const char *key = answer ? b_pwd : a_pwd;
    if (flags & 0x80)
        key = "not-the-password";
    tern_stun_put_integrity(&sw, (const uint8_t *)key, strlen(key));
    tern_stun_put_fingerprint(&sw);
    size_t len;
    if (tern_stun_writer_end(&sw, &len) != TERN_OK)
        return; /* an attribute type the writer refuses */
    tern_datagram_t d = {.local = to, .remote = from, .data = buf, .len = len};
    if (tern_pc_handle_input(p->pc[0], p->now, &d) != TERN_OK)
        abort();
}

/* Encrypt with B's session and hand the records to A, from B's address. */
static void send_through_b_dtls(pair_t *p, const uint8_t *data, size_t len)
{
    tern_pc_t *b = p->pc[1];
    if (!b->dtls || tern_dtls_state(b->dtls) != TERN_DTLS_STATE_CONNECTED || len == 0)
        return;
    (void)tern_dtls_send(b->dtls, b->now, data, len);
    tern_transmit_t t;
    while (tern_dtls_poll_transmit(b->dtls, &t))
        pair_deliver(p, 0, &p->addr[1], t.data, t.len);
}

static void step_sctp_packet(harness_t *h, const uint8_t *b, size_t n)
{
    pair_t *p = &h->p;
    uint8_t pkt[12 + 255];
    tern_store_u16(pkt, p->sport);
    tern_store_u16(pkt + 2, p->dport);
    tern_store_u32(pkt + 4, p->vtag);
    memset(pkt + 8, 0, 4); /* the checksum: offloaded, DTLS authenticates (sctp.c) */
    memcpy(pkt + 12, b, n);
    send_through_b_dtls(p, pkt, 12 + n);
}

static void step_b_message(harness_t *h, const uint8_t *b, size_t n)
{
    pair_t *p = &h->p;
    static const uint32_t ppids[] = {TERN_PPID_DCEP,           TERN_PPID_STRING,
                                     TERN_PPID_BINARY,         TERN_PPID_STRING_EMPTY,
                                     TERN_PPID_BINARY_EMPTY,   TERN_PPID_STRING_PARTIAL,
                                     TERN_PPID_BINARY_PARTIAL, 0};
    if (n < 3 || !p->pc[1]->sctp)
        return;
    uint16_t stream = (uint16_t)((b[0] << 8 | b[1]) % (TERN_SCTP_STREAMS + 8));
    tern_sctp_send_opts_t opts = {.unordered = b[2] & 0x80};
    (void)tern_sctp_send(p->pc[1]->sctp, p->now, stream, ppids[b[2] & 7], b + 3, n - 3, &opts);
}

static void step_app(harness_t *h, const uint8_t *b, size_t n)
{
    pair_t *p = &h->p;
    uint8_t what = at(b, n, 0), which = at(b, n, 1);
    tern_dc_t *dc = p->channel_count ? p->channels[which % p->channel_count] : NULL;
    switch (what % 8) {
    case 0: {
        char label[64];
        size_t ln = TERN_MIN(n > 4 ? n - 4 : 0, sizeof label - 1);
        memcpy(label, b + TERN_MIN(n, (size_t)4), ln);
        label[ln] = '\0';
        tern_dc_init_t init = {.negotiated = which & 1,
                               .id = (uint16_t)(at(b, n, 2) << 8 | at(b, n, 3)),
                               .unordered = which & 2,
                               .reliability = (tern_dc_reliability_t)((which >> 2) % 3),
                               .reliability_value = which >> 4};
        tern_dc_t *made = NULL;
        if (tern_pc_create_data_channel(p->pc[0], p->now, label, &init, &made) == TERN_OK)
            pair_note_channel(p, made);
        break;
    }
    case 1:
    case 2:
        if (dc)
            (void)tern_dc_send(dc, p->now, b + TERN_MIN(n, (size_t)2), n > 2 ? n - 2 : 0);
        break;
    case 3:
        if (dc)
            (void)tern_dc_send_text(dc, p->now, (const char *)b + TERN_MIN(n, (size_t)2),
                                    n > 2 ? n - 2 : 0);
        break;
    case 4:
        if (dc)
            (void)tern_dc_close(dc, p->now);
        break;
    case 5:
        if (dc)
            tern_dc_set_buffered_amount_low_threshold(dc, which * 64u);
        break;
    case 6:
        if (which == 0x5a)
            (void)tern_pc_restart_ice(p->pc[0], p->now);
        break;
    default:
        if (which == 0xa5)
            (void)tern_pc_close(p->pc[0], p->now);
        break;
    }
}

static void step_candidate(harness_t *h, const uint8_t *b, size_t n)
{
    char line[300];
    size_t ln = TERN_MIN(n, sizeof line - 1);
    memcpy(line, b, ln);
    line[ln] = '\0';
    (void)tern_pc_add_ice_candidate(h->p.pc[0], h->p.now, line, NULL);
}

static void step_record(harness_t *h, const uint8_t *b, size_t n)
{
    /* RFC 6347 §4.1: type, version, epoch, sequence (48 bits), length; then the bytes. */
    uint8_t rec[13 + 255];
    rec[0] = (uint8_t)(20 + at(b, n, 0) % 44);
    rec[1] = 0xfe;
    rec[2] = 0xfd;
    memset(rec + 3, 0, 8);
    rec[4] = at(b, n, 1) & 1; /* epoch 0 or 1 */
    rec[10] = at(b, n, 2);
    size_t body = n > 3 ? n - 3 : 0;
    tern_store_u16(rec + 11, (uint16_t)body);
    memcpy(rec + 13, b + TERN_MIN(n, (size_t)3), body);
    pair_deliver(&h->p, 0, &h->p.addr[1], rec, 13 + body);
}

static void run_step(harness_t *h, uint8_t op, const uint8_t *b, size_t n)
{
    pair_t *p = &h->p;
    switch (op % 9) {
    case 0:
        if (n)
            pair_deliver(p, 0, &p->addr[1], b, n);
        break;
    case 1:
        if (n) {
            tern_addr_t from = addr_of(strangers[op / 9 % TERN_ARRAY_LEN(strangers)]);
            pair_deliver(p, 0, &from, b, n);
        }
        break;
    case 2:
        step_stun(h, b, n);
        break;
    case 3:
        step_sctp_packet(h, b, n);
        break;
    case 4:
        step_b_message(h, b, n);
        break;
    case 5:
        pair_advance(p, p->now + (tern_time_t)at(b, n, 0) * TERN_MS(40) + TERN_MS(1));
        break;
    case 6:
        step_app(h, b, n);
        break;
    case 7:
        step_candidate(h, b, n);
        break;
    default:
        step_record(h, b, n);
        break;
    }
    settle(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    static harness_t h;
    memset(&h, 0, sizeof h);
    pair_new(&h.p, true);
    const uint8_t *p = data, *end = data + size;
    for (int steps = 0; steps < MAX_STEPS && end - p >= 2; steps++) {
        uint8_t op = p[0];
        size_t n = TERN_MIN((size_t)p[1], (size_t)(end - p - 2));
        run_step(&h, op, p + 2, n);
        p += 2 + n;
    }
    /* the pc keeps its promises after all that */
    tern_pc_stats_t st;
    tern_pc_get_stats(h.p.pc[0], &st);
    if (st.datagrams_dropped > st.datagrams_received)
        abort();
    pair_free(&h.p);
    return 0;
}
