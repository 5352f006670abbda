/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the engine harnesses (fuzz_pne.c, fuzz_gw.c, fuzz_server.c,
 * fuzz_keystore.c) and their seed generator (gen_seeds.c) share: the fixed
 * identities and keys of the little world each harness builds, a scripted
 * RNG so that a run is a pure function of its input, and the reader that cuts
 * an input into steps. The generator writes inputs in the same format, so a
 * change here must be followed by `gen_seeds` (see fuzz/CMakeLists.txt).
 *
 * Input format of the engine harnesses: a sequence of steps, each
 *   1 byte  op (its meaning is the harness's)
 *   2 bytes big-endian length L, then L bytes of frame payload (when the op
 *           takes a frame; a length past the end takes what is left)
 * Header-only (static functions) so that each harness stays one file.
 */
#ifndef CPNS_FUZZ_UTIL_H
#define CPNS_FUZZ_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpns/cpns.h"
#include "cpns/testing.h"

#define FZ_T0 1795000000000LL /* ms: the harnesses' clock starts here */
#define FZ_PNGWID "gw-1"
#define FZ_PNID "pn-home"
#define FZ_SGID "sg-1"
#define FZ_PNE1 "pne-1"
#define FZ_PNE2 "pne-2"
#define FZ_PNE3 "pne-3"
#define FZ_SEED 1u

#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/*
 * FUZZ_TRACE=1 in the environment makes the harnesses print every frame they
 * get back (kind, routing fields, Return), to see what a corpus input does:
 *   FUZZ_TRACE=1 build/tests/replay_pne fuzz/corpus/pne
 */
static inline int fz_tracing(void)
{
    static int on = -1;
    if (on < 0)
        on = getenv("FUZZ_TRACE") != NULL;
    return on;
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static inline void
fz_trace_text(const char *fmt, ...)
{
    va_list ap;
    if (!fz_tracing())
        return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static inline void fz_trace(const char *who, uint64_t link, const uint8_t *data, size_t len)
{
    cpns_msg m;
    if (!fz_tracing())
        return;
    int rv = cpns_msg_peek(data, len, &m);
    fprintf(stderr, "%s -> %llu: %s tid=%llu SGID=%s PNEID=%s KeyVersion=%u Return=%d\n", who,
            (unsigned long long)link, rv == 0 ? cpns_msg_kind_name(m.kind) : "(unreadable)",
            (unsigned long long)m.TransactionID, m.SGID, m.PNEID, (unsigned)m.KeyVersion,
            (m.present & CPNS_F_RETURN) ? (int)m.Return : -1);
}

/* splitmix64 over *(uint64_t *)arg: deterministic, and no allocation, so allocation tests stay
 * exact */
static inline int fz_rand(void *arg, uint8_t *buf, size_t len)
{
    uint64_t *s = arg, z = 0;
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0) {
            *s += 0x9e3779b97f4a7c15ull;
            z = *s;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            z ^= z >> 31;
        }
        buf[i] = (uint8_t)(z >> (8 * (i % 8)));
    }
    return 0;
}

/* A distinct, fixed Entity User Key per PNEID (the generator and the harness agree). */
static inline void fz_euk(const char *PNEID, uint8_t EUK[CPNS_KEY_LEN])
{
    memset(EUK, 0x5a, CPNS_KEY_LEN);
    for (size_t i = 0; PNEID[i] && i < CPNS_KEY_LEN; i++)
        EUK[i] ^= (uint8_t)PNEID[i];
}

typedef struct fz_reader {
    const uint8_t *p;
    size_t n;
} fz_reader;

/* The next op byte: 1, or 0 at the end of the input. */
static inline int fz_op(fz_reader *r, uint8_t *op)
{
    if (r->n == 0)
        return 0;
    *op = r->p[0];
    r->p++;
    r->n--;
    return 1;
}

/* The next length-prefixed frame (possibly empty or cut short by the end of the input). */
static inline void fz_frame(fz_reader *r, const uint8_t **frame, size_t *len)
{
    size_t want = 0;
    if (r->n >= 2) {
        want = (size_t)r->p[0] << 8 | r->p[1];
        r->p += 2;
        r->n -= 2;
    } else {
        r->p += r->n;
        r->n = 0;
    }
    if (want > r->n)
        want = r->n;
    *frame = r->p;
    *len = want;
    r->p += want;
    r->n -= want;
}

/* Encodes m into buf (CPNS_FRAME_MAX bytes); aborts if the harness built an invalid message. */
static inline size_t fz_encode(const cpns_msg *m, uint8_t *buf)
{
    size_t len = 0;
    FZ_CHECK(cpns_msg_encode(m, buf, CPNS_FRAME_MAX, &len) == 0);
    return len;
}

/* A PNERegistrationRequest with a real Proof made with PNEID's fz_euk(). */
static inline void fz_pne_registration(cpns_msg *m, uint64_t tid, const char *PNEID,
                                       const uint8_t Nonce[CPNS_NONCE_LEN], uint64_t Time)
{
    uint8_t EUK[CPNS_KEY_LEN], K_auth[CPNS_KEY_LEN], Proof[CPNS_PROOF_LEN];
    char Nonce_b64[CPNS_B64_LEN(CPNS_NONCE_LEN) + 1], Time_str[24];
    fz_euk(PNEID, EUK);
    FZ_CHECK(cpns_kdf(EUK, CPNS_INFO_AUTH, K_auth) == 0);
    FZ_CHECK(cpns_b64_encode(Nonce, CPNS_NONCE_LEN, Nonce_b64, sizeof Nonce_b64) > 0);
    snprintf(Time_str, sizeof Time_str, "%llu", (unsigned long long)Time);
    FZ_CHECK(cpns_proof(K_auth, PNEID, Nonce_b64, Time_str, Proof) == 0);
    cpns_msg_init(m, CPNS_MSG_PNE_REGISTRATION_REQUEST, tid);
    FZ_CHECK(cpns_msg_set_id(m, CPNS_F_PNEID, PNEID) == 0);
    FZ_CHECK(cpns_msg_set_blob(m, CPNS_F_NONCE, Nonce, CPNS_NONCE_LEN) == 0);
    FZ_CHECK(cpns_msg_set_blob(m, CPNS_F_PROOF, Proof, sizeof Proof) == 0);
    m->Time = Time;
    m->present |= CPNS_F_TIME;
}

#endif
