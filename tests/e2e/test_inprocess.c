/* SPDX-License-Identifier: Apache-2.0 */
/*
 * End to end, in process: the real server, GW and PNE engines wired together
 * by src/sim with a virtual clock. Each test is one scenario of the
 * procedure of 7.8.6 as a deployment would live it.
 */
#include <string.h>

#include "sim.h"
#include "support.h"

typedef struct {
    sim s;
    int pne[3];
} world;

static const char *const MEMBERS[] = {"pne-tv", "pne-phone", "pne-laptop"};

static int setup(void **state)
{
    static world w;
    memset(&w, 0, sizeof w);
    assert_int_equal(sim_init(&w.s, 42, test_log, NULL), 0);
    for (int i = 0; i < 3; i++) {
        w.pne[i] = sim_add_pne(&w.s, MEMBERS[i], NULL);
        assert_int_equal(w.pne[i], i);
    }
    assert_int_equal(sim_gw_connect(&w.s), 0);
    *state = &w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    sim_fini(&w->s);
    return 0;
}

static void up_all(world *w)
{
    for (int i = 0; i < 3; i++)
        assert_int_equal(sim_pne_up(&w->s, i), 0);
}

static void member(world *w, const char *SGID, const char *PNEID, cpns_member_info *out);

typedef struct {
    const char *PNEID;
    cpns_member_info info;
} member_query;

static int find_member(void *arg, const cpns_member_info *m)
{
    member_query *q = arg;
    if (strcmp(m->PNEID, q->PNEID) == 0)
        q->info = *m;
    return 0;
}

static void member(world *w, const char *SGID, const char *PNEID, cpns_member_info *out)
{
    member_query q = {PNEID, {0}};
    q.info.PNEID = NULL;
    assert_int_equal(cpns_server_sg_members(w->s.server, SGID, find_member, &q), 0);
    assert_non_null(q.info.PNEID);
    *out = q.info;
}

static void assert_holds(world *w, int i, const char *SGID, uint32_t version,
                         const cpns_key_slot *expect)
{
    cpns_key_slot k;
    assert_int_equal(sim_pne_key(&w->s, i, SGID, &k), 0);
    assert_int_equal(k.KeyVersion, version);
    if (expect)
        assert_memory_equal(k.GK, expect->GK, CPNS_KEY_LEN);
}

/*
 * 7.8.6.3-1, 7.8.6.3-2, 7.8.6.3-3, 7.8.6.2-1, 7.8.6.1-1, 7.8.6.1-2, 7.8.6.1-3,
 * 7.8.6.1-4, 7.8.6.1-5, 7.8.6.2-2, 7.8.6.3-4, 7.8.6.3-5: a Service Group is
 * created, every member ends up holding the same Group Key, with the fingerprint
 * the server reports, and the server finishes once every member answered 1.
 */
