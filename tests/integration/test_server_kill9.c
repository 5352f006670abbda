/*
 * The server crashes (SIGKILL) with deliveries outstanding and restarts on
 * the same database and master key (PROTOCOL.md 5.3: state survives a
 * restart; nothing is delivered twice under a different key). The members
 * delivered before the crash and those delivered after it hold the same key
 * and version.
 */
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define SGID "sg-crash"

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

    h_kill9(s.p);
    cl_server_start(h, &s, false, NULL);

    /* The restarted server remembers the SG, its version and what was delivered. */
    char fp_after[17];
    assert_int_equal(sg_version(h, &s, fp_after), version);
    assert_string_equal(fp_after, fp_before);
    json_t *sg = cl_sg_json(h, &s, SGID);
    assert_string_equal(json_string_value(json_object_get(cl_member(sg, "pne-1"), "state")),
                        "delivered");
    assert_string_equal(json_string_value(json_object_get(cl_member(sg, "pne-2"), "state")),
                        "delivered");
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

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_partly_delivered, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_kill9_nothing_delivered, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
