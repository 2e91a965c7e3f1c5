/* SPDX-License-Identifier: MIT */
/*
 * The plain HTTP side of tern-signal: room names and the "/ws/ROOM" path
 * (signaling-protocol.md, "Transport"), and static files for the demo page from --root. A
 * request path is percent-decoded, split into segments, and refused (404) when a segment is
 * empty of meaning or dangerous ("." and "..", any dot-file); the file is then opened with
 * openat2(RESOLVE_BENEATH) below the root's directory fd, so that no symbolic link leads out
 * of it (kernels before 5.6: every component is opened with O_NOFOLLOW instead, so links are
 * not followed at all). Only regular files are served, read whole.
 */
#include "signaling.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Longest decoded path served (the HTTP layer caps a request line at 4 KiB anyway). */
#define MAX_PATH_BYTES 1024

bool tern_signal_room_valid(const char *name, size_t len)
{
    if (len < 1 || len > TERN_SIGNAL_MAX_ROOM_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool good = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
        if (!good)
            return false;
    }
    return true;
}

bool tern_signal_ws_path(const char *path, size_t len, const char **room, size_t *room_len)
{
    static const char prefix[] = "/ws/";
    size_t n = sizeof prefix - 1;
    /* "/ws" alone is a WebSocket path with an empty (so invalid) room. */
    if (len == n - 1 && memcmp(path, prefix, n - 1) == 0) {
        *room = path + len;
        *room_len = 0;
        return true;
    }
    if (len < n || memcmp(path, prefix, n) != 0)
        return false;
    *room = path + n;
    *room_len = len - n;
    return true;
}

/* ---- content types ---- */

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".png", "image/png"},
        {".svg", "image/svg+xml"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".wasm", "application/wasm"},
    };
    const char *dot = strrchr(name, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < TERN_ARRAY_LEN(types); i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* ---- paths ---- */

/*
 * Turn a request path into a path relative to the root ("a/b.html"), or fail: bad
 * percent-encoding, control characters, a "." or ".." segment, a dot-file, too long. A path
 * ending in '/' (or "/" itself) names the index.html of that directory.
 */
static bool relative_path(const char *path, size_t len, char *out, size_t cap)
{
    char dec[MAX_PATH_BYTES];
    size_t n = 0;
    if (len == 0 || path[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        if (c == '%') {
            int hi = i + 2 < len ? tern_hex_digit(path[i + 1]) : -1;
            int lo = i + 2 < len ? tern_hex_digit(path[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f || n + 1 >= sizeof dec)
            return false;
        dec[n++] = c;
    }
    size_t o = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && dec[i] == '/')
            i++;
        size_t start = i;
        while (i < n && dec[i] != '/')
            i++;
        size_t seg = i - start;
        if (seg == 0)
            break;
        /* ".", ".." and dot-files (.git, .env) are never served. */
        if (dec[start] == '.')
            return false;
        if (o + seg + 2 >= cap)
            return false;
        if (o)
            out[o++] = '/';
        memcpy(out + o, dec + start, seg);
        o += seg;
    }
    if (n == 0 || dec[n - 1] == '/') {
        static const char index[] = "index.html";
        if (o + sizeof index + 1 >= cap)
            return false;
        if (o)
            out[o++] = '/';
        memcpy(out + o, index, sizeof index);
        o += sizeof index - 1;
    }
    out[o] = '\0';
    return true;
}

/* Open below the root without following a link out of it. */
static int open_beneath(int root_fd, const char *rel)
{
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS)
        return (int)fd;
    /* Before Linux 5.6: walk the components, following no link at all. */
    char buf[MAX_PATH_BYTES];
    snprintf(buf, sizeof buf, "%s", rel);
    int dir = dup(root_fd);
    char *save = NULL;
    for (char *comp = strtok_r(buf, "/", &save); comp && dir >= 0;) {
        char *next = strtok_r(NULL, "/", &save);
        int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW;
        int fd2 = openat(dir, comp, next ? flags | O_DIRECTORY : flags);
        close(dir);
        dir = fd2;
        comp = next;
    }
    return dir;
}

/* Read a regular file whole into a new buffer. 0; TERN_ERR_NOT_FOUND; TERN_ERR_NOMEM. */
static int read_file(tern_ctx_t *ctx, int fd, char **body, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TERN_SIGNAL_MAX_FILE_BYTES)
        return TERN_ERR_NOT_FOUND;
    size_t size = (size_t)st.st_size;
    char *buf = tern_malloc(ctx, size ? size : 1);
    if (!buf)
        return TERN_ERR_NOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    *body = buf;
    *len = got;
    return TERN_OK;
}

static int reply_text(tern_ctx_t *ctx, tern_signal_reply_t *out, int status, const char *text)
{
    out->status = status;
    out->content_type = "text/plain; charset=utf-8";
    out->body_len = strlen(text);
    out->body = tern_memdup(ctx, text, out->body_len);
    return out->body ? TERN_OK : TERN_ERR_NOMEM;
}

int tern_signal_http_file(tern_ctx_t *ctx, int root_fd, const char *path, size_t len,
                          tern_signal_reply_t *out)
{
    memset(out, 0, sizeof *out);
    char rel[MAX_PATH_BYTES];
    if (root_fd < 0 || !relative_path(path, len, rel, sizeof rel))
        return reply_text(ctx, out, 404, "not found\n");
    int fd = open_beneath(root_fd, rel);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            /* A directory named without its trailing slash: serve its index. */
            close(fd);
            size_t n = strlen(rel);
            fd = -1;
            if (n + sizeof "/index.html" <= sizeof rel) {
                memcpy(rel + n, "/index.html", sizeof "/index.html");
                fd = open_beneath(root_fd, rel);
            }
        }
    }
    if (fd < 0)
        return reply_text(ctx, out, 404, "not found\n");
    int rc = read_file(ctx, fd, &out->body, &out->body_len);
    close(fd);
    if (rc == TERN_ERR_NOT_FOUND)
        return reply_text(ctx, out, 404, "not found\n");
    if (rc != TERN_OK)
        return rc;
    out->status = 200;
    out->content_type = content_type(rel);
    return TERN_OK;
}
