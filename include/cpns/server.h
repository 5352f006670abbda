/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CPNS Server engine (7.8.6.3), sans-I/O.
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
 *     cpns_server_recv(...) / cpns_server_handle_expiry(...) / admin calls
 *     while ((rv = cpns_server_pop(s, &out)) == 1) send(out.link, out.data, out.len);
 *     cpns_server_flush(s);        -- one commit for the whole turn
 *     if it released held answers (cpns_server_commit_wanted() was 1), pop again
 *     while (cpns_server_pop_close(s, &conn)) close conn, cpns_server_conn_close(s, conn, now)
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

typedef struct cpns_server cpns_server;

typedef struct cpns_server_config {
    cpns_store *store; /* required; not owned */
    cpns_rand_fn rand; /* NULL: OS CSPRNG */
    void *rand_arg;
    cpns_log_fn log; /* NULL: silent */
    void *log_arg;
    cpns_clock_fn wall_clock; /* NULL: now_ms is wall time (common.h) */
    void *wall_clock_arg;
    /*
     * Also pass CPNS_LOG_DEBUG messages (a line per member transition) to
     * log. Off, they are not even formatted: at 100,000 members that
     * formatting alone was a tenth of the server's work.
     */
    bool log_debug;
    int64_t delivery_timeout_ms; /* 0: 10,000 */
    uint32_t max_attempts;       /* 0: 5 */
    int64_t max_backoff_ms;      /* 0: 300,000 */
    int64_t time_window_s;       /* registration |now - Time| limit; 0: 300 */
    int64_t nonce_ttl_s;         /* replay cache lifetime; 0: 600 */
    /*
     * Registration flood control (lib/server_limits.c): each GW connection
     * may pass at most reg_rate_per_s PNERegistrationRequests a second, with
     * bursts of up to reg_burst. One over the limit is answered Return 0 (the
     * PNE retries at its timer) before its Proof is checked, and counted in
     * stats.registrations_limited. 0: 1,000 a second, bursts of 10,000.
     */
    uint32_t reg_rate_per_s;
    uint32_t reg_burst;
} cpns_server_config;

/*
 * Creates a server and loads its state from cfg->store. Deliveries that were
 * `sent` when the state was saved become `pending` (their requests are lost
 * with the connections) and go out again, same key and version, once their
 * PNE is reachable. 0, CPNS_ERR_INVALID_ARG, CPNS_ERR_NOMEM, or the store's error.
 */
CPNS_API int cpns_server_new(cpns_server **out, const cpns_server_config *cfg, int64_t now_ms);

/* Frees the server (not the store) and wipes the keys it held. NULL is fine. */
CPNS_API void cpns_server_del(cpns_server *s);

/*
 * A GW connection. `conn` is the glue's non-zero handle for it. peer_cn is
 * the subject CN of the verified client certificate, or NULL on an insecure
 * link; when set, a PNGWRegistrationRequest whose PNGWID differs gets Return 8.
 * 0, CPNS_ERR_EXISTS (conn already open), CPNS_ERR_NOMEM.
 */
CPNS_API int cpns_server_conn_open(cpns_server *s, uint64_t conn, const char *peer_cn,
                                   int64_t now_ms);

/* The connection is gone: its GW is no longer a route. 0 or CPNS_ERR_NOT_FOUND. */
CPNS_API int cpns_server_conn_close(cpns_server *s, uint64_t conn, int64_t now_ms);

/*
 * One frame payload from a GW connection. Malformed input is answered (Return 4)
 * when it can be, else dropped; neither is an error of this function.
 * 0, CPNS_ERR_NOT_FOUND (unknown conn), CPNS_ERR_NOMEM, CPNS_ERR_STORE.
 */
CPNS_API int cpns_server_recv(cpns_server *s, uint64_t conn, const uint8_t *data, size_t len,
                              int64_t now_ms);

/*
 * Next frame to send: 1 with *out filled (valid until the next call on s),
 * 0 when there is none. Before the first frame carrying a new Group Key, the
 * key is committed; if that commit fails the error is returned and nothing
 * is sent. Held answers (see cpns_server_commit_wanted) are not popped before
 * their commit; a delivery to a PNE whose answer is held commits first (the
 * answer then leaves first) or, if that commit fails, waits for the answer
 * while other PNEs' deliveries go on.
 */
CPNS_API int cpns_server_pop(cpns_server *s, cpns_out *out);

/*
 * Commits every write since the last commit (group commit), and waits for a
 * commit in flight. 0 or the store's error.
 */
CPNS_API int cpns_server_flush(cpns_server *s);

