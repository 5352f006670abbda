/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the PNE engine's optional shared contexts (lib/pne.c): a
 * cpns_msg_decoder, a cpns_gcm and a cpns_sha256 handed in through cpns_pne_config, as the
 * load generator does for 100,000 simulated PNEs in one thread.
 *
 * The promise under test: an engine that uses shared contexts answers byte
 * for byte what the same engine with its own lazily created contexts
 * answers, and stores the same keys, whatever the other engines sharing the
 * contexts did in between (other EUKs, refused blobs, malformed frames).
 * Engines that share contexts do not free them; the contexts outlive them.
 * Allocation failure of the engine's own contexts is in test_pne_alloc.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define N_PNE 3
#define PNID_HOME "pn-home"
#define T0 1795000000123LL /* ms */

static const char *const PNEIDs[N_PNE] = {"pne-a", "pne-b", "pne-c"};

/* One simulated PNE run twice: with its own contexts and with the shared ones. */
typedef struct twin {
    uint8_t EUK[CPNS_KEY_LEN];
    uint8_t K_wrap[CPNS_KEY_LEN];
    uint64_t seed_own, seed_shared; /* equal: both engines draw the same TIDs and Nonces */
    cpns_keystore *ks_own, *ks_shared;
    cpns_pne *own, *shared;
} twin;

typedef struct fixture {
    cpns_msg_decoder *decoder;
    cpns_gcm *gcm;
    cpns_sha256 *sha256;
    twin t[N_PNE];
    uint64_t nonce_ctr;
} fixture;

static void twin_new(fixture *f, int i, cpns_log_fn log)
{
    twin *t = &f->t[i];
    for (int k = 0; k < CPNS_KEY_LEN; k++)
        t->EUK[k] = (uint8_t)(0x10 * (i + 1) + k);
    assert_int_equal(cpns_kdf(t->EUK, CPNS_INFO_WRAP, t->K_wrap), 0);
    t->seed_own = t->seed_shared = (uint64_t)(100 + i);
    assert_int_equal(cpns_keystore_mem_new(&t->ks_own), 0);
    assert_int_equal(cpns_keystore_mem_new(&t->ks_shared), 0);
    cpns_pne_config cfg = {.PNEID = PNEIDs[i],
                           .EUK = t->EUK,
                           .keystore = t->ks_own,
                           .rand = test_rand,
                           .rand_arg = &t->seed_own,
                           .log = log};
    assert_int_equal(cpns_pne_new(&t->own, &cfg), 0);
    cfg.keystore = t->ks_shared;
    cfg.rand_arg = &t->seed_shared;
    cfg.decoder = f->decoder;
    cfg.gcm = f->gcm;
    cfg.sha256 = f->sha256;
    assert_int_equal(cpns_pne_new(&t->shared, &cfg), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(cpns_msg_decoder_new(&f->decoder), 0);
    assert_int_equal(cpns_gcm_new(&f->gcm), 0);
    assert_int_equal(cpns_sha256_new(&f->sha256), 0);
    /* the last one without a logger: the engine then skips the log-only work */
    for (int i = 0; i < N_PNE; i++)
        twin_new(f, i, i == N_PNE - 1 ? NULL : test_log);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < N_PNE; i++) {
        cpns_pne_free(f->t[i].own);
        cpns_pne_free(f->t[i].shared);
        cpns_keystore_free(f->t[i].ks_own);
        cpns_keystore_free(f->t[i].ks_shared);
    }
    /* the engines are gone; the contexts are still ours to free (a double free fails here) */
    cpns_gcm_free(f->gcm);
    cpns_sha256_free(f->sha256);
    cpns_msg_decoder_free(f->decoder);
    free(f);
    return 0;
}

/*
 * Pops everything both engines of twin i queued, checks the two streams are
 * byte-identical, and returns the number of frames; *last gets the last one
 * decoded (when there is one).
 */
static int pop_both(twin *t, cpns_msg *last)
{
    cpns_out a, b;
    int n = 0;
    for (;;) {
        int ra = cpns_pne_pop(t->own, &a);
        int rb = t->shared ? cpns_pne_pop(t->shared, &b) : ra;
        assert_int_equal(ra, rb);
        if (ra == 0)
            return n;
        if (t->shared) {
            assert_int_equal(a.len, b.len);
            assert_memory_equal(a.data, b.data, a.len);
        }
        if (last)
            assert_int_equal(cpns_msg_decode(a.data, a.len, last), 0);
        n++;
    }
}

