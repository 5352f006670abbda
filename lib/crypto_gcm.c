/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AES-256-GCM for EncryptedGroupKey, group messages and the file keystore:
 * one-shots, the reusable cpns_gcm context, and the builder of the
 * 0x00-separated AAD/MAC inputs of PROTOCOL.md section 4.
 *
 * The one-shots create, initialise and free an EVP_CIPHER_CTX per call. In
 * OpenSSL 3 that init also fetches the provider implementation behind
 * EVP_aes_256_gcm() every time: together about half of the instructions of
 * an EncryptedGroupKey wrap (callgrind, OpenSSL 3.0). The server wraps a
 * Group Key for up to 100,000 members in a row, so cpns_gcm keeps one
 * fetched cipher and one context and only re-keys it per call (issue #4).
 * Nothing here is global: the caller owns the context, and one context
 * serves one thread at a time.
 */
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>

#include "crypto_internal.h"
#include "internal.h"

struct cpns_gcm {
    EVP_CIPHER *cipher;  /* fetched once, in cpns_gcm_new */
    EVP_CIPHER_CTX *ctx; /* re-keyed per call; holds the last key schedule */
    int primed;          /* ctx carries the cipher, so a re-key passes NULL */
};

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

/*
 * One GCM operation on ctx. cipher is NULL when ctx already carries it:
 * passing it again would make OpenSSL free and recreate the provider context.
 * enc: tag is written; !enc: tag is checked, CPNS_ERR_AUTH on a mismatch.
 */
static int gcm_run(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, int enc,
                   const uint8_t key[CPNS_KEY_LEN], const uint8_t nonce[CPNS_GCM_NONCE_LEN],
                   const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                   const uint8_t *tag_in, uint8_t *tag_out)
{
    if (aad_len > INT_MAX || len > INT_MAX)
        return CPNS_ERR_CRYPTO;
    int outl = 0;
    int ok = EVP_CipherInit_ex2(ctx, cipher, key, nonce, enc, NULL) == 1;
    if (ok && aad_len)
        ok = EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1;
    if (ok && len)
        ok = EVP_CipherUpdate(ctx, out, &outl, in, (int)len) == 1 && outl == (int)len;
    if (!ok)
        return CPNS_ERR_CRYPTO;
    if (enc) {
        ok = EVP_CipherFinal_ex(ctx, out + len, &outl) == 1 && outl == 0 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CPNS_GCM_TAG_LEN, tag_out) == 1;
        return ok ? 0 : CPNS_ERR_CRYPTO;
    }
    /* EVP_CTRL_GCM_SET_TAG takes a non-const pointer */
    uint8_t tag_copy[CPNS_GCM_TAG_LEN];
    memcpy(tag_copy, tag_in, sizeof tag_copy);
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CPNS_GCM_TAG_LEN, tag_copy) != 1)
        return CPNS_ERR_CRYPTO;
    /* with every step before it done, a failing final is a tag mismatch */
    return EVP_CipherFinal_ex(ctx, out + len, &outl) == 1 ? 0 : CPNS_ERR_AUTH;
}

int cpns_gcm_seal(const uint8_t key[CPNS_KEY_LEN], const uint8_t nonce[CPNS_GCM_NONCE_LEN],
                  const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *ct,
                  uint8_t tag[CPNS_GCM_TAG_LEN])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return CPNS_ERR_CRYPTO;
    int rv =
        gcm_run(ctx, EVP_aes_256_gcm(), 1, key, nonce, aad, aad_len, pt, pt_len, ct, NULL, tag);
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    return rv;
}

int cpns_gcm_open(const uint8_t key[CPNS_KEY_LEN], const uint8_t nonce[CPNS_GCM_NONCE_LEN],
                  const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
                  const uint8_t tag[CPNS_GCM_TAG_LEN], uint8_t *pt)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return CPNS_ERR_CRYPTO;
    int rv =
        gcm_run(ctx, EVP_aes_256_gcm(), 0, key, nonce, aad, aad_len, ct, ct_len, pt, tag, NULL);
    EVP_CIPHER_CTX_free(ctx);
    if (rv && ct_len)
        cpns_wipe(pt, ct_len);
    return rv;
}

int cpns_gcm_new(cpns_gcm **out)
{
    *out = NULL;
    cpns_gcm *c = cpns_calloc(1, sizeof *c);
    if (!c)
        return CPNS_ERR_NOMEM;
    c->cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    c->ctx = EVP_CIPHER_CTX_new();
    if (!c->cipher || !c->ctx) {
        /* no cipher: the provider is missing (CRYPTO); no context: out of memory */
        int rv = c->cipher ? CPNS_ERR_NOMEM : CPNS_ERR_CRYPTO;
        cpns_gcm_free(c);
        return rv;
    }
    *out = c;
    return 0;
}

void cpns_gcm_free(cpns_gcm *c)
{
    if (!c)
        return;
    /* freeing the provider context cleanses the last key schedule */
    EVP_CIPHER_CTX_free(c->ctx);
    EVP_CIPHER_free(c->cipher);
    cpns_free(c);
}

/*
 * After a failure OpenSSL may have left the context half-initialised: reset
 * it (which also wipes the key schedule) so that the next call starts from
 * the cipher again.
 */
static int gcm_ctx_run(cpns_gcm *c, int enc, const uint8_t key[CPNS_KEY_LEN],
                       const uint8_t nonce[CPNS_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                       const uint8_t *in, size_t len, uint8_t *out, const uint8_t *tag_in,
                       uint8_t *tag_out)
{
    int rv = gcm_run(c->ctx, c->primed ? NULL : c->cipher, enc, key, nonce, aad, aad_len, in, len,
                     out, tag_in, tag_out);
    c->primed = rv == 0;
    if (rv)
        EVP_CIPHER_CTX_reset(c->ctx);
    return rv;
}

int cpns_gcm_seal_ctx(cpns_gcm *c, const uint8_t key[CPNS_KEY_LEN],
                      const uint8_t nonce[CPNS_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                      const uint8_t *pt, size_t pt_len, uint8_t *ct, uint8_t tag[CPNS_GCM_TAG_LEN])
{
    return gcm_ctx_run(c, 1, key, nonce, aad, aad_len, pt, pt_len, ct, NULL, tag);
}

int cpns_gcm_open_ctx(cpns_gcm *c, const uint8_t key[CPNS_KEY_LEN],
                      const uint8_t nonce[CPNS_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                      const uint8_t *ct, size_t ct_len, const uint8_t tag[CPNS_GCM_TAG_LEN],
                      uint8_t *pt)
{
    int rv = gcm_ctx_run(c, 0, key, nonce, aad, aad_len, ct, ct_len, pt, tag, NULL);
    if (rv && ct_len)
        cpns_wipe(pt, ct_len);
    return rv;
}
