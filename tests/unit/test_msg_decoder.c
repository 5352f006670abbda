/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the reusable decoder, cpns_msg_decoder (lib/codec_decode.c), and
 * of the PNE engine using one (lib/pne.c).
 *
 * The promise under test: a decoder that has parsed anything before gives
 * exactly what a fresh cpns_msg_decode() / cpns_msg_peek() gives, return
 * value and the whole model, byte for byte. "Anything before" is every way a
 * document can leave expat: accepted, stopped by a handler (DOCTYPE, wrong
 * root, too deep, peek done), a well-formedness error half-way with open
 * elements and namespace bindings, a huge document. The targets are every
 * file of fuzz/corpus/decode (CPNS_SOURCE_DIR comes from tests/CMakeLists.txt)
 * and a few documents that would show a leaked namespace binding.
 * Allocation failure is in test_msg_decoder_alloc.c.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpns/crypto.h"
#include "support.h"

#define NS CPNS_NAMESPACE
#define ROOT "<CPNSMessage xmlns=\"" NS "\" Version=\"1.1\" TransactionID=\"7\">"
#define MAX_DOCS 256

typedef struct doc {
    char name[64];
    uint8_t *data;
    size_t len;
} doc;

typedef struct docs {
    doc d[MAX_DOCS];
    size_t n;
} docs;

static void add(docs *ds, const char *name, const void *data, size_t len)
{
    assert_true(ds->n < MAX_DOCS);
    doc *d = &ds->d[ds->n++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->data = malloc(len ? len : 1);
    assert_non_null(d->data);
    memcpy(d->data, data, len);
    d->len = len;
}

static void add_str(docs *ds, const char *name, const char *s)
{
    add(ds, name, s, strlen(s));
}

static void docs_free(docs *ds)
{
    for (size_t i = 0; i < ds->n; i++)
        free(ds->d[i].data);
    free(ds);
}

/* A SGroupKeyDeliveryRequest with n bytes of comment in front of its end tag. */
static void add_padded(docs *ds, const char *name, size_t n)
{
    const char *head = ROOT "<SGroupKeyDeliveryRequest SGID=\"sg-1\"><GroupKeyInfo PNEID=\"pne-1\" "
                            "KeyVersion=\"1\" EncryptedGroupKey=\"AQID\"/><!--";
    const char *tail = "--></SGroupKeyDeliveryRequest></CPNSMessage>";
    size_t len = strlen(head) + n + strlen(tail);
    char *s = malloc(len + 1);
    assert_non_null(s);
    strcpy(s, head);
    memset(s + strlen(head), 'x', n);
    strcpy(s + strlen(head) + n, tail);
    add(ds, name, s, len);
    free(s);
}

/* A root start tag with n unknown attributes (expat's attribute array grows). */
static void add_many_attrs(docs *ds, const char *name, int n)
{
    size_t cap = (size_t)n * 16 + 512, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    len += (size_t)snprintf(s, cap, "<CPNSMessage xmlns=\"%s\" Version=\"1.1\" TransactionID=\"9\"",
                            NS);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, " a%d=\"v\"", i);
    len += (size_t)snprintf(s + len, cap - len,
                            "><PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>");
    add(ds, name, s, len);
    free(s);
}

