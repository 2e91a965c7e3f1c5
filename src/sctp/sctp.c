/* SPDX-License-Identifier: MIT */
/*
 * One SCTP association (RFC 4960, over DTLS as RFC 8261 says) on usrsctp, as a sans-IO object:
 * tern_sctp_new / _free / _connect / _handle_input / _poll_transmit / _poll_event / _send /
 * _reset_stream (RFC 6525) / _close, and the process-wide timer tick (usrsctp_handle_timers)
 * behind tern_sctp_global_next_deadline / _handle_timeout.
 *
 * usrsctp runs without threads (usrsctp_init_nothreads): it only runs inside our calls. Each
 * association is a one-to-one AF_CONN socket whose address is the tern_sctp_t pointer, so the
 * global output callback knows which association a packet belongs to and queues it on that
 * association's tern_txq. The receive side is read lazily with usrsctp_recvv from poll_event,
 * one message or notification at a time, so that the receive window closes when the owner does
 * not drain (natural back-pressure). usrsctp hands up a message only once it is complete (see
 * hold_partial_delivery: its partial delivery breaks on abandoned PR-SCTP messages); only a
 * message far over max_message_size still arrives in parts, which we read to its end and drop. The
 * socket upcall only sets flags: it runs inside usrsctp with its locks held, where calling back
 * into usrsctp would deadlock.
 */
#include "sctp/sctp.h"

#include <usrsctp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#define SCTP_LOG "sctp"

/* The global tick period: usrsctp cannot report its next timer, so we tick it this often while
 * some association may have a short timer running (see is_busy), and IDLE_TICK_US otherwise. */
#define TICK_US TERN_MS(10)
#define IDLE_TICK_US TERN_MS(250)
/* Send and receive buffers: room for several 256 KiB messages in flight each way (throughput
 * on loopback), and only memory actually queued is allocated, so an idle association costs
 * nothing for them. */
#define SNDBUF_BYTES (1024 * 1024)
#define RCVBUF_BYTES (1024 * 1024)
/* Free space kept in the read buffer before each recvv: a whole stream-reset notification for
 * 1024 streams fits, and big messages come in reads of at least this size. */
#define READ_CHUNK 8192
/* Read buffers not in use go to a few process-wide spares (per context: its allocator) rather
 * than stay with their association, so an idle association keeps none, and a busy one finds a
 * buffer already grown to its messages' size. Larger ones are freed. */
#define RBUF_SPARES 4
#define RBUF_SPARE_MAX_BYTES (512 * 1024)
/* Packets that may wait in the transmit queue: usrsctp sends at most a few bursts of
 * max_burst packets per call; what overflows is lost and retransmitted. */
#define TXQ_ENTRIES 512
/* usrsctp's path MTU for AF_CONN leaves out the 12-byte common header (RFC 4960 §3.1). */
#define SCTP_COMMON_HEADER 12
/* Where the CRC32c checksum sits in the common header (RFC 4960 §3.1). */
#define SCTP_CHECKSUM_OFFSET 8
/* Longest an outgoing stream reset waits for our data to be acknowledged (issue_resets). */
#define RESET_MAX_WAIT_US TERN_SEC(1)
/*
 * The SACK policy (see note_data_packet). RFC 4960 §6.2 asks for a SACK for at least every
 * second packet, within 200 ms; we start there and, while DATA keeps coming, acknowledge less
 * often, up to every 16th packet: a third of all datagrams were SACKs, each costing a DTLS
 * record and a system call on both sides. A SACK that the delayed-SACK timer had to send means
 * the stream paused, so the association goes back to every second packet; and if DATA comes
 * right after it, the sender was waiting for that SACK (a peer whose bursts are limited, as
 * usrsctp's default SCTP_MAX_BURST 4 limits Firefox's), so that level is not tried again for a
 * long while (SACK_CEILING_RECOVERY_PACKETS).
 */
#define SACK_DELAY_MS 20
#define SACK_FREQ_MIN 2
#define SACK_FREQ_MAX 16
/* DATA packets received at one level before trying the next. */
#define SACK_RAMP_PACKETS 128
/* DATA this soon after a timer's SACK means the sender waited for it. */
#define SACK_STALL_WINDOW_US TERN_MS(50)
/* A sender that was only descheduled (a busy machine) looks the same as one that waited, so a
 * lowered ceiling is raised again after this many DATA packets (~75 MB): a sender that really
 * starves at that level then loses one delayed-SACK wait per 75 MB. */
#define SACK_CEILING_RECOVERY_PACKETS 65536
/* usrsctp's SCTP_MAX_BURST default of 4 clamps the congestion window to what is in flight plus
 * 4 packets after each send, which starves a peer that acknowledges every 16th packet. 32 is
 * room for two such SACKs, far below the transmit queue (TXQ_ENTRIES). */
#define DEFAULT_MAX_BURST 32
/* Buckets of the live-association table: usrsctp hands our callbacks the association's address,
 * which is checked against it for every packet, so the check must not walk all of them. */
#define LIVE_BUCKET_BITS 10
#define LIVE_BUCKETS (1u << LIVE_BUCKET_BITS)
/* Smallest IPv4 datagram every host accepts (RFC 791); an SCTP MTU below it is a mistake. */
#define MIN_MTU 576

struct tern_sctp {
    /* configuration */
    tern_ctx_t *ctx;
    uint32_t id;
    tern_sctp_config_t cfg;

    /* state */
    struct socket *sock;
    tern_sctp_state_t state;
    tern_time_t now;
    uint16_t outgoing_streams;
    bool registered;     /* usrsctp_register_address was called */
    bool want_write;     /* a send met a full buffer: report SEND_READY when room comes back */
    bool pending;        /* touched during a global tick: call on_pending after it */
    bool msg_delivered;  /* rbuf holds the message last returned: reset on the next call */
    bool msg_discarding; /* the message being read is over max_message_size: drop it */
    bool notif_skipping; /* the notification being read did not fit: skip to its end */
    unsigned in_call;    /* depth of calls from the owner: on_pending is not needed then */
    tern_sctp_event_t closing_event; /* CLOSED/FAILED reported once */
    bool closing_event_pending;

    /* the message being read (in several recvv calls when large) */
    uint8_t *rbuf;
    size_t rlen;
    size_t rcap;
    uint16_t r_stream;
    uint32_t r_ppid;
    uint32_t r_tsn; /* TSN of its first fragment, as usrsctp reports it (sctp_rcvinfo) */
    bool r_tsn_known;
    bool r_unordered;
    bool r_started;

    /* outgoing stream resets asked for and not yet handed to usrsctp (see issue_resets) */
    uint8_t reset_wanted[TERN_SCTP_STREAMS / 8];
    unsigned reset_wanted_count;
    tern_time_t reset_wanted_since;

    /* the rest of a message usrsctp took only the head of (explicit EOR) */
    uint8_t *tail;
    size_t tail_len;
    size_t tail_off;
    struct sctp_sendv_spa tail_spa;

    /* stream reset notification being reported, one stream per event */
    uint16_t *resets;
    size_t reset_count;
    size_t reset_pos;
    size_t reset_cap;
    bool reset_incoming;

    /* a peer's stream reset request held back until our SACKs cover its last TSN */
    uint8_t *held;
    size_t held_len;
    uint32_t held_tsn;
    uint32_t sacked_cum; /* Cumulative TSN Ack of our last SACK */
    bool sack_known;

    /* SACK policy (note_data_packet) */
    uint8_t sack_freq;        /* acknowledge every sack_freq-th DATA packet */
    uint8_t sack_ceiling;     /* the highest level that did not starve the sender */
    uint8_t sack_timer_level; /* sack_freq when the timer sent a SACK; 0: it did not */
    uint32_t sack_calm;       /* DATA packets since the level last changed */
    uint32_t sack_capped;     /* DATA packets since the ceiling was last lowered */
    tern_time_t sack_timer_at;

    /* queues */
    tern_txq_t txq;

    /* the next live association in the same bucket of g_sctp.live */
    struct tern_sctp *g_next;
    /* process-wide list of those the tick must look at (need_attention) */
    struct tern_sctp *a_prev;
    struct tern_sctp *a_next;
    bool attention;

    /* whether a short usrsctp timer may run (is_busy), counted in g_sctp.busy */
    bool busy;
    bool sack_owed;      /* DATA came in and no SACK went out since: delayed SACK (20 ms) */
    bool data_sent;      /* we sent DATA: last_tsn_sent is known */
    bool peer_cum_known; /* the peer's SACKs: peer_cum is known */
    uint32_t last_tsn_sent;
    uint32_t peer_cum;

