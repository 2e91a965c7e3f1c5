/* SPDX-License-Identifier: MIT */
/*
 * The a=candidate attribute (RFC 8839 §5.1; ICE-TCP's tcptype, RFC 6544 §4.5): a strict parser
 * that accepts what Chromium and Firefox send (mDNS names, upper- or lowercase transport,
 * extension pairs such as generation, ufrag, network-id, network-cost), the matching writer,
 * and the candidate priority formula of RFC 8445 §5.1.2.
 */
#include "ice/ice.h"

#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

/* Type preferences recommended by RFC 8445 §5.1.2.2. */
#define TYPE_PREF_HOST 126
#define TYPE_PREF_PRFLX 110
#define TYPE_PREF_SRFLX 100
#define TYPE_PREF_RELAY 0

/* The candidate line's own tokens never exceed this (a hostname is the longest, 255). */
#define TOKEN_MAX 256

typedef struct cursor {
    const char *p;
    const char *end;
} cursor_t;

typedef struct token {
    const char *p;
    size_t len;
} token_t;

uint32_t tern_ice_priority(tern_ice_cand_type_t type, uint32_t local_pref, uint16_t component)
{
    uint32_t type_pref;
    switch (type) {
    case TERN_ICE_CAND_HOST:
        type_pref = TYPE_PREF_HOST;
        break;
    case TERN_ICE_CAND_PRFLX:
        type_pref = TYPE_PREF_PRFLX;
        break;
    case TERN_ICE_CAND_SRFLX:
        type_pref = TYPE_PREF_SRFLX;
        break;
    case TERN_ICE_CAND_RELAY:
    default:
        type_pref = TYPE_PREF_RELAY;
        break;
    }
    /* RFC 8445 §5.1.2.1; the component is 1..256, so 256 - component fits in 8 bits. */
    uint32_t comp = component >= 1 && component <= 256 ? 256u - component : 0;
    return (type_pref << 24) | ((local_pref & 0xFFFF) << 8) | comp;
}

const char *tern_ice_cand_type_name(tern_ice_cand_type_t type)
{
    switch (type) {
    case TERN_ICE_CAND_HOST:
        return "host";
    case TERN_ICE_CAND_SRFLX:
        return "srflx";
    case TERN_ICE_CAND_PRFLX:
        return "prflx";
    case TERN_ICE_CAND_RELAY:
        return "relay";
    default:
        return "unknown";
    }
}

/* Take the next space-separated token; false at the end of the line. */
static bool next_token(cursor_t *c, token_t *t)
{
    while (c->p < c->end && *c->p == ' ')
        c->p++;
    if (c->p >= c->end)
        return false;
    t->p = c->p;
    while (c->p < c->end && *c->p != ' ')
        c->p++;
    t->len = (size_t)(c->p - t->p);
    return true;
}

static bool token_is(token_t t, const char *s)
{
    return t.len == strlen(s) && memcmp(t.p, s, t.len) == 0;
}

