/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Service Group over its life, driven by cpnsctl: members added (they get
 * the current key), removed (the group is rekeyed and the removed PNE does not
 * get the new key), an explicit rekey, the listing, and the deletion
 * (PROTOCOL.md 5.3). A message sealed just before a rekey still opens after
 * it: the PNE keeps the previous key.
 */
#include <string.h>

#include "cluster.h"

#define SGID "sg-life"

static json_int_t key_version(harness *h, const cl_server *s)
{
    json_t *sg = cl_sg_json(h, s, SGID);
    json_int_t v = json_integer_value(json_object_get(sg, "key_version"));
    json_decref(sg);
    return v;
}

static void expect_fingerprints(harness *h, cl_pne *pne, size_t n, unsigned want_version,
                                char fp[17])
{
    for (size_t i = 0; i < n; i++) {
        char f[17];
        unsigned v = 0;
        cl_pne_fingerprint(h, &pne[i], SGID, f, &v);
        assert_int_equal(v, want_version);
        if (i == 0)
            memcpy(fp, f, 17);
        else
            assert_string_equal(f, fp);
    }
}

static h_out seal(harness *h, const cl_pne *n, const char *text)
{
    h_out o = h_run(h, text, CL_CTL_MS, "cpns-pne", "seal", "--store", n->store, "--key-file",
                    n->key_file, "--sg", SGID, NULL);
    assert_int_equal(o.status, 0);
    return o;
}

static int open_status(harness *h, const cl_pne *n, const char *msg, const char *want)
{
    h_out o = h_run(h, msg, CL_CTL_MS, "cpns-pne", "open", "--store", n->store, "--key-file",
                    n->key_file, "--sg", SGID, NULL);
    int status = o.status;
    if (status == 0)
        assert_int_equal(strncmp(o.out, want, strlen(want)), 0);
    h_out_free(&o);
    return status;
}

static void test_sg_lifecycle(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, NULL);
    cl_pne pne[3] = {{0}};
    cl_pne_provision(h, &s, &pne[0], "pne-1");
    cl_pne_provision(h, &s, &pne[1], "pne-2");
    cl_pne_provision(h, &s, &pne[2], "pne-3");
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    for (int i = 0; i < 3; i++)
        cl_pne_start(h, &pne[i], &g);

    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-1", "pne-2", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 30, NULL), 0);

    /* An added member gets the current key: same version, same key. */
    o = cl_ctl(h, &s, "sg", "add", SGID, "pne-3", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 30, NULL), 0);
    assert_int_equal(key_version(h, &s), 1);
    char fp1[17];
    expect_fingerprints(h, pne, 3, 1, fp1);

    /* A removal rekeys the rest; the removed PNE keeps only the old key. */
    o = cl_ctl(h, &s, "sg", "remove", SGID, "pne-1", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 30, NULL), 0);
    assert_int_equal(key_version(h, &s), 2);
    json_t *sg = cl_sg_json(h, &s, SGID);
    assert_null(cl_member(sg, "pne-1"));
    assert_int_equal(json_array_size(json_object_get(sg, "members")), 2);
    json_decref(sg);
    char fp2[17];
    expect_fingerprints(h, pne + 1, 2, 2, fp2);
    assert_string_not_equal(fp2, fp1);
    char old_fp[17];
    unsigned old_version = 0;
    cl_pne_fingerprint(h, &pne[0], SGID, old_fp, &old_version);
    assert_int_equal(old_version, 1);
    assert_string_equal(old_fp, fp1);

    h_out v2 = seal(h, &pne[1], "sealed with version 2");
    assert_int_not_equal(open_status(h, &pne[0], v2.out, ""), 0);

    /* An explicit rekey; a message of the previous version still opens. */
    o = cl_ctl(h, &s, "sg", "rekey", SGID, NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 30, NULL), 0);
    assert_int_equal(key_version(h, &s), 3);
    char fp3[17];
    expect_fingerprints(h, pne + 1, 2, 3, fp3);
    assert_string_not_equal(fp3, fp2);
    assert_int_equal(open_status(h, &pne[2], v2.out, "sealed with version 2"), 0);
    h_out_free(&v2);

    /* The listing, in both forms. */
    o = cl_ctl(h, &s, "--json", "sg", "list", NULL);
    assert_int_equal(o.status, 0);
    json_t *list = json_loads(o.out, 0, NULL);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "sgid")), SGID);
    json_decref(list);
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "list", NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, SGID));
    assert_non_null(strstr(o.out, "complete"));
    h_out_free(&o);

    o = cl_ctl(h, &s, "sg", "delete", SGID, NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "show", SGID, NULL);
    assert_int_equal(o.status, 1);
    h_out_free(&o);
    o = cl_ctl(h, &s, "--json", "sg", "list", NULL);
    assert_int_equal(o.status, 0);
    list = json_loads(o.out, 0, NULL);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    h_out_free(&o);

    for (int i = 0; i < 3; i++)
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
        cmocka_unit_test_setup_teardown(test_sg_lifecycle, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
