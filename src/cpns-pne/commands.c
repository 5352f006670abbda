/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The offline subcommands of cpns-pne (DESIGN.md section 4): `keys` lists
 * what the PNE's secure storage holds (SGID, KeyVersion, fingerprint; never a
 * key), `seal` and `open` turn stdin into a group message and back with the
 * stored Group Keys (PROTOCOL.md section 4, "Group message"). They read the
 * same key store the daemon writes; its atomic replace makes that safe while
 * the daemon runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* A base64 group message of PNE_SEAL_MAX bytes, plus room for line endings. */
#define OPEN_INPUT_MAX (CPNS_B64_LEN(PNE_SEAL_MAX + CPNS_GROUP_MSG_OVERHEAD) + 16)

int pne_open_store(const pne_options *o, int create, cpns_keystore **ks, uint8_t EUK[CPNS_KEY_LEN])
{
    if (o->pkcs11_module)
        return pne_open_store_pkcs11(o, create, ks, EUK);
    uint8_t unused[CPNS_KEY_LEN];
    if (!EUK)
        EUK = unused;
    char err[512];
    if (keyfile_read(o->key_file, EUK, err, sizeof err) != 0) {
        fprintf(stderr, "cpns-pne: --key-file %s\n", err);
        return EXIT_USAGE;
    }
    struct stat st;
    if (!create && stat(o->store, &st) != 0) {
        fprintf(stderr, "cpns-pne: --store %s: %s (no key store there)\n", o->store,
                strerror(errno));
        cpns_wipe(EUK, CPNS_KEY_LEN);
        return EXIT_FAILURE;
    }
    int rv = cpns_keystore_file_open(ks, o->store, EUK);
    if (rv == 0) {
        if (EUK == unused)
            cpns_wipe(unused, sizeof unused);
        return 0;
    }
    cpns_wipe(EUK, CPNS_KEY_LEN);
    switch (rv) {
    case CPNS_ERR_PERM:
        fprintf(stderr,
                "cpns-pne: --store %s: group or others can access the key store "
                "(chmod 700 the directory, 600 its files)\n",
                o->store);
        return EXIT_USAGE;
    case CPNS_ERR_CORRUPT:
        fprintf(stderr,
                "cpns-pne: --store %s: the key store does not decrypt with this --key-file, or "
                "it is damaged or was tampered with; it is left untouched\n",
                o->store);
        return EXIT_FAILURE;
    default:
        fprintf(stderr, "cpns-pne: --store %s: %s%s%s\n", o->store, cpns_strerror(rv),
                rv == CPNS_ERR_IO && errno ? ": " : "",
                rv == CPNS_ERR_IO && errno ? strerror(errno) : "");
        return EXIT_FAILURE;
    }
}

/* --- keys --- */

static int print_keys(void *arg, const char *SGID, const cpns_stored_keys *keys)
{
    (void)arg;
    char fp[CPNS_FINGERPRINT_LEN + 1];
    char prev_version[16] = "-";
    char prev_fp[CPNS_FINGERPRINT_LEN + 1] = "-";
    cpns_fingerprint(keys->current.GK, CPNS_KEY_LEN, fp);
    if (keys->previous.KeyVersion) {
        snprintf(prev_version, sizeof prev_version, "%u", (unsigned)keys->previous.KeyVersion);
        cpns_fingerprint(keys->previous.GK, CPNS_KEY_LEN, prev_fp);
    }
    printf("%-24s %10u  %-16s  %10s  %s\n", SGID, (unsigned)keys->current.KeyVersion, fp,
           prev_version, prev_fp);
    return 0;
}

int pne_cmd_keys(const pne_options *o)
{
    cpns_keystore *ks;
    int status = pne_open_store(o, 0, &ks, NULL);
    if (status != 0)
        return status;
    printf("%-24s %10s  %-16s  %10s  %s\n", "SGID", "KeyVersion", "Fingerprint", "Previous",
           "PreviousFingerprint");
    int rv = ks->ops->list(ks, print_keys, NULL);
    cpns_keystore_free(ks);
    if (rv != 0) {
        fprintf(stderr, "cpns-pne: cannot list the key store: %s\n", cpns_strerror(rv));
        return EXIT_FAILURE;
    }
    return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* --- seal and open --- */

/* Reads all of stdin into buf (cap bytes). 0 with *len, or -1 (too long or a read error). */
static int read_stdin(uint8_t *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "cpns-pne: reading stdin: %s\n", strerror(errno));
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            uint8_t extra;
            if (read(STDIN_FILENO, &extra, 1) > 0) {
                fprintf(stderr, "cpns-pne: stdin is longer than %zu bytes\n", cap);
                return -1;
            }
            break;
        }
    }
    *len = n;
    return 0;
}

