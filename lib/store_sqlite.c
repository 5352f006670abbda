/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite backend of the server store (store.h): opening the database,
 * its versioned schema, the batch transaction and closing.
 *
 * The database runs in WAL mode with synchronous=FULL, so a commit() that
 * returned is on disk, and with foreign keys on, so deleting an SG deletes its
 * members. Writes do not commit one by one: the first write after a commit
 * opens a transaction (BEGIN IMMEDIATE) and commit() ends it, so the engine's
 * group commit costs one fsync per batch however many rows it touched.
 *
 * The schema is versioned in the meta table (schema_version). A new file is
 * brought from version 0 to the current version by the steps of `migrations`,
 * each in the same transaction as the version bump; a later schema adds a step
 * (SQL, and C code when rows must be rewritten, e.g. re-encrypted). A file
 * newer than this code is refused rather than half understood.
 *
 * meta also holds a check value, a known text sealed under the store key, so
 * that a wrong master key is reported at open rather than as damaged rows at
 * load. The row ops and load() are in store_sqlite_ops.c, the sealing in
 * store_seal.c (shared with the PostgreSQL store).
 *
 * One store owns a database: open() takes an exclusive flock() on
 * "<path>.lock" and holds it until close(). SQLite's own locking only keeps
 * transactions apart; two servers on one file would each keep their own
 * in-memory state and silently diverge (issue #10.10). A second open() fails
 * with CPNS_ERR_BUSY and the holder's PID, which the holder writes into the
 * lock file. close() removes the lock file; after a crash it stays, unlocked,
 * and the next open() takes it over.
 */
#define _DEFAULT_SOURCE /* flock() */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_sqlite_internal.h"

#define BUSY_TIMEOUT_MS 5000
#define SQLITE_CACHE_KB "65536" /* PRAGMA cache_size, in KiB (SQLite's default is 2,000) */

static const char schema_v1[] =
    "CREATE TABLE meta(name TEXT PRIMARY KEY NOT NULL, value);"
    "CREATE TABLE pne(pneid TEXT PRIMARY KEY NOT NULL, euk BLOB NOT NULL,"
    " registered INTEGER NOT NULL, pngwid TEXT NOT NULL, pnid TEXT NOT NULL);"
    "CREATE TABLE sg(sgid TEXT PRIMARY KEY NOT NULL, key_version INTEGER NOT NULL, gk BLOB,"
    " CHECK ((key_version = 0) = (gk IS NULL)));"
    "CREATE TABLE member(sgid TEXT NOT NULL REFERENCES sg(sgid) ON DELETE CASCADE,"
    " pneid TEXT NOT NULL, key_version INTEGER NOT NULL, state INTEGER NOT NULL,"
    " ret INTEGER NOT NULL, fail_reason INTEGER NOT NULL, attempts INTEGER NOT NULL,"
    " malformed INTEGER NOT NULL, pnid TEXT NOT NULL,"
    " PRIMARY KEY(sgid, pneid)) WITHOUT ROWID;"
    "CREATE TABLE nonce(pneid TEXT NOT NULL, nonce BLOB NOT NULL, seen_ms INTEGER NOT NULL,"
    " PRIMARY KEY(pneid, nonce)) WITHOUT ROWID;"
    "CREATE INDEX nonce_seen_ms ON nonce(seen_ms);";

/*
 * Version 2: member rows become a log of record batches, one row per SG and
 * commit (store_sqlite_members.c); the member table is converted and dropped.
 */
static const char schema_v2[] = "CREATE TABLE member_log(seq INTEGER PRIMARY KEY,"
                                " sgid TEXT NOT NULL REFERENCES sg(sgid) ON DELETE CASCADE,"
                                " records INTEGER NOT NULL, rows BLOB NOT NULL);"
                                "CREATE INDEX member_log_sgid ON member_log(sgid, seq);";

static int put_check_value(cpns_store_sqlite *s);

/*
 * Step i brings the schema from version to_version - 1 to to_version: its SQL,
 * then its C code (NULL when there is none), in one transaction with the
 * version bump. Append steps; never edit a released one.
 */
static const struct sqlite_migration {
    int to_version;
    const char *sql;
    int (*fn)(cpns_store_sqlite *s);
} migrations[] = {
    {1, schema_v1, put_check_value},
    {2, schema_v2, sqlite_members_from_table},
};

#define SCHEMA_VERSION (migrations[CPNS_ARRAY_LEN(migrations) - 1].to_version)

static const char *const stmt_sql[SQ_COUNT] = {
    [SQ_BEGIN] = "BEGIN IMMEDIATE",
    [SQ_BEGIN_READ] = "BEGIN",
    [SQ_COMMIT] = "COMMIT",
    [SQ_ROLLBACK] = "ROLLBACK",
    [SQ_PUT_PNE] =
        "INSERT INTO pne(pneid, euk, registered, pngwid, pnid) VALUES (?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT(pneid) DO UPDATE SET euk = excluded.euk,"
        " registered = excluded.registered, pngwid = excluded.pngwid,"
        " pnid = excluded.pnid",
    [SQ_PUT_SG] = "INSERT INTO sg(sgid, key_version, gk) VALUES (?1, ?2, ?3)"
                  " ON CONFLICT(sgid) DO UPDATE SET key_version = excluded.key_version,"
                  " gk = excluded.gk",
    [SQ_DEL_SG] = "DELETE FROM sg WHERE sgid = ?1",
    [SQ_SG_EXISTS] = "SELECT 1 FROM sg WHERE sgid = ?1",
    [SQ_LOG_APPEND] = SQLITE_LOG_APPEND_SQL,
    [SQ_LOG_STATS] = "SELECT count(*), total(records), (SELECT records FROM member_log"
                     " WHERE sgid = ?1 ORDER BY seq LIMIT 1) FROM member_log WHERE sgid = ?1",
    [SQ_LOG_READ] = "SELECT rows FROM member_log WHERE sgid = ?1 ORDER BY seq",
    [SQ_LOG_CLEAR] = "DELETE FROM member_log WHERE sgid = ?1",
    [SQ_PUT_NONCE] = "INSERT INTO nonce(pneid, nonce, seen_ms) VALUES (?1, ?2, ?3)"
                     " ON CONFLICT(pneid, nonce) DO UPDATE SET seen_ms = excluded.seen_ms",
    [SQ_EXPIRE_NONCES] = "DELETE FROM nonce WHERE seen_ms < ?1",
    [SQ_LOAD_PNE] = "SELECT pneid, euk, registered, pngwid, pnid FROM pne ORDER BY pneid",
    [SQ_LOAD_SG] = "SELECT sgid, key_version, gk FROM sg ORDER BY sgid",
    [SQ_LOAD_MEMBER] = "SELECT sgid, rows FROM member_log ORDER BY sgid, seq",
    [SQ_LOAD_NONCE] = "SELECT pneid, nonce, seen_ms FROM nonce ORDER BY pneid, nonce",
};

void sqlite_set_err(cpns_store_sqlite *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
}

int sqlite_fail(cpns_store_sqlite *s, const char *what)
{
    sqlite_set_err(s, "%s: %s", what, sqlite3_errmsg(s->db));
    return CPNS_ERR_STORE;
}

int sqlite_step_done(cpns_store_sqlite *s, sqlite3_stmt *stmt, int bound, const char *what)
{
    int rv = bound && sqlite3_step(stmt) == SQLITE_DONE ? 0 : sqlite_fail(s, what);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

static int step_done(cpns_store_sqlite *s, enum sqlite_stmt which, const char *what)
{
    return sqlite_step_done(s, s->stmt[which], 1, what);
}

/* After a failed write: the batch is incomplete. */
static void poison(cpns_store_sqlite *s)
{
    /* Some failures (I/O, full disk) make SQLite roll the whole transaction back. */
    s->poisoned = 1;
    s->in_txn = !sqlite3_get_autocommit(s->db);
}

int sqlite_begin(cpns_store_sqlite *s)
{
    if (s->in_txn)
        return 0;
    int rv = step_done(s, SQ_BEGIN, "cannot begin a transaction");
    s->in_txn = rv == 0;
    if (rv)
        poison(s);
    return rv;
}

int sqlite_write(cpns_store_sqlite *s, enum sqlite_stmt which, const char *what)
{
    int rv = sqlite_begin(s);
    if (rv == 0)
        rv = step_done(s, which, what);
    else
        sqlite3_clear_bindings(s->stmt[which]);
    if (rv)
        poison(s);
    return rv;
}

static cpns_store_sqlite *sqlite_of(cpns_store *st)
{
    return (cpns_store_sqlite *)st;
}

static int sqlite_commit(cpns_store *st)
{
    cpns_store_sqlite *s = sqlite_of(st);
    if (!s->poisoned && s->batches.count && sqlite_members_write(s) != 0)
        poison(s);
    if (s->poisoned) {
        /* Committing the writes that did succeed would store half a batch. */
        sqlite_members_forget(s);
        if (s->in_txn && step_done(s, SQ_ROLLBACK, "cannot roll back") == 0)
            s->in_txn = 0;
        return CPNS_ERR_STORE;
    }
    if (!s->in_txn)
        return 0;
    int rv = step_done(s, SQ_COMMIT, "commit failed");
    /* A busy COMMIT leaves the transaction open for a retry; others may end it. */
    s->in_txn = !sqlite3_get_autocommit(s->db);
    return rv;
}

static int sqlite_rollback(cpns_store *st)
{
    cpns_store_sqlite *s = sqlite_of(st);
    int rv = 0;
    sqlite_members_forget(s);
    if (s->in_txn) {
        rv = step_done(s, SQ_ROLLBACK, "cannot roll back");
        s->in_txn = !sqlite3_get_autocommit(s->db);
    }
    if (rv == 0)
        s->poisoned = 0;
    return rv;
}

static void unlock_db(cpns_store_sqlite *s);

static void sqlite_close(cpns_store *st)
{
    cpns_store_sqlite *s = sqlite_of(st);
    if (!s)
        return;
    sqlite_members_forget(s);
    for (size_t i = 0; i < SQ_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    /* Closing with a transaction open rolls it back: uncommitted writes are lost. */
    sqlite3_close_v2(s->db);
    unlock_db(s); /* only once the database is closed */
    cpns_seal_free(s->seal);
    cpns_wipe(s, sizeof *s);
    cpns_free(s);
}

static const cpns_store_ops sqlite_ops = {
    .load = sqlite_load,
    .put_pne = sqlite_put_pne,
    .put_sg = sqlite_put_sg,
    .del_sg = sqlite_del_sg,
    .put_member = sqlite_put_member,
    .del_member = sqlite_del_member,
    .put_nonce = sqlite_put_nonce,
    .expire_nonces = sqlite_expire_nonces,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .close = sqlite_close,
};

const char *cpns_store_sqlite_errmsg(const cpns_store *st)
{
    if (!st || st->ops != &sqlite_ops)
        return "";
    return ((const cpns_store_sqlite *)st)->errmsg;
}

/* --- opening --- */

static int exec(cpns_store_sqlite *s, const char *sql, const char *what)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : sqlite_fail(s, what);
}

/*
 * The first column of the first row of sql as an integer: 0, or
 * CPNS_ERR_NOT_FOUND when there is no row or the value is not an integer.
 */
static int query_int(cpns_store_sqlite *s, const char *sql, int64_t *out)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(s, "cannot read the schema");
    int rv = CPNS_ERR_NOT_FOUND;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) == SQLITE_INTEGER) {
        *out = sqlite3_column_int64(stmt, 0);
        rv = 0;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rv = sqlite_fail(s, "cannot read the schema");
    }
    sqlite3_finalize(stmt);
    return rv;
}

