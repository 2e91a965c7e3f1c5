/* SPDX-License-Identifier: MIT */
/*
 * JSEP (RFC 8829) for a data-channel session: offers and answers with one m=application
 * section (BUNDLE, RFC 8843), the signaling state machine of the W3C API, what the remote
 * description tells each layer (ICE credentials and candidates, the DTLS fingerprint and role by
 * RFC 8842, the SCTP port and max-message-size by RFC 8841), and trickled candidates
 * (RFC 8838) in both directions.
 */
#include "rtc/rtc.h"

#include <stdio.h>
#include <string.h>

#define RTC_SCTP_STREAMS 1024

static void set_signaling(tern_pc_t *pc, tern_signaling_state_t s)
{
    if (pc->signaling == s)
        return;
    TERN_LOG_DEBUG(pc->ctx, "pc", "pc %u signaling %s -> %s", pc->id,
                   tern_signaling_state_name(pc->signaling), tern_signaling_state_name(s));
    pc->signaling = s;
    tern_rtc_queue_state_event(pc, TERN_EV_SIGNALING_STATE, s);
}

static void set_gathering(tern_pc_t *pc, tern_ice_gathering_state_t s)
{
    if (pc->gathering == s)
        return;
    pc->gathering = s;
    tern_rtc_queue_state_event(pc, TERN_EV_ICE_GATHERING_STATE, s);
}

/* ---- local candidates ---- */

static bool local_description_set(const tern_pc_t *pc)
{
    return pc->local_sdp != NULL;
}

static void queue_candidate_event(tern_pc_t *pc, const char *candidate)
{
    rtc_event_t ev = {.type = TERN_EV_ICE_CANDIDATE, .mline_index = pc->mline_index};
    snprintf(ev.mid, sizeof ev.mid, "%s", pc->mid);
    snprintf(ev.candidate, sizeof ev.candidate, "%s", candidate);
    tern_rtc_queue_event(pc, &ev);
}

void tern_rtc_announce_candidates(tern_pc_t *pc)
{
    /* W3C: candidates are announced only once a local description is set. */
    if (!local_description_set(pc) || pc->closed)
        return;
    set_gathering(pc, TERN_ICE_GATHERING_GATHERING);
    while (pc->local_candidates_announced < pc->local_candidate_count)
        queue_candidate_event(pc, pc->local_candidates[pc->local_candidates_announced++]);
    if (pc->gathering_complete && !pc->end_of_candidates_announced) {
        pc->end_of_candidates_announced = true;
        queue_candidate_event(pc, "");
        set_gathering(pc, TERN_ICE_GATHERING_COMPLETE);
    }
}

int tern_rtc_add_local_candidate(tern_pc_t *pc, const tern_ice_candidate_t *c)
{
    char line[TERN_ICE_CANDIDATE_STRLEN];
    if (tern_ice_candidate_format(c, line, sizeof line) < 0)
        return TERN_ERR_INVALID_ARG;
    char **grown = tern_realloc(pc->ctx, pc->local_candidates,
                                (pc->local_candidate_count + 1) * sizeof *grown);
    if (!grown)
        return TERN_ERR_NOMEM;
    pc->local_candidates = grown;
    char *copy = tern_strdup(pc->ctx, line);
    if (!copy)
        return TERN_ERR_NOMEM;
    pc->local_candidates[pc->local_candidate_count++] = copy;
    tern_rtc_announce_candidates(pc);
    return TERN_OK;
}

/* ---- building descriptions ---- */

