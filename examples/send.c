/* SPDX-License-Identifier: MIT */
/*
 * tern-send: sends files and directories to a tern-recv (or the demo page) met in a room of a
 * tern-signal server, over the file protocol of examples/web/FILE-PROTOCOL.md (version 2): one
 * data channel per file, the receiver's `accept` says how much it already has (resume), the
 * bytes follow in 64 KiB messages, and `end` carries the SHA-256, computed while sending.
 *
 * The first peer of the room whose connection comes up is the receiver. Up to four file
 * channels are open at once, so that handshakes overlap, but the bytes of one file flow at a
 * time; each channel's buffered amount is refilled up to 4 MiB when it falls to 1 MiB
 * (on_buffered_amount_low), so memory stays bounded whatever the file sizes. A prefix the
 * receiver holds is hashed from the loop in slices (file_xfer.h), never in one long block.
 *
 * stdout, one line each: "sent NAME SIZE SHA256", "resumed NAME at OFFSET", "skipped NAME: ...",
 * "failed NAME: REASON", then a summary line. stderr: progress (a bar on a terminal, a line
 * every 5 s otherwise) and errors. Exit status: 0 when every file arrived intact; 1 when one
 * failed or the transfer was interrupted (run it again to resume); 2 for a usage error.
 */
#include "file_xfer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Flow control (FILE-PROTOCOL.md): refill up to HIGH when the amount falls to LOW. */
#define SEND_HIGH_WATER (4u << 20)
#define SEND_LOW_WATER (1u << 20)
/* File channels open at once: enough to hide the handshakes' round trips. */
#define SEND_PARALLEL 4
#define MAX_FILES 1000000

typedef enum {
    SF_QUEUED,    /* not started */
    SF_OPENING,   /* channel made, not open yet */
    SF_OFFERED,   /* `file` sent, waiting for `accept` */
    SF_CHECKING,  /* hashing our prefix to compare with accept's */
    SF_READY,     /* waiting for its turn to stream */
    SF_STREAMING, /* `start` sent, bytes going out */
    SF_ENDED,     /* `end` sent, waiting for `done` */
    SF_DONE,
    SF_FAILED,
} sf_state_t;

typedef struct app app_t;

typedef struct sfile {
    app_t *app;
    char *path; /* on our disk */
    char *name; /* as the receiver sees it */
    uint64_t size;
    sf_state_t state;
    int fd;
    tern_dc_t *dc;
    EVP_MD_CTX *md;
    fx_hash_job_t job;
    uint64_t accept_offset;
    uint8_t accept_sha[FX_SHA256_LEN];
    uint64_t start;  /* the offset streaming started from */
    uint64_t offset; /* next byte to send */
    uint8_t sha[FX_SHA256_LEN];
} sfile_t;

struct app {
    fx_cli_t cli;
    tern_loop_t *loop;
    tern_signaling_t *sig;
    tern_pc_t *pc; /* the receiver's */
    char peer_id[128];
    sfile_t *files;
    size_t count, cap;
    size_t next;   /* next file to start */
    size_t active; /* files between OPENING and ENDED */
    sfile_t *streaming;
    fx_progress_t progress;
    tern_timer_t *tick;
    unsigned ok, failed, skipped;
    uint64_t moved, resumed;
    tern_time_t t_first, t_last;
    bool finishing, interrupted, filling;
    char path_type[16], path_detail[256];
    int exit_code;
    uint8_t buf[FX_MAX_CHUNK];
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tern-send FILE|DIR... --signal ws://HOST:PORT/ws/ROOM [options]\n"
               "Send files and directories (recursively) to the first peer of the room whose\n"
               "connection comes up: tern-recv, or the demo page. A transfer that was cut\n"
               "resumes from what the receiver has when both are run again.\n");
    fx_cli_usage(f);
    fprintf(f, "  --help             this text\n"
               "stdout: 'sent NAME SIZE SHA256', 'resumed NAME at OFFSET', 'skipped NAME: ...',\n"
               "'failed NAME: REASON' and a summary. Exit 0 if every file arrived intact,\n"
               "1 otherwise (run again to resume), 2 for a usage error.\n");
}

static tern_time_t now_of(const app_t *app)
{
    return tern_loop_now(app->loop);
}

