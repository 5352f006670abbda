/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log lines under journald (issue #13 item 5, src/common/daemon.c): when
 * JOURNAL_STREAM names the device and inode of stderr, as systemd sets it
 * for a unit whose stderr is the journal, every line starts with its syslog
 * priority (<3> error, <4> warn, <6> info, <7> debug) and carries no
 * timestamp of ours; when it is unset, or names another file (a variable
 * inherited by a process whose stderr was redirected), lines keep today's
 * format: an ISO 8601 UTC timestamp first.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progtest.h"

typedef struct run {
    char dir[256];
    char log[300];
    pid_t pid;
} run;

typedef enum { JOURNAL_UNSET, JOURNAL_STDERR, JOURNAL_OTHER } journal_mode;

/* Starts a program of CPNS_BIN_DIR with stderr to a file and JOURNAL_STREAM as mode says. */
static void start(run *r, const char *const argv[], journal_mode mode)
{
    prog_tmpdir(r->dir, sizeof r->dir);
    snprintf(r->log, sizeof r->log, "%s/stderr", r->dir);
    int fd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char stream[64];
    /* JOURNAL_OTHER: a real file's numbers, but not stderr's */
    snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (mode == JOURNAL_OTHER ? 1 : 0));
    const char *bin = getenv("CPNS_BIN_DIR");
    assert_non_null(bin);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", bin, argv[0]);
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        if (mode == JOURNAL_UNSET)
            unsetenv("JOURNAL_STREAM");
        else
            setenv("JOURNAL_STREAM", stream, 1);
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(fd);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = (len + 4096 + 1) * 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Waits (polling the file) until stderr holds needle; 1, or 0 after timeout_ms. */
static int wait_for(const run *r, const char *needle, int timeout_ms)
{
    for (int64_t t0 = mono_ms();;) {
        char *log = slurp(r->log);
        int found = strstr(log, needle) != NULL;
        free(log);
        if (found)
            return 1;
        if (mono_ms() - t0 > timeout_ms)
            return 0;
        sleep_ms(20);
    }
}

/* The exit status after sig (0: none sent), within 10 s. Then the log is read and removed. */
static char *finish(run *r, int sig, int *status)
{
    if (sig)
        kill(r->pid, sig);
    int st = 0;
    for (int64_t t0 = mono_ms(); waitpid(r->pid, &st, WNOHANG) == 0;) {
        if (mono_ms() - t0 > 10000) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, &st, 0);
            break;
        }
        sleep_ms(10);
    }
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char *log = slurp(r->log);
    unlink(r->log);
    rmdir(r->dir);
    return log;
}

/* Checks every line of log: journal format (prefix, no timestamp) or today's (timestamp). */
static void check_lines(const char *log, int journal)
{
    int lines = 0;
    for (const char *p = log; *p; lines++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        int ts = nl - p > 24 && p[4] == '-' && p[7] == '-' && p[10] == 'T' && p[23] == 'Z';
        if (journal) {
            assert_true(p[0] == '<' && strchr("3467", p[1]) && p[2] == '>');
            assert_false(ts);
            assert_null(memchr(p, 'Z', 4)); /* nothing like a time after the prefix either */
            assert_false(p[3] >= '0' && p[3] <= '9');
        } else {
            assert_true(ts);
            assert_int_not_equal(p[0], '<');
        }
        p = nl + 1;
    }
    assert_true(lines >= 3);
}

/* The GW with no server: info (listening), warn (--insecure, refused), debug lines. */
static void run_gw(run *r, journal_mode mode)
{
    char server[32], listen[32];
    snprintf(server, sizeof server, "127.0.0.1:%u", tcp_free_port());
    snprintf(listen, sizeof listen, "127.0.0.1:%u", tcp_free_port());
    start(r,
          (const char *const[]){"cpns-gw", "--id", "gw-1", "--pnid", "pn-1", "--server", server,
                                "--listen", listen, "--insecure", "--log-level", "debug", NULL},
          mode);
}

static void test_journal_prefixes(void **state)
{
    (void)state;
    run r;
    run_gw(&r, JOURNAL_STDERR);
    assert_true(wait_for(&r, "<6>INFO  gw[gw-1]: connecting to the server again", 10000));
    int status;
    char *log = finish(&r, SIGTERM, &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(log, "<6>INFO  gw[gw-1]: listening for PNEs"));
    assert_non_null(strstr(log, "<4>WARN  gw[gw-1]: --insecure"));
    assert_non_null(strstr(log, "<4>WARN  gw[gw-1]: cannot connect to the server"));
    assert_non_null(strstr(log, "<7>DEBUG gw[gw-1]: connecting to the server at"));
    assert_non_null(strstr(log, "<6>INFO  gw[gw-1]: stopped"));
    check_lines(log, 1);
    free(log);
}

/* An error: the PNE port is taken, the GW exits 1 with an <3> line. */
static void test_journal_error(void **state)
{
    (void)state;
    uint16_t taken;
    int lfd = tcp_listen_any(&taken);
    char server[32], listen[32];
    snprintf(server, sizeof server, "127.0.0.1:%u", tcp_free_port());
    snprintf(listen, sizeof listen, "127.0.0.1:%u", taken);
    run r;
    start(&r,
          (const char *const[]){"cpns-gw", "--id", "gw-1", "--pnid", "pn-1", "--server", server,
                                "--listen", listen, "--insecure", NULL},
          JOURNAL_STDERR);
    int status;
    char *log = finish(&r, 0, &status);
    close(lfd);
    assert_int_equal(status, 1);
    assert_non_null(strstr(log, "<3>ERROR gw[gw-1]: "));
    free(log);
}

/* Unset, or naming another file: today's format. */
static void test_plain_format(void **state)
{
    (void)state;
    journal_mode modes[] = {JOURNAL_UNSET, JOURNAL_OTHER};
    for (size_t i = 0; i < 2; i++) {
        run r;
        run_gw(&r, modes[i]);
        assert_true(wait_for(&r, "INFO  gw[gw-1]: connecting to the server again", 10000));
        int status;
        char *log = finish(&r, SIGTERM, &status);
        assert_int_equal(status, 0);
        assert_null(strstr(log, "<6>"));
        assert_non_null(strstr(log, "Z WARN  gw[gw-1]: --insecure"));
        check_lines(log, 0);
        free(log);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_prefixes),
        cmocka_unit_test(test_journal_error),
        cmocka_unit_test(test_plain_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
