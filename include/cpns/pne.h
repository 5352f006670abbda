/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PNE engine (7.8.6.1), sans-I/O.
 *
 * It registers with the server through its GW (proving it holds its EUK),
 * learns the PNID of the PN it is in, and answers SGroupKeyDeliveryRequest:
 * decrypt with the EUK, store in secure storage (the keystore ops), answer
 * Return, PNID, the echo attributes and KeyConfirmation.
 */
#ifndef CPNS_PNE_H
#define CPNS_PNE_H

#include "common.h"
#include "crypto.h"
#include "keystore.h"
#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpns_pne cpns_pne;

typedef struct cpns_pne_config {
    const char *PNEID;       /* required; copied */
    const uint8_t *EUK;      /* required, CPNS_KEY_LEN bytes; copied (wiped on del) */
    cpns_keystore *keystore; /* required; not owned */
    cpns_rand_fn rand;       /* NULL: OS CSPRNG */
    void *rand_arg;
    cpns_log_fn log;
    void *log_arg;
    cpns_clock_fn wall_clock; /* the registration Time; NULL: now_ms is wall time (common.h) */
    void *wall_clock_arg;
    int64_t register_timeout_ms; /* resend the registration after this; 0: 10,000 */
    /*
     * Not owned; NULL: the engine creates its own on the first cpns_pne_recv()
     * and frees it in cpns_pne_del(). Engines run from one thread (a load
     * generator) may share one; it must outlive them.
     */
    cpns_msg_decoder *decoder;
    /*
     * The AES-GCM context that decrypts EncryptedGroupKey, on the same terms:
     * not owned; NULL: the engine creates its own on the first delivery
     * request addressed to it and frees it in cpns_pne_del(). Engines run
     * from one thread may share one; it must outlive them.
     */
    cpns_gcm *gcm;
    /* The SHA-256 context of its KeyConfirmations, on the same terms as gcm. */
    cpns_sha256 *sha256;
} cpns_pne_config;

typedef enum cpns_pne_state {
    CPNS_PNE_OFFLINE = 0,     /* no link to the GW */
    CPNS_PNE_REGISTERING = 1, /* PNERegistrationRequest sent */
    CPNS_PNE_REGISTERED = 2,  /* Return 1: PNID known */
    CPNS_PNE_REFUSED = 3,     /* the server answered 8 or 9 */
} cpns_pne_state;

/* 0, CPNS_ERR_INVALID_ARG, CPNS_ERR_NOMEM. */
CPNS_API int cpns_pne_new(cpns_pne **out, const cpns_pne_config *cfg);
CPNS_API void cpns_pne_del(cpns_pne *pne);

CPNS_API cpns_pne_state cpns_pne_get_state(const cpns_pne *pne);
/* The PNID learned from the last successful registration, or NULL. */
CPNS_API const char *cpns_pne_pnid(const cpns_pne *pne);
/* The Return of the last PNERegistrationResponse, -1 before one arrived. */
CPNS_API int cpns_pne_last_return(const cpns_pne *pne);

/*
 * The link to the GW is up: queues a PNERegistrationRequest (fresh Nonce, Time
 * from the wall clock). now_ms, here and below, is a monotonic clock that
 * only times the registration retry.
 */
CPNS_API int cpns_pne_link_up(cpns_pne *pne, int64_t now_ms);
/* The link is gone: queued frames are dropped; the PNID is kept for the next registration. */
CPNS_API int cpns_pne_link_down(cpns_pne *pne, int64_t now_ms);

/*
 * A frame from the GW: PNERegistrationResponse or SGroupKeyDeliveryRequest
 * (answered per PROTOCOL.md 5.1, Return 4 for a malformed request whose
 * TransactionID is readable). Anything else is dropped.
 * 0, CPNS_ERR_NOMEM (also when the engine's own decoder or GCM context cannot
 * be created: nothing is answered or stored, the same frame may be given
 * again). Keystore failures are answered Return 3, not returned.
 */
CPNS_API int cpns_pne_recv(cpns_pne *pne, const uint8_t *data, size_t len, int64_t now_ms);

/* Next frame to send: 1 with *out, 0 when none. */
CPNS_API int cpns_pne_pop(cpns_pne *pne, cpns_out *out);

/* Registration retry timer. */
CPNS_API int64_t cpns_pne_get_expiry(const cpns_pne *pne);
CPNS_API int cpns_pne_handle_expiry(cpns_pne *pne, int64_t now_ms);

#ifdef __cplusplus
}
#endif
#endif
