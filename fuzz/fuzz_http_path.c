/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness of the request paths tern-signal reads (signaling/signal_http.c): the
 * "/ws/ROOM" path and the room name check, and the path of a static file request turned into a
 * path below the root. An accepted file path must be safe to open below the root: relative,
 * NUL-terminated inside the buffer, no empty, "." or ".." segment, no dot-file, no control
 * character; and reading it back as "/" + path gives it again (when it holds no '%', which would
 * be decoded a second time). The source is compiled in here to reach the static reader.
 * Deterministic: nothing but the input.
 */
#include "../signaling/signal_http.c"

#include <stdlib.h>

static void die(void)
{
    abort();
}

static void check_safe(const char *rel, size_t cap)
{
    size_t n = strnlen(rel, cap);
    if (n == 0 || n == cap || rel[0] == '/')
        die();
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (i < n && ((unsigned char)rel[i] < 0x20 || rel[i] == 0x7f))
            die();
        if (i == n || rel[i] == '/') {
            if (i == start || rel[start] == '.')
                die();
            start = i + 1;
        }
    }
}

static void check_again(const char *rel)
{
    if (strchr(rel, '%'))
        return;
    char path[MAX_PATH_BYTES + 2], again[MAX_PATH_BYTES];
    int n = snprintf(path, sizeof path, "/%s", rel);
    if (n < 0 || (size_t)n >= sizeof path)
        return;
    if (!relative_path(path, (size_t)n, again, sizeof again) || strcmp(again, rel) != 0)
        die();
}

static void check_file_path(const char *path, size_t len)
{
    static const size_t caps[] = {MAX_PATH_BYTES, 24};
    char out[MAX_PATH_BYTES + 1];
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        memset(out, 0x55, sizeof out);
        if (!relative_path(path, len, out, caps[k]))
            continue;
        if (out[caps[k]] != 0x55)
            die();
        check_safe(out, caps[k]);
        if (k == 0)
            check_again(out);
    }
}

static void check_ws_path(const char *path, size_t len)
{
    const char *room = NULL;
    size_t room_len = 0;
    if (!tern_signal_ws_path(path, len, &room, &room_len))
        return;
    if (room < path || room + room_len != path + len)
        die();
    if (tern_signal_room_valid(room, room_len)) {
        if (room_len == 0 || room_len > TERN_SIGNAL_MAX_ROOM_LEN)
            die();
        for (size_t i = 0; i < room_len; i++)
            if (room[i] == '/' || room[i] == '%' || (unsigned char)room[i] <= 0x20 ||
                (unsigned char)room[i] >= 0x7f)
                die();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    check_file_path((const char *)data, size);
    check_ws_path((const char *)data, size);
    return 0;
}
