/* SPDX-License-Identifier: MIT */
/*
 * The peer connection's life cycle and data path: it demultiplexes input by RFC 7983 (STUN to
 * ICE, DTLS records to DTLS), moves DTLS application data into SCTP and SCTP packets back through
 * DTLS and out on the ICE-selected pair, turns the children's events into the W3C states, and
 * reports the soonest deadline of its children with the reason.
 */
#include "rtc/rtc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define RTC_DTLS_MTU 1200
/* First DTLS retransmission: a few round trips of the ICE pair, within these bounds; without a
 * measured round trip, a value that suits most paths better than OpenSSL's 1 s. */
#define RTC_DTLS_RTO_MIN_US 50000
#define RTC_DTLS_RTO_MAX_US 1000000
#define RTC_DTLS_RTO_DEFAULT_US 200000

void tern_rtc_set_error(tern_pc_t *pc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pc->last_error, sizeof pc->last_error, fmt, ap);
    va_end(ap);
    TERN_LOG_DEBUG(pc->ctx, "pc", "pc %u error: %s", pc->id, pc->last_error);
}

int tern_rtc_enter(tern_pc_t *pc, tern_time_t *now)
{
    if (!pc)
        return TERN_ERR_INVALID_ARG;
    if (pc->closed)
        return TERN_ERR_INVALID_STATE;
    if (*now > pc->now)
        pc->now = *now;
    *now = pc->now;
    return TERN_OK;
}

static int copy_ice_servers(tern_pc_t *pc, const tern_pc_config_t *cfg)
{
    if (cfg->ice_server_count == 0)
        return TERN_OK;
    if (!cfg->ice_servers || cfg->ice_server_count > 32)
        return TERN_ERR_INVALID_ARG;
    for (size_t i = 0; i < cfg->ice_server_count; i++) {
        int err = tern_rtc_check_server(pc, &cfg->ice_servers[i]);
        if (err)
            return err;
    }
    pc->ice_servers = tern_calloc(pc->ctx, cfg->ice_server_count, sizeof *pc->ice_servers);
    if (!pc->ice_servers)
        return TERN_ERR_NOMEM;
    pc->cfg.ice_servers = pc->ice_servers;
    pc->cfg.ice_server_count = cfg->ice_server_count;
    for (size_t i = 0; i < cfg->ice_server_count; i++) {
        const tern_ice_server_t *s = &cfg->ice_servers[i];
        tern_ice_server_t *d = &pc->ice_servers[i];
        d->url = tern_strdup(pc->ctx, s->url);
        d->username = tern_strdup(pc->ctx, s->username);
        d->credential = tern_strdup(pc->ctx, s->credential);
        if (!d->url || (s->username && !d->username) || (s->credential && !d->credential))
            return TERN_ERR_NOMEM;
    }
    return TERN_OK;
}

static void free_ice_servers(tern_pc_t *pc)
{
    for (size_t i = 0; pc->ice_servers && i < pc->cfg.ice_server_count; i++) {
        tern_free(pc->ctx, (char *)pc->ice_servers[i].url);
        tern_free(pc->ctx, (char *)pc->ice_servers[i].username);
        if (pc->ice_servers[i].credential)
            tern_free_secret(pc->ctx, (char *)pc->ice_servers[i].credential,
                             strlen(pc->ice_servers[i].credential));
    }
    tern_free(pc->ctx, pc->ice_servers);
    pc->ice_servers = NULL;
}

static int copy_bind_addresses(tern_pc_t *pc, const tern_pc_config_t *cfg)
{
    if (cfg->bind_address_count == 0)
        return TERN_OK;
    if (!cfg->bind_addresses || cfg->bind_address_count > 64)
        return TERN_ERR_INVALID_ARG;
    for (size_t i = 0; i < cfg->bind_address_count; i++) {
        tern_addr_t addr;
        if (tern_addr_parse(cfg->bind_addresses[i], &addr) != TERN_OK || addr.port != 0) {
            tern_rtc_set_error(pc, "bad bind address: %s",
                               cfg->bind_addresses[i] ? cfg->bind_addresses[i] : "(null)");
            return TERN_ERR_INVALID_ARG;
        }
    }
    pc->bind_addresses = tern_calloc(pc->ctx, cfg->bind_address_count, sizeof(char *));
    if (!pc->bind_addresses)
        return TERN_ERR_NOMEM;
    pc->cfg.bind_address_count = cfg->bind_address_count;
    pc->cfg.bind_addresses = (const char *const *)pc->bind_addresses;
    for (size_t i = 0; i < cfg->bind_address_count; i++)
        if (!(pc->bind_addresses[i] = tern_strdup(pc->ctx, cfg->bind_addresses[i])))
            return TERN_ERR_NOMEM;
    return TERN_OK;
}

