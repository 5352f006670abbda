/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief The CPNS Server engine (7.8.6.3), sans-I/O.
 *
 * It owns the SG inventory and the deliveries, generates Group Keys, answers
 * GW and PNE registrations and reacts to SGroupKeyDeliveryResponse. It never
 * touches a socket or a clock: the glue feeds it frames from GW connections
 * with the current time, pops the frames it wants sent, and arms one timer
 * from cpns_server_get_expiry().
 *
 * Every now_ms is a monotonic clock in milliseconds (any epoch): timeouts,
 * backoff and rate limits are intervals of it. What the protocol dates (the
 * registration Time window, the persisted nonce cache) uses the wall clock
 * of cpns_server_config.wall_clock, Unix time in milliseconds; without one,
 * now_ms is taken as wall time too.
 *
 * Loop turn, as the daemon runs it:
 * @code
 *     cpns_server_recv(...) / cpns_server_handle_expiry(...) / admin calls
 *     while ((rv = cpns_server_pop(s, &out)) == 1) send(out.link, out.data, out.len);
 *     cpns_server_flush(s);        -- one commit for the whole turn
 *     if it released held answers (cpns_server_commit_wanted() was 1), pop again
 *     while (cpns_server_pop_close(s, &conn)) close conn, cpns_server_conn_close(s, conn, now)
 * @endcode
 *
 * A commit's errors are the store's (store.h): CPNS_ERR_STORE when it fails,
 * CPNS_ERR_FENCED when this instance no longer holds its PostgreSQL lease,
 * CPNS_ERR_EXISTS in shared mode when another instance won a race for the
 * same rows, CPNS_ERR_NOMEM. After a failed commit every write stays
 * pending and the next commit writes it again.
 */
#ifndef CPNS_SERVER_H
#define CPNS_SERVER_H

#include <stdbool.h>
#include "common.h"
#include "msg.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A CPNS Server engine. */
typedef struct cpns_server cpns_server;

/** The configuration of cpns_server_new(). */
typedef struct cpns_server_config {
    cpns_store *store;        /**< required; not owned, must outlive the engine */
    cpns_rand_fn rand;        /**< Group Keys, nonces, TransactionIDs; NULL: OS CSPRNG */
    void *rand_arg;           /**< passed to rand */
    cpns_log_fn log;          /**< NULL: silent */
    void *log_arg;            /**< passed to log */
    cpns_clock_fn wall_clock; /**< NULL: now_ms is wall time (common.h) */
    void *wall_clock_arg;     /**< passed to wall_clock */
    /**
     * Also pass CPNS_LOG_DEBUG messages (a line per member transition) to
     * log. Off, they are not even formatted: at 100,000 members that
     * formatting alone was a tenth of the server's work.
     */
    bool log_debug;
    int64_t delivery_timeout_ms; /**< wait for a response this long; 0: 10,000 */
    uint32_t max_attempts;       /**< sends of one delivery before it fails; 0: 5 */
    int64_t max_backoff_ms;      /**< longest wait between resends; 0: 300,000 */
    int64_t time_window_s;       /**< registration |now - Time| limit; 0: 300 */
    int64_t nonce_ttl_s;         /**< replay cache lifetime; 0: 600 */
    /**
     * Registration flood control (lib/server_limits.c): each GW connection
     * may pass at most reg_rate_per_s PNERegistrationRequests a second, with
     * bursts of up to reg_burst. One over the limit is answered Return 0 (the
     * PNE retries at its timer) before its Proof is checked, and counted in
     * stats.registrations_limited. 0: 1,000 a second, bursts of 10,000.
     */
    uint32_t reg_rate_per_s;
    uint32_t reg_burst; /**< see reg_rate_per_s; 0: 10,000 */
} cpns_server_config;

