/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of the file transfer (examples/web/FILE-PROTOCOL.md, version 2):
 * tern-signal, tern-send and tern-recv run here as child processes on 127.0.0.1, in a
 * temporary folder the test makes and removes.
 *
 * - The shared code's checks: names from the peer (every refusal rule, UTF-8), every message
 *   type parsed and refused, quoting for the terminal, and the progress display (plain lines
 *   and the terminal's bar, driven with given times so that every figure is exact).
 * - Native to native over loopback: files of 0 B, 1 B and 1 MiB and a folder tree in one run;
 *   then one large file (1 GiB; TERN_FILES_BIG_MIB under sanitizers) with the receiver's
 *   resident memory sampled throughout (bounded: the file never sits in memory). Contents
 *   compared byte for byte.
 * - Resume: the sender is killed (SIGKILL) half-way; both are run again and the transfer
 *   continues from the receiver's partial file ("resumed NAME at N", N at least half); a
 *   damaged partial is detected by its prefix hash and sent again in full; a file already
 *   there and identical is skipped; one that differs is refused without --force and replaced
 *   with it.
 * - A hostile sender (a library client written here) against tern-recv: a path with "..", an
 *   absolute path, a control character, a symbolic link in the output folder, a size that lies
 *   both ways, a hash that does not match, a size larger than the disk, bytes before start,
 *   text that is not JSON, version 1, and a flood of channels. Each gets an `error` (or a
 *   `done` with ok false) with a clear message, and nothing is written outside the output
 *   folder, nor any final file for what was refused.
 *
 * The programs' paths come from CMake (TERN_SIGNAL_PATH, TERN_SEND_PATH, TERN_RECV_PATH);
 * without them the test skips.
 */
#include "check.h"
#include "file_xfer.h"
#include "tern/signaling.h"
#include "tern/tern.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TERN_FILES_BIG_MIB
#define TERN_FILES_BIG_MIB 1024
#define CHECK_MEMORY 1
#else
#define CHECK_MEMORY 0
#endif

/* The receiver's resident memory during the large transfer: well under the file's size. */
#define RECV_MAX_RSS_KIB (64 * 1024)
#define GIVE_UP_MS 300000

static char root[256];      /* the test's temporary folder */
static char signal_url[64]; /* ws://127.0.0.1:PORT/ws */
static int room_seq;

static int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define PATH_CAP 1024

static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Paths are built in PATH_CAP buffers (far longer than any the test makes). */
static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, PATH_CAP, fmt, ap);
    va_end(ap);
}

