/* SPDX-License-Identifier: MIT */
/*
 * The context's DTLS identity (RFC 8827 §6.5, RFC 8122): an ECDSA P-256 self-signed certificate
 * made once per context, or the certificate and key given in PEM; its SHA-256 fingerprint for
 * a=fingerprint; and the SSL_CTX shared by the context's endpoints, pinned to DTLS 1.2 with the
 * cipher suites browsers accept, use_srtp offered, the peer's certificate required and checked
 * against the remote fingerprint only. Provides tern_dtls_identity_init, _fingerprint, _ssl_ctx.
 */
#include "dtls/dtls_internal.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <string.h>

/*
 * ECDHE with AES-GCM or ChaCha20-Poly1305, as RFC 8827 §6.5 and the browsers use; ECDSA first
 * (our own certificate), RSA for a user-given RSA certificate.
 */
#define DTLS_CIPHERS                                                                               \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:"   \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384"
#define DTLS_GROUPS "X25519:P-256:P-384"
/* RFC 5764 §4.1.2 and RFC 7714 §14.2; GCM first, as Chromium prefers it. */
#define DTLS_SRTP_PROFILES "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"

/*
 * A fixed validity so that no clock is read: RFC 5280 §4.1.2.5 gives 99991231235959Z for "no
 * well-defined expiration date". WebRTC peers check the fingerprint, not the dates.
 */
#define CERT_NOT_BEFORE "20000101000000Z"
#define CERT_NOT_AFTER "99991231235959Z"

static void identity_free(void *p)
{
    tern_dtls_identity_t *id = p;
    if (!id)
        return;
    SSL_CTX_free(id->ssl_ctx);
    BIO_meth_free(id->bio_method);
    if (id->scratch) /* the last record decrypted */
        tern_free_secret(id->ctx, id->scratch, TERN_DTLS_MAX_RECORD);
    tern_free(id->ctx, id);
}

/* Never prompt for a passphrase (the default callback reads the terminal): no encrypted keys. */
static int refuse_password(char *buf, int size, int rwflag, void *user)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)user;
    return -1;
}

