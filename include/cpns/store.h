/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server's durable state, behind an ops table (DESIGN.md section 1).
 *
 * The server engine keeps its working state in memory and writes every change
 * through these ops; it reads the store only once, at start-up (load). Writes
 * accumulate in an open transaction that commit() makes durable atomically:
 * the engine commits once per batch (cpns_server_flush) and before the first
 * message carrying a new Group Key leaves, so a group of 100,000 members costs
 * a handful of commits, not 100,000. SQLite and PostgreSQL backends implement
 * the same ops; libcpns brings a memory backend for tests.
 *
 * Secrets (EUK, GK) pass through in clear; a backend that writes to disk
 * encrypts them at rest (the SQLite backend uses the server's master key).
 */
#ifndef CPNS_STORE_H
#define CPNS_STORE_H

#include "common.h"
#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cpns_member_state {
    CPNS_MEMBER_PENDING = 0,   /* waiting to be sent (no route yet, or a retry is due) */
    CPNS_MEMBER_SENT = 1,      /* a request is out, waiting for its response */
    CPNS_MEMBER_DELIVERED = 2, /* Return 1 with a valid KeyConfirmation: finished */
    CPNS_MEMBER_FAILED = 3,    /* given up (see Return and PROTOCOL.md 3.2, 5.3) */
} cpns_member_state;

CPNS_API const char *cpns_member_state_name(cpns_member_state st); /* "pending", "sent", ... */

typedef struct cpns_store_pne {
    char PNEID[CPNS_ID_MAX + 1];
    uint8_t EUK[CPNS_KEY_LEN];
    int registered;               /* 1 once a registration succeeded */
    char PNGWID[CPNS_ID_MAX + 1]; /* of the last successful registration */
    char PNID[CPNS_ID_MAX + 1];
} cpns_store_pne;

typedef struct cpns_store_sg {
    char SGID[CPNS_ID_MAX + 1];
    uint32_t KeyVersion;      /* 0 until the first Group Key is generated */
    uint8_t GK[CPNS_KEY_LEN]; /* the current Group Key (valid when KeyVersion > 0) */
} cpns_store_sg;

typedef struct cpns_store_member {
    char SGID[CPNS_ID_MAX + 1];
    char PNEID[CPNS_ID_MAX + 1];
    uint32_t KeyVersion; /* the version this delivery is for */
    cpns_member_state state;
    int32_t Return;             /* last Return received, -1 for none */
    int32_t fail_reason;        /* Return that failed it, -1 = timeout/none */
    uint32_t attempts;          /* sends of this delivery so far */
    uint32_t malformed;         /* Return 4 answers to this delivery */
    char PNID[CPNS_ID_MAX + 1]; /* from the last response; "" for none */
    /*
     * Shared mode only (ignored by memory and SQLite): 1 for a row not in
     * the store yet (a new member), written as an insert stamped with the
     * PNE's current owner; 0 for delivery progress, written only while the
     * row's owner token is a GW session of this instance (see claim_gw).
     */
    int unfenced;
} cpns_store_member;

typedef struct cpns_store_nonce {
    char PNEID[CPNS_ID_MAX + 1];
    uint8_t Nonce[CPNS_NONCE_LEN];
    int64_t seen_ms;
} cpns_store_nonce;

/* load() calls these; a non-zero return aborts the load and is returned. */
typedef struct cpns_store_loader {
    int (*pne)(void *arg, const cpns_store_pne *p);
    int (*sg)(void *arg, const cpns_store_sg *sg);
    int (*member)(void *arg, const cpns_store_member *m);
    int (*nonce)(void *arg, const cpns_store_nonce *n);
} cpns_store_loader;

typedef struct cpns_store cpns_store;

/*
 * Every op returns 0 or a negative cpns_error (CPNS_ERR_STORE, CPNS_ERR_NOMEM, ...).
 * put_* insert or replace by key; del_* of something absent is not an error.
 */
