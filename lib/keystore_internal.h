/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the keystore backends share and do not export: the in-memory table of
 * stored keys (SGID -> current and previous key) with the put() rules of
 * keystore.h, and an undo record so that a backend whose persistence fails
 * can put the table back exactly as it was.
 */
#ifndef CPNS_KEYSTORE_INTERNAL_H
#define CPNS_KEYSTORE_INTERNAL_H

#include "cpns/keystore.h"
#include "internal.h"

typedef struct cpns_ks_entry {
    char SGID[CPNS_ID_MAX + 1];
    cpns_stored_keys keys;
} cpns_ks_entry;

/* A zeroed table is empty. Values of `map` are cpns_ks_entry, keyed by their SGID. */
typedef struct cpns_ks_table {
    cpns_map map;
} cpns_ks_table;

/* What put() changed, for cpns_ks_table_undo(). */
typedef struct cpns_ks_undo {
    cpns_ks_entry *entry;
    int created;          /* the entry did not exist before */
    cpns_stored_keys old; /* its keys before, when it existed */
} cpns_ks_undo;

/* 0 and *out, or CPNS_ERR_NOT_FOUND. */
int cpns_ks_table_get(const cpns_ks_table *t, const char *SGID, cpns_stored_keys *out);

/*
 * Applies the put() rule of keystore.h: GK becomes current; the old current
 * becomes previous unless it has the same KeyVersion. Records in *undo how to
 * reverse it; the caller then calls cpns_ks_table_undo() or
 * cpns_ks_table_commit(). 0, CPNS_ERR_INVALID_ARG (bad SGID, version 0) or
 * CPNS_ERR_NOMEM (the table is then unchanged).
 */
int cpns_ks_table_put(cpns_ks_table *t, const char *SGID, uint32_t KeyVersion,
                      const uint8_t GK[CPNS_KEY_LEN], cpns_ks_undo *undo);
/* Puts the table back as it was before the put(); cannot fail. */
void cpns_ks_table_undo(cpns_ks_table *t, cpns_ks_undo *undo);
/* Forgets the undo record (wiping the old keys it held). */
void cpns_ks_table_commit(cpns_ks_undo *undo);

/* The entries in SGID order, in a new array freed with cpns_free(). 0 or CPNS_ERR_NOMEM. */
int cpns_ks_table_sorted(const cpns_ks_table *t, cpns_ks_entry ***out, size_t *n);

/* list() over the table, in SGID order. */
int cpns_ks_table_list(const cpns_ks_table *t, cpns_keystore_visit_fn fn, void *arg);

/* Wipes and frees every entry; the table is empty afterwards. */
void cpns_ks_table_clear(cpns_ks_table *t);

/*
 * What seals the file of the file keystore (keystore_file.c): AES-256-GCM
 * with a 12-byte nonce and a 16-byte tag, either in process memory under a
 * key derived from the EUK (format 0x01) or inside a PKCS#11 token under a
 * key that never leaves it (format 0x02, keystore_pkcs11.c). Both return 0
 * or a negative cpns_error; open() returns CPNS_ERR_AUTH when the tag fails.
 */
typedef struct cpns_ks_sealer {
    uint8_t format; /* the file's format byte, which is in the AAD */
    int (*seal)(void *ctx, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                const uint8_t *pt, size_t len, uint8_t *ct, uint8_t *tag);
    int (*open)(void *ctx, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                const uint8_t *ct, size_t len, const uint8_t *tag, uint8_t *pt);
    void *ctx;
} cpns_ks_sealer;

/* The file keystore of DIR with another sealer (not format 0x01); errors as
 * cpns_keystore_file_open. */
int cpns_ks_file_open_sealed(cpns_keystore **out, const char *dir, const cpns_ks_sealer *sealer);

/* Opens DIR, creating it 0700 if missing: 0 and *dirfd, CPNS_ERR_PERM (group/other bits),
 * CPNS_ERR_IO. */
int cpns_ks_open_dir(const char *dir, int *dirfd);

/*
 * Reads DIR/name, a regular file of min..max bytes that only its owner can
 * access, into a new buffer (cpns_free()). 0, CPNS_ERR_NOT_FOUND (no such
 * file), CPNS_ERR_PERM, CPNS_ERR_CORRUPT (size out of bounds), CPNS_ERR_IO,
 * CPNS_ERR_NOMEM.
 */
int cpns_ks_read_file(int dirfd, const char *name, size_t min, size_t max, uint8_t **out,
                      size_t *len);

/*
 * Replaces DIR/name with buf durably (tmp created 0600 with O_EXCL, written,
 * fsync'ed, renamed over name, DIR fsync'ed), or leaves it as it was.
 * 0 or CPNS_ERR_IO.
 */
int cpns_ks_replace_file(int dirfd, const char *name, const char *tmp, const uint8_t *buf,
                         size_t len);

#endif
