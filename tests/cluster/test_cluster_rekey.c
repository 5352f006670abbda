/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cluster: concurrent rekeys on two instances (issue #12 item 6, item 3).
 * Three instances in --cluster mode, three GWs (one first dials each), the
 * fanout's PNEs. The SG is created, then for 2-4 rounds two threads release
 * at once a POST .../rekey on two different instances (the seed picks the
 * pair, the round count and whether a round waits for the previous version's
 * distribution to complete or lands in its middle).
 *
 * Each answer must be 200 or 409, at least one of each pair a 200, and two
 * 200s of one round name two different KeyVersions: one key per (SGID,
 * KeyVersion), ever. At the end the SG is at KeyVersion 1 + the number of
 * 200s, sg_key holds exactly versions 1..that, and cw_check's invariants hold
 * (every PNE holds the last key; what it stored for each version is that
 * version's one key; no Return 7).
 * Prints CLUSTER {"scenario":"rekey",...}.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

#include "cworld.h"

typedef struct racer {
    pthread_t t;
    pthread_barrier_t *go;
    uint16_t admin_port;
    int status;
    char *body;
} racer;

/* One rekey, released with the other one (h_http only touches its own socket and buffers). */
static void *race(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->go);
    r->status =
        h_http(r->admin_port, "POST", "/v1/service-groups/" CW_SGID "/rekey", NULL, NULL, &r->body);
    return NULL;
}

static void test_cluster_rekey(void **state)
{
    harness *h = *state;
    cw_world w = {0};
    cw_seed_init(&w);
    unsigned members = cw_members(200);
    cw_opts o = {.n_inst = 3, .n_gws = 3, .members = members};
    unsigned creator = cw_rand(&w, 3), rounds = 2 + cw_rand(&w, 3);
    cw_start(&w, h, &test_pg_group, &o);
    cw_create_sg(&w, creator);
    cw_wait_delivered(&w, members, CW_COMPLETE_MS);

    unsigned ok = 0, conflicts = 0;
    for (unsigned round = 0; round < rounds; round++) {
        unsigned a = cw_rand(&w, 3), b = (a + 1 + cw_rand(&w, 2)) % 3;
        bool settle = cw_rand(&w, 2) == 0;
        if (settle) /* this round starts from a complete group; else in the middle of one */
            cw_wait_delivered(&w, members, CW_COMPLETE_MS);
        printf("CLUSTER choices: round %u: rekeys on %s and %s at once%s\n", round + 1,
               w.inst[a].id, w.inst[b].id, settle ? " (group complete)" : "");
        fflush(stdout);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        racer r[2] = {{.go = &go, .admin_port = w.inst[a].s.admin_port},
                      {.go = &go, .admin_port = w.inst[b].s.admin_port}};
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&r[i].t, NULL, race, &r[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(r[i].t, NULL);
        pthread_barrier_destroy(&go);
        uint32_t versions[2] = {0, 0};
        for (int i = 0; i < 2; i++) {
            unsigned at = i == 0 ? a : b;
            h_note(h, "round %u: rekey on %s: %d", round + 1, w.inst[at].id, r[i].status);
            if (r[i].status == 200) {
                cw_record(&w, "rekey", at, r[i].body);
                versions[i] = w.answers[w.n_answers - 1].version;
                ok++;
            } else if (r[i].status == 409) {
                conflicts++;
            } else {
                fail_msg("round %u: rekey on %s answered %d: %s", round + 1, w.inst[at].id,
                         r[i].status, r[i].body ? r[i].body : "");
            }
            free(r[i].body);
        }
        if (!versions[0] && !versions[1])
            fail_msg("round %u: both rekeys refused (409): one must win", round + 1);
        if (versions[0] && versions[0] == versions[1])
            fail_msg("round %u: both rekeys answered KeyVersion %u", round + 1, versions[0]);
    }

    cw_check(&w);
    if (w.final_version != 1 + ok)
        fail_msg("the SG is at KeyVersion %u after %u successful rekeys (want %u)", w.final_version,
                 ok, 1 + ok);
    printf("CLUSTER {\"scenario\":\"rekey\",\"seed\":%" PRIu64 ",\"members\":%u,\"rounds\":%u,"
           "\"rekeys_200\":%u,\"rekeys_409\":%u,\"key_version\":%u,\"deliveries\":%lld}\n",
           w.seed, members, rounds, ok, conflicts, w.final_version, w.deliveries);
    fflush(stdout);
    cw_finish(&w);
}

int main(void)
{
    int skip = cw_skip_unless_cluster();
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cluster_rekey, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
