/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CPNS Server engine (server.h): the object and what ties its parts
 * together. It loads the durable state once, keeps the GW connections and
 * the routes through them, dispatches incoming frames to the registration and
 * delivery code, hands out frames to send (encoding each SGroupKeyDeliveryRequest
 * only when it is popped, so a 100,000-member group is a queue of pointers,
 * not 100,000 frames), runs the timers from one min-heap of member deadlines,
 * and writes every change to the store in one transaction per flush.
 *
 * The per-member state machine is in server_member.c, registrations in
 * server_register.c, administration in server_admin.c.
 */
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"

const int64_t cpns_latency_bounds_ms[CPNS_LATENCY_BUCKETS - 1] = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
};

int srv_pool_random(void *server, uint8_t *buf, size_t len)
{
    cpns_server *s = server;
    while (len) {
        if (s->pool_left == 0) {
            int rv = srv_random(s, s->pool, sizeof s->pool);
            if (rv)
                return rv;
            s->pool_left = sizeof s->pool;
        }
        size_t n = len < s->pool_left ? len : s->pool_left;
        uint8_t *from = s->pool + sizeof s->pool - s->pool_left;
        memcpy(buf, from, n);
        cpns_wipe(from, n); /* handed out once */
        s->pool_left -= n;
        buf += n;
        len -= n;
    }
    return 0;
}

int64_t srv_delay(const cpns_server *s, uint32_t attempt)
{
    int64_t d = s->cfg.delivery_timeout_ms;
    for (uint32_t i = 1; i < attempt && d < s->cfg.max_backoff_ms; i++)
        d *= 2;
    return d < s->cfg.max_backoff_ms ? d : s->cfg.max_backoff_ms;
}

uint64_t srv_pne_route(const cpns_server *s, const srv_pne *pne)
{
    if (!pne->route_bind)
        return 0;
    const srv_conn *c = cpns_map_get(&s->gws, pne->row.PNGWID);
    return c && c->bind == pne->route_bind ? c->conn : 0;
}

/* --- the timer heap: O(log n) per operation --- */

static int64_t deadline_at(const cpns_server *s, size_t i)
{
    return s->heap[i]->deadline;
}

static void heap_place(cpns_server *s, size_t i, srv_member *mb)
{
    s->heap[i] = mb;
    mb->heap_idx = i;
}

static void heap_up(cpns_server *s, size_t i)
{
    srv_member *mb = s->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (deadline_at(s, parent) <= mb->deadline)
            break;
        heap_place(s, i, s->heap[parent]);
        i = parent;
    }
    heap_place(s, i, mb);
}

static void heap_down(cpns_server *s, size_t i)
{
    srv_member *mb = s->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= s->heap_len)
            break;
        if (child + 1 < s->heap_len && deadline_at(s, child + 1) < deadline_at(s, child))
            child++;
        if (mb->deadline <= deadline_at(s, child))
            break;
        heap_place(s, i, s->heap[child]);
        i = child;
    }
    heap_place(s, i, mb);
}

void srv_timer_clear(cpns_server *s, srv_member *mb)
{
    size_t i = mb->heap_idx;
    mb->deadline = CPNS_NEVER;
    if (i == SRV_NO_HEAP)
        return;
    mb->heap_idx = SRV_NO_HEAP;
    srv_member *last = s->heap[--s->heap_len];
    if (i == s->heap_len)
        return;
    heap_place(s, i, last);
    heap_up(s, i);
    heap_down(s, last->heap_idx);
}

void srv_timer_set(cpns_server *s, srv_member *mb, int64_t deadline)
{
    if (mb->heap_idx != SRV_NO_HEAP) {
        mb->deadline = deadline;
        heap_up(s, mb->heap_idx);
        heap_down(s, mb->heap_idx);
        return;
    }
    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        srv_member **h = cpns_realloc(s->heap, cap * sizeof *h);
        if (!h) {
            /*
             * Without room for the timer the member cannot wait for its
             * response; it stays `sent` with no timer and is picked up by the
             * next catch-up. Memory this short fails everything else too.
             */
            cpns_log(&s->log, CPNS_LOG_ERROR, mb->sg->row.SGID, mb->pne->row.PNEID, 0,
                     "out of memory arming a timer");
            return;
        }
        s->heap = h;
        s->heap_cap = cap;
    }
    mb->deadline = deadline;
    heap_place(s, s->heap_len++, mb);
    heap_up(s, mb->heap_idx);
}

