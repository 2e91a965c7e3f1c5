/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of sdp/: every browser capture in tests/data/sdp parses and gives the right facts
 * (ICE credentials, fingerprint, setup, SCTP port, max-message-size, mids, BUNDLE, candidates);
 * parse -> write -> parse keeps the model; the old DTLS/SCTP + a=sctpmap form; session-level
 * attributes; malformed input refused with the line named; every limit; the writer's output and
 * its refusal of unsafe models; and an allocation-failure sweep over parse and write.
 */
#include "check.h"
#include "guard.h"
#include "sdp/sdp.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tern_ctx_t ctx;

/* ---- helpers ---- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(buf, cap + 1);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *read_data(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/sdp/%s", TERN_TEST_DATA, name);
    return read_file(path, len);
}

/* Parse text placed against a guard page, so that a read past its end faults. */
static int parse_guarded(const char *text, size_t len, tern_sdp_t **out, char *err, size_t cap)
{
    guarded_t g;
    const char *p = (const char *)guard_copy(&g, text, len);
    if (!p)
        return TERN_ERR_NOMEM;
    int ret = tern_sdp_parse(&ctx, p, len, out, err, cap);
    guard_free(&g);
    return ret;
}

static int parse_str(const char *text, tern_sdp_t **out, char *err, size_t cap)
{
    return parse_guarded(text, strlen(text), out, err, cap);
}

/* Is a model the same after a write and a parse? (What tern_sdp_write promises.) */
static bool same_media(const tern_sdp_media_t *a, const tern_sdp_media_t *b)
{
    bool same =
        strcmp(a->kind, b->kind) == 0 && a->port == b->port && strcmp(a->proto, b->proto) == 0 &&
        strcmp(a->fmt, b->fmt) == 0 && strcmp(a->mid, b->mid) == 0 &&
        strcmp(a->connection_addr[0] ? a->connection_addr : "0.0.0.0", b->connection_addr) == 0;
    if (!same || tern_sdp_media_is_rejected(a))
        return same;
    same = strcmp(a->ice_ufrag, b->ice_ufrag) == 0 && strcmp(a->ice_pwd, b->ice_pwd) == 0 &&
           a->ice_trickle == b->ice_trickle && a->end_of_candidates == b->end_of_candidates &&
           strcmp(a->fingerprint_alg, b->fingerprint_alg) == 0 &&
           strcmp(a->fingerprint, b->fingerprint) == 0 && a->setup == b->setup &&
           a->sctp_port == b->sctp_port && a->sctpmap_streams == b->sctpmap_streams &&
           a->has_max_message_size == b->has_max_message_size &&
           a->max_message_size == b->max_message_size && a->bundle_only == b->bundle_only &&
           a->rtcp_mux == b->rtcp_mux && a->direction == b->direction &&
           a->candidate_count == b->candidate_count;
    for (size_t i = 0; same && i < a->candidate_count; i++)
        same = strcmp(a->candidates[i], b->candidates[i]) == 0;
    return same;
}

static bool same_sdp(const tern_sdp_t *a, const tern_sdp_t *b)
{
    if (strcmp(a->origin_user[0] ? a->origin_user : "-", b->origin_user) != 0 ||
        a->session_id != b->session_id || a->session_version != b->session_version ||
        strcmp(a->session_name[0] ? a->session_name : "-", b->session_name) != 0 ||
        a->ice_lite != b->ice_lite || a->bundle_count != b->bundle_count ||
        a->media_count != b->media_count)
        return false;
    for (size_t i = 0; i < a->bundle_count; i++)
        if (strcmp(a->bundle_mids[i], b->bundle_mids[i]) != 0)
            return false;
    for (size_t i = 0; i < a->media_count; i++)
        if (!same_media(&a->media[i], &b->media[i]))
            return false;
    return true;
}

/* Write, parse again, compare; and write again: the text must be a fixed point. */
static bool round_trip(const tern_sdp_t *sdp)
{
    char *text = NULL, *again = NULL, err[256];
    tern_sdp_t *back = NULL;
    bool good = tern_sdp_write(&ctx, sdp, &text) == TERN_OK;
    good = good && parse_str(text, &back, err, sizeof err) == TERN_OK;
    if (text && !good)
        printf("# round trip failed: %s\n%s", err, text);
    good = good && same_sdp(sdp, back);
    good = good && tern_sdp_write(&ctx, back, &again) == TERN_OK && strcmp(text, again) == 0;
    tern_free(&ctx, text);
    tern_free(&ctx, again);
    tern_sdp_free(&ctx, back);
    return good;
}

/* Parse and expect TERN_ERR_PARSE with an error that contains want. */
static void expect_error(const char *text, const char *want)
{
    tern_sdp_t *sdp = (tern_sdp_t *)&ctx; /* must stay untouched */
    char err[256] = "x";
    int ret = parse_str(text, &sdp, err, sizeof err);
    eq_int(ret, TERN_ERR_PARSE);
    ok(sdp == (tern_sdp_t *)&ctx);
    if (!ok(strstr(err, want) != NULL))
        printf("#   error \"%s\" lacks \"%s\"\n", err, want);
    if (ret == TERN_OK && sdp != (tern_sdp_t *)&ctx)
        tern_sdp_free(&ctx, sdp);
}

static tern_sdp_t *parse_ok(const char *text)
{
    tern_sdp_t *sdp = NULL;
    char err[256] = "";
    int ret = parse_str(text, &sdp, err, sizeof err);
    eq_int(ret, TERN_OK);
    if (ret)
        printf("#   %s\n", err);
    return ret ? NULL : sdp;
}

/* ---- browser captures ---- */

typedef struct facts {
    const char *file;
    size_t media_count, dc_index;
    const char *ufrag, *pwd, *fp_head, *fp_tail;
    tern_sdp_setup_t setup;
    unsigned sctp_port;
    uint64_t max_message_size; /* 0: absent in these captures */
    size_t candidates;         /* in the data-channel section */
    bool end_of_candidates;
    const char *bundle;
} facts_t;

