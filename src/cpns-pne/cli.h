/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the parts of cpns-pne share: the parsed command line, opening the
 * key store, and the three offline subcommands (keys, seal, open) that work
 * on the store without touching the network.
 */
#ifndef CPNS_PNE_CLI_H
#define CPNS_PNE_CLI_H

#include <stdint.h>

#include "daemon.h"

typedef enum pne_mode {
    PNE_MODE_DAEMON = 0,
    PNE_MODE_KEYS,
    PNE_MODE_SEAL,
    PNE_MODE_OPEN,
} pne_mode;

typedef struct pne_options {
    pne_mode mode;
    const char *PNEID;
    const char *gw;
    const char *key_file;
    const char *store;
    const char *SGID;
    cpns_log_level log_level;
} pne_options;

/*
 * Reads the EUK from --key-file and opens the file keystore in --store
 * (created when create is true and it is missing). 0, or the exit status
 * after printing why: 2 for a key file or store others can read or a bad
 * key file, 1 for a damaged store, a wrong EUK or an I/O failure.
 */
int pne_open_store(const pne_options *o, int create, cpns_keystore **ks, uint8_t EUK[CPNS_KEY_LEN]);

/* The subcommands; each returns the exit status. */
int pne_cmd_keys(const pne_options *o);
int pne_cmd_seal(const pne_options *o);
int pne_cmd_open(const pne_options *o);

/* The largest plaintext `seal` takes, so that its group message still fits a frame. */
#define PNE_SEAL_MAX (48u * 1024)

#endif
