/* SPDX-License-Identifier: MIT */
/*
 * A pc driver's mDNS listener (RFC 6762 §5.2, §11): one UDP socket bound to 224.0.0.251:5353
 * that joined the group on the interfaces of the pc's IPv4 sockets, opened when the pc first
 * sends an mDNS query and closed with the pc's other sockets. Its datagrams take the usual path
 * (tern_io_pc_on_readable) to tern_pc_handle_input with `local` = 224.0.0.251:5353, where the
 * ICE agent reads them as mDNS answers only.
 *
 * Why this shape: the browsers' responders answer only by multicast to the group's port 5353,
 * never to the querying socket (src/ice/ice_mdns.h). The port is shared (SO_REUSEADDR and
 * SO_REUSEPORT, which Chromium's and Firefox's responders also set) with the host's own
 * responders and with the other pcs' listeners: every socket bound to the group gets a copy of
 * every multicast datagram. Binding to the group address rather than to 0.0.0.0 keeps unicast
 * datagrams to port 5353 away from this socket, so it never takes a query meant for a
 * responder on the host.
 */
#include "io/io_mdns.h"
#include "util/util.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static const tern_addr_t mdns_group = {
    .family = TERN_AF_INET, .port = 5353, .ip = {224, 0, 0, 251}}; /* RFC 6762 §3 */

static tern_io_sock_t *find_listener(tern_io_pc_t *e)
{
    for (size_t i = 0; i < e->sock_count; i++)
        if (tern_addr_equal(&e->socks[i].local, &mdns_group))
            return &e->socks[i];
    return NULL;
}

/* Join the group on the interface that owns `local` (the kernel finds it by its address). */
static bool join_group(int fd, const tern_addr_t *local)
{
    struct ip_mreqn mreq;
    memset(&mreq, 0, sizeof mreq);
    memcpy(&mreq.imr_multiaddr, mdns_group.ip, 4);
    memcpy(&mreq.imr_address, local->ip, 4);
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) == 0)
        return true;
    return errno == EADDRINUSE; /* two addresses on one interface: joined already */
}

/* A socket bound to the group's port and address, joined on the pc's IPv4 interfaces. */
static int open_listener(const tern_io_pc_t *e, size_t *joined)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    struct sockaddr_storage ss;
    socklen_t len = tern_io_addr_to_sockaddr(&mdns_group, &ss);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    *joined = 0;
    for (size_t i = 0; i < e->sock_count; i++) {
        const tern_io_sock_t *s = &e->socks[i];
        /* Loopback interfaces do not multicast; the agent never queries from them. */
        if (s->fd >= 0 && s->local.family == TERN_AF_INET && s->local.ip[0] != 127 &&
            join_group(fd, &s->local))
            (*joined)++;
    }
    if (*joined == 0) {
        close(fd);
        errno = ENODEV;
        return -1;
    }
    return fd;
}

void tern_io_mdns_on_transmit(tern_loop_t *loop, tern_io_pc_t *e, const tern_transmit_t *t)
{
    if (!tern_addr_equal(&t->remote, &mdns_group) || find_listener(e))
        return;
    /* The slot after the UDP sockets, kept free for this (TERN_IO_MDNS_SOCKS). */
    tern_io_sock_t *s = &e->socks[e->sock_count];
    s->kind = TERN_IO_HANDLE_SOCKET;
    s->owner = e;
    s->local = mdns_group;
    size_t joined = 0;
    s->fd = open_listener(e, &joined);
    e->sock_count++; /* even if it failed: a closed entry says not to try again */
    if (s->fd < 0) {
        TERN_LOG_WARN(loop->ctx, "io",
                      "driver %u cannot listen on 224.0.0.251:5353: %s (.local candidates will "
                      "not resolve)",
                      e->id, strerror(errno));
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
        TERN_LOG_WARN(loop->ctx, "io", "driver %u cannot poll its mDNS socket: %s", e->id,
                      strerror(errno));
        close(s->fd);
        s->fd = -1;
        return;
    }
    TERN_LOG_DEBUG(loop->ctx, "io", "driver %u listens on 224.0.0.251:5353 on %zu interfaces",
                   e->id, joined);
}
