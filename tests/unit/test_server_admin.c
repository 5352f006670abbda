/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/server_admin.c: provisioning, SG create/update/rekey/delete
 * and the sorted queries. A removal rekeys the rest (the removed member gets
 * nothing), an addition gets the current key, a rekey sends a new version.
 * A refused call names its culprit (cpns_server_last_error).
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

static const char *const THREE[] = {"pne-c", "pne-a", "pne-b"};

/* Pops every frame, confirms each, and returns how many there were; GK gets the key. */
static int deliver_all(harness *h, uint8_t GK[CPNS_KEY_LEN], uint32_t version, char seen[][16])
{
    cpns_msg req;
    int n = 0;
    while (h_pop(h, NULL, &req) == 1) {
        assert_int_equal(req.KeyVersion, version);
        h_unwrap(&req, GK);
        h_confirm(h, 1, &req);
        if (seen)
            strcpy(seen[n], req.PNEID);
        n++;
    }
    return n;
}

static void test_pne_add_errors_and_queries(void **state)
{
    harness *h = *state;
    uint8_t EUK[CPNS_KEY_LEN] = {1};
    assert_int_equal(cpns_server_pne_add(h->s, "pne-b", EUK), 0);
    assert_int_equal(cpns_server_pne_add(h->s, "pne-b", EUK), CPNS_ERR_EXISTS);
    assert_int_equal(cpns_server_pne_add(h->s, "bad id", EUK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_server_pne_add(h->s, "pne-a", EUK), 0);
    cpns_pne_info pi;
    assert_int_equal(cpns_server_pne_get(h->s, "pne-x", &pi), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_server_pne_get(h->s, "pne-a", &pi), 0);
    assert_false(pi.registered);
    assert_null(pi.PNGWID);
    assert_int_equal(cpns_server_pne_set_key(h->s, "pne-x", EUK, h->now), CPNS_ERR_NOT_FOUND);
    /* Provisioning is committed at once; a failing store provisions nothing. */
    cpns_store_mem_fail_writes(h->st, 1);
    assert_int_equal(cpns_server_pne_add(h->s, "pne-c", EUK), CPNS_ERR_STORE);
    assert_int_equal(cpns_server_pne_get(h->s, "pne-c", &pi), CPNS_ERR_NOT_FOUND);
    h_crash_restart(h);
    assert_int_equal(cpns_server_pne_get(h->s, "pne-a", &pi), 0);
    assert_int_equal(cpns_server_pne_get(h->s, "pne-c", &pi), CPNS_ERR_NOT_FOUND);
}

static int collect_pne(void *arg, const cpns_pne_info *p)
{
    char(*out)[16] = arg;
    for (int i = 0;; i++)
        if (!out[i][0]) {
            strcpy(out[i], p->PNEID);
            return 0;
        }
}

static int collect_sg(void *arg, const cpns_sg_info *sg)
{
    char(*out)[16] = arg;
    for (int i = 0;; i++)
        if (!out[i][0]) {
            strcpy(out[i], sg->SGID);
            return 0;
        }
}

static int collect_member(void *arg, const cpns_member_info *m)
{
    char(*out)[16] = arg;
    for (int i = 0;; i++)
        if (!out[i][0]) {
            strcpy(out[i], m->PNEID);
            return 0;
        }
}

static int stop_at_first(void *arg, const cpns_sg_info *sg)
{
    ++*(int *)arg;
    return 42;
}

static void test_queries_are_sorted(void **state)
{
    harness *h = *state;
    h_world(h, THREE, 3);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-2", THREE, 3, h->now), 0);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", THREE + 1, 1, h->now), 0);
    char out[8][16];
    memset(out, 0, sizeof out);
    assert_int_equal(cpns_server_pne_foreach(h->s, collect_pne, out), 0);
    assert_string_equal(out[0], "pne-a");
    assert_string_equal(out[1], "pne-b");
    assert_string_equal(out[2], "pne-c");
    memset(out, 0, sizeof out);
    assert_int_equal(cpns_server_sg_foreach(h->s, collect_sg, out), 0);
    assert_string_equal(out[0], "sg-1");
    assert_string_equal(out[1], "sg-2");
    memset(out, 0, sizeof out);
    assert_int_equal(cpns_server_sg_members(h->s, "sg-2", collect_member, out), 0);
    assert_string_equal(out[0], "pne-a");
    assert_string_equal(out[2], "pne-c");
    assert_int_equal(cpns_server_sg_members(h->s, "sg-x", collect_member, out), CPNS_ERR_NOT_FOUND);
    int calls = 0;
    assert_int_equal(cpns_server_sg_foreach(h->s, stop_at_first, &calls), 42);
    assert_int_equal(calls, 1);
}

