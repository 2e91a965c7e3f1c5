/* SPDX-License-Identifier: MIT */
/*
 * The ICE agent's life (RFC 8445, RFC 8838 trickle, RFC 7675 consent): creation with random
 * credentials and tie-breaker, the commands (local addresses and STUN servers, remote
 * credentials and candidates, end-of-candidates, restart, close), gathering of host,
 * server-reflexive and local peer-reflexive candidates (RFC 8445 §5.1), the event queue, the W3C
 * iceConnectionState machine, and the sans-IO verbs. The check list itself lives in ice_check.c.
 */
#include "ice/ice_agent.h"
#include "ice/ice_turn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define UFRAG_LEN 16 /* RFC 8839 §5.4 asks for at least 24 bits of randomness: 96 here */
#define PWD_LEN 32   /* ... and 128 bits for the password: 192 here */

/* Classes of host addresses for the local preference (RFC 8445 §5.1.2.2, RFC 8421). */
#define ADDR_CLASS_IPV6_GLOBAL 6
#define ADDR_CLASS_IPV6_ULA 5
#define ADDR_CLASS_IPV4 4
#define ADDR_CLASS_LINK_LOCAL 2
#define ADDR_CLASS_LOOPBACK 1

void tern_ice_log(tern_ice_t *ice, tern_log_level_t level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tern_log_write(ice->ctx, level, "ice", "ice%u t=%lld.%03lld %s", (unsigned)ice->id,
                   (long long)(ice->now / 1000000), (long long)(ice->now / 1000 % 1000), msg);
}

/* ---- small helpers ---- */

static void advance_time(tern_ice_t *ice, tern_time_t now)
{
    /* CONVENTIONS.md §2 rule 2: time never goes backwards. */
    if (now > ice->now)
        ice->now = now;
}

static bool is_ice_chars(const char *s, size_t min, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
        if (!ok)
            return false;
    }
    return true;
}

/* Remote credentials: printable ASCII, no ':' in the ufrag (it splits USERNAME). */
static bool is_loose_credential(const char *s, bool is_ufrag)
{
    size_t n = strnlen(s, TERN_ICE_CRED_MAX + 1);
    if (n < 1 || n > TERN_ICE_CRED_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7F || (is_ufrag && ch == ':'))
            return false;
    }
    return true;
}

static bool ip_is_zero(const tern_addr_t *a)
{
    size_t n = a->family == TERN_AF_INET ? 4 : 16;
    for (size_t i = 0; i < n; i++)
        if (a->ip[i] != 0)
            return false;
    return true;
}

static bool ip_is_multicast(const tern_addr_t *a)
{
    return a->family == TERN_AF_INET ? (a->ip[0] & 0xF0) == 0xE0 : a->ip[0] == 0xFF;
}

static int addr_class(const tern_addr_t *a)
{
    if (a->family == TERN_AF_INET) {
        if (a->ip[0] == 127)
            return ADDR_CLASS_LOOPBACK;
        if (a->ip[0] == 169 && a->ip[1] == 254)
            return ADDR_CLASS_LINK_LOCAL;
        return ADDR_CLASS_IPV4;
    }
    static const uint8_t loopback6[16] = {[15] = 1};
    if (memcmp(a->ip, loopback6, 16) == 0)
        return ADDR_CLASS_LOOPBACK;
    if (a->ip[0] == 0xFE && (a->ip[1] & 0xC0) == 0x80)
        return ADDR_CLASS_LINK_LOCAL;
    if ((a->ip[0] & 0xFE) == 0xFC)
        return ADDR_CLASS_IPV6_ULA;
    return ADDR_CLASS_IPV6_GLOBAL;
}

static bool same_ip(const tern_addr_t *a, const tern_addr_t *b)
{
    return a->family == b->family && memcmp(a->ip, b->ip, 16) == 0;
}

void *tern_ice_grow(tern_ice_t *ice, void *table, size_t *alloc, size_t max, size_t elem,
                    size_t need)
{
    if (need <= *alloc)
        return table;
    if (need > max)
        return NULL;
    size_t n = *alloc ? *alloc * 2 : 4;
    n = TERN_MAX(n, need);
    n = TERN_MIN(n, max);
    uint8_t *grown = tern_realloc(ice->ctx, table, n * elem);
    if (!grown)
        return NULL;
    memset(grown + *alloc * elem, 0, (n - *alloc) * elem);
    *alloc = n;
    return grown;
}

/* ---- events ---- */

void tern_ice_push_event(tern_ice_t *ice, tern_ice_event_type_t type, uint16_t local)
{
    if (ice->ev_count == ice->ev_cap) {
        /* The driver drains after every call (CONVENTIONS.md §2 rule 3): this is a bug there. */
        ICE_LOG(ice, TERN_LOG_WARN, "event queue full, event %d dropped", (int)type);
        return;
    }
    ice_event_t *e = &ice->events[(ice->ev_head + ice->ev_count) % ice->ev_cap];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->local = local;
    e->state = ice->state;
    e->controlling = ice->controlling;
    ice->ev_count++;
}

