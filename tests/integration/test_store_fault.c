/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real cpns-server on a store that fails (issue #5, item 4), through its
 * test hooks CPNS_FAULT_DB_MAX_PAGES (the database is full) and
 * CPNS_FAULT_DB_READ_ONLY (every write fails): the server says so (ERROR in
 * its log, /healthz 503, cpns_store_up 0 in /metrics, 503 on the admin calls
 * whose change cannot be stored), keeps serving what needs no write, and
 * once the fault clears (a restart without the hook) everything it
 * acknowledged is there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"

#define SGID "sg-fault"

/* Server, GW, two PNEs, an SG delivered; the server stopped cleanly. Returns its fingerprint. */
static void world(harness *h, cl_server *s, cl_gw *g, cl_pne pne[2], char fp[17])
{
    cl_server_start(h, s, false, "--delivery-timeout", "1", NULL);
    cl_pne_provision(h, s, &pne[0], "pne-1");
    cl_pne_provision(h, s, &pne[1], "pne-2");
    cl_gw_start(h, g, s, "gw-1", "pn-1");
    cl_pne_start(h, &pne[0], g);
    cl_pne_start(h, &pne[1], g);
    h_out o = cl_ctl(h, s, "sg", "create", SGID, "pne-1", "pne-2", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, s, SGID, 60, NULL), 0);
    json_t *sg = cl_sg_json(h, s, SGID);
    snprintf(fp, 17, "%s", json_string_value(json_object_get(sg, "key_fingerprint")));
    json_decref(sg);
    cl_stop_clean(s->p);
}

/* Restarts the server with one fault hook set in its environment only. */
static void restart_with(harness *h, cl_server *s, const char *var, const char *value)
{
    setenv(var, value, 1);
    cl_server_start(h, s, false, NULL);
    unsetenv(var);
    assert_true(h_file_contains(s->p->log, "TEST HOOK"));
}

/* What a failing store looks like from outside (polled: the failing write may be a moment away). */
static void expect_store_down(harness *h, const cl_server *s, const char *why)
{
    char *body = NULL;
    int status = 0;
    for (int i = 0; i < 300 && status != 503; i++) {
        free(body);
        body = NULL;
        status = h_http(s->admin_port, "GET", "/healthz", NULL, NULL, &body);
        if (status != 503)
            nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    h_note(h, "GET /healthz -> %d %s", status, body ? body : "");
    assert_int_equal(status, 503);
    assert_non_null(body);
    if (!strstr(body, why))
        fail_msg("/healthz body does not say '%s': %s", why, body);
    free(body);
    status = h_http(s->admin_port, "GET", "/metrics", NULL, NULL, &body);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "\ncpns_store_up 0\n"));
    free(body);
    assert_true(h_file_contains(s->p->log, "ERROR"));
}

static void expect_sg(harness *h, const cl_server *s, json_int_t version, const char *fp)
{
    json_t *sg = cl_sg_json(h, s, SGID);
    assert_int_equal(json_integer_value(json_object_get(sg, "key_version")), version);
    if (fp)
        assert_string_equal(json_string_value(json_object_get(sg, "key_fingerprint")), fp);
    json_decref(sg);
}

/* Disk full: provisioning fails with 503 once the file cannot grow; nothing acknowledged is lost.
 */
static void test_disk_full(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_gw g = {0};
    cl_pne pne[2] = {{0}};
    char fp[17];
    world(h, &s, &g, pne, fp);

    restart_with(h, &s, "CPNS_FAULT_DB_MAX_PAGES", "1");
    int ok = 0, status = 201;
    char *body = NULL;
    while (status == 201 && ok < 1000) {
        char req[64];
        snprintf(req, sizeof req, "{\"pneid\":\"fill-%04d\"}", ok);
        free(body);
        body = NULL;
        status = h_http(s.admin_port, "POST", "/v1/pnes", NULL, req, &body);
        if (status == 201)
            ok++;
    }
    h_note(h, "%d PNEs provisioned before: %d %s", ok, status, body ? body : "");
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "full"));
    free(body);
    assert_true(h_file_contains(s.p->log, "ERROR"));
    assert_true(h_file_contains(s.p->log, "database or disk is full"));
    /*
     * Nothing is left pending (the failed PNE was not kept), so the next
     * turn commits nothing and /healthz is 200 again although the disk is
     * still full; writes that fit still work (below, the SG's reads).
     */
    expect_sg(h, &s, 1, fp);
    cl_stop_clean(s.p);

    /* The fault clears: every PNE acknowledged before it is there, the SG unchanged. */
    cl_server_start(h, &s, false, NULL);
    h_out o = cl_ctl(h, &s, "--json", "pne", "list", NULL);
    assert_int_equal(o.status, 0);
    json_t *list = json_loads(o.out, 0, NULL);
    h_out_free(&o);
    assert_int_equal(json_array_size(list), (size_t)ok + 2);
    json_decref(list);
    expect_sg(h, &s, 1, fp);
    char *hb = NULL;
    assert_int_equal(h_http(s.admin_port, "GET", "/healthz", NULL, NULL, &hb), 200);
    free(hb);
    /* And the call that failed now works. */
    o = cl_ctl(h, &s, "pne", "add", h_fmt(h, "fill-%04d", ok), NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);

    cl_stop_clean(pne[0].p);
    cl_stop_clean(pne[1].p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

/*
 * Read-only database: a rekey or a deletion cannot be stored, so neither is
 * acknowledged (503), and no PNE receives the unstored key; after a crash the
 * SG is as it was; once writable again the SG rekeys and completes.
 */
static void test_read_only_rekey(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_gw g = {0};
    cl_pne pne[2] = {{0}};
    char fp[17];
    world(h, &s, &g, pne, fp);

    restart_with(h, &s, "CPNS_FAULT_DB_READ_ONLY", "1");
    expect_sg(h, &s, 1, fp); /* reads work */
    char *body = NULL;
    int status =
        h_http(s.admin_port, "POST", "/v1/service-groups/" SGID "/rekey", NULL, "{}", &body);
    h_note(h, "POST rekey on a read-only store -> %d %s", status, body ? body : "");
    free(body);
    expect_store_down(h, &s, "readonly");
    /* The rekey is not acknowledged (503), and no PNE receives a key that is not stored. */
    char pfp[17];
    unsigned v = 0;
    for (int i = 0; i < 2; i++) {
        cl_pne_fingerprint(h, &pne[i], SGID, pfp, &v);
        assert_int_equal(v, 1);
        assert_string_equal(pfp, fp);
    }
    assert_int_equal(status, 503);
    /* Nor is a deletion that cannot be stored. */
    status = h_http(s.admin_port, "DELETE", "/v1/service-groups/" SGID, NULL, NULL, &body);
    h_note(h, "DELETE on a read-only store -> %d %s", status, body ? body : "");
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "cannot commit"));
    free(body);
    /* A crash during the fault: the unacknowledged rekey and deletion are gone, version 1 is
     * intact. */
    h_kill9(s.p);

    cl_server_start(h, &s, false, NULL);
    expect_sg(h, &s, 1, fp);
    h_out o = cl_ctl(h, &s, "sg", "rekey", SGID, NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 60, NULL), 0);
    expect_sg(h, &s, 2, NULL);

    cl_stop_clean(pne[0].p);
    cl_stop_clean(pne[1].p);
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
        cmocka_unit_test_setup_teardown(test_disk_full, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_read_only_rekey, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
