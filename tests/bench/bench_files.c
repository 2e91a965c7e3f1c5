/* SPDX-License-Identifier: MIT */
/*
 * File transfer against the raw channel: the transfer rate of one large file (1 GiB; 8 MiB with
 * --quick) from tern-send to tern-recv over 127.0.0.1, through a tern-signal of its own, printed
 * next to the raw throughput of one channel between two processes measured in the same run
 * (bench_throughput with 64 KiB messages, the file protocol's chunk size, and the same flow
 * control: refill to 4 MiB at 1 MiB), and the ratio of the two ("files_vs_raw", in %). The aim
 * (issue 6) is a file rate within 10% of the raw one; the file side also reads the file, hashes it
 * on both sides (SHA-256) and writes it. The programs are the real ones, run as child processes;
 * their rate is what tern-send reports (the first file offered to the last `done`, so connection
 * setup is not counted), their CPU seconds come from wait4. The file is made in a temporary folder
 * and removed, as is the copy; the copy is compared with the original first.
 *
 * The paths of the programs come from CMake (TERN_SIGNAL_PATH, TERN_SEND_PATH, TERN_RECV_PATH);
 * without them the benchmark says so and does nothing.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FILE_BYTES ((size_t)1 << 30)
#define QUICK_FILE_BYTES ((size_t)8 << 20)

typedef struct child {
    pid_t pid;
    char out[512];
    int status;
    double cpu;
} child_t;

static bool spawn(child_t *c, const char *dir, const char *tag, char *const argv[])
{
    memset(c, 0, sizeof *c);
    snprintf(c->out, sizeof c->out, "%s/%s.out", dir, tag);
    c->pid = fork();
    if (c->pid < 0)
        return false;
    if (c->pid == 0) {
        int fd = open(c->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    return true;
}

/* Wait for a child (at most limit_s seconds, then kill it); its CPU seconds from wait4. */
static bool reap(child_t *c, double limit_s)
{
    int64_t end = bench_clock_ns() + (int64_t)(limit_s * 1e9);
    struct rusage ru;
    int st = 0;
    for (;;) {
        pid_t r = wait4(c->pid, &st, WNOHANG, &ru);
        if (r == c->pid)
            break;
        if (r < 0 || bench_clock_ns() > end) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &st, 0);
            c->status = -1;
            return false;
        }
        usleep(10000);
    }
    c->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    c->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return c->status == 0;
}

