/* SPDX-License-Identifier: MIT */
/*
 * The agent's TURN client (RFC 8656), sans-IO: allocations over UDP, TCP or TLS with long-term
 * credentials (RFC 8489 §9.2, 401 and 438 answered with realm and nonce), refreshes before
 * expiry (§7), permissions for the IPs of remote candidates paired with a relay candidate and
 * their refresh every 4 minutes (§9), a channel bound to the remote of the selected pair and
 * refreshed every 8 minutes (§12), Send indications before that and ChannelData after (§10,
 * §12.4), Data indications and ChannelData unwrapped only from peers that have a permission,
 * the stream framing of TCP and TLS (§12.5: ChannelData padded to 4 bytes) through the stream
 * seam of ice_turn.h, and deallocation (a Refresh with lifetime 0) on close. Everything is
 * bounded: 8 allocations, 32 permissions and 8 channels each, 64 KiB of unframed input and
 * 256 KiB of unsent output per stream.
 */
#include "ice/ice_agent.h"
#include "ice/ice_turn.h"

#include <stdio.h>
#include <string.h>

#define TURN_MAX_ALLOCS 8
#define TURN_MAX_PERMS 32
#define TURN_MAX_CHANNELS 8
#define TURN_MAX_AUTH_TRIES 3 /* 401 then 438s: a server that keeps refusing is given up */
#define TURN_REALM_MAX 763    /* RFC 8489 §14.9: < 128 characters, at most 763 bytes */
#define TURN_NONCE_MAX 763    /* RFC 8489 §14.10 */
#define TURN_MSG_MAX 2048     /* our requests: credentials, realm, nonce, a few attributes */

#define TURN_RTO_US 500000                /* RFC 8489 §6.2.1: initial RTO, doubled per send */
#define TURN_RTO_MAX_US 1600000           /* as the agent's checks */
#define TURN_UDP_MAX_SENDS 5              /* 0, 0.5, 1.5, 3.1, 4.7 s: given up at 6.3 s */
#define TURN_STREAM_TXN_US 8000000        /* RFC 8489 §6.2.2: no retransmission on a stream */
#define TURN_CONNECT_US 5000000           /* a TCP or TLS connection that does not come up */
#define TURN_LIFETIME_S 600               /* RFC 8656 §7.2: the default and what we ask for */
#define TURN_REFRESH_EARLY_S 60           /* refresh this long before the allocation expires */
#define TURN_PERM_LIFETIME_US 300000000   /* RFC 8656 §9: 5 minutes */
#define TURN_PERM_REFRESH_US 240000000    /* refreshed well within it */
#define TURN_CHANNEL_REFRESH_US 480000000 /* RFC 8656 §12: bindings last 10 minutes */
#define TURN_UDP_PROTOCOL 17              /* RFC 8656 §18.7: REQUESTED-TRANSPORT UDP */
/* Unframed input per stream: a read of up to 64 KiB behind a partial frame (the largest is
 * 20 + 65535 bytes of STUN). */
#define TURN_STREAM_RX_MAX (2 * 65536 + 64)
#define TURN_STREAM_TX_MAX (256 * 1024) /* unsent bytes per stream; then messages drop */
#define TURN_SCRATCH (65536 + 128)      /* a Send indication around the largest datagram */

typedef enum {
    TXK_NONE = 0,
    TXK_ALLOCATE,
    TXK_REFRESH,
    TXK_PERMISSION,
    TXK_CHANNEL,
} turn_txn_kind_t;

typedef struct turn_txn {
    uint8_t kind; /* turn_txn_kind_t; TXK_NONE: idle */
    uint8_t sends;
    uint8_t auth_tries;
    uint16_t index; /* permission or channel index */
    uint8_t tid[TERN_STUN_TID_LEN];
    uint32_t rto_us;
    tern_time_t next_send; /* UDP: the next retransmission; stream: the give-up time */
} turn_txn_t;

typedef enum { PERM_PENDING, PERM_OK, PERM_FAILED } turn_perm_state_t;

typedef struct turn_perm {
    tern_addr_t ip; /* port 0: permissions are per IP (RFC 8656 §9) */
    uint8_t state;
    tern_time_t refresh_at;
    turn_txn_t txn;
} turn_perm_t;

typedef enum { CHAN_PENDING, CHAN_BOUND, CHAN_FAILED } turn_chan_state_t;

typedef struct turn_chan {
    tern_addr_t peer;
    uint16_t number;
    uint8_t state;
    tern_time_t refresh_at;
    turn_txn_t txn;
} turn_chan_t;

typedef enum {
    ALLOC_WAITING,    /* for a host socket, or for the fallback delay */
    ALLOC_CONNECTING, /* stream requested, not connected yet */
    ALLOC_ALLOCATING,
    ALLOC_READY,
    ALLOC_FAILED,
    ALLOC_CLOSED,
} turn_alloc_state_t;

typedef struct turn_alloc {
    /* configuration */
    tern_addr_t server;
    tern_turn_transport_t transport;
    char username[TERN_TURN_CRED_MAX + 1];
    char password[TERN_TURN_CRED_MAX + 1];
    char server_name[TERN_ICE_URL_HOST_MAX + 1];
    int fallback_of;
    tern_time_t start_at;

    /* state */
    turn_alloc_state_t state;
    bool answered;    /* the server said anything: a fallback is not needed */
    tern_addr_t base; /* UDP: the host socket the allocation lives on */
    uint32_t stream_id;
    bool want_open, want_close;
    tern_time_t connect_deadline;
    char realm[TURN_REALM_MAX + 1];
    char nonce[TURN_NONCE_MAX + 1];
    uint8_t key[TERN_STUN_LONG_TERM_KEY_LEN];
    bool has_key;
    tern_addr_t relayed, mapped;
    tern_time_t expires, refresh_at;
    int local;      /* the relay candidate in ice->locals, or -1 */
    turn_txn_t txn; /* Allocate or Refresh */
    turn_perm_t perms[TURN_MAX_PERMS];
    size_t perm_count;
    turn_chan_t chans[TURN_MAX_CHANNELS];
    size_t chan_count;

    /* stream buffers (TCP, TLS), allocated when connected */
    uint8_t *rx;
    size_t rx_len;
    size_t rx_taken; /* the data frame handed out by tern_ice_poll_relayed, dropped next */
    uint8_t *tx;
    size_t tx_len;
} turn_alloc_t;

struct ice_turn {
    turn_alloc_t allocs[TURN_MAX_ALLOCS];
    size_t count;
    uint32_t next_stream_id;
    uint8_t *scratch; /* Send indications, allocated with the first one */
    tern_datagram_t inner;
    bool has_inner;
    uint16_t holds; /* server names still being resolved */
};

/* ---- helpers ---- */

