/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 heads (RFC 9112): a bounded parser of request and response heads with the
 * picohttpparser contract (head length / need more / error), header lookup and #token lists
 * (RFC 9110 §5.6.1), the classification of a request as a WebSocket opening handshake
 * (RFC 6455 §4.2.1) and a writer of plain responses. The parser never reads past `len` and
 * never writes to its input; every pointer it returns points into the input.
 */
#include "ws/ws.h"

#include <string.h>

/* Empty lines tolerated before a request line (RFC 9112 §2.2 asks for "at least one"). */
#define HTTP_MAX_LEADING_EMPTY_LINES 4
/* Longest method: the registered ones have at most 17 characters ("UPDATEREDIRECTREF"). */
#define HTTP_MAX_METHOD 32

/* RFC 9110 §5.6.2: tchar. */
static bool is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 9110 §5.5: field-vchar / obs-text, SP and HTAB. */
static bool is_field_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* A byte no line of a head may hold anywhere: controls other than HTAB, and DEL. CR is
 * checked where a line ends. */
static bool is_forbidden(uint8_t c)
{
    return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool equal_nocase(const char *a, size_t a_len, const char *b)
{
    size_t b_len = strlen(b);
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

/* A cursor over the head, handing out one line at a time. */
typedef struct head_reader {
    const char *base;
    size_t len;
    size_t pos;
} head_reader_t;

/*
 * Take the next line (without its CRLF or LF). Returns 1 with the line, 0 if the line is not
 * complete yet, or a negative error: a bare CR or a forbidden byte (TERN_ERR_PARSE, found
 * even in an incomplete line), a line over TERN_HTTP_MAX_LINE or a head over
 * TERN_HTTP_MAX_HEAD_BYTES (TERN_ERR_TOO_LARGE).
 */
static int next_line(head_reader_t *r, const char **line, size_t *line_len)
{
    const char *start = r->base + r->pos;
    /* Never look past the largest head: a head that long is refused anyway. */
    size_t limit = TERN_MIN(r->len, (size_t)TERN_HTTP_MAX_HEAD_BYTES);
    size_t avail = r->pos < limit ? limit - r->pos : 0;
    size_t i = 0;
    for (; i < avail; i++) {
        uint8_t c = (uint8_t)start[i];
        if (c == '\n')
            break;
        /* Errors are found in the order of the input, so that a head parsed whole and one
         * parsed as it arrives (the endpoint) get the same verdict. */
        if (i > TERN_HTTP_MAX_LINE || (i == TERN_HTTP_MAX_LINE && c != '\r'))
            return TERN_ERR_TOO_LARGE;
        if (is_forbidden(c))
            return TERN_ERR_PARSE;
        /* RFC 9112 §2.2: a CR not followed by LF is invalid (we reject it). */
        if (c == '\r' && i + 1 < avail && start[i + 1] != '\n')
            return TERN_ERR_PARSE;
    }
    size_t content = i;
    if (content > 0 && start[content - 1] == '\r')
        content--;
    if (i == avail) {
        if (r->len >= TERN_HTTP_MAX_HEAD_BYTES)
            return TERN_ERR_TOO_LARGE;
        return 0;
    }
    *line = start;
    *line_len = content;
    r->pos += i + 1;
    return 1;
}

/* "HTTP/1.x": returns the minor version, or -1. */
static int parse_version(const char *p, size_t n)
{
    if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.')
        return -1;
    if (p[5] != '1' || p[7] < '0' || p[7] > '9')
        return -1; /* HTTP/2 and later never come as text; HTTP/0.9 has no version */
    return p[7] - '0';
}

/* name ":" OWS value OWS (RFC 9112 §5). */
static int parse_header_line(const char *line, size_t n, tern_http_header_t *h)
{
    size_t i = 0;
    while (i < n && is_tchar((uint8_t)line[i]))
        i++;
    /* RFC 9112 §5.1: no whitespace between the name and the colon; a line starting with
     * whitespace is obs-fold, which we reject (§5.2). */
    if (i == 0 || i == n || line[i] != ':')
        return TERN_ERR_PARSE;
    h->name = line;
    h->name_len = i;
    i++;
    while (i < n && is_ows(line[i]))
        i++;
    size_t end = n;
    while (end > i && is_ows(line[end - 1]))
        end--;
    for (size_t k = i; k < end; k++)
        if (!is_field_char((uint8_t)line[k]))
            return TERN_ERR_PARSE;
    h->value = line + i;
    h->value_len = end - i;
    return TERN_OK;
}

/* Header lines up to the empty line. Returns the head length, 0 (need more) or an error. */
static int parse_headers(head_reader_t *r, tern_http_header_t *headers, size_t *num_headers)
{
    *num_headers = 0;
    for (;;) {
        const char *line;
        size_t n;
        int rc = next_line(r, &line, &n);
        if (rc <= 0)
            return rc;
        if (n == 0)
            return (int)r->pos;
        if (*num_headers == TERN_HTTP_MAX_HEADERS)
            return TERN_ERR_TOO_LARGE;
        rc = parse_header_line(line, n, &headers[*num_headers]);
        if (rc < 0)
            return rc;
        (*num_headers)++;
    }
}

static int parse_request_line(const char *line, size_t n, tern_http_request_t *out)
{
    size_t i = 0;
    while (i < n && is_tchar((uint8_t)line[i]))
        i++;
    if (i == 0 || i == n || line[i] != ' ' || i > HTTP_MAX_METHOD)
        return TERN_ERR_PARSE;
    out->method = line;
    out->method_len = i;
    size_t t = ++i;
    /* request-target: visible ASCII only (RFC 3986 characters, RFC 9112 §3.2). */
    while (i < n && line[i] > 0x20 && line[i] < 0x7f)
        i++;
    if (i == t || i == n || line[i] != ' ')
        return TERN_ERR_PARSE;
    out->target = line + t;
    out->target_len = i - t;
    out->minor_version = parse_version(line + i + 1, n - i - 1);
    if (out->minor_version < 0)
        return TERN_ERR_PARSE;
    const char *q = memchr(out->target, '?', out->target_len);
    out->path = out->target;
    out->path_len = q ? (size_t)(q - out->target) : out->target_len;
    out->query = q ? q + 1 : NULL;
    out->query_len = q ? out->target_len - out->path_len - 1 : 0;
    return TERN_OK;
}

bool tern_http_has_token(const char *value, size_t value_len, const char *token)
{
    size_t i = 0;
    while (i < value_len) {
        size_t start = i;
        while (i < value_len && value[i] != ',')
            i++;
        size_t end = i;
        while (start < end && is_ows(value[start]))
            start++;
        while (end > start && is_ows(value[end - 1]))
            end--;
        if (equal_nocase(value + start, end - start, token))
            return true;
        i++; /* past the comma */
    }
    return false;
}

const tern_http_header_t *tern_http_find_header(const tern_http_header_t *headers, size_t n,
                                                const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (equal_nocase(headers[i].name, headers[i].name_len, name))
            return &headers[i];
    return NULL;
}

static size_t count_fields(const tern_http_header_t *headers, size_t n, const char *name)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (equal_nocase(headers[i].name, headers[i].name_len, name))
            count++;
    return count;
}

/* A list header may be split over several field lines (RFC 9110 §5.3). */
static bool has_token_in_any(const tern_http_header_t *headers, size_t n, const char *name,
                             const char *token)
{
    for (size_t i = 0; i < n; i++)
        if (equal_nocase(headers[i].name, headers[i].name_len, name) &&
            tern_http_has_token(headers[i].value, headers[i].value_len, token))
            return true;
    return false;
}

/* RFC 6455 §4.2.1: what the server checks in the client's opening handshake. */
static tern_ws_upgrade_t classify_upgrade(tern_http_request_t *req)
{
    const tern_http_header_t *h = req->headers;
    size_t n = req->num_headers;
    if (!has_token_in_any(h, n, "Upgrade", "websocket"))
        return TERN_WS_UPGRADE_NONE;
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
        return TERN_WS_UPGRADE_INVALID; /* item 1: GET, HTTP/1.1 or higher */
    if (req->minor_version < 1)
        return TERN_WS_UPGRADE_INVALID;
    const tern_http_header_t *host = tern_http_find_header(h, n, "Host");
    if (!host || host->value_len == 0 || count_fields(h, n, "Host") != 1)
        return TERN_WS_UPGRADE_INVALID; /* item 2 (and RFC 9112 §3.2: exactly one Host) */
    if (!has_token_in_any(h, n, "Connection", "Upgrade"))
        return TERN_WS_UPGRADE_INVALID; /* item 4 */
    const tern_http_header_t *key = tern_http_find_header(h, n, "Sec-WebSocket-Key");
    if (!key || count_fields(h, n, "Sec-WebSocket-Key") != 1 ||
        !tern_ws_key_valid(key->value, key->value_len))
        return TERN_WS_UPGRADE_INVALID; /* item 5 */
    if (tern_ws_accept_key(key->value, key->value_len, req->accept) < 0)
        return TERN_WS_UPGRADE_INVALID;
    const tern_http_header_t *version = tern_http_find_header(h, n, "Sec-WebSocket-Version");
    if (!version)
        return TERN_WS_UPGRADE_INVALID; /* item 6 */
    if (count_fields(h, n, "Sec-WebSocket-Version") != 1 || version->value_len != 2 ||
        memcmp(version->value, "13", 2) != 0)
        return TERN_WS_UPGRADE_BAD_VERSION; /* §4.4: answer 426 with the version we speak */
    return TERN_WS_UPGRADE_VALID;
}

/*
 * The start of a request line is checked before the line is complete: the method is a token
 * followed by a space (RFC 9112 §3). This turns away a TLS ClientHello or WebSocket frames
 * sent to a plain port at once, instead of after 8 KiB, and it comes first, as the method
 * comes first in the input.
 */
static int check_method(const char *p, size_t n)
{
    n = TERN_MIN(n, (size_t)HTTP_MAX_METHOD + 1);
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == ' ' || c == '\r' || c == '\n')
            return TERN_OK;
        if (!is_tchar((uint8_t)c) || i == HTTP_MAX_METHOD)
            return TERN_ERR_PARSE;
    }
    return TERN_OK;
}

