/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore-custom: a key store backend of your own behind the
 * cpns_keystore_ops table of cpns/keystore.h, the one seam between the PNE
 * engine and the device's secure storage. Give the engine a cpns_keystore
 * whose ops are yours (cpns_pne_config.keystore) and every Group Key it
 * receives goes through your put(); the engine needs nothing else.
 *
 * This backend keeps the keys in one flat text file, one line per SGID
 * (sorted), current key first:
 *
 *     SGID KeyVersion SEALED [KeyVersion SEALED]
 *
 * SEALED is the base64 of the key sealed by a "secure element": the
 * secure_element table below, the place for a product's SE, TPM or TEE
 * calls. The stub here seals with AES-256-GCM (libcpns's group message
 * format, bound to the SGID and KeyVersion) under a device key derived from
 * a device secret; a real element keeps that key inside. The file is
 * replaced atomically on every put() (temporary file, fsync, rename, fsync of
 * the directory), so a crash leaves the old or the new file and a failed
 * put() leaves the store as it was (what the PNE then answers is Return 3).
 *
 * The rules every backend follows (keystore.h): put() makes GK the current
 * key and the old current one the previous (unless it has the same
 * KeyVersion: then it is replaced), durably, before it returns; get() gives
 * CPNS_ERR_NOT_FOUND for an unknown SGID; list() visits SGIDs in sorted
 * order and stops at a visitor's non-zero return; close() wipes. Bad
 * arguments give CPNS_ERR_INVALID_ARG.
 *
 * Build against the installed library:
 *     cc -std=c11 -o keystore-custom keystore-custom.c $(pkg-config --cflags --libs cpns)
 * Run: ./keystore-custom FILE    stores a few keys in FILE, reopens it and
 * lists them (fingerprints only). tests/examples/ runs the generic key store
 * checks against this backend (it includes this file with
 * KEYSTORE_CUSTOM_NO_MAIN defined).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpns/cpns.h>

#define SEALED_LEN (CPNS_KEY_LEN + CPNS_GROUP_MSG_OVERHEAD)

/* --- the secure element: where a product plugs in its hardware --- */

typedef struct secure_element {
    /* Seals key for (label, version) into out. 0 or a negative cpns_error. */
    int (*seal)(void *ctx, const char *label, uint32_t version, const uint8_t key[CPNS_KEY_LEN],
                uint8_t out[SEALED_LEN]);
    /* Opens what seal() made for the same label and version. 0, or CPNS_ERR_AUTH. */
    int (*unseal)(void *ctx, const char *label, uint32_t version, const uint8_t in[SEALED_LEN],
                  uint8_t key[CPNS_KEY_LEN]);
    void *ctx;
} secure_element;

/* The software stub. fail_seals makes the next seals fail, as a busy element would. */
typedef struct se_stub {
    uint8_t device_key[CPNS_KEY_LEN];
    int fail_seals;
} se_stub;

static int stub_seal(void *ctx, const char *label, uint32_t version,
                     const uint8_t key[CPNS_KEY_LEN], uint8_t out[SEALED_LEN])
{
    se_stub *s = ctx;
    uint8_t nonce[CPNS_GCM_NONCE_LEN];
    size_t len;
    if (s->fail_seals > 0) {
        s->fail_seals--;
        return CPNS_ERR_CRYPTO;
    }
    int rv = cpns_random(NULL, nonce, sizeof nonce);
    return rv ? rv
              : cpns_group_seal(s->device_key, label, version, nonce, key, CPNS_KEY_LEN, out, &len);
}

static int stub_unseal(void *ctx, const char *label, uint32_t version, const uint8_t in[SEALED_LEN],
                       uint8_t key[CPNS_KEY_LEN])
{
    se_stub *s = ctx;
    uint32_t v = 0;
    size_t len = 0;
    if (cpns_group_msg_version(in, SEALED_LEN, &v) != 0 || v != version ||
        cpns_group_open(s->device_key, label, in, SEALED_LEN, key, &len) != 0 ||
        len != CPNS_KEY_LEN)
        return CPNS_ERR_AUTH;
    return 0;
}

/* The stub's device key, derived from a device secret; the table that uses it. */
static secure_element se_stub_init(se_stub *s, const uint8_t secret[CPNS_KEY_LEN])
{
    memset(s, 0, sizeof *s);
    cpns_kdf(secret, "keystore-custom example device key", s->device_key);
    return (secure_element){stub_seal, stub_unseal, s};
}

/* --- the backend --- */

typedef struct record {
    char SGID[CPNS_ID_MAX + 1];
    uint32_t version[2]; /* current, previous; 0: empty */
    uint8_t sealed[2][SEALED_LEN];
} record;

typedef struct flat_keystore {
    cpns_keystore base; /* first: libcpns converts between the two pointers */
    char path[1024];
    secure_element se;
    record *recs; /* sorted by SGID */
    size_t n;
} flat_keystore;