bool tern_ice_poll_event(tern_ice_t *ice, tern_ice_event_t *out)
{
    while (ice && out && ice->ev_count > 0) {
        ice_event_t e = ice->events[ice->ev_head];
        ice->ev_head = (ice->ev_head + 1) % ice->ev_cap;
        ice->ev_count--;
        memset(out, 0, sizeof *out);
        out->type = e.type;
        switch (e.type) {
        case TERN_ICE_EV_LOCAL_CANDIDATE:
            out->u.candidate = &ice->locals[e.local].c;
            return true;
        case TERN_ICE_EV_STATE:
            out->u.state = e.state;
            return true;
        case TERN_ICE_EV_ROLE_CHANGED:
            out->u.controlling = e.controlling;
            return true;
        case TERN_ICE_EV_SELECTED_PAIR:
            /* The view is made now, so its pointers are fresh; a pair dropped since is skipped. */
            if (ice->selected < 0)
                continue;
            tern_ice_pair_view(ice, ice->selected, &out->u.pair);
            return true;
        default:
            return true;
        }
    }
    return false;
}

/* ---- states ---- */

static tern_ice_state_t state_with_selected(tern_ice_t *ice)
{
    const ice_pair_t *p = &ice->pairs[ice->selected];
    tern_time_t age = ice->now - p->consent_at;
    if (age >= (tern_time_t)ice->cfg.failed_timeout_us) {
        ICE_DEBUG(ice, "consent expired on pair %d", ice->selected);
        ice->failed = true; /* RFC 7675 §5.1: stop sending, for good */
        return TERN_ICE_STATE_FAILED;
    }
    if (age >= (tern_time_t)ice->cfg.disconnected_timeout_us)
        return TERN_ICE_STATE_DISCONNECTED;
    return p->nominated ? TERN_ICE_STATE_COMPLETED : TERN_ICE_STATE_CONNECTED;
}

static bool all_pairs_failed(const tern_ice_t *ice)
{
    if (ice->trig_count > 0)
        return false;
    for (size_t i = 0; i < ice->pair_count; i++)
        if (ice->pairs[i].state != PAIR_FAILED)
            return false;
    return true;
}

static tern_ice_state_t state_without_selected(tern_ice_t *ice)
{
    if (!ice->has_remote_credentials || ice->checking_since == 0)
        return TERN_ICE_STATE_NEW;
    bool all_failed = all_pairs_failed(ice);
    bool timed_out = ice->now - ice->checking_since >= (tern_time_t)ice->cfg.failed_timeout_us;
    /*
     * Failed once every pair has failed and no candidate can come any more, or when nothing
     * has worked for failed_timeout. With no pair at all the peer's checks may still teach us
     * a peer-reflexive one (Chrome's mDNS-only candidates), so only the timer fails then; nor
     * while a ".local" candidate still waits for its name.
     */
    if ((ice->pair_count > 0 && all_failed && ice->remote_done && ice->local_done &&
         !tern_ice_mdns_pending(ice)) ||
        (all_failed && timed_out)) {
        ice->failed = true;
        return TERN_ICE_STATE_FAILED;
    }
    return ice->pair_count > 0 ? TERN_ICE_STATE_CHECKING : TERN_ICE_STATE_NEW;
}

void tern_ice_update_state(tern_ice_t *ice)
{
    tern_ice_state_t s;
    if (ice->closed)
        s = TERN_ICE_STATE_CLOSED;
    else if (ice->failed)
        s = TERN_ICE_STATE_FAILED;
    else if (ice->selected >= 0)
        s = state_with_selected(ice);
    else
        s = state_without_selected(ice);
    if (s == ice->state)
        return;
    ICE_DEBUG(ice, "state %s -> %s", tern_ice_state_name(ice->state), tern_ice_state_name(s));
    ice->state = s;
    if (s == TERN_ICE_STATE_FAILED)
        tern_ice_reset_checks(ice, -2);
    tern_ice_push_event(ice, TERN_ICE_EV_STATE, 0);
}

void tern_ice_check_gathering_done(tern_ice_t *ice)
{
    if (!ice->local_done || ice->gathering_announced || tern_ice_turn_gathering(ice))
        return;
    for (size_t i = 0; i < ice->txn_alloc; i++)
        if (ice->txns[i].kind == TXN_SRFLX && ice->txns[i].retransmitting)
            return;
    ice->gathering_announced = true;
    ice->gathering = TERN_ICE_GATHERING_COMPLETE;
    ICE_DEBUG(ice, "gathering complete with %zu local candidates", ice->local_count);
    tern_ice_push_event(ice, TERN_ICE_EV_GATHERING_COMPLETE, 0);
}

/* ---- local candidates ---- */

int tern_ice_find_local_by_addr(const tern_ice_t *ice, const tern_addr_t *addr)
{
    for (size_t i = 0; i < ice->local_count; i++)
        if (ice_remote_addr_match(&ice->locals[i].c.addr, addr))
            return (int)i;
    return -1;
}

