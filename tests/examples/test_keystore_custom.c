/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/keystore-custom.c, the custom key store backend, held to the
 * contract of cpns/keystore.h: the same checks run over libcpns's memory and
 * file backends (which shows the checks say what the library does) and over
 * the example's sealed flat file. Then what is the example's own: its file
 * holds no key in clear, is 0600, survives a reopen, and a file from another
 * device, a tampered or unsorted one is refused and left as it was.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

#define KEYSTORE_CUSTOM_NO_MAIN
#include "keystore-custom.c"

typedef struct backend backend;
struct backend {
    const char *name;
    /* Opens the backend's storage, the same one again after a close (a restart). */
    int (*open)(backend *b, cpns_keystore **out);
    /* Makes the next n put() calls fail; NULL when the backend has no such switch. */
    void (*fail_puts)(backend *b, int n);
    char dir[64]; /* mkdtemp */
    char path[128];
    uint8_t secret[CPNS_KEY_LEN]; /* the EUK, or the example's device secret */
    se_stub stub;
    secure_element se;
    cpns_keystore *ks;
};

static int open_mem(backend *b, cpns_keystore **out)
{
    (void)b;
    return cpns_keystore_mem_new(out);
}

static void mem_fail_puts(backend *b, int n)
{
    cpns_keystore_mem_fail_puts(b->ks, n);
}

static int open_file(backend *b, cpns_keystore **out)
{
    return cpns_keystore_file_open(out, b->path, b->secret);
}

static int open_custom(backend *b, cpns_keystore **out)
{
    return flat_keystore_open(out, b->path, &b->se);
}

static void custom_fail_puts(backend *b, int n)
{
    b->stub.fail_seals = n;
}

static backend mem_backend = {.name = "memory", .open = open_mem, .fail_puts = mem_fail_puts};
static backend file_backend = {.name = "file", .open = open_file};
static backend custom_backend = {
    .name = "keystore-custom", .open = open_custom, .fail_puts = custom_fail_puts};

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
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state)
{
    backend *b = *state;
    snprintf(b->dir, sizeof b->dir, "/tmp/cpns-ks-custom-XXXXXX");
    assert_non_null(mkdtemp(b->dir));
    /* the file backend's DIR, the example's FILE */
    snprintf(b->path, sizeof b->path, "%s/%s", b->dir, b->open == open_file ? "store" : "keys");
    assert_int_equal(cpns_random(NULL, b->secret, sizeof b->secret), 0);
    b->se = se_stub_init(&b->stub, b->secret);
    b->ks = NULL;
    assert_int_equal(b->open(b, &b->ks), 0);
    return 0;
}

static int teardown(void **state)
{
    backend *b = *state;
    cpns_keystore_free(b->ks);
    b->ks = NULL;
    rm_rf(b->dir);
    return 0;
}

static void reopen(backend *b)
{
    cpns_keystore_free(b->ks);
    b->ks = NULL;
    assert_int_equal(b->open(b, &b->ks), 0);
}

static void key_of(uint8_t GK[CPNS_KEY_LEN], uint8_t seed)
{
    for (int i = 0; i < CPNS_KEY_LEN; i++)
        GK[i] = (uint8_t)(seed + i * 3);
}

static void expect(cpns_keystore *ks, const char *SGID, uint32_t cur, uint8_t cur_seed,
                   uint32_t prev, uint8_t prev_seed)
{
    cpns_stored_keys k;
    uint8_t GK[CPNS_KEY_LEN];
    assert_int_equal(ks->ops->get(ks, SGID, &k), 0);
    assert_int_equal(k.current.KeyVersion, cur);
    key_of(GK, cur_seed);
    assert_memory_equal(k.current.GK, GK, CPNS_KEY_LEN);
    assert_int_equal(k.previous.KeyVersion, prev);
    if (prev) {
        key_of(GK, prev_seed);
        assert_memory_equal(k.previous.GK, GK, CPNS_KEY_LEN);
    }
}

static int put(cpns_keystore *ks, const char *SGID, uint32_t v, uint8_t seed)
{
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, seed);
    return ks->ops->put(ks, SGID, v, GK);
}

typedef struct visits {
    char seen[8][CPNS_ID_MAX + 1];
    int n, stop_at;
} visits;

static int visit(void *arg, const char *SGID, const cpns_stored_keys *keys)
{
    visits *v = arg;
    assert_true(keys->current.KeyVersion >= 1);
    snprintf(v->seen[v->n], sizeof v->seen[v->n], "%s", SGID);
    v->n++;
    return v->n == v->stop_at ? 42 : 0;
}

