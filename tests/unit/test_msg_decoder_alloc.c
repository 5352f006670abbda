/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation failure in the reusable decoder, cpns_msg_decoder
 * (lib/codec_decode.c), the way test_alloc_fail.c does it for the one-shot
 * codec and the engines: a counting allocator behind cpns_set_allocator()
 * fails the Nth allocation of one call, for N = 1, 2, ... until the call
 * runs with no failure injected.
 *
 * A failed call must return CPNS_ERR_NOMEM; the same decoder must then give
 * exactly a fresh decode's result (twice: the parser it recovered with must
 * itself reset cleanly), whatever it had parsed before the failure; and once
 * it is freed nothing is left allocated. Expat allocates through the hook,
 * so the parser's own allocations (the reset's encoding name, the buffer of
 * a big document, a new parser after one was dropped) are all covered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define NS CPNS_NAMESPACE
#define ROOT "<CPNSMessage xmlns=\"" NS "\" Version=\"1.1\" TransactionID=\"7\">"

/* cmocka's state: the allocator's counters */
static test_counting *counters(void **state)
{
    return *state;
}

static void test_decoder_new(void **state)
{
    test_counting *ca = counters(state);
    long n, injected_runs = 0;
    for (n = 1; n < 1000; n++) {
        long baseline = ca->live;
        ca->failed = 0;
        ca->fail_at = ca->calls + n;
        cpns_msg_decoder *dec = NULL;
        int rv = cpns_msg_decoder_new(&dec);
        ca->fail_at = 0;
        if (ca->failed) {
            injected_runs++;
            assert_int_equal(rv, CPNS_ERR_NOMEM);
            assert_null(dec);
        } else {
            assert_int_equal(rv, 0);
            assert_non_null(dec);
            cpns_msg m;
            const char *s = ROOT "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>";
            assert_int_equal(cpns_msg_decoder_decode(dec, (const uint8_t *)s, strlen(s), &m), 0);
            cpns_msg_decoder_free(dec);
        }
        if (ca->live != baseline)
            fail_msg("cpns_msg_decoder_new: %ld blocks leaked with allocation %ld failed",
                     ca->live - baseline, n);
        if (!ca->failed)
            break;
    }
    assert_true(injected_runs > 0);
}

typedef struct input {
    const char *name;
    char *data;
    size_t len;
} input;

static input text(const char *name, const char *s)
{
    input in = {name, strdup(s), strlen(s)};
    assert_non_null(in.data);
    return in;
}

/* A SGroupKeyDeliveryRequest grown with a comment to about `size` bytes. */
static input big(const char *name, size_t size)
{
    const char *head = ROOT "<SGroupKeyDeliveryRequest SGID=\"sg-1\"><GroupKeyInfo PNEID=\"pne-1\" "
                            "KeyVersion=\"1\" EncryptedGroupKey=\"AQID\"/><!--";
    const char *tail = "--></SGroupKeyDeliveryRequest></CPNSMessage>";
    input in = {name, malloc(size + 1), size};
    assert_non_null(in.data);
    memset(in.data, 'x', size);
    memcpy(in.data, head, strlen(head));
    memcpy(in.data + size - strlen(tail), tail, strlen(tail));
    return in;
}

static int run(cpns_msg_decoder *dec, const input *in, int peek, cpns_msg *m)
{
    memset(m, 0x5a, sizeof *m);
    const uint8_t *p = (const uint8_t *)in->data;
    return peek ? cpns_msg_decoder_peek(dec, p, in->len, m)
                : cpns_msg_decoder_decode(dec, p, in->len, m);
}

/* What the decoder did before the call that fails: nothing, or one of these. */
static input priors[8];
static size_t n_priors;
/* The call that fails. */
static input calls[4];
static size_t n_calls;

