/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of cpns_msg_decode() and cpns_msg_peek() (lib/codec_decode.c): the
 * PROTOCOL.md section 3 example, every rejection rule of section 3 with its
 * own test, forward compatibility (unknown attributes and children ignored),
 * and the partial model left behind on failure for a Return 4 answer. The
 * peek and allocation failures are in test_codec_peek.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
#define ROOT                                                                                       \
    "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" TransactionID=\"8812\">"
#define PRE DECL ROOT
#define POST "</CPNSMessage>"
#define EGK_B64                                                                                    \
    "AQABAgMEBQYHCAkKC45q4IHgR6NOzNjPvzx/4bpRc46Qq5o/KxsQcqMJyl2i9QN21K5E0iH8ECZuJd7D+w=="
#define KC_B64 "SyIoa3oG/Z50VPpF4+qQ4w=="
#define NONCE_B64 "AAECAwQFBgcICQoLDA0ODw=="
#define PROOF_B64 "IG6OVa07Ua8kAvA2hcTp23dr17ipMlco/SzHwLXYeGk="

#define REQUEST_BODY                                                                               \
    "<SGroupKeyDeliveryRequest SGID=\"sg-family\"><GroupKeyInfo PNEID=\"pne-tv\" "                 \
    "KeyVersion=\"1\" EncryptedGroupKey=\"" EGK_B64 "\"/></SGroupKeyDeliveryRequest>"

static int dec(const char *s, cpns_msg *m)
{
    return cpns_msg_decode((const uint8_t *)s, strlen(s), m);
}

/* Decodes PRE body POST. */
static int dec_body(const char *body, cpns_msg *m)
{
    char doc[4096];
    int n = snprintf(doc, sizeof doc, PRE "%s" POST, body);
    assert_true(n > 0 && (size_t)n < sizeof doc);
    return dec(doc, m);
}

