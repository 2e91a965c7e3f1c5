/* SPDX-License-Identifier: MIT */
/*
 * TURN against a real server: Debian's coturn (turnserver) started as a child process on
 * 127.0.0.1 with a generated configuration in a temporary folder (long-term credentials, a TLS
 * listener with a self-signed certificate that names 127.0.0.1), and two peer connections on
 * loopback driven by tern_loop with the W3C iceTransportPolicy "relay", so that the only
 * usable path is through coturn. They connect and exchange messages over a UDP allocation (the
 * server given by name, resolved on the loop's resolver thread), a TCP allocation and a TLS
 * one ("turns:"), and each side's selected pair must be relay to relay. Over TLS without a CA
 * that vouches for the server, gathering ends without a relay and a warning says why. The
 * server is killed by its PID at the end. Without turnserver the test fails. Deadlines only say
 * when to give up.
 */
#include "check.h"

#include <tern/tern.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GIVE_UP_MS 30000
#define TURNSERVER "/usr/bin/turnserver"

static char dir[256];
static pid_t server_pid = -1;
static uint16_t port_plain, port_tls;
static tern_ctx_t *tern_ctx_of_test;

/* ---- the server ---- */

/* A port free for both UDP and TCP on 127.0.0.1 now (the kernel picks it). */
static uint16_t free_port(void)
{
    for (int tries = 0; tries < 20; tries++) {
        int t = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        if (t < 0 || bind(t, (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(t, (struct sockaddr *)&a, &len) != 0) {
            if (t >= 0)
                close(t);
            continue;
        }
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        bool ok_udp = u >= 0 && bind(u, (struct sockaddr *)&a, sizeof a) == 0;
        if (u >= 0)
            close(u);
        close(t);
        if (ok_udp)
            return ntohs(a.sin_port);
    }
    return 0;
}

static bool run(const char *cmd)
{
    int rc = system(cmd);
    return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

static bool write_config(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s/key.pem -out %s/cert.pem -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
             dir, dir);
    if (!run(cmd))
        return false;
    port_plain = free_port();
    port_tls = free_port();
    /* Relay ports: a range of its own per run, away from the kernel's ephemeral ports. */
    unsigned relay = 20000 + (unsigned)(getpid() % 200) * 100;
    char path[300];
    snprintf(path, sizeof path, "%s/turnserver.conf", dir);
    FILE *f = fopen(path, "w");
    if (!f || port_plain == 0 || port_tls == 0 || port_plain == port_tls) {
        if (f)
            fclose(f);
        return false;
    }
    fprintf(f,
            "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port=%u\n"
            "tls-listening-port=%u\nmin-port=%u\nmax-port=%u\n"
            "lt-cred-mech\nuser=tern:secret\nrealm=tern.test\nfingerprint\n"
            "cert=%s/cert.pem\npkey=%s/key.pem\nno-dtls\nno-cli\nallow-loopback-peers\n"
            "pidfile=%s/turnserver.pid\nuserdb=%s/turndb\nlog-file=%s/turn.log\n"
            "simple-log\nno-stdout-log\n",
            port_plain, port_tls, relay, relay + 99, dir, dir, dir, dir, dir);
    fclose(f);
    return true;
}

static bool server_listening(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port_plain),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool up = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0)
        close(s);
    return up;
}

static bool start_server(void)
{
    char conf[300];
    snprintf(conf, sizeof conf, "%s/turnserver.conf", dir);
    server_pid = fork();
    if (server_pid == 0) {
        execl(TURNSERVER, TURNSERVER, "-c", conf, (char *)NULL);
        _exit(127);
    }
    if (server_pid < 0)
        return false;
    for (int i = 0; i < 100; i++) {
        if (server_listening())
            return true;
        if (waitpid(server_pid, NULL, WNOHANG) == server_pid) {
            server_pid = -1;
            return false;
        }
        usleep(50000);
    }
    return false;
}

