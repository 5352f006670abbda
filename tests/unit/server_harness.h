/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A hand-driven CPNS Server for the tests of lib/server*.c: a memory store,
 * the deterministic test_rand, a fake clock, and helpers that play the GW
 * and the PNEs by building real frames (cpns_msg_encode) with real Proofs
 * and KeyConfirmations from the crypto API, and decode what the server pops.
 * Header-only (static inline) so that each test program stays one file.
 */
#ifndef CPNS_SERVER_HARNESS_H
#define CPNS_SERVER_HARNESS_H

#include <stdio.h>
#include <string.h>

#include "internal.h" /* cpns_msg_delivery_response */
#include "support.h"

#define H_T0 1795000000000LL /* ms; the Time of the PROTOCOL.md test vector */

typedef struct harness {
    cpns_store *st;
    cpns_server *s;
    cpns_server_config cfg;
    uint64_t seed;
    int64_t now;
    uint64_t nonce_ctr;
    uint64_t tid_ctr;
    int64_t wall_offset; /* h_wall: the wall clock is now + this */
} harness;

/* A wall clock for cfg.wall_clock (arg: the harness), apart from the monotonic h->now. */
static inline int64_t h_wall(void *arg)
{
    const harness *h = arg;
    return h->now + h->wall_offset;
}

/* The server's wall clock: its wall_clock, else now_ms (server.h). */
static inline int64_t h_wall_now(const harness *h)
{
    return h->cfg.wall_clock ? h->cfg.wall_clock(h->cfg.wall_clock_arg) : h->now;
}

static inline void h_init(harness *h)
{
    memset(h, 0, sizeof *h);
    assert_int_equal(cpns_store_mem_new(&h->st), 0);
    h->seed = 1;
    h->now = H_T0;
    h->tid_ctr = 1000;
    h->cfg.store = h->st;
    h->cfg.rand = test_rand;
    h->cfg.rand_arg = &h->seed;
    h->cfg.log = test_log;
}

static inline void h_start(harness *h)
{
    assert_int_equal(cpns_server_new(&h->s, &h->cfg, h->now), 0);
}

static inline void h_setup(harness *h)
{
    h_init(h);
    h_start(h);
}

static inline void h_teardown(harness *h)
{
    cpns_server_free(h->s);
    cpns_store_free(h->st);
}

/* The server process dies: uncommitted writes are lost; a new one loads the store. */
static inline void h_crash_restart(harness *h)
{
    cpns_server_free(h->s);
    h->s = NULL;
    cpns_store_mem_crash(h->st);
    h_start(h);
}

/* A distinct, reproducible Entity User Key per PNEID. */
static inline void h_euk(const char *PNEID, uint8_t EUK[CPNS_KEY_LEN])
{
    uint8_t base[CPNS_KEY_LEN];
    for (size_t i = 0; i < sizeof base; i++)
        base[i] = (uint8_t)i;
    assert_int_equal(cpns_kdf(base, PNEID, EUK), 0);
}

static inline void h_pne_add(harness *h, const char *PNEID)
{
    uint8_t EUK[CPNS_KEY_LEN];
    h_euk(PNEID, EUK);
    assert_int_equal(cpns_server_pne_add(h->s, PNEID, EUK), 0);
}

static inline int h_recv(harness *h, uint64_t conn, const cpns_msg *m)
{
    uint8_t buf[4096];
    size_t len;
    assert_int_equal(cpns_msg_encode(m, buf, sizeof buf, &len), 0);
    return cpns_server_recv(h->s, conn, buf, len, h->now);
}

static inline int h_recv_raw(harness *h, uint64_t conn, const char *xml)
{
    return cpns_server_recv(h->s, conn, (const uint8_t *)xml, strlen(xml), h->now);
}

/*
 * Pops one frame and decodes it: 1, 0 (nothing to send) or the pop error.
 * Like the daemon, it commits first when the server holds answers for a
 * commit (registration successes, #10.8); h_pop_raw does not.
 */
static inline int h_pop_raw(harness *h, uint64_t *link, cpns_msg *m)
{
    cpns_out out;
    int rv = cpns_server_pop(h->s, &out);
    if (rv != 1)
        return rv;
    assert_int_equal(cpns_msg_decode(out.data, out.len, m), 0);
    if (link)
        *link = out.link;
    return 1;
}

