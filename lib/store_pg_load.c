/* SPDX-License-Identifier: Apache-2.0 */
/*
 * load() of the PostgreSQL store: every PNE, SG (with its current Group Key
 * from sg_key), member and nonce, in key order (identifiers are COLLATE "C",
 * byte order as in SQLite), from one REPEATABLE READ snapshot. Rows stream
 * in single-row mode, so 100,000 members never sit in one PGresult. Each row
 * is checked as SQLite's load() checks it: a value out of range or a secret
 * that does not open fails with "<table> <key>: <why>".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg_internal.h"

#define SECRET_FAILED "does not decrypt (damaged or moved row)"

static int damaged(cpns_store_pg *s, const char *table, const char *key, const char *why)
{
    pg_set_err(s, "%s %s: %s", table, key[0] ? key : "(no key)", why);
    return CPNS_ERR_STORE;
}

static int col_id(const PGresult *r, int i, char out[CPNS_ID_MAX + 1], int may_be_empty)
{
    if (PQgetisnull(r, 0, i))
        return 0;
    int len = PQgetlength(r, 0, i);
    if (len > CPNS_ID_MAX || (len == 0 && !may_be_empty))
        return 0;
    memcpy(out, PQgetvalue(r, 0, i), (size_t)len);
    out[len] = '\0';
    return 1;
}

static int col_range(const PGresult *r, int i, int64_t lo, int64_t hi, int64_t *out)
{
    if (PQgetisnull(r, 0, i))
        return 0;
    const char *v = PQgetvalue(r, 0, i);
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return 0;
    *out = (int64_t)x;
    return *out >= lo && *out <= hi;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A bytea column (text format "\x<hex>") into out (at most cap bytes): its length, or -1. */
static long col_bytes(const PGresult *r, int i, uint8_t *out, size_t cap)
{
    if (PQgetisnull(r, 0, i))
        return -1;
    const char *v = PQgetvalue(r, 0, i);
    size_t len = (size_t)PQgetlength(r, 0, i);
    if (len < 2 || v[0] != '\\' || v[1] != 'x' || len % 2 || (len - 2) / 2 > cap)
        return -1;
    size_t n = (len - 2) / 2;
    for (size_t k = 0; k < n; k++) {
        int hi = hex_val(v[2 + 2 * k]), lo = hex_val(v[3 + 2 * k]);
        if (hi < 0 || lo < 0)
            return -1;
        out[k] = (uint8_t)(hi << 4 | lo);
    }
    return (long)n;
}

typedef enum pg_table table_t;
#define T_PNE PG_T_PNE
#define T_SG PG_T_SG
#define T_MEMBER PG_T_MEMBER
#define T_NONCE PG_T_NONCE

static const char *const load_sql[] = {
    [T_PNE] = "SELECT pneid, euk, registered, pngwid, pnid FROM pne ORDER BY pneid",
    [T_SG] = "SELECT s.sgid, s.key_version, k.gk FROM sg s LEFT JOIN sg_key k"
             " ON k.sgid = s.sgid AND k.key_version = s.key_version ORDER BY s.sgid",
    [T_MEMBER] = "SELECT sgid, pneid, key_version, state, ret, fail_reason, attempts, malformed,"
                 " pnid FROM member ORDER BY sgid, pneid",
    [T_NONCE] = "SELECT pneid, nonce, seen_ms FROM nonce ORDER BY pneid, nonce",
};

static int pne_row(cpns_store_pg *s, const PGresult *r, cpns_store_pne *p)
{
    if (!col_id(r, 0, p->PNEID, 0))
        return damaged(s, "pne", "", "a row has a bad PNEID");
    const char *reg = PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2);
    if ((strcmp(reg, "t") != 0 && strcmp(reg, "f") != 0) || !col_id(r, 3, p->PNGWID, 1) ||
        !col_id(r, 4, p->PNID, 1))
        return damaged(s, "pne", p->PNEID, "a column is out of range");
    p->registered = reg[0] == 't';
    uint8_t blob[CPNS_SEAL_SECRET_LEN + 1];
    long n = col_bytes(r, 1, blob, sizeof blob);
    if (n < 0 || cpns_seal_open_euk(s->seal, p->PNEID, blob, (size_t)n, p->EUK) != 0)
        return damaged(s, "pne", p->PNEID, "the encrypted EUK " SECRET_FAILED);
    return 0;
}

static int sg_row(cpns_store_pg *s, const PGresult *r, cpns_store_sg *sg)
{
    int64_t version = 0;
    if (!col_id(r, 0, sg->SGID, 0))
        return damaged(s, "sg", "", "a row has a bad SGID");
    if (!col_range(r, 1, 0, CPNS_KEYVERSION_MAX, &version))
        return damaged(s, "sg", sg->SGID, "key_version is out of range");
    sg->KeyVersion = (uint32_t)version;
    if (version == 0)
        return 0;
    if (PQgetisnull(r, 0, 2))
        return damaged(s, "sg", sg->SGID, "no Group Key is stored for its key_version");
    uint8_t blob[CPNS_SEAL_SECRET_LEN + 1];
    long n = col_bytes(r, 2, blob, sizeof blob);
    if (n < 0 || cpns_seal_open_gk(s->seal, sg->SGID, sg->KeyVersion, blob, (size_t)n, sg->GK) != 0)
        return damaged(s, "sg", sg->SGID, "the encrypted Group Key " SECRET_FAILED);
    return 0;
}

