/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cluster: an SG left at KeyVersion 0 (docs/ARCHITECTURE.md 7.2). Two
 * instances in --cluster mode, two GWs, the fanout's PNEs. The SG Inventory
 * is written straight into PostgreSQL as a creator writes its first commit
 * (the sg row at KeyVersion 0, the member rows stamped with their PNE's GW
 * session), and no instance ever draws its key: its creator "died" between
 * the two commits (a kill -9 in that moment is too short to hit reliably).
 *
 * A running instance must finish it once the grace period has passed (the
 * instance TTL, 15 s, then the next 2 s sweep): KeyVersion 1 committed by
 * exactly one instance, every member delivered, and cw_check's invariants
 * (one key row per version, every PNE holds that one key, no Return 7).
 * Prints CLUSTER {"scenario":"unkeyed",...}.
 */
#include <inttypes.h>
#include <stdio.h>

#include "cworld.h"

static void test_cluster_unkeyed(void **state)
{
    harness *h = *state;
    cw_world w = {0};
    cw_seed_init(&w);
    unsigned members = cw_members(100);
    cw_opts o = {.n_inst = 2, .n_gws = 2, .members = members};
    cw_start(&w, h, &test_pg_group, &o);

    char sql[1024];
    snprintf(sql, sizeof sql,
             "BEGIN; INSERT INTO sg (sgid, key_version) VALUES ('" CW_SGID "', 0);"
             " INSERT INTO member (sgid, pneid, key_version, state, owner_gw, owner_epoch)"
             " SELECT '" CW_SGID "', p.pneid, 0, 0, g.pngwid, g.epoch"
             " FROM generate_series(0, %u) i JOIN pne p ON p.pneid = 'lg-' || i"
             " LEFT JOIN gw_session g ON g.pngwid = p.pngwid AND p.registered;"
             " COMMIT",
             members - 1);
    assert_int_equal(test_pg_exec(w.uri, sql), 0);
    assert_int_equal(test_pg_scalar(w.uri, "SELECT count(*) FROM member"), members);
    int64_t t0 = cw_now_ms();
    assert_int_equal(cw_db_version(&w), 0);

    cw_wait_delivered(&w, members, CW_COMPLETE_MS);
    int64_t took = cw_now_ms() - t0;
    /* Not before the grace period: the creator might have been committing its key. */
    if (took < 14000)
        fail_msg("the SG was finished %" PRId64 " ms after its inventory (grace period 15 s)",
                 took);
    assert_int_equal(test_pg_scalar(w.uri, "SELECT count(*) FROM sg_key WHERE created_by IN"
                                           " (SELECT instance_id FROM instance)"),
                     1);
    cw_check(&w);
    if (w.final_version != 1)
        fail_msg("the SG is at KeyVersion %u (want 1)", w.final_version);
    printf("CLUSTER {\"scenario\":\"unkeyed\",\"seed\":%" PRIu64 ",\"members\":%u,"
           "\"finished_after_ms\":%" PRId64 ",\"deliveries\":%lld}\n",
           w.seed, members, took, w.deliveries);
    fflush(stdout);
    cw_finish(&w);
}

int main(void)
{
    int skip = cw_skip_unless_cluster();
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cluster_unkeyed, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
