/*
 * A PNE whose Entity User Key differs from the one the server holds.
 *
 * Through the admin API the mismatch can only exist from the start: a PNE is
 * provisioned once (a second `pne add` is a 409) and there is no call to
 * change its key. So the server gets key A with `pne add --key-file` and the
 * PNE runs with key B: its registration Proof does not verify, the server
 * answers Return 8, the PNE is never routable and its member stays undelivered
 * while the correctly keyed member completes. (Return 2, a Group Key that does
 * not decrypt, needs a registration that verified with the same wrong key, so
 * it cannot happen here; the engine tests cover it.) A PNE the server does not
 * know at all gets Return 9.
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
        cmocka_unit_test_setup_teardown(test_unknown_pne_refused, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