/* Everything that can leave a parser in an unusual state. */
static docs *poisons(void)
{
    docs *ds = calloc(1, sizeof *ds);
    assert_non_null(ds);
    add_str(ds, "valid", ROOT "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>");
    add_str(ds, "doctype",
            "<?xml version=\"1.0\"?><!DOCTYPE CPNSMessage [<!ENTITY a \"b\">]>" ROOT
            "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>");
    add_str(ds, "wrong-root", "<Other xmlns=\"" NS "\"><x/></Other>");
    add_str(ds, "second-child",
            ROOT "<PNGWRegistrationResponse Return=\"1\"/><PNGWRegistrationResponse "
                 "Return=\"1\"/></CPNSMessage>");
    char deep[1024];
    strcpy(deep, ROOT "<SGroupKeyDeliveryRequest SGID=\"sg-1\">");
    for (int i = 0; i < 40; i++)
        strcat(deep, "<x xmlns:q=\"urn:q\">");
    add_str(ds, "too-deep", deep);
    /* open elements and prefixed and default namespace bindings when the error hits */
    add_str(ds, "truncated-bindings",
            "<p:CPNSMessage xmlns:p=\"" NS "\" xmlns=\"" NS
            "\" Version=\"1.1\" TransactionID=\"7\">"
            "<p:SGroupKeyDeliveryRequest SGID=\"sg-1\"><GroupKeyInfo PNEID=\"pne-1\"");
    add_str(ds, "unbound-prefix", "<q:CPNSMessage Version=\"1.1\" TransactionID=\"7\"/>");
    add_str(ds, "bad-utf8", ROOT "<PNGWRegistrationResponse Return=\"1\" X=\"\xc3\x28\"/>");
    add_str(ds, "latin1-decl",
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>" ROOT
            "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>");
    add_str(ds, "bom",
            "\xef\xbb\xbf" ROOT "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>");
    add_str(ds, "bad-value", ROOT "<PNGWRegistrationResponse Return=\"x\"/></CPNSMessage>");
    add_str(ds, "entity-ref", ROOT "<PNGWRegistrationResponse Return=\"&a;\"/></CPNSMessage>");
    add_str(ds, "not-xml", "hello");
    add_str(ds, "utf16", "\xff\xfe<\0");
    add(ds, "empty", "", 0);
    add_padded(ds, "huge-comment", CPNS_FRAME_MAX - 400);
    add_padded(ds, "too-large", CPNS_FRAME_MAX);
    add_many_attrs(ds, "many-attributes", 2000);
    return ds;
}

/* The corpus, the poisons themselves, and documents a leaked binding would change. */
static docs *targets(void)
{
    docs *ds = poisons();
    add_str(ds, "no-namespace",
            "<CPNSMessage Version=\"1.1\" TransactionID=\"7\"><PNGWRegistrationResponse "
            "Return=\"1\"/></CPNSMessage>");
    add_str(ds, "p-without-xmlns",
            "<p:CPNSMessage Version=\"1.1\" TransactionID=\"7\"><p:PNGWRegistrationResponse "
            "Return=\"1\"/></p:CPNSMessage>");
    add_str(ds, "prefixed",
            "<p:CPNSMessage xmlns:p=\"" NS "\" Version=\"1.1\" TransactionID=\"7\">"
            "<p:PNGWRegistrationResponse Return=\"1\"/></p:CPNSMessage>");
    add_str(ds, "child-no-namespace",
            "<p:CPNSMessage xmlns:p=\"" NS "\" Version=\"1.1\" TransactionID=\"7\">"
            "<PNGWRegistrationResponse Return=\"1\"/></p:CPNSMessage>");

    const char *src = getenv("CPNS_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    snprintf(path, sizeof path, "%s/fuzz/corpus/decode", src);
    DIR *dir = opendir(path);
    assert_non_null(dir);
    size_t before = ds->n;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/fuzz/corpus/decode/%s", src, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static uint8_t buf[CPNS_FRAME_MAX + 16];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        add(ds, e->d_name, buf, len);
    }
    closedir(dir);
    assert_true(ds->n - before >= 50); /* the corpus is there, not an empty loop */
    return ds;
}

static int run_fresh(const doc *d, int peek, cpns_msg *m)
{
    memset(m, 0xa5, sizeof *m);
    return peek ? cpns_msg_peek(d->data, d->len, m) : cpns_msg_decode(d->data, d->len, m);
}

static int run_reused(cpns_msg_decoder *dec, const doc *d, int peek, cpns_msg *m)
{
    memset(m, 0x5a, sizeof *m);
    return peek ? cpns_msg_decoder_peek(dec, d->data, d->len, m)
                : cpns_msg_decoder_decode(dec, d->data, d->len, m);
}