/* --- batched writes --- */

void srv_dirty_member(cpns_server *s, srv_member *mb)
{
    if (!srv_linked(&mb->dirty_link))
        srv_list_push(&s->dirty_members, &mb->dirty_link);
}

void srv_dirty_pne(cpns_server *s, srv_pne *pne)
{
    if (!srv_linked(&pne->dirty))
        srv_list_push(&s->dirty_pnes, &pne->dirty);
}

void srv_dirty_sg(cpns_server *s, srv_sg *sg)
{
    if (!srv_linked(&sg->dirty))
        srv_list_push(&s->dirty_sgs, &sg->dirty);
}

int srv_record_del(cpns_server *s, const char *SGID, const char *PNEID)
{
    if (s->n_dels == s->cap_dels) {
        size_t cap = s->cap_dels ? s->cap_dels * 2 : 16;
        srv_del *d = cpns_realloc(s->dels, cap * sizeof *d);
        if (!d)
            return CPNS_ERR_NOMEM;
        s->dels = d;
        s->cap_dels = cap;
    }
    srv_del *d = &s->dels[s->n_dels++];
    memset(d, 0, sizeof *d);
    strcpy(d->SGID, SGID);
    if (PNEID)
        strcpy(d->PNEID, PNEID);
    return 0;
}

static int nothing_to_write(const cpns_server *s)
{
    return srv_list_empty(&s->dirty_pnes) && srv_list_empty(&s->dirty_sgs) &&
           srv_list_empty(&s->dirty_members) && srv_list_empty(&s->nonces_unwritten) &&
           s->n_dels == 0 && s->expire_before_ms == 0 && !s->store_retained;
}

static void clear_list(srv_link *head)
{
    while (!srv_list_empty(head))
        srv_list_unlink(head->next);
}

/* Hands every dirty row to the store's open transaction, deletions first. */
static int write_dirty(cpns_server *s)
{
    cpns_store *st = s->cfg.store;
    const cpns_store_ops *ops = st->ops;
    int rv = 0;
    /* Deletions first: an SG member removed and added again in one batch ends present. */
    for (size_t i = 0; rv == 0 && i < s->n_dels; i++)
        rv = s->dels[i].PNEID[0] ? ops->del_member(st, s->dels[i].SGID, s->dels[i].PNEID)
                                 : ops->del_sg(st, s->dels[i].SGID);
    for (srv_link *l = s->dirty_pnes.next; rv == 0 && l != &s->dirty_pnes; l = l->next)
        rv = ops->put_pne(st, &SRV_CONTAINER(l, srv_pne, dirty)->row);
    for (srv_link *l = s->dirty_sgs.next; rv == 0 && l != &s->dirty_sgs; l = l->next)
        rv = ops->put_sg(st, &SRV_CONTAINER(l, srv_sg, dirty)->row);
    for (srv_link *l = s->dirty_members.next; rv == 0 && l != &s->dirty_members; l = l->next) {
        cpns_store_member row;
        srv_member_store_row(SRV_CONTAINER(l, srv_member, dirty_link), &row);
        rv = ops->put_member(st, &row);
    }
    for (srv_link *l = s->nonces_unwritten.next; rv == 0 && l != &s->nonces_unwritten; l = l->next)
        rv = ops->put_nonce(st, &SRV_CONTAINER(l, srv_nonce, unwritten)->row);
    if (rv == 0 && s->expire_before_ms)
        rv = ops->expire_nonces(st, s->expire_before_ms);
    return rv;
}

/* The rows written are the store's now: nothing is dirty. */
static void mark_written(cpns_server *s)
{
    clear_list(&s->dirty_pnes);
    clear_list(&s->dirty_sgs);
    while (!srv_list_empty(&s->dirty_members)) {
        SRV_CONTAINER(s->dirty_members.next, srv_member, dirty_link)->stored = 1;
        srv_list_unlink(s->dirty_members.next);
    }
    clear_list(&s->nonces_unwritten);
    s->n_dels = 0;
    s->expire_before_ms = 0;
}

static void log_commit_failure(cpns_server *s, int rv)
{
    cpns_log(&s->log, CPNS_LOG_ERROR, NULL, NULL, 0, "store commit failed: %s", cpns_strerror(rv));
}

