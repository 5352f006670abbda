/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-pne's key store in a PKCS#11 token (--pkcs11-module, --token-label,
 * --pin-file; docs/PKCS11.md): reads the PIN file (mode 0600 or refused,
 * like a key file), and the EUK from --key-file when given (needed only
 * for the first start, which seals it into the store), opens the PKCS#11
 * keystore and, for the daemon, has the token decrypt the EUK once so that
 * the engine can derive its keys from it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#define PIN_FILE_MAX 256

/* The PIN: the first line of the file. 0, or the exit status after printing why. */
static int read_pin(const char *path, char pin[PIN_FILE_MAX + 2])
{
    char err[512];
    if (keyfile_check_private(path, err, sizeof err) != 0) {
        fprintf(stderr, "cpns-pne: --pin-file %s\n", err);
        return EXIT_USAGE;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cpns-pne: --pin-file %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    size_t n = fread(pin, 1, PIN_FILE_MAX + 1, f);
    fclose(f);
    pin[n] = '\0';
    size_t len = strcspn(pin, "\r\n");
    int more = pin[len] != '\0' && pin[len + strspn(pin + len, "\r\n")] != '\0';
    pin[len] = '\0';
    if (len == 0 || n > PIN_FILE_MAX || more) {
        cpns_wipe(pin, PIN_FILE_MAX + 2);
        fprintf(stderr, "cpns-pne: --pin-file %s: not one line of 1-%d characters\n", path,
                PIN_FILE_MAX);
        return EXIT_USAGE;
    }
    return 0;
}

int pne_open_store_pkcs11(const pne_options *o, int create, cpns_keystore **ks,
                          uint8_t EUK[CPNS_KEY_LEN])
{
    char pin[PIN_FILE_MAX + 2];
    int status = read_pin(o->pin_file, pin);
    if (status != 0)
        return status;
    uint8_t given[CPNS_KEY_LEN];
    char err[512];
    if (o->key_file && keyfile_read(o->key_file, given, err, sizeof err) != 0) {
        cpns_wipe(pin, sizeof pin);
        fprintf(stderr, "cpns-pne: --key-file %s\n", err);
        return EXIT_USAGE;
    }
    struct stat st;
    int rv = CPNS_ERR_NOT_FOUND;
    if (!create && stat(o->store, &st) != 0) {
        snprintf(err, sizeof err, "%s (no key store there)", strerror(errno));
    } else {
        cpns_keystore_pkcs11_config cfg = {
            .module = o->pkcs11_module,
            .token_label = o->token_label,
            .pin = pin,
            .dir = o->store,
            .EUK = o->key_file ? given : NULL,
            .log = o->mode == PNE_MODE_DAEMON ? log_engine : NULL,
        };
        rv = cpns_keystore_pkcs11_open(ks, &cfg, err, sizeof err);
    }
    cpns_wipe(pin, sizeof pin);
    cpns_wipe(given, sizeof given);
    if (rv == 0 && EUK) {
        rv = cpns_keystore_pkcs11_euk(*ks, EUK);
        if (rv != 0) {
            snprintf(err, sizeof err, "the token cannot decrypt the EUK: %s", cpns_strerror(rv));
            cpns_keystore_free(*ks);
            *ks = NULL;
        }
    }
    if (rv == 0)
        return 0;
    fprintf(stderr, "cpns-pne: --store %s, token '%s' of %s: %s\n", o->store, o->token_label,
            o->pkcs11_module, err[0] ? err : cpns_strerror(rv));
    /* like a bad key file: what the operator gave is wrong (a PIN, a file others can read) */
    return rv == CPNS_ERR_AUTH || rv == CPNS_ERR_PERM ? EXIT_USAGE : EXIT_FAILURE;
}
