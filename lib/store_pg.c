/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PostgreSQL backend of the server store (store.h): the connection, the
 * versioned schema (store_pg_schema.c) migrated at open, the commit
 * machinery, and closing. The batch and its statements are in
 * store_pg_batch.c, load() in store_pg_load.c, the lease in store_pg_lease.c.
 *
 * A commit is one pipeline: [SELECT cpns_fence(instance)] + the batches'
 * statements + Sync. Without BEGIN/COMMIT the statements up to the Sync run
 * in one implicit transaction that the server commits at the Sync, or rolls
 * back entirely at the first error (the rest come back PIPELINE_ABORTED), so
 * a batch costs one round trip and is all or nothing. The connection is
 * non-blocking: commit_start() queues and flushes, commit_poll() reads what
 * has arrived and says whether the Sync's answer is there; commit() is
 * commit_start() plus poll(2) on the socket until it is.
 *
 * Batches handed to a commit stay in s->sent until the server says it
 * committed them; a retryable failure keeps them for the next commit, which
 * sends them again, oldest first, before the newer writes, in the same
 * transaction (resending upserts of whole rows is idempotent, so a commit
 * whose answer was lost is safe to repeat). A broken connection is replaced
 * by a new one (blocking) at the next commit.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg_internal.h"

#define PG_SCHEMA_VERSION (pg_migrations[pg_n_migrations - 1].to_version)
/* pg_advisory_xact_lock key of the migrations: "CPNS" */
#define PG_SCHEMA_LOCK "1129336403"

int cpns_store_pg_schema_version(void)
{
    return PG_SCHEMA_VERSION;
}

void pg_set_err(cpns_store_pg *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
}

/* libpq's messages end with a newline: the log wants one line. */
static void chomp(char *msg)
{
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
}

int pg_fail_conn(cpns_store_pg *s, const char *what)
{
    pg_set_err(s, "%s: %s", what, s->conn ? PQerrorMessage(s->conn) : "no connection");
    chomp(s->errmsg);
    return CPNS_ERR_STORE;
}

int pg_fail_result(cpns_store_pg *s, const PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !msg[0])
        msg = s->conn ? PQerrorMessage(s->conn) : "no connection";
    if (state)
        pg_set_err(s, "%s: %s (SQLSTATE %s)", what, msg, state);
    else
        pg_set_err(s, "%s: %s", what, msg);
    chomp(s->errmsg);
    return CPNS_ERR_STORE;
}

int pg_retryable(const cpns_store_pg *s, const PGresult *r)
{
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK)
        return 1;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return 1; /* libpq's own failure (connection), not the server's refusal */
    return strncmp(state, "08", 2) == 0 ||   /* connection exception */
           strncmp(state, "53", 2) == 0 ||   /* insufficient resources */
           strncmp(state, "57P0", 4) == 0 || /* admin/crash shutdown, cannot connect now */
           strcmp(state, "40001") == 0 ||    /* serialization failure */
           strcmp(state, "40P01") == 0 ||    /* deadlock detected */
           strcmp(state, "55P03") == 0 ||    /* lock not available */
           strcmp(state, "57014") == 0;      /* statement timeout / cancelled */
}

int pg_exec(cpns_store_pg *s, const char *sql, const char *what)
{
    PGresult *r = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int rv = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : pg_fail_result(s, r, what);
    PQclear(r);
    return rv;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg, (void)message; /* NOTICEs of CREATE ... IF NOT EXISTS and the like */
}

static int connect_db(cpns_store_pg *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = PQconnectdb(s->conninfo);
    if (!s->conn) {
        pg_set_err(s, "cannot connect to PostgreSQL: out of memory");
        return CPNS_ERR_NOMEM;
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        pg_fail_conn(s, "cannot connect to PostgreSQL");
        s->broken = 1;
        return CPNS_ERR_STORE;
    }
    PQsetNoticeProcessor(s->conn, ignore_notice, NULL);
    s->broken = 0;
    return 0;
}

