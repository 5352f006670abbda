/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/server_member.c: the per-member delivery state machine of the
 * CPNS Server (7.8.6.3): the content of SGroupKeyDeliveryRequest, the reaction
 * to every Return value, timeouts with exponential backoff, matching of
 * responses to attempts, catch-up and re-provisioning.
 */
#include "server_harness.h"

static const char *const ONE[] = {"pne-a"};

static int setup(void **state)
{
    harness *h = test_malloc(sizeof *h);
    h_init(h);
    h->cfg.delivery_timeout_ms = 1000;
    h->cfg.max_attempts = 4;
    h->cfg.max_backoff_ms = 3000;
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

/* One SG "sg-1" with pne-a; returns its first request. */
static void one_member(harness *h, cpns_msg *req)
{
    h_world(h, ONE, 1);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", ONE, 1, h->now), 0);
    uint64_t link = 0;
    assert_int_equal(h_pop(h, &link, req), 1);
    assert_int_equal(link, 1);
}

/* 7.8.6.3-2, 7.8.6.3-3: SGID, GroupKeyInfo with PNEID and a per-PNE EncryptedGroupKey. */
static void test_7_8_6_3_2_and_3_request_content(void **state)
{
    harness *h = *state;
    static const char *const TWO[] = {"pne-a", "pne-b"};
    h_world(h, TWO, 2);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", TWO, 2, h->now), 0);
    cpns_msg req[2];
    uint8_t GK[2][CPNS_KEY_LEN];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(h_pop(h, NULL, &req[i]), 1);
        assert_int_equal(req[i].kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
        assert_true(req[i].present & CPNS_F_SGID);
        assert_string_equal(req[i].SGID, "sg-1");
        assert_true(req[i].present & CPNS_F_GROUPKEYINFO);
        assert_true(req[i].present & CPNS_F_PNEID);
        assert_true(req[i].present & CPNS_F_EGK);
        assert_int_equal(req[i].EncryptedGroupKey.len, CPNS_EGK_LEN);
        assert_int_equal(req[i].KeyVersion, 1);
        h_unwrap(&req[i], GK[i]); /* under that PNE's own EUK */
    }
    assert_string_not_equal(req[0].PNEID, req[1].PNEID);
    assert_memory_equal(GK[0], GK[1], CPNS_KEY_LEN);
    assert_memory_not_equal(req[0].EncryptedGroupKey.data, req[1].EncryptedGroupKey.data,
                            CPNS_EGK_LEN);
    assert_true(req[0].TransactionID != req[1].TransactionID);
    /* The other PNE's EUK does not open a member's blob. */
    uint8_t other[CPNS_KEY_LEN], K_wrap[CPNS_KEY_LEN], out[CPNS_KEY_LEN];
    h_euk(req[1].PNEID, other);
    assert_int_equal(cpns_kdf(other, CPNS_INFO_WRAP, K_wrap), 0);
    assert_int_equal(cpns_egk_unwrap(K_wrap, req[0].SGID, req[0].PNEID, 1,
                                     req[0].EncryptedGroupKey.data, CPNS_EGK_LEN, out),
                     CPNS_ERR_AUTH);
    assert_int_equal(h_pop(h, NULL, &req[0]), 0);
}

/* 7.8.6.3-5: Return 1 finishes the member; all members finished -> complete. */
static void test_7_8_6_3_5_return_1_finishes(void **state)
{
    harness *h = *state;
    static const char *const TWO[] = {"pne-a", "pne-b"};
    h_world(h, TWO, 2);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", TWO, 2, h->now), 0);
    cpns_msg a, b;
    assert_int_equal(h_pop(h, NULL, &a), 1);
    assert_int_equal(h_pop(h, NULL, &b), 1);
    h->now += 40;
    h_confirm(h, 1, &a);
    cpns_member_info mi = h_member(h, "sg-1", a.PNEID);
    assert_int_equal(mi.state, CPNS_MEMBER_DELIVERED);
    assert_int_equal(mi.Return, 1);
    assert_string_equal(mi.PNID, "pn-home");
    assert_false(h_sg(h, "sg-1").complete);
    h_confirm(h, 1, &b);
    cpns_sg_info si = h_sg(h, "sg-1");
    assert_true(si.complete);
    assert_int_equal(si.n_delivered, 2);
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.deliveries_delivered, 2);
    assert_int_equal(st.returns[1], 2);
    assert_int_equal(st.latency_count, 2);
    assert_int_equal(st.latency_buckets[2], 2); /* 40 ms: the (25, 50] bucket */
    /* No member timer is left: the next expiry is the registration nonces' (600 s). */
    assert_int_equal(cpns_server_get_expiry(h->s), H_T0 + 600 * 1000);
}