/* ------------------------------------------------------------------------------------------ */
/* The file list                                                                              */
/* ------------------------------------------------------------------------------------------ */

static int add_file(app_t *app, const char *path, const char *name, uint64_t size)
{
    if (app->count == MAX_FILES) {
        fprintf(stderr, "tern-send: more than %d files\n", MAX_FILES);
        return -1;
    }
    if (app->count == app->cap) {
        size_t cap = app->cap ? app->cap * 2 : 16;
        sfile_t *f = realloc(app->files, cap * sizeof *f);
        if (!f)
            return -1;
        app->files = f;
        app->cap = cap;
    }
    sfile_t *f = &app->files[app->count];
    *f = (sfile_t){.app = app, .path = strdup(path), .name = strdup(name), .size = size, .fd = -1};
    if (!f->path || !f->name) {
        free(f->path);
        free(f->name);
        return -1;
    }
    app->count++;
    return 0;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (s) {
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
    }
    return s;
}

static int add_tree(app_t *app, const char *path, const char *name, int depth);

static int add_entry(app_t *app, const char *dir, const char *prefix, const char *entry, int depth)
{
    char *path = join(dir, entry), *name = join(prefix, entry);
    struct stat st;
    int rc = path && name ? 0 : -1;
    /* lstat: a symbolic link inside a tree is not followed (no loops, nothing outside it). */
    if (rc == 0 && lstat(path, &st) != 0) {
        fprintf(stderr, "tern-send: %s: %s\n", path, strerror(errno));
        rc = -1;
    } else if (rc == 0 && S_ISDIR(st.st_mode)) {
        rc = add_tree(app, path, name, depth + 1);
    } else if (rc == 0 && S_ISREG(st.st_mode)) {
        rc = add_file(app, path, name, (uint64_t)st.st_size);
    } else if (rc == 0) {
        fprintf(stderr, "tern-send: %s: not a regular file or directory, left out\n", path);
    }
    free(path);
    free(name);
    return rc;
}

static int add_tree(app_t *app, const char *path, const char *name, int depth)
{
    if (depth >= FX_MAX_DEPTH) {
        fprintf(stderr, "tern-send: %s: deeper than %d levels\n", path, FX_MAX_DEPTH);
        return -1;
    }
    struct dirent **list;
    int n = scandir(path, &list, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "tern-send: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *e = list[i]->d_name;
        if (rc == 0 && strcmp(e, ".") != 0 && strcmp(e, "..") != 0)
            rc = add_entry(app, path, name, e, depth);
        free(list[i]);
    }
    free(list);
    return rc;
}

/* The name of a command-line argument: its last component ("a/b/" is "b", "." is the folder's
 * own name). */
static char *arg_name(const char *arg)
{
    char real[PATH_MAX];
    if (!realpath(arg, real))
        return NULL;
    const char *slash = strrchr(real, '/');
    return slash && slash[1] ? strdup(slash + 1) : NULL;
}

static int add_argument(app_t *app, const char *arg)
{
    struct stat st;
    if (stat(arg, &st) != 0) {
        fprintf(stderr, "tern-send: %s: %s\n", arg, strerror(errno));
        return -1;
    }
    char *name = arg_name(arg);
    if (!name) {
        fprintf(stderr, "tern-send: %s: cannot name it (the root folder?)\n", arg);
        return -1;
    }
    int rc = 0;
    if (S_ISDIR(st.st_mode))
        rc = add_tree(app, arg, name, 1);
    else if (S_ISREG(st.st_mode))
        rc = add_file(app, arg, name, (uint64_t)st.st_size);
    else {
        fprintf(stderr, "tern-send: %s: not a regular file or directory\n", arg);
        rc = -1;
    }
    free(name);
    return rc;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(((const sfile_t *)a)->name, ((const sfile_t *)b)->name);
}

