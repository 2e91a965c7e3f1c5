/* SPDX-License-Identifier: MIT */
/*
 * The ICE check list (RFC 8445 §6.1.2-§8, RFC 8838 §10-§11) and consent (RFC 7675): pairs
 * formed, pruned, prioritized and frozen; the scheduler paced by Ta with its triggered-check
 * queue; STUN transactions with retransmission (RFC 8445 §14.3); Binding requests answered,
 * authenticated and turned into triggered checks and peer-reflexive candidates (§7.3); responses
 * matched, authenticated and turned into valid pairs and local peer-reflexive candidates
 * (§7.2.5); role conflicts (§7.3.1.1, §7.2.5.1); regular nomination, early (§8.1); consent
 * freshness on the selected pair; and server-reflexive gathering transactions (§5.1.1.2).
 */
#include "ice/ice_agent.h"

#include <stdio.h>
#include <string.h>

#define NO_PAIR (-1)

/* ---- pairs ---- */

static uint64_t pair_priority(const tern_ice_t *ice, uint32_t local, uint32_t remote)
{
    /* RFC 8445 §6.1.2.3: G is the controlling agent's candidate priority, D the other's. */
    uint64_t g = ice->controlling ? local : remote;
    uint64_t d = ice->controlling ? remote : local;
    return (TERN_MIN(g, d) << 32) + 2 * TERN_MAX(g, d) + (g > d ? 1 : 0);
}

static void set_pair_priority(tern_ice_t *ice, ice_pair_t *p)
{
    p->priority =
        pair_priority(ice, ice->locals[p->local].c.priority, ice->remotes[p->remote].c.priority);
}

void tern_ice_recompute_priorities(tern_ice_t *ice)
{
    for (size_t i = 0; i < ice->pair_count; i++)
        set_pair_priority(ice, &ice->pairs[i]);
}

static bool same_foundation(const tern_ice_t *ice, const ice_pair_t *a, const ice_pair_t *b)
{
    return strcmp(ice->locals[a->local].c.foundation, ice->locals[b->local].c.foundation) == 0 &&
           strcmp(ice->remotes[a->remote].c.foundation, ice->remotes[b->remote].c.foundation) == 0;
}

static int addr_scope(const tern_addr_t *a)
{
    if (a->family == TERN_AF_INET)
        return a->ip[0] == 127 ? 1 : 0;
    static const uint8_t loopback6[16] = {[15] = 1};
    if (memcmp(a->ip, loopback6, 16) == 0)
        return 1;
    return a->ip[0] == 0xFE && (a->ip[1] & 0xC0) == 0x80 ? 2 : 0;
}

/*
 * RFC 8445 §6.1.2.2: pair candidates of the same family; IPv6 link-local only with
 * link-local. Loopback pairs only with loopback too: anything else cannot work.
 */
static bool compatible(const tern_addr_t *local, const tern_addr_t *remote)
{
    return local->family == remote->family && addr_scope(local) == addr_scope(remote);
}

static int find_pair(const tern_ice_t *ice, uint16_t local, uint16_t remote)
{
    for (size_t i = 0; i < ice->pair_count; i++)
        if (ice->pairs[i].local == local && ice->pairs[i].remote == remote)
            return (int)i;
    return NO_PAIR;
}

static bool pair_has_live_txn(const tern_ice_t *ice, int index)
{
    for (size_t i = 0; i < ice->txn_alloc; i++) {
        const ice_txn_t *t = &ice->txns[i];
        if ((t->kind == TXN_CHECK || t->kind == TXN_CONSENT) && t->index == index)
            return true;
    }
    return false;
}

/* RFC 8445 §6.1.2.5: over the limit, a lower-priority idle pair makes room. */
static int find_victim(const tern_ice_t *ice, uint64_t priority)
{
    int victim = NO_PAIR;
    for (size_t i = 0; i < ice->pair_count; i++) {
        const ice_pair_t *p = &ice->pairs[i];
        bool idle = p->state == PAIR_FROZEN || p->state == PAIR_WAITING || p->state == PAIR_FAILED;
        if (!idle || p->legacy || (int)i == ice->selected || p->priority >= priority ||
            pair_has_live_txn(ice, (int)i))
            continue;
        if (victim == NO_PAIR || p->priority < ice->pairs[victim].priority)
            victim = (int)i;
    }
    return victim;
}

static ice_pair_state_t initial_state(const tern_ice_t *ice, const ice_pair_t *np)
{
    /* RFC 8445 §6.1.2.6, RFC 8838 §11: one pair per foundation runs, the others wait frozen. */
    for (size_t i = 0; i < ice->pair_count; i++) {
        const ice_pair_t *p = &ice->pairs[i];
        if (p != np && (p->state == PAIR_WAITING || p->state == PAIR_IN_PROGRESS) &&
            same_foundation(ice, p, np))
            return PAIR_FROZEN;
    }
    return PAIR_WAITING;
}

static int add_pair(tern_ice_t *ice, uint16_t local, uint16_t remote)
{
    int index = find_pair(ice, local, remote);
    if (index != NO_PAIR)
        return index;
    uint64_t priority =
        pair_priority(ice, ice->locals[local].c.priority, ice->remotes[remote].c.priority);
    if (ice->pair_count < ice->pair_cap) {
        ice_pair_t *grown = tern_ice_grow(ice, ice->pairs, &ice->pair_alloc, ice->pair_cap,
                                          sizeof *ice->pairs, ice->pair_count + 1);
        if (!grown)
            return NO_PAIR;
        ice->pairs = grown;
        index = (int)ice->pair_count++;
    } else {
        index = find_victim(ice, priority);
        if (index == NO_PAIR)
            return NO_PAIR;
    }
    ice_pair_t *p = &ice->pairs[index];
    memset(p, 0, sizeof *p);
    p->local = local;
    p->remote = remote;
    p->mapped = local;
    p->priority = priority;
    p->txn = -1;
    p->state = initial_state(ice, p);
    /* RFC 8656 §9: a relay reaches a peer only once the peer's IP has a permission. */
    if (ice->locals[local].c.type == TERN_ICE_CAND_RELAY)
        tern_ice_turn_permit(ice, local, &ice->remotes[remote].c.addr);
    return index;
}

