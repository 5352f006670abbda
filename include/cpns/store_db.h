/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file store_db.h
 * @brief The server's stores on SQLite and PostgreSQL (libcpns-store).
 *
 * Two backends of the store ops table of cpns/store.h, in their own library
 * so that libcpns needs neither SQLite nor libpq: link libcpns-store
 * (`pkg-config --cflags --libs cpns-store`, which brings cpns too) to use
 * them. libcpns-store needs libcpns of the very same version.
 *
 * Both keep EUKs and Group Keys encrypted at rest with AES-256-GCM under
 * keys derived from the server's master key, each bound to its row, so a
 * copied database reveals no key and a row moved to another PNE or SG does
 * not decrypt; both write the same sealed blobs.
 */
#ifndef CPNS_STORE_DB_H
#define CPNS_STORE_DB_H

#include "common.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Opens (creating it if needed) the SQLite store at path: WAL, a versioned
 * schema migrated at open. Writes open a transaction lazily; commit() ends
 * it (group commit).
 *
 * One store at a time owns a database: open takes an exclusive flock() on
 * "<path>.lock" (created 0600, the holder's PID written in it) and close
 * releases and removes it; after a crash the file stays, unlocked, and the
 * next open takes it over. A second open of the same path, from another
 * process or from this one, fails with CPNS_ERR_BUSY and err reads
 * "<path>: the database is in use by another process (PID <n> holds
 * <path>.lock)" (without "PID <n>" when the PID could not be read).
 *
 * @param[out] out the new store, for cpns_store_free()
 * @param path the database file
 * @param master_key the server's master key (its 0600 key file)
 * @param[out] err room for a message on failure ("" on success); may be NULL
 * @param errlen the size of err
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when out, path or master_key is NULL
 * @retval CPNS_ERR_BUSY when another store holds the database (above)
 * @retval CPNS_ERR_STORE when the file cannot be opened, its schema is newer
 *         than this library, the master key is not the one it was created
 *         with, or a row is damaged (the message is in err)
 * @retval CPNS_ERR_NOMEM when an allocation failed
 */
CPNS_API int cpns_store_sqlite_open(cpns_store **out, const char *path,
                                    const uint8_t master_key[CPNS_KEY_LEN], char *err,
                                    size_t errlen);

/**
 * The message of the last failure of a SQLite store's op, for the daemon's
 * log after an op returned CPNS_ERR_STORE.
 *
 * @param st the store
 * @return SQLite's own text, or the damaged row that made load() fail; ""
 *         when there was none or st is not a SQLite store (never NULL)
 */
CPNS_API const char *cpns_store_sqlite_errmsg(const cpns_store *st);

/**
 * How to open a PostgreSQL store (cpns_store_pg_open()).
 *
 * The PostgreSQL backend (lib/store_pg*.c; the schema is documented at the
 * top of lib/store_pg_schema.c) keeps plain rows an operator can query; EUKs
 * and Group Keys are sealed exactly as in SQLite; a master key check value
 * in meta refuses another key; the schema is versioned and migrated at open,
 * in one transaction under an advisory lock (two instances starting together
 * do not race).
 *
 * Writes (put_*, del_*) only fill an in-memory batch (no I/O; secrets are
 * sealed at put time). commit() sends the whole batch as one transaction in
 * one round trip (libpq pipeline mode, one statement per kind of row with
 * unnest() arrays) and waits for it; commit_start()/commit_poll()/watch_fd()
 * do the same without blocking (writes made while a commit is in flight
 * belong to the next one). The rows of a batch end as the ops left them in
 * order (a key's last put or del wins; del_sg drops the SG's earlier member
 * writes of the batch).
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
    const char *conninfo;      /**< any libpq URI or key=value string, multi-host included */
    const uint8_t *master_key; /**< CPNS_KEY_LEN bytes */
    const char *instance_id;   /**< a valid identifier (cpns_id_valid); NULL: no fencing */
    /**
     * Cluster mode (every instance active; instance_id required): no lease
     * check at commit; the shared-mode ops are set (claim_gw, ...); member
     * progress is a compare-and-set on the owner token; new Group Keys go
     * through cpns_put_key (one key per version, CPNS_ERR_EXISTS to the
     * loser); put_pne writes only the EUK of an existing row (routes are
     * claim_pnes's).
     */
    int cluster;
} cpns_store_pg_config;

