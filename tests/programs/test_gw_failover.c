/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-gw with a list of servers (issue #11, SCALEOUT.md section 4): real
 * cpns-server, cpns-gw and cpns-pne processes on loopback through the
 * integration harness (cluster.h).
 *
 * The GW keeps one uplink; when it fails it moves to the next server of the
 * list at once, and the backoff only paces whole passes that all failed. The
 * tests read that from the GW's log ("moving to the next server", "all N
 * servers failed: connecting to the server again in"), never from timings:
 * - a live standby is reached without a backoff after the active one dies,
 *   and the PNEs behind the GW get their keys from it;
 * - an entry that never answers (session timeout) and one that refuses are
 *   skipped on the way to a live server, with no backoff;
 * - with every server down the GW backs off between passes, and recovers
 *   when one comes back (with its backoff reset);
 * - a bad list is refused with exit 2, naming the bad entry.
 *
 * The two "servers" of a standby pair are two cpns-server processes with
 * their own SQLite databases, each provisioned with the same PNE and key:
 * what a shared PostgreSQL gives the real pair.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"

#define WAIT_MS 30000
/* The GW's SESSION_TIMEOUT_MS (15 s) for a server that never answers, and slack. */
#define SILENT_WAIT_MS 45000

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* How many times needle occurs in the file at path. */
static int log_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0;
    char line[4096];
    while (fgets(line, sizeof line, f))
        for (const char *p = line; (p = strstr(p, needle)) != NULL; p += strlen(needle))
            n++;
    fclose(f);
    return n;
}

/* Waits until the log at path holds needle `count` times; fails the test after timeout_ms. */
static void wait_log(const char *path, const char *needle, int count, int timeout_ms)
{
    for (int waited = 0; log_count(path, needle) < count; waited += 50) {
        if (waited >= timeout_ms)
            fail_msg("%s: '%s' not logged %d time(s) within %d ms", path, needle, count,
                     timeout_ms);
        sleep_ms(50);
    }
}

/* The offset of needle's first occurrence in the file at path, or -1. */
static long log_offset(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long at = -1, base = 0;
    char line[4096];
    while (at < 0 && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, needle);
        if (p)
            at = base + (long)(p - line);
        base += (long)strlen(line);
    }
    fclose(f);
    return at;
}

/* The line holding needle's nth occurrence (from 1) in the file at path, in buf; false if none. */
static bool log_nth_line(const char *path, const char *needle, int nth, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool found = false;
    char line[4096];
    while (!found && fgets(line, sizeof line, f))
        for (const char *p = line; !found && (p = strstr(p, needle)) != NULL; p += strlen(needle))
            if (--nth == 0) {
                snprintf(buf, len, "%s", line);
                found = true;
            }
    fclose(f);
    return found;
}