/* Read off the captures by hand (and a throwaway script), not by this parser. */
static const facts_t browser_facts[] = {
    {"chromium-answer-av-datachannel-gathered.sdp", 3, 2, "ZZgm", "31N3LdA836mDAbGyuxQ4XdKo",
     "0D:11:C3", "3A:FB", TERN_SDP_SETUP_ACTIVE, 5000, 262144, 0, false, "0 1 2"},
    {"chromium-answer-av-datachannel.sdp", 3, 2, "ZZgm", "31N3LdA836mDAbGyuxQ4XdKo", "0D:11:C3",
     "3A:FB", TERN_SDP_SETUP_ACTIVE, 5000, 262144, 0, false, "0 1 2"},
    {"chromium-answer-datachannel-gathered.sdp", 1, 0, "nKqY", "f4Zi1sLTB9mgCUykwgizlbGm",
     "FE:3B:7E", "A0:89", TERN_SDP_SETUP_ACTIVE, 5000, 262144, 1, false, "0"},
    {"chromium-answer-datachannel.sdp", 1, 0, "nKqY", "f4Zi1sLTB9mgCUykwgizlbGm", "FE:3B:7E",
     "A0:89", TERN_SDP_SETUP_ACTIVE, 5000, 262144, 0, false, "0"},
    {"chromium-answer-to-aiortc-datachannel-gathered.sdp", 1, 0, "07Uq", "wsqSrjgAYfhfuzCHEnBpT93A",
     "FE:BD:40", "4F:0C", TERN_SDP_SETUP_ACTIVE, 5000, 0, 1, false, "0"},
    {"chromium-answer-to-aiortc-datachannel.sdp", 1, 0, "07Uq", "wsqSrjgAYfhfuzCHEnBpT93A",
     "FE:BD:40", "4F:0C", TERN_SDP_SETUP_ACTIVE, 5000, 0, 0, false, "0"},
    {"chromium-answer-to-firefox-datachannel-gathered.sdp", 1, 0, "Uem2",
     "9l3orHs4D94UWqr4oafOJvqc", "16:A2:27", "A5:E5", TERN_SDP_SETUP_ACTIVE, 5000, 262144, 1, false,
     "0"},
    {"chromium-answer-to-firefox-datachannel.sdp", 1, 0, "Uem2", "9l3orHs4D94UWqr4oafOJvqc",
     "16:A2:27", "A5:E5", TERN_SDP_SETUP_ACTIVE, 5000, 262144, 0, false, "0"},
    {"chromium-offer-av-datachannel-gathered.sdp", 3, 2, "2AM3", "gwN6v9BXnT/CcCG2w0vwGsc6",
     "41:20:E0", "99:16", TERN_SDP_SETUP_ACTPASS, 5000, 262144, 1, false, "0 1 2"},
    {"chromium-offer-av-datachannel.sdp", 3, 2, "2AM3", "gwN6v9BXnT/CcCG2w0vwGsc6", "41:20:E0",
     "99:16", TERN_SDP_SETUP_ACTPASS, 5000, 262144, 0, false, "0 1 2"},
    {"chromium-offer-datachannel-gathered.sdp", 1, 0, "XjsS", "cDN0GjE8L6H8zlwVdOhqNRJL",
     "72:22:38", "45:90", TERN_SDP_SETUP_ACTPASS, 5000, 262144, 1, false, "0"},
    {"chromium-offer-datachannel-mdns-gathered.sdp", 1, 0, "NtMH", "Go7ONHGNvjwGmOIuO4Sk37gf",
     "BA:3D:DC", "FB:54", TERN_SDP_SETUP_ACTPASS, 5000, 262144, 2, false, "0"},
    {"chromium-offer-datachannel-mdns.sdp", 1, 0, "NtMH", "Go7ONHGNvjwGmOIuO4Sk37gf", "BA:3D:DC",
     "FB:54", TERN_SDP_SETUP_ACTPASS, 5000, 262144, 0, false, "0"},
    {"chromium-offer-datachannel.sdp", 1, 0, "XjsS", "cDN0GjE8L6H8zlwVdOhqNRJL", "72:22:38",
     "45:90", TERN_SDP_SETUP_ACTPASS, 5000, 262144, 0, false, "0"},
    {"firefox-answer-av-datachannel-gathered.sdp", 3, 2, "9879dc23",
     "e07b56c8109d177e53b331f51c593863", "67:E6:D4", "9D:48", TERN_SDP_SETUP_ACTIVE, 5000,
     1073741823, 0, false, "0 1 2"},
    {"firefox-answer-av-datachannel.sdp", 3, 2, "9879dc23", "e07b56c8109d177e53b331f51c593863",
     "67:E6:D4", "9D:48", TERN_SDP_SETUP_ACTIVE, 5000, 1073741823, 0, false, "0 1 2"},
    {"firefox-answer-datachannel-gathered.sdp", 1, 0, "968d52d5",
     "262c8c7af7ef5019f8cc06faa93c2cb9", "4C:C1:73", "82:D1", TERN_SDP_SETUP_ACTIVE, 5000,
     1073741823, 4, true, "0"},
    {"firefox-answer-datachannel.sdp", 1, 0, "968d52d5", "262c8c7af7ef5019f8cc06faa93c2cb9",
     "4C:C1:73", "82:D1", TERN_SDP_SETUP_ACTIVE, 5000, 1073741823, 0, false, "0"},
    {"firefox-answer-to-aiortc-datachannel-gathered.sdp", 1, 0, "ac982800",
     "fa828765e646c87f071676626bf9783d", "D4:00:7B", "2D:02", TERN_SDP_SETUP_ACTIVE, 5000,
     1073741823, 4, true, "0"},
    {"firefox-answer-to-aiortc-datachannel.sdp", 1, 0, "ac982800",
     "fa828765e646c87f071676626bf9783d", "D4:00:7B", "2D:02", TERN_SDP_SETUP_ACTIVE, 5000,
     1073741823, 0, false, "0"},
    {"firefox-answer-to-chromium-datachannel-gathered.sdp", 1, 0, "b14d5bdd",
     "8359375611aad93842b455c6b25a0e6d", "4F:B5:AE", "3C:EE", TERN_SDP_SETUP_ACTIVE, 5000,
     1073741823, 4, true, "0"},
    {"firefox-answer-to-chromium-datachannel.sdp", 1, 0, "b14d5bdd",
     "8359375611aad93842b455c6b25a0e6d", "4F:B5:AE", "3C:EE", TERN_SDP_SETUP_ACTIVE, 5000,
     1073741823, 0, false, "0"},
    {"firefox-offer-av-datachannel-gathered.sdp", 3, 2, "5a49120c",
     "4e2b1e3bad72b6177b22cc988632b1b5", "E4:A8:E0", "62:B8", TERN_SDP_SETUP_ACTPASS, 5000,
     1073741823, 4, true, "0 1 2"},
    {"firefox-offer-av-datachannel.sdp", 3, 2, "5a49120c", "4e2b1e3bad72b6177b22cc988632b1b5",
     "E4:A8:E0", "62:B8", TERN_SDP_SETUP_ACTPASS, 5000, 1073741823, 0, false, "0 1 2"},
    {"firefox-offer-datachannel-gathered.sdp", 1, 0, "46b1e8c3", "9de10f1314112fc8d5effba3416d4d50",
     "AA:6F:E4", "F1:3D", TERN_SDP_SETUP_ACTPASS, 5000, 1073741823, 4, true, "0"},
    {"firefox-offer-datachannel-mdns-gathered.sdp", 1, 0, "cd146025",
     "31a4de51e71171413b8e467c675841fa", "80:D5:6B", "40:DC", TERN_SDP_SETUP_ACTPASS, 5000,
     1073741823, 4, true, "0"},
    {"firefox-offer-datachannel-mdns.sdp", 1, 0, "cd146025", "31a4de51e71171413b8e467c675841fa",
     "80:D5:6B", "40:DC", TERN_SDP_SETUP_ACTPASS, 5000, 1073741823, 0, false, "0"},
    {"firefox-offer-datachannel.sdp", 1, 0, "46b1e8c3", "9de10f1314112fc8d5effba3416d4d50",
     "AA:6F:E4", "F1:3D", TERN_SDP_SETUP_ACTPASS, 5000, 1073741823, 0, false, "0"},
};

static void bundle_text(const tern_sdp_t *sdp, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < sdp->bundle_count; i++) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", i ? " " : "", sdp->bundle_mids[i]);
    }
}

static void check_facts(const facts_t *f)
{
    size_t len;
    char *text = read_data(f->file, &len);
    if (!ok(text != NULL)) {
        printf("#   cannot read %s\n", f->file);
        return;
    }
    tern_sdp_t *sdp = NULL;
    char err[256];
    int ret = parse_guarded(text, len, &sdp, err, sizeof err);
    if (!ok(ret == TERN_OK)) {
        printf("#   %s: %s\n", f->file, err);
        free(text);
        return;
    }
    eq_int(sdp->media_count, f->media_count);
    const tern_sdp_media_t *dc = tern_sdp_find_datachannel(sdp);
    ok(dc == &sdp->media[f->dc_index]);
    if (dc) {
        eq_str(dc->ice_ufrag, f->ufrag);
        eq_str(dc->ice_pwd, f->pwd);
        eq_str(dc->fingerprint_alg, "sha-256");
        ok(strncmp(dc->fingerprint, f->fp_head, strlen(f->fp_head)) == 0);
        eq_int(strlen(dc->fingerprint), 95);
        eq_str(dc->fingerprint + 90, f->fp_tail);
        eq_int(dc->setup, f->setup);
        eq_int(dc->sctp_port, f->sctp_port);
        eq_int(dc->has_max_message_size, f->max_message_size != 0);
        eq_int(dc->max_message_size, f->max_message_size);
        eq_int(dc->candidate_count, f->candidates);
        eq_int(dc->end_of_candidates, f->end_of_candidates);
        ok(dc->ice_trickle);
        ok(tern_sdp_in_bundle(sdp, dc->mid));
        for (size_t i = 0; i < dc->candidate_count; i++)
            ok(strncmp(dc->candidates[i], "candidate:", 10) == 0);
    }
    char mids[128];
    bundle_text(sdp, mids, sizeof mids);
    eq_str(mids, f->bundle);
    /* Every section has a mid of its own, and ICE and DTLS facts (none is rejected here). */
    for (size_t i = 0; i < sdp->media_count; i++) {
        char want[24];
        snprintf(want, sizeof want, "%zu", i);
        eq_str(sdp->media[i].mid, want);
        eq_str(sdp->media[i].ice_ufrag, f->ufrag);
        ok(sdp->media[i].fingerprint[0] != '\0');
        ok(!tern_sdp_media_is_rejected(&sdp->media[i]));
    }
    ok(round_trip(sdp));
    tern_sdp_free(&ctx, sdp);
    free(text);
}

