/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/server_register.c: PNGWRegistration (certificate CN check,
 * takeover by a newer connection), PNERegistration (Return 1, 8 for a bad
 * Proof, a stale Time or a replayed Nonce, 9 for an unknown PNEID) and the
 * PNEStatusNotification rules that decide whether a PNE is reachable.
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

static const char *const ONE[] = {"pne-a"};

static int reachable(harness *h, const char *PNEID)
{
    cpns_pne_info pi;
    assert_int_equal(cpns_server_pne_get(h->s, PNEID, &pi), 0);
    return pi.reachable;
}

static void test_gw_registration_cn_mismatch_is_8(void **state)
{
    harness *h = *state;
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", "gw-evil"), CPNS_RETURN_AUTH);
    /* The connection stays unregistered: a PNE registration on it is dropped. */
    h_pne_add(h, "pne-a");
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_msg m;
    h_euk("pne-a", EUK);
    h_reg_msg(h, &m, "pne-a", EUK, h->now / 1000);
    assert_int_equal(h_recv(h, 1, &m), 0);
    assert_int_equal(h_pop(h, NULL, &m), 0);
    assert_int_equal(h_gw(h, 2, "gw-2", "pn-home", "gw-2"), CPNS_RETURN_SUCCESS);
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.gw_registrations[8], 1);
    assert_int_equal(st.gw_registrations[1], 1);
    assert_int_equal(st.gws_connected, 1);
}

static void test_pne_registration_success_returns_pnid(void **state)
{
    harness *h = *state;
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-living-room", NULL), 1);
    h_pne_add(h, "pne-a");
    assert_false(reachable(h, "pne-a"));
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_msg m;
    char PNID[CPNS_ID_MAX + 1];
    h_euk("pne-a", EUK);
    h_reg_msg(h, &m, "pne-a", EUK, h->now / 1000);
    assert_int_equal(h_register_msg(h, 1, &m, PNID), CPNS_RETURN_SUCCESS);
    assert_string_equal(PNID, "pn-living-room");
    cpns_pne_info pi;
    assert_int_equal(cpns_server_pne_get(h->s, "pne-a", &pi), 0);
    assert_true(pi.registered);
    assert_true(pi.reachable);
    assert_string_equal(pi.PNGWID, "gw-1");
    assert_string_equal(pi.PNID, "pn-living-room");
    /* Remembered durably at the next flush. */
    assert_int_equal(cpns_server_flush(h->s), 0);
    h_crash_restart(h);
    assert_int_equal(cpns_server_pne_get(h->s, "pne-a", &pi), 0);
    assert_true(pi.registered);
    assert_false(pi.reachable);
    assert_string_equal(pi.PNID, "pn-living-room");
}

static void test_pne_registration_unknown_is_9(void **state)
{
    harness *h = *state;
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), 1);
    char PNID[CPNS_ID_MAX + 1];
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_msg m;
    h_euk("pne-x", EUK);
    h_reg_msg(h, &m, "pne-x", EUK, h->now / 1000);
    assert_int_equal(h_register_msg(h, 1, &m, PNID), CPNS_RETURN_UNKNOWN);
    assert_string_equal(PNID, "pn-home");
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.registrations[9], 1);
}

static void test_pne_registration_bad_proof_is_8(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    uint8_t wrong[CPNS_KEY_LEN];
    cpns_msg m;
    h_euk("not-pne-a", wrong);
    h_reg_msg(h, &m, "pne-a", wrong, h->now / 1000);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    /* A right Proof over another Time does not verify either. */
    uint8_t EUK[CPNS_KEY_LEN];
    h_euk("pne-a", EUK);
    h_reg_msg(h, &m, "pne-a", EUK, h->now / 1000);
    m.Time += 1;
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    assert_false(reachable(h, "pne-a"));
}

static void test_pne_registration_stale_time_is_8(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_msg m;
    h_euk("pne-a", EUK);
    h_reg_msg(h, &m, "pne-a", EUK, h->now / 1000 - 301);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    h_reg_msg(h, &m, "pne-a", EUK, h->now / 1000 + 301);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    h_reg_msg(h, &m, "pne-a", EUK, h->now / 1000 - 300);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_SUCCESS);
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.registrations[8], 2);
    assert_int_equal(st.registrations[1], 1);
}

