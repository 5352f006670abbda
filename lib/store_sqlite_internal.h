/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the files of the SQLite store share: the store object and its
 * helpers. Its secrets are sealed by the module shared with the PostgreSQL
 * store (store_seal.h).
 */
#ifndef CPNS_STORE_SQLITE_INTERNAL_H
#define CPNS_STORE_SQLITE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "cpns/crypto.h"
#include "cpns/store_db.h"
#include "cpns/testing.h"
#include "internal.h"
#include "store_seal.h"

/* The cached statements: each op is one sqlite3_step on one of these. */
enum sqlite_stmt {
    SQ_BEGIN,
    SQ_BEGIN_READ,
    SQ_COMMIT,
    SQ_ROLLBACK,
    SQ_PUT_PNE,
    SQ_PUT_SG,
    SQ_DEL_SG,
    SQ_SG_EXISTS,
    SQ_LOG_APPEND,
    SQ_LOG_STATS,
    SQ_LOG_READ,
    SQ_LOG_CLEAR,
    SQ_PUT_NONCE,
    SQ_EXPIRE_NONCES,
    SQ_LOAD_PNE,
    SQ_LOAD_SG,
    SQ_LOAD_MEMBER,
    SQ_LOAD_NONCE,
    SQ_COUNT
};

#define SQLITE_ERRMSG_MAX 512
#define SQLITE_LOCK_SUFFIX ".lock" /* the store's lock file: "<path>.lock" */

/* SQ_LOG_APPEND, also run by the migration to version 2 (before the statements are prepared). */
#define SQLITE_LOG_APPEND_SQL "INSERT INTO member_log(sgid, records, rows) VALUES (?1, ?2, ?3)"

/* One SG's member records of the open transaction (store_sqlite_members.c). */
typedef struct sqlite_member_batch sqlite_member_batch;

typedef struct cpns_store_sqlite {
    cpns_store base; /* first, as store.h asks */
    sqlite3 *db;
    int lock_fd; /* "<path>.lock", flock()ed for the store's life; -1 when not held */
    char *lock_path;
    sqlite3_stmt *stmt[SQ_COUNT];
    cpns_seal *seal;  /* K_store and its cipher context (store_seal.h) */
    int in_txn;       /* a write transaction is open (BEGIN IMMEDIATE ran) */
    int poisoned;     /* a write of this batch failed: commit() refuses until rollback() */
    cpns_map batches; /* SGID -> sqlite_member_batch: written to member_log by commit() */
    char errmsg[SQLITE_ERRMSG_MAX];
} cpns_store_sqlite;

/* Records a message for cpns_store_sqlite_errmsg() (and the open() caller). */
void sqlite_set_err(cpns_store_sqlite *s, const char *fmt, ...) CPNS_PRINTF(2, 3);

/* Records "what: <SQLite's message>" and returns CPNS_ERR_STORE. */
int sqlite_fail(cpns_store_sqlite *s, const char *what);

/*
 * Runs stmt, a statement that returns no row and whose bindings succeeded
 * (bound; else it is not run), then resets it and clears its bindings: 0, or
 * CPNS_ERR_STORE with the failure recorded as `what`.
 */
int sqlite_step_done(cpns_store_sqlite *s, sqlite3_stmt *stmt, int bound, const char *what);

/*
 * Runs one write statement (bound by the caller) in the batch's transaction,
 * opening it with BEGIN IMMEDIATE on the first write after a commit. Resets
 * the statement and its bindings either way. 0 or CPNS_ERR_STORE (the batch is
 * then poisoned: commit() fails until rollback()).
 */
int sqlite_write(cpns_store_sqlite *s, enum sqlite_stmt which, const char *what);

/* Opens the batch's transaction if it is not open yet: 0 or CPNS_ERR_STORE (then poisoned). */
int sqlite_begin(cpns_store_sqlite *s);

/* The ops of store_sqlite_ops.c. */
int sqlite_load(cpns_store *st, const cpns_store_loader *l, void *arg);
int sqlite_put_pne(cpns_store *st, const cpns_store_pne *p);
int sqlite_put_sg(cpns_store *st, const cpns_store_sg *sg);
int sqlite_del_sg(cpns_store *st, const char *SGID);
int sqlite_put_nonce(cpns_store *st, const cpns_store_nonce *n);
int sqlite_expire_nonces(cpns_store *st, int64_t seen_before_ms);

/* Reading rows back (store_sqlite_ops.c), for load() and the migrations. */
/* Text column i into out (CPNS_ID_MAX + 1 bytes); 0 when it is not an identifier-sized text. */
int sqlite_column_id(sqlite3_stmt *stmt, int i, char out[CPNS_ID_MAX + 1], int may_be_empty);
/* Integer column i into *out; 0 unless it is an integer in [lo, hi]. */
int sqlite_column_range(sqlite3_stmt *stmt, int i, int64_t lo, int64_t hi, int64_t *out);
/* Records "table key: why" and returns CPNS_ERR_STORE. */
int sqlite_damaged(cpns_store_sqlite *s, const char *table, const char *key, const char *why);

/* The member log (store_sqlite_members.c). */
int sqlite_put_member(cpns_store *st, const cpns_store_member *m);
int sqlite_del_member(cpns_store *st, const char *SGID, const char *PNEID);
/* commit(): appends this transaction's batches to member_log (compacting where due), then forgets
 * them. */
int sqlite_members_write(cpns_store_sqlite *s);
/* rollback(), close(): forgets every batch; del_sg: forgets SGID's. */
void sqlite_members_forget(cpns_store_sqlite *s);
void sqlite_members_drop(cpns_store_sqlite *s, const char *SGID);
/* load(): every live member, SG by SG in SGID order, PNEID order within. */
int sqlite_load_members(cpns_store_sqlite *s, const cpns_store_loader *l, void *arg);
/* The migration to schema version 2: the member table into member_log, then dropped. */
int sqlite_members_from_table(cpns_store_sqlite *s);

#endif
