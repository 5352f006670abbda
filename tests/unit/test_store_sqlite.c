/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of what the SQLite store (lib/store_sqlite*.c) has beyond the store
 * ops' semantics (those, on this store as on memory and PostgreSQL:
 * store_suite.h, run by test_store_suite_sqlite.c): a failed write refused
 * at once and the batch refused until rollback; the refusals (wrong master
 * key, tampered or moved secret, newer schema, not a store, out of memory);
 * the lock that keeps a second store off an open database; file modes;
 * secrets never on disk in clear; and a 100,000-member batch in one commit.
 *
 * Each test works in its own directory under /tmp, removed at teardown. The
 * tampering tests edit the file with the plain sqlite3 API, as an attacker
 * with the file would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "support.h"

typedef struct fx {
    char dir[64];
    char path[128];
    uint8_t master_key[CPNS_KEY_LEN];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    test_db_dir("cpns-store-sqlite", f->dir, f->path);
    for (size_t i = 0; i < CPNS_KEY_LEN; i++)
        f->master_key[i] = (uint8_t)(0xa0 + i);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char other[160];
    snprintf(other, sizeof other, "%s/other.db", f->dir);
    unlink(other);
    test_db_dir_remove(f->dir, f->path);
    free(f);
    return 0;
}

static cpns_store *open_ok(const fx *f)
{
    cpns_store *st = NULL;
    char err[256];
    int rv = cpns_store_sqlite_open(&st, f->path, f->master_key, err, sizeof err);
    if (rv)
        fail_msg("open failed: %d %s", rv, err);
    assert_non_null(st);
    return st;
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
    int last_kind;    /* 0 pne, 1 sg, 2 member, 3 nonce */
    int out_of_order; /* a kind came after a later kind */
} collected;

static int seen(collected *c, int kind)
{
    if (kind < c->last_kind)
        c->out_of_order = 1;
    c->last_kind = kind;
    return 0;
}

static int on_pne(void *arg, const cpns_store_pne *p)
{
    collected *c = arg;
    if (c->n_pne < KEEP)
        c->pne[c->n_pne] = *p;
    c->n_pne++;
    return seen(c, 0);
}

static int on_sg(void *arg, const cpns_store_sg *sg)
{
    collected *c = arg;
    if (c->n_sg < KEEP)
        c->sg[c->n_sg] = *sg;
    c->n_sg++;
    return seen(c, 1);
}

static int on_member(void *arg, const cpns_store_member *m)
{
    collected *c = arg;
    if (c->n_member < KEEP)
        c->member[c->n_member] = *m;
    c->n_member++;
    c->attempts_sum += m->attempts;
    return seen(c, 2);
}

static int on_nonce(void *arg, const cpns_store_nonce *n)
{
    collected *c = arg;
    if (c->n_nonce < KEEP)
        c->nonce[c->n_nonce] = *n;
    c->n_nonce++;
    return seen(c, 3);
}

static const cpns_store_loader loader = {on_pne, on_sg, on_member, on_nonce};

