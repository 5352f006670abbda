/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration files and SIGHUP (issue #13 items 4 and 5): the example
 * files of packaging/etc load as they are; a file's values are used and the
 * command line overrides them; a bad file is refused with FILE:LINE (exit
 * 2); SIGHUP makes each daemon re-read its file (a new log level takes
 * effect, a bad file is refused and the daemon keeps running) and never
 * stops it; --version names the program, libcpns, the protocol and the
 * licence.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progtest.h"

static char dir[256];

static void has(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("'%s' not in: %s", needle, text);
}

static void write_text(const char *path, const char *text)
{
    prog_write_file(path, text, strlen(text), 0600);
}

static void test_version(void **state)
{
    (void)state;
    static const char *const progs[] = {"cpns-server", "cpns-gw", "cpns-pne", "cpnsctl"};
    for (size_t i = 0; i < 4; i++) {
        prog_result r;
        prog_run((const char *const[]){progs[i], "--version", NULL}, NULL, 0, &r);
        assert_int_equal(r.status, 0);
        char want[160];
        snprintf(want, sizeof want, "%s %s (libcpns %s, CPNS %s), Apache-2.0\n", progs[i],
                 CPNS_LIB_VERSION, cpns_version(), CPNS_VERSION);
        assert_string_equal(r.out, want);
        prog_result_free(&r);
    }
}

/* Every packaged example file passes --check-config as it is. */
static void test_examples_load(void **state)
{
    (void)state;
    const char *src = getenv("CPNS_SOURCE_DIR");
    assert_non_null(src);
    static const char *const progs[] = {"cpns-server", "cpns-gw", "cpns-pne"};
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/packaging/etc/%s.conf", src, progs[i]);
        prog_result r;
        prog_run((const char *const[]){progs[i], "--config", path, "--check-config", NULL}, NULL, 0,
                 &r);
        if (r.status != 0)
            fail_msg("%s --config %s --check-config: exit %d: %s", progs[i], path, r.status, r.err);
        has(r.out, "are valid");
        prog_result_free(&r);
    }
}

/* Runs prog --config path [extra] and expects exit 2 with want in the message. */
static void expect_refused(const char *prog, const char *path, const char *extra, const char *want)
{
    prog_result r;
    prog_run((const char *const[]){prog, "--config", path, extra, NULL}, NULL, 0, &r);
    if (r.status != 2)
        fail_msg("%s --config %s: exit %d, want 2 (stderr: %s)", prog, path, r.status, r.err);
    has(r.err, want);
    prog_result_free(&r);
}

static void test_bad_files(void **state)
{
    (void)state;
    char path[320], want[400];
    snprintf(path, sizeof path, "%s/bad.conf", dir);

    write_text(path, "# a comment\n\nid = pne-1\nno-such-option = 1\n");
    snprintf(want, sizeof want, "%s:4: unknown option 'no-such-option'", path);
    expect_refused("cpns-pne", path, NULL, want);

    write_text(path, "insecure\nmax-attempts = lots\n");
    snprintf(want, sizeof want, "%s:2: max-attempts 'lots': not a number of 1-1000", path);
    expect_refused("cpns-server", path, NULL, want);

    write_text(path, "log-level = loud\n");
    snprintf(want, sizeof want, "%s:1: log-level 'loud': not error, warn, info or debug", path);
    expect_refused("cpns-gw", path, NULL, want);

    write_text(path, "listen = 127.0.0.1:1\nlisten = 127.0.0.1:2\n");
    snprintf(want, sizeof want, "%s:2: 'listen' given twice (line 1)", path);
    expect_refused("cpns-gw", path, NULL, want);

    write_text(path, "insecure = maybe\n");
    snprintf(want, sizeof want, "%s:1: insecure 'maybe': not true or false", path);
    expect_refused("cpns-server", path, NULL, want);

    write_text(path, "config = other.conf\n");
    snprintf(want, sizeof want, "%s:1: 'config' is a command-line option only", path);
    expect_refused("cpns-pne", path, NULL, want);

    snprintf(path, sizeof path, "%s/missing.conf", dir);
    snprintf(want, sizeof want, "--config %s: No such file or directory", path);
    expect_refused("cpns-server", path, "--check-config", want);
}