/* The stored keys of --sg. 0, or the exit status after printing why. */
static int load_keys(const pne_options *o, cpns_stored_keys *keys)
{
    cpns_keystore *ks;
    int status = pne_open_store(o, 0, &ks, NULL);
    if (status != 0)
        return status;
    int rv = ks->ops->get(ks, o->SGID, keys);
    cpns_keystore_free(ks);
    if (rv == CPNS_ERR_NOT_FOUND) {
        fprintf(stderr, "cpns-pne: no Group Key stored for SGID %s\n", o->SGID);
        return EXIT_FAILURE;
    }
    if (rv != 0) {
        fprintf(stderr, "cpns-pne: reading the key of SGID %s: %s\n", o->SGID, cpns_strerror(rv));
        return EXIT_FAILURE;
    }
    return 0;
}

int pne_cmd_seal(const pne_options *o)
{
    static uint8_t pt[PNE_SEAL_MAX];
    static uint8_t blob[PNE_SEAL_MAX + CPNS_GROUP_MSG_OVERHEAD];
    static char b64[CPNS_B64_LEN(PNE_SEAL_MAX + CPNS_GROUP_MSG_OVERHEAD) + 1];
    size_t pt_len, blob_len;
    if (read_stdin(pt, sizeof pt, &pt_len) != 0)
        return EXIT_FAILURE;
    cpns_stored_keys keys;
    int status = load_keys(o, &keys);
    if (status != 0) {
        cpns_wipe(pt, pt_len);
        return status;
    }
    uint8_t nonce[CPNS_GCM_NONCE_LEN];
    int rv = cpns_random(NULL, nonce, sizeof nonce);
    if (rv == 0)
        rv = cpns_group_seal(keys.current.GK, o->SGID, keys.current.KeyVersion, nonce, pt, pt_len,
                             blob, &blob_len);
    cpns_wipe(&keys, sizeof keys);
    cpns_wipe(pt, pt_len);
    if (rv == 0 && cpns_b64_encode(blob, blob_len, b64, sizeof b64) < 0)
        rv = CPNS_ERR_TOO_LARGE;
    if (rv != 0) {
        fprintf(stderr, "cpns-pne: cannot seal: %s\n", cpns_strerror(rv));
        return EXIT_FAILURE;
    }
    if (printf("%s\n", b64) < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "cpns-pne: writing stdout: %s\n", strerror(errno));
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

int pne_cmd_open(const pne_options *o)
{
    static char in[OPEN_INPUT_MAX];
    static uint8_t blob[PNE_SEAL_MAX + CPNS_GROUP_MSG_OVERHEAD];
    static uint8_t pt[PNE_SEAL_MAX];
    size_t in_len, blob_len;
    if (read_stdin((uint8_t *)in, sizeof in, &in_len) != 0)
        return EXIT_FAILURE;
    size_t start = 0;
    while (start < in_len && is_space(in[start]))
        start++;
    while (in_len > start && is_space(in[in_len - 1]))
        in_len--;
    int rv = cpns_b64_decode(in + start, in_len - start, blob, sizeof blob, &blob_len);
    if (rv != 0) {
        fprintf(stderr, "cpns-pne: stdin is not a base64 group message%s\n",
                rv == CPNS_ERR_TOO_LARGE ? " (too large)" : "");
        return EXIT_FAILURE;
    }
    uint32_t KeyVersion;
    if (cpns_group_msg_version(blob, blob_len, &KeyVersion) != 0) {
        fprintf(stderr, "cpns-pne: stdin is not a group message (too short or unknown format)\n");
        return EXIT_FAILURE;
    }
    cpns_stored_keys keys;
    int status = load_keys(o, &keys);
    if (status != 0)
        return status;
    const cpns_key_slot *slot = NULL;
    if (keys.current.KeyVersion == KeyVersion)
        slot = &keys.current;
    else if (keys.previous.KeyVersion && keys.previous.KeyVersion == KeyVersion)
        slot = &keys.previous;
    if (!slot) {
        fprintf(stderr,
                "cpns-pne: the message is sealed with KeyVersion %u of SGID %s, which is not "
                "stored (current %u, previous %u)\n",
                (unsigned)KeyVersion, o->SGID, (unsigned)keys.current.KeyVersion,
                (unsigned)keys.previous.KeyVersion);
        cpns_wipe(&keys, sizeof keys);
        return EXIT_FAILURE;
    }
    size_t pt_len = 0;
    rv = cpns_group_open(slot->GK, o->SGID, blob, blob_len, pt, &pt_len);
    cpns_wipe(&keys, sizeof keys);
    if (rv != 0) {
        fprintf(stderr, "cpns-pne: the message does not open with KeyVersion %u of SGID %s%s\n",
                (unsigned)KeyVersion, o->SGID,
                rv == CPNS_ERR_AUTH ? " (tampered, or sealed for another group)" : "");
        return EXIT_FAILURE;
    }
    int ok = fwrite(pt, 1, pt_len, stdout) == pt_len && fflush(stdout) == 0;
    cpns_wipe(pt, pt_len);
    if (!ok) {
        fprintf(stderr, "cpns-pne: writing stdout: %s\n", strerror(errno));
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
