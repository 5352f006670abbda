/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the engine in shared mode (lib/server_cluster.c, and the claims
 * of lib/server_register.c) on a real PostgreSQL store in cluster mode
 * (tests/support/pg.h), two engines standing for two instances on one
 * database:
 *   - the PNE registrations of one turn are claimed in ONE transaction when
 *     the glue flushes (the route rows they wrote share one xmin), and
 *     their Return 1s leave only after that flush;
 *   - a replay in the same turn, and a replay through the other instance,
 *     are refused (Return 8); the others register;
 *   - a registration whose connection closes before the flush is not
 *     claimed and not answered;
 *   - the non-blocking flush (flush_start/flush_poll) runs the claims too;
 *   - a failed claim transaction answers every registration in it Return 0,
 *     and the PNEs register once the store works again.
 */
#include <poll.h>
#include <stdlib.h>

#include "pg.h"
#include "server_harness.h"

static test_pg pg;

static int group_setup(void **state)
{
    (void)state;
    return test_pg_start(&pg);
}

static int group_teardown(void **state)
{
    (void)state;
    test_pg_stop(&pg);
    return 0;
}

#define K 8

typedef struct fx {
    char uri[256];
    uint8_t master_key[CPNS_KEY_LEN];
    harness a, b; /* instances "inst-a" (GW gw-1 on conn 1) and "inst-b" (gw-2 on conn 1) */
} fx;

static void open_engine(fx *f, harness *h, const char *id)
{
    h_init(h);
    cpns_store_free(h->st); /* h_init's memory store */
    cpns_store_pg_config cfg = {f->uri, f->master_key, id, 1};
    char err[512];
    assert_int_equal(cpns_store_pg_open(&h->st, &cfg, err, sizeof err), 0);
    h->cfg.store = h->st;
    h_start(h);
    assert_true(cpns_server_shared(h->s));
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(test_pg_create_db(&pg, f->uri, sizeof f->uri), 0);
    for (size_t i = 0; i < CPNS_KEY_LEN; i++)
        f->master_key[i] = (uint8_t)(0x44 + i);
    open_engine(f, &f->a, "inst-a");
    for (int i = 0; i < K; i++) {
        char id[16];
        snprintf(id, sizeof id, "pne-%d", i);
        h_pne_add(&f->a, id);
    }
    assert_int_equal(cpns_server_flush(f->a.s), 0);
    open_engine(f, &f->b, "inst-b"); /* loads the PNEs a provisioned */
    f->b.tid_ctr = 50000;
    f->b.nonce_ctr = 50000;
    assert_int_equal(h_gw(&f->a, 1, "gw-1", "pn-1", NULL), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_gw(&f->b, 1, "gw-2", "pn-2", NULL), CPNS_RETURN_SUCCESS);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    h_teardown(&f->a);
    h_teardown(&f->b);
    free(f);
    return 0;
}

static long long scalar(const fx *f, const char *sql)
{
    return test_pg_scalar(f->uri, sql);
}

/* Pops every frame without committing: *n responses, their Return by TransactionID in ret. */
typedef struct answers {
    int n;
    uint64_t tid[4 * K];
    uint32_t ret[4 * K];
} answers;

static void pop_all(harness *h, answers *out)
{
    cpns_msg r;
    memset(out, 0, sizeof *out);
    while (h_pop_raw(h, NULL, &r) == 1) {
        if (r.kind != CPNS_MSG_PNE_REGISTRATION_RESPONSE)
            continue; /* a catch-up delivery */
        assert_true(out->n < 4 * K);
        out->tid[out->n] = r.TransactionID;
        out->ret[out->n] = r.Return;
        out->n++;
    }
}

static uint32_t return_of(const answers *a, uint64_t tid)
{
    for (int i = 0; i < a->n; i++)
        if (a->tid[i] == tid)
            return a->ret[i];
    fail_msg("no answer to TransactionID %llu", (unsigned long long)tid);
    return 0;
}

static void send_registrations(harness *h, cpns_msg *req, int n)
{
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "pne-%d", i);
        h_reg_msg_now(h, &req[i], id);
        assert_int_equal(h_recv(h, 1, &req[i]), 0);
    }
}