/* Gives the same frame to both engines of twin i; returns the one answer (Return), -1 for none. */
static int feed(fixture *f, int i, const uint8_t *frame, size_t len)
{
    twin *t = &f->t[i];
    cpns_msg resp;
    assert_int_equal(cpns_pne_recv(t->own, frame, len, T0), 0);
    if (t->shared)
        assert_int_equal(cpns_pne_recv(t->shared, frame, len, T0), 0);
    int n = pop_both(t, &resp);
    assert_true(n <= 1);
    return n == 1 ? (int)resp.Return : -1;
}

static int feed_msg(fixture *f, int i, const cpns_msg *m)
{
    uint8_t buf[2048];
    size_t len;
    assert_int_equal(cpns_msg_encode(m, buf, sizeof buf, &len), 0);
    return feed(f, i, buf, len);
}

static void register_twin(fixture *f, int i)
{
    twin *t = &f->t[i];
    cpns_msg req, resp;
    assert_int_equal(cpns_pne_link_up(t->own, T0), 0);
    assert_int_equal(cpns_pne_link_up(t->shared, T0), 0);
    assert_int_equal(pop_both(t, &req), 1);
    assert_int_equal(req.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
    cpns_msg_init(&resp, CPNS_MSG_PNE_REGISTRATION_RESPONSE, req.TransactionID);
    resp.Return = CPNS_RETURN_SUCCESS;
    resp.present |= CPNS_F_RETURN;
    assert_int_equal(cpns_msg_set_id(&resp, CPNS_F_PNEID, PNEIDs[i]), 0);
    assert_int_equal(cpns_msg_set_id(&resp, CPNS_F_PNID, PNID_HOME), 0);
    assert_int_equal(feed_msg(f, i, &resp), -1);
    assert_int_equal(cpns_pne_get_state(t->own), CPNS_PNE_REGISTERED);
    assert_int_equal(cpns_pne_get_state(t->shared), CPNS_PNE_REGISTERED);
}

static void make_gk(uint8_t GK[CPNS_KEY_LEN], uint8_t fill)
{
    for (int k = 0; k < CPNS_KEY_LEN; k++)
        GK[k] = (uint8_t)(fill + k);
}

/* A SGroupKeyDeliveryRequest as the server builds it, for PNE i, wrapped under K_wrap. */
static void build_delivery(fixture *f, cpns_msg *m, uint64_t tid, const char *SGID, int i,
                           uint32_t KeyVersion, const uint8_t *K_wrap,
                           const uint8_t GK[CPNS_KEY_LEN])
{
    uint8_t nonce[CPNS_GCM_NONCE_LEN], egk[CPNS_EGK_LEN];
    test_rand(&f->nonce_ctr, nonce, sizeof nonce);
    assert_int_equal(cpns_egk_wrap(K_wrap, SGID, PNEIDs[i], KeyVersion, GK, nonce, egk), 0);
    cpns_msg_init(m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, tid);
    assert_int_equal(cpns_msg_set_id(m, CPNS_F_SGID, SGID), 0);
    assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, PNEIDs[i]), 0);
    assert_int_equal(cpns_msg_set_blob(m, CPNS_F_EGK, egk, sizeof egk), 0);
    m->KeyVersion = KeyVersion;
    m->present |= CPNS_F_KEYVERSION | CPNS_F_GROUPKEYINFO;
}

/* Delivers to PNE i under its own K_wrap (or another's, K_wrap_of != i). */
static int deliver(fixture *f, int i, int K_wrap_of, uint64_t tid, const char *SGID,
                   uint32_t KeyVersion, const uint8_t GK[CPNS_KEY_LEN])
{
    cpns_msg m;
    build_delivery(f, &m, tid, SGID, i, KeyVersion, f->t[K_wrap_of].K_wrap, GK);
    return feed_msg(f, i, &m);
}

