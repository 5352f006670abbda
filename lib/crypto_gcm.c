/*
 * AES-256-GCM one-shots for EncryptedGroupKey, group messages and the file
 * keystore, and the builder of the 0x00-separated AAD/MAC inputs of
 * PROTOCOL.md section 4.
 *
 * The cipher is the implicit EVP_aes_256_gcm(): OpenSSL caches the provider
 * implementation behind it, so a wrap costs one context allocation and no
 * explicit fetch. That matters when the server wraps a key for 100,000 members.
 */
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>

#include "crypto_internal.h"

int cpns_crypto_join(uint8_t buf[CPNS_JOIN_MAX], size_t *len, const char *const *parts, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i])
            return CPNS_ERR_INVALID_ARG;
        size_t l = strlen(parts[i]);
        if (l > CPNS_JOIN_MAX - off - (i > 0))
            return CPNS_ERR_INVALID_ARG;
        if (i > 0)
            buf[off++] = 0x00;
        memcpy(buf + off, parts[i], l);
        off += l;
    }
    *len = off;
    return 0;
}

int cpns_gcm_seal(const uint8_t key[CPNS_KEY_LEN], const uint8_t nonce[CPNS_GCM_NONCE_LEN],
                  const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *ct,
                  uint8_t tag[CPNS_GCM_TAG_LEN])
{
    if (aad_len > INT_MAX || pt_len > INT_MAX)
        return CPNS_ERR_CRYPTO;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return CPNS_ERR_CRYPTO;
    int outl = 0;
    int ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) == 1;
    if (ok && aad_len)
        ok = EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1;
    if (ok && pt_len)
        ok = EVP_EncryptUpdate(ctx, ct, &outl, pt, (int)pt_len) == 1 && outl == (int)pt_len;
    if (ok)
        ok = EVP_EncryptFinal_ex(ctx, ct + pt_len, &outl) == 1 && outl == 0;
    if (ok)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CPNS_GCM_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    return ok ? 0 : CPNS_ERR_CRYPTO;
}

int cpns_gcm_open(const uint8_t key[CPNS_KEY_LEN], const uint8_t nonce[CPNS_GCM_NONCE_LEN],
                  const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
                  const uint8_t tag[CPNS_GCM_TAG_LEN], uint8_t *pt)
{
    if (aad_len > INT_MAX || ct_len > INT_MAX)
        return CPNS_ERR_CRYPTO;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return CPNS_ERR_CRYPTO;
    /* EVP_CTRL_GCM_SET_TAG takes a non-const pointer */
    uint8_t tag_copy[CPNS_GCM_TAG_LEN];
    memcpy(tag_copy, tag, sizeof tag_copy);
    int outl = 0;
    int rv = CPNS_ERR_CRYPTO;
    int ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) == 1;
    if (ok && aad_len)
        ok = EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1;
    if (ok && ct_len)
        ok = EVP_DecryptUpdate(ctx, pt, &outl, ct, (int)ct_len) == 1 && outl == (int)ct_len;
    if (ok)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CPNS_GCM_TAG_LEN, tag_copy) == 1;
    if (ok) {
        /* with every step before it done, a failing final is a tag mismatch */
        rv = EVP_DecryptFinal_ex(ctx, pt + ct_len, &outl) == 1 ? 0 : CPNS_ERR_AUTH;
    }
    EVP_CIPHER_CTX_free(ctx);
    if (rv && ct_len)
        cpns_wipe(pt, ct_len);
    return rv;
}