static void free_bind_addresses(tern_pc_t *pc)
{
    for (size_t i = 0; pc->bind_addresses && i < pc->cfg.bind_address_count; i++)
        tern_free(pc->ctx, pc->bind_addresses[i]);
    tern_free(pc->ctx, pc->bind_addresses);
    pc->bind_addresses = NULL;
}

static void apply_config_defaults(tern_pc_config_t *cfg)
{
    if (!cfg->max_message_size)
        cfg->max_message_size = TERN_SCTP_DEFAULT_MAX_MESSAGE_SIZE;
    if (!cfg->sctp_port)
        cfg->sctp_port = TERN_SCTP_DEFAULT_PORT;
    if (!cfg->max_channels)
        cfg->max_channels = 1024;
    if (!cfg->max_buffered_bytes)
        cfg->max_buffered_bytes = 16u << 20;
}

static int create_children(tern_pc_t *pc, tern_time_t now)
{
    tern_ice_config_t ice_cfg = {
        .ta_us = pc->cfg.ice_pacing_ms * 1000u,
        .disconnected_timeout_us = pc->cfg.ice_disconnected_timeout_ms * 1000u,
        .failed_timeout_us = pc->cfg.ice_failed_timeout_ms * 1000u,
        .max_remote_candidates = pc->cfg.max_remote_candidates,
        .relay_only = pc->cfg.ice_transport_policy_relay,
    };
    int err = tern_ice_new(pc->ctx, &ice_cfg, now, &pc->ice);
    if (err)
        return err;
    tern_dcm_config_t dcm_cfg = {
        .max_channels = pc->cfg.max_channels,
        .max_buffered_bytes = pc->cfg.max_buffered_bytes,
        .on_pending = tern_rtc_on_child_pending,
        .owner = pc,
        .pc = pc,
    };
    return tern_dcm_new(pc->ctx, &dcm_cfg, &pc->dcm);
}

int tern_pc_new(tern_ctx_t *ctx, const tern_pc_config_t *cfg, tern_time_t now, tern_pc_t **out)
{
    static const tern_pc_config_t defaults;
    if (!ctx || !out)
        return TERN_ERR_INVALID_ARG;
    if (!cfg)
        cfg = &defaults;
    tern_pc_t *pc = tern_calloc(ctx, 1, sizeof *pc);
    if (!pc)
        return TERN_ERR_NOMEM;
    pc->ctx = ctx;
    pc->id = tern_ctx_new_object_id(ctx);
    pc->cfg = *cfg;
    pc->cfg.ice_servers = NULL;
    pc->cfg.ice_server_count = 0;
    pc->cfg.bind_addresses = NULL;
    pc->cfg.bind_address_count = 0;
    pc->cfg.turn_tls_ca_file = NULL;
    pc->now = now;
    pc->timeout_reason = "none";
    apply_config_defaults(&pc->cfg);
    pc->session_id = tern_random_u64(ctx) >> 2; /* o= sess-id: 62 bits (RFC 8829 §5.2.1) */
    int err = copy_ice_servers(pc, cfg);
    if (!err)
        err = copy_bind_addresses(pc, cfg);
    if (!err)
        err = tern_rtc_copy_server_config(pc, cfg);
    if (!err)
        err = create_children(pc, now);
    if (!err)
        err = tern_rtc_start_servers(pc, now);
    if (err) {
        tern_pc_free(pc);
        return err;
    }
    TERN_LOG_DEBUG(ctx, "pc", "pc %u created", pc->id);
    *out = pc;
    return TERN_OK;
}

static void free_early_datagrams(tern_pc_t *pc)
{
    for (size_t i = 0; i < pc->early_count; i++)
        tern_free(pc->ctx, pc->early[i]);
    pc->early_count = 0;
}

