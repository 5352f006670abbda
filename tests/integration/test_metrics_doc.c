/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue #13 item 8: every metric documented. A cpns-server and a cpns-gw
 * with --metrics run a delivery to one PNE; then every metric each daemon
 * prints (its "# TYPE" lines) must be a row of docs/METRICS.md, in the
 * daemon's section or in "Both daemons", with the same type, and every row
 * must be printed by its daemon (rows marked "Only with PostgreSQL" excepted: no
 * PostgreSQL here). The GW's counters are checked against what happened:
 * one PNE attached, its registration and delivery forwarded each way, the
 * uplink up to the one server listed, cpns_build_info with the versions.
 *
 * Then the rows marked "Only with PostgreSQL": two cpns-servers on a private
 * PostgreSQL (tests/support/pg.h), one active/standby, one --cluster, must
 * between them print every one of those rows (a row "and `--cluster`" by the
 * cluster instance), and nothing either prints may be missing from the doc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cpns/cpns.h"
#include "pg.h"

#define SGID "sg-metrics"
#define MAX_METRICS 128

typedef struct metric {
    char name[96];
    char type[16];
    const char *line; /* the doc row, for its notes */
} metric;

typedef struct metric_set {
    metric m[MAX_METRICS];
    size_t n;
} metric_set;

static void add(metric_set *s, const char *name, size_t name_len, const char *type, size_t type_len,
                const char *line)
{
    if (s->n == MAX_METRICS || name_len >= sizeof s->m[0].name || type_len >= sizeof s->m[0].type)
        fail_msg("too many or too long metrics: %.*s", (int)name_len, name);
    metric *m = &s->m[s->n++];
    memcpy(m->name, name, name_len);
    m->name[name_len] = '\0';
    memcpy(m->type, type, type_len);
    m->type[type_len] = '\0';
    m->line = line;
}

static const metric *find(const metric_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->m[i].name, name) == 0)
            return &s->m[i];
    return NULL;
}

/* The "# TYPE name type" lines of a scrape; every sample must belong to one of them. */
static void parse_scrape(const char *text, metric_set *s)
{
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > 7 && strncmp(p, "# TYPE ", 7) == 0) {
            const char *name = p + 7;
            const char *sp = memchr(name, ' ', len - 7);
            assert_non_null(sp);
            add(s, name, (size_t)(sp - name), sp + 1, len - (size_t)(sp + 1 - p), NULL);
        } else if (len && p[0] != '#') {
            /* A sample: its name (before '{' or ' ') is a declared metric or its series. */
            size_t n = strcspn(p, "{ ");
            int ok = 0;
            for (size_t i = 0; i < s->n && !ok; i++) {
                size_t k = strlen(s->m[i].name);
                ok = n >= k && strncmp(p, s->m[i].name, k) == 0 &&
                     (n == k || (strcmp(s->m[i].type, "histogram") == 0 &&
                                 (strncmp(p + k, "_bucket", n - k) == 0 ||
                                  strncmp(p + k, "_sum", n - k) == 0 ||
                                  strncmp(p + k, "_count", n - k) == 0)));
            }
            if (!ok)
                fail_msg("sample without a # TYPE line: %.*s", (int)len, p);
        }
        p += len + (eol ? 1 : 0);
    }
}

/* Trims blanks off [*b, *e). */
static void trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

/*
 * The rows of docs/METRICS.md ("| `name` | type | labels | meaning |"), by
 * section: "Both daemons" goes to both sets.
 */
static void parse_doc(const char *text, metric_set *server, metric_set *gw)
{
    int section = 0; /* 1 both, 2 server, 3 gw */
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (strncmp(p, "## ", 3) == 0) {
            section = strncmp(p, "## Both daemons", 15) == 0  ? 1
                      : strncmp(p, "## cpns-server", 14) == 0 ? 2
                      : strncmp(p, "## cpns-gw", 10) == 0     ? 3
                                                              : 0;
        } else if (section && len > 3 && strncmp(p, "| `", 3) == 0) {
            const char *name = p + 3;
            const char *tick = memchr(name, '`', len - 3);
            assert_non_null(tick);
            const char *cell = memchr(tick, '|', len - (size_t)(tick - p));
            assert_non_null(cell);
            const char *tb = cell + 1;
            const char *te = memchr(tb, '|', len - (size_t)(tb - p));
            assert_non_null(te);
            trim(&tb, &te);
            if (section == 1 || section == 2)
                add(server, name, (size_t)(tick - name), tb, (size_t)(te - tb), p);
            if (section == 1 || section == 3)
                add(gw, name, (size_t)(tick - name), tb, (size_t)(te - tb), p);
        }
        p += len + (eol ? 1 : 0);
    }
}

