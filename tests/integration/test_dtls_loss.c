/* SPDX-License-Identifier: MIT */
/*
 * DTLS handshake loss over real time and real UDP sockets on 127.0.0.1: OpenSSL keeps its
 * retransmission timer on the wall clock (see src/dtls/dtls.h), so this checks that the deadline
 * the endpoint reports in monotonic time makes OpenSSL retransmit when driven as a loop would.
 * The first flight of each side is lost once; the handshake must still finish, then data flows
 * both ways. The deadline only says when to give up.
 */
#include "check.h"
#include "dtls/dtls.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GIVE_UP_US TERN_SEC(20)

static tern_time_t clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (tern_time_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int udp_socket(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof *addr) != 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) != 0)
        return -1;
    return fd;
}

typedef struct peer {
    tern_dtls_t *d;
    int fd;
    unsigned sent;
    unsigned lose_first; /* lose this many of the first datagrams sent */
    int connected, failed;
    size_t received;
    char reason[600];
} peer_t;

static void flush(peer_t *p)
{
    tern_transmit_t t;
    while (tern_dtls_poll_transmit(p->d, &t)) {
        if (p->sent++ < p->lose_first)
            continue;
        ok(send(p->fd, t.data, t.len, 0) == (ssize_t)t.len);
    }
}

static void drain(peer_t *p)
{
    tern_dtls_event_t ev;
    while (tern_dtls_poll_event(p->d, &ev)) {
        if (ev.type == TERN_DTLS_EV_CONNECTED)
            p->connected++;
        else if (ev.type == TERN_DTLS_EV_DATA)
            p->received += ev.u.data.len;
        else if (ev.type == TERN_DTLS_EV_FAILED) {
            p->failed++;
            snprintf(p->reason, sizeof p->reason, "%s", ev.u.failed.reason);
        }
    }
    flush(p);
}

static void receive(peer_t *p)
{
    uint8_t buf[2048];
    for (;;) {
        ssize_t n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0)
            return;
        tern_dtls_handle_input(p->d, clock_now(), buf, (size_t)n);
        drain(p);
    }
}

/* One loop iteration: wait for a datagram or the earliest deadline, then handle it. */
static void step(peer_t *a, peer_t *b)
{
    tern_time_t now = clock_now();
    tern_time_t next = TERN_MIN(tern_dtls_next_deadline(a->d), tern_dtls_next_deadline(b->d));
    int timeout_ms = next == TERN_TIME_NEVER ? 50 : (int)TERN_MAX(0, (next - now + 999) / 1000);
    if (timeout_ms > 50)
        timeout_ms = 50;
    struct pollfd fds[2] = {{a->fd, POLLIN, 0}, {b->fd, POLLIN, 0}};
    poll(fds, 2, timeout_ms);
    receive(a);
    receive(b);
    now = clock_now();
    tern_dtls_handle_timeout(a->d, now);
    drain(a);
    tern_dtls_handle_timeout(b->d, now);
    drain(b);
}

static void test_handshake_loss(void)
{
    tern_ctx_t ctx_c, ctx_s;
    memset(&ctx_c, 0, sizeof ctx_c);
    memset(&ctx_s, 0, sizeof ctx_s);
    ok(tern_ctx_init_base(&ctx_c, NULL) == 0 && tern_ctx_init_base(&ctx_s, NULL) == 0);
    ok(tern_dtls_identity_init(&ctx_c, NULL, NULL) == 0);
    ok(tern_dtls_identity_init(&ctx_s, NULL, NULL) == 0);

    struct sockaddr_in ca, sa;
    peer_t c = {.fd = udp_socket(&ca), .lose_first = 1};
    peer_t s = {.fd = udp_socket(&sa), .lose_first = 1};
    ok(c.fd >= 0 && s.fd >= 0);
    ok(connect(c.fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    ok(connect(s.fd, (struct sockaddr *)&ca, sizeof ca) == 0);

    tern_time_t start = clock_now();
    tern_dtls_config_t cc = {.role = TERN_DTLS_ROLE_CLIENT, .initial_rto_us = 100000};
    tern_dtls_config_t sc = {.role = TERN_DTLS_ROLE_SERVER, .initial_rto_us = 100000};
    ok(tern_dtls_new(&ctx_c, &cc, start, &c.d) == 0);
    ok(tern_dtls_new(&ctx_s, &sc, start, &s.d) == 0);
    ok(tern_dtls_set_remote_fingerprint(c.d, start, "sha-256",
                                        tern_dtls_identity_fingerprint(&ctx_s)) == 0);
    ok(tern_dtls_set_remote_fingerprint(s.d, start, "sha-256",
                                        tern_dtls_identity_fingerprint(&ctx_c)) == 0);
    ok(tern_dtls_start(c.d, start) == 0);
    drain(&c);

    while ((!c.connected || !s.connected) && !c.failed && !s.failed &&
           clock_now() - start < GIVE_UP_US)
        step(&c, &s);
    if (c.failed || s.failed)
        printf("# client: %s\n# server: %s\n", c.reason, s.reason);
    eq_int(c.connected, 1);
    eq_int(s.connected, 1);
    tern_dtls_stats_t stc, sts;
    tern_dtls_get_stats(c.d, &stc);
    tern_dtls_get_stats(s.d, &sts);
    ok(stc.retransmissions >= 1);
    ok(sts.retransmissions + stc.retransmissions >= 2);
    printf("# connected after %lld ms, %llu + %llu retransmissions\n",
           (long long)(clock_now() - start) / 1000, (unsigned long long)stc.retransmissions,
           (unsigned long long)sts.retransmissions);

    /* Data both ways over the sockets, in batches the socket buffers hold (DTLS does not
     * retransmit application data; the layer above does). */
    uint8_t msg[1100];
    memset(msg, 0x42, sizeof msg);
    tern_time_t data_start = clock_now();
    for (size_t batch = 1; batch <= 10; batch++) {
        for (int i = 0; i < 10; i++) {
            ok(tern_dtls_send(c.d, clock_now(), msg, sizeof msg) == 0);
            ok(tern_dtls_send(s.d, clock_now(), msg, sizeof msg) == 0);
            drain(&c);
            drain(&s);
        }
        while ((c.received < batch * 10 * sizeof msg || s.received < batch * 10 * sizeof msg) &&
               clock_now() - data_start < GIVE_UP_US)
            step(&c, &s);
    }
    eq_int(c.received, 100 * sizeof msg);
    eq_int(s.received, 100 * sizeof msg);

    tern_dtls_free(c.d);
    tern_dtls_free(s.d);
    close(c.fd);
    close(s.fd);
    ctx_c.dtls_identity_free(ctx_c.dtls_identity);
    ctx_s.dtls_identity_free(ctx_s.dtls_identity);
}

int main(void)
{
    subtest("handshake loss, real time", test_handshake_loss);
    return check_done();
}
