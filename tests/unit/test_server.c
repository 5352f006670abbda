/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/server.c: the engine as a whole — the order of "inventory
 * stored, then key generated" (7.8.6.3-1), the key barrier and group commit,
 * store failures, crash and restart, routing through GW connections, timers,
 * malformed frames and stats.
 */
#include "server_harness.h"

static int setup(void **state)
{
    harness *h = test_malloc(sizeof *h);
    h_setup(h);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    h_teardown(*state);
    test_free(*state);
    return 0;
}

static const char *const TWO[] = {"pne-a", "pne-b"};

/* A cpns_rand_fn that looks at the committed store when the Group Key is drawn. */
typedef struct inventory_probe {
    uint64_t seed;
    cpns_store *st;
    int gk_draws;
    int inventory_committed;
    uint8_t GK[CPNS_KEY_LEN];
} inventory_probe;

static int probe_rand(void *arg, uint8_t *buf, size_t len)
{
    inventory_probe *p = arg;
    test_rand(&p->seed, buf, len);
    if (len == CPNS_KEY_LEN) { /* only a Group Key is 32 random bytes */
        cpns_store_sg sg;
        cpns_store_member a, b;
        p->gk_draws++;
        p->inventory_committed = cpns_store_mem_get_sg(p->st, "sg-1", &sg) == 0 &&
                                 sg.KeyVersion == 0 &&
                                 cpns_store_mem_get_member(p->st, "sg-1", "pne-a", &a) == 0 &&
                                 cpns_store_mem_get_member(p->st, "sg-1", "pne-b", &b) == 0;
        memcpy(p->GK, buf, CPNS_KEY_LEN);
    }
    return 0;
}

/* 7.8.6.3-1: the SG Inventory is committed before the Group Key is generated, randomly. */
static void test_7_8_6_3_1_inventory_stored_then_key_generated(void **state)
{
    harness *h = *state;
    inventory_probe p = {7, h->st, 0, 0, {0}};
    cpns_server_free(h->s);
    h->cfg.rand = probe_rand;
    h->cfg.rand_arg = &p;
    h_start(h);
    h_world(h, TWO, 2);
    assert_int_equal(cpns_server_flush(h->s), 0);
    uint64_t commits = cpns_store_mem_commits(h->st);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", TWO, 2, h->now), 0);
    assert_int_equal(p.gk_draws, 1);
    assert_true(p.inventory_committed);
    assert_int_equal(cpns_store_mem_commits(h->st), commits + 1);

    /* The key itself is committed before the first frame carrying it. */
    cpns_store_sg sg;
    assert_int_equal(cpns_store_mem_get_sg(h->st, "sg-1", &sg), 0);
    assert_int_equal(sg.KeyVersion, 0);
    cpns_msg req;
    assert_int_equal(h_pop(h, NULL, &req), 1);
    assert_int_equal(cpns_store_mem_get_sg(h->st, "sg-1", &sg), 0);
    assert_int_equal(sg.KeyVersion, 1);
    assert_memory_equal(sg.GK, p.GK, CPNS_KEY_LEN);
    uint8_t GK[CPNS_KEY_LEN];
    h_unwrap(&req, GK);
    assert_memory_equal(GK, p.GK, CPNS_KEY_LEN); /* the key came from the RNG */
    char fp[CPNS_FINGERPRINT_LEN + 1];
    cpns_fingerprint(p.GK, CPNS_KEY_LEN, fp);
    assert_string_equal(h_sg(h, "sg-1").fingerprint, fp);
}

/* 7.8.6.3-1: an inventory that cannot be stored creates nothing. */
static void test_7_8_6_3_1_store_failure_creates_nothing(void **state)
{
    harness *h = *state;
    h_world(h, TWO, 2);
    for (int n = 1; n <= 3; n++) {
        cpns_store_mem_fail_writes(h->st, n);
        assert_int_equal(cpns_server_sg_create(h->s, "sg-1", TWO, 2, h->now), CPNS_ERR_STORE);
        cpns_sg_info info;
        cpns_store_sg row;
        assert_int_equal(cpns_server_sg_get(h->s, "sg-1", &info), CPNS_ERR_NOT_FOUND);
        assert_int_equal(cpns_store_mem_get_sg(h->st, "sg-1", &row), CPNS_ERR_NOT_FOUND);
        cpns_msg req;
        assert_int_equal(h_pop(h, NULL, &req), 0);
        cpns_store_mem_fail_writes(h->st, 0);
    }
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", TWO, 2, h->now), 0);
    assert_int_equal(h_sg(h, "sg-1").n_members, 2);
}