typedef struct cpns_store_ops {
    /* Every PNE, then every SG, then every member, then every nonce. */
    int (*load)(cpns_store *st, const cpns_store_loader *l, void *arg);
    int (*put_pne)(cpns_store *st, const cpns_store_pne *p);
    int (*put_sg)(cpns_store *st, const cpns_store_sg *sg);
    int (*del_sg)(cpns_store *st, const char *SGID); /* and all its members */
    int (*put_member)(cpns_store *st, const cpns_store_member *m);
    int (*del_member)(cpns_store *st, const char *SGID, const char *PNEID);
    int (*put_nonce)(cpns_store *st, const cpns_store_nonce *n);
    int (*expire_nonces)(cpns_store *st, int64_t seen_before_ms);
    /* Makes every write since the last commit durable, all or nothing. */
    int (*commit)(cpns_store *st);
    /* Forgets every write since the last commit. */
    int (*rollback)(cpns_store *st);
    void (*close)(cpns_store *st);

    /*
     * Optional: a commit that does not block (NULL for backends whose commit
     * is a local fsync, as memory and SQLite). commit_start() hands every
     * write since the last commit or commit_start to the backend and sends it;
     * the caller may go on writing (those writes belong to the next commit).
     * At most one commit is in flight. commit_poll() returns 0 once it is
     * durable, CPNS_ERR_AGAIN while it is not yet known (wait until watch_fd
     * is readable, then poll again), or another negative error when it failed:
     * its writes then stay in the backend and are sent again, in order, by the
     * next commit_start() or commit(). commit() with one in flight waits for
     * it first. watch_fd() is the descriptor to wait on, -1 when none.
     */
    int (*commit_start)(cpns_store *st);
    int (*commit_poll)(cpns_store *st);
    int (*watch_fd)(const cpns_store *st);

    /*
     * Optional, shared mode (several servers active on one database, the
     * PostgreSQL store opened with cluster = 1; NULL for memory and SQLite,
     * where the engine behaves exactly as without them). All are synchronous
     * and committed when they return.
     *
     * claim_gw: a GW registered on this instance: its session's epoch is
     * bumped (the fencing token), every open member row owned by that GW is
     * adopted at the new epoch (sent becomes pending) and handed to
     * l->member (after the PNEs last registered through that GW, to l->pne
     * when set), and the previous holder is told. *epoch: the new epoch.
     *
     * claim_pne: a PNE registered through PNGWID on this instance: records
     * the Nonce (CPNS_ERR_EXISTS, nothing written: it was seen before, on any
     * instance), the PNE's route, and takes over every member row of the PNE
     * (catch-up), handed to l->member.
     *
     * load_scope: one SG (SGID; l->sg then its members, CPNS_ERR_NOT_FOUND if
     * it does not exist) or one PNE (PNEID; l->pne then its member rows).
     *
     * note_change: adds an admin change ("sg" or "pne", its id) to the next
     * commit, which also wakes the other instances.
     *
     * take_fenced: the member rows of the last commits that were not written
     * because their owner token is not this instance's any more (another
     * instance took the GW or the PNE, or the row is gone): fn for each, then
     * forgotten. Returns their number.
     */
    int (*claim_gw)(cpns_store *st, const char *PNGWID, const char *PNID,
                    const cpns_store_loader *l, void *arg, int64_t *epoch);
    int (*claim_pne)(cpns_store *st, const cpns_store_nonce *n, const char *PNGWID,
                     const char *PNID, const cpns_store_loader *l, void *arg);
    int (*load_scope)(cpns_store *st, const char *SGID, const char *PNEID,
                      const cpns_store_loader *l, void *arg);
    int (*note_change)(cpns_store *st, const char *kind, const char *key);
    int (*take_fenced)(cpns_store *st, void (*fn)(void *arg, const char *SGID, const char *PNEID),
                       void *arg);
} cpns_store_ops;

/* Backends embed this as their first member. */
struct cpns_store {
    const cpns_store_ops *ops;
};

/*
 * The memory backend: committed state survives cpns_server_free() and a new
 * cpns_server_new() on the same store, which is how tests simulate a crash
 * and restart (uncommitted writes are lost, as on a real crash).
 */