void tern_ice_pair_local(tern_ice_t *ice, uint16_t local)
{
    const tern_addr_t *base = &ice->locals[local].base;
    for (size_t r = 0; r < ice->remote_count; r++)
        if (!ice->remotes[r].legacy && compatible(base, &ice->remotes[r].c.addr))
            add_pair(ice, local, (uint16_t)r);
}

static bool pairs_from(const tern_ice_t *ice, const ice_local_t *loc)
{
    return loc->c.type == TERN_ICE_CAND_RELAY ||
           (loc->c.type == TERN_ICE_CAND_HOST && !ice->cfg.relay_only);
}

void tern_ice_pair_remote(tern_ice_t *ice, uint16_t remote)
{
    const tern_addr_t *addr = &ice->remotes[remote].c.addr;
    for (size_t l = 0; l < ice->local_count; l++) {
        const ice_local_t *loc = &ice->locals[l];
        /* RFC 8445 §6.1.2.4: srflx candidates are replaced by their base, so hosts (unless
         * relay only) and relays, whose base is themselves. */
        if (pairs_from(ice, loc) && compatible(&loc->base, addr))
            add_pair(ice, (uint16_t)l, remote);
    }
}

void tern_ice_pair_view(const tern_ice_t *ice, int pair, tern_ice_pair_view_t *out)
{
    const ice_pair_t *p = &ice->pairs[pair];
    memset(out, 0, sizeof *out);
    out->local = &ice->locals[p->mapped].c;
    out->remote = &ice->remotes[p->remote].c;
    out->local_socket = ice->locals[p->local].base;
    out->remote_addr = ice->remotes[p->remote].c.addr;
    out->rtt_us = p->rtt_us;
    out->nominated = p->nominated;
}

/* ---- the triggered-check queue ---- */

static void enqueue_triggered(tern_ice_t *ice, int index)
{
    ice_pair_t *p = &ice->pairs[index];
    p->state = PAIR_WAITING;
    if (p->queued || ice->trig_count >= ice->pair_cap)
        return;
    p->queued = true;
    ice->triggered[(ice->trig_head + ice->trig_count) % ice->pair_cap] = (uint16_t)index;
    ice->trig_count++;
}

static int dequeue_triggered(tern_ice_t *ice)
{
    while (ice->trig_count > 0) {
        int index = ice->triggered[ice->trig_head];
        ice->trig_head = (ice->trig_head + 1) % ice->pair_cap;
        ice->trig_count--;
        if ((size_t)index < ice->pair_count && ice->pairs[index].queued) {
            ice->pairs[index].queued = false;
            return index;
        }
    }
    return NO_PAIR;
}

/* ---- transactions ---- */

static ice_txn_t *find_txn(const tern_ice_t *ice, const uint8_t tid[TERN_STUN_TID_LEN])
{
    for (size_t i = 0; i < ice->txn_alloc; i++) {
        const ice_txn_t *t = &ice->txns[i];
        if (t->kind != TXN_FREE && memcmp(t->tid, tid, TERN_STUN_TID_LEN) == 0)
            return (ice_txn_t *)t;
    }
    return NULL;
}

bool tern_ice_has_txn(const tern_ice_t *ice, const uint8_t tid[TERN_STUN_TID_LEN])
{
    return find_txn(ice, tid) != NULL;
}

static void expire_txns(tern_ice_t *ice)
{
    for (size_t i = 0; i < ice->txn_alloc; i++) {
        ice_txn_t *t = &ice->txns[i];
        if (t->kind != TXN_FREE && !t->retransmitting && t->expires <= ice->now)
            t->kind = TXN_FREE;
    }
}

/*
 * A free slot; the table grows up to its bound, and beyond that the oldest lingering (cancelled
 * or finished) transaction makes room.
 */
static ice_txn_t *alloc_txn(tern_ice_t *ice)
{
    ice_txn_t *oldest = NULL;
    for (size_t i = 0; i < ice->txn_alloc; i++) {
        ice_txn_t *t = &ice->txns[i];
        if (t->kind == TXN_FREE)
            return t;
        if (!t->retransmitting && (!oldest || t->last_sent < oldest->last_sent))
            oldest = t;
    }
    size_t used = ice->txn_alloc;
    ice_txn_t *grown =
        tern_ice_grow(ice, ice->txns, &ice->txn_alloc, ice->txn_cap, sizeof *ice->txns, used + 1);
    if (!grown)
        return oldest;
    ice->txns = grown;
    return &ice->txns[used];
}

static void stop_txn(tern_ice_t *ice, ice_txn_t *t)
{
    /* Stop retransmitting but accept a late answer for a while (RFC 8445 §7.3.1.4). */
    t->retransmitting = false;
    t->expires = ice->now + ICE_TXN_LINGER_US;
}

static void cancel_pair_txn(tern_ice_t *ice, ice_pair_t *p)
{
    if (p->txn >= 0 && ice->txns[p->txn].kind == TXN_CHECK)
        stop_txn(ice, &ice->txns[p->txn]);
    p->txn = -1;
}

static uint32_t count_active_pairs(const tern_ice_t *ice)
{
    uint32_t n = 0;
    for (size_t i = 0; i < ice->pair_count; i++)
        n += ice->pairs[i].state == PAIR_WAITING || ice->pairs[i].state == PAIR_IN_PROGRESS;
    return n;
}

static uint32_t initial_rto(const tern_ice_t *ice)
{
    /* RFC 8445 §14.3: RTO = MAX(500 ms, Ta * (Num-Waiting + Num-In-Progress)). */
    uint64_t rto = (uint64_t)ice->cfg.ta_us * count_active_pairs(ice);
    if (rto < ICE_RTO_MIN_US)
        rto = ICE_RTO_MIN_US;
    return rto > ICE_RTO_MAX_US ? ICE_RTO_MAX_US : (uint32_t)rto;
}