/* RFC 8445 §5.1.1.3: same type, base IP, server and transport give the same foundation. */
static void assign_foundation(tern_ice_t *ice, ice_local_t *l)
{
    for (size_t i = 0; i < ice->local_count; i++) {
        const ice_local_t *o = &ice->locals[i];
        if (o != l && o->c.type == l->c.type && same_ip(&o->base, &l->base) &&
            ((l->c.type != TERN_ICE_CAND_SRFLX && l->c.type != TERN_ICE_CAND_RELAY) ||
             o->server == l->server)) {
            memcpy(l->c.foundation, o->c.foundation, sizeof l->c.foundation);
            return;
        }
    }
    snprintf(l->c.foundation, sizeof l->c.foundation, "%u", (unsigned)++ice->foundation_seq);
}

/* A new local candidate at the end of the table, or NULL if it cannot grow. */
static ice_local_t *new_local(tern_ice_t *ice, tern_ice_cand_type_t type, uint16_t base_index,
                              const tern_addr_t *addr)
{
    ice_local_t *grown = tern_ice_grow(ice, ice->locals, &ice->local_alloc, ice->local_cap,
                                       sizeof *ice->locals, ice->local_count + 1);
    if (!grown)
        return NULL;
    ice->locals = grown;
    ice_local_t *l = &ice->locals[ice->local_count];
    memset(l, 0, sizeof *l);
    l->c.component = 1;
    l->c.transport = TERN_TRANSPORT_UDP;
    l->c.type = type;
    l->c.addr = *addr;
    l->base_index = base_index;
    return l;
}

static void announce_local(tern_ice_t *ice, uint16_t index)
{
    ice->locals[index].signaled = true;
    if (ice->gathering == TERN_ICE_GATHERING_NEW)
        ice->gathering = TERN_ICE_GATHERING_GATHERING;
    tern_ice_push_event(ice, TERN_ICE_EV_LOCAL_CANDIDATE, index);
}

static uint16_t signaled_count(const tern_ice_t *ice)
{
    uint16_t n = 0;
    for (size_t i = 0; i < ice->local_count; i++)
        n += ice->locals[i].c.type != TERN_ICE_CAND_PRFLX;
    return n;
}

int tern_ice_add_srflx(tern_ice_t *ice, uint16_t base, uint16_t server, const tern_addr_t *mapped)
{
    /* Copied: growing the table moves it. */
    const ice_local_t b = ice->locals[base];
    /* RFC 8445 §5.1.3: a srflx candidate equal to a known one (or to its base) is redundant. */
    if (tern_ice_find_local_by_addr(ice, mapped) >= 0 || mapped->family != b.base.family)
        return TERN_OK;
    if (signaled_count(ice) >= ice->cfg.max_local_candidates)
        return TERN_ERR_TOO_LARGE;
    ice_local_t *l = new_local(ice, TERN_ICE_CAND_SRFLX, base, mapped);
    if (!l)
        return TERN_ERR_NOMEM;
    l->base = b.base;
    l->server = server;
    l->local_pref = b.local_pref;
    l->c.priority = tern_ice_priority(TERN_ICE_CAND_SRFLX, l->local_pref, 1);
    l->c.related = b.base;
    assign_foundation(ice, l);
    uint16_t index = (uint16_t)ice->local_count++;
    char a[TERN_ADDR_STRLEN];
    ICE_DEBUG(ice, "srflx candidate %s", tern_addr_log(ice->ctx, mapped, a));
    announce_local(ice, index);
    return TERN_OK;
}

int tern_ice_add_relay(tern_ice_t *ice, uint16_t server, const tern_addr_t *relayed,
                       const tern_addr_t *mapped, uint16_t local_pref)
{
    if (tern_ice_find_local_by_addr(ice, relayed) >= 0 ||
        signaled_count(ice) >= ice->cfg.max_local_candidates)
        return -1;
    uint16_t index = (uint16_t)ice->local_count;
    ice_local_t *l = new_local(ice, TERN_ICE_CAND_RELAY, index, relayed);
    if (!l)
        return -1;
    l->base = *relayed;
    l->server = server;
    l->local_pref = local_pref;
    l->c.priority = tern_ice_priority(TERN_ICE_CAND_RELAY, local_pref, 1);
    /* RFC 8839 §5.1: raddr/rport of a relay candidate is the mapped address. */
    if (mapped && mapped->family != TERN_AF_UNSPEC)
        l->c.related = *mapped;
    assign_foundation(ice, l);
    ice->local_count++;
    char a[TERN_ADDR_STRLEN];
    ICE_DEBUG(ice, "relay candidate %s", tern_addr_log(ice->ctx, relayed, a));
    announce_local(ice, index);
    tern_ice_pair_local(ice, index);
    return index;
}