static bool token_is_nocase(token_t t, const char *s)
{
    if (t.len != strlen(s))
        return false;
    for (size_t i = 0; i < t.len; i++) {
        char a = t.p[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (a != s[i])
            return false;
    }
    return true;
}

/* Parse 1..max_digits decimal digits no greater than max. */
static bool parse_uint(token_t t, size_t max_digits, uint64_t max, uint64_t *out)
{
    if (t.len == 0 || t.len > max_digits)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < t.len; i++) {
        if (t.p[i] < '0' || t.p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(t.p[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool is_ice_char(char ch)
{
    /* RFC 8839 §5.1: ice-char = ALPHA / DIGIT / "+" / "/" */
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/';
}

static bool parse_foundation(token_t t, char *out)
{
    if (t.len == 0 || t.len > TERN_ICE_FOUNDATION_MAX)
        return false;
    for (size_t i = 0; i < t.len; i++)
        if (!is_ice_char(t.p[i]))
            return false;
    memcpy(out, t.p, t.len);
    out[t.len] = '\0';
    return true;
}

/* An IPv4 or IPv6 literal (no zone, no brackets, no port). */
static bool parse_ip(token_t t, tern_addr_t *out)
{
    char tmp[48];
    if (t.len == 0 || t.len >= sizeof tmp)
        return false;
    memcpy(tmp, t.p, t.len);
    tmp[t.len] = '\0';
    tern_addr_t a;
    memset(&a, 0, sizeof a);
    if (inet_pton(AF_INET, tmp, a.ip) == 1) {
        a.family = TERN_AF_INET;
    } else if (inet_pton(AF_INET6, tmp, a.ip) == 1) {
        a.family = TERN_AF_INET6;
    } else {
        return false;
    }
    *out = a;
    return true;
}

/* A host name as RFC 1123 allows it: labels of letters, digits and hyphens, dot-separated. */
static bool parse_hostname(token_t t, char *out)
{
    if (t.len == 0 || t.len > TERN_ICE_HOSTNAME_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < t.len; i++) {
        char ch = t.p[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
        if (!ok || ++label > 63)
            return false;
    }
    memcpy(out, t.p, t.len);
    out[t.len] = '\0';
    return true;
}

static bool parse_type(token_t t, tern_ice_cand_type_t *out)
{
    static const struct {
        const char *name;
        tern_ice_cand_type_t type;
    } types[] = {
        {"host", TERN_ICE_CAND_HOST},
        {"srflx", TERN_ICE_CAND_SRFLX},
        {"prflx", TERN_ICE_CAND_PRFLX},
        {"relay", TERN_ICE_CAND_RELAY},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(types); i++) {
        if (token_is(t, types[i].name)) {
            *out = types[i].type;
            return true;
        }
    }
    return false;
}

static bool parse_tcptype(token_t t, uint8_t *out)
{
    if (token_is(t, "active"))
        *out = TERN_ICE_TCPTYPE_ACTIVE;
    else if (token_is(t, "passive"))
        *out = TERN_ICE_TCPTYPE_PASSIVE;
    else if (token_is(t, "so"))
        *out = TERN_ICE_TCPTYPE_SO;
    else
        return false;
    return true;
}

/* Strip "a=", "candidate:", and a trailing CR/LF. */
static bool strip_prefix(cursor_t *c)
{
    while (c->end > c->p && (c->end[-1] == '\n' || c->end[-1] == '\r'))
        c->end--;
    size_t n = (size_t)(c->end - c->p);
    if (n >= 2 && memcmp(c->p, "a=", 2) == 0) {
        c->p += 2;
        n -= 2;
    }
    if (n < 10 || memcmp(c->p, "candidate:", 10) != 0)
        return false;
    c->p += 10;
    /* A NUL inside the line is not text: refuse it rather than cut the line short. */
    return memchr(c->p, '\0', (size_t)(c->end - c->p)) == NULL;
}

static bool parse_address(token_t t, tern_ice_candidate_t *c)
{
    if (parse_ip(t, &c->addr))
        return true;
    /* Not an IP: an mDNS name or another FQDN, resolved by someone else (RFC 8839 §5.1). */
    return parse_hostname(t, c->hostname);
}

/* The fixed part: foundation, component, transport, priority, address, port, "typ", type. */
static bool parse_fixed(cursor_t *cur, tern_ice_candidate_t *c)
{
    token_t t;
    uint64_t v;
    if (!next_token(cur, &t) || !parse_foundation(t, c->foundation))
        return false;
    if (!next_token(cur, &t) || !parse_uint(t, 3, 256, &v) || v == 0)
        return false;
    c->component = (uint16_t)v;
    if (!next_token(cur, &t))
        return false;
    if (token_is_nocase(t, "udp"))
        c->transport = TERN_TRANSPORT_UDP;
    else if (token_is_nocase(t, "tcp"))
        c->transport = TERN_TRANSPORT_TCP;
    else
        return false;
    if (!next_token(cur, &t) || !parse_uint(t, 10, UINT32_MAX, &v))
        return false;
    c->priority = (uint32_t)v;
    if (!next_token(cur, &t) || !parse_address(t, c))
        return false;
    if (!next_token(cur, &t) || !parse_uint(t, 5, 65535, &v))
        return false;
    c->addr.port = (uint16_t)v;
    if (!next_token(cur, &t) || !token_is(t, "typ"))
        return false;
    return next_token(cur, &t) && parse_type(t, &c->type);
}

/* raddr/rport, tcptype, and extension pairs that are skipped. */
static bool parse_extensions(cursor_t *cur, tern_ice_candidate_t *c)
{
    token_t name, value;
    tern_addr_t raddr;
    bool have_raddr = false;
    uint64_t rport = 0;
    memset(&raddr, 0, sizeof raddr);
    while (next_token(cur, &name)) {
        if (!next_token(cur, &value) || name.len > TOKEN_MAX || value.len > TOKEN_MAX)
            return false;
        if (token_is(name, "raddr")) {
            /* Chrome hides the base behind "0.0.0.0" or an mDNS name; keep only IPs. */
            char ignored[TERN_ICE_HOSTNAME_MAX + 1];
            if (parse_ip(value, &raddr))
                have_raddr = true;
            else if (!parse_hostname(value, ignored))
                return false;
        } else if (token_is(name, "rport")) {
            if (!parse_uint(value, 5, 65535, &rport))
                return false;
        } else if (token_is(name, "tcptype")) {
            if (!parse_tcptype(value, &c->tcptype))
                return false;
        }
    }
    if (have_raddr) {
        c->related = raddr;
        c->related.port = (uint16_t)rport;
    }
    return true;
}

int tern_ice_candidate_parse(const char *text, size_t len, tern_ice_candidate_t *out)
{
    if (!text || !out)
        return TERN_ERR_INVALID_ARG;
    cursor_t cur = {text, text + len};
    tern_ice_candidate_t c;
    memset(&c, 0, sizeof c);
    if (!strip_prefix(&cur) || !parse_fixed(&cur, &c) || !parse_extensions(&cur, &c))
        return TERN_ERR_PARSE;
    /* ICE-TCP candidates carry a tcptype; a UDP one must not. */
    if (c.transport == TERN_TRANSPORT_UDP && c.tcptype != TERN_ICE_TCPTYPE_NONE)
        return TERN_ERR_PARSE;
    *out = c;
    return TERN_OK;
}

static bool format_ip(const tern_addr_t *a, char *buf, size_t cap)
{
    if (a->family == TERN_AF_INET)
        return inet_ntop(AF_INET, a->ip, buf, (socklen_t)cap) != NULL;
    if (a->family == TERN_AF_INET6)
        return inet_ntop(AF_INET6, a->ip, buf, (socklen_t)cap) != NULL;
    return false;
}

static const char *tcptype_name(uint8_t tcptype)
{
    switch (tcptype) {
    case TERN_ICE_TCPTYPE_ACTIVE:
        return "active";
    case TERN_ICE_TCPTYPE_PASSIVE:
        return "passive";
    case TERN_ICE_TCPTYPE_SO:
        return "so";
    default:
        return NULL;
    }
}

int tern_ice_candidate_format(const tern_ice_candidate_t *c, char *buf, size_t cap)
{
    char addr[INET6_ADDRSTRLEN], raddr[INET6_ADDRSTRLEN];
    if (!c || !buf)
        return TERN_ERR_INVALID_ARG;
    const char *host = addr;
    if (c->hostname[0] != '\0')
        host = c->hostname;
    else if (!format_ip(&c->addr, addr, sizeof addr))
        return TERN_ERR_INVALID_ARG;
    int n = snprintf(buf, cap, "candidate:%s %u %s %u %s %u typ %s", c->foundation,
                     (unsigned)c->component, c->transport == TERN_TRANSPORT_TCP ? "tcp" : "udp",
                     (unsigned)c->priority, host, (unsigned)c->addr.port,
                     tern_ice_cand_type_name(c->type));
    if (n < 0 || (size_t)n >= cap)
        return TERN_ERR_TOO_LARGE;
    size_t len = (size_t)n;
    if (format_ip(&c->related, raddr, sizeof raddr)) {
        n = snprintf(buf + len, cap - len, " raddr %s rport %u", raddr, (unsigned)c->related.port);
        if (n < 0 || (size_t)n >= cap - len)
            return TERN_ERR_TOO_LARGE;
        len += (size_t)n;
    }
    const char *tcptype = tcptype_name(c->tcptype);
    if (tcptype) {
        n = snprintf(buf + len, cap - len, " tcptype %s", tcptype);
        if (n < 0 || (size_t)n >= cap - len)
            return TERN_ERR_TOO_LARGE;
        len += (size_t)n;
    }
    return (int)len;
}
