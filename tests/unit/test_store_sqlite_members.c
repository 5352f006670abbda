/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the SQLite store's member log (lib/store_sqlite_members.c): one
 * member_log row per SG and commit; compaction keeping the log bounded; a
 * member of an SG deleted in the same transaction refused; the varint
 * encoding's lengths; records that do not parse refused at load; and the
 * migration of a schema version 1 member table. What loads after any
 * sequence of member ops (the last record of a PNEID winning, a deletion
 * hiding it, extremes of every field) is the store suite's, on every
 * backend: store_suite.h, run by test_store_suite_sqlite.c.
 *
 * The file is inspected and edited with the plain sqlite3 API, as in
 * test_store_sqlite.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "support.h"

typedef struct fx {
    char dir[64];
    char path[128];
    uint8_t master_key[CPNS_KEY_LEN];
    cpns_store *st;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    test_db_dir("cpns-store-log", f->dir, f->path);
    memset(f->master_key, 0x3c, sizeof f->master_key);
    char err[256];
    if (cpns_store_sqlite_open(&f->st, f->path, f->master_key, err, sizeof err) != 0)
        fail_msg("open failed: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    cpns_store_free(f->st);
    test_db_dir_remove(f->dir, f->path);
    free(f);
    return 0;
}

/* --- the file, seen with a plain connection --- */

static void raw_exec(const fx *f, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("raw sql failed: %s", msg ? msg : "?");
    sqlite3_close(db);
}

static int64_t raw_int(const fx *f, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return v;
}

/* --- loading --- */

#define MAX_MEMBERS 64

typedef struct loaded {
    cpns_store_member m[MAX_MEMBERS];
    size_t n;
} loaded;

static int on_pne(void *arg, const cpns_store_pne *p)
{
    (void)arg, (void)p;
    return 0;
}

static int on_sg(void *arg, const cpns_store_sg *sg)
{
    (void)arg, (void)sg;
    return 0;
}

static int on_member(void *arg, const cpns_store_member *m)
{
    loaded *l = arg;
    assert_true(l->n < MAX_MEMBERS);
    l->m[l->n++] = *m;
    return 0;
}

static int on_nonce(void *arg, const cpns_store_nonce *n)
{
    (void)arg, (void)n;
    return 0;
}

static const cpns_store_loader loader = {on_pne, on_sg, on_member, on_nonce};

/* Closes the store, reopens the file and loads its members (in load order) into l. */
static int reopen_load(fx *f, loaded *l)
{
    cpns_store_free(f->st);
    f->st = NULL;
    char err[256];
    int rv = cpns_store_sqlite_open(&f->st, f->path, f->master_key, err, sizeof err);
    if (rv)
        return rv;
    memset(l, 0, sizeof *l);
    return f->st->ops->load(f->st, &loader, l);
}

/* --- writing --- */

static cpns_store_member member(const char *SGID, const char *PNEID, cpns_member_state state,
                                uint32_t attempts)
{
    cpns_store_member m;
    memset(&m, 0, sizeof m);
    strcpy(m.SGID, SGID);
    strcpy(m.PNEID, PNEID);
    m.KeyVersion = 7;
    m.state = state;
    m.Return = state == CPNS_MEMBER_DELIVERED ? 1 : -1;
    m.fail_reason = state == CPNS_MEMBER_FAILED ? 5 : -1;
    m.attempts = attempts;
    m.malformed = attempts % 3;
    if (state == CPNS_MEMBER_DELIVERED)
        strcpy(m.PNID, "pn-home");
    return m;
}

static void put(fx *f, const char *SGID, const char *PNEID, cpns_member_state state,
                uint32_t attempts)
{
    cpns_store_member m = member(SGID, PNEID, state, attempts);
    assert_int_equal(f->st->ops->put_member(f->st, &m), 0);
}

static void put_sg(fx *f, const char *SGID)
{
    cpns_store_sg sg;
    memset(&sg, 0, sizeof sg);
    strcpy(sg.SGID, SGID);
    sg.KeyVersion = 7;
    memset(sg.GK, 0x11, sizeof sg.GK);
    assert_int_equal(f->st->ops->put_sg(f->st, &sg), 0);
}

static void assert_member(const cpns_store_member *got, const char *SGID, const char *PNEID,
                          cpns_member_state state, uint32_t attempts)
{
    cpns_store_member want = member(SGID, PNEID, state, attempts);
    assert_string_equal(got->SGID, want.SGID);
    assert_string_equal(got->PNEID, want.PNEID);
    assert_int_equal(got->KeyVersion, want.KeyVersion);
    assert_int_equal(got->state, want.state);
    assert_int_equal(got->Return, want.Return);
    assert_int_equal(got->fail_reason, want.fail_reason);
    assert_int_equal(got->attempts, want.attempts);
    assert_int_equal(got->malformed, want.malformed);
    assert_string_equal(got->PNID, want.PNID);
}

/* --- tests --- */

static void test_one_row_per_sg_and_commit(void **state)
{
    fx *f = *state;
    put_sg(f, "sg-1");
    put_sg(f, "sg-2");
    put(f, "sg-1", "pne-b", CPNS_MEMBER_PENDING, 0);
    put(f, "sg-2", "pne-a", CPNS_MEMBER_PENDING, 0);
    put(f, "sg-1", "pne-a", CPNS_MEMBER_PENDING, 0);
    assert_int_equal(f->st->ops->commit(f->st), 0);
    put(f, "sg-1", "pne-a", CPNS_MEMBER_SENT, 1);
    put(f, "sg-1", "pne-b", CPNS_MEMBER_SENT, 1);
    assert_int_equal(f->st->ops->commit(f->st), 0);
    /* a commit without member writes appends nothing */
    put_sg(f, "sg-2");
    assert_int_equal(f->st->ops->commit(f->st), 0);

    assert_int_equal(raw_int(f, "SELECT count(*) FROM member_log"), 3);
    assert_int_equal(raw_int(f, "SELECT sum(records) FROM member_log WHERE sgid = 'sg-1'"), 4);
    loaded l;
    assert_int_equal(reopen_load(f, &l), 0);
    assert_int_equal(l.n, 3);
    assert_member(&l.m[0], "sg-1", "pne-a", CPNS_MEMBER_SENT, 1);
    assert_member(&l.m[1], "sg-1", "pne-b", CPNS_MEMBER_SENT, 1);
    assert_member(&l.m[2], "sg-2", "pne-a", CPNS_MEMBER_PENDING, 0);
}

/* Updating the same 10 members 300 times: the log is compacted and stays small. */
static void test_compaction_bounds_the_log(void **state)
{
    fx *f = *state;
    put_sg(f, "sg-1");
    put_sg(f, "sg-2");
    put(f, "sg-2", "pne-x", CPNS_MEMBER_PENDING, 0);
    char PNEID[16];
    for (uint32_t round = 0; round < 300; round++) {
        for (int i = 0; i < 10; i++) {
            snprintf(PNEID, sizeof PNEID, "pne-%02d", i);
            put(f, "sg-1", PNEID, (cpns_member_state)(round % 4), round);
        }
        if (round == 150)
            assert_int_equal(f->st->ops->del_member(f->st, "sg-1", "pne-09"), 0);
        assert_int_equal(f->st->ops->commit(f->st), 0);
        int64_t records = raw_int(f, "SELECT total(records) FROM member_log WHERE sgid = 'sg-1'");
        /* twice the 10 members of the first row, the slack, and this commit's 10 */
        assert_true(records <= 2 * 10 + 1024 + 10);
    }
    /* it did compact (3,000 records were written), and left the other SG alone */
    assert_true(raw_int(f, "SELECT count(*) FROM member_log WHERE sgid = 'sg-1'") < 300);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM member_log WHERE sgid = 'sg-2'"), 1);
    loaded l;
    assert_int_equal(reopen_load(f, &l), 0);
    assert_int_equal(l.n, 11);
    for (int i = 0; i < 10; i++) {
        snprintf(PNEID, sizeof PNEID, "pne-%02d", i);
        assert_member(&l.m[i], "sg-1", PNEID, (cpns_member_state)(299 % 4), 299);
    }
    assert_member(&l.m[10], "sg-2", "pne-x", CPNS_MEMBER_PENDING, 0);
}

typedef struct counted {
    size_t n, sent;
    uint32_t attempts_of_7; /* pne-0007's */
} counted;

static int count_member(void *arg, const cpns_store_member *m)
{
    counted *c = arg;
    c->n++;
    c->sent += m->state == CPNS_MEMBER_SENT;
    if (strcmp(m->PNEID, "pne-0007") == 0)
        c->attempts_of_7 = m->attempts;
    return 0;
}

/* One member changed per commit: the rows stay at most 1,024, far below twice the group's size. */
static void test_compaction_bounds_the_rows(void **state)
{
    fx *f = *state;
    put_sg(f, "sg-1");
    char PNEID[16];
    for (int i = 0; i < 3000; i++) {
        snprintf(PNEID, sizeof PNEID, "pne-%04d", i);
        put(f, "sg-1", PNEID, CPNS_MEMBER_PENDING, 0);
    }
    assert_int_equal(f->st->ops->commit(f->st), 0);
    int64_t most = 0;
    for (uint32_t k = 1; k <= 1100; k++) {
        /* k * 7 % 3000 is a different member for every k up to 1,100 */
        snprintf(PNEID, sizeof PNEID, "pne-%04u", (unsigned)(k * 7 % 3000));
        put(f, "sg-1", PNEID, CPNS_MEMBER_SENT, k);
        assert_int_equal(f->st->ops->commit(f->st), 0);
        int64_t rows = raw_int(f, "SELECT count(*) FROM member_log");
        most = rows > most ? rows : most;
    }
    /* the commit that made it 1,025 compacted it to one row */
    assert_int_equal(most, 1024);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM member_log"), 1 + 1100 - 1024);
    cpns_store_free(f->st);
    f->st = NULL;
    char err[256];
    assert_int_equal(cpns_store_sqlite_open(&f->st, f->path, f->master_key, err, sizeof err), 0);
    counted c = {0};
    const cpns_store_loader counter = {on_pne, on_sg, count_member, on_nonce};
    assert_int_equal(f->st->ops->load(f->st, &counter, &c), 0);
    assert_int_equal(c.n, 3000);
    assert_int_equal(c.sent, 1100);
    assert_int_equal(c.attempts_of_7, 1);
}

/*
 * A member of an SG deleted earlier in the transaction is refused at once
 * (the foreign key), and so is the commit until rollback; the SG's records
 * of the transaction went with it (store_suite.h checks what loads after a
 * deletion and re-creation in one batch).
 */
static void test_member_of_a_deleted_sg_refused(void **state)
{
    fx *f = *state;
    put_sg(f, "sg-1");
    put(f, "sg-1", "pne-a", CPNS_MEMBER_PENDING, 0);
    assert_int_equal(f->st->ops->del_sg(f->st, "sg-1"), 0);
    cpns_store_member m = member("sg-1", "pne-b", CPNS_MEMBER_PENDING, 0);
    assert_int_equal(f->st->ops->put_member(f->st, &m), CPNS_ERR_STORE);
    assert_non_null(strstr(cpns_store_sqlite_errmsg(f->st), "FOREIGN KEY"));
    assert_int_equal(f->st->ops->commit(f->st), CPNS_ERR_STORE);
    assert_int_equal(f->st->ops->rollback(f->st), 0);
    assert_int_equal(f->st->ops->commit(f->st), 0);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM member_log"), 0);
}

/*
 * The extremes of every field take varints of 1 to 5 bytes: the row is
 * exactly the two records (store_suite.h checks that they load back).
 */
static void test_extreme_values_encoding(void **state)
{
    fx *f = *state;
    put_sg(f, "sg-1");
    cpns_store_member lo = member("sg-1", "pne-lo", CPNS_MEMBER_FAILED, UINT32_MAX);
    lo.KeyVersion = CPNS_KEYVERSION_MAX;
    lo.Return = INT32_MIN;
    lo.fail_reason = INT32_MAX;
    lo.malformed = 128;
    memset(lo.PNID, 'p', CPNS_ID_MAX);
    lo.PNID[CPNS_ID_MAX] = '\0';
    cpns_store_member hi = member("sg-1", "pne-zz", CPNS_MEMBER_PENDING, 127);
    hi.KeyVersion = 0;
    hi.Return = 0;
    hi.fail_reason = -2;
    hi.malformed = 16384;
    assert_int_equal(f->st->ops->put_member(f->st, &lo), 0);
    assert_int_equal(f->st->ops->put_member(f->st, &hi), 0);
    assert_int_equal(f->st->ops->commit(f->st), 0);
    assert_int_equal(raw_int(f, "SELECT length(rows) FROM member_log"),
                     (2 + 6 + 1 + 5 + 5 + 5 + 5 + 2 + 1 + 64) +
                         (2 + 6 + 1 + 1 + 1 + 1 + 1 + 3 + 1));
    loaded l;
    assert_int_equal(reopen_load(f, &l), 0);
    assert_int_equal(l.n, 2);
}

/* A row whose records do not parse is refused at load, naming its SG. */
static void test_malformed_records_refused(void **state)
{
    fx *f = *state;
    static const char *const bad[] = {
        "x'50'",                             /* a put cut after its tag */
        "x'5005706e652d61'",                 /* a put without its delivery state */
        "x'4400'",                           /* an empty PNEID */
        "x'5805706e652d61'",                 /* an unknown tag */
        "x'50016109000101000000'",           /* state 9 */
        "x'5001610080000101000000'",         /* a varint that is not minimal */
        "x'5001610080'",                     /* a varint cut short */
        "x'500161008080808080010101000000'", /* a varint of six bytes */
        "x'5001610000010100000005616263'",   /* a PNID longer than the row */
        "x'4405706e652d00'",                 /* a NUL inside the PNEID */
        "x'4405706e652d61ff'",               /* a byte after the last record */
        "x'4440706e652d61'",                 /* a PNEID longer than the row */
    };
    put_sg(f, "sg-bad");
    put(f, "sg-bad", "pne-a", CPNS_MEMBER_PENDING, 0);
    assert_int_equal(f->st->ops->commit(f->st), 0);
    loaded l;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cpns_store_free(f->st);
        f->st = NULL;
        char sql[160];
        snprintf(sql, sizeof sql, "UPDATE member_log SET rows = %s", bad[i]);
        raw_exec(f, sql);
        assert_int_equal(reopen_load(f, &l), CPNS_ERR_STORE);
        const char *msg = cpns_store_sqlite_errmsg(f->st);
        if (!strstr(msg, "sg-bad") || !strstr(msg, "malformed"))
            fail_msg("record %zu: %s", i, msg);
    }
}

