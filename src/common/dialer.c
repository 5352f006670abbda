/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dial-out and reconnect loop of cpns-gw and cpns-pne (dialer.h): one
 * connection, a list of addresses tried in turn, backoff between failed
 * passes, a timeout per attempt.
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "backoff.h"
#include "daemon.h"
#include "dialer.h"

struct dialer {
    dialer_config cfg;
    net_conn *conn; /* NULL while disconnected */
    bool open;
    size_t cur;            /* the index in cfg.addrs of the address dialed or connected */
    size_t failed_in_pass; /* failures in a row since the last settle or backoff */
    backoff retry;
    struct event *retry_timer;
    struct event *timeout_timer;
};

static void dial(dialer *d);

const char *dialer_addr(const dialer *d)
{
    return d->cfg.addrs[d->cur];
}

size_t dialer_index(const dialer *d)
{
    return d->cur;
}

net_conn *dialer_conn(const dialer *d)
{
    return d->open ? d->conn : NULL;
}

size_t dialer_pending(const dialer *d)
{
    return d->conn ? net_conn_pending(d->conn) : 0;
}

/*
 * The current address failed (no connection, no registration, or the
 * connection ended): the next attempt goes to the next address of the list,
 * never the same one again when there are others. It is dialed at once,
 * unless this failure ends a pass over the whole list: only then the backoff
 * applies (with one address, every failure).
 */
static void schedule_retry(dialer *d)
{
    size_t n = d->cfg.n_addrs;
    const char *peer = d->cfg.peer;
    d->cur = (d->cur + 1) % n;
    int64_t delay = 0;
    if (++d->failed_in_pass >= n) {
        d->failed_in_pass = 0;
        delay = backoff_next(&d->retry);
        if (n == 1)
            log_info("connecting to the %s again in %.1f s", peer, (double)delay / 1000.0);
        else
            log_info("all %zu %ss failed: connecting to the %s again in %.1f s, at %s (%zu of %zu)",
                     n, peer, peer, (double)delay / 1000.0, dialer_addr(d), d->cur + 1, n);
    } else {
        log_info("moving to the next %s: %s (%zu of %zu)", peer, dialer_addr(d), d->cur + 1, n);
    }
    struct timeval tv = ms_to_timeval(delay);
    evtimer_add(d->retry_timer, &tv);
}

void dialer_lost(dialer *d, const char *reason)
{
    if (d->conn) {
        log_warn("%s connection to %s closed: %s", d->cfg.peer, dialer_addr(d), reason);
        net_conn_close(d->conn, false);
        d->conn = NULL;
    }
    evtimer_del(d->timeout_timer);
    bool was_open = d->open;
    d->open = false;
    d->cfg.on_down(d->cfg.arg, was_open);
    schedule_retry(d);
}

void dialer_settled(dialer *d)
{
    backoff_reset(&d->retry);
    d->failed_in_pass = 0;
    evtimer_del(d->timeout_timer);
}

static void on_open(net_conn *c, void *arg)
{
    dialer *d = arg;
    (void)c;
    d->open = true;
    if (d->cfg.timeout_until == DIALER_UNTIL_OPEN)
        evtimer_del(d->timeout_timer);
    d->cfg.on_open(d->cfg.arg);
}

static void on_frame(net_conn *c, const uint8_t *data, size_t len, void *arg)
{
    dialer *d = arg;
    (void)c;
    d->cfg.on_frame(d->cfg.arg, data, len);
}

static void on_close(net_conn *c, const char *reason, void *arg)
{
    dialer *d = arg;
    (void)c;
    if (d->open)
        log_warn("%s connection lost (%s): %s", d->cfg.peer, dialer_addr(d), reason);
    else
        log_warn("cannot connect to the %s at %s: %s", d->cfg.peer, dialer_addr(d), reason);
    d->conn = NULL; /* the net layer frees it */
    dialer_lost(d, reason);
}

static void on_drain(net_conn *c, void *arg)
{
    dialer *d = arg;
    (void)c;
    d->cfg.on_drain(d->cfg.arg);
}

static const net_conn_cbs conn_cbs = {on_open, on_frame, on_close};

static void dial(dialer *d)
{
    char err[512];
    d->open = false;
    d->conn = net_connect(d->cfg.base, dialer_addr(d), d->cfg.tls, &conn_cbs, d, err, sizeof err);
    if (!d->conn) {
        log_warn("cannot connect to the %s at %s: %s", d->cfg.peer, dialer_addr(d), err);
        schedule_retry(d);
        return;
    }
    if (d->cfg.stall_timeout_s)
        net_conn_set_stall_timeout(d->conn, d->cfg.stall_timeout_s);
    if (d->cfg.on_drain)
        net_conn_set_on_drain(d->conn, d->cfg.drain_low, on_drain);
    log_debug("connecting to the %s at %s", d->cfg.peer, dialer_addr(d));
    struct timeval tv = ms_to_timeval(d->cfg.timeout_ms);
    evtimer_add(d->timeout_timer, &tv);
}

void dialer_start(dialer *d)
{
    dial(d);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dial(arg);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    dialer *d = arg;
    char reason[64];
    (void)fd;
    (void)what;
    int s = (int)(d->cfg.timeout_ms / 1000);
    if (d->cfg.timeout_until == DIALER_UNTIL_SETTLED) {
        log_warn("not registered with the %s at %s after %d s", d->cfg.peer, dialer_addr(d), s);
        snprintf(reason, sizeof reason, "registration timed out");
    } else {
        snprintf(reason, sizeof reason, "no connection within %d s", s);
    }
    dialer_lost(d, reason);
}

dialer *dialer_new(const dialer_config *cfg)
{
    dialer *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->cfg = *cfg;
    backoff_init(&d->retry, cfg->retry_min_ms, cfg->retry_max_ms);
    d->retry_timer = evtimer_new(cfg->base, on_retry_timer, d);
    d->timeout_timer = evtimer_new(cfg->base, on_timeout, d);
    if (!d->retry_timer || !d->timeout_timer) {
        dialer_free(d);
        return NULL;
    }
    return d;
}

void dialer_free(dialer *d)
{
    if (!d)
        return;
    if (d->conn)
        net_conn_close(d->conn, false);
    if (d->retry_timer)
        event_free(d->retry_timer);
    if (d->timeout_timer)
        event_free(d->timeout_timer);
    free(d);
}
