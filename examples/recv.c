/* SPDX-License-Identifier: MIT */
/*
 * tern-recv: receives files from tern-send (or the demo page) met in a room of a tern-signal
 * server, over the file protocol of examples/web/FILE-PROTOCOL.md (version 2), into an output
 * folder.
 *
 * Names from the peer are never trusted as paths: a name must pass fx_name_problem (relative,
 * no "." or "..", no control character, bounded), folders are walked from the output folder
 * with openat(O_NOFOLLOW) one component at a time (a symbolic link on the way is refused), and
 * bytes go to a partial file beside the final name (".BASENAME.tern-part"), renamed only when
 * the whole file's SHA-256 matches the sender's, without replacing anything unless --force.
 * An interrupted transfer keeps its partial; the next `file` of that name is answered with
 * its length and the SHA-256 of those bytes, so the sender resumes after them. A file already
 * in place with the same size is offered whole: if identical, nothing is sent or written.
 *
 * Bounded whatever the sender does: at most 16 file channels per peer at once (more are
 * refused and closed), text messages of at most 64 KiB, a size no larger than the free space,
 * never more bytes than announced; bytes are written as they come (nothing is held in memory),
 * and a prefix is hashed in slices from the loop.
 *
 * stdout, one line each: "received NAME SIZE SHA256", "resumed NAME at OFFSET", "skipped NAME:
 * ...", "failed NAME: REASON", "interrupted NAME at N of SIZE bytes ...", then a summary when
 * it exits: once a peer that sent files has left and nothing is in progress (unless --stay),
 * or on SIGINT/SIGTERM. Exit status: 0 when every file arrived intact; 1 when one failed or
 * was interrupted; 2 for a usage error.
 */
#include "file_xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* File channels one peer may have at once; more are refused (a flood of channels). */
#define RECV_MAX_PER_PEER 16
/* Channels a pc may have at all (the stack refuses more). */
#define RECV_MAX_CHANNELS 128
#define MAX_SENDERS 64
/* Refusals of a flood printed one by one; the rest are counted. */
#define FLOOD_LINES 3

typedef enum {
    RF_WAIT_FILE, /* channel open, no `file` yet */
    RF_HASHING,   /* hashing what we hold, for `accept` */
    RF_ACCEPTED,  /* `accept` sent, waiting for `start` */
    RF_RECEIVING, /* bytes coming */
    RF_DONE,
    RF_FAILED,
} rf_state_t;

typedef struct app app_t;

typedef struct rfile {
    struct rfile *next;
    app_t *app;
    tern_pc_t *pc;
    tern_dc_t *dc;
    rf_state_t state;
    char *name;  /* checked: printable UTF-8, a relative path */
    char *shown; /* a refused name, quoted for the terminal */
    uint64_t size;
    bool has_expect;
    uint8_t expect[FX_SHA256_LEN]; /* the sha256 of `file`, if the sender gave one */
    int dirfd;                     /* the folder of the final name */
    char *base, *part;             /* final and partial names in it */
    int fd;
    bool existing; /* fd is the final file, offered whole */
    uint64_t have; /* bytes in place */
    uint64_t start;
    EVP_MD_CTX *md;
    fx_hash_job_t job;
} rfile_t;