static void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        for (int i = 0; i < 50 && waitpid(server_pid, NULL, WNOHANG) == 0; i++)
            usleep(100000);
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
    char cmd[400];
    if (getenv("TERN_KEEP_TURN_DIR"))
        printf("# coturn folder kept: %s\n", dir);
    else if (dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        run(cmd);
    }
}

/* ---- two peers ---- */

typedef struct peer {
    tern_loop_t *loop;
    tern_pc_t *pc;
    struct peer *other;
    tern_dc_t *dc;
    bool open, failed;
    char received[128];
} peer_t;

static void on_ice_candidate(tern_pc_t *pc, void *user, const char *candidate, const char *mid,
                             int mline_index)
{
    (void)pc;
    (void)mline_index;
    peer_t *p = user;
    tern_pc_add_ice_candidate(p->other->pc, tern_loop_now(p->loop), candidate, mid);
}

static void on_connection_state(tern_pc_t *pc, void *user, tern_pc_state_t s)
{
    (void)pc;
    if (s == TERN_PC_STATE_FAILED)
        ((peer_t *)user)->failed = true;
}

static void on_data_channel(tern_pc_t *pc, void *user, tern_dc_t *dc)
{
    (void)pc;
    peer_t *p = user;
    p->dc = dc;
    p->open = true;
}

static void on_open(tern_dc_t *dc, void *user)
{
    (void)dc;
    ((peer_t *)user)->open = true;
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    (void)is_text;
    peer_t *p = user;
    snprintf(p->received, sizeof p->received, "%.*s", (int)len, (const char *)data);
    /* The answering side echoes. */
    if (strncmp(p->received, "ping", 4) == 0) {
        char pong[128];
        snprintf(pong, sizeof pong, "pong%s", p->received + 4);
        tern_dc_send_text(dc, tern_loop_now(p->loop), pong, strlen(pong));
    }
}

static const tern_pc_callbacks_t callbacks = {
    .on_ice_candidate = on_ice_candidate,
    .on_connection_state = on_connection_state,
    .on_data_channel = on_data_channel,
    .on_open = on_open,
    .on_message = on_message,
};

static bool run_until(tern_loop_t *loop, bool (*done)(peer_t *, peer_t *), peer_t *a, peer_t *b)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (done(a, b))
            return true;
        if (a->failed || b->failed)
            return false;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms > GIVE_UP_MS)
            return false;
        tern_loop_run_once(loop, 50);
    }
}

static bool both_open(peer_t *a, peer_t *b)
{
    return a->open && b->open;
}

static bool got_pong(peer_t *a, peer_t *b)
{
    (void)b;
    return strncmp(a->received, "pong", 4) == 0;
}

static void negotiate(peer_t *a, peer_t *b)
{
    tern_time_t now = tern_loop_now(a->loop);
    char *offer = NULL, *answer = NULL;
    eq_int(tern_pc_create_data_channel(a->pc, now, "chat", NULL, &a->dc), 0);
    eq_int(tern_pc_create_offer(a->pc, now, &offer), 0);
    eq_int(tern_pc_set_local_description(a->pc, now, TERN_SDP_OFFER, offer), 0);
    eq_int(tern_pc_set_remote_description(b->pc, now, TERN_SDP_OFFER, offer), 0);
    eq_int(tern_pc_create_answer(b->pc, now, &answer), 0);
    eq_int(tern_pc_set_local_description(b->pc, now, TERN_SDP_ANSWER, answer), 0);
    eq_int(tern_pc_set_remote_description(a->pc, now, TERN_SDP_ANSWER, answer), 0);
    tern_free(tern_ctx_of_test, offer);
    tern_free(tern_ctx_of_test, answer);
}

/* A pc on 127.0.0.1 that may only use relays of server; ca: the TLS trust (NULL: the system's). */
static tern_pc_config_t relay_only(const tern_ice_server_t *server, const char *ca)
{
    static const char *bind[] = {"127.0.0.1"};
    return (tern_pc_config_t){.ice_servers = server,
                              .ice_server_count = 1,
                              .bind_addresses = bind,
                              .bind_address_count = 1,
                              .include_loopback = true,
                              .ice_transport_policy_relay = true,
                              .turn_tls_ca_file = ca};
}

