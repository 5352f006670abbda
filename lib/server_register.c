/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The neighbouring procedures the server needs to route 7.8.6 messages
 * (PROTOCOL.md 3.1, 5.3): a GW registers its connection under its PNGWID, a
 * PNE registers through a GW with a Proof made from its Entity User Key, and
 * a GW reports its PNEs attached or detached. Together they decide which
 * connection, if any, reaches each PNE (srv_pne_route()).
 *
 * Return values produced here: 0 over the registration rate limit
 * (server_limits.c), 1 success, 4 malformed, 8 authentication
 * failed (CN/PNGWID mismatch, stale Time, bad Proof, replayed Nonce),
 * 9 unknown PNEID.
 */
#include <string.h>

#include "server_internal.h"

static void count(uint64_t *by_return, uint32_t Return)
{
    if (Return < 10)
        by_return[Return]++;
}

static int answer_gw(cpns_server *s, srv_conn *c, uint64_t tid, uint32_t Return)
{
    cpns_msg r;
    cpns_msg_init(&r, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, tid);
    r.Return = Return;
    r.present |= CPNS_F_RETURN;
    count(s->stats.gw_registrations, Return);
    return cpns_outq_push_msg(&s->outq, c->conn, &r);
}

int srv_on_gw_registration(cpns_server *s, srv_conn *c, const cpns_msg *m, int decoded)
{
    uint64_t tid = m->TransactionID;
    if (!decoded) {
        if (!(m->present & CPNS_F_TID))
            return 0;
        cpns_log(&s->log, CPNS_LOG_WARN, NULL, NULL, tid,
                 "malformed PNGWRegistrationRequest on connection %llu",
                 (unsigned long long)c->conn);
        return answer_gw(s, c, tid, CPNS_RETURN_MALFORMED);
    }
    if (c->peer_cn && strcmp(c->peer_cn, m->PNGWID) != 0) {
        cpns_log(&s->log, CPNS_LOG_WARN, NULL, NULL, tid,
                 "PNGWRegistrationRequest for %s from a certificate with CN %s: Return 8",
                 m->PNGWID, c->peer_cn);
        return answer_gw(s, c, tid, CPNS_RETURN_AUTH);
    }
    int64_t epoch = 0;
    if (s->cluster) {
        /*
         * Shared mode: the GW's session is claimed in the store first (its
         * epoch fences the instance that held it; its open rows come back
         * here), committed before the Return 1.
         */
        cpns_store *st = s->cfg.store;
        int rv = st->ops->claim_gw(st, m->PNGWID, m->PNID, &srv_claim_loader, s, &epoch);
        if (rv) {
            cpns_log(&s->log, CPNS_LOG_WARN, NULL, NULL, tid,
                     "PNGWRegistrationRequest for %s: claiming it in the store failed (%s): "
                     "Return 0",
                     m->PNGWID, cpns_strerror(rv));
            return answer_gw(s, c, tid, CPNS_RETURN_OTHER);
        }
    }
    int same = c->registered && strcmp(c->PNGWID, m->PNGWID) == 0;
    if (c->registered && !same && cpns_map_get(&s->gws, c->PNGWID) == c)
        cpns_map_remove(&s->gws, c->PNGWID);
    srv_conn *prev = cpns_map_get(&s->gws, m->PNGWID);
    if (prev && prev != c) {
        /*
         * The newer connection of a GW wins; the old one speaks for nobody
         * now (#10.5). It is handed to the glue to close
         * (cpns_server_pop_close), and what was queued for it is dropped: a
         * GW that reconnects without closing must not leave a connection
         * and its unread output behind.
         */
        prev->registered = 0;
        prev->bind = 0;
        prev->superseded = 1;
        cpns_outq_drop_link(&s->outq, prev->conn);
        srv_held_drop_conn(s, prev->conn);
        srv_claims_drop_conn(s, prev->conn);
        if (!srv_linked(&prev->close_link))
            srv_list_push(&s->to_close, &prev->close_link);
        cpns_log(&s->log, CPNS_LOG_INFO, NULL, NULL, tid,
                 "GW %s moved from connection %llu to %llu; the old one is closed", m->PNGWID,
                 (unsigned long long)prev->conn, (unsigned long long)c->conn);
    }
    strcpy(c->PNGWID, m->PNGWID);
    strcpy(c->PNID, m->PNID);
    if (!same)
        c->bind = ++s->next_bind;
    c->registered = 1;
    c->epoch = epoch;
    if (cpns_map_put(&s->gws, c->PNGWID, c)) {
        c->registered = 0;
        c->bind = 0;
        return CPNS_ERR_NOMEM;
    }
    if (s->cluster)
        cpns_log(&s->log, CPNS_LOG_INFO, NULL, NULL, tid,
                 "GW %s (PNID %s) registered on connection %llu, epoch %lld", c->PNGWID, c->PNID,
                 (unsigned long long)c->conn, (long long)epoch);
    else
        cpns_log(&s->log, CPNS_LOG_INFO, NULL, NULL, tid,
                 "GW %s (PNID %s) registered on connection %llu", c->PNGWID, c->PNID,
                 (unsigned long long)c->conn);
    srv_cluster_pending_refreshes(s);
    return answer_gw(s, c, tid, CPNS_RETURN_SUCCESS);
}

