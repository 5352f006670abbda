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
    const char *pkcs11_module; /* set: the key store is sealed by a PKCS#11 token */
    const char *token_label;
    const char *pin_file;
} pne_options;

/*
 * Reads the EUK from --key-file and opens the file keystore in --store
 * (created when create is true and it is missing), or the PKCS#11 one below
 * when --pkcs11-module is given; EUK may be NULL when the caller does not
 * need it. 0, or the exit status
 * after printing why: 2 for a key file or store others can read or a bad
 * key file, 1 for a damaged store, a wrong EUK or an I/O failure.
 */
int pne_open_store(const pne_options *o, int create, cpns_keystore **ks, uint8_t EUK[CPNS_KEY_LEN]);

/*
 * The same with --pkcs11-module (pkcs11.c): the PIN from --pin-file, the
 * EUK from --key-file when given (sealed into the store on its first start,
 * else checked against it), and, when EUK is not NULL, the EUK decrypted by
 * the token. 0, or the exit status after printing why: 2 for a PIN or key
 * file that is bad or others can read, a wrong PIN; 1 for any other failure
 * (no such token or module, a token that fails, a damaged store).
 */
int pne_open_store_pkcs11(const pne_options *o, int create, cpns_keystore **ks,
                          uint8_t EUK[CPNS_KEY_LEN]);

/* The subcommands; each returns the exit status. */
int pne_cmd_keys(const pne_options *o);
int pne_cmd_seal(const pne_options *o);
int pne_cmd_open(const pne_options *o);

/* The largest plaintext `seal` takes, so that its group message still fits a frame. */
#define PNE_SEAL_MAX (48u * 1024)

#endif
