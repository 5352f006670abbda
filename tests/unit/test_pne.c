/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the PNE engine (lib/pne.c): the registration machine and the
 * SGroupKeyDelivery handler of 7.8.6.1, driven frame by frame with a fake
 * clock, the deterministic test_rand and the real codec, crypto and memory
 * keystore. Deliveries are built as the server builds them (cpns_egk_wrap
 * with a known Group Key), so "decrypted" and "stored" are checked against
 * the key that went in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define PNEID_TV "pne-tv"
#define PNID_HOME "pn-home"
#define T0 1795000000123LL /* ms */

/* A keystore that counts put() calls and forwards everything to a memory keystore. */
typedef struct counting_ks {
    cpns_keystore base;
    cpns_keystore *inner;
    int puts;
} counting_ks;

static int cks_get(cpns_keystore *ks, const char *SGID, cpns_stored_keys *out)
{
    counting_ks *c = (counting_ks *)ks;
    return c->inner->ops->get(c->inner, SGID, out);
}

static int cks_put(cpns_keystore *ks, const char *SGID, uint32_t KeyVersion,
                   const uint8_t GK[CPNS_KEY_LEN])
{
    counting_ks *c = (counting_ks *)ks;
    c->puts++;
    return c->inner->ops->put(c->inner, SGID, KeyVersion, GK);
}

static int cks_list(cpns_keystore *ks, cpns_keystore_visit_fn fn, void *arg)
{
    counting_ks *c = (counting_ks *)ks;
    return c->inner->ops->list(c->inner, fn, arg);
}

static void cks_close(cpns_keystore *ks)
{
    (void)ks;
}

static const cpns_keystore_ops counting_ops = {cks_get, cks_put, cks_list, cks_close};

typedef struct fixture {
    uint64_t seed;
    uint8_t EUK[CPNS_KEY_LEN];
    uint8_t K_wrap[CPNS_KEY_LEN];
    counting_ks ks;
    cpns_pne *pne;
    uint64_t nonce_ctr; /* for the EncryptedGroupKey nonces the "server" picks */
} fixture;

static void euk_vector(uint8_t EUK[CPNS_KEY_LEN])
{
    for (int i = 0; i < CPNS_KEY_LEN; i++)
        EUK[i] = (uint8_t)i;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->seed = 42;
    euk_vector(f->EUK);
    assert_int_equal(cpns_kdf(f->EUK, CPNS_INFO_WRAP, f->K_wrap), 0);
    assert_int_equal(cpns_keystore_mem_new(&f->ks.inner), 0);
    f->ks.base.ops = &counting_ops;
    cpns_pne_config cfg = {0};
    cfg.PNEID = PNEID_TV;
    cfg.EUK = f->EUK;
    cfg.keystore = &f->ks.base;
    cfg.rand = test_rand;
    cfg.rand_arg = &f->seed;
    cfg.log = test_log;
    cfg.register_timeout_ms = 5000;
    assert_int_equal(cpns_pne_new(&f->pne, &cfg), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cpns_pne_free(f->pne);
    cpns_keystore_free(f->ks.inner);
    free(f);
    return 0;
}

/* Pops the next frame and decodes it (it must be a valid message). */
static void pop_msg(cpns_pne *pne, cpns_msg *m)
{
    cpns_out out;
    assert_int_equal(cpns_pne_pop(pne, &out), 1);
    assert_int_equal(out.link, 0);
    assert_int_equal(cpns_msg_decode(out.data, out.len, m), 0);
}

static void assert_nothing_queued(cpns_pne *pne)
{
    cpns_out out;
    assert_int_equal(cpns_pne_pop(pne, &out), 0);
}

static void recv_msg(cpns_pne *pne, const cpns_msg *m, int64_t now)
{
    uint8_t buf[2048];
    size_t len;
    assert_int_equal(cpns_msg_encode(m, buf, sizeof buf, &len), 0);
    assert_int_equal(cpns_pne_recv(pne, buf, len, now), 0);
}

static void recv_str(cpns_pne *pne, const char *xml)
{
    assert_int_equal(cpns_pne_recv(pne, (const uint8_t *)xml, strlen(xml), T0), 0);
}

static void send_registration_response(cpns_pne *pne, uint64_t tid, uint32_t Return,
                                       const char *PNID)
{
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, tid);
    m.Return = Return;
    m.present |= CPNS_F_RETURN;
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, PNEID_TV), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, PNID), 0);
    recv_msg(pne, &m, T0);
}

