/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CPNS half of the integration harness: starting cpns-server, cpns-gw and
 * cpns-pne with the command lines of DESIGN.md section 4, provisioning PNEs
 * and reading Service Groups through cpnsctl, and reading a PNE's stored keys
 * through `cpns-pne keys`. Every helper fails the test on a problem.
 */
#ifndef CPNS_IT_CLUSTER_H
#define CPNS_IT_CLUSTER_H

#include <jansson.h>

#include "harness.h"

#define CL_START_MS 15000 /* a program must be ready within this */
#define CL_STOP_MS 10000  /* and exit after SIGTERM within this */
#define CL_CTL_MS 30000   /* a cpnsctl run that is not a long `sg wait` */

typedef struct cl_server {
    h_proc *p;
    uint16_t listen_port, admin_port;
    char *listen, *admin, *url, *db, *master_key;
    bool tls;
} cl_server;

typedef struct cl_gw {
    h_proc *p;
    const char *PNGWID, *PNID;
    uint16_t port;
    char *listen;
} cl_gw;

typedef struct cl_pne {
    h_proc *p;
    const char *PNEID;
    char *key_file, *store;
} cl_pne;

/* The programs every test needs, for h_programs_present(). */
extern const char *const cl_programs[];

/* scripts/pki.sh into <dir>/pki for the NULL-terminated PNGWIDs; the PKI dir. */
char *cl_pki(harness *h, ...) __attribute__((sentinel));

/*
 * Starts cpns-server (TLS with the PKI of cl_pki when tls, else --insecure)
 * and waits for GET /healthz. The first call picks its ports, database and
 * master key path; later calls (restarts) reuse them. extra: NULL-terminated
 * further options, e.g. "--delivery-timeout", "1".
 */
void cl_server_start(harness *h, cl_server *s, bool tls, ...) __attribute__((sentinel));

/* Starts cpns-gw against s and waits until it listens (same port on restarts). */
void cl_gw_start(harness *h, cl_gw *g, const cl_server *s, const char *PNGWID, const char *PNID);

/* `cpnsctl pne add PNEID --key-out <dir>/PNEID.key`; fills n (not started). */
void cl_pne_provision(harness *h, const cl_server *s, cl_pne *n, const char *PNEID);

/* Starts cpns-pne for n behind g, store <dir>/PNEID.store (no wait). */
void cl_pne_start(harness *h, cl_pne *n, const cl_gw *g);

/* Runs cpnsctl --server <s> with the NULL-terminated arguments. */
h_out cl_ctl(harness *h, const cl_server *s, ...) __attribute__((sentinel));
h_out cl_ctlv(harness *h, const cl_server *s, int timeout_ms, char *const *args);

/* `cpnsctl sg wait SGID --timeout S`; its exit status (stderr in *err if err). */
int cl_sg_wait(harness *h, const cl_server *s, const char *SGID, int timeout_s, char **err);

/* `cpnsctl --json sg show SGID`, parsed (json_decref it); fails unless it exits 0. */
json_t *cl_sg_json(harness *h, const cl_server *s, const char *SGID);

/* The member object of PNEID in an SG object, or NULL. */
json_t *cl_member(json_t *sg, const char *PNEID);

/* Polls `pne list --json` until PNEID is registered, for at most timeout_ms. */
void cl_wait_registered(harness *h, const cl_server *s, const char *PNEID, int timeout_ms);

/* Polls the SG until PNEID's member is "delivered", for at most timeout_ms. */
void cl_wait_delivered(harness *h, const cl_server *s, const char *SGID, const char *PNEID,
                       int timeout_ms);

/*
 * The fingerprint of the Group Key that n stores for SGID, as `cpns-pne keys`
 * lists it, and its KeyVersion in *KeyVersion. Fails when none is stored.
 */
void cl_pne_fingerprint(harness *h, const cl_pne *n, const char *SGID, char fp[17],
                        unsigned *KeyVersion);

/* SIGTERM and expect exit status 0 within CL_STOP_MS. */
void cl_stop_clean(h_proc *p);

#endif
