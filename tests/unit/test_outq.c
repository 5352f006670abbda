/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of lib/outq.c: the engines' output queue. */
#include <string.h>

#include "internal.h"
#include "support.h"

static void test_fifo_and_lifetime(void **state)
{
    (void)state;
    cpns_outq q = {0};
    assert_int_equal(cpns_outq_push(&q, 1, (const uint8_t *)"one", 3), 0);
    assert_int_equal(cpns_outq_push(&q, 2, (const uint8_t *)"two", 3), 0);
    assert_int_equal(cpns_outq_push(&q, 1, (const uint8_t *)"three", 5), 0);
    assert_int_equal(q.count, 3);
    cpns_out out;
    assert_int_equal(cpns_outq_pop(&q, &out), 1);
    assert_int_equal(out.link, 1);
    assert_memory_equal(out.data, "one", 3);
    cpns_outq_drop_link(&q, 1);
    assert_int_equal(q.count, 1);
    assert_memory_equal(out.data, "one", 3); /* the popped item lives until the next pop */
    assert_int_equal(cpns_outq_pop(&q, &out), 1);
    assert_int_equal(out.link, 2);
    assert_int_equal(out.len, 3);
    assert_int_equal(cpns_outq_pop(&q, &out), 0);
    /* the tail is right after drop_link: a new push lands at the end */
    assert_int_equal(cpns_outq_push(&q, 3, (const uint8_t *)"x", 1), 0);
    assert_int_equal(cpns_outq_pop(&q, &out), 1);
    assert_int_equal(out.link, 3);
    cpns_outq_clear(&q);
    assert_int_equal(q.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_lifetime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
