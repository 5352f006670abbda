/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the PN GW engine's input from either side (lib/gw.c,
 * 7.8.6.2).
 *
 * Each run builds an online GW (FZ_PNGWID serving FZ_PNID, max_pnes 2, the
 * scripted RNG: the harness answers its PNGWRegistrationRequest with
 * Return 1) with PNE links 1, 2 and 3 open. Then the input's steps
 * (fuzz_util.h), op & 7 picking the side:
 *   0: the frame comes from the server;     1..3: from PNE link 1..3;
 *   4: link 1 + (op >> 3) % 3 closes;       5: it (re)opens;
 *   6: the server connection drops;
 *   7: it comes back; with op & 8 the harness accepts the new registration.
 * Before each step the clock moves on by (op >> 5) * 500 ms, so that the
 * per-link rate limits refill and registrations in flight time out; after it,
 * the links the engine hands out for abuse (cpns_gw_pop_close) are closed.
 * Besides "no crash, no sanitizer report" it abort()s when
 * - a call returns anything but 0 or the documented NOT_FOUND / EXISTS;
 * - a frame goes to a link that is not open;
 * - a frame the GW sends does not peek (forwarded bytes), or, when the GW
 *   wrote it itself, does not decode;
 * - a SGroupKeyDeliveryRequest goes to a link that never sent a
 *   PNERegistrationRequest for its PNEID (7.8.6.2-1 routes by PNEID).
 */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NLINKS 3
#define NCLAIMS 8

typedef struct fz_gw {
    cpns_gw *gw;
    int open[NLINKS + 1];
    /* PNEIDs each link has asked to register since it opened */
    char claims[NLINKS + 1][NCLAIMS][CPNS_ID_MAX + 1];
    size_t nclaims[NLINKS + 1];
    const uint8_t *in;
    size_t in_len;
} fz_gw;

static int claimed(const fz_gw *f, uint64_t link, const char *PNEID)
{
    if (f->nclaims[link] > NCLAIMS)
        return 1; /* too many to track: no verdict */
    for (size_t i = 0; i < f->nclaims[link]; i++)
        if (strcmp(f->claims[link][i], PNEID) == 0)
            return 1;
    return 0;
}

static void note_claim(fz_gw *f, uint64_t link, const uint8_t *frame, size_t len)
{
    cpns_msg m;
    if (cpns_msg_peek(frame, len, &m) != 0 || m.kind != CPNS_MSG_PNE_REGISTRATION_REQUEST)
        return;
    if (f->nclaims[link] < NCLAIMS)
        strcpy(f->claims[link][f->nclaims[link]], m.PNEID);
    if (f->nclaims[link] <= NCLAIMS)
        f->nclaims[link]++;
}

/* Pops every output and checks it; answers a PNGWRegistrationRequest with Return 1 when asked. */
static void drain(fz_gw *f, int accept, int64_t now)
{
    static uint8_t buf[CPNS_FRAME_MAX];
    uint64_t accept_tid = 0;
    cpns_out out;
    cpns_msg m;
    while (cpns_gw_pop(f->gw, &out) == 1) {
        FZ_CHECK(out.link == CPNS_GW_LINK_SERVER || (out.link <= NLINKS && f->open[out.link]));
        FZ_CHECK(cpns_msg_peek(out.data, out.len, &m) == 0);
        fz_trace("gw", out.link, out.data, out.len);
        int forwarded = out.len == f->in_len && memcmp(out.data, f->in, out.len) == 0;
        if (!forwarded)
            FZ_CHECK(cpns_msg_decode(out.data, out.len, &m) == 0);
        if (out.link != CPNS_GW_LINK_SERVER) {
            FZ_CHECK(m.kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST ||
                     m.kind == CPNS_MSG_PNE_REGISTRATION_RESPONSE);
            if (m.kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST)
                FZ_CHECK(claimed(f, out.link, m.PNEID));
        } else if (m.kind == CPNS_MSG_PNGW_REGISTRATION_REQUEST) {
            FZ_CHECK(strcmp(m.PNGWID, FZ_PNGWID) == 0 && strcmp(m.PNID, FZ_PNID) == 0);
            accept_tid = m.TransactionID;
        }
    }
    if (accept && accept_tid) {
        cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, accept_tid);
        m.Return = CPNS_RETURN_SUCCESS;
        m.present |= CPNS_F_RETURN;
        size_t len = fz_encode(&m, buf);
        f->in = NULL;
        FZ_CHECK(cpns_gw_recv_server(f->gw, buf, len, now) == 0);
        FZ_CHECK(cpns_gw_get_state(f->gw) == CPNS_GW_ONLINE);
        drain(f, 0, now);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz_gw f;
    uint64_t seed = FZ_SEED;
    int64_t now = FZ_T0;
    memset(&f, 0, sizeof f);
    cpns_gw_config cfg = {
        .PNGWID = FZ_PNGWID, .PNID = FZ_PNID, .max_pnes = 2, .rand = fz_rand, .rand_arg = &seed};
    FZ_CHECK(cpns_gw_new(&f.gw, &cfg) == 0);
    FZ_CHECK(cpns_gw_server_up(f.gw, now) == 0);
    drain(&f, 1, now);
    for (uint64_t l = 1; l <= NLINKS; l++) {
        FZ_CHECK(cpns_gw_link_open(f.gw, l, now) == 0);
        f.open[l] = 1;
    }

    fz_reader r = {data, size};
    uint8_t op;
    while (fz_op(&r, &op)) {
        unsigned side = op & 7;
        uint64_t link = 1 + (uint64_t)((op >> 3) % NLINKS);
        const uint8_t *frame;
        size_t len;
        int rv = 0, accept = 0;
        now += (int64_t)(op >> 5) * 500;
        f.in = NULL;
        f.in_len = 0;
        if (side <= 3) {
            fz_frame(&r, &frame, &len);
            f.in = frame;
            f.in_len = len;
            if (side == 0) {
                rv = cpns_gw_recv_server(f.gw, frame, len, now);
            } else {
                link = side;
                if (f.open[link])
                    note_claim(&f, link, frame, len);
                rv = cpns_gw_recv_link(f.gw, link, frame, len, now);
                FZ_CHECK(rv == 0 || (rv == CPNS_ERR_NOT_FOUND && !f.open[link]));
            }
        } else if (side == 4) {
            rv = cpns_gw_link_close(f.gw, link, now);
            FZ_CHECK(rv == 0 || (rv == CPNS_ERR_NOT_FOUND && !f.open[link]));
            f.open[link] = 0;
            f.nclaims[link] = 0;
        } else if (side == 5) {
            rv = cpns_gw_link_open(f.gw, link, now);
            FZ_CHECK(rv == 0 || (rv == CPNS_ERR_EXISTS && f.open[link]));
            f.open[link] = 1;
        } else if (side == 6) {
            rv = cpns_gw_server_down(f.gw, now);
        } else {
            rv = cpns_gw_server_up(f.gw, now);
            accept = (op & 8) != 0;
        }
        FZ_CHECK(rv == 0 || rv == CPNS_ERR_NOT_FOUND || rv == CPNS_ERR_EXISTS);
        drain(&f, accept, now);
        uint64_t abusive;
        while (cpns_gw_pop_close(f.gw, &abusive) == 1) {
            FZ_CHECK(abusive >= 1 && abusive <= NLINKS && f.open[abusive]);
            FZ_CHECK(cpns_gw_link_close(f.gw, abusive, now) == 0);
            f.open[abusive] = 0;
            f.nclaims[abusive] = 0;
            drain(&f, 0, now);
        }
    }
    cpns_gw_free(f.gw);
    return 0;
}
