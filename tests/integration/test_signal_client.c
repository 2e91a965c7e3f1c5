/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of the signaling client (include/tern/signaling.h) against the real
 * tern-signal, started here as a child process on 127.0.0.1 with an ephemeral port (and killed
 * by its pid at the end): two library clients in one room (the newcomer answers, a channel
 * opens, messages and custom messages flow, hang-up and bye free the peer), forced roles and
 * crossing offers (also between two clients told to offer), a third peer making a second pc on
 * each side, a peer that vanishes (leave), URL and connection failures (bad scheme, refused
 * port, HTTP 400, a silent server, a host name), freeing a client from its own callback,
 * welcome's iceServers given to the pcs (and the application's own winning), a hostile server
 * (garbage of every kind is dropped, an offer that is not SDP ends in bye, a close code and
 * reason reach on_closed), wss:// with a certificate made here; and
 * tern-echo as a child process with a library client on the other side (text, binary and
 * empty messages come back unchanged; SIGTERM exits 0).
 *
 * The paths of tern-signal and tern-echo come from CMake (TERN_SIGNAL_PATH, TERN_ECHO_PATH);
 * without them the test skips.
 */
#include "check.h"
#include "tern/signaling.h"
#include "tern/tern.h"
#include "ws/ws.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GIVE_UP_MS 20000
#define MAX_DC 8
#define MAX_MSGS 16

static tern_ctx_t *ctx;
static tern_loop_t *loop;

/* ------------------------------------------------------------------------------------------ */
/* Child processes                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct child {
    pid_t pid;
    int out;        /* its stdout, non-blocking; -1 once closed */
    char buf[4096]; /* what it printed so far */
    size_t len;
} child_t;

static bool spawn(child_t *c, char *const argv[])
{
    int fds[2];
    memset(c, 0, sizeof *c);
    c->out = -1;
    if (pipe(fds) != 0)
        return false;
    c->pid = fork();
    if (c->pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (c->pid == 0) {
        /* Never outlive the test, even when it crashes. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        /* The children inherit a blocked SIGTERM from nobody; make sure it is deliverable. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    c->out = fds[0];
    fcntl(c->out, F_SETFL, O_NONBLOCK);
    return true;
}

/* Take what the child printed since the last call. */
static void child_read(child_t *c)
{
    while (c->out >= 0 && c->len + 1 < sizeof c->buf) {
        ssize_t n = read(c->out, c->buf + c->len, sizeof c->buf - 1 - c->len);
        if (n <= 0)
            break;
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    }
}

static bool child_printed(child_t *c, const char *text)
{
    child_read(c);
    return c->len && strstr(c->buf, text) != NULL;
}

/* Stop a child with a signal and return its exit status (-1 if it did not exit normally). */
static int child_stop(child_t *c, int sig)
{
    int status = 0, code = -1;
    if (c->pid <= 0)
        return -1;
    kill(c->pid, sig);
    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid) {
            code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            c->pid = 0;
            break;
        }
        /* Keep the loop turning: a client of ours may talk to the child while it stops. */
        tern_loop_run_once(loop, 10);
    }
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &status, 0);
        c->pid = 0;
    }
    child_read(c);
    if (c->out >= 0)
        close(c->out);
    c->out = -1;
    return code;
}

/* ------------------------------------------------------------------------------------------ */
/* The server                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct server {
    child_t proc;
    char base[64]; /* "ws://127.0.0.1:PORT" or "wss://..." */
    uint16_t port;
} server_t;

static bool server_start_with(server_t *s, const char *cert, const char *key, char *const *extra)
{
#ifdef TERN_SIGNAL_PATH
    char *argv[24] = {TERN_SIGNAL_PATH, "--listen", "127.0.0.1:0", "--no-stun", "--log", "warn"};
    int n = 6;
    for (; extra && *extra && n < 16; extra++)
        argv[n++] = *extra;
    if (cert) {
        argv[n++] = "--tls-cert";
        argv[n++] = (char *)cert;
        argv[n++] = "--tls-key";
        argv[n++] = (char *)key;
    }
    argv[n] = NULL;
    memset(s, 0, sizeof *s);
    if (!spawn(&s->proc, argv))
        return false;
    /* It prints "tern-signal: ws://127.0.0.1:PORT/ws/ROOM ..." once it listens. */
    for (int i = 0; i < 1000; i++) {
        child_read(&s->proc);
        const char *p = strstr(s->proc.buf, cert ? "wss://127.0.0.1:" : "ws://127.0.0.1:");
        if (p && strchr(p, '\n')) {
            const char *port = strchr(p + 6, ':') + 1;
            s->port = (uint16_t)atoi(port);
            snprintf(s->base, sizeof s->base, "%s://127.0.0.1:%u", cert ? "wss" : "ws",
                     (unsigned)s->port);
            return s->port != 0;
        }
        struct pollfd pfd = {.fd = s->proc.out, .events = POLLIN};
        poll(&pfd, 1, 20);
    }
    child_stop(&s->proc, SIGKILL);
    return false;
#else
    (void)s;
    (void)cert;
    (void)key;
    (void)extra;
    return false;
#endif
}

static bool server_start(server_t *s, const char *cert, const char *key)
{
    return server_start_with(s, cert, key, NULL);
}

