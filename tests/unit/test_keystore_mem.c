/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/keystore_mem.c (and the key table it shares with the file
 * backend): the put() rules of keystore.h, sorted listing, and the
 * fail_puts switch the PNE tests use to reach Return 3.
 */
#include <stdio.h>
#include <string.h>

#include "support.h"

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
    cpns_keystore_close(*state);
    return 0;
}

static void assert_slot(const cpns_key_slot *s, uint32_t KeyVersion, uint8_t tag)
{
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, tag);
    assert_int_equal(s->KeyVersion, KeyVersion);
    assert_memory_equal(s->GK, GK, CPNS_KEY_LEN);
}

static void test_mem_empty(void **state)
{
    cpns_keystore *ks = *state;
    cpns_stored_keys k;
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), CPNS_ERR_NOT_FOUND);
}

static void test_mem_put_rules(void **state)
{
    cpns_keystore *ks = *state;
    cpns_stored_keys k;
    uint8_t GK[CPNS_KEY_LEN];

    key_of(GK, 0x11);
    assert_int_equal(ks->ops->put(ks, "sg-a", 1, GK), 0);
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), 0);
    assert_slot(&k.current, 1, 0x11);
    assert_int_equal(k.previous.KeyVersion, 0);

    /* a new version pushes the current one to previous */
    key_of(GK, 0x22);
    assert_int_equal(ks->ops->put(ks, "sg-a", 2, GK), 0);
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), 0);
    assert_slot(&k.current, 2, 0x22);
    assert_slot(&k.previous, 1, 0x11);

    /* the same version is replaced in place, previous stays */
    key_of(GK, 0x33);
    assert_int_equal(ks->ops->put(ks, "sg-a", 2, GK), 0);
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), 0);
    assert_slot(&k.current, 2, 0x33);
    assert_slot(&k.previous, 1, 0x11);

    /* only one previous version is kept */
    key_of(GK, 0x44);
    assert_int_equal(ks->ops->put(ks, "sg-a", 3, GK), 0);
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), 0);
    assert_slot(&k.current, 3, 0x44);
    assert_slot(&k.previous, 2, 0x33);

    /* groups are independent */
    assert_int_equal(ks->ops->get(ks, "sg-b", &k), CPNS_ERR_NOT_FOUND);
}

static void test_mem_invalid_args(void **state)
{
    cpns_keystore *ks = *state;
    cpns_stored_keys k;
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, 0x11);
    assert_int_equal(ks->ops->put(ks, "sg-a", 0, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->put(ks, "sg a", 1, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->put(ks, "", 1, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), CPNS_ERR_NOT_FOUND);
    assert_int_equal(ks->ops->list(ks, NULL, NULL), CPNS_ERR_INVALID_ARG);
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

typedef struct walk {
    char seen[64][CPNS_ID_MAX + 1];
    uint32_t versions[64];
    size_t n;
    size_t stop_after;
} walk;

static int visit(void *arg, const char *SGID, const cpns_stored_keys *keys)
{
    walk *w = arg;
    assert_true(w->n < 64);
    snprintf(w->seen[w->n], sizeof w->seen[w->n], "%s", SGID);
    w->versions[w->n] = keys->current.KeyVersion;
    w->n++;
    return w->n == w->stop_after ? 42 : 0;
}

static void test_mem_list_sorted(void **state)
{
    cpns_keystore *ks = *state;
    uint8_t GK[CPNS_KEY_LEN];
    walk w;
    memset(&w, 0, sizeof w);
    assert_int_equal(ks->ops->list(ks, visit, &w), 0);
    assert_int_equal(w.n, 0);

    /* insert 40 SGIDs in a scrambled order: i * 17 mod 40 visits all of them */
    for (unsigned i = 0; i < 40; i++) {
        char SGID[16];
        unsigned j = (i * 17) % 40;
        snprintf(SGID, sizeof SGID, "sg-%02u", j);
        key_of(GK, (uint8_t)j);
        assert_int_equal(ks->ops->put(ks, SGID, j + 1, GK), 0);
    }
    memset(&w, 0, sizeof w);
    assert_int_equal(ks->ops->list(ks, visit, &w), 0);
    assert_int_equal(w.n, 40);
    for (unsigned i = 0; i < 40; i++) {
        char SGID[16];
        snprintf(SGID, sizeof SGID, "sg-%02u", i);
        assert_string_equal(w.seen[i], SGID);
        assert_int_equal(w.versions[i], i + 1);
    }

    /* a non-zero return of the visitor stops the walk and comes back */
    memset(&w, 0, sizeof w);
    w.stop_after = 3;
    assert_int_equal(ks->ops->list(ks, visit, &w), 42);
    assert_int_equal(w.n, 3);
}

static void test_close_null(void **state)
{
    (void)state;
    cpns_keystore_close(NULL);
    cpns_keystore_mem_fail_puts(NULL, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mem_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_put_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_invalid_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_fail_puts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_list_sorted, setup, teardown),
        cmocka_unit_test(test_close_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
