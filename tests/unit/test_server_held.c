/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/server_held.c (issue #10.8): a PNERegistrationResponse with
 * Return 1 leaves only once its Nonce is committed, so that a registration
 * captured on the path and replayed after a server crash (kill -9 inside the
 * group-commit window) is not accepted twice. Refusals go out at once.
 *
 * Hostile input: the same captured PNERegistrationRequest replayed after a
 * crash. Outcome: if its answer ever left, the replay is refused (Return 8,
 * "Nonce replayed"); if it did not, the first acceptance was never seen.
 */
#include "server_harness.h"

static int setup(void **state)
{
    harness *h = test_malloc(sizeof *h);
    h_setup(h);
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

/* #10.8: the Return 1 answer is not popped before the commit; after it, it is. */
static void test_registration_answer_waits_for_commit(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    assert_false(cpns_server_commit_wanted(h->s));
    cpns_msg m, r;
    h_reg_msg_now(h, &m, "pne-a");
    assert_int_equal(h_recv(h, 1, &m), 0);
    assert_true(cpns_server_commit_wanted(h->s));
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    uint64_t commits = cpns_store_mem_commits(h->st);
    assert_int_equal(cpns_server_flush(h->s), 0);
    assert_int_equal(cpns_store_mem_commits(h->st), commits + 1);
    assert_false(cpns_server_commit_wanted(h->s));
    uint64_t link = 0;
    assert_int_equal(h_pop_raw(h, &link, &r), 1);
    assert_int_equal(link, 1);
    assert_int_equal(r.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    assert_int_equal(r.TransactionID, m.TransactionID);
    assert_int_equal(r.Return, CPNS_RETURN_SUCCESS);
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
}

/* #10.8: refusals (here 9 and 8) commit nothing and leave at once. */
static void test_refusals_are_not_held(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    cpns_msg m, r;
    h_reg_msg_now(h, &m, "pne-x");
    assert_int_equal(h_recv(h, 1, &m), 0);
    assert_false(cpns_server_commit_wanted(h->s));
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.Return, CPNS_RETURN_UNKNOWN);
    h_reg_msg_now(h, &m, "pne-a");
    m.Time += 1; /* the Proof no longer verifies */
    assert_int_equal(h_recv(h, 1, &m), 0);
    assert_false(cpns_server_commit_wanted(h->s));
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.Return, CPNS_RETURN_AUTH);
}

/*
 * #10.8: a failed commit keeps the answer held (retried at the next flush).
 * A crash then loses the Nonce, but nobody saw it accepted; once the answer
 * has left, a replay of the same request after a crash is refused.
 */
static void test_failed_commit_keeps_answer_held_and_replay_after_crash(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    assert_int_equal(cpns_server_flush(h->s), 0);
    cpns_msg m, r;
    h_reg_msg_now(h, &m, "pne-a");
    assert_int_equal(h_recv(h, 1, &m), 0);
    cpns_store_mem_fail_writes(h->st, 1);
    assert_int_equal(cpns_server_flush(h->s), CPNS_ERR_STORE);
    assert_true(cpns_server_commit_wanted(h->s));
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);

    /* Crash before any commit: the registration was never answered, so it may count now. */
    h_crash_restart(h);
    assert_false(cpns_server_commit_wanted(h->s));
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_recv(h, 1, &m), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    assert_int_equal(cpns_server_flush(h->s), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.Return, CPNS_RETURN_SUCCESS);

    /* Answered, hence durable: the same request after a crash is a replay. */
    h_crash_restart(h);
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_recv(h, 1, &m), 0);
    assert_false(cpns_server_commit_wanted(h->s));
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.Return, CPNS_RETURN_AUTH);
}

/*
 * #10.8: the catch-up deliveries of a registration never overtake its answer.
 * A pop with such a delivery ready commits first (as for a new Group Key),
 * then hands out the answer, then the request.
 */
