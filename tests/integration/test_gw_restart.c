/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PN GW goes away and comes back: an SG created while the GW is down
 * completes once it is up again, because the PNEs reconnect and register
 * through it (PROTOCOL.md 5.2) and the server catches their members up (5.3).
 */
#include <string.h>

#include "cluster.h"

#define SGID "sg-gw"

static void test_gw_restart(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, NULL);
    cl_pne a = {0}, b = {0};
    cl_pne_provision(h, &s, &a, "pne-a");
    cl_pne_provision(h, &s, &b, "pne-b");
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    cl_pne_start(h, &a, &g);
    cl_pne_start(h, &b, &g);
    cl_wait_registered(h, &s, "pne-a", 30000);
    cl_wait_registered(h, &s, "pne-b", 30000);

    cl_stop_clean(g.p);
    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-a", "pne-b", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 2, NULL), 1);

    /* The PNEs outlive their GW: they keep trying to reconnect. */
    assert_true(h_running(a.p));
    assert_true(h_running(b.p));

    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    assert_int_equal(cl_sg_wait(h, &s, SGID, 90, NULL), 0);

    json_t *sg = cl_sg_json(h, &s, SGID);
    assert_int_equal(json_integer_value(json_object_get(sg, "key_version")), 1);
    json_decref(sg);
    char fp_a[17], fp_b[17];
    unsigned v_a = 0, v_b = 0;
    cl_pne_fingerprint(h, &a, SGID, fp_a, &v_a);
    cl_pne_fingerprint(h, &b, SGID, fp_b, &v_b);
    assert_string_equal(fp_a, fp_b);
    assert_int_equal(v_a, 1);
    assert_int_equal(v_b, 1);

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
        cmocka_unit_test_setup_teardown(test_gw_restart, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