/**
 * Creates a server and loads its state from cfg->store. Deliveries that were
 * `sent` when the state was saved become `pending` (their requests are lost
 * with the connections) and go out again, same key and version, once their
 * PNE is reachable.
 *
 * @param out set to the engine (NULL on failure).
 * @param cfg the configuration (copied; the store is borrowed).
 * @param now_ms the monotonic clock.
 * @return 0 with *out set.
 * @retval CPNS_ERR_INVALID_ARG when out, cfg or cfg->store is NULL.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 * @retval CPNS_ERR_CORRUPT when the stored rows contradict each other (e.g. a
 *         member of an SG that does not exist).
 * @retval CPNS_ERR_CRYPTO when deriving a PNE's keys fails.
 * @retval CPNS_ERR_STORE when the store's load fails.
 */
CPNS_API int cpns_server_new(cpns_server **out, const cpns_server_config *cfg, int64_t now_ms);

/**
 * Frees the server (not the store) and wipes the keys it held. What was not
 * committed is lost, as in a crash.
 *
 * @param s the engine; NULL is fine.
 */
CPNS_API void cpns_server_free(cpns_server *s);

/**
 * A GW connection opened. When peer_cn is set, a PNGWRegistrationRequest
 * whose PNGWID differs gets Return 8.
 *
 * @param s the engine.
 * @param conn the glue's non-zero handle for it.
 * @param peer_cn the subject CN of the verified client certificate (copied),
 *        or NULL on an insecure link.
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when s is NULL or conn is 0.
 * @retval CPNS_ERR_EXISTS when conn is already open.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 */
CPNS_API int cpns_server_conn_open(cpns_server *s, uint64_t conn, const char *peer_cn,
                                   int64_t now_ms);

/**
 * The connection is gone: its GW is no longer a route, its queued frames and
 * held answers are dropped. Requests sent through it time out and are sent
 * again once their PNEs are reachable.
 *
 * @param s the engine.
 * @param conn the connection.
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when s is NULL.
 * @retval CPNS_ERR_NOT_FOUND when conn is not open.
 */
CPNS_API int cpns_server_conn_close(cpns_server *s, uint64_t conn, int64_t now_ms);

/**
 * One frame payload from a GW connection. Malformed input is answered
 * (Return 4) when it can be, else dropped; neither is an error of this
 * function, and neither is a registration refused (Return 0, 8 or 9).
 *
 * @param s the engine.
 * @param conn the connection it came from.
 * @param data the payload.
 * @param len its length.
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when s is NULL, or data is NULL with a non-zero len.
 * @retval CPNS_ERR_NOT_FOUND when conn is not open.
 * @retval CPNS_ERR_NOMEM when decoding, an answer or the nonce cache needs
 *         memory that is not there.
 * @retval CPNS_ERR_CRYPTO when deriving the key that checks KeyConfirmations fails.
 */
CPNS_API int cpns_server_recv(cpns_server *s, uint64_t conn, const uint8_t *data, size_t len,
                              int64_t now_ms);

/**
 * The next frame to send. Before the first frame carrying a new Group Key,
 * the key is committed; if that commit fails the error is returned and
 * nothing is sent. Held answers (see cpns_server_commit_wanted()) are not
 * popped before their commit; a delivery to a PNE whose answer is held
 * commits first (the answer then leaves first) or, if that commit fails,
 * waits for the answer while other PNEs' deliveries go on.
 *
 * @param s the engine.
 * @param out set to the frame, valid until the next call on s.
 * @retval 1 with *out set.
 * @retval 0 when there is none.
 * @retval CPNS_ERR_INVALID_ARG when s or out is NULL.
 * @retval CPNS_ERR_STORE when committing a new Group Key fails (as the other
 *         commit errors in the file's description: CPNS_ERR_FENCED,
 *         CPNS_ERR_EXISTS, CPNS_ERR_NOMEM).
 * @retval CPNS_ERR_NOMEM when a delivery request cannot be built; the member
 *         is queued again.
 * @retval CPNS_ERR_CRYPTO when the OS CSPRNG or wrapping the Group Key fails
 *         (a failing cfg->rand gives its own error); the member is queued again.
 */
CPNS_API int cpns_server_pop(cpns_server *s, cpns_out *out);

