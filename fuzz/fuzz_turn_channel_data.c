/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness of TURN's framing and of the TURN client's input path (RFC 8656 §12.4, §12.5,
 * §11.4). The codec: parse the input as ChannelData in a datagram and on a stream, and where it
 * parses, frame the payload again and require the same channel, payload and length; measure it
 * as a stream frame. The client: an agent (fixed rng) whose allocation was made against a
 * scripted server (401, then an authenticated success), with a permission and a channel bound to
 * a peer, takes the input as a datagram from the server (the first byte 0) or as bytes of a TCP
 * allocation's stream cut into pieces (the first byte's value sets the piece size); whatever it
 * unwraps must come from that peer through the relayed address.
 */
#include "ice/ice_agent.h"
#include "ice/ice_turn.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 65536

static uint64_t rng_state;
static uint8_t key[TERN_STUN_LONG_TERM_KEY_LEN];

static int fixed_random(void *user, uint8_t *buf, size_t len)
{
    (void)user;
    for (size_t i = 0; i < len; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(rng_state >> 56);
    }
    return 0;
}

static tern_addr_t addr(const char *text)
{
    tern_addr_t a;
    if (tern_addr_parse(text, &a) != 0)
        abort();
    return a;
}

/* ---- the codec ---- */

static void check_codec(const uint8_t *data, size_t len)
{
    for (int stream = 0; stream < 2; stream++) {
        uint16_t ch;
        const uint8_t *p;
        size_t n, frame;
        if (tern_turn_channel_data_parse(data, len, stream, &ch, &p, &n, &frame) != TERN_OK)
            continue;
        if (frame > len || n + TERN_TURN_CHANNEL_HEADER > frame)
            abort();
        uint8_t *again = malloc(frame + 4);
        if (!again)
            abort();
        memcpy(again + TERN_TURN_CHANNEL_HEADER, p, n);
        int m = tern_turn_channel_data_frame(again, frame + 4, ch, n, stream);
        uint16_t ch2;
        const uint8_t *p2;
        size_t n2, frame2;
        if (m < 0 ||
            tern_turn_channel_data_parse(again, (size_t)m, stream, &ch2, &p2, &n2, &frame2) !=
                TERN_OK ||
            ch2 != ch || n2 != n || memcmp(p2, p, n) != 0 || (stream && frame2 != frame))
            abort();
        free(again);
    }
    long f = tern_turn_stream_frame_len(data, len);
    if (f > 0 && f < 4)
        abort();
}

/* ---- a scripted server and peer ---- */

typedef struct script {
    tern_addr_t server, relayed, peer, local;
    const char *peer_pwd;
} script_t;

static size_t server_answer(const uint8_t *req, size_t len, uint8_t *out, size_t cap)
{
    tern_stun_msg_t m;
    if (tern_stun_parse(req, len, &m) != TERN_OK || m.msg_class != TERN_STUN_REQUEST)
        return 0;
    bool auth = tern_stun_check_integrity(&m, key, sizeof key) == TERN_OK;
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, out, cap);
    if (!auth) {
        tern_stun_writer_begin(&sw, &w, TERN_STUN_ERROR, m.method, m.tid);
        tern_stun_put_error_code(&sw, 401, NULL);
        tern_stun_put_string(&sw, TERN_STUN_ATTR_REALM, "r");
        tern_stun_put_string(&sw, TERN_STUN_ATTR_NONCE, "n");
    } else {
        tern_stun_writer_begin(&sw, &w, TERN_STUN_SUCCESS, m.method, m.tid);
        if (m.method == TERN_STUN_ALLOCATE) {
            tern_addr_t relayed = addr("198.51.100.1:50000");
            tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_RELAYED_ADDRESS, &relayed);
            tern_stun_put_u32(&sw, TERN_STUN_ATTR_LIFETIME, 600);
        }
        tern_stun_put_integrity(&sw, key, sizeof key);
    }
    size_t n = 0;
    return tern_stun_writer_end(&sw, &n) == TERN_OK ? n : 0;
}

