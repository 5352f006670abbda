/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fault injection on the server's store (issue #5, item 4): real SQLite
 * errors through the test hooks of lib/store_sqlite_fault.c (a database that
 * is full, one that turned read-only) and the memory store's injected
 * failures, under the real server engine.
 *
 * What must hold: while the store fails, every failed commit is reported
 * (CPNS_ERR_STORE with SQLite's message), the engine keeps its state in
 * memory and keeps answering what needs no new durable state; no frame
 * carrying a Group Key that is not committed leaves; and once the fault
 * clears, one flush makes everything durable, so a crash right after loses
 * nothing that was acknowledged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_harness.h"

typedef struct fx {
    char dir[64];
    char path[128];
    uint8_t master_key[CPNS_KEY_LEN];
    harness h;
} fx;

static cpns_store *open_store(fx *f)
{
    cpns_store *st = NULL;
    char err[256] = "";
    int rv = cpns_store_sqlite_open(&st, f->path, f->master_key, err, sizeof err);
    if (rv)
        fail_msg("cannot open %s: %s", f->path, err);
    return st;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    test_db_dir("cpns-fault", f->dir, f->path);
    for (size_t i = 0; i < CPNS_KEY_LEN; i++)
        f->master_key[i] = (uint8_t)(0x30 + i);
    /* The unit harness with the SQLite store in place of the memory one. */
    harness *h = &f->h;
    h_init(h);
    cpns_store_free(h->st);
    h->st = open_store(f);
    h->cfg.store = h->st;
    h_start(h);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    h_teardown(&f->h);
    test_db_dir_remove(f->dir, f->path);
    free(f);
    return 0;
}

/* The process dies: no final flush; the store is closed (uncommitted writes roll back) and
 * reopened. */
static void crash_restart(fx *f)
{
    harness *h = &f->h;
    cpns_server_free(h->s);
    h->s = NULL;
    cpns_store_free(h->st);
    h->st = open_store(f);
    h->cfg.store = h->st;
    h_start(h);
}

static void expect_store_error(cpns_store *st, int rv, const char *needle)
{
    assert_int_equal(rv, CPNS_ERR_STORE);
    const char *msg = cpns_store_sqlite_errmsg(st);
    if (!strstr(msg, needle))
        fail_msg("store error '%s' does not mention '%s'", msg, needle);
}

static int count_pne(void *arg, const cpns_store_pne *p)
{
    (void)p;
    (*(int *)arg)++;
    return 0;
}

static int skip_sg(void *arg, const cpns_store_sg *sg)
{
    (void)arg;
    (void)sg;
    return 0;
}

static int skip_member(void *arg, const cpns_store_member *m)
{
    (void)arg;
    (void)m;
    return 0;
}

static int skip_nonce(void *arg, const cpns_store_nonce *n)
{
    (void)arg;
    (void)n;
    return 0;
}

static int put_pnes(cpns_store *st, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        cpns_store_pne p;
        memset(&p, 0, sizeof p);
        snprintf(p.PNEID, sizeof p.PNEID, "%s-%04d-padding-to-fill-pages-faster", prefix, i);
        memset(p.EUK, i & 0xff, sizeof p.EUK);
        int rv = st->ops->put_pne(st, &p);
        if (rv)
            return rv;
    }
    return st->ops->commit(st);
}

/* The store alone: full, then room again; read-only, then writable again; nothing half-written. */
static void test_sqlite_full_and_read_only(void **state)
{
    fx *f = *state;
    /* The store alone: no server on it. */
    cpns_server_free(f->h.s);
    f->h.s = NULL;
    cpns_store *st = f->h.st;
    assert_int_equal(put_pnes(st, "a", 10), 0);

    assert_int_equal(cpns_store_sqlite_set_max_pages(st, 1), 0); /* full at its current size */
    expect_store_error(st, put_pnes(st, "b", 500), "full");
    assert_int_equal(st->ops->rollback(st), 0);
    assert_int_equal(cpns_store_sqlite_set_max_pages(st, 0), 0);
    assert_int_equal(put_pnes(st, "c", 500), 0);

    assert_int_equal(cpns_store_sqlite_set_read_only(st, 1), 0);
    expect_store_error(st, put_pnes(st, "d", 1), "readonly");
    assert_int_equal(st->ops->rollback(st), 0);
    assert_int_equal(cpns_store_sqlite_set_read_only(st, 0), 0);
    assert_int_equal(put_pnes(st, "e", 1), 0);

    /* Only the committed batches are there: none of "b" or "d". */
    cpns_store_free(st);
    f->h.st = open_store(f);
    int n = 0;
    cpns_store_loader l = {count_pne, skip_sg, skip_member, skip_nonce};
    assert_int_equal(f->h.st->ops->load(f->h.st, &l, &n), 0);
    assert_int_equal(n, 10 + 500 + 1);

    /* The hooks refuse a store that is not SQLite. */
    cpns_store *mem = NULL;
    assert_int_equal(cpns_store_mem_new(&mem), 0);
    assert_int_equal(cpns_store_sqlite_set_max_pages(mem, 1), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_store_sqlite_set_read_only(mem, 1), CPNS_ERR_INVALID_ARG);
    cpns_store_free(mem);
}

