/* Tests of lib/map.c: the hash map behind the engines' tables. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "support.h"

static void test_string_keys(void **state)
{
    (void)state;
    cpns_map m = {0};
    static char keys[2000][16];
    for (int i = 0; i < 2000; i++) {
        snprintf(keys[i], sizeof keys[i], "pne-%d", i);
        assert_int_equal(cpns_map_put(&m, keys[i], keys[i]), 0);
    }
    assert_int_equal(m.count, 2000);
    for (int i = 0; i < 2000; i++)
        assert_ptr_equal(cpns_map_get(&m, keys[i]), keys[i]);
    assert_null(cpns_map_get(&m, "pne-2000"));
    /* replacing keeps the count */
    assert_int_equal(cpns_map_put(&m, keys[7], keys[8]), 0);
    assert_int_equal(m.count, 2000);
    assert_ptr_equal(cpns_map_get(&m, "pne-7"), keys[8]);
    for (int i = 0; i < 2000; i += 2)
        assert_non_null(cpns_map_remove(&m, keys[i]));
    assert_null(cpns_map_remove(&m, keys[0]));
    assert_int_equal(m.count, 1000);
    assert_null(cpns_map_get(&m, keys[0]));
    assert_ptr_equal(cpns_map_get(&m, keys[1]), keys[1]);
    cpns_map_clear(&m);
    assert_int_equal(m.count, 0);
    assert_null(cpns_map_get(&m, keys[1]));
}

static void test_u64_keys_and_iteration(void **state)
{
    (void)state;
    cpns_map m = {0};
    int vals[500];
    for (int i = 0; i < 500; i++)
        assert_int_equal(cpns_map_put_u64(&m, (uint64_t)i * 7919u + 1, &vals[i]), 0);
    assert_ptr_equal(cpns_map_get_u64(&m, 1), &vals[0]);
    assert_null(cpns_map_get_u64(&m, 2));
    size_t seen = 0;
    for (cpns_map_iter it = cpns_map_begin(&m); cpns_map_next(&it);) {
        assert_null(it.key);
        assert_ptr_equal(it.val, &vals[(it.ikey - 1) / 7919u]);
        seen++;
    }
    assert_int_equal(seen, 500);
    assert_ptr_equal(cpns_map_remove_u64(&m, 1), &vals[0]);
    assert_null(cpns_map_get_u64(&m, 1));
    cpns_map_clear(&m);
}

static void test_sorted(void **state)
{
    (void)state;
    cpns_map m = {0};
    const char *names[] = {"sg-c", "sg-a", "sg-b", "sg-aa"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(cpns_map_put(&m, names[i], (void *)names[i]), 0);
    void **vals;
    size_t n;
    assert_int_equal(cpns_map_sorted(&m, &vals, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(vals[0], "sg-a");
    assert_string_equal(vals[1], "sg-aa");
    assert_string_equal(vals[2], "sg-b");
    assert_string_equal(vals[3], "sg-c");
    cpns_free(vals);
    cpns_map_clear(&m);
    assert_int_equal(cpns_map_sorted(&m, &vals, &n), 0);
    assert_null(vals);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_keys),
        cmocka_unit_test(test_u64_keys_and_iteration),
        cmocka_unit_test(test_sorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