/* ---- writing STUN messages ---- */

static void push_message(tern_ice_t *ice, tern_stun_writer_t *sw, const tern_addr_t *local,
                         const tern_addr_t *remote)
{
    size_t len = 0;
    if (tern_stun_writer_end(sw, &len) != TERN_OK) {
        ICE_DEBUG(ice, "stun message not written");
        return;
    }
    tern_txq_commit(&ice->txq, len, local, remote);
}

/* Reserve transmit room and start a message in it; NULL if the queue is full. */
static bool begin_message(tern_ice_t *ice, tern_wbuf_t *w, tern_stun_writer_t *sw,
                          tern_stun_class_t cls, const uint8_t tid[TERN_STUN_TID_LEN])
{
    uint8_t *buf = tern_txq_reserve(&ice->txq, ICE_STUN_MAX);
    if (!buf) {
        ice->stats.tx_dropped++;
        return false;
    }
    tern_wbuf_init(w, NULL, buf, ICE_STUN_MAX);
    tern_stun_writer_begin(sw, w, cls, TERN_STUN_BINDING, tid);
    return true;
}

static const char *pair_remote_ufrag(const tern_ice_t *ice, const ice_pair_t *p)
{
    return p->legacy ? ice->old_remote_ufrag : ice->remote_ufrag;
}

static const char *pair_remote_pwd(const tern_ice_t *ice, const ice_pair_t *p)
{
    return p->legacy ? ice->old_remote_pwd : ice->remote_pwd;
}

static const char *pair_local_ufrag(const tern_ice_t *ice, const ice_pair_t *p)
{
    return p->legacy ? ice->old_local_ufrag : ice->local_ufrag;
}

static void write_check(tern_ice_t *ice, const ice_txn_t *t)
{
    const ice_pair_t *p = &ice->pairs[t->index];
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    if (!begin_message(ice, &w, &sw, TERN_STUN_REQUEST, t->tid))
        return;
    /* RFC 8445 §7.2.2: USERNAME is "remote-ufrag:local-ufrag". */
    char username[2 * TERN_ICE_CRED_MAX + 2];
    size_t ru = strlen(pair_remote_ufrag(ice, p)), lu = strlen(pair_local_ufrag(ice, p));
    memcpy(username, pair_remote_ufrag(ice, p), ru);
    username[ru] = ':';
    memcpy(username + ru + 1, pair_local_ufrag(ice, p), lu + 1);
    tern_stun_put_string(&sw, TERN_STUN_ATTR_USERNAME, username);
    tern_stun_put_u32(&sw, TERN_STUN_ATTR_PRIORITY, t->prflx_priority);
    tern_stun_put_u64(
        &sw, t->was_controlling ? TERN_STUN_ATTR_ICE_CONTROLLING : TERN_STUN_ATTR_ICE_CONTROLLED,
        ice->tie_breaker);
    if (t->use_candidate)
        tern_stun_put_flag(&sw, TERN_STUN_ATTR_USE_CANDIDATE);
    const char *pwd = pair_remote_pwd(ice, p);
    tern_stun_put_integrity(&sw, (const uint8_t *)pwd, strlen(pwd));
    tern_stun_put_fingerprint(&sw);
    push_message(ice, &sw, &t->local, &t->remote);
}

static void write_srflx_request(tern_ice_t *ice, const ice_txn_t *t)
{
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    if (!begin_message(ice, &w, &sw, TERN_STUN_REQUEST, t->tid))
        return;
    tern_stun_put_fingerprint(&sw);
    push_message(ice, &sw, &t->local, &t->remote);
}

static void transmit_txn(tern_ice_t *ice, ice_txn_t *t)
{
    if (t->kind == TXN_SRFLX)
        write_srflx_request(ice, t);
    else
        write_check(ice, t);
    if (t->sends > 0)
        ice->stats.retransmissions++;
    else
        t->first_sent = ice->now;
    if (t->kind != TXN_SRFLX)
        ice->stats.checks_sent++;
    t->sends++;
    t->last_sent = ice->now;
    t->next_send = ice->now + t->rto_us;
    uint64_t rto = 2 * (uint64_t)t->rto_us;
    t->rto_us = rto > ICE_RTO_MAX_US ? ICE_RTO_MAX_US : (uint32_t)rto;
}

static ice_txn_t *start_txn(tern_ice_t *ice, ice_txn_kind_t kind, uint16_t index,
                            const tern_addr_t *local, const tern_addr_t *remote)
{
    ice_txn_t *t = alloc_txn(ice);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    if (tern_random_bytes(ice->ctx, t->tid, sizeof t->tid) != TERN_OK)
        return NULL;
    t->kind = kind;
    t->index = index;
    t->local = *local;
    t->remote = *remote;
    t->was_controlling = ice->controlling;
    t->retransmitting = true;
    t->rto_us = ICE_RTO_MIN_US;
    t->max_sends = ICE_CHECK_MAX_SENDS;
    return t;
}

void tern_ice_start_srflx(tern_ice_t *ice, uint16_t local, uint16_t server)
{
    ice_txn_t *t =
        start_txn(ice, TXN_SRFLX, local, &ice->locals[local].base, &ice->servers[server]);
    if (!t)
        return;
    t->server = server;
    t->max_sends = ICE_SRFLX_MAX_SENDS;
    transmit_txn(ice, t);
}