static int put_check_value(cpns_store_sqlite *s)
{
    uint8_t blob[CPNS_SEAL_CHECK_LEN];
    int rv = cpns_seal_check_make(s->seal, blob);
    if (rv) {
        sqlite_set_err(s, "cannot seal the master key check value: %s", cpns_strerror(rv));
        return CPNS_ERR_STORE;
    }
    sqlite3_stmt *stmt = NULL;
    int ok = sqlite3_prepare_v2(s->db, "INSERT INTO meta(name, value) VALUES ('check', ?1)", -1,
                                &stmt, NULL) == SQLITE_OK;
    ok = ok && sqlite3_bind_blob(stmt, 1, blob, sizeof blob, SQLITE_STATIC) == SQLITE_OK;
    ok = ok && sqlite3_step(stmt) == SQLITE_DONE;
    rv = ok ? 0 : sqlite_fail(s, "cannot store the master key check value");
    sqlite3_finalize(stmt);
    return rv;
}

static int verify_check_value(cpns_store_sqlite *s)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE name = 'check'", -1, &stmt, NULL) !=
        SQLITE_OK)
        return sqlite_fail(s, "cannot read the master key check value");
    int rv;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob(stmt, 0);
        size_t len = (size_t)sqlite3_column_bytes(stmt, 0);
        rv = cpns_seal_check_verify(s->seal, blob, len);
        if (rv == CPNS_ERR_AUTH)
            sqlite_set_err(s, "the master key does not match this database");
        else if (rv)
            sqlite_set_err(s, "cannot check the master key: %s", cpns_strerror(rv));
    } else if (rc == SQLITE_DONE) {
        rv = CPNS_ERR_STORE;
        sqlite_set_err(s, "the meta table has no master key check value (damaged database)");
    } else {
        rv = sqlite_fail(s, "cannot read the master key check value");
    }
    sqlite3_finalize(stmt);
    return rv ? CPNS_ERR_STORE : 0;
}

