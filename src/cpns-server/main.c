/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-server: the CPNS Server daemon (7.8.6.3) as thin glue around the
 * server engine (cpns/server.h). It opens the SQLite store under the master
 * key, accepts GW connections (TLS 1.3 with a client certificate verified
 * against --tls-ca, or plain TCP with --insecure), serves the admin API and
 * /metrics (admin.c, metrics.c), and runs the loop turn of server.h after
 * every event: drain cpns_server_pop() onto the connections (up to
 * TURN_FRAMES, the rest in the next turn), then cpns_server_flush() (group
 * commit), then re-arm the one expiry timer.
 *
 * Frames do not flush one by one: a frame schedules a turn as a zero-timeout
 * event, so every frame read in one loop iteration shares one turn, and the
 * turns of --commit-interval share one commit. An admin call commits at once.
 * All protocol decisions are the engine's; this file owns sockets, timers,
 * the master key file and shutdown.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backoff.h"
#include "daemon.h"
#include "notify.h"
#include "options.h"
#include "srvd.h"
#include "cpns/testing.h"

#define DEFAULT_LISTEN "127.0.0.1:7460"
#define DEFAULT_ADMIN "127.0.0.1:7462"
#define DEFAULT_DELIVERY_TIMEOUT_S 10
#define DEFAULT_MAX_ATTEMPTS 5
#define MAX_DELIVERY_TIMEOUT_S 86400
#define MAX_ATTEMPTS_LIMIT 1000
#define DEFAULT_MAX_GWS 10000
#define MAX_GWS_LIMIT 1000000
#define DEFAULT_STALL_TIMEOUT_S 30
#define MAX_STALL_TIMEOUT_S 3600
#define DEFAULT_COMMIT_INTERVAL_MS 20
#define MAX_COMMIT_INTERVAL_MS 1000
/* The active instance's lease (PostgreSQL, ha.c). */
#define DEFAULT_LEASE_TTL_S 15
#define MIN_LEASE_TTL_S 2
#define MAX_LEASE_TTL_S 600
#define DEFAULT_REGISTER_TIMEOUT_S 10
#define MAX_REGISTER_TIMEOUT_S 3600
/* GWs behind one carrier-grade NAT share an address: room for many, not for a flood. */
#define DEFAULT_MAX_PER_ADDR 64
/* Admin API connections open at once (fewer when the open-file limit is low). */
#define ADMIN_CONN_MAX 64
/*
 * Frames built in one turn before the loop gets back to its sockets: the
 * frames of a big group go out (and their responses come in) while the rest
 * are still being built, instead of 100,000 frames piling up in memory first.
 */
#define TURN_FRAMES 1024
/* After a failed commit the turn runs again this soon, even without an event. */
#define STORE_RETRY_MS 1000
/* A GW that stops reading: past this much queued output its connection is dropped. */
#define GW_PENDING_MAX ((size_t)256 << 20)
/*
 * All GW connections together: past this much queued output, the connection
 * with the most is dropped (one GW per connection cannot add up to more by
 * opening many connections).
 */
#define GW_OUTPUT_BUDGET ((size_t)512 << 20)
/*
 * A GW whose unread output passes GW_READ_PAUSE is no longer read from until
 * it is below GW_READ_RESUME: the requests of a GW that does not read its
 * answers stop making answers. A GW that reads is never paused for long: the
 * first round of a 100,000-member group over 20 GWs queues some 5 MB per
 * connection at most (one real GW with 10,000 PNEs about as much), so the
 * pause is well above what a working GW holds, and reading resumes as soon as
 * its output drains.
 */
