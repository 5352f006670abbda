/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the CPNS Server engine's input (lib/server*.c,
 * 7.8.6.3): GW registration first (by the harness), then responses,
 * registrations and whatever else the input holds, interleaved with timer
 * runs, rekeys, membership changes and crash-restarts; the world and the step
 * format are in fuzz_server_world.h (shared with the seed generator, whose
 * seeds carry real KeyConfirmations and real registration Proofs).
 * Besides "no crash, no sanitizer report" it abort()s when
 * - cpns_server_recv(), the timer, pop or flush fail (a memory store and the
 *   default allocator cannot fail: every error would be a bug);
 * - a frame the server sends does not decode, goes to a connection that is
 *   not open, or is a kind the server does not send;
 * - the SG's member counts stop adding up.
 */
#include "fuzz_server_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_out(void *arg, const cpns_out *out)
{
    cpns_msg m;
    (void)arg;
    fz_trace("server", out->link, out->data, out->len);
    FZ_CHECK(cpns_msg_decode(out->data, out->len, &m) == 0);
    FZ_CHECK(m.kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST ||
             m.kind == CPNS_MSG_PNGW_REGISTRATION_RESPONSE ||
             m.kind == CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    if (m.kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST)
        FZ_CHECK(strcmp(m.SGID, FZ_SGID) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz_server w;
    fz_server_start(&w, check_out, NULL);
    fz_reader r = {data, size};
    uint8_t op;
    while (fz_op(&r, &op)) {
        const uint8_t *frame = NULL;
        size_t len = 0;
        if (fz_server_op_has_frame(op))
            fz_frame(&r, &frame, &len);
        fz_server_step(&w, op, frame, len);
    }
    fz_server_stop(&w);
    return 0;
}