int tern_ice_add_prflx_local(tern_ice_t *ice, uint16_t base, const tern_addr_t *mapped,
                             uint32_t priority)
{
    size_t prflx = ice->local_count - signaled_count(ice);
    if (prflx >= ICE_MAX_PRFLX_LOCAL)
        return -1;
    const ice_local_t b = ice->locals[base];
    ice_local_t *l = new_local(ice, TERN_ICE_CAND_PRFLX, base, mapped);
    if (!l)
        return -1;
    l->base = b.base;
    l->local_pref = b.local_pref;
    l->c.priority = priority;
    l->c.related = b.base;
    assign_foundation(ice, l);
    char a[TERN_ADDR_STRLEN];
    ICE_DEBUG(ice, "local prflx candidate %s", tern_addr_log(ice->ctx, mapped, a));
    return (int)ice->local_count++;
}

/* ---- lifecycle ---- */

static void apply_defaults(tern_ice_config_t *c)
{
    if (!c->ta_us)
        c->ta_us = ICE_DEFAULT_TA_US;
    if (!c->disconnected_timeout_us)
        c->disconnected_timeout_us = ICE_DEFAULT_DISCONNECTED_US;
    if (!c->failed_timeout_us)
        c->failed_timeout_us = ICE_DEFAULT_FAILED_US;
    if (!c->max_remote_candidates)
        c->max_remote_candidates = ICE_DEFAULT_MAX_REMOTE;
    if (!c->max_pairs)
        c->max_pairs = ICE_DEFAULT_MAX_PAIRS;
    if (!c->max_local_candidates)
        c->max_local_candidates = ICE_DEFAULT_MAX_LOCAL;
    if (!c->max_stun_servers)
        c->max_stun_servers = ICE_DEFAULT_MAX_SERVERS;
    if (!c->consent_interval_us)
        c->consent_interval_us = ICE_DEFAULT_CONSENT_US;
    if (!c->nomination_delay_us)
        c->nomination_delay_us = ICE_DEFAULT_NOMINATION_US;
    if (!c->max_mdns_lookups)
        c->max_mdns_lookups = ICE_DEFAULT_MDNS_LOOKUPS;
}

static int allocate_tables(tern_ice_t *ice)
{
    const tern_ice_config_t *c = &ice->cfg;
    ice->local_cap = (size_t)c->max_local_candidates + ICE_MAX_PRFLX_LOCAL;
    ice->remote_cap = c->max_remote_candidates;
    ice->pair_cap = c->max_pairs;
    ice->server_cap = c->max_stun_servers;
    /* A live transaction per pair, cancelled ones awaiting late answers, and srflx requests. */
    ice->txn_cap = 2 * (size_t)c->max_pairs + (size_t)c->max_local_candidates * c->max_stun_servers;
    ice->ev_cap = 2 * ice->local_cap + 64;
    /* The small fixed-size queues are allocated whole; the tables grow (tern_ice_grow). */
    ice->servers = tern_calloc(ice->ctx, ice->server_cap, sizeof *ice->servers);
    ice->triggered = tern_calloc(ice->ctx, ice->pair_cap, sizeof *ice->triggered);
    ice->events = tern_calloc(ice->ctx, ice->ev_cap, sizeof *ice->events);
    if (!ice->servers || !ice->triggered || !ice->events)
        return TERN_ERR_NOMEM;
    /* Checks are paced and the peer connection hands data over one datagram at a time. */
    return tern_txq_init(&ice->txq, ice->ctx, ICE_TXQ_ENTRIES);
}

static int new_credentials(tern_ice_t *ice, char *ufrag, char *pwd)
{
    int ret = tern_random_ice_chars(ice->ctx, ufrag, UFRAG_LEN);
    if (ret == TERN_OK)
        ret = tern_random_ice_chars(ice->ctx, pwd, PWD_LEN);
    return ret;
}

int tern_ice_new(tern_ctx_t *ctx, const tern_ice_config_t *cfg, tern_time_t now, tern_ice_t **out)
{
    if (!ctx || !out)
        return TERN_ERR_INVALID_ARG;
    tern_ice_t *ice = tern_calloc(ctx, 1, sizeof *ice);
    if (!ice)
        return TERN_ERR_NOMEM;
    ice->ctx = ctx;
    if (cfg)
        ice->cfg = *cfg;
    apply_defaults(&ice->cfg);
    ice->id = tern_ctx_new_object_id(ctx);
    ice->now = now;
    ice->controlling = ice->cfg.controlling;
    ice->selected = -1;
    ice->nominating = -1;
    ice->state = TERN_ICE_STATE_NEW;
    ice->gathering = TERN_ICE_GATHERING_NEW;
    int ret = allocate_tables(ice);
    if (ret == TERN_OK)
        ret = new_credentials(ice, ice->local_ufrag, ice->local_pwd);
    if (ret == TERN_OK)
        ret = tern_random_bytes(ctx, &ice->tie_breaker, sizeof ice->tie_breaker);
    if (ret != TERN_OK) {
        tern_ice_free(ice);
        return ret;
    }
    /* The role is settled by the descriptions (the offerer controls): logged with the remote
     * credentials. */
    ICE_DEBUG(ice, "created");
    *out = ice;
    return TERN_OK;
}