/* pne: the registered PNE with Return 1, whose answer waits for its commit; else NULL. */
static int answer_pne(cpns_server *s, srv_conn *c, uint64_t tid, uint32_t Return, const char *PNEID,
                      const char *PNID, srv_pne *pne)
{
    cpns_msg r;
    cpns_msg_init(&r, CPNS_MSG_PNE_REGISTRATION_RESPONSE, tid);
    r.Return = Return;
    r.present |= CPNS_F_RETURN;
    int rv = cpns_msg_set_id(&r, CPNS_F_PNEID, PNEID);
    if (rv == 0)
        rv = cpns_msg_set_id(&r, CPNS_F_PNID, PNID);
    if (rv)
        return 0; /* cannot be built: dropped */
    count(s->stats.registrations, Return);
    /* A success waits for its Nonce to be committed (#10.8, server_held.c). */
    if (pne)
        return srv_hold_msg(s, c->conn, &r, pne);
    return cpns_outq_push_msg(&s->outq, c->conn, &r);
}

static int proof_ok(const srv_pne *pne, const cpns_msg *m)
{
    if (m->Proof.len != CPNS_PROOF_LEN)
        return 0;
    /* The codec keeps Nonce decoded and Time as a number; both encodings are canonical. */
    char Nonce[CPNS_B64_LEN(CPNS_NONCE_LEN) + 1], Time[21];
    if (cpns_b64_encode(m->Nonce.data, m->Nonce.len, Nonce, sizeof Nonce) < 0)
        return 0;
    cpns_u64_to_str(m->Time, Time);
    uint8_t Proof[CPNS_PROOF_LEN];
    if (cpns_proof(pne->K_auth, pne->row.PNEID, Nonce, Time, Proof))
        return 0;
    int ok = cpns_mem_equal(Proof, m->Proof.data, CPNS_PROOF_LEN);
    cpns_wipe(Proof, sizeof Proof);
    return ok;
}

/* 1 when (PNEID, Nonce) was seen within the nonce lifetime. */
static int replayed(cpns_server *s, const char *key)
{
    srv_nonce *n = cpns_map_get(&s->nonces, key);
    if (!n)
        return 0;
    if (n->expires > s->now)
        return 1;
    srv_nonce_free(s, n); /* expired but not swept yet */
    return 0;
}

static int remember_nonce(cpns_server *s, const srv_pne *pne, const uint8_t *Nonce, const char *key)
{
    srv_nonce *n = cpns_calloc(1, sizeof *n);
    if (!n)
        return CPNS_ERR_NOMEM;
    memcpy(n->key, key, CPNS_NONCE_KEY_LEN);
    strcpy(n->row.PNEID, pne->row.PNEID);
    memcpy(n->row.Nonce, Nonce, CPNS_NONCE_LEN);
    n->row.seen_ms = srv_wall(s);                    /* persisted: a date */
    n->expires = s->now + s->cfg.nonce_ttl_s * 1000; /* an interval of this run */
    if (cpns_map_put(&s->nonces, n->key, n)) {
        cpns_free(n);
        return CPNS_ERR_NOMEM;
    }
    srv_list_push(&s->nonces_by_age, &n->fifo);
    srv_list_push(&s->nonces_unwritten, &n->unwritten);
    return 0;
}

