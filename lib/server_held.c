/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Answers that leave only after the next successful commit (issue #10.8).
 *
 * A PNERegistrationResponse with Return 1 tells the PNE (and anyone who
 * captured its request) that the Nonce was accepted. If the server died
 * before the group commit wrote that Nonce, the same captured request would
 * be accepted again after the restart. So such an answer is held here until
 * cpns_server_flush() commits, then released; cpns_server_commit_wanted()
 * tells the glue to commit at once. A failed commit keeps them held for the
 * next one; a connection that closes (or is superseded) loses its own. In
 * shared mode a registration is claimed in the store (its Nonce committed
 * there) by the flush before the answer is held (server_register.c,
 * srv_claims_run), so commit_wanted is also 1 while claims are queued.
 *
 * Order: released frames are popped before any SGroupKeyDeliveryRequest,
 * and cpns_server_pop() commits (releasing them) before it sends a delivery
 * to a PNE with a held answer (srv_pne.held), as it does before a new Group
 * Key. So the catch-up deliveries a registration starts never overtake its
 * response, and the delivery path pays one counter check. If that commit
 * fails, the PNE's deliveries are set aside (and kicked again when its
 * answers are released or dropped) while other PNEs' deliveries go on: a
 * store outage holds back registrations, not every delivery. Refusals
 * (Return 0, 4, 8, 9) commit nothing and go out at once through s->outq.
 */
#include <string.h>

#include "server_internal.h"

int srv_hold_msg(cpns_server *s, uint64_t conn, const cpns_msg *m, srv_pne *pne)
{
    uint8_t buf[2048]; /* a registration response is well under 1 KiB */
    size_t len;
    int rv = cpns_msg_encode(m, buf, sizeof buf, &len);
    if (rv)
        return rv;
    srv_frame *f = cpns_malloc(sizeof *f + len);
    if (!f)
        return CPNS_ERR_NOMEM;
    f->link.next = NULL;
    f->conn = conn;
    f->pne = pne;
    pne->held++;
    f->len = len;
    memcpy(f->data, buf, len);
    srv_list_push(&s->held, &f->link);
    return 0;
}

/* The answer leaves or is gone: its PNE's deliveries may go once none is left. */
static void unhold_pne(cpns_server *s, srv_frame *f)
{
    srv_pne *pne = f->pne;
    f->pne = NULL;
    if (pne && --pne->held == 0)
        srv_pne_kick(s, pne);
}

/* Moves every frame of from to the end of to (at_front: to its front), keeping their order. */
static void splice(srv_link *from, srv_link *to, int at_front)
{
    if (srv_list_empty(from))
        return;
    srv_link *first = from->next, *last = from->prev;
    srv_link *before = at_front ? to : to->prev, *after = before->next;
    first->prev = before;
    before->next = first;
    last->next = after;
    after->prev = last;
    srv_list_init(from);
}

static void release(cpns_server *s, srv_link *head)
{
    for (srv_link *l = head->next; l != head; l = l->next)
        unhold_pne(s, SRV_CONTAINER(l, srv_frame, link));
    splice(head, &s->released, 0);
}

void srv_held_release(cpns_server *s)
{
    release(s, &s->held_inflight); /* older: they go first */
    release(s, &s->held);
}

void srv_held_start(cpns_server *s)
{
    splice(&s->held, &s->held_inflight, 0);
}

void srv_held_finish(cpns_server *s, int ok)
{
    if (ok)
        release(s, &s->held_inflight);
    else
        splice(&s->held_inflight, &s->held, 1);
}

static void free_popped(cpns_server *s)
{
    if (s->popped) {
        cpns_free(s->popped);
        s->popped = NULL;
    }
}

int srv_released_pop(cpns_server *s, cpns_out *out)
{
    free_popped(s);
    if (srv_list_empty(&s->released))
        return 0;
    srv_frame *f = SRV_CONTAINER(s->released.next, srv_frame, link);
    srv_list_unlink(&f->link);
    s->popped = f;
    out->link = f->conn;
    out->data = f->data;
    out->len = f->len;
    return 1;
}

static void drop_from(cpns_server *s, srv_link *head, uint64_t conn)
{
    for (srv_link *l = head->next; l != head;) {
        srv_link *next = l->next;
        srv_frame *f = SRV_CONTAINER(l, srv_frame, link);
        if (conn == 0 || f->conn == conn) {
            srv_list_unlink(l);
            if (conn)
                unhold_pne(s, f);
            cpns_free(f);
        }
        l = next;
    }
}

void srv_held_drop_conn(cpns_server *s, uint64_t conn)
{
    drop_from(s, &s->held, conn);
    drop_from(s, &s->held_inflight, conn);
    drop_from(s, &s->released, conn);
}

void srv_held_free(cpns_server *s)
{
    if (s->held.next) { /* initialised */
        drop_from(s, &s->held, 0);
        drop_from(s, &s->held_inflight, 0);
        drop_from(s, &s->released, 0);
    }
    free_popped(s);
}

int cpns_server_commit_wanted(const cpns_server *s)
{
    /* Shared mode: queued claims are run (and their answers held) by the next flush. */
    return s && (!srv_list_empty(&s->held) || !srv_list_empty(&s->claims));
}
