/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-server --cluster (issue #12, stage 2 of docs/ARCHITECTURE.md section
 * 7): every instance on one PostgreSQL database active, each serving the
 * GWs connected to it. There is no lease to wait for: the fencing tokens
 * (GW session epochs, lib/store_pg_cluster.c) keep a stale instance from
 * writing, so correctness needs no timing.
 *
 * The instance row. Renewed every HEARTBEAT_MS (TTL INSTANCE_TTL_MS, on the
 * database's clock) so that two processes never run under one
 * --instance-id; one that cannot renew it for SELF_FENCE_MS stops (exit 3)
 * so that its GWs move to another instance (self-fencing: it shortens an
 * outage behind a partition; correctness does not rely on it).
 *
 * The change feed. The store's second connection LISTENs; it is watched in
 * the event loop (never blocking it while nothing arrived), and swept every
 * SWEEP_MS in any case, so a lost notification costs at most that. Each
 * change (an SG or a PNE another instance changed) reloads that scope
 * (cpns_server_refresh); a GW registered on another instance closes its
 * stale connection here (cpns_server_gw_taken).
 *
 * SGs left without a key. Each sweep also lists the SGs stored at
 * KeyVersion 0 and hands them to cpns_server_finish_unkeyed(): one still
 * without a key after UNKEYED_GRACE_MS (its creator stopped between the
 * inventory commit and the key commit) gets its first key from this
 * instance, unless the creator or another instance commits one first (one
 * key per version: the loser loads the winner's key). The grace period is
 * well above the time between the two commits of a live creator (seconds
 * at 100,000 members on a busy database) and equals the instance TTL, the
 * time after which the cluster counts a silent instance as gone.
 *
 * Commits are ha.c's non-blocking ones.
 */
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "daemon.h"
#include "srvd.h"

#define HEARTBEAT_MS 5000
#define INSTANCE_TTL_MS 15000
#define SELF_FENCE_MS 10000
#define SWEEP_MS 2000
#define UNKEYED_GRACE_MS INSTANCE_TTL_MS
/* After a failed renewal, the next try comes this soon. */
#define HEARTBEAT_RETRY_MS 1000

static void arm(struct event *ev, int64_t ms)
{
    struct timeval tv = ms_to_timeval(ms);
    evtimer_add(ev, &tv);
}

static void self_fence(srvd *d, const char *why)
{
    log_error("instance %s stops serving: %s (exit %d); its GWs move to the other instances",
              d->opt.instance_id, why, EXIT_FENCED);
    srvd_stop(d, EXIT_FENCED);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srvd *d = arg;
    int held = 0;
    int rv = cpns_store_pg_heartbeat(d->store, INSTANCE_TTL_MS, d->opt.admin, d->opt.listen, &held);
    int64_t now = srvd_now();
    if (rv == 0 && !held) {
        self_fence(d, "another process runs with this --instance-id");
        return;
    }
    if (rv != 0) {
        log_warn("cannot renew the instance row: %s", srvd_store_error(d, rv));
        if (now - d->heartbeat_ok_ms >= SELF_FENCE_MS) {
            self_fence(d, "the instance row could not be renewed for 10 s");
            return;
        }
        arm(d->heartbeat_timer, HEARTBEAT_RETRY_MS);
        return;
    }
    d->heartbeat_ok_ms = now;
    arm(d->heartbeat_timer, HEARTBEAT_MS);
}

/* One change of the feed. */
static int on_change(void *arg, const char *kind, const char *key)
{
    srvd *d = arg;
    if (strcmp(kind, "gw") == 0) {
        /* "PNGWID EPOCH INSTANCE" */
        char gw[CPNS_ID_MAX + 1], inst[CPNS_ID_MAX + 1];
        long long epoch;
        if (sscanf(key, "%64s %lld %64s", gw, &epoch, inst) == 3 &&
            strcmp(inst, d->opt.instance_id) != 0)
            cpns_server_gw_taken(d->server, gw, epoch);
        return 0;
    }
    log_info("change from another instance: %s %s", kind, key);
    int rv = cpns_server_refresh(d->server, kind, key, srvd_now());
    return rv == CPNS_ERR_STORE ? rv : 0; /* the store failing: the rest at the next sweep */
}

static void watch_changes(srvd *d);

static void read_changes(srvd *d, bool sweep)
{
    size_t n = 0;
    int rv = cpns_store_pg_changes(d->store, sweep, on_change, d, &n);
    if (rv != 0 && !d->changes_failing)
        log_warn("cannot read the change feed: %s; retried every %d ms", srvd_store_error(d, rv),
                 SWEEP_MS);
    else if (rv == 0 && d->changes_failing)
        log_info("the change feed works again");
    d->changes_failing = rv != 0;
    watch_changes(d); /* a reconnect changes the descriptor */
    if (n)
        srvd_turn_send(d);
}

static void on_changes(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    read_changes(arg, false);
}

typedef struct unkeyed_list {
    char **ids;
    size_t n, cap;
} unkeyed_list;

static int add_unkeyed(void *arg, const char *SGID)
{
    unkeyed_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        char **ids = realloc(l->ids, cap * sizeof *ids);
        if (!ids)
            return CPNS_ERR_NOMEM;
        l->ids = ids;
        l->cap = cap;
    }
    if (!(l->ids[l->n] = strdup(SGID)))
        return CPNS_ERR_NOMEM;
    l->n++;
    return 0;
}

/* The SGs at KeyVersion 0: finished here once they stay so for UNKEYED_GRACE_MS. */
static void finish_unkeyed(srvd *d)
{
    unkeyed_list l = {0};
    int rv = cpns_store_pg_unkeyed(d->store, add_unkeyed, &l);
    if (rv == 0) {
        rv = cpns_server_finish_unkeyed(d->server, (const char *const *)l.ids, l.n,
                                        UNKEYED_GRACE_MS, srvd_now());
        if (l.n) /* a key made here, or the winner's loaded: its deliveries */
            srvd_turn_send(d);
    }
    if (rv < 0 && rv != CPNS_ERR_STORE)
        log_warn("cannot finish the SGs left without a Group Key: %s", cpns_strerror(rv));
    /* CPNS_ERR_STORE: the change feed's sweep reports the database; tried again next sweep. */
    for (size_t i = 0; i < l.n; i++)
        free(l.ids[i]);
    free(l.ids);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srvd *d = arg;
    read_changes(d, true);
    finish_unkeyed(d);
    arm(d->sweep_timer, SWEEP_MS);
}

static void watch_changes(srvd *d)
{
    int fd = cpns_store_pg_changes_fd(d->store);
    if (fd == d->changes_fd && d->changes_ev)
        return;
    if (d->changes_ev)
        event_free(d->changes_ev);
    d->changes_ev = NULL;
    d->changes_fd = fd;
    if (fd >= 0) {
        d->changes_ev = event_new(d->base, fd, EV_READ | EV_PERSIST, on_changes, d);
        if (d->changes_ev)
            event_add(d->changes_ev, NULL);
    }
}

int srvd_cluster_start(srvd *d)
{
    d->heartbeat_timer = evtimer_new(d->base, on_heartbeat, d);
    d->sweep_timer = evtimer_new(d->base, on_sweep, d);
    d->changes_fd = -1;
    d->store_ev_fd = -1;
    if (!d->heartbeat_timer || !d->sweep_timer)
        return EXIT_FAILURE;
    int held = 0;
    int rv = cpns_store_pg_heartbeat(d->store, INSTANCE_TTL_MS, d->opt.admin, d->opt.listen, &held);
    if (rv != 0) {
        log_error("cannot take the instance row: %s", srvd_store_error(d, rv));
        return EXIT_FAILURE;
    }
    if (!held) {
        log_error("instance %s is running already (its instance row is held by another live "
                  "process): start this one with another --instance-id",
                  d->opt.instance_id);
        return EXIT_USAGE;
    }
    d->heartbeat_ok_ms = srvd_now();
    /* The feed's position before the load: what commits meanwhile is applied again, harmlessly. */
    rv = cpns_store_pg_changes_start(d->store);
    if (rv != 0) {
        log_error("cannot read the change feed: %s", srvd_store_error(d, rv));
        return EXIT_FAILURE;
    }
    int status = srvd_activate(d);
    if (status != 0)
        return status;
    log_info("instance %s is active (cluster mode): serving its GWs; changes of the other "
             "instances are read as they are notified and swept every %d ms",
             d->opt.instance_id, SWEEP_MS);
    watch_changes(d);
    arm(d->heartbeat_timer, HEARTBEAT_MS);
    arm(d->sweep_timer, SWEEP_MS);
    return 0;
}

void srvd_cluster_stop(srvd *d)
{
    int rv = cpns_store_pg_release(d->store);
    if (rv != 0)
        log_warn("cannot release the instance row (%s): it expires in %d s",
                 srvd_store_error(d, rv), INSTANCE_TTL_MS / 1000);
    if (d->changes_ev)
        event_free(d->changes_ev);
    d->changes_ev = NULL;
    if (d->heartbeat_timer)
        event_free(d->heartbeat_timer);
    d->heartbeat_timer = NULL;
    if (d->sweep_timer)
        event_free(d->sweep_timer);
    d->sweep_timer = NULL;
}

void srvd_cluster_refresh(srvd *d, const char *kind, const char *key)
{
    if (!d->opt.cluster || !d->server || !key)
        return;
    int rv = cpns_server_refresh(d->server, kind, key, srvd_now());
    if (rv != 0)
        log_warn("cannot reload %s %s from the database: %s; answering from memory", kind, key,
                 srvd_store_error(d, rv));
}