/* 7.8.6.3-4: a retryable Return schedules the next attempt after the current delay. */
static void check_retryable(harness *h, uint32_t Return)
{
    cpns_msg req, again;
    one_member(h, &req);
    h->now += 100;
    assert_int_equal(h_answer(h, 1, &req, Return, NULL, "pn-home"), 0);
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_PENDING);
    assert_int_equal(mi.attempts, 1);
    assert_int_equal(mi.Return, Return == 1 ? 0 : (int)Return);
    assert_int_equal(h_pop(h, NULL, &again), 0); /* not before the delay */
    assert_int_equal(cpns_server_get_expiry(h->s), h->now + 1000);
    h->now += 1000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    assert_int_equal(h_pop(h, NULL, &again), 1);
    assert_true(again.TransactionID != req.TransactionID);
    uint8_t GK1[CPNS_KEY_LEN], GK2[CPNS_KEY_LEN];
    h_unwrap(&req, GK1);
    h_unwrap(&again, GK2);
    assert_memory_equal(GK1, GK2, CPNS_KEY_LEN); /* same key */
    assert_int_equal(h_member(h, "sg-1", "pne-a").attempts, 2);
    h_confirm(h, 1, &again);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
}

static void test_7_8_6_3_4_return_0_retried(void **state)
{
    check_retryable(*state, 0);
}

static void test_7_8_6_3_4_return_3_retried(void **state)
{
    check_retryable(*state, 3);
}

static void test_7_8_6_3_4_return_5_retried(void **state)
{
    check_retryable(*state, 5);
}

static void test_7_8_6_3_4_return_9_as_0(void **state)
{
    check_retryable(*state, 9);
}

/* 7.8.6.3-4: Return 1 whose KeyConfirmation does not verify is a Return 0. */
static void test_7_8_6_3_4_return_1_bad_key_confirmation(void **state)
{
    check_retryable(*state, 1);
}

/* 7.8.6.3-4: Return 4 is retried once; the second Return 4 fails the member. */
static void test_7_8_6_3_4_return_4_twice_fails(void **state)
{
    harness *h = *state;
    cpns_msg req, again;
    one_member(h, &req);
    assert_int_equal(h_answer(h, 1, &req, 4, NULL, "pn-home"), 0);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_PENDING);
    h->now += 1000;
    cpns_server_handle_expiry(h->s, h->now);
    assert_int_equal(h_pop(h, NULL, &again), 1);
    assert_int_equal(h_answer(h, 1, &again, 4, NULL, "pn-home"), 0);
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_FAILED);
    assert_int_equal(mi.Return, 4);
    /* ...and a registration does not revive it (PROTOCOL.md 5.3 catch-up, #10.1). */
    assert_int_equal(h_register(h, 1, "pne-a"), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_FAILED);
    assert_int_equal(h_pop(h, NULL, &again), 0);
}

/*
 * 7.8.6.3-4: Return 2 fails the member, with no retry of its own (timers
 * change nothing); pne_set_key retries with fresh attempts.
 */
static void test_7_8_6_3_4_return_2_until_reprovisioned(void **state)
{
    harness *h = *state;
    cpns_msg req, again;
    one_member(h, &req);
    assert_int_equal(h_answer(h, 1, &req, 2, NULL, "pn-home"), 0);
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_FAILED);
    assert_int_equal(mi.Return, 2);
    h->now += 600000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_FAILED);
    assert_int_equal(h_pop(h, NULL, &again), 0);

    uint8_t EUK2[CPNS_KEY_LEN], GK[CPNS_KEY_LEN];
    h_euk("pne-a-second-key", EUK2);
    assert_int_equal(cpns_server_pne_set_key(h->s, "pne-a", EUK2, h->now), 0);
    mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_PENDING);
    assert_int_equal(mi.attempts, 0);
    assert_int_equal(h_pop(h, NULL, &again), 1);
    h_unwrap_with(&again, EUK2, GK); /* wrapped under the new EUK */
    assert_int_equal(h_answer(h, 1, &again, 1, GK, "pn-home"), 0);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
}