static void test_sg_create_errors(void **state)
{
    harness *h = *state;
    h_world(h, THREE, 3);
    static const char *const dup[] = {"pne-a", "pne-a"};
    static const char *const unknown[] = {"pne-a", "pne-zz"};
    static const char *const bad[] = {"pne a"};
    assert_int_equal(cpns_server_sg_create(h->s, "bad sg", THREE, 3, h->now), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", dup, 2, h->now), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", bad, 1, h->now), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", unknown, 2, h->now), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", THREE, 3, h->now), 0);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", THREE, 3, h->now), CPNS_ERR_EXISTS);
    /* An empty SG has a key and is trivially complete. */
    assert_int_equal(cpns_server_sg_create(h->s, "sg-empty", NULL, 0, h->now), 0);
    cpns_sg_info si = h_sg(h, "sg-empty");
    assert_int_equal(si.KeyVersion, 1);
    assert_true(si.complete);
}

/* A removal rekeys the remaining members to version 2; the removed one gets nothing. */
static void test_removal_rekeys_and_removed_gets_nothing(void **state)
{
    harness *h = *state;
    h_world(h, THREE, 3);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", THREE, 3, h->now), 0);
    uint8_t GK1[CPNS_KEY_LEN], GK2[CPNS_KEY_LEN];
    assert_int_equal(deliver_all(h, GK1, 1, NULL), 3);
    assert_int_equal(cpns_server_flush(h->s), 0);
    static const char *const rm[] = {"pne-b"};
    assert_int_equal(cpns_server_sg_update(h->s, "sg-1", NULL, 0, rm, 1, h->now), 0);
    cpns_sg_info si = h_sg(h, "sg-1");
    assert_int_equal(si.KeyVersion, 2);
    assert_int_equal(si.n_members, 2);
    assert_false(si.complete);
    char seen[4][16];
    memset(seen, 0, sizeof seen);
    assert_int_equal(deliver_all(h, GK2, 2, seen), 2);
    for (int i = 0; i < 2; i++)
        assert_string_not_equal(seen[i], "pne-b");
    assert_memory_not_equal(GK1, GK2, CPNS_KEY_LEN);
    assert_true(h_sg(h, "sg-1").complete);
    assert_int_equal(cpns_server_flush(h->s), 0);
    cpns_store_member row;
    assert_int_equal(cpns_store_mem_get_member(h->st, "sg-1", "pne-b", &row), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_store_mem_get_member(h->st, "sg-1", "pne-a", &row), 0);
    assert_int_equal(row.KeyVersion, 2);
    /* Removing an absent member, or adding a present one, changes nothing. */
    assert_int_equal(cpns_server_sg_update(h->s, "sg-1", NULL, 0, rm, 1, h->now),
                     CPNS_ERR_INVALID_ARG);
    static const char *const add_present[] = {"pne-a"};
    assert_int_equal(cpns_server_sg_update(h->s, "sg-1", add_present, 1, NULL, 0, h->now),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(h_sg(h, "sg-1").KeyVersion, 2);
    assert_int_equal(cpns_server_sg_update(h->s, "sg-x", NULL, 0, rm, 1, h->now),
                     CPNS_ERR_NOT_FOUND);
}

/* An addition delivers the current key version to the new member only. */
static void test_addition_gets_current_key(void **state)
{
    harness *h = *state;
    h_world(h, THREE, 3);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", THREE, 2, h->now), 0);
    uint8_t GK1[CPNS_KEY_LEN], GK[CPNS_KEY_LEN];
    assert_int_equal(deliver_all(h, GK1, 1, NULL), 2);
    static const char *const add[] = {"pne-b"};
    assert_int_equal(cpns_server_sg_update(h->s, "sg-1", add, 1, NULL, 0, h->now), 0);
    char seen[4][16];
    memset(seen, 0, sizeof seen);
    assert_int_equal(deliver_all(h, GK, 1, seen), 1);
    assert_string_equal(seen[0], "pne-b");
    assert_memory_equal(GK, GK1, CPNS_KEY_LEN);
    cpns_sg_info si = h_sg(h, "sg-1");
    assert_int_equal(si.KeyVersion, 1);
    assert_true(si.complete);
    /* The addition is committed with the next batch. */
    cpns_store_member row;
    assert_int_equal(cpns_store_mem_get_member(h->st, "sg-1", "pne-b", &row), 0);
}

static void test_rekey_sends_new_version_to_all(void **state)
{
    harness *h = *state;
    h_world(h, THREE, 3);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", THREE, 3, h->now), 0);
    uint8_t GK1[CPNS_KEY_LEN], GK2[CPNS_KEY_LEN];
    assert_int_equal(deliver_all(h, GK1, 1, NULL), 3);
    char fp1[CPNS_FINGERPRINT_LEN + 1];
    strcpy(fp1, h_sg(h, "sg-1").fingerprint);
    assert_int_equal(cpns_server_sg_rekey(h->s, "sg-1", h->now), 0);
    assert_int_equal(cpns_server_sg_rekey(h->s, "sg-x", h->now), CPNS_ERR_NOT_FOUND);
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_PENDING);
    assert_int_equal(mi.attempts, 0);
    assert_int_equal(mi.KeyVersion, 2);
    assert_int_equal(deliver_all(h, GK2, 2, NULL), 3);
    assert_memory_not_equal(GK1, GK2, CPNS_KEY_LEN);
    assert_string_not_equal(h_sg(h, "sg-1").fingerprint, fp1);
    assert_true(h_sg(h, "sg-1").complete);
}

