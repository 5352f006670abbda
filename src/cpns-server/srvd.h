/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the parts of cpns-server share: the daemon object, built by main.c
 * (options, store, GW connections, the loop turn) and served over HTTP by
 * admin.c (the admin API of DESIGN.md section 5) and metrics.c (/metrics).
 *
 * Every change to the engine, from a frame, a timer or an admin call, is
 * followed by a loop turn: the frames the engine queued go out on their GW
 * connections (at most TURN_FRAMES per turn, the rest in the next one) and the
 * writes are committed together: at once after an admin call, at most every
 * --commit-interval otherwise (group commit; a new Group Key is committed by
 * the engine before the first frame carrying it, whatever the interval).
 */
#ifndef CPNS_SRVD_H
#define CPNS_SRVD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "cpns/cpns.h"
#include "cpns/store_db.h"
#include "links.h"
#include "net.h"

typedef struct srvd_options {
    const char *listen;
    const char *admin;
    const char *db;
    const char *master_key;
    const char *tls_cert;
    const char *tls_key;
    const char *tls_ca;
    const char *token_file;
    bool insecure;
    int64_t delivery_timeout_s;
    uint32_t max_attempts;
    cpns_log_level log_level;
    size_t max_gws;             /* GW connections open at once; more are refused (0: no limit) */
    int stall_timeout_s;        /* a frame left half-received this long drops its connection */
    int register_timeout_s;     /* TLS handshake + PNGWRegistration within this, or closed */
    size_t max_per_addr;        /* GW connections from one IP address (0: no limit) */
    int64_t commit_interval_ms; /* delivery progress waits at most this long for its commit */
    bool pg;                    /* --db is a PostgreSQL URI (ha.c) */
    const char *instance_id;    /* --instance-id (PostgreSQL only) */
    int64_t lease_ttl_ms;       /* --lease-ttl */
    bool cluster;               /* --cluster: every instance active (cluster.c) */
} srvd_options;

/*
 * One GW connection as the glue sees it (the engine keeps the GW's state):
 * whether its registration deadline was cleared and whether reading from it
 * is paused while its output drains.
 */
typedef struct gw_conn {
    struct srvd *d;
    net_conn *c;
    uint64_t id;
    bool registered; /* registered once: its deadline is cleared */
    bool paused;     /* not read from: its unread output is over the pause mark */
    struct gw_conn *prev, *next;
} gw_conn;

typedef struct srvd {
    srvd_options opt;
    struct event_base *base;
    SSL_CTX *tls;
    cpns_store *store;
    cpns_server *server;
    net_listener *listener;
    struct evhttp *http;
    struct event *expiry_timer; /* armed from cpns_server_get_expiry() */
    struct event *turn;         /* the deferred drain + flush after frames */
    struct event *more;         /* the next turn, when one turn left frames unbuilt */
    struct event *commit_timer; /* the group commit due at last_commit_ms + interval */
    int64_t last_commit_ms;
    struct event *sigterm;
    struct event *sigint;
    link_table conns; /* GW connection id -> net_conn */
    gw_conn *gws;     /* every GW connection, for the sweeps over their output */
    size_t gws_paused;
    struct event *drain_check; /* resumes paused connections once their output drained */
    uint64_t next_conn;
    bool store_ok; /* the last commit succeeded */
    char *token;   /* the admin bearer token, or NULL */
    size_t token_len;
    struct evconnlistener *admin_listener; /* paused while accept() lacks descriptors */
    struct event *admin_resume;            /* resumes it */
    int64_t admin_error_logged_ms;         /* accept() failures are logged at most every 10 s */
    uint64_t admin_errors_unlogged;
    size_t admin_max;   /* admin connections open at once; more are closed at accept */
    size_t admin_conns; /* open now */
    uint64_t admin_refused;
    int64_t admin_refusal_logged_ms;
    struct event *admin_check; /* counts (or refuses) the connections just accepted */
    /* ha.c: PostgreSQL mode */
    struct event *lease_timer; /* takes (standby) or renews (active) the lease */
    struct event *store_ev;    /* the store's descriptor while a commit is in flight */
    struct event *store_poll;  /* polls the commit in flight as a fallback */
    int store_ev_fd;
    bool commit_again;   /* a commit was due while one was in flight */
    bool lease_wanted;   /* a renewal waits for the commit in flight */
    bool active;         /* holds the lease and serves GWs (always, with SQLite) */
    int64_t lease_ok_ms; /* when the lease was last taken or renewed */
    int64_t lease_epoch;
    char active_instance[CPNS_ID_MAX + 1]; /* the lease holder (standby: where writes go) */
    char active_admin[256];
    int exit_status;          /* set when the daemon stops itself (lost lease: 3) */
    struct event *admin_shed; /* closes connections at accept while admin_max are open */
    /* cluster.c: --cluster */
    struct event *heartbeat_timer; /* renews the instance row */
    struct event *sweep_timer;     /* sweeps the change feed */
    struct event *changes_ev;      /* the store's notification connection is readable */
    int changes_fd;
    int64_t heartbeat_ok_ms; /* the instance row was last renewed */
    bool changes_failing;    /* the change feed failed last time (logged once) */
    struct bufferevent **admin_new;
    size_t admin_new_len, admin_new_cap;
} srvd;

