/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A PNE whose Entity User Key differs from the one the server holds.
 *
 * Two ways for the keys to disagree. From the start (test_wrong_euk_refused):
 * the server gets key A with `pne add --key-file` and the PNE runs with key
 * B, so its registration Proof does not verify, the server answers Return 8,
 * the PNE is never routable and its member stays undelivered while the
 * correctly keyed member completes. After registration
 * (test_wrong_euk_return2_then_reprovision): the PNE registered with key A,
 * then the operator re-provisions the server with key B (`pne set-key`,
 * PUT /v1/pnes/PNEID); the Group Key then reaches the PNE wrapped with B, the
 * PNE answers Return 2 (PROTOCOL.md 3.2, 5.1) and the member is failed until
 * the PNE is re-provisioned with the key it really holds. A PNE the server
 * does not know at all gets Return 9.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cluster.h"

#define SGID "sg-1"

/* A key file holding b64 (base64 of 32 bytes and a newline), mode 0600. */
static char *make_key_file(harness *h, const char *name, const char *b64)
{
    char *path = h_path(h, name);
    h_write_file(path, b64, 0600);
    return path;
}

static void test_wrong_euk_refused(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, "--delivery-timeout", "1", NULL);

    cl_pne good = {0};
    cl_pne_provision(h, &s, &good, "pne-good");

    /* The server's copy of pne-bad's key (A) and the PNE's own (B). */
    char *key_a = make_key_file(h, "a.key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
    cl_pne bad = {.PNEID = "pne-bad"};
    bad.key_file = make_key_file(h, "b.key", "HxUOQ3yFk1BzcdWNGgwUzWZEuhdqWm1O0s7h2NYqZCw=\n");
    bad.store = h_path(h, "pne-bad.store");
    h_out o = cl_ctl(h, &s, "pne", "add", "pne-bad", "--key-file", key_a, NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);

    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    cl_pne_start(h, &good, &g);
    cl_pne_start(h, &bad, &g);
    cl_wait_registered(h, &s, "pne-good", 30000);

    o = cl_ctl(h, &s, "sg", "create", SGID, "pne-good", "pne-bad", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    cl_wait_delivered(h, &s, SGID, "pne-good", 30000);

    char *err = NULL;
    assert_int_equal(cl_sg_wait(h, &s, SGID, 3, &err), 1);
    /* The timeout message names the member that is missing, and only that one. */
    assert_non_null(strstr(err, "pne-bad"));
    assert_null(strstr(err, "pne-good"));

    json_t *sg = cl_sg_json(h, &s, SGID);
    assert_string_equal(json_string_value(json_object_get(sg, "state")), "distributing");
    const char *bad_state = json_string_value(json_object_get(cl_member(sg, "pne-bad"), "state"));
    assert_non_null(bad_state);
    assert_string_not_equal(bad_state, "delivered");
    assert_string_equal(json_string_value(json_object_get(cl_member(sg, "pne-good"), "state")),
                        "delivered");
    json_decref(sg);

    /* Never registered, and the PNE was told why (PROTOCOL.md 3.2, Return 8). */
    o = cl_ctl(h, &s, "--json", "pne", "list", NULL);
    assert_int_equal(o.status, 0);
    json_t *list = json_loads(o.out, 0, NULL);
    size_t i;
    json_t *p;
    int seen = 0;
    json_array_foreach(list, i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "pneid")), "pne-bad") == 0) {
            assert_false(json_is_true(json_object_get(p, "registered")));
            seen = 1;
        }
    }
    assert_true(seen);
    json_decref(list);
    h_out_free(&o);
    assert_true(h_file_contains(bad.p->log, "Return=8"));

    /* The PNE holds no key for the group. */
    o = h_run(h, NULL, CL_CTL_MS, "cpns-pne", "keys", "--store", bad.store, "--key-file",
              bad.key_file, NULL);
    assert_null(strstr(o.out, SGID));
    h_out_free(&o);

    cl_stop_clean(good.p);
    cl_stop_clean(bad.p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls the SG until PNEID's member is in state; that member (json_decref the SG). */
static json_t *wait_member_state(harness *h, const cl_server *s, const char *PNEID,
                                 const char *state, int timeout_ms, json_t **sg_out)
{
    for (int waited = 0;; waited += 100) {
        json_t *sg = cl_sg_json(h, s, SGID);
        json_t *m = cl_member(sg, PNEID);
        const char *now = json_string_value(json_object_get(m, "state"));
        if (now && strcmp(now, state) == 0) {
            *sg_out = sg;
            return m;
        }
        json_decref(sg);
        if (waited >= timeout_ms)
            fail_msg("SG %s: member %s not %s after %d ms (it is %s)", SGID, PNEID, state,
                     timeout_ms, now ? now : "absent");
        sleep_ms(100);
    }
}

/* cpnsctl pne set-key PNEID --key-file F; fails the test unless it exits 0. */
static void set_key(harness *h, const cl_server *s, const char *PNEID, const char *key_file)
{
    h_out o = cl_ctl(h, s, "pne", "set-key", PNEID, "--key-file", key_file, NULL);
    if (o.status != 0)
        fail_msg("pne set-key %s --key-file %s: exit %d: %s", PNEID, key_file, o.status, o.err);
    h_out_free(&o);
}

/*
 * 7.8.6.1-1 (a Group Key that does not decrypt is answered Return 2) and
 * PROTOCOL.md 3.2 (Return 2: failed, not retried until the PNE is
 * re-provisioned), through the real programs.
 */
static void test_wrong_euk_return2_then_reprovision(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, "--delivery-timeout", "1", NULL);

    /* Both PNEs register with the keys the server generated for them (key A for pne-bad). */
    cl_pne good = {0}, bad = {0};
    cl_pne_provision(h, &s, &good, "pne-good");
    cl_pne_provision(h, &s, &bad, "pne-bad");
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    cl_pne_start(h, &good, &g);
    cl_pne_start(h, &bad, &g);
    cl_wait_registered(h, &s, "pne-good", 30000);
    cl_wait_registered(h, &s, "pne-bad", 30000);

    /* The operator re-provisions the server's copy with key B, which the PNE does not hold. */
    char *key_b = make_key_file(h, "b.key", "HxUOQ3yFk1BzcdWNGgwUzWZEuhdqWm1O0s7h2NYqZCw=\n");
    set_key(h, &s, "pne-bad", key_b);

    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-good", "pne-bad", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);

    json_t *sg = NULL;
    json_t *m = wait_member_state(h, &s, "pne-bad", "failed", 30000, &sg);
    assert_true(json_is_integer(json_object_get(m, "return")));
    assert_int_equal(json_integer_value(json_object_get(m, "return")), 2);
    assert_string_equal(json_string_value(json_object_get(sg, "state")), "distributing");
    json_decref(sg);
    cl_wait_delivered(h, &s, SGID, "pne-good", 30000);

    /* Failed by Return 2 is final: it is not retried while the keys still disagree. */
    char *err = NULL;
    assert_int_equal(cl_sg_wait(h, &s, SGID, 3, &err), 1);
    assert_non_null(strstr(err, "pne-bad"));
    assert_null(strstr(err, "pne-good"));
    sg = cl_sg_json(h, &s, SGID);
    m = cl_member(sg, "pne-bad");
    assert_string_equal(json_string_value(json_object_get(m, "state")), "failed");
    json_int_t attempts = json_integer_value(json_object_get(m, "attempts"));
    assert_true(attempts >= 1);
    json_decref(sg);

    /* The PNE stored nothing it could not decrypt. */
    o = h_run(h, NULL, CL_CTL_MS, "cpns-pne", "keys", "--store", bad.store, "--key-file",
              bad.key_file, NULL);
    assert_int_equal(o.status, 0);
    assert_null(strstr(o.out, SGID));
    h_out_free(&o);

    /* Re-provisioning with the key the PNE holds (A) revives the member. */
    set_key(h, &s, "pne-bad", bad.key_file);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 30, NULL), 0);

    sg = cl_sg_json(h, &s, SGID);
    assert_string_equal(json_string_value(json_object_get(sg, "state")), "complete");
    m = cl_member(sg, "pne-bad");
    assert_string_equal(json_string_value(json_object_get(m, "state")), "delivered");
    assert_int_equal(json_integer_value(json_object_get(m, "return")), 1);
    char server_fp[17];
    snprintf(server_fp, sizeof server_fp, "%s",
             json_string_value(json_object_get(sg, "key_fingerprint")));
    json_int_t version = json_integer_value(json_object_get(sg, "key_version"));
    json_decref(sg);

    /* Both members hold the server's Group Key, at the version it was created with. */
    char fp_good[17], fp_bad[17];
    unsigned v_good = 0, v_bad = 0;
    cl_pne_fingerprint(h, &good, SGID, fp_good, &v_good);
    cl_pne_fingerprint(h, &bad, SGID, fp_bad, &v_bad);
    assert_int_equal(version, 1);
    assert_int_equal(v_good, 1);
    assert_int_equal(v_bad, 1);
    assert_string_equal(fp_good, server_fp);
    assert_string_equal(fp_bad, server_fp);

    /* The server logged the keys' fingerprints, never the keys. */
    assert_true(h_file_contains(s.p->log, "re-provisioned"));
    assert_false(h_file_contains(s.p->log, "HxUOQ3yFk1BzcdWNGgwUzWZEuhdqWm1O0s7h2NYqZCw="));

    cl_stop_clean(good.p);
    cl_stop_clean(bad.p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

static void test_unknown_pne_refused(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, NULL);
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    cl_pne stranger = {.PNEID = "pne-stranger"};
    stranger.key_file =
        make_key_file(h, "stranger.key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
    stranger.store = h_path(h, "stranger.store");
    cl_pne_start(h, &stranger, &g);

    /* Registration is answered Return 9; the PNE keeps running and retrying. */
    for (int tries = 0; tries < 100 && !h_file_contains(stranger.p->log, "Return=9"); tries++) {
        assert_true(h_running(stranger.p));
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    assert_true(h_file_contains(stranger.p->log, "Return=9"));

    /* An SG cannot name it: it is not provisioned. */
    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-stranger", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "pne-stranger"));
    h_out_free(&o);

    cl_stop_clean(stranger.p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wrong_euk_refused, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_euk_return2_then_reprovision, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_pne_refused, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