static bool same_ip(const tern_addr_t *a, const tern_addr_t *b)
{
    return a->family == b->family && memcmp(a->ip, b->ip, 16) == 0;
}

static const char *transport_name(tern_turn_transport_t t)
{
    return t == TERN_TURN_UDP ? "udp" : t == TERN_TURN_TCP ? "tcp" : "tls";
}

static bool is_stream(const turn_alloc_t *a)
{
    return a->transport != TERN_TURN_UDP;
}

static int alloc_index(const tern_ice_t *ice, const turn_alloc_t *a)
{
    return (int)(a - ice->turn->allocs);
}

static void fail_alloc(tern_ice_t *ice, turn_alloc_t *a, const char *why)
{
    if (a->state == ALLOC_FAILED || a->state == ALLOC_CLOSED)
        return;
    ICE_DEBUG(ice, "turn %d (%s) failed: %s", alloc_index(ice, a), transport_name(a->transport),
              why);
    a->state = ALLOC_FAILED;
    a->txn.kind = TXK_NONE;
    for (size_t i = 0; i < a->perm_count; i++)
        a->perms[i].txn.kind = TXK_NONE;
    for (size_t i = 0; i < a->chan_count; i++)
        a->chans[i].txn.kind = TXK_NONE;
    if (is_stream(a) && a->stream_id != 0)
        a->want_close = true;
    tern_ice_check_gathering_done(ice);
}

/* ---- sending to the server ---- */

static void append_stream(tern_ice_t *ice, turn_alloc_t *a, const uint8_t *p, size_t n)
{
    if (!a->tx || a->tx_len + n > TURN_STREAM_TX_MAX) {
        ice->stats.tx_dropped++; /* whole messages only: the framing stays intact */
        return;
    }
    memcpy(a->tx + a->tx_len, p, n);
    a->tx_len += n;
}

static void send_to_server(tern_ice_t *ice, turn_alloc_t *a, const uint8_t *p, size_t n)
{
    if (is_stream(a)) {
        append_stream(ice, a, p, n);
        return;
    }
    if (tern_txq_push(&ice->txq, &a->base, &a->server, p, n) != TERN_OK)
        ice->stats.tx_dropped++;
}

static void put_peer(tern_stun_writer_t *sw, const tern_addr_t *peer)
{
    tern_stun_put_xor_addr(sw, TERN_STUN_ATTR_XOR_PEER_ADDRESS, peer);
}

static void write_request(tern_ice_t *ice, turn_alloc_t *a, const turn_txn_t *t, uint32_t lifetime)
{
    static const uint16_t methods[] = {
        [TXK_ALLOCATE] = TERN_STUN_ALLOCATE,
        [TXK_REFRESH] = TERN_STUN_REFRESH,
        [TXK_PERMISSION] = TERN_STUN_CREATE_PERMISSION,
        [TXK_CHANNEL] = TERN_STUN_CHANNEL_BIND,
    };
    uint8_t buf[TURN_MSG_MAX];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, sizeof buf);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_REQUEST, methods[t->kind], t->tid);
    switch (t->kind) {
    case TXK_ALLOCATE:
        tern_stun_put_requested_transport(&sw, TURN_UDP_PROTOCOL);
        tern_stun_put_u32(&sw, TERN_STUN_ATTR_LIFETIME, TURN_LIFETIME_S);
        break;
    case TXK_REFRESH:
        tern_stun_put_u32(&sw, TERN_STUN_ATTR_LIFETIME, lifetime);
        break;
    case TXK_PERMISSION:
        put_peer(&sw, &a->perms[t->index].ip);
        break;
    case TXK_CHANNEL:
        tern_stun_put_channel_number(&sw, a->chans[t->index].number);
        put_peer(&sw, &a->chans[t->index].peer);
        break;
    default:
        return;
    }
    if (a->has_key) {
        /* RFC 8489 §9.2.3: USERNAME, REALM, NONCE, then MESSAGE-INTEGRITY. */
        tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, a->username);
        tern_stun_put_string(&sw, TERN_STUN_ATTR_REALM, a->realm);
        tern_stun_put_string(&sw, TERN_STUN_ATTR_NONCE, a->nonce);
        tern_stun_put_integrity(&sw, a->key, sizeof a->key);
    }
    tern_stun_put_fingerprint(&sw);
    size_t len = 0;
    if (tern_stun_writer_end(&sw, &len) != TERN_OK) {
        ICE_DEBUG(ice, "turn %d request not written", alloc_index(ice, a));
        return;
    }
    send_to_server(ice, a, buf, len);
}

static void transmit_txn(tern_ice_t *ice, turn_alloc_t *a, turn_txn_t *t)
{
    write_request(ice, a, t, TURN_LIFETIME_S);
    t->sends++;
    if (is_stream(a)) {
        if (t->sends == 1)
            t->next_send = ice->now + TURN_STREAM_TXN_US;
        return;
    }
    t->next_send = ice->now + t->rto_us;
    t->rto_us = TERN_MIN(2 * t->rto_us, (uint32_t)TURN_RTO_MAX_US);
}

/* Start a transaction (a new transaction id: a retry after 401/438 is a new request). */
static void start_txn(tern_ice_t *ice, turn_alloc_t *a, turn_txn_t *t, turn_txn_kind_t kind,
                      uint16_t index, uint8_t auth_tries)
{
    memset(t, 0, sizeof *t);
    if (tern_random_bytes(ice->ctx, t->tid, sizeof t->tid) != TERN_OK)
        return;
    t->kind = (uint8_t)kind;
    t->index = index;
    t->auth_tries = auth_tries;
    t->rto_us = TURN_RTO_US;
    transmit_txn(ice, a, t);
}

/* ---- adding servers ---- */

static struct ice_turn *turn_state(tern_ice_t *ice)
{
    if (!ice->turn)
        ice->turn = tern_calloc(ice->ctx, 1, sizeof *ice->turn);
    return ice->turn;
}

static bool usable_server(const tern_addr_t *a)
{
    static const uint8_t zero[16];
    return (a->family == TERN_AF_INET || a->family == TERN_AF_INET6) && a->port != 0 &&
           memcmp(a->ip, zero, 16) != 0;
}

static bool valid_cred(const char *s)
{
    return s && strnlen(s, TERN_TURN_CRED_MAX + 1) <= TERN_TURN_CRED_MAX;
}

