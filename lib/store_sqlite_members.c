/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The member rows of the SQLite store, kept as a log (schema version 2).
 *
 * A member row is written far more often than any other: once in the SG
 * Inventory, then at every change of its delivery state. One SQLite row per
 * member made a 100,000-member group cost 100,000 B-tree inserts before its
 * key could be drawn and 100,000 upserts while it was delivered, the largest
 * part of the server's CPU time. Here the put_member and del_member calls of
 * a transaction are packed, per SG, into one batch of records that commit()
 * appends to member_log as a single row; load() replays an SG's rows in
 * order, the last record of each PNEID winning. The store ops and their
 * all-or-nothing commit are unchanged: the batch is written inside the
 * transaction it belongs to.
 *
 * An SG whose log holds more than twice the records it held after its first
 * row (its inventory, or its last compaction) plus COMPACT_SLACK, or more
 * than COMPACT_ROWS rows, is compacted in the same transaction: its rows are
 * replaced by one row of its live members. The first bound keeps the log of
 * a long-lived group within a constant factor of its size (each record is
 * rewritten at most once per doubling); the second keeps counting it, which
 * every commit does, cheap when a group changes one member at a time (a
 * 100,000-member group is then rewritten once per 1,024 commits).
 *
 * A record: a tag byte, PNEID (a length byte and its bytes), and for a put the
 * state byte, KeyVersion, Return, fail_reason, attempts and malformed as
 * varints (the signed two zigzagged), and PNID (length byte, bytes). A
 * member of a new SG's inventory takes 2 + PNEID + 7 bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "store_sqlite_internal.h"

#define REC_PUT 'P'
#define REC_DEL 'D'
#define VARINT_MAX 5 /* a 32-bit value in 7-bit groups */
/* After a put's PNEID: state, KeyVersion, Return, fail_reason, attempts, malformed, PNID length. */
#define PUT_MAX (1 + 5 * VARINT_MAX + 1)
#define REC_MAX (2 + CPNS_ID_MAX + PUT_MAX + CPNS_ID_MAX)
#define COMPACT_SLACK 1024
#define COMPACT_ROWS 1024

struct sqlite_member_batch {
    char SGID[CPNS_ID_MAX + 1];
    uint8_t *buf;
    size_t len, cap;
    int64_t records;
};

/* Little-endian base 128: most delivery counters fit one byte. */
static size_t put_varint(uint8_t *p, uint32_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

/* The bytes of the varint at p (n left) into *v; 0 when it is cut, too long or not minimal. */
static size_t get_varint(const uint8_t *p, size_t n, uint32_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < VARINT_MAX; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            if ((i > 0 && p[i] == 0) || x > UINT32_MAX)
                return 0;
            *v = (uint32_t)x;
            return i + 1;
        }
    }
    return 0;
}

/* Return and fail_reason are mostly -1: zigzag keeps small magnitudes short. */
static uint32_t zigzag(int32_t v)
{
    uint32_t u = (uint32_t)v;
    return (u << 1) ^ (0u - (u >> 31)); /* no right shift of a negative int */
}

static int32_t unzigzag(uint32_t v)
{
    return (int32_t)(v >> 1) ^ -(int32_t)(v & 1);
}

/* The record of m in out (REC_MAX bytes); its length. */
static size_t pack_put(uint8_t *out, const cpns_store_member *m)
{
    size_t id = strlen(m->PNEID), pnid = strlen(m->PNID), n = 0;
    out[n++] = REC_PUT;
    out[n++] = (uint8_t)id;
    memcpy(out + n, m->PNEID, id);
    n += id;
    out[n++] = (uint8_t)m->state;
    n += put_varint(out + n, m->KeyVersion);
    n += put_varint(out + n, zigzag(m->Return));
    n += put_varint(out + n, zigzag(m->fail_reason));
    n += put_varint(out + n, m->attempts);
    n += put_varint(out + n, m->malformed);
    out[n++] = (uint8_t)pnid;
    memcpy(out + n, m->PNID, pnid);
    return n + pnid;
}

