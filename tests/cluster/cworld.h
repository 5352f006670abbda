/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cluster tests' world (issue #12 item 6): a private PostgreSQL
 * (tests/support/pg.h), N cpns-server instances in --cluster mode on it (every
 * one active), G real cpns-gw each given every instance's address (GW k's list
 * starts at instance k mod N, so the GWs spread over the instances), and the
 * PNEs of `cpns-loadgen fanout` in serve mode spread over the GWs (PNE i
 * behind GW i mod G), which report at the end every key each PNE stored, the
 * delivery requests it got and its answers by Return code.
 *
 * A seed drives every choice a scenario makes (the kill point, which
 * instance): CPNS_CLUSTER_SEED, or one drawn from the clock, printed at the
 * start as "CLUSTER SEED n" so that a failed run can be repeated exactly as
 * far as the choices go (the machine's timing is not replayed).
 *
 * cw_check() holds the invariants every scenario ends with:
 *  - every member delivered, at the SG's current KeyVersion (PostgreSQL, and
 *    the SG object of every instance still running: state "complete");
 *  - exactly one sg_key row per KeyVersion, versions 1..current, no gap;
 *  - each PNE stored exactly one key per KeyVersion (a second key under one
 *    version would be a second entry of the report), it is the server's (the
 *    fingerprint the admin API answered for that version; for a version whose
 *    answer was lost, the one every PNE agrees on), and it holds the current
 *    key as its current one;
 *  - no Return 7 (a PNE refusing an older KeyVersion than it holds): counted
 *    by the PNEs themselves, and in the metrics of every instance still up;
 *  - every 201/200 the admin API gave survives: its KeyVersion has its key
 *    row, and the PNEs hold that version's key under that fingerprint.
 * Every wait polls a condition under a generous bound; nothing sleeps for a
 * race window.
 */
#ifndef CPNS_CWORLD_H
#define CPNS_CWORLD_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "pg.h"

#define CW_MAX_INST 3
#define CW_MAX_GWS 6
#define CW_MAX_ANSWERS 32
#define CW_SGID "sg-cluster"

/* Bounds of the waits: generous, the machine is small and shared (ASan: 3-5x slower). */
#define CW_START_MS 60000
#define CW_REGISTER_MS 180000
#define CW_COMPLETE_MS 180000
#define CW_POLL_MS 20

typedef struct cw_inst {
    h_proc *p;
    const char *id;
    cl_server s;
    bool stopped; /* SIGSTOP'ed */
    bool dead;    /* killed by the scenario */
    int64_t ret7; /* Return 7 in its metrics when last seen */
} cw_inst;

/* One 201/200 of the admin API: what must survive. */
typedef struct cw_answer {
    const char *what; /* "create", "rekey" */
    const char *inst;
    uint32_t version;
    char fp[17];
} cw_answer;

typedef struct cw_opts {
    unsigned n_inst, n_gws, members;
    const char *answer_rate; /* fanout --answer-rate until cw_full_speed (NULL: none) */
    unsigned hold_at;        /* fanout --answer-hold: no PNE beyond the first hold_at is handed
                                a request until cw_full_speed or cw_release_hold (0: none) */
    unsigned move_every;     /* fanout --move-every (0: none) */
} cw_opts;

typedef struct cw_world {
    harness *h;
    test_pg *pg;
    cw_opts o;
    char uri[512];
    char *mk, *pki;
    cw_inst inst[CW_MAX_INST];
    cl_gw gws[CW_MAX_GWS];
    char *gw_servers[CW_MAX_GWS]; /* the --server list each GW got */
    h_proc *fan;
    char *report;
    cw_answer answers[CW_MAX_ANSWERS];
    unsigned n_answers;
    uint64_t seed, rng;
    /* filled by cw_check: for the scenario's summary line */
    long long deliveries, pnes_lost;
    uint32_t final_version;
} cw_world;

