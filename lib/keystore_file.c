/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The file keystore: a PNE's secure storage for its Group Keys (7.8.6.1
 * step 2) as one encrypted file, DIR/groupkeys, replaced atomically and
 * durably on every put() so that a key is on disk before the PNE answers.
 *
 * File format, version 1 (all integers big-endian):
 *
 *   offset  size  field
 *   0       8     magic "CPNSKEYS"
 *   8       1     format version: 0x01 (sealed with K_store below), 0x02 (sealed
 *                 in a PKCS#11 token by its own key, lib/keystore_pkcs11.c)
 *   9       12    nonce, fresh from the CSPRNG for every write
 *   21      n     AES-256-GCM ciphertext of the records, AAD = bytes 0..8
 *   21+n    16    GCM tag
 *
 *   key: HKDF(EUK, "CPNS 1.1 PNE key store") (cpns_kdf, CPNS_INFO_KEY_STORE);
 *   in format 0x02 a non-extractable AES-256 key that never leaves the token
 *
 *   plaintext records:
 *   4       count of records
 *   then per record, in strictly increasing strcmp() order of SGID:
 *   1       L, length of the SGID (1..64)
 *   L       SGID (a valid identifier, no NUL)
 *   4       current KeyVersion (>= 1)
 *   32      current Group Key
 *   4       previous KeyVersion (0 = none; its key is then 32 zero bytes)
 *   32      previous Group Key
 *
 * Anything else (bad magic or version, a failed tag, which is also what a
 * wrong EUK looks like, a short record, unsorted or duplicate SGIDs, bytes
 * after the last record) makes the file CPNS_ERR_CORRUPT: open() refuses it
 * and, since no keystore object then exists, it is never overwritten.
 *
 * Writing: DIR/groupkeys.tmp is created 0600 (O_EXCL, fchmod against the
 * umask), written, fsync'ed, renamed over DIR/groupkeys, and DIR is fsync'ed.
 * Files and DIR with any group or other permission bit are refused with
 * CPNS_ERR_PERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpns/crypto.h"
#include "crypto_internal.h"
#include "keystore_internal.h"

#define KS_FILE "groupkeys"
#define KS_TMP "groupkeys.tmp"
#define KS_MAGIC "CPNSKEYS"
#define KS_MAGIC_LEN 8
#define KS_FORMAT_EUK 0x01
#define KS_HDR_LEN (KS_MAGIC_LEN + 1)
#define KS_OFF_NONCE KS_HDR_LEN
#define KS_OFF_CT (KS_OFF_NONCE + CPNS_GCM_NONCE_LEN)
#define KS_OVERHEAD (KS_OFF_CT + CPNS_GCM_TAG_LEN)
#define KS_SLOT_LEN (4 + CPNS_KEY_LEN)
#define KS_RECORD_FIXED (1 + 2 * KS_SLOT_LEN)
/* far more than any PNE's groups; bounds what a damaged file can make us read */
#define KS_FILE_MAX (64u * 1024 * 1024)

typedef struct file_keystore {
    cpns_keystore base; /* first, so that the two pointers convert */
    cpns_ks_table table;
    int dirfd;
    cpns_ks_sealer sealer;
    uint8_t K_store[CPNS_KEY_LEN]; /* the sealer's key in format 0x01 */
} file_keystore;

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void make_header(const file_keystore *fs, uint8_t hdr[KS_HDR_LEN])
{
    memcpy(hdr, KS_MAGIC, KS_MAGIC_LEN);
    hdr[KS_MAGIC_LEN] = fs->sealer.format;
}

static int mode_private(mode_t mode)
{
    return (mode & (S_IRWXG | S_IRWXO)) == 0;
}

/* --- reading --- */

static const uint8_t *parse_slot(const uint8_t *p, cpns_key_slot *slot)
{
    slot->KeyVersion = get_be32(p);
    memcpy(slot->GK, p + 4, CPNS_KEY_LEN);
    return p + KS_SLOT_LEN;
}

static int parse_records(cpns_ks_table *t, const uint8_t *pt, size_t len)
{
    if (len < 4)
        return CPNS_ERR_CORRUPT;
    uint32_t count = get_be32(pt);
    const uint8_t *p = pt + 4, *end = pt + len;
    const cpns_ks_entry *prev = NULL;
    for (uint32_t i = 0; i < count; i++) {
        if ((size_t)(end - p) < KS_RECORD_FIXED)
            return CPNS_ERR_CORRUPT;
        size_t L = *p++;
        if (L == 0 || L > CPNS_ID_MAX || (size_t)(end - p) < L + 2 * KS_SLOT_LEN)
            return CPNS_ERR_CORRUPT;
        cpns_ks_entry *e = cpns_calloc(1, sizeof *e);
        if (!e)
            return CPNS_ERR_NOMEM;
        memcpy(e->SGID, p, L);
        p += L;
        p = parse_slot(p, &e->keys.current);
        p = parse_slot(p, &e->keys.previous);
        static const uint8_t zero[CPNS_KEY_LEN];
        int ok = strlen(e->SGID) == L && cpns_id_valid(e->SGID) &&
                 e->keys.current.KeyVersion != 0 &&
                 (e->keys.previous.KeyVersion != 0 ||
                  memcmp(e->keys.previous.GK, zero, CPNS_KEY_LEN) == 0) &&
                 (!prev || strcmp(prev->SGID, e->SGID) < 0);
        if (!ok || cpns_map_put(&t->map, e->SGID, e)) {
            cpns_wipe(e, sizeof *e);
            cpns_free(e);
            return ok ? CPNS_ERR_NOMEM : CPNS_ERR_CORRUPT;
        }
        prev = e;
    }
    return p == end ? 0 : CPNS_ERR_CORRUPT;
}

static int read_full(int fd, uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t r = read(fd, buf + off, len - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return CPNS_ERR_IO;
        if (r == 0)
            return CPNS_ERR_CORRUPT; /* shorter than fstat said: truncated under us */
        off += (size_t)r;
    }
    return 0;
}

static int decrypt_and_parse(file_keystore *fs, const uint8_t *file, size_t len)
{
    uint8_t hdr[KS_HDR_LEN];
    make_header(fs, hdr);
    if (len < KS_OVERHEAD || memcmp(file, hdr, KS_HDR_LEN) != 0)
        return CPNS_ERR_CORRUPT;
    size_t pt_len = len - KS_OVERHEAD;
    uint8_t *pt = cpns_malloc(pt_len);
    if (!pt)
        return CPNS_ERR_NOMEM;
    int rv = fs->sealer.open(fs->sealer.ctx, file + KS_OFF_NONCE, hdr, KS_HDR_LEN, file + KS_OFF_CT,
                             pt_len, file + len - CPNS_GCM_TAG_LEN, pt);
    if (rv == CPNS_ERR_AUTH)
        rv = CPNS_ERR_CORRUPT;
    if (!rv)
        rv = parse_records(&fs->table, pt, pt_len);
    cpns_wipe(pt, pt_len);
    cpns_free(pt);
    return rv;
}

int cpns_ks_read_file(int dirfd, const char *name, size_t min, size_t max, uint8_t **out,
                      size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? CPNS_ERR_NOT_FOUND : CPNS_ERR_IO;
    struct stat st;
    int rv = 0;
    uint8_t *file = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rv = CPNS_ERR_IO;
    else if (!mode_private(st.st_mode))
        rv = CPNS_ERR_PERM;
    else if ((uint64_t)st.st_size > max || (size_t)st.st_size < min)
        rv = CPNS_ERR_CORRUPT;
    if (!rv) {
        file = cpns_malloc((size_t)st.st_size);
        rv = file ? read_full(fd, file, (size_t)st.st_size) : CPNS_ERR_NOMEM;
    }
    close(fd);
    if (rv) {
        cpns_free(file);
        return rv;
    }
    *out = file;
    *len = (size_t)st.st_size;
    return 0;
}

static int load(file_keystore *fs)
{
    uint8_t *file;
    size_t len;
    int rv = cpns_ks_read_file(fs->dirfd, KS_FILE, KS_OVERHEAD, KS_FILE_MAX, &file, &len);
    if (rv == CPNS_ERR_NOT_FOUND)
        return 0; /* no file yet: an empty store */
    if (!rv)
        rv = decrypt_and_parse(fs, file, len);
    cpns_free(file); /* ciphertext only: nothing to wipe */
    return rv;
}

/* --- writing --- */

static int write_full(int fd, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return CPNS_ERR_IO;
        off += (size_t)w;
    }
    return 0;
}