void tern_pc_free(tern_pc_t *pc)
{
    if (!pc)
        return;
    tern_ctx_t *ctx = pc->ctx;
    tern_rtc_unlink_pending(pc);
    tern_dcm_free(pc->dcm); /* borrows the association: goes first */
    tern_sctp_free(pc->sctp);
    tern_dtls_free(pc->dtls);
    tern_ice_free(pc->ice);
    tern_sdp_free(ctx, pc->remote);
    tern_free(ctx, pc->local_sdp);
    tern_free(ctx, pc->remote_sdp);
    for (size_t i = 0; i < pc->local_candidate_count; i++)
        tern_free(ctx, pc->local_candidates[i]);
    tern_free(ctx, pc->local_candidates);
    free_early_datagrams(pc);
    tern_rtc_events_dispose(pc);
    tern_rtc_free_servers(pc);
    free_ice_servers(pc);
    free_bind_addresses(pc);
    tern_free(ctx, pc);
}

/* ---- states ---- */

static tern_pc_state_t derive_state(const tern_pc_t *pc)
{
    tern_dtls_state_t dtls = pc->dtls ? tern_dtls_state(pc->dtls) : TERN_DTLS_STATE_NEW;
    if (pc->closed)
        return TERN_PC_STATE_CLOSED;
    if (pc->dtls_failed || pc->ice_state == TERN_ICE_STATE_FAILED)
        return TERN_PC_STATE_FAILED;
    if (dtls == TERN_DTLS_STATE_CLOSED)
        return TERN_PC_STATE_CLOSED; /* the peer sent close_notify: it closed the connection */
    if (pc->ice_state == TERN_ICE_STATE_DISCONNECTED)
        return TERN_PC_STATE_DISCONNECTED;
    bool ice_up =
        pc->ice_state == TERN_ICE_STATE_CONNECTED || pc->ice_state == TERN_ICE_STATE_COMPLETED;
    if (ice_up && dtls == TERN_DTLS_STATE_CONNECTED)
        return TERN_PC_STATE_CONNECTED;
    if (pc->ice_state == TERN_ICE_STATE_NEW && dtls == TERN_DTLS_STATE_NEW)
        return TERN_PC_STATE_NEW;
    return TERN_PC_STATE_CONNECTING;
}

void tern_rtc_update_state(tern_pc_t *pc)
{
    tern_pc_state_t state = derive_state(pc);
    if (state == pc->state)
        return;
    TERN_LOG_INFO(pc->ctx, "pc", "pc %u connection %s -> %s", pc->id, tern_pc_state_name(pc->state),
                  tern_pc_state_name(state));
    pc->state = state;
    tern_rtc_queue_state_event(pc, TERN_EV_CONNECTION_STATE, state);
}

/* ---- DTLS and SCTP set-up ---- */

static uint32_t initial_dtls_rto_us(const tern_pc_t *pc)
{
    tern_ice_pair_view_t pair;
    if (!tern_ice_selected_pair(pc->ice, &pair) || pair.rtt_us == 0)
        return RTC_DTLS_RTO_DEFAULT_US;
    uint64_t rto = (uint64_t)pair.rtt_us * 4;
    return (uint32_t)TERN_MAX(RTC_DTLS_RTO_MIN_US, TERN_MIN(rto, RTC_DTLS_RTO_MAX_US));
}

void tern_rtc_apply_remote_fingerprint(tern_pc_t *pc, tern_time_t now)
{
    if (!pc->dtls || !pc->remote_fp[0])
        return;
    int err = tern_dtls_set_remote_fingerprint(pc->dtls, now, pc->remote_fp_alg, pc->remote_fp);
    if (err)
        tern_rtc_set_error(pc, "remote fingerprint refused: %s", tern_strerror(err));
}

