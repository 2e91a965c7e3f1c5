/* SPDX-License-Identifier: MIT */
/*
 * The process clock of a simulation: this file defines gettimeofday and clock_gettime, which
 * answer from the virtual clock that vnet_advance moves.
 *
 * Why: the stack itself only sees `now`, but two of its dependencies read the clock on their
 * own. OpenSSL 3.0 checks its DTLS retransmission timer against gettimeofday (ssl/d1_lib.c:
 * dtls1_start_timer, dtls1_is_timer_expired, DTLSv1_get_timeout), and usrsctp measures RTTs and
 * cookie lifetimes with gettimeofday (SCTP_GETTIME_TIMEVAL). With the real clock, a handshake
 * flight lost in a simulation would only be resent after a second of real time, and SCTP's RTO
 * would be computed from wall-clock microseconds instead of the simulated delay.
 *
 * How: libssl.so.3, libcrypto.so.3 and libusrsctp.so.2 are shared libraries that import these
 * functions (nm -D shows `U gettimeofday@GLIBC_2.2.5`). The dynamic linker resolves their
 * imports in the global scope, where the executable comes first, so a definition in the
 * program interposes libc's for every library; glibc's own internal calls are not affected.
 * Two details make it work: the functions must be in the executable's dynamic symbol table,
 * which `visibility("default")` ensures even though the build compiles with
 * -fvisibility=hidden; and an unversioned definition satisfies the libraries' versioned
 * (GLIBC_2.2.5) references. Under ASan the sanitizer's interceptors of the same names are
 * weak (clang) or in libasan.so after the executable (gcc), so this definition still wins.
 * sim_vnet checks all of this: libssl's DTLS timer must follow vnet_advance.
 *
 * What: CLOCK_MONOTONIC, _RAW, _COARSE and CLOCK_BOOTTIME read the virtual process time;
 * CLOCK_REALTIME, _COARSE and gettimeofday read the real wall time at the first reading plus the
 * virtual time elapsed since; any other clock (CPU-time clocks) goes to the real clock_gettime
 * found with dlsym(RTLD_NEXT). The process time never goes backwards. Simulations of peers
 * start each run at vnet_clock_next_start(), so a run's `now` is the process time itself (the
 * stack keeps process-wide state across runs: usrsctp's tick). A run may also start at a
 * fixed time such as 1000000 (the vnet self-test does); its `now` is then offset from the
 * process time. Single-threaded, as the simulations are.
 */
#include "vnet.h"

#include <dlfcn.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define SIM_EXPORT __attribute__((visibility("default")))
#define RUN_GAP_US 1000000

static tern_time_t run_offset;           /* process time = run_offset + the run's now */
static tern_time_t run_now = 1000000;    /* the current run's now */
static tern_time_t process_us = 1000000; /* virtual time since the program started, plus 1 s */
static bool started;
static tern_time_t realtime_base_us; /* real wall time at the first reading, minus process_us */
static bool have_realtime_base;
static uint64_t virtual_reads;

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime(void)
{
    static clock_gettime_fn fn;
    if (!fn) {
        void *sym = dlsym(RTLD_NEXT, "clock_gettime");
        memcpy(&fn, &sym, sizeof fn); /* POSIX: a data pointer from dlsym holds a function */
    }
    return fn;
}

static tern_time_t real_us(clockid_t id)
{
    struct timespec ts = {0};
    clock_gettime_fn fn = real_clock_gettime();
    if (fn)
        fn(id, &ts);
    return (tern_time_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void vnet_clock_begin_run(tern_time_t start)
{
    tern_time_t target = started ? process_us + RUN_GAP_US : process_us;
    if (start >= target)
        target = start; /* the run's time is the process time */
    started = true;
    run_offset = target - start;
    run_now = start;
    process_us = target;
}

void vnet_clock_set(tern_time_t now)
{
    if (now <= run_now)
        return;
    run_now = now;
    process_us = run_offset + now;
}

tern_time_t vnet_clock_next_start(void)
{
    tern_time_t t = started ? process_us + RUN_GAP_US : process_us;
    return (t + 999999) / 1000000 * 1000000;
}

tern_time_t vnet_clock_real_us(void)
{
    return real_us(CLOCK_MONOTONIC);
}

uint64_t vnet_clock_virtual_reads(void)
{
    return virtual_reads;
}

static tern_time_t realtime_us(void)
{
    if (!have_realtime_base) {
        realtime_base_us = real_us(CLOCK_REALTIME) - process_us;
        have_realtime_base = true;
    }
    return realtime_base_us + process_us;
}

static void to_timespec(tern_time_t us, struct timespec *ts)
{
    ts->tv_sec = (time_t)(us / 1000000);
    ts->tv_nsec = (long)(us % 1000000) * 1000;
}

SIM_EXPORT int clock_gettime(clockid_t id, struct timespec *ts)
{
    switch (id) {
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_BOOTTIME:
        virtual_reads++;
        to_timespec(process_us, ts);
        return 0;
    case CLOCK_REALTIME:
    case CLOCK_REALTIME_COARSE:
        virtual_reads++;
        to_timespec(realtime_us(), ts);
        return 0;
    default: {
        clock_gettime_fn fn = real_clock_gettime();
        return fn ? fn(id, ts) : -1;
    }
    }
}

SIM_EXPORT int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void)tz; /* obsolete; glibc ignores it as well */
    virtual_reads++;
    tern_time_t us = realtime_us(); /* tv is declared nonnull by glibc */
    tv->tv_sec = (time_t)(us / 1000000);
    tv->tv_usec = (suseconds_t)(us % 1000000);
    return 0;
}
