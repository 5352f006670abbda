/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server crashes (SIGKILL) with deliveries outstanding and restarts on
 * the same database and master key (PROTOCOL.md 5.3: state survives a
 * restart; nothing is delivered twice under a different key). The members
 * delivered before the crash and those delivered after it hold the same key
 * and version.
 *
 * What survives is what was committed. Delivery progress is group-committed
 * up to --commit-interval after it happened (README "Durability",
 * INTERPRETATIONS.md 21 and 38), so "delivered" seen on the admin API is not
 * yet durable: a crash in that window makes the server send the delivery
 * again, and the PNE, which holds the key, answers 1 again. The tests say
 * which of the two they check: GET /healthz commits everything the server
 * holds before answering 200, after which the states must survive; a kill
 * inside a wide window must end with the same key everywhere either way.
 * (#10 section 2: the first test used to kill inside the 20 ms window and
 * expect the not yet committed "delivered" to survive; it failed under load.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

#define SGID "sg-crash"

/* Makes the server commit every write it holds: GET /healthz runs a turn that commits. */
static void force_commit(harness *h, const cl_server *s)
{
    char *resp = NULL;
    int status = h_http(s->admin_port, "GET", "/healthz", NULL, NULL, &resp);
    if (status != 200)
        fail_msg("GET /healthz: status %d (%s)", status, resp ? resp : "");
    free(resp);
}

static const char *member_state(json_t *sg, const char *PNEID)
{
    return json_string_value(json_object_get(cl_member(sg, PNEID), "state"));
}

/* Key version and (when the server reports it) fingerprint of the SG. */
static json_int_t sg_version(harness *h, const cl_server *s, char fp[17])
{
    json_t *sg = cl_sg_json(h, s, SGID);
    json_int_t v = json_integer_value(json_object_get(sg, "key_version"));
    const char *f = json_string_value(json_object_get(sg, "key_fingerprint"));
    snprintf(fp, 17, "%s", f ? f : "");
    json_decref(sg);
    return v;
}

/* Two members got the key before the crash, the third only after it. */
static void test_kill9_partly_delivered(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, "--delivery-timeout", "1", NULL);
    cl_pne pne[3] = {{0}};
    cl_pne_provision(h, &s, &pne[0], "pne-1");
    cl_pne_provision(h, &s, &pne[1], "pne-2");
    cl_pne_provision(h, &s, &pne[2], "pne-3");
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    cl_pne_start(h, &pne[0], &g);
    cl_pne_start(h, &pne[1], &g);
    cl_wait_registered(h, &s, "pne-1", 30000);
    cl_wait_registered(h, &s, "pne-2", 30000);

    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-1", "pne-2", "pne-3", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    cl_wait_delivered(h, &s, SGID, "pne-1", 30000);
    cl_wait_delivered(h, &s, SGID, "pne-2", 30000);
    char fp_before[17];
    json_int_t version = sg_version(h, &s, fp_before);
    assert_int_equal(version, 1);
    /* "delivered" as seen above may still be in the commit window: make it durable. */
    force_commit(h, &s);

    h_kill9(s.p);
    cl_server_start(h, &s, false, NULL);

    /* The restarted server remembers the SG, its version and what was delivered. */
    char fp_after[17];
    assert_int_equal(sg_version(h, &s, fp_after), version);
    assert_string_equal(fp_after, fp_before);
    json_t *sg = cl_sg_json(h, &s, SGID);
    assert_string_equal(member_state(sg, "pne-1"), "delivered");
    assert_string_equal(member_state(sg, "pne-2"), "delivered");
    json_decref(sg);

    cl_pne_start(h, &pne[2], &g);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 90, NULL), 0);
    assert_int_equal(sg_version(h, &s, fp_after), version);

    char fp[3][17];
    for (int i = 0; i < 3; i++) {
        unsigned v = 0;
        cl_pne_fingerprint(h, &pne[i], SGID, fp[i], &v);
        assert_int_equal(v, (unsigned)version);
        assert_string_equal(fp[i], fp[0]);
    }
    if (fp_before[0])
        assert_string_equal(fp[0], fp_before);

    for (int i = 0; i < 3; i++)
        cl_stop_clean(pne[i].p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

/* The SG is created while no GW is there, the server dies at once, and completes after the restart.
 */
static void test_kill9_nothing_delivered(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, NULL);
    cl_pne a = {0}, b = {0};
    cl_pne_provision(h, &s, &a, "pne-a");
    cl_pne_provision(h, &s, &b, "pne-b");

    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-a", "pne-b", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    char fp_before[17];
    assert_int_equal(sg_version(h, &s, fp_before), 1);

    h_kill9(s.p);
    cl_server_start(h, &s, false, NULL);

    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    cl_pne_start(h, &a, &g);
    cl_pne_start(h, &b, &g);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 60, NULL), 0);

    char fp_after[17];
    assert_int_equal(sg_version(h, &s, fp_after), 1);
    assert_string_equal(fp_after, fp_before);
    char fp_a[17], fp_b[17];
    unsigned v_a = 0, v_b = 0;
    cl_pne_fingerprint(h, &a, SGID, fp_a, &v_a);
    cl_pne_fingerprint(h, &b, SGID, fp_b, &v_b);
    assert_string_equal(fp_a, fp_b);
    assert_int_equal(v_a, 1);
    assert_int_equal(v_b, 1);
    if (fp_before[0])
        assert_string_equal(fp_a, fp_before);

    cl_stop_clean(a.p);
    cl_stop_clean(b.p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

/*
 * The kill lands inside a wide commit window (--commit-interval 1000): the
 * deliveries seen as done may or may not have been committed. Either way
 * nothing is lost and no other key appears: after the restart each member
 * is delivered, or goes out again and completes with the same key and
 * version (its PNE answers 1 again).
 */
static void test_kill9_in_commit_window(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, "--delivery-timeout", "1", "--commit-interval", "1000", NULL);
    cl_pne pne[2] = {{0}};
    cl_pne_provision(h, &s, &pne[0], "pne-1");
    cl_pne_provision(h, &s, &pne[1], "pne-2");
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    for (int i = 0; i < 2; i++)
        cl_pne_start(h, &pne[i], &g);
    cl_wait_registered(h, &s, "pne-1", 30000);
    cl_wait_registered(h, &s, "pne-2", 30000);

    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-1", "pne-2", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    cl_wait_delivered(h, &s, SGID, "pne-1", 30000);
    cl_wait_delivered(h, &s, SGID, "pne-2", 30000);
    char fp_before[17];
    assert_int_equal(sg_version(h, &s, fp_before), 1);

    h_kill9(s.p);
    cl_server_start(h, &s, false, "--delivery-timeout", "1", NULL);

    /* The new Group Key was committed before it went out: same version and key. */
    char fp_after[17];
    assert_int_equal(sg_version(h, &s, fp_after), 1);
    assert_string_equal(fp_after, fp_before);
    json_t *sg = cl_sg_json(h, &s, SGID);
    for (int i = 0; i < 2; i++) {
        const char *st = member_state(sg, pne[i].PNEID);
        assert_non_null(st);
        h_note(h, "after the restart %s is %s", pne[i].PNEID, st);
        if (strcmp(st, "delivered") != 0 && strcmp(st, "pending") != 0 && strcmp(st, "sent") != 0)
            fail_msg("%s is %s after the restart: want delivered, or pending/sent to go out "
                     "again",
                     pne[i].PNEID, st);
    }
    json_decref(sg);

    assert_int_equal(cl_sg_wait(h, &s, SGID, 90, NULL), 0);
    assert_int_equal(sg_version(h, &s, fp_after), 1);
    for (int i = 0; i < 2; i++) {
        char fp[17];
        unsigned v = 0;
        cl_pne_fingerprint(h, &pne[i], SGID, fp, &v);
        assert_int_equal(v, 1);
        if (fp_before[0])
            assert_string_equal(fp, fp_before);
    }

    for (int i = 0; i < 2; i++)
        cl_stop_clean(pne[i].p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_partly_delivered, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_kill9_nothing_delivered, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_kill9_in_commit_window, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