/* The schema version of the file: 0 for a new (empty) file. */
static int read_schema_version(cpns_store_sqlite *s, int64_t *version)
{
    int64_t n = 0;
    int rv = query_int(
        s, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'", &n);
    if (rv)
        return rv == CPNS_ERR_NOT_FOUND ? sqlite_fail(s, "cannot read the schema") : rv;
    if (n == 0) {
        rv = query_int(s, "SELECT count(*) FROM sqlite_master", &n);
        if (rv)
            return rv == CPNS_ERR_NOT_FOUND ? sqlite_fail(s, "cannot read the schema") : rv;
        if (n > 0) {
            sqlite_set_err(s, "not a CPNS server store (the database has no meta table)");
            return CPNS_ERR_STORE;
        }
        *version = 0;
        return 0;
    }
    rv = query_int(s, "SELECT value FROM meta WHERE name = 'schema_version'", version);
    if (rv == CPNS_ERR_NOT_FOUND || (rv == 0 && *version < 1)) {
        sqlite_set_err(s, "the meta table has no valid schema_version (damaged database)");
        return CPNS_ERR_STORE;
    }
    return rv;
}

/* Brings the schema to SCHEMA_VERSION; runs inside the open's BEGIN IMMEDIATE. */
static int migrate(cpns_store_sqlite *s)
{
    int64_t version = 0;
    int rv = read_schema_version(s, &version);
    if (rv)
        return rv;
    if (version > SCHEMA_VERSION) {
        sqlite_set_err(s,
                       "the database has schema version %lld, newer than this program supports "
                       "(%d): use a newer cpns-server",
                       (long long)version, SCHEMA_VERSION);
        return CPNS_ERR_STORE;
    }
    for (size_t i = 0; i < CPNS_ARRAY_LEN(migrations); i++) {
        const struct sqlite_migration *m = &migrations[i];
        if (m->to_version <= version)
            continue;
        char bump[128];
        snprintf(bump, sizeof bump,
                 "INSERT INTO meta(name, value) VALUES ('schema_version', %d)"
                 " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                 m->to_version);
        if ((rv = exec(s, m->sql, "cannot create the schema")) != 0 ||
            (m->fn && (rv = m->fn(s)) != 0) ||
            (rv = exec(s, bump, "cannot record the schema version")) != 0)
            return rv;
        version = m->to_version;
    }
    return 0;
}

static int set_pragmas(cpns_store_sqlite *s)
{
    if (sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS) != SQLITE_OK)
        return sqlite_fail(s, "cannot set busy_timeout");
    sqlite3_stmt *stmt = NULL;
    int wal = 0;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(s, "cannot open the database");
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(stmt, 0);
        wal = mode && strcmp(mode, "wal") == 0;
    } else {
        sqlite_fail(s, "cannot open the database");
        sqlite3_finalize(stmt);
        return CPNS_ERR_STORE;
    }
    sqlite3_finalize(stmt);
    if (!wal) {
        sqlite_set_err(s, "cannot switch the database to WAL mode");
        return CPNS_ERR_STORE;
    }
    /*
     * The page cache holds the working set of a big server (100,000 PNEs and
     * members are ~30 MB of pages): with SQLite's default of 2 MB, every
     * member update of a large group re-reads its page from the file.
     */
    int rv = exec(s,
                  "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                  " PRAGMA cache_size = -" SQLITE_CACHE_KB,
                  "cannot set pragmas");
    if (rv)
        return rv;
    /* del_sg relies on the cascade: refuse a SQLite built without foreign keys. */
    int64_t fk = 0;
    if (query_int(s, "PRAGMA foreign_keys", &fk) != 0 || fk != 1) {
        sqlite_set_err(s, "this SQLite does not enforce foreign keys");
        return CPNS_ERR_STORE;
    }
    return 0;
}