/**
 * Commits every write since the last commit (group commit), and waits for a
 * commit in flight. In shared mode it first claims, in one store
 * transaction, the PNE registrations received since the last flush, and
 * answers them: Return 8 for a Nonce the cluster has seen, Return 0 to all
 * of them when that transaction fails (the PNEs retry; not an error of the
 * flush), otherwise a Return 1 held for this commit.
 *
 * @param s the engine.
 * @return 0 when everything is durable; held answers are released (pop them).
 * @retval CPNS_ERR_INVALID_ARG when s is NULL.
 * @retval CPNS_ERR_STORE when the store fails; likewise CPNS_ERR_FENCED,
 *         CPNS_ERR_EXISTS (shared mode: the SGs concerned are reloaded, see
 *         cpns_server_take_conflict()) and CPNS_ERR_NOMEM, the store's errors.
 */
CPNS_API int cpns_server_flush(cpns_server *s);

/**
 * The group commit without waiting, for stores with a non-blocking commit
 * (the PostgreSQL store; with others it is cpns_server_flush()). Starts
 * committing every write so far, after the claims of shared mode as in
 * cpns_server_flush() (with a commit in flight they wait for the next call).
 * The engine goes on meanwhile: registration answers held for it and frames
 * carrying a Group Key it commits leave only once it is durable. When
 * cpns_server_store_fd() is readable, call cpns_server_flush_poll().
 *
 * @param s the engine.
 * @return 0 when the commit is under way (or there was nothing to write).
 * @retval CPNS_ERR_AGAIN when a commit is already in flight.
 * @retval CPNS_ERR_INVALID_ARG when s is NULL.
 * @retval CPNS_ERR_STORE when the store refuses the commit, everything being
 *         kept for the next one; likewise CPNS_ERR_FENCED and CPNS_ERR_NOMEM.
 */
CPNS_API int cpns_server_flush_start(cpns_server *s);

/**
 * The outcome of the commit started by cpns_server_flush_start().
 *
 * @param s the engine.
 * @return 0 when it is durable (or none is in flight): pop, answers were released.
 * @retval CPNS_ERR_AGAIN when it is not known yet: wait for
 *         cpns_server_store_fd() again.
 * @retval CPNS_ERR_INVALID_ARG when s is NULL.
 * @retval CPNS_ERR_FENCED when this instance lost its lease: stop writing.
 * @retval CPNS_ERR_STORE when the commit failed: its writes are sent again by
 *         the next commit; the answers it held wait for that. Likewise
 *         CPNS_ERR_EXISTS (shared mode) and CPNS_ERR_NOMEM.
 */
CPNS_API int cpns_server_flush_poll(cpns_server *s);

/**
 * Whether a commit started by cpns_server_flush_start() is in flight.
 *
 * @param s the engine (NULL: 0).
 * @return 1 if so, else 0.
 */
CPNS_API int cpns_server_flush_inflight(const cpns_server *s);

/**
 * The descriptor to wait on (readable) while a commit is in flight.
 *
 * @param s the engine.
 * @return the descriptor, or -1 when the store has none (or s is NULL).
 */
CPNS_API int cpns_server_store_fd(const cpns_server *s);

/**
 * Whether frames are held back until the next successful commit:
 * PNERegistrationResponses with Return 1, which leave only once their Nonce
 * is durable (a replay after a crash must not be accepted twice). In shared
 * mode (cpns_server_shared()) also while PNE registrations wait for their
 * claim in the store: the next cpns_server_flush() or
 * cpns_server_flush_start() claims all of them in one store transaction,
 * before its commit, and holds their answers for that commit. The glue
 * commits at once when this is 1, then pops the released frames.
 *
 * @param s the engine (NULL: 0).
 * @return 1 if so, else 0.
 */
CPNS_API int cpns_server_commit_wanted(const cpns_server *s);

/**
 * Whether conn has registered a GW (Return 1) and no newer connection took
 * that PNGWID over.
 *
 * @param s the engine (NULL: 0).
 * @param conn the connection.
 * @return 1 if so, else 0.
 */
CPNS_API int cpns_server_conn_registered(const cpns_server *s, uint64_t conn);

/**
 * A connection the glue should close: its GW registered again on a newer
 * connection (or, in shared mode, on another instance), so this one speaks
 * for nobody (and its unread output would only hold memory). The glue closes
 * it and calls cpns_server_conn_close().
 *
 * @param s the engine.
 * @param conn set to the connection.
 * @retval 1 with *conn set.
 * @retval 0 when there is none (or s or conn is NULL).
 */