/* The index of SGID, or where it would go (*found 0). */
static size_t find(const flat_keystore *f, const char *SGID, int *found)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(f->recs[mid].SGID, SGID);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static int unseal_record(flat_keystore *f, const record *r, cpns_stored_keys *out)
{
    cpns_key_slot *slot[2] = {&out->current, &out->previous};
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 2; i++) {
        if (r->version[i] == 0)
            continue;
        slot[i]->KeyVersion = r->version[i];
        if (f->se.unseal(f->se.ctx, r->SGID, r->version[i], r->sealed[i], slot[i]->GK) != 0) {
            cpns_wipe(out, sizeof *out);
            return CPNS_ERR_CORRUPT;
        }
    }
    return 0;
}

/* Writes recs[0..n) to the file: all of it or, on failure, nothing. */
static int write_file(const flat_keystore *f, const record *recs, size_t n)
{
    char tmp[sizeof f->path + 8], dir[sizeof f->path];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!out) {
        if (fd >= 0)
            close(fd);
        return CPNS_ERR_IO;
    }
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        ok = fprintf(out, "%s", recs[i].SGID) > 0;
        for (int k = 0; k < 2 && ok && recs[i].version[k]; k++) {
            char b64[CPNS_B64_LEN(SEALED_LEN) + 1];
            cpns_b64_encode(recs[i].sealed[k], SEALED_LEN, b64, sizeof b64);
            ok = fprintf(out, " %u %s", (unsigned)recs[i].version[k], b64) > 0;
        }
        ok = ok && fputc('\n', out) != EOF;
    }
    ok = ok && fflush(out) == 0 && fsync(fileno(out)) == 0;
    ok = fclose(out) == 0 && ok && rename(tmp, f->path) == 0;
    if (!ok) {
        unlink(tmp);
        return CPNS_ERR_IO;
    }
    /* The rename itself is durable once the directory is synced. */
    snprintf(dir, sizeof dir, "%s", f->path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        slash[slash == dir] = '\0'; /* "/file" is in "/" */
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int flat_get(cpns_keystore *ks, const char *SGID, cpns_stored_keys *out)
{
    flat_keystore *f = (flat_keystore *)ks;
    int found;
    if (!SGID || !out)
        return CPNS_ERR_INVALID_ARG;
    size_t i = find(f, SGID, &found);
    return found ? unseal_record(f, &f->recs[i], out) : CPNS_ERR_NOT_FOUND;
}

static int flat_put(cpns_keystore *ks, const char *SGID, uint32_t KeyVersion,
                    const uint8_t GK[CPNS_KEY_LEN])
{
    flat_keystore *f = (flat_keystore *)ks;
    int found;
    if (!SGID || !cpns_id_valid(SGID) || KeyVersion == 0 || !GK)
        return CPNS_ERR_INVALID_ARG;
    size_t at = find(f, SGID, &found);
    /* The new table is built aside: the old one stays in place until the file is written. */
    record *recs = calloc(f->n + 1, sizeof *recs);
    if (!recs)
        return CPNS_ERR_NOMEM;
    if (f->n) {
        memcpy(recs, f->recs, at * sizeof *recs);
        memcpy(recs + at + 1, f->recs + at + found, (f->n - at - found) * sizeof *recs);
    }
    record *r = &recs[at];
    if (found) {
        *r = f->recs[at];
        if (r->version[0] != KeyVersion) { /* the old current one becomes the previous one */
            r->version[1] = r->version[0];
            memcpy(r->sealed[1], r->sealed[0], SEALED_LEN);
        }
    } else {
        snprintf(r->SGID, sizeof r->SGID, "%s", SGID);
    }
    r->version[0] = KeyVersion;
    int rv = f->se.seal(f->se.ctx, SGID, KeyVersion, GK, r->sealed[0]);
    size_t n = f->n + !found;
    if (rv == 0)
        rv = write_file(f, recs, n);
    if (rv != 0) {
        free(recs);
        return rv;
    }
    free(f->recs);
    f->recs = recs;
    f->n = n;
    return 0;
}

static int flat_list(cpns_keystore *ks, cpns_keystore_visit_fn fn, void *arg)
{
    flat_keystore *f = (flat_keystore *)ks;
    if (!fn)
        return CPNS_ERR_INVALID_ARG;
    for (size_t i = 0; i < f->n; i++) {
        cpns_stored_keys keys;
        int rv = unseal_record(f, &f->recs[i], &keys);
        if (rv == 0)
            rv = fn(arg, f->recs[i].SGID, &keys);
        cpns_wipe(&keys, sizeof keys);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static void flat_close(cpns_keystore *ks)
{
    flat_keystore *f = (flat_keystore *)ks;
    free(f->recs); /* sealed blobs only: nothing in clear to wipe */
    cpns_wipe(f, sizeof *f);
    free(f);
}

static const cpns_keystore_ops flat_ops = {flat_get, flat_put, flat_list, flat_close};

/* Parses one line of the file into r. 0, or CPNS_ERR_CORRUPT. */
static int parse_line(char *line, record *r)
{
    char *save = NULL, *tok = strtok_r(line, " \n", &save);
    if (!tok || !cpns_id_valid(tok))
        return CPNS_ERR_CORRUPT;
    memset(r, 0, sizeof *r);
    snprintf(r->SGID, sizeof r->SGID, "%s", tok);
    int k = 0;
    for (; k < 2 && (tok = strtok_r(NULL, " \n", &save)) != NULL; k++) {
        char *end;
        unsigned long v = strtoul(tok, &end, 10);
        char *b64 = strtok_r(NULL, " \n", &save);
        size_t len = 0;
        if (*end || v == 0 || v > CPNS_KEYVERSION_MAX || !b64 ||
            cpns_b64_decode(b64, strlen(b64), r->sealed[k], SEALED_LEN, &len) != 0 ||
            len != SEALED_LEN)
            return CPNS_ERR_CORRUPT;
        r->version[k] = (uint32_t)v;
    }
    return k == 0 || strtok_r(NULL, " \n", &save) ? CPNS_ERR_CORRUPT : 0;
}

/* Reads the file, if any; every key must unseal, or the file is refused (never emptied). */
static int read_file(flat_keystore *f)
{
    FILE *in = fopen(f->path, "r");
    if (!in)
        return errno == ENOENT ? 0 : CPNS_ERR_IO;
    char line[512];
    int rv = 0;
    while (rv == 0 && fgets(line, sizeof line, in)) {
        record r, *more = realloc(f->recs, (f->n + 1) * sizeof *more);
        if (!more) {
            rv = CPNS_ERR_NOMEM;
            break;
        }
        f->recs = more;
        cpns_stored_keys keys;
        rv = parse_line(line, &r);
        if (rv == 0 && f->n > 0 && strcmp(f->recs[f->n - 1].SGID, r.SGID) >= 0)
            rv = CPNS_ERR_CORRUPT; /* not sorted, or an SGID twice */
        if (rv == 0)
            rv = unseal_record(f, &r, &keys);
        cpns_wipe(&keys, sizeof keys);
        if (rv == 0)
            f->recs[f->n++] = r;
    }
    fclose(in);
    return rv;
}

/*
 * Opens (or starts) the store at path, with se sealing its keys.
 * 0 and *out; CPNS_ERR_INVALID_ARG; CPNS_ERR_CORRUPT when the file does not
 * parse or a key does not unseal (another device's file, tampering);
 * CPNS_ERR_IO; CPNS_ERR_NOMEM.
 */
static int flat_keystore_open(cpns_keystore **out, const char *path, const secure_element *se)
{
    if (!out || !path || !se || strlen(path) >= sizeof((flat_keystore *)0)->path)
        return CPNS_ERR_INVALID_ARG;
    *out = NULL;
    flat_keystore *f = calloc(1, sizeof *f);
    if (!f)
        return CPNS_ERR_NOMEM;
    f->base.ops = &flat_ops;
    f->se = *se;
    snprintf(f->path, sizeof f->path, "%s", path);
    int rv = read_file(f);
    if (rv != 0) {
        flat_close(&f->base);
        return rv;
    }
    *out = &f->base;
    return 0;
}

#ifndef KEYSTORE_CUSTOM_NO_MAIN
static int print_keys(void *arg, const char *SGID, const cpns_stored_keys *keys)
{
    char fp[CPNS_FINGERPRINT_LEN + 1];
    (void)arg;
    cpns_fingerprint(keys->current.GK, CPNS_KEY_LEN, fp);
    printf("%s current %u %s", SGID, (unsigned)keys->current.KeyVersion, fp);
    if (keys->previous.KeyVersion) {
        cpns_fingerprint(keys->previous.GK, CPNS_KEY_LEN, fp);
        printf(" previous %u %s", (unsigned)keys->previous.KeyVersion, fp);
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: keystore-custom FILE\n");
        return 2;
    }
    /* A real device reads this from its fuses; fixed here so that FILE opens again next run. */
    static const uint8_t device_secret[CPNS_KEY_LEN] = "keystore-custom: not a secret";
    se_stub stub;
    secure_element se = se_stub_init(&stub, device_secret);
    cpns_keystore *ks = NULL;
    uint8_t GK[CPNS_KEY_LEN];
    int rv = flat_keystore_open(&ks, argv[1], &se);
    /* What the PNE engine does for each delivery: put() the decrypted Group Key. */
    for (uint32_t v = 1; v <= 2 && rv == 0; v++) {
        rv = cpns_random(NULL, GK, sizeof GK);
        if (rv == 0)
            rv = ks->ops->put(ks, "sg-example", v, GK);
    }
    if (rv == 0 && (rv = cpns_random(NULL, GK, sizeof GK)) == 0)
        rv = ks->ops->put(ks, "sg-other", 1, GK);
    cpns_wipe(GK, sizeof GK);
    cpns_keystore_free(ks);
    if (rv == 0)
        rv = flat_keystore_open(&ks, argv[1], &se); /* what survives a restart */
    if (rv == 0) {
        rv = ks->ops->list(ks, print_keys, NULL);
        cpns_keystore_free(ks);
    }
    cpns_wipe(&stub, sizeof stub);
    if (rv != 0) {
        fprintf(stderr, "keystore-custom: %s: %s\n", argv[1], cpns_strerror(rv));
        return 1;
    }
    return 0;
}
#endif
