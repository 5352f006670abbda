/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The write batch of the PostgreSQL store: the put_ and del_ ops only
 * record their row in memory (sealing secrets at once, so no clear key
 * waits in a batch), and commit sends each kind of row as one statement
 * whose parameters are PostgreSQL array literals expanded by unnest():
 * 100,000 member upserts are one INSERT ... SELECT unnest(...), not
 * 100,000 statements.
 *
 * The batch is normalised as the ops arrive (store_pg_internal.h), because
 * one INSERT ... ON CONFLICT DO UPDATE cannot touch a row twice and because
 * the statements run grouped by kind: deletions first (members, then SGs
 * with their keys and members by cascade), nonce expiry, then the upserts of
 * PNEs, SGs, Group Keys, members and nonces. The order of the engine's
 * flush (deletions first, then puts) is therefore kept, and so is any other
 * order of ops within a batch.
 *
 * Array literals: every element is double-quoted with '"' and '\' escaped,
 * so an identifier can hold nothing that breaks out of its element; bytea
 * travels as hex text decoded by the statement.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store_pg_internal.h"

#define HEX_SECRET_LEN (2 * CPNS_SEAL_SECRET_LEN + 1)

typedef struct pg_pne {
    char PNEID[CPNS_ID_MAX + 1];
    char euk[HEX_SECRET_LEN]; /* sealed, in hex */
    int registered;
    char PNGWID[CPNS_ID_MAX + 1];
    char PNID[CPNS_ID_MAX + 1];
} pg_pne;

typedef struct pg_sg {
    char SGID[CPNS_ID_MAX + 1];
    uint32_t KeyVersion;
    char gk[HEX_SECRET_LEN]; /* sealed, in hex; "" for version 0 */
} pg_sg;

typedef struct pg_key {
    char SGID[CPNS_ID_MAX + 1];
} pg_key;

typedef struct pg_member {
    int del; /* a del_member (only m.PNEID counts) */
    cpns_store_member m;
} pg_member;

typedef struct pg_group {
    char SGID[CPNS_ID_MAX + 1];
    cpns_map members; /* PNEID -> pg_member */
} pg_group;

/* An admin change of cluster mode: "kind key" (the map's key) and its parts. */
#define CHANGE_KEY_LEN (8 + CPNS_ID_MAX + 1)
typedef struct pg_change {
    char key[CHANGE_KEY_LEN];
    char kind[8];
    char id[CPNS_ID_MAX + 1];
} pg_change;

typedef struct pg_nonce {
    char key[CPNS_NONCE_KEY_LEN];
    cpns_store_nonce n;
    int del; /* put, then expired in this batch: deleted by key at commit */
} pg_nonce;

static const char hex_digits[] = "0123456789abcdef";

static void to_hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[p[i] >> 4];
        out[2 * i + 1] = hex_digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* --- the batch --- */

pg_batch *pg_batch_new(void)
{
    return cpns_calloc(1, sizeof(pg_batch));
}

static void free_values(cpns_map *m, size_t size)
{
    for (cpns_map_iter it = cpns_map_begin(m); cpns_map_next(&it);) {
        cpns_wipe(it.val, size);
        cpns_free(it.val);
    }
    cpns_map_clear(m);
}

static void group_free(pg_group *g)
{
    if (!g)
        return;
    free_values(&g->members, sizeof(pg_member));
    cpns_free(g);
}

void pg_batch_clear(pg_batch *b)
{
    free_values(&b->pnes, sizeof(pg_pne));
    free_values(&b->sgs, sizeof(pg_sg));
    free_values(&b->del_sgs, sizeof(pg_key));
    for (cpns_map_iter it = cpns_map_begin(&b->groups); cpns_map_next(&it);)
        group_free(it.val);
    cpns_map_clear(&b->groups);
    free_values(&b->nonces, sizeof(pg_nonce));
    free_values(&b->changes, sizeof(pg_change));
    b->expire = 0;
    b->expire_before_ms = 0;
    b->n_writes = 0;
}

void pg_batch_free(pg_batch *b)
{
    if (b) {
        pg_batch_clear(b);
        cpns_free(b);
    }
}

/*
 * The entry of key in m (a new zeroed one of `size` bytes whose key is
 * copied to its start when absent): NULL when out of memory.
 */
static void *entry(cpns_map *m, const char *key, size_t size)
{
    void *v = cpns_map_get(m, key);
    if (v)
        return v;
    v = cpns_calloc(1, size);
    if (!v)
        return NULL;
    strcpy(v, key); /* every entry type starts with its key */
    if (cpns_map_put(m, v, v) != 0) {
        cpns_free(v);
        return NULL;
    }
    return v;
}

