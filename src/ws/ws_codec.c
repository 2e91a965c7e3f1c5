/* SPDX-License-Identifier: MIT */
/*
 * WebSocket codec pieces that hold no state (RFC 6455): the Sec-WebSocket-Accept computation
 * and key check (§4.1, §4.2.2), frame headers with their three length encodings (§5.2),
 * masking (§5.3), the close codes a frame may carry (§7.4), and an incremental UTF-8
 * validator (RFC 3629 §4) that accepts a text split anywhere across frames.
 */
#include "ws/ws.h"

#include <openssl/evp.h>

#include <string.h>

/* RFC 6455 §1.3: the GUID appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int tern_ws_accept_key(const char *key, size_t key_len, char out[TERN_WS_ACCEPT_LEN + 1])
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(md, key, key_len) == 1 &&
             EVP_DigestUpdate(md, ws_guid, sizeof(ws_guid) - 1) == 1 &&
             EVP_DigestFinal_ex(md, digest, &digest_len) == 1 && digest_len == 20;
    EVP_MD_CTX_free(md);
    if (!ok) {
        out[0] = '\0';
        return TERN_ERR_CRYPTO;
    }
    tern_base64_encode(digest, 20, out);
    return TERN_OK;
}

bool tern_ws_key_valid(const char *key, size_t key_len)
{
    /* base64 of 16 bytes is 22 characters and "==" (RFC 6455 §4.1 item 7). */
    uint8_t raw[18];
    if (key_len != TERN_WS_KEY_LEN)
        return false;
    return tern_base64_decode(key, key_len, raw, sizeof(raw)) == 16;
}

bool tern_ws_close_code_valid(uint16_t code)
{
    /* RFC 6455 §7.4.1 and §7.4.2: 1004-1006 and 1015 are reserved and never on the wire;
     * 1012-1014 were registered with IANA after the RFC (service restart, try again later,
     * bad gateway) and browsers send them; 3000-4999 are for libraries and applications. */
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}

int tern_ws_frame_header_parse(const uint8_t *data, size_t len, tern_ws_frame_header_t *out)
{
    if (len < 2)
        return TERN_ERR_AGAIN;
    uint8_t b0 = data[0];
    uint8_t b1 = data[1];
    size_t need = 2;
    uint8_t len7 = b1 & 0x7f;
    if (len7 == 126)
        need += 2;
    else if (len7 == 127)
        need += 8;
    bool masked = (b1 & 0x80) != 0;
    if (masked)
        need += 4;
    if (len < need)
        return TERN_ERR_AGAIN;

    uint64_t plen = len7;
    const uint8_t *p = data + 2;
    if (len7 == 126) {
        plen = tern_load_u16(p);
        p += 2;
        /* RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length". */
        if (plen < 126)
            return TERN_ERR_PARSE;
    } else if (len7 == 127) {
        plen = (uint64_t)tern_load_u32(p) << 32 | tern_load_u32(p + 4);
        p += 8;
        /* RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0. */
        if (plen >> 63 || plen <= 0xffff)
            return TERN_ERR_PARSE;
    }
    out->fin = (b0 & 0x80) != 0;
    out->rsv = (uint8_t)((b0 >> 4) & 0x7);
    out->opcode = b0 & 0x0f;
    out->masked = masked;
    if (masked)
        memcpy(out->mask, p, 4);
    else
        memset(out->mask, 0, 4);
    out->payload_len = plen;
    out->header_len = need;
    return TERN_OK;
}

size_t tern_ws_frame_header_write(uint8_t *out, bool fin, uint8_t opcode, uint64_t payload_len,
                                  const uint8_t mask[4])
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t mask_bit = mask ? 0x80 : 0;
    if (payload_len < 126) {
        out[1] = (uint8_t)(mask_bit | payload_len);
    } else if (payload_len <= 0xffff) {
        out[1] = mask_bit | 126;
        tern_store_u16(out + 2, (uint16_t)payload_len);
        n = 4;
    } else {
        out[1] = mask_bit | 127;
        tern_store_u32(out + 2, (uint32_t)(payload_len >> 32));
        tern_store_u32(out + 6, (uint32_t)payload_len);
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void tern_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    /* Rotate the key so that byte 0 of data uses key byte (offset % 4), then go word by word:
     * the relay path masks and unmasks every byte, so this loop is on the fast path. */
    uint8_t k[8];
    for (size_t i = 0; i < 8; i++)
        k[i] = mask[(offset + i) & 3];
    uint64_t k64;
    memcpy(&k64, k, 8);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, data + i, 8);
        v ^= k64;
        memcpy(data + i, &v, 8);
    }
    for (; i < len; i++)
        data[i] ^= k[i & 7];
}

/*
 * UTF-8 validator state: 0 (ACCEPT) at a character boundary, 1 (REJECT), or, inside a
 * character, (bytes still needed) << 16 | (lowest allowed next byte) << 8 | (highest).
 * The first continuation byte's range excludes overlong forms (E0, F0), surrogates (ED) and
 * code points above U+10FFFF (F4) (RFC 3629 §4 table); the later ones are always 80..BF.
 */
static uint32_t utf8_state(uint32_t need, uint32_t lo, uint32_t hi)
{
    return need << 16 | lo << 8 | hi;
}

static uint32_t utf8_lead(uint8_t c)
{
    if (c < 0x80)
        return TERN_UTF8_ACCEPT;
    if (c >= 0xc2 && c <= 0xdf)
        return utf8_state(1, 0x80, 0xbf);
    if (c == 0xe0)
        return utf8_state(2, 0xa0, 0xbf);
    if (c == 0xed)
        return utf8_state(2, 0x80, 0x9f);
    if (c >= 0xe1 && c <= 0xef)
        return utf8_state(2, 0x80, 0xbf);
    if (c == 0xf0)
        return utf8_state(3, 0x90, 0xbf);
    if (c >= 0xf1 && c <= 0xf3)
        return utf8_state(3, 0x80, 0xbf);
    if (c == 0xf4)
        return utf8_state(3, 0x80, 0x8f);
    return TERN_UTF8_REJECT; /* 80..C1 (continuation or overlong lead), F5..FF */
}

static uint32_t utf8_step(uint32_t state, uint8_t c)
{
    if (state == TERN_UTF8_ACCEPT)
        return utf8_lead(c);
    uint32_t need = state >> 16;
    uint32_t lo = (state >> 8) & 0xff;
    uint32_t hi = state & 0xff;
    if (c < lo || c > hi)
        return TERN_UTF8_REJECT;
    return need == 1 ? TERN_UTF8_ACCEPT : utf8_state(need - 1, 0x80, 0xbf);
}

uint32_t tern_utf8_feed(uint32_t state, const uint8_t *data, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (state == TERN_UTF8_REJECT)
            return state;
        if (state == TERN_UTF8_ACCEPT) {
            /* Skip ASCII eight bytes at a time: JSON signaling is mostly ASCII. */
            while (i + 8 <= len) {
                uint64_t v;
                memcpy(&v, data + i, 8);
                if (v & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            if (i == len)
                break;
        }
        state = utf8_step(state, data[i++]);
    }
    return state;
}

bool tern_utf8_valid(const uint8_t *data, size_t len)
{
    return tern_utf8_feed(TERN_UTF8_ACCEPT, data, len) == TERN_UTF8_ACCEPT;
}
