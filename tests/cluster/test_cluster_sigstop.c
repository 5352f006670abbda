/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cluster: one instance of three paused (SIGSTOP) in the middle of a
 * distribution while its GWs move to the others, then resumed (SIGCONT)
 * (issue #12 item 6). A paused process keeps its sockets: its GWs would wait
 * on it, so the test moves them as an operator (or a dead-peer timeout)
 * would: each of the paused instance's GWs is stopped and started again with
 * the same identity and port, its list now starting at another instance. Its
 * registration there bumps the GW's epoch and claims the open members; the
 * PNEs dial the GW again and register through it. The delivery answers that
 * reached the paused instance's sockets meanwhile are still queued there.
 *
 * When it resumes, what it writes about those members carries the old epoch:
 * PostgreSQL must refuse every such write (cpns_fenced_writes_total counts
 * them; it may also drop them unread, see resumed_fenced) and nothing it
 * does may undo what the others committed: cw_check's
 * invariants hold, on its own SG view too if it still serves. The seed picks
 * the instance that creates the SG, the one paused and when.
 * Prints CLUSTER {"scenario":"sigstop",...} with the fenced writes counted.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cworld.h"

#define FENCED "cpns_fenced_writes_total"

typedef struct gw_arg {
    unsigned k;
    int not ;
} gw_arg;

static bool gw_elsewhere(cw_world *w, void *arg)
{
    gw_arg *a = arg;
    int now = cw_gw_instance(w, a->k);
    return now >= 0 && now != a->not ;
}

/* GW k again, same PNGWID and port, its list starting after instance x (x last). */
static void move_gw(cw_world *w, unsigned k, unsigned x)
{
    harness *h = w->h;
    cl_gw *g = &w->gws[k];
    /* A GW whose server is paused may not finish its goodbye: any exit will do. */
    h_stop(g->p, CL_STOP_MS);
    char *list = NULL;
    for (unsigned j = 1; j <= w->o.n_inst; j++) {
        const char *a = w->inst[(x + j) % w->o.n_inst].s.listen;
        list = list ? h_fmt(h, "%s,%s", list, a) : h_fmt(h, "%s", a);
    }
    w->gw_servers[k] = list;
    g->p = h_start(h, h_fmt(h, "gw-%u-moved", k + 1), "cpns-gw", "--id", g->PNGWID, "--pnid",
                   g->PNID, "--server", list, "--listen", g->listen, "--tls-cert",
                   h_fmt(h, "%s/%s.crt", w->pki, g->PNGWID), "--tls-key",
                   h_fmt(h, "%s/%s.key", w->pki, g->PNGWID), "--tls-ca",
                   h_fmt(h, "%s/ca.crt", w->pki), NULL);
    h_wait_port(h, g->p, g->port, CW_START_MS);
}

typedef struct resumed_arg {
    unsigned x;
    int64_t fenced0, fenced;
} resumed_arg;

/*
 * The resumed instance has settled: it counted a fenced write, or has exited
 * on its own (self-fencing is allowed: its lease may have run out while
 * paused), or it has let go of everything it lost (no GW and no open member
 * left: it processed the closed GW connections and the cpns_gw notices).
 * Which of these comes first depends on the order in which its event loop
 * sees the readable sockets after SIGCONT: the delivery answers queued in a
 * closed GW connection are read (then written with the old epoch and fenced)
 * or dropped with it when the notice is handled first. Both are correct;
 * what may never happen is a stale write that lands, which cw_check's
 * invariants catch. That a write with an old epoch is refused is proven
 * deterministically by test_store_pg_cluster.
 */
static bool resumed_fenced(cw_world *w, void *arg)
{
    resumed_arg *a = arg;
    cw_inst *in = &w->inst[a->x];
    if (!h_running(in->p)) {
        in->dead = true;
        return true;
    }
    a->fenced = cw_metric(w, a->x, FENCED);
    if (a->fenced > a->fenced0)
        return true;
    return cw_metric(w, a->x, "cpns_owned_gws") == 0 &&
           cw_metric(w, a->x, "cpns_owned_open_members") == 0;
}

static void test_cluster_sigstop(void **state)
{
    harness *h = *state;
    cw_world w = {0};
    cw_seed_init(&w);
    unsigned members = cw_members(300);
    cw_opts o = {.n_inst = 3, .n_gws = 6, .members = members, .answer_rate = "100"};
    unsigned creator = cw_rand(&w, 3), x = cw_rand(&w, 3), pct = 20 + cw_rand(&w, 21);
    long long stop_at = (long long)members * pct / 100;
    o.hold_at = cw_hold_after(members, stop_at);
    cw_start(&w, h, &test_pg_group, &o);
    printf("CLUSTER choices: SG created on %s; %s paused at %u %% (%lld of %u) delivered\n",
           w.inst[creator].id, w.inst[x].id, pct, stop_at, members);
    fflush(stdout);
    int64_t fenced0 = cw_metric(&w, x, FENCED);
    if (fenced0 < 0)
        fail_msg("%s has no %s in its /metrics", w.inst[x].id, FENCED);

    cw_create_sg(&w, creator);
    cw_wait_delivered(&w, stop_at, CW_COMPLETE_MS);
    long long at = cw_delivered(&w);
    assert_int_equal(kill(w.inst[x].p->pid, SIGSTOP), 0);
    w.inst[x].stopped = true;
    h_note(h, "SIGSTOP %s at %lld delivered", w.inst[x].id, at);
    if (at >= members)
        fail_msg("the group completed before the pause (%lld delivered)", at);
    cw_release_hold(&w);
    /*
     * The PNEs keep answering at the limited rate, in the order the requests
     * came: while the others' members progress, the paused instance's answers
     * pile up in its sockets. A tenth of the group is enough of them.
     */
    long long more = at + members / 10;
    cw_wait_delivered(&w, more < members ? more : members, CW_COMPLETE_MS);

    unsigned moved = 0;
    for (unsigned k = 0; k < o.n_gws; k++) {
        if (cw_gw_instance(&w, k) != (int)x)
            continue;
        move_gw(&w, k, x);
        gw_arg a = {k, (int)x};
        cw_wait(&w, gw_elsewhere, &a, CW_START_MS,
                h_fmt(h, "gw-%u registering with another instance than %s", k + 1, w.inst[x].id));
        moved++;
    }
    assert_true(moved >= 1);
    cw_full_speed(&w);
    /* the others finish the group while x is still paused */
    cw_wait_delivered(&w, members, CW_COMPLETE_MS);

    assert_int_equal(kill(w.inst[x].p->pid, SIGCONT), 0);
    w.inst[x].stopped = false;
    h_note(h, "SIGCONT %s", w.inst[x].id);
    resumed_arg r = {.x = x, .fenced0 = fenced0};
    cw_wait(&w, resumed_fenced, &r, CW_COMPLETE_MS,
            h_fmt(h, "%s fencing or letting go after SIGCONT", w.inst[x].id));

    cw_check(&w);
    if (!w.inst[x].dead)
        r.fenced = cw_metric(&w, x, FENCED);
    printf("CLUSTER {\"scenario\":\"sigstop\",\"seed\":%" PRIu64 ",\"members\":%u,\"paused\":"
           "\"%s\",\"delivered_at_pause\":%lld,\"gws_moved\":%u,\"fenced_writes\":%" PRId64
           ",\"paused_instance_exited\":%s,\"deliveries\":%lld,\"sent_again\":%lld}\n",
           w.seed, members, w.inst[x].id, at, moved, r.fenced - fenced0,
           w.inst[x].dead ? "true" : "false", w.deliveries, w.deliveries - (long long)members);
    fflush(stdout);
    cw_finish(&w);
}

int main(void)
{
    int skip = cw_skip_unless_cluster();
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cluster_sigstop, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
