/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/crypto_egk.c, the EncryptedGroupKey of PROTOCOL.md section 4:
 * the normative vector of section 4.1 in both directions, and every way a
 * blob must be refused (7.8.6.1 step 1: the PNE checks the EncryptedGroupKey
 * before it trusts the Group Key inside). The same for the _ctx variants on a
 * reused cpns_gcm (issue #4): byte for byte what the one-shots give, and a
 * context that refused a blob still works for the next one.
 */
#include <string.h>

#include "crypto_vectors.h"

typedef struct fixture {
    uint8_t EUK[CPNS_KEY_LEN];
    uint8_t K_wrap[CPNS_KEY_LEN];
    uint8_t GK[CPNS_KEY_LEN];
    uint8_t nonce[CPNS_GCM_NONCE_LEN];
    uint8_t egk[CPNS_EGK_LEN];
    cpns_gcm *gcm; /* only with setup_ctx */
} fixture;

static int setup(void **state)
{
    fixture *f = test_calloc(1, sizeof *f);
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

/* --- the reusable context: cpns_egk_wrap_ctx / cpns_egk_unwrap_ctx --- */

static int setup_ctx(void **state)
{
    setup(state);
    fixture *f = *state;
    assert_int_equal(cpns_gcm_new(&f->gcm), 0);
    return 0;
}

static int teardown_ctx(void **state)
{
    fixture *f = *state;
    cpns_gcm_free(f->gcm);
    return teardown(state);
}

static void ctx_expect_vector_wrap(fixture *f)
{
    uint8_t out[CPNS_EGK_LEN];
    assert_int_equal(
        cpns_egk_wrap_ctx(f->gcm, f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, f->GK, f->nonce, out),
        0);
    char b64[CPNS_B64_LEN(CPNS_EGK_LEN) + 1];
    v_b64_encode(out, CPNS_EGK_LEN, b64);
    assert_string_equal(b64, V_EGK_B64);
}

static void ctx_expect_vector_unwrap(fixture *f)
{
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, 0xa5, sizeof GK);
    assert_int_equal(cpns_egk_unwrap_ctx(f->gcm, f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, f->egk,
                                         sizeof f->egk, GK),
                     0);
    assert_memory_equal(GK, f->GK, CPNS_KEY_LEN);
}

/*
 * 7.8.6.3-3 / 7.8.6.1-1: the PROTOCOL.md 4.1 vector through the context, both
 * ways, several times and with the direction switching on the same context.
 */
static void test_egk_ctx_vector_7_8_6_3_3(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 3; i++)
        ctx_expect_vector_wrap(f);
    for (int i = 0; i < 3; i++)
        ctx_expect_vector_unwrap(f);
    ctx_expect_vector_wrap(f);
    ctx_expect_vector_unwrap(f);
    ctx_expect_vector_wrap(f);
}

/* an identifier of 1..CPNS_ID_MAX characters drawn from the whole alphabet */
static void random_id(uint64_t *seed, char id[CPNS_ID_MAX + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-";
    uint8_t r[CPNS_ID_MAX + 1];
    test_rand(seed, r, sizeof r);
    size_t n = 1 + r[0] % CPNS_ID_MAX;
    if (r[1] < 32)
        n = CPNS_ID_MAX; /* the longest AAD, often enough */
    for (size_t i = 0; i < n; i++)
        id[i] = alphabet[r[i + 1] % (sizeof alphabet - 1)];
    id[n] = '\0';
    if (strspn(id, ".") == n)
        id[0] = 'x'; /* dot-only identifiers are refused (INTERPRETATIONS 43) */
    assert_true(cpns_id_valid(id));
}

/*
 * 7.8.6.3-3: over many random keys, Group Keys, nonces, identifiers and
 * versions, one context re-keyed for each gives exactly the one-shot blob,
 * and both unwraps (context and one-shot) give the Group Key back.
 */
static void test_egk_ctx_equals_oneshot_random_7_8_6_3_3(void **state)
{
    fixture *f = *state;
    uint64_t seed = 4;
    for (int i = 0; i < 2000; i++) {
        uint8_t K_wrap[CPNS_KEY_LEN], GK[CPNS_KEY_LEN], nonce[CPNS_GCM_NONCE_LEN], kv[4];
        uint8_t a[CPNS_EGK_LEN], b[CPNS_EGK_LEN], back[CPNS_KEY_LEN];
        char SGID[CPNS_ID_MAX + 1], PNEID[CPNS_ID_MAX + 1];
        test_rand(&seed, K_wrap, sizeof K_wrap);
        test_rand(&seed, GK, sizeof GK);
        test_rand(&seed, nonce, sizeof nonce);
        test_rand(&seed, kv, sizeof kv);
        random_id(&seed, SGID);
        random_id(&seed, PNEID);
        uint32_t KeyVersion =
            (uint32_t)kv[0] << 24 | (uint32_t)kv[1] << 16 | (uint32_t)kv[2] << 8 | kv[3];
        if (KeyVersion == 0 || i % 7 == 0)
            KeyVersion = i % 2 ? 4294967295u : 1;
        memset(a, 0x11, sizeof a);
        memset(b, 0x22, sizeof b);
        assert_int_equal(cpns_egk_wrap(K_wrap, SGID, PNEID, KeyVersion, GK, nonce, a), 0);
        assert_int_equal(cpns_egk_wrap_ctx(f->gcm, K_wrap, SGID, PNEID, KeyVersion, GK, nonce, b),
                         0);
        assert_memory_equal(a, b, CPNS_EGK_LEN);
        memset(back, 0xa5, sizeof back);
        assert_int_equal(
            cpns_egk_unwrap_ctx(f->gcm, K_wrap, SGID, PNEID, KeyVersion, b, sizeof b, back), 0);
        assert_memory_equal(back, GK, sizeof GK);
        memset(back, 0xa5, sizeof back);
        assert_int_equal(cpns_egk_unwrap(K_wrap, SGID, PNEID, KeyVersion, b, sizeof b, back), 0);
        assert_memory_equal(back, GK, sizeof GK);
    }
}

static void ctx_expect_auth(fixture *f, const uint8_t *K_wrap, const char *SGID, const char *PNEID,
                            uint32_t KeyVersion, const uint8_t *blob, size_t len)
{
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, 0xa5, sizeof GK);
    assert_int_equal(cpns_egk_unwrap_ctx(f->gcm, K_wrap, SGID, PNEID, KeyVersion, blob, len, GK),
                     CPNS_ERR_AUTH);
    v_assert_zero(GK, sizeof GK);
    /* the same context opens the next, good blob */
    ctx_expect_vector_unwrap(f);
}

