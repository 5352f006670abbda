/*
 * Tests of lib/crypto_mac.c: the registration Proof and the KeyConfirmation
 * of PROTOCOL.md section 4, against the section 4.1 vectors, and the
 * bindings that make them useless for anything but the message they sign.
 */
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proof_vector),
        cmocka_unit_test(test_proof_bindings),
        cmocka_unit_test(test_key_confirmation_vector),
        cmocka_unit_test(test_key_confirmation_bindings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
