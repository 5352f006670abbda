/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/pne-minimal.c as a vendor builds it (examples_pkgconfig, this
 * test's fixture: `cc $(pkg-config --cflags --libs cpns)` against an installed
 * tree, run on the installed libcpns.so) against the real programs: cpns-server and cpns-gw
 * over mutually authenticated TLS (a throwaway PKI from scripts/pki.sh), the
 * example as the PNE behind the GW on plain TCP, provisioned with
 * `cpnsctl pne add --key-out`. It registers, receives the Group Key of a new
 * Service Group and of its rekey, and prints fingerprints that are the
 * server's (`cpnsctl sg show`); it exits 0 after -n keys, its store is read
 * by `cpns-pne keys` with the same result, SIGTERM stops it with 0, and a PNE
 * the server does not know is refused with exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"

#define SGID "sg-example"
#define PNID "pn-example"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *example(harness *h)
{
    const char *dir = getenv("CPNS_EXAMPLES_DIR");
    if (!dir)
        fail_msg("CPNS_EXAMPLES_DIR is not set (run through ctest)");
    return h_fmt(h, "%s/pne-minimal", dir);
}

/* Waits until p's output holds needle; fails when p exits first or after timeout_ms. */
static void wait_output(h_proc *p, const char *needle, int timeout_ms)
{
    for (int waited = 0;; waited += 50) {
        if (h_file_contains(p->log, needle))
            return;
        if (!h_running(p) && !h_file_contains(p->log, needle))
            fail_msg("%s exited (status %d) before printing '%s'", p->name, p->status, needle);
        if (waited >= timeout_ms)
            fail_msg("%s did not print '%s' within %d ms", p->name, needle, timeout_ms);
        sleep_ms(50);
    }
}

/* The server's fingerprint of the SG's current key, once every member holds it. */
static char *server_key(harness *h, const cl_server *s, unsigned version)
{
    assert_int_equal(cl_sg_wait(h, s, SGID, 60, NULL), 0);
    json_t *sg = cl_sg_json(h, s, SGID);
    assert_int_equal(json_integer_value(json_object_get(sg, "key_version")), version);
    const char *fp = json_string_value(json_object_get(sg, "key_fingerprint"));
    assert_non_null(fp);
    assert_int_equal(strlen(fp), 16);
    char *line = h_fmt(h, "key %s %u %s\n", SGID, version, fp);
    json_decref(sg);
    return line;
}

static void test_pne_minimal(void **state)
{
    harness *h = *state;
    cl_pki(h, "gw-1", NULL);
    cl_server s = {0};
    cl_server_start(h, &s, true, NULL);
    cl_pne n = {0};
    cl_pne_provision(h, &s, &n, "pne-min");
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", PNID);

    h_proc *p = h_start(h, "pne-minimal", example(h), "-i", n.PNEID, "-g", g.listen, "-k",
                        n.key_file, "-s", n.store, "-n", "2", NULL);
    cl_wait_registered(h, &s, n.PNEID, 30000);
    wait_output(p, "registered " PNID "\n", 30000);

    h_out o = cl_ctl(h, &s, "sg", "create", SGID, n.PNEID, NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    wait_output(p, server_key(h, &s, 1), 30000);
    assert_true(h_running(p)); /* one key of the two it waits for */

    o = cl_ctl(h, &s, "sg", "rekey", SGID, NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    char *line = server_key(h, &s, 2);
    wait_output(p, line, 30000);
    assert_int_equal(h_wait_exit(p, CL_STOP_MS), 0);

    /* Its store is cpns-pne's format: `cpns-pne keys` lists the same key. */
    char fp[17];
    unsigned version = 0;
    cl_pne_fingerprint(h, &n, SGID, fp, &version);
    assert_int_equal(version, 2);
    assert_non_null(strstr(line, fp));

    /* Without -n it runs until a signal, and stops cleanly; reconnecting is no problem. */
    h_proc *q = h_start(h, "pne-minimal-2", example(h), "-i", n.PNEID, "-g", g.listen, "-k",
                        n.key_file, "-s", n.store, NULL);
    wait_output(q, "registered " PNID "\n", 30000);
    assert_int_equal(h_stop(q, CL_STOP_MS), 0);

    /* A PNE the server does not know: refused (Return 9), exit status 1. */
    h_proc *r = h_start(h, "pne-minimal-unknown", example(h), "-i", "pne-unknown", "-g", g.listen,
                        "-k", n.key_file, "-s", h_path(h, "unknown.store"), NULL);
    assert_int_equal(h_wait_exit(r, 30000), 1);
    assert_true(h_file_contains(r->log, "refused this PNE (Return 9)"));

    /* The usage: exit status 2. */
    h_out u = h_run(h, NULL, CL_CTL_MS, example(h), "-i", "pne-min", NULL);
    assert_int_equal(u.status, 2);
    assert_non_null(strstr(u.err, "usage"));
    h_out_free(&u);

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
        cmocka_unit_test_setup_teardown(test_pne_minimal, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
