/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-pne with its key store in a SoftHSM2 token (issue #14 item 1), against
 * the real cpns-server and cpns-gw (tests/integration/cluster.h):
 * - a Group Key delivered end to end is stored sealed by the token, listed by
 *   `keys`, and a message sealed by it opens at a PNE with a file store; the
 *   PNE restarts without its key file (the EUK is in the token's keeping);
 * - a token removed, reset with another PIN, or full at delivery time: the
 *   PNE answers Return 3 with the reason in its log, nothing stored changes,
 *   and the server's retry stores the key once the token is back, without a
 *   restart;
 * - at start, a wrong PIN, a PIN file others can read, a missing token: a
 *   clear message and exit 2, 2, 1.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "softhsm.h"

#define LABEL "cpns-pne-it"
#define RETURN_STORAGE 3 /* PROTOCOL.md 3.2: secure storage failure */

static sh_env env;

typedef struct p11_pne {
    cl_pne n;
    const char *module;
    char *pin_file;
} p11_pne;

static void p11_start(harness *h, p11_pne *p, const cl_gw *g, bool with_key_file)
{
    if (!p->pin_file) {
        p->pin_file = h_fmt(h, "%s/pin", h->dir);
        h_write_file(p->pin_file, SH_PIN "\n", 0600);
    }
    char *args[20];
    size_t i = 0;
    args[i++] = "--id";
    args[i++] = (char *)p->n.PNEID;
    args[i++] = "--gw";
    args[i++] = g->listen;
    if (with_key_file) {
        args[i++] = "--key-file";
        args[i++] = p->n.key_file;
    }
    args[i++] = "--store";
    args[i++] = p->n.store;
    args[i++] = "--pkcs11-module";
    args[i++] = (char *)p->module;
    args[i++] = "--token-label";
    args[i++] = LABEL;
    args[i++] = "--pin-file";
    args[i++] = p->pin_file;
    args[i] = NULL;
    p->n.p = h_startv(h, h_fmt(h, "pne-%s-%d", p->n.PNEID, with_key_file), "cpns-pne", args);
}

/* `cpns-pne keys` on the token store: its output (free it), failing unless it exits 0. */
static char *p11_keys(harness *h, const p11_pne *p)
{
    h_out o =
        h_run(h, NULL, CL_CTL_MS, "cpns-pne", "keys", "--store", p->n.store, "--pkcs11-module",
              p->module, "--token-label", LABEL, "--pin-file", p->pin_file, NULL);
    if (o.status != 0)
        fail_msg("cpns-pne keys: exit %d: %s", o.status, o.err);
    char *out = h_fmt(h, "%s", o.out);
    h_out_free(&o);
    return out;
}

/* The line of SGID in `keys` names KeyVersion 1 and the server's fingerprint. */
static void assert_stored(harness *h, const p11_pne *p, const cl_server *s, const char *SGID)
{
    json_t *sg = cl_sg_json(h, s, SGID);
    const char *fp = json_string_value(json_object_get(sg, "key_fingerprint"));
    assert_non_null(fp);
    char *out = p11_keys(h, p);
    char *line = strstr(out, SGID);
    if (!line || !strstr(line, fp))
        fail_msg("%s with fingerprint %s not in:\n%s", SGID, fp, out);
    json_decref(sg);
}

static json_int_t member_return(harness *h, const cl_server *s, const char *SGID, const char *PNEID)
{
    json_t *sg = cl_sg_json(h, s, SGID);
    json_t *r = json_object_get(cl_member(sg, PNEID), "return");
    json_int_t v = json_is_integer(r) ? json_integer_value(r) : -1;
    json_decref(sg);
    return v;
}

static void wait_return(harness *h, const cl_server *s, const char *SGID, const char *PNEID,
                        json_int_t want)
{
    json_int_t r = -1;
    for (int i = 0; i < 600 && r != want; i++) {
        r = member_return(h, s, SGID, PNEID);
        if (r != want)
            nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    assert_int_equal(r, want);
}

/* 7.8.6.1-2 with the keys in a token: delivered, listed, usable, and the key file not needed. */
static void test_pne_pkcs11_delivery_end_to_end(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, NULL);
    p11_pne a = {.module = env.module};
    cl_pne b = {0};
    cl_pne_provision(h, &s, &a.n, "pne-token");
    cl_pne_provision(h, &s, &b, "pne-file");
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    p11_start(h, &a, &g, true);
    cl_pne_start(h, &b, &g);
    cl_wait_registered(h, &s, "pne-token", 30000);
    cl_wait_registered(h, &s, "pne-file", 30000);
    assert_true(h_file_contains(a.n.p->log, "sealed by PKCS#11 token 'cpns-pne-it'"));

    h_out o = cl_ctl(h, &s, "sg", "create", "sg-home", "pne-token", "pne-file", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, "sg-home", 60, NULL), 0);
    assert_stored(h, &a, &s, "sg-home");

    /* the token's Group Key seals what the file store's copy opens */
    o = h_run(h, "hello from the token\n", CL_CTL_MS, "cpns-pne", "seal", "--sg", "sg-home",
              "--store", a.n.store, "--pkcs11-module", a.module, "--token-label", LABEL,
              "--pin-file", a.pin_file, NULL);
    assert_int_equal(o.status, 0);
    h_out o2 = h_run(h, o.out, CL_CTL_MS, "cpns-pne", "open", "--sg", "sg-home", "--store", b.store,
                     "--key-file", b.key_file, NULL);
    assert_int_equal(o2.status, 0);
    assert_string_equal(o2.out, "hello from the token\n");
    h_out_free(&o);
    h_out_free(&o2);

    /* restarted without --key-file: the EUK comes from the store, decrypted by the token */
    cl_stop_clean(a.n.p);
    p11_start(h, &a, &g, false);
    cl_wait_registered(h, &s, "pne-token", 30000);
    o = cl_ctl(h, &s, "sg", "rekey", "sg-home", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, "sg-home", 60, NULL), 0);
    char *keys = p11_keys(h, &a);
    assert_non_null(strstr(keys, "sg-home"));
    assert_non_null(strstr(strstr(keys, "sg-home"), " 2 ")); /* KeyVersion 2, 1 as previous */

    cl_stop_clean(a.n.p);
    cl_stop_clean(b.p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

/* 7.8.6.1-2: a token that fails at delivery time → Return 3, then the retry stores the key. */
static void test_pne_pkcs11_token_faults_return_3_then_retry(void **state)
{
    harness *h = *state;
    static const struct {
        const char *fault, *SGID, *logged;
    } faults[] = {
        {"removed", "sg-removed", "no token labelled 'cpns-pne-it' is present"},
        {"pin", "sg-pin", "C_Login: CKR_PIN_INCORRECT (the PIN is wrong)"},
        {"full", "sg-full", "CKR_DEVICE_MEMORY (the token is full)"},
    };
    cl_server s = {0};
    cl_server_start(h, &s, false, "--delivery-timeout", "1", "--max-attempts", "100", NULL);
    p11_pne a = {.module = env.fault_module};
    cl_pne_provision(h, &s, &a.n, "pne-fault");
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    p11_start(h, &a, &g, true);
    cl_wait_registered(h, &s, "pne-fault", 30000);

    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        sh_fault(&env, faults[i].fault);
        h_out o = cl_ctl(h, &s, "sg", "create", faults[i].SGID, "pne-fault", NULL);
        assert_int_equal(o.status, 0);
        h_out_free(&o);
        wait_return(h, &s, faults[i].SGID, "pne-fault", RETURN_STORAGE);
        if (!h_file_contains(a.n.p->log, faults[i].logged))
            fail_msg("the PNE's log does not say '%s'", faults[i].logged);
        /*
         * Return 3 is not final: the member waits for its retry ("pending"),
         * or the retry already left (1 s later: "sent" on a slow machine), never
         * "failed".
         */
        json_t *sg = cl_sg_json(h, &s, faults[i].SGID);
        const char *st = json_string_value(json_object_get(cl_member(sg, "pne-fault"), "state"));
        bool retried = st && (strcmp(st, "pending") == 0 || strcmp(st, "sent") == 0);
        char seen[32];
        snprintf(seen, sizeof seen, "%s", st ? st : "(none)");
        json_decref(sg);
        if (!retried)
            fail_msg("after Return 3 the member is '%s', not pending or sent", seen);

        /* the token is back: the server's retry is stored, the PNE was not restarted */
        sh_fault(&env, "");
        assert_int_equal(cl_sg_wait(h, &s, faults[i].SGID, 60, NULL), 0);
        assert_true(h_running(a.n.p));
        assert_stored(h, &a, &s, faults[i].SGID);
    }
    /* nothing stored before was lost */
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        assert_stored(h, &a, &s, faults[i].SGID);

    cl_stop_clean(a.n.p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

/* At start: clear messages and the exit statuses of cpns-pne(8). */
static void test_pne_pkcs11_start_errors(void **state)
{
    harness *h = *state;
    char *store = h_fmt(h, "%s/store", h->dir);
    char *key = h_fmt(h, "%s/euk", h->dir);
    char *pin = h_fmt(h, "%s/pin", h->dir);
    char *bad_pin = h_fmt(h, "%s/bad-pin", h->dir);
    h_write_file(key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 0600);
    h_write_file(pin, SH_PIN "\n", 0600);
    h_write_file(bad_pin, "0000\n", 0600);
    const char *M = env.module;
#define START(pinfile, label)                                                                      \
    h_run(h, NULL, CL_CTL_MS, "cpns-pne", "--id", "pne-x", "--gw", "127.0.0.1:9", "--key-file",    \
          key, "--store", store, "--pkcs11-module", M, "--token-label", label, "--pin-file",       \
          pinfile, NULL)
    h_out o = START(bad_pin, LABEL);
    assert_int_equal(o.status, 2);
    assert_non_null(strstr(o.err, "C_Login: CKR_PIN_INCORRECT (the PIN is wrong)"));
    h_out_free(&o);
    o = START(pin, "no-such-token");
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "no token labelled 'no-such-token' is present"));
    h_out_free(&o);
    assert_int_equal(chmod(pin, 0644), 0);
    o = START(pin, LABEL);
    assert_int_equal(o.status, 2);
    assert_non_null(strstr(o.err, "--pin-file"));
    h_out_free(&o);
    o = h_run(h, NULL, CL_CTL_MS, "cpns-pne", "keys", "--store", store, "--pkcs11-module", M,
              "--token-label", LABEL, NULL);
    assert_int_equal(o.status, 2);
    assert_non_null(strstr(o.err, "--pkcs11-module needs --token-label LABEL and --pin-file"));
    h_out_free(&o);
#undef START
    h_passed(h);
}

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (!skip)
        skip = sh_present();
    if (skip)
        return skip;
    if (sh_setup(&env) != 0 || sh_init_token(&env, LABEL) != 0) {
        fprintf(stderr, "cannot make a SoftHSM2 token in %s\n", env.root);
        sh_cleanup(&env);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pne_pkcs11_delivery_end_to_end, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_pne_pkcs11_token_faults_return_3_then_retry, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_pne_pkcs11_start_errors, h_setup, h_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    sh_cleanup(&env);
    return failed;
}