static int id_bytes_ok(const uint8_t *p, size_t len, int may_be_empty)
{
    return (len > 0 || may_be_empty) && len <= CPNS_ID_MAX && !memchr(p, 0, len);
}

/*
 * The length of the record at p (n bytes left), or 0 when it is malformed;
 * a put is decoded into *m when m is not NULL (its SGID is the caller's).
 */
static size_t parse_rec(const uint8_t *p, size_t n, cpns_store_member *m)
{
    if (n < 2 || n - 2 < p[1] || !id_bytes_ok(p + 2, p[1], 0))
        return 0;
    size_t at = 2 + (size_t)p[1];
    if (p[0] == REC_DEL)
        return at;
    if (p[0] != REC_PUT || at == n || p[at] > CPNS_MEMBER_FAILED)
        return 0;
    cpns_member_state state = (cpns_member_state)p[at++];
    uint32_t v[5];
    for (size_t i = 0; i < 5; i++) {
        size_t used = get_varint(p + at, n - at, &v[i]);
        if (!used)
            return 0;
        at += used;
    }
    if (v[0] > CPNS_KEYVERSION_MAX || at == n)
        return 0;
    size_t pnid = p[at++];
    if (n - at < pnid || !id_bytes_ok(p + at, pnid, 1))
        return 0;
    if (m) {
        memcpy(m->PNEID, p + 2, p[1]);
        m->PNEID[p[1]] = '\0';
        m->state = state;
        m->KeyVersion = v[0];
        m->Return = unzigzag(v[1]);
        m->fail_reason = unzigzag(v[2]);
        m->attempts = v[3];
        m->malformed = v[4];
        memcpy(m->PNID, p + at, pnid);
        m->PNID[pnid] = '\0';
    }
    return at + pnid;
}

static size_t rec_len(const uint8_t *p, size_t n)
{
    return parse_rec(p, n, NULL);
}

/* Room for n more bytes after len in *buf (*cap bytes), doubling: 0 or CPNS_ERR_NOMEM. */
static int room_for(uint8_t **buf, size_t *cap, size_t len, size_t n)
{
    if (*cap - len >= n)
        return 0;
    size_t want = *cap ? *cap : 4096;
    while (want - len < n)
        want *= 2;
    uint8_t *p = cpns_realloc(*buf, want);
    if (!p)
        return CPNS_ERR_NOMEM;
    *buf = p;
    *cap = want;
    return 0;
}

/* --- this transaction's batches --- */

static int batch_append(sqlite_member_batch *b, const uint8_t *rec, size_t n)
{
    if (room_for(&b->buf, &b->cap, b->len, n) != 0)
        return CPNS_ERR_NOMEM;
    memcpy(b->buf + b->len, rec, n);
    b->len += n;
    b->records++;
    return 0;
}

static void batch_free(sqlite_member_batch *b)
{
    if (b) {
        cpns_free(b->buf);
        cpns_free(b);
    }
}

void sqlite_members_forget(cpns_store_sqlite *s)
{
    for (cpns_map_iter it = cpns_map_begin(&s->batches); cpns_map_next(&it);)
        batch_free(it.val);
    cpns_map_clear(&s->batches);
}

void sqlite_members_drop(cpns_store_sqlite *s, const char *SGID)
{
    batch_free(cpns_map_remove(&s->batches, SGID));
}

/* A batch that could not grow: the transaction is incomplete. */
static int no_memory(cpns_store_sqlite *s)
{
    s->poisoned = 1;
    sqlite_set_err(s, "member: out of memory");
    return CPNS_ERR_NOMEM;
}

/*
 * The batch of SGID in this transaction (opened if need be), or *out NULL
 * when there is no such SG: its records could never be loaded.
 */
