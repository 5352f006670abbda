/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encryption at rest of the server store's secrets, shared by the SQLite and
 * PostgreSQL backends (store_seal.c): EUKs, Group Keys and the master key
 * check value are sealed with AES-256-GCM under K_store =
 * cpns_kdf(master_key, "CPNS 1.1 server store") as
 * version byte ‖ nonce(12) ‖ ciphertext ‖ tag(16), each bound to its row by
 * its AAD. Both backends store the very same blobs.
 */
#ifndef CPNS_STORE_SEAL_H
#define CPNS_STORE_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "cpns/crypto.h"

#define CPNS_INFO_SERVER_STORE "CPNS 1.1 server store"

/* A sealed blob: version byte ‖ nonce ‖ ciphertext ‖ tag. */
#define CPNS_SEAL_FORMAT 0x01
#define CPNS_SEAL_OVERHEAD (1 + CPNS_GCM_NONCE_LEN + CPNS_GCM_TAG_LEN)
#define CPNS_SEAL_SECRET_LEN (CPNS_KEY_LEN + CPNS_SEAL_OVERHEAD)

/* The plaintext of the master key check value kept in a store's meta table. */
#define CPNS_SEAL_CHECK_TEXT "CPNS 1.1 server store master key check"
#define CPNS_SEAL_CHECK_LEN (sizeof(CPNS_SEAL_CHECK_TEXT) - 1 + CPNS_SEAL_OVERHEAD)

/* K_store and one cipher context that serves every seal and open. */
typedef struct cpns_seal cpns_seal;

/* 0, CPNS_ERR_NOMEM or CPNS_ERR_CRYPTO (the key derivation failed). */
int cpns_seal_new(cpns_seal **out, const uint8_t master_key[CPNS_KEY_LEN]);
void cpns_seal_free(cpns_seal *s); /* wipes K_store; NULL is fine */

/*
 * Seals pt under K_store with a fresh random nonce and the AAD built from
 * aad_parts (joined with 0x00 separators). out holds pt_len + CPNS_SEAL_OVERHEAD.
 * 0, CPNS_ERR_INVALID_ARG (AAD too long) or CPNS_ERR_CRYPTO.
 */
int cpns_seal_blob(const cpns_seal *s, const char *const *aad_parts, size_t n_parts,
                   const uint8_t *pt, size_t pt_len, uint8_t *out);

/*
 * Opens a blob sealed by cpns_seal_blob into pt (pt_len bytes, the exact
 * plaintext length expected). 0; CPNS_ERR_AUTH for a wrong length, an
 * unknown version byte or a tag that does not verify (pt is then wiped);
 * CPNS_ERR_CRYPTO.
 */
int cpns_seal_open_blob(const cpns_seal *s, const char *const *aad_parts, size_t n_parts,
                        const uint8_t *blob, size_t blob_len, uint8_t *pt, size_t pt_len);

/* The AADs binding a secret to its row: "pne" ‖ PNEID, "sg" ‖ SGID ‖ KeyVersion. */
int cpns_seal_euk(const cpns_seal *s, const char *PNEID, const uint8_t EUK[CPNS_KEY_LEN],
                  uint8_t out[CPNS_SEAL_SECRET_LEN]);
int cpns_seal_open_euk(const cpns_seal *s, const char *PNEID, const uint8_t *blob, size_t blob_len,
                       uint8_t EUK[CPNS_KEY_LEN]);
int cpns_seal_gk(const cpns_seal *s, const char *SGID, uint32_t KeyVersion,
                 const uint8_t GK[CPNS_KEY_LEN], uint8_t out[CPNS_SEAL_SECRET_LEN]);
int cpns_seal_open_gk(const cpns_seal *s, const char *SGID, uint32_t KeyVersion,
                      const uint8_t *blob, size_t blob_len, uint8_t GK[CPNS_KEY_LEN]);

/* The master key check value: seal a new one, or verify a stored one (0 or CPNS_ERR_AUTH). */
int cpns_seal_check_make(const cpns_seal *s, uint8_t out[CPNS_SEAL_CHECK_LEN]);
int cpns_seal_check_verify(const cpns_seal *s, const uint8_t *blob, size_t blob_len);

#endif