static int fill_data_section(tern_pc_t *pc, tern_sdp_media_t *m, tern_sdp_setup_t setup,
                             bool old_form)
{
    snprintf(m->kind, sizeof m->kind, "application");
    m->port = 9; /* RFC 8840 §4.1.1: the discard port while trickling */
    if (old_form) {
        /* Answer peers that offer the pre-RFC 8841 form the same way (aiortc does). */
        snprintf(m->proto, sizeof m->proto, "DTLS/SCTP");
        snprintf(m->fmt, sizeof m->fmt, "%u", pc->cfg.sctp_port);
        m->sctpmap_streams = RTC_SCTP_STREAMS;
    } else {
        snprintf(m->proto, sizeof m->proto, "UDP/DTLS/SCTP");
        snprintf(m->fmt, sizeof m->fmt, "webrtc-datachannel");
    }
    snprintf(m->mid, sizeof m->mid, "%s", pc->mid);
    snprintf(m->connection_addr, sizeof m->connection_addr, "0.0.0.0");
    snprintf(m->ice_ufrag, sizeof m->ice_ufrag, "%s", tern_ice_local_ufrag(pc->ice));
    snprintf(m->ice_pwd, sizeof m->ice_pwd, "%s", tern_ice_local_pwd(pc->ice));
    m->ice_trickle = true;
    snprintf(m->fingerprint_alg, sizeof m->fingerprint_alg, "sha-256");
    snprintf(m->fingerprint, sizeof m->fingerprint, "%s", tern_dtls_identity_fingerprint(pc->ctx));
    m->setup = setup;
    m->sctp_port = pc->cfg.sctp_port;
    m->has_max_message_size = true;
    m->max_message_size = pc->cfg.max_message_size;
    for (size_t i = 0; i < pc->local_candidate_count; i++) {
        int err = tern_sdp_media_add_candidate(pc->ctx, m, pc->local_candidates[i]);
        if (err)
            return err;
    }
    m->end_of_candidates = pc->gathering_complete;
    return TERN_OK;
}

/* RFC 8829 §5.2.1 / §5.3.1: an offer's setup is actpass until the role is settled, then the
 * role keeps (§5.2.2). */
static tern_sdp_setup_t offer_setup(const tern_pc_t *pc)
{
    if (!pc->dtls_role_known)
        return TERN_SDP_SETUP_ACTPASS;
    return pc->dtls_role == TERN_DTLS_ROLE_CLIENT ? TERN_SDP_SETUP_ACTIVE : TERN_SDP_SETUP_PASSIVE;
}

/* RFC 8842 §5.3: the answerer to actpass picks active (as browsers do: it starts the handshake
 * a half round trip sooner). */
static tern_sdp_setup_t answer_setup(const tern_pc_t *pc, tern_sdp_setup_t remote)
{
    if (pc->dtls_role_known)
        return pc->dtls_role == TERN_DTLS_ROLE_CLIENT ? TERN_SDP_SETUP_ACTIVE
                                                      : TERN_SDP_SETUP_PASSIVE;
    return remote == TERN_SDP_SETUP_ACTIVE ? TERN_SDP_SETUP_PASSIVE : TERN_SDP_SETUP_ACTIVE;
}

static int write_description(tern_pc_t *pc, tern_sdp_t *sdp, char **out)
{
    sdp->session_id = pc->session_id;
    sdp->session_version = ++pc->session_version;
    int err = tern_sdp_write(pc->ctx, sdp, out);
    tern_sdp_free(pc->ctx, sdp);
    return err;
}

int tern_pc_create_offer(tern_pc_t *pc, tern_time_t now, char **sdp_out)
{
    if (!pc || !sdp_out)
        return TERN_ERR_INVALID_ARG;
    if (pc->closed || pc->signaling == TERN_SIGNALING_HAVE_REMOTE_OFFER ||
        pc->signaling == TERN_SIGNALING_HAVE_LOCAL_PRANSWER)
        return TERN_ERR_INVALID_STATE;
    if (now > pc->now)
        pc->now = now;
    if (!pc->mid[0])
        snprintf(pc->mid, sizeof pc->mid, "0");
    tern_sdp_t *sdp;
    tern_sdp_media_t *m;
    int err = tern_sdp_new(pc->ctx, &sdp);
    if (err)
        return err;
    err = tern_sdp_add_media(pc->ctx, sdp, &m);
    if (!err)
        err = fill_data_section(pc, m, offer_setup(pc), false);
    if (err) {
        tern_sdp_free(pc->ctx, sdp);
        return err;
    }
    snprintf(sdp->bundle_mids[0], sizeof sdp->bundle_mids[0], "%s", pc->mid);
    sdp->bundle_count = 1;
    return write_description(pc, sdp, sdp_out);
}

