/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-loadgen: the load generator of `make bench` (docs/PERFORMANCE.md).
 *
 *   cpns-loadgen provision --db PATH|postgresql://... --master-key FILE --pnes N --seed S
 *       writes N PNEs (lg-0 .. lg-N-1, EUK from the seed) straight into a
 *       server's store (SQLite file or PostgreSQL database) before the server
 *       starts: the bulk import an operator would do, and the setup step of
 *       the benchmark, kept out of the measured time (one transaction instead
 *       of N admin calls). PostgreSQL, as cpns-server, never creates the
 *       master key: the file must exist (the one every instance shares).
 *   cpns-loadgen e2e ...            simulated GWs and PNEs against a cpns-server
 *   cpns-loadgen fanout ...         PNE connections to a real cpns-gw
 *   cpns-loadgen baseline-server .. the baseline's server side (started by e2e)
 *
 * This file holds the shared helpers: clocks, identities, the admin HTTP
 * client on evhttp, RSS and the file descriptor limit.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "daemon.h"
#include "loadgen.h"

int64_t lg_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Wall-clock milliseconds: the engines' registration Time is Unix time. */
int64_t lg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lg_pneid(uint32_t i, char out[CPNS_ID_MAX + 1])
{
    snprintf(out, CPNS_ID_MAX + 1, LG_PNE_PREFIX "%u", i);
}