static void one_transaction_per_turn(void **state)
{
    fx *f = *state;
    cpns_msg req[K];
    send_registrations(&f->a, req, K);
    /* Queued: nothing claimed, nothing answered, and the glue is asked to commit. */
    assert_int_equal(cpns_server_commit_wanted(f->a.s), 1);
    answers got;
    pop_all(&f->a, &got);
    assert_int_equal(got.n, 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM nonce"), 0);

    assert_int_equal(cpns_server_flush(f->a.s), 0);
    pop_all(&f->a, &got);
    assert_int_equal(got.n, K);
    for (int i = 0; i < K; i++)
        assert_int_equal(return_of(&got, req[i].TransactionID), CPNS_RETURN_SUCCESS);
    assert_int_equal(scalar(f, "SELECT count(*) FROM nonce"), K);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne WHERE registered AND pngwid = 'gw-1'"), K);
    /* One claim transaction wrote every route (one per registration before batching). */
    assert_int_equal(scalar(f, "SELECT count(DISTINCT xmin::text) FROM pne WHERE registered"), 1);
    assert_int_equal(cpns_server_commit_wanted(f->a.s), 0);
}

static void replays_refused(void **state)
{
    fx *f = *state;
    cpns_msg req[3];
    h_reg_msg_now(&f->a, &req[0], "pne-1");
    req[1] = req[0]; /* the same request again, in the same turn */
    h_reg_msg_now(&f->a, &req[2], "pne-2");
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_recv(&f->a, 1, &req[i]), 0);
    assert_int_equal(cpns_server_flush(f->a.s), 0);
    answers got;
    pop_all(&f->a, &got);
    assert_int_equal(got.n, 3);
    int ok = 0, refused = 0;
    for (int i = 0; i < got.n; i++) {
        if (got.tid[i] != req[0].TransactionID)
            assert_int_equal(got.ret[i], CPNS_RETURN_SUCCESS);
        else if (got.ret[i] == CPNS_RETURN_SUCCESS)
            ok++;
        else if (got.ret[i] == CPNS_RETURN_AUTH)
            refused++;
    }
    assert_int_equal(ok, 1);
    assert_int_equal(refused, 1);

    /* The captured request through the other instance: the cluster has seen it. */
    assert_int_equal(h_recv(&f->b, 1, &req[0]), 0);
    assert_int_equal(cpns_server_flush(f->b.s), 0);
    pop_all(&f->b, &got);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.ret[0], CPNS_RETURN_AUTH);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne WHERE pngwid = 'gw-2'"), 0);
    /* A fresh one through b moves pne-1 there. */
    assert_int_equal(h_register(&f->b, 1, "pne-1"), CPNS_RETURN_SUCCESS);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne WHERE pngwid = 'gw-2'"), 1);
}

static void closed_connection_not_claimed(void **state)
{
    fx *f = *state;
    cpns_msg req[2];
    send_registrations(&f->a, req, 2);
    assert_int_equal(cpns_server_conn_close(f->a.s, 1, f->a.now), 0);
    assert_int_equal(cpns_server_commit_wanted(f->a.s), 0);
    assert_int_equal(cpns_server_flush(f->a.s), 0);
    answers got;
    pop_all(&f->a, &got);
    assert_int_equal(got.n, 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM nonce"), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne WHERE registered"), 0);
}

static void async_flush_runs_claims(void **state)
{
    fx *f = *state;
    cpns_msg req[K];
    send_registrations(&f->a, req, K);
    assert_int_equal(cpns_server_flush_start(f->a.s), 0);
    answers got;
    pop_all(&f->a, &got); /* held until the member commit is durable */
    assert_int_equal(got.n, 0);
    int rv;
    while ((rv = cpns_server_flush_poll(f->a.s)) == CPNS_ERR_AGAIN) {
        struct pollfd p = {cpns_server_store_fd(f->a.s), POLLIN, 0};
        assert_true(p.fd >= 0);
        assert_true(poll(&p, 1, 10000) >= 0);
    }
    assert_int_equal(rv, 0);
    pop_all(&f->a, &got);
    assert_int_equal(got.n, K);
    for (int i = 0; i < K; i++)
        assert_int_equal(return_of(&got, req[i].TransactionID), CPNS_RETURN_SUCCESS);
    assert_int_equal(scalar(f, "SELECT count(DISTINCT xmin::text) FROM pne WHERE registered"), 1);
}

static void failed_claim_answers_return_0(void **state)
{
    fx *f = *state;
    cpns_msg req[3];
    assert_int_equal(test_pg_exec(f->uri, "ALTER TABLE nonce RENAME TO nonce_away"), 0);
    send_registrations(&f->a, req, 3);
    assert_int_equal(cpns_server_flush(f->a.s), 0);
    answers got;
    pop_all(&f->a, &got);
    assert_int_equal(got.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(return_of(&got, req[i].TransactionID), CPNS_RETURN_OTHER);
    assert_int_equal(test_pg_exec(f->uri, "ALTER TABLE nonce_away RENAME TO nonce"), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne WHERE registered"), 0);
    /* The PNEs retry (new Nonces) once the store works. */
    send_registrations(&f->a, req, 3);
    assert_int_equal(cpns_server_flush(f->a.s), 0);
    pop_all(&f->a, &got);
    assert_int_equal(got.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(return_of(&got, req[i].TransactionID), CPNS_RETURN_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_transaction_per_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(replays_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(closed_connection_not_claimed, setup, teardown),
        cmocka_unit_test_setup_teardown(async_flush_runs_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_claim_answers_return_0, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