/*
 * The group commit without waiting, for stores with a non-blocking commit
 * (the PostgreSQL store; with others it is cpns_server_flush). Starts
 * committing every write so far and returns 0 (or the store's error, with
 * everything kept for the next commit); CPNS_ERR_AGAIN when a commit is
 * already in flight. The engine goes on meanwhile: registration answers held
 * for it and frames carrying a Group Key it commits leave only once it is
 * durable. When cpns_server_store_fd() is readable, cpns_server_flush_poll():
 * 0 durable (pop: answers were released), CPNS_ERR_AGAIN not yet, or the
 * store's error (its writes are sent again by the next commit; the answers
 * it held wait for that). CPNS_ERR_FENCED means this instance lost its lease.
 */
CPNS_API int cpns_server_flush_start(cpns_server *s);
CPNS_API int cpns_server_flush_poll(cpns_server *s);
/* 1 while a commit started by cpns_server_flush_start is in flight. */
CPNS_API int cpns_server_flush_inflight(const cpns_server *s);
/* The descriptor to wait on (readable) while a commit is in flight, or -1. */
CPNS_API int cpns_server_store_fd(const cpns_server *s);

/*
 * 1 when frames are held back until the next successful commit:
 * PNERegistrationResponses with Return 1, which leave only once their Nonce
 * is durable (a replay after a crash must not be accepted twice). The glue
 * commits at once when this is 1, then pops the released frames.
 */
CPNS_API int cpns_server_commit_wanted(const cpns_server *s);

/* 1 when conn has registered a GW (Return 1) and no newer connection took that PNGWID over. */
CPNS_API int cpns_server_conn_registered(const cpns_server *s, uint64_t conn);

/*
 * A connection the glue should close: its GW registered again on a newer
 * connection, so this one speaks for nobody (and its unread output would only
 * hold memory). 1 with *conn set, 0 when there is none. The glue closes it and
 * calls cpns_server_conn_close().
 */
CPNS_API int cpns_server_pop_close(cpns_server *s, uint64_t *conn);

/* When cpns_server_handle_expiry() wants to run next, or CPNS_NEVER. */
CPNS_API int64_t cpns_server_get_expiry(const cpns_server *s);

/* Resends timed-out deliveries and expires nonces. 0, CPNS_ERR_NOMEM, CPNS_ERR_STORE. */
CPNS_API int cpns_server_handle_expiry(cpns_server *s, int64_t now_ms);

/* --- administration (the admin API maps onto these) --- */

/*
 * Provisions a PNE with its Entity User Key. 0, CPNS_ERR_INVALID_ARG (bad
 * PNEID), CPNS_ERR_EXISTS, CPNS_ERR_NOMEM, CPNS_ERR_STORE.
 */
CPNS_API int cpns_server_pne_add(cpns_server *s, const char *PNEID,
                                 const uint8_t EUK[CPNS_KEY_LEN]);

/*
 * Re-provisions a PNE with a new EUK: its members failed by Return 2 are
 * retried with the current key. 0, CPNS_ERR_NOT_FOUND, CPNS_ERR_STORE, ...
 */
CPNS_API int cpns_server_pne_set_key(cpns_server *s, const char *PNEID,
                                     const uint8_t EUK[CPNS_KEY_LEN], int64_t now_ms);

typedef struct cpns_pne_info {
    const char *PNEID;
    int registered;     /* a registration succeeded at some point */
    int reachable;      /* routable now: its GW is connected and has not reported it detached */
    const char *PNGWID; /* of the last successful registration, NULL if none */
    const char *PNID;   /* likewise */
} cpns_pne_info;

typedef int (*cpns_pne_visit_fn)(void *arg, const cpns_pne_info *p);

/* 0 or CPNS_ERR_NOT_FOUND. The strings live as long as the PNE. */
CPNS_API int cpns_server_pne_get(const cpns_server *s, const char *PNEID, cpns_pne_info *out);
/* Every PNE, sorted by PNEID; a non-zero return of fn stops and is returned. */
CPNS_API int cpns_server_pne_foreach(const cpns_server *s, cpns_pne_visit_fn fn, void *arg);

/*
 * Creates a Service Group (7.8.6.3-1): stores and commits its inventory, then
 * generates a Group Key (version 1) and queues one SGroupKeyDeliveryRequest
 * per member. PNEIDs must be provisioned and distinct; n may be 0.
 * 0, CPNS_ERR_INVALID_ARG (bad SGID or PNEID, duplicate PNEID),
 * CPNS_ERR_NOT_FOUND (a PNEID not provisioned), CPNS_ERR_EXISTS, CPNS_ERR_NOMEM,
 * CPNS_ERR_STORE (then nothing was created).
 */
CPNS_API int cpns_server_sg_create(cpns_server *s, const char *SGID, const char *const *PNEIDs,
                                   size_t n, int64_t now_ms);

/*
 * Adds and removes members in one step. Additions get the current key;
 * any removal rekeys the group (a new version for every remaining member).
 * Adding a present member or removing an absent one is CPNS_ERR_INVALID_ARG
 * (nothing changes). Otherwise as cpns_server_sg_create().
 */
CPNS_API int cpns_server_sg_update(cpns_server *s, const char *SGID, const char *const *add,
                                   size_t n_add, const char *const *remove, size_t n_remove,
                                   int64_t now_ms);

