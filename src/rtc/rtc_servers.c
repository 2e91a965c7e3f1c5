/* SPDX-License-Identifier: MIT */
/*
 * The pc's ICE servers (W3C RTCIceServer, RFC 7064, RFC 7065): URLs checked when the pc is
 * made, servers given as IP addresses handed to the agent at once, named ones once the driver
 * resolved them (tern_pc_set_ice_server_addr; gathering waits for them), "turn:" without a
 * transport as UDP with a TCP fallback, "turns:" as TLS, and the stream seam of TURN over TCP
 * and TLS (tern_pc_poll_stream_request, _poll_stream_transmit, _handle_stream_event,
 * _handle_stream_input) passed through to the agent.
 */
#include "rtc/rtc.h"

#include <string.h>

/* A "turn:" URL without a transport: UDP first, then TCP if UDP has said nothing by then, so a
 * network that blocks UDP reaches the relay in well under a second. */
#define RTC_TURN_TCP_FALLBACK_US 300000

typedef struct rtc_server {
    tern_ice_url_t url;
    bool waiting; /* a name the driver must resolve */
} rtc_server_t;

static bool is_turn(const tern_ice_url_t *u)
{
    return u->scheme == TERN_ICE_URL_TURN || u->scheme == TERN_ICE_URL_TURNS;
}

int tern_rtc_check_server(tern_pc_t *pc, const tern_ice_server_t *s)
{
    tern_ice_url_t u;
    if (!s->url || tern_ice_url_parse(s->url, &u) != TERN_OK) {
        tern_rtc_set_error(pc, "bad ICE server URL: %s", s->url ? s->url : "(null)");
        return TERN_ERR_INVALID_ARG;
    }
    /* W3C setConfiguration: a TURN server without username or credential is an error. */
    if (is_turn(&u) &&
        (!s->username || !s->credential || strlen(s->username) > TERN_TURN_CRED_MAX ||
         strlen(s->credential) > TERN_TURN_CRED_MAX)) {
        tern_rtc_set_error(pc, "TURN server %s needs a username and a credential", s->url);
        return TERN_ERR_INVALID_ARG;
    }
    return TERN_OK;
}

int tern_rtc_copy_server_config(tern_pc_t *pc, const tern_pc_config_t *cfg)
{
    if (!cfg->turn_tls_ca_file)
        return TERN_OK;
    pc->turn_tls_ca_file = tern_strdup(pc->ctx, cfg->turn_tls_ca_file);
    if (!pc->turn_tls_ca_file)
        return TERN_ERR_NOMEM;
    pc->cfg.turn_tls_ca_file = pc->turn_tls_ca_file;
    return TERN_OK;
}

static int add_turn(tern_pc_t *pc, size_t index, const tern_addr_t *addr,
                    tern_turn_transport_t transport, int fallback_of)
{
    const tern_ice_server_t *s = &pc->cfg.ice_servers[index];
    const tern_ice_url_t *u = &pc->servers[index].url;
    tern_ice_turn_server_t t = {
        .addr = *addr,
        .transport = transport,
        .username = s->username,
        .password = s->credential,
        .server_name = transport == TERN_TURN_TLS ? u->host : NULL,
        .fallback_of = fallback_of,
        .fallback_delay_us = fallback_of >= 0 ? RTC_TURN_TCP_FALLBACK_US : 0,
    };
    int ret = tern_ice_add_turn_server(pc->ice, pc->now, &t);
    if (ret < 0)
        TERN_LOG_DEBUG(pc->ctx, "pc", "pc %u ICE server %zu not used: %s", pc->id, index,
                       tern_strerror(ret));
    return ret;
}

/* One resolved address of server `index`, to the agent. */
static void add_server(tern_pc_t *pc, size_t index, const tern_addr_t *resolved)
{
    const tern_ice_url_t *u = &pc->servers[index].url;
    tern_addr_t a = *resolved;
    a.port = u->port;
    int ret = TERN_OK;
    switch (u->scheme) {
    case TERN_ICE_URL_STUN:
        ret = tern_ice_add_stun_server(pc->ice, pc->now, &a);
        break;
    case TERN_ICE_URL_TURN:
        if (u->transport == TERN_ICE_URL_TRANSPORT_UDP) {
            add_turn(pc, index, &a, TERN_TURN_UDP, -1);
        } else if (u->transport == TERN_ICE_URL_TRANSPORT_TCP) {
            add_turn(pc, index, &a, TERN_TURN_TCP, -1);
        } else {
            int udp = add_turn(pc, index, &a, TERN_TURN_UDP, -1);
            if (udp >= 0)
                add_turn(pc, index, &a, TERN_TURN_TCP, udp);
        }
        break;
    case TERN_ICE_URL_TURNS:
        add_turn(pc, index, &a, TERN_TURN_TLS, -1);
        break;
    case TERN_ICE_URL_STUNS:
    default:
        break; /* STUN over TLS maps a TCP connection: no use for UDP candidates */
    }
    if (ret < 0)
        TERN_LOG_DEBUG(pc->ctx, "pc", "pc %u STUN server %zu not used: %s", pc->id, index,
                       tern_strerror(ret));
}

