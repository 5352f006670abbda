/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-server on PostgreSQL (issue #11, stage 1 of docs/ARCHITECTURE.md
 * section 7): several instances on one database, exactly one active.
 *
 * The lease. One row ('active') in the database names the instance that
 * serves; the store takes and renews it on the database's clock
 * (cpns_store_pg_lease_acquire). An instance without it is a standby: it has
 * opened the store (schema checked, master key verified) but loads nothing,
 * does not listen for GWs and does not write; it asks for the lease every
 * second and, once the holder let it expire, loads the state and becomes
 * active. The active instance renews every TTL/3. If it could not renew for
 * 2·TTL/3 it stops (exit 3) before the TTL ends, so that a standby taking
 * over never finds it still serving; another instance holding the lease
 * stops it at once. Correctness does not rest on that timing: every commit
 * checks the lease inside its transaction (the store's fencing), so a paused
 * instance that wakes up after losing it writes nothing (CPNS_ERR_FENCED →
 * exit 3). A clean stop (SIGTERM) hands the lease over at once.
 *
 * The commit. A turn's group commit is started without blocking
 * (cpns_server_flush_start): the event loop goes on serving while PostgreSQL
 * works, and the store's socket being readable ends it
 * (cpns_server_flush_poll), then a turn sends what it released. Admin calls
 * and the commit of a new Group Key before its first frame still wait.
 *
 * The standby's admin API forwards every /v1 request to the active instance
 * (the admin address it published in the lease) and relays its answer, so
 * cpnsctl works against any instance; /healthz and /metrics answer locally.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "backoff.h"
#include "daemon.h"
#include "srvd.h"

/* A standby asks for the lease this often (ms), at most. */
#define STANDBY_POLL_MS 1000
/*
 * The commit in flight is also polled this often: while libpq still has part
 * of a large batch to send, the socket becoming readable is not what we wait for.
 */
#define COMMIT_POLL_MS 5
/* A failed commit is tried again this soon (ms). */
#define COMMIT_RETRY_MS 200
/* A forwarded admin request gives up after this (s). */
#define FORWARD_TIMEOUT_S 30

static int64_t renew_every(const srvd *d)
{
    return d->opt.lease_ttl_ms / 3;
}

static int64_t fence_after(const srvd *d)
{
    return 2 * d->opt.lease_ttl_ms / 3;
}

static void arm_ms(struct event *ev, int64_t ms)
{
    struct timeval tv = ms_to_timeval(ms);
    evtimer_add(ev, &tv);
}

const char *srvd_ha_role(const srvd *d)
{
    if (!d->opt.pg)
        return "single";
    if (d->opt.cluster)
        return "cluster";
    return d->active ? "active" : "standby";
}

static void fence(srvd *d, const char *why)
{
    log_error("instance %s stops serving: %s (exit %d; restarted, it waits as a standby)",
              d->opt.instance_id, why, EXIT_FENCED);
    srvd_stop(d, EXIT_FENCED);
}

void srvd_ha_fenced(srvd *d)
{
    fence(d, "the database refused a commit: this instance no longer holds the lease");
}

static void remember_holder(srvd *d, const cpns_store_pg_lease *l)
{
    snprintf(d->active_instance, sizeof d->active_instance, "%s", l->holder);
    snprintf(d->active_admin, sizeof d->active_admin, "%s", l->admin_addr);
    d->lease_epoch = l->epoch;
}

/* The standby becomes active: load and serve. */
static void take_over(srvd *d, const cpns_store_pg_lease *l)
{
    log_info("instance %s holds the lease (epoch %lld): loading the state and serving",
             d->opt.instance_id, (long long)l->epoch);
    int status = srvd_activate(d);
    if (status != 0) {
        srvd_stop(d, status);
        return;
    }
    srvd_turn(d);
}

static void on_lease(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srvd *d = arg;
    cpns_store_pg_lease l;
    memset(&l, 0, sizeof l);
    int rv = cpns_store_pg_lease_acquire(d->store, (int)d->opt.lease_ttl_ms, d->opt.admin,
                                         d->opt.listen, &l);
    int64_t now = srvd_now();
    if (rv == CPNS_ERR_AGAIN) { /* a commit is in flight: right after it (commit_ended) */
        d->lease_wanted = true;
        arm_ms(d->lease_timer, 10);
        return;
    }
    d->lease_wanted = false;
    if (rv != 0) {
        log_warn("cannot %s the lease: %s", d->active ? "renew" : "ask for",
                 srvd_store_error(d, rv));
        if (d->active && now - d->lease_ok_ms >= fence_after(d)) {
            fence(d, "the lease could not be renewed in time");
            return;
        }
        arm_ms(d->lease_timer, d->active ? 200 : STANDBY_POLL_MS);
        return;
    }
    remember_holder(d, &l);
    if (d->active && !l.held) {
        char why[300];
        snprintf(why, sizeof why, "instance %s took the lease", l.holder);
        fence(d, why);
        return;
    }
    if (l.held) {
        d->lease_ok_ms = now;
        if (!d->active)
            take_over(d, &l);
        arm_ms(d->lease_timer, renew_every(d));
        return;
    }
    int64_t wait = STANDBY_POLL_MS;
    if (l.expires_in_ms > 0 && l.expires_in_ms < wait)
        wait = l.expires_in_ms + 1;
    arm_ms(d->lease_timer, wait);
}

int srvd_ha_start(srvd *d)
{
    d->lease_timer = evtimer_new(d->base, on_lease, d);
    if (!d->lease_timer)
        return EXIT_FAILURE;
    d->store_ev_fd = -1;
    cpns_store_pg_lease l;
    memset(&l, 0, sizeof l);
    int rv = cpns_store_pg_lease_acquire(d->store, (int)d->opt.lease_ttl_ms, d->opt.admin,
                                         d->opt.listen, &l);
    if (rv != 0) {
        log_error("cannot ask for the lease: %s", srvd_store_error(d, rv));
        return EXIT_FAILURE;
    }
    remember_holder(d, &l);
    if (l.held) {
        log_info("instance %s holds the lease (epoch %lld)", d->opt.instance_id,
                 (long long)l.epoch);
        d->lease_ok_ms = srvd_now();
        int status = srvd_activate(d);
        if (status != 0)
            return status;
        arm_ms(d->lease_timer, renew_every(d));
        return 0;
    }
    log_info("instance %s is a standby: %s holds the lease (admin API %s, expires in %lld ms)",
             d->opt.instance_id, l.holder, *l.admin_addr ? l.admin_addr : "unknown",
             (long long)l.expires_in_ms);
    arm_ms(d->lease_timer, STANDBY_POLL_MS);
    return 0;
}

void srvd_ha_stop(srvd *d)
{
    int rv = cpns_store_pg_lease_release(d->store);
    if (rv == 0)
        log_info("released the lease: a standby may take over at once");
    else
        log_warn("cannot release the lease (%s): a standby takes over when it expires",
                 srvd_store_error(d, rv));
}

/* --- the non-blocking commit --- */

static void commit_ended(srvd *d, int rv)
{
    event_del(d->store_poll);
    if (d->store_ev)
        event_del(d->store_ev);
    /*
     * A renewal that found a commit in flight goes now, before the next
     * commit starts: back-to-back commits of a large distribution must not
     * starve the lease into self-fencing.
     */
    if (d->lease_wanted && rv != CPNS_ERR_FENCED) {
        on_lease(-1, 0, d);
        if (d->exit_status)
            return;
    }
    if (!srvd_commit_result(d, rv, rv == 0))
        return;
    bool ok = rv == 0;
    /* Send what it released; commit again at once if more was due meanwhile. */
    bool again = d->commit_again || cpns_server_commit_wanted(d->server) == 1;
    d->commit_again = false;
    if (!ok) /* not at once: a database that refuses fast would make this spin */
        arm_ms(d->commit_timer, COMMIT_RETRY_MS);
    else if (again)
        srvd_turn_async(d);
    else
        srvd_turn_send(d);
}

static void on_store(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srvd *d = arg;
    int rv = cpns_server_flush_poll(d->server);
    if (rv == CPNS_ERR_AGAIN) {
        arm_ms(d->store_poll, COMMIT_POLL_MS);
        return;
    }
    commit_ended(d, rv);
}

/* Waits for the commit in flight on the store's socket (which a reconnect may change). */
static int watch_store(srvd *d)
{
    int fd = cpns_server_store_fd(d->server);
    if (fd != d->store_ev_fd || !d->store_ev) {
        if (d->store_ev)
            event_free(d->store_ev);
        d->store_ev = NULL;
        d->store_ev_fd = fd;
        if (fd >= 0 && !(d->store_ev = event_new(d->base, fd, EV_READ | EV_PERSIST, on_store, d)))
            return -1;
    }
    if (!d->store_poll && !(d->store_poll = evtimer_new(d->base, on_store, d)))
        return -1;
    if (d->store_ev)
        event_add(d->store_ev, NULL);
    arm_ms(d->store_poll, COMMIT_POLL_MS);
    return 0;
}

void srvd_ha_commit(srvd *d)
{
    d->last_commit_ms = srvd_now();
    int rv = cpns_server_flush_start(d->server);
    if (rv == CPNS_ERR_AGAIN) {
        d->commit_again = true; /* when the one in flight ends */
        return;
    }
    if (rv == 0 && cpns_server_flush_inflight(d->server)) {
        if (watch_store(d) != 0) {
            log_error("cannot watch the store's socket: waiting for the commit");
            commit_ended(d, cpns_server_flush(d->server));
        }
        return;
    }
    srvd_commit_result(d, rv, rv == 0);
}

/* --- the standby's admin API --- */

typedef struct forward {
    srvd *d;
    struct evhttp_request *client; /* the request this standby received */
} forward;

static void forward_failed(forward *f, const char *why)
{
    struct evbuffer *body = evbuffer_new();
    if (body) {
        evbuffer_add_printf(body,
                            "{\"error\":\"this instance (%s) is a standby and %s; the active "
                            "instance is %s at %s\"}\n",
                            f->d->opt.instance_id, why,
                            *f->d->active_instance ? f->d->active_instance : "unknown",
                            *f->d->active_admin ? f->d->active_admin : "an unknown address");
        evhttp_add_header(evhttp_request_get_output_headers(f->client), "Content-Type",
                          "application/json");
    }
    evhttp_send_reply(f->client, 503, "Service Unavailable", body);
    if (body)
        evbuffer_free(body);
    free(f);
}

static void on_forwarded(struct evhttp_request *resp, void *arg)
{
    forward *f = arg;
    if (!resp || evhttp_request_get_response_code(resp) == 0) {
        forward_failed(f, "cannot reach the active instance");
        return;
    }
    const char *type = evhttp_find_header(evhttp_request_get_input_headers(resp), "Content-Type");
    struct evkeyvalq *out = evhttp_request_get_output_headers(f->client);
    if (type)
        evhttp_add_header(out, "Content-Type", type);
    const char *allow = evhttp_find_header(evhttp_request_get_input_headers(resp), "Allow");
    if (allow)
        evhttp_add_header(out, "Allow", allow);
    const char *auth =
        evhttp_find_header(evhttp_request_get_input_headers(resp), "WWW-Authenticate");
    if (auth)
        evhttp_add_header(out, "WWW-Authenticate", auth);
    evhttp_add_header(out, "X-CPNS-Forwarded-To", f->d->active_instance);
    evhttp_send_reply(f->client, evhttp_request_get_response_code(resp),
                      evhttp_request_get_response_code_line(resp),
                      evhttp_request_get_input_buffer(resp));
    free(f);
}

void srvd_ha_forward(srvd *d, struct evhttp_request *req)
{
    forward *f = calloc(1, sizeof *f);
    if (!f) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    f->d = d;
    f->client = req;
    char host[256];
    uint16_t port;
    if (!*d->active_admin || strcmp(d->active_admin, d->opt.admin) == 0 ||
        addr_parse(d->active_admin, host, sizeof host, &port) != 0 || port == 0) {
        forward_failed(f, "knows no active instance to forward to");
        return;
    }
    struct evhttp_connection *conn = evhttp_connection_base_new(d->base, NULL, host, port);
    struct evhttp_request *out = conn ? evhttp_request_new(on_forwarded, f) : NULL;
    if (!out) {
        if (conn)
            evhttp_connection_free(conn);
        forward_failed(f, "cannot forward (out of memory)");
        return;
    }
    evhttp_connection_set_timeout(conn, FORWARD_TIMEOUT_S);
    evhttp_connection_free_on_completion(conn);
    struct evkeyvalq *in_h = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out_h = evhttp_request_get_output_headers(out);
    static const char *const copied[] = {"Authorization", "Content-Type", "Accept"};
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        const char *v = evhttp_find_header(in_h, copied[i]);
        if (v)
            evhttp_add_header(out_h, copied[i], v);
    }
    evhttp_add_header(out_h, "Host", d->active_admin);
    evhttp_add_header(out_h, "Connection", "close");
    evbuffer_add_buffer(evhttp_request_get_output_buffer(out),
                        evhttp_request_get_input_buffer(req));
    if (evhttp_make_request(conn, out, evhttp_request_get_command(req),
                            evhttp_request_get_uri(req)) != 0)
        forward_failed(f, "cannot forward the request"); /* libevent freed out and conn */
}