/* Identifiers go into text columns: at most CPNS_ID_MAX bytes of ASCII (valid UTF-8). */
static int text_ok(const char *s, int may_be_empty)
{
    if (!s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] >= 0x80 || n == CPNS_ID_MAX)
            return 0;
    return n > 0 || may_be_empty;
}

static cpns_store_pg *pg_of(cpns_store *st)
{
    return (cpns_store_pg *)st;
}

static int no_memory(cpns_store_pg *s, const char *what)
{
    pg_set_err(s, "%s: out of memory", what);
    return CPNS_ERR_NOMEM;
}

int pg_put_pne(cpns_store *st, const cpns_store_pne *p)
{
    cpns_store_pg *s = pg_of(st);
    if (!p || !text_ok(p->PNEID, 0) || !text_ok(p->PNGWID, 1) || !text_ok(p->PNID, 1))
        return CPNS_ERR_INVALID_ARG;
    uint8_t blob[CPNS_SEAL_SECRET_LEN];
    int rv = cpns_seal_euk(s->seal, p->PNEID, p->EUK, blob);
    if (rv) {
        pg_set_err(s, "pne %s: cannot seal the EUK: %s", p->PNEID, cpns_strerror(rv));
        return CPNS_ERR_STORE;
    }
    pg_pne *e = entry(&s->cur->pnes, p->PNEID, sizeof *e);
    if (!e)
        return no_memory(s, "put_pne");
    to_hex(blob, sizeof blob, e->euk);
    e->registered = p->registered != 0;
    strcpy(e->PNGWID, p->PNGWID);
    strcpy(e->PNID, p->PNID);
    s->cur->n_writes++;
    return 0;
}

int pg_put_sg(cpns_store *st, const cpns_store_sg *sg)
{
    cpns_store_pg *s = pg_of(st);
    if (!sg || !text_ok(sg->SGID, 0))
        return CPNS_ERR_INVALID_ARG;
    char gk[HEX_SECRET_LEN] = "";
    if (sg->KeyVersion) {
        uint8_t blob[CPNS_SEAL_SECRET_LEN];
        int rv = cpns_seal_gk(s->seal, sg->SGID, sg->KeyVersion, sg->GK, blob);
        if (rv) {
            pg_set_err(s, "sg %s: cannot seal the Group Key: %s", sg->SGID, cpns_strerror(rv));
            return CPNS_ERR_STORE;
        }
        to_hex(blob, sizeof blob, gk);
    }
    pg_sg *e = entry(&s->cur->sgs, sg->SGID, sizeof *e);
    if (!e)
        return no_memory(s, "put_sg");
    e->KeyVersion = sg->KeyVersion;
    memcpy(e->gk, gk, sizeof gk);
    s->cur->n_writes++;
    return 0;
}

int pg_del_sg(cpns_store *st, const char *SGID)
{
    cpns_store_pg *s = pg_of(st);
    if (!text_ok(SGID, 0))
        return CPNS_ERR_INVALID_ARG;
    pg_batch *b = s->cur;
    if (!entry(&b->del_sgs, SGID, sizeof(pg_key)))
        return no_memory(s, "del_sg");
    /* The SG's earlier writes of this batch go with it (its members by cascade in the database). */
    pg_sg *old = cpns_map_remove(&b->sgs, SGID);
    if (old) {
        cpns_wipe(old, sizeof *old);
        cpns_free(old);
    }
    group_free(cpns_map_remove(&b->groups, SGID));
    b->n_writes++;
    return 0;
}

static int member_op(cpns_store_pg *s, const char *SGID, const char *PNEID,
                     const cpns_store_member *m)
{
    pg_group *g = entry(&s->cur->groups, SGID, sizeof *g);
    pg_member *e = g ? cpns_map_get(&g->members, PNEID) : NULL;
    if (g && !e) {
        e = cpns_calloc(1, sizeof *e);
        if (e)
            strcpy(e->m.PNEID, PNEID);
        if (e && cpns_map_put(&g->members, e->m.PNEID, e) != 0) {
            cpns_free(e);
            e = NULL;
        }
    }
    if (!e)
        return no_memory(s, m ? "put_member" : "del_member");
    int unfenced = e->m.unfenced;
    e->del = m == NULL;
    if (m) {
        e->m = *m;
        e->m.unfenced |= unfenced; /* a new row stays an insert until committed */
    }
    s->cur->n_writes++;
    return 0;
}