void tern_ice_free(tern_ice_t *ice)
{
    if (!ice)
        return;
    tern_ctx_t *ctx = ice->ctx;
    tern_txq_dispose(&ice->txq);
    tern_free(ctx, ice->locals);
    tern_free(ctx, ice->remotes);
    tern_free(ctx, ice->pairs);
    tern_free(ctx, ice->servers);
    tern_free(ctx, ice->txns);
    tern_free(ctx, ice->triggered);
    tern_free(ctx, ice->events);
    tern_ice_mdns_free(ice);
    tern_ice_turn_free(ice);
    /* The struct holds the passwords (CONVENTIONS.md §5: secrets are zeroed when freed). */
    tern_free_secret(ctx, ice, sizeof *ice);
}

const char *tern_ice_local_ufrag(const tern_ice_t *ice)
{
    return ice->local_ufrag;
}

const char *tern_ice_local_pwd(const tern_ice_t *ice)
{
    return ice->local_pwd;
}

int tern_ice_set_local_credentials(tern_ice_t *ice, const char *ufrag, const char *pwd)
{
    if (!ice || !ufrag || !pwd || !is_ice_chars(ufrag, TERN_ICE_UFRAG_MIN, TERN_ICE_CRED_MAX) ||
        !is_ice_chars(pwd, TERN_ICE_PWD_MIN, TERN_ICE_CRED_MAX))
        return TERN_ERR_INVALID_ARG;
    if (ice->checks_started || ice->closed)
        return TERN_ERR_INVALID_STATE;
    snprintf(ice->local_ufrag, sizeof ice->local_ufrag, "%s", ufrag);
    snprintf(ice->local_pwd, sizeof ice->local_pwd, "%s", pwd);
    return TERN_OK;
}

bool tern_ice_is_controlling(const tern_ice_t *ice)
{
    return ice->controlling;
}

int tern_ice_set_controlling(tern_ice_t *ice, bool controlling)
{
    if (ice->checks_started || ice->closed)
        return controlling == ice->controlling ? TERN_OK : TERN_ERR_INVALID_STATE;
    ice->controlling = controlling;
    tern_ice_recompute_priorities(ice);
    return TERN_OK;
}

/* ---- commands ---- */

static bool usable_address(const tern_addr_t *a)
{
    return a && (a->family == TERN_AF_INET || a->family == TERN_AF_INET6) && a->port != 0 &&
           !ip_is_zero(a) && !ip_is_multicast(a);
}

static void start_srflx_for_local(tern_ice_t *ice, uint16_t local)
{
    if (ice->cfg.relay_only)
        return;
    for (size_t s = 0; s < ice->server_count; s++)
        if (ice->servers[s].family == ice->locals[local].base.family)
            tern_ice_start_srflx(ice, local, (uint16_t)s);
}

int tern_ice_add_local_address(tern_ice_t *ice, tern_time_t now, const tern_addr_t *addr)
{
    if (!ice || !usable_address(addr))
        return TERN_ERR_INVALID_ARG;
    if (ice->closed)
        return TERN_ERR_INVALID_STATE;
    advance_time(ice, now);
    if (tern_ice_find_local_by_addr(ice, addr) >= 0)
        return TERN_OK;
    if (signaled_count(ice) >= ice->cfg.max_local_candidates)
        return TERN_ERR_TOO_LARGE;
    uint16_t index = (uint16_t)ice->local_count;
    ice_local_t *l = new_local(ice, TERN_ICE_CAND_HOST, index, addr);
    if (!l)
        return TERN_ERR_NOMEM;
    l->base = *addr;
    /* RFC 8445 §5.1.2.2 / RFC 8421: the class first (IPv6 before IPv4), then handed-in order. */
    uint16_t order = ice->host_count < 0x0FFF ? ice->host_count : 0x0FFF;
    l->local_pref = (uint16_t)(addr_class(addr) << 12 | (0x0FFF - order));
    l->c.priority = tern_ice_priority(TERN_ICE_CAND_HOST, l->local_pref, 1);
    assign_foundation(ice, l);
    ice->local_count++;
    ice->host_count++;
    char a[TERN_ADDR_STRLEN];
    ICE_DEBUG(ice, "host candidate %s", tern_addr_log(ice->ctx, addr, a));
    /* Relay only: the address is a TURN allocation's socket, never a candidate of its own. */
    if (!ice->cfg.relay_only) {
        announce_local(ice, index);
        tern_ice_pair_local(ice, index);
    }
    start_srflx_for_local(ice, index);
    tern_ice_service(ice);
    return TERN_OK;
}