/* Every name must be one the receiver accepts, and no two alike. */
static int check_names(app_t *app)
{
    sfile_t *sorted = malloc((app->count ? app->count : 1) * sizeof *sorted);
    if (!sorted)
        return -1;
    memcpy(sorted, app->files, app->count * sizeof *sorted);
    qsort(sorted, app->count, sizeof *sorted, compare_names);
    int rc = 0;
    for (size_t i = 0; i < app->count && rc == 0; i++) {
        const char *why = fx_name_problem(sorted[i].name, strlen(sorted[i].name));
        if (why) {
            char q[300];
            fx_quote(sorted[i].name, strlen(sorted[i].name), q, sizeof q);
            fprintf(stderr, "tern-send: %s cannot be sent: %s\n", q, why);
            rc = -1;
        } else if (i > 0 && strcmp(sorted[i].name, sorted[i - 1].name) == 0) {
            fprintf(stderr, "tern-send: two files would be named %s (%s and %s)\n", sorted[i].name,
                    sorted[i - 1].path, sorted[i].path);
            rc = -1;
        }
    }
    free(sorted);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Ending                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void quit_now(void *arg)
{
    tern_loop_stop(((app_t *)arg)->loop);
}

static void print_summary(app_t *app)
{
    double secs = app->t_first ? (double)(app->t_last - app->t_first) / 1e6 : 0;
    char moved[32], total[32];
    uint64_t bytes = 0;
    for (size_t i = 0; i < app->count; i++)
        if (app->files[i].state == SF_DONE)
            bytes += app->files[i].size;
    fx_format_bytes(bytes, total, sizeof total);
    fx_format_bytes(app->moved, moved, sizeof moved);
    fx_print(&app->progress,
             "tern-send: %u of %zu files (%s) to %s in %.2f s, %.1f MB/s average, %s carried "
             "(%u skipped, %llu bytes resumed), path %s (%s)\n",
             app->ok, app->count, total, app->peer_id[0] ? app->peer_id : "nobody", secs,
             secs > 0 ? (double)app->moved / secs / 1e6 : 0.0, moved, app->skipped,
             (unsigned long long)app->resumed, app->path_type[0] ? app->path_type : "unknown",
             app->path_detail[0] ? app->path_detail : "no connection");
}

/* Leave the room once everything is over: bye to the receiver, then stop (on_closed). */
static void finish(app_t *app)
{
    if (app->finishing)
        return;
    app->finishing = true;
    if (!app->t_last)
        app->t_last = now_of(app);
    if (app->pc && !app->path_type[0])
        snprintf(app->path_type, sizeof app->path_type, "%s",
                 fx_path_type(app->pc, app->path_detail, sizeof app->path_detail));
    fx_progress_clear(&app->progress);
    print_summary(app);
    app->exit_code = app->failed || app->interrupted || app->ok < app->count ? 1 : 0;
    if (app->tick)
        tern_loop_cancel_timer(app->loop, app->tick);
    app->tick = NULL;
    tern_signaling_close(app->sig);
    /* on_closed stops the loop; if the server never answers, stop anyway. */
    tern_loop_add_timer(app->loop, 3000, quit_now, app, NULL);
}

static void pump(app_t *app);
static void fill_window(app_t *app);

static void release(sfile_t *f)
{
    fx_hash_cancel(&f->job);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    EVP_MD_CTX_free(f->md);
    f->md = NULL;
    if (f->dc) {
        tern_dc_set_user_data(f->dc, NULL);
        /* The sender closes the channel (FILE-PROTOCOL.md). */
        tern_dc_close(f->dc, now_of(f->app));
        f->dc = NULL;
    }
}

static void settle(sfile_t *f, bool ok)
{
    app_t *app = f->app;
    bool was_active = f->state >= SF_OPENING && f->state <= SF_ENDED;
    release(f);
    f->state = ok ? SF_DONE : SF_FAILED;
    if (ok)
        app->ok++;
    else
        app->failed++;
    if (was_active)
        app->active--;
    if (app->streaming == f)
        app->streaming = NULL;
    app->progress.files_done++;
    app->t_last = now_of(app);
    if (app->finishing)
        return;
    fill_window(app);
    pump(app);
    if (app->next == app->count && app->active == 0)
        finish(app);
}

static void fail_file(sfile_t *f, bool tell_peer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_file(sfile_t *f, bool tell_peer, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (tell_peer && f->dc && tern_dc_state(f->dc) == TERN_DC_STATE_OPEN)
        fx_send_error(f->dc, now_of(f->app), why);
    fx_print(&f->app->progress, "failed %s: %s\n", f->name, why);
    settle(f, false);
}

/* ------------------------------------------------------------------------------------------ */
/* One file                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void start_file(app_t *app, sfile_t *f)
{
    struct stat st;
    f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0 || fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fail_file(f, false, "%s: %s", f->path, f->fd < 0 ? strerror(errno) : "not a file");
        return;
    }
    /* The size announced is the size now; the progress total follows it. */
    app->progress.total = app->progress.total - f->size + (uint64_t)st.st_size;
    f->size = (uint64_t)st.st_size;
    f->md = fx_md_new();
    tern_dc_init_t init = {.protocol = FX_SUBPROTOCOL};
    int err = f->md ? tern_pc_create_data_channel(app->pc, now_of(app), "file", &init, &f->dc)
                    : TERN_ERR_NOMEM;
    if (err) {
        fail_file(f, false, "no channel: %s", tern_strerror(err));
        return;
    }
    tern_dc_set_user_data(f->dc, f);
    tern_dc_set_buffered_amount_low_threshold(f->dc, SEND_LOW_WATER);
    f->state = SF_OPENING;
    app->active++;
    if (!app->t_first)
        app->t_first = now_of(app);
}

/* Open channels up to SEND_PARALLEL. A file that fails at once settles, which calls this
 * again: the flag keeps that from recursing once per unreadable file. */
static void fill_window(app_t *app)
{
    if (app->filling)
        return;
    app->filling = true;
    while (app->pc && !app->finishing && app->active < SEND_PARALLEL && app->next < app->count)
        start_file(app, &app->files[app->next++]);
    app->filling = false;
    if (app->pc && !app->finishing && app->next == app->count && app->active == 0)
        finish(app);
}

static void end_stream(sfile_t *f)
{
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(f->md, f->sha, &n) != 1) {
        fail_file(f, true, "SHA-256 failed");
        return;
    }
    int err = fx_send_end(f->dc, now_of(f->app), f->sha);
    if (err) {
        fail_file(f, false, "end not sent: %s", tern_strerror(err));
        return;
    }
    f->state = SF_ENDED;
    f->app->streaming = NULL;
    pump(f->app);
}