/* A rejected copy of a remote section (RFC 8829 §5.3.1: same kind, proto and mid, port 0). */
static void fill_rejected_section(tern_sdp_media_t *m, const tern_sdp_media_t *remote)
{
    snprintf(m->kind, sizeof m->kind, "%s", remote->kind);
    snprintf(m->proto, sizeof m->proto, "%s", remote->proto);
    snprintf(m->fmt, sizeof m->fmt, "%s", remote->fmt);
    snprintf(m->mid, sizeof m->mid, "%s", remote->mid);
    m->port = 0;
}

int tern_pc_create_answer(tern_pc_t *pc, tern_time_t now, char **sdp_out)
{
    if (!pc || !sdp_out)
        return TERN_ERR_INVALID_ARG;
    if (pc->closed || !pc->remote ||
        (pc->signaling != TERN_SIGNALING_HAVE_REMOTE_OFFER &&
         pc->signaling != TERN_SIGNALING_HAVE_LOCAL_PRANSWER))
        return TERN_ERR_INVALID_STATE;
    if (now > pc->now)
        pc->now = now;
    const tern_sdp_t *remote = pc->remote;
    tern_sdp_t *sdp;
    int err = tern_sdp_new(pc->ctx, &sdp);
    for (size_t i = 0; !err && i < remote->media_count; i++) {
        const tern_sdp_media_t *rm = &remote->media[i];
        tern_sdp_media_t *m;
        err = tern_sdp_add_media(pc->ctx, sdp, &m);
        if (err)
            break;
        if ((int)i == pc->mline_index)
            err = fill_data_section(pc, m, answer_setup(pc, rm->setup), pc->remote_old_sctp_form);
        else
            fill_rejected_section(m, rm);
    }
    if (err) {
        tern_sdp_free(pc->ctx, sdp);
        return err;
    }
    if (tern_sdp_in_bundle(remote, pc->mid)) {
        snprintf(sdp->bundle_mids[0], sizeof sdp->bundle_mids[0], "%s", pc->mid);
        sdp->bundle_count = 1;
    }
    return write_description(pc, sdp, sdp_out);
}

/* ---- the signaling state machine ---- */

static bool local_type_allowed(tern_signaling_state_t s, tern_sdp_type_t type)
{
    if (type == TERN_SDP_OFFER)
        return s == TERN_SIGNALING_STABLE || s == TERN_SIGNALING_HAVE_LOCAL_OFFER;
    return s == TERN_SIGNALING_HAVE_REMOTE_OFFER || s == TERN_SIGNALING_HAVE_LOCAL_PRANSWER;
}

static bool remote_type_allowed(tern_signaling_state_t s, tern_sdp_type_t type)
{
    if (type == TERN_SDP_OFFER)
        return s == TERN_SIGNALING_STABLE || s == TERN_SIGNALING_HAVE_REMOTE_OFFER ||
               s == TERN_SIGNALING_HAVE_LOCAL_OFFER; /* glare: implicit rollback (W3C) */
    return s == TERN_SIGNALING_HAVE_LOCAL_OFFER || s == TERN_SIGNALING_HAVE_REMOTE_PRANSWER;
}

static int parse_description(tern_pc_t *pc, const char *text, tern_sdp_t **out,
                             const tern_sdp_media_t **data, int *index)
{
    char err_text[200];
    int err = tern_sdp_parse(pc->ctx, text, strlen(text), out, err_text, sizeof err_text);
    if (err == TERN_ERR_PARSE) {
        tern_rtc_set_error(pc, "malformed SDP: %s", err_text);
        return err;
    }
    if (err)
        return err;
    *data = tern_sdp_find_datachannel(*out);
    if (!*data) {
        tern_rtc_set_error(pc, "no data channel section (m=application ... DTLS/SCTP)");
        tern_sdp_free(pc->ctx, *out);
        return TERN_ERR_UNSUPPORTED;
    }
    *index = (int)(*data - (*out)->media);
    return TERN_OK;
}

