/* SPDX-License-Identifier: MIT */
/*
 * The SDP writer behind tern_sdp_write: checks that every string of the model is a complete,
 * printable value (so that no field can smuggle in a line of its own), then writes the session
 * part (v=, o=, s=, t=, a=ice-lite, a=group:BUNDLE) and each section with the attributes a
 * browser needs to set up ICE, DTLS and SCTP, in the order Chromium writes them. The output is
 * sized before it is written, so it is built in one allocation.
 */
#include "sdp/sdp.h"

#include <inttypes.h>
#include <string.h>

/* Room for the fixed text of the session part and of one section (keywords, numbers, line
   ends), on top of the strings of the model. Generous: an overflow is reported, not hidden. */
#define SESSION_FIXED_BYTES 256
#define MEDIA_FIXED_BYTES 512
#define CANDIDATE_FIXED_BYTES 8

/* ---- validation ---- */

/* A field fits its array with its NUL, and holds no byte that would end or break a line; with
   token, no blank either (the field is one word of its line). */
static bool is_field_writable(const char *s, size_t cap, bool token)
{
    size_t len = strnlen(s, cap);
    if (len == cap)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t')
            return false;
        if (token && (c == ' ' || c == '\t'))
            return false;
    }
    return true;
}

#define IS_FIELD_WRITABLE(s, token) is_field_writable((s), sizeof(s), (token))

static bool is_candidate_writable(const char *c)
{
    if (!c || strncmp(c, "candidate:", 10) != 0)
        return false;
    size_t len = strnlen(c, TERN_SDP_MAX_LINE);
    return len + 2 <= TERN_SDP_MAX_LINE && is_field_writable(c, TERN_SDP_MAX_LINE, false);
}

static bool is_media_writable(const tern_sdp_media_t *m)
{
    if (!IS_FIELD_WRITABLE(m->kind, true) || !IS_FIELD_WRITABLE(m->proto, true) ||
        !IS_FIELD_WRITABLE(m->fmt, false) || !IS_FIELD_WRITABLE(m->mid, true) ||
        !IS_FIELD_WRITABLE(m->connection_addr, true) || !IS_FIELD_WRITABLE(m->ice_ufrag, true) ||
        !IS_FIELD_WRITABLE(m->ice_pwd, true) || !IS_FIELD_WRITABLE(m->fingerprint_alg, true) ||
        !IS_FIELD_WRITABLE(m->fingerprint, true))
        return false;
    if (!m->kind[0] || !m->proto[0] || !m->fmt[0])
        return false;
    /* A fingerprint line needs both of its words. */
    if (!m->fingerprint[0] != !m->fingerprint_alg[0])
        return false;
    if (m->candidate_count > TERN_SDP_MAX_CANDIDATES || (m->candidate_count && !m->candidates))
        return false;
    for (size_t i = 0; i < m->candidate_count; i++)
        if (!is_candidate_writable(m->candidates[i]))
            return false;
    return true;
}

static bool is_sdp_writable(const tern_sdp_t *sdp)
{
    if (!IS_FIELD_WRITABLE(sdp->origin_user, true) || !IS_FIELD_WRITABLE(sdp->session_name, false))
        return false;
    if (sdp->bundle_count > TERN_SDP_MAX_MEDIA || sdp->media_count > TERN_SDP_MAX_MEDIA)
        return false;
    if (sdp->media_count && !sdp->media)
        return false;
    for (size_t i = 0; i < sdp->bundle_count; i++)
        if (!IS_FIELD_WRITABLE(sdp->bundle_mids[i], true) || !sdp->bundle_mids[i][0])
            return false;
    for (size_t i = 0; i < sdp->media_count; i++)
        if (!is_media_writable(&sdp->media[i]))
            return false;
    return true;
}

/* ---- writing ---- */

static size_t compute_bound(const tern_sdp_t *sdp)
{
    size_t n = SESSION_FIXED_BYTES + sizeof sdp->origin_user + sizeof sdp->session_name +
               sdp->bundle_count * TERN_SDP_MID_SIZE;
    for (size_t i = 0; i < sdp->media_count; i++) {
        const tern_sdp_media_t *m = &sdp->media[i];
        n += MEDIA_FIXED_BYTES + sizeof *m;
        for (size_t j = 0; j < m->candidate_count; j++)
            n += strlen(m->candidates[j]) + CANDIDATE_FIXED_BYTES;
    }
    return n;
}

static const char *format_direction(tern_sdp_direction_t dir)
{
    switch (dir) {
    case TERN_SDP_DIR_SENDRECV:
        return "sendrecv";
    case TERN_SDP_DIR_SENDONLY:
        return "sendonly";
    case TERN_SDP_DIR_RECVONLY:
        return "recvonly";
    case TERN_SDP_DIR_INACTIVE:
        return "inactive";
    case TERN_SDP_DIR_NONE:
        break;
    }
    return NULL;
}

