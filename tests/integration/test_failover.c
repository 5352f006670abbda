/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Failover (issue #11 item 6): two cpns-server instances on one PostgreSQL,
 * the active one killed (SIGKILL) in the middle of a 1,000-member
 * distribution; the standby takes the lease over, the GWs move to it, and the
 * group completes with one key per version, the same everywhere.
 *
 * The cast: a private PostgreSQL (tests/support/pg.h); instances inst-a
 * (started first: active) and inst-b (standby) with --lease-ttl 3 over TLS
 * (scripts/pki.sh); G real cpns-gw processes, each with --server A,B; 1,000
 * simulated PNEs of `cpns-loadgen fanout` in serve mode, spread over the GWs,
 * which report at the end every key each PNE ever stored. Until the kill the
 * PNEs answer at most ANSWER_RATE delivery requests a second (slow devices),
 * so that the distribution lasts a few seconds on any machine, and no PNE
 * beyond the first 40 % is handed one (--answer-hold), so that however late
 * the test sees 30 % the kill lands in the middle rather than after it; then
 * (SIGUSR1) at full speed.
 *
 * Invariants after the takeover:
 *  - the server's view (on B): every member delivered, key version 1, the
 *    fingerprint A announced when it created the SG;
 *  - PostgreSQL: one sg_key row for the SG (version 1), every member row
 *    delivered under version 1;
 *  - each PNE stored exactly one key for the SG, version 1, and it is the
 *    server's (a second key under the same version would show as a second
 *    entry: nothing was delivered under a different key), and holds it;
 *  - no Return 7 (a PNE refusing an old version) in either server's metrics.
 * Measured (printed, not asserted): kill -> B active, kill -> group complete,
 * as the line FAILOVER {"kill_to_active_ms":...,"kill_to_complete_ms":...}.
 *
 * Every wait polls a condition (an HTTP answer, a metric, a log line, a
 * database count) under a generous bound; the harness kills every process on
 * every path and test_pg_stop removes the cluster.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "pg.h"

#include "cpns/cpns.h"

#define MEMBERS 1000
#define N_GWS 4
#define SGID "sg-failover"
#define SEED "failover-test"
#define LEASE_TTL_S "3"
/* Delivery requests the PNEs answer per second, all together: about 2.5 s for the group. */
#define ANSWER_RATE "400"
/* The kill comes once this many members are delivered (30 %). */
#define KILL_AT (MEMBERS * 3 / 10)

/* Bounds of the waits: generous, the machine is small and shared. */
#define PROVISION_MS 120000
#define REGISTER_MS 180000
#define TAKEOVER_MS 60000
#define COMPLETE_MS 180000
#define DB_MS 60000
#define POLL_MS 10

typedef struct inst {
    h_proc *p;
    const char *id;
    cl_server s; /* the addresses, for cpnsctl and h_http */
} inst;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The master key file every instance shares: base64 of 32 random bytes, mode 0600. */
static char *write_master_key(harness *h)
{
    uint8_t key[CPNS_KEY_LEN];
    char b64[64];
    assert_int_equal(cpns_random(NULL, key, sizeof key), 0);
    assert_int_equal(cpns_b64_encode(key, sizeof key, b64, sizeof b64), CPNS_B64_LEN(CPNS_KEY_LEN));
    cpns_wipe(key, sizeof key);
    char *path = h_path(h, "master.key");
    h_write_file(path, h_fmt(h, "%s\n", b64), 0600);
    cpns_wipe(b64, sizeof b64);
    return path;
}

static void start_instance(harness *h, inst *in, const char *id, const char *uri, const char *mk,
                           const char *pki)
{
    in->id = id;
    cl_server *s = &in->s;
    s->tls = true;
    s->listen_port = h_free_port();
    do
        s->admin_port = h_free_port();
    while (s->admin_port == s->listen_port);
    s->listen = h_fmt(h, "127.0.0.1:%u", (unsigned)s->listen_port);
    s->admin = h_fmt(h, "127.0.0.1:%u", (unsigned)s->admin_port);
    s->url = h_fmt(h, "http://%s", s->admin);
    in->p = h_start(h, h_fmt(h, "server-%s", id), "cpns-server", "--db", uri, "--master-key", mk,
                    "--instance-id", id, "--lease-ttl", LEASE_TTL_S, "--listen", s->listen,
                    "--admin", s->admin, "--tls-cert", h_fmt(h, "%s/server.crt", pki), "--tls-key",
                    h_fmt(h, "%s/server.key", pki), "--tls-ca", h_fmt(h, "%s/ca.crt", pki), NULL);
    s->p = in->p;
}