/* Send until the channel holds SEND_HIGH_WATER; buffered-amount-low brings us back. */
static void refill(sfile_t *f)
{
    app_t *app = f->app;
    while (f->state == SF_STREAMING && f->offset < f->size &&
           tern_dc_buffered_amount(f->dc) < SEND_HIGH_WATER) {
        uint64_t want = f->size - f->offset;
        size_t n = want < FX_MAX_CHUNK ? (size_t)want : FX_MAX_CHUNK;
        ssize_t got = pread(f->fd, app->buf, n, (off_t)f->offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            fail_file(f, true, "%s: %s", f->path,
                      got < 0 ? strerror(errno) : "shorter than announced (changed while sent)");
            return;
        }
        if (EVP_DigestUpdate(f->md, app->buf, (size_t)got) != 1) {
            fail_file(f, true, "SHA-256 failed");
            return;
        }
        int err = tern_dc_send(f->dc, now_of(app), app->buf, (size_t)got);
        if (err) {
            fail_file(f, false, "send failed: %s", tern_strerror(err));
            return;
        }
        f->offset += (uint64_t)got;
        app->moved += (uint64_t)got;
        app->progress.moved += (uint64_t)got;
        app->progress.done += (uint64_t)got;
    }
    if (f->state == SF_STREAMING && f->offset == f->size)
        end_stream(f);
}

/* The bytes of one file at a time: the first ready one, in the order of the list. */
static void pump(app_t *app)
{
    if (app->streaming || app->finishing)
        return;
    sfile_t *f = NULL;
    for (size_t i = 0; i < app->next && !f; i++)
        if (app->files[i].state == SF_READY)
            f = &app->files[i];
    if (!f)
        return;
    int err = fx_send_start(f->dc, now_of(app), f->start);
    if (err) {
        fail_file(f, false, "start not sent: %s", tern_strerror(err));
        return;
    }
    if (f->start > 0 && f->start < f->size)
        fx_print(&app->progress, "resumed %s at %llu\n", f->name, (unsigned long long)f->start);
    app->resumed += f->start;
    app->progress.done += f->start;
    f->offset = f->start;
    f->state = SF_STREAMING;
    app->streaming = f;
    refill(f);
}