static void send_check(tern_ice_t *ice, int index)
{
    ice_pair_t *p = &ice->pairs[index];
    cancel_pair_txn(ice, p);
    const ice_local_t *base = &ice->locals[p->local];
    ice_txn_t *t =
        start_txn(ice, TXN_CHECK, (uint16_t)index, &base->base, &ice->remotes[p->remote].c.addr);
    ice->last_check_sent = ice->now;
    if (!t)
        return;
    /* RFC 8445 §7.1.1: PRIORITY is what a peer-reflexive candidate from this base would get. */
    t->prflx_priority = tern_ice_priority(TERN_ICE_CAND_PRFLX, base->local_pref, 1);
    t->use_candidate = ice->controlling && p->nominate_pending;
    t->rto_us = initial_rto(ice);
    /* A valid pair being nominated stays valid (and selected) while the check runs. */
    if (p->state != PAIR_SUCCEEDED)
        p->state = PAIR_IN_PROGRESS;
    p->txn = (int)(t - ice->txns);
    ice->checks_started = true;
    if (ice->checking_since == 0)
        ice->checking_since = ice->now;
    ICE_TRACE(ice, "check pair %d%s", index, t->use_candidate ? " use-candidate" : "");
    transmit_txn(ice, t);
}

static void send_consent(tern_ice_t *ice, int index)
{
    ice_pair_t *p = &ice->pairs[index];
    /*
     * Earlier consent transactions keep retransmitting on their own schedule: under loss,
     * overlapping transactions keep one lost datagram from costing the consent.
     */
    const ice_local_t *base = &ice->locals[p->local];
    ice_txn_t *t =
        start_txn(ice, TXN_CONSENT, (uint16_t)index, &base->base, &ice->remotes[p->remote].c.addr);
    if (!t)
        return;
    t->prflx_priority = tern_ice_priority(TERN_ICE_CAND_PRFLX, base->local_pref, 1);
    transmit_txn(ice, t);
}

/* ---- selection and nomination ---- */

static uint32_t consent_interval(tern_ice_t *ice)
{
    /*
     * RFC 7675 §5.1: randomized between 0.8 and 1.2 times the period. The period is at most half
     * the disconnected timeout, so one lost check does not make the state flap.
     */
    uint32_t base = ice->cfg.consent_interval_us;
    if (base > ice->cfg.disconnected_timeout_us / 2)
        base = ice->cfg.disconnected_timeout_us / 2;
    if (base < 1000)
        base = 1000;
    uint32_t spread = base / 5;
    return base - spread + tern_random_below(ice->ctx, 2 * spread + 1);
}

void tern_ice_select(tern_ice_t *ice, int index)
{
    if (ice->selected == index)
        return;
    int old = ice->selected;
    ice->selected = index;
    ice_pair_t *p = &ice->pairs[index];
    if (p->consent_at == 0)
        p->consent_at = ice->now;
    p->next_consent = ice->now + consent_interval(ice);
    if (old >= 0 && ice->pairs[old].legacy && !p->legacy) {
        /* The new generation works: the old one and its credentials go (RFC 8445 §9). */
        ice->pairs[old].state = PAIR_FAILED;
        ice->pairs[old].nominated = false;
        ice->has_old_credentials = false;
    }
    char a[TERN_ADDR_STRLEN], b[TERN_ADDR_STRLEN];
    ICE_DEBUG(ice, "selected pair %d %s -> %s%s", index,
              tern_addr_log(ice->ctx, &ice->locals[p->local].base, a),
              tern_addr_log(ice->ctx, &ice->remotes[p->remote].c.addr, b),
              p->nominated ? " (nominated)" : "");
    tern_ice_push_event(ice, TERN_ICE_EV_SELECTED_PAIR, 0);
}

static int best_succeeded(const tern_ice_t *ice)
{
    int best = NO_PAIR;
    for (size_t i = 0; i < ice->pair_count; i++) {
        const ice_pair_t *p = &ice->pairs[i];
        if (p->state == PAIR_SUCCEEDED && !p->legacy &&
            (best == NO_PAIR || p->priority > ice->pairs[best].priority))
            best = (int)i;
    }
    return best;
}

static bool has_nominated(const tern_ice_t *ice)
{
    return ice->selected >= 0 && ice->pairs[ice->selected].nominated &&
           !ice->pairs[ice->selected].legacy;
}

/* Before nomination, data goes on the best pair that works (so DTLS can start early). */
static void reselect(tern_ice_t *ice)
{
    if (has_nominated(ice))
        return;
    int best = best_succeeded(ice);
    if (best != NO_PAIR)
        tern_ice_select(ice, best);
    else if (ice->selected >= 0 && !ice->pairs[ice->selected].legacy &&
             ice->pairs[ice->selected].state != PAIR_SUCCEEDED)
        ice->selected = NO_PAIR;
}

static void nominate(tern_ice_t *ice, int index)
{
    ice_pair_t *p = &ice->pairs[index];
    ICE_DEBUG(ice, "pair %d nominated", index);
    p->nominated = true;
    /* Nomination stops the ordinary checks (RFC 8445 §8.1.2). */
    for (size_t i = 0; i < ice->pair_count; i++) {
        ice_pair_t *o = &ice->pairs[i];
        if ((int)i != index && o->state == PAIR_IN_PROGRESS && !o->queued) {
            cancel_pair_txn(ice, o);
            o->state = PAIR_FROZEN;
        }
    }
    if (ice->selected >= 0 && ice->selected != index)
        ice->pairs[ice->selected].nominated = false;
    if (ice->selected == index)
        tern_ice_push_event(ice, TERN_ICE_EV_SELECTED_PAIR, 0);
    else
        tern_ice_select(ice, index);
}

static bool better_pair_pending(const tern_ice_t *ice, uint64_t priority)
{
    for (size_t i = 0; i < ice->pair_count; i++) {
        const ice_pair_t *p = &ice->pairs[i];
        if (!p->legacy && p->priority > priority &&
            (p->state == PAIR_FROZEN || p->state == PAIR_WAITING || p->state == PAIR_IN_PROGRESS))
            return true;
    }
    return false;
}

static bool pair_is_relayed(const tern_ice_t *ice, int index)
{
    const ice_pair_t *p = &ice->pairs[index];
    return ice->locals[p->local].c.type == TERN_ICE_CAND_RELAY ||
           ice->remotes[p->remote].c.type == TERN_ICE_CAND_RELAY;
}

