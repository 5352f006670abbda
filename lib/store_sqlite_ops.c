/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The row ops of the SQLite store (store.h): the upserts and deletions the
 * engine writes during a batch, and load(), which reads everything back at
 * start-up.
 *
 * Every write is one step of a statement prepared at open; EUKs and Group
 * Keys are sealed (store_seal.c) before they are bound, so SQLite
 * never sees them in clear. load() checks every row as it reads it: a value
 * out of range or a secret that does not open is reported with the row's
 * key, since a wrong master key is caught at open and anything else means the
 * file was damaged or edited.
 */
#include <string.h>

#include "store_sqlite_internal.h"

static cpns_store_sqlite *sqlite_of(cpns_store *st)
{
    return (cpns_store_sqlite *)st;
}

/* Identifiers are bound as text: one that does not fit the structs is refused. */
static int id_ok(const char *id)
{
    return id && strlen(id) <= CPNS_ID_MAX;
}

static int bind_text(sqlite3_stmt *stmt, int i, const char *text)
{
    return sqlite3_bind_text(stmt, i, text, -1, SQLITE_STATIC) == SQLITE_OK;
}

static int bind_int(sqlite3_stmt *stmt, int i, int64_t v)
{
    return sqlite3_bind_int64(stmt, i, v) == SQLITE_OK;
}

static int bind_blob(sqlite3_stmt *stmt, int i, const void *blob, size_t len)
{
    return sqlite3_bind_blob(stmt, i, blob, (int)len, SQLITE_STATIC) == SQLITE_OK;
}

/* Finishes a write whose bindings are done (ok) or failed (!ok). */
static int write_bound(cpns_store_sqlite *s, enum sqlite_stmt which, int ok, const char *what)
{
    if (!ok) {
        sqlite3_clear_bindings(s->stmt[which]);
        s->poisoned = 1;
        return sqlite_fail(s, what);
    }
    return sqlite_write(s, which, what);
}

int sqlite_put_pne(cpns_store *st, const cpns_store_pne *p)
{
    cpns_store_sqlite *s = sqlite_of(st);
    if (!p || !id_ok(p->PNEID) || !id_ok(p->PNGWID) || !id_ok(p->PNID))
        return CPNS_ERR_INVALID_ARG;
    uint8_t blob[CPNS_SEAL_SECRET_LEN];
    int rv = cpns_seal_euk(s->seal, p->PNEID, p->EUK, blob);
    if (rv) {
        sqlite_set_err(s, "pne %s: cannot seal the EUK: %s", p->PNEID, cpns_strerror(rv));
        return CPNS_ERR_STORE;
    }
    sqlite3_stmt *stmt = s->stmt[SQ_PUT_PNE];
    int ok = bind_text(stmt, 1, p->PNEID) && bind_blob(stmt, 2, blob, sizeof blob) &&
             bind_int(stmt, 3, p->registered != 0) && bind_text(stmt, 4, p->PNGWID) &&
             bind_text(stmt, 5, p->PNID);
    return write_bound(s, SQ_PUT_PNE, ok, "put_pne");
}

int sqlite_put_sg(cpns_store *st, const cpns_store_sg *sg)
{
    cpns_store_sqlite *s = sqlite_of(st);
    if (!sg || !id_ok(sg->SGID))
        return CPNS_ERR_INVALID_ARG;
    uint8_t blob[CPNS_SEAL_SECRET_LEN];
    sqlite3_stmt *stmt = s->stmt[SQ_PUT_SG];
    int ok;
    if (sg->KeyVersion == 0) {
        ok = sqlite3_bind_null(stmt, 3) == SQLITE_OK;
    } else {
        int rv = cpns_seal_gk(s->seal, sg->SGID, sg->KeyVersion, sg->GK, blob);
        if (rv) {
            sqlite_set_err(s, "sg %s: cannot seal the Group Key: %s", sg->SGID, cpns_strerror(rv));
            return CPNS_ERR_STORE;
        }
        ok = bind_blob(stmt, 3, blob, sizeof blob);
    }
    ok = ok && bind_text(stmt, 1, sg->SGID) && bind_int(stmt, 2, sg->KeyVersion);
    return write_bound(s, SQ_PUT_SG, ok, "put_sg");
}

