/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-loadgen e2e: the end-to-end benchmark against a real cpns-server.
 *
 * G simulated GWs dial the server over TLS 1.3 with their own certificates
 * (CN lg-gw-NNN from scripts/pki.sh), register, and carry P simulated PNEs
 * each. A simulated PNE is the real cpns_pne engine with a memory keystore:
 * it checks and decrypts the EncryptedGroupKey, stores the key and answers
 * with its KeyConfirmation. Routing in the GW is what cpns-gw does: a
 * peek (on the shared decoder) for the PNEID, the frame passed on byte for byte.
 *
 * For each group size the clock starts when POST /v1/sgs leaves and stops
 * when the server's delivered counter (/metrics) shows every member done.
 * The frames of the round are kept and replayed by the baseline (baseline.c).
 * One line per size on stdout: BENCH {"name":"e2e",...}.
 *
 * Takeover (--kill-pid, PostgreSQL active/standby): --server lists the
 * instances; one round of one size; once --kill-at of its members answered,
 * the active instance is killed (SIGKILL). The simulated GWs then do what
 * cpns-gw does: move to the next server of the list at once, waiting
 * TAKEOVER_PASS_MS only after a pass over the whole list failed, register,
 * and announce their PNEs (PNEStatusNotification attached). The clock runs
 * from the kill to the "key distribution complete" line in the log of the
 * instance that took over (--takeover-log), and every member must then hold
 * the Group Key of the POST's answer. One line: BENCH {"name":"takeover",...}.
 *
 * Cluster (--cluster, issue #12: every instance active on one PostgreSQL):
 * --server lists the instances and simulated GW k dials instance k mod S
 * first, so the GWs spread over them as GWs given every address in a
 * rotated order would; --db URI is that PostgreSQL, and a round is complete
 * when every member row of the SG is delivered there (no one instance logs
 * the whole group's completion). With --kill-pid the takeover is the same as
 * above (the killed instance's GWs move to the next of the list), timed from
 * the kill to that complete. Either way each PNE counts the delivery requests
 * it got in the round: the takeover line gives the requests sent again per
 * member ("duplicates_per_member") and how many members got more than one.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "daemon.h"
#include "loadgen.h"

typedef struct e2e_opts {
    const char *server, *capture_dir;
    int64_t n_gws, n_pnes, server_pid, repeat;
    char sizes[256];
    /* takeover: the instance to kill, when, and the log of the one expected to take over */
    int64_t kill_pid;
    double kill_at;
    const char *takeover_log;
    /* cluster: GW k on instance k mod S; completion read from PostgreSQL */
    bool cluster;
    const char *db;
} e2e_opts;

/* The servers of --server (a comma-separated list for takeover). */
#define LG_MAX_SERVERS 8
/* After every listed server failed in turn, the next pass waits this long (ms). */
#define TAKEOVER_PASS_MS 20

/* What the takeover adds to each simulated GW (indexed like g->gws). */
typedef struct gw_link {
    SSL_CTX *ctx;
    struct event *retry;
    uint32_t cur, failed_in_pass;
    bool announce; /* registered again after a failure: announce the PNEs */
} gw_link;

typedef struct takeover {
    /* armed: the kill comes with the kill_n-th answer once the POST was answered */
    bool armed;
    const lg_http_req *post;
    uint32_t kill_n, at_kill, at_post;
    int64_t t_post_us; /* when the POST's answer was seen (0: not before the kill) */
    int64_t kill_pid;
    bool on;      /* the kill is under way: a closed connection moves to the next server */
    bool cluster; /* every instance active: only the killed one's GWs move */
    char *servers[LG_MAX_SERVERS];
    uint32_t n_servers;
    gw_link *links;
    int64_t t_kill_us, t_first_open_us, t_all_registered_us;
    uint32_t registered_after;
} takeover;

static takeover T;

#define LG_MAX_REPEAT 9

#define REG_WINDOW 2000u
/* Capture bytes per member until a round measured it (record header, request, response) */
#define LG_CAPTURE_GUESS 1024u

static lg *G; /* for the callbacks' arg only; no other global */

static void takeover_registered(lg *g, lg_gw *gw);
static void takeover_lost(lg_gw *gw);
static void takeover_kill(lg *g);

static void pne_flush(lg *g, lg_pne *p, net_conn *to, const uint8_t *req, size_t req_len)
{
    cpns_out out;
    bool first = true;
    while (cpns_pne_pop(p->eng, &out) == 1) {
        if (to)
            net_conn_send(to, out.data, out.len);
        if (req && first && g->capture_on) {
            uint32_t hdr[3] = {p->gw, (uint32_t)req_len, (uint32_t)out.len};
            if (lg_buf_add(&g->capture, hdr, sizeof hdr) || lg_buf_add(&g->capture, req, req_len) ||
                lg_buf_add(&g->capture, out.data, out.len))
                g->failed = true;
        }
        first = false;
    }
}

static void gw_on_open(net_conn *c, void *arg)
{
    lg_gw *gw = arg;
    gw->open = true;
    cpns_msg m;
    char id[CPNS_ID_MAX + 1];
    uint8_t buf[1024];
    size_t len;
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, 1 + gw->idx);
    snprintf(id, sizeof id, LG_GW_PREFIX "%03u", gw->idx);
    cpns_msg_set_id(&m, CPNS_F_PNGWID, id);
    snprintf(id, sizeof id, "lg-pn-%03u", gw->idx);
    cpns_msg_set_id(&m, CPNS_F_PNID, id);
    if (cpns_msg_encode(&m, buf, sizeof buf, &len) == 0)
        net_conn_send(c, buf, len);
}

/*
 * The simulated GW's routing of a delivery request: the PNEID found by a scan
 * of the frame as cpns-server encodes it. The PNE engine then decodes and
 * checks all of it (a wrong PNEID is its to answer); anything else takes the
 * real peek below. What cpns-gw's routing costs is gw_fanout's measure: here
 * the CPU shared with the server goes to the PNEs' real work.
 */
static bool route_request(const uint8_t *data, size_t len, uint32_t n, uint32_t *i)
{
    static const char kind[] = "><SGroupKeyDeliveryRequest ";
    static const char attr[] = "<GroupKeyInfo PNEID=\"";
    const uint8_t *k = memmem(data, len, kind, sizeof kind - 1);
    const uint8_t *a = k ? memmem(k, len - (size_t)(k - data), attr, sizeof attr - 1) : NULL;
    if (!a)
        return false;
    const char *id = (const char *)a + sizeof attr - 1;
    const char *end = memchr(id, '"', len - (size_t)((const uint8_t *)id - data));
    char PNEID[CPNS_ID_MAX + 1];
    if (!end || end == id || (size_t)(end - id) > CPNS_ID_MAX)
        return false;
    memcpy(PNEID, id, (size_t)(end - id));
    PNEID[end - id] = '\0';
    return lg_pne_index(PNEID, n, i) == 0;
}

static void deliver(lg *g, net_conn *c, uint32_t i, const uint8_t *data, size_t len)
{
    lg_pne *p = &g->pnes[i];
    p->got++;
    cpns_pne_recv(p->eng, data, len, lg_now_ms());
    pne_flush(g, p, c, data, len);
    if (g->lat_ms && g->responses < g->round_members)
        g->lat_ms[g->responses] = (double)(lg_now_us() - g->t0_us) / 1000.0;
    g->responses++;
    /* right here, not after the loop turn: one turn can carry most of a small group */
    if (T.armed && !T.t_post_us && T.post->done) {
        T.t_post_us = lg_now_us();
        T.at_post = g->responses;
    }
    if (T.armed && g->responses >= T.kill_n)
        takeover_kill(g);
}

static void gw_on_frame(net_conn *c, const uint8_t *data, size_t len, void *arg)
{
    lg_gw *gw = arg;
    lg *g = G;
    uint32_t i;
    if (route_request(data, len, g->n_pnes, &i)) {
        deliver(g, c, i, data, len);
        return;
    }
    cpns_msg m;
    if (cpns_msg_decoder_peek(g->decoder, data, len, &m) != 0) {
        fprintf(stderr, "cpns-loadgen: GW %u: an unreadable frame\n", gw->idx);
        return;
    }
    if (m.kind == CPNS_MSG_PNGW_REGISTRATION_RESPONSE) {
        if (m.Return != CPNS_RETURN_SUCCESS) {
            fprintf(stderr, "cpns-loadgen: GW %u registration: Return %u\n", gw->idx, m.Return);
            g->failed = true;
        }
        gw->registered = true;
        if (T.on && m.Return == CPNS_RETURN_SUCCESS && T.links[gw->idx].announce)
            takeover_registered(g, gw);
        return;
    }
    if (!(m.present & CPNS_F_PNEID) || lg_pne_index(m.PNEID, g->n_pnes, &i) != 0)
        return;
    if (m.kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST) {
        deliver(g, c, i, data, len);
        return;
    }
    lg_pne *p = &g->pnes[i];
    cpns_pne_state before = cpns_pne_get_state(p->eng);
    cpns_pne_recv(p->eng, data, len, lg_now_ms());
    pne_flush(g, p, c, NULL, 0);
    if (before != CPNS_PNE_REGISTERED && cpns_pne_get_state(p->eng) == CPNS_PNE_REGISTERED)
        g->pnes_registered++;
}

static void gw_on_close(net_conn *c, const char *reason, void *arg)
{
    lg_gw *gw = arg;
    (void)c;
    gw->closed = true;
    gw->conn = NULL;
    if (T.on) {
        takeover_lost(gw);
        return;
    }
    fprintf(stderr, "cpns-loadgen: GW %u connection closed: %s\n", gw->idx, reason);
    G->failed = true;
}

static const net_conn_cbs gw_cbs = {gw_on_open, gw_on_frame, gw_on_close};

/* --- takeover: what cpns-gw does when its server fails --- */

static void takeover_dial(evutil_socket_t fd, short what, void *arg)
{
    lg_gw *gw = arg;
    gw_link *l = &T.links[gw->idx];
    (void)fd;
    (void)what;
    char err[700];
    gw->closed = false;
    gw->registered = false;
    l->announce = true;
    gw->conn = net_connect(G->base, T.servers[l->cur], l->ctx, &gw_cbs, gw, err, sizeof err);
    if (!gw->conn)
        takeover_lost(gw);
}

/* The connection failed or ended: the next server at once, unless a whole pass failed. */
static void takeover_lost(lg_gw *gw)
{
    gw_link *l = &T.links[gw->idx];
    l->cur = (l->cur + 1) % T.n_servers;
    struct timeval tv = {0, 0};
    if (++l->failed_in_pass >= T.n_servers) {
        l->failed_in_pass = 0;
        tv.tv_usec = TAKEOVER_PASS_MS * 1000;
    }
    evtimer_add(l->retry, &tv);
}

/* Registered with the server that took over: its PNEs are behind this GW (announce_attached). */
static void takeover_registered(lg *g, lg_gw *gw)
{
    gw_link *l = &T.links[gw->idx];
    l->announce = false;
    l->failed_in_pass = 0;
    int64_t now = lg_now_us();
    if (!T.t_first_open_us)
        T.t_first_open_us = now;
    /*
     * Active/standby: every GW moves. Cluster: only the killed instance's GWs
     * do, so "all back" is the last of them (none of the others ever lost its
     * connection).
     */
    if (++T.registered_after == g->n_gws || T.cluster)
        T.t_all_registered_us = now;
    for (uint32_t i = gw->idx; i < g->n_pnes; i += g->n_gws) {
        char PNEID[CPNS_ID_MAX + 1];
        uint8_t buf[512];
        size_t len;
        cpns_msg m;
        cpns_msg_init(&m, CPNS_MSG_PNE_STATUS_NOTIFICATION, ((uint64_t)gw->idx << 32) + i + 1);
        lg_pneid(i, PNEID);
        if (cpns_msg_set_id(&m, CPNS_F_PNEID, PNEID) != 0)
            continue;
        m.Status = CPNS_STATUS_ATTACHED;
        m.present |= CPNS_F_STATUS;
        if (cpns_msg_encode(&m, buf, sizeof buf, &len) == 0)
            net_conn_send(gw->conn, buf, len);
    }
}

/* SIGKILL to the active instance; from now on a closed connection moves on. */
static void takeover_kill(lg *g)
{
    T.armed = false;
    T.on = true;
    T.at_kill = g->responses;
    if (kill((pid_t)T.kill_pid, SIGKILL) != 0) {
        fprintf(stderr, "cpns-loadgen: kill %lld: %s\n", (long long)T.kill_pid, strerror(errno));
        g->failed = true;
    }
    T.t_kill_us = lg_now_us();
}

/* --server A,B,...: the list (one entry without a comma). -1 when it is too long. */
static int takeover_servers(const char *list)
{
    char *copy = strdup(list), *save;
    if (!copy)
        return -1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (T.n_servers == LG_MAX_SERVERS) {
            free(copy);
            return -1;
        }
        T.servers[T.n_servers++] = strdup(tok);
    }
    free(copy);
    return T.n_servers ? 0 : -1;
}

static int connect_gws(lg *g, const char *server, bool spread)
{
    g->gws = calloc(g->n_gws, sizeof *g->gws);
    if (!g->gws)
        return -1;
    for (uint32_t i = 0; i < g->n_pnes; i++)
        g->pnes[i].gw = i % g->n_gws;
    for (uint32_t k = 0; k < g->n_gws; k++) {
        char crt[512], key[512], ca[512], err[700];
        snprintf(crt, sizeof crt, "%s/" LG_GW_PREFIX "%03u.crt", g->pki, k);
        snprintf(key, sizeof key, "%s/" LG_GW_PREFIX "%03u.key", g->pki, k);
        snprintf(ca, sizeof ca, "%s/ca.crt", g->pki);
        SSL_CTX *ctx = net_tls_client_ctx(crt, key, ca, err, sizeof err);
        if (!ctx) {
            fprintf(stderr, "cpns-loadgen: %s\n", err);
            return -1;
        }
        g->gws[k].idx = k;
        const char *to = spread ? T.servers[k % T.n_servers] : server;
        g->gws[k].conn = net_connect(g->base, to, ctx, &gw_cbs, &g->gws[k], err, sizeof err);
        if (T.links) { /* kept for the connections after the kill */
            T.links[k].cur = spread ? k % T.n_servers : 0;
            T.links[k].ctx = ctx;
            T.links[k].retry = evtimer_new(g->base, takeover_dial, &g->gws[k]);
            if (!T.links[k].retry)
                return -1;
        } else {
            SSL_CTX_free(ctx); /* the connection's SSL keeps its own reference */
        }
        if (!g->gws[k].conn) {
            fprintf(stderr, "cpns-loadgen: %s\n", err);
            return -1;
        }
    }
    for (uint32_t k = 0; k < g->n_gws; k++)
        if (lg_run_until(g, &g->gws[k].registered, 30000) != 0) {
            fprintf(stderr, "cpns-loadgen: GW %u did not register\n", k);
            return -1;
        }
    return 0;
}

/*
 * After a registration timeout: how the PNEs that did not register stand
 * (engine state and last Return, per GW), so that a stall says where it is.
 */
static void report_unregistered(lg *g)
{
    enum { STATES = 4, RETURNS = 11 };
    for (uint32_t k = 0; k < g->n_gws; k++) {
        /* by_return[RETURNS]: no answer yet; [RETURNS + 1]: another code */
        uint32_t by_state[STATES] = {0}, by_return[RETURNS + 2] = {0}, waiting = 0;
        for (uint32_t i = 0; i < g->n_pnes; i++) {
            lg_pne *p = &g->pnes[i];
            cpns_pne_state st = cpns_pne_get_state(p->eng);
            if (p->gw != k || st == CPNS_PNE_REGISTERED)
                continue;
            waiting++;
            by_state[(unsigned)st < STATES ? st : 0]++;
            int r = cpns_pne_last_return(p->eng);
            by_return[r < 0 ? RETURNS : r < RETURNS ? r : RETURNS + 1]++;
        }
        if (!waiting)
            continue;
        fprintf(stderr,
                "cpns-loadgen: GW %u (%s): %u PNEs not registered: %u offline, %u registering, "
                "%u refused; last Return:",
                k, g->gws[k].registered ? "registered" : "NOT registered", waiting, by_state[0],
                by_state[1], by_state[3]);
        for (int r = 0; r < RETURNS; r++)
            if (by_return[r])
                fprintf(stderr, " %d x%u", r, by_return[r]);
        if (by_return[RETURNS])
            fprintf(stderr, " none x%u", by_return[RETURNS]);
        if (by_return[RETURNS + 1])
            fprintf(stderr, " other x%u", by_return[RETURNS + 1]);
        fputc('\n', stderr);
    }
}

/* Registers every PNE through its GW, retrying those the server's rate limit turned away. */
static int register_pnes(lg *g)
{
    int64_t t0 = lg_now_us();
    /* A window of outstanding registrations keeps the server's turns (and commits) moderate. */
    for (uint32_t i = 0; i < g->n_pnes && !g->failed;) {
        while (i < g->n_pnes && i - g->pnes_registered < REG_WINDOW) {
            lg_pne *p = &g->pnes[i++];
            cpns_pne_link_up(p->eng, lg_now_ms());
            pne_flush(g, p, g->gws[p->gw].conn, NULL, 0);
        }
        event_base_loop(g->base, EVLOOP_ONCE);
    }
    int64_t last_retry = lg_now_us();
    while (g->pnes_registered < g->n_pnes && !g->failed) {
        if (lg_now_us() - t0 > 600 * 1000000LL) {
            fprintf(stderr, "cpns-loadgen: only %u of %u PNEs registered\n", g->pnes_registered,
                    g->n_pnes);
            report_unregistered(g);
            return -1;
        }
        lg_run_until_count(g, &g->pnes_registered, g->n_pnes, 500);
        if (lg_now_us() - last_retry < 500000)
            continue;
        last_retry = lg_now_us();
        int64_t now = lg_now_ms();
        for (uint32_t i = 0; i < g->n_pnes; i++) {
            lg_pne *p = &g->pnes[i];
            if (cpns_pne_get_state(p->eng) != CPNS_PNE_REGISTERED &&
                cpns_pne_get_expiry(p->eng) <= now) {
                cpns_pne_handle_expiry(p->eng, now);
                pne_flush(g, p, g->gws[p->gw].conn, NULL, 0);
            }
        }
    }
    fprintf(stderr, "registered %u PNEs through %u GWs in %.2f s\n", g->pnes_registered, g->n_gws,
            (double)(lg_now_us() - t0) / 1e6);
    return g->failed ? -1 : 0;
}

static int save_capture(lg *g, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(g->capture.p, 1, g->capture.len, f);
    return fclose(f) == 0 && w == g->capture.len ? 0 : -1;
}

/*
 * Cluster mode: polls PostgreSQL until every member row of SGID is delivered
 * (state 2) at the SG's KeyVersion, the loop running between polls; 0, or -1
 * on timeout or when the database cannot be reached.
 */
static int wait_db_complete(lg *g, const char *db, const char *SGID, uint32_t members,
                            int64_t timeout_ms)
{
    PGconn *c = PQconnectdb(db);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "cpns-loadgen: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    const char *params[1] = {SGID};
    int64_t end = lg_now_us() + timeout_ms * 1000;
    int rv = -1;
    while (lg_now_us() < end && !g->failed) {
        PGresult *r = PQexecParams(c,
                                   "SELECT count(*) FROM member m JOIN sg USING (sgid) WHERE "
                                   "sgid = $1 AND m.state = 2 AND m.key_version = sg.key_version",
                                   1, NULL, params, NULL, NULL, 0);
        long n = PQresultStatus(r) == PGRES_TUPLES_OK ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : -1;
        PQclear(r);
        if (n >= (long)members) {
            rv = 0;
            break;
        }
        /* 10 ms of the loop: the PNEs keep answering meanwhile */
        int64_t until = lg_now_us() + 10000;
        while (lg_now_us() < until)
            event_base_loop(g->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    PQfinish(c);
    return rv;
}

/* Clears every PNE's per-round delivery count. */
static void clear_got(lg *g)
{
    for (uint32_t i = 0; i < g->n_pnes; i++)
        g->pnes[i].got = 0;
}

/* What one round of one size measured (see docs/PERFORMANCE.md for each field). */
typedef struct round_result {
    double seconds, first, p50, p99, base, server_cpu, self_cpu;
} round_result;

/* One round: a new SG of `members`, timed from its POST to complete, then its baseline. */
static int round_once(lg *g, const e2e_opts *o, uint32_t members, int rep, const char *self,
                      round_result *r)
{
    char SGID[64];
    snprintf(SGID, sizeof SGID, "bench-%u-%d-%d", members, (int)getpid(), rep);
    size_t body_len;
    char *body = lg_sg_body(SGID, 0, members, &body_len);
    int64_t before = lg_delivered(g);
    if (!body || before < 0) {
        fprintf(stderr, "cpns-loadgen: cannot read /metrics\n");
        free(body);
        return -1;
    }
    g->round_members = members;
    g->responses = 0;
    g->capture.len = 0;
    /*
     * The capture is the baseline's, not the PNEs' or GWs' work: sized (and
     * its pages touched) before the clock, so that the round does not spend
     * its time growing and moving ~100 MB. A wrong estimate only costs speed.
     */
    size_t per_member = g->capture_per_member ? g->capture_per_member : LG_CAPTURE_GUESS;
    if (lg_buf_reserve(&g->capture, (size_t)members * per_member + (1u << 20)) != 0) {
        fprintf(stderr, "cpns-loadgen: out of memory for the capture\n");
        free(body);
        return -1;
    }
    g->capture_on = true;
    g->lat_ms = calloc(members, sizeof *g->lat_ms);
    lg_http_req post;
    double cpu0 = o->server_pid > 0 ? lg_cpu_s(o->server_pid) : -1;
    double self0 = lg_cpu_s(getpid());
    long log_from = lg_file_size(g->server_log);
    g->t0_us = lg_now_us();
    if (!g->lat_ms || lg_http_start(g, "POST", "/v1/service-groups", body, body_len, &post) != 0) {
        free(body);
        return -1;
    }
    int rv = lg_wait_responses(g, &post, members, 600000);
    int64_t done = -1;
    if (o->db) { /* cluster: PostgreSQL says complete, whichever instances served */
        if (rv == 0 && (rv = wait_db_complete(g, o->db, SGID, members, 600000)) == 0)
            done = members;
        log_from = -2;
    }
    if (rv == 0 && log_from >= 0)
        rv = lg_wait_log_complete(g, g->server_log, log_from, SGID, 600000);
    while (rv == 0 && log_from == -1 && (done = lg_delivered(g)) >= 0 && done - before < members)
        ;
    int64_t t1 = lg_now_us();
    if (rv == 0 && log_from >= 0 && (done = lg_delivered(g)) - before < members)
        done = -1; /* the log said complete: the counter must agree */
    double cpu1 = o->server_pid > 0 ? lg_cpu_s(o->server_pid) : -1;
    double self1 = lg_cpu_s(getpid());
    g->capture_on = false;
    if (g->responses)
        g->capture_per_member = g->capture.len / g->responses + 64;
    if (rv == 0)
        rv = lg_run_until(g, &post.done, 60000);
    free(body);
    free(post.body);
    if (rv != 0 || post.status != 201 || done < 0) {
        fprintf(stderr, "cpns-loadgen: round of %u failed (POST status %d, %u responses)\n",
                members, post.status, g->responses);
        return -1;
    }
    r->seconds = (double)(t1 - g->t0_us) / 1e6;
    r->p50 = lg_percentile(g->lat_ms, members, 0.50);
    r->p99 = lg_percentile(g->lat_ms, members, 0.99);
    r->first = g->lat_ms[0]; /* sorted: when the first KeyConfirmation came back */
    r->server_cpu = cpu1 - cpu0;
    r->self_cpu = self1 - self0;
    free(g->lat_ms);
    g->lat_ms = NULL;

    char path[512];
    snprintf(path, sizeof path, "%s/capture-%u.bin", o->capture_dir, members);
    r->base = -1;
    if (save_capture(g, path) == 0)
        r->base = lg_baseline_run(g, self, path, g->n_gws);
    unlink(path);
    /* The next round starts from the same server: this group's memory is given back. */
    char del[96];
    snprintf(del, sizeof del, "/v1/service-groups/%s", SGID);
    lg_http_req h;
    rv = lg_http_do(g, "DELETE", del, NULL, 0, &h);
    free(h.body);
    if (rv != 0 || h.status != 204) {
        fprintf(stderr, "cpns-loadgen: DELETE %s: status %d\n", del, h.status);
        return -1;
    }
    return r->base > 0 ? 0 : -1;
}

/*
 * o->repeat rounds of one size, each with its baseline right after it. The
 * shared host's other work slows one run or another by up to 1.5x, so
 * seconds and baseline_seconds are each the best of the runs (the least
 * disturbed), baseline_ratio their quotient; the medians show the spread
 * (lg_percentile's: the upper middle of an even count).
 */
static int size_run(lg *g, const e2e_opts *o, uint32_t members, const char *self)
{
    round_result best = {0}, r;
    double secs[LG_MAX_REPEAT], bases[LG_MAX_REPEAT];
    int runs = 0;
    for (int rep = 1; rep <= o->repeat; rep++) {
        if (round_once(g, o, members, rep, self, &r) != 0)
            return -1;
        if (runs == 0 || r.seconds < best.seconds)
            best = r;
        secs[runs] = r.seconds;
        bases[runs++] = r.base;
    }
    double base = lg_percentile(bases, (size_t)runs, 0.0);
    long rss = o->server_pid > 0 ? lg_rss_kb(o->server_pid, "VmHWM") : -1;
    printf("BENCH {\"name\":\"e2e\",\"members\":%u,\"gws\":%u,\"runs\":%d,\"seconds\":%.3f,"
           "\"seconds_median\":%.3f,\"deliveries_per_s\":%.0f,\"first_ms\":%.1f,"
           "\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"server_rss_mb\":%.1f,\"baseline_seconds\":%.3f,"
           "\"baseline_median\":%.3f,\"baseline_ratio\":%.3f,\"server_cpu_s\":%.2f,"
           "\"loadgen_cpu_s\":%.2f}\n",
           members, g->n_gws, runs, best.seconds, lg_percentile(secs, (size_t)runs, 0.5),
           members / best.seconds, best.first, best.p50, best.p99,
           rss >= 0 ? (double)rss / 1024.0 : -1.0, base, lg_percentile(bases, (size_t)runs, 0.5),
           base / best.seconds, best.server_cpu, best.self_cpu);
    fflush(stdout);
    return 0;
}

/* "key_version":N and "key_fingerprint":"..." of an SG object (the POST's answer). */
static int sg_key_of(const char *body, uint32_t *version, char fp[CPNS_FINGERPRINT_LEN + 1])
{
    const char *v = body ? strstr(body, "\"key_version\":") : NULL;
    const char *f = body ? strstr(body, "\"key_fingerprint\":\"") : NULL;
    if (!v || !f)
        return -1;
    *version = (uint32_t)strtoul(v + strlen("\"key_version\":"), NULL, 10);
    f += strlen("\"key_fingerprint\":\"");
    size_t n = strcspn(f, "\"");
    if (n != CPNS_FINGERPRINT_LEN)
        return -1;
    memcpy(fp, f, n);
    fp[n] = '\0';
    return 0;
}

/* The members that do not hold Group Key `version` with fingerprint fp (0: one key everywhere). */
static uint32_t members_off_key(lg *g, const char *SGID, uint32_t members, uint32_t version,
                                const char *fp)
{
    uint32_t off = 0;
    for (uint32_t i = 0; i < members; i++) {
        cpns_keystore *ks = g->pnes[i].ks;
        cpns_stored_keys k;
        char have[CPNS_FINGERPRINT_LEN + 1] = "";
        if (ks->ops->get(ks, SGID, &k) == 0 && k.current.KeyVersion == version)
            cpns_fingerprint(k.current.GK, CPNS_KEY_LEN, have);
        cpns_wipe(&k, sizeof k);
        if (strcmp(have, fp) != 0)
            off++;
    }
    return off;
}

/*
 * The takeover round: a new SG of `members` on the active instance, SIGKILL
 * to it once kill_at of them answered, timed from the kill to the complete
 * line of the instance that took over. No baseline, no DELETE (the admin API
 * that created it is gone): the last round of a run.
 */
static int takeover_run(lg *g, const e2e_opts *o, uint32_t members)
{
    char SGID[64];
    snprintf(SGID, sizeof SGID, "takeover-%u-%d", members, (int)getpid());
    size_t body_len;
    char *body = lg_sg_body(SGID, 0, members, &body_len);
    long log_from = o->db ? 0 : lg_file_size(o->takeover_log);
    if (!body || log_from < 0) {
        fprintf(stderr, "cpns-loadgen: cannot read %s\n", o->takeover_log);
        free(body);
        return -1;
    }
    uint32_t kill_n = (uint32_t)(o->kill_at * members);
    if (kill_n < 1)
        kill_n = 1;
    g->round_members = members;
    g->responses = 0;
    clear_got(g);
    /*
     * Armed before the POST's answer: the server may answer it late (after
     * most of a small group), and the kill is due at kill_n answers anyway.
     */
    lg_http_req post;
    T.post = &post;
    T.kill_n = kill_n;
    T.kill_pid = o->kill_pid;
    T.cluster = o->cluster;
    T.armed = true;
    g->t0_us = lg_now_us();
    int rv = lg_http_start(g, "POST", "/v1/service-groups", body, body_len, &post);
    free(body);
    if (rv == 0)
        rv = lg_run_until(g, &T.on, 600000);
    uint32_t at_kill = T.at_kill;
    if (rv != 0 || at_kill >= members || (post.done && post.status && post.status != 201)) {
        fprintf(stderr, "cpns-loadgen: %u of %u members answered before the kill (POST %d)\n",
                at_kill, members, post.status);
        free(post.body);
        return -1;
    }
    int64_t post_to_kill = T.t_kill_us - g->t0_us;
    rv = o->db ? wait_db_complete(g, o->db, SGID, members, 600000)
               : lg_wait_log_complete(g, o->takeover_log, log_from, SGID, 600000);
    int64_t t_done = lg_now_us();
    uint32_t twice = 0;
    uint64_t requests = 0;
    for (uint32_t i = 0; i < members; i++) {
        requests += g->pnes[i].got;
        twice += g->pnes[i].got > 1;
    }
    /*
     * One key everywhere: the POST's answer names it; if the kill came first
     * (the answer is lost with the connection), the first member's key of
     * KeyVersion 1 is the reference (a second key would differ from it).
     */
    uint32_t version = 1;
    char fp[CPNS_FINGERPRINT_LEN + 1] = "";
    cpns_stored_keys k0;
    if (post.done && post.status == 201) {
        if (sg_key_of(post.body, &version, fp) != 0)
            *fp = '\0';
    } else if (g->pnes[0].ks->ops->get(g->pnes[0].ks, SGID, &k0) == 0) {
        cpns_fingerprint(k0.current.GK, CPNS_KEY_LEN, fp);
        cpns_wipe(&k0, sizeof k0);
    }
    uint32_t off = members;
    if (rv == 0 && *fp)
        off = members_off_key(g, SGID, members, version, fp);
    free(post.body);
    if (rv != 0 || off != 0 || !T.t_all_registered_us) {
        fprintf(stderr,
                "cpns-loadgen: takeover of %u members failed (%s; %u members without KeyVersion "
                "%u %s)\n",
                members, rv != 0 ? "no complete line" : "checked", off, version, fp);
        return -1;
    }
    double post_s = T.t_post_us ? (double)(T.t_post_us - g->t0_us) / 1e6 : -1;
    fprintf(stderr,
            "takeover: killed at %u of %u answers, first GW registered again after %.3f s, all "
            "after %.3f s, complete after %.3f s; every member holds KeyVersion %u (%s); the "
            "POST was answered %.3f s after it, with %u answers in (-1: not before the kill)\n",
            at_kill, members, (double)(T.t_first_open_us - T.t_kill_us) / 1e6,
            (double)(T.t_all_registered_us - T.t_kill_us) / 1e6,
            (double)(t_done - T.t_kill_us) / 1e6, version, fp, post_s, T.at_post);
    printf("BENCH {\"name\":\"takeover\",\"members\":%u,\"gws\":%u,\"answered_at_kill\":%u,"
           "\"post_to_kill_s\":%.3f,\"seconds\":%.3f,\"first_gw_back_s\":%.3f,"
           "\"all_gws_back_s\":%.3f,\"after_gws_back_s\":%.3f,\"answers\":%u,"
           "\"post_answered_s\":%.3f,\"answered_at_post\":%u,\"one_key\":true,"
           "\"cluster\":%s,\"instances\":%u,\"delivery_requests\":%" PRIu64
           ",\"duplicates_per_member\":%.4f,\"members_sent_twice\":%u}\n",
           members, g->n_gws, at_kill, (double)post_to_kill / 1e6,
           (double)(t_done - T.t_kill_us) / 1e6, (double)(T.t_first_open_us - T.t_kill_us) / 1e6,
           (double)(T.t_all_registered_us - T.t_kill_us) / 1e6,
           (double)(t_done - T.t_all_registered_us) / 1e6, g->responses, post_s, T.at_post,
           o->cluster ? "true" : "false", T.n_servers, requests,
           (double)(requests - members) / members, twice);
    fflush(stdout);
    return 0;
}

static void takeover_free(void)
{
    for (uint32_t i = 0; i < T.n_servers; i++)
        free(T.servers[i]);
    for (uint32_t k = 0; T.links && k < G->n_gws; k++) {
        SSL_CTX_free(T.links[k].ctx);
        if (T.links[k].retry)
            event_free(T.links[k].retry);
    }
    free(T.links);
    T = (takeover){0};
}

int lg_e2e_main(int argc, char **argv)
{
    e2e_opts o = {.n_gws = 10, .capture_dir = "/tmp", .repeat = 1};
    lg g = {.seed = "cpns-bench"};
    snprintf(o.sizes, sizeof o.sizes, "1000");
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--server") == 0)
            o.server = v;
        else if (strcmp(k, "--admin") == 0)
            g.admin = v;
        else if (strcmp(k, "--pki") == 0)
            g.pki = v;
        else if (strcmp(k, "--server-log") == 0)
            g.server_log = v;
        else if (strcmp(k, "--seed") == 0)
            g.seed = v;
        else if (strcmp(k, "--capture-dir") == 0)
            o.capture_dir = v;
        else if (strcmp(k, "--sizes") == 0)
            snprintf(o.sizes, sizeof o.sizes, "%s", v);
        else if (strcmp(k, "--gws") == 0)
            parse_i64(v, 1, 999, &o.n_gws);
        else if (strcmp(k, "--pnes") == 0)
            parse_i64(v, 1, 10000000, &o.n_pnes);
        else if (strcmp(k, "--server-pid") == 0)
            parse_i64(v, 1, INT32_MAX, &o.server_pid);
        else if (strcmp(k, "--repeat") == 0)
            parse_i64(v, 1, LG_MAX_REPEAT, &o.repeat);
        else if (strcmp(k, "--kill-pid") == 0)
            parse_i64(v, 1, INT32_MAX, &o.kill_pid);
        else if (strcmp(k, "--kill-at") == 0)
            o.kill_at = strtod(v, NULL);
        else if (strcmp(k, "--takeover-log") == 0)
            o.takeover_log = v;
        else if (strcmp(k, "--db") == 0)
            o.db = v;
        else if (strcmp(k, "--cluster") == 0) /* takes a value so that options stay pairs */
            o.cluster = strcmp(v, "1") == 0 || strcmp(v, "yes") == 0;
    }
    if (o.kill_pid > 0 &&
        (!(o.takeover_log || (o.cluster && o.db)) || !(o.kill_at > 0 && o.kill_at < 1) ||
         takeover_servers(o.server ? o.server : "") != 0 || T.n_servers < 2)) {
        fprintf(stderr,
                "cpns-loadgen: --kill-pid needs --server A,B (2-%d servers), "
                "--takeover-log FILE (or --cluster 1 --db URI) and --kill-at F (0 < F < 1)\n",
                LG_MAX_SERVERS);
        return 2;
    }
    if (o.cluster &&
        (!o.db || (o.kill_pid <= 0 && takeover_servers(o.server ? o.server : "") != 0))) {
        fprintf(stderr, "cpns-loadgen: --cluster 1 needs --server A,B,... (1-%d) and --db URI\n",
                LG_MAX_SERVERS);
        return 2;
    }
    if (!o.server || !g.admin || !g.pki || o.n_pnes <= 0) {
        fprintf(stderr, "usage: cpns-loadgen e2e --server HOST:PORT --admin HOST:PORT --pki DIR "
                        "--pnes N [--gws G] [--sizes N1,N2,...] [--repeat R (1-9)] [--seed S] "
                        "[--server-pid PID] [--capture-dir DIR] [--kill-pid PID --kill-at F "
                        "--takeover-log FILE] [--cluster 1 --db URI]\n");
        return 2;
    }
    lg_raise_nofile();
    G = &g;
    g.base = event_base_new();
    g.n_gws = (uint32_t)o.n_gws;
    int64_t t0 = lg_now_us();
    if (!g.base || lg_pnes_new(&g, (uint32_t)o.n_pnes) != 0) {
        fprintf(stderr, "cpns-loadgen: out of memory\n");
        return 1;
    }
    fprintf(stderr, "%u simulated PNEs ready in %.2f s\n", g.n_pnes,
            (double)(lg_now_us() - t0) / 1e6);
    if (o.kill_pid > 0 && !(T.links = calloc(g.n_gws, sizeof *T.links))) {
        fprintf(stderr, "cpns-loadgen: out of memory\n");
        return 1;
    }
    if (connect_gws(&g, T.links ? T.servers[0] : o.server, o.cluster) != 0 ||
        register_pnes(&g) != 0)
        return 1;
    int rc = 0;
    for (char *save, *tok = strtok_r(o.sizes, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t n;
        if (parse_i64(tok, 1, o.n_pnes, &n) != 0) {
            fprintf(stderr, "cpns-loadgen: size %s: 1..--pnes\n", tok);
            return 2;
        }
        if (o.kill_pid > 0) { /* one round: the kill ends the first server */
            rc = takeover_run(&g, &o, (uint32_t)n) != 0;
            break;
        }
        if (size_run(&g, &o, (uint32_t)n, "/proc/self/exe") != 0)
            rc = 1;
    }
    for (uint32_t k = 0; k < g.n_gws; k++)
        if (g.gws[k].conn)
            net_conn_close(g.gws[k].conn, false);
    takeover_free();
    lg_pnes_free(&g);
    free(g.gws);
    free(g.capture.p);
    return rc;
}
