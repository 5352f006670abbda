/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The baseline of the e2e benchmark: the frames of one measured round moved
 * through the same kind of connections (G TLS 1.3 links with the GWs'
 * certificates, 4-byte framing on libevent) with no parsing, no crypto and no
 * storage. A child process (cpns-loadgen baseline-server) plays the server:
 * it sends every captured SGroupKeyDeliveryRequest to its GW in the captured
 * order and counts the answers; the GW side answers each frame with the
 * captured response of the same position, unread. The clock runs from the
 * GWs' start signal to the child's "done", as e2e runs from POST to complete.
 *
 * Capture file: records of {uint32 gw, uint32 req_len, uint32 resp_len} in
 * host order, then the request and response payloads.
 */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "loadgen.h"

extern char **environ;

typedef struct rec {
    uint32_t gw;
    const uint8_t *req, *resp;
    uint32_t req_len, resp_len;
} rec;

/* Splits a capture into records; *n of them, or -1 for a damaged capture. */
static rec *parse_capture(const uint8_t *p, size_t len, uint32_t n_gws, size_t *n)
{
    size_t cap = 1024, cnt = 0, off = 0;
    rec *r = malloc(cap * sizeof *r);
    while (r && off < len) {
        uint32_t hdr[3];
        if (len - off < sizeof hdr)
            goto bad;
        memcpy(hdr, p + off, sizeof hdr);
        off += sizeof hdr;
        if (hdr[0] >= n_gws || len - off < (size_t)hdr[1] + hdr[2])
            goto bad;
        if (cnt == cap) {
            rec *nr = realloc(r, 2 * cap * sizeof *r);
            if (!nr)
                goto bad;
            r = nr;
            cap *= 2;
        }
        r[cnt] = (rec){hdr[0], p + off, p + off + hdr[1], hdr[1], hdr[2]};
        off += (size_t)hdr[1] + hdr[2];
        cnt++;
    }
    *n = cnt;
    return r;
bad:
    free(r);
    return NULL;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = sz > 0 ? malloc((size_t)sz) : NULL;
    if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = p ? (size_t)sz : 0;
    return p;
}

static int tls_paths(const char *pki, const char *name, char *crt, char *key, char *ca, size_t n)
{
    snprintf(crt, n, "%s/%s.crt", pki, name);
    snprintf(key, n, "%s/%s.key", pki, name);
    snprintf(ca, n, "%s/ca.crt", pki);
    return 0;
}

/* --- the server side (child process) --- */

typedef struct bsrv {
    struct event_base *base;
    rec *recs;
    size_t n_recs, answers;
    net_conn **conns; /* by GW index, once its hello arrived */
    uint32_t n_gws, hellos, open;
    bool started;
} bsrv;

static void bsrv_on_frame(net_conn *c, const uint8_t *data, size_t len, void *arg)
{
    bsrv *b = arg;
    if (!b->started) {
        /* the hello: "gw N", before the clock starts */
        char txt[16] = {0};
        memcpy(txt, data, len < sizeof txt - 1 ? len : sizeof txt - 1);
        unsigned long k = strtoul(txt + 3, NULL, 10);
        if (k < b->n_gws && !b->conns[k]) {
            b->conns[k] = c;
            b->hellos++;
        }
        if (b->hellos == b->n_gws) {
            b->started = true;
            for (size_t i = 0; i < b->n_recs; i++)
                net_conn_send(b->conns[b->recs[i].gw], b->recs[i].req, b->recs[i].req_len);
        }
        return;
    }
    if (++b->answers == b->n_recs)
        net_conn_send(b->conns[0], (const uint8_t *)"done", 4);
}

static void bsrv_on_close(net_conn *c, const char *reason, void *arg)
{
    bsrv *b = arg;
    (void)c;
    (void)reason;
    if (--b->open == 0)
        event_base_loopbreak(b->base);
}

static void bsrv_on_open(net_conn *c, void *arg)
{
    (void)c;
    (void)arg;
}

static const net_conn_cbs bsrv_cbs = {bsrv_on_open, bsrv_on_frame, bsrv_on_close};

static void bsrv_on_accept(net_conn *c, void *arg)
{
    bsrv *b = arg;
    b->open++;
    net_conn_set_cbs(c, &bsrv_cbs, b);
}

int lg_baseline_server_main(int argc, char **argv)
{
    const char *pki = NULL, *capture = NULL;
    int64_t n_gws = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--pki") == 0)
            pki = argv[i + 1];
        else if (strcmp(argv[i], "--capture") == 0)
            capture = argv[i + 1];
        else if (strcmp(argv[i], "--gws") == 0)
            parse_i64(argv[i + 1], 1, 999, &n_gws);
    }
    if (!pki || !capture || n_gws <= 0)
        return 2;
    lg_raise_nofile();
    size_t len;
    uint8_t *data = read_file(capture, &len);
    bsrv b = {.n_gws = (uint32_t)n_gws};
    b.recs = data ? parse_capture(data, len, b.n_gws, &b.n_recs) : NULL;
    b.conns = calloc(b.n_gws, sizeof *b.conns);
    b.base = event_base_new();
    char crt[512], key[512], ca[512], err[700];
    tls_paths(pki, "server", crt, key, ca, sizeof crt);
    SSL_CTX *ctx = net_tls_server_ctx(crt, key, ca, true, err, sizeof err);
    net_listener *l =
        ctx && b.recs && b.conns && b.base
            ? net_listen(b.base, "127.0.0.1:0", ctx, bsrv_on_accept, &b, err, sizeof err)
            : NULL;
    if (!l) {
        fprintf(stderr, "cpns-loadgen baseline-server: %s\n", err);
        return 1;
    }
    printf("%u\n", net_listener_port(l));
    fflush(stdout);
    event_base_dispatch(b.base);
    net_listener_free(l);
    free(b.recs);
    free(data);
    return 0;
}

