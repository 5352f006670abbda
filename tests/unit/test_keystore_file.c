/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/keystore_file.c, the PNE's secure storage (7.8.6.1 step 2,
 * PROTOCOL.md 5.1): the key store suite (keystore_suite.h: the put() rules
 * across reopens, sorted listing, a failed put() that changes nothing), and
 * what is the file backend's own: the file is 0600 and encrypted, a file or directory open to
 * others is refused, a damaged file or a wrong EUK is refused and left byte for byte as it was, and
 * a put() that cannot write leaves the old state in memory and on disk.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto_vectors.h"
#include "keystore_suite.h"

typedef struct fixture {
    char root[64];      /* from mkdtemp */
    char dir[96];       /* the keystore DIR, root/store, created by open() */
    char path[128];     /* dir/groupkeys */
    char tmp_path[128]; /* dir/groupkeys.tmp */
    uint8_t EUK[CPNS_KEY_LEN];
} fixture;

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        assert_non_null(d);
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            rm_rf(sub);
        }
        closedir(d);
        assert_int_equal(rmdir(path), 0);
    } else {
        assert_int_equal(unlink(path), 0);
    }
}

static int setup(void **state)
{
    fixture *f = test_calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/cpns-ks-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->dir, sizeof f->dir, "%s/store", f->root);
    snprintf(f->path, sizeof f->path, "%s/groupkeys", f->dir);
    snprintf(f->tmp_path, sizeof f->tmp_path, "%s/groupkeys.tmp", f->dir);
    v_euk(f->EUK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rm_rf(f->root);
    test_free(f);
    return 0;
}

static void key_of(uint8_t GK[CPNS_KEY_LEN], uint8_t tag)
{
    memset(GK, tag, CPNS_KEY_LEN);
}

static cpns_keystore *open_ok(const fixture *f)
{
    cpns_keystore *ks = NULL;
    assert_int_equal(cpns_keystore_file_open(&ks, f->dir, f->EUK), 0);
    assert_non_null(ks);
    return ks;
}

static void put_ok(cpns_keystore *ks, const char *SGID, uint32_t KeyVersion, uint8_t tag)
{
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, tag);
    assert_int_equal(ks->ops->put(ks, SGID, KeyVersion, GK), 0);
}

static void assert_slot(const cpns_key_slot *s, uint32_t KeyVersion, uint8_t tag)
{
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, tag);
    assert_int_equal(s->KeyVersion, KeyVersion);
    if (KeyVersion)
        assert_memory_equal(s->GK, GK, CPNS_KEY_LEN);
}

static void assert_keys(cpns_keystore *ks, const char *SGID, uint32_t cur, uint8_t cur_tag,
                        uint32_t prev, uint8_t prev_tag)
{
    cpns_stored_keys k;
    assert_int_equal(ks->ops->get(ks, SGID, &k), 0);
    assert_slot(&k.current, cur, cur_tag);
    assert_slot(&k.previous, prev, prev_tag);
}

/* The whole file in a malloc'ed buffer (NULL if there is none). */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, fp);
    assert_true(*len < (1 << 16));
    fclose(fp);
    return buf;
}

static void spit(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* The key store suite (keystore_suite.h) on a file store in a fresh directory. */
static int file_setup(void **ctx)
{
    return setup(ctx);
}

static void file_teardown(void *ctx)
{
    void *state = ctx;
    teardown(&state);
}

static int file_open(void *ctx, cpns_keystore **out)
{
    const fixture *f = ctx;
    return cpns_keystore_file_open(out, f->dir, f->EUK);
}

/* For real: a directory where the temporary file must go, which root cannot replace either. */
static void file_fail_puts(void *ctx, cpns_keystore *ks, bool on)
{
    const fixture *f = ctx;
    (void)ks;
    if (on)
        assert_int_equal(mkdir(f->tmp_path, 0700), 0);
    else
        assert_int_equal(rmdir(f->tmp_path), 0);
}

static const keystore_backend file_backend = {
    .name = "keystore_suite_file",
    .setup = file_setup,
    .teardown = file_teardown,
    .open = file_open,
    .durable = true,
    .fail_puts = file_fail_puts,
};

/* PROTOCOL.md 5.1: mode 0600 whatever the umask; encrypted at rest */
static void test_file_mode_and_encrypted(void **state)
{
    fixture *f = *state;
    mode_t old = umask(0);
    cpns_keystore *ks = open_ok(f);
    put_ok(ks, "sg-a", 1, 0x5a);
    umask(old);
    assert_int_equal(mode_of(f->dir), 0700);
    assert_int_equal(mode_of(f->path), 0600);
    assert_int_equal(access(f->tmp_path, F_OK), -1); /* no temporary file left behind */

    size_t len;
    uint8_t *buf = slurp(f->path, &len);
    assert_non_null(buf);
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, 0x5a);
    for (size_t i = 0; i + CPNS_KEY_LEN <= len; i++)
        assert_memory_not_equal(buf + i, GK, CPNS_KEY_LEN);
    for (size_t i = 0; i + 4 <= len; i++) /* not even the SGID shows */
        assert_memory_not_equal(buf + i, "sg-a", 4);

    /* a fresh nonce per write: the same content never gives the same file */
    put_ok(ks, "sg-a", 1, 0x5a);
    size_t len2;
    uint8_t *buf2 = slurp(f->path, &len2);
    assert_int_equal(len, len2);
    assert_memory_not_equal(buf, buf2, len);
    free(buf);
    free(buf2);
    cpns_keystore_free(ks);
}

