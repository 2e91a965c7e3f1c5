/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness of what tern-send and tern-recv read from the peer (examples/file_xfer.c,
 * FILE-PROTOCOL.md version 2):
 * 1. The input as a text message: it is refused with a reason, or parsed; a parsed message of a
 *    known type is encoded again (fx_msg_encode), and that text parses to the same fields.
 * 2. The input as a file name from the peer: when fx_name_problem accepts it, the name must be
 *    safe to join to the output folder (relative, no "." or ".." or empty component, no
 *    backslash or control character); a refusal names its reason.
 * 3. The input quoted for a terminal at several sizes: always terminated inside the buffer and
 *    printable ASCII only.
 * Deterministic: no clock, no randomness.
 */
#include "file_xfer.h"

#include <stdlib.h>
#include <string.h>

static void die(void)
{
    abort();
}

static bool same_string(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_msg(const fx_msg_t *a, const fx_msg_t *b)
{
    return a->type == b->type && a->version == b->version && a->name_len == b->name_len &&
           (!a->name_len || memcmp(a->name, b->name, a->name_len) == 0) && a->size == b->size &&
           a->has_size == b->has_size && same_string(a->mime, b->mime) && a->offset == b->offset &&
           a->has_sha256 == b->has_sha256 &&
           (!a->has_sha256 || memcmp(a->sha256, b->sha256, FX_SHA256_LEN) == 0) && a->ok == b->ok &&
           same_string(a->message, b->message);
}

static void check_message(const uint8_t *data, size_t size)
{
    fx_msg_t m;
    char why[256] = "";
    if (fx_msg_parse(data, size, &m, why, sizeof why) != 0) {
        if (!why[0] || m.name || m.mime || m.message)
            die();
        return;
    }
    if (m.type == FX_MSG_UNKNOWN) {
        fx_msg_clear(&m);
        return;
    }
    char *text = fx_msg_encode(&m);
    if (!text)
        die();
    fx_msg_t again;
    if (fx_msg_parse((const uint8_t *)text, strlen(text), &again, why, sizeof why) != 0 ||
        !same_msg(&m, &again))
        die();
    free(text);
    fx_msg_clear(&again);
    fx_msg_clear(&m);
}

/* The component [c, c + len) of an accepted name. */
static void check_component(const char *c, size_t len)
{
    if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
        die();
}

static void check_name(const uint8_t *data, size_t size)
{
    const char *name = (const char *)data;
    const char *why = fx_name_problem(name, size);
    if (why) {
        if (!why[0])
            die();
        return;
    }
    if (size == 0 || size > FX_MAX_NAME || name[0] == '/')
        die();
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && (data[i] < 0x20 || data[i] == 0x7f || data[i] == '\\'))
            die();
        if (i == size || data[i] == '/') {
            check_component(name + start, i - start);
            start = i + 1;
        }
    }
}

static void check_quote(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {8, 9, 16, 64, 300};
    char out[300 + 1];
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        memset(out, 0x55, sizeof out);
        fx_quote((const char *)data, size, out, caps[k]);
        size_t n = strnlen(out, caps[k]);
        if (n == caps[k] || out[caps[k]] != 0x55)
            die();
        for (size_t i = 0; i < n; i++)
            if (out[i] < 0x20 || out[i] > 0x7e)
                die();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * FX_MAX_TEXT)
        return 0;
    check_message(data, size);
    check_name(data, size);
    check_quote(data, size);
    return 0;
}
