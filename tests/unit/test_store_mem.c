/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of what lib/store_mem.c has beyond the store ops: the test hooks
 * (get_sg, get_member and commits see the committed state only), injected
 * faults (a failed commit keeps its writes for a retry), and the member
 * state names. The ops' semantics, on this store as on SQLite and
 * PostgreSQL: store_suite.h, run by test_store_suite_mem.c.
 */
#include <string.h>

#include "support.h"

static cpns_store_sg sg_row(const char *SGID, uint32_t KeyVersion)
{
    cpns_store_sg r;
    memset(&r, 0, sizeof r);
    strcpy(r.SGID, SGID);
    r.KeyVersion = KeyVersion;
    memset(r.GK, (int)KeyVersion, sizeof r.GK);
    return r;
}

static cpns_store_member member_row(const char *SGID, const char *PNEID, cpns_member_state st)
{
    cpns_store_member r;
    memset(&r, 0, sizeof r);
    strcpy(r.SGID, SGID);
    strcpy(r.PNEID, PNEID);
    r.KeyVersion = 1;
    r.state = st;
    r.Return = -1;
    r.fail_reason = -1;
    return r;
}

/* The test hooks read the committed state only, and count commits. */
static void test_hooks_see_committed_state(void **state)
{
    cpns_store *st;
    assert_int_equal(cpns_store_mem_new(&st), 0);
    const cpns_store_ops *ops = st->ops;
    cpns_store_sg sg = sg_row("sg-1", 1), got;
    cpns_store_member m = member_row("sg-1", "pne-a", CPNS_MEMBER_PENDING), gm;
    assert_int_equal(ops->put_sg(st, &sg), 0);
    assert_int_equal(ops->put_member(st, &m), 0);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &got), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_store_mem_get_member(st, "sg-1", "pne-a", &gm), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_store_mem_commits(st), 0);
    assert_int_equal(ops->commit(st), 0);
    assert_int_equal(cpns_store_mem_commits(st), 1);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &got), 0);
    assert_memory_equal(&got, &sg, sizeof sg);
    assert_int_equal(cpns_store_mem_get_member(st, "sg-1", "pne-a", &gm), 0);
    assert_memory_equal(&gm, &m, sizeof m);

    /* an uncommitted change is not seen; a rolled-back one never */
    m.state = CPNS_MEMBER_DELIVERED;
    assert_int_equal(ops->put_member(st, &m), 0);
    assert_int_equal(cpns_store_mem_get_member(st, "sg-1", "pne-a", &gm), 0);
    assert_int_equal(gm.state, CPNS_MEMBER_PENDING);
    assert_int_equal(ops->rollback(st), 0);
    assert_int_equal(ops->del_sg(st, "sg-1"), 0);
    assert_int_equal(ops->commit(st), 0);
    assert_int_equal(cpns_store_mem_commits(st), 2);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &got), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_store_mem_get_member(st, "sg-1", "pne-a", &gm), CPNS_ERR_NOT_FOUND);

    /* the hooks refuse another kind of store */
    cpns_store other = {NULL};
    assert_int_equal(cpns_store_mem_get_sg(&other, "sg-1", &got), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_store_mem_commits(&other), 0);
    cpns_store_free(st);
    cpns_store_free(NULL);
}

static void test_injected_faults(void **state)
{
    cpns_store *st;
    assert_int_equal(cpns_store_mem_new(&st), 0);
    const cpns_store_ops *ops = st->ops;
    cpns_store_sg sg = sg_row("sg-1", 1), got;
    cpns_store_mem_fail_writes(st, 1);
    assert_int_equal(ops->put_sg(st, &sg), CPNS_ERR_STORE);
    assert_int_equal(ops->put_sg(st, &sg), 0);
    /* A failed commit keeps the transaction for a retry. */
    cpns_store_mem_fail_writes(st, 1);
    assert_int_equal(ops->commit(st), CPNS_ERR_STORE);
    assert_int_equal(cpns_store_mem_commits(st), 0);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &got), CPNS_ERR_NOT_FOUND);
    assert_int_equal(ops->commit(st), 0);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &got), 0);
    assert_int_equal(cpns_store_mem_commits(st), 1);
    cpns_store_free(st);
}

/* The non-blocking variant's hooks: the test ends the commit in flight, once, with a real outcome.
 */
static void test_async_hooks(void **state)
{
    cpns_store *st;
    assert_int_equal(cpns_store_mem_new_async(&st), 0);
    const cpns_store_ops *ops = st->ops;
    cpns_store_sg sg = sg_row("sg-1", 1);
    assert_false(cpns_store_mem_inflight(st));
    assert_int_equal(cpns_store_mem_async_finish(st, 0), CPNS_ERR_STATE); /* none in flight */
    assert_int_equal(ops->watch_fd(st), -1);
    assert_int_equal(ops->put_sg(st, &sg), 0);
    assert_int_equal(ops->commit_start(st), 0);
    assert_true(cpns_store_mem_inflight(st));
    assert_int_equal(cpns_store_mem_async_finish(st, CPNS_ERR_AGAIN), CPNS_ERR_STATE);
    assert_int_equal(ops->commit_poll(st), CPNS_ERR_AGAIN);
    assert_int_equal(cpns_store_mem_async_finish(st, 0), 0);
    assert_int_equal(ops->commit_poll(st), 0);
    assert_false(cpns_store_mem_inflight(st));
    assert_int_equal(cpns_store_mem_commits(st), 1);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &sg), 0);
    /* the plain store has no non-blocking ops; a crash ends a commit in flight */
    cpns_store *plain;
    assert_int_equal(cpns_store_mem_new(&plain), 0);
    assert_null(plain->ops->commit_start);
    cpns_store_free(plain);
    assert_int_equal(ops->commit_start(st), 0);
    cpns_store_mem_crash(st);
    assert_false(cpns_store_mem_inflight(st));
    cpns_store_free(st);
}

static void test_member_state_names(void **state)
{
    assert_string_equal(cpns_member_state_name(CPNS_MEMBER_PENDING), "pending");
    assert_string_equal(cpns_member_state_name(CPNS_MEMBER_SENT), "sent");
    assert_string_equal(cpns_member_state_name(CPNS_MEMBER_DELIVERED), "delivered");
    assert_string_equal(cpns_member_state_name(CPNS_MEMBER_FAILED), "failed");
    assert_string_equal(cpns_member_state_name((cpns_member_state)9), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks_see_committed_state),
        cmocka_unit_test(test_injected_faults),
        cmocka_unit_test(test_async_hooks),
        cmocka_unit_test(test_member_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
