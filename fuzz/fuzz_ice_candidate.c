/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness of the a=candidate codec: parse a line; if it parses, format it, parse the result
 * again and require the same candidate, and format that again and require the same text.
 */
#include "ice/ice.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    tern_ice_candidate_t c, again;
    if (tern_ice_candidate_parse((const char *)data, size, &c) != TERN_OK)
        return 0;
    char buf[TERN_ICE_CANDIDATE_STRLEN], buf2[TERN_ICE_CANDIDATE_STRLEN];
    int n = tern_ice_candidate_format(&c, buf, sizeof buf);
    if (n <= 0 || (size_t)n >= sizeof buf || strlen(buf) != (size_t)n)
        abort();
    if (tern_ice_candidate_parse(buf, (size_t)n, &again) != TERN_OK)
        abort();
    if (memcmp(&c, &again, sizeof c) != 0)
        abort();
    int n2 = tern_ice_candidate_format(&again, buf2, sizeof buf2);
    if (n2 != n || memcmp(buf, buf2, (size_t)n) != 0)
        abort();
    /* Every shorter buffer is refused cleanly, never overrun. */
    if (tern_ice_candidate_format(&c, buf2, (size_t)n) != TERN_ERR_TOO_LARGE)
        abort();
    return 0;
}
