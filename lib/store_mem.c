/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The memory backend of the store ops (store.h), for tests and demos.
 *
 * It keeps two things: the committed state (PNEs, SGs with their members,
 * nonces, in hash maps) and an uncommitted write log. Every write op only
 * appends a copy of its record to the log; commit() replays the log onto the
 * committed state, rollback() and a simulated crash throw it away. That is
 * exactly what a real transactional backend promises, so a test can stop a
 * server at any point, drop what it had not committed, and start a new server
 * on the same store. A failed commit (cpns_store_mem_fail_writes) leaves the
 * log as it was, so the caller can retry once the fault clears.
 *
 * Also here: the generic cpns_store_free() and cpns_member_state_name().
 */
#include <string.h>

#include "cpns/crypto.h"
#include "cpns/store.h"
#include "cpns/testing.h"
#include "internal.h"

enum mem_op {
    OP_PUT_PNE,
    OP_PUT_SG,
    OP_DEL_SG,
    OP_PUT_MEMBER,
    OP_DEL_MEMBER,
    OP_PUT_NONCE,
    OP_EXPIRE_NONCES,
};

typedef struct mem_log {
    struct mem_log *next;
    enum mem_op op;
    union {
        cpns_store_pne pne;
        cpns_store_sg sg;
        cpns_store_member member; /* also the key of OP_DEL_MEMBER / OP_DEL_SG */
        cpns_store_nonce nonce;
        int64_t seen_before_ms;
    } u;
} mem_log;

typedef struct mem_sg {
    cpns_store_sg sg;
    cpns_map members; /* PNEID -> cpns_store_member */
} mem_sg;

/* A nonce is keyed by cpns_nonce_key(): in key order, by PNEID, then Nonce. */
typedef struct mem_nonce {
    char key[CPNS_NONCE_KEY_LEN];
    cpns_store_nonce n;
} mem_nonce;

typedef struct cpns_store_mem {
    cpns_store base;      /* first, as store.h asks */
    cpns_map pnes;        /* PNEID -> cpns_store_pne */
    cpns_map sgs;         /* SGID -> mem_sg */
    cpns_map nonces;      /* key -> mem_nonce */
    mem_log *head, *tail; /* writes since the last commit or commit_start */
    int fail_writes;
    uint64_t commits;
    /*
     * The non-blocking mode (cpns_store_mem_new_async): the writes handed to
     * commit_start, older ones first (a failed commit's stay for the next);
     * the commit in flight ends when the test says how (outcome).
     */
    mem_log *sent_head, *sent_tail;
    int inflight;
    int outcome; /* CPNS_ERR_AGAIN until cpns_store_mem_async_finish() */
} cpns_store_mem;

const char *cpns_member_state_name(cpns_member_state st)
{
    switch (st) {
    case CPNS_MEMBER_PENDING:
        return "pending";
    case CPNS_MEMBER_SENT:
        return "sent";
    case CPNS_MEMBER_DELIVERED:
        return "delivered";
    case CPNS_MEMBER_FAILED:
        return "failed";
    }
    return "?";
}

void cpns_store_free(cpns_store *st)
{
    if (st && st->ops && st->ops->close)
        st->ops->close(st);
}

static cpns_store_mem *mem_of(cpns_store *st)
{
    return (cpns_store_mem *)st;
}

/* The fault injection shared by every write op and commit. */
static int injected_fault(cpns_store_mem *m)
{
    if (m->fail_writes > 0) {
        m->fail_writes--;
        return 1;
    }
    return 0;
}

static int log_append(cpns_store *st, enum mem_op op, const void *rec, size_t len)
{
    cpns_store_mem *m = mem_of(st);
    if (injected_fault(m))
        return CPNS_ERR_STORE;
    mem_log *e = cpns_calloc(1, sizeof *e);
    if (!e)
        return CPNS_ERR_NOMEM;
    e->op = op;
    memcpy(&e->u, rec, len);
    if (m->tail)
        m->tail->next = e;
    else
        m->head = e;
    m->tail = e;
    return 0;
}

static void log_free(mem_log **head, mem_log **tail)
{
    for (mem_log *e = *head; e;) {
        mem_log *next = e->next;
        cpns_wipe(e, sizeof *e);
        cpns_free(e);
        e = next;
    }
    *head = *tail = NULL;
}