/* A failing commit of a new key: pop returns the error, sends nothing, then recovers. */
static void test_barrier_commit_failure_sends_nothing(void **state)
{
    harness *h = *state;
    h_world(h, TWO, 2);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", TWO, 2, h->now), 0);
    cpns_store_mem_fail_writes(h->st, 1);
    cpns_out out;
    assert_int_equal(cpns_server_pop(h->s, &out), CPNS_ERR_STORE);
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.deliveries_sent, 0);
    assert_int_equal(h_sg(h, "sg-1").n_sent, 0);
    cpns_store_sg row;
    assert_int_equal(cpns_store_mem_get_sg(h->st, "sg-1", &row), 0);
    assert_int_equal(row.KeyVersion, 0);

    cpns_msg a, b;
    assert_int_equal(h_pop(h, NULL, &a), 1);
    assert_int_equal(h_pop(h, NULL, &b), 1);
    assert_int_equal(cpns_store_mem_get_sg(h->st, "sg-1", &row), 0);
    assert_int_equal(row.KeyVersion, 1);
    uint8_t GK[CPNS_KEY_LEN];
    h_unwrap(&a, GK);
    assert_memory_equal(row.GK, GK, CPNS_KEY_LEN);
}

/* Group commit: 10,000 members cost a handful of commits, not 10,000. */
static void test_batching_10000_members(void **state)
{
    harness *h = *state;
    enum { N = 10000 };
    static char ids[N][16];
    static const char *PNEIDs[N];
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), 1);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "pne-%05d", i);
        PNEIDs[i] = ids[i];
        h_pne_add(h, ids[i]);
        assert_int_equal(h_register(h, 1, ids[i]), 1);
    }
    assert_int_equal(cpns_server_flush(h->s), 0);
    uint64_t commits = cpns_store_mem_commits(h->st);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-big", PNEIDs, N, h->now), 0);
    static cpns_msg req[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(h_pop(h, NULL, &req[i]), 1);
    assert_int_equal(h_pop(h, NULL, &req[0]), 0);
    uint8_t GK[CPNS_KEY_LEN];
    h_unwrap(&req[0], GK);
    for (int i = 0; i < N; i++)
        assert_int_equal(h_answer(h, 1, &req[i], 1, GK, "pn-home"), 0);
    assert_int_equal(cpns_server_flush(h->s), 0);
    uint64_t used = cpns_store_mem_commits(h->st) - commits;
    assert_true(used >= 2 && used <= 5);
    assert_true(h_sg(h, "sg-big").complete);
    cpns_store_member row;
    assert_int_equal(cpns_store_mem_get_member(h->st, "sg-big", "pne-09999", &row), 0);
    assert_int_equal(row.state, CPNS_MEMBER_DELIVERED);
    assert_int_equal(row.KeyVersion, 1);
}

/*
 * What a member row costs: the inventory writes it, an outcome writes it; a
 * send or the start of a new KeyVersion does not (a stored row of an older
 * version, or a "sent" one, loads as pending for the current version). A
 * crash after such unwritten steps still ends with every member holding the
 * current key.
 */
