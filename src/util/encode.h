/* SPDX-License-Identifier: MIT */
/* Text encodings and checksums: base64 (RFC 4648), hex, CRC-32 (ISO-HDLC, as STUN uses). */
#ifndef TERN_UTIL_ENCODE_H
#define TERN_UTIL_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes base64 of n bytes needs, with its NUL. */
#define TERN_BASE64_LEN(n) ((((n) + 2) / 3) * 4 + 1)
/* Encode n bytes into out (TERN_BASE64_LEN(n) bytes); returns the length without NUL. */
size_t tern_base64_encode(const uint8_t *in, size_t n, char *out);
/* Decode padded base64; returns the decoded length, or -1 if malformed or over cap. */
long tern_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* The value of one hex digit (either case), or -1. */
int tern_hex_digit(char c);

/* "AB:CD:..." (uppercase, colon-separated), as a=fingerprint writes it; out needs 3n bytes. */
void tern_hex_colon_encode(const uint8_t *in, size_t n, char *out);
/* Parse "ab:CD:.."; returns the byte count, or -1 if malformed or over cap. */
long tern_hex_colon_decode(const char *in, size_t n, uint8_t *out, size_t cap);

uint32_t tern_crc32(const uint8_t *data, size_t len);
/* CRC-32C (Castagnoli), as SCTP uses. */
uint32_t tern_crc32c(const uint8_t *data, size_t len);

/* Constant-time comparison of secrets (MESSAGE-INTEGRITY, fingerprints): true if equal. */
bool tern_ct_equal(const void *a, const void *b, size_t n);

#endif