int pg_ensure_conn(cpns_store_pg *s)
{
    /*
     * A server that went away between commits (restart, failover) closed the
     * socket: reading it now notices, so the commit goes to a new connection
     * instead of failing on the dead one.
     */
    if (!s->broken && s->conn && PQstatus(s->conn) == CONNECTION_OK && !s->inflight &&
        PQconsumeInput(s->conn) && PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    int rv = connect_db(s);
    if (rv == 0 && PQsetnonblocking(s->conn, 1) != 0) {
        s->broken = 1;
        rv = pg_fail_conn(s, "cannot make the connection non-blocking");
    }
    return rv;
}

/* --- the commit machinery --- */

static cpns_store_pg *pg_of(cpns_store *st)
{
    return (cpns_store_pg *)st;
}

static void free_sent(cpns_store_pg *s)
{
    while (s->sent) {
        pg_batch *b = s->sent;
        s->sent = b->next;
        pg_batch_free(b);
    }
}

/* The connection cannot be trusted any more: the commit in flight failed, retryably. */
static int lost(cpns_store_pg *s, const char *what)
{
    int rv = pg_fail_conn(s, what);
    s->broken = 1;
    s->inflight = 0;
    s->flushing = 0;
    pg_fenced_free(&s->fenced_inflight);
    return rv;
}

static int pg_commit_start(cpns_store *st)
{
    cpns_store_pg *s = pg_of(st);
    if (s->inflight)
        return CPNS_ERR_STATE;
    if (s->cur->n_writes) {
        pg_batch *next = pg_batch_new();
        if (!next) {
            pg_set_err(s, "commit: out of memory");
            return CPNS_ERR_NOMEM;
        }
        pg_batch **tail = &s->sent;
        while (*tail)
            tail = &(*tail)->next;
        *tail = s->cur;
        s->cur = next;
    }
    if (!s->sent)
        return 0; /* nothing to write: commit_poll() says 0 at once */
    int rv = pg_ensure_conn(s);
    if (rv)
        return rv == CPNS_ERR_NOMEM ? rv : CPNS_ERR_STORE;
    if (!PQenterPipelineMode(s->conn))
        return lost(s, "commit: cannot enter pipeline mode");
    int n = 0;
    pg_fenced_free(&s->fenced_inflight);
    if (s->instance_id && !s->cluster) {
        const char *values[2] = {s->instance_id, s->session};
        if (!PQsendQueryParams(s->conn, "SELECT cpns_fence($1, $2)", 2, NULL, values, NULL, NULL,
                               0))
            return lost(s, "commit: cannot send");
        n++;
    }
    for (const pg_batch *b = s->sent; b; b = b->next) {
        rv = pg_batch_send(s, b, &n);
        if (rv) {
            /* Half a pipeline was queued: only a new connection forgets it. */
            s->broken = 1;
            return rv;
        }
    }
    if (!PQpipelineSync(s->conn))
        return lost(s, "commit: cannot send");
    s->n_results = n;
    s->failed = 0;
    s->retryable = 1;
    s->inflight = 1;
    int f = PQflush(s->conn);
    if (f < 0)
        return lost(s, "commit: cannot send");
    s->flushing = f == 1;
    return 0;
}

/* One result of the pipeline: the first failure is the commit's. */
static void take_result(cpns_store_pg *s, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK && PQnfields(r) == 2 && strcmp(PQfname(r, 0), PG_FENCED_COLUMN) == 0)
        pg_fenced_collect(s, r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_PIPELINE_ABORTED)
        return;
    if (s->failed)
        return;
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state && strcmp(state, PG_SQLSTATE_EXISTS) == 0) {
        pg_fail_result(s, r, "commit refused");
        s->failed = CPNS_ERR_EXISTS;
        s->retryable = 0;
        return;
    }
    if (state && strcmp(state, PG_SQLSTATE_FENCED) == 0) {
        pg_fail_result(s, r, "commit fenced");
        s->failed = CPNS_ERR_FENCED;
        s->retryable = 0;
        return;
    }
    s->failed = pg_fail_result(s, r, "commit failed");
    s->retryable = pg_retryable(s, r);
}

static int pg_commit_poll(cpns_store *st)
{
    cpns_store_pg *s = pg_of(st);
    if (!s->inflight) {
        /* nothing in flight: what commit_start had nothing to send is durable */
        return 0;
    }
    if (s->flushing) {
        int f = PQflush(s->conn);
        if (f < 0)
            return lost(s, "commit: cannot send");
        if (f == 1)
            return CPNS_ERR_AGAIN;
        s->flushing = 0;
    }
    if (!PQconsumeInput(s->conn))
        return lost(s, "commit: connection lost");
    int nulls = 0;
    while (!PQisBusy(s->conn)) {
        PGresult *r = PQgetResult(s->conn);
        if (!r) {
            if (PQstatus(s->conn) != CONNECTION_OK)
                return lost(s, "commit: connection lost");
            if (++nulls > 1)
                break;
            continue;
        }
        nulls = 0;
        ExecStatusType rs = PQresultStatus(r);
        if (rs != PGRES_PIPELINE_SYNC) {
            take_result(s, r);
            PQclear(r);
            continue;
        }
        PQclear(r);
        /* The Sync's answer: the transaction is over, one way or the other. */
        s->inflight = 0;
        if (!PQexitPipelineMode(s->conn))
            s->broken = 1;
        if (s->failed) {
            pg_fenced_free(&s->fenced_inflight); /* rolled back: nothing was fenced */
        } else {
            pg_fenced **tail = &s->fenced;
            while (*tail)
                tail = &(*tail)->next;
            *tail = s->fenced_inflight;
            s->fenced_inflight = NULL;
        }
        if (s->failed && s->retryable)
            return s->failed; /* the batches stay for the next commit */
        free_sent(s);
        return s->failed;
    }
    if (PQstatus(s->conn) != CONNECTION_OK)
        return lost(s, "commit: connection lost");
    return CPNS_ERR_AGAIN;
}

