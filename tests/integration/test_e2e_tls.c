/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The whole system as an operator runs it: cpns-server and one cpns-gw over
 * mutually authenticated TLS, three cpns-pne behind the GW with keys
 * provisioned by `cpnsctl pne add --key-out`, a Service Group created and
 * waited for with cpnsctl, then the members use the Group Key they received.
 */
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define N_PNE 3
#define SGID "sg-family"
#define PNID "pn-home"

static void check_pne_list(harness *h, const cl_server *s)
{
    h_out o = cl_ctl(h, s, "--json", "pne", "list", NULL);
    assert_int_equal(o.status, 0);
    json_t *list = json_loads(o.out, 0, NULL);
    assert_non_null(list);
    assert_int_equal(json_array_size(list), N_PNE);
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        assert_true(json_is_true(json_object_get(p, "registered")));
        assert_string_equal(json_string_value(json_object_get(p, "pngwid")), "gw-1");
        assert_string_equal(json_string_value(json_object_get(p, "pnid")), PNID);
    }
    json_decref(list);
    h_out_free(&o);

    o = cl_ctl(h, s, "pne", "list", NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "PNEID"));
    assert_non_null(strstr(o.out, "pne-2"));
    h_out_free(&o);
}

/* 7.8.6.3-1, 7.8.6.3-5, 7.8.6.1-4, 7.8.6.1-5 as seen from outside: every member delivered, Return
 * 1, PNID of its GW. */
static void check_sg_complete(harness *h, const cl_server *s, char server_fp[17])
{
    json_t *sg = cl_sg_json(h, s, SGID);
    assert_string_equal(json_string_value(json_object_get(sg, "sgid")), SGID);
    assert_int_equal(json_integer_value(json_object_get(sg, "key_version")), 1);
    assert_string_equal(json_string_value(json_object_get(sg, "state")), "complete");
    assert_int_equal(json_array_size(json_object_get(sg, "members")), N_PNE);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(sg, "members"), i, m)
    {
        assert_string_equal(json_string_value(json_object_get(m, "state")), "delivered");
        assert_int_equal(json_integer_value(json_object_get(m, "return")), 1);
        assert_string_equal(json_string_value(json_object_get(m, "pnid")), PNID);
        assert_int_equal(json_integer_value(json_object_get(m, "key_version")), 1);
        assert_true(json_integer_value(json_object_get(m, "attempts")) >= 1);
    }
    /* key_fingerprint is the server's addition to the documented SG object; compared when present.
     */
    const char *fp = json_string_value(json_object_get(sg, "key_fingerprint"));
    snprintf(server_fp, 17, "%s", fp ? fp : "");
    json_decref(sg);

    h_out o = cl_ctl(h, s, "sg", "show", SGID, NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, SGID));
    assert_non_null(strstr(o.out, "complete"));
    assert_non_null(strstr(o.out, "delivered"));
    assert_non_null(strstr(o.out, PNID));
    h_out_free(&o);
}

static void test_e2e_tls(void **state)
{
    harness *h = *state;
    cl_pki(h, "gw-1", NULL);
    cl_server s = {0};
    cl_server_start(h, &s, true, NULL);
    assert_int_equal(h_file_mode(s.master_key), 0600);

    static const char *const ids[N_PNE] = {"pne-1", "pne-2", "pne-3"};
    cl_pne pne[N_PNE] = {{0}};
    for (int i = 0; i < N_PNE; i++)
        cl_pne_provision(h, &s, &pne[i], ids[i]);

    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", PNID);
    for (int i = 0; i < N_PNE; i++)
        cl_pne_start(h, &pne[i], &g);
    for (int i = 0; i < N_PNE; i++)
        cl_wait_registered(h, &s, ids[i], 30000);
    check_pne_list(h, &s);

    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-1", "pne-2", "pne-3", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 30, NULL), 0);

    char server_fp[17];
    check_sg_complete(h, &s, server_fp);

    /* Every PNE holds the same key (7.8.6.1-2), version 1. */
    char fp[N_PNE][17];
    for (int i = 0; i < N_PNE; i++) {
        unsigned version = 0;
        cl_pne_fingerprint(h, &pne[i], SGID, fp[i], &version);
        assert_int_equal(version, 1);
        assert_string_equal(fp[i], fp[0]);
    }
    if (server_fp[0])
        assert_string_equal(server_fp, fp[0]);

    /* The key works: sealed on one PNE, opened on the others. */
    h_out sealed = h_run(h, "hello group", CL_CTL_MS, "cpns-pne", "seal", "--store", pne[0].store,
                         "--key-file", pne[0].key_file, "--sg", SGID, NULL);
    assert_int_equal(sealed.status, 0);
    for (int i = 1; i < N_PNE; i++) {
        o = h_run(h, sealed.out, CL_CTL_MS, "cpns-pne", "open", "--store", pne[i].store,
                  "--key-file", pne[i].key_file, "--sg", SGID, NULL);
        assert_int_equal(o.status, 0);
        assert_int_equal(strncmp(o.out, "hello group", 11), 0);
        h_out_free(&o);
    }
    /* A tampered message does not open (AES-GCM tag). */
    char *tampered = h_fmt(h, "%s", sealed.out);
    size_t mid = strlen(tampered) / 2;
    tampered[mid] = tampered[mid] == 'A' ? 'B' : 'A';
    o = h_run(h, tampered, CL_CTL_MS, "cpns-pne", "open", "--store", pne[1].store, "--key-file",
              pne[1].key_file, "--sg", SGID, NULL);
    assert_int_not_equal(o.status, 0);
    assert_null(strstr(o.out, "hello group"));
    h_out_free(&o);
    /* ... and only for its group. */
    o = h_run(h, sealed.out, CL_CTL_MS, "cpns-pne", "open", "--store", pne[1].store, "--key-file",
              pne[1].key_file, "--sg", "sg-other", NULL);
    assert_int_not_equal(o.status, 0);
    h_out_free(&o);
    h_out_free(&sealed);

    for (int i = 0; i < N_PNE; i++)
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
        cmocka_unit_test_setup_teardown(test_e2e_tls, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