int tern_ice_add_turn_server(tern_ice_t *ice, tern_time_t now, const tern_ice_turn_server_t *s)
{
    if (!ice || !s || !usable_server(&s->addr) || !valid_cred(s->username) ||
        !valid_cred(s->password) || s->transport > TERN_TURN_TLS ||
        (s->server_name && strlen(s->server_name) > TERN_ICE_URL_HOST_MAX))
        return TERN_ERR_INVALID_ARG;
    if (ice->closed || ice->gathering_announced)
        return TERN_ERR_INVALID_STATE;
    if (now > ice->now)
        ice->now = now;
    struct ice_turn *t = turn_state(ice);
    if (!t)
        return TERN_ERR_NOMEM;
    if (t->count >= TURN_MAX_ALLOCS)
        return TERN_ERR_TOO_LARGE;
    if (s->fallback_of >= (int)t->count)
        return TERN_ERR_INVALID_ARG;
    turn_alloc_t *a = &t->allocs[t->count];
    memset(a, 0, sizeof *a);
    a->server = s->addr;
    a->transport = s->transport;
    snprintf(a->username, sizeof a->username, "%s", s->username);
    snprintf(a->password, sizeof a->password, "%s", s->password);
    if (s->server_name)
        snprintf(a->server_name, sizeof a->server_name, "%s", s->server_name);
    a->fallback_of = s->fallback_of;
    a->start_at = s->fallback_of >= 0 ? ice->now + (tern_time_t)s->fallback_delay_us : ice->now;
    a->state = ALLOC_WAITING;
    a->local = -1;
    int index = (int)t->count++;
    if (ice->gathering == TERN_ICE_GATHERING_NEW)
        ice->gathering = TERN_ICE_GATHERING_GATHERING;
    char buf[TERN_ADDR_STRLEN];
    ICE_DEBUG(ice, "turn %d server %s over %s", index, tern_addr_log(ice->ctx, &s->addr, buf),
              transport_name(s->transport));
    tern_ice_service(ice);
    return index;
}

void tern_ice_hold_gathering(tern_ice_t *ice, tern_time_t now, int delta)
{
    struct ice_turn *t = turn_state(ice);
    if (!t)
        return;
    if (now > ice->now)
        ice->now = now;
    if (delta > 0)
        t->holds++;
    else if (t->holds > 0)
        t->holds--;
    tern_ice_check_gathering_done(ice);
    tern_ice_service(ice);
}

bool tern_ice_turn_gathering(const tern_ice_t *ice)
{
    const struct ice_turn *t = ice->turn;
    if (!t)
        return false;
    if (t->holds > 0)
        return true;
    for (size_t i = 0; i < t->count; i++) {
        turn_alloc_state_t s = t->allocs[i].state;
        if (s == ALLOC_WAITING || s == ALLOC_CONNECTING || s == ALLOC_ALLOCATING)
            return true;
    }
    return false;
}

/* ---- starting allocations ---- */

static int find_host_base(const tern_ice_t *ice, uint8_t family)
{
    for (size_t i = 0; i < ice->local_count; i++)
        if (ice->locals[i].c.type == TERN_ICE_CAND_HOST && ice->locals[i].base.family == family)
            return (int)i;
    return -1;
}

static void begin_allocate(tern_ice_t *ice, turn_alloc_t *a)
{
    a->state = ALLOC_ALLOCATING;
    start_txn(ice, a, &a->txn, TXK_ALLOCATE, 0, 0);
}

static void start_alloc(tern_ice_t *ice, turn_alloc_t *a)
{
    if (a->fallback_of >= 0) {
        const turn_alloc_t *p = &ice->turn->allocs[a->fallback_of];
        if (p->answered || p->state == ALLOC_READY) {
            a->state = ALLOC_CLOSED; /* the primary works: no fallback needed */
            tern_ice_check_gathering_done(ice);
            return;
        }
        if (ice->now < a->start_at)
            return;
    }
    if (is_stream(a)) {
        a->stream_id = ++ice->turn->next_stream_id;
        a->want_open = true;
        a->state = ALLOC_CONNECTING;
        a->connect_deadline = ice->now + TURN_CONNECT_US;
        return;
    }
    int base = find_host_base(ice, a->server.family);
    if (base < 0) {
        if (ice->local_done)
            fail_alloc(ice, a, "no host socket of the server's family");
        return;
    }
    a->base = ice->locals[base].base;
    begin_allocate(ice, a);
}

/* ---- relay candidates ---- */

static uint16_t relay_local_pref(const tern_ice_t *ice, const turn_alloc_t *a)
{
    /* UDP relays before TCP before TLS (RFC 8445 §5.1.2.1 leaves it to us), then server order. */
    uint16_t transport = a->transport == TERN_TURN_UDP ? 3 : a->transport == TERN_TURN_TCP ? 2 : 1;
    return (uint16_t)(transport << 12 | (0x0FFF - (uint16_t)alloc_index(ice, a)));
}

static void on_allocated(tern_ice_t *ice, turn_alloc_t *a, const tern_stun_msg_t *m)
{
    a->state = ALLOC_READY;
    a->relayed = m->xor_relayed_address;
    uint32_t lifetime = (m->present & TERN_STUN_HAS_LIFETIME) ? m->lifetime : TURN_LIFETIME_S;
    a->expires = ice->now + TERN_SEC(lifetime);
    a->refresh_at = lifetime > 2 * TURN_REFRESH_EARLY_S
                        ? a->expires - TERN_SEC(TURN_REFRESH_EARLY_S)
                        : ice->now + TERN_SEC(lifetime) / 2;
    char r[TERN_ADDR_STRLEN];
    ICE_DEBUG(ice, "turn %d allocated %s lifetime=%us", alloc_index(ice, a),
              tern_addr_log(ice->ctx, &a->relayed, r), (unsigned)lifetime);
    if (m->present & TERN_STUN_HAS_XOR_MAPPED_ADDRESS)
        a->mapped = m->xor_mapped_address;
    uint16_t server = (uint16_t)(0x100 + alloc_index(ice, a));
    a->local = tern_ice_add_relay(ice, server, &a->relayed, &a->mapped, relay_local_pref(ice, a));
    /* RFC 8445 §5.1.1.2: the mapped address of a UDP allocation is a server-reflexive candidate. */
    if (!is_stream(a) && a->mapped.family != TERN_AF_UNSPEC && !ice->cfg.relay_only) {
        int base = tern_ice_find_local_by_addr(ice, &a->base);
        if (base >= 0)
            tern_ice_add_srflx(ice, (uint16_t)base, server, &a->mapped);
    }
    tern_ice_check_gathering_done(ice);
}

/* ---- permissions and channels ---- */

static turn_alloc_t *alloc_of_relay(const tern_ice_t *ice, const tern_addr_t *relayed)
{
    struct ice_turn *t = ice->turn;
    if (!t)
        return NULL;
    for (size_t i = 0; i < t->count; i++)
        if (t->allocs[i].local >= 0 && tern_addr_equal(&t->allocs[i].relayed, relayed))
            return &t->allocs[i];
    return NULL;
}