int tern_http_parse_request(const uint8_t *data, size_t len, tern_http_request_t *out)
{
    head_reader_t r = {.base = (const char *)data, .len = len, .pos = 0};
    const char *line;
    size_t n;
    int rc;
    int empty = 0;
    for (;;) {
        if (check_method(r.base + r.pos, r.len - r.pos) < 0)
            return TERN_ERR_PARSE;
        rc = next_line(&r, &line, &n);
        if (rc <= 0)
            return rc == 0 ? TERN_ERR_AGAIN : rc;
        if (n > 0)
            break;
        if (++empty > HTTP_MAX_LEADING_EMPTY_LINES)
            return TERN_ERR_PARSE;
    }
    rc = parse_request_line(line, n, out);
    if (rc < 0)
        return rc;
    rc = parse_headers(&r, out->headers, &out->num_headers);
    if (rc <= 0)
        return rc == 0 ? TERN_ERR_AGAIN : rc;
    out->accept[0] = '\0';
    out->upgrade = classify_upgrade(out);
    if (out->upgrade != TERN_WS_UPGRADE_VALID && out->upgrade != TERN_WS_UPGRADE_BAD_VERSION)
        out->accept[0] = '\0';
    return rc;
}

static int parse_status_line(const char *line, size_t n, tern_http_response_t *out)
{
    if (n < 12 || line[8] != ' ')
        return TERN_ERR_PARSE;
    out->minor_version = parse_version(line, 8);
    if (out->minor_version < 0)
        return TERN_ERR_PARSE;
    int status = 0;
    for (size_t i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9')
            return TERN_ERR_PARSE;
        status = status * 10 + (line[i] - '0');
    }
    if (status < 100)
        return TERN_ERR_PARSE;
    out->status = status;
    /* RFC 9112 §4: status-code SP [reason-phrase]; a missing SP is tolerated. */
    if (n > 12 && line[12] != ' ')
        return TERN_ERR_PARSE;
    size_t start = n > 12 ? 13 : 12;
    for (size_t i = start; i < n; i++)
        if (!is_field_char((uint8_t)line[i]))
            return TERN_ERR_PARSE;
    out->reason = line + start;
    out->reason_len = n - start;
    return TERN_OK;
}