static int load_pem(const char *cert_pem, const char *key_pem, X509 **cert, EVP_PKEY **key)
{
    BIO *b = BIO_new_mem_buf(cert_pem, -1);
    if (!b)
        return TERN_ERR_NOMEM;
    *cert = PEM_read_bio_X509(b, NULL, refuse_password, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(key_pem, -1);
    if (!b)
        return TERN_ERR_NOMEM;
    *key = PEM_read_bio_PrivateKey(b, NULL, refuse_password, NULL);
    BIO_free(b);
    return *cert && *key ? TERN_OK : TERN_ERR_CRYPTO;
}

static int set_random_serial(tern_ctx_t *ctx, X509 *x)
{
    uint8_t serial[8];
    if (tern_random_bytes(ctx, serial, sizeof serial) != 0)
        return TERN_ERR_CRYPTO;
    serial[0] &= 0x7f; /* RFC 5280 §4.1.2.2: a positive integer */
    serial[0] |= 0x01; /* and never zero */
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? TERN_OK : TERN_ERR_CRYPTO;
}

static int fill_certificate(tern_ctx_t *ctx, X509 *x, EVP_PKEY *key)
{
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_set_version(x, 2) != 1 || set_random_serial(ctx, x) != 0 ||
        ASN1_TIME_set_string_X509(X509_getm_notBefore(x), CERT_NOT_BEFORE) != 1 ||
        ASN1_TIME_set_string_X509(X509_getm_notAfter(x), CERT_NOT_AFTER) != 1 ||
        X509_set_pubkey(x, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"tern", -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_sign(x, key, EVP_sha256()) <= 0)
        return TERN_ERR_CRYPTO;
    return TERN_OK;
}

static int make_certificate(tern_ctx_t *ctx, X509 **cert, EVP_PKEY **key)
{
    *key = EVP_EC_gen("P-256");
    *cert = X509_new();
    if (!*key || !*cert)
        return TERN_ERR_CRYPTO;
    return fill_certificate(ctx, *cert, *key);
}

static int configure_ssl_ctx(SSL_CTX *c, X509 *cert, EVP_PKEY *key)
{
    /* The version is pinned: a ClientHello offering DTLS 1.3 is answered with 1.2. */
    if (SSL_CTX_set_min_proto_version(c, DTLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(c, DTLS1_2_VERSION) != 1)
        return TERN_ERR_CRYPTO;
    /* The MTU is ours (no queries of the socket), no renegotiation, no resumption. */
    SSL_CTX_set_options(c, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_cipher_list(c, DTLS_CIPHERS) != 1 ||
        SSL_CTX_set1_groups_list(c, DTLS_GROUPS) != 1)
        return TERN_ERR_CRYPTO;
    /* Note the inverted convention of this one call: 0 is success. */
    if (SSL_CTX_set_tlsext_use_srtp(c, DTLS_SRTP_PROFILES) != 0)
        return TERN_ERR_CRYPTO;
    /* RFC 8827 §6.5: both sides present a certificate; it is checked against the fingerprint. */
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_cert_verify_callback(c, tern_dtls_verify_cb, NULL);
    if (SSL_CTX_use_certificate(c, cert) != 1 || SSL_CTX_use_PrivateKey(c, key) != 1 ||
        SSL_CTX_check_private_key(c) != 1)
        return TERN_ERR_CRYPTO;
    return TERN_OK;
}

static int compute_fingerprint(X509 *cert, char out[TERN_DTLS_FINGERPRINT_MAX])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (X509_digest(cert, EVP_sha256(), md, &len) != 1)
        return TERN_ERR_CRYPTO;
    tern_hex_colon_encode(md, len, out);
    return TERN_OK;
}

static int identity_build(tern_dtls_identity_t *id, const char *cert_pem, const char *key_pem)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int err;
    if (cert_pem)
        err = load_pem(cert_pem, key_pem, &cert, &key);
    else
        err = make_certificate(id->ctx, &cert, &key);
    if (err == 0) {
        id->ssl_ctx = SSL_CTX_new(DTLS_method());
        id->bio_method = tern_dtls_bio_method_new();
        err = id->ssl_ctx && id->bio_method ? TERN_OK : TERN_ERR_CRYPTO;
    }
    if (err == 0)
        err = configure_ssl_ctx(id->ssl_ctx, cert, key);
    if (err == 0)
        err = compute_fingerprint(cert, id->fingerprint);
    X509_free(cert);
    EVP_PKEY_free(key);
    return err;
}

int tern_dtls_identity_init(tern_ctx_t *ctx, const char *cert_pem, const char *key_pem)
{
    if (!ctx || !cert_pem != !key_pem)
        return TERN_ERR_INVALID_ARG;
    if (ctx->dtls_identity)
        return TERN_ERR_INVALID_STATE;
    tern_dtls_identity_t *id = tern_calloc(ctx, 1, sizeof *id);
    if (!id)
        return TERN_ERR_NOMEM;
    id->ctx = ctx;
    ERR_clear_error();
    int err = identity_build(id, cert_pem, key_pem);
    if (err != 0) {
        const char *detail = ERR_reason_error_string(ERR_peek_last_error());
        TERN_LOG_WARN(ctx, "dtls", "identity failed: %s (%s)", tern_strerror(err),
                      detail ? detail : "no detail");
        ERR_clear_error();
        identity_free(id);
        return err;
    }
    ctx->dtls_identity = id;
    ctx->dtls_identity_free = identity_free;
    TERN_LOG_DEBUG(ctx, "dtls", "identity ready (%s) sha-256 %s",
                   cert_pem ? "given" : "self-signed p-256", id->fingerprint);
    return TERN_OK;
}

int tern_dtls_identity_get(tern_ctx_t *ctx, tern_dtls_identity_t **out)
{
    if (!ctx->dtls_identity) {
        int err = tern_dtls_identity_init(ctx, NULL, NULL);
        if (err != 0)
            return err;
    }
    *out = ctx->dtls_identity;
    return TERN_OK;
}

const char *tern_dtls_identity_fingerprint(const tern_ctx_t *ctx)
{
    const tern_dtls_identity_t *id = ctx ? ctx->dtls_identity : NULL;
    return id ? id->fingerprint : NULL;
}

void *tern_dtls_identity_ssl_ctx(const tern_ctx_t *ctx)
{
    const tern_dtls_identity_t *id = ctx ? ctx->dtls_identity : NULL;
    return id ? id->ssl_ctx : NULL;
}
