/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A private PostgreSQL cluster per test program (pg.h), over
 * scripts/pg-tmp.sh, which knows how to run the server as nobody when we are
 * root. The parts here are the exit guards: whatever way the program ends,
 * no server may outlive it (they would pile up over repeated CTest runs).
 */
#define _GNU_SOURCE /* pipe2, close_range */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pg.h"

extern char **environ;

/*
 * One guard per running cluster, in static storage so that the exit and
 * signal handlers need nothing from the caller's test_pg (which may be gone
 * by then). wfd is the write end of the watchdog's pipe.
 */
#define GUARD_SLOTS 8
static struct guard {
    volatile sig_atomic_t used;
    pid_t owner; /* a forked child inherits the guards: only the owner acts */
    int wfd;
    char dir[sizeof(((test_pg *)0)->dir)];
} guards[GUARD_SLOTS];

static char script[PATH_MAX]; /* absolute path of pg-tmp.sh */
static const char *bash;      /* absolute: the signal handler cannot search PATH */
static int handlers_installed;

static int find_tools(void)
{
    if (!bash) {
        static const char *const candidates[] = {"/bin/bash", "/usr/bin/bash",
                                                 "/usr/local/bin/bash"};
        for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && !bash; i++)
            if (access(candidates[i], X_OK) == 0)
                bash = candidates[i];
        if (!bash) {
            fprintf(stderr, "test_pg: bash not found\n");
            return -1;
        }
    }
    if (!script[0]) {
        /* CTest sets CPNS_SOURCE_DIR; the compiled-in tree serves direct runs. */
        const char *src = getenv("CPNS_SOURCE_DIR");
#ifdef CPNS_TEST_SOURCE_DIR
        if (!src || !*src)
            src = CPNS_TEST_SOURCE_DIR;
#endif
        if (!src || !*src) {
            fprintf(stderr, "test_pg: set CPNS_SOURCE_DIR to the source tree\n");
            return -1;
        }
        snprintf(script, sizeof script, "%s/scripts/pg-tmp.sh", src);
        if (access(script, R_OK) != 0) {
            fprintf(stderr, "test_pg: %s: %s\n", script, strerror(errno));
            script[0] = '\0';
            return -1;
        }
    }
    return 0;
}

/* Runs pg-tmp.sh CMD DIR [ARG] and waits for it; its stdout is dropped. */
static int run_script(const char *cmd, const char *dir, const char *arg)
{
    char *argv[] = {(char *)bash, script, (char *)cmd, (char *)dir, (char *)arg, NULL};
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, bash, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "test_pg: cannot run %s: %s\n", script, strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "test_pg: pg-tmp.sh %s %s%s%s failed\n", cmd, dir, arg ? " " : "",
                arg ? arg : "");
        return -1;
    }
    return 0;
}

/* Tells the watchdog that the cluster is gone, and frees the slot. */
static void release_guard(struct guard *g)
{
    if (!g->used || g->owner != getpid())
        return;
    g->used = 0;
    ssize_t n;
    do
        n = write(g->wfd, "x", 1);
    while (n < 0 && errno == EINTR);
    close(g->wfd);
}

/*
 * The watchdog, in the grandchild of the program: adopted by init, in its own
 * session, it survives the program and the killing of its process group or
 * tree. It blocks on the pipe: a byte means the program stopped the cluster
 * itself; end of file means the program died (however), so it stops it.
 */
static void watchdog(int rfd, const char *dir)
{
    if (fork() != 0)
        _exit(0);
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    /* Nothing of the program's may stay open here: CTest waits for the end of
     * the test's stdout and stderr, and other watchdogs for their pipes. */
    int r = fcntl(rfd, F_DUPFD_CLOEXEC, 10);
    int null = open("/dev/null", O_RDWR);
    if (r < 0 || null < 0)
        _exit(1);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close_range(3, (unsigned)r - 1, 0);
    close_range((unsigned)r + 1, ~0U, 0);
    if (chdir("/") != 0)
        _exit(1);
    char c;
    ssize_t n;
    do
        n = read(r, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1)
        _exit(0);
    char *argv[] = {(char *)bash, script, "stop", (char *)dir, NULL};
    execve(bash, argv, environ);
    _exit(127);
}

