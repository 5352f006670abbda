/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of cpns_msg_encode() (lib/codec_encode.c): the exact compact output,
 * round trips of all seven kinds through the decoder, the model checks that
 * give CPNS_ERR_INVALID_ARG, the buffer bound, and that encoding never
 * allocates. The 4-byte framing is tested in test_frame.c.
 */
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define HDR                                                                                        \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CPNSMessage "                                      \
    "xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" TransactionID=\"8812\">"
#define EGK_B64                                                                                    \
    "AQABAgMEBQYHCAkKC45q4IHgR6NOzNjPvzx/4bpRc46Qq5o/KxsQcqMJyl2i9QN21K5E0iH8ECZuJd7D+w=="

static void set_b64(cpns_msg *m, uint32_t bit, const char *b64)
{
    uint8_t buf[CPNS_BLOB_MAX];
    size_t len;
    assert_int_equal(cpns_b64_decode(b64, strlen(b64), buf, sizeof buf, &len), 0);
    assert_int_equal(cpns_msg_set_blob(m, bit, buf, len), 0);
}

static void request(cpns_msg *m)
{
    cpns_msg_init(m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, 8812);
    assert_int_equal(cpns_msg_set_id(m, CPNS_F_SGID, "sg-family"), 0);
    assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, "pne-tv"), 0);
    m->KeyVersion = 1;
    m->present |= CPNS_F_KEYVERSION;
    set_b64(m, CPNS_F_EGK, EGK_B64);
}

static void response(cpns_msg *m, uint32_t Return)
{
    cpns_msg_init(m, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE, 8812);
    m->Return = Return;
    m->present |= CPNS_F_RETURN;
    assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNID, "pn-home"), 0);
    assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, "pne-tv"), 0);
    if (Return != CPNS_RETURN_MALFORMED) {
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_SGID, "sg-family"), 0);
        m->KeyVersion = 1;
        m->present |= CPNS_F_KEYVERSION;
    }
    if (Return == CPNS_RETURN_SUCCESS)
        set_b64(m, CPNS_F_KC, "SyIoa3oG/Z50VPpF4+qQ4w==");
}

/* One model of every kind (and the response's variants), as the engines build them. */
static int sample(int i, cpns_msg *m)
{
    switch (i) {
    case 0:
        request(m);
        return 1;
    case 1:
        response(m, CPNS_RETURN_SUCCESS);
        return 1;
    case 2:
        response(m, CPNS_RETURN_MALFORMED);
        return 1;
    case 3:
        response(m, CPNS_RETURN_UNREACHABLE);
        return 1;
    case 4:
        cpns_msg_init(m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, 1);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNGWID, "gw-1"), 0);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNID, "pn-home"), 0);
        return 1;
    case 5:
        cpns_msg_init(m, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, CPNS_TID_MAX);
        m->Return = CPNS_RETURN_AUTH;
        m->present |= CPNS_F_RETURN;
        return 1;
    case 6:
        cpns_msg_init(m, CPNS_MSG_PNE_REGISTRATION_REQUEST, 99);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, "pne-tv"), 0);
        set_b64(m, CPNS_F_NONCE, "AAECAwQFBgcICQoLDA0ODw==");
        m->Time = 1795000000;
        m->present |= CPNS_F_TIME;
        set_b64(m, CPNS_F_PROOF, "IG6OVa07Ua8kAvA2hcTp23dr17ipMlco/SzHwLXYeGk=");
        return 1;
    case 7:
        cpns_msg_init(m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, 99);
        m->Return = 0;
        m->present |= CPNS_F_RETURN;
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, "pne-tv"), 0);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNID, "pn-home"), 0);
        return 1;
    case 8:
        cpns_msg_init(m, CPNS_MSG_PNE_STATUS_NOTIFICATION, 5);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, "pne-tv"), 0);
        m->Status = CPNS_STATUS_DETACHED;
        m->present |= CPNS_F_STATUS;
        return 1;
    default:
        return 0;
    }
}