/*
 * 0 when the programs are there and cpns-server accepts --cluster; 77 (CTest's
 * skip code) with a message on stderr otherwise, 1 when the environment lacks
 * CPNS_BIN_DIR.
 */
int cw_skip_unless_cluster(void);

/* The members of a test: env CPNS_CLUSTER_MEMBERS, else dflt. */
unsigned cw_members(unsigned dflt);

/* The run's seed (CPNS_CLUSTER_SEED or the clock), printed; seeds cw_rand. */
uint64_t cw_seed_init(cw_world *w);
/* A number in [0, n) from the seed's stream. */
uint32_t cw_rand(cw_world *w, uint32_t n);

/* Monotonic milliseconds, and a sleep for polling loops only. */
int64_t cw_now_ms(void);
void cw_sleep_ms(int ms);

/*
 * Everything up: a database, the master key, the PKI, the PNEs provisioned in
 * bulk, the instances (each /healthz "ok"), the GWs (each registered with the
 * first server of its list) and the fanout (every PNE registered).
 */
void cw_start(cw_world *w, harness *h, test_pg *pg, const cw_opts *o);

/* The index of the instance whose GW listener is addr (HOST:PORT), or -1. */
int cw_inst_of_addr(const cw_world *w, const char *addr);
/* The instance GW k last registered with (its log), or -1. */
int cw_gw_instance(const cw_world *w, unsigned k);

/* A running (not stopped, not dead) instance other than `not` (-1: any), chosen by the seed. */
unsigned cw_pick_live(cw_world *w, int not );

/* POST /v1/service-groups on instance i for lg-0..lg-(members-1); records the 201. */
void cw_create_sg(cw_world *w, unsigned i);

/*
 * POST /v1/service-groups/SGID/rekey on instance i: records a 200; returns the
 * status (200, 409, or 0 when no answer came).
 */
int cw_rekey(cw_world *w, unsigned i);
/* Records a 200/201 body (an SG object) as an answer that must survive. */
void cw_record(cw_world *w, const char *what, unsigned i, const char *body);

/* Members delivered at the SG's current KeyVersion (PostgreSQL); -1 while it does not answer. */
long long cw_delivered(const cw_world *w);
/* Polls cw_delivered until at least n; fails when a running instance exits or at the timeout. */
void cw_wait_delivered(cw_world *w, long long n, int timeout_ms);
/* The SG's KeyVersion in PostgreSQL (-1 while it does not answer). */
long long cw_db_version(const cw_world *w);

/* The PNEs answer at full speed from now on (fanout SIGUSR1: no rate, no hold). */
void cw_full_speed(cw_world *w);
/* The hold is lifted, the rate stays (fanout SIGHUP). */
void cw_release_hold(cw_world *w);
/*
 * The hold for a scenario that acts once n members are delivered: a tenth of
 * the group beyond n, so that answers may still be in flight when it acts,
 * and never the whole group, so that it cannot find the group complete.
 */
unsigned cw_hold_after(unsigned members, long long n);

/* A metric of instance i (its /metrics), -1 when absent or when it does not answer. */
int64_t cw_metric(const cw_world *w, unsigned i, const char *name);

/* kill -9 of instance i (its Return 7 count sampled first). */
void cw_kill9(cw_world *w, unsigned i);

/* Polls fn(w, arg) until true; fails with what at the timeout. */
void cw_wait(cw_world *w, bool (*fn)(cw_world *, void *), void *arg, int timeout_ms,
             const char *what);

/* Waits until the log of p contains needle; fails when p exits first or at the timeout. */
void cw_wait_log(cw_world *w, h_proc *p, const char *needle, int timeout_ms);

/* The invariants above (stops the fanout to read its report). */
void cw_check(cw_world *w);

/* Stops every process still running with SIGTERM, each must exit 0; then h_passed. */
void cw_finish(cw_world *w);

#endif