static void test_answer_leaves_before_catch_up(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", ONE, 1, h->now), 0);
    cpns_msg m, r;
    assert_int_equal(h_pop_raw(h, NULL, &r), 0); /* not registered: not reachable */
    assert_int_equal(cpns_server_flush(h->s), 0);
    h_reg_msg_now(h, &m, "pne-a");
    assert_int_equal(h_recv(h, 1, &m), 0);
    uint64_t commits = cpns_store_mem_commits(h->st);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(cpns_store_mem_commits(h->st), commits + 1);
    assert_int_equal(r.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    assert_int_equal(r.Return, CPNS_RETURN_SUCCESS);
    assert_false(cpns_server_commit_wanted(h->s));
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    assert_string_equal(r.PNEID, "pne-a");
    h_confirm(h, 1, &r);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
}

/*
 * #10.8: with the store failing, a PNE whose answer is held gets nothing
 * (its deliveries wait for the answer), but the other PNEs' deliveries go on:
 * a store outage holds back registrations, not the distribution.
 */
static void test_failed_commit_holds_only_that_pne(void **state)
{
    harness *h = *state;
    static const char *const TWO[] = {"pne-a", "pne-b"};
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    h_pne_add(h, "pne-b");
    assert_int_equal(h_register(h, 1, "pne-b"), CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", TWO, 2, h->now), 0);
    cpns_msg m, r, req_b;
    assert_int_equal(h_pop_raw(h, NULL, &req_b), 1);
    assert_string_equal(req_b.PNEID, "pne-b");
    assert_int_equal(cpns_server_flush(h->s), 0);
    /* pne-a registers (its catch-up is queued first), then pne-b's request times out. */
    h_reg_msg_now(h, &m, "pne-a");
    assert_int_equal(h_recv(h, 1, &m), 0);
    h->now += 10000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    cpns_store_mem_fail_writes(h->st, 1);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    assert_string_equal(r.PNEID, "pne-b");
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    assert_true(cpns_server_commit_wanted(h->s));
    assert_int_equal(h_sg(h, "sg-1").n_sent, 1);
    /* The store is back: the answer, then pne-a's delivery. */
    assert_int_equal(cpns_server_flush(h->s), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    assert_int_equal(r.TransactionID, m.TransactionID);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    assert_string_equal(r.PNEID, "pne-a");
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
}

/* #10.8: held answers of a connection that closes are dropped, not sent elsewhere. */
static void test_closed_connection_drops_held_answer(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    h_pne_add(h, "pne-b");
    assert_int_equal(h_gw(h, 2, "gw-2", "pn-office", NULL), CPNS_RETURN_SUCCESS);
    cpns_msg a, b, r;
    h_reg_msg_now(h, &a, "pne-a");
    h_reg_msg_now(h, &b, "pne-b");
    assert_int_equal(h_recv(h, 1, &a), 0);
    assert_int_equal(h_recv(h, 2, &b), 0);
    assert_int_equal(cpns_server_conn_close(h->s, 1, h->now), 0);
    assert_true(cpns_server_commit_wanted(h->s)); /* pne-b's answer is still held */
    assert_int_equal(cpns_server_flush(h->s), 0);
    /* Released but unpopped answers go with their connection too. */
    h_reg_msg_now(h, &a, "pne-a");
    assert_int_equal(h_recv(h, 2, &a), 0);
    assert_int_equal(cpns_server_flush(h->s), 0);
    uint64_t link = 0;
    assert_int_equal(h_pop_raw(h, &link, &r), 1);
    assert_int_equal(link, 2);
    assert_string_equal(r.PNEID, "pne-b");
    assert_int_equal(cpns_server_conn_close(h->s, 2, h->now), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    assert_false(cpns_server_commit_wanted(h->s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registration_answer_waits_for_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_are_not_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_keeps_answer_held_and_replay_after_crash,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_leaves_before_catch_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_holds_only_that_pne, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_connection_drops_held_answer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