/* How long after the first success a lesser pair waits for a better one: longer for a relay. */
static tern_time_t nomination_grace(const tern_ice_t *ice, int best)
{
    tern_time_t grace = (tern_time_t)ice->cfg.nomination_delay_us;
    if (best >= 0 && pair_is_relayed(ice, best))
        grace = TERN_MAX(grace, (tern_time_t)ICE_RELAY_NOMINATION_US);
    return grace;
}

/*
 * Controlling agent (RFC 8445 §8.1.1): nominate the best valid pair as soon as no better pair
 * can still succeed, or once the grace time after the first success has passed.
 */
static void consider_nomination(tern_ice_t *ice)
{
    if (!ice->controlling || has_nominated(ice) || ice->first_success_at == 0)
        return;
    if (ice->nominating >= 0 && ice->pairs[ice->nominating].nominate_pending &&
        ice->pairs[ice->nominating].state != PAIR_FAILED)
        return;
    ice->nominating = NO_PAIR;
    int best = best_succeeded(ice);
    if (best == NO_PAIR)
        return;
    bool grace_over = ice->now >= ice->first_success_at + nomination_grace(ice, best);
    if (better_pair_pending(ice, ice->pairs[best].priority) && !grace_over)
        return;
    ice->nominating = best;
    ice->pairs[best].nominate_pending = true;
}

/* ---- the scheduler ---- */

static int next_ordinary(tern_ice_t *ice)
{
    int best = NO_PAIR, frozen = NO_PAIR;
    for (size_t i = 0; i < ice->pair_count; i++) {
        const ice_pair_t *p = &ice->pairs[i];
        if (p->legacy)
            continue;
        if (p->state == PAIR_WAITING &&
            (best == NO_PAIR || p->priority > ice->pairs[best].priority))
            best = (int)i;
        if (p->state == PAIR_FROZEN &&
            (frozen == NO_PAIR || p->priority > ice->pairs[frozen].priority))
            frozen = (int)i;
    }
    /* RFC 8445 §6.1.4.2: with nothing Waiting, the best Frozen pair is unfrozen. */
    return best != NO_PAIR ? best : frozen;
}

/* The next check to send now, if any (RFC 8445 §6.1.4.2). */
static int next_check(tern_ice_t *ice, bool take)
{
    if (!ice->has_remote_credentials || ice->failed)
        return NO_PAIR;
    if (ice->nominating >= 0) {
        ice_pair_t *p = &ice->pairs[ice->nominating];
        if (p->nominate_pending && p->txn < 0 && p->state == PAIR_SUCCEEDED)
            return ice->nominating;
    }
    if (ice->trig_count > 0)
        return take ? dequeue_triggered(ice) : (int)ice->triggered[ice->trig_head];
    if (has_nominated(ice))
        return NO_PAIR;
    return next_ordinary(ice);
}

static void on_check_failed(tern_ice_t *ice, int index)
{
    ice_pair_t *p = &ice->pairs[index];
    p->state = PAIR_FAILED;
    p->txn = -1;
    if (p->nominate_pending) {
        p->nominate_pending = false;
        p->nominated = false;
        ice->nominating = NO_PAIR;
    }
    ICE_DEBUG(ice, "pair %d failed", index);
    reselect(ice);
    consider_nomination(ice);
}

static void on_txn_timeout(tern_ice_t *ice, ice_txn_t *t)
{
    stop_txn(ice, t);
    if (t->kind == TXN_CHECK && (size_t)t->index < ice->pair_count &&
        ice->pairs[t->index].txn == (int)(t - ice->txns))
        on_check_failed(ice, t->index);
    else if (t->kind == TXN_SRFLX)
        tern_ice_check_gathering_done(ice);
}

static void run_retransmissions(tern_ice_t *ice)
{
    for (size_t i = 0; i < ice->txn_alloc; i++) {
        ice_txn_t *t = &ice->txns[i];
        if (t->kind == TXN_FREE || !t->retransmitting || t->next_send > ice->now)
            continue;
        if (t->sends >= t->max_sends)
            on_txn_timeout(ice, t);
        else
            transmit_txn(ice, t);
    }
}

static bool consent_runs(const tern_ice_t *ice)
{
    if (ice->selected < 0 || ice->failed)
        return false;
    const ice_pair_t *p = &ice->pairs[ice->selected];
    return p->legacy || ice->has_remote_credentials;
}

static void run_consent(tern_ice_t *ice)
{
    if (!consent_runs(ice))
        return;
    ice_pair_t *p = &ice->pairs[ice->selected];
    if (p->next_consent > ice->now)
        return;
    p->next_consent = ice->now + consent_interval(ice);
    send_consent(ice, ice->selected);
}

void tern_ice_service(tern_ice_t *ice)
{
    if (ice->closed)
        return;
    expire_txns(ice);
    run_retransmissions(ice);
    consider_nomination(ice);
    if (ice->now >= ice->last_check_sent + (tern_time_t)ice->cfg.ta_us ||
        ice->last_check_sent == 0) {
        int index = next_check(ice, true);
        if (index >= 0)
            send_check(ice, index);
    }
    run_consent(ice);
    tern_ice_turn_service(ice);
    tern_ice_mdns_service(ice);
    tern_ice_update_state(ice);
}

static tern_time_t earliest(tern_time_t a, tern_time_t b)
{
    return a < b ? a : b;
}

/* A deadline already passed was acted on by the last service: only future ones count. */
static tern_time_t future(const tern_ice_t *ice, tern_time_t t)
{
    return t > ice->now ? t : TERN_TIME_NEVER;
}

static tern_time_t state_deadline(const tern_ice_t *ice)
{
    if (ice->failed)
        return TERN_TIME_NEVER;
    if (ice->selected >= 0) {
        const ice_pair_t *p = &ice->pairs[ice->selected];
        tern_time_t disc = p->consent_at + (tern_time_t)ice->cfg.disconnected_timeout_us;
        tern_time_t fail = p->consent_at + (tern_time_t)ice->cfg.failed_timeout_us;
        return earliest(future(ice, disc), future(ice, fail));
    }
    if (ice->checking_since > 0)
        return future(ice, ice->checking_since + (tern_time_t)ice->cfg.failed_timeout_us);
    return TERN_TIME_NEVER;
}

