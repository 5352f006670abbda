/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-member delivery state machine of the CPNS Server (7.8.6.3), in the
 * manner of hostap's per-station group-key machine: one srv_member per (SG,
 * PNE), four states (pending, sent, delivered, failed), and every change of
 * state goes through srv_member_transition(), which keeps the SG's counters,
 * marks the row for the next group commit and logs the event.
 *
 *   pending --pop (PNE reachable)--> sent --Return 1 + KeyConfirmation--> delivered
 *   sent --timeout / retryable Return--> pending (resend) ... --> failed
 *   sent --Return 2, 7, second 4--> failed        sent --Return 6--> pending (unrouted)
 *   failed (not by a second 4) --registration of its PNE--> pending (catch-up, fresh round)
 *
 * A delivery is the sending of one KeyVersion to one member. All of its
 * attempts stay outstanding (by TransactionID) until the delivery ends, so a
 * late response to an earlier attempt still finishes it.
 */
#include <string.h>

#include "server_internal.h"

int srv_random(cpns_server *s, uint8_t *buf, size_t len)
{
    return s->cfg.rand ? s->cfg.rand(s->cfg.rand_arg, buf, len) : cpns_random(NULL, buf, len);
}

/* --- outstanding attempts --- */

void srv_drop_outstanding(cpns_server *s, srv_member *mb)
{
    for (srv_attempt *a = mb->outstanding; a;) {
        srv_attempt *next = a->next;
        cpns_map_remove_u64(&s->tids, a->TransactionID);
        cpns_free(a);
        a = next;
    }
    mb->outstanding = NULL;
    mb->n_outstanding = 0;
}

static void remove_attempt(cpns_server *s, srv_member *mb, srv_attempt *a)
{
    for (srv_attempt **pp = &mb->outstanding; *pp; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            mb->n_outstanding--;
            break;
        }
    }
    cpns_map_remove_u64(&s->tids, a->TransactionID);
    cpns_free(a);
}

static int add_attempt(cpns_server *s, srv_member *mb, uint64_t TransactionID, uint64_t conn)
{
    srv_attempt *a = cpns_calloc(1, sizeof *a);
    if (!a)
        return CPNS_ERR_NOMEM;
    a->TransactionID = TransactionID;
    a->conn = conn;
    a->KeyVersion = mb->row.KeyVersion;
    a->mb = mb;
    if (cpns_map_put_u64(&s->tids, TransactionID, a)) {
        cpns_free(a);
        return CPNS_ERR_NOMEM;
    }
    a->next = mb->outstanding;
    mb->outstanding = a;
    mb->n_outstanding++;
    /*
     * Catch-up restarts the attempt count of the same delivery, so bound the
     * window: responses to the oldest attempts beyond it are ignored.
     */
    if (mb->n_outstanding > 2 * (size_t)s->cfg.max_attempts) {
        srv_attempt *last = mb->outstanding;
        while (last->next)
            last = last->next;
        remove_attempt(s, mb, last);
    }
    return 0;
}

/* --- life cycle --- */

/* The membership changed: the kept PNEID order no longer holds. */
static void forget_order(srv_sg *sg)
{
    cpns_free(sg->by_id);
    sg->by_id = NULL;
}

srv_member *srv_member_new(cpns_server *s, srv_sg *sg, srv_pne *pne, srv_member *in_slab)
{
    srv_member *mb = in_slab ? in_slab : cpns_calloc(1, sizeof *mb);
    if (!mb)
        return NULL;
    mb->in_slab = in_slab != NULL;
    mb->sg = sg; /* first: its identifiers are theirs */
    mb->pne = pne;
    mb->row.KeyVersion = sg->row.KeyVersion;
    mb->row.state = CPNS_MEMBER_PENDING;
    mb->row.Return = -1;
    mb->row.fail_reason = -1;
    mb->deadline = CPNS_NEVER;
    mb->heap_idx = SRV_NO_HEAP;
    mb->first_sent_ms = -1;
    if (cpns_map_put(&sg->members, mb->pne->row.PNEID, mb)) {
        if (!mb->in_slab)
            cpns_free(mb);
        return NULL;
    }
    srv_list_push(&pne->members, &mb->pne_link);
    sg->n[CPNS_MEMBER_PENDING]++;
    forget_order(sg);
    (void)s;
    return mb;
}

