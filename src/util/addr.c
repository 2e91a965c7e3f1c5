/* SPDX-License-Identifier: MIT */
/* tern_addr_t: parsing, formatting and comparison, independent of the socket API. */
#include "tern/tern.h"

#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool parse_port(const char *s, uint16_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    unsigned long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return false;
    }
    *out = (uint16_t)v;
    return true;
}

static bool parse_ip(const char *s, size_t n, tern_addr_t *out)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, tmp, out->ip) == 1) {
        out->family = TERN_AF_INET;
        return true;
    }
    char *pct = strchr(tmp, '%');
    if (pct) {
        *pct = '\0';
        char *end;
        unsigned long scope = strtoul(pct + 1, &end, 10);
        if (pct[1] == '\0' || *end != '\0' || scope > UINT32_MAX)
            return false;
        out->scope_id = (uint32_t)scope;
    }
    if (inet_pton(AF_INET6, tmp, out->ip) == 1) {
        out->family = TERN_AF_INET6;
        return true;
    }
    return false;
}

int tern_addr_parse(const char *text, tern_addr_t *out)
{
    tern_addr_t a;
    if (!text || !out)
        return TERN_ERR_INVALID_ARG;
    size_t n = strlen(text);
    uint16_t port = 0;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || !parse_ip(text + 1, (size_t)(close - text - 1), &a))
            return TERN_ERR_PARSE;
        if (close[1] != '\0' && (close[1] != ':' || !parse_port(close + 2, &port)))
            return TERN_ERR_PARSE;
    } else if (parse_ip(text, n, &a)) {
        /* a bare address, no port */
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || !parse_ip(text, (size_t)(colon - text), &a) || a.family != TERN_AF_INET ||
            !parse_port(colon + 1, &port))
            return TERN_ERR_PARSE;
    }
    a.port = port;
    *out = a;
    return TERN_OK;
}

char *tern_addr_format(const tern_addr_t *addr, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (cap == 0)
        return buf;
    switch (addr->family) {
    case TERN_AF_INET:
        inet_ntop(AF_INET, addr->ip, ip, sizeof ip);
        snprintf(buf, cap, "%s:%u", ip, addr->port);
        break;
    case TERN_AF_INET6:
        inet_ntop(AF_INET6, addr->ip, ip, sizeof ip);
        if (addr->scope_id)
            snprintf(buf, cap, "[%s%%%u]:%u", ip, addr->scope_id, addr->port);
        else
            snprintf(buf, cap, "[%s]:%u", ip, addr->port);
        break;
    default:
        snprintf(buf, cap, "(none)");
        break;
    }
    return buf;
}

bool tern_addr_equal(const tern_addr_t *a, const tern_addr_t *b)
{
    if (a->family != b->family || a->port != b->port)
        return false;
    if (a->family == TERN_AF_INET)
        return memcmp(a->ip, b->ip, 4) == 0;
    if (a->family == TERN_AF_INET6)
        return memcmp(a->ip, b->ip, 16) == 0 && a->scope_id == b->scope_id;
    return true;
}
