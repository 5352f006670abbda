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
 */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "loadgen.h"

typedef struct e2e_opts {
    const char *server, *capture_dir;
    int64_t n_gws, n_pnes, server_pid, repeat;
    char sizes[256];
} e2e_opts;

#define LG_MAX_REPEAT 9

#define REG_WINDOW 2000u
/* Capture bytes per member until a round measured it (record header, request, response) */
#define LG_CAPTURE_GUESS 1024u

static lg *G; /* for the callbacks' arg only; no other global */

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
    cpns_pne_recv(p->eng, data, len, lg_now_ms());
    pne_flush(g, p, c, data, len);
    if (g->lat_ms && g->responses < g->round_members)
        g->lat_ms[g->responses] = (double)(lg_now_us() - g->t0_us) / 1000.0;
    g->responses++;
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
    fprintf(stderr, "cpns-loadgen: GW %u connection closed: %s\n", gw->idx, reason);
    G->failed = true;
}

static const net_conn_cbs gw_cbs = {gw_on_open, gw_on_frame, gw_on_close};

static int connect_gws(lg *g, const char *server)
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
        g->gws[k].conn = net_connect(g->base, server, ctx, &gw_cbs, &g->gws[k], err, sizeof err);
        SSL_CTX_free(ctx); /* the connection's SSL keeps its own reference */
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
    if (rv == 0 && log_from >= 0)
        rv = lg_wait_log_complete(g, g->server_log, log_from, SGID, 600000);
    while (rv == 0 && log_from < 0 && (done = lg_delivered(g)) >= 0 && done - before < members)
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
    }
    if (!o.server || !g.admin || !g.pki || o.n_pnes <= 0) {
        fprintf(stderr, "usage: cpns-loadgen e2e --server HOST:PORT --admin HOST:PORT --pki DIR "
                        "--pnes N [--gws G] [--sizes N1,N2,...] [--repeat R (1-9)] [--seed S] "
                        "[--server-pid PID] [--capture-dir DIR]\n");
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
    if (connect_gws(&g, o.server) != 0 || register_pnes(&g) != 0)
        return 1;
    int rc = 0;
    for (char *save, *tok = strtok_r(o.sizes, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t n;
        if (parse_i64(tok, 1, o.n_pnes, &n) != 0) {
            fprintf(stderr, "cpns-loadgen: size %s: 1..--pnes\n", tok);
            return 2;
        }
        if (size_run(&g, &o, (uint32_t)n, "/proc/self/exe") != 0)
            rc = 1;
    }
    for (uint32_t k = 0; k < g.n_gws; k++)
        if (g.gws[k].conn)
            net_conn_close(g.gws[k].conn, false);
    lg_pnes_free(&g);
    free(g.gws);
    free(g.capture.p);
    return rc;
}