static turn_perm_t *find_perm(turn_alloc_t *a, const tern_addr_t *peer)
{
    for (size_t i = 0; i < a->perm_count; i++)
        if (same_ip(&a->perms[i].ip, peer))
            return &a->perms[i];
    return NULL;
}

static turn_chan_t *find_chan_by_peer(turn_alloc_t *a, const tern_addr_t *peer)
{
    for (size_t i = 0; i < a->chan_count; i++)
        if (tern_addr_equal(&a->chans[i].peer, peer))
            return &a->chans[i];
    return NULL;
}

static turn_chan_t *find_chan_by_number(turn_alloc_t *a, uint16_t number)
{
    for (size_t i = 0; i < a->chan_count; i++)
        if (a->chans[i].number == number)
            return &a->chans[i];
    return NULL;
}

static turn_perm_t *permit(tern_ice_t *ice, turn_alloc_t *a, const tern_addr_t *peer)
{
    turn_perm_t *p = find_perm(a, peer);
    if (p)
        return p;
    if (a->perm_count >= TURN_MAX_PERMS || a->state != ALLOC_READY ||
        peer->family != a->relayed.family)
        return NULL;
    p = &a->perms[a->perm_count];
    memset(p, 0, sizeof *p);
    p->ip.family = peer->family;
    memcpy(p->ip.ip, peer->ip, 16);
    p->state = PERM_PENDING;
    char b[TERN_ADDR_STRLEN];
    ICE_DEBUG(ice, "turn %d permission for %s", alloc_index(ice, a),
              tern_addr_log(ice->ctx, &p->ip, b));
    start_txn(ice, a, &p->txn, TXK_PERMISSION, (uint16_t)a->perm_count++, 0);
    return p;
}

void tern_ice_turn_permit(tern_ice_t *ice, uint16_t local, const tern_addr_t *peer)
{
    turn_alloc_t *a = alloc_of_relay(ice, &ice->locals[local].base);
    if (a)
        permit(ice, a, peer);
}

/* Bind a channel to the selected pair's remote when that pair runs through a relay. */
static void bind_selected(tern_ice_t *ice)
{
    if (ice->selected < 0)
        return;
    const ice_pair_t *p = &ice->pairs[ice->selected];
    turn_alloc_t *a = alloc_of_relay(ice, &ice->locals[p->local].base);
    const tern_addr_t *peer = &ice->remotes[p->remote].c.addr;
    if (!a || a->state != ALLOC_READY || find_chan_by_peer(a, peer) ||
        a->chan_count >= TURN_MAX_CHANNELS || peer->family != a->relayed.family)
        return;
    turn_chan_t *c = &a->chans[a->chan_count];
    memset(c, 0, sizeof *c);
    c->peer = *peer;
    c->number = (uint16_t)(TERN_TURN_CHANNEL_MIN + a->chan_count);
    c->state = CHAN_PENDING;
    ICE_DEBUG(ice, "turn %d channel 0x%04x bind", alloc_index(ice, a), (unsigned)c->number);
    start_txn(ice, a, &c->txn, TXK_CHANNEL, (uint16_t)a->chan_count++, 0);
}

/* ---- the timers ---- */

/* A transaction ended without success: the allocation fails with it (why), or only the
 * permission or channel it was for. */
static void fail_txn(tern_ice_t *ice, turn_alloc_t *a, turn_txn_t *t, const char *why)
{
    turn_txn_kind_t kind = (turn_txn_kind_t)t->kind;
    t->kind = TXK_NONE;
    switch (kind) {
    case TXK_ALLOCATE:
    case TXK_REFRESH:
        fail_alloc(ice, a, why);
        break;
    case TXK_PERMISSION:
        a->perms[t->index].state = PERM_FAILED;
        break;
    case TXK_CHANNEL:
        a->chans[t->index].state = CHAN_FAILED;
        break;
    default:
        break;
    }
}

static void on_txn_timeout(tern_ice_t *ice, turn_alloc_t *a, turn_txn_t *t)
{
    fail_txn(ice, a, t, t->kind == TXK_REFRESH ? "refresh not answered" : "no answer");
}

static void run_txn(tern_ice_t *ice, turn_alloc_t *a, turn_txn_t *t)
{
    if (t->kind == TXK_NONE || t->next_send > ice->now)
        return;
    if (is_stream(a) || t->sends >= TURN_UDP_MAX_SENDS)
        on_txn_timeout(ice, a, t);
    else
        transmit_txn(ice, a, t);
}

static void run_refreshes(tern_ice_t *ice, turn_alloc_t *a)
{
    if (a->txn.kind == TXK_NONE && ice->now >= a->refresh_at)
        start_txn(ice, a, &a->txn, TXK_REFRESH, 0, 0);
    for (size_t i = 0; i < a->perm_count; i++) {
        turn_perm_t *p = &a->perms[i];
        if (p->state == PERM_OK && p->txn.kind == TXK_NONE && ice->now >= p->refresh_at)
            start_txn(ice, a, &p->txn, TXK_PERMISSION, (uint16_t)i, 0);
    }
    for (size_t i = 0; i < a->chan_count; i++) {
        turn_chan_t *c = &a->chans[i];
        if (c->state == CHAN_BOUND && c->txn.kind == TXK_NONE && ice->now >= c->refresh_at)
            start_txn(ice, a, &c->txn, TXK_CHANNEL, (uint16_t)i, 0);
    }
}

static void run_txns(tern_ice_t *ice, turn_alloc_t *a)
{
    run_txn(ice, a, &a->txn);
    for (size_t i = 0; i < a->perm_count && a->state == ALLOC_READY; i++)
        run_txn(ice, a, &a->perms[i].txn);
    for (size_t i = 0; i < a->chan_count && a->state == ALLOC_READY; i++)
        run_txn(ice, a, &a->chans[i].txn);
}

static void service_alloc(tern_ice_t *ice, turn_alloc_t *a)
{
    switch (a->state) {
    case ALLOC_WAITING:
        start_alloc(ice, a);
        break;
    case ALLOC_CONNECTING:
        if (ice->now >= a->connect_deadline)
            fail_alloc(ice, a, "no connection");
        break;
    case ALLOC_READY:
        if (ice->now >= a->expires) {
            fail_alloc(ice, a, "expired");
            break;
        }
        run_refreshes(ice, a);
        run_txns(ice, a);
        break;
    case ALLOC_ALLOCATING:
        run_txns(ice, a);
        break;
    default:
        break;
    }
}

void tern_ice_turn_service(tern_ice_t *ice)
{
    struct ice_turn *t = ice->turn;
    if (!t || ice->closed)
        return;
    for (size_t i = 0; i < t->count; i++)
        service_alloc(ice, &t->allocs[i]);
    bind_selected(ice);
}

static tern_time_t earliest(tern_time_t a, tern_time_t b)
{
    return a < b ? a : b;
}