/* link_up, answer the registration with Return 1 and PNID. */
static void do_register(cpns_pne *pne, const char *PNID)
{
    cpns_msg req;
    assert_int_equal(cpns_pne_link_up(pne, T0), 0);
    pop_msg(pne, &req);
    assert_int_equal(req.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
    send_registration_response(pne, req.TransactionID, CPNS_RETURN_SUCCESS, PNID);
    assert_int_equal(cpns_pne_get_state(pne), CPNS_PNE_REGISTERED);
    assert_nothing_queued(pne);
}

static void make_gk(uint8_t GK[CPNS_KEY_LEN], uint8_t fill)
{
    for (int i = 0; i < CPNS_KEY_LEN; i++)
        GK[i] = (uint8_t)(fill + i);
}

/* A SGroupKeyDeliveryRequest as the server builds it, wrapped under K_wrap. */
static void build_delivery(fixture *f, cpns_msg *m, uint64_t tid, const char *SGID,
                           const char *PNEID, uint32_t KeyVersion, const uint8_t *K_wrap,
                           const uint8_t GK[CPNS_KEY_LEN])
{
    uint8_t nonce[CPNS_GCM_NONCE_LEN], egk[CPNS_EGK_LEN];
    test_rand(&f->nonce_ctr, nonce, sizeof nonce);
    assert_int_equal(cpns_egk_wrap(K_wrap, SGID, PNEID, KeyVersion, GK, nonce, egk), 0);
    cpns_msg_init(m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, tid);
    assert_int_equal(cpns_msg_set_id(m, CPNS_F_SGID, SGID), 0);
    assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, PNEID), 0);
    assert_int_equal(cpns_msg_set_blob(m, CPNS_F_EGK, egk, sizeof egk), 0);
    m->KeyVersion = KeyVersion;
    m->present |= CPNS_F_KEYVERSION | CPNS_F_GROUPKEYINFO;
}

/* Delivers GK as KeyVersion of SGID to the PNE and returns the decoded response. */
static void deliver(fixture *f, uint64_t tid, const char *SGID, uint32_t KeyVersion,
                    const uint8_t GK[CPNS_KEY_LEN], cpns_msg *resp)
{
    cpns_msg req;
    build_delivery(f, &req, tid, SGID, PNEID_TV, KeyVersion, f->K_wrap, GK);
    recv_msg(f->pne, &req, T0);
    pop_msg(f->pne, resp);
    assert_int_equal(resp->kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
    assert_int_equal(resp->TransactionID, tid);
    assert_nothing_queued(f->pne);
}

static void assert_kc_valid(const cpns_msg *resp, const uint8_t GK[CPNS_KEY_LEN])
{
    uint8_t kc[CPNS_KC_LEN];
    assert_true(resp->present & CPNS_F_KC);
    assert_int_equal(resp->KeyConfirmation.len, CPNS_KC_LEN);
    assert_int_equal(cpns_key_confirmation(GK, resp->SGID, resp->PNEID, resp->KeyVersion, kc), 0);
    assert_memory_equal(kc, resp->KeyConfirmation.data, CPNS_KC_LEN);
}

static int contains(const uint8_t *data, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(data + i, needle, n) == 0)
            return 1;
    return 0;
}

static void assert_not_stored(fixture *f, const char *SGID)
{
    cpns_stored_keys keys;
    assert_int_equal(f->ks.base.ops->get(&f->ks.base, SGID, &keys), CPNS_ERR_NOT_FOUND);
}

static void assert_current_key(fixture *f, const char *SGID, uint32_t KeyVersion,
                               const uint8_t GK[CPNS_KEY_LEN])
{
    cpns_stored_keys keys;
    assert_int_equal(f->ks.base.ops->get(&f->ks.base, SGID, &keys), 0);
    assert_int_equal(keys.current.KeyVersion, KeyVersion);
    assert_memory_equal(keys.current.GK, GK, CPNS_KEY_LEN);
}

/* --- registration --- */

static void test_new_rejects_bad_config(void **state)
{
    fixture *f = *state;
    cpns_pne *p = NULL;
    cpns_pne_config cfg = {0};
    cfg.PNEID = "bad id!";
    cfg.EUK = f->EUK;
    cfg.keystore = &f->ks.base;
    assert_int_equal(cpns_pne_new(&p, &cfg), CPNS_ERR_INVALID_ARG);
    cfg.PNEID = PNEID_TV;
    cfg.keystore = NULL;
    assert_int_equal(cpns_pne_new(&p, &cfg), CPNS_ERR_INVALID_ARG);
    cfg.keystore = &f->ks.base;
    cfg.EUK = NULL;
    assert_int_equal(cpns_pne_new(&p, &cfg), CPNS_ERR_INVALID_ARG);
    assert_null(p);
    cpns_pne_free(NULL);
}