void srv_member_store_row(const srv_member *mb, cpns_store_member *out)
{
    strcpy(out->SGID, mb->sg->row.SGID);
    strcpy(out->PNEID, mb->pne->row.PNEID);
    out->KeyVersion = mb->row.KeyVersion;
    out->state = mb->row.state;
    out->Return = mb->row.Return;
    out->fail_reason = mb->row.fail_reason;
    out->attempts = mb->row.attempts;
    out->malformed = mb->row.malformed;
    strcpy(out->PNID, mb->row.PNID);
    out->unfenced = !mb->stored; /* shared mode: a new row is an insert, not progress */
}

/* Frees a member without touching its SG's member map (the caller owns that walk). */
static void member_release(cpns_server *s, srv_member *mb)
{
    srv_drop_outstanding(s, mb);
    srv_timer_clear(s, mb);
    srv_list_unlink(&mb->pne_link);
    srv_list_unlink(&mb->queue_link);
    srv_list_unlink(&mb->dirty_link);
    mb->sg->n[mb->row.state]--;
    if (!mb->in_slab)
        cpns_free(mb);
}

void srv_member_free(cpns_server *s, srv_member *mb)
{
    cpns_map_remove(&mb->sg->members, mb->pne->row.PNEID);
    forget_order(mb->sg);
    member_release(s, mb);
}

void srv_sg_free(cpns_server *s, srv_sg *sg)
{
    for (cpns_map_iter it = cpns_map_begin(&sg->members); cpns_map_next(&it);)
        member_release(s, it.val);
    cpns_map_clear(&sg->members);
    srv_list_unlink(&sg->dirty);
    cpns_hmac_free(sg->K_confirm);
    cpns_free(sg->by_id);
    cpns_free(sg->slab);
    cpns_wipe(sg, sizeof *sg);
    cpns_free(sg);
}

int srv_sg_by_id(srv_sg *sg, srv_member ***out, size_t *n)
{
    if (!sg->by_id && sg->members.count) {
        void **v;
        size_t count;
        int rv = cpns_map_sorted(&sg->members, &v, &count);
        if (rv)
            return rv;
        sg->by_id = (srv_member **)v;
    }
    *out = sg->by_id;
    *n = sg->members.count;
    return 0;
}

void srv_sg_check_complete(cpns_server *s, srv_sg *sg)
{
    if (sg->complete_logged || sg->n[CPNS_MEMBER_DELIVERED] != sg->members.count)
        return;
    sg->complete_logged = 1;
    cpns_log(&s->log, CPNS_LOG_INFO, sg->row.SGID, NULL, 0,
             "key distribution complete: KeyVersion %u held by all %zu members", sg->row.KeyVersion,
             sg->members.count);
}

void srv_member_transition(cpns_server *s, srv_member *mb, cpns_member_state to,
                           uint64_t TransactionID, const char *why)
{
    srv_sg *sg = mb->sg;
    cpns_member_state from = mb->row.state;
    sg->n[from]--;
    sg->n[to]++;
    mb->row.state = to;
    srv_dirty_member(s, mb);
    cpns_log(&s->log, to == CPNS_MEMBER_FAILED ? CPNS_LOG_INFO : CPNS_LOG_DEBUG, mb->sg->row.SGID,
             mb->pne->row.PNEID, TransactionID,
             "%s -> %s: %s (KeyVersion %u, attempt %u, Return %d)", cpns_member_state_name(from),
             cpns_member_state_name(to), why, mb->row.KeyVersion, mb->row.attempts,
             (int)mb->row.Return);
    if (to == CPNS_MEMBER_DELIVERED || to == CPNS_MEMBER_FAILED) {
        /* The delivery is over: its timer, queue place and attempts go with it. */
        srv_timer_clear(s, mb);
        srv_list_unlink(&mb->queue_link);
        srv_drop_outstanding(s, mb);
        if (to == CPNS_MEMBER_DELIVERED)
            s->stats.deliveries_delivered++;
        else
            s->stats.deliveries_failed++;
    } else if (to == CPNS_MEMBER_SENT) {
        srv_list_unlink(&mb->queue_link);
    }
    if (to == CPNS_MEMBER_DELIVERED)
        srv_sg_check_complete(s, sg);
}