    /* stats */
    tern_sctp_stats_t stats;
};

/*
 * usrsctp is one stack per process, so this file keeps the only process-wide state of the core:
 * whether usrsctp is initialised, the live associations (to validate the pointer usrsctp hands
 * to the output callback), and the last tick time, shared so that two contexts never tick the
 * same elapsed time twice. Only the loop thread touches it (DESIGN.md, usrsctp).
 */
static struct {
    bool initialised;
    unsigned users;
    struct tern_sctp *live[LIVE_BUCKETS]; /* live associations, hashed by address (is_live) */
    struct tern_sctp *attention;          /* associations with work for the tick (need_attention) */
    unsigned busy;                        /* associations that may have a short timer running */
    bool ticked;
    tern_time_t last_tick;
    bool in_tick;
    tern_time_t tick_now; /* the time of the tick being run */
    struct {
        uint8_t *buf; /* NULL: free slot */
        size_t cap;
        tern_ctx_t *ctx;
    } spare[RBUF_SPARES]; /* read buffers not in use (see RBUF_SPARES) */
} g_sctp;

static int flush_tail(struct tern_sctp *s);
static void issue_resets(struct tern_sctp *s, tern_time_t now);

/* ---- process-wide stack ---- */

static struct tern_sctp **live_bucket(const struct tern_sctp *s)
{
    /* Fibonacci hashing: the product's top bits mix all of the address's. */
    uint64_t h = (uint64_t)(uintptr_t)s * UINT64_C(0x9E3779B97F4A7C15);
    return &g_sctp.live[h >> (64 - LIVE_BUCKET_BITS)];
}

static bool is_live(const struct tern_sctp *s)
{
    for (const struct tern_sctp *it = *live_bucket(s); it; it = it->g_next)
        if (it == s)
            return true;
    return false;
}

/*
 * Put an association on the tick's list: it has a reset request held or resets to issue, or
 * something new to drain that no call of its owner caused (pending). The tick looks only at
 * these, so its cost follows the work, not the number of associations.
 */
static void need_attention(struct tern_sctp *s)
{
    if (s->attention)
        return;
    s->attention = true;
    s->a_prev = NULL;
    s->a_next = g_sctp.attention;
    if (g_sctp.attention)
        g_sctp.attention->a_prev = s;
    g_sctp.attention = s;
}

static void drop_attention(struct tern_sctp *s)
{
    if (!s->attention)
        return;
    if (s->a_prev)
        s->a_prev->a_next = s->a_next;
    else
        g_sctp.attention = s->a_next;
    if (s->a_next)
        s->a_next->a_prev = s->a_prev;
    s->a_prev = s->a_next = NULL;
    s->attention = false;
}

/* Serial number arithmetic on TSNs (RFC 1982, RFC 4960 §1.6). */
static bool tsn_after(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
}

/*
 * Whether usrsctp may have a short timer running for this association, one that must fire
 * within 10 ms or so of its time: the delayed SACK (20 ms) after DATA came in, the
 * retransmission timer (RTO, 250 ms at least) while our DATA is unacknowledged, the INIT and
 * SHUTDOWN timers while it starts or ends, and our own held reset requests. Its other timers
 * (heartbeat, 30 s; the endpoint's secret key, an hour) can fire up to IDLE_TICK_US late.
 */
static bool is_busy(const struct tern_sctp *s)
{
    switch (s->state) {
    case TERN_SCTP_STATE_CONNECTING:
    case TERN_SCTP_STATE_CLOSING:
        return true;
    case TERN_SCTP_STATE_CONNECTED:
        return s->attention || s->sack_owed ||
               (s->data_sent && (!s->peer_cum_known || tsn_after(s->last_tsn_sent, s->peer_cum)));
    default:
        return s->attention;
    }
}

static void update_busy(struct tern_sctp *s)
{
    bool busy = is_busy(s);
    if (busy == s->busy)
        return;
    s->busy = busy;
    if (busy)
        g_sctp.busy++;
    else
        g_sctp.busy--;
}

static void mark_pending(struct tern_sctp *s)
{
    if (s->in_call == 0) {
        s->pending = true;
        need_attention(s);
    }
}

/* At trace level, every packet's chunks (TERN_LOG=sctp=trace). */
static void trace_packet(struct tern_sctp *s, const char *dir, const uint8_t *pkt, size_t len)
{
    if (!TERN_LOG_ENABLED(s->ctx, TERN_LOG_TRACE))
        return;
    char chunks[512];
    tern_sctp_wire_describe(pkt, len, chunks, sizeof chunks);
    TERN_LOG_TRACE(s->ctx, SCTP_LOG, "assoc %u now=%lld %s %zu bytes:%s", s->id,
                   (long long)(g_sctp.in_tick ? g_sctp.tick_now : s->now), dir, len, chunks);
}

/* usrsctp's output callback: one SCTP packet for the association whose address is `addr`. */
static int on_output(void *addr, void *buffer, size_t length, uint8_t tos, uint8_t set_df)
{
    (void)tos;
    (void)set_df;
    struct tern_sctp *s = addr;
    if (!is_live(s))
        return 0;                  /* an association being torn down: nobody will send it */
    static const tern_addr_t none; /* the owner (DTLS) knows where packets go */
    uint8_t *out = length >= SCTP_COMMON_HEADER ? tern_txq_reserve(&s->txq, length) : NULL;
    if (!out) {
        /* SCTP retransmits what is lost; a full queue is just loss. */
        s->stats.packets_dropped++;
        trace_packet(s, "dropped (queue full)", buffer, length);
        return 0;
    }
    memcpy(out, buffer, length);
    trace_packet(s, "out", out, length);
    /* With the checksum "offloaded" (set_sysctls), usrsctp leaves it to us: the peer checks
     * it (RFC 4960 §6.8), we do not check its (DTLS already authenticates every byte). */
    memset(out + SCTP_CHECKSUM_OFFSET, 0, 4);
    uint32_t crc = tern_sctp_crc32c(out, length);
    for (int i = 0; i < 4; i++) /* least significant byte first (RFC 4960 Appendix B) */
        out[SCTP_CHECKSUM_OFFSET + i] = (uint8_t)(crc >> (8 * i));
    tern_txq_commit(&s->txq, length, &none, &none);
    uint32_t cum, tsn;
    if (tern_sctp_wire_last_data_tsn(out, length, &tsn) &&
        (!s->data_sent || tsn_after(tsn, s->last_tsn_sent))) {
        s->last_tsn_sent = tsn;
        s->data_sent = true;
    }
    if (tern_sctp_wire_sack_cum(out, length, &cum)) {
        s->sack_owed = false;
        s->sacked_cum = cum;
        s->sack_known = true;
        /* Sent from a tick: the delayed-SACK timer (or a retransmission) sent it. */
        if (g_sctp.in_tick && s->sack_freq > SACK_FREQ_MIN && !s->sack_timer_level) {
            s->sack_timer_level = s->sack_freq;
            s->sack_timer_at = g_sctp.tick_now;
        }
    }
    s->stats.packets_sent++;
    s->stats.bytes_sent += length;
    mark_pending(s);
    update_busy(s);
    return 0;
}

/* The socket upcall: something to read, or room to write. Only flags, see the file header. */
static void on_upcall(struct socket *sock, void *arg, int flags)
{
    (void)sock;
    (void)flags;
    struct tern_sctp *s = arg;
    if (is_live(s))
        mark_pending(s);
}

