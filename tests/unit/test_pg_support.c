/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The throwaway PostgreSQL of the tests (tests/support/pg.h over
 * scripts/pg-tmp.sh): a private cluster starts, answers, holds separate
 * databases, survives a crash restart with its commits, and leaves nothing
 * behind, neither on test_pg_stop() nor when the program exits, is
 * terminated or is killed without stopping it. The smoke test of CI.
 */
#define _GNU_SOURCE /* pipe2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pg.h"
#include "support.h"

static test_pg pg;

static int setup(void **state)
{
    return test_pg_start(&pg);
}

static int teardown(void **state)
{
    test_pg_stop(&pg);
    return 0;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A process is gone when kill() finds nothing, or only a zombie left for init to reap. */
static int pid_gone(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 1;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return p && p[1] == ' ' && p[2] == 'Z';
}

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    char state;
    long ppid;
    return p && sscanf(p + 1, " %c %ld", &state, &ppid) == 2 ? (pid_t)ppid : -1;
}

/* The postmaster and its children (checkpointer, walwriter, backends...). */
static size_t cluster_pids(pid_t postmaster, pid_t *out, size_t max)
{
    size_t n = 0;
    out[n++] = postmaster;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end == '\0' && pid > 0 && parent_of((pid_t)pid) == postmaster)
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