static void assert_same_model(const cpns_msg *a, const cpns_msg *b)
{
    assert_int_equal(a->kind, b->kind);
    uint32_t pa = a->present & ~CPNS_F_GROUPKEYINFO, pb = b->present & ~CPNS_F_GROUPKEYINFO;
    assert_int_equal(pa, pb);
    assert_int_equal(a->TransactionID, b->TransactionID);
    assert_string_equal(a->SGID, b->SGID);
    assert_string_equal(a->PNEID, b->PNEID);
    assert_string_equal(a->PNID, b->PNID);
    assert_string_equal(a->PNGWID, b->PNGWID);
    assert_int_equal(a->KeyVersion, b->KeyVersion);
    assert_int_equal(a->Return, b->Return);
    assert_int_equal(a->Time, b->Time);
    assert_int_equal(a->Status, b->Status);
    const cpns_blob *ba[] = {&a->EncryptedGroupKey, &a->KeyConfirmation, &a->Nonce, &a->Proof};
    const cpns_blob *bb[] = {&b->EncryptedGroupKey, &b->KeyConfirmation, &b->Nonce, &b->Proof};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ba[i]->len, bb[i]->len);
        assert_memory_equal(ba[i]->data, bb[i]->data, ba[i]->len);
    }
}

static void test_round_trip_every_kind(void **state)
{
    (void)state;
    cpns_msg m, back, again;
    int kinds_seen = 0;
    for (int i = 0; sample(i, &m); i++) {
        uint8_t buf[2048], buf2[2048];
        size_t len = 0, len2 = 0;
        assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);
        assert_int_equal(cpns_msg_decode(buf, len, &back), 0);
        assert_same_model(&m, &back);
        /* the decoded model encodes to the same bytes: one encoding per model */
        assert_int_equal(cpns_msg_encode(&back, buf2, sizeof buf2, &len2), 0);
        assert_int_equal(len, len2);
        assert_memory_equal(buf, buf2, len);
        assert_int_equal(cpns_msg_peek(buf, len, &again), 0);
        assert_int_equal(again.kind, m.kind);
        kinds_seen |= 1 << m.kind;
    }
    assert_int_equal(kinds_seen, 0xfe); /* kinds 1..7 */
}

/* 7.8.6.3-2, 7.8.6.3-3: the request carries SGID and GroupKeyInfo with PNEID and EncryptedGroupKey
 */
static void test_request_format_7_8_6_3_2_and_3(void **state)
{
    (void)state;
    cpns_msg m;
    request(&m);
    uint8_t buf[1024];
    size_t len;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);
    static const char expected[] =
        HDR "<SGroupKeyDeliveryRequest SGID=\"sg-family\"><GroupKeyInfo PNEID=\"pne-tv\" "
            "KeyVersion=\"1\" EncryptedGroupKey=\"" EGK_B64
            "\"/></SGroupKeyDeliveryRequest></CPNSMessage>";
    assert_int_equal(len, sizeof expected - 1);
    assert_memory_equal(buf, expected, len);
}

/* 7.8.6.1-3, 7.8.6.1-4, 7.8.6.1-5: the response in the CPNS message format with Return and PNID */
static void test_response_format_7_8_6_1_3_4_5(void **state)
{
    (void)state;
    cpns_msg m, back;
    response(&m, CPNS_RETURN_SUCCESS);
    uint8_t buf[1024];
    size_t len;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);
    static const char expected[] =
        HDR "<SGroupKeyDeliveryResponse Return=\"1\" PNID=\"pn-home\" SGID=\"sg-family\" "
            "PNEID=\"pne-tv\" KeyVersion=\"1\" KeyConfirmation=\"SyIoa3oG/Z50VPpF4+qQ4w==\"/>"
            "</CPNSMessage>";
    assert_int_equal(len, sizeof expected - 1);
    assert_memory_equal(buf, expected, len);
    assert_int_equal(cpns_msg_decode(buf, len, &back), 0);
    assert_int_equal(back.Return, 1);
    assert_string_equal(back.PNID, "pn-home");

    /* Return is written for every value, PNID always */
    response(&m, CPNS_RETURN_MALFORMED);
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);
    static const char expected4[] =
        HDR "<SGroupKeyDeliveryResponse Return=\"4\" PNID=\"pn-home\" PNEID=\"pne-tv\"/>"
            "</CPNSMessage>";
    assert_int_equal(len, sizeof expected4 - 1);
    assert_memory_equal(buf, expected4, len);
}

/* Every required field, removed in turn, makes the model invalid. */
static void test_missing_mandatory_field(void **state)
{
    (void)state;
    cpns_msg m;
    uint8_t buf[1024];
    size_t len;
    for (int i = 0; sample(i, &m); i++) {
        uint32_t present = m.present;
        for (uint32_t bit = 1; bit <= CPNS_F_STATUS; bit <<= 1) {
            if (!(present & bit))
                continue;
            m.present = present & ~bit;
            int rv = cpns_msg_encode(&m, buf, sizeof buf, &len);
            if (rv != CPNS_ERR_INVALID_ARG)
                fail_msg("sample %d encodes without bit 0x%x", i, bit);
        }
    }
    /* a Return 2 response needs its echoes */
    response(&m, CPNS_RETURN_MALFORMED);
    m.Return = CPNS_RETURN_DECRYPT;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
    /* KeyConfirmation is optional when Return is not 1 */
    response(&m, CPNS_RETURN_STORAGE);
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);
    set_b64(&m, CPNS_F_KC, "AAAAAAAAAAAAAAAAAAAAAA==");
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);
}