int lg_pne_index(const char *PNEID, uint32_t n, uint32_t *out)
{
    size_t plen = strlen(LG_PNE_PREFIX);
    if (strncmp(PNEID, LG_PNE_PREFIX, plen) != 0 || !isdigit((unsigned char)PNEID[plen]))
        return -1;
    char *end;
    unsigned long v = strtoul(PNEID + plen, &end, 10);
    if (*end || v >= n)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int lg_euk(const char *seed, uint32_t i, uint8_t EUK[CPNS_KEY_LEN])
{
    char info[CPNS_ID_MAX + 1];
    lg_pneid(i, info);
    return cpns_hkdf_sha256(NULL, 0, (const uint8_t *)seed, strlen(seed), (const uint8_t *)info,
                            strlen(info), EUK, CPNS_KEY_LEN);
}

int lg_pnes_new(lg *g, uint32_t n)
{
    g->pnes = calloc(n, sizeof *g->pnes);
    if (!g->pnes)
        return -1;
    g->n_pnes = n;
    if (cpns_msg_decoder_new(&g->decoder) != 0 || cpns_gcm_new(&g->gcm) != 0 ||
        cpns_sha256_new(&g->sha256) != 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        char PNEID[CPNS_ID_MAX + 1];
        uint8_t EUK[CPNS_KEY_LEN];
        lg_pneid(i, PNEID);
        if (lg_euk(g->seed, i, EUK) != 0 || cpns_keystore_mem_new(&g->pnes[i].ks) != 0)
            return -1;
        cpns_pne_config cfg = {
            .PNEID = PNEID,
            .EUK = EUK,
            .keystore = g->pnes[i].ks,
            .register_timeout_ms = 2000,
            .decoder = g->decoder,
            .gcm = g->gcm,
            .sha256 = g->sha256,
        };
        int rv = cpns_pne_new(&g->pnes[i].eng, &cfg);
        cpns_wipe(EUK, sizeof EUK);
        if (rv != 0)
            return -1;
    }
    return 0;
}

void lg_pnes_free(lg *g)
{
    for (uint32_t i = 0; g->pnes && i < g->n_pnes; i++) {
        cpns_pne_free(g->pnes[i].eng);
        cpns_keystore_free(g->pnes[i].ks);
    }
    free(g->pnes);
    g->pnes = NULL;
    cpns_msg_decoder_free(g->decoder);
    g->decoder = NULL;
    cpns_gcm_free(g->gcm);
    g->gcm = NULL;
    cpns_sha256_free(g->sha256);
    g->sha256 = NULL;
}

int lg_buf_reserve(lg_buf *b, size_t cap)
{
    if (cap <= b->cap)
        return 0;
    uint8_t *np = realloc(b->p, cap);
    if (!np)
        return -1;
    /* touch every new page now, so that the page faults are not paid during the round */
    memset(np + b->cap, 0, cap - b->cap);
    b->p = np;
    b->cap = cap;
    return 0;
}

int lg_buf_add(lg_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 20;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* Thousands of connections need thousands of descriptors; root may raise the hard limit too. */
void lg_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    struct rlimit want = {.rlim_cur = 262144, .rlim_max = 262144};
    if (rl.rlim_max >= want.rlim_max || setrlimit(RLIMIT_NOFILE, &want) != 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

long lg_rss_kb(long pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    size_t flen = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            kb = strtol(line + flen + 1, NULL, 10);
    fclose(f);
    return kb;
}

double lg_cpu_s(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* fields 14 and 15 (utime, stime) count after the ")" that ends the command name */
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void ensure_tick(lg *g)
{
    if (!g->tick) {
        g->tick = event_new(g->base, -1, EV_PERSIST, on_tick, g);
        struct timeval tv = {0, 5000};
        event_add(g->tick, &tv);
    }
}

int lg_run_until(lg *g, const bool *flag, int64_t timeout_ms)
{
    ensure_tick(g);
    int64_t end = lg_now_us() + timeout_ms * 1000;
    while (!*flag && !g->failed) {
        if (lg_now_us() > end)
            return -1;
        event_base_loop(g->base, EVLOOP_ONCE);
    }
    return g->failed ? -1 : 0;
}

int lg_run_until_count(lg *g, const uint32_t *count, uint32_t want, int64_t timeout_ms)
{
    ensure_tick(g);
    int64_t end = lg_now_us() + timeout_ms * 1000;
    while (*count < want && !g->failed) {
        if (lg_now_us() > end)
            return -1;
        event_base_loop(g->base, EVLOOP_ONCE);
    }
    return g->failed ? -1 : 0;
}

int lg_wait_responses(lg *g, const lg_http_req *post, uint32_t want, int64_t timeout_ms)
{
    ensure_tick(g);
    int64_t end = lg_now_us() + timeout_ms * 1000;
    while (g->responses < want && !g->failed) {
        if (lg_now_us() > end || (post->done && post->status != 201))
            return -1;
        event_base_loop(g->base, EVLOOP_ONCE);
    }
    return g->failed ? -1 : 0;
}

/* --- the admin API --- */

static void on_http_done(struct evhttp_request *req, void *arg)
{
    lg_http_req *h = arg;
    h->done = true;
    if (!req)
        return;
    h->status = evhttp_request_get_response_code(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    h->len = evbuffer_get_length(in);
    h->body = malloc(h->len + 1);
    if (h->body) {
        evbuffer_remove(in, h->body, h->len);
        h->body[h->len] = '\0';
    }
}

int lg_http_start(lg *g, const char *method, const char *path, const char *body, size_t body_len,
                  lg_http_req *h)
{
    static struct evhttp_connection *conn; /* one keep-alive connection for the process */
    *h = (lg_http_req){0};
    char host[256];
    uint16_t port;
    if (addr_parse(g->admin, host, sizeof host, &port) != 0)
        return -1;
    if (!conn) {
        conn = evhttp_connection_base_new(g->base, NULL, host, port);
        if (!conn)
            return -1;
        evhttp_connection_set_timeout(conn, 600);
    }
    struct evhttp_request *req = evhttp_request_new(on_http_done, h);
    if (!req)
        return -1;
    struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
    evhttp_add_header(hdr, "Host", host);
    if (body) {
        evhttp_add_header(hdr, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), body, body_len);
    }
    enum evhttp_cmd_type cmd = strcmp(method, "POST") == 0     ? EVHTTP_REQ_POST
                               : strcmp(method, "DELETE") == 0 ? EVHTTP_REQ_DELETE
                                                               : EVHTTP_REQ_GET;
    return evhttp_make_request(conn, req, cmd, path) == 0 ? 0 : -1;
}

int lg_http_do(lg *g, const char *method, const char *path, const char *body, size_t body_len,
               lg_http_req *h)
{
    if (lg_http_start(g, method, path, body, body_len, h) != 0)
        return -1;
    if (lg_run_until(g, &h->done, 600000) != 0 || h->status == 0)
        return -1;
    return 0;
}

int64_t lg_delivered(lg *g)
{
    lg_http_req h;
    int64_t v = -1;
    if (lg_http_do(g, "GET", "/metrics", NULL, 0, &h) == 0 && h.status == 200 && h.body) {
        const char *name = "\ncpns_deliveries_delivered_total ";
        const char *p = strstr(h.body, name);
        if (p)
            v = strtoll(p + strlen(name), NULL, 10);
    }
    free(h.body);
    return v;
}

long lg_file_size(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/*
 * Waits for the server's "key distribution complete" log line of SGID past
 * offset `from` of its log: the engine's own signal, free for the server,
 * where polling /metrics would cost it a walk over every PNE per poll.
 */
int lg_wait_log_complete(lg *g, const char *path, long from, const char *SGID, int64_t timeout_ms)
{
    char needle[CPNS_ID_MAX + 16]; /* the daemon logs " SGID=<id>: text" */
    snprintf(needle, sizeof needle, " SGID=%s:", SGID);
    int64_t end = lg_now_us() + timeout_ms * 1000;
    char line[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    fseek(f, from, SEEK_SET);
    long pos = from;
    while (lg_now_us() < end && !g->failed) {
        if (fgets(line, sizeof line, f)) {
            size_t n = strlen(line);
            if (n && line[n - 1] != '\n') { /* half a line: read it again when complete */
                fseek(f, pos, SEEK_SET);
            } else {
                pos += (long)n;
                if (strstr(line, "key distribution complete") && strstr(line, needle)) {
                    fclose(f);
                    return 0;
                }
                continue;
            }
        }
        clearerr(f);
        event_base_loop(g->base, EVLOOP_NONBLOCK);
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    fclose(f);
    return -1;
}

char *lg_sg_body(const char *SGID, uint32_t first, uint32_t n, size_t *len)
{
    size_t cap = 64 + strlen(SGID) + (size_t)n * 24;
    char *b = malloc(cap);
    if (!b)
        return NULL;
    size_t off = (size_t)snprintf(b, cap, "{\"sgid\":\"%s\",\"members\":[", SGID);
    for (uint32_t i = 0; i < n; i++)
        off += (size_t)snprintf(b + off, cap - off, "%s\"" LG_PNE_PREFIX "%u\"", i ? "," : "",
                                first + i);
    off += (size_t)snprintf(b + off, cap - off, "]}");
    *len = off;
    return b;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v in place. */
double lg_percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* --- provision --- */

static bool is_pg_uri(const char *db)
{
    return strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0;
}

/*
 * The store behind --db, as cpns-server opens it: PostgreSQL without an
 * instance (no lease, no fencing: the bulk import runs before any server),
 * else SQLite. 0, or the op's error with a message in err.
 */
static int provision_open(cpns_store **st, const char *db, bool pg, const uint8_t *mk, char *err,
                          size_t errlen)
{
    if (!pg)
        return cpns_store_sqlite_open(st, db, mk, err, errlen);
    cpns_store_pg_config cfg = {.conninfo = db, .master_key = mk, .instance_id = NULL};
    return cpns_store_pg_open(st, &cfg, err, errlen);
}

static int provision_main(int argc, char **argv)
{
    const char *db = NULL, *master = NULL, *seed = "cpns-bench";
    int64_t n = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--db") == 0)
            db = argv[i + 1];
        else if (strcmp(argv[i], "--master-key") == 0)
            master = argv[i + 1];
        else if (strcmp(argv[i], "--seed") == 0)
            seed = argv[i + 1];
        else if (strcmp(argv[i], "--pnes") == 0)
            parse_i64(argv[i + 1], 1, 10000000, &n);
    }
    if (!db || !master || n <= 0) {
        fprintf(stderr, "usage: cpns-loadgen provision --db PATH|postgresql://... --master-key "
                        "FILE --pnes N [--seed S]\n");
        return 2;
    }
    bool pg = is_pg_uri(db);
    uint8_t mk[CPNS_KEY_LEN];
    char err[600];
    if (keyfile_read(master, mk, err, sizeof err) != 0) {
        /* SQLite: the first start makes the key, as cpns-server does; PostgreSQL never does */
        if (pg || cpns_random(NULL, mk, sizeof mk) != 0 ||
            keyfile_write(master, mk, err, sizeof err)) {
            fprintf(stderr, "cpns-loadgen: %s%s\n", err,
                    pg ? " (with PostgreSQL the master key file must exist)" : "");
            return 1;
        }
    }
    cpns_store *st;
    int rv = provision_open(&st, db, pg, mk, err, sizeof err);
    cpns_wipe(mk, sizeof mk);
    if (rv != 0) {
        fprintf(stderr, "cpns-loadgen: %s\n", *err ? err : cpns_strerror(rv));
        return 1;
    }
    int64_t t0 = lg_now_us();
    for (uint32_t i = 0; rv == 0 && i < (uint32_t)n; i++) {
        cpns_store_pne p = {0};
        lg_pneid(i, p.PNEID);
        rv = lg_euk(seed, i, p.EUK);
        if (rv == 0)
            rv = st->ops->put_pne(st, &p);
        cpns_wipe(p.EUK, sizeof p.EUK);
    }
    if (rv == 0)
        rv = st->ops->commit(st);
    if (rv != 0)
        fprintf(stderr, "cpns-loadgen: provisioning failed: %s %s\n", cpns_strerror(rv),
                pg ? cpns_store_pg_errmsg(st) : cpns_store_sqlite_errmsg(st));
    else
        fprintf(stderr, "provisioned %lld PNEs in %.2f s (%s)\n", (long long)n,
                (double)(lg_now_us() - t0) / 1e6, pg ? "PostgreSQL" : "SQLite");
    cpns_store_free(st);
    return rv == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    /*
     * A write to a connection the other side closed (an instance killed by
     * --kill-pid, a GW gone) is an error on that connection, not the end of
     * the run: without this, SIGPIPE ended the takeover_cluster bench row
     * with status 141.
     */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "usage: cpns-loadgen provision|e2e|fanout|baseline-server OPTIONS\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "provision") == 0)
        return provision_main(argc - 1, argv + 1);
    if (strcmp(cmd, "e2e") == 0)
        return lg_e2e_main(argc - 1, argv + 1);
    if (strcmp(cmd, "fanout") == 0)
        return lg_fanout_main(argc - 1, argv + 1);
    if (strcmp(cmd, "baseline-server") == 0)
        return lg_baseline_server_main(argc - 1, argv + 1);
    fprintf(stderr, "cpns-loadgen: unknown command '%s'\n", cmd);
    return 2;
}
