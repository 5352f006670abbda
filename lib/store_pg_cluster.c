/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cluster mode of the PostgreSQL store (store.h: the shared-mode ops and
 * cpns_store_pg_heartbeat/changes): every instance active on one database.
 *
 * These run on a second connection, `ctl`, in blocking use, so that they
 * never wait behind (or disturb) a group commit in the pipeline of the
 * first. It also LISTENs on cpns_work (admin changes, sent inside the admin
 * transaction by the batch's change rows) and cpns_gw (a GW registered on
 * some instance); after any reconnect it LISTENs again and the next sweep
 * reads the change feed from the last row it saw, so a notification lost
 * with a connection costs one sweep interval, never a change.
 *
 * The fencing token of a member row is (owner_gw, owner_epoch): the GW
 * session that owns its delivery. claim_gw bumps the GW's epoch and adopts
 * its open rows; claim_pnes moves PNEs' rows to the GW each registered
 * through (the registrations of one loop turn, in one transaction);
 * progress writes (store_pg_batch.c) only pass while the token is a current
 * session of this instance.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg_internal.h"

/* The columns of load()'s member query, for RETURNING and the scopes. */
#define MEMBER_COLS                                                                                \
    "m.sgid, m.pneid, m.key_version, m.state, m.ret, m.fail_reason, m.attempts, m.malformed,"      \
    " m.pnid"

static cpns_store_pg *pg_of(cpns_store *st)
{
    return (cpns_store_pg *)st;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg, (void)message;
}

static int ctl_fail(cpns_store_pg *s, const PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !msg[0])
        msg = s->ctl ? PQerrorMessage(s->ctl) : "no connection";
    pg_set_err(s, "%s: %s%s%s%s", what, msg, state ? " (SQLSTATE " : "", state ? state : "",
               state ? ")" : "");
    for (char *p = s->errmsg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    if (!s->ctl || PQstatus(s->ctl) != CONNECTION_OK)
        s->ctl_broken = 1;
    return CPNS_ERR_STORE;
}

static int ctl_exec(cpns_store_pg *s, const char *sql, int n, const char *const *params,
                    const char *what)
{
    PGresult *r = PQexecParams(s->ctl, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    int rv = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : ctl_fail(s, r, what);
    PQclear(r);
    return rv;
}

static void ctl_rollback(cpns_store_pg *s)
{
    if (s->ctl && PQtransactionStatus(s->ctl) != PQTRANS_IDLE) {
        PGresult *r = PQexec(s->ctl, "ROLLBACK");
        PQclear(r);
    }
}

/* The second connection, (re)connected and LISTENing: 0 or CPNS_ERR_STORE. */
static int ctl_ensure(cpns_store_pg *s)
{
    if (s->ctl && !s->ctl_broken && PQstatus(s->ctl) == CONNECTION_OK)
        return 0;
    if (s->ctl)
        PQfinish(s->ctl);
    s->ctl = PQconnectdb(s->conninfo);
    if (!s->ctl || PQstatus(s->ctl) != CONNECTION_OK) {
        ctl_fail(s, NULL, "cannot connect to PostgreSQL");
        return CPNS_ERR_STORE;
    }
    PQsetNoticeProcessor(s->ctl, ignore_notice, NULL);
    s->ctl_broken = 0;
    int rv = ctl_exec(s, "LISTEN cpns_work", 0, NULL, "cannot LISTEN");
    if (rv == 0)
        rv = ctl_exec(s, "LISTEN cpns_gw", 0, NULL, "cannot LISTEN");
    if (rv)
        s->ctl_broken = 1;
    s->change_wanted = 1; /* whatever was notified while it was down */
    return rv;
}

void pg_cluster_close(cpns_store_pg *s)
{
    if (s->ctl)
        PQfinish(s->ctl);
    s->ctl = NULL;
    pg_fenced_free(&s->fenced_inflight);
    pg_fenced_free(&s->fenced);
}

/* --- fenced rows --- */

void pg_fenced_free(pg_fenced **list)
{
    while (*list) {
        pg_fenced *f = *list;
        *list = f->next;
        cpns_free(f);
    }
}

void pg_fenced_collect(cpns_store_pg *s, const PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        const char *sgid = PQgetvalue(r, i, 0), *pneid = PQgetvalue(r, i, 1);
        if (strlen(sgid) > CPNS_ID_MAX || strlen(pneid) > CPNS_ID_MAX)
            continue;
        pg_fenced *f = cpns_calloc(1, sizeof *f);
        if (!f)
            return; /* unreported: the member is sent again and fenced again */
        strcpy(f->SGID, sgid);
        strcpy(f->PNEID, pneid);
        f->next = s->fenced_inflight;
        s->fenced_inflight = f;
    }
}