/* 7.8.6.3-4: Return 6 makes the PNE unreachable; its registration resends. */
static void test_7_8_6_3_4_return_6_waits_for_registration(void **state)
{
    harness *h = *state;
    cpns_msg req, again;
    one_member(h, &req);
    assert_int_equal(h_answer(h, 1, &req, 6, NULL, "pn-gw"), 0);
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_PENDING);
    cpns_pne_info pi;
    assert_int_equal(cpns_server_pne_get(h->s, "pne-a", &pi), 0);
    assert_false(pi.reachable);
    h->now += 100000;
    cpns_server_handle_expiry(h->s, h->now);
    assert_int_equal(h_pop(h, NULL, &again), 0);
    assert_int_equal(h_register(h, 1, "pne-a"), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_pop(h, NULL, &again), 1);
    assert_int_equal(h_member(h, "sg-1", "pne-a").attempts, 1); /* catch-up: fresh count */
    h_confirm(h, 1, &again);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
}

static void count_warn(void *arg, const cpns_log_event *ev)
{
    if (ev->level == CPNS_LOG_WARN && ev->PNEID && strcmp(ev->PNEID, "pne-a") == 0 &&
        strstr(ev->text, "replay"))
        ++*(int *)arg;
    test_log(NULL, ev);
}

/* 7.8.6.3-4: Return 7 fails the member and is logged at WARN as a possible replay. */
static void test_7_8_6_3_4_return_7_fails_with_warning(void **state)
{
    harness *h = *state;
    int warnings = 0;
    cpns_server_free(h->s);
    h->cfg.log = count_warn;
    h->cfg.log_arg = &warnings;
    h_start(h);
    cpns_msg req, again;
    one_member(h, &req);
    assert_int_equal(h_answer(h, 1, &req, 7, NULL, "pn-home"), 0);
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_FAILED);
    assert_int_equal(mi.Return, 7);
    assert_int_equal(warnings, 1);
    h->now += 600000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_FAILED);
    assert_int_equal(h_pop(h, NULL, &again), 0);
}

/*
 * PROTOCOL.md 5.3 catch-up, finding #10.1 (7.8.6.3-4): a Return 2 or 7 carries
 * no KeyConfirmation, so anyone on the path can forge one. A member it failed
 * gets one fresh round (attempt count reset, sent at once, same KeyVersion and
 * Group Key) each time its PNE registers successfully; a round that fails the
 * same way leaves it failed until the next registration.
 * Hostile input: a forged Return 2/7 -> the member fails only until its PNE
 * next registers, then the key is delivered.
 */
static void check_forged_failure_then_registration(harness *h, uint32_t Return)
{
    cpns_msg req, again;
    uint8_t GK[CPNS_KEY_LEN], GK2[CPNS_KEY_LEN];
    one_member(h, &req);
    h_unwrap(&req, GK);
    assert_int_equal(h_answer(h, 1, &req, Return, NULL, "pn-home"), 0); /* forged on the path */
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_FAILED);
    assert_int_equal(h_pop(h, NULL, &again), 0);

    assert_int_equal(h_register(h, 1, "pne-a"), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_pop(h, NULL, &again), 1);
    assert_int_equal(again.KeyVersion, req.KeyVersion);
    h_unwrap(&again, GK2);
    assert_memory_equal(GK, GK2, CPNS_KEY_LEN);
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_SENT);
    assert_int_equal(mi.attempts, 1);

    /* The fresh round fails the same way: failed again, not retried by itself. */
    assert_int_equal(h_answer(h, 1, &again, Return, NULL, "pn-home"), 0);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_FAILED);
    h->now += 600000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    assert_int_equal(h_pop(h, NULL, &again), 0);

    /* The next successful registration gives another round, which delivers. */
    assert_int_equal(h_register(h, 1, "pne-a"), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_pop(h, NULL, &again), 1);
    assert_int_equal(again.KeyVersion, req.KeyVersion);
    h_confirm(h, 1, &again);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
    assert_true(h_sg(h, "sg-1").complete);
}