CPNS_API int cpns_server_pop_close(cpns_server *s, uint64_t *conn);

/**
 * When cpns_server_handle_expiry() wants to run next.
 *
 * @param s the engine.
 * @return the time on the now_ms clock, or CPNS_NEVER (also for NULL).
 */
CPNS_API int64_t cpns_server_get_expiry(const cpns_server *s);

/**
 * Resends timed-out deliveries (or fails them after max_attempts) and
 * expires nonces; what it changes is written by the next commit.
 *
 * @param s the engine.
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when s is NULL.
 */
CPNS_API int cpns_server_handle_expiry(cpns_server *s, int64_t now_ms);

/* --- administration (the admin API maps onto these) --- */

/**
 * Provisions a PNE with its Entity User Key, committed before it returns
 * (the caller hands the EUK out after this).
 *
 * @param s the engine.
 * @param PNEID the PNE.
 * @param EUK its Entity User Key (copied).
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when an argument is NULL or PNEID is invalid.
 * @retval CPNS_ERR_EXISTS when the PNE is already provisioned.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 * @retval CPNS_ERR_CRYPTO when deriving its keys fails.
 * @retval CPNS_ERR_STORE when the commit fails (then nothing was added);
 *         likewise the other commit errors (CPNS_ERR_FENCED, ...).
 */
CPNS_API int cpns_server_pne_add(cpns_server *s, const char *PNEID,
                                 const uint8_t EUK[CPNS_KEY_LEN]);

/**
 * Re-provisions a PNE with a new EUK, committed before it returns: its
 * members failed by Return 2 are retried with the current key.
 *
 * @param s the engine.
 * @param PNEID the PNE.
 * @param EUK its new Entity User Key (copied).
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when an argument is NULL.
 * @retval CPNS_ERR_NOT_FOUND when the PNE is not provisioned.
 * @retval CPNS_ERR_CRYPTO when deriving its keys fails.
 * @retval CPNS_ERR_STORE when the commit fails (then the old key stays);
 *         likewise the other commit errors (CPNS_ERR_FENCED, ...).
 */
CPNS_API int cpns_server_pne_set_key(cpns_server *s, const char *PNEID,
                                     const uint8_t EUK[CPNS_KEY_LEN], int64_t now_ms);

/** What cpns_server_pne_get() tells about a PNE; the strings live as long as the PNE. */
typedef struct cpns_pne_info {
    const char *PNEID;  /**< the PNE */
    int registered;     /**< a registration succeeded at some point */
    int reachable;      /**< routable now: its GW is connected and has not reported it detached */
    const char *PNGWID; /**< of the last successful registration, NULL if none */
    const char *PNID;   /**< likewise */
} cpns_pne_info;

/**
 * The visitor of cpns_server_pne_foreach().
 *
 * @param arg the caller's argument.
 * @param p a PNE, valid during the call.
 * @return 0 to go on; a non-zero value stops the walk and is returned.
 */
typedef int (*cpns_pne_visit_fn)(void *arg, const cpns_pne_info *p);

/**
 * One PNE.
 *
 * @param s the engine.
 * @param PNEID the PNE.
 * @param out filled; its strings live as long as the PNE.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when an argument is NULL.
 * @retval CPNS_ERR_NOT_FOUND when the PNE is not provisioned.
 */
CPNS_API int cpns_server_pne_get(const cpns_server *s, const char *PNEID, cpns_pne_info *out);

/**
 * Every PNE, sorted by PNEID.
 *
 * @param s the engine.
 * @param fn called for each.
 * @param arg passed to fn.
 * @return 0, or the first non-zero return of fn (which stops the walk).
 * @retval CPNS_ERR_INVALID_ARG when s or fn is NULL.
 * @retval CPNS_ERR_NOMEM when sorting needs memory that is not there.
 */
CPNS_API int cpns_server_pne_foreach(const cpns_server *s, cpns_pne_visit_fn fn, void *arg);