tern_time_t tern_ice_checks_deadline(const tern_ice_t *ice)
{
    tern_time_t d = state_deadline(ice);
    for (size_t i = 0; i < ice->txn_alloc; i++) {
        const ice_txn_t *t = &ice->txns[i];
        if (t->kind != TXN_FREE && t->retransmitting)
            d = earliest(d, t->next_send);
    }
    /* The check scheduler always sends (or at least paces) when it has a pair to check. */
    if (next_check((tern_ice_t *)ice, false) >= 0)
        d = earliest(d, TERN_MAX(ice->now, ice->last_check_sent + (tern_time_t)ice->cfg.ta_us));
    if (consent_runs(ice))
        d = earliest(d, ice->pairs[ice->selected].next_consent);
    if (ice->controlling && ice->first_success_at > 0 && !has_nominated(ice) &&
        ice->nominating < 0 && !ice->failed)
        d = earliest(d, future(ice, ice->first_success_at +
                                        nomination_grace(ice, best_succeeded((tern_ice_t *)ice))));
    return TERN_MAX(d, ice->now);
}

void tern_ice_reset_checks(tern_ice_t *ice, int keep)
{
    for (size_t i = 0; i < ice->txn_alloc; i++) {
        ice_txn_t *t = &ice->txns[i];
        if (t->kind == TXN_CHECK || t->kind == TXN_CONSENT)
            t->kind = TXN_FREE;
    }
    ice->trig_head = ice->trig_count = 0;
    ice->nominating = NO_PAIR;
    for (size_t i = 0; i < ice->pair_count; i++) {
        ice->pairs[i].queued = false;
        ice->pairs[i].txn = -1;
        ice->pairs[i].nominate_pending = false;
    }
    if (keep == -2)
        return; /* stop only: pairs stay for display */
    if (keep >= 0) {
        ice_pair_t p = ice->pairs[keep];
        ice->remotes[0] = ice->remotes[p.remote];
        ice->remotes[0].legacy = true;
        p.remote = 0;
        p.legacy = true;
        ice->pairs[0] = p;
        ice->remote_count = ice->pair_count = 1;
        ice->selected = 0;
    } else {
        ice->remote_count = ice->pair_count = 0;
        ice->selected = NO_PAIR;
    }
}

/* ---- answering requests (RFC 8445 §7.3) ---- */

static void send_response(tern_ice_t *ice, const tern_datagram_t *in, const tern_stun_msg_t *m,
                          uint16_t error, const char *pwd)
{
    tern_wbuf_t w;
    tern_stun_writer_t sw;
    if (!begin_message(ice, &w, &sw, error ? TERN_STUN_ERROR : TERN_STUN_SUCCESS, m->tid))
        return;
    if (error) {
        tern_stun_put_error_code(&sw, error, NULL);
        if (error == TERN_STUN_ERR_UNKNOWN_ATTRIBUTE)
            tern_stun_put_unknown_attributes(&sw, m->unknown_required, m->unknown_required_count);
    } else {
        tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, &in->remote);
    }
    if (pwd)
        tern_stun_put_integrity(&sw, (const uint8_t *)pwd, strlen(pwd));
    tern_stun_put_fingerprint(&sw);
    push_message(ice, &sw, &in->local, &in->remote);
}

/* Which of our passwords USERNAME names: the current one, or the previous generation's. */
static const char *request_pwd(const tern_ice_t *ice, const tern_stun_msg_t *m, bool *old)
{
    const uint8_t *colon = memchr(m->username.p, ':', m->username.len);
    if (!colon)
        return NULL;
    size_t n = (size_t)(colon - m->username.p);
    *old = false;
    if (n == strlen(ice->local_ufrag) && memcmp(m->username.p, ice->local_ufrag, n) == 0)
        return ice->local_pwd;
    if (ice->has_old_credentials && n == strlen(ice->old_local_ufrag) &&
        memcmp(m->username.p, ice->old_local_ufrag, n) == 0) {
        *old = true;
        return ice->old_local_pwd;
    }
    return NULL;
}

static void change_role(tern_ice_t *ice, bool controlling)
{
    ICE_DEBUG(ice, "role conflict: now %s", controlling ? "controlling" : "controlled");
    ice->controlling = controlling;
    ice->stats.role_conflicts++;
    tern_ice_recompute_priorities(ice);
    if (!controlling) {
        ice->nominating = NO_PAIR;
        for (size_t i = 0; i < ice->pair_count; i++)
            ice->pairs[i].nominate_pending = false;
    } else if (best_succeeded(ice) != NO_PAIR && ice->first_success_at == 0) {
        ice->first_success_at = ice->now;
    }
    tern_ice_push_event(ice, TERN_ICE_EV_ROLE_CHANGED, 0);
}

/* RFC 8445 §7.3.1.1. Returns false if the request is answered 487 and goes no further. */
static bool resolve_role(tern_ice_t *ice, const tern_stun_msg_t *m)
{
    if (ice->controlling && (m->present & TERN_STUN_HAS_ICE_CONTROLLING)) {
        if (ice->tie_breaker >= m->ice_controlling)
            return false;
        change_role(ice, false);
    } else if (!ice->controlling && (m->present & TERN_STUN_HAS_ICE_CONTROLLED)) {
        if (ice->tie_breaker < m->ice_controlled)
            return false;
        change_role(ice, true);
    }
    return true;
}

static int find_base(const tern_ice_t *ice, const tern_addr_t *local)
{
    for (size_t i = 0; i < ice->local_count; i++)
        if (pairs_from(ice, &ice->locals[i]) && tern_addr_equal(&ice->locals[i].base, local))
            return (int)i;
    return -1;
}