int pg_take_fenced(cpns_store *st, void (*fn)(void *arg, const char *SGID, const char *PNEID),
                   void *arg)
{
    cpns_store_pg *s = pg_of(st);
    int n = 0;
    while (s->fenced) {
        pg_fenced *f = s->fenced;
        s->fenced = f->next;
        if (fn)
            fn(arg, f->SGID, f->PNEID);
        cpns_free(f);
        n++;
    }
    return n;
}

/* --- claims --- */

static int begin(cpns_store_pg *s)
{
    int rv = ctl_ensure(s);
    if (rv == 0)
        rv = ctl_exec(s, "BEGIN", 0, NULL, "cannot begin");
    return rv;
}

static int commit(cpns_store_pg *s, int rv)
{
    if (rv == 0)
        rv = ctl_exec(s, "COMMIT", 0, NULL, "cannot commit");
    if (rv)
        ctl_rollback(s);
    return rv;
}

static const char sql_session[] =
    "INSERT INTO gw_session AS o (pngwid, instance_id, epoch, pnid) VALUES ($1, $2, 1, $3)"
    " ON CONFLICT (pngwid) DO UPDATE SET instance_id = excluded.instance_id,"
    " epoch = o.epoch + 1, pnid = excluded.pnid, since = now() RETURNING epoch";
/*
 * The GW's open rows: owned by it, or of a PNE whose last registration was
 * through it (a row stamped before that registration committed). Open: not
 * delivered at the SG's current version, failed included (the catch-up
 * decides about those). A request out through the old connection is lost:
 * sent becomes pending, as after a restart.
 */
static const char sql_adopt[] =
    "UPDATE member m SET owner_gw = $1, owner_epoch = $2::bigint,"
    " state = CASE WHEN m.state = 1 THEN 0 ELSE m.state END FROM sg"
    " WHERE sg.sgid = m.sgid AND (m.state <> 2 OR m.key_version < sg.key_version)"
    " AND (m.owner_gw = $1 OR m.pneid IN"
    " (SELECT pneid FROM pne WHERE pngwid = $1 AND registered)) RETURNING " MEMBER_COLS;
static const char sql_routed[] =
    "SELECT pneid, euk, registered, pngwid, pnid FROM pne WHERE pngwid = $1 AND registered"
    " ORDER BY pneid";
static const char sql_gw_notify[] = "SELECT pg_notify('cpns_gw', $1 || ' ' || $2 || ' ' || $3)";

