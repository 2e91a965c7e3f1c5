/* SPDX-License-Identifier: MIT */
/*
 * Tests of tern-signal's parts, without the program: the message validator (every bad-json
 * case, "to" of every JSON type, inputs against a guard page), the relay rewrite and the
 * server's messages byte for byte, the --ice-server URL syntax, SipHash-2-4 against the
 * reference vectors and the hash table under growth and removal, the STUN responder (Binding
 * over IPv4 and IPv6, 420 for unknown comprehension-required attributes and CHANGE-REQUEST,
 * 400 for other methods, silence for indications, responses, bad fingerprints and garbage),
 * room names, and static files (index, content types, traversal, dot-files, links out of the
 * root, FIFOs, directories).
 */
#include "check.h"
#include "guard.h"
#include "signaling/signaling.h"
#include "stun/stun.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static tern_ctx_t *ctx;

/* ------------------------------------------------------------------------------------------ */
/* Messages                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static tern_signal_verdict_t judge(const char *text, tern_signal_msg_t *m)
{
    guarded_t g;
    size_t len = strlen(text);
    const char *p = (const char *)guard_copy(&g, text, len);
    tern_signal_verdict_t v = tern_signal_msg_parse(p, len, m);
    guard_free(&g);
    return v;
}

static void test_validator(void)
{
    static const char *const bad[] = {
        "",
        " ",
        "null",
        "true",
        "1",
        "\"s\"",
        "[]",
        "[{\"type\":\"x\"}]",
        "{}",
        "{\"type\":null}",
        "{\"type\":1}",
        "{\"type\":{}}",
        "{\"type\":[\"x\"]}",
        "{\"type\":true}",
        "{\"Type\":\"x\"}",
        "{\"type\":\"x\"",
        "{\"type\":\"x\"}}",
        "{\"type\":\"x\",}",
        "{'type':'x'}",
        "{\"type\":\"x\",\"type\":\"x\"}",
        "{\"type\":\"x\",\"to\":\"a\",\"to\":\"b\"}",
        "{\"type\":\"\\ud800\"}",
        "{\"type\":\"x\",\"n\":99999999999999999999}",
        "{\"type\":\"x\"} {}",
        "\xef\xbb\xbf{}",
    };
    tern_signal_msg_t m;
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad); i++) {
        tern_signal_verdict_t v = judge(bad[i], &m);
        if (v != TERN_SIGNAL_MSG_BAD_JSON)
            printf("#   accepted: %s\n", bad[i]);
        eq_int(v, TERN_SIGNAL_MSG_BAD_JSON);
        ok(m.root == NULL);
    }
    /* Good ones, with "to" absent, a string, or another type (which names no peer). */
    eq_int(judge("{\"type\":\"offer\",\"sdp\":\"v=0\"}", &m), TERN_SIGNAL_MSG_OK);
    eq_str(m.type, "offer");
    ok(!m.has_to);
    tern_signal_msg_dispose(&m);
    eq_int(judge(" {\"to\":\"ab\\u0000c\",\"type\":\"\"} ", &m), TERN_SIGNAL_MSG_OK);
    eq_str(m.type, "");
    ok(m.has_to);
    eq_int(m.to_len, 4);
    ok(memcmp(m.to, "ab\0c", 4) == 0);
    tern_signal_msg_dispose(&m);
    static const char *const odd_to[] = {"5", "null", "{}", "[]", "false"};
    for (size_t i = 0; i < TERN_ARRAY_LEN(odd_to); i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"type\":\"x\",\"to\":%s}", odd_to[i]);
        eq_int(judge(text, &m), TERN_SIGNAL_MSG_OK);
        ok(m.has_to && m.to == NULL);
        tern_signal_msg_dispose(&m);
    }
    tern_signal_msg_dispose(&m); /* a zeroed msg is fine */
}

static void relay_is(const char *in, const char *want)
{
    tern_signal_msg_t m;
    eq_int(judge(in, &m), TERN_SIGNAL_MSG_OK);
    size_t len = 0;
    char *out = tern_signal_msg_relay(&m, "me", &len);
    eq_str(out, want);
    eq_int(len, out ? strlen(want) : 0);
    free(out);
    tern_signal_msg_dispose(&m);
}

