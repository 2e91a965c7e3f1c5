/* SPDX-License-Identifier: MIT */
/*
 * Interface enumeration for host candidates: getifaddrs for the interfaces that are up and their
 * addresses, and /proc/net/if_inet6 for the IPv6 address flags getifaddrs does not report
 * (deprecated, tentative, DAD failed). RFC 8445 §5.1.1.1 keeps loopback addresses out of the
 * candidates (include_loopback departs from it, for tests and same-host use) and restricts IPv6
 * link-local ones; they also need a scope id that the peer cannot use, so they are never bound.
 */
#include "io/io.h"
#include "util/util.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Linux IFA_F_* flags (linux/if_addr.h) as /proc/net/if_inet6 prints them, in hex. */
#define IFA_FLAG_DADFAILED 0x08
#define IFA_FLAG_DEPRECATED 0x20
#define IFA_FLAG_TENTATIVE 0x40
#define IFA_UNUSABLE (IFA_FLAG_DADFAILED | IFA_FLAG_DEPRECATED | IFA_FLAG_TENTATIVE)

static bool parse_hex_ip6(const char *s, uint8_t ip[16])
{
    for (int i = 0; i < 16; i++) {
        int hi = tern_hex_digit(s[2 * i]), lo = tern_hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        ip[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* The IPv6 addresses /proc/net/if_inet6 flags as not to be used; none if it cannot be read. */
typedef struct unusable_set {
    uint8_t ip[32][16];
    size_t count;
} unusable_set_t;

static void load_unusable(unusable_set_t *set)
{
    set->count = 0;
    FILE *f = fopen("/proc/net/if_inet6", "re");
    if (!f)
        return;
    char line[256];
    while (set->count < TERN_ARRAY_LEN(set->ip) && fgets(line, sizeof line, f)) {
        char hex[33];
        unsigned ifindex, plen, scope, flags;
        if (sscanf(line, "%32s %x %x %x %x", hex, &ifindex, &plen, &scope, &flags) == 5 &&
            strlen(hex) == 32 && (flags & IFA_UNUSABLE) && parse_hex_ip6(hex, set->ip[set->count]))
            set->count++;
    }
    fclose(f);
}

static bool is_unusable(const unusable_set_t *set, const uint8_t ip[16])
{
    for (size_t i = 0; i < set->count; i++)
        if (memcmp(set->ip[i], ip, 16) == 0)
            return true;
    return false;
}

static bool is_loopback_ip(const tern_addr_t *a)
{
    static const uint8_t v6_loopback[16] = {[15] = 1};
    if (a->family == TERN_AF_INET)
        return a->ip[0] == 127 && a->ip[1] == 0 && a->ip[2] == 0 && a->ip[3] == 1;
    return memcmp(a->ip, v6_loopback, 16) == 0;
}

static bool is_link_local6(const tern_addr_t *a)
{
    return a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80; /* fe80::/10, RFC 4291 §2.5.6 */
}

static bool already_listed(const tern_addr_t *list, size_t n, const tern_addr_t *a)
{
    for (size_t i = 0; i < n; i++)
        if (tern_addr_equal(&list[i], a))
            return true;
    return false;
}

static bool usable(const struct ifaddrs *ifa, bool include_loopback, bool disable_ipv6,
                   const unusable_set_t *unusable, tern_addr_t *a)
{
    if (!ifa->ifa_addr || !(ifa->ifa_flags & IFF_UP))
        return false;
    int family = ifa->ifa_addr->sa_family;
    if (family != AF_INET && (family != AF_INET6 || disable_ipv6))
        return false;
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (!tern_io_addr_from_sockaddr(ifa->ifa_addr, len, a))
        return false;
    a->port = 0;
    a->scope_id = 0;
    if (ifa->ifa_flags & IFF_LOOPBACK)
        return include_loopback && is_loopback_ip(a);
    if (a->family == TERN_AF_INET6)
        return !is_link_local6(a) && !is_unusable(unusable, a->ip);
    return true;
}

int tern_io_iface_list(bool include_loopback, bool disable_ipv6, tern_addr_t *out, size_t cap)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0)
        return TERN_ERR_IO;
    unusable_set_t unusable;
    if (!disable_ipv6)
        load_unusable(&unusable);
    else
        unusable.count = 0;
    size_t n = 0;
    for (const struct ifaddrs *ifa = list; ifa && n < cap; ifa = ifa->ifa_next) {
        tern_addr_t a;
        if (usable(ifa, include_loopback, disable_ipv6, &unusable, &a) &&
            !already_listed(out, n, &a))
            out[n++] = a;
    }
    freeifaddrs(list);
    return (int)n;
}
