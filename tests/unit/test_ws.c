/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of src/ws/: the HTTP/1.1 head parser and writer (inputs against a guard page,
 * every prefix of a head, every limit), Sec-WebSocket-Accept (RFC 6455 §1.3), the §5.7 frame
 * examples, UTF-8 validation with Autobahn-style vectors (category 6) split at every point,
 * the server and client endpoints' opening handshakes both ways, every protocol violation
 * with its close code, the close handshake, keepalive and handshake deadlines in virtual
 * time, output bounds, a client and a server endpoint talking in memory, and an
 * allocation-failure sweep.
 */
#include "ws/ws.h"

#include "check.h"
#include "guard.h"

#include <stdlib.h>
#include <string.h>

static tern_ctx_t ctx;
static tern_time_t now = 1000000;

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define RFC_REQUEST                                                                                \
    "GET /chat HTTP/1.1\r\n"                                                                       \
    "Host: server.example.com\r\n"                                                                 \
    "Upgrade: websocket\r\n"                                                                       \
    "Connection: Upgrade\r\n"                                                                      \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                                              \
    "Origin: http://example.com\r\n"                                                               \
    "Sec-WebSocket-Protocol: chat, superchat\r\n"                                                  \
    "Sec-WebSocket-Version: 13\r\n"                                                                \
    "\r\n"

#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const uint8_t test_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A frame: b0 is FIN|RSV|opcode as sent; masked with test_mask when mask is true. */
static size_t make_frame(uint8_t *out, uint8_t b0, const void *payload, size_t len, bool mask)
{
    size_t n = tern_ws_frame_header_write(out, false, 0, len, mask ? test_mask : NULL);
    out[0] = b0;
    if (len)
        memcpy(out + n, payload, len);
    if (mask)
        tern_ws_mask(out + n, len, test_mask, 0);
    return n + len;
}

/* One event as recorded by drain(): payloads and reasons copied. */
typedef struct rec {
    tern_ws_event_type_t type;
    bool is_text;
    uint8_t *data;
    size_t len;
    char target[256];
    char protocol[64];
    tern_ws_cause_t cause;
    bool by_peer;
    uint16_t code;
    uint16_t sent_code;
    int http_status;
    char reason[128];
} rec_t;

typedef struct log {
    rec_t r[512];
    size_t n;
} evlog_t;

static void log_clear(evlog_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->r[i].data);
    l->n = 0;
}

static size_t log_count(const evlog_t *l, tern_ws_event_type_t type)
{
    size_t c = 0;
    for (size_t i = 0; i < l->n; i++)
        c += l->r[i].type == type;
    return c;
}

static const rec_t *log_last(const evlog_t *l, tern_ws_event_type_t type)
{
    for (size_t i = l->n; i > 0; i--)
        if (l->r[i - 1].type == type)
            return &l->r[i - 1];
    return NULL;
}

static void record(evlog_t *l, const tern_ws_event_t *ev)
{
    if (l->n == TERN_ARRAY_LEN(l->r))
        return;
    rec_t *r = &l->r[l->n++];
    memset(r, 0, sizeof(*r));
    r->type = ev->type;
    switch (ev->type) {
    case TERN_WS_EV_OPEN:
        snprintf(r->target, sizeof(r->target), "%s", ev->u.open.target);
        snprintf(r->protocol, sizeof(r->protocol), "%s", ev->u.open.protocol);
        break;
    case TERN_WS_EV_MESSAGE:
        r->is_text = ev->u.message.is_text;
        r->len = ev->u.message.len;
        r->data = malloc(r->len + 1);
        if (r->len)
            memcpy(r->data, ev->u.message.data, r->len);
        r->data[r->len] = 0;
        break;
    case TERN_WS_EV_CLOSE:
        r->cause = ev->u.close.cause;
        r->by_peer = ev->u.close.by_peer;
        r->code = ev->u.close.code;
        r->sent_code = ev->u.close.sent_code;
        r->http_status = ev->u.close.http_status;
        snprintf(r->reason, sizeof(r->reason), "%s", ev->u.close.reason);
        break;
    default:
        break;
    }
}

static void drain_events(tern_ws_t *ws, evlog_t *l)
{
    tern_ws_event_t ev;
    while (tern_ws_poll_event(ws, &ev))
        record(l, &ev);
}

/* Take the whole output (copied into out, at most cap bytes). */
static size_t take_output(tern_ws_t *ws, uint8_t *out, size_t cap)
{
    const uint8_t *data;
    size_t len, total = 0;
    while (tern_ws_poll_output(ws, &data, &len)) {
        size_t n = TERN_MIN(len, cap - total);
        memcpy(out + total, data, n);
        total += n;
        tern_ws_consume_output(ws, len);
    }
    return total;
}

static void discard_output(tern_ws_t *ws)
{
    tern_ws_consume_output(ws, tern_ws_buffered_amount(ws));
}

/* The close code of the first close frame in a stream of frames; -1 if none, 0 if empty. */
static int find_close_code(const uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        tern_ws_frame_header_t h;
        if (tern_ws_frame_header_parse(p + off, len - off, &h) < 0)
            return -2;
        if (h.payload_len > len - off - h.header_len)
            return -2;
        uint8_t payload[200];
        if (h.opcode == TERN_WS_OP_CLOSE) {
            size_t n = (size_t)h.payload_len;
            if (n > sizeof(payload))
                return -2;
            memcpy(payload, p + off + h.header_len, n);
            if (h.masked)
                tern_ws_mask(payload, n, h.mask, 0);
            return n >= 2 ? tern_load_u16(payload) : 0;
        }
        off += h.header_len + (size_t)h.payload_len;
    }
    return -1;
}

static int output_close_code(tern_ws_t *ws)
{
    static uint8_t buf[1 << 20];
    size_t n = take_output(ws, buf, sizeof(buf));
    return find_close_code(buf, n);
}

static tern_ws_t *new_server(const tern_ws_config_t *cfg)
{
    tern_ws_t *ws = NULL;
    eq_int(tern_ws_new(&ctx, cfg, now, &ws), TERN_OK);
    return ws;
}

/* A server endpoint after the RFC 6455 §1.2 handshake, output and events drained. */
static tern_ws_t *open_server(const tern_ws_config_t *cfg)
{
    tern_ws_t *ws = new_server(cfg);
    if (!ws)
        return NULL;
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)RFC_REQUEST, strlen(RFC_REQUEST)), 0);
    tern_ws_event_t ev;
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_REQUEST);
    eq_int(tern_ws_accept(ws, now, NULL), 0);
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_OPEN);
    ok(!tern_ws_poll_event(ws, &ev));
    discard_output(ws);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_OPEN);
    return ws;
}

/* Feed raw bytes to a server and collect its events. */
static void feed(tern_ws_t *ws, const void *data, size_t len, evlog_t *l)
{
    eq_int(tern_ws_handle_input(ws, now, data, len), 0);
    drain_events(ws, l);
}

/* The allocation-failure sweep expects TERN_ERR_NOMEM from handle_input. */
static bool pump_tolerant;

/* Move bytes both ways between two endpoints until both are quiet, in chunks of `chunk`. */
static void pump(tern_ws_t *a, evlog_t *la, tern_ws_t *b, evlog_t *lb, size_t chunk)
{
    for (int round = 0; round < 10000; round++) {
        bool moved = false;
        drain_events(a, la);
        drain_events(b, lb);
        tern_ws_t *from[2] = {a, b}, *to[2] = {b, a};
        for (int k = 0; k < 2; k++) {
            const uint8_t *data;
            size_t len;
            while (tern_ws_poll_output(from[k], &data, &len)) {
                size_t n = chunk ? TERN_MIN(len, chunk) : len;
                /* the output pointer is only valid until the next call on from[k]: copy */
                uint8_t *copy = malloc(n);
                memcpy(copy, data, n);
                tern_ws_consume_output(from[k], n);
                int rc = tern_ws_handle_input(to[k], now, copy, n);
                if (rc != 0 && !pump_tolerant)
                    eq_int(rc, 0);
                free(copy);
                drain_events(to[k], k == 0 ? lb : la);
                moved = true;
            }
        }
        if (!moved)
            return;
    }
}

/* A client and a server connected in memory, both OPEN. */
static void open_pair(const tern_ws_config_t *ccfg, const tern_ws_config_t *scfg, tern_ws_t **c,
                      evlog_t *lc, tern_ws_t **s, evlog_t *ls)
{
    tern_ws_config_t cc = ccfg ? *ccfg : (tern_ws_config_t){0};
    cc.role = TERN_WS_ROLE_CLIENT;
    if (!cc.host)
        cc.host = "localhost:8080";
    if (!cc.target)
        cc.target = "/ws/room1?x=1";
    eq_int(tern_ws_new(&ctx, &cc, now, c), 0);
    eq_int(tern_ws_new(&ctx, scfg, now, s), 0);
    /* request to the server */
    const uint8_t *data;
    size_t len;
    ok(tern_ws_poll_output(*c, &data, &len));
    eq_int(tern_ws_handle_input(*s, now, data, len), 0);
    tern_ws_consume_output(*c, len);
    tern_ws_event_t ev;
    ok(tern_ws_poll_event(*s, &ev) && ev.type == TERN_WS_EV_REQUEST);
    eq_int(tern_ws_accept(*s, now, cc.protocol), 0);
    pump(*c, lc, *s, ls, 0);
    eq_int(tern_ws_state(*c), TERN_WS_STATE_OPEN);
    eq_int(tern_ws_state(*s), TERN_WS_STATE_OPEN);
}

/* ------------------------------------------------------------------------------------------ */
/* codec                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_accept_key(void)
{
    char out[TERN_WS_ACCEPT_LEN + 1];
    /* RFC 6455 §1.3 */
    eq_int(tern_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    eq_str(out, RFC_ACCEPT);
    ok(tern_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24));
    ok(!tern_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
    ok(!tern_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==x", 25));
    ok(!tern_ws_key_valid("dGhlIHNhbXBsZSBub25jZ===", 24)); /* not 16 bytes */
    ok(!tern_ws_key_valid("dGhlIHNhbXBsZSBub25j*Q==", 24)); /* not base64 */
    ok(!tern_ws_key_valid("AAAAAAAAAAAAAAAAAAAAAAAA", 24)); /* 18 bytes */
    ok(!tern_ws_key_valid("", 0));
}

static void test_close_codes(void)
{
    static const uint16_t good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                    1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const uint16_t bad[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                   1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < TERN_ARRAY_LEN(good); i++)
        ok(tern_ws_close_code_valid(good[i]));
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad); i++)
        ok(!tern_ws_close_code_valid(bad[i]));
}