enum { N = 20 };

static void world(harness *h, char ids[N][16], const char *PNEIDs[N])
{
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "pne-%02d", i);
        PNEIDs[i] = ids[i];
    }
    h_world(h, PNEIDs, N);
    assert_int_equal(cpns_server_flush(h->s), 0);
}

/*
 * The database turns read-only in the middle of a distribution: the
 * confirmations are kept in memory and reported as failed commits, the
 * server still answers registrations; writable again, one flush stores it
 * all and a crash loses nothing. Read-only again, a rekey's new key never
 * leaves uncommitted, and a crash then leaves the old key in force.
 */
static void test_read_only_mid_distribution(void **state)
{
    fx *f = *state;
    harness *h = &f->h;
    char ids[N][16];
    const char *PNEIDs[N];
    world(h, ids, PNEIDs);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", PNEIDs, N, h->now), 0);
    cpns_msg req[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(h_pop(h, NULL, &req[i]), 1);
    assert_int_equal(cpns_server_flush(h->s), 0);
    char fp[17];
    strcpy(fp, h_sg(h, "sg-1").fingerprint);

    assert_int_equal(cpns_store_sqlite_set_read_only(h->st, 1), 0);
    for (int i = 0; i < N; i++)
        h_confirm(h, 1, &req[i]);
    for (int turn = 0; turn < 3; turn++)
        expect_store_error(h->st, cpns_server_flush(h->s), "readonly");
    /* Reads are served from memory. */
    cpns_sg_info sg = h_sg(h, "sg-1");
    assert_int_equal(sg.n_delivered, N);
    assert_true(sg.complete);
    /*
     * A registration is accepted in memory, but its answer is held until its
     * Nonce is stored (#10.8): no failed commit releases it.
     */
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_msg reg, r;
    h_euk("pne-00", EUK);
    h_reg_msg(h, &reg, "pne-00", EUK, h->now / 1000);
    assert_int_equal(h_recv(h, 1, &reg), 0);
    assert_true(cpns_server_commit_wanted(h->s));
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);
    expect_store_error(h->st, cpns_server_flush(h->s), "readonly");
    assert_int_equal(h_pop_raw(h, NULL, &r), 0);

    /* The fault clears: one flush stores it all and releases the answer; a crash loses nothing. */
    assert_int_equal(cpns_store_sqlite_set_read_only(h->st, 0), 0);
    assert_int_equal(cpns_server_flush(h->s), 0);
    assert_int_equal(h_pop_raw(h, NULL, &r), 1);
    assert_int_equal(r.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    assert_int_equal(r.TransactionID, reg.TransactionID);
    assert_int_equal(r.Return, CPNS_RETURN_SUCCESS);
    crash_restart(f);
    sg = h_sg(h, "sg-1");
    assert_true(sg.complete);
    assert_int_equal(sg.n_delivered, N);
    assert_int_equal(sg.KeyVersion, 1);
    assert_string_equal(sg.fingerprint, fp);
    /* The Nonce of the registration answered during the fault was stored: a replay fails. */
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_register_msg(h, 1, &reg, NULL), CPNS_RETURN_AUTH);
    for (int i = 0; i < N; i++)
        assert_int_equal(h_register(h, 1, PNEIDs[i]), CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_server_flush(h->s), 0);

    /* Read-only again: a rekey's key cannot be committed, so no request carrying it leaves. */
    assert_int_equal(cpns_store_sqlite_set_read_only(h->st, 1), 0);
    assert_int_equal(cpns_server_sg_rekey(h->s, "sg-1", h->now), 0);
    cpns_out out;
    for (int turn = 0; turn < 3; turn++) {
        assert_int_equal(cpns_server_pop(h->s, &out), CPNS_ERR_STORE);
        expect_store_error(h->st, cpns_server_flush(h->s), "readonly");
    }
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.deliveries_sent, 0);
    /* A crash now: the key nobody received is gone, version 1 stays in force. */
    crash_restart(f);
    sg = h_sg(h, "sg-1");
    assert_int_equal(sg.KeyVersion, 1);
    assert_string_equal(sg.fingerprint, fp);
    assert_true(sg.complete);

    /* A rekey with a working store goes out as version 2. */
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_register(h, 1, "pne-00"), CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_server_sg_rekey(h->s, "sg-1", h->now), 0);
    cpns_msg v2;
    assert_int_equal(h_pop(h, NULL, &v2), 1);
    assert_int_equal(v2.KeyVersion, 2);
    assert_string_not_equal(h_sg(h, "sg-1").fingerprint, fp);
}

