/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-gw --metrics HOST:PORT: GET /metrics in the Prometheus text format
 * (docs/METRICS.md), on libevent's evhttp as cpns-server's admin API. The
 * engine's counters come from cpns_gw_get_stats(); what only the glue knows
 * (sockets, queues, which server is dialed) it hands over in a view, filled
 * by a callback at each scrape.
 */
#ifndef CPNS_GWD_METRICS_H
#define CPNS_GWD_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "cpns/gw.h"

typedef struct gw_metrics_view {
    const cpns_gw *gw;
    char *const *servers; /* the --server list, in order */
    size_t n_servers;
    size_t cur;          /* the one dialed or connected */
    bool server_open;    /* its connection is up (TCP, and TLS unless --insecure) */
    size_t uplink_bytes; /* queued for the server, not written yet */
    size_t pne_bytes;    /* queued for the PNE connections, not written yet */
    size_t pne_connections;
    bool pne_reads_paused; /* backpressure: the uplink is full */
} gw_metrics_view;

typedef void (*gw_metrics_view_fn)(void *arg, gw_metrics_view *view);

typedef struct gw_metrics gw_metrics;

/* Listens on addr (HOST:PORT). NULL with a message in err. */
gw_metrics *gw_metrics_start(struct event_base *base, const char *addr, gw_metrics_view_fn fn,
                             void *arg, char *err, size_t errlen);
void gw_metrics_free(gw_metrics *m);

#endif