/* Both keystores of twin i hold GK as the current KeyVersion of SGID (or nothing, GK NULL). */
static void assert_both_hold(twin *t, const char *SGID, uint32_t KeyVersion,
                             const uint8_t GK[CPNS_KEY_LEN])
{
    cpns_keystore *ks[2] = {t->ks_own, t->ks_shared};
    for (int k = 0; k < 2; k++) {
        cpns_stored_keys keys;
        int rv = ks[k]->ops->get(ks[k], SGID, &keys);
        if (!GK) {
            assert_int_equal(rv, CPNS_ERR_NOT_FOUND);
            continue;
        }
        assert_int_equal(rv, 0);
        assert_int_equal(keys.current.KeyVersion, KeyVersion);
        assert_memory_equal(keys.current.GK, GK, CPNS_KEY_LEN);
    }
}

/*
 * 7.8.6.1-1/-2 with shared contexts: the engines take turns on one decoder
 * and one GCM context (each with its own K_wrap), refusals in between; every
 * answer and every stored key equals the one of an engine with its own.
 */
static void test_7_8_6_1_1_shared_contexts_answer_identically(void **state)
{
    fixture *f = *state;
    uint8_t GK1[CPNS_KEY_LEN], GK2[CPNS_KEY_LEN], GKx[CPNS_KEY_LEN];
    make_gk(GK1, 0x40);
    make_gk(GK2, 0x80);
    make_gk(GKx, 0xc0);
    for (int i = 0; i < N_PNE; i++)
        register_twin(f, i);

    /* each decrypts under its own K_wrap, one after the other on the shared GCM context */
    for (int i = 0; i < N_PNE; i++)
        assert_int_equal(deliver(f, i, i, 100 + (uint64_t)i, "sg-1", 1, GK1), CPNS_RETURN_SUCCESS);
    /* a blob wrapped for B (PNEID and K_wrap of B), given to A: refused, then A works */
    cpns_msg m;
    build_delivery(f, &m, 110, "sg-1", 1, 2, f->t[1].K_wrap, GK2);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, PNEIDs[0]), 0);
    assert_int_equal(feed_msg(f, 0, &m), CPNS_RETURN_DECRYPT);
    /* wrapped under another PNE's K_wrap: Return 2 */
    assert_int_equal(deliver(f, 2, 0, 111, "sg-1", 2, GK2), CPNS_RETURN_DECRYPT);
    /* a flipped tag: Return 2, and the next engine on the context still decrypts */
    build_delivery(f, &m, 112, "sg-1", 1, 2, f->t[1].K_wrap, GK2);
    m.EncryptedGroupKey.data[CPNS_EGK_LEN - 1] ^= 1;
    assert_int_equal(feed_msg(f, 1, &m), CPNS_RETURN_DECRYPT);
    assert_int_equal(deliver(f, 2, 2, 113, "sg-1", 2, GK2), CPNS_RETURN_SUCCESS);
    /* malformed (bad base64) on the shared decoder: Return 4 */
    const char *bad = "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                      "TransactionID=\"114\"><SGroupKeyDeliveryRequest SGID=\"sg-1\">"
                      "<GroupKeyInfo PNEID=\"pne-a\" KeyVersion=\"2\" EncryptedGroupKey=\"@@\"/>"
                      "</SGroupKeyDeliveryRequest></CPNSMessage>";
    assert_int_equal(feed(f, 0, (const uint8_t *)bad, strlen(bad)), CPNS_RETURN_MALFORMED);
    /* not addressed to the receiver: Return 5 */
    build_delivery(f, &m, 115, "sg-1", 1, 2, f->t[1].K_wrap, GK2);
    assert_int_equal(feed_msg(f, 2, &m), CPNS_RETURN_NOT_MINE);
    /* same KeyVersion, another key: Return 7 (replay) */
    assert_int_equal(deliver(f, 0, 0, 116, "sg-1", 1, GKx), CPNS_RETURN_STALE);
    /* the new version everywhere, a resend of it idempotent */
    for (int i = 0; i < N_PNE; i++)
        assert_int_equal(deliver(f, i, i, 120 + (uint64_t)i, "sg-1", 2, GK2), CPNS_RETURN_SUCCESS);
    assert_int_equal(deliver(f, 1, 1, 123, "sg-1", 2, GK2), CPNS_RETURN_SUCCESS);
    /* a frame that is not for a PNE: dropped by both */
    cpns_msg other;
    cpns_msg_init(&other, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, 130);
    other.Return = CPNS_RETURN_SUCCESS;
    other.present |= CPNS_F_RETURN;
    assert_int_equal(feed_msg(f, 1, &other), -1);

    for (int i = 0; i < N_PNE; i++)
        assert_both_hold(&f->t[i], "sg-1", 2, GK2);
}