int tern_ice_add_stun_server(tern_ice_t *ice, tern_time_t now, const tern_addr_t *server)
{
    if (!ice || !usable_address(server))
        return TERN_ERR_INVALID_ARG;
    if (ice->closed || ice->gathering_announced)
        return TERN_ERR_INVALID_STATE;
    advance_time(ice, now);
    for (size_t i = 0; i < ice->server_count; i++)
        if (tern_addr_equal(&ice->servers[i], server))
            return TERN_OK;
    if (ice->server_count >= ice->server_cap)
        return TERN_ERR_TOO_LARGE;
    uint16_t s = (uint16_t)ice->server_count++;
    ice->servers[s] = *server;
    if (ice->cfg.relay_only)
        return TERN_OK; /* kept, never asked: no server-reflexive candidate is wanted */
    if (ice->gathering == TERN_ICE_GATHERING_NEW)
        ice->gathering = TERN_ICE_GATHERING_GATHERING;
    for (size_t i = 0; i < ice->local_count; i++)
        if (ice->locals[i].c.type == TERN_ICE_CAND_HOST &&
            ice->locals[i].base.family == server->family)
            tern_ice_start_srflx(ice, (uint16_t)i, s);
    tern_ice_service(ice);
    return TERN_OK;
}

int tern_ice_local_addresses_done(tern_ice_t *ice, tern_time_t now)
{
    if (ice->closed)
        return TERN_ERR_INVALID_STATE;
    advance_time(ice, now);
    ice->local_done = true;
    tern_ice_check_gathering_done(ice);
    tern_ice_service(ice);
    return TERN_OK;
}

tern_ice_gathering_state_t tern_ice_gathering_state(const tern_ice_t *ice)
{
    return ice->gathering;
}

int tern_ice_set_remote_credentials(tern_ice_t *ice, tern_time_t now, const char *ufrag,
                                    const char *pwd)
{
    if (!ice || !ufrag || !pwd || !is_loose_credential(ufrag, true) ||
        !is_loose_credential(pwd, false))
        return TERN_ERR_INVALID_ARG;
    if (ice->closed)
        return TERN_ERR_INVALID_STATE;
    advance_time(ice, now);
    if (ice->has_remote_credentials) {
        bool same = strcmp(ufrag, ice->remote_ufrag) == 0 && strcmp(pwd, ice->remote_pwd) == 0;
        return same ? TERN_OK : TERN_ERR_INVALID_STATE;
    }
    snprintf(ice->remote_ufrag, sizeof ice->remote_ufrag, "%s", ufrag);
    snprintf(ice->remote_pwd, sizeof ice->remote_pwd, "%s", pwd);
    ice->has_remote_credentials = true;
    if (ice->checking_since == 0)
        ice->checking_since = ice->now;
    ICE_DEBUG(ice, "remote credentials set, %s, %zu pairs, %zu triggered",
              ice->controlling ? "controlling" : "controlled", ice->pair_count, ice->trig_count);
    tern_ice_service(ice);
    return TERN_OK;
}

static int find_remote(const tern_ice_t *ice, const tern_addr_t *addr)
{
    for (size_t i = 0; i < ice->remote_count; i++)
        if (!ice->remotes[i].legacy && ice_remote_addr_match(&ice->remotes[i].c.addr, addr))
            return (int)i;
    return -1;
}

/* A host name: a ".local" one waits for mDNS, any other is accepted and ignored. */
static int add_named_remote(tern_ice_t *ice, const tern_ice_candidate_t *c)
{
    tern_ice_candidate_t named = *c;
    named.hostname[TERN_ICE_HOSTNAME_MAX] = '\0';
    named.foundation[TERN_ICE_FOUNDATION_MAX] = '\0';
    if (c->transport != TERN_TRANSPORT_UDP || c->component != 1 || ice->cfg.disable_mdns ||
        !tern_mdns_is_local_name(named.hostname))
        return TERN_OK;
    int ret = tern_ice_mdns_add_candidate(ice, &named);
    tern_ice_service(ice);
    return ret;
}

int tern_ice_add_remote_candidate(tern_ice_t *ice, tern_time_t now, const tern_ice_candidate_t *c)
{
    if (!ice || !c)
        return TERN_ERR_INVALID_ARG;
    if (ice->closed)
        return TERN_ERR_INVALID_STATE;
    advance_time(ice, now);
    /*
     * After end-of-candidates (RFC 8838 §8.2) a peer sends none, but the same candidates often
     * come twice (in the description and trickled): those are duplicates, and a late new one
     * is checked all the same rather than refused.
     */
    if (c->addr.family == TERN_AF_UNSPEC)
        return c->hostname[0] != '\0' ? add_named_remote(ice, c) : TERN_ERR_INVALID_ARG;
    int ret = tern_ice_add_remote(ice, c);
    tern_ice_service(ice);
    return ret;
}

