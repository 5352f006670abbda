/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Known-answer tests of lib/crypto_kdf.c: RFC 5869 test cases 1-3 (SHA-256)
 * for the general HKDF, and the HKDF values of PROTOCOL.md section 4.1 for
 * cpns_kdf() with each of the protocol's info labels.
 */
#include <string.h>

#include "crypto_vectors.h"

static void fill_range(uint8_t *buf, uint8_t first, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(first + i);
}

/* RFC 5869 A.1: basic test case with SHA-256 */
static void test_hkdf_rfc5869_case1(void **state)
{
    (void)state;
    uint8_t ikm[22], salt[13], info[10], okm[42], expect[42];
    memset(ikm, 0x0b, sizeof ikm);
    fill_range(salt, 0x00, sizeof salt);
    fill_range(info, 0xf0, sizeof info);
    test_hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
             expect, sizeof expect);
    assert_int_equal(
        cpns_hkdf_sha256(salt, sizeof salt, ikm, sizeof ikm, info, sizeof info, okm, sizeof okm),
        0);
    assert_memory_equal(okm, expect, sizeof okm);
}

/* RFC 5869 A.2: longer inputs and outputs */
static void test_hkdf_rfc5869_case2(void **state)
{
    (void)state;
    uint8_t ikm[80], salt[80], info[80], okm[82], expect[82];
    fill_range(ikm, 0x00, sizeof ikm);
    fill_range(salt, 0x60, sizeof salt);
    fill_range(info, 0xb0, sizeof info);
    test_hex("b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
             "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
             "cc30c58179ec3e87c14c01d5c1f3434f1d87",
             expect, sizeof expect);
    assert_int_equal(
        cpns_hkdf_sha256(salt, sizeof salt, ikm, sizeof ikm, info, sizeof info, okm, sizeof okm),
        0);
    assert_memory_equal(okm, expect, sizeof okm);
}

/* RFC 5869 A.3: zero-length salt and info (the salt becomes HashLen zeros) */
static void test_hkdf_rfc5869_case3(void **state)
{
    (void)state;
    uint8_t ikm[22], okm[42], expect[42];
    memset(ikm, 0x0b, sizeof ikm);
    test_hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
             expect, sizeof expect);
    assert_int_equal(cpns_hkdf_sha256(NULL, 0, ikm, sizeof ikm, NULL, 0, okm, sizeof okm), 0);
    assert_memory_equal(okm, expect, sizeof okm);

    /* an explicit salt of 32 zero bytes is the same thing */
    uint8_t zero_salt[32] = {0}, okm2[42];
    assert_int_equal(
        cpns_hkdf_sha256(zero_salt, sizeof zero_salt, ikm, sizeof ikm, NULL, 0, okm2, sizeof okm2),
        0);
    assert_memory_equal(okm2, expect, sizeof okm2);
}

static void test_hkdf_bad_length(void **state)
{
    (void)state;
    uint8_t ikm[32] = {1}, out[32];
    assert_int_equal(cpns_hkdf_sha256(NULL, 0, ikm, sizeof ikm, NULL, 0, out, 0),
                     CPNS_ERR_INVALID_ARG);
    static uint8_t big[255 * 32 + 1];
    assert_int_equal(cpns_hkdf_sha256(NULL, 0, ikm, sizeof ikm, NULL, 0, big, sizeof big),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_hkdf_sha256(NULL, 0, ikm, sizeof ikm, NULL, 0, big, sizeof big - 1), 0);
}

static void check_kdf(const uint8_t ikm[CPNS_KEY_LEN], const char *info, const char *expect_hex)
{
    uint8_t out[CPNS_KEY_LEN], expect[CPNS_KEY_LEN];
    test_hex(expect_hex, expect, sizeof expect);
    assert_int_equal(cpns_kdf(ikm, info, out), 0);
    assert_memory_equal(out, expect, sizeof out);
}