static tern_time_t txn_deadline(const turn_txn_t *t)
{
    return t->kind != TXK_NONE ? t->next_send : TERN_TIME_NEVER;
}

static tern_time_t ready_deadline(const turn_alloc_t *a)
{
    tern_time_t d = earliest(a->expires, a->txn.kind == TXK_NONE ? a->refresh_at : TERN_TIME_NEVER);
    for (size_t i = 0; i < a->perm_count; i++) {
        const turn_perm_t *p = &a->perms[i];
        d = earliest(d, txn_deadline(&p->txn));
        if (p->state == PERM_OK && p->txn.kind == TXK_NONE)
            d = earliest(d, p->refresh_at);
    }
    for (size_t i = 0; i < a->chan_count; i++) {
        const turn_chan_t *c = &a->chans[i];
        d = earliest(d, txn_deadline(&c->txn));
        if (c->state == CHAN_BOUND && c->txn.kind == TXK_NONE)
            d = earliest(d, c->refresh_at);
    }
    return earliest(d, txn_deadline(&a->txn));
}

static tern_time_t alloc_deadline(const turn_alloc_t *a)
{
    switch (a->state) {
    case ALLOC_WAITING:
        return a->fallback_of >= 0 ? a->start_at : TERN_TIME_NEVER;
    case ALLOC_CONNECTING:
        return a->connect_deadline;
    case ALLOC_READY:
        return ready_deadline(a);
    case ALLOC_ALLOCATING:
        return txn_deadline(&a->txn);
    default:
        return TERN_TIME_NEVER;
    }
}

tern_time_t tern_ice_turn_deadline(const tern_ice_t *ice)
{
    const struct ice_turn *t = ice->turn;
    tern_time_t d = TERN_TIME_NEVER;
    if (!t || ice->closed)
        return d;
    for (size_t i = 0; i < t->count; i++)
        d = earliest(d, alloc_deadline(&t->allocs[i]));
    return d;
}

/* ---- responses ---- */

static turn_txn_t *find_txn(turn_alloc_t *a, const uint8_t tid[TERN_STUN_TID_LEN])
{
    if (a->txn.kind != TXK_NONE && memcmp(a->txn.tid, tid, TERN_STUN_TID_LEN) == 0)
        return &a->txn;
    for (size_t i = 0; i < a->perm_count; i++)
        if (a->perms[i].txn.kind != TXK_NONE &&
            memcmp(a->perms[i].txn.tid, tid, TERN_STUN_TID_LEN) == 0)
            return &a->perms[i].txn;
    for (size_t i = 0; i < a->chan_count; i++)
        if (a->chans[i].txn.kind != TXK_NONE &&
            memcmp(a->chans[i].txn.tid, tid, TERN_STUN_TID_LEN) == 0)
            return &a->chans[i].txn;
    return NULL;
}

static bool copy_attr_string(char *dst, size_t cap, const tern_stun_bytes_t *b)
{
    if (b->len == 0 || b->len >= cap || memchr(b->p, '\0', b->len))
        return false;
    memcpy(dst, b->p, b->len);
    dst[b->len] = '\0';
    return true;
}

/* 401 and 438 (RFC 8489 §9.2.5): take realm and nonce, derive the key, ask again. */
static bool retry_with_auth(tern_ice_t *ice, turn_alloc_t *a, turn_txn_t *t,
                            const tern_stun_msg_t *m)
{
    if (t->auth_tries >= TURN_MAX_AUTH_TRIES || !(m->present & TERN_STUN_HAS_NONCE))
        return false;
    bool stale = m->error_code == TERN_STUN_ERR_STALE_NONCE;
    /* A 401 to a request that already carried our credentials means they are wrong. */
    if (!stale && (a->has_key || !(m->present & TERN_STUN_HAS_REALM)))
        return false;
    char realm[TURN_REALM_MAX + 1];
    if (m->present & TERN_STUN_HAS_REALM) {
        if (!copy_attr_string(realm, sizeof realm, &m->realm))
            return false;
    } else {
        memcpy(realm, a->realm, sizeof realm);
    }
    if (!copy_attr_string(a->nonce, sizeof a->nonce, &m->nonce) || realm[0] == '\0')
        return false;
    if (!a->has_key || strcmp(realm, a->realm) != 0) {
        memcpy(a->realm, realm, sizeof a->realm);
        if (tern_stun_long_term_key(a->username, a->realm, a->password, a->key) != TERN_OK)
            return false;
        a->has_key = true;
    }
    turn_txn_kind_t kind = (turn_txn_kind_t)t->kind;
    start_txn(ice, a, t, kind, t->index, (uint8_t)(t->auth_tries + 1));
    return true;
}

static void on_error(tern_ice_t *ice, turn_alloc_t *a, turn_txn_t *t, const tern_stun_msg_t *m)
{
    uint16_t code = (m->present & TERN_STUN_HAS_ERROR_CODE) ? m->error_code : 0;
    if ((code == TERN_STUN_ERR_UNAUTHORIZED || code == TERN_STUN_ERR_STALE_NONCE) &&
        retry_with_auth(ice, a, t, m))
        return;
    ICE_DEBUG(ice, "turn %d %s refused: %u", alloc_index(ice, a), tern_stun_method_name(m->method),
              (unsigned)code);
    fail_txn(ice, a, t, "refused");
}

static void on_success(tern_ice_t *ice, turn_alloc_t *a, turn_txn_t *t, const tern_stun_msg_t *m)
{
    turn_txn_kind_t kind = (turn_txn_kind_t)t->kind;
    t->kind = TXK_NONE;
    switch (kind) {
    case TXK_ALLOCATE:
        if (!(m->present & TERN_STUN_HAS_XOR_RELAYED_ADDRESS) ||
            !usable_server(&m->xor_relayed_address)) {
            fail_alloc(ice, a, "no relayed address");
            return;
        }
        on_allocated(ice, a, m);
        break;
    case TXK_REFRESH: {
        uint32_t lifetime = (m->present & TERN_STUN_HAS_LIFETIME) ? m->lifetime : TURN_LIFETIME_S;
        if (lifetime == 0) {
            fail_alloc(ice, a, "lifetime 0");
            return;
        }
        a->expires = ice->now + TERN_SEC(lifetime);
        a->refresh_at = lifetime > 2 * TURN_REFRESH_EARLY_S
                            ? a->expires - TERN_SEC(TURN_REFRESH_EARLY_S)
                            : ice->now + TERN_SEC(lifetime) / 2;
        break;
    }
    case TXK_PERMISSION:
        a->perms[t->index].state = PERM_OK;
        a->perms[t->index].refresh_at = ice->now + TURN_PERM_REFRESH_US;
        break;
    case TXK_CHANNEL: {
        turn_chan_t *c = &a->chans[t->index];
        c->state = CHAN_BOUND;
        c->refresh_at = ice->now + TURN_CHANNEL_REFRESH_US;
        /* RFC 8656 §12.2: a binding installs or refreshes the permission of its IP too. */
        turn_perm_t *p = find_perm(a, &c->peer);
        if (p && p->txn.kind == TXK_NONE) {
            p->state = PERM_OK;
            p->refresh_at = ice->now + TURN_PERM_REFRESH_US;
        }
        break;
    }
    default:
        break;
    }
}

