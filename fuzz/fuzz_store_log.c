/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the SQLite store's member log (lib/store_sqlite_members.c).
 *
 * The input becomes the records of the only member_log row of a store that
 * holds the SG "sg-fz", written with the plain sqlite3 API as a damaged disk
 * or an edited file would. Besides "no crash, no sanitizer report" it
 * abort()s when load() returns anything but 0 or CPNS_ERR_STORE, and, when
 * the row loads, unless every member is whole (a PNEID of 1 to 64 bytes, a
 * known state) and writing them all back (put_member each, one commit, the
 * path a compaction also takes) and loading again gives the same members.
 * The store lives in a private temporary directory (under /dev/shm when
 * there is one), removed at exit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MEMBERS 4096

static char dir[64];
static char path[96];
static cpns_store *st;
static sqlite3 *raw;

typedef struct loaded {
    cpns_store_member *m;
    size_t n;
} loaded;

static void remove_dir(void)
{
    cpns_store_free(st);
    sqlite3_close(raw);
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    char p[128];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

static int on_pne(void *arg, const cpns_store_pne *p)
{
    (void)arg, (void)p;
    return 0;
}

static int on_sg(void *arg, const cpns_store_sg *sg)
{
    (void)arg, (void)sg;
    return 0;
}

static int on_member(void *arg, const cpns_store_member *m)
{
    loaded *l = arg;
    FZ_CHECK(l->n < MAX_MEMBERS);
    l->m[l->n++] = *m;
    return 0;
}

static int on_nonce(void *arg, const cpns_store_nonce *n)
{
    (void)arg, (void)n;
    return 0;
}

static const cpns_store_loader loader = {on_pne, on_sg, on_member, on_nonce};

static void set_up(void)
{
    if (st)
        return;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/fuzz_store_log.XXXXXX", base);
    FZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/server.db", dir);
    atexit(remove_dir);
    uint8_t master_key[CPNS_KEY_LEN];
    memset(master_key, 0x42, sizeof master_key);
    FZ_CHECK(cpns_store_sqlite_open(&st, path, master_key, NULL, 0) == 0);
    cpns_store_sg sg;
    memset(&sg, 0, sizeof sg);
    strcpy(sg.SGID, "sg-fz");
    FZ_CHECK(st->ops->put_sg(st, &sg) == 0 && st->ops->commit(st) == 0);
    FZ_CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
}

/* The input as the one row of sg-fz's log. */
static void write_row(const uint8_t *data, size_t size)
{
    sqlite3_stmt *stmt = NULL;
    FZ_CHECK(sqlite3_exec(raw, "DELETE FROM member_log", NULL, NULL, NULL) == SQLITE_OK);
    FZ_CHECK(sqlite3_prepare_v2(
                 raw, "INSERT INTO member_log(sgid, records, rows) VALUES ('sg-fz', 1, ?1)", -1,
                 &stmt, NULL) == SQLITE_OK);
    FZ_CHECK(sqlite3_bind_blob(stmt, 1, size ? (const void *)data : "", (int)size,
                               SQLITE_TRANSIENT) == SQLITE_OK);
    FZ_CHECK(sqlite3_step(stmt) == SQLITE_DONE);
    sqlite3_finalize(stmt);
}

static int same(const cpns_store_member *a, const cpns_store_member *b)
{
    return strcmp(a->SGID, b->SGID) == 0 && strcmp(a->PNEID, b->PNEID) == 0 &&
           a->KeyVersion == b->KeyVersion && a->state == b->state && a->Return == b->Return &&
           a->fail_reason == b->fail_reason && a->attempts == b->attempts &&
           a->malformed == b->malformed && strcmp(a->PNID, b->PNID) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    set_up();
    write_row(data, size);
    static cpns_store_member first[MAX_MEMBERS], again[MAX_MEMBERS];
    loaded a = {first, 0}, b = {again, 0};
    int rv = st->ops->load(st, &loader, &a);
    FZ_CHECK(rv == 0 || rv == CPNS_ERR_STORE);
    if (rv)
        return 0;
    for (size_t i = 0; i < a.n; i++) {
        size_t len = strlen(first[i].PNEID);
        FZ_CHECK(len >= 1 && len <= CPNS_ID_MAX && strlen(first[i].PNID) <= CPNS_ID_MAX);
        FZ_CHECK(strcmp(first[i].SGID, "sg-fz") == 0 && first[i].state <= CPNS_MEMBER_FAILED);
        FZ_CHECK(i == 0 || strcmp(first[i - 1].PNEID, first[i].PNEID) < 0);
        FZ_CHECK(st->ops->put_member(st, &first[i]) == 0);
    }
    FZ_CHECK(st->ops->commit(st) == 0);
    FZ_CHECK(st->ops->load(st, &loader, &b) == 0);
    FZ_CHECK(b.n == a.n);
    for (size_t i = 0; i < a.n; i++)
        FZ_CHECK(same(&first[i], &again[i]));
    return 0;
}
