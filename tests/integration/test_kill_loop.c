/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kill loop of issue #5 (item 4): one server, one GW, four PNEs and one
 * SG; each run rekeys the SG and kill -9s a random daemon (the server, the
 * GW or a PNE) at a random moment around the distribution, restarts it, and
 * waits until the SG is complete again. After every run the invariants hold:
 *   - every member ends with the latest key (the PNE's current KeyVersion and
 *     fingerprint are the server's);
 *   - no version is ever held with two different keys (one fingerprint per
 *     KeyVersion, over every PNE, every run, current and previous keys);
 *   - no member holds a key the server did not generate (each fingerprint a
 *     PNE lists is the one the server answered for that version);
 *   - no acknowledged rekey is lost (each run ends one version up, unless
 *     the rekey was never answered because the server died under it).
 *
 * The randomness is seeded and the seed printed: CPNS_KILL_SEED=<seed>
 * replays a failing sequence; CPNS_KILL_RUNS changes the number of runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"

#define SGID "sg-kill"
#define N_PNE 4
#define DEFAULT_RUNS 24

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    /* xorshift64*: enough to pick victims and delays reproducibly */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ULL;
}

static unsigned rng_below(rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * What was seen of each KeyVersion: the server's fingerprint, and the PNEs'.
 * It grows with the versions seen (each run adds at most one): a fixed 256
 * used to fail run 256 of a long loop (#10 section 2).
 */
typedef struct ledger_entry {
    char server[17];
    char pnes[17];
} ledger_entry;

typedef struct ledger {
    ledger_entry *v; /* indexed by KeyVersion; [0] unused */
    size_t n;
} ledger;

/* The entry of KeyVersion v (>= 1), the ledger grown to hold it. */
static ledger_entry *ledger_at(ledger *l, unsigned v)
{
    assert_true(v > 0);
    if (v >= l->n) {
        size_t n = l->n ? l->n : 64;
        while (n <= v)
            n *= 2;
        ledger_entry *e = realloc(l->v, n * sizeof *e);
        assert_non_null(e);
        memset(e + l->n, 0, (n - l->n) * sizeof *e);
        l->v = e;
        l->n = n;
    }
    return &l->v[v];
}

static void ledger_server(ledger *l, unsigned v, const char *fp, const char *when)
{
    ledger_entry *e = ledger_at(l, v);
    if (e->server[0] && strcmp(e->server, fp) != 0)
        fail_msg("%s: the server reports KeyVersion %u with fingerprint %s, earlier %s", when, v,
                 fp, e->server);
    snprintf(e->server, sizeof e->server, "%.16s", fp); /* a fingerprint is 16 hex digits */
}

static void ledger_pne(ledger *l, const char *PNEID, unsigned v, const char *fp)
{
    ledger_entry *e = ledger_at(l, v);
    if (e->pnes[0] && strcmp(e->pnes, fp) != 0)
        fail_msg("KeyVersion %u held with two keys: %s by %s, %s before", v, fp, PNEID, e->pnes);
    snprintf(e->pnes, sizeof e->pnes, "%.16s", fp);
    if (!e->server[0])
        fail_msg("%s holds KeyVersion %u (%s), which the server never reported", PNEID, v, fp);
    if (strcmp(e->server, fp) != 0)
        fail_msg("%s holds KeyVersion %u as %s: the server generated %s", PNEID, v, fp, e->server);
}

/* POST .../rekey (raw HTTP: no process start between the rekey and the kill). */
static unsigned rekey(harness *h, const cl_server *s, ledger *l, int run)
{
    char *body = NULL;
    int status =
        h_http(s->admin_port, "POST", "/v1/service-groups/" SGID "/rekey", NULL, "{}", &body);
    h_note(h, "run %d: POST rekey -> %d %s", run, status, body ? body : "");
    if (status != 200)
        fail_msg("run %d: rekey answered %d: %s", run, status, body ? body : "");
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(j);
    unsigned v = (unsigned)json_integer_value(json_object_get(j, "key_version"));
    const char *fp = json_string_value(json_object_get(j, "key_fingerprint"));
    assert_non_null(fp);
    ledger_server(l, v, fp, "rekey");
    json_decref(j);
    return v;
}

/*
 * Every (KeyVersion, fingerprint) pair `cpns-pne keys` lists for the SG: the
 * current one first, then the previous one when there is one.
 */
static size_t pne_keys(harness *h, const cl_pne *n, unsigned v[2], char fp[2][17])
{
    h_out o = h_run(h, NULL, CL_CTL_MS, "cpns-pne", "keys", "--store", n->store, "--key-file",
                    n->key_file, NULL);
    if (o.status != 0)
        fail_msg("cpns-pne keys (%s): exit %d: %s", n->PNEID, o.status, o.err);
    size_t k = 0;
    char *save_line = NULL;
    for (char *line = strtok_r(o.out, "\n", &save_line); line;
         line = strtok_r(NULL, "\n", &save_line)) {
        char *save_tok = NULL;
        char *tok = strtok_r(line, " \t", &save_tok);
        if (!tok || strcmp(tok, SGID) != 0)
            continue;
        long version = -1;
        while ((tok = strtok_r(NULL, " \t", &save_tok)) != NULL && k < 2) {
            char *end;
            long num = strtol(tok, &end, 10);
            if (*end == '\0' && num > 0) {
                version = num;
            } else if (strlen(tok) == 16 && version > 0) {
                v[k] = (unsigned)version;
                snprintf(fp[k], 17, "%s", tok);
                k++;
                version = -1;
            }
        }
    }
    h_out_free(&o);
    return k;
}

static unsigned check_invariants(harness *h, const cl_server *s, cl_pne *pne, ledger *l, int run,
                                 unsigned lo, unsigned hi)
{
    char *err = NULL;
    if (cl_sg_wait(h, s, SGID, 60, &err) != 0)
        fail_msg("run %d: the SG did not complete: %s", run, err);
    json_t *sg = cl_sg_json(h, s, SGID);
    unsigned V = (unsigned)json_integer_value(json_object_get(sg, "key_version"));
    char F[17];
    snprintf(F, sizeof F, "%s", json_string_value(json_object_get(sg, "key_fingerprint")));
    json_decref(sg);
    if (V < lo || V > hi)
        fail_msg("run %d: the server is at KeyVersion %u, want %u..%u (an acknowledged rekey "
                 "lost?)",
                 run, V, lo, hi);
    ledger_server(l, V, F, "sg show");
    for (int i = 0; i < N_PNE; i++) {
        unsigned v[2];
        char fp[2][17];
        size_t k = pne_keys(h, &pne[i], v, fp);
        if (k == 0)
            fail_msg("run %d: %s holds no key for %s", run, pne[i].PNEID, SGID);
        if (v[0] != V || strcmp(fp[0], F) != 0)
            fail_msg("run %d: %s holds KeyVersion %u (%s), the server's latest is %u (%s)", run,
                     pne[i].PNEID, v[0], fp[0], V, F);
        for (size_t j = 0; j < k; j++)
            ledger_pne(l, pne[i].PNEID, v[j], fp[j]);
    }
    return V;
}

/*
 * The answer of a cpnsctl --json sg rekey that ran in the background: the
 * last SG object in its log. 0 when there is none (it failed).
 */
static unsigned rekey_answer(harness *h, const h_proc *p, ledger *l, int run)
{
    FILE *f = fopen(p->log, "r");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *last = NULL;
    for (char *q = buf; (q = strstr(q, "{\"sgid\"")) != NULL; q++)
        last = q;
    if (!last)
        return 0;
    json_t *j = json_loads(last, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(j);
    unsigned v = (unsigned)json_integer_value(json_object_get(j, "key_version"));
    const char *fp = json_string_value(json_object_get(j, "key_fingerprint"));
    assert_non_null(fp);
    h_note(h, "run %d: background rekey answered KeyVersion %u", run, v);
    ledger_server(l, v, fp, "background rekey");
    json_decref(j);
    return v;
}

static const char *const victim_names[] = {"server", "gw", "pne"};
static const char *const mode_names[] = {"then rekey", "after the rekey's answer",
                                         "while cpnsctl rekeys"};

static void test_kill_loop(void **state)
{
    harness *h = *state;
    const char *env_seed = getenv("CPNS_KILL_SEED");
    const char *env_runs = getenv("CPNS_KILL_RUNS");
    uint64_t seed =
        env_seed ? strtoull(env_seed, NULL, 0) : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    if (seed == 0)
        seed = 1;
    int runs = env_runs ? atoi(env_runs) : DEFAULT_RUNS;
    fprintf(stderr, "kill loop: seed %llu, %d runs (replay: CPNS_KILL_SEED=%llu)\n",
            (unsigned long long)seed, runs, (unsigned long long)seed);
    h_note(h, "kill loop seed %llu", (unsigned long long)seed);
    rng r = {seed};
    ledger l = {NULL, 0};

    cl_server s = {0};
    cl_server_start(h, &s, false, "--delivery-timeout", "1", "--max-attempts", "1000", NULL);
    cl_pne pne[N_PNE] = {{0}};
    const char *ids[N_PNE] = {"pne-1", "pne-2", "pne-3", "pne-4"};
    for (int i = 0; i < N_PNE; i++)
        cl_pne_provision(h, &s, &pne[i], ids[i]);
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    for (int i = 0; i < N_PNE; i++)
        cl_pne_start(h, &pne[i], &g);
    for (int i = 0; i < N_PNE; i++)
        cl_wait_registered(h, &s, ids[i], 30000);
    h_out o = cl_ctl(h, &s, "sg", "create", SGID, ids[0], ids[1], ids[2], ids[3], NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    json_t *sg = cl_sg_json(h, &s, SGID);
    ledger_server(&l, 1, json_string_value(json_object_get(sg, "key_fingerprint")), "create");
    json_decref(sg);
    check_invariants(h, &s, pne, &l, 0, 1, 1);

    /*
     * Three ways to meet the distribution: the victim dies first and the SG
     * is rekeyed while it is down (a dead server is restarted first); it dies
     * a few ms after the rekey was answered (requests in flight); or it dies
     * while a cpnsctl rekey runs in the background, so that a server may die
     * before, during or after committing the new key. A rekey that was
     * answered must survive; one that was not may or may not have happened.
     */
    h_proc *bg = NULL;
    unsigned version = 1;
    for (int run = 1; run <= runs; run++) {
        unsigned who = rng_below(&r, 2 + N_PNE); /* 0 server, 1 GW, 2.. a PNE */
        unsigned kind = who < 2 ? who : 2;
        unsigned mode = rng_below(&r, 3);
        unsigned delay = rng_below(&r, 20), down = rng_below(&r, 400);
        h_proc *victim = who == 0 ? s.p : who == 1 ? g.p : pne[who - 2].p;
        fprintf(stderr, "run %d: kill -9 %s%s %s, after %u ms, down %u ms\n", run,
                victim_names[kind], kind == 2 ? ids[who - 2] + 3 : "", mode_names[mode], delay,
                down);
        h_note(h, "run %d: victim %s, mode %u, delay %u, down %u", run, victim->name, mode, delay,
               down);
        unsigned lo = version + 1, hi = version + 1;
        if (mode == 0) {
            h_kill9(victim);
            if (who != 0)
                rekey(h, &s, &l, run);
            sleep_ms(down);
        } else if (mode == 1) {
            rekey(h, &s, &l, run);
            sleep_ms(delay);
            h_kill9(victim);
            sleep_ms(down);
        } else {
            if (bg)
                h_restart(h, bg);
            else
                bg = h_start(h, "rekey", "cpnsctl", "--server", s.url, "--json", "sg", "rekey",
                             SGID, NULL);
            sleep_ms(delay);
            h_kill9(victim);
            sleep_ms(down);
        }
        if (who == 0)
            cl_server_start(h, &s, false, NULL);
        else if (who == 1)
            cl_gw_start(h, &g, &s, "gw-1", "pn-1");
        else
            cl_pne_start(h, &pne[who - 2], &g);
        if (mode == 0 && who == 0)
            rekey(h, &s, &l, run);
        if (mode == 2) {
            int st = h_wait_exit(bg, 60000);
            unsigned answered = st == 0 ? rekey_answer(h, bg, &l, run) : 0;
            if (answered && answered != version + 1)
                fail_msg("run %d: the rekey answered KeyVersion %u after %u", run, answered,
                         version);
            if (!answered)
                lo = version; /* not acknowledged: it may be lost with the server */
        }
        version = check_invariants(h, &s, pne, &l, run, lo, hi);
    }

    for (int i = 0; i < N_PNE; i++)
        cl_stop_clean(pne[i].p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    free(l.v);
    h_passed(h);
}

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_loop, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