static void test_registration_request_is_valid(void **state)
{
    fixture *f = *state;
    cpns_msg m;
    assert_int_equal(cpns_pne_get_state(f->pne), CPNS_PNE_OFFLINE);
    assert_int_equal(cpns_pne_get_expiry(f->pne), CPNS_NEVER);
    assert_int_equal(cpns_pne_last_return(f->pne), -1);
    assert_null(cpns_pne_pnid(f->pne));

    assert_int_equal(cpns_pne_link_up(f->pne, T0), 0);
    assert_int_equal(cpns_pne_get_state(f->pne), CPNS_PNE_REGISTERING);
    assert_int_equal(cpns_pne_get_expiry(f->pne), T0 + 5000);
    pop_msg(f->pne, &m);
    assert_nothing_queued(f->pne);
    assert_int_equal(m.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
    assert_true(m.TransactionID >= 1 && m.TransactionID <= (uint64_t)CPNS_TID_MAX);
    assert_string_equal(m.PNEID, PNEID_TV);
    assert_int_equal(m.Time, (uint64_t)(T0 / 1000));
    assert_int_equal(m.Nonce.len, CPNS_NONCE_LEN);
    assert_int_equal(m.Proof.len, CPNS_PROOF_LEN);

    /* Recompute the Proof as the server does: from the EUK and the attribute strings. */
    uint8_t K_auth[CPNS_KEY_LEN], proof[CPNS_PROOF_LEN];
    char nonce_b64[CPNS_B64_LEN(CPNS_NONCE_LEN) + 1], time_str[32];
    assert_int_equal(cpns_kdf(f->EUK, CPNS_INFO_AUTH, K_auth), 0);
    assert_true(cpns_b64_encode(m.Nonce.data, m.Nonce.len, nonce_b64, sizeof nonce_b64) > 0);
    snprintf(time_str, sizeof time_str, "%llu", (unsigned long long)m.Time);
    assert_int_equal(cpns_proof(K_auth, PNEID_TV, nonce_b64, time_str, proof), 0);
    assert_memory_equal(proof, m.Proof.data, CPNS_PROOF_LEN);

    /* And a Proof under another EUK does not match. */
    uint8_t other[CPNS_KEY_LEN];
    memset(other, 0x55, sizeof other);
    assert_int_equal(cpns_kdf(other, CPNS_INFO_AUTH, K_auth), 0);
    assert_int_equal(cpns_proof(K_auth, PNEID_TV, nonce_b64, time_str, proof), 0);
    assert_memory_not_equal(proof, m.Proof.data, CPNS_PROOF_LEN);
}

static void test_registration_retry_on_timeout(void **state)
{
    fixture *f = *state;
    cpns_msg r1, r2;
    assert_int_equal(cpns_pne_link_up(f->pne, T0), 0);
    pop_msg(f->pne, &r1);

    assert_int_equal(cpns_pne_handle_expiry(f->pne, T0 + 4999), 0);
    assert_nothing_queued(f->pne);
    assert_int_equal(cpns_pne_handle_expiry(f->pne, T0 + 5000), 0);
    pop_msg(f->pne, &r2);
    assert_int_equal(r2.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
    assert_int_not_equal(r2.TransactionID, r1.TransactionID);
    assert_memory_not_equal(r2.Nonce.data, r1.Nonce.data, CPNS_NONCE_LEN);
    assert_int_equal(r2.Time, (uint64_t)((T0 + 5000) / 1000));
    assert_int_equal(cpns_pne_get_expiry(f->pne), T0 + 10000);

    /* The answer to the first attempt has a TransactionID no longer outstanding. */
    send_registration_response(f->pne, r1.TransactionID, CPNS_RETURN_SUCCESS, PNID_HOME);
    assert_int_equal(cpns_pne_get_state(f->pne), CPNS_PNE_REGISTERING);
    assert_null(cpns_pne_pnid(f->pne));
    send_registration_response(f->pne, r2.TransactionID, CPNS_RETURN_SUCCESS, PNID_HOME);
    assert_int_equal(cpns_pne_get_state(f->pne), CPNS_PNE_REGISTERED);
    assert_nothing_queued(f->pne);
}

static int64_t fixed_wall(void *arg)
{
    return *(const int64_t *)arg;
}

/*
 * #10.12: the registration Time is a date, from wall_clock; now_ms is a
 * monotonic clock (here since "boot") that only times the registration retry.
 */
static void test_registration_time_from_wall_clock(void **state)
{
    fixture *f = *state;
    int64_t wall = T0 + 3600 * 1000; /* the wall clock has nothing to do with now_ms */
    cpns_pne *pne;
    cpns_pne_config cfg = {0};
    cfg.PNEID = PNEID_TV;
    cfg.EUK = f->EUK;
    cfg.keystore = &f->ks.base;
    cfg.rand = test_rand;
    cfg.rand_arg = &f->seed;
    cfg.log = test_log;
    cfg.register_timeout_ms = 5000;
    cfg.wall_clock = fixed_wall;
    cfg.wall_clock_arg = &wall;
    assert_int_equal(cpns_pne_new(&pne, &cfg), 0);
    cpns_msg m;
    assert_int_equal(cpns_pne_link_up(pne, 1000), 0);
    assert_int_equal(cpns_pne_get_expiry(pne), 6000);
    pop_msg(pne, &m);
    assert_int_equal(m.Time, (uint64_t)(wall / 1000));
    wall += 2000;
    assert_int_equal(cpns_pne_handle_expiry(pne, 5999), 0);
    assert_nothing_queued(pne);
    assert_int_equal(cpns_pne_handle_expiry(pne, 6000), 0);
    pop_msg(pne, &m);
    assert_int_equal(m.Time, (uint64_t)(wall / 1000));
    assert_int_equal(cpns_pne_get_expiry(pne), 11000);
    cpns_pne_free(pne);
}

static void test_registration_return1_learns_pnid(void **state)
{
    fixture *f = *state;
    do_register(f->pne, PNID_HOME);
    assert_string_equal(cpns_pne_pnid(f->pne), PNID_HOME);
    assert_int_equal(cpns_pne_last_return(f->pne), 1);
    assert_int_equal(cpns_pne_get_expiry(f->pne), CPNS_NEVER);
    assert_int_equal(cpns_pne_handle_expiry(f->pne, T0 + 60000), 0);
    assert_nothing_queued(f->pne);

    /* The PNID survives a link drop; the next registration may change it. */
    assert_int_equal(cpns_pne_link_down(f->pne, T0), 0);
    assert_int_equal(cpns_pne_get_state(f->pne), CPNS_PNE_OFFLINE);
    assert_string_equal(cpns_pne_pnid(f->pne), PNID_HOME);
}

static void check_refused(fixture *f, uint32_t Return)
{
    cpns_msg req;
    assert_int_equal(cpns_pne_link_up(f->pne, T0), 0);
    pop_msg(f->pne, &req);
    send_registration_response(f->pne, req.TransactionID, Return, PNID_HOME);
    assert_int_equal(cpns_pne_get_state(f->pne), CPNS_PNE_REFUSED);
    assert_int_equal(cpns_pne_last_return(f->pne), (int)Return);
    assert_null(cpns_pne_pnid(f->pne));
    assert_int_equal(cpns_pne_get_expiry(f->pne), CPNS_NEVER);
    assert_int_equal(cpns_pne_handle_expiry(f->pne, T0 + 600000), 0);
    assert_nothing_queued(f->pne);
    /* The next link_up tries again. */
    assert_int_equal(cpns_pne_link_up(f->pne, T0 + 700000), 0);
    assert_int_equal(cpns_pne_get_state(f->pne), CPNS_PNE_REGISTERING);
    pop_msg(f->pne, &req);
    assert_int_equal(req.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
}

static void test_registration_return9_refused(void **state)
{
    check_refused(*state, CPNS_RETURN_UNKNOWN);
}

static void test_registration_return8_refused(void **state)
{
    check_refused(*state, CPNS_RETURN_AUTH);
}

static void test_registration_other_return_retries(void **state)
{
    fixture *f = *state;
    cpns_msg r1, r2;
    assert_int_equal(cpns_pne_link_up(f->pne, T0), 0);
    pop_msg(f->pne, &r1);
    send_registration_response(f->pne, r1.TransactionID, CPNS_RETURN_OTHER, PNID_HOME);
    assert_int_equal(cpns_pne_get_state(f->pne), CPNS_PNE_REGISTERING);
    assert_int_equal(cpns_pne_last_return(f->pne), 0);
    assert_nothing_queued(f->pne);
    assert_int_equal(cpns_pne_handle_expiry(f->pne, cpns_pne_get_expiry(f->pne)), 0);
    pop_msg(f->pne, &r2);
    assert_int_equal(r2.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
    assert_int_not_equal(r2.TransactionID, r1.TransactionID);
}

static void test_link_down_drops_queued_frames(void **state)
{
    fixture *f = *state;
    assert_int_equal(cpns_pne_link_up(f->pne, T0), 0);
    assert_int_equal(cpns_pne_link_down(f->pne, T0 + 1), 0);
    assert_nothing_queued(f->pne);
    assert_int_equal(cpns_pne_get_expiry(f->pne), CPNS_NEVER);
}

/* --- SGroupKeyDelivery --- */

/* 7.8.6.1-1: the PNE decrypts EncryptedGroupKey with its EUK; the stored key is the GK sent. */
static void test_7_8_6_1_1_decrypts_with_euk(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg resp;
    make_gk(GK, 0xa0);
    do_register(f->pne, PNID_HOME);
    deliver(f, 1001, "sg-family", 1, GK, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);
    assert_current_key(f, "sg-family", 1, GK);
    assert_int_equal(f->ks.puts, 1);
    assert_kc_valid(&resp, GK);
}

/* 7.8.6.1-1: the normative test vector of PROTOCOL.md 4.1, through the engine. */
static void test_7_8_6_1_1_protocol_vector(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg resp;
    test_hex("c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeeab12", GK, sizeof GK);
    do_register(f->pne, PNID_HOME);
    recv_str(f->pne, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                     "TransactionID=\"8812\">\n"
                     "  <SGroupKeyDeliveryRequest SGID=\"sg-family\">\n"
                     "    <GroupKeyInfo PNEID=\"pne-tv\" KeyVersion=\"1\"\n"
                     "      EncryptedGroupKey=\"AQABAgMEBQYHCAkKC45q4IHgR6NOzNjPvzx/"
                     "4bpRc46Qq5o/KxsQcqMJyl2i9QN21K5E0iH8ECZuJd7D+w==\"/>\n"
                     "  </SGroupKeyDeliveryRequest>\n"
                     "</CPNSMessage>\n");
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.TransactionID, 8812);
    assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);
    assert_current_key(f, "sg-family", 1, GK);
    char kc[32];
    assert_true(
        cpns_b64_encode(resp.KeyConfirmation.data, resp.KeyConfirmation.len, kc, sizeof kc) > 0);
    assert_string_equal(kc, "SyIoa3oG/Z50VPpF4+qQ4w==");
}

/* 7.8.6.1-2: a blob wrapped under another EUK does not decrypt: Return 2 and nothing stored. */
static void test_7_8_6_1_2_wrong_euk_nothing_stored(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN], other_euk[CPNS_KEY_LEN], other_wrap[CPNS_KEY_LEN];
    cpns_msg req, resp;
    make_gk(GK, 0x10);
    memset(other_euk, 0x77, sizeof other_euk);
    assert_int_equal(cpns_kdf(other_euk, CPNS_INFO_WRAP, other_wrap), 0);
    do_register(f->pne, PNID_HOME);
    build_delivery(f, &req, 2002, "sg-family", PNEID_TV, 1, other_wrap, GK);
    recv_msg(f->pne, &req, T0);
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_DECRYPT);
    assert_false(resp.present & CPNS_F_KC);
    assert_int_equal(f->ks.puts, 0);
    assert_not_stored(f, "sg-family");
}

