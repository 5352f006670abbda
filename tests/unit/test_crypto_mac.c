/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/crypto_mac.c: the registration Proof and the KeyConfirmation
 * of PROTOCOL.md section 4, against the section 4.1 vectors, and the
 * bindings that make them useless for anything but the message they sign.
 */
#include <stdio.h>
#include <string.h>

#include "crypto_internal.h"
#include "crypto_vectors.h"

static void vector_k_auth(uint8_t K_auth[CPNS_KEY_LEN])
{
    uint8_t EUK[CPNS_KEY_LEN];
    v_euk(EUK);
    assert_int_equal(cpns_kdf(EUK, CPNS_INFO_AUTH, K_auth), 0);
}

/* PROTOCOL.md 4.1: Proof for PNEID "pne-tv", the given Nonce and Time */
static void test_proof_vector(void **state)
{
    (void)state;
    uint8_t K_auth[CPNS_KEY_LEN], proof[CPNS_PROOF_LEN];
    vector_k_auth(K_auth);
    assert_int_equal(cpns_proof(K_auth, V_PNEID, V_REG_NONCE, V_REG_TIME, proof), 0);
    char b64[CPNS_B64_LEN(CPNS_PROOF_LEN) + 1];
    v_b64_encode(proof, sizeof proof, b64);
    assert_string_equal(b64, V_PROOF_B64);
}

static void test_proof_bindings(void **state)
{
    (void)state;
    uint8_t K_auth[CPNS_KEY_LEN], expect[CPNS_PROOF_LEN], proof[CPNS_PROOF_LEN];
    vector_k_auth(K_auth);
    assert_int_equal(v_b64_decode(V_PROOF_B64, expect, sizeof expect), CPNS_PROOF_LEN);

    assert_int_equal(cpns_proof(K_auth, "pne-radio", V_REG_NONCE, V_REG_TIME, proof), 0);
    assert_memory_not_equal(proof, expect, sizeof proof);
    assert_int_equal(cpns_proof(K_auth, V_PNEID, "AAECAwQFBgcICQoLDA0OEA==", V_REG_TIME, proof), 0);
    assert_memory_not_equal(proof, expect, sizeof proof);
    assert_int_equal(cpns_proof(K_auth, V_PNEID, V_REG_NONCE, "1795000001", proof), 0);
    assert_memory_not_equal(proof, expect, sizeof proof);
    K_auth[0] ^= 1;
    assert_int_equal(cpns_proof(K_auth, V_PNEID, V_REG_NONCE, V_REG_TIME, proof), 0);
    assert_memory_not_equal(proof, expect, sizeof proof);

    assert_int_equal(cpns_proof(K_auth, "bad id", V_REG_NONCE, V_REG_TIME, proof),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_proof(K_auth, V_PNEID, NULL, V_REG_TIME, proof), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_proof(K_auth, V_PNEID, V_REG_NONCE, NULL, proof), CPNS_ERR_INVALID_ARG);
}

/* PROTOCOL.md 4.1: KeyConfirmation for (GK, sg-family, pne-tv, 1) */
static void test_key_confirmation_vector(void **state)
{
    (void)state;
    uint8_t GK[CPNS_KEY_LEN], kc[CPNS_KC_LEN];
    test_hex(V_GK_HEX, GK, sizeof GK);
    assert_int_equal(cpns_key_confirmation(GK, V_SGID, V_PNEID, V_KEYVERSION, kc), 0);
    char b64[CPNS_B64_LEN(CPNS_KC_LEN) + 1];
    v_b64_encode(kc, sizeof kc, b64);
    assert_string_equal(b64, V_KC_B64);
}

/* a KeyConfirmation proves this key, for this member, group and version only */
static void test_key_confirmation_bindings(void **state)
{
    (void)state;
    uint8_t GK[CPNS_KEY_LEN], expect[CPNS_KC_LEN], kc[CPNS_KC_LEN];
    test_hex(V_GK_HEX, GK, sizeof GK);
    assert_int_equal(v_b64_decode(V_KC_B64, expect, sizeof expect), CPNS_KC_LEN);

    assert_int_equal(cpns_key_confirmation(GK, "sg-other", V_PNEID, V_KEYVERSION, kc), 0);
    assert_memory_not_equal(kc, expect, sizeof kc);
    assert_int_equal(cpns_key_confirmation(GK, V_SGID, "pne-radio", V_KEYVERSION, kc), 0);
    assert_memory_not_equal(kc, expect, sizeof kc);
    assert_int_equal(cpns_key_confirmation(GK, V_SGID, V_PNEID, 2, kc), 0);
    assert_memory_not_equal(kc, expect, sizeof kc);
    GK[31] ^= 0x80;
    assert_int_equal(cpns_key_confirmation(GK, V_SGID, V_PNEID, V_KEYVERSION, kc), 0);
    assert_memory_not_equal(kc, expect, sizeof kc);

    assert_int_equal(cpns_key_confirmation(GK, V_SGID, V_PNEID, 0, kc), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_key_confirmation(GK, "", V_PNEID, 1, kc), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_key_confirmation(GK, V_SGID, "a/b", 1, kc), CPNS_ERR_INVALID_ARG);
}

