/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the crypto files share and do not export: the AES-256-GCM one-shots
 * that EncryptedGroupKey, group messages and the file keystore are built on,
 * and the builder of the "label ‖ 0x00 ‖ field ‖ 0x00 ‖ ..." strings that
 * PROTOCOL.md section 4 uses as AADs and MAC inputs.
 */
#ifndef CPNS_CRYPTO_INTERNAL_H
#define CPNS_CRYPTO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "cpns/crypto.h"
#include "internal.h"

/*
 * Room for the longest joined input: a label, two identifiers, a base64
 * Nonce or decimal number and the separators, with margin.
 */
#define CPNS_JOIN_MAX 256

/*
 * Writes parts[0] ‖ 0x00 ‖ parts[1] ‖ ... ‖ parts[n-1] into buf
 * (CPNS_JOIN_MAX bytes) and sets *len. CPNS_ERR_INVALID_ARG if a part is
 * NULL or the result does not fit.
 */
CPNS_PRIVATE int cpns_crypto_join(uint8_t buf[CPNS_JOIN_MAX], size_t *len, const char *const *parts,
                                  size_t n);

/*
 * AES-256-GCM with a 12-byte nonce and a 16-byte tag. ct may equal pt.
 * seal: 0 or CPNS_ERR_CRYPTO (also for lengths over INT_MAX).
 * open: 0; CPNS_ERR_AUTH when the tag does not verify (pt is then wiped);
 * CPNS_ERR_CRYPTO.
 */
int cpns_gcm_seal(const uint8_t key[CPNS_KEY_LEN], const uint8_t nonce[CPNS_GCM_NONCE_LEN],
                  const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *ct,
                  uint8_t tag[CPNS_GCM_TAG_LEN]);
int cpns_gcm_open(const uint8_t key[CPNS_KEY_LEN], const uint8_t nonce[CPNS_GCM_NONCE_LEN],
                  const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
                  const uint8_t tag[CPNS_GCM_TAG_LEN], uint8_t *pt);

/*
 * The same on a reusable cpns_gcm (c not NULL), with the same results. After
 * any failure the context has been reset and works for the next call.
 */
CPNS_PRIVATE int cpns_gcm_seal_ctx(cpns_gcm *c, const uint8_t key[CPNS_KEY_LEN],
                                   const uint8_t nonce[CPNS_GCM_NONCE_LEN], const uint8_t *aad,
                                   size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *ct,
                                   uint8_t tag[CPNS_GCM_TAG_LEN]);
CPNS_PRIVATE int cpns_gcm_open_ctx(cpns_gcm *c, const uint8_t key[CPNS_KEY_LEN],
                                   const uint8_t nonce[CPNS_GCM_NONCE_LEN], const uint8_t *aad,
                                   size_t aad_len, const uint8_t *ct, size_t ct_len,
                                   const uint8_t tag[CPNS_GCM_TAG_LEN], uint8_t *pt);

/*
 * HMAC-SHA256 (RFC 2104) of m1 ‖ m2 under a key of at most one block, and
 * cpns_kdf(), on a caller's digest context and fetched SHA-256 (crypto_kdf.c):
 * what a caller that already holds them (cpns_sha256) runs with no fetch or
 * allocation. hmac: 1 on success, 0 (out unspecified); kdf: 0 or
 * CPNS_ERR_CRYPTO (out wiped).
 */
int cpns_hmac_sha256_on(EVP_MD_CTX *ctx, const EVP_MD *md, const uint8_t *key, size_t key_len,
                        const uint8_t *m1, size_t m1_len, const uint8_t *m2, size_t m2_len,
                        uint8_t out[32]);
int cpns_kdf_on(EVP_MD_CTX *ctx, const EVP_MD *md, const uint8_t ikm[CPNS_KEY_LEN],
                const char *info, uint8_t out[CPNS_KEY_LEN]);

/*
 * HMAC-SHA256 under a fixed 32-byte key, keyed once and run per message (see
 * crypto_mac.c). new: 0, CPNS_ERR_NOMEM or CPNS_ERR_CRYPTO (*out NULL); run:
 * 0 or CPNS_ERR_CRYPTO (out wiped); free: NULL is a no-op, the key is cleansed.
 */
typedef struct cpns_hmac cpns_hmac;
int cpns_hmac_new(const uint8_t key[CPNS_KEY_LEN], cpns_hmac **out);
int cpns_hmac_run(cpns_hmac *h, const uint8_t *msg, size_t msg_len, uint8_t out[32]);
void cpns_hmac_free(cpns_hmac *h);

/*
 * The KeyConfirmation of PROTOCOL.md section 4 in two steps, for a server
 * that checks the responses of many members to one Group Key: the key
 * HMAC(HKDF(GK, "CPNS 1.1 key confirmation"), .) once per Group Key (0,
 * CPNS_ERR_NOMEM or CPNS_ERR_CRYPTO), then one HMAC per response, equal to
 * cpns_key_confirmation().
 */
int cpns_key_confirmation_key(const uint8_t GK[CPNS_KEY_LEN], cpns_hmac **out);
int cpns_key_confirmation_with(cpns_hmac *K_confirm, const char *SGID, const char *PNEID,
                               uint32_t KeyVersion, uint8_t out[CPNS_KC_LEN]);

#endif