static int ensure_dtls(tern_pc_t *pc, tern_time_t now)
{
    if (pc->dtls)
        return TERN_OK;
    tern_dtls_config_t cfg = {
        .role = pc->dtls_role,
        .mtu = RTC_DTLS_MTU,
        .initial_rto_us = initial_dtls_rto_us(pc),
    };
    int err = tern_dtls_new(pc->ctx, &cfg, now, &pc->dtls);
    if (err) {
        tern_rtc_set_error(pc, "cannot create the DTLS endpoint: %s", tern_strerror(err));
        return err;
    }
    TERN_LOG_DEBUG(pc->ctx, "pc", "pc %u dtls %s created", pc->id,
                   pc->dtls_role == TERN_DTLS_ROLE_CLIENT ? "client" : "server");
    tern_rtc_apply_remote_fingerprint(pc, now);
    for (size_t i = 0; i < pc->early_count; i++)
        tern_dtls_handle_input(pc->dtls, now, pc->early[i], pc->early_len[i]);
    free_early_datagrams(pc);
    return TERN_OK;
}

/* A DTLS client starts its handshake on the first working pair (the selected pair before
 * nomination), which saves the wait for nomination. */
static void maybe_start_dtls_client(tern_pc_t *pc, tern_time_t now)
{
    tern_ice_pair_view_t pair;
    if (pc->closed || !pc->dtls_role_known || pc->dtls_role != TERN_DTLS_ROLE_CLIENT)
        return;
    if (!tern_ice_selected_pair(pc->ice, &pair))
        return;
    if (ensure_dtls(pc, now) != TERN_OK)
        return;
    if (tern_dtls_state(pc->dtls) == TERN_DTLS_STATE_NEW)
        tern_dtls_start(pc->dtls, now);
}

int tern_rtc_set_dtls_role(tern_pc_t *pc, tern_time_t now, tern_dtls_role_t role)
{
    if (pc->dtls_role_known)
        return pc->dtls_role == role ? TERN_OK : TERN_ERR_INVALID_STATE;
    pc->dtls_role_known = true;
    pc->dtls_role = role;
    tern_dcm_set_dtls_role(pc->dcm, role == TERN_DTLS_ROLE_CLIENT);
    if (role == TERN_DTLS_ROLE_SERVER)
        return ensure_dtls(pc, now); /* ready for a ClientHello at any moment */
    maybe_start_dtls_client(pc, now);
    return TERN_OK;
}

static void start_sctp(tern_pc_t *pc, tern_time_t now)
{
    if (pc->sctp_started)
        return;
    pc->sctp_started = true;
    tern_sctp_config_t cfg = {
        .local_port = pc->cfg.sctp_port,
        .remote_port = pc->remote_sctp_port ? pc->remote_sctp_port : TERN_SCTP_DEFAULT_PORT,
        .max_message_size = pc->cfg.max_message_size,
        .on_pending = tern_rtc_on_child_pending,
        .owner = pc,
    };
    int err = tern_sctp_new(pc->ctx, &cfg, now, &pc->sctp);
    if (!err)
        err = tern_sctp_connect(pc->sctp, now);
    if (!err)
        err = tern_dcm_attach(pc->dcm, now, pc->sctp, pc->remote_max_message_size);
    if (err)
        tern_rtc_set_error(pc, "cannot start SCTP: %s", tern_strerror(err));
}

/* ---- routing between the children ---- */

static bool pump_ice_events(tern_pc_t *pc, tern_time_t now)
{
    tern_ice_event_t ev;
    bool progress = false;
    while (tern_ice_poll_event(pc->ice, &ev)) {
        progress = true;
        switch (ev.type) {
        case TERN_ICE_EV_LOCAL_CANDIDATE:
            tern_rtc_add_local_candidate(pc, ev.u.candidate);
            break;
        case TERN_ICE_EV_GATHERING_COMPLETE:
            pc->gathering_complete = true;
            tern_rtc_announce_candidates(pc);
            break;
        case TERN_ICE_EV_STATE:
            if (ev.u.state == pc->ice_state)
                break;
            pc->ice_state = ev.u.state;
            tern_rtc_queue_state_event(pc, TERN_EV_ICE_CONNECTION_STATE, ev.u.state);
            /* No path is left: the channels end now rather than when SCTP gives up. */
            if (ev.u.state == TERN_ICE_STATE_FAILED)
                tern_dcm_detach(pc->dcm, now);
            tern_rtc_update_state(pc);
            break;
        case TERN_ICE_EV_SELECTED_PAIR:
            maybe_start_dtls_client(pc, now);
            break;
        default:
            break;
        }
    }
    return progress;
}

