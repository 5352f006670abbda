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
 *     and the PNEs register once the store works again;
 *   - an SG whose creator stopped between its inventory commit and its key
 *     commit (KeyVersion 0 in the database) is finished by the other
 *     instance once the grace period has passed on its clock, and delivered;
 *     if the creator is alive and commits KeyVersion 1 first, the other's
 *     attempt is refused and it uses the creator's key; if the other commits
 *     first, the creator's commit is refused and it uses the other's key:
 *     one key per version.
 */
#include <poll.h>
#include <stdlib.h>

#include "pg.h"
#include "server_harness.h"

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
    assert_int_equal(test_pg_create_db(&test_pg_group, f->uri, sizeof f->uri), 0);
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

/* --- SGs left at KeyVersion 0 --- */

#define GRACE_MS 15000

/* The SGIDs the store lists at KeyVersion 0, handed to h's engine at h->now. */
typedef struct unkeyed {
    char ids[4][CPNS_ID_MAX + 1];
    const char *p[4];
    size_t n;
} unkeyed;

static int collect(void *arg, const char *SGID)
{
    unkeyed *u = arg;
    assert_true(u->n < 4);
    strcpy(u->ids[u->n], SGID);
    u->p[u->n] = u->ids[u->n];
    u->n++;
    return 0;
}

static void list_unkeyed(harness *h, unkeyed *u)
{
    memset(u, 0, sizeof *u);
    assert_int_equal(cpns_store_pg_unkeyed(h->st, collect, u), 0);
}

static int finish(harness *h)
{
    unkeyed u;
    list_unkeyed(h, &u);
    return cpns_server_finish_unkeyed(h->s, u.p, u.n, GRACE_MS, h->now);
}

/* What a creator commits first (server_admin.c store_inventory), and then it dies. */
static void inventory_of_dead_creator(fx *f, const char *SGID, const char *const *PNEIDs, size_t n)
{
    cpns_store *st;
    cpns_store_pg_config cfg = {f->uri, f->master_key, "inst-c", 1};
    char err[512];
    assert_int_equal(cpns_store_pg_open(&st, &cfg, err, sizeof err), 0);
    cpns_store_sg sg;
    memset(&sg, 0, sizeof sg);
    strcpy(sg.SGID, SGID);
    assert_int_equal(st->ops->put_sg(st, &sg), 0);
    for (size_t i = 0; i < n; i++) {
        cpns_store_member m;
        memset(&m, 0, sizeof m);
        strcpy(m.SGID, SGID);
        strcpy(m.PNEID, PNEIDs[i]);
        m.state = CPNS_MEMBER_PENDING;
        m.Return = -1;
        m.fail_reason = -1;
        m.unfenced = 1;
        assert_int_equal(st->ops->put_member(st, &m), 0);
    }
    assert_int_equal(st->ops->commit(st), 0);
    cpns_store_free(st);
}

/* Pops h's deliveries of SGID (answering nothing): their count; each one's key is fingerprinted. */
static int pop_deliveries(harness *h, const char *SGID, uint32_t KeyVersion, const char *fp)
{
    int n = 0;
    cpns_msg r;
    while (h_pop(h, NULL, &r) == 1) {
        if (r.kind != CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST)
            continue;
        assert_string_equal(r.SGID, SGID);
        assert_int_equal(r.KeyVersion, KeyVersion);
        uint8_t EUK[CPNS_KEY_LEN], GK[CPNS_KEY_LEN];
        char got[CPNS_FINGERPRINT_LEN + 1];
        h_euk(r.PNEID, EUK);
        h_unwrap_with(&r, EUK, GK);
        cpns_fingerprint(GK, CPNS_KEY_LEN, got);
        assert_string_equal(got, fp);
        n++;
    }
    return n;
}

static void unkeyed_sg_finished_by_other_instance(void **state)
{
    fx *f = *state;
    assert_int_equal(h_register(&f->a, 1, "pne-0"), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_register(&f->b, 1, "pne-1"), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_register(&f->b, 1, "pne-2"), CPNS_RETURN_SUCCESS);
    const char *members[] = {"pne-0", "pne-1", "pne-2"};
    inventory_of_dead_creator(f, "sg-x", members, 3);
    assert_int_equal(scalar(f, "SELECT key_version FROM sg WHERE sgid = 'sg-x'"), 0);

    /* Listed: not acted on within the grace period (its creator may be committing). */
    assert_int_equal(finish(&f->b), 0);
    f->b.now += GRACE_MS - 1;
    assert_int_equal(finish(&f->b), 0);
    assert_int_equal(scalar(f, "SELECT key_version FROM sg WHERE sgid = 'sg-x'"), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sg_key"), 0);

    /* Still without a key after it: b draws and commits KeyVersion 1. */
    f->b.now += 1;
    assert_int_equal(finish(&f->b), 1);
    assert_int_equal(scalar(f, "SELECT key_version FROM sg WHERE sgid = 'sg-x'"), 1);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sg_key WHERE sgid = 'sg-x' AND key_version = 1"
                               " AND created_by = 'inst-b'"),
                     1);
    cpns_sg_info info = h_sg(&f->b, "sg-x");
    assert_int_equal(info.KeyVersion, 1);
    assert_int_equal(info.n_members, 3);
    /* b sends the members routed through it; a the one routed through it, after the feed. */
    assert_int_equal(pop_deliveries(&f->b, "sg-x", 1, info.fingerprint), 2);
    assert_int_equal(cpns_server_refresh(f->a.s, "sg", "sg-x", f->a.now), 0);
    cpns_sg_info on_a = h_sg(&f->a, "sg-x");
    assert_int_equal(on_a.KeyVersion, 1);
    assert_string_equal(on_a.fingerprint, info.fingerprint);
    assert_int_equal(pop_deliveries(&f->a, "sg-x", 1, info.fingerprint), 1);
    /* Nothing left to finish. */
    f->b.now += GRACE_MS;
    assert_int_equal(finish(&f->b), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sg_key"), 1);
}

