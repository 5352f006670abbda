/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the PostgreSQL store (lib/store_pg*.c) on a real, private
 * PostgreSQL (tests/support/pg.h: one cluster per program, one database per
 * test): the ops round-trip through load() after a reopen, in key order; a
 * batch's ops end as they would in order (deletions and re-adds, del_sg
 * after member writes, expiry before newer nonces); the master key check;
 * schema migration from version 1 with data intact, a newer version refused;
 * a damaged row named at load; fencing by the active lease between two
 * instances; the non-blocking commit; a server restart (-m immediate) with a
 * commit in flight and between commits, nothing acknowledged lost and
 * everything else written by the next commit; member rows tied to their SG
 * without a foreign key (version 4), against concurrent sessions too;
 * 100,000 members in one commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <time.h>

#include <libpq-fe.h>

#include "pg.h"
#include "support.h"

typedef struct fx {
    char uri[256];
    uint8_t master_key[CPNS_KEY_LEN];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(test_pg_create_db(&test_pg_group, f->uri, sizeof f->uri), 0);
    for (size_t i = 0; i < CPNS_KEY_LEN; i++)
        f->master_key[i] = (uint8_t)(0x5a + i);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static cpns_store *open_as(const fx *f, const char *instance_id)
{
    cpns_store_pg_config cfg = {f->uri, f->master_key, instance_id, 0};
    cpns_store *st = NULL;
    char err[512];
    int rv = cpns_store_pg_open(&st, &cfg, err, sizeof err);
    if (rv)
        fail_msg("open failed: %d %s", rv, err);
    return st;
}

static cpns_store *open_ok(const fx *f)
{
    return open_as(f, NULL);
}

static void commit_ok(cpns_store *st)
{
    int rv = st->ops->commit(st);
    if (rv)
        fail_msg("commit failed: %d %s", rv, cpns_store_pg_errmsg(st));
}

static long long scalar(const fx *f, const char *sql)
{
    return test_pg_scalar(f->uri, sql);
}

/* --- a loader that records what it is given --- */

#define KEEP 16
typedef struct collected {
    cpns_store_pne pne[KEEP];
    cpns_store_sg sg[KEEP];
    cpns_store_member member[KEEP];
    cpns_store_nonce nonce[KEEP];
    size_t n_pne, n_sg, n_member, n_nonce;
    uint64_t attempts_sum;
    int last_kind, out_of_order;
} collected;

static void seen(collected *c, int kind)
{
    if (kind < c->last_kind)
        c->out_of_order = 1;
    c->last_kind = kind;
}

static int on_pne(void *arg, const cpns_store_pne *p)
{
    collected *c = arg;
    if (c->n_pne < KEEP)
        c->pne[c->n_pne] = *p;
    c->n_pne++;
    seen(c, 0);
    return 0;
}

static int on_sg(void *arg, const cpns_store_sg *sg)
{
    collected *c = arg;
    if (c->n_sg < KEEP)
        c->sg[c->n_sg] = *sg;
    c->n_sg++;
    seen(c, 1);
    return 0;
}

static int on_member(void *arg, const cpns_store_member *m)
{
    collected *c = arg;
    if (c->n_member < KEEP)
        c->member[c->n_member] = *m;
    c->n_member++;
    c->attempts_sum += m->attempts;
    seen(c, 2);
    return 0;
}

static int on_nonce(void *arg, const cpns_store_nonce *n)
{
    collected *c = arg;
    if (c->n_nonce < KEEP)
        c->nonce[c->n_nonce] = *n;
    c->n_nonce++;
    seen(c, 3);
    return 0;
}

static const cpns_store_loader loader = {on_pne, on_sg, on_member, on_nonce};

/* Closes st (if any), reopens and loads into c. */
static cpns_store *reopen_load(const fx *f, cpns_store *st, collected *c)
{
    cpns_store_free(st);
    st = open_ok(f);
    memset(c, 0, sizeof *c);
    int rv = st->ops->load(st, &loader, c);
    if (rv)
        fail_msg("load failed: %d %s", rv, cpns_store_pg_errmsg(st));
    assert_false(c->out_of_order);
    return st;
}

/* --- records --- */

static cpns_store_pne make_pne(const char *PNEID, uint8_t fill, int registered)
{
    cpns_store_pne p;
    memset(&p, 0, sizeof p);
    strcpy(p.PNEID, PNEID);
    memset(p.EUK, fill, sizeof p.EUK);
    p.registered = registered;
    if (registered) {
        strcpy(p.PNGWID, "gw-1");
        strcpy(p.PNID, "pn-home");
    }
    return p;
}

static cpns_store_sg make_sg(const char *SGID, uint32_t KeyVersion, uint8_t fill)
{
    cpns_store_sg sg;
    memset(&sg, 0, sizeof sg);
    strcpy(sg.SGID, SGID);
    sg.KeyVersion = KeyVersion;
    if (KeyVersion)
        memset(sg.GK, fill, sizeof sg.GK);
    return sg;
}

static cpns_store_member make_member(const char *SGID, const char *PNEID, uint32_t KeyVersion,
                                     cpns_member_state state, uint32_t attempts)
{
    cpns_store_member m;
    memset(&m, 0, sizeof m);
    strcpy(m.SGID, SGID);
    strcpy(m.PNEID, PNEID);
    m.KeyVersion = KeyVersion;
    m.state = state;
    m.Return = state == CPNS_MEMBER_DELIVERED ? 1 : -1;
    m.fail_reason = state == CPNS_MEMBER_FAILED ? 3 : -1;
    m.attempts = attempts;
    m.malformed = attempts / 2;
    if (state == CPNS_MEMBER_DELIVERED)
        strcpy(m.PNID, "pn-home");
    return m;
}

static cpns_store_nonce make_nonce(const char *PNEID, uint8_t fill, int64_t seen_ms)
{
    cpns_store_nonce n;
    memset(&n, 0, sizeof n);
    strcpy(n.PNEID, PNEID);
    memset(n.Nonce, fill, sizeof n.Nonce);
    n.seen_ms = seen_ms;
    return n;
}

static void assert_member_equal(const cpns_store_member *a, const cpns_store_member *b)
{
    assert_string_equal(a->SGID, b->SGID);
    assert_string_equal(a->PNEID, b->PNEID);
    assert_int_equal(a->KeyVersion, b->KeyVersion);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->Return, b->Return);
    assert_int_equal(a->fail_reason, b->fail_reason);
    assert_int_equal(a->attempts, b->attempts);
    assert_int_equal(a->malformed, b->malformed);
    assert_string_equal(a->PNID, b->PNID);
}

