/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief The cryptography of PROTOCOL.md section 4, on OpenSSL 3 EVP.
 *
 * Every function is a pure computation: keys come in, results go out, and
 * nothing is kept, except in a cpns_gcm or cpns_sha256 context that the
 * caller owns. Derived keys that callers want to reuse (the server wraps a
 * key for every member with that member's K_wrap) are returned so that they
 * can be cached; the caller wipes them with cpns_wipe() when done.
 * Identifiers (SGID, PNEID) must be valid (cpns_id_valid()).
 */
#ifndef CPNS_CRYPTO_H
#define CPNS_CRYPTO_H

#include "common.h"
#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CPNS_GCM_NONCE_LEN 12      /**< AES-256-GCM nonce length, bytes */
#define CPNS_GCM_TAG_LEN 16        /**< AES-256-GCM tag length, bytes */
#define CPNS_EGK_FORMAT 0x01       /**< first byte of an EncryptedGroupKey */
#define CPNS_GROUP_MSG_FORMAT 0x01 /**< first byte of a sealed group message */
/** Bytes a sealed group message adds to its plaintext: format, KeyVersion, nonce, tag. */
#define CPNS_GROUP_MSG_OVERHEAD (1 + 4 + CPNS_GCM_NONCE_LEN + CPNS_GCM_TAG_LEN)
#define CPNS_FINGERPRINT_LEN 16 /**< hex characters of a fingerprint, without the NUL */

/** HKDF info of K_wrap, the key that wraps Group Keys for a PNE: cpns_kdf(EUK, this). */
#define CPNS_INFO_WRAP "CPNS 1.1 group key wrap"
/** HKDF info of K_auth, the key of the registration Proof: cpns_kdf(EUK, this). */
#define CPNS_INFO_AUTH "CPNS 1.1 PNE registration"
/** HKDF info of the KeyConfirmation key, derived from the Group Key. */
#define CPNS_INFO_CONFIRM "CPNS 1.1 key confirmation"
/** HKDF info of the group message key, derived from the Group Key. */
#define CPNS_INFO_GROUP_MSG "CPNS 1.1 group message"
/** HKDF info of the file key store's key, derived from the EUK. */
#define CPNS_INFO_KEY_STORE "CPNS 1.1 PNE key store"

/**
 * Fills buf with len bytes from the OS CSPRNG (RAND_bytes). Has the
 * cpns_rand_fn signature.
 *
 * @param arg ignored.
 * @param buf where to write.
 * @param len how many bytes (any size).
 * @return 0.
 * @retval CPNS_ERR_CRYPTO when OpenSSL's generator fails.
 */
CPNS_API int cpns_random(void *arg, uint8_t *buf, size_t len);

/**
 * Overwrites n bytes at p with zeros in a way the compiler cannot drop.
 *
 * @param p the memory; NULL is a no-op.
 * @param n its length.
 */
CPNS_API void cpns_wipe(void *p, size_t n);

/**
 * Constant-time comparison.
 *
 * @param a first buffer.
 * @param b second buffer.
 * @param n bytes to compare.
 * @return 1 when equal, 0 otherwise.
 */
CPNS_API int cpns_mem_equal(const void *a, const void *b, size_t n);

/**
 * HKDF-SHA256 (RFC 5869), the general form, for the RFC test vectors.
 *
 * @param salt the salt; NULL or empty means HashLen zero bytes.
 * @param salt_len its length.
 * @param ikm the input keying material (NULL only when ikm_len is 0).
 * @param ikm_len its length.
 * @param info the context (NULL only when info_len is 0).
 * @param info_len its length.
 * @param out the output key material.
 * @param out_len its length, 1..255*32.
 * @return 0 with out filled.
 * @retval CPNS_ERR_INVALID_ARG when out_len is 0 or over 255*32, out is
 *         NULL, or a pointer is NULL with a non-zero length.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails (out is then wiped).
 */
CPNS_API int cpns_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                              size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
                              size_t out_len);

/**
 * HKDF(ikm, info) as PROTOCOL.md uses it: empty salt, 32-byte output.
 *
 * @param ikm the key to derive from (an EUK or a Group Key).
 * @param info one of the CPNS_INFO_* strings.
 * @param out the derived key.
 * @return 0 with out filled.
 * @retval CPNS_ERR_INVALID_ARG when an argument is NULL.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails (out is then wiped).
 */