static void test_delete(void **state)
{
    harness *h = *state;
    h_world(h, THREE, 3);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", THREE, 3, h->now), 0);
    cpns_msg req;
    assert_int_equal(h_pop(h, NULL, &req), 1);
    assert_int_equal(cpns_server_sg_delete(h->s, "sg-1"), 0);
    assert_int_equal(cpns_server_sg_delete(h->s, "sg-1"), CPNS_ERR_NOT_FOUND);
    cpns_sg_info si;
    assert_int_equal(cpns_server_sg_get(h->s, "sg-1", &si), CPNS_ERR_NOT_FOUND);
    /* Queued requests are gone; a late response finds nothing. */
    cpns_msg other;
    assert_int_equal(h_pop(h, NULL, &other), 0);
    h_confirm(h, 1, &req);
    assert_int_equal(cpns_server_flush(h->s), 0);
    cpns_store_sg row;
    assert_int_equal(cpns_store_mem_get_sg(h->st, "sg-1", &row), CPNS_ERR_NOT_FOUND);
    /* The SGID can be used again. */
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", THREE, 1, h->now), 0);
    assert_int_equal(h_sg(h, "sg-1").n_members, 1);
}

/* The culprit of the last admin call (cpns_server_last_error), blame after blame. */
static void expect_culprit(harness *h, cpns_server_culprit culprit, const char *id)
{
    cpns_server_error e;
    assert_int_equal(cpns_server_last_error(h->s, &e), 0);
    assert_int_equal(e.culprit, culprit);
    assert_string_equal(e.id, id);
}