static void path_of(char *out, size_t cap, const char *rel)
{
    (void)cap;
    pathf(out, "%s/%s", root, rel);
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static uint64_t mix(uint64_t *state)
{
    /* splitmix64: fast, and no two positions of a file alike. */
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static bool make_file(const char *path, uint64_t size, uint64_t seed)
{
    static uint64_t block[1 << 17]; /* 1 MiB */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return false;
    uint64_t state = seed;
    bool ok = true;
    for (uint64_t done = 0; ok && done < size;) {
        for (size_t i = 0; i < sizeof block / sizeof block[0]; i++)
            block[i] = mix(&state);
        size_t n = size - done < sizeof block ? (size_t)(size - done) : sizeof block;
        ok = write(fd, block, n) == (ssize_t)n;
        done += n;
    }
    return close(fd) == 0 && ok;
}

static bool same_files(const char *a, const char *b)
{
    static uint8_t x[1 << 20], y[1 << 20];
    int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
    bool same = fa >= 0 && fb >= 0;
    while (same) {
        ssize_t n = read(fa, x, sizeof x), m = read(fb, y, sizeof y);
        same = n == m && n >= 0 && memcmp(x, y, (size_t)(n > 0 ? n : 0)) == 0;
        if (n <= 0)
            break;
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return same;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Remove a tree (no symbolic link is followed). */
static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[PATH_CAP];
            pathf(sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Every entry under dir, as "rel/path" lines, sorted by readdir order (for messages). */
static size_t count_entries(const char *dir, char *list, size_t cap)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n++;
        if (list) {
            size_t len = strlen(list);
            snprintf(list + len, cap - len, "%s ", e->d_name);
        }
    }
    if (d)
        closedir(d);
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* Child processes                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct proc {
    pid_t pid;
    int status; /* exit code, or -1 (signal, or still running) */
    char out[300], err[300];
} proc_t;

static bool proc_start(proc_t *p, const char *tag, char *const argv[])
{
    memset(p, 0, sizeof *p);
    p->status = -1;
    snprintf(p->out, sizeof p->out, "%s/%s.out", root, tag);
    snprintf(p->err, sizeof p->err, "%s/%s.err", root, tag);
    p->pid = fork();
    if (p->pid < 0)
        return false;
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        int o = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, STDOUT_FILENO);
        dup2(e, STDERR_FILENO);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        _exit(127);
    }
    return true;
}

/* Peak resident memory of a running process, KiB (0 if it cannot be read). */
static long peak_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = 0;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* Reap p if it exited. @return true once it has. */
static bool proc_poll(proc_t *p)
{
    int st;
    if (p->pid <= 0)
        return true;
    if (waitpid(p->pid, &st, WNOHANG) != p->pid)
        return false;
    p->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    p->pid = 0;
    return true;
}

/* Stop a child (SIGTERM, then SIGKILL after 5 s). */
static void proc_stop(proc_t *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    for (int i = 0; i < 500 && !proc_poll(p); i++)
        usleep(10000);
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

static bool proc_printed(const proc_t *p, const char *text)
{
    char *s = slurp(p->out);
    bool found = s && strstr(s, text);
    free(s);
    return found;
}

static void proc_dump(const proc_t *p, const char *what)
{
    char *o = slurp(p->out), *e = slurp(p->err);
    printf("# %s (status %d) stdout:\n%s# stderr:\n%s", what, p->status, o ? o : "", e ? e : "");
    free(o);
    free(e);
}

/* A child that ended must not have printed a sanitizer report (its exit status alone may not
 * tell: an expected failure exits 1 too). */
static void check_clean(const proc_t *p, const char *what)
{
    char *e = slurp(p->err);
    bool clean = e && !strstr(e, "Sanitizer") && !strstr(e, "runtime error:");
    if (!ok(clean))
        printf("# %s printed a sanitizer report:\n%s", what, e ? e : "");
    free(e);
}

static proc_t signal_proc;

static bool start_signal(void)
{
#ifdef TERN_SIGNAL_PATH
    char *argv[] = {TERN_SIGNAL_PATH, "--listen", "127.0.0.1:0", "--no-stun",
                    "--log",          "warn",     NULL};
    if (!proc_start(&signal_proc, "tern-signal", argv))
        return false;
    for (int i = 0; i < 500; i++) {
        char *s = slurp(signal_proc.out);
        const char *p = s ? strstr(s, "ws://127.0.0.1:") : NULL;
        int port = p && strchr(p, '\n') ? atoi(p + strlen("ws://127.0.0.1:")) : 0;
        free(s);
        if (port > 0) {
            snprintf(signal_url, sizeof signal_url, "ws://127.0.0.1:%d/ws", port);
            return true;
        }
        usleep(10000);
    }
#endif
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Runs of the programs                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct run {
    proc_t recv, send;
    long recv_peak_kib;
    bool timed_out;
} run_t;

static void new_room(char *url, size_t cap)
{
    snprintf(url, cap, "%s/files-%d-%d", signal_url, (int)getpid(), ++room_seq);
}

static bool start_recv(proc_t *p, const char *url, const char *out, const char *extra,
                       const char *tag)
{
#ifdef TERN_RECV_PATH
    char *argv[12] = {TERN_RECV_PATH, "--signal",   (char *)url, "--out",
                      (char *)out,    "--loopback", "--quiet"};
    int n = 7;
    if (extra)
        argv[n++] = (char *)extra;
    argv[n] = NULL;
    return proc_start(p, tag, argv);
#else
    (void)p, (void)url, (void)out, (void)extra, (void)tag;
    return false;
#endif
}

static bool start_send(proc_t *p, const char *url, char *const *files, const char *tag)
{
#ifdef TERN_SEND_PATH
    char *argv[40] = {TERN_SEND_PATH, "--signal", (char *)url, "--loopback", "--quiet"};
    int n = 5;
    for (; *files && n < 38; files++)
        argv[n++] = *files;
    argv[n] = NULL;
    return proc_start(p, tag, argv);
#else
    (void)p, (void)url, (void)files, (void)tag;
    return false;
#endif
}

/* Run tern-recv into out and tern-send with files in a new room, until both exit. Their
 * output is shown when they time out, or fail where success was expected. */
static void run_pair_as(run_t *r, const char *out, char *const *files, const char *recv_extra,
                        bool expect_ok)
{
    char url[128];
    memset(r, 0, sizeof *r);
    new_room(url, sizeof url);
    if (!start_recv(&r->recv, url, out, recv_extra, "recv") ||
        !start_send(&r->send, url, files, "send")) {
        ok(!"programs started");
        proc_stop(&r->recv);
        return;
    }
    int64_t end = clock_ms() + GIVE_UP_MS;
    bool recv_done = false, send_done = false;
    while (!(recv_done && send_done) && clock_ms() < end) {
        long kib = r->recv.pid > 0 ? peak_rss_kib(r->recv.pid) : 0;
        if (kib > r->recv_peak_kib)
            r->recv_peak_kib = kib;
        recv_done = proc_poll(&r->recv);
        send_done = proc_poll(&r->send);
        usleep(20000);
    }
    r->timed_out = !(recv_done && send_done);
    proc_stop(&r->send);
    proc_stop(&r->recv);
    ok(!r->timed_out);
    check_clean(&r->send, "tern-send");
    check_clean(&r->recv, "tern-recv");
    if (r->timed_out || (expect_ok && (r->send.status != 0 || r->recv.status != 0))) {
        proc_dump(&r->send, "tern-send");
        proc_dump(&r->recv, "tern-recv");
    }
}

static void run_pair(run_t *r, const char *out, char *const *files, const char *recv_extra)
{
    run_pair_as(r, out, files, recv_extra, true);
}

/* ------------------------------------------------------------------------------------------ */
/* The shared code                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void check_names(void)
{
    static const char *good[] = {
        "a",      "a.txt",       "photos/2024/a.jpg",     "..a", "a..", ".hidden",
        "x/.y/z", "caf\xc3\xa9", "\xf0\x9f\x90\xa6 bird", "a b"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!ok(fx_name_problem(good[i], strlen(good[i])) == NULL))
            printf("#   refused \"%s\": %s\n", good[i], fx_name_problem(good[i], strlen(good[i])));
    struct {
        const char *name;
        size_t len;
        const char *why;
    } bad[] = {
        {"", 0, "empty"},
        {"..", 2, "\"..\""},
        {"../evil", 7, "\"..\""},
        {"a/../../x", 9, "\"..\""},
        {"a/..", 4, "\"..\""},
        {".", 1, "\".\""},
        {"./a", 3, "\".\""},
        {"/etc/passwd", 11, "absolute"},
        {"a//b", 4, "empty component"},
        {"a/", 2, "empty component"},
        {"a\\b", 3, "backslash"},
        {"a\x1b[2Jb", 7, "control"},
        {"a\nb", 3, "control"},
        {"a\x7f", 2, "control"},
        {"a\0b", 3, "control"},
        {"a\xc3", 2, "UTF-8"},
        {"a\xc0\xaf", 3, "UTF-8"},     /* overlong "/" */
        {"a\xed\xa0\x80", 4, "UTF-8"}, /* a surrogate */
        {"x.tern-part", 11, ".tern-part"},
        {"d/.x.tern-part", 14, ".tern-part"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = fx_name_problem(bad[i].name, bad[i].len);
        if (!ok(why && strstr(why, bad[i].why)))
            printf("#   name %zu: got %s\n", i, why ? why : "accepted");
    }
    char longc[300], deep[200], longn[4200];
    memset(longc, 'a', 256);
    longc[256] = '\0';
    ok(fx_name_problem(longc, 255) == NULL);
    ok(fx_name_problem(longc, 256) != NULL);
    size_t d = 0;
    for (int i = 0; i < 65; i++)
        d += (size_t)snprintf(deep + d, sizeof deep - d, i ? "/a" : "a");
    ok(fx_name_problem(deep, d) != NULL);
    ok(fx_name_problem(deep, d - 2) == NULL); /* 64 components */
    memset(longn, 'a', sizeof longn);
    for (size_t i = 200; i < sizeof longn; i += 201)
        longn[i] = '/';
    ok(fx_name_problem(longn, 4096) == NULL || longn[4095] == '/');
    ok(fx_name_problem(longn, 4097) != NULL);

    char q[32];
    fx_quote("a\x1b\"b", 4, q, sizeof q);
    eq_str(q, "\"a\\x1b\\x22b\"");
    fx_quote("0123456789abcdefghijklmnopqrstuvwxyz", 36, q, 16);
    ok(strlen(q) < 16 && strstr(q, "...\""));
}

/* What the progress display wrote to f since the last call; f is emptied for the next step. */
static void take_output(FILE *f, char *out, size_t cap)
{
    fflush(f);
    long n = ftell(f);
    rewind(f);
    size_t got = fread(out, 1, n > 0 && (size_t)n < cap ? (size_t)n : cap - 1, f);
    out[got] = '\0';
    rewind(f);
    if (ftruncate(fileno(f), 0) != 0)
        ok(!"progress output emptied");
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define SEC ((tern_time_t)1000000)
#define MIB ((uint64_t)1 << 20)

static void check_bytes_format(void)
{
    char b[32];
    static const struct {
        uint64_t n;
        const char *text;
    } cases[] = {{0, "0 B"},
                 {1023, "1023 B"},
                 {1024, "1.00 KiB"},
                 {1536, "1.50 KiB"},
                 {50 * MIB, "50.0 MiB"},
                 {100 * MIB, "100 MiB"},
                 {3 * MIB / 2 * 1024, "1.50 GiB"},
                 {UINT64_MAX, "16384 PiB"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_format_bytes(cases[i].n, b, sizeof b);
        eq_str(b, cases[i].text);
    }
}

/* A progress display writing to f, started at time 0, for total bytes in files_total files. */
static void progress_on(fx_progress_t *p, FILE *f, const char *prog, bool enabled, bool tty,
                        uint64_t total, unsigned files_total)
{
    fx_progress_init(p, prog, strcmp(prog, "tern-send") == 0 ? "sent" : "received", enabled, 0);
    p->out = f;
    p->tty = tty;
    p->total = total;
    p->files_total = files_total;
}

/*
 * Without a terminal: a plain line per FX_PROGRESS_LINE_MS with bytes, percentage, the rate of
 * this run's bytes (smoothed), the ETA and the files; nothing in between. Times are given, so
 * every figure is exact.
 */
static void check_progress_lines(FILE *f)
{
    char text[512];
    fx_progress_t p;
    progress_on(&p, f, "tern-send", true, false, 100 * MIB, 2);
    p.moved = p.done = 10 * MIB;
    fx_progress_tick(&p, 1 * SEC);
    take_output(f, text, sizeof text);
    eq_str(text, "");
    p.moved = p.done = 50 * MIB; /* 10 MiB/s throughout: 5 s left */
    fx_progress_tick(&p, 5 * SEC);
    take_output(f, text, sizeof text);
    eq_str(text, "tern-send: sent 50.0 MiB of 100 MiB (50%), 10.5 MB/s, ETA 0:05, 0 of 2 files\n");
    fx_progress_tick(&p, 9 * SEC);
    take_output(f, text, sizeof text);
    eq_str(text, "");
    p.moved = p.done = 100 * MIB;
    p.files_done = 2;
    fx_progress_tick(&p, 10 * SEC);
    take_output(f, text, sizeof text);
    ok(starts_with(text, "tern-send: sent 100 MiB of 100 MiB (100%), "));
    ok(strstr(text, " MB/s, ETA 0:00, 2 of 2 files\n") != NULL);

    /* Resumed bytes count as done but not in the rate: 60 MiB were there, 10 MiB moved in 5 s. */
    progress_on(&p, f, "tern-recv", true, false, 100 * MIB, 1);
    p.done = 70 * MIB;
    p.moved = 10 * MIB;
    fx_progress_tick(&p, 5 * SEC);
    take_output(f, text, sizeof text);
    eq_str(text,
           "tern-recv: received 70.0 MiB of 100 MiB (70%), 2.1 MB/s, ETA 0:15, 0 of 1 files\n");

    /* Nothing moved yet: no rate, no ETA. Then an hour left, and more than 99 hours. */
    progress_on(&p, f, "tern-send", true, false, 3610 * MIB, 1);
    fx_progress_tick(&p, 5 * SEC);
    take_output(f, text, sizeof text);
    ok(strstr(text, ", 0.0 MB/s, ETA --:--, ") != NULL);
    p.moved = p.done = 10 * MIB;
    fx_progress_tick(&p, 10 * SEC); /* 2 MiB/s now, smoothed with 0: 0.6 MiB/s */
    take_output(f, text, sizeof text);
    ok(strstr(text, ", ETA 1:40:00, ") != NULL);
    p.total = 1000000 * MIB;
    fx_progress_tick(&p, 15 * SEC);
    take_output(f, text, sizeof text);
    ok(strstr(text, ", ETA --:--, ") != NULL);
}

/* On a terminal: the bar is redrawn in place at every tick, and erased before other output. */
static void check_progress_bar(FILE *f)
{
    char text[512];
    fx_progress_t p;
    progress_on(&p, f, "tern-send", true, true, 100 * MIB, 2);
    p.files_done = 1;
    p.moved = p.done = 55 * MIB;
    fx_progress_tick(&p, SEC / 4);
    take_output(f, text, sizeof text);
    ok(starts_with(text, "\r\033[K[###########---------]  55% 55.0 MiB / 100 MiB  "));
    ok(strstr(text, "  1/2 files") != NULL && !strchr(text, '\n'));
    fx_progress_tick(&p, SEC / 2);
    take_output(f, text, sizeof text);
    ok(starts_with(text, "\r\033[K[###"));
    fx_progress_clear(&p);
    take_output(f, text, sizeof text);
    eq_str(text, "\r\033[K");
    fx_progress_clear(&p); /* nothing drawn since: nothing to erase */
    take_output(f, text, sizeof text);
    eq_str(text, "");

    progress_on(&p, f, "tern-send", false, true, 100 * MIB, 0); /* --quiet */
    fx_progress_tick(&p, 10 * SEC);
    fx_progress_clear(&p);
    take_output(f, text, sizeof text);
    eq_str(text, "");
}

static void check_progress(void)
{
    check_bytes_format();
    FILE *f = tmpfile();
    if (!ok(f != NULL))
        return;
    check_progress_lines(f);
    check_progress_bar(f);
    fclose(f);
}

static int parse_text(const char *text, fx_msg_t *m, char *why, size_t cap)
{
    return fx_msg_parse((const uint8_t *)text, strlen(text), m, why, cap);
}

static void check_messages(void)
{
    fx_msg_t m;
    char why[256];
    const char *h = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    char text[512];
    snprintf(text, sizeof text,
             "{\"type\":\"file\",\"version\":2,\"name\":\"a/b\",\"size\":9007199254740991,"
             "\"mime\":\"x/y\",\"sha256\":\"%s\",\"extra\":[1,2]}",
             h);
    eq_int(parse_text(text, &m, why, sizeof why), 0);
    eq_int(m.type, FX_MSG_FILE);
    eq_int(m.version, 2);
    eq_str(m.name, "a/b");
    ok(m.size == FX_MAX_SIZE);
    eq_str(m.mime, "x/y");
    ok(m.has_sha256 && m.sha256[0] == 0x00 && m.sha256[31] == 0xff);
    char *encoded = fx_msg_encode(&m); /* the unknown field dropped, the hash in lower case */
    eq_str(encoded ? encoded : "(null)",
           "{\"type\":\"file\",\"version\":2,\"name\":\"a/b\",\"size\":9007199254740991,"
           "\"mime\":\"x/y\",\"sha256\":\"00112233445566778899aabbccddeeff00112233445566778899"
           "aabbccddeeff\"}");
    free(encoded);
    fx_msg_clear(&m);

    eq_int(parse_text("{\"type\":\"file\",\"version\":2,\"name\":\"a\\u0000b\",\"size\":1}", &m,
                      why, sizeof why),
           0);
    eq_int(m.name_len, 3);
    ok(fx_name_problem(m.name, m.name_len) != NULL);
    encoded = fx_msg_encode(&m);
    eq_str(encoded ? encoded : "(null)",
           "{\"type\":\"file\",\"version\":2,\"name\":\"a\\u0000b\",\"size\":1}");
    free(encoded);
    fx_msg_clear(&m);
    /* What cannot be sent: a type this side does not know, an end without its hash, a name
     * that is not UTF-8. */
    ok(fx_msg_encode(&(fx_msg_t){.type = FX_MSG_UNKNOWN}) == NULL);
    ok(fx_msg_encode(&(fx_msg_t){.type = FX_MSG_END}) == NULL);
    ok(fx_msg_encode(&(fx_msg_t){.type = FX_MSG_FILE, .name = "a\xff", .name_len = 2}) == NULL);

    snprintf(text, sizeof text, "{\"type\":\"accept\",\"offset\":5,\"sha256\":\"%s\"}", h);
    eq_int(parse_text(text, &m, why, sizeof why), 0);
    ok(m.type == FX_MSG_ACCEPT && m.offset == 5 && m.has_sha256);
    fx_msg_clear(&m);
    eq_int(parse_text("{\"type\":\"accept\",\"offset\":0}", &m, why, sizeof why), 0);
    fx_msg_clear(&m);
    eq_int(parse_text("{\"type\":\"start\",\"offset\":7}", &m, why, sizeof why), 0);
    ok(m.type == FX_MSG_START && m.offset == 7);
    fx_msg_clear(&m);
    snprintf(text, sizeof text, "{\"type\":\"done\",\"ok\":true,\"size\":3,\"sha256\":\"%s\"}", h);
    eq_int(parse_text(text, &m, why, sizeof why), 0);
    ok(m.type == FX_MSG_DONE && m.ok && m.has_size && m.size == 3);
    fx_msg_clear(&m);
    eq_int(parse_text("{\"type\":\"error\",\"message\":\"no\"}", &m, why, sizeof why), 0);
    eq_str(m.message, "no");
    fx_msg_clear(&m);
    eq_int(parse_text("{\"type\":\"later\",\"x\":1}", &m, why, sizeof why), 0);
    eq_int(m.type, FX_MSG_UNKNOWN);
    fx_msg_clear(&m);

    static const char *bad[] = {
        "not json",
        "[1]",
        "{\"type\":3}",
        "{\"no\":\"type\"}",
        "{\"type\":\"file\",\"name\":\"a\",\"size\":1}",
        "{\"type\":\"file\",\"version\":2,\"size\":1}",
        "{\"type\":\"file\",\"version\":2,\"name\":\"a\",\"size\":-1}",
        "{\"type\":\"file\",\"version\":2,\"name\":\"a\",\"size\":9007199254740992}",
        "{\"type\":\"file\",\"version\":2,\"name\":\"a\",\"size\":1.5}",
        "{\"type\":\"file\",\"version\":2,\"name\":\"a\",\"size\":\"1\"}",
        "{\"type\":\"file\",\"version\":2,\"name\":\"a\",\"size\":1,\"sha256\":\"ab\"}",
        "{\"type\":\"file\",\"version\":2,\"name\":\"a\",\"size\":1,\"mime\":5}",
        "{\"type\":\"file\",\"version\":2,\"name\":\"a\",\"name\":\"b\",\"size\":1}",
        "{\"type\":\"accept\",\"offset\":5}",
        "{\"type\":\"start\"}",
        "{\"type\":\"end\"}",
        "{\"type\":\"end\",\"sha256\":\"zz\"}",
        "{\"type\":\"done\",\"size\":1}",
        "{\"type\":\"error\",\"message\":{}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (!ok(parse_text(bad[i], &m, why, sizeof why) != 0 && why[0]))
            printf("#   accepted %s\n", bad[i]);
        fx_msg_clear(&m);
    }
    char *huge = malloc(FX_MAX_TEXT + 100);
    if (huge) {
        int n = snprintf(huge, FX_MAX_TEXT + 100, "{\"type\":\"error\",\"message\":\"");
        memset(huge + n, 'a', FX_MAX_TEXT);
        memcpy(huge + n + FX_MAX_TEXT, "\"}", 3);
        ok(parse_text(huge, &m, why, sizeof why) != 0 && strstr(why, "longer"));
        free(huge);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Native to native                                                                           */
/* ------------------------------------------------------------------------------------------ */

static void small_files(void)
{
    char src[PATH_CAP], out[PATH_CAP], a[PATH_CAP], b[PATH_CAP], c[PATH_CAP], tree[PATH_CAP],
        p[PATH_CAP], q[PATH_CAP];
    path_of(src, sizeof src, "small-src");
    path_of(out, sizeof out, "small-out");
    mkdir(src, 0755);
    pathf(a, "%s/zero.bin", src);
    pathf(b, "%s/one.bin", src);
    pathf(c, "%s/mebi.bin", src);
    pathf(tree, "%s/tree", src);
    ok(make_file(a, 0, 1) && make_file(b, 1, 2) && make_file(c, 1 << 20, 3));
    /* A folder of 40 files, 3 levels deep, of many sizes, and an empty file in it. */
    mkdir(tree, 0755);
    for (int i = 0; i < 40; i++) {
        pathf(p, "%s/d%d", tree, i % 3);
        mkdir(p, 0755);
        pathf(p, "%s/d%d/e%d", tree, i % 3, i % 2);
        mkdir(p, 0755);
        pathf(p, "%s/d%d/e%d/f%02d", tree, i % 3, i % 2, i);
        ok(make_file(p, (uint64_t)i * 3001, (uint64_t)i + 100));
    }
    char *files[] = {a, b, c, tree, NULL};
    run_t r;
    run_pair(&r, out, files, NULL);
    eq_int(r.send.status, 0);
    eq_int(r.recv.status, 0);
    const char *names[] = {"zero.bin", "one.bin", "mebi.bin"};
    const char *srcs[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        pathf(p, "%s/%s", out, names[i]);
        if (!ok(same_files(srcs[i], p)))
            printf("#   %s differs or is missing\n", names[i]);
    }
    for (int i = 0; i < 40; i++) {
        pathf(p, "%s/d%d/e%d/f%02d", tree, i % 3, i % 2, i);
        pathf(q, "%s/tree/d%d/e%d/f%02d", out, i % 3, i % 2, i);
        if (!ok(same_files(p, q)))
            printf("#   tree file %d differs or is missing\n", i);
    }
    ok(proc_printed(&r.recv, "received zero.bin 0 "
                             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    ok(proc_printed(&r.send, "sent one.bin 1 "));
    ok(proc_printed(&r.send, "path host"));
    ok(proc_printed(&r.recv, "43 files"));
    /* No partial file is left behind. */
    pathf(p, "%s/.mebi.bin.tern-part", out);
    ok(!exists(p));
    remove_tree(src);
    remove_tree(out);
}

static void large_file(void)
{
    char src[PATH_CAP], out[PATH_CAP], dst[PATH_CAP];
    uint64_t size = (uint64_t)TERN_FILES_BIG_MIB << 20;
    path_of(src, sizeof src, "large.bin");
    path_of(out, sizeof out, "large-out");
    pathf(dst, "%s/large.bin", out);
    if (!ok(make_file(src, size, 42)))
        return;
    char *files[] = {src, NULL};
    int64_t t0 = clock_ms();
    run_t r;
    run_pair(&r, out, files, NULL);
    double secs = (double)(clock_ms() - t0) / 1000;
    eq_int(r.send.status, 0);
    eq_int(r.recv.status, 0);
    ok(same_files(src, dst));
    printf("# %d MiB in %.1f s (%.1f MB/s with setup); tern-recv's peak resident memory %ld KiB\n",
           TERN_FILES_BIG_MIB, secs, (double)size / secs / 1e6, r.recv_peak_kib);
    if (CHECK_MEMORY) {
        ok(r.recv_peak_kib > 0);
        if (!ok(r.recv_peak_kib < RECV_MAX_RSS_KIB))
            printf("#   tern-recv held %ld KiB for a %d MiB file\n", r.recv_peak_kib,
                   TERN_FILES_BIG_MIB);
    } else {
        printf("# memory bound not checked under sanitizers (their own allocations dominate)\n");
    }
    remove_tree(out);
    unlink(src);
}

/* ------------------------------------------------------------------------------------------ */
/* Resume                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void resume_after_kill(void)
{
    char src[PATH_CAP], out[PATH_CAP], part[PATH_CAP], dst[PATH_CAP], url[128];
    uint64_t size = (uint64_t)(TERN_FILES_BIG_MIB / 4 > 16 ? TERN_FILES_BIG_MIB / 4 : 16) << 20;
    path_of(src, sizeof src, "resume.bin");
    path_of(out, sizeof out, "resume-out");
    pathf(part, "%s/.resume.bin.tern-part", out);
    pathf(dst, "%s/resume.bin", out);
    if (!ok(make_file(src, size, 7)))
        return;
    char *files[] = {src, NULL};

    /* First run: kill the sender once the receiver holds half the file. */
    proc_t rv, sd;
    new_room(url, sizeof url);
    ok(start_recv(&rv, url, out, NULL, "recv-cut") && start_send(&sd, url, files, "send-cut"));
    int64_t end = clock_ms() + GIVE_UP_MS;
    while (file_size(part) < (off_t)(size / 2) && clock_ms() < end && !proc_poll(&sd))
        usleep(2000);
    kill(sd.pid, SIGKILL);
    proc_stop(&sd);
    off_t cut = file_size(part);
    printf("# sender killed with %lld of %llu bytes at the receiver\n", (long long)cut,
           (unsigned long long)size);
    ok(cut >= (off_t)(size / 2) && cut < (off_t)size);
    while (!proc_poll(&rv) && clock_ms() < end)
        usleep(10000);
    proc_stop(&rv);
    eq_int(rv.status, 1); /* interrupted */
    check_clean(&rv, "tern-recv (interrupted)");
    ok(proc_printed(&rv, "interrupted resume.bin at "));
    ok(!exists(dst));
    off_t kept = file_size(part);
    ok(kept >= cut);

    /* Both again: the transfer continues after what the receiver kept. */
    run_t r;
    run_pair(&r, out, files, NULL);
    eq_int(r.send.status, 0);
    eq_int(r.recv.status, 0);
    char want[128];
    snprintf(want, sizeof want, "resumed resume.bin at %lld\n", (long long)kept);
    if (!ok(proc_printed(&r.send, want) && proc_printed(&r.recv, want)))
        proc_dump(&r.send, "tern-send (no resume line)");
    ok(same_files(src, dst));
    ok(!exists(part));

    /* Again: the file is there and identical, nothing is carried. */
    run_pair(&r, out, files, NULL);
    eq_int(r.send.status, 0);
    eq_int(r.recv.status, 0);
    ok(proc_printed(&r.send, "skipped resume.bin"));
    ok(proc_printed(&r.recv, "0 B carried"));
    ok(same_files(src, dst));

    /* A damaged partial: its prefix hash differs, so the whole file is sent again. */
    unlink(dst);
    int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ok(fd >= 0 && write(fd, "not the right bytes", 19) == 19);
    if (fd >= 0)
        close(fd);
    run_pair(&r, out, files, NULL);
    eq_int(r.send.status, 0);
    eq_int(r.recv.status, 0);
    ok(proc_printed(&r.send, "differ from ours"));
    ok(!proc_printed(&r.recv, "resumed resume.bin"));
    ok(same_files(src, dst));

    /* A different file of that name and size is there: refused, then replaced with --force. */
    ok(make_file(dst, size, 8));
    run_pair_as(&r, out, files, NULL, false);
    eq_int(r.send.status, 1);
    eq_int(r.recv.status, 1);
    ok(proc_printed(&r.recv, "differs from the sender's (use --force"));
    ok(proc_printed(&r.send, "use --force"));
    ok(!same_files(src, dst));
    run_pair(&r, out, files, "--force");
    eq_int(r.send.status, 0);
    eq_int(r.recv.status, 0);
    ok(same_files(src, dst));
    /* And one of another size: refused at once. */
    ok(make_file(dst, 100, 9));
    run_pair_as(&r, out, files, NULL, false);
    eq_int(r.recv.status, 1);
    ok(proc_printed(&r.recv, "it exists (use --force"));
    eq_int(file_size(dst), 100);
    remove_tree(out);
    unlink(src);
}

/* ------------------------------------------------------------------------------------------ */
/* A hostile sender                                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef enum {
    H_DOTDOT,
    H_ABSOLUTE,
    H_CONTROL,
    H_SYMLINK,
    H_MORE_BYTES,
    H_FEWER_BYTES,
    H_BAD_HASH,
    H_HUGE,
    H_BYTES_FIRST,
    H_NOT_JSON,
    H_VERSION_1,
    H_SECOND_FILE,
    H_GOOD, /* a good file among them: it must still arrive */
    H_COUNT
} h_case_t;

typedef struct hchan {
    h_case_t kind;
    tern_dc_t *dc;
    bool flood;
    char answer[512]; /* "error MESSAGE" or "done ok=N MESSAGE", as received */
    bool answered, closed;
} hchan_t;

#define FLOOD 40

typedef struct hostile {
    tern_loop_t *loop;
    tern_signaling_t *sig;
    tern_pc_t *pc;
    hchan_t ch[H_COUNT + FLOOD];
    size_t count;
    bool flooded;
} hostile_t;

static const char *h_name(h_case_t k)
{
    switch (k) {
    case H_DOTDOT:
        return "../evil";
    case H_ABSOLUTE:
        return "/tmp/tern-files-absolute";
    case H_CONTROL:
        return "esc\x1b[2Jape";
    case H_SYMLINK:
        return "link/inside";
    case H_MORE_BYTES:
        return "more";
    case H_FEWER_BYTES:
        return "fewer";
    case H_BAD_HASH:
        return "badhash";
    case H_HUGE:
        return "huge";
    case H_BYTES_FIRST:
        return "bytesfirst";
    case H_SECOND_FILE:
        return "second";
    case H_GOOD:
        return "good";
    default:
        return "x";
    }
}

/* What the receiver must say about each case (a substring of its message). */
static const char *h_expect(h_case_t k)
{
    switch (k) {
    case H_DOTDOT:
        return "a component is \"..\"";
    case H_ABSOLUTE:
        return "absolute path";
    case H_CONTROL:
        return "control character";
    case H_SYMLINK:
        return "not a folder (or a symbolic link)";
    case H_MORE_BYTES:
        return "more bytes than the 10 announced";
    case H_FEWER_BYTES:
        return "fewer bytes than announced";
    case H_BAD_HASH:
        return "SHA-256 mismatch";
    case H_HUGE:
        return "not enough space";
    case H_BYTES_FIRST:
        return "bytes before start";
    case H_NOT_JSON:
        return "not JSON";
    case H_VERSION_1:
        return "unsupported version";
    case H_SECOND_FILE:
        return "a second file on one channel";
    case H_GOOD:
        return "done ok=1";
    default:
        return "?";
    }
}

static void h_send_text(tern_dc_t *dc, tern_time_t now, const char *text)
{
    tern_dc_send_text(dc, now, text, strlen(text));
}

static void h_send_file(tern_dc_t *dc, tern_time_t now, const char *name, uint64_t size)
{
    fx_send_file(dc, now, name, size);
}

static void h_on_open(tern_dc_t *dc, void *user)
{
    hostile_t *h = user;
    hchan_t *c = tern_dc_user_data(dc);
    tern_time_t now = tern_loop_now(h->loop);
    if (!c || c->flood)
        return; /* flood channels say nothing */
    switch (c->kind) {
    case H_HUGE:
        h_send_file(dc, now, h_name(c->kind), (UINT64_C(1) << 52));
        break;
    case H_MORE_BYTES:
        h_send_file(dc, now, h_name(c->kind), 10);
        break;
    case H_FEWER_BYTES:
        h_send_file(dc, now, h_name(c->kind), 100);
        break;
    case H_BYTES_FIRST:
        tern_dc_send(dc, now, "early", 5);
        break;
    case H_NOT_JSON:
        h_send_text(dc, now, "{this is not json");
        break;
    case H_BAD_HASH:
    case H_GOOD:
        h_send_file(dc, now, h_name(c->kind), 5);
        break;
    default:
        h_send_file(dc, now, h_name(c->kind), 3);
        break;
    }
}

static void h_on_accept(hostile_t *h, hchan_t *c)
{
    tern_time_t now = tern_loop_now(h->loop);
    uint8_t sha[FX_SHA256_LEN];
    unsigned int n;
    fx_send_start(c->dc, now, 0);
    switch (c->kind) {
    case H_MORE_BYTES:
        tern_dc_send(c->dc, now, "0123456789abcdefghij", 20);
        break;
    case H_FEWER_BYTES:
        tern_dc_send(c->dc, now, "only fifty bytes of the hundred announced, no more.", 50);
        EVP_Digest("x", 1, sha, &n, EVP_sha256(), NULL);
        fx_send_end(c->dc, now, sha);
        break;
    case H_BAD_HASH:
        tern_dc_send(c->dc, now, "hello", 5);
        EVP_Digest("world", 5, sha, &n, EVP_sha256(), NULL);
        fx_send_end(c->dc, now, sha);
        break;
    case H_SECOND_FILE:
        h_send_file(c->dc, now, "again", 1);
        break;
    case H_GOOD:
        tern_dc_send(c->dc, now, "hello", 5);
        EVP_Digest("hello", 5, sha, &n, EVP_sha256(), NULL);
        fx_send_end(c->dc, now, sha);
        break;
    default:
        break;
    }
}

static void h_on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    hostile_t *h = user;
    hchan_t *c = tern_dc_user_data(dc);
    if (!c || !is_text)
        return;
    fx_msg_t m;
    char why[128];
    if (fx_msg_parse(data, len, &m, why, sizeof why) != 0)
        return;
    if (m.type == FX_MSG_ACCEPT)
        h_on_accept(h, c);
    if ((m.type == FX_MSG_ERROR || m.type == FX_MSG_DONE) && !c->answered) {
        c->answered = true;
        if (m.type == FX_MSG_ERROR)
            snprintf(c->answer, sizeof c->answer, "error %s", m.message ? m.message : "");
        else
            snprintf(c->answer, sizeof c->answer, "done ok=%d %s", m.ok,
                     m.message ? m.message : "");
    }
    fx_msg_clear(&m);
}

static void h_on_close(tern_dc_t *dc, void *user)
{
    hchan_t *c = tern_dc_user_data(dc);
    (void)user;
    if (c) {
        c->closed = true;
        c->dc = NULL;
    }
}

static void h_open(hostile_t *h, h_case_t kind, bool flood)
{
    hchan_t *c = &h->ch[h->count++];
    c->kind = kind;
    c->flood = flood;
    tern_dc_init_t init = {.protocol = kind == H_VERSION_1 ? FX_SUBPROTOCOL_V1 : FX_SUBPROTOCOL};
    if (tern_pc_create_data_channel(h->pc, tern_loop_now(h->loop), "file", &init, &c->dc) == 0)
        tern_dc_set_user_data(c->dc, c);
}

static void h_on_state(tern_pc_t *pc, void *user, tern_pc_state_t s)
{
    hostile_t *h = user;
    if (s != TERN_PC_STATE_CONNECTED || h->pc)
        return;
    h->pc = pc;
    for (int k = 0; k < H_COUNT; k++)
        h_open(h, (h_case_t)k, false);
}

static bool h_cases_over(const hostile_t *h)
{
    for (size_t i = 0; i < H_COUNT && i < h->count; i++)
        if (!h->ch[i].answered && !h->ch[i].closed)
            return false;
    return h->count >= H_COUNT;
}

static void hostile_sender(void)
{
    char out[PATH_CAP], outside[PATH_CAP], link[PATH_CAP], url[128], p[PATH_CAP];
    path_of(out, sizeof out, "hostile-out");
    path_of(outside, sizeof outside, "hostile-outside");
    mkdir(out, 0755);
    mkdir(outside, 0755);
    pathf(link, "%s/link", out);
    ok(symlink(outside, link) == 0);
    unlink("/tmp/tern-files-absolute");

    proc_t rv;
    new_room(url, sizeof url);
    ok(start_recv(&rv, url, out, NULL, "recv-hostile"));

    static hostile_t h;
    memset(&h, 0, sizeof h);
    tern_ctx_t *ctx = NULL;
    ok(tern_ctx_new(NULL, &ctx) == 0 && tern_loop_new(ctx, &h.loop) == 0);
    tern_pc_config_t pc_cfg = {.include_loopback = true};
    tern_pc_callbacks_t pcb = {.on_connection_state = h_on_state,
                               .on_open = h_on_open,
                               .on_message = h_on_message,
                               .on_close = h_on_close};
    tern_signaling_config_t cfg = {
        .url = url, .pc_config = &pc_cfg, .pc_callbacks = &pcb, .pc_user = &h};
    ok(h.loop && tern_signaling_new(h.loop, &cfg, NULL, NULL, &h.sig) == 0);
    int64_t end = clock_ms() + 60000;
    while (h.sig && !h_cases_over(&h) && clock_ms() < end)
        tern_loop_run_once(h.loop, 50);
    ok(h_cases_over(&h));
    for (int k = 0; k < H_COUNT && k < (int)h.count; k++) {
        hchan_t *c = &h.ch[k];
        if (!ok(c->answered && strstr(c->answer, h_expect(c->kind))))
            printf("#   case %d (%s): %s\n", k, h_name(c->kind),
                   c->answered ? c->answer : "no answer");
    }
    /* The flood: 40 channels that say nothing; at most 16 may wait, the rest are refused. */
    for (int i = 0; h.pc && i < FLOOD; i++)
        h_open(&h, H_GOOD, true);
    size_t refused = 0;
    end = clock_ms() + 30000;
    while (h.sig && refused < FLOOD - 16 && clock_ms() < end) {
        tern_loop_run_once(h.loop, 50);
        refused = 0;
        for (size_t i = H_COUNT; i < h.count; i++)
            refused += h.ch[i].answered && strstr(h.ch[i].answer, "too many files at once");
    }
    eq_int(refused, FLOOD - 16);
    /* The receiver is still up: it exits (1: refusals) once this sender leaves. */
    ok(proc_poll(&rv) == false);
    tern_signaling_free(h.sig);
    tern_loop_free(h.loop);
    tern_ctx_free(ctx);
    end = clock_ms() + 20000;
    while (!proc_poll(&rv) && clock_ms() < end)
        usleep(10000);
    proc_stop(&rv);
    eq_int(rv.status, 1);
    check_clean(&rv, "tern-recv (hostile sender)");
    ok(proc_printed(&rv, "received good 5 "));
    ok(proc_printed(&rv, "failed \"../evil\": refused: a component is \"..\""));
    ok(proc_printed(&rv, "\\x1b")); /* the escape is shown, not sent to the terminal */
    ok(proc_printed(&rv, "refused 24 file channels in all") || FLOOD - 16 <= 3);

    /* Nothing outside the output folder; inside it only the good file (and the link). */
    char list[2048] = "";
    eq_int(count_entries(outside, list, sizeof list), 0);
    ok(!exists("/tmp/tern-files-absolute"));
    pathf(p, "%s/evil", root);
    ok(!exists(p));
    list[0] = '\0';
    size_t n = count_entries(out, list, sizeof list);
    if (!ok(n == 2))
        printf("#   output folder: %s\n", list);
    pathf(p, "%s/good", out);
    ok(exists(p));
    list[0] = '\0';
    n = count_entries(root, list, sizeof list);
    ok(strstr(list, "evil") == NULL);
    remove_tree(out);
    remove_tree(outside);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    subtest("names from the peer", check_names);
    subtest("messages", check_messages);
    subtest("progress display", check_progress);
#if defined(TERN_SIGNAL_PATH) && defined(TERN_SEND_PATH) && defined(TERN_RECV_PATH)
    snprintf(root, sizeof root, "/tmp/tern-files-XXXXXX");
    if (!mkdtemp(root)) {
        ok(!"temporary folder made");
        return check_done();
    }
    if (!ok(start_signal())) {
        proc_dump(&signal_proc, "tern-signal");
        proc_stop(&signal_proc);
        remove_tree(root);
        return check_done();
    }
    subtest("0 B, 1 B, 1 MiB and a folder tree over loopback", small_files);
    subtest_call("a large file over loopback, the receiver's memory bounded", large_file());
    subtest("resume after the sender is killed", resume_after_kill);
    subtest("a hostile sender", hostile_sender);
    proc_stop(&signal_proc);
    remove_tree(root);
#else
    printf("# skipped the programs: tern-signal, tern-send or tern-recv not built\n");
#endif
    return check_done();
}
