/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file store.h
 * @brief The server's durable state, behind an ops table (DESIGN.md section 1).
 *
 * The server engine keeps its working state in memory and writes every change
 * through these ops; it reads the store only once, at start-up (load). Writes
 * accumulate in an open transaction that commit() makes durable atomically:
 * the engine commits once per batch (cpns_server_flush) and before the first
 * message carrying a new Group Key leaves, so a group of 100,000 members costs
 * a handful of commits, not 100,000.
 *
 * This header has the ops table, the records the ops carry and libcpns's
 * memory backend (tests, simulations). The SQLite and PostgreSQL backends
 * implement the same ops in a library of their own, libcpns-store
 * (cpns/store_db.h, pkg-config cpns-store), so that libcpns itself needs
 * neither SQLite nor libpq.
 *
 * Secrets (EUK, GK) pass through in clear; a backend that writes to disk
 * encrypts them at rest (the SQLite and PostgreSQL backends use the server's
 * master key).
 */
#ifndef CPNS_STORE_H
#define CPNS_STORE_H

#include "common.h"
#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where the delivery of a Group Key version to one member stands. */
typedef enum cpns_member_state {
    CPNS_MEMBER_PENDING = 0,   /**< waiting to be sent (no route yet, or a retry is due) */
    CPNS_MEMBER_SENT = 1,      /**< a request is out, waiting for its response */
    CPNS_MEMBER_DELIVERED = 2, /**< Return 1 with a valid KeyConfirmation: finished */
    CPNS_MEMBER_FAILED = 3,    /**< given up (see Return and PROTOCOL.md 3.2, 5.3) */
} cpns_member_state;

/**
 * The name of a member state, for logs and the admin API.
 *
 * @param st the state
 * @return "pending", "sent", "delivered" or "failed"; "?" for a value
 *         outside the enum (never NULL, static storage)
 */
CPNS_API const char *cpns_member_state_name(cpns_member_state st);

/** A provisioned PNE as stored. */
typedef struct cpns_store_pne {
    char PNEID[CPNS_ID_MAX + 1];  /**< the PNE's identifier (the key) */
    uint8_t EUK[CPNS_KEY_LEN];    /**< its EUK, in clear (backends encrypt it at rest) */
    int registered;               /**< 1 once a registration succeeded */
    char PNGWID[CPNS_ID_MAX + 1]; /**< the GW of the last successful registration */
    char PNID[CPNS_ID_MAX + 1];   /**< the PNID of the last successful registration */
} cpns_store_pne;

/** A Service Group as stored. */
typedef struct cpns_store_sg {
    char SGID[CPNS_ID_MAX + 1]; /**< the group's identifier (the key) */
    uint32_t KeyVersion;        /**< 0 until the first Group Key is generated */
    uint8_t GK[CPNS_KEY_LEN];   /**< the current Group Key (valid when KeyVersion > 0) */
} cpns_store_sg;

/** The delivery of an SG's Group Key to one member PNE, as stored. */
typedef struct cpns_store_member {
    char SGID[CPNS_ID_MAX + 1];  /**< the group (first half of the key) */
    char PNEID[CPNS_ID_MAX + 1]; /**< the member (second half of the key) */
    uint32_t KeyVersion;         /**< the version this delivery is for */
    cpns_member_state state;     /**< where the delivery stands */
    int32_t Return;              /**< last Return received, -1 for none */
    int32_t fail_reason;         /**< Return that failed it, -1 = timeout/none */
    uint32_t attempts;           /**< sends of this delivery so far */
    uint32_t malformed;          /**< Return 4 answers to this delivery */
    char PNID[CPNS_ID_MAX + 1];  /**< from the last response; "" for none */
    /**
     * Shared mode only (ignored by memory and SQLite): 1 for a row not in
     * the store yet (a new member), written as an insert stamped with the
     * PNE's current owner; 0 for delivery progress, written only while the
     * row's owner token is a GW session of this instance (see claim_gw).
     */
    int unfenced;
} cpns_store_member;