static int pg_watch_fd(const cpns_store *st)
{
    const cpns_store_pg *s = (const cpns_store_pg *)st;
    return s->conn && PQstatus(s->conn) == CONNECTION_OK ? PQsocket(s->conn) : -1;
}

/* Waits for the commit in flight: its result. */
static int wait_inflight(cpns_store_pg *s)
{
    for (;;) {
        int rv = pg_commit_poll(&s->base);
        if (rv != CPNS_ERR_AGAIN)
            return rv;
        struct pollfd p = {.fd = PQsocket(s->conn), .events = POLLIN};
        if (s->flushing)
            p.events |= POLLOUT;
        if (p.fd < 0)
            return lost(s, "commit: connection lost");
        poll(&p, 1, -1);
    }
}

static int pg_commit(cpns_store *st)
{
    cpns_store_pg *s = pg_of(st);
    if (s->inflight) {
        int rv = wait_inflight(s);
        /* A retryable failure is retried below with the newer writes; others end here. */
        if (rv && (rv != CPNS_ERR_STORE || !s->sent))
            return rv;
    }
    int rv = pg_commit_start(st);
    if (rv)
        return rv;
    return wait_inflight(s);
}

static int pg_rollback(cpns_store *st)
{
    pg_batch_clear(pg_of(st)->cur);
    return 0;
}

static void pg_close(cpns_store *st)
{
    cpns_store_pg *s = pg_of(st);
    if (!s)
        return;
    /* A commit still in flight ends on the server as it ends; nobody was told it is durable. */
    if (s->conn)
        PQfinish(s->conn);
    pg_cluster_close(s);
    free_sent(s);
    pg_batch_free(s->cur);
    cpns_seal_free(s->seal);
    cpns_free(s->conninfo);
    cpns_free(s->instance_id);
    cpns_wipe(s, sizeof *s);
    cpns_free(s);
}

static const cpns_store_ops pg_ops = {
    .load = pg_load,
    .put_pne = pg_put_pne,
    .put_sg = pg_put_sg,
    .del_sg = pg_del_sg,
    .put_member = pg_put_member,
    .del_member = pg_del_member,
    .put_nonce = pg_put_nonce,
    .expire_nonces = pg_expire_nonces,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .close = pg_close,
    .commit_start = pg_commit_start,
    .commit_poll = pg_commit_poll,
    .watch_fd = pg_watch_fd,
};

/* Cluster mode: the same, plus the shared-mode ops (store_pg_cluster.c). */
static const cpns_store_ops pg_cluster_ops = {
    .load = pg_load,
    .put_pne = pg_put_pne,
    .put_sg = pg_put_sg,
    .del_sg = pg_del_sg,
    .put_member = pg_put_member,
    .del_member = pg_del_member,
    .put_nonce = pg_put_nonce,
    .expire_nonces = pg_expire_nonces,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .close = pg_close,
    .commit_start = pg_commit_start,
    .commit_poll = pg_commit_poll,
    .watch_fd = pg_watch_fd,
    .claim_gw = pg_claim_gw,
    .claim_pnes = pg_claim_pnes,
    .load_scope = pg_load_scope,
    .note_change = pg_note_change,
    .take_fenced = pg_take_fenced,
};

int pg_is_store(const cpns_store *st)
{
    return st && (st->ops == &pg_ops || st->ops == &pg_cluster_ops);
}

const char *cpns_store_pg_errmsg(const cpns_store *st)
{
    return pg_is_store(st) ? ((const cpns_store_pg *)st)->errmsg : "";
}

/* --- opening: the schema --- */

