/*
 * Tests of lib/crypto_egk.c, the EncryptedGroupKey of PROTOCOL.md section 4:
 * the normative vector of section 4.1 in both directions, and every way a
 * blob must be refused (7.8.6.1 step 1: the PNE checks the EncryptedGroupKey
 * before it trusts the Group Key inside).
 */
#include <string.h>

#include "crypto_vectors.h"

typedef struct fixture {
    uint8_t EUK[CPNS_KEY_LEN];
    uint8_t K_wrap[CPNS_KEY_LEN];
    uint8_t GK[CPNS_KEY_LEN];
    uint8_t nonce[CPNS_GCM_NONCE_LEN];
    uint8_t egk[CPNS_EGK_LEN];
} fixture;

static int setup(void **state)
{
    fixture *f = test_malloc(sizeof *f);
    assert_int_equal(v_b64_decode(V_EUK_B64, f->EUK, sizeof f->EUK), CPNS_KEY_LEN);
    assert_int_equal(cpns_kdf(f->EUK, CPNS_INFO_WRAP, f->K_wrap), 0);
    test_hex(V_GK_HEX, f->GK, sizeof f->GK);
    test_hex(V_NONCE_HEX, f->nonce, sizeof f->nonce);
    assert_int_equal(v_b64_decode(V_EGK_B64, f->egk, sizeof f->egk), CPNS_EGK_LEN);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    test_free(*state);
    return 0;
}

/*
 * 7.8.6.3-3: the EncryptedGroupKey is the Group Key encrypted with that PNE's
 * Entity User Key (through K_wrap = HKDF(EUK, ...)): the PROTOCOL.md 4.1 vector.
 */
static void test_egk_wrap_vector_7_8_6_3_3(void **state)
{
    fixture *f = *state;
    uint8_t out[CPNS_EGK_LEN];
    assert_int_equal(cpns_egk_wrap(f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, f->GK, f->nonce, out),
                     0);
    char b64[CPNS_B64_LEN(CPNS_EGK_LEN) + 1];
    v_b64_encode(out, CPNS_EGK_LEN, b64);
    assert_string_equal(b64, V_EGK_B64);
    assert_int_equal(out[0], 0x01);
    assert_memory_equal(out + 1, f->nonce, CPNS_GCM_NONCE_LEN);
}

/* 7.8.6.1-1: the PNE decrypts the Group Key with the key derived from its EUK */
static void test_egk_unwrap_vector_7_8_6_1_1(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    assert_int_equal(
        cpns_egk_unwrap(f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, f->egk, sizeof f->egk, GK), 0);
    assert_memory_equal(GK, f->GK, CPNS_KEY_LEN);
}

/* 7.8.6.3-3 / 7.8.6.1-1: what one PNE's EUK wraps, only that EUK unwraps */
static void test_egk_round_trip_random_7_8_6_3_3(void **state)
{
    (void)state;
    uint8_t EUK[CPNS_KEY_LEN], K_wrap[CPNS_KEY_LEN], GK[CPNS_KEY_LEN], nonce[CPNS_GCM_NONCE_LEN];
    uint8_t out[CPNS_EGK_LEN], back[CPNS_KEY_LEN];
    uint64_t seed = 42;
    test_rand(&seed, EUK, sizeof EUK);
    test_rand(&seed, GK, sizeof GK);
    test_rand(&seed, nonce, sizeof nonce);
    assert_int_equal(cpns_kdf(EUK, CPNS_INFO_WRAP, K_wrap), 0);
    assert_int_equal(cpns_egk_wrap(K_wrap, "sg:a@b_c.d-e", "p", 4294967295u, GK, nonce, out), 0);
    assert_int_equal(
        cpns_egk_unwrap(K_wrap, "sg:a@b_c.d-e", "p", 4294967295u, out, sizeof out, back), 0);
    assert_memory_equal(back, GK, sizeof GK);
    /* the ciphertext is not the key in clear */
    assert_memory_not_equal(out + 1 + CPNS_GCM_NONCE_LEN, GK, CPNS_KEY_LEN);
}

static void expect_auth(const uint8_t *K_wrap, const char *SGID, const char *PNEID,
                        uint32_t KeyVersion, const uint8_t *blob, size_t len)
{
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, 0xa5, sizeof GK);
    assert_int_equal(cpns_egk_unwrap(K_wrap, SGID, PNEID, KeyVersion, blob, len, GK),
                     CPNS_ERR_AUTH);
    v_assert_zero(GK, sizeof GK);
}

/* 7.8.6.1-1: another PNE's EUK (or the EUK itself, not K_wrap) does not decrypt */
static void test_egk_reject_wrong_key_7_8_6_1_1(void **state)
{
    fixture *f = *state;
    uint8_t other[CPNS_KEY_LEN];
    memcpy(other, f->K_wrap, sizeof other);
    other[31] ^= 0x01;
    expect_auth(other, V_SGID, V_PNEID, V_KEYVERSION, f->egk, sizeof f->egk);
    expect_auth(f->EUK, V_SGID, V_PNEID, V_KEYVERSION, f->egk, sizeof f->egk);
}

