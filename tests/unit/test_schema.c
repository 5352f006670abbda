/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Validates what the encoder writes against docs/cpns-message.xsd with
 * xmllint: every kind of message (the response as Return 1, as Return 4
 * without echoes and as the GW's Return 6), the PROTOCOL.md section 3
 * example, and documents the schema must reject, so that a schema accepting
 * everything fails here. CPNS_SOURCE_DIR comes from tests/CMakeLists.txt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define PRE                                                                                        \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CPNSMessage "                                      \
    "xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" TransactionID=\"7\">"
#define POST "</CPNSMessage>"

typedef struct fixture {
    char dir[64];
    char xsd[4096];
    int files;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    const char *src = getenv("CPNS_SOURCE_DIR");
    if (!src)
        src = ".";
    snprintf(f->xsd, sizeof f->xsd, "%s/docs/cpns-message.xsd", src);
    strcpy(f->dir, "/tmp/cpns-schema-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char path[128];
    for (int i = 0; i < f->files; i++) {
        snprintf(path, sizeof path, "%s/msg%d.xml", f->dir, i);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Writes doc to a new file and returns xmllint's exit status (-1 if it did not run). */
static int xmllint(fixture *f, const uint8_t *doc, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/msg%d.xml", f->dir, f->files++);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(doc, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execlp("xmllint", "xmllint", "--noout", "--nonet", "--schema", f->xsd, path, (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void set_b64(cpns_msg *m, uint32_t bit, const char *b64)
{
    uint8_t buf[CPNS_BLOB_MAX];
    size_t len;
    assert_int_equal(cpns_b64_decode(b64, strlen(b64), buf, sizeof buf, &len), 0);
    assert_int_equal(cpns_msg_set_blob(m, bit, buf, len), 0);
}

static void set_ids(cpns_msg *m, const char *SGID, const char *PNEID, const char *PNID)
{
    if (SGID)
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_SGID, SGID), 0);
    if (PNEID)
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, PNEID), 0);
    if (PNID)
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNID, PNID), 0);
}

static void response(cpns_msg *m, uint32_t Return, int echoes)
{
    cpns_msg_init(m, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE, 8812);
    m->Return = Return;
    m->present |= CPNS_F_RETURN;
    set_ids(m, echoes ? "sg-family" : NULL, "pne-tv", "pn@home");
    if (echoes) {
        m->KeyVersion = 4294967295u;
        m->present |= CPNS_F_KEYVERSION;
    }
    if (Return == CPNS_RETURN_SUCCESS)
        set_b64(m, CPNS_F_KC, "SyIoa3oG/Z50VPpF4+qQ4w==");
}

/* Every message the encoder can produce, one variant after the other. */
static int sample(int i, cpns_msg *m)
{
    switch (i) {
    case 0:
        cpns_msg_init(m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, CPNS_TID_MAX);
        set_ids(m, "sg-family", "pne-tv", NULL);
        m->KeyVersion = 1;
        m->present |= CPNS_F_KEYVERSION;
        set_b64(
            m, CPNS_F_EGK,
            "AQABAgMEBQYHCAkKC45q4IHgR6NOzNjPvzx/4bpRc46Qq5o/KxsQcqMJyl2i9QN21K5E0iH8ECZuJd7D+w==");
        return 1;
    case 1:
        response(m, CPNS_RETURN_SUCCESS, 1);
        return 1;
    case 2:
        response(m, CPNS_RETURN_MALFORMED, 0);
        return 1;
    case 3:
        response(m, CPNS_RETURN_UNREACHABLE, 1);
        return 1;
    case 4:
        cpns_msg_init(m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, 1);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNGWID, "gw.example:1"), 0);
        set_ids(m, NULL, NULL, "pn-home");
        return 1;
    case 5:
        cpns_msg_init(m, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, 2);
        m->Return = 0;
        m->present |= CPNS_F_RETURN;
        return 1;
    case 6:
        cpns_msg_init(m, CPNS_MSG_PNE_REGISTRATION_REQUEST, 3);
        set_ids(m, NULL, "pne-tv", NULL);
        set_b64(m, CPNS_F_NONCE, "AAECAwQFBgcICQoLDA0ODw==");
        m->Time = 1795000000;
        m->present |= CPNS_F_TIME;
        set_b64(m, CPNS_F_PROOF, "IG6OVa07Ua8kAvA2hcTp23dr17ipMlco/SzHwLXYeGk=");
        return 1;
    case 7:
        cpns_msg_init(m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, 3);
        m->Return = CPNS_RETURN_UNKNOWN;
        m->present |= CPNS_F_RETURN;
        set_ids(m, NULL, "pne-tv", "pn-home");
        return 1;
    case 8:
        cpns_msg_init(m, CPNS_MSG_PNE_STATUS_NOTIFICATION, 4);
        set_ids(m, NULL, "pne-tv", NULL);
        m->Status = CPNS_STATUS_ATTACHED;
        m->present |= CPNS_F_STATUS;
        return 1;
    case 9:
        cpns_msg_init(m, CPNS_MSG_PNE_STATUS_NOTIFICATION, 4);
        set_ids(m, NULL, "pne-tv", NULL);
        m->Status = CPNS_STATUS_DETACHED;
        m->present |= CPNS_F_STATUS;
        return 1;
    default:
        return 0;
    }
}