int pg_put_member(cpns_store *st, const cpns_store_member *m)
{
    if (!m || !text_ok(m->SGID, 0) || !text_ok(m->PNEID, 0) || !text_ok(m->PNID, 1) ||
        m->state < CPNS_MEMBER_PENDING || m->state > CPNS_MEMBER_FAILED)
        return CPNS_ERR_INVALID_ARG;
    return member_op(pg_of(st), m->SGID, m->PNEID, m);
}

int pg_del_member(cpns_store *st, const char *SGID, const char *PNEID)
{
    if (!text_ok(SGID, 0) || !text_ok(PNEID, 0))
        return CPNS_ERR_INVALID_ARG;
    return member_op(pg_of(st), SGID, PNEID, NULL);
}

int pg_put_nonce(cpns_store *st, const cpns_store_nonce *n)
{
    cpns_store_pg *s = pg_of(st);
    if (!n || !text_ok(n->PNEID, 0))
        return CPNS_ERR_INVALID_ARG;
    char key[CPNS_NONCE_KEY_LEN];
    cpns_nonce_key(n->PNEID, n->Nonce, key);
    pg_nonce *e = entry(&s->cur->nonces, key, sizeof *e);
    if (!e)
        return no_memory(s, "put_nonce");
    e->n = *n;
    e->del = 0;
    s->cur->n_writes++;
    return 0;
}

int pg_expire_nonces(cpns_store *st, int64_t seen_before_ms)
{
    cpns_store_pg *s = pg_of(st);
    pg_batch *b = s->cur;
    /*
     * The database's older nonces go by one DELETE, before the inserts. This
     * batch's older ones are deleted by key: the row may be committed with a
     * newer seen_ms that the bound would not catch (put, then expire).
     */
    for (cpns_map_iter it = cpns_map_begin(&b->nonces); cpns_map_next(&it);)
        if (((pg_nonce *)it.val)->n.seen_ms < seen_before_ms)
            ((pg_nonce *)it.val)->del = 1;
    if (!b->expire || seen_before_ms > b->expire_before_ms)
        b->expire_before_ms = seen_before_ms;
    b->expire = 1;
    b->n_writes++;
    return 0;
}

/* --- array literals --- */

static void buf_add(pg_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len < n + 2) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n + 2)
            cap *= 2;
        char *p = cpns_realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void elem_start(pg_buf *b)
{
    buf_add(b, b->n++ ? "," : "{", 1);
}

static void elem_text(pg_buf *b, const char *s)
{
    elem_start(b);
    buf_add(b, "\"", 1);
    for (const char *run = s;; s++) {
        if (*s == '"' || *s == '\\' || *s == '\0') {
            buf_add(b, run, (size_t)(s - run));
            if (!*s)
                break;
            buf_add(b, "\\", 1);
            run = s;
        }
    }
    buf_add(b, "\"", 1);
}

static void elem_int(pg_buf *b, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, v);
    elem_start(b);
    buf_add(b, num, (size_t)n);
}

static void elem_bool(pg_buf *b, int v)
{
    elem_start(b);
    buf_add(b, v ? "t" : "f", 1);
}

/* Closes the literal: "{}" for no element. */
static void buf_end(pg_buf *b)
{
    if (b->n == 0)
        buf_add(b, "{", 1);
    buf_add(b, "}", 1);
}

void pg_buf_text(pg_buf *b, const char *s)
{
    elem_text(b, s);
}

void pg_buf_int(pg_buf *b, int64_t v)
{
    elem_int(b, v);
}

void pg_buf_end(pg_buf *b)
{
    buf_end(b);
}

void pg_buf_free(pg_buf *b)
{
    if (b->p)
        cpns_wipe(b->p, b->cap);
    cpns_free(b->p);
    memset(b, 0, sizeof *b);
}

#define MAX_COLS 9

/*
 * Closes the arrays and queues sql with them as its parameters, then extra
 * (this instance's id, cluster mode) unless NULL: 0 or CPNS_ERR_*.
 */
static int send_arrays_x(cpns_store_pg *s, const char *sql, pg_buf *cols, int n_cols,
                         const char *extra, int *count)
{
    const char *values[MAX_COLS + 1];
    int rv = 0;
    for (int i = 0; i < n_cols; i++) {
        buf_end(&cols[i]);
        if (cols[i].oom)
            rv = no_memory(s, "commit");
        values[i] = cols[i].p;
    }
    if (extra)
        values[n_cols] = extra;
    if (rv == 0) {
        if (PQsendQueryParams(s->conn, sql, n_cols + (extra != NULL), NULL, values, NULL, NULL, 0))
            ++*count;
        else
            rv = pg_fail_conn(s, "commit: cannot send");
    }
    for (int i = 0; i < n_cols; i++) {
        if (cols[i].p)
            cpns_wipe(cols[i].p, cols[i].cap);
        cpns_free(cols[i].p);
        memset(&cols[i], 0, sizeof cols[i]);
    }
    return rv;
}