#define GW_READ_PAUSE ((size_t)16 << 20)
#define GW_READ_RESUME ((size_t)4 << 20)
/* While a connection is paused, its output is checked this often (nothing else may wake us). */
#define GW_DRAIN_CHECK_MS 100
#define TOKEN_MAX 4096

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: cpns-server --db PATH|postgresql://... --master-key FILE\n"
        "                   (--tls-cert FILE --tls-key FILE --tls-ca FILE | --insecure)\n"
        "                   [--listen HOST:PORT] [--admin HOST:PORT] [--admin-token-file FILE]\n"
        "                   [--delivery-timeout S] [--max-attempts N] [--max-gws N]\n"
        "                   [--stall-timeout S] [--register-timeout S] [--max-per-addr N]\n"
        "                   [--commit-interval MS] [--log-level LEVEL]\n"
        "                   [--instance-id NAME] [--lease-ttl S] [--cluster]\n"
        "                   [--config FILE] [--check-config]\n"
        "       cpns-server --help | --version\n"
        "\n"
        "The CPNS Server of 7.8.6: keeps the Service Groups, generates their Group Keys\n"
        "and delivers them through the PN GWs that connect here.\n"
        "\n"
        "  --listen HOST:PORT      where GWs connect (default " DEFAULT_LISTEN ")\n"
        "  --admin HOST:PORT       the admin API and /metrics (default " DEFAULT_ADMIN ")\n"
        "  --admin-token-file FILE every admin call needs 'Authorization: Bearer <token>'\n"
        "                          with the token in FILE (mode 0600); required when\n"
        "                          --admin is not a loopback address\n"
        "  --db PATH               the SQLite database (created when absent)\n"
        "  --db postgresql://...   a PostgreSQL database (any libpq URI, multi-host\n"
        "                          included): several instances, one active\n"
        "  --master-key FILE       the key that encrypts secrets in the database\n"
        "                          (mode 0600; created with a random key only when a\n"
        "                          SQLite database is new: an existing database needs\n"
        "                          its key; with PostgreSQL it must exist, the same\n"
        "                          file on every instance)\n"
        "  --instance-id NAME      this instance's name (required with PostgreSQL)\n"
        "  --lease-ttl S           PostgreSQL: the active instance renews its lease every\n"
        "                          S/3 seconds and stops when it could not for 2S/3; a\n"
        "                          standby takes over once it expired (default %d)\n"
        "  --cluster               PostgreSQL: every instance active (no standby): each\n"
        "                          serves the GWs connected to it, fenced by the GW\n"
        "                          session epochs in the database; an instance that\n"
        "                          cannot renew its instance row for 10 s exits 3\n"
        "  --tls-cert FILE         this server's certificate (PEM)\n"
        "  --tls-key FILE          its private key (PEM, mode 0600)\n"
        "  --tls-ca FILE           the CA that GW client certificates must chain to\n"
        "  --insecure              plain TCP from GWs: no TLS, no authentication\n"
        "  --delivery-timeout S    seconds to wait for a delivery response (default %d)\n"
        "  --max-attempts N        sends of one delivery before it fails (default %d)\n"
        "  --max-gws N             GW connections open at once; more are refused\n"
        "                          (default %d, 0: as many as the open-file limit\n"
        "                          allows; never more than that, less the admin API's)\n"
        "  --max-per-addr N        GW connections open at once from one IP address;\n"
        "                          more are refused (default %d, 0: no limit)\n"
        "  --register-timeout S    close a GW connection that has not completed its TLS\n"
        "                          handshake and a successful PNGWRegistration within\n"
        "                          S seconds (default %d)\n"
        "  --stall-timeout S       drop a GW connection that leaves a frame half-sent\n"
        "                          for S seconds (default %d)\n"
        "  --commit-interval MS    commit delivery progress at most this often (group\n"
        "                          commit, default %d; 0: after every event). New Group\n"
        "                          Keys and admin changes are always committed first\n"
        "  --log-level LEVEL       error, warn, info (default) or debug\n"
        "  --config FILE           read options from FILE: 'name = value' lines with the\n"
        "                          names of the long options above ('insecure' alone\n"
        "                          for a flag, '#' comments); the command line\n"
        "                          overrides it. SIGHUP re-reads it and applies\n"
        "                          --log-level and re-reads the TLS files (new GWs)\n"
        "  --check-config          check the options and the --config file, then exit\n"
        "                          (0: valid, 2: not; no file but FILE is opened)\n"
        "  --help, --version\n",
        DEFAULT_LEASE_TTL_S, DEFAULT_DELIVERY_TIMEOUT_S, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_GWS,
        DEFAULT_MAX_PER_ADDR, DEFAULT_REGISTER_TIMEOUT_S, DEFAULT_STALL_TIMEOUT_S,
        DEFAULT_COMMIT_INTERVAL_MS);
}

/* Whether host names this machine's loopback only (an admin API there needs no token). */
static bool host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

#define T srvd_options
/* The command line and the configuration file (options.h); order as in --help. */
static const opt_spec server_options[] = {
    OPT_STR(T, "listen", listen, 0),
    OPT_STR(T, "admin", admin, 0),
    OPT_STR(T, "admin-token-file", token_file, 0),
    OPT_STR(T, "db", db, 0),
    OPT_STR(T, "master-key", master_key, 0),
    OPT_STR(T, "instance-id", instance_id, 0),
    OPT_NUM(T, "lease-ttl", lease_ttl_ms, MIN_LEASE_TTL_S, MAX_LEASE_TTL_S, 1000, "seconds", 0),
    OPT_BOOL(T, "cluster", cluster, 0),
    OPT_STR(T, "tls-cert", tls_cert, OPT_LIVE),
    OPT_STR(T, "tls-key", tls_key, OPT_LIVE),
    OPT_STR(T, "tls-ca", tls_ca, OPT_LIVE),
    OPT_BOOL(T, "insecure", insecure, 0),
    OPT_NUM(T, "delivery-timeout", delivery_timeout_s, 1, MAX_DELIVERY_TIMEOUT_S, 1, "seconds", 0),
    OPT_NUM(T, "max-attempts", max_attempts, 1, MAX_ATTEMPTS_LIMIT, 1, NULL, 0),
    OPT_NUM(T, "max-gws", max_gws, 0, MAX_GWS_LIMIT, 1, NULL, 0),
    OPT_NUM(T, "max-per-addr", max_per_addr, 0, MAX_GWS_LIMIT, 1, NULL, 0),
    OPT_NUM(T, "register-timeout", register_timeout_s, 1, MAX_REGISTER_TIMEOUT_S, 1, "seconds", 0),
    OPT_NUM(T, "stall-timeout", stall_timeout_s, 1, MAX_STALL_TIMEOUT_S, 1, "seconds", 0),
    OPT_NUM(T, "commit-interval", commit_interval_ms, 0, MAX_COMMIT_INTERVAL_MS, 1, "milliseconds",
            0),
    OPT_FN(T, "log-level", log_level, opt_parse_level, OPT_LEVEL_EXPECT, OPT_LIVE),
};
#undef T