static inline int h_pop(harness *h, uint64_t *link, cpns_msg *m)
{
    if (cpns_server_commit_wanted(h->s)) {
        int rv = cpns_server_flush(h->s);
        if (rv)
            return rv < 0 ? rv : CPNS_ERR_STORE; /* never 1, which means a frame */
    }
    return h_pop_raw(h, link, m);
}

static inline uint32_t h_gw(harness *h, uint64_t conn, const char *PNGWID, const char *PNID,
                            const char *peer_cn)
{
    assert_int_equal(cpns_server_conn_open(h->s, conn, peer_cn, h->now), 0);
    cpns_msg m, r;
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, h->tid_ctr++);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNGWID, PNGWID), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, PNID), 0);
    assert_int_equal(h_recv(h, conn, &m), 0);
    uint64_t link = 0;
    assert_int_equal(h_pop(h, &link, &r), 1);
    assert_int_equal(r.kind, CPNS_MSG_PNGW_REGISTRATION_RESPONSE);
    assert_int_equal(link, conn);
    assert_int_equal(r.TransactionID, m.TransactionID);
    return r.Return;
}

/* A PNERegistrationRequest with the given Nonce and a real Proof made with EUK. */
static inline void h_reg_msg_nonce(harness *h, cpns_msg *m, const char *PNEID,
                                   const uint8_t EUK[CPNS_KEY_LEN], int64_t Time,
                                   const uint8_t Nonce[CPNS_NONCE_LEN])
{
    cpns_msg_init(m, CPNS_MSG_PNE_REGISTRATION_REQUEST, h->tid_ctr++);
    assert_int_equal(cpns_msg_set_id(m, CPNS_F_PNEID, PNEID), 0);
    assert_int_equal(cpns_msg_set_blob(m, CPNS_F_NONCE, Nonce, CPNS_NONCE_LEN), 0);
    m->Time = (uint64_t)Time;
    m->present |= CPNS_F_TIME;
    uint8_t K_auth[CPNS_KEY_LEN], Proof[CPNS_PROOF_LEN];
    char nonce_str[64], time_str[32];
    assert_int_equal(cpns_kdf(EUK, CPNS_INFO_AUTH, K_auth), 0);
    assert_true(cpns_b64_encode(Nonce, CPNS_NONCE_LEN, nonce_str, sizeof nonce_str) > 0);
    snprintf(time_str, sizeof time_str, "%lld", (long long)Time);
    assert_int_equal(cpns_proof(K_auth, PNEID, nonce_str, time_str, Proof), 0);
    assert_int_equal(cpns_msg_set_blob(m, CPNS_F_PROOF, Proof, sizeof Proof), 0);
}

/* The same with a fresh Nonce. */
static inline void h_reg_msg(harness *h, cpns_msg *m, const char *PNEID,
                             const uint8_t EUK[CPNS_KEY_LEN], int64_t Time)
{
    uint8_t Nonce[CPNS_NONCE_LEN] = {0};
    h->nonce_ctr++;
    memcpy(Nonce, &h->nonce_ctr, sizeof h->nonce_ctr);
    h_reg_msg_nonce(h, m, PNEID, EUK, Time, Nonce);
}

/* A registration of PNEID with its h_euk key, dated h->now, not sent. */
static inline void h_reg_msg_now(harness *h, cpns_msg *m, const char *PNEID)
{
    uint8_t EUK[CPNS_KEY_LEN];
    h_euk(PNEID, EUK);
    h_reg_msg(h, m, PNEID, EUK, h->now / 1000);
}

/* Sends a registration and returns the Return of its response (PNID copied out when asked). */
static inline uint32_t h_register_msg(harness *h, uint64_t conn, const cpns_msg *req,
                                      char *PNID_out)
{
    assert_int_equal(h_recv(h, conn, req), 0);
    cpns_msg r;
    uint64_t link = 0;
    assert_int_equal(h_pop(h, &link, &r), 1);
    assert_int_equal(link, conn);
    assert_int_equal(r.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    assert_int_equal(r.TransactionID, req->TransactionID);
    assert_string_equal(r.PNEID, req->PNEID);
    if (PNID_out)
        strcpy(PNID_out, r.PNID);
    return r.Return;
}

static inline uint32_t h_register(harness *h, uint64_t conn, const char *PNEID)
{
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_msg m;
    h_euk(PNEID, EUK);
    h_reg_msg(h, &m, PNEID, EUK, h_wall_now(h) / 1000);
    return h_register_msg(h, conn, &m, NULL);
}

static inline void h_status(harness *h, uint64_t conn, const char *PNEID, cpns_pne_status st)
{
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_PNE_STATUS_NOTIFICATION, h->tid_ctr++);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, PNEID), 0);
    m.Status = st;
    m.present |= CPNS_F_STATUS;
    assert_int_equal(h_recv(h, conn, &m), 0);
}