static void expect_same(cpns_msg_decoder *dec, const doc *d, int peek, const char *after)
{
    cpns_msg fresh, reused;
    int rv_fresh = run_fresh(d, peek, &fresh);
    int rv_reused = run_reused(dec, d, peek, &reused);
    if (rv_fresh != rv_reused || memcmp(&fresh, &reused, sizeof fresh) != 0)
        fail_msg("%s of %s after %s: fresh %d, reused %d%s", peek ? "peek" : "decode", d->name,
                 after, rv_fresh, rv_reused, rv_fresh == rv_reused ? " (models differ)" : "");
}

/* Every target, decoded and peeked, after every poison decoded and peeked. */
static void test_reuse_after_every_poison(void **state)
{
    (void)state;
    docs *ps = poisons(), *ts = targets();
    cpns_msg_decoder *dec = NULL;
    assert_int_equal(cpns_msg_decoder_new(&dec), 0);
    int outcomes[4] = {0}; /* the poisons must really fail in several ways */
    for (size_t p = 0; p < ps->n; p++) {
        for (int ppeek = 0; ppeek < 2; ppeek++) {
            for (size_t t = 0; t < ts->n; t++) {
                for (int tpeek = 0; tpeek < 2; tpeek++) {
                    cpns_msg m;
                    int rv = run_reused(dec, &ps->d[p], ppeek, &m);
                    outcomes[rv == 0                    ? 0
                             : rv == CPNS_ERR_MALFORMED ? 1
                             : rv == CPNS_ERR_TOO_LARGE ? 2
                                                        : 3]++;
                    char after[96];
                    snprintf(after, sizeof after, "%s %s", ppeek ? "peek" : "decode",
                             ps->d[p].name);
                    expect_same(dec, &ts->d[t], tpeek, after);
                }
            }
        }
    }
    assert_true(outcomes[0] > 0 && outcomes[1] > 0 && outcomes[2] > 0);
    assert_int_equal(outcomes[3], 0);
    cpns_msg_decoder_free(dec);
    docs_free(ps);
    docs_free(ts);
}

/* One decoder through the whole corpus in sequence, alternating decode and peek. */
static void test_reuse_corpus_in_sequence(void **state)
{
    (void)state;
    docs *ts = targets();
    cpns_msg_decoder *dec = NULL;
    assert_int_equal(cpns_msg_decoder_new(&dec), 0);
    for (int round = 0; round < 3; round++)
        for (size_t t = 0; t < ts->n; t++)
            expect_same(dec, &ts->d[t], (int)((t + (size_t)round) % 2),
                        t ? ts->d[t - 1].name : "nothing");
    cpns_msg_decoder_free(dec);
    docs_free(ts);
}

/*
 * XML_ParserReset keeps the namespace processing the parser was created with
 * (names reach the handlers as URI + separator + local name): a decoder
 * reused many times still accepts the namespaced message, default or
 * prefixed, and still refuses the same message outside the namespace.
 */
static void test_reset_keeps_namespace_processing(void **state)
{
    (void)state;
    const char *def = ROOT "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>";
    const char *pre = "<c:CPNSMessage xmlns:c=\"" NS "\" Version=\"1.1\" TransactionID=\"8\">"
                      "<c:PNGWRegistrationResponse Return=\"2\"/></c:CPNSMessage>";
    const char *other = "<CPNSMessage xmlns=\"urn:other\" Version=\"1.1\" TransactionID=\"7\">"
                        "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>";
    cpns_msg_decoder *dec = NULL;
    assert_int_equal(cpns_msg_decoder_new(&dec), 0);
    cpns_msg m;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cpns_msg_decoder_decode(dec, (const uint8_t *)def, strlen(def), &m), 0);
        assert_int_equal(m.kind, CPNS_MSG_PNGW_REGISTRATION_RESPONSE);
        assert_int_equal(m.Return, 1);
        assert_int_equal(cpns_msg_decoder_decode(dec, (const uint8_t *)pre, strlen(pre), &m), 0);
        assert_int_equal(m.TransactionID, 8);
        assert_int_equal(m.Return, 2);
        assert_int_equal(cpns_msg_decoder_peek(dec, (const uint8_t *)other, strlen(other), &m),
                         CPNS_ERR_MALFORMED);
        assert_int_equal(m.kind, CPNS_MSG_NONE);
    }
    cpns_msg_decoder_free(dec);
}

