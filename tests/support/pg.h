/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A private, throwaway PostgreSQL cluster for one test program, run by
 * scripts/pg-tmp.sh (issue #11 item 4): its own directory under $TMPDIR (or
 * /tmp), a Unix socket in it, no TCP, so test programs running in parallel
 * never see each other. As root the server runs as nobody.
 *
 * The cluster does not outlive the program: test_pg_stop() removes it, an
 * atexit handler and a SIGTERM/SIGINT handler stop what is left, and a
 * watchdog process (which notices the program's end even on SIGKILL or a
 * crash) stops it if all else failed. Call test_pg_start() in a cmocka group
 * setup and test_pg_stop() in the group teardown.
 */
#ifndef CPNS_TEST_PG_H
#define CPNS_TEST_PG_H

#include <stddef.h>
#include <sys/types.h>

typedef struct test_pg {
    char dir[128];    /* the cluster's directory: data/, log, uri, the socket */
    char uri[256];    /* libpq URI of its database cpns */
    int slot;         /* the exit guard's slot; -1 when not running */
    unsigned next_db; /* test_pg_create_db's counter */
} test_pg;

/*
 * Creates a temporary directory and starts a cluster in it (pg-tmp.sh start,
 * found through $CPNS_SOURCE_DIR or the source tree this was built from);
 * fills dir and uri. Returns 0, or -1 after printing why (nothing is left).
 */
int test_pg_start(test_pg *pg);

/* Stops the cluster (-m immediate) and deletes its directory. Idempotent. */
void test_pg_stop(test_pg *pg);

/*
 * The one cluster of a test program whose tests share it, as cmocka group
 * fixtures: cmocka_run_group_tests(tests, test_pg_group_setup,
 * test_pg_group_teardown) starts test_pg_group before the first test
 * (0, or -1 after printing why) and stops it after the last.
 */
extern test_pg test_pg_group;
int test_pg_group_setup(void **state);
int test_pg_group_teardown(void **state);

/*
 * pg_ctl restart: immediate (a crash: uncommitted work lost, recovery from the
 * WAL) or fast (a clean shutdown). Returns when the server accepts
 * connections again: 0, or -1 after printing why.
 */
int test_pg_restart(test_pg *pg, int immediate);

/*
 * A new, empty database with a name unique on this cluster (so one program's
 * tests do not see each other's tables); its URI in uri (len bytes).
 * Returns 0 or -1.
 */
int test_pg_create_db(test_pg *pg, char *uri, size_t len);

/* Runs sql (one or more statements) on a new connection. Returns 0 or -1. */
int test_pg_exec(const char *uri, const char *sql);

/*
 * Runs sql on a new connection and returns the first column of the first row
 * as an integer; -1 on any error, no row, NULL or a non-integer value.
 */
long long test_pg_scalar(const char *uri, const char *sql);

/* The running postmaster's PID (from data/postmaster.pid), or -1. */
pid_t test_pg_postmaster_pid(const test_pg *pg);

#endif
