/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the files of the PostgreSQL store share (store.h; the schema in
 * store_pg_schema.c): the store object, its write batch, and the helpers of
 * the connection.
 *
 * store_pg.c       open, migrations, the commit machinery, close
 * store_pg_batch.c the in-memory batch (the put_/del_ ops) and its statements
 * store_pg_load.c  load()
 * store_pg_lease.c the active/standby lease
 */
#ifndef CPNS_STORE_PG_INTERNAL_H
#define CPNS_STORE_PG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "cpns/store_db.h"
#include "cpns/testing.h"
#include "internal.h"
#include "store_seal.h"

#define PG_ERRMSG_MAX 512

/* The SQLSTATE cpns_fence() raises when this instance does not hold the lease. */
#define PG_SQLSTATE_FENCED "CP001"
/* The SQLSTATE cpns_put_key() raises when another instance made that key version first. */
#define PG_SQLSTATE_EXISTS "CP002"

/*
 * One batch of writes, normalised as the ops arrive: the last put or del of
 * a key replaces the earlier ones, del_sg drops the SG's earlier rows of the
 * batch, expire_nonces drops the batch's older nonces. Sending it as
 * deletions, nonce expiry, then upserts therefore ends in the state the ops
 * left in order. Batches kept after a failed commit are sent again, oldest
 * first, each by its own statements, in the one transaction of the next.
 */
typedef struct pg_batch {
    struct pg_batch *next; /* the next newer batch handed to the same commit */
    cpns_map pnes;         /* PNEID -> pg_pne */
    cpns_map sgs;          /* SGID -> pg_sg */
    cpns_map del_sgs;      /* SGID -> pg_key */
    cpns_map groups;       /* SGID -> pg_group: its members' puts and dels */
    cpns_map nonces;       /* "PNEID/<hex of Nonce>" -> pg_nonce */
    cpns_map changes;      /* "kind key" -> pg_change: admin changes (cluster mode) */
    int64_t expire_before_ms;
    int expire;      /* expire_before_ms is set */
    size_t n_writes; /* ops that went into it */
} pg_batch;

/* A member row a cluster-mode commit did not write: its owner token is not ours. */
typedef struct pg_fenced {
    struct pg_fenced *next;
    char SGID[CPNS_ID_MAX + 1];
    char PNEID[CPNS_ID_MAX + 1];
} pg_fenced;

/* The column name of the rows a fenced progress statement returns. */
#define PG_FENCED_COLUMN "fenced_sgid"

typedef struct cpns_store_pg {
    cpns_store base; /* first, as store.h asks */
    PGconn *conn;
    char *conninfo;
    char *instance_id; /* NULL: no fencing */
    char session[33];  /* this store's random token: the lease is held by a session, not a name */
    cpns_seal *seal;
    int schema_version; /* of the database, after open's migrations */
    pg_batch *cur;      /* writes not yet handed to a commit */
    pg_batch *sent;     /* handed to a commit (in flight, or failed and kept), oldest first */
    int inflight;       /* sent's transaction is in the pipeline */
    int flushing;       /* PQflush still has bytes to send */
    int broken;         /* the connection must be reset before the next use */
    int n_results;      /* results still awaited for the commit in flight (its statements) */
    int failed;         /* the commit in flight failed: its first error's return */
    int retryable;      /* ... and whether its batch is kept */
    char errmsg[PG_ERRMSG_MAX];
    /* cluster mode (store_pg_cluster.c) */
    int cluster;
    PGconn *ctl;                /* blocking: claims, scopes, heartbeat, LISTEN; NULL until needed */
    int ctl_broken;             /* reconnect (and LISTEN again) before the next use */
    int64_t change_seq;         /* the last change row handed out */
    int change_wanted;          /* a notification or a reconnect: sweep now */
    pg_fenced *fenced_inflight; /* rows the commit in flight did not write (kept if it commits) */
    pg_fenced *fenced;          /* ... of commits that committed, for take_fenced */
} cpns_store_pg;

