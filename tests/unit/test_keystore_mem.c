/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/keystore_mem.c (and the key table it shares with the file
 * backend): the key store suite (keystore_suite.h: the put() rules, sorted
 * listing, a failed put() that changes nothing), and the fail_puts switch the
 * PNE tests use to reach Return 3.
 */
#include <stdio.h>
#include <string.h>

#include "keystore_suite.h"

static int mem_setup(void **ctx)
{
    *ctx = NULL;
    return 0;
}

static void mem_teardown(void *ctx)
{
    (void)ctx;
}

static int mem_open(void *ctx, cpns_keystore **out)
{
    (void)ctx;
    return cpns_keystore_mem_new(out);
}

static void mem_fail_puts(void *ctx, cpns_keystore *ks, bool on)
{
    (void)ctx;
    cpns_keystore_mem_fail_puts(ks, on ? 1000 : 0);
}

static const keystore_backend mem_backend = {
    .name = "keystore_suite_mem",
    .setup = mem_setup,
    .teardown = mem_teardown,
    .open = mem_open,
    .durable = false,
    .fail_puts = mem_fail_puts,
};

static void key_of(uint8_t GK[CPNS_KEY_LEN], uint8_t tag)
{
    memset(GK, tag, CPNS_KEY_LEN);
}

static int setup(void **state)
{
    cpns_keystore *ks = NULL;
    assert_int_equal(cpns_keystore_mem_new(&ks), 0);
    assert_non_null(ks);
    *state = ks;
    return 0;
}

static int teardown(void **state)
{
    cpns_keystore_free(*state);
    return 0;
}

static void assert_slot(const cpns_key_slot *s, uint32_t KeyVersion, uint8_t tag)
{
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, tag);
    assert_int_equal(s->KeyVersion, KeyVersion);
    assert_memory_equal(s->GK, GK, CPNS_KEY_LEN);
}

/* the switch behind the PNE's "secure storage failure" (Return 3) tests */
static void test_mem_fail_puts(void **state)
{
    cpns_keystore *ks = *state;
    cpns_stored_keys k;
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, 0x11);
    assert_int_equal(ks->ops->put(ks, "sg-a", 1, GK), 0);

    cpns_keystore_mem_fail_puts(ks, 2);
    key_of(GK, 0x22);
    assert_int_equal(ks->ops->put(ks, "sg-a", 2, GK), CPNS_ERR_IO);
    assert_int_equal(ks->ops->put(ks, "sg-b", 1, GK), CPNS_ERR_IO);
    /* what was stored before is unchanged */
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), 0);
    assert_slot(&k.current, 1, 0x11);
    assert_int_equal(k.previous.KeyVersion, 0);
    assert_int_equal(ks->ops->get(ks, "sg-b", &k), CPNS_ERR_NOT_FOUND);

    /* the third one works again */
    assert_int_equal(ks->ops->put(ks, "sg-a", 2, GK), 0);
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), 0);
    assert_slot(&k.current, 2, 0x22);

    /* 0 cancels */
    cpns_keystore_mem_fail_puts(ks, 5);
    cpns_keystore_mem_fail_puts(ks, 0);
    assert_int_equal(ks->ops->put(ks, "sg-b", 1, GK), 0);
}

static void test_close_null(void **state)
{
    (void)state;
    cpns_keystore_free(NULL);
    cpns_keystore_mem_fail_puts(NULL, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mem_fail_puts, setup, teardown),
        cmocka_unit_test(test_close_null),
    };
    int failed = keystore_suite_run(&mem_backend);
    return failed + cmocka_run_group_tests(tests, NULL, NULL);
}