static void test_frame_examples(void)
{
    /* RFC 6455 §5.7 */
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                           0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t frag1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
    static const uint8_t frag2[] = {0x80, 0x02, 0x6c, 0x6f};
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                          0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t len256[] = {0x82, 0x7e, 0x01, 0x00};
    static const uint8_t len64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    tern_ws_frame_header_t h;
    uint8_t buf[16];

    eq_int(tern_ws_frame_header_parse(hello, sizeof(hello), &h), 0);
    ok(h.fin && h.opcode == TERN_WS_OP_TEXT && !h.masked && h.payload_len == 5);
    eq_int(h.header_len, 2);
    eq_int(tern_ws_frame_header_write(buf, true, TERN_WS_OP_TEXT, 5, NULL), 2);
    ok(eq_mem(buf, hello, 2));

    eq_int(tern_ws_frame_header_parse(hello_masked, sizeof(hello_masked), &h), 0);
    ok(h.masked && h.payload_len == 5 && h.header_len == 6);
    ok(eq_mem(h.mask, test_mask, 4));
    uint8_t p[5];
    memcpy(p, hello_masked + 6, 5);
    tern_ws_mask(p, 5, h.mask, 0);
    ok(eq_mem(p, "Hello", 5));
    eq_int(tern_ws_frame_header_write(buf, true, TERN_WS_OP_TEXT, 5, test_mask), 6);
    ok(eq_mem(buf, hello_masked, 6));
    /* masking in pieces gives the same bytes */
    memcpy(p, "Hello", 5);
    tern_ws_mask(p, 2, test_mask, 0);
    tern_ws_mask(p + 2, 3, test_mask, 2);
    ok(eq_mem(p, hello_masked + 6, 5));

    eq_int(tern_ws_frame_header_parse(frag1, sizeof(frag1), &h), 0);
    ok(!h.fin && h.opcode == TERN_WS_OP_TEXT && h.payload_len == 3);
    eq_int(tern_ws_frame_header_parse(frag2, sizeof(frag2), &h), 0);
    ok(h.fin && h.opcode == TERN_WS_OP_CONTINUATION && h.payload_len == 2);
    eq_int(tern_ws_frame_header_parse(ping, sizeof(ping), &h), 0);
    ok(h.opcode == TERN_WS_OP_PING && h.payload_len == 5);
    eq_int(tern_ws_frame_header_parse(pong_masked, sizeof(pong_masked), &h), 0);
    ok(h.opcode == TERN_WS_OP_PONG && h.masked);

    eq_int(tern_ws_frame_header_parse(len256, sizeof(len256), &h), 0);
    ok(h.payload_len == 256 && h.header_len == 4 && h.opcode == TERN_WS_OP_BINARY);
    eq_int(tern_ws_frame_header_write(buf, true, TERN_WS_OP_BINARY, 256, NULL), 4);
    ok(eq_mem(buf, len256, 4));
    eq_int(tern_ws_frame_header_parse(len64k, sizeof(len64k), &h), 0);
    ok(h.payload_len == 65536 && h.header_len == 10);
    eq_int(tern_ws_frame_header_write(buf, true, TERN_WS_OP_BINARY, 65536, NULL), 10);
    ok(eq_mem(buf, len64k, 10));

    /* every short prefix asks for more */
    for (size_t i = 0; i < sizeof(len64k); i++)
        eq_int(tern_ws_frame_header_parse(len64k, i, &h), TERN_ERR_AGAIN);
    for (size_t i = 0; i < 6; i++)
        eq_int(tern_ws_frame_header_parse(hello_masked, i, &h), TERN_ERR_AGAIN);

    /* non-minimal lengths and the 64-bit MSB are refused (RFC 6455 §5.2) */
    static const uint8_t nonmin16[] = {0x82, 0x7e, 0x00, 0x7d};
    static const uint8_t nonmin64[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t msb[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    eq_int(tern_ws_frame_header_parse(nonmin16, 4, &h), TERN_ERR_PARSE);
    eq_int(tern_ws_frame_header_parse(nonmin64, 10, &h), TERN_ERR_PARSE);
    eq_int(tern_ws_frame_header_parse(msb, 10, &h), TERN_ERR_PARSE);
    /* boundaries of the three encodings */
    static const uint64_t lens[] = {0, 125, 126, 65535, 65536, UINT64_C(0x7fffffffffffffff)};
    for (size_t i = 0; i < TERN_ARRAY_LEN(lens); i++) {
        size_t n = tern_ws_frame_header_write(buf, true, TERN_WS_OP_BINARY, lens[i], test_mask);
        eq_int(tern_ws_frame_header_parse(buf, n, &h), 0);
        ok(h.payload_len == lens[i] && h.header_len == n && h.masked);
    }
    /* RSV bits and reserved opcodes are reported, not refused, by the header parser */
    static const uint8_t rsv[] = {0xf3, 0x00};
    eq_int(tern_ws_frame_header_parse(rsv, 2, &h), 0);
    ok(h.rsv == 7 && h.opcode == 3 && h.fin);
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct utf8_case {
    const char *bytes;
    size_t len;
    bool valid;
} utf8_case_t;

#define U8(s, v)                                                                                   \
    {                                                                                              \
        s, sizeof(s) - 1, v                                                                        \
    }

/* In the spirit of the Autobahn test suite's category 6 (and Markus Kuhn's stress test). */
static const utf8_case_t utf8_cases[] = {
    U8("", true),
    U8("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", true),
    U8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true), /* κόσμε */
    /* κόσμε followed by a surrogate (6.3.1) */
    U8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", false),
    /* first and last of each length (6.5-6.7) */
    U8("\x00", true),
    U8("\xc2\x80", true),
    U8("\xe0\xa0\x80", true),
    U8("\xf0\x90\x80\x80", true),
    U8("\x7f", true),
    U8("\xdf\xbf", true),
    U8("\xef\xbf\xbf", true),
    U8("\xf4\x8f\xbf\xbf", true), /* U+10FFFF */
    U8("\xed\x9f\xbf", true),     /* U+D7FF */
    U8("\xee\x80\x80", true),     /* U+E000 */
    U8("\xef\xbf\xbd", true),     /* U+FFFD */
    U8("\xef\xbf\xbe", true),     /* U+FFFE: a noncharacter, still valid UTF-8 */
    /* beyond U+10FFFF (6.6.x, 6.8) */
    U8("\xf4\x90\x80\x80", false),
    U8("\xf7\xbf\xbf\xbf", false),
    U8("\xf8\x88\x80\x80\x80", false),
    U8("\xfc\x84\x80\x80\x80\x80", false),
    /* lone continuation bytes (6.9) */
    U8("\x80", false),
    U8("\xbf", false),
    U8("\x80\xbf\x80\xbf", false),
    /* lone start bytes followed by a space (6.10) */
    U8("\xc0 ", false),
    U8("\xe0 ", false),
    U8("\xf0 ", false),
    /* sequences missing their last byte (6.11, 6.12) */
    U8("\xc2", false),
    U8("\xe0\x80", false),
    U8("\xe1\x80", false),
    U8("\xf0\x90\x80", false),
    U8("\xf1\x80\x80", false),
    U8("\xdf", false),
    U8("\xef\xbf", false),
    U8("\xf4\x8f\xbf", false),
    /* impossible bytes (6.13) */
    U8("\xfe", false),
    U8("\xff", false),
    U8("\xfe\xfe\xff\xff", false),
    /* overlong "/" (6.14) and maximal overlongs (6.15) and overlong NUL (6.16) */
    U8("\xc0\xaf", false),
    U8("\xe0\x80\xaf", false),
    U8("\xf0\x80\x80\xaf", false),
    U8("\xf8\x80\x80\x80\xaf", false),
    U8("\xc1\xbf", false),
    U8("\xe0\x9f\xbf", false),
    U8("\xf0\x8f\xbf\xbf", false),
    U8("\xc0\x80", false),
    U8("\xe0\x80\x80", false),
    /* single and paired UTF-16 surrogates (6.17, 6.18) */
    U8("\xed\xa0\x80", false),
    U8("\xed\xad\xbf", false),
    U8("\xed\xae\x80", false),
    U8("\xed\xaf\xbf", false),
    U8("\xed\xb0\x80", false),
    U8("\xed\xbe\x80", false),
    U8("\xed\xbf\xbf", false),
    U8("\xed\xa0\x80\xed\xb0\x80", false),
    U8("\xed\xaf\xbf\xed\xbf\xbf", false),
    /* an invalid byte after a long ASCII run (the 8-byte fast path) */
    U8("abcdefghijklmnopqrstuvwxyz0123\x80", false),
    U8("abcdefghijklmnopqrstuvwxyz0123\xc3\xa9", true),
    U8("abcdefgh\xe2\x82\xac"
       "abcdefgh",
       true),
};

static void test_utf8(void)
{
    for (size_t i = 0; i < TERN_ARRAY_LEN(utf8_cases); i++) {
        const utf8_case_t *c = &utf8_cases[i];
        const uint8_t *b = (const uint8_t *)c->bytes;
        if (tern_utf8_valid(b, c->len) != c->valid)
            printf("# utf8 case %zu\n", i);
        ok(tern_utf8_valid(b, c->len) == c->valid);
        /* split in two at every point, and fed byte by byte: same verdict */
        for (size_t cut = 0; cut <= c->len; cut++) {
            uint32_t st = tern_utf8_feed(TERN_UTF8_ACCEPT, b, cut);
            st = tern_utf8_feed(st, b + cut, c->len - cut);
            ok((st == TERN_UTF8_ACCEPT) == c->valid);
        }
        uint32_t st = TERN_UTF8_ACCEPT;
        for (size_t k = 0; k < c->len; k++)
            st = tern_utf8_feed(st, b + k, 1);
        ok((st == TERN_UTF8_ACCEPT) == c->valid);
    }
    /* REJECT is sticky */
    uint32_t st = tern_utf8_feed(TERN_UTF8_ACCEPT, (const uint8_t *)"\xff", 1);
    eq_int(st, TERN_UTF8_REJECT);
    eq_int(tern_utf8_feed(st, (const uint8_t *)"abc", 3), TERN_UTF8_REJECT);
    /* every code point, encoded by hand, is valid; every surrogate is not */
    int bad = 0;
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        uint8_t e[4];
        size_t n;
        if (cp < 0x80) {
            e[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            e[0] = (uint8_t)(0xc0 | cp >> 6);
            e[1] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            e[0] = (uint8_t)(0xe0 | cp >> 12);
            e[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
            e[2] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            e[0] = (uint8_t)(0xf0 | cp >> 18);
            e[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
            e[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
            e[3] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 4;
        }
        bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
        bad += tern_utf8_valid(e, n) == surrogate;
    }
    eq_int(bad, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* The last parsed input stays mapped (the result points into it) until the next parse. */
static guarded_t last_guard;

static int parse_req_guarded(const char *text, size_t len, tern_http_request_t *req)
{
    guard_free(&last_guard);
    uint8_t *p = guard_copy(&last_guard, text, len);
    return tern_http_parse_request(p, len, req);
}

static int parse_req(const char *text, tern_http_request_t *req)
{
    return parse_req_guarded(text, strlen(text), req);
}

static int parse_res(const char *text, tern_http_response_t *res)
{
    size_t len = strlen(text);
    guard_free(&last_guard);
    uint8_t *p = guard_copy(&last_guard, text, len);
    return tern_http_parse_response(p, len, res);
}

static bool span_is(const char *p, size_t n, const char *s)
{
    return p && strlen(s) == n && memcmp(p, s, n) == 0;
}

static void test_http_request(void)
{
    static tern_http_request_t req;
    const char *text = RFC_REQUEST;
    size_t len = strlen(text);
    eq_int(parse_req(text, &req), (int)len);
    ok(span_is(req.method, req.method_len, "GET"));
    ok(span_is(req.target, req.target_len, "/chat"));
    ok(span_is(req.path, req.path_len, "/chat"));
    ok(req.query == NULL && req.query_len == 0);
    eq_int(req.minor_version, 1);
    eq_int(req.num_headers, 7);
    eq_int(req.upgrade, TERN_WS_UPGRADE_VALID);
    eq_str(req.accept, RFC_ACCEPT);
    const tern_http_header_t *h = tern_http_find_header(req.headers, req.num_headers, "ORIGIN");
    ok(h && span_is(h->value, h->value_len, "http://example.com"));
    h = tern_http_find_header(req.headers, req.num_headers, "sec-websocket-protocol");
    ok(h && tern_http_has_token(h->value, h->value_len, "superchat"));
    ok(h && !tern_http_has_token(h->value, h->value_len, "super"));
    ok(!tern_http_find_header(req.headers, req.num_headers, "Cookie"));

    /* every prefix is incomplete (never an error), against the guard page */
    int bad = 0;
    for (size_t i = 0; i < len; i++)
        bad += parse_req_guarded(text, i, &req) != TERN_ERR_AGAIN;
    eq_int(bad, 0);
    /* bytes after the head are not part of it */
    char more[1024];
    snprintf(more, sizeof(more), "%s\x81\x85junk", text);
    eq_int(parse_req(more, &req), (int)len);

    /* bare LF line ends, leading empty lines, odd spacing in values, a query */
    const char *lf = "\r\n\nGET /ws/room?a=1&b HTTP/1.0\nhost:  x \t\n\n";
    eq_int(parse_req(lf, &req), (int)strlen(lf));
    for (size_t i = 0; i < strlen(lf); i++)
        bad += parse_req_guarded(lf, i, &req) != TERN_ERR_AGAIN;
    eq_int(bad, 0);
    ok(span_is(req.path, req.path_len, "/ws/room"));
    ok(span_is(req.query, req.query_len, "a=1&b"));
    eq_int(req.minor_version, 0);
    ok(span_is(req.headers[0].value, req.headers[0].value_len, "x"));
    eq_int(req.upgrade, TERN_WS_UPGRADE_NONE);
    eq_int(parse_req("GET /? HTTP/1.1\r\n\r\n", &req), 19);
    ok(req.query && req.query_len == 0 && req.path_len == 1);
    eq_int(parse_req("OPTIONS * HTTP/1.1\r\nHost: a\r\nEmpty:\r\n\r\n", &req), 39);
    ok(span_is(req.target, req.target_len, "*"));
    ok(req.headers[1].value_len == 0);
    /* obs-text in a value is allowed */
    eq_int(parse_req("GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", &req), 28);

    /* malformed */
    static const char *const malformed[] = {
        "GET  / HTTP/1.1\r\n\r\n",                    /* two spaces */
        "GET / HTTP/1.1 \r\n\r\n",                    /* trailing space */
        "GET /\r\n\r\n",                              /* HTTP/0.9 */
        "GET / HTTP/2.0\r\n\r\n",                     /* not 1.x */
        "GET / HTTP/1.10\r\n\r\n",                    /* version */
        "GET / http/1.1\r\n\r\n",                     /* case of HTTP */
        "G(T / HTTP/1.1\r\n\r\n",                     /* method not a token */
        " GET / HTTP/1.1\r\n\r\n",                    /* leading space */
        "GET /a\x7f HTTP/1.1\r\n\r\n",                /* DEL in target */
        "GET /\xc3\xa9 HTTP/1.1\r\n\r\n",             /* non-ASCII target */
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",         /* space before colon (RFC 9112 §5.1) */
        "GET / HTTP/1.1\r\nHost\r\n\r\n",             /* no colon */
        "GET / HTTP/1.1\r\n: x\r\n\r\n",              /* empty name */
        "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",       /* obs-fold */
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",          /* bare CR */
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",         /* control character */
        "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", /* too many empty lines first */
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(malformed); i++) {
        int rc = parse_req(malformed[i], &req);
        if (rc != TERN_ERR_PARSE)
            printf("# malformed %zu: %d\n", i, rc);
        eq_int(rc, TERN_ERR_PARSE);
    }
    /* a NUL or a control byte is caught before the head is complete */
    eq_int(parse_req_guarded("GET / HTTP/1.1\r\nA: \0", 21, &req), TERN_ERR_PARSE);
    eq_int(parse_req("\x16\x03\x01\x02\x00", &req), TERN_ERR_PARSE); /* a TLS ClientHello */
    eq_int(parse_req("GET / HTTP/1.1\r\nA: b\rc", &req), TERN_ERR_PARSE);
}

static void test_http_limits(void)
{
    static tern_http_request_t req;
    static char buf[3 * TERN_HTTP_MAX_HEAD_BYTES];
    /* exactly TERN_HTTP_MAX_HEADERS headers pass, one more does not */
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
        for (int i = 0; i < TERN_HTTP_MAX_HEADERS + extra; i++)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: v\r\n", i);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
        eq_int(parse_req(buf, &req), extra ? TERN_ERR_TOO_LARGE : (int)n);
    }
    /* a line of TERN_HTTP_MAX_LINE bytes passes, one more does not (even incomplete) */
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: ");
        size_t line = TERN_HTTP_MAX_LINE + (size_t)extra - 3;
        memset(buf + n, 'a', line);
        n += line;
        eq_int(parse_req_guarded(buf, n, &req), extra ? TERN_ERR_TOO_LARGE : TERN_ERR_AGAIN);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n\r\n");
        eq_int(parse_req(buf, &req), extra ? TERN_ERR_TOO_LARGE : (int)n);
    }
    /* a head of exactly TERN_HTTP_MAX_HEAD_BYTES passes, one byte more does not */
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
        size_t target = TERN_HTTP_MAX_HEAD_BYTES + (size_t)extra;
        for (int i = 0; n + 4000 + 4 < target; i++) {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: ", i);
            size_t fill = 4000 - 5;
            memset(buf + n, 'b', fill);
            n += fill;
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
        }
        size_t last = target - n - 4 - 3; /* "Y: " ... "\r\n" "\r\n" */
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "Y: ");
        memset(buf + n, 'c', last);
        n += last;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n\r\n");
        eq_int(n, target);
        eq_int(parse_req(buf, &req), extra ? TERN_ERR_TOO_LARGE : (int)n);
    }
    /* a head that never ends is refused once it is over the limit */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
    eq_int(parse_req_guarded(buf, TERN_HTTP_MAX_HEAD_BYTES - 1, &req), TERN_ERR_TOO_LARGE);
    for (size_t i = 19; i < 40; i += 2) /* many short lines, then no end */
        buf[i] = '\n';
    eq_int(parse_req_guarded(buf, TERN_HTTP_MAX_HEAD_BYTES, &req), TERN_ERR_PARSE);
}

static void test_http_upgrade_checks(void)
{
    static tern_http_request_t req;
    struct {
        const char *text;
        tern_ws_upgrade_t want;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", TERN_WS_UPGRADE_NONE},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
         TERN_WS_UPGRADE_NONE},
        /* case-insensitive names and values, token lists, split Connection */
        {"GET /x HTTP/1.1\r\nhOST: a\r\nupgrade: WebSocket\r\nconnection: keep-alive\r\n"
         "CONNECTION: , upgrade ,\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "sec-websocket-version: 13\r\n\r\n",
         TERN_WS_UPGRADE_VALID},
        {"POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         TERN_WS_UPGRADE_INVALID},
        {"GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         TERN_WS_UPGRADE_INVALID},
        {"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         TERN_WS_UPGRADE_INVALID}, /* no Host */
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         TERN_WS_UPGRADE_INVALID}, /* two Hosts */
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         TERN_WS_UPGRADE_INVALID}, /* Connection without upgrade */
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
         TERN_WS_UPGRADE_INVALID}, /* short key */
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         TERN_WS_UPGRADE_INVALID}, /* no key */
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         TERN_WS_UPGRADE_INVALID}, /* two keys */
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
         TERN_WS_UPGRADE_INVALID}, /* no version */
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
         TERN_WS_UPGRADE_BAD_VERSION},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(cases); i++) {
        ok(parse_req(cases[i].text, &req) > 0);
        if (req.upgrade != cases[i].want)
            printf("# upgrade case %zu: %d\n", i, (int)req.upgrade);
        eq_int(req.upgrade, cases[i].want);
        if (cases[i].want == TERN_WS_UPGRADE_VALID || cases[i].want == TERN_WS_UPGRADE_BAD_VERSION)
            eq_str(req.accept, RFC_ACCEPT);
        else
            eq_str(req.accept, "");
    }
    ok(tern_http_has_token("a, b,c ,\t d", 11, "D"));
    ok(tern_http_has_token("a, b,c ,\t d", 11, "c"));
    ok(!tern_http_has_token("a, b,c ,\t d", 11, "a, b"));
    ok(!tern_http_has_token("", 0, "a"));
    ok(tern_http_has_token(",,", 2, ""));
}