static void test_sends_and_new_versions_write_no_member_row(void **state)
{
    harness *h = *state;
    static const char *const THREE[] = {"pne-a", "pne-b", "pne-c"};
    h_world(h, THREE, 3);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", THREE, 3, h->now), 0);
    cpns_msg req[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_pop(h, NULL, &req[i]), 1);
    assert_int_equal(cpns_server_flush(h->s), 0);
    cpns_store_member row;
    assert_int_equal(cpns_store_mem_get_member(h->st, "sg-1", "pne-a", &row), 0);
    assert_int_equal(row.KeyVersion, 0); /* the inventory's row */
    assert_int_equal(row.state, CPNS_MEMBER_PENDING);

    h_confirm(h, 1, &req[0]);
    assert_int_equal(cpns_server_flush(h->s), 0);
    assert_int_equal(cpns_store_mem_get_member(h->st, "sg-1", "pne-a", &row), 0);
    assert_int_equal(row.KeyVersion, 1);
    assert_int_equal(row.state, CPNS_MEMBER_DELIVERED);
    assert_int_equal(row.attempts, 1);

    /* A rekey, sent to all: pne-a's row still says version 1, delivered. */
    assert_int_equal(cpns_server_sg_rekey(h->s, "sg-1", h->now), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_pop(h, NULL, &req[i]), 1);
    assert_int_equal(cpns_server_flush(h->s), 0);
    assert_int_equal(cpns_store_mem_get_member(h->st, "sg-1", "pne-a", &row), 0);
    assert_int_equal(row.KeyVersion, 1);
    cpns_store_sg sg;
    assert_int_equal(cpns_store_mem_get_sg(h->st, "sg-1", &sg), 0);
    assert_int_equal(sg.KeyVersion, 2);
    uint8_t GK2[CPNS_KEY_LEN];
    h_unwrap(&req[0], GK2);

    /* After a crash every member gets version 2 again, with the same key. */
    h_crash_restart(h);
    for (int i = 0; i < 3; i++) {
        cpns_member_info m = h_member(h, "sg-1", THREE[i]);
        assert_int_equal(m.KeyVersion, 2);
        assert_int_equal(m.state, CPNS_MEMBER_PENDING);
    }
    assert_int_equal(h_gw(h, 9, "gw-1", "pn-home", NULL), 1);
    for (int i = 0; i < 3; i++)
        h_status(h, 9, THREE[i], CPNS_STATUS_ATTACHED);
    for (int i = 0; i < 3; i++) {
        cpns_msg again;
        assert_int_equal(h_pop(h, NULL, &again), 1);
        assert_int_equal(again.KeyVersion, 2);
        uint8_t GK[CPNS_KEY_LEN];
        h_unwrap(&again, GK);
        assert_memory_equal(GK, GK2, CPNS_KEY_LEN);
        h_confirm(h, 9, &again);
    }
    assert_true(h_sg(h, "sg-1").complete);
}

/* Crash and restart: same key and version resent, nothing delivered is lost. */
static void test_crash_restart_resends_same_key(void **state)
{
    harness *h = *state;
    static const char *const THREE[] = {"pne-a", "pne-b", "pne-c"};
    h_world(h, THREE, 3);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", THREE, 3, h->now), 0);
    cpns_msg req[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_pop(h, NULL, &req[i]), 1);
    uint8_t GK[CPNS_KEY_LEN];
    h_unwrap(&req[0], GK);
    h_confirm(h, 1, &req[0]);
    assert_int_equal(cpns_server_flush(h->s), 0); /* pne-a's delivery is durable */
    h_confirm(h, 1, &req[1]);                     /* pne-b's is not */
    char fp[CPNS_FINGERPRINT_LEN + 1];
    strcpy(fp, h_sg(h, "sg-1").fingerprint);

    h_crash_restart(h);
    cpns_sg_info si = h_sg(h, "sg-1");
    assert_int_equal(si.KeyVersion, 1);
    assert_string_equal(si.fingerprint, fp);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
    assert_int_equal(h_member(h, "sg-1", "pne-b").state, CPNS_MEMBER_PENDING);
    assert_int_equal(h_member(h, "sg-1", "pne-c").state, CPNS_MEMBER_PENDING);
    cpns_pne_info pi;
    assert_int_equal(cpns_server_pne_get(h->s, "pne-b", &pi), 0);
    assert_true(pi.registered);
    assert_false(pi.reachable);
    assert_string_equal(pi.PNGWID, "gw-1");
    cpns_msg again;
    assert_int_equal(h_pop(h, NULL, &again), 0);

    /* The GW reconnects and reports pne-b attached; pne-c registers again. */
    assert_int_equal(h_gw(h, 9, "gw-1", "pn-home", NULL), 1);
    assert_int_equal(h_pop(h, NULL, &again), 0);
    h_status(h, 9, "pne-b", CPNS_STATUS_ATTACHED);
    assert_int_equal(h_pop(h, NULL, &again), 1);
    assert_string_equal(again.PNEID, "pne-b");
    assert_int_equal(again.KeyVersion, 1);
    uint8_t GK2[CPNS_KEY_LEN];
    h_unwrap(&again, GK2);
    assert_memory_equal(GK, GK2, CPNS_KEY_LEN);
    h_confirm(h, 9, &again);
    assert_int_equal(h_pop(h, NULL, &again), 0);
    assert_int_equal(h_register(h, 9, "pne-c"), 1);
    assert_int_equal(h_pop(h, NULL, &again), 1);
    h_unwrap(&again, GK2);
    assert_memory_equal(GK, GK2, CPNS_KEY_LEN);
    h_confirm(h, 9, &again);
    assert_true(h_sg(h, "sg-1").complete);
}