/* A relayed check reaches the peer: its authenticated answer comes back as a Data indication. */
static size_t peer_answer(const script_t *s, const uint8_t *send, size_t len, uint8_t *out,
                          size_t cap)
{
    tern_stun_msg_t ind, req;
    if (tern_stun_parse(send, len, &ind) != TERN_OK || ind.method != TERN_STUN_SEND ||
        !(ind.present & TERN_STUN_HAS_DATA) ||
        tern_stun_parse(ind.data_attr.p, ind.data_attr.len, &req) != TERN_OK ||
        req.msg_class != TERN_STUN_REQUEST)
        return 0;
    uint8_t inner[256];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, inner, sizeof inner);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_SUCCESS, TERN_STUN_BINDING, req.tid);
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &s->relayed);
    tern_stun_put_integrity(&sw, (const uint8_t *)s->peer_pwd, strlen(s->peer_pwd));
    size_t n = 0;
    tern_stun_writer_end(&sw, &n);
    static const uint8_t tid[TERN_STUN_TID_LEN] = {7};
    tern_wbuf_init(&w, NULL, out, cap);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_INDICATION, TERN_STUN_DATA, tid);
    tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_PEER_ADDRESS, &s->peer);
    tern_stun_put_attr(&sw, TERN_STUN_ATTR_DATA, inner, n);
    size_t total = 0;
    return tern_stun_writer_end(&sw, &total) == TERN_OK ? total : 0;
}

static void check_inner(tern_ice_t *ice, const script_t *s, tern_time_t now)
{
    tern_datagram_t inner;
    while (tern_ice_poll_relayed(ice, &inner)) {
        /* Only from the permitted IP (permissions are per IP, any port: RFC 8656 §9), only
         * through the relayed address. */
        if (!tern_addr_equal(&inner.local, &s->relayed) || inner.remote.family != s->peer.family ||
            memcmp(inner.remote.ip, s->peer.ip, 16) != 0)
            abort();
        tern_ice_handle_input(ice, now, &inner);
    }
}

/* Serve the UDP allocation until quiet: answers, and the peer's answers to relayed checks. */
static void serve_udp(tern_ice_t *ice, const script_t *s, tern_time_t now)
{
    for (int round = 0; round < 20; round++) {
        uint8_t answers[4][1024];
        size_t lens[4];
        int n = 0;
        tern_transmit_t t;
        while (tern_ice_poll_transmit(ice, &t)) {
            if (n == 4 || !tern_addr_equal(&t.remote, &s->server))
                continue;
            size_t len = server_answer(t.data, t.len, answers[n], sizeof answers[n]);
            if (len == 0)
                len = peer_answer(s, t.data, t.len, answers[n], sizeof answers[n]);
            if (len)
                lens[n++] = len;
        }
        if (n == 0)
            return;
        for (int i = 0; i < n; i++) {
            tern_datagram_t d = {
                .local = s->local, .remote = s->server, .data = answers[i], .len = lens[i]};
            tern_ice_turn_handle_input(ice, now, &d);
            check_inner(ice, s, now);
        }
        tern_ice_handle_timeout(ice, now + 50000 * (round + 1));
    }
}

static tern_ice_t *new_agent(tern_ctx_t *ctx, const script_t *s, tern_turn_transport_t tr,
                             tern_time_t now)
{
    tern_ice_config_t cfg = {.controlling = true, .relay_only = true};
    tern_ice_t *ice;
    if (tern_ice_new(ctx, &cfg, now, &ice) != TERN_OK)
        return NULL;
    tern_ice_add_local_address(ice, now, &s->local);
    tern_ice_turn_server_t ts = {
        .addr = s->server, .transport = tr, .username = "u", .password = "p", .fallback_of = -1};
    tern_ice_add_turn_server(ice, now, &ts);
    tern_ice_local_addresses_done(ice, now);
    return ice;
}

