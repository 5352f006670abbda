/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cryptography of PROTOCOL.md section 4, on OpenSSL 3 EVP.
 *
 * Every function is a pure computation: keys come in, results go out, and
 * nothing is kept, except in a cpns_gcm context that the caller owns.
 * Derived keys that callers want to reuse (the server wraps a key for every
 * member with that member's K_wrap) are returned so that they can be cached;
 * the caller wipes them with cpns_wipe() when done.
 */
#ifndef CPNS_CRYPTO_H
#define CPNS_CRYPTO_H

#include "common.h"
#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CPNS_GCM_NONCE_LEN 12
#define CPNS_GCM_TAG_LEN 16
#define CPNS_EGK_FORMAT 0x01
#define CPNS_GROUP_MSG_FORMAT 0x01
#define CPNS_GROUP_MSG_OVERHEAD (1 + 4 + CPNS_GCM_NONCE_LEN + CPNS_GCM_TAG_LEN)
#define CPNS_FINGERPRINT_LEN 16 /* hex characters, without the NUL */

#define CPNS_INFO_WRAP "CPNS 1.1 group key wrap"
#define CPNS_INFO_AUTH "CPNS 1.1 PNE registration"
#define CPNS_INFO_CONFIRM "CPNS 1.1 key confirmation"
#define CPNS_INFO_GROUP_MSG "CPNS 1.1 group message"
#define CPNS_INFO_KEY_STORE "CPNS 1.1 PNE key store"

/* Fills buf with len bytes from the OS CSPRNG (RAND_bytes). 0 or CPNS_ERR_CRYPTO.
 * Has the cpns_rand_fn signature; arg is ignored. */
CPNS_API int cpns_random(void *arg, uint8_t *buf, size_t len);

/* Overwrites n bytes at p with zeros in a way the compiler cannot drop. */
CPNS_API void cpns_wipe(void *p, size_t n);

/* Constant-time comparison: 1 when equal, 0 otherwise. */
CPNS_API int cpns_mem_equal(const void *a, const void *b, size_t n);

/*
 * HKDF-SHA256 (RFC 5869), the general form, for the RFC test vectors.
 * 0, CPNS_ERR_INVALID_ARG (out_len 0 or > 255*32) or CPNS_ERR_CRYPTO.
 */
CPNS_API int cpns_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                              size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
                              size_t out_len);

/* HKDF(ikm, info) as PROTOCOL.md uses it: empty salt, 32-byte output. */
CPNS_API int cpns_kdf(const uint8_t ikm[CPNS_KEY_LEN], const char *info, uint8_t out[CPNS_KEY_LEN]);

/*
 * EncryptedGroupKey (PROTOCOL.md 4): 0x01 ‖ nonce ‖ AES-256-GCM(K_wrap, nonce, GK, AAD)
 * with AAD = "CPNS 1.1 SGroupKeyDelivery" ‖ 0 ‖ SGID ‖ 0 ‖ PNEID ‖ 0 ‖ KeyVersion.
 * K_wrap is cpns_kdf(EUK, CPNS_INFO_WRAP).
 * cpns_egk_wrap: 0, CPNS_ERR_INVALID_ARG (bad identifier, version 0), CPNS_ERR_CRYPTO.
 * cpns_egk_unwrap: 0 with GK filled; CPNS_ERR_AUTH for a wrong length, an
 * unknown format byte or a failed tag (GK is then zeroed); CPNS_ERR_INVALID_ARG; CPNS_ERR_CRYPTO.
 */
CPNS_API int cpns_egk_wrap(const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID, const char *PNEID,
                           uint32_t KeyVersion, const uint8_t GK[CPNS_KEY_LEN],
                           const uint8_t nonce[CPNS_GCM_NONCE_LEN], uint8_t out[CPNS_EGK_LEN]);
CPNS_API int cpns_egk_unwrap(const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID,
                             const char *PNEID, uint32_t KeyVersion, const uint8_t *blob,
                             size_t blob_len, uint8_t GK[CPNS_KEY_LEN]);

/*
 * A reusable AES-256-GCM context, so that the server can wrap a Group Key for
 * 100,000 members without setting up OpenSSL for each one: it holds the
 * cipher, fetched once, and one EVP_CIPHER_CTX that every call re-keys.
 * Between calls it keeps the key schedule of the last key used (the server
 * keeps that K_wrap cached anyway); cpns_gcm_free wipes it. It has no
 * global state, but one context serves one thread at a time.
 * cpns_gcm_new: NULL when memory or the OpenSSL cipher is not available.
 * cpns_gcm_free: NULL is a no-op.
 */
typedef struct cpns_gcm cpns_gcm;
CPNS_API cpns_gcm *cpns_gcm_new(void);
CPNS_API void cpns_gcm_free(cpns_gcm *c);