int pg_claim_gw(cpns_store *st, const char *PNGWID, const char *PNID, const cpns_store_loader *l,
                void *arg, int64_t *epoch)
{
    cpns_store_pg *s = pg_of(st);
    if (!PNGWID || !PNID || !l || !l->member || !epoch)
        return CPNS_ERR_INVALID_ARG;
    int rv = begin(s);
    char ep[24] = "";
    if (rv == 0) {
        const char *p[3] = {PNGWID, s->instance_id, PNID};
        PGresult *r = PQexecParams(s->ctl, sql_session, 3, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
            rv = ctl_fail(s, r, "claim_gw");
        else
            snprintf(ep, sizeof ep, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    if (rv == 0 && l->pne) {
        /* The PNEs routed through it, as registered on whatever instance held it. */
        const char *p[1] = {PNGWID};
        rv = pg_load_rows(s, s->ctl, PG_T_PNE, sql_routed, 1, p, l, arg, NULL);
    }
    if (rv == 0) {
        const char *p[2] = {PNGWID, ep};
        rv = pg_load_rows(s, s->ctl, PG_T_MEMBER, sql_adopt, 2, p, l, arg, NULL);
        if (rv == CPNS_ERR_STORE && PQstatus(s->ctl) != CONNECTION_OK)
            s->ctl_broken = 1;
    }
    if (rv == 0) {
        const char *p[3] = {PNGWID, ep, s->instance_id};
        rv = ctl_exec(s, sql_gw_notify, 3, p, "claim_gw");
    }
    rv = commit(s, rv);
    if (rv == 0)
        *epoch = strtoll(ep, NULL, 10);
    return rv;
}

/*
 * The claims of one loop turn, in one transaction (a group commit of
 * registrations: one fsync for all of them, not one each). The PNE rows are
 * locked first, in PNEID order, so that two instances claiming overlapping
 * PNEs wait for each other instead of deadlocking; every later row a claim
 * touches (its nonce, its member rows) belongs to a PNE locked here.
 */
static const char sql_lock_pnes[] =
    "SELECT 1 FROM pne WHERE pneid = ANY($1::text[]) ORDER BY pneid FOR UPDATE";
/*
 * The Nonces, in PNEID order: those not seen before are inserted, and only
 * their PNEs get the route. Returns the ordinal (1-based, in the arrays) of
 * each claim accepted; a claim left out was a replay, through any instance.
 */
static const char sql_claim_nonces[] =
    "WITH c AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[])"
    " WITH ORDINALITY AS u(pneid, nonce, seen_ms, pngwid, pnid, i)),"
    " ins AS (INSERT INTO nonce (pneid, nonce, seen_ms)"
    " SELECT pneid, decode(nonce, 'hex'), seen_ms FROM c ORDER BY pneid"
    " ON CONFLICT (pneid, nonce) DO NOTHING RETURNING pneid),"
    " acc AS (SELECT c.* FROM c JOIN ins ON ins.pneid = c.pneid),"
    " route AS (UPDATE pne p SET registered = true, pngwid = acc.pngwid, pnid = acc.pnid"
    " FROM acc WHERE p.pneid = acc.pneid)"
    " SELECT i FROM acc";
/*
 * Every row of an accepted PNE goes with it, to its GW's session here
 * (catch-up, PROTOCOL.md 5.3: the engine decides what to resend).
 */
static const char sql_take_pnes[] =
    "UPDATE member m SET owner_gw = a.pngwid, owner_epoch ="
    " (SELECT epoch FROM gw_session WHERE pngwid = a.pngwid AND instance_id = $3),"
    " state = CASE WHEN m.state = 1 THEN 0 ELSE m.state END"
    " FROM unnest($1::text[], $2::text[]) AS a(pneid, pngwid)"
    " WHERE m.pneid = a.pneid RETURNING " MEMBER_COLS;

static int by_pneid(const void *a, const void *b)
{
    const cpns_store_pne_claim *x = *(const cpns_store_pne_claim *const *)a;
    const cpns_store_pne_claim *y = *(const cpns_store_pne_claim *const *)b;
    return strcmp(x->nonce.PNEID, y->nonce.PNEID);
}

static int id_ok(const char *id)
{
    size_t n = strnlen(id, CPNS_ID_MAX + 1);
    return n > 0 && n <= CPNS_ID_MAX;
}

/* Runs the statements of claim_pnes in the open transaction; ord: the claims in PNEID order. */
static int claim_pnes_tx(cpns_store_pg *s, const cpns_store_pne_claim *const *ord, size_t n,
                         const cpns_store_pne_claim *c, int *result, const cpns_store_loader *l,
                         void *arg)
{
    static const char digits[] = "0123456789abcdef";
    pg_buf col[5];
    memset(col, 0, sizeof col);
    for (size_t k = 0; k < n; k++) {
        const cpns_store_pne_claim *x = ord[k];
        char hex[2 * CPNS_NONCE_LEN + 1];
        for (size_t i = 0; i < CPNS_NONCE_LEN; i++) {
            hex[2 * i] = digits[x->nonce.Nonce[i] >> 4];
            hex[2 * i + 1] = digits[x->nonce.Nonce[i] & 15];
        }
        hex[2 * CPNS_NONCE_LEN] = '\0';
        pg_buf_text(&col[0], x->nonce.PNEID);
        pg_buf_text(&col[1], hex);
        pg_buf_int(&col[2], x->nonce.seen_ms);
        pg_buf_text(&col[3], x->PNGWID);
        pg_buf_text(&col[4], x->PNID);
    }
    int rv = 0;
    for (int i = 0; i < 5; i++) {
        pg_buf_end(&col[i]);
        if (col[i].oom)
            rv = CPNS_ERR_NOMEM;
    }
    if (rv == 0) {
        const char *p[1] = {col[0].p};
        rv = ctl_exec(s, sql_lock_pnes, 1, p, "claim_pnes");
    }
    if (rv == 0) {
        const char *p[5] = {col[0].p, col[1].p, col[2].p, col[3].p, col[4].p};
        PGresult *r = PQexecParams(s->ctl, sql_claim_nonces, 5, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rv = ctl_fail(s, r, "claim_pnes");
        } else {
            for (int i = 0; i < PQntuples(r); i++) {
                long long k = strtoll(PQgetvalue(r, i, 0), NULL, 10);
                if (k >= 1 && (size_t)k <= n)
                    result[ord[k - 1] - c] = 0;
            }
        }
        PQclear(r);
    }
    for (int i = 0; i < 5; i++)
        pg_buf_free(&col[i]);
    /* The member rows of the accepted PNEs. */
    for (size_t k = 0; rv == 0 && k < n; k++) {
        if (result[ord[k] - c] == 0) {
            pg_buf_text(&col[0], ord[k]->nonce.PNEID);
            pg_buf_text(&col[1], ord[k]->PNGWID);
        }
    }
    if (rv == 0 && col[0].n) {
        pg_buf_end(&col[0]);
        pg_buf_end(&col[1]);
        if (col[0].oom || col[1].oom) {
            rv = CPNS_ERR_NOMEM;
        } else {
            const char *p[3] = {col[0].p, col[1].p, s->instance_id};
            rv = pg_load_rows(s, s->ctl, PG_T_MEMBER, sql_take_pnes, 3, p, l, arg, NULL);
            if (rv == CPNS_ERR_STORE && PQstatus(s->ctl) != CONNECTION_OK)
                s->ctl_broken = 1;
        }
    }
    pg_buf_free(&col[0]);
    pg_buf_free(&col[1]);
    return rv;
}

int pg_claim_pnes(cpns_store *st, const cpns_store_pne_claim *c, size_t n, int *result,
                  const cpns_store_loader *l, void *arg)
{
    cpns_store_pg *s = pg_of(st);
    if ((n && (!c || !result)) || !l || !l->member)
        return CPNS_ERR_INVALID_ARG;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!id_ok(c[i].nonce.PNEID) || !id_ok(c[i].PNGWID) ||
            strnlen(c[i].PNID, CPNS_ID_MAX + 1) > CPNS_ID_MAX)
            return CPNS_ERR_INVALID_ARG;
    const cpns_store_pne_claim **ord = cpns_calloc(n, sizeof *ord);
    if (!ord)
        return CPNS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        ord[i] = &c[i];
        result[i] = CPNS_ERR_EXISTS; /* until its Nonce is inserted */
    }
    qsort(ord, n, sizeof *ord, by_pneid);
    int rv = 0;
    for (size_t k = 1; k < n; k++)
        if (strcmp(ord[k - 1]->nonce.PNEID, ord[k]->nonce.PNEID) == 0)
            rv = CPNS_ERR_INVALID_ARG; /* one claim per PNE and transaction */
    if (rv == 0) {
        rv = begin(s);
        if (rv == 0)
            rv = claim_pnes_tx(s, ord, n, c, result, l, arg);
        rv = commit(s, rv);
    }
    cpns_free(ord);
    return rv;
}

/* --- scopes --- */

static const char sql_scope_sg[] =
    "SELECT s.sgid, s.key_version, k.gk FROM sg s LEFT JOIN sg_key k"
    " ON k.sgid = s.sgid AND k.key_version = s.key_version WHERE s.sgid = $1";
static const char sql_scope_sg_members[] =
    "SELECT " MEMBER_COLS " FROM member m WHERE m.sgid = $1 ORDER BY m.pneid";
static const char sql_scope_pne[] =
    "SELECT pneid, euk, registered, pngwid, pnid FROM pne WHERE pneid = $1";
static const char sql_scope_pne_members[] =
    "SELECT " MEMBER_COLS " FROM member m WHERE m.pneid = $1 ORDER BY m.sgid";

int pg_load_scope(cpns_store *st, const char *SGID, const char *PNEID, const cpns_store_loader *l,
                  void *arg)
{
    cpns_store_pg *s = pg_of(st);
    if ((!SGID) == (!PNEID) || !l || !l->member || (SGID && !l->sg) || (PNEID && !l->pne))
        return CPNS_ERR_INVALID_ARG;
    int rv = ctl_ensure(s);
    if (rv == 0)
        rv = ctl_exec(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                      "load_scope: cannot begin");
    const char *p[1] = {SGID ? SGID : PNEID};
    size_t rows = 0;
    if (rv == 0)
        rv = pg_load_rows(s, s->ctl, SGID ? PG_T_SG : PG_T_PNE, SGID ? sql_scope_sg : sql_scope_pne,
                          1, p, l, arg, &rows);
    if (rv == 0 && rows == 0)
        rv = CPNS_ERR_NOT_FOUND;
    if (rv == 0)
        rv = pg_load_rows(s, s->ctl, PG_T_MEMBER,
                          SGID ? sql_scope_sg_members : sql_scope_pne_members, 1, p, l, arg, NULL);
    if (s->ctl && PQstatus(s->ctl) != CONNECTION_OK)
        s->ctl_broken = 1;
    ctl_rollback(s); /* read only */
    return rv;
}

/* --- the instance row, the change feed --- */

static const char sql_heartbeat[] =
    "INSERT INTO instance AS i (instance_id, admin_addr, gw_addr, lease_expires, session)"
    " VALUES ($1, $2, $3, clock_timestamp() + $4::bigint * interval '1 millisecond', $5)"
    " ON CONFLICT (instance_id) DO UPDATE SET admin_addr = excluded.admin_addr,"
    " gw_addr = excluded.gw_addr, lease_expires = excluded.lease_expires,"
    " session = excluded.session"
    " WHERE i.session = excluded.session OR i.lease_expires <= clock_timestamp() RETURNING 1";

int cpns_store_pg_heartbeat(cpns_store *st, int ttl_ms, const char *admin_addr, const char *gw_addr,
                            int *held)
{
    if (!pg_is_store(st) || !pg_of(st)->cluster || ttl_ms < 1 || !held)
        return CPNS_ERR_INVALID_ARG;
    cpns_store_pg *s = pg_of(st);
    int rv = ctl_ensure(s);
    if (rv)
        return rv;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_ms);
    const char *p[5] = {s->instance_id, admin_addr ? admin_addr : "", gw_addr ? gw_addr : "", ttl,
                        s->session};
    PGresult *r = PQexecParams(s->ctl, sql_heartbeat, 5, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rv = ctl_fail(s, r, "heartbeat");
    else
        *held = PQntuples(r) == 1;
    PQclear(r);
    return rv;
}

int cpns_store_pg_release(cpns_store *st)
{
    if (!pg_is_store(st) || !pg_of(st)->cluster)
        return CPNS_ERR_INVALID_ARG;
    cpns_store_pg *s = pg_of(st);
    int rv = ctl_ensure(s);
    const char *p[2] = {s->instance_id, s->session};
    if (rv == 0)
        rv = ctl_exec(s,
                      "UPDATE instance SET lease_expires = clock_timestamp()"
                      " WHERE instance_id = $1 AND session = $2",
                      2, p, "release");
    return rv;
}

/* A sequential scan of sg: one row per SG, cheap next to the change feed's sweep. */
int cpns_store_pg_unkeyed(cpns_store *st, int (*fn)(void *arg, const char *SGID), void *arg)
{
    if (!pg_is_store(st) || !pg_of(st)->cluster || !fn)
        return CPNS_ERR_INVALID_ARG;
    cpns_store_pg *s = pg_of(st);
    int rv = ctl_ensure(s);
    if (rv)
        return rv;
    PGresult *r = PQexec(s->ctl, "SELECT sgid FROM sg WHERE key_version = 0 ORDER BY sgid");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = ctl_fail(s, r, "unkeyed");
        PQclear(r);
        return rv;
    }
    for (int i = 0; rv == 0 && i < PQntuples(r); i++)
        rv = fn(arg, PQgetvalue(r, i, 0));
    PQclear(r);
    return rv;
}