static void test_encoder_output_is_schema_valid(void **state)
{
    fixture *f = *state;
    cpns_msg m;
    int kinds = 0;
    for (int i = 0; sample(i, &m); i++) {
        uint8_t buf[2048];
        size_t len;
        assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);
        int rv = xmllint(f, buf, len);
        if (rv != 0)
            fail_msg("sample %d (%s): xmllint exit %d", i, cpns_msg_kind_name(m.kind), rv);
        kinds |= 1 << m.kind;
    }
    assert_int_equal(kinds, 0xfe);
}

/* The example of PROTOCOL.md section 3, and forward-compatible extras the decoder accepts. */
static void test_protocol_documents_are_schema_valid(void **state)
{
    fixture *f = *state;
    static const char *const docs[] = {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
        "TransactionID=\"8812\">\n"
        "  <SGroupKeyDeliveryRequest SGID=\"sg-family\">\n"
        "    <GroupKeyInfo PNEID=\"pne-tv\" KeyVersion=\"1\"\n"
        "                  EncryptedGroupKey=\"AQABAgMEBQYHCAkKC45q4IHgR6NOzNjPvzx/"
        "4bpRc46Qq5o/KxsQcqMJyl2i9QN21K5E0iH8ECZuJd7D+w==\"/>\n"
        "  </SGroupKeyDeliveryRequest>\n"
        "</CPNSMessage>\n",
        PRE "<SGroupKeyDeliveryRequest SGID=\"sg\" Future=\"1\"><v:X xmlns:v=\"urn:v\"/>"
            "<GroupKeyInfo PNEID=\"p\" KeyVersion=\"1\" EncryptedGroupKey=\"AQ==\" More=\"x\">"
            "<Anything/></GroupKeyInfo><Plain xmlns=\"\"/></SGroupKeyDeliveryRequest>" POST,
        PRE "<PNEStatusNotification PNEID=\"p\" Status=\"attached\" x=\"1\">text<Next a=\"b\"/>"
            "</PNEStatusNotification>" POST,
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        cpns_msg m;
        assert_int_equal(cpns_msg_decode((const uint8_t *)docs[i], strlen(docs[i]), &m), 0);
        if (xmllint(f, (const uint8_t *)docs[i], strlen(docs[i])) != 0)
            fail_msg("document %zu rejected by the schema", i);
    }
}

/* Documents the decoder rejects and the schema must reject too. */
static void test_invalid_documents_rejected(void **state)
{
    fixture *f = *state;
    static const char *const docs[] = {
        /* no SGID */
        PRE "<SGroupKeyDeliveryRequest><GroupKeyInfo PNEID=\"p\" KeyVersion=\"1\" "
            "EncryptedGroupKey=\"AQ==\"/></SGroupKeyDeliveryRequest>" POST,
        /* two GroupKeyInfo */
        PRE "<SGroupKeyDeliveryRequest SGID=\"sg\"><GroupKeyInfo PNEID=\"p\" KeyVersion=\"1\" "
            "EncryptedGroupKey=\"AQ==\"/><GroupKeyInfo PNEID=\"q\" KeyVersion=\"1\" "
            "EncryptedGroupKey=\"AQ==\"/></SGroupKeyDeliveryRequest>" POST,
        /* leading zero, bad identifier, non-canonical base64, empty blob */
        PRE "<PNGWRegistrationResponse Return=\"01\"/>" POST,
        PRE "<PNEStatusNotification PNEID=\"a b\" Status=\"attached\"/>" POST,
        PRE "<SGroupKeyDeliveryResponse Return=\"1\" PNID=\"n\" PNEID=\"p\" SGID=\"s\" "
            "KeyVersion=\"1\" KeyConfirmation=\"AR==\"/>" POST,
        PRE "<SGroupKeyDeliveryResponse Return=\"2\" PNID=\"n\" PNEID=\"p\" SGID=\"s\" "
            "KeyVersion=\"1\" KeyConfirmation=\"\"/>" POST,
        /* Nonce of 15 bytes, Status outside the enumeration, KeyVersion 0 */
        PRE "<PNERegistrationRequest PNEID=\"p\" Nonce=\"AAECAwQFBgcICQoLDA0O\" Time=\"1\" "
            "Proof=\"AQ==\"/>" POST,
        PRE "<PNEStatusNotification PNEID=\"p\" Status=\"Attached\"/>" POST,
        PRE "<SGroupKeyDeliveryResponse Return=\"2\" PNID=\"n\" PNEID=\"p\" SGID=\"s\" "
            "KeyVersion=\"0\"/>" POST,
        /* second child, wrong Version, TransactionID 0 and 2^63 */
        PRE "<PNGWRegistrationResponse Return=\"1\"/><PNGWRegistrationResponse Return=\"1\"/>" POST,
        "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.0\" TransactionID=\"1\">"
        "<PNGWRegistrationResponse Return=\"1\"/>" POST,
        "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" TransactionID=\"0\">"
        "<PNGWRegistrationResponse Return=\"1\"/>" POST,
        "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
        "TransactionID=\"9223372036854775808\"><PNGWRegistrationResponse Return=\"1\"/>" POST,
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        cpns_msg m;
        assert_int_equal(cpns_msg_decode((const uint8_t *)docs[i], strlen(docs[i]), &m),
                         CPNS_ERR_MALFORMED);
        int rv = xmllint(f, (const uint8_t *)docs[i], strlen(docs[i]));
        /* 3 is xmllint's "validation failed"; anything else means it did not really run */
        if (rv != 3)
            fail_msg("invalid document %zu: xmllint exit %d", i, rv);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_encoder_output_is_schema_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_documents_are_schema_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_documents_rejected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
