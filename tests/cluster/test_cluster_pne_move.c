/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cluster: PNEs moving between GWs served by different instances in the
 * middle of a distribution (issue #12 item 6, item 4). Three instances in
 * --cluster mode, three GWs (GW k on instance k), the fanout's PNEs with
 * --move-every K: at 20-40 % delivered (SIGUSR2) every K-th PNE leaves its GW
 * for the next one, on the next instance, and registers there. That
 * registration claims its open member (catch-up) from the instance that had
 * it, whose later writes about it are fenced. The seed picks K (3-7), the
 * move point and the instance that creates the SG. After the group
 * completes, a rekey through a random instance reaches the moved PNEs at
 * their new GW.
 * Invariants: cw_check's, and PostgreSQL routes every moved PNE through its
 * new GW.
 * Prints CLUSTER {"scenario":"pne_move",...}.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>

#include "cworld.h"

typedef struct routed_arg {
    const char *sql;
    long long want;
} routed_arg;

static bool routed(cw_world *w, void *arg)
{
    routed_arg *a = arg;
    return test_pg_scalar(w->uri, a->sql) == a->want;
}

static void test_cluster_pne_move(void **state)
{
    harness *h = *state;
    cw_world w = {0};
    cw_seed_init(&w);
    unsigned members = cw_members(300);
    unsigned every = 3 + cw_rand(&w, 5), creator = cw_rand(&w, 3), rekeyer = cw_rand(&w, 3);
    unsigned pct = 20 + cw_rand(&w, 21);
    cw_opts o = {
        .n_inst = 3, .n_gws = 3, .members = members, .answer_rate = "100", .move_every = every};
    long long move_at = (long long)members * pct / 100;
    o.hold_at = cw_hold_after(members, move_at);
    cw_start(&w, h, &test_pg_group, &o);
    unsigned n_moved = (members + every - 1) / every;
    printf("CLUSTER choices: SG created on %s; one PNE in %u (%u) moves to the next GW at %u "
           "%% (%lld of %u) delivered; rekey on %s\n",
           w.inst[creator].id, every, n_moved, pct, move_at, members, w.inst[rekeyer].id);
    fflush(stdout);

    cw_create_sg(&w, creator);
    cw_wait_delivered(&w, move_at, CW_COMPLETE_MS);
    long long at = cw_delivered(&w);
    assert_int_equal(kill(w.fan->pid, SIGUSR2), 0);
    cw_wait_log(&w, w.fan, "PNEs moved to the next GW", CW_START_MS);
    if (at >= members)
        fail_msg("the group completed before the move (%lld delivered)", at);

    /*
     * PNE i sat behind gw-(i mod 3 + 1) and moves to the next one. The pne
     * row's pngwid is the route of its last registration.
     */
    routed_arg ra = {
        h_fmt(h,
              "SELECT count(*) FROM pne WHERE pneid ~ '^lg-[0-9]+$' AND "
              "substring(pneid from 4)::int %% %u = 0 AND substring(pneid from 4)::int < %u AND "
              "pngwid = 'gw-' || ((substring(pneid from 4)::int + 1) %% 3 + 1)",
              every, members),
        n_moved};
    cw_wait(&w, routed, &ra, CW_REGISTER_MS, "every moved PNE registered through its new GW");
    cw_full_speed(&w);
    cw_wait_delivered(&w, members, CW_COMPLETE_MS);

    int st = cw_rekey(&w, rekeyer);
    if (st != 200)
        fail_msg("rekey on %s answered %d", w.inst[rekeyer].id, st);
    cw_check(&w);
    assert_int_equal(w.final_version, 2);
    printf("CLUSTER {\"scenario\":\"pne_move\",\"seed\":%" PRIu64 ",\"members\":%u,"
           "\"moved\":%u,\"delivered_at_move\":%lld,\"deliveries\":%lld}\n",
           w.seed, members, n_moved, at, w.deliveries);
    fflush(stdout);
    cw_finish(&w);
}

int main(void)
{
    int skip = cw_skip_unless_cluster();
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cluster_pne_move, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
