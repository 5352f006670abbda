/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation failure of the PNE engine's lazily created contexts (lib/pne.c):
 * an engine given no decoder or GCM context makes its own on the first frame
 * that needs it. A counting allocator (cpns_set_allocator) fails the Nth
 * allocation of the first SGroupKeyDeliveryRequest, for N = 1, 2, ... until
 * the delivery runs with no failure injected. For each N:
 * - cpns_pne_recv() returns 0 or CPNS_ERR_NOMEM; with NOMEM nothing is
 *   answered (the server's resend is the retry);
 * - the same frame given again is answered Return 1 and the key stored;
 * - after cpns_pne_free() no block is left (the engine's own context freed).
 * An engine with shared contexts does not allocate them; the caller's stay
 * alive after the engine is gone. test_alloc_fail.c covers the other paths.
 */
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define W_PNEID "pne-1"
#define W_PNID "pn-home"
#define W_SGID "sg-1"
#define T0 1795000000123LL /* ms */

static test_counting ca;

typedef struct world {
    uint64_t seed;
    uint8_t EUK[CPNS_KEY_LEN];
    uint8_t GK[CPNS_KEY_LEN];
    cpns_keystore *ks;
    cpns_pne *pne;
    uint8_t frame[2048];
    size_t frame_len;
} world;

static void encode(world *w, const cpns_msg *m)
{
    assert_int_equal(cpns_msg_encode(m, w->frame, sizeof w->frame, &w->frame_len), 0);
}

/* A registered PNE (with the given shared contexts, or its own) and a delivery for it in frame. */
static void world_new(world *w, cpns_msg_decoder *decoder, cpns_gcm *gcm)
{
    memset(w, 0, sizeof *w);
    w->seed = 9;
    for (int i = 0; i < CPNS_KEY_LEN; i++) {
        w->EUK[i] = (uint8_t)i;
        w->GK[i] = (uint8_t)(0xa0 + i);
    }
    assert_int_equal(cpns_keystore_mem_new(&w->ks), 0);
    cpns_pne_config cfg = {.PNEID = W_PNEID,
                           .EUK = w->EUK,
                           .keystore = w->ks,
                           .rand = test_rand,
                           .rand_arg = &w->seed,
                           .log = test_log,
                           .decoder = decoder,
                           .gcm = gcm};
    assert_int_equal(cpns_pne_new(&w->pne, &cfg), 0);

    cpns_out out;
    cpns_msg m;
    assert_int_equal(cpns_pne_link_up(w->pne, T0), 0);
    assert_int_equal(cpns_pne_pop(w->pne, &out), 1);
    assert_int_equal(cpns_msg_decode(out.data, out.len, &m), 0);
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, m.TransactionID);
    m.Return = CPNS_RETURN_SUCCESS;
    m.present |= CPNS_F_RETURN;
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, W_PNEID), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, W_PNID), 0);
    encode(w, &m);
    assert_int_equal(cpns_pne_recv(w->pne, w->frame, w->frame_len, T0), 0);
    assert_int_equal(cpns_pne_get_state(w->pne), CPNS_PNE_REGISTERED);

    uint8_t K_wrap[CPNS_KEY_LEN], egk[CPNS_EGK_LEN], nonce[CPNS_GCM_NONCE_LEN];
    memset(nonce, 0x5a, sizeof nonce);
    assert_int_equal(cpns_kdf(w->EUK, CPNS_INFO_WRAP, K_wrap), 0);
    assert_int_equal(cpns_egk_wrap(K_wrap, W_SGID, W_PNEID, 1, w->GK, nonce, egk), 0);
    cpns_msg_init(&m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, 77);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, W_SGID), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, W_PNEID), 0);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_EGK, egk, sizeof egk), 0);
    m.KeyVersion = 1;
    m.present |= CPNS_F_KEYVERSION | CPNS_F_GROUPKEYINFO;
    encode(w, &m);
}

static void world_del(world *w)
{
    cpns_pne_free(w->pne);
    cpns_keystore_free(w->ks);
}