static void on_prefix_hashed(void *arg, int err)
{
    sfile_t *f = arg;
    uint8_t mine[FX_SHA256_LEN];
    if (err || fx_digest_copy(f->md, mine) != 0) {
        fail_file(f, true, "%s: %s", f->path, err ? strerror(err) : "SHA-256 failed");
        return;
    }
    if (memcmp(mine, f->accept_sha, sizeof mine) == 0) {
        f->start = f->accept_offset;
    } else {
        /* Not our bytes: the receiver starts over (start 0 tells it to drop them). */
        fx_print(&f->app->progress,
                 "tern-send: %s: the receiver's %llu bytes differ from ours, sending "
                 "it all\n",
                 f->name, (unsigned long long)f->accept_offset);
        if (fx_md_reset(f->md) != 0) {
            fail_file(f, true, "SHA-256 failed");
            return;
        }
        f->start = 0;
    }
    f->state = SF_READY;
    pump(f->app);
}

static void on_accept(sfile_t *f, const fx_msg_t *m)
{
    if (m->offset > f->size) {
        fail_file(f, true, "the receiver accepted from %llu, past the size %llu",
                  (unsigned long long)m->offset, (unsigned long long)f->size);
        return;
    }
    f->accept_offset = m->offset;
    memcpy(f->accept_sha, m->sha256, sizeof f->accept_sha);
    if (m->offset == 0) {
        f->start = 0;
        f->state = SF_READY;
        pump(f->app);
        return;
    }
    /* Hash our own prefix (needed for the whole file's hash anyway) and compare. */
    f->state = SF_CHECKING;
    if (fx_hash_start(&f->job, f->app->loop, f->fd, f->md, 0, m->offset, on_prefix_hashed, f) != 0)
        fail_file(f, true, "out of memory");
}

static void on_done(sfile_t *f, const fx_msg_t *m)
{
    app_t *app = f->app;
    char hex[FX_HEX_LEN], theirs[FX_HEX_LEN];
    fx_hex(f->sha, hex);
    fx_hex(m->sha256, theirs);
    if (!m->ok || (m->has_sha256 && memcmp(m->sha256, f->sha, FX_SHA256_LEN) != 0)) {
        fail_file(f, false, "the receiver found it damaged (%s%s, its SHA-256 %s, ours %s)",
                  m->message ? m->message : "not ok", "", m->has_sha256 ? theirs : "none", hex);
        return;
    }
    if (f->start == f->size && f->size > 0) {
        app->skipped++;
        fx_print(&app->progress,
                 "skipped %s: the receiver has it already (%llu bytes, SHA-256 %s)\n", f->name,
                 (unsigned long long)f->size, hex);
    } else {
        fx_print(&app->progress, "sent %s %llu %s\n", f->name, (unsigned long long)f->size, hex);
    }
    settle(f, true);
}

/* ------------------------------------------------------------------------------------------ */
/* Channel and connection callbacks                                                           */
/* ------------------------------------------------------------------------------------------ */

static void on_open(tern_dc_t *dc, void *user)
{
    sfile_t *f = tern_dc_user_data(dc);
    (void)user;
    if (!f || f->state != SF_OPENING)
        return;
    int err = fx_send_file(dc, now_of(f->app), f->name, f->size);
    if (err) {
        fail_file(f, false, "file not offered: %s", tern_strerror(err));
        return;
    }
    f->state = SF_OFFERED;
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    sfile_t *f = tern_dc_user_data(dc);
    (void)user;
    if (!f)
        return;
    if (!is_text) {
        fail_file(f, true, "the receiver sent bytes");
        return;
    }
    fx_msg_t m;
    char why[256];
    if (fx_msg_parse(data, len, &m, why, sizeof why) != 0) {
        fail_file(f, true, "the receiver sent %s", why);
        return;
    }
    if (m.type == FX_MSG_ERROR)
        fail_file(f, false, "the receiver refused it: %s", m.message ? m.message : "no reason");
    else if (m.type == FX_MSG_ACCEPT && f->state == SF_OFFERED)
        on_accept(f, &m);
    else if (m.type == FX_MSG_DONE && f->state == SF_ENDED)
        on_done(f, &m);
    else if (m.type == FX_MSG_ACCEPT || m.type == FX_MSG_DONE)
        fail_file(f, true, "the receiver's %s came out of turn",
                  m.type == FX_MSG_ACCEPT ? "accept" : "done");
    /* Anything else is not for a sender (FILE-PROTOCOL.md, Extending). */
    fx_msg_clear(&m);
}

