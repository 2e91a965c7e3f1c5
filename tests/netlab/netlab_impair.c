/* SPDX-License-Identifier: MIT */
/*
 * netlab_impair: a userspace link impairment for the NAT lab, because this kernel has no
 * sch_netem (TESTING.md). It joins two network interfaces of one namespace like a two-port
 * bridge, over AF_PACKET sockets, and impairs the IPv4 frames that cross in either direction:
 * each is lost with a probability, delayed by a fixed time plus a random jitter, and, with a
 * probability, held back a further gap so that the frames behind it overtake it (reordering).
 * Frames that are not IPv4 (ARP) cross at once, so neighbour resolution is not part of the test.
 *
 * The sockets use PACKET_VNET_HDR: a frame sent by a local socket on a veth still carries a
 * partial checksum (checksum offload) or is a TCP super-segment (GSO), and the virtio header
 * that comes with it on receive lets the kernel finish the checksum or segment it on send;
 * without it the frame would reach the other side with a wrong checksum.
 *
 * Usage: netlab_impair IF_A IF_B [--loss PCT] [--delay MS] [--jitter MS] [--reorder PCT]
 *                      [--gap MS] [--seed N]
 * It prints "ready" once both sockets are bound, and on SIGTERM or SIGINT one line per
 * direction: "A>B frames=N lost=N reordered=N overflow=N", then exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (128 * 1024) /* a GSO super-segment is at most 64 KiB plus headers */
#define MAX_QUEUED 16384       /* frames held at once, both directions together */

typedef struct frame {
    int64_t due_us; /* when it leaves */
    uint64_t seq;   /* arrival order, to keep equal due times in order */
    int out;        /* index of the socket it leaves by */
    size_t len;
    uint8_t *data; /* virtio header and Ethernet frame */
} frame_t;

typedef struct stats {
    uint64_t frames, lost, reordered, overflow;
} stats_t;

typedef struct opts {
    double loss, reorder; /* probabilities, 0..1 */
    int64_t delay_us, jitter_us, gap_us;
    uint64_t seed;
} opts_t;

static frame_t heap[MAX_QUEUED];
static size_t heap_len;
static uint64_t rng_state;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* xorshift64*: reproducible loss patterns for a given --seed. */
static double uniform(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static bool earlier(const frame_t *a, const frame_t *b)
{
    return a->due_us < b->due_us || (a->due_us == b->due_us && a->seq < b->seq);
}

static void heap_push(frame_t f)
{
    size_t i = heap_len++;
    heap[i] = f;
    while (i > 0 && earlier(&heap[i], &heap[(i - 1) / 2])) {
        frame_t t = heap[i];
        heap[i] = heap[(i - 1) / 2];
        heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static frame_t heap_pop(void)
{
    frame_t top = heap[0];
    heap[0] = heap[--heap_len];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && earlier(&heap[l], &heap[m]))
            m = l;
        if (r < heap_len && earlier(&heap[r], &heap[m]))
            m = r;
        if (m == i)
            break;
        frame_t t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
    return top;
}

static int open_port(const char *ifname)
{
    unsigned idx = if_nametoindex(ifname);
    if (!idx) {
        fprintf(stderr, "netlab_impair: no interface %s\n", ifname);
        return -1;
    }
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0) {
        perror("netlab_impair: packet socket");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)idx};
    /* Frames for other hosts are the whole point: listen to every one. */
    struct packet_mreq mr = {.mr_ifindex = (int)idx, .mr_type = PACKET_MR_PROMISC};
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) {
        perror("netlab_impair: bind");
        close(fd);
        return -1;
    }
    return fd;
}

static void send_frame(int fd, uint8_t *data, size_t len)
{
    struct virtio_net_hdr *vh = (struct virtio_net_hdr *)data;
    /* DATA_VALID is a receive-side flag; only NEEDS_CSUM means something on send. */
    vh->flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM;
    /* A full socket buffer loses the frame, as a full link would. */
    (void)send(fd, data, len, MSG_DONTWAIT);
}

static bool is_ipv4(const uint8_t *data, size_t len)
{
    size_t eth = sizeof(struct virtio_net_hdr);
    return len >= eth + 14 && data[eth + 12] == 0x08 && data[eth + 13] == 0x00;
}

/*
 * Take one frame from port `in`, impair it and queue it for the other port.
 * @return false when the socket had nothing to read.
 */
