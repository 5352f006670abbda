/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/crypto_group.c, the group messages of PROTOCOL.md section 4:
 * the section 4.1 vector in both directions, the KeyVersion peek the PNE
 * uses to pick current or previous key, and refusal of anything altered.
 */
#include <string.h>

#include "crypto_vectors.h"

#define PT_LEN (sizeof V_GROUP_PT - 1)
#define MSG_LEN (PT_LEN + CPNS_GROUP_MSG_OVERHEAD)

typedef struct fixture {
    uint8_t GK[CPNS_KEY_LEN];
    uint8_t nonce[CPNS_GCM_NONCE_LEN];
    uint8_t msg[MSG_LEN];
} fixture;

static int setup(void **state)
{
    fixture *f = test_malloc(sizeof *f);
    test_hex(V_GK_HEX, f->GK, sizeof f->GK);
    test_hex(V_NONCE_HEX, f->nonce, sizeof f->nonce);
    assert_int_equal(v_b64_decode(V_GROUP_MSG_B64, f->msg, sizeof f->msg), MSG_LEN);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    test_free(*state);
    return 0;
}

/* PROTOCOL.md 4.1: "hello group", sg-family, version 1, the vector nonce */
static void test_group_seal_vector(void **state)
{
    fixture *f = *state;
    uint8_t out[MSG_LEN];
    size_t out_len = 0;
    assert_int_equal(cpns_group_seal(f->GK, V_SGID, V_KEYVERSION, f->nonce,
                                     (const uint8_t *)V_GROUP_PT, PT_LEN, out, &out_len),
                     0);
    assert_int_equal(out_len, MSG_LEN);
    char b64[CPNS_B64_LEN(MSG_LEN) + 1];
    v_b64_encode(out, out_len, b64);
    assert_string_equal(b64, V_GROUP_MSG_B64);
}

static void test_group_open_vector(void **state)
{
    fixture *f = *state;
    uint32_t KeyVersion = 0;
    assert_int_equal(cpns_group_msg_version(f->msg, sizeof f->msg, &KeyVersion), 0);
    assert_int_equal(KeyVersion, V_KEYVERSION);
    uint8_t pt[PT_LEN];
    size_t pt_len = 0;
    assert_int_equal(cpns_group_open(f->GK, V_SGID, f->msg, sizeof f->msg, pt, &pt_len), 0);
    assert_int_equal(pt_len, PT_LEN);
    assert_memory_equal(pt, V_GROUP_PT, PT_LEN);
}

static void expect_auth(const uint8_t *GK, const char *SGID, const uint8_t *blob, size_t len)
{
    uint8_t pt[256];
    size_t pt_len = 99;
    memset(pt, 0, sizeof pt);
    assert_int_equal(cpns_group_open(GK, SGID, blob, len, pt, &pt_len), CPNS_ERR_AUTH);
    assert_int_equal(pt_len, 0);
    v_assert_zero(pt, sizeof pt); /* no unauthenticated plaintext leaks out */
}

static void test_group_open_rejects(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN], blob[MSG_LEN + 1];

    memcpy(GK, f->GK, sizeof GK);
    GK[0] ^= 1;
    expect_auth(GK, V_SGID, f->msg, sizeof f->msg);
    expect_auth(f->GK, "sg-other", f->msg, sizeof f->msg);

    /* another version in the header: the AAD no longer matches */
    memcpy(blob, f->msg, MSG_LEN);
    blob[4] = 2;
    expect_auth(f->GK, V_SGID, blob, MSG_LEN);

    for (size_t len = 0; len < MSG_LEN; len++)
        expect_auth(f->GK, V_SGID, f->msg, len);
    blob[MSG_LEN] = 0;
    memcpy(blob, f->msg, MSG_LEN);
    expect_auth(f->GK, V_SGID, blob, MSG_LEN + 1);

    for (size_t bit = 0; bit < MSG_LEN * 8; bit++) {
        memcpy(blob, f->msg, MSG_LEN);
        blob[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        expect_auth(f->GK, V_SGID, blob, MSG_LEN);
    }
}

static void test_group_msg_version(void **state)
{
    fixture *f = *state;
    uint8_t blob[MSG_LEN];
    uint32_t KeyVersion = 0;
    assert_int_equal(cpns_group_msg_version(f->msg, CPNS_GROUP_MSG_OVERHEAD - 1, &KeyVersion),
                     CPNS_ERR_AUTH);
    memcpy(blob, f->msg, MSG_LEN);
    blob[0] = 0x02;
    assert_int_equal(cpns_group_msg_version(blob, MSG_LEN, &KeyVersion), CPNS_ERR_AUTH);
    memcpy(blob, f->msg, MSG_LEN);
    blob[4] = 0;
    assert_int_equal(cpns_group_msg_version(blob, MSG_LEN, &KeyVersion), CPNS_ERR_AUTH);

    /* big-endian, the full 32 bits */
    uint8_t out[CPNS_GROUP_MSG_OVERHEAD];
    size_t out_len;
    assert_int_equal(cpns_group_seal(f->GK, V_SGID, 0x81020304u, f->nonce, NULL, 0, out, &out_len),
                     0);
    assert_int_equal(out_len, CPNS_GROUP_MSG_OVERHEAD);
    assert_int_equal(cpns_group_msg_version(out, out_len, &KeyVersion), 0);
    assert_int_equal(KeyVersion, 0x81020304u);
    static const uint8_t be[] = {0x81, 0x02, 0x03, 0x04};
    assert_memory_equal(out + 1, be, sizeof be);
}

static void test_group_round_trip(void **state)
{
    fixture *f = *state;
    uint8_t pt[1000], out[sizeof pt + CPNS_GROUP_MSG_OVERHEAD], back[sizeof pt];
    uint64_t seed = 7;
    test_rand(&seed, pt, sizeof pt);
    size_t out_len, back_len;
    assert_int_equal(
        cpns_group_seal(f->GK, "sg.x", 4294967295u, f->nonce, pt, sizeof pt, out, &out_len), 0);
    assert_int_equal(cpns_group_open(f->GK, "sg.x", out, out_len, back, &back_len), 0);
    assert_int_equal(back_len, sizeof pt);
    assert_memory_equal(back, pt, sizeof pt);

    /* the empty message */
    assert_int_equal(cpns_group_seal(f->GK, "sg.x", 3, f->nonce, NULL, 0, out, &out_len), 0);
    assert_int_equal(cpns_group_open(f->GK, "sg.x", out, out_len, NULL, &back_len), 0);
    assert_int_equal(back_len, 0);
}

static void test_group_invalid_args(void **state)
{
    fixture *f = *state;
    uint8_t out[MSG_LEN], pt[PT_LEN];
    size_t n;
    assert_int_equal(cpns_group_seal(f->GK, V_SGID, 0, f->nonce, (const uint8_t *)"x", 1, out, &n),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_group_seal(f->GK, "a b", 1, f->nonce, (const uint8_t *)"x", 1, out, &n),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_group_open(f->GK, "", f->msg, sizeof f->msg, pt, &n),
                     CPNS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_seal_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_open_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_open_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_msg_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_invalid_args, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