int sqlite_del_sg(cpns_store *st, const char *SGID)
{
    cpns_store_sqlite *s = sqlite_of(st);
    if (!id_ok(SGID))
        return CPNS_ERR_INVALID_ARG;
    /* Its member log goes with it (ON DELETE CASCADE), and so do this batch's records. */
    sqlite_members_drop(s, SGID);
    return write_bound(s, SQ_DEL_SG, bind_text(s->stmt[SQ_DEL_SG], 1, SGID), "del_sg");
}

int sqlite_put_nonce(cpns_store *st, const cpns_store_nonce *n)
{
    cpns_store_sqlite *s = sqlite_of(st);
    if (!n || !id_ok(n->PNEID))
        return CPNS_ERR_INVALID_ARG;
    sqlite3_stmt *stmt = s->stmt[SQ_PUT_NONCE];
    int ok = bind_text(stmt, 1, n->PNEID) && bind_blob(stmt, 2, n->Nonce, CPNS_NONCE_LEN) &&
             bind_int(stmt, 3, n->seen_ms);
    return write_bound(s, SQ_PUT_NONCE, ok, "put_nonce");
}

int sqlite_expire_nonces(cpns_store *st, int64_t seen_before_ms)
{
    cpns_store_sqlite *s = sqlite_of(st);
    return write_bound(s, SQ_EXPIRE_NONCES, bind_int(s->stmt[SQ_EXPIRE_NONCES], 1, seen_before_ms),
                       "expire_nonces");
}

/* --- load --- */

int sqlite_column_id(sqlite3_stmt *stmt, int i, char out[CPNS_ID_MAX + 1], int may_be_empty)
{
    const unsigned char *text = sqlite3_column_text(stmt, i);
    int len = sqlite3_column_bytes(stmt, i);
    if (sqlite3_column_type(stmt, i) != SQLITE_TEXT || !text || len > CPNS_ID_MAX ||
        (len == 0 && !may_be_empty) || memchr(text, 0, (size_t)len))
        return 0;
    memcpy(out, text, (size_t)len);
    out[len] = '\0';
    return 1;
}

int sqlite_column_range(sqlite3_stmt *stmt, int i, int64_t lo, int64_t hi, int64_t *out)
{
    if (sqlite3_column_type(stmt, i) != SQLITE_INTEGER)
        return 0;
    *out = sqlite3_column_int64(stmt, i);
    return *out >= lo && *out <= hi;
}

int sqlite_damaged(cpns_store_sqlite *s, const char *table, const char *key, const char *why)
{
    sqlite_set_err(s, "%s %s: %s", table, key[0] ? key : "(no key)", why);
    return CPNS_ERR_STORE;
}

#define SECRET_FAILED "does not decrypt (damaged or moved row)"

static int load_pne_row(cpns_store_sqlite *s, sqlite3_stmt *stmt, cpns_store_pne *p)
{
    int64_t registered = 0;
    if (!sqlite_column_id(stmt, 0, p->PNEID, 0))
        return sqlite_damaged(s, "pne", "", "a row has a bad PNEID");
    if (!sqlite_column_range(stmt, 2, 0, 1, &registered) ||
        !sqlite_column_id(stmt, 3, p->PNGWID, 1) || !sqlite_column_id(stmt, 4, p->PNID, 1))
        return sqlite_damaged(s, "pne", p->PNEID, "a column is out of range");
    p->registered = (int)registered;
    int rv = cpns_seal_open_euk(s->seal, p->PNEID, sqlite3_column_blob(stmt, 1),
                                (size_t)sqlite3_column_bytes(stmt, 1), p->EUK);
    if (rv)
        return sqlite_damaged(s, "pne", p->PNEID, "the encrypted EUK " SECRET_FAILED);
    return 0;
}