static int refuse_pne(cpns_server *s, srv_conn *c, uint64_t tid, const char *PNEID, uint32_t Return,
                      const char *why)
{
    cpns_log(&s->log, CPNS_LOG_WARN, NULL, PNEID, tid,
             "PNERegistrationRequest via %s refused: %s (Return %u)", c->PNGWID, why,
             (unsigned)Return);
    return answer_pne(s, c, tid, Return, PNEID, c->PNID, NULL);
}

/* The registration is accepted (in shared mode: claimed in the store): the PNE's new route. */
static int accept_pne(cpns_server *s, srv_conn *c, srv_pne *pne, const uint8_t *Nonce,
                      const char *key)
{
    int rv = remember_nonce(s, pne, Nonce, key);
    if (rv)
        return rv;
    pne->row.registered = 1;
    strcpy(pne->row.PNGWID, c->PNGWID);
    strcpy(pne->row.PNID, c->PNID);
    pne->route_bind = c->bind;
    if (!s->cluster)
        srv_dirty_pne(s, pne); /* shared mode: claim_pnes wrote the route */
    return 0;
}

/* ... then its Return 1, held until the next commit, and its catch-up deliveries. */
static int answer_registered(cpns_server *s, srv_conn *c, srv_pne *pne, uint64_t tid)
{
    cpns_log(&s->log, CPNS_LOG_INFO, NULL, pne->row.PNEID, tid, "PNE registered via %s, PNID %s",
             c->PNGWID, c->PNID);
    int rv = answer_pne(s, c, tid, CPNS_RETURN_SUCCESS, pne->row.PNEID, pne->row.PNID, pne);
    srv_pne_catch_up(s, pne);
    return rv;
}

/*
 * Shared mode: the registration waits for its claim in the store (the Nonce
 * recorded where a replay through any instance finds it, the route, the
 * PNE's member rows taken over from wherever they were), which the next
 * flush runs for every registration queued meanwhile in one transaction
 * (srv_claims_run).
 */
static int queue_claim(cpns_server *s, srv_conn *c, const srv_pne *pne, const cpns_msg *m)
{
    srv_claim *cl = cpns_calloc(1, sizeof *cl);
    if (!cl)
        return CPNS_ERR_NOMEM;
    cl->conn = c->conn;
    cl->tid = m->TransactionID;
    strcpy(cl->row.nonce.PNEID, pne->row.PNEID);
    memcpy(cl->row.nonce.Nonce, m->Nonce.data, CPNS_NONCE_LEN);
    cl->row.nonce.seen_ms = srv_wall(s);
    strcpy(cl->row.PNGWID, c->PNGWID);
    strcpy(cl->row.PNID, c->PNID);
    srv_list_push(&s->claims, &cl->link);
    return 0;
}

int srv_on_pne_registration(cpns_server *s, srv_conn *c, const cpns_msg *m, int decoded)
{
    uint64_t tid = m->TransactionID;
    if (!decoded) {
        if (!(m->present & CPNS_F_TID) || !(m->present & CPNS_F_PNEID)) {
            cpns_log(&s->log, CPNS_LOG_WARN, NULL, NULL, tid,
                     "dropped a malformed PNERegistrationRequest without PNEID");
            return 0;
        }
        cpns_log(&s->log, CPNS_LOG_WARN, NULL, m->PNEID, tid,
                 "malformed PNERegistrationRequest: Return 4");
        return answer_pne(s, c, tid, CPNS_RETURN_MALFORMED, m->PNEID, c->PNID, NULL);
    }
    if (!srv_limits_admit_registration(s, c)) {
        cpns_log(&s->log, CPNS_LOG_DEBUG, NULL, m->PNEID, tid,
                 "PNERegistrationRequest via %s over the rate limit: Return 0", c->PNGWID);
        return answer_pne(s, c, tid, CPNS_RETURN_OTHER, m->PNEID, c->PNID, NULL);
    }
    srv_pne *pne = cpns_map_get(&s->pnes, m->PNEID);
    const char *why = NULL;
    uint32_t Return = CPNS_RETURN_AUTH;
    char key[CPNS_NONCE_KEY_LEN];
    int64_t now_s = srv_wall(s) / 1000; /* Time is a date: the wall clock (#10.12) */
    if (!pne) {
        Return = CPNS_RETURN_UNKNOWN;
        why = "PNEID not provisioned";
    } else if (m->Time > (uint64_t)INT64_MAX ||
               (now_s > (int64_t)m->Time ? now_s - (int64_t)m->Time : (int64_t)m->Time - now_s) >
                   s->cfg.time_window_s) {
        why = "Time outside the window";
    } else if (!proof_ok(pne, m)) {
        why = "Proof does not verify";
    } else {
        cpns_nonce_key(pne->row.PNEID, m->Nonce.data, key);
        if (replayed(s, key))
            why = "Nonce replayed";
    }
    if (why)
        return refuse_pne(s, c, tid, m->PNEID, Return, why);
    if (s->cluster)
        return queue_claim(s, c, pne, m);
    int rv = accept_pne(s, c, pne, m->Nonce.data, key);
    if (rv)
        return rv;
    return answer_registered(s, c, pne, tid);
}