static void test_pne_registration_nonce_replay_is_8(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    uint8_t EUK[CPNS_KEY_LEN];
    const uint8_t Nonce[CPNS_NONCE_LEN] = {0xde, 0xad, 0xbe, 0xef};
    cpns_msg m;
    h_euk("pne-a", EUK);
    h_reg_msg_nonce(h, &m, "pne-a", EUK, h->now / 1000, Nonce);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_SUCCESS);
    h_reg_msg_nonce(h, &m, "pne-a", EUK, h->now / 1000, Nonce);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    /* The same Nonce from another PNE is no replay. */
    h_pne_add(h, "pne-b");
    h_euk("pne-b", EUK);
    h_reg_msg_nonce(h, &m, "pne-b", EUK, h->now / 1000, Nonce);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_SUCCESS);
    /* The nonce cache survives a restart... */
    assert_int_equal(cpns_server_flush(h->s), 0);
    h_crash_restart(h);
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), 1);
    h->now += 100 * 1000;
    h_euk("pne-a", EUK);
    h_reg_msg_nonce(h, &m, "pne-a", EUK, h->now / 1000, Nonce);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    /* ...and expires after its lifetime (600 s). */
    h->now += 500 * 1000;
    assert_int_equal(cpns_server_handle_expiry(h->s, h->now), 0);
    h_reg_msg_nonce(h, &m, "pne-a", EUK, h->now / 1000, Nonce);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_SUCCESS);
}

/* Status="detached" from the routing GW makes the PNE unreachable; "attached" sends its pending. */
static void test_status_detached_then_attached(void **state)
{
    harness *h = *state;
    h_world(h, ONE, 1);
    h_status(h, 1, "pne-a", CPNS_STATUS_DETACHED);
    assert_false(reachable(h, "pne-a"));
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", ONE, 1, h->now), 0);
    cpns_msg req;
    assert_int_equal(h_pop(h, NULL, &req), 0);
    h_status(h, 1, "pne-a", CPNS_STATUS_ATTACHED);
    assert_true(reachable(h, "pne-a"));
    assert_int_equal(h_pop(h, NULL, &req), 1);
    assert_string_equal(req.PNEID, "pne-a");
}

/* "attached" is accepted only from the GW of the PNE's last successful registration. */
static void test_status_attached_from_other_gw_ignored(void **state)
{
    harness *h = *state;
    h_world(h, ONE, 1);
    assert_int_equal(h_gw(h, 2, "gw-2", "pn-office", NULL), 1);
    h_status(h, 1, "pne-a", CPNS_STATUS_DETACHED);
    h_status(h, 2, "pne-a", CPNS_STATUS_ATTACHED);
    assert_false(reachable(h, "pne-a"));
    /* A detach from a GW that does not route it changes nothing either. */
    h_status(h, 1, "pne-a", CPNS_STATUS_ATTACHED);
    assert_true(reachable(h, "pne-a"));
    h_status(h, 2, "pne-a", CPNS_STATUS_DETACHED);
    assert_true(reachable(h, "pne-a"));
    /* An unregistered PNE cannot be attached. */
    h_pne_add(h, "pne-b");
    h_status(h, 1, "pne-b", CPNS_STATUS_ATTACHED);
    assert_false(reachable(h, "pne-b"));
    /* Registering through gw-2 moves the route. */
    assert_int_equal(h_register(h, 2, "pne-a"), 1);
    cpns_pne_info pi;
    assert_int_equal(cpns_server_pne_get(h->s, "pne-a", &pi), 0);
    assert_string_equal(pi.PNGWID, "gw-2");
    assert_string_equal(pi.PNID, "pn-office");
}