static void on_buffered_amount_low(tern_dc_t *dc, void *user)
{
    sfile_t *f = tern_dc_user_data(dc);
    (void)user;
    if (f && f->state == SF_STREAMING)
        refill(f);
}

static void on_close(tern_dc_t *dc, void *user)
{
    sfile_t *f = tern_dc_user_data(dc);
    (void)user;
    if (!f)
        return;
    tern_dc_set_user_data(dc, NULL);
    f->dc = NULL;
    if (f->state < SF_DONE) {
        f->app->interrupted = true;
        fail_file(f, false, "the channel closed at %llu of %llu bytes (run again to resume)",
                  (unsigned long long)f->offset, (unsigned long long)f->size);
    }
}

/* A peer that opens a file channel to us: we only send. */
static void on_data_channel(tern_pc_t *pc, void *user, tern_dc_t *dc)
{
    app_t *app = user;
    (void)pc;
    if (strcmp(tern_dc_protocol(dc), FX_SUBPROTOCOL) == 0) {
        fx_send_error(dc, now_of(app), "tern-send does not receive files");
        tern_dc_close(dc, now_of(app));
    }
}

static void interrupt_all(app_t *app, const char *why)
{
    app->interrupted = true;
    for (size_t i = 0; i < app->next; i++) {
        sfile_t *f = &app->files[i];
        if (f->state >= SF_OPENING && f->state <= SF_ENDED) {
            if (f->dc)
                tern_dc_set_user_data(f->dc, NULL);
            f->dc = NULL; /* freed with the pc */
            fx_print(&app->progress, "failed %s: %s at %llu of %llu bytes (run again to resume)\n",
                     f->name, why, (unsigned long long)f->offset, (unsigned long long)f->size);
            release(f);
            f->state = SF_FAILED;
            app->failed++;
            app->active--;
        }
    }
    app->streaming = NULL;
}

static void on_connection_state(tern_pc_t *pc, void *user, tern_pc_state_t state)
{
    app_t *app = user;
    if (state == TERN_PC_STATE_CONNECTED && !app->pc && !app->finishing) {
        app->pc = pc;
        const char *id = tern_signaling_peer_id(app->sig, pc);
        snprintf(app->peer_id, sizeof app->peer_id, "%s", id ? id : "?");
        fprintf(stderr, "tern-send: connected to %s, sending %zu files\n", app->peer_id,
                app->count);
        app->progress.start = app->progress.last_sample = app->progress.last_line = now_of(app);
        fill_window(app);
        if (app->count == 0)
            finish(app);
    } else if (pc == app->pc && (state == TERN_PC_STATE_FAILED || state == TERN_PC_STATE_CLOSED)) {
        snprintf(app->path_type, sizeof app->path_type, "%s",
                 fx_path_type(pc, app->path_detail, sizeof app->path_detail));
        interrupt_all(app, state == TERN_PC_STATE_FAILED ? "the connection failed"
                                                         : "the connection closed");
        finish(app);
    }
}

static void on_peer_left(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc)
{
    app_t *app = user;
    (void)s;
    (void)peer_id;
    if (!pc || pc != app->pc || app->finishing)
        return;
    snprintf(app->path_type, sizeof app->path_type, "%s",
             fx_path_type(pc, app->path_detail, sizeof app->path_detail));
    interrupt_all(app, "the receiver left");
    app->pc = NULL;
    finish(app);
}

static void on_connected(tern_signaling_t *s, void *user, const char *self_id, const char *room)
{
    app_t *app = user;
    (void)s;
    fprintf(stderr, "tern-send: in room %s as %s, waiting for a receiver\n", room, self_id);
    (void)app;
}

static void on_closed(tern_signaling_t *s, void *user, int code, const char *reason)
{
    app_t *app = user;
    (void)s;
    if (!app->finishing) {
        fprintf(stderr, "tern-send: signaling closed: %d %s\n", code, reason);
        interrupt_all(app, "the signaling connection closed");
        finish(app);
        app->exit_code = 1;
    }
    tern_loop_stop(app->loop);
}

