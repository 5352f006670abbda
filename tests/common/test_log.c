/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rate limiter of repeated log lines (daemon.h, #10.6: 20,000 bogus
 * registrations wrote megabytes of log), driven with an injected clock:
 * bursts pass, floods are cut to the refill rate, and every suppressed line
 * is accounted for in a report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "support.h"

typedef struct reports {
    int n;
    uint64_t total;
    uint64_t last_count;
    cpns_log_level last_level;
    char last_sample[LOG_SAMPLE];
} reports;

static void on_report(void *arg, uint64_t count, cpns_log_level level, const char *sample,
                      int64_t for_ms)
{
    reports *r = arg;
    (void)for_ms;
    r->n++;
    r->total += count;
    r->last_count = count;
    r->last_level = level;
    snprintf(r->last_sample, sizeof r->last_sample, "%s", sample);
}

static log_limiter *limiter_new(void)
{
    log_limiter *l = calloc(1, sizeof *l);
    assert_non_null(l);
    return l;
}

/* A flood of one message: the burst passes, the rest is counted and reported once. */
static void test_flood_one_key(void **state)
{
    (void)state;
    log_limiter *l = limiter_new();
    reports r = {0};
    int allowed = 0;
    for (int i = 0; i < 2000; i++)
        allowed += log_limit_allow(l, 7, CPNS_LOG_WARN, "bogus frame", 0, on_report, &r);
    assert_int_equal(allowed, LOG_BURST);
    assert_int_equal(r.n, 0); /* not yet: reported when due */
    /* 50 ms later: half a token, still suppressed, nothing reported yet */
    assert_false(log_limit_allow(l, 7, CPNS_LOG_WARN, "bogus frame", 50, on_report, &r));
    assert_int_equal(r.n, 0);
    /* 150 ms: a token again; the count goes out first, then the line */
    assert_true(log_limit_allow(l, 7, CPNS_LOG_WARN, "bogus frame", 150, on_report, &r));
    assert_int_equal(r.n, 1);
    assert_int_equal(r.last_count, 2000 - LOG_BURST + 1);
    assert_int_equal(r.last_level, CPNS_LOG_WARN);
    assert_string_equal(r.last_sample, "bogus frame");
    /* the steady state is the refill rate: 10 s of flood let about LOG_PER_S lines a second through
     */
    allowed = 0;
    for (int64_t t = 200; t < 10200; t++)
        allowed += log_limit_allow(l, 7, CPNS_LOG_WARN, "bogus frame", t, on_report, &r);
    assert_true(allowed >= 10 * LOG_PER_S - 1 && allowed <= 10 * LOG_PER_S + 1);
    free(l);
}

/* Another message is not held back by a flood of the first (within the shared budget). */
static void test_keys_are_independent(void **state)
{
    (void)state;
    log_limiter *l = limiter_new();
    reports r = {0};
    for (int i = 0; i < 500; i++)
        log_limit_allow(l, 1, CPNS_LOG_INFO, "flood", 0, on_report, &r);
    assert_true(log_limit_allow(l, 2, CPNS_LOG_ERROR, "the store failed", 0, on_report, &r));
    free(l);
}

/*
 * A count is reported a second after its first suppression even if its own
 * message never comes back (the next line of any message carries it), and
 * log_limit_flush(all) reports what is left (the daemons do at exit).
 */
static void test_reports_are_never_lost(void **state)
{
    (void)state;
    log_limiter *l = limiter_new();
    reports r = {0};
    for (int i = 0; i < LOG_BURST + 5; i++)
        log_limit_allow(l, 3, CPNS_LOG_ERROR, "cannot accept", 0, on_report, &r);
    assert_true(log_limit_allow(l, 4, CPNS_LOG_INFO, "other", 999, on_report, &r));
    assert_int_equal(r.n, 0);
    assert_true(log_limit_allow(l, 4, CPNS_LOG_INFO, "other", 1000, on_report, &r));
    assert_int_equal(r.n, 1);
    assert_int_equal(r.last_count, 5);
    assert_int_equal(r.last_level, CPNS_LOG_ERROR);

    for (int i = 0; i < LOG_BURST + 3; i++)
        log_limit_allow(l, 5, CPNS_LOG_WARN, "again", 2000, on_report, &r);
    log_limit_flush(l, 2001, false, on_report, &r);
    assert_int_equal(r.n, 1); /* not a second old */
    log_limit_flush(l, 2001, true, on_report, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.last_count, 3 + 0); /* key 5 had used no tokens before 2000 */
    free(l);
}

/*
 * Many distinct messages (or keys sharing a slot) are bounded by the shared
 * budget, and every line is either written or counted in a report.
 */
static void test_many_keys_bounded_and_accounted(void **state)
{
    (void)state;
    log_limiter *l = limiter_new();
    reports r = {0};
    uint64_t allowed = 0, total = 0;
    uint64_t seed = 1;
    for (int64_t t = 0; t < 3000; t += 3) {
        for (int i = 0; i < 20; i++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            uint64_t key = (seed >> 33) % 5000 + 1;
            allowed += log_limit_allow(l, key, CPNS_LOG_WARN, "x", t, on_report, &r);
            total++;
        }
    }
    /* 20,000 lines in 3 s over 5,000 keys: at most the shared burst and refill */
    assert_true(allowed <= LOG_TOTAL_BURST + 3 * LOG_TOTAL_PER_S + 1);
    log_limit_flush(l, 3000, true, on_report, &r);
    assert_int_equal(allowed + r.total, total);
    free(l);
}

/* An engine's lines are keyed by their shape: numbers and quoted values left out. */
static void test_text_key(void **state)
{
    (void)state;
    assert_int_equal(log_text_key(CPNS_LOG_WARN, "malformed frame from link 12 dropped"),
                     log_text_key(CPNS_LOG_WARN, "malformed frame from link 98765 dropped"));
    assert_int_equal(log_text_key(CPNS_LOG_WARN, "PNEID 'a' unknown"),
                     log_text_key(CPNS_LOG_WARN, "PNEID 'bbbbbb' unknown"));
    assert_true(log_text_key(CPNS_LOG_WARN, "malformed frame from link 12 dropped") !=
                log_text_key(CPNS_LOG_INFO, "malformed frame from link 12 dropped"));
    assert_true(log_text_key(CPNS_LOG_WARN, "route set") !=
                log_text_key(CPNS_LOG_WARN, "route lost"));
    assert_true(log_text_key(CPNS_LOG_WARN, "") != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_one_key),
        cmocka_unit_test(test_keys_are_independent),
        cmocka_unit_test(test_reports_are_never_lost),
        cmocka_unit_test(test_many_keys_bounded_and_accounted),
        cmocka_unit_test(test_text_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
