/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-server on PostgreSQL, active/standby (issue #11 item 3): two real
 * cpns-server processes on one throwaway PostgreSQL (tests/support/pg.h).
 *
 * - one holds the lease and serves; the other is a standby: no GW listener,
 *   /healthz says so and names the active one, and its admin API forwards
 *   /v1 calls (cpnsctl works against either);
 * - SIGTERM hands the lease over at once (the TTL here is 60 s, so a takeover
 *   within the wait proves the release, not the expiry);
 * - kill -9: the standby takes over once the lease expired, loads what the
 *   dead one committed and listens for GWs;
 * - a paused active instance (SIGSTOP) that wakes up after a standby took
 *   over stops (exit 3) and has written nothing after losing the lease.
 *
 * Every wait is on a condition (a log line, an answer), bounded generously.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg.h"
#include "progtest.h"

#define WAIT_MS 60000

typedef struct fx {
    char dir[256];
    char uri[512];
    char mk[320];
} fx;

typedef struct inst {
    prog_daemon d;
    uint16_t gw_port, admin_port;
    char listen[32], admin[32], url[64], id[16];
} inst;

static int setup(void **state)
{
    fx *f = test_calloc(1, sizeof *f);
    prog_tmpdir(f->dir, sizeof f->dir);
    assert_int_equal(test_pg_create_db(&test_pg_group, f->uri, sizeof f->uri), 0);
    snprintf(f->mk, sizeof f->mk, "%s/master.key", f->dir);
    uint8_t key[CPNS_KEY_LEN];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    prog_write_key(f->mk, key, 0600);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    test_free(f);
    return 0;
}

static void start(const fx *f, inst *in, const char *id, const char *ttl)
{
    memset(in, 0, sizeof *in);
    in->gw_port = tcp_free_port();
    in->admin_port = tcp_free_port();
    snprintf(in->listen, sizeof in->listen, "127.0.0.1:%u", in->gw_port);
    snprintf(in->admin, sizeof in->admin, "127.0.0.1:%u", in->admin_port);
    snprintf(in->url, sizeof in->url, "http://%s", in->admin);
    snprintf(in->id, sizeof in->id, "%s", id);
    const char *argv[] = {
        "cpns-server", "--db",     f->uri,    "--master-key", f->mk,           "--insecure",
        "--listen",    in->listen, "--admin", in->admin,      "--instance-id", in->id,
        "--lease-ttl", ttl,        NULL};
    prog_spawn(argv, &in->d);
}

/* GET path from an admin API: the whole answer (status line, headers, body), or NULL. */
static char *http_get(uint16_t port, const char *path)
{
    int fd = tcp_connect(port, 5000);
    if (fd < 0)
        return NULL;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    ssize_t got;
    while ((got = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)got;
    close(fd);
    buf[len] = '\0';
    return buf;
}

static int has(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

/* Runs cpnsctl against an instance; its stdout (free it), failing the test unless it exits 0. */
static char *ctl(const inst *in, const char *a, const char *b, const char *c)
{
    const char *argv[] = {"cpnsctl", "--server", in->url, "--json", a, b, c, NULL};
    prog_result r;
    prog_run(argv, NULL, 0, &r);
    if (r.status != 0)
        fail_msg("cpnsctl %s %s %s against %s: status %d: %s", a, b, c ? c : "", in->id, r.status,
                 r.err);
    char *out = strdup(r.out);
    prog_result_free(&r);
    return out;
}

static void wait_log(const inst *in, const char *needle)
{
    if (!prog_wait_log(&in->d, needle, 1, WAIT_MS)) {
        char *log = prog_log(&in->d);
        fail_msg("%s never logged '%s'; its log:\n%s", in->id, needle, log);
    }
}

/* inst-a, active and listening, then inst-b, a standby. */
static void start_pair(const fx *f, inst *a, inst *b, const char *ttl)
{
    start(f, a, "inst-a", ttl);
    wait_log(a, "listening for GWs");
    start(f, b, "inst-b", ttl);
    wait_log(b, "is a standby");
}

static void test_standby_waits_and_forwards(void **state)
{
    fx *f = *state;
    inst a, b;
    start(f, &a, "inst-a", "60");
    wait_log(&a, "instance inst-a holds the lease");
    wait_log(&a, "listening for GWs");
    start(f, &b, "inst-b", "60");
    wait_log(&b, "instance inst-b is a standby: inst-a holds the lease");

    char *h = http_get(b.admin_port, "/healthz");
    assert_true(has(h, "200 OK"));
    assert_true(has(h, "\"standby\""));
    assert_true(has(h, a.admin));
    free(h);
    h = http_get(a.admin_port, "/healthz");
    assert_true(has(h, "\"ok\""));
    free(h);
    h = http_get(b.admin_port, "/metrics");
    assert_true(has(h, "cpns_instance_active 0"));
    free(h);
    /* No GW listener on the standby. */
    assert_int_equal(tcp_connect(b.gw_port, 200), -1);

    /* Writes and reads through the standby reach the active instance. */
    free(ctl(&b, "pne", "add", "pne-1"));
    char *out = ctl(&a, "pne", "list", NULL);
    assert_true(has(out, "pne-1"));
    free(out);
    out = ctl(&b, "pne", "list", NULL);
    assert_true(has(out, "pne-1"));
    free(out);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM pne"), 1);

    assert_int_equal(prog_stop(&b.d, SIGTERM), 0);
    assert_int_equal(prog_stop(&a.d, SIGTERM), 0);
}

static void test_sigterm_hands_over_at_once(void **state)
{
    fx *f = *state;
    inst a, b;
    start_pair(f, &a, &b, "60");
    free(ctl(&a, "pne", "add", "pne-1"));
    assert_int_equal(prog_stop(&a.d, SIGTERM), 0);
    /* Well inside the 60 s TTL: only the release explains it. */
    wait_log(&b, "instance inst-b holds the lease");
    wait_log(&b, "listening for GWs");
    int fd = tcp_connect(b.gw_port, 5000);
    assert_true(fd >= 0);
    close(fd);
    char *out = ctl(&b, "pne", "list", NULL);
    assert_true(has(out, "pne-1"));
    free(out);
    assert_int_equal(prog_stop(&b.d, SIGTERM), 0);
}

static void test_kill9_standby_takes_over(void **state)
{
    fx *f = *state;
    inst a, b;
    start_pair(f, &a, &b, "2");
    free(ctl(&a, "pne", "add", "pne-1"));
    free(ctl(&a, "sg", "create", "sg-1"));
    int64_t t0 = mono_ms();
    kill(a.d.pid, SIGKILL);
    wait_log(&b, "instance inst-b holds the lease");
    wait_log(&b, "listening for GWs");
    printf("takeover after kill -9 with --lease-ttl 2: %lld ms\n", (long long)(mono_ms() - t0));
    char *h = http_get(b.admin_port, "/healthz");
    assert_true(has(h, "\"ok\""));
    free(h);
    char *out = ctl(&b, "sg", "show", "sg-1");
    assert_true(has(out, "sg-1"));
    free(out);
    /* The lease changed hands once. */
    assert_int_equal(test_pg_scalar(f->uri, "SELECT epoch FROM lease"), 2);
    /* Its Group Key was committed before the kill: the same one, not a new version. */
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM sg_key WHERE sgid='sg-1'"), 1);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT key_version FROM sg WHERE sgid='sg-1'"), 1);
    prog_stop(&a.d, SIGKILL);
    assert_int_equal(prog_stop(&b.d, SIGTERM), 0);
}

static void test_paused_active_is_fenced(void **state)
{
    fx *f = *state;
    inst a, b;
    start_pair(f, &a, &b, "2");
    free(ctl(&a, "pne", "add", "pne-1"));
    kill(a.d.pid, SIGSTOP);
    wait_log(&b, "instance inst-b holds the lease");
    free(ctl(&b, "pne", "add", "pne-2"));
    kill(a.d.pid, SIGCONT);
    /* It finds out at its next renewal (or commit) and stops without writing. */
    wait_log(&a, "instance inst-a stops serving");
    /* No signal: one arriving while it exits would kill it (its handlers are gone by then). */
    assert_int_equal(prog_wait_exit(&a.d, WAIT_MS), 3);
    char *out = ctl(&b, "pne", "list", NULL);
    assert_true(has(out, "pne-1") && has(out, "pne-2"));
    free(out);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM pne"), 2);
    assert_int_equal(prog_stop(&b.d, SIGTERM), 0);
}

/* Two processes with one --instance-id: the second one waits, it does not serve beside. */
static void test_same_instance_id_waits(void **state)
{
    fx *f = *state;
    inst a, a2;
    start(f, &a, "inst-a", "60");
    wait_log(&a, "listening for GWs");
    start(f, &a2, "inst-a", "60");
    wait_log(&a2, "instance inst-a is a standby: inst-a holds the lease");
    assert_int_equal(tcp_connect(a2.gw_port, 200), -1);
    assert_int_equal(prog_stop(&a2.d, SIGTERM), 0);
    assert_int_equal(prog_stop(&a.d, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_standby_waits_and_forwards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_hands_over_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_standby_takes_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_active_is_fenced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_instance_id_waits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