/* 7.8.6.1-1/-2: the last answer is Return 1 with the key stored; returns the number of answers. */
static int check_delivered(world *w)
{
    cpns_out out;
    cpns_msg m;
    cpns_stored_keys keys;
    int n = 0;
    uint32_t last = 99;
    while (cpns_pne_pop(w->pne, &out) == 1) {
        assert_int_equal(cpns_msg_decode(out.data, out.len, &m), 0);
        assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
        assert_int_equal(m.TransactionID, 77);
        last = m.Return;
        n++;
    }
    assert_int_equal(last, CPNS_RETURN_SUCCESS);
    assert_int_equal(w->ks->ops->get(w->ks, W_SGID, &keys), 0);
    assert_int_equal(keys.current.KeyVersion, 1);
    assert_memory_equal(keys.current.GK, w->GK, CPNS_KEY_LEN);
    return n;
}

/*
 * Fails each allocation of the first delivery in turn; returns how many
 * allocations that delivery takes when nothing fails.
 */
static long fail_each(cpns_msg_decoder *decoder, cpns_gcm *gcm)
{
    /* one run first: a shared decoder keeps the parser it makes, which is not a leak */
    world w0;
    world_new(&w0, decoder, gcm);
    assert_int_equal(cpns_pne_recv(w0.pne, w0.frame, w0.frame_len, T0), 0);
    assert_int_equal(check_delivered(&w0), 1);
    world_del(&w0);
    for (long n = 1;; n++) {
        long baseline = ca.live;
        world w;
        world_new(&w, decoder, gcm);
        long before = ca.calls;
        ca.failed = 0;
        ca.fail_at = ca.calls + n;
        int rv = cpns_pne_recv(w.pne, w.frame, w.frame_len, T0);
        ca.fail_at = 0;
        if (!ca.failed) {
            long used = ca.calls - before;
            assert_int_equal(rv, 0);
            assert_int_equal(check_delivered(&w), 1);
            world_del(&w);
            assert_int_equal(ca.live, baseline);
            return used;
        }
        if (rv != 0) {
            /*
             * Nothing answered: the failure is ours, not the blob's (no Return 2).
             * The key may be stored already when the answer's queueing failed.
             */
            assert_int_equal(rv, CPNS_ERR_NOMEM);
            cpns_out out;
            assert_int_equal(cpns_pne_pop(w.pne, &out), 0);
        }
        /* the resend (after a 0, a Return 3 may have been answered) ends with the key stored */
        assert_int_equal(cpns_pne_recv(w.pne, w.frame, w.frame_len, T0), 0);
        assert_true(check_delivered(&w) >= 1);
        world_del(&w);
        if (ca.live != baseline)
            fail_msg("%ld blocks leaked with allocation %ld failed", ca.live - baseline, n);
    }
}

/* The engine's own GCM context: made on the first delivery, a failure is NOMEM, freed on del. */
static void test_own_contexts_alloc_fail(void **state)
{
    (void)state;
    long own = fail_each(NULL, NULL);
    cpns_msg_decoder *decoder = NULL;
    cpns_gcm *gcm = NULL;
    assert_int_equal(cpns_msg_decoder_new(&decoder), 0);
    assert_int_equal(cpns_gcm_new(&gcm), 0);
    long own_gcm = fail_each(decoder, NULL);
    long shared = fail_each(decoder, gcm);
    /* with the same decoder, an engine makes its GCM context on that delivery; a sharing one does
     * not */
    assert_true(own_gcm > shared);
    print_message("first delivery: %ld allocations with its own contexts, %ld with its own GCM "
                  "context, %ld with both shared\n",
                  own, own_gcm, shared);
    cpns_gcm_free(gcm);
    cpns_msg_decoder_free(decoder);
}

int main(void)
{
    const cpns_allocator a = test_counting_allocator(&ca);
    cpns_set_allocator(&a);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_contexts_alloc_fail),
    };
    int rv = cmocka_run_group_tests(tests, NULL, NULL);
    cpns_set_allocator(NULL);
    return rv;
}