static void add_peer(tern_ice_t *ice, const script_t *s, tern_time_t now)
{
    tern_ice_candidate_t c = {.component = 1, .type = TERN_ICE_CAND_HOST, .priority = 1000};
    c.foundation[0] = '1';
    c.addr = s->peer;
    tern_ice_add_remote_candidate(ice, now, &c);
    tern_ice_set_remote_credentials(ice, now, "rufrag", s->peer_pwd);
}

static void fuzz_udp(tern_ctx_t *ctx, const script_t *s, const uint8_t *data, size_t len)
{
    tern_time_t now = 1000000;
    tern_ice_t *ice = new_agent(ctx, s, TERN_TURN_UDP, now);
    if (!ice)
        return;
    serve_udp(ice, s, now);
    add_peer(ice, s, now);
    serve_udp(ice, s, now); /* permission, check, answer, selection, ChannelBind */
    tern_datagram_t d = {.local = s->local, .remote = s->server, .data = data, .len = len};
    if (tern_ice_turn_claims(ice, &d))
        tern_ice_turn_handle_input(ice, now, &d);
    else
        tern_ice_handle_input(ice, now, &d);
    check_inner(ice, s, now);
    tern_transmit_t t;
    while (tern_ice_poll_transmit(ice, &t))
        ;
    tern_ice_free(ice);
}

static void fuzz_stream(tern_ctx_t *ctx, const script_t *s, size_t piece, const uint8_t *data,
                        size_t len)
{
    tern_time_t now = 1000000;
    tern_ice_t *ice = new_agent(ctx, s, TERN_TURN_TCP, now);
    tern_ice_stream_request_t r;
    if (!ice || !tern_ice_poll_stream_request(ice, &r))
        goto out;
    tern_ice_stream_event(ice, now, r.id, true, &s->local);
    for (int round = 0; round < 4; round++) {
        uint32_t id;
        const uint8_t *out;
        size_t n;
        uint8_t copy[4096], ans[1024];
        size_t total = 0;
        while (tern_ice_poll_stream_transmit(ice, &id, &out, &n))
            if (total + n <= sizeof copy)
                memcpy(copy + total, out, n), total += n;
        for (size_t off = 0; off < total;) {
            long f = tern_turn_stream_frame_len(copy + off, total - off);
            if (f <= 0 || (size_t)f > total - off)
                break;
            size_t a = server_answer(copy + off, (size_t)f, ans, sizeof ans);
            if (a)
                tern_ice_stream_input(ice, now, r.id, ans, a);
            off += (size_t)f;
        }
        if (round == 1)
            add_peer(ice, s, now);
    }
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if (tern_ice_stream_input(ice, now, r.id, data + off, n) != TERN_OK)
            break;
        check_inner(ice, s, now);
    }
    while (tern_ice_poll_stream_request(ice, &r))
        ;
out:
    tern_ice_free(ice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len > MAX_INPUT)
        return 0;
    check_codec(data, len);
    if (len == 0)
        return 0;
    rng_state = 1;
    if (key[0] == 0 && tern_stun_long_term_key("u", "r", "p", key) != TERN_OK)
        abort();
    /* A base context: allocator, rng and log only (no DTLS certificate to make). */
    tern_ctx_config_t cc = {.random_bytes = fixed_random};
    tern_ctx_t base;
    if (tern_ctx_init_base(&base, &cc) != TERN_OK)
        return 0;
    tern_ctx_t *ctx = &base;
    script_t s = {
        .server = addr("192.0.2.1:3478"),
        .relayed = addr("198.51.100.1:50000"),
        .peer = addr("203.0.113.77:6000"),
        .local = addr("10.0.0.1:5000"),
        .peer_pwd = "rpwd0123456789012345678",
    };
    if (data[0] == 0)
        fuzz_udp(ctx, &s, data + 1, len - 1);
    else
        fuzz_stream(ctx, &s, data[0], data + 1, len - 1);
    return 0;
}