static bool row_has(const metric *m, const char *note)
{
    const char *eol = strchr(m->line, '\n');
    size_t len = eol ? (size_t)(eol - m->line) : strlen(m->line);
    char *row = strndup(m->line, len);
    bool has = strstr(row, note) != NULL;
    free(row);
    return has;
}

static void compare(const char *daemon, const metric_set *printed, const metric_set *doc)
{
    for (size_t i = 0; i < printed->n; i++) {
        const metric *d = find(doc, printed->m[i].name);
        if (!d)
            fail_msg("%s prints %s, which docs/METRICS.md does not list for it", daemon,
                     printed->m[i].name);
        if (strcmp(d->type, printed->m[i].type) != 0)
            fail_msg("%s: %s is a %s, docs/METRICS.md says %s", daemon, printed->m[i].name,
                     printed->m[i].type, d->type);
    }
    for (size_t i = 0; i < doc->n; i++)
        if (!find(printed, doc->m[i].name) && !row_has(&doc->m[i], "Only with PostgreSQL"))
            fail_msg("docs/METRICS.md lists %s for %s, which does not print it", doc->m[i].name,
                     daemon);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[4096];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (!buf)
        buf = calloc(1, 1);
    buf[len] = '\0';
    return buf;
}

static char *scrape(uint16_t port)
{
    char *body = NULL;
    int status = h_http(port, "GET", "/metrics", NULL, NULL, &body);
    if (status != 200)
        fail_msg("GET /metrics on port %u: %d", port, status);
    assert_non_null(body);
    return body;
}

/* The value of the sample line that starts with `series ` (name and labels). */
static long long sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atoll(p + n + 1);
    fail_msg("no sample %s in:\n%s", series, text);
    return -1;
}

