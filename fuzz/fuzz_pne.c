/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the PNE engine's input (lib/pne.c, 7.8.6.1).
 *
 * Each run builds a registered PNE (FZ_PNE1, its fz_euk(), a memory
 * keystore, the scripted RNG): link up, and the harness answers its
 * PNERegistrationRequest with Return 1. Then the input's steps (fuzz_util.h):
 *   op & 0x80 clear: the frame is given to cpns_pne_recv() as from the GW;
 *   op & 0x80 set, op & 3 = 0: the clock jumps 11 s and the timer runs;
 *                           1: the link goes down and up (a new registration);
 *                           2: the keystore's next put() fails (Return 3 path);
 *                           3: nothing.
 * Besides "no crash, no sanitizer report" it abort()s when
 * - cpns_pne_recv() returns anything but 0 (no allocation can fail here);
 * - a frame the PNE sends does not decode, or is not a kind a PNE sends;
 * - a SGroupKeyDeliveryResponse with Return 1 is sent for a key that the
 *   keystore does not hold (the key is stored before the answer).
 */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_outputs(cpns_pne *pne, cpns_keystore *ks)
{
    cpns_out out;
    cpns_msg m;
    while (cpns_pne_pop(pne, &out) == 1) {
        FZ_CHECK(out.link == 0);
        fz_trace("pne", out.link, out.data, out.len);
        FZ_CHECK(cpns_msg_decode(out.data, out.len, &m) == 0);
        FZ_CHECK(m.kind == CPNS_MSG_PNE_REGISTRATION_REQUEST ||
                 m.kind == CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
        if (m.kind != CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE || m.Return != CPNS_RETURN_SUCCESS)
            continue;
        FZ_CHECK(strcmp(m.PNEID, FZ_PNE1) == 0 && strcmp(m.PNID, FZ_PNID) == 0);
        cpns_stored_keys keys;
        FZ_CHECK(ks->ops->get(ks, m.SGID, &keys) == 0);
        FZ_CHECK(keys.current.KeyVersion == m.KeyVersion ||
                 keys.previous.KeyVersion == m.KeyVersion);
        cpns_wipe(&keys, sizeof keys);
    }
}

/* Answers the PNE's pending PNERegistrationRequest with Return 1. */
static void accept_registration(cpns_pne *pne, int64_t now)
{
    static uint8_t buf[CPNS_FRAME_MAX];
    cpns_out out;
    cpns_msg req, resp;
    FZ_CHECK(cpns_pne_pop(pne, &out) == 1);
    FZ_CHECK(cpns_msg_decode(out.data, out.len, &req) == 0);
    FZ_CHECK(req.kind == CPNS_MSG_PNE_REGISTRATION_REQUEST);
    cpns_msg_init(&resp, CPNS_MSG_PNE_REGISTRATION_RESPONSE, req.TransactionID);
    FZ_CHECK(cpns_msg_set_id(&resp, CPNS_F_PNEID, FZ_PNE1) == 0);
    FZ_CHECK(cpns_msg_set_id(&resp, CPNS_F_PNID, FZ_PNID) == 0);
    resp.Return = CPNS_RETURN_SUCCESS;
    resp.present |= CPNS_F_RETURN;
    size_t len = fz_encode(&resp, buf);
    FZ_CHECK(cpns_pne_recv(pne, buf, len, now) == 0);
    FZ_CHECK(cpns_pne_get_state(pne) == CPNS_PNE_REGISTERED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t seed = FZ_SEED;
    int64_t now = FZ_T0;
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_keystore *ks = NULL;
    cpns_pne *pne = NULL;
    fz_euk(FZ_PNE1, EUK);
    FZ_CHECK(cpns_keystore_mem_new(&ks) == 0);
    cpns_pne_config cfg = {
        .PNEID = FZ_PNE1, .EUK = EUK, .keystore = ks, .rand = fz_rand, .rand_arg = &seed};
    FZ_CHECK(cpns_pne_new(&pne, &cfg) == 0);
    FZ_CHECK(cpns_pne_link_up(pne, now) == 0);
    accept_registration(pne, now);

    fz_reader r = {data, size};
    uint8_t op;
    while (fz_op(&r, &op)) {
        if (!(op & 0x80)) {
            const uint8_t *frame;
            size_t len;
            fz_frame(&r, &frame, &len);
            FZ_CHECK(cpns_pne_recv(pne, frame, len, now) == 0);
        } else if ((op & 3) == 0) {
            now += 11000;
            FZ_CHECK(cpns_pne_handle_expiry(pne, now) == 0);
        } else if ((op & 3) == 1) {
            FZ_CHECK(cpns_pne_link_down(pne, now) == 0);
            FZ_CHECK(cpns_pne_link_up(pne, now) == 0);
        } else if ((op & 3) == 2) {
            cpns_keystore_mem_fail_puts(ks, 1);
        }
        check_outputs(pne, ks);
    }
    cpns_pne_free(pne);
    cpns_keystore_free(ks);
    return 0;
}