void srv_member_kick(cpns_server *s, srv_member *mb)
{
    if (mb->row.state == CPNS_MEMBER_PENDING && mb->deadline == CPNS_NEVER &&
        !srv_linked(&mb->queue_link) && srv_pne_route(s, mb->pne))
        srv_list_push(&s->queue, &mb->queue_link);
}

void srv_member_start(cpns_server *s, srv_member *mb, const char *why)
{
    uint32_t previous = mb->row.KeyVersion;
    srv_drop_outstanding(s, mb);
    srv_timer_clear(s, mb);
    srv_list_unlink(&mb->queue_link);
    mb->row.KeyVersion = mb->sg->row.KeyVersion;
    mb->row.attempts = 0;
    mb->row.malformed = 0;
    mb->row.Return = -1;
    mb->row.fail_reason = -1;
    mb->first_sent_ms = -1;
    mb->sg->complete_logged = 0;
    srv_member_transition(s, mb, CPNS_MEMBER_PENDING, 0, why);
    /*
     * A new version needs no write of its own when the member's row is in
     * the store: a row of an older version restarts this very delivery when
     * it is loaded (finish_load), so a rekey of 100,000 members writes their
     * rows as they progress, not once more up front.
     */
    if (mb->stored && mb->row.KeyVersion != previous)
        srv_list_unlink(&mb->dirty_link);
    srv_member_kick(s, mb);
}

void srv_sg_set_key(cpns_server *s, srv_sg *sg, const uint8_t GK[CPNS_KEY_LEN], const char *why)
{
    memcpy(sg->row.GK, GK, CPNS_KEY_LEN);
    sg->row.KeyVersion++;
    cpns_hmac_free(sg->K_confirm);
    sg->K_confirm = NULL;
    srv_dirty_sg(s, sg);
    s->barrier = 1; /* committed before the first frame carrying it leaves */
    char fp[CPNS_FINGERPRINT_LEN + 1];
    cpns_fingerprint(sg->row.GK, CPNS_KEY_LEN, fp);
    cpns_log(&s->log, CPNS_LOG_INFO, sg->row.SGID, NULL, 0,
             "Group Key generated: KeyVersion %u, fingerprint %s (%s)", sg->row.KeyVersion, fp,
             why);
    sg->complete_logged = 0;
    /*
     * In PNEID order, the order of the member table: the rows that one
     * commit writes then share their pages (a group commit of 500 delivered
     * members writes ~10 pages, not ~500). Without memory for the order,
     * any order is correct.
     */
    srv_member **v;
    size_t n;
    if (srv_sg_by_id(sg, &v, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            srv_member_start(s, v[i], why);
    } else {
        for (cpns_map_iter it = cpns_map_begin(&sg->members); cpns_map_next(&it);)
            srv_member_start(s, it.val, why);
    }
    srv_sg_check_complete(s, sg);
}

int srv_sg_new_key(cpns_server *s, srv_sg *sg, const char *why)
{
    if (sg->row.KeyVersion == CPNS_KEYVERSION_MAX)
        return CPNS_ERR_STATE;
    uint8_t GK[CPNS_KEY_LEN];
    int rv = srv_random(s, GK, sizeof GK);
    if (rv == 0)
        srv_sg_set_key(s, sg, GK, why);
    cpns_wipe(GK, sizeof GK);
    return rv;
}

/* --- sending --- */

int srv_member_send(cpns_server *s, srv_member *mb, uint64_t conn, cpns_out *out)
{
    uint64_t TransactionID;
    int rv;
    do {
        rv = cpns_random_tid(srv_pool_random, s, &TransactionID);
        if (rv)
            return rv;
    } while (cpns_map_get_u64(&s->tids, TransactionID));

    uint8_t nonce[CPNS_GCM_NONCE_LEN], EncryptedGroupKey[CPNS_EGK_LEN];
    rv = srv_pool_random(s, nonce, sizeof nonce);
    if (rv == 0)
        rv = cpns_egk_wrap_ctx(s->gcm, mb->pne->K_wrap, mb->sg->row.SGID, mb->pne->row.PNEID,
                               mb->row.KeyVersion, mb->sg->row.GK, nonce, EncryptedGroupKey);
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, TransactionID);
    if (rv == 0)
        rv = cpns_msg_set_id(&m, CPNS_F_SGID, mb->sg->row.SGID);
    if (rv == 0)
        rv = cpns_msg_set_id(&m, CPNS_F_PNEID, mb->pne->row.PNEID);
    m.KeyVersion = mb->row.KeyVersion;
    m.present |= CPNS_F_KEYVERSION | CPNS_F_GROUPKEYINFO;
    if (rv == 0)
        rv = cpns_msg_set_blob(&m, CPNS_F_EGK, EncryptedGroupKey, sizeof EncryptedGroupKey);
    size_t len = 0;
    if (rv == 0)
        rv = cpns_msg_encode(&m, s->frame, sizeof s->frame, &len);
    if (rv == 0)
        rv = add_attempt(s, mb, TransactionID, conn);
    if (rv) {
        cpns_log(&s->log, CPNS_LOG_ERROR, mb->sg->row.SGID, mb->pne->row.PNEID, TransactionID,
                 "building SGroupKeyDeliveryRequest failed: %s", cpns_strerror(rv));
        return rv;
    }
    mb->row.attempts++;
    if (mb->first_sent_ms < 0)
        mb->first_sent_ms = s->now;
    int was_dirty = srv_linked(&mb->dirty_link);
    srv_member_transition(s, mb, CPNS_MEMBER_SENT, TransactionID, "SGroupKeyDeliveryRequest sent");
    /*
     * A send writes nothing by itself: a stored row loads as pending and is
     * sent again after a restart, which is what a "sent" row would do too
     * (load_member). The attempt count reaches the store with the outcome;
     * a crash in between forgets the attempts since the last write.
     */
    if (mb->stored && !was_dirty)
        srv_list_unlink(&mb->dirty_link);
    srv_timer_set(s, mb, s->now + srv_delay(s, mb->row.attempts));
    s->stats.deliveries_sent++;
    out->link = conn;
    out->data = s->frame;
    out->len = len;
    return 0;
}

