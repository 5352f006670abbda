/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The active/standby lease of the PostgreSQL store (store.h): synchronous
 * calls of the schema's cpns_lease_acquire() and cpns_lease_release() on the
 * store's own connection, between commits. Times are the database's
 * (clock_timestamp()), so instances on machines whose clocks disagree still
 * agree on who holds the lease; the commits' fence (cpns_fence) reads the
 * same row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg_internal.h"

/* The store, ready for a synchronous call: 0, CPNS_ERR_INVALID_ARG, _AGAIN or _STORE. */
static int ready(cpns_store *st, cpns_store_pg **out)
{
    if (!pg_is_store(st))
        return CPNS_ERR_INVALID_ARG;
    cpns_store_pg *s = (cpns_store_pg *)st;
    if (!s->instance_id) {
        pg_set_err(s, "lease: the store has no instance id");
        return CPNS_ERR_INVALID_ARG;
    }
    if (s->inflight)
        return CPNS_ERR_AGAIN;
    int rv = pg_ensure_conn(s);
    if (rv)
        return rv == CPNS_ERR_NOMEM ? rv : CPNS_ERR_STORE;
    *out = s;
    return 0;
}

static PGresult *call(cpns_store_pg *s, const char *sql, int n, const char *const *values)
{
    PQsetnonblocking(s->conn, 0);
    PGresult *r = PQexecParams(s->conn, sql, n, NULL, values, NULL, NULL, 0);
    if (PQstatus(s->conn) != CONNECTION_OK)
        s->broken = 1;
    else
        PQsetnonblocking(s->conn, 1);
    return r;
}

static void copy_col(const PGresult *r, int i, char *out, size_t len)
{
    snprintf(out, len, "%s", PQgetisnull(r, 0, i) ? "" : PQgetvalue(r, 0, i));
}

int cpns_store_pg_lease_acquire(cpns_store *st, int ttl_ms, const char *admin_addr,
                                const char *gw_addr, cpns_store_pg_lease *out)
{
    cpns_store_pg *s = NULL;
    if (!out || ttl_ms < 1)
        return CPNS_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    int rv = ready(st, &s);
    if (rv)
        return rv;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_ms);
    const char *values[5] = {s->instance_id, s->session, ttl, admin_addr ? admin_addr : "",
                             gw_addr ? gw_addr : ""};
    PGresult *r = call(s,
                       "SELECT held, holder, holder_admin, holder_gw, expires_in_ms, lease_epoch"
                       " FROM cpns_lease_acquire($1, $2, $3::bigint, $4, $5)",
                       5, values);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rv = pg_fail_result(s, r, "lease: cannot take it");
    } else {
        out->held = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        copy_col(r, 1, out->holder, sizeof out->holder);
        copy_col(r, 2, out->admin_addr, sizeof out->admin_addr);
        copy_col(r, 3, out->gw_addr, sizeof out->gw_addr);
        out->expires_in_ms = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
        out->epoch = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
    }
    PQclear(r);
    return rv;
}

int cpns_store_pg_lease_release(cpns_store *st)
{
    cpns_store_pg *s = NULL;
    int rv = ready(st, &s);
    if (rv)
        return rv;
    const char *values[2] = {s->instance_id, s->session};
    PGresult *r = call(s, "SELECT cpns_lease_release($1, $2)", 2, values);
    rv =
        PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : pg_fail_result(s, r, "lease: cannot release it");
    PQclear(r);
    return rv;
}
