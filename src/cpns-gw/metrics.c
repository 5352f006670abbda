/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /metrics of cpns-gw (metrics.h). Every metric is written at every
 * scrape, zeros included, so that rates start at zero; docs/METRICS.md lists
 * them all (test integration_test_metrics_doc checks both ways).
 *
 * The endpoint answers GET /metrics and nothing else: no token, so it should
 * listen on loopback or on a management network, like node exporters do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "daemon.h"
#include "metrics.h"

#define METRICS_TIMEOUT_S 10
#define METRICS_HEADERS_MAX 8192

struct gw_metrics {
    struct evhttp *http;
    gw_metrics_view_fn fn;
    void *arg;
};

static int head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0;
}

static int one(struct evbuffer *out, const char *name, const char *type, const char *help,
               unsigned long long v)
{
    return head(out, name, type, help) || evbuffer_add_printf(out, "%s %llu\n", name, v) < 0;
}

/* The uplink, one line per listed server: connected, and registered (frames flow). */
static int uplink(struct evbuffer *out, const gw_metrics_view *v, cpns_gw_state st)
{
    int bad = head(out, "cpns_gw_uplink_connected", "gauge",
                   "1 for the listed server this GW is connected to (TCP, and TLS unless "
                   "--insecure), 0 for the others.");
    for (size_t i = 0; i < v->n_servers && !bad; i++)
        bad = evbuffer_add_printf(out, "cpns_gw_uplink_connected{server=\"%s\"} %d\n",
                                  v->servers[i], i == v->cur && v->server_open) < 0;
    bad = bad || head(out, "cpns_gw_uplink_up", "gauge",
                      "1 for the listed server this GW is registered with (deliveries flow), 0 "
                      "for the others.");
    for (size_t i = 0; i < v->n_servers && !bad; i++)
        bad = evbuffer_add_printf(out, "cpns_gw_uplink_up{server=\"%s\"} %d\n", v->servers[i],
                                  i == v->cur && v->server_open && st == CPNS_GW_ONLINE) < 0;
    return bad;
}

static int render(const gw_metrics_view *v, struct evbuffer *out)
{
    cpns_gw_stats st;
    cpns_gw_get_stats(v->gw, &st);
    int bad = head(out, "cpns_build_info", "gauge",
                   "The running version of CPNS and of the OpenSSL library it uses.");
    bad = bad || evbuffer_add_printf(out, "cpns_build_info{version=\"%s\",openssl=\"%s\"} 1\n",
                                     cpns_version(), OpenSSL_version(OPENSSL_VERSION_STRING)) < 0;
    bad = bad || one(out, "cpns_gw_pnes_attached", "gauge",
                     "PNEs registered through this GW whose connection is up (its routes).",
                     cpns_gw_attached(v->gw));
    bad = bad || one(out, "cpns_gw_pne_connections", "gauge",
                     "PNE connections open, registered or not.", v->pne_connections);
    bad = bad || head(out, "cpns_gw_frames_forwarded_total", "counter",
                      "Frames forwarded byte for byte: to_pne from the server (delivery requests, "
                      "registration responses), to_server from the PNEs (registration requests, "
                      "delivery responses).");
    bad =
        bad || evbuffer_add_printf(out,
                                   "cpns_gw_frames_forwarded_total{direction=\"to_pne\"} %llu\n"
                                   "cpns_gw_frames_forwarded_total{direction=\"to_server\"} %llu\n",
                                   (unsigned long long)st.frames_to_pnes,
                                   (unsigned long long)st.frames_to_server) < 0;
    bad = bad || head(out, "cpns_gw_delivery_answers_total", "counter",
                      "SGroupKeyDeliveryRequests the GW answered itself, by Return: 6 the PNE "
                      "is not attached here, 4 the request was malformed.");
    bad = bad || evbuffer_add_printf(out,
                                     "cpns_gw_delivery_answers_total{return=\"4\"} %llu\n"
                                     "cpns_gw_delivery_answers_total{return=\"6\"} %llu\n",
                                     (unsigned long long)st.answered_malformed,
                                     (unsigned long long)st.answered_unreachable) < 0;
    bad = bad || one(out, "cpns_gw_registrations_refused_total", "counter",
                     "PNE registrations the GW answered Return 0 itself (another link's "
                     "registration of that PNEID in flight, or --max-pnes reached).",
                     st.registrations_refused);
    bad = bad || one(out, "cpns_gw_links_closed_abusive_total", "counter",
                     "PNE connections closed for frames over the size or rate limit of a link.",
                     st.links_abusive);
    bad = bad || uplink(out, v, cpns_gw_get_state(v->gw));
    bad = bad || one(out, "cpns_gw_uplink_queue_bytes", "gauge",
                     "Bytes queued for the server and not written yet.", v->uplink_bytes);
    bad = bad || one(out, "cpns_gw_pne_queue_bytes", "gauge",
                     "Bytes queued for the PNE connections and not written yet.", v->pne_bytes);
    bad = bad || one(out, "cpns_gw_pne_reads_paused", "gauge",
                     "1 while PNE connections are not read because the uplink queue is full "
                     "(backpressure).",
                     v->pne_reads_paused);
    return bad ? -1 : 0;
}

static void reply(struct evhttp_request *req, int status, const char *reason, const char *type,
                  struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, status, reason, body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    gw_metrics *m = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (!path || strcmp(path, "/metrics") != 0) {
        evbuffer_add_printf(body, "not found: only GET /metrics is served here\n");
        reply(req, 404, "Not Found", "text/plain; charset=utf-8", body);
    } else if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        evbuffer_add_printf(body, "only GET is allowed on /metrics\n");
        reply(req, 405, "Method Not Allowed", "text/plain; charset=utf-8", body);
    } else {
        gw_metrics_view v;
        memset(&v, 0, sizeof v);
        m->fn(m->arg, &v);
        if (render(&v, body) != 0) {
            evbuffer_free(body);
            evhttp_send_error(req, 500, NULL);
            return;
        }
        reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
    }
    evbuffer_free(body);
}

gw_metrics *gw_metrics_start(struct event_base *base, const char *addr, gw_metrics_view_fn fn,
                             void *arg, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (addr_parse(addr, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "--metrics %s: not HOST:PORT", addr);
        return NULL;
    }
    gw_metrics *m = calloc(1, sizeof *m);
    if (m)
        m->http = evhttp_new(base);
    if (!m || !m->http) {
        snprintf(err, errlen, "--metrics %s: out of memory", addr);
        free(m);
        return NULL;
    }
    m->fn = fn;
    m->arg = arg;
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_max_body_size(m->http, 1024);
    evhttp_set_max_headers_size(m->http, METRICS_HEADERS_MAX);
    evhttp_set_timeout(m->http, METRICS_TIMEOUT_S);
    evhttp_set_gencb(m->http, on_request, m);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(m->http, host, port);
    if (!bound) {
        snprintf(err, errlen, "--metrics: cannot listen on %s: %s", addr,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        gw_metrics_free(m);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    log_info("metrics on http://%s/metrics (port %u)", addr, port);
    return m;
}

void gw_metrics_free(gw_metrics *m)
{
    if (!m)
        return;
    if (m->http)
        evhttp_free(m->http);
    free(m);
}
