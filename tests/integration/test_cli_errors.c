/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The command-line contract of DESIGN.md section 4 for every program: a bad
 * option or a missing one is exit status 2 with a message, and so is a key
 * file (master key, EUK, TLS private key) that group or others can read.
 * --help and --version succeed.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

#define RUN_MS 10000 /* a refusal is immediate; a program that starts instead is killed */

static const char *const daemons[] = {"cpns-server", "cpns-gw", "cpns-pne", "cpnsctl", NULL};

/* Runs prog with the NULL-terminated args and expects exit 2 and a message. */
static void expect_usage(harness *h, const char *prog, ...)
{
    char *args[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, prog);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && n < 31)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    h_out o = h_runv(h, NULL, RUN_MS, prog, args);
    if (o.status != 2)
        fail_msg("%s %s ...: exit %d, want 2 (stderr: %s)", prog, n ? args[0] : "", o.status,
                 o.err);
    if (!*o.err)
        fail_msg("%s %s ...: exit 2 without a message on stderr", prog, n ? args[0] : "");
    h_out_free(&o);
}

/* Like expect_usage, and the message names the file. */
static void expect_refused_file(harness *h, const char *file, char *const *args, const char *prog)
{
    h_out o = h_runv(h, NULL, RUN_MS, prog, args);
    if (o.status != 2)
        fail_msg("%s with %s (mode 0644): exit %d, want 2 (stderr: %s)", prog, file, o.status,
                 o.err);
    if (!strstr(o.err, file))
        fail_msg("%s: the message does not name %s: %s", prog, file, o.err);
    h_out_free(&o);
}

static void test_help_version(void **state)
{
    harness *h = *state;
    for (const char *const *p = daemons; *p; p++) {
        h_out o = h_run(h, NULL, RUN_MS, *p, "--help", NULL);
        assert_int_equal(o.status, 0);
        assert_non_null(strstr(o.out, "Usage"));
        h_out_free(&o);
        o = h_run(h, NULL, RUN_MS, *p, "--version", NULL);
        assert_int_equal(o.status, 0);
        assert_true(strlen(o.out) > 0);
        h_out_free(&o);
    }
    h_passed(h);
}

static void test_bad_options(void **state)
{
    harness *h = *state;
    for (const char *const *p = daemons; *p; p++)
        expect_usage(h, *p, "--no-such-option", NULL);
    char *db = h_path(h, "s.db"), *mk = h_path(h, "master.key");

    expect_usage(h, "cpns-server", NULL);
    expect_usage(h, "cpns-server", "--listen", "127.0.0.1:x", "--admin", "127.0.0.1:0", "--db", db,
                 "--master-key", mk, "--insecure", NULL);
    expect_usage(h, "cpns-server", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--db", db,
                 "--master-key", mk, NULL); /* neither TLS nor --insecure */
    expect_usage(h, "cpns-server", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--db", db,
                 "--master-key", mk, "--insecure", "--max-attempts", "lots", NULL);
    expect_usage(h, "cpns-server", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--db", db,
                 "--master-key", mk, "--insecure", "--delivery-timeout", "-1", NULL);

    expect_usage(h, "cpns-gw", NULL);
    expect_usage(h, "cpns-gw", "--id", "bad id", "--pnid", "pn-1", "--server", "127.0.0.1:1",
                 "--listen", "127.0.0.1:0", "--insecure", NULL);
    expect_usage(h, "cpns-gw", "--id", "gw-1", "--pnid", "pn-1", "--server", "nowhere", "--listen",
                 "127.0.0.1:0", "--insecure", NULL);
    expect_usage(h, "cpns-gw", "--id", "gw-1", "--pnid", "pn-1", "--server", "127.0.0.1:1",
                 "--listen", "127.0.0.1:0", NULL); /* neither TLS nor --insecure */

    expect_usage(h, "cpns-pne", NULL);
    expect_usage(h, "cpns-pne", "keys", "--no-such-option", NULL);
    char *euk = h_path(h, "pne.key");
    h_write_file(euk, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 0600);
    expect_usage(h, "cpns-pne", "--id", "pne-1", "--gw", "127.0.0.1:99999", "--key-file", euk,
                 "--store", h_path(h, "st"), NULL);
    expect_usage(h, "cpns-pne", "--id", "pne-1", "--gw", "127.0.0.1:1", "--key-file",
                 h_path(h, "missing.key"), "--store", h_path(h, "st"), NULL);

    expect_usage(h, "cpnsctl", NULL);
    expect_usage(h, "cpnsctl", "frobnicate", NULL);
    expect_usage(h, "cpnsctl", "sg", NULL);
    expect_usage(h, "cpnsctl", "sg", "explode", "sg-1", NULL);
    expect_usage(h, "cpnsctl", "sg", "show", NULL);
    expect_usage(h, "cpnsctl", "sg", "add", "sg-1", NULL);
    expect_usage(h, "cpnsctl", "sg", "wait", "sg-1", "--timeout", "soon", NULL);
    expect_usage(h, "cpnsctl", "pne", "add", NULL);
    expect_usage(h, "cpnsctl", "pne", "add", "pne-1", "--key-out", NULL);
    expect_usage(h, "cpnsctl", "pne", "list", "extra", NULL);
    expect_usage(h, "cpnsctl", "--timeout", "0", "pne", "list", NULL);
    expect_usage(h, "cpnsctl", "--server", "ftp://127.0.0.1:1", "pne", "list", NULL);
    expect_usage(h, "cpnsctl", "--server", NULL);
    h_passed(h);
}