static void test_http_response(void)
{
    static tern_http_response_t res;
    const char *text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n";
    size_t len = strlen(text);
    eq_int(parse_res(text, &res), (int)len);
    eq_int(res.status, 101);
    ok(span_is(res.reason, res.reason_len, "Switching Protocols"));
    eq_int(res.num_headers, 3);
    int bad = 0;
    guarded_t g;
    for (size_t i = 0; i < len; i++) {
        uint8_t *p = guard_copy(&g, text, i);
        bad += tern_http_parse_response(p, i, &res) != TERN_ERR_AGAIN;
        guard_free(&g);
    }
    eq_int(bad, 0);
    eq_int(parse_res("HTTP/1.1 101\r\n\r\n", &res), 16);
    eq_int(res.status, 101);
    eq_int(res.reason_len, 0);
    eq_int(parse_res("HTTP/1.0 404 \r\n\r\n", &res), 17);
    eq_int(res.status, 404);
    eq_int(parse_res("HTTP/1.1 99 x\r\n\r\n", &res), TERN_ERR_PARSE);
    eq_int(parse_res("HTTP/1.1 099 x\r\n\r\n", &res), TERN_ERR_PARSE);
    eq_int(parse_res("HTTP/1.x 200 OK\r\n\r\n", &res), TERN_ERR_PARSE);
    eq_int(parse_res("HTTP/1.1x200 OK\r\n\r\n", &res), TERN_ERR_PARSE);
    eq_int(parse_res("HTTP/1.1 200x\r\n\r\n", &res), TERN_ERR_PARSE);
    eq_int(parse_res("HTTP/1.1 20\r\n\r\n", &res), TERN_ERR_PARSE);
    eq_int(parse_res("HTTP/1.", &res), TERN_ERR_AGAIN);
    eq_int(parse_res("HTTP/2", &res), TERN_ERR_PARSE); /* refused before the line ends */
    eq_int(parse_res("HTTP/1.1 1000 x\r\n\r\n", &res), TERN_ERR_PARSE);
    eq_int(parse_res("HTTP/1.1 10a x\r\n\r\n", &res), TERN_ERR_PARSE);
    eq_int(parse_res("HTTP/2 200 OK\r\n\r\n", &res), TERN_ERR_PARSE);
    eq_int(parse_res("ICY 200 OK\r\n\r\n", &res), TERN_ERR_PARSE);
    eq_int(parse_res("HTTP/1.1 200 OK\r\nA : b\r\n\r\n", &res), TERN_ERR_PARSE);
}

static void test_http_write(void)
{
    tern_wbuf_t w;
    tern_wbuf_init(&w, &ctx, NULL, 0);
    tern_http_field_t f[] = {{"Content-Type", "text/plain"}};
    eq_int(tern_http_write_response(&w, 404, f, 1, "nope", 4, false), 0);
    tern_wbuf_u8(&w, 0);
    eq_str((const char *)w.base, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: 4\r\nConnection: close\r\n\r\nnope");
    /* what we write, we parse */
    static tern_http_response_t res;
    ok(tern_http_parse_response(w.base, w.len - 1, &res) == (int)(w.len - 1 - 4));
    eq_int(res.status, 404);
    w.len = 0;
    eq_int(tern_http_write_response(&w, 200, NULL, 0, "body", 4, true), 0);
    tern_wbuf_u8(&w, 0);
    eq_str((const char *)w.base,
           "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\n");
    w.len = 0;
    eq_int(tern_http_write_response(&w, 299, NULL, 0, NULL, 0, false), 0);
    tern_wbuf_u8(&w, 0);
    eq_str((const char *)w.base,
           "HTTP/1.1 299 Unknown\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    tern_http_field_t evil[] = {{"X", "a\r\nSet-Cookie: b"}};
    tern_http_field_t evil_name[] = {{"X Y", "a"}};
    tern_http_field_t empty_name[] = {{"", "a"}};
    eq_int(tern_http_write_response(&w, 200, evil, 1, NULL, 0, false), TERN_ERR_INVALID_ARG);
    eq_int(tern_http_write_response(&w, 200, evil_name, 1, NULL, 0, false), TERN_ERR_INVALID_ARG);
    eq_int(tern_http_write_response(&w, 200, empty_name, 1, NULL, 0, false), TERN_ERR_INVALID_ARG);
    eq_int(tern_http_write_response(&w, 99, NULL, 0, NULL, 0, false), TERN_ERR_INVALID_ARG);
    eq_int(tern_http_write_response(&w, 1000, NULL, 0, NULL, 0, false), TERN_ERR_INVALID_ARG);
    tern_wbuf_dispose(&w);
    /* a fixed buffer that is too small reports TERN_ERR_NOMEM */
    uint8_t small[16];
    tern_wbuf_init(&w, NULL, small, sizeof(small));
    eq_int(tern_http_write_response(&w, 200, NULL, 0, NULL, 0, false), TERN_ERR_NOMEM);
    eq_str(tern_http_status_text(426), "Upgrade Required");
    eq_str(tern_http_status_text(431), "Request Header Fields Too Large");
}

/* ------------------------------------------------------------------------------------------ */
/* server endpoint: opening handshake                                                         */
/* ------------------------------------------------------------------------------------------ */

static void test_server_handshake(void)
{
    tern_ws_t *ws = new_server(NULL);
    eq_int(tern_ws_role(ws), TERN_WS_ROLE_SERVER);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CONNECTING);
    eq_int(tern_ws_next_deadline(ws), now + TERN_WS_DEFAULT_HANDSHAKE_TIMEOUT_US);
    eq_str(tern_ws_target(ws), "");
    tern_ws_event_t ev;
    /* byte by byte: nothing until the last byte */
    const char *req = RFC_REQUEST;
    size_t len = strlen(req);
    for (size_t i = 0; i + 1 < len; i++) {
        eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)req + i, 1), 0);
        ok(!tern_ws_poll_event(ws, &ev));
    }
    eq_int(tern_ws_accept(ws, now, NULL), TERN_ERR_INVALID_STATE); /* no request yet */
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)req + len - 1, 1), 0);
    ok(tern_ws_poll_event(ws, &ev));
    eq_int(ev.type, TERN_WS_EV_REQUEST);
    const tern_http_request_t *r = ev.u.request.request;
    ok(span_is(r->path, r->path_len, "/chat"));
    eq_int(r->upgrade, TERN_WS_UPGRADE_VALID);
    eq_str(tern_ws_target(ws), "/chat");
    ok(!tern_ws_poll_output(ws, &(const uint8_t *){NULL}, &(size_t){0}));
    eq_int(tern_ws_send_text(ws, now, "x", 1), TERN_ERR_INVALID_STATE);
    eq_int(tern_ws_accept(ws, now, "bad\r\nproto"), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_accept(ws, now, "chat"), 0);
    /* the request stays readable after accept, until the next poll */
    ok(span_is(r->method, r->method_len, "GET"));
    eq_int(tern_ws_accept(ws, now, NULL), TERN_ERR_INVALID_STATE);
    eq_int(tern_ws_respond(ws, now, 404, NULL, 0, NULL, 0), TERN_ERR_INVALID_STATE);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_OPEN);
    uint8_t out[512];
    size_t n = take_output(ws, out, sizeof(out));
    out[n] = 0;
    eq_str((char *)out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                        "Sec-WebSocket-Protocol: chat\r\n\r\n");
    ok(tern_ws_poll_event(ws, &ev));
    eq_int(ev.type, TERN_WS_EV_OPEN);
    eq_str(ev.u.open.target, "/chat");
    eq_str(ev.u.open.protocol, "chat");
    eq_str(tern_ws_protocol(ws), "chat");
    ok(!tern_ws_poll_event(ws, &ev));
    /* the masked "Hello" of RFC 6455 §5.7 */
    static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                           0x7f, 0x9f, 0x4d, 0x51, 0x58};
    evlog_t *l = calloc(1, sizeof(*l));
    feed(ws, hello_masked, sizeof(hello_masked), l);
    eq_int(l->n, 1);
    ok(l->r[0].type == TERN_WS_EV_MESSAGE && l->r[0].is_text && l->r[0].len == 5 &&
       memcmp(l->r[0].data, "Hello", 5) == 0);
    /* server frames are unmasked: "Hello" exactly as in §5.7 */
    eq_int(tern_ws_send_text(ws, now, "Hello", 5), 0);
    n = take_output(ws, out, sizeof(out));
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    ok(n == sizeof(hello) && eq_mem(out, hello, n));
    log_clear(l);
    free(l);
    tern_ws_free(ws);
}