static void test_file_refuses_open_permissions(void **state)
{
    fixture *f = *state;
    cpns_keystore *ks = open_ok(f);
    put_ok(ks, "sg-a", 1, 0x11);
    cpns_keystore_free(ks);

    assert_int_equal(chmod(f->path, 0644), 0);
    ks = (cpns_keystore *)1;
    assert_int_equal(cpns_keystore_file_open(&ks, f->dir, f->EUK), CPNS_ERR_PERM);
    assert_null(ks);
    assert_int_equal(chmod(f->path, 0640), 0);
    assert_int_equal(cpns_keystore_file_open(&ks, f->dir, f->EUK), CPNS_ERR_PERM);
    assert_int_equal(chmod(f->path, 0600), 0);

    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(cpns_keystore_file_open(&ks, f->dir, f->EUK), CPNS_ERR_PERM);
    assert_int_equal(chmod(f->dir, 0701), 0);
    assert_int_equal(cpns_keystore_file_open(&ks, f->dir, f->EUK), CPNS_ERR_PERM);
    assert_int_equal(chmod(f->dir, 0700), 0);

    ks = open_ok(f);
    assert_keys(ks, "sg-a", 1, 0x11, 0, 0);
    cpns_keystore_free(ks);
}

/* Opens with euk and expects CPNS_ERR_CORRUPT with the file left exactly as it was. */
static void expect_corrupt(const fixture *f, const uint8_t *euk)
{
    size_t before_len, after_len;
    uint8_t *before = slurp(f->path, &before_len);
    assert_non_null(before);
    cpns_keystore *ks = (cpns_keystore *)1;
    assert_int_equal(cpns_keystore_file_open(&ks, f->dir, euk), CPNS_ERR_CORRUPT);
    assert_null(ks);
    uint8_t *after = slurp(f->path, &after_len);
    assert_non_null(after);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    assert_int_equal(mode_of(f->path), 0600);
    free(before);
    free(after);
}

static void test_file_corrupt_refused_untouched(void **state)
{
    fixture *f = *state;
    cpns_keystore *ks = open_ok(f);
    put_ok(ks, "sg-a", 1, 0x11);
    put_ok(ks, "sg-a", 2, 0x22);
    put_ok(ks, "sg-b", 1, 0x33);
    cpns_keystore_free(ks);
    size_t len;
    uint8_t *good = slurp(f->path, &len);
    assert_non_null(good);
    uint8_t *bad = malloc(len + 1);
    assert_non_null(bad);

    /* one flipped byte anywhere: magic, format, nonce, ciphertext, tag */
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, good, len);
        bad[i] ^= 0x01;
        spit(f->path, bad, len);
        expect_corrupt(f, f->EUK);
    }
    /* truncated, at every length */
    for (size_t n = 0; n < len; n++) {
        spit(f->path, good, n);
        expect_corrupt(f, f->EUK);
    }
    /* a trailing byte */
    memcpy(bad, good, len);
    bad[len] = 0;
    spit(f->path, bad, len + 1);
    expect_corrupt(f, f->EUK);

    /* another PNE's EUK looks like damage */
    spit(f->path, good, len);
    uint8_t other[CPNS_KEY_LEN];
    memcpy(other, f->EUK, sizeof other);
    other[0] ^= 0x80;
    expect_corrupt(f, other);

    /* the good file still opens */
    ks = open_ok(f);
    assert_keys(ks, "sg-a", 2, 0x22, 1, 0x11);
    assert_keys(ks, "sg-b", 1, 0x33, 0, 0);
    cpns_keystore_free(ks);
    free(good);
    free(bad);
}