static int find_remote_by_addr(const tern_ice_t *ice, const tern_addr_t *addr)
{
    for (size_t i = 0; i < ice->remote_count; i++)
        if (!ice->remotes[i].legacy && ice_remote_addr_match(&ice->remotes[i].c.addr, addr))
            return (int)i;
    return -1;
}

/* RFC 8445 §7.3.1.3: a request from an unknown address teaches a peer-reflexive candidate. */
static int learn_prflx_remote(tern_ice_t *ice, const tern_datagram_t *in, const tern_stun_msg_t *m)
{
    ice_remote_t *grown = tern_ice_grow(ice, ice->remotes, &ice->remote_alloc, ice->remote_cap,
                                        sizeof *ice->remotes, ice->remote_count + 1);
    if (!grown)
        return -1;
    ice->remotes = grown;
    ice_remote_t *r = &ice->remotes[ice->remote_count];
    memset(r, 0, sizeof *r);
    r->c.component = 1;
    r->c.transport = TERN_TRANSPORT_UDP;
    r->c.type = TERN_ICE_CAND_PRFLX;
    r->c.addr = in->remote;
    r->c.priority = m->priority;
    /* Any foundation unlike the signaled ones: theirs never start with "prflx". */
    snprintf(r->c.foundation, sizeof r->c.foundation, "prflx%u", (unsigned)++ice->prflx_remote_seq);
    char a[TERN_ADDR_STRLEN];
    ICE_DEBUG(ice, "remote prflx candidate %s", tern_addr_log(ice->ctx, &in->remote, a));
    return (int)ice->remote_count++;
}

/* RFC 8445 §7.3.1.4 and §7.3.1.5: the triggered check and the nomination a request causes. */
static void trigger_from_request(tern_ice_t *ice, int index, bool use_candidate)
{
    ice_pair_t *p = &ice->pairs[index];
    switch (p->state) {
    case PAIR_SUCCEEDED:
        break;
    case PAIR_IN_PROGRESS:
        cancel_pair_txn(ice, p);
        enqueue_triggered(ice, index);
        break;
    case PAIR_FROZEN:
    case PAIR_WAITING:
    case PAIR_FAILED:
    default:
        enqueue_triggered(ice, index);
        break;
    }
    if (!use_candidate || ice->controlling)
        return;
    if (p->state == PAIR_SUCCEEDED) {
        if (!p->nominated || ice->selected != index)
            nominate(ice, index);
    } else {
        p->remote_nominated = true;
    }
}

static void handle_request(tern_ice_t *ice, const tern_datagram_t *in, const tern_stun_msg_t *m)
{
    /* RFC 8489 §9.1.3: without USERNAME and MESSAGE-INTEGRITY, 400; unknown user, 401. */
    if (!(m->present & TERN_STUN_HAS_USERNAME) || !(m->present & TERN_STUN_HAS_INTEGRITY)) {
        ice->stats.dropped++;
        send_response(ice, in, m, TERN_STUN_ERR_BAD_REQUEST, NULL);
        return;
    }
    bool old = false;
    const char *pwd = request_pwd(ice, m, &old);
    if (!pwd || tern_stun_check_integrity(m, (const uint8_t *)pwd, strlen(pwd)) != TERN_OK) {
        ice->stats.dropped++;
        send_response(ice, in, m, TERN_STUN_ERR_UNAUTHORIZED, NULL);
        return;
    }
    if (m->unknown_required_count > 0) {
        send_response(ice, in, m, TERN_STUN_ERR_UNKNOWN_ATTRIBUTE, pwd);
        return;
    }
    ice->stats.checks_received++;
    if (!old && !resolve_role(ice, m)) {
        send_response(ice, in, m, TERN_STUN_ERR_ROLE_CONFLICT, pwd);
        return;
    }
    ice->checks_started = true;
    send_response(ice, in, m, 0, pwd);
    if (old || ice->failed)
        return; /* the previous generation only keeps its selected pair alive */
    int local = find_base(ice, &in->local);
    if (local < 0)
        return;
    int remote = find_remote_by_addr(ice, &in->remote);
    if (remote < 0)
        remote = learn_prflx_remote(ice, in, m);
    if (remote < 0 || !compatible(&in->local, &in->remote))
        return;
    int index = add_pair(ice, (uint16_t)local, (uint16_t)remote);
    if (index < 0)
        return;
    trigger_from_request(ice, index, (m->present & TERN_STUN_HAS_USE_CANDIDATE) != 0);
}

/* ---- handling responses (RFC 8445 §7.2.5) ---- */

/* A pair slot may have been reused since the request went out (RFC 8445 §6.1.2.5 pruning). */
static bool txn_matches_pair(const tern_ice_t *ice, const ice_txn_t *t)
{
    if ((size_t)t->index >= ice->pair_count)
        return false;
    const ice_pair_t *p = &ice->pairs[t->index];
    return tern_addr_equal(&ice->locals[p->local].base, &t->local) &&
           ice_remote_addr_match(&ice->remotes[p->remote].c.addr, &t->remote);
}

static bool response_authentic(const tern_ice_t *ice, const ice_txn_t *t, const tern_stun_msg_t *m)
{
    if (t->kind == TXN_SRFLX)
        return true; /* a STUN server's answer carries no credentials */
    const ice_pair_t *p = &ice->pairs[t->index];
    const char *pwd = pair_remote_pwd(ice, p);
    return tern_stun_check_integrity(m, (const uint8_t *)pwd, strlen(pwd)) == TERN_OK;
}

static void learn_mapped(tern_ice_t *ice, ice_pair_t *p, const ice_txn_t *t,
                         const tern_addr_t *mapped)
{
    /* RFC 8445 §7.2.5.3.1: a mapped address we do not know is a local peer-reflexive one. */
    int l = tern_ice_find_local_by_addr(ice, mapped);
    if (l < 0)
        l = tern_ice_add_prflx_local(ice, p->local, mapped, t->prflx_priority);
    p->mapped = l >= 0 ? (uint16_t)l : p->local;
}