static int batch_of(cpns_store_sqlite *s, const char *SGID, sqlite_member_batch **out)
{
    *out = cpns_map_get(&s->batches, SGID);
    if (*out)
        return 0;
    int rv = sqlite_begin(s);
    if (rv)
        return rv;
    sqlite3_stmt *stmt = s->stmt[SQ_SG_EXISTS];
    int rc = sqlite3_bind_text(stmt, 1, SGID, -1, SQLITE_STATIC) == SQLITE_OK ? sqlite3_step(stmt)
                                                                              : SQLITE_ERROR;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        s->poisoned = 1;
        return sqlite_fail(s, "member: cannot look up its SG");
    }
    if (rc == SQLITE_DONE)
        return 0;
    sqlite_member_batch *b = cpns_calloc(1, sizeof *b);
    if (b)
        strcpy(b->SGID, SGID);
    if (!b || cpns_map_put(&s->batches, b->SGID, b) != 0) {
        cpns_free(b);
        return no_memory(s);
    }
    *out = b;
    return 0;
}

static int id_ok(const char *id)
{
    return id && id[0] && strlen(id) <= CPNS_ID_MAX;
}

static int add_record(cpns_store_sqlite *s, sqlite_member_batch *b, const uint8_t *rec, size_t n)
{
    return batch_append(b, rec, n) == 0 ? 0 : no_memory(s);
}

int sqlite_put_member(cpns_store *st, const cpns_store_member *m)
{
    cpns_store_sqlite *s = (cpns_store_sqlite *)st;
    if (!m || !id_ok(m->SGID) || !id_ok(m->PNEID) || strlen(m->PNID) > CPNS_ID_MAX ||
        m->KeyVersion > CPNS_KEYVERSION_MAX || m->state < CPNS_MEMBER_PENDING ||
        m->state > CPNS_MEMBER_FAILED)
        return CPNS_ERR_INVALID_ARG;
    sqlite_member_batch *b;
    int rv = batch_of(s, m->SGID, &b);
    if (rv)
        return rv;
    if (!b) {
        s->poisoned = 1;
        sqlite_set_err(s, "put_member: FOREIGN KEY constraint failed (no SG %s)", m->SGID);
        return CPNS_ERR_STORE;
    }
    uint8_t rec[REC_MAX];
    size_t n = pack_put(rec, m);
    return add_record(s, b, rec, n);
}

int sqlite_del_member(cpns_store *st, const char *SGID, const char *PNEID)
{
    cpns_store_sqlite *s = (cpns_store_sqlite *)st;
    if (!id_ok(SGID) || !id_ok(PNEID))
        return CPNS_ERR_INVALID_ARG;
    sqlite_member_batch *b;
    int rv = batch_of(s, SGID, &b);
    if (rv || !b)
        return rv; /* no SG, no member: deleting it is not an error */
    uint8_t rec[2 + CPNS_ID_MAX];
    size_t id = strlen(PNEID);
    rec[0] = REC_DEL;
    rec[1] = (uint8_t)id;
    memcpy(rec + 2, PNEID, id);
    return add_record(s, b, rec, 2 + id);
}

/* --- replay: an SG's rows in order, the last record of each PNEID winning --- */

typedef struct replay {
    uint8_t *bytes; /* the rows, concatenated */
    size_t len, cap;
    size_t *offs; /* where each record starts */
    size_t n, n_cap;
} replay;

typedef struct rec_ref {
    const uint8_t *p;
    size_t seq;
} rec_ref;

static void replay_free(replay *r)
{
    cpns_free(r->bytes);
    cpns_free(r->offs);
    memset(r, 0, sizeof *r);
}

/* Appends one row's records: 0, CPNS_ERR_STORE when one is malformed, CPNS_ERR_NOMEM. */
static int replay_add(replay *r, const uint8_t *blob, size_t len)
{
    if (len == 0)
        return 0; /* an empty row: nothing to index, nor to copy */
    if (!blob || room_for(&r->bytes, &r->cap, r->len, len) != 0)
        return CPNS_ERR_NOMEM; /* (a NULL blob: SQLite could not hand it out) */
    size_t base = r->len;
    for (size_t at = 0; at < len;) {
        size_t n = rec_len(blob + at, len - at);
        if (!n)
            return CPNS_ERR_STORE;
        if (r->n == r->n_cap) {
            size_t n_cap = r->n_cap ? r->n_cap * 2 : 1024;
            size_t *offs = cpns_realloc(r->offs, n_cap * sizeof *offs);
            if (!offs)
                return CPNS_ERR_NOMEM;
            r->offs = offs;
            r->n_cap = n_cap;
        }
        r->offs[r->n++] = base + at;
        at += n;
    }
    memcpy(r->bytes + base, blob, len);
    r->len += len;
    return 0;
}