CPNS_API int cpns_store_mem_new(cpns_store **out);

/* For tests: the next n write ops (or commits) fail with CPNS_ERR_STORE. */
CPNS_TESTING void cpns_store_mem_fail_writes(cpns_store *st, int n);

/* For tests: the number of commits so far, and whether writes are uncommitted. */
CPNS_TESTING uint64_t cpns_store_mem_commits(const cpns_store *st);

/* For tests: the committed copy of an SG / a member; 0 or CPNS_ERR_NOT_FOUND. */
CPNS_TESTING int cpns_store_mem_get_sg(const cpns_store *st, const char *SGID, cpns_store_sg *out);
CPNS_TESTING int cpns_store_mem_get_member(const cpns_store *st, const char *SGID,
                                           const char *PNEID, cpns_store_member *out);

/* Simulates a crash: forgets uncommitted writes. */
CPNS_TESTING void cpns_store_mem_crash(cpns_store *st);

/*
 * For tests: a memory store with the non-blocking commit ops, whose commit
 * in flight ends only when the test says how: cpns_store_mem_async_finish()
 * with 0 (commit_poll then applies it) or an error (commit_poll returns it and
 * keeps the writes for the next commit). A blocking commit() ends it too.
 */
CPNS_TESTING int cpns_store_mem_new_async(cpns_store **out);
CPNS_TESTING int cpns_store_mem_async_finish(cpns_store *st, int outcome); /* 0 or CPNS_ERR_STATE */
CPNS_TESTING int cpns_store_mem_inflight(const cpns_store *st);

CPNS_API void cpns_store_free(cpns_store *st); /* NULL is fine */

/*
 * The SQLite backend (WAL, a versioned schema). EUKs and Group Keys are
 * stored encrypted with AES-256-GCM under keys derived from master_key (the
 * server's 0600 master key file), each bound to its row, so a copied database
 * reveals no key and a row moved to another PNE or SG does not decrypt.
 * Writes open a transaction lazily; commit() ends it (group commit).
 *
 * One store at a time owns a database: open() takes an exclusive flock() on
 * "<path>.lock" (created 0600, the holder's PID written in it) and close()
 * releases and removes it; after a crash the file stays, unlocked, and the
 * next open() takes it over. A second open() of the same path, from another
 * process or from this one, fails with CPNS_ERR_BUSY and err reads
 * "<path>: the database is in use by another process (PID <n> holds
 * <path>.lock)" (without "PID <n>" when the PID could not be read).
 *
 * 0 and *out; CPNS_ERR_BUSY (above); CPNS_ERR_STORE with a message in err
 * (unopenable file, newer schema, wrong master key, damaged row);
 * CPNS_ERR_NOMEM.
 */
CPNS_API int cpns_store_sqlite_open(cpns_store **out, const char *path,
                                    const uint8_t master_key[CPNS_KEY_LEN], char *err,
                                    size_t errlen);

/*
 * The message of the last failure of a SQLite store's op (SQLite's own text,
 * or the damaged row that made load() fail), for the daemon's log after an op
 * returned CPNS_ERR_STORE. "" when there was none or st is not a SQLite store.
 */
CPNS_API const char *cpns_store_sqlite_errmsg(const cpns_store *st);

/*
 * Test hooks (fault injection, lib/store_sqlite_fault.c): real SQLite errors
 * on a live store. set_max_pages caps the database file at max_pages pages
 * (never below its current size), so a write needing more fails with
 * SQLITE_FULL as on a full disk; 0 lifts the cap. set_read_only(1) makes
 * every write fail with SQLITE_READONLY; 0 allows writes again. 0,
 * CPNS_ERR_INVALID_ARG (not a SQLite store) or CPNS_ERR_STORE.
 */
CPNS_TESTING int cpns_store_sqlite_set_max_pages(cpns_store *st, uint32_t max_pages);
CPNS_TESTING int cpns_store_sqlite_set_read_only(cpns_store *st, int read_only);

