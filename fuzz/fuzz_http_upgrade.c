/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the HTTP/1.1 head parsers (RFC 9112) and the WebSocket opening handshake (RFC 6455 §4)
 * on both sides.
 *
 * 1. The input is parsed as a request head and as a response head. What parses must lie
 *    inside the input and within the limits; it is written again from its fields (request
 *    line or status line, one field per line) and must parse to the same fields, with the
 *    same upgrade verdict and Sec-WebSocket-Accept. Every shorter prefix of a head that
 *    parsed must ask for more (checked on a few cuts). A response is also rebuilt through
 *    tern_http_write_response from the request's fields.
 * 2. The input is fed to a server endpoint, at once and in 3-byte pieces: on its REQUEST the
 *    harness accepts a valid upgrade and answers anything else with 404; both feedings must
 *    give the same events.
 * 3. The input is fed to a client endpoint as the server's answer (the fixed random source
 *    makes its key, and so the accept value, constant, so seeds can carry a valid 101).
 * Deterministic: no clock, a fixed random source; everything is freed.
 */
#include "ws/ws.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_INPUT 16384 /* twice the largest head */

static tern_ctx_t ctx;

static int fixed_random(void *user, uint8_t *buf, size_t len)
{
    (void)user;
    memset(buf, 0x5a, len);
    return 0;
}

static bool inside(const void *p, size_t n, const uint8_t *data, size_t size)
{
    const uint8_t *b = p;
    return b >= data && n <= size && b - data <= (ptrdiff_t)(size - n);
}

static bool same_span(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static bool same_headers(const tern_http_header_t *a, size_t an, const tern_http_header_t *b,
                         size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (!same_span(a[i].name, a[i].name_len, b[i].name, b[i].name_len) ||
            !same_span(a[i].value, a[i].value_len, b[i].value, b[i].value_len))
            return false;
    return true;
}

static void write_headers(tern_wbuf_t *w, const tern_http_header_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tern_wbuf_bytes(w, h[i].name, h[i].name_len);
        tern_wbuf_str(w, ": ");
        tern_wbuf_bytes(w, h[i].value, h[i].value_len);
        tern_wbuf_str(w, "\r\n");
    }
    tern_wbuf_str(w, "\r\n");
}

static bool grew_past_limits(const tern_http_request_t *req, size_t written)
{
    if (written > TERN_HTTP_MAX_HEAD_BYTES ||
        req->method_len + req->target_len + 10 > TERN_HTTP_MAX_LINE)
        return true;
    for (size_t i = 0; i < req->num_headers; i++)
        if (req->headers[i].name_len + 2 + req->headers[i].value_len > TERN_HTTP_MAX_LINE)
            return true;
    return false;
}

static void check_prefixes(const uint8_t *data, int head, bool is_request)
{
    static tern_http_request_t req;
    static tern_http_response_t res;
    size_t cuts[] = {0, 1, (size_t)head / 2, (size_t)head - 2, (size_t)head - 1};
    for (size_t i = 0; i < TERN_ARRAY_LEN(cuts); i++) {
        size_t cut = cuts[i];
        if (cut >= (size_t)head)
            continue;
        int rc = is_request ? tern_http_parse_request(data, cut, &req)
                            : tern_http_parse_response(data, cut, &res);
        /* a prefix of a good head is never complete; it may only fail by size */
        if (rc >= 0 || (rc != TERN_ERR_AGAIN && rc != TERN_ERR_TOO_LARGE))
            abort();
    }
}

