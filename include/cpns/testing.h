/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file testing.h
 * @brief The test hooks of libcpns and libcpns-store: never installed, never exported.
 *
 * Fault injection and inspection for the project's own tests (and the test
 * hooks of its programs), which link the archives libcpns.a and
 * libcpns-store.a. Each hook is declared CPNS_TESTING: hidden, so neither
 * libcpns.so nor libcpns-store.so exports it and no program can come to
 * depend on it (tests/abi checks both libraries).
 *
 * This header lives in include/cpns/ beside the public ones, so that lib/
 * (which defines the hooks), src/ and tests/ all include it as
 * "cpns/testing.h" with the include path they already have; the install rule
 * (root CMakeLists.txt) leaves it out, which tests/install.cmake checks.
 */
#ifndef CPNS_TESTING_H
#define CPNS_TESTING_H

#include "keystore.h"
#include "store.h"
#include "store_db.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Marks a test hook: declared here only, defined in the library with hidden
 * visibility, so the shared libraries never export it.
 */
#if defined(__GNUC__) || defined(__clang__)
#define CPNS_TESTING __attribute__((visibility("hidden")))
#else
#define CPNS_TESTING
#endif

/**
 * Makes the next n write ops (put_*, del_*, expire_nonces) or commits of a
 * memory store fail with CPNS_ERR_STORE.
 *
 * @param st a memory store (anything else is ignored)
 * @param n how many; 0 stops failing
 */
CPNS_TESTING void cpns_store_mem_fail_writes(cpns_store *st, int n);

/**
 * The number of commits of a memory store so far.
 *
 * @param st a memory store
 * @return the count; 0 when st is not a memory store
 */
CPNS_TESTING uint64_t cpns_store_mem_commits(const cpns_store *st);

/**
 * The committed copy of an SG of a memory store.
 *
 * @param st a memory store
 * @param SGID the SG
 * @param[out] out its committed record
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when st is not a memory store
 * @retval CPNS_ERR_NOT_FOUND when no such SG is committed
 */
CPNS_TESTING int cpns_store_mem_get_sg(const cpns_store *st, const char *SGID, cpns_store_sg *out);

/**
 * The committed copy of a member row of a memory store.
 *
 * @param st a memory store
 * @param SGID the SG
 * @param PNEID the member
 * @param[out] out its committed record
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when st is not a memory store
 * @retval CPNS_ERR_NOT_FOUND when no such row is committed
 */
CPNS_TESTING int cpns_store_mem_get_member(const cpns_store *st, const char *SGID,
                                           const char *PNEID, cpns_store_member *out);

/**
 * Simulates a crash of a memory store: forgets the uncommitted writes and
 * the commit in flight.
 *
 * @param st a memory store (anything else is ignored)
 */
CPNS_TESTING void cpns_store_mem_crash(cpns_store *st);

/**
 * Creates a memory store with the non-blocking commit ops, whose commit in
 * flight ends only when the test says how: cpns_store_mem_async_finish()
 * with 0 (commit_poll then applies it) or an error (commit_poll returns it
 * and keeps the writes for the next commit). A blocking commit() ends it too.
 *
 * @param[out] out the new store, for cpns_store_free()
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when out is NULL
 * @retval CPNS_ERR_NOMEM when an allocation failed
 */
CPNS_TESTING int cpns_store_mem_new_async(cpns_store **out);

/**
 * Decides how the commit in flight of a cpns_store_mem_new_async() store ends.
 *
 * @param st the store
 * @param outcome 0 (durable) or the negative error commit_poll returns
 * @return 0
 * @retval CPNS_ERR_STATE when st is not a memory store, no commit is in
 *         flight, or outcome is CPNS_ERR_AGAIN
 */
CPNS_TESTING int cpns_store_mem_async_finish(cpns_store *st, int outcome);

/**
 * Whether a memory store has a commit in flight.
 *
 * @param st a memory store
 * @return 1 if it has, 0 if not or st is not a memory store
 */
CPNS_TESTING int cpns_store_mem_inflight(const cpns_store *st);

/**
 * Fault injection on a live SQLite store (lib/store_sqlite_fault.c): caps
 * the database file at max_pages pages (never below its current size), so a
 * write needing more fails with SQLITE_FULL as on a full disk.
 *
 * @param st a SQLite store
 * @param max_pages the cap; 0 lifts it
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when st is not a SQLite store
 * @retval CPNS_ERR_STORE when SQLite refused (message in cpns_store_sqlite_errmsg())
 */
CPNS_TESTING int cpns_store_sqlite_set_max_pages(cpns_store *st, uint32_t max_pages);

/**
 * Fault injection on a live SQLite store: makes every write fail with
 * SQLITE_READONLY, as on a read-only mount.
 *
 * @param st a SQLite store
 * @param read_only 1 to refuse writes, 0 to allow them again
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when st is not a SQLite store
 * @retval CPNS_ERR_STORE when SQLite refused (message in cpns_store_sqlite_errmsg())
 */
CPNS_TESTING int cpns_store_sqlite_set_read_only(cpns_store *st, int read_only);

/**
 * Opens like cpns_store_pg_open() but migrates the schema only up to
 * version, so a test can fill a database of an older version and open it
 * again with the full code. The ops work on version 1 (fencing needs
 * version 2).
 *
 * @param[out] out the new store, for cpns_store_free()
 * @param cfg as for cpns_store_pg_open()
 * @param version 1 .. cpns_store_pg_schema_version()
 * @param[out] err room for a message on failure; may be NULL
 * @param errlen the size of err
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when version is out of range, or as for cpns_store_pg_open()
 * @retval CPNS_ERR_STORE as for cpns_store_pg_open()
 * @retval CPNS_ERR_NOMEM when an allocation failed
 */
CPNS_TESTING int cpns_store_pg_open_version(cpns_store **out, const cpns_store_pg_config *cfg,
                                            int version, char *err, size_t errlen);

/**
 * Makes the next n put() calls of a memory keystore fail with CPNS_ERR_IO.
 *
 * @param ks a memory keystore (anything else is ignored)
 * @param n how many; 0 stops failing
 */
CPNS_TESTING void cpns_keystore_mem_fail_puts(cpns_keystore *ks, int n);

#ifdef __cplusplus
}
#endif
#endif