static void on_dtls_failed(tern_pc_t *pc, tern_time_t now, const char *reason)
{
    pc->dtls_failed = true;
    tern_rtc_set_error(pc, "DTLS failed: %s", reason);
    TERN_LOG_WARN(pc->ctx, "pc", "pc %u dtls failed: %s", pc->id, reason);
    tern_dcm_detach(pc->dcm, now);
    tern_rtc_update_state(pc);
}

static bool pump_dtls_events(tern_pc_t *pc, tern_time_t now)
{
    tern_dtls_event_t ev;
    bool progress = false;
    while (pc->dtls && tern_dtls_poll_event(pc->dtls, &ev)) {
        progress = true;
        switch (ev.type) {
        case TERN_DTLS_EV_CONNECTED:
            TERN_LOG_DEBUG(pc->ctx, "pc", "pc %u dtls connected", pc->id);
            start_sctp(pc, now);
            tern_rtc_update_state(pc);
            break;
        case TERN_DTLS_EV_DATA:
            if (pc->sctp)
                tern_sctp_handle_input(pc->sctp, now, ev.u.data.data, ev.u.data.len);
            break;
        case TERN_DTLS_EV_FAILED:
            on_dtls_failed(pc, now, ev.u.failed.reason);
            break;
        case TERN_DTLS_EV_CLOSED:
            TERN_LOG_INFO(pc->ctx, "pc", "pc %u closed by the peer (close_notify)", pc->id);
            tern_dcm_detach(pc->dcm, now);
            tern_rtc_update_state(pc);
            break;
        default:
            break;
        }
    }
    return progress;
}

static bool pump_sctp_events(tern_pc_t *pc, tern_time_t now)
{
    tern_sctp_event_t ev;
    bool progress = false;
    while (pc->sctp && tern_sctp_poll_event(pc->sctp, &ev)) {
        progress = true;
        if (ev.type == TERN_SCTP_EV_FAILED)
            TERN_LOG_INFO(pc->ctx, "pc", "pc %u sctp failed: %s", pc->id, ev.u.failed.reason);
        tern_dcm_handle_sctp_event(pc->dcm, now, &ev);
    }
    return progress;
}

void tern_rtc_pump(tern_pc_t *pc, tern_time_t now)
{
    bool progress;
    do {
        progress = pump_ice_events(pc, now);
        progress |= pump_dtls_events(pc, now);
        progress |= pump_sctp_events(pc, now);
    } while (progress);
}

/* ---- the sans-IO surface ---- */

static void remember_early_datagram(tern_pc_t *pc, const tern_datagram_t *in)
{
    if (pc->early_count >= RTC_MAX_EARLY_DATAGRAMS) {
        pc->stats.datagrams_dropped++;
        return;
    }
    uint8_t *copy = tern_memdup(pc->ctx, in->data, in->len);
    if (!copy)
        return;
    pc->early[pc->early_count] = copy;
    pc->early_len[pc->early_count] = in->len;
    pc->early_count++;
}

static void handle_dtls_datagram(tern_pc_t *pc, tern_time_t now, const tern_datagram_t *in)
{
    /* Only from an address ICE knows: DTLS rides on a checked path (RFC 8445 §12). */
    if (!tern_ice_accepts(pc->ice, in)) {
        pc->stats.datagrams_dropped++;
        return;
    }
    /* A ClientHello before the answer arrived: having offered actpass, the peer's ClientHello
     * makes us the server (RFC 8842 §5.2), so accept it now instead of losing a round trip. */
    if (!pc->dtls_role_known && pc->signaling == TERN_SIGNALING_HAVE_LOCAL_OFFER &&
        pc->local_setup == TERN_SDP_SETUP_ACTPASS)
        tern_rtc_set_dtls_role(pc, now, TERN_DTLS_ROLE_SERVER);
    if (pc->dtls)
        tern_dtls_handle_input(pc->dtls, now, in->data, in->len);
    else
        remember_early_datagram(pc, in);
}