static tern_dtls_role_t role_from_local_answer(tern_sdp_setup_t setup)
{
    return setup == TERN_SDP_SETUP_PASSIVE ? TERN_DTLS_ROLE_SERVER : TERN_DTLS_ROLE_CLIENT;
}

int tern_pc_set_local_description(tern_pc_t *pc, tern_time_t now, tern_sdp_type_t type,
                                  const char *sdp)
{
    int entered = tern_rtc_enter(pc, &now);
    if (entered != TERN_OK)
        return entered;
    if (type == TERN_SDP_ROLLBACK) {
        if (pc->signaling != TERN_SIGNALING_HAVE_LOCAL_OFFER)
            return TERN_ERR_INVALID_STATE;
        set_signaling(pc, TERN_SIGNALING_STABLE);
        return TERN_OK;
    }
    char *created = NULL;
    if (!sdp) {
        bool answering = pc->signaling == TERN_SIGNALING_HAVE_REMOTE_OFFER ||
                         pc->signaling == TERN_SIGNALING_HAVE_LOCAL_PRANSWER;
        if (type == TERN_SDP_OFFER && answering)
            type = TERN_SDP_ANSWER;
        int err = answering ? tern_pc_create_answer(pc, now, &created)
                            : tern_pc_create_offer(pc, now, &created);
        if (err)
            return err;
        sdp = created;
    }
    if (!local_type_allowed(pc->signaling, type)) {
        tern_free(pc->ctx, created);
        return TERN_ERR_INVALID_STATE;
    }
    tern_sdp_t *parsed;
    const tern_sdp_media_t *data;
    int index;
    int err = parse_description(pc, sdp, &parsed, &data, &index);
    char *copy = err ? NULL : (created ? created : tern_strdup(pc->ctx, sdp));
    if (err || !copy) {
        tern_free(pc->ctx, created);
        if (!err)
            tern_sdp_free(pc->ctx, parsed);
        return err ? err : TERN_ERR_NOMEM;
    }
    snprintf(pc->mid, sizeof pc->mid, "%s", data->mid);
    pc->mline_index = index;
    pc->local_setup = data->setup;
    tern_free(pc->ctx, pc->local_sdp);
    pc->local_sdp = copy;
    if (type == TERN_SDP_OFFER) {
        tern_ice_set_controlling(pc->ice, true); /* RFC 8445 §6.1.1: the offerer controls */
        set_signaling(pc, TERN_SIGNALING_HAVE_LOCAL_OFFER);
    } else {
        tern_rtc_set_dtls_role(pc, now, role_from_local_answer(data->setup));
        pc->negotiated = true;
        pc->restart_pending = false;
        set_signaling(pc, type == TERN_SDP_ANSWER ? TERN_SIGNALING_STABLE
                                                  : TERN_SIGNALING_HAVE_LOCAL_PRANSWER);
    }
    tern_sdp_free(pc->ctx, parsed);
    tern_rtc_announce_candidates(pc);
    tern_rtc_pump(pc, now);
    tern_rtc_mark_pending(pc);
    return TERN_OK;
}

/* ---- the remote description ---- */

static int check_remote_section(tern_pc_t *pc, const tern_sdp_media_t *m)
{
    if (!m->ice_ufrag[0] || !m->ice_pwd[0]) {
        tern_rtc_set_error(pc, "the data section has no a=ice-ufrag or a=ice-pwd");
        return TERN_ERR_PARSE;
    }
    if (!m->fingerprint[0]) {
        tern_rtc_set_error(pc, "the data section has no a=fingerprint");
        return TERN_ERR_PARSE;
    }
    return TERN_OK;
}

