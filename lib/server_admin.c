/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Administration of the CPNS Server (server.h; the admin API maps onto it):
 * provisioning PNEs with their Entity User Keys, creating, changing,
 * rekeying and deleting Service Groups, and the read-only queries.
 *
 * SG creation follows 7.8.6.3-1 literally: the SG Inventory is stored and
 * committed first, and only then is the Group Key generated. Every new key
 * version sets the barrier, so it is committed before the first frame that
 * carries it leaves (cpns_server_pop()).
 */
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"

/*
 * What an admin call failed on (cpns_server_last_error()): every call that
 * changes the inventory starts with forgive(), and each failure that one
 * identifier explains goes through blame(), which returns rv.
 */
static void forgive(cpns_server *s)
{
    s->err.culprit = CPNS_CULPRIT_NONE;
    s->err.id[0] = '\0';
}

static int blame(cpns_server *s, int rv, cpns_server_culprit culprit, const char *id)
{
    size_t n = id ? strnlen(id, CPNS_ID_MAX) : 0;
    s->err.culprit = culprit;
    if (n)
        memcpy(s->err.id, id, n);
    s->err.id[n] = '\0';
    return rv;
}

int cpns_server_last_error(const cpns_server *s, cpns_server_error *out)
{
    if (!s || !out)
        return CPNS_ERR_INVALID_ARG;
    *out = s->err;
    return 0;
}

/* --- PNEs --- */

int cpns_server_pne_add(cpns_server *s, const char *PNEID, const uint8_t EUK[CPNS_KEY_LEN])
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    forgive(s);
    if (!PNEID || !cpns_id_valid(PNEID))
        return blame(s, CPNS_ERR_INVALID_ARG, CPNS_CULPRIT_ID_INVALID, PNEID);
    if (!EUK)
        return CPNS_ERR_INVALID_ARG;
    if (cpns_map_get(&s->pnes, PNEID))
        return blame(s, CPNS_ERR_EXISTS, CPNS_CULPRIT_PNE_EXISTS, PNEID);
    srv_pne *pne = cpns_calloc(1, sizeof *pne);
    if (!pne)
        return CPNS_ERR_NOMEM;
    strcpy(pne->row.PNEID, PNEID);
    memcpy(pne->row.EUK, EUK, CPNS_KEY_LEN);
    srv_list_init(&pne->members);
    int rv = srv_pne_derive(pne);
    if (rv == 0)
        rv = cpns_map_put(&s->pnes, pne->row.PNEID, pne);
    if (rv) {
        srv_pne_free(pne);
        return rv;
    }
    /* Provisioning is committed at once: the caller hands the EUK out after this. */
    srv_dirty_pne(s, pne);
    rv = srv_note_change(s, "pne", PNEID);
    if (rv == 0)
        rv = cpns_server_flush(s);
    if (rv) {
        cpns_map_remove(&s->pnes, pne->row.PNEID);
        srv_pne_free(pne);
        return rv;
    }
    char fp[CPNS_FINGERPRINT_LEN + 1];
    cpns_fingerprint(EUK, CPNS_KEY_LEN, fp);
    cpns_log(&s->log, CPNS_LOG_INFO, NULL, PNEID, 0, "PNE provisioned, EUK fingerprint %s", fp);
    return 0;
}

int cpns_server_pne_set_key(cpns_server *s, const char *PNEID, const uint8_t EUK[CPNS_KEY_LEN],
                            int64_t now_ms)
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    forgive(s);
    if (!PNEID || !EUK)
        return CPNS_ERR_INVALID_ARG;
    s->now = now_ms;
    srv_pne *pne = cpns_map_get(&s->pnes, PNEID);
    if (!pne)
        return blame(s, CPNS_ERR_NOT_FOUND, CPNS_CULPRIT_PNE_UNKNOWN, PNEID);
    uint8_t old[CPNS_KEY_LEN];
    memcpy(old, pne->row.EUK, sizeof old);
    memcpy(pne->row.EUK, EUK, CPNS_KEY_LEN);
    int rv = srv_pne_derive(pne);
    if (rv == 0) {
        srv_dirty_pne(s, pne);
        rv = srv_note_change(s, "pne", PNEID);
    }
    if (rv == 0)
        rv = cpns_server_flush(s);
    if (rv) {
        /* Memory keeps agreeing with the store: the old key stays. */
        memcpy(pne->row.EUK, old, sizeof old);
        srv_pne_derive(pne);
        cpns_wipe(old, sizeof old);
        return rv;
    }
    cpns_wipe(old, sizeof old);
    char fp[CPNS_FINGERPRINT_LEN + 1];
    cpns_fingerprint(EUK, CPNS_KEY_LEN, fp);
    cpns_log(&s->log, CPNS_LOG_INFO, NULL, PNEID, 0, "PNE re-provisioned, EUK fingerprint %s", fp);
    srv_pne_revive(s, pne);
    return 0;
}