static int send_arrays(cpns_store_pg *s, const char *sql, pg_buf *cols, int n_cols, int *count)
{
    return send_arrays_x(s, sql, cols, n_cols, NULL, count);
}

/* --- the statements --- */

static const char sql_del_member[] =
    "DELETE FROM member m USING unnest($1::text[], $2::text[]) AS d(sgid, pneid)"
    " WHERE m.sgid = d.sgid AND m.pneid = d.pneid";
static const char sql_del_sg[] = "DELETE FROM sg WHERE sgid = ANY($1::text[])";
static const char sql_expire[] = "DELETE FROM nonce WHERE seen_ms < $1::bigint";
static const char sql_put_pne[] =
    "INSERT INTO pne (pneid, euk, registered, pngwid, pnid)"
    " SELECT p, decode(e, 'hex'), r, g, n"
    " FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[]) AS u(p, e, r, g, "
    "n)"
    " ON CONFLICT (pneid) DO UPDATE SET euk = excluded.euk, registered = excluded.registered,"
    " pngwid = excluded.pngwid, pnid = excluded.pnid";
static const char sql_put_sg[] =
    "INSERT INTO sg (sgid, key_version) SELECT * FROM unnest($1::text[], $2::bigint[])"
    " ON CONFLICT (sgid) DO UPDATE SET key_version = excluded.key_version";
/*
 * A put_sg replaces the key of its version, as in SQLite: the engine's row
 * is the truth in stage 1 (stage 2 will insert keys with DO NOTHING).
 */
static const char sql_put_key[] =
    "INSERT INTO sg_key (sgid, key_version, gk)"
    " SELECT s, v, decode(g, 'hex') FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(s, v, g)"
    " ON CONFLICT (sgid, key_version) DO UPDATE SET gk = excluded.gk";
/*
 * Member rows: the SGs of a statement's rows first (schema version 4, no
 * foreign key: store_pg_schema.c), then the rows as arrays zipped by unnest()
 * in the select list, which streams them (unnest() in FROM with several
 * arrays spills 100,000 rows to a temporary file first). A row that is
 * pending with nothing sent yet (an SG Inventory, a member added) travels as
 * SGID, PNEID and KeyVersion only, a fifth of the parameters to parse, one
 * statement per SG: cpns_put_fresh() inserts them without the conflict
 * check when the SG has no member row yet.
 */
static const char sql_lock_sgs[] = "SELECT cpns_lock_sgs($1::text[])";
static const char sql_put_member[] =
    "INSERT INTO member (sgid, pneid, key_version, state, ret, fail_reason, attempts, malformed,"
    " pnid) SELECT unnest($1::text[]), unnest($2::text[]), unnest($3::bigint[]),"
    " unnest($4::smallint[]), unnest($5::int[]), unnest($6::int[]), unnest($7::bigint[]),"
    " unnest($8::bigint[]), unnest($9::text[])"
    " ON CONFLICT (sgid, pneid) DO UPDATE SET key_version = excluded.key_version,"
    " state = excluded.state, ret = excluded.ret, fail_reason = excluded.fail_reason,"
    " attempts = excluded.attempts, malformed = excluded.malformed, pnid = excluded.pnid";
/* One SG's fresh rows (store_pg_schema.c, version 4). */
static const char sql_put_fresh[] = "SELECT cpns_put_fresh($3::text, $1::text[], $2::bigint[])";
/* ... and before version 4 (the migration tests write with it). */
static const char sql_put_member_fresh[] =
    "INSERT INTO member (sgid, pneid, key_version, state)"
    " SELECT $3::text, unnest($1::text[]), unnest($2::bigint[]), 0"
    " ON CONFLICT (sgid, pneid) DO UPDATE SET key_version = excluded.key_version, state = 0,"
    " ret = -1, fail_reason = -1, attempts = 0, malformed = 0, pnid = ''";
/*
 * Cluster mode (store_pg_cluster.c). A PNE's route columns are claim_pnes's;
 * an admin write of a PNE (add, set-key) only sets its EUK.
 */
static const char sql_put_pne_cluster[] =
    "INSERT INTO pne (pneid, euk, registered, pngwid, pnid)"
    " SELECT p, decode(e, 'hex'), r, g, n"
    " FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[]) AS u(p, e, r, g, "
    "n)"
    " ON CONFLICT (pneid) DO UPDATE SET euk = excluded.euk";
