/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness of the SDP parser and writer (src/sdp/): parse the input; if it parses, write
 * the model, parse the text again and check that the model came back (the key fields that
 * tern_sdp_write promises to keep), and that writing it again gives the same text. A failed
 * parse must leave a "line N: ..." or whole-text message. Deterministic, no clock, no rng.
 */
#include "sdp/sdp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Text protocols are fuzzed up to 64 KiB (CONVENTIONS.md §11). */
#define MAX_INPUT 65536

static tern_ctx_t ctx;
static bool ctx_ready;

/* Stop at once: libFuzzer and replay.c both report the crash with its input. */
static void require(bool cond)
{
    if (!cond)
        abort();
}

static bool same_text(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static void check_same_media(const tern_sdp_media_t *a, const tern_sdp_media_t *b)
{
    require(same_text(a->kind, b->kind) && a->port == b->port && same_text(a->proto, b->proto) &&
            same_text(a->fmt, b->fmt) && same_text(a->mid, b->mid));
    require(same_text(a->connection_addr[0] ? a->connection_addr : "0.0.0.0", b->connection_addr));
    if (tern_sdp_media_is_rejected(a))
        return; /* written with m=, c= and a=mid only (sdp.h) */
    require(same_text(a->ice_ufrag, b->ice_ufrag) && same_text(a->ice_pwd, b->ice_pwd));
    require(a->ice_trickle == b->ice_trickle && a->end_of_candidates == b->end_of_candidates);
    require(same_text(a->fingerprint_alg, b->fingerprint_alg) &&
            same_text(a->fingerprint, b->fingerprint) && a->setup == b->setup);
    require(a->sctp_port == b->sctp_port && a->sctpmap_streams == b->sctpmap_streams);
    require(a->has_max_message_size == b->has_max_message_size &&
            a->max_message_size == b->max_message_size);
    require(a->bundle_only == b->bundle_only && a->rtcp_mux == b->rtcp_mux &&
            a->direction == b->direction);
    require(a->candidate_count == b->candidate_count);
    for (size_t i = 0; i < a->candidate_count; i++)
        require(same_text(a->candidates[i], b->candidates[i]));
}

static void check_same(const tern_sdp_t *a, const tern_sdp_t *b)
{
    require(same_text(a->origin_user[0] ? a->origin_user : "-", b->origin_user));
    require(a->session_id == b->session_id && a->session_version == b->session_version);
    require(same_text(a->session_name[0] ? a->session_name : "-", b->session_name));
    require(a->ice_lite == b->ice_lite && a->bundle_count == b->bundle_count);
    for (size_t i = 0; i < a->bundle_count; i++)
        require(same_text(a->bundle_mids[i], b->bundle_mids[i]));
    require(a->media_count == b->media_count);
    for (size_t i = 0; i < a->media_count; i++)
        check_same_media(&a->media[i], &b->media[i]);
}

/* Facts that hold for every model the parser makes. */
static void check_model(const tern_sdp_t *sdp)
{
    require(sdp->media_count <= TERN_SDP_MAX_MEDIA && sdp->bundle_count <= TERN_SDP_MAX_MEDIA);
    for (size_t i = 0; i < sdp->bundle_count; i++)
        require(tern_sdp_find_mid(sdp, sdp->bundle_mids[i]) != NULL);
    for (size_t i = 0; i < sdp->media_count; i++) {
        const tern_sdp_media_t *m = &sdp->media[i];
        require(m->candidate_count <= TERN_SDP_MAX_CANDIDATES);
        require(!m->mid[0] || tern_sdp_find_mid(sdp, m->mid) == m);
    }
    const tern_sdp_media_t *dc = tern_sdp_find_datachannel(sdp);
    require(!dc || (tern_sdp_media_is_datachannel(dc) && !tern_sdp_media_is_rejected(dc)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx_ready) {
        tern_ctx_init_base(&ctx, NULL);
        ctx_ready = true;
    }
    if (size > MAX_INPUT)
        return 0;
    tern_sdp_t *sdp = NULL, *back = NULL;
    char err[256];
    int ret = tern_sdp_parse(&ctx, (const char *)data, size, &sdp, err, sizeof err);
    if (ret != TERN_OK) {
        require(ret == TERN_ERR_PARSE && sdp == NULL);
        require(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        return 0;
    }
    check_model(sdp);

    char *text = NULL, *again = NULL;
    require(tern_sdp_write(&ctx, sdp, &text) == TERN_OK);
    if (tern_sdp_parse(&ctx, text, strlen(text), &back, err, sizeof err) != TERN_OK)
        abort(); /* the writer wrote something its own parser refuses: err says what */
    check_model(back);
    check_same(sdp, back);
    require(tern_sdp_write(&ctx, back, &again) == TERN_OK);
    require(same_text(text, again));

    tern_free(&ctx, again);
    tern_free(&ctx, text);
    tern_sdp_free(&ctx, back);
    tern_sdp_free(&ctx, sdp);
    return 0;
}
