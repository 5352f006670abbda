/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the message model helpers of lib/msg.c: kind names, init, the
 * identifier rule of PROTOCOL.md section 1, and the setters.
 */
#include <string.h>

#include "support.h"

static void test_kind_names(void **state)
{
    (void)state;
    static const struct {
        cpns_msg_kind kind;
        const char *name;
    } names[] = {
        {CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, "SGroupKeyDeliveryRequest"},
        {CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE, "SGroupKeyDeliveryResponse"},
        {CPNS_MSG_PNGW_REGISTRATION_REQUEST, "PNGWRegistrationRequest"},
        {CPNS_MSG_PNGW_REGISTRATION_RESPONSE, "PNGWRegistrationResponse"},
        {CPNS_MSG_PNE_REGISTRATION_REQUEST, "PNERegistrationRequest"},
        {CPNS_MSG_PNE_REGISTRATION_RESPONSE, "PNERegistrationResponse"},
        {CPNS_MSG_PNE_STATUS_NOTIFICATION, "PNEStatusNotification"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_string_equal(cpns_msg_kind_name(names[i].kind), names[i].name);
    assert_string_equal(cpns_msg_kind_name(CPNS_MSG_NONE), "?");
    assert_string_equal(cpns_msg_kind_name((cpns_msg_kind)99), "?");
    assert_string_equal(cpns_msg_kind_name((cpns_msg_kind)-1), "?");
}

static void test_init(void **state)
{
    (void)state;
    cpns_msg m;
    memset(&m, 0xa5, sizeof m);
    cpns_msg_init(&m, CPNS_MSG_PNE_STATUS_NOTIFICATION, 42);
    assert_int_equal(m.kind, CPNS_MSG_PNE_STATUS_NOTIFICATION);
    assert_int_equal(m.TransactionID, 42);
    assert_int_equal(m.present, CPNS_F_TID);
    assert_string_equal(m.PNEID, "");
    assert_int_equal(m.EncryptedGroupKey.len, 0);
}

static void test_id_valid(void **state)
{
    (void)state;
    char longest[CPNS_ID_MAX + 2];
    memset(longest, 'a', CPNS_ID_MAX);
    longest[CPNS_ID_MAX] = '\0';
    assert_true(cpns_id_valid(longest));
    longest[CPNS_ID_MAX] = 'a';
    longest[CPNS_ID_MAX + 1] = '\0';
    assert_false(cpns_id_valid(longest));

    assert_true(cpns_id_valid("pne-tv"));
    assert_true(cpns_id_valid("A.z_0:9@x-y"));
    assert_true(cpns_id_valid("7"));
    assert_false(cpns_id_valid(""));
    assert_false(cpns_id_valid(NULL));
    static const char *const bad[] = {"a b",         "a/b",  "a+b", "a\"b", "a<b", "a&b",
                                      "caf\xc3\xa9", "a\tb", "a,b", "a#b",  "a%b", "[a]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(cpns_id_valid(bad[i]));
}

static void test_set_id(void **state)
{
    (void)state;
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, 1);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNGWID, "gw-1"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "pn@home"), 0);
    assert_string_equal(m.PNGWID, "gw-1");
    assert_string_equal(m.PNID, "pn@home");
    assert_int_equal(m.present, CPNS_F_TID | CPNS_F_PNGWID | CPNS_F_PNID);

    /* an invalid identifier leaves the model untouched */
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "bad id"), CPNS_ERR_INVALID_ARG);
    assert_string_equal(m.PNID, "pn@home");
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, ""), CPNS_ERR_INVALID_ARG);
    assert_false(m.present & CPNS_F_SGID);
    /* a bit that is not an identifier field */
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_KEYVERSION, "x"), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID | CPNS_F_PNEID, "x"), CPNS_ERR_INVALID_ARG);
    assert_int_equal(m.present, CPNS_F_TID | CPNS_F_PNGWID | CPNS_F_PNID);

    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, "sg-family"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, "pne-tv"), 0);
    assert_string_equal(m.SGID, "sg-family");
    assert_string_equal(m.PNEID, "pne-tv");
}

static void test_set_blob(void **state)
{
    (void)state;
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_REQUEST, 1);
    uint8_t data[CPNS_BLOB_MAX + 1];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;

    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_NONCE, data, CPNS_NONCE_LEN), 0);
    assert_int_equal(m.Nonce.len, CPNS_NONCE_LEN);
    assert_memory_equal(m.Nonce.data, data, CPNS_NONCE_LEN);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_PROOF, data, CPNS_BLOB_MAX), 0);
    assert_int_equal(m.Proof.len, CPNS_BLOB_MAX);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_EGK, data, CPNS_EGK_LEN), 0);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_KC, data, CPNS_KC_LEN), 0);
    assert_int_equal(m.present, CPNS_F_TID | CPNS_F_NONCE | CPNS_F_PROOF | CPNS_F_EGK | CPNS_F_KC);

    /* a shorter value replaces a longer one completely */
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_PROOF, data + 1, 2), 0);
    assert_int_equal(m.Proof.len, 2);
    assert_int_equal(m.Proof.data[0], 1);
    assert_int_equal(m.Proof.data[2], 0);

    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_PROOF, data, CPNS_BLOB_MAX + 1),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(m.Proof.len, 2);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_SGID, data, 1), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_EGK, NULL, 3), CPNS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names), cmocka_unit_test(test_init),
        cmocka_unit_test(test_id_valid),   cmocka_unit_test(test_set_id),
        cmocka_unit_test(test_set_blob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
