/* SPDX-License-Identifier: MIT */
/*
 * The SDP model: making and freeing it (tern_sdp_new, tern_sdp_free), growing it
 * (tern_sdp_add_media, tern_sdp_media_add_candidate) and looking things up in it
 * (tern_sdp_find_datachannel, tern_sdp_find_mid, tern_sdp_in_bundle). The parser is in
 * sdp_parse.c, the writer in sdp_write.c.
 */
#include "sdp/sdp.h"

#include <string.h>

int tern_sdp_new(tern_ctx_t *ctx, tern_sdp_t **out)
{
    if (!ctx || !out)
        return TERN_ERR_INVALID_ARG;
    tern_sdp_t *sdp = tern_calloc(ctx, 1, sizeof *sdp);
    if (!sdp)
        return TERN_ERR_NOMEM;
    *out = sdp;
    return TERN_OK;
}

static void free_candidates(tern_ctx_t *ctx, tern_sdp_media_t *m)
{
    for (size_t i = 0; i < m->candidate_count; i++)
        tern_free(ctx, m->candidates[i]);
    tern_free(ctx, m->candidates);
    m->candidates = NULL;
    m->candidate_count = 0;
}

void tern_sdp_free(tern_ctx_t *ctx, tern_sdp_t *sdp)
{
    if (!sdp)
        return;
    for (size_t i = 0; i < sdp->media_count; i++)
        free_candidates(ctx, &sdp->media[i]);
    /* The sections hold ice-pwd values (CONVENTIONS.md §5: secrets are zeroed when freed). */
    tern_free_secret(ctx, sdp->media, sdp->media_count * sizeof *sdp->media);
    tern_free(ctx, sdp);
}

/* The capacity of the media array, implied by its count: it grows by doubling. */
static size_t compute_capacity(size_t count)
{
    size_t cap = 1;
    while (cap < count)
        cap *= 2;
    return count ? cap : 0;
}

int tern_sdp_add_media(tern_ctx_t *ctx, tern_sdp_t *sdp, tern_sdp_media_t **out)
{
    if (!ctx || !sdp || !out)
        return TERN_ERR_INVALID_ARG;
    if (sdp->media_count >= TERN_SDP_MAX_MEDIA)
        return TERN_ERR_TOO_LARGE;
    size_t n = sdp->media_count;
    if (n == compute_capacity(n)) {
        /* No realloc: the old array holds ice-pwd values and is zeroed before it is freed. */
        size_t cap = TERN_MIN(n ? 2 * n : 1, (size_t)TERN_SDP_MAX_MEDIA);
        tern_sdp_media_t *grown = tern_calloc(ctx, cap, sizeof *grown);
        if (!grown)
            return TERN_ERR_NOMEM;
        if (n)
            memcpy(grown, sdp->media, n * sizeof *grown);
        tern_free_secret(ctx, sdp->media, n * sizeof *grown);
        sdp->media = grown;
    }
    memset(&sdp->media[n], 0, sizeof sdp->media[n]);
    sdp->media_count = n + 1;
    *out = &sdp->media[n];
    return TERN_OK;
}

static bool is_line_byte(unsigned char c)
{
    return c >= 0x20 || c == '\t';
}

int tern_sdp_media_add_candidate(tern_ctx_t *ctx, tern_sdp_media_t *m, const char *candidate)
{
    if (!ctx || !m || !candidate)
        return TERN_ERR_INVALID_ARG;
    if (strncmp(candidate, "a=", 2) == 0)
        candidate += 2;
    if (strncmp(candidate, "candidate:", 10) != 0)
        return TERN_ERR_INVALID_ARG;
    size_t len = strnlen(candidate, TERN_SDP_MAX_LINE);
    /* The line also carries "a=", which counts against the line limit. */
    if (len + 2 > TERN_SDP_MAX_LINE)
        return TERN_ERR_INVALID_ARG;
    for (size_t i = 0; i < len; i++)
        if (!is_line_byte((unsigned char)candidate[i]))
            return TERN_ERR_INVALID_ARG;
    if (m->candidate_count >= TERN_SDP_MAX_CANDIDATES)
        return TERN_ERR_TOO_LARGE;
    char *copy = tern_strndup(ctx, candidate, len);
    if (!copy)
        return TERN_ERR_NOMEM;
    char **grown = tern_realloc(ctx, m->candidates, (m->candidate_count + 1) * sizeof *grown);
    if (!grown) {
        tern_free(ctx, copy);
        return TERN_ERR_NOMEM;
    }
    grown[m->candidate_count] = copy;
    m->candidates = grown;
    m->candidate_count++;
    return TERN_OK;
}

bool tern_sdp_media_is_rejected(const tern_sdp_media_t *m)
{
    return m->port == 0 && !m->bundle_only;
}

bool tern_sdp_media_is_datachannel(const tern_sdp_media_t *m)
{
    /* "UDP/DTLS/SCTP" and "TCP/DTLS/SCTP" (RFC 8841), or the old "DTLS/SCTP" that
       aiortc still offers (draft-ietf-mmusic-sctp-sdp-05). */
    static const char suffix[] = "DTLS/SCTP";
    size_t len = strnlen(m->proto, sizeof m->proto);
    size_t slen = sizeof suffix - 1;
    if (strcmp(m->kind, "application") != 0 || len < slen || len == sizeof m->proto)
        return false;
    if (strcmp(m->proto + len - slen, suffix) != 0)
        return false;
    return len == slen || m->proto[len - slen - 1] == '/';
}

const tern_sdp_media_t *tern_sdp_find_datachannel(const tern_sdp_t *sdp)
{
    if (!sdp)
        return NULL;
    for (size_t i = 0; i < sdp->media_count; i++) {
        const tern_sdp_media_t *m = &sdp->media[i];
        if (tern_sdp_media_is_datachannel(m) && !tern_sdp_media_is_rejected(m))
            return m;
    }
    return NULL;
}

const tern_sdp_media_t *tern_sdp_find_mid(const tern_sdp_t *sdp, const char *mid)
{
    if (!sdp || !mid || !*mid)
        return NULL;
    for (size_t i = 0; i < sdp->media_count; i++)
        if (strcmp(sdp->media[i].mid, mid) == 0)
            return &sdp->media[i];
    return NULL;
}

bool tern_sdp_in_bundle(const tern_sdp_t *sdp, const char *mid)
{
    if (!sdp || !mid || !*mid)
        return false;
    for (size_t i = 0; i < sdp->bundle_count && i < TERN_SDP_MAX_MEDIA; i++)
        if (strcmp(sdp->bundle_mids[i], mid) == 0)
            return true;
    return false;
}

const char *tern_sdp_setup_name(tern_sdp_setup_t setup)
{
    switch (setup) {
    case TERN_SDP_SETUP_ACTPASS:
        return "actpass";
    case TERN_SDP_SETUP_ACTIVE:
        return "active";
    case TERN_SDP_SETUP_PASSIVE:
        return "passive";
    case TERN_SDP_SETUP_NONE:
        break;
    }
    return "";
}
