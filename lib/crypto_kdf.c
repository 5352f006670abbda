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

#define SHA256_LEN 32

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

int cpns_kdf(const uint8_t ikm[CPNS_KEY_LEN], const char *info, uint8_t out[CPNS_KEY_LEN])
{
    if (!ikm || !info || !out)
        return CPNS_ERR_INVALID_ARG;
    return cpns_hkdf_sha256(NULL, 0, ikm, CPNS_KEY_LEN, (const uint8_t *)info, strlen(info), out,
                            CPNS_KEY_LEN);
}