/* --- tests --- */

static void test_round_trip_every_op(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    cpns_store_pne pa = make_pne("pne-a", 0x11, 1), pb = make_pne("pne-B", 0x22, 0);
    cpns_store_sg s1 = make_sg("sg-1", 3, 0x33), s0 = make_sg("sg-0", 0, 0);
    cpns_store_member m1 = make_member("sg-1", "pne-a", 3, CPNS_MEMBER_DELIVERED, 2);
    cpns_store_member m2 = make_member("sg-1", "pne-B", 3, CPNS_MEMBER_FAILED, 5);
    cpns_store_member m3 = make_member("sg-0", "pne-a", 0, CPNS_MEMBER_PENDING, 0);
    m2.Return = INT32_MIN;
    m2.attempts = UINT32_MAX;
    cpns_store_nonce n1 = make_nonce("pne-a", 0x44, 1700000000000), n2 = make_nonce("pne-B", 1, 5);
    assert_int_equal(st->ops->put_pne(st, &pb), 0);
    assert_int_equal(st->ops->put_pne(st, &pa), 0);
    assert_int_equal(st->ops->put_sg(st, &s1), 0);
    assert_int_equal(st->ops->put_sg(st, &s0), 0);
    assert_int_equal(st->ops->put_member(st, &m2), 0);
    assert_int_equal(st->ops->put_member(st, &m1), 0);
    assert_int_equal(st->ops->put_member(st, &m3), 0);
    assert_int_equal(st->ops->put_nonce(st, &n2), 0);
    assert_int_equal(st->ops->put_nonce(st, &n1), 0);
    /* nothing is written before commit */
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne"), 0);
    commit_ok(st);
    assert_int_equal(scalar(f, "SELECT count(*) FROM member_view WHERE sgid = 'sg-1'"
                               " AND state_name <> 'delivered'"),
                     1);

    collected c;
    st = reopen_load(f, st, &c);
    assert_int_equal(c.n_pne, 2);
    assert_int_equal(c.n_sg, 2);
    assert_int_equal(c.n_member, 3);
    assert_int_equal(c.n_nonce, 2);
    /* in byte order ('B' < 'a'), as SQLite */
    assert_string_equal(c.pne[0].PNEID, "pne-B");
    assert_memory_equal(c.pne[0].EUK, pb.EUK, CPNS_KEY_LEN);
    assert_int_equal(c.pne[0].registered, 0);
    assert_string_equal(c.pne[0].PNGWID, "");
    assert_string_equal(c.pne[1].PNEID, "pne-a");
    assert_memory_equal(c.pne[1].EUK, pa.EUK, CPNS_KEY_LEN);
    assert_int_equal(c.pne[1].registered, 1);
    assert_string_equal(c.pne[1].PNGWID, "gw-1");
    assert_string_equal(c.pne[1].PNID, "pn-home");
    assert_string_equal(c.sg[0].SGID, "sg-0");
    assert_int_equal(c.sg[0].KeyVersion, 0);
    assert_string_equal(c.sg[1].SGID, "sg-1");
    assert_int_equal(c.sg[1].KeyVersion, 3);
    assert_memory_equal(c.sg[1].GK, s1.GK, CPNS_KEY_LEN);
    assert_member_equal(&c.member[0], &m3);
    assert_member_equal(&c.member[1], &m2);
    assert_member_equal(&c.member[2], &m1);
    assert_string_equal(c.nonce[0].PNEID, "pne-B");
    assert_int_equal(c.nonce[0].seen_ms, 5);
    assert_memory_equal(c.nonce[1].Nonce, n1.Nonce, CPNS_NONCE_LEN);
    assert_int_equal(c.nonce[1].seen_ms, n1.seen_ms);

    /* upserts replace; deletions of absent rows are not errors; a rekey keeps one row per version
     */
    pa = make_pne("pne-a", 0x99, 0);
    s1 = make_sg("sg-1", 4, 0x77);
    m1 = make_member("sg-1", "pne-a", 4, CPNS_MEMBER_SENT, 1);
    assert_int_equal(st->ops->put_pne(st, &pa), 0);
    assert_int_equal(st->ops->put_sg(st, &s1), 0);
    assert_int_equal(st->ops->put_member(st, &m1), 0);
    assert_int_equal(st->ops->del_member(st, "sg-1", "pne-B"), 0);
    assert_int_equal(st->ops->del_member(st, "sg-1", "pne-zz"), 0);
    assert_int_equal(st->ops->del_sg(st, "sg-zz"), 0);
    commit_ok(st);
    st = reopen_load(f, st, &c);
    assert_int_equal(c.n_pne, 2);
    assert_memory_equal(c.pne[1].EUK, pa.EUK, CPNS_KEY_LEN);
    assert_int_equal(c.pne[1].registered, 0);
    assert_int_equal(c.sg[1].KeyVersion, 4);
    assert_memory_equal(c.sg[1].GK, s1.GK, CPNS_KEY_LEN);
    assert_int_equal(c.n_member, 2);
    assert_member_equal(&c.member[1], &m1);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sg_key WHERE sgid = 'sg-1'"), 2);

    /* del_sg cascades to its members and keys */
    assert_int_equal(st->ops->del_sg(st, "sg-1"), 0);
    commit_ok(st);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sg_key"), 0);
    st = reopen_load(f, st, &c);
    assert_int_equal(c.n_sg, 1);
    assert_int_equal(c.n_member, 1);
    cpns_store_free(st);
}