/*
 * The server's two-step KeyConfirmation (keyed once per Group Key, one HMAC
 * per response) gives the 4.1 vector and the one-shot's value for every
 * member, version and key, on one keyed object used many times.
 */
static void test_key_confirmation_keyed_once(void **state)
{
    (void)state;
    uint8_t GK[CPNS_KEY_LEN], kc[CPNS_KC_LEN], one_shot[CPNS_KC_LEN];
    test_hex(V_GK_HEX, GK, sizeof GK);
    cpns_hmac *K_confirm;
    assert_int_equal(cpns_key_confirmation_key(GK, &K_confirm), 0);
    assert_int_equal(cpns_key_confirmation_with(K_confirm, V_SGID, V_PNEID, V_KEYVERSION, kc), 0);
    char b64[CPNS_B64_LEN(CPNS_KC_LEN) + 1];
    v_b64_encode(kc, sizeof kc, b64);
    assert_string_equal(b64, V_KC_B64);
    cpns_hmac_free(K_confirm);

    uint64_t seed = 7;
    for (int k = 0; k < 8; k++) {
        test_rand(&seed, GK, sizeof GK);
        assert_int_equal(cpns_key_confirmation_key(GK, &K_confirm), 0);
        for (uint32_t i = 1; i <= 50; i++) {
            char PNEID[32];
            snprintf(PNEID, sizeof PNEID, "pne-%u", i * 7919u);
            uint32_t KeyVersion = i == 50 ? UINT32_MAX : i;
            assert_int_equal(cpns_key_confirmation_with(K_confirm, "sg-x", PNEID, KeyVersion, kc),
                             0);
            assert_int_equal(cpns_key_confirmation(GK, "sg-x", PNEID, KeyVersion, one_shot), 0);
            assert_memory_equal(kc, one_shot, sizeof kc);
        }
        assert_int_equal(cpns_key_confirmation_with(K_confirm, "sg-x", "bad id", 1, kc),
                         CPNS_ERR_INVALID_ARG);
        assert_int_equal(cpns_key_confirmation_with(K_confirm, "sg-x", "pne-1", 0, kc),
                         CPNS_ERR_INVALID_ARG);
        cpns_hmac_free(K_confirm);
    }
    assert_int_equal(cpns_key_confirmation_with(NULL, "sg-x", "pne-1", 1, kc),
                     CPNS_ERR_INVALID_ARG);
    cpns_hmac_free(NULL);
}

/* The PNE's reusable SHA-256 context: the 4.1 vector and the one-shot's value, reused. */
static void test_key_confirmation_on_context(void **state)
{
    (void)state;
    uint8_t GK[CPNS_KEY_LEN], kc[CPNS_KC_LEN], one_shot[CPNS_KC_LEN];
    test_hex(V_GK_HEX, GK, sizeof GK);
    cpns_sha256 *h = NULL;
    assert_int_equal(cpns_sha256_new(&h), 0);
    assert_int_equal(cpns_key_confirmation_ctx(h, GK, V_SGID, V_PNEID, V_KEYVERSION, kc), 0);
    char b64[CPNS_B64_LEN(CPNS_KC_LEN) + 1];
    v_b64_encode(kc, sizeof kc, b64);
    assert_string_equal(b64, V_KC_B64);

    uint64_t seed = 11;
    for (uint32_t i = 1; i <= 300; i++) {
        test_rand(&seed, GK, sizeof GK);
        char PNEID[32];
        snprintf(PNEID, sizeof PNEID, "pne-%u", i);
        uint32_t KeyVersion = i % 7 ? i : UINT32_MAX;
        assert_int_equal(cpns_key_confirmation_ctx(h, GK, "sg-y", PNEID, KeyVersion, kc), 0);
        assert_int_equal(cpns_key_confirmation(GK, "sg-y", PNEID, KeyVersion, one_shot), 0);
        assert_memory_equal(kc, one_shot, sizeof kc);
        if (i % 50 == 0) /* a refused call leaves the context usable */
            assert_int_equal(cpns_key_confirmation_ctx(h, GK, "sg-y", "no good", 1, kc),
                             CPNS_ERR_INVALID_ARG);
    }
    assert_int_equal(cpns_key_confirmation_ctx(NULL, GK, "sg-y", "pne-1", 1, kc),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_key_confirmation_ctx(h, GK, "sg-y", "pne-1", 0, kc),
                     CPNS_ERR_INVALID_ARG);
    cpns_sha256_free(h);
    cpns_sha256_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proof_vector),
        cmocka_unit_test(test_proof_bindings),
        cmocka_unit_test(test_key_confirmation_vector),
        cmocka_unit_test(test_key_confirmation_bindings),
        cmocka_unit_test(test_key_confirmation_keyed_once),
        cmocka_unit_test(test_key_confirmation_on_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