/* The exit status of an instance that lost its lease (self-fencing, ha.c). */
#define EXIT_FENCED 3

/* The engine's now_ms: the monotonic clock (the wall clock is cfg.wall_clock). */
int64_t srvd_now(void);

/*
 * One loop turn that commits: sends what the engine queued (up to a turn's
 * worth; the rest follows in later turns), commits every write so far,
 * re-arms the expiry timer. Admin calls run it before answering, so that
 * their answer shows committed state.
 */
void srvd_turn(srvd *d);
/* The same, but a PostgreSQL commit is only started (ha.c ends it). */
void srvd_turn_async(srvd *d);
/* A turn that commits only if the commit interval has passed. */
void srvd_turn_send(srvd *d);

/*
 * main.c, for ha.c: the engine on the loaded store, and the GW listener.
 * 0, or the exit status.
 */
int srvd_activate(srvd *d);
/*
 * main.c: records a commit's outcome rv (ok: the turn as a whole worked):
 * logs a failure, or the store working again, and sets store_ok. A fenced
 * commit stops the daemon (exit 3) and returns false; otherwise true.
 */
bool srvd_commit_result(srvd *d, int rv, bool ok);
/* Stops the loop with this exit status (self-fencing: 3). */
void srvd_stop(srvd *d, int status);

/* ha.c: PostgreSQL mode (opt.pg). Takes the lease or waits for it. 0 or an exit status. */
int srvd_ha_start(srvd *d);
/* A commit was fenced: logs why and stops with EXIT_FENCED. */
void srvd_ha_fenced(srvd *d);
/* Clean shutdown: hands the lease over at once. */
void srvd_ha_stop(srvd *d);
/* The commit of a turn: started without blocking; its end runs a turn. */
void srvd_ha_commit(srvd *d);
/* A standby's admin API forwards a /v1 request to the active instance. */
void srvd_ha_forward(srvd *d, struct evhttp_request *req);
/* The lease's state for /healthz and /metrics. */
const char *srvd_ha_role(const srvd *d);

/* cluster.c: --cluster. Renews the instance row, loads, serves. 0 or an exit status. */
int srvd_cluster_start(srvd *d);
/* Clean shutdown: the instance row expires at once. */
void srvd_cluster_stop(srvd *d);
/*
 * Admin calls in cluster mode: reloads an SG or a PNE from the database
 * before the call reads or changes it (no-op otherwise).
 */
void srvd_cluster_refresh(srvd *d, const char *kind, const char *key);

/* The store's last error for logs and answers (never a key). */
const char *srvd_store_error(const srvd *d, int rv);

/* admin.c: binds the admin API to opt.admin. 0, or -1 with err. */
int srvd_admin_start(srvd *d, char *err, size_t errlen);
void srvd_admin_stop(srvd *d);

/* GW connections: bytes queued for them and not yet written, in all. */
size_t srvd_gw_output(const srvd *d);

/*
 * metrics.c: the Prometheus text format (0.0.4) of the engine's counters and
 * the daemon's connection gauges. 0 or -1.
 */
int srvd_metrics(const srvd *d, struct evbuffer *out);

#endif