/*
 * SQLite gives the -wal and -shm files the mode of the database file, so
 * creating the database file 0600 ourselves covers all three without
 * touching the process-wide umask. An existing file keeps its mode.
 */
static int create_file_0600(cpns_store_sqlite *s, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        sqlite_set_err(s, "cannot open %s: %s", path, strerror(errno));
        return CPNS_ERR_STORE;
    }
    close(fd);
    return 0;
}

/* --- the lock file --- */

/* The PID written in a held lock file, or 0 when it cannot be read (yet). */
static long lock_holder(int fd)
{
    char buf[24];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end = NULL;
    long pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : 0;
}

static int lock_busy(cpns_store_sqlite *s, int fd)
{
    long pid = lock_holder(fd);
    if (pid)
        sqlite_set_err(s, "the database is in use by another process (PID %ld holds %s)", pid,
                       s->lock_path);
    else
        sqlite_set_err(s, "the database is in use by another process (it holds %s)", s->lock_path);
    return CPNS_ERR_BUSY;
}

/*
 * 1 if fd is still the file at lock_path: a closing holder unlinks the lock
 * file while it holds the lock, so a lock taken on an unlinked file is no lock.
 */
static int lock_is_current(const char *lock_path, int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(lock_path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* Takes "<path>.lock" for the store's life: 0, CPNS_ERR_BUSY, CPNS_ERR_STORE or CPNS_ERR_NOMEM. */
static int lock_db(cpns_store_sqlite *s, const char *path)
{
    size_t n = strlen(path) + sizeof SQLITE_LOCK_SUFFIX;
    s->lock_path = cpns_malloc(n);
    if (!s->lock_path) {
        sqlite_set_err(s, "out of memory");
        return CPNS_ERR_NOMEM;
    }
    snprintf(s->lock_path, n, "%s%s", path, SQLITE_LOCK_SUFFIX);
    for (;;) {
        int fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            sqlite_set_err(s, "cannot open the lock file %s: %s", s->lock_path, strerror(errno));
            return CPNS_ERR_STORE;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            int rv = e == EWOULDBLOCK ? lock_busy(s, fd) : CPNS_ERR_STORE;
            if (rv != CPNS_ERR_BUSY)
                sqlite_set_err(s, "cannot lock %s: %s", s->lock_path, strerror(e));
            close(fd);
            return rv;
        }
        if (!lock_is_current(s->lock_path, fd)) {
            close(fd); /* its holder removed it as we opened it: take the new one */
            continue;
        }
        char pid[24];
        int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
            sqlite_set_err(s, "cannot write the lock file %s: %s", s->lock_path, strerror(errno));
            close(fd);
            return CPNS_ERR_STORE;
        }
        s->lock_fd = fd;
        return 0;
    }
}