/* A GW started from a file uses its values; the command line overrides them. */
static void test_file_and_override(void **state)
{
    (void)state;
    char path[320], text[512], listen_file[64], listen_argv[64], want[128];
    uint16_t p1 = tcp_free_port(), p2 = tcp_free_port(), srv = tcp_free_port();
    snprintf(path, sizeof path, "%s/gw.conf", dir);
    snprintf(listen_file, sizeof listen_file, "127.0.0.1:%u", p1);
    snprintf(listen_argv, sizeof listen_argv, "127.0.0.1:%u", p2);
    snprintf(text, sizeof text,
             "id = gw-c\npnid = pn-c\nserver = 127.0.0.1:%u\n  listen = %s  # not a comment\n"
             "insecure = true\nmax-per-addr = 5\nregister-timeout = 7\n",
             srv, listen_file);
    /* A '#' after a value is part of it: the listen line is refused, naming its line. */
    write_text(path, text);
    char want_bad[400];
    snprintf(want_bad, sizeof want_bad, "--listen '%s  # not a comment'", listen_file);
    expect_refused("cpns-gw", path, NULL, want_bad);

    snprintf(text, sizeof text,
             "# cpns-gw\nid = gw-c\npnid = pn-c\nserver = 127.0.0.1:%u\n  listen = %s\n"
             "insecure = true\nmax-per-addr = 5\nregister-timeout = 7\n",
             srv, listen_file);
    write_text(path, text);
    prog_daemon d;
    prog_spawn((const char *const[]){"cpns-gw", "--config", path, NULL}, &d);
    snprintf(want, sizeof want, "listening for PNEs on %s", listen_file);
    assert_true(prog_wait_log(&d, want, 1, 10000));
    /* max-per-addr given in the file applies to loopback too, as on the command line. */
    assert_true(prog_wait_log(&d, "at most 5 connections from one address; registered within 7 s",
                              1, 10000));
    assert_int_equal(prog_stop(&d, SIGTERM), 0);

    prog_spawn((const char *const[]){"cpns-gw", "--config", path, "--listen", listen_argv,
                                     "--register-timeout", "9", NULL},
               &d);
    snprintf(want, sizeof want, "listening for PNEs on %s", listen_argv);
    assert_true(prog_wait_log(&d, want, 1, 10000));
    assert_true(prog_wait_log(&d, "registered within 9 s", 1, 10000));
    assert_int_equal(prog_stop(&d, SIGTERM), 0);
}

#define PNE_CONF "id = pne-h\ngw = 127.0.0.1:%u\nkey-file = %s\nstore = %s\nlog-level = %s\n"

/*
 * A PNE whose GW is not there retries, logging "connecting to the GW" at
 * debug level only: after log-level = debug and SIGHUP those lines appear;
 * a bad file on the next SIGHUP is refused and the PNE keeps running.
 */
static void test_sighup_log_level(void **state)
{
    (void)state;
    char conf[320], key[320], store[320], text[1024];
    snprintf(conf, sizeof conf, "%s/pne.conf", dir);
    snprintf(key, sizeof key, "%s/pne.euk", dir);
    snprintf(store, sizeof store, "%s/pne-store", dir);
    uint8_t euk[CPNS_KEY_LEN] = {1, 2, 3};
    prog_write_key(key, euk, 0600);
    uint16_t gw = tcp_free_port();
    snprintf(text, sizeof text, PNE_CONF, gw, key, store, "info");
    write_text(conf, text);
    prog_daemon d;
    prog_spawn((const char *const[]){"cpns-pne", "--config", conf, NULL}, &d);
    assert_true(prog_wait_log(&d, "cannot connect to the GW", 1, 10000));

    snprintf(text, sizeof text, PNE_CONF, gw, key, store, "debug");
    write_text(conf, text);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    assert_true(prog_wait_log(&d, "SIGHUP: reloaded", 1, 10000));
    assert_true(prog_wait_log(&d, "changed log-level", 1, 10000));
    assert_true(prog_wait_log(&d, "DEBUG pne[pne-h]: connecting to the GW at", 1, 20000));

    /* A bad file: refused with its line, the PNE goes on. */
    write_text(conf, "id = pne-h\nlog-level = chatty\n");
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    assert_true(prog_wait_log(&d, "pne.conf:2: log-level 'chatty'", 1, 10000));
    assert_true(prog_wait_log(&d, "still running with the previous configuration", 1, 10000));
    /* A changed option that cannot change live is named, not applied. */
    char other[64];
    snprintf(other, sizeof other, "gw = 127.0.0.1:%u\n", tcp_free_port());
    snprintf(text, sizeof text, "id = pne-h\n%skey-file = %s\nstore = %s\nlog-level = debug\n",
             other, key, store);
    write_text(conf, text);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    assert_true(prog_wait_log(&d, "changed but kept until a restart: gw", 1, 10000));
    assert_int_equal(prog_stop(&d, SIGTERM), 0);
}