/* The inventory (version 0); a key is cpns_put_key's: one per version across instances. */
static const char sql_put_sg_cluster[] =
    "INSERT INTO sg (sgid, key_version) SELECT * FROM unnest($1::text[], $2::bigint[])"
    " ON CONFLICT (sgid) DO NOTHING";
static const char sql_put_key_cluster[] =
    "SELECT cpns_put_key($4, s, v, decode(g, 'hex'))"
    " FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(s, v, g) ORDER BY s";
/* A new member: stamped with its PNE's current owner (route and that GW's session). */
static const char sql_insert_member_cluster[] =
    "INSERT INTO member (sgid, pneid, key_version, state, ret, fail_reason, attempts, malformed,"
    " pnid, owner_gw, owner_epoch)"
    " SELECT u.s, u.p, u.kv, u.st, u.r, u.f, u.a, u.m, u.n, g.pngwid, g.epoch"
    " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::smallint[], $5::int[], $6::int[],"
    " $7::bigint[], $8::bigint[], $9::text[]) AS u(s, p, kv, st, r, f, a, m, n)"
    " LEFT JOIN pne ON pne.pneid = u.p AND pne.registered"
    " LEFT JOIN gw_session g ON g.pngwid = pne.pngwid"
    " ON CONFLICT (sgid, pneid) DO UPDATE SET key_version = excluded.key_version,"
    " state = excluded.state, ret = excluded.ret, fail_reason = excluded.fail_reason,"
    " attempts = excluded.attempts, malformed = excluded.malformed, pnid = excluded.pnid,"
    " owner_gw = excluded.owner_gw, owner_epoch = excluded.owner_epoch"
    " WHERE member.key_version <= excluded.key_version";
/*
 * Delivery progress: a compare-and-set on the owner token. A row is written
 * only while its (owner_gw, owner_epoch) is the current session of a GW on
 * this instance, never back to an older version, never undoing a delivery
 * of its version. READ COMMITTED re-checks the row after a lock wait, so a
 * claim committed meanwhile wins. The rows not written come back
 * (fenced_sgid, pneid): the engine evicts them.
 */
static const char sql_progress_cluster[] =
    "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::smallint[],"
    " $5::int[], $6::int[], $7::bigint[], $8::bigint[], $9::text[])"
    " AS x(us, up, ukv, ust, ur, uf, ua, um, un)),"
    " w AS (UPDATE member m SET key_version = u.ukv, state = u.ust, ret = u.ur,"
    " fail_reason = u.uf, attempts = u.ua, malformed = u.um, pnid = u.un"
    " FROM u, gw_session g"
    " WHERE m.sgid = u.us AND m.pneid = u.up AND g.pngwid = m.owner_gw"
    " AND g.epoch = m.owner_epoch AND g.instance_id = $10 AND m.key_version <= u.ukv"
    " AND NOT (m.key_version = u.ukv AND m.state = 2 AND u.ust <> 2)"
    " RETURNING m.sgid, m.pneid)"
    " SELECT u.us AS " PG_FENCED_COLUMN ", u.up FROM u"
    " WHERE NOT EXISTS (SELECT 1 FROM w WHERE w.sgid = u.us AND w.pneid = u.up)";
/* seq order = commit order: the lock is held until the commit. "CPNC" */
static const char sql_change_lock[] = "SELECT pg_advisory_xact_lock(1129336387)";
static const char sql_change[] = "INSERT INTO change (kind, key, instance_id) SELECT k, v, $3"
                                 " FROM unnest($1::text[], $2::text[]) AS u(k, v)";
static const char sql_change_notify[] = "SELECT pg_notify('cpns_work', $1)";

static const char sql_del_nonce[] =
    "DELETE FROM nonce WHERE (pneid, nonce) IN"
    " (SELECT p, decode(n, 'hex') FROM unnest($1::text[], $2::text[]) AS u(p, n))";
static const char sql_put_nonce[] =
    "INSERT INTO nonce (pneid, nonce, seen_ms)"
    " SELECT p, decode(n, 'hex'), t FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(p, n, t)"
    " ON CONFLICT (pneid, nonce) DO UPDATE SET seen_ms = excluded.seen_ms";

