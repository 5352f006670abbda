/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inside of cpns-loadgen, shared by its files:
 *   main.c      options, provisioning of the server's store, the admin HTTP
 *               client, process helpers (RSS, RLIMIT_NOFILE)
 *   e2e.c       G simulated GWs over TLS to a real cpns-server, each with P
 *               simulated PNEs (the real cpns_pne engine, a memory keystore)
 *   baseline.c  the same frames over the same kind of connections, with no
 *               parsing, crypto or storage (a child process plays the server)
 *   fanout.c    10,000 PNE connections to a real cpns-gw (the benchmark), or
 *               PNEs served behind several cpns-gw until SIGTERM, reporting
 *               every key each stored (serve mode, the failover test)
 *
 * A simulated PNE i is "lg-<i>" and its EUK is HKDF(seed, "lg-<i>"), so the
 * provisioning run and the load run agree on keys without a key file.
 */
#ifndef CPNS_LOADGEN_H
#define CPNS_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "cpns/cpns.h"
#include "cpns/store_db.h"
#include "net.h"

#define LG_PNE_PREFIX "lg-"
#define LG_GW_PREFIX "lg-gw-"

typedef struct lg_pne {
    cpns_pne *eng;
    cpns_keystore *ks;
    uint32_t gw;    /* index of the simulated GW that carries it (e2e) */
    net_conn *conn; /* its own connection to a real GW (fanout) */
    uint32_t got;   /* delivery requests of the current round (e2e; above 1: sent again) */
} lg_pne;

typedef struct lg_gw {
    net_conn *conn;
    uint32_t idx;
    bool open, registered, closed;
} lg_gw;

/* A growing byte buffer (captured frames). */
typedef struct lg_buf {
    uint8_t *p;
    size_t len, cap;
} lg_buf;

typedef struct lg {
    struct event_base *base;
    struct event *tick; /* wakes the loop every few ms: retries, polling */
    const char *seed;
    const char *admin;      /* HOST:PORT */
    const char *pki;        /* directory of scripts/pki.sh */
    const char *server_log; /* the server's log (info level), to see completion; NULL: poll */
    lg_pne *pnes;
    uint32_t n_pnes;
    /* one parser for every simulated PNE (they all run in this thread) and the GWs' peeks */
    cpns_msg_decoder *decoder;
    /* likewise one AES-GCM context for every simulated PNE's EncryptedGroupKey */
    cpns_gcm *gcm;
    cpns_sha256 *sha256;
    lg_gw *gws;
    uint32_t n_gws;
    uint32_t pnes_registered;
    /* the round being measured */
    bool capture_on;
    lg_buf capture;
    size_t capture_per_member; /* bytes, from the last round (an estimate before the first) */
    uint32_t round_members, responses;
    int64_t t0_us;
    double *lat_ms; /* per response: t(sent) - t0 */
    bool failed;
} lg;

/* main.c */
int64_t lg_now_us(void);
int64_t lg_now_ms(void);
void lg_pneid(uint32_t i, char out[CPNS_ID_MAX + 1]);
int lg_pne_index(const char *PNEID, uint32_t n, uint32_t *out);
int lg_euk(const char *seed, uint32_t i, uint8_t EUK[CPNS_KEY_LEN]);
int lg_pnes_new(lg *g, uint32_t n);
void lg_pnes_free(lg *g);
/* Grows b to at least cap bytes, pages touched (before a measurement); 0 or -1. */
int lg_buf_reserve(lg_buf *b, size_t cap);
int lg_buf_add(lg_buf *b, const void *p, size_t n);
void lg_raise_nofile(void);
long lg_rss_kb(long pid, const char *field); /* "VmRSS" or "VmHWM"; -1 if unknown */
double lg_cpu_s(long pid);                   /* user + system CPU seconds so far, -1 */
/* Runs the loop until *flag is true or timeout_ms passes; 0 or -1 (timeout). */
int lg_run_until(lg *g, const bool *flag, int64_t timeout_ms);
int lg_run_until_count(lg *g, const uint32_t *count, uint32_t want, int64_t timeout_ms);
/*
 * One admin API request, the loop running meanwhile; status 0 when the
 * request failed. body may be NULL. *resp (malloc'ed, NUL-terminated) when resp.
 */
typedef struct lg_http_req {
    bool done;
    int status;
    char *body;
    size_t len;
} lg_http_req;
int lg_http_start(lg *g, const char *method, const char *path, const char *body, size_t body_len,
                  lg_http_req *h);
int lg_http_do(lg *g, const char *method, const char *path, const char *body, size_t body_len,
               lg_http_req *h);
/* Runs the loop until g->responses reaches want; -1 on timeout or when the POST failed. */
int lg_wait_responses(lg *g, const lg_http_req *post, uint32_t want, int64_t timeout_ms);
/* cpns_deliveries_delivered_total from /metrics, or -1. */
int64_t lg_delivered(lg *g);
long lg_file_size(const char *path); /* -1 if unreadable */
/* 0 once the server's log (from offset `from`) says SGID is complete; -1 on timeout. */
int lg_wait_log_complete(lg *g, const char *path, long from, const char *SGID, int64_t timeout_ms);
/* The JSON body of POST /v1/sgs for members lg-first .. lg-(first+n-1). NULL: OOM. */
char *lg_sg_body(const char *SGID, uint32_t first, uint32_t n, size_t *len);
double lg_percentile(double *v, size_t n, double p);

/* e2e.c */
int lg_e2e_main(int argc, char **argv);
/* baseline.c */
int lg_baseline_server_main(int argc, char **argv);
/* Runs the baseline on the capture of one round; its seconds or -1. */
double lg_baseline_run(lg *g, const char *self, const char *capture_path, uint32_t n_gws);
/* fanout.c */
int lg_fanout_main(int argc, char **argv);

#endif