CPNS_API int cpns_kdf(const uint8_t ikm[CPNS_KEY_LEN], const char *info, uint8_t out[CPNS_KEY_LEN]);

/**
 * Wraps a Group Key into an EncryptedGroupKey (PROTOCOL.md 4):
 * 0x01 ‖ nonce ‖ AES-256-GCM(K_wrap, nonce, GK, AAD) with
 * AAD = "CPNS 1.1 SGroupKeyDelivery" ‖ 0 ‖ SGID ‖ 0 ‖ PNEID ‖ 0 ‖ KeyVersion.
 *
 * @param K_wrap cpns_kdf(EUK, CPNS_INFO_WRAP).
 * @param SGID the Service Group.
 * @param PNEID the PNE it is for.
 * @param KeyVersion the key's version, not 0.
 * @param GK the Group Key.
 * @param nonce a fresh random nonce.
 * @param out the EncryptedGroupKey.
 * @return 0 with out filled.
 * @retval CPNS_ERR_INVALID_ARG when an identifier is invalid, KeyVersion is 0
 *         or a pointer is NULL.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails (out is then zeroed).
 */
CPNS_API int cpns_egk_wrap(const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID, const char *PNEID,
                           uint32_t KeyVersion, const uint8_t GK[CPNS_KEY_LEN],
                           const uint8_t nonce[CPNS_GCM_NONCE_LEN], uint8_t out[CPNS_EGK_LEN]);

/**
 * Unwraps an EncryptedGroupKey made by cpns_egk_wrap().
 *
 * @param K_wrap cpns_kdf(EUK, CPNS_INFO_WRAP).
 * @param SGID the Service Group.
 * @param PNEID the PNE it is for.
 * @param KeyVersion the key's version, not 0.
 * @param blob the decoded EncryptedGroupKey.
 * @param blob_len its length.
 * @param GK the Group Key; zeroed on any failure.
 * @return 0 with GK filled.
 * @retval CPNS_ERR_AUTH for a wrong length, an unknown format byte or a
 *         failed tag.
 * @retval CPNS_ERR_INVALID_ARG when an identifier is invalid, KeyVersion is
 *         0 or a pointer is NULL (blob may be NULL when blob_len is 0).
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails.
 */
CPNS_API int cpns_egk_unwrap(const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID,
                             const char *PNEID, uint32_t KeyVersion, const uint8_t *blob,
                             size_t blob_len, uint8_t GK[CPNS_KEY_LEN]);

/**
 * A reusable AES-256-GCM context, so that the server can wrap a Group Key for
 * 100,000 members without setting up OpenSSL for each one: it holds the
 * cipher, fetched once, and one EVP_CIPHER_CTX that every call re-keys.
 * Between calls it keeps the key schedule of the last key used (the server
 * keeps that K_wrap cached anyway); cpns_gcm_free() wipes it. It has no
 * global state, but one context serves one thread at a time.
 */
typedef struct cpns_gcm cpns_gcm;

/**
 * Creates an AES-256-GCM context.
 *
 * @return the context, or NULL when memory or the OpenSSL cipher is not
 *         available.
 */
CPNS_API cpns_gcm *cpns_gcm_new(void);

/**
 * Wipes and frees a context.
 *
 * @param c the context; NULL is a no-op.
 */
CPNS_API void cpns_gcm_free(cpns_gcm *c);

/**
 * A reusable SHA-256 context for the KeyConfirmation a PNE computes for every
 * delivery (HKDF, then HMAC): with it a KeyConfirmation needs no digest fetch
 * and no allocation. No global state; one thread at a time.
 */
typedef struct cpns_sha256 cpns_sha256;

/**
 * Creates a SHA-256 context.
 *
 * @return the context, or NULL when memory or the OpenSSL digest is not
 *         available.
 */
CPNS_API cpns_sha256 *cpns_sha256_new(void);

/**
 * Frees a context.
 *
 * @param h the context; NULL is a no-op.
 */
CPNS_API void cpns_sha256_free(cpns_sha256 *h);