int cpns_ks_replace_file(int dirfd, const char *name, const char *tmp, const uint8_t *buf,
                         size_t len)
{
    /* a leftover from a crash; a directory or anything else there stays and fails us */
    if (unlinkat(dirfd, tmp, 0) != 0 && errno != ENOENT)
        return CPNS_ERR_IO;
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return CPNS_ERR_IO;
    int rv = fchmod(fd, 0600) == 0 ? 0 : CPNS_ERR_IO;
    if (!rv)
        rv = write_full(fd, buf, len);
    if (!rv && fsync(fd) != 0)
        rv = CPNS_ERR_IO;
    if (close(fd) != 0 && !rv)
        rv = CPNS_ERR_IO;
    if (!rv && renameat(dirfd, tmp, dirfd, name) != 0)
        rv = CPNS_ERR_IO;
    if (rv) {
        unlinkat(dirfd, tmp, 0);
        return rv;
    }
    /*
     * Without this the rename may not survive a power cut. If it fails the
     * new file may already be in place; the caller reports failure and keeps
     * the old state in memory, and the retried delivery rewrites the file.
     */
    return fsync(dirfd) == 0 ? 0 : CPNS_ERR_IO;
}

static uint8_t *serialize_slot(uint8_t *p, const cpns_key_slot *slot)
{
    put_be32(p, slot->KeyVersion);
    memcpy(p + 4, slot->GK, CPNS_KEY_LEN);
    return p + KS_SLOT_LEN;
}