/* A socket bound to a free loopback port; not inherited by the programs the test starts. */
static int loopback_socket(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/*
 * A port that refuses connections, like a standby server (it does not listen
 * for GWs): bound and not listening, so that no other socket takes it (not
 * even the GW's own connection, which could otherwise connect to itself)
 * until the test closes it to start a server there.
 */
static int refusing_port(uint16_t *port)
{
    return loopback_socket(port);
}

/* A server that accepts TCP (the kernel's backlog) and never answers. */
static int silent_port(uint16_t *port)
{
    int fd = loopback_socket(port);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

/*
 * Starts cpns-server `name` listening for GWs on port (its own database and
 * master key in the test directory; admin API on a free port) and waits for
 * /healthz. s can then be used with cl_ctl.
 */
static void server_on(harness *h, cl_server *s, const char *name, uint16_t port, bool tls)
{
    s->tls = tls;
    s->listen_port = port;
    do
        s->admin_port = h_free_port();
    while (s->admin_port == port);
    s->listen = h_fmt(h, "127.0.0.1:%u", (unsigned)port);
    s->admin = h_fmt(h, "127.0.0.1:%u", (unsigned)s->admin_port);
    s->url = h_fmt(h, "http://%s", s->admin);
    s->db = h_path(h, h_fmt(h, "%s.db", name));
    s->master_key = h_path(h, h_fmt(h, "%s.master.key", name));
    if (tls) {
        char *pki = h_path(h, "pki");
        s->p = h_start(h, name, "cpns-server", "--listen", s->listen, "--admin", s->admin, "--db",
                       s->db, "--master-key", s->master_key, "--tls-cert",
                       h_fmt(h, "%s/server.crt", pki), "--tls-key", h_fmt(h, "%s/server.key", pki),
                       "--tls-ca", h_fmt(h, "%s/ca.crt", pki), NULL);
    } else {
        s->p = h_start(h, name, "cpns-server", "--listen", s->listen, "--admin", s->admin, "--db",
                       s->db, "--master-key", s->master_key, "--insecure", NULL);
    }
    h_wait_http_ok(h, s->p, s->admin_port, "/healthz", CL_START_MS);
}

/* Starts cpns-gw gw-1 for pn-1 with --server arguments `servers` (NULL-terminated pairs). */
static void gw_on(harness *h, cl_gw *g, bool tls, const char *const *server_args)
{
    g->PNGWID = "gw-1";
    g->PNID = "pn-1";
    g->port = h_free_port();
    g->listen = h_fmt(h, "127.0.0.1:%u", (unsigned)g->port);
    char *args[32];
    size_t n = 0;
    const char *fixed[] = {"--id", g->PNGWID, "--pnid", g->PNID, "--listen", g->listen};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        args[n++] = (char *)fixed[i];
    for (size_t i = 0; server_args[i]; i++)
        args[n++] = (char *)server_args[i];
    if (tls) {
        char *pki = h_path(h, "pki");
        args[n++] = "--tls-cert";
        args[n++] = h_fmt(h, "%s/gw-1.crt", pki);
        args[n++] = "--tls-key";
        args[n++] = h_fmt(h, "%s/gw-1.key", pki);
        args[n++] = "--tls-ca";
        args[n++] = h_fmt(h, "%s/ca.crt", pki);
    } else {
        args[n++] = "--insecure";
    }
    args[n] = NULL;
    g->p = h_startv(h, "gw", "cpns-gw", args);
    h_wait_port(h, g->p, g->port, CL_START_MS);
}

static void sg_create(harness *h, const cl_server *s, const char *SGID, const char *PNEID)
{
    h_out o = cl_ctl(h, s, "sg", "create", SGID, PNEID, NULL);
    if (o.status != 0)
        fail_msg("sg create %s on %s: exit %d: %s", SGID, s->url, o.status, o.err);
    h_out_free(&o);
}

/* Copies the file at from to to (mode 0600) if from exists. */
static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return;
    FILE *out = fopen(to, "wb");
    assert_non_null(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(to, 0600), 0);
}

/*
 * (1) The active server dies with a live standby next in the list: the GW
 * reaches it at once (no backoff logged), registers, re-announces its PNE,
 * and a key created there is delivered. TLS, as in production.
 *
 * The standby stands for one on the same database: its SQLite file is a copy
 * of the active one's taken while that was stopped, after the PNE registered
 * through the GW. The PNE does not register again after the failover, so the
 * standby learns where it is only from the GW's re-announcement.
 */
static void test_active_dies_standby_reached_without_backoff(void **state)
{
    harness *h = *state;
    cl_pki(h, "gw-1", NULL);
    uint16_t pb;
    int b_reserved = refusing_port(&pb);
    cl_server a = {0}, b = {0};
    uint16_t pa = h_free_port();
    while (pa == pb)
        pa = h_free_port();
    server_on(h, &a, "server-a", pa, true);
    cl_pne n = {0};
    cl_pne_provision(h, &a, &n, "pne-1");
    char *b_addr = h_fmt(h, "127.0.0.1:%u", (unsigned)pb);

    cl_gw g = {0};
    gw_on(h, &g, true,
          (const char *const[]){"--server", h_fmt(h, "%s,%s", a.listen, b_addr), NULL});
    cl_pne_start(h, &n, &g);
    char *on_a = h_fmt(h, "registered with the server at %s (1 of 2 listed)", a.listen);
    wait_log(g.p->log, on_a, 1, WAIT_MS);
    cl_wait_registered(h, &a, "pne-1", WAIT_MS);

    /* The standby's database: the active one's, with the PNE registered via gw-1. */
    cl_stop_clean(a.p);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++)
        copy_file(h_fmt(h, "%s%s", a.db, suffix[i]),
                  h_path(h, h_fmt(h, "server-b.db%s", suffix[i])));
    copy_file(a.master_key, h_path(h, "server-b.master.key"));
    h_restart(h, a.p);
    h_wait_http_ok(h, a.p, a.admin_port, "/healthz", CL_START_MS);
    wait_log(g.p->log, on_a, 2, WAIT_MS);
    close(b_reserved);
    server_on(h, &b, "server-b", pb, true);

    sg_create(h, &a, "sg-a", "pne-1");
    assert_int_equal(cl_sg_wait(h, &a, "sg-a", 60, NULL), 0);

    const char *backoff = "connecting to the server again in";
    int backoffs = log_count(g.p->log, backoff);
    char *lost = h_fmt(h, "server connection lost (%s)", a.listen);
    int losses = log_count(g.p->log, lost);
    int moves = log_count(g.p->log, h_fmt(h, "moving to the next server: %s (2 of 2)", b_addr));
    h_kill9(a.p);
    wait_log(g.p->log, h_fmt(h, "registered with the server at %s (2 of 2 listed)", b_addr), 1,
             WAIT_MS);
    assert_int_equal(log_count(g.p->log, lost), losses + 1);
    assert_int_equal(
        log_count(g.p->log, h_fmt(h, "moving to the next server: %s (2 of 2)", b_addr)), moves + 1);
    /* No pass over the list failed, so no backoff was waited. */
    assert_int_equal(log_count(g.p->log, backoff), backoffs);

    /* The GW re-announced its PNE to the standby: a key made there reaches it. */
    sg_create(h, &b, "sg-b", "pne-1");
    assert_int_equal(cl_sg_wait(h, &b, "sg-b", 60, NULL), 0);
    char fp[17];
    unsigned v = 0;
    cl_pne_fingerprint(h, &n, "sg-a", fp, &v);
    assert_int_equal(v, 1);
    cl_pne_fingerprint(h, &n, "sg-b", fp, &v);
    assert_int_equal(v, 1);
    assert_true(h_file_contains(b.p->log, "attached to gw-1"));

    cl_stop_clean(n.p);
    cl_stop_clean(g.p);
    cl_stop_clean(b.p);
    h_passed(h);
}