static void test_readable_key_files(void **state)
{
    harness *h = *state;
    char *pki = cl_pki(h, "gw-1", NULL);
    char *open_key = h_path(h, "open.key");
    h_write_file(open_key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 0644);
    char *tls_key = h_path(h, "open-tls.key");
    char *server_key = h_fmt(h, "%s/server.key", pki);
    char *gw_key = h_fmt(h, "%s/gw-1.key", pki);
    char *ca = h_fmt(h, "%s/ca.crt", pki);
    char *db = h_path(h, "s.db");
    char *listen = h_fmt(h, "127.0.0.1:%u", (unsigned)h_free_port());
    char *admin = h_fmt(h, "127.0.0.1:%u", (unsigned)h_free_port());

    /* Master key. */
    char *server_mk[] = {"--listen", listen,         "--admin", admin,        "--db",
                         db,         "--master-key", open_key,  "--insecure", NULL};
    expect_refused_file(h, open_key, server_mk, "cpns-server");

    /* EUK of a PNE, and of `cpns-pne keys` and `cpnsctl pne add --key-file`. */
    char *pne[] = {"--id",       "pne-1",  "--gw",    "127.0.0.1:1",
                   "--key-file", open_key, "--store", h_path(h, "pne.store"),
                   NULL};
    expect_refused_file(h, open_key, pne, "cpns-pne");
    char *keys[] = {"keys", "--store", h_path(h, "pne.store"), "--key-file", open_key, NULL};
    expect_refused_file(h, open_key, keys, "cpns-pne");
    char *ctl[] = {"--server", "http://127.0.0.1:1", "pne",    "add",
                   "pne-1",    "--key-file",         open_key, NULL};
    expect_refused_file(h, open_key, ctl, "cpnsctl");

    /* TLS private keys: a copy of the real one, readable by all. */
    h_out o = h_run(h, NULL, RUN_MS, "/bin/cp", server_key, tls_key, NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    o = h_run(h, NULL, RUN_MS, "/bin/chmod", "0644", tls_key, NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    char *server_tls[] = {"--listen",
                          listen,
                          "--admin",
                          admin,
                          "--db",
                          db,
                          "--master-key",
                          h_path(h, "master.key"),
                          "--tls-cert",
                          h_fmt(h, "%s/server.crt", pki),
                          "--tls-key",
                          tls_key,
                          "--tls-ca",
                          ca,
                          NULL};
    expect_refused_file(h, tls_key, server_tls, "cpns-server");
    char *gw_tls[] = {"--id",       "gw-1",
                      "--pnid",     "pn-1",
                      "--server",   listen,
                      "--listen",   h_fmt(h, "127.0.0.1:%u", (unsigned)h_free_port()),
                      "--tls-cert", h_fmt(h, "%s/gw-1.crt", pki),
                      "--tls-key",  tls_key,
                      "--tls-ca",   ca,
                      NULL};
    expect_refused_file(h, tls_key, gw_tls, "cpns-gw");

    /* The same programs start with the 0600 originals: the mode was the only fault. */
    h_proc *gw = h_start(h, "gw", "cpns-gw", "--id", "gw-1", "--pnid", "pn-1", "--server", listen,
                         "--listen", gw_tls[7], "--tls-cert", gw_tls[9], "--tls-key", gw_key,
                         "--tls-ca", ca, NULL);
    h_wait_port(h, gw, (uint16_t)atoi(strrchr(gw_tls[7], ':') + 1), CL_START_MS);
    cl_stop_clean(gw);
    h_passed(h);
}

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_help_version, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_readable_key_files, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
