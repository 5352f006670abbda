/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HKDF-SHA256 (RFC 5869) through OpenSSL's EVP_KDF "HKDF", and cpns_kdf(),
 * the one form PROTOCOL.md section 4 uses: empty salt, 32 bytes out, a
 * distinct info label per purpose (key wrap, registration proof, key
 * confirmation, group messages, the PNE key store) so that one EUK or GK
 * never keys two different things.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "cpns/crypto.h"
#include "crypto_internal.h"

#define SHA256_LEN 32
#define SHA256_BLOCK 64

int cpns_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                     const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    if (out_len == 0 || out_len > 255 * SHA256_LEN || (!salt && salt_len) || (!ikm && ikm_len) ||
        (!info && info_len) || !out)
        return CPNS_ERR_INVALID_ARG;

    /* RFC 5869 2.2: a salt that is not provided is HashLen zero bytes */
    static const uint8_t zero_salt[SHA256_LEN];
    static const uint8_t empty[1];
    if (salt_len == 0) {
        salt = zero_salt;
        salt_len = sizeof zero_salt;
    }
    if (!ikm)
        ikm = empty;

    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    if (!kdf)
        return CPNS_ERR_CRYPTO;
    EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf); /* the context keeps its own reference */
    if (!kctx)
        return CPNS_ERR_CRYPTO;

    OSSL_PARAM params[5];
    size_t n = 0;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    if (info_len)
        params[n++] =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    params[n] = OSSL_PARAM_construct_end();

    int ok = EVP_KDF_derive(kctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(kctx); /* cleanses the copies of key and salt */
    if (!ok) {
        cpns_wipe(out, out_len);
        return CPNS_ERR_CRYPTO;
    }
    return 0;
}

/*
 * HMAC-SHA256 (RFC 2104) of m1 ‖ m2 under a key of at most one block, on
 * EVP digests. cpns_kdf runs once per member on both sides (the PNE derives
 * K_wrap, the server its confirmation key), and the EVP_KDF path fetches the
 * HKDF, HMAC and SHA-256 implementations on every call; the two digests here
 * cost a fraction of that.
 */
int cpns_hmac_sha256_on(EVP_MD_CTX *ctx, const EVP_MD *md, const uint8_t *key, size_t key_len,
                        const uint8_t *m1, size_t m1_len, const uint8_t *m2, size_t m2_len,
                        uint8_t out[32])
{
    uint8_t pad[SHA256_BLOCK], inner[SHA256_LEN];
    memset(pad, 0x36, sizeof pad);
    for (size_t i = 0; i < key_len; i++)
        pad[i] ^= key[i];
    int ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, pad, sizeof pad) == 1 &&
             EVP_DigestUpdate(ctx, m1, m1_len) == 1 &&
             (m2_len == 0 || EVP_DigestUpdate(ctx, m2, m2_len) == 1) &&
             EVP_DigestFinal_ex(ctx, inner, NULL) == 1;
    memset(pad, 0x5c, sizeof pad);
    for (size_t i = 0; i < key_len; i++)
        pad[i] ^= key[i];
    ok = ok && EVP_DigestInit_ex(ctx, md, NULL) == 1 &&
         EVP_DigestUpdate(ctx, pad, sizeof pad) == 1 &&
         EVP_DigestUpdate(ctx, inner, sizeof inner) == 1 && EVP_DigestFinal_ex(ctx, out, NULL) == 1;
    cpns_wipe(pad, sizeof pad);
    cpns_wipe(inner, sizeof inner);
    return ok;
}

/*
 * HKDF with an empty salt and one block of output (RFC 5869 2.2, 2.3):
 * PRK = HMAC(0^32, IKM), OKM = HMAC(PRK, info ‖ 0x01). Tested against the
 * EVP_KDF form and the vectors of PROTOCOL.md 4.1.
 */
int cpns_kdf_on(EVP_MD_CTX *ctx, const EVP_MD *md, const uint8_t ikm[CPNS_KEY_LEN],
                const char *info, uint8_t out[CPNS_KEY_LEN])
{
    static const uint8_t zero_salt[SHA256_LEN];
    static const uint8_t one[1] = {0x01};
    uint8_t prk[SHA256_LEN];
    int ok = cpns_hmac_sha256_on(ctx, md, zero_salt, sizeof zero_salt, ikm, CPNS_KEY_LEN, NULL, 0,
                                 prk) &&
             cpns_hmac_sha256_on(ctx, md, prk, sizeof prk, (const uint8_t *)info, strlen(info), one,
                                 1, out);
    cpns_wipe(prk, sizeof prk);
    if (!ok) {
        cpns_wipe(out, CPNS_KEY_LEN);
        return CPNS_ERR_CRYPTO;
    }
    return 0;
}

int cpns_kdf(const uint8_t ikm[CPNS_KEY_LEN], const char *info, uint8_t out[CPNS_KEY_LEN])
{
    if (!ikm || !info || !out)
        return CPNS_ERR_INVALID_ARG;
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = md ? EVP_MD_CTX_new() : NULL;
    int rv = ctx ? cpns_kdf_on(ctx, md, ikm, info, out) : CPNS_ERR_CRYPTO;
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    if (rv)
        cpns_wipe(out, CPNS_KEY_LEN);
    return rv;
}