/* 7.8.6.1-2: the AAD binds the blob to its KeyVersion and SGID; a moved blob is Return 2. */
static void test_7_8_6_1_2_moved_blob_not_stored(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg req, resp;
    make_gk(GK, 0x20);
    do_register(f->pne, PNID_HOME);
    build_delivery(f, &req, 2003, "sg-family", PNEID_TV, 1, f->K_wrap, GK);
    req.KeyVersion = 2;
    recv_msg(f->pne, &req, T0);
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_DECRYPT);
    assert_int_equal(resp.KeyVersion, 2);

    build_delivery(f, &req, 2004, "sg-family", PNEID_TV, 1, f->K_wrap, GK);
    assert_int_equal(cpns_msg_set_id(&req, CPNS_F_SGID, "sg-other"), 0);
    recv_msg(f->pne, &req, T0);
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_DECRYPT);
    assert_string_equal(resp.SGID, "sg-other");
    assert_int_equal(f->ks.puts, 0);
    assert_not_stored(f, "sg-family");
    assert_not_stored(f, "sg-other");
}

/* 7.8.6.1-2: wrong length and unknown format byte are decryption failures (Return 2). */
static void test_7_8_6_1_2_bad_blob_shapes(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg req, resp;
    make_gk(GK, 0x30);
    do_register(f->pne, PNID_HOME);

    build_delivery(f, &req, 2005, "sg-family", PNEID_TV, 1, f->K_wrap, GK);
    req.EncryptedGroupKey.data[0] = 0x02; /* format byte */
    recv_msg(f->pne, &req, T0);
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_DECRYPT);

    build_delivery(f, &req, 2006, "sg-family", PNEID_TV, 1, f->K_wrap, GK);
    req.EncryptedGroupKey.len = CPNS_EGK_LEN - 1;
    recv_msg(f->pne, &req, T0);
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_DECRYPT);

    build_delivery(f, &req, 2007, "sg-family", PNEID_TV, 1, f->K_wrap, GK);
    req.EncryptedGroupKey.data[CPNS_EGK_LEN - 1] ^= 1; /* tag */
    recv_msg(f->pne, &req, T0);
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_DECRYPT);

    /* Longer than the model holds: still valid base64, so still Return 2, not 4. */
    char xml[1024], egk[200];
    uint8_t big[100];
    memset(big, 0x01, sizeof big);
    assert_true(cpns_b64_encode(big, sizeof big, egk, sizeof egk) > 0);
    snprintf(xml, sizeof xml,
             "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
             "TransactionID=\"2008\"><SGroupKeyDeliveryRequest SGID=\"sg-family\">"
             "<GroupKeyInfo PNEID=\"pne-tv\" KeyVersion=\"1\" EncryptedGroupKey=\"%s\"/>"
             "</SGroupKeyDeliveryRequest></CPNSMessage>",
             egk);
    recv_str(f->pne, xml);
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.TransactionID, 2008);
    assert_int_equal(resp.Return, CPNS_RETURN_DECRYPT);

    assert_int_equal(f->ks.puts, 0);
    assert_not_stored(f, "sg-family");
}

