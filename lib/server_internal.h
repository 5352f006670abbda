/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inside of the CPNS Server engine (server.h), shared by its files:
 *   server.c           the object, load, GW connections, recv dispatch, pop,
 *                      flush (group commit), timers, stats
 *   server_member.c    the per-member delivery state machine (7.8.6.3)
 *   server_register.c  PNGWRegistration, PNERegistration, PNEStatusNotification
 *   server_admin.c     provisioning, SG create/update/rekey/delete, queries
 *   server_limits.c    the registration rate limit per GW connection
 *   server_held.c      answers held until their commit (registration Nonces)
 *
 * Everything lives in memory; the store is written through its ops and read
 * only at start-up. Writes are batched: objects that changed are put on
 * "dirty" lists and written by cpns_server_flush() in one transaction.
 */
#ifndef CPNS_SERVER_INTERNAL_H
#define CPNS_SERVER_INTERNAL_H

#include <stddef.h>

#include "cpns/crypto.h"
#include "cpns/server.h"
#include "crypto_internal.h"
#include "internal.h"

/*
 * An intrusive doubly linked list: a list head is a sentinel, a node that is
 * on no list has next == NULL, so unlinking twice is harmless.
 */
typedef struct srv_link {
    struct srv_link *prev, *next;
} srv_link;

#define SRV_CONTAINER(ptr, type, field) ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

static inline void srv_list_init(srv_link *head)
{
    head->prev = head->next = head;
}

static inline int srv_list_empty(const srv_link *head)
{
    return head->next == head;
}

static inline int srv_linked(const srv_link *l)
{
    return l->next != NULL;
}