/* RFC 7983 §7: the first byte says what a datagram is. */
static void demux(tern_pc_t *pc, tern_time_t now, const tern_datagram_t *in)
{
    uint8_t first = in->data[0];
    if (first <= 3) /* STUN */
        tern_ice_handle_input(pc->ice, now, in);
    else if (first >= 20 && first <= 63) /* DTLS */
        handle_dtls_datagram(pc, now, in);
    else /* RTP/RTCP (128..191) and the rest: no media in this version */
        pc->stats.datagrams_dropped++;
}

void tern_rtc_deliver_relayed(tern_pc_t *pc, tern_time_t now)
{
    tern_datagram_t inner;
    while (tern_ice_poll_relayed(pc->ice, &inner)) {
        if (inner.len == 0) {
            pc->stats.datagrams_dropped++;
            continue;
        }
        demux(pc, now, &inner);
    }
}

int tern_pc_handle_input(tern_pc_t *pc, tern_time_t now, const tern_datagram_t *in)
{
    if (!pc || !in || (!in->data && in->len))
        return TERN_ERR_INVALID_ARG;
    if (now > pc->now)
        pc->now = now;
    now = pc->now;
    pc->stats.datagrams_received++;
    pc->stats.bytes_received += in->len;
    if (pc->closed || in->len == 0) {
        pc->stats.datagrams_dropped++;
        return TERN_OK;
    }
    if (tern_ice_turn_claims(pc->ice, in)) {
        /* From a TURN server: its answers, and what peers sent through the relay. */
        tern_ice_turn_handle_input(pc->ice, now, in);
        tern_rtc_deliver_relayed(pc, now);
    } else {
        demux(pc, now, in);
    }
    tern_rtc_pump(pc, now);
    return TERN_OK;
}

int tern_pc_handle_timeout(tern_pc_t *pc, tern_time_t now)
{
    if (!pc)
        return TERN_ERR_INVALID_ARG;
    if (now > pc->now)
        pc->now = now;
    now = pc->now;
    if (!pc->ice_closed)
        tern_ice_handle_timeout(pc->ice, now);
    if (pc->dtls)
        tern_dtls_handle_timeout(pc->dtls, now);
    tern_rtc_pump(pc, now);
    return TERN_OK;
}

/* Move one datagram down the stack into ICE's transmit queue: a DTLS datagram, or else an SCTP
 * packet through DTLS. Pulling one at a time keeps every queue short and bounded. */
static bool move_one_datagram(tern_pc_t *pc)
{
    tern_transmit_t t;
    tern_ice_pair_view_t pair;
    /* Without a pair, datagrams wait in DTLS (a server may answer before its own checks
     * succeeded; the pair comes a moment later). */
    if (!tern_ice_selected_pair(pc->ice, &pair))
        return false;
    if (pc->dtls && tern_dtls_poll_transmit(pc->dtls, &t)) {
        if (tern_ice_send(pc->ice, pc->now, t.data, t.len) != TERN_OK)
            pc->stats.datagrams_dropped++;
        return true;
    }
    if (pc->sctp && pc->dtls && tern_sctp_poll_transmit(pc->sctp, &t)) {
        if (tern_dtls_send(pc->dtls, pc->now, t.data, t.len) != TERN_OK)
            pc->stats.datagrams_dropped++;
        return true;
    }
    return false;
}

bool tern_pc_poll_transmit(tern_pc_t *pc, tern_transmit_t *out)
{
    if (!pc || !out)
        return false;
    for (;;) {
        /* After ICE closed, its queue holds only TURN deallocations. */
        if (tern_ice_poll_transmit(pc->ice, out)) {
            pc->stats.datagrams_sent++;
            pc->stats.bytes_sent += out->len;
            return true;
        }
        if (pc->ice_closed || !move_one_datagram(pc))
            break;
    }
    /* After close, ICE stops once the last datagrams (SCTP shutdown, close_notify) are out. */
    if (pc->closed && !pc->ice_closed) {
        pc->ice_closed = true;
        tern_ice_close(pc->ice, pc->now);
        return tern_pc_poll_transmit(pc, out);
    }
    return false;
}

bool tern_pc_poll_event(tern_pc_t *pc, tern_event_t *out)
{
    if (!pc || !out)
        return false;
    tern_rtc_pump(pc, pc->now);
    if (tern_rtc_pop_event(pc, out))
        return true;
    return tern_dcm_poll_event(pc->dcm, out);
}