struct app {
    fx_cli_t cli;
    const char *out;
    int outfd;
    bool force, stay;
    tern_loop_t *loop;
    tern_signaling_t *sig;
    rfile_t *files;
    char senders[MAX_SENDERS][128]; /* peers that opened file channels */
    size_t sender_count;
    bool sender_left;
    unsigned ok, failed, interrupted, skipped, refused_flood;
    uint64_t moved, resumed, bytes_ok;
    tern_time_t t_first, t_last;
    bool finishing;
    fx_progress_t progress;
    tern_timer_t *tick;
    char path_type[16], path_detail[256], last_peer[128];
    int exit_code;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tern-recv --signal ws://HOST:PORT/ws/ROOM [--out DIR] [options]\n"
               "Receive the files peers of the room send (tern-send, the demo page) into DIR.\n"
               "An interrupted transfer resumes when the sender runs again.\n"
               "  --out DIR          where files go (default: the current folder; made if\n"
               "                     missing)\n"
               "  --force            replace files that exist (default: refuse them, unless\n"
               "                     identical to the sender's)\n"
               "  --stay             keep running after a sender has left (until Ctrl-C)\n");
    fx_cli_usage(f);
    fprintf(f, "  --help             this text\n"
               "stdout: 'received NAME SIZE SHA256', 'resumed NAME at OFFSET', 'skipped NAME:\n"
               "...', 'failed NAME: REASON', 'interrupted NAME ...' and a summary. Exit 0 if\n"
               "every file arrived intact, 1 otherwise, 2 for a usage error.\n");
}

static tern_time_t now_of(const app_t *app)
{
    return tern_loop_now(app->loop);
}

static const char *peer_of(app_t *app, tern_pc_t *pc)
{
    const char *id = pc ? tern_signaling_peer_id(app->sig, pc) : NULL;
    return id ? id : "?";
}

/* ------------------------------------------------------------------------------------------ */
/* Ending                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void quit_now(void *arg)
{
    tern_loop_stop(((app_t *)arg)->loop);
}

static void finish(app_t *app)
{
    if (app->finishing)
        return;
    app->finishing = true;
    fx_progress_clear(&app->progress);
    double secs =
        app->t_first ? (double)((app->t_last ? app->t_last : now_of(app)) - app->t_first) / 1e6 : 0;
    char total[32], moved[32];
    fx_format_bytes(app->bytes_ok, total, sizeof total);
    fx_format_bytes(app->moved, moved, sizeof moved);
    if (app->refused_flood > FLOOD_LINES)
        fx_print(&app->progress, "tern-recv: refused %u file channels in all (too many at once)\n",
                 app->refused_flood);
    fx_print(&app->progress,
             "tern-recv: %u files (%s) from %s in %.2f s, %.1f MB/s average, %s carried (%u "
             "skipped, %llu bytes resumed), %u failed, %u interrupted, path %s (%s)\n",
             app->ok, total, app->last_peer[0] ? app->last_peer : "nobody", secs,
             secs > 0 ? (double)app->moved / secs / 1e6 : 0.0, moved, app->skipped,
             (unsigned long long)app->resumed, app->failed, app->interrupted,
             app->path_type[0] ? app->path_type : "unknown",
             app->path_detail[0] ? app->path_detail : "no connection");
    app->exit_code = app->failed || app->interrupted ? 1 : 0;
    if (app->tick)
        tern_loop_cancel_timer(app->loop, app->tick);
    app->tick = NULL;
    tern_signaling_close(app->sig);
    tern_loop_add_timer(app->loop, 3000, quit_now, app, NULL);
}

static bool in_progress(const app_t *app)
{
    for (const rfile_t *rf = app->files; rf; rf = rf->next)
        if (rf->state < RF_DONE)
            return true;
    return false;
}

/* One-shot by default: done once a sender has left and nothing else is in progress. */
static void check_exit(app_t *app)
{
    if (!app->stay && app->sender_left && !in_progress(app))
        finish(app);
}

/* ------------------------------------------------------------------------------------------ */
/* One file                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void note_path(app_t *app, tern_pc_t *pc)
{
    snprintf(app->path_type, sizeof app->path_type, "%s",
             fx_path_type(pc, app->path_detail, sizeof app->path_detail));
    snprintf(app->last_peer, sizeof app->last_peer, "%s", peer_of(app, pc));
}

/* Close what the file holds. The partial goes when it is worthless: damaged (discard) or
 * empty; otherwise it stays for a resume. */
