/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/crypto_util.c: the CSPRNG the server draws Group Keys from,
 * constant-time comparison, wiping and key fingerprints.
 */
#include <string.h>

#include "crypto_vectors.h"

/*
 * 7.8.6.3-1: the server generates the Group Key randomly, from the OS CSPRNG
 * (cpns_random is the default cpns_rand_fn): two 32-byte draws differ, and
 * a draw is not all zeros.
 */
static void test_random_group_key_7_8_6_3_1(void **state)
{
    (void)state;
    uint8_t a[CPNS_KEY_LEN], b[CPNS_KEY_LEN], zero[CPNS_KEY_LEN] = {0};
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    assert_int_equal(cpns_random(NULL, a, sizeof a), 0);
    assert_int_equal(cpns_random(NULL, b, sizeof b), 0);
    assert_memory_not_equal(a, b, sizeof a);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_memory_not_equal(b, zero, sizeof b);
    assert_int_equal(cpns_random(NULL, a, 0), 0);
}

static void test_mem_equal(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    memset(a, 0x11, sizeof a);
    memcpy(b, a, sizeof b);
    assert_int_equal(cpns_mem_equal(a, b, sizeof a), 1);
    for (size_t i = 0; i < sizeof a; i++) {
        b[i] ^= 0x40;
        assert_int_equal(cpns_mem_equal(a, b, sizeof a), 0);
        b[i] ^= 0x40;
    }
    assert_int_equal(cpns_mem_equal(a, b, 0), 1);
}

static void test_wipe(void **state)
{
    (void)state;
    uint8_t key[CPNS_KEY_LEN];
    memset(key, 0xee, sizeof key);
    cpns_wipe(key, sizeof key);
    v_assert_zero(key, sizeof key);
    cpns_wipe(NULL, 0);
}

/* the first 8 bytes of SHA-256(key), 16 lowercase hex digits */
static void test_fingerprint(void **state)
{
    (void)state;
    uint8_t zero[32] = {0};
    char fp[CPNS_FINGERPRINT_LEN + 1];
    memset(fp, 'x', sizeof fp);
    cpns_fingerprint(zero, sizeof zero, fp);
    /* sha256sum of 32 zero bytes: 66687aadf862bd776c8fc18b8e9f8e20... */
    assert_string_equal(fp, "66687aadf862bd77");
    assert_int_equal(strlen(fp), CPNS_FINGERPRINT_LEN);

    uint8_t GK[CPNS_KEY_LEN];
    test_hex(V_GK_HEX, GK, sizeof GK);
    char fp2[CPNS_FINGERPRINT_LEN + 1];
    cpns_fingerprint(GK, sizeof GK, fp2);
    assert_int_equal(strlen(fp2), CPNS_FINGERPRINT_LEN);
    for (size_t i = 0; i < CPNS_FINGERPRINT_LEN; i++)
        assert_non_null(strchr("0123456789abcdef", fp2[i]));
    assert_string_not_equal(fp, fp2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_group_key_7_8_6_3_1),
        cmocka_unit_test(test_mem_equal),
        cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_fingerprint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