static int send_deletions(cpns_store_pg *s, const pg_batch *b, int *count)
{
    pg_buf c[MAX_COLS] = {{0}};
    int rv = 0;
    for (cpns_map_iter it = cpns_map_begin(&b->groups); cpns_map_next(&it);) {
        const pg_group *g = it.val;
        for (cpns_map_iter jt = cpns_map_begin(&g->members); cpns_map_next(&jt);)
            if (((const pg_member *)jt.val)->del) {
                elem_text(&c[0], g->SGID);
                elem_text(&c[1], ((const pg_member *)jt.val)->m.PNEID);
            }
    }
    if (c[0].n)
        rv = send_arrays(s, sql_del_member, c, 2, count);
    for (int i = 0; i < MAX_COLS; i++)
        cpns_free(c[i].p);
    memset(c, 0, sizeof c);
    if (rv == 0 && b->del_sgs.count) {
        for (cpns_map_iter it = cpns_map_begin(&b->del_sgs); cpns_map_next(&it);)
            elem_text(&c[0], ((const pg_key *)it.val)->SGID);
        rv = send_arrays(s, sql_del_sg, c, 1, count);
    }
    if (rv == 0 && b->expire) {
        char t[24];
        snprintf(t, sizeof t, "%" PRId64, b->expire_before_ms);
        const char *values[1] = {t};
        if (PQsendQueryParams(s->conn, sql_expire, 1, NULL, values, NULL, NULL, 0))
            ++*count;
        else
            rv = pg_fail_conn(s, "commit: cannot send");
    }
    for (int i = 0; i < MAX_COLS; i++)
        cpns_free(c[i].p);
    memset(c, 0, sizeof c);
    if (rv == 0) {
        char hex[2 * CPNS_NONCE_LEN + 1];
        for (cpns_map_iter it = cpns_map_begin(&b->nonces); cpns_map_next(&it);) {
            const pg_nonce *e = it.val;
            if (!e->del)
                continue;
            to_hex(e->n.Nonce, CPNS_NONCE_LEN, hex);
            elem_text(&c[0], e->n.PNEID);
            elem_text(&c[1], hex);
        }
        if (c[0].n)
            rv = send_arrays(s, sql_del_nonce, c, 2, count);
    }
    for (int i = 0; i < MAX_COLS; i++)
        cpns_free(c[i].p);
    return rv;
}

static int send_pnes_sgs(cpns_store_pg *s, const pg_batch *b, int *count)
{
    pg_buf c[MAX_COLS] = {{0}};
    int rv = 0;
    if (b->pnes.count) {
        for (cpns_map_iter it = cpns_map_begin(&b->pnes); cpns_map_next(&it);) {
            const pg_pne *p = it.val;
            elem_text(&c[0], p->PNEID);
            elem_text(&c[1], p->euk);
            elem_bool(&c[2], p->registered);
            elem_text(&c[3], p->PNGWID);
            elem_text(&c[4], p->PNID);
        }
        rv = send_arrays(s, s->cluster ? sql_put_pne_cluster : sql_put_pne, c, 5, count);
    }
    if (rv == 0 && b->sgs.count) {
        for (cpns_map_iter it = cpns_map_begin(&b->sgs); cpns_map_next(&it);) {
            const pg_sg *g = it.val;
            elem_text(&c[0], g->SGID);
            elem_int(&c[1], g->KeyVersion);
        }
        rv = send_arrays(s, s->cluster ? sql_put_sg_cluster : sql_put_sg, c, 2, count);
        for (cpns_map_iter it = cpns_map_begin(&b->sgs); rv == 0 && cpns_map_next(&it);) {
            const pg_sg *g = it.val;
            if (g->KeyVersion) {
                elem_text(&c[0], g->SGID);
                elem_int(&c[1], g->KeyVersion);
                elem_text(&c[2], g->gk);
            }
        }
        if (rv == 0 && c[0].n)
            rv = s->cluster ? send_arrays_x(s, sql_put_key_cluster, c, 3, s->instance_id, count)
                            : send_arrays(s, sql_put_key, c, 3, count);
    }
    for (int i = 0; i < MAX_COLS; i++) {
        if (c[i].p)
            cpns_wipe(c[i].p, c[i].cap);
        cpns_free(c[i].p);
    }
    return rv;
}

/* Which member puts a statement writes. */
enum member_kind {
    MEMBERS_FRESH,    /* pending, nothing sent: sql_put_fresh, per SG */
    MEMBERS_ANY,      /* the others: sql_put_member */
    MEMBERS_NEW,      /* cluster mode: rows not in the store yet (unfenced) */
    MEMBERS_PROGRESS, /* cluster mode: the others */
};

/* A row whose every column but SGID, PNEID and KeyVersion has its inventory value. */
static int member_fresh(const cpns_store_member *m)
{
    return m->state == CPNS_MEMBER_PENDING && m->Return == -1 && m->fail_reason == -1 &&
           m->attempts == 0 && m->malformed == 0 && m->PNID[0] == '\0';
}

