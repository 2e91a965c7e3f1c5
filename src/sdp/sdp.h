/* SPDX-License-Identifier: MIT */
/*
 * The sdp layer's internal API: an SDP model (RFC 8866) with just the facts a WebRTC data-channel
 * stack needs, a parser that fills it from a browser's offer or answer, and a writer that turns
 * a model into a complete SDP that Chromium and Firefox accept. Which section to use and what to
 * answer (JSEP, RFC 8829) is decided by rtc/; this layer only models, parses and writes.
 *
 * Scope (what is deliberately not supported):
 * - RTP details: a=rtpmap, a=fmtp, a=rtcp-fb, a=extmap, a=ssrc, a=msid, simulcast... are skipped
 *   by the parser and never written. Audio and video sections are kept (kind, port, proto, fmt,
 *   mid, direction, rtcp-mux) only so that an answer can reject them in the right order.
 * - Unknown attributes and unknown line types are tolerated and dropped (RFC 8866 §5).
 * - One BUNDLE group: the first a=group:BUNDLE is kept, other groups (LS, FID, a second
 *   BUNDLE) are ignored.
 * - One fingerprint per section: the first a=fingerprint line wins, later ones are ignored
 *   (RFC 8122 §5 allows several; browsers send one).
 * - The a=candidate lines are kept verbatim and not parsed here: that is ice/'s job.
 * - No b=, k=, r=, z=, i=, u=, e=, p= fields: tolerated on input, never written.
 * - The minimum lengths of ice-ufrag (4) and ice-pwd (22) are not enforced (RFC 8839 §5.4):
 *   rtc/ decides; the character set and the maximum lengths are.
 *
 * Session-level a=ice-ufrag, a=ice-pwd, a=fingerprint, a=setup, a=ice-options,
 * a=end-of-candidates, direction and c= apply to every section that does not set its own
 * (RFC 8839 §5.4, RFC 8122 §5; Firefox puts a=fingerprint at session level), so the model
 * holds them per section only and the writer writes them per section.
 *
 * Every limit below is checked; nothing is silently truncated. Input beyond a limit makes
 * tern_sdp_parse fail with TERN_ERR_PARSE and a message naming the line.
 */
#ifndef TERN_SDP_SDP_H
#define TERN_SDP_SDP_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits (tern's choices unless an RFC is cited). Sizes include the terminating NUL. */
#define TERN_SDP_MAX_TEXT 262144       /* whole SDP, in bytes */
#define TERN_SDP_MAX_LINE 4096         /* one line, without its line end */
#define TERN_SDP_MAX_MEDIA 64          /* m= sections */
#define TERN_SDP_MAX_CANDIDATES 128    /* a=candidate lines per section */
#define TERN_SDP_KIND_SIZE 16          /* "application", "audio", "video", ... */
#define TERN_SDP_PROTO_SIZE 40         /* "UDP/TLS/RTP/SAVPF" */
#define TERN_SDP_FMT_SIZE 512          /* the fmt list: all 128 RTP payload types fit */
#define TERN_SDP_MID_SIZE 33           /* a=mid: up to 32 characters */
#define TERN_SDP_UFRAG_SIZE 257        /* a=ice-ufrag: 4..256 ice-chars (RFC 8839 §5.4) */
#define TERN_SDP_PWD_SIZE 257          /* a=ice-pwd: 22..256 ice-chars (RFC 8839 §5.4) */
#define TERN_SDP_FP_ALG_SIZE 16        /* "sha-256" (RFC 8122 §5 hash-func) */
#define TERN_SDP_FP_SIZE 192           /* SHA-512 as "AB:CD:..": 64 * 3 - 1 characters */
#define TERN_SDP_ADDR_SIZE 64          /* c= address (IPv4, IPv6 or a name) */
#define TERN_SDP_ORIGIN_USER_SIZE 64   /* o= username ("-", "mozilla...THIS_IS_SDPARTA-99.0") */
#define TERN_SDP_SESSION_NAME_SIZE 256 /* s= */

/** a=setup (RFC 8842, RFC 4145 §4). NONE: absent. holdconn is refused by the parser. */
typedef enum {
    TERN_SDP_SETUP_NONE = 0,
    TERN_SDP_SETUP_ACTPASS,
    TERN_SDP_SETUP_ACTIVE,
    TERN_SDP_SETUP_PASSIVE,
} tern_sdp_setup_t;

/** Direction attribute (RFC 8866 §6.7). NONE: absent, which means sendrecv. */
typedef enum {
    TERN_SDP_DIR_NONE = 0,
    TERN_SDP_DIR_SENDRECV,
    TERN_SDP_DIR_SENDONLY,
    TERN_SDP_DIR_RECVONLY,
    TERN_SDP_DIR_INACTIVE,
} tern_sdp_direction_t;