/* The document of PROTOCOL.md section 3, whitespace and all. */
static void test_protocol_example(void **state)
{
    (void)state;
    static const char doc[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                              "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                              "TransactionID=\"8812\">\n"
                              "  <SGroupKeyDeliveryRequest SGID=\"sg-family\">\n"
                              "    <GroupKeyInfo PNEID=\"pne-tv\" KeyVersion=\"1\"\n"
                              "                  EncryptedGroupKey=\"" EGK_B64 "\"/>\n"
                              "  </SGroupKeyDeliveryRequest>\n"
                              "</CPNSMessage>\n";
    cpns_msg m;
    assert_int_equal(dec(doc, &m), 0);
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    assert_int_equal(m.TransactionID, 8812);
    assert_string_equal(m.SGID, "sg-family");
    assert_string_equal(m.PNEID, "pne-tv");
    assert_int_equal(m.KeyVersion, 1);
    assert_int_equal(m.EncryptedGroupKey.len, CPNS_EGK_LEN);
    uint8_t head[13];
    test_hex("01000102030405060708090a0b", head, sizeof head);
    assert_memory_equal(m.EncryptedGroupKey.data, head, sizeof head);
    assert_int_equal(m.present, CPNS_F_TID | CPNS_F_SGID | CPNS_F_GROUPKEYINFO | CPNS_F_PNEID |
                                    CPNS_F_KEYVERSION | CPNS_F_EGK);
}

static void test_each_kind_decodes(void **state)
{
    (void)state;
    cpns_msg m;
    assert_int_equal(dec_body("<SGroupKeyDeliveryResponse Return=\"1\" PNID=\"pn-1\" "
                              "SGID=\"sg-family\" PNEID=\"pne-tv\" KeyVersion=\"1\" "
                              "KeyConfirmation=\"" KC_B64 "\"/>",
                              &m),
                     0);
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
    assert_int_equal(m.Return, 1);
    assert_string_equal(m.PNID, "pn-1");
    assert_int_equal(m.KeyConfirmation.len, CPNS_KC_LEN);

    assert_int_equal(dec_body("<PNGWRegistrationRequest PNGWID=\"gw-1\" PNID=\"pn-1\"/>", &m), 0);
    assert_int_equal(m.kind, CPNS_MSG_PNGW_REGISTRATION_REQUEST);
    assert_string_equal(m.PNGWID, "gw-1");

    assert_int_equal(dec_body("<PNGWRegistrationResponse Return=\"8\"/>", &m), 0);
    assert_int_equal(m.kind, CPNS_MSG_PNGW_REGISTRATION_RESPONSE);
    assert_int_equal(m.Return, 8);

    assert_int_equal(dec_body("<PNERegistrationRequest PNEID=\"pne-tv\" Nonce=\"" NONCE_B64
                              "\" Time=\"1795000000\" Proof=\"" PROOF_B64 "\"/>",
                              &m),
                     0);
    assert_int_equal(m.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
    assert_int_equal(m.Time, 1795000000);
    assert_int_equal(m.Nonce.len, CPNS_NONCE_LEN);
    assert_int_equal(m.Proof.len, CPNS_PROOF_LEN);

    assert_int_equal(
        dec_body("<PNERegistrationResponse Return=\"1\" PNEID=\"pne-tv\" PNID=\"pn-1\"/>", &m), 0);
    assert_int_equal(m.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);

    assert_int_equal(dec_body("<PNEStatusNotification PNEID=\"pne-tv\" Status=\"detached\"/>", &m),
                     0);
    assert_int_equal(m.Status, CPNS_STATUS_DETACHED);
    assert_int_equal(dec_body("<PNEStatusNotification PNEID=\"pne-tv\" Status=\"attached\"/>", &m),
                     0);
    assert_int_equal(m.Status, CPNS_STATUS_ATTACHED);
}

/*
 * For every kind, each mandatory attribute of PROTOCOL.md 3.1 left out in
 * turn makes the message malformed, while the full set decodes.
 */
typedef struct kind_case {
    const char *element;
    const char *attrs[6]; /* on the message element */
    const char *gki[4];   /* on GroupKeyInfo, for the delivery request */
} kind_case;

static const kind_case kind_cases[] = {
    {"SGroupKeyDeliveryRequest",
     {"SGID=\"sg-family\""},
     {"PNEID=\"pne-tv\"", "KeyVersion=\"1\"", "EncryptedGroupKey=\"" EGK_B64 "\""}},
    {"SGroupKeyDeliveryResponse",
     {"Return=\"1\"", "PNID=\"pn-1\"", "SGID=\"sg-family\"", "PNEID=\"pne-tv\"", "KeyVersion=\"1\"",
      "KeyConfirmation=\"" KC_B64 "\""},
     {NULL}},
    {"PNGWRegistrationRequest", {"PNGWID=\"gw-1\"", "PNID=\"pn-1\""}, {NULL}},
    {"PNGWRegistrationResponse", {"Return=\"1\""}, {NULL}},
    {"PNERegistrationRequest",
     {"PNEID=\"pne-tv\"", "Nonce=\"" NONCE_B64 "\"", "Time=\"1795000000\"",
      "Proof=\"" PROOF_B64 "\""},
     {NULL}},
    {"PNERegistrationResponse", {"Return=\"1\"", "PNEID=\"pne-tv\"", "PNID=\"pn-1\""}, {NULL}},
    {"PNEStatusNotification", {"PNEID=\"pne-tv\"", "Status=\"attached\""}, {NULL}},
};

static void build_case(char *doc, size_t cap, const kind_case *c, int skip)
{
    int k = 0;
    size_t n = (size_t)snprintf(doc, cap, PRE "<%s", c->element);
    for (int i = 0; i < 6 && c->attrs[i]; i++, k++)
        if (k != skip)
            n += (size_t)snprintf(doc + n, cap - n, " %s", c->attrs[i]);
    if (c->gki[0]) {
        n += (size_t)snprintf(doc + n, cap - n, "><GroupKeyInfo");
        for (int i = 0; i < 4 && c->gki[i]; i++, k++)
            if (k != skip)
                n += (size_t)snprintf(doc + n, cap - n, " %s", c->gki[i]);
        n += (size_t)snprintf(doc + n, cap - n, "/></%s>" POST, c->element);
    } else {
        n += (size_t)snprintf(doc + n, cap - n, "/>" POST);
    }
    assert_true(n < cap);
}

static void test_missing_mandatory_attribute_per_kind(void **state)
{
    (void)state;
    char doc[1024];
    for (size_t c = 0; c < sizeof kind_cases / sizeof kind_cases[0]; c++) {
        const kind_case *kc = &kind_cases[c];
        build_case(doc, sizeof doc, kc, -1);
        cpns_msg m;
        if (dec(doc, &m) != 0)
            fail_msg("complete %s rejected", kc->element);
        int nattrs = 0;
        while (nattrs < 6 && kc->attrs[nattrs])
            nattrs++;
        for (int i = 0; i < 4 && kc->gki[i]; i++)
            nattrs++;
        for (int skip = 0; skip < nattrs; skip++) {
            build_case(doc, sizeof doc, kc, skip);
            if (dec(doc, &m) != CPNS_ERR_MALFORMED)
                fail_msg("%s without attribute %d accepted", kc->element, skip);
            assert_int_equal(m.kind, (cpns_msg_kind)(c + 1));
            assert_true(m.present & CPNS_F_TID);
        }
    }
}

/* The conditional rules of SGroupKeyDeliveryResponse (PROTOCOL.md 3.1 and msg.h). */
static void test_response_conditional_attributes(void **state)
{
    (void)state;
    cpns_msg m;
    /* a Return 4 answer to a request that lacked them leaves the echoes out */
    assert_int_equal(
        dec_body("<SGroupKeyDeliveryResponse Return=\"4\" PNID=\"pn-1\" PNEID=\"pne-tv\"/>", &m),
        0);
    assert_false(m.present & (CPNS_F_SGID | CPNS_F_KEYVERSION));
    /* ... but any other Return needs them */
    assert_int_equal(
        dec_body("<SGroupKeyDeliveryResponse Return=\"2\" PNID=\"pn-1\" PNEID=\"pne-tv\"/>", &m),
        CPNS_ERR_MALFORMED);
    assert_int_equal(dec_body("<SGroupKeyDeliveryResponse Return=\"2\" PNID=\"pn-1\" "
                              "PNEID=\"pne-tv\" SGID=\"sg\"/>",
                              &m),
                     CPNS_ERR_MALFORMED);
    /* KeyConfirmation only with Return 1 */
    assert_int_equal(dec_body("<SGroupKeyDeliveryResponse Return=\"2\" PNID=\"pn-1\" "
                              "PNEID=\"pne-tv\" SGID=\"sg\" KeyVersion=\"3\"/>",
                              &m),
                     0);
    assert_int_equal(dec_body("<SGroupKeyDeliveryResponse Return=\"1\" PNID=\"pn-1\" "
                              "PNEID=\"pne-tv\" SGID=\"sg\" KeyVersion=\"3\"/>",
                              &m),
                     CPNS_ERR_MALFORMED);
    /* PNEID is mandatory even in a Return 4 */
    assert_int_equal(dec_body("<SGroupKeyDeliveryResponse Return=\"4\" PNID=\"pn-1\"/>", &m),
                     CPNS_ERR_MALFORMED);
    /* unknown Return values are carried as they are; the engines map them to 0 */
    assert_int_equal(dec_body("<SGroupKeyDeliveryResponse Return=\"4294967295\" PNID=\"pn-1\" "
                              "PNEID=\"pne-tv\" SGID=\"sg\" KeyVersion=\"3\"/>",
                              &m),
                     0);
    assert_int_equal(m.Return, 4294967295u);
}

static void test_bad_identifier(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",        "a b",
        "a/b",     "caf\xc3\xa9",
        "a&amp;b", " a",
        "a&#10;",  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    char body[256];
    cpns_msg m;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body, "<PNEStatusNotification PNEID=\"%s\" Status=\"attached\"/>",
                 bad[i]);
        if (dec_body(body, &m) != CPNS_ERR_MALFORMED)
            fail_msg("identifier \"%s\" accepted", bad[i]);
        assert_false(m.present & CPNS_F_PNEID);
    }
    /* 64 characters is the longest, and character references are just characters */
    assert_int_equal(dec_body("<PNEStatusNotification PNEID=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaa\" Status=\"attached\"/>",
                              &m),
                     0);
    assert_int_equal(strlen(m.PNEID), 64);
    assert_int_equal(
        dec_body("<PNEStatusNotification PNEID=\"pne&#x2D;tv\" Status=\"attached\"/>", &m), 0);
    assert_string_equal(m.PNEID, "pne-tv");
}