static void test_catch_up_after_forged_return_2(void **state)
{
    check_forged_failure_then_registration(*state, CPNS_RETURN_DECRYPT);
}

static void test_catch_up_after_forged_return_7(void **state)
{
    check_forged_failure_then_registration(*state, CPNS_RETURN_STALE);
}

/* A refused registration (bad Proof) proves nothing: the member stays failed. */
static void test_no_catch_up_after_refused_registration(void **state)
{
    harness *h = *state;
    cpns_msg req, again, m;
    one_member(h, &req);
    assert_int_equal(h_answer(h, 1, &req, CPNS_RETURN_DECRYPT, NULL, "pn-home"), 0);
    uint8_t wrong[CPNS_KEY_LEN];
    h_euk("not-pne-a", wrong);
    h_reg_msg(h, &m, "pne-a", wrong, h->now / 1000);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_FAILED);
    assert_int_equal(h_pop(h, NULL, &again), 0);
}

/* Attempt n waits timeout * 2^(n-1), capped; after max_attempts the member fails. */
static void test_timeouts_backoff_cap_and_failure(void **state)
{
    harness *h = *state;
    cpns_msg req;
    one_member(h, &req);
    const int64_t waits[] = {1000, 2000, 3000, 3000}; /* the cap is 3000 */
    uint64_t tids[4];
    tids[0] = req.TransactionID;
    for (int n = 0; n < 4; n++) {
        assert_int_equal(cpns_server_get_expiry(h->s), h->now + waits[n]);
        h->now += waits[n] - 1;
        cpns_server_handle_expiry(h->s, h->now);
        assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_SENT);
        h->now += 1;
        cpns_server_handle_expiry(h->s, h->now);
        if (n == 3)
            break;
        assert_int_equal(h_pop(h, NULL, &req), 1);
        tids[n + 1] = req.TransactionID;
        assert_int_equal(h_member(h, "sg-1", "pne-a").attempts, n + 2);
    }
    for (int i = 1; i < 4; i++)
        assert_true(tids[i] != tids[i - 1]);
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_FAILED);
    assert_int_equal(mi.attempts, 4);
    assert_int_equal(mi.Return, -1);
    assert_int_equal(h_pop(h, NULL, &req), 0);
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.timeouts, 4);
    assert_int_equal(st.deliveries_sent, 4);
    assert_int_equal(st.deliveries_failed, 1);
    /* Catch-up: a registration resends a member failed by timeout with a fresh count. */
    assert_int_equal(h_register(h, 1, "pne-a"), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_pop(h, NULL, &req), 1);
    mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_SENT);
    assert_int_equal(mi.attempts, 1);
    h_confirm(h, 1, &req);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
}

/* Retryable Returns also end at max_attempts, failed with that Return. */
static void test_retryable_return_exhausts_attempts(void **state)
{
    harness *h = *state;
    cpns_msg req;
    one_member(h, &req);
    for (int n = 1; n <= 4; n++) {
        assert_int_equal(h_answer(h, 1, &req, 3, NULL, "pn-home"), 0);
        if (n == 4)
            break;
        h->now += 5000;
        cpns_server_handle_expiry(h->s, h->now);
        assert_int_equal(h_pop(h, NULL, &req), 1);
    }
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_FAILED);
    assert_int_equal(mi.Return, 3);
    assert_int_equal(mi.attempts, 4);
}

/* A response to an earlier attempt of the same delivery counts. */
static void test_response_to_earlier_attempt_counts(void **state)
{
    harness *h = *state;
    cpns_msg first, second;
    one_member(h, &first);
    h->now += 1000;
    cpns_server_handle_expiry(h->s, h->now);
    assert_int_equal(h_pop(h, NULL, &second), 1);
    assert_true(second.TransactionID != first.TransactionID);
    h_confirm(h, 1, &first);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
    /* The later attempt's response finds nothing left to do. */
    h_confirm(h, 1, &second);
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.deliveries_delivered, 1);
    assert_int_equal(st.returns[1], 1);
}

