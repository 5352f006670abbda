/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A daemon's table of connections: engine link handle -> net_conn (the GW's
 * PNE connections, the server's GW connections). The engines name links by
 * number (cpns_out.link); the glue needs the socket behind the number once
 * per outgoing frame. The table is libcpns's own hash map (lib/map.c, keyed
 * by uint64): the daemons link the static libcpns, so this takes no symbol
 * that libcpns.so exports.
 */
#ifndef CPNS_COMMON_LINKS_H
#define CPNS_COMMON_LINKS_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h" /* cpns_map */
#include "net.h"

/* A zeroed link_table is empty; .count is the number of connections in it. */
typedef cpns_map link_table;

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

/*
 * Every connection: `for (cpns_map_iter it = cpns_map_begin(t); links_next(&it);)`
 * then it.val. The table must not change during the walk.
 */
static inline net_conn *links_next(cpns_map_iter *it)
{
    return cpns_map_next(it) ? (net_conn *)it->val : NULL;
}

#endif