/*
 * Hostile bytes in member_log (a damaged disk, an edited file): 400 rows made
 * by flipping, cutting or extending a valid one. Each load either refuses the
 * file naming the SG or loads members that are whole; none may crash (the
 * sanitizer build runs this too).
 */
static void test_damaged_rows_never_crash(void **state)
{
    fx *f = *state;
    put_sg(f, "sg-1");
    put(f, "sg-1", "pne-b", CPNS_MEMBER_DELIVERED, 2);
    assert_int_equal(f->st->ops->del_member(f->st, "sg-1", "pne-c"), 0);
    put(f, "sg-1", "pne-a", CPNS_MEMBER_FAILED, 300);
    assert_int_equal(f->st->ops->commit(f->st), 0);
    uint8_t good[256];
    size_t good_len = (size_t)raw_int(f, "SELECT length(rows) FROM member_log");
    assert_true(good_len <= sizeof good);
    cpns_store_free(f->st);
    f->st = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT rows FROM member_log", -1, &stmt, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    memcpy(good, sqlite3_column_blob(stmt, 0), good_len);
    sqlite3_finalize(stmt);

    uint64_t seed = 0x5eed;
    size_t refused = 0;
    for (int round = 0; round < 400; round++) {
        uint8_t bad[300], r[8];
        memcpy(bad, good, good_len);
        size_t len = good_len;
        test_rand(&seed, r, sizeof r);
        switch (r[0] % 3) {
        case 0: /* flip one to three bytes */
            for (int k = 0; k <= r[1] % 3; k++)
                bad[r[2 + k] % len] ^= (uint8_t)(r[5 + k] | 1);
            break;
        case 1: /* cut */
            len = r[1] % len;
            break;
        default: /* random bytes after the records */
            test_rand(&seed, bad + len, r[1] % 40 + 1);
            len += r[1] % 40 + 1;
            break;
        }
        assert_int_equal(sqlite3_prepare_v2(db, "UPDATE member_log SET rows = ?1", -1, &stmt, NULL),
                         SQLITE_OK);
        sqlite3_bind_blob(stmt, 1, bad, (int)len, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
        sqlite3_finalize(stmt);
        loaded l;
        int rv = reopen_load(f, &l);
        cpns_store_free(f->st);
        f->st = NULL;
        if (rv == CPNS_ERR_STORE) {
            refused++;
            continue;
        }
        assert_int_equal(rv, 0);
        for (size_t i = 0; i < l.n; i++) {
            assert_true(l.m[i].PNEID[0] && strlen(l.m[i].PNEID) <= CPNS_ID_MAX);
            assert_true(l.m[i].state <= CPNS_MEMBER_FAILED);
            assert_true(strlen(l.m[i].PNID) <= CPNS_ID_MAX);
        }
    }
    sqlite3_close(db);
    /* most damage is caught; some (a flipped count or name byte) loads as other values */
    assert_true(refused > 100);
}

/* Turns the store's file back into a schema version 1 file whose member table holds `rows`. */
static void make_v1(fx *f, const char *rows)
{
    cpns_store_free(f->st);
    f->st = NULL;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "DROP TABLE member_log;"
             "CREATE TABLE member(sgid TEXT NOT NULL REFERENCES sg(sgid) ON DELETE CASCADE,"
             " pneid TEXT NOT NULL, key_version INTEGER NOT NULL, state INTEGER NOT NULL,"
             " ret INTEGER NOT NULL, fail_reason INTEGER NOT NULL, attempts INTEGER NOT NULL,"
             " malformed INTEGER NOT NULL, pnid TEXT NOT NULL,"
             " PRIMARY KEY(sgid, pneid)) WITHOUT ROWID;"
             "INSERT INTO member VALUES %s;"
             "UPDATE meta SET value = 1 WHERE name = 'schema_version'",
             rows);
    raw_exec(f, sql);
}

