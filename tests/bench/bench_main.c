/* SPDX-License-Identifier: MIT */
/*
 * tern-bench: the benchmark program (CONVENTIONS.md §10). It parses the options, prints a "#"
 * header naming the machine and the build, and runs each selected benchmark in a process of its
 * own (forked from a parent that never touches the stack, so usrsctp's per-process state, the
 * heap and the resident-memory figures start clean for each, and a hang or a crash costs one
 * benchmark, not the run). A benchmark still running after --limit seconds is shown with gdb
 * (every thread's stack, to say where it hangs) and killed. Figures are lines
 * "bench NAME VALUE UNIT"; everything else starts with "#". Nothing is asserted about speed: the
 * exit status is 1 only if a benchmark could not run (no connection, corrupt data, a crash).
 */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- output and measurement ---- */

void bench_figure(const char *name, double value, int decimals, const char *unit)
{
    printf("bench %s %.*f %s\n", name, decimals, value, unit);
    fflush(stdout);
}

void bench_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

int64_t bench_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double bench_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

size_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, compare_double);
    /* Nearest rank: the smallest value with at least q * n values at or below it. */
    double exact = q * (double)n;
    size_t rank = (size_t)exact;
    if ((double)rank < exact)
        rank++;
    return v[rank == 0 ? 0 : (rank > n ? n : rank) - 1];
}

/* ---- the benchmarks ---- */

typedef struct bench_entry {
    const char *name;
    const char *what;
    int kind;
    bool two_proc;
    size_t msg_size;
} bench_entry_t;

enum { KIND_CONNECT, KIND_RTT, KIND_THROUGHPUT, KIND_MEMORY, KIND_FILES };

static const bench_entry_t benches[] = {
    {"connect_1proc", "offer created to both channels open: median, p99, max (ms)", KIND_CONNECT,
     false, 0},
    {"connect_2proc", "the same with the answerer in another process", KIND_CONNECT, true, 0},
    {"rtt_1proc", "round trip of a 32-byte message after warm-up: p50, p99 (us)", KIND_RTT, false,
     0},
    {"rtt_2proc", "the same between two processes", KIND_RTT, true, 0},
    {"throughput_1proc_16k", "one reliable ordered channel, 16 KiB messages (MB/s, CPU s)",
     KIND_THROUGHPUT, false, 16384},
    {"throughput_1proc_64k", "the same with 64 KiB messages", KIND_THROUGHPUT, false, 65536},
    {"throughput_2proc_16k", "16 KiB messages between two processes", KIND_THROUGHPUT, true, 16384},
    {"throughput_2proc_64k", "64 KiB messages between two processes", KIND_THROUGHPUT, true, 65536},
    {"memory_1proc", "resident KiB per idle connected pc, idle CPU (both sides in one process)",
     KIND_MEMORY, false, 0},
    {"memory_2proc", "resident KiB per idle connected pc, idle CPU (one side per process)",
     KIND_MEMORY, true, 0},
    {"files", "a 1 GiB file, tern-send to tern-recv, beside the raw channel (MB/s, CPU s)",
     KIND_FILES, true, 0},
};

#define BENCH_COUNT (sizeof benches / sizeof benches[0])

static int run_entry(const bench_opts_t *o, const bench_entry_t *b)
{
    switch (b->kind) {
    case KIND_CONNECT:
        return bench_connect_time(o, b->two_proc, b->name);
    case KIND_RTT:
        return bench_rtt(o, b->two_proc, b->name);
    case KIND_THROUGHPUT:
        return bench_throughput(o, b->two_proc, b->msg_size, b->name);
    case KIND_MEMORY:
        return bench_memory(o, b->two_proc, b->name);
    case KIND_FILES:
        return bench_files(o, b->name);
    default:
        return -1;
    }
}

/* --only takes comma-separated substrings: "2proc", "rtt", "throughput_1proc_64k". */
static bool selected(const bench_opts_t *o, const char *name)
{
    if (!o->only)
        return true;
    const char *p = o->only;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            char token[128];
            snprintf(token, sizeof token, "%.*s", (int)len, p);
            if (strstr(name, token))
                return true;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return false;
}

/* ---- options ---- */