int tern_http_parse_response(const uint8_t *data, size_t len, tern_http_response_t *out)
{
    head_reader_t r = {.base = (const char *)data, .len = len, .pos = 0};
    const char *line;
    size_t n;
    /* Even incomplete, a status line must start as "HTTP/1." does (first in the input). */
    if (len && memcmp(data, "HTTP/1.", TERN_MIN(len, (size_t)7)) != 0)
        return TERN_ERR_PARSE;
    int rc = next_line(&r, &line, &n);
    if (rc <= 0)
        return rc == 0 ? TERN_ERR_AGAIN : rc;
    rc = parse_status_line(line, n, out);
    if (rc < 0)
        return rc;
    rc = parse_headers(&r, out->headers, &out->num_headers);
    if (rc <= 0)
        return rc == 0 ? TERN_ERR_AGAIN : rc;
    return rc;
}

const char *tern_http_status_text(int status)
{
    /* RFC 9110 §15, RFC 6585 §5 (431). */
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

static bool field_safe(const tern_http_field_t *f)
{
    if (!f->name || !f->value || !f->name[0])
        return false;
    for (const char *p = f->name; *p; p++)
        if (!is_tchar((uint8_t)*p))
            return false;
    /* No CR or LF: a value must not smuggle in a header or end the head early. */
    for (const char *p = f->value; *p; p++)
        if (!is_field_char((uint8_t)*p))
            return false;
    return true;
}

int tern_http_write_response(tern_wbuf_t *w, int status, const tern_http_field_t *fields,
                             size_t num_fields, const void *body, size_t body_len, bool omit_body)
{
    if (status < 100 || status > 999 || (num_fields && !fields) || (body_len && !body))
        return TERN_ERR_INVALID_ARG;
    for (size_t i = 0; i < num_fields; i++)
        if (!field_safe(&fields[i]))
            return TERN_ERR_INVALID_ARG;
    tern_wbuf_printf(w, "HTTP/1.1 %d %s\r\n", status, tern_http_status_text(status));
    for (size_t i = 0; i < num_fields; i++) {
        tern_wbuf_str(w, fields[i].name);
        tern_wbuf_str(w, ": ");
        tern_wbuf_str(w, fields[i].value);
        tern_wbuf_str(w, "\r\n");
    }
    tern_wbuf_printf(w, "Content-Length: %zu\r\nConnection: close\r\n\r\n", body_len);
    if (!omit_body && body_len)
        tern_wbuf_bytes(w, body, body_len);
    return w->err ? TERN_ERR_NOMEM : TERN_OK;
}