/* The argument checks of the one-shot calls, and a NULL decoder. */
static void test_decoder_arguments(void **state)
{
    (void)state;
    const char *def = ROOT "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>";
    cpns_msg m;
    memset(&m, 1, sizeof m);
    assert_int_equal(cpns_msg_decoder_decode(NULL, (const uint8_t *)def, strlen(def), &m),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(m.present, 0);
    assert_int_equal(cpns_msg_decoder_peek(NULL, (const uint8_t *)def, strlen(def), &m),
                     CPNS_ERR_INVALID_ARG);
    cpns_msg_decoder *dec = NULL;
    assert_int_equal(cpns_msg_decoder_new(&dec), 0);
    assert_int_equal(cpns_msg_decoder_decode(dec, (const uint8_t *)def, strlen(def), NULL),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_msg_decoder_decode(dec, NULL, 10, &m), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_msg_decoder_decode(dec, (const uint8_t *)def, 0, &m), CPNS_ERR_TOO_LARGE);
    assert_int_equal(cpns_msg_decoder_decode(dec, (const uint8_t *)def, strlen(def), &m), 0);
    cpns_msg_decoder_free(dec);
    cpns_msg_decoder_free(NULL);
}

/* --- the PNE engine with its own decoder and with a shared one --- */

#define PNEID_A "pne-a"
#define PNID "pn-home"

typedef struct twin {
    uint64_t seed;
    cpns_keystore *ks;
    cpns_pne *pne;
} twin;

static void twin_new(twin *t, const uint8_t EUK[CPNS_KEY_LEN], const char *PNEID,
                     cpns_msg_decoder *dec)
{
    t->seed = 99;
    assert_int_equal(cpns_keystore_mem_new(&t->ks), 0);
    cpns_pne_config cfg = {.PNEID = PNEID,
                           .EUK = EUK,
                           .keystore = t->ks,
                           .rand = test_rand,
                           .rand_arg = &t->seed,
                           .log = test_log,
                           .decoder = dec};
    assert_int_equal(cpns_pne_new(&t->pne, &cfg), 0);
}

static void twin_del(twin *t)
{
    cpns_pne_free(t->pne);
    cpns_keystore_free(t->ks);
}

/* Pops one frame from each engine; they must be the same bytes. Returns 1 if there was one. */
static int pop_same(twin *a, twin *b, cpns_msg *m)
{
    cpns_out oa, ob;
    int ra = cpns_pne_pop(a->pne, &oa);
    int rb = cpns_pne_pop(b->pne, &ob);
    assert_int_equal(ra, rb);
    if (!ra)
        return 0;
    assert_int_equal(oa.len, ob.len);
    assert_memory_equal(oa.data, ob.data, oa.len);
    assert_int_equal(cpns_msg_decode(oa.data, oa.len, m), 0);
    return 1;
}

static size_t delivery(const uint8_t EUK[CPNS_KEY_LEN], uint64_t tid, uint32_t KeyVersion,
                       uint8_t *buf, size_t cap)
{
    uint8_t K_wrap[CPNS_KEY_LEN], GK[CPNS_KEY_LEN], nonce[CPNS_GCM_NONCE_LEN], EGK[CPNS_EGK_LEN];
    memset(GK, 0x33 + (int)KeyVersion, sizeof GK);
    memset(nonce, (int)tid, sizeof nonce);
    assert_int_equal(cpns_kdf(EUK, CPNS_INFO_WRAP, K_wrap), 0);
    assert_int_equal(cpns_egk_wrap(K_wrap, "sg-1", PNEID_A, KeyVersion, GK, nonce, EGK), 0);
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, tid);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, "sg-1"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, PNEID_A), 0);
    m.KeyVersion = KeyVersion;
    m.present |= CPNS_F_KEYVERSION | CPNS_F_GROUPKEYINFO;
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_EGK, EGK, sizeof EGK), 0);
    size_t len;
    assert_int_equal(cpns_msg_encode(&m, buf, cap, &len), 0);
    cpns_wipe(K_wrap, sizeof K_wrap);
    return len;
}