/* The commit in flight ended, or a blocking commit waited for it. */
static void inflight_done(cpns_server *s, int ok)
{
    if (!s->inflight)
        return;
    s->inflight = 0;
    s->store_retained = !ok;
    if (!ok)
        s->barrier |= s->barrier_inflight;
    s->barrier_inflight = 0;
    srv_held_finish(s, ok);
}

/*
 * Shared mode: the commit carried a Group Key whose version another
 * instance made first (or an SG it deleted). The store dropped the batch;
 * the SGs it wrote are reloaded from the store (the winner's key replaces
 * this one, never sent: a new key is committed before its first frame) and
 * the rest of the batch is left to the next writes of those rows.
 */
static void lost_race(cpns_server *s)
{
    s->cfg.store->ops->rollback(s->cfg.store);
    size_t n = 0;
    for (srv_link *l = s->dirty_sgs.next; l != &s->dirty_sgs; l = l->next)
        n++;
    char(*ids)[CPNS_ID_MAX + 1] = cpns_calloc(n ? n : 1, sizeof *ids);
    size_t i = 0;
    for (srv_link *l = s->dirty_sgs.next; ids && l != &s->dirty_sgs; l = l->next)
        strcpy(ids[i++], SRV_CONTAINER(l, srv_sg, dirty)->row.SGID);
    mark_written(s);
    s->store_retained = 0;
    s->barrier = 0;
    srv_held_release(s);
    srv_cluster_conflict(s);
    cpns_log(&s->log, CPNS_LOG_WARN, NULL, NULL, 0,
             "commit refused: another instance changed the same SG first (%s); reloading it",
             cpns_strerror(CPNS_ERR_EXISTS));
    for (size_t k = 0; ids && k < i; k++)
        cpns_server_refresh(s, "sg", ids[k], s->now);
    cpns_free(ids);
}

/*
 * A blocking commit of everything, including a commit in flight. Shared
 * mode: the PNE registrations queued since the last flush are claimed first
 * (their own transaction, server_register.c), so that their Return 1s are
 * held for this commit and their catch-up is in it.
 */
static int flush(cpns_server *s)
{
    srv_claims_run(s);
    if (nothing_to_write(s) && !s->inflight) {
        s->barrier = 0;
        srv_held_release(s); /* their writes were committed by an earlier flush */
        return 0;
    }
    cpns_store *st = s->cfg.store;
    int rv = write_dirty(s);
    if (rv == 0)
        rv = st->ops->commit(st); /* waits for the commit in flight first */
    inflight_done(s, rv == 0);
    if (rv == CPNS_ERR_EXISTS && s->cluster) {
        lost_race(s);
        return rv;
    }
    if (rv) {
        /* Everything stays dirty, so the next flush writes it all again. */
        st->ops->rollback(st);
        log_commit_failure(s, rv);
        return rv;
    }
    mark_written(s);
    s->store_retained = 0;
    s->barrier = 0;
    srv_held_release(s);
    srv_cluster_after_commit(s);
    return 0;
}

int cpns_server_flush(cpns_server *s)
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    s->held_flush_failed = 0; /* pop may try again for held answers */
    return flush(s);
}

static int store_async(const cpns_server *s)
{
    return s->cfg.store->ops->commit_start != NULL;
}

int cpns_server_flush_start(cpns_server *s)
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    if (!store_async(s))
        return cpns_server_flush(s);
    if (s->inflight)
        return CPNS_ERR_AGAIN; /* queued claims wait too: their answers would wait anyway */
    s->held_flush_failed = 0;
    srv_claims_run(s); /* as in flush() */
    if (nothing_to_write(s)) {
        s->barrier = 0;
        srv_held_release(s);
        return 0;
    }
    cpns_store *st = s->cfg.store;
    int rv = write_dirty(s);
    if (rv == 0)
        rv = st->ops->commit_start(st);
    if (rv) {
        st->ops->rollback(st);
        log_commit_failure(s, rv);
        return rv;
    }
    /* The store keeps these writes, and sends them again if this commit fails. */
    mark_written(s);
    s->inflight = 1;
    s->barrier_inflight = s->barrier;
    s->barrier = 0;
    srv_held_start(s);
    return 0;
}

int cpns_server_flush_poll(cpns_server *s)
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    if (!s->inflight)
        return 0;
    cpns_store *st = s->cfg.store;
    int rv = st->ops->commit_poll(st);
    if (rv == CPNS_ERR_AGAIN)
        return rv;
    inflight_done(s, rv == 0);
    if (rv)
        log_commit_failure(s, rv);
    else
        srv_cluster_after_commit(s);
    return rv;
}