static void set_sysctls(void)
{
    /* ECN is meaningless over DTLS/UDP without access to the IP header (RFC 8261 §5). */
    usrsctp_sysctl_set_sctp_ecn_enable(0);
    /* Partial reliability (RFC 3758) and stream reconfiguration (RFC 6525) are required by
     * RFC 8831 §6.1 and §6.7. */
    usrsctp_sysctl_set_sctp_pr_enable(1);
    usrsctp_sysctl_set_sctp_reconfig_enable(1);
    /* No multi-homing over AF_CONN, so no ASCONF; without ASCONF SCTP-AUTH protects nothing
     * that DTLS does not already (RFC 8261 §4). ASCONF must go first: it depends on AUTH. */
    usrsctp_sysctl_set_sctp_asconf_enable(0);
    usrsctp_sysctl_set_sctp_auto_asconf(0);
    usrsctp_sysctl_set_sctp_auth_enable(0);
    usrsctp_sysctl_set_sctp_nrsack_enable(0);
    usrsctp_sysctl_set_sctp_pktdrop_enable(0);
    /* Timers for an interactive link rather than RFC 4960 §15's conservative defaults (RTO.Min
     * 1 s, RTO.Initial 3 s), as browsers do; failure after 10 retries. */
    usrsctp_sysctl_set_sctp_rto_min_default(250);
    usrsctp_sysctl_set_sctp_rto_initial_default(1000);
    usrsctp_sysctl_set_sctp_rto_max_default(10000);
    usrsctp_sysctl_set_sctp_init_rto_max_default(10000);
    usrsctp_sysctl_set_sctp_init_rtx_max_default(8);
    usrsctp_sysctl_set_sctp_assoc_rtx_max_default(10);
    usrsctp_sysctl_set_sctp_path_rtx_max_default(10);
    /* No limit on the retransmissions of one chunk (usrsctp: 30, then ABORT). A receiver whose
     * socket buffer overflows (a browser on loopback, 200 KiB of rmem) loses a burst of fast
     * retransmissions again and again while it keeps acknowledging other data within a few
     * milliseconds: a congested path, not a dead peer. A dead peer is still detected by the
     * association's error count (assoc_rtx_max consecutive timeouts, above), as in dcSCTP. */
    usrsctp_sysctl_set_sctp_max_retran_chunk(0);
    /* usrsctp's own ABORTs (a protocol violation, too many retransmissions) carry their reason
     * as a Protocol Violation cause (RFC 4960 §3.3.10.13) instead of nothing: the peer's log
     * and our trace then say why. */
    usrsctp_sysctl_set_sctp_diag_info_code(13);
    /* A SACK within 20 ms rather than 200 keeps the sender's window moving on lossy paths. */
    usrsctp_sysctl_set_sctp_delayed_sack_time_default(20);
    /* Many small messages must not hit the chunk-count limit before the byte limit. */
    usrsctp_sysctl_set_sctp_max_chunks_on_queue(16384);
    usrsctp_sysctl_set_sctp_nr_outgoing_streams_default(TERN_SCTP_STREAMS);
}

static int stack_acquire(tern_ctx_t *ctx, tern_time_t now)
{
    if (!g_sctp.initialised) {
        usrsctp_init_nothreads(0, on_output, NULL);
        /* CRC32c costs a third of usrsctp's CPU time at full speed. Inbound, DTLS's MAC
         * already protects the packet (RFC 8261 §4 runs SCTP only over DTLS), so usrsctp is
         * told not to verify; outbound, on_output computes it, because the peer verifies. */
        usrsctp_enable_crc32c_offload();
        set_sysctls();
        g_sctp.initialised = true;
    }
    if (!g_sctp.ticked) {
        g_sctp.ticked = true;
        g_sctp.last_tick = now;
    }
    g_sctp.users++;
    ctx->sctp_users++;
    return TERN_OK;
}

/* Free the spare read buffers of a context (NULL: all of them). */
static void free_spares(const tern_ctx_t *ctx)
{
    for (size_t i = 0; i < RBUF_SPARES; i++) {
        if (!g_sctp.spare[i].buf || (ctx && g_sctp.spare[i].ctx != ctx))
            continue;
        tern_free(g_sctp.spare[i].ctx, g_sctp.spare[i].buf);
        g_sctp.spare[i].buf = NULL;
    }
}

static void stack_release(tern_ctx_t *ctx)
{
    /* The context may be freed once it has no association: its spares go now. */
    if (--ctx->sctp_users == 0)
        free_spares(ctx);
    if (--g_sctp.users > 0)
        return;
    free_spares(NULL);
    /* usrsctp_finish fails while a socket still exists; then the stack stays up and the next
     * association reuses it. */
    if (usrsctp_finish() == 0) {
        g_sctp.initialised = false;
        g_sctp.ticked = false;
    }
}

static void list_add(struct tern_sctp *s)
{
    struct tern_sctp **b = live_bucket(s);
    s->g_next = *b;
    *b = s;
}

static void list_remove(struct tern_sctp *s)
{
    for (struct tern_sctp **it = live_bucket(s); *it; it = &(*it)->g_next) {
        if (*it == s) {
            *it = s->g_next;
            break;
        }
    }
    s->g_next = NULL;
}

/* ---- socket set-up ---- */

static int setopt(struct tern_sctp *s, int level, int name, const void *val, size_t len,
                  const char *what)
{
    if (usrsctp_setsockopt(s->sock, level, name, val, (socklen_t)len) != 0) {
        TERN_LOG_WARN(s->ctx, SCTP_LOG, "assoc %u setsockopt %s failed errno=%d", s->id, what,
                      errno);
        return TERN_ERR_IO;
    }
    return TERN_OK;
}

static int subscribe_events(struct tern_sctp *s)
{
    static const uint16_t types[] = {SCTP_ASSOC_CHANGE, SCTP_STREAM_RESET_EVENT,
                                     SCTP_PARTIAL_DELIVERY_EVENT, SCTP_SHUTDOWN_EVENT};
    for (size_t i = 0; i < TERN_ARRAY_LEN(types); i++) {
        struct sctp_event ev = {.se_assoc_id = SCTP_FUTURE_ASSOC, .se_type = types[i], .se_on = 1};
        int ret = setopt(s, IPPROTO_SCTP, SCTP_EVENT, &ev, sizeof ev, "SCTP_EVENT");
        if (ret)
            return ret;
    }
    return TERN_OK;
}

static int configure_socket(struct tern_sctp *s)
{
    int ret = TERN_OK;
    const int on = 1, off = 0;
    /* Closing aborts at once: the owner is going away, there is no one to finish a SHUTDOWN. */
    struct linger lin = {.l_onoff = 1, .l_linger = 0};
    struct sctp_assoc_value reset = {.assoc_id = SCTP_FUTURE_ASSOC,
                                     .assoc_value = SCTP_ENABLE_RESET_STREAM_REQ};
    struct sctp_initmsg init = {.sinit_num_ostreams = TERN_SCTP_STREAMS,
                                .sinit_max_instreams = TERN_SCTP_STREAMS};
    /* A fixed path MTU: PMTU discovery cannot work through DTLS/ICE (RFC 8261 §5). */
    struct sctp_paddrparams pp = {.spp_assoc_id = SCTP_FUTURE_ASSOC,
                                  .spp_flags = SPP_PMTUD_DISABLE,
                                  .spp_pathmtu = s->cfg.mtu - SCTP_COMMON_HEADER};
    const int sndbuf = SNDBUF_BYTES, rcvbuf = RCVBUF_BYTES;
    struct sctp_sack_info sack = {
        .sack_assoc_id = SCTP_FUTURE_ASSOC, .sack_delay = SACK_DELAY_MS, .sack_freq = s->sack_freq};
    struct sctp_assoc_value burst = {.assoc_id = SCTP_FUTURE_ASSOC,
                                     .assoc_value =
                                         s->cfg.max_burst ? s->cfg.max_burst : DEFAULT_MAX_BURST};

    if ((ret = setopt(s, SOL_SOCKET, SO_LINGER, &lin, sizeof lin, "SO_LINGER")) ||
        (ret = setopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf, "SO_SNDBUF")) ||
        (ret = setopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf, "SO_RCVBUF")) ||
        (ret = setopt(s, IPPROTO_SCTP, SCTP_ENABLE_STREAM_RESET, &reset, sizeof reset,
                      "SCTP_ENABLE_STREAM_RESET")) ||
        (ret = setopt(s, IPPROTO_SCTP, SCTP_RECVRCVINFO, &on, sizeof on, "SCTP_RECVRCVINFO")) ||
        (ret = setopt(s, IPPROTO_SCTP, SCTP_NODELAY, &on, sizeof on, "SCTP_NODELAY")) ||
        /* Explicit EOR: a message larger than the free send buffer goes in pieces instead of
         * failing with EMSGSIZE, so any message size works with a bounded buffer. */
        (ret = setopt(s, IPPROTO_SCTP, SCTP_EXPLICIT_EOR, &on, sizeof on, "SCTP_EXPLICIT_EOR")) ||
        /* Level 0: a partially delivered message blocks every other one, so at most one
         * message is being reassembled at a time (RFC 6458 §8.1.20). */
        (ret = setopt(s, IPPROTO_SCTP, SCTP_FRAGMENT_INTERLEAVE, &off, sizeof off,
                      "SCTP_FRAGMENT_INTERLEAVE")) ||
        (ret = setopt(s, IPPROTO_SCTP, SCTP_INITMSG, &init, sizeof init, "SCTP_INITMSG")) ||
        (ret = setopt(s, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &pp, sizeof pp,
                      "SCTP_PEER_ADDR_PARAMS")) ||
        (ret =
             setopt(s, IPPROTO_SCTP, SCTP_DELAYED_SACK, &sack, sizeof sack, "SCTP_DELAYED_SACK")) ||
        (ret = setopt(s, IPPROTO_SCTP, SCTP_MAX_BURST, &burst, sizeof burst, "SCTP_MAX_BURST")) ||
        (ret = subscribe_events(s)))
        return ret;
    return TERN_OK;
}