static int dec_keyversion(const char *v, cpns_msg *m)
{
    char body[512];
    snprintf(body, sizeof body,
             "<SGroupKeyDeliveryRequest SGID=\"sg\"><GroupKeyInfo PNEID=\"p\" KeyVersion=\"%s\" "
             "EncryptedGroupKey=\"" EGK_B64 "\"/></SGroupKeyDeliveryRequest>",
             v);
    return dec_body(body, m);
}

static int dec_tid(const char *v, cpns_msg *m)
{
    char doc[512];
    snprintf(doc, sizeof doc,
             "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
             "TransactionID=\"%s\"><PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>",
             v);
    return dec(doc, m);
}

static void test_bad_numbers(void **state)
{
    (void)state;
    cpns_msg m;
    static const char *const bad_kv[] = {"0",
                                         "01",
                                         "+1",
                                         "-1",
                                         "4294967296",
                                         " 1",
                                         "1 ",
                                         "1a",
                                         "",
                                         "1.0",
                                         "0x1",
                                         "１",
                                         "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad_kv / sizeof bad_kv[0]; i++)
        if (dec_keyversion(bad_kv[i], &m) != CPNS_ERR_MALFORMED)
            fail_msg("KeyVersion \"%s\" accepted", bad_kv[i]);
    assert_int_equal(dec_keyversion("4294967295", &m), 0);
    assert_int_equal(m.KeyVersion, 4294967295u);

    static const char *const bad_tid[] = {"0",
                                          "00",
                                          "08812",
                                          "+8812",
                                          "-1",
                                          "9223372036854775808",
                                          "18446744073709551615",
                                          "18446744073709551616",
                                          ""};
    for (size_t i = 0; i < sizeof bad_tid / sizeof bad_tid[0]; i++) {
        if (dec_tid(bad_tid[i], &m) != CPNS_ERR_MALFORMED)
            fail_msg("TransactionID \"%s\" accepted", bad_tid[i]);
        assert_false(m.present & CPNS_F_TID);
    }
    assert_int_equal(dec_tid("9223372036854775807", &m), 0);
    assert_int_equal(m.TransactionID, 9223372036854775807u);
    assert_int_equal(dec_tid("1", &m), 0);

    /* Time: 0 is fine, 2^63 is not */
    char body[512];
    static const struct {
        const char *v;
        int rv;
    } times[] = {{"0", 0},
                 {"9223372036854775807", 0},
                 {"9223372036854775808", CPNS_ERR_MALFORMED},
                 {"00", CPNS_ERR_MALFORMED},
                 {"-5", CPNS_ERR_MALFORMED}};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        snprintf(body, sizeof body,
                 "<PNERegistrationRequest PNEID=\"p\" Nonce=\"" NONCE_B64
                 "\" Time=\"%s\" Proof=\"" PROOF_B64 "\"/>",
                 times[i].v);
        assert_int_equal(dec_body(body, &m), times[i].rv);
    }
    /* Return: 0 is fine, leading zeros and 2^32 are not */
    assert_int_equal(dec_body("<PNGWRegistrationResponse Return=\"0\"/>", &m), 0);
    assert_int_equal(dec_body("<PNGWRegistrationResponse Return=\"007\"/>", &m),
                     CPNS_ERR_MALFORMED);
    assert_int_equal(dec_body("<PNGWRegistrationResponse Return=\"4294967296\"/>", &m),
                     CPNS_ERR_MALFORMED);
}