/* A GW that reconnects must report its PNEs again; a newer connection takes the PNGWID over. */
static void test_gw_reconnect_and_takeover(void **state)
{
    harness *h = *state;
    h_world(h, ONE, 1);
    assert_int_equal(h_gw(h, 2, "gw-1", "pn-home", NULL), 1);
    assert_false(reachable(h, "pne-a"));
    /* Frames from the replaced connection are dropped. */
    h_status(h, 1, "pne-a", CPNS_STATUS_ATTACHED);
    assert_false(reachable(h, "pne-a"));
    h_status(h, 2, "pne-a", CPNS_STATUS_ATTACHED);
    assert_true(reachable(h, "pne-a"));
    assert_int_equal(cpns_server_sg_create(h->s, "sg-1", ONE, 1, h->now), 0);
    uint64_t link = 0;
    cpns_msg req;
    assert_int_equal(h_pop(h, &link, &req), 1);
    assert_int_equal(link, 2);
    /* Closing the replaced connection does not touch the new binding. */
    assert_int_equal(cpns_server_conn_close(h->s, 1, h->now), 0);
    assert_true(reachable(h, "pne-a"));
    h_confirm(h, 2, &req);
    assert_int_equal(h_member(h, "sg-1", "pne-a").state, CPNS_MEMBER_DELIVERED);
}

/*
 * #10.5: a GW that registers again on a new connection without closing the
 * old one. The old connection is handed to the glue to close
 * (cpns_server_pop_close), once; what was queued for it (a refusal in the
 * outq, a registration answer held for its commit) is dropped, and nothing
 * it sends counts any more, not even a registration to take its PNGWID back.
 */
static void test_superseded_connection_is_closed_and_its_output_dropped(void **state)
{
    harness *h = *state;
    h_world(h, ONE, 1);
    uint64_t conn = 0;
    assert_int_equal(cpns_server_pop_close(h->s, &conn), 0);
    /* Unread output for conn 1: a Return 9 (queued) and a Return 1 (held for its commit). */
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_msg m, r;
    h_euk("pne-x", EUK);
    h_reg_msg(h, &m, "pne-x", EUK, h->now / 1000);
    assert_int_equal(h_recv(h, 1, &m), 0);
    h_euk("pne-a", EUK);
    h_reg_msg(h, &m, "pne-a", EUK, h->now / 1000);
    assert_int_equal(h_recv(h, 1, &m), 0);
    /* h_gw asserts that the next frame popped is conn 2's own response. */
    assert_int_equal(h_gw(h, 2, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    assert_int_equal(h_pop(h, NULL, &r), 0);
    assert_false(cpns_server_commit_wanted(h->s));
    assert_int_equal(cpns_server_pop_close(h->s, &conn), 1);
    assert_int_equal(conn, 1);
    assert_int_equal(cpns_server_pop_close(h->s, &conn), 0);
    assert_false(cpns_server_conn_registered(h->s, 1));
    assert_true(cpns_server_conn_registered(h->s, 2));
    /* Until the glue closes it, the old connection cannot take the PNGWID back. */
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, h->tid_ctr++);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNGWID, "gw-1"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-home"), 0);
    assert_int_equal(h_recv(h, 1, &m), 0);
    assert_int_equal(h_pop(h, NULL, &r), 0);
    assert_true(cpns_server_conn_registered(h->s, 2));
    assert_int_equal(cpns_server_conn_close(h->s, 1, h->now), 0);
    assert_int_equal(cpns_server_pop_close(h->s, &conn), 0);
    assert_true(cpns_server_conn_registered(h->s, 2));
    /* A re-registration on the same connection supersedes nothing. */
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, h->tid_ctr++);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNGWID, "gw-1"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-home"), 0);
    assert_int_equal(h_recv(h, 2, &m), 0);
    assert_int_equal(h_pop(h, NULL, &r), 1);
    assert_int_equal(r.Return, CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_server_pop_close(h->s, &conn), 0);
}