/**
 * Creates a Service Group (7.8.6.3-1): stores and commits its inventory, then
 * generates a Group Key (version 1) and queues one SGroupKeyDeliveryRequest
 * per member. Earlier writes are committed first.
 *
 * @param s the engine.
 * @param SGID the new Service Group.
 * @param PNEIDs its members: provisioned and distinct.
 * @param n how many; may be 0.
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when SGID or a PNEID is NULL or invalid, a
 *         PNEID is given twice, or PNEIDs is NULL with a non-zero n.
 * @retval CPNS_ERR_NOT_FOUND when a PNEID is not provisioned.
 * @retval CPNS_ERR_EXISTS when the SG exists.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 * @retval CPNS_ERR_CRYPTO when the OS CSPRNG fails (the Group Key; a failing
 *         cfg->rand gives its own error).
 * @retval CPNS_ERR_STORE when a commit fails (then nothing was created);
 *         likewise the other commit errors (CPNS_ERR_FENCED, ...).
 */
CPNS_API int cpns_server_sg_create(cpns_server *s, const char *SGID, const char *const *PNEIDs,
                                   size_t n, int64_t now_ms);

/**
 * Adds and removes members in one step. Additions get the current key;
 * any removal rekeys the group (a new version for every remaining member).
 * Nothing changes unless it returns 0; the changes are written by the next
 * commit, before the first frame carrying the key.
 *
 * @param s the engine.
 * @param SGID the Service Group.
 * @param add the PNEIDs to add: provisioned, distinct, not members.
 * @param n_add how many (add may be NULL when 0).
 * @param remove the PNEIDs to remove: distinct members.
 * @param n_remove how many (remove may be NULL when 0).
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when s or SGID is NULL, a PNEID is invalid or
 *         given twice, an added PNEID is a member already or a removed one
 *         is not a member.
 * @retval CPNS_ERR_NOT_FOUND when the SG does not exist or an added PNEID
 *         is not provisioned.
 * @retval CPNS_ERR_STATE when members are removed and the KeyVersion is at
 *         CPNS_KEYVERSION_MAX already.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 * @retval CPNS_ERR_CRYPTO when the OS CSPRNG fails (a failing cfg->rand gives
 *         its own error).
 * @retval CPNS_ERR_STORE when, in shared mode, the store cannot note the change.
 */
CPNS_API int cpns_server_sg_update(cpns_server *s, const char *SGID, const char *const *add,
                                   size_t n_add, const char *const *remove, size_t n_remove,
                                   int64_t now_ms);

/**
 * A new key version for every member; written by the next commit, before the
 * first frame carrying the key.
 *
 * @param s the engine.
 * @param SGID the Service Group.
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when s or SGID is NULL.
 * @retval CPNS_ERR_NOT_FOUND when the SG does not exist.
 * @retval CPNS_ERR_STATE when the KeyVersion is at CPNS_KEYVERSION_MAX already.
 * @retval CPNS_ERR_CRYPTO when the OS CSPRNG fails (a failing cfg->rand gives
 *         its own error).
 * @retval CPNS_ERR_STORE when, in shared mode, the store cannot note the change.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 */
CPNS_API int cpns_server_sg_rekey(cpns_server *s, const char *SGID, int64_t now_ms);

/**
 * Deletes the SG and its deliveries; written by the next commit.
 *
 * @param s the engine.
 * @param SGID the Service Group.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when s or SGID is NULL.
 * @retval CPNS_ERR_NOT_FOUND when the SG does not exist.
 * @retval CPNS_ERR_NOMEM when the deletion cannot be recorded.
 * @retval CPNS_ERR_STORE when, in shared mode, the store cannot note the change.
 */
CPNS_API int cpns_server_sg_delete(cpns_server *s, const char *SGID);

/** What cpns_server_sg_get() tells about an SG. */
typedef struct cpns_sg_info {
    const char *SGID;     /**< the Service Group; lives as long as the SG */
    uint32_t KeyVersion;  /**< of the current Group Key; 0 before the first */
    int complete;         /**< every member is delivered the current version */
    size_t n_members;     /**< members */
    size_t n_pending;     /**< members waiting to be sent */
    size_t n_sent;        /**< members with a request out */
    size_t n_delivered;   /**< members delivered (their current version) */
    size_t n_failed;      /**< members given up */
    char fingerprint[17]; /**< of the current Group Key (cpns_fingerprint()); "" before the first */
} cpns_sg_info;