static struct sockaddr_conn conn_addr(struct tern_sctp *s, uint16_t port)
{
    struct sockaddr_conn a;
    memset(&a, 0, sizeof a);
    a.sconn_family = AF_CONN;
    a.sconn_port = htons(port);
    a.sconn_addr = s;
    return a;
}

/* Largest message we keep usrsctp from delivering in parts (hold_partial_delivery): the receive
 * buffer grows to twice max_message_size up to this, so 32 MiB at most. */
#define WHOLE_DELIVERY_MAX_MESSAGE (16 * 1024 * 1024)

/*
 * usrsctp 0.9.5 breaks partial delivery (RFC 6458 §8.1.21) of a message whose sender then
 * abandons it (PR-SCTP, RFC 3758). For unordered DATA, FORWARD-TSN lists no stream, and
 * sctp_flush_reassm_for_str_seq drops the message's fragments without ending the entry the
 * reader is partway through: if fragments of a later message wait behind them, the entry is
 * taken off the read queue silently (sctp_reset_a_control) and refilled with that message, so
 * the reader appends it to the abandoned head (a "message" that was never sent); if none do, the
 * entry stays on the read queue unfinished forever and, since partial delivery blocks every
 * other message, nothing is read again: the window closes and the peer's sends stall. On an
 * ordered stream the abort is reported (SCTP_PARTIAL_DELIVERY_EVENT), but the stream delivers
 * nothing after it (seen in test_sctp, ordered with max-retransmits).
 *
 * So usrsctp must not deliver in parts: it does so for a message past the partial delivery point
 * or past half the receive buffer (sctp_deliver_reasm_check), so the buffer is made at least
 * twice max_message_size and the point its half. Every message we accept, and any larger one up
 * to half the buffer (dropped whole in finish_message), then reaches the read queue complete,
 * where FORWARD-TSN no longer touches it. Only a message larger still, which the peer must not
 * send (RFC 8841 §6), is delivered in parts; read_once notices when usrsctp moves on from one of
 * those without ending it, but a stall as above remains possible there.
 */
static int hold_partial_delivery(struct tern_sctp *s)
{
    size_t largest = TERN_MIN(s->cfg.max_message_size, (size_t)WHOLE_DELIVERY_MAX_MESSAGE);
    size_t rcvbuf = TERN_MAX(2 * (largest + 1), (size_t)RCVBUF_BYTES);
    if (rcvbuf > RCVBUF_BYTES) {
        const int value = (int)rcvbuf;
        int ret = setopt(s, SOL_SOCKET, SO_RCVBUF, &value, sizeof value, "SO_RCVBUF");
        if (ret)
            return ret;
    }
    const uint32_t point = (uint32_t)(rcvbuf / 2);
    return setopt(s, IPPROTO_SCTP, SCTP_PARTIAL_DELIVERY_POINT, &point, sizeof point,
                  "SCTP_PARTIAL_DELIVERY_POINT");
}