int cpns_store_pg_changes_fd(const cpns_store *st)
{
    if (!pg_is_store(st))
        return -1;
    const cpns_store_pg *s = (const cpns_store_pg *)st;
    return s->ctl && !s->ctl_broken && PQstatus(s->ctl) == CONNECTION_OK ? PQsocket(s->ctl) : -1;
}

int cpns_store_pg_changes_start(cpns_store *st)
{
    if (!pg_is_store(st) || !pg_of(st)->cluster)
        return CPNS_ERR_INVALID_ARG;
    cpns_store_pg *s = pg_of(st);
    int rv = ctl_ensure(s);
    if (rv)
        return rv;
    PGresult *r = PQexec(s->ctl, "SELECT coalesce(max(seq), 0) FROM change");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        rv = ctl_fail(s, r, "changes");
    else
        s->change_seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    s->change_wanted = 0;
    return rv;
}

static int sweep(cpns_store_pg *s, int (*fn)(void *, const char *, const char *), void *arg,
                 size_t *n)
{
    char last[24];
    snprintf(last, sizeof last, "%lld", (long long)s->change_seq);
    const char *p[1] = {last};
    PGresult *r = PQexecParams(s->ctl,
                               "SELECT seq, kind, key, instance_id FROM change WHERE seq > $1"
                               " ORDER BY seq",
                               1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rv = ctl_fail(s, r, "changes");
        PQclear(r);
        return rv;
    }
    s->change_wanted = 0;
    int rv = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        const char *kind = PQgetvalue(r, i, 1), *key = PQgetvalue(r, i, 2);
        if (strcmp(PQgetvalue(r, i, 3), s->instance_id) != 0 && fn) {
            rv = fn(arg, kind, key);
            if (rv) {
                s->change_wanted = 1; /* the rest at the next call */
                break;
            }
            ++*n;
        }
        s->change_seq = seq;
    }
    PQclear(r);
    return rv;
}

int cpns_store_pg_changes(cpns_store *st, int force_sweep,
                          int (*fn)(void *arg, const char *kind, const char *key), void *arg,
                          size_t *n)
{
    if (!pg_is_store(st) || !pg_of(st)->cluster)
        return CPNS_ERR_INVALID_ARG;
    cpns_store_pg *s = pg_of(st);
    size_t dummy;
    if (!n)
        n = &dummy;
    *n = 0;
    int rv = ctl_ensure(s);
    if (rv)
        return rv;
    if (!PQconsumeInput(s->ctl))
        return ctl_fail(s, NULL, "changes");
    PGnotify *nt;
    while ((nt = PQnotifies(s->ctl)) != NULL) {
        if (strcmp(nt->relname, "cpns_gw") == 0) {
            if (fn && fn(arg, "gw", nt->extra) == 0)
                ++*n;
        } else if (strcmp(nt->extra, s->instance_id) != 0) {
            s->change_wanted = 1;
        }
        PQfreemem(nt);
    }
    if (force_sweep || s->change_wanted)
        rv = sweep(s, fn, arg, n);
    return rv;
}