/**
 * cpns_key_confirmation() on a reusable context: the same result byte for
 * byte; h works for the next call after any failure.
 *
 * @param h the context (not NULL).
 * @param GK the Group Key.
 * @param SGID the Service Group.
 * @param PNEID the PNE.
 * @param KeyVersion the key's version, not 0.
 * @param out the KeyConfirmation.
 * @return 0 with out filled.
 * @retval CPNS_ERR_INVALID_ARG when h, GK, out, SGID or PNEID is NULL, an
 *         identifier is invalid or KeyVersion is 0.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails.
 */
CPNS_API int cpns_key_confirmation_ctx(cpns_sha256 *h, const uint8_t GK[CPNS_KEY_LEN],
                                       const char *SGID, const char *PNEID, uint32_t KeyVersion,
                                       uint8_t out[CPNS_KC_LEN]);

/**
 * cpns_egk_wrap() on a reusable context: same arguments, same results, byte
 * for byte. After any failure c works for the next call.
 *
 * @param c the context (not NULL).
 * @param K_wrap cpns_kdf(EUK, CPNS_INFO_WRAP).
 * @param SGID the Service Group.
 * @param PNEID the PNE it is for.
 * @param KeyVersion the key's version, not 0.
 * @param GK the Group Key.
 * @param nonce a fresh random nonce.
 * @param out the EncryptedGroupKey.
 * @return 0 with out filled.
 * @retval CPNS_ERR_INVALID_ARG as for cpns_egk_wrap(), and when c is NULL.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails (out is then zeroed).
 */
CPNS_API int cpns_egk_wrap_ctx(cpns_gcm *c, const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID,
                               const char *PNEID, uint32_t KeyVersion,
                               const uint8_t GK[CPNS_KEY_LEN],
                               const uint8_t nonce[CPNS_GCM_NONCE_LEN], uint8_t out[CPNS_EGK_LEN]);

/**
 * cpns_egk_unwrap() on a reusable context: same arguments, same results,
 * byte for byte. After any failure, a refused blob included, c works for the
 * next call.
 *
 * @param c the context (not NULL).
 * @param K_wrap cpns_kdf(EUK, CPNS_INFO_WRAP).
 * @param SGID the Service Group.
 * @param PNEID the PNE it is for.
 * @param KeyVersion the key's version, not 0.
 * @param blob the decoded EncryptedGroupKey.
 * @param blob_len its length.
 * @param GK the Group Key; zeroed on any failure.
 * @return 0 with GK filled.
 * @retval CPNS_ERR_AUTH for a wrong length, an unknown format byte or a
 *         failed tag.
 * @retval CPNS_ERR_INVALID_ARG as for cpns_egk_unwrap(), and when c is NULL.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails.
 */
CPNS_API int cpns_egk_unwrap_ctx(cpns_gcm *c, const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID,
                                 const char *PNEID, uint32_t KeyVersion, const uint8_t *blob,
                                 size_t blob_len, uint8_t GK[CPNS_KEY_LEN]);

/**
 * The registration Proof: HMAC-SHA256(K_auth, "PNERegistrationRequest" ‖ 0 ‖
 * PNEID ‖ 0 ‖ Nonce ‖ 0 ‖ Time), Nonce and Time being the attribute strings
 * as sent.
 *
 * @param K_auth cpns_kdf(EUK, CPNS_INFO_AUTH).
 * @param PNEID the PNE registering.
 * @param Nonce the Nonce attribute (base64), as sent.
 * @param Time the Time attribute, as sent.
 * @param out the Proof.
 * @return 0 with out filled.
 * @retval CPNS_ERR_INVALID_ARG when an argument is NULL, PNEID is invalid or
 *         the strings together are too long.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails (out is then wiped).
 */
CPNS_API int cpns_proof(const uint8_t K_auth[CPNS_KEY_LEN], const char *PNEID, const char *Nonce,
                        const char *Time, uint8_t out[CPNS_PROOF_LEN]);