int cpns_server_flush_inflight(const cpns_server *s)
{
    return s && s->inflight;
}

int cpns_server_store_fd(const cpns_server *s)
{
    if (!s || !store_async(s) || !s->cfg.store->ops->watch_fd)
        return -1;
    return s->cfg.store->ops->watch_fd(s->cfg.store);
}

/* --- PNEs and nonces --- */

int64_t srv_wall(const cpns_server *s)
{
    return s->cfg.wall_clock ? s->cfg.wall_clock(s->cfg.wall_clock_arg) : s->now;
}

int srv_pne_derive(srv_pne *pne)
{
    int rv = cpns_kdf(pne->row.EUK, CPNS_INFO_WRAP, pne->K_wrap);
    if (rv == 0)
        rv = cpns_kdf(pne->row.EUK, CPNS_INFO_AUTH, pne->K_auth);
    return rv;
}

void srv_pne_free(srv_pne *pne)
{
    if (!pne)
        return;
    srv_list_unlink(&pne->dirty);
    cpns_wipe(pne, sizeof *pne);
    cpns_free(pne);
}

void srv_nonce_free(cpns_server *s, srv_nonce *n)
{
    cpns_map_remove(&s->nonces, n->key);
    srv_list_unlink(&n->fifo);
    srv_list_unlink(&n->unwritten);
    cpns_free(n);
}

/* --- loading the durable state --- */

static int load_pne(void *arg, const cpns_store_pne *p)
{
    cpns_server *s = arg;
    if (!cpns_id_valid(p->PNEID) || cpns_map_get(&s->pnes, p->PNEID))
        return CPNS_ERR_CORRUPT;
    srv_pne *pne = cpns_calloc(1, sizeof *pne);
    if (!pne)
        return CPNS_ERR_NOMEM;
    pne->row = *p;
    srv_list_init(&pne->members);
    int rv = srv_pne_derive(pne);
    if (rv == 0)
        rv = cpns_map_put(&s->pnes, pne->row.PNEID, pne);
    if (rv)
        srv_pne_free(pne);
    return rv;
}

static int load_sg(void *arg, const cpns_store_sg *row)
{
    cpns_server *s = arg;
    if (!cpns_id_valid(row->SGID) || cpns_map_get(&s->sgs, row->SGID))
        return CPNS_ERR_CORRUPT;
    srv_sg *sg = cpns_calloc(1, sizeof *sg);
    if (!sg)
        return CPNS_ERR_NOMEM;
    sg->row = *row;
    if (cpns_map_put(&s->sgs, sg->row.SGID, sg)) {
        cpns_wipe(sg, sizeof *sg);
        cpns_free(sg);
        return CPNS_ERR_NOMEM;
    }
    return 0;
}

static int load_member(void *arg, const cpns_store_member *row)
{
    cpns_server *s = arg;
    srv_sg *sg = cpns_map_get(&s->sgs, row->SGID);
    srv_pne *pne = cpns_map_get(&s->pnes, row->PNEID);
    if (!sg || !pne || cpns_map_get(&sg->members, row->PNEID) ||
        (unsigned)row->state > CPNS_MEMBER_FAILED)
        return CPNS_ERR_CORRUPT;
    srv_member *mb = srv_member_new(s, sg, pne, NULL);
    if (!mb)
        return CPNS_ERR_NOMEM;
    sg->n[mb->row.state]--;
    mb->row = (srv_member_row){row->KeyVersion, row->state,     row->Return, row->fail_reason,
                               row->attempts,   row->malformed, ""};
    strcpy(mb->row.PNID, row->PNID);
    mb->stored = 1;
    sg->n[mb->row.state]++;
    /* The request went down with the connection; it goes out again once routable. */
    if (mb->row.state == CPNS_MEMBER_SENT) {
        srv_member_transition(s, mb, CPNS_MEMBER_PENDING, 0, "request lost in a restart");
        /* Shared mode: the row may well be another instance's now; its claim says. */
        if (s->cluster)
            srv_list_unlink(&mb->dirty_link);
    }
    return 0;
}

/*
 * A nonce's seen_ms is wall time (it outlives the process); its expiry is
 * carried over to the monotonic clock of this run: what is left of its
 * lifetime by the wall clock now (#10.12).
 */
