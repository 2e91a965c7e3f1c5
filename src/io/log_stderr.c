/* SPDX-License-Identifier: MIT */
/*
 * The default log sink: stderr, filtered by TERN_LOG ("info", "ice=trace,dtls=debug",
 * "warn,sctp=debug"). The filter is read from the environment on first use; the sans-IO core
 * never reads the environment, which is why this lives in io/.
 */
#include "tern/tern.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODULE_RULES 16

typedef struct log_filter {
    tern_log_level_t default_level;
    struct {
        char module[16];
        tern_log_level_t level;
    } rules[MAX_MODULE_RULES];
    int rule_count;
} log_filter_t;

static pthread_mutex_t filter_lock = PTHREAD_MUTEX_INITIALIZER;
static log_filter_t filter;
static bool filter_loaded;
/* The most verbose level any rule lets through, -1 before the filter is read: lines above it
 * are dropped without taking the lock (the core formats at TRACE when the sink filters). */
static atomic_int filter_max_level = -1;

static const char *const level_names[] = {"none", "error", "warn", "info", "debug", "trace"};

static bool parse_level(const char *s, size_t n, tern_log_level_t *out)
{
    for (int i = 0; i <= TERN_LOG_TRACE; i++) {
        if (strlen(level_names[i]) == n && strncmp(s, level_names[i], n) == 0) {
            *out = (tern_log_level_t)i;
            return true;
        }
    }
    return false;
}

static void parse_filter(const char *spec, log_filter_t *f)
{
    memset(f, 0, sizeof *f);
    f->default_level = TERN_LOG_WARN;
    while (spec && *spec) {
        size_t n = strcspn(spec, ",");
        const char *eq = memchr(spec, '=', n);
        tern_log_level_t level;
        if (!eq) {
            if (parse_level(spec, n, &level))
                f->default_level = level;
        } else if (f->rule_count < MAX_MODULE_RULES && (size_t)(eq - spec) < 16 &&
                   parse_level(eq + 1, n - (size_t)(eq - spec) - 1, &level)) {
            memcpy(f->rules[f->rule_count].module, spec, (size_t)(eq - spec));
            f->rules[f->rule_count].module[eq - spec] = '\0';
            f->rules[f->rule_count].level = level;
            f->rule_count++;
        }
        spec += n;
        if (*spec == ',')
            spec++;
    }
}

static void publish_max_level(const log_filter_t *f)
{
    int max = (int)f->default_level;
    for (int i = 0; i < f->rule_count; i++)
        if ((int)f->rules[i].level > max)
            max = (int)f->rules[i].level;
    atomic_store(&filter_max_level, max);
}

void tern_log_stderr_set_filter(const char *spec)
{
    pthread_mutex_lock(&filter_lock);
    parse_filter(spec ? spec : getenv("TERN_LOG"), &filter);
    filter_loaded = true;
    publish_max_level(&filter);
    pthread_mutex_unlock(&filter_lock);
}

static tern_log_level_t level_for(const char *module)
{
    pthread_mutex_lock(&filter_lock);
    if (!filter_loaded) {
        parse_filter(getenv("TERN_LOG"), &filter);
        filter_loaded = true;
        publish_max_level(&filter);
    }
    tern_log_level_t level = filter.default_level;
    for (int i = 0; i < filter.rule_count; i++)
        if (strcmp(filter.rules[i].module, module) == 0)
            level = filter.rules[i].level;
    pthread_mutex_unlock(&filter_lock);
    return level;
}

tern_log_level_t tern_log_stderr_max_level(void)
{
    level_for(""); /* loads the filter from the environment on first use */
    int max = atomic_load(&filter_max_level);
    return max < 0 ? TERN_LOG_TRACE : (tern_log_level_t)max;
}

void tern_log_stderr(void *user, tern_log_level_t level, const char *module, const char *msg)
{
    (void)user;
    if (level <= TERN_LOG_NONE || level > TERN_LOG_TRACE || !module || !msg)
        return;
    int max = atomic_load(&filter_max_level);
    if (max >= 0 && (int)level > max)
        return;
    if (level > level_for(module))
        return;
    fprintf(stderr, "tern %-5s %s: %s\n", level_names[level], module, msg);
}