static void handle_response(tern_ice_t *ice, turn_alloc_t *a, const tern_stun_msg_t *m)
{
    turn_txn_t *t = find_txn(a, m->tid);
    if (!t) {
        ice->stats.dropped++;
        return;
    }
    if (m->msg_class == TERN_STUN_SUCCESS && a->has_key &&
        tern_stun_check_integrity(m, a->key, sizeof a->key) != TERN_OK) {
        ice->stats.dropped++; /* RFC 8489 §9.2.5: an unauthenticated answer is discarded */
        return;
    }
    a->answered = true;
    ice->stats.responses_received++;
    if (m->msg_class == TERN_STUN_ERROR)
        on_error(ice, a, t, m);
    else
        on_success(ice, a, t, m);
}

/* ---- receiving a peer's data ---- */

static bool peer_permitted(turn_alloc_t *a, const tern_addr_t *peer)
{
    const turn_perm_t *p = find_perm(a, peer);
    return p && p->state != PERM_FAILED;
}

static void set_inner(tern_ice_t *ice, turn_alloc_t *a, const tern_addr_t *peer, const uint8_t *p,
                      size_t n)
{
    struct ice_turn *t = ice->turn;
    t->inner = (tern_datagram_t){.local = a->relayed, .remote = *peer, .data = p, .len = n};
    t->has_inner = true;
}

/* A Data indication (RFC 8656 §11.4): only from a peer that has a permission. */
static bool take_data_indication(tern_ice_t *ice, turn_alloc_t *a, const tern_stun_msg_t *m)
{
    if (a->state != ALLOC_READY || !(m->present & TERN_STUN_HAS_XOR_PEER_ADDRESS) ||
        !(m->present & TERN_STUN_HAS_DATA) || !peer_permitted(a, &m->xor_peer_address[0])) {
        ice->stats.dropped++;
        return false;
    }
    set_inner(ice, a, &m->xor_peer_address[0], m->data_attr.p, m->data_attr.len);
    return true;
}

static bool take_channel_data(tern_ice_t *ice, turn_alloc_t *a, const uint8_t *p, size_t n,
                              bool stream)
{
    uint16_t number;
    const uint8_t *payload;
    size_t payload_len, frame;
    if (a->state != ALLOC_READY || tern_turn_channel_data_parse(p, n, stream, &number, &payload,
                                                                &payload_len, &frame) != TERN_OK) {
        ice->stats.dropped++;
        return false;
    }
    turn_chan_t *c = find_chan_by_number(a, number);
    if (!c || c->state == CHAN_FAILED || !peer_permitted(a, &c->peer)) {
        ice->stats.dropped++;
        return false;
    }
    set_inner(ice, a, &c->peer, payload, payload_len);
    return true;
}

/* One frame from the server. Returns true if it left a peer's datagram in t->inner. */
static bool take_frame(tern_ice_t *ice, turn_alloc_t *a, const uint8_t *p, size_t n, bool stream)
{
    if (n > 0 && p[0] >= 0x40 && p[0] <= 0x4F)
        return take_channel_data(ice, a, p, n, stream);
    tern_stun_msg_t m;
    if (tern_stun_parse(p, n, &m) != TERN_OK ||
        ((m.present & TERN_STUN_HAS_FINGERPRINT) && tern_stun_check_fingerprint(&m) != TERN_OK)) {
        ice->stats.dropped++;
        return false;
    }
    if (m.msg_class == TERN_STUN_SUCCESS || m.msg_class == TERN_STUN_ERROR) {
        handle_response(ice, a, &m);
        return false;
    }
    if (m.msg_class == TERN_STUN_INDICATION && m.method == TERN_STUN_DATA)
        return take_data_indication(ice, a, &m);
    ice->stats.dropped++;
    return false;
}

static turn_alloc_t *alloc_of_path(const tern_ice_t *ice, const tern_datagram_t *in)
{
    struct ice_turn *t = ice->turn;
    if (!t)
        return NULL;
    for (size_t i = 0; i < t->count; i++) {
        turn_alloc_t *a = &t->allocs[i];
        if (!is_stream(a) && a->base.family != TERN_AF_UNSPEC &&
            tern_addr_equal(&a->base, &in->local) && ice_remote_addr_match(&a->server, &in->remote))
            return a;
    }
    return NULL;
}