/*
 * Two engines for the same PNE, one with its own decoder (config NULL) and
 * one on a decoder shared with a third engine and used directly in between,
 * get the same frames, every poison among them, and must answer the very
 * same bytes; the key is delivered (Return 1) through both.
 */
static void test_pne_own_and_shared_decoder(void **state)
{
    (void)state;
    uint8_t EUK[CPNS_KEY_LEN], EUK_C[CPNS_KEY_LEN];
    for (int i = 0; i < CPNS_KEY_LEN; i++) {
        EUK[i] = (uint8_t)i;
        EUK_C[i] = (uint8_t)(i + 100);
    }
    cpns_msg_decoder *shared = NULL;
    assert_int_equal(cpns_msg_decoder_new(&shared), 0);
    twin a, b, c;
    twin_new(&a, EUK, PNEID_A, NULL);
    twin_new(&b, EUK, PNEID_A, shared);
    twin_new(&c, EUK_C, "pne-c", shared);
    docs *ps = poisons();

    cpns_msg m;
    assert_int_equal(cpns_pne_link_up(a.pne, 1000), 0);
    assert_int_equal(cpns_pne_link_up(b.pne, 1000), 0);
    assert_int_equal(pop_same(&a, &b, &m), 1);
    assert_int_equal(m.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
    cpns_msg resp;
    cpns_msg_init(&resp, CPNS_MSG_PNE_REGISTRATION_RESPONSE, m.TransactionID);
    resp.Return = CPNS_RETURN_SUCCESS;
    resp.present |= CPNS_F_RETURN;
    assert_int_equal(cpns_msg_set_id(&resp, CPNS_F_PNEID, PNEID_A), 0);
    assert_int_equal(cpns_msg_set_id(&resp, CPNS_F_PNID, PNID), 0);
    uint8_t buf[2048];
    size_t len;
    assert_int_equal(cpns_msg_encode(&resp, buf, sizeof buf, &len), 0);
    assert_int_equal(cpns_pne_recv(a.pne, buf, len, 1000), 0);
    assert_int_equal(cpns_pne_recv(b.pne, buf, len, 1000), 0);
    assert_int_equal(cpns_pne_get_state(b.pne), CPNS_PNE_REGISTERED);

    int delivered = 0;
    for (size_t p = 0; p < ps->n; p++) {
        const doc *d = &ps->d[p];
        /* the poison through all three engines and the shared decoder itself */
        assert_int_equal(cpns_pne_recv(a.pne, d->data, d->len, 1000), 0);
        assert_int_equal(cpns_pne_recv(c.pne, d->data, d->len, 1000), 0);
        assert_int_equal(cpns_pne_recv(b.pne, d->data, d->len, 1000), 0);
        while (pop_same(&a, &b, &m))
            ;
        while (cpns_pne_pop(c.pne, &(cpns_out){0}))
            ;
        cpns_msg_decoder_peek(shared, d->data, d->len, &m);
        len = delivery(EUK, 100 + p, (uint32_t)(1 + p), buf, sizeof buf);
        assert_int_equal(cpns_pne_recv(c.pne, d->data, d->len, 1000), 0);
        assert_int_equal(cpns_pne_recv(a.pne, buf, len, 1000), 0);
        assert_int_equal(cpns_pne_recv(b.pne, buf, len, 1000), 0);
        assert_int_equal(pop_same(&a, &b, &m), 1);
        assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
        assert_int_equal(m.TransactionID, 100 + p);
        delivered += m.Return == CPNS_RETURN_SUCCESS;
        assert_int_equal(pop_same(&a, &b, &m), 0);
    }
    assert_int_equal(delivered, (int)ps->n);

    docs_free(ps);
    twin_del(&a);
    twin_del(&b);
    twin_del(&c);
    /* the shared decoder outlives its engines and still works */
    assert_int_equal(cpns_msg_decoder_decode(shared, buf, len, &m), 0);
    cpns_msg_decoder_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_after_every_poison),
        cmocka_unit_test(test_reuse_corpus_in_sequence),
        cmocka_unit_test(test_reset_keeps_namespace_processing),
        cmocka_unit_test(test_decoder_arguments),
        cmocka_unit_test(test_pne_own_and_shared_decoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
