/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation failure over the codec and the three engines (issue #5 item 3).
 *
 * A counting allocator, installed once through cpns_set_allocator(), fails
 * the Nth allocation of one operation, for N = 1, 2, ... until the operation
 * runs with no failure injected. For each N the operation must return 0 or
 * a clean error (CPNS_ERR_NOMEM, or the one its header documents), and then:
 * - the state is not corrupted: retried with no failure, the operation
 *   succeeds, and the end result is the one a run without failure has (the
 *   PNE stores the key and answers Return 1, the GW forwards the very bytes,
 *   the server's SG completes, ...);
 * - nothing leaks: once the objects are deleted the allocator's live count
 *   is back to what it was before the scenario was set up.
 * The allocator only sees libcpns (and expat, which the codec creates with
 * the hook); OpenSSL and SQLite allocate on their own and are not covered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpns/crypto.h"
#include "server_harness.h"

/* --- the counting allocator --- */

static test_counting ca;

/* --- the driver --- */

typedef struct world world;

typedef struct scenario {
    const char *name;
    void (*setup)(world *w);
    int (*op)(world *w);
    void (*check)(world *w); /* the end result, as without any failure */
    void (*teardown)(world *w);
    int other_error; /* an error the header documents besides CPNS_ERR_NOMEM, or 0 */
    /*
     * Retry even when the op returned 0 under failure: for ops that absorb an
     * allocation failure into the protocol (the PNE answers Return 3 when its
     * keystore cannot store) the retry is how the peer recovers.
     */
    int retry_always;
    /*
     * Nothing to allocate: flush of a memory store; a rekey or a timer run,
     * which only mark members pending (the requests are built by pop). The loop then only
     * checks the result, and the report shows 0.
     */
    int may_not_allocate;
} scenario;

static void run_scenario(const scenario *sc, world *(*make)(void))
{
    long n, injected_runs = 0;
    for (n = 1; n < 100000; n++) {
        long baseline = ca.live;
        world *w = make();
        sc->setup(w);
        ca.failed = 0;
        ca.fail_at = ca.calls + n;
        int rv = sc->op(w);
        ca.fail_at = 0;
        int injected = ca.failed;
        if (!injected) {
            assert_int_equal(rv, 0);
        } else {
            injected_runs++;
            if (rv != 0 && rv != CPNS_ERR_NOMEM && rv != sc->other_error)
                fail_msg("%s: allocation %ld failed: %s", sc->name, n, cpns_strerror(rv));
            if ((rv != 0 || sc->retry_always) && (rv = sc->op(w)) != 0)
                fail_msg("%s: retry after allocation %ld failed: %s", sc->name, n,
                         cpns_strerror(rv));
        }
        sc->check(w);
        sc->teardown(w);
        free(w);
        if (ca.live != baseline)
            fail_msg("%s: %ld blocks leaked with allocation %ld failed", sc->name,
                     ca.live - baseline, n);
        if (!injected)
            break;
    }
    /* an operation that never allocates would make the loop pass for nothing */
    assert_true(injected_runs > 0 || sc->may_not_allocate);
    print_message("%-40s %ld allocations, each failed once\n", sc->name, injected_runs);
}

/* --- the world --- */

#define W_PNEID "pne-1"
#define W_SGID "sg-1"
#define W_PNID "pn-home"
#define W_PNGWID "gw-1"
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct world {
    uint64_t seed;
    int64_t now;
    uint8_t EUK[CPNS_KEY_LEN];
    /* codec */
    uint8_t frame[4096];
    size_t frame_len;
    cpns_msg expect, got;
    /* PNE */
    cpns_keystore *ks;
    cpns_pne *pne;
    cpns_pne_config pcfg;
    /* GW */
    cpns_gw *gw;
    cpns_gw_config gcfg;
    /* server */
    harness h;
    cpns_msg reqs[8];
    uint64_t req_links[8];
    size_t n_reqs;
};

static world *make_world(void)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->seed = 7;
    w->now = H_T0;
    h_euk(W_PNEID, w->EUK);
    return w;
}

static void encode_into(world *w, const cpns_msg *m)
{
    assert_int_equal(cpns_msg_encode(m, w->frame, sizeof w->frame, &w->frame_len), 0);
}

static void delivery_request(world *w, uint64_t tid, const char *to, uint32_t KeyVersion)
{
    uint8_t K_wrap[CPNS_KEY_LEN], GK[CPNS_KEY_LEN], EGK[CPNS_EGK_LEN], nonce[CPNS_GCM_NONCE_LEN];
    cpns_msg m;
    memset(GK, 0x33, sizeof GK);
    memset(nonce, 0x44, sizeof nonce);
    assert_int_equal(cpns_kdf(w->EUK, CPNS_INFO_WRAP, K_wrap), 0);
    assert_int_equal(cpns_egk_wrap(K_wrap, W_SGID, to, KeyVersion, GK, nonce, EGK), 0);
    cpns_msg_init(&m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, tid);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, W_SGID), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, to), 0);
    m.KeyVersion = KeyVersion;
    m.present |= CPNS_F_KEYVERSION;
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_EGK, EGK, sizeof EGK), 0);
    encode_into(w, &m);
}