/* Upgrade requests shaped as Chromium's and Firefox's, with their permessage-deflate offers. */
static const char chrome_request[] =
    "GET /ws/room1 HTTP/1.1\r\nHost: localhost:8080\r\nConnection: Upgrade\r\n"
    "Pragma: no-cache\r\nCache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\nOrigin: http://localhost:8080\r\nSec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
static const char firefox_request[] =
    "GET /ws/room1?peer=2 HTTP/1.1\r\nHost: localhost:8080\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
    "Sec-WebSocket-Version: 13\r\nOrigin: http://localhost:8080\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: keep-alive, Upgrade\r\n"
    "Sec-Fetch-Dest: empty\r\nSec-Fetch-Mode: websocket\r\nSec-Fetch-Site: same-origin\r\n"
    "Pragma: no-cache\r\nCache-Control: no-cache\r\nUpgrade: websocket\r\n\r\n";

static void browser_case(const char *req, const char *path, const char *accept)
{
    tern_ws_t *ws = new_server(NULL);
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)req, strlen(req)), 0);
    tern_ws_event_t ev;
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_REQUEST);
    const tern_http_request_t *r = ev.u.request.request;
    eq_int(r->upgrade, TERN_WS_UPGRADE_VALID);
    ok(span_is(r->path, r->path_len, path));
    eq_str(r->accept, accept);
    eq_int(tern_ws_accept(ws, now, NULL), 0);
    static char out[512];
    size_t n = take_output(ws, (uint8_t *)out, sizeof(out) - 1);
    out[n] = 0;
    ok(strstr(out, accept) != NULL);
    /* the deflate offer is ignored: no extension in the answer */
    ok(strstr(out, "Extensions") == NULL);
    tern_ws_free(ws);
}

static void test_browser_requests(void)
{
    browser_case(chrome_request, "/ws/room1", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    browser_case(firefox_request, "/ws/room1", RFC_ACCEPT);
}

static void test_server_pipelined_frames(void)
{
    /* frames in the same read as the request are processed after accept */
    tern_ws_t *ws = new_server(NULL);
    uint8_t buf[1024];
    size_t n = strlen(RFC_REQUEST);
    memcpy(buf, RFC_REQUEST, n);
    n += make_frame(buf + n, 0x81, "one", 3, true);
    n += make_frame(buf + n, 0x82, "two", 3, true);
    evlog_t *l = calloc(1, sizeof(*l));
    eq_int(tern_ws_handle_input(ws, now, buf, n), 0);
    tern_ws_event_t ev;
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_REQUEST);
    eq_int(tern_ws_accept(ws, now, NULL), 0);
    drain_events(ws, l);
    eq_int(l->n, 3);
    eq_int(l->r[0].type, TERN_WS_EV_OPEN);
    eq_str(l->r[0].protocol, "");
    ok(l->r[1].type == TERN_WS_EV_MESSAGE && l->r[1].is_text && l->r[1].len == 3 &&
       memcmp(l->r[1].data, "one", 3) == 0);
    ok(l->r[2].type == TERN_WS_EV_MESSAGE && !l->r[2].is_text &&
       memcmp(l->r[2].data, "two", 3) == 0);
    log_clear(l);
    free(l);
    tern_ws_free(ws);
}

/* A server that got `req` and answered with respond(); returns the output as a string. */
static void respond_case(const char *req, int status, const char *body, const char *want_out)
{
    tern_ws_t *ws = new_server(NULL);
    evlog_t *l = calloc(1, sizeof(*l));
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)req, strlen(req)), 0);
    tern_ws_event_t ev;
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_REQUEST);
    tern_http_field_t f[] = {{"Content-Type", "text/plain"}};
    eq_int(tern_ws_respond(ws, now, status, f, 1, body, body ? strlen(body) : 0), 0);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CLOSED);
    static char out[4096];
    size_t n = take_output(ws, (uint8_t *)out, sizeof(out) - 1);
    out[n] = 0;
    eq_str(out, want_out);
    drain_events(ws, l);
    eq_int(l->n, 1);
    const rec_t *c = log_last(l, TERN_WS_EV_CLOSE);
    ok(c && c->cause == TERN_WS_CAUSE_HTTP_RESPONSE && c->http_status == status &&
       c->code == TERN_WS_CLOSE_ABNORMAL && c->sent_code == 0);
    ok(!tern_ws_poll_event(ws, &ev));
    eq_int(tern_ws_next_deadline(ws), TERN_TIME_NEVER);
    /* more input is dropped and counted */
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)"x", 1), 0);
    tern_ws_stats_t st;
    tern_ws_get_stats(ws, &st);
    ok(st.input_dropped >= 1);
    ok(!tern_ws_poll_event(ws, &ev));
    log_clear(l);
    free(l);
    tern_ws_free(ws);
}

static void test_server_plain_http(void)
{
    respond_case("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 200, "{\"ok\":true}",
                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
                 "Connection: close\r\n\r\n{\"ok\":true}");
    respond_case("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", 200, "hello",
                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                 "Connection: close\r\n\r\n");
    respond_case(RFC_REQUEST, 400, "bad room",
                 "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n"
                 "Connection: close\r\n\r\nbad room");
    /* a request with a body: the body is ignored */
    respond_case("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", 405, NULL,
                 "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n");
    const char *v8 = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 8\r\n\r\n";
    respond_case(v8, 426, NULL,
                 "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\n"
                 "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");

    /* accept is refused for what is not a valid upgrade */
    tern_ws_t *ws = new_server(NULL);
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)v8, strlen(v8)), 0);
    tern_ws_event_t ev;
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_REQUEST);
    eq_int(ev.u.request.request->upgrade, TERN_WS_UPGRADE_BAD_VERSION);
    eq_int(tern_ws_accept(ws, now, NULL), TERN_ERR_INVALID_STATE);
    tern_http_field_t evil[] = {{"X", "a\nb"}};
    eq_int(tern_ws_respond(ws, now, 400, evil, 1, NULL, 0), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_respond(ws, now, 42, NULL, 0, NULL, 0), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CONNECTING);
    tern_ws_free(ws);

    /* a big body goes out whatever the output limit */
    tern_ws_config_t cfg = {.max_output_bytes = 1024};
    ws = new_server(&cfg);
    const char *get = "GET /big HTTP/1.1\r\nHost: a\r\n\r\n";
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)get, strlen(get)), 0);
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_REQUEST);
    char *big = calloc(1, 100000);
    eq_int(tern_ws_respond(ws, now, 200, NULL, 0, big, 100000), 0);
    ok(tern_ws_buffered_amount(ws) > 100000);
    free(big);
    tern_ws_free(ws);
}

static void bad_http_case(const void *data, size_t len, int want_status)
{
    tern_ws_t *ws = new_server(NULL);
    evlog_t *l = calloc(1, sizeof(*l));
    eq_int(tern_ws_handle_input(ws, now, data, len), 0);
    drain_events(ws, l);
    eq_int(l->n, 1);
    const rec_t *c = log_last(l, TERN_WS_EV_CLOSE);
    ok(c && c->cause == TERN_WS_CAUSE_BAD_HTTP && c->http_status == want_status);
    static char out[512];
    size_t n = take_output(ws, (uint8_t *)out, sizeof(out) - 1);
    out[n] = 0;
    char want[128];
    snprintf(want, sizeof(want), "HTTP/1.1 %d ", want_status);
    ok(strncmp(out, want, strlen(want)) == 0);
    ok(strstr(out, "Connection: close\r\n") != NULL);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CLOSED);
    log_clear(l);
    free(l);
    tern_ws_free(ws);
}

static void test_server_bad_http(void)
{
    bad_http_case("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 26, 400);
    bad_http_case("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11, 400); /* TLS */
    bad_http_case("\x81\x85\x37\xfa\x21\x3d\x7f", 7, 400);                  /* a frame */
    static char big[TERN_HTTP_MAX_HEAD_BYTES + 100];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    bad_http_case(big, sizeof(big), 431);
    /* fed in pieces: refused once the line is over the limit, not before */
    tern_ws_t *ws = new_server(NULL);
    tern_ws_event_t ev;
    size_t fed = 0;
    while (fed < sizeof(big) && tern_ws_state(ws) == TERN_WS_STATE_CONNECTING) {
        eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)big + fed, 100), 0);
        fed += 100;
    }
    ok(fed > 16 + TERN_HTTP_MAX_LINE && fed <= 16 + TERN_HTTP_MAX_LINE + 100);
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_CLOSE && ev.u.close.http_status == 431);
    tern_ws_free(ws);
    /* and once the head is over the limit, in lines of 1000 bytes */
    static char lines[2 * TERN_HTTP_MAX_HEAD_BYTES];
    size_t n = (size_t)snprintf(lines, sizeof(lines), "GET / HTTP/1.1\r\n");
    for (int i = 0; n + 1000 < sizeof(lines); i++) {
        n += (size_t)snprintf(lines + n, sizeof(lines) - n, "X-%d: ", i);
        memset(lines + n, 'v', 990);
        n += 990;
        n += (size_t)snprintf(lines + n, sizeof(lines) - n, "\r\n");
    }
    ws = new_server(NULL);
    fed = 0;
    while (fed + 100 <= n && tern_ws_state(ws) == TERN_WS_STATE_CONNECTING) {
        eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)lines + fed, 100), 0);
        fed += 100;
    }
    ok(fed >= TERN_HTTP_MAX_HEAD_BYTES && fed <= TERN_HTTP_MAX_HEAD_BYTES + 100);
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_CLOSE && ev.u.close.http_status == 431);
    tern_ws_free(ws);

    /* a client that floods before the decision is cut off */
    tern_ws_config_t cfg = {.max_message_bytes = 1000};
    ws = new_server(&cfg);
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)RFC_REQUEST, strlen(RFC_REQUEST)), 0);
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_REQUEST);
    uint8_t flood[600] = {0};
    eq_int(tern_ws_handle_input(ws, now, flood, sizeof(flood)), 0);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CONNECTING);
    eq_int(tern_ws_handle_input(ws, now, flood, sizeof(flood)), 0);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CLOSED);
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_CLOSE &&
       ev.u.close.cause == TERN_WS_CAUSE_BAD_HTTP);
    tern_ws_free(ws);
}

/* ------------------------------------------------------------------------------------------ */
/* client endpoint: opening handshake                                                         */
/* ------------------------------------------------------------------------------------------ */

/* A client's request, parsed; returns the endpoint. */
static tern_ws_t *client_with_request(const tern_ws_config_t *extra, tern_http_request_t *req,
                                      char *raw, size_t cap)
{
    tern_ws_config_t cfg = extra ? *extra : (tern_ws_config_t){0};
    cfg.role = TERN_WS_ROLE_CLIENT;
    if (!cfg.host)
        cfg.host = "example.com:8080";
    tern_ws_t *ws = NULL;
    eq_int(tern_ws_new(&ctx, &cfg, now, &ws), 0);
    if (!ws)
        return NULL;
    const uint8_t *data;
    size_t len;
    ok(tern_ws_poll_output(ws, &data, &len));
    ok(len < cap);
    memcpy(raw, data, len);
    raw[len] = 0;
    tern_ws_consume_output(ws, len);
    eq_int(tern_http_parse_request((const uint8_t *)raw, len, req), (int)len);
    return ws;
}