#define GW_CONF                                                                                    \
    "id = gw-h\npnid = pn-h\nserver = 127.0.0.1:%u\nlisten = 127.0.0.1:%u\ninsecure = true\n"      \
    "log-level = %s\n"

/*
 * The GW engine's own debug lines (one per PNE link and per forwarded frame)
 * follow a SIGHUP to log-level = debug, not only the daemon's: a PNE link
 * opened after the reload is logged at debug.
 */
static void test_sighup_gw_engine_debug(void **state)
{
    (void)state;
    char conf[320], text[512];
    snprintf(conf, sizeof conf, "%s/gw.conf", dir);
    uint16_t server = tcp_free_port(), listen = tcp_free_port();
    snprintf(text, sizeof text, GW_CONF, server, listen, "info");
    write_text(conf, text);
    prog_daemon g;
    prog_spawn((const char *const[]){"cpns-gw", "--config", conf, NULL}, &g);
    assert_true(prog_wait_log(&g, "listening for PNEs", 1, 10000));

    snprintf(text, sizeof text, GW_CONF, server, listen, "debug");
    write_text(conf, text);
    assert_int_equal(kill(g.pid, SIGHUP), 0);
    assert_true(prog_wait_log(&g, "changed log-level", 1, 10000));
    int fd = tcp_connect(listen, 10000);
    assert_true(fd >= 0);
    assert_true(prog_wait_log(&g, "]: link 1 open", 1, 10000));
    close(fd);
    assert_int_equal(prog_stop(&g, SIGTERM), 0);
}

/* SIGHUP to a running server and GW (no --config): they reload and keep running. */
static void test_sighup_server_gw(void **state)
{
    (void)state;
    char db[320], mk[320], listen[64], admin[64], gwlisten[64];
    snprintf(db, sizeof db, "%s/s.db", dir);
    snprintf(mk, sizeof mk, "%s/master.key", dir);
    uint16_t sp = tcp_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%u", sp);
    snprintf(admin, sizeof admin, "127.0.0.1:%u", tcp_free_port());
    snprintf(gwlisten, sizeof gwlisten, "127.0.0.1:%u", tcp_free_port());
    prog_daemon s, g;
    prog_spawn((const char *const[]){"cpns-server", "--db", db, "--master-key", mk, "--insecure",
                                     "--listen", listen, "--admin", admin, NULL},
               &s);
    assert_true(prog_wait_log(&s, "listening for GWs", 1, 15000));
    prog_spawn((const char *const[]){"cpns-gw", "--id", "gw-h", "--pnid", "pn-h", "--server",
                                     listen, "--listen", gwlisten, "--insecure", NULL},
               &g);
    assert_true(prog_wait_log(&g, "listening for PNEs", 1, 10000));
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(kill(s.pid, SIGHUP), 0);
        assert_int_equal(kill(g.pid, SIGHUP), 0);
        assert_true(prog_wait_log(&s, "SIGHUP: reloaded the command line", i, 10000));
        assert_true(prog_wait_log(&g, "SIGHUP: reloaded the command line", i, 10000));
    }
    assert_int_equal(prog_stop(&g, SIGTERM), 0);
    assert_int_equal(prog_stop(&s, SIGTERM), 0);
}

int main(void)
{
    prog_tmpdir(dir, sizeof dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),          cmocka_unit_test(test_examples_load),
        cmocka_unit_test(test_bad_files),        cmocka_unit_test(test_file_and_override),
        cmocka_unit_test(test_sighup_log_level), cmocka_unit_test(test_sighup_gw_engine_debug),
        cmocka_unit_test(test_sighup_server_gw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