/* The checks that involve several options, after the file and the command line. */
static int validate(opt_parser *p, srvd_options *o)
{
    char host[256];
    uint16_t port;
    if (addr_parse(o->listen, host, sizeof host, &port) != 0 || port == 0)
        return opt_fail(p, "--listen '%s': not HOST:PORT with a port of 1-65535", o->listen);
    if (addr_parse(o->admin, host, sizeof host, &port) != 0 || port == 0)
        return opt_fail(p, "--admin '%s': not HOST:PORT with a port of 1-65535", o->admin);
    if (!o->token_file && !host_is_loopback(host))
        return opt_fail(p,
                        "--admin '%s' is not a loopback address: the admin API must then be "
                        "protected with --admin-token-file",
                        o->admin);
    if (!o->db || !*o->db)
        return opt_fail(p, "--db PATH is required");
    o->pg = strncmp(o->db, "postgresql://", 13) == 0 || strncmp(o->db, "postgres://", 11) == 0;
    if (!o->pg && (o->instance_id || opt_src(p, "lease-ttl") != OPT_UNSET))
        return opt_fail(p, "--instance-id and --lease-ttl are for a PostgreSQL --db only");
    if (!o->pg && o->cluster)
        return opt_fail(p, "--cluster needs a PostgreSQL --db (postgresql://...): with SQLite "
                           "one server owns the database");
    if (o->cluster && opt_src(p, "lease-ttl") != OPT_UNSET)
        return opt_fail(p, "--lease-ttl is for active/standby: --cluster has no lease");
    if (o->pg && !o->instance_id)
        return opt_fail(p, "--instance-id NAME is required with a PostgreSQL --db");
    if (o->instance_id && !cpns_id_valid(o->instance_id))
        return opt_fail(
            p,
            "--instance-id '%s': not an identifier (1-64 of A-Z a-z 0-9 . _ : @ -, not only dots)",
            o->instance_id);
    if (!o->master_key || !*o->master_key)
        return opt_fail(p, "--master-key FILE is required");
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
    srvd_options *o = out;
    *o = (srvd_options){
        .listen = DEFAULT_LISTEN,
        .admin = DEFAULT_ADMIN,
        .delivery_timeout_s = DEFAULT_DELIVERY_TIMEOUT_S,
        .max_attempts = DEFAULT_MAX_ATTEMPTS,
        .max_gws = DEFAULT_MAX_GWS,
        .stall_timeout_s = DEFAULT_STALL_TIMEOUT_S,
        .register_timeout_s = DEFAULT_REGISTER_TIMEOUT_S,
        .max_per_addr = DEFAULT_MAX_PER_ADDR,
        .commit_interval_ms = DEFAULT_COMMIT_INTERVAL_MS,
        .lease_ttl_ms = DEFAULT_LEASE_TTL_S * 1000,
        .log_level = CPNS_LOG_INFO,
    };
    int rv = opt_parse(p, argc, argv, o);
    return rv != 0 ? rv : validate(p, o);
}

/* --- key material --- */

/*
 * The master key, read from its file; or, for a new database only (no file
 * at --db), drawn at random and written by create_master_key() once every
 * other check has passed. An existing database with no key file is refused:
 * a new key could never read it, and a stray key file would mislead the next
 * start. *created is set when the key is new and not written yet.
 */
static int load_master_key(const srvd *d, uint8_t key[CPNS_KEY_LEN], bool *created)
{
    const char *path = d->opt.master_key;
    char err[600];
    struct stat st;
    *created = false;
    bool db_exists = d->opt.pg || stat(d->opt.db, &st) == 0;
    if (lstat(path, &st) != 0 && errno == ENOENT) {
        if (d->opt.pg) {
            /* Two instances starting at once must not each make a key. */
            fprintf(stderr,
                    "cpns-server: --master-key %s: no such file: with PostgreSQL the key file "
                    "is never created; copy the one every instance shares (or make one with "
                    "'head -c 32 /dev/urandom > FILE; chmod 600 FILE' for a new database)\n",
                    path);
            return -1;
        }
        if (db_exists) {
            fprintf(stderr,
                    "cpns-server: --master-key %s: no such file, and the database %s exists: "
                    "give the key file it was created with (no new key is made for an "
                    "existing database)\n",
                    path, d->opt.db);
            return -1;
        }
        if (cpns_random(NULL, key, CPNS_KEY_LEN) != 0) {
            fprintf(stderr, "cpns-server: --master-key %s: no randomness for a new key\n", path);
            return -1;
        }
        *created = true;
        return 0;
    }
    if (keyfile_read(path, key, err, sizeof err) != 0) {
        fprintf(stderr, "cpns-server: --master-key %s\n", err);
        return -1;
    }
    return 0;
}

/* Writes the new master key: the last step before a new database is created. */
static int create_master_key(const char *path, const uint8_t key[CPNS_KEY_LEN])
{
    char err[600];
    if (keyfile_write(path, key, err, sizeof err) != 0) {
        fprintf(stderr, "cpns-server: --master-key cannot create %s\n", err);
        return -1;
    }
    log_info("created the master key file %s (mode 0600): keep it, the database cannot be "
             "read without it",
             path);
    return 0;
}

