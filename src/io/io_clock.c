/* SPDX-License-Identifier: MIT */
/*
 * The loop's clock: CLOCK_MONOTONIC in microseconds, the `now` every sans-IO call is given. It
 * never goes backwards and does not jump with the wall clock (NTP steps, suspend aside).
 */
#include "io/io.h"

#include <time.h>

tern_time_t tern_io_clock_now(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (tern_time_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
