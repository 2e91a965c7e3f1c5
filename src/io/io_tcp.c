/* SPDX-License-Identifier: MIT */
/*
 * Non-blocking TCP sockets for the loop: listen (IPv4, IPv6, and dual-stack on "::"), accept
 * with TCP_NODELAY (signaling messages are small and latency matters more than packet count),
 * connect in the background, and the addresses of a connected socket.
 */
#include "io/io.h"
#include "io/io_stream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

static bool is_unspecified_v6(const tern_addr_t *a)
{
    static const uint8_t zero[16];
    return a->family == TERN_AF_INET6 && memcmp(a->ip, zero, 16) == 0;
}

static void close_keep_errno(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
}

static int new_socket(int family)
{
    return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static void set_nodelay(int fd)
{
    int on = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static int read_name(int fd, bool peer, tern_addr_t *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                  : getsockname(fd, (struct sockaddr *)&ss, &len);
    if (rc != 0)
        return TERN_ERR_IO;
    if (!tern_io_addr_from_sockaddr((struct sockaddr *)&ss, len, out)) {
        errno = EAFNOSUPPORT;
        return TERN_ERR_IO;
    }
    return TERN_OK;
}

int tern_io_tcp_local_addr(int fd, tern_addr_t *out)
{
    return read_name(fd, false, out);
}

int tern_io_tcp_remote_addr(int fd, tern_addr_t *out)
{
    return read_name(fd, true, out);
}

int tern_io_tcp_listen(const tern_addr_t *addr, int backlog, tern_addr_t *bound)
{
    struct sockaddr_storage ss;
    socklen_t len = tern_io_addr_to_sockaddr(addr, &ss);
    if (len == 0) {
        errno = EAFNOSUPPORT;
        return TERN_ERR_INVALID_ARG;
    }
    int fd = new_socket(ss.ss_family);
    if (fd < 0)
        return TERN_ERR_IO;
    int on = 1;
    /* A restarted server must not wait out the old connections' TIME_WAIT to bind again. */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (ss.ss_family == AF_INET6) {
        int v6only = is_unspecified_v6(addr) ? 0 : 1;
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
    tern_addr_t got;
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, backlog) != 0 ||
        read_name(fd, false, &got) != TERN_OK) {
        close_keep_errno(fd);
        return TERN_ERR_IO;
    }
    if (bound)
        *bound = got;
    return fd;
}

int tern_io_tcp_accept(int listen_fd, tern_addr_t *remote)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        /* ECONNABORTED: the peer reset it while it was queued; there is simply nothing. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR)
            return TERN_ERR_AGAIN;
        return TERN_ERR_IO;
    }
    set_nodelay(fd);
    if (remote && !tern_io_addr_from_sockaddr((struct sockaddr *)&ss, len, remote))
        memset(remote, 0, sizeof *remote);
    return fd;
}

int tern_io_tcp_connect(const tern_addr_t *remote, const tern_addr_t *local)
{
    struct sockaddr_storage ss;
    socklen_t len = tern_io_addr_to_sockaddr(remote, &ss);
    if (len == 0) {
        errno = EAFNOSUPPORT;
        return TERN_ERR_INVALID_ARG;
    }
    int fd = new_socket(ss.ss_family);
    if (fd < 0)
        return TERN_ERR_IO;
    set_nodelay(fd);
    if (local && local->family != TERN_AF_UNSPEC) {
        struct sockaddr_storage ls;
        socklen_t llen = tern_io_addr_to_sockaddr(local, &ls);
        if (ls.ss_family != ss.ss_family || bind(fd, (struct sockaddr *)&ls, llen) != 0) {
            if (ls.ss_family != ss.ss_family)
                errno = EAFNOSUPPORT;
            close_keep_errno(fd);
            return TERN_ERR_IO;
        }
    }
    if (connect(fd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS) {
        close_keep_errno(fd);
        return TERN_ERR_IO;
    }
    return fd;
}

int tern_io_tcp_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return TERN_ERR_IO;
    if (err != 0) {
        errno = err;
        return TERN_ERR_IO;
    }
    /* Writable without an error can still mean "not connected" if asked too early. */
    tern_addr_t peer;
    if (read_name(fd, true, &peer) != TERN_OK) {
        errno = ENOTCONN;
        return TERN_ERR_IO;
    }
    return TERN_OK;
}