static int load_nonce(void *arg, const cpns_store_nonce *row)
{
    cpns_server *s = arg;
    int64_t ttl_ms = s->cfg.nonce_ttl_s * 1000;
    int64_t wall = srv_wall(s);
    if (row->seen_ms + ttl_ms <= wall) {
        s->expire_before_ms = wall - ttl_ms;
        return 0;
    }
    srv_nonce *n = cpns_calloc(1, sizeof *n);
    if (!n)
        return CPNS_ERR_NOMEM;
    n->row = *row;
    n->expires = s->now + (row->seen_ms + ttl_ms - wall);
    cpns_nonce_key(row->PNEID, row->Nonce, n->key);
    if (cpns_map_put(&s->nonces, n->key, n)) {
        cpns_free(n);
        return CPNS_ERR_NOMEM;
    }
    srv_list_push(&s->nonces_by_age, &n->fifo);
    return 0;
}

static int by_expiry(const void *a, const void *b)
{
    int64_t x = (*(srv_nonce *const *)a)->expires, y = (*(srv_nonce *const *)b)->expires;
    return (x > y) - (x < y);
}

/*
 * The store hands nonces back in key order; the sweep (handle_expiry) and
 * get_expiry read s->nonces_by_age from its head, so it is put in expiry
 * order once. New nonces are appended: they expire last.
 */
static int sort_loaded_nonces(cpns_server *s)
{
    size_t n = s->nonces.count, i = 0;
    if (n < 2)
        return 0;
    srv_nonce **v = cpns_malloc(n * sizeof *v);
    if (!v)
        return CPNS_ERR_NOMEM;
    while (!srv_list_empty(&s->nonces_by_age)) {
        v[i++] = SRV_CONTAINER(s->nonces_by_age.next, srv_nonce, fifo);
        srv_list_unlink(s->nonces_by_age.next);
    }
    qsort(v, i, sizeof *v, by_expiry);
    for (size_t j = 0; j < i; j++)
        srv_list_push(&s->nonces_by_age, &v[j]->fifo);
    cpns_free(v);
    return 0;
}

/* SGs whose inventory was committed but not their key, or members left on an old version. */
static int finish_load(cpns_server *s)
{
    int rv = sort_loaded_nonces(s);
    if (rv)
        return rv;
    for (cpns_map_iter it = cpns_map_begin(&s->sgs); cpns_map_next(&it);) {
        srv_sg *sg = it.val;
        if (sg->row.KeyVersion == 0) {
            if (s->cluster) {
                /*
                 * Another instance may be creating it right now: not generated
                 * here, but by cpns_server_finish_unkeyed() once it has stayed
                 * without a key for the glue's grace period.
                 */
                cpns_log(&s->log, CPNS_LOG_WARN, sg->row.SGID, NULL, 0,
                         "SG Inventory stored without a Group Key: left to the instance that "
                         "created it, finished here if it stays without one (shared mode)");
                continue;
            }
            rv = srv_sg_new_key(s, sg, "inventory stored before the restart");
            if (rv)
                return rv;
            continue;
        }
        for (cpns_map_iter mi = cpns_map_begin(&sg->members); cpns_map_next(&mi);) {
            srv_member *mb = mi.val;
            if (mb->row.KeyVersion != sg->row.KeyVersion)
                srv_member_start(s, mb, "delivery of the current version after a restart");
        }
        sg->complete_logged = sg->n[CPNS_MEMBER_DELIVERED] == sg->members.count;
    }
    return 0;
}

/* --- object --- */