/* --- codec: decode and peek of each kind --- */

static void sample(cpns_msg *m, cpns_msg_kind kind)
{
    uint8_t blob[CPNS_EGK_LEN];
    memset(blob, 0x61, sizeof blob);
    cpns_msg_init(m, kind, 42);
    switch (kind) {
    case CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST:
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_SGID, W_SGID), 0);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, W_PNEID), 0);
        m->KeyVersion = 3;
        m->present |= CPNS_F_KEYVERSION;
        assert_int_equal(cpns_msg_set_blob(m, CPNS_F_EGK, blob, CPNS_EGK_LEN), 0);
        break;
    case CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE:
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_SGID, W_SGID), 0);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, W_PNEID), 0);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNID, W_PNID), 0);
        m->KeyVersion = 3;
        m->Return = CPNS_RETURN_SUCCESS;
        m->present |= CPNS_F_KEYVERSION | CPNS_F_RETURN;
        assert_int_equal(cpns_msg_set_blob(m, CPNS_F_KC, blob, CPNS_KC_LEN), 0);
        break;
    case CPNS_MSG_PNGW_REGISTRATION_REQUEST:
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNGWID, W_PNGWID), 0);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNID, W_PNID), 0);
        break;
    case CPNS_MSG_PNGW_REGISTRATION_RESPONSE:
        m->Return = CPNS_RETURN_SUCCESS;
        m->present |= CPNS_F_RETURN;
        break;
    case CPNS_MSG_PNE_REGISTRATION_REQUEST:
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, W_PNEID), 0);
        assert_int_equal(cpns_msg_set_blob(m, CPNS_F_NONCE, blob, CPNS_NONCE_LEN), 0);
        assert_int_equal(cpns_msg_set_blob(m, CPNS_F_PROOF, blob, CPNS_PROOF_LEN), 0);
        m->Time = 1795000000;
        m->present |= CPNS_F_TIME;
        break;
    case CPNS_MSG_PNE_REGISTRATION_RESPONSE:
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, W_PNEID), 0);
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNID, W_PNID), 0);
        m->Return = CPNS_RETURN_SUCCESS;
        m->present |= CPNS_F_RETURN;
        break;
    default:
        assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, W_PNEID), 0);
        m->Status = CPNS_STATUS_ATTACHED;
        m->present |= CPNS_F_STATUS;
        break;
    }
}

static cpns_msg_kind codec_kind;

static void codec_setup(world *w)
{
    cpns_msg m;
    sample(&m, codec_kind);
    encode_into(w, &m);
    assert_int_equal(cpns_msg_decode(w->frame, w->frame_len, &w->expect), 0);
}

static int op_decode(world *w)
{
    return cpns_msg_decode(w->frame, w->frame_len, &w->got);
}

static int op_peek(world *w)
{
    return cpns_msg_peek(w->frame, w->frame_len, &w->got);
}

static void check_decoded(world *w)
{
    assert_int_equal(w->got.kind, w->expect.kind);
    assert_int_equal(w->got.TransactionID, w->expect.TransactionID);
    assert_string_equal(w->got.PNEID, w->expect.PNEID);
    assert_string_equal(w->got.SGID, w->expect.SGID);
}

static void check_full_decode(world *w)
{
    check_decoded(w);
    assert_int_equal(w->got.present, w->expect.present);
    assert_memory_equal(&w->got.EncryptedGroupKey, &w->expect.EncryptedGroupKey,
                        sizeof w->got.EncryptedGroupKey);
}

static void nothing(world *w)
{
    (void)w;
}

static void test_codec_each_kind(void **state)
{
    (void)state;
    for (int k = CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST; k <= CPNS_MSG_PNE_STATUS_NOTIFICATION; k++) {
        codec_kind = (cpns_msg_kind)k;
        scenario dec = {cpns_msg_kind_name(codec_kind),
                        codec_setup,
                        op_decode,
                        check_full_decode,
                        nothing,
                        0,
                        0,
                        0};
        scenario pk = {"peek", codec_setup, op_peek, check_decoded, nothing, 0, 0, 0};
        run_scenario(&dec, make_world);
        run_scenario(&pk, make_world);
    }
}