/* Polls GET /healthz until its body contains want ("\"ok\"" or "\"standby\""); fails at timeout. */
static void wait_health(harness *h, const inst *in, const char *want, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    for (;;) {
        if (!h_running(in->p))
            fail_msg("%s exited (status %d) before /healthz said %s", in->id, in->p->status, want);
        char *body = NULL;
        int st = h_http(in->s.admin_port, "GET", "/healthz", NULL, NULL, &body);
        bool ok = st == 200 && body && strstr(body, want);
        free(body);
        if (ok)
            return;
        if (mono_ms() > end)
            fail_msg("%s: /healthz did not say %s within %d ms (last status %d)", in->id, want,
                     timeout_ms, st);
        sleep_ms(POLL_MS);
    }
}

/* A counter of a /metrics body: the sample of `name` (with its labels), -1 when absent. */
static int64_t metric(const char *body, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = body; p && (p = strstr(p, name)) != NULL; p += n)
        if ((p == body || p[-1] == '\n') && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    return -1;
}

/* GET /metrics of an instance; NULL when it did not answer 200. */
static char *get_metrics(const inst *in)
{
    char *body = NULL;
    if (h_http(in->s.admin_port, "GET", "/metrics", NULL, NULL, &body) != 200) {
        free(body);
        return NULL;
    }
    return body;
}

static void wait_log(harness *h, h_proc *p, const char *needle, int timeout_ms)
{
    (void)h;
    int64_t end = mono_ms() + timeout_ms;
    while (!h_file_contains(p->log, needle)) {
        if (!h_running(p))
            fail_msg("%s exited (status %d) before logging '%s'", p->name, p->status, needle);
        if (mono_ms() > end)
            fail_msg("%s did not log '%s' within %d ms", p->name, needle, timeout_ms);
        sleep_ms(POLL_MS);
    }
}

/*
 * POST /v1/service-groups on in for lg-0 .. lg-(MEMBERS-1) (not cpnsctl:
 * h_runv passes at most 64 arguments); the fingerprint of the new Group Key.
 * h_http gives up after 5 s without an answer; A commits the key before it
 * answers, so a slow answer is looked up with GET rather than sent again.
 */
static char *create_sg(harness *h, const inst *in)
{
    size_t cap = 64 + (size_t)MEMBERS * 16, off = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    off += (size_t)snprintf(body + off, cap - off, "{\"sgid\":\"" SGID "\",\"members\":[");
    for (unsigned i = 0; i < MEMBERS; i++)
        off += (size_t)snprintf(body + off, cap - off, "%s\"lg-%u\"", i ? "," : "", i);
    snprintf(body + off, cap - off, "]}");
    char *resp = NULL;
    int st = h_http(in->s.admin_port, "POST", "/v1/service-groups", NULL, body, &resp);
    free(body);
    h_note(h, "POST /v1/service-groups (%d members) on %s: %d", MEMBERS, in->id, st);
    int64_t end = mono_ms() + CL_CTL_MS;
    while (st == 0 && mono_ms() < end) {
        free(resp);
        resp = NULL;
        sleep_ms(100);
        st = h_http(in->s.admin_port, "GET", "/v1/service-groups/" SGID, NULL, NULL, &resp);
        st = st == 200 ? 201 : st == 404 ? 0 : st;
    }
    if (st != 201)
        fail_msg("POST /v1/service-groups on %s: status %d: %s", in->id, st, resp ? resp : "");
    json_t *sg = json_loads(resp, 0, NULL);
    free(resp);
    const char *f = json_string_value(json_object_get(sg, "key_fingerprint"));
    if (!f || json_array_size(json_object_get(sg, "members")) != MEMBERS)
        fail_msg("the SG %s on %s has no key fingerprint or not %d members", SGID, in->id, MEMBERS);
    char *fp = h_fmt(h, "%s", f);
    json_decref(sg);
    return fp;
}

/* Polls the database until sql counts want; fails at the timeout with the last count. */
static void wait_db_count(const char *uri, const char *sql, long long want, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    long long got;
    while ((got = test_pg_scalar(uri, sql)) != want) {
        if (mono_ms() > end)
            fail_msg("%s: %lld, want %lld (after %d ms)", sql, got, want, timeout_ms);
        sleep_ms(50);
    }
}

/* The server's view on B: complete, version 1, fingerprint fp, every member delivered. */
static void check_server_view(harness *h, const inst *b, const char *fp)
{
    json_t *sg = cl_sg_json(h, &b->s, SGID);
    assert_string_equal(json_string_value(json_object_get(sg, "state")), "complete");
    assert_int_equal(json_integer_value(json_object_get(sg, "key_version")), 1);
    assert_string_equal(json_string_value(json_object_get(sg, "key_fingerprint")), fp);
    json_t *members = json_object_get(sg, "members");
    assert_int_equal(json_array_size(members), MEMBERS);
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        const char *state = json_string_value(json_object_get(m, "state"));
        if (!state || strcmp(state, "delivered") != 0 ||
            json_integer_value(json_object_get(m, "key_version")) != 1)
            fail_msg("member %s: state %s, key_version %" JSON_INTEGER_FORMAT
                     " (want delivered, 1)",
                     json_string_value(json_object_get(m, "pneid")), state ? state : "?",
                     json_integer_value(json_object_get(m, "key_version")));
    }
    json_decref(sg);
}

