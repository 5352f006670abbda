/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief The PNE engine (7.8.6.1), sans-I/O.
 *
 * It registers with the server through its GW (proving it holds its EUK),
 * learns the PNID of the PN it is in, and answers SGroupKeyDeliveryRequest:
 * decrypt with the EUK, store in secure storage (the keystore ops), answer
 * Return, PNID, the echo attributes and KeyConfirmation.
 * examples/pne-minimal.c drives it from a poll() loop.
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

/** A PNE engine. */
typedef struct cpns_pne cpns_pne;

/** The configuration of cpns_pne_new(). */
typedef struct cpns_pne_config {
    const char *PNEID;           /**< required; copied */
    const uint8_t *EUK;          /**< required, CPNS_KEY_LEN bytes; copied (wiped on del) */
    cpns_keystore *keystore;     /**< required; not owned, must outlive the engine */
    cpns_rand_fn rand;           /**< TransactionIDs and Nonces; NULL: OS CSPRNG */
    void *rand_arg;              /**< passed to rand */
    cpns_log_fn log;             /**< NULL: silent */
    void *log_arg;               /**< passed to log */
    cpns_clock_fn wall_clock;    /**< the registration Time; NULL: now_ms is wall time (common.h) */
    void *wall_clock_arg;        /**< passed to wall_clock */
    int64_t register_timeout_ms; /**< resend the registration after this; 0: 10,000 */
    /**
     * Not owned; NULL: the engine creates its own on the first cpns_pne_recv()
     * and frees it in cpns_pne_free(). Engines run from one thread (a load
     * generator) may share one; it must outlive them.
     */
    cpns_msg_decoder *decoder;
    /**
     * The AES-GCM context that decrypts EncryptedGroupKey, on the same terms:
     * not owned; NULL: the engine creates its own on the first delivery
     * request addressed to it and frees it in cpns_pne_free(). Engines run
     * from one thread may share one; it must outlive them.
     */
    cpns_gcm *gcm;
    /** The SHA-256 context of its KeyConfirmations, on the same terms as gcm. */
    cpns_sha256 *sha256;
} cpns_pne_config;

/** Where the PNE's registration stands. */
typedef enum cpns_pne_state {
    CPNS_PNE_OFFLINE = 0,     /**< no link to the GW */
    CPNS_PNE_REGISTERING = 1, /**< PNERegistrationRequest sent */
    CPNS_PNE_REGISTERED = 2,  /**< Return 1: PNID known */
    CPNS_PNE_REFUSED = 3,     /**< the server answered 8 or 9 */
} cpns_pne_state;

/**
 * Creates a PNE engine, offline.
 *
 * @param out set to the engine.
 * @param cfg the configuration (copied as its fields say).
 * @return 0 with *out set.
 * @retval CPNS_ERR_INVALID_ARG when out or cfg is NULL, PNEID is missing or
 *         invalid, EUK or keystore is missing, or register_timeout_ms is negative.
 * @retval CPNS_ERR_NOMEM when the allocation fails.
 * @retval CPNS_ERR_CRYPTO when deriving the keys from the EUK fails.
 */
CPNS_API int cpns_pne_new(cpns_pne **out, const cpns_pne_config *cfg);

/**
 * Frees the engine and wipes the keys it held (not the keystore, nor the
 * contexts it was given).
 *
 * @param pne the engine; NULL is fine.
 */
CPNS_API void cpns_pne_free(cpns_pne *pne);

/**
 * Where the registration stands.
 *
 * @param pne the engine.
 * @return its state.
 */
CPNS_API cpns_pne_state cpns_pne_get_state(const cpns_pne *pne);

/**
 * The PNID learned from the last successful registration.
 *
 * @param pne the engine.
 * @return the PNID (owned by the engine), or NULL before one.
 */
CPNS_API const char *cpns_pne_pnid(const cpns_pne *pne);

/**
 * The Return of the last PNERegistrationResponse.
 *
 * @param pne the engine.
 * @return the Return, -1 before one arrived.
 */
CPNS_API int cpns_pne_last_return(const cpns_pne *pne);

/**
 * The link to the GW is up: queues a PNERegistrationRequest (fresh Nonce and
 * TransactionID, Time from the wall clock) and arms the resend timer.
 *
 * @param pne the engine.
 * @param now_ms the monotonic clock; here and below it only times the
 *        registration retry.
 * @return 0, or, when cfg->rand fails, the error it returned.
 * @retval CPNS_ERR_NOMEM when the frame cannot be queued.
 * @retval CPNS_ERR_CRYPTO when the OS CSPRNG or the Proof's HMAC fails.
 */
CPNS_API int cpns_pne_link_up(cpns_pne *pne, int64_t now_ms);

/**
 * The link is gone: queued frames are dropped and the timer disarmed; the
 * PNID is kept for the next registration.
 *
 * @param pne the engine.
 * @param now_ms the monotonic clock.
 * @return 0.
 */
CPNS_API int cpns_pne_link_down(cpns_pne *pne, int64_t now_ms);

/**
 * A frame payload from the GW: PNERegistrationResponse or
 * SGroupKeyDeliveryRequest (answered per PROTOCOL.md 5.1, Return 4 for a
 * malformed request whose TransactionID is readable). Anything else is
 * dropped. Keystore failures are answered Return 3, not returned; malformed
 * input is answered or dropped, not returned either.
 *
 * @param pne the engine.
 * @param data the payload.
 * @param len its length.
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_NOMEM when a frame cannot be queued or decoded for lack of
 *         memory, also when the engine's own decoder or GCM or SHA-256
 *         context cannot be created: then nothing is answered or stored,
 *         and the same frame may be given again.
 * @retval CPNS_ERR_CRYPTO when the OpenSSL provider has no AES-256-GCM or
 *         SHA-256 for the engine's own contexts (cpns_gcm_new(),
 *         cpns_sha256_new()): nothing is answered or stored either.
 */
CPNS_API int cpns_pne_recv(cpns_pne *pne, const uint8_t *data, size_t len, int64_t now_ms);

/**
 * The next frame to send, in order.
 *
 * @param pne the engine.
 * @param out set to the frame (cpns_out in common.h), valid until the next
 *        call on the engine.
 * @retval 1 with *out set.
 * @retval 0 when there is none.
 */
CPNS_API int cpns_pne_pop(cpns_pne *pne, cpns_out *out);

/**
 * When the registration retry timer wants cpns_pne_handle_expiry().
 *
 * @param pne the engine.
 * @return the time on the now_ms clock, or CPNS_NEVER when not registering.
 */
CPNS_API int64_t cpns_pne_get_expiry(const cpns_pne *pne);

/**
 * Runs the registration retry timer: when it is due, a new
 * PNERegistrationRequest is queued (as cpns_pne_link_up()).
 *
 * @param pne the engine.
 * @param now_ms the monotonic clock.
 * @return 0 (also when nothing was due), or, when cfg->rand fails, the
 *         error it returned.
 * @retval CPNS_ERR_NOMEM when the frame cannot be queued.
 * @retval CPNS_ERR_CRYPTO when the OS CSPRNG or the Proof's HMAC fails.
 */
CPNS_API int cpns_pne_handle_expiry(cpns_pne *pne, int64_t now_ms);

#ifdef __cplusplus
}
#endif
#endif