/* --- PNE --- */

static void pne_config(world *w)
{
    if (!w->ks)
        assert_int_equal(cpns_keystore_mem_new(&w->ks), 0);
    w->pcfg = (cpns_pne_config){.PNEID = W_PNEID,
                                .EUK = w->EUK,
                                .keystore = w->ks,
                                .rand = test_rand,
                                .rand_arg = &w->seed,
                                .log = test_log};
}

static void pne_teardown(world *w)
{
    cpns_pne_free(w->pne);
    cpns_keystore_free(w->ks);
}

static int op_pne_new(world *w)
{
    return cpns_pne_new(&w->pne, &w->pcfg);
}

static void check_pne_new(world *w)
{
    assert_non_null(w->pne);
    assert_int_equal(cpns_pne_get_state(w->pne), CPNS_PNE_OFFLINE);
}

static void pne_setup_new(world *w)
{
    pne_config(w);
}

static void pne_setup_offline(world *w)
{
    pne_config(w);
    assert_int_equal(cpns_pne_new(&w->pne, &w->pcfg), 0);
}

static int op_pne_link_up(world *w)
{
    return cpns_pne_link_up(w->pne, w->now);
}

static void check_pne_registering(world *w)
{
    cpns_out out;
    cpns_msg m;
    assert_int_equal(cpns_pne_get_state(w->pne), CPNS_PNE_REGISTERING);
    /* a retried link_up may have queued two requests: the last one is the live one */
    int n = 0;
    while (cpns_pne_pop(w->pne, &out) == 1) {
        assert_int_equal(cpns_msg_decode(out.data, out.len, &m), 0);
        assert_int_equal(m.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
        n++;
    }
    assert_true(n >= 1);
}

static void pne_setup_registered(world *w)
{
    cpns_out out;
    cpns_msg req, resp;
    pne_setup_offline(w);
    assert_int_equal(cpns_pne_link_up(w->pne, w->now), 0);
    assert_int_equal(cpns_pne_pop(w->pne, &out), 1);
    assert_int_equal(cpns_msg_decode(out.data, out.len, &req), 0);
    cpns_msg_init(&resp, CPNS_MSG_PNE_REGISTRATION_RESPONSE, req.TransactionID);
    assert_int_equal(cpns_msg_set_id(&resp, CPNS_F_PNEID, W_PNEID), 0);
    assert_int_equal(cpns_msg_set_id(&resp, CPNS_F_PNID, W_PNID), 0);
    resp.Return = CPNS_RETURN_SUCCESS;
    resp.present |= CPNS_F_RETURN;
    encode_into(w, &resp);
    assert_int_equal(cpns_pne_recv(w->pne, w->frame, w->frame_len, w->now), 0);
    assert_int_equal(cpns_pne_get_state(w->pne), CPNS_PNE_REGISTERED);
    delivery_request(w, 500, W_PNEID, 1);
}

static int op_pne_recv_delivery(world *w)
{
    return cpns_pne_recv(w->pne, w->frame, w->frame_len, w->now);
}

/* 7.8.6.1: the key is stored and the last answer is Return 1. */
static void check_pne_delivered(world *w)
{
    cpns_out out;
    cpns_msg m;
    cpns_stored_keys keys;
    int n = 0;
    uint32_t last = 99;
    while (cpns_pne_pop(w->pne, &out) == 1) {
        assert_int_equal(cpns_msg_decode(out.data, out.len, &m), 0);
        assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
        assert_int_equal(m.TransactionID, 500);
        last = m.Return;
        n++;
    }
    assert_true(n >= 1);
    assert_int_equal(last, CPNS_RETURN_SUCCESS);
    assert_int_equal(w->ks->ops->get(w->ks, W_SGID, &keys), 0);
    assert_int_equal(keys.current.KeyVersion, 1);
    assert_int_equal(keys.current.GK[0], 0x33);
}

static void test_pne(void **state)
{
    (void)state;
    const scenario s[] = {
        {"cpns_pne_new", pne_setup_new, op_pne_new, check_pne_new, pne_teardown, 0, 0, 0},
        {"cpns_pne_link_up", pne_setup_offline, op_pne_link_up, check_pne_registering, pne_teardown,
         0, 0, 0},
        {"cpns_pne_recv delivery request", pne_setup_registered, op_pne_recv_delivery,
         check_pne_delivered, pne_teardown, 0, 1, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(s); i++)
        run_scenario(&s[i], make_world);
}

/* --- keystore --- */

static void ks_setup(world *w)
{
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, 1, sizeof GK);
    assert_int_equal(cpns_keystore_mem_new(&w->ks), 0);
    assert_int_equal(w->ks->ops->put(w->ks, W_SGID, 1, GK), 0);
}

static int op_ks_put(world *w)
{
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, 2, sizeof GK);
    return w->ks->ops->put(w->ks, "sg-2", 2, GK);
}