static void write_session(tern_wbuf_t *w, const tern_sdp_t *sdp)
{
    tern_wbuf_str(w, "v=0\r\n");
    /* The o= address is not used by WebRTC; 127.0.0.1 is what Chromium writes. */
    tern_wbuf_printf(w, "o=%s %" PRIu64 " %" PRIu64 " IN IP4 127.0.0.1\r\n",
                     sdp->origin_user[0] ? sdp->origin_user : "-", sdp->session_id,
                     sdp->session_version);
    tern_wbuf_printf(w, "s=%s\r\n", sdp->session_name[0] ? sdp->session_name : "-");
    tern_wbuf_str(w, "t=0 0\r\n");
    if (sdp->ice_lite)
        tern_wbuf_str(w, "a=ice-lite\r\n");
    if (sdp->bundle_count) {
        tern_wbuf_str(w, "a=group:BUNDLE");
        for (size_t i = 0; i < sdp->bundle_count; i++)
            tern_wbuf_printf(w, " %s", sdp->bundle_mids[i]);
        tern_wbuf_str(w, "\r\n");
    }
}

static void write_connection(tern_wbuf_t *w, const tern_sdp_media_t *m)
{
    const char *addr = m->connection_addr[0] ? m->connection_addr : "0.0.0.0";
    tern_wbuf_printf(w, "c=IN %s %s\r\n", strchr(addr, ':') ? "IP6" : "IP4", addr);
}

static void write_sctp(tern_wbuf_t *w, const tern_sdp_media_t *m)
{
    if (m->sctp_port == 0)
        return;
    /* The old "DTLS/SCTP" form has no a=sctp-port, only a=sctpmap
       (draft-ietf-mmusic-sctp-sdp-05); the stream count is written only if the model has one. */
    bool old_form = strcmp(m->proto, "DTLS/SCTP") == 0;
    if (!old_form)
        tern_wbuf_printf(w, "a=sctp-port:%u\r\n", m->sctp_port);
    if (old_form || m->sctpmap_streams) {
        tern_wbuf_printf(w, "a=sctpmap:%u webrtc-datachannel", m->sctp_port);
        if (m->sctpmap_streams)
            tern_wbuf_printf(w, " %u", m->sctpmap_streams);
        tern_wbuf_str(w, "\r\n");
    }
}

static void write_media(tern_wbuf_t *w, const tern_sdp_media_t *m)
{
    tern_wbuf_printf(w, "m=%s %u %s %s\r\n", m->kind, m->port, m->proto, m->fmt);
    write_connection(w, m);
    if (m->mid[0])
        tern_wbuf_printf(w, "a=mid:%s\r\n", m->mid);
    if (tern_sdp_media_is_rejected(m))
        return; /* a rejected section needs nothing more (JSEP, RFC 8829) */
    if (m->bundle_only)
        tern_wbuf_str(w, "a=bundle-only\r\n");
    const char *dir = format_direction(m->direction);
    if (dir)
        tern_wbuf_printf(w, "a=%s\r\n", dir);
    if (m->ice_ufrag[0])
        tern_wbuf_printf(w, "a=ice-ufrag:%s\r\n", m->ice_ufrag);
    if (m->ice_pwd[0])
        tern_wbuf_printf(w, "a=ice-pwd:%s\r\n", m->ice_pwd);
    if (m->ice_trickle)
        tern_wbuf_str(w, "a=ice-options:trickle\r\n");
    if (m->fingerprint[0])
        tern_wbuf_printf(w, "a=fingerprint:%s %s\r\n", m->fingerprint_alg, m->fingerprint);
    const char *setup = tern_sdp_setup_name(m->setup);
    if (*setup)
        tern_wbuf_printf(w, "a=setup:%s\r\n", setup);
    if (m->rtcp_mux)
        tern_wbuf_str(w, "a=rtcp-mux\r\n");
    write_sctp(w, m);
    if (m->has_max_message_size)
        tern_wbuf_printf(w, "a=max-message-size:%" PRIu64 "\r\n", m->max_message_size);
    for (size_t i = 0; i < m->candidate_count; i++)
        tern_wbuf_printf(w, "a=%s\r\n", m->candidates[i]);
    if (m->end_of_candidates)
        tern_wbuf_str(w, "a=end-of-candidates\r\n");
}

int tern_sdp_write(tern_ctx_t *ctx, const tern_sdp_t *sdp, char **out)
{
    if (!ctx || !sdp || !out || !is_sdp_writable(sdp))
        return TERN_ERR_INVALID_ARG;
    size_t cap = compute_bound(sdp);
    char *text = tern_malloc(ctx, cap);
    if (!text)
        return TERN_ERR_NOMEM;
    /* Fixed storage (no ctx): the text holds ice-pwd values and is never moved by a realloc. */
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, text, cap);
    write_session(&w, sdp);
    for (size_t i = 0; i < sdp->media_count; i++)
        write_media(&w, &sdp->media[i]);
    tern_wbuf_u8(&w, '\0');
    if (w.err) {
        tern_free_secret(ctx, text, cap);
        return TERN_ERR_INTERNAL; /* compute_compute_bound() is wrong: our bug, not the caller's */
    }
    *out = text;
    return TERN_OK;
}
