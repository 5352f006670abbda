/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A PNE whose secure storage fails (issue #5, item 4) with the real
 * cpns-pne: its key store cannot be written while DIR/groupkeys.tmp is a
 * directory (the store creates that file with O_EXCL before renaming it over
 * DIR/groupkeys). The PNE answers Return 3 (7.8.6.1: the key could not be
 * stored), the other member is unaffected, the server retries, and once the
 * obstacle is gone the retry delivers the same key and version.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"

#define SGID "sg-storage"
#define RETURN_STORAGE 3 /* PROTOCOL.md: the Group Key could not be stored */

/* The member's last Return, or -1 (none yet). */
static json_int_t member_return(harness *h, const cl_server *s, const char *PNEID)
{
    json_t *sg = cl_sg_json(h, s, SGID);
    json_t *r = json_object_get(cl_member(sg, PNEID), "return");
    json_int_t v = json_is_integer(r) ? json_integer_value(r) : -1;
    json_decref(sg);
    return v;
}

/* 7.8.6.1-4: a Group Key that cannot be stored is answered Return 3, and a retry succeeds. */
static void test_7_8_6_1_4_storage_failure_return_3_then_retry(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, "--delivery-timeout", "1", "--max-attempts", "100", NULL);
    cl_pne a = {0}, b = {0};
    cl_pne_provision(h, &s, &a, "pne-a");
    cl_pne_provision(h, &s, &b, "pne-b");
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    cl_pne_start(h, &a, &g);
    cl_pne_start(h, &b, &g);
    cl_wait_registered(h, &s, "pne-a", 30000);
    cl_wait_registered(h, &s, "pne-b", 30000);

    char *obstacle = h_fmt(h, "%s/groupkeys.tmp", a.store);
    assert_int_equal(mkdir(obstacle, 0700), 0);
    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-a", "pne-b", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);

    cl_wait_delivered(h, &s, SGID, "pne-b", 30000);
    json_int_t r = -1;
    for (int i = 0; i < 300 && r != RETURN_STORAGE; i++) {
        r = member_return(h, &s, "pne-a");
        if (r != RETURN_STORAGE)
            nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    assert_int_equal(r, RETURN_STORAGE);
    json_t *sg = cl_sg_json(h, &s, SGID);
    assert_string_equal(json_string_value(json_object_get(cl_member(sg, "pne-a"), "state")),
                        "pending");
    char fp[17];
    snprintf(fp, sizeof fp, "%s", json_string_value(json_object_get(sg, "key_fingerprint")));
    json_decref(sg);
    assert_true(h_file_contains(a.p->log, "Return=3"));

    /* Storage works again: the server's retry delivers the same version and key. */
    assert_int_equal(rmdir(obstacle), 0);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 60, NULL), 0);
    char fp_a[17], fp_b[17];
    unsigned v_a = 0, v_b = 0;
    cl_pne_fingerprint(h, &a, SGID, fp_a, &v_a);
    cl_pne_fingerprint(h, &b, SGID, fp_b, &v_b);
    assert_int_equal(v_a, 1);
    assert_int_equal(v_b, 1);
    assert_string_equal(fp_a, fp);
    assert_string_equal(fp_b, fp);
    sg = cl_sg_json(h, &s, SGID);
    assert_int_equal(json_integer_value(json_object_get(sg, "key_version")), 1);
    assert_true(json_integer_value(json_object_get(cl_member(sg, "pne-a"), "attempts")) >= 2);
    json_decref(sg);

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
        cmocka_unit_test_setup_teardown(test_7_8_6_1_4_storage_failure_return_3_then_retry, h_setup,
                                        h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