/*
 * A crash in the middle of a large distribution on the SQLite store (PROTOCOL.md
 * 5.3: state survives a restart, nothing is delivered twice under a different
 * key). The outcomes of four commits (four member_log rows, a Return 2 among
 * them) survive; those confirmed but never committed, and those never answered,
 * are sent again under the same KeyVersion and key when their PNEs register,
 * and the round completes.
 */
enum { BIG = 300, COMMITTED = 200, CONFIRMED = 240 };

static void test_sqlite_crash_mid_round(void **state)
{
    fx *f = *state;
    harness *h = &f->h;
    static char ids[BIG][16];
    static cpns_msg req[BIG];
    const char *PNEIDs[BIG];
    for (int i = 0; i < BIG; i++) {
        snprintf(ids[i], sizeof ids[i], "pne-%03d", i);
        PNEIDs[i] = ids[i];
    }
    h_world(h, PNEIDs, BIG);
    assert_int_equal(cpns_server_flush(h->s), 0);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-big", PNEIDs, BIG, h->now), 0);
    for (int i = 0; i < BIG; i++)
        assert_int_equal(h_pop(h, NULL, &req[i]), 1);
    char fp[17];
    strcpy(fp, h_sg(h, "sg-big").fingerprint);
    for (int i = 0; i < CONFIRMED; i++) {
        if (i == 7)
            assert_int_equal(h_answer(h, 1, &req[i], CPNS_RETURN_DECRYPT, NULL, "pn-home"), 0);
        else
            h_confirm(h, 1, &req[i]);
        if (i % 50 == 49 && i < COMMITTED)
            assert_int_equal(cpns_server_flush(h->s), 0);
    }
    crash_restart(f);

    cpns_sg_info sg = h_sg(h, "sg-big");
    assert_int_equal(sg.KeyVersion, 1);
    assert_string_equal(sg.fingerprint, fp);
    assert_int_equal(sg.n_delivered, COMMITTED - 1);
    assert_int_equal(sg.n_failed, 1);
    assert_int_equal(h_member(h, "sg-big", "pne-007").state, CPNS_MEMBER_FAILED);
    assert_int_equal(h_member(h, "sg-big", "pne-199").state, CPNS_MEMBER_DELIVERED);
    assert_int_equal(h_member(h, "sg-big", "pne-200").state, CPNS_MEMBER_PENDING);

    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    for (int i = COMMITTED; i < BIG; i++) {
        assert_int_equal(h_register(h, 1, PNEIDs[i]), CPNS_RETURN_SUCCESS);
        cpns_msg again;
        assert_int_equal(h_pop(h, NULL, &again), 1);
        assert_int_equal(again.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
        assert_string_equal(again.PNEID, PNEIDs[i]);
        assert_int_equal(again.KeyVersion, 1);
        h_confirm(h, 1, &again); /* a KeyConfirmation over any other key would not count */
    }
    assert_int_equal(cpns_server_flush(h->s), 0);
    crash_restart(f);
    sg = h_sg(h, "sg-big");
    assert_int_equal(sg.n_delivered, BIG - 1);
    assert_int_equal(sg.n_failed, 1);
    assert_string_equal(sg.fingerprint, fp);
}

/*
 * The disk fills up: an SG whose inventory does not fit is not created (the
 * admin call fails, nothing half-stored), the SGs already there keep
 * working; with room again the same call succeeds and survives a crash.
 */
static void test_disk_full_create_fails_cleanly(void **state)
{
    fx *f = *state;
    harness *h = &f->h;
    char ids[N][16];
    const char *PNEIDs[N];
    world(h, ids, PNEIDs);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-small", PNEIDs, 2, h->now), 0);
    cpns_msg a, b;
    assert_int_equal(h_pop(h, NULL, &a), 1);
    assert_int_equal(h_pop(h, NULL, &b), 1);
    assert_int_equal(cpns_server_flush(h->s), 0);

    /* Many big SGs to outgrow the file under the cap. */
    assert_int_equal(cpns_store_sqlite_set_max_pages(h->st, 1), 0);
    int created = 0, rv = 0;
    char SGID[40];
    for (int i = 0; i < 200 && rv == 0; i++) {
        snprintf(SGID, sizeof SGID, "sg-big-%03d", i);
        rv = cpns_server_sg_create(h->s, SGID, PNEIDs, N, h->now);
        if (rv == 0) {
            created++;
            cpns_out out;
            while (cpns_server_pop(h->s, &out) == 1)
                ;
            rv = cpns_server_flush(h->s);
        }
    }
    expect_store_error(h->st, rv, "full");
    /* The failed create left nothing behind (the last flush, if that failed, keeps its SG). */
    cpns_sg_info info;
    int failed_in_create = cpns_server_sg_get(h->s, SGID, &info) == CPNS_ERR_NOT_FOUND;

    /* The SG that was there keeps working: its confirmations are accepted. */
    h_confirm(h, 1, &a);
    h_confirm(h, 1, &b);
    assert_int_equal(h_sg(h, "sg-small").n_delivered, 2);

    assert_int_equal(cpns_store_sqlite_set_max_pages(h->st, 0), 0);
    if (failed_in_create)
        assert_int_equal(cpns_server_sg_create(h->s, SGID, PNEIDs, N, h->now), 0);
    cpns_out out;
    while (cpns_server_pop(h->s, &out) == 1)
        ;
    assert_int_equal(cpns_server_flush(h->s), 0);

    crash_restart(f);
    assert_true(h_sg(h, "sg-small").complete);
    for (int i = 0; i < created; i++) {
        snprintf(SGID, sizeof SGID, "sg-big-%03d", i);
        assert_int_equal(h_sg(h, SGID).n_members, N);
    }
    assert_int_equal(cpns_server_sg_get(h->s, SGID, &info), 0);
}

/*
 * Memory store: commits fail for many turns in a row while a distribution
 * finishes; the state stays dirty, the first good flush stores all of it.
 */
static void test_mem_store_long_outage(void **state)
{
    (void)state;
    harness h;
    h_setup(&h);
    char ids[N][16];
    const char *PNEIDs[N];
    world(&h, ids, PNEIDs);
    assert_int_equal(cpns_server_sg_create(h.s, "sg-1", PNEIDs, N, h.now), 0);
    cpns_msg req[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(h_pop(&h, NULL, &req[i]), 1);
    assert_int_equal(cpns_server_flush(h.s), 0);
    uint64_t commits = cpns_store_mem_commits(h.st);

    cpns_store_mem_fail_writes(h.st, 1000000);
    for (int i = 0; i < N; i++) {
        h_confirm(&h, 1, &req[i]);
        assert_int_equal(cpns_server_flush(h.s), CPNS_ERR_STORE);
    }
    cpns_store_member row;
    assert_int_equal(cpns_store_mem_get_member(h.st, "sg-1", "pne-00", &row), 0);
    /* Sends write nothing (the row loads as pending anyway): still the inventory's row. */
    assert_int_equal(row.state, CPNS_MEMBER_PENDING);
    assert_int_equal(cpns_store_mem_commits(h.st), commits);

    cpns_store_mem_fail_writes(h.st, 0);
    assert_int_equal(cpns_server_flush(h.s), 0);
    h_crash_restart(&h);
    assert_true(h_sg(&h, "sg-1").complete);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cpns_store_mem_get_member(h.st, "sg-1", PNEIDs[i], &row), 0);
        assert_int_equal(row.state, CPNS_MEMBER_DELIVERED);
    }
    h_teardown(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sqlite_full_and_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_mid_distribution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_create_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_crash_mid_round, setup, teardown),
        cmocka_unit_test(test_mem_store_long_outage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