static void unfreeze_foundation(tern_ice_t *ice, const ice_pair_t *p)
{
    /* RFC 8445 §7.2.5.3.3: success unfreezes the pairs of the same foundation. */
    for (size_t i = 0; i < ice->pair_count; i++)
        if (ice->pairs[i].state == PAIR_FROZEN && same_foundation(ice, &ice->pairs[i], p))
            ice->pairs[i].state = PAIR_WAITING;
}

static void check_succeeded(tern_ice_t *ice, ice_txn_t *t, const tern_stun_msg_t *m)
{
    int index = t->index;
    ice_pair_t *p = &ice->pairs[index];
    if (p->txn == (int)(t - ice->txns))
        p->txn = -1;
    p->state = PAIR_SUCCEEDED;
    p->queued = false; /* a triggered check still waiting is moot now */
    p->consent_at = ice->now;
    if (t->sends == 1 || p->rtt_us == 0)
        p->rtt_us = (uint32_t)TERN_MIN(ice->now - t->last_sent, (tern_time_t)UINT32_MAX);
    if (m->present & TERN_STUN_HAS_XOR_MAPPED_ADDRESS)
        learn_mapped(ice, p, t, &m->xor_mapped_address);
    unfreeze_foundation(ice, p);
    ICE_DEBUG(ice, "pair %d succeeded rtt=%uus", index, (unsigned)p->rtt_us);
    if (t->use_candidate && ice->controlling) {
        p->nominate_pending = false;
        ice->nominating = NO_PAIR;
        nominate(ice, index);
        return;
    }
    if (!ice->controlling && p->remote_nominated) {
        nominate(ice, index);
        return;
    }
    if (ice->controlling && ice->first_success_at == 0)
        ice->first_success_at = ice->now;
    reselect(ice);
    consider_nomination(ice);
}

static void handle_error_response(tern_ice_t *ice, ice_txn_t *t, const tern_stun_msg_t *m)
{
    if (t->kind == TXN_SRFLX) {
        tern_ice_check_gathering_done(ice);
        return;
    }
    int index = t->index;
    if (t->kind != TXN_CHECK)
        return; /* consent wants a success; a 487 to it must not flip the new generation's role */
    if (m->error_code == TERN_STUN_ERR_ROLE_CONFLICT) {
        /* RFC 8445 §7.2.5.1: switch only if still in the role the request was sent in. */
        if (t->was_controlling == ice->controlling)
            change_role(ice, !t->was_controlling);
        if (ice->pairs[index].txn == (int)(t - ice->txns)) {
            ice->pairs[index].txn = -1;
            enqueue_triggered(ice, index); /* retried in the new role */
        }
        return;
    }
    if (ice->pairs[index].txn == (int)(t - ice->txns))
        on_check_failed(ice, index);
}

static void handle_response(tern_ice_t *ice, const tern_datagram_t *in, const tern_stun_msg_t *m)
{
    ice_txn_t *t = find_txn(ice, m->tid);
    if (!t || (t->kind != TXN_SRFLX && !txn_matches_pair(ice, t))) {
        ice->stats.dropped++;
        return;
    }
    if (!response_authentic(ice, t, m)) {
        ice->stats.dropped++; /* never let an unauthenticated answer change anything */
        return;
    }
    /* RFC 8445 §7.2.5.2.1: the answer must come back on the path the request took. */
    if (!ice_remote_addr_match(&in->remote, &t->remote) ||
        !tern_addr_equal(&in->local, &t->local)) {
        if (t->kind == TXN_CHECK && ice->pairs[t->index].txn == (int)(t - ice->txns)) {
            stop_txn(ice, t);
            on_check_failed(ice, t->index);
        }
        ice->stats.dropped++;
        return;
    }
    ice->stats.responses_received++;
    stop_txn(ice, t);
    if (m->msg_class == TERN_STUN_ERROR) {
        handle_error_response(ice, t, m);
        return;
    }
    switch (t->kind) {
    case TXN_CHECK:
        check_succeeded(ice, t, m);
        break;
    case TXN_CONSENT:
        ice->pairs[t->index].consent_at = ice->now;
        if (t->sends == 1)
            ice->pairs[t->index].rtt_us =
                (uint32_t)TERN_MIN(ice->now - t->last_sent, (tern_time_t)UINT32_MAX);
        break;
    case TXN_SRFLX: {
        const tern_addr_t *mapped =
            (m->present & TERN_STUN_HAS_XOR_MAPPED_ADDRESS) ? &m->xor_mapped_address
            : (m->present & TERN_STUN_HAS_MAPPED_ADDRESS)   ? &m->mapped_address
                                                            : NULL;
        if (mapped)
            tern_ice_add_srflx(ice, t->index, t->server, mapped);
        t->kind = TXN_FREE;
        tern_ice_check_gathering_done(ice);
        break;
    }
    default:
        break;
    }
}

int tern_ice_handle_stun(tern_ice_t *ice, const tern_datagram_t *in, const tern_stun_msg_t *m)
{
    /* A FINGERPRINT that does not match means this is not STUN meant for us (RFC 8489 §7.3). */
    if ((m->present & TERN_STUN_HAS_FINGERPRINT) && tern_stun_check_fingerprint(m) != TERN_OK) {
        ice->stats.dropped++;
        return TERN_OK;
    }
    if (m->method != TERN_STUN_BINDING) {
        ice->stats.dropped++;
        return TERN_OK;
    }
    switch (m->msg_class) {
    case TERN_STUN_REQUEST:
        handle_request(ice, in, m);
        break;
    case TERN_STUN_SUCCESS:
    case TERN_STUN_ERROR:
        handle_response(ice, in, m);
        break;
    case TERN_STUN_INDICATION:
    default:
        break; /* a Binding indication is a keepalive (RFC 8445 §11): nothing to do */
    }
    return TERN_OK;
}
