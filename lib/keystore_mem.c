/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The memory keystore: the key table with nothing behind it, for tests and
 * simulated PNEs, plus a switch that makes put() fail so that tests can drive
 * the PNE's secure storage failure path (Return 3). Also home of
 * cpns_keystore_free(), which works for every backend.
 */
#include "cpns/testing.h"
#include "keystore_internal.h"

typedef struct mem_keystore {
    cpns_keystore base; /* first, so that the two pointers convert */
    cpns_ks_table table;
    int fail_puts;
} mem_keystore;

static int mem_get(cpns_keystore *ks, const char *SGID, cpns_stored_keys *out)
{
    mem_keystore *m = (mem_keystore *)ks;
    if (!out)
        return CPNS_ERR_INVALID_ARG;
    return cpns_ks_table_get(&m->table, SGID, out);
}

static int mem_put(cpns_keystore *ks, const char *SGID, uint32_t KeyVersion,
                   const uint8_t GK[CPNS_KEY_LEN])
{
    mem_keystore *m = (mem_keystore *)ks;
    if (m->fail_puts > 0) {
        m->fail_puts--;
        return CPNS_ERR_IO;
    }
    cpns_ks_undo undo;
    int rv = cpns_ks_table_put(&m->table, SGID, KeyVersion, GK, &undo);
    if (!rv)
        cpns_ks_table_commit(&undo);
    return rv;
}

static int mem_list(cpns_keystore *ks, cpns_keystore_visit_fn fn, void *arg)
{
    mem_keystore *m = (mem_keystore *)ks;
    return cpns_ks_table_list(&m->table, fn, arg);
}

static void mem_close(cpns_keystore *ks)
{
    mem_keystore *m = (mem_keystore *)ks;
    cpns_ks_table_clear(&m->table);
    cpns_free(m);
}

static const cpns_keystore_ops mem_ops = {mem_get, mem_put, mem_list, mem_close};

int cpns_keystore_mem_new(cpns_keystore **out)
{
    if (!out)
        return CPNS_ERR_INVALID_ARG;
    *out = NULL;
    mem_keystore *m = cpns_calloc(1, sizeof *m);
    if (!m)
        return CPNS_ERR_NOMEM;
    m->base.ops = &mem_ops;
    *out = &m->base;
    return 0;
}

void cpns_keystore_mem_fail_puts(cpns_keystore *ks, int n)
{
    /* a no-op on other backends: they cannot be told to fail */
    if (ks && ks->ops == &mem_ops)
        ((mem_keystore *)ks)->fail_puts = n > 0 ? n : 0;
}

void cpns_keystore_free(cpns_keystore *ks)
{
    if (ks && ks->ops && ks->ops->close)
        ks->ops->close(ks);
}
