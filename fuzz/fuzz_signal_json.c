/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness of tern-signal's message validator (signaling/signal_msg.c): judge a client's
 * text frame (bad-json or a JSON object with a string "type" and maybe "to"); for a message
 * that passes, rewrite it for relaying ("to" removed, "from" set) and check the result: it is
 * accepted again, has no "to", the given "from" and the same "type", and relaying it once more
 * gives the same bytes (the round trip of the encoder). The validator's source is compiled in
 * here; jansson is linked by signaling/CMakeLists.txt.
 */
#include "../signaling/signal_msg.c"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 65536
#define FROM "fuzzpeer42"

static void die(void)
{
    abort();
}

static bool same_string(json_t *a, json_t *b)
{
    return json_is_string(a) && json_is_string(b) &&
           json_string_length(a) == json_string_length(b) &&
           memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
}

static void check_relayed(const char *text, size_t len, json_t *type)
{
    tern_signal_msg_t again;
    if (tern_signal_msg_parse(text, len, &again) != TERN_SIGNAL_MSG_OK)
        die();
    if (again.has_to || strcmp(json_string_value(json_object_get(again.root, "from")), FROM))
        die();
    if (!same_string(json_object_get(again.root, "type"), type))
        die();
    size_t len2 = 0;
    char *text2 = tern_signal_msg_relay(&again, FROM, &len2);
    if (text2 && (len2 != len || memcmp(text, text2, len) != 0))
        die();
    free(text2);
    tern_signal_msg_dispose(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    tern_signal_msg_t m;
    if (tern_signal_msg_parse((const char *)data, size, &m) != TERN_SIGNAL_MSG_OK) {
        if (m.root || m.type)
            die();
        return 0;
    }
    if (!m.root || !m.type || (m.has_to && m.to && m.to_len > size))
        die();
    json_t *type = json_incref(json_object_get(m.root, "type"));
    size_t len = 0;
    char *text = tern_signal_msg_relay(&m, FROM, &len);
    if (text) /* NULL only when out of memory */
        check_relayed(text, len, type);
    free(text);
    json_decref(type);
    tern_signal_msg_dispose(&m);
    return 0;
}