static void test_client_handshake(void)
{
    static tern_http_request_t req;
    static char raw[2048];
    tern_http_field_t extra[] = {{"User-Agent", "tern-test"}};
    tern_ws_config_t cfg = {.target = "/ws/room?x=1",
                            .origin = "http://example.com",
                            .protocol = "tern.v1",
                            .headers = extra,
                            .num_headers = 1};
    tern_ws_t *ws = client_with_request(&cfg, &req, raw, sizeof(raw));
    eq_int(tern_ws_role(ws), TERN_WS_ROLE_CLIENT);
    eq_int(req.upgrade, TERN_WS_UPGRADE_VALID);
    ok(span_is(req.target, req.target_len, "/ws/room?x=1"));
    eq_str(tern_ws_target(ws), "/ws/room?x=1");
    eq_str(tern_ws_protocol(ws), "");
    const tern_http_header_t *h = tern_http_find_header(req.headers, req.num_headers, "Host");
    ok(h && span_is(h->value, h->value_len, "example.com:8080"));
    h = tern_http_find_header(req.headers, req.num_headers, "Origin");
    ok(h && span_is(h->value, h->value_len, "http://example.com"));
    h = tern_http_find_header(req.headers, req.num_headers, "User-Agent");
    ok(h && span_is(h->value, h->value_len, "tern-test"));
    ok(!tern_http_find_header(req.headers, req.num_headers, "Sec-WebSocket-Extensions"));
    /* the key is fresh (16 random bytes): a second client has another */
    char first_accept[32];
    snprintf(first_accept, sizeof(first_accept), "%s", req.accept);
    static tern_http_request_t req2;
    static char raw2[2048];
    tern_ws_t *ws2 = client_with_request(&cfg, &req2, raw2, sizeof(raw2));
    ok(strcmp(first_accept, req2.accept) != 0);
    tern_ws_free(ws2);

    /* the response, cut in two, and a frame in the same read as its end */
    char res[512];
    int n = snprintf(res, sizeof(res),
                     "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
                     "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: tern.v1\r\n\r\n",
                     req.accept);
    size_t rn = (size_t)n;
    rn += make_frame((uint8_t *)res + rn, 0x81, "hi", 2, false);
    tern_ws_event_t ev;
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)res, 20), 0);
    ok(!tern_ws_poll_event(ws, &ev));
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)res + 20, rn - 20), 0);
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_OPEN);
    eq_str(ev.u.open.target, "/ws/room?x=1");
    eq_str(ev.u.open.protocol, "tern.v1");
    ok(tern_ws_poll_event(ws, &ev) && ev.type == TERN_WS_EV_MESSAGE && ev.u.message.len == 2 &&
       memcmp(ev.u.message.data, "hi", 2) == 0);
    ok(!tern_ws_poll_event(ws, &ev));
    /* a client's frames are masked */
    eq_int(tern_ws_send_text(ws, now, "Hello", 5), 0);
    uint8_t out[64];
    size_t on = take_output(ws, out, sizeof(out));
    tern_ws_frame_header_t fh;
    eq_int(tern_ws_frame_header_parse(out, on, &fh), 0);
    ok(fh.masked && fh.payload_len == 5 && on == 11);
    tern_ws_mask(out + 6, 5, fh.mask, 0);
    ok(eq_mem(out + 6, "Hello", 5));
    tern_ws_free(ws);

    /* bad configurations */
    tern_ws_t *bad = NULL;
    tern_ws_config_t c = {.role = TERN_WS_ROLE_CLIENT};
    eq_int(tern_ws_new(&ctx, &c, now, &bad), TERN_ERR_INVALID_ARG);
    c.host = "a\r\nb";
    eq_int(tern_ws_new(&ctx, &c, now, &bad), TERN_ERR_INVALID_ARG);
    c.host = "a";
    c.target = "noslash";
    eq_int(tern_ws_new(&ctx, &c, now, &bad), TERN_ERR_INVALID_ARG);
    c.target = "/a b";
    eq_int(tern_ws_new(&ctx, &c, now, &bad), TERN_ERR_INVALID_ARG);
    c.target = NULL;
    c.protocol = "";
    eq_int(tern_ws_new(&ctx, &c, now, &bad), TERN_ERR_INVALID_ARG);
    c.protocol = NULL;
    tern_http_field_t evil[] = {{"X", "a\r\nb"}};
    c.headers = evil;
    c.num_headers = 1;
    eq_int(tern_ws_new(&ctx, &c, now, &bad), TERN_ERR_INVALID_ARG);
    c.num_headers = 0;
    c.role = (tern_ws_role_t)7;
    eq_int(tern_ws_new(&ctx, &c, now, &bad), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_new(&ctx, NULL, now, NULL), TERN_ERR_INVALID_ARG);
    ok(bad == NULL);
    c.role = TERN_WS_ROLE_CLIENT;
    eq_int(tern_ws_new(&ctx, &c, now, &bad), 0); /* target defaults to "/" */
    eq_str(tern_ws_target(bad), "/");
    tern_ws_free(bad);
}

static void bad_response_case(const char *fmt, const tern_ws_config_t *cfg, int want_status)
{
    static tern_http_request_t req;
    static char raw[2048];
    tern_ws_t *ws = client_with_request(cfg, &req, raw, sizeof(raw));
    /* the response with "%s" replaced by the right accept value */
    char res[1024];
    const char *at = strstr(fmt, "%s");
    size_t pre = at ? (size_t)(at - fmt) : strlen(fmt);
    int n = snprintf(res, sizeof(res), "%.*s%s%s", (int)pre, fmt, at ? req.accept : "",
                     at ? at + 2 : "");
    evlog_t *l = calloc(1, sizeof(*l));
    feed(ws, res, (size_t)n, l);
    eq_int(l->n, 1);
    const rec_t *c = log_last(l, TERN_WS_EV_CLOSE);
    ok(c && c->cause == TERN_WS_CAUSE_BAD_HANDSHAKE && c->http_status == want_status);
    if (!c || c->http_status != want_status)
        printf("# response: %s\n", fmt);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CLOSED);
    ok(!tern_ws_poll_output(ws, &(const uint8_t *){NULL}, &(size_t){0}));
    log_clear(l);
    free(l);
    tern_ws_free(ws);
}

static void test_client_bad_responses(void)
{
    bad_response_case("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nX: %s\r\n\r\n", NULL, 404);
    bad_response_case("HTTP/1.1 302 Found\r\nLocation: /x\r\nX: %s\r\n\r\n", NULL, 302);
    bad_response_case("HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n",
                      NULL, 101); /* no Upgrade */
    bad_response_case("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n",
                      NULL, 101); /* no Connection */
    bad_response_case("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX: %s\r\n\r\n",
                      NULL, 101); /* wrong accept */
    bad_response_case("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n"
                      "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                      NULL, 101); /* extension not offered */
    bad_response_case("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
                      NULL, 101); /* protocol not offered */
    tern_ws_config_t proto = {.protocol = "a"};
    bad_response_case("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: b\r\n\r\n",
                      &proto, 101);
    bad_response_case("HTTP/1.1 101 OK\r\nUpgrade : websocket\r\nX: %s\r\n\r\n", NULL, 0);
    bad_response_case("SSH-2.0-OpenSSH_9.2\r\n%s", NULL, 0);

    /* a protocol offered but not chosen: open, with no protocol */
    static tern_http_request_t req;
    static char raw[2048];
    tern_ws_t *ws = client_with_request(&proto, &req, raw, sizeof(raw));
    char res[1024];
    int n = snprintf(res, sizeof(res),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     req.accept);
    evlog_t *l = calloc(1, sizeof(*l));
    feed(ws, res, (size_t)n, l);
    eq_int(l->n, 1);
    ok(l->r[0].type == TERN_WS_EV_OPEN && strcmp(l->r[0].protocol, "") == 0);
    log_clear(l);
    free(l);
    tern_ws_free(ws);
}

/* ------------------------------------------------------------------------------------------ */
/* frames and protocol violations                                                             */
/* ------------------------------------------------------------------------------------------ */

/* Feed frames to an open server; expect it to fail with `code` (cause PROTOCOL_ERROR). */
static void violation_case(const uint8_t *frames, size_t len, uint16_t code, const char *what)
{
    tern_ws_t *ws = open_server(NULL);
    evlog_t *l = calloc(1, sizeof(*l));
    feed(ws, frames, len, l);
    const rec_t *c = log_last(l, TERN_WS_EV_CLOSE);
    bool good = c && c->cause == TERN_WS_CAUSE_PROTOCOL_ERROR && c->sent_code == code &&
                c->code == TERN_WS_CLOSE_ABNORMAL;
    if (!good)
        printf("# violation '%s': cause %d sent %d\n", what, c ? (int)c->cause : -1,
               c ? c->sent_code : -1);
    ok(good);
    eq_int(output_close_code(ws), code);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CLOSED);
    eq_int(log_count(l, TERN_WS_EV_CLOSE), 1);
    log_clear(l);
    free(l);
    tern_ws_free(ws);
}