static void test_errors_name_the_culprit(void **state)
{
    harness *h = *state;
    h_world(h, THREE, 3);
    uint8_t EUK[CPNS_KEY_LEN] = {1};
    cpns_server_error e;
    assert_int_equal(cpns_server_last_error(NULL, &e), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_server_last_error(h->s, NULL), CPNS_ERR_INVALID_ARG);
    expect_culprit(h, CPNS_CULPRIT_NONE, "");

    assert_int_equal(cpns_server_pne_add(h->s, "pne-a", EUK), CPNS_ERR_EXISTS);
    expect_culprit(h, CPNS_CULPRIT_PNE_EXISTS, "pne-a");
    assert_int_equal(cpns_server_pne_add(h->s, "bad id", EUK), CPNS_ERR_INVALID_ARG);
    expect_culprit(h, CPNS_CULPRIT_ID_INVALID, "bad id");
    assert_int_equal(cpns_server_pne_set_key(h->s, "pne-x", EUK, h->now), CPNS_ERR_NOT_FOUND);
    expect_culprit(h, CPNS_CULPRIT_PNE_UNKNOWN, "pne-x");

    /* Of several unknown PNEIDs, the first in the order given; a twice-listed one. */
    static const char *const unknown[] = {"pne-b", "pne-zz", "pne-a", "pne-yy"};
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", unknown, 4, h->now), CPNS_ERR_NOT_FOUND);
    expect_culprit(h, CPNS_CULPRIT_PNE_UNKNOWN, "pne-zz");
    static const char *const twice[] = {"pne-b", "pne-a", "pne-b"};
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", twice, 3, h->now), CPNS_ERR_INVALID_ARG);
    expect_culprit(h, CPNS_CULPRIT_PNE_TWICE, "pne-b");
    static const char *const one[] = {"pne-a"};
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", one, 1, h->now), 0);
    expect_culprit(h, CPNS_CULPRIT_NONE, "");
    /* An existing SG is named before its members are looked at. */
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", unknown, 4, h->now), CPNS_ERR_EXISTS);
    expect_culprit(h, CPNS_CULPRIT_SG_EXISTS, "sg-1");

    /* Updates: provisioning (additions, then removals), then membership. */
    static const char *const add_bad[] = {"pne-c", "pne-q"};
    static const char *const rm_bad[] = {"pne-r"};
    static const char *const add_member[] = {"pne-c", "pne-a"};
    static const char *const rm_absent[] = {"pne-a", "pne-b"};
    assert_int_equal(cpns_server_sg_update(h->s, "sg-9", one, 1, NULL, 0, h->now),
                     CPNS_ERR_NOT_FOUND);
    expect_culprit(h, CPNS_CULPRIT_SG_UNKNOWN, "sg-9");
    assert_int_equal(cpns_server_sg_update(h->s, "sg-1", add_bad, 2, rm_bad, 1, h->now),
                     CPNS_ERR_NOT_FOUND);
    expect_culprit(h, CPNS_CULPRIT_PNE_UNKNOWN, "pne-q");
    assert_int_equal(cpns_server_sg_update(h->s, "sg-1", add_member, 2, rm_bad, 1, h->now),
                     CPNS_ERR_NOT_FOUND);
    expect_culprit(h, CPNS_CULPRIT_PNE_UNKNOWN, "pne-r");
    assert_int_equal(cpns_server_sg_update(h->s, "sg-1", add_member, 2, rm_absent, 2, h->now),
                     CPNS_ERR_INVALID_ARG);
    expect_culprit(h, CPNS_CULPRIT_PNE_MEMBER, "pne-a");
    assert_int_equal(cpns_server_sg_update(h->s, "sg-1", NULL, 0, rm_absent, 2, h->now),
                     CPNS_ERR_INVALID_ARG);
    expect_culprit(h, CPNS_CULPRIT_PNE_NOT_MEMBER, "pne-b");
    assert_int_equal(h_sg(h, "sg-1").n_members, 1); /* nothing changed */

    assert_int_equal(cpns_server_sg_rekey(h->s, "sg-9", h->now), CPNS_ERR_NOT_FOUND);
    expect_culprit(h, CPNS_CULPRIT_SG_UNKNOWN, "sg-9");
    assert_int_equal(cpns_server_sg_rekey(h->s, "sg-1", h->now), 0);
    expect_culprit(h, CPNS_CULPRIT_NONE, "");
    assert_int_equal(cpns_server_sg_delete(h->s, "sg-9"), CPNS_ERR_NOT_FOUND);
    expect_culprit(h, CPNS_CULPRIT_SG_UNKNOWN, "sg-9");
    /* A failure no identifier explains names none. */
    cpns_store_mem_fail_writes(h->st, 1);
    assert_int_equal(cpns_server_pne_add(h->s, "pne-d", EUK), CPNS_ERR_STORE);
    expect_culprit(h, CPNS_CULPRIT_NONE, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pne_add_errors_and_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queries_are_sorted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sg_create_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal_rekeys_and_removed_gets_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_addition_gets_current_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rekey_sends_new_version_to_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_the_culprit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
