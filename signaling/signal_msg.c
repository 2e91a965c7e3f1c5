/* SPDX-License-Identifier: MIT */
/*
 * The messages of the signaling protocol (signaling-protocol.md, "Messages"), with jansson:
 * the validator of a client's text frame (a JSON object with a string "type", an optional "to";
 * anything else is bad-json), the rewrite of a message for relaying ("to" removed, "from" set),
 * the server's own messages (welcome, join, leave, error), and the --ice-server URL syntax
 * turned into W3C RTCIceServer objects.
 */
#include "signaling.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Duplicate keys are refused: two "to" or two "type" would make the routing ambiguous.
 * \u0000 inside strings is allowed, so that any valid JSON string is forwarded as it came. */
#define DECODE_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
/* 17 significant digits: every double reads back to the same value. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

tern_signal_verdict_t tern_signal_msg_parse(const char *text, size_t len, tern_signal_msg_t *out)
{
    memset(out, 0, sizeof *out);
    json_error_t err;
    json_t *root = json_loadb(text, len, DECODE_FLAGS, &err);
    if (!root)
        return TERN_SIGNAL_MSG_BAD_JSON;
    json_t *type = json_object_get(root, "type");
    if (!json_is_object(root) || !json_is_string(type)) {
        json_decref(root);
        return TERN_SIGNAL_MSG_BAD_JSON;
    }
    out->root = root;
    out->type = json_string_value(type);
    json_t *to = json_object_get(root, "to");
    if (to) {
        out->has_to = true;
        if (json_is_string(to)) {
            out->to = json_string_value(to);
            out->to_len = json_string_length(to);
        }
    }
    return TERN_SIGNAL_MSG_OK;
}

void tern_signal_msg_dispose(tern_signal_msg_t *m)
{
    json_decref(m->root);
    memset(m, 0, sizeof *m);
}

static char *dump(json_t *obj, size_t *len)
{
    char *text = obj ? json_dumps(obj, DUMP_FLAGS) : NULL;
    if (text && len)
        *len = strlen(text);
    return text;
}

/* json_dumps cannot be used with \u0000 inside strings (its result is NUL-terminated and
 * measured with strlen), so the relay dumps into a buffer of known length. */
static char *dump_measured(json_t *obj, size_t *len)
{
    size_t need = json_dumpb(obj, NULL, 0, DUMP_FLAGS);
    if (need == 0)
        return NULL;
    char *text = malloc(need + 1);
    if (!text)
        return NULL;
    if (json_dumpb(obj, text, need, DUMP_FLAGS) != need) {
        free(text);
        return NULL;
    }
    text[need] = '\0';
    *len = need;
    return text;
}

char *tern_signal_msg_relay(tern_signal_msg_t *m, const char *from, size_t *len)
{
    if (!m->root)
        return NULL;
    /* "to" is taken out (m->to then dangles: clear it) and "from" written over. */
    if (m->has_to) {
        json_object_del(m->root, "to");
        m->has_to = false;
        m->to = NULL;
        m->to_len = 0;
    }
    if (json_object_set_new(m->root, "from", json_string(from)) != 0)
        return NULL;
    return dump_measured(m->root, len);
}

char *tern_signal_msg_welcome(const char *id, const char *room, const char *const *peers,
                              size_t peer_count, json_t *ice_servers, size_t *len)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < peer_count; i++) {
        if (json_array_append_new(list, json_string(peers[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    if (!list)
        return NULL;
    json_t *servers = ice_servers ? json_incref(ice_servers) : json_array();
    json_t *obj = json_pack("{s:s,s:s,s:s,s:o,s:o}", "type", "welcome", "id", id, "room", room,
                            "peers", list, "iceServers", servers);
    char *text = dump(obj, len);
    json_decref(obj);
    return text;
}

static char *id_message(const char *type, const char *id, size_t *len)
{
    json_t *obj = json_pack("{s:s,s:s}", "type", type, "id", id);
    char *text = dump(obj, len);
    json_decref(obj);
    return text;
}

char *tern_signal_msg_join(const char *id, size_t *len)
{
    return id_message("join", id, len);
}

char *tern_signal_msg_leave(const char *id, size_t *len)
{
    return id_message("leave", id, len);
}

char *tern_signal_msg_error(const char *code, const char *message, size_t *len)
{
    json_t *obj = json_pack("{s:s,s:s,s:s}", "type", "error", "code", code, "message", message);
    char *text = dump(obj, len);
    json_decref(obj);
    return text;
}

/* ---- --ice-server URLs ---- */

/* Percent-decode n bytes of s into a new NUL-terminated string; NULL if malformed or NUL. */
static char *percent_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? tern_hex_digit(s[i + 1]) : -1;
        int lo = i + 2 < n ? tern_hex_digit(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

static bool scheme_known(const char *url, size_t n)
{
    static const char *const schemes[] = {"stun", "stuns", "turn", "turns"};
    for (size_t i = 0; i < TERN_ARRAY_LEN(schemes); i++)
        if (strlen(schemes[i]) == n && memcmp(url, schemes[i], n) == 0)
            return true;
    return false;
}

static int fail(char *error, size_t cap, const char *url, const char *why)
{
    snprintf(error, cap, "bad --ice-server '%s': %s", url, why);
    return TERN_ERR_PARSE;
}

int tern_signal_ice_server_add(json_t *servers, const char *url, char *error, size_t cap)
{
    const char *colon = strchr(url, ':');
    if (!colon || !scheme_known(url, (size_t)(colon - url)))
        return fail(error, cap, url, "the scheme must be stun, stuns, turn or turns");
    const char *rest = colon + 1;
    /* The userinfo ends at the last '@' (a literal '@' in it must be written %40 anyway). */
    const char *at = strrchr(rest, '@');
    const char *host = at ? at + 1 : rest;
    if (*host == '\0' || *host == '?' || *host == ':')
        return fail(error, cap, url, "no host");
    for (const char *p = host; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '@')
            return fail(error, cap, url, "a space or quote in the host part");
    char *user = NULL, *pass = NULL;
    if (at) {
        const char *sep = memchr(rest, ':', (size_t)(at - rest));
        if (!sep)
            return fail(error, cap, url, "credentials must be USERNAME:CREDENTIAL@");
        user = percent_decode(rest, (size_t)(sep - rest));
        pass = percent_decode(sep + 1, (size_t)(at - sep - 1));
        if (!user || !pass || !*user) {
            free(user);
            free(pass);
            return fail(error, cap, url, "bad percent-encoding or empty username");
        }
    }
    size_t scheme_len = (size_t)(colon - url);
    size_t host_len = strlen(host);
    char *urls = malloc(scheme_len + 1 + host_len + 1);
    json_t *obj = NULL;
    if (urls) {
        memcpy(urls, url, scheme_len + 1);
        memcpy(urls + scheme_len + 1, host, host_len + 1);
        obj = user ? json_pack("{s:s,s:s,s:s}", "urls", urls, "username", user, "credential", pass)
                   : json_pack("{s:s}", "urls", urls);
    }
    free(urls);
    free(user);
    free(pass);
    if (!obj || json_array_append_new(servers, obj) != 0) {
        snprintf(error, cap, "bad --ice-server '%s': not UTF-8 (or out of memory)", url);
        return TERN_ERR_NOMEM;
    }
    return TERN_OK;
}