static void set_defaults(bench_opts_t *o, bool quick)
{
    *o = (bench_opts_t){
        .quick = quick,
        .bulk_bytes = (size_t)(quick ? 8 : 512) << 20,
        .bulk_seconds = quick ? 3 : 15,
        .bulk_low = (size_t)1 << 20,
        .bulk_high = (size_t)4 << 20,
        .connect_runs = quick ? 10 : 200,
        .rtt_warmup = quick ? 100 : 1000,
        .rtt_pings = quick ? 500 : 10000,
        .conns_small = quick ? 10 : 100,
        .conns_large = quick ? 40 : 1000,
        .idle_seconds = quick ? 0.5 : 5,
        .limit_seconds = quick ? 30 : 120,
    };
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tern-bench [options]\n"
               "Runs every benchmark (about two minutes) and prints one line per figure,\n"
               "\"bench NAME VALUE UNIT\"; other lines start with '#'. Exit status 1 only if a\n"
               "benchmark could not run (no connection, corrupt data, a hang or a crash).\n\n"
               "benchmarks (two peers on 127.0.0.1; 2proc: the answerer is a forked process):\n");
    for (size_t i = 0; i < BENCH_COUNT; i++)
        fprintf(f, "  %-22s %s\n", benches[i].name, benches[i].what);
    fprintf(
        f, "\noptions:\n"
           "  --only LIST        run the benchmarks whose name contains one of the\n"
           "                     comma-separated words (\"rtt\", \"2proc\", \"throughput_1proc\")\n"
           "  --quick            a smoke run of every benchmark in a few seconds (small sizes)\n"
           "  --bytes MIB        throughput: MiB moved per run (default 512)\n"
           "  --seconds S        throughput: stop sending after S seconds (default 15)\n"
           "  --low MIB          throughput: buffered-amount-low threshold (default 1)\n"
           "  --high MIB         throughput: refill the channel up to this (default 4)\n"
           "  --runs N           connect: connections set up (default 200)\n"
           "  --warmup N         rtt: round trips before measuring (default 1000)\n"
           "  --pings N          rtt: round trips measured (default 10000)\n"
           "  --conns N,M        memory: peer connections open in the measured process at\n"
           "                     the two points (default 100,1000)\n"
           "  --idle S           memory: seconds of idle CPU measured (default 5)\n"
           "  --limit S          kill a benchmark still running after S s (default 120)\n"
           "  --verbose          the stack's log at info level (default: warnings)\n"
           "  --list             print the benchmark names and exit\n"
           "  --help             this text\n");
}

static bool parse_double(const char *s, double min, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || errno || end == s || *end || !(v >= min))
        return false;
    *out = v;
    return true;
}

static bool parse_int(const char *s, int min, int *out)
{
    double v;
    if (!parse_double(s, min, &v) || v > 1e9 || v != (double)(long)v)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_mib(const char *s, size_t *out)
{
    double v;
    if (!parse_double(s, 0.001, &v) || v > 1 << 20)
        return false;
    *out = (size_t)(v * 1048576.0);
    return true;
}

static bool parse_conns(const char *s, bench_opts_t *o)
{
    int a, b;
    char extra;
    if (!s || sscanf(s, "%d,%d%c", &a, &b, &extra) != 2 || a < 2 || b < a || b > 100000)
        return false;
    o->conns_small = a;
    o->conns_large = b;
    return true;
}

/* Returns 0, 1 for --help/--list done, -1 for a bad option. */
static int parse_args(int argc, char **argv, bench_opts_t *o)
{
    bool quick = false;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
    set_defaults(o, quick);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true, takes_value = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--list") == 0) {
            for (size_t k = 0; k < BENCH_COUNT; k++)
                printf("%s\n", benches[k].name);
            return 1;
        } else if (strcmp(a, "--quick") == 0 || strcmp(a, "--verbose") == 0) {
            o->verbose = o->verbose || strcmp(a, "--verbose") == 0;
            takes_value = false;
        } else if (strcmp(a, "--only") == 0) {
            o->only = v;
            ok = v != NULL;
        } else if (strcmp(a, "--bytes") == 0) {
            ok = parse_mib(v, &o->bulk_bytes);
        } else if (strcmp(a, "--seconds") == 0) {
            ok = parse_double(v, 0.01, &o->bulk_seconds);
        } else if (strcmp(a, "--low") == 0) {
            ok = parse_mib(v, &o->bulk_low);
        } else if (strcmp(a, "--high") == 0) {
            ok = parse_mib(v, &o->bulk_high);
        } else if (strcmp(a, "--runs") == 0) {
            ok = parse_int(v, 1, &o->connect_runs);
        } else if (strcmp(a, "--warmup") == 0) {
            ok = parse_int(v, 0, &o->rtt_warmup);
        } else if (strcmp(a, "--pings") == 0) {
            ok = parse_int(v, 1, &o->rtt_pings);
        } else if (strcmp(a, "--conns") == 0) {
            ok = parse_conns(v, o);
        } else if (strcmp(a, "--idle") == 0) {
            ok = parse_double(v, 0.1, &o->idle_seconds);
        } else if (strcmp(a, "--limit") == 0) {
            ok = parse_double(v, 1, &o->limit_seconds);
        } else {
            fprintf(stderr, "tern-bench: unknown option %s (see --help)\n", a);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "tern-bench: bad or missing value for %s (see --help)\n", a);
            return -1;
        }
        if (takes_value)
            i++;
    }
    if (o->bulk_low >= o->bulk_high) {
        fprintf(stderr, "tern-bench: --low must be below --high\n");
        return -1;
    }
    return 0;
}

/* ---- the header ---- */

static void cpu_model(char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (colon) {
            snprintf(out, cap, "%s", colon + 2);
            out[strcspn(out, "\n")] = '\0';
        }
        break;
    }
    fclose(f);
}