/* 7.8.6.1-1: every single bit of the blob is checked */
static void test_egk_reject_every_bit_flip_7_8_6_1_1(void **state)
{
    fixture *f = *state;
    uint8_t blob[CPNS_EGK_LEN];
    for (size_t bit = 0; bit < CPNS_EGK_LEN * 8; bit++) {
        memcpy(blob, f->egk, sizeof blob);
        blob[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        expect_auth(f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, blob, sizeof blob);
    }
}

/* the AAD binds the blob to its SGID, PNEID and KeyVersion */
static void test_egk_reject_wrong_binding(void **state)
{
    fixture *f = *state;
    expect_auth(f->K_wrap, "sg-familY", V_PNEID, V_KEYVERSION, f->egk, sizeof f->egk);
    expect_auth(f->K_wrap, "sg-family2", V_PNEID, V_KEYVERSION, f->egk, sizeof f->egk);
    expect_auth(f->K_wrap, V_SGID, "pne-radio", V_KEYVERSION, f->egk, sizeof f->egk);
    expect_auth(f->K_wrap, V_SGID, "pne-t", V_KEYVERSION, f->egk, sizeof f->egk);
    expect_auth(f->K_wrap, V_SGID, V_PNEID, 2, f->egk, sizeof f->egk);
    expect_auth(f->K_wrap, V_SGID, V_PNEID, 10, f->egk, sizeof f->egk);
    /* the 0x00 separators keep "sg-family|pne-tv" apart from "sg-famil|ypne-tv" */
    expect_auth(f->K_wrap, "sg-famil", "ypne-tv", V_KEYVERSION, f->egk, sizeof f->egk);
}

static void test_egk_reject_length_and_format(void **state)
{
    fixture *f = *state;
    uint8_t blob[CPNS_EGK_LEN + 1];
    for (size_t len = 0; len < CPNS_EGK_LEN; len++)
        expect_auth(f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, f->egk, len);
    memcpy(blob, f->egk, CPNS_EGK_LEN);
    blob[CPNS_EGK_LEN] = 0;
    expect_auth(f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, blob, sizeof blob);

    /* an unknown format byte, even with a blob otherwise valid for it */
    static const uint8_t formats[] = {0x00, 0x02, 0x81, 0xff};
    for (size_t i = 0; i < sizeof formats; i++) {
        memcpy(blob, f->egk, CPNS_EGK_LEN);
        blob[0] = formats[i];
        expect_auth(f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, blob, CPNS_EGK_LEN);
    }
}

static void test_egk_invalid_args(void **state)
{
    fixture *f = *state;
    uint8_t out[CPNS_EGK_LEN], GK[CPNS_KEY_LEN];
    assert_int_equal(cpns_egk_wrap(f->K_wrap, V_SGID, V_PNEID, 0, f->GK, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_egk_wrap(f->K_wrap, "bad sgid", V_PNEID, 1, f->GK, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_egk_wrap(f->K_wrap, V_SGID, "", 1, f->GK, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_egk_wrap(f->K_wrap, NULL, V_PNEID, 1, f->GK, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    memset(GK, 0xa5, sizeof GK);
    assert_int_equal(cpns_egk_unwrap(f->K_wrap, V_SGID, V_PNEID, 0, f->egk, sizeof f->egk, GK),
                     CPNS_ERR_INVALID_ARG);
    v_assert_zero(GK, sizeof GK);
}

/* a fresh nonce per encryption: wrapping the same key twice gives two different blobs */
static void test_egk_fresh_nonce_differs(void **state)
{
    fixture *f = *state;
    uint8_t n1[CPNS_GCM_NONCE_LEN], n2[CPNS_GCM_NONCE_LEN];
    uint8_t a[CPNS_EGK_LEN], b[CPNS_EGK_LEN], GK[CPNS_KEY_LEN];
    assert_int_equal(cpns_random(NULL, n1, sizeof n1), 0);
    assert_int_equal(cpns_random(NULL, n2, sizeof n2), 0);
    assert_int_equal(cpns_egk_wrap(f->K_wrap, V_SGID, V_PNEID, 1, f->GK, n1, a), 0);
    assert_int_equal(cpns_egk_wrap(f->K_wrap, V_SGID, V_PNEID, 1, f->GK, n2, b), 0);
    assert_memory_not_equal(a, b, CPNS_EGK_LEN);
    assert_int_equal(cpns_egk_unwrap(f->K_wrap, V_SGID, V_PNEID, 1, a, sizeof a, GK), 0);
    assert_memory_equal(GK, f->GK, sizeof GK);
    assert_int_equal(cpns_egk_unwrap(f->K_wrap, V_SGID, V_PNEID, 1, b, sizeof b, GK), 0);
    assert_memory_equal(GK, f->GK, sizeof GK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_egk_wrap_vector_7_8_6_3_3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_egk_unwrap_vector_7_8_6_1_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_egk_round_trip_random_7_8_6_3_3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_egk_reject_wrong_key_7_8_6_1_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_egk_reject_every_bit_flip_7_8_6_1_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_egk_reject_wrong_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_egk_reject_length_and_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_egk_invalid_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_egk_fresh_nonce_differs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