static void inputs(void)
{
    n_priors = n_calls = 0;
    priors[n_priors++] =
        text("valid", ROOT "<PNGWRegistrationResponse Return=\"1\"/></CPNSMessage>");
    priors[n_priors++] =
        text("truncated-bindings", "<p:CPNSMessage xmlns:p=\"" NS "\" Version=\"1.1\" "
                                   "TransactionID=\"7\"><p:SGroupKeyDeliveryRequest SGID=\"s\">");
    priors[n_priors++] = text("doctype", "<!DOCTYPE CPNSMessage>" ROOT "</CPNSMessage>");
    priors[n_priors++] =
        text("too-deep", ROOT "<PNGWRegistrationResponse Return=\"1\"><a><a><a><a><a><a><a><a><a>"
                              "<a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a>"
                              "<a><a><a><a><a>");
    priors[n_priors++] = big("huge", CPNS_FRAME_MAX - 100);
    calls[n_calls++] = text("response", ROOT "<SGroupKeyDeliveryResponse Return=\"1\" PNID=\"pn\" "
                                             "SGID=\"sg-1\" PNEID=\"pne-1\" KeyVersion=\"3\" "
                                             "KeyConfirmation=\"AAECAwQFBgcICQoLDA0ODw==\"/>"
                                             "</CPNSMessage>");
    calls[n_calls++] =
        text("malformed", ROOT "<SGroupKeyDeliveryRequest SGID=\"s g\"/></CPNSMessage>");
    calls[n_calls++] = big("big", 20000);
}

static void inputs_free(void)
{
    for (size_t i = 0; i < n_priors; i++)
        free(priors[i].data);
    for (size_t i = 0; i < n_calls; i++)
        free(calls[i].data);
}

/* One call under failure injection, after `prior` (NULL: a new decoder). */
static void fail_each_allocation(test_counting *ca, const input *prior, const input *call, int peek)
{
    cpns_msg expect, got;
    memset(&expect, 0x5a, sizeof expect);
    int expect_rv = peek ? cpns_msg_peek((const uint8_t *)call->data, call->len, &expect)
                         : cpns_msg_decode((const uint8_t *)call->data, call->len, &expect);
    const char *after = prior ? prior->name : "nothing";
    long n, injected_runs = 0;
    for (n = 1; n < 100000; n++) {
        long baseline = ca->live;
        cpns_msg_decoder *dec = NULL;
        assert_int_equal(cpns_msg_decoder_new(&dec), 0);
        if (prior)
            run(dec, prior, 0, &got);
        ca->failed = 0;
        ca->fail_at = ca->calls + n;
        int rv = run(dec, call, peek, &got);
        ca->fail_at = 0;
        int injected = ca->failed;
        if (injected) {
            injected_runs++;
            if (rv != CPNS_ERR_NOMEM)
                fail_msg("%s after %s: allocation %ld failed, returned %d", call->name, after, n,
                         rv);
        }
        for (int again = 0; again < (injected ? 2 : 1); again++) {
            if (injected)
                rv = run(dec, call, peek, &got);
            if (rv != expect_rv || memcmp(&got, &expect, sizeof got) != 0)
                fail_msg("%s after %s, allocation %ld failed: %d, not %d as fresh%s", call->name,
                         after, n, rv, expect_rv, rv == expect_rv ? " (models differ)" : "");
        }
        cpns_msg_decoder_free(dec);
        if (ca->live != baseline)
            fail_msg("%s after %s: %ld blocks leaked with allocation %ld failed", call->name, after,
                     ca->live - baseline, n);
        if (!injected)
            break;
    }
    /* even a reused parser allocates (the encoding name), so the loop always injects */
    assert_true(injected_runs > 0);
}

static void test_reused_decoder_each_allocation(void **state)
{
    test_counting *ca = counters(state);
    inputs();
    for (size_t c = 0; c < n_calls; c++) {
        for (int peek = 0; peek < 2; peek++) {
            fail_each_allocation(ca, NULL, &calls[c], peek);
            for (size_t p = 0; p < n_priors; p++)
                fail_each_allocation(ca, &priors[p], &calls[c], peek);
        }
    }
    inputs_free();
}

int main(void)
{
    test_counting ca = {0};
    const cpns_allocator a = test_counting_allocator(&ca);
    cpns_set_allocator(&a);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_decoder_new, &ca),
        cmocka_unit_test_prestate(test_reused_decoder_each_allocation, &ca),
    };
    int rv = cmocka_run_group_tests(tests, NULL, NULL);
    cpns_set_allocator(NULL);
    return rv;
}