/*
 * The PostgreSQL backend (lib/store_pg*.c; the schema is documented at the
 * top of lib/store_pg_schema.c). Plain rows an operator can query; EUKs and
 * Group Keys sealed exactly as in SQLite (store_seal.c, the same blobs); a
 * master key check value in meta refuses another key; the schema is
 * versioned and migrated at open, in one transaction under an advisory lock
 * (two instances starting together do not race).
 *
 * Writes (put_*, del_*) only fill an in-memory batch (no I/O; secrets are
 * sealed at put time). commit() sends the whole batch as one transaction in
 * one round trip (libpq pipeline mode, one statement per kind of row with
 * unnest() arrays) and waits for it; commit_start()/commit_poll()/watch_fd()
 * do the same without blocking (see the ops above; writes made while a
 * commit is in flight belong to the next one). The rows of a batch end as
 * the ops left them in order (a key's last put or del wins; del_sg drops the
 * SG's earlier member writes of the batch).
 *
 * A failed commit: connection lost, server restarting or shutting down
 * (SQLSTATE classes 08, 57P0x, 53), serialization failure or deadlock (40001,
 * 40P01) are retryable: commit returns CPNS_ERR_STORE, the batch stays, and
 * the next commit_start() or commit() reconnects (blocking, up to libpq's
 * connect_timeout) and sends it again followed by the newer writes, in order,
 * in one transaction. Resending is idempotent (upserts of whole rows), so a
 * commit whose outcome was lost on the way is safe to repeat. Any other
 * refusal by the server (a constraint or data error: a bug or a damaged
 * database) returns CPNS_ERR_STORE and forgets that batch, as SQLite does
 * (it could never succeed). rollback() forgets only the writes not yet
 * handed to a commit.
 *
 * Fencing (instance_id set): every commit transaction first checks, with the
 * lease row locked FOR SHARE, that this instance holds the 'active' lease and
 * that it has not expired (database time); if not, nothing of it is written,
 * its batch is forgotten and the op returns CPNS_ERR_FENCED (not retryable:
 * the daemon stops).
 */
typedef struct cpns_store_pg_config {
    const char *conninfo;      /* any libpq URI or key=value string, multi-host included */
    const uint8_t *master_key; /* CPNS_KEY_LEN bytes */
    const char *instance_id;   /* a valid identifier (cpns_id_valid); NULL: no fencing */
    /*
     * Cluster mode (every instance active; instance_id required): no lease
     * check at commit; the shared-mode ops are set (claim_gw, ...); member
     * progress is a compare-and-set on the owner token; new Group Keys go
     * through cpns_put_key (one key per version, CPNS_ERR_EXISTS to the
     * loser); put_pne writes only the EUK of an existing row (routes are
     * claim_pne's).
     */
    int cluster;
} cpns_store_pg_config;

/*
 * Connects (blocking) and brings the schema to the current version. 0 and
 * *out; CPNS_ERR_INVALID_ARG (missing argument, bad instance_id);
 * CPNS_ERR_STORE with a message in err: the server cannot be reached
 * ("cannot connect to PostgreSQL: <libpq's text>"), the schema is newer than
 * this program, "the database was created with another master key", the
 * database holds tables but no CPNS meta table; CPNS_ERR_NOMEM.
 */
CPNS_API int cpns_store_pg_open(cpns_store **out, const cpns_store_pg_config *cfg, char *err,
                                size_t errlen);

/*
 * The message of the last failure of a PostgreSQL store's op (the server's
 * text with its SQLSTATE, or the damaged row that made load() fail: "<table>
 * <key>: <why>"). "" when there was none or st is not a PostgreSQL store.
 */
CPNS_API const char *cpns_store_pg_errmsg(const cpns_store *st);

/* The 'active' lease as cpns_store_pg_lease_acquire() left it. */
typedef struct cpns_store_pg_lease {
    int held;                     /* 1 if this store's instance holds it */
    char holder[CPNS_ID_MAX + 1]; /* its holder's instance_id ("" when nobody ever took it) */
    char admin_addr[256];         /* what the holder published, "" for none */
    char gw_addr[256];
    int64_t expires_in_ms; /* database time until it expires (<= 0: expired) */
    int64_t epoch;         /* bumped each time the lease changes hands */
} cpns_store_pg_lease;