/* --- the GW side (in the e2e process) --- */

typedef struct bgw {
    uint32_t idx, next;
    rec **answers; /* captured responses of this GW, in order */
    uint32_t n_answers;
    bool open;
    bool *done;
    net_conn *conn;
} bgw;

static void bgw_on_open(net_conn *c, void *arg)
{
    (void)c;
    ((bgw *)arg)->open = true;
}

static void bgw_on_frame(net_conn *c, const uint8_t *data, size_t len, void *arg)
{
    bgw *w = arg;
    if (len == 4 && memcmp(data, "done", 4) == 0) {
        *w->done = true;
        return;
    }
    if (w->next < w->n_answers) {
        const rec *r = w->answers[w->next++];
        net_conn_send(c, r->resp, r->resp_len);
    }
}

static void bgw_on_close(net_conn *c, const char *reason, void *arg)
{
    (void)c;
    bgw *w = arg;
    w->conn = NULL;
    fprintf(stderr, "cpns-loadgen: baseline GW %u closed: %s\n", w->idx, reason);
}

static const net_conn_cbs bgw_cbs = {bgw_on_open, bgw_on_frame, bgw_on_close};

double lg_baseline_run(lg *g, const char *self, const char *capture_path, uint32_t n_gws)
{
    size_t n_recs;
    rec *recs = parse_capture(g->capture.p, g->capture.len, n_gws, &n_recs);
    bgw *w = calloc(n_gws, sizeof *w);
    rec **order = calloc(n_recs ? n_recs : 1, sizeof *order);
    double seconds = -1;
    bool done = false;
    int pfd[2] = {-1, -1};
    pid_t pid = -1;
    if (!recs || !w || !order || pipe(pfd) != 0)
        goto out;
    /* each GW's answers, in the order its requests were captured */
    size_t pos = 0;
    for (uint32_t k = 0; k < n_gws; k++) {
        w[k].idx = k;
        w[k].done = &done;
        w[k].answers = order + pos;
        for (size_t i = 0; i < n_recs; i++)
            if (recs[i].gw == k)
                order[pos++] = &recs[i];
        w[k].n_answers = (uint32_t)(order + pos - w[k].answers);
    }
    char gws[16];
    snprintf(gws, sizeof gws, "%u", n_gws);
    /*
     * posix_spawn, not fork: a fork write-protects every page of this large
     * process, and each first write after it is a page fault (~12 us in this
     * VM): it made the next round's load generator 20 % slower.
     */
    char *const args[] = {"cpns-loadgen",
                          "baseline-server",
                          "--pki",
                          (char *)g->pki,
                          "--capture",
                          (char *)capture_path,
                          "--gws",
                          gws,
                          NULL};
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        goto out;
    if (posix_spawn_file_actions_adddup2(&fa, pfd[1], 1) != 0 ||
        posix_spawn_file_actions_addclose(&fa, pfd[0]) != 0 ||
        posix_spawn(&pid, self, &fa, NULL, args, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    pfd[1] = -1;
    FILE *f = pid > 0 ? fdopen(pfd[0], "r") : NULL;
    char line[32];
    bool have_port = f && fgets(line, sizeof line, f);
    if (f)
        fclose(f);
    pfd[0] = -1;
    if (!have_port)
        goto out;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%ld", strtol(line, NULL, 10));
    for (uint32_t k = 0; k < n_gws; k++) {
        char crt[512], key[512], ca[512], err[700], name[32];
        snprintf(name, sizeof name, LG_GW_PREFIX "%03u", k);
        tls_paths(g->pki, name, crt, key, ca, sizeof crt);
        SSL_CTX *ctx = net_tls_client_ctx(crt, key, ca, err, sizeof err);
        w[k].conn = ctx ? net_connect(g->base, addr, ctx, &bgw_cbs, &w[k], err, sizeof err) : NULL;
        SSL_CTX_free(ctx); /* the connection's SSL keeps its own reference */
        if (!w[k].conn || lg_run_until(g, &w[k].open, 30000) != 0) {
            fprintf(stderr, "cpns-loadgen: baseline: %s\n", err);
            goto out;
        }
    }
    int64_t t0 = lg_now_us();
    for (uint32_t k = 0; k < n_gws; k++) {
        char hello[16];
        int hl = snprintf(hello, sizeof hello, "gw %u", k);
        net_conn_send(w[k].conn, (const uint8_t *)hello, (size_t)hl);
    }
    if (lg_run_until(g, &done, 600000) == 0)
        seconds = (double)(lg_now_us() - t0) / 1e6;
out:
    for (uint32_t k = 0; w && k < n_gws; k++)
        if (w[k].conn)
            net_conn_close(w[k].conn, false);
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    if (pid > 0) {
        kill(pid, SIGTERM); /* its work is done once "done" arrived, or it failed */
        waitpid(pid, NULL, 0);
    }
    free(order);
    free(recs);
    free(w);
    return seconds;
}
