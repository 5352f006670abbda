/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief PNE secure storage (7.8.6.1 step 2): where a PNE keeps its Group Keys.
 *
 * A keystore is an ops table so that a product can put keys in its own
 * secure element; libcpns brings a file backend (encrypted at rest, durable
 * atomic replace), a PKCS#11 backend (sealed by a non-extractable token key)
 * and a memory backend (tests, simulated PNEs).
 * For each SGID it keeps the current version and the one before it, so that
 * group messages sealed just before a rekey still open.
 * examples/keystore-custom.c is a backend of one's own.
 */
#ifndef CPNS_KEYSTORE_H
#define CPNS_KEYSTORE_H

#include "common.h"
#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One stored Group Key. */
typedef struct cpns_key_slot {
    uint32_t KeyVersion;      /**< 0 = empty slot */
    uint8_t GK[CPNS_KEY_LEN]; /**< the Group Key (zeros in an empty slot) */
} cpns_key_slot;

/** What a keystore holds for one SGID. */
typedef struct cpns_stored_keys {
    cpns_key_slot current;  /**< the latest version stored */
    cpns_key_slot previous; /**< the one it replaced (empty if none) */
} cpns_stored_keys;

/** A keystore: a backend's object, which starts with a struct cpns_keystore. */
typedef struct cpns_keystore cpns_keystore;

/**
 * The visitor of cpns_keystore_ops.list.
 *
 * @param arg the caller's argument.
 * @param SGID a Service Group.
 * @param keys its keys, valid during the call.
 * @return 0 to go on; a non-zero value stops the walk and is returned by list().
 */
typedef int (*cpns_keystore_visit_fn)(void *arg, const char *SGID, const cpns_stored_keys *keys);

/**
 * The operations of a keystore backend: the one seam between the PNE engine
 * and the device's secure storage. In every backend put() refuses an invalid
 * SGID, KeyVersion 0 or a NULL GK with CPNS_ERR_INVALID_ARG, and get()
 * answers CPNS_ERR_INVALID_ARG for a NULL out.
 */
typedef struct cpns_keystore_ops {
    /**
     * The keys of SGID into *out: 0, or CPNS_ERR_NOT_FOUND when none is stored.
     */
    int (*get)(cpns_keystore *ks, const char *SGID, cpns_stored_keys *out);
    /**
     * Stores GK as the current key of SGID (version KeyVersion); the old
     * current one becomes the previous one (unless its version equals
     * KeyVersion, when it is simply replaced). Durable before it returns.
     * 0, or a negative cpns_error (the PNE then answers Return 3); on
     * failure what was stored before is unchanged.
     */
    int (*put)(cpns_keystore *ks, const char *SGID, uint32_t KeyVersion,
               const uint8_t GK[CPNS_KEY_LEN]);
    /**
     * Calls fn(arg, SGID, keys) for every SGID in a stable (sorted) order:
     * 0, the first non-zero return of fn, or a negative cpns_error.
     */
    int (*list)(cpns_keystore *ks, cpns_keystore_visit_fn fn, void *arg);
    /** Wipes and frees the keystore. */
    void (*close)(cpns_keystore *ks);
} cpns_keystore_ops;

/** Backends embed this as their first member. */
struct cpns_keystore {
    const cpns_keystore_ops *ops; /**< the backend's operations */
};

/**
 * Opens the file backend: one file DIR/groupkeys, AES-256-GCM under
 * HKDF(EUK, "CPNS 1.1 PNE key store"), mode 0600, replaced atomically
 * (temporary file, fsync, rename, fsync of DIR) by every put(). A missing
 * file is an empty store. put() fails with CPNS_ERR_IO when the file cannot
 * be written (the store in memory stays as it was), CPNS_ERR_CRYPTO,
 * CPNS_ERR_NOMEM or CPNS_ERR_INVALID_ARG.
 *
 * @param out set to the keystore (NULL on failure).
 * @param dir the directory; created (0700) if missing.
 * @param EUK the PNE's Entity User Key, which the file key is derived from.
 * @return 0 with *out set.
 * @retval CPNS_ERR_PERM when DIR or the file is accessible to group or others.
 * @retval CPNS_ERR_CORRUPT when the file does not decrypt or parse (a wrong
 *         EUK looks the same: the file is refused, never emptied).
 * @retval CPNS_ERR_IO when DIR cannot be created or opened, or the file read.
 * @retval CPNS_ERR_CRYPTO when OpenSSL fails.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 * @retval CPNS_ERR_INVALID_ARG when out, dir or EUK is NULL or dir is empty.
 */
CPNS_API int cpns_keystore_file_open(cpns_keystore **out, const char *dir,
                                     const uint8_t EUK[CPNS_KEY_LEN]);