static int member_row(cpns_store_pg *s, const PGresult *r, cpns_store_member *m)
{
    int64_t v[6];
    if (!col_id(r, 0, m->SGID, 0) || !col_id(r, 1, m->PNEID, 0))
        return damaged(s, "member", "", "a row has a bad SGID or PNEID");
    if (!col_range(r, 2, 0, CPNS_KEYVERSION_MAX, &v[0]) ||
        !col_range(r, 3, CPNS_MEMBER_PENDING, CPNS_MEMBER_FAILED, &v[1]) ||
        !col_range(r, 4, INT32_MIN, INT32_MAX, &v[2]) ||
        !col_range(r, 5, INT32_MIN, INT32_MAX, &v[3]) || !col_range(r, 6, 0, UINT32_MAX, &v[4]) ||
        !col_range(r, 7, 0, UINT32_MAX, &v[5]) || !col_id(r, 8, m->PNID, 1)) {
        char key[2 * CPNS_ID_MAX + 2];
        snprintf(key, sizeof key, "%s/%s", m->SGID, m->PNEID);
        return damaged(s, "member", key, "a column is out of range");
    }
    m->KeyVersion = (uint32_t)v[0];
    m->state = (cpns_member_state)v[1];
    m->Return = (int32_t)v[2];
    m->fail_reason = (int32_t)v[3];
    m->attempts = (uint32_t)v[4];
    m->malformed = (uint32_t)v[5];
    return 0;
}

static int nonce_row(cpns_store_pg *s, const PGresult *r, cpns_store_nonce *n)
{
    if (!col_id(r, 0, n->PNEID, 0))
        return damaged(s, "nonce", "", "a row has a bad PNEID");
    uint8_t nonce[CPNS_NONCE_LEN + 1];
    if (col_bytes(r, 1, nonce, sizeof nonce) != CPNS_NONCE_LEN ||
        !col_range(r, 2, INT64_MIN, INT64_MAX, &n->seen_ms))
        return damaged(s, "nonce", n->PNEID, "a column is out of range");
    memcpy(n->Nonce, nonce, CPNS_NONCE_LEN);
    return 0;
}

/* One row: checked, decrypted into a wiped record, handed to the loader. */
static int one_row(cpns_store_pg *s, table_t t, const PGresult *r, const cpns_store_loader *l,
                   void *arg)
{
    union {
        cpns_store_pne pne;
        cpns_store_sg sg;
        cpns_store_member member;
        cpns_store_nonce nonce;
    } row;
    memset(&row, 0, sizeof row);
    int rv;
    switch (t) {
    case T_PNE:
        if ((rv = pne_row(s, r, &row.pne)) == 0)
            rv = l->pne(arg, &row.pne);
        break;
    case T_SG:
        if ((rv = sg_row(s, r, &row.sg)) == 0)
            rv = l->sg(arg, &row.sg);
        break;
    case T_MEMBER:
        if ((rv = member_row(s, r, &row.member)) == 0)
            rv = l->member(arg, &row.member);
        break;
    default:
        if ((rv = nonce_row(s, r, &row.nonce)) == 0)
            rv = l->nonce(arg, &row.nonce);
        break;
    }
    cpns_wipe(&row, sizeof row);
    return rv;
}

int pg_load_rows(cpns_store_pg *s, PGconn *conn, table_t t, const char *sql, int n,
                 const char *const *params, const cpns_store_loader *l, void *arg, size_t *rows)
{
    if (rows)
        *rows = 0;
    if (!PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0) ||
        !PQsetSingleRowMode(conn)) {
        pg_set_err(s, "load: %s", PQerrorMessage(conn));
        return CPNS_ERR_STORE;
    }
    int rv = 0;
    PGresult *r;
    /* Every result is read, even after a failure, so the connection is ready again. */
    while ((r = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (rv == 0 && st == PGRES_SINGLE_TUPLE) {
            rv = one_row(s, t, r, l, arg);
            if (rows)
                ++*rows;
        } else if (rv == 0 && st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE) {
            rv = pg_fail_result(s, r, "load");
        }
        PQclear(r);
    }
    return rv;
}

static int load_table(cpns_store_pg *s, table_t t, const cpns_store_loader *l, void *arg)
{
    return pg_load_rows(s, s->conn, t, load_sql[t], 0, NULL, l, arg, NULL);
}

int pg_load(cpns_store *st, const cpns_store_loader *l, void *arg)
{
    cpns_store_pg *s = (cpns_store_pg *)st;
    if (!l || !l->pne || !l->sg || !l->member || !l->nonce)
        return CPNS_ERR_INVALID_ARG;
    if (s->inflight)
        return CPNS_ERR_AGAIN;
    int rv = pg_ensure_conn(s);
    if (rv)
        return rv == CPNS_ERR_NOMEM ? rv : CPNS_ERR_STORE;
    PQsetnonblocking(s->conn, 0);
    /* One snapshot: the four tables agree with each other. */
    rv = pg_exec(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "load: cannot begin");
    static const table_t order[] = {T_PNE, T_SG, T_MEMBER, T_NONCE};
    for (size_t i = 0; rv == 0 && i < CPNS_ARRAY_LEN(order); i++)
        rv = load_table(s, order[i], l, arg);
    if (PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        /* Nothing was written: ending the read transaction cannot lose data. */
        PGresult *r = PQexec(s->conn, "ROLLBACK");
        PQclear(r);
    }
    if (PQstatus(s->conn) != CONNECTION_OK)
        s->broken = 1;
    PQsetnonblocking(s->conn, 1);
    return rv;
}