static void test_browser_facts(void)
{
    for (size_t i = 0; i < TERN_ARRAY_LEN(browser_facts); i++)
        check_facts(&browser_facts[i]);
}

/* Every capture in the folder parses and survives a round trip, even one added later. */
static void test_browser_all(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/sdp", TERN_TEST_DATA);
    DIR *dir = opendir(path);
    if (!ok(dir != NULL))
        return;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".sdp") != 0)
            continue;
        count++;
        size_t len;
        char *text = read_data(e->d_name, &len);
        tern_sdp_t *sdp = NULL;
        char err[256];
        int ret = text ? parse_guarded(text, len, &sdp, err, sizeof err) : TERN_ERR_IO;
        if (!ok(ret == TERN_OK))
            printf("#   %s: %s\n", e->d_name, ret == TERN_ERR_PARSE ? err : "unreadable");
        if (sdp) {
            ok(tern_sdp_find_datachannel(sdp) != NULL);
            ok(round_trip(sdp));
        }
        tern_sdp_free(&ctx, sdp);
        free(text);
    }
    closedir(dir);
    eq_int(count, TERN_ARRAY_LEN(browser_facts));
}

/* The trickled candidates of the captures are what add_candidate takes. */
static void test_browser_candidates(void)
{
    static const char *files[] = {"chromium-offer-datachannel-mdns.candidates",
                                  "firefox-answer-datachannel.candidates",
                                  "chromium-answer-av-datachannel.candidates"};
    for (size_t i = 0; i < TERN_ARRAY_LEN(files); i++) {
        size_t len;
        char *text = read_data(files[i], &len);
        if (!ok(text != NULL))
            continue;
        tern_sdp_media_t m = {0};
        size_t lines = 0;
        for (char *line = strtok(text, "\r\n"); line; line = strtok(NULL, "\r\n")) {
            lines++;
            eq_int(tern_sdp_media_add_candidate(&ctx, &m, line), TERN_OK);
        }
        ok(lines > 0);
        eq_int(m.candidate_count, lines);
        for (size_t j = 0; j < m.candidate_count; j++)
            tern_free(&ctx, m.candidates[j]);
        tern_free(&ctx, m.candidates);
        free(text);
    }
}

/* LF-only line ends, and a last line without one, give the same model as CRLF. */
static void test_line_ends(void)
{
    size_t len;
    char *crlf = read_data("firefox-offer-av-datachannel-gathered.sdp", &len);
    if (!ok(crlf != NULL))
        return;
    char *lf = malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (crlf[i] != '\r')
            lf[n++] = crlf[i];
    tern_sdp_t *a = NULL, *b = NULL, *c = NULL;
    eq_int(parse_guarded(crlf, len, &a, NULL, 0), TERN_OK);
    eq_int(parse_guarded(lf, n, &b, NULL, 0), TERN_OK);
    eq_int(parse_guarded(lf, n - 1, &c, NULL, 0), TERN_OK); /* without the last "\n" */
    ok(a && b && c && same_sdp(a, b) && same_sdp(a, c));
    tern_sdp_free(&ctx, a);
    tern_sdp_free(&ctx, b);
    tern_sdp_free(&ctx, c);
    free(lf);
    free(crlf);
}

/* ---- forms and levels ---- */

#define HEAD "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
#define FP                                                                                         \
    "a=fingerprint:sha-256 "                                                                       \
    "72:22:38:7A:8F:04:C8:A2:58:FF:74:16:B3:A0:3A:B5:68:86:8B:C7:18:BF:8F:BA:9A:07:F0:A0:CC:AC:"   \
    "45:90\r\n"
#define DC_NEW "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
#define ICE "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n"