/** One member of an SG, as cpns_server_sg_members() shows it. */
typedef struct cpns_member_info {
    const char *PNEID;       /**< the member */
    cpns_member_state state; /**< where its delivery stands (store.h) */
    int Return;              /**< last Return, -1 for none */
    uint32_t attempts;       /**< sends of this delivery so far */
    const char *PNID;        /**< from its last response; NULL for none */
    uint32_t KeyVersion;     /**< the version this delivery is for */
} cpns_member_info;

/**
 * The visitor of cpns_server_sg_foreach().
 *
 * @param arg the caller's argument.
 * @param sg an SG, valid during the call.
 * @return 0 to go on; a non-zero value stops the walk and is returned.
 */
typedef int (*cpns_sg_visit_fn)(void *arg, const cpns_sg_info *sg);

/**
 * The visitor of cpns_server_sg_members().
 *
 * @param arg the caller's argument.
 * @param m a member, valid during the call.
 * @return 0 to go on; a non-zero value stops the walk and is returned.
 */
typedef int (*cpns_member_visit_fn)(void *arg, const cpns_member_info *m);

/**
 * One SG.
 *
 * @param s the engine.
 * @param SGID the Service Group.
 * @param out filled.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when an argument is NULL.
 * @retval CPNS_ERR_NOT_FOUND when the SG does not exist.
 */
CPNS_API int cpns_server_sg_get(const cpns_server *s, const char *SGID, cpns_sg_info *out);

/**
 * Every SG, sorted by SGID.
 *
 * @param s the engine.
 * @param fn called for each.
 * @param arg passed to fn.
 * @return 0, or the first non-zero return of fn (which stops the walk).
 * @retval CPNS_ERR_INVALID_ARG when s or fn is NULL.
 * @retval CPNS_ERR_NOMEM when sorting needs memory that is not there.
 */
CPNS_API int cpns_server_sg_foreach(const cpns_server *s, cpns_sg_visit_fn fn, void *arg);

/**
 * Every member of an SG, sorted by PNEID.
 *
 * @param s the engine.
 * @param SGID the Service Group.
 * @param fn called for each.
 * @param arg passed to fn.
 * @return 0, or the first non-zero return of fn (which stops the walk).
 * @retval CPNS_ERR_INVALID_ARG when s, SGID or fn is NULL.
 * @retval CPNS_ERR_NOT_FOUND when the SG does not exist.
 * @retval CPNS_ERR_NOMEM when sorting needs memory that is not there.
 */
CPNS_API int cpns_server_sg_members(const cpns_server *s, const char *SGID, cpns_member_visit_fn fn,
                                    void *arg);

/**
 * What an administration call failed on, when one identifier is to blame
 * (cpns_server_last_error()).
 */
typedef enum cpns_server_culprit {
    CPNS_CULPRIT_NONE = 0,       /**< no one identifier to blame, or the call succeeded */
    CPNS_CULPRIT_ID_INVALID,     /**< not an identifier (CPNS_ERR_INVALID_ARG) */
    CPNS_CULPRIT_PNE_TWICE,      /**< a PNEID listed twice (CPNS_ERR_INVALID_ARG) */
    CPNS_CULPRIT_PNE_UNKNOWN,    /**< a PNEID not provisioned (CPNS_ERR_NOT_FOUND) */
    CPNS_CULPRIT_PNE_EXISTS,     /**< a PNEID provisioned already (CPNS_ERR_EXISTS) */
    CPNS_CULPRIT_PNE_MEMBER,     /**< to add, a member already (CPNS_ERR_INVALID_ARG) */
    CPNS_CULPRIT_PNE_NOT_MEMBER, /**< to remove, not a member (CPNS_ERR_INVALID_ARG) */
    CPNS_CULPRIT_SG_UNKNOWN,     /**< an SGID with no SG (CPNS_ERR_NOT_FOUND) */
    CPNS_CULPRIT_SG_EXISTS,      /**< an SGID whose SG exists already (CPNS_ERR_EXISTS) */
} cpns_server_culprit;

