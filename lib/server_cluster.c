/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared mode of the engine (server.h, cpns_server_refresh and friends):
 * several instances active on one store that has the optional shared-mode
 * ops (store.h: claim_gw, claim_pnes, load_scope, note_change, take_fenced;
 * the PostgreSQL store in cluster mode). With any other store none of this
 * runs and the engine is exactly the single-instance one.
 *
 * Each instance is a cache of the slice it serves: the deliveries whose PNE
 * is routed through one of its GW connections are its own, and its memory of
 * them is newer than the store's (progress not committed yet). Everything
 * else in its memory may be stale, and is brought up to date from the store:
 *   - a claim (a GW or a PNE registered here) hands back the rows taken
 *     over, which replace the memory of them;
 *   - a refresh (another instance's admin change, or an admin read here)
 *     reloads one SG or one PNE: rows of a newer version, and rows of
 *     deliveries this instance does not carry, replace the memory of them;
 *   - a progress write the store fenced (the row's owner token is not one
 *     of this instance's GW sessions any more) evicts that member: it is not
 *     sent from here until a claim or a refresh brings its row back;
 *   - an SG whose creator stopped between its two commits (inventory, then
 *     first key) is finished by whichever instance's attempt commits first
 *     (cpns_server_finish_unkeyed, below).
 */
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"

enum { APPLY_CLAIM, APPLY_REFRESH };

typedef struct scope_ctx {
    cpns_server *s;
    int mode;
    srv_sg *sg;   /* the SG a refresh loads */
    srv_pne *pne; /* the PNE a refresh loads */
    int rekeyed;  /* ... whose EUK changed */
} scope_ctx;

int cpns_server_shared(const cpns_server *s)
{
    return s && s->cluster;
}

int srv_note_change(cpns_server *s, const char *kind, const char *key)
{
    if (!s->cluster || !s->cfg.store->ops->note_change)
        return 0;
    return s->cfg.store->ops->note_change(s->cfg.store, kind, key);
}

/* A set of identifiers (the key is the value, owned by the map). */
static void id_set_add(cpns_map *m, const char *id)
{
    if (cpns_map_get(m, id))
        return;
    char *k = cpns_strdup(id);
    if (k && cpns_map_put(m, k, k) != 0)
        cpns_free(k);
}

static void id_set_clear(cpns_map *m)
{
    for (cpns_map_iter it = cpns_map_begin(m); cpns_map_next(&it);)
        cpns_free(it.val);
    cpns_map_clear(m);
}

/* Takes mb out of the sending: no timer, no queue place. */
static void set_aside(cpns_server *s, srv_member *mb)
{
    srv_timer_clear(s, mb);
    srv_list_unlink(&mb->queue_link);
}

/* The store's row replaces the memory of mb. */
static void take_row(cpns_server *s, srv_member *mb, const cpns_store_member *row)
{
    srv_sg *sg = mb->sg;
    set_aside(s, mb);
    srv_list_unlink(&mb->dirty_link);
    srv_drop_outstanding(s, mb);
    sg->n[mb->row.state]--;
    mb->row.KeyVersion = row->KeyVersion;
    mb->row.state = row->state;
    mb->row.Return = row->Return;
    mb->row.fail_reason = row->fail_reason;
    mb->row.attempts = row->attempts;
    mb->row.malformed = row->malformed;
    strcpy(mb->row.PNID, row->PNID);
    sg->n[mb->row.state]++;
    mb->stored = 1;
    mb->evicted = 0;
    mb->first_sent_ms = -1;
    if (mb->row.KeyVersion < sg->row.KeyVersion)
        srv_member_start(s, mb, "a newer KeyVersion made by another instance");
    else if (mb->row.state == CPNS_MEMBER_PENDING && sg->row.KeyVersion)
        srv_member_kick(s, mb);
    else if (mb->row.state == CPNS_MEMBER_DELIVERED)
        srv_sg_check_complete(s, sg);
}

/*
 * Merges a store row into mb. A claim makes the row this instance's: the
 * store's copy wins unless memory holds a delivery of that version the
 * store does not have yet (committed soon). A refresh takes the store's copy
 * of rows this instance does not carry; of its own, only a newer version, a
 * delivery made elsewhere, or a revival (failed -> pending after a new EUK).
 */
static void apply_row(cpns_server *s, srv_member *mb, const cpns_store_member *row, int mode)
{
    if (row->KeyVersion > mb->sg->row.KeyVersion) {
        /* A key this instance does not hold yet: the SG is refreshed first. */
        set_aside(s, mb);
        mb->evicted = 1;
        id_set_add(&s->refresh_sgs, mb->sg->row.SGID);
        return;
    }
    int take;
    const srv_member_row *m = &mb->row;
    if (row->KeyVersion != m->KeyVersion)
        take = row->KeyVersion > m->KeyVersion;
    else if (mode == APPLY_CLAIM || !srv_pne_route(s, mb->pne))
        take = !(m->state == CPNS_MEMBER_DELIVERED && row->state != CPNS_MEMBER_DELIVERED);
    else
        take = (row->state == CPNS_MEMBER_DELIVERED && m->state != CPNS_MEMBER_DELIVERED) ||
               (m->state == CPNS_MEMBER_FAILED && row->state == CPNS_MEMBER_PENDING);
    if (take) {
        take_row(s, mb, row);
    } else if (mode == APPLY_CLAIM && mb->evicted) {
        mb->evicted = 0;
        srv_member_kick(s, mb);
    }
}

static int scope_pne(void *arg, const cpns_store_pne *row)
{
    scope_ctx *x = arg;
    cpns_server *s = x->s;
    srv_pne *pne = cpns_map_get(&s->pnes, row->PNEID);
    if (!pne) {
        if (!cpns_id_valid(row->PNEID))
            return CPNS_ERR_CORRUPT;
        pne = cpns_calloc(1, sizeof *pne);
        if (!pne)
            return CPNS_ERR_NOMEM;
        pne->row = *row;
        srv_list_init(&pne->members);
        int rv = srv_pne_derive(pne);
        if (rv == 0)
            rv = cpns_map_put(&s->pnes, pne->row.PNEID, pne);
        if (rv) {
            srv_pne_free(pne);
            return rv;
        }
        cpns_log(&s->log, CPNS_LOG_INFO, NULL, row->PNEID, 0,
                 "PNE provisioned on another instance: loaded");
    } else {
        if (!cpns_mem_equal(pne->row.EUK, row->EUK, CPNS_KEY_LEN)) {
            memcpy(pne->row.EUK, row->EUK, CPNS_KEY_LEN);
            srv_pne_derive(pne);
            x->rekeyed = 1;
            cpns_log(&s->log, CPNS_LOG_INFO, NULL, row->PNEID, 0,
                     "PNE re-provisioned on another instance: new EUK loaded");
        }
        if (row->registered) {
            /* It registered through another GW since: not reachable by the old route. */
            if (strcmp(row->PNGWID, pne->row.PNGWID) != 0)
                pne->route_bind = 0;
            pne->row.registered = 1;
            strcpy(pne->row.PNGWID, row->PNGWID);
            strcpy(pne->row.PNID, row->PNID);
        }
    }
    x->pne = pne;
    return 0;
}

static int scope_sg(void *arg, const cpns_store_sg *row)
{
    scope_ctx *x = arg;
    cpns_server *s = x->s;
    srv_sg *sg = cpns_map_get(&s->sgs, row->SGID);
    if (!sg) {
        if (!cpns_id_valid(row->SGID))
            return CPNS_ERR_CORRUPT;
        sg = cpns_calloc(1, sizeof *sg);
        if (!sg)
            return CPNS_ERR_NOMEM;
        sg->row = *row;
        if (cpns_map_put(&s->sgs, sg->row.SGID, sg)) {
            cpns_wipe(sg, sizeof *sg);
            cpns_free(sg);
            return CPNS_ERR_NOMEM;
        }
        cpns_log(&s->log, CPNS_LOG_INFO, row->SGID, NULL, 0,
                 "SG created on another instance: loaded (KeyVersion %u)", row->KeyVersion);
    } else if (row->KeyVersion > sg->row.KeyVersion ||
               (row->KeyVersion == sg->row.KeyVersion && row->KeyVersion &&
                !cpns_mem_equal(row->GK, sg->row.GK, CPNS_KEY_LEN))) {
        /* A newer key, or the key that won this version over one made here. */
        memcpy(sg->row.GK, row->GK, CPNS_KEY_LEN);
        sg->row.KeyVersion = row->KeyVersion;
        cpns_hmac_free(sg->K_confirm);
        sg->K_confirm = NULL;
        sg->complete_logged = 0;
        srv_list_unlink(&sg->dirty);
        char fp[CPNS_FINGERPRINT_LEN + 1];
        cpns_fingerprint(sg->row.GK, CPNS_KEY_LEN, fp);
        cpns_log(&s->log, CPNS_LOG_INFO, row->SGID, NULL, 0,
                 "Group Key of another instance loaded: KeyVersion %u, fingerprint %s",
                 row->KeyVersion, fp);
    }
    x->sg = sg;
    return 0;
}

static int scope_member(void *arg, const cpns_store_member *row)
{
    scope_ctx *x = arg;
    cpns_server *s = x->s;
    srv_pne *pne = cpns_map_get(&s->pnes, row->PNEID);
    srv_sg *sg = cpns_map_get(&s->sgs, row->SGID);
    if (!pne) {
        id_set_add(&s->missing_pnes, row->PNEID);
        return 0;
    }
    if (!sg) {
        id_set_add(&s->refresh_sgs, row->SGID);
        return 0;
    }
    srv_member *mb = cpns_map_get(&sg->members, row->PNEID);
    if (!mb) {
        if (sg != x->sg) {
            /* A member added elsewhere: its SG's refresh brings it. */
            id_set_add(&s->refresh_sgs, row->SGID);
            return 0;
        }
        mb = srv_member_new(s, sg, pne, NULL);
        if (!mb)
            return CPNS_ERR_NOMEM;
        mb->stored = 1;
        take_row(s, mb, row);
    } else {
        apply_row(s, mb, row, x->mode);
    }
    mb->seen = s->refresh_gen;
    return 0;
}

static int scope_nonce(void *arg, const cpns_store_nonce *n)
{
    (void)arg, (void)n;
    return 0;
}

static const cpns_store_loader scope_loader = {scope_pne, scope_sg, scope_member, scope_nonce};

/* Claims: the rows taken over by a GW's or a PNE's registration here. */
static int claim_member(void *arg, const cpns_store_member *row)
{
    scope_ctx x = {arg, APPLY_CLAIM, NULL, NULL, 0};
    return scope_member(&x, row);
}

static int claim_pne_row(void *arg, const cpns_store_pne *row)
{
    scope_ctx x = {arg, APPLY_CLAIM, NULL, NULL, 0};
    return scope_pne(&x, row);
}

static int claim_sg_row(void *arg, const cpns_store_sg *row)
{
    scope_ctx x = {arg, APPLY_CLAIM, NULL, NULL, 0};
    return scope_sg(&x, row);
}

const cpns_store_loader srv_claim_loader = {claim_pne_row, claim_sg_row, claim_member, scope_nonce};

/* The SG is gone from the store: deleted by another instance. */
static void drop_sg(cpns_server *s, const char *SGID)
{
    srv_sg *sg = cpns_map_remove(&s->sgs, SGID);
    if (!sg)
        return;
    cpns_log(&s->log, CPNS_LOG_INFO, SGID, NULL, 0, "SG deleted on another instance (%zu members)",
             sg->members.count);
    srv_sg_free(s, sg);
}

/* Members this refresh did not see (and that are in the store): removed elsewhere. */
static void prune(cpns_server *s, srv_sg *sg)
{
    size_t n = 0;
    srv_member **gone = cpns_calloc(sg->members.count ? sg->members.count : 1, sizeof *gone);
    if (!gone)
        return;
    for (cpns_map_iter it = cpns_map_begin(&sg->members); cpns_map_next(&it);) {
        srv_member *mb = it.val;
        if (mb->seen != s->refresh_gen && mb->stored)
            gone[n++] = mb;
    }
    for (size_t i = 0; i < n; i++) {
        cpns_log(&s->log, CPNS_LOG_INFO, sg->row.SGID, gone[i]->pne->row.PNEID, 0,
                 "member removed on another instance");
        srv_member_free(s, gone[i]);
    }
    cpns_free(gone);
}

/*
 * Members left on an older version than their SG's (a rekey elsewhere
 * writes no member rows: a row below the SG's version is pending for it, as
 * at load) start the delivery of the current one.
 */
static void restart_behind(cpns_server *s, srv_sg *sg)
{
    srv_member **v;
    size_t n;
    if (srv_sg_by_id(sg, &v, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (v[i]->row.KeyVersion < sg->row.KeyVersion)
            srv_member_start(s, v[i], "a new KeyVersion made by another instance");
}

static int refresh(cpns_server *s, const char *kind, const char *key, int depth)
{
    cpns_store *st = s->cfg.store;
    scope_ctx x = {s, APPLY_REFRESH, NULL, NULL, 0};
    int rv;
    s->refresh_gen++;
    s->stats.refreshes++;
    if (strcmp(kind, "sg") == 0) {
        rv = st->ops->load_scope(st, key, NULL, &scope_loader, &x);
        if (rv == CPNS_ERR_NOT_FOUND) {
            drop_sg(s, key);
            rv = 0;
        } else if (rv == 0 && x.sg) {
            prune(s, x.sg);
            restart_behind(s, x.sg);
            srv_sg_check_complete(s, x.sg);
        }
    } else if (strcmp(kind, "pne") == 0) {
        rv = st->ops->load_scope(st, NULL, key, &scope_loader, &x);
        if (rv == CPNS_ERR_NOT_FOUND)
            rv = 0;
        if (rv == 0 && x.pne && x.rekeyed && srv_pne_route(s, x.pne))
            srv_pne_revive(s, x.pne);
    } else {
        return CPNS_ERR_INVALID_ARG;
    }
    if (rv)
        cpns_log(&s->log, CPNS_LOG_ERROR, NULL, NULL, 0,
                 "reloading %s %s from the store failed: %s", kind, key, cpns_strerror(rv));
    if (rv == 0 && depth == 0 && s->missing_pnes.count) {
        /* PNEs provisioned elsewhere that this SG names: load them, then the SG again. */
        void **ids;
        size_t n;
        if (cpns_map_sorted(&s->missing_pnes, &ids, &n) == 0) {
            for (size_t i = 0; i < n; i++)
                refresh(s, "pne", ids[i], 1);
            cpns_free(ids);
        }
        id_set_clear(&s->missing_pnes);
        if (strcmp(kind, "sg") == 0)
            rv = refresh(s, kind, key, 1);
    }
    id_set_clear(&s->missing_pnes);
    return rv;
}

void srv_cluster_pending_refreshes(cpns_server *s)
{
    /* A refresh may ask for more (a row of yet another SG): a few rounds at most. */
    for (int round = 0; round < 4 && s->refresh_sgs.count; round++) {
        void **ids;
        size_t n;
        if (cpns_map_sorted(&s->refresh_sgs, &ids, &n) != 0)
            return;
        cpns_map moved = s->refresh_sgs;
        memset(&s->refresh_sgs, 0, sizeof s->refresh_sgs);
        for (size_t i = 0; i < n; i++)
            refresh(s, "sg", ids[i], 0);
        cpns_free(ids);
        id_set_clear(&moved);
    }
}

int cpns_server_refresh(cpns_server *s, const char *kind, const char *key, int64_t now_ms)
{
    if (!s || !kind || !key)
        return CPNS_ERR_INVALID_ARG;
    if (!s->cluster)
        return 0;
    s->now = now_ms;
    int rv = refresh(s, kind, key, 0);
    srv_cluster_pending_refreshes(s);
    return rv;
}

int cpns_server_gw_taken(cpns_server *s, const char *PNGWID, int64_t epoch)
{
    if (!s || !PNGWID || !s->cluster)
        return 0;
    srv_conn *c = cpns_map_get(&s->gws, PNGWID);
    if (!c || c->epoch >= epoch)
        return 0;
    cpns_map_remove(&s->gws, PNGWID);
    c->registered = 0;
    c->bind = 0;
    c->superseded = 1;
    cpns_outq_drop_link(&s->outq, c->conn);
    srv_held_drop_conn(s, c->conn);
    if (!srv_linked(&c->close_link))
        srv_list_push(&s->to_close, &c->close_link);
    cpns_log(&s->log, CPNS_LOG_INFO, NULL, NULL, 0,
             "GW %s registered on another instance (epoch %lld): its connection %llu here is "
             "closed",
             PNGWID, (long long)epoch, (unsigned long long)c->conn);
    return 1;
}

int cpns_server_take_conflict(cpns_server *s)
{
    if (!s || !s->conflict)
        return 0;
    s->conflict = 0;
    return 1;
}

/* --- fenced writes --- */

typedef struct evict_ctx {
    cpns_server *s;
    size_t n;
} evict_ctx;

static void evict(void *arg, const char *SGID, const char *PNEID)
{
    evict_ctx *x = arg;
    cpns_server *s = x->s;
    s->stats.fenced_writes++;
    x->n++;
    srv_sg *sg = cpns_map_get(&s->sgs, SGID);
    srv_member *mb = sg ? cpns_map_get(&sg->members, PNEID) : NULL;
    if (!mb)
        return;
    set_aside(s, mb);
    mb->evicted = 1;
    cpns_log(&s->log, CPNS_LOG_DEBUG, SGID, PNEID, 0,
             "write fenced: another instance owns this delivery now");
}

void srv_cluster_after_commit(cpns_server *s)
{
    cpns_store *st = s->cfg.store;
    if (!s->cluster || !st->ops->take_fenced)
        return;
    evict_ctx x = {s, 0};
    st->ops->take_fenced(st, evict, &x);
    if (x.n)
        cpns_log(&s->log, CPNS_LOG_WARN, NULL, NULL, 0,
                 "%zu member writes fenced: another instance owns those deliveries now; they are "
                 "not sent from here",
                 x.n);
}

void srv_cluster_conflict(cpns_server *s)
{
    s->conflict = 1;
}

/* --- SGs left without a key --- */

/*
 * Creating an SG takes two commits (docs/INTERPRETATIONS.md item 21): the
 * SG Inventory at KeyVersion 0, then its first Group Key. An instance that
 * dies, or is cut off, between the two leaves the SG at KeyVersion 0, where
 * no delivery can start. Any other instance finishes it: the glue hands in,
 * periodically, every SG the store holds at KeyVersion 0; one listed in
 * every call for grace_ms (this engine's monotonic clock, from the call
 * that first listed it) is reloaded and, if still without a key, given its
 * first one here, committed at once; then it is delivered as any new key
 * is (each member by the instance that owns its GW session).
 *
 * Why a grace period and not the creator's liveness: the store does not
 * record which instance wrote an inventory, and a live creator holds an SG
 * at version 0 only for the moment between its two commits (seconds for
 * 100,000 members on a busy database), while a paused or partitioned one
 * can look alive (its instance row not yet expired) or dead (expired, then
 * resumed) either way. Correctness needs neither: the key goes through the
 * compare-and-set concurrent rekeys use (cpns_put_key: the version must
 * follow the stored one, one key per (SGID, KeyVersion)). If the creator
 * commits version 1 first, this attempt's commit is refused and
 * lost_race() (server.c) loads the creator's key; if this one commits
 * first, the creator's commit is refused and it loads this key. The grace
 * period only keeps the race rare. One clock: only this engine's now_ms is
 * compared with itself.
 */
typedef struct srv_unkeyed {
    int64_t since; /* now_ms of the call that first listed it */
    uint64_t gen;  /* the last call that listed it */
    char SGID[CPNS_ID_MAX + 1];
} srv_unkeyed;

void srv_cluster_free(cpns_server *s)
{
    for (cpns_map_iter it = cpns_map_begin(&s->unkeyed); cpns_map_next(&it);)
        cpns_free(it.val);
    cpns_map_clear(&s->unkeyed);
}

/*
 * 1 if this engine committed SGID's first key, 0 if it needs none from here
 * (keyed, deleted, or the race lost), CPNS_ERR_AGAIN to try again at the next
 * call, or the error.
 */
static int finish_one(cpns_server *s, const char *SGID)
{
    /* The store's truth first: the creator may have committed its key meanwhile. */
    int rv = refresh(s, "sg", SGID, 0);
    srv_cluster_pending_refreshes(s);
    srv_sg *sg = rv == 0 ? cpns_map_get(&s->sgs, SGID) : NULL;
    if (!sg || sg->row.KeyVersion)
        return rv; /* deleted, keyed, or (in memory) keyed here and not committed yet */
    /* Earlier writes are committed first: a lost race drops this key only. */
    rv = cpns_server_flush(s);
    if (rv)
        return rv == CPNS_ERR_EXISTS ? CPNS_ERR_AGAIN : rv; /* another SG's race: next call */
    /* That flush may have run claims and their refreshes: looked up again. */
    sg = cpns_map_get(&s->sgs, SGID);
    if (!sg || sg->row.KeyVersion)
        return 0;
    rv = srv_note_change(s, "sg", SGID);
    if (rv == 0)
        rv = srv_sg_new_key(s, sg,
                            "SG Inventory left without a Group Key: its creating instance stopped "
                            "between the two commits");
    if (rv == 0)
        rv = cpns_server_flush(s);
    if (rv == CPNS_ERR_EXISTS) {
        /* lost_race() reloaded the SG: the key another instance committed first. */
        cpns_log(&s->log, CPNS_LOG_INFO, SGID, NULL, 0,
                 "another instance committed the first Group Key of this SG first: its key is "
                 "used");
        return 0;
    }
    if (rv)
        return rv; /* the key stays in memory, committed by a later flush (or refused then) */
    cpns_log(&s->log, CPNS_LOG_WARN, SGID, NULL, 0,
             "SG finished: its inventory had no Group Key for the grace period; KeyVersion 1 "
             "committed by this instance");
    return 1;
}

int cpns_server_finish_unkeyed(cpns_server *s, const char *const *SGIDs, size_t n, int64_t grace_ms,
                               int64_t now_ms)
{
    if (!s || (n && !SGIDs) || grace_ms < 0)
        return CPNS_ERR_INVALID_ARG;
    if (!s->cluster)
        return 0;
    s->now = now_ms;
    uint64_t gen = ++s->unkeyed_gen;
    for (size_t i = 0; i < n; i++) {
        const char *id = SGIDs[i];
        if (!id || !cpns_id_valid(id))
            continue;
        srv_unkeyed *u = cpns_map_get(&s->unkeyed, id);
        if (!u) {
            u = cpns_calloc(1, sizeof *u);
            if (!u)
                return CPNS_ERR_NOMEM;
            strcpy(u->SGID, id);
            u->since = now_ms;
            if (cpns_map_put(&s->unkeyed, u->SGID, u) != 0) {
                cpns_free(u);
                return CPNS_ERR_NOMEM;
            }
        }
        u->gen = gen;
    }
    void **v;
    size_t m;
    int rv = cpns_map_sorted(&s->unkeyed, &v, &m);
    if (rv)
        return rv;
    int finished = 0, err = 0;
    for (size_t i = 0; i < m; i++) {
        srv_unkeyed *u = v[i];
        if (u->gen == gen && now_ms - u->since < grace_ms)
            continue;
        if (u->gen == gen) {
            rv = finish_one(s, u->SGID);
            if (rv < 0) {
                if (!err && rv != CPNS_ERR_AGAIN)
                    err = rv;
                continue; /* tried again at the next call */
            }
            finished += rv;
        }
        /* Not listed any more (keyed or deleted), or handled: forgotten. */
        cpns_map_remove(&s->unkeyed, u->SGID);
        cpns_free(u);
    }
    cpns_free(v);
    return err ? err : finished;
}
