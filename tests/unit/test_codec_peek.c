/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of cpns_msg_peek() (lib/codec_decode.c): the routing information it
 * reads, that it stops early and skips blobs, what it still rejects; and the
 * allocation failures of both decode and peek surfacing as CPNS_ERR_NOMEM
 * (expat allocates through the library's allocator hook).
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

#define REQUEST_BODY                                                                               \
    "<SGroupKeyDeliveryRequest SGID=\"sg-family\"><GroupKeyInfo PNEID=\"pne-tv\" "                 \
    "KeyVersion=\"1\" EncryptedGroupKey=\"" EGK_B64 "\"/></SGroupKeyDeliveryRequest>"

static int dec(const char *s, cpns_msg *m)
{
    return cpns_msg_decode((const uint8_t *)s, strlen(s), m);
}

static int peek(const char *s, cpns_msg *m)
{
    return cpns_msg_peek((const uint8_t *)s, strlen(s), m);
}

static void test_peek_routing_info(void **state)
{
    (void)state;
    cpns_msg m;
    assert_int_equal(peek(PRE REQUEST_BODY POST, &m), 0);
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    assert_int_equal(m.TransactionID, 8812);
    assert_string_equal(m.SGID, "sg-family");
    assert_string_equal(m.PNEID, "pne-tv");
    assert_int_equal(m.KeyVersion, 1);
    /* blobs are not decoded */
    assert_false(m.present & CPNS_F_EGK);
    assert_int_equal(m.EncryptedGroupKey.len, 0);

    assert_int_equal(peek(PRE "<SGroupKeyDeliveryResponse Return=\"6\" PNID=\"pn-1\" SGID=\"sg\" "
                              "PNEID=\"pne-tv\" KeyVersion=\"4\"/>" POST,
                          &m),
                     0);
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
    assert_int_equal(m.Return, 6);
    assert_string_equal(m.PNID, "pn-1");
    assert_string_equal(m.PNEID, "pne-tv");

    assert_int_equal(peek(PRE "<PNEStatusNotification PNEID=\"p\" Status=\"detached\"/>" POST, &m),
                     0);
    assert_int_equal(m.Status, CPNS_STATUS_DETACHED);
}

static void test_peek_stops_early(void **state)
{
    (void)state;
    cpns_msg m;
    /* the peek does not look at blobs or at anything after the routing information */
    static const char doc[] =
        PRE "<SGroupKeyDeliveryRequest SGID=\"sg\"><GroupKeyInfo PNEID=\"p\" KeyVersion=\"1\" "
            "EncryptedGroupKey=\"not base64!\"/></SGroupKeyDeliveryRequest><Second/>" POST "junk";
    assert_int_equal(peek(doc, &m), 0);
    assert_string_equal(m.PNEID, "p");
    assert_int_equal(dec(doc, &m), CPNS_ERR_MALFORMED);
}

static void test_peek_rejects(void **state)
{
    (void)state;
    cpns_msg m;
    assert_int_equal(peek("<!DOCTYPE CPNSMessage [<!ENTITY a \"b\">]>" ROOT REQUEST_BODY POST, &m),
                     CPNS_ERR_MALFORMED);
    assert_int_equal(peek(PRE
                          "<SGroupKeyDeliveryRequest SGID=\"sg\"><GroupKeyInfo PNEID=\"bad id\" "
                          "KeyVersion=\"1\" EncryptedGroupKey=\"AQ==\"/>"
                          "</SGroupKeyDeliveryRequest>" POST,
                          &m),
                     CPNS_ERR_MALFORMED);
    assert_string_equal(m.SGID, "sg");
    assert_int_equal(peek(PRE "<SGroupKeyDeliveryRequest SGID=\"sg\"/>" POST, &m),
                     CPNS_ERR_MALFORMED);
    assert_int_equal(peek(PRE "<PNEStatusNotification PNEID=\"p\"/>" POST, &m), CPNS_ERR_MALFORMED);
    assert_int_equal(peek(PRE "<Unknown/>" POST, &m), CPNS_ERR_MALFORMED);
    assert_int_equal(peek("<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>", &m),
                     CPNS_ERR_MALFORMED);
}

/* An allocator that fails the Nth allocation (and every one after it when `sticky`). */
typedef struct failing {
    int countdown;
    int failed;
} failing;

static void *f_malloc(size_t n, void *arg)
{
    failing *f = arg;
    if (f->countdown-- == 0) {
        f->failed = 1;
        return NULL;
    }
    return malloc(n);
}

static void *f_realloc(void *p, size_t n, void *arg)
{
    failing *f = arg;
    if (f->countdown-- == 0) {
        f->failed = 1;
        return NULL;
    }
    return realloc(p, n);
}

static void f_free(void *p, void *arg)
{
    (void)arg;
    free(p);
}

static void test_allocation_failure_is_nomem(void **state)
{
    (void)state;
    static const char doc[] = PRE REQUEST_BODY POST;
    int failures = 0;
    for (int n = 0; n < 200; n++) {
        failing f = {n, 0};
        cpns_allocator a = {f_malloc, f_realloc, f_free, &f};
        cpns_set_allocator(&a);
        cpns_msg m, p;
        int rv = cpns_msg_decode((const uint8_t *)doc, sizeof doc - 1, &m);
        int decode_failed = f.failed;
        f = (failing){n, 0};
        int prv = cpns_msg_peek((const uint8_t *)doc, sizeof doc - 1, &p);
        cpns_set_allocator(NULL);
        if (!decode_failed && !f.failed) {
            assert_int_equal(rv, 0);
            assert_int_equal(prv, 0);
            break;
        }
        assert_true(rv == 0 || rv == CPNS_ERR_NOMEM);
        assert_true(prv == 0 || prv == CPNS_ERR_NOMEM);
        failures += rv == CPNS_ERR_NOMEM;
    }
    /* expat allocates, so at least the first allocation failure must have shown */
    assert_true(failures > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_routing_info),
        cmocka_unit_test(test_peek_stops_early),
        cmocka_unit_test(test_peek_rejects),
        cmocka_unit_test(test_allocation_failure_is_nomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