int cpns_server_new(cpns_server **out, const cpns_server_config *cfg, int64_t now_ms)
{
    if (!out || !cfg || !cfg->store || !cfg->store->ops)
        return CPNS_ERR_INVALID_ARG;
    *out = NULL;
    cpns_server *s = cpns_calloc(1, sizeof *s);
    if (!s)
        return CPNS_ERR_NOMEM;
    s->cfg = *cfg;
    s->cluster =
        cfg->store->ops->claim_gw && cfg->store->ops->claim_pnes && cfg->store->ops->load_scope;
    if (s->cfg.delivery_timeout_ms <= 0)
        s->cfg.delivery_timeout_ms = 10000;
    if (s->cfg.max_attempts == 0)
        s->cfg.max_attempts = 5;
    if (s->cfg.max_backoff_ms <= 0)
        s->cfg.max_backoff_ms = 300000;
    if (s->cfg.time_window_s <= 0)
        s->cfg.time_window_s = 300;
    if (s->cfg.nonce_ttl_s <= 0)
        s->cfg.nonce_ttl_s = 600;
    s->log = (cpns_logger){cfg->log, cfg->log_arg, "server", NULL, !cfg->log_debug};
    s->now = now_ms;
    srv_list_init(&s->queue);
    srv_list_init(&s->dirty_pnes);
    srv_list_init(&s->dirty_sgs);
    srv_list_init(&s->dirty_members);
    srv_list_init(&s->nonces_by_age);
    srv_list_init(&s->nonces_unwritten);
    srv_list_init(&s->held);
    srv_list_init(&s->held_inflight);
    srv_list_init(&s->released);
    srv_list_init(&s->to_close);
    srv_list_init(&s->claims);

    const cpns_store_loader loader = {load_pne, load_sg, load_member, load_nonce};
    int rv = cpns_msg_decoder_new(&s->decoder);
    if (rv == 0)
        rv = cpns_gcm_new(&s->gcm);
    if (rv == 0)
        rv = s->cfg.store->ops->load(s->cfg.store, &loader, s);
    if (rv == 0)
        rv = finish_load(s);
    if (rv) {
        cpns_log(&s->log, CPNS_LOG_ERROR, NULL, NULL, 0, "loading the store failed: %s",
                 cpns_strerror(rv));
        cpns_server_free(s);
        return rv;
    }
    cpns_log(&s->log, CPNS_LOG_INFO, NULL, NULL, 0, "loaded %zu PNEs, %zu SGs", s->pnes.count,
             s->sgs.count);
    *out = s;
    return 0;
}

void cpns_server_free(cpns_server *s)
{
    if (!s)
        return;
    for (cpns_map_iter it = cpns_map_begin(&s->sgs); cpns_map_next(&it);)
        srv_sg_free(s, it.val);
    cpns_map_clear(&s->sgs);
    for (cpns_map_iter it = cpns_map_begin(&s->pnes); cpns_map_next(&it);)
        srv_pne_free(it.val);
    cpns_map_clear(&s->pnes);
    for (cpns_map_iter it = cpns_map_begin(&s->conns); cpns_map_next(&it);) {
        srv_conn *c = it.val;
        cpns_free(c->peer_cn);
        cpns_free(c);
    }
    cpns_map_clear(&s->conns);
    cpns_map_clear(&s->gws);
    cpns_map_clear(&s->tids);
    while (!srv_list_empty(&s->nonces_by_age))
        srv_nonce_free(s, SRV_CONTAINER(s->nonces_by_age.next, srv_nonce, fifo));
    cpns_map_clear(&s->nonces);
    for (cpns_map_iter it = cpns_map_begin(&s->refresh_sgs); cpns_map_next(&it);)
        cpns_free(it.val);
    cpns_map_clear(&s->refresh_sgs);
    for (cpns_map_iter it = cpns_map_begin(&s->missing_pnes); cpns_map_next(&it);)
        cpns_free(it.val);
    cpns_map_clear(&s->missing_pnes);
    srv_cluster_free(s);
    cpns_free(s->heap);
    cpns_free(s->dels);
    cpns_outq_clear(&s->outq);
    srv_held_free(s);
    srv_claims_free(s);
    cpns_wipe(s->frame, sizeof s->frame);
    cpns_wipe(s->pool, sizeof s->pool);
    cpns_msg_decoder_free(s->decoder);
    cpns_gcm_free(s->gcm);
    cpns_free(s);
}

/* --- GW connections --- */

int cpns_server_conn_open(cpns_server *s, uint64_t conn, const char *peer_cn, int64_t now_ms)
{
    if (!s || conn == 0)
        return CPNS_ERR_INVALID_ARG;
    s->now = now_ms;
    if (cpns_map_get_u64(&s->conns, conn))
        return CPNS_ERR_EXISTS;
    srv_conn *c = cpns_calloc(1, sizeof *c);
    if (!c)
        return CPNS_ERR_NOMEM;
    c->conn = conn;
    if (peer_cn && !(c->peer_cn = cpns_strdup(peer_cn))) {
        cpns_free(c);
        return CPNS_ERR_NOMEM;
    }
    if (cpns_map_put_u64(&s->conns, conn, c)) {
        cpns_free(c->peer_cn);
        cpns_free(c);
        return CPNS_ERR_NOMEM;
    }
    cpns_log(&s->log, CPNS_LOG_INFO, NULL, NULL, 0, "GW connection %llu opened (peer CN %s)",
             (unsigned long long)conn, peer_cn ? peer_cn : "none, insecure");
    return 0;
}