static void check_ks(world *w)
{
    cpns_stored_keys keys;
    assert_int_equal(w->ks->ops->get(w->ks, "sg-2", &keys), 0);
    assert_int_equal(keys.current.KeyVersion, 2);
    assert_int_equal(keys.current.GK[0], 2);
    assert_int_equal(keys.previous.KeyVersion, 0);
    /* the other group is untouched */
    assert_int_equal(w->ks->ops->get(w->ks, W_SGID, &keys), 0);
    assert_int_equal(keys.current.KeyVersion, 1);
    assert_int_equal(keys.current.GK[0], 1);
}

static void ks_teardown(world *w)
{
    cpns_keystore_free(w->ks);
}

static int op_ks_new(world *w)
{
    return cpns_keystore_mem_new(&w->ks);
}

static void check_ks_new(world *w)
{
    cpns_stored_keys keys;
    assert_non_null(w->ks);
    assert_int_equal(w->ks->ops->get(w->ks, W_SGID, &keys), CPNS_ERR_NOT_FOUND);
}

/* --- file keystore --- */

static char ks_dir[64];

static void ks_file_setup(world *w)
{
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, 1, sizeof GK);
    snprintf(ks_dir, sizeof ks_dir, "/tmp/test_alloc_fail.XXXXXX");
    assert_non_null(mkdtemp(ks_dir));
    assert_int_equal(cpns_keystore_file_open(&w->ks, ks_dir, w->EUK), 0);
    assert_int_equal(w->ks->ops->put(w->ks, W_SGID, 1, GK), 0);
    cpns_keystore_free(w->ks);
    w->ks = NULL;
}

static void ks_file_setup_open(world *w)
{
    ks_file_setup(w);
    assert_int_equal(cpns_keystore_file_open(&w->ks, ks_dir, w->EUK), 0);
}

static int op_ks_file_open(world *w)
{
    return cpns_keystore_file_open(&w->ks, ks_dir, w->EUK);
}

static void check_ks_file_open(world *w)
{
    cpns_stored_keys keys;
    assert_non_null(w->ks);
    assert_int_equal(w->ks->ops->get(w->ks, W_SGID, &keys), 0);
    assert_int_equal(keys.current.KeyVersion, 1);
    assert_int_equal(keys.current.GK[0], 1);
}

/* What put() made durable: a fresh open sees sg-2 and the untouched sg-1. */
static void check_ks_file_put(world *w)
{
    check_ks(w);
    cpns_keystore_free(w->ks);
    w->ks = NULL;
    assert_int_equal(cpns_keystore_file_open(&w->ks, ks_dir, w->EUK), 0);
    check_ks(w);
}