/* A new database goes into an existing directory that this process can write. */
static int check_db_dir(const char *db)
{
    struct stat st;
    if (stat(db, &st) == 0)
        return 0;
    char dir[4096];
    const char *slash = strrchr(db, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == db)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - db), db);
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "cpns-server: --db %s: its directory %s: %s\n", db, dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "cpns-server: --db %s: %s is not a directory\n", db, dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "cpns-server: --db %s: cannot create the database in %s: %s\n", db, dir,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* The admin token: one line of printable text in a private file. */
static int load_token(srvd *d)
{
    const char *path = d->opt.token_file;
    char err[600];
    if (keyfile_check_private(path, err, sizeof err) != 0) {
        fprintf(stderr, "cpns-server: --admin-token-file %s\n", err);
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cpns-server: --admin-token-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *buf = calloc(1, TOKEN_MAX + 2);
    size_t n = buf ? fread(buf, 1, TOKEN_MAX + 1, f) : 0;
    fclose(f);
    if (!buf)
        return -1;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    const char *why = NULL;
    if (n == 0)
        why = "the file holds no token";
    else if (n > TOKEN_MAX)
        why = "the token is longer than 4096 characters";
    for (size_t i = 0; !why && i < n; i++)
        if ((unsigned char)buf[i] <= ' ' || (unsigned char)buf[i] > '~')
            why = "the token must be one line of printable characters without spaces";
    if (why) {
        fprintf(stderr, "cpns-server: --admin-token-file %s: %s\n", path, why);
        cpns_wipe(buf, TOKEN_MAX + 2);
        free(buf);
        return -1;
    }
    d->token = buf;
    d->token_len = n;
    return 0;
}

/* --- the loop turn --- */

int64_t srvd_now(void)
{
    return clock_mono_ms();
}

const char *srvd_store_error(const srvd *d, int rv)
{
    const char *msg = "";
    if (rv == CPNS_ERR_STORE)
        msg = d->opt.pg ? cpns_store_pg_errmsg(d->store) : cpns_store_sqlite_errmsg(d->store);
    return msg && *msg ? msg : cpns_strerror(rv);
}

static void conn_drop(gw_conn *g, cpns_log_level level, const char *reason);
static void schedule_turn(srvd *d);

static void arm_expiry(srvd *d)
{
    int64_t at = cpns_server_get_expiry(d->server);
    int64_t now = srvd_now();
    if (!d->store_ok && (at == CPNS_NEVER || at > now + STORE_RETRY_MS))
        at = now + STORE_RETRY_MS;
    if (at == CPNS_NEVER) {
        evtimer_del(d->expiry_timer);
        return;
    }
    struct timeval tv = ms_to_timeval(at - now);
    evtimer_add(d->expiry_timer, &tv);
}

static gw_conn *gw_find(const srvd *d, uint64_t id)
{
    for (gw_conn *g = d->gws; g; g = g->next)
        if (g->id == id)
            return g;
    return NULL;
}

/* Connections whose GW registered again on a newer one: they speak for nobody now. */
static void close_superseded(srvd *d)
{
    uint64_t id;
    while (cpns_server_pop_close(d->server, &id) == 1) {
        gw_conn *g = gw_find(d, id);
        if (g)
            conn_drop(g, CPNS_LOG_INFO, "its GW registered again on a newer connection");
    }
}

/*
 * Queues up to max frames the engine built. The number queued; *pop_rv is
 * the last cpns_server_pop() result (1: more are ready, 0: none now, <0: the
 * commit of a new Group Key failed).
 */
static size_t send_frames(srvd *d, size_t max, int *pop_rv)
{
    cpns_out out;
    size_t n = 0;
    *pop_rv = 0;
    while (n < max && (*pop_rv = cpns_server_pop(d->server, &out)) == 1) {
        n++;
        net_conn *c = links_get(&d->conns, out.link);
        if (!c) {
            log_debug("frame for GW connection %llu, which is gone: dropped",
                      (unsigned long long)out.link);
            continue;
        }
        if (net_conn_send(c, out.data, out.len) != 0)
            log_warn("cannot queue a %zu-byte frame on GW connection %llu", out.len,
                     (unsigned long long)out.link);
    }
    return n;
}

/*
 * Commits every write so far; records whether the store works. With a
 * PostgreSQL store a commit that need not block is only started (ha.c): its
 * end runs another turn.
 */
static void commit(srvd *d, int pop_rv, bool blocking)
{
    evtimer_del(d->commit_timer);
    if (d->opt.pg && !blocking) {
        srvd_ha_commit(d);
        return;
    }
    int flush_rv = cpns_server_flush(d->server);
    d->last_commit_ms = srvd_now();
    srvd_commit_result(d, flush_rv, pop_rv >= 0 && flush_rv == 0);
}

bool srvd_commit_result(srvd *d, int rv, bool ok)
{
    if (rv == CPNS_ERR_FENCED) {
        srvd_ha_fenced(d);
        return false;
    }
    if (rv < 0)
        log_error("commit failed: %s; the server keeps its state and retries",
                  srvd_store_error(d, rv));
    if (ok && !d->store_ok)
        log_info("the store works again: commits succeed");
    d->store_ok = ok;
    return true;
}

size_t srvd_gw_output(const srvd *d)
{
    size_t total = 0;
    for (const gw_conn *g = d->gws; g; g = g->next)
        total += net_conn_pending(g->c);
    return total;
}

static void set_paused(gw_conn *g, bool pause)
{
    srvd *d = g->d;
    g->paused = pause;
    net_conn_pause_read(g->c, pause);
    if (pause) {
        d->gws_paused++;
        log_warn("GW connection %llu (%s): %zu bytes queued that it does not read: not reading "
                 "from it until they drain",
                 (unsigned long long)g->id, net_conn_peer_addr(g->c), net_conn_pending(g->c));
        if (!evtimer_pending(d->drain_check, NULL)) {
            struct timeval tv = ms_to_timeval(GW_DRAIN_CHECK_MS);
            evtimer_add(d->drain_check, &tv);
        }
    } else {
        d->gws_paused--;
        log_info("GW connection %llu: its output drained, reading again",
                 (unsigned long long)g->id);
    }
}

/*
 * The output of the GW connections: a connection over GW_PENDING_MAX is
 * dropped, one over GW_READ_PAUSE is not read from until it drains below
 * GW_READ_RESUME, and while all of them together hold more than
 * GW_OUTPUT_BUDGET the one holding most is dropped.
 */
static void sweep_output(srvd *d)
{
    for (;;) {
        size_t total = 0, most = 0;
        gw_conn *fattest = NULL, *next;
        for (gw_conn *g = d->gws; g; g = next) {
            next = g->next;
            size_t p = net_conn_pending(g->c);
            if (p > GW_PENDING_MAX) {
                conn_drop(g, CPNS_LOG_WARN, "the GW does not read what is sent to it");
                continue;
            }
            if (!g->paused && p > GW_READ_PAUSE)
                set_paused(g, true);
            else if (g->paused && p < GW_READ_RESUME)
                set_paused(g, false);
            total += p;
            if (p > most) {
                most = p;
                fattest = g;
            }
        }
        if (total <= GW_OUTPUT_BUDGET || !fattest)
            break;
        conn_drop(fattest, CPNS_LOG_WARN,
                  "the GW connections hold more unread output than the server allows in all: "
                  "this one holds the most");
    }
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srvd *d = arg;
    sweep_output(d);
    if (d->gws_paused) {
        struct timeval tv = ms_to_timeval(GW_DRAIN_CHECK_MS);
        evtimer_add(d->drain_check, &tv);
    }
}

/*
 * Closes superseded connections, builds and queues up to TURN_FRAMES frames;
 * then commits when commit_now, when the store failed last time (the retry),
 * or when the commit interval has passed, and otherwise arms the commit
 * timer for the end of the interval. The answers the engine holds for a
 * commit (PNE registrations, whose Nonce must be durable before their answer
 * leaves) go out right after the commit that releases them: the
 * registrations of one interval share one commit. Committing at every turn
 * that held one made 100,000 registrations take 27 s instead of 3.5 s (one
 * fsync per handful of registrations).
 */
static void turn(srvd *d, bool commit_now, bool blocking)
{
    if (!d->server)
        return; /* a standby: nothing to do */
    /* This turn covers whatever the deferred one would have done. */
    event_del(d->turn);
    event_del(d->more);
    close_superseded(d);
    int pop_rv = 0;
    size_t sent = send_frames(d, TURN_FRAMES, &pop_rv);
    if (pop_rv < 0)
        log_error("committing a new Group Key before sending it failed: %s; its deliveries "
                  "wait and the commit is retried",
                  srvd_store_error(d, pop_rv));
    bool held = cpns_server_commit_wanted(d->server) == 1;
    int64_t now = srvd_now();
    int64_t due = d->last_commit_ms + d->opt.commit_interval_ms;
    if (commit_now || !d->store_ok || pop_rv < 0 || now >= due) {
        commit(d, pop_rv, blocking);
        if (held && d->store_ok && pop_rv == 0 && !cpns_server_flush_inflight(d->server))
            send_frames(d, TURN_FRAMES - sent, &pop_rv);
    } else if (!evtimer_pending(d->commit_timer, NULL)) {
        struct timeval tv = ms_to_timeval(due - now);
        evtimer_add(d->commit_timer, &tv);
    }
    if (pop_rv == 1) {
        /* More to build: after the loop has written these and read what came in. */
        static const struct timeval now_tv = {0, 0};
        evtimer_add(d->more, &now_tv);
    }
    sweep_output(d);
    arm_expiry(d);
}

void srvd_turn(srvd *d)
{
    turn(d, true, true);
}

void srvd_turn_async(srvd *d)
{
    turn(d, true, false);
}

void srvd_turn_send(srvd *d)
{
    turn(d, false, false);
}

static void on_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    turn(arg, false, false);
}

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    turn(arg, true, false);
}

