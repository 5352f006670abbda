/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store suite (store_suite.h) on the SQLite store: each case in its own
 * directory under /tmp, removed at teardown; a reopen closes the store
 * without commit and opens the file again.
 */
#include <stdio.h>
#include <stdlib.h>

#include "store_suite.h"

typedef struct sqlite_ctx {
    char dir[64];
    char path[128];
    uint8_t master_key[CPNS_KEY_LEN];
} sqlite_ctx;

static int sqlite_setup(void **ctx)
{
    sqlite_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    test_db_dir("cpns-store-suite", c->dir, c->path);
    for (size_t i = 0; i < CPNS_KEY_LEN; i++)
        c->master_key[i] = (uint8_t)(0xa0 + i);
    *ctx = c;
    return 0;
}

static void sqlite_teardown(void *ctx)
{
    sqlite_ctx *c = ctx;
    test_db_dir_remove(c->dir, c->path);
    free(c);
}

static int sqlite_open(void *ctx, cpns_store **out)
{
    const sqlite_ctx *c = ctx;
    char err[256];
    int rv = cpns_store_sqlite_open(out, c->path, c->master_key, err, sizeof err);
    if (rv)
        fprintf(stderr, "sqlite open: %s\n", err);
    return rv;
}

static int sqlite_reopen(void *ctx, cpns_store **st)
{
    cpns_store_free(*st);
    *st = NULL;
    return sqlite_open(ctx, st);
}

static const store_backend sqlite = {
    .name = "sqlite",
    .setup = sqlite_setup,
    .teardown = sqlite_teardown,
    .open = sqlite_open,
    .reopen = sqlite_reopen,
    .errmsg = cpns_store_sqlite_errmsg,
};

int main(void)
{
    return store_suite_run(&sqlite, NULL, NULL);
}
