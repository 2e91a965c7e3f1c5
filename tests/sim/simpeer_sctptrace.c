/* SPDX-License-Identifier: MIT */
/*
 * An SCTP tracer for simulations: with SIM_SCTP=1, every SCTP packet that goes into or comes out
 * of a DTLS connection is printed as one line of chunks (RFC 4960 §3.3, RFC 6525 §4 for
 * RE-CONFIG, RFC 3758 §3.2 for FORWARD-TSN), with the virtual time. On the wire the packets are
 * encrypted, so vnet's trace only shows sizes; this shows what SCTP does.
 *
 * It works the way vnet_clock.c does: the program defines SSL_write and SSL_read, which the
 * stack's DTLS layer calls (src/dtls/dtls.c); the static link binds those calls here, and these
 * call libssl's own through dlsym(RTLD_NEXT). Without SIM_SCTP they only pass through.
 * Connections are named by the order in which they are first seen (#1, #2, ...).
 */
#include "simpeer.h"

#include <openssl/ssl.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIM_EXPORT __attribute__((visibility("default")))
#define MAX_NAMED 64

typedef int (*ssl_io_fn)(SSL *ssl, void *buf, int num);
typedef int (*ssl_write_fn)(SSL *ssl, const void *buf, int num);

static int enabled = -1;
static const SSL *named[MAX_NAMED];
static size_t named_count;

static bool tracing(void)
{
    if (enabled < 0) {
        const char *v = getenv("SIM_SCTP");
        enabled = v && *v && strcmp(v, "0") != 0;
    }
    return enabled;
}

static unsigned name_of(const SSL *ssl)
{
    for (size_t i = 0; i < named_count; i++)
        if (named[i] == ssl)
            return (unsigned)i + 1;
    if (named_count == MAX_NAMED)
        return 0;
    named[named_count++] = ssl;
    return (unsigned)named_count;
}

static uint16_t u16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 6525 §4: the parameters of a RE-CONFIG chunk. */
static void print_reconfig(FILE *out, const uint8_t *p, size_t len)
{
    static const char *const results[] = {"nothing to do", "performed",           "denied",
                                          "wrong ssn",     "already in progress", "bad seq",
                                          "in progress"};
    for (size_t off = 0; off + 4 <= len;) {
        uint16_t type = u16(p + off), plen = u16(p + off + 2);
        if (plen < 4 || off + plen > len)
            break;
        const uint8_t *v = p + off + 4;
        size_t vlen = plen - 4u;
        if (type == 13 && vlen >= 12) {
            fprintf(out, " [out-reset req=%u resp=%u last_tsn=%u streams", u32(v), u32(v + 4),
                    u32(v + 8));
            for (size_t i = 12; i + 2 <= vlen; i += 2)
                fprintf(out, " %u", u16(v + i));
            fprintf(out, "]");
        } else if (type == 14 && vlen >= 4) {
            fprintf(out, " [in-reset req=%u streams", u32(v));
            for (size_t i = 4; i + 2 <= vlen; i += 2)
                fprintf(out, " %u", u16(v + i));
            fprintf(out, "]");
        } else if (type == 16 && vlen >= 8) {
            uint32_t r = u32(v + 4);
            fprintf(out, " [response seq=%u %s]", u32(v), r < 7 ? results[r] : "?");
        } else {
            fprintf(out, " [param %u]", type);
        }
        off += (plen + 3u) & ~3u;
    }
}

static void print_chunk(FILE *out, uint8_t type, uint8_t flags, const uint8_t *v, size_t len)
{
    switch (type) {
    case 0:
        if (len >= 12)
            fprintf(out, " DATA(tsn=%u sid=%u ssn=%u ppid=%u %zuB%s%s%s)", u32(v), u16(v + 4),
                    u16(v + 6), u32(v + 8), len - 12, flags & 4 ? " U" : "", flags & 2 ? " B" : "",
                    flags & 1 ? " E" : "");
        return;
    case 3:
        if (len >= 12)
            fprintf(out, " SACK(cum=%u rwnd=%u gaps=%u dups=%u)", u32(v), u32(v + 4), u16(v + 8),
                    u16(v + 10));
        return;
    case 130:
        fprintf(out, " RECONFIG");
        print_reconfig(out, v, len);
        return;
    case 192:
        if (len >= 4)
            fprintf(out, " FORWARD-TSN(%u)", u32(v));
        return;
    default: {
        static const char *const names[] = {
            "DATA",        "INIT",       "INIT-ACK", "SACK",         "HEARTBEAT",
            "HB-ACK",      "ABORT",      "SHUTDOWN", "SHUTDOWN-ACK", "ERROR",
            "COOKIE-ECHO", "COOKIE-ACK", "ECNE",     "CWR",          "SHUTDOWN-COMPLETE"};
        if (type < sizeof names / sizeof names[0])
            fprintf(out, " %s", names[type]);
        else
            fprintf(out, " chunk-%u", type);
    }
    }
}

static void trace_packet(const SSL *ssl, const char *dir, const uint8_t *p, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the virtual clock (vnet_clock.c) */
    fprintf(stderr, "sctp %lld.%06ld #%u %s", (long long)ts.tv_sec, ts.tv_nsec / 1000, name_of(ssl),
            dir);
    if (len < 12) {
        fprintf(stderr, " (short packet)\n");
        return;
    }
    for (size_t off = 12; off + 4 <= len;) {
        uint16_t clen = u16(p + off + 2);
        if (clen < 4 || off + clen > len) {
            fprintf(stderr, " (bad chunk)");
            break;
        }
        print_chunk(stderr, p[off], p[off + 1], p + off + 4, clen - 4u);
        off += (clen + 3u) & ~3u;
    }
    fprintf(stderr, "\n");
}

static void *real(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

SIM_EXPORT int SSL_write(SSL *ssl, const void *buf, int num)
{
    static ssl_write_fn fn;
    if (!fn) {
        void *sym = real("SSL_write");
        memcpy(&fn, &sym, sizeof fn);
    }
    int n = fn(ssl, buf, num);
    if (n > 0 && tracing())
        trace_packet(ssl, "out", buf, (size_t)n);
    return n;
}

SIM_EXPORT int SSL_read(SSL *ssl, void *buf, int num)
{
    static ssl_io_fn fn;
    if (!fn) {
        void *sym = real("SSL_read");
        memcpy(&fn, &sym, sizeof fn);
    }
    int n = fn(ssl, buf, num);
    if (n > 0 && tracing())
        trace_packet(ssl, "in ", buf, (size_t)n);
    return n;
}