/* Each PNE of the fanout report stored one key for the SG, version 1, fingerprint fp, and holds it.
 */
static unsigned check_pne_report(const char *path, const char *fp)
{
    json_error_t e;
    json_t *r = json_load_file(path, 0, &e);
    if (!r)
        fail_msg("fanout report %s: %s", path, e.text);
    json_t *pnes = json_object_get(r, "pnes");
    assert_int_equal(json_array_size(pnes), MEMBERS);
    unsigned lost = 0;
    size_t i;
    json_t *p;
    json_array_foreach(pnes, i, p)
    {
        const char *id = json_string_value(json_object_get(p, "pneid"));
        lost += (unsigned)json_integer_value(json_object_get(p, "connections_lost"));
        size_t n_sg = 0, k;
        json_t *key;
        json_array_foreach(json_object_get(p, "stored"), k, key)
        {
            if (strcmp(json_string_value(json_object_get(key, "sgid")), SGID) != 0)
                continue;
            n_sg++;
            json_int_t v = json_integer_value(json_object_get(key, "key_version"));
            const char *kfp = json_string_value(json_object_get(key, "fingerprint"));
            if (v != 1 || strcmp(kfp, fp) != 0)
                fail_msg("%s stored version %" JSON_INTEGER_FORMAT " with fingerprint %s; the "
                         "server's key is version 1, %s",
                         id, v, kfp, fp);
        }
        if (n_sg != 1)
            fail_msg("%s stored %zu keys for %s (want exactly one)", id, n_sg, SGID);
        json_t *holds = json_object_get(p, "holds");
        json_t *cur = json_array_get(holds, 0);
        if (json_array_size(holds) != 1 ||
            strcmp(json_string_value(json_object_get(cur, "slot")), "current") != 0 ||
            json_integer_value(json_object_get(cur, "key_version")) != 1 ||
            strcmp(json_string_value(json_object_get(cur, "fingerprint")), fp) != 0)
            fail_msg("%s does not hold exactly the server's key as its current one", id);
    }
    json_decref(r);
    return lost;
}