static void test_bad_base64(void **state)
{
    (void)state;
    cpns_msg m;
    static const char *const bad[] = {
        "", "AQAB=", "AQ=B", "AQ==AQ==", "AR==", "AQ", "A Q==", "AQ==&#10;", "AQ-_", "AQ*="};
    char body[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body,
                 "<SGroupKeyDeliveryRequest SGID=\"sg\"><GroupKeyInfo PNEID=\"p\" KeyVersion=\"1\" "
                 "EncryptedGroupKey=\"%s\"/></SGroupKeyDeliveryRequest>",
                 bad[i]);
        if (dec_body(body, &m) != CPNS_ERR_MALFORMED)
            fail_msg("EncryptedGroupKey \"%s\" accepted", bad[i]);
        assert_false(m.present & CPNS_F_EGK);
    }
    /* Nonce is exactly 16 bytes */
    assert_int_equal(dec_body("<PNERegistrationRequest PNEID=\"p\" Nonce=\"AAECAwQFBgcICQoLDA0O\" "
                              "Time=\"1\" Proof=\"" PROOF_B64 "\"/>",
                              &m),
                     CPNS_ERR_MALFORMED);
    assert_false(m.present & CPNS_F_NONCE);
    assert_int_equal(
        dec_body("<PNERegistrationRequest PNEID=\"p\" Nonce=\"AAECAwQFBgcICQoLDA0ODxA=\" "
                 "Time=\"1\" Proof=\"" PROOF_B64 "\"/>",
                 &m),
        CPNS_ERR_MALFORMED);
    /* the other blob lengths are the engines' business: Return 2, auth failure */
    assert_int_equal(dec_body("<SGroupKeyDeliveryRequest SGID=\"sg\"><GroupKeyInfo PNEID=\"p\" "
                              "KeyVersion=\"1\" EncryptedGroupKey=\"AQ==\"/>"
                              "</SGroupKeyDeliveryRequest>",
                              &m),
                     0);
    assert_int_equal(m.EncryptedGroupKey.len, 1);
}

/* A blob longer than the model's room keeps its true length and its first bytes. */
static void test_long_blob_keeps_length(void **state)
{
    (void)state;
    uint8_t data[100];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7);
    char b64[CPNS_B64_LEN(100) + 1];
    assert_int_equal(cpns_b64_encode(data, sizeof data, b64, sizeof b64), CPNS_B64_LEN(100));
    char body[512];
    snprintf(body, sizeof body,
             "<PNERegistrationRequest PNEID=\"p\" Nonce=\"" NONCE_B64
             "\" Time=\"1\" Proof=\"%s\"/>",
             b64);
    cpns_msg m;
    assert_int_equal(dec_body(body, &m), 0);
    assert_int_equal(m.Proof.len, 100);
    assert_memory_equal(m.Proof.data, data, CPNS_BLOB_MAX);
}

static void test_bad_status(void **state)
{
    (void)state;
    cpns_msg m;
    static const char *const bad[] = {"Attached", "attached ", "", "gone", "1"};
    char body[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body, "<PNEStatusNotification PNEID=\"p\" Status=\"%s\"/>", bad[i]);
        assert_int_equal(dec_body(body, &m), CPNS_ERR_MALFORMED);
    }
}