/* --- reactions --- */

static void fail(cpns_server *s, srv_member *mb, int32_t reason, uint64_t tid, const char *why)
{
    mb->row.fail_reason = reason;
    srv_member_transition(s, mb, CPNS_MEMBER_FAILED, tid, why);
}

/* A retryable outcome: the next attempt after the delay of the current one, or the end. */
static void retry(cpns_server *s, srv_member *mb, int32_t Return, uint64_t tid, const char *why)
{
    if (mb->row.attempts >= s->cfg.max_attempts) {
        fail(s, mb, Return, tid, "last attempt used");
        return;
    }
    srv_timer_clear(s, mb);
    srv_list_unlink(&mb->queue_link);
    srv_member_transition(s, mb, CPNS_MEMBER_PENDING, tid, why);
    srv_timer_set(s, mb, s->now + srv_delay(s, mb->row.attempts));
}

void srv_member_on_timer(cpns_server *s, srv_member *mb)
{
    if (mb->row.state == CPNS_MEMBER_SENT) {
        s->stats.timeouts++;
        if (mb->row.attempts >= s->cfg.max_attempts) {
            fail(s, mb, -1, 0, "no response to the last attempt");
            return;
        }
        srv_member_transition(s, mb, CPNS_MEMBER_PENDING, 0, "response timeout, resend");
    }
    /* pending: a retry is due (or, unroutable, it waits for its PNE) */
    srv_member_kick(s, mb);
}

static void record_latency(cpns_server *s, srv_member *mb)
{
    if (mb->first_sent_ms < 0)
        return; /* sent before a restart: the first send time is gone */
    int64_t ms = s->now - mb->first_sent_ms;
    size_t b = 0;
    while (b < CPNS_LATENCY_BUCKETS - 1 && ms > cpns_latency_bounds_ms[b])
        b++;
    s->stats.latency_buckets[b]++;
    s->stats.latency_count++;
    s->stats.latency_sum_ms += (double)ms;
}

