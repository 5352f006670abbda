/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/server_limits.c: the per-GW-connection token bucket on
 * PNERegistrationRequests. Over the limit a request is answered Return 0 and
 * counted, its Nonce is not consumed (the PNE's retry of the very same request
 * succeeds once the bucket refills), and one GW's flood leaves another GW's
 * registrations alone.
 */
#include "server_harness.h"

enum { RATE = 2, BURST = 3 };

static int setup_limited(void **state)
{
    harness *h = test_malloc(sizeof *h);
    h_init(h);
    h->cfg.reg_rate_per_s = RATE;
    h->cfg.reg_burst = BURST;
    h_start(h);
    *state = h;
    return 0;
}

static int setup_default(void **state)
{
    harness *h = test_malloc(sizeof *h);
    h_setup(h);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    h_teardown(*state);
    test_free(*state);
    return 0;
}

static cpns_server_stats stats(harness *h)
{
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    return st;
}

static int registered(harness *h, const char *PNEID)
{
    cpns_pne_info pi;
    assert_int_equal(cpns_server_pne_get(h->s, PNEID, &pi), 0);
    return pi.registered;
}

/* A fresh PNE, provisioned; returns its PNEID in buf. */
static const char *new_pne(harness *h, char buf[32], int i)
{
    snprintf(buf, 32, "pne-%d", i);
    h_pne_add(h, buf);
    return buf;
}

/* The burst passes, the next request is Return 0, counted, and the PNE stays unregistered. */
static void test_burst_then_return_0(void **state)
{
    harness *h = *state;
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    char id[32];
    for (int i = 0; i < BURST; i++)
        assert_int_equal(h_register(h, 1, new_pne(h, id, i)), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_register(h, 1, new_pne(h, id, BURST)), CPNS_RETURN_OTHER);
    assert_false(registered(h, id));
    cpns_server_stats st = stats(h);
    assert_int_equal(st.registrations_limited, 1);
    assert_int_equal(st.registrations[CPNS_RETURN_OTHER], 1);
    assert_int_equal(st.registrations[CPNS_RETURN_SUCCESS], BURST);
}

/* The refused request itself, retried after the refill, succeeds: its Nonce was not spent. */
static void test_refused_request_retried_succeeds(void **state)
{
    harness *h = *state;
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    char id[32];
    for (int i = 0; i < BURST; i++)
        assert_int_equal(h_register(h, 1, new_pne(h, id, i)), CPNS_RETURN_SUCCESS);
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_msg req;
    new_pne(h, id, 99);
    h_euk(id, EUK);
    h_reg_msg(h, &req, id, EUK, h->now / 1000);
    assert_int_equal(h_register_msg(h, 1, &req, NULL), CPNS_RETURN_OTHER);
    h->now += 1000 / RATE - 1; /* not yet a whole token */
    assert_int_equal(h_register_msg(h, 1, &req, NULL), CPNS_RETURN_OTHER);
    h->now += 1;
    assert_int_equal(h_register_msg(h, 1, &req, NULL), CPNS_RETURN_SUCCESS);
    assert_true(registered(h, id));
    assert_int_equal(stats(h).registrations_limited, 2);
}

/* A long pause refills to the burst, not beyond it. */
static void test_refill_caps_at_burst(void **state)
{
    harness *h = *state;
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    char id[32];
    int n = 0;
    for (int i = 0; i < BURST; i++)
        assert_int_equal(h_register(h, 1, new_pne(h, id, n++)), CPNS_RETURN_SUCCESS);
    h->now += 3600 * 1000;
    for (int i = 0; i < BURST; i++)
        assert_int_equal(h_register(h, 1, new_pne(h, id, n++)), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_register(h, 1, new_pne(h, id, n++)), CPNS_RETURN_OTHER);
}

/* One GW's flood does not limit another GW. */
static void test_limit_is_per_gw(void **state)
{
    harness *h = *state;
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_gw(h, 2, "gw-2", "pn-office", NULL), CPNS_RETURN_SUCCESS);
    char id[32];
    int n = 0;
    for (int i = 0; i < BURST; i++)
        assert_int_equal(h_register(h, 1, new_pne(h, id, n++)), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_register(h, 1, new_pne(h, id, n)), CPNS_RETURN_OTHER);
    assert_int_equal(h_register(h, 2, id), CPNS_RETURN_SUCCESS);
    assert_true(registered(h, id));
}

/* Requests that fail anyway (unknown PNEID) cost a token too: a flood of garbage is capped. */
static void test_unknown_pneids_are_limited(void **state)
{
    harness *h = *state;
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    for (int i = 0; i < BURST; i++)
        assert_int_equal(h_register(h, 1, "pne-nobody"), CPNS_RETURN_UNKNOWN);
    assert_int_equal(h_register(h, 1, "pne-nobody"), CPNS_RETURN_OTHER);
}

/* A wall clock that steps back refills nothing (and breaks nothing). */
static void test_clock_step_back(void **state)
{
    harness *h = *state;
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    for (int i = 0; i < BURST; i++)
        assert_int_equal(h_register(h, 1, "pne-nobody"), CPNS_RETURN_UNKNOWN);
    h->now -= 60 * 1000;
    assert_int_equal(h_register(h, 1, "pne-nobody"), CPNS_RETURN_OTHER);
    h->now += 60 * 1000 + 1000 / RATE;
    assert_int_equal(h_register(h, 1, "pne-nobody"), CPNS_RETURN_UNKNOWN);
    assert_int_equal(h_register(h, 1, "pne-nobody"), CPNS_RETURN_OTHER);
}

/* The defaults: a burst of 10,000 at one instant passes (a GW restart), the next does not. */
static void test_default_burst_10000(void **state)
{
    harness *h = *state;
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(h_register(h, 1, "pne-nobody"), CPNS_RETURN_UNKNOWN);
    assert_int_equal(h_register(h, 1, "pne-nobody"), CPNS_RETURN_OTHER);
    h->now += 1; /* the default rate is 1,000 a second: one a millisecond */
    assert_int_equal(h_register(h, 1, "pne-nobody"), CPNS_RETURN_UNKNOWN);
    assert_int_equal(stats(h).registrations_limited, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_then_return_0, setup_limited, teardown),
        cmocka_unit_test_setup_teardown(test_refused_request_retried_succeeds, setup_limited,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refill_caps_at_burst, setup_limited, teardown),
        cmocka_unit_test_setup_teardown(test_limit_is_per_gw, setup_limited, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_pneids_are_limited, setup_limited, teardown),
        cmocka_unit_test_setup_teardown(test_clock_step_back, setup_limited, teardown),
        cmocka_unit_test_setup_teardown(test_default_burst_10000, setup_default, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
