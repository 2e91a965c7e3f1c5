/* SPDX-License-Identifier: MIT */
/*
 * Stateful fuzz harness of tern-signal's connection handling (signaling/signal_server.c),
 * detached from its loop and sockets (tern_signal_server_new_detached): up to eight
 * connections are opened, fed bytes, closed and left to time out, as the input says. Each step
 * is [op][conn][len][len bytes]:
 *   0  open a connection;           1  raw bytes from it (HTTP, WebSocket frames, anything);
 *   2  the peer closes its side;    3  time passes (timers: upgrade, ping, pong, linger);
 *   4  its socket stops or starts taking output (slow readers), then is writable;
 *   5  a valid WebSocket upgrade for room "a", "b" or one from the bytes;
 *   6  one masked client frame holding the bytes (text, binary or control, FIN or not): the
 *      harness masks, so the JSON relay and every frame rule are reached without the fuzzer
 *      learning RFC 6455 masking.
 * After every step the counts must hold together; the server is freed at the end (leaks show
 * under ASan). Small limits (3 peers a room, 512-byte messages, 5 messages a second, 8 KiB of
 * output) put every limit within reach. Deterministic: virtual time, a fixed random source.
 */
#include "../signaling/signaling.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 65536
#define MAX_CONNS 8
#define MAX_STEPS 512

typedef struct harness {
    tern_ctx_t ctx;
    uint64_t seed;
    tern_signal_server_t *srv;
    tern_time_t now;
    uint32_t conns[MAX_CONNS];
    bool open[MAX_CONNS];
    bool blocked[MAX_CONNS];
    size_t count;
    uint64_t written;
} harness_t;

static harness_t h;

static long sink_write(void *user, uint32_t conn, const uint8_t *data, size_t len)
{
    harness_t *hh = user;
    for (size_t i = 0; i < hh->count; i++)
        if (hh->conns[i] == conn && hh->blocked[i])
            return 0;
    (void)data[len - 1]; /* touch the last byte: out of bounds shows under ASan */
    hh->written += len;
    return (long)len;
}

static void check_counts(void)
{
    size_t conns, peers, rooms;
    tern_signal_server_counts(h.srv, &conns, &peers, &rooms);
    if (peers > conns || rooms > peers || conns > MAX_CONNS)
        abort();
    if (tern_signal_server_next_deadline(h.srv) < h.now - TERN_SEC(1) &&
        tern_signal_server_next_deadline(h.srv) != TERN_TIME_NEVER)
        abort(); /* a timer left far in the past: nobody would ever run it */
}

static void input(size_t i, const uint8_t *data, size_t len)
{
    if (i >= h.count || !h.open[i])
        return;
    int rc = tern_signal_server_input(h.srv, h.now, h.conns[i], data, len);
    if (rc == TERN_ERR_NOT_FOUND)
        h.open[i] = false;
    else if (rc != TERN_OK)
        abort();
}

static void upgrade(size_t i, const uint8_t *b, size_t n)
{
    char room[65] = "a";
    if (n && (b[0] & 3) == 1)
        room[0] = 'b';
    else if (n && (b[0] & 3) == 2) {
        size_t rn = TERN_MIN(n - 1, sizeof room - 1);
        memcpy(room, b + 1, rn);
        room[rn] = '\0';
        for (size_t k = 0; k < rn; k++)
            if (room[k] == '\r' || room[k] == '\n' || room[k] == ' ' || room[k] == '\0')
                room[k] = '_';
    }
    char req[512];
    int len = snprintf(req, sizeof req,
                       "GET /ws/%s HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       room);
    input(i, (const uint8_t *)req, (size_t)len);
}

static void frame(size_t i, const uint8_t *b, size_t n)
{
    static const uint8_t ops[8] = {0x1, 0x2, 0x0, 0x8, 0x9, 0xa, 0x3, 0xb};
    uint8_t flags = n ? b[0] : 0;
    const uint8_t *payload = n ? b + 1 : b;
    size_t plen = n ? n - 1 : 0;
    uint8_t out[14 + 255];
    size_t k = 0;
    out[k++] = (uint8_t)((flags & 0x80 ? 0 : 0x80) | ops[flags & 7] | (flags & 0x08 ? 0x40 : 0));
    if (plen < 126) {
        out[k++] = (uint8_t)(0x80 | plen);
    } else {
        out[k++] = 0x80 | 126;
        out[k++] = (uint8_t)(plen >> 8);
        out[k++] = (uint8_t)plen;
    }
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d}; /* RFC 6455 §5.7's example key */
    memcpy(out + k, mask, 4);
    k += 4;
    for (size_t j = 0; j < plen; j++)
        out[k++] = payload[j] ^ mask[j & 3];
    input(i, out, k);
}

static void step(uint8_t op, uint8_t which, const uint8_t *b, size_t n)
{
    size_t i = h.count ? which % h.count : 0;
    switch (op % 7) {
    case 0:
        if (h.count < MAX_CONNS) {
            tern_addr_t remote = {.family = TERN_AF_INET, .port = (uint16_t)(40000 + h.count)};
            remote.ip[0] = 127;
            remote.ip[3] = 1;
            if (tern_signal_server_open(h.srv, h.now, &remote, &h.conns[h.count]) != TERN_OK)
                abort();
            h.open[h.count++] = true;
        }
        break;
    case 1:
        if (n)
            input(i, b, n);
        break;
    case 2:
        input(i, NULL, 0);
        break;
    case 3:
        h.now += (tern_time_t)(n ? b[0] : 1) * TERN_MS(250);
        tern_signal_server_handle_timeout(h.srv, h.now);
        break;
    case 4:
        if (i < h.count) {
            h.blocked[i] = !h.blocked[i];
            if (h.open[i] &&
                tern_signal_server_writable(h.srv, h.now, h.conns[i]) == TERN_ERR_NOT_FOUND)
                h.open[i] = false;
        }
        break;
    case 5:
        upgrade(i, b, n);
        break;
    default:
        frame(i, b, n);
        break;
    }
    /* a timer that is due runs, as the loop would run it */
    if (tern_signal_server_next_deadline(h.srv) <= h.now)
        tern_signal_server_handle_timeout(h.srv, h.now);
    check_counts();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    memset(&h, 0, sizeof h);
    h.seed = 0x5167a1;
    tern_ctx_config_t ccfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &h.seed};
    tern_ctx_init_base(&h.ctx, &ccfg);
    h.now = TERN_SEC(1);
    tern_signal_config_t cfg = {
        .max_room_peers = 3,
        .max_message_bytes = 512,
        .rate_per_s = 5,
        .max_output_bytes = 8192,
    };
    tern_signal_sink_t sink = {.write = sink_write, .user = &h};
    if (tern_signal_server_new_detached(&h.ctx, &cfg, &sink, h.now, &h.srv) != TERN_OK)
        abort();
    const uint8_t *p = data, *end = data + size;
    for (int steps = 0; steps < MAX_STEPS && end - p >= 3; steps++) {
        size_t n = TERN_MIN((size_t)p[2], (size_t)(end - p - 3));
        step(p[0], p[1], p + 3, n);
        p += 3 + n;
    }
    /* everyone leaves: the server must end up empty and free cleanly */
    for (size_t i = 0; i < h.count; i++)
        input(i, NULL, 0);
    h.now += TERN_SEC(10);
    tern_signal_server_handle_timeout(h.srv, h.now);
    size_t conns, peers, rooms;
    tern_signal_server_counts(h.srv, &conns, &peers, &rooms);
    if (conns || peers || rooms)
        abort();
    tern_signal_server_free(h.srv);
    return 0;
}