/*
 * (2) Entries that do not work are skipped on the way to a live server, in
 * list order and without backoff: one that accepts TCP and never answers
 * (after the GW's session timeout) and one that refuses (a standby). The
 * list is given as a repeated option and a comma-separated value at once.
 */
static void test_silent_and_refusing_entries_skipped(void **state)
{
    harness *h = *state;
    uint16_t ps, pr;
    int silent = silent_port(&ps);
    int refusing = refusing_port(&pr);
    cl_server a = {0};
    uint16_t pa = h_free_port();
    while (pa == ps || pa == pr)
        pa = h_free_port();
    server_on(h, &a, "server-a", pa, false);
    char *s_addr = h_fmt(h, "127.0.0.1:%u", (unsigned)ps);
    char *r_addr = h_fmt(h, "127.0.0.1:%u", (unsigned)pr);

    cl_gw g = {0};
    gw_on(h, &g, false,
          (const char *const[]){"--server", s_addr, "--server", h_fmt(h, "%s,%s", r_addr, a.listen),
                                NULL});
    wait_log(g.p->log, h_fmt(h, "servers %s,%s,%s (3, tried in turn)", s_addr, r_addr, a.listen), 1,
             WAIT_MS);
    wait_log(g.p->log, h_fmt(h, "registered with the server at %s (3 of 3 listed)", a.listen), 1,
             SILENT_WAIT_MS);
    const char *steps[] = {
        h_fmt(h, "connected to the server at %s", s_addr),
        h_fmt(h, "not registered with the server at %s after", s_addr),
        h_fmt(h, "moving to the next server: %s (2 of 3)", r_addr),
        h_fmt(h, "cannot connect to the server at %s", r_addr),
        h_fmt(h, "moving to the next server: %s (3 of 3)", a.listen),
        h_fmt(h, "registered with the server at %s", a.listen),
    };
    long prev = -1;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        long at = log_offset(g.p->log, steps[i]);
        if (at <= prev)
            fail_msg("'%s' not logged after step %zu", steps[i], i);
        prev = at;
    }
    assert_int_equal(log_count(g.p->log, "connecting to the server again in"), 0);

    cl_stop_clean(g.p);
    cl_stop_clean(a.p);
    close(silent);
    close(refusing);
    h_passed(h);
}

/*
 * (3) Every listed server down: the GW tries each in turn, then backs off
 * before the next pass (not hammering a dead group). When one comes back the
 * GW registers with it; when that one dies again the backoff starts over from
 * its minimum, after one more pass.
 */