/* A crash between the inventory commit and the key commit: the key is made on load. */
static void test_crash_after_inventory_generates_key_on_load(void **state)
{
    harness *h = *state;
    h_world(h, TWO, 2);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", TWO, 2, h->now), 0);
    h_crash_restart(h);
    cpns_store_sg row;
    assert_int_equal(cpns_store_mem_get_sg(h->st, "sg-1", &row), 0);
    assert_int_equal(row.KeyVersion, 0); /* nothing carrying a key ever left */
    assert_int_equal(h_sg(h, "sg-1").KeyVersion, 1);
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), 1);
    assert_int_equal(h_register(h, 1, "pne-a"), 1);
    cpns_msg req;
    assert_int_equal(h_pop(h, NULL, &req), 1);
    assert_int_equal(cpns_store_mem_get_sg(h->st, "sg-1", &row), 0);
    assert_int_equal(row.KeyVersion, 1);
    h_confirm(h, 1, &req);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
}

/* Unreachable PNEs stay pending without using an attempt. */
static void test_unreachable_members_stay_pending(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    h_pne_add(h, "pne-b");
    assert_int_equal(h_register(h, 1, "pne-b"), 1);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", TWO, 2, h->now), 0);
    cpns_msg req;
    assert_int_equal(h_pop(h, NULL, &req), 1);
    assert_string_equal(req.PNEID, "pne-b");
    h_confirm(h, 1, &req);
    assert_int_equal(h_pop(h, NULL, &req), 0);
    cpns_member_info mi = h_member(h, "sg-1", "pne-a");
    assert_int_equal(mi.state, CPNS_MEMBER_PENDING);
    assert_int_equal(mi.attempts, 0);
    h->now += 3600 * 1000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    assert_int_equal(h_member(h, "sg-1", "pne-a").attempts, 0);
    assert_int_equal(h_register(h, 1, "pne-a"), 1);
    assert_int_equal(h_pop(h, NULL, &req), 1);
    assert_string_equal(req.PNEID, "pne-a");
}

/* Closing the GW connection removes the route; frames queued for it are dropped. */
static void test_conn_close_removes_route(void **state)
{
    harness *h = *state;
    h_world(h, TWO, 2);
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.gws_connected, 1);
    assert_int_equal(st.pnes_reachable, 2);
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", TWO, 2, h->now), 0);
    assert_int_equal(cpns_server_conn_close(h->s, 1, h->now), 0);
    assert_int_equal(cpns_server_conn_close(h->s, 1, h->now), CPNS_ERR_NOT_FOUND);
    cpns_msg req;
    assert_int_equal(h_pop(h, NULL, &req), 0);
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.gws_connected, 0);
    assert_int_equal(st.pnes_reachable, 0);
    assert_int_equal(h_sg(h, "sg-1").n_pending, 2);
}

static void test_conn_errors_and_unregistered_frames(void **state)
{
    harness *h = *state;
    assert_int_equal(cpns_server_conn_open(h->s, 0, NULL, h->now), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_server_conn_open(h->s, 3, NULL, h->now), 0);
    assert_int_equal(cpns_server_conn_open(h->s, 3, NULL, h->now), CPNS_ERR_EXISTS);
    assert_int_equal(h_recv_raw(h, 4, "x"), CPNS_ERR_NOT_FOUND);
    /* A PNE registration on a connection whose GW never registered is dropped. */
    h_pne_add(h, "pne-a");
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_msg m;
    h_euk("pne-a", EUK);
    h_reg_msg(h, &m, "pne-a", EUK, h->now / 1000);
    assert_int_equal(h_recv(h, 3, &m), 0);
    assert_int_equal(h_pop(h, NULL, &m), 0);
    cpns_pne_info pi;
    assert_int_equal(cpns_server_pne_get(h->s, "pne-a", &pi), 0);
    assert_false(pi.registered);
}

