/* SPDX-License-Identifier: MIT */
/*
 * A tiny test harness reporting TAP: ok(), eq_int(), eq_str(), eq_mem() and subtest(). A failed
 * check prints where and what, the run goes on, and check_done() returns the exit status.
 * Header-only so every tier (unit, sim, integration) can use it.
 */
#ifndef TERN_TESTS_CHECK_H
#define TERN_TESTS_CHECK_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_count_;
static int check_failed_;
static const char *check_subtest_ = "";

static inline bool check_report_(bool pass, const char *file, int line, const char *expr)
{
    check_count_++;
    if (!pass) {
        check_failed_++;
        printf("not ok %d - %s%s%s (%s:%d)\n", check_count_, check_subtest_,
               *check_subtest_ ? ": " : "", expr, file, line);
        fflush(stdout);
    }
    return pass;
}

#define ok(cond) check_report_((cond), __FILE__, __LINE__, #cond)

#define eq_int(a, b)                                                                              \
    do {                                                                                          \
        long long a_ = (long long)(a), b_ = (long long)(b);                                       \
        if (!check_report_(a_ == b_, __FILE__, __LINE__, #a " == " #b))                           \
            printf("#   got %lld, expected %lld\n", a_, b_);                                      \
    } while (0)

#define eq_str(a, b)                                                                              \
    do {                                                                                          \
        const char *a_ = (a), *b_ = (b);                                                          \
        bool same_ = a_ && b_ ? strcmp(a_, b_) == 0 : a_ == b_;                                   \
        if (!check_report_(same_, __FILE__, __LINE__, #a " == " #b))                              \
            printf("#   got \"%s\", expected \"%s\"\n", a_ ? a_ : "(null)", b_ ? b_ : "(null)");  \
    } while (0)

#define eq_mem(a, b, n)                                                                           \
    check_report_(memcmp((a), (b), (n)) == 0, __FILE__, __LINE__, "memcmp(" #a ", " #b ")")

/* Run fn as a named group of checks. */
#define subtest(name, fn) subtest_call(name, fn())

/* subtest() for any expression, e.g. a call with arguments. */
#define subtest_call(name, expr)                                                                  \
    do {                                                                                          \
        int before_ = check_failed_;                                                              \
        check_subtest_ = (name);                                                                  \
        expr;                                                                                     \
        printf("# %s %s\n", before_ == check_failed_ ? "pass" : "FAIL", (name));                  \
        fflush(stdout);                                                                           \
        check_subtest_ = "";                                                                      \
    } while (0)

/* Print the TAP plan and return the exit status. */
static inline int check_done(void)
{
    printf("1..%d\n", check_count_);
    if (check_failed_)
        printf("# %d of %d checks failed\n", check_failed_, check_count_);
    return check_failed_ ? 1 : 0;
}

#endif