static void ks_file_teardown(world *w)
{
    char path[128];
    cpns_keystore_free(w->ks);
    snprintf(path, sizeof path, "%s/groupkeys", ks_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/groupkeys.tmp", ks_dir);
    unlink(path);
    rmdir(ks_dir);
}

static void test_keystore_mem(void **state)
{
    (void)state;
    const scenario s[] = {
        {"cpns_keystore_mem_new", nothing, op_ks_new, check_ks_new, ks_teardown, 0, 0, 0},
        {"keystore mem put", ks_setup, op_ks_put, check_ks, ks_teardown, 0, 0, 0},
        {"cpns_keystore_file_open", ks_file_setup, op_ks_file_open, check_ks_file_open,
         ks_file_teardown, 0, 0, 0},
        {"keystore file put", ks_file_setup_open, op_ks_put, check_ks_file_put, ks_file_teardown, 0,
         0, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(s); i++)
        run_scenario(&s[i], make_world);
}

/* --- GW --- */

static void gw_config(world *w)
{
    w->gcfg = (cpns_gw_config){.PNGWID = W_PNGWID,
                               .PNID = W_PNID,
                               .rand = test_rand,
                               .rand_arg = &w->seed,
                               .log = test_log};
}

static int op_gw_new(world *w)
{
    return cpns_gw_new(&w->gw, &w->gcfg);
}

static void check_gw_new(world *w)
{
    assert_non_null(w->gw);
    assert_int_equal(cpns_gw_get_state(w->gw), CPNS_GW_OFFLINE);
}

static void gw_teardown(world *w)
{
    cpns_gw_free(w->gw);
}

/* An online GW with PNE link 1 open. */
static void gw_setup_online(world *w)
{
    cpns_out out;
    cpns_msg m;
    gw_config(w);
    assert_int_equal(cpns_gw_new(&w->gw, &w->gcfg), 0);
    assert_int_equal(cpns_gw_server_up(w->gw, w->now), 0);
    assert_int_equal(cpns_gw_pop(w->gw, &out), 1);
    assert_int_equal(cpns_msg_decode(out.data, out.len, &m), 0);
    uint64_t tid = m.TransactionID;
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, tid);
    m.Return = CPNS_RETURN_SUCCESS;
    m.present |= CPNS_F_RETURN;
    encode_into(w, &m);
    assert_int_equal(cpns_gw_recv_server(w->gw, w->frame, w->frame_len, w->now), 0);
    assert_int_equal(cpns_gw_get_state(w->gw), CPNS_GW_ONLINE);
    assert_int_equal(cpns_gw_link_open(w->gw, 1, w->now), 0);
}

static int op_gw_link_open(world *w)
{
    return cpns_gw_link_open(w->gw, 2, w->now);
}

static void check_gw_link_open(world *w)
{
    /* the link exists: a second open says so */
    assert_int_equal(cpns_gw_link_open(w->gw, 2, w->now), CPNS_ERR_EXISTS);
}

static void pne_registration_frame(world *w, uint64_t tid)
{
    cpns_msg m;
    h_reg_msg(&w->h, &m, W_PNEID, w->EUK, w->now / 1000);
    m.TransactionID = tid;
    encode_into(w, &m);
}

static void gw_setup_registering(world *w)
{
    gw_setup_online(w);
    pne_registration_frame(w, 600);
}

static int op_gw_recv_link(world *w)
{
    return cpns_gw_recv_link(w->gw, 1, w->frame, w->frame_len, w->now);
}

/* Pops every output; asserts that the last one is the input frame, sent to `link`. */
static void check_gw_forwarded(world *w, uint64_t link)
{
    cpns_out out;
    int n = 0, last_ok = 0;
    while (cpns_gw_pop(w->gw, &out) == 1) {
        last_ok =
            out.link == link && out.len == w->frame_len && memcmp(out.data, w->frame, out.len) == 0;
        n++;
    }
    assert_true(n >= 1);
    assert_true(last_ok);
}

static void check_gw_to_server(world *w)
{
    check_gw_forwarded(w, CPNS_GW_LINK_SERVER);
}

static void check_gw_to_link1(world *w)
{
    check_gw_forwarded(w, 1);
}

/* An online GW with pne-1 registered on link 1, and a delivery request for it. */
static void gw_setup_routed(world *w)
{
    cpns_msg m;
    gw_setup_registering(w);
    assert_int_equal(cpns_gw_recv_link(w->gw, 1, w->frame, w->frame_len, w->now), 0);
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, 600);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, W_PNEID), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, W_PNID), 0);
    m.Return = CPNS_RETURN_SUCCESS;
    m.present |= CPNS_F_RETURN;
    encode_into(w, &m);
    assert_int_equal(cpns_gw_recv_server(w->gw, w->frame, w->frame_len, w->now), 0);
    cpns_out out;
    while (cpns_gw_pop(w->gw, &out) == 1)
        ;
    assert_int_equal(cpns_gw_attached(w->gw), 1);
    delivery_request(w, 601, W_PNEID, 1);
}

static int op_gw_recv_server(world *w)
{
    return cpns_gw_recv_server(w->gw, w->frame, w->frame_len, w->now);
}

static void gw_setup_unknown_pne(world *w)
{
    gw_setup_online(w);
    delivery_request(w, 602, "pne-9", 1);
}

/* 7.8.6.2: a request for a PNE that is not attached is answered Return 6. */
static void check_gw_return6(world *w)
{
    cpns_out out;
    cpns_msg m;
    int n = 0;
    while (cpns_gw_pop(w->gw, &out) == 1) {
        assert_int_equal(out.link, CPNS_GW_LINK_SERVER);
        assert_int_equal(cpns_msg_decode(out.data, out.len, &m), 0);
        assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
        assert_int_equal(m.TransactionID, 602);
        assert_int_equal(m.Return, CPNS_RETURN_UNREACHABLE);
        n++;
    }
    assert_true(n >= 1);
}