static void add_remote_candidates(tern_pc_t *pc, tern_time_t now, const tern_sdp_media_t *m)
{
    for (size_t i = 0; i < m->candidate_count; i++) {
        tern_ice_candidate_t c;
        const char *line = m->candidates[i];
        if (tern_ice_candidate_parse(line, strlen(line), &c) == TERN_OK)
            tern_ice_add_remote_candidate(pc->ice, now, &c);
        else
            TERN_LOG_DEBUG(pc->ctx, "pc", "pc %u ignored a malformed remote candidate", pc->id);
    }
    if (m->end_of_candidates)
        tern_ice_remote_candidates_done(pc->ice, now);
}

/* New remote credentials without our own restart are the peer's ICE restart (RFC 8445 §9). */
static int apply_remote_credentials(tern_pc_t *pc, tern_time_t now, const tern_sdp_media_t *m)
{
    const tern_sdp_media_t *old = pc->remote ? tern_sdp_find_datachannel(pc->remote) : NULL;
    bool changed = old && (strcmp(old->ice_ufrag, m->ice_ufrag) || strcmp(old->ice_pwd, m->ice_pwd));
    if (changed && !pc->restart_pending) {
        int err = tern_ice_restart(pc->ice, now);
        if (err)
            return err;
        pc->gathering_complete = false;
        pc->end_of_candidates_announced = false;
        for (size_t i = 0; i < pc->local_candidate_count; i++)
            tern_free(pc->ctx, pc->local_candidates[i]);
        pc->local_candidate_count = 0;
        pc->local_candidates_announced = 0;
    }
    int err = tern_ice_set_remote_credentials(pc->ice, now, m->ice_ufrag, m->ice_pwd);
    if (err)
        tern_rtc_set_error(pc, "ICE refused the remote credentials: %s", tern_strerror(err));
    return err;
}

static void learn_transport_parameters(tern_pc_t *pc, const tern_sdp_media_t *m)
{
    snprintf(pc->remote_fp_alg, sizeof pc->remote_fp_alg, "%s", m->fingerprint_alg);
    snprintf(pc->remote_fp, sizeof pc->remote_fp, "%s", m->fingerprint);
    pc->remote_sctp_port = m->sctp_port ? m->sctp_port : TERN_SCTP_DEFAULT_PORT;
    /* RFC 8841 §6: absent means 64 KiB; 0 means no limit. */
    if (!m->has_max_message_size)
        pc->remote_max_message_size = 65536;
    else if (m->max_message_size == 0 || m->max_message_size > SIZE_MAX)
        pc->remote_max_message_size = SIZE_MAX;
    else
        pc->remote_max_message_size = (size_t)m->max_message_size;
}

/* RFC 8842 §5.2: the remote answer's setup decides our role. */
static tern_dtls_role_t role_from_remote_answer(tern_sdp_setup_t setup)
{
    return setup == TERN_SDP_SETUP_ACTIVE ? TERN_DTLS_ROLE_SERVER : TERN_DTLS_ROLE_CLIENT;
}

static int apply_remote(tern_pc_t *pc, tern_time_t now, tern_sdp_type_t type,
                        const tern_sdp_t *sdp, const tern_sdp_media_t *m, int index)
{
    int err = apply_remote_credentials(pc, now, m);
    if (err)
        return err;
    learn_transport_parameters(pc, m);
    if (type == TERN_SDP_OFFER) {
        snprintf(pc->mid, sizeof pc->mid, "%s", m->mid);
        pc->mline_index = index;
        pc->remote_old_sctp_form = strcmp(m->proto, "DTLS/SCTP") == 0;
        /* The answerer is controlled, unless the offerer is ICE-lite (RFC 8445 §6.1.1). */
        tern_ice_set_controlling(pc->ice, sdp->ice_lite);
    } else {
        if (sdp->ice_lite)
            tern_ice_set_controlling(pc->ice, true);
        err = tern_rtc_set_dtls_role(pc, now, role_from_remote_answer(m->setup));
        if (err) {
            tern_rtc_set_error(pc, "the answer's a=setup contradicts the DTLS role in use");
            return err;
        }
        pc->negotiated = true;
        pc->restart_pending = false;
    }
    tern_rtc_apply_remote_fingerprint(pc, now);
    add_remote_candidates(pc, now, m);
    return TERN_OK;
}