static void log_clear(cpns_store_mem *m)
{
    log_free(&m->head, &m->tail);
}

/* Moves the writes since the last commit to the end of the sent ones. */
static void log_hand_over(cpns_store_mem *m)
{
    if (!m->head)
        return;
    if (m->sent_tail)
        m->sent_tail->next = m->head;
    else
        m->sent_head = m->head;
    m->sent_tail = m->tail;
    m->head = m->tail = NULL;
}

static void free_sg(mem_sg *sg)
{
    for (cpns_map_iter it = cpns_map_begin(&sg->members); cpns_map_next(&it);)
        cpns_free(it.val);
    cpns_map_clear(&sg->members);
    cpns_wipe(&sg->sg, sizeof sg->sg);
    cpns_free(sg);
}

/* --- applying one log entry to the committed state --- */

static int apply_put_pne(cpns_store_mem *m, const cpns_store_pne *p)
{
    cpns_store_pne *cur = cpns_map_get(&m->pnes, p->PNEID);
    if (cur) {
        *cur = *p;
        return 0;
    }
    cur = cpns_malloc(sizeof *cur);
    if (!cur)
        return CPNS_ERR_NOMEM;
    *cur = *p;
    if (cpns_map_put(&m->pnes, cur->PNEID, cur)) {
        cpns_free(cur);
        return CPNS_ERR_NOMEM;
    }
    return 0;
}

static int apply_put_sg(cpns_store_mem *m, const cpns_store_sg *sg)
{
    mem_sg *cur = cpns_map_get(&m->sgs, sg->SGID);
    if (cur) {
        cur->sg = *sg;
        return 0;
    }
    cur = cpns_calloc(1, sizeof *cur);
    if (!cur)
        return CPNS_ERR_NOMEM;
    cur->sg = *sg;
    if (cpns_map_put(&m->sgs, cur->sg.SGID, cur)) {
        cpns_free(cur);
        return CPNS_ERR_NOMEM;
    }
    return 0;
}

static void apply_del_sg(cpns_store_mem *m, const char *SGID)
{
    mem_sg *cur = cpns_map_remove(&m->sgs, SGID);
    if (cur)
        free_sg(cur);
}

static int apply_put_member(cpns_store_mem *m, const cpns_store_member *mb)
{
    mem_sg *sg = cpns_map_get(&m->sgs, mb->SGID);
    if (!sg)
        return CPNS_ERR_CORRUPT; /* a member of an SG that was never stored */
    cpns_store_member *cur = cpns_map_get(&sg->members, mb->PNEID);
    if (cur) {
        *cur = *mb;
        return 0;
    }
    cur = cpns_malloc(sizeof *cur);
    if (!cur)
        return CPNS_ERR_NOMEM;
    *cur = *mb;
    if (cpns_map_put(&sg->members, cur->PNEID, cur)) {
        cpns_free(cur);
        return CPNS_ERR_NOMEM;
    }
    return 0;
}

static void apply_del_member(cpns_store_mem *m, const char *SGID, const char *PNEID)
{
    mem_sg *sg = cpns_map_get(&m->sgs, SGID);
    if (sg)
        cpns_free(cpns_map_remove(&sg->members, PNEID));
}

static int apply_put_nonce(cpns_store_mem *m, const cpns_store_nonce *n)
{
    char key[CPNS_NONCE_KEY_LEN];
    cpns_nonce_key(n->PNEID, n->Nonce, key);
    mem_nonce *cur = cpns_map_get(&m->nonces, key);
    if (cur) {
        cur->n = *n;
        return 0;
    }
    cur = cpns_malloc(sizeof *cur);
    if (!cur)
        return CPNS_ERR_NOMEM;
    memcpy(cur->key, key, sizeof key);
    cur->n = *n;
    if (cpns_map_put(&m->nonces, cur->key, cur)) {
        cpns_free(cur);
        return CPNS_ERR_NOMEM;
    }
    return 0;
}