/*
 * 7.8.6.1-1: a context refuses every bit flip, a wrong key, a wrong binding
 * (SGID, PNEID, KeyVersion), a wrong length or format, and after each refusal
 * the same context unwraps a good blob and still wraps the vector.
 */
static void test_egk_ctx_refusal_then_good_7_8_6_1_1(void **state)
{
    fixture *f = *state;
    uint8_t blob[CPNS_EGK_LEN + 1];
    for (size_t bit = 0; bit < CPNS_EGK_LEN * 8; bit++) {
        memcpy(blob, f->egk, CPNS_EGK_LEN);
        blob[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ctx_expect_auth(f, f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, blob, CPNS_EGK_LEN);
    }
    uint8_t other[CPNS_KEY_LEN];
    memcpy(other, f->K_wrap, sizeof other);
    other[0] ^= 0x80;
    ctx_expect_auth(f, other, V_SGID, V_PNEID, V_KEYVERSION, f->egk, CPNS_EGK_LEN);
    ctx_expect_auth(f, f->EUK, V_SGID, V_PNEID, V_KEYVERSION, f->egk, CPNS_EGK_LEN);
    ctx_expect_auth(f, f->K_wrap, "sg-family2", V_PNEID, V_KEYVERSION, f->egk, CPNS_EGK_LEN);
    ctx_expect_auth(f, f->K_wrap, V_SGID, "pne-radio", V_KEYVERSION, f->egk, CPNS_EGK_LEN);
    ctx_expect_auth(f, f->K_wrap, V_SGID, V_PNEID, 2, f->egk, CPNS_EGK_LEN);
    ctx_expect_auth(f, f->K_wrap, "sg-famil", "ypne-tv", V_KEYVERSION, f->egk, CPNS_EGK_LEN);
    ctx_expect_auth(f, f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, f->egk, CPNS_EGK_LEN - 1);
    memcpy(blob, f->egk, CPNS_EGK_LEN);
    blob[CPNS_EGK_LEN] = 0;
    ctx_expect_auth(f, f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, blob, sizeof blob);
    blob[0] = 0x02;
    ctx_expect_auth(f, f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, blob, CPNS_EGK_LEN);
    /* a refusal right before a wrap does not disturb the wrap either */
    memcpy(blob, f->egk, CPNS_EGK_LEN);
    blob[CPNS_EGK_LEN - 1] ^= 0x01;
    uint8_t GK[CPNS_KEY_LEN];
    assert_int_equal(cpns_egk_unwrap_ctx(f->gcm, f->K_wrap, V_SGID, V_PNEID, V_KEYVERSION, blob,
                                         CPNS_EGK_LEN, GK),
                     CPNS_ERR_AUTH);
    ctx_expect_vector_wrap(f);
}

/* NULL and invalid arguments: the documented errors, out/GK left zeroed, context still usable */
static void test_egk_ctx_invalid_args(void **state)
{
    fixture *f = *state;
    uint8_t out[CPNS_EGK_LEN], GK[CPNS_KEY_LEN];
    assert_int_equal(cpns_egk_wrap_ctx(NULL, f->K_wrap, V_SGID, V_PNEID, 1, f->GK, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    memset(GK, 0xa5, sizeof GK);
    assert_int_equal(
        cpns_egk_unwrap_ctx(NULL, f->K_wrap, V_SGID, V_PNEID, 1, f->egk, sizeof f->egk, GK),
        CPNS_ERR_INVALID_ARG);
    v_assert_zero(GK, sizeof GK);
    assert_int_equal(
        cpns_egk_unwrap_ctx(NULL, f->K_wrap, V_SGID, V_PNEID, 1, f->egk, sizeof f->egk, NULL),
        CPNS_ERR_INVALID_ARG);

    assert_int_equal(cpns_egk_wrap_ctx(f->gcm, NULL, V_SGID, V_PNEID, 1, f->GK, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_egk_wrap_ctx(f->gcm, f->K_wrap, V_SGID, V_PNEID, 1, NULL, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_egk_wrap_ctx(f->gcm, f->K_wrap, V_SGID, V_PNEID, 1, f->GK, NULL, out),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(
        cpns_egk_wrap_ctx(f->gcm, f->K_wrap, V_SGID, V_PNEID, 1, f->GK, f->nonce, NULL),
        CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_egk_wrap_ctx(f->gcm, f->K_wrap, V_SGID, V_PNEID, 0, f->GK, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_egk_wrap_ctx(f->gcm, f->K_wrap, NULL, V_PNEID, 1, f->GK, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(
        cpns_egk_wrap_ctx(f->gcm, f->K_wrap, "bad sgid", V_PNEID, 1, f->GK, f->nonce, out),
        CPNS_ERR_INVALID_ARG);
    /* one character over CPNS_ID_MAX, for both variants */
    char long_id[CPNS_ID_MAX + 2];
    memset(long_id, 'p', CPNS_ID_MAX + 1);
    long_id[CPNS_ID_MAX + 1] = '\0';
    assert_int_equal(cpns_egk_wrap_ctx(f->gcm, f->K_wrap, V_SGID, long_id, 1, f->GK, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_egk_wrap(f->K_wrap, V_SGID, long_id, 1, f->GK, f->nonce, out),
                     CPNS_ERR_INVALID_ARG);
    long_id[CPNS_ID_MAX] = '\0';
    assert_int_equal(
        cpns_egk_wrap_ctx(f->gcm, f->K_wrap, long_id, long_id, 1, f->GK, f->nonce, out), 0);

    memset(GK, 0xa5, sizeof GK);
    assert_int_equal(
        cpns_egk_unwrap_ctx(f->gcm, NULL, V_SGID, V_PNEID, 1, f->egk, sizeof f->egk, GK),
        CPNS_ERR_INVALID_ARG);
    v_assert_zero(GK, sizeof GK);
    memset(GK, 0xa5, sizeof GK);
    assert_int_equal(cpns_egk_unwrap_ctx(f->gcm, f->K_wrap, V_SGID, V_PNEID, 1, NULL, 1, GK),
                     CPNS_ERR_INVALID_ARG);
    v_assert_zero(GK, sizeof GK);
    memset(GK, 0xa5, sizeof GK);
    assert_int_equal(
        cpns_egk_unwrap_ctx(f->gcm, f->K_wrap, V_SGID, "", 1, f->egk, sizeof f->egk, GK),
        CPNS_ERR_INVALID_ARG);
    v_assert_zero(GK, sizeof GK);
    assert_int_equal(
        cpns_egk_unwrap_ctx(f->gcm, f->K_wrap, V_SGID, V_PNEID, 1, f->egk, sizeof f->egk, NULL),
        CPNS_ERR_INVALID_ARG);

    /* none of that touched the context */
    ctx_expect_vector_wrap(f);
    ctx_expect_vector_unwrap(f);
    cpns_gcm_free(NULL);
}

/* two contexts are independent: keys used on one do not leak into the other */
static void test_egk_ctx_two_contexts(void **state)
{
    fixture *f = *state;
    cpns_gcm *other = NULL;
    assert_int_equal(cpns_gcm_new(&other), 0);
    uint8_t key2[CPNS_KEY_LEN], out[CPNS_EGK_LEN];
    memset(key2, 0x5a, sizeof key2);
    assert_int_equal(
        cpns_egk_wrap_ctx(other, key2, V_SGID, V_PNEID, V_KEYVERSION, f->GK, f->nonce, out), 0);
    ctx_expect_vector_wrap(f);
    ctx_expect_vector_unwrap(f);
    uint8_t GK[CPNS_KEY_LEN];
    assert_int_equal(
        cpns_egk_unwrap_ctx(other, key2, V_SGID, V_PNEID, V_KEYVERSION, out, sizeof out, GK), 0);
    assert_memory_equal(GK, f->GK, sizeof GK);
    cpns_gcm_free(other);
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
        cmocka_unit_test_setup_teardown(test_egk_ctx_vector_7_8_6_3_3, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_egk_ctx_equals_oneshot_random_7_8_6_3_3, setup_ctx,
                                        teardown_ctx),
        cmocka_unit_test_setup_teardown(test_egk_ctx_refusal_then_good_7_8_6_1_1, setup_ctx,
                                        teardown_ctx),
        cmocka_unit_test_setup_teardown(test_egk_ctx_invalid_args, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_egk_ctx_two_contexts, setup_ctx, teardown_ctx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
