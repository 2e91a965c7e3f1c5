/* SPDX-License-Identifier: MIT */
/*
 * TURN permissions under attack, against a real server (issue 5): Debian's coturn on
 * 127.0.0.1 with long-term credentials, a pc A that may only use its relay (W3C "relay"
 * policy) connected to a pc B on a host candidate, both on loopback sockets driven through
 * the sans-IO surface (test_attack_net.h), with every datagram between A and coturn watched:
 * - a stranger at 127.0.0.2 (an address A never permitted) sends STUN checks, DTLS records
 *   and garbage to A's relayed address: coturn must never hand A a Data indication or
 *   ChannelData from it (RFC 8656 §9: permissions), and the stranger hears nothing;
 * - a stranger at 127.0.0.1 (the permitted IP, another port: RFC 8656 §9 permissions are by
 *   IP only) gets through coturn, and A's ICE drops it: nothing but STUN answers goes back;
 * - throughout, A sends relay traffic (Send indications, ChannelData) only to peers it has
 *   installed a permission for (CreatePermission or ChannelBind first), and none to the
 *   strangers other than STUN answers; A and B keep talking.
 * Without turnserver the test fails (as test_turn_coturn does). The server is killed by its PID.
 */
#include "ice/ice_turn.h"
#include "test_attack_net.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define TURNSERVER "/usr/bin/turnserver"
#define MAX_PEERS 32

static char dir[256];
static pid_t server_pid = -1;
static uint16_t turn_port;
static tern_addr_t turn_addr;

/* ---- coturn ---- */