/* After a frame: one turn later in this loop iteration, shared by every frame read in it. */
static void schedule_turn(srvd *d)
{
    event_active(d->turn, EV_TIMEOUT, 0);
}

static void on_expiry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srvd *d = arg;
    int rv = cpns_server_handle_expiry(d->server, srvd_now());
    if (rv != 0)
        log_error("handling timers failed: %s", srvd_store_error(d, rv));
    turn(d, false, false);
}

/* --- GW connections --- */

/* Forgets g (the table, the list, the pause count) and frees it; not the net_conn. */
static void gw_forget(gw_conn *g)
{
    srvd *d = g->d;
    links_remove(&d->conns, g->id);
    if (g->prev)
        g->prev->next = g->next;
    else
        d->gws = g->next;
    if (g->next)
        g->next->prev = g->prev;
    if (g->paused)
        d->gws_paused--;
    free(g);
}

static void conn_drop(gw_conn *g, cpns_log_level level, const char *reason)
{
    srvd *d = g->d;
    uint64_t id = g->id;
    net_conn *c = g->c;
    log_msg(level, NULL, NULL, 0, "GW connection %llu (%s) closed: %s", (unsigned long long)id,
            net_conn_peer_addr(c), reason);
    gw_forget(g);
    net_conn_close(c, false);
    if (cpns_server_conn_close(d->server, id, srvd_now()) == 0)
        schedule_turn(d); /* the GW's routes are gone: commit that */
}

static void gw_on_open(net_conn *c, void *arg)
{
    gw_conn *g = arg;
    srvd *d = g->d;
    const char *cn = d->tls ? net_conn_peer_cn(c) : NULL;
    if (d->tls && !cn) {
        /* Verified, but without a usable CN: no PNGWID can ever match it. */
        conn_drop(g, CPNS_LOG_WARN, "the client certificate has no usable subject CN");
        return;
    }
    int rv = cpns_server_conn_open(d->server, g->id, cn, srvd_now());
    if (rv != 0) {
        log_error("GW connection %llu: %s", (unsigned long long)g->id, cpns_strerror(rv));
        gw_forget(g);
        net_conn_close(c, false);
        return;
    }
    if (cn)
        log_info("GW connection %llu from %s: TLS 1.3, client certificate CN=%s",
                 (unsigned long long)g->id, net_conn_peer_addr(c), cn);
    else
        log_info("GW connection %llu from %s: plain TCP, NOT authenticated",
                 (unsigned long long)g->id, net_conn_peer_addr(c));
    schedule_turn(d);
}

static void gw_on_frame(net_conn *c, const uint8_t *data, size_t len, void *arg)
{
    gw_conn *g = arg;
    srvd *d = g->d;
    int rv = cpns_server_recv(d->server, g->id, data, len, srvd_now());
    if (rv != 0)
        log_error("frame from GW connection %llu: %s", (unsigned long long)g->id,
                  srvd_store_error(d, rv));
    if (!g->registered && cpns_server_conn_registered(d->server, g->id) == 1) {
        /* Authenticated and registered: the connection may stay as long as it likes. */
        g->registered = true;
        net_conn_clear_deadline(c);
    }
    schedule_turn(d);
}