static void test_violations(void)
{
    uint8_t f[256];
    size_t n;
    /* RFC 6455 §5.1: an unmasked client frame */
    n = make_frame(f, 0x81, "Hello", 5, false);
    violation_case(f, n, 1002, "unmasked");
    /* §5.2: RSV bits without an extension */
    for (uint8_t rsv = 1; rsv < 8; rsv++) {
        n = make_frame(f, (uint8_t)(0x81 | rsv << 4), "x", 1, true);
        violation_case(f, n, 1002, "rsv");
    }
    /* §5.2: reserved opcodes */
    static const uint8_t reserved[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
    for (size_t i = 0; i < sizeof(reserved); i++) {
        n = make_frame(f, (uint8_t)(0x80 | reserved[i]), "x", 1, true);
        violation_case(f, n, 1002, "opcode");
    }
    /* §5.5: control frames over 125 bytes, or fragmented */
    uint8_t big[200] = {0};
    n = make_frame(f, 0x89, big, 126, true);
    violation_case(f, n, 1002, "long ping");
    n = make_frame(f, 0x09, "x", 1, true);
    violation_case(f, n, 1002, "fragmented ping");
    n = make_frame(f, 0x08, NULL, 0, true);
    violation_case(f, n, 1002, "fragmented close");
    /* a 125-byte ping is fine and answered */
    {
        tern_ws_t *ws = open_server(NULL);
        evlog_t *l = calloc(1, sizeof(*l));
        n = make_frame(f, 0x89, big, 125, true);
        feed(ws, f, n, l);
        eq_int(l->n, 0);
        uint8_t out[256];
        size_t on = take_output(ws, out, sizeof(out));
        eq_int(on, 127);
        ok(out[0] == 0x8a && out[1] == 125);
        free(l);
        tern_ws_free(ws);
    }
    /* §5.4: continuation without a start, a new message inside a fragmented one */
    n = make_frame(f, 0x80, "x", 1, true);
    violation_case(f, n, 1002, "continuation first");
    n = make_frame(f, 0x01, "a", 1, true);
    n += make_frame(f + n, 0x81, "b", 1, true);
    violation_case(f, n, 1002, "text inside text");
    n = make_frame(f, 0x02, "a", 1, true);
    n += make_frame(f + n, 0x02, "b", 1, true);
    violation_case(f, n, 1002, "binary inside binary");
    /* §5.2: non-minimal length, 64-bit length with the MSB set */
    static const uint8_t nonmin[] = {0x82, 0xfe, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0, 0, 0};
    violation_case(nonmin, sizeof(nonmin), 1002, "non-minimal length");
    static const uint8_t msb[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    violation_case(msb, sizeof(msb), 1002, "2^63 length");
    /* a 2^62-byte frame is refused with 1009 on its header alone */
    static const uint8_t huge[] = {0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    violation_case(huge, sizeof(huge), 1009, "2^62 length");
    /* §7.4: close frames */
    n = make_frame(f, 0x88, "\x03", 1, true);
    violation_case(f, n, 1002, "one-byte close");
    static const uint16_t bad_codes[] = {0,    999,  1004, 1005, 1006, 1015,
                                         1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad_codes); i++) {
        uint8_t body[2];
        tern_store_u16(body, bad_codes[i]);
        n = make_frame(f, 0x88, body, 2, true);
        violation_case(f, n, 1002, "close code");
    }
    n = make_frame(f, 0x88, "\x03\xe8\xff", 3, true);
    violation_case(f, n, 1007, "close reason not utf-8");
    /* §8.1: text that is not UTF-8 */
    n = make_frame(f, 0x81,
                   "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
                   "edited",
                   20, true);
    violation_case(f, n, 1007, "text with a surrogate");
    n = make_frame(f, 0x81, "ab\xc3", 3, true);
    violation_case(f, n, 1007, "text ending inside a character");
    /* a bad fragment fails at once, before the message ends */
    n = make_frame(f, 0x01, "ok", 2, true);
    n += make_frame(f + n, 0x00, "\xff", 1, true);
    violation_case(f, n, 1007, "bad fragment");
    /* a sequence split across fragments is fine, an invalid one is not */
    n = make_frame(f, 0x01, "\xf0\x90", 2, true);
    n += make_frame(f + n, 0x80, "\x80\x80", 2, true);
    {
        tern_ws_t *ws = open_server(NULL);
        evlog_t *l = calloc(1, sizeof(*l));
        feed(ws, f, n, l);
        eq_int(l->n, 1);
        ok(l->r[0].type == TERN_WS_EV_MESSAGE && l->r[0].len == 4 &&
           memcmp(l->r[0].data, "\xf0\x90\x80\x80", 4) == 0);
        log_clear(l);
        free(l);
        tern_ws_free(ws);
    }
    n = make_frame(f, 0x01, "\xf4", 1, true);
    n += make_frame(f + n, 0x80, "\x90\x80\x80", 3, true);
    violation_case(f, n, 1007, "split > U+10FFFF");
    /* binary is not checked */
    n = make_frame(f, 0x82, "\xff\xfe", 2, true);
    {
        tern_ws_t *ws = open_server(NULL);
        evlog_t *l = calloc(1, sizeof(*l));
        feed(ws, f, n, l);
        eq_int(l->n, 1);
        ok(!l->r[0].is_text && l->r[0].len == 2);
        log_clear(l);
        free(l);
        tern_ws_free(ws);
    }

    /* the client side: a masked frame from the server */
    {
        tern_ws_t *c, *s;
        evlog_t *lc = calloc(1, sizeof(*lc)), *ls = calloc(1, sizeof(*ls));
        open_pair(NULL, NULL, &c, lc, &s, ls);
        n = make_frame(f, 0x81, "Hello", 5, true);
        feed(c, f, n, lc);
        const rec_t *r = log_last(lc, TERN_WS_EV_CLOSE);
        ok(r && r->cause == TERN_WS_CAUSE_PROTOCOL_ERROR && r->sent_code == 1002);
        eq_int(output_close_code(c), 1002);
        log_clear(lc);
        log_clear(ls);
        free(lc);
        free(ls);
        tern_ws_free(c);
        tern_ws_free(s);
    }
}

static void test_message_limit(void)
{
    tern_ws_config_t cfg = {.max_message_bytes = 1000};
    static uint8_t f[4096], payload[2000];
    memset(payload, 'a', sizeof(payload));
    /* exactly the limit passes, in one frame and in fragments */
    for (int frags = 1; frags <= 4; frags++) {
        tern_ws_t *ws = open_server(&cfg);
        evlog_t *l = calloc(1, sizeof(*l));
        size_t n = 0, sent = 0;
        for (int i = 0; i < frags; i++) {
            size_t part = i + 1 == frags ? 1000 - sent : 1000 / (size_t)frags;
            uint8_t b0 = (uint8_t)((i + 1 == frags ? 0x80 : 0) | (i == 0 ? 1 : 0));
            n += make_frame(f + n, b0, payload + sent, part, true);
            sent += part;
        }
        feed(ws, f, n, l);
        eq_int(l->n, 1);
        ok(l->r[0].type == TERN_WS_EV_MESSAGE && l->r[0].len == 1000);
        log_clear(l);
        free(l);
        tern_ws_free(ws);
    }
    /* one byte more: 1009, in one frame (on its header) or when the fragments add up */
    tern_ws_t *ws = open_server(&cfg);
    evlog_t *l = calloc(1, sizeof(*l));
    size_t n = make_frame(f, 0x82, payload, 1001, true);
    feed(ws, f, 8, l); /* only the header */
    const rec_t *c = log_last(l, TERN_WS_EV_CLOSE);
    ok(c && c->sent_code == 1009 && c->cause == TERN_WS_CAUSE_PROTOCOL_ERROR);
    eq_int(output_close_code(ws), 1009);
    log_clear(l);
    tern_ws_free(ws);
    ws = open_server(&cfg);
    n = make_frame(f, 0x01, payload, 600, true);
    n += make_frame(f + n, 0x89, "p", 1, true); /* a ping in the middle */
    n += make_frame(f + n, 0x80, payload, 401, true);
    feed(ws, f, n, l);
    c = log_last(l, TERN_WS_EV_CLOSE);
    ok(c && c->sent_code == 1009);
    eq_int(log_count(l, TERN_WS_EV_MESSAGE), 0);
    log_clear(l);
    free(l);
    tern_ws_free(ws);
}

static void test_fragments_and_control(void)
{
    /* RFC 6455 §5.4: control frames may come between fragments */
    tern_ws_t *ws = open_server(NULL);
    evlog_t *l = calloc(1, sizeof(*l));
    uint8_t f[512];
    size_t n = make_frame(f, 0x01, "Hel", 3, true);
    n += make_frame(f + n, 0x89, "ping!", 5, true);
    n += make_frame(f + n, 0x00, "lo, ", 4, true);
    n += make_frame(f + n, 0x8a, "unsolicited", 11, true);
    n += make_frame(f + n, 0x00, "", 0, true);
    n += make_frame(f + n, 0x80, "world", 5, true);
    n += make_frame(f + n, 0x82, "", 0, true);
    n += make_frame(f + n, 0x81, "", 0, true);
    /* every split point gives the same events */
    for (size_t cut = 0; cut <= n; cut += 1) {
        tern_ws_t *s = open_server(NULL);
        feed(s, f, cut, l);
        feed(s, f + cut, n - cut, l);
        eq_int(l->n, 3);
        ok(l->r[0].type == TERN_WS_EV_MESSAGE && l->r[0].is_text && l->r[0].len == 12 &&
           memcmp(l->r[0].data, "Hello, world", 12) == 0);
        ok(l->r[1].len == 0 && !l->r[1].is_text);
        ok(l->r[2].len == 0 && l->r[2].is_text);
        uint8_t out[64];
        size_t on = take_output(s, out, sizeof(out));
        static const uint8_t pong[] = {0x8a, 0x05, 'p', 'i', 'n', 'g', '!'};
        ok(on == sizeof(pong) && eq_mem(out, pong, sizeof(pong)));
        tern_ws_stats_t st;
        tern_ws_get_stats(s, &st);
        eq_int(st.pongs_in, 1);
        eq_int(st.frames_in, 8);
        log_clear(l);
        tern_ws_free(s);
    }
    /* byte by byte */
    for (size_t i = 0; i < n; i++)
        feed(ws, f + i, 1, l);
    eq_int(l->n, 3);
    ok(l->r[0].len == 12 && memcmp(l->r[0].data, "Hello, world", 12) == 0);
    log_clear(l);
    free(l);
    tern_ws_free(ws);
}

static void test_many_messages_one_read(void)
{
    /* more messages than the event queue holds, and pings among them */
    tern_ws_t *ws = open_server(NULL);
    static uint8_t f[8192];
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        char text[16];
        int tl = snprintf(text, sizeof(text), "m%d", i);
        n += make_frame(f + n, 0x81, text, (size_t)tl, true);
        if (i % 10 == 9)
            n += make_frame(f + n, 0x89, "p", 1, true);
    }
    n += make_frame(f + n, 0x88,
                    "\x03\xe8"
                    "bye",
                    5, true);
    evlog_t *l = calloc(1, sizeof(*l));
    eq_int(tern_ws_handle_input(ws, now, f, n), 0);
    drain_events(ws, l);
    eq_int(l->n, 101);
    int order_ok = 1;
    for (int i = 0; i < 100; i++) {
        char text[16];
        snprintf(text, sizeof(text), "m%d", i);
        order_ok &= l->r[i].type == TERN_WS_EV_MESSAGE && strcmp((char *)l->r[i].data, text) == 0;
    }
    ok(order_ok);
    const rec_t *c = &l->r[100];
    ok(c->type == TERN_WS_EV_CLOSE && c->cause == TERN_WS_CAUSE_CLEAN && c->by_peer &&
       c->code == 1000 && c->sent_code == 1000);
    eq_str(c->reason, "bye");
    /* ten pongs, then the close echo */
    static uint8_t out[4096];
    size_t on = take_output(ws, out, sizeof(out));
    eq_int(on, 10 * 3 + 4);
    ok(out[27] == 0x8a && out[30] == 0x88 && out[31] == 2 && out[32] == 0x03 && out[33] == 0xe8);
    log_clear(l);
    free(l);
    tern_ws_free(ws);

    /* feeding without draining: refused once the buffer is full, nothing lost */
    tern_ws_config_t cfg = {.max_message_bytes = 100};
    ws = open_server(&cfg);
    uint8_t one[16];
    size_t on1 = make_frame(one, 0x82, "0123456789", 10, true);
    size_t fed = 0;
    int rc = 0;
    while ((rc = tern_ws_handle_input(ws, now, one, on1)) == 0 && fed < 100000)
        fed++;
    eq_int(rc, TERN_ERR_AGAIN);
    ok(fed * on1 < 2 * 100 + TERN_HTTP_MAX_HEAD_BYTES + 65536 + on1);
    size_t got = 0;
    tern_ws_event_t ev;
    while (tern_ws_poll_event(ws, &ev))
        got += ev.type == TERN_WS_EV_MESSAGE && ev.u.message.len == 10;
    eq_int(got, fed);
    eq_int(tern_ws_handle_input(ws, now, one, on1), 0);
    tern_ws_free(ws);
}

/* ------------------------------------------------------------------------------------------ */
/* close handshake                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void test_close_handshake(void)
{
    tern_ws_t *c, *s;
    evlog_t *lc = calloc(1, sizeof(*lc)), *ls = calloc(1, sizeof(*ls));
    /* client starts */
    open_pair(NULL, NULL, &c, lc, &s, ls);
    eq_int(log_count(lc, TERN_WS_EV_OPEN), 1);
    eq_str(log_last(lc, TERN_WS_EV_OPEN)->target, "/ws/room1?x=1");
    eq_int(tern_ws_close(c, now, 1000, "done"), 0);
    eq_int(tern_ws_state(c), TERN_WS_STATE_CLOSING);
    eq_int(tern_ws_send_text(c, now, "x", 1), TERN_ERR_INVALID_STATE);
    eq_int(tern_ws_close(c, now, 1001, NULL), 0); /* no-op */
    eq_int(tern_ws_next_deadline(c), now + TERN_WS_DEFAULT_CLOSE_TIMEOUT_US);
    pump(c, lc, s, ls, 0);
    const rec_t *rc = log_last(lc, TERN_WS_EV_CLOSE), *rs = log_last(ls, TERN_WS_EV_CLOSE);
    ok(rs && rs->cause == TERN_WS_CAUSE_CLEAN && rs->by_peer && rs->code == 1000 &&
       rs->sent_code == 1000 && strcmp(rs->reason, "done") == 0);
    ok(rc && rc->cause == TERN_WS_CAUSE_CLEAN && !rc->by_peer && rc->code == 1000 &&
       rc->sent_code == 1000 && strcmp(rc->reason, "") == 0);
    eq_int(tern_ws_state(c), TERN_WS_STATE_CLOSED);
    eq_int(tern_ws_state(s), TERN_WS_STATE_CLOSED);
    eq_int(tern_ws_next_deadline(c), TERN_TIME_NEVER);
    eq_int(log_count(lc, TERN_WS_EV_CLOSE), 1);
    eq_int(log_count(ls, TERN_WS_EV_CLOSE), 1);
    tern_ws_free(c);
    tern_ws_free(s);
    log_clear(lc);
    log_clear(ls);

    /* server starts, with a policy code (room-full); the client still receives data sent
     * before the close; a close without code is echoed without code */
    open_pair(NULL, NULL, &c, lc, &s, ls);
    eq_int(tern_ws_send_text(s, now, "last words", 10), 0);
    eq_int(tern_ws_close(s, now, 1008, "room-full"), 0);
    pump(c, lc, s, ls, 7);
    ok(lc->n >= 3 && lc->r[1].type == TERN_WS_EV_MESSAGE && lc->r[1].len == 10);
    rc = log_last(lc, TERN_WS_EV_CLOSE);
    ok(rc && rc->by_peer && rc->code == 1008 && strcmp(rc->reason, "room-full") == 0);
    rs = log_last(ls, TERN_WS_EV_CLOSE);
    ok(rs && rs->cause == TERN_WS_CAUSE_CLEAN && !rs->by_peer && rs->code == 1008);
    tern_ws_free(c);
    tern_ws_free(s);
    log_clear(lc);
    log_clear(ls);

    open_pair(NULL, NULL, &c, lc, &s, ls);
    eq_int(tern_ws_close(c, now, 0, NULL), 0);
    pump(c, lc, s, ls, 0);
    rs = log_last(ls, TERN_WS_EV_CLOSE);
    ok(rs && rs->code == TERN_WS_CLOSE_NO_STATUS && rs->sent_code == 0);
    rc = log_last(lc, TERN_WS_EV_CLOSE);
    ok(rc && rc->code == TERN_WS_CLOSE_NO_STATUS && rc->cause == TERN_WS_CAUSE_CLEAN);
    tern_ws_free(c);
    tern_ws_free(s);
    log_clear(lc);
    log_clear(ls);

    /* both close at once: each gets the other's close and ends cleanly */
    open_pair(NULL, NULL, &c, lc, &s, ls);
    eq_int(tern_ws_close(c, now, 1001, NULL), 0);
    eq_int(tern_ws_close(s, now, 1000, NULL), 0);
    pump(c, lc, s, ls, 0);
    rc = log_last(lc, TERN_WS_EV_CLOSE);
    rs = log_last(ls, TERN_WS_EV_CLOSE);
    ok(rc && rc->cause == TERN_WS_CAUSE_CLEAN && !rc->by_peer && rc->code == 1000 &&
       rc->sent_code == 1001);
    ok(rs && rs->cause == TERN_WS_CAUSE_CLEAN && !rs->by_peer && rs->code == 1001 &&
       rs->sent_code == 1000);
    tern_ws_free(c);
    tern_ws_free(s);
    log_clear(lc);
    log_clear(ls);

    /* bad arguments to close */
    open_pair(NULL, NULL, &c, lc, &s, ls);
    char long_reason[200];
    memset(long_reason, 'r', sizeof(long_reason));
    long_reason[124] = 0;
    eq_int(tern_ws_close(c, now, 1000, long_reason), TERN_ERR_INVALID_ARG);
    long_reason[123] = 0;
    eq_int(tern_ws_close(c, now, 1005, NULL), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_close(c, now, 999, NULL), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_close(c, now, 0, "why"), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_close(c, now, 1000, "\xff"), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_state(c), TERN_WS_STATE_OPEN);
    eq_int(tern_ws_close(c, now, 4000, long_reason), 0); /* 123 bytes: the most */
    pump(c, lc, s, ls, 0);
    rs = log_last(ls, TERN_WS_EV_CLOSE);
    ok(rs && rs->code == 4000 && strlen(rs->reason) == 123);
    tern_ws_free(c);
    tern_ws_free(s);
    log_clear(lc);
    log_clear(ls);

    /* input after the close is dropped */
    tern_ws_t *ws = open_server(NULL);
    uint8_t f[64];
    size_t n = make_frame(f, 0x88, "\x03\xe8", 2, true);
    n += make_frame(f + n, 0x81, "after", 5, true);
    feed(ws, f, n, ls);
    eq_int(ls->n, 1);
    eq_int(ls->r[0].type, TERN_WS_EV_CLOSE);
    tern_ws_stats_t st;
    tern_ws_get_stats(ws, &st);
    eq_int(st.input_dropped, 11);
    log_clear(ls);
    tern_ws_free(ws);

    /* closing while connecting ends without a frame */
    ws = new_server(NULL);
    eq_int(tern_ws_close(ws, now, 1000, NULL), 0);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CLOSED);
    drain_events(ws, ls);
    ok(ls->n == 1 && ls->r[0].cause == TERN_WS_CAUSE_CLEAN && ls->r[0].sent_code == 0);
    ok(!tern_ws_poll_output(ws, &(const uint8_t *){NULL}, &(size_t){0}));
    log_clear(ls);
    tern_ws_free(ws);
    free(lc);
    free(ls);
}