int cpns_server_conn_close(cpns_server *s, uint64_t conn, int64_t now_ms)
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    s->now = now_ms;
    srv_conn *c = cpns_map_remove_u64(&s->conns, conn);
    if (!c)
        return CPNS_ERR_NOT_FOUND;
    /*
     * Requests already sent through it time out and are resent once their
     * PNEs are reachable again; that needs no walk over them here.
     */
    if (c->registered && cpns_map_get(&s->gws, c->PNGWID) == c)
        cpns_map_remove(&s->gws, c->PNGWID);
    cpns_outq_drop_link(&s->outq, conn);
    srv_held_drop_conn(s, conn);
    srv_claims_drop_conn(s, conn);
    srv_list_unlink(&c->close_link);
    cpns_log(&s->log, CPNS_LOG_INFO, NULL, NULL, 0, "GW connection %llu (%s) closed",
             (unsigned long long)conn, c->registered ? c->PNGWID : "unregistered");
    cpns_free(c->peer_cn);
    cpns_free(c);
    return 0;
}

int cpns_server_conn_registered(const cpns_server *s, uint64_t conn)
{
    if (!s)
        return 0;
    const srv_conn *c = cpns_map_get_u64(&s->conns, conn);
    return c && c->registered;
}

int cpns_server_pop_close(cpns_server *s, uint64_t *conn)
{
    if (!s || !conn || srv_list_empty(&s->to_close))
        return 0;
    srv_conn *c = SRV_CONTAINER(s->to_close.next, srv_conn, close_link);
    srv_list_unlink(&c->close_link);
    *conn = c->conn;
    return 1;
}

int cpns_server_recv(cpns_server *s, uint64_t conn, const uint8_t *data, size_t len, int64_t now_ms)
{
    if (!s || (!data && len))
        return CPNS_ERR_INVALID_ARG;
    s->now = now_ms;
    srv_conn *c = cpns_map_get_u64(&s->conns, conn);
    if (!c)
        return CPNS_ERR_NOT_FOUND;
    if (c->superseded)
        return 0; /* its GW is on a newer connection; this one waits to be closed */
    cpns_msg m;
    memset(&m, 0, sizeof m);
    int rv = cpns_msg_decoder_decode(s->decoder, data, len, &m);
    if (rv == CPNS_ERR_NOMEM)
        return rv;
    int decoded = rv == 0;
    uint64_t tid = (m.present & CPNS_F_TID) ? m.TransactionID : 0;
    if (!c->registered && m.kind != CPNS_MSG_PNGW_REGISTRATION_REQUEST) {
        cpns_log(&s->log, CPNS_LOG_WARN, NULL, NULL, tid,
                 "dropped %s from unregistered connection %llu", cpns_msg_kind_name(m.kind),
                 (unsigned long long)conn);
        return 0;
    }
    switch (m.kind) {
    case CPNS_MSG_PNGW_REGISTRATION_REQUEST:
        return srv_on_gw_registration(s, c, &m, decoded);
    case CPNS_MSG_PNE_REGISTRATION_REQUEST:
        return srv_on_pne_registration(s, c, &m, decoded);
    case CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE:
        if (decoded)
            return srv_on_delivery_response(s, c, &m);
        break;
    case CPNS_MSG_PNE_STATUS_NOTIFICATION:
        if (decoded)
            srv_on_status(s, c, &m);
        break;
    default:
        /* A request the server does not serve, or a response it never asked for. */
        decoded = 0;
        break;
    }
    if (!decoded)
        cpns_log(&s->log, CPNS_LOG_WARN, NULL, cpns_msg_id(&m, CPNS_F_PNEID), tid,
                 "dropped %s %s from %s: %s", rv ? "malformed" : "unexpected",
                 cpns_msg_kind_name(m.kind), c->PNGWID, rv ? cpns_strerror(rv) : "not served");
    return 0;
}

/* --- output --- */

