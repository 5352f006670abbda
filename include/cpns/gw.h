/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief The PN GW engine (7.8.6.2), sans-I/O.
 *
 * The GW only routes. Its state is the routing table PNEID -> PNE link and,
 * per link, the PNEID it registered (or is registering). It parses no more of
 * a frame than routing needs (cpns_msg_peek) and forwards the frame it
 * received, byte for byte: it never sees a Group Key in clear.
 *
 * Links are the glue's non-zero handles for PNE connections; the server
 * connection is CPNS_GW_LINK_SERVER in cpns_out.link.
 *
 * The PNE port is open to anyone on the PN, so the engine trusts a link with
 * nothing before the server vouches for it (issue #10, findings 1 and 3):
 *  - a PNERegistrationResponse goes only to the link whose request it
 *    answers (same PNEID and TransactionID), and only a Return 1 to that
 *    link's own request makes it the PNE's route;
 *  - while one link's registration for a PNEID is in flight (a "claim"), a
 *    registration for that PNEID from another link is answered Return 0 by
 *    the GW itself (the PNE retries at its timer). A claim ends with the
 *    response, when its link closes, when the server connection goes down, or
 *    CPNS_GW_CLAIM_TIMEOUT_MS after the request (checked on every call that
 *    takes now_ms, so no timer is needed);
 *  - frames from a link are bounded in size and in rate (token buckets
 *    refilled from now_ms); a link that exceeds them has its frames dropped
 *    and is handed to the glue to close (cpns_gw_pop_close).
 */
#ifndef CPNS_GW_H
#define CPNS_GW_H

#include <stdbool.h>
#include "common.h"
#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

/** cpns_out.link of a frame for the server connection. */
#define CPNS_GW_LINK_SERVER 0

/**
 * A PNERegistrationRequest longer than this is refused, never forwarded: a
 * legal one is under 400 bytes (64-character PNEID, base64 Nonce and Proof).
 */
#define CPNS_GW_REGISTRATION_MAX 1024
/**
 * Any frame from a PNE link longer than this is refused before it is parsed:
 * the other frame a PNE sends, SGroupKeyDeliveryResponse, is under 500 bytes.
 */
#define CPNS_GW_PNE_FRAME_MAX 4096
/**
 * Per link: burst of PNERegistrationRequests (a PNE sends one per connection,
 * then one per retry).
 */
#define CPNS_GW_LINK_REG_BURST 4
/** Per link: PNERegistrationRequests a second, sustained. */
#define CPNS_GW_LINK_REG_PER_S 1
/** Per link: burst of frames of any kind (one delivery response per delivery besides). */
#define CPNS_GW_LINK_FRAME_BURST 64
/** Per link: frames a second, sustained. */
#define CPNS_GW_LINK_FRAME_PER_S 32
/**
 * Besides the rate, each delivery request forwarded to a link lets one more
 * frame through (its response), up to this many unanswered.
 */
#define CPNS_GW_LINK_CREDIT_MAX 65536
/** A registration in flight holds its PNEID this long at most (the PNE's own resend timer). */
#define CPNS_GW_CLAIM_TIMEOUT_MS 10000

/** A PN GW engine. */
typedef struct cpns_gw cpns_gw;

/** The configuration of cpns_gw_new(). */
typedef struct cpns_gw_config {
    const char *PNGWID; /**< required; copied */
    const char *PNID;   /**< required; copied: the PN this GW serves */
    size_t max_pnes;    /**< 0: no limit; PNEs routed or with a registration in flight */
    cpns_rand_fn rand;  /**< for TransactionIDs; NULL: OS CSPRNG */
    void *rand_arg;     /**< passed to rand */
    cpns_log_fn log;    /**< NULL: silent */
    void *log_arg;      /**< passed to log */
    bool log_debug;     /**< also pass CPNS_LOG_DEBUG messages (one per forwarded frame) to log */
} cpns_gw_config;

/** Where the GW's own registration with the server stands. */
typedef enum cpns_gw_state {
    CPNS_GW_OFFLINE = 0,     /**< no server connection */
    CPNS_GW_REGISTERING = 1, /**< PNGWRegistrationRequest sent */
    CPNS_GW_ONLINE = 2,      /**< registered with the server */
    CPNS_GW_REFUSED = 3,     /**< the server answered Return != 1 */
} cpns_gw_state;

/**
 * Creates a GW engine, offline, with no link.
 *
 * @param out set to the engine.
 * @param cfg the configuration (copied as its fields say).
 * @return 0 with *out set.
 * @retval CPNS_ERR_INVALID_ARG when out or cfg is NULL, or PNGWID or PNID is
 *         missing or invalid.
 * @retval CPNS_ERR_NOMEM when the allocation fails.
 */
CPNS_API int cpns_gw_new(cpns_gw **out, const cpns_gw_config *cfg);

/**
 * Frees the engine, its links and queued frames.
 *
 * @param gw the engine; NULL is fine.
 */
CPNS_API void cpns_gw_free(cpns_gw *gw);

/**
 * Where the GW's registration stands.
 *
 * @param gw the engine.
 * @return its state.
 */
CPNS_API cpns_gw_state cpns_gw_get_state(const cpns_gw *gw);

/**
 * The Return of the last PNGWRegistrationResponse.
 *
 * @param gw the engine.
 * @return the Return, -1 before one arrived.
 */
CPNS_API int cpns_gw_last_return(const cpns_gw *gw);

/**
 * The server connection is up: queues PNGWRegistrationRequest. Once the server
 * answers Return 1, queues PNEStatusNotification Status="attached" for every
 * PNE whose registration succeeded and whose link is still up.
 *
 * @param gw the engine.
 * @param now_ms the monotonic clock.
 * @return 0, or, when cfg->rand fails, the error it returned.
 * @retval CPNS_ERR_NOMEM when the frame cannot be queued.
 * @retval CPNS_ERR_CRYPTO when the OS CSPRNG fails (the TransactionID).
 */
CPNS_API int cpns_gw_server_up(cpns_gw *gw, int64_t now_ms);

/**
 * The server connection is gone: server-bound frames queued so far are
 * dropped, and so are the registrations in flight (no answer can come).
 *
 * @param gw the engine.
 * @param now_ms the monotonic clock.
 * @return 0.
 */
CPNS_API int cpns_gw_server_down(cpns_gw *gw, int64_t now_ms);

/**
 * A frame payload from the server. SGroupKeyDeliveryRequest goes to the link
 * of GroupKeyInfo/\@PNEID, or is answered Return 6 (same TransactionID, the
 * GW's PNID) when that PNE is not attached. PNERegistrationResponse goes to
 * the link whose registration in flight it answers (same PNEID and
 * TransactionID); Return 1 makes that link the PNE's route. A
 * PNGWRegistrationResponse with Return 1 queues the "attached" notifications
 * (cpns_gw_server_up()). Anything else, and a response that answers no
 * registration in flight, is dropped (logged): malformed input is not an
 * error of this function.
 *
 * @param gw the engine.
 * @param data the payload.
 * @param len its length.
 * @param now_ms the monotonic clock.
 * @return 0, or, when cfg->rand fails, the error it returned.
 * @retval CPNS_ERR_NOMEM when a frame cannot be queued or peeked at.
 * @retval CPNS_ERR_CRYPTO when the OS CSPRNG fails (the notifications'
 *         TransactionIDs).
 */
CPNS_API int cpns_gw_recv_server(cpns_gw *gw, const uint8_t *data, size_t len, int64_t now_ms);

/**
 * A PNE connection opened.
 *
 * @param gw the engine.
 * @param link the glue's handle for it, not CPNS_GW_LINK_SERVER.
 * @param now_ms the monotonic clock (starts the link's rate limits).
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when link is CPNS_GW_LINK_SERVER.
 * @retval CPNS_ERR_EXISTS when link is already open.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 */
CPNS_API int cpns_gw_link_open(cpns_gw *gw, uint64_t link, int64_t now_ms);

/**
 * A frame payload from a PNE link. PNERegistrationRequest binds the link to
 * its PNEID and goes to the server, unless another link's registration for
 * that PNEID is in flight or max_pnes is reached (then the GW answers Return
 * 0); SGroupKeyDeliveryResponse goes to the server when the link is the route
 * of its PNEID. Anything else is dropped. Frames over CPNS_GW_PNE_FRAME_MAX,
 * registrations over CPNS_GW_REGISTRATION_MAX and frames over the link's
 * rate are dropped, and the link is queued for cpns_gw_pop_close(); its later
 * frames are dropped unread.
 *
 * @param gw the engine.
 * @param link the link it came from.
 * @param data the payload.
 * @param len its length.
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_NOT_FOUND when link is not open.
 * @retval CPNS_ERR_NOMEM when a frame cannot be queued or peeked at.
 */
CPNS_API int cpns_gw_recv_link(cpns_gw *gw, uint64_t link, const uint8_t *data, size_t len,
                               int64_t now_ms);

/**
 * The PNE link closed: its queued frames and registration in flight are
 * dropped; queues Status="detached" if it was the PNE's route and the GW is
 * online.
 *
 * @param gw the engine.
 * @param link the link.
 * @param now_ms the monotonic clock.
 * @return 0 (the link is gone in every case but CPNS_ERR_NOT_FOUND), or,
 *         when cfg->rand fails, the error it returned.
 * @retval CPNS_ERR_NOT_FOUND when link is not open.
 * @retval CPNS_ERR_NOMEM when the notification cannot be queued.
 * @retval CPNS_ERR_CRYPTO when the OS CSPRNG fails (its TransactionID).
 */
CPNS_API int cpns_gw_link_close(cpns_gw *gw, uint64_t link, int64_t now_ms);

/**
 * The next frame to send, in order.
 *
 * @param gw the engine.
 * @param out set to the frame (cpns_out in common.h): out->link is
 *        CPNS_GW_LINK_SERVER or a PNE link; valid until the next call on gw.
 * @retval 1 with *out set.
 * @retval 0 when there is none.
 */
CPNS_API int cpns_gw_pop(cpns_gw *gw, cpns_out *out);

/**
 * A link the glue should close for abuse (an oversized frame, frames over its
 * rate); each link is handed out once. The glue closes that connection and
 * then calls cpns_gw_link_close() as for any closed link. Call it after
 * cpns_gw_recv_link().
 *
 * @param gw the engine.
 * @param link set to the link.
 * @retval 1 with *link set.
 * @retval 0 when there is none.
 */
CPNS_API int cpns_gw_pop_close(cpns_gw *gw, uint64_t *link);

/**
 * Whether link is the route of its PNEID: the server answered Return 1 to
 * that link's own registration and no newer link took the PNEID over.
 *
 * @param gw the engine.
 * @param link the link.
 * @return 1 if so, else 0.
 */
CPNS_API int cpns_gw_link_routed(const cpns_gw *gw, uint64_t link);

/**
 * The number of PNEs attached (registered, link up).
 *
 * @param gw the engine.
 * @return the count.
 */
CPNS_API size_t cpns_gw_attached(const cpns_gw *gw);

/** What the engine did since it was created (cpns-gw --metrics shows them). */
typedef struct cpns_gw_stats {
    /**
     * From the server to PNE links: delivery requests and registration
     * responses, forwarded byte for byte.
     */
    uint64_t frames_to_pnes;
    /** From PNE links to the server: registration requests and delivery responses. */
    uint64_t frames_to_server;
    uint64_t answered_unreachable;  /**< delivery requests answered Return 6 by the GW itself */
    uint64_t answered_malformed;    /**< delivery requests answered Return 4 by the GW itself */
    uint64_t registrations_refused; /**< PNE registrations answered Return 0 by the GW itself */
    uint64_t links_abusive;         /**< links handed to cpns_gw_pop_close() */
} cpns_gw_stats;

/**
 * The engine's counters.
 *
 * @param gw the engine.
 * @param out filled with a copy.
 */
CPNS_API void cpns_gw_get_stats(const cpns_gw *gw, cpns_gw_stats *out);

/**
 * Turns the CPNS_LOG_DEBUG messages (one per forwarded frame) on or off
 * while the engine runs, as cpns_gw_config.log_debug does at cpns_gw_new()
 * (a daemon raising its log level on SIGHUP).
 *
 * @param gw the engine; NULL is a no-op.
 * @param on true to pass them to the log callback.
 */
CPNS_API void cpns_gw_set_log_debug(cpns_gw *gw, bool on);

#ifdef __cplusplus
}
#endif
#endif
