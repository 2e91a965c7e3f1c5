/* SPDX-License-Identifier: MIT */
/* The util layer's internal API: everything below every protocol module. */
#ifndef TERN_UTIL_UTIL_H
#define TERN_UTIL_UTIL_H

#include "tern/tern.h"
#include "util/buf.h"
#include "util/ctx.h"
#include "util/encode.h"
#include "util/log.h"
#include "util/rng.h"
#include "util/txq.h"

#define TERN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TERN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define TERN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Microseconds in the units the RFCs use. */
#define TERN_MS(x) ((tern_time_t)(x) * 1000)
#define TERN_SEC(x) ((tern_time_t)(x) * 1000000)

#endif
