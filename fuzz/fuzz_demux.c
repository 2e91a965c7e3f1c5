/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the RFC 7983 demultiplexer, both its classification (tern_srtp_demux) and the one the
 * peer connection applies to every datagram before anything is connected.
 *
 * 1. The class must agree with each protocol's own test: the STUN range is the first byte
 *    0..3 (whatever tern_stun_is_message says of the rest), the DTLS class is exactly
 * tern_dtls_is_record, a valid RTCP compound is RTCP, a parsed RTP header is RTP or RTCP; the class
 * of a datagram only depends on its first two bytes.
 * 2. The input is handed as one datagram to a pc (A of pcpair.h) in the states before ICE is
 *    connected: having offered and knowing B's candidate but not its answer (a ClientHello then
 *    makes A the DTLS server at once, RFC 8842 §5.2), from B's address, from an unknown one and
 *    on the mDNS group; then again once the answer is applied (ICE checking, DTLS waiting).
 *    Nothing may crash, leak or be sent to an address ICE has not seen.
 * Deterministic: the pcs are fresh for every input, virtual time, fixed random source.
 */
#include "pcpair.h"
#include "srtp/srtp.h"

#define MAX_INPUT 65536

static void check_class(const uint8_t *data, size_t size)
{
    tern_demux_t d = tern_srtp_demux(data, size);
    if (size == 0 && d != TERN_DEMUX_DROP)
        abort();
    /* RFC 7983 §7 takes only methods below 0x100 as STUN (first byte 0..3), though a STUN
     * header allows more: tern_stun_is_message may accept what the demultiplexer calls DTLS. */
    if (size > 0 && (data[0] <= 3) != (d == TERN_DEMUX_STUN))
        abort();
    if (tern_dtls_is_record(data, size) != (d == TERN_DEMUX_DTLS))
        abort();
    if (tern_rtcp_check_compound(data, size, false) >= 0 && d != TERN_DEMUX_RTCP)
        abort();
    tern_rtp_header_t h;
    if (tern_rtp_parse_header(data, size, &h) == TERN_OK && d != TERN_DEMUX_RTP &&
        d != TERN_DEMUX_RTCP)
        abort();
    if (size > 2 && tern_srtp_demux(data, 2) != d)
        abort();
    if (tern_srtp_demux_name(d)[0] == '\0')
        abort();
}

/* Addresses A may send to: B's candidate, the mDNS group, and whoever sent it a datagram (an
 * authenticated check from a new address is answered there, RFC 8445 §7.3.1.3). */
static tern_addr_t allowed[4];
static size_t allowed_count;

static bool may_send_to(const tern_addr_t *a)
{
    for (size_t i = 0; i < allowed_count; i++)
        if (tern_addr_equal(a, &allowed[i]))
            return true;
    return false;
}

/* Take A's output: nothing empty, nothing to an address it never heard of. */
static void drain_a(pair_t *p)
{
    for (int round = 0; round < 4; round++) {
        tern_transmit_t t;
        while (tern_pc_poll_transmit(p->pc[0], &t))
            if (t.len == 0 || !may_send_to(&t.remote))
                abort();
        tern_event_t ev;
        while (tern_pc_poll_event(p->pc[0], &ev))
            ;
    }
}

static void feed(pair_t *p, const char *local, const char *remote, const uint8_t *data, size_t size)
{
    tern_datagram_t d = {.data = data, .len = size};
    if (tern_addr_parse(local, &d.local) != TERN_OK ||
        tern_addr_parse(remote, &d.remote) != TERN_OK)
        abort();
    if (!may_send_to(&d.remote) && allowed_count < TERN_ARRAY_LEN(allowed))
        allowed[allowed_count++] = d.remote;
    (void)tern_pc_accepts(p->pc[0], &d);
    if (tern_pc_handle_input(p->pc[0], p->now, &d) != TERN_OK)
        abort();
    drain_a(p);
}

static void run_pc(const uint8_t *data, size_t size)
{
    pair_t p;
    pair_new(&p, false);
    allowed_count = 0;
    allowed[allowed_count++] = p.addr[1];
    if (tern_addr_parse("224.0.0.251:5353", &allowed[allowed_count++]) != TERN_OK)
        abort();
    /* B's candidates reach A; nothing B sends does. */
    tern_event_t ev;
    while (tern_pc_poll_event(p.pc[1], &ev))
        if (ev.type == TERN_EV_ICE_CANDIDATE)
            (void)tern_pc_add_ice_candidate(p.pc[0], p.now, ev.u.ice_candidate.candidate,
                                            ev.u.ice_candidate.mid);
    drain_a(&p);
    feed(&p, "10.0.0.1:5000", "10.0.0.2:5000", data, size);
    feed(&p, "10.0.0.1:5000", "10.0.0.77:5000", data, size);
    feed(&p, "224.0.0.251:5353", "10.0.0.2:5353", data, size);
    if (tern_pc_set_remote_description(p.pc[0], p.now, TERN_SDP_ANSWER,
                                       tern_pc_local_description(p.pc[1])) == TERN_OK) {
        drain_a(&p);
        p.now += TERN_MS(5);
        feed(&p, "10.0.0.1:5000", "10.0.0.2:5000", data, size);
        tern_pc_handle_timeout(p.pc[0], p.now + TERN_MS(100));
        drain_a(&p);
    }
    tern_pc_free(p.pc[0]);
    tern_pc_free(p.pc[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    check_class(data, size);
    run_pc(data, size);
    return 0;
}