static void test_second_root_and_trailing_garbage(void **state)
{
    (void)state;
    cpns_msg m;
    assert_int_equal(dec(PRE REQUEST_BODY POST PRE REQUEST_BODY POST, &m), CPNS_ERR_MALFORMED);
    assert_int_equal(dec(PRE REQUEST_BODY POST "<x/>", &m), CPNS_ERR_MALFORMED);
    assert_int_equal(dec(PRE REQUEST_BODY POST "garbage", &m), CPNS_ERR_MALFORMED);
    assert_int_equal(dec(PRE REQUEST_BODY POST "\x00", &m), 0); /* strlen stops at the NUL */
    static const char with_nul[] = PRE REQUEST_BODY POST "\0";
    assert_int_equal(cpns_msg_decode((const uint8_t *)with_nul, sizeof with_nul, &m),
                     CPNS_ERR_MALFORMED);
    /* a truncated document */
    static const char full[] = PRE REQUEST_BODY POST;
    assert_int_equal(cpns_msg_decode((const uint8_t *)full, sizeof full - 2, &m),
                     CPNS_ERR_MALFORMED);
    /* trailing whitespace, comments and PIs are allowed by XML */
    assert_int_equal(dec(PRE REQUEST_BODY POST "\n<!-- c --><?pi x?>\n", &m), 0);
}

static void test_second_child_of_root(void **state)
{
    (void)state;
    cpns_msg m;
    assert_int_equal(dec(PRE REQUEST_BODY REQUEST_BODY POST, &m), CPNS_ERR_MALFORMED);
    assert_int_equal(dec(PRE REQUEST_BODY "<Extra/>" POST, &m), CPNS_ERR_MALFORMED);
    assert_int_equal(dec(PRE REQUEST_BODY "<x:Extra xmlns:x=\"urn:other\"/>" POST, &m),
                     CPNS_ERR_MALFORMED);
    /* the first message was fully read and stays readable for the Return 4 */
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    assert_string_equal(m.SGID, "sg-family");
    /* no child at all */
    assert_int_equal(dec(PRE POST, &m), CPNS_ERR_MALFORMED);
    assert_int_equal(m.kind, CPNS_MSG_NONE);
    assert_true(m.present & CPNS_F_TID);
}

static void test_second_group_key_info(void **state)
{
    (void)state;
    cpns_msg m;
    assert_int_equal(
        dec_body("<SGroupKeyDeliveryRequest SGID=\"sg\">"
                 "<GroupKeyInfo PNEID=\"a\" KeyVersion=\"1\" EncryptedGroupKey=\"AQ==\"/>"
                 "<GroupKeyInfo PNEID=\"b\" KeyVersion=\"1\" EncryptedGroupKey=\"AQ==\"/>"
                 "</SGroupKeyDeliveryRequest>",
                 &m),
        CPNS_ERR_MALFORMED);
    assert_string_equal(m.PNEID, "a");
    /* no GroupKeyInfo at all */
    assert_int_equal(dec_body("<SGroupKeyDeliveryRequest SGID=\"sg\"/>", &m), CPNS_ERR_MALFORMED);
    assert_false(m.present & CPNS_F_GROUPKEYINFO);
    /* a GroupKeyInfo outside the CPNS namespace is an unknown element, so it is missing */
    assert_int_equal(dec_body("<SGroupKeyDeliveryRequest SGID=\"sg\"><GroupKeyInfo xmlns=\"urn:x\" "
                              "PNEID=\"a\" KeyVersion=\"1\" EncryptedGroupKey=\"AQ==\"/>"
                              "</SGroupKeyDeliveryRequest>",
                              &m),
                     CPNS_ERR_MALFORMED);
}

static void test_doctype_rejected(void **state)
{
    (void)state;
    cpns_msg m;
    assert_int_equal(
        dec("<?xml version=\"1.0\"?><!DOCTYPE CPNSMessage>" ROOT REQUEST_BODY POST, &m),
        CPNS_ERR_MALFORMED);
    assert_int_equal(
        dec("<!DOCTYPE CPNSMessage SYSTEM \"cpns.dtd\">"
            "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
            "TransactionID=\"1\"><PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>",
            &m),
        CPNS_ERR_MALFORMED);
    assert_int_equal(m.kind, CPNS_MSG_NONE);
    assert_int_equal(m.present, 0);
}

static void test_entity_declaration_billion_laughs(void **state)
{
    (void)state;
    static const char lol[] =
        "<?xml version=\"1.0\"?>"
        "<!DOCTYPE CPNSMessage [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">"
        "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;\">"
        "<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;\"><!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;\">]>"
        "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" TransactionID=\"1\">"
        "<PNEStatusNotification PNEID=\"&f;\" Status=\"attached\"/></CPNSMessage>";
    cpns_msg m;
    assert_int_equal(dec(lol, &m), CPNS_ERR_MALFORMED);
    static const char xxe[] =
        "<!DOCTYPE CPNSMessage [<!ENTITY x SYSTEM \"file:///etc/hostname\">]>"
        "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" TransactionID=\"1\">"
        "<PNEStatusNotification PNEID=\"p\" Status=\"attached\">&x;</PNEStatusNotification>"
        "</CPNSMessage>";
    assert_int_equal(dec(xxe, &m), CPNS_ERR_MALFORMED);
    /* without a DTD no entity but the five predefined ones exists */
    assert_int_equal(
        dec_body(
            "<PNEStatusNotification PNEID=\"p\" Status=\"attached\">&f;</PNEStatusNotification>",
            &m),
        CPNS_ERR_MALFORMED);
}