/** One m= section. Strings are NUL-terminated; "" means absent. */
typedef struct tern_sdp_media {
    char kind[TERN_SDP_KIND_SIZE];   /* m= media: "application", "audio", "video", as written */
    uint16_t port;                   /* m= port; 0: rejected, unless bundle_only */
    char proto[TERN_SDP_PROTO_SIZE]; /* "UDP/DTLS/SCTP", "DTLS/SCTP", "UDP/TLS/RTP/SAVPF", ... */
    char fmt[TERN_SDP_FMT_SIZE];     /* "webrtc-datachannel", "5000", "111 63 9", as written */
    char mid[TERN_SDP_MID_SIZE];     /* a=mid */
    char connection_addr[TERN_SDP_ADDR_SIZE]; /* c= address ("0.0.0.0"), else session c= */

    /* ICE (RFC 8839), section-level or inherited from the session level */
    char ice_ufrag[TERN_SDP_UFRAG_SIZE];
    char ice_pwd[TERN_SDP_PWD_SIZE]; /* a secret: tern_sdp_free zeroes it */
    bool ice_trickle;                /* a=ice-options has "trickle" (RFC 8840) */
    bool end_of_candidates;          /* a=end-of-candidates (RFC 8840) */
    char **candidates;               /* "candidate:..." verbatim, without "a=" */
    size_t candidate_count;

    /* DTLS (RFC 8122, RFC 8842) */
    char fingerprint_alg[TERN_SDP_FP_ALG_SIZE]; /* lowercase: "sha-256" */
    char fingerprint[TERN_SDP_FP_SIZE];         /* uppercase hex with colons: "AB:CD:..." */
    tern_sdp_setup_t setup;

    /* SCTP (RFC 8841) */
    uint16_t sctp_port;        /* a=sctp-port, else a=sctpmap, else the old m= fmt; 0: none */
    uint16_t sctpmap_streams;  /* old form: the stream count of a=sctpmap; 0: absent */
    bool has_max_message_size; /* a=max-message-size present (absent means 64 KiB, §6) */
    uint64_t max_message_size; /* its value; 0 means "any size" (RFC 8841 §6) */

    /* BUNDLE (RFC 8843) and the rest */
    bool bundle_only;               /* a=bundle-only: port 0 does not mean rejected */
    bool rtcp_mux;                  /* a=rtcp-mux (RFC 5761) */
    tern_sdp_direction_t direction; /* section-level, else session-level, else NONE */
} tern_sdp_media_t;

/** A whole SDP. Build one with tern_sdp_new + tern_sdp_add_media, or get one from the parser. */
typedef struct tern_sdp {
    char origin_user[TERN_SDP_ORIGIN_USER_SIZE];   /* o= username; the writer writes "-" if "" */
    uint64_t session_id;                           /* o= sess-id */
    uint64_t session_version;                      /* o= sess-version */
    char session_name[TERN_SDP_SESSION_NAME_SIZE]; /* s=; the writer writes "-" if "" */
    bool ice_lite;                                 /* session-level a=ice-lite (RFC 8839 §5.3) */
    char bundle_mids[TERN_SDP_MAX_MEDIA][TERN_SDP_MID_SIZE]; /* the first a=group:BUNDLE */
    size_t bundle_count;
    tern_sdp_media_t *media; /* media_count sections, in order; grown by tern_sdp_add_media only */
    size_t media_count;
} tern_sdp_t;

/**
 * Parse an SDP offer or answer. Lines end in CRLF or LF; the last one may have no line end.
 * Empty lines, unknown line types and unknown attributes are skipped. Refused: no v=0 first
 * line, no o= line (or a malformed one), a line without '=' or with a type that is not one
 * letter, a byte below 0x20 other than tab, a bad m= line (port not a number up to 65535,
 * missing proto or fmt), a malformed known attribute (setup value, sctp-port, ice-ufrag with a
 * non-ice-char, ...), a known attribute twice in one section, a duplicate mid, a BUNDLE mid
 * that names no section, and anything over the limits above.
 * @param text  the SDP, len bytes (no NUL needed); borrowed.
 * @param out   on success, a new model to free with tern_sdp_free; untouched on failure.
 * @param err   may be NULL; on TERN_ERR_PARSE it receives "line N: <why>: <the line,
 *              truncated>" (or "<why>" for a fault of the whole text), NUL-terminated within
 *              errcap bytes. Left as "" on other results.
 * @return 0; TERN_ERR_PARSE if malformed or over a limit; TERN_ERR_INVALID_ARG if ctx, text or
 *         out is NULL; TERN_ERR_NOMEM.
 */