/**
 * The configuration of the PKCS#11 backend (docs/PKCS11.md): the file
 * backend's DIR/groupkeys (format 0x02) and the EUK in DIR/token-euk, both
 * sealed with AES-256-GCM (CKM_AES_GCM) inside a PKCS#11 token by an AES-256
 * token key that is CKA_SENSITIVE and not CKA_EXTRACTABLE: copying DIR
 * reveals nothing. Each store has its own token key, named by a random
 * CKA_ID kept in DIR/token-euk, so several PNEs can share one token.
 *
 * The module is loaded with dlopen() (no library to link) and initialised
 * once per process for all keystores that use it; open and close these
 * keystores from one thread.
 */
typedef struct cpns_keystore_pkcs11_config {
    const char *module; /**< path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so */
    const char *token_label; /**< the label of the token (CK_TOKEN_INFO), 32 characters at most */
    /** The user PIN; copied (to log in again after losing the token), wiped on close. */
    const char *pin;
    const char *dir; /**< the store's files; created 0700 if missing */
    /**
     * NULL, or the EUK (CPNS_KEY_LEN bytes): sealed into DIR/token-euk, under
     * a new token key, when DIR has none yet (a first start); otherwise it
     * must equal the sealed one.
     */
    const uint8_t *EUK;
    cpns_log_fn log; /**< token failures after open() (NULL: silent); never a secret */
    void *log_arg;   /**< passed to log */
} cpns_keystore_pkcs11_config;

/**
 * Opens the PKCS#11 keystore of cfg->dir. put() fails with CPNS_ERR_STORE
 * when the token does (logged with its reason); after losing the token or
 * its login it opens a new session and logs in again on the next call.
 *
 * @param out set to the keystore (NULL on failure).
 * @param cfg the configuration.
 * @param err NULL, or where to write on failure what the token answered
 *        (e.g. "C_Login: CKR_PIN_INCORRECT"); "" on success.
 * @param err_len err's size.
 * @return 0 with *out set.
 * @retval CPNS_ERR_IO when the module does not load, or a file cannot be
 *         read or written.
 * @retval CPNS_ERR_NOT_FOUND when no token with that label is present, the
 *         token holds no key for this store, or DIR holds no EUK and
 *         cfg->EUK is NULL.
 * @retval CPNS_ERR_AUTH when the PIN is wrong or locked.
 * @retval CPNS_ERR_PERM when DIR or a file is accessible to group or others,
 *         or the token key is extractable.
 * @retval CPNS_ERR_CORRUPT when a file is damaged or was sealed by another
 *         key (it is left untouched).
 * @retval CPNS_ERR_EXISTS when cfg->EUK differs from the sealed one.
 * @retval CPNS_ERR_STORE for any other token failure, e.g.
 *         CKR_DEVICE_MEMORY: the token is full.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 * @retval CPNS_ERR_INVALID_ARG when out, cfg or a required field is NULL,
 *         dir is empty, or the label or PIN is too long.
 */
CPNS_API int cpns_keystore_pkcs11_open(cpns_keystore **out, const cpns_keystore_pkcs11_config *cfg,
                                       char *err, size_t err_len);

/**
 * Decrypts DIR/token-euk in the token into EUK, for the caller to derive its
 * keys from and wipe.
 *
 * @param ks a keystore opened by cpns_keystore_pkcs11_open().
 * @param EUK the Entity User Key.
 * @return 0 with EUK filled.
 * @retval CPNS_ERR_INVALID_ARG when ks is not a PKCS#11 keystore or EUK is NULL.
 * @retval CPNS_ERR_STORE when the token fails.
 * @retval CPNS_ERR_CORRUPT when DIR/token-euk does not open with the token key.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 */
CPNS_API int cpns_keystore_pkcs11_euk(cpns_keystore *ks, uint8_t EUK[CPNS_KEY_LEN]);

/**
 * Creates an empty memory keystore: the same rules as the others, nothing
 * durable (tests, simulated PNEs). Its put() fails only with
 * CPNS_ERR_INVALID_ARG or CPNS_ERR_NOMEM.
 *
 * @param out set to the keystore (NULL on failure).
 * @return 0 with *out set.
 * @retval CPNS_ERR_INVALID_ARG when out is NULL.
 * @retval CPNS_ERR_NOMEM when the allocation fails.
 */
CPNS_API int cpns_keystore_mem_new(cpns_keystore **out);

/**
 * Releases any backend: its ops->close wipes and frees it.
 *
 * @param ks the keystore; NULL is fine.
 */
CPNS_API void cpns_keystore_free(cpns_keystore *ks);

#ifdef __cplusplus
}
#endif
#endif
