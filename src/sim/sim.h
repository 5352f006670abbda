/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An in-process CPNS network: one server engine (memory store), one GW
 * engine and any number of PNE engines (memory keystores), wired together
 * directly with a virtual clock. The in-process demo and the end-to-end test
 * drive the real engines through it; nothing is mocked but the wires.
 *
 * Frames move when sim_run() pumps: every engine's output goes to its peer
 * until nothing is left in flight. A filter can drop frames on the way, to
 * play a lossy link.
 */
#ifndef CPNS_SIM_H
#define CPNS_SIM_H

#include <stdbool.h>

#include "cpns/cpns.h"

#define SIM_MAX_PNES 16
#define SIM_START_MS 1795000000000LL /* the Time of the PROTOCOL.md vectors */

typedef enum sim_hop {
    SIM_SERVER_TO_GW,
    SIM_GW_TO_SERVER,
    SIM_GW_TO_PNE,
    SIM_PNE_TO_GW,
} sim_hop;

typedef struct sim_pne {
    char PNEID[CPNS_ID_MAX + 1];
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_pne *pne;
    cpns_keystore *keystore;
    uint64_t link; /* the GW link id, fixed per PNE */
    bool link_up;
} sim_pne;

/*
 * Sees every frame that moves; returns true to drop it. `pne` is the PNE
 * index for GW<->PNE hops, -1 otherwise. The frame is peeked into m.
 */
typedef bool (*sim_filter_fn)(void *arg, sim_hop hop, int pne, const cpns_msg *m);

typedef struct sim {
    int64_t now;
    uint64_t seed;
    cpns_rand_fn rand; /* seeded stream, or NULL for the OS CSPRNG */
    cpns_store *store;
    cpns_server *server;
    cpns_gw *gw;
    bool gw_connected;
    uint64_t gw_conn; /* the server's handle for the GW connection */
    sim_pne pnes[SIM_MAX_PNES];
    int n_pnes;
    sim_filter_fn filter;
    void *filter_arg;
    cpns_log_fn log;
    void *log_arg;
    uint64_t frames_moved;
    uint64_t frames_dropped;
} sim;

/*
 * A server on a memory store and a GW "gw-home" serving PN "pn-home".
 * seed 0: every random value comes from the OS CSPRNG; otherwise from a
 * stream seeded with it, so that a test run replays exactly. 0 or a cpns_error.
 */
int sim_init(sim *s, uint64_t seed, cpns_log_fn log, void *log_arg);
void sim_fini(sim *s);

/*
 * A PNE with a random EUK, provisioned on the server. With server_euk the
 * server is provisioned with that key instead (a PNE whose EUK disagrees).
 * Returns its index, or a negative cpns_error.
 */
int sim_add_pne(sim *s, const char *PNEID, const uint8_t *server_euk);

/* Connects the GW to the server (and registers it); disconnects it. */
int sim_gw_connect(sim *s);
int sim_gw_disconnect(sim *s);

/* Brings a PNE's link to the GW up (it registers) or down. */
int sim_pne_up(sim *s, int i);
int sim_pne_down(sim *s, int i);

/* Moves frames until none is in flight, committing the server's writes as a daemon would. */
int sim_run(sim *s);

/* Advances the clock by ms, fires every due timer, and runs. */
int sim_advance(sim *s, int64_t ms);

/*
 * Crashes the server: uncommitted writes are lost, the engine is rebuilt from
 * its store, and the GW (if it was connected) reconnects.
 */
int sim_server_restart(sim *s);

/* The current Group Key a PNE holds for SGID: 0, or CPNS_ERR_NOT_FOUND. */
int sim_pne_key(sim *s, int i, const char *SGID, cpns_key_slot *out);

#endif