static int load_sg_row(cpns_store_sqlite *s, sqlite3_stmt *stmt, cpns_store_sg *sg)
{
    int64_t version = 0;
    if (!sqlite_column_id(stmt, 0, sg->SGID, 0))
        return sqlite_damaged(s, "sg", "", "a row has a bad SGID");
    if (!sqlite_column_range(stmt, 1, 0, CPNS_KEYVERSION_MAX, &version))
        return sqlite_damaged(s, "sg", sg->SGID, "key_version is out of range");
    sg->KeyVersion = (uint32_t)version;
    if (version == 0)
        return sqlite3_column_type(stmt, 2) == SQLITE_NULL
                   ? 0
                   : sqlite_damaged(s, "sg", sg->SGID, "a Group Key is stored for key_version 0");
    int rv = cpns_seal_open_gk(s->seal, sg->SGID, sg->KeyVersion, sqlite3_column_blob(stmt, 2),
                               (size_t)sqlite3_column_bytes(stmt, 2), sg->GK);
    if (rv)
        return sqlite_damaged(s, "sg", sg->SGID, "the encrypted Group Key " SECRET_FAILED);
    return 0;
}

static int load_nonce_row(cpns_store_sqlite *s, sqlite3_stmt *stmt, cpns_store_nonce *n)
{
    int64_t seen = 0;
    if (!sqlite_column_id(stmt, 0, n->PNEID, 0))
        return sqlite_damaged(s, "nonce", "", "a row has a bad PNEID");
    if (sqlite3_column_type(stmt, 1) != SQLITE_BLOB ||
        sqlite3_column_bytes(stmt, 1) != CPNS_NONCE_LEN ||
        !sqlite_column_range(stmt, 2, INT64_MIN, INT64_MAX, &seen))
        return sqlite_damaged(s, "nonce", n->PNEID, "a column is out of range");
    memcpy(n->Nonce, sqlite3_column_blob(stmt, 1), CPNS_NONCE_LEN);
    n->seen_ms = seen;
    return 0;
}

/* One table: each row checked, decrypted into a wiped record, handed to the loader. */
static int load_table(cpns_store_sqlite *s, enum sqlite_stmt which, const cpns_store_loader *l,
                      void *arg)
{
    sqlite3_stmt *stmt = s->stmt[which];
    int rv = 0, rc = SQLITE_DONE;
    union {
        cpns_store_pne pne;
        cpns_store_sg sg;
        cpns_store_nonce nonce;
    } row;
    while (rv == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        memset(&row, 0, sizeof row);
        switch (which) {
        case SQ_LOAD_PNE:
            if ((rv = load_pne_row(s, stmt, &row.pne)) == 0)
                rv = l->pne(arg, &row.pne);
            break;
        case SQ_LOAD_SG:
            if ((rv = load_sg_row(s, stmt, &row.sg)) == 0)
                rv = l->sg(arg, &row.sg);
            break;
        default:
            if ((rv = load_nonce_row(s, stmt, &row.nonce)) == 0)
                rv = l->nonce(arg, &row.nonce);
            break;
        }
    }
    if (rv == 0 && rc != SQLITE_DONE)
        rv = sqlite_fail(s, "load");
    cpns_wipe(&row, sizeof row);
    sqlite3_reset(stmt);
    return rv;
}

int sqlite_load(cpns_store *st, const cpns_store_loader *l, void *arg)
{
    cpns_store_sqlite *s = sqlite_of(st);
    if (!l || !l->pne || !l->sg || !l->member || !l->nonce)
        return CPNS_ERR_INVALID_ARG;
    /* One read transaction: the four tables come from the same snapshot. */
    int own_txn = !s->in_txn;
    if (own_txn && sqlite3_step(s->stmt[SQ_BEGIN_READ]) != SQLITE_DONE) {
        int rv = sqlite_fail(s, "load: cannot begin a transaction");
        sqlite3_reset(s->stmt[SQ_BEGIN_READ]);
        return rv;
    }
    sqlite3_reset(s->stmt[SQ_BEGIN_READ]);
    static const enum sqlite_stmt order[] = {SQ_LOAD_PNE, SQ_LOAD_SG, SQ_LOAD_MEMBER,
                                             SQ_LOAD_NONCE};
    int rv = 0;
    for (size_t i = 0; rv == 0 && i < CPNS_ARRAY_LEN(order); i++)
        rv = order[i] == SQ_LOAD_MEMBER ? sqlite_load_members(s, l, arg)
                                        : load_table(s, order[i], l, arg);
    if (own_txn) {
        /* Nothing was written: ending the read transaction cannot lose data. */
        sqlite3_step(s->stmt[SQ_COMMIT]);
        sqlite3_reset(s->stmt[SQ_COMMIT]);
    }
    return rv;
}
