/* SPDX-License-Identifier: MIT */
/*
 * The CRC32c checksum of outgoing SCTP packets (RFC 4960 §6.8, Appendix B; the Castagnoli
 * polynomial of RFC 3309). usrsctp leaves it to us (its checksum is "offloaded", see sctp.c), and
 * it runs over every byte sent, so it uses the SSE4.2 crc32 instruction when the CPU has it
 * (checked at run time: the binary must still run on CPUs without it) and falls back to
 * usrsctp's table-driven software version otherwise. The instruction computes exactly the
 * reflected CRC32c, so both paths give the same value. Provides tern_sctp_crc32c
 * (and tern_sctp_crc32c_software, the fallback, for tests).
 *
 * The target attribute and __builtin_cpu_supports are GCC/clang extensions; they are confined to
 * this file, and any other compiler or CPU takes the software path.
 */
#include "sctp/sctp.h"

#include <usrsctp.h>

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TERN_CRC32C_SSE42 1
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(const uint8_t *p, size_t len)
{
    uint64_t crc = 0xffffffffu;
    /* One 8-byte step per instruction; memcpy keeps unaligned loads well defined. */
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        crc = _mm_crc32_u64(crc, v);
    }
    uint32_t c = (uint32_t)crc;
    for (; len > 0; p++, len--)
        c = _mm_crc32_u8(c, *p);
    return ~c;
}
#endif

/* usrsctp returns the checksum as it goes into the packet in host memory order. */
uint32_t tern_sctp_crc32c_software(const uint8_t *p, size_t len)
{
    uint8_t field[4];
    uint32_t v = usrsctp_crc32c((void *)p, len);
    memcpy(field, &v, sizeof field);
    return (uint32_t)field[0] | (uint32_t)field[1] << 8 | (uint32_t)field[2] << 16 |
           (uint32_t)field[3] << 24;
}

uint32_t tern_sctp_crc32c(const uint8_t *data, size_t len)
{
#ifdef TERN_CRC32C_SSE42
    if (__builtin_cpu_supports("sse4.2"))
        return crc32c_sse42(data, len);
#endif
    return tern_sctp_crc32c_software(data, len);
}
