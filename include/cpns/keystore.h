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

/* The memory backend. */
CPNS_API int cpns_keystore_mem_new(cpns_keystore **out);

/* For tests: makes the next n put() calls of a memory keystore fail with CPNS_ERR_IO. */
CPNS_TESTING void cpns_keystore_mem_fail_puts(cpns_keystore *ks, int n);

/* Closes any backend (NULL is fine). */
CPNS_API void cpns_keystore_close(cpns_keystore *ks);

#ifdef __cplusplus
}
#endif
#endif