/* 7.8.6.1-2: a storage failure is Return 3 (no KeyConfirmation); the resend succeeds. */
static void test_7_8_6_1_2_storage_failure_return3(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg resp;
    make_gk(GK, 0x40);
    do_register(f->pne, PNID_HOME);
    cpns_keystore_mem_fail_puts(f->ks.inner, 1);
    deliver(f, 3001, "sg-family", 1, GK, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_STORAGE);
    assert_false(resp.present & CPNS_F_KC);
    assert_not_stored(f, "sg-family");

    deliver(f, 3002, "sg-family", 1, GK, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);
    assert_kc_valid(&resp, GK);
    assert_current_key(f, "sg-family", 1, GK);
}

/* 7.8.6.1-3: the answer is a SGroupKeyDeliveryResponse in the CPNS format, same TransactionID. */
static void test_7_8_6_1_3_response_in_cpns_format(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg req;
    cpns_out out;
    make_gk(GK, 0x50);
    do_register(f->pne, PNID_HOME);
    build_delivery(f, &req, 4242, "sg-family", PNEID_TV, 3, f->K_wrap, GK);
    recv_msg(f->pne, &req, T0);
    assert_int_equal(cpns_pne_pop(f->pne, &out), 1);
    /* The strict decoder checks root, namespace, Version and every attribute. */
    cpns_msg resp;
    assert_int_equal(cpns_msg_decode(out.data, out.len, &resp), 0);
    assert_int_equal(resp.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
    assert_int_equal(resp.TransactionID, 4242);
    assert_true(contains(out.data, out.len, CPNS_NAMESPACE));
    assert_true(contains(out.data, out.len, "<SGroupKeyDeliveryResponse"));
    assert_string_equal(resp.SGID, "sg-family");
    assert_string_equal(resp.PNEID, PNEID_TV);
    assert_int_equal(resp.KeyVersion, 3);
}

/* 7.8.6.1-4: the Return attribute carries the answer (here 1, then 5, then 7). */
static void test_7_8_6_1_4_return_attribute(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN], GK2[CPNS_KEY_LEN];
    cpns_msg resp;
    make_gk(GK, 0x60);
    make_gk(GK2, 0x61);
    do_register(f->pne, PNID_HOME);
    deliver(f, 5001, "sg-a", 1, GK, &resp);
    assert_true(resp.present & CPNS_F_RETURN);
    assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);
    deliver(f, 5002, "sg-a", 1, GK2, &resp);
    assert_true(resp.present & CPNS_F_RETURN);
    assert_int_equal(resp.Return, CPNS_RETURN_STALE);
}