int cpns_server_pop(cpns_server *s, cpns_out *out)
{
    if (!s || !out)
        return CPNS_ERR_INVALID_ARG;
    if (cpns_outq_pop(&s->outq, out) == 1)
        return 1;
    for (;;) {
        if (srv_released_pop(s, out))
            return 1;
        if (srv_list_empty(&s->queue))
            return 0;
        srv_member *mb = SRV_CONTAINER(s->queue.next, srv_member, queue_link);
        uint64_t conn = 0;
        /* Shared mode: evicted, or of an SG another instance is creating (no key yet). */
        if (mb->row.state == CPNS_MEMBER_PENDING && mb->deadline == CPNS_NEVER && !mb->evicted &&
            mb->sg->row.KeyVersion)
            conn = srv_pne_route(s, mb->pne);
        if (!conn) {
            /* It stays pending; registration or Status="attached" queues it again. */
            srv_list_unlink(&mb->queue_link);
            continue;
        }
        /* A new Group Key is committed before the first frame carrying it. */
        if (s->barrier) {
            int rv = flush(s);
            if (rv)
                return rv;
            continue; /* answers that commit released go first */
        }
        if (s->barrier_inflight)
            return 0; /* its key is in the commit in flight: pop again once it is durable */
        /*
         * So is a held registration answer of this PNE before its deliveries,
         * its catch-up (server_held.c); the answer then goes out first. If the
         * commit fails the member is set aside until the answer is released.
         */
        if (mb->pne->held) {
            /* A non-blocking store does not commit here: the release kicks the member. */
            if (store_async(s) || s->held_flush_failed || flush(s) != 0) {
                s->held_flush_failed = 1;
                srv_list_unlink(&mb->queue_link);
            }
            continue;
        }
        srv_list_unlink(&mb->queue_link);
        int rv = srv_member_send(s, mb, conn, out);
        if (rv) {
            srv_member_kick(s, mb);
            return rv;
        }
        return 1;
    }
}

/* --- timers --- */

int64_t cpns_server_get_expiry(const cpns_server *s)
{
    if (!s)
        return CPNS_NEVER;
    int64_t t = s->heap_len ? s->heap[0]->deadline : CPNS_NEVER;
    if (!srv_list_empty(&s->nonces_by_age)) {
        const srv_nonce *n = SRV_CONTAINER(s->nonces_by_age.next, srv_nonce, fifo);
        if (n->expires < t)
            t = n->expires;
    }
    return t;
}

int cpns_server_handle_expiry(cpns_server *s, int64_t now_ms)
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    s->now = now_ms;
    while (s->heap_len && s->heap[0]->deadline <= now_ms) {
        srv_member *mb = s->heap[0];
        srv_timer_clear(s, mb);
        srv_member_on_timer(s, mb);
    }
    int expired = 0;
    while (!srv_list_empty(&s->nonces_by_age)) {
        srv_nonce *n = SRV_CONTAINER(s->nonces_by_age.next, srv_nonce, fifo);
        if (n->expires > now_ms)
            break;
        srv_nonce_free(s, n);
        expired = 1;
    }
    /* The store's rows are dated by the wall clock, as load_nonce() judges them. */
    int64_t before = srv_wall(s) - s->cfg.nonce_ttl_s * 1000;
    if (expired && before > s->expire_before_ms)
        s->expire_before_ms = before;
    return 0;
}

void cpns_server_set_log_debug(cpns_server *s, bool on)
{
    if (s)
        s->log.no_debug = !on;
}

/* --- stats --- */

void cpns_server_get_stats(const cpns_server *s, cpns_server_stats *out)
{
    if (!s || !out)
        return;
    *out = s->stats;
    out->gws_connected = s->gws.count;
    out->pnes_reachable = 0;
    out->owned_open_members = 0;
    for (cpns_map_iter it = cpns_map_begin(&s->pnes); cpns_map_next(&it);) {
        const srv_pne *pne = it.val;
        if (!srv_pne_route(s, pne))
            continue;
        out->pnes_reachable++;
        if (!s->cluster)
            continue;
        for (const srv_link *l = pne->members.next; l != &pne->members; l = l->next) {
            const srv_member *mb = SRV_CONTAINER(l, srv_member, pne_link);
            out->owned_open_members += !mb->evicted && (mb->row.state == CPNS_MEMBER_PENDING ||
                                                        mb->row.state == CPNS_MEMBER_SENT);
        }
    }
}