/* the vector EUK is given in base64 and described as the bytes 00..1f */
static void test_kdf_vector_euk(void **state)
{
    (void)state;
    uint8_t EUK[CPNS_KEY_LEN], expect[CPNS_KEY_LEN];
    v_euk(EUK);
    fill_range(expect, 0x00, sizeof expect);
    assert_memory_equal(EUK, expect, sizeof EUK);
}

/* PROTOCOL.md 4.1: K_wrap = HKDF(EUK, "CPNS 1.1 group key wrap") */
static void test_kdf_vector_k_wrap(void **state)
{
    (void)state;
    assert_string_equal(CPNS_INFO_WRAP, "CPNS 1.1 group key wrap");
    uint8_t EUK[CPNS_KEY_LEN];
    v_euk(EUK);
    check_kdf(EUK, CPNS_INFO_WRAP, V_K_WRAP_HEX);
}

/* PROTOCOL.md 4.1: K_auth = HKDF(EUK, "CPNS 1.1 PNE registration") */
static void test_kdf_vector_k_auth(void **state)
{
    (void)state;
    assert_string_equal(CPNS_INFO_AUTH, "CPNS 1.1 PNE registration");
    uint8_t EUK[CPNS_KEY_LEN];
    v_euk(EUK);
    check_kdf(EUK, CPNS_INFO_AUTH, V_K_AUTH_HEX);
}

/* PROTOCOL.md 4.1: HKDF(GK, "CPNS 1.1 key confirmation") */
static void test_kdf_vector_confirm(void **state)
{
    (void)state;
    assert_string_equal(CPNS_INFO_CONFIRM, "CPNS 1.1 key confirmation");
    uint8_t GK[CPNS_KEY_LEN];
    test_hex(V_GK_HEX, GK, sizeof GK);
    check_kdf(GK, CPNS_INFO_CONFIRM, V_K_CONFIRM_HEX);
}

/* PROTOCOL.md 4.1: HKDF(GK, "CPNS 1.1 group message") */
static void test_kdf_vector_group_msg(void **state)
{
    (void)state;
    assert_string_equal(CPNS_INFO_GROUP_MSG, "CPNS 1.1 group message");
    uint8_t GK[CPNS_KEY_LEN];
    test_hex(V_GK_HEX, GK, sizeof GK);
    check_kdf(GK, CPNS_INFO_GROUP_MSG, V_K_GROUP_MSG_HEX);
}

/* cpns_kdf is the general HKDF with an empty salt and 32 bytes out */
static void test_kdf_matches_hkdf(void **state)
{
    (void)state;
    uint8_t ikm[CPNS_KEY_LEN], a[CPNS_KEY_LEN], b[CPNS_KEY_LEN];
    v_euk(ikm);
    assert_int_equal(cpns_kdf(ikm, CPNS_INFO_KEY_STORE, a), 0);
    assert_int_equal(cpns_hkdf_sha256(NULL, 0, ikm, sizeof ikm,
                                      (const uint8_t *)"CPNS 1.1 PNE key store", 22, b, sizeof b),
                     0);
    assert_memory_equal(a, b, sizeof a);
    /* different labels, different keys */
    assert_int_equal(cpns_kdf(ikm, CPNS_INFO_WRAP, b), 0);
    assert_memory_not_equal(a, b, sizeof a);
    assert_int_equal(cpns_kdf(ikm, NULL, a), CPNS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hkdf_rfc5869_case1),   cmocka_unit_test(test_hkdf_rfc5869_case2),
        cmocka_unit_test(test_hkdf_rfc5869_case3),   cmocka_unit_test(test_hkdf_bad_length),
        cmocka_unit_test(test_kdf_vector_euk),       cmocka_unit_test(test_kdf_vector_k_wrap),
        cmocka_unit_test(test_kdf_vector_k_auth),    cmocka_unit_test(test_kdf_vector_confirm),
        cmocka_unit_test(test_kdf_vector_group_msg), cmocka_unit_test(test_kdf_matches_hkdf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