/** A registration Nonce already seen (replay protection), as stored. */
typedef struct cpns_store_nonce {
    char PNEID[CPNS_ID_MAX + 1];   /**< the PNE that sent it */
    uint8_t Nonce[CPNS_NONCE_LEN]; /**< the Nonce */
    int64_t seen_ms;               /**< when it was seen (ms, the engine's clock) */
} cpns_store_nonce;

/**
 * One PNE registration for claim_pnes() (shared mode): the PNE
 * (nonce.PNEID) registered through the GW PNGWID on this instance with
 * nonce.Nonce.
 */
typedef struct cpns_store_pne_claim {
    cpns_store_nonce nonce;       /**< the PNE, its Nonce and when it was seen */
    char PNGWID[CPNS_ID_MAX + 1]; /**< the GW it registered through (a session here) */
    char PNID[CPNS_ID_MAX + 1];   /**< that GW's PNID: the PNE's route */
} cpns_store_pne_claim;

/**
 * The callbacks load() and the shared-mode ops hand the stored records to; a
 * non-zero return aborts the walk and is returned by the op. load() needs all
 * four; claim_gw() and claim_pnes() call only those they document (l->pne of
 * claim_gw may be NULL).
 */
typedef struct cpns_store_loader {
    /** Called for each PNE. */
    int (*pne)(void *arg, const cpns_store_pne *p);
    /** Called for each SG. */
    int (*sg)(void *arg, const cpns_store_sg *sg);
    /** Called for each member row. */
    int (*member)(void *arg, const cpns_store_member *m);
    /** Called for each Nonce. */
    int (*nonce)(void *arg, const cpns_store_nonce *n);
} cpns_store_loader;

/** A store: a backend's object, which embeds struct cpns_store first. */
typedef struct cpns_store cpns_store;

/**
 * The operations of a store backend.
 *
 * Every op returns 0 or a negative cpns_error (CPNS_ERR_STORE, CPNS_ERR_NOMEM, ...).
 * put_* insert or replace by key; del_* of something absent is not an error.
 */
