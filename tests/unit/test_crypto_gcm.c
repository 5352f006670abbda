/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/crypto_gcm.c below EncryptedGroupKey: the reusable cpns_gcm
 * context (issue #4) gives what the one-shot AES-256-GCM gives for any
 * length, in place too, recovers after a refused tag, and its allocation
 * goes through the libcpns allocator hook and fails cleanly.
 */
#include <stdlib.h>
#include <string.h>

#include "crypto_internal.h"
#include "crypto_vectors.h"

/*
 * Lengths 0..200 (empty plaintext, empty AAD, partial blocks), a new random
 * key, nonce and AAD each time: the context matches the one-shot exactly,
 * in both directions, and in place (ct == pt).
 */
static void test_gcm_ctx_equals_oneshot(void **state)
{
    (void)state;
    cpns_gcm *c = NULL;
    assert_int_equal(cpns_gcm_new(&c), 0);
    uint64_t seed = 7;
    for (size_t len = 0; len <= 200; len++) {
        uint8_t key[CPNS_KEY_LEN], nonce[CPNS_GCM_NONCE_LEN], aad[64], pt[200];
        uint8_t ct1[200], ct2[200], tag1[CPNS_GCM_TAG_LEN], tag2[CPNS_GCM_TAG_LEN], back[200];
        size_t aad_len = len % (sizeof aad + 1);
        test_rand(&seed, key, sizeof key);
        test_rand(&seed, nonce, sizeof nonce);
        test_rand(&seed, aad, sizeof aad);
        test_rand(&seed, pt, sizeof pt);
        /* equal filler, so that the `len ? len : 1` compares hold at length 0 */
        memset(ct1, 0x33, sizeof ct1);
        memset(ct2, 0x33, sizeof ct2);
        memset(back, 0x33, sizeof back);
        pt[0] = len ? pt[0] : 0x33;
        assert_int_equal(cpns_gcm_seal(key, nonce, aad, aad_len, pt, len, ct1, tag1), 0);
        assert_int_equal(cpns_gcm_seal_ctx(c, key, nonce, aad, aad_len, pt, len, ct2, tag2), 0);
        assert_memory_equal(ct1, ct2, len ? len : 1);
        assert_memory_equal(tag1, tag2, sizeof tag1);
        assert_int_equal(cpns_gcm_open_ctx(c, key, nonce, aad, aad_len, ct2, len, tag2, back), 0);
        assert_memory_equal(back, pt, len ? len : 1);
        /* in place, as the callers of cpns_gcm_seal may do */
        memcpy(back, pt, len);
        assert_int_equal(cpns_gcm_seal_ctx(c, key, nonce, aad, aad_len, back, len, back, tag2), 0);
        assert_memory_equal(back, ct1, len ? len : 1);
        assert_memory_equal(tag1, tag2, sizeof tag1);
        assert_int_equal(cpns_gcm_open_ctx(c, key, nonce, aad, aad_len, back, len, tag2, back), 0);
        assert_memory_equal(back, pt, len ? len : 1);
    }
    cpns_gcm_free(c);
}

/* a wrong tag: CPNS_ERR_AUTH, the output wiped, and the context opens the good one after */
static void test_gcm_ctx_wrong_tag_then_good(void **state)
{
    (void)state;
    cpns_gcm *c = NULL;
    assert_int_equal(cpns_gcm_new(&c), 0);
    uint8_t key[CPNS_KEY_LEN], nonce[CPNS_GCM_NONCE_LEN], pt[40], ct[40], tag[CPNS_GCM_TAG_LEN];
    uint8_t bad[CPNS_GCM_TAG_LEN], out[40];
    uint64_t seed = 9;
    test_rand(&seed, key, sizeof key);
    test_rand(&seed, nonce, sizeof nonce);
    test_rand(&seed, pt, sizeof pt);
    assert_int_equal(cpns_gcm_seal_ctx(c, key, nonce, NULL, 0, pt, sizeof pt, ct, tag), 0);
    for (size_t bit = 0; bit < sizeof tag * 8; bit++) {
        memcpy(bad, tag, sizeof bad);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        memset(out, 0xa5, sizeof out);
        assert_int_equal(cpns_gcm_open_ctx(c, key, nonce, NULL, 0, ct, sizeof ct, bad, out),
                         CPNS_ERR_AUTH);
        v_assert_zero(out, sizeof out);
        assert_int_equal(cpns_gcm_open_ctx(c, key, nonce, NULL, 0, ct, sizeof ct, tag, out), 0);
        assert_memory_equal(out, pt, sizeof pt);
    }
    /* lengths beyond what OpenSSL takes are refused before it runs */
    assert_int_equal(cpns_gcm_seal_ctx(c, key, nonce, pt, (size_t)0x80000000u, pt, 1, ct, tag),
                     CPNS_ERR_CRYPTO);
    assert_int_equal(cpns_gcm_seal_ctx(c, key, nonce, NULL, 0, pt, sizeof pt, ct, tag), 0);
    assert_int_equal(cpns_gcm_open_ctx(c, key, nonce, NULL, 0, ct, sizeof ct, tag, out), 0);
    assert_memory_equal(out, pt, sizeof pt);
    cpns_gcm_free(c);
}

/* an allocator that fails every allocation while `failing` is set, and counts live blocks */
typedef struct failing_heap {
    int failing;
    long live;
} failing_heap;

static void *fh_malloc(size_t n, void *arg)
{
    failing_heap *h = arg;
    if (h->failing)
        return NULL;
    void *p = malloc(n);
    if (p)
        h->live++;
    return p;
}

static void *fh_realloc(void *p, size_t n, void *arg)
{
    failing_heap *h = arg;
    if (h->failing)
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        h->live++;
    return q;
}

static void fh_free(void *p, void *arg)
{
    failing_heap *h = arg;
    if (p)
        h->live--;
    free(p);
}

/* cpns_gcm_new allocates through the hook: NOMEM and NULL when that fails, nothing left behind */
static void test_gcm_new_allocation_failure(void **state)
{
    (void)state;
    failing_heap h = {1, 0};
    cpns_allocator a = {fh_malloc, fh_realloc, fh_free, &h};
    cpns_set_allocator(&a);
    cpns_gcm *c = (cpns_gcm *)&h; /* overwritten with NULL */
    assert_int_equal(cpns_gcm_new(&c), CPNS_ERR_NOMEM);
    assert_null(c);
    assert_int_equal(h.live, 0);
    h.failing = 0;
    assert_int_equal(cpns_gcm_new(&c), 0);
    assert_non_null(c);
    assert_true(h.live > 0);
    cpns_gcm_free(c);
    assert_int_equal(h.live, 0);
    cpns_set_allocator(NULL);
    cpns_gcm_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcm_ctx_equals_oneshot),
        cmocka_unit_test(test_gcm_ctx_wrong_tag_then_good),
        cmocka_unit_test(test_gcm_new_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
