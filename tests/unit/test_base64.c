/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the strict base64 of lib/base64.c: the RFC 4648 vectors, round
 * trips, and the canonical-form rules (padding, alphabet, no whitespace, zero
 * pad bits) that make every byte string have exactly one accepted encoding.
 */
#include <string.h>

#include "support.h"

static void check_pair(const char *plain, const char *enc)
{
    char out[64];
    size_t n = strlen(plain);
    assert_int_equal(cpns_b64_encode((const uint8_t *)plain, n, out, sizeof out), strlen(enc));
    assert_string_equal(out, enc);
    uint8_t back[64];
    size_t len = 99;
    assert_int_equal(cpns_b64_decode(enc, strlen(enc), back, sizeof back, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(back, plain, n);
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    check_pair("", "");
    check_pair("f", "Zg==");
    check_pair("fo", "Zm8=");
    check_pair("foo", "Zm9v");
    check_pair("foob", "Zm9vYg==");
    check_pair("fooba", "Zm9vYmE=");
    check_pair("foobar", "Zm9vYmFy");
}

static void test_round_trip_all_lengths(void **state)
{
    (void)state;
    uint64_t seed = 7;
    for (size_t n = 0; n <= 100; n++) {
        uint8_t data[100], back[100];
        char enc[CPNS_B64_LEN(100) + 1];
        test_rand(&seed, data, n);
        int len = cpns_b64_encode(data, n, enc, sizeof enc);
        assert_int_equal(len, CPNS_B64_LEN(n));
        assert_int_equal(strlen(enc), (size_t)len);
        size_t got = 0;
        assert_int_equal(cpns_b64_decode(enc, (size_t)len, back, sizeof back, &got), 0);
        assert_int_equal(got, n);
        assert_memory_equal(back, data, n);
    }
}

static void test_encode_too_small(void **state)
{
    (void)state;
    char out[9];
    const uint8_t d[6] = {1, 2, 3, 4, 5, 6};
    /* 8 characters need 9 bytes with the NUL */
    assert_int_equal(cpns_b64_encode(d, 6, out, 8), CPNS_ERR_TOO_LARGE);
    assert_int_equal(cpns_b64_encode(d, 6, out, 9), 8);
    assert_int_equal(cpns_b64_encode(d, 0, out, 0), CPNS_ERR_TOO_LARGE);
    assert_int_equal(cpns_b64_encode(d, 0, out, 1), 0);
    assert_string_equal(out, "");
}

static int decode_str(const char *s)
{
    uint8_t out[64];
    size_t len;
    return cpns_b64_decode(s, strlen(s), out, sizeof out, &len);
}

static void test_decode_rejects_non_strict(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg",                                                /* no padding */
        "Zg=",                                               /* short padding */
        "Zm9vY",                                             /* length not a multiple of 4 */
        "Zg==Zg==",                                          /* padding in the middle */
        "Z===",                                              /* three pad characters */
        "====",                                              /* nothing but padding */
        "Zm=v",                                              /* '=' before a symbol */
        "Zm9v\nYg==", "Zm9v Yg==", " Zm9vYg=", "Zm9vYg==\n", /* whitespace */
        "Zm9-",       "Zm9_",                                /* URL-safe alphabet */
        "Zm9*",       "Zm9\xc3",                             /* not base64 at all */
        "Zh==",       "Zm9=",                                /* non-zero pad bits */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (decode_str(bad[i]) != CPNS_ERR_MALFORMED)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* an embedded NUL is not base64 either */
    uint8_t out[8];
    size_t len;
    assert_int_equal(cpns_b64_decode("Zm\0v", 4, out, sizeof out, &len), CPNS_ERR_MALFORMED);
}

/* Exactly one of the spellings that differ only in pad bits is accepted. */
static void test_decode_unique_encoding(void **state)
{
    (void)state;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int accepted2 = 0, accepted1 = 0;
    for (int c = 0; c < 64; c++) {
        char s2[5] = {'Q', alphabet[c], '=', '=', 0};
        char s1[5] = {'Q', 'Q', alphabet[c], '=', 0};
        int rv2 = decode_str(s2), rv1 = decode_str(s1);
        assert_int_equal(rv2 == 0, (c & 0x0f) == 0);
        assert_int_equal(rv1 == 0, (c & 0x03) == 0);
        accepted2 += rv2 == 0;
        accepted1 += rv1 == 0;
    }
    assert_int_equal(accepted2, 4);
    assert_int_equal(accepted1, 16);
}

/* Valid but longer than the buffer: the true length is reported, cap bytes written. */
static void test_decode_too_large_keeps_length(void **state)
{
    (void)state;
    uint8_t out[8];
    memset(out, 0xee, sizeof out);
    size_t len = 0;
    assert_int_equal(cpns_b64_decode("Zm9vYmFy", 8, out, 4, &len), CPNS_ERR_TOO_LARGE);
    assert_int_equal(len, 6);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(out[4], 0xee);
    /* a malformed tail still wins over the length */
    assert_int_equal(cpns_b64_decode("Zm9vYm*y", 8, out, 4, &len), CPNS_ERR_MALFORMED);
}

/* Every one of the 256 byte values, in each of the four positions: accepted exactly when in the
 * alphabet. */
static void test_decode_every_byte(void **state)
{
    (void)state;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int c = 0; c < 256; c++) {
        const char *at = c ? strchr(alphabet, c) : NULL;
        for (int pos = 0; pos < 4; pos++) {
            char enc[9] = "AAAAAAAA";
            enc[pos] = (char)c;
            uint8_t out[6];
            size_t len = 0;
            int rv = cpns_b64_decode(enc, 8, out, sizeof out, &len);
            if (!at) {
                assert_int_equal(rv, CPNS_ERR_MALFORMED);
                continue;
            }
            assert_int_equal(rv, 0);
            assert_int_equal(len, 6);
            /* the symbol's value lands in its 6 bits of the first 3 bytes */
            uint32_t v = (uint32_t)out[0] << 16 | (uint32_t)out[1] << 8 | out[2];
            assert_int_equal(v, (uint32_t)(at - alphabet) << (6 * (3 - pos)));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_round_trip_all_lengths),
        cmocka_unit_test(test_encode_too_small),
        cmocka_unit_test(test_decode_rejects_non_strict),
        cmocka_unit_test(test_decode_unique_encoding),
        cmocka_unit_test(test_decode_too_large_keeps_length),
        cmocka_unit_test(test_decode_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