static int member_wanted(const pg_member *e, enum member_kind kind)
{
    if (e->del)
        return 0;
    switch (kind) {
    case MEMBERS_FRESH:
        return member_fresh(&e->m);
    case MEMBERS_ANY:
        return !member_fresh(&e->m);
    case MEMBERS_NEW:
        return e->m.unfenced != 0;
    case MEMBERS_PROGRESS:
        return e->m.unfenced == 0;
    }
    return 0;
}

static void member_row(const char *SGID, const pg_member *e, enum member_kind kind, pg_buf *c)
{
    if (!member_wanted(e, kind))
        return;
    if (kind == MEMBERS_FRESH) {
        elem_text(&c[0], e->m.PNEID);
        elem_int(&c[1], e->m.KeyVersion);
        return;
    }
    elem_text(&c[0], SGID);
    elem_text(&c[1], e->m.PNEID);
    elem_int(&c[2], e->m.KeyVersion);
    elem_int(&c[3], e->m.state);
    elem_int(&c[4], e->m.Return);
    elem_int(&c[5], e->m.fail_reason);
    elem_int(&c[6], e->m.attempts);
    elem_int(&c[7], e->m.malformed);
    elem_text(&c[8], e->m.PNID);
}

static void group_rows(const pg_group *g, enum member_kind kind, pg_buf *c)
{
    void **v;
    size_t n;
    if (cpns_map_sorted(&g->members, &v, &n) != 0) {
        for (cpns_map_iter it = cpns_map_begin(&g->members); cpns_map_next(&it);)
            member_row(g->SGID, it.val, kind, c); /* any order is correct, only slower */
        return;
    }
    for (size_t i = 0; i < n; i++)
        member_row(g->SGID, v[i], kind, c);
    cpns_free(v);
}

/*
 * The member puts of b of that kind (not MEMBERS_FRESH) as 9 arrays, in
 * (SGID, PNEID) order: the order of the primary key and of
 * member_pne. Sorted, 100,000 inserts walk the indexes from left to right
 * (each one lands on the rightmost leaf, which PostgreSQL reaches without a
 * descent) instead of visiting their pages at random: the batch's hash
 * maps lose the engine's order.
 */
static void member_arrays(const pg_batch *b, enum member_kind kind, pg_buf *c)
{
    void **v;
    size_t n;
    if (cpns_map_sorted(&b->groups, &v, &n) != 0) {
        for (cpns_map_iter it = cpns_map_begin(&b->groups); cpns_map_next(&it);)
            group_rows(it.val, kind, c);
        return;
    }
    for (size_t i = 0; i < n; i++)
        group_rows(v[i], kind, c);
    cpns_free(v);
}

/*
 * Schema version 4: the SGs of the rows the member statements may insert
 * (cluster mode: the new rows; else every put), checked and locked by
 * cpns_lock_sgs() before them, as the foreign key of older versions did.
 */
static int send_lock_sgs(cpns_store_pg *s, const pg_batch *b, int *count)
{
    if (s->schema_version < 4)
        return 0;
    pg_buf c[1] = {{0}};
    for (cpns_map_iter it = cpns_map_begin(&b->groups); cpns_map_next(&it);) {
        const pg_group *g = it.val;
        for (cpns_map_iter jt = cpns_map_begin(&g->members); cpns_map_next(&jt);) {
            const pg_member *e = jt.val;
            if (!e->del && (!s->cluster || e->m.unfenced)) {
                elem_text(&c[0], g->SGID);
                break;
            }
        }
    }
    int rv = c[0].n ? send_arrays(s, sql_lock_sgs, c, 1, count) : 0;
    cpns_free(c[0].p);
    return rv;
}

/* Sends the member puts of that kind with sql, unless there are none. */
static int send_members(cpns_store_pg *s, const pg_batch *b, enum member_kind kind, const char *sql,
                        const char *extra, int *count)
{
    pg_buf c[MAX_COLS] = {{0}};
    int rv = 0;
    member_arrays(b, kind, c);
    if (c[0].n)
        rv = send_arrays_x(s, sql, c, 9, extra, count);
    for (int i = 0; i < MAX_COLS; i++)
        cpns_free(c[i].p);
    return rv;
}

