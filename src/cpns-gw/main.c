/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-gw: the PN GW daemon (CPNS 7.8.6.2) as thin glue around the GW engine
 * (cpns/gw.h). It keeps one connection to the CPNS Server (TLS 1.3 with its
 * client certificate, or plain TCP with --insecure), accepts PNE connections,
 * and moves frames between sockets and the engine: after every event it
 * drains cpns_gw_pop() and sends each frame on the connection its link names.
 * All routing decisions are the engine's; this file only owns sockets,
 * timers and shutdown; dialing the server and reconnecting is the shared
 * dialer (src/common/dialer.c), which cpns-pne uses for its GW.
 *
 * Server connection life: connect -> on_open -> cpns_gw_server_up (the engine
 * sends PNGWRegistrationRequest) -> ONLINE. A connection that is not ONLINE
 * within SESSION_TIMEOUT_MS, that drops, or that the server refuses (Return
 * != 1) is closed and retried with capped exponential backoff, reset once a
 * registration succeeds.
 *
 * --server may list several servers (issue #11: an active/standby group, a
 * stand-in for a TCP load balancer). The GW keeps one uplink; a failure moves
 * it to the next address of the list, round-robin, at once, and the backoff
 * only paces whole passes over the list that all failed: a live standby is
 * reached without delay, a dead group is not hammered. A standby refuses
 * connections, so it costs one refused connect.
 *
 * PNE connections are untrusted until registered (#10.2): one that has not
 * been answered PNERegistrationResponse Return 1 within --register-timeout is
 * closed, and at most --max-per-addr are open from one address. The uplink is
 * protected by backpressure (#10.3): while more than UPLINK_HIGH bytes wait to
 * be written to the server, no PNE connection is read; reading resumes once
 * the server has taken all but UPLINK_LOW of them.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/x509.h>

#include "backoff.h"
#include "daemon.h"
#include "dialer.h"
#include "notify.h"
#include "links.h"
#include "metrics.h"
#include "net.h"
#include "options.h"

#define DEFAULT_LISTEN "127.0.0.1:7461"
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 30000
/*
 * With a list of servers (active/standby), the backoff between whole failed
 * passes stops at 2 s: a standby refuses connections until it takes the
 * lease, and a 30 s cap made GWs sit idle seconds after it was serving
 * (test_failover: 3.2 s in 7 runs of 20 with a 3 s lease). A pass is a
 * handful of connection attempts, so 2 s does not hammer a dead cluster.
 */
#define RETRY_MAX_LIST_MS 2000
/* --server entries, all options together. */
#define MAX_SERVERS 32
/* TCP connect + TLS handshake + PNGWRegistrationResponse must fit in this. */
#define SESSION_TIMEOUT_MS 15000
/* A peer that does not read: past this much queued output its connection is dropped. */
#define PNE_PENDING_MAX (1u << 20)
#define SERVER_PENDING_MAX (16u << 20)
#define MAX_PNES_LIMIT 10000000
/* With --max-pnes, room for PNEs reconnecting before their old connection is seen dead. */
#define CONN_SLACK 64
#define DEFAULT_STALL_TIMEOUT_S 30
#define MAX_STALL_TIMEOUT_S 3600
#define DEFAULT_REGISTER_TIMEOUT_S 10
#define MAX_REGISTER_TIMEOUT_S 3600
/*
 * PNE connections from one address: on a home LAN every PNE has its own
 * address, so 16 is room for a device's reconnects; loopback peers (the
 * host's own processes) are spared unless --max-per-addr is given.
 */
#define DEFAULT_MAX_PER_ADDR 16
/* Backpressure on the uplink: stop reading PNEs above HIGH, resume at LOW. */
#define UPLINK_HIGH (1u << 20)
#define UPLINK_LOW (256u << 10)

typedef struct gw_options {
    const char *PNGWID;
    const char *PNID;
    const char *server_args[MAX_SERVERS]; /* each --server value, as given */
    size_t n_server_args;
    char *servers[MAX_SERVERS]; /* the list: every comma-separated entry, in order */
    size_t n_servers;
    const char *listen;
    const char *tls_cert;
    const char *tls_key;
    const char *tls_ca;
    bool insecure;
    cpns_log_level log_level;
    size_t max_pnes;
    int stall_timeout_s;    /* a frame left half-received this long drops its connection */
    int register_timeout_s; /* a PNE connection not registered this long is closed */
    size_t max_per_addr;    /* PNE connections from one address, 0: no limit */
    bool max_per_addr_set;  /* given (then it applies to loopback too) */
    const char *metrics;    /* --metrics HOST:PORT, or NULL */
} gw_options;

typedef struct gw_daemon {
    gw_options opt;
    struct event_base *base;
    SSL_CTX *tls;
    cpns_gw *gw;
    net_listener *listener;
    dialer *server; /* the uplink (dialer.h), over the --server list */
    struct event *sigterm;
    struct event *sigint;
    cpns_gw_state last_state;
    link_table links;
    uint64_t next_link;
    size_t max_conns; /* PNE connections open at once, 0: no limit */
    bool uplink_full; /* over UPLINK_HIGH: PNE connections are not read */
    gw_metrics *metrics;
} gw_daemon;

static void usage(FILE *f)
{
    fprintf(f, "Usage: cpns-gw --id PNGWID --pnid PNID --server HOST:PORT[,HOST:PORT...]\n"
               "               (--tls-cert FILE --tls-key FILE --tls-ca FILE | --insecure)\n"
               "               [--listen HOST:PORT] [--max-pnes N] [--max-per-addr N]\n"
               "               [--register-timeout S] [--stall-timeout S] [--log-level LEVEL]\n"
               "               [--config FILE] [--check-config]\n"
               "               [--metrics HOST:PORT]\n"
               "       cpns-gw --help | --version\n"
               "\n"
               "The PN GW of CPNS 7.8.6: keeps one connection to the CPNS Server and\n"
               "forwards Group Key deliveries between it and the PNEs that connect here.\n"
               "\n"
               "  --id PNGWID         this GW's identifier (the CN of its certificate)\n"
               "  --pnid PNID         the PN this GW serves\n"
               "  --server HOST:PORT[,HOST:PORT...]\n"
               "                      the CPNS Server (its usual port is 7460); a list\n"
               "                      (comma-separated, no spaces, or the option repeated)\n"
               "                      names the servers of an active/standby group: the GW\n"
               "                      keeps one connection and, when it fails, moves to the\n"
               "                      next server of the list at once (round-robin); it\n"
               "                      waits (backoff 0.5 s doubling to 30 s; to 2 s with a\n"
               "                      list) only after every listed server failed in turn.\n"
               "                      IPv6: [ADDR]:PORT\n"
               "  --listen HOST:PORT  where PNEs connect (default " DEFAULT_LISTEN ")\n"
               "  --tls-cert FILE     this GW's certificate (PEM)\n"
               "  --tls-key FILE      its private key (PEM, mode 0600)\n"
               "  --tls-ca FILE       the CA the server's certificate must chain to\n"
               "  --insecure          plain TCP to the server: no TLS, no authentication\n"
               "  --max-pnes N        refuse registrations beyond N PNEs, and PNE connections\n"
               "                      beyond N + 64 (default 0: no limit but the\n"
               "                      open-file limit)\n"
               "  --max-per-addr N    at most N PNE connections open at once from one address\n"
               "                      (default 16, loopback spared; given, it applies to\n"
               "                      every address; 0: no limit)\n"
               "  --register-timeout S  close a PNE connection not registered (answered\n"
               "                      Return 1) within S seconds (default 10)\n"
               "  --stall-timeout S   drop a connection (PNE or server) that leaves a frame\n"
               "                      half-sent for S seconds (default 30)\n"
               "  --log-level LEVEL   error, warn, info (default) or debug\n"
               "  --metrics HOST:PORT serve GET /metrics (Prometheus text) there: attached\n"
               "                      PNEs, frames forwarded, Return 6 answers, uplink state,\n"
               "                      queued bytes (default: none)\n"
               "  --config FILE       read options from FILE: 'name = value' lines with the\n"
               "                      names of the long options above ('server' repeatable,\n"
               "                      'insecure' alone for a flag, '#' comments); the\n"
               "                      command line overrides it. SIGHUP re-reads it and\n"
               "                      applies --log-level and re-reads the TLS files (the next\n"
               "                      connection to the server)\n"
               "  --check-config      check the options and the --config file, then exit\n"
               "                      (0: valid, 2: not; no file but FILE is opened)\n"
               "  --help, --version\n");
}

/* One entry of --server: HOST:PORT or [V6]:PORT with a port of 1-65535, no blanks. */
static bool server_entry_valid(const char *entry)
{
    char host[256];
    uint16_t port;
    if (strpbrk(entry, " \t\r\n"))
        return false;
    return addr_parse(entry, host, sizeof host, &port) == 0 && port != 0;
}

/*
 * Adds the comma-separated entries of one --server value to o->servers, each
 * checked, naming the bad one. 0, or -1 after printing what is wrong.
 */
static int add_servers(opt_parser *pp, gw_options *o, const char *arg)
{
    const char *p = arg;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0)
            return opt_fail(pp, "--server '%s': an empty entry (a stray comma?)", arg);
        if (o->n_servers == MAX_SERVERS)
            return opt_fail(pp, "--server: more than %d servers", MAX_SERVERS);
        char *entry = malloc(len + 1);
        if (!entry)
            return opt_fail(pp, "out of memory");
        memcpy(entry, p, len);
        entry[len] = '\0';
        o->servers[o->n_servers++] = entry; /* freed by options_free, also on error */
        if (!server_entry_valid(entry)) {
            if (strcmp(entry, arg) == 0)
                return opt_fail(pp, "--server '%s': not HOST:PORT with a port of 1-65535", arg);
            return opt_fail(pp, "--server '%s': entry '%s' is not HOST:PORT with a port of 1-65535",
                            arg, entry);
        }
        for (size_t i = 0; i + 1 < o->n_servers; i++)
            if (strcmp(o->servers[i], entry) == 0)
                return opt_fail(pp, "--server: '%s' is listed twice", entry);
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

static void options_free(gw_options *o)
{
    for (size_t i = 0; i < o->n_servers; i++)
        free(o->servers[i]);
    o->n_servers = 0;
}

#define T gw_options
/* The command line and the configuration file (options.h); order as in --help. */
static const opt_spec gw_option_table[] = {
    OPT_STR(T, "id", PNGWID, 0),
    OPT_STR(T, "pnid", PNID, 0),
    OPT_ARRAY(T, "server", server_args, n_server_args, "servers", 0),
    OPT_STR(T, "listen", listen, 0),
    OPT_STR(T, "tls-cert", tls_cert, OPT_LIVE),
    OPT_STR(T, "tls-key", tls_key, OPT_LIVE),
    OPT_STR(T, "tls-ca", tls_ca, OPT_LIVE),
    OPT_BOOL(T, "insecure", insecure, 0),
    OPT_NUM(T, "max-pnes", max_pnes, 0, MAX_PNES_LIMIT, 1, NULL, 0),
    OPT_NUM(T, "max-per-addr", max_per_addr, 0, MAX_PNES_LIMIT, 1, NULL, 0),
    OPT_NUM(T, "register-timeout", register_timeout_s, 1, MAX_REGISTER_TIMEOUT_S, 1, "seconds", 0),
    OPT_NUM(T, "stall-timeout", stall_timeout_s, 1, MAX_STALL_TIMEOUT_S, 1, "seconds", 0),
    OPT_STR(T, "metrics", metrics, 0),
    OPT_FN(T, "log-level", log_level, opt_parse_level, OPT_LEVEL_EXPECT, OPT_LIVE),
};
#undef T

/* The checks that involve several options, after the file and the command line. */
static int validate(opt_parser *p, gw_options *o)
{
    char host[256];
    uint16_t port;
    if (!o->PNGWID)
        return opt_fail(p, "--id PNGWID is required");
    if (!cpns_id_valid(o->PNGWID))
        return opt_fail(p, "--id '%s': not an identifier (1-64 of A-Z a-z 0-9 . _ : @ -)",
                        o->PNGWID);
    if (!o->PNID)
        return opt_fail(p, "--pnid PNID is required");
    if (!cpns_id_valid(o->PNID))
        return opt_fail(p, "--pnid '%s': not an identifier (1-64 of A-Z a-z 0-9 . _ : @ -)",
                        o->PNID);
    if (o->n_server_args == 0)
        return opt_fail(p, "--server HOST:PORT is required");
    for (size_t i = 0; i < o->n_server_args; i++)
        if (add_servers(p, o, o->server_args[i]) != 0)
            return -1;
    if (addr_parse(o->listen, host, sizeof host, &port) != 0 || port == 0)
        return opt_fail(p, "--listen '%s': not HOST:PORT with a port of 1-65535", o->listen);
    if (o->metrics && addr_parse(o->metrics, host, sizeof host, &port) != 0)
        return opt_fail(p, "--metrics '%s': not HOST:PORT", o->metrics);
    o->max_per_addr_set = opt_src(p, "max-per-addr") != OPT_UNSET;
    bool any_tls = o->tls_cert || o->tls_key || o->tls_ca;
    if (o->insecure && any_tls)
        return opt_fail(p, "--insecure cannot be combined with --tls-cert/--tls-key/--tls-ca");
    if (!o->insecure) {
        if (!any_tls)
            return opt_fail(p, "--tls-cert, --tls-key and --tls-ca are required (or --insecure)");
        if (!o->tls_cert)
            return opt_fail(p, "--tls-cert FILE is required with --tls-key/--tls-ca");
        if (!o->tls_key)
            return opt_fail(p, "--tls-key FILE is required with --tls-cert/--tls-ca");
        if (!o->tls_ca)
            return opt_fail(p, "--tls-ca FILE is required with --tls-cert/--tls-key");
    }
    return 0;
}

/*
 * The defaults, then the file and the command line, validated: at start and
 * on SIGHUP. 0, OPT_HELP, OPT_VERSION, or -1 with p->err.
 */
static int load_options(opt_parser *p, int argc, char **argv, void *out)
{
    gw_options *o = out;
    *o = (gw_options){.listen = DEFAULT_LISTEN,
                      .stall_timeout_s = DEFAULT_STALL_TIMEOUT_S,
                      .register_timeout_s = DEFAULT_REGISTER_TIMEOUT_S,
                      .max_per_addr = DEFAULT_MAX_PER_ADDR,
                      .log_level = CPNS_LOG_INFO};
    int rv = opt_parse(p, argc, argv, o);
    return rv != 0 ? rv : validate(p, o);
}

/* The server refuses a GW whose certificate CN is not its PNGWID: say so before dialing. */
static int check_cert_cn(SSL_CTX *ctx, const gw_options *o, char *err, size_t errlen)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    char cn[CPNS_ID_MAX + 2] = "";
    if (cert)
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (strcmp(cn, o->PNGWID) != 0) {
        snprintf(err, errlen,
                 "--tls-cert %s: certificate CN '%s' is not --id '%s' (the server requires CN = "
                 "PNGWID)",
                 o->tls_cert, cn, o->PNGWID);
        return -1;
    }
    return 0;
}

/* --- moving frames --- */

static void pne_drop(gw_daemon *d, uint64_t link, const char *reason);

/* The server dialed or connected now. */
static const char *server_addr(const gw_daemon *d)
{
    return dialer_addr(d->server);
}

static void report(int rv, const char *what)
{
    if (rv < 0)
        log_error("%s: %s", what, cpns_strerror(rv));
}

/* Stops or resumes reading every PNE connection (#10.3). */
static void pause_pnes(gw_daemon *d, bool pause)
{
    if (d->uplink_full == pause)
        return;
    d->uplink_full = pause;
    net_conn *c;
    for (cpns_map_iter it = cpns_map_begin(&d->links); (c = links_next(&it)) != NULL;)
        net_conn_pause_read(c, pause);
    if (pause)
        log_warn("the server at %s is slow to read: %zu bytes wait for it; PNE connections are "
                 "not read until it catches up",
                 server_addr(d), dialer_pending(d->server));
    else
        log_info("the server caught up: reading PNE connections again");
}

/* The server took what it had queued, down to UPLINK_LOW: read PNEs again. */
static void server_on_drain(void *arg)
{
    gw_daemon *d = arg;
    if (d->uplink_full && dialer_pending(d->server) <= UPLINK_LOW)
        pause_pnes(d, false);
}

/*
 * A PNE connection is trusted with a slot once the server accepted its
 * registration, which the engine answers on that connection: so when a frame
 * goes to a connection whose --register-timeout still runs, the glue asks
 * the engine whether the link is now a route.
 */
static void note_registration(gw_daemon *d, net_conn *c, const cpns_out *out)
{
    if (net_conn_deadline_pending(c) && cpns_gw_link_routed(d->gw, out->link))
        net_conn_clear_deadline(c);
}

/* Sends every frame the engine queued; *server_stuck when the server stopped reading. */
static void send_queued(gw_daemon *d, bool *server_stuck)
{
    cpns_out out;
    while (cpns_gw_pop(d->gw, &out) == 1) {
        net_conn *c = out.link == CPNS_GW_LINK_SERVER ? dialer_conn(d->server)
                                                      : links_get(&d->links, out.link);
        if (!c) {
            log_debug("frame for link %llu with no connection: dropped",
                      (unsigned long long)out.link);
            continue;
        }
        if (net_conn_send(c, out.data, out.len) != 0) {
            log_warn("cannot queue a %zu-byte frame on link %llu", out.len,
                     (unsigned long long)out.link);
            continue;
        }
        if (out.link == CPNS_GW_LINK_SERVER) {
            size_t pending = net_conn_pending(c);
            if (pending > UPLINK_HIGH)
                pause_pnes(d, true);
            *server_stuck = *server_stuck || pending > SERVER_PENDING_MAX;
        } else {
            note_registration(d, c, &out);
            if (net_conn_pending(c) > PNE_PENDING_MAX)
                pne_drop(d, out.link, "the PNE does not read what is sent to it");
        }
    }
}

/* Sends what the engine queued, then acts on its state: the one step after every event. */
static void after_event(gw_daemon *d)
{
    bool server_stuck = false;
    for (;;) {
        send_queued(d, &server_stuck);
        /* A link the engine found abusive; closing it may queue a "detached": send again. */
        uint64_t abusive;
        if (cpns_gw_pop_close(d->gw, &abusive) != 1)
            break;
        pne_drop(d, abusive, "frames over the size or rate limit of a PNE link");
    }
    if (server_stuck) {
        dialer_lost(d->server, "the server does not read what is sent to it");
        return;
    }

    cpns_gw_state st = cpns_gw_get_state(d->gw);
    if (st == d->last_state)
        return;
    d->last_state = st;
    if (st == CPNS_GW_ONLINE) {
        dialer_settled(d->server);
        if (d->opt.n_servers > 1)
            log_info("registered with the server at %s (%zu of %zu listed); %zu PNE(s) attached",
                     server_addr(d), dialer_index(d->server) + 1, d->opt.n_servers,
                     cpns_gw_attached(d->gw));
        else
            log_info("registered with the server at %s; %zu PNE(s) attached", server_addr(d),
                     cpns_gw_attached(d->gw));
    } else if (st == CPNS_GW_REFUSED) {
        log_error("the server at %s refused this GW (Return %d): check --id, --pnid and the "
                  "certificate",
                  server_addr(d), cpns_gw_last_return(d->gw));
        dialer_lost(d->server, "registration refused");
    }
}

/* --- the server connection (dialer.h: the list, the backoff, the session timeout) --- */

static void server_on_open(void *arg)
{
    gw_daemon *d = arg;
    log_info("connected to the server at %s (%s)", server_addr(d),
             d->tls ? "TLS 1.3, server certificate verified" : "plain TCP, NOT protected");
    report(cpns_gw_server_up(d->gw, clock_mono_ms()), "server up");
    after_event(d);
}

static void server_on_frame(void *arg, const uint8_t *data, size_t len)
{
    gw_daemon *d = arg;
    report(cpns_gw_recv_server(d->gw, data, len, clock_mono_ms()), "frame from the server");
    after_event(d);
}

static void server_on_down(void *arg, bool was_open)
{
    gw_daemon *d = arg;
    if (was_open)
        report(cpns_gw_server_down(d->gw, clock_mono_ms()), "server down");
    pause_pnes(d, false); /* what waited for the server is gone with it */
    after_event(d);
}

/* --- PNE connections --- */

static void pne_drop(gw_daemon *d, uint64_t link, const char *reason)
{
    net_conn *c = links_remove(&d->links, link);
    if (!c)
        return;
    log_warn("PNE link %llu (%s) closed: %s", (unsigned long long)link, net_conn_peer_addr(c),
             reason);
    net_conn_close(c, false);
    report(cpns_gw_link_close(d->gw, link, clock_mono_ms()), "link close");
}

static void pne_on_frame(net_conn *c, const uint8_t *data, size_t len, void *arg)
{
    gw_daemon *d = arg;
    report(cpns_gw_recv_link(d->gw, net_conn_id(c), data, len, clock_mono_ms()),
           "frame from a PNE");
    after_event(d);
}

static void pne_on_close(net_conn *c, const char *reason, void *arg)
{
    gw_daemon *d = arg;
    uint64_t link = net_conn_id(c);
    log_info("PNE link %llu (%s) closed: %s", (unsigned long long)link, net_conn_peer_addr(c),
             reason);
    links_remove(&d->links, link);
    report(cpns_gw_link_close(d->gw, link, clock_mono_ms()), "link close");
    after_event(d);
}

static const net_conn_cbs pne_cbs = {NULL, pne_on_frame, pne_on_close};

static void on_accept(net_conn *c, void *arg)
{
    gw_daemon *d = arg;
    if (d->max_conns && d->links.count >= d->max_conns) {
        log_warn("%zu PNE connections open: connection from %s refused", d->links.count,
                 net_conn_peer_addr(c));
        net_conn_close(c, false);
        return;
    }
    net_conn_set_stall_timeout(c, d->opt.stall_timeout_s);
    net_conn_set_deadline(c, d->opt.register_timeout_s, "not registered within --register-timeout");
    if (d->uplink_full)
        net_conn_pause_read(c, true);
    uint64_t link = ++d->next_link;
    net_conn_set_id(c, link);
    net_conn_set_cbs(c, &pne_cbs, d);
    if (links_put(&d->links, link, c) != 0) {
        log_error("out of memory: connection from %s refused", net_conn_peer_addr(c));
        net_conn_close(c, false);
        return;
    }
    int rv = cpns_gw_link_open(d->gw, link, clock_mono_ms());
    if (rv != 0) {
        report(rv, "link open");
        links_remove(&d->links, link);
        net_conn_close(c, false);
        return;
    }
    log_info("PNE connection from %s: link %llu", net_conn_peer_addr(c), (unsigned long long)link);
    after_event(d);
}

/* --- start and stop --- */

/* The server list as given ("a:7460,b:7460"), for the log; cut short if it does not fit. */
static void join_servers(const gw_options *o, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < o->n_servers && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? "," : "", o->servers[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    gw_daemon *d = arg;
    (void)what;
    log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(d->base);
}

/*
 * SIGHUP (opt_reload_run): the new --log-level at once; the --tls-* files
 * re-read for the next connection to the server (certificate rotation without
 * a restart: the open one keeps its session); the rest waits for a restart.
 */
static int reload_apply(void *arg, const void *fresh, char *done, size_t done_len, char *err,
                        size_t err_len)
{
    gw_daemon *d = arg;
    const gw_options *n = fresh;
    if (d->tls && !n->insecure) {
        SSL_CTX *ctx = net_tls_client_ctx(n->tls_cert, n->tls_key, n->tls_ca, err, err_len);
        if (!ctx)
            return -1;
        int rv = check_cert_cn(ctx, &d->opt, err, err_len);
        if (rv == 0 && tls_ctx_adopt(d->tls, ctx) != 0) {
            snprintf(err, err_len, "--tls-cert %s: cannot use the new certificate and key",
                     n->tls_cert);
            rv = -1;
        }
        SSL_CTX_free(ctx);
        if (rv != 0)
            return -1;
        char fp[40];
        tls_cert_fingerprint(d->tls, fp, sizeof fp);
        snprintf(done, done_len,
                 "TLS certificate %s (SHA-256 %s) in use from the next connection to the server",
                 n->tls_cert, fp);
    }
    log_set_level(n->log_level);
    cpns_gw_set_log_debug(d->gw, n->log_level >= CPNS_LOG_DEBUG);
    return 0;
}

static void reload_release(void *o)
{
    options_free(o);
}

static void on_sighup(void *arg)
{
    opt_reload_run(arg);
}

/* --metrics: what only the glue knows, at each scrape. */
static void metrics_view(void *arg, gw_metrics_view *v)
{
    const gw_daemon *d = arg;
    *v = (gw_metrics_view){.gw = d->gw,
                           .servers = d->opt.servers,
                           .n_servers = d->opt.n_servers,
                           .cur = dialer_index(d->server),
                           .server_open = dialer_conn(d->server) != NULL,
                           .uplink_bytes = dialer_pending(d->server),
                           .pne_connections = d->links.count,
                           .pne_reads_paused = d->uplink_full};
    net_conn *c;
    for (cpns_map_iter it = cpns_map_begin(&d->links); (c = links_next(&it)) != NULL;)
        v->pne_bytes += net_conn_pending(c);
}

static void daemon_free(gw_daemon *d)
{
    daemon_sighup_free();
    gw_metrics_free(d->metrics);
    links_close_all(&d->links);
    dialer_free(d->server);
    net_listener_free(d->listener);
    cpns_gw_free(d->gw);
    if (d->sigterm)
        event_free(d->sigterm);
    if (d->sigint)
        event_free(d->sigint);
    net_base_free(d->base);
    SSL_CTX_free(d->tls);
}

/* Everything that can fail before the loop runs. 0, or the exit status. */
static int daemon_init(gw_daemon *d, opt_reload *reload)
{
    char err[512];
    if (!d->opt.insecure) {
        d->tls =
            net_tls_client_ctx(d->opt.tls_cert, d->opt.tls_key, d->opt.tls_ca, err, sizeof err);
        if (!d->tls) {
            fprintf(stderr, "cpns-gw: %s\n", err);
            return EXIT_USAGE;
        }
        if (check_cert_cn(d->tls, &d->opt, err, sizeof err) != 0) {
            fprintf(stderr, "cpns-gw: %s\n", err);
            return EXIT_USAGE;
        }
    }
    cpns_gw_config cfg = {
        .PNGWID = d->opt.PNGWID,
        .PNID = d->opt.PNID,
        .max_pnes = d->opt.max_pnes,
        .log = log_engine,
        .log_debug = d->opt.log_level >= CPNS_LOG_DEBUG,
    };
    int rv = cpns_gw_new(&d->gw, &cfg);
    if (rv != 0) {
        log_error("cannot create the GW engine: %s", cpns_strerror(rv));
        return EXIT_FAILURE;
    }
    d->last_state = cpns_gw_get_state(d->gw);
    d->base = event_base_new();
    if (!d->base || daemon_sighup(d->base, on_sighup, reload) != 0)
        return EXIT_FAILURE;
    dialer_config up = {
        .base = d->base,
        .addrs = (const char *const *)d->opt.servers,
        .n_addrs = d->opt.n_servers,
        .tls = d->tls,
        .peer = "server",
        .retry_min_ms = RETRY_MIN_MS,
        .retry_max_ms = d->opt.n_servers > 1 ? RETRY_MAX_LIST_MS : RETRY_MAX_MS,
        .timeout_ms = SESSION_TIMEOUT_MS,
        .timeout_until = DIALER_UNTIL_SETTLED,
        .stall_timeout_s = d->opt.stall_timeout_s,
        .on_open = server_on_open,
        .on_frame = server_on_frame,
        .on_down = server_on_down,
        .on_drain = server_on_drain,
        .drain_low = UPLINK_LOW,
        .arg = d,
    };
    d->server = dialer_new(&up);
    d->sigterm = evsignal_new(d->base, SIGTERM, on_signal, d);
    d->sigint = evsignal_new(d->base, SIGINT, on_signal, d);
    if (!d->server || !d->sigterm || !d->sigint || evsignal_add(d->sigterm, NULL) != 0 ||
        evsignal_add(d->sigint, NULL) != 0) {
        log_error("cannot set up the event loop");
        return EXIT_FAILURE;
    }
    d->max_conns = d->opt.max_pnes ? d->opt.max_pnes + CONN_SLACK : 0;
    size_t budget = fd_budget();
    if (budget && (d->max_conns == 0 || d->max_conns > budget)) {
        if (d->opt.max_pnes)
            log_warn("PNE connections capped at %zu, not --max-pnes %zu + %d: the limit on open "
                     "files (ulimit -n) allows no more",
                     budget, d->opt.max_pnes, CONN_SLACK);
        d->max_conns = budget;
    }
    log_info("PNE connections capped at %zu (the open-file limit and --max-pnes)", d->max_conns);
    d->listener = net_listen(d->base, d->opt.listen, NULL, on_accept, d, err, sizeof err);
    if (!d->listener) {
        log_error("%s", err);
        return EXIT_FAILURE;
    }
    net_listener_set_per_addr_cap(d->listener, d->opt.max_per_addr);
    net_listener_set_loopback_exempt(d->listener, !d->opt.max_per_addr_set);
    char per_addr[96] = "no limit per address";
    if (d->opt.max_per_addr)
        snprintf(per_addr, sizeof per_addr, "at most %zu connections from one address%s",
                 d->opt.max_per_addr, d->opt.max_per_addr_set ? "" : " (loopback spared)");
    log_info("listening for PNEs on %s (port %u); %s; registered within %d s", d->opt.listen,
             net_listener_port(d->listener), per_addr, d->opt.register_timeout_s);
    if (d->opt.metrics && !(d->metrics = gw_metrics_start(d->base, d->opt.metrics, metrics_view, d,
                                                          err, sizeof err))) {
        log_error("%s", err);
        return EXIT_FAILURE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static opt_parser parser = {
        .prog = "cpns-gw",
        .specs = gw_option_table,
        .n_specs = sizeof gw_option_table / sizeof gw_option_table[0],
    };
    gw_daemon d;
    memset(&d, 0, sizeof d);
    int rv = load_options(&parser, argc, argv, &d.opt);
    if (rv == OPT_HELP)
        usage(stdout);
    else if (rv == OPT_VERSION)
        opt_print_version(parser.prog);
    else if (rv != 0)
        opt_print_error(&parser);
    else if (parser.check_only)
        printf("cpns-gw: the options%s%s are valid\n", parser.config ? " and " : "",
               parser.config ? parser.config : "");
    if (rv != 0 || parser.check_only) {
        options_free(&d.opt);
        opt_free(&parser);
        return rv < 0 ? EXIT_USAGE : EXIT_SUCCESS;
    }
    gw_options parsed = d.opt;
    opt_reload reload = {
        .p = &parser,
        .argc = argc,
        .argv = argv,
        .size = sizeof d.opt,
        .running = &d.opt,
        .parsed = &parsed,
        .load = load_options,
        .apply = reload_apply,
        .release = reload_release,
        .arg = &d,
    };
    log_setup("gw", d.opt.PNGWID, d.opt.log_level);
    /* A peer closing mid-write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);

    int status = daemon_init(&d, &reload);
    if (status == 0) {
        char servers[MAX_SERVERS * 64];
        join_servers(&d.opt, servers, sizeof servers);
        if (d.opt.insecure)
            log_warn("--insecure: the link to the server %s is NOT protected (plain TCP, no "
                     "TLS, no authentication)",
                     servers);
        if (d.opt.n_servers > 1)
            log_info("cpns-gw %s: PNID=%s, PNEs connect to %s, servers %s (%zu, tried in turn)",
                     CPNS_LIB_VERSION, d.opt.PNID, d.opt.listen, servers, d.opt.n_servers);
        else
            log_info("cpns-gw %s: PNID=%s, PNEs connect to %s, server %s", CPNS_LIB_VERSION,
                     d.opt.PNID, d.opt.listen, servers);
        dialer_start(d.server);
        notify_ready("cpns-gw");
        event_base_dispatch(d.base);
        notify_stopping();
        log_info("stopped");
    }
    daemon_free(&d);
    options_free(&d.opt);
    opt_free(&parser);
    return status;
}