static bool receive(int fds[2], int in, const opts_t *o, stats_t *st, uint64_t *seq, uint8_t *buf)
{
    ssize_t n = recv(fds[in], buf, MAX_FRAME, MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0)
        return false;
    size_t len = (size_t)n;
    int out = 1 - in;
    if (len > MAX_FRAME)
        return true;
    if (!is_ipv4(buf, len)) {
        send_frame(fds[out], buf, len);
        return true;
    }
    st[in].frames++;
    if (uniform() < o->loss) {
        st[in].lost++;
        return true;
    }
    int64_t due = now_us() + o->delay_us;
    if (o->jitter_us > 0)
        due += (int64_t)(uniform() * (double)o->jitter_us);
    if (uniform() < o->reorder) {
        due += o->gap_us;
        st[in].reordered++;
    }
    uint8_t *copy = heap_len < MAX_QUEUED ? malloc(len) : NULL;
    if (!copy) {
        st[in].overflow++;
        return true;
    }
    memcpy(copy, buf, len);
    heap_push((frame_t){.due_us = due, .seq = (*seq)++, .out = out, .len = len, .data = copy});
    return true;
}

static int usage(void)
{
    fprintf(stderr, "usage: netlab_impair IF_A IF_B [--loss PCT] [--delay MS] [--jitter MS] "
                    "[--reorder PCT] [--gap MS] [--seed N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    opts_t o = {.gap_us = 20000, .seed = 1};
    if (argc < 3)
        return usage();
    for (int i = 3; i < argc; i += 2) { /* --option value */
        if (i + 1 >= argc)
            return usage();
        double v = strtod(argv[i + 1], NULL);
        if (strcmp(argv[i], "--loss") == 0)
            o.loss = v / 100.0;
        else if (strcmp(argv[i], "--reorder") == 0)
            o.reorder = v / 100.0;
        else if (strcmp(argv[i], "--delay") == 0)
            o.delay_us = (int64_t)(v * 1000.0);
        else if (strcmp(argv[i], "--jitter") == 0)
            o.jitter_us = (int64_t)(v * 1000.0);
        else if (strcmp(argv[i], "--gap") == 0)
            o.gap_us = (int64_t)(v * 1000.0);
        else if (strcmp(argv[i], "--seed") == 0)
            o.seed = strtoull(argv[i + 1], NULL, 10);
        else
            return usage();
    }
    rng_state = o.seed ? o.seed : 1;

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    int fds[2] = {open_port(argv[1]), open_port(argv[2])};
    uint8_t *buf = malloc(MAX_FRAME);
    if (sfd < 0 || fds[0] < 0 || fds[1] < 0 || !buf)
        return 1;
    printf("ready\n");
    fflush(stdout);

    stats_t st[2] = {{0}, {0}};
    uint64_t seq = 0;
    for (bool running = true; running;) {
        int64_t now = now_us();
        while (heap_len > 0 && heap[0].due_us <= now) {
            frame_t f = heap_pop();
            send_frame(fds[f.out], f.data, f.len);
            free(f.data);
        }
        int timeout = -1;
        if (heap_len > 0)
            timeout = (int)((heap[0].due_us - now + 999) / 1000);
        struct pollfd pfd[3] = {{.fd = fds[0], .events = POLLIN},
                                {.fd = fds[1], .events = POLLIN},
                                {.fd = sfd, .events = POLLIN}};
        if (poll(pfd, 3, timeout) < 0 && errno != EINTR)
            break;
        /* A bounded burst per port, so that one busy direction does not starve the other. */
        for (int p = 0; p < 2; p++)
            for (int burst = 0; burst < 64 && (pfd[p].revents & POLLIN); burst++)
                if (!receive(fds, p, &o, st, &seq, buf))
                    break;
        if (pfd[2].revents & POLLIN)
            running = false;
    }
    for (int p = 0; p < 2; p++)
        printf("%s>%s frames=%llu lost=%llu reordered=%llu overflow=%llu\n", p ? "B" : "A",
               p ? "A" : "B", (unsigned long long)st[p].frames, (unsigned long long)st[p].lost,
               (unsigned long long)st[p].reordered, (unsigned long long)st[p].overflow);
    while (heap_len > 0)
        free(heap_pop().data);
    free(buf);
    close(fds[0]);
    close(fds[1]);
    close(sfd);
    return 0;
}