static void gw_on_close(net_conn *c, const char *reason, void *arg)
{
    gw_conn *g = arg;
    srvd *d = g->d;
    uint64_t id = g->id;
    gw_forget(g);
    if (cpns_server_conn_close(d->server, id, srvd_now()) == 0) {
        log_info("GW connection %llu (%s) closed: %s", (unsigned long long)id,
                 net_conn_peer_addr(c), reason);
        schedule_turn(d);
    } else {
        /* It never opened: a failed or unfinished TLS handshake (no or a wrong client certificate).
         */
        log_warn("connection from %s refused before it opened: %s", net_conn_peer_addr(c), reason);
    }
}

static const net_conn_cbs gw_cbs = {gw_on_open, gw_on_frame, gw_on_close};

static void on_accept(net_conn *c, void *arg)
{
    srvd *d = arg;
    if (d->opt.max_gws && d->conns.count >= d->opt.max_gws) {
        log_warn("%zu GW connections open (--max-gws): connection from %s refused", d->conns.count,
                 net_conn_peer_addr(c));
        net_conn_close(c, false);
        return;
    }
    gw_conn *g = calloc(1, sizeof *g);
    if (!g || links_put(&d->conns, d->next_conn + 1, c) != 0) {
        free(g);
        log_error("out of memory: connection from %s refused", net_conn_peer_addr(c));
        net_conn_close(c, false);
        return;
    }
    g->d = d;
    g->c = c;
    g->id = ++d->next_conn;
    g->next = d->gws;
    if (d->gws)
        d->gws->prev = g;
    d->gws = g;
    net_conn_set_id(c, g->id);
    net_conn_set_cbs(c, &gw_cbs, g);
    net_conn_set_stall_timeout(c, d->opt.stall_timeout_s);
    /* A slot is held only by a GW that proves who it is: idle sockets are closed. */
    net_conn_set_deadline(c, d->opt.register_timeout_s,
                          "no TLS handshake and GW registration within --register-timeout");
    log_debug("connection %llu from %s accepted", (unsigned long long)g->id, net_conn_peer_addr(c));
}

/* --- start and stop --- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    srvd *d = arg;
    (void)what;
    log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(d->base);
}

/*
 * SIGHUP (opt_reload_run): the new --log-level at once; the --tls-* files
 * re-read for the GW connections accepted from now on (certificate rotation
 * without a restart); the rest waits for a restart.
 */
static srvd_options parsed_opt; /* as parsed: d->opt is adjusted at start (--max-gws) */

static int reload_apply(void *arg, const void *fresh, char *done, size_t done_len, char *err,
                        size_t err_len)
{
    srvd *d = arg;
    const srvd_options *n = fresh;
    if (d->tls && !n->insecure) {
        SSL_CTX *ctx = net_tls_server_ctx(n->tls_cert, n->tls_key, n->tls_ca, true, err, err_len);
        if (!ctx)
            return -1;
        int rv = tls_ctx_adopt(d->tls, ctx);
        SSL_CTX_free(ctx);
        if (rv != 0) {
            snprintf(err, err_len, "--tls-cert %s: cannot use the new certificate and key",
                     n->tls_cert);
            return -1;
        }
        char fp[40];
        tls_cert_fingerprint(d->tls, fp, sizeof fp);
        snprintf(done, done_len, "TLS certificate %s (SHA-256 %s) in use for new GW connections",
                 n->tls_cert, fp);
    }
    log_set_level(n->log_level);
    cpns_server_set_log_debug(d->server, n->log_level >= CPNS_LOG_DEBUG);
    return 0;
}

static void on_sighup(void *arg)
{
    opt_reload_run(arg);
}

static void daemon_free(srvd *d)
{
    daemon_sighup_free();
    net_listener_free(d->listener);
    d->listener = NULL;
    srvd_admin_stop(d);
    if (d->server && d->exit_status != EXIT_FENCED) {
        int rv = cpns_server_flush(d->server);
        if (rv != 0)
            log_error("final commit failed: %s", srvd_store_error(d, rv));
    }
    if (d->opt.cluster && d->active && d->exit_status != EXIT_FENCED)
        srvd_cluster_stop(d);
    else if (d->opt.pg && d->active && d->exit_status != EXIT_FENCED)
        srvd_ha_stop(d);
    links_close_all(&d->conns);
    while (d->gws) {
        gw_conn *g = d->gws;
        d->gws = g->next;
        free(g);
    }
    cpns_server_free(d->server);
    cpns_store_free(d->store);
    if (d->expiry_timer)
        event_free(d->expiry_timer);
    if (d->turn)
        event_free(d->turn);
    if (d->more)
        event_free(d->more);
    if (d->commit_timer)
        event_free(d->commit_timer);
    if (d->drain_check)
        event_free(d->drain_check);
    if (d->lease_timer)
        event_free(d->lease_timer);
    if (d->heartbeat_timer)
        event_free(d->heartbeat_timer);
    if (d->sweep_timer)
        event_free(d->sweep_timer);
    if (d->changes_ev)
        event_free(d->changes_ev);
    if (d->store_ev)
        event_free(d->store_ev);
    if (d->store_poll)
        event_free(d->store_poll);
    if (d->sigterm)
        event_free(d->sigterm);
    if (d->sigint)
        event_free(d->sigint);
    net_base_free(d->base);
    SSL_CTX_free(d->tls);
    if (d->token) {
        cpns_wipe(d->token, d->token_len);
        free(d->token);
    }
}

/*
 * The token, TLS and the master key: every refusal here is a bad option or
 * file (exit 2). A master key for a new database is only drawn here
 * (*new_key): its file is written after the ports are bound.
 */