void pg_set_err(cpns_store_pg *s, const char *fmt, ...) CPNS_PRINTF(2, 3);
/* Records "what: <the server's or libpq's message>" and returns CPNS_ERR_STORE. */
int pg_fail_conn(cpns_store_pg *s, const char *what);
int pg_fail_result(cpns_store_pg *s, const PGresult *r, const char *what);
/* Whether a failed result's SQLSTATE (or a lost connection) is worth a retry. */
int pg_retryable(const cpns_store_pg *s, const PGresult *r);

/* Runs one statement synchronously (the connection in blocking use): 0 or CPNS_ERR_STORE. */
int pg_exec(cpns_store_pg *s, const char *sql, const char *what);
/* Resets a broken connection (blocking): 0 or CPNS_ERR_STORE. */
int pg_ensure_conn(cpns_store_pg *s);

/* store_pg_schema.c: the migration steps, in order. */
typedef struct pg_migration {
    int to_version;
    const char *sql;
} pg_migration;
extern const pg_migration pg_migrations[];
extern const size_t pg_n_migrations;

/* store_pg_batch.c */
pg_batch *pg_batch_new(void);
void pg_batch_free(pg_batch *b);
void pg_batch_clear(pg_batch *b); /* forgets its writes */
/* Queues b's statements (after the fence) in the pipeline; *n their count. 0 or CPNS_ERR_*. */
int pg_batch_send(cpns_store_pg *s, const pg_batch *b, int *n);
int pg_put_pne(cpns_store *st, const cpns_store_pne *p);
int pg_put_sg(cpns_store *st, const cpns_store_sg *sg);
int pg_del_sg(cpns_store *st, const char *SGID);
int pg_put_member(cpns_store *st, const cpns_store_member *m);
int pg_del_member(cpns_store *st, const char *SGID, const char *PNEID);
int pg_put_nonce(cpns_store *st, const cpns_store_nonce *n);
int pg_expire_nonces(cpns_store *st, int64_t seen_before_ms);

/*
 * A PostgreSQL array literal under construction (store_pg_batch.c): elements
 * are added with pg_buf_text/pg_buf_int, pg_buf_end closes it ("{}" when
 * empty); oom is set if memory ran out on the way. pg_buf_free wipes it.
 */
typedef struct pg_buf {
    char *p;
    size_t len, cap;
    size_t n; /* elements */
    int oom;
} pg_buf;
void pg_buf_text(pg_buf *b, const char *s);
void pg_buf_int(pg_buf *b, int64_t v);
void pg_buf_end(pg_buf *b);
void pg_buf_free(pg_buf *b);

/* store_pg_load.c */
int pg_load(cpns_store *st, const cpns_store_loader *l, void *arg);
enum pg_table { PG_T_PNE, PG_T_SG, PG_T_MEMBER, PG_T_NONCE };
/*
 * Runs sql (its rows shaped as load()'s query of table t) on conn in
 * single-row mode and hands each row to l: 0, the loader's error, or
 * CPNS_ERR_STORE. *rows: rows handed out (may be NULL).
 */
int pg_load_rows(cpns_store_pg *s, PGconn *conn, enum pg_table t, const char *sql, int n,
                 const char *const *params, const cpns_store_loader *l, void *arg, size_t *rows);

/* store_pg_cluster.c */
int pg_note_change(cpns_store *st, const char *kind, const char *key);
int pg_claim_gw(cpns_store *st, const char *PNGWID, const char *PNID, const cpns_store_loader *l,
                void *arg, int64_t *epoch);
int pg_claim_pnes(cpns_store *st, const cpns_store_pne_claim *c, size_t n, int *result,
                  const cpns_store_loader *l, void *arg);
int pg_load_scope(cpns_store *st, const char *SGID, const char *PNEID, const cpns_store_loader *l,
                  void *arg);
int pg_take_fenced(cpns_store *st, void (*fn)(void *arg, const char *SGID, const char *PNEID),
                   void *arg);
void pg_fenced_free(pg_fenced **list);
/* The rows of a progress statement's result that were fenced out: kept in fenced_inflight. */
void pg_fenced_collect(cpns_store_pg *s, const PGresult *r);
void pg_cluster_close(cpns_store_pg *s);

int pg_is_store(const cpns_store *st);

#endif