static void test_gw(void **state)
{
    (void)state;
    const scenario s[] = {
        {"cpns_gw_new", gw_config, op_gw_new, check_gw_new, gw_teardown, 0, 0, 0},
        {"cpns_gw_link_open", gw_setup_online, op_gw_link_open, check_gw_link_open, gw_teardown,
         CPNS_ERR_EXISTS, 0, 0},
        {"cpns_gw_recv_link registration", gw_setup_registering, op_gw_recv_link,
         check_gw_to_server, gw_teardown, 0, 0, 0},
        {"cpns_gw_recv_server delivery", gw_setup_routed, op_gw_recv_server, check_gw_to_link1,
         gw_teardown, 0, 0, 0},
        {"cpns_gw_recv_server Return 6", gw_setup_unknown_pne, op_gw_recv_server, check_gw_return6,
         gw_teardown, 0, 0, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(s); i++)
        run_scenario(&s[i], make_world);
}

/* --- server --- */

static const char *const members[] = {"pne-1", "pne-2", "pne-3"};

static void srv_init(world *w)
{
    h_init(&w->h);
    w->h.seed = 3;
}

static void srv_teardown(world *w)
{
    h_teardown(&w->h);
}

/* A committed world in the store: PNEs, a GW-less SG whose requests went out. */
static void srv_setup_stored(world *w)
{
    srv_init(w);
    h_start(&w->h);
    h_world(&w->h, members, 3);
    assert_int_equal(cpns_server_sg_create(w->h.s, W_SGID, members, 3, w->h.now), 0);
    cpns_msg m;
    while (h_pop(&w->h, NULL, &m) == 1)
        ;
    assert_int_equal(cpns_server_flush(w->h.s), 0);
    cpns_server_free(w->h.s);
    w->h.s = NULL;
}

static int op_srv_new(world *w)
{
    return cpns_server_new(&w->h.s, &w->h.cfg, w->h.now);
}

static void check_srv_loaded(world *w)
{
    cpns_sg_info sg = h_sg(&w->h, W_SGID);
    assert_int_equal(sg.n_members, 3);
    assert_int_equal(sg.KeyVersion, 1);
    cpns_pne_info p;
    assert_int_equal(cpns_server_pne_get(w->h.s, "pne-2", &p), 0);
    assert_true(p.registered);
}

static void srv_setup_started(world *w)
{
    srv_init(w);
    h_start(&w->h);
}

static int op_srv_conn_open(world *w)
{
    return cpns_server_conn_open(w->h.s, 1, NULL, w->h.now);
}

static void check_srv_conn(world *w)
{
    /* the connection works: a GW registers on it */
    cpns_msg m, r;
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, 77);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNGWID, W_PNGWID), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, W_PNID), 0);
    assert_int_equal(h_recv(&w->h, 1, &m), 0);
    assert_int_equal(h_pop(&w->h, NULL, &r), 1);
    assert_int_equal(r.Return, CPNS_RETURN_SUCCESS);
}

static void srv_setup_conn(world *w)
{
    srv_setup_started(w);
    assert_int_equal(cpns_server_conn_open(w->h.s, 1, NULL, w->h.now), 0);
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, 78);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNGWID, W_PNGWID), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, W_PNID), 0);
    encode_into(w, &m);
}

static int op_srv_recv_frame(world *w)
{
    return cpns_server_recv(w->h.s, 1, w->frame, w->frame_len, w->h.now);
}

static void check_srv_gw_registered(world *w)
{
    cpns_msg r;
    uint32_t last = 99;
    while (h_pop(&w->h, NULL, &r) == 1) {
        assert_int_equal(r.kind, CPNS_MSG_PNGW_REGISTRATION_RESPONSE);
        last = r.Return;
    }
    assert_int_equal(last, CPNS_RETURN_SUCCESS);
    cpns_server_stats st;
    cpns_server_get_stats(w->h.s, &st);
    assert_int_equal(st.gws_connected, 1);
}

static int op_srv_pne_add(world *w)
{
    uint8_t EUK[CPNS_KEY_LEN];
    h_euk("pne-7", EUK);
    return cpns_server_pne_add(w->h.s, "pne-7", EUK);
}

static void check_srv_pne_added(world *w)
{
    cpns_pne_info p;
    assert_int_equal(cpns_server_pne_get(w->h.s, "pne-7", &p), 0);
    assert_false(p.registered);
}

/* A server with a GW and three registered PNEs. */
static void srv_setup_world(world *w)
{
    srv_setup_started(w);
    h_world(&w->h, members, 3);
}

static int op_srv_sg_create(world *w)
{
    return cpns_server_sg_create(w->h.s, W_SGID, members, 3, w->h.now);
}