int tern_pc_set_remote_description(tern_pc_t *pc, tern_time_t now, tern_sdp_type_t type,
                                   const char *sdp)
{
    int entered = tern_rtc_enter(pc, &now);
    if (entered != TERN_OK)
        return entered;
    if (type == TERN_SDP_ROLLBACK) {
        if (pc->signaling != TERN_SIGNALING_HAVE_REMOTE_OFFER)
            return TERN_ERR_INVALID_STATE;
        set_signaling(pc, TERN_SIGNALING_STABLE);
        return TERN_OK;
    }
    if (!sdp)
        return TERN_ERR_INVALID_ARG;
    if (!remote_type_allowed(pc->signaling, type))
        return TERN_ERR_INVALID_STATE;
    tern_sdp_t *parsed;
    const tern_sdp_media_t *data;
    int index;
    int err = parse_description(pc, sdp, &parsed, &data, &index);
    if (err)
        return err;
    char *copy = NULL;
    err = check_remote_section(pc, data);
    if (!err && !(copy = tern_strdup(pc->ctx, sdp)))
        err = TERN_ERR_NOMEM;
    if (!err)
        err = apply_remote(pc, now, type, parsed, data, index);
    if (err) {
        tern_free(pc->ctx, copy);
        tern_sdp_free(pc->ctx, parsed);
        return err;
    }
    tern_sdp_free(pc->ctx, pc->remote);
    pc->remote = parsed;
    tern_free(pc->ctx, pc->remote_sdp);
    pc->remote_sdp = copy;
    if (type == TERN_SDP_OFFER)
        set_signaling(pc, TERN_SIGNALING_HAVE_REMOTE_OFFER);
    else
        set_signaling(pc, type == TERN_SDP_ANSWER ? TERN_SIGNALING_STABLE
                                                  : TERN_SIGNALING_HAVE_REMOTE_PRANSWER);
    tern_rtc_pump(pc, now);
    tern_rtc_mark_pending(pc);
    return TERN_OK;
}

const char *tern_pc_local_description(const tern_pc_t *pc)
{
    return pc->local_sdp;
}

const char *tern_pc_remote_description(const tern_pc_t *pc)
{
    return pc->remote_sdp;
}

/* ---- trickled remote candidates ---- */

static int check_candidate_mid(tern_pc_t *pc, const char *mid)
{
    if (!mid || !pc->remote || strcmp(mid, pc->mid) == 0)
        return TERN_OK;
    /* A candidate for a section we rejected (audio, video) is of no use but not an error. */
    return tern_sdp_find_mid(pc->remote, mid) ? TERN_ERR_AGAIN : TERN_ERR_NOT_FOUND;
}

int tern_pc_add_ice_candidate(tern_pc_t *pc, tern_time_t now, const char *candidate,
                              const char *mid)
{
    int entered = tern_rtc_enter(pc, &now);
    if (entered != TERN_OK)
        return entered;
    int err = check_candidate_mid(pc, mid);
    if (err == TERN_ERR_AGAIN)
        return TERN_OK;
    if (err) {
        tern_rtc_set_error(pc, "candidate for an unknown mid \"%s\"", mid);
        return err;
    }
    if (!candidate || !candidate[0]) {
        err = tern_ice_remote_candidates_done(pc->ice, now);
    } else {
        tern_ice_candidate_t c;
        err = tern_ice_candidate_parse(candidate, strlen(candidate), &c);
        if (err) {
            tern_rtc_set_error(pc, "malformed candidate: %.200s", candidate);
            return err;
        }
        err = tern_ice_add_remote_candidate(pc->ice, now, &c);
    }
    tern_rtc_pump(pc, now);
    tern_rtc_mark_pending(pc);
    return err;
}