/* Removes the lock file while still holding it, then lets it go (see lock_is_current). */
static void unlock_db(cpns_store_sqlite *s)
{
    if (s->lock_fd >= 0) {
        unlink(s->lock_path);
        close(s->lock_fd);
        s->lock_fd = -1;
    }
    cpns_free(s->lock_path);
    s->lock_path = NULL;
}

static int sqlite_open_db(cpns_store_sqlite *s, const char *path,
                          const uint8_t master_key[CPNS_KEY_LEN])
{
    int rv = lock_db(s, path);
    if (rv)
        return rv;
    rv = create_file_0600(s, path);
    if (rv)
        return rv;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        return s->db
                   ? sqlite_fail(s, "cannot open the database")
                   : (sqlite_set_err(s, "cannot open the database: out of memory"), CPNS_ERR_NOMEM);
    sqlite3_extended_result_codes(s->db, 1);
    if ((rv = set_pragmas(s)) != 0)
        return rv;
    rv = cpns_seal_new(&s->seal, master_key);
    if (rv == CPNS_ERR_NOMEM) {
        sqlite_set_err(s, "out of memory");
        return rv;
    }
    if (rv) {
        sqlite_set_err(s, "cannot derive the store key: %s", cpns_strerror(rv));
        return CPNS_ERR_STORE;
    }
    /* One writer decides the schema: two servers opening a new file do not both create it. */
    if ((rv = exec(s, "BEGIN IMMEDIATE", "cannot lock the database")) != 0)
        return rv;
    rv = migrate(s);
    if (rv == 0)
        rv = verify_check_value(s);
    if (rv == 0)
        return exec(s, "COMMIT", "cannot commit the schema");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rv;
}

int cpns_store_sqlite_open(cpns_store **out, const char *path,
                           const uint8_t master_key[CPNS_KEY_LEN], char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!out || !path || !master_key) {
        if (err && errlen)
            snprintf(err, errlen, "cpns_store_sqlite_open: missing argument");
        return CPNS_ERR_INVALID_ARG;
    }
    *out = NULL;
    cpns_store_sqlite *s = cpns_calloc(1, sizeof *s);
    if (!s) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return CPNS_ERR_NOMEM;
    }
    s->base.ops = &sqlite_ops;
    s->lock_fd = -1;
    int rv = sqlite_open_db(s, path, master_key);
    for (size_t i = 0; rv == 0 && i < SQ_COUNT; i++)
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
                               NULL) != SQLITE_OK)
            rv = sqlite_fail(s, "cannot prepare a statement");
    if (rv) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, s->errmsg);
        sqlite_close(&s->base);
        return rv == CPNS_ERR_NOMEM || rv == CPNS_ERR_BUSY ? rv : CPNS_ERR_STORE;
    }
    *out = &s->base;
    return 0;
}
