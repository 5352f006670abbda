/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared helpers for the tests: cmocka's headers in the right order, and
 * small utilities every test program wants.
 */
#ifndef CPNS_TEST_SUPPORT_H
#define CPNS_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cpns/cpns.h"
#include "cpns/testing.h"

/* Decodes a hex string into out (exactly n bytes); fails the test on bad input. */
void test_hex(const char *hex, uint8_t *out, size_t n);

/*
 * A scripted cpns_rand_fn: a deterministic stream (a counter run through
 * SHA-256), seeded with *(uint64_t *)arg, advanced on every call.
 */
int test_rand(void *arg, uint8_t *buf, size_t len);

/* A cpns_log_fn that prints events to stderr when CPNS_TEST_VERBOSE is set. */
void test_log(void *arg, const cpns_log_event *ev);

/*
 * A counting allocator for cpns_set_allocator(): the fail_at-th call (malloc
 * or realloc, counted in calls; 0: none) fails and sets failed; live counts
 * the blocks not yet freed. test_counting_allocator(c) is the allocator over c.
 */
typedef struct test_counting {
    long calls;
    long fail_at;
    int failed;
    long live;
} test_counting;
cpns_allocator test_counting_allocator(test_counting *c);

/*
 * A private directory for one SQLite database: dir (64 bytes) made from
 * /tmp/<prefix>-XXXXXX, path (128 bytes) dir/server.db. test_db_dir_remove
 * deletes the database with its -wal, -shm and -journal files, then dir
 * (which must hold nothing else by then).
 */
void test_db_dir(const char *prefix, char dir[64], char path[128]);
void test_db_dir_remove(const char *dir, const char *path);

#endif