static int open_socket(struct tern_sctp *s)
{
    s->sock = usrsctp_socket(AF_CONN, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
    if (!s->sock) {
        TERN_LOG_WARN(s->ctx, SCTP_LOG, "assoc %u usrsctp_socket failed errno=%d", s->id, errno);
        return TERN_ERR_IO;
    }
    usrsctp_register_address(s);
    s->registered = true;
    if (usrsctp_set_non_blocking(s->sock, 1) != 0)
        return TERN_ERR_IO;
    int ret = configure_socket(s);
    if (!ret)
        ret = hold_partial_delivery(s);
    if (ret)
        return ret;
    usrsctp_set_upcall(s->sock, on_upcall, s);
    struct sockaddr_conn local = conn_addr(s, s->cfg.local_port);
    if (usrsctp_bind(s->sock, (struct sockaddr *)&local, sizeof local) != 0) {
        TERN_LOG_WARN(s->ctx, SCTP_LOG, "assoc %u bind failed errno=%d", s->id, errno);
        return TERN_ERR_IO;
    }
    return TERN_OK;
}

/* ---- lifetime ---- */

int tern_sctp_new(tern_ctx_t *ctx, const tern_sctp_config_t *cfg, tern_time_t now,
                  tern_sctp_t **out)
{
    static const tern_sctp_config_t defaults;
    if (!ctx || !out)
        return TERN_ERR_INVALID_ARG;
    if (!cfg)
        cfg = &defaults;
    if (cfg->mtu && cfg->mtu < MIN_MTU)
        return TERN_ERR_INVALID_ARG;
    struct tern_sctp *s = tern_calloc(ctx, 1, sizeof *s);
    if (!s)
        return TERN_ERR_NOMEM;
    s->ctx = ctx;
    s->id = tern_ctx_new_object_id(ctx);
    s->cfg = *cfg;
    if (!s->cfg.local_port)
        s->cfg.local_port = TERN_SCTP_DEFAULT_PORT;
    if (!s->cfg.remote_port)
        s->cfg.remote_port = TERN_SCTP_DEFAULT_PORT;
    if (!s->cfg.max_message_size)
        s->cfg.max_message_size = TERN_SCTP_DEFAULT_MAX_MESSAGE_SIZE;
    if (!s->cfg.mtu)
        s->cfg.mtu = TERN_SCTP_DEFAULT_MTU;
    s->now = now;
    s->state = TERN_SCTP_STATE_NEW;
    s->sack_freq = SACK_FREQ_MIN;
    s->sack_ceiling = SACK_FREQ_MAX;
    tern_txq_init(&s->txq, ctx, TXQ_ENTRIES);

    stack_acquire(ctx, now);
    list_add(s);
    s->in_call++;
    int ret = open_socket(s);
    s->in_call--;
    if (ret) {
        tern_sctp_free(s);
        return ret;
    }
    TERN_LOG_DEBUG(ctx, SCTP_LOG, "assoc %u created ports %u->%u mtu=%u", s->id, s->cfg.local_port,
                   s->cfg.remote_port, s->cfg.mtu);
    *out = s;
    return TERN_OK;
}

void tern_sctp_free(tern_sctp_t *s)
{
    if (!s)
        return;
    tern_ctx_t *ctx = s->ctx;
    s->in_call++;
    if (s->sock) {
        usrsctp_set_upcall(s->sock, NULL, NULL);
        usrsctp_close(s->sock); /* SO_LINGER 0: ABORT if up */
        s->sock = NULL;
    }
    if (s->registered)
        usrsctp_deregister_address(s);
    list_remove(s);
    drop_attention(s);
    if (s->busy)
        g_sctp.busy--;
    tern_txq_dispose(&s->txq);
    tern_free(ctx, s->rbuf);
    tern_free(ctx, s->resets);
    tern_free(ctx, s->tail);
    tern_free(ctx, s->held);
    TERN_LOG_DEBUG(ctx, SCTP_LOG, "assoc %u freed", s->id);
    tern_free(ctx, s);
    stack_release(ctx);
}

static void enter(struct tern_sctp *s, tern_time_t now)
{
    if (now > s->now)
        s->now = now;
    s->in_call++;
}

static void leave(struct tern_sctp *s)
{
    s->in_call--;
    update_busy(s);
}

int tern_sctp_connect(tern_sctp_t *s, tern_time_t now)
{
    if (!s)
        return TERN_ERR_INVALID_ARG;
    if (s->state == TERN_SCTP_STATE_CONNECTING || s->state == TERN_SCTP_STATE_CONNECTED)
        return TERN_OK;
    if (s->state != TERN_SCTP_STATE_NEW)
        return TERN_ERR_INVALID_STATE;
    enter(s, now);
    struct sockaddr_conn remote = conn_addr(s, s->cfg.remote_port);
    int rc = usrsctp_connect(s->sock, (struct sockaddr *)&remote, sizeof remote);
    int err = errno;
    leave(s);
    if (rc != 0 && err != EINPROGRESS) {
        TERN_LOG_WARN(s->ctx, SCTP_LOG, "assoc %u connect failed errno=%d", s->id, err);
        return TERN_ERR_IO;
    }
    s->state = TERN_SCTP_STATE_CONNECTING;
    update_busy(s);
    TERN_LOG_DEBUG(s->ctx, SCTP_LOG, "assoc %u connecting now=%lld", s->id, (long long)now);
    return TERN_OK;
}

/*
 * usrsctp answers an Outgoing SSN Reset Request whose Sender's Last Assigned TSN it has not
 * reached with "in progress" (RFC 6525 §5.2.2) and applies the reset later, but it looks again
 * only while handling a new DATA chunk, before the cumulative TSN moves past the chunks that
 * arrived early. When the missing chunk is the peer's last, the reset never happens: the peer
 * retransmits its request and gets the same cached "in progress" forever, and the data channel
 * never closes (seen with data in flight on other streams and one lost packet). So a request
 * that is ahead of what we have acknowledged is kept aside, as if it had been lost, and given to
 * usrsctp once our SACKs show the data is all there; usrsctp then resets at once.
 */
static void hold_reset_request(struct tern_sctp *s, const uint8_t *packet, size_t len, size_t off,
                               size_t chunk_len, uint32_t tsn)
{
    uint8_t *rest = tern_malloc(s->ctx, len);
    uint8_t *held = tern_malloc(s->ctx, SCTP_COMMON_HEADER + chunk_len);
    if (!rest || !held) {
        tern_free(s->ctx, rest);
        tern_free(s->ctx, held);
        usrsctp_conninput(s, packet, len, 0); /* no memory: let usrsctp do what it does */
        return;
    }
    memcpy(held, packet, SCTP_COMMON_HEADER);
    memcpy(held + SCTP_COMMON_HEADER, packet + off, chunk_len);
    tern_free(s->ctx, s->held); /* a retransmission replaces the copy */
    s->held = held;
    need_attention(s);
    s->held_len = SCTP_COMMON_HEADER + chunk_len;
    s->held_tsn = tsn;
    size_t rest_len = tern_sctp_wire_without_chunk(packet, len, off, chunk_len, rest);
    if (rest_len > SCTP_COMMON_HEADER)
        usrsctp_conninput(s, rest, rest_len, 0);
    tern_free(s->ctx, rest);
    TERN_LOG_DEBUG(s->ctx, SCTP_LOG, "assoc %u holds a stream reset request for tsn %u", s->id,
                   tsn);
}

/* Give usrsctp the held request once our acknowledgements cover its TSN. */
static void release_held(struct tern_sctp *s)
{
    if (!s->held || !s->sock || tsn_after(s->held_tsn, s->sacked_cum))
        return;
    uint8_t *held = s->held;
    size_t held_len = s->held_len;
    s->held = NULL;
    usrsctp_conninput(s, held, held_len, 0);
    tern_free(s->ctx, held);
}

static void set_sack_freq(struct tern_sctp *s, uint8_t freq)
{
    s->sack_calm = 0;
    if (freq == s->sack_freq)
        return;
    struct sctp_sack_info sack = {
        .sack_assoc_id = SCTP_CURRENT_ASSOC, .sack_delay = SACK_DELAY_MS, .sack_freq = freq};
    if (setopt(s, IPPROTO_SCTP, SCTP_DELAYED_SACK, &sack, sizeof sack, "SCTP_DELAYED_SACK") == 0)
        s->sack_freq = freq;
}

/*
 * The SACK policy (see SACK_FREQ_MIN), before usrsctp sees a DATA packet: after a timer's SACK,
 * back to every second packet, and if this packet came right after that SACK, the level it was
 * sent at starved the sender: cap below it. Otherwise, after SACK_RAMP_PACKETS packets at one
 * level, try the next. Out-of-order packets are acknowledged at once whatever the level
 * (RFC 4960 §6.7), so loss recovery does not wait.
 */
static void note_data_packet(struct tern_sctp *s)
{
    if (s->sack_timer_level) {
        if (s->now - s->sack_timer_at <= SACK_STALL_WINDOW_US) {
            uint8_t cap = s->sack_timer_level / 2;
            s->sack_ceiling = TERN_MAX(cap, SACK_FREQ_MIN);
            s->sack_capped = 0;
            TERN_LOG_DEBUG(s->ctx, SCTP_LOG, "assoc %u peer waited for a SACK: now %u at most",
                           s->id, s->sack_ceiling);
        }
        s->sack_timer_level = 0;
        set_sack_freq(s, SACK_FREQ_MIN);
    }
    if (s->sack_ceiling < SACK_FREQ_MAX && ++s->sack_capped >= SACK_CEILING_RECOVERY_PACKETS) {
        s->sack_ceiling *= 2;
        s->sack_capped = 0;
    }
    if (++s->sack_calm >= SACK_RAMP_PACKETS && s->sack_freq < s->sack_ceiling)
        set_sack_freq(s, (uint8_t)TERN_MIN(s->sack_freq * 2, s->sack_ceiling));
}

int tern_sctp_handle_input(tern_sctp_t *s, tern_time_t now, const uint8_t *packet, size_t len)
{
    if (!s || (!packet && len))
        return TERN_ERR_INVALID_ARG;
    if (len == 0)
        return TERN_OK;
    if (s->state == TERN_SCTP_STATE_NEW) {
        /* The peer's INIT came before our connect (its DTLS finished first). A bound socket
         * that is not connecting would answer it with an ABORT, so start our side now and let
         * the simultaneous open (RFC 4960 §5.2.1) join the two. */
        int ret = tern_sctp_connect(s, now);
        if (ret)
            return TERN_OK; /* dropped; logged by connect */
    }
    enter(s, now);
    trace_packet(s, "in", packet, len);
    s->stats.packets_received++;
    s->stats.bytes_received += len;
    if (s->state == TERN_SCTP_STATE_CONNECTED && tern_sctp_wire_has_data(packet, len)) {
        note_data_packet(s);
        s->sack_owed = true; /* until a SACK goes out (on_output) */
    }
    uint32_t cum;
    if (tern_sctp_wire_sack_cum(packet, len, &cum) &&
        (!s->peer_cum_known || tsn_after(cum, s->peer_cum))) {
        s->peer_cum = cum;
        s->peer_cum_known = true;
    }
    size_t off, chunk_len;
    uint32_t tsn;
    if (s->sack_known && tern_sctp_wire_find_reset_request(packet, len, &off, &chunk_len, &tsn) &&
        tsn_after(tsn, s->sacked_cum))
        hold_reset_request(s, packet, len, off, chunk_len, tsn);
    else
        usrsctp_conninput(s, packet, len, 0); /* ECN bits are 0: DTLS hides the IP header */
    release_held(s);
    leave(s);
    return TERN_OK;
}

bool tern_sctp_poll_transmit(tern_sctp_t *s, tern_transmit_t *out)
{
    if (!s || !out)
        return false;
    return tern_txq_pop(&s->txq, out);
}

/* ---- receive side ---- */

/* An association without a read buffer takes the largest spare of its context. */
static void take_spare(struct tern_sctp *s)
{
    size_t best = RBUF_SPARES;
    for (size_t i = 0; i < RBUF_SPARES; i++)
        if (g_sctp.spare[i].buf && g_sctp.spare[i].ctx == s->ctx &&
            (best == RBUF_SPARES || g_sctp.spare[i].cap > g_sctp.spare[best].cap))
            best = i;
    if (best == RBUF_SPARES)
        return;
    s->rbuf = g_sctp.spare[best].buf;
    s->rcap = g_sctp.spare[best].cap;
    g_sctp.spare[best].buf = NULL;
}

/* Give the read buffer up: it holds nothing (no message begun, none borrowed by an event). */
static void release_rbuf(struct tern_sctp *s)
{
    if (!s->rbuf || s->rlen || s->r_started || s->msg_delivered)
        return;
    size_t slot = RBUF_SPARES;
    for (size_t i = 0; i < RBUF_SPARES && slot == RBUF_SPARES; i++)
        if (!g_sctp.spare[i].buf)
            slot = i;
    if (slot < RBUF_SPARES && s->rcap <= RBUF_SPARE_MAX_BYTES) {
        g_sctp.spare[slot].buf = s->rbuf;
        g_sctp.spare[slot].cap = s->rcap;
        g_sctp.spare[slot].ctx = s->ctx;
    } else {
        tern_free(s->ctx, s->rbuf);
    }
    s->rbuf = NULL;
    s->rcap = 0;
}

static bool ensure_rbuf(struct tern_sctp *s, size_t room)
{
    if (!s->rbuf)
        take_spare(s);
    if (s->rcap - s->rlen >= room)
        return true;
    size_t want = s->rcap ? s->rcap : READ_CHUNK;
    while (want - s->rlen < room)
        want *= 2;
    uint8_t *grown = tern_realloc(s->ctx, s->rbuf, want);
    if (!grown)
        return false;
    s->rbuf = grown;
    s->rcap = want;
    return true;
}

static void release_delivered(struct tern_sctp *s)
{
    if (!s->msg_delivered)
        return;
    s->msg_delivered = false;
    s->rlen = 0;
}

/* Forget the message being read, which will not complete; count it. */
static void drop_partial(struct tern_sctp *s)
{
    if (s->msg_discarding)
        s->stats.messages_too_large++;
    else
        s->stats.messages_abandoned++;
    TERN_LOG_DEBUG(s->ctx, SCTP_LOG, "assoc %u dropped the unfinished message on stream %u", s->id,
                   s->r_stream);
    s->rlen = 0;
    s->r_started = false;
    s->msg_discarding = false;
}

static void set_closing_event(struct tern_sctp *s, tern_sctp_event_type_t type, int code,
                              const char *reason)
{
    if (s->state == TERN_SCTP_STATE_CLOSED || s->state == TERN_SCTP_STATE_FAILED)
        return;
    s->state = type == TERN_SCTP_EV_CLOSED ? TERN_SCTP_STATE_CLOSED : TERN_SCTP_STATE_FAILED;
    memset(&s->closing_event, 0, sizeof s->closing_event);
    s->closing_event.type = type;
    s->closing_event.u.failed.code = code;
    s->closing_event.u.failed.reason = reason;
    s->closing_event_pending = true;
    TERN_LOG_DEBUG(s->ctx, SCTP_LOG, "assoc %u %s now=%lld", s->id, reason ? reason : "closed",
                   (long long)s->now);
}

/* SCTP chunk type ABORT and the error cause "User-Initiated Abort" (RFC 4960 §3.3.7, §3.3.10.12).
 */
#define CHUNK_ABORT 6
#define CAUSE_USER_INITIATED_ABORT 12

/*
 * An association lost because the peer closed it on purpose: usrsctp appends the ABORT chunk to
 * the notification, and a User-Initiated Abort cause is what a pc's close sends (ours, and
 * browsers', which close with SO_LINGER 0). Other aborts (protocol violations) are failures.
 */
static bool closed_by_peer(const uint8_t *n, size_t len)
{
    size_t head = offsetof(struct sctp_assoc_change, sac_info);
    if (len < head + 8)
        return false;
    const uint8_t *chunk = n + head;
    return chunk[0] == CHUNK_ABORT && tern_load_u16(chunk + 4) == CAUSE_USER_INITIATED_ABORT;
}

static bool on_assoc_change(struct tern_sctp *s, const uint8_t *n, size_t len,
                            tern_sctp_event_t *out)
{
    struct sctp_assoc_change ac;
    memset(&ac, 0, sizeof ac);
    memcpy(&ac, n, TERN_MIN(len, sizeof ac));
    switch (ac.sac_state) {
    case SCTP_COMM_UP:
        s->outgoing_streams = ac.sac_outbound_streams;
        if (s->state != TERN_SCTP_STATE_CONNECTING)
            return false;
        s->state = TERN_SCTP_STATE_CONNECTED;
        TERN_LOG_DEBUG(s->ctx, SCTP_LOG, "assoc %u up streams out=%u in=%u now=%lld", s->id,
                       ac.sac_outbound_streams, ac.sac_inbound_streams, (long long)s->now);
        out->type = TERN_SCTP_EV_CONNECTED;
        return true;
    case SCTP_RESTART:
        s->outgoing_streams = ac.sac_outbound_streams;
        return false;
    case SCTP_COMM_LOST:
        if (closed_by_peer(n, len))
            set_closing_event(s, TERN_SCTP_EV_CLOSED, TERN_OK, "closed by the peer");
        else
            set_closing_event(s, TERN_SCTP_EV_FAILED, TERN_ERR_CLOSED,
                              "association lost or aborted");
        return false;
    case SCTP_CANT_STR_ASSOC:
        set_closing_event(s, TERN_SCTP_EV_FAILED, TERN_ERR_IO, "association could not start");
        return false;
    case SCTP_SHUTDOWN_COMP:
        set_closing_event(s, TERN_SCTP_EV_CLOSED, TERN_OK, NULL);
        return false;
    default:
        return false;
    }
}

static void on_stream_reset(struct tern_sctp *s, const uint8_t *n, size_t len)
{
    struct sctp_stream_reset_event ev;
    size_t head = offsetof(struct sctp_stream_reset_event, strreset_stream_list);
    if (len < head)
        return;
    memset(&ev, 0, sizeof ev);
    memcpy(&ev, n, head);
    size_t count = (len - head) / sizeof(uint16_t);
    if (ev.strreset_flags & (SCTP_STREAM_RESET_DENIED | SCTP_STREAM_RESET_FAILED))
        TERN_LOG_DEBUG(s->ctx, SCTP_LOG, "assoc %u stream reset refused flags=0x%x", s->id,
                       ev.strreset_flags);
    if (!(ev.strreset_flags & (SCTP_STREAM_RESET_INCOMING_SSN | SCTP_STREAM_RESET_OUTGOING_SSN)))
        return;
    if (count > s->reset_cap) {
        uint16_t *grown = tern_realloc(s->ctx, s->resets, count * sizeof *grown);
        if (!grown)
            return; /* the owner will not see this reset; nothing else we can do */
        s->resets = grown;
        s->reset_cap = count;
    }
    memcpy(s->resets, n + head, count * sizeof(uint16_t));
    s->reset_count = count;
    s->reset_pos = 0;
    /* A notification carries one direction; denied/failed outgoing resets are reported as done
     * too, so that a channel waiting for its reset can finish closing. */
    s->reset_incoming = (ev.strreset_flags & SCTP_STREAM_RESET_INCOMING_SSN) != 0;
}

static bool next_reset_event(struct tern_sctp *s, tern_sctp_event_t *out)
{
    if (s->reset_pos >= s->reset_count)
        return false;
    memset(out, 0, sizeof *out);
    out->type = TERN_SCTP_EV_STREAM_RESET;
    out->u.stream_reset.stream = s->resets[s->reset_pos++];
    out->u.stream_reset.incoming = s->reset_incoming;
    out->u.stream_reset.outgoing = !s->reset_incoming;
    return true;
}

/* Handle one notification; true if it gave an event right away. */
static bool on_notification(struct tern_sctp *s, const uint8_t *n, size_t len,
                            tern_sctp_event_t *out)
{
    if (len < 8)
        return false;
    uint16_t type;
    memcpy(&type, n, sizeof type);
    switch (type) {
    case SCTP_ASSOC_CHANGE:
        return on_assoc_change(s, n, len, out);
    case SCTP_STREAM_RESET_EVENT:
        on_stream_reset(s, n, len);
        return next_reset_event(s, out);
    case SCTP_PARTIAL_DELIVERY_EVENT:
        /* The message being delivered will never complete (RFC 6458 §6.1.7). */
        if (s->r_started)
            drop_partial(s);
        return false;
    case SCTP_SHUTDOWN_EVENT:
        if (s->state == TERN_SCTP_STATE_CONNECTED)
            s->state = TERN_SCTP_STATE_CLOSING;
        return false;
    default:
        return false;
    }
}

/* Complete message in rbuf[0..rlen): make it the event, or drop it if too large. */
static bool finish_message(struct tern_sctp *s, tern_sctp_event_t *out)
{
    s->r_started = false;
    if (s->msg_discarding) {
        s->msg_discarding = false;
        s->rlen = 0;
        s->stats.messages_too_large++;
        TERN_LOG_DEBUG(s->ctx, SCTP_LOG, "assoc %u dropped message over %zu bytes on stream %u",
                       s->id, s->cfg.max_message_size, s->r_stream);
        return false;
    }
    memset(out, 0, sizeof *out);
    out->type = TERN_SCTP_EV_MESSAGE;
    out->u.message.stream = s->r_stream;
    out->u.message.ppid = s->r_ppid;
    out->u.message.data = s->rbuf;
    out->u.message.len = s->rlen;
    out->u.message.unordered = s->r_unordered;
    s->msg_delivered = true;
    s->stats.messages_received++;
    return true;
}

/*
 * Read once from the socket. Returns 1 with *out filled, 0 if something was consumed without an
 * event (call again), -1 when nothing is readable.
 */
static int read_once(struct tern_sctp *s, tern_sctp_event_t *out)
{
    if (!ensure_rbuf(s, READ_CHUNK))
        return -1; /* try again at the next poll; the data stays in usrsctp */
    struct sctp_rcvinfo info;
    struct sockaddr_conn from;
    socklen_t fromlen = sizeof from, infolen = sizeof info;
    unsigned int infotype = 0;
    int flags = 0;
    memset(&info, 0, sizeof info);
    size_t start = s->rlen;
    ssize_t n = usrsctp_recvv(s->sock, s->rbuf + start, s->rcap - start, (struct sockaddr *)&from,
                              &fromlen, &info, &infolen, &infotype, &flags);
    if (n < 0)
        return -1;
    if (n == 0 && !(flags & MSG_EOR))
        return -1; /* end of stream: the association is gone, its notification says why */

    if (flags & MSG_NOTIFICATION) {
        /* Notifications fit one read (READ_CHUNK). One that does not is skipped to its end,
         * so that its tail is never read as a notification of its own. */
        bool whole = (flags & MSG_EOR) && !s->notif_skipping;
        s->notif_skipping = !(flags & MSG_EOR);
        bool got = whole && on_notification(s, s->rbuf + start, (size_t)n, out);
        return got ? 1 : 0;
    }

    bool tsn_known = infotype == SCTP_RECVV_RCVINFO;
    if (s->r_started && tsn_known && s->r_tsn_known &&
        (info.rcv_tsn != s->r_tsn || info.rcv_sid != s->r_stream)) {
        /* usrsctp moved on from a message it was delivering in parts without ending it: the
         * sender abandoned it (see hold_partial_delivery). Drop its head; this read begins
         * another message. */
        drop_partial(s);
        memmove(s->rbuf, s->rbuf + start, (size_t)n);
    }
    if (!s->r_started) {
        s->r_started = true;
        s->r_stream = info.rcv_sid;
        s->r_ppid = ntohl(info.rcv_ppid);
        s->r_tsn = info.rcv_tsn;
        s->r_tsn_known = tsn_known;
        s->r_unordered = (info.rcv_flags & SCTP_UNORDERED) != 0;
        s->msg_discarding = false;
    }
    s->rlen += (size_t)n;
    if (s->rlen > s->cfg.max_message_size) {
        /* Keep reading to the end of the message, overwriting, and drop it (RFC 8841 §6). */
        s->msg_discarding = true;
        s->rlen = 0;
    }
    if (flags & MSG_EOR)
        return finish_message(s, out) ? 1 : 0;
    return 0;
}

bool tern_sctp_poll_event(tern_sctp_t *s, tern_sctp_event_t *out)
{
    if (!s || !out)
        return false;
    release_delivered(s);
    if (next_reset_event(s, out))
        return true;
    bool got = false;
    s->in_call++;
    if (s->tail && s->state == TERN_SCTP_STATE_CONNECTED)
        flush_tail(s);
    if (s->want_write && !s->tail && s->sock && (usrsctp_get_events(s->sock) & SCTP_EVENT_WRITE)) {
        s->want_write = false;
        memset(out, 0, sizeof *out);
        out->type = TERN_SCTP_EV_SEND_READY;
        got = true;
    }
    while (!got && s->sock && s->state != TERN_SCTP_STATE_NEW) {
        int r = read_once(s, out);
        if (r < 0) {
            release_rbuf(s); /* nothing more to read for now */
            release_held(s); /* reading may have sent a window update SACK */
            issue_resets(s, s->now);
            break;
        }
        got = r > 0;
    }
    s->in_call--;
    update_busy(s);
    if (!got && s->closing_event_pending) {
        s->closing_event_pending = false;
        *out = s->closing_event;
        got = true;
    }
    return got;
}

/* ---- send side ---- */

static int map_send_errno(struct tern_sctp *s, int err, uint16_t stream)
{
    if (err == EWOULDBLOCK || err == EAGAIN)
        return TERN_ERR_AGAIN;
    if (err == ENOMEM || err == ENOBUFS)
        return TERN_ERR_NOMEM;
    TERN_LOG_DEBUG(s->ctx, SCTP_LOG, "assoc %u send on stream %u failed errno=%d", s->id, stream,
                   err);
    return err == EPIPE || err == ECONNRESET || err == ENOTCONN ? TERN_ERR_CLOSED : TERN_ERR_IO;
}

/* Hand usrsctp what it takes of a message; *taken says how much. */
static int send_part(struct tern_sctp *s, const uint8_t *data, size_t len,
                     struct sctp_sendv_spa *spa, size_t *taken)
{
    ssize_t n = usrsctp_sendv(s->sock, data, len, NULL, 0, spa, sizeof *spa, SCTP_SENDV_SPA, 0);
    if (n < 0)
        return map_send_errno(s, errno, spa->sendv_sndinfo.snd_sid);
    *taken = (size_t)n;
    return n == 0 ? TERN_ERR_AGAIN : TERN_OK;
}

static void drop_tail(struct tern_sctp *s)
{
    tern_free(s->ctx, s->tail);
    s->tail = NULL;
    s->tail_len = s->tail_off = 0;
}

/*
 * Push the rest of a message that usrsctp took only part of. Until it is all in, usrsctp keeps
 * the association locked on that stream (explicit EOR), so nothing else may be sent.
 */
static int flush_tail(struct tern_sctp *s)
{
    while (s->tail) {
        size_t taken = 0;
        int ret =
            send_part(s, s->tail + s->tail_off, s->tail_len - s->tail_off, &s->tail_spa, &taken);
        if (ret == TERN_ERR_AGAIN)
            return ret;
        if (ret) {
            drop_tail(s); /* the association is going away: its notification says so */
            return ret;
        }
        s->tail_off += taken;
        if (s->tail_off == s->tail_len) {
            drop_tail(s);
            s->stats.messages_sent++;
        }
    }
    return TERN_OK;
}

static void fill_spa(struct sctp_sendv_spa *spa, uint16_t stream, uint32_t ppid,
                     const tern_sctp_send_opts_t *opts)
{
    memset(spa, 0, sizeof *spa);
    spa->sendv_flags = SCTP_SEND_SNDINFO_VALID;
    spa->sendv_sndinfo.snd_sid = stream;
    spa->sendv_sndinfo.snd_ppid = htonl(ppid);
    /* SCTP_EOR: this call ends the message, if usrsctp takes all of it (explicit EOR mode). */
    spa->sendv_sndinfo.snd_flags = SCTP_EOR | (opts->unordered ? SCTP_UNORDERED : 0);
    if (opts->pr_policy != TERN_SCTP_PR_NONE) {
        spa->sendv_flags |= SCTP_SEND_PRINFO_VALID;
        spa->sendv_prinfo.pr_policy =
            opts->pr_policy == TERN_SCTP_PR_RTX ? SCTP_PR_SCTP_RTX : SCTP_PR_SCTP_TTL;
        spa->sendv_prinfo.pr_value = opts->pr_value;
    }
}

static int send_message(struct tern_sctp *s, uint16_t stream, uint32_t ppid, const uint8_t *data,
                        size_t len, const tern_sctp_send_opts_t *opts)
{
    int ret = flush_tail(s);
    if (ret)
        return ret;
    struct sctp_sendv_spa spa;
    fill_spa(&spa, stream, ppid, opts);
    size_t taken = 0;
    if ((ret = send_part(s, data, len, &spa, &taken)) != TERN_OK)
        return ret;
    if (taken == len) {
        s->stats.messages_sent++;
        return TERN_OK;
    }
    /* usrsctp took the head of the message; we keep the rest and push it as room comes. */
    s->tail = tern_memdup(s->ctx, data + taken, len - taken);
    if (!s->tail) {
        /* The peer has a message head it will never see the end of: end the association. */
        TERN_LOG_WARN(s->ctx, SCTP_LOG, "assoc %u out of memory in a message: aborting", s->id);
        usrsctp_shutdown(s->sock, SHUT_RDWR);
        set_closing_event(s, TERN_SCTP_EV_FAILED, TERN_ERR_NOMEM, "out of memory");
        return TERN_ERR_NOMEM;
    }
    s->tail_len = len - taken;
    s->tail_off = 0;
    s->tail_spa = spa;
    return TERN_OK;
}

int tern_sctp_send(tern_sctp_t *s, tern_time_t now, uint16_t stream, uint32_t ppid,
                   const uint8_t *data, size_t len, const tern_sctp_send_opts_t *opts)
{
    static const tern_sctp_send_opts_t reliable;
    if (!s || !data || len == 0 || stream >= TERN_SCTP_STREAMS)
        return TERN_ERR_INVALID_ARG;
    if (!opts)
        opts = &reliable;
    if (opts->pr_policy > TERN_SCTP_PR_TTL)
        return TERN_ERR_INVALID_ARG;
    if (s->state != TERN_SCTP_STATE_CONNECTED)
        return TERN_ERR_INVALID_STATE;
    enter(s, now);
    int ret = send_message(s, stream, ppid, data, len, opts);
    if (ret == TERN_ERR_AGAIN)
        s->want_write = true;
    leave(s);
    return ret;
}

static bool reset_wanted(const struct tern_sctp *s, uint16_t stream)
{
    return (s->reset_wanted[stream / 8] >> (stream % 8)) & 1;
}

static bool data_in_flight(struct tern_sctp *s)
{
    struct sctp_status st;
    socklen_t len = sizeof st;
    memset(&st, 0, sizeof st);
    if (usrsctp_getsockopt(s->sock, IPPROTO_SCTP, SCTP_STATUS, &st, &len) != 0)
        return false;
    return st.sstat_unackdata > 0;
}

/*
 * Hand the wanted outgoing resets to usrsctp, which marks the streams pending, sends the request
 * once their queues are empty and batches what comes while one is outstanding (RFC 6525
 * §5.1.2). We wait until none of our data is unacknowledged (or a second at most): a peer
 * running usrsctp that gets a request naming a TSN it still misses answers "in progress" and
 * may never finish the reset (see hold_reset_request); once everything is acknowledged, it
 * resets at once.
 */
static void issue_resets(struct tern_sctp *s, tern_time_t now)
{
    if (!s->reset_wanted_count || s->state != TERN_SCTP_STATE_CONNECTED)
        return;
    if (now - s->reset_wanted_since < RESET_MAX_WAIT_US && data_in_flight(s))
        return;
    size_t size = sizeof(struct sctp_reset_streams) + s->reset_wanted_count * sizeof(uint16_t);
    struct sctp_reset_streams *req = tern_calloc(s->ctx, 1, size);
    if (!req)
        return; /* try again at the next poll */
    req->srs_assoc_id = SCTP_ALL_ASSOC;
    req->srs_flags = SCTP_STREAM_RESET_OUTGOING;
    for (uint16_t id = 0; id < TERN_SCTP_STREAMS; id++)
        if (reset_wanted(s, id))
            req->srs_stream_list[req->srs_number_streams++] = id;
    /* Not counted as a call of the owner: from a global tick, what this sends needs on_pending. */
    int ret = setopt(s, IPPROTO_SCTP, SCTP_RESET_STREAMS, req, size, "SCTP_RESET_STREAMS");
    tern_free(s->ctx, req);
    if (ret != TERN_OK)
        return; /* logged; the association is going away */
    memset(s->reset_wanted, 0, sizeof s->reset_wanted);
    s->reset_wanted_count = 0;
}

int tern_sctp_reset_stream(tern_sctp_t *s, tern_time_t now, uint16_t stream)
{
    if (!s || stream >= TERN_SCTP_STREAMS)
        return TERN_ERR_INVALID_ARG;
    if (s->state != TERN_SCTP_STATE_CONNECTED)
        return TERN_ERR_INVALID_STATE;
    enter(s, now);
    if (!reset_wanted(s, stream)) {
        if (s->reset_wanted_count++ == 0) {
            s->reset_wanted_since = s->now;
            need_attention(s);
        }
        s->reset_wanted[stream / 8] |= (uint8_t)(1u << (stream % 8));
    }
    issue_resets(s, s->now);
    leave(s);
    return TERN_OK;
}

int tern_sctp_close(tern_sctp_t *s, tern_time_t now)
{
    if (!s)
        return TERN_ERR_INVALID_ARG;
    if (s->state == TERN_SCTP_STATE_NEW) {
        s->state = TERN_SCTP_STATE_CLOSED;
        return TERN_OK;
    }
    if (s->state != TERN_SCTP_STATE_CONNECTING && s->state != TERN_SCTP_STATE_CONNECTED)
        return TERN_OK;
    enter(s, now);
    s->state = TERN_SCTP_STATE_CLOSING;
    /* SHUT_WR: SHUTDOWN once the queued data is acknowledged (RFC 4960 §9.2). */
    usrsctp_shutdown(s->sock, SHUT_WR);
    leave(s);
    return TERN_OK;
}

int tern_sctp_abort(tern_sctp_t *s, tern_time_t now)
{
    if (!s)
        return TERN_ERR_INVALID_ARG;
    if (s->state != TERN_SCTP_STATE_CONNECTING && s->state != TERN_SCTP_STATE_CONNECTED &&
        s->state != TERN_SCTP_STATE_CLOSING)
        return TERN_OK;
    enter(s, now);
    /* SCTP_ABORT on a send (RFC 6458 §5.3.4): the ABORT chunk goes out through the output
     * callback now, so the peer learns of the end without waiting for any timer. */
    struct sctp_sndinfo info;
    memset(&info, 0, sizeof info);
    info.snd_flags = SCTP_ABORT;
    /* The data becomes a User-Initiated Abort cause: the peer tells a close from a failure. */
    static const char reason[] = "close";
    if (usrsctp_sendv(s->sock, reason, sizeof reason - 1, NULL, 0, &info, sizeof info,
                      SCTP_SENDV_SNDINFO, 0) < 0)
        TERN_LOG_DEBUG(s->ctx, SCTP_LOG, "assoc %u abort failed errno=%d", s->id, errno);
    s->state = TERN_SCTP_STATE_CLOSED;
    leave(s);
    return TERN_OK;
}

tern_sctp_state_t tern_sctp_state(const tern_sctp_t *s)
{
    return s ? s->state : TERN_SCTP_STATE_CLOSED;
}

uint16_t tern_sctp_outgoing_streams(const tern_sctp_t *s)
{
    return s && s->state == TERN_SCTP_STATE_CONNECTED ? s->outgoing_streams : 0;
}

void tern_sctp_get_stats(const tern_sctp_t *s, tern_sctp_stats_t *out)
{
    if (s && out)
        *out = s->stats;
}

/* ---- process-wide timers ---- */

tern_time_t tern_sctp_global_next_deadline(const tern_ctx_t *ctx)
{
    if (!ctx || ctx->sctp_users == 0 || !g_sctp.initialised)
        return TERN_TIME_NEVER;
    return g_sctp.last_tick + (g_sctp.busy ? TICK_US : IDLE_TICK_US);
}

int tern_sctp_global_handle_timeout(tern_ctx_t *ctx, tern_time_t now)
{
    (void)ctx;
    if (!g_sctp.initialised || g_sctp.in_tick)
        return TERN_OK;
    if (!g_sctp.ticked || now < g_sctp.last_tick) {
        g_sctp.ticked = true;
        g_sctp.last_tick = now;
        return TERN_OK;
    }
    tern_time_t elapsed_ms = (now - g_sctp.last_tick) / 1000;
    if (elapsed_ms <= 0)
        return TERN_OK;
    g_sctp.last_tick += elapsed_ms * 1000;
    if (elapsed_ms > UINT32_MAX)
        elapsed_ms = UINT32_MAX;
    g_sctp.in_tick = true;
    g_sctp.tick_now = now;
    usrsctp_handle_timers((uint32_t)elapsed_ms);
    /* A delayed SACK sent by the tick may release a held reset request, and a reset waiting
     * for acknowledgements goes after a while anyway. Only this association can join the list
     * meanwhile, and it is on it already. */
    for (struct tern_sctp *s = g_sctp.attention; s; s = s->a_next) {
        if (now > s->now)
            s->now = now;
        release_held(s);
        issue_resets(s, now);
    }
    g_sctp.in_tick = false;
    /* on_pending only notes the owner (sctp.h), so the list cannot change under us. */
    struct tern_sctp *next;
    for (struct tern_sctp *s = g_sctp.attention; s; s = next) {
        next = s->a_next;
        bool pending = s->pending;
        s->pending = false;
        if (!s->held && !s->reset_wanted_count) {
            drop_attention(s);
            update_busy(s);
        }
        if (pending && s->cfg.on_pending)
            s->cfg.on_pending(s->cfg.owner);
    }
    return TERN_OK;
}