static void release(rfile_t *rf, bool discard)
{
    fx_hash_cancel(&rf->job);
    if (rf->fd >= 0) {
        struct stat st;
        bool empty = fstat(rf->fd, &st) == 0 && st.st_size == 0;
        close(rf->fd);
        rf->fd = -1;
        if (!rf->existing && rf->part && rf->dirfd >= 0 && (discard || empty))
            unlinkat(rf->dirfd, rf->part, 0);
    }
    if (rf->dirfd >= 0)
        close(rf->dirfd);
    rf->dirfd = -1;
    EVP_MD_CTX_free(rf->md);
    rf->md = NULL;
}

static void unlink_rfile(app_t *app, rfile_t *rf)
{
    for (rfile_t **p = &app->files; *p; p = &(*p)->next)
        if (*p == rf) {
            *p = rf->next;
            break;
        }
    free(rf->name);
    free(rf->shown);
    free(rf->base);
    free(rf->part);
    free(rf);
}

static void fail(rfile_t *rf, bool discard, bool tell_peer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Refuse or abort: say why (to the sender too), drop the channel, keep or discard the bytes. */
static void fail(rfile_t *rf, bool discard, bool tell_peer, const char *fmt, ...)
{
    app_t *app = rf->app;
    char why[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    tern_time_t now = now_of(app);
    if (tell_peer && rf->dc && tern_dc_state(rf->dc) == TERN_DC_STATE_OPEN)
        fx_send_error(rf->dc, now, why);
    fx_print(&app->progress, "failed %s: %s\n",
             rf->name    ? rf->name
             : rf->shown ? rf->shown
                         : "(a file channel)",
             why);
    release(rf, discard);
    rf->state = RF_FAILED;
    app->failed++;
    app->t_last = now;
    app->progress.files_done++;
    /* The sender should close; a hostile one may not, so we do (queued data goes first). */
    if (rf->dc)
        tern_dc_close(rf->dc, now);
    check_exit(app);
}

/* Open (making them) the folders of name below the output folder, following no link. */
static int open_folders(app_t *app, char *name, char **base, char *why, size_t cap)
{
    int dfd = dup(app->outfd);
    char *comp = name, *slash;
    while (dfd >= 0 && (slash = strchr(comp, '/'))) {
        *slash = '\0';
        int next = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && (mkdirat(dfd, comp, 0755) == 0 || errno == EEXIST))
            next = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            snprintf(why, cap, "folder %s: %s", name,
                     errno == ELOOP || errno == ENOTDIR ? "not a folder (or a symbolic link)"
                                                        : strerror(errno));
        *slash = '/';
        close(dfd);
        dfd = next;
        comp = slash + 1;
    }
    if (dfd < 0 && !why[0])
        snprintf(why, cap, "%s", strerror(errno));
    *base = comp;
    return dfd;
}

static char *partial_name(const char *base)
{
    size_t n = strlen(base);
    char *part = malloc(FX_MAX_COMPONENT + 1);
    if (!part)
        return NULL;
    if (1 + n + sizeof FX_PART_SUFFIX - 1 <= FX_MAX_COMPONENT) {
        snprintf(part, FX_MAX_COMPONENT + 1, ".%s%s", base, FX_PART_SUFFIX);
        return part;
    }
    /* Too long for a prefix and suffix: name it by a hash of the name instead. */
    uint8_t h[FX_SHA256_LEN];
    char hex[FX_HEX_LEN];
    unsigned int len = 0;
    EVP_Digest(base, n, h, &len, EVP_sha256(), NULL);
    fx_hex(h, hex);
    snprintf(part, FX_MAX_COMPONENT + 1, ".tern-%.32s%s", hex, FX_PART_SUFFIX);
    return part;
}

static bool name_busy(const app_t *app, const rfile_t *self, const char *name)
{
    for (const rfile_t *rf = app->files; rf; rf = rf->next)
        if (rf != self && rf->state < RF_DONE && rf->name && strcmp(rf->name, name) == 0)
            return true;
    return false;
}

static void on_hashed(void *arg, int err)
{
    rfile_t *rf = arg;
    uint8_t prefix[FX_SHA256_LEN];
    if (err || fx_digest_copy(rf->md, prefix) != 0) {
        fail(rf, false, true, "cannot read what we have of it: %s",
             err ? strerror(err) : "SHA-256 failed");
        return;
    }
    int rc = fx_send_accept(rf->dc, now_of(rf->app), rf->have, prefix);
    if (rc) {
        fail(rf, false, false, "accept not sent: %s", tern_strerror(rc));
        return;
    }
    rf->state = RF_ACCEPTED;
}

/* The final name exists: offer it whole if it may be the same file, else refuse. */
static int use_existing(rfile_t *rf, const struct stat *st)
{
    app_t *app = rf->app;
    if (!S_ISREG(st->st_mode)) {
        fail(rf, false, true, "it exists and is not a regular file");
        return -1;
    }
    if ((uint64_t)st->st_size != rf->size) {
        if (app->force)
            return 1; /* replaced by a fresh transfer */
        fail(rf, false, true, "it exists (use --force to replace it)");
        return -1;
    }
    rf->fd = openat(rf->dirfd, rf->base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (rf->fd < 0) {
        fail(rf, false, true, "it exists and cannot be read: %s", strerror(errno));
        return -1;
    }
    rf->existing = true;
    rf->have = rf->size;
    return 0;
}

static int open_partial(rfile_t *rf, bool truncate)
{
    struct stat st;
    rf->fd = openat(rf->dirfd, rf->part,
                    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
    if (rf->fd < 0 || fstat(rf->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fail(rf, false, true, "cannot write %s: %s", rf->part,
             rf->fd < 0 ? strerror(errno) : "not a regular file");
        return -1;
    }
    /* A partial longer than the file is not a prefix of it. */
    if ((uint64_t)st.st_size > rf->size && ftruncate(rf->fd, 0) != 0) {
        fail(rf, false, true, "cannot truncate %s: %s", rf->part, strerror(errno));
        return -1;
    }
    rf->have = (uint64_t)st.st_size > rf->size ? 0 : (uint64_t)st.st_size;
    struct statvfs vfs;
    uint64_t need = rf->size - rf->have;
    if (fstatvfs(rf->fd, &vfs) == 0 && need > (uint64_t)vfs.f_bavail * vfs.f_frsize) {
        char a[32], b[32];
        fx_format_bytes(need, a, sizeof a);
        fx_format_bytes((uint64_t)vfs.f_bavail * vfs.f_frsize, b, sizeof b);
        fail(rf, false, true, "not enough space: %s more needed, %s free", a, b);
        return -1;
    }
    return 0;
}

static void on_file(rfile_t *rf, fx_msg_t *m)
{
    app_t *app = rf->app;
    char q[300], why[400] = "";
    if (m->version != FX_VERSION) {
        fail(rf, false, true, "unsupported version");
        return;
    }
    const char *problem = fx_name_problem(m->name, m->name_len);
    if (problem) {
        fx_quote(m->name, m->name_len, q, sizeof q);
        rf->shown = strdup(q);
        fail(rf, false, true, "refused: %s", problem);
        return;
    }
    rf->name = m->name; /* checked: printable, NUL-free */
    m->name = NULL;
    rf->size = m->size;
    rf->has_expect = m->has_sha256;
    memcpy(rf->expect, m->sha256, sizeof rf->expect);
    app->progress.total += rf->size;
    app->progress.files_total++;
    if (!app->t_first)
        app->t_first = now_of(app);
    note_path(app, rf->pc);
    if (name_busy(app, rf, rf->name)) {
        fail(rf, false, true, "it is already being received on another channel");
        return;
    }
    char *copy = strdup(rf->name), *base = NULL;
    rf->dirfd = copy ? open_folders(app, copy, &base, why, sizeof why) : -1;
    if (rf->dirfd < 0 || !(rf->base = strdup(base)) || !(rf->part = partial_name(rf->base))) {
        free(copy);
        fail(rf, false, true, "%s", why[0] ? why : "out of memory");
        return;
    }
    free(copy);
    struct stat st;
    int fresh = 1;
    if (fstatat(rf->dirfd, rf->base, &st, AT_SYMLINK_NOFOLLOW) == 0)
        fresh = use_existing(rf, &st);
    if (fresh < 0 || (fresh > 0 && open_partial(rf, false) != 0))
        return;
    rf->md = fx_md_new();
    if (!rf->md ||
        fx_hash_start(&rf->job, app->loop, rf->fd, rf->md, 0, rf->have, on_hashed, rf) != 0) {
        fail(rf, false, true, "out of memory");
        return;
    }
    rf->state = RF_HASHING;
}

static void on_start(rfile_t *rf, const fx_msg_t *m)
{
    app_t *app = rf->app;
    if (m->offset != rf->have && m->offset != 0) {
        fail(rf, false, true, "start at %llu, but we accepted from %llu",
             (unsigned long long)m->offset, (unsigned long long)rf->have);
        return;
    }
    if (m->offset == 0 && rf->have > 0) {
        /* The sender's prefix differs from ours: start over. */
        if (rf->existing) {
            if (!app->force) {
                fail(rf, false, true,
                     "it exists and differs from the sender's (use --force to replace it)");
                return;
            }
            close(rf->fd);
            rf->fd = -1;
            rf->existing = false;
            if (open_partial(rf, true) != 0)
                return;
        } else if (ftruncate(rf->fd, 0) != 0) {
            fail(rf, false, true, "cannot truncate %s: %s", rf->part, strerror(errno));
            return;
        }
        rf->have = 0;
        if (fx_md_reset(rf->md) != 0) {
            fail(rf, true, true, "SHA-256 failed");
            return;
        }
    }
    rf->start = rf->have;
    if (rf->start > 0 && rf->start < rf->size)
        fx_print(&app->progress, "resumed %s at %llu\n", rf->name, (unsigned long long)rf->start);
    app->resumed += rf->start;
    app->progress.done += rf->start;
    rf->state = RF_RECEIVING;
}

static void on_bytes(rfile_t *rf, const uint8_t *data, size_t len)
{
    app_t *app = rf->app;
    if (len > rf->size - rf->have) {
        fail(rf, true, true, "more bytes than the %llu announced", (unsigned long long)rf->size);
        return;
    }
    for (size_t done = 0; done < len;) {
        ssize_t n = pwrite(rf->fd, data + done, len - done, (off_t)(rf->have + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* What was written stays: free some space and run again to resume. */
            fail(rf, false, true, "write failed: %s", n < 0 ? strerror(errno) : "no progress");
            return;
        }
        done += (size_t)n;
    }
    if (EVP_DigestUpdate(rf->md, data, len) != 1) {
        fail(rf, true, true, "SHA-256 failed");
        return;
    }
    rf->have += len;
    app->moved += len;
    app->progress.moved += len;
    app->progress.done += len;
}

static void on_end(rfile_t *rf, const fx_msg_t *m)
{
    app_t *app = rf->app;
    tern_time_t now = now_of(app);
    uint8_t got[FX_SHA256_LEN] = {0};
    unsigned int n = 0;
    char mine[FX_HEX_LEN], theirs[FX_HEX_LEN];
    if (rf->have != rf->size) {
        fx_send_done(rf->dc, now, false, rf->have, got, "fewer bytes than announced");
        fail(rf, true, false, "end after %llu of %llu bytes", (unsigned long long)rf->have,
             (unsigned long long)rf->size);
        return;
    }
    if (EVP_DigestFinal_ex(rf->md, got, &n) != 1) {
        fail(rf, true, true, "SHA-256 failed");
        return;
    }
    fx_hex(got, mine);
    fx_hex(m->sha256, theirs);
    if (memcmp(got, m->sha256, sizeof got) != 0 ||
        (rf->has_expect && memcmp(got, rf->expect, sizeof got) != 0)) {
        fx_send_done(rf->dc, now, false, rf->have, got, "SHA-256 mismatch");
        fail(rf, true, false, "SHA-256 mismatch: the sender's %s, received %s: discarded", theirs,
             mine);
        return;
    }
    if (!rf->existing && renameat2(rf->dirfd, rf->part, rf->dirfd, rf->base,
                                   app->force ? 0 : RENAME_NOREPLACE) != 0) {
        int e = errno;
        fx_send_done(rf->dc, now, false, rf->have, got, "not stored");
        fail(rf, true, false, "%s",
             e == EEXIST ? "it appeared meanwhile (use --force)" : strerror(e));
        return;
    }
    fx_send_done(rf->dc, now, true, rf->have, got, NULL);
    if (rf->existing && rf->size > 0) {
        app->skipped++;
        fx_print(&app->progress, "skipped %s: already here, identical (%llu bytes, SHA-256 %s)\n",
                 rf->name, (unsigned long long)rf->size, mine);
    } else {
        fx_print(&app->progress, "received %s %llu %s\n", rf->name, (unsigned long long)rf->size,
                 mine);
    }
    release(rf, false);
    rf->state = RF_DONE;
    app->ok++;
    app->bytes_ok += rf->size;
    app->t_last = now;
    app->progress.files_done++;
    note_path(app, rf->pc);
    check_exit(app);
}

static void on_text(rfile_t *rf, const uint8_t *data, size_t len)
{
    fx_msg_t m;
    char why[256];
    if (fx_msg_parse(data, len, &m, why, sizeof why) != 0) {
        fail(rf, true, true, "%s", why);
        return;
    }
    switch (m.type) {
    case FX_MSG_FILE:
        if (rf->state == RF_WAIT_FILE)
            on_file(rf, &m);
        else
            fail(rf, true, true, "a second file on one channel");
        break;
    case FX_MSG_START:
        if (rf->state == RF_ACCEPTED)
            on_start(rf, &m);
        else
            fail(rf, true, true, "start out of turn");
        break;
    case FX_MSG_END:
        if (rf->state == RF_RECEIVING)
            on_end(rf, &m);
        else
            fail(rf, true, true, "end out of turn");
        break;
    case FX_MSG_ERROR:
        /* The sender gave up (its file changed, say): what we have stays for a resume. */
        fail(rf, false, false, "the sender aborted: %s", m.message ? m.message : "no reason");
        break;
    default:
        if (rf->state == RF_WAIT_FILE)
            fail(rf, true, true, "the first message must be file");
        break; /* unknown types are ignored (FILE-PROTOCOL.md, Extending) */
    }
    fx_msg_clear(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* Channel and connection callbacks                                                           */
/* ------------------------------------------------------------------------------------------ */

static void note_sender(app_t *app, tern_pc_t *pc)
{
    const char *id = peer_of(app, pc);
    for (size_t i = 0; i < app->sender_count; i++)
        if (strcmp(app->senders[i], id) == 0)
            return;
    if (app->sender_count < MAX_SENDERS)
        snprintf(app->senders[app->sender_count++], sizeof app->senders[0], "%s", id);
}

static bool was_sender(const app_t *app, const char *id)
{
    for (size_t i = 0; i < app->sender_count; i++)
        if (strcmp(app->senders[i], id) == 0)
            return true;
    return false;
}

static unsigned active_of(const app_t *app, const tern_pc_t *pc)
{
    unsigned n = 0;
    for (const rfile_t *rf = app->files; rf; rf = rf->next)
        if (rf->pc == pc && rf->state < RF_DONE)
            n++;
    return n;
}

/* A channel refused before it has a file: a flood is counted, its first lines printed. */
static void refuse_channel(app_t *app, tern_dc_t *dc, const char *why, bool flood)
{
    tern_time_t now = now_of(app);
    fx_send_error(dc, now, why);
    tern_dc_close(dc, now);
    app->failed += !flood;
    if (!flood || ++app->refused_flood <= FLOOD_LINES)
        fx_print(&app->progress, "failed (a file channel from %s): %s\n",
                 peer_of(app, tern_dc_pc(dc)), why);
}

static void on_data_channel(tern_pc_t *pc, void *user, tern_dc_t *dc)
{
    app_t *app = user;
    const char *proto = tern_dc_protocol(dc);
    if (strcmp(proto, FX_SUBPROTOCOL_V1) == 0) {
        refuse_channel(app, dc, "unsupported version", false);
        return;
    }
    if (strcmp(proto, FX_SUBPROTOCOL) != 0 || app->finishing)
        return; /* not a file channel: not ours */
    note_sender(app, pc);
    if (active_of(app, pc) >= RECV_MAX_PER_PEER) {
        refuse_channel(app, dc, "too many files at once (at most 16 per peer)", true);
        return;
    }
    rfile_t *rf = calloc(1, sizeof *rf);
    if (!rf) {
        refuse_channel(app, dc, "out of memory", false);
        return;
    }
    *rf = (rfile_t){.next = app->files, .app = app, .pc = pc, .dc = dc, .dirfd = -1, .fd = -1};
    app->files = rf;
    tern_dc_set_user_data(dc, rf);
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    rfile_t *rf = tern_dc_user_data(dc);
    (void)user;
    if (!rf || rf->state >= RF_DONE)
        return;
    if (is_text)
        on_text(rf, data, len);
    else if (rf->state == RF_RECEIVING)
        on_bytes(rf, data, len);
    else
        fail(rf, true, true, "bytes before start");
}

/* The channel or the connection went before `done`: keep the bytes for a resume. */
static void interrupt(rfile_t *rf, const char *why)
{
    app_t *app = rf->app;
    if (rf->name && rf->state < RF_DONE) {
        fx_print(&app->progress, "interrupted %s at %llu of %llu bytes (%s; kept for resume)\n",
                 rf->name, (unsigned long long)rf->have, (unsigned long long)rf->size, why);
        app->interrupted++;
        app->progress.files_done++;
        app->t_last = now_of(app);
    }
    release(rf, false);
    rf->state = RF_FAILED;
}

static void on_close(tern_dc_t *dc, void *user)
{
    app_t *app = user;
    rfile_t *rf = tern_dc_user_data(dc);
    if (!rf)
        return;
    tern_dc_set_user_data(dc, NULL);
    rf->dc = NULL;
    interrupt(rf, "the channel closed");
    unlink_rfile(app, rf);
    check_exit(app);
}

static void drop_peer(app_t *app, tern_pc_t *pc, const char *why)
{
    for (rfile_t *rf = app->files, *next; rf; rf = next) {
        next = rf->next;
        if (rf->pc != pc)
            continue;
        if (rf->dc)
            tern_dc_set_user_data(rf->dc, NULL);
        rf->dc = NULL;
        interrupt(rf, why);
        unlink_rfile(app, rf);
    }
}

static void on_peer_left(tern_signaling_t *s, void *user, const char *peer_id, tern_pc_t *pc)
{
    app_t *app = user;
    (void)s;
    if (pc)
        drop_peer(app, pc, "the sender left");
    if (peer_id && was_sender(app, peer_id))
        app->sender_left = true;
    check_exit(app);
}

static void on_connection_state(tern_pc_t *pc, void *user, tern_pc_state_t state)
{
    app_t *app = user;
    if (state != TERN_PC_STATE_FAILED)
        return;
    const char *id = peer_of(app, pc);
    drop_peer(app, pc, "the connection failed");
    if (was_sender(app, id))
        app->sender_left = true;
    check_exit(app);
}

static void on_connected(tern_signaling_t *s, void *user, const char *self_id, const char *room)
{
    app_t *app = user;
    (void)s;
    fprintf(stderr, "tern-recv: in room %s as %s, receiving into %s\n", room, self_id, app->out);
}

static void on_closed(tern_signaling_t *s, void *user, int code, const char *reason)
{
    app_t *app = user;
    (void)s;
    if (!app->finishing) {
        fprintf(stderr, "tern-recv: signaling closed: %d %s\n", code, reason);
        for (rfile_t *rf = app->files; rf; rf = rf->next)
            if (rf->state < RF_DONE)
                interrupt(rf, "the signaling connection closed");
        finish(app);
        app->exit_code = 1;
    }
    tern_loop_stop(app->loop);
}

static void on_tick(void *arg)
{
    app_t *app = arg;
    app->tick = NULL;
    if (in_progress(app))
        fx_progress_tick(&app->progress, now_of(app));
    if (!app->finishing)
        tern_loop_add_timer(app->loop, FX_PROGRESS_TTY_MS, on_tick, app, &app->tick);
}

static void on_signal(void *arg, int signo)
{
    app_t *app = arg;
    if (app->finishing) {
        tern_loop_stop(app->loop);
        return;
    }
    fx_progress_clear(&app->progress);
    fprintf(stderr, "tern-recv: %s, stopping\n", signo == SIGINT ? "interrupted" : "terminated");
    for (rfile_t *rf = app->files; rf; rf = rf->next)
        if (rf->state < RF_DONE)
            interrupt(rf, "stopped");
    finish(app);
}

/* ------------------------------------------------------------------------------------------ */
/* main                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static int parse_args(app_t *app, int argc, char **argv)
{
    app->out = ".";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int taken = fx_cli_option(&app->cli, "tern-recv", argc, argv, &i);
        if (taken < 0)
            return 2;
        if (taken > 0)
            continue;
        if (strcmp(a, "--out") == 0 && i + 1 < argc) {
            app->out = argv[++i];
        } else if (strcmp(a, "--force") == 0) {
            app->force = true;
        } else if (strcmp(a, "--stay") == 0) {
            app->stay = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else {
            fprintf(stderr, "tern-recv: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!app->cli.url) {
        fprintf(stderr, "tern-recv: --signal URL is required\n");
        usage(stderr);
        return 2;
    }
    if (mkdir(app->out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "tern-recv: cannot make %s: %s\n", app->out, strerror(errno));
        return 2;
    }
    app->outfd = open(app->out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (app->outfd < 0) {
        fprintf(stderr, "tern-recv: %s: %s\n", app->out, strerror(errno));
        return 2;
    }
    return 0;
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
    pc_cfg.max_channels = RECV_MAX_CHANNELS;
    tern_pc_callbacks_t pc_cbs = {
        .on_connection_state = on_connection_state,
        .on_data_channel = on_data_channel,
        .on_message = on_message,
        .on_close = on_close,
    };
    cfg.pc_callbacks = &pc_cbs;
    cfg.pc_user = app;
    tern_signaling_callbacks_t cbs = {
        .on_connected = on_connected,
        .on_peer_left = on_peer_left,
        .on_closed = on_closed,
    };
    if (!err)
        err = tern_signaling_new(app->loop, &cfg, &cbs, app, &app->sig);
    if (!err) {
        fx_progress_init(&app->progress, "tern-recv", "received", !app->cli.quiet, now_of(app));
        if (!app->cli.quiet)
            tern_loop_add_timer(app->loop, FX_PROGRESS_TTY_MS, on_tick, app, &app->tick);
        err = tern_loop_run(app->loop);
    }
    if (err) {
        fprintf(stderr, "tern-recv: %s\n", tern_strerror(err));
        app->exit_code = 1;
    }
    /* Anything still open is freed with the pcs; its partial stays. */
    for (rfile_t *rf = app->files; rf; rf = rf->next)
        release(rf, false);
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
    app.outfd = -1;
    int rc = parse_args(&app, argc, argv);
    if (rc == 0)
        rc = run(&app);
    else if (rc == 1)
        rc = 0; /* --help */
    while (app.files)
        unlink_rfile(&app, app.files);
    if (app.outfd >= 0)
        close(app.outfd);
    fx_cli_free(&app.cli);
    return rc;
}