static void test_failover_mid_distribution(void **state)
{
    harness *h = *state;
    char uri[512];
    assert_int_equal(test_pg_create_db(&test_pg_group, uri, sizeof uri), 0);
    char *mk = write_master_key(h);
    char *pki = cl_pki(h, "gw-1", "gw-2", "gw-3", "gw-4", NULL);

    /* The PNEs lg-0.. with the EUKs fanout derives from the seed, straight into the database. */
    h_out o = h_run(h, NULL, PROVISION_MS, "cpns-loadgen", "provision", "--db", uri, "--master-key",
                    mk, "--pnes", h_fmt(h, "%d", MEMBERS), "--seed", SEED, NULL);
    if (o.status != 0)
        fail_msg("cpns-loadgen provision: exit %d: %s", o.status, o.err);
    h_out_free(&o);

    inst a = {0}, b = {0};
    start_instance(h, &a, "inst-a", uri, mk, pki);
    wait_health(h, &a, "\"ok\"", CL_START_MS);
    start_instance(h, &b, "inst-b", uri, mk, pki);
    wait_health(h, &b, "\"standby\"", CL_START_MS);

    const char *servers = h_fmt(h, "%s,%s", a.s.listen, b.s.listen);
    cl_gw gws[N_GWS];
    char *gw_list = NULL;
    for (int i = 0; i < N_GWS; i++) {
        cl_gw *g = &gws[i];
        g->PNGWID = h_fmt(h, "gw-%d", i + 1);
        g->PNID = h_fmt(h, "pn-%d", i + 1);
        g->port = h_free_port();
        g->listen = h_fmt(h, "127.0.0.1:%u", (unsigned)g->port);
        g->p = h_start(h, h_fmt(h, "gw-%d", i + 1), "cpns-gw", "--id", g->PNGWID, "--pnid", g->PNID,
                       "--server", servers, "--listen", g->listen, "--tls-cert",
                       h_fmt(h, "%s/%s.crt", pki, g->PNGWID), "--tls-key",
                       h_fmt(h, "%s/%s.key", pki, g->PNGWID), "--tls-ca",
                       h_fmt(h, "%s/ca.crt", pki), NULL);
        gw_list = gw_list ? h_fmt(h, "%s,%s", gw_list, g->listen) : g->listen;
    }
    for (int i = 0; i < N_GWS; i++)
        h_wait_port(h, gws[i].p, gws[i].port, CL_START_MS);

    char *report = h_path(h, "fanout-report.json");
    h_proc *fan =
        h_start(h, "fanout", "cpns-loadgen", "fanout", "--gw", gw_list, "--pnes",
                h_fmt(h, "%d", MEMBERS), "--seed", SEED, "--report", report, "--answer-rate",
                ANSWER_RATE, "--answer-hold", h_fmt(h, "%d", KILL_AT + MEMBERS / 10), NULL);
    wait_log(h, fan, h_fmt(h, "fanout: all %d PNEs registered", MEMBERS), REGISTER_MS);

    /* A creates the SG; its answer names the Group Key every PNE must end up with. */
    char *fp = create_sg(h, &a);

    /* Watch A's delivered counter; at 30 % the crash. */
    int64_t delivered = 0, ret7_a = -1, t_deadline = mono_ms() + COMPLETE_MS;
    for (;;) {
        char *m = get_metrics(&a);
        if (m) {
            delivered = metric(m, "cpns_deliveries_delivered_total");
            ret7_a = metric(m, "cpns_responses_total{return=\"7\"}");
        }
        free(m);
        if (delivered >= KILL_AT)
            break;
        if (mono_ms() > t_deadline)
            fail_msg("%s delivered %" PRId64 " of %d within %d ms", a.id, delivered, MEMBERS,
                     COMPLETE_MS);
        if (!h_running(a.p))
            fail_msg("%s exited (status %d) before the kill", a.id, a.p->status);
        sleep_ms(POLL_MS);
    }
    int64_t t_kill = mono_ms();
    h_kill9(a.p);
    /* From now on the PNEs answer at full speed: the times measured are the servers'. */
    kill(fan->pid, SIGUSR1);
    h_note(h, "killed %s at %" PRId64 " of %d delivered", a.id, delivered, MEMBERS);
    if (delivered >= MEMBERS)
        fail_msg("the group completed before the kill (%" PRId64 " delivered): lower "
                 "ANSWER_RATE",
                 delivered);

    wait_health(h, &b, "\"ok\"", TAKEOVER_MS);
    int64_t t_active = mono_ms();

    /*
     * Complete: the engine logs it once, when the last member answers. The
     * log is cheap to poll; the SG object of 1,000 members would load B.
     */
    wait_log(h, b.p, "key distribution complete", COMPLETE_MS);
    int64_t t_complete = mono_ms();
    printf("FAILOVER {\"kill_to_active_ms\":%" PRId64 ",\"kill_to_complete_ms\":%" PRId64
           ",\"members\":%d,\"delivered_at_kill\":%" PRId64 ",\"gws\":%d,\"lease_ttl_s\":%s}\n",
           t_active - t_kill, t_complete - t_kill, MEMBERS, delivered, N_GWS, LEASE_TTL_S);
    fflush(stdout);

    check_server_view(h, &b, fp);
    for (int i = 0; i < N_GWS; i++)
        if (!h_file_contains(gws[i].p->log,
                             h_fmt(h, "registered with the server at %s", b.s.listen)))
            fail_msg("%s never registered with %s", gws[i].PNGWID, b.id);

    /* The database: one key row, every member delivered under it (once B's commits landed). */
    assert_int_equal(test_pg_scalar(uri, "SELECT count(*) FROM sg_key WHERE sgid = '" SGID "'"), 1);
    assert_int_equal(
        test_pg_scalar(uri, "SELECT max(key_version) FROM sg_key WHERE sgid = '" SGID "'"), 1);
    wait_db_count(uri,
                  "SELECT count(*) FROM member WHERE sgid = '" SGID
                  "' AND state = 2 AND key_version = 1",
                  MEMBERS, DB_MS);

    char *m = get_metrics(&b);
    assert_non_null(m);
    int64_t ret7_b = metric(m, "cpns_responses_total{return=\"7\"}");
    assert_int_equal(metric(m, "cpns_instance_active"), 1);
    free(m);
    if (ret7_a > 0 || ret7_b > 0)
        fail_msg("Return 7 answered: %" PRId64 " to %s, %" PRId64 " to %s", ret7_a, a.id, ret7_b,
                 b.id);

    /* What the PNEs stored: the report fanout writes at SIGTERM. */
    assert_int_equal(h_stop(fan, CL_STOP_MS), 0);
    unsigned lost = check_pne_report(report, fp);
    h_note(h, "PNE connections lost during the run: %u", lost);

    for (int i = 0; i < N_GWS; i++)
        cl_stop_clean(gws[i].p);
    cl_stop_clean(b.p);
    h_passed(h);
}

int main(void)
{
    static const char *const progs[] = {"cpns-server", "cpns-gw", "cpnsctl", "cpns-loadgen", NULL};
    int skip = h_programs_present(progs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failover_mid_distribution, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
