/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engines' output queue: a FIFO of owned frame payloads. An engine pushes
 * what it wants sent; the glue pops it. The popped item stays alive until the
 * next pop so the glue can write it without copying.
 */
#include <string.h>

#include "internal.h"

struct cpns_outq_item {
    cpns_outq_item *next;
    uint64_t link;
    size_t len;
    uint8_t data[];
};

int cpns_outq_push(cpns_outq *q, uint64_t link, const uint8_t *data, size_t len)
{
    cpns_outq_item *it = cpns_malloc(sizeof *it + len);
    if (!it)
        return CPNS_ERR_NOMEM;
    it->next = NULL;
    it->link = link;
    it->len = len;
    memcpy(it->data, data, len);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->count++;
    return 0;
}

int cpns_outq_push_msg(cpns_outq *q, uint64_t link, const cpns_msg *m)
{
    /* Messages the engines build are well under 1 KiB; a larger one gets the frame limit. */
    uint8_t small[2048];
    size_t len;
    int rv = cpns_msg_encode(m, small, sizeof small, &len);
    if (rv == 0)
        return cpns_outq_push(q, link, small, len);
    if (rv != CPNS_ERR_TOO_LARGE)
        return rv;
    uint8_t *big = cpns_malloc(CPNS_FRAME_MAX);
    if (!big)
        return CPNS_ERR_NOMEM;
    rv = cpns_msg_encode(m, big, CPNS_FRAME_MAX, &len);
    if (rv == 0)
        rv = cpns_outq_push(q, link, big, len);
    cpns_free(big);
    return rv;
}

int cpns_outq_pop(cpns_outq *q, cpns_out *out)
{
    cpns_free(q->popped);
    q->popped = NULL;
    cpns_outq_item *it = q->head;
    if (!it)
        return 0;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->count--;
    q->popped = it;
    out->link = it->link;
    out->data = it->data;
    out->len = it->len;
    return 1;
}

void cpns_outq_drop_link(cpns_outq *q, uint64_t link)
{
    cpns_outq_item **pp = &q->head;
    q->tail = NULL;
    while (*pp) {
        cpns_outq_item *it = *pp;
        if (it->link == link) {
            *pp = it->next;
            cpns_free(it);
            q->count--;
        } else {
            q->tail = it;
            pp = &it->next;
        }
    }
}

void cpns_outq_clear(cpns_outq *q)
{
    cpns_free(q->popped);
    for (cpns_outq_item *it = q->head; it;) {
        cpns_outq_item *next = it->next;
        cpns_free(it);
        it = next;
    }
    memset(q, 0, sizeof *q);
}
