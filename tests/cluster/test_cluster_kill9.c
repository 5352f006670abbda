/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cluster: kill -9 of one instance of three at 20-40 % delivered (issue #12
 * item 6). Three instances in --cluster mode on one PostgreSQL, six real GWs
 * (two first dial each instance; every GW has every instance's address), the
 * fanout's PNEs answering at a limited rate until the kill so that it lands
 * in the middle of the distribution. The seed picks the instance that creates
 * the SG, the victim and the kill point. The victim's GWs move to the next
 * instance of their lists, whose registration claims the victim's open
 * members (fencing by epoch); the group completes on the other two with the
 * one key of the 201, and cw_check's invariants hold.
 * Prints CLUSTER {"scenario":"kill9",...}: the kill -> complete time and the
 * delivery requests the PNEs got (above one per member: sent again).
 */
#include <inttypes.h>
#include <stdio.h>

#include "cworld.h"

typedef struct moved_arg {
    unsigned k;
    int from;
} moved_arg;

/* GW k registered again, with another instance than `from`. */
static bool gw_moved(cw_world *w, void *arg)
{
    moved_arg *a = arg;
    int now = cw_gw_instance(w, a->k);
    return now >= 0 && now != a->from;
}

static void test_cluster_kill9(void **state)
{
    harness *h = *state;
    cw_world w = {0};
    cw_seed_init(&w);
    unsigned members = cw_members(300);
    cw_opts o = {.n_inst = 3, .n_gws = 6, .members = members, .answer_rate = "100"};
    unsigned creator = cw_rand(&w, 3), victim = cw_rand(&w, 3), pct = 20 + cw_rand(&w, 21);
    long long kill_at = (long long)members * pct / 100;
    o.hold_at = cw_hold_after(members, kill_at);
    cw_start(&w, h, &test_pg_group, &o);
    printf("CLUSTER choices: SG created on %s; %s killed at %u %% (%lld of %u) delivered\n",
           w.inst[creator].id, w.inst[victim].id, pct, kill_at, members);
    fflush(stdout);

    cw_create_sg(&w, creator);
    cw_wait_delivered(&w, kill_at, CW_COMPLETE_MS);
    long long at = cw_delivered(&w);
    int64_t t_kill = cw_now_ms();
    cw_kill9(&w, victim);
    cw_full_speed(&w);
    if (at >= members)
        fail_msg("the group completed before the kill (%lld delivered): lower the answer rate", at);

    /* the victim's GWs register with another instance */
    for (unsigned k = 0; k < o.n_gws; k++) {
        if (k % o.n_inst != victim)
            continue;
        moved_arg a = {k, (int)victim};
        cw_wait(&w, gw_moved, &a, CW_START_MS,
                h_fmt(h, "gw-%u leaving %s", k + 1, w.inst[victim].id));
    }
    cw_wait_delivered(&w, members, CW_COMPLETE_MS);
    int64_t t_done = cw_now_ms();
    cw_check(&w);
    printf("CLUSTER {\"scenario\":\"kill9\",\"seed\":%" PRIu64 ",\"members\":%u,\"killed\":\"%s\","
           "\"delivered_at_kill\":%lld,\"kill_to_complete_ms\":%" PRId64 ",\"deliveries\":%lld,"
           "\"sent_again\":%lld,\"pne_connections_lost\":%lld}\n",
           w.seed, members, w.inst[victim].id, at, t_done - t_kill, w.deliveries,
           w.deliveries - (long long)members, w.pnes_lost);
    fflush(stdout);
    cw_finish(&w);
}

int main(void)
{
    int skip = cw_skip_unless_cluster();
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cluster_kill9, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