static void test_creation_every_member_holds_the_key(void **state)
{
    world *w = *state;
    up_all(w);
    assert_int_equal(cpns_server_sg_create(w->s.server, "sg-family", MEMBERS, 3, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);

    cpns_sg_info sg;
    assert_int_equal(cpns_server_sg_get(w->s.server, "sg-family", &sg), 0);
    assert_true(sg.complete);
    assert_int_equal(sg.KeyVersion, 1);
    assert_int_equal(sg.n_delivered, 3);

    cpns_key_slot first;
    assert_int_equal(sim_pne_key(&w->s, 0, "sg-family", &first), 0);
    char fp[CPNS_FINGERPRINT_LEN + 1];
    cpns_fingerprint(first.GK, CPNS_KEY_LEN, fp);
    assert_string_equal(fp, sg.fingerprint);
    for (int i = 0; i < 3; i++) {
        assert_holds(w, i, "sg-family", 1, &first);
        cpns_member_info m;
        member(w, "sg-family", MEMBERS[i], &m);
        assert_int_equal(m.state, CPNS_MEMBER_DELIVERED);
        assert_int_equal(m.Return, 1);
        assert_int_equal(m.attempts, 1);
        assert_string_equal(m.PNID, "pn-home");
    }
}

/* Removing a member rekeys: the others get version 2, the removed one keeps only version 1. */
static void test_removal_rekeys_the_rest(void **state)
{
    world *w = *state;
    up_all(w);
    assert_int_equal(cpns_server_sg_create(w->s.server, "sg-family", MEMBERS, 3, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);
    cpns_key_slot v1;
    assert_int_equal(sim_pne_key(&w->s, 0, "sg-family", &v1), 0);

    const char *gone[] = {"pne-laptop"};
    assert_int_equal(cpns_server_sg_update(w->s.server, "sg-family", NULL, 0, gone, 1, w->s.now),
                     0);
    assert_int_equal(sim_run(&w->s), 0);

    cpns_sg_info sg;
    assert_int_equal(cpns_server_sg_get(w->s.server, "sg-family", &sg), 0);
    assert_true(sg.complete);
    assert_int_equal(sg.KeyVersion, 2);
    assert_int_equal(sg.n_members, 2);
    cpns_key_slot v2;
    assert_int_equal(sim_pne_key(&w->s, 0, "sg-family", &v2), 0);
    assert_int_equal(v2.KeyVersion, 2);
    assert_memory_not_equal(v2.GK, v1.GK, CPNS_KEY_LEN);
    assert_holds(w, 1, "sg-family", 2, &v2);
    assert_holds(w, 2, "sg-family", 1, &v1);

    /* the PNE keeps version 1 as its previous key, for messages sealed before the rekey */
    cpns_stored_keys keys;
    cpns_keystore *ks = w->s.pnes[0].keystore;
    assert_int_equal(ks->ops->get(ks, "sg-family", &keys), 0);
    assert_int_equal(keys.previous.KeyVersion, 1);
    assert_memory_equal(keys.previous.GK, v1.GK, CPNS_KEY_LEN);
}

/* An offline member gets the key when its PNE registers (catch-up), without using attempts. */
static void test_offline_member_catches_up(void **state)
{
    world *w = *state;
    assert_int_equal(sim_pne_up(&w->s, 0), 0);
    assert_int_equal(sim_pne_up(&w->s, 1), 0);
    assert_int_equal(cpns_server_sg_create(w->s.server, "sg-family", MEMBERS, 3, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);

    cpns_member_info m;
    member(w, "sg-family", "pne-laptop", &m);
    assert_int_equal(m.state, CPNS_MEMBER_PENDING);
    assert_int_equal(sim_advance(&w->s, 3600 * 1000), 0); /* an hour offline */
    member(w, "sg-family", "pne-laptop", &m);
    assert_int_equal(m.state, CPNS_MEMBER_PENDING);
    assert_int_equal(m.attempts, 0);

    assert_int_equal(sim_pne_up(&w->s, 2), 0);
    member(w, "sg-family", "pne-laptop", &m);
    assert_int_equal(m.state, CPNS_MEMBER_DELIVERED);
    cpns_key_slot k;
    assert_int_equal(sim_pne_key(&w->s, 0, "sg-family", &k), 0);
    assert_holds(w, 2, "sg-family", 1, &k);
    cpns_sg_info sg;
    assert_int_equal(cpns_server_sg_get(w->s.server, "sg-family", &sg), 0);
    assert_true(sg.complete);
}

static bool drop_first_response(void *arg, sim_hop hop, int pne, const cpns_msg *m)
{
    int *left = arg;
    if (hop == SIM_PNE_TO_GW && pne == 1 && m->kind == CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE &&
        *left > 0) {
        (*left)--;
        return true;
    }
    return false;
}

/* A lost response is resent after the timeout, with a new TransactionID and the same key. */
static void test_lost_response_is_resent(void **state)
{
    world *w = *state;
    up_all(w);
    int left = 1;
    w->s.filter = drop_first_response;
    w->s.filter_arg = &left;
    assert_int_equal(cpns_server_sg_create(w->s.server, "sg-family", MEMBERS, 3, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);
    assert_int_equal(left, 0);

    cpns_member_info m;
    member(w, "sg-family", "pne-phone", &m);
    assert_int_equal(m.state, CPNS_MEMBER_SENT);
    assert_int_equal(sim_advance(&w->s, 9999), 0);
    member(w, "sg-family", "pne-phone", &m);
    assert_int_equal(m.state, CPNS_MEMBER_SENT); /* not before the 10 s timeout */
    assert_int_equal(sim_advance(&w->s, 1), 0);
    member(w, "sg-family", "pne-phone", &m);
    assert_int_equal(m.state, CPNS_MEMBER_DELIVERED);
    assert_int_equal(m.attempts, 2);

    cpns_key_slot k;
    assert_int_equal(sim_pne_key(&w->s, 0, "sg-family", &k), 0);
    assert_holds(w, 1, "sg-family", 1, &k);
}

/* A PNE whose EUK disagrees with the server's answers Return 2 and the member fails; the rest
 * completes. */
static void test_wrong_euk_fails_the_member(void **state)
{
    world *w = *state;
    uint8_t other[CPNS_KEY_LEN];
    memset(other, 0x5a, sizeof other);
    int bad = sim_add_pne(&w->s, "pne-old", other);
    assert_true(bad >= 0);
    up_all(w);
    /* pne-old cannot even register: its Proof does not verify under the server's EUK */
    assert_int_equal(sim_pne_up(&w->s, bad), 0);
    assert_int_equal(cpns_pne_get_state(w->s.pnes[bad].pne), CPNS_PNE_REFUSED);
    assert_int_equal(cpns_pne_last_return(w->s.pnes[bad].pne), CPNS_RETURN_AUTH);

    /* re-provisioned with the PNE's key on the server it registers; then the server's key goes
     * wrong */
    assert_int_equal(cpns_server_pne_set_key(w->s.server, "pne-old", w->s.pnes[bad].EUK, w->s.now),
                     0);
    assert_int_equal(sim_pne_down(&w->s, bad), 0);
    assert_int_equal(sim_pne_up(&w->s, bad), 0);
    assert_int_equal(cpns_pne_get_state(w->s.pnes[bad].pne), CPNS_PNE_REGISTERED);
    assert_int_equal(cpns_server_pne_set_key(w->s.server, "pne-old", other, w->s.now), 0);

    const char *members[] = {"pne-tv", "pne-old"};
    assert_int_equal(cpns_server_sg_create(w->s.server, "sg-mixed", members, 2, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);

    cpns_member_info m;
    member(w, "sg-mixed", "pne-old", &m);
    assert_int_equal(m.state, CPNS_MEMBER_FAILED);
    assert_int_equal(m.Return, CPNS_RETURN_DECRYPT);
    assert_int_equal(m.attempts, 1);
    cpns_key_slot k;
    assert_int_equal(sim_pne_key(&w->s, bad, "sg-mixed", &k), CPNS_ERR_NOT_FOUND);
    member(w, "sg-mixed", "pne-tv", &m);
    assert_int_equal(m.state, CPNS_MEMBER_DELIVERED);
    cpns_sg_info sg;
    assert_int_equal(cpns_server_sg_get(w->s.server, "sg-mixed", &sg), 0);
    assert_false(sg.complete);
    assert_int_equal(sg.n_failed, 1);

    /* no retry until re-provisioned, not even after a long wait */
    assert_int_equal(sim_advance(&w->s, 3600 * 1000), 0);
    member(w, "sg-mixed", "pne-old", &m);
    assert_int_equal(m.attempts, 1);
    /* re-provisioned with the right key: the member is retried and delivered */
    assert_int_equal(cpns_server_pne_set_key(w->s.server, "pne-old", w->s.pnes[bad].EUK, w->s.now),
                     0);
    assert_int_equal(sim_run(&w->s), 0);
    member(w, "sg-mixed", "pne-old", &m);
    assert_int_equal(m.state, CPNS_MEMBER_DELIVERED);
}

/* Drops pne-phone's first delivery response on its way to the server and keeps a copy. */
typedef struct {
    bool taken;
    cpns_msg real;
} steal;

static bool steal_phone_response(void *arg, sim_hop hop, int pne, const cpns_msg *m)
{
    steal *st = arg;
    (void)pne;
    if (st->taken || hop != SIM_GW_TO_SERVER || m->kind != CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE ||
        strcmp(m->PNEID, "pne-phone") != 0)
        return false;
    st->taken = true;
    st->real = *m;
    return true;
}

/*
 * PROTOCOL.md 5.3 catch-up, finding #10.1 (7.8.6.3-4, 7.8.6.1-1): someone on
 * the path replaces a PNE's Return 1 with a forged Return 2 (a failure
 * carries no KeyConfirmation). The server fails the member; when the PNE
 * registers again its verified Proof earns the member a fresh round, the
 * same key goes out again and the PNE confirms it.
 */
static void test_forged_return_2_healed_by_registration(void **state)
{
    world *w = *state;
    up_all(w);
    steal st = {0};
    w->s.filter = steal_phone_response;
    w->s.filter_arg = &st;
    assert_int_equal(cpns_server_sg_create(w->s.server, "sg-family", MEMBERS, 3, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);
    assert_true(st.taken);
    assert_int_equal(st.real.Return, CPNS_RETURN_SUCCESS);

    cpns_msg forged;
    cpns_msg_init(&forged, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE, st.real.TransactionID);
    forged.Return = CPNS_RETURN_DECRYPT;
    forged.present |= CPNS_F_RETURN;
    assert_int_equal(cpns_msg_set_id(&forged, CPNS_F_SGID, "sg-family"), 0);
    assert_int_equal(cpns_msg_set_id(&forged, CPNS_F_PNEID, "pne-phone"), 0);
    assert_int_equal(cpns_msg_set_id(&forged, CPNS_F_PNID, "pn-home"), 0);
    forged.KeyVersion = 1;
    forged.present |= CPNS_F_KEYVERSION;
    uint8_t buf[2048];
    size_t len;
    assert_int_equal(cpns_msg_encode(&forged, buf, sizeof buf, &len), 0);
    assert_int_equal(cpns_server_recv(w->s.server, w->s.gw_conn, buf, len, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);
    cpns_member_info m;
    member(w, "sg-family", "pne-phone", &m);
    assert_int_equal(m.state, CPNS_MEMBER_FAILED);
    assert_int_equal(m.Return, CPNS_RETURN_DECRYPT);

    /* The PNE comes back: registration, then the same key again, confirmed this time. */
    assert_int_equal(sim_pne_down(&w->s, 1), 0);
    assert_int_equal(sim_pne_up(&w->s, 1), 0);
    member(w, "sg-family", "pne-phone", &m);
    assert_int_equal(m.state, CPNS_MEMBER_DELIVERED);
    assert_int_equal(m.KeyVersion, 1);
    assert_int_equal(m.attempts, 1);
    cpns_sg_info sg;
    assert_int_equal(cpns_server_sg_get(w->s.server, "sg-family", &sg), 0);
    assert_true(sg.complete);
    cpns_key_slot k;
    assert_int_equal(sim_pne_key(&w->s, 0, "sg-family", &k), 0);
    assert_holds(w, 1, "sg-family", 1, &k);
}

/* The GW restarts: after it reconnects its PNEs are attached again and a new group completes. */
static void test_gw_restart(void **state)
{
    world *w = *state;
    up_all(w);
    assert_int_equal(sim_gw_disconnect(&w->s), 0);
    cpns_pne_info p;
    assert_int_equal(cpns_server_pne_get(w->s.server, "pne-tv", &p), 0);
    assert_false(p.reachable);

    assert_int_equal(cpns_server_sg_create(w->s.server, "sg-family", MEMBERS, 3, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);
    cpns_sg_info sg;
    assert_int_equal(cpns_server_sg_get(w->s.server, "sg-family", &sg), 0);
    assert_int_equal(sg.n_pending, 3);

    assert_int_equal(sim_gw_connect(&w->s), 0);
    assert_int_equal(cpns_server_pne_get(w->s.server, "pne-tv", &p), 0);
    assert_true(p.reachable);
    assert_int_equal(cpns_server_sg_get(w->s.server, "sg-family", &sg), 0);
    assert_true(sg.complete);
}

static bool drop_requests(void *arg, sim_hop hop, int pne, const cpns_msg *m)
{
    (void)arg;
    (void)pne;
    return hop == SIM_SERVER_TO_GW && m->kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST;
}

/* The server crashes with deliveries outstanding: after restart it completes with the same key and
 * version. */
static void test_server_crash_keeps_the_key(void **state)
{
    world *w = *state;
    up_all(w);
    w->s.filter = drop_requests;
    assert_int_equal(cpns_server_sg_create(w->s.server, "sg-family", MEMBERS, 3, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);
    cpns_sg_info sg;
    assert_int_equal(cpns_server_sg_get(w->s.server, "sg-family", &sg), 0);
    char before[CPNS_FINGERPRINT_LEN + 1];
    strcpy(before, sg.fingerprint);
    assert_int_equal(sg.n_sent, 3);

    w->s.filter = NULL;
    assert_int_equal(sim_server_restart(&w->s), 0);
    assert_int_equal(sim_run(&w->s), 0);
    assert_int_equal(cpns_server_sg_get(w->s.server, "sg-family", &sg), 0);
    assert_true(sg.complete);
    assert_int_equal(sg.KeyVersion, 1);
    assert_string_equal(sg.fingerprint, before);
    cpns_key_slot k;
    assert_int_equal(sim_pne_key(&w->s, 0, "sg-family", &k), 0);
    char fp[CPNS_FINGERPRINT_LEN + 1];
    cpns_fingerprint(k.GK, CPNS_KEY_LEN, fp);
    assert_string_equal(fp, before);
    for (int i = 1; i < 3; i++)
        assert_holds(w, i, "sg-family", 1, &k);
}

static bool drop_detached(void *arg, sim_hop hop, int pne, const cpns_msg *m)
{
    (void)arg;
    (void)pne;
    return hop == SIM_GW_TO_SERVER && m->kind == CPNS_MSG_PNE_STATUS_NOTIFICATION;
}

/* The server believes a PNE is attached but it is gone: the GW answers Return 6, and the key
 * follows at registration. */
static void test_gw_answers_unreachable(void **state)
{
    world *w = *state;
    up_all(w);
    w->s.filter = drop_detached;
    assert_int_equal(sim_pne_down(&w->s, 2), 0);
    w->s.filter = NULL;
    assert_int_equal(cpns_server_sg_create(w->s.server, "sg-family", MEMBERS, 3, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);

    cpns_member_info m;
    member(w, "sg-family", "pne-laptop", &m);
    assert_int_equal(m.state, CPNS_MEMBER_PENDING);
    assert_int_equal(m.Return, CPNS_RETURN_UNREACHABLE);
    assert_string_equal(m.PNID, "pn-home");

    assert_int_equal(sim_pne_up(&w->s, 2), 0);
    member(w, "sg-family", "pne-laptop", &m);
    assert_int_equal(m.state, CPNS_MEMBER_DELIVERED);
}

/* Adding a member delivers the current key, without a rekey. */
static void test_addition_gets_current_key(void **state)
{
    world *w = *state;
    up_all(w);
    assert_int_equal(cpns_server_sg_create(w->s.server, "sg-family", MEMBERS, 2, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);
    const char *add[] = {"pne-laptop"};
    assert_int_equal(cpns_server_sg_update(w->s.server, "sg-family", add, 1, NULL, 0, w->s.now), 0);
    assert_int_equal(sim_run(&w->s), 0);
    cpns_key_slot k;
    assert_int_equal(sim_pne_key(&w->s, 0, "sg-family", &k), 0);
    assert_int_equal(k.KeyVersion, 1);
    assert_holds(w, 2, "sg-family", 1, &k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_creation_every_member_holds_the_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal_rekeys_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_member_catches_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_response_is_resent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_euk_fails_the_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gw_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_crash_keeps_the_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gw_answers_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addition_gets_current_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_return_2_healed_by_registration, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
