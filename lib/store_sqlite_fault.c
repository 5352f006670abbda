/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fault injection for the SQLite store, for tests only: real SQLite errors
 * rather than a mocked op, so the whole path (sqlite_write's poisoning,
 * rollback, the engine's retry, the daemon's /healthz and metrics) is the one
 * a full disk or a read-only database would take in production.
 *
 * PRAGMA max_page_count caps the database file: a write that needs one more
 * page fails with SQLITE_FULL ("database or disk is full"), exactly as when
 * the file system is full. SQLite never sets the cap below the file's current
 * size, so a cap of 1 means "full from now on". PRAGMA query_only makes every
 * write fail with SQLITE_READONLY, as a database on a read-only mount would.
 */
#include <stdio.h>

#include "store_sqlite_internal.h"

/* SQLite's own upper bound; it clamps larger values to the build's maximum. */
#define NO_PAGE_CAP 4294967294ul

static cpns_store_sqlite *sqlite_store(cpns_store *st)
{
    /* The ops table is private to store_sqlite.c; its load op is shared through the header. */
    if (!st || !st->ops || st->ops->load != sqlite_load)
        return NULL;
    return (cpns_store_sqlite *)st;
}

int cpns_store_sqlite_set_max_pages(cpns_store *st, uint32_t max_pages)
{
    cpns_store_sqlite *s = sqlite_store(st);
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lu",
             max_pages ? (unsigned long)max_pages : NO_PAGE_CAP);
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(s, "cannot set max_page_count");
    int rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqlite_fail(s, "cannot set max_page_count");
}

int cpns_store_sqlite_set_read_only(cpns_store *st, int read_only)
{
    cpns_store_sqlite *s = sqlite_store(st);
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    int rc = sqlite3_exec(s->db, read_only ? "PRAGMA query_only = ON" : "PRAGMA query_only = OFF",
                          NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sqlite_fail(s, "cannot set query_only");
}
