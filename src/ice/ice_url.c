/* SPDX-License-Identifier: MIT */
/*
 * ICE server URLs as browsers take them in RTCIceServer.urls: "stun:" and "stuns:" (RFC 7064
 * §3.1), "turn:" and "turns:" (RFC 7065 §3.1) with an optional "?transport=udp|tcp", a host that
 * is a name, an IPv4 address or a bracketed IPv6 literal, and the default ports 3478 and 5349.
 * Strict where the RFCs are (no user info, no path, ports 1-65535), lenient where deployed
 * services are not ("stun:host?transport=udp").
 */
#include "ice/ice_turn.h"

#include <string.h>

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool prefix_nocase(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (lower(*s) != *prefix)
            return false;
    return true;
}

static bool equal_nocase(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && prefix_nocase(s, word);
}

/* Returns the length of the scheme with its colon, 0 if unknown. */
static size_t parse_scheme(const char *url, tern_ice_url_scheme_t *scheme)
{
    static const struct {
        const char *text;
        tern_ice_url_scheme_t scheme;
    } schemes[] = {
        {"stuns:", TERN_ICE_URL_STUNS},
        {"stun:", TERN_ICE_URL_STUN},
        {"turns:", TERN_ICE_URL_TURNS},
        {"turn:", TERN_ICE_URL_TURN},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(schemes); i++) {
        if (prefix_nocase(url, schemes[i].text)) {
            *scheme = schemes[i].scheme;
            return strlen(schemes[i].text);
        }
    }
    return 0;
}

/* RFC 3986 §3.2.2 reg-name, restricted to what DNS names use: letters, digits, '-', '.', '_'. */
static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > TERN_ICE_URL_HOST_MAX || s[0] == '.' || s[0] == '-')
        return false;
    size_t label = 0;
    bool all_numeric = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (c == '.') {
            if (label == 0)
                return false; /* empty label */
            label = 0;
            continue;
        }
        if (!alnum && c != '-' && c != '_')
            return false;
        if (!(c >= '0' && c <= '9'))
            all_numeric = false;
        if (++label > 63) /* RFC 1035 §2.3.4 */
            return false;
    }
    /* "1.2.3" or "1.2.3.256" is a broken address, not a name. */
    return !all_numeric;
}

static int parse_port(const char *s, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5)
        return TERN_ERR_PARSE;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TERN_ERR_PARSE;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return TERN_ERR_PARSE;
    *port = (uint16_t)v;
    return TERN_OK;
}

/* host [":" port], up to the end of the authority. */
static int parse_authority(const char *s, size_t n, tern_ice_url_t *u)
{
    const char *host = s;
    size_t host_len;
    const char *rest;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return TERN_ERR_PARSE;
        host = s + 1;
        host_len = (size_t)(close - host);
        rest = close + 1;
        char text[64];
        if (host_len == 0 || host_len >= sizeof text || memchr(host, '%', host_len))
            return TERN_ERR_PARSE;
        memcpy(text, host, host_len);
        text[host_len] = '\0';
        if (tern_addr_parse(text, &u->addr) != TERN_OK || u->addr.family != TERN_AF_INET6)
            return TERN_ERR_PARSE;
        u->host_is_ip = true;
    } else {
        const char *colon = memchr(s, ':', n);
        host_len = colon ? (size_t)(colon - s) : n;
        rest = s + host_len;
        if (host_len == 0 || host_len > TERN_ICE_URL_HOST_MAX)
            return TERN_ERR_PARSE;
        char text[TERN_ICE_URL_HOST_MAX + 1];
        memcpy(text, s, host_len);
        text[host_len] = '\0';
        if (tern_addr_parse(text, &u->addr) == TERN_OK) {
            if (u->addr.family != TERN_AF_INET)
                return TERN_ERR_PARSE; /* an IPv6 literal needs brackets */
            u->host_is_ip = true;
        } else if (!valid_name(s, host_len)) {
            return TERN_ERR_PARSE;
        }
    }
    memcpy(u->host, host, host_len);
    u->host[host_len] = '\0';
    size_t rest_len = n - (size_t)(rest - s);
    if (rest_len == 0)
        return TERN_OK;
    if (rest[0] != ':')
        return TERN_ERR_PARSE;
    return parse_port(rest + 1, rest_len - 1, &u->port);
}

static int parse_query(const char *q, tern_ice_url_t *u)
{
    static const char key[] = "transport=";
    if (!prefix_nocase(q, key))
        return TERN_ERR_PARSE;
    const char *v = q + strlen(key);
    size_t n = strlen(v);
    if (equal_nocase(v, n, "udp"))
        u->transport = TERN_ICE_URL_TRANSPORT_UDP;
    else if (equal_nocase(v, n, "tcp"))
        u->transport = TERN_ICE_URL_TRANSPORT_TCP;
    else
        return TERN_ERR_PARSE; /* a transport-ext we cannot use, or trailing junk */
    return TERN_OK;
}

int tern_ice_url_parse(const char *url, tern_ice_url_t *out)
{
    if (!url || !out)
        return TERN_ERR_INVALID_ARG;
    tern_ice_url_t u;
    memset(&u, 0, sizeof u);
    size_t skip = parse_scheme(url, &u.scheme);
    if (skip == 0)
        return TERN_ERR_PARSE;
    const char *auth = url + skip;
    /* RFC 7064 §3.1, RFC 7065 §3.1: no "//" authority marker, no user info, no path. */
    const char *query = strchr(auth, '?');
    size_t auth_len = query ? (size_t)(query - auth) : strlen(auth);
    if (memchr(auth, '@', auth_len) || memchr(auth, '/', auth_len))
        return TERN_ERR_PARSE;
    int ret = parse_authority(auth, auth_len, &u);
    if (ret != TERN_OK)
        return ret;
    if (query && (ret = parse_query(query + 1, &u)) != TERN_OK)
        return ret;
    bool secure = u.scheme == TERN_ICE_URL_STUNS || u.scheme == TERN_ICE_URL_TURNS;
    bool stun = u.scheme == TERN_ICE_URL_STUN || u.scheme == TERN_ICE_URL_STUNS;
    /* RFC 7064 has no query; only the harmless "?transport=udp" on stun: is let through. */
    if (stun && query &&
        (u.scheme != TERN_ICE_URL_STUN || u.transport != TERN_ICE_URL_TRANSPORT_UDP))
        return TERN_ERR_PARSE;
    if (u.scheme == TERN_ICE_URL_TURNS && u.transport == TERN_ICE_URL_TRANSPORT_UDP)
        return TERN_ERR_UNSUPPORTED; /* DTLS to the server (RFC 7350) */
    if (u.port == 0)
        u.port = secure ? TERN_ICE_URL_STUNS_PORT : TERN_ICE_URL_STUN_PORT;
    if (u.host_is_ip)
        u.addr.port = u.port;
    *out = u;
    return TERN_OK;
}
