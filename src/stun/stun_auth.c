/* SPDX-License-Identifier: MIT */
/*
 * STUN message authentication (RFC 8489 §9, §14.5-§14.7): HMAC-SHA1 and HMAC-SHA256 over a
 * message prefix whose header length is adjusted to end at the integrity attribute, the
 * FINGERPRINT CRC, constant-time verification, and the long-term key MD5(user:realm:pass).
 */
#include "stun/stun.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <string.h>

int tern_stun_hmac(bool sha256, const uint8_t *key, size_t key_len, const uint8_t *header,
                   const uint8_t *rest, size_t rest_len, uint8_t *out)
{
    int ret = TERN_ERR_CRYPTO;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *mctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char digest[8];
    memcpy(digest, sha256 ? "SHA256" : "SHA1", sha256 ? 7 : 5);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    /* An empty key is legal in HMAC; OpenSSL wants a non-NULL pointer for it. */
    static const uint8_t empty_key[1];
    size_t out_len = 0;
    size_t want = sha256 ? TERN_STUN_INTEGRITY_SHA256_LEN : TERN_STUN_INTEGRITY_LEN;
    if (mctx && EVP_MAC_init(mctx, key_len ? key : empty_key, key_len, params) == 1 &&
        EVP_MAC_update(mctx, header, TERN_STUN_HEADER_LEN) == 1 &&
        (rest_len == 0 || EVP_MAC_update(mctx, rest, rest_len) == 1) &&
        EVP_MAC_final(mctx, out, &out_len, want) == 1 && out_len == want)
        ret = TERN_OK;
    EVP_MAC_CTX_free(mctx);
    EVP_MAC_free(mac);
    return ret;
}

/* HMAC of a parsed message up to the attribute at `off`, the length field ending it at `end`. */
static int hmac_of_prefix(const tern_stun_msg_t *m, bool sha256, const uint8_t *key, size_t key_len,
                          size_t off, size_t end, uint8_t *out)
{
    uint8_t header[TERN_STUN_HEADER_LEN];
    memcpy(header, m->data, TERN_STUN_HEADER_LEN);
    tern_store_u16(header + 2, (uint16_t)(end - TERN_STUN_HEADER_LEN));
    return tern_stun_hmac(sha256, key, key_len, header, m->data + TERN_STUN_HEADER_LEN,
                          off - TERN_STUN_HEADER_LEN, out);
}

int tern_stun_check_integrity(const tern_stun_msg_t *m, const uint8_t *key, size_t key_len)
{
    if (!m || !(m->present & TERN_STUN_HAS_INTEGRITY))
        return TERN_ERR_NOT_FOUND;
    uint8_t mac[TERN_STUN_INTEGRITY_LEN];
    size_t end = m->integrity_off + 4 + TERN_STUN_INTEGRITY_LEN;
    int ret = hmac_of_prefix(m, false, key, key_len, m->integrity_off, end, mac);
    if (ret != TERN_OK)
        return ret;
    return tern_ct_equal(mac, m->integrity, sizeof mac) ? TERN_OK : TERN_ERR_CRYPTO;
}

int tern_stun_check_integrity_sha256(const tern_stun_msg_t *m, const uint8_t *key, size_t key_len)
{
    if (!m || !(m->present & TERN_STUN_HAS_INTEGRITY_SHA256))
        return TERN_ERR_NOT_FOUND;
    uint8_t mac[TERN_STUN_INTEGRITY_SHA256_LEN];
    size_t end = m->integrity_sha256_off + 4 + m->integrity_sha256_len;
    int ret = hmac_of_prefix(m, true, key, key_len, m->integrity_sha256_off, end, mac);
    if (ret != TERN_OK)
        return ret;
    /* RFC 8489 §14.6: a truncated value is compared on its leading bytes. */
    return tern_ct_equal(mac, m->integrity_sha256, m->integrity_sha256_len) ? TERN_OK
                                                                            : TERN_ERR_CRYPTO;
}

int tern_stun_check_fingerprint(const tern_stun_msg_t *m)
{
    if (!m || !(m->present & TERN_STUN_HAS_FINGERPRINT))
        return TERN_ERR_NOT_FOUND;
    /*
     * RFC 8489 §14.7: FINGERPRINT is the last attribute, so the header's length field already
     * counts it and the CRC runs over the message bytes as they are.
     */
    if (m->fingerprint_off + 8 != m->len)
        return TERN_ERR_PARSE;
    uint32_t crc = tern_crc32(m->data, m->fingerprint_off) ^ TERN_STUN_FINGERPRINT_XOR;
    return crc == m->fingerprint ? TERN_OK : TERN_ERR_PARSE;
}

int tern_stun_long_term_key(const char *username, const char *realm, const char *password,
                            uint8_t out[TERN_STUN_LONG_TERM_KEY_LEN])
{
    if (!username || !realm || !password || !out)
        return TERN_ERR_INVALID_ARG;
    int ret = TERN_ERR_CRYPTO;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    if (md && EVP_DigestInit_ex(md, EVP_md5(), NULL) == 1 &&
        EVP_DigestUpdate(md, username, strlen(username)) == 1 &&
        EVP_DigestUpdate(md, ":", 1) == 1 && EVP_DigestUpdate(md, realm, strlen(realm)) == 1 &&
        EVP_DigestUpdate(md, ":", 1) == 1 &&
        EVP_DigestUpdate(md, password, strlen(password)) == 1 &&
        EVP_DigestFinal_ex(md, out, &n) == 1 && n == TERN_STUN_LONG_TERM_KEY_LEN)
        ret = TERN_OK;
    EVP_MD_CTX_free(md);
    return ret;
}