static void test_eof(void)
{
    evlog_t *l = calloc(1, sizeof(*l));
    tern_ws_t *ws = open_server(NULL);
    uint8_t f[64];
    size_t n = make_frame(f, 0x81, "x", 1, true);
    eq_int(tern_ws_handle_input(ws, now, f, n), 0);
    eq_int(tern_ws_handle_eof(ws, now), 0);
    drain_events(ws, l);
    eq_int(l->n, 2); /* the message, then the end */
    ok(l->r[0].type == TERN_WS_EV_MESSAGE);
    ok(l->r[1].type == TERN_WS_EV_CLOSE && l->r[1].cause == TERN_WS_CAUSE_EOF &&
       l->r[1].code == TERN_WS_CLOSE_ABNORMAL);
    eq_int(tern_ws_handle_eof(ws, now), 0); /* twice: nothing more */
    drain_events(ws, l);
    eq_int(l->n, 2);
    log_clear(l);
    tern_ws_free(ws);
    /* EOF in the middle of the request */
    ws = new_server(NULL);
    eq_int(tern_ws_handle_input(ws, now, (const uint8_t *)"GET / HT", 8), 0);
    eq_int(tern_ws_handle_eof(ws, now), 0);
    drain_events(ws, l);
    ok(l->n == 1 && l->r[0].cause == TERN_WS_CAUSE_EOF);
    log_clear(l);
    tern_ws_free(ws);
    free(l);
}

/* ------------------------------------------------------------------------------------------ */
/* timers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void test_handshake_timeout(void)
{
    evlog_t *l = calloc(1, sizeof(*l));
    tern_time_t t0 = now;
    /* no request at all */
    tern_ws_t *ws = new_server(NULL);
    tern_time_t dl = tern_ws_next_deadline(ws);
    eq_int(dl, t0 + 10000000);
    eq_int(tern_ws_handle_timeout(ws, dl - 1), 0); /* early: nothing */
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CONNECTING);
    eq_int(tern_ws_handle_timeout(ws, dl), 0);
    drain_events(ws, l);
    ok(l->n == 1 && l->r[0].cause == TERN_WS_CAUSE_HANDSHAKE_TIMEOUT);
    ok(!tern_ws_poll_output(ws, &(const uint8_t *){NULL}, &(size_t){0}));
    log_clear(l);
    tern_ws_free(ws);
    /* a slow request: bytes do not move the deadline */
    ws = new_server(NULL);
    for (int i = 0; i < 9; i++)
        eq_int(tern_ws_handle_input(ws, t0 + TERN_SEC(i), (const uint8_t *)"G", 1), 0);
    eq_int(tern_ws_next_deadline(ws), t0 + 10000000);
    eq_int(tern_ws_handle_timeout(ws, t0 + 10000000), 0);
    eq_int(tern_ws_state(ws), TERN_WS_STATE_CLOSED);
    tern_ws_free(ws);
    /* a request that the user never decides on */
    ws = new_server(NULL);
    eq_int(tern_ws_handle_input(ws, t0, (const uint8_t *)RFC_REQUEST, strlen(RFC_REQUEST)), 0);
    drain_events(ws, l);
    eq_int(tern_ws_handle_timeout(ws, t0 + 10000000), 0);
    drain_events(ws, l);
    ok(l->n == 2 && l->r[1].cause == TERN_WS_CAUSE_HANDSHAKE_TIMEOUT);
    log_clear(l);
    tern_ws_free(ws);
    /* a configured timeout, and disabled */
    tern_ws_config_t cfg = {.handshake_timeout_us = 500};
    ws = new_server(&cfg);
    eq_int(tern_ws_next_deadline(ws), t0 + 500);
    tern_ws_free(ws);
    cfg.handshake_timeout_us = TERN_TIME_NEVER;
    ws = new_server(&cfg);
    eq_int(tern_ws_next_deadline(ws), TERN_TIME_NEVER);
    tern_ws_free(ws);
    /* a client whose server never answers */
    tern_ws_config_t cc = {.role = TERN_WS_ROLE_CLIENT, .host = "h"};
    eq_int(tern_ws_new(&ctx, &cc, t0, &ws), 0);
    eq_int(tern_ws_handle_timeout(ws, t0 + 10000000), 0);
    drain_events(ws, l);
    ok(l->n == 1 && l->r[0].cause == TERN_WS_CAUSE_HANDSHAKE_TIMEOUT);
    log_clear(l);
    tern_ws_free(ws);
    free(l);
}

static void test_keepalive(void)
{
    tern_time_t t0 = now;
    tern_ws_config_t cfg = {.ping_interval_us = TERN_SEC(10), .idle_timeout_us = TERN_SEC(30)};
    evlog_t *l = calloc(1, sizeof(*l));
    /* a silent peer: pings at 10 s, 20 s, then the end at 30 s */
    tern_ws_t *ws = open_server(&cfg);
    eq_int(tern_ws_next_deadline(ws), t0 + TERN_SEC(10));
    eq_int(tern_ws_handle_timeout(ws, t0 + TERN_SEC(10)), 0);
    uint8_t out[64];
    size_t n = take_output(ws, out, sizeof(out));
    ok(n == 2 && out[0] == 0x89 && out[1] == 0);
    eq_int(tern_ws_next_deadline(ws), t0 + TERN_SEC(20));
    eq_int(tern_ws_handle_timeout(ws, t0 + TERN_SEC(20)), 0);
    eq_int(take_output(ws, out, sizeof(out)), 2);
    eq_int(tern_ws_next_deadline(ws), t0 + TERN_SEC(30));
    eq_int(tern_ws_handle_timeout(ws, t0 + TERN_SEC(30)), 0);
    drain_events(ws, l);
    ok(l->n == 1 && l->r[0].cause == TERN_WS_CAUSE_IDLE_TIMEOUT &&
       l->r[0].code == TERN_WS_CLOSE_ABNORMAL);
    eq_int(tern_ws_next_deadline(ws), TERN_TIME_NEVER);
    tern_ws_stats_t st;
    tern_ws_get_stats(ws, &st);
    eq_int(st.pings_sent, 2);
    log_clear(l);
    tern_ws_free(ws);

    /* a peer that answers: never times out; any input counts as life */
    tern_ws_t *c, *s;
    evlog_t *lc = calloc(1, sizeof(*lc));
    tern_ws_config_t ccfg = {.ping_interval_us = TERN_TIME_NEVER,
                             .idle_timeout_us = TERN_TIME_NEVER};
    open_pair(&ccfg, &cfg, &c, lc, &s, l);
    eq_int(tern_ws_next_deadline(c), TERN_TIME_NEVER);
    tern_time_t t = now;
    for (int i = 0; i < 50; i++) {
        t = tern_ws_next_deadline(s);
        ok(t != TERN_TIME_NEVER);
        now = t;
        eq_int(tern_ws_handle_timeout(s, now), 0);
        pump(c, lc, s, l, 0);
    }
    eq_int(tern_ws_state(s), TERN_WS_STATE_OPEN);
    eq_int(now, t0 + TERN_SEC(500));
    tern_ws_get_stats(s, &st);
    eq_int(st.pings_sent, 50);
    eq_int(st.pongs_in, 50);
    /* the client talks every 5 s: no ping is needed at all */
    tern_ws_get_stats(s, &st);
    uint64_t pings = st.pings_sent;
    for (int i = 0; i < 20; i++) {
        now += TERN_SEC(5);
        eq_int(tern_ws_handle_timeout(s, now), 0);
        eq_int(tern_ws_send_text(c, now, "hi", 2), 0);
        pump(c, lc, s, l, 0);
    }
    tern_ws_get_stats(s, &st);
    eq_int(st.pings_sent, pings);
    eq_int(tern_ws_state(s), TERN_WS_STATE_OPEN);
    /* an explicit ping counts as one */
    eq_int(tern_ws_ping(c, now, "abc", 3), 0);
    eq_int(tern_ws_ping(c, now, NULL, 126), TERN_ERR_INVALID_ARG);
    pump(c, lc, s, l, 0);
    tern_ws_get_stats(c, &st);
    eq_int(st.pongs_in, 1);
    log_clear(lc);
    log_clear(l);
    tern_ws_free(c);
    tern_ws_free(s);

    /* the close timeout */
    open_pair(NULL, NULL, &c, lc, &s, l);
    t = now;
    eq_int(tern_ws_close(s, now, 1000, NULL), 0);
    discard_output(s); /* the close is lost */
    eq_int(tern_ws_next_deadline(s), t + TERN_WS_DEFAULT_CLOSE_TIMEOUT_US);
    eq_int(tern_ws_handle_timeout(s, t + TERN_WS_DEFAULT_CLOSE_TIMEOUT_US), 0);
    log_clear(l);
    drain_events(s, l);
    ok(l->n == 1 && l->r[0].cause == TERN_WS_CAUSE_CLOSE_TIMEOUT && l->r[0].sent_code == 1000);
    log_clear(lc);
    log_clear(l);
    tern_ws_free(c);
    tern_ws_free(s);

    /* time never runs backwards inside */
    ws = open_server(&cfg);
    tern_time_t before = tern_ws_next_deadline(ws);
    eq_int(tern_ws_handle_timeout(ws, now - TERN_SEC(100)), 0);
    eq_int(tern_ws_handle_input(ws, now - TERN_SEC(100), NULL, 0), 0);
    eq_int(tern_ws_next_deadline(ws), before);
    tern_ws_free(ws);
    free(lc);
    free(l);
    now = t0;
}

