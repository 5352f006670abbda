/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/common.c: error strings, the allocator hook, TransactionIDs,
 * numbers; and the identifier rule's dot-only refusal (cpns_id_valid).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "support.h"

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(cpns_strerror(0), "success");
    for (int e = CPNS_ERR_NOMEM; e >= CPNS_ERR_BUSY; e--)
        assert_string_not_equal(cpns_strerror(e), "unknown error");
    assert_string_equal(cpns_strerror(-999), "unknown error");
}

typedef struct {
    int mallocs, frees;
} counts;

static void *count_malloc(size_t n, void *arg)
{
    ((counts *)arg)->mallocs++;
    return malloc(n);
}

static void *count_realloc(void *p, size_t n, void *arg)
{
    if (!p)
        ((counts *)arg)->mallocs++;
    return realloc(p, n);
}

static void count_free(void *p, void *arg)
{
    ((counts *)arg)->frees++;
    free(p);
}

static void test_allocator_hook(void **state)
{
    (void)state;
    counts c = {0, 0};
    cpns_allocator a = {count_malloc, count_realloc, count_free, &c};
    cpns_set_allocator(&a);
    char *s = cpns_strdup("pne-tv");
    void *z = cpns_calloc(4, 8);
    assert_non_null(s);
    assert_non_null(z);
    assert_string_equal(s, "pne-tv");
    cpns_free(s);
    cpns_free(z);
    cpns_free(NULL);
    cpns_set_allocator(NULL);
    assert_int_equal(c.mallocs, 2);
    assert_int_equal(c.frees, 2);
    /* an overflowing calloc is refused without calling the allocator */
    assert_null(cpns_calloc(SIZE_MAX / 2, 4));
}

/* Big arrays: zeroed, 2 MB aligned with the default allocator, through the hook otherwise. */
static void test_calloc_large(void **state)
{
    (void)state;
    size_t n = (size_t)6 << 20;
    uint8_t *big = cpns_calloc_large(n / 8, 8);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % ((uintptr_t)2 << 20), 0);
    for (size_t i = 0; i < n; i += 4093)
        assert_int_equal(big[i], 0);
    assert_int_equal(big[n - 1], 0);
    memset(big, 0xab, n);
    cpns_free(big);

    /* an installed allocator sees every block, small or large */
    test_counting c = {0};
    cpns_allocator a = test_counting_allocator(&c);
    cpns_set_allocator(&a);
    uint8_t *small = cpns_calloc_large(3, 5);
    big = cpns_calloc_large(n, 1);
    assert_non_null(small);
    assert_non_null(big);
    assert_int_equal(c.live, 2);
    assert_int_equal(small[14] | big[n - 1], 0);
    cpns_free(small);
    cpns_free(big);
    assert_int_equal(c.live, 0);
    c.fail_at = c.calls + 1;
    assert_null(cpns_calloc_large(n, 1));
    cpns_set_allocator(NULL);
    /* an overflowing size is refused */
    assert_null(cpns_calloc_large(SIZE_MAX / 2, 4));
}

static int always_zero_then_one(void *arg, uint8_t *buf, size_t len)
{
    int *calls = arg;
    memset(buf, (*calls)++ == 0 ? 0 : 0xff, len);
    return 0;
}

static void test_random_tid(void **state)
{
    (void)state;
    int calls = 0;
    uint64_t tid;
    /* a zero draw is redrawn; the top bit is cleared: 1 .. 2^63-1 */
    assert_int_equal(cpns_random_tid(always_zero_then_one, &calls, &tid), 0);
    assert_int_equal(calls, 2);
    assert_true(tid == (uint64_t)INT64_MAX);
}

static void test_u64_to_str(void **state)
{
    (void)state;
    char buf[21];
    assert_string_equal(cpns_u64_to_str(0, buf), "0");
    assert_string_equal(cpns_u64_to_str(1795000000, buf), "1795000000");
    assert_string_equal(cpns_u64_to_str(UINT64_MAX, buf), "18446744073709551615");
}

/*
 * #10.14: ".", ".." (and "...") were valid identifiers, and as admin API path
 * segments a normalising proxy resolves them to another resource. Any
 * identifier made only of dots is refused everywhere the rule applies; dots
 * among other characters stay valid.
 */
static void test_id_dot_only_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {".", "..", "...", "................"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(cpns_id_valid(bad[i]));
        cpns_msg m;
        cpns_msg_init(&m, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE, 1);
        assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, bad[i]), CPNS_ERR_INVALID_ARG);
    }
    static const char *const good[] = {"a.b", ".a", "a.", "..a", "a..b", ".-.", "_"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(cpns_id_valid(good[i]));

    /* on the wire: a message naming PNEID ".." is malformed, "a.." is not */
    char doc[512];
    static const char *const ids[] = {"a..", ".."};
    for (int i = 0; i < 2; i++) {
        int n = snprintf(doc, sizeof doc,
                         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                         "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\""
                         " TransactionID=\"7\"><PNERegistrationResponse Return=\"1\""
                         " PNEID=\"%s\" PNID=\"pn-1\"/></CPNSMessage>",
                         ids[i]);
        cpns_msg m;
        assert_int_equal(cpns_msg_decode((const uint8_t *)doc, (size_t)n, &m),
                         i == 0 ? 0 : CPNS_ERR_MALFORMED);
    }
}

/* The library's run-time version is the project's, and the headers say the same. */
static void test_version_matches_headers(void **state)
{
    (void)state;
    assert_string_equal(cpns_version(), CPNS_LIB_VERSION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_matches_headers),
        cmocka_unit_test(test_strerror),     cmocka_unit_test(test_allocator_hook),
        cmocka_unit_test(test_calloc_large), cmocka_unit_test(test_random_tid),
        cmocka_unit_test(test_u64_to_str),   cmocka_unit_test(test_id_dot_only_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