/* Unwraps a request's EncryptedGroupKey with EUK; asserts that it opens. */
static inline void h_unwrap_with(const cpns_msg *req, const uint8_t EUK[CPNS_KEY_LEN],
                                 uint8_t GK[CPNS_KEY_LEN])
{
    uint8_t K_wrap[CPNS_KEY_LEN];
    assert_int_equal(req->kind, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST);
    assert_int_equal(cpns_kdf(EUK, CPNS_INFO_WRAP, K_wrap), 0);
    assert_int_equal(cpns_egk_unwrap(K_wrap, req->SGID, req->PNEID, req->KeyVersion,
                                     req->EncryptedGroupKey.data, req->EncryptedGroupKey.len, GK),
                     0);
}

static inline void h_unwrap(const cpns_msg *req, uint8_t GK[CPNS_KEY_LEN])
{
    uint8_t EUK[CPNS_KEY_LEN];
    h_euk(req->PNEID, EUK);
    h_unwrap_with(req, EUK, GK);
}

/*
 * Answers a request as its PNE would: Return, PNID, the echoes, and with
 * Return 1 a KeyConfirmation computed from GK (NULL: a wrong one).
 */
static inline int h_answer(harness *h, uint64_t conn, const cpns_msg *req, uint32_t Return,
                           const uint8_t *GK, const char *PNID)
{
    cpns_msg r;
    assert_int_equal(cpns_msg_delivery_response(&r, req, Return, PNID, req->PNEID), 0);
    if (Return == CPNS_RETURN_SUCCESS) {
        uint8_t KC[CPNS_KC_LEN] = {0};
        if (GK)
            assert_int_equal(cpns_key_confirmation(GK, req->SGID, req->PNEID, req->KeyVersion, KC),
                             0);
        assert_int_equal(cpns_msg_set_blob(&r, CPNS_F_KC, KC, sizeof KC), 0);
    }
    return h_recv(h, conn, &r);
}

/* Answers a request with Return 1 and the right KeyConfirmation. */
static inline void h_confirm(harness *h, uint64_t conn, const cpns_msg *req)
{
    uint8_t GK[CPNS_KEY_LEN];
    h_unwrap(req, GK);
    assert_int_equal(h_answer(h, conn, req, CPNS_RETURN_SUCCESS, GK, "pn-home"), 0);
}

typedef struct h_find {
    const char *PNEID;
    cpns_member_info info;
    int found;
} h_find;

static inline int h_find_visit(void *arg, const cpns_member_info *m)
{
    h_find *f = arg;
    if (strcmp(m->PNEID, f->PNEID) == 0) {
        f->info = *m;
        f->found = 1;
    }
    return 0;
}

static inline cpns_member_info h_member(harness *h, const char *SGID, const char *PNEID)
{
    h_find f = {PNEID, {0}, 0};
    assert_int_equal(cpns_server_sg_members(h->s, SGID, h_find_visit, &f), 0);
    assert_true(f.found);
    return f.info;
}

static inline cpns_sg_info h_sg(harness *h, const char *SGID)
{
    cpns_sg_info info;
    assert_int_equal(cpns_server_sg_get(h->s, SGID, &info), 0);
    return info;
}

/* A world with one GW (conn 1, "gw-1", PNID "pn-home") and registered PNEs. */
static inline void h_world(harness *h, const char *const *PNEIDs, size_t n)
{
    assert_int_equal(h_gw(h, 1, "gw-1", "pn-home", NULL), CPNS_RETURN_SUCCESS);
    for (size_t i = 0; i < n; i++) {
        h_pne_add(h, PNEIDs[i]);
        assert_int_equal(h_register(h, 1, PNEIDs[i]), CPNS_RETURN_SUCCESS);
    }
}

#endif