static void pne_info(const cpns_server *s, const srv_pne *pne, cpns_pne_info *out)
{
    out->PNEID = pne->row.PNEID;
    out->registered = pne->row.registered;
    out->reachable = srv_pne_route(s, pne) != 0;
    out->PNGWID = pne->row.registered ? pne->row.PNGWID : NULL;
    out->PNID = pne->row.registered ? pne->row.PNID : NULL;
}

int cpns_server_pne_get(const cpns_server *s, const char *PNEID, cpns_pne_info *out)
{
    if (!s || !PNEID || !out)
        return CPNS_ERR_INVALID_ARG;
    const srv_pne *pne = cpns_map_get(&s->pnes, PNEID);
    if (!pne)
        return CPNS_ERR_NOT_FOUND;
    pne_info(s, pne, out);
    return 0;
}

int cpns_server_pne_foreach(const cpns_server *s, cpns_pne_visit_fn fn, void *arg)
{
    if (!s || !fn)
        return CPNS_ERR_INVALID_ARG;
    void **v;
    size_t n;
    int rv = cpns_map_sorted(&s->pnes, &v, &n);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        cpns_pne_info info;
        pne_info(s, v[i], &info);
        rv = fn(arg, &info);
    }
    cpns_free(v);
    return rv;
}

/* --- Service Groups --- */

static void sg_discard(cpns_server *s, srv_sg *sg)
{
    cpns_map_remove(&s->sgs, sg->row.SGID);
    srv_sg_free(s, sg);
}

/* Writes the SG Inventory (KeyVersion 0, no key yet) and commits it. */
static int store_inventory(cpns_server *s, srv_sg *sg)
{
    cpns_store *st = s->cfg.store;
    /* In key order: a B-tree takes sorted inserts fastest. */
    srv_member **v;
    size_t n;
    int rv = srv_sg_by_id(sg, &v, &n);
    if (rv == 0)
        rv = st->ops->put_sg(st, &sg->row);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        cpns_store_member row;
        srv_member_store_row(v[i], &row);
        rv = st->ops->put_member(st, &row);
    }
    if (rv == 0)
        rv = st->ops->commit(st);
    if (rv) {
        st->ops->rollback(st);
        return rv;
    }
    for (size_t i = 0; i < n; i++)
        v[i]->stored = 1;
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * A list of PNEIDs checked: valid (in the order given) and distinct,
 * CPNS_ERR_INVALID_ARG otherwise; provisioned, CPNS_ERR_NOT_FOUND otherwise
 * (the first in the order given is blamed). Membership is the caller's. On
 * success *out (freed by the caller) holds their PNEs in PNEID order: for a
 * new SG one sort and one lookup each serve the checks, the inventory, the
 * sends and the answer; a list given in order already (cpns-server's admin
 * API sorts it) costs one pass.
 */