/* --- shared mode: the claims of a turn --- */

/* At most this many registrations per claim transaction (its arrays). */
#define CLAIM_BATCH_MAX 4096

/* The connection of cl, while it still speaks for the GW it registered through; else NULL. */
static srv_conn *claim_conn(cpns_server *s, const srv_claim *cl)
{
    srv_conn *c = cpns_map_get_u64(&s->conns, cl->conn);
    if (!c || !c->registered || c->superseded || strcmp(c->PNGWID, cl->row.PNGWID) != 0)
        return NULL;
    return c;
}

/*
 * Takes up to cap claims off the queue into batch (their rows into rows):
 * each PNE at most once. A later registration of a PNE already in the batch
 * (the PNE sent again, or a replay, in the same turn) stays queued for the
 * next batch, which srv_claims_run runs right after this one: its claim then
 * sees this one's Nonce, and the last registration sets the route, in
 * arrival order. A claim whose connection is gone (closed, superseded, or
 * registered as another GW) is dropped without running: its answer could
 * not leave, and claiming would move the PNE's route and member rows to a
 * GW session that cannot reach it from here (the PNE retries with a new
 * Nonce, as after any unanswered registration). A PNE deleted meanwhile is
 * answered Return 9, as it would have been a moment later.
 */
static size_t take_batch(cpns_server *s, srv_claim **batch, cpns_store_pne_claim *rows, size_t cap)
{
    size_t k = 0;
    s->claim_gen++;
    for (srv_link *l = s->claims.next; l != &s->claims && k < cap;) {
        srv_link *next = l->next;
        srv_claim *cl = SRV_CONTAINER(l, srv_claim, link);
        srv_pne *pne = cpns_map_get(&s->pnes, cl->row.nonce.PNEID);
        srv_conn *c = claim_conn(s, cl);
        if (!c || !pne) {
            srv_list_unlink(l);
            if (c)
                refuse_pne(s, c, cl->tid, cl->row.nonce.PNEID, CPNS_RETURN_UNKNOWN,
                           "PNEID not provisioned");
            cpns_free(cl);
        } else if (pne->claim_gen != s->claim_gen) {
            pne->claim_gen = s->claim_gen;
            srv_list_unlink(l);
            batch[k] = cl;
            rows[k] = cl->row;
            k++;
        }
        l = next;
    }
    return k;
}

/*
 * One claim transaction, then what the synchronous claim did after it: a
 * replay seen by the cluster is refused (Return 8), a store failure answered
 * Return 0 (the whole batch: nothing of it was written; the PNEs retry), an
 * accepted PNE gets its route, then (after the refreshes its rows asked for)
 * its held Return 1 and its catch-up. The Return 1s are held until the
 * flush's member commit, which runs after this (server_held.c, #10.8): the
 * Nonce is durable before that, in the claim's own commit.
 */