/* Closes st, reopens the file and loads it into c (zeroed first); returns the new store. */
static cpns_store *reopen_load(const fx *f, cpns_store *st, collected *c)
{
    cpns_store_free(st);
    st = open_ok(f);
    memset(c, 0, sizeof *c);
    int rv = st->ops->load(st, &loader, c);
    if (rv)
        fail_msg("load failed: %d %s", rv, cpns_store_sqlite_errmsg(st));
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
    p.EUK[0] = (uint8_t)(fill ^ 0x5a);
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

/* Runs sql on the file with a plain connection (the store must be closed). */
static void raw_exec(const fx *f, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("raw sql failed: %s", msg ? msg : "?");
    sqlite3_close(db);
}

/* --- tests --- */

/* A failed write makes commit() refuse the rest of the batch until rollback(). */
static void test_failed_write_poisons_the_batch(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    cpns_store_pne p = make_pne("pne-a", 1, 0);
    cpns_store_member orphan = make_member("sg-none", "pne-a", 1, CPNS_MEMBER_PENDING, 0);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    assert_int_equal(st->ops->put_member(st, &orphan), CPNS_ERR_STORE);
    assert_non_null(strstr(cpns_store_sqlite_errmsg(st), "FOREIGN KEY"));
    assert_int_equal(st->ops->commit(st), CPNS_ERR_STORE);
    assert_int_equal(st->ops->rollback(st), 0);
    assert_int_equal(st->ops->commit(st), 0);
    collected c;
    st = reopen_load(f, st, &c);
    assert_int_equal(c.n_pne, 0);
    assert_string_equal(cpns_store_sqlite_errmsg(NULL), "");
    cpns_store_free(st);
}

static void test_wrong_master_key_refused_at_open(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    cpns_store_pne p = make_pne("pne-a", 1, 0);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    assert_int_equal(st->ops->commit(st), 0);
    cpns_store_free(st);

    uint8_t other[CPNS_KEY_LEN];
    memcpy(other, f->master_key, sizeof other);
    other[31] ^= 1;
    char err[256];
    st = (cpns_store *)1;
    assert_int_equal(cpns_store_sqlite_open(&st, f->path, other, err, sizeof err), CPNS_ERR_STORE);
    assert_null(st);
    assert_non_null(strstr(err, "the master key does not match this database"));
    /* the right key still opens it */
    cpns_store_free(open_ok(f));
}

/* Writes a store with pne-a, pne-b and sg-1 (version 4), then closes it. */
static void write_secrets(const fx *f)
{
    cpns_store *st = open_ok(f);
    cpns_store_pne a = make_pne("pne-a", 1, 1), b = make_pne("pne-b", 2, 1);
    cpns_store_sg sg = make_sg("sg-1", 4, 3);
    assert_int_equal(st->ops->put_pne(st, &a), 0);
    assert_int_equal(st->ops->put_pne(st, &b), 0);
    assert_int_equal(st->ops->put_sg(st, &sg), 0);
    assert_int_equal(st->ops->commit(st), 0);
    cpns_store_free(st);
}

/* Opens the store (which must succeed) and expects load() to fail naming `row`. */
static void expect_load_fails(const fx *f, const char *row)
{
    cpns_store *st = open_ok(f);
    collected c;
    memset(&c, 0, sizeof c);
    assert_int_equal(st->ops->load(st, &loader, &c), CPNS_ERR_STORE);
    const char *msg = cpns_store_sqlite_errmsg(st);
    if (!strstr(msg, row))
        fail_msg("the message does not name %s: %s", row, msg);
    cpns_store_free(st);
}

/* Flips one bit of the encrypted column of one row. */
static void flip_bit(const fx *f, const char *select_sql, const char *update_sql, int offset)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, select_sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    uint8_t blob[128];
    int len = sqlite3_column_bytes(stmt, 0);
    assert_true(len > offset && len <= (int)sizeof blob);
    memcpy(blob, sqlite3_column_blob(stmt, 0), (size_t)len);
    sqlite3_finalize(stmt);
    blob[offset] ^= 0x01;
    assert_int_equal(sqlite3_prepare_v2(db, update_sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_bind_blob(stmt, 1, blob, len, SQLITE_TRANSIENT), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

static void test_tampered_euk_refused_at_load(void **state)
{
    fx *f = *state;
    write_secrets(f);
    /* a byte of the ciphertext */
    flip_bit(f, "SELECT euk FROM pne WHERE pneid = 'pne-b'",
             "UPDATE pne SET euk = ?1 WHERE pneid = 'pne-b'", 20);
    expect_load_fails(f, "pne-b");
}

static void test_tampered_gk_refused_at_load(void **state)
{
    fx *f = *state;
    write_secrets(f);
    flip_bit(f, "SELECT gk FROM sg WHERE sgid = 'sg-1'",
             "UPDATE sg SET gk = ?1 WHERE sgid = 'sg-1'",
             1 + CPNS_GCM_NONCE_LEN + CPNS_KEY_LEN + 3); /* inside the tag */
    expect_load_fails(f, "sg-1");
}

static void test_moved_euk_refused_at_load(void **state)
{
    fx *f = *state;
    write_secrets(f);
    raw_exec(f, "UPDATE pne SET euk = (SELECT euk FROM pne WHERE pneid = 'pne-a')"
                " WHERE pneid = 'pne-b'");
    expect_load_fails(f, "pne-b");
}

static void test_gk_with_edited_key_version_refused_at_load(void **state)
{
    fx *f = *state;
    write_secrets(f);
    raw_exec(f, "UPDATE sg SET key_version = 5 WHERE sgid = 'sg-1'");
    expect_load_fails(f, "sg-1");
}

static void test_gk_moved_to_another_sg_refused_at_load(void **state)
{
    fx *f = *state;
    write_secrets(f);
    raw_exec(f, "INSERT INTO sg(sgid, key_version, gk)"
                " SELECT 'sg-2', key_version, gk FROM sg WHERE sgid = 'sg-1'");
    expect_load_fails(f, "sg-2");
}

static void test_newer_schema_refused(void **state)
{
    fx *f = *state;
    cpns_store_free(open_ok(f));
    raw_exec(f, "UPDATE meta SET value = 3 WHERE name = 'schema_version'");
    char err[256];
    cpns_store *st = NULL;
    assert_int_equal(cpns_store_sqlite_open(&st, f->path, f->master_key, err, sizeof err),
                     CPNS_ERR_STORE);
    assert_null(st);
    assert_non_null(strstr(err, "schema version 3"));
    assert_non_null(strstr(err, "newer"));
    /* the current version opens again */
    raw_exec(f, "UPDATE meta SET value = 2 WHERE name = 'schema_version'");
    cpns_store_free(open_ok(f));
}

/* Out of memory at each of the store's own allocations: a clean refusal, nothing leaked. */
static void test_open_out_of_memory(void **state)
{
    fx *f = *state;
    cpns_store_free(open_ok(f)); /* the file exists: each try below only opens it */
    int opened = 0;
    for (long fail_at = 1; fail_at <= 8 && !opened; fail_at++) {
        test_counting c = {0};
        c.fail_at = fail_at;
        cpns_allocator a = test_counting_allocator(&c);
        cpns_set_allocator(&a);
        cpns_store *st = NULL;
        char err[256];
        int rv = cpns_store_sqlite_open(&st, f->path, f->master_key, err, sizeof err);
        if (rv == 0) {
            assert_false(c.failed); /* every allocation succeeded: all were tried */
            opened = 1;
        } else {
            assert_true(c.failed);
            assert_true(rv == CPNS_ERR_NOMEM || rv == CPNS_ERR_STORE);
            assert_null(st);
        }
        cpns_store_free(st);
        cpns_set_allocator(NULL);
        assert_int_equal(c.live, 0);
    }
    assert_true(opened);
}

static void test_not_a_store_refused(void **state)
{
    fx *f = *state;
    char err[256];
    cpns_store *st = NULL;
    raw_exec(f, "CREATE TABLE t(x)");
    assert_int_equal(cpns_store_sqlite_open(&st, f->path, f->master_key, err, sizeof err),
                     CPNS_ERR_STORE);
    assert_non_null(strstr(err, "not a CPNS server store"));

    char other[160];
    snprintf(other, sizeof other, "%s/other.db", f->dir);
    FILE *fp = fopen(other, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 4096; i++)
        fputc('x', fp);
    fclose(fp);
    assert_int_equal(cpns_store_sqlite_open(&st, other, f->master_key, err, sizeof err),
                     CPNS_ERR_STORE);
    assert_non_null(strstr(err, other));

    snprintf(other, sizeof other, "%s/no/such/dir.db", f->dir);
    assert_int_equal(cpns_store_sqlite_open(&st, other, f->master_key, err, sizeof err),
                     CPNS_ERR_STORE);
    assert_non_null(strstr(err, "No such file"));
}

static void assert_mode_0600(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        fail_msg("%s is missing", path);
    if ((sb.st_mode & 0777) != 0600)
        fail_msg("%s has mode %o", path, (unsigned)(sb.st_mode & 0777));
}

static void test_files_are_0600(void **state)
{
    fx *f = *state;
    /* even with a permissive umask */
    mode_t old = umask(0);
    cpns_store *st = open_ok(f);
    cpns_store_pne p = make_pne("pne-a", 1, 0);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    assert_int_equal(st->ops->commit(st), 0);
    umask(old);
    char path[160];
    assert_mode_0600(f->path);
    snprintf(path, sizeof path, "%s-wal", f->path);
    assert_mode_0600(path);
    snprintf(path, sizeof path, "%s-shm", f->path);
    assert_mode_0600(path);
    snprintf(path, sizeof path, "%s.lock", f->path);
    assert_mode_0600(path);
    cpns_store_free(st);
}

/* A second open of f's database: its return, with err and *out checked. */
static int open_again(const fx *f, char *err, size_t errlen)
{
    cpns_store *st = (cpns_store *)1;
    int rv = cpns_store_sqlite_open(&st, f->path, f->master_key, err, errlen);
    if (rv == 0)
        cpns_store_free(st);
    else
        assert_null(st);
    return rv;
}

/*
 * #10.10: two stores on one file kept their own state and silently diverged.
 * A second open, from this process or another, is refused with CPNS_ERR_BUSY
 * naming the file and the holder's PID, without disturbing the holder; after
 * close the file opens again and the lock file is gone.
 */
static void test_second_open_is_busy(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    char err[512], want[64], lock[160];
    assert_int_equal(open_again(f, err, sizeof err), CPNS_ERR_BUSY);
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "in use by another process"));
    snprintf(want, sizeof want, "PID %ld holds", (long)getpid());
    assert_non_null(strstr(err, want));
    assert_string_equal(cpns_strerror(CPNS_ERR_BUSY), "in use by another process");

    /* another process is refused too, and its failure leaves the lock in place */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char e[512];
        cpns_store *o = NULL;
        _exit(cpns_store_sqlite_open(&o, f->path, f->master_key, e, sizeof e) == CPNS_ERR_BUSY ? 0
                                                                                               : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(open_again(f, err, sizeof err), CPNS_ERR_BUSY);

    /* the holder is unaffected */
    cpns_store_pne p = make_pne("pne-a", 1, 0);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    assert_int_equal(st->ops->commit(st), 0);
    cpns_store_free(st);

    snprintf(lock, sizeof lock, "%s.lock", f->path);
    assert_int_equal(access(lock, F_OK), -1);
    collected c;
    st = reopen_load(f, NULL, &c);
    assert_int_equal(c.n_pne, 1);
    cpns_store_free(st);
}

/* A lock file left by a crash (unlocked, a dead PID in it) does not keep the database shut. */
static void test_stale_lock_file_taken_over(void **state)
{
    fx *f = *state;
    char lock[160];
    snprintf(lock, sizeof lock, "%s.lock", f->path);
    FILE *fp = fopen(lock, "w");
    assert_non_null(fp);
    fputs("999999999\n", fp);
    fclose(fp);
    cpns_store *st = open_ok(f);
    char err[512];
    assert_int_equal(open_again(f, err, sizeof err), CPNS_ERR_BUSY);
    char want[64];
    snprintf(want, sizeof want, "PID %ld holds", (long)getpid());
    assert_non_null(strstr(err, want));
    cpns_store_free(st);
}

/* Whether needle occurs in the bytes of file path (a missing file has nothing). */
static int file_contains(const char *path, const uint8_t *needle, size_t n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    static uint8_t buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, needle, n) == 0)
            return 1;
    return 0;
}