/**
 * The KeyConfirmation: the first 16 bytes of
 * HMAC-SHA256(HKDF(GK, CPNS_INFO_CONFIRM),
 * "SGroupKeyDeliveryResponse" ‖ 0 ‖ SGID ‖ 0 ‖ PNEID ‖ 0 ‖ KeyVersion).
 *
 * @param GK the Group Key.
 * @param SGID the Service Group.
 * @param PNEID the PNE.
 * @param KeyVersion the key's version, not 0.
 * @param out the KeyConfirmation.
 * @return 0 with out filled.
 * @retval CPNS_ERR_INVALID_ARG when a pointer is NULL, an identifier is
 *         invalid or KeyVersion is 0.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails.
 */
CPNS_API int cpns_key_confirmation(const uint8_t GK[CPNS_KEY_LEN], const char *SGID,
                                   const char *PNEID, uint32_t KeyVersion,
                                   uint8_t out[CPNS_KC_LEN]);

/**
 * Seals a group message: 0x01 ‖ KeyVersion (4 bytes BE) ‖ nonce ‖
 * AES-256-GCM(HKDF(GK, CPNS_INFO_GROUP_MSG), nonce, plaintext,
 * AAD = SGID ‖ 0 ‖ KeyVersion), binary (the caller base64-encodes it).
 *
 * @param GK the Group Key.
 * @param SGID the Service Group.
 * @param KeyVersion the Group Key's version, not 0.
 * @param nonce a fresh random nonce.
 * @param pt the plaintext (NULL only when pt_len is 0).
 * @param pt_len its length.
 * @param out the sealed message; must hold pt_len + CPNS_GROUP_MSG_OVERHEAD bytes.
 * @param out_len set to pt_len + CPNS_GROUP_MSG_OVERHEAD (0 on failure).
 * @return 0 with out filled.
 * @retval CPNS_ERR_INVALID_ARG when a pointer is NULL, SGID is invalid,
 *         KeyVersion is 0 or pt_len is too large.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails.
 */
CPNS_API int cpns_group_seal(const uint8_t GK[CPNS_KEY_LEN], const char *SGID, uint32_t KeyVersion,
                             const uint8_t nonce[CPNS_GCM_NONCE_LEN], const uint8_t *pt,
                             size_t pt_len, uint8_t *out, size_t *out_len);

/**
 * Reads the KeyVersion of a sealed group message, so that the caller can
 * pick the key to open it with.
 *
 * @param blob the sealed message.
 * @param blob_len its length.
 * @param KeyVersion set to its KeyVersion.
 * @return 0 with *KeyVersion set.
 * @retval CPNS_ERR_AUTH when the blob is too short, has an unknown format
 *         byte or KeyVersion 0.
 * @retval CPNS_ERR_INVALID_ARG when KeyVersion is NULL, or blob is NULL with
 *         a non-zero blob_len.
 */
CPNS_API int cpns_group_msg_version(const uint8_t *blob, size_t blob_len, uint32_t *KeyVersion);

/**
 * Opens a group message sealed by cpns_group_seal().
 *
 * @param GK the Group Key of the message's KeyVersion (cpns_group_msg_version()).
 * @param SGID the Service Group.
 * @param blob the sealed message.
 * @param blob_len its length.
 * @param pt the plaintext; must hold blob_len - CPNS_GROUP_MSG_OVERHEAD bytes.
 * @param pt_len set to the plaintext's length (0 on failure).
 * @return 0 with pt and *pt_len set.
 * @retval CPNS_ERR_AUTH when the blob does not open with this key, SGID and
 *         version (too short, unknown format, failed tag).
 * @retval CPNS_ERR_INVALID_ARG when GK, SGID or pt_len is NULL, SGID is
 *         invalid, or blob or pt is NULL where bytes are needed.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails.
 */
CPNS_API int cpns_group_open(const uint8_t GK[CPNS_KEY_LEN], const char *SGID, const uint8_t *blob,
                             size_t blob_len, uint8_t *pt, size_t *pt_len);

/**
 * A key's fingerprint, for logs and for comparing keys without showing them:
 * the first 8 bytes of SHA-256(key) as 16 lowercase hex digits and a NUL
 * (16 '?' if OpenSSL fails).
 *
 * @param key the key.
 * @param len its length.
 * @param out the fingerprint.
 */
CPNS_API void cpns_fingerprint(const uint8_t *key, size_t len, char out[CPNS_FINGERPRINT_LEN + 1]);

#ifdef __cplusplus
}
#endif
#endif