int tern_ice_add_remote(tern_ice_t *ice, const tern_ice_candidate_t *c)
{
    if (c->addr.family != TERN_AF_INET && c->addr.family != TERN_AF_INET6)
        return TERN_ERR_INVALID_ARG;
    /* Accepted and ignored: ICE-TCP, RTCP (rtcp-mux everywhere), and unusable addresses. */
    if (c->transport != TERN_TRANSPORT_UDP || c->component != 1 || !usable_address(&c->addr))
        return TERN_OK;
    int known = find_remote(ice, &c->addr);
    if (known >= 0) {
        ice_remote_t *r = &ice->remotes[known];
        if (r->c.type == TERN_ICE_CAND_PRFLX && c->type != TERN_ICE_CAND_PRFLX) {
            /* RFC 8445 §7.3.1.3: the signaled candidate replaces the peer-reflexive one. */
            r->c = *c;
            r->c.foundation[TERN_ICE_FOUNDATION_MAX] = '\0';
            r->c.hostname[TERN_ICE_HOSTNAME_MAX] = '\0';
            tern_ice_recompute_priorities(ice);
        }
        return TERN_OK;
    }
    if (ice->remote_count >= ice->remote_cap)
        return TERN_ERR_TOO_LARGE;
    ice_remote_t *grown = tern_ice_grow(ice, ice->remotes, &ice->remote_alloc, ice->remote_cap,
                                        sizeof *ice->remotes, ice->remote_count + 1);
    if (!grown)
        return TERN_ERR_NOMEM;
    ice->remotes = grown;
    uint16_t index = (uint16_t)ice->remote_count++;
    ice_remote_t *r = &ice->remotes[index];
    memset(r, 0, sizeof *r);
    r->c = *c;
    r->c.foundation[TERN_ICE_FOUNDATION_MAX] = '\0';
    r->c.hostname[TERN_ICE_HOSTNAME_MAX] = '\0';
    char a[TERN_ADDR_STRLEN];
    ICE_DEBUG(ice, "remote %s candidate %s", tern_ice_cand_type_name(c->type),
              tern_addr_log(ice->ctx, &c->addr, a));
    tern_ice_pair_remote(ice, index);
    return TERN_OK;
}

int tern_ice_remote_candidates_done(tern_ice_t *ice, tern_time_t now)
{
    if (ice->closed)
        return TERN_ERR_INVALID_STATE;
    advance_time(ice, now);
    ice->remote_done = true;
    tern_ice_service(ice);
    return TERN_OK;
}

int tern_ice_restart(tern_ice_t *ice, tern_time_t now)
{
    if (ice->closed)
        return TERN_ERR_INVALID_STATE;
    advance_time(ice, now);
    char ufrag[UFRAG_LEN + 1], pwd[PWD_LEN + 1];
    int ret = new_credentials(ice, ufrag, pwd);
    if (ret != TERN_OK)
        return ret;
    /* The selected pair keeps working under the old credentials until a new one is chosen. */
    int keep = ice->failed ? -1 : ice->selected;
    ice->has_old_credentials = keep >= 0;
    /* A restart while restarting keeps the credentials the legacy pair runs under. */
    if (keep >= 0 && !ice->pairs[keep].legacy) {
        memcpy(ice->old_local_ufrag, ice->local_ufrag, sizeof ice->old_local_ufrag);
        memcpy(ice->old_local_pwd, ice->local_pwd, sizeof ice->old_local_pwd);
        memcpy(ice->old_remote_ufrag, ice->remote_ufrag, sizeof ice->old_remote_ufrag);
        memcpy(ice->old_remote_pwd, ice->remote_pwd, sizeof ice->old_remote_pwd);
    }
    memcpy(ice->local_ufrag, ufrag, sizeof ufrag);
    memcpy(ice->local_pwd, pwd, sizeof pwd);
    memset(ice->remote_ufrag, 0, sizeof ice->remote_ufrag);
    memset(ice->remote_pwd, 0, sizeof ice->remote_pwd);
    ice->has_remote_credentials = false;
    ice->remote_done = false;
    ice->checks_started = false;
    ice->failed = false;
    ice->checking_since = 0;
    ice->first_success_at = 0;
    tern_ice_reset_checks(ice, keep);
    tern_ice_mdns_forget_candidates(ice);
    ICE_DEBUG(ice, "restart, %s the selected pair", keep >= 0 ? "keeping" : "without");
    /* Report the local candidates again for the new generation (RFC 8445 §9). */
    ice->gathering_announced = false;
    ice->gathering = TERN_ICE_GATHERING_GATHERING;
    for (size_t i = 0; i < ice->local_count; i++)
        if (ice->locals[i].signaled)
            tern_ice_push_event(ice, TERN_ICE_EV_LOCAL_CANDIDATE, (uint16_t)i);
    tern_ice_check_gathering_done(ice);
    tern_ice_update_state(ice);
    return TERN_OK;
}

int tern_ice_close(tern_ice_t *ice, tern_time_t now)
{
    if (ice->closed)
        return TERN_OK;
    advance_time(ice, now);
    tern_ice_reset_checks(ice, -2);
    for (size_t i = 0; i < ice->txn_alloc; i++)
        ice->txns[i].kind = TXN_FREE;
    tern_txq_clear(&ice->txq);
    tern_ice_turn_close(ice); /* deallocations, queued after the clear */
    ice->closed = true;
    tern_ice_update_state(ice);
    return TERN_OK;
}