static uint16_t free_port(void)
{
    for (int tries = 0; tries < 20; tries++) {
        tern_addr_t a;
        int u = udp_bind(&a);
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(a.port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok_tcp = t >= 0 && bind(t, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (t >= 0)
            close(t);
        close(u);
        if (ok_tcp)
            return a.port;
    }
    return 0;
}

static bool start_coturn(void)
{
    snprintf(dir, sizeof dir, "/tmp/tern-attack-turn-XXXXXX");
    if (!mkdtemp(dir))
        return false;
    turn_port = free_port();
    unsigned relay = 30000 + (unsigned)(getpid() % 200) * 100;
    char conf[320];
    snprintf(conf, sizeof conf, "%s/turnserver.conf", dir);
    FILE *f = fopen(conf, "w");
    if (!f || turn_port == 0) {
        if (f)
            fclose(f);
        return false;
    }
    fprintf(f,
            "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port=%u\nmin-port=%u\n"
            "max-port=%u\nlt-cred-mech\nuser=tern:secret\nrealm=tern.test\nfingerprint\n"
            "no-tls\nno-dtls\nno-cli\nallow-loopback-peers\npidfile=%s/turnserver.pid\n"
            "userdb=%s/turndb\nlog-file=%s/turn.log\nsimple-log\nno-stdout-log\n",
            turn_port, relay, relay + 99, dir, dir, dir);
    fclose(f);
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%u", turn_port);
    tern_addr_parse(text, &turn_addr);
    server_pid = fork();
    if (server_pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2); /* it complains about protocols it cannot open (SCTP) */
        execl(TURNSERVER, TURNSERVER, "-c", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; server_pid > 0 && i < 100; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(turn_port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool up = s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (s >= 0)
            close(s);
        if (up)
            return true;
        if (waitpid(server_pid, NULL, WNOHANG) == server_pid)
            break;
        usleep(50000);
    }
    return false;
}

static void stop_coturn(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        for (int i = 0; i < 50 && waitpid(server_pid, NULL, WNOHANG) == 0; i++)
            usleep(100000);
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
    if (dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            printf("# could not remove %s\n", dir);
    }
}

/* ---- what passes between A and coturn ---- */

typedef struct watch {
    node_t *a;
    uint32_t permitted[MAX_PEERS]; /* IPv4 addresses A asked permissions for */
    size_t permitted_count;
    struct {
        uint16_t channel;
        tern_addr_t peer;
    } channels[MAX_PEERS];
    size_t channel_count;
    unsigned sent_to_unpermitted; /* relay data A sent before asking a permission */
    unsigned sent_to_stranger;    /* relay data to a stranger that was not a STUN answer */
    unsigned from_far_stranger;   /* relay data coturn handed A from 127.0.0.2 */
    unsigned from_near_stranger;  /* ... from the stranger at 127.0.0.1 */
    unsigned relayed_out, relayed_in;
    tern_addr_t near, far; /* the strangers */
} watch_t;

static watch_t w;

static uint32_t ipv4(const tern_addr_t *a)
{
    return tern_load_u32(a->ip);
}

static bool is_permitted(const tern_addr_t *peer)
{
    for (size_t i = 0; i < w.permitted_count; i++)
        if (w.permitted[i] == ipv4(peer))
            return true;
    return false;
}

static void permit(const tern_addr_t *peer)
{
    if (!is_permitted(peer) && w.permitted_count < MAX_PEERS)
        w.permitted[w.permitted_count++] = ipv4(peer);
}

static const tern_addr_t *channel_peer(uint16_t channel)
{
    for (size_t i = 0; i < w.channel_count; i++)
        if (w.channels[i].channel == channel)
            return &w.channels[i].peer;
    return NULL;
}

/* Relay data A sends to `peer`: permitted first, and to a stranger only STUN. */
static void check_out(const tern_addr_t *peer, const uint8_t *data, size_t len)
{
    w.relayed_out++;
    if (!peer || !is_permitted(peer))
        w.sent_to_unpermitted++;
    if (peer && (ipv4(peer) == ipv4(&w.far) ||
                 (tern_addr_equal(peer, &w.near) && (len == 0 || data[0] > 3))))
        w.sent_to_stranger++;
}

static void check_in(const tern_addr_t *peer)
{
    w.relayed_in++;
    if (peer && ipv4(peer) == ipv4(&w.far))
        w.from_far_stranger++;
    if (peer && tern_addr_equal(peer, &w.near))
        w.from_near_stranger++;
}

static void watch_send(node_t *n, const tern_transmit_t *t)
{
    if (n != w.a || !tern_addr_equal(&t->remote, &turn_addr) || t->len == 0)
        return;
    uint16_t channel;
    const uint8_t *payload;
    size_t plen, flen;
    if (t->data[0] >= 0x40 && t->data[0] <= 0x4f &&
        tern_turn_channel_data_parse(t->data, t->len, false, &channel, &payload, &plen, &flen) ==
            TERN_OK) {
        check_out(channel_peer(channel), payload, plen);
        return;
    }
    tern_stun_msg_t m;
    if (tern_stun_parse(t->data, t->len, &m) != TERN_OK)
        return;
    if (m.method == TERN_STUN_CREATE_PERMISSION && m.msg_class == TERN_STUN_REQUEST)
        for (size_t i = 0; i < m.xor_peer_address_count; i++)
            permit(&m.xor_peer_address[i]);
    if (m.method == TERN_STUN_CHANNEL_BIND && m.msg_class == TERN_STUN_REQUEST &&
        m.xor_peer_address_count == 1 && w.channel_count < MAX_PEERS) {
        permit(&m.xor_peer_address[0]);
        w.channels[w.channel_count].channel = m.channel_number;
        w.channels[w.channel_count++].peer = m.xor_peer_address[0];
    }
    if (m.method == TERN_STUN_SEND && m.msg_class == TERN_STUN_INDICATION)
        check_out(m.xor_peer_address_count ? &m.xor_peer_address[0] : NULL, m.data_attr.p,
                  m.data_attr.len);
}

static void watch_receive(node_t *n, const tern_addr_t *from, const uint8_t *data, size_t len)
{
    if (n != w.a || !tern_addr_equal(from, &turn_addr) || len == 0)
        return;
    uint16_t channel;
    const uint8_t *payload;
    size_t plen, flen;
    if (data[0] >= 0x40 && data[0] <= 0x4f &&
        tern_turn_channel_data_parse(data, len, false, &channel, &payload, &plen, &flen) ==
            TERN_OK) {
        check_in(channel_peer(channel));
        return;
    }
    tern_stun_msg_t m;
    if (tern_stun_parse(data, len, &m) == TERN_OK && m.method == TERN_STUN_DATA &&
        m.msg_class == TERN_STUN_INDICATION)
        check_in(m.xor_peer_address_count ? &m.xor_peer_address[0] : NULL);
}

/* ---- the attack ---- */

static bool has_relay(void *arg)
{
    return ((node_t *)arg)->relayed.family != TERN_AF_UNSPEC;
}

static unsigned drain_socket(int fd)
{
    unsigned n = 0;
    uint8_t buf[2048];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
        n++;
    return n;
}

static void test_permissions(void)
{
    char url[64];
    snprintf(url, sizeof url, "turn:127.0.0.1:%u?transport=udp", turn_port);
    tern_ice_server_t server = {.url = url, .username = "tern", .credential = "secret"};
    tern_pc_config_t relay_only = {
        .ice_servers = &server, .ice_server_count = 1, .ice_transport_policy_relay = true};
    tern_pc_config_t plain = {0};
    node_t a, b;
    node_new(&a, "A", &relay_only);
    node_new(&b, "B", &plain);
    memset(&w, 0, sizeof w);
    w.a = &a;
    on_node_send = watch_send;
    on_node_receive = watch_receive;
    tern_addr_t far_addr, near_addr;
    int far = udp_bind_ip("127.0.0.2", &far_addr);
    int near = udp_bind(&near_addr);
    w.far = far_addr;
    w.near = near_addr;

    ok(connect_pair(&a, &b));
    ok(run(GIVE_UP_MS, has_relay, &a));
    tern_pc_pair_info_t info;
    ok(tern_pc_selected_pair(a.pc, &info) == TERN_OK);
    eq_str(info.local_type, "relay");
    ok(talk(&a, &b, 10));
    ok(talk(&b, &a, 10));
    ok(w.relayed_out > 0 && w.relayed_in > 0);

    /* The strangers hit A's relayed address with checks, DTLS and garbage. */
    const char *a_ufrag = tern_ice_local_ufrag(a.pc->ice);
    char user[128];
    snprintf(user, sizeof user, "%s:stranger", a_ufrag);
    uint8_t hello[64] = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 1, 0, 0, 39};
    uint8_t junk[100];
    memset(junk, 0x99, sizeof junk);
    for (int round = 0; round < 20; round++) {
        uint8_t req[256];
        size_t len =
            build_check(req, sizeof req, user, "wrong-password", round & 1, (uint64_t)round, false);
        int fds[2] = {far, near};
        for (int i = 0; i < 2; i++) {
            send_to(fds[i], &a.relayed, req, len);
            send_to(fds[i], &a.relayed, hello, sizeof hello);
            send_to(fds[i], &a.relayed, junk, sizeof junk);
        }
        run(20, NULL, NULL);
    }
    run(500, NULL, NULL);
    printf("# relayed out %u, in %u; from 127.0.0.2 %u, from the stranger at 127.0.0.1 %u\n",
           w.relayed_out, w.relayed_in, w.from_far_stranger, w.from_near_stranger);
    eq_int(w.from_far_stranger, 0); /* coturn kept it out: no permission for 127.0.0.2 */
    ok(w.from_near_stranger > 0);   /* 127.0.0.1 is permitted (by IP): it reached A ... */
    eq_int(w.sent_to_stranger, 0);  /* ... which answered it nothing but STUN */
    eq_int(w.sent_to_unpermitted, 0);
    eq_int(drain_socket(far), 0);
    ok(talk(&a, &b, 10));
    ok(tern_pc_selected_pair(a.pc, &info) == TERN_OK && tern_addr_equal(&info.remote, &b.addr));

    on_node_send = NULL;
    on_node_receive = NULL;
    close(far);
    close(near);
    node_free(&a);
    node_free(&b);
}

int main(void)
{
    uint64_t seed = 5;
    tern_ctx_config_t cfg = {.random_bytes = tern_splitmix_random_bytes, .random_user = &seed};
    if (getenv("TERN_LOG"))
        cfg.log = tern_log_stderr;
    if (tern_ctx_new(&cfg, &ctx) != TERN_OK)
        return 1;
    bool up = start_coturn();
    if (!up)
        printf("# coturn (%s) did not start\n", TURNSERVER);
    ok(up);
    if (up)
        subtest("turn permissions", test_permissions);
    stop_coturn();
    tern_ctx_handle_timeout(ctx, now_us() + TERN_SEC(60));
    tern_ctx_free(ctx);
    return check_done();
}