typedef struct cpns_store_ops {
    /** Hands every PNE, then every SG, then every member, then every nonce to l. */
    int (*load)(cpns_store *st, const cpns_store_loader *l, void *arg);
    /** Inserts or replaces a PNE. */
    int (*put_pne)(cpns_store *st, const cpns_store_pne *p);
    /** Inserts or replaces an SG. */
    int (*put_sg)(cpns_store *st, const cpns_store_sg *sg);
    /** Deletes an SG and all its members. */
    int (*del_sg)(cpns_store *st, const char *SGID);
    /** Inserts or replaces a member row. */
    int (*put_member)(cpns_store *st, const cpns_store_member *m);
    /** Deletes a member row. */
    int (*del_member)(cpns_store *st, const char *SGID, const char *PNEID);
    /** Records a Nonce. */
    int (*put_nonce)(cpns_store *st, const cpns_store_nonce *n);
    /** Forgets the Nonces seen before seen_before_ms. */
    int (*expire_nonces)(cpns_store *st, int64_t seen_before_ms);
    /** Makes every write since the last commit durable, all or nothing. */
    int (*commit)(cpns_store *st);
    /** Forgets every write since the last commit. */
    int (*rollback)(cpns_store *st);
    /** Frees the store (uncommitted writes are lost). */
    void (*close)(cpns_store *st);

    /**
     * Optional: a commit that does not block (NULL for backends whose commit
     * is a local fsync, as memory and SQLite). commit_start() hands every
     * write since the last commit or commit_start to the backend and sends it;
     * the caller may go on writing (those writes belong to the next commit).
     * At most one commit is in flight.
     */
    int (*commit_start)(cpns_store *st);
    /**
     * Optional, with commit_start: 0 once the commit in flight is durable,
     * CPNS_ERR_AGAIN while it is not yet known (wait until watch_fd is
     * readable, then poll again), or another negative error when it failed:
     * its writes then stay in the backend and are sent again, in order, by the
     * next commit_start() or commit(). commit() with one in flight waits for
     * it first.
     */
    int (*commit_poll)(cpns_store *st);
    /** Optional, with commit_start: the descriptor to wait on, -1 when none. */
    int (*watch_fd)(const cpns_store *st);

    /**
     * Optional, shared mode (several servers active on one database, the
     * PostgreSQL store opened with cluster = 1; NULL for memory and SQLite,
     * where the engine behaves exactly as without the shared-mode ops). All
     * of them are synchronous and committed when they return.
     *
     * claim_gw: a GW registered on this instance: its session's epoch is
     * bumped (the fencing token), every open member row owned by that GW is
     * adopted at the new epoch (sent becomes pending) and handed to
     * l->member (after the PNEs last registered through that GW, to l->pne
     * when set), and the previous holder is told. *epoch: the new epoch.
     */
    int (*claim_gw)(cpns_store *st, const char *PNGWID, const char *PNID,
                    const cpns_store_loader *l, void *arg, int64_t *epoch);
    /**
     * Optional, shared mode: the PNEs registered on this instance in one
     * loop turn, claimed in one transaction (a group commit of
     * registrations). For each claim c[i], result[i] is CPNS_ERR_EXISTS when
     * its Nonce was seen before, on any instance (nothing of that claim is
     * written), else 0: its Nonce is recorded, the PNE's route set to
     * c[i].PNGWID and c[i].PNID, and every member row of the PNE taken over
     * by that GW's session here (catch-up) and handed to l->member. A PNEID
     * appears at most once in c (CPNS_ERR_INVALID_ARG otherwise). 0 once
     * committed; on any error nothing is written and result is unspecified.
     * n = 0 does nothing.
     */
    int (*claim_pnes)(cpns_store *st, const cpns_store_pne_claim *c, size_t n, int *result,
                      const cpns_store_loader *l, void *arg);
    /**
     * Optional, shared mode: loads one SG (SGID; l->sg then its members,
     * CPNS_ERR_NOT_FOUND if it does not exist) or one PNE (PNEID; l->pne then
     * its member rows).
     */
    int (*load_scope)(cpns_store *st, const char *SGID, const char *PNEID,
                      const cpns_store_loader *l, void *arg);
    /**
     * Optional, shared mode: adds an admin change (kind "sg" or "pne", key
     * its id) to the next commit, which also wakes the other instances.
     */
    int (*note_change)(cpns_store *st, const char *kind, const char *key);
    /**
     * Optional, shared mode: the member rows of the last commits that were
     * not written because their owner token is not this instance's any more
     * (another instance took the GW or the PNE, or the row is gone): fn for
     * each, then forgotten. Returns their number.
     */
    int (*take_fenced)(cpns_store *st, void (*fn)(void *arg, const char *SGID, const char *PNEID),
                       void *arg);
} cpns_store_ops;

/** The base of every store object: backends embed it as their first member. */
struct cpns_store {
    const cpns_store_ops *ops; /**< the backend's operations */
};

/**
 * Creates a memory store: committed state survives cpns_server_free() and a
 * new cpns_server_new() on the same store, which is how tests simulate a
 * crash and restart (uncommitted writes are lost, as on a real crash).
 *
 * @param[out] out the new store, for cpns_store_free()
 * @return 0
 * @retval CPNS_ERR_INVALID_ARG when out is NULL
 * @retval CPNS_ERR_NOMEM when an allocation failed
 */
CPNS_API int cpns_store_mem_new(cpns_store **out);

/**
 * Releases any store through its ops->close (uncommitted writes are lost).
 *
 * @param st the store; NULL is fine
 */
CPNS_API void cpns_store_free(cpns_store *st);

#ifdef __cplusplus
}
#endif
#endif
