/* SPDX-License-Identifier: MIT */
/*
 * The SDP parser (RFC 8866 §5) behind tern_sdp_parse: splits the text into lines (CRLF or LF),
 * refuses control bytes and over-long lines, and fills the model from v=, o=, s=, m=, c= and the
 * attributes a WebRTC data channel needs: ICE (RFC 8839, 8840), DTLS (RFC 8122, 8842), SCTP
 * (RFC 8841 and the older a=sctpmap form), BUNDLE (RFC 8843) and direction (RFC 8866 §6.7).
 * Session-level values are kept apart while parsing and copied into every section that does not
 * set its own at the end. Every failure writes "line N: <why>: <line>" for the caller.
 */
#include "sdp/sdp.h"

#include <stdio.h>
#include <string.h>

/* How much of an offending line an error message quotes. */
#define ERR_QUOTE_MAX 80

/* Bytes of a fingerprint: SHA-512 is the longest hash of RFC 8122 §5's registry in use. */
#define FP_MAX_BYTES 64

typedef struct parser {
    tern_ctx_t *ctx;
    tern_sdp_t *sdp;
    tern_sdp_media_t session; /* session-level values, inherited by the sections at the end */
    tern_sdp_media_t *media;  /* the current section; NULL at session level */
    bool seen_v, seen_o, seen_bundle;
    bool seen_sctp_port, seen_sctpmap, seen_max_message_size; /* in the current section */
    size_t bundle_line_no;
    const char *bundle_raw;
    size_t bundle_raw_len;

    /* the line being parsed: where it is in the text, and a NUL-terminated copy */
    size_t line_no;
    const char *raw;
    size_t raw_len;
    char line[TERN_SDP_MAX_LINE + 1];

    char why[160]; /* the reason of a failure, before it is put into err */
    char *err;
    size_t errcap;
} parser_t;

/* ---- errors ---- */

/* Quote a line for an error: printable ASCII only, ice-pwd values hidden, at most
   ERR_QUOTE_MAX bytes. */
static void quote_line(const char *raw, size_t len, char *out, size_t cap)
{
    static const char pwd[] = "a=ice-pwd:";
    size_t shown = len;
    const char *suffix = "";
    if (len >= sizeof pwd - 1 && memcmp(raw, pwd, sizeof pwd - 1) == 0) {
        shown = sizeof pwd - 1;
        suffix = "<hidden>";
    } else if (len > ERR_QUOTE_MAX) {
        shown = ERR_QUOTE_MAX;
        suffix = "...";
    }
    size_t n = 0;
    for (size_t i = 0; i < shown && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)raw[i];
        out[n++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    out[n] = '\0';
    snprintf(out + n, cap - n, "%s", suffix);
}

/* Write "line N: <why>: <line>" (or "<why>" when line_no is 0) for the caller. */
static int fail_at(parser_t *p, size_t line_no, const char *raw, size_t raw_len)
{
    if (!p->err || p->errcap == 0)
        return TERN_ERR_PARSE;
    if (line_no == 0) {
        snprintf(p->err, p->errcap, "%s", p->why);
        return TERN_ERR_PARSE;
    }
    char quoted[ERR_QUOTE_MAX + 16];
    quote_line(raw, raw_len, quoted, sizeof quoted);
    snprintf(p->err, p->errcap, "line %zu: %s: %s", line_no, p->why, quoted);
    return TERN_ERR_PARSE;
}

/* Fail on the current line, or on the whole text, with a printf-formatted reason. Macros, so
   that the compiler checks each format against its arguments. */
#define FAIL(p, ...)                                                                               \
    (snprintf((p)->why, sizeof(p)->why, __VA_ARGS__),                                              \
     fail_at((p), (p)->line_no, (p)->raw, (p)->raw_len))
#define FAIL_TEXT(p, ...)                                                                          \
    (snprintf((p)->why, sizeof(p)->why, __VA_ARGS__), fail_at((p), 0, NULL, 0))

/* ---- small lexical helpers ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 8866 §9 token-char. */
static bool is_token_char(char ch)
{
    unsigned char c = (unsigned char)ch;
    return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2a || c == 0x2b || c == 0x2d ||
           c == 0x2e || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) ||
           (c >= 0x5e && c <= 0x7e);
}

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!is_token_char(*s))
            return false;
    return true;
}

