/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SIGHUP to a running TLS cluster (issue #13 item 5): the server, the GW and
 * the PNEs are sent SIGHUP while a Service Group is being distributed; each
 * logs its reload (the server and the GW re-read their TLS files), keeps
 * running, and the distribution completes. A GW restarted afterwards
 * connects with a TLS session made from the server's reloaded context, and
 * a rekey through it completes too.
 */
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"

#define N_PNE 3
#define SGID "sg-hup"

/* Waits until the file holds needle (the daemons log to files): 1, or 0 after timeout_ms. */
static int wait_file(const char *path, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (h_file_contains(path, needle))
            return 1;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    return 0;
}

static void hup(h_proc *p)
{
    assert_true(p->pid > 0);
    assert_int_equal(kill(p->pid, SIGHUP), 0);
}

static void test_sighup_mid_distribution(void **state)
{
    harness *h = *state;
    cl_pki(h, "gw-1", NULL);
    cl_server s = {0};
    cl_server_start(h, &s, true, NULL);
    static const char *const ids[N_PNE] = {"pne-1", "pne-2", "pne-3"};
    cl_pne pne[N_PNE] = {{0}};
    for (int i = 0; i < N_PNE; i++)
        cl_pne_provision(h, &s, &pne[i], ids[i]);
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-hup");
    for (int i = 0; i < N_PNE; i++)
        cl_pne_start(h, &pne[i], &g);
    for (int i = 0; i < N_PNE; i++)
        cl_wait_registered(h, &s, ids[i], 30000);

    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-1", "pne-2", "pne-3", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    /* The distribution has started: SIGHUP everyone while it runs. */
    hup(s.p);
    hup(g.p);
    for (int i = 0; i < N_PNE; i++)
        hup(pne[i].p);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 30, NULL), 0);

    assert_true(wait_file(s.p->log, "SIGHUP: reloaded the command line", 10000));
    assert_true(wait_file(s.p->log, "in use for new GW connections", 10000));
    assert_true(wait_file(g.p->log, "SIGHUP: reloaded the command line", 10000));
    assert_true(wait_file(g.p->log, "from the next connection to the server", 10000));
    for (int i = 0; i < N_PNE; i++) {
        assert_true(wait_file(pne[i].p->log, "SIGHUP: reloaded", 10000));
        assert_int_equal(kill(pne[i].p->pid, 0), 0);
    }
    assert_int_equal(kill(s.p->pid, 0), 0);
    assert_int_equal(kill(g.p->pid, 0), 0);

    /* A new GW connection after the reload: its handshake uses the reloaded context. */
    cl_stop_clean(g.p);
    h_restart(h, g.p);
    h_wait_port(h, g.p, g.port, CL_START_MS);
    o = cl_ctl(h, &s, "sg", "rekey", SGID, NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    hup(s.p);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 30, NULL), 0);
    assert_int_equal(kill(s.p->pid, 0), 0);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sighup_mid_distribution, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