/* Waits (60 s at most) until dir is gone and so is every process in pids. */
static void assert_all_gone(const char *dir, const pid_t *pids, size_t n)
{
    double deadline = mono_s() + 60;
    for (;;) {
        struct stat st;
        int left = stat(dir, &st) == 0;
        for (size_t i = 0; i < n; i++)
            left += !pid_gone(pids[i]);
        if (!left)
            return;
        if (mono_s() > deadline)
            fail_msg("%s or %d of its processes still there", dir, left);
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The cluster answers on a Unix socket only, in its own directory, as nobody when we are root. */
static void test_started(void **state)
{
    char prefix[200];
    snprintf(prefix, sizeof prefix, "postgresql:///cpns?host=%s&port=", pg.dir);
    assert_memory_equal(pg.uri, prefix, strlen(prefix));
    assert_true(is_dir(pg.dir));
    assert_int_equal(test_pg_scalar(pg.uri, "SELECT 41 + 1"), 42);
    assert_int_equal(test_pg_scalar(pg.uri, "SELECT count(*) FROM pg_settings"
                                            " WHERE name = 'listen_addresses' AND setting = ''"),
                     1);
    /* Durable by default: crash tests must see real fsync semantics. */
    const char *fast = getenv("PG_FAST");
    if (!fast || strcmp(fast, "1") != 0)
        assert_int_equal(test_pg_scalar(pg.uri, "SELECT (current_setting('fsync') = 'on')::int"),
                         1);
    pid_t pm = test_pg_postmaster_pid(&pg);
    assert_true(pm > 0);
    assert_false(pid_gone(pm));
    if (geteuid() == 0) {
        struct stat st;
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/%ld", (long)pm);
        assert_int_equal(stat(proc, &st), 0);
        assert_int_not_equal(st.st_uid, 0);
    }
}

/* Each test_pg_create_db() is a fresh, empty database: tables do not leak between them. */
static void test_databases_apart(void **state)
{
    char a[256], b[256];
    assert_int_equal(test_pg_create_db(&pg, a, sizeof a), 0);
    assert_int_equal(test_pg_create_db(&pg, b, sizeof b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(test_pg_exec(a, "CREATE TABLE t (v bigint); INSERT INTO t VALUES (7), (8)"),
                     0);
    assert_int_equal(test_pg_scalar(a, "SELECT sum(v) FROM t"), 15);
    assert_int_equal(test_pg_scalar(b, "SELECT count(*) FROM pg_tables WHERE tablename = 't'"), 0);
    assert_int_equal(test_pg_exec(b, "CREATE TABLE t (v bigint)"), 0); /* no clash */
    assert_int_equal(test_pg_scalar(b, "SELECT count(*) FROM t"), 0);
    assert_int_equal(test_pg_scalar(pg.uri, "SELECT count(*) FROM pg_tables WHERE tablename = 't'"),
                     0);

    /* The helpers' failures. */
    assert_int_equal(test_pg_exec(a, "SELECT * FROM no_such_table"), -1);
    assert_int_equal(test_pg_scalar(a, "SELECT NULL::int"), -1);
    assert_int_equal(test_pg_scalar(a, "SELECT 'abc'"), -1);
    assert_int_equal(test_pg_scalar(a, "SELECT v FROM t WHERE v > 100"), -1);
    char bad[300];
    snprintf(bad, sizeof bad, "postgresql:///no_such_db%s", strchr(pg.uri, '?'));
    assert_int_equal(test_pg_scalar(bad, "SELECT 1"), -1);
}

/* A crash restart keeps what was committed, loses what was not, and the server answers again. */
static void test_restart_immediate(void **state)
{
    char uri[256];
    assert_int_equal(test_pg_create_db(&pg, uri, sizeof uri), 0);
    assert_int_equal(test_pg_exec(uri, "CREATE TABLE t (v int);"
                                       " INSERT INTO t SELECT generate_series(1, 1000)"),
                     0);
    /* A transaction in flight at the crash. */
    PGconn *open_tx = PQconnectdb(uri);
    assert_int_equal(PQstatus(open_tx), CONNECTION_OK);
    PQclear(PQexec(open_tx, "BEGIN"));
    PGresult *r = PQexec(open_tx, "INSERT INTO t VALUES (-1)");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);

    pid_t before = test_pg_postmaster_pid(&pg);
    double t0 = mono_s();
    assert_int_equal(test_pg_restart(&pg, 1), 0);
    fprintf(stderr, "restart -m immediate: %.2f s\n", mono_s() - t0);
    pid_t after = test_pg_postmaster_pid(&pg);
    assert_true(after > 0);
    assert_int_not_equal(before, after);
    assert_int_equal(test_pg_scalar(uri, "SELECT count(*) FROM t"), 1000);
    assert_int_equal(test_pg_scalar(uri, "SELECT count(*) FROM t WHERE v = -1"), 0);
    PQfinish(open_tx); /* its server is gone */

    t0 = mono_s();
    assert_int_equal(test_pg_restart(&pg, 0), 0);
    fprintf(stderr, "restart -m fast: %.2f s\n", mono_s() - t0);
    assert_int_equal(test_pg_scalar(uri, "SELECT sum(v) FROM t"), 500500);
}

/*
 * A forked child starts a cluster, reports its directory and postmaster, and
 * ends the way `how` says without stopping it; the guards must remove it all.
 */
struct report {
    char dir[128];
    pid_t pids[64];
    size_t npids;
};

static void orphan(int how)
{
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        test_pg mine;
        struct report rep = {0};
        if (test_pg_start(&mine) == 0 && test_pg_scalar(mine.uri, "SELECT 1") == 1) {
            memcpy(rep.dir, mine.dir, sizeof rep.dir);
            rep.npids = cluster_pids(test_pg_postmaster_pid(&mine), rep.pids, 64);
        }
        if (write(fds[1], &rep, sizeof rep) != sizeof rep)
            _exit(3);
        if (how == 0)
            exit(0); /* atexit */
        raise(how);
        _exit(4);
    }
    close(fds[1]);
    struct report rep;
    ssize_t n = read(fds[0], &rep, sizeof rep);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(n, sizeof rep);
    assert_true(rep.dir[0] != '\0');
    assert_true(rep.npids >= 2); /* the postmaster has its auxiliary processes */
    if (how == 0) {
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    } else {
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == how);
    }
    if (how != SIGKILL) /* the atexit and signal handlers stop it before the end */
        assert_false(is_dir(rep.dir));
    assert_all_gone(rep.dir, rep.pids, rep.npids);
    /* Our own cluster was not touched by the child's guards. */
    assert_int_equal(test_pg_scalar(pg.uri, "SELECT 1"), 1);
}

static void test_exit_stops(void **state)
{
    orphan(0);
}

static void test_sigterm_stops(void **state)
{
    orphan(SIGTERM);
}

static void test_sigkill_watchdog_stops(void **state)
{
    orphan(SIGKILL);
}

/* test_pg_stop() removes the directory and every process of the cluster. Last: it ends pg. */
static void test_stop(void **state)
{
    pid_t pids[64];
    size_t n = cluster_pids(test_pg_postmaster_pid(&pg), pids, 64);
    assert_true(n >= 2);
    char dir[sizeof pg.dir];
    memcpy(dir, pg.dir, sizeof dir);
    double t0 = mono_s();
    test_pg_stop(&pg);
    fprintf(stderr, "stop: %.2f s\n", mono_s() - t0);
    assert_false(is_dir(dir));
    assert_all_gone(dir, pids, n);
    test_pg_stop(&pg); /* idempotent */
    assert_int_equal(test_pg_restart(&pg, 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_started),
        cmocka_unit_test(test_databases_apart),
        cmocka_unit_test(test_restart_immediate),
        cmocka_unit_test(test_exit_stops),
        cmocka_unit_test(test_sigterm_stops),
        cmocka_unit_test(test_sigkill_watchdog_stops),
        cmocka_unit_test(test_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