/* 7.8.6.1-5: PNID is the one learned at registration, and follows a new registration. */
static void test_7_8_6_1_5_pnid_of_current_pn(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg resp;
    make_gk(GK, 0x70);
    do_register(f->pne, PNID_HOME);
    deliver(f, 6001, "sg-a", 1, GK, &resp);
    assert_true(resp.present & CPNS_F_PNID);
    assert_string_equal(resp.PNID, PNID_HOME);

    assert_int_equal(cpns_pne_link_down(f->pne, T0), 0);
    do_register(f->pne, "pn-car");
    deliver(f, 6002, "sg-a", 1, GK, &resp);
    assert_string_equal(resp.PNID, "pn-car");
    /* Errors carry it too. */
    make_gk(GK, 0x71);
    deliver(f, 6003, "sg-a", 1, GK, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_STALE);
    assert_string_equal(resp.PNID, "pn-car");
}

/* Return 4: undecodable base64 in EncryptedGroupKey; the echo keeps SGID and KeyVersion. */
static void test_return4_bad_base64(void **state)
{
    fixture *f = *state;
    cpns_msg resp;
    do_register(f->pne, PNID_HOME);
    recv_str(f->pne, "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                     "TransactionID=\"7001\"><SGroupKeyDeliveryRequest SGID=\"sg-family\">"
                     "<GroupKeyInfo PNEID=\"pne-tv\" KeyVersion=\"4\" "
                     "EncryptedGroupKey=\"not*base64!\"/></SGroupKeyDeliveryRequest>"
                     "</CPNSMessage>");
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.TransactionID, 7001);
    assert_int_equal(resp.Return, CPNS_RETURN_MALFORMED);
    assert_string_equal(resp.PNID, PNID_HOME);
    assert_string_equal(resp.PNEID, PNEID_TV);
    assert_true(resp.present & CPNS_F_SGID);
    assert_string_equal(resp.SGID, "sg-family");
    assert_true(resp.present & CPNS_F_KEYVERSION);
    assert_int_equal(resp.KeyVersion, 4);
    assert_false(resp.present & CPNS_F_KC);
    assert_int_equal(f->ks.puts, 0);
}