static void check_request(const uint8_t *data, size_t size)
{
    static tern_http_request_t req, again;
    int rc = tern_http_parse_request(data, size, &req);
    if (rc == TERN_ERR_AGAIN || rc == TERN_ERR_PARSE || rc == TERN_ERR_TOO_LARGE)
        return;
    if (rc <= 0 || (size_t)rc > size || rc > TERN_HTTP_MAX_HEAD_BYTES ||
        req.num_headers > TERN_HTTP_MAX_HEADERS ||
        !inside(req.method, req.method_len, data, size) ||
        !inside(req.target, req.target_len, data, size) || req.method_len == 0 ||
        req.target_len == 0 || req.path != req.target ||
        (req.query && req.path_len + 1 + req.query_len != req.target_len))
        abort();
    if ((req.upgrade == TERN_WS_UPGRADE_VALID || req.upgrade == TERN_WS_UPGRADE_BAD_VERSION) !=
        (strlen(req.accept) == TERN_WS_ACCEPT_LEN))
        abort();
    check_prefixes(data, rc, true);

    /* write it again and parse that */
    tern_wbuf_t w;
    tern_wbuf_init(&w, &ctx, NULL, 0);
    tern_wbuf_bytes(&w, req.method, req.method_len);
    tern_wbuf_str(&w, " ");
    tern_wbuf_bytes(&w, req.target, req.target_len);
    tern_wbuf_printf(&w, " HTTP/1.%d\r\n", req.minor_version);
    write_headers(&w, req.headers, req.num_headers);
    if (w.err)
        abort();
    int rc2 = tern_http_parse_request(w.base, w.len, &again);
    /* CRLF line ends and ": " may make the copy longer than a limit the original was under */
    if (rc2 == TERN_ERR_TOO_LARGE && grew_past_limits(&req, w.len)) {
        tern_wbuf_dispose(&w);
        return;
    }
    if (rc2 != (int)w.len ||
        !same_span(req.method, req.method_len, again.method, again.method_len) ||
        !same_span(req.target, req.target_len, again.target, again.target_len) ||
        req.minor_version != again.minor_version || req.upgrade != again.upgrade ||
        strcmp(req.accept, again.accept) != 0 ||
        !same_headers(req.headers, req.num_headers, again.headers, again.num_headers))
        abort();

    /* the same fields through the response writer, then the response parser */
    static tern_http_response_t res;
    tern_http_field_t fields[TERN_HTTP_MAX_HEADERS];
    char *copies[TERN_HTTP_MAX_HEADERS * 2];
    size_t nf = 0;
    for (size_t i = 0; i < req.num_headers && nf < TERN_HTTP_MAX_HEADERS - 2; i++) {
        copies[2 * nf] = tern_strndup(&ctx, req.headers[i].name, req.headers[i].name_len);
        copies[2 * nf + 1] = tern_strndup(&ctx, req.headers[i].value, req.headers[i].value_len);
        fields[nf] = (tern_http_field_t){copies[2 * nf], copies[2 * nf + 1]};
        nf++;
    }
    w.len = 0;
    if (tern_http_write_response(&w, 200, fields, nf, req.target, req.target_len, false) != 0)
        abort();
    rc2 = tern_http_parse_response(w.base, w.len, &res);
    if (rc2 != (int)(w.len - req.target_len) && rc2 != TERN_ERR_TOO_LARGE)
        abort();
    if (rc2 > 0 && (res.status != 200 || res.num_headers != nf + 2 ||
                    !same_headers(req.headers, nf, res.headers, nf)))
        abort();
    for (size_t i = 0; i < 2 * nf; i++)
        tern_free(&ctx, copies[i]);
    tern_wbuf_dispose(&w);
}

static void check_response(const uint8_t *data, size_t size)
{
    static tern_http_response_t res, again;
    int rc = tern_http_parse_response(data, size, &res);
    if (rc == TERN_ERR_AGAIN || rc == TERN_ERR_PARSE || rc == TERN_ERR_TOO_LARGE)
        return;
    if (rc <= 0 || (size_t)rc > size || rc > TERN_HTTP_MAX_HEAD_BYTES || res.status < 100 ||
        res.status > 999 || res.num_headers > TERN_HTTP_MAX_HEADERS ||
        (res.reason_len && !inside(res.reason, res.reason_len, data, size)))
        abort();
    check_prefixes(data, rc, false);
    tern_wbuf_t w;
    tern_wbuf_init(&w, &ctx, NULL, 0);
    tern_wbuf_printf(&w, "HTTP/1.%d %03d ", res.minor_version, res.status);
    tern_wbuf_bytes(&w, res.reason, res.reason_len);
    tern_wbuf_str(&w, "\r\n");
    write_headers(&w, res.headers, res.num_headers);
    if (w.err)
        abort();
    int rc2 = tern_http_parse_response(w.base, w.len, &again);
    if (rc2 != (int)w.len || again.status != res.status ||
        again.minor_version != res.minor_version ||
        !same_span(res.reason, res.reason_len, again.reason, again.reason_len) ||
        !same_headers(res.headers, res.num_headers, again.headers, again.num_headers))
        abort();
    tern_wbuf_dispose(&w);
}