/*
 * Active/standby (lib/store_pg_lease.c), synchronous, on the store's own
 * connection: takes the 'active' lease if it is free, expired or already
 * this store's (the lease is held by a store object, i.e. one process, with a
 * random session token: a second process with the same instance_id waits
 * like any other standby), setting expires_at = now() + ttl_ms (the database's
 * clock, never the local one) and the published addresses (NULL: ""), and
 * bumping epoch when it changes hands; also refreshes this instance's row of
 * the instance table. Fills *out in every case (held 0: someone else holds
 * it, out says who and where). 0; CPNS_ERR_AGAIN while a commit is in flight
 * (poll it first); CPNS_ERR_INVALID_ARG (no instance_id configured, ttl_ms <
 * 1); CPNS_ERR_STORE (message in cpns_store_pg_errmsg).
 */
CPNS_API int cpns_store_pg_lease_acquire(cpns_store *st, int ttl_ms, const char *admin_addr,
                                         const char *gw_addr, cpns_store_pg_lease *out);

/*
 * Clean shutdown: expires this instance's lease at once (if it holds it), so
 * a standby takes over without waiting for the TTL. 0, CPNS_ERR_AGAIN,
 * CPNS_ERR_INVALID_ARG or CPNS_ERR_STORE as above.
 */
CPNS_API int cpns_store_pg_lease_release(cpns_store *st);

/*
 * Test hook: opens like cpns_store_pg_open() but migrates the schema only up
 * to `version` (1 .. the current one), so a test can fill a database of an
 * older version and open it again with the full code. The ops work on
 * version 1 (fencing needs version 2).
 */
CPNS_TESTING int cpns_store_pg_open_version(cpns_store **out, const cpns_store_pg_config *cfg,
                                            int version, char *err, size_t errlen);
/* The schema version this code writes. */
CPNS_API int cpns_store_pg_schema_version(void);

/*
 * Cluster mode (lib/store_pg_cluster.c), on the store's second connection
 * (blocking, LISTENing on cpns_work and cpns_gw).
 *
 * heartbeat: takes or renews this instance's row of the instance table
 * (lease_expires = now() + ttl_ms, database time) if it is free, expired or
 * this store's session already; *held 0 when another live process holds
 * this instance id. 0 or CPNS_ERR_STORE.
 *
 * changes_fd: the descriptor to watch for notifications (-1 while the
 * connection is down: heartbeat or changes reconnects it).
 *
 * changes: reads the notifications that arrived and, when one of them was
 * an admin change (or force_sweep, the periodic sweep), sweeps the change
 * feed (rows after the last one seen, made by other instances), calling fn for
 * each: kind "sg" or "pne" with its id, or "gw" with "PNGWID EPOCH
 * INSTANCE" when a GW registered on an instance (cpns_gw). After a
 * reconnect it LISTENs again and sweeps from the last row seen, so nothing
 * committed is missed. *n: changes handed out. 0 or CPNS_ERR_STORE.
 *
 * changes_start: the feed's position before load(): changes committed
 * during the load are handed out again (applying them twice is harmless).
 *
 * release: clean shutdown, the instance row expires at once.
 */
CPNS_API int cpns_store_pg_heartbeat(cpns_store *st, int ttl_ms, const char *admin_addr,
                                     const char *gw_addr, int *held);
CPNS_API int cpns_store_pg_changes_fd(const cpns_store *st);
CPNS_API int cpns_store_pg_changes_start(cpns_store *st);
CPNS_API int cpns_store_pg_changes(cpns_store *st, int force_sweep,
                                   int (*fn)(void *arg, const char *kind, const char *key),
                                   void *arg, size_t *n);
CPNS_API int cpns_store_pg_release(cpns_store *st);

#ifdef __cplusplus
}
#endif
#endif