static void test_invalid_values(void **state)
{
    (void)state;
    cpns_msg m;
    uint8_t buf[1024];
    size_t len;

    request(&m);
    m.TransactionID = 0;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
    m.TransactionID = (uint64_t)CPNS_TID_MAX + 1;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);

    request(&m);
    m.KeyVersion = 0;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);

    request(&m);
    strcpy(m.SGID, "bad sgid");
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
    request(&m);
    strcpy(m.PNEID, "a\"/><x");
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
    request(&m);
    memset(m.PNEID, 'a', sizeof m.PNEID); /* no terminating NUL */
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);

    request(&m);
    m.EncryptedGroupKey.len = 0;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
    m.EncryptedGroupKey.len = CPNS_BLOB_MAX + 1;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
    m.EncryptedGroupKey.len = CPNS_BLOB_MAX;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);

    assert_true(sample(6, &m));
    m.Nonce.len = CPNS_NONCE_LEN - 1;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
    assert_true(sample(6, &m));
    m.Time = (uint64_t)INT64_MAX + 1;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
    m.Time = 0;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);

    assert_true(sample(8, &m));
    m.Status = (cpns_pne_status)0;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);

    request(&m);
    m.kind = CPNS_MSG_NONE;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
    m.kind = (cpns_msg_kind)42;
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_msg_encode(NULL, buf, sizeof buf, &len), CPNS_ERR_INVALID_ARG);
}

/* Fields the kind does not have are not written, whatever their bits say. */
static void test_foreign_fields_not_written(void **state)
{
    (void)state;
    cpns_msg m;
    uint8_t buf[1024];
    size_t len;
    assert_true(sample(5, &m));
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNGWID, "gw-1"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, "sg"), 0);
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);
    static const char expected[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CPNSMessage "
        "xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
        "TransactionID=\"9223372036854775807\"><PNGWRegistrationResponse Return=\"8\"/>"
        "</CPNSMessage>";
    assert_int_equal(len, sizeof expected - 1);
    assert_memory_equal(buf, expected, len);
}

static void test_buffer_too_small(void **state)
{
    (void)state;
    cpns_msg m;
    uint8_t buf[1024];
    size_t len = 0, need;
    request(&m);
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &need), 0);
    for (size_t cap = 0; cap < need; cap++) {
        len = 12345;
        assert_int_equal(cpns_msg_encode(&m, buf, cap, &len), CPNS_ERR_TOO_LARGE);
        assert_int_equal(len, 12345);
    }
    assert_int_equal(cpns_msg_encode(&m, buf, need, &len), 0);
    assert_int_equal(len, need);
    /* an invalid model says so whatever the buffer */
    m.KeyVersion = 0;
    assert_int_equal(cpns_msg_encode(&m, buf, 1, &len), CPNS_ERR_INVALID_ARG);
}

static int allocations;

static void *count_malloc(size_t n, void *arg)
{
    (void)arg;
    allocations++;
    return malloc(n);
}

static void *count_realloc(void *p, size_t n, void *arg)
{
    (void)arg;
    allocations++;
    return realloc(p, n);
}

static void count_free(void *p, void *arg)
{
    (void)arg;
    free(p);
}

static void test_encode_never_allocates(void **state)
{
    (void)state;
    cpns_allocator a = {count_malloc, count_realloc, count_free, NULL};
    cpns_msg m;
    uint8_t buf[1024];
    size_t len;
    allocations = 0;
    cpns_set_allocator(&a);
    for (int i = 0; sample(i, &m); i++)
        assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);
    int during_encode = allocations;
    /* the counter itself works: decoding allocates */
    assert_int_equal(cpns_msg_decode(buf, len, &m), 0);
    cpns_set_allocator(NULL);
    assert_int_equal(during_encode, 0);
    assert_true(allocations > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_kind),
        cmocka_unit_test(test_request_format_7_8_6_3_2_and_3),
        cmocka_unit_test(test_response_format_7_8_6_1_3_4_5),
        cmocka_unit_test(test_missing_mandatory_field),
        cmocka_unit_test(test_invalid_values),
        cmocka_unit_test(test_foreign_fields_not_written),
        cmocka_unit_test(test_buffer_too_small),
        cmocka_unit_test(test_encode_never_allocates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