/* A schema version 1 file: its member table becomes member_log, then is dropped. */
static void test_migration_from_schema_1(void **state)
{
    fx *f = *state;
    put_sg(f, "sg-1");
    put_sg(f, "sg-2");
    assert_int_equal(f->st->ops->commit(f->st), 0);
    make_v1(f, "('sg-2', 'pne-a', 7, 0, -1, -1, 0, 0, ''),"
               " ('sg-1', 'pne-b', 7, 2, 1, -1, 4, 1, 'pn-home'),"
               " ('sg-1', 'pne-a', 7, 3, -1, 5, 2, 2, '')");
    loaded l;
    assert_int_equal(reopen_load(f, &l), 0);
    assert_int_equal(l.n, 3);
    assert_member(&l.m[0], "sg-1", "pne-a", CPNS_MEMBER_FAILED, 2);
    assert_member(&l.m[1], "sg-1", "pne-b", CPNS_MEMBER_DELIVERED, 4);
    assert_member(&l.m[2], "sg-2", "pne-a", CPNS_MEMBER_PENDING, 0);
    assert_int_equal(raw_int(f, "SELECT value FROM meta WHERE name = 'schema_version'"), 2);
    assert_int_equal(
        raw_int(f, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'member'"),
        0);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM member_log"), 2);
}

/* A damaged version 1 row stops the migration: the file is left as it was. */
static void test_migration_refuses_a_damaged_row(void **state)
{
    fx *f = *state;
    put_sg(f, "sg-1");
    assert_int_equal(f->st->ops->commit(f->st), 0);
    make_v1(f, "('sg-1', 'pne-a', 7, 9, -1, -1, 0, 0, '')");
    char err[256];
    assert_int_equal(cpns_store_sqlite_open(&f->st, f->path, f->master_key, err, sizeof err),
                     CPNS_ERR_STORE);
    assert_non_null(strstr(err, "pne-a"));
    assert_int_equal(raw_int(f, "SELECT value FROM meta WHERE name = 'schema_version'"), 1);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM member"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_row_per_sg_and_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_bounds_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_bounds_the_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_of_a_deleted_sg_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extreme_values_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_records_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_rows_never_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_schema_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_refuses_a_damaged_row, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