bool tern_ice_turn_claims(const tern_ice_t *ice, const tern_datagram_t *in)
{
    if (!ice || !in || !in->data || in->len == 0 || !alloc_of_path(ice, in))
        return false;
    if (in->data[0] >= 0x40 && in->data[0] <= 0x4F)
        return true;
    /* Binding goes to the agent: the TURN server may be its STUN server too. */
    if (!tern_stun_is_message(in->data, in->len))
        return false;
    uint16_t type = (uint16_t)(in->data[0] << 8 | in->data[1]);
    uint16_t method = (uint16_t)((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
    return method != TERN_STUN_BINDING;
}

int tern_ice_turn_handle_input(tern_ice_t *ice, tern_time_t now, const tern_datagram_t *in)
{
    if (!ice || !in)
        return TERN_ERR_INVALID_ARG;
    if (now > ice->now)
        ice->now = now;
    turn_alloc_t *a = alloc_of_path(ice, in);
    if (!a || ice->closed) {
        ice->stats.dropped++;
        return TERN_OK;
    }
    ice->turn->has_inner = false;
    take_frame(ice, a, in->data, in->len, false);
    tern_ice_service(ice);
    return TERN_OK;
}

/* ---- streams ---- */

static turn_alloc_t *alloc_of_stream(const tern_ice_t *ice, uint32_t id)
{
    struct ice_turn *t = ice->turn;
    for (size_t i = 0; t && id != 0 && i < t->count; i++)
        if (t->allocs[i].stream_id == id)
            return &t->allocs[i];
    return NULL;
}

static void free_stream_buffers(tern_ice_t *ice, turn_alloc_t *a)
{
    tern_free(ice->ctx, a->rx);
    tern_free(ice->ctx, a->tx);
    a->rx = a->tx = NULL;
    a->rx_len = a->tx_len = a->rx_taken = 0;
}

/* Handle the frames at the head of a stream's input up to the first peer datagram. */
static bool advance_stream(tern_ice_t *ice, turn_alloc_t *a)
{
    if (a->rx_taken > 0) {
        memmove(a->rx, a->rx + a->rx_taken, a->rx_len - a->rx_taken);
        a->rx_len -= a->rx_taken;
        a->rx_taken = 0;
    }
    while (a->rx && a->rx_len > 0 && a->state != ALLOC_FAILED && a->state != ALLOC_CLOSED) {
        long n = tern_turn_stream_frame_len(a->rx, a->rx_len);
        if (n < 0) {
            ice->stats.dropped++;
            fail_alloc(ice, a, "malformed stream");
            return false;
        }
        if (n == 0 || (size_t)n > a->rx_len)
            return false;
        ice->turn->has_inner = false;
        a->rx_taken = (size_t)n;
        if (take_frame(ice, a, a->rx, (size_t)n, true))
            return true;
        memmove(a->rx, a->rx + a->rx_taken, a->rx_len - a->rx_taken);
        a->rx_len -= a->rx_taken;
        a->rx_taken = 0;
    }
    return false;
}

bool tern_ice_poll_stream_request(tern_ice_t *ice, tern_ice_stream_request_t *out)
{
    struct ice_turn *t = ice ? ice->turn : NULL;
    for (size_t i = 0; t && out && i < t->count; i++) {
        turn_alloc_t *a = &t->allocs[i];
        if (a->want_close) {
            a->want_close = a->want_open = false;
            memset(out, 0, sizeof *out);
            out->id = a->stream_id;
            out->close = true;
            a->stream_id = 0;
            free_stream_buffers(ice, a);
            return true;
        }
        if (a->want_open) {
            a->want_open = false;
            memset(out, 0, sizeof *out);
            out->id = a->stream_id;
            out->remote = a->server;
            out->tls = a->transport == TERN_TURN_TLS;
            out->server_name = a->server_name[0] ? a->server_name : NULL;
            return true;
        }
    }
    return false;
}

bool tern_ice_poll_stream_transmit(tern_ice_t *ice, uint32_t *id, const uint8_t **data, size_t *len)
{
    struct ice_turn *t = ice ? ice->turn : NULL;
    for (size_t i = 0; t && i < t->count; i++) {
        turn_alloc_t *a = &t->allocs[i];
        if (a->tx_len == 0 || a->stream_id == 0)
            continue;
        *id = a->stream_id;
        *data = a->tx;
        *len = a->tx_len;
        a->tx_len = 0; /* the caller copies them before its next call on the agent */
        return true;
    }
    return false;
}

int tern_ice_stream_event(tern_ice_t *ice, tern_time_t now, uint32_t id, bool connected,
                          const tern_addr_t *local)
{
    turn_alloc_t *a = ice ? alloc_of_stream(ice, id) : NULL;
    if (!a)
        return TERN_ERR_NOT_FOUND;
    if (now > ice->now)
        ice->now = now;
    if (!connected) {
        a->stream_id = 0; /* gone already: nothing to close */
        a->want_open = a->want_close = false;
        free_stream_buffers(ice, a);
        fail_alloc(ice, a, "connection lost");
        tern_ice_service(ice);
        return TERN_OK;
    }
    if (a->state != ALLOC_CONNECTING || ice->closed)
        return TERN_OK;
    a->rx = tern_malloc(ice->ctx, TURN_STREAM_RX_MAX);
    a->tx = tern_malloc(ice->ctx, TURN_STREAM_TX_MAX);
    if (!a->rx || !a->tx) {
        fail_alloc(ice, a, "out of memory");
        return TERN_ERR_NOMEM;
    }
    if (local)
        a->base = *local;
    ICE_DEBUG(ice, "turn %d connected over %s", alloc_index(ice, a), transport_name(a->transport));
    begin_allocate(ice, a);
    tern_ice_service(ice);
    return TERN_OK;
}

int tern_ice_stream_input(tern_ice_t *ice, tern_time_t now, uint32_t id, const uint8_t *data,
                          size_t len)
{
    turn_alloc_t *a = ice ? alloc_of_stream(ice, id) : NULL;
    if (!a)
        return TERN_ERR_NOT_FOUND;
    if (!data && len)
        return TERN_ERR_INVALID_ARG;
    if (now > ice->now)
        ice->now = now;
    if (!a->rx || ice->closed)
        return TERN_OK;
    /* The frame handed out last is done with: drop it, then take the new bytes whole. */
    if (a->rx_taken > 0) {
        memmove(a->rx, a->rx + a->rx_taken, a->rx_len - a->rx_taken);
        a->rx_len -= a->rx_taken;
        a->rx_taken = 0;
    }
    if (len > TURN_STREAM_RX_MAX - a->rx_len) {
        /* More than a frame's worth of bytes that do not frame, or a driver that does not poll
         * the relayed datagrams: the stream cannot be trusted any more. */
        ice->stats.dropped++;
        fail_alloc(ice, a, "input overflow");
        tern_ice_service(ice);
        return TERN_OK;
    }
    if (len)
        memcpy(a->rx + a->rx_len, data, len);
    a->rx_len += len;
    /* Responses are handled now; a peer's datagram waits at the head for polling. */
    advance_stream(ice, a);
    tern_ice_service(ice);
    return TERN_OK;
}

bool tern_ice_poll_relayed(tern_ice_t *ice, tern_datagram_t *out)
{
    struct ice_turn *t = ice ? ice->turn : NULL;
    if (!t || !out)
        return false;
    if (t->has_inner) {
        *out = t->inner;
        t->has_inner = false;
        return true;
    }
    for (size_t i = 0; i < t->count; i++) {
        turn_alloc_t *a = &t->allocs[i];
        if (!a->rx)
            continue;
        if (advance_stream(ice, a) && t->has_inner) {
            *out = t->inner;
            t->has_inner = false;
            return true;
        }
    }
    return false;
}

/* ---- sending a peer's data through the relay ---- */

static uint8_t *scratch(tern_ice_t *ice)
{
    struct ice_turn *t = ice->turn;
    if (!t->scratch)
        t->scratch = tern_malloc(ice->ctx, TURN_SCRATCH);
    return t->scratch;
}

/* A Send indication (RFC 8656 §11.1) in the scratch buffer; its length, or 0. */
static size_t write_send_indication(tern_ice_t *ice, const tern_transmit_t *in, uint8_t *buf)
{
    uint8_t tid[TERN_STUN_TID_LEN];
    if (tern_random_bytes(ice->ctx, tid, sizeof tid) != TERN_OK)
        return 0;
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    tern_wbuf_init(&w, NULL, buf, TURN_SCRATCH);
    tern_stun_writer_begin(&sw, &w, TERN_STUN_INDICATION, TERN_STUN_SEND, tid);
    put_peer(&sw, &in->remote);
    tern_stun_put_attr(&sw, TERN_STUN_ATTR_DATA, in->data, in->len);
    size_t len = 0;
    return tern_stun_writer_end(&sw, &len) == TERN_OK ? len : 0;
}

int tern_ice_turn_wrap(tern_ice_t *ice, tern_transmit_t *t)
{
    turn_alloc_t *a = ice->turn ? alloc_of_relay(ice, &t->local) : NULL;
    if (!a)
        return TERN_ICE_WRAP_PASS;
    if (a->state != ALLOC_READY || t->len > 65535) {
        ice->stats.tx_dropped++;
        return TERN_ICE_WRAP_CONSUMED;
    }
    /* Never relay to an address without a permission: ask for one, drop this datagram. */
    turn_perm_t *p = find_perm(a, &t->remote);
    if (!p || p->state == PERM_FAILED) {
        if (!p)
            permit(ice, a, &t->remote);
        ice->stats.tx_dropped++;
        return TERN_ICE_WRAP_CONSUMED;
    }
    const turn_chan_t *c = find_chan_by_peer(a, &t->remote);
    bool channel = c && c->state == CHAN_BOUND;
    if (channel && !is_stream(a)) {
        /* ChannelData in place: the transmit queue keeps TERN_TX_HEADROOM bytes in front. */
        uint8_t *head = (uint8_t *)t->data - TERN_TURN_CHANNEL_HEADER;
        tern_turn_channel_data_frame(head, TERN_TURN_CHANNEL_HEADER + t->len, c->number, t->len,
                                     false);
        t->data = head;
        t->len += TERN_TURN_CHANNEL_HEADER;
        t->local = a->base;
        t->remote = a->server;
        return TERN_ICE_WRAP_SENT;
    }
    uint8_t *buf = scratch(ice);
    if (!buf) {
        ice->stats.tx_dropped++;
        return TERN_ICE_WRAP_CONSUMED;
    }
    size_t len;
    if (channel) {
        memcpy(buf + TERN_TURN_CHANNEL_HEADER, t->data, t->len);
        int n = tern_turn_channel_data_frame(buf, TURN_SCRATCH, c->number, t->len, true);
        len = n > 0 ? (size_t)n : 0;
    } else {
        len = write_send_indication(ice, t, buf);
    }
    if (len == 0) {
        ice->stats.tx_dropped++;
        return TERN_ICE_WRAP_CONSUMED;
    }
    if (is_stream(a)) {
        append_stream(ice, a, buf, len);
        return TERN_ICE_WRAP_CONSUMED;
    }
    t->data = buf;
    t->len = len;
    t->local = a->base;
    t->remote = a->server;
    return TERN_ICE_WRAP_SENT;
}

bool tern_ice_turn_accepts(const tern_ice_t *ice, const tern_datagram_t *in)
{
    return tern_ice_turn_claims(ice, in);
}

bool tern_ice_turn_is_relay(const tern_ice_t *ice, const tern_addr_t *local)
{
    return alloc_of_relay(ice, local) != NULL;
}

/* ---- close and free ---- */

void tern_ice_turn_close(tern_ice_t *ice)
{
    struct ice_turn *t = ice->turn;
    for (size_t i = 0; t && i < t->count; i++) {
        turn_alloc_t *a = &t->allocs[i];
        if (a->state == ALLOC_READY) {
            /* RFC 8656 §7: a Refresh with lifetime 0 deletes the allocation. Sent once. */
            turn_txn_t r;
            memset(&r, 0, sizeof r);
            r.kind = TXK_REFRESH;
            if (tern_random_bytes(ice->ctx, r.tid, sizeof r.tid) == TERN_OK)
                write_request(ice, a, &r, 0);
            ICE_DEBUG(ice, "turn %d deallocated", (int)i);
        }
        if (is_stream(a) && a->stream_id != 0)
            a->want_close = true;
        a->state = ALLOC_CLOSED;
    }
}

void tern_ice_turn_free(tern_ice_t *ice)
{
    struct ice_turn *t = ice->turn;
    if (!t)
        return;
    for (size_t i = 0; i < t->count; i++)
        free_stream_buffers(ice, &t->allocs[i]);
    tern_free(ice->ctx, t->scratch);
    /* The allocations hold the passwords and keys (CONVENTIONS.md §5). */
    tern_free_secret(ice->ctx, t, sizeof *t);
    ice->turn = NULL;
}

/* ---- ChannelData framing ---- */

int tern_turn_channel_data_parse(const uint8_t *data, size_t len, bool stream, uint16_t *channel,
                                 const uint8_t **payload, size_t *payload_len, size_t *frame_len)
{
    if (len < TERN_TURN_CHANNEL_HEADER)
        return stream ? TERN_ERR_TRUNCATED : TERN_ERR_PARSE;
    uint16_t number = (uint16_t)(data[0] << 8 | data[1]);
    size_t n = (size_t)(data[2] << 8 | data[3]);
    if (number < TERN_TURN_CHANNEL_MIN || number > TERN_TURN_CHANNEL_MAX)
        return TERN_ERR_PARSE;
    size_t frame = TERN_TURN_CHANNEL_HEADER + n;
    if (stream)
        frame = (frame + 3) & ~(size_t)3; /* RFC 8656 §12.5: padded on streams */
    if (frame > len)
        return stream ? TERN_ERR_TRUNCATED : TERN_ERR_PARSE;
    *channel = number;
    *payload = data + TERN_TURN_CHANNEL_HEADER;
    *payload_len = n;
    *frame_len = stream ? frame : len;
    return TERN_OK;
}

int tern_turn_channel_data_frame(uint8_t *out, size_t cap, uint16_t channel, size_t payload_len,
                                 bool stream)
{
    size_t frame = TERN_TURN_CHANNEL_HEADER + payload_len;
    size_t padded = stream ? (frame + 3) & ~(size_t)3 : frame;
    if (payload_len > 65535 || padded > cap)
        return TERN_ERR_TOO_LARGE;
    out[0] = (uint8_t)(channel >> 8);
    out[1] = (uint8_t)channel;
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
    memset(out + frame, 0, padded - frame);
    return (int)padded;
}

long tern_turn_stream_frame_len(const uint8_t *data, size_t len)
{
    if (len < 4)
        return 0;
    size_t n = (size_t)(data[2] << 8 | data[3]);
    if (data[0] >= 0x40 && data[0] <= 0x4F)
        return (long)((TERN_TURN_CHANNEL_HEADER + n + 3) & ~(size_t)3);
    /* RFC 8489 §5: STUN starts with two zero bits and its length is a multiple of 4. */
    if ((data[0] & 0xC0) != 0 || (n & 3) != 0)
        return TERN_ERR_PARSE;
    return (long)(TERN_STUN_HEADER_LEN + n);
}