static void test_relay(void)
{
    relay_is("{\"type\":\"bye\"}", "{\"type\":\"bye\",\"from\":\"me\"}");
    relay_is("{\"to\":\"x\",\"type\":\"a\",\"from\":\"forged\",\"k\":[1,2.5,null,true]}",
             "{\"type\":\"a\",\"from\":\"me\",\"k\":[1,2.5,null,true]}");
    relay_is("{ \"type\" : \"a\" , \"n\" : 0.1, \"big\": -9223372036854775808 }",
             "{\"type\":\"a\",\"n\":0.10000000000000001,\"big\":-9223372036854775808,"
             "\"from\":\"me\"}");
    relay_is("{\"type\":\"\\u00e9\\n\\\"\",\"o\":{\"to\":\"inner stays\"}}",
             "{\"type\":\"\xc3\xa9\\n\\\"\",\"o\":{\"to\":\"inner stays\"},\"from\":\"me\"}");
    /* A \u0000 inside a string survives (measured length, not strlen). */
    tern_signal_msg_t m;
    eq_int(judge("{\"type\":\"a\\u0000b\"}", &m), TERN_SIGNAL_MSG_OK);
    size_t len = 0;
    char *out = tern_signal_msg_relay(&m, "me", &len);
    static const char want[] = "{\"type\":\"a\\u0000b\",\"from\":\"me\"}";
    eq_int(len, sizeof want - 1);
    ok(out && memcmp(out, want, sizeof want - 1) == 0);
    free(out);
    tern_signal_msg_dispose(&m);
}

static void test_server_messages(void)
{
    size_t len;
    char *t = tern_signal_msg_join("abc", &len);
    eq_str(t, "{\"type\":\"join\",\"id\":\"abc\"}");
    eq_int(len, strlen(t));
    free(t);
    t = tern_signal_msg_leave("abc", &len);
    eq_str(t, "{\"type\":\"leave\",\"id\":\"abc\"}");
    free(t);
    t = tern_signal_msg_error("bad-json", "why \"quoted\"", &len);
    eq_str(t, "{\"type\":\"error\",\"code\":\"bad-json\",\"message\":\"why \\\"quoted\\\"\"}");
    free(t);
    const char *peers[] = {"p1", "p2"};
    json_t *ice = json_array();
    t = tern_signal_msg_welcome("me", "room", peers, 2, ice, &len);
    eq_str(t, "{\"type\":\"welcome\",\"id\":\"me\",\"room\":\"room\",\"peers\":[\"p1\",\"p2\"],"
              "\"iceServers\":[]}");
    free(t);
    t = tern_signal_msg_welcome("me", "room", NULL, 0, NULL, &len);
    eq_str(t, "{\"type\":\"welcome\",\"id\":\"me\",\"room\":\"room\",\"peers\":[],"
              "\"iceServers\":[]}");
    free(t);
    eq_int(json_object_size(ice), 0);
    eq_int(ice->refcount, 1); /* welcome took and gave back its reference */
    json_decref(ice);
}

static void ice_is(const char *url, const char *want)
{
    json_t *a = json_array();
    char err[256] = "";
    int rc = tern_signal_ice_server_add(a, url, err, sizeof err);
    if (want) {
        eq_int(rc, TERN_OK);
        char *t = json_dumps(json_array_get(a, 0), JSON_COMPACT);
        eq_str(t, want);
        free(t);
    } else {
        eq_int(rc, TERN_ERR_PARSE);
        ok(strstr(err, url) != NULL);
        eq_int(json_array_size(a), 0);
    }
    json_decref(a);
}