static void server_stop(server_t *s)
{
    ok(child_stop(&s->proc, SIGTERM) == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* A library client that records what happens                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct message {
    uint8_t data[64];
    size_t len;
    bool is_text;
} message_t;

typedef struct client {
    const char *name;
    tern_signaling_t *sig;
    bool make_channel; /* open "data" when offering */
    bool free_in_connected;
    /* what happened */
    bool connected, closed;
    char self_id[64];
    int closed_code;
    char closed_reason[160];
    int joined_seen;
    int offering_pcs, answering_pcs;
    int peers_left, peers_left_with_pc;
    char last_left[64];
    tern_dc_t *open_dcs[MAX_DC];
    int dc_opened, dc_closed;
    message_t msgs[MAX_MSGS];
    int msg_count;
    char custom_type[32], custom_from[64], custom_json[256];
    int errors_seen;
    size_t ice_count; /* the ICE servers of the last pc made */
    char ice_first[64], ice_user[32];
} client_t;

static void on_connected(tern_signaling_t *s, void *user, const char *self_id, const char *room)
{
    client_t *c = user;
    (void)room;
    c->connected = true;
    snprintf(c->self_id, sizeof c->self_id, "%s", self_id);
    if (c->free_in_connected) {
        tern_signaling_free(s);
        c->sig = NULL;
    }
}

static void on_peer_joined(tern_signaling_t *s, void *user, const char *peer_id)
{
    client_t *c = user;
    (void)s;
    (void)peer_id;
    c->joined_seen++;
}

static void on_peer_connection(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc,
                               bool offering)
{
    client_t *c = user;
    ok(tern_signaling_pc(s, peer_id) == pc);
    eq_str(tern_signaling_peer_id(s, pc), peer_id);
    const tern_pc_config_t *cfg = tern_pc_config(pc);
    c->ice_count = cfg->ice_server_count;
    if (cfg->ice_server_count) {
        snprintf(c->ice_first, sizeof c->ice_first, "%s", cfg->ice_servers[0].url);
        snprintf(c->ice_user, sizeof c->ice_user, "%s",
                 cfg->ice_server_count > 1 && cfg->ice_servers[1].username
                     ? cfg->ice_servers[1].username
                     : "");
    }
    if (offering)
        c->offering_pcs++;
    else
        c->answering_pcs++;
    tern_dc_t *dc;
    if (offering && c->make_channel)
        eq_int(tern_pc_create_data_channel(pc, tern_loop_now(loop), "data", NULL, &dc), 0);
}

static void on_peer_left(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc)
{
    client_t *c = user;
    c->peers_left++;
    snprintf(c->last_left, sizeof c->last_left, "%s", peer_id);
    if (pc) {
        c->peers_left_with_pc++;
        ok(tern_signaling_pc(s, peer_id) == pc);
        /* Its channels go with it, without callbacks: forget them. */
        for (int i = 0; i < MAX_DC; i++)
            if (c->open_dcs[i] && tern_dc_pc(c->open_dcs[i]) == pc)
                c->open_dcs[i] = NULL;
    }
}

static void on_sig_message(tern_signaling_t *s, void *user, const char *from, const char *type,
                           const char *json)
{
    client_t *c = user;
    (void)s;
    if (strcmp(type, "error") == 0) {
        c->errors_seen++;
        return;
    }
    snprintf(c->custom_type, sizeof c->custom_type, "%s", type);
    snprintf(c->custom_from, sizeof c->custom_from, "%s", from ? from : "");
    snprintf(c->custom_json, sizeof c->custom_json, "%s", json);
}

static void on_closed(tern_signaling_t *s, void *user, int code, const char *reason)
{
    client_t *c = user;
    (void)s;
    c->closed = true;
    c->closed_code = code;
    snprintf(c->closed_reason, sizeof c->closed_reason, "%s", reason);
}

static void on_open(tern_dc_t *dc, void *user)
{
    client_t *c = user;
    c->dc_opened++;
    for (int i = 0; i < MAX_DC; i++)
        if (!c->open_dcs[i]) {
            c->open_dcs[i] = dc;
            return;
        }
}

static void on_close(tern_dc_t *dc, void *user)
{
    client_t *c = user;
    c->dc_closed++;
    for (int i = 0; i < MAX_DC; i++)
        if (c->open_dcs[i] == dc)
            c->open_dcs[i] = NULL;
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    client_t *c = user;
    (void)dc;
    if (c->msg_count == MAX_MSGS)
        return;
    message_t *m = &c->msgs[c->msg_count++];
    m->len = len;
    m->is_text = is_text;
    if (len)
        memcpy(m->data, data, len < sizeof m->data ? len : sizeof m->data);
}

static const tern_signaling_callbacks_t sig_cbs = {
    .on_connected = on_connected,
    .on_peer_joined = on_peer_joined,
    .on_peer_connection = on_peer_connection,
    .on_peer_left = on_peer_left,
    .on_message = on_sig_message,
    .on_closed = on_closed,
};

static const tern_pc_callbacks_t pc_cbs = {
    .on_open = on_open,
    .on_close = on_close,
    .on_message = on_message,
};

static const char *const loopback[] = {"127.0.0.1"};
static const tern_pc_config_t pc_cfg = {.bind_addresses = loopback, .bind_address_count = 1};

static int client_join_cfg(client_t *c, const char *url, tern_signaling_role_t role,
                           uint32_t connect_timeout_ms, const char *ca, bool insecure)
{
    tern_signaling_config_t cfg = {
        .url = url,
        .role = role,
        .pc_config = &pc_cfg,
        .pc_callbacks = &pc_cbs,
        .pc_user = c,
        .connect_timeout_ms = connect_timeout_ms,
        .tls_ca_file = ca,
        .tls_insecure = insecure,
    };
    return tern_signaling_new(loop, &cfg, &sig_cbs, c, &c->sig);
}

static int client_join(client_t *c, const server_t *srv, const char *room,
                       tern_signaling_role_t role)
{
    char url[160];
    snprintf(url, sizeof url, "%s/ws/%s", srv->base, room);
    return client_join_cfg(c, url, role, 0, NULL, false);
}

static void client_free(client_t *c)
{
    tern_signaling_free(c->sig);
    c->sig = NULL;
}

static int open_count(const client_t *c)
{
    int n = 0;
    for (int i = 0; i < MAX_DC; i++)
        n += c->open_dcs[i] != NULL;
    return n;
}

static tern_dc_t *first_open(const client_t *c)
{
    for (int i = 0; i < MAX_DC; i++)
        if (c->open_dcs[i])
            return c->open_dcs[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Waiting                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef bool (*cond_fn)(void *arg);

static bool run_until(cond_fn cond, void *arg)
{
    tern_time_t give_up = tern_loop_now(loop) + (tern_time_t)GIVE_UP_MS * 1000;
    while (!cond(arg) && tern_loop_now(loop) < give_up)
        tern_loop_run_once(loop, 10);
    return cond(arg);
}

/* Run the loop a while (to see that nothing more happens). */
static void run_for(int ms)
{
    tern_time_t end = tern_loop_now(loop) + (tern_time_t)ms * 1000;
    while (tern_loop_now(loop) < end)
        tern_loop_run_once(loop, 10);
}

static bool is_connected(void *arg)
{
    return ((client_t *)arg)->connected;
}

static bool is_closed(void *arg)
{
    return ((client_t *)arg)->closed;
}

static bool one_open(void *arg)
{
    return open_count(arg) >= 1;
}

static bool two_open(void *arg)
{
    return open_count(arg) >= 2;
}

static bool one_left(void *arg)
{
    return ((client_t *)arg)->peers_left >= 1;
}

static bool two_left(void *arg)
{
    return ((client_t *)arg)->peers_left >= 2;
}

static bool has_custom(void *arg)
{
    return ((client_t *)arg)->custom_type[0] != '\0';
}

typedef struct pair {
    client_t *a, *b;
} pair_t;

static bool both_open(void *arg)
{
    pair_t *p = arg;
    return open_count(p->a) >= 1 && open_count(p->b) >= 1;
}

static bool has_msgs(void *arg)
{
    return ((client_t *)arg)->msg_count >= 1;
}

typedef struct printed {
    child_t *c;
    const char *text;
} printed_t;

static bool child_has_printed(void *arg)
{
    printed_t *p = arg;
    return child_printed(p->c, p->text);
}

/* Two clients in a room, each with an open channel to the other. */
static bool connect_pair(client_t *a, client_t *b, const server_t *srv, const char *room,
                         tern_signaling_role_t ra, tern_signaling_role_t rb)
{
    pair_t p = {a, b};
    if (client_join(a, srv, room, ra) != 0 || !run_until(is_connected, a))
        return false;
    if (client_join(b, srv, room, rb) != 0 || !run_until(is_connected, b))
        return false;
    return run_until(both_open, &p);
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_two_clients(server_t *srv)
{
    client_t a = {.name = "a", .make_channel = true}, b = {.name = "b", .make_channel = true};
    ok(connect_pair(&a, &b, srv, "two", TERN_SIGNALING_ROLE_AUTO, TERN_SIGNALING_ROLE_AUTO));
    /* The one already in the room offers, the newcomer answers (signaling-protocol.md). */
    eq_int(a.offering_pcs, 1);
    eq_int(a.answering_pcs, 0);
    eq_int(b.offering_pcs, 0);
    eq_int(b.answering_pcs, 1);
    eq_int(a.joined_seen, 1);
    eq_int(b.joined_seen, 1); /* welcome's peer list */
    eq_str(tern_signaling_self_id(a.sig), a.self_id);
    ok(strcmp(a.self_id, b.self_id) != 0);
    eq_int(tern_signaling_peer_count(a.sig), 1);
    eq_int(tern_signaling_peer_count(b.sig), 1);
    ok(tern_signaling_pc(a.sig, b.self_id) != NULL);
    ok(tern_signaling_pc(a.sig, "nobody") == NULL);
    ok(tern_signaling_peer_id(a.sig, tern_signaling_pc(b.sig, a.self_id)) == NULL);

    /* Messages both ways. */
    eq_int(tern_dc_send_text(first_open(&a), tern_loop_now(loop), "hi b", 4), 0);
    ok(run_until(has_msgs, &b));
    eq_int(b.msgs[0].len, 4);
    ok(b.msgs[0].is_text);
    ok(memcmp(b.msgs[0].data, "hi b", 4) == 0);
    static const uint8_t bin[3] = {0, 1, 255};
    eq_int(tern_dc_send(first_open(&b), tern_loop_now(loop), bin, 3), 0);
    ok(run_until(has_msgs, &a));
    eq_int(a.msgs[0].len, 3);
    ok(!a.msgs[0].is_text);
    ok(memcmp(a.msgs[0].data, bin, 3) == 0);

    /* A custom message to one peer: "to" and "from" set by the server. */
    eq_int(tern_signaling_send(a.sig, b.self_id, "{\"type\":\"hello\",\"n\":1,\"from\":\"x\"}"), 0);
    ok(run_until(has_custom, &b));
    eq_str(b.custom_type, "hello");
    eq_str(b.custom_from, a.self_id);
    ok(strstr(b.custom_json, "\"n\":1") != NULL);
    eq_int(tern_signaling_send(a.sig, NULL, "[1,2]"), TERN_ERR_PARSE);
    eq_int(tern_signaling_send(a.sig, NULL, "{\"type\":3}"), TERN_ERR_PARSE);
    eq_int(tern_signaling_send(a.sig, NULL, "{\"type\":\"x\""), TERN_ERR_PARSE);

    /* b hangs up: bye reaches a, which frees its pc; b's is gone at once. */
    eq_int(tern_signaling_hang_up(b.sig, a.self_id), 0);
    eq_int(tern_signaling_peer_count(b.sig), 0);
    eq_int(tern_signaling_hang_up(b.sig, a.self_id), TERN_ERR_NOT_FOUND);
    ok(run_until(one_left, &a));
    eq_int(a.peers_left_with_pc, 1);
    eq_str(a.last_left, b.self_id);
    eq_int(tern_signaling_peer_count(a.sig), 0);
    eq_int(b.peers_left, 0);

    /* b leaves the room: a sees it (leave or bye), with no pc left for it. */
    client_free(&b);
    ok(run_until(two_left, &a));
    eq_int(a.peers_left_with_pc, 1);
    ok(!a.closed);
    client_free(&a);
}

/* A member of the room in role member_role, then a newcomer told to offer: both offer, once. */
static void crossing_offers(const char *room, tern_signaling_role_t member_role,
                            const server_t *srv)
{
    client_t m = {.name = "member", .make_channel = true};
    client_t n = {.name = "newcomer", .make_channel = true};
    ok(connect_pair(&m, &n, srv, room, member_role, TERN_SIGNALING_ROLE_OFFER));
    eq_int(m.offering_pcs, 1);
    eq_int(n.offering_pcs, 1);
    eq_int(tern_signaling_peer_count(m.sig), 1);
    eq_int(tern_signaling_peer_count(n.sig), 1);
    ok(tern_pc_signaling_state(tern_signaling_pc(m.sig, n.self_id)) == TERN_SIGNALING_STABLE);
    ok(tern_pc_signaling_state(tern_signaling_pc(n.sig, m.self_id)) == TERN_SIGNALING_STABLE);
    eq_int(tern_dc_send_text(first_open(&m), tern_loop_now(loop), "x", 1), 0);
    ok(run_until(has_msgs, &n));
    eq_int(tern_dc_send_text(first_open(&n), tern_loop_now(loop), "y", 1), 0);
    ok(run_until(has_msgs, &m));
    client_free(&m);
    client_free(&n);
}

static void test_forced_roles(server_t *srv)
{
    /* An answerer in the room does not offer to a newcomer that is told to offer. */
    client_t a = {.name = "a", .make_channel = true}, b = {.name = "b", .make_channel = true};
    ok(connect_pair(&a, &b, srv, "forced", TERN_SIGNALING_ROLE_ANSWER, TERN_SIGNALING_ROLE_OFFER));
    eq_int(a.offering_pcs, 0);
    eq_int(a.answering_pcs, 1);
    eq_int(b.offering_pcs, 1);
    eq_int(b.answering_pcs, 0);
    client_free(&a);
    client_free(&b);

    /* Two answerers never connect. */
    client_t c = {.name = "c"}, d = {.name = "d"};
    eq_int(client_join(&c, srv, "answerers", TERN_SIGNALING_ROLE_ANSWER), 0);
    ok(run_until(is_connected, &c));
    eq_int(client_join(&d, srv, "answerers", TERN_SIGNALING_ROLE_ANSWER), 0);
    ok(run_until(is_connected, &d));
    run_for(300);
    eq_int(tern_signaling_peer_count(c.sig), 0);
    eq_int(tern_signaling_peer_count(d.sig), 0);
    client_free(&c);
    client_free(&d);

    /* Crossing offers: a newcomer told to offer meets a peer that offers to newcomers (AUTO),
     * or one told to offer as well. Either way the member gives way (answers) to the newcomer,
     * and both end up connected. */
    crossing_offers("glare", TERN_SIGNALING_ROLE_AUTO, srv);
    crossing_offers("offerers", TERN_SIGNALING_ROLE_OFFER, srv);
}

static void test_third_peer(server_t *srv)
{
    client_t a = {.name = "a", .make_channel = true}, b = {.name = "b", .make_channel = true};
    client_t c = {.name = "c", .make_channel = true};
    ok(connect_pair(&a, &b, srv, "three", TERN_SIGNALING_ROLE_AUTO, TERN_SIGNALING_ROLE_AUTO));
    eq_int(client_join(&c, srv, "three", TERN_SIGNALING_ROLE_AUTO), 0);
    ok(run_until(is_connected, &c));
    ok(run_until(two_open, &c));
    ok(run_until(two_open, &a));
    ok(run_until(two_open, &b));
    eq_int(c.answering_pcs, 2);
    eq_int(c.offering_pcs, 0);
    eq_int(c.joined_seen, 2);
    eq_int(tern_signaling_peer_count(a.sig), 2);
    eq_int(tern_signaling_peer_count(b.sig), 2);
    eq_int(tern_signaling_peer_count(c.sig), 2);
    ok(tern_signaling_pc(c.sig, a.self_id) != tern_signaling_pc(c.sig, b.self_id));
    client_free(&c);
    ok(run_until(one_left, &a));
    ok(run_until(one_left, &b));
    eq_int(tern_signaling_peer_count(a.sig), 1);
    client_free(&a);
    client_free(&b);
}

static void test_failures(server_t *srv)
{
    client_t c = {.name = "c"};
    eq_int(client_join_cfg(&c, "http://127.0.0.1/ws/x", 0, 0, NULL, false), TERN_ERR_INVALID_ARG);
    ok(c.sig == NULL);
    eq_int(client_join_cfg(&c, "ws:///ws/x", 0, 0, NULL, false), TERN_ERR_INVALID_ARG);
    eq_int(client_join_cfg(&c, "ws://127.0.0.1:99999/ws/x", 0, 0, NULL, false),
           TERN_ERR_INVALID_ARG);
    eq_int(client_join_cfg(&c, "ws://[::1/ws/x", 0, 0, NULL, false), TERN_ERR_INVALID_ARG);
    eq_int(client_join_cfg(&c, "ws://h/ws/a b", 0, 0, NULL, false), TERN_ERR_INVALID_ARG);
    eq_int(tern_signaling_new(loop, NULL, NULL, NULL, &c.sig), TERN_ERR_INVALID_ARG);

    /* Nobody listens: a refused connection. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    bind(fd, (struct sockaddr *)&sin, sizeof sin);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws/x", (unsigned)ntohs(sin.sin_port));
    c = (client_t){.name = "refused"};
    eq_int(client_join_cfg(&c, url, 0, 0, NULL, false), 0);
    ok(run_until(is_closed, &c));
    ok(!c.connected);
    eq_int(c.closed_code, 1006);
    ok(strstr(c.closed_reason, "refused") != NULL);
    client_free(&c);

    /* Listening but silent: the connect timeout. */
    listen(fd, 4);
    c = (client_t){.name = "silent"};
    eq_int(client_join_cfg(&c, url, 0, 300, NULL, false), 0);
    ok(run_until(is_closed, &c));
    eq_int(c.closed_code, 1006);
    eq_str(c.closed_reason, "timed out");
    client_free(&c);
    close(fd);

    /* A room name the server refuses: HTTP 400. */
    c = (client_t){.name = "badroom"};
    snprintf(url, sizeof url, "%s/ws/bad$room", srv->base);
    eq_int(client_join_cfg(&c, url, 0, 0, NULL, false), 0);
    ok(run_until(is_closed, &c));
    eq_int(c.closed_code, 1006);
    eq_str(c.closed_reason, "HTTP 400");
    client_free(&c);

    /* A host name, resolved on the helper thread ("localhost": ::1 may come first and be
     * refused, 127.0.0.1 is tried next). */
    c = (client_t){.name = "byname"};
    snprintf(url, sizeof url, "ws://localhost:%u/ws/byname", (unsigned)srv->port);
    eq_int(client_join_cfg(&c, url, 0, 0, NULL, false), 0);
    ok(run_until(is_connected, &c));
    /* A graceful close: on_closed with the normal code, nothing after it. */
    eq_int(tern_signaling_close(c.sig), 0);
    ok(!c.closed); /* never inside the call */
    ok(run_until(is_closed, &c));
    eq_int(c.closed_code, 1000);
    eq_int(tern_signaling_send(c.sig, NULL, "{\"type\":\"x\"}"), TERN_ERR_INVALID_STATE);
    client_free(&c);

    /* A name that does not resolve: one glibc refuses without asking a DNS server (an empty
     * label), so that the test sends nothing beyond loopback (TESTING.md). */
    c = (client_t){.name = "noname"};
    eq_int(client_join_cfg(&c, "ws://no..such:1/ws/x", 0, 0, NULL, false), 0);
    ok(run_until(is_closed, &c));
    ok(strstr(c.closed_reason, "resolve") != NULL);
    client_free(&c);

    /* Freed while resolving, and freed from its own callback. */
    c = (client_t){.name = "early"};
    eq_int(client_join_cfg(&c, url, 0, 0, NULL, false), 0);
    client_free(&c);
    c = (client_t){.name = "self-free", .free_in_connected = true};
    snprintf(url, sizeof url, "%s/ws/selffree", srv->base);
    eq_int(client_join_cfg(&c, url, 0, 0, NULL, false), 0);
    ok(run_until(is_connected, &c));
    ok(c.sig == NULL);
    run_for(100);
    ok(!c.closed);
}

static void test_echo(server_t *srv)
{
#ifdef TERN_ECHO_PATH
    char url[160];
    snprintf(url, sizeof url, "%s/ws/echo", srv->base);
    char *argv[] = {TERN_ECHO_PATH, "--signal", url, "--bind", "127.0.0.1", NULL};
    child_t echo;
    ok(spawn(&echo, argv));
    printed_t joined = {&echo, "joined "};
    ok(run_until(child_has_printed, &joined));

    /* We are the newcomer: tern-echo offers, with a channel named "echo". */
    client_t c = {.name = "c"};
    eq_int(client_join(&c, srv, "echo", TERN_SIGNALING_ROLE_AUTO), 0);
    ok(run_until(one_open, &c));
    eq_int(c.answering_pcs, 1);
    tern_dc_t *dc = first_open(&c);
    eq_str(tern_dc_label(dc), "echo");
    printed_t opened = {&echo, "open "};
    ok(run_until(child_has_printed, &opened));
    ok(strstr(echo.buf, " echo\n") != NULL);

    static const uint8_t bin[5] = {0, 1, 2, 128, 255};
    tern_time_t now = tern_loop_now(loop);
    eq_int(tern_dc_send_text(dc, now, "hello", 5), 0);
    eq_int(tern_dc_send(dc, now, bin, sizeof bin), 0);
    eq_int(tern_dc_send_text(dc, now, "", 0), 0);
    eq_int(tern_dc_send(dc, now, "", 0), 0);
    eq_int(tern_dc_send_text(dc, now, "h\xc3\xa9", 3), 0);
    tern_time_t give_up = tern_loop_now(loop) + (tern_time_t)GIVE_UP_MS * 1000;
    while (c.msg_count < 5 && tern_loop_now(loop) < give_up)
        tern_loop_run_once(loop, 10);
    eq_int(c.msg_count, 5);
    ok(c.msgs[0].is_text && c.msgs[0].len == 5 && memcmp(c.msgs[0].data, "hello", 5) == 0);
    ok(!c.msgs[1].is_text && c.msgs[1].len == 5 && memcmp(c.msgs[1].data, bin, 5) == 0);
    ok(c.msgs[2].is_text && c.msgs[2].len == 0);
    ok(!c.msgs[3].is_text && c.msgs[3].len == 0);
    ok(c.msgs[4].is_text && c.msgs[4].len == 3 && memcmp(c.msgs[4].data, "h\xc3\xa9", 3) == 0);

    /* A channel we open is accepted and echoed too. */
    tern_dc_t *mine;
    eq_int(tern_pc_create_data_channel(tern_dc_pc(dc), tern_loop_now(loop), "second", NULL, &mine),
           0);
    ok(run_until(two_open, &c));
    eq_int(tern_dc_send_text(mine, tern_loop_now(loop), "again", 5), 0);
    while (c.msg_count < 6 && tern_loop_now(loop) < give_up + (tern_time_t)GIVE_UP_MS * 1000)
        tern_loop_run_once(loop, 10);
    eq_int(c.msg_count, 6);
    ok(c.msgs[5].len == 5 && memcmp(c.msgs[5].data, "again", 5) == 0);

    /* SIGTERM: a clean exit, and bye reaches us. */
    eq_int(child_stop(&echo, SIGTERM), 0);
    ok(run_until(one_left, &c));
    eq_int(c.peers_left_with_pc, 1);
    eq_int(tern_signaling_peer_count(c.sig), 0);

    /* A tern-echo that vanishes (SIGKILL, no bye): the server's leave frees our pc. This time
     * it is the newcomer: we offer, with a channel of ours, which it accepts. */
    c.peers_left = c.peers_left_with_pc = 0;
    c.make_channel = true;
    memset(c.open_dcs, 0, sizeof c.open_dcs);
    ok(spawn(&echo, argv));
    ok(run_until(one_open, &c));
    eq_int(c.offering_pcs, 1);
    child_stop(&echo, SIGKILL);
    ok(run_until(one_left, &c));
    eq_int(c.peers_left_with_pc, 1);
    eq_int(tern_signaling_peer_count(c.sig), 0);
    client_free(&c);
#else
    (void)srv;
    printf("# skip echo: no TERN_ECHO_PATH\n");
#endif
}

static void test_ice_servers(void)
{
    /* welcome's iceServers (W3C RTCIceServer shape) become the pcs' ICE servers. */
    char *extra[] = {"--ice-server", "stun:127.0.0.1:3478", "--ice-server",
                     "turn:alice:s3cret@127.0.0.1:3479?transport=udp", NULL};
    server_t srv;
    if (!server_start_with(&srv, NULL, NULL, extra)) {
        ok(!"tern-signal with ICE servers started");
        return;
    }
    client_t a = {.name = "a", .make_channel = true}, b = {.name = "b", .make_channel = true};
    ok(connect_pair(&a, &b, &srv, "ice", TERN_SIGNALING_ROLE_AUTO, TERN_SIGNALING_ROLE_AUTO));
    eq_int(a.ice_count, 2);
    eq_str(a.ice_first, "stun:127.0.0.1:3478");
    eq_str(a.ice_user, "alice");
    eq_int(b.ice_count, 2);
    client_free(&a);
    client_free(&b);

    /* The application's own servers win. */
    static const tern_ice_server_t mine[] = {{.url = "stun:127.0.0.1:9"}};
    tern_pc_config_t own = pc_cfg;
    own.ice_servers = mine;
    own.ice_server_count = 1;
    client_t c = {.name = "c", .make_channel = true}, d = {.name = "d"};
    char url[160];
    snprintf(url, sizeof url, "%s/ws/ice2", srv.base);
    tern_signaling_config_t cfg = {
        .url = url, .pc_config = &own, .pc_callbacks = &pc_cbs, .pc_user = &c};
    eq_int(tern_signaling_new(loop, &cfg, &sig_cbs, &c, &c.sig), 0);
    ok(run_until(is_connected, &c));
    eq_int(client_join(&d, &srv, "ice2", TERN_SIGNALING_ROLE_AUTO), 0);
    ok(run_until(is_connected, &d));
    pair_t p = {&c, &d};
    ok(run_until(both_open, &p));
    eq_int(c.ice_count, 1);
    eq_str(c.ice_first, "stun:127.0.0.1:9");
    eq_int(d.ice_count, 2);
    client_free(&c);
    client_free(&d);
    server_stop(&srv);
}

/* ------------------------------------------------------------------------------------------ */
/* A hostile server: a WebSocket server written here that sends what tern-signal never would  */
/* ------------------------------------------------------------------------------------------ */

typedef struct fake {
    int listen_fd, fd;
    uint16_t port;
    tern_ws_t *ws;
    bool open, ended;
    char last[512]; /* the last text message from the client */
    int received;
} fake_t;

static bool fake_start(fake_t *f)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        listen(f->listen_fd, 4) != 0 || getsockname(f->listen_fd, (struct sockaddr *)&sin, &sl))
        return false;
    f->port = ntohs(sin.sin_port);
    return true;
}

static void fake_flush(fake_t *f)
{
    const uint8_t *data;
    size_t len;
    while (f->ws && f->fd >= 0 && tern_ws_poll_output(f->ws, &data, &len)) {
        ssize_t n = write(f->fd, data, len);
        if (n <= 0)
            break;
        tern_ws_consume_output(f->ws, (size_t)n);
    }
}

/* Accept, read, answer: one step, called between loop iterations. */
static void fake_poll(fake_t *f)
{
    if (f->fd < 0) {
        f->fd = accept4(f->listen_fd, NULL, NULL, SOCK_NONBLOCK);
        if (f->fd < 0)
            return;
        tern_ws_config_t cfg = {.role = TERN_WS_ROLE_SERVER};
        if (tern_ws_new(ctx, &cfg, tern_loop_now(loop), &f->ws) != 0)
            return;
    }
    uint8_t buf[4096];
    ssize_t n = read(f->fd, buf, sizeof buf);
    if (n > 0)
        tern_ws_handle_input(f->ws, tern_loop_now(loop), buf, (size_t)n);
    else if (n == 0)
        tern_ws_handle_eof(f->ws, tern_loop_now(loop));
    tern_ws_event_t ev;
    while (tern_ws_poll_event(f->ws, &ev)) {
        if (ev.type == TERN_WS_EV_REQUEST)
            tern_ws_accept(f->ws, tern_loop_now(loop), NULL);
        else if (ev.type == TERN_WS_EV_OPEN)
            f->open = true;
        else if (ev.type == TERN_WS_EV_CLOSE)
            f->ended = true;
        else if (ev.type == TERN_WS_EV_MESSAGE && ev.u.message.is_text) {
            size_t len =
                ev.u.message.len < sizeof f->last - 1 ? ev.u.message.len : sizeof f->last - 1;
            memcpy(f->last, ev.u.message.data, len);
            f->last[len] = '\0';
            f->received++;
        }
    }
    fake_flush(f);
}

static void fake_send(fake_t *f, const char *text)
{
    tern_ws_send_text(f->ws, tern_loop_now(loop), text, strlen(text));
    fake_flush(f);
}

static void fake_stop(fake_t *f)
{
    tern_ws_free(f->ws);
    if (f->fd >= 0)
        close(f->fd);
    close(f->listen_fd);
}

typedef struct fake_wait {
    fake_t *f;
    client_t *c;
    int what; /* 0: open, 1: client connected, 2: a message, 3: closed, 4: custom */
} fake_wait_t;

static bool fake_cond(void *arg)
{
    fake_wait_t *w = arg;
    fake_poll(w->f);
    switch (w->what) {
    case 0:
        return w->f->open;
    case 1:
        return w->c->connected;
    case 2:
        return w->f->received > 0;
    case 3:
        return w->c->closed;
    default:
        return w->c->custom_type[0] != '\0';
    }
}

static void test_hostile_server(void)
{
    fake_t f;
    client_t c = {.name = "c"};
    ok(fake_start(&f));
    char url[96];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws/h", (unsigned)f.port);
    eq_int(client_join_cfg(&c, url, TERN_SIGNALING_ROLE_ANSWER, 0, NULL, false), 0);
    fake_wait_t w = {&f, &c, 0};
    ok(run_until(fake_cond, &w));

    /* Messages before welcome are dropped; then a welcome with bad entries mixed in. */
    fake_send(&f, "{\"type\":\"join\",\"id\":\"early\"}");
    fake_send(&f, "{\"type\":\"welcome\",\"id\":\"me\",\"room\":\"h\",\"peers\":[\"p1\",5,"
                  "\"bad id\",\"\",null],\"iceServers\":[{\"urls\":[\"stun:x:1\",\"http://no\",3]},"
                  "{\"urls\":5},7,{\"url\":\"turn:y:2\",\"username\":\"u\",\"credential\":9}]}");
    w.what = 1;
    ok(run_until(fake_cond, &w));
    eq_int(c.joined_seen, 1);
    eq_str(c.self_id, "me");

    /* Garbage of every kind: nothing breaks, nothing is made. */
    static const char *const junk[] = {
        "not json",
        "[]",
        "{}",
        "{\"type\":5}",
        "{\"type\":\"join\"}",
        "{\"type\":\"join\",\"id\":\"\\u0001x\"}",
        "{\"type\":\"leave\",\"id\":7}",
        "{\"type\":\"welcome\",\"id\":\"again\",\"peers\":[]}",
        "{\"type\":\"offer\",\"from\":\"p1\"}",
        "{\"type\":\"offer\",\"from\":\"p1\",\"sdp\":7}",
        "{\"type\":\"answer\",\"from\":\"p2\",\"sdp\":\"v=0\"}",
        "{\"type\":\"candidate\",\"from\":\"p2\",\"candidate\":\"candidate:x\"}",
        "{\"type\":\"candidate\",\"from\":\"p1\",\"candidate\":5}",
        "{\"type\":\"bye\",\"from\":\"nobody\"}",
        "{\"type\":\"custom\",\"from\":7}",
        "{\"type\":\"offer\",\"from\":\"me\",\"sdp\":\"v=0\"}",
        "{\"type\":\"a\",\"type\":\"b\"}",
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        fake_send(&f, junk[i]);
    static char deep[40001];
    memset(deep, '[', 20000);
    memset(deep + 20000, ']', 20000);
    fake_send(&f, deep);
    tern_ws_send_binary(f.ws, tern_loop_now(loop), "\x01\x02", 2);
    fake_flush(&f);
    /* An offer that is not SDP: a pc is made, refused, and we say bye to its sender. */
    fake_send(&f, "{\"type\":\"offer\",\"from\":\"p1\",\"sdp\":\"garbage\"}");
    w.what = 2;
    ok(run_until(fake_cond, &w));
    ok(strstr(f.last, "\"bye\"") && strstr(f.last, "\"to\":\"p1\""));
    eq_int(c.answering_pcs, 1);
    eq_int(c.peers_left_with_pc, 1);
    eq_int(tern_signaling_peer_count(c.sig), 0);
    /* Still alive: a custom message gets through. */
    fake_send(&f, "{\"type\":\"ping-app\",\"from\":\"p1\",\"x\":[1,2]}");
    w.what = 4;
    ok(run_until(fake_cond, &w));
    eq_str(c.custom_type, "ping-app");
    eq_str(c.custom_from, "p1");
    ok(!c.closed);

    /* The server ends it with room-full (1008): on_closed has its code and reason. */
    tern_ws_close(f.ws, tern_loop_now(loop), 1008, "room-full");
    fake_flush(&f);
    w.what = 3;
    ok(run_until(fake_cond, &w));
    eq_int(c.closed_code, 1008);
    eq_str(c.closed_reason, "room-full");
    client_free(&c);
    fake_stop(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* wss:// with a self-signed certificate for "localhost" and 127.0.0.1                       */
/* ------------------------------------------------------------------------------------------ */

static bool write_pem(char *path, X509 *x, EVP_PKEY *k)
{
    strcpy(path, "/tmp/tern-sigclient-XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return false;
    int done = x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    return done == 1;
}

static bool make_certificate(char *cert_path, char *key_path)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    bool done = false;
    if (k && x) {
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, k);
        X509_NAME *name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                                   -1, 0);
        X509_set_issuer_name(x, name);
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        X509_EXTENSION *san =
            X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        X509_EXTENSION *bc =
            X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
        if (san && bc && X509_add_ext(x, san, -1) && X509_add_ext(x, bc, -1) &&
            X509_sign(x, k, EVP_sha256()))
            done = write_pem(cert_path, x, NULL) && write_pem(key_path, NULL, k);
        X509_EXTENSION_free(san);
        X509_EXTENSION_free(bc);
    }
    X509_free(x);
    EVP_PKEY_free(k);
    return done;
}

static void test_wss(void)
{
    char cert[64] = "", key[64] = "";
    server_t srv;
    ok(make_certificate(cert, key));
    if (!server_start(&srv, cert, key)) {
        ok(!"tern-signal with TLS started");
        unlink(cert);
        unlink(key);
        return;
    }
    client_t a = {.name = "a", .make_channel = true}, b = {.name = "b", .make_channel = true};
    pair_t p = {&a, &b};
    char url[160];
    /* Verified against the certificate itself, by name (resolved) and by IP address. */
    snprintf(url, sizeof url, "wss://localhost:%u/ws/secure", (unsigned)srv.port);
    eq_int(client_join_cfg(&a, url, 0, 0, cert, false), 0);
    ok(run_until(is_connected, &a));
    snprintf(url, sizeof url, "wss://127.0.0.1:%u/ws/secure", (unsigned)srv.port);
    eq_int(client_join_cfg(&b, url, 0, 0, NULL, true), 0);
    ok(run_until(is_connected, &b));
    ok(run_until(both_open, &p));
    client_free(&a);
    client_free(&b);

    /* The system's trust store does not know it: the handshake fails. */
    client_t c = {.name = "c"};
    eq_int(client_join_cfg(&c, url, 0, 0, NULL, false), 0);
    ok(run_until(is_closed, &c));
    ok(!c.connected);
    eq_int(c.closed_code, 1006);
    client_free(&c);
    server_stop(&srv);
    unlink(cert);
    unlink(key);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    tern_log_stderr_set_filter("error"); /* the failures tested log warnings */
    tern_ctx_config_t cfg = {.log_level = TERN_LOG_ERROR};
    if (tern_ctx_new(&cfg, &ctx) != 0 || tern_loop_new(ctx, &loop) != 0) {
        printf("not ok 1 - context and loop\n");
        return 1;
    }
    server_t srv;
    if (!server_start(&srv, NULL, NULL)) {
#ifdef TERN_SIGNAL_PATH
        ok(!"tern-signal started");
#else
        printf("# skip: no TERN_SIGNAL_PATH\n");
#endif
        tern_loop_free(loop);
        tern_ctx_free(ctx);
        return check_done();
    }
    subtest_call("two clients", test_two_clients(&srv));
    subtest_call("forced roles and crossing offers", test_forced_roles(&srv));
    subtest_call("a third peer", test_third_peer(&srv));
    subtest_call("failures", test_failures(&srv));
    subtest_call("tern-echo", test_echo(&srv));
    server_stop(&srv);
    subtest_call("welcome's ICE servers", test_ice_servers());
    subtest_call("a hostile server", test_hostile_server());
    subtest_call("wss", test_wss());
    tern_loop_free(loop);
    tern_ctx_free(ctx);
    return check_done();
}
