/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the PNE key-store file loader (lib/keystore_file.c).
 *
 * The input becomes DIR/groupkeys (mode 0600), opened with a fixed EUK
 * (fz_euk(FZ_PNE1)). Its first byte picks how:
 *   even: the rest of the input is the file, byte for byte (header, nonce,
 *         ciphertext and tag as an attacker with the disk would write them);
 *   odd:  the rest is the plaintext of the records, sealed by the harness
 *         with the right key and header, so that the fuzzer reaches the
 *         record parser behind the GCM tag (a bug there would be reachable
 *         by whoever could write a file under the EUK, e.g. an older build).
 * Besides "no crash, no sanitizer report" it abort()s when open() returns
 * anything but 0 or CPNS_ERR_CORRUPT, and, when the file loads, unless every
 * listed SGID can be read back, a put() succeeds, and the file written by
 * that put() opens again with the new key current and the old one previous.
 * DIR is a private temporary directory (under /dev/shm when there is one,
 * so that the fsyncs of put() cost little), removed at exit.
 */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto_internal.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[96];

static void remove_dir(void)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/groupkeys.tmp", dir);
    unlink(path);
    unlink(tmp);
    rmdir(dir);
}

static void make_dir(void)
{
    if (dir[0])
        return;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/fuzz_keystore.XXXXXX", base);
    FZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/groupkeys", dir);
    atexit(remove_dir);
}

static void write_file(const uint8_t *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    FZ_CHECK(fp != NULL);
    FZ_CHECK(fwrite(data, 1, size, fp) == size);
    FZ_CHECK(fclose(fp) == 0);
    FZ_CHECK(chmod(path, 0600) == 0);
}

/* The file format of keystore_file.c around a plaintext: magic, version, nonce, ciphertext, tag. */
static void write_sealed(const uint8_t EUK[CPNS_KEY_LEN], const uint8_t *pt, size_t len)
{
    static uint8_t file[9 + CPNS_GCM_NONCE_LEN + 65536 + CPNS_GCM_TAG_LEN];
    uint8_t K_store[CPNS_KEY_LEN];
    if (len > 65536)
        len = 65536;
    memcpy(file, "CPNSKEYS\x01", 9);
    memset(file + 9, 0x42, CPNS_GCM_NONCE_LEN);
    FZ_CHECK(cpns_kdf(EUK, CPNS_INFO_KEY_STORE, K_store) == 0);
    uint8_t *ct = file + 9 + CPNS_GCM_NONCE_LEN;
    FZ_CHECK(cpns_gcm_seal(K_store, file + 9, file, 9, pt, len, ct, ct + len) == 0);
    write_file(file, 9 + CPNS_GCM_NONCE_LEN + len + CPNS_GCM_TAG_LEN);
}

typedef struct visit {
    cpns_keystore *ks;
    char first[CPNS_ID_MAX + 1];
    size_t n;
} visit;

static int check_entry(void *arg, const char *SGID, const cpns_stored_keys *keys)
{
    visit *v = arg;
    cpns_stored_keys again;
    FZ_CHECK(cpns_id_valid(SGID));
    FZ_CHECK(keys->current.KeyVersion >= 1);
    FZ_CHECK(v->ks->ops->get(v->ks, SGID, &again) == 0);
    FZ_CHECK(memcmp(&again, keys, sizeof again) == 0);
    if (v->n++ == 0)
        strcpy(v->first, SGID);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t EUK[CPNS_KEY_LEN];
    cpns_keystore *ks = NULL;
    fz_euk(FZ_PNE1, EUK);
    make_dir();
    if (size > 0 && (data[0] & 1))
        write_sealed(EUK, data + 1, size - 1);
    else
        write_file(data + (size > 0), size - (size > 0));

    int rv = cpns_keystore_file_open(&ks, dir, EUK);
    FZ_CHECK(rv == 0 || rv == CPNS_ERR_CORRUPT);
    if (rv != 0) {
        fz_trace_text("keystore: %s", cpns_strerror(rv));
        return 0;
    }

    visit v = {ks, "", 0};
    FZ_CHECK(ks->ops->list(ks, check_entry, &v) == 0);
    fz_trace_text("keystore: loaded, %zu groups", v.n);
    const char *SGID = v.n ? v.first : FZ_SGID;
    cpns_stored_keys before = {0}, after;
    int had = ks->ops->get(ks, SGID, &before);
    FZ_CHECK(had == 0 || had == CPNS_ERR_NOT_FOUND);
    uint32_t KeyVersion =
        before.current.KeyVersion == UINT32_MAX ? 1 : before.current.KeyVersion + 1;
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, 0xa5, sizeof GK);
    FZ_CHECK(ks->ops->put(ks, SGID, KeyVersion, GK) == 0);
    cpns_keystore_free(ks);

    FZ_CHECK(cpns_keystore_file_open(&ks, dir, EUK) == 0);
    FZ_CHECK(ks->ops->get(ks, SGID, &after) == 0);
    FZ_CHECK(after.current.KeyVersion == KeyVersion &&
             memcmp(after.current.GK, GK, sizeof GK) == 0);
    if (had == 0 && before.current.KeyVersion != KeyVersion)
        FZ_CHECK(memcmp(&after.previous, &before.current, sizeof after.previous) == 0);
    cpns_keystore_free(ks);
    return 0;
}