static void test_ice_servers(void)
{
    ice_is("stun:stun.l.google.com:19302", "{\"urls\":\"stun:stun.l.google.com:19302\"}");
    ice_is("stun:[2001:db8::1]:3478", "{\"urls\":\"stun:[2001:db8::1]:3478\"}");
    ice_is("stuns:host", "{\"urls\":\"stuns:host\"}");
    ice_is("turn:user:pass@turn.example.org:3478?transport=udp",
           "{\"urls\":\"turn:turn.example.org:3478?transport=udp\",\"username\":\"user\","
           "\"credential\":\"pass\"}");
    ice_is("turns:a%3Ab%40c:p%25%40%3Aw@h:5349",
           "{\"urls\":\"turns:h:5349\",\"username\":\"a:b@c\",\"credential\":\"p%@:w\"}");
    ice_is("turn:user:@h", "{\"urls\":\"turn:h\",\"username\":\"user\",\"credential\":\"\"}");
    ice_is("http://example.org", NULL);
    ice_is("stun", NULL);
    ice_is("stun:", NULL);
    ice_is("turn:user@h", NULL);
    ice_is("turn::pass@h", NULL);
    ice_is("turn:u:p@", NULL);
    ice_is("turn:u%zz:p@h", NULL);
    ice_is("turn:u%00:p@h", NULL);
    ice_is("turn:u:p%4@h", NULL);
    ice_is("stun:host name", NULL);
    ice_is("stun:ho\"st", NULL);
    ice_is("STUN:host", NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Hashing                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void test_siphash(void)
{
    /* Aumasson and Bernstein, "SipHash: a fast short-input PRF", appendix A and the reference
     * implementation's vectors: key 00..0f, messages 00..(n-1). */
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    ok(tern_signal_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
    ok(tern_signal_siphash(key, msg, 1) == 0x74f839c593dc67fdULL);
    ok(tern_signal_siphash(key, msg, 8) == 0x93f5f5799a932462ULL);
    ok(tern_signal_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL);
    ok(tern_signal_siphash(key, msg, 63) == 0x958a324ceb064572ULL);
}

typedef struct item {
    tern_signal_entry_t e;
    char key[16];
} item_t;

static void test_table(void)
{
    tern_signal_table_t t;
    eq_int(tern_signal_table_init(&t, ctx), TERN_OK);
    ok(tern_signal_table_get(&t, "x", 1) == NULL);
    enum { N = 5000 };
    item_t *items = calloc(N, sizeof *items);
    for (int i = 0; i < N; i++) {
        snprintf(items[i].key, sizeof items[i].key, "k%d", i);
        items[i].e.key = items[i].key;
        items[i].e.key_len = strlen(items[i].key);
        eq_int(tern_signal_table_put(&t, &items[i].e), TERN_OK);
    }
    eq_int(t.count, N);
    bool all = true;
    for (int i = 0; i < N; i++)
        all = all && tern_signal_table_get(&t, items[i].key, strlen(items[i].key)) == &items[i].e;
    ok(all);
    /* Keys of equal prefix and length differ; a prefix is not a match. */
    ok(tern_signal_table_get(&t, "k1", 1) == NULL);
    ok(tern_signal_table_get(&t, "k", 1) == NULL);
    for (int i = 0; i < N; i += 2)
        tern_signal_table_remove(&t, &items[i].e);
    eq_int(t.count, N / 2);
    all = true;
    for (int i = 0; i < N; i++) {
        tern_signal_entry_t *e = tern_signal_table_get(&t, items[i].key, strlen(items[i].key));
        all = all && (i % 2 ? e == &items[i].e : e == NULL);
    }
    ok(all);
    tern_signal_table_remove(&t, &items[0].e); /* not in it: nothing happens */
    eq_int(t.count, N / 2);
    tern_signal_table_dispose(&t);
    free(items);
}

/* ------------------------------------------------------------------------------------------ */
/* STUN                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static size_t build(uint8_t *buf, size_t cap, tern_stun_class_t cls, uint16_t method,
                    void (*extra)(tern_stun_writer_t *sw), bool fingerprint)
{
    static const uint8_t tid[TERN_STUN_TID_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, cap);
    tern_stun_writer_t sw;
    tern_stun_writer_begin(&sw, &w, cls, method, tid);
    if (extra)
        extra(&sw);
    if (fingerprint)
        tern_stun_put_fingerprint(&sw);
    size_t len = 0;
    tern_stun_writer_end(&sw, &len);
    return len;
}

static void put_unknown(tern_stun_writer_t *sw)
{
    tern_stun_put_u32(sw, 0x7f01, 1); /* comprehension-required, unknown */
}

static void put_change_request(tern_stun_writer_t *sw)
{
    tern_stun_put_u32(sw, TERN_STUN_ATTR_CHANGE_REQUEST, 0x6);
}

static void put_optional(tern_stun_writer_t *sw)
{
    tern_stun_put_u32(sw, 0xc001, 1); /* comprehension-optional: ignored */
    tern_stun_put_string(sw, TERN_STUN_ATTR_USERNAME, "user:name");
}

static bool answer(const uint8_t *req, size_t len, const tern_addr_t *from, tern_stun_msg_t *m,
                   uint8_t *out, size_t cap)
{
    guarded_t g;
    const uint8_t *p = guard_copy(&g, req, len);
    size_t n = tern_signal_stun_answer(ctx, p, len, from, out, cap);
    guard_free(&g);
    return n > 0 && tern_stun_parse(out, n, m) == TERN_OK && tern_stun_check_fingerprint(m) == 0;
}

static void test_stun(void)
{
    uint8_t req[256], out[512];
    tern_stun_msg_t m;
    tern_addr_t v4, v6;
    tern_addr_parse("192.0.2.7:40000", &v4);
    tern_addr_parse("[2001:db8::9]:50000", &v6);
    size_t len = build(req, sizeof req, TERN_STUN_REQUEST, TERN_STUN_BINDING, NULL, true);
    for (int i = 0; i < 2; i++) {
        const tern_addr_t *from = i ? &v6 : &v4;
        ok(answer(req, len, from, &m, out, sizeof out));
        eq_int(m.msg_class, TERN_STUN_SUCCESS);
        eq_int(m.method, TERN_STUN_BINDING);
        ok(memcmp(m.tid, req + 8, TERN_STUN_TID_LEN) == 0);
        ok(tern_addr_equal(&m.xor_mapped_address, from));
        ok(m.present & TERN_STUN_HAS_SOFTWARE);
    }
    /* Without FINGERPRINT, and with optional unknown attributes: still answered. */
    len = build(req, sizeof req, TERN_STUN_REQUEST, TERN_STUN_BINDING, put_optional, false);
    ok(answer(req, len, &v4, &m, out, sizeof out));
    eq_int(m.msg_class, TERN_STUN_SUCCESS);
    /* 420 with UNKNOWN-ATTRIBUTES. */
    len = build(req, sizeof req, TERN_STUN_REQUEST, TERN_STUN_BINDING, put_unknown, true);
    ok(answer(req, len, &v4, &m, out, sizeof out));
    eq_int(m.msg_class, TERN_STUN_ERROR);
    eq_int(m.error_code, 420);
    eq_int(m.unknown_attributes_count, 1);
    eq_int(m.unknown_attributes[0], 0x7f01);
    len = build(req, sizeof req, TERN_STUN_REQUEST, TERN_STUN_BINDING, put_change_request, true);
    ok(answer(req, len, &v4, &m, out, sizeof out));
    eq_int(m.error_code, 420);
    eq_int(m.unknown_attributes[0], TERN_STUN_ATTR_CHANGE_REQUEST);
    /* Another method: 400. */
    len = build(req, sizeof req, TERN_STUN_REQUEST, TERN_STUN_ALLOCATE, NULL, true);
    ok(answer(req, len, &v4, &m, out, sizeof out));
    eq_int(m.msg_class, TERN_STUN_ERROR);
    eq_int(m.method, TERN_STUN_ALLOCATE);
    eq_int(m.error_code, 400);
    /* Silence: indications, responses, a bad fingerprint, garbage, no room to answer. */
    len = build(req, sizeof req, TERN_STUN_INDICATION, TERN_STUN_BINDING, NULL, true);
    eq_int(tern_signal_stun_answer(ctx, req, len, &v4, out, sizeof out), 0);
    len = build(req, sizeof req, TERN_STUN_SUCCESS, TERN_STUN_BINDING, NULL, true);
    eq_int(tern_signal_stun_answer(ctx, req, len, &v4, out, sizeof out), 0);
    len = build(req, sizeof req, TERN_STUN_REQUEST, TERN_STUN_BINDING, NULL, true);
    req[len - 1] ^= 1;
    eq_int(tern_signal_stun_answer(ctx, req, len, &v4, out, sizeof out), 0);
    req[len - 1] ^= 1;
    eq_int(tern_signal_stun_answer(ctx, req, len, &v4, out, 20), 0);
    eq_int(tern_signal_stun_answer(ctx, (const uint8_t *)"hello", 5, &v4, out, sizeof out), 0);
    for (size_t cut = 0; cut < len; cut++)
        eq_int(tern_signal_stun_answer(ctx, req, cut, &v4, out, sizeof out), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP pieces                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void test_rooms(void)
{
    ok(tern_signal_room_valid("a", 1));
    ok(tern_signal_room_valid("Az09_.-", 7));
    char name[66];
    memset(name, 'x', sizeof name);
    ok(tern_signal_room_valid(name, 64));
    ok(!tern_signal_room_valid(name, 65));
    ok(!tern_signal_room_valid("", 0));
    static const char *const bad[] = {"a b", "a/b", "a%20", "\xc3\xa9", "a\0b", "a+b", "a:b"};
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad); i++)
        ok(!tern_signal_room_valid(bad[i], i == 4 ? 3 : strlen(bad[i])));
    const char *room;
    size_t n;
    ok(tern_signal_ws_path("/ws/abc", 7, &room, &n) && n == 3 && memcmp(room, "abc", 3) == 0);
    ok(tern_signal_ws_path("/ws/", 4, &room, &n) && n == 0);
    ok(tern_signal_ws_path("/ws", 3, &room, &n) && n == 0);
    ok(!tern_signal_ws_path("/wsx", 4, &room, &n));
    ok(!tern_signal_ws_path("/", 1, &room, &n));
    ok(!tern_signal_ws_path("/index.html", 11, &room, &n));
}

static char root[64];

static void put(const char *rel, const char *content)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(content, f);
        fclose(f);
    }
}