static int sorted_ids(cpns_server *s, const char *const *PNEIDs, size_t n, srv_pne ***out)
{
    *out = NULL;
    if (n && !PNEIDs)
        return CPNS_ERR_INVALID_ARG;
    /* The PNEIDs, sorted and checked, then replaced one by one by their PNE. */
    void **v = cpns_calloc(n ? n : 1, sizeof *v);
    if (!v)
        return CPNS_ERR_NOMEM;
    int rv = 0, in_order = 1;
    for (size_t i = 0; rv == 0 && i < n; i++) {
        const char *id = PNEIDs[i];
        v[i] = (void *)(uintptr_t)id;
        if (!id || !cpns_id_valid(id))
            rv = blame(s, CPNS_ERR_INVALID_ARG, CPNS_CULPRIT_ID_INVALID, id);
        else if (i && in_order && strcmp(PNEIDs[i - 1], id) >= 0)
            in_order = 0;
    }
    if (rv == 0 && !in_order)
        qsort(v, n, sizeof *v, cmp_id);
    for (size_t i = 1; rv == 0 && i < n; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            rv = blame(s, CPNS_ERR_INVALID_ARG, CPNS_CULPRIT_PNE_TWICE, v[i]);
    for (size_t i = 0; rv == 0 && i < n; i++)
        if ((v[i] = cpns_map_get(&s->pnes, v[i])) == NULL)
            rv = CPNS_ERR_NOT_FOUND;
    /* Named in the order given, as a caller reading its own list expects. */
    for (size_t i = 0; rv == CPNS_ERR_NOT_FOUND && !s->err.culprit && i < n; i++)
        if (!cpns_map_get(&s->pnes, PNEIDs[i]))
            blame(s, rv, CPNS_CULPRIT_PNE_UNKNOWN, PNEIDs[i]);
    if (rv) {
        cpns_free(v);
        return rv;
    }
    *out = (srv_pne **)v;
    return 0;
}

/* The members of a new SG, in PNEID order: the order they are stored and sent in. */
static int add_members(cpns_server *s, srv_sg *sg, srv_pne *const *pnes, size_t n)
{
    srv_member **by_id = cpns_calloc(n ? n : 1, sizeof *by_id);
    sg->slab = cpns_calloc_large(n ? n : 1, sizeof *sg->slab);
    if (!by_id || !sg->slab || cpns_map_reserve(&sg->members, n) != 0) {
        cpns_free(by_id);
        return CPNS_ERR_NOMEM; /* the slab goes with the SG */
    }
    for (size_t i = 0; i < n; i++) {
        by_id[i] = srv_member_new(s, sg, pnes[i], &sg->slab[i]);
        if (!by_id[i]) {
            cpns_free(by_id);
            return CPNS_ERR_NOMEM;
        }
    }
    sg->by_id = by_id;
    return 0;
}

int cpns_server_sg_create(cpns_server *s, const char *SGID, const char *const *PNEIDs, size_t n,
                          int64_t now_ms)
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    forgive(s);
    if (!SGID || !cpns_id_valid(SGID))
        return blame(s, CPNS_ERR_INVALID_ARG, CPNS_CULPRIT_ID_INVALID, SGID);
    s->now = now_ms;
    if (cpns_map_get(&s->sgs, SGID))
        return blame(s, CPNS_ERR_EXISTS, CPNS_CULPRIT_SG_EXISTS, SGID);
    srv_pne **pnes;
    int rv = sorted_ids(s, PNEIDs, n, &pnes);
    if (rv)
        return rv;
    /* Earlier writes are committed first, so a failure below rolls back this SG only. */
    rv = cpns_server_flush(s);
    srv_sg *sg = rv == 0 ? cpns_calloc(1, sizeof *sg) : NULL;
    if (rv == 0 && !sg)
        rv = CPNS_ERR_NOMEM;
    if (rv) {
        cpns_free(pnes);
        return rv;
    }
    strcpy(sg->row.SGID, SGID);
    if (cpns_map_put(&s->sgs, sg->row.SGID, sg)) {
        cpns_free(pnes);
        srv_sg_free(s, sg);
        return CPNS_ERR_NOMEM;
    }
    rv = add_members(s, sg, pnes, n);
    cpns_free(pnes);
    if (rv) {
        sg_discard(s, sg);
        return rv;
    }
    rv = store_inventory(s, sg);
    if (rv) {
        cpns_log(&s->log, CPNS_LOG_ERROR, SGID, NULL, 0,
                 "storing the SG Inventory failed (%s): SG not created", cpns_strerror(rv));
        sg_discard(s, sg);
        return rv;
    }
    cpns_log(&s->log, CPNS_LOG_INFO, SGID, NULL, 0, "SG Inventory stored: %zu members", n);
    /* 7.8.6.3-1: only now, with the inventory stored, is the Group Key generated. */
    rv = srv_note_change(s, "sg", SGID);
    if (rv == 0)
        rv = srv_sg_new_key(s, sg, "SG created");
    if (rv) {
        cpns_log(&s->log, CPNS_LOG_ERROR, SGID, NULL, 0,
                 "generating the Group Key failed (%s): SG not created", cpns_strerror(rv));
        sg_discard(s, sg);
        if (srv_record_del(s, SGID, NULL) == 0)
            cpns_server_flush(s);
        return rv;
    }
    return 0;
}