/* The fresh rows of g, if any, as one statement: PNEIDs and KeyVersions, then the SGID. */
static int send_fresh(cpns_store_pg *s, const pg_group *g, int *count)
{
    pg_buf c[2] = {{0}};
    group_rows(g, MEMBERS_FRESH, c);
    int rv = 0;
    if (c[0].n)
        rv = send_arrays_x(s, s->schema_version >= 4 ? sql_put_fresh : sql_put_member_fresh, c, 2,
                           g->SGID, count);
    for (int i = 0; i < 2; i++)
        cpns_free(c[i].p);
    return rv;
}

static int send_fresh_all(cpns_store_pg *s, const pg_batch *b, int *count)
{
    void **v;
    size_t n;
    int rv = 0;
    if (cpns_map_sorted(&b->groups, &v, &n) != 0) {
        for (cpns_map_iter it = cpns_map_begin(&b->groups); rv == 0 && cpns_map_next(&it);)
            rv = send_fresh(s, it.val, count);
        return rv;
    }
    for (size_t i = 0; rv == 0 && i < n; i++)
        rv = send_fresh(s, v[i], count);
    cpns_free(v);
    return rv;
}

static int send_members_nonces(cpns_store_pg *s, const pg_batch *b, int *count)
{
    int rv = send_lock_sgs(s, b, count);
    if (rv == 0 && s->cluster) {
        rv = send_members(s, b, MEMBERS_NEW, sql_insert_member_cluster, NULL, count);
        if (rv == 0)
            rv = send_members(s, b, MEMBERS_PROGRESS, sql_progress_cluster, s->instance_id, count);
    } else if (rv == 0) {
        rv = send_fresh_all(s, b, count);
        if (rv == 0)
            rv = send_members(s, b, MEMBERS_ANY, sql_put_member, NULL, count);
    }
    pg_buf c[MAX_COLS] = {{0}};
    if (rv == 0 && b->nonces.count) {
        char hex[2 * CPNS_NONCE_LEN + 1];
        for (cpns_map_iter it = cpns_map_begin(&b->nonces); cpns_map_next(&it);) {
            if (((const pg_nonce *)it.val)->del)
                continue;
            const cpns_store_nonce *n = &((const pg_nonce *)it.val)->n;
            to_hex(n->Nonce, CPNS_NONCE_LEN, hex);
            elem_text(&c[0], n->PNEID);
            elem_text(&c[1], hex);
            elem_int(&c[2], n->seen_ms);
        }
        if (c[0].n)
            rv = send_arrays(s, sql_put_nonce, c, 3, count);
    }
    return rv;
}

/* Cluster mode: the admin changes of b as change rows, and one notification. */
static int send_changes(cpns_store_pg *s, const pg_batch *b, int *count)
{
    if (!b->changes.count)
        return 0;
    pg_buf c[2] = {{0}};
    for (cpns_map_iter it = cpns_map_begin(&b->changes); cpns_map_next(&it);) {
        const pg_change *ch = it.val;
        elem_text(&c[0], ch->kind);
        elem_text(&c[1], ch->id);
    }
    int rv = 0;
    const char *me[1] = {s->instance_id};
    if (PQsendQueryParams(s->conn, sql_change_lock, 0, NULL, NULL, NULL, NULL, 0))
        ++*count;
    else
        rv = pg_fail_conn(s, "commit: cannot send");
    if (rv == 0)
        rv = send_arrays_x(s, sql_change, c, 2, s->instance_id, count);
    if (rv == 0) {
        if (PQsendQueryParams(s->conn, sql_change_notify, 1, NULL, me, NULL, NULL, 0))
            ++*count;
        else
            rv = pg_fail_conn(s, "commit: cannot send");
    }
    for (int i = 0; i < 2; i++)
        cpns_free(c[i].p);
    return rv;
}

int pg_note_change(cpns_store *st, const char *kind, const char *key)
{
    cpns_store_pg *s = pg_of(st);
    if (!s->cluster || !kind || strlen(kind) >= sizeof(((pg_change *)0)->kind) || !text_ok(key, 0))
        return CPNS_ERR_INVALID_ARG;
    char k[CHANGE_KEY_LEN];
    snprintf(k, sizeof k, "%s %s", kind, key);
    pg_change *e = entry(&s->cur->changes, k, sizeof *e);
    if (!e)
        return no_memory(s, "note_change");
    strcpy(e->kind, kind);
    strcpy(e->id, key);
    s->cur->n_writes++;
    return 0;
}

int pg_batch_send(cpns_store_pg *s, const pg_batch *b, int *count)
{
    int rv = send_deletions(s, b, count);
    if (rv == 0)
        rv = send_pnes_sgs(s, b, count);
    if (rv == 0)
        rv = send_members_nonces(s, b, count);
    if (rv == 0 && s->cluster)
        rv = send_changes(s, b, count);
    return rv;
}