static void test_non_utf8_input(void **state)
{
    (void)state;
    cpns_msg m;
    /* Latin-1 bytes, an overlong encoding, a lone continuation byte, a surrogate */
    static const char *const bad[] = {"caf\xe9", "\xc0\xaf", "\x80", "\xed\xa0\x80", "\xff"};
    char body[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body,
                 "<PNEStatusNotification PNEID=\"p\" Status=\"attached\" Note=\"%s\"/>", bad[i]);
        assert_int_equal(dec_body(body, &m), CPNS_ERR_MALFORMED);
    }
    /* valid UTF-8 in an ignored attribute is fine */
    assert_int_equal(
        dec_body("<PNEStatusNotification PNEID=\"p\" Status=\"attached\" Note=\"caf\xc3\xa9\"/>",
                 &m),
        0);
}

static void test_other_encoding_declared(void **state)
{
    (void)state;
    cpns_msg m;
    static const char *const decls[] = {"UTF-16", "ISO-8859-1", "US-ASCII", "UTF-8 "};
    char doc[1024];
    for (size_t i = 0; i < sizeof decls / sizeof decls[0]; i++) {
        snprintf(doc, sizeof doc, "<?xml version=\"1.0\" encoding=\"%s\"?>%s", decls[i],
                 ROOT REQUEST_BODY POST);
        if (dec(doc, &m) != CPNS_ERR_MALFORMED)
            fail_msg("encoding \"%s\" accepted", decls[i]);
    }
    /* the declaration may leave the encoding out, or spell UTF-8 in lower case */
    assert_int_equal(dec("<?xml version=\"1.0\"?>" ROOT REQUEST_BODY POST, &m), 0);
    assert_int_equal(dec("<?xml version=\"1.0\" encoding=\"utf-8\"?>" ROOT REQUEST_BODY POST, &m),
                     0);
    /* a real UTF-16 document (with its BOM) is not UTF-8 */
    static const char ascii[] =
        "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
        "TransactionID=\"1\"><PNGWRegistrationResponse Return=\"1\"/>"
        "</CPNSMessage>";
    uint8_t utf16[2 + 2 * sizeof ascii];
    utf16[0] = 0xff;
    utf16[1] = 0xfe;
    for (size_t i = 0; i < sizeof ascii - 1; i++) {
        utf16[2 + 2 * i] = (uint8_t)ascii[i];
        utf16[3 + 2 * i] = 0;
    }
    assert_int_equal(cpns_msg_decode(utf16, 2 + 2 * (sizeof ascii - 1), &m), CPNS_ERR_MALFORMED);
    assert_int_equal(cpns_msg_peek(utf16, 2 + 2 * (sizeof ascii - 1), &m), CPNS_ERR_MALFORMED);
    /* without the BOM expat would still guess UTF-16 */
    assert_int_equal(cpns_msg_decode(utf16 + 2, 2 * (sizeof ascii - 1), &m), CPNS_ERR_MALFORMED);
    /* big-endian, BOM and no BOM */
    for (size_t i = 0; i < sizeof ascii - 1; i++) {
        utf16[2 + 2 * i] = 0;
        utf16[3 + 2 * i] = (uint8_t)ascii[i];
    }
    utf16[0] = 0xfe;
    utf16[1] = 0xff;
    assert_int_equal(cpns_msg_decode(utf16, 2 + 2 * (sizeof ascii - 1), &m), CPNS_ERR_MALFORMED);
    assert_int_equal(cpns_msg_decode(utf16 + 2, 2 * (sizeof ascii - 1), &m), CPNS_ERR_MALFORMED);
    /* a UTF-8 byte order mark is still UTF-8 */
    static const char bom8[] = "\xef\xbb\xbf" ROOT REQUEST_BODY POST;
    assert_int_equal(dec(bom8, &m), 0);
    assert_int_equal(cpns_msg_decode((const uint8_t *)ascii, sizeof ascii - 1, &m), 0);
}

static void test_wrong_namespace(void **state)
{
    (void)state;
    cpns_msg m;
    /* root without namespace, in another namespace, with another name */
    assert_int_equal(dec("<CPNSMessage Version=\"1.1\" TransactionID=\"1\">"
                         "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>",
                         &m),
                     CPNS_ERR_MALFORMED);
    assert_int_equal(
        dec("<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.0\" Version=\"1.1\" "
            "TransactionID=\"1\"><PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>",
            &m),
        CPNS_ERR_MALFORMED);
    assert_false(m.present & CPNS_F_TID);
    assert_int_equal(dec("<Message xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                         "TransactionID=\"1\"><PNGWRegistrationResponse Return=\"1\"/></Message>",
                         &m),
                     CPNS_ERR_MALFORMED);
    /* the message element in no namespace, or another one */
    assert_int_equal(dec_body("<PNGWRegistrationResponse xmlns=\"\" Return=\"1\"/>", &m),
                     CPNS_ERR_MALFORMED);
    assert_int_equal(m.kind, CPNS_MSG_NONE);
    assert_int_equal(
        dec_body("<o:PNGWRegistrationResponse xmlns:o=\"urn:other\" Return=\"1\"/>", &m),
        CPNS_ERR_MALFORMED);
    /* any prefix bound to the CPNS namespace is the same thing */
    assert_int_equal(dec("<c:CPNSMessage xmlns:c=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                         "TransactionID=\"1\"><c:PNGWRegistrationResponse Return=\"1\"/>"
                         "</c:CPNSMessage>",
                         &m),
                     0);
}

