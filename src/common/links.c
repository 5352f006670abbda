/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The link table (links.h) over libcpns's open-addressing map (lib/map.c:
 * linear probing, backward-shift deletion, so a GW whose PNEs come and go for
 * months keeps short probe sequences).
 */
#include "links.h"

int links_put(link_table *t, uint64_t link, net_conn *conn)
{
    return link && cpns_map_put_u64(t, link, conn) == 0 ? 0 : -1;
}

net_conn *links_get(const link_table *t, uint64_t link)
{
    return cpns_map_get_u64(t, link);
}

net_conn *links_remove(link_table *t, uint64_t link)
{
    return cpns_map_remove_u64(t, link);
}

void links_free(link_table *t)
{
    cpns_map_clear(t);
}

void links_close_all(link_table *t)
{
    net_conn *c;
    for (cpns_map_iter it = cpns_map_begin(t); (c = links_next(&it)) != NULL;)
        net_conn_close(c, false);
    links_free(t);
}