/* Return 4 for a request without SGID: the answer leaves SGID out; PNEID is ours anyway. */
static void test_return4_missing_sgid(void **state)
{
    fixture *f = *state;
    cpns_msg resp;
    do_register(f->pne, PNID_HOME);
    recv_str(f->pne, "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                     "TransactionID=\"7002\"><SGroupKeyDeliveryRequest>"
                     "<GroupKeyInfo PNEID=\"someone-else\" KeyVersion=\"1\" "
                     "EncryptedGroupKey=\"AAAA\"/></SGroupKeyDeliveryRequest>"
                     "</CPNSMessage>");
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.TransactionID, 7002);
    assert_int_equal(resp.Return, CPNS_RETURN_MALFORMED);
    assert_false(resp.present & CPNS_F_SGID);
    assert_string_equal(resp.PNEID, PNEID_TV);
    assert_string_equal(resp.PNID, PNID_HOME);
}

/* A request whose TransactionID cannot be read cannot be answered: dropped. */
static void test_malformed_without_tid_dropped(void **state)
{
    fixture *f = *state;
    do_register(f->pne, PNID_HOME);
    recv_str(f->pne, "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                     "TransactionID=\"x1\"><SGroupKeyDeliveryRequest SGID=\"sg\">"
                     "<GroupKeyInfo PNEID=\"pne-tv\" KeyVersion=\"1\" "
                     "EncryptedGroupKey=\"AAAA\"/></SGroupKeyDeliveryRequest>"
                     "</CPNSMessage>");
    assert_nothing_queued(f->pne);
    recv_str(f->pne, "not xml at all");
    assert_nothing_queued(f->pne);
}

/* Return 5: addressed to another PNEID; nothing decrypted or stored; PNEID is ours. */
static void test_return5_other_pneid(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg req, resp;
    make_gk(GK, 0x80);
    do_register(f->pne, PNID_HOME);
    build_delivery(f, &req, 8001, "sg-family", "pne-radio", 1, f->K_wrap, GK);
    recv_msg(f->pne, &req, T0);
    pop_msg(f->pne, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_NOT_MINE);
    assert_string_equal(resp.PNEID, PNEID_TV);
    assert_string_equal(resp.SGID, "sg-family");
    assert_int_equal(resp.KeyVersion, 1);
    assert_int_equal(f->ks.puts, 0);
    assert_not_stored(f, "sg-family");
}