/* Two relay-only peers through one TURN URL; they must connect through the relay. */
static void connect_through(const char *name, const char *url)
{
    tern_ctx_t *ctx = tern_ctx_of_test;
    tern_loop_t *loop;
    if (tern_loop_new(ctx, &loop) != 0) {
        ok(false);
        return;
    }
    char ca[300];
    snprintf(ca, sizeof ca, "%s/cert.pem", dir);
    tern_ice_server_t server = {.url = url, .username = "tern", .credential = "secret"};
    tern_pc_config_t cfg = relay_only(&server, ca);
    peer_t a = {.loop = loop}, b = {.loop = loop};
    a.other = &b;
    b.other = &a;
    tern_time_t now = tern_loop_now(loop);
    eq_int(tern_pc_new(ctx, &cfg, now, &a.pc), 0);
    eq_int(tern_pc_new(ctx, &cfg, now, &b.pc), 0);
    eq_int(tern_loop_add_pc(loop, a.pc, &callbacks, &a), 0);
    eq_int(tern_loop_add_pc(loop, b.pc, &callbacks, &b), 0);
    negotiate(&a, &b);
    bool opened = run_until(loop, both_open, &a, &b);
    if (!opened)
        printf("# %s: not open (a %s, b %s)\n", name,
               tern_pc_state_name(tern_pc_connection_state(a.pc)),
               tern_pc_state_name(tern_pc_connection_state(b.pc)));
    ok(opened);
    if (opened) {
        char ping[64];
        snprintf(ping, sizeof ping, "ping over %s", name);
        eq_int(tern_dc_send_text(a.dc, tern_loop_now(loop), ping, strlen(ping)), 0);
        ok(run_until(loop, got_pong, &a, &b));
        eq_str(b.received, ping);
        tern_pc_pair_info_t pa, pb;
        eq_int(tern_pc_selected_pair(a.pc, &pa), 0);
        eq_int(tern_pc_selected_pair(b.pc, &pb), 0);
        eq_str(pa.local_type, "relay");
        eq_str(pa.remote_type, "relay");
        eq_str(pb.local_type, "relay");
    }
    tern_pc_close(a.pc, tern_loop_now(loop));
    tern_pc_close(b.pc, tern_loop_now(loop));
    for (int i = 0; i < 5; i++)
        tern_loop_run_once(loop, 10);
    tern_loop_remove_pc(loop, a.pc);
    tern_loop_remove_pc(loop, b.pc);
    tern_pc_free(a.pc);
    tern_pc_free(b.pc);
    tern_loop_free(loop);
}

static void over_udp_named(void)
{
    char url[128];
    snprintf(url, sizeof url, "turn:localhost:%u?transport=udp", port_plain);
    connect_through("udp", url);
}

static void over_tcp(void)
{
    char url[128];
    snprintf(url, sizeof url, "turn:127.0.0.1:%u?transport=tcp", port_plain);
    connect_through("tcp", url);
}

static void over_tls(void)
{
    char url[128];
    snprintf(url, sizeof url, "turns:127.0.0.1:%u", port_tls);
    connect_through("tls", url);
}

/* ---- a certificate we do not trust ---- */

typedef struct untrusted {
    bool gathered;
    int relay_candidates;
    char warning[512]; /* the first warning about the TURN server */
} untrusted_t;

static void capture_log(void *user, tern_log_level_t level, const char *module, const char *msg)
{
    untrusted_t *u = user;
    (void)module;
    if (level <= TERN_LOG_WARN && !u->warning[0] && strstr(msg, "TURN server"))
        snprintf(u->warning, sizeof u->warning, "%s", msg);
}

static void count_relay(tern_pc_t *pc, void *user, const char *candidate, const char *mid,
                        int mline_index)
{
    (void)pc;
    (void)mid;
    (void)mline_index;
    if (strstr(candidate, " typ relay"))
        ((untrusted_t *)user)->relay_candidates++;
}