/* Pops what is queued and keeps the requests (the newest per PNEID). */
static void collect_requests(world *w)
{
    cpns_msg m;
    uint64_t link;
    while (h_pop(&w->h, &link, &m) == 1) {
        assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
        size_t i;
        for (i = 0; i < w->n_reqs; i++)
            if (strcmp(w->reqs[i].PNEID, m.PNEID) == 0)
                break;
        assert_true(i < ARRAY_LEN(w->reqs));
        w->reqs[i] = m;
        w->req_links[i] = link;
        if (i == w->n_reqs)
            w->n_reqs++;
    }
}

/* 7.8.6.3: every member gets a request and, answered with Return 1, the SG completes. */
static void check_srv_sg_completes(world *w)
{
    collect_requests(w);
    assert_int_equal(w->n_reqs, 3);
    for (size_t i = 0; i < w->n_reqs; i++)
        h_confirm(&w->h, w->req_links[i], &w->reqs[i]);
    cpns_sg_info sg = h_sg(&w->h, W_SGID);
    assert_int_equal(sg.n_members, 3);
    assert_true(sg.complete);
    assert_int_equal(cpns_server_flush(w->h.s), 0);
}

static void srv_setup_created(world *w)
{
    srv_setup_world(w);
    assert_int_equal(cpns_server_sg_create(w->h.s, W_SGID, members, 3, w->h.now), 0);
}

static int op_srv_pop(world *w)
{
    cpns_out out;
    int rv = cpns_server_pop(w->h.s, &out);
    if (rv == 1) {
        /* decoded in the check: a decode here would draw on the failure being injected */
        assert_true(out.len <= sizeof w->frame);
        memcpy(w->frame, out.data, out.len);
        w->frame_len = out.len;
        w->req_links[0] = out.link;
        return 0;
    }
    return rv == 0 ? CPNS_ERR_STATE : rv;
}

static void srv_setup_answering(world *w)
{
    srv_setup_created(w);
    collect_requests(w);
    assert_int_equal(w->n_reqs, 3);
    uint8_t GK[CPNS_KEY_LEN];
    cpns_msg r;
    const cpns_msg *req = &w->reqs[0];
    h_unwrap(req, GK);
    uint8_t KC[CPNS_KC_LEN];
    assert_int_equal(cpns_key_confirmation(GK, req->SGID, req->PNEID, req->KeyVersion, KC), 0);
    assert_int_equal(cpns_msg_delivery_response(&r, req, CPNS_RETURN_SUCCESS, W_PNID, req->PNEID),
                     0);
    assert_int_equal(cpns_msg_set_blob(&r, CPNS_F_KC, KC, sizeof KC), 0);
    encode_into(w, &r);
}

static void check_srv_member_delivered(world *w)
{
    cpns_member_info m = h_member(&w->h, W_SGID, w->reqs[0].PNEID);
    assert_int_equal(m.state, CPNS_MEMBER_DELIVERED);
    /* and the rest still completes */
    for (size_t i = 1; i < w->n_reqs; i++)
        h_confirm(&w->h, w->req_links[i], &w->reqs[i]);
    assert_true(h_sg(&w->h, W_SGID).complete);
}

static void srv_setup_dirty(world *w)
{
    srv_setup_world(w);
    uint8_t EUK[CPNS_KEY_LEN];
    h_euk("pne-8", EUK);
    assert_int_equal(cpns_server_pne_add(w->h.s, "pne-8", EUK), 0);
}

static int op_srv_flush(world *w)
{
    return cpns_server_flush(w->h.s);
}

static void check_srv_flushed(world *w)
{
    /* what was written survives a crash */
    h_crash_restart(&w->h);
    cpns_pne_info p;
    assert_int_equal(cpns_server_pne_get(w->h.s, "pne-8", &p), 0);
}