/** The culprit of the last failed administration call, and its identifier. */
typedef struct cpns_server_error {
    cpns_server_culprit culprit; /**< CPNS_CULPRIT_NONE when no identifier is to blame */
    /** The SGID or PNEID to blame ("" with CPNS_CULPRIT_NONE); with
     * CPNS_CULPRIT_ID_INVALID at most its first CPNS_ID_MAX bytes ("" for NULL). */
    char id[CPNS_ID_MAX + 1];
} cpns_server_error;

/**
 * Which identifier the last administration call failed on: the error code
 * says what went wrong, this says on what (which of the PNEIDs given to
 * cpns_server_sg_create() is not provisioned, which of the additions of
 * cpns_server_sg_update() is a member already, which SG does not exist).
 * cpns_server_pne_add(), cpns_server_pne_set_key(), cpns_server_sg_create(),
 * cpns_server_sg_update(), cpns_server_sg_rekey() and cpns_server_sg_delete()
 * each clear it first and set it when one identifier explains their failure.
 * The first failure is named: the SG (new for cpns_server_sg_create(),
 * existing for the others), then each list in turn (additions, then
 * removals): every identifier valid (in the order given), no PNEID twice,
 * every PNEID provisioned (the first unknown in the order given); then
 * membership (additions in PNEID order, then removals in the order given).
 *
 * @param s the engine.
 * @param out filled with the culprit of the last of those calls:
 *        CPNS_CULPRIT_NONE after a success, after a failure no identifier
 *        explains (CPNS_ERR_NOMEM, CPNS_ERR_STORE, CPNS_ERR_STATE, ...) and
 *        before any such call.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when s or out is NULL (out is left as it was).
 */
CPNS_API int cpns_server_last_error(const cpns_server *s, cpns_server_error *out);

/** Buckets of the delivery latency histogram of cpns_server_stats. */
#define CPNS_LATENCY_BUCKETS 12
/** Upper bounds (ms) of the latency histogram buckets; the last bucket is +Inf. */
CPNS_API extern const int64_t cpns_latency_bounds_ms[CPNS_LATENCY_BUCKETS - 1];

/** What the engine did since it was created (cpns-server's metrics, docs/METRICS.md). */
typedef struct cpns_server_stats {
    uint64_t deliveries_sent; /**< every request sent, resends included */
    uint64_t
        deliveries_delivered; /**< deliveries finished with Return 1 and a valid KeyConfirmation */
    uint64_t deliveries_failed;    /**< members that ended failed */
    uint64_t returns[10];          /**< responses received, by Return value (0..9) */
    uint64_t timeouts;             /**< requests that got no response in time */
    uint64_t registrations[10];    /**< PNE registrations answered, by Return value */
    uint64_t gw_registrations[10]; /**< GW registrations answered, by Return value */
    uint64_t gws_connected;        /**< now: GWs registered */
    uint64_t pnes_reachable;       /**< now: PNEs with a route */
    uint64_t latency_count;        /**< deliveries measured: first send to delivered */
    double latency_sum_ms;         /**< their total latency */
    uint64_t
        latency_buckets[CPNS_LATENCY_BUCKETS]; /**< non-cumulative, by cpns_latency_bounds_ms */
    uint64_t registrations_limited; /**< PNE registrations refused by the rate limit (Return 0) */
    /** Shared mode (cluster): member writes refused because another instance owns the row. */
    uint64_t fenced_writes;
    /** Shared mode, now: open deliveries whose PNE is routed through this instance. */
    uint64_t owned_open_members;
    uint64_t refreshes; /**< shared mode: scopes reloaded on another instance's change */
} cpns_server_stats;

/**
 * The engine's counters.
 *
 * @param s the engine.
 * @param out filled with a copy.
 */
CPNS_API void cpns_server_get_stats(const cpns_server *s, cpns_server_stats *out);

/**
 * Turns the CPNS_LOG_DEBUG messages on or off while the engine runs, as
 * cpns_server_config.log_debug does at cpns_server_new() (a daemon raising
 * its log level on SIGHUP).
 *
 * @param s the engine; NULL is a no-op.
 * @param on true to pass them to the log callback.
 */