static int load_files(srvd *d, uint8_t master_key[CPNS_KEY_LEN], bool *new_key)
{
    char err[600];
    if (d->opt.token_file && load_token(d) != 0)
        return -1;
    if (!d->opt.insecure) {
        d->tls = net_tls_server_ctx(d->opt.tls_cert, d->opt.tls_key, d->opt.tls_ca, true, err,
                                    sizeof err);
        if (!d->tls) {
            fprintf(stderr, "cpns-server: %s\n", err);
            return -1;
        }
    }
    if (!d->opt.pg && check_db_dir(d->opt.db) != 0)
        return -1;
    return load_master_key(d, master_key, new_key);
}

/*
 * Test hooks, not options: CPNS_FAULT_DB_MAX_PAGES=N caps the database at N
 * pages (store.h, cpns_store_sqlite_set_max_pages), so that tests can make
 * the store fail as on a full disk (1: full from the start);
 * CPNS_FAULT_DB_READ_ONLY=1 makes every write fail as on a read-only mount.
 * Each is logged loudly and has no effect when unset.
 */
static int fault_hooks(srvd *d)
{
    const char *ro = getenv("CPNS_FAULT_DB_READ_ONLY");
    if (ro && strcmp(ro, "1") == 0) {
        int rv = cpns_store_sqlite_set_read_only(d->store, 1);
        if (rv != 0) {
            log_error("CPNS_FAULT_DB_READ_ONLY: %s", srvd_store_error(d, rv));
            return -1;
        }
        log_warn("CPNS_FAULT_DB_READ_ONLY=1: TEST HOOK, every write to the database fails");
    }
    const char *pages = getenv("CPNS_FAULT_DB_MAX_PAGES");
    if (!pages || !*pages)
        return 0;
    int64_t n;
    if (parse_i64(pages, 0, UINT32_MAX, &n) != 0) {
        log_error("CPNS_FAULT_DB_MAX_PAGES '%s': not a number of pages", pages);
        return -1;
    }
    int rv = cpns_store_sqlite_set_max_pages(d->store, (uint32_t)n);
    if (rv != 0) {
        log_error("CPNS_FAULT_DB_MAX_PAGES: %s", srvd_store_error(d, rv));
        return -1;
    }
    log_warn("CPNS_FAULT_DB_MAX_PAGES=%s: TEST HOOK, the database is capped at that many pages",
             pages);
    return 0;
}

/*
 * The descriptors one process may use, shared by the listeners: the admin
 * API gets ADMIN_CONN_MAX (a quarter of the budget when that is less), the
 * GWs the rest at most.
 */
static void share_fd_budget(srvd *d)
{
    size_t budget = fd_budget();
    d->admin_max = ADMIN_CONN_MAX;
    if (!budget)
        return;
    if (d->admin_max > budget / 4)
        d->admin_max = budget / 4 ? budget / 4 : 1;
    size_t gw_budget = budget > d->admin_max ? budget - d->admin_max : 1;
    if (d->opt.max_gws == 0 || d->opt.max_gws > gw_budget) {
        log_warn("GW connections capped at %zu (--max-gws %zu%s): the limit on open files "
                 "(ulimit -n) allows no more beside %zu admin API connections",
                 gw_budget, d->opt.max_gws, d->opt.max_gws ? "" : ", no limit", d->admin_max);
        d->opt.max_gws = gw_budget;
    }
}

static int event_setup(srvd *d, opt_reload *reload)
{
    d->base = event_base_new();
    if (!d->base || daemon_sighup(d->base, on_sighup, reload) != 0)
        return -1;
    d->expiry_timer = evtimer_new(d->base, on_expiry, d);
    d->turn = event_new(d->base, -1, 0, on_turn, d);
    d->more = evtimer_new(d->base, on_turn, d);
    d->commit_timer = evtimer_new(d->base, on_commit, d);
    d->drain_check = evtimer_new(d->base, on_drain_check, d);
    d->sigterm = evsignal_new(d->base, SIGTERM, on_signal, d);
    d->sigint = evsignal_new(d->base, SIGINT, on_signal, d);
    if (!d->expiry_timer || !d->turn || !d->more || !d->commit_timer || !d->drain_check ||
        !d->sigterm || !d->sigint || evsignal_add(d->sigterm, NULL) != 0 ||
        evsignal_add(d->sigint, NULL) != 0)
        return -1;
    return 0;
}

/*
 * Opens the store (creating the master key file first for a new database,
 * and removing it again if the store cannot be created). 0, or the exit
 * status: 2 when another process holds the database.
 */
static int open_store(srvd *d, uint8_t master_key[CPNS_KEY_LEN], bool new_key)
{
    char err[600] = "";
    if (new_key && create_master_key(d->opt.master_key, master_key) != 0)
        return EXIT_USAGE;
    int rv;
    if (d->opt.pg) {
        cpns_store_pg_config cfg = {.conninfo = d->opt.db,
                                    .master_key = master_key,
                                    .instance_id = d->opt.instance_id,
                                    .cluster = d->opt.cluster};
        rv = cpns_store_pg_open(&d->store, &cfg, err, sizeof err);
    } else {
        rv = cpns_store_sqlite_open(&d->store, d->opt.db, master_key, err, sizeof err);
    }
    if (rv == 0)
        return 0;
    if (new_key && unlink(d->opt.master_key) == 0)
        log_info("removed the new master key file %s: the database was not created",
                 d->opt.master_key);
    if (rv == CPNS_ERR_BUSY) {
        log_error("--db %s", *err ? err : cpns_strerror(rv));
        return EXIT_USAGE;
    }
    /* The URI may carry a password: PostgreSQL errors name the database without it. */
    log_error("cannot open the store %s: %s", d->opt.pg ? "(PostgreSQL)" : d->opt.db,
              *err ? err : cpns_strerror(rv));
    return EXIT_FAILURE;
}