static void apply_expire_nonces(cpns_store_mem *m, int64_t seen_before_ms)
{
    /* Collect first: the map must not change during a walk. */
    size_t n = 0;
    for (cpns_map_iter it = cpns_map_begin(&m->nonces); cpns_map_next(&it);)
        n += ((mem_nonce *)it.val)->n.seen_ms < seen_before_ms;
    if (!n)
        return;
    mem_nonce **old = cpns_calloc(n, sizeof *old);
    if (!old)
        return; /* they expire at the next commit; keeping a nonce longer is safe */
    size_t i = 0;
    for (cpns_map_iter it = cpns_map_begin(&m->nonces); cpns_map_next(&it);)
        if (((mem_nonce *)it.val)->n.seen_ms < seen_before_ms)
            old[i++] = it.val;
    for (i = 0; i < n; i++) {
        cpns_map_remove(&m->nonces, old[i]->key);
        cpns_free(old[i]);
    }
    cpns_free(old);
}

static int apply(cpns_store_mem *m, const mem_log *e)
{
    switch (e->op) {
    case OP_PUT_PNE:
        return apply_put_pne(m, &e->u.pne);
    case OP_PUT_SG:
        return apply_put_sg(m, &e->u.sg);
    case OP_DEL_SG:
        apply_del_sg(m, e->u.member.SGID);
        return 0;
    case OP_PUT_MEMBER:
        return apply_put_member(m, &e->u.member);
    case OP_DEL_MEMBER:
        apply_del_member(m, e->u.member.SGID, e->u.member.PNEID);
        return 0;
    case OP_PUT_NONCE:
        return apply_put_nonce(m, &e->u.nonce);
    case OP_EXPIRE_NONCES:
        apply_expire_nonces(m, e->u.seen_before_ms);
        return 0;
    }
    return CPNS_ERR_INVALID_ARG;
}

/* --- the ops --- */

static int mem_load(cpns_store *st, const cpns_store_loader *l, void *arg)
{
    cpns_store_mem *m = mem_of(st);
    void **v = NULL;
    size_t n = 0;
    int rv = cpns_map_sorted(&m->pnes, &v, &n);
    for (size_t i = 0; rv == 0 && i < n; i++)
        rv = l->pne(arg, v[i]);
    cpns_free(v);
    if (rv)
        return rv;
    rv = cpns_map_sorted(&m->sgs, &v, &n);
    for (size_t i = 0; rv == 0 && i < n; i++)
        rv = l->sg(arg, &((mem_sg *)v[i])->sg);
    /* Members after every SG, as store.h promises. */
    for (size_t i = 0; rv == 0 && i < n; i++) {
        void **mv = NULL;
        size_t mn = 0;
        rv = cpns_map_sorted(&((mem_sg *)v[i])->members, &mv, &mn);
        for (size_t j = 0; rv == 0 && j < mn; j++)
            rv = l->member(arg, mv[j]);
        cpns_free(mv);
    }
    cpns_free(v);
    if (rv)
        return rv;
    rv = cpns_map_sorted(&m->nonces, &v, &n);
    for (size_t i = 0; rv == 0 && i < n; i++)
        rv = l->nonce(arg, &((mem_nonce *)v[i])->n);
    cpns_free(v);
    return rv;
}

static int mem_put_pne(cpns_store *st, const cpns_store_pne *p)
{
    return log_append(st, OP_PUT_PNE, p, sizeof *p);
}

static int mem_put_sg(cpns_store *st, const cpns_store_sg *sg)
{
    return log_append(st, OP_PUT_SG, sg, sizeof *sg);
}

static int mem_del_sg(cpns_store *st, const char *SGID)
{
    cpns_store_member key;
    memset(&key, 0, sizeof key);
    if (strlen(SGID) > CPNS_ID_MAX)
        return CPNS_ERR_INVALID_ARG;
    strcpy(key.SGID, SGID);
    return log_append(st, OP_DEL_SG, &key, sizeof key);
}

static int mem_put_member(cpns_store *st, const cpns_store_member *mb)
{
    return log_append(st, OP_PUT_MEMBER, mb, sizeof *mb);
}