static void test_unknown_message_element(void **state)
{
    (void)state;
    cpns_msg m;
    assert_int_equal(dec_body("<SGroupKeyDeliveryRequests SGID=\"sg\"/>", &m), CPNS_ERR_MALFORMED);
    assert_int_equal(m.kind, CPNS_MSG_NONE);
    assert_true(m.present & CPNS_F_TID);
    assert_int_equal(dec_body("<GroupKeyInfo PNEID=\"p\"/>", &m), CPNS_ERR_MALFORMED);
    assert_int_equal(dec_body("<CPNSMessage/>", &m), CPNS_ERR_MALFORMED);
}

static void test_wrong_version(void **state)
{
    (void)state;
    cpns_msg m;
    static const char *const versions[] = {"Version=\"1.0\"", "Version=\"1.10\"", "Version=\"\"",
                                           "Version=\" 1.1\"", ""};
    char doc[512];
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        snprintf(doc, sizeof doc,
                 "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" %s TransactionID=\"77\">"
                 "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>",
                 versions[i]);
        assert_int_equal(dec(doc, &m), CPNS_ERR_MALFORMED);
        /* still answerable with Return 4 */
        assert_true(m.present & CPNS_F_TID);
        assert_int_equal(m.TransactionID, 77);
    }
    assert_int_equal(dec("<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\">"
                         "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>",
                         &m),
                     CPNS_ERR_MALFORMED);
    assert_int_equal(m.kind, CPNS_MSG_PNGW_REGISTRATION_RESPONSE);
    assert_false(m.present & CPNS_F_TID);
}

/* A document of exactly len bytes: PRE REQUEST_BODY POST padded with a comment. */
static char *padded_doc(size_t len)
{
    static const char head[] = PRE REQUEST_BODY POST "<!--";
    char *doc = malloc(len + 1);
    assert_non_null(doc);
    assert_true(len >= sizeof head - 1 + 3);
    memcpy(doc, head, sizeof head - 1);
    memset(doc + sizeof head - 1, 'x', len - (sizeof head - 1) - 3);
    memcpy(doc + len - 3, "-->", 3);
    doc[len] = '\0';
    return doc;
}

static void test_size_limits(void **state)
{
    (void)state;
    cpns_msg m;
    char *doc = padded_doc(CPNS_FRAME_MAX);
    assert_int_equal(cpns_msg_decode((const uint8_t *)doc, CPNS_FRAME_MAX, &m), 0);
    assert_int_equal(cpns_msg_peek((const uint8_t *)doc, CPNS_FRAME_MAX, &m), 0);
    free(doc);
    doc = padded_doc(CPNS_FRAME_MAX + 1);
    assert_int_equal(cpns_msg_decode((const uint8_t *)doc, CPNS_FRAME_MAX + 1, &m),
                     CPNS_ERR_TOO_LARGE);
    assert_int_equal(cpns_msg_peek((const uint8_t *)doc, CPNS_FRAME_MAX + 1, &m),
                     CPNS_ERR_TOO_LARGE);
    free(doc);
    assert_int_equal(cpns_msg_decode((const uint8_t *)"", 0, &m), CPNS_ERR_TOO_LARGE);
    assert_int_equal(cpns_msg_peek((const uint8_t *)"", 0, &m), CPNS_ERR_TOO_LARGE);
    assert_int_equal(dec(" ", &m), CPNS_ERR_MALFORMED);
}

static void test_depth_bounded(void **state)
{
    (void)state;
    cpns_msg m;
    char body[2048];
    size_t n = (size_t)snprintf(body, sizeof body, "<PNGWRegistrationResponse Return=\"1\">");
    /* root and message are levels 1 and 2; 30 more reach the bound, 31 pass it */
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "<x>");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "</x>");
    snprintf(body + n, sizeof body - n, "</PNGWRegistrationResponse>");
    assert_int_equal(dec_body(body, &m), 0);

    n = (size_t)snprintf(body, sizeof body, "<PNGWRegistrationResponse Return=\"1\">");
    for (int i = 0; i < 31; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "<x>");
    for (int i = 0; i < 31; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "</x>");
    snprintf(body + n, sizeof body - n, "</PNGWRegistrationResponse>");
    assert_int_equal(dec_body(body, &m), CPNS_ERR_MALFORMED);
}