static void note_gathered(tern_pc_t *pc, void *user, tern_ice_gathering_state_t st)
{
    (void)pc;
    if (st == TERN_ICE_GATHERING_COMPLETE)
        ((untrusted_t *)user)->gathered = true;
}

/*
 * "turns:" to a server whose certificate nobody vouches for (coturn's is self-signed, and no CA
 * file is given, so the system's trust store decides): no relay, gathering still completes, and
 * a warning names the server and why its certificate was refused.
 */
static void tls_untrusted(void)
{
    untrusted_t u = {0};
    tern_ctx_config_t ccfg = {.log = capture_log, .log_user = &u, .log_level = TERN_LOG_WARN};
    tern_ctx_t *ctx;
    tern_loop_t *loop;
    if (!ok(tern_ctx_new(&ccfg, &ctx) == 0))
        return;
    if (!ok(tern_loop_new(ctx, &loop) == 0)) {
        tern_ctx_free(ctx);
        return;
    }
    char url[128];
    snprintf(url, sizeof url, "turns:127.0.0.1:%u", port_tls);
    tern_ice_server_t server = {.url = url, .username = "tern", .credential = "secret"};
    tern_pc_config_t cfg = relay_only(&server, NULL);
    static const tern_pc_callbacks_t cbs = {.on_ice_candidate = count_relay,
                                            .on_ice_gathering_state = note_gathered};
    tern_pc_t *pc;
    tern_dc_t *dc;
    char *offer = NULL;
    tern_time_t now = tern_loop_now(loop);
    eq_int(tern_pc_new(ctx, &cfg, now, &pc), 0);
    eq_int(tern_loop_add_pc(loop, pc, &cbs, &u), 0);
    eq_int(tern_pc_create_data_channel(pc, now, "x", NULL, &dc), 0);
    eq_int(tern_pc_create_offer(pc, now, &offer), 0);
    eq_int(tern_pc_set_local_description(pc, now, TERN_SDP_OFFER, offer), 0);
    tern_free(ctx, offer);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long ms = 0;
    while (!u.gathered && ms <= GIVE_UP_MS) {
        tern_loop_run_once(loop, 50);
        clock_gettime(CLOCK_MONOTONIC, &t);
        ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
    }
    ok(u.gathered);
    eq_int(u.relay_candidates, 0);
    char where[64];
    snprintf(where, sizeof where, "TURN server 127.0.0.1:%u (tls)", port_tls);
    printf("# gathering took %ld ms; the warning: \"%s\"\n", ms, u.warning);
    ok(strstr(u.warning, where) && strstr(u.warning, "certificate verify failed") &&
       strstr(u.warning, "(self-signed certificate)"));
    tern_pc_close(pc, tern_loop_now(loop));
    tern_loop_remove_pc(loop, pc);
    tern_pc_free(pc);
    tern_loop_free(loop);
    tern_ctx_free(ctx);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (access(TURNSERVER, X_OK) != 0) {
        /* A missing server is a failure, not a skip: scripts/setup.sh test installs it. */
        printf("# %s not installed (scripts/setup.sh test installs coturn)\n", TURNSERVER);
        ok(false);
        return check_done();
    }
    snprintf(dir, sizeof dir, "/tmp/tern-coturn-XXXXXX");
    if (!mkdtemp(dir) || !write_config() || !start_server()) {
        printf("# coturn did not start (folder %s)\n", dir);
        ok(false);
        stop_server();
        return check_done();
    }
    if (tern_ctx_new(NULL, &tern_ctx_of_test) != 0)
        return 1;
    subtest("relay over udp (name resolved)", over_udp_named);
    subtest("relay over tcp", over_tcp);
    subtest("relay over tls", over_tls);
    subtest("tls to a server whose certificate is not trusted", tls_untrusted);
    tern_ctx_free(tern_ctx_of_test);
    stop_server();
    return check_done();
}