/**
 * Connects (blocking) to PostgreSQL and brings the schema to the current
 * version (cpns_store_pg_config says how the store behaves).
 *
 * @param[out] out the new store, for cpns_store_free()
 * @param cfg the connection, master key, instance and mode
 * @param[out] err room for a message on failure; may be NULL
 * @param errlen the size of err
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when an argument is missing or instance_id is
 *         not a valid identifier (or missing in cluster mode)
 * @retval CPNS_ERR_STORE with a message in err: the server cannot be reached
 *         ("cannot connect to PostgreSQL: <libpq's text>"), the schema is
 *         newer than this library, "the database was created with another
 *         master key", or the database holds tables but no CPNS meta table
 * @retval CPNS_ERR_NOMEM when an allocation failed
 */
CPNS_API int cpns_store_pg_open(cpns_store **out, const cpns_store_pg_config *cfg, char *err,
                                size_t errlen);

/**
 * The message of the last failure of a PostgreSQL store's op.
 *
 * @param st the store
 * @return the server's text with its SQLSTATE, or the damaged row that made
 *         load() fail ("<table> <key>: <why>"); "" when there was none or st
 *         is not a PostgreSQL store (never NULL)
 */
CPNS_API const char *cpns_store_pg_errmsg(const cpns_store *st);

/** The 'active' lease as cpns_store_pg_lease_acquire() left it. */
typedef struct cpns_store_pg_lease {
    int held;                     /**< 1 if this store's instance holds it */
    char holder[CPNS_ID_MAX + 1]; /**< its holder's instance_id ("" when nobody ever took it) */
    char admin_addr[256];         /**< the admin address the holder published, "" for none */
    char gw_addr[256];            /**< the GW address the holder published, "" for none */
    int64_t expires_in_ms;        /**< database time until it expires (<= 0: expired) */
    int64_t epoch;                /**< bumped each time the lease changes hands */
} cpns_store_pg_lease;

/**
 * Active/standby (lib/store_pg_lease.c), synchronous, on the store's own
 * connection: takes the 'active' lease if it is free, expired or already
 * this store's (the lease is held by a store object, i.e. one process, with a
 * random session token: a second process with the same instance_id waits
 * like any other standby), setting its expiry to now() + ttl_ms (the
 * database's clock, never the local one) and the published addresses, and
 * bumping its epoch when it changes hands; also refreshes this instance's row
 * of the instance table.
 *
 * @param st a PostgreSQL store opened with an instance_id
 * @param ttl_ms how long the lease lasts without a renewal (>= 1)
 * @param admin_addr the admin address to publish; NULL for ""
 * @param gw_addr the GW address to publish; NULL for ""
 * @param[out] out the lease in every case (held 0: someone else holds it,
 *             out says who and where)
 * @return 0
 * @retval CPNS_ERR_AGAIN while a commit is in flight (poll it first)
 * @retval CPNS_ERR_INVALID_ARG when st is not a PostgreSQL store, no
 *         instance_id is configured, out is NULL or ttl_ms < 1
 * @retval CPNS_ERR_STORE when the database failed (message in
 *         cpns_store_pg_errmsg())
 * @retval CPNS_ERR_NOMEM when an allocation failed while reconnecting
 */
CPNS_API int cpns_store_pg_lease_acquire(cpns_store *st, int ttl_ms, const char *admin_addr,
                                         const char *gw_addr, cpns_store_pg_lease *out);

/**
 * Clean shutdown: expires this instance's lease at once (if it holds it), so
 * a standby takes over without waiting for the TTL.
 *
 * @param st a PostgreSQL store opened with an instance_id
 * @return 0
 * @retval CPNS_ERR_AGAIN while a commit is in flight (poll it first)
 * @retval CPNS_ERR_INVALID_ARG when st is not a PostgreSQL store or no
 *         instance_id is configured
 * @retval CPNS_ERR_STORE when the database failed (message in
 *         cpns_store_pg_errmsg())
 * @retval CPNS_ERR_NOMEM when an allocation failed while reconnecting
 */
CPNS_API int cpns_store_pg_lease_release(cpns_store *st);

/**
 * The schema version this library writes.
 *
 * @return the version (1 and up)
 */
CPNS_API int cpns_store_pg_schema_version(void);