static void test_all_down_backoff_then_recovery(void **state)
{
    harness *h = *state;
    uint16_t p1, p2;
    int r1 = refusing_port(&p1);
    int r2 = refusing_port(&p2);
    char *a1 = h_fmt(h, "127.0.0.1:%u", (unsigned)p1);
    char *a2 = h_fmt(h, "127.0.0.1:%u", (unsigned)p2);

    cl_gw g = {0};
    gw_on(h, &g, false, (const char *const[]){"--server", h_fmt(h, "%s,%s", a1, a2), NULL});
    const char *backoff = "all 2 servers failed: connecting to the server again in";
    wait_log(g.p->log, backoff, 2, WAIT_MS);
    /* Each pass tries both, in order, before its backoff. */
    long refused1 = log_offset(g.p->log, h_fmt(h, "cannot connect to the server at %s", a1));
    long moved = log_offset(g.p->log, h_fmt(h, "moving to the next server: %s (2 of 2)", a2));
    long refused2 = log_offset(g.p->log, h_fmt(h, "cannot connect to the server at %s", a2));
    long first_backoff = log_offset(g.p->log, backoff);
    assert_true(refused1 >= 0 && refused1 < moved && moved < refused2 && refused2 < first_backoff);
    assert_true(log_count(g.p->log, h_fmt(h, " s, at %s (1 of 2)", a1)) >= 2);

    /* The second comes back: the GW registers with it within a backoff or two. */
    close(r2);
    cl_server s = {0};
    server_on(h, &s, "server-2", p2, false);
    wait_log(g.p->log, h_fmt(h, "registered with the server at %s (2 of 2 listed)", a2), 1,
             WAIT_MS);

    /* It dies: the first is tried at once, then the backoff restarts at 0.5 s (minus jitter). */
    int before = log_count(g.p->log, backoff);
    h_kill9(s.p);
    wait_log(g.p->log, backoff, before + 1, WAIT_MS);
    assert_int_equal(log_count(g.p->log, h_fmt(h, "moving to the next server: %s (1 of 2)", a1)),
                     1);
    char line[4096];
    assert_true(log_nth_line(g.p->log, backoff, before + 1, line, sizeof line));
    if (!strstr(line, "again in 0."))
        fail_msg("the backoff did not start over after the registration: %s", line);

    cl_stop_clean(g.p);
    close(r1);
    h_passed(h);
}

/* (4) A bad --server list is refused before anything starts: exit 2, naming the bad entry. */
static void test_bad_lists_exit_2(void **state)
{
    harness *h = *state;
    struct {
        const char *servers[4];
        const char *named;
    } cases[] = {
        {{"127.0.0.1:7460,nope"}, "entry 'nope' is not HOST:PORT"},
        {{"127.0.0.1:7460,127.0.0.1:0"}, "entry '127.0.0.1:0'"},
        {{"127.0.0.1:7460,127.0.0.1:70000"}, "entry '127.0.0.1:70000'"},
        {{"127.0.0.1:7460,"}, "an empty entry"},
        {{",127.0.0.1:7460"}, "an empty entry"},
        {{"127.0.0.1:7460,,127.0.0.1:7461"}, "an empty entry"},
        {{"127.0.0.1:7460, 127.0.0.1:7461"}, "entry ' 127.0.0.1:7461'"},
        {{"[::1]:7460,[::1]"}, "entry '[::1]'"},
        {{"127.0.0.1:7460", "bad:port"}, "--server 'bad:port': not HOST:PORT"},
        {{"127.0.0.1:7460", "127.0.0.1:7461,127.0.0.1:7460"}, "'127.0.0.1:7460' is listed twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *args[16] = {"--id", "gw-1", "--pnid", "pn-1", "--insecure"};
        size_t n = 5;
        for (size_t j = 0; j < 4 && cases[i].servers[j]; j++) {
            args[n++] = "--server";
            args[n++] = (char *)cases[i].servers[j];
        }
        args[n] = NULL;
        h_out o = h_runv(h, NULL, 10000, "cpns-gw", args);
        if (o.status != 2 || !strstr(o.err, cases[i].named))
            fail_msg("case %zu: status %d, stderr '%s' (wanted 2 naming \"%s\")", i, o.status,
                     o.err, cases[i].named);
        h_out_free(&o);
    }

    /* Good lists (IPv6 in brackets, repeated option) pass: the next error is --listen's. */
    h_out o = h_run(h, NULL, 10000, "cpns-gw", "--id", "gw-1", "--pnid", "pn-1", "--insecure",
                    "--server", "[::1]:7460,127.0.0.1:7460", "--server", "localhost:7461",
                    "--listen", "0.0.0.0:0", NULL);
    assert_int_equal(o.status, 2);
    assert_null(strstr(o.err, "--server"));
    assert_non_null(strstr(o.err, "--listen '0.0.0.0:0'"));
    h_out_free(&o);

    o = h_run(h, NULL, 10000, "cpns-gw", "--help", NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "--server HOST:PORT[,HOST:PORT...]"));
    h_out_free(&o);
    h_passed(h);
}

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_lists_exit_2, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_active_dies_standby_reached_without_backoff, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_silent_and_refusing_entries_skipped, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_all_down_backoff_then_recovery, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
