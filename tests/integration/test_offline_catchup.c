/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Catch-up (PROTOCOL.md 5.3): a member whose PNE is offline when the Service
 * Group is created gets its key as soon as the PNE registers; the SG is
 * complete only then. Its key is the one the others received.
 */
#include <string.h>

#include "cluster.h"

#define SGID "sg-catchup"

static void test_offline_catchup(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, NULL);
    cl_pne on = {0}, off = {0};
    cl_pne_provision(h, &s, &on, "pne-on");
    cl_pne_provision(h, &s, &off, "pne-off");
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    cl_pne_start(h, &on, &g);
    cl_wait_registered(h, &s, "pne-on", 30000);

    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-on", "pne-off", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);

    char *err = NULL;
    assert_int_equal(cl_sg_wait(h, &s, SGID, 2, &err), 1);
    assert_non_null(strstr(err, "pne-off"));
    assert_null(strstr(err, "pne-on"));

    json_t *sg = cl_sg_json(h, &s, SGID);
    assert_string_equal(json_string_value(json_object_get(sg, "state")), "distributing");
    assert_string_not_equal(json_string_value(json_object_get(cl_member(sg, "pne-off"), "state")),
                            "delivered");
    json_decref(sg);

    cl_pne_start(h, &off, &g);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 60, NULL), 0);

    sg = cl_sg_json(h, &s, SGID);
    json_t *m = cl_member(sg, "pne-off");
    assert_string_equal(json_string_value(json_object_get(m, "state")), "delivered");
    assert_int_equal(json_integer_value(json_object_get(m, "return")), 1);
    assert_string_equal(json_string_value(json_object_get(m, "pnid")), "pn-1");
    assert_int_equal(json_integer_value(json_object_get(sg, "key_version")), 1);
    json_decref(sg);

    char fp_on[17], fp_off[17];
    unsigned v_on = 0, v_off = 0;
    cl_pne_fingerprint(h, &on, SGID, fp_on, &v_on);
    cl_pne_fingerprint(h, &off, SGID, fp_off, &v_off);
    assert_string_equal(fp_on, fp_off);
    assert_int_equal(v_on, 1);
    assert_int_equal(v_off, 1);

    cl_stop_clean(on.p);
    cl_stop_clean(off.p);
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
        cmocka_unit_test_setup_teardown(test_offline_catchup, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