CPNS_API void cpns_server_set_log_debug(cpns_server *s, bool on);

/**
 * Shared mode (several instances active on one store: a store with the
 * optional shared-mode ops, store.h; lib/server_cluster.c): another instance
 * changed something (the store's change feed). Reloads that scope from the
 * store into memory: a new, changed or deleted SG (its key, its members'
 * rows: the rows of deliveries this instance carries stay as it has them
 * unless the store's are of a newer version), a new or re-keyed PNE; then
 * sends what its GWs can carry. Admin reads call it too, so that an answer
 * never shows another instance's work as this one's stale memory. Without
 * the shared-mode ops it does nothing.
 *
 * @param s the engine.
 * @param kind "sg" or "pne".
 * @param key the SGID or PNEID.
 * @param now_ms the monotonic clock.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when an argument is NULL, or (shared mode)
 *         kind is neither "sg" nor "pne".
 * @retval CPNS_ERR_STORE when the store cannot load the scope.
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 */
CPNS_API int cpns_server_refresh(cpns_server *s, const char *kind, const char *key, int64_t now_ms);

/**
 * Shared mode: finishes the SGs whose creating instance stopped between the
 * two commits of their creation (the SG Inventory at KeyVersion 0, then the
 * first Group Key; docs/INTERPRETATIONS.md item 21). The glue calls it
 * periodically with every SG the store holds at KeyVersion 0
 * (cpns_store_pg_unkeyed()). An SG listed by every call for grace_ms (on
 * now_ms, from the call that first listed it) is reloaded from the store
 * and, if it still has no key, given its first Group Key, committed at once
 * (a blocking cpns_server_flush()) and delivered like any new key. The key
 * goes through the store's one-key-per-version check, as concurrent rekeys
 * on two instances do: if the creator (or another instance) commits
 * KeyVersion 1 first, this commit is refused and that key is loaded
 * instead; the grace period only keeps that race rare. SGs no longer listed
 * are forgotten. Without the shared-mode ops it does nothing.
 *
 * @param s the engine.
 * @param SGIDs the SGs the store holds at KeyVersion 0 (all of them).
 * @param n how many; 0 with SGIDs NULL.
 * @param grace_ms how long an SG stays listed before it is finished (>= 0).
 * @param now_ms the monotonic clock.
 * @return the number of SGs whose first key this call committed (0 or more).
 * @retval CPNS_ERR_INVALID_ARG when s is NULL, SGIDs is NULL with n > 0, or
 *         grace_ms < 0.
 * @retval CPNS_ERR_STORE when the store failed (the SGs concerned are tried
 *         again by the next call; a key drawn stays to be committed).
 * @retval CPNS_ERR_NOMEM when an allocation fails.
 */
CPNS_API int cpns_server_finish_unkeyed(cpns_server *s, const char *const *SGIDs, size_t n,
                                        int64_t grace_ms, int64_t now_ms);

/**
 * Shared mode: GW PNGWID registered on another instance at this epoch. If it
 * is connected here with an older epoch, that connection speaks for nobody
 * now and is handed to cpns_server_pop_close(). Without the shared-mode ops
 * it does nothing.
 *
 * @param s the engine.
 * @param PNGWID the GW.
 * @param epoch its new session epoch.
 * @return 1 if a connection here was superseded, else 0.
 */
CPNS_API int cpns_server_gw_taken(cpns_server *s, const char *PNGWID, int64_t epoch);

/**
 * Shared mode: whether a commit since the last call lost a race to another
 * instance (two rekeys of one SG: the other key won its version); the SGs it
 * touched were reloaded from the store. Reported once.
 *
 * @param s the engine.
 * @return 1 if so, else 0.
 */
CPNS_API int cpns_server_take_conflict(cpns_server *s);

/**
 * Whether the store is shared (cluster mode).
 *
 * @param s the engine (NULL: 0).
 * @return 1 if so, else 0.
 */
CPNS_API int cpns_server_shared(const cpns_server *s);

#ifdef __cplusplus
}
#endif
#endif
