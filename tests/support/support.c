/* SPDX-License-Identifier: Apache-2.0 */
/* Implementation of the shared test helpers (support.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "support.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void test_hex(const char *hex, uint8_t *out, size_t n)
{
    assert_int_equal(strlen(hex), 2 * n);
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        assert_true(hi >= 0 && lo >= 0);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
}

int test_rand(void *arg, uint8_t *buf, size_t len)
{
    uint64_t *ctr = arg;
    while (len) {
        uint8_t block[SHA256_DIGEST_LENGTH];
        uint8_t in[8];
        for (int i = 0; i < 8; i++)
            in[i] = (uint8_t)(*ctr >> (8 * i));
        (*ctr)++;
        SHA256(in, sizeof in, block);
        size_t n = len < sizeof block ? len : sizeof block;
        memcpy(buf, block, n);
        buf += n;
        len -= n;
    }
    return 0;
}

void test_log(void *arg, const cpns_log_event *ev)
{
    (void)arg;
    if (!getenv("CPNS_TEST_VERBOSE"))
        return;
    fprintf(stderr, "[%s%s%s] SGID=%s PNEID=%s TID=%llu %s\n", ev->entity, ev->id ? " " : "",
            ev->id ? ev->id : "", ev->SGID ? ev->SGID : "-", ev->PNEID ? ev->PNEID : "-",
            (unsigned long long)ev->TransactionID, ev->text);
}

static int should_fail(test_counting *c)
{
    c->calls++;
    if (c->fail_at && c->calls == c->fail_at) {
        c->failed = 1;
        return 1;
    }
    return 0;
}

static void *counting_malloc(size_t n, void *arg)
{
    test_counting *c = arg;
    if (should_fail(c))
        return NULL;
    void *p = malloc(n);
    if (p)
        c->live++;
    return p;
}

static void *counting_realloc(void *p, size_t n, void *arg)
{
    test_counting *c = arg;
    if (should_fail(c))
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        c->live++;
    return q;
}

static void counting_free(void *p, void *arg)
{
    test_counting *c = arg;
    if (p)
        c->live--;
    free(p);
}

cpns_allocator test_counting_allocator(test_counting *c)
{
    return (cpns_allocator){counting_malloc, counting_realloc, counting_free, c};
}

void test_db_dir(const char *prefix, char dir[64], char path[128])
{
    snprintf(dir, 64, "/tmp/%s-XXXXXX", prefix);
    assert_non_null(mkdtemp(dir));
    snprintf(path, 128, "%s/server.db", dir);
}

void test_db_dir_remove(const char *dir, const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}