/**
 * Cluster mode (lib/store_pg_cluster.c), on the store's second connection
 * (blocking, LISTENing on cpns_work and cpns_gw): takes or renews this
 * instance's row of the instance table (its expiry = now() + ttl_ms,
 * database time) if it is free, expired or this store's session already.
 *
 * @param st a PostgreSQL store opened in cluster mode
 * @param ttl_ms how long the row lasts without a renewal (>= 1)
 * @param admin_addr the admin address to publish; NULL for ""
 * @param gw_addr the GW address to publish; NULL for ""
 * @param[out] held 1 when this store holds the row, 0 when another live
 *             process holds this instance id
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when st is not a PostgreSQL store in cluster
 *         mode, ttl_ms < 1 or held is NULL
 * @retval CPNS_ERR_STORE when the database failed or cannot be reached
 *         (message in cpns_store_pg_errmsg())
 */
CPNS_API int cpns_store_pg_heartbeat(cpns_store *st, int ttl_ms, const char *admin_addr,
                                     const char *gw_addr, int *held);

/**
 * Cluster mode, on the store's second connection: lists the SGs stored at
 * KeyVersion 0 (an SG Inventory committed without its first Group Key yet),
 * in SGID order, for cpns_server_finish_unkeyed().
 *
 * @param st a PostgreSQL store opened in cluster mode
 * @param fn called with each SGID; a non-zero return stops the list and is
 *        returned
 * @param arg passed to fn
 * @return 0, or what fn returned
 * @retval CPNS_ERR_INVALID_ARG when st is not a PostgreSQL store in cluster
 *         mode or fn is NULL
 * @retval CPNS_ERR_STORE when the database failed or cannot be reached
 *         (message in cpns_store_pg_errmsg())
 */
CPNS_API int cpns_store_pg_unkeyed(cpns_store *st, int (*fn)(void *arg, const char *SGID),
                                   void *arg);

/**
 * The descriptor to watch for notifications of the other instances.
 *
 * @param st a PostgreSQL store
 * @return the descriptor; -1 while the second connection is down
 *         (cpns_store_pg_heartbeat() or cpns_store_pg_changes() reconnects
 *         it) or when st is not a PostgreSQL store
 */
CPNS_API int cpns_store_pg_changes_fd(const cpns_store *st);

/**
 * Records the change feed's position before load(): the changes committed
 * during the load are handed out again by cpns_store_pg_changes() (applying
 * them twice is harmless).
 *
 * @param st a PostgreSQL store opened in cluster mode
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when st is not a PostgreSQL store in cluster mode
 * @retval CPNS_ERR_STORE when the database failed or cannot be reached
 *         (message in cpns_store_pg_errmsg())
 */
CPNS_API int cpns_store_pg_changes_start(cpns_store *st);

/**
 * Reads the notifications that arrived and, when one of them was an admin
 * change (or force_sweep, the periodic sweep), sweeps the change feed (rows
 * after the last one seen, made by other instances), calling fn for each:
 * kind "sg" or "pne" with its id, or "gw" with "PNGWID EPOCH INSTANCE" when a
 * GW registered on an instance (cpns_gw). After a reconnect it LISTENs again
 * and sweeps from the last row seen, so nothing committed is missed.
 *
 * @param st a PostgreSQL store opened in cluster mode
 * @param force_sweep 1 to sweep the feed even without a notification
 * @param fn called for each change; a non-zero return stops the sweep (the
 *        rest comes at the next call) and is returned; NULL to only advance
 * @param arg passed to fn
 * @param[out] n the number of changes handed to fn; may be NULL
 * @return 0, or what fn returned
 * @retval CPNS_ERR_INVALID_ARG when st is not a PostgreSQL store in cluster mode
 * @retval CPNS_ERR_STORE when the database failed or cannot be reached
 *         (message in cpns_store_pg_errmsg())
 */
CPNS_API int cpns_store_pg_changes(cpns_store *st, int force_sweep,
                                   int (*fn)(void *arg, const char *kind, const char *key),
                                   void *arg, size_t *n);

/**
 * Clean shutdown in cluster mode: this instance's row of the instance table
 * expires at once.
 *
 * @param st a PostgreSQL store opened in cluster mode
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when st is not a PostgreSQL store in cluster mode
 * @retval CPNS_ERR_STORE when the database failed or cannot be reached
 *         (message in cpns_store_pg_errmsg())
 */
CPNS_API int cpns_store_pg_release(cpns_store *st);

#ifdef __cplusplus
}
#endif
#endif