static void run_batch(cpns_server *s, srv_claim **batch, cpns_store_pne_claim *rows, int *result,
                      size_t cap)
{
    size_t n = take_batch(s, batch, rows, cap);
    if (n == 0)
        return;
    cpns_store *st = s->cfg.store;
    int rv = st->ops->claim_pnes(st, rows, n, result, &srv_claim_loader, s);
    for (size_t i = 0; i < n; i++) {
        srv_claim *cl = batch[i];
        srv_conn *c = claim_conn(s, cl);
        srv_pne *pne = cpns_map_get(&s->pnes, cl->row.nonce.PNEID);
        int r = rv ? rv : result[i];
        result[i] = -1; /* not accepted */
        if (!c || !pne)
            continue; /* cannot happen: nothing closes or deletes during the claim */
        if (r == CPNS_ERR_EXISTS) {
            refuse_pne(s, c, cl->tid, pne->row.PNEID, CPNS_RETURN_AUTH,
                       "Nonce replayed (seen by the cluster)");
            continue;
        }
        if (r == 0) {
            char key[CPNS_NONCE_KEY_LEN];
            cpns_nonce_key(pne->row.PNEID, cl->row.nonce.Nonce, key);
            r = accept_pne(s, c, pne, cl->row.nonce.Nonce, key);
            if (r == 0) {
                result[i] = 0;
                continue;
            }
        }
        cpns_log(&s->log, CPNS_LOG_WARN, NULL, pne->row.PNEID, cl->tid,
                 "PNERegistrationRequest via %s: recording it in the store failed (%s): "
                 "Return 0",
                 c->PNGWID, cpns_strerror(r));
        answer_pne(s, c, cl->tid, CPNS_RETURN_OTHER, pne->row.PNEID, c->PNID, NULL);
    }
    srv_cluster_pending_refreshes(s); /* rows of SGs not loaded here yet */
    for (size_t i = 0; i < n; i++) {
        srv_claim *cl = batch[i];
        srv_conn *c = claim_conn(s, cl);
        srv_pne *pne = cpns_map_get(&s->pnes, cl->row.nonce.PNEID);
        if (result[i] == 0 && c && pne)
            answer_registered(s, c, pne, cl->tid);
        cpns_free(cl);
    }
}

void srv_claims_run(cpns_server *s)
{
    if (srv_list_empty(&s->claims))
        return;
    size_t cap = 0;
    for (srv_link *l = s->claims.next; l != &s->claims && cap < CLAIM_BATCH_MAX; l = l->next)
        cap++;
    srv_claim **batch = cpns_calloc(cap, sizeof *batch);
    cpns_store_pne_claim *rows = cpns_calloc(cap, sizeof *rows);
    int *result = cpns_calloc(cap, sizeof *result);
    srv_claim *one_claim;
    cpns_store_pne_claim one_row;
    int one_result;
    if (batch && rows && result) {
        while (!srv_list_empty(&s->claims))
            run_batch(s, batch, rows, result, cap);
    } else {
        /* Out of memory for the arrays: one claim per transaction, as before batching. */
        while (!srv_list_empty(&s->claims))
            run_batch(s, &one_claim, &one_row, &one_result, 1);
    }
    cpns_free(batch);
    cpns_free(rows);
    cpns_free(result);
}

void srv_claims_drop_conn(cpns_server *s, uint64_t conn)
{
    for (srv_link *l = s->claims.next; l != &s->claims;) {
        srv_link *next = l->next;
        srv_claim *cl = SRV_CONTAINER(l, srv_claim, link);
        if (cl->conn == conn) {
            srv_list_unlink(l);
            cpns_free(cl);
        }
        l = next;
    }
}

void srv_claims_free(cpns_server *s)
{
    if (!s->claims.next)
        return; /* not initialised */
    while (!srv_list_empty(&s->claims)) {
        srv_claim *cl = SRV_CONTAINER(s->claims.next, srv_claim, link);
        srv_list_unlink(&cl->link);
        cpns_free(cl);
    }
}

void srv_on_status(cpns_server *s, srv_conn *c, const cpns_msg *m)
{
    uint64_t tid = m->TransactionID;
    srv_pne *pne = cpns_map_get(&s->pnes, m->PNEID);
    if (!pne || !pne->row.registered || strcmp(pne->row.PNGWID, c->PNGWID) != 0) {
        cpns_log(&s->log, CPNS_LOG_WARN, NULL, m->PNEID, tid,
                 "ignored PNEStatusNotification from %s: not the GW of the PNE's last "
                 "registration",
                 c->PNGWID);
        return;
    }
    if (m->Status == CPNS_STATUS_DETACHED) {
        pne->route_bind = 0;
        cpns_log(&s->log, CPNS_LOG_INFO, NULL, pne->row.PNEID, tid, "detached from %s", c->PNGWID);
        return;
    }
    pne->route_bind = c->bind;
    cpns_log(&s->log, CPNS_LOG_INFO, NULL, pne->row.PNEID, tid, "attached to %s", c->PNGWID);
    srv_pne_kick(s, pne);
}
