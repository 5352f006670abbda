/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tables for cpnsctl (show.h). Cells are collected first and printed once
 * their widths are known; a missing or null value prints as "-".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "show.h"

#define TABLE_MAX_COLS 8

typedef struct table {
    size_t ncols;
    size_t nrows;
    size_t cap;
    char **cells; /* row-major, nrows * ncols, owned */
    int oom;
} table;

static void table_add(table *t, const char *const *row)
{
    if (t->oom)
        return;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **cells = realloc(t->cells, cap * t->ncols * sizeof *cells);
        if (!cells) {
            t->oom = 1;
            return;
        }
        t->cells = cells;
        t->cap = cap;
    }
    for (size_t c = 0; c < t->ncols; c++) {
        char *s = strdup(row[c] ? row[c] : "-");
        if (!s) {
            t->oom = 1;
            s = NULL;
        }
        t->cells[t->nrows * t->ncols + c] = s;
    }
    t->nrows++;
}

/* Prints and frees the table; the last column is not padded. */
static void table_print(FILE *out, table *t)
{
    size_t width[TABLE_MAX_COLS] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t n = s ? strlen(s) : 0;
            if (n > width[c])
                width[c] = n;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c + 1 < t->ncols)
                fprintf(out, "%-*s  ", (int)width[c], s ? s : "");
            else
                fprintf(out, "%s\n", s ? s : "");
        }
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

static const char *str_or_null(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Writes an integer field into buf, or returns NULL when absent or null. */
static const char *int_or_null(const json_t *obj, const char *key, char *buf, size_t len)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return NULL;
    snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    return buf;
}

int show_pnes(FILE *out, const json_t *pnes)
{
    if (!json_is_array(pnes))
        return -1;
    table t = {.ncols = 5};
    table_add(&t, (const char *const[]){"PNEID", "REGISTERED", "REACHABLE", "PNGWID", "PNID"});
    size_t i;
    const json_t *p;
    json_array_foreach(pnes, i, p)
    {
        if (!json_is_object(p) || !str_or_null(p, "pneid"))
            continue;
        const json_t *reg = json_object_get(p, "registered");
        /* Reachable: its GW is connected and routes to it now, so a delivery can go out. */
        const json_t *reach = json_object_get(p, "reachable");
        table_add(&t, (const char *const[]){
                          str_or_null(p, "pneid"), json_is_true(reg) ? "yes" : "no",
                          json_is_boolean(reach) ? (json_is_true(reach) ? "yes" : "no") : NULL,
                          str_or_null(p, "pngwid"), str_or_null(p, "pnid")});
    }
    table_print(out, &t);
    return 0;
}

int member_done(const json_t *sg, const json_t *member)
{
    const char *state = str_or_null(member, "state");
    const json_t *have = json_object_get(member, "key_version");
    const json_t *want = json_object_get(sg, "key_version");
    return state && strcmp(state, "delivered") == 0 && json_is_integer(have) &&
           json_is_integer(want) && json_integer_value(have) == json_integer_value(want);
}

static void count_done(const json_t *sg, size_t *n, size_t *done)
{
    const json_t *members = json_object_get(sg, "members");
    size_t i;
    const json_t *m;
    *n = json_array_size(members);
    *done = 0;
    json_array_foreach(members, i, m)
    {
        if (member_done(sg, m))
            (*done)++;
    }
}

int show_sg(FILE *out, const json_t *sg)
{
    const char *SGID = str_or_null(sg, "sgid");
    const json_t *members = json_object_get(sg, "members");
    if (!json_is_object(sg) || !SGID || !json_is_array(members))
        return -1;
    char ver[32];
    size_t n, done;
    count_done(sg, &n, &done);
    const char *state = str_or_null(sg, "state");
    /* key_fingerprint is the server's addition to the documented SG object. */
    const char *fp = str_or_null(sg, "key_fingerprint");
    fprintf(out, "SG %s  key_version %s  state %s  delivered %zu/%zu%s%s\n", SGID,
            int_or_null(sg, "key_version", ver, sizeof ver) ? ver : "-", state ? state : "-", done,
            n, fp ? "  key_fingerprint " : "", fp ? fp : "");
    if (n == 0)
        return 0;
    table t = {.ncols = 6};
    table_add(&t,
              (const char *const[]){"PNEID", "STATE", "RETURN", "ATTEMPTS", "PNID", "KEY_VERSION"});
    size_t i;
    const json_t *m;
    json_array_foreach(members, i, m)
    {
        char ret[32], att[32], kv[32];
        table_add(&t, (const char *const[]){str_or_null(m, "pneid"), str_or_null(m, "state"),
                                            int_or_null(m, "return", ret, sizeof ret),
                                            int_or_null(m, "attempts", att, sizeof att),
                                            str_or_null(m, "pnid"),
                                            int_or_null(m, "key_version", kv, sizeof kv)});
    }
    table_print(out, &t);
    return 0;
}

int show_sgs(FILE *out, const json_t *sgs)
{
    if (!json_is_array(sgs))
        return -1;
    table t = {.ncols = 5};
    table_add(&t, (const char *const[]){"SGID", "KEY_VERSION", "STATE", "DELIVERED", "FAILED"});
    size_t i;
    const json_t *sg;
    json_array_foreach(sgs, i, sg)
    {
        if (!json_is_object(sg) || !str_or_null(sg, "sgid"))
            continue;
        char ver[32], count[64], failed[32];
        const json_t *counts = json_object_get(sg, "counts");
        const json_t *total = json_object_get(sg, "total");
        /* The status objects of ?view=status: counts, no members. */
        if (json_is_object(counts) && json_is_integer(total))
            snprintf(count, sizeof count, "%lld/%lld",
                     (long long)json_integer_value(json_object_get(counts, "delivered")),
                     (long long)json_integer_value(total));
        else
            snprintf(count, sizeof count, "-");
        table_add(&t, (const char *const[]){str_or_null(sg, "sgid"),
                                            int_or_null(sg, "key_version", ver, sizeof ver),
                                            str_or_null(sg, "state"), count,
                                            int_or_null(counts, "failed", failed, sizeof failed)});
    }
    table_print(out, &t);
    return 0;
}

void show_missing(FILE *out, const json_t *members)
{
    size_t i;
    const json_t *m;
    const char *sep = "";
    json_array_foreach(members, i, m)
    {
        char ret[32], att[32];
        const char *r = int_or_null(m, "return", ret, sizeof ret);
        const char *a = int_or_null(m, "attempts", att, sizeof att);
        const char *state = str_or_null(m, "state");
        fprintf(out, "%s%s (%s, %s attempts%s%s)", sep,
                str_or_null(m, "pneid") ? str_or_null(m, "pneid") : "?", state ? state : "?",
                a ? a : "?", r ? ", last Return " : "", r ? r : "");
        sep = ", ";
    }
}