/*
 * A reusable SHA-256 context for the KeyConfirmation a PNE computes for every
 * delivery (HKDF, then HMAC): with it a KeyConfirmation needs no digest fetch
 * and no allocation. No global state; one thread at a time.
 * cpns_sha256_new: NULL when memory or the OpenSSL digest is not available.
 * cpns_sha256_free: NULL is a no-op.
 * cpns_key_confirmation_ctx: cpns_key_confirmation() on h (not NULL), the
 * same result byte for byte; h works for the next call after any failure.
 */
typedef struct cpns_sha256 cpns_sha256;
CPNS_API cpns_sha256 *cpns_sha256_new(void);
CPNS_API void cpns_sha256_free(cpns_sha256 *h);
CPNS_API int cpns_key_confirmation_ctx(cpns_sha256 *h, const uint8_t GK[CPNS_KEY_LEN],
                                       const char *SGID, const char *PNEID, uint32_t KeyVersion,
                                       uint8_t out[CPNS_KC_LEN]);

/*
 * cpns_egk_wrap / cpns_egk_unwrap on a reusable context: same arguments,
 * same results, byte for byte (CPNS_ERR_INVALID_ARG also for c NULL). After
 * any failure, a refused blob included, c works for the next call.
 */
CPNS_API int cpns_egk_wrap_ctx(cpns_gcm *c, const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID,
                               const char *PNEID, uint32_t KeyVersion,
                               const uint8_t GK[CPNS_KEY_LEN],
                               const uint8_t nonce[CPNS_GCM_NONCE_LEN], uint8_t out[CPNS_EGK_LEN]);
CPNS_API int cpns_egk_unwrap_ctx(cpns_gcm *c, const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID,
                                 const char *PNEID, uint32_t KeyVersion, const uint8_t *blob,
                                 size_t blob_len, uint8_t GK[CPNS_KEY_LEN]);

/*
 * Registration Proof: HMAC-SHA256(K_auth, "PNERegistrationRequest" ‖ 0 ‖ PNEID ‖ 0 ‖
 * Nonce ‖ 0 ‖ Time), Nonce and Time being the attribute strings as sent.
 * K_auth is cpns_kdf(EUK, CPNS_INFO_AUTH). 0, CPNS_ERR_INVALID_ARG or CPNS_ERR_CRYPTO.
 */
CPNS_API int cpns_proof(const uint8_t K_auth[CPNS_KEY_LEN], const char *PNEID, const char *Nonce,
                        const char *Time, uint8_t out[CPNS_PROOF_LEN]);

/*
 * KeyConfirmation: first 16 bytes of HMAC-SHA256(HKDF(GK, CPNS_INFO_CONFIRM),
 * "SGroupKeyDeliveryResponse" ‖ 0 ‖ SGID ‖ 0 ‖ PNEID ‖ 0 ‖ KeyVersion).
 * 0, CPNS_ERR_INVALID_ARG or CPNS_ERR_CRYPTO.
 */
CPNS_API int cpns_key_confirmation(const uint8_t GK[CPNS_KEY_LEN], const char *SGID,
                                   const char *PNEID, uint32_t KeyVersion,
                                   uint8_t out[CPNS_KC_LEN]);

/*
 * Group message: 0x01 ‖ KeyVersion (4 bytes BE) ‖ nonce ‖ AES-256-GCM(HKDF(GK,
 * CPNS_INFO_GROUP_MSG), nonce, plaintext, AAD = SGID ‖ 0 ‖ KeyVersion) (binary,
 * the caller base64-encodes it). out must hold pt_len + CPNS_GROUP_MSG_OVERHEAD.
 * cpns_group_msg_version reads the KeyVersion of a sealed message so that the
 * caller can pick the key: 0, or CPNS_ERR_AUTH if the blob is too short or
 * has an unknown format byte.
 * cpns_group_open: 0 with *pt_len set; CPNS_ERR_AUTH when the blob does not
 * open with this key, SGID and version; out must hold blob_len - CPNS_GROUP_MSG_OVERHEAD.
 */
CPNS_API int cpns_group_seal(const uint8_t GK[CPNS_KEY_LEN], const char *SGID, uint32_t KeyVersion,
                             const uint8_t nonce[CPNS_GCM_NONCE_LEN], const uint8_t *pt,
                             size_t pt_len, uint8_t *out, size_t *out_len);
CPNS_API int cpns_group_msg_version(const uint8_t *blob, size_t blob_len, uint32_t *KeyVersion);
CPNS_API int cpns_group_open(const uint8_t GK[CPNS_KEY_LEN], const char *SGID, const uint8_t *blob,
                             size_t blob_len, uint8_t *pt, size_t *pt_len);

/* Fingerprint: the first 8 bytes of SHA-256(key) as 16 lowercase hex digits and a NUL. */
CPNS_API void cpns_fingerprint(const uint8_t *key, size_t len, char out[CPNS_FINGERPRINT_LEN + 1]);

#ifdef __cplusplus
}
#endif
#endif
