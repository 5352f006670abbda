/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /metrics: the engine's counters (cpns_server_get_stats) in the
 * Prometheus text exposition format 0.0.4. Counters end in _total, Return
 * values are a label, and the delivery latency (first send to delivered) is
 * a histogram in seconds whose buckets are the engine's bounds made
 * cumulative, as Prometheus wants them.
 */
#include <stdio.h>

#include <string.h>

#include <openssl/crypto.h>

#include "srvd.h"

static int counter(struct evbuffer *out, const char *name, const char *help, uint64_t v)
{
    return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name,
                               name, (unsigned long long)v) < 0;
}

static int gauge(struct evbuffer *out, const char *name, const char *help, uint64_t v)
{
    return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name,
                               name, (unsigned long long)v) < 0;
}

/* One counter per Return value, all ten present so that rates start at zero. */
static int by_return(struct evbuffer *out, const char *name, const char *help, const uint64_t v[10])
{
    int bad = evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name) < 0;
    for (int i = 0; i < 10 && !bad; i++)
        bad = evbuffer_add_printf(out, "%s{return=\"%d\"} %llu\n", name, i,
                                  (unsigned long long)v[i]) < 0;
    return bad;
}

static int latency(struct evbuffer *out, const cpns_server_stats *st)
{
    static const char name[] = "cpns_delivery_latency_seconds";
    int bad = evbuffer_add_printf(out,
                                  "# HELP %s Time from the first send of a delivery to its "
                                  "KeyConfirmation.\n# TYPE %s histogram\n",
                                  name, name) < 0;
    uint64_t cumulative = 0;
    for (int i = 0; i < CPNS_LATENCY_BUCKETS && !bad; i++) {
        cumulative += st->latency_buckets[i];
        if (i < CPNS_LATENCY_BUCKETS - 1)
            bad = evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
                                      (double)cpns_latency_bounds_ms[i] / 1000.0,
                                      (unsigned long long)cumulative) < 0;
        else
            bad = evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                                      (unsigned long long)cumulative) < 0;
    }
    if (!bad)
        bad = evbuffer_add_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
                                  st->latency_sum_ms / 1000.0, name,
                                  (unsigned long long)st->latency_count) < 0;
    return bad;
}

/* The daemon's own gauges: connections and what is queued for them. */
static int connections(struct evbuffer *out, const srvd *d)
{
    int bad = 0;
    bad |= gauge(out, "cpns_gw_connections",
                 "GW connections open, registered or not (--max-gws caps them).", d->conns.count);
    bad |= gauge(out, "cpns_gw_connections_paused",
                 "GW connections not read from until their unread output drains.", d->gws_paused);
    bad |= gauge(out, "cpns_gw_output_bytes",
                 "Bytes queued for the GW connections and not written yet.", srvd_gw_output(d));
    bad |= gauge(out, "cpns_admin_connections", "Admin API connections open.", d->admin_conns);
    bad |= counter(out, "cpns_admin_connections_refused_total",
                   "Admin API connections closed at accept: the most allowed were open.",
                   d->admin_refused);
    return bad;
}

/* cpns_build_info: the versions as labels, the value always 1 (the Prometheus idiom). */
static int build_info(struct evbuffer *out)
{
    return evbuffer_add_printf(out,
                               "# HELP cpns_build_info The running version of CPNS and of the "
                               "OpenSSL library it uses.\n# TYPE cpns_build_info gauge\n"
                               "cpns_build_info{version=\"%s\",openssl=\"%s\"} 1\n",
                               cpns_version(), OpenSSL_version(OPENSSL_VERSION_STRING)) < 0;
}

int srvd_metrics(const srvd *d, struct evbuffer *out)
{
    cpns_server_stats st;
    memset(&st, 0, sizeof st); /* a standby has no engine: zeros */
    cpns_server_get_stats(d->server, &st);
    bool store_ok = d->store_ok;
    int bad = build_info(out);
    bad |= gauge(out, "cpns_instance_active",
                 "1 when this instance serves GWs (the only one, the lease holder with "
                 "PostgreSQL, or any instance in cluster mode); 0 for a standby.",
                 d->active);
    if (d->opt.cluster) {
        bad |= gauge(out, "cpns_owned_gws",
                     "Cluster mode: GWs whose session this instance holds (registered here at "
                     "the newest epoch).",
                     st.gws_connected);
        bad |= gauge(out, "cpns_owned_open_members",
                     "Cluster mode: open deliveries (pending or sent) this instance carries: "
                     "their PNE is reachable through one of its GWs.",
                     st.owned_open_members);
        bad |= counter(out, "cpns_fenced_writes_total",
                       "Cluster mode: member writes the database refused because another "
                       "instance owns the row now (its GW or PNE registered there); each "
                       "evicts that delivery from this instance.",
                       st.fenced_writes);
        bad |= counter(out, "cpns_cluster_refreshes_total",
                       "Cluster mode: SGs and PNEs reloaded from the database after another "
                       "instance changed them (or before an admin call here).",
                       st.refreshes);
        int64_t age = srvd_now() - d->heartbeat_ok_ms;
        bad |= gauge(out, "cpns_instance_heartbeat_age_seconds",
                     "Cluster mode: seconds since this instance last renewed its instance row "
                     "(renewed every 5 s; at 10 s it stops, exit 3).",
                     (uint64_t)(age > 0 ? age / 1000 : 0));
    }
    if (d->opt.pg && !d->opt.cluster)
        bad |= gauge(out, "cpns_lease_epoch",
                     "The epoch of the active lease as this instance last saw it (bumped each "
                     "time the lease changes hands).",
                     (uint64_t)d->lease_epoch);
    bad |= counter(out, "cpns_deliveries_sent_total",
                   "SGroupKeyDeliveryRequests sent, resends included.", st.deliveries_sent);
    bad |= counter(out, "cpns_deliveries_delivered_total",
                   "Deliveries confirmed by the PNE (Return 1 with a valid KeyConfirmation).",
                   st.deliveries_delivered);
    bad |= counter(out, "cpns_deliveries_failed_total", "Members whose delivery was given up.",
                   st.deliveries_failed);
    bad |= counter(out, "cpns_delivery_timeouts_total",
                   "Deliveries whose response did not come in time.", st.timeouts);
    bad |= by_return(out, "cpns_responses_total", "SGroupKeyDeliveryResponses received, by Return.",
                     st.returns);
    bad |= by_return(out, "cpns_registrations_total", "PNE registrations answered, by Return.",
                     st.registrations);
    bad |= counter(out, "cpns_registrations_limited_total",
                   "PNE registrations refused by the per-GW rate limit (answered Return 0).",
                   st.registrations_limited);
    bad |= by_return(out, "cpns_gw_registrations_total", "GW registrations answered, by Return.",
                     st.gw_registrations);
    bad |=
        gauge(out, "cpns_gws_connected", "GWs registered on an open connection.", st.gws_connected);
    bad |= gauge(out, "cpns_pnes_reachable", "PNEs routable now.", st.pnes_reachable);
    bad |= gauge(out, "cpns_store_up", "1 when the last commit of the store succeeded.",
                 store_ok ? 1 : 0);
    bad |= connections(out, d);
    bad |= latency(out, &st);
    return bad ? -1 : 0;
}