static int start_watchdog(struct guard *g)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0)
        watchdog(fds[0], g->dir);
    close(fds[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    g->wfd = fds[1];
    g->owner = getpid();
    g->used = 1;
    return 0;
}

static void stop_all_at_exit(void)
{
    for (int i = 0; i < GUARD_SLOTS; i++)
        if (guards[i].used && guards[i].owner == getpid()) {
            run_script("stop", guards[i].dir, NULL);
            release_guard(&guards[i]);
        }
}

/* SIGTERM, SIGINT: stop the clusters (fork and execve only: async-signal-safe), then die of it. */
static void on_signal(int sig)
{
    for (int i = 0; i < GUARD_SLOTS; i++) {
        struct guard *g = &guards[i];
        if (!g->used || g->owner != getpid())
            continue;
        char *argv[] = {(char *)bash, script, "stop", g->dir, NULL};
        pid_t pid = fork();
        if (pid == 0) {
            execve(bash, argv, environ);
            _exit(127);
        }
        if (pid > 0)
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        release_guard(g);
    }
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns */
}

static void install_handlers(void)
{
    if (handlers_installed)
        return;
    handlers_installed = 1;
    atexit(stop_all_at_exit);
    static const int sigs[] = {SIGTERM, SIGINT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        /* Keep a parent's choice to ignore the signal, and anyone else's handler. */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
            sigaction(sigs[i], &sa, NULL);
    }
}

static struct guard *guard_of(const test_pg *pg)
{
    if (pg->slot < 0 || pg->slot >= GUARD_SLOTS || !pg->dir[0])
        return NULL;
    struct guard *g = &guards[pg->slot];
    return g->used && g->owner == getpid() && strcmp(g->dir, pg->dir) == 0 ? g : NULL;
}

static int read_uri(test_pg *pg)
{
    char path[sizeof pg->dir + 8];
    snprintf(path, sizeof path, "%s/uri", pg->dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "test_pg: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = fgets(pg->uri, sizeof pg->uri, f);
    fclose(f);
    if (!line)
        return -1;
    pg->uri[strcspn(pg->uri, "\n")] = '\0';
    return 0;
}

int test_pg_start(test_pg *pg)
{
    memset(pg, 0, sizeof *pg);
    pg->slot = -1;
    if (find_tools() != 0)
        return -1;
    int slot = 0;
    while (slot < GUARD_SLOTS && guards[slot].used)
        slot++;
    if (slot == GUARD_SLOTS) {
        fprintf(stderr, "test_pg: more than %d clusters at once\n", GUARD_SLOTS);
        return -1;
    }
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    /* The socket path, DIR/.s.PGSQL.5432, must fit in 107 bytes. */
    if (snprintf(pg->dir, sizeof pg->dir, "%s/cpns-pg-XXXXXX", tmp) >= 90 || !mkdtemp(pg->dir)) {
        fprintf(stderr, "test_pg: cannot make a short directory under %s: %s\n", tmp,
                strerror(errno));
        pg->dir[0] = '\0';
        return -1;
    }
    chmod(pg->dir, 0755); /* pg-tmp.sh hands it to nobody when we are root */
    install_handlers();
    struct guard *g = &guards[slot];
    memcpy(g->dir, pg->dir, sizeof g->dir);
    if (start_watchdog(g) != 0) {
        fprintf(stderr, "test_pg: cannot start the watchdog: %s\n", strerror(errno));
        rmdir(pg->dir);
        return -1;
    }
    pg->slot = slot;
    if (run_script("start", pg->dir, NULL) != 0 || read_uri(pg) != 0) {
        test_pg_stop(pg);
        return -1;
    }
    return 0;
}

void test_pg_stop(test_pg *pg)
{
    struct guard *g = guard_of(pg);
    if (!g)
        return;
    run_script("stop", pg->dir, NULL);
    release_guard(g);
    pg->slot = -1;
}

int test_pg_restart(test_pg *pg, int immediate)
{
    if (!guard_of(pg))
        return -1;
    return run_script("restart", pg->dir, immediate ? "immediate" : "fast");
}

int test_pg_create_db(test_pg *pg, char *uri, size_t len)
{
    if (!guard_of(pg))
        return -1;
    char name[32], sql[64];
    snprintf(name, sizeof name, "t%u", ++pg->next_db);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (test_pg_exec(pg->uri, sql) != 0)
        return -1;
    /* pg->uri reads postgresql:///cpns?host=...: the same with another database. */
    const char *query = strchr(pg->uri, '?');
    int n = snprintf(uri, len, "postgresql:///%s%s", name, query ? query : "");
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static PGconn *connect_to(const char *uri)
{
    PGconn *c = PQconnectdb(uri);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "test_pg: connecting to %s: %s", uri,
                c ? PQerrorMessage(c) : "no memory\n");
        PQfinish(c);
        return NULL;
    }
    return c;
}

int test_pg_exec(const char *uri, const char *sql)
{
    PGconn *c = connect_to(uri);
    if (!c)
        return -1;
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "test_pg: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return rc;
}

long long test_pg_scalar(const char *uri, const char *sql)
{
    PGconn *c = connect_to(uri);
    if (!c)
        return -1;
    PGresult *r = PQexec(c, sql);
    long long v = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "test_pg: %s: %s", sql, PQerrorMessage(c));
    } else if (PQntuples(r) >= 1 && PQnfields(r) >= 1 && !PQgetisnull(r, 0, 0)) {
        const char *s = PQgetvalue(r, 0, 0);
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (*s && !*end && errno == 0)
            v = x;
    }
    PQclear(r);
    PQfinish(c);
    return v;
}

pid_t test_pg_postmaster_pid(const test_pg *pg)
{
    char path[sizeof pg->dir + 32];
    snprintf(path, sizeof path, "%s/data/postmaster.pid", pg->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long pid = -1;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = -1;
    fclose(f);
    return pid > 0 ? (pid_t)pid : -1;
}

test_pg test_pg_group;

int test_pg_group_setup(void **state)
{
    (void)state;
    return test_pg_start(&test_pg_group) == 0 ? 0 : -1;
}

int test_pg_group_teardown(void **state)
{
    (void)state;
    test_pg_stop(&test_pg_group);
    return 0;
}