tern_time_t tern_pc_next_deadline(const tern_pc_t *pc)
{
    if (!pc)
        return TERN_TIME_NEVER;
    tern_time_t deadline = TERN_TIME_NEVER;
    const char *reason = "none";
    if (!pc->ice_closed) {
        deadline = tern_ice_next_deadline(pc->ice);
        reason = "ice";
    }
    if (pc->dtls) {
        tern_time_t d = tern_dtls_next_deadline(pc->dtls);
        if (d < deadline) {
            deadline = d;
            reason = "dtls";
        }
    }
    ((tern_pc_t *)pc)->timeout_reason = deadline == TERN_TIME_NEVER ? "none" : reason;
    return deadline;
}

const char *tern_pc_timeout_reason(const tern_pc_t *pc)
{
    return pc ? pc->timeout_reason : "none";
}

bool tern_pc_accepts(const tern_pc_t *pc, const tern_datagram_t *in)
{
    return pc && in && tern_ice_accepts(pc->ice, in);
}

/* ---- commands ---- */

int tern_pc_add_local_socket(tern_pc_t *pc, tern_time_t now, const tern_addr_t *addr)
{
    if (!addr)
        return TERN_ERR_INVALID_ARG;
    int entered = tern_rtc_enter(pc, &now);
    if (entered != TERN_OK)
        return entered;
    int err = tern_ice_add_local_address(pc->ice, pc->now, addr);
    tern_rtc_pump(pc, pc->now);
    tern_rtc_mark_pending(pc);
    return err;
}

int tern_pc_local_sockets_done(tern_pc_t *pc, tern_time_t now)
{
    int entered = tern_rtc_enter(pc, &now);
    if (entered != TERN_OK)
        return entered;
    int err = tern_ice_local_addresses_done(pc->ice, pc->now);
    tern_rtc_pump(pc, pc->now);
    tern_rtc_mark_pending(pc);
    return err;
}

static void send_twice(tern_pc_t *pc, tern_time_t now, const uint8_t *data, size_t len)
{
    for (int copy = 0; copy < 2; copy++)
        if (tern_ice_send(pc->ice, now, data, len) != TERN_OK)
            pc->stats.datagrams_dropped++;
}

/* On close: what SCTP still has (its ABORT) through DTLS, then close_notify, all into ICE. */
static void send_last_datagrams(tern_pc_t *pc, tern_time_t now)
{
    tern_transmit_t t;
    tern_ice_pair_view_t pair;
    if (!tern_ice_selected_pair(pc->ice, &pair))
        return;
    while (pc->sctp && tern_dtls_state(pc->dtls) == TERN_DTLS_STATE_CONNECTED &&
           tern_sctp_poll_transmit(pc->sctp, &t))
        tern_dtls_send(pc->dtls, now, t.data, t.len);
    tern_dtls_close(pc->dtls, now);
    while (tern_dtls_poll_transmit(pc->dtls, &t))
        send_twice(pc, now, t.data, t.len);
}

int tern_pc_close(tern_pc_t *pc, tern_time_t now)
{
    if (!pc)
        return TERN_ERR_INVALID_ARG;
    if (pc->closed)
        return TERN_OK;
    if (now > pc->now)
        pc->now = now;
    now = pc->now;
    TERN_LOG_INFO(pc->ctx, "pc", "pc %u closing", pc->id);
    tern_dcm_close_all(pc->dcm, now);
    /* W3C close is abrupt: an SCTP ABORT, then close_notify, each sent twice so that one lost
     * datagram does not leave the peer waiting for its consent timeout (30 s). */
    if (pc->sctp)
        tern_sctp_abort(pc->sctp, now);
    if (pc->dtls)
        send_last_datagrams(pc, now);
    tern_dcm_detach(pc->dcm, now);
    pc->closed = true;
    if (pc->signaling != TERN_SIGNALING_CLOSED) {
        pc->signaling = TERN_SIGNALING_CLOSED;
        tern_rtc_queue_state_event(pc, TERN_EV_SIGNALING_STATE, pc->signaling);
    }
    tern_rtc_update_state(pc);
    tern_rtc_mark_pending(pc);
    return TERN_OK;
}