/* 7.8.6.1-2 / keystore.h: a put() that cannot be made durable changes nothing */
static void test_file_failed_put_keeps_old_state_7_8_6_1_2(void **state)
{
    fixture *f = *state;
    cpns_keystore *ks = open_ok(f);
    put_ok(ks, "sg-a", 1, 0x11);
    size_t len, len2;
    uint8_t *before = slurp(f->path, &len);
    assert_non_null(before);

    /* a directory where the temporary file must go: root can still not create it */
    assert_int_equal(mkdir(f->tmp_path, 0700), 0);
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, 0x22);
    assert_int_equal(ks->ops->put(ks, "sg-a", 2, GK), CPNS_ERR_IO);
    assert_int_equal(ks->ops->put(ks, "sg-new", 1, GK), CPNS_ERR_IO);
    key_of(GK, 0x12);
    assert_int_equal(ks->ops->put(ks, "sg-a", 1, GK), CPNS_ERR_IO);

    /* in memory */
    assert_keys(ks, "sg-a", 1, 0x11, 0, 0);
    cpns_stored_keys k;
    assert_int_equal(ks->ops->get(ks, "sg-new", &k), CPNS_ERR_NOT_FOUND);
    /* on disk */
    uint8_t *after = slurp(f->path, &len2);
    assert_non_null(after);
    assert_int_equal(len, len2);
    assert_memory_equal(before, after, len);
    free(before);
    free(after);

    /* once the obstacle is gone, put() works and the failures left no trace */
    assert_int_equal(rmdir(f->tmp_path), 0);
    put_ok(ks, "sg-a", 2, 0x22);
    assert_keys(ks, "sg-a", 2, 0x22, 1, 0x11);
    cpns_keystore_free(ks);
    ks = open_ok(f);
    assert_keys(ks, "sg-a", 2, 0x22, 1, 0x11);
    assert_int_equal(ks->ops->get(ks, "sg-new", &k), CPNS_ERR_NOT_FOUND);
    cpns_keystore_free(ks);
}

/* a temporary file left by a crash is not in the way */
static void test_file_stale_tmp_replaced(void **state)
{
    fixture *f = *state;
    cpns_keystore *ks = open_ok(f);
    int fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "junk", 4), 4);
    close(fd);
    put_ok(ks, "sg-a", 1, 0x11);
    assert_int_equal(access(f->tmp_path, F_OK), -1);
    assert_int_equal(mode_of(f->path), 0600);
    cpns_keystore_free(ks);
    ks = open_ok(f);
    assert_keys(ks, "sg-a", 1, 0x11, 0, 0);
    cpns_keystore_free(ks);
}

/*
 * Hand-built files in the format documented at the top of keystore_file.c,
 * encrypted here with OpenSSL directly: the documented format is the real one,
 * and a file whose tag verifies but whose records are wrong is still refused.
 */
typedef struct rec {
    const char *SGID;
    uint32_t cur;
    uint8_t cur_tag;
    uint32_t prev;
    uint8_t prev_tag;
} rec;

static size_t put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

static size_t build_records(uint8_t *pt, uint32_t count, const rec *r, size_t n)
{
    size_t off = put_be32(pt, count);
    for (size_t i = 0; i < n; i++) {
        size_t L = strlen(r[i].SGID);
        pt[off++] = (uint8_t)L;
        memcpy(pt + off, r[i].SGID, L);
        off += L;
        off += put_be32(pt + off, r[i].cur);
        key_of(pt + off, r[i].cur_tag);
        off += CPNS_KEY_LEN;
        off += put_be32(pt + off, r[i].prev);
        key_of(pt + off, r[i].prev_tag);
        off += CPNS_KEY_LEN;
    }
    return off;
}

