/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the engine's non-blocking group commit (cpns_server_flush_start /
 * cpns_server_flush_poll, issue #11), on the memory store's async mode, whose
 * commit in flight ends when the test says how. What a commit in flight must
 * keep true: registration answers held for it leave only once it is durable
 * (and those held after it started wait for the next one), frames carrying a
 * Group Key it commits do not leave before it, a failed one loses nothing and
 * the next commit writes it again, and a blocking commit waits for it.
 */
#include "server_harness.h"

static int setup(void **state)
{
    harness *h = test_malloc(sizeof *h);
    h_init(h);
    cpns_store_free(h->st);
    assert_int_equal(cpns_store_mem_new_async(&h->st), 0);
    h->cfg.store = h->st;
    h_start(h);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    h_teardown(*state);
    test_free(*state);
    return 0;
}

static const char *const ONE[] = {"pne-a"};

/* Ends the commit in flight with outcome and returns what the engine's poll says. */
static int finish(harness *h, int outcome)
{
    assert_int_equal(cpns_server_flush_poll(h->s), CPNS_ERR_AGAIN);
    assert_int_equal(cpns_store_mem_async_finish(h->st, outcome), 0);
    return cpns_server_flush_poll(h->s);
}

static void test_answer_leaves_when_commit_is_durable(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    assert_int_equal(cpns_server_flush(h->s), 0);
    cpns_msg m, r;
    h_reg_msg_now(h, &m, "pne-a");
    assert_int_equal(h_recv(h, 1, &m), 0);
    assert_true(cpns_server_commit_wanted(h->s));
    uint64_t commits = cpns_store_mem_commits(h->st);
    assert_int_equal(cpns_server_flush_start(h->s), 0);
    assert_true(cpns_server_flush_inflight(h->s));
    assert_int_equal(cpns_server_flush_start(h->s), CPNS_ERR_AGAIN); /* one at a time */
    assert_false(cpns_server_commit_wanted(h->s));                   /* its commit is under way */
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    assert_int_equal(cpns_store_mem_commits(h->st), commits); /* pop did not commit */
    assert_int_equal(finish(h, 0), 0);
    assert_false(cpns_server_flush_inflight(h->s));
    assert_int_equal(cpns_store_mem_commits(h->st), commits + 1);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    assert_int_equal(r.TransactionID, m.TransactionID);
    assert_int_equal(r.Return, CPNS_RETURN_SUCCESS);
}

/* An answer held after the commit started is not in it: it waits for the next one. */
static void test_answer_held_during_flight_waits_for_next_commit(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    h_pne_add(h, "pne-b");
    assert_int_equal(cpns_server_flush(h->s), 0);
    cpns_msg a, b, r;
    h_reg_msg_now(h, &a, "pne-a");
    assert_int_equal(h_recv(h, 1, &a), 0);
    assert_int_equal(cpns_server_flush_start(h->s), 0);
    h_reg_msg_now(h, &b, "pne-b");
    assert_int_equal(h_recv(h, 1, &b), 0);
    assert_true(cpns_server_commit_wanted(h->s));
    assert_int_equal(finish(h, 0), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.TransactionID, a.TransactionID);
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    assert_true(cpns_server_commit_wanted(h->s));
    assert_int_equal(cpns_server_flush_start(h->s), 0);
    assert_int_equal(finish(h, 0), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.TransactionID, b.TransactionID);
}

/*
 * A failed commit in flight keeps its answer held and its writes in the store:
 * the next commit writes them (the engine has nothing dirty left to write),
 * and after a crash the accepted Nonce is there, so a replay is refused.
 */