static int save(file_keystore *fs)
{
    cpns_ks_entry **entries;
    size_t n;
    int rv = cpns_ks_table_sorted(&fs->table, &entries, &n);
    if (rv)
        return rv;
    size_t pt_len = 4;
    for (size_t i = 0; i < n; i++)
        pt_len += KS_RECORD_FIXED + strlen(entries[i]->SGID);
    size_t file_len = pt_len + KS_OVERHEAD;
    uint8_t *pt = cpns_malloc(pt_len);
    uint8_t *file = cpns_malloc(file_len);
    if (!pt || !file || n > UINT32_MAX || file_len > KS_FILE_MAX) {
        rv = pt && file ? CPNS_ERR_TOO_LARGE : CPNS_ERR_NOMEM;
        goto out;
    }

    uint8_t *p = pt;
    put_be32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        size_t L = strlen(entries[i]->SGID);
        *p++ = (uint8_t)L;
        memcpy(p, entries[i]->SGID, L);
        p += L;
        p = serialize_slot(p, &entries[i]->keys.current);
        p = serialize_slot(p, &entries[i]->keys.previous);
    }

    make_header(fs, file);
    rv = cpns_random(NULL, file + KS_OFF_NONCE, CPNS_GCM_NONCE_LEN);
    if (!rv)
        rv = fs->sealer.seal(fs->sealer.ctx, file + KS_OFF_NONCE, file, KS_HDR_LEN, pt, pt_len,
                             file + KS_OFF_CT, file + KS_OFF_CT + pt_len);
    if (!rv)
        rv = cpns_ks_replace_file(fs->dirfd, KS_FILE, KS_TMP, file, file_len);
out:
    if (pt)
        cpns_wipe(pt, pt_len);
    cpns_free(pt);
    cpns_free(file);
    cpns_free(entries);
    return rv;
}

/* --- the ops --- */

static int file_get(cpns_keystore *ks, const char *SGID, cpns_stored_keys *out)
{
    file_keystore *fs = (file_keystore *)ks;
    if (!out)
        return CPNS_ERR_INVALID_ARG;
    return cpns_ks_table_get(&fs->table, SGID, out);
}