int tern_pc_create_data_channel(tern_pc_t *pc, tern_time_t now, const char *label,
                                const tern_dc_init_t *init, tern_dc_t **out)
{
    if (!label || !out)
        return TERN_ERR_INVALID_ARG;
    int entered = tern_rtc_enter(pc, &now);
    if (entered != TERN_OK)
        return entered;
    bool first = tern_dcm_channel_count(pc->dcm) == 0;
    int err = tern_dcm_create_channel(pc->dcm, pc->now, label, init, out);
    if (err)
        return err;
    /* W3C: the first channel needs an m=application section, hence a negotiation. */
    if (first && !pc->negotiated && pc->signaling == TERN_SIGNALING_STABLE)
        tern_rtc_queue_state_event(pc, TERN_EV_NEGOTIATION_NEEDED, 0);
    tern_rtc_pump(pc, pc->now);
    tern_rtc_mark_pending(pc);
    return TERN_OK;
}

int tern_pc_restart_ice(tern_pc_t *pc, tern_time_t now)
{
    int entered = tern_rtc_enter(pc, &now);
    if (entered != TERN_OK)
        return entered;
    int err = tern_ice_restart(pc->ice, pc->now);
    if (err)
        return err;
    pc->restart_pending = true;
    pc->gathering_complete = false;
    pc->end_of_candidates_announced = false;
    for (size_t i = 0; i < pc->local_candidate_count; i++)
        tern_free(pc->ctx, pc->local_candidates[i]);
    pc->local_candidate_count = 0;
    pc->local_candidates_announced = 0;
    tern_rtc_queue_state_event(pc, TERN_EV_NEGOTIATION_NEEDED, 0);
    tern_rtc_pump(pc, pc->now);
    tern_rtc_mark_pending(pc);
    return TERN_OK;
}

/* ---- getters ---- */

tern_pc_state_t tern_pc_connection_state(const tern_pc_t *pc)
{
    return pc->state;
}

tern_ice_state_t tern_pc_ice_connection_state(const tern_pc_t *pc)
{
    return pc->ice_state;
}

tern_ice_gathering_state_t tern_pc_ice_gathering_state(const tern_pc_t *pc)
{
    return pc->gathering;
}

tern_signaling_state_t tern_pc_signaling_state(const tern_pc_t *pc)
{
    return pc->signaling;
}

const char *tern_pc_last_error(const tern_pc_t *pc)
{
    return pc->last_error;
}

const tern_pc_config_t *tern_pc_config(const tern_pc_t *pc)
{
    return &pc->cfg;
}

int tern_pc_selected_pair(const tern_pc_t *pc, tern_pc_pair_info_t *out)
{
    tern_ice_pair_view_t pair;
    if (!pc || !out)
        return TERN_ERR_INVALID_ARG;
    if (!tern_ice_selected_pair(pc->ice, &pair))
        return TERN_ERR_NOT_FOUND;
    out->local = pair.local_socket;
    out->remote = pair.remote_addr;
    out->local_type = tern_ice_cand_type_name(pair.local->type);
    out->remote_type = tern_ice_cand_type_name(pair.remote->type);
    out->rtt_us = pair.rtt_us;
    return TERN_OK;
}

void tern_pc_get_stats(const tern_pc_t *pc, tern_pc_stats_t *out)
{
    *out = pc->stats;
    /* What the demultiplexer passed on and a child then refused (an unauthenticated check, a
     * record DTLS cannot use) was dropped too: tern.h counts every refused datagram. */
    tern_ice_stats_t ice;
    tern_ice_get_stats(pc->ice, &ice);
    out->datagrams_dropped += ice.dropped;
    if (pc->dtls) {
        tern_dtls_stats_t dtls;
        tern_dtls_get_stats(pc->dtls, &dtls);
        out->datagrams_dropped += dtls.datagrams_dropped;
    }
    tern_dcm_stats_t dcm;
    tern_dcm_get_stats(pc->dcm, &dcm);
    out->messages_sent = dcm.messages_sent;
    out->messages_received = dcm.messages_received;
}

void tern_pc_set_user_data(tern_pc_t *pc, void *user)
{
    pc->user = user;
}

void *tern_pc_user_data(const tern_pc_t *pc)
{
    return pc->user;
}