static void test_secrets_not_in_clear_on_disk(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    cpns_store_pne p = make_pne("pne-a", 0xc3, 0);
    cpns_store_sg sg = make_sg("sg-1", 1, 0xd4);
    assert_int_equal(st->ops->put_pne(st, &p), 0);
    assert_int_equal(st->ops->put_sg(st, &sg), 0);
    assert_int_equal(st->ops->commit(st), 0);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    /* the check is real: the PNEID, stored in clear, is found */
    assert_true(file_contains(wal, (const uint8_t *)"pne-a", 5) ||
                file_contains(f->path, (const uint8_t *)"pne-a", 5));
    assert_false(file_contains(wal, p.EUK, CPNS_KEY_LEN));
    assert_false(file_contains(wal, sg.GK, CPNS_KEY_LEN));
    cpns_store_free(st);
    assert_false(file_contains(f->path, p.EUK, CPNS_KEY_LEN));
    assert_false(file_contains(f->path, sg.GK, CPNS_KEY_LEN));
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

#define BATCH 100000

/* Group commit: 100,000 member rows, one commit, all there after reopening. */
static void test_100k_members_in_one_commit(void **state)
{
    fx *f = *state;
    cpns_store *st = open_ok(f);
    cpns_store_sg sg = make_sg("sg-big", 1, 9);
    assert_int_equal(st->ops->put_sg(st, &sg), 0);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t attempts_sum = 0;
    char PNEID[CPNS_ID_MAX + 1];
    for (int i = 0; i < BATCH; i++) {
        snprintf(PNEID, sizeof PNEID, "pne-%06d", i);
        cpns_store_member m =
            make_member("sg-big", PNEID, 1, (cpns_member_state)(i % 4), (uint32_t)(i % 7));
        attempts_sum += m.attempts;
        assert_int_equal(st->ops->put_member(st, &m), 0);
    }
    double put_s = seconds_since(&t0);
    assert_int_equal(st->ops->commit(st), 0);
    double total_s = seconds_since(&t0);

    collected c;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = reopen_load(f, st, &c);
    double load_s = seconds_since(&t0);
    assert_int_equal(c.n_sg, 1);
    assert_int_equal(c.n_member, BATCH);
    assert_int_equal(c.attempts_sum, attempts_sum);
    cpns_store_member first = make_member("sg-big", "pne-000000", 1, CPNS_MEMBER_PENDING, 0);
    assert_member_equal(&c.member[0], &first);
    cpns_store_member fifth = make_member("sg-big", "pne-000005", 1, CPNS_MEMBER_SENT, 5);
    assert_member_equal(&c.member[5], &fifth);
    printf("[ info ] %d member upserts %.3f s, + one commit %.3f s; reopen + load %.3f s\n", BATCH,
           put_s, total_s, load_s);
    cpns_store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failed_write_poisons_the_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_master_key_refused_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_euk_refused_at_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_gk_refused_at_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_euk_refused_at_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gk_with_edited_key_version_refused_at_load, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gk_moved_to_another_sg_refused_at_load, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_store_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_are_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_open_is_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_lock_file_taken_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_not_in_clear_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_100k_members_in_one_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