static int listen_gws(srvd *d)
{
    char err[600];
    d->listener = net_listen(d->base, d->opt.listen, d->tls, on_accept, d, err, sizeof err);
    if (!d->listener) {
        log_error("--listen %s", err);
        return -1;
    }
    net_listener_set_per_addr_cap(d->listener, d->opt.max_per_addr);
    return 0;
}

void srvd_stop(srvd *d, int status)
{
    if (!d->exit_status)
        d->exit_status = status;
    event_base_loopbreak(d->base);
}

/*
 * Loads the engine from the store and opens the GW listener: the start of a
 * SQLite server, and a PostgreSQL instance's once it holds the lease (a
 * standby loads nothing and serves no GW). 0, or the exit status.
 */
int srvd_activate(srvd *d)
{
    cpns_server_config cfg = {
        .store = d->store,
        .log = log_engine,
        .wall_clock = clock_wall_cb,
        .log_debug = d->opt.log_level >= CPNS_LOG_DEBUG,
        .delivery_timeout_ms = d->opt.delivery_timeout_s * 1000,
        .max_attempts = d->opt.max_attempts,
    };
    int64_t t0 = srvd_now();
    int rv = cpns_server_new(&d->server, &cfg, t0);
    if (rv != 0) {
        log_error("cannot load the server state from %s: %s", d->opt.pg ? "PostgreSQL" : d->opt.db,
                  srvd_store_error(d, rv));
        return EXIT_FAILURE;
    }
    if (!d->listener && listen_gws(d) != 0)
        return EXIT_FAILURE;
    d->active = true;
    d->store_ok = true;
    d->last_commit_ms = srvd_now();
    if (d->opt.pg)
        log_info("loaded the state in %lld ms", (long long)(d->last_commit_ms - t0));
    log_info("listening for GWs on %s (port %u, %s)", d->opt.listen, net_listener_port(d->listener),
             d->tls ? "TLS 1.3" : "plain TCP");
    return 0;
}

/*
 * Everything that can fail before the loop runs. 0, or the exit status.
 * Files are checked first, then the ports bound; a master key file is created
 * last, just before the new database, so that no failed start leaves one.
 */
static int daemon_init(srvd *d, opt_reload *reload)
{
    uint8_t master_key[CPNS_KEY_LEN];
    bool new_key = false;
    char err[600];
    if (load_files(d, master_key, &new_key) != 0) {
        cpns_wipe(master_key, sizeof master_key);
        return EXIT_USAGE;
    }
    if (event_setup(d, reload) != 0) {
        cpns_wipe(master_key, sizeof master_key);
        log_error("cannot set up the event loop");
        return EXIT_FAILURE;
    }
    share_fd_budget(d);
    /* SQLite: the port is checked before a new database is made; a standby listens only once
     * active. */
    if (!d->opt.pg && listen_gws(d) != 0) {
        cpns_wipe(master_key, sizeof master_key);
        return EXIT_FAILURE;
    }
    if (srvd_admin_start(d, err, sizeof err) != 0) {
        cpns_wipe(master_key, sizeof master_key);
        log_error("--admin %s", err);
        return EXIT_FAILURE;
    }
    int status = open_store(d, master_key, new_key);
    cpns_wipe(master_key, sizeof master_key);
    if (status != 0)
        return status;
    if (fault_hooks(d) != 0)
        return EXIT_FAILURE;
    if (d->opt.cluster)
        return srvd_cluster_start(d);
    return d->opt.pg ? srvd_ha_start(d) : srvd_activate(d);
}

int main(int argc, char **argv)
{
    static opt_parser parser = {
        .prog = "cpns-server",
        .specs = server_options,
        .n_specs = sizeof server_options / sizeof server_options[0],
    };
    srvd d;
    memset(&d, 0, sizeof d);
    int rv = load_options(&parser, argc, argv, &d.opt);
    if (rv == OPT_HELP)
        usage(stdout);
    else if (rv == OPT_VERSION)
        opt_print_version(parser.prog);
    else if (rv != 0)
        opt_print_error(&parser);
    else if (parser.check_only)
        printf("cpns-server: the options%s%s are valid\n", parser.config ? " and " : "",
               parser.config ? parser.config : "");
    if (rv != 0 || parser.check_only) {
        opt_free(&parser);
        return rv < 0 ? EXIT_USAGE : EXIT_SUCCESS;
    }
    parsed_opt = d.opt;
    opt_reload reload = {
        .p = &parser,
        .argc = argc,
        .argv = argv,
        .size = sizeof d.opt,
        .running = &d.opt,
        .parsed = &parsed_opt,
        .load = load_options,
        .apply = reload_apply,
        .arg = &d,
    };
    log_setup("server", NULL, d.opt.log_level);
    /* A peer closing mid-write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);

    int status = daemon_init(&d, &reload);
    if (status == 0) {
        if (d.opt.insecure)
            log_warn("--insecure: GW links on %s are NOT authenticated (plain TCP, no TLS, no "
                     "client certificates)",
                     d.opt.listen);
        log_info("cpns-server %s: GWs connect to %s (%s), admin API on http://%s%s, store %s",
                 CPNS_LIB_VERSION, d.opt.listen, d.tls ? "TLS 1.3" : "plain TCP", d.opt.admin,
                 d.token ? " (bearer token)" : "", d.opt.pg ? "PostgreSQL" : d.opt.db);
        /* Deliveries loaded as pending wait for their GWs; expired timers run now. */
        srvd_turn(&d);
        notify_ready("cpns-server");
        event_base_dispatch(d.base);
        notify_stopping();
        log_info("stopped");
        status = d.exit_status;
    }
    daemon_free(&d);
    opt_free(&parser);
    return status;
}