static void test_metrics_doc(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, NULL);
    cl_pne pne = {0};
    cl_pne_provision(h, &s, &pne, "pne-1");

    cl_gw g = {.PNGWID = "gw-1", .PNID = "pn-1"};
    g.port = h_free_port();
    g.listen = h_fmt(h, "127.0.0.1:%u", g.port);
    uint16_t mport = h_free_port();
    g.p = h_start(h, "gw", "cpns-gw", "--id", g.PNGWID, "--pnid", g.PNID, "--server", s.listen,
                  "--listen", g.listen, "--insecure", "--metrics", h_fmt(h, "127.0.0.1:%u", mport),
                  NULL);
    h_wait_port(h, g.p, g.port, CL_START_MS);
    h_wait_http_ok(h, g.p, mport, "/metrics", CL_START_MS);
    cl_pne_start(h, &pne, &g);
    cl_wait_registered(h, &s, "pne-1", 30000);
    h_out o = cl_ctl(h, &s, "sg", "create", SGID, "pne-1", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, SGID, 30, NULL), 0);

    char *gw_text = scrape(mport);
    char *srv_text = scrape(s.admin_port);
    h_note(h, "cpns-gw /metrics:\n%s", gw_text);

    /* What happened shows in the GW's counters. */
    assert_int_equal(sample(gw_text, "cpns_gw_pnes_attached"), 1);
    assert_int_equal(sample(gw_text, "cpns_gw_pne_connections"), 1);
    /* To the PNE: its registration response and the delivery request; back: the two answers. */
    assert_true(sample(gw_text, "cpns_gw_frames_forwarded_total{direction=\"to_pne\"}") >= 2);
    assert_true(sample(gw_text, "cpns_gw_frames_forwarded_total{direction=\"to_server\"}") >= 2);
    assert_int_equal(sample(gw_text, "cpns_gw_delivery_answers_total{return=\"6\"}"), 0);
    assert_int_equal(sample(gw_text, h_fmt(h, "cpns_gw_uplink_up{server=\"%s\"}", s.listen)), 1);
    assert_int_equal(sample(gw_text, h_fmt(h, "cpns_gw_uplink_connected{server=\"%s\"}", s.listen)),
                     1);
    assert_non_null(strstr(gw_text, "cpns_build_info{version=\""));
    assert_non_null(strstr(srv_text, "cpns_build_info{version=\""));
    assert_non_null(strstr(srv_text, "\",openssl=\""));

    /* Every metric documented, and every documented metric printed. */
    metric_set printed_gw = {0}, printed_srv = {0}, doc_gw = {0}, doc_srv = {0};
    parse_scrape(gw_text, &printed_gw);
    parse_scrape(srv_text, &printed_srv);
    char *doc = read_file(h_fmt(h, "%s/docs/METRICS.md", h->src_dir));
    parse_doc(doc, &doc_srv, &doc_gw);
    assert_true(doc_srv.n > 10);
    assert_true(doc_gw.n > 5);
    compare("cpns-server", &printed_srv, &doc_srv);
    compare("cpns-gw", &printed_gw, &doc_gw);

    /* The GW's endpoint serves /metrics only, and GET only. */
    char *body = NULL;
    assert_int_equal(h_http(mport, "GET", "/", NULL, NULL, &body), 404);
    free(body);
    body = NULL;
    assert_int_equal(h_http(mport, "POST", "/metrics", NULL, "x", &body), 405);
    free(body);

    free(doc);
    free(gw_text);
    free(srv_text);
    cl_stop_clean(pne.p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

/* A cpns-server on PostgreSQL database uri (--cluster or active/standby), up and healthy. */
static cl_server *start_pg_server(harness *h, const char *uri, const char *id, bool cluster)
{
    cl_server *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->listen_port = h_free_port();
    do
        s->admin_port = h_free_port();
    while (s->admin_port == s->listen_port);
    s->listen = h_fmt(h, "127.0.0.1:%u", (unsigned)s->listen_port);
    s->admin = h_fmt(h, "127.0.0.1:%u", (unsigned)s->admin_port);
    /* PostgreSQL: the master key is made by the operator (base64 of 32 random bytes, 0600). */
    uint8_t key[CPNS_KEY_LEN];
    char b64[64];
    assert_int_equal(cpns_random(NULL, key, sizeof key), 0);
    assert_int_equal(cpns_b64_encode(key, sizeof key, b64, sizeof b64), CPNS_B64_LEN(CPNS_KEY_LEN));
    cpns_wipe(key, sizeof key);
    char *mk = h_path(h, h_fmt(h, "%s.key", id));
    h_write_file(mk, h_fmt(h, "%s\n", b64), 0600);
    cpns_wipe(b64, sizeof b64);
    s->p = h_start(h, h_fmt(h, "server-%s", id), "cpns-server", "--db", uri, "--master-key", mk,
                   "--instance-id", id, "--insecure", "--listen", s->listen, "--admin", s->admin,
                   cluster ? "--cluster" : NULL, NULL);
    h_wait_http_ok(h, s->p, s->admin_port, "/healthz", CL_START_MS);
    return s;
}

static void test_metrics_doc_postgresql(void **state)
{
    harness *h = *state;
    test_pg pg;
    if (test_pg_start(&pg) != 0)
        fail_msg("cannot start a private PostgreSQL (scripts/pg-tmp.sh)");
    char ha_uri[256], cluster_uri[256];
    assert_int_equal(test_pg_create_db(&pg, ha_uri, sizeof ha_uri), 0);
    assert_int_equal(test_pg_create_db(&pg, cluster_uri, sizeof cluster_uri), 0);
    cl_server *ha = start_pg_server(h, ha_uri, "ha-a", false);
    cl_server *cl = start_pg_server(h, cluster_uri, "cluster-a", true);
    char *ha_text = scrape(ha->admin_port);
    char *cl_text = scrape(cl->admin_port);
    h_note(h, "cpns-server --cluster /metrics:\n%s", cl_text);

    metric_set printed_ha = {0}, printed_cl = {0}, doc_gw = {0}, doc_srv = {0};
    parse_scrape(ha_text, &printed_ha);
    parse_scrape(cl_text, &printed_cl);
    char *doc = read_file(h_fmt(h, "%s/docs/METRICS.md", h->src_dir));
    parse_doc(doc, &doc_srv, &doc_gw);
    compare("cpns-server (PostgreSQL)", &printed_ha, &doc_srv);
    compare("cpns-server --cluster", &printed_cl, &doc_srv);
    size_t pg_rows = 0;
    for (size_t i = 0; i < doc_srv.n; i++) {
        const metric *m = &doc_srv.m[i];
        if (!row_has(m, "Only with PostgreSQL"))
            continue;
        pg_rows++;
        bool cluster_only = row_has(m, "Only with PostgreSQL and `--cluster`");
        if (cluster_only ? !find(&printed_cl, m->name)
                         : !find(&printed_ha, m->name) && !find(&printed_cl, m->name))
            fail_msg("docs/METRICS.md lists %s (%s), which no cpns-server on PostgreSQL prints",
                     m->name, cluster_only ? "--cluster" : "PostgreSQL");
    }
    assert_true(pg_rows >= 5);

    free(doc);
    free(ha_text);
    free(cl_text);
    cl_stop_clean(cl->p);
    cl_stop_clean(ha->p);
    free(cl);
    free(ha);
    test_pg_stop(&pg);
    h_passed(h);
}

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_doc, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_doc_postgresql, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
