/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A daemon's table of connections: engine link handle -> net_conn (the GW's
 * PNE connections, the server's GW connections). The engines name links by
 * number (cpns_out.link); the glue needs the socket behind the number once
 * per outgoing frame, so this is a small open-addressing hash table keyed by
 * the (non-zero) link handle.
 */
#ifndef CPNS_COMMON_LINKS_H
#define CPNS_COMMON_LINKS_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"

typedef struct link_entry {
    uint64_t link; /* 0: empty slot */
    net_conn *conn;
} link_entry;

typedef struct link_table {
    link_entry *slots;
    size_t cap; /* a power of two, or 0 before the first put */
    size_t count;
} link_table;

/* 0, or -1 when out of memory. link must be non-zero and not in the table. */
int links_put(link_table *t, uint64_t link, net_conn *conn);
/* The connection of link, or NULL. */
net_conn *links_get(const link_table *t, uint64_t link);
/* Removes link; returns its connection, or NULL if it was not there. */
net_conn *links_remove(link_table *t, uint64_t link);
/* Frees the table (not the connections). */
void links_free(link_table *t);
/* Closes every connection in the table (no callbacks follow), then frees it. */
void links_close_all(link_table *t);

#endif