/* The single text value of sql (params as text): 0, CPNS_ERR_NOT_FOUND (no row, NULL), or STORE. */
static int query_text(cpns_store_pg *s, const char *sql, int n, const char *const *params,
                      char *out, size_t outlen, const char *what)
{
    PGresult *r = PQexecParams(s->conn, sql, n, NULL, params, NULL, NULL, 0);
    int rv;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rv = pg_fail_result(s, r, what);
    else if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0))
        rv = CPNS_ERR_NOT_FOUND;
    else {
        snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
        rv = 0;
    }
    PQclear(r);
    return rv;
}

/* The schema version of the database: 0 when it has no store yet. */
static int read_version(cpns_store_pg *s, int64_t *version)
{
    char v[32];
    int rv = query_text(s, "SELECT to_regclass('meta') IS NOT NULL", 0, NULL, v, sizeof v,
                        "cannot read the schema");
    if (rv)
        return rv == CPNS_ERR_NOT_FOUND ? CPNS_ERR_STORE : rv;
    if (strcmp(v, "t") != 0) {
        rv = query_text(s,
                        "SELECT count(*) FROM pg_catalog.pg_tables"
                        " WHERE schemaname = current_schema()",
                        0, NULL, v, sizeof v, "cannot read the schema");
        if (rv)
            return rv == CPNS_ERR_NOT_FOUND ? CPNS_ERR_STORE : rv;
        if (strcmp(v, "0") != 0) {
            pg_set_err(s, "not a CPNS server store (the database has tables but no meta table)");
            return CPNS_ERR_STORE;
        }
        *version = 0;
        return 0;
    }
    rv = query_text(s, "SELECT num FROM meta WHERE name = 'schema_version'", 0, NULL, v, sizeof v,
                    "cannot read the schema version");
    char *end = NULL;
    if (rv == 0)
        *version = strtoll(v, &end, 10);
    if (rv == CPNS_ERR_NOT_FOUND || (rv == 0 && (*end || *version < 1))) {
        pg_set_err(s, "the meta table has no valid schema_version (damaged database)");
        return CPNS_ERR_STORE;
    }
    return rv;
}

static int put_check_value(cpns_store_pg *s)
{
    uint8_t blob[CPNS_SEAL_CHECK_LEN];
    int rv = cpns_seal_check_make(s->seal, blob);
    if (rv) {
        pg_set_err(s, "cannot seal the master key check value: %s", cpns_strerror(rv));
        return CPNS_ERR_STORE;
    }
    const char *values[1] = {(const char *)blob};
    int lengths[1] = {(int)sizeof blob}, formats[1] = {1};
    PGresult *r = PQexecParams(s->conn, "INSERT INTO meta (name, blob) VALUES ('check', $1)", 1,
                               NULL, values, lengths, formats, 0);
    rv = PQresultStatus(r) == PGRES_COMMAND_OK
             ? 0
             : pg_fail_result(s, r, "cannot store the master key check value");
    PQclear(r);
    return rv;
}

static int verify_check_value(cpns_store_pg *s)
{
    PGresult *r = PQexecParams(s->conn, "SELECT blob FROM meta WHERE name = 'check'", 0, NULL, NULL,
                               NULL, NULL, 1);
    int rv;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = pg_fail_result(s, r, "cannot read the master key check value");
    } else if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0)) {
        pg_set_err(s, "the meta table has no master key check value (damaged database)");
        rv = CPNS_ERR_STORE;
    } else {
        rv = cpns_seal_check_verify(s->seal, (const uint8_t *)PQgetvalue(r, 0, 0),
                                    (size_t)PQgetlength(r, 0, 0));
        if (rv == CPNS_ERR_AUTH)
            pg_set_err(s, "the database was created with another master key");
        else if (rv)
            pg_set_err(s, "cannot check the master key: %s", cpns_strerror(rv));
        rv = rv ? CPNS_ERR_STORE : 0;
    }
    PQclear(r);
    return rv;
}

/* Brings the schema to `target` (inside the open's transaction, under the advisory lock). */
static int migrate(cpns_store_pg *s, int target)
{
    int64_t version = 0;
    int rv = read_version(s, &version);
    if (rv)
        return rv;
    if (version > PG_SCHEMA_VERSION) {
        pg_set_err(s,
                   "the database has schema version %lld, newer than this program supports (%d):"
                   " use a newer cpns-server",
                   (long long)version, PG_SCHEMA_VERSION);
        return CPNS_ERR_STORE;
    }
    int created = version == 0;
    for (size_t i = 0; i < pg_n_migrations; i++) {
        const pg_migration *m = &pg_migrations[i];
        if (m->to_version <= version || m->to_version > target)
            continue;
        char bump[160];
        snprintf(bump, sizeof bump,
                 "INSERT INTO meta (name, num) VALUES ('schema_version', %d)"
                 " ON CONFLICT (name) DO UPDATE SET num = excluded.num",
                 m->to_version);
        if ((rv = pg_exec(s, m->sql, "cannot create the schema")) != 0 ||
            (m->to_version == 1 && (rv = put_check_value(s)) != 0) ||
            (rv = pg_exec(s, bump, "cannot record the schema version")) != 0)
            return rv;
        version = m->to_version;
    }
    s->schema_version = (int)version;
    return created ? 0 : verify_check_value(s);
}