int tern_rtc_start_servers(tern_pc_t *pc, tern_time_t now)
{
    size_t n = pc->cfg.ice_server_count;
    if (n == 0)
        return TERN_OK;
    pc->servers = tern_calloc(pc->ctx, n, sizeof *pc->servers);
    if (!pc->servers)
        return TERN_ERR_NOMEM;
    pc->now = now;
    for (size_t i = 0; i < n; i++) {
        rtc_server_t *s = &pc->servers[i];
        if (tern_ice_url_parse(pc->cfg.ice_servers[i].url, &s->url) != TERN_OK)
            return TERN_ERR_INVALID_ARG; /* checked already: cannot happen */
        if (s->url.scheme == TERN_ICE_URL_STUNS)
            continue;
        if (s->url.host_is_ip) {
            add_server(pc, i, &s->url.addr);
        } else {
            s->waiting = true;
            tern_ice_hold_gathering(pc->ice, now, +1);
        }
    }
    return TERN_OK;
}

void tern_rtc_free_servers(tern_pc_t *pc)
{
    tern_free(pc->ctx, pc->servers);
    pc->servers = NULL;
    tern_free(pc->ctx, pc->turn_tls_ca_file);
    pc->turn_tls_ca_file = NULL;
}

bool tern_pc_ice_server_to_resolve(const tern_pc_t *pc, size_t index, const char **host,
                                   uint16_t *port)
{
    if (!pc || !pc->servers || index >= pc->cfg.ice_server_count || !pc->servers[index].waiting)
        return false;
    if (host)
        *host = pc->servers[index].url.host;
    if (port)
        *port = pc->servers[index].url.port;
    return true;
}

int tern_pc_set_ice_server_addr(tern_pc_t *pc, tern_time_t now, size_t index,
                                const tern_addr_t *addrs, size_t count)
{
    if (!pc || index >= pc->cfg.ice_server_count || (!addrs && count > 0))
        return TERN_ERR_INVALID_ARG;
    if (!pc->servers || !pc->servers[index].waiting)
        return TERN_ERR_INVALID_STATE;
    if (now > pc->now)
        pc->now = now;
    pc->servers[index].waiting = false;
    if (!pc->closed) {
        /* One address per family: a server is one server, whatever its name resolves to. */
        bool v4 = false, v6 = false;
        for (size_t i = 0; i < count; i++) {
            bool *seen = addrs[i].family == TERN_AF_INET    ? &v4
                         : addrs[i].family == TERN_AF_INET6 ? &v6
                                                            : NULL;
            if (!seen || *seen)
                continue;
            *seen = true;
            add_server(pc, index, &addrs[i]);
        }
        if (count == 0)
            TERN_LOG_DEBUG(pc->ctx, "pc", "pc %u ICE server %zu did not resolve", pc->id, index);
        tern_ice_hold_gathering(pc->ice, pc->now, -1);
    }
    tern_rtc_pump(pc, pc->now);
    tern_rtc_mark_pending(pc);
    return TERN_OK;
}

/* ---- the stream seam ---- */

bool tern_pc_poll_stream_request(tern_pc_t *pc, tern_stream_request_t *out)
{
    tern_ice_stream_request_t r;
    if (!pc || !out || !tern_ice_poll_stream_request(pc->ice, &r))
        return false;
    *out = (tern_stream_request_t){.id = r.id,
                                   .close = r.close,
                                   .remote = r.remote,
                                   .tls = r.tls,
                                   .server_name = r.server_name};
    return true;
}

bool tern_pc_poll_stream_transmit(tern_pc_t *pc, uint32_t *id, const uint8_t **data, size_t *len)
{
    if (!pc || !id || !data || !len)
        return false;
    if (!tern_ice_poll_stream_transmit(pc->ice, id, data, len))
        return false;
    pc->stats.bytes_sent += *len;
    return true;
}

int tern_pc_handle_stream_event(tern_pc_t *pc, tern_time_t now, uint32_t id, bool connected,
                                const tern_addr_t *local)
{
    if (!pc)
        return TERN_ERR_INVALID_ARG;
    if (now > pc->now)
        pc->now = now;
    int ret = tern_ice_stream_event(pc->ice, pc->now, id, connected, local);
    tern_rtc_pump(pc, pc->now);
    tern_rtc_mark_pending(pc);
    return ret;
}

int tern_pc_handle_stream_input(tern_pc_t *pc, tern_time_t now, uint32_t id, const uint8_t *data,
                                size_t len)
{
    if (!pc || (!data && len))
        return TERN_ERR_INVALID_ARG;
    if (now > pc->now)
        pc->now = now;
    pc->stats.bytes_received += len;
    int ret = tern_ice_stream_input(pc->ice, pc->now, id, data, len);
    if (ret == TERN_OK && !pc->closed)
        tern_rtc_deliver_relayed(pc, pc->now);
    tern_rtc_pump(pc, pc->now);
    tern_rtc_mark_pending(pc);
    return ret;
}