int cpns_server_sg_update(cpns_server *s, const char *SGID, const char *const *add, size_t n_add,
                          const char *const *remove, size_t n_remove, int64_t now_ms)
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    forgive(s);
    if (!SGID)
        return CPNS_ERR_INVALID_ARG;
    s->now = now_ms;
    srv_sg *sg = cpns_map_get(&s->sgs, SGID);
    if (!sg)
        return blame(s, CPNS_ERR_NOT_FOUND, CPNS_CULPRIT_SG_UNKNOWN, SGID);
    srv_pne **sorted_add = NULL, **sorted_remove = NULL;
    int rv = sorted_ids(s, add, n_add, &sorted_add);
    if (rv == 0)
        rv = sorted_ids(s, remove, n_remove, &sorted_remove);
    for (size_t i = 0; rv == 0 && i < n_add; i++)
        if (cpns_map_get(&sg->members, sorted_add[i]->row.PNEID))
            rv = blame(s, CPNS_ERR_INVALID_ARG, CPNS_CULPRIT_PNE_MEMBER, sorted_add[i]->row.PNEID);
    for (size_t i = 0; rv == 0 && i < n_remove; i++)
        if (!cpns_map_get(&sg->members, remove[i]))
            rv = blame(s, CPNS_ERR_INVALID_ARG, CPNS_CULPRIT_PNE_NOT_MEMBER, remove[i]);
    cpns_free(sorted_add);
    cpns_free(sorted_remove);
    if (rv)
        return rv;
    if (n_remove && sg->row.KeyVersion == CPNS_KEYVERSION_MAX)
        return CPNS_ERR_STATE;
    if ((rv = srv_note_change(s, "sg", SGID)) != 0)
        return rv;

    /*
     * Everything that can fail comes before the first change: the new key
     * (a removed member must never keep the current one), the new members,
     * room for the deletions.
     */
    uint8_t GK[CPNS_KEY_LEN];
    if (n_remove && (rv = srv_random(s, GK, sizeof GK)) != 0) {
        cpns_wipe(GK, sizeof GK);
        return rv;
    }
    size_t added = 0, n_dels = s->n_dels;
    for (; rv == 0 && added < n_add; added++)
        if (!srv_member_new(s, sg, cpns_map_get(&s->pnes, add[added]), NULL)) {
            rv = CPNS_ERR_NOMEM;
            break;
        }
    for (size_t i = 0; rv == 0 && i < n_remove; i++)
        rv = srv_record_del(s, SGID, remove[i]);
    if (rv) {
        s->n_dels = n_dels;
        for (size_t i = 0; i < added; i++) {
            srv_member *mb = cpns_map_get(&sg->members, add[i]);
            if (mb)
                srv_member_free(s, mb);
        }
        cpns_wipe(GK, sizeof GK);
        return rv;
    }

    for (size_t i = 0; i < n_remove; i++) {
        cpns_log(&s->log, CPNS_LOG_INFO, SGID, remove[i], 0, "member removed");
        srv_member_free(s, cpns_map_get(&sg->members, remove[i]));
    }
    if (n_remove) {
        srv_sg_set_key(s, sg, GK, "member removed");
        cpns_wipe(GK, sizeof GK);
        return 0;
    }
    for (size_t i = 0; i < n_add; i++)
        srv_member_start(s, cpns_map_get(&sg->members, add[i]), "member added");
    /* The new member rows are committed before the current key goes out to them. */
    s->barrier = 1;
    return 0;
}