static int cmp_rec(const void *a, const void *b)
{
    const rec_ref *x = a, *y = b;
    size_t lx = x->p[1], ly = y->p[1];
    int c = memcmp(x->p + 2, y->p + 2, lx < ly ? lx : ly);
    if (c == 0)
        c = lx < ly ? -1 : lx > ly;
    if (c == 0)
        c = x->seq < y->seq ? -1 : x->seq > y->seq;
    return c;
}

static int same_pneid(const uint8_t *a, const uint8_t *b)
{
    return a[1] == b[1] && memcmp(a + 2, b + 2, a[1]) == 0;
}

/*
 * The live records (a put last for their PNEID) in PNEID order, in a new
 * array (*out, freed by the caller); 0 or CPNS_ERR_NOMEM.
 */
static int replay_live(const replay *r, const uint8_t ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    rec_ref *v = cpns_calloc(r->n ? r->n : 1, sizeof *v);
    const uint8_t **live = cpns_calloc(r->n ? r->n : 1, sizeof *live);
    if (!v || !live) {
        cpns_free(v);
        cpns_free(live);
        return CPNS_ERR_NOMEM;
    }
    int in_order = 1;
    for (size_t i = 0; i < r->n; i++) {
        v[i].p = r->bytes + r->offs[i];
        v[i].seq = i;
        if (i && in_order && cmp_rec(&v[i - 1], &v[i]) > 0)
            in_order = 0;
    }
    if (!in_order)
        qsort(v, r->n, sizeof *v, cmp_rec);
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        if ((i + 1 == r->n || !same_pneid(v[i].p, v[i + 1].p)) && v[i].p[0] == REC_PUT)
            live[n++] = v[i].p;
    cpns_free(v);
    *out = live;
    *n_out = n;
    return 0;
}

/* --- commit --- */

/* Appends a row through stmt: SQ_LOG_APPEND's, or the migration's own (run before they are
 * prepared). */
static int append_row_with(cpns_store_sqlite *s, sqlite3_stmt *stmt, const char *SGID,
                           int64_t records, const uint8_t *rows, size_t len)
{
    int ok = sqlite3_bind_text(stmt, 1, SGID, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(stmt, 2, records) == SQLITE_OK &&
             sqlite3_bind_blob64(stmt, 3, rows, len, SQLITE_STATIC) == SQLITE_OK;
    return sqlite_step_done(s, stmt, ok, "member_log: cannot append");
}

static int append_row(cpns_store_sqlite *s, const char *SGID, int64_t records, const uint8_t *rows,
                      size_t len)
{
    return append_row_with(s, s->stmt[SQ_LOG_APPEND], SGID, records, rows, len);
}

/* Reads SGID's rows, in order, into r. */
static int read_log(cpns_store_sqlite *s, const char *SGID, replay *r)
{
    sqlite3_stmt *stmt = s->stmt[SQ_LOG_READ];
    int rv = 0, rc = SQLITE_ERROR;
    if (sqlite3_bind_text(stmt, 1, SGID, -1, SQLITE_STATIC) == SQLITE_OK)
        while (rv == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
            rv = replay_add(r, sqlite3_column_blob(stmt, 0), (size_t)sqlite3_column_bytes(stmt, 0));
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rv == CPNS_ERR_STORE)
        return sqlite_damaged(s, "member_log", SGID, "a record is malformed");
    if (rv)
        return rv;
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "member_log: cannot read");
}