/* The ops of one batch end as they would one by one, whatever the statements' grouping. */
static void test_batch_keeps_the_order_of_ops(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    cpns_store_sg a = make_sg("sg-a", 1, 1), b = make_sg("sg-b", 1, 2);
    cpns_store_member ma = make_member("sg-a", "pne-1", 1, CPNS_MEMBER_PENDING, 0);
    cpns_store_member mb = make_member("sg-b", "pne-1", 1, CPNS_MEMBER_PENDING, 0);
    assert_int_equal(st->ops->put_sg(st, &a), 0);
    assert_int_equal(st->ops->put_sg(st, &b), 0);
    assert_int_equal(st->ops->put_member(st, &ma), 0);
    assert_int_equal(st->ops->put_member(st, &mb), 0);
    commit_ok(st);

    /* a member removed and added again ends present (the engine's flush order) */
    ma.state = CPNS_MEMBER_SENT;
    assert_int_equal(st->ops->del_member(st, "sg-a", "pne-1"), 0);
    assert_int_equal(st->ops->put_member(st, &ma), 0);
    /* put then del of a member ends absent */
    cpns_store_member m2 = make_member("sg-a", "pne-2", 1, CPNS_MEMBER_PENDING, 0);
    assert_int_equal(st->ops->put_member(st, &m2), 0);
    assert_int_equal(st->ops->del_member(st, "sg-a", "pne-2"), 0);
    /* an SG deleted and created again starts without its old members, with the new ones */
    cpns_store_member mb2 = make_member("sg-b", "pne-2", 2, CPNS_MEMBER_PENDING, 0);
    assert_int_equal(st->ops->put_member(st, &mb), 0);
    assert_int_equal(st->ops->del_sg(st, "sg-b"), 0);
    b = make_sg("sg-b", 2, 9);
    assert_int_equal(st->ops->put_sg(st, &b), 0);
    assert_int_equal(st->ops->put_member(st, &mb2), 0);
    /* expiry removes older nonces, not those put after it */
    cpns_store_nonce n1 = make_nonce("pne-1", 1, 100), n2 = make_nonce("pne-1", 2, 150);
    assert_int_equal(st->ops->put_nonce(st, &n1), 0);
    assert_int_equal(st->ops->expire_nonces(st, 200), 0);
    assert_int_equal(st->ops->put_nonce(st, &n2), 0);
    commit_ok(st);

    collected c;
    st = reopen_load(f, st, &c);
    assert_int_equal(c.n_sg, 2);
    assert_int_equal(c.sg[1].KeyVersion, 2);
    assert_memory_equal(c.sg[1].GK, b.GK, CPNS_KEY_LEN);
    assert_int_equal(c.n_member, 2);
    assert_member_equal(&c.member[0], &ma);
    assert_member_equal(&c.member[1], &mb2);
    assert_int_equal(c.n_nonce, 1);
    assert_int_equal(c.nonce[0].seen_ms, 150);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sg_key WHERE sgid = 'sg-b'"), 1);

    /* rollback forgets the batch; commit and rollback with nothing written are no-ops */
    cpns_store_pne p = make_pne("pne-x", 1, 0);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    assert_int_equal(st->ops->rollback(st), 0);
    commit_ok(st);
    assert_int_equal(st->ops->rollback(st), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne"), 0);

    /* a member of an SG that does not exist fails its commit, which is then forgotten */
    cpns_store_member orphan = make_member("sg-none", "pne-1", 1, CPNS_MEMBER_PENDING, 0);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    assert_int_equal(st->ops->put_member(st, &orphan), 0);
    assert_int_equal(st->ops->commit(st), CPNS_ERR_STORE);
    assert_non_null(strstr(cpns_store_pg_errmsg(st), "foreign key"));
    commit_ok(st);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne"), 0);
    assert_string_equal(cpns_store_pg_errmsg(NULL), "");
    cpns_store_free(st);
}

static void test_wrong_master_key_refused(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    cpns_store_pne p = make_pne("pne-a", 1, 0);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    commit_ok(st);
    cpns_store_free(st);

    uint8_t other[CPNS_KEY_LEN];
    memcpy(other, f->master_key, sizeof other);
    other[0] ^= 1;
    cpns_store_pg_config cfg = {f->uri, other, NULL, 0};
    char err[512];
    st = (cpns_store *)1;
    assert_int_equal(cpns_store_pg_open(&st, &cfg, err, sizeof err), CPNS_ERR_STORE);
    assert_null(st);
    assert_non_null(strstr(err, "the database was created with another master key"));
    assert_int_equal(scalar(f, "SELECT length(blob) FROM meta WHERE name = 'check'"),
                     (long long)(38 + 1 + 12 + 16));
    cpns_store_free(open_ok(f)); /* the right key still opens it */
}

static void test_open_refusals(void **state)
{
    fx *f = *state;
    char err[512];
    cpns_store *st = NULL;
    cpns_store_pg_config cfg = {"postgresql:///nosuch?host=/nonexistent&port=1", f->master_key,
                                NULL, 0};
    assert_int_equal(cpns_store_pg_open(&st, &cfg, err, sizeof err), CPNS_ERR_STORE);
    assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
    cfg.conninfo = f->uri;
    cfg.instance_id = "bad id";
    assert_int_equal(cpns_store_pg_open(&st, &cfg, err, sizeof err), CPNS_ERR_INVALID_ARG);
    /* a database with other tables is not taken over */
    assert_int_equal(test_pg_exec(f->uri, "CREATE TABLE t (x int)"), 0);
    cfg.instance_id = NULL;
    assert_int_equal(cpns_store_pg_open(&st, &cfg, err, sizeof err), CPNS_ERR_STORE);
    assert_non_null(strstr(err, "not a CPNS server store"));
}

typedef struct one_member {
    int n;
    cpns_store_member m;
} one_member;

static void test_migration_from_v1_and_newer_refused(void **state)
{
    fx *f = *state;
    assert_true(cpns_store_pg_schema_version() >= 2);
    cpns_store_pg_config cfg = {f->uri, f->master_key, NULL, 0};
    cpns_store *st = NULL;
    char err[512];
    assert_int_equal(cpns_store_pg_open_version(&st, &cfg, 1, err, sizeof err), 0);
    assert_int_equal(scalar(f, "SELECT num FROM meta WHERE name = 'schema_version'"), 1);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pg_tables WHERE tablename = 'lease'"), 0);
    cpns_store_pne p = make_pne("pne-a", 7, 1);
    cpns_store_sg sg = make_sg("sg-1", 2, 8);
    cpns_store_member m = make_member("sg-1", "pne-a", 2, CPNS_MEMBER_DELIVERED, 3);
    cpns_store_member fresh = make_member("sg-1", "pne-b", 2, CPNS_MEMBER_PENDING, 0);
    cpns_store_nonce n = make_nonce("pne-a", 9, 1234);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    assert_int_equal(st->ops->put_sg(st, &sg), 0);
    assert_int_equal(st->ops->put_member(st, &m), 0);
    assert_int_equal(st->ops->put_member(st, &fresh), 0);
    assert_int_equal(st->ops->put_nonce(st, &n), 0);
    commit_ok(st);
    cpns_store_free(st);

    /* the full code migrates it, the data intact */
    collected c;
    st = reopen_load(f, NULL, &c);
    assert_int_equal(scalar(f, "SELECT num FROM meta WHERE name = 'schema_version'"),
                     cpns_store_pg_schema_version());
    assert_int_equal(scalar(f, "SELECT count(*) FROM member_view WHERE state_name = 'delivered'"),
                     1);
    assert_int_equal(c.n_pne, 1);
    assert_memory_equal(c.pne[0].EUK, p.EUK, CPNS_KEY_LEN);
    assert_int_equal(c.n_sg, 1);
    assert_memory_equal(c.sg[0].GK, sg.GK, CPNS_KEY_LEN);
    assert_int_equal(c.n_member, 2);
    assert_member_equal(&c.member[0], &m);
    assert_member_equal(&c.member[1], &fresh);
    assert_int_equal(c.n_nonce, 1);
    cpns_store_free(st);
    /* version 4: the foreign key of version 1 gave way to cpns_lock_sgs and the sg_deleted trigger
     */
    assert_int_equal(scalar(f, "SELECT count(*) FROM pg_constraint WHERE conname ="
                               " 'member_sgid_fkey'"),
                     0);
    assert_int_equal(test_pg_exec(f->uri, "DELETE FROM sg"), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM member"), 0);

    /* a newer schema is refused, untouched */
    assert_int_equal(test_pg_exec(f->uri, "UPDATE meta SET num = 99 WHERE name = 'schema_version'"),
                     0);
    st = (cpns_store *)1;
    assert_int_equal(cpns_store_pg_open(&st, &cfg, err, sizeof err), CPNS_ERR_STORE);
    assert_null(st);
    assert_non_null(strstr(err, "schema version 99"));
    assert_non_null(strstr(err, "newer"));
    assert_int_equal(scalar(f, "SELECT num FROM meta WHERE name = 'schema_version'"), 99);
}

static void test_damaged_rows_named_at_load(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    cpns_store_pne a = make_pne("pne-a", 1, 1), b = make_pne("pne-b", 2, 1);
    cpns_store_sg sg = make_sg("sg-1", 4, 3);
    assert_int_equal(st->ops->put_pne(st, &a), 0);
    assert_int_equal(st->ops->put_pne(st, &b), 0);
    assert_int_equal(st->ops->put_sg(st, &sg), 0);
    commit_ok(st);
    collected c;
    /* an EUK moved to another row does not open */
    assert_int_equal(test_pg_exec(f->uri, "UPDATE pne SET euk = (SELECT euk FROM pne WHERE"
                                          " pneid = 'pne-a') WHERE pneid = 'pne-b'"),
                     0);
    memset(&c, 0, sizeof c);
    assert_int_equal(st->ops->load(st, &loader, &c), CPNS_ERR_STORE);
    assert_non_null(strstr(cpns_store_pg_errmsg(st), "pne pne-b"));
    assert_int_equal(test_pg_exec(f->uri, "DELETE FROM pne WHERE pneid = 'pne-b'"), 0);
    /* an edited key_version has no key, or a key sealed for another version */
    assert_int_equal(test_pg_exec(f->uri, "UPDATE sg SET key_version = 5"), 0);
    memset(&c, 0, sizeof c);
    assert_int_equal(st->ops->load(st, &loader, &c), CPNS_ERR_STORE);
    assert_non_null(strstr(cpns_store_pg_errmsg(st), "sg sg-1"));
    assert_int_equal(test_pg_exec(f->uri, "UPDATE sg_key SET key_version = 5"), 0);
    memset(&c, 0, sizeof c);
    assert_int_equal(st->ops->load(st, &loader, &c), CPNS_ERR_STORE);
    assert_non_null(strstr(cpns_store_pg_errmsg(st), "sg sg-1"));
    /* the store is still usable after a failed load */
    commit_ok(st);
    assert_int_equal(st->ops->put_pne(st, &b), 0);
    commit_ok(st);
    cpns_store_free(st);
}

/* Two instances on one database: only the lease holder's commits get through. */
static void test_fencing_by_the_active_lease(void **state)
{
    fx *f = *state;
    cpns_store *A = open_as(f, "inst-a"), *B = open_as(f, "inst-b");
    cpns_store_pg_lease la, lb;
    assert_int_equal(cpns_store_pg_lease_acquire(A, 300, "127.0.0.1:1", "127.0.0.1:2", &la), 0);
    assert_int_equal(la.held, 1);
    assert_string_equal(la.holder, "inst-a");
    assert_true(la.expires_in_ms > 0 && la.expires_in_ms <= 300);
    int64_t epoch = la.epoch;
    assert_int_equal(cpns_store_pg_lease_acquire(B, 300, "b-admin", "b-gw", &lb), 0);
    assert_int_equal(lb.held, 0);
    assert_string_equal(lb.holder, "inst-a");
    assert_string_equal(lb.admin_addr, "127.0.0.1:1");
    assert_string_equal(lb.gw_addr, "127.0.0.1:2");

    /* the holder commits; the other is fenced and writes nothing */
    cpns_store_pne p = make_pne("pne-a", 1, 0), q = make_pne("pne-b", 2, 0);
    assert_int_equal(A->ops->put_pne(A, &p), 0);
    commit_ok(A);
    assert_int_equal(B->ops->put_pne(B, &q), 0);
    assert_int_equal(B->ops->commit(B), CPNS_ERR_FENCED);
    assert_non_null(strstr(cpns_store_pg_errmsg(B), "does not hold the active lease"));
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne"), 1);

    /* A stops renewing: once its lease has expired (database time) B takes it */
    int polls = 0;
    do {
        assert_int_equal(cpns_store_pg_lease_acquire(B, 5000, "b-admin", "b-gw", &lb), 0);
        polls++;
    } while (!lb.held && polls < 100000);
    assert_int_equal(lb.held, 1);
    assert_int_equal(lb.epoch, epoch + 1);
    assert_string_equal(lb.holder, "inst-b");
    assert_int_equal(scalar(f, "SELECT count(*) FROM instance"), 2);

    /* A's next commit is fenced and writes nothing; B's goes through */
    cpns_store_pne r = make_pne("pne-c", 3, 0);
    assert_int_equal(A->ops->put_pne(A, &r), 0);
    assert_int_equal(A->ops->commit(A), CPNS_ERR_FENCED);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne WHERE pneid = 'pne-c'"), 0);
    assert_int_equal(A->ops->commit(A), 0); /* the fenced batch was forgotten */
    assert_int_equal(B->ops->put_pne(B, &q), 0);
    commit_ok(B);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne"), 2);
    assert_int_equal(cpns_store_pg_lease_acquire(A, 5000, NULL, NULL, &la), 0);
    assert_int_equal(la.held, 0);

    /* a clean release hands it over at once */
    assert_int_equal(cpns_store_pg_lease_release(B), 0);
    assert_int_equal(cpns_store_pg_lease_acquire(A, 5000, NULL, NULL, &la), 0);
    assert_int_equal(la.held, 1);
    assert_int_equal(la.epoch, epoch + 2);
    /* no instance id: no lease */
    cpns_store *C = open_ok(f);
    assert_int_equal(cpns_store_pg_lease_acquire(C, 5000, NULL, NULL, &la), CPNS_ERR_INVALID_ARG);
    cpns_store_free(C);
    cpns_store_free(A);
    cpns_store_free(B);
}

/* Polls the commit in flight until it ends, waiting on watch_fd. */
/*
 * The lease is held by one store (one process), not by a name: a second
 * process started with the same --instance-id, or one restarted while its
 * old lease runs, must wait as a standby instead of becoming a second active
 * instance and writing beside the first.
 */
static void test_same_instance_id_twice_one_active(void **state)
{
    fx *f = *state;
    cpns_store *A1 = open_as(f, "inst-a"), *A2 = open_as(f, "inst-a");
    cpns_store_pg_lease l1, l2;
    assert_int_equal(cpns_store_pg_lease_acquire(A1, 60000, "a1", NULL, &l1), 0);
    assert_int_equal(l1.held, 1);
    assert_int_equal(cpns_store_pg_lease_acquire(A2, 60000, "a2", NULL, &l2), 0);
    assert_int_equal(l2.held, 0);
    assert_string_equal(l2.holder, "inst-a");
    assert_string_equal(l2.admin_addr, "a1");
    cpns_store_pne p = make_pne("pne-a", 1, 0);
    assert_int_equal(A2->ops->put_pne(A2, &p), 0);
    assert_int_equal(A2->ops->commit(A2), CPNS_ERR_FENCED);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne"), 0);
    /* the first one hands it over: the second takes it, as a new holder (epoch bumped) */
    assert_int_equal(cpns_store_pg_lease_release(A1), 0);
    assert_int_equal(cpns_store_pg_lease_acquire(A2, 60000, "a2", NULL, &l2), 0);
    assert_int_equal(l2.held, 1);
    assert_int_equal(l2.epoch, l1.epoch + 1);
    assert_int_equal(A2->ops->put_pne(A2, &p), 0);
    commit_ok(A2);
    cpns_store_free(A1);
    cpns_store_free(A2);
}

static int poll_until_done(cpns_store *st)
{
    int rv;
    while ((rv = st->ops->commit_poll(st)) == CPNS_ERR_AGAIN) {
        int fd = st->ops->watch_fd(st);
        assert_true(fd >= 0);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        poll(&pfd, 1, 100); /* a bounded wait: a poll that flushes needs no readable socket */
    }
    return rv;
}

static void test_nonblocking_commit(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    assert_non_null(st->ops->commit_start);
    /* nothing to write: done at once */
    assert_int_equal(st->ops->commit_start(st), 0);
    assert_int_equal(st->ops->commit_poll(st), 0);

    cpns_store_sg sg = make_sg("sg-1", 1, 1);
    assert_int_equal(st->ops->put_sg(st, &sg), 0);
    char PNEID[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(PNEID, sizeof PNEID, "pne-%04d", i);
        cpns_store_member m = make_member("sg-1", PNEID, 1, CPNS_MEMBER_PENDING, 0);
        assert_int_equal(st->ops->put_member(st, &m), 0);
    }
    assert_int_equal(st->ops->commit_start(st), 0);
    assert_int_equal(st->ops->commit_start(st), CPNS_ERR_STATE); /* one at a time */
    /* writes made meanwhile belong to the next commit */
    cpns_store_pne p = make_pne("pne-0000", 1, 0);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    assert_int_equal(poll_until_done(st), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM member"), 1000);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne"), 0);
    /* commit() with one in flight waits for it, then commits the rest */
    cpns_store_member m = make_member("sg-1", "pne-0000", 1, CPNS_MEMBER_SENT, 1);
    assert_int_equal(st->ops->put_member(st, &m), 0);
    assert_int_equal(st->ops->commit_start(st), 0);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    commit_ok(st);
    assert_int_equal(st->ops->commit_poll(st), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pne"), 1);
    assert_int_equal(scalar(f, "SELECT state FROM member WHERE pneid = 'pne-0000'"), 1);
    cpns_store_free(st);
}

/*
 * pg_ctl restart -m immediate with a commit in flight, and between commits:
 * every commit that returned 0 is there; the one in flight, which failed, is
 * written by the next commit, before the newer writes, after a reconnect.
 * The commit in flight is held there by another session's lock on member,
 * so the crash finds it uncommitted whatever the machine's speed.
 */
static void test_restart_in_the_middle(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    cpns_store_sg sg = make_sg("sg-1", 1, 1);
    assert_int_equal(st->ops->put_sg(st, &sg), 0);
    char PNEID[32];
    for (int i = 0; i < 100; i++) {
        snprintf(PNEID, sizeof PNEID, "pne-%03d", i);
        cpns_store_member m = make_member("sg-1", PNEID, 1, CPNS_MEMBER_PENDING, 0);
        assert_int_equal(st->ops->put_member(st, &m), 0);
    }
    commit_ok(st); /* acknowledged */

    PGconn *blocker = PQconnectdb(f->uri);
    assert_int_equal(PQstatus(blocker), CONNECTION_OK);
    PGresult *r = PQexec(blocker, "BEGIN; LOCK TABLE member IN SHARE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);

    /* batch 1: members 0..49 sent, in flight (blocked) when the server crashes */
    for (int i = 0; i < 50; i++) {
        snprintf(PNEID, sizeof PNEID, "pne-%03d", i);
        cpns_store_member m = make_member("sg-1", PNEID, 1, CPNS_MEMBER_SENT, 1);
        assert_int_equal(st->ops->put_member(st, &m), 0);
    }
    assert_int_equal(st->ops->commit_start(st), 0);
    assert_int_equal(st->ops->commit_poll(st), CPNS_ERR_AGAIN);
    assert_int_equal(test_pg_restart(&test_pg_group, 1), 0);
    PQfinish(blocker);
    assert_int_equal(poll_until_done(st), CPNS_ERR_STORE); /* retryable: the batch is kept */
    printf("[ info ] the commit in flight failed: %s\n", cpns_store_pg_errmsg(st));
    assert_int_equal(scalar(f, "SELECT count(*) FROM member WHERE state = 1"), 0);

    /* batch 2, newer: members 40..79 delivered; a second crash between commits */
    for (int i = 40; i < 80; i++) {
        snprintf(PNEID, sizeof PNEID, "pne-%03d", i);
        cpns_store_member m = make_member("sg-1", PNEID, 1, CPNS_MEMBER_DELIVERED, 2);
        assert_int_equal(st->ops->put_member(st, &m), 0);
    }
    assert_int_equal(test_pg_restart(&test_pg_group, 1), 0);
    commit_ok(st); /* reconnects and sends batches 1 and 2, in order, in one transaction */
    assert_int_equal(scalar(f, "SELECT count(*) FROM member"), 100);
    assert_int_equal(scalar(f, "SELECT count(*) FROM member WHERE state = 1"), 40);
    assert_int_equal(scalar(f, "SELECT count(*) FROM member WHERE state = 2 AND pneid"
                               " BETWEEN 'pne-040' AND 'pne-079'"),
                     40);
    assert_int_equal(scalar(f, "SELECT count(*) FROM member WHERE state = 0"), 20);
    collected c;
    st = reopen_load(f, st, &c);
    assert_int_equal(c.n_member, 100);
    cpns_store_free(st);
}

/* Waits until n sessions of the database wait for a lock (another session's transaction). */
static void wait_lock_waiters(const fx *f, long long n)
{
    while (scalar(f, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                     " AND datname = current_database()") != n) {
        struct pollfd none = {.fd = -1};
        poll(&none, 0, 10);
    }
}

static PGconn *connect_ok(const fx *f, const char *sql)
{
    PGconn *c = PQconnectdb(f->uri);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    assert_true(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
}

/*
 * Schema version 4 has no foreign key on member.sgid: cpns_lock_sgs() and
 * the sg_deleted trigger keep its rule, also against concurrent sessions.
 * A pending row with nothing sent (written as 3 columns) replaces any row.
 */
static void test_member_rows_follow_their_sg(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    assert_int_equal(scalar(f, "SELECT count(*) FROM pg_constraint WHERE conname ="
                               " 'member_sgid_fkey'"),
                     0);
    cpns_store_sg s1 = make_sg("sg-1", 1, 1), s2 = make_sg("sg-2", 1, 2);
    cpns_store_member done = make_member("sg-1", "pne-a", 1, CPNS_MEMBER_DELIVERED, 3);
    assert_int_equal(st->ops->put_sg(st, &s1), 0);
    assert_int_equal(st->ops->put_sg(st, &s2), 0);
    assert_int_equal(st->ops->put_member(st, &done), 0);
    commit_ok(st);

    /* a fresh row (KeyVersion 2, pending, nothing sent) replaces a delivered one, and is new */
    cpns_store_member again = make_member("sg-1", "pne-a", 2, CPNS_MEMBER_PENDING, 0);
    cpns_store_member added = make_member("sg-1", "pne-b", 2, CPNS_MEMBER_PENDING, 0);
    assert_int_equal(st->ops->put_member(st, &again), 0);
    assert_int_equal(st->ops->put_member(st, &added), 0);
    commit_ok(st);
    collected c;
    st = reopen_load(f, st, &c);
    assert_int_equal(c.n_member, 2);
    assert_member_equal(&c.member[0], &again);
    assert_member_equal(&c.member[1], &added);

    /* an operator's DELETE FROM sg takes the members with it */
    assert_int_equal(test_pg_exec(f->uri, "DELETE FROM sg WHERE sgid = 'sg-1'"), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM member"), 0);

    /* a DELETE of an SG waits for a commit writing its members, then takes them too */
    PGconn *other = connect_ok(f, "BEGIN");
    exec_ok(other, "DELETE FROM sg WHERE sgid = 'sg-2'");
    cpns_store_member m2 = make_member("sg-2", "pne-a", 1, CPNS_MEMBER_SENT, 1);
    assert_int_equal(st->ops->put_member(st, &m2), 0);
    assert_int_equal(st->ops->commit_start(st), 0);
    wait_lock_waiters(f, 1); /* the commit waits for the DELETE */
    exec_ok(other, "COMMIT");
    /* ... which committed first: the member rows of a deleted SG are refused, and forgotten */
    assert_int_equal(poll_until_done(st), CPNS_ERR_STORE);
    assert_non_null(strstr(cpns_store_pg_errmsg(st), "foreign key"));
    commit_ok(st);
    assert_int_equal(scalar(f, "SELECT count(*) FROM member"), 0);

    /* the other order: a commit holds sg-3, the DELETE waits, then takes the new member too */
    cpns_store_sg s3 = make_sg("sg-3", 1, 3);
    assert_int_equal(st->ops->put_sg(st, &s3), 0);
    commit_ok(st);
    exec_ok(other, "BEGIN");
    exec_ok(other, "SELECT cpns_lock_sgs('{sg-3}')");
    exec_ok(other, "INSERT INTO member (sgid, pneid, key_version, state) VALUES"
                   " ('sg-3', 'pne-z', 1, 0)");
    PGconn *deleter = PQconnectdb(f->uri);
    assert_int_equal(PQstatus(deleter), CONNECTION_OK);
    assert_int_equal(PQsendQuery(deleter, "DELETE FROM sg WHERE sgid = 'sg-3'"), 1);
    wait_lock_waiters(f, 1);
    exec_ok(other, "COMMIT");
    PGresult *r = PQgetResult(deleter);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdTuples(r), "1");
    PQclear(r);
    while ((r = PQgetResult(deleter)) != NULL)
        PQclear(r);
    assert_int_equal(scalar(f, "SELECT count(*) FROM member"), 0);
    PQfinish(deleter);
    PQfinish(other);
    cpns_store_free(st);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* One commit of n member upserts into sg-big (inserts, then the same rows updated): timed. */
static void members_commit(const fx *f, cpns_store *st, int n, cpns_member_state state)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char PNEID[CPNS_ID_MAX + 1];
    for (int i = 0; i < n; i++) {
        snprintf(PNEID, sizeof PNEID, "pne-%06d", i);
        cpns_store_member m = make_member("sg-big", PNEID, 1, state, (uint32_t)(i % 7));
        assert_int_equal(st->ops->put_member(st, &m), 0);
    }
    double put_s = seconds_since(&t0);
    commit_ok(st);
    double total_s = seconds_since(&t0);
    printf("[ info ] %d member upserts (%s) %.3f s + one commit %.3f s\n", n,
           cpns_member_state_name(state), put_s, total_s - put_s);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM member WHERE state = %d", (int)state);
    assert_true(scalar(f, sql) >= n);
}

#define BATCH 100000

static void test_100k_members_in_one_commit(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    cpns_store_sg sg = make_sg("sg-big", 1, 9);
    assert_int_equal(st->ops->put_sg(st, &sg), 0);
    commit_ok(st);
    members_commit(f, st, 1000, CPNS_MEMBER_PENDING);
    members_commit(f, st, 10000, CPNS_MEMBER_SENT);
    members_commit(f, st, BATCH, CPNS_MEMBER_PENDING);
    members_commit(f, st, BATCH, CPNS_MEMBER_DELIVERED);
    assert_int_equal(scalar(f, "SELECT count(*) FROM member"), BATCH);

    collected c;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = reopen_load(f, st, &c);
    printf("[ info ] reopen + load of %d members %.3f s\n", BATCH, seconds_since(&t0));
    assert_int_equal(c.n_member, BATCH);
    cpns_store_member first = make_member("sg-big", "pne-000000", 1, CPNS_MEMBER_DELIVERED, 0);
    assert_member_equal(&c.member[0], &first);
    cpns_store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_every_op, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_keeps_the_order_of_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_master_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v1_and_newer_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_rows_named_at_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fencing_by_the_active_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_instance_id_twice_one_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonblocking_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_in_the_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_rows_follow_their_sg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_100k_members_in_one_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