/* Return 7: a lower version than stored, or the same version with another key. */
static void test_return7_stale(void **state)
{
    fixture *f = *state;
    uint8_t GK1[CPNS_KEY_LEN], GK2[CPNS_KEY_LEN], GKx[CPNS_KEY_LEN];
    cpns_msg resp;
    make_gk(GK1, 0x01);
    make_gk(GK2, 0x02);
    make_gk(GKx, 0x03);
    do_register(f->pne, PNID_HOME);
    deliver(f, 9001, "sg-family", 2, GK2, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);

    deliver(f, 9002, "sg-family", 1, GK1, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_STALE);
    assert_false(resp.present & CPNS_F_KC);
    deliver(f, 9003, "sg-family", 2, GKx, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_STALE);
    assert_false(resp.present & CPNS_F_KC);
    assert_int_equal(f->ks.puts, 1);
    assert_current_key(f, "sg-family", 2, GK2);
}

/* Same version and same key again: Return 1 with a KeyConfirmation, nothing stored again. */
static void test_return1_idempotent(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg resp;
    make_gk(GK, 0x90);
    do_register(f->pne, PNID_HOME);
    deliver(f, 9101, "sg-family", 1, GK, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);
    assert_int_equal(f->ks.puts, 1);
    /* A fresh wrap (new nonce) of the same key: a server resend. */
    deliver(f, 9102, "sg-family", 1, GK, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);
    assert_kc_valid(&resp, GK);
    assert_int_equal(f->ks.puts, 1);
}

/* The previous version stays for overlap after a version 2 delivery. */
static void test_previous_version_kept(void **state)
{
    fixture *f = *state;
    uint8_t GK1[CPNS_KEY_LEN], GK2[CPNS_KEY_LEN];
    cpns_msg resp;
    cpns_stored_keys keys;
    make_gk(GK1, 0xb1);
    make_gk(GK2, 0xb2);
    do_register(f->pne, PNID_HOME);
    deliver(f, 9201, "sg-family", 1, GK1, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);
    deliver(f, 9202, "sg-family", 2, GK2, &resp);
    assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);
    assert_kc_valid(&resp, GK2);
    assert_int_equal(f->ks.base.ops->get(&f->ks.base, "sg-family", &keys), 0);
    assert_int_equal(keys.current.KeyVersion, 2);
    assert_memory_equal(keys.current.GK, GK2, CPNS_KEY_LEN);
    assert_int_equal(keys.previous.KeyVersion, 1);
    assert_memory_equal(keys.previous.GK, GK1, CPNS_KEY_LEN);
}

/* Before any registration there is no PNID to answer with: dropped, nothing stored. */
static void test_request_before_registration_dropped(void **state)
{
    fixture *f = *state;
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg req;
    make_gk(GK, 0xc0);
    build_delivery(f, &req, 9301, "sg-family", PNEID_TV, 1, f->K_wrap, GK);
    recv_msg(f->pne, &req, T0);
    assert_nothing_queued(f->pne);
    assert_int_equal(cpns_pne_link_up(f->pne, T0), 0);
    cpns_msg reg;
    pop_msg(f->pne, &reg);
    recv_msg(f->pne, &req, T0); /* still REGISTERING, still no PNID */
    assert_nothing_queued(f->pne);
    assert_int_equal(f->ks.puts, 0);
    assert_not_stored(f, "sg-family");
}

/* Frames of other kinds are dropped. */
static void test_other_frames_dropped(void **state)
{
    fixture *f = *state;
    cpns_msg m;
    do_register(f->pne, PNID_HOME);
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, 77);
    m.Return = 1;
    m.present |= CPNS_F_RETURN;
    recv_msg(f->pne, &m, T0);
    assert_nothing_queued(f->pne);
    /* A registration response while registered (nothing outstanding) changes nothing. */
    send_registration_response(f->pne, 78, CPNS_RETURN_SUCCESS, "pn-elsewhere");
    assert_string_equal(cpns_pne_pnid(f->pne), PNID_HOME);
    assert_nothing_queued(f->pne);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_rejects_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_request_is_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_retry_on_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_return1_learns_pnid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_return9_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_return8_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_other_return_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_down_drops_queued_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_1_1_decrypts_with_euk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_1_1_protocol_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_1_2_wrong_euk_nothing_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_1_2_moved_blob_not_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_1_2_bad_blob_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_1_2_storage_failure_return3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_1_3_response_in_cpns_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_1_4_return_attribute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_1_5_pnid_of_current_pn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return4_bad_base64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return4_missing_sgid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_without_tid_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return5_other_pneid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return7_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return1_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_previous_version_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_before_registration_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_frames_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_time_from_wall_clock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