/* Replaces SGID's rows by one row of its live members. */
static int compact(cpns_store_sqlite *s, const char *SGID)
{
    replay r = {0};
    sqlite_member_batch b = {.records = 0};
    const uint8_t **live = NULL;
    size_t n = 0;
    int rv = read_log(s, SGID, &r);
    if (rv == 0)
        rv = replay_live(&r, &live, &n);
    for (size_t i = 0; rv == 0 && i < n; i++)
        rv = batch_append(&b, live[i], rec_len(live[i], REC_MAX));
    if (rv == 0) {
        sqlite3_stmt *stmt = s->stmt[SQ_LOG_CLEAR];
        rv = sqlite_step_done(s, stmt,
                              sqlite3_bind_text(stmt, 1, SGID, -1, SQLITE_STATIC) == SQLITE_OK,
                              "member_log: cannot compact");
    }
    if (rv == 0 && b.records)
        rv = append_row(s, SGID, b.records, b.buf, b.len);
    if (rv == CPNS_ERR_NOMEM)
        sqlite_set_err(s, "member_log %s: out of memory while compacting", SGID);
    cpns_free(live);
    cpns_free(b.buf);
    replay_free(&r);
    return rv;
}

/* Compacts SGID when its log has outgrown the bounds at the top of this file. */
static int maybe_compact(cpns_store_sqlite *s, const char *SGID)
{
    sqlite3_stmt *stmt = s->stmt[SQ_LOG_STATS];
    int64_t rows = 0, total = 0, first = 0;
    int rc = SQLITE_ERROR;
    if (sqlite3_bind_text(stmt, 1, SGID, -1, SQLITE_STATIC) == SQLITE_OK &&
        (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        rows = sqlite3_column_int64(stmt, 0);
        total = sqlite3_column_int64(stmt, 1);
        first = sqlite3_column_int64(stmt, 2);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_ROW)
        return sqlite_fail(s, "member_log: cannot count");
    int due = total > 2 * first + COMPACT_SLACK || rows > COMPACT_ROWS;
    return rows > 1 && due ? compact(s, SGID) : 0;
}

int sqlite_members_write(cpns_store_sqlite *s)
{
    int rv = 0;
    for (cpns_map_iter it = cpns_map_begin(&s->batches); rv == 0 && cpns_map_next(&it);) {
        const sqlite_member_batch *b = it.val;
        rv = append_row(s, b->SGID, b->records, b->buf, b->len);
        if (rv == 0)
            rv = maybe_compact(s, b->SGID);
    }
    sqlite_members_forget(s);
    return rv;
}

/* --- load --- */

static int emit(cpns_store_sqlite *s, const char *SGID, const replay *r, const cpns_store_loader *l,
                void *arg)
{
    const uint8_t **live;
    size_t n;
    int rv = replay_live(r, &live, &n);
    if (rv) {
        sqlite_set_err(s, "member_log %s: out of memory", SGID);
        return rv;
    }
    for (size_t i = 0; rv == 0 && i < n; i++) {
        cpns_store_member m;
        memset(&m, 0, sizeof m);
        strcpy(m.SGID, SGID);
        parse_rec(live[i], REC_MAX, &m);
        rv = l->member(arg, &m);
    }
    cpns_free(live);
    return rv;
}

int sqlite_load_members(cpns_store_sqlite *s, const cpns_store_loader *l, void *arg)
{
    sqlite3_stmt *stmt = s->stmt[SQ_LOAD_MEMBER];
    replay r = {0};
    char SGID[CPNS_ID_MAX + 1] = "", next[CPNS_ID_MAX + 1];
    int rv = 0, rc;
    while (rv == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (!sqlite_column_id(stmt, 0, next, 0)) {
            rv = sqlite_damaged(s, "member_log", "", "a row has a bad SGID");
            break;
        }
        if (strcmp(next, SGID) != 0) {
            if (SGID[0])
                rv = emit(s, SGID, &r, l, arg);
            replay_free(&r);
            strcpy(SGID, next);
        }
        if (rv == 0)
            rv =
                replay_add(&r, sqlite3_column_blob(stmt, 1), (size_t)sqlite3_column_bytes(stmt, 1));
        if (rv == CPNS_ERR_STORE)
            rv = sqlite_damaged(s, "member_log", SGID, "a record is malformed");
    }
    if (rv == 0 && rc != SQLITE_DONE)
        rv = sqlite_fail(s, "load");
    if (rv == 0 && SGID[0])
        rv = emit(s, SGID, &r, l, arg);
    replay_free(&r);
    sqlite3_reset(stmt);
    return rv;
}

/* --- schema version 1 to 2 --- */

/* A row of the version 1 member table, checked as load() checked it. */
static int member_columns(cpns_store_sqlite *s, sqlite3_stmt *stmt, cpns_store_member *m)
{
    int64_t v[6];
    if (!sqlite_column_id(stmt, 0, m->SGID, 0) || !sqlite_column_id(stmt, 1, m->PNEID, 0))
        return sqlite_damaged(s, "member", "", "a row has a bad SGID or PNEID");
    if (!sqlite_column_range(stmt, 2, 0, CPNS_KEYVERSION_MAX, &v[0]) ||
        !sqlite_column_range(stmt, 3, CPNS_MEMBER_PENDING, CPNS_MEMBER_FAILED, &v[1]) ||
        !sqlite_column_range(stmt, 4, INT32_MIN, INT32_MAX, &v[2]) ||
        !sqlite_column_range(stmt, 5, INT32_MIN, INT32_MAX, &v[3]) ||
        !sqlite_column_range(stmt, 6, 0, UINT32_MAX, &v[4]) ||
        !sqlite_column_range(stmt, 7, 0, UINT32_MAX, &v[5]) ||
        !sqlite_column_id(stmt, 8, m->PNID, 1))
        return sqlite_damaged(s, "member", m->PNEID, "a column is out of range");
    m->KeyVersion = (uint32_t)v[0];
    m->state = (cpns_member_state)v[1];
    m->Return = (int32_t)v[2];
    m->fail_reason = (int32_t)v[3];
    m->attempts = (uint32_t)v[4];
    m->malformed = (uint32_t)v[5];
    return 0;
}

int sqlite_members_from_table(cpns_store_sqlite *s)
{
    sqlite3_stmt *stmt = NULL, *append = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT sgid, pneid, key_version, state, ret, fail_reason, attempts,"
                           " malformed, pnid FROM member ORDER BY sgid, pneid",
                           -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, SQLITE_LOG_APPEND_SQL, -1, &append, NULL) != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return sqlite_fail(s, "cannot convert the member table");
    }
    sqlite_member_batch b = {.records = 0};
    int rv = 0, rc;
    while (rv == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        cpns_store_member m;
        memset(&m, 0, sizeof m);
        if ((rv = member_columns(s, stmt, &m)) != 0)
            break;
        if (b.records && strcmp(m.SGID, b.SGID) != 0) {
            rv = append_row_with(s, append, b.SGID, b.records, b.buf, b.len);
            b.len = 0;
            b.records = 0;
        }
        strcpy(b.SGID, m.SGID);
        uint8_t rec[REC_MAX];
        size_t n = pack_put(rec, &m);
        if (rv == 0 && (rv = batch_append(&b, rec, n)) != 0)
            sqlite_set_err(s, "cannot convert the member table: out of memory");
    }
    if (rv == 0 && rc != SQLITE_DONE)
        rv = sqlite_fail(s, "cannot read the member table");
    if (rv == 0 && b.records)
        rv = append_row_with(s, append, b.SGID, b.records, b.buf, b.len);
    cpns_free(b.buf);
    sqlite3_finalize(stmt);
    sqlite3_finalize(append);
    if (rv == 0 && sqlite3_exec(s->db, "DROP TABLE member", NULL, NULL, NULL) != SQLITE_OK)
        rv = sqlite_fail(s, "cannot drop the member table");
    return rv;
}