static int mem_del_member(cpns_store *st, const char *SGID, const char *PNEID)
{
    cpns_store_member key;
    memset(&key, 0, sizeof key);
    if (strlen(SGID) > CPNS_ID_MAX || strlen(PNEID) > CPNS_ID_MAX)
        return CPNS_ERR_INVALID_ARG;
    strcpy(key.SGID, SGID);
    strcpy(key.PNEID, PNEID);
    return log_append(st, OP_DEL_MEMBER, &key, sizeof key);
}

static int mem_put_nonce(cpns_store *st, const cpns_store_nonce *n)
{
    return log_append(st, OP_PUT_NONCE, n, sizeof *n);
}

static int mem_expire_nonces(cpns_store *st, int64_t seen_before_ms)
{
    return log_append(st, OP_EXPIRE_NONCES, &seen_before_ms, sizeof seen_before_ms);
}

/*
 * Whether every write of the sent log can be applied: a member's SG must
 * exist at that point of the log. Checked first, so that a commit is all or
 * nothing, as a database transaction is.
 */
static int log_valid(cpns_store_mem *m)
{
    cpns_map live; /* SGID -> "present"/"absent" as the log goes */
    memset(&live, 0, sizeof live);
    static char present, absent;
    int rv = 0;
    for (const mem_log *e = m->sent_head; rv == 0 && e; e = e->next) {
        if (e->op == OP_PUT_SG) {
            rv = cpns_map_put(&live, e->u.sg.SGID, &present) ? CPNS_ERR_NOMEM : 0;
        } else if (e->op == OP_DEL_SG) {
            rv = cpns_map_put(&live, e->u.member.SGID, &absent) ? CPNS_ERR_NOMEM : 0;
        } else if (e->op == OP_PUT_MEMBER) {
            const char *state = cpns_map_get(&live, e->u.member.SGID);
            if (state ? state == &absent : !cpns_map_get(&m->sgs, e->u.member.SGID))
                rv = CPNS_ERR_STORE;
        }
    }
    cpns_map_clear(&live);
    return rv;
}

static int apply_sent(cpns_store_mem *m)
{
    int rv = log_valid(m);
    if (rv) {
        log_free(&m->sent_head, &m->sent_tail); /* it could never succeed */
        return CPNS_ERR_STORE;
    }
    for (const mem_log *e = m->sent_head; e; e = e->next) {
        int r = apply(m, e);
        if (r && !rv)
            rv = r;
    }
    log_free(&m->sent_head, &m->sent_tail);
    m->commits++;
    return rv ? CPNS_ERR_STORE : 0;
}

/* Also ends a commit in flight: the writes handed over earlier go first. */
static int mem_commit(cpns_store *st)
{
    cpns_store_mem *m = mem_of(st);
    m->inflight = 0;
    if (injected_fault(m))
        return CPNS_ERR_STORE;
    log_hand_over(m);
    return apply_sent(m);
}

static int mem_commit_start(cpns_store *st)
{
    cpns_store_mem *m = mem_of(st);
    if (m->inflight)
        return CPNS_ERR_STATE;
    if (injected_fault(m))
        return CPNS_ERR_STORE;
    log_hand_over(m);
    m->inflight = 1;
    m->outcome = CPNS_ERR_AGAIN;
    return 0;
}

static int mem_commit_poll(cpns_store *st)
{
    cpns_store_mem *m = mem_of(st);
    if (!m->inflight)
        return 0;
    if (m->outcome == CPNS_ERR_AGAIN)
        return CPNS_ERR_AGAIN;
    m->inflight = 0;
    if (m->outcome)
        return m->outcome; /* the sent writes stay for the next commit */
    return apply_sent(m);
}

static int mem_watch_fd(const cpns_store *st)
{
    (void)st;
    return -1;
}

static int mem_rollback(cpns_store *st)
{
    log_clear(mem_of(st));
    return 0;
}

static void mem_close(cpns_store *st)
{
    cpns_store_mem *m = mem_of(st);
    log_clear(m);
    log_free(&m->sent_head, &m->sent_tail);
    for (cpns_map_iter it = cpns_map_begin(&m->pnes); cpns_map_next(&it);) {
        cpns_wipe(it.val, sizeof(cpns_store_pne));
        cpns_free(it.val);
    }
    cpns_map_clear(&m->pnes);
    for (cpns_map_iter it = cpns_map_begin(&m->sgs); cpns_map_next(&it);)
        free_sg(it.val);
    cpns_map_clear(&m->sgs);
    for (cpns_map_iter it = cpns_map_begin(&m->nonces); cpns_map_next(&it);)
        cpns_free(it.val);
    cpns_map_clear(&m->nonces);
    cpns_free(m);
}