int tern_sdp_parse(tern_ctx_t *ctx, const char *text, size_t len, tern_sdp_t **out, char *err,
                   size_t errcap);

/** Free a model, its sections and candidates; ice-pwd values are zeroed. NULL is a no-op. */
void tern_sdp_free(tern_ctx_t *ctx, tern_sdp_t *sdp);

/**
 * Write a complete SDP with CRLF line ends: v=0, o=<user or -> <id> <version> IN IP4
 * 127.0.0.1, s=, t=0 0, a=ice-lite, a=group:BUNDLE; then per section m=, c=IN IP4|IP6 <addr or
 * 0.0.0.0>, a=mid, direction, a=ice-ufrag, a=ice-pwd, a=ice-options:trickle, a=fingerprint,
 * a=setup, a=rtcp-mux, a=bundle-only, a=sctp-port (a=sctpmap instead when proto is the old
 * "DTLS/SCTP"), a=max-message-size, the candidates, a=end-of-candidates; each only when the
 * model has it. A rejected section (port 0, not bundle_only) is written with its m=, c= and
 * a=mid lines only (JSEP, RFC 8829). Parsing the result gives back the same model, except that
 * a rejected section keeps only kind, port, proto, fmt, mid and connection_addr, an empty
 * connection_addr comes back as "0.0.0.0" and an empty origin_user or session_name as "-".
 * @param sdp  borrowed.
 * @param out  on success a NUL-terminated string allocated with the ctx allocator, to free with
 *             tern_free(ctx, ...); untouched on failure.
 * @return 0; TERN_ERR_INVALID_ARG if an argument is NULL, a string field is not NUL-terminated
 *         within its array or holds a byte below 0x20, a candidate has a line end, or kind,
 *         proto or fmt is empty; TERN_ERR_NOMEM.
 */
int tern_sdp_write(tern_ctx_t *ctx, const tern_sdp_t *sdp, char **out);

/**
 * Make an empty model (all fields zero, no sections), to fill and write.
 * @return 0; TERN_ERR_INVALID_ARG if ctx or out is NULL; TERN_ERR_NOMEM.
 */
int tern_sdp_new(tern_ctx_t *ctx, tern_sdp_t **out);

/**
 * Append a zeroed section to sdp.
 * @param out  receives a pointer to the new section, valid until the next tern_sdp_add_media
 *             or tern_sdp_free on this sdp (the array may move).
 * @return 0; TERN_ERR_TOO_LARGE at TERN_SDP_MAX_MEDIA sections; TERN_ERR_INVALID_ARG for NULL;
 *         TERN_ERR_NOMEM. On error sdp is unchanged.
 */
int tern_sdp_add_media(tern_ctx_t *ctx, tern_sdp_t *sdp, tern_sdp_media_t **out);

/**
 * Append a copy of a candidate to a section, "candidate:..." with or without a leading "a=".
 * @param candidate  NUL-terminated; copied.
 * @return 0; TERN_ERR_INVALID_ARG if it does not start with "candidate:", is longer than
 *         TERN_SDP_MAX_LINE or holds a byte below 0x20 other than tab; TERN_ERR_TOO_LARGE at
 *         TERN_SDP_MAX_CANDIDATES; TERN_ERR_NOMEM. On error m is unchanged.
 */
int tern_sdp_media_add_candidate(tern_ctx_t *ctx, tern_sdp_media_t *m, const char *candidate);

/**
 * The data-channel section: the first m=application section whose proto ends in "DTLS/SCTP"
 * and that is not rejected (port not 0, or bundle_only).
 * @return a section of sdp; NULL if none.
 */
const tern_sdp_media_t *tern_sdp_find_datachannel(const tern_sdp_t *sdp);

/** @return the section whose a=mid is mid; NULL if none (or mid is ""). */
const tern_sdp_media_t *tern_sdp_find_mid(const tern_sdp_t *sdp, const char *mid);

/** @return true if the section is rejected: port 0 and no a=bundle-only (RFC 8843 §6). */
bool tern_sdp_media_is_rejected(const tern_sdp_media_t *m);

/** @return true if the section is an SCTP data-channel section (m=application .../DTLS/SCTP). */
bool tern_sdp_media_is_datachannel(const tern_sdp_media_t *m);

/** @return true if mid is in the BUNDLE group. */
bool tern_sdp_in_bundle(const tern_sdp_t *sdp, const char *mid);

/** @return "actpass", "active", "passive", or "" for TERN_SDP_SETUP_NONE and unknown values. */
const char *tern_sdp_setup_name(tern_sdp_setup_t setup);

#endif
