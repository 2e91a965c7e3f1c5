/* SPDX-License-Identifier: MIT */
/*
 * UDP sockets for the loop: conversion between tern_addr_t and sockaddr, and binding a
 * non-blocking socket on one local address with an ephemeral port and large buffers (a burst of
 * SCTP data on loopback overflows the default ~200 KiB long before the loop gets to read it).
 */
#include "io/io.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

socklen_t tern_io_addr_to_sockaddr(const tern_addr_t *addr, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (addr->family == TERN_AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(addr->port);
        memcpy(&sin->sin_addr, addr->ip, 4);
        return sizeof *sin;
    }
    if (addr->family == TERN_AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(addr->port);
        sin6->sin6_scope_id = addr->scope_id;
        memcpy(&sin6->sin6_addr, addr->ip, 16);
        return sizeof *sin6;
    }
    return 0;
}

static bool is_v4_mapped(const uint8_t ip[16])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip, prefix, sizeof prefix) == 0;
}

bool tern_io_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, tern_addr_t *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        out->family = TERN_AF_INET;
        out->port = ntohs(sin->sin_port);
        memcpy(out->ip, &sin->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        out->port = ntohs(sin6->sin6_port);
        /* Our IPv6 sockets are V6ONLY, but report a mapped sender as the IPv4 it is. */
        if (is_v4_mapped(sin6->sin6_addr.s6_addr)) {
            out->family = TERN_AF_INET;
            memcpy(out->ip, sin6->sin6_addr.s6_addr + 12, 4);
            return true;
        }
        out->family = TERN_AF_INET6;
        out->scope_id = sin6->sin6_scope_id;
        memcpy(out->ip, &sin6->sin6_addr, 16);
        return true;
    }
    return false;
}

/* Ask for a large buffer: the FORCE variant passes net.core.[rw]mem_max but needs
 * CAP_NET_ADMIN; without it fall back to the plain option, which the kernel caps. */
static void set_buffer(int fd, int force_opt, int opt)
{
    int bytes = TERN_IO_SOCKET_BUFFER_BYTES;
    if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) == 0)
        return;
    (void)setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

int tern_io_udp_bind(const tern_addr_t *addr, tern_addr_t *bound)
{
    struct sockaddr_storage ss;
    socklen_t len = tern_io_addr_to_sockaddr(addr, &ss);
    if (len == 0) {
        errno = EAFNOSUPPORT;
        return TERN_ERR_INVALID_ARG;
    }
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return TERN_ERR_IO;
    if (ss.ss_family == AF_INET6) {
        int on = 1;
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    }
    set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
    set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
    struct sockaddr_storage got;
    socklen_t got_len = sizeof got;
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
        getsockname(fd, (struct sockaddr *)&got, &got_len) != 0 ||
        !tern_io_addr_from_sockaddr((struct sockaddr *)&got, got_len, bound)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return TERN_ERR_IO;
    }
    return fd;
}