int cpns_server_sg_rekey(cpns_server *s, const char *SGID, int64_t now_ms)
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    forgive(s);
    if (!SGID)
        return CPNS_ERR_INVALID_ARG;
    s->now = now_ms;
    srv_sg *sg = cpns_map_get(&s->sgs, SGID);
    if (!sg)
        return blame(s, CPNS_ERR_NOT_FOUND, CPNS_CULPRIT_SG_UNKNOWN, SGID);
    int rv = srv_note_change(s, "sg", SGID);
    return rv ? rv : srv_sg_new_key(s, sg, "rekey");
}

int cpns_server_sg_delete(cpns_server *s, const char *SGID)
{
    if (!s)
        return CPNS_ERR_INVALID_ARG;
    forgive(s);
    if (!SGID)
        return CPNS_ERR_INVALID_ARG;
    srv_sg *sg = cpns_map_get(&s->sgs, SGID);
    if (!sg)
        return blame(s, CPNS_ERR_NOT_FOUND, CPNS_CULPRIT_SG_UNKNOWN, SGID);
    int rv = srv_note_change(s, "sg", SGID);
    if (rv == 0)
        rv = srv_record_del(s, SGID, NULL);
    if (rv)
        return rv;
    cpns_log(&s->log, CPNS_LOG_INFO, SGID, NULL, 0, "SG deleted (%zu members)", sg->members.count);
    sg_discard(s, sg);
    return 0;
}

static void sg_info(const srv_sg *sg, cpns_sg_info *out)
{
    memset(out, 0, sizeof *out);
    out->SGID = sg->row.SGID;
    out->KeyVersion = sg->row.KeyVersion;
    out->n_members = sg->members.count;
    out->n_pending = sg->n[CPNS_MEMBER_PENDING];
    out->n_sent = sg->n[CPNS_MEMBER_SENT];
    out->n_delivered = sg->n[CPNS_MEMBER_DELIVERED];
    out->n_failed = sg->n[CPNS_MEMBER_FAILED];
    out->complete = sg->row.KeyVersion > 0 && out->n_delivered == out->n_members;
    if (sg->row.KeyVersion > 0)
        cpns_fingerprint(sg->row.GK, CPNS_KEY_LEN, out->fingerprint);
}

int cpns_server_sg_get(const cpns_server *s, const char *SGID, cpns_sg_info *out)
{
    if (!s || !SGID || !out)
        return CPNS_ERR_INVALID_ARG;
    const srv_sg *sg = cpns_map_get(&s->sgs, SGID);
    if (!sg)
        return CPNS_ERR_NOT_FOUND;
    sg_info(sg, out);
    return 0;
}

int cpns_server_sg_foreach(const cpns_server *s, cpns_sg_visit_fn fn, void *arg)
{
    if (!s || !fn)
        return CPNS_ERR_INVALID_ARG;
    void **v;
    size_t n;
    int rv = cpns_map_sorted(&s->sgs, &v, &n);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        cpns_sg_info info;
        sg_info(v[i], &info);
        rv = fn(arg, &info);
    }
    cpns_free(v);
    return rv;
}

int cpns_server_sg_members(const cpns_server *s, const char *SGID, cpns_member_visit_fn fn,
                           void *arg)
{
    if (!s || !SGID || !fn)
        return CPNS_ERR_INVALID_ARG;
    const srv_sg *sg = cpns_map_get(&s->sgs, SGID);
    if (!sg)
        return CPNS_ERR_NOT_FOUND;
    /* The kept order when there is one (the server is const here: no new one is kept). */
    void **sorted = NULL;
    size_t n = sg->members.count;
    int rv = sg->by_id ? 0 : cpns_map_sorted(&sg->members, &sorted, &n);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        const srv_member *mb = sg->by_id ? sg->by_id[i] : sorted[i];
        cpns_member_info info = {
            .PNEID = mb->pne->row.PNEID,
            .state = mb->row.state,
            .Return = mb->row.Return,
            .attempts = mb->row.attempts,
            .PNID = mb->row.PNID[0] ? mb->row.PNID : NULL,
            .KeyVersion = mb->row.KeyVersion,
        };
        rv = fn(arg, &info);
    }
    cpns_free(sorted);
    return rv;
}
