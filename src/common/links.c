/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Linear probing with backward-shift deletion (links.h): no tombstones, so
 * a GW whose PNEs come and go for months keeps short probe sequences.
 */
#include <stdlib.h>

#include "links.h"

static size_t home(const link_table *t, uint64_t link)
{
    return (size_t)((link * 0x9E3779B97F4A7C15ull) >> 32) & (t->cap - 1);
}

static size_t find(const link_table *t, uint64_t link)
{
    size_t i = home(t, link);
    while (t->slots[i].link && t->slots[i].link != link)
        i = (i + 1) & (t->cap - 1);
    return i;
}

static int grow(link_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 16;
    link_entry *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    link_table bigger = {slots, cap, 0};
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].link)
            bigger.slots[find(&bigger, t->slots[i].link)] = t->slots[i];
    bigger.count = t->count;
    free(t->slots);
    *t = bigger;
    return 0;
}

int links_put(link_table *t, uint64_t link, net_conn *conn)
{
    /* At most half full, so probes stay short and find() always meets an empty slot. */
    if ((t->count + 1) * 2 > t->cap && grow(t) != 0)
        return -1;
    size_t i = find(t, link);
    if (!t->slots[i].link)
        t->count++;
    t->slots[i] = (link_entry){link, conn};
    return 0;
}

net_conn *links_get(const link_table *t, uint64_t link)
{
    if (!t->cap || !link)
        return NULL;
    return t->slots[find(t, link)].conn;
}

net_conn *links_remove(link_table *t, uint64_t link)
{
    if (!t->cap || !link)
        return NULL;
    size_t mask = t->cap - 1;
    size_t i = find(t, link);
    net_conn *conn = t->slots[i].conn;
    if (!t->slots[i].link)
        return NULL;
    /* Pull later entries of the same probe run back over the hole. */
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (!t->slots[j].link)
            break;
        size_t k = home(t, t->slots[j].link);
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        t->slots[i] = t->slots[j];
        i = j;
    }
    t->slots[i] = (link_entry){0, NULL};
    t->count--;
    return conn;
}

void links_free(link_table *t)
{
    free(t->slots);
    *t = (link_table){NULL, 0, 0};
}

void links_close_all(link_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].link)
            net_conn_close(t->slots[i].conn, false);
    links_free(t);
}
