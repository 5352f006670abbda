/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cluster: PostgreSQL restarted (pg_ctl restart -m immediate: a crash, WAL
 * recovery) in the middle of a distribution served by three instances in
 * --cluster mode (issue #12 item 6). Every instance loses its connection, its
 * LISTEN and the commit in flight; each must reconnect, resend what was not
 * committed, listen again and finish its share. After the group completes,
 * a rekey through one instance (retried while the admin API answers 503 or
 * nothing) must reach every PNE too: the wake-up path works after the
 * restart. The seed picks the instances and the restart point (20-40 %).
 * Invariants: cw_check's (the 201 of the create and the 200 of the rekey
 * survive: their versions and keys are the ones the PNEs hold).
 * Prints CLUSTER {"scenario":"pg_restart",...}.
 */
#include <inttypes.h>
#include <stdio.h>

#include "cworld.h"

static void test_cluster_pg_restart(void **state)
{
    harness *h = *state;
    cw_world w = {0};
    cw_seed_init(&w);
    unsigned members = cw_members(300);
    cw_opts o = {.n_inst = 3, .n_gws = 6, .members = members, .answer_rate = "100"};
    unsigned creator = cw_rand(&w, 3), rekeyer = cw_rand(&w, 3), pct = 20 + cw_rand(&w, 21);
    long long restart_at = (long long)members * pct / 100;
    o.hold_at = cw_hold_after(members, restart_at);
    cw_start(&w, h, &test_pg_group, &o);
    printf("CLUSTER choices: SG created on %s; PostgreSQL restarted at %u %% (%lld of %u) "
           "delivered; rekey on %s\n",
           w.inst[creator].id, pct, restart_at, members, w.inst[rekeyer].id);
    fflush(stdout);

    cw_create_sg(&w, creator);
    cw_wait_delivered(&w, restart_at, CW_COMPLETE_MS);
    long long at = cw_delivered(&w);
    int64_t t0 = cw_now_ms();
    if (test_pg_restart(&test_pg_group, 1) != 0)
        fail_msg("pg_ctl restart -m immediate failed");
    int64_t t_up = cw_now_ms();
    h_note(h, "PostgreSQL restarted (immediate) at %lld delivered, up again after %lld ms", at,
           (long long)(t_up - t0));
    if (at >= members)
        fail_msg("the group completed before the restart (%lld delivered)", at);
    cw_full_speed(&w);
    cw_wait_delivered(&w, members, CW_COMPLETE_MS);
    int64_t t_done = cw_now_ms();

    /*
     * An admin change after the restart: 503 while the instance has not
     * reconnected yet. A rekey whose answer was lost (0) may have committed:
     * the database says, so that it is not made twice.
     */
    int st = 0;
    int64_t end = cw_now_ms() + CW_START_MS;
    while (cw_db_version(&w) < 2 && (st = cw_rekey(&w, rekeyer)) != 200) {
        if (st != 503 && st != 0)
            fail_msg("rekey on %s after the restart answered %d", w.inst[rekeyer].id, st);
        if (cw_now_ms() > end)
            fail_msg("rekey on %s: still %d %d ms after the restart", w.inst[rekeyer].id, st,
                     CW_START_MS);
        cw_sleep_ms(100);
    }
    cw_check(&w);
    assert_int_equal(w.final_version, 2);
    printf("CLUSTER {\"scenario\":\"pg_restart\",\"seed\":%" PRIu64 ",\"members\":%u,"
           "\"delivered_at_restart\":%lld,\"restart_ms\":%" PRId64
           ",\"restart_to_complete_ms\":%" PRId64 ",\"deliveries\":%lld}\n",
           w.seed, members, at, t_up - t0, t_done - t0, w.deliveries);
    fflush(stdout);
    cw_finish(&w);
}

int main(void)
{
    int skip = cw_skip_unless_cluster();
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cluster_pg_restart, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
