/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The world of the server harness (fuzz_server.c), shared with the seed
 * generator (gen_seeds.c) so that the generator can answer the very
 * SGroupKeyDeliveryRequests the harness's server sends: the run is a pure
 * function of the input (scripted RNG, memory store, fixed clock).
 *
 * Start: a server on a memory store; PNEs FZ_PNE1..3 provisioned with their
 * fz_euk(); GW connections 1 and 2 open; the harness registers GW FZ_PNGWID
 * on connection 1, then FZ_PNE1 and FZ_PNE2 through it, then creates FZ_SGID
 * with the three PNEs (FZ_PNE3 stays pending until it registers).
 * Steps (fuzz_util.h), op & 3:
 *   0, 1: the frame arrives on connection 1 or 2;
 *   2:    the clock moves ((op >> 2) + 1) s and the timer runs;
 *   3:    (op >> 2) % 4 = 0: rekey FZ_SGID; 1: connection 2 closes and
 *         reopens; 2: FZ_PNE2 leaves FZ_SGID, or joins it again;
 *         3: the server crashes (uncommitted writes lost) and restarts,
 *            and the harness registers the GW on connection 1 again.
 * After each step every output is handed to on_out, and the server flushes.
 */
#ifndef CPNS_FUZZ_SERVER_WORLD_H
#define CPNS_FUZZ_SERVER_WORLD_H

#include "fuzz_util.h"

typedef void (*fz_out_fn)(void *arg, const cpns_out *out);

typedef struct fz_server {
    cpns_store *st;
    cpns_server *s;
    uint64_t seed;
    int64_t now;
    int pne2_member;
    fz_out_fn on_out;
    void *arg;
    uint64_t tid;
} fz_server;

static inline void fz_server_drain(fz_server *w)
{
    cpns_out out;
    int rv;
    while ((rv = cpns_server_pop(w->s, &out)) == 1) {
        FZ_CHECK(out.link == 1 || out.link == 2);
        if (w->on_out)
            w->on_out(w->arg, &out);
    }
    FZ_CHECK(rv == 0);
    /* A flush releases the registration answers held for it (server.h): send them too. */
    int wanted = cpns_server_commit_wanted(w->s);
    FZ_CHECK(cpns_server_flush(w->s) == 0);
    if (wanted)
        fz_server_drain(w);
    /* A frame on the other connection may take the PNGWID over; it stays open here. */
    uint64_t conn;
    while (cpns_server_pop_close(w->s, &conn) == 1)
        FZ_CHECK(conn == 1 || conn == 2);
}

static inline void fz_server_recv_msg(fz_server *w, uint64_t conn, const cpns_msg *m)
{
    static uint8_t buf[CPNS_FRAME_MAX];
    size_t len = fz_encode(m, buf);
    FZ_CHECK(cpns_server_recv(w->s, conn, buf, len, w->now) == 0);
}

/* (Re)starts the server on w->st, opens the connections and registers the GW. */
static inline void fz_server_boot(fz_server *w)
{
    cpns_server_config cfg = {.store = w->st, .rand = fz_rand, .rand_arg = &w->seed};
    cpns_msg m;
    FZ_CHECK(cpns_server_new(&w->s, &cfg, w->now) == 0);
    FZ_CHECK(cpns_server_conn_open(w->s, 1, NULL, w->now) == 0);
    FZ_CHECK(cpns_server_conn_open(w->s, 2, NULL, w->now) == 0);
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, w->tid++);
    FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNGWID, FZ_PNGWID) == 0);
    FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNID, FZ_PNID) == 0);
    fz_server_recv_msg(w, 1, &m);
}

static inline void fz_server_start(fz_server *w, fz_out_fn on_out, void *arg)
{
    static const char *const members[] = {FZ_PNE1, FZ_PNE2, FZ_PNE3};
    memset(w, 0, sizeof *w);
    w->seed = FZ_SEED;
    w->now = FZ_T0;
    w->tid = 1;
    w->on_out = on_out;
    w->arg = arg;
    w->pne2_member = 1;
    FZ_CHECK(cpns_store_mem_new(&w->st) == 0);
    cpns_server_config cfg = {.store = w->st, .rand = fz_rand, .rand_arg = &w->seed};
    FZ_CHECK(cpns_server_new(&w->s, &cfg, w->now) == 0);
    for (size_t i = 0; i < 3; i++) {
        uint8_t EUK[CPNS_KEY_LEN];
        fz_euk(members[i], EUK);
        FZ_CHECK(cpns_server_pne_add(w->s, members[i], EUK) == 0);
    }
    FZ_CHECK(cpns_server_flush(w->s) == 0);
    cpns_server_free(w->s);
    fz_server_boot(w);
    for (size_t i = 0; i < 2; i++) {
        uint8_t Nonce[CPNS_NONCE_LEN] = {(uint8_t)(i + 1)};
        cpns_msg m;
        fz_pne_registration(&m, w->tid++, members[i], Nonce, (uint64_t)(w->now / 1000));
        fz_server_recv_msg(w, 1, &m);
    }
    FZ_CHECK(cpns_server_sg_create(w->s, FZ_SGID, members, 3, w->now) == 0);
    fz_server_drain(w);
}

static inline void fz_server_check(const fz_server *w)
{
    cpns_sg_info sg;
    FZ_CHECK(cpns_server_sg_get(w->s, FZ_SGID, &sg) == 0);
    FZ_CHECK(sg.n_members == (size_t)(2 + w->pne2_member));
    FZ_CHECK(sg.n_pending + sg.n_sent + sg.n_delivered + sg.n_failed == sg.n_members);
    FZ_CHECK(sg.complete == (sg.n_delivered == sg.n_members));
}

static inline void fz_server_step(fz_server *w, uint8_t op, const uint8_t *frame, size_t len)
{
    switch (op & 3) {
    case 0:
    case 1:
        FZ_CHECK(cpns_server_recv(w->s, 1 + (op & 1), frame, len, w->now) == 0);
        break;
    case 2:
        w->now += ((op >> 2) + 1) * 1000;
        FZ_CHECK(cpns_server_handle_expiry(w->s, w->now) == 0);
        break;
    default:
        switch ((op >> 2) % 4) {
        case 0:
            FZ_CHECK(cpns_server_sg_rekey(w->s, FZ_SGID, w->now) == 0);
            break;
        case 1:
            FZ_CHECK(cpns_server_conn_close(w->s, 2, w->now) == 0);
            FZ_CHECK(cpns_server_conn_open(w->s, 2, NULL, w->now) == 0);
            break;
        case 2: {
            const char *pne2[] = {FZ_PNE2};
            if (w->pne2_member)
                FZ_CHECK(cpns_server_sg_update(w->s, FZ_SGID, NULL, 0, pne2, 1, w->now) == 0);
            else
                FZ_CHECK(cpns_server_sg_update(w->s, FZ_SGID, pne2, 1, NULL, 0, w->now) == 0);
            w->pne2_member = !w->pne2_member;
            break;
        }
        default:
            /* a crash: what was flushed survives (every step ends with a flush) */
            cpns_server_free(w->s);
            cpns_store_mem_crash(w->st);
            fz_server_boot(w);
            break;
        }
        break;
    }
    fz_server_drain(w);
    fz_server_check(w);
}

/* True when op takes a frame from the input. */
static inline int fz_server_op_has_frame(uint8_t op)
{
    return (op & 3) <= 1;
}

static inline void fz_server_stop(fz_server *w)
{
    cpns_server_free(w->s);
    cpns_store_free(w->st);
}

#endif
