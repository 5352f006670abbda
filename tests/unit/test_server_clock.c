/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server engine's two clocks (#10.12): now_ms is monotonic and times
 * every interval (delivery timeouts, backoff, the registration rate limit,
 * the nonce lifetime within a run); cpns_server_config.wall_clock dates what
 * the protocol dates (the registration Time window) and what outlives the
 * process (the nonce cache's seen time). Here the wall clock runs an hour
 * ahead of now_ms, or now_ms starts at 0 as a monotonic clock may.
 */
#include "server_harness.h"

#define HOUR_MS (3600 * 1000LL)

static int setup(void **state)
{
    harness *h = test_malloc(sizeof *h);
    h_init(h);
    h->wall_offset = HOUR_MS;
    h->cfg.wall_clock = h_wall;
    h->cfg.wall_clock_arg = h;
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    h_teardown(*state);
    test_free(*state);
    return 0;
}

static const char *const ONE[] = {"pne-a"};

/* The registration Time is checked against the wall clock, not against now_ms. */
static void test_time_window_uses_wall_clock(void **state)
{
    harness *h = *state;
    h_start(h);
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_msg m;
    h_euk("pne-a", EUK);
    h_reg_msg(h, &m, "pne-a", EUK, h->now / 1000); /* an hour off the wall clock */
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    h_reg_msg(h, &m, "pne-a", EUK, h_wall(h) / 1000 - 300);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_SUCCESS);
    h_reg_msg(h, &m, "pne-a", EUK, h_wall(h) / 1000 + 301);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
}

/* Delivery timeouts are delivery_timeout_ms of now_ms, whatever the wall clock says. */
static void test_delivery_timeout_on_monotonic_clock(void **state)
{
    harness *h = *state;
    h_start(h);
    h_world(h, ONE, 1);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", ONE, 1, h->now), 0);
    cpns_msg req;
    assert_int_equal(h_pop(h, NULL, &req), 1);
    int64_t sent = h->now;
    assert_int_equal(cpns_server_get_expiry(h->s), sent + 10000);
    h->now = sent + 9999;
    h->wall_offset += HOUR_MS; /* a wall clock step changes nothing */
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    assert_int_equal(h_pop(h, NULL, &req), 0);
    assert_int_equal(h_member(h, "sg-1", "pne-a").attempts, 1);
    h->now = sent + 10000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    assert_int_equal(h_pop(h, NULL, &req), 1);
    assert_int_equal(h_member(h, "sg-1", "pne-a").attempts, 2);
}

/*
 * The nonce cache is persisted with wall-clock dates: after a restart whose
 * monotonic clock starts over (a reboot), a nonce is still refused, and is
 * forgotten after what is left of its lifetime by the wall clock, counted on
 * the new monotonic clock.
 */
static void test_nonce_cache_across_a_new_monotonic_epoch(void **state)
{
    harness *h = *state;
    h->cfg.time_window_s = 1000; /* wider than the lifetime, to see the nonce go */
    h_start(h);
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    uint8_t EUK[CPNS_KEY_LEN];
    const uint8_t Nonce[CPNS_NONCE_LEN] = {0x10, 0x12};
    cpns_msg m;
    h_euk("pne-a", EUK);
    int64_t W0 = h_wall(h);
    h_reg_msg_nonce(h, &m, "pne-a", EUK, W0 / 1000, Nonce);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_SUCCESS);
    /* The process restarts 100 s later (wall), its monotonic clock at 5 s. */
    h->now = 5000;
    h->wall_offset = W0 + 100 * 1000 - h->now;
    h_crash_restart(h);
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    h_reg_msg_nonce(h, &m, "pne-a", EUK, W0 / 1000, Nonce);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    assert_int_equal(cpns_server_get_expiry(h->s), 5000 + 500 * 1000);
    h->now = 5000 + 500 * 1000 - 1;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    h_reg_msg_nonce(h, &m, "pne-a", EUK, W0 / 1000, Nonce);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    h->now++;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    h_reg_msg_nonce(h, &m, "pne-a", EUK, W0 / 1000, Nonce);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_SUCCESS);
    /* Its new date is the wall clock's, so it is kept the full lifetime from now. */
    assert_int_equal(cpns_server_flush(h->s), 0);
    h->now = 1;
    h->wall_offset = W0 + 700 * 1000 - h->now; /* 100 s after that registration */
    h_crash_restart(h);
    assert_int_equal(cpns_server_get_expiry(h->s), 1 + 500 * 1000);
}

/*
 * The store returns nonces in key order, not by age: after a restart the
 * next expiry is still the oldest nonce's, and the sweep takes each in turn.
 */
static void test_loaded_nonces_expire_oldest_first(void **state)
{
    harness *h = *state;
    h_start(h);
    static const char *const IDS[] = {"pne-z", "pne-m", "pne-a"};
    h_world(h, NULL, 0);
    for (int i = 0; i < 3; i++) {
        h_pne_add(h, IDS[i]);
        assert_int_equal(h_register(h, 1, IDS[i]), CPNS_RETURN_SUCCESS);
        h->now += 1000; /* pne-z's nonce is the oldest, pne-a's the newest */
    }
    assert_int_equal(cpns_server_flush(h->s), 0);
    int64_t W = h_wall(h); /* 3 s after the first registration */
    h->now = 7;
    h->wall_offset = W - h->now;
    h_crash_restart(h);
    assert_int_equal(cpns_server_get_expiry(h->s), 7 + 600 * 1000 - 3000);
    h->now = 7 + 600 * 1000 - 3000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    assert_int_equal(cpns_server_get_expiry(h->s), 7 + 600 * 1000 - 2000);
    h->now += 2000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    assert_int_equal(cpns_server_get_expiry(h->s), CPNS_NEVER);
}

/* A monotonic clock may read 0: the rate-limit bucket is not refilled by that. */
static void test_rate_limit_with_monotonic_clock_at_zero(void **state)
{
    harness *h = *state;
    h->now = 0;
    h->wall_offset = H_T0;
    h->cfg.reg_rate_per_s = 1;
    h->cfg.reg_burst = 1;
    h_start(h);
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    assert_int_equal(h_register(h, 1, "pne-a"), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_register(h, 1, "pne-a"), CPNS_RETURN_OTHER);
    h->now = 1000;
    assert_int_equal(h_register(h, 1, "pne-a"), CPNS_RETURN_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_time_window_uses_wall_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_timeout_on_monotonic_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonce_cache_across_a_new_monotonic_epoch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loaded_nonces_expire_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_with_monotonic_clock_at_zero, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