/* The Return 1 answers with shared contexts carry a KeyConfirmation of the delivered key. */
static void test_7_8_6_1_3_shared_contexts_key_confirmation(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN], kc[CPNS_KC_LEN];
    cpns_msg req, resp;
    make_gk(GK, 0x11);
    for (int i = 0; i < N_PNE; i++) {
        register_twin(f, i);
        build_delivery(f, &req, 200 + (uint64_t)i, "sg-kc", i, 5, f->t[i].K_wrap, GK);
        uint8_t buf[2048];
        size_t len;
        assert_int_equal(cpns_msg_encode(&req, buf, sizeof buf, &len), 0);
        assert_int_equal(cpns_pne_recv(f->t[i].shared, buf, len, T0), 0);
        assert_int_equal(cpns_pne_recv(f->t[i].own, buf, len, T0), 0);
        assert_int_equal(pop_both(&f->t[i], &resp), 1);
        assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);
        assert_string_equal(resp.PNEID, PNEIDs[i]);
        assert_string_equal(resp.PNID, PNID_HOME);
        assert_int_equal(cpns_key_confirmation(GK, "sg-kc", PNEIDs[i], 5, kc), 0);
        assert_int_equal(resp.KeyConfirmation.len, CPNS_KC_LEN);
        assert_memory_equal(resp.KeyConfirmation.data, kc, CPNS_KC_LEN);
        assert_both_hold(&f->t[i], "sg-kc", 5, GK);
    }
}

/* Deleting an engine leaves the shared contexts to the others (and to their owner). */
static void test_del_keeps_shared_contexts(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    make_gk(GK, 0x22);
    for (int i = 0; i < N_PNE; i++)
        register_twin(f, i);
    assert_int_equal(deliver(f, 0, 0, 300, "sg-del", 1, GK), CPNS_RETURN_SUCCESS);
    cpns_pne_free(f->t[0].shared);
    f->t[0].shared = NULL;
    cpns_pne_free(f->t[1].own);
    f->t[1].own = f->t[1].shared;
    f->t[1].shared = NULL;
    /* the remaining sharers still decode and decrypt on the same contexts */
    assert_int_equal(deliver(f, 1, 1, 301, "sg-del", 1, GK), CPNS_RETURN_SUCCESS);
    assert_int_equal(deliver(f, 2, 2, 302, "sg-del", 1, GK), CPNS_RETURN_SUCCESS);
    assert_int_equal(deliver(f, 1, 0, 303, "sg-del", 2, GK), CPNS_RETURN_DECRYPT);
    assert_int_equal(deliver(f, 2, 2, 304, "sg-del", 2, GK), CPNS_RETURN_SUCCESS);
    /* and the caller's contexts still work for the caller */
    cpns_msg m, got;
    uint8_t buf[2048];
    size_t len;
    build_delivery(f, &m, 305, "sg-del", 2, 3, f->t[2].K_wrap, GK);
    assert_int_equal(cpns_msg_encode(&m, buf, sizeof buf, &len), 0);
    assert_int_equal(cpns_msg_decoder_decode(f->decoder, buf, len, &got), 0);
    assert_int_equal(got.TransactionID, 305);
    assert_string_equal(got.PNEID, PNEIDs[2]);
    uint8_t egk[CPNS_EGK_LEN], nonce[CPNS_GCM_NONCE_LEN] = {0}, out[CPNS_KEY_LEN];
    assert_int_equal(cpns_egk_wrap(f->t[2].K_wrap, "sg-del", PNEIDs[2], 9, GK, nonce, egk), 0);
    assert_int_equal(
        cpns_egk_unwrap_ctx(f->gcm, f->t[2].K_wrap, "sg-del", PNEIDs[2], 9, egk, sizeof egk, out),
        0);
    assert_memory_equal(out, GK, CPNS_KEY_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_7_8_6_1_1_shared_contexts_answer_identically, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_1_3_shared_contexts_key_confirmation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_del_keeps_shared_contexts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