static void test_failed_commit_is_written_by_the_next(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    assert_int_equal(cpns_server_flush(h->s), 0);
    cpns_msg m, r;
    h_reg_msg_now(h, &m, "pne-a");
    assert_int_equal(h_recv(h, 1, &m), 0);
    assert_int_equal(cpns_server_flush_start(h->s), 0);
    assert_int_equal(finish(h, CPNS_ERR_STORE), CPNS_ERR_STORE);
    assert_false(cpns_server_flush_inflight(h->s));
    assert_true(cpns_server_commit_wanted(h->s));
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    assert_int_equal(cpns_server_flush_start(h->s), 0);
    assert_int_equal(finish(h, 0), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.Return, CPNS_RETURN_SUCCESS);

    h_crash_restart(h);
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_recv(h, 1, &m), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.Return, CPNS_RETURN_AUTH); /* replayed Nonce */
}

/* A commit in flight carrying a new Group Key: no frame with that key before it is durable. */
static void test_new_key_waits_for_commit_in_flight(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    assert_int_equal(h_register(h, 1, "pne-a"), CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_server_flush(h->s), 0);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", ONE, 1, h->now), 0);
    cpns_msg r;
    assert_int_equal(cpns_server_flush_start(h->s), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    assert_int_equal(finish(h, CPNS_ERR_STORE), CPNS_ERR_STORE);
    /* Still not durable: the next pop commits it, blocking, before the frame leaves. */
    uint64_t commits = cpns_store_mem_commits(h->st);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(cpns_store_mem_commits(h->st), commits + 1);
    assert_int_equal(r.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    cpns_store_sg sg;
    assert_int_equal(cpns_store_mem_get_sg(h->st, "sg-1", &sg), 0);
    assert_int_equal(sg.KeyVersion, 1);
}

/* The catch-up of a PNE whose answer is in flight waits for it, without a blocking commit. */
static void test_catch_up_waits_for_answer_in_flight(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", ONE, 1, h->now), 0);
    cpns_msg m, r;
    assert_int_equal(h_pop_raw(h, NULL, &r), 0); /* not reachable yet */
    assert_int_equal(cpns_server_flush(h->s), 0);
    h_reg_msg_now(h, &m, "pne-a");
    assert_int_equal(h_recv(h, 1, &m), 0);
    uint64_t commits = cpns_store_mem_commits(h->st);
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    assert_int_equal(cpns_store_mem_commits(h->st), commits);
    assert_true(cpns_server_commit_wanted(h->s));
    assert_int_equal(cpns_server_flush_start(h->s), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    assert_int_equal(finish(h, 0), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    assert_string_equal(r.PNEID, "pne-a");
}

/* A blocking commit while one is in flight makes both durable and releases every answer. */
static void test_blocking_flush_waits_for_commit_in_flight(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    h_pne_add(h, "pne-b");
    assert_int_equal(cpns_server_flush(h->s), 0);
    cpns_msg a, b, r;
    h_reg_msg_now(h, &a, "pne-a");
    assert_int_equal(h_recv(h, 1, &a), 0);
    assert_int_equal(cpns_server_flush_start(h->s), 0);
    h_reg_msg_now(h, &b, "pne-b");
    assert_int_equal(h_recv(h, 1, &b), 0);
    assert_int_equal(cpns_server_flush(h->s), 0);
    assert_false(cpns_server_flush_inflight(h->s));
    assert_false(cpns_store_mem_inflight(h->st));
    assert_int_equal(cpns_server_flush_poll(h->s), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.TransactionID, a.TransactionID);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.TransactionID, b.TransactionID);
}

/* A connection that closes while its answer is in flight: the answer is dropped. */
static void test_closed_connection_drops_answer_in_flight(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    assert_int_equal(h_gw(h, 2, "gw-2", "pn-office", NULL), CPNS_RETURN_SUCCESS);
    cpns_msg m, r;
    h_reg_msg_now(h, &m, "pne-a");
    assert_int_equal(h_recv(h, 2, &m), 0);
    assert_int_equal(cpns_server_flush_start(h->s), 0);
    cpns_server_conn_close(h->s, 2, h->now);
    assert_int_equal(finish(h, 0), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answer_leaves_when_commit_is_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_held_during_flight_waits_for_next_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_is_written_by_the_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_key_waits_for_commit_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_waits_for_answer_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocking_flush_waits_for_commit_in_flight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_closed_connection_drops_answer_in_flight, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