#define XML_HEAD                                                                                   \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CPNSMessage "                                      \
    "xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "

/* A malformed request with a readable TransactionID is answered with Return 4. */
static void test_malformed_requests_answered_with_return_4(void **state)
{
    harness *h = *state;
    cpns_msg r;
    uint64_t link;
    assert_int_equal(cpns_server_conn_open(h->s, 1, NULL, h->now), 0);
    assert_int_equal(h_recv_raw(h, 1,
                                XML_HEAD
                                "TransactionID=\"77\"><PNGWRegistrationRequest PNGWID=\"gw-1\"/>"
                                "</CPNSMessage>"),
                     0);
    assert_int_equal(h_pop(h, &link, &r), 1);
    assert_int_equal(r.kind, CPNS_MSG_PNGW_REGISTRATION_RESPONSE);
    assert_int_equal(r.TransactionID, 77);
    assert_int_equal(r.Return, CPNS_RETURN_MALFORMED);

    assert_int_equal(h_gw(h, 2, "gw-1", "pn-home", NULL), 1);
    assert_int_equal(h_recv_raw(h, 2,
                                XML_HEAD "TransactionID=\"78\"><PNERegistrationRequest "
                                         "PNEID=\"pne-a\" Nonce=\"AAECAwQFBgcICQoLDA0ODw==\" "
                                         "Time=\"1795000000\"/></CPNSMessage>"),
                     0);
    assert_int_equal(h_pop(h, &link, &r), 1);
    assert_int_equal(link, 2);
    assert_int_equal(r.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    assert_int_equal(r.TransactionID, 78);
    assert_int_equal(r.Return, CPNS_RETURN_MALFORMED);
    assert_string_equal(r.PNEID, "pne-a");
    assert_string_equal(r.PNID, "pn-home");

    /* Without a readable PNEID (or TransactionID, or at all) there is nothing to answer. */
    assert_int_equal(h_recv_raw(h, 2,
                                XML_HEAD "TransactionID=\"79\"><PNERegistrationRequest "
                                         "PNEID=\"bad id\"/></CPNSMessage>"),
                     0);
    assert_int_equal(h_recv_raw(h, 2, XML_HEAD "><PNGWRegistrationRequest/></CPNSMessage>"), 0);
    assert_int_equal(h_recv_raw(h, 2, "<not xml"), 0);
    assert_int_equal(h_recv_raw(h, 2,
                                XML_HEAD "TransactionID=\"80\"><SGroupKeyDeliveryResponse "
                                         "Return=\"x\"/></CPNSMessage>"),
                     0);
    assert_int_equal(h_pop(h, &link, &r), 0);
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.gw_registrations[4], 1);
    assert_int_equal(st.registrations[4], 1);
}

/* Nonces expire from memory and from the store; the timer covers them. */
static void test_nonce_expiry(void **state)
{
    harness *h = *state;
    assert_int_equal(cpns_server_get_expiry(h->s), CPNS_NEVER);
    static const char *const ONE[] = {"pne-a"};
    h_world(h, ONE, 1);
    assert_int_equal(cpns_server_get_expiry(h->s), H_T0 + 600 * 1000);
    assert_int_equal(cpns_server_flush(h->s), 0);
    h->now += 600 * 1000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    assert_int_equal(cpns_server_get_expiry(h->s), CPNS_NEVER);
    uint64_t commits = cpns_store_mem_commits(h->st);
    assert_int_equal(cpns_server_flush(h->s), 0);
    assert_int_equal(cpns_store_mem_commits(h->st), commits + 1);
    assert_int_equal(cpns_server_flush(h->s), 0); /* nothing left to write: no commit */
    assert_int_equal(cpns_store_mem_commits(h->st), commits + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_7_8_6_3_1_inventory_stored_then_key_generated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_3_1_store_failure_creates_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_barrier_commit_failure_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching_10000_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sends_and_new_versions_write_no_member_row, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_restart_resends_same_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_inventory_generates_key_on_load, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_members_stay_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_close_removes_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_errors_and_unregistered_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_requests_answered_with_return_4, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nonce_expiry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