static void check_srv_popped_all(world *w)
{
    /* the first pop commits the key; the rest follow, and the SG still completes */
    cpns_msg first;
    assert_int_equal(cpns_msg_decode(w->frame, w->frame_len, &first), 0);
    assert_int_equal(first.kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    uint64_t first_link = w->req_links[0];
    collect_requests(w);
    assert_int_equal(w->n_reqs, 2);
    w->reqs[2] = first;
    w->req_links[2] = first_link;
    w->n_reqs = 3;
    for (size_t i = 0; i < w->n_reqs; i++)
        h_confirm(&w->h, w->req_links[i], &w->reqs[i]);
    assert_true(h_sg(&w->h, W_SGID).complete);
}

/* A complete SG: every member confirmed version 1. */
static void srv_setup_complete(world *w)
{
    srv_setup_created(w);
    collect_requests(w);
    for (size_t i = 0; i < w->n_reqs; i++)
        h_confirm(&w->h, w->req_links[i], &w->reqs[i]);
    assert_true(h_sg(&w->h, W_SGID).complete);
    assert_int_equal(cpns_server_flush(w->h.s), 0);
    w->n_reqs = 0;
}

static int op_srv_rekey(world *w)
{
    return cpns_server_sg_rekey(w->h.s, W_SGID, w->h.now);
}

/* Answers every queued request; the SG completes at `KeyVersion` with `n` members. */
static void confirm_all(world *w, uint32_t KeyVersion, size_t n)
{
    collect_requests(w);
    assert_int_equal(w->n_reqs, n);
    for (size_t i = 0; i < w->n_reqs; i++) {
        assert_int_equal(w->reqs[i].KeyVersion, KeyVersion);
        h_confirm(&w->h, w->req_links[i], &w->reqs[i]);
    }
    cpns_sg_info sg = h_sg(&w->h, W_SGID);
    assert_int_equal(sg.KeyVersion, KeyVersion);
    assert_int_equal(sg.n_members, n);
    assert_true(sg.complete);
}

/* A rekey that failed changed nothing: the retry makes version 2, not 3. */
static void check_srv_rekeyed(world *w)
{
    confirm_all(w, 2, 3);
}

static int op_srv_remove(world *w)
{
    const char *gone[] = {"pne-3"};
    return cpns_server_sg_update(w->h.s, W_SGID, NULL, 0, gone, 1, w->h.now);
}

static void check_srv_removed(world *w)
{
    confirm_all(w, 2, 2);
}

/* Requests out, unanswered, and the delivery timeout passed. */
static void srv_setup_timed_out(world *w)
{
    srv_setup_created(w);
    collect_requests(w);
    assert_int_equal(w->n_reqs, 3);
    w->n_reqs = 0;
    w->h.now += 60 * 1000;
}

static int op_srv_expiry(world *w)
{
    return cpns_server_handle_expiry(w->h.s, w->h.now);
}

static void check_srv_resent(world *w)
{
    confirm_all(w, 1, 3);
}

static void test_server(void **state)
{
    (void)state;
    const scenario s[] = {
        {"cpns_server_new (load)", srv_setup_stored, op_srv_new, check_srv_loaded, srv_teardown,
         CPNS_ERR_STORE, 0, 0},
        {"cpns_server_conn_open", srv_setup_started, op_srv_conn_open, check_srv_conn, srv_teardown,
         CPNS_ERR_EXISTS, 0, 0},
        {"cpns_server_recv GW registration", srv_setup_conn, op_srv_recv_frame,
         check_srv_gw_registered, srv_teardown, CPNS_ERR_STORE, 0, 0},
        {"cpns_server_pne_add", srv_setup_started, op_srv_pne_add, check_srv_pne_added,
         srv_teardown, CPNS_ERR_STORE, 0, 0},
        {"cpns_server_sg_create", srv_setup_world, op_srv_sg_create, check_srv_sg_completes,
         srv_teardown, CPNS_ERR_STORE, 0, 0},
        {"cpns_server_pop", srv_setup_created, op_srv_pop, check_srv_popped_all, srv_teardown,
         CPNS_ERR_STORE, 0, 0},
        {"cpns_server_recv response", srv_setup_answering, op_srv_recv_frame,
         check_srv_member_delivered, srv_teardown, CPNS_ERR_STORE, 0, 0},
        {"cpns_server_sg_rekey", srv_setup_complete, op_srv_rekey, check_srv_rekeyed, srv_teardown,
         CPNS_ERR_STORE, 0, 1},
        {"cpns_server_sg_update remove", srv_setup_complete, op_srv_remove, check_srv_removed,
         srv_teardown, CPNS_ERR_STORE, 0, 0},
        {"cpns_server_handle_expiry resend", srv_setup_timed_out, op_srv_expiry, check_srv_resent,
         srv_teardown, CPNS_ERR_STORE, 0, 1},
        {"cpns_server_flush", srv_setup_dirty, op_srv_flush, check_srv_flushed, srv_teardown,
         CPNS_ERR_STORE, 0, 1},
    };
    for (size_t i = 0; i < ARRAY_LEN(s); i++)
        run_scenario(&s[i], make_world);
}

int main(void)
{
    const cpns_allocator a = test_counting_allocator(&ca);
    cpns_set_allocator(&a);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_each_kind),
        cmocka_unit_test(test_keystore_mem),
        cmocka_unit_test(test_pne),
        cmocka_unit_test(test_gw),
        cmocka_unit_test(test_server),
    };
    int rv = cmocka_run_group_tests(tests, NULL, NULL);
    cpns_set_allocator(NULL);
    return rv;
}