/* Feed a server endpoint in pieces; returns a summary of what happened, for comparison. */
static uint64_t run_server(const uint8_t *data, size_t size, size_t piece)
{
    tern_ws_t *ws = NULL;
    tern_time_t now = 1000000;
    if (tern_ws_new(&ctx, NULL, now, &ws) != TERN_OK)
        abort();
    uint64_t summary = 0;
    for (size_t off = 0; off < size; off += piece) {
        size_t n = TERN_MIN(piece, size - off);
        if (tern_ws_handle_input(ws, now, data + off, n) != TERN_OK)
            abort();
        tern_ws_event_t ev;
        while (tern_ws_poll_event(ws, &ev)) {
            summary = summary * 31 + (uint64_t)ev.type;
            if (ev.type == TERN_WS_EV_REQUEST) {
                const tern_http_request_t *req = ev.u.request.request;
                summary = summary * 31 + (uint64_t)req->upgrade;
                if (req->upgrade == TERN_WS_UPGRADE_VALID) {
                    if (tern_ws_accept(ws, now, NULL) != TERN_OK)
                        abort();
                } else if (tern_ws_respond(ws, now, 404, NULL, 0, "no", 2) != TERN_OK) {
                    abort();
                }
            } else if (ev.type == TERN_WS_EV_CLOSE) {
                summary = summary * 31 + (uint64_t)ev.u.close.cause;
                summary = summary * 31 + (uint64_t)ev.u.close.http_status;
            } else if (ev.type == TERN_WS_EV_MESSAGE) {
                summary = summary * 31 + ev.u.message.len;
            }
        }
        tern_ws_consume_output(ws, tern_ws_buffered_amount(ws));
    }
    summary = summary * 31 + (uint64_t)tern_ws_state(ws);
    tern_ws_free(ws);
    return summary;
}

static void run_client(const uint8_t *data, size_t size)
{
    tern_ws_t *ws = NULL;
    tern_ws_config_t cfg = {.role = TERN_WS_ROLE_CLIENT, .host = "fuzz", .protocol = "chat"};
    if (tern_ws_new(&ctx, &cfg, 1000000, &ws) != TERN_OK)
        abort();
    tern_ws_consume_output(ws, tern_ws_buffered_amount(ws));
    if (tern_ws_handle_input(ws, 1000000, data, size) != TERN_OK)
        abort();
    tern_ws_event_t ev;
    bool closed = false;
    while (tern_ws_poll_event(ws, &ev)) {
        if (closed)
            abort();
        closed = ev.type == TERN_WS_EV_CLOSE;
        if (ev.type == TERN_WS_EV_OPEN && strcmp(ev.u.open.protocol, "chat") != 0 &&
            ev.u.open.protocol[0])
            abort();
        if (ev.type == TERN_WS_EV_MESSAGE && ev.u.message.is_text &&
            !tern_utf8_valid(ev.u.message.data, ev.u.message.len))
            abort();
    }
    tern_ws_free(ws);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    if (!ctx.random_bytes) {
        tern_ctx_config_t cfg = {.random_bytes = fixed_random};
        tern_ctx_init_base(&ctx, &cfg);
    }
    check_request(data, size);
    check_response(data, size);
    if (run_server(data, size, size ? size : 1) != run_server(data, size, 3))
        abort();
    run_client(data, size);
    if (size > 0) {
        /* the first byte picks a token to look for in the rest, as in a Connection header */
        static const char *const tokens[] = {"upgrade", "websocket", "keep-alive", ""};
        (void)tern_http_has_token((const char *)data + 1, size - 1, tokens[data[0] & 3]);
    }
    return 0;
}