static const char *build_type(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return "sanitized (ASan): figures are not representative";
#elif defined(__OPTIMIZE__) && defined(NDEBUG)
    return "optimized, NDEBUG (Release)";
#elif defined(__OPTIMIZE__)
    return "optimized, assertions on (RelWithDebInfo?)";
#else
    return "not optimized (Debug): figures are not representative";
#endif
}

/* The 1-minute load average; -1 if unknown. */
static double load_average(void)
{
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1;
        fclose(f);
    }
    return load;
}

/* Other processes running on the cores make wall-clock figures meaningless: say so. */
static void note_load(const char *when)
{
    double load = load_average();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (load < 0)
        return;
    if (load > 0.5)
        bench_note("load average %s: %.2f on %ld cores: other processes compete for the CPU, "
                   "wall-clock figures are not comparable (CPU-second figures still are)",
                   when, load, cores);
    else
        bench_note("load average %s: %.2f", when, load);
}

static void print_header(const bench_opts_t *o)
{
    char cpu[256];
    struct utsname u;
    cpu_model(cpu, sizeof cpu);
    if (uname(&u) != 0)
        snprintf(u.release, sizeof u.release, "unknown");
    bench_note("tern-bench%s", o->quick ? " --quick (smoke run: figures are not meaningful)" : "");
    bench_note("machine: %s, %ld cores online, Linux %s", cpu, sysconf(_SC_NPROCESSORS_ONLN),
               u.release);
#if defined(__VERSION__)
    bench_note("build: %s, compiler %s", build_type(), __VERSION__);
#else
    bench_note("build: %s", build_type());
#endif
    bench_note("units: MB = 10^6 bytes, KiB = 1024 bytes, CPU s = user + system of the "
               "process(es)");
    note_load("at start");
}

/* ---- running each benchmark in its own process ---- */

static volatile sig_atomic_t alarm_fired;

static void on_alarm(int sig)
{
    (void)sig;
    alarm_fired = 1;
}

/* Show where every thread of a hung benchmark is, with gdb if it is installed. */
static void show_stacks(pid_t pid)
{
    char cmd[256];
    fflush(stdout);
    snprintf(cmd, sizeof cmd,
             "command -v gdb >/dev/null && gdb -p %d -batch -nx -ex 'thread apply all bt 30' "
             "2>/dev/null | grep '^#\\|^Thread' | sed 's/^/# gdb: /'",
             (int)pid);
    if (system(cmd) == -1)
        bench_note("cannot run gdb");
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Kill whatever is left of a benchmark: its process group (the runner and its peer). */
static void kill_group(pid_t pid)
{
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static int wait_runner(const bench_opts_t *o, const bench_entry_t *b, pid_t pid)
{
    int status = 0;
    alarm_fired = 0;
    alarm((unsigned)o->limit_seconds + 1);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR || alarm_fired) {
            bench_note("%s: still running after %.0f s: stuck; where its threads are:", b->name,
                       o->limit_seconds);
            show_stacks(pid);
            kill_group(pid);
            return -1;
        }
    }
    alarm(0);
    /* A peer process left behind (the runner crashed) goes with the group. */
    kill(-pid, SIGKILL);
    if (WIFSIGNALED(status)) {
        bench_note("%s: killed by signal %d (%s)", b->name, WTERMSIG(status),
                   strsignal(WTERMSIG(status)));
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bench_note("%s: could not run (exit status %d)", b->name, WEXITSTATUS(status));
        return -1;
    }
    return 0;
}

static int run_isolated(const bench_opts_t *o, const bench_entry_t *b)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        bench_note("%s: fork failed: %s", b->name, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGALRM, SIG_DFL);
        int rc = run_entry(o, b);
        fflush(stdout);
        exit(rc == 0 ? 0 : 1);
    }
    setpgid(pid, pid);
    return wait_runner(o, b, pid);
}

int main(int argc, char **argv)
{
    bench_opts_t opts;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = parse_args(argc, argv, &opts);
    if (rc != 0)
        return rc < 0 ? 2 : 0;
    struct sigaction sa = {.sa_handler = on_alarm};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART: the alarm interrupts waitpid */
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    size_t chosen = 0;
    for (size_t i = 0; i < BENCH_COUNT; i++)
        chosen += selected(&opts, benches[i].name);
    if (chosen == 0) {
        fprintf(stderr, "tern-bench: --only %s selects no benchmark (see --list)\n", opts.only);
        return 2;
    }
    print_header(&opts);

    int failed = 0;
    int64_t t0 = bench_clock_ns();
    for (size_t i = 0; i < BENCH_COUNT; i++) {
        if (!selected(&opts, benches[i].name))
            continue;
        bench_note("%s: %s", benches[i].name, benches[i].what);
        int64_t t = bench_clock_ns();
        if (run_isolated(&opts, &benches[i]) != 0)
            failed++;
        bench_note("%s: took %.1f s", benches[i].name, (double)(bench_clock_ns() - t) / 1e9);
    }
    note_load("at end");
    bench_note("%zu benchmark(s), %d could not run, %.1f s in all", chosen, failed,
               (double)(bench_clock_ns() - t0) / 1e9);
    return failed ? 1 : 0;
}