/* A response from another connection than the attempt's GW, or with wrong echoes, is ignored. */
static void test_response_from_wrong_conn_or_mismatch_ignored(void **state)
{
    harness *h = *state;
    cpns_msg req;
    one_member(h, &req);
    assert_int_equal(h_gw(h, 2, "gw-2", "pn-office", NULL), CPNS_RETURN_SUCCESS);
    h_confirm(h, 2, &req);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_SENT);
    uint8_t GK[CPNS_KEY_LEN];
    h_unwrap(&req, GK);
    cpns_msg wrong = req;
    strcpy(wrong.SGID, "sg-other");
    assert_int_equal(h_answer(h, 1, &wrong, 1, GK, "pn-home"), 0);
    wrong = req;
    strcpy(wrong.PNEID, "pne-b");
    assert_int_equal(h_answer(h, 1, &wrong, 1, GK, "pn-home"), 0);
    wrong = req;
    wrong.KeyVersion = 2;
    assert_int_equal(h_answer(h, 1, &wrong, 0, NULL, "pn-home"), 0);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_SENT);
    h_confirm(h, 1, &req);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
}

/* A response for a KeyVersion that is no longer current is ignored. */
static void test_response_for_old_key_version_ignored(void **state)
{
    harness *h = *state;
    cpns_msg v1, v2;
    one_member(h, &v1);
    assert_int_equal(cpns_server_sg_rekey(h->s, "sg-1", h->now), 0);
    assert_int_equal(h_pop(h, NULL, &v2), 1);
    assert_int_equal(v2.KeyVersion, 2);
    h_confirm(h, 1, &v1);
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_SENT);
    assert_int_equal(mi.KeyVersion, 2);
    h_confirm(h, 1, &v2);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
}

/* Catch-up resends a `sent` member at once with a fresh attempt count. */
static void test_catch_up_resends_sent_member(void **state)
{
    harness *h = *state;
    cpns_msg req, again;
    one_member(h, &req);
    h->now += 1000;
    cpns_server_handle_expiry(h->s, h->now);
    assert_int_equal(h_pop(h, NULL, &again), 1);
    assert_int_equal(h_member(h, "sg-1", "pne-a").attempts, 2);
    assert_int_equal(h_register(h, 1, "pne-a"), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_pop(h, NULL, &again), 1);
    assert_int_equal(h_member(h, "sg-1", "pne-a").attempts, 1);
    assert_int_equal(cpns_server_get_expiry(h->s), h->now + 1000);
}

static void count_debug(void *arg, const cpns_log_event *ev)
{
    if (ev->level == CPNS_LOG_DEBUG)
        ++*(int *)arg;
}

/* The debug lines (one per member transition) can be turned on while the server runs (SIGHUP). */
static void test_set_log_debug(void **state)
{
    harness *h = *state;
    int debug = 0;
    cpns_server_free(h->s);
    h->cfg.log = count_debug;
    h->cfg.log_arg = &debug;
    h->cfg.log_debug = false;
    h_start(h);
    cpns_msg req;
    one_member(h, &req); /* pending -> sent, not logged */
    assert_int_equal(debug, 0);
    cpns_server_set_log_debug(h->s, true);
    h_confirm(h, 1, &req); /* sent -> delivered */
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
    assert_true(debug >= 1);
    cpns_server_set_log_debug(NULL, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_log_debug, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_2_and_3_request_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_5_return_1_finishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_4_return_0_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_4_return_3_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_4_return_5_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_4_return_9_as_0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_4_return_1_bad_key_confirmation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_4_return_4_twice_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_4_return_2_until_reprovisioned, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_4_return_6_waits_for_registration, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_4_return_7_fails_with_warning, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timeouts_backoff_cap_and_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retryable_return_exhausts_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_to_earlier_attempt_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_from_wrong_conn_or_mismatch_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_response_for_old_key_version_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_resends_sent_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_after_forged_return_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_after_forged_return_7, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_catch_up_after_refused_registration, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