/* A superseded connection closed by the glue before it popped it is not handed out. */
static void test_superseded_connection_closed_before_pop_close(void **state)
{
    harness *h = *state;
    h_world(h, NULL, 0);
    assert_int_equal(h_gw(h, 2, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_server_conn_close(h->s, 1, h->now), 0);
    uint64_t conn = 0;
    assert_int_equal(cpns_server_pop_close(h->s, &conn), 0);
}

/*
 * #10.2 (engine part): cpns_server_conn_registered() is what the glue checks
 * to clear a connection's registration deadline: 1 only after Return 1.
 */
static void test_conn_registered(void **state)
{
    harness *h = *state;
    assert_false(cpns_server_conn_registered(h->s, 1)); /* unknown */
    assert_int_equal(cpns_server_conn_open(h->s, 1, "gw-1", h->now), 0);
    assert_false(cpns_server_conn_registered(h->s, 1)); /* open, not registered */
    assert_int_equal(cpns_server_conn_close(h->s, 1, h->now), 0);
    assert_int_equal(h_gw(h, 3, "gw-1", "pn-home", "gw-evil"), CPNS_RETURN_AUTH);
    assert_false(cpns_server_conn_registered(h->s, 3));
    /* Malformed: Return 4, still not registered. */
    assert_int_equal(h_recv_raw(h, 3,
                                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CPNSMessage "
                                "xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                                "TransactionID=\"7\"><PNGWRegistrationRequest PNGWID=\"gw-1\"/>"
                                "</CPNSMessage>"),
                     0);
    cpns_msg r;
    assert_int_equal(h_pop(h, NULL, &r), 1);
    assert_int_equal(r.Return, CPNS_RETURN_MALFORMED);
    assert_false(cpns_server_conn_registered(h->s, 3));
    assert_int_equal(h_gw(h, 4, "gw-4", "pn-home", "gw-4"), CPNS_RETURN_SUCCESS);
    assert_true(cpns_server_conn_registered(h->s, 4));
    assert_int_equal(cpns_server_conn_close(h->s, 4, h->now), 0);
    assert_false(cpns_server_conn_registered(h->s, 4));
    assert_false(cpns_server_conn_registered(NULL, 4));
}

/*
 * #10.15, a decision pinned (PROTOCOL.md 3.2, Return 9): an unauthenticated
 * client can tell provisioned PNEIDs from others, 9 against 8. Kept: the
 * contract's table says so, operators and an independent implementation use
 * 9 to diagnose unprovisioned devices, and PNEIDs are no secret (every frame
 * on the local link carries them in clear). What bounds the probing is the
 * rate limit, which answers 0 before the PNEID is even looked up.
 * Hostile input: registration probes for PNEIDs -> 9 for unknown, 8 for known
 * (with any Proof, any Time); over the per-connection rate, 0 for both.
 */
static void test_unknown_pneid_is_9_known_is_8_and_rate_limited(void **state)
{
    harness *h = *state;
    cpns_server_free(h->s);
    h->cfg.reg_rate_per_s = 1;
    h->cfg.reg_burst = 4;
    h_start(h);
    h_world(h, NULL, 0);
    h_pne_add(h, "pne-a");
    uint8_t junk[CPNS_KEY_LEN] = {0};
    cpns_msg m;
    /* Unknown: 9 whatever the Proof and Time; nothing is checked, no key exists to check with. */
    h_reg_msg(h, &m, "pne-x", junk, h->now / 1000);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_UNKNOWN);
    h_reg_msg(h, &m, "pne-x", junk, h->now / 1000 - 100000);
    m.Proof.len = 1; /* not even a Proof's length */
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_UNKNOWN);
    /* Known, without its EUK: 8. */
    h_reg_msg(h, &m, "pne-a", junk, h->now / 1000);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    h_reg_msg(h, &m, "pne-a", junk, h->now / 1000 - 100000);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_AUTH);
    /* The burst is spent: probes get 0 and learn nothing. */
    h_reg_msg(h, &m, "pne-x", junk, h->now / 1000);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_OTHER);
    h_reg_msg(h, &m, "pne-a", junk, h->now / 1000);
    assert_int_equal(h_register_msg(h, 1, &m, NULL), CPNS_RETURN_OTHER);
    cpns_server_stats st;
    cpns_server_get_stats(h->s, &st);
    assert_int_equal(st.registrations[9], 2);
    assert_int_equal(st.registrations[8], 2);
    assert_int_equal(st.registrations_limited, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gw_registration_cn_mismatch_is_8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pne_registration_success_returns_pnid, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pne_registration_unknown_is_9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pne_registration_bad_proof_is_8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pne_registration_stale_time_is_8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pne_registration_nonce_replay_is_8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_detached_then_attached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_attached_from_other_gw_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gw_reconnect_and_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_superseded_connection_is_closed_and_its_output_dropped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_superseded_connection_closed_before_pop_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_registered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_pneid_is_9_known_is_8_and_rate_limited, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
