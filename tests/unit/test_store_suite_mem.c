/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store suite (store_suite.h) on the memory store, twice: the plain one
 * (cpns_store_mem_new) and the one with the non-blocking commit ops
 * (cpns_store_mem_new_async, whose commit in flight ends when the suite
 * calls cpns_store_mem_async_finish). A reopen is a crash on the same
 * object: the memory store's committed state is what survives.
 */
#include "store_suite.h"

static int mem_setup(void **ctx)
{
    *ctx = NULL;
    return 0;
}

static void mem_teardown(void *ctx)
{
}

static int mem_open(void *ctx, cpns_store **out)
{
    return cpns_store_mem_new(out);
}

static int mem_open_async(void *ctx, cpns_store **out)
{
    return cpns_store_mem_new_async(out);
}

static int mem_reopen(void *ctx, cpns_store **st)
{
    cpns_store_mem_crash(*st);
    return 0;
}

static const store_backend mem = {
    .name = "memory",
    .setup = mem_setup,
    .teardown = mem_teardown,
    .open = mem_open,
    .reopen = mem_reopen,
};

static const store_backend mem_async = {
    .name = "memory (non-blocking commit)",
    .setup = mem_setup,
    .teardown = mem_teardown,
    .open = mem_open_async,
    .reopen = mem_reopen,
    .finish = cpns_store_mem_async_finish,
};

int main(void)
{
    int failed = store_suite_run(&mem, NULL, NULL);
    failed += store_suite_run(&mem_async, NULL, NULL);
    return failed;
}