/* A new key version for every member. 0, CPNS_ERR_NOT_FOUND, CPNS_ERR_NOMEM, CPNS_ERR_STORE. */
CPNS_API int cpns_server_sg_rekey(cpns_server *s, const char *SGID, int64_t now_ms);

/* Deletes the SG and its deliveries. 0, CPNS_ERR_NOT_FOUND, CPNS_ERR_STORE. */
CPNS_API int cpns_server_sg_delete(cpns_server *s, const char *SGID);

typedef struct cpns_sg_info {
    const char *SGID;
    uint32_t KeyVersion;
    int complete; /* every member is delivered the current version */
    size_t n_members, n_pending, n_sent, n_delivered, n_failed;
    char fingerprint[17]; /* of the current Group Key */
} cpns_sg_info;

typedef struct cpns_member_info {
    const char *PNEID;
    cpns_member_state state;
    int Return; /* last Return, -1 for none */
    uint32_t attempts;
    const char *PNID; /* NULL for none */
    uint32_t KeyVersion;
} cpns_member_info;

typedef int (*cpns_sg_visit_fn)(void *arg, const cpns_sg_info *sg);
typedef int (*cpns_member_visit_fn)(void *arg, const cpns_member_info *m);

CPNS_API int cpns_server_sg_get(const cpns_server *s, const char *SGID, cpns_sg_info *out);
CPNS_API int cpns_server_sg_foreach(const cpns_server *s, cpns_sg_visit_fn fn,
                                    void *arg); /* sorted */
CPNS_API int cpns_server_sg_members(const cpns_server *s, const char *SGID, cpns_member_visit_fn fn,
                                    void *arg); /* sorted by PNEID; CPNS_ERR_NOT_FOUND */

#define CPNS_LATENCY_BUCKETS 12
/* Upper bounds (ms) of the latency histogram buckets; the last is +Inf. */
CPNS_API extern const int64_t cpns_latency_bounds_ms[CPNS_LATENCY_BUCKETS - 1];

typedef struct cpns_server_stats {
    uint64_t deliveries_sent; /* every request sent, resends included */
    uint64_t deliveries_delivered;
    uint64_t deliveries_failed; /* members that ended failed */
    uint64_t returns[10];       /* responses received, by Return value (0..9) */
    uint64_t timeouts;
    uint64_t registrations[10]; /* PNE registrations answered, by Return value */
    uint64_t gw_registrations[10];
    uint64_t gws_connected;  /* now */
    uint64_t pnes_reachable; /* now */
    uint64_t latency_count;  /* first send to delivered, per delivery */
    double latency_sum_ms;
    uint64_t latency_buckets[CPNS_LATENCY_BUCKETS]; /* non-cumulative */
    uint64_t registrations_limited; /* PNE registrations refused by the rate limit (Return 0) */
    /* shared mode (cluster): */
    uint64_t fenced_writes; /* member writes refused: another instance owns the row */
    uint64_t
        owned_open_members; /* now: open deliveries whose PNE is routed through this instance */
    uint64_t refreshes;     /* scopes reloaded on another instance's change */
} cpns_server_stats;

CPNS_API void cpns_server_get_stats(const cpns_server *s, cpns_server_stats *out);

/*
 * Shared mode (several instances active on one store: a store with the
 * optional shared-mode ops, store.h; lib/server_cluster.c). Without those
 * ops these do nothing and return 0.
 *
 * cpns_server_refresh: another instance changed something (the store's
 * change feed): kind "sg" or "pne" and its id. Reloads that scope from the
 * store into memory: a new, changed or deleted SG (its key, its members'
 * rows: the rows of deliveries this instance carries stay as it has them
 * unless the store's are of a newer version), a new or re-keyed PNE; then
 * sends what its GWs can carry. Admin reads call it too, so that an answer
 * never shows another instance's work as this one's stale memory. 0,
 * CPNS_ERR_STORE, CPNS_ERR_NOMEM, CPNS_ERR_INVALID_ARG.
 *
 * cpns_server_gw_taken: GW PNGWID registered on another instance at this
 * epoch: if it is connected here with an older epoch, that connection
 * speaks for nobody now and is handed to cpns_server_pop_close(). 1 if so.
 *
 * cpns_server_take_conflict: 1 (once) when a commit since the last call
 * lost a race to another instance (two rekeys of one SG: the other key won
 * its version); the SGs it touched were reloaded from the store.
 */
CPNS_API int cpns_server_refresh(cpns_server *s, const char *kind, const char *key, int64_t now_ms);
CPNS_API int cpns_server_gw_taken(cpns_server *s, const char *PNGWID, int64_t epoch);
CPNS_API int cpns_server_take_conflict(cpns_server *s);
/* 1 when the store is shared (cluster mode). */
CPNS_API int cpns_server_shared(const cpns_server *s);

#ifdef __cplusplus
}
#endif
#endif