static int serve(int fd, const char *path, tern_signal_reply_t *r)
{
    eq_int(tern_signal_http_file(ctx, fd, path, strlen(path), r), TERN_OK);
    return r->status;
}

static void test_files(void)
{
    strcpy(root, "/tmp/tern-parts-XXXXXX");
    ok(mkdtemp(root) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/d", root);
    mkdir(path, 0755);
    put("index.html", "home");
    put("d/index.html", "dir home");
    put("d/x.CSS", "css");
    put(".hidden", "no");
    snprintf(path, sizeof path, "%s/out", root);
    ok(symlink("/etc/hostname", path) == 0);
    snprintf(path, sizeof path, "%s/fifo", root);
    ok(mkfifo(path, 0600) == 0);
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    tern_signal_reply_t r;
    eq_int(serve(fd, "/", &r), 200);
    eq_str(r.content_type, "text/html; charset=utf-8");
    ok(r.body_len == 4 && memcmp(r.body, "home", 4) == 0);
    tern_free(ctx, r.body);
    eq_int(serve(fd, "//d//", &r), 200);
    ok(r.body_len == 8 && memcmp(r.body, "dir home", 8) == 0);
    tern_free(ctx, r.body);
    eq_int(serve(fd, "/d/x.CSS", &r), 200);
    eq_str(r.content_type, "text/css; charset=utf-8");
    tern_free(ctx, r.body);
    static const char *const refused[] = {
        "/.hidden",
        "/d/../index.html",
        "/./index.html",
        "/%2e%2e/",
        "/%2E/index.html",
        "/out",
        "/fifo",
        "/none",
        "/d/none/",
        "",
        "index.html",
        "/%",
        "/%4",
        "/%0a",
        "/%00index.html",
        "/d/index.html/",
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(refused); i++) {
        int status = serve(fd, refused[i], &r);
        if (status != 404)
            printf("#   %s: %d\n", refused[i], status);
        eq_int(status, 404);
        tern_free(ctx, r.body);
    }
    /* No root: everything is 404. */
    eq_int(serve(-1, "/", &r), 404);
    tern_free(ctx, r.body);
    close(fd);
    static const char *const files[] = {"index.html", "d/index.html", "d/x.CSS",
                                        ".hidden",    "out",          "fifo"};
    for (size_t i = 0; i < TERN_ARRAY_LEN(files); i++) {
        snprintf(path, sizeof path, "%s/%s", root, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/d", root);
    rmdir(path);
    rmdir(root);
}

int main(void)
{
    tern_ctx_config_t cfg = {.log_level = TERN_LOG_WARN};
    tern_ctx_new(&cfg, &ctx);
    subtest("validator", test_validator);
    subtest("relay", test_relay);
    subtest("server messages", test_server_messages);
    subtest("ice servers", test_ice_servers);
    subtest("siphash", test_siphash);
    subtest("table", test_table);
    subtest("stun", test_stun);
    subtest("rooms", test_rooms);
    subtest("files", test_files);
    tern_ctx_free(ctx);
    return check_done();
}