/* RFC 8839 §5.4 ice-char: ALPHA / DIGIT / "+" / "/". */
static bool is_ice_chars(const char *s)
{
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/';
        if (!ok)
            return false;
    }
    return true;
}

/* Cut the next space-separated token out of *s (NUL-terminating it); NULL if none is left. */
static char *cut_token(char **s)
{
    char *t = *s;
    while (is_space(*t))
        t++;
    if (!*t) {
        *s = t;
        return NULL;
    }
    char *e = t;
    while (*e && !is_space(*e))
        e++;
    if (*e)
        *e++ = '\0';
    *s = e;
    return t;
}

/* What is left of *s after leading spaces. */
static char *skip_blanks(char *s)
{
    while (is_space(*s))
        s++;
    return s;
}

/* A decimal number of 1 to 20 digits without sign; false on overflow. */
static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_u16(const char *s, uint16_t *out)
{
    uint64_t v;
    if (!parse_u64(s, &v) || v > UINT16_MAX)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* Copy a value into a fixed field, refusing what does not fit (no silent truncation). */
static int copy_field(parser_t *p, char *dst, size_t cap, const char *src, const char *what)
{
    size_t len = strlen(src);
    if (len >= cap)
        return FAIL(p, "%s longer than %zu characters", what, cap - 1);
    memcpy(dst, src, len + 1);
    return TERN_OK;
}

/* ---- v=, o=, s=, m=, c= ---- */

/* The level a line applies to: the current section, or the session-level defaults. */
static tern_sdp_media_t *find_level(parser_t *p)
{
    return p->media ? p->media : &p->session;
}

static int parse_origin(parser_t *p, char *value)
{
    if (p->media)
        return FAIL(p, "o= line inside a media section");
    if (p->seen_o)
        return FAIL(p, "second o= line");
    /* o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address> */
    char *tok[6];
    for (size_t i = 0; i < 6; i++)
        if (!(tok[i] = cut_token(&value)))
            return FAIL(p, "o= line with fewer than 6 fields");
    if (*skip_blanks(value))
        return FAIL(p, "o= line with more than 6 fields");
    if (!parse_u64(tok[1], &p->sdp->session_id))
        return FAIL(p, "o= session id is not a number");
    if (!parse_u64(tok[2], &p->sdp->session_version))
        return FAIL(p, "o= session version is not a number");
    int ret = copy_field(p, p->sdp->origin_user, sizeof p->sdp->origin_user, tok[0], "o= username");
    if (ret)
        return ret;
    p->seen_o = true;
    return TERN_OK;
}

static int parse_session_name(parser_t *p, char *value)
{
    if (p->media)
        return TERN_OK; /* misplaced: tolerated, as unknown lines are */
    return copy_field(p, p->sdp->session_name, sizeof p->sdp->session_name, value, "s= value");
}

static int parse_port(parser_t *p, char *text, uint16_t *port)
{
    /* <port>[/<number of ports>] (RFC 8866 §5.14); the count is accepted and dropped. */
    char *slash = strchr(text, '/');
    uint64_t count;
    if (slash) {
        *slash = '\0';
        if (!parse_u64(slash + 1, &count))
            return FAIL(p, "m= port count is not a number");
    }
    if (!parse_u16(text, port))
        return FAIL(p, "m= port is not a number from 0 to 65535");
    return TERN_OK;
}

static bool is_proto(const char *s)
{
    /* proto = token *("/" token) (RFC 8866 §9) */
    if (!*s || *s == '/')
        return false;
    for (; *s; s++) {
        if (*s == '/') {
            if (s[1] == '/' || s[1] == '\0')
                return false;
        } else if (!is_token_char(*s)) {
            return false;
        }
    }
    return true;
}

static int parse_media(parser_t *p, char *value)
{
    if (p->sdp->media_count >= TERN_SDP_MAX_MEDIA)
        return FAIL(p, "more than %d m= sections", TERN_SDP_MAX_MEDIA);
    /* m=<media> <port>[/<number of ports>] <proto> <fmt> ... */
    char *kind = cut_token(&value);
    char *port_text = cut_token(&value);
    char *proto = cut_token(&value);
    char *fmt = skip_blanks(value);
    if (!kind || !port_text || !proto || !*fmt)
        return FAIL(p, "m= line needs media, port, proto and fmt");
    if (!is_token(kind))
        return FAIL(p, "m= media is not a token");
    if (!is_proto(proto))
        return FAIL(p, "m= proto is not a token list");
    uint16_t port;
    int ret = parse_port(p, port_text, &port);
    if (ret)
        return ret;
    tern_sdp_media_t m = {.port = port};
    if ((ret = copy_field(p, m.kind, sizeof m.kind, kind, "m= media")) ||
        (ret = copy_field(p, m.proto, sizeof m.proto, proto, "m= proto")) ||
        (ret = copy_field(p, m.fmt, sizeof m.fmt, fmt, "m= fmt list")))
        return ret;
    tern_sdp_media_t *added;
    ret = tern_sdp_add_media(p->ctx, p->sdp, &added);
    if (ret)
        return ret;
    *added = m;
    p->media = added;
    p->seen_sctp_port = p->seen_sctpmap = p->seen_max_message_size = false;
    return TERN_OK;
}

static int parse_connection(parser_t *p, char *value)
{
    /* c=<nettype> <addrtype> <connection-address>[/ttl][/count] (RFC 8866 §5.7) */
    tern_sdp_media_t *m = find_level(p);
    char *nettype = cut_token(&value);
    char *addrtype = cut_token(&value);
    char *addr = cut_token(&value);
    if (!nettype || !addrtype || !addr || *skip_blanks(value))
        return FAIL(p, "c= line needs nettype, addrtype and address");
    char *slash = strchr(addr, '/');
    if (slash)
        *slash = '\0';
    if (!*addr)
        return FAIL(p, "c= address is empty");
    if (m->connection_addr[0])
        return TERN_OK; /* a second c= (multicast, RFC 8866 §5.7): the first one is kept */
    return copy_field(p, m->connection_addr, sizeof m->connection_addr, addr, "c= address");
}

/* ---- attributes ---- */

static int parse_attr_ice_cred(parser_t *p, const char *value, bool pwd)
{
    tern_sdp_media_t *m = find_level(p);
    char *dst = pwd ? m->ice_pwd : m->ice_ufrag;
    size_t cap = pwd ? sizeof m->ice_pwd : sizeof m->ice_ufrag;
    const char *what = pwd ? "a=ice-pwd" : "a=ice-ufrag";
    if (!value || !*value)
        return FAIL(p, "%s without value", what);
    if (dst[0])
        return FAIL(p, "second %s at this level", what);
    if (!is_ice_chars(value))
        return FAIL(p, "%s has a character that is not an ice-char", what);
    return copy_field(p, dst, cap, value, what);
}

static int parse_attr_ice_options(parser_t *p, char *value)
{
    if (!value)
        return FAIL(p, "a=ice-options without value");
    char *opt;
    while ((opt = cut_token(&value)) != NULL)
        if (strcmp(opt, "trickle") == 0)
            find_level(p)->ice_trickle = true;
    return TERN_OK;
}

static int parse_attr_fingerprint(parser_t *p, char *value)
{
    tern_sdp_media_t *m = find_level(p);
    /* a=fingerprint:<hash-func> <fingerprint> (RFC 8122 §5) */
    char *alg = value ? cut_token(&value) : NULL;
    char *fp = alg ? cut_token(&value) : NULL;
    if (!alg || !fp || *skip_blanks(value))
        return FAIL(p, "a=fingerprint needs a hash function and a fingerprint");
    if (!is_token(alg))
        return FAIL(p, "a=fingerprint hash function is not a token");
    uint8_t bytes[FP_MAX_BYTES];
    if (tern_hex_colon_decode(fp, strlen(fp), bytes, sizeof bytes) <= 0)
        return FAIL(p, "a=fingerprint is not colon-separated hex of at most %d bytes",
                    FP_MAX_BYTES);
    if (m->fingerprint[0])
        return TERN_OK; /* the first one wins (see sdp.h) */
    char alg_low[TERN_SDP_FP_ALG_SIZE];
    int ret = copy_field(p, alg_low, sizeof alg_low, alg, "a=fingerprint hash function");
    if (ret)
        return ret;
    /* Hash function names are compared without case (RFC 8122 §5 refers to RFC 3279's
       textual names); the model keeps them lowercase and the hex uppercase, as written. */
    for (char *c = alg_low; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    if ((ret = copy_field(p, m->fingerprint, sizeof m->fingerprint, fp, "a=fingerprint")))
        return ret;
    for (char *c = m->fingerprint; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    memcpy(m->fingerprint_alg, alg_low, sizeof alg_low);
    return TERN_OK;
}

static int parse_attr_setup(parser_t *p, const char *value)
{
    tern_sdp_media_t *m = find_level(p);
    tern_sdp_setup_t setup;
    if (!value)
        return FAIL(p, "a=setup without value");
    if (strcmp(value, "actpass") == 0)
        setup = TERN_SDP_SETUP_ACTPASS;
    else if (strcmp(value, "active") == 0)
        setup = TERN_SDP_SETUP_ACTIVE;
    else if (strcmp(value, "passive") == 0)
        setup = TERN_SDP_SETUP_PASSIVE;
    else
        return FAIL(p, "a=setup is not actpass, active or passive");
    if (m->setup != TERN_SDP_SETUP_NONE)
        return FAIL(p, "second a=setup at this level");
    m->setup = setup;
    return TERN_OK;
}

static int parse_attr_direction(parser_t *p, tern_sdp_direction_t dir)
{
    tern_sdp_media_t *m = find_level(p);
    if (m->direction != TERN_SDP_DIR_NONE && m->direction != dir)
        return FAIL(p, "two different directions at this level");
    m->direction = dir;
    return TERN_OK;
}

static int check_mid(parser_t *p, const char *mid, const char *what)
{
    if (!is_token(mid))
        return FAIL(p, "%s is not a token", what);
    if (strlen(mid) >= TERN_SDP_MID_SIZE)
        return FAIL(p, "%s longer than %d characters", what, TERN_SDP_MID_SIZE - 1);
    return TERN_OK;
}

static int parse_attr_mid(parser_t *p, const char *value)
{
    if (!p->media)
        return TERN_OK; /* a=mid is media-level (RFC 5888 §4); tolerated and dropped */
    if (!value)
        return FAIL(p, "a=mid without value");
    int ret = check_mid(p, value, "a=mid");
    if (ret)
        return ret;
    if (p->media->mid[0])
        return FAIL(p, "second a=mid in one section");
    if (tern_sdp_find_mid(p->sdp, value))
        return FAIL(p, "mid \"%s\" used by two sections", value);
    memcpy(p->media->mid, value, strlen(value) + 1);
    return TERN_OK;
}

static int parse_attr_candidate(parser_t *p, char *value)
{
    if (!p->media)
        return TERN_OK; /* media-level only (RFC 8839 §5.1) */
    if (!value || !*value)
        return FAIL(p, "a=candidate without value");
    value[-1] = ':'; /* put back what parse_attribute cut, to keep the line verbatim */
    if (p->media->candidate_count >= TERN_SDP_MAX_CANDIDATES)
        return FAIL(p, "more than %d candidates in one section", TERN_SDP_MAX_CANDIDATES);
    int ret = tern_sdp_media_add_candidate(p->ctx, p->media, p->line + 2);
    if (ret == TERN_ERR_NOMEM)
        return ret;
    if (ret)
        return FAIL(p, "a=candidate refused");
    return TERN_OK;
}

static int parse_attr_sctp_port(parser_t *p, const char *value)
{
    if (!p->media)
        return TERN_OK;
    uint16_t port;
    if (!value || !parse_u16(value, &port) || port == 0)
        return FAIL(p, "a=sctp-port is not a number from 1 to 65535");
    if (p->seen_sctp_port)
        return FAIL(p, "second a=sctp-port in one section");
    p->seen_sctp_port = true;
    p->media->sctp_port = port; /* a=sctp-port wins over a=sctpmap */
    return TERN_OK;
}

static int parse_attr_sctpmap(parser_t *p, char *value)
{
    if (!p->media)
        return TERN_OK;
    /* a=sctpmap:<number> <app> [<streams>] (draft-ietf-mmusic-sctp-sdp-05), as Chromium
       still answers an old-form offer and aiortc offers it. */
    char *number = value ? cut_token(&value) : NULL;
    char *app = number ? cut_token(&value) : NULL;
    char *streams = app ? cut_token(&value) : NULL;
    uint16_t port, count = 0;
    if (!number || !app)
        return FAIL(p, "a=sctpmap needs a port and an application");
    if (!parse_u16(number, &port) || port == 0)
        return FAIL(p, "a=sctpmap port is not a number from 1 to 65535");
    if (streams && !parse_u16(streams, &count))
        return FAIL(p, "a=sctpmap stream count is not a number up to 65535");
    if (p->seen_sctpmap)
        return FAIL(p, "second a=sctpmap in one section");
    p->seen_sctpmap = true;
    p->media->sctpmap_streams = count;
    if (!p->seen_sctp_port)
        p->media->sctp_port = port;
    return TERN_OK;
}

static int parse_attr_max_message_size(parser_t *p, const char *value)
{
    if (!p->media)
        return TERN_OK;
    uint64_t size;
    if (!value || !parse_u64(value, &size))
        return FAIL(p, "a=max-message-size is not a number");
    if (p->seen_max_message_size)
        return FAIL(p, "second a=max-message-size in one section");
    p->seen_max_message_size = true;
    p->media->has_max_message_size = true;
    p->media->max_message_size = size;
    return TERN_OK;
}

static int parse_attr_group(parser_t *p, char *value)
{
    if (p->media || !value)
        return TERN_OK; /* session-level only (RFC 5888 §5) */
    char *semantics = cut_token(&value);
    if (!semantics || strcmp(semantics, "BUNDLE") != 0 || p->seen_bundle)
        return TERN_OK; /* other groups, and a second BUNDLE group, are ignored (see sdp.h) */
    tern_sdp_t *sdp = p->sdp;
    char *mid;
    while ((mid = cut_token(&value)) != NULL) {
        int ret = check_mid(p, mid, "a=group:BUNDLE mid");
        if (ret)
            return ret;
        if (sdp->bundle_count >= TERN_SDP_MAX_MEDIA)
            return FAIL(p, "BUNDLE group of more than %d mids", TERN_SDP_MAX_MEDIA);
        if (tern_sdp_in_bundle(sdp, mid))
            return FAIL(p, "mid \"%s\" twice in the BUNDLE group", mid);
        memcpy(sdp->bundle_mids[sdp->bundle_count++], mid, strlen(mid) + 1);
    }
    p->seen_bundle = true;
    p->bundle_line_no = p->line_no;
    p->bundle_raw = p->raw;
    p->bundle_raw_len = p->raw_len;
    return TERN_OK;
}

static int set_flag(bool *flag)
{
    *flag = true;
    return TERN_OK;
}

static int parse_attribute(parser_t *p, char *text)
{
    /* a=<name> or a=<name>:<value> (RFC 8866 §5.13) */
    char *value = strchr(text, ':');
    if (value)
        *value++ = '\0';
    const char *name = text;
    if (!*name)
        return FAIL(p, "a= line without attribute name");
    if (strcmp(name, "candidate") == 0)
        return parse_attr_candidate(p, value);
    if (strcmp(name, "ice-ufrag") == 0)
        return parse_attr_ice_cred(p, value, false);
    if (strcmp(name, "ice-pwd") == 0)
        return parse_attr_ice_cred(p, value, true);
    if (strcmp(name, "ice-options") == 0)
        return parse_attr_ice_options(p, value);
    if (strcmp(name, "ice-lite") == 0)
        return p->media ? TERN_OK : set_flag(&p->sdp->ice_lite);
    if (strcmp(name, "end-of-candidates") == 0)
        return set_flag(&find_level(p)->end_of_candidates);
    if (strcmp(name, "fingerprint") == 0)
        return parse_attr_fingerprint(p, value);
    if (strcmp(name, "setup") == 0)
        return parse_attr_setup(p, value);
    if (strcmp(name, "mid") == 0)
        return parse_attr_mid(p, value);
    if (strcmp(name, "group") == 0)
        return parse_attr_group(p, value);
    if (strcmp(name, "sctp-port") == 0)
        return parse_attr_sctp_port(p, value);
    if (strcmp(name, "sctpmap") == 0)
        return parse_attr_sctpmap(p, value);
    if (strcmp(name, "max-message-size") == 0)
        return parse_attr_max_message_size(p, value);
    if (strcmp(name, "bundle-only") == 0)
        return p->media ? set_flag(&p->media->bundle_only) : TERN_OK;
    if (strcmp(name, "rtcp-mux") == 0)
        return p->media ? set_flag(&p->media->rtcp_mux) : TERN_OK;
    if (strcmp(name, "sendrecv") == 0)
        return parse_attr_direction(p, TERN_SDP_DIR_SENDRECV);
    if (strcmp(name, "sendonly") == 0)
        return parse_attr_direction(p, TERN_SDP_DIR_SENDONLY);
    if (strcmp(name, "recvonly") == 0)
        return parse_attr_direction(p, TERN_SDP_DIR_RECVONLY);
    if (strcmp(name, "inactive") == 0)
        return parse_attr_direction(p, TERN_SDP_DIR_INACTIVE);
    return TERN_OK; /* unknown attributes are ignored (RFC 8866 §5.13) */
}

/* ---- lines ---- */

static bool is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int check_bytes(parser_t *p, const char *s, size_t n)
{
    if (n > TERN_SDP_MAX_LINE)
        return FAIL(p, "line longer than %d bytes", TERN_SDP_MAX_LINE);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t')
            return FAIL(p, "control byte 0x%02x at column %zu", c, i + 1);
    }
    return TERN_OK;
}

static int parse_line(parser_t *p, const char *s, size_t n)
{
    int ret = check_bytes(p, s, n);
    if (ret)
        return ret;
    while (n > 0 && is_space(s[n - 1]))
        n--; /* trailing blanks are a common artefact of copy and paste; drop them */
    if (n == 0)
        return TERN_OK; /* empty lines are tolerated */
    memcpy(p->line, s, n);
    p->line[n] = '\0';
    char *line = p->line;
    if (!p->seen_v) {
        /* RFC 8866 §5: an SDP starts with v=0, the only version there is (§5.1). */
        if (strcmp(line, "v=0") != 0)
            return FAIL(p, "the first line must be v=0");
        p->seen_v = true;
        return TERN_OK;
    }
    char *eq = strchr(line, '=');
    if (!eq)
        return FAIL(p, "line without '='");
    if (eq != line + 1 || !is_letter(line[0]))
        return FAIL(p, "line type is not one letter");
    char *value = line + 2;
    switch (line[0]) {
    case 'v':
        return FAIL(p, "second v= line");
    case 'o':
        return parse_origin(p, value);
    case 's':
        return parse_session_name(p, value);
    case 'm':
        return parse_media(p, value);
    case 'c':
        return parse_connection(p, value);
    case 'a':
        return parse_attribute(p, value);
    default:
        return TERN_OK; /* t=, b=, i=, k=, ... and unknown types are skipped (RFC 8866 §5) */
    }
}

/* ---- the end: checks across lines, inheritance ---- */

static void inherit(tern_sdp_media_t *m, const tern_sdp_media_t *s)
{
    if (!m->ice_ufrag[0])
        memcpy(m->ice_ufrag, s->ice_ufrag, sizeof m->ice_ufrag);
    if (!m->ice_pwd[0])
        memcpy(m->ice_pwd, s->ice_pwd, sizeof m->ice_pwd);
    if (!m->fingerprint[0]) {
        memcpy(m->fingerprint_alg, s->fingerprint_alg, sizeof m->fingerprint_alg);
        memcpy(m->fingerprint, s->fingerprint, sizeof m->fingerprint);
    }
    if (m->setup == TERN_SDP_SETUP_NONE)
        m->setup = s->setup;
    if (m->direction == TERN_SDP_DIR_NONE)
        m->direction = s->direction;
    if (!m->connection_addr[0])
        memcpy(m->connection_addr, s->connection_addr, sizeof m->connection_addr);
    m->ice_trickle = m->ice_trickle || s->ice_trickle;
    m->end_of_candidates = m->end_of_candidates || s->end_of_candidates;
}

static void fill_old_sctp_port(tern_sdp_media_t *m)
{
    /* The old form names the SCTP port in the fmt of "m=application 9 DTLS/SCTP 5000"
       (draft-ietf-mmusic-sctp-sdp-05); a=sctpmap or a=sctp-port, if present, already did. */
    uint16_t port;
    if (m->sctp_port == 0 && strcmp(m->proto, "DTLS/SCTP") == 0 && parse_u16(m->fmt, &port))
        m->sctp_port = port;
}

static int finish(parser_t *p)
{
    tern_sdp_t *sdp = p->sdp;
    if (!p->seen_v)
        return FAIL_TEXT(p, "empty SDP: no v=0 line");
    if (!p->seen_o)
        return FAIL_TEXT(p, "no o= line");
    for (size_t i = 0; i < sdp->bundle_count; i++) {
        if (!tern_sdp_find_mid(sdp, sdp->bundle_mids[i])) {
            p->line_no = p->bundle_line_no;
            p->raw = p->bundle_raw;
            p->raw_len = p->bundle_raw_len;
            return FAIL(p, "BUNDLE names mid \"%s\" of no section", sdp->bundle_mids[i]);
        }
    }
    for (size_t i = 0; i < sdp->media_count; i++) {
        inherit(&sdp->media[i], &p->session);
        fill_old_sctp_port(&sdp->media[i]);
    }
    return TERN_OK;
}

static int parse_text(parser_t *p, const char *text, size_t len)
{
    const char *s = text, *end = text + len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *line_end = nl ? nl : end;
        size_t n = (size_t)(line_end - s);
        if (n > 0 && s[n - 1] == '\r')
            n--;
        p->line_no++;
        p->raw = s;
        p->raw_len = n;
        int ret = parse_line(p, s, n);
        if (ret)
            return ret;
        s = nl ? nl + 1 : end;
    }
    return finish(p);
}

int tern_sdp_parse(tern_ctx_t *ctx, const char *text, size_t len, tern_sdp_t **out, char *err,
                   size_t errcap)
{
    if (err && errcap)
        err[0] = '\0';
    if (!ctx || !text || !out)
        return TERN_ERR_INVALID_ARG;
    parser_t *p = tern_calloc(ctx, 1, sizeof *p);
    if (!p)
        return TERN_ERR_NOMEM;
    p->ctx = ctx;
    p->err = err;
    p->errcap = errcap;
    int ret;
    if (len > TERN_SDP_MAX_TEXT) {
        ret = FAIL_TEXT(p, "SDP longer than %d bytes", TERN_SDP_MAX_TEXT);
        goto out;
    }
    if ((ret = tern_sdp_new(ctx, &p->sdp)) != 0)
        goto out;
    ret = parse_text(p, text, len);
out:
    if (ret == TERN_OK) {
        *out = p->sdp;
    } else {
        tern_sdp_free(ctx, p->sdp);
        if (ret != TERN_ERR_PARSE && err && errcap)
            err[0] = '\0';
    }
    /* The parser's copies of lines and session-level values may hold an ice-pwd. */
    tern_free_secret(ctx, p, sizeof *p);
    return ret;
}