/* Forward compatibility: PROTOCOL.md section 3 lets unknown things in. */
static void test_unknown_attributes_and_children_ignored(void **state)
{
    (void)state;
    cpns_msg m;
    static const char doc[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><!-- hello -->"
        "<?cpns-hint fast?>"
        "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" xmlns:v=\"urn:vendor\" "
        "Version=\"1.1\" "
        "TransactionID=\"5\" Priority=\"high\" v:Trace=\"abc\">\n"
        "<SGroupKeyDeliveryRequest SGID=\"sg-1\" Future=\"yes\" v:SGID=\"not this one\" "
        "PNGWID=\"not a field here\">text is ignored"
        "<v:Extension><GroupKeyInfo PNEID=\"nested\" KeyVersion=\"9\" "
        "EncryptedGroupKey=\"AQ==\"/></v:Extension>"
        "<FutureElement a=\"1\"><Deeper/>more text</FutureElement><!-- c --><?pi?>"
        "<GroupKeyInfo PNEID=\"pne-1\" KeyVersion=\"2\" EncryptedGroupKey=\"" EGK_B64 "\" "
        "Other=\"x\" SGID=\"ignored-here\"><Child/>txt</GroupKeyInfo>"
        "<![CDATA[ <GroupKeyInfo/> ]]>"
        "</SGroupKeyDeliveryRequest>\n</CPNSMessage>";
    assert_int_equal(dec(doc, &m), 0);
    assert_int_equal(m.TransactionID, 5);
    assert_string_equal(m.SGID, "sg-1");
    assert_string_equal(m.PNEID, "pne-1");
    assert_int_equal(m.KeyVersion, 2);
    assert_int_equal(m.EncryptedGroupKey.len, CPNS_EGK_LEN);
    assert_false(m.present & CPNS_F_PNGWID);
    assert_string_equal(m.PNGWID, "");
}

/* On failure the model keeps what a Return 4 answer needs (msg.h). */
static void test_partial_model_on_failure(void **state)
{
    (void)state;
    cpns_msg m;
    assert_int_equal(dec_body("<SGroupKeyDeliveryRequest SGID=\"sg-family\"><GroupKeyInfo "
                              "PNEID=\"pne-tv\" KeyVersion=\"3\" EncryptedGroupKey=\"%%%\"/>"
                              "</SGroupKeyDeliveryRequest>",
                              &m),
                     CPNS_ERR_MALFORMED);
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    assert_int_equal(m.TransactionID, 8812);
    assert_string_equal(m.SGID, "sg-family");
    assert_string_equal(m.PNEID, "pne-tv");
    assert_int_equal(m.KeyVersion, 3);
    assert_int_equal(m.present, CPNS_F_TID | CPNS_F_SGID | CPNS_F_GROUPKEYINFO | CPNS_F_PNEID |
                                    CPNS_F_KEYVERSION);

    /* a bad value early on does not hide the valid ones after it */
    assert_int_equal(dec_body("<SGroupKeyDeliveryRequest SGID=\"bad sgid\"><GroupKeyInfo "
                              "PNEID=\"pne-tv\" KeyVersion=\"0\" EncryptedGroupKey=\"" EGK_B64
                              "\"/></SGroupKeyDeliveryRequest>",
                              &m),
                     CPNS_ERR_MALFORMED);
    assert_int_equal(m.present, CPNS_F_TID | CPNS_F_GROUPKEYINFO | CPNS_F_PNEID | CPNS_F_EGK);

    /* and a document that breaks off still yields its start */
    assert_int_equal(dec(PRE "<SGroupKeyDeliveryResponse Return=\"1\" PNID=\"pn\" SGID=\"sg\" "
                             "PNEID=\"p\" KeyVersion=\"2\" KeyConfirmation=\"" KC_B64 "\"/>",
                         &m),
                     CPNS_ERR_MALFORMED);
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
    assert_string_equal(m.SGID, "sg");
    assert_int_equal(m.KeyVersion, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_example),
        cmocka_unit_test(test_each_kind_decodes),
        cmocka_unit_test(test_missing_mandatory_attribute_per_kind),
        cmocka_unit_test(test_response_conditional_attributes),
        cmocka_unit_test(test_bad_identifier),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_bad_base64),
        cmocka_unit_test(test_long_blob_keeps_length),
        cmocka_unit_test(test_bad_status),
        cmocka_unit_test(test_second_root_and_trailing_garbage),
        cmocka_unit_test(test_second_child_of_root),
        cmocka_unit_test(test_second_group_key_info),
        cmocka_unit_test(test_doctype_rejected),
        cmocka_unit_test(test_entity_declaration_billion_laughs),
        cmocka_unit_test(test_non_utf8_input),
        cmocka_unit_test(test_other_encoding_declared),
        cmocka_unit_test(test_wrong_namespace),
        cmocka_unit_test(test_unknown_message_element),
        cmocka_unit_test(test_wrong_version),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_depth_bounded),
        cmocka_unit_test(test_unknown_attributes_and_children_ignored),
        cmocka_unit_test(test_partial_model_on_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