static const cpns_store_ops mem_ops = {
    .load = mem_load,
    .put_pne = mem_put_pne,
    .put_sg = mem_put_sg,
    .del_sg = mem_del_sg,
    .put_member = mem_put_member,
    .del_member = mem_del_member,
    .put_nonce = mem_put_nonce,
    .expire_nonces = mem_expire_nonces,
    .commit = mem_commit,
    .rollback = mem_rollback,
    .close = mem_close,
};

static const cpns_store_ops mem_async_ops = {
    .load = mem_load,
    .put_pne = mem_put_pne,
    .put_sg = mem_put_sg,
    .del_sg = mem_del_sg,
    .put_member = mem_put_member,
    .del_member = mem_del_member,
    .put_nonce = mem_put_nonce,
    .expire_nonces = mem_expire_nonces,
    .commit = mem_commit,
    .rollback = mem_rollback,
    .close = mem_close,
    .commit_start = mem_commit_start,
    .commit_poll = mem_commit_poll,
    .watch_fd = mem_watch_fd,
};

static int mem_new(cpns_store **out, const cpns_store_ops *ops)
{
    if (!out)
        return CPNS_ERR_INVALID_ARG;
    cpns_store_mem *m = cpns_calloc(1, sizeof *m);
    if (!m)
        return CPNS_ERR_NOMEM;
    m->base.ops = ops;
    *out = &m->base;
    return 0;
}

int cpns_store_mem_new(cpns_store **out)
{
    return mem_new(out, &mem_ops);
}

int cpns_store_mem_new_async(cpns_store **out)
{
    return mem_new(out, &mem_async_ops);
}

/* The test hooks below accept only a memory store. */
static int is_mem(const cpns_store *st)
{
    return st && (st->ops == &mem_ops || st->ops == &mem_async_ops);
}

int cpns_store_mem_async_finish(cpns_store *st, int outcome)
{
    if (!is_mem(st) || !mem_of(st)->inflight || outcome == CPNS_ERR_AGAIN)
        return CPNS_ERR_STATE;
    mem_of(st)->outcome = outcome;
    return 0;
}

int cpns_store_mem_inflight(const cpns_store *st)
{
    return is_mem(st) && ((const cpns_store_mem *)st)->inflight;
}

void cpns_store_mem_fail_writes(cpns_store *st, int n)
{
    if (is_mem(st))
        mem_of(st)->fail_writes = n;
}

uint64_t cpns_store_mem_commits(const cpns_store *st)
{
    return is_mem(st) ? ((const cpns_store_mem *)st)->commits : 0;
}

int cpns_store_mem_get_sg(const cpns_store *st, const char *SGID, cpns_store_sg *out)
{
    if (!is_mem(st))
        return CPNS_ERR_INVALID_ARG;
    const mem_sg *sg = cpns_map_get(&((const cpns_store_mem *)st)->sgs, SGID);
    if (!sg)
        return CPNS_ERR_NOT_FOUND;
    *out = sg->sg;
    return 0;
}

int cpns_store_mem_get_member(const cpns_store *st, const char *SGID, const char *PNEID,
                              cpns_store_member *out)
{
    if (!is_mem(st))
        return CPNS_ERR_INVALID_ARG;
    const mem_sg *sg = cpns_map_get(&((const cpns_store_mem *)st)->sgs, SGID);
    const cpns_store_member *mb = sg ? cpns_map_get(&sg->members, PNEID) : NULL;
    if (!mb)
        return CPNS_ERR_NOT_FOUND;
    *out = *mb;
    return 0;
}

void cpns_store_mem_crash(cpns_store *st)
{
    if (is_mem(st)) {
        log_clear(mem_of(st));
        log_free(&mem_of(st)->sent_head, &mem_of(st)->sent_tail);
        mem_of(st)->inflight = 0;
    }
}