/* --- the contract of keystore.h, for every backend --- */

static void test_empty(void **state)
{
    backend *b = *state;
    cpns_stored_keys k;
    assert_int_equal(b->ks->ops->get(b->ks, "sg-a", &k), CPNS_ERR_NOT_FOUND);
    visits v = {.stop_at = -1};
    assert_int_equal(b->ks->ops->list(b->ks, visit, &v), 0);
    assert_int_equal(v.n, 0);
}

/* 7.8.6.1 step 2 and keystore.h: current and previous, a same-version put replaces in place. */
static void test_put_rules(void **state)
{
    backend *b = *state;
    cpns_keystore *ks = b->ks;
    assert_int_equal(put(ks, "sg-a", 1, 0x10), 0);
    expect(ks, "sg-a", 1, 0x10, 0, 0);
    assert_int_equal(put(ks, "sg-a", 2, 0x20), 0);
    expect(ks, "sg-a", 2, 0x20, 1, 0x10);
    assert_int_equal(put(ks, "sg-a", 2, 0x21), 0); /* same version: replaced, 1 stays previous */
    expect(ks, "sg-a", 2, 0x21, 1, 0x10);
    assert_int_equal(put(ks, "sg-a", 5, 0x50), 0);
    expect(ks, "sg-a", 5, 0x50, 2, 0x21);
    cpns_stored_keys k;
    assert_int_equal(ks->ops->get(ks, "sg-b", &k), CPNS_ERR_NOT_FOUND); /* groups are apart */
}

