/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PNE secure storage (7.8.6.1 step 2): where a PNE keeps its Group Keys.
 *
 * A keystore is an ops table so that a product can put keys in its own
 * secure element; libcpns brings a file backend (encrypted at rest, durable
 * atomic replace) and a memory backend (tests, simulated PNEs).
 * For each SGID it keeps the current version and the one before it, so that
 * group messages sealed just before a rekey still open.
 */
#ifndef CPNS_KEYSTORE_H
#define CPNS_KEYSTORE_H

#include "common.h"
#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpns_key_slot {
    uint32_t KeyVersion; /* 0 = empty slot */
    uint8_t GK[CPNS_KEY_LEN];
} cpns_key_slot;

typedef struct cpns_stored_keys {
    cpns_key_slot current;
    cpns_key_slot previous;
} cpns_stored_keys;

typedef struct cpns_keystore cpns_keystore;

/* Called once per SGID by list(); a non-zero return stops the walk and is returned. */
typedef int (*cpns_keystore_visit_fn)(void *arg, const char *SGID, const cpns_stored_keys *keys);

typedef struct cpns_keystore_ops {
    /* The keys of SGID: 0, or CPNS_ERR_NOT_FOUND when none is stored. */
    int (*get)(cpns_keystore *ks, const char *SGID, cpns_stored_keys *out);
    /*
     * Stores GK as the current key of SGID; the old current one becomes the
     * previous one (unless its version equals KeyVersion, when it is simply
     * replaced). Durable before it returns. 0, or a negative cpns_error; on
     * failure what was stored before is unchanged.
     */
    int (*put)(cpns_keystore *ks, const char *SGID, uint32_t KeyVersion,
               const uint8_t GK[CPNS_KEY_LEN]);
    /* Visits every SGID in a stable (sorted) order. */
    int (*list)(cpns_keystore *ks, cpns_keystore_visit_fn fn, void *arg);
    /* Wipes and frees the keystore. */
    void (*close)(cpns_keystore *ks);
} cpns_keystore_ops;

/* Backends embed this as their first member. */
struct cpns_keystore {
    const cpns_keystore_ops *ops;
};

/*
 * The file backend: one file DIR/groupkeys, AES-256-GCM under
 * HKDF(EUK, "CPNS 1.1 PNE key store"), mode 0600, replaced atomically
 * (temporary file, fsync, rename, fsync of DIR). DIR is created (0700) if missing.
 * Returns 0 and *out; CPNS_ERR_PERM if the file is accessible to group or
 * others; CPNS_ERR_CORRUPT if it does not decrypt or parse (a wrong EUK
 * looks the same: the file is refused, never emptied); CPNS_ERR_IO; CPNS_ERR_NOMEM.
 */
CPNS_API int cpns_keystore_file_open(cpns_keystore **out, const char *dir,
                                     const uint8_t EUK[CPNS_KEY_LEN]);

/*
 * The PKCS#11 backend (docs/PKCS11.md): the file backend's DIR/groupkeys
 * (format 0x02) and the EUK in DIR/token-euk, both sealed with AES-256-GCM
 * (CKM_AES_GCM) inside a PKCS#11 token by an AES-256 token key that is
 * CKA_SENSITIVE and not CKA_EXTRACTABLE: copying DIR reveals nothing. Each
 * store has its own token key, named by a random CKA_ID kept in
 * DIR/token-euk, so several PNEs can share one token.
 *
 * The module is loaded with dlopen() (no library to link) and initialised
 * once per process for all keystores that use it; open and close these
 * keystores from one thread.
 */
typedef struct cpns_keystore_pkcs11_config {
    const char *module;      /* path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so */
    const char *token_label; /* the label of the token (CK_TOKEN_INFO) */
    const char
        *pin; /* the user PIN; copied (to log in again after losing the token), wiped on close */
    const char *dir; /* the store's files; created 0700 if missing */
    /*
     * NULL, or the EUK: sealed into DIR/token-euk, under a new token key, when
     * DIR has none yet (a first start); otherwise it must equal the sealed one.
     */
    const uint8_t *EUK;
    cpns_log_fn log; /* token failures after open() (NULL: silent); never a secret */
    void *log_arg;
} cpns_keystore_pkcs11_config;

/*
 * Opens the PKCS#11 keystore of cfg->dir. On failure err (if not NULL) says
 * what the token answered (e.g. "C_Login: CKR_PIN_INCORRECT"). Returns 0 and
 * *out; CPNS_ERR_IO (the module does not load, a file cannot be read or
 * written); CPNS_ERR_NOT_FOUND (no token with that label is present, the
 * token holds no key for this store, or DIR holds no EUK and cfg->EUK is
 * NULL); CPNS_ERR_AUTH (the PIN is wrong or locked); CPNS_ERR_PERM (DIR or a
 * file is accessible to group or others, or the token key is extractable);
 * CPNS_ERR_CORRUPT (a file is damaged or was sealed by another key; it is
 * left untouched); CPNS_ERR_EXISTS (cfg->EUK differs from the sealed one);
 * CPNS_ERR_STORE (any other token failure, e.g. CKR_DEVICE_MEMORY: the
 * token is full); CPNS_ERR_NOMEM; CPNS_ERR_INVALID_ARG.
 * put() fails with CPNS_ERR_STORE when the token does (logged with its
 * reason); after losing the token or its login it opens a new session and
 * logs in again on the next call.
 */
CPNS_API int cpns_keystore_pkcs11_open(cpns_keystore **out, const cpns_keystore_pkcs11_config *cfg,
                                       char *err, size_t err_len);

/*
 * Decrypts DIR/token-euk in the token into EUK, for the caller to derive its
 * keys from and wipe. 0, CPNS_ERR_INVALID_ARG (not a PKCS#11 keystore),
 * CPNS_ERR_STORE (the token failed), CPNS_ERR_CORRUPT.
 */
CPNS_API int cpns_keystore_pkcs11_euk(cpns_keystore *ks, uint8_t EUK[CPNS_KEY_LEN]);

/* The memory backend. */
CPNS_API int cpns_keystore_mem_new(cpns_keystore **out);

/* Closes any backend (NULL is fine). */
CPNS_API void cpns_keystore_close(cpns_keystore *ks);

#ifdef __cplusplus
}
#endif
#endif