static void on_tick(void *arg)
{
    app_t *app = arg;
    app->tick = NULL;
    if (app->pc)
        fx_progress_tick(&app->progress, now_of(app));
    if (!app->finishing)
        tern_loop_add_timer(app->loop, FX_PROGRESS_TTY_MS, on_tick, app, &app->tick);
}

static void on_signal(void *arg, int signo)
{
    app_t *app = arg;
    fx_progress_clear(&app->progress);
    fprintf(stderr, "tern-send: %s, stopping\n", signo == SIGINT ? "interrupted" : "terminated");
    if (app->finishing) {
        tern_loop_stop(app->loop);
        return;
    }
    interrupt_all(app, "stopped");
    finish(app);
}

/* ------------------------------------------------------------------------------------------ */
/* main                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static int parse_args(app_t *app, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int taken = fx_cli_option(&app->cli, "tern-send", argc, argv, &i);
        if (taken < 0)
            return 2;
        if (taken > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (a[0] == '-' && strcmp(a, "--") != 0 && a[1] != '\0') {
            fprintf(stderr, "tern-send: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--") == 0)
            a = ++i < argc ? argv[i] : NULL;
        if (a && add_argument(app, a) != 0)
            return 2;
    }
    if (!app->cli.url || app->count == 0) {
        fprintf(stderr, "tern-send: %s\n",
                !app->cli.url ? "--signal URL is required" : "no file to send");
        usage(stderr);
        return 2;
    }
    return check_names(app) == 0 ? 0 : 2;
}

static int run(app_t *app)
{
    tern_ctx_t *ctx = NULL;
    int sigfd = -1;
    int err = tern_ctx_new(NULL, &ctx);
    if (!err)
        err = tern_loop_new(ctx, &app->loop);
    if (!err && (sigfd = fx_watch_signals(app->loop, on_signal, app)) < 0)
        err = TERN_ERR_IO;
    tern_pc_config_t pc_cfg;
    tern_signaling_config_t cfg;
    fx_cli_configs(&app->cli, &pc_cfg, &cfg);
    tern_pc_callbacks_t pc_cbs = {
        .on_connection_state = on_connection_state,
        .on_data_channel = on_data_channel,
        .on_open = on_open,
        .on_message = on_message,
        .on_buffered_amount_low = on_buffered_amount_low,
        .on_close = on_close,
    };
    cfg.pc_callbacks = &pc_cbs;
    cfg.pc_user = app;
    tern_signaling_callbacks_t cbs = {
        .on_connected = on_connected,
        .on_peer_left = on_peer_left,
        .on_closed = on_closed,
    };
    for (size_t i = 0; i < app->count; i++)
        app->progress.total += app->files[i].size;
    app->progress.files_total = (unsigned)app->count;
    if (!err)
        err = tern_signaling_new(app->loop, &cfg, &cbs, app, &app->sig);
    if (!err && !app->cli.quiet)
        tern_loop_add_timer(app->loop, FX_PROGRESS_TTY_MS, on_tick, app, &app->tick);
    if (!err)
        err = tern_loop_run(app->loop);
    if (err) {
        fprintf(stderr, "tern-send: %s%s%s\n", tern_strerror(err), app->sig ? "" : ": ",
                app->sig ? "" : "cannot join the room");
        app->exit_code = 1;
    }
    tern_signaling_free(app->sig);
    tern_loop_free(app->loop);
    if (sigfd >= 0)
        close(sigfd);
    tern_ctx_free(ctx);
    return app->exit_code;
}

int main(int argc, char **argv)
{
    static app_t app;
    app.exit_code = 1;
    int rc = parse_args(&app, argc, argv);
    if (rc == 0) {
        fx_progress_init(&app.progress, "tern-send", "sent", !app.cli.quiet, 0);
        rc = run(&app);
    } else if (rc == 1) {
        rc = 0; /* --help */
    }
    for (size_t i = 0; i < app.count; i++) {
        release(&app.files[i]);
        free(app.files[i].path);
        free(app.files[i].name);
    }
    free(app.files);
    fx_cli_free(&app.cli);
    return rc;
}