static int file_put(cpns_keystore *ks, const char *SGID, uint32_t KeyVersion,
                    const uint8_t GK[CPNS_KEY_LEN])
{
    file_keystore *fs = (file_keystore *)ks;
    cpns_ks_undo undo;
    int rv = cpns_ks_table_put(&fs->table, SGID, KeyVersion, GK, &undo);
    if (rv)
        return rv;
    rv = save(fs);
    if (rv)
        cpns_ks_table_undo(&fs->table, &undo);
    else
        cpns_ks_table_commit(&undo);
    return rv;
}

static int file_list(cpns_keystore *ks, cpns_keystore_visit_fn fn, void *arg)
{
    file_keystore *fs = (file_keystore *)ks;
    return cpns_ks_table_list(&fs->table, fn, arg);
}

static void file_close(cpns_keystore *ks)
{
    file_keystore *fs = (file_keystore *)ks;
    cpns_ks_table_clear(&fs->table);
    if (fs->dirfd >= 0)
        close(fs->dirfd);
    cpns_wipe(fs, sizeof *fs);
    cpns_free(fs);
}

static const cpns_keystore_ops file_ops = {file_get, file_put, file_list, file_close};

int cpns_ks_open_dir(const char *dir, int *dirfd)
{
    if (mkdir(dir, 0700) == 0) {
        /* the umask may have taken bits we need; it can never have added any */
        if (chmod(dir, 0700) != 0)
            return CPNS_ERR_IO;
    } else if (errno != EEXIST) {
        return CPNS_ERR_IO;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return CPNS_ERR_IO;
    struct stat st;
    int rv = 0;
    if (fstat(fd, &st) != 0)
        rv = CPNS_ERR_IO;
    else if (!mode_private(st.st_mode))
        rv = CPNS_ERR_PERM;
    if (rv) {
        close(fd);
        return rv;
    }
    *dirfd = fd;
    return 0;
}

/* Format 0x01: AES-256-GCM in process memory under K_store. */
static int seal_k_store(void *ctx, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                        const uint8_t *pt, size_t len, uint8_t *ct, uint8_t *tag)
{
    const file_keystore *fs = ctx;
    return cpns_gcm_seal(fs->K_store, nonce, aad, aad_len, pt, len, ct, tag);
}

static int open_k_store(void *ctx, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                        const uint8_t *ct, size_t len, const uint8_t *tag, uint8_t *pt)
{
    const file_keystore *fs = ctx;
    return cpns_gcm_open(fs->K_store, nonce, aad, aad_len, ct, len, tag, pt);
}

static int file_open(cpns_keystore **out, const char *dir, const uint8_t *EUK,
                     const cpns_ks_sealer *sealer)
{
    file_keystore *fs = cpns_calloc(1, sizeof *fs);
    if (!fs)
        return CPNS_ERR_NOMEM;
    fs->base.ops = &file_ops;
    fs->dirfd = -1;
    if (sealer)
        fs->sealer = *sealer;
    else
        fs->sealer = (cpns_ks_sealer){KS_FORMAT_EUK, seal_k_store, open_k_store, fs};
    int rv = cpns_ks_open_dir(dir, &fs->dirfd);
    if (!rv && EUK)
        rv = cpns_kdf(EUK, CPNS_INFO_KEY_STORE, fs->K_store);
    if (!rv)
        rv = load(fs);
    if (rv) {
        file_close(&fs->base);
        return rv;
    }
    *out = &fs->base;
    return 0;
}

int cpns_keystore_file_open(cpns_keystore **out, const char *dir, const uint8_t EUK[CPNS_KEY_LEN])
{
    if (!out)
        return CPNS_ERR_INVALID_ARG;
    *out = NULL;
    if (!dir || !*dir || !EUK)
        return CPNS_ERR_INVALID_ARG;
    return file_open(out, dir, EUK, NULL);
}

int cpns_ks_file_open_sealed(cpns_keystore **out, const char *dir, const cpns_ks_sealer *sealer)
{
    *out = NULL;
    if (!dir || !*dir || !sealer || sealer->format == KS_FORMAT_EUK)
        return CPNS_ERR_INVALID_ARG;
    return file_open(out, dir, NULL, sealer);
}