static void stop(child_t *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = malloc(1 << 16);
    size_t n = f && buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    if (f)
        fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

static bool make_file(const char *path, size_t size)
{
    static uint64_t block[1 << 17];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    bool ok = fd >= 0;
    for (size_t done = 0; ok && done < size;) {
        for (size_t i = 0; i < sizeof block / sizeof block[0]; i++) {
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            block[i] = x * 0x2545f4914f6cdd1dull;
        }
        size_t n = size - done < sizeof block ? size - done : sizeof block;
        ok = write(fd, block, n) == (ssize_t)n;
        done += n;
    }
    return fd >= 0 && close(fd) == 0 && ok;
}

static bool same_files(const char *a, const char *b)
{
    static uint8_t x[1 << 20], y[1 << 20];
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        size_t n = fread(x, 1, sizeof x, fa), m = fread(y, 1, sizeof y, fb);
        same = n == m && memcmp(x, y, n) == 0;
        if (n == 0)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

#if defined(TERN_SIGNAL_PATH) && defined(TERN_SEND_PATH) && defined(TERN_RECV_PATH)

/*
 * Run the raw channel benchmark and return the rate it printed (MB/s), or -1. Its output
 * (and its peer process's) goes through a temporary file, copied to stdout afterwards, so
 * that the figure can be read back and compared.
 */
static double raw_throughput(const bench_opts_t *opts, const char *fig)
{
    FILE *tmp = tmpfile();
    int saved = dup(STDOUT_FILENO);
    if (!tmp || saved < 0) {
        if (tmp)
            fclose(tmp);
        return bench_throughput(opts, true, 65536, fig) == 0 ? 0 : -1;
    }
    fflush(stdout);
    dup2(fileno(tmp), STDOUT_FILENO);
    int rc = bench_throughput(opts, true, 65536, fig);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    double rate = -1;
    char line[512], prefix[160];
    int plen = snprintf(prefix, sizeof prefix, "bench %s ", fig);
    rewind(tmp);
    while (fgets(line, sizeof line, tmp)) {
        fputs(line, stdout);
        if (strncmp(line, prefix, (size_t)plen) == 0 && strstr(line, " MB/s"))
            rate = strtod(line + plen, NULL);
    }
    fclose(tmp);
    fflush(stdout);
    return rc == 0 && rate > 0 ? rate : -1;
}

/* tern-signal on an ephemeral port: its first line names it. */
static bool start_signal(child_t *sig, const char *dir, char *url, size_t cap)
{
    char *argv[] = {TERN_SIGNAL_PATH, "--listen", "127.0.0.1:0", "--no-stun",
                    "--log",          "warn",     NULL};
    if (!spawn(sig, dir, "signal", argv))
        return false;
    for (int i = 0; i < 500; i++) {
        char *s = slurp(sig->out);
        const char *p = s ? strstr(s, "ws://127.0.0.1:") : NULL;
        int port = p && strchr(p, '\n') ? atoi(p + strlen("ws://127.0.0.1:")) : 0;
        free(s);
        if (port > 0) {
            snprintf(url, cap, "ws://127.0.0.1:%d/ws/bench-files", port);
            return true;
        }
        usleep(10000);
    }
    return false;
}

/* Move the file; returns the rate tern-send measured (MB/s), or -1. */
static double transfer(const bench_opts_t *opts, const char *dir, const char *src, size_t size,
                       double *cpu)
{
    char url[128], out[600], copy[700];
    child_t sig, recv, send;
    double rate = -1;
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(copy, sizeof copy, "%s/file.bin", out);
    if (!start_signal(&sig, dir, url, sizeof url)) {
        bench_note("files: tern-signal did not start");
        stop(&sig);
        return -1;
    }
    char *rargv[] = {TERN_RECV_PATH, "--signal", url,        "--out", out,
                     "--loopback",   "--quiet",  "--answer", NULL};
    char *sargv[] = {TERN_SEND_PATH, "--signal", url,         "--loopback",
                     "--quiet",      "--offer",  (char *)src, NULL};
    bool started = spawn(&recv, dir, "recv", rargv);
    usleep(200000); /* in the room first */
    started = started && spawn(&send, dir, "send", sargv);
    bool ok = started && reap(&send, opts->limit_seconds) && reap(&recv, 10);
    char *s = started ? slurp(send.out) : NULL;
    const char *line = s ? strstr(s, "tern-send: 1 of 1 files") : NULL;
    double secs = 0;
    const char *in = line ? strstr(line, " in ") : NULL;
    if (ok && in && sscanf(in, " in %lf s", &secs) == 1 && secs > 0 && same_files(src, copy)) {
        rate = (double)size / secs / 1e6;
        *cpu = send.cpu + recv.cpu;
        bench_note("files: %zu bytes in %.3f s by tern-send's clock; CPU %.2f s (tern-send %.2f s, "
                   "tern-recv %.2f s); the copy is identical",
                   size, secs, *cpu, send.cpu, recv.cpu);
        const char *nl = strchr(line, '\n');
        bench_note("files: %.*s", nl ? (int)(nl - line) : (int)strlen(line), line);
    } else {
        char *r = started ? slurp(recv.out) : NULL;
        bench_note("files: the transfer failed (tern-send %d, tern-recv %d)", send.status,
                   recv.status);
        bench_note("files: tern-send said: %s", s ? s : "");
        bench_note("files: tern-recv said: %s", r ? r : "");
        free(r);
    }
    free(s);
    if (!ok) {
        stop(&send);
        stop(&recv);
    }
    stop(&sig);
    unlink(copy);
    rmdir(out);
    return rate;
}

int bench_files(const bench_opts_t *opts, const char *name)
{
    size_t size = opts->quick ? QUICK_FILE_BYTES : FILE_BYTES;
    char dir[] = "/tmp/tern-bench-files-XXXXXX", src[64], fig[96];
    if (!mkdtemp(dir)) {
        bench_note("%s: no temporary folder: %s", name, strerror(errno));
        return -1;
    }
    snprintf(src, sizeof src, "%s/file.bin", dir);
    int rc = -1;
    if (!make_file(src, size)) {
        bench_note("%s: cannot write %zu bytes in %s", name, size, dir);
        goto done;
    }
    /* The raw channel first, same size, same flow control, same message size. */
    bench_opts_t raw = *opts;
    raw.bulk_bytes = size;
    raw.bulk_low = (size_t)1 << 20;
    raw.bulk_high = (size_t)4 << 20;
    snprintf(fig, sizeof fig, "%s_raw_2proc_64k", name);
    double raw_rate = raw_throughput(&raw, fig);
    if (raw_rate < 0)
        goto done;
    double cpu = 0;
    double rate = transfer(opts, dir, src, size, &cpu);
    if (rate < 0)
        goto done;
    snprintf(fig, sizeof fig, "%s_%s", name, opts->quick ? "8mib" : "1gib");
    bench_figure(fig, rate, 1, "MB/s");
    snprintf(fig, sizeof fig, "%s_%s_cpu", name, opts->quick ? "8mib" : "1gib");
    bench_figure(fig, cpu, 2, "s");
    bench_note("%s: %.1f MB per CPU second (tern-send and tern-recv: both also hash and do "
               "file I/O)",
               name, (double)size / 1e6 / cpu);
    /* The aim: at least 90% of the raw channel's rate. */
    snprintf(fig, sizeof fig, "%s_vs_raw", name);
    bench_figure(fig, rate / raw_rate * 100, 1, "%");
    rc = 0;
done:
    unlink(src);
    char path[128];
    static const char *const logs[] = {"signal.out", "send.out", "recv.out"};
    for (size_t i = 0; i < sizeof logs / sizeof logs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, logs[i]);
        unlink(path);
    }
    rmdir(dir);
    return rc;
}

#else

int bench_files(const bench_opts_t *opts, const char *name)
{
    (void)opts;
    bench_note("%s: tern-signal, tern-send or tern-recv not built with tern-bench: skipped", name);
    return 0;
}

#endif