static inline void srv_list_push(srv_link *head, srv_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static inline void srv_list_unlink(srv_link *l)
{
    if (!l->next)
        return;
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

/*
 * A token bucket (server_limits.c), in thousandths of a token so that the
 * refill stays integer. All zero is a fresh, full bucket.
 */
typedef struct srv_bucket {
    uint64_t milli_tokens;
    int64_t last_ms; /* of the last refill (monotonic) */
    int used;        /* 0: fresh, full (a monotonic clock may well read 0) */
} srv_bucket;

/*
 * A GW connection; registered once its PNGWRegistrationRequest got Return 1.
 * Superseded when its GW registered again on a newer connection: it then
 * speaks for nobody, waits on s->to_close for the glue to close it
 * (cpns_server_pop_close) and everything it sends is dropped.
 */
typedef struct srv_conn {
    uint64_t conn;
    char *peer_cn; /* NULL on an insecure link */
    int registered;
    int superseded;
    srv_link close_link; /* on s->to_close while superseded and not yet handed out */
    char PNGWID[CPNS_ID_MAX + 1];
    char PNID[CPNS_ID_MAX + 1];
    uint64_t bind;         /* generation of this PNGWID binding, 0 while unregistered */
    int64_t epoch;         /* shared mode: the GW session's epoch this connection claimed */
    srv_bucket reg_bucket; /* PNERegistrationRequests admitted on this connection */
} srv_conn;

typedef struct srv_pne {
    cpns_store_pne row; /* PNEID, EUK, last successful registration */
    uint8_t K_wrap[CPNS_KEY_LEN];
    uint8_t K_auth[CPNS_KEY_LEN];
    /*
     * The binding generation of the GW connection that routes this PNE, or 0.
     * It is reachable while that binding is the current one of its PNGWID, so
     * a GW that reconnects must report the PNE attached again.
     */
    uint64_t route_bind;
    /*
     * Registration answers of this PNE held for their commit (server_held.c):
     * its deliveries wait, so that the catch-up never overtakes the answer.
     */
    uint32_t held;
    uint64_t claim_gen; /* shared mode: the claim batch it is in (server_register.c) */
    srv_link members;   /* its srv_member entries, via pne_link */
    srv_link dirty;
} srv_pne;

typedef struct srv_sg {
    cpns_store_sg row; /* SGID, KeyVersion, GK */
    cpns_map members;  /* PNEID -> srv_member */
    size_t n[4];       /* members per cpns_member_state */
    int complete_logged;
    cpns_hmac *K_confirm; /* of the current Group Key, made at its first response; or NULL */
    /*
     * The members in PNEID order (the store's order: sends and commits in
     * this order touch few pages), kept until the membership changes; NULL
     * until needed (srv_sg_by_id).
     */
    struct srv_member **by_id;
    /*
     * The members the SG was created with, in one block (one allocation for
     * 100,000 members instead of 100,000); freed with the SG. A member removed
     * before leaves its slot unused until then.
     */
    struct srv_member *slab;
    srv_link dirty;
} srv_sg;

struct srv_member;

/* One request sent for a delivery, outstanding until answered or the delivery ends. */
typedef struct srv_attempt {
    uint64_t TransactionID;
    uint64_t conn; /* the GW connection it went through */
    uint32_t KeyVersion;
    struct srv_member *mb;
    struct srv_attempt *next; /* the member's attempts, newest first */
} srv_attempt;

/*
 * The durable delivery state of a member: cpns_store_member without the
 * identifiers, which are its SG's and its PNE's (sg->row.SGID,
 * pne->row.PNEID). 130 bytes less per member: a 100,000-member group is
 * 13 MB less memory to touch (each first touch of a page is a fault).
 */
typedef struct srv_member_row {
    uint32_t KeyVersion;
    cpns_member_state state;
    int32_t Return;
    int32_t fail_reason;
    uint32_t attempts;
    uint32_t malformed;
    char PNID[CPNS_ID_MAX + 1];
} srv_member_row;

typedef struct srv_member {
    srv_member_row row; /* the durable delivery state */
    srv_sg *sg;
    srv_pne *pne;
    int64_t deadline;         /* response timeout or retry time; CPNS_NEVER for none */
    size_t heap_idx;          /* SRV_NO_HEAP when no timer is armed */
    int64_t first_sent_ms;    /* first send of this delivery, -1 before it */
    srv_attempt *outstanding; /* of the current delivery, newest first */
    size_t n_outstanding;
    srv_link pne_link;
    srv_link queue_link; /* on s->queue: due to be sent */
    srv_link dirty_link;
    int stored;  /* its row is in the store (committed), of whatever KeyVersion */
    int in_slab; /* allocated in sg->slab, not on its own */
    /*
     * Shared mode: a progress write of it was fenced (another instance owns
     * its row now): not sent from here until a claim or a refresh brings its
     * row back.
     */
    int evicted;
    uint64_t seen; /* shared mode: the refresh that last saw its row */
} srv_member;

#define SRV_NO_HEAP ((size_t)-1)
#define SRV_POOL_LEN 4000

typedef struct srv_nonce {
    char key[CPNS_NONCE_KEY_LEN]; /* cpns_nonce_key() */
    cpns_store_nonce row;         /* seen_ms: wall clock, persisted */
    int64_t expires;              /* monotonic (now_ms) time it is forgotten */
    srv_link fifo;                /* s->nonces_by_age */
    srv_link unwritten;           /* s->nonces_unwritten until flushed */
} srv_nonce;

/*
 * A frame that must wait for the next successful commit before it leaves: a
 * PNERegistrationResponse with Return 1, whose Nonce has to be durable first
 * (server_held.c). On s->held until the commit, then on s->released.
 */
typedef struct srv_frame {
    srv_link link;
    uint64_t conn;
    struct srv_pne *pne; /* whose deliveries wait for this answer; NULL once released */
    size_t len;
    uint8_t data[];
} srv_frame;

/* A deletion waiting for the next flush; PNEID "" deletes the whole SG. */
typedef struct srv_del {
    char SGID[CPNS_ID_MAX + 1];
    char PNEID[CPNS_ID_MAX + 1];
} srv_del;

struct cpns_server {
    cpns_server_config cfg; /* with the defaults filled in */
    cpns_logger log;
    int64_t now;           /* monotonic, of the last call that passed one */
    cpns_server_error err; /* what the last admin call failed on (cpns_server_last_error) */

    cpns_map pnes;   /* PNEID -> srv_pne */
    cpns_map sgs;    /* SGID -> srv_sg */
    cpns_map conns;  /* conn -> srv_conn */
    cpns_map gws;    /* PNGWID -> srv_conn (registered ones) */
    cpns_map tids;   /* TransactionID -> srv_attempt */
    cpns_map nonces; /* srv_nonce.key -> srv_nonce */
    uint64_t next_bind;

    srv_member **heap; /* min-heap of member deadlines */
    size_t heap_len, heap_cap;
    srv_link queue; /* pending members due to be sent, FIFO */

    srv_link dirty_pnes, dirty_sgs, dirty_members;
    srv_link nonces_by_age, nonces_unwritten;
    srv_del *dels;
    size_t n_dels, cap_dels;
    int64_t expire_before_ms; /* nonce expiry to write (wall clock), 0 for none */
    int barrier;              /* a new Group Key must be committed before the next send */
    int held_flush_failed;    /* pop's commit for a held answer failed: not again until flush */
    /*
     * A non-blocking commit is in flight (cpns_server_flush_start): its writes
     * belong to the store, its held answers wait on held_inflight, and
     * barrier_inflight says it carries a new Group Key, so pop sends nothing
     * until it is durable.
     */
    int inflight;
    int barrier_inflight;
    int store_retained; /* a failed commit's writes wait in the store for the next commit */

    cpns_outq outq;         /* registration responses that need no commit */
    srv_link held;          /* srv_frame: waiting for the next successful commit */
    srv_link held_inflight; /* srv_frame: waiting for the commit in flight */
    srv_link released;      /* srv_frame: committed, popped before any delivery request */
    srv_frame *popped;      /* the released frame handed out last, freed at the next pop */
    srv_link to_close;      /* superseded srv_conn (close_link) for cpns_server_pop_close() */
    uint8_t frame[2048];
    cpns_msg_decoder *decoder; /* one expat parser, reset per frame */
    cpns_gcm *gcm;             /* one AES-256-GCM context for every EncryptedGroupKey */
    /*
     * Random bytes for the public values of a send (TransactionID, GCM nonce),
     * drawn SRV_POOL_LEN at a time: one CSPRNG call per ~200 sends instead of
     * two per send. Group Keys never come from here (srv_random).
     */
    uint8_t pool[SRV_POOL_LEN];
    size_t pool_left;
    cpns_server_stats stats;
    /* shared mode (server_cluster.c): the store has the optional shared-mode ops */
    int cluster;
    int conflict;         /* a commit lost a race to another instance (cpns_server_take_conflict) */
    uint64_t refresh_gen; /* srv_member.seen of the refresh running */
    cpns_map refresh_sgs; /* SGIDs to refresh after a claim (a row of a newer version) */
    cpns_map missing_pnes; /* PNEIDs a refresh met that this instance does not know yet */
    cpns_map unkeyed;      /* SGID -> srv_unkeyed: SGs listed at KeyVersion 0 in the store */
    uint64_t unkeyed_gen;  /* the cpns_server_finish_unkeyed() call running */
    srv_link claims;       /* srv_claim: PNE registrations for the next claim batch, FIFO */
    uint64_t claim_gen;    /* the claim batch being built */
};

/*
 * Shared mode: a verified PNERegistrationRequest waiting for its claim in
 * the store (server_register.c): the registrations of one loop turn are
 * claimed in one transaction when the glue flushes.
 */
typedef struct srv_claim {
    srv_link link; /* in cpns_server.claims */
    uint64_t conn;
    uint64_t tid;
    cpns_store_pne_claim row; /* PNEID, Nonce, seen_ms, PNGWID, PNID */
} srv_claim;

/* server.c */
/* The wall clock (Unix ms) for what the protocol dates; now_ms without a wall_clock. */
int64_t srv_wall(const cpns_server *s);
int srv_pool_random(void *server, uint8_t *buf, size_t len);
int64_t srv_delay(const cpns_server *s, uint32_t attempt);
uint64_t srv_pne_route(const cpns_server *s, const srv_pne *pne);
void srv_timer_set(cpns_server *s, srv_member *mb, int64_t deadline);
void srv_timer_clear(cpns_server *s, srv_member *mb);
void srv_dirty_member(cpns_server *s, srv_member *mb);
void srv_dirty_pne(cpns_server *s, srv_pne *pne);
void srv_dirty_sg(cpns_server *s, srv_sg *sg);
int srv_record_del(cpns_server *s, const char *SGID, const char *PNEID);
int srv_pne_derive(srv_pne *pne);
void srv_pne_free(srv_pne *pne);
void srv_nonce_free(cpns_server *s, srv_nonce *n);

/* server_member.c */
int srv_random(cpns_server *s, uint8_t *buf, size_t len);
/* The store's row of a member. */
void srv_member_store_row(const struct srv_member *mb, cpns_store_member *out);
/* A new member of sg, allocated or (in_slab not NULL) made in that zeroed slot of sg->slab. */
srv_member *srv_member_new(cpns_server *s, srv_sg *sg, srv_pne *pne, srv_member *in_slab);
void srv_member_free(cpns_server *s, srv_member *mb);
void srv_member_transition(cpns_server *s, srv_member *mb, cpns_member_state to,
                           uint64_t TransactionID, const char *why);
void srv_member_start(cpns_server *s, srv_member *mb, const char *why);
void srv_member_kick(cpns_server *s, srv_member *mb);
int srv_member_send(cpns_server *s, srv_member *mb, uint64_t conn, cpns_out *out);
void srv_member_on_timer(cpns_server *s, srv_member *mb);
/* 0, or CPNS_ERR_NOMEM / CPNS_ERR_CRYPTO with nothing changed (the response can be retried). */
int srv_on_delivery_response(cpns_server *s, const srv_conn *c, const cpns_msg *m);
/* The members of sg in PNEID order (*n of them), sorted once per membership; CPNS_ERR_NOMEM. */
int srv_sg_by_id(srv_sg *sg, srv_member ***out, size_t *n);
void srv_pne_catch_up(cpns_server *s, srv_pne *pne);
void srv_pne_kick(cpns_server *s, srv_pne *pne);
void srv_pne_revive(cpns_server *s, srv_pne *pne);
/* A new Group Key (version + 1) for every member; the caller checks KeyVersion < max. */
void srv_sg_set_key(cpns_server *s, srv_sg *sg, const uint8_t GK[CPNS_KEY_LEN], const char *why);
int srv_sg_new_key(cpns_server *s, srv_sg *sg, const char *why);
void srv_sg_free(cpns_server *s, srv_sg *sg);

/* server_cluster.c: shared mode */
void srv_drop_outstanding(cpns_server *s, srv_member *mb);
void srv_sg_check_complete(cpns_server *s, srv_sg *sg);
extern const cpns_store_loader srv_claim_loader;
/* After a commit: evicts the members whose writes were fenced. */
void srv_cluster_after_commit(cpns_server *s);
/* A commit lost a race (CPNS_ERR_EXISTS): reloads what it was about. */
void srv_cluster_conflict(cpns_server *s);
/* The refreshes a claim asked for. */
void srv_cluster_pending_refreshes(cpns_server *s);
/* Frees the record of SGs seen without a key (cpns_server_finish_unkeyed). */
void srv_cluster_free(cpns_server *s);
/* Records an admin change for the other instances (no-op without shared mode). */
int srv_note_change(cpns_server *s, const char *kind, const char *key);

/* server_held.c */
/* Encodes m for conn and holds it, and the deliveries of pne, until the next successful commit. */
int srv_hold_msg(cpns_server *s, uint64_t conn, const cpns_msg *m, struct srv_pne *pne);
/* After a successful commit: the held frames may leave. */
void srv_held_release(cpns_server *s);
/* A non-blocking commit starts: the frames held so far wait for it. */
void srv_held_start(cpns_server *s);
/* It ended: ok releases its frames; otherwise they wait for the next commit. */
void srv_held_finish(cpns_server *s, int ok);
/* 1 with *out set to the next released frame (valid until the next call), else 0. */
int srv_released_pop(cpns_server *s, cpns_out *out);
/* Drops every held or released frame for conn (closed or superseded). */
void srv_held_drop_conn(cpns_server *s, uint64_t conn);
void srv_held_free(cpns_server *s);

/* server_limits.c: 1 when one more PNERegistrationRequest on c is within the rate limit. */
int srv_limits_admit_registration(cpns_server *s, srv_conn *c);

/* server_register.c */
int srv_on_gw_registration(cpns_server *s, srv_conn *c, const cpns_msg *m, int decoded);
int srv_on_pne_registration(cpns_server *s, srv_conn *c, const cpns_msg *m, int decoded);
void srv_on_status(cpns_server *s, srv_conn *c, const cpns_msg *m);
/* Shared mode: runs every queued claim (one transaction per batch), answering each. */
void srv_claims_run(cpns_server *s);
/* Forgets the queued claims of conn (closed or superseded): their answers could not leave. */
void srv_claims_drop_conn(cpns_server *s, uint64_t conn);
void srv_claims_free(cpns_server *s);

#endif
