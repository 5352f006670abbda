/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of stored Group Keys behind both keystore backends: per SGID the
 * current key and the one before it (keystore.h). It owns the put() rule so
 * that the memory and the file backend cannot drift apart, and hands back an
 * undo record because the file backend must leave its state untouched when
 * writing the file fails (7.8.6.1 step 2: the PNE then answers Return 3 and
 * still holds what it held before).
 */
#include <string.h>

#include "cpns/crypto.h"
#include "keystore_internal.h"

int cpns_ks_table_get(const cpns_ks_table *t, const char *SGID, cpns_stored_keys *out)
{
    const cpns_ks_entry *e = SGID ? cpns_map_get(&t->map, SGID) : NULL;
    if (!e)
        return CPNS_ERR_NOT_FOUND;
    *out = e->keys;
    return 0;
}

int cpns_ks_table_put(cpns_ks_table *t, const char *SGID, uint32_t KeyVersion,
                      const uint8_t GK[CPNS_KEY_LEN], cpns_ks_undo *undo)
{
    memset(undo, 0, sizeof *undo);
    if (!SGID || !cpns_id_valid(SGID) || KeyVersion == 0 || !GK)
        return CPNS_ERR_INVALID_ARG;
    cpns_ks_entry *e = cpns_map_get(&t->map, SGID);
    if (!e) {
        e = cpns_calloc(1, sizeof *e);
        if (!e)
            return CPNS_ERR_NOMEM;
        memcpy(e->SGID, SGID, strlen(SGID) + 1);
        if (cpns_map_put(&t->map, e->SGID, e)) {
            cpns_free(e);
            return CPNS_ERR_NOMEM;
        }
        undo->created = 1;
    } else {
        undo->old = e->keys;
        /* the key being replaced in place is not kept as previous */
        if (e->keys.current.KeyVersion != KeyVersion)
            e->keys.previous = e->keys.current;
    }
    undo->entry = e;
    e->keys.current.KeyVersion = KeyVersion;
    memcpy(e->keys.current.GK, GK, CPNS_KEY_LEN);
    return 0;
}

void cpns_ks_table_undo(cpns_ks_table *t, cpns_ks_undo *undo)
{
    cpns_ks_entry *e = undo->entry;
    if (!e)
        return;
    if (undo->created) {
        cpns_map_remove(&t->map, e->SGID);
        cpns_wipe(e, sizeof *e);
        cpns_free(e);
    } else {
        e->keys = undo->old;
    }
    cpns_ks_table_commit(undo);
}

void cpns_ks_table_commit(cpns_ks_undo *undo)
{
    cpns_wipe(undo, sizeof *undo);
}

int cpns_ks_table_sorted(const cpns_ks_table *t, cpns_ks_entry ***out, size_t *n)
{
    void **vals;
    int rv = cpns_map_sorted(&t->map, &vals, n);
    *out = (cpns_ks_entry **)vals;
    return rv;
}

int cpns_ks_table_list(const cpns_ks_table *t, cpns_keystore_visit_fn fn, void *arg)
{
    if (!fn)
        return CPNS_ERR_INVALID_ARG;
    cpns_ks_entry **entries;
    size_t n;
    int rv = cpns_ks_table_sorted(t, &entries, &n);
    if (rv)
        return rv;
    for (size_t i = 0; i < n && !rv; i++)
        rv = fn(arg, entries[i]->SGID, &entries[i]->keys);
    cpns_free(entries);
    return rv;
}

void cpns_ks_table_clear(cpns_ks_table *t)
{
    for (cpns_map_iter it = cpns_map_begin(&t->map); cpns_map_next(&it);) {
        cpns_wipe(it.val, sizeof(cpns_ks_entry));
        cpns_free(it.val);
    }
    cpns_map_clear(&t->map);
}
