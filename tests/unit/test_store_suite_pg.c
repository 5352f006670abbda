/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store suite (store_suite.h) on the PostgreSQL store: one private
 * cluster for the program (tests/support/pg.h, started in the group setup,
 * stopped in the group teardown), a new database per case; a reopen closes
 * the store without commit (its batch is dropped) and connects again. No
 * instance_id: no fencing (test_store_pg.c tests the lease).
 */
#include <stdio.h>
#include <stdlib.h>

#include "pg.h"
#include "store_suite.h"

typedef struct pg_ctx {
    char uri[256];
    uint8_t master_key[CPNS_KEY_LEN];
} pg_ctx;

static int pg_setup(void **ctx)
{
    pg_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    if (test_pg_create_db(&test_pg_group, c->uri, sizeof c->uri) != 0) {
        free(c);
        return -1;
    }
    for (size_t i = 0; i < CPNS_KEY_LEN; i++)
        c->master_key[i] = (uint8_t)(0x5a + i);
    *ctx = c;
    return 0;
}

static void pg_teardown(void *ctx)
{
    free(ctx);
}

static int pg_open(void *ctx, cpns_store **out)
{
    const pg_ctx *c = ctx;
    cpns_store_pg_config cfg = {c->uri, c->master_key, NULL, 0};
    char err[512];
    int rv = cpns_store_pg_open(out, &cfg, err, sizeof err);
    if (rv)
        fprintf(stderr, "pg open: %s\n", err);
    return rv;
}

static int pg_reopen(void *ctx, cpns_store **st)
{
    cpns_store_free(*st);
    *st = NULL;
    return pg_open(ctx, st);
}

static const store_backend postgresql = {
    .name = "postgresql",
    .setup = pg_setup,
    .teardown = pg_teardown,
    .open = pg_open,
    .reopen = pg_reopen,
    .errmsg = cpns_store_pg_errmsg,
};

int main(void)
{
    return store_suite_run(&postgresql, test_pg_group_setup, test_pg_group_teardown);
}