/* ------------------------------------------------------------------------------------------ */
/* output bounds, client and server in memory                                                 */
/* ------------------------------------------------------------------------------------------ */

static void test_output_limit(void)
{
    tern_ws_config_t cfg = {.max_output_bytes = 1000};
    tern_ws_t *ws = open_server(&cfg);
    static uint8_t data[2000];
    eq_int(tern_ws_send_binary(ws, now, data, 999), TERN_ERR_TOO_LARGE); /* 4-byte header */
    eq_int(tern_ws_send_binary(ws, now, data, 996), 0);
    eq_int(tern_ws_buffered_amount(ws), 1000);
    eq_int(tern_ws_send_binary(ws, now, data, 0), TERN_ERR_AGAIN);
    /* the socket takes 300 bytes */
    const uint8_t *p;
    size_t len;
    ok(tern_ws_poll_output(ws, &p, &len) && len == 1000);
    tern_ws_consume_output(ws, 300);
    eq_int(tern_ws_buffered_amount(ws), 700);
    eq_int(tern_ws_send_binary(ws, now, data, 297), TERN_ERR_AGAIN);
    eq_int(tern_ws_send_binary(ws, now, data, 296), 0); /* 4 + 296 */
    eq_int(tern_ws_buffered_amount(ws), 1000);
    /* control frames still go: a ping is answered past the limit once, then not */
    uint8_t f[64];
    size_t n = make_frame(f, 0x89, "a", 1, true);
    evlog_t *l = calloc(1, sizeof(*l));
    feed(ws, f, n, l);
    eq_int(tern_ws_buffered_amount(ws), 1000);
    tern_ws_consume_output(ws, 1);
    feed(ws, f, n, l);
    eq_int(tern_ws_buffered_amount(ws), 1002);
    for (int i = 0; i < 1000; i++)
        feed(ws, f, n, l);
    eq_int(tern_ws_buffered_amount(ws), 1002);
    /* close goes past the limit too */
    eq_int(tern_ws_close(ws, now, 1000, "x"), 0);
    eq_int(tern_ws_buffered_amount(ws), 1002 + 2 + 3);
    /* consuming more than there is takes what there is */
    tern_ws_consume_output(ws, 1u << 30);
    eq_int(tern_ws_buffered_amount(ws), 0);
    ok(!tern_ws_poll_output(ws, &p, &len) && len == 0);
    log_clear(l);
    free(l);
    tern_ws_free(ws);

    /* sending needs OPEN; text must be UTF-8 */
    ws = open_server(NULL);
    eq_int(tern_ws_send_text(ws, now, "\xc3", 1), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_send_text(ws, now, NULL, 1), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_send_binary(ws, now, NULL, 1), TERN_ERR_INVALID_ARG);
    eq_int(tern_ws_send_text(ws, now, NULL, 0), 0);
    tern_ws_free(ws);
    ws = new_server(NULL);
    eq_int(tern_ws_send_binary(ws, now, "x", 1), TERN_ERR_INVALID_STATE);
    eq_int(tern_ws_ping(ws, now, "x", 1), TERN_ERR_INVALID_STATE);
    tern_ws_free(ws);
}

static void test_pair(void)
{
    tern_ws_t *c, *s;
    evlog_t *lc = calloc(1, sizeof(*lc)), *ls = calloc(1, sizeof(*ls));
    tern_ws_config_t cfg = {.max_output_bytes = 1 << 20};
    tern_ws_config_t ccfg = {.max_output_bytes = 1 << 20, .protocol = "tern"};
    open_pair(&ccfg, &cfg, &c, lc, &s, ls);
    eq_str(log_last(lc, TERN_WS_EV_OPEN)->protocol, "tern");
    eq_str(log_last(ls, TERN_WS_EV_OPEN)->protocol, "tern");
    eq_str(log_last(ls, TERN_WS_EV_OPEN)->target, "/ws/room1?x=1");
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536};
    static uint8_t big[65536];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 3);
    static char text[65536];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + i % 26);
    size_t chunks[] = {0, 1, 1000};
    for (size_t k = 0; k < TERN_ARRAY_LEN(chunks); k++) {
        for (size_t i = 0; i < TERN_ARRAY_LEN(sizes); i++) {
            if (chunks[k] == 1 && sizes[i] > 1000)
                continue; /* byte by byte is slow for 64 KiB */
            log_clear(lc);
            log_clear(ls);
            eq_int(tern_ws_send_binary(c, now, big, sizes[i]), 0);
            eq_int(tern_ws_send_text(s, now, text, sizes[i]), 0);
            pump(c, lc, s, ls, chunks[k]);
            ok(ls->n == 1 && ls->r[0].len == sizes[i] && !ls->r[0].is_text &&
               memcmp(ls->r[0].data, big, sizes[i]) == 0);
            ok(lc->n == 1 && lc->r[0].len == sizes[i] && lc->r[0].is_text &&
               memcmp(lc->r[0].data, text, sizes[i]) == 0);
        }
    }
    /* over the default 64 KiB limit: 1009 */
    log_clear(lc);
    log_clear(ls);
    static uint8_t bigger[65537];
    eq_int(tern_ws_send_binary(c, now, bigger, sizeof(bigger)), 0);
    pump(c, lc, s, ls, 0);
    const rec_t *r = log_last(ls, TERN_WS_EV_CLOSE);
    ok(r && r->cause == TERN_WS_CAUSE_PROTOCOL_ERROR && r->sent_code == 1009);
    r = log_last(lc, TERN_WS_EV_CLOSE);
    ok(r && r->cause == TERN_WS_CAUSE_CLEAN && r->by_peer && r->code == 1009);
    tern_ws_stats_t st;
    tern_ws_get_stats(c, &st);
    eq_int(st.messages_out, 3 * TERN_ARRAY_LEN(sizes) - 2 + 1);
    ok(st.bytes_in > 65536);
    log_clear(lc);
    log_clear(ls);
    free(lc);
    free(ls);
    tern_ws_free(c);
    tern_ws_free(s);
    tern_ws_free(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* allocation failures                                                                        */
/* ------------------------------------------------------------------------------------------ */

static long fail_at, alloc_count;

static bool fail_now(void)
{
    return ++alloc_count == fail_at;
}

static void *fm_malloc(size_t n, void *user)
{
    (void)user;
    return fail_now() ? NULL : malloc(n);
}

static void *fm_calloc(size_t n, size_t size, void *user)
{
    (void)user;
    return fail_now() ? NULL : calloc(n, size);
}

static void *fm_realloc(void *p, size_t n, void *user)
{
    (void)user;
    return fail_now() ? NULL : realloc(p, n);
}

static void fm_free(void *p, void *user)
{
    (void)user;
    free(p);
}

/* A client and a server's whole life, with allocation number fail_at failing. */
static void failmalloc_scenario(tern_ctx_t *fctx, evlog_t *lc, evlog_t *ls)
{
    tern_ws_t *c = NULL, *s = NULL;
    tern_ws_config_t cc = {.role = TERN_WS_ROLE_CLIENT, .host = "h", .protocol = "p"};
    if (tern_ws_new(fctx, &cc, now, &c) < 0 || tern_ws_new(fctx, NULL, now, &s) < 0)
        goto out;
    pump(c, lc, s, ls, 0);
    if (tern_ws_accept(s, now, "p") < 0)
        goto out;
    pump(c, lc, s, ls, 0);
    static uint8_t data[10000];
    for (int i = 0; i < 4; i++) {
        tern_ws_send_binary(c, now, data, sizeof(data));
        tern_ws_send_text(s, now, "hello", 5);
        tern_ws_ping(c, now, "x", 1);
        pump(c, lc, s, ls, 3000);
    }
    /* Large frames leave empty buffers that are given back, so the pong, the close echo and
     * the close of a failure below each need a new allocation. */
    tern_ws_send_binary(s, now, data, 5000);
    pump(c, lc, s, ls, 0);
    tern_ws_ping(c, now, "y", 1);
    pump(c, lc, s, ls, 0);
    tern_ws_send_binary(s, now, data, 5000);
    pump(c, lc, s, ls, 0);
    tern_ws_close(s, now, 1000, "bye");
    pump(c, lc, s, ls, 0);
    if (fail_at == 0) {
        eq_int(log_count(ls, TERN_WS_EV_MESSAGE), 4);
        eq_int(log_count(lc, TERN_WS_EV_MESSAGE), 6);
        eq_int(log_count(lc, TERN_WS_EV_CLOSE), 1);
    }
    ok(log_count(lc, TERN_WS_EV_CLOSE) <= 1 && log_count(ls, TERN_WS_EV_CLOSE) <= 1);
    log_clear(ls);
    tern_ws_free(s);
    s = NULL;
    if (tern_ws_new(fctx, NULL, now, &s) < 0)
        goto out;
    const char *req = RFC_REQUEST;
    tern_ws_handle_input(s, now, (const uint8_t *)req, strlen(req));
    drain_events(s, ls);
    if (tern_ws_accept(s, now, NULL) < 0)
        goto out;
    tern_ws_send_binary(s, now, data, 5000);
    discard_output(s);
    uint8_t f[16];
    size_t fn = make_frame(f, 0x81, "x", 1, false); /* unmasked: fails with 1002 */
    tern_ws_handle_input(s, now, f, fn);
    drain_events(s, ls);
    if (fail_at == 0)
        eq_int(output_close_code(s), 1002);
    /* whatever failed, each endpoint reported its end at most once */
    ok(log_count(ls, TERN_WS_EV_CLOSE) <= 1);
out:
    tern_ws_free(c);
    tern_ws_free(s);
    log_clear(lc);
    log_clear(ls);
}

static void test_failmalloc(void)
{
    tern_mem_t mem = {NULL, fm_malloc, fm_calloc, fm_realloc, fm_free};
    static uint64_t seed = 5;
    tern_ctx_config_t cfg = {
        .mem = &mem, .random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
    tern_ctx_t fctx;
    memset(&fctx, 0, sizeof fctx);
    eq_int(tern_ctx_init_base(&fctx, &cfg), 0);
    evlog_t *lc = calloc(1, sizeof(*lc)), *ls = calloc(1, sizeof(*ls));
    fail_at = 0;
    alloc_count = 0;
    failmalloc_scenario(&fctx, lc, ls);
    long reference = alloc_count;
    printf("# %ld allocations in the reference run\n", reference);
    long runs = 0;
    pump_tolerant = true;
    for (fail_at = 1; fail_at < 10000; fail_at++) {
        alloc_count = 0;
        failmalloc_scenario(&fctx, lc, ls);
        runs++;
        if (alloc_count < fail_at)
            break;
    }
    ok(runs > 10);
    printf("# %ld allocation failure points\n", runs - 1);
    fail_at = 0;
    pump_tolerant = false;
    free(lc);
    free(ls);
}

int main(void)
{
    static uint64_t seed = 42;
    tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
    tern_ctx_init_base(&ctx, &cfg);

    subtest("accept key", test_accept_key);
    subtest("close codes", test_close_codes);
    subtest("frame examples", test_frame_examples);
    subtest("utf8", test_utf8);
    subtest("http request", test_http_request);
    subtest("http limits", test_http_limits);
    subtest("http upgrade checks", test_http_upgrade_checks);
    subtest("http response", test_http_response);
    subtest("http write", test_http_write);
    subtest("server handshake", test_server_handshake);
    subtest("browser requests", test_browser_requests);
    subtest("server pipelined frames", test_server_pipelined_frames);
    subtest("server plain http", test_server_plain_http);
    subtest("server bad http", test_server_bad_http);
    subtest("client handshake", test_client_handshake);
    subtest("client bad responses", test_client_bad_responses);
    subtest("violations", test_violations);
    subtest("message limit", test_message_limit);
    subtest("fragments and control", test_fragments_and_control);
    subtest("many messages in one read", test_many_messages_one_read);
    subtest("close handshake", test_close_handshake);
    subtest("eof", test_eof);
    subtest("handshake timeout", test_handshake_timeout);
    subtest("keepalive", test_keepalive);
    subtest("output limit", test_output_limit);
    subtest("client and server in memory", test_pair);
    subtest("failmalloc", test_failmalloc);
    guard_free(&last_guard);
    return check_done();
}