static int open_db(cpns_store_pg *s, int target)
{
    int rv = connect_db(s);
    if (rv)
        return rv;
    /* One instance decides the schema: two starting together do not both create it. */
    if ((rv = pg_exec(s, "BEGIN", "cannot begin a transaction")) != 0 ||
        (rv = pg_exec(s, "SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK ")",
                      "cannot lock the schema")) != 0)
        return rv;
    rv = migrate(s, target);
    if (rv == 0 && s->instance_id && s->schema_version < 2) {
        pg_set_err(s, "fencing needs schema version 2");
        rv = CPNS_ERR_STORE;
    }
    if (rv == 0 && s->cluster && s->schema_version < 3) {
        pg_set_err(s, "cluster mode needs schema version 3");
        rv = CPNS_ERR_STORE;
    }
    if (rv == 0)
        rv = pg_exec(s, "COMMIT", "cannot commit the schema");
    if (rv) {
        PGresult *r = PQexec(s->conn, "ROLLBACK");
        PQclear(r);
        return rv;
    }
    if (PQsetnonblocking(s->conn, 1) != 0)
        return pg_fail_conn(s, "cannot make the connection non-blocking");
    return 0;
}

static void set_errbuf(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

int cpns_store_pg_open_version(cpns_store **out, const cpns_store_pg_config *cfg, int version,
                               char *err, size_t errlen)
{
    set_errbuf(err, errlen, "");
    if (!out || !cfg || !cfg->conninfo || !cfg->master_key || version < 1 ||
        version > PG_SCHEMA_VERSION || (cfg->instance_id && !cpns_id_valid(cfg->instance_id)) ||
        (cfg->cluster && !cfg->instance_id)) {
        set_errbuf(err, errlen,
                   cfg && cfg->instance_id && !cpns_id_valid(cfg->instance_id)
                       ? "cpns_store_pg_open: the instance id is not a valid identifier"
                   : cfg && cfg->cluster && !cfg->instance_id
                       ? "cpns_store_pg_open: cluster mode needs an instance id"
                       : "cpns_store_pg_open: missing argument");
        return CPNS_ERR_INVALID_ARG;
    }
    *out = NULL;
    cpns_store_pg *s = cpns_calloc(1, sizeof *s);
    if (!s) {
        set_errbuf(err, errlen, "out of memory");
        return CPNS_ERR_NOMEM;
    }
    s->base.ops = cfg->cluster ? &pg_cluster_ops : &pg_ops;
    s->cluster = cfg->cluster != 0;
    int rv = cpns_seal_new(&s->seal, cfg->master_key);
    if (rv == 0) {
        s->conninfo = cpns_strdup(cfg->conninfo);
        s->instance_id = cfg->instance_id ? cpns_strdup(cfg->instance_id) : NULL;
        s->cur = pg_batch_new();
        if (!s->conninfo || (cfg->instance_id && !s->instance_id) || !s->cur)
            rv = CPNS_ERR_NOMEM;
    }
    uint8_t tok[16];
    if (rv == 0 && (rv = cpns_random(NULL, tok, sizeof tok)) == 0)
        for (size_t i = 0; i < sizeof tok; i++)
            snprintf(s->session + 2 * i, 3, "%02x", tok[i]);
    if (rv == CPNS_ERR_NOMEM)
        pg_set_err(s, "out of memory");
    else if (rv)
        pg_set_err(s, "cannot derive the store key: %s", cpns_strerror(rv));
    if (rv == 0)
        rv = open_db(s, version);
    if (rv) {
        set_errbuf(err, errlen, s->errmsg);
        pg_close(&s->base);
        return rv == CPNS_ERR_NOMEM ? rv : CPNS_ERR_STORE;
    }
    *out = &s->base;
    return 0;
}

int cpns_store_pg_open(cpns_store **out, const cpns_store_pg_config *cfg, char *err, size_t errlen)
{
    return cpns_store_pg_open_version(out, cfg, PG_SCHEMA_VERSION, err, errlen);
}