static void test_old_form(void)
{
    /* As aiortc offers and Chromium answers it: the port in fmt and a=sctpmap. */
    tern_sdp_t *sdp = parse_ok(HEAD "a=group:BUNDLE 0\r\n"
                                    "m=application 9 DTLS/SCTP 5000\r\nc=IN IP4 0.0.0.0\r\n" ICE FP
                                    "a=setup:actpass\r\na=mid:0\r\n"
                                    "a=sctpmap:5000 webrtc-datachannel 1024\r\n");
    const tern_sdp_media_t *dc = tern_sdp_find_datachannel(sdp);
    ok(dc != NULL);
    if (dc) {
        eq_str(dc->proto, "DTLS/SCTP");
        eq_str(dc->fmt, "5000");
        eq_int(dc->sctp_port, 5000);
        eq_int(dc->sctpmap_streams, 1024);
        ok(!dc->has_max_message_size);
    }
    char *text = NULL;
    eq_int(tern_sdp_write(&ctx, sdp, &text), TERN_OK);
    ok(text && strstr(text, "\r\na=sctpmap:5000 webrtc-datachannel 1024\r\n") != NULL);
    ok(text && strstr(text, "a=sctp-port") == NULL);
    tern_free(&ctx, text);
    ok(round_trip(sdp));
    tern_sdp_free(&ctx, sdp);

    /* Only the fmt names the port; the writer adds a=sctpmap without a stream count. */
    sdp = parse_ok(HEAD "m=application 9 DTLS/SCTP 5001\r\na=mid:d\r\n");
    eq_int(sdp ? sdp->media[0].sctp_port : 0, 5001);
    text = NULL;
    eq_int(tern_sdp_write(&ctx, sdp, &text), TERN_OK);
    ok(text && strstr(text, "\r\na=sctpmap:5001 webrtc-datachannel\r\n") != NULL);
    tern_free(&ctx, text);
    ok(round_trip(sdp));
    tern_sdp_free(&ctx, sdp);

    /* a=sctp-port wins over a=sctpmap, in either order. */
    sdp = parse_ok(HEAD DC_NEW "a=sctpmap:5000 webrtc-datachannel\r\na=sctp-port:6000\r\n");
    eq_int(sdp ? sdp->media[0].sctp_port : 0, 6000);
    ok(round_trip(sdp));
    tern_sdp_free(&ctx, sdp);
    sdp = parse_ok(HEAD DC_NEW "a=sctp-port:6000\r\na=sctpmap:5000 webrtc-datachannel 16\r\n");
    eq_int(sdp ? sdp->media[0].sctp_port : 0, 6000);
    eq_int(sdp ? sdp->media[0].sctpmap_streams : 0, 16);
    ok(round_trip(sdp));
    tern_sdp_free(&ctx, sdp);

    /* TCP/DTLS/SCTP is a data channel too (RFC 8841); other protos are not. */
    sdp = parse_ok(HEAD "m=application 9 TCP/DTLS/SCTP webrtc-datachannel\r\n"
                        "m=application 9 UDP/XDTLS/SCTP webrtc-datachannel\r\n"
                        "m=application 9 UDP/DTLS webrtc-datachannel\r\n"
                        "m=audio 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
    if (ok(sdp != NULL)) {
        ok(tern_sdp_media_is_datachannel(&sdp->media[0]));
        ok(!tern_sdp_media_is_datachannel(&sdp->media[1]));
        ok(!tern_sdp_media_is_datachannel(&sdp->media[2]));
        ok(!tern_sdp_media_is_datachannel(&sdp->media[3]));
    }
    tern_sdp_free(&ctx, sdp);
}

static void test_session_level(void)
{
    tern_sdp_t *sdp = parse_ok("v=0\r\n"
                               "o=mozilla...THIS_IS_SDPARTA-99.0 18446744073709551615 0 IN IP4 "
                               "0.0.0.0\r\n"
                               "s=a session name\r\n"
                               "t=0 0\r\n"
                               "a=ice-ufrag:sess\r\n"
                               "a=ice-pwd:sessionpasswordsessionpass\r\n"
                               "a=fingerprint:SHA-256 ab:cd:ef\r\n"
                               "a=setup:passive\r\n"
                               "a=ice-options:ice2 trickle\r\n"
                               "a=ice-lite\r\n"
                               "a=sendonly\r\n"
                               "a=end-of-candidates\r\n"
                               "c=IN IP6 ::1\r\n"
                               "a=group:LS a b\r\n"
                               "a=group:BUNDLE a b\r\n"
                               "a=group:BUNDLE b\r\n"
                               "a=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\n"
                               "a=mid:ignored\r\n"
                               "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
                               "a=mid:a\r\n"
                               "a=sctp-port:5001\r\n"
                               "a=max-message-size:0\r\n"
                               "m=audio 0 UDP/TLS/RTP/SAVPF 0\r\n"
                               "c=IN IP4 10.0.0.1/127\r\n"
                               "c=IN IP4 10.0.0.2\r\n"
                               "a=mid:b\r\n"
                               "a=ice-ufrag:own1\r\n"
                               "a=fingerprint:sha-1 00:11\r\n"
                               "a=fingerprint:sha-256 22:33\r\n"
                               "a=setup:active\r\n"
                               "a=recvonly\r\n"
                               "a=recvonly\r\n"
                               "a=ice-lite\r\n"
                               "a=rtcp-mux\r\n");
    if (!ok(sdp != NULL))
        return;
    eq_str(sdp->origin_user, "mozilla...THIS_IS_SDPARTA-99.0");
    ok(sdp->session_id == UINT64_MAX);
    eq_int(sdp->session_version, 0);
    eq_str(sdp->session_name, "a session name");
    ok(sdp->ice_lite);
    eq_int(sdp->bundle_count, 2);
    ok(tern_sdp_in_bundle(sdp, "a") && tern_sdp_in_bundle(sdp, "b"));
    ok(!tern_sdp_in_bundle(sdp, "ignored") && !tern_sdp_in_bundle(sdp, ""));
    eq_int(sdp->media_count, 2);
    const tern_sdp_media_t *a = tern_sdp_find_mid(sdp, "a"), *b = tern_sdp_find_mid(sdp, "b");
    ok(a == &sdp->media[0] && b == &sdp->media[1]);
    ok(tern_sdp_find_mid(sdp, "ignored") == NULL);
    eq_str(a->ice_ufrag, "sess");
    eq_str(a->ice_pwd, "sessionpasswordsessionpass");
    eq_str(a->fingerprint_alg, "sha-256");
    eq_str(a->fingerprint, "AB:CD:EF");
    eq_int(a->setup, TERN_SDP_SETUP_PASSIVE);
    ok(a->ice_trickle && a->end_of_candidates);
    eq_int(a->direction, TERN_SDP_DIR_SENDONLY);
    eq_str(a->connection_addr, "::1");
    eq_int(a->candidate_count, 0);
    eq_int(a->sctp_port, 5001);
    ok(a->has_max_message_size && a->max_message_size == 0);
    ok(!a->rtcp_mux);
    eq_str(b->ice_ufrag, "own1");
    eq_str(b->ice_pwd, "sessionpasswordsessionpass");
    eq_str(b->fingerprint_alg, "sha-1"); /* the first of the section wins */
    eq_str(b->fingerprint, "00:11");
    eq_int(b->setup, TERN_SDP_SETUP_ACTIVE);
    eq_int(b->direction, TERN_SDP_DIR_RECVONLY);
    eq_str(b->connection_addr, "10.0.0.1");
    ok(b->rtcp_mux && tern_sdp_media_is_rejected(b));
    ok(tern_sdp_find_datachannel(sdp) == a);
    ok(round_trip(sdp));

    char *text = NULL;
    eq_int(tern_sdp_write(&ctx, sdp, &text), TERN_OK);
    ok(text && strstr(text, "\r\nc=IN IP6 ::1\r\n") != NULL);
    ok(text && strstr(text, "\r\na=max-message-size:0\r\n") != NULL);
    /* The rejected section is written with m=, c= and a=mid only. */
    ok(text &&
       strstr(text, "m=audio 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 10.0.0.1\r\na=mid:b\r\n") != NULL);
    ok(text && strstr(text, "own1") == NULL);
    tern_free(&ctx, text);
    tern_sdp_free(&ctx, sdp);
}

static void test_tolerated(void)
{
    /* Unknown lines and attributes, empty lines, trailing blanks, tabs, a port count. */
    tern_sdp_t *sdp =
        parse_ok("\r\nv=0\r\no=- 1 2 IN IP4 127.0.0.1 \r\ns=\r\nt=0 0\r\nb=AS:30\r\n"
                 "x=whatever\r\nZ=1\r\n\r\na=unknown\r\na=x-thing:1 2\r\na=\tweird\r\n"
                 "m=video 9/2 RTP/AVP 96\t97\r\ni=info\r\na=rtpmap:96 VP8/90000\r\n"
                 "a=mid:v\r\n\n\n");
    if (ok(sdp != NULL)) {
        eq_int(sdp->media_count, 1);
        eq_int(sdp->media[0].port, 9);
        eq_str(sdp->media[0].fmt, "96\t97");
        eq_str(sdp->session_name, "");
        ok(tern_sdp_find_datachannel(sdp) == NULL);
        ok(round_trip(sdp));
    }
    tern_sdp_free(&ctx, sdp);

    /* A bundle-only section with port 0 is not rejected (RFC 8843 §6). */
    sdp = parse_ok(HEAD "a=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
                        "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\na=bundle-only\r\n"
                        "a=mid:1\r\na=sctp-port:5000\r\n");
    if (ok(sdp != NULL)) {
        ok(tern_sdp_find_datachannel(sdp) == &sdp->media[1]);
        ok(round_trip(sdp));
    }
    tern_sdp_free(&ctx, sdp);

    /* A rejected data-channel section is skipped for the next one. */
    sdp = parse_ok(HEAD "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n"
                        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:1\r\n");
    ok(sdp && tern_sdp_find_datachannel(sdp) == &sdp->media[1]);
    tern_sdp_free(&ctx, sdp);
    sdp = parse_ok(HEAD);
    ok(sdp && sdp->media_count == 0 && tern_sdp_find_datachannel(sdp) == NULL);
    ok(sdp && round_trip(sdp));
    tern_sdp_free(&ctx, sdp);
    ok(tern_sdp_find_datachannel(NULL) == NULL);
}

/* ---- refusals ---- */

static void test_malformed(void)
{
    expect_error("", "empty SDP: no v=0 line");
    expect_error("\r\n\n", "empty SDP");
    expect_error("o=- 1 2 IN IP4 1.1.1.1\r\n", "line 1: the first line must be v=0: o=- 1 2");
    expect_error("v=1\r\n", "line 1: the first line must be v=0");
    expect_error("v=0\r\ns=-\r\n", "no o= line");
    expect_error(HEAD "foo\r\n", "line 5: line without '=': foo");
    expect_error(HEAD "ab=x\r\n", "line 5: line type is not one letter: ab=x");
    expect_error(HEAD "=x\r\n", "line 5: line type is not one letter");
    expect_error(HEAD "1=x\r\n", "line 5: line type is not one letter");
    expect_error(HEAD "v=0\r\n", "line 5: second v= line");
    expect_error(HEAD "o=- 1 2 IN IP4 1.1.1.1\r\n", "line 5: second o= line");
    expect_error(HEAD DC_NEW "o=- 1 2 IN IP4 1.1.1.1\r\n", "line 7: o= line inside a media");
    expect_error("v=0\r\no=- abc 2 IN IP4 1.1.1.1\r\n", "line 2: o= session id is not a number");
    expect_error("v=0\r\no=- 1 -2 IN IP4 1.1.1.1\r\n", "line 2: o= session version is not");
    expect_error("v=0\r\no=- 18446744073709551616 2 IN IP4 1.1.1.1\r\n", "session id is not");
    expect_error("v=0\r\no=- 1 2 IN IP4\r\n", "line 2: o= line with fewer than 6 fields");
    expect_error("v=0\r\no=- 1 2 IN IP4 a b\r\n", "line 2: o= line with more than 6 fields");
    expect_error(HEAD "m=application x UDP/DTLS/SCTP webrtc-datachannel\r\n",
                 "line 5: m= port is not a number from 0 to 65535: m=application x");
    expect_error(HEAD "m=application 65536 UDP/DTLS/SCTP webrtc-datachannel\r\n",
                 "line 5: m= port is not a number");
    expect_error(HEAD "m=application -9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
                 "line 5: m= port is not a number");
    expect_error(HEAD "m=application 9/x UDP/DTLS/SCTP webrtc-datachannel\r\n",
                 "line 5: m= port count is not a number");
    expect_error(HEAD "m=application 9 UDP/DTLS/SCTP\r\n",
                 "line 5: m= line needs media, port, proto and fmt");
    expect_error(HEAD "m=\r\n", "line 5: m= line needs");
    expect_error(HEAD "m=appli\"cation 9 UDP/DTLS/SCTP x\r\n", "line 5: m= media is not a token");
    expect_error(HEAD "m=application 9 UDP//SCTP x\r\n", "line 5: m= proto is not a token list");
    expect_error(HEAD "m=application 9 /SCTP x\r\n", "m= proto is not a token list");
    expect_error(HEAD "m=application 9 SCTP/ x\r\n", "m= proto is not a token list");
    expect_error(HEAD "c=IN IP4\r\n", "line 5: c= line needs nettype, addrtype and address");
    expect_error(HEAD "c=IN IP4 /127\r\n", "line 5: c= address is empty");
    expect_error(HEAD "s=a\x01z\r\n", "line 5: control byte 0x01 at column 4: s=a?z");
    expect_error(HEAD "s=a\rb\r\n", "line 5: control byte 0x0d at column 4");
    expect_error(HEAD "s=a\x7f\r\n"
                      "x\r\n",
                 "line 6: line without '='"); /* DEL is allowed */
    expect_error(HEAD DC_NEW "a=setup:holdconn\r\n", "line 7: a=setup is not actpass, active or");
    expect_error(HEAD DC_NEW "a=setup\r\n", "line 7: a=setup without value");
    expect_error(HEAD DC_NEW "a=setup:active\r\na=setup:active\r\n", "line 8: second a=setup");
    expect_error(HEAD DC_NEW "a=ice-ufrag:ab:cd\r\n", "line 7: a=ice-ufrag has a character");
    expect_error(HEAD DC_NEW "a=ice-ufrag:\r\n", "line 7: a=ice-ufrag without value");
    expect_error(HEAD DC_NEW "a=ice-ufrag:abcd\r\na=ice-ufrag:abcd\r\n",
                 "line 8: second a=ice-ufrag at this level");
    expect_error(HEAD DC_NEW "a=ice-options\r\n", "line 7: a=ice-options without value");
    expect_error(HEAD DC_NEW "a=sctp-port:0\r\n", "line 7: a=sctp-port is not a number from 1");
    expect_error(HEAD DC_NEW "a=sctp-port:65536\r\n", "line 7: a=sctp-port is not a number");
    expect_error(HEAD DC_NEW "a=sctp-port:5000\r\na=sctp-port:5000\r\n", "second a=sctp-port");
    expect_error(HEAD DC_NEW "a=sctpmap:5000\r\n", "line 7: a=sctpmap needs a port and an app");
    expect_error(HEAD DC_NEW "a=sctpmap:x webrtc-datachannel\r\n", "a=sctpmap port is not");
    expect_error(HEAD DC_NEW "a=sctpmap:5000 webrtc-datachannel 65536\r\n",
                 "a=sctpmap stream count is not");
    expect_error(HEAD DC_NEW "a=sctpmap:1 a\r\na=sctpmap:1 a\r\n", "line 8: second a=sctpmap");
    expect_error(HEAD DC_NEW "a=max-message-size:-1\r\n", "line 7: a=max-message-size is not");
    expect_error(HEAD DC_NEW "a=max-message-size:18446744073709551616\r\n",
                 "a=max-message-size is not a number");
    expect_error(HEAD DC_NEW "a=max-message-size:1\r\na=max-message-size:1\r\n",
                 "second a=max-message-size");
    expect_error(HEAD DC_NEW "a=fingerprint:sha-256\r\n", "line 7: a=fingerprint needs a hash");
    expect_error(HEAD DC_NEW "a=fingerprint:sha-256 AB:CD x\r\n", "a=fingerprint needs a hash");
    expect_error(HEAD DC_NEW "a=fingerprint:sha-256 XY:CD\r\n",
                 "line 7: a=fingerprint is not colon-separated hex");
    expect_error(HEAD DC_NEW "a=fingerprint:sha-256 AB:C\r\n", "a=fingerprint is not colon");
    expect_error(HEAD DC_NEW "a=fingerprint:sha-256 AB:CD:\r\n", "a=fingerprint is not colon");
    expect_error(HEAD DC_NEW "a=fingerprint:sha(256) AB\r\n", "hash function is not a token");
    expect_error(HEAD DC_NEW "a=mid\r\n", "line 7: a=mid without value");
    expect_error(HEAD DC_NEW "a=mid:a\"b\r\n", "line 7: a=mid is not a token");
    expect_error(HEAD DC_NEW "a=mid:0\r\na=mid:1\r\n", "line 8: second a=mid in one section");
    expect_error(HEAD DC_NEW "a=mid:0\r\n" DC_NEW "a=mid:0\r\n",
                 "line 10: mid \"0\" used by two sections");
    expect_error(HEAD "a=group:BUNDLE 0 7\r\n" DC_NEW "a=mid:0\r\n",
                 "line 5: BUNDLE names mid \"7\" of no section: a=group:BUNDLE 0 7");
    expect_error(HEAD "a=group:BUNDLE 0 a\"b\r\n", "line 5: a=group:BUNDLE mid is not a token");
    expect_error(HEAD "a=group:BUNDLE 0 0\r\n" DC_NEW "a=mid:0\r\n",
                 "line 5: mid \"0\" twice in the BUNDLE group");
    expect_error(HEAD DC_NEW "a=candidate\r\n", "line 7: a=candidate without value");
    expect_error(HEAD DC_NEW "a=candidate:\r\n", "line 7: a=candidate without value");
    expect_error(HEAD DC_NEW "a=sendrecv\r\na=inactive\r\n", "line 8: two different directions");
    expect_error(HEAD "a=\r\n", "line 5: a= line without attribute name");
    expect_error(HEAD "a=:x\r\n", "line 5: a= line without attribute name");
    /* The password is never quoted in an error. */
    expect_error(HEAD DC_NEW "a=ice-pwd:secret:word\r\n",
                 "line 7: a=ice-pwd has a character that is not an ice-char: a=ice-pwd:<hidden>");
    char err[256];
    tern_sdp_t *sdp = NULL;
    eq_int(parse_str(HEAD DC_NEW "a=ice-pwd:secret:word\r\n", &sdp, err, sizeof err),
           TERN_ERR_PARSE);
    ok(strstr(err, "secret") == NULL);

    /* A NUL inside the text is a control byte, not the end of the text. */
    static const char nul[] = HEAD "s=a\0b\r\n";
    eq_int(parse_guarded(nul, sizeof nul - 1, &sdp, err, sizeof err), TERN_ERR_PARSE);
    ok(strstr(err, "line 5: control byte 0x00 at column 4") != NULL);
    ok(sdp == NULL);
}

static void test_error_buffer(void)
{
    const char *bad = HEAD "m=application x UDP/DTLS/SCTP webrtc-datachannel\r\n";
    tern_sdp_t *sdp = NULL;
    char err[16];
    memset(err, 'z', sizeof err);
    eq_int(parse_str(bad, &sdp, err, sizeof err), TERN_ERR_PARSE);
    eq_str(err, "line 5: m= port"); /* truncated, NUL-terminated */
    err[0] = 'z';
    eq_int(parse_str(bad, &sdp, err, 1), TERN_ERR_PARSE);
    eq_int(err[0], '\0');
    eq_int(parse_str(bad, &sdp, NULL, 0), TERN_ERR_PARSE);
    eq_int(parse_str(bad, &sdp, NULL, 100), TERN_ERR_PARSE);
    ok(sdp == NULL);
    /* A long line is quoted in part. */
    char line[300];
    snprintf(line, sizeof line, HEAD "m=application %0200d x\r\n", 1);
    char big[256];
    eq_int(parse_str(line, &sdp, big, sizeof big), TERN_ERR_PARSE);
    ok(strstr(big, "line 5: m= line needs media, port, proto and fmt: m=application 0000") != NULL);
    ok(strstr(big, "...") != NULL && strlen(big) < 160);
    /* Success leaves err empty. */
    strcpy(big, "x");
    eq_int(parse_str(HEAD, &sdp, big, sizeof big), TERN_OK);
    eq_str(big, "");
    tern_sdp_free(&ctx, sdp);
    sdp = NULL;
    eq_int(tern_sdp_parse(NULL, HEAD, 4, &sdp, big, sizeof big), TERN_ERR_INVALID_ARG);
    eq_int(tern_sdp_parse(&ctx, NULL, 4, &sdp, big, sizeof big), TERN_ERR_INVALID_ARG);
    eq_int(tern_sdp_parse(&ctx, HEAD, 4, NULL, big, sizeof big), TERN_ERR_INVALID_ARG);
}

/* ---- limits ---- */

/* A growing text buffer for generated SDPs. */
typedef struct text {
    char *p;
    size_t len, cap;
} text_t;

static void add(text_t *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->p = realloc(t->p, t->cap);
    }
    memcpy(t->p + t->len, s, n + 1);
    t->len += n;
}

static void add_repeat(text_t *t, char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    add(t, s);
    free(s);
}

static text_t with_sections(size_t n)
{
    text_t t = {0};
    add(&t, HEAD);
    for (size_t i = 0; i < n; i++) {
        char line[64];
        snprintf(line, sizeof line, "m=audio 0 RTP/AVP 0\r\na=mid:%zu\r\n", i);
        add(&t, line);
    }
    return t;
}

static text_t with_candidates(size_t n)
{
    text_t t = {0};
    add(&t, HEAD DC_NEW);
    for (size_t i = 0; i < n; i++) {
        char line[96];
        snprintf(line, sizeof line, "a=candidate:%zu 1 udp 2122260223 10.0.0.1 %zu typ host\r\n", i,
                 1000 + i);
        add(&t, line);
    }
    return t;
}

/* An SDP whose line 5 is "<prefix><n times c>". */
static text_t with_line(const char *prefix, char c, size_t n)
{
    text_t t = {0};
    add(&t, HEAD);
    add(&t, prefix);
    add_repeat(&t, c, n);
    add(&t, "\r\n");
    return t;
}

static void expect_limit(text_t t, bool good, const char *want)
{
    tern_sdp_t *sdp = NULL;
    char err[256] = "";
    int ret = parse_guarded(t.p, t.len, &sdp, err, sizeof err);
    eq_int(ret, good ? TERN_OK : TERN_ERR_PARSE);
    if (!good && !ok(strstr(err, want) != NULL))
        printf("#   error \"%s\" lacks \"%s\"\n", err, want);
    if (sdp && good)
        ok(round_trip(sdp));
    tern_sdp_free(&ctx, sdp);
    free(t.p);
}

static void test_limits(void)
{
    expect_limit(with_sections(TERN_SDP_MAX_MEDIA), true, NULL);
    expect_limit(with_sections(TERN_SDP_MAX_MEDIA + 1), false,
                 "line 133: more than 64 m= sections");
    expect_limit(with_candidates(TERN_SDP_MAX_CANDIDATES), true, NULL);
    expect_limit(with_candidates(TERN_SDP_MAX_CANDIDATES + 1), false,
                 "line 135: more than 128 candidates in one section");
    /* a line of exactly TERN_SDP_MAX_LINE bytes is fine, one more is not */
    expect_limit(with_line("a=x-long:", 'A', TERN_SDP_MAX_LINE - 9), true, NULL);
    expect_limit(with_line("a=x-long:", 'A', TERN_SDP_MAX_LINE - 8), false,
                 "line 5: line longer than 4096 bytes");
    expect_limit(with_line("s=", 'n', TERN_SDP_SESSION_NAME_SIZE - 1), true, NULL);
    expect_limit(with_line("s=", 'n', TERN_SDP_SESSION_NAME_SIZE), false,
                 "line 5: s= value longer than 255 characters");
    expect_limit(with_line(DC_NEW "a=mid:", 'm', TERN_SDP_MID_SIZE - 1), true, NULL);
    expect_limit(with_line(DC_NEW "a=mid:", 'm', TERN_SDP_MID_SIZE), false,
                 "line 7: a=mid longer than 32 characters");
    expect_limit(with_line(DC_NEW "a=ice-ufrag:", 'u', TERN_SDP_UFRAG_SIZE - 1), true, NULL);
    expect_limit(with_line(DC_NEW "a=ice-ufrag:", 'u', TERN_SDP_UFRAG_SIZE), false,
                 "line 7: a=ice-ufrag longer than 256 characters");
    expect_limit(with_line(DC_NEW "a=ice-pwd:", 'p', TERN_SDP_PWD_SIZE - 1), true, NULL);
    expect_limit(with_line(DC_NEW "a=ice-pwd:", 'p', TERN_SDP_PWD_SIZE), false,
                 "line 7: a=ice-pwd longer than 256 characters");
    expect_limit(with_line("m=", 'k', TERN_SDP_KIND_SIZE - 1), false, "m= line needs");
    expect_limit(with_line("m=application 9 UDP/DTLS/SCTP ", 'f', TERN_SDP_FMT_SIZE - 1), true,
                 NULL);
    expect_limit(with_line("m=application 9 UDP/DTLS/SCTP ", 'f', TERN_SDP_FMT_SIZE), false,
                 "line 5: m= fmt list longer than 511 characters");
    expect_limit(with_line("o=", 'o', TERN_SDP_ORIGIN_USER_SIZE), false, "line 5: second o=");
    expect_limit(with_line("m=application 9 UDP/DTLS/SCTP x\r\nc=IN IP4 ", 'c', TERN_SDP_ADDR_SIZE),
                 false, "line 6: c= address longer than 63 characters");
    expect_limit(with_line(DC_NEW "a=fingerprint:", 's', TERN_SDP_FP_ALG_SIZE - 1), false,
                 "a=fingerprint needs");

    /* Fields of the m= line and the o= username, one over their size. */
    char line[1024];
    char kind[TERN_SDP_KIND_SIZE + 1], proto[TERN_SDP_PROTO_SIZE + 1];
    memset(kind, 'k', sizeof kind - 1);
    kind[sizeof kind - 1] = '\0';
    memset(proto, 'P', sizeof proto - 1);
    proto[sizeof proto - 1] = '\0';
    snprintf(line, sizeof line, HEAD "m=%s 9 X x\r\n", kind);
    expect_error(line, "line 5: m= media longer than 15 characters");
    kind[sizeof kind - 2] = '\0';
    snprintf(line, sizeof line, HEAD "m=%s 9 X x\r\n", kind);
    tern_sdp_free(&ctx, parse_ok(line));
    snprintf(line, sizeof line, HEAD "m=a 9 %s x\r\n", proto);
    expect_error(line, "line 5: m= proto longer than 39 characters");
    snprintf(line, sizeof line, "v=0\r\no=%.*s 1 2 IN IP4 1.1.1.1\r\n", TERN_SDP_ORIGIN_USER_SIZE,
             "ooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo");
    expect_error(line, "line 2: o= username longer than 63 characters");
    char alg[TERN_SDP_FP_ALG_SIZE + 1];
    memset(alg, 's', sizeof alg - 1);
    alg[sizeof alg - 1] = '\0';
    snprintf(line, sizeof line, HEAD DC_NEW "a=fingerprint:%s AB\r\n", alg);
    expect_error(line, "line 7: a=fingerprint hash function longer than 15 characters");

    /* Fingerprints up to SHA-512's 64 bytes. */
    text_t t = {0};
    add(&t, HEAD DC_NEW "a=fingerprint:sha-512 AB");
    for (int i = 1; i < 64; i++)
        add(&t, ":CD");
    add(&t, "\r\n");
    expect_limit(t, true, NULL);
    t = (text_t){0};
    add(&t, HEAD DC_NEW "a=fingerprint:sha-512 AB");
    for (int i = 1; i < 65; i++)
        add(&t, ":CD");
    add(&t, "\r\n");
    expect_limit(t, false, "line 7: a=fingerprint is not colon-separated hex of at most 64");

    /* BUNDLE groups of up to TERN_SDP_MAX_MEDIA mids. */
    t = with_sections(TERN_SDP_MAX_MEDIA);
    text_t g = {0};
    add(&g, HEAD "a=group:BUNDLE");
    for (int i = 0; i < TERN_SDP_MAX_MEDIA; i++) {
        char mid[16];
        snprintf(mid, sizeof mid, " %d", i);
        add(&g, mid);
    }
    add(&g, "\r\n");
    add(&g, t.p + strlen(HEAD));
    free(t.p);
    expect_limit(g, true, NULL);
    g = (text_t){0};
    add(&g, HEAD "a=group:BUNDLE");
    for (int i = 0; i <= TERN_SDP_MAX_MEDIA; i++) {
        char mid[16];
        snprintf(mid, sizeof mid, " %d", i);
        add(&g, mid);
    }
    add(&g, "\r\n");
    expect_limit(g, false, "line 5: BUNDLE group of more than 64 mids");

    /* The whole text. */
    t = (text_t){0};
    add(&t, HEAD);
    while (t.len <= TERN_SDP_MAX_TEXT)
        add(&t, "a=x-filler:0123456789012345678901234567890123456789\r\n");
    expect_limit(t, false, "SDP longer than 262144 bytes");
}

/* ---- the writer ---- */

static const char expected_answer[] =
    "v=0\r\n"
    "o=- 4611686018427387904 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 1\r\n"
    "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=mid:1\r\n"
    "a=ice-ufrag:Xy+/\r\n"
    "a=ice-pwd:0123456789abcdefghijkl\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 AB:CD\r\n"
    "a=setup:active\r\n"
    "a=sctp-port:5000\r\n"
    "a=max-message-size:262144\r\n"
    "a=candidate:1 1 udp 2122260223 192.168.1.2 50000 typ host\r\n"
    "a=candidate:2 1 udp 1686052607 203.0.113.7 50001 typ srflx raddr 0.0.0.0 rport 0\r\n"
    "a=end-of-candidates\r\n";

static tern_sdp_t *build_answer(void)
{
    tern_sdp_t *sdp = NULL;
    tern_sdp_media_t *m;
    eq_int(tern_sdp_new(&ctx, &sdp), TERN_OK);
    sdp->session_id = 4611686018427387904ull;
    sdp->session_version = 2;
    strcpy(sdp->bundle_mids[0], "1");
    sdp->bundle_count = 1;
    eq_int(tern_sdp_add_media(&ctx, sdp, &m), TERN_OK);
    strcpy(m->kind, "audio");
    strcpy(m->proto, "UDP/TLS/RTP/SAVPF");
    strcpy(m->fmt, "111");
    strcpy(m->mid, "0");
    strcpy(m->ice_ufrag, "notwritten"); /* rejected: only m=, c= and a=mid */
    m->rtcp_mux = true;
    eq_int(tern_sdp_add_media(&ctx, sdp, &m), TERN_OK);
    strcpy(m->kind, "application");
    m->port = 9;
    strcpy(m->proto, "UDP/DTLS/SCTP");
    strcpy(m->fmt, "webrtc-datachannel");
    strcpy(m->mid, "1");
    strcpy(m->ice_ufrag, "Xy+/");
    strcpy(m->ice_pwd, "0123456789abcdefghijkl");
    m->ice_trickle = true;
    strcpy(m->fingerprint_alg, "sha-256");
    strcpy(m->fingerprint, "AB:CD");
    m->setup = TERN_SDP_SETUP_ACTIVE;
    m->sctp_port = 5000;
    m->has_max_message_size = true;
    m->max_message_size = 262144;
    eq_int(tern_sdp_media_add_candidate(&ctx, m,
                                        "candidate:1 1 udp 2122260223 192.168.1.2 50000 typ host"),
           TERN_OK);
    eq_int(tern_sdp_media_add_candidate(&ctx, m,
                                        "a=candidate:2 1 udp 1686052607 203.0.113.7 50001 typ "
                                        "srflx raddr 0.0.0.0 rport 0"),
           TERN_OK);
    m->end_of_candidates = true;
    return sdp;
}

static void test_write(void)
{
    tern_sdp_t *sdp = build_answer();
    char *text = NULL;
    eq_int(tern_sdp_write(&ctx, sdp, &text), TERN_OK);
    eq_str(text, expected_answer);
    tern_free(&ctx, text);
    ok(round_trip(sdp));

    /* Every other optional line, and IPv6. */
    tern_sdp_media_t *m = &sdp->media[1];
    sdp->ice_lite = true;
    strcpy(sdp->origin_user, "tern");
    strcpy(sdp->session_name, "a name");
    m->port = 0;
    m->bundle_only = true;
    m->direction = TERN_SDP_DIR_INACTIVE;
    for (int dir = TERN_SDP_DIR_NONE; dir <= TERN_SDP_DIR_INACTIVE; dir++) {
        sdp->media[1].direction = (tern_sdp_direction_t)dir;
        ok(round_trip(sdp));
    }
    m->rtcp_mux = true;
    m->setup = TERN_SDP_SETUP_PASSIVE;
    strcpy(m->connection_addr, "2001:db8::1");
    text = NULL;
    eq_int(tern_sdp_write(&ctx, sdp, &text), TERN_OK);
    static const char head[] = "v=0\r\no=tern 4611686018427387904 2 IN IP4 127.0.0.1\r\n"
                               "s=a name\r\nt=0 0\r\na=ice-lite\r\na=group:BUNDLE 1\r\n";
    ok(text && strncmp(text, head, sizeof head - 1) == 0);
    ok(text &&
       strstr(text, "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"
                    "c=IN IP6 2001:db8::1\r\na=mid:1\r\na=bundle-only\r\na=inactive\r\n") != NULL);
    ok(text && strstr(text, "a=setup:passive\r\na=rtcp-mux\r\na=sctp-port:5000\r\n") != NULL);
    tern_free(&ctx, text);
    ok(round_trip(sdp));
    tern_sdp_free(&ctx, sdp);
}

static void expect_write_refused(void (*spoil)(tern_sdp_t *))
{
    tern_sdp_t *sdp = build_answer();
    spoil(sdp);
    char *text = (char *)&ctx;
    eq_int(tern_sdp_write(&ctx, sdp, &text), TERN_ERR_INVALID_ARG);
    ok(text == (char *)&ctx);
    tern_sdp_free(&ctx, sdp);
}

static void spoil_ufrag(tern_sdp_t *s)
{
    strcpy(s->media[1].ice_ufrag, "a b");
}
static void spoil_candidate(tern_sdp_t *s)
{
    s->media[1].candidates[0][12] = '\n';
}
static void spoil_candidate_prefix(tern_sdp_t *s)
{
    s->media[1].candidates[1][0] = 'C';
}
static void spoil_kind(tern_sdp_t *s)
{
    memset(s->media[0].kind, 'a', sizeof s->media[0].kind);
}
static void spoil_fmt(tern_sdp_t *s)
{
    s->media[1].fmt[0] = '\0';
}
static void spoil_session_name(tern_sdp_t *s)
{
    strcpy(s->session_name, "x\r\na=injected");
}
static void spoil_fingerprint(tern_sdp_t *s)
{
    s->media[1].fingerprint_alg[0] = '\0';
}
static void spoil_bundle(tern_sdp_t *s)
{
    s->bundle_count = TERN_SDP_MAX_MEDIA + 1;
}
static void spoil_bundle_mid(tern_sdp_t *s)
{
    s->bundle_mids[0][0] = '\0';
}
static void spoil_mid(tern_sdp_t *s)
{
    strcpy(s->media[0].mid, "0 1");
}

static void test_write_refused(void)
{
    expect_write_refused(spoil_ufrag);
    expect_write_refused(spoil_candidate);
    expect_write_refused(spoil_candidate_prefix);
    expect_write_refused(spoil_kind);
    expect_write_refused(spoil_fmt);
    expect_write_refused(spoil_session_name);
    expect_write_refused(spoil_fingerprint);
    expect_write_refused(spoil_bundle);
    expect_write_refused(spoil_bundle_mid);
    expect_write_refused(spoil_mid);
    char *text = NULL;
    eq_int(tern_sdp_write(&ctx, NULL, &text), TERN_ERR_INVALID_ARG);
    eq_int(tern_sdp_write(NULL, NULL, &text), TERN_ERR_INVALID_ARG);
}

static void test_builders(void)
{
    tern_sdp_t *sdp = NULL;
    tern_sdp_media_t *m = NULL;
    eq_int(tern_sdp_new(&ctx, &sdp), TERN_OK);
    for (int i = 0; i < TERN_SDP_MAX_MEDIA; i++)
        eq_int(tern_sdp_add_media(&ctx, sdp, &m), TERN_OK);
    tern_sdp_media_t *last = m;
    eq_int(tern_sdp_add_media(&ctx, sdp, &m), TERN_ERR_TOO_LARGE);
    ok(m == last);
    eq_int(sdp->media_count, TERN_SDP_MAX_MEDIA);
    for (int i = 0; i < TERN_SDP_MAX_CANDIDATES; i++)
        eq_int(tern_sdp_media_add_candidate(&ctx, m, "candidate:1 1 udp 1 1.2.3.4 5 typ host"),
               TERN_OK);
    eq_int(tern_sdp_media_add_candidate(&ctx, m, "candidate:1 1 udp 1 1.2.3.4 5 typ host"),
           TERN_ERR_TOO_LARGE);
    eq_int(m->candidate_count, TERN_SDP_MAX_CANDIDATES);
    tern_sdp_media_t *first = &sdp->media[0];
    eq_int(tern_sdp_media_add_candidate(&ctx, first, "cand:1"), TERN_ERR_INVALID_ARG);
    eq_int(tern_sdp_media_add_candidate(&ctx, first, "candidate:1\r\na=x"), TERN_ERR_INVALID_ARG);
    eq_int(tern_sdp_media_add_candidate(&ctx, first, "a=candidate:1\ttab"), TERN_OK);
    eq_str(first->candidates[0], "candidate:1\ttab");
    char *long_cand = malloc(TERN_SDP_MAX_LINE + 1);
    memset(long_cand, 'c', TERN_SDP_MAX_LINE);
    memcpy(long_cand, "candidate:", 10);
    long_cand[TERN_SDP_MAX_LINE - 2] = '\0';
    eq_int(tern_sdp_media_add_candidate(&ctx, first, long_cand), TERN_OK);
    long_cand[TERN_SDP_MAX_LINE - 2] = 'c';
    long_cand[TERN_SDP_MAX_LINE - 1] = '\0';
    eq_int(tern_sdp_media_add_candidate(&ctx, first, long_cand), TERN_ERR_INVALID_ARG);
    free(long_cand);
    eq_int(first->candidate_count, 2);
    eq_int(tern_sdp_add_media(&ctx, NULL, &m), TERN_ERR_INVALID_ARG);
    eq_int(tern_sdp_new(&ctx, NULL), TERN_ERR_INVALID_ARG);
    eq_int(tern_sdp_media_add_candidate(&ctx, first, NULL), TERN_ERR_INVALID_ARG);
    eq_str(tern_sdp_setup_name(TERN_SDP_SETUP_ACTPASS), "actpass");
    eq_str(tern_sdp_setup_name(TERN_SDP_SETUP_NONE), "");
    eq_str(tern_sdp_setup_name((tern_sdp_setup_t)42), "");
    tern_sdp_free(&ctx, sdp);
    tern_sdp_free(&ctx, NULL);
}

/* ---- allocation failures ---- */

static long fail_at_alloc; /* fail the Nth allocation from now (0: never) */
static long allocs_left;   /* live allocations, to prove nothing leaks */

static bool should_fail(void)
{
    return fail_at_alloc > 0 && --fail_at_alloc == 0;
}

static void *fm_malloc(size_t size, void *user)
{
    (void)user;
    void *p = should_fail() ? NULL : malloc(size);
    allocs_left += p != NULL;
    return p;
}

static void *fm_calloc(size_t n, size_t size, void *user)
{
    (void)user;
    void *p = should_fail() ? NULL : calloc(n, size);
    allocs_left += p != NULL;
    return p;
}

static void *fm_realloc(void *ptr, size_t size, void *user)
{
    (void)user;
    if (should_fail())
        return NULL;
    void *p = realloc(ptr, size);
    allocs_left += p != NULL && ptr == NULL;
    return p;
}

static void fm_free(void *ptr, void *user)
{
    (void)user;
    allocs_left -= ptr != NULL;
    free(ptr);
}

static void test_failmalloc(void)
{
    static const tern_mem_t mem = {NULL, fm_malloc, fm_calloc, fm_realloc, fm_free};
    tern_ctx_t saved = ctx;
    const tern_ctx_config_t cfg = {.mem = &mem};
    tern_ctx_init_base(&ctx, &cfg);
    size_t len;
    char *text = read_data("firefox-offer-av-datachannel-gathered.sdp", &len);
    bool parsed = false, written = false;
    for (long n = 1; n < 10000 && !(parsed && written) && text; n++) {
        tern_sdp_t *sdp = (tern_sdp_t *)&saved;
        char *out = (char *)&saved;
        fail_at_alloc = n;
        char err[64] = "x";
        int ret = tern_sdp_parse(&ctx, text, len, &sdp, err, sizeof err);
        eq_str(err, "");
        if (ret == TERN_OK) {
            parsed = true;
            ret = tern_sdp_write(&ctx, sdp, &out);
            if (ret == TERN_OK) {
                written = true;
                tern_free(&ctx, out);
            } else {
                eq_int(ret, TERN_ERR_NOMEM);
                ok(out == (char *)&saved);
            }
            tern_sdp_free(&ctx, sdp);
        } else {
            eq_int(ret, TERN_ERR_NOMEM);
            ok(sdp == (tern_sdp_t *)&saved);
        }
        eq_int(allocs_left, 0);
    }
    ok(parsed && written);
    fail_at_alloc = 0;
    free(text);
    ctx = saved;
}

int main(void)
{
    tern_ctx_init_base(&ctx, NULL);
    subtest("browser facts", test_browser_facts);
    subtest("browser all", test_browser_all);
    subtest("browser candidates", test_browser_candidates);
    subtest("line ends", test_line_ends);
    subtest("old form", test_old_form);
    subtest("session level", test_session_level);
    subtest("tolerated", test_tolerated);
    subtest("malformed", test_malformed);
    subtest("error buffer", test_error_buffer);
    subtest("limits", test_limits);
    subtest("write", test_write);
    subtest("write refused", test_write_refused);
    subtest("builders", test_builders);
    subtest("failmalloc", test_failmalloc);
    return check_done();
}