static int key_confirmation_ok(const srv_member *mb, const cpns_msg *m)
{
    if (!(m->present & CPNS_F_KC) || m->KeyConfirmation.len != CPNS_KC_LEN)
        return 0;
    uint8_t kc[CPNS_KC_LEN];
    if (cpns_key_confirmation_with(mb->sg->K_confirm, mb->sg->row.SGID, mb->pne->row.PNEID,
                                   mb->row.KeyVersion, kc))
        return 0;
    int ok = cpns_mem_equal(kc, m->KeyConfirmation.data, CPNS_KC_LEN);
    cpns_wipe(kc, sizeof kc);
    return ok;
}

/* Checks that a response belongs to the delivery its TransactionID names (PROTOCOL.md 5.3). */
static const char *mismatch(const srv_conn *c, const srv_attempt *a, const cpns_msg *m)
{
    const srv_member *mb = a->mb;
    if (a->conn != c->conn)
        return "arrived from another GW connection than its request went through";
    if (a->KeyVersion != mb->sg->row.KeyVersion)
        return "KeyVersion no longer current";
    if ((m->present & CPNS_F_KEYVERSION) && m->KeyVersion != a->KeyVersion)
        return "KeyVersion differs from the request";
    if ((m->present & CPNS_F_PNEID) && strcmp(m->PNEID, mb->pne->row.PNEID) != 0)
        return "PNEID differs from the request";
    if ((m->present & CPNS_F_SGID) && strcmp(m->SGID, mb->sg->row.SGID) != 0)
        return "SGID differs from the request";
    if (!(m->present & CPNS_F_RETURN))
        return "no Return";
    return NULL;
}

/* 7.8.6.3-4: the server checks Return; 7.8.6.3-5: Return 1 finishes the member. */
int srv_on_delivery_response(cpns_server *s, const srv_conn *c, const cpns_msg *m)
{
    uint64_t tid = m->TransactionID;
    srv_attempt *a = cpns_map_get_u64(&s->tids, tid);
    if (!a) {
        cpns_log(&s->log, CPNS_LOG_INFO, cpns_msg_id(m, CPNS_F_SGID), cpns_msg_id(m, CPNS_F_PNEID),
                 tid, "ignored SGroupKeyDeliveryResponse: no outstanding request");
        return 0;
    }
    srv_member *mb = a->mb;
    const char *bad = mismatch(c, a, m);
    if (bad) {
        cpns_log(&s->log, CPNS_LOG_WARN, mb->sg->row.SGID, mb->pne->row.PNEID, tid,
                 "ignored SGroupKeyDeliveryResponse: %s", bad);
        return 0;
    }
    /*
     * Keyed once per Group Key: each response then costs one HMAC, not HKDF
     * + HMAC. Made before anything changes, so that a failure leaves the
     * response unconsumed for a retry.
     */
    if (!mb->sg->K_confirm) {
        int rv = cpns_key_confirmation_key(mb->sg->row.GK, &mb->sg->K_confirm);
        if (rv)
            return rv;
    }
    /* One response per request: a copy of it must not count twice. */
    remove_attempt(s, mb, a);
    uint32_t Return = m->Return;
    if (Return < CPNS_ARRAY_LEN(s->stats.returns))
        s->stats.returns[Return]++;
    if (m->present & CPNS_F_PNID)
        strcpy(mb->row.PNID, m->PNID);
    if (Return == CPNS_RETURN_SUCCESS && !key_confirmation_ok(mb, m)) {
        cpns_log(&s->log, CPNS_LOG_WARN, mb->sg->row.SGID, mb->pne->row.PNEID, tid,
                 "Return 1 without a valid KeyConfirmation, treated as Return 0");
        Return = CPNS_RETURN_OTHER;
    }
    mb->row.Return = Return > INT32_MAX ? INT32_MAX : (int32_t)Return;
    srv_dirty_member(s, mb);

    switch (Return) {
    case CPNS_RETURN_SUCCESS:
        record_latency(s, mb);
        mb->row.fail_reason = -1;
        srv_member_transition(s, mb, CPNS_MEMBER_DELIVERED, tid, "Return 1, key confirmed");
        break;
    case CPNS_RETURN_DECRYPT:
        fail(s, mb, CPNS_RETURN_DECRYPT, tid, "Return 2: EUK mismatch, waits for re-provisioning");
        break;
    case CPNS_RETURN_STALE:
        cpns_log(&s->log, CPNS_LOG_WARN, mb->sg->row.SGID, mb->pne->row.PNEID, tid,
                 "Return 7: the PNE holds a newer or different key for KeyVersion %u, "
                 "possible replay",
                 mb->row.KeyVersion);
        fail(s, mb, CPNS_RETURN_STALE, tid, "Return 7: stale key version");
        break;
    case CPNS_RETURN_UNREACHABLE:
        mb->pne->route_bind = 0;
        if (mb->row.attempts >= s->cfg.max_attempts) {
            fail(s, mb, CPNS_RETURN_UNREACHABLE, tid, "Return 6 on the last attempt");
            break;
        }
        srv_timer_clear(s, mb);
        srv_list_unlink(&mb->queue_link);
        srv_member_transition(s, mb, CPNS_MEMBER_PENDING, tid,
                              "Return 6: PNE not reachable, waits for its registration");
        break;
    case CPNS_RETURN_MALFORMED:
        mb->row.malformed++;
        if (mb->row.malformed >= 2)
            fail(s, mb, CPNS_RETURN_MALFORMED, tid, "second Return 4");
        else
            retry(s, mb, CPNS_RETURN_MALFORMED, tid, "Return 4, retried once");
        break;
    default: /* 0, 3, 5, and 8, 9 or unknown values, which mean nothing here */
        retry(s, mb, mb->row.Return, tid, "retryable Return");
        break;
    }
    return 0;
}