static void test_list_sorted_and_stop(void **state)
{
    backend *b = *state;
    const char *ids[] = {"sg-m", "sg-b", "sg-z", "sg-a", "sg-k"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(put(b->ks, ids[i], 1, (uint8_t)i), 0);
    visits v = {.stop_at = -1};
    assert_int_equal(b->ks->ops->list(b->ks, visit, &v), 0);
    assert_int_equal(v.n, 5);
    const char *sorted[] = {"sg-a", "sg-b", "sg-k", "sg-m", "sg-z"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(v.seen[i], sorted[i]);
    visits w = {.stop_at = 2};
    assert_int_equal(b->ks->ops->list(b->ks, visit, &w), 42);
    assert_int_equal(w.n, 2);
}

static void test_invalid_args(void **state)
{
    backend *b = *state;
    cpns_keystore *ks = b->ks;
    uint8_t GK[CPNS_KEY_LEN];
    key_of(GK, 1);
    cpns_stored_keys k;
    assert_int_equal(ks->ops->put(ks, "sg-a", 0, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->put(ks, "sg a", 1, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->put(ks, "", 1, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->put(ks, NULL, 1, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->put(ks, "sg-a", 1, NULL), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->get(ks, "sg-a", NULL), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), CPNS_ERR_NOT_FOUND); /* nothing was stored */
    assert_int_equal(ks->ops->list(ks, NULL, NULL), CPNS_ERR_INVALID_ARG);
}

/* Durable before put() returns: a reopen (a restart) finds every key. */
static void test_reopen(void **state)
{
    backend *b = *state;
    assert_int_equal(put(b->ks, "sg-a", 1, 0x10), 0);
    assert_int_equal(put(b->ks, "sg-a", 2, 0x20), 0);
    assert_int_equal(put(b->ks, "sg-b", 7, 0x70), 0);
    reopen(b);
    expect(b->ks, "sg-a", 2, 0x20, 1, 0x10);
    expect(b->ks, "sg-b", 7, 0x70, 0, 0);
}

/* A put() that fails leaves what was stored (the PNE answers Return 3 and holds its old key). */
static void test_failed_put_keeps_state(void **state)
{
    backend *b = *state;
    assert_int_equal(put(b->ks, "sg-a", 1, 0x10), 0);
    b->fail_puts(b, 1);
    assert_true(put(b->ks, "sg-a", 2, 0x20) < 0);
    expect(b->ks, "sg-a", 1, 0x10, 0, 0);
    b->fail_puts(b, 1);
    assert_true(put(b->ks, "sg-new", 1, 0x30) < 0);
    cpns_stored_keys k;
    assert_int_equal(b->ks->ops->get(b->ks, "sg-new", &k), CPNS_ERR_NOT_FOUND);
    assert_int_equal(put(b->ks, "sg-a", 2, 0x20), 0); /* and it works again after */
    expect(b->ks, "sg-a", 2, 0x20, 1, 0x10);
    if (b->open != open_mem) {
        reopen(b);
        expect(b->ks, "sg-a", 2, 0x20, 1, 0x10);
        assert_int_equal(b->ks->ops->get(b->ks, "sg-new", &k), CPNS_ERR_NOT_FOUND);
    }
}

/* --- the example's own promises --- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[8192];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static bool contains(const char *hay, size_t len, const uint8_t *needle, size_t n)
{
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return true;
    return false;
}

static void test_custom_file_sealed(void **state)
{
    backend *b = *state;
    assert_int_equal(put(b->ks, "sg-a", 1, 0x10), 0);
    assert_int_equal(put(b->ks, "sg-a", 2, 0x20), 0);
    struct stat st;
    assert_int_equal(stat(b->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    size_t len;
    char *text = slurp(b->path, &len);
    /* one line, SGID then the current and the previous version */
    assert_int_equal(strncmp(text, "sg-a 2 ", 7), 0);
    assert_non_null(strstr(text, " 1 "));
    assert_int_equal(text[len - 1], '\n');
    assert_ptr_equal(strchr(text, '\n'), text + len - 1);
    /* neither key in clear: not raw, not base64 */
    for (uint8_t seed = 0x10; seed <= 0x20; seed += 0x10) {
        uint8_t GK[CPNS_KEY_LEN];
        char b64[CPNS_B64_LEN(CPNS_KEY_LEN) + 1];
        key_of(GK, seed);
        cpns_b64_encode(GK, sizeof GK, b64, sizeof b64);
        assert_false(contains(text, len, GK, 8));
        assert_null(strstr(text, b64));
    }
    /* no temporary file left behind */
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", b->path);
    assert_int_equal(access(tmp, F_OK), -1);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Another device's file, a tampered or a disordered one: refused, never emptied. */
static void test_custom_refuses(void **state)
{
    backend *b = *state;
    assert_int_equal(put(b->ks, "sg-a", 1, 0x10), 0);
    assert_int_equal(put(b->ks, "sg-b", 1, 0x11), 0);
    cpns_keystore_free(b->ks);
    b->ks = NULL;
    size_t len;
    char good[8192];
    snprintf(good, sizeof good, "%s", slurp(b->path, &len));

    se_stub other;
    uint8_t secret[CPNS_KEY_LEN] = {1};
    secure_element se = se_stub_init(&other, secret);
    cpns_keystore *ks = NULL;
    assert_int_equal(flat_keystore_open(&ks, b->path, &se), CPNS_ERR_CORRUPT);
    assert_null(ks);
    assert_string_equal(slurp(b->path, &len), good);

    char bad[8192];
    snprintf(bad, sizeof bad, "%s", good);
    char *sealed = strchr(bad, ' ') + 30; /* inside the first sealed key's ciphertext */
    *sealed = *sealed == 'A' ? 'B' : 'A';
    write_text(b->path, bad);
    assert_int_equal(flat_keystore_open(&ks, b->path, &b->se), CPNS_ERR_CORRUPT);
    assert_string_equal(slurp(b->path, &len), bad);

    /* the two lines swapped: sorted order is part of the format */
    char *second = strchr(good, '\n') + 1;
    snprintf(bad, sizeof bad, "%s%.*s", second, (int)(second - good), good);
    write_text(b->path, bad);
    assert_int_equal(flat_keystore_open(&ks, b->path, &b->se), CPNS_ERR_CORRUPT);

    write_text(b->path, "sg-a\n");
    assert_int_equal(flat_keystore_open(&ks, b->path, &b->se), CPNS_ERR_CORRUPT);
    write_text(b->path, "sg-a 0 AAAA\n");
    assert_int_equal(flat_keystore_open(&ks, b->path, &b->se), CPNS_ERR_CORRUPT);

    /* the good file still opens */
    write_text(b->path, good);
    assert_int_equal(flat_keystore_open(&b->ks, b->path, &b->se), 0);
    expect(b->ks, "sg-b", 1, 0x11, 0, 0);
}

#define EACH(test, b) cmocka_unit_test_prestate_setup_teardown(test, setup, teardown, &b)
#define ALL(test) EACH(test, mem_backend), EACH(test, file_backend), EACH(test, custom_backend)

int main(void)
{
    const struct CMUnitTest tests[] = {
        ALL(test_empty),
        ALL(test_put_rules),
        ALL(test_list_sorted_and_stop),
        ALL(test_invalid_args),
        EACH(test_reopen, file_backend),
        EACH(test_reopen, custom_backend),
        EACH(test_failed_put_keeps_state, mem_backend),
        EACH(test_failed_put_keeps_state, custom_backend),
        EACH(test_custom_file_sealed, custom_backend),
        EACH(test_custom_refuses, custom_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