static void write_store(const fixture *f, const uint8_t *pt, size_t pt_len)
{
    uint8_t K_store[CPNS_KEY_LEN], file[4096];
    assert_true(pt_len + 37 <= sizeof file);
    assert_int_equal(cpns_hkdf_sha256(NULL, 0, f->EUK, CPNS_KEY_LEN,
                                      (const uint8_t *)"CPNS 1.1 PNE key store", 22, K_store,
                                      sizeof K_store),
                     0);
    memcpy(file, "CPNSKEYS\x01", 9);
    assert_int_equal(cpns_random(NULL, file + 9, 12), 0);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl;
    assert_non_null(ctx);
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, K_store, file + 9), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &outl, file, 9), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, file + 21, &outl, pt, (int)pt_len), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, file + 21 + pt_len, &outl), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, file + 21 + pt_len), 1);
    EVP_CIPHER_CTX_free(ctx);
    int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, file, pt_len + 37), (ssize_t)(pt_len + 37));
    assert_int_equal(close(fd), 0);
}

static void test_file_documented_format(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->dir, 0700), 0);
    uint8_t pt[1024];
    const rec good[] = {{"sg-a", 2, 0x22, 1, 0x11}, {"sg-b", 5, 0x55, 0, 0}};
    size_t n = build_records(pt, 2, good, 2);
    write_store(f, pt, n);
    cpns_keystore *ks = open_ok(f);
    assert_keys(ks, "sg-a", 2, 0x22, 1, 0x11);
    assert_keys(ks, "sg-b", 5, 0x55, 0, 0);
    cpns_keystore_free(ks);

    /* the tag verifies, the records do not */
    n = build_records(pt, 2, good, 2);
    pt[n++] = 0; /* trailing byte after the last record */
    write_store(f, pt, n);
    expect_corrupt(f, f->EUK);

    n = build_records(pt, 3, good, 2); /* count says more than there is */
    write_store(f, pt, n);
    expect_corrupt(f, f->EUK);

    n = build_records(pt, 1, good, 2); /* count says less */
    write_store(f, pt, n);
    expect_corrupt(f, f->EUK);

    const rec unsorted[] = {{"sg-b", 5, 0x55, 0, 0}, {"sg-a", 2, 0x22, 1, 0x11}};
    write_store(f, pt, build_records(pt, 2, unsorted, 2));
    expect_corrupt(f, f->EUK);

    const rec dup[] = {{"sg-a", 2, 0x22, 1, 0x11}, {"sg-a", 3, 0x33, 2, 0x22}};
    write_store(f, pt, build_records(pt, 2, dup, 2));
    expect_corrupt(f, f->EUK);

    const rec no_current[] = {{"sg-a", 0, 0, 0, 0}};
    write_store(f, pt, build_records(pt, 1, no_current, 1));
    expect_corrupt(f, f->EUK);

    const rec bad_id[] = {{"sg a", 1, 0x11, 0, 0}};
    write_store(f, pt, build_records(pt, 1, bad_id, 1));
    expect_corrupt(f, f->EUK);

    const rec stray_key[] = {{"sg-a", 1, 0x11, 0, 0x44}}; /* empty slot with a key in it */
    write_store(f, pt, build_records(pt, 1, stray_key, 1));
    expect_corrupt(f, f->EUK);

    /* an empty store is three zero bytes short of valid: the count is required */
    write_store(f, pt, 0);
    expect_corrupt(f, f->EUK);
    write_store(f, pt, build_records(pt, 0, NULL, 0));
    ks = open_ok(f);
    cpns_stored_keys k;
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), CPNS_ERR_NOT_FOUND);
    cpns_keystore_free(ks);
}

static void test_file_invalid_args(void **state)
{
    fixture *f = *state;
    cpns_keystore *ks;
    assert_int_equal(cpns_keystore_file_open(&ks, NULL, f->EUK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_keystore_file_open(&ks, "", f->EUK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_keystore_file_open(NULL, f->dir, f->EUK), CPNS_ERR_INVALID_ARG);
    /* a parent that does not exist is not created */
    char deep[160];
    snprintf(deep, sizeof deep, "%s/no/such", f->root);
    assert_int_equal(cpns_keystore_file_open(&ks, deep, f->EUK), CPNS_ERR_IO);

    ks = open_ok(f);
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, 1);
    assert_int_equal(ks->ops->put(ks, "sg a", 1, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->put(ks, "sg-a", 0, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(access(f->path, F_OK), -1);
    cpns_keystore_free(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_mode_and_encrypted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_refuses_open_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_corrupt_refused_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_failed_put_keeps_old_state_7_8_6_1_2, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_stale_tmp_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_invalid_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_documented_format, setup, teardown),
    };
    int failed = keystore_suite_run(&file_backend);
    return failed + cmocka_run_group_tests(tests, NULL, NULL);
}