/* --- per-PNE events --- */

/*
 * PROTOCOL.md 5.3 catch-up (#10.1): a member failed by Return 2 or 7 gets one
 * fresh round at each successful registration of its PNE. The registration's
 * Proof shows the PNE holds the EUK the server has, and a failure response
 * carries no KeyConfirmation: anyone on the path could have forged it, so it
 * must not fail the member for good. A fresh round that fails the same way
 * leaves it failed until re-provisioning, a rekey or the next registration.
 * A second Return 4 stays failed until re-provisioning or a rekey.
 */
static int stays_failed(const srv_member *mb)
{
    return mb->row.fail_reason == CPNS_RETURN_MALFORMED && mb->row.malformed >= 2;
}

/* PROTOCOL.md 5.3 catch-up: a registration resends what the PNE may have missed. */
void srv_pne_catch_up(cpns_server *s, srv_pne *pne)
{
    for (srv_link *l = pne->members.next; l != &pne->members; l = l->next) {
        srv_member *mb = SRV_CONTAINER(l, srv_member, pne_link);
        if (mb->row.state == CPNS_MEMBER_DELIVERED ||
            (mb->row.state == CPNS_MEMBER_FAILED && stays_failed(mb)))
            continue;
        srv_timer_clear(s, mb);
        srv_list_unlink(&mb->queue_link);
        mb->row.attempts = 0;
        mb->row.fail_reason = -1;
        srv_member_transition(s, mb, CPNS_MEMBER_PENDING, 0, "catch-up after registration");
        srv_member_kick(s, mb);
    }
}

void srv_pne_kick(cpns_server *s, srv_pne *pne)
{
    for (srv_link *l = pne->members.next; l != &pne->members; l = l->next)
        srv_member_kick(s, SRV_CONTAINER(l, srv_member, pne_link));
}

void srv_pne_revive(cpns_server *s, srv_pne *pne)
{
    for (srv_link *l = pne->members.next; l != &pne->members; l = l->next) {
        srv_member *mb = SRV_CONTAINER(l, srv_member, pne_link);
        if (mb->row.state == CPNS_MEMBER_FAILED && mb->row.fail_reason == CPNS_RETURN_DECRYPT)
            srv_member_start(s, mb, "PNE re-provisioned after Return 2");
    }
}