/* ---- sans-IO verbs ---- */

int tern_ice_handle_input(tern_ice_t *ice, tern_time_t now, const tern_datagram_t *in)
{
    if (!ice || !in || (!in->data && in->len))
        return TERN_ERR_INVALID_ARG;
    advance_time(ice, now);
    if (!ice->closed && tern_ice_mdns_claims(in)) {
        /* Never read as STUN: nothing that arrived on the multicast group is answered. */
        tern_ice_mdns_handle_input(ice, in);
        tern_ice_service(ice);
        return TERN_OK;
    }
    tern_stun_msg_t m;
    if (ice->closed || tern_stun_parse(in->data, in->len, &m) != TERN_OK) {
        ice->stats.dropped++;
        return TERN_OK;
    }
    int ret = tern_ice_handle_stun(ice, in, &m);
    tern_ice_service(ice);
    return ret;
}

int tern_ice_handle_timeout(tern_ice_t *ice, tern_time_t now)
{
    advance_time(ice, now);
    if (!ice->closed)
        tern_ice_service(ice);
    return TERN_OK;
}

bool tern_ice_poll_transmit(tern_ice_t *ice, tern_transmit_t *out)
{
    while (tern_txq_pop(&ice->txq, out)) {
        /* A transmit from a relay candidate leaves wrapped for its TURN server. */
        if (!ice->turn || tern_ice_turn_wrap(ice, out) != TERN_ICE_WRAP_CONSUMED)
            return true;
    }
    return false;
}

tern_time_t tern_ice_next_deadline(const tern_ice_t *ice)
{
    if (ice->closed)
        return TERN_TIME_NEVER;
    tern_time_t d = tern_ice_checks_deadline(ice);
    d = TERN_MIN(d, TERN_MAX(tern_ice_turn_deadline(ice), ice->now));
    return TERN_MIN(d, TERN_MAX(tern_ice_mdns_deadline(ice), ice->now));
}

tern_ice_state_t tern_ice_state(const tern_ice_t *ice)
{
    return ice->state;
}

bool tern_ice_selected_pair(const tern_ice_t *ice, tern_ice_pair_view_t *out)
{
    if (ice->selected < 0 || !out)
        return false;
    tern_ice_pair_view(ice, ice->selected, out);
    return true;
}

int tern_ice_send(tern_ice_t *ice, tern_time_t now, const uint8_t *data, size_t len)
{
    if (!ice || (!data && len))
        return TERN_ERR_INVALID_ARG;
    advance_time(ice, now);
    if (ice->closed || ice->failed || ice->selected < 0)
        return TERN_ERR_INVALID_STATE;
    const ice_pair_t *p = &ice->pairs[ice->selected];
    int ret = tern_txq_push(&ice->txq, &ice->locals[p->local].base, &ice->remotes[p->remote].c.addr,
                            data, len);
    if (ret != TERN_OK)
        ice->stats.tx_dropped++;
    return ret;
}

static bool username_is_ours(const tern_ice_t *ice, const tern_stun_bytes_t *u)
{
    const char *colon = memchr(u->p, ':', u->len);
    if (!colon)
        return false;
    size_t n = (size_t)((const uint8_t *)colon - u->p);
    if (n == strlen(ice->local_ufrag) && memcmp(u->p, ice->local_ufrag, n) == 0)
        return true;
    return ice->has_old_credentials && n == strlen(ice->old_local_ufrag) &&
           memcmp(u->p, ice->old_local_ufrag, n) == 0;
}

bool tern_ice_accepts(const tern_ice_t *ice, const tern_datagram_t *in)
{
    if (!ice || !in || !in->data)
        return false;
    if (tern_ice_mdns_claims(in))
        return tern_ice_mdns_accepts(ice, in);
    if (tern_ice_turn_accepts(ice, in))
        return true;
    tern_stun_msg_t m;
    if (tern_stun_is_message(in->data, in->len)) {
        if (tern_stun_parse(in->data, in->len, &m) != TERN_OK)
            return false;
        if (m.msg_class == TERN_STUN_REQUEST)
            return (m.present & TERN_STUN_HAS_USERNAME) && username_is_ours(ice, &m.username);
        if (m.msg_class == TERN_STUN_SUCCESS || m.msg_class == TERN_STUN_ERROR)
            return tern_ice_has_txn(ice, m.tid);
    }
    for (size_t i = 0; i < ice->pair_count; i++) {
        const ice_pair_t *p = &ice->pairs[i];
        if (ice_remote_addr_match(&ice->remotes[p->remote].c.addr, &in->remote) &&
            tern_addr_equal(&ice->locals[p->local].base, &in->local))
            return true;
    }
    return false;
}

void tern_ice_get_stats(const tern_ice_t *ice, tern_ice_stats_t *out)
{
    *out = ice->stats;
}
