/*
 * cpns-loadgen fanout: N simulated PNEs, each on its own TCP connection to a
 * real cpns-gw (as cpns-pne would be), register through it and receive a
 * Group Key through it. The GW's memory per attached PNE is the growth of
 * its RSS from before the first connection to all N registered, divided by
 * N; its forwarding rate is the frames it carried (one request and one
 * response per member) over the time from POST /v1/sgs to complete.
 * One line on stdout: BENCH {"name":"gw_fanout",...}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "loadgen.h"

typedef struct fan {
    lg *g;
    uint32_t opened, closed;
} fan;

static fan *F;

static void flush_pne(lg_pne *p)
{
    cpns_out out;
    while (cpns_pne_pop(p->eng, &out) == 1)
        if (p->conn)
            net_conn_send(p->conn, out.data, out.len);
}

static void pne_on_open(net_conn *c, void *arg)
{
    lg_pne *p = arg;
    (void)c;
    F->opened++;
    cpns_pne_link_up(p->eng, lg_now_ms());
    flush_pne(p);
}

static void pne_on_frame(net_conn *c, const uint8_t *data, size_t len, void *arg)
{
    lg_pne *p = arg;
    lg *g = F->g;
    (void)c;
    cpns_pne_state before = cpns_pne_get_state(p->eng);
    cpns_pne_recv(p->eng, data, len, lg_now_ms());
    flush_pne(p);
    if (before != CPNS_PNE_REGISTERED && cpns_pne_get_state(p->eng) == CPNS_PNE_REGISTERED)
        g->pnes_registered++;
    else if (before == CPNS_PNE_REGISTERED)
        g->responses++;
}

static void pne_on_close(net_conn *c, const char *reason, void *arg)
{
    lg_pne *p = arg;
    (void)c;
    p->conn = NULL;
    if (F->closed++ == 0)
        fprintf(stderr, "cpns-loadgen: a PNE connection closed: %s\n", reason);
    F->g->failed = true;
}

static const net_conn_cbs pne_cbs = {pne_on_open, pne_on_frame, pne_on_close};

int lg_fanout_main(int argc, char **argv)
{
    const char *gw_addr = NULL;
    int64_t n = 0, gw_pid = 0;
    lg g = {.seed = "cpns-bench"};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--gw") == 0)
            gw_addr = v;
        else if (strcmp(k, "--admin") == 0)
            g.admin = v;
        else if (strcmp(k, "--server-log") == 0)
            g.server_log = v;
        else if (strcmp(k, "--seed") == 0)
            g.seed = v;
        else if (strcmp(k, "--pnes") == 0)
            parse_i64(v, 1, 1000000, &n);
        else if (strcmp(k, "--gw-pid") == 0)
            parse_i64(v, 1, INT32_MAX, &gw_pid);
    }
    if (!gw_addr || !g.admin || n <= 0 || gw_pid <= 0) {
        fprintf(stderr, "usage: cpns-loadgen fanout --gw HOST:PORT --admin HOST:PORT --pnes N "
                        "--gw-pid PID [--seed S]\n");
        return 2;
    }
    lg_raise_nofile();
    fan f = {.g = &g};
    F = &f;
    g.base = event_base_new();
    if (!g.base || lg_pnes_new(&g, (uint32_t)n) != 0)
        return 1;
    long rss0 = lg_rss_kb(gw_pid, "VmRSS");
    int64_t t0 = lg_now_us();
    for (uint32_t i = 0; i < g.n_pnes; i++) {
        char err[300];
        g.pnes[i].conn = net_connect(g.base, gw_addr, NULL, &pne_cbs, &g.pnes[i], err, sizeof err);
        if (!g.pnes[i].conn) {
            fprintf(stderr, "cpns-loadgen: PNE %u: %s\n", i, err);
            return 1;
        }
        /* a few hundred at a time, so that the GW's accept queue keeps up */
        if (i % 256 == 255)
            while (f.opened + 64 < i && !g.failed)
                event_base_loop(g.base, EVLOOP_ONCE);
    }
    int64_t last_retry = lg_now_us();
    while (g.pnes_registered < g.n_pnes && !g.failed) {
        if (lg_now_us() - t0 > 300 * 1000000LL) {
            fprintf(stderr, "cpns-loadgen: %u of %u PNEs registered through the GW\n",
                    g.pnes_registered, g.n_pnes);
            return 1;
        }
        lg_run_until_count(&g, &g.pnes_registered, g.n_pnes, 500);
        if (lg_now_us() - last_retry < 500000)
            continue;
        last_retry = lg_now_us();
        int64_t now = lg_now_ms();
        for (uint32_t i = 0; i < g.n_pnes; i++)
            if (cpns_pne_get_expiry(g.pnes[i].eng) <= now) {
                cpns_pne_handle_expiry(g.pnes[i].eng, now);
                flush_pne(&g.pnes[i]);
            }
    }
    if (g.failed)
        return 1;
    long rss1 = lg_rss_kb(gw_pid, "VmRSS");
    fprintf(stderr, "%u PNEs attached to the GW and registered in %.2f s; GW RSS %ld -> %ld kB\n",
            g.n_pnes, (double)(lg_now_us() - t0) / 1e6, rss0, rss1);

    char SGID[64];
    snprintf(SGID, sizeof SGID, "fanout-%d", (int)getpid());
    size_t body_len;
    char *body = lg_sg_body(SGID, 0, g.n_pnes, &body_len);
    int64_t before = lg_delivered(&g);
    lg_http_req post;
    g.responses = 0;
    long log_from = lg_file_size(g.server_log);
    int64_t t1 = lg_now_us();
    if (!body || before < 0 ||
        lg_http_start(&g, "POST", "/v1/service-groups", body, body_len, &post) != 0)
        return 1;
    int rv = lg_wait_responses(&g, &post, g.n_pnes, 300000);
    int64_t done = -1;
    if (rv == 0 && log_from >= 0)
        rv = lg_wait_log_complete(&g, g.server_log, log_from, SGID, 300000);
    while (rv == 0 && log_from < 0 && (done = lg_delivered(&g)) >= 0 && done - before < g.n_pnes)
        ;
    double seconds = (double)(lg_now_us() - t1) / 1e6;
    if (rv == 0 && log_from >= 0 && (done = lg_delivered(&g)) - before < g.n_pnes)
        done = -1;
    if (rv == 0)
        rv = lg_run_until(&g, &post.done, 60000);
    if (rv != 0 || post.status != 201 || done < 0) {
        fprintf(stderr, "cpns-loadgen: fanout group failed (POST %d, %u responses)\n", post.status,
                g.responses);
        return 1;
    }
    long rss2 = lg_rss_kb(gw_pid, "VmRSS");
    printf("BENCH {\"name\":\"gw_fanout\",\"pne_connections\":%u,\"rss_kb_per_pne\":%.2f,"
           "\"gw_rss_mb\":%.1f,\"gw_rss_mb_idle\":%.1f,\"msgs_per_s\":%.0f,\"seconds\":%.3f}\n",
           g.n_pnes, (double)(rss1 - rss0) / (double)g.n_pnes, (double)rss2 / 1024.0,
           (double)rss0 / 1024.0, 2.0 * g.n_pnes / seconds, seconds);
    fflush(stdout);
    for (uint32_t i = 0; i < g.n_pnes; i++)
        if (g.pnes[i].conn)
            net_conn_close(g.pnes[i].conn, false);
    free(body);
    free(post.body);
    lg_pnes_free(&g);
    return 0;
}