/* b's store: its next commit lets a commit first (a creator alive, a moment faster). */
static const cpns_store_ops *real_ops;
static cpns_store_ops hooked_ops;
static harness *commits_first;

static int hooked_commit(cpns_store *st)
{
    harness *w = commits_first;
    commits_first = NULL;
    if (w)
        assert_int_equal(cpns_server_flush(w->s), 0);
    return real_ops->commit(st);
}

static void unkeyed_sg_creator_commits_first(void **state)
{
    fx *f = *state;
    assert_int_equal(h_register(&f->b, 1, "pne-1"), CPNS_RETURN_SUCCESS);
    const char *members[] = {"pne-0", "pne-1"};
    /* a stores the inventory; its key is drawn, not committed yet. */
    assert_int_equal(cpns_server_sg_create(f->a.s, "sg-y", members, 2, f->a.now), 0);
    assert_int_equal(scalar(f, "SELECT key_version FROM sg WHERE sgid = 'sg-y'"), 0);
    assert_int_equal(finish(&f->b), 0);
    f->b.now += GRACE_MS;
    unkeyed u;
    list_unkeyed(&f->b, &u);
    assert_int_equal(u.n, 1);
    real_ops = f->b.st->ops; /* the store functions of store_db.h check them: listed first */
    hooked_ops = *real_ops;
    hooked_ops.commit = hooked_commit;
    f->b.st->ops = &hooked_ops;
    commits_first = &f->a;
    /* b reloads the SG (still KeyVersion 0), draws a key, and its commit is refused. */
    assert_int_equal(cpns_server_finish_unkeyed(f->b.s, u.p, u.n, GRACE_MS, f->b.now), 0);
    f->b.st->ops = real_ops;
    assert_null(commits_first);
    assert_int_equal(cpns_server_take_conflict(f->b.s), 1);
    assert_int_equal(cpns_server_take_conflict(f->a.s), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sg_key WHERE sgid = 'sg-y'"), 1);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sg_key WHERE sgid = 'sg-y'"
                               " AND created_by = 'inst-a'"),
                     1);
    cpns_sg_info on_a = h_sg(&f->a, "sg-y"), on_b = h_sg(&f->b, "sg-y");
    assert_int_equal(on_b.KeyVersion, 1);
    assert_string_equal(on_b.fingerprint, on_a.fingerprint);
    /* b delivers a's key to the member routed through it. */
    assert_int_equal(pop_deliveries(&f->b, "sg-y", 1, on_a.fingerprint), 1);
}

static void unkeyed_sg_other_commits_first(void **state)
{
    fx *f = *state;
    assert_int_equal(h_register(&f->a, 1, "pne-0"), CPNS_RETURN_SUCCESS);
    const char *members[] = {"pne-0", "pne-1"};
    /* a stores the inventory and stalls (paused) before committing its key. */
    assert_int_equal(cpns_server_sg_create(f->a.s, "sg-z", members, 2, f->a.now), 0);
    assert_int_equal(finish(&f->b), 0);
    f->b.now += GRACE_MS;
    assert_int_equal(finish(&f->b), 1);
    cpns_sg_info on_b = h_sg(&f->b, "sg-z");
    /* a resumes: its key commit is refused, and it loads b's key instead. */
    assert_int_equal(cpns_server_flush(f->a.s), CPNS_ERR_EXISTS);
    assert_int_equal(cpns_server_take_conflict(f->a.s), 1);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sg_key WHERE sgid = 'sg-z'"), 1);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sg_key WHERE sgid = 'sg-z'"
                               " AND created_by = 'inst-b'"),
                     1);
    cpns_sg_info on_a = h_sg(&f->a, "sg-z");
    assert_int_equal(on_a.KeyVersion, 1);
    assert_string_equal(on_a.fingerprint, on_b.fingerprint);
    assert_int_equal(pop_deliveries(&f->a, "sg-z", 1, on_b.fingerprint), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_transaction_per_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(replays_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(closed_connection_not_claimed, setup, teardown),
        cmocka_unit_test_setup_teardown(async_flush_runs_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_claim_answers_return_0, setup, teardown),
        cmocka_unit_test_setup_teardown(unkeyed_sg_finished_by_other_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(unkeyed_sg_creator_commits_first, setup, teardown),
        cmocka_unit_test_setup_teardown(unkeyed_sg_other_commits_first, setup, teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
