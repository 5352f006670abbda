/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One key store test suite, three backends (issue #14 item 1): the
 * semantics of the keystore ops (include/cpns/keystore.h), each case written
 * once against a backend descriptor and run unchanged by
 * test_keystore_mem.c, test_keystore_file.c and tests/pkcs11/
 * test_keystore_pkcs11.c (a SoftHSM2 token). A vendor's secure element is
 * one more descriptor.
 *
 * Every case starts on a fresh, empty store. A durable backend is also
 * closed and opened again on the same data, which must give back exactly
 * what was put; the memory backend has nothing to reopen.
 *
 * What a backend does beyond the ops (files, modes, encryption at rest,
 * tokens) is tested beside it. Header-only, like store_suite.h.
 */
#ifndef CPNS_KEYSTORE_SUITE_H
#define CPNS_KEYSTORE_SUITE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

typedef struct keystore_backend {
    const char *name; /* the cmocka group's name */
    /* Per case: a fresh, empty place for one store's data in *ctx. */
    int (*setup)(void **ctx);
    void (*teardown)(void *ctx); /* the store is closed by then */
    /* A store on ctx's data: 0 or the open's error. */
    int (*open)(void *ctx, cpns_keystore **out);
    bool durable; /* a reopen gives back what was put */
    /* Makes every put() of ks fail (on true) or work again (false), for real where it can. */
    void (*fail_puts)(void *ctx, cpns_keystore *ks, bool on);
} keystore_backend;

typedef struct ks_fx {
    const keystore_backend *b;
    void *ctx;
    cpns_keystore *ks;
} ks_fx;

static inline int ks_setup(void **state)
{
    const keystore_backend *b = *state;
    ks_fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->b = b;
    if (b->setup(&f->ctx) != 0) {
        free(f);
        return -1;
    }
    int rv = b->open(f->ctx, &f->ks);
    if (rv != 0) {
        print_error("%s: open: %s\n", b->name, cpns_strerror(rv));
        b->teardown(f->ctx);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static inline int ks_teardown(void **state)
{
    ks_fx *f = *state;
    cpns_keystore_free(f->ks);
    f->b->teardown(f->ctx);
    free(f);
    return 0;
}

/* Closes and opens the store again on the same data (durable backends only). */
static inline void ks_reopen(ks_fx *f)
{
    if (!f->b->durable)
        return;
    cpns_keystore_free(f->ks);
    f->ks = NULL;
    int rv = f->b->open(f->ctx, &f->ks);
    if (rv != 0)
        fail_msg("%s: reopen: %s", f->b->name, cpns_strerror(rv));
}

static inline void ks_key_of(uint8_t GK[CPNS_KEY_LEN], uint8_t tag)
{
    memset(GK, tag, CPNS_KEY_LEN);
}

static inline void ks_put_ok(ks_fx *f, const char *SGID, uint32_t KeyVersion, uint8_t tag)
{
    uint8_t GK[CPNS_KEY_LEN];
    ks_key_of(GK, tag);
    int rv = f->ks->ops->put(f->ks, SGID, KeyVersion, GK);
    if (rv != 0)
        fail_msg("%s: put(%s, %u): %s", f->b->name, SGID, (unsigned)KeyVersion, cpns_strerror(rv));
}

static inline void ks_assert_slot(const cpns_key_slot *s, uint32_t KeyVersion, uint8_t tag)
{
    uint8_t GK[CPNS_KEY_LEN];
    ks_key_of(GK, tag);
    assert_int_equal(s->KeyVersion, KeyVersion);
    if (KeyVersion)
        assert_memory_equal(s->GK, GK, CPNS_KEY_LEN);
}

/* SGID holds current cur (key tag cur_tag) and previous prev (0: none). */
static inline void ks_assert_keys(ks_fx *f, const char *SGID, uint32_t cur, uint8_t cur_tag,
                                  uint32_t prev, uint8_t prev_tag)
{
    cpns_stored_keys k;
    assert_int_equal(f->ks->ops->get(f->ks, SGID, &k), 0);
    ks_assert_slot(&k.current, cur, cur_tag);
    ks_assert_slot(&k.previous, prev, prev_tag);
}

static inline void ks_assert_absent(ks_fx *f, const char *SGID)
{
    cpns_stored_keys k;
    assert_int_equal(f->ks->ops->get(f->ks, SGID, &k), CPNS_ERR_NOT_FOUND);
}

typedef struct ks_walk {
    char seen[64][CPNS_ID_MAX + 1];
    cpns_stored_keys keys[64];
    size_t n;
    size_t stop_after;
} ks_walk;

static inline int ks_visit(void *arg, const char *SGID, const cpns_stored_keys *keys)
{
    ks_walk *w = arg;
    assert_true(w->n < 64);
    snprintf(w->seen[w->n], sizeof w->seen[w->n], "%s", SGID);
    w->keys[w->n] = *keys;
    w->n++;
    return w->n == w->stop_after ? 42 : 0;
}

/* --- the cases --- */

static void ks_case_empty(void **state)
{
    ks_fx *f = *state;
    ks_assert_absent(f, "sg-a");
    ks_walk w;
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ks->ops->list(f->ks, ks_visit, &w), 0);
    assert_int_equal(w.n, 0);
    ks_reopen(f);
    ks_assert_absent(f, "sg-a");
}

/* keystore.h: the put() rules, also after a reopen (7.8.6.1-2: stored means durable) */
static void ks_case_put_rules(void **state)
{
    ks_fx *f = *state;
    ks_put_ok(f, "sg-a", 1, 0x11);
    ks_assert_keys(f, "sg-a", 1, 0x11, 0, 0);
    ks_reopen(f);
    ks_assert_keys(f, "sg-a", 1, 0x11, 0, 0);

    /* a new version pushes the current one to previous */
    ks_put_ok(f, "sg-a", 2, 0x22);
    ks_assert_keys(f, "sg-a", 2, 0x22, 1, 0x11);
    ks_reopen(f);
    ks_assert_keys(f, "sg-a", 2, 0x22, 1, 0x11);

    /* the same version is replaced in place, previous stays */
    ks_put_ok(f, "sg-a", 2, 0x33);
    ks_assert_keys(f, "sg-a", 2, 0x33, 1, 0x11);
    ks_reopen(f);
    ks_assert_keys(f, "sg-a", 2, 0x33, 1, 0x11);

    /* only one previous version is kept */
    ks_put_ok(f, "sg-a", 3, 0x44);
    ks_assert_keys(f, "sg-a", 3, 0x44, 2, 0x33);

    /* groups are independent */
    ks_assert_absent(f, "sg-b");
    ks_put_ok(f, "sg-b", 7, 0x77);
    ks_reopen(f);
    ks_assert_keys(f, "sg-a", 3, 0x44, 2, 0x33);
    ks_assert_keys(f, "sg-b", 7, 0x77, 0, 0);
}

static void ks_case_invalid_args(void **state)
{
    ks_fx *f = *state;
    cpns_keystore *ks = f->ks;
    cpns_stored_keys k;
    uint8_t GK[CPNS_KEY_LEN];
    ks_key_of(GK, 0x11);
    assert_int_equal(ks->ops->put(ks, "sg-a", 0, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->put(ks, "sg a", 1, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->put(ks, "", 1, GK), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->get(ks, "sg-a", NULL), CPNS_ERR_INVALID_ARG);
    assert_int_equal(ks->ops->get(ks, "sg-a", &k), CPNS_ERR_NOT_FOUND);
    assert_int_equal(ks->ops->list(ks, NULL, NULL), CPNS_ERR_INVALID_ARG);
    ks_reopen(f);
    ks_assert_absent(f, "sg-a");
}

static void ks_case_list_sorted(void **state)
{
    ks_fx *f = *state;
    /* 50 SGIDs in a scrambled order (i * 21 mod 50 visits all of them), two versions each */
    for (unsigned i = 0; i < 50; i++) {
        unsigned j = (i * 21) % 50;
        char SGID[CPNS_ID_MAX + 1];
        snprintf(SGID, sizeof SGID, "sg:%02u@example.org", j);
        ks_put_ok(f, SGID, 1, (uint8_t)j);
        ks_put_ok(f, SGID, j + 2, (uint8_t)(j + 100));
    }
    /* the longest identifier fits */
    char longest[CPNS_ID_MAX + 1];
    memset(longest, 'z', CPNS_ID_MAX);
    longest[CPNS_ID_MAX] = '\0';
    ks_put_ok(f, longest, 9, 0x99);
    ks_reopen(f);

    ks_walk *w = calloc(1, sizeof *w);
    assert_non_null(w);
    assert_int_equal(f->ks->ops->list(f->ks, ks_visit, w), 0);
    assert_int_equal(w->n, 51);
    for (unsigned i = 0; i < 50; i++) {
        char SGID[CPNS_ID_MAX + 1];
        snprintf(SGID, sizeof SGID, "sg:%02u@example.org", i);
        assert_string_equal(w->seen[i], SGID);
        ks_assert_slot(&w->keys[i].current, i + 2, (uint8_t)(i + 100));
        ks_assert_slot(&w->keys[i].previous, 1, (uint8_t)i);
    }
    assert_string_equal(w->seen[50], longest);

    /* a non-zero return of the visitor stops the walk and comes back */
    memset(w, 0, sizeof *w);
    w->stop_after = 3;
    assert_int_equal(f->ks->ops->list(f->ks, ks_visit, w), 42);
    assert_int_equal(w->n, 3);
    free(w);
}

/* 7.8.6.1-2 / keystore.h: a put() that fails changes nothing (the PNE answers Return 3) */
static void ks_case_failed_put_keeps_state(void **state)
{
    ks_fx *f = *state;
    ks_put_ok(f, "sg-a", 1, 0x11);
    f->b->fail_puts(f->ctx, f->ks, true);
    uint8_t GK[CPNS_KEY_LEN];
    ks_key_of(GK, 0x22);
    assert_true(f->ks->ops->put(f->ks, "sg-a", 2, GK) < 0);
    assert_true(f->ks->ops->put(f->ks, "sg-new", 1, GK) < 0);
    ks_key_of(GK, 0x12);
    assert_true(f->ks->ops->put(f->ks, "sg-a", 1, GK) < 0);
    ks_assert_keys(f, "sg-a", 1, 0x11, 0, 0);
    ks_assert_absent(f, "sg-new");

    /* once storage works again, put() works and the failures left no trace */
    f->b->fail_puts(f->ctx, f->ks, false);
    ks_put_ok(f, "sg-a", 2, 0x22);
    ks_assert_keys(f, "sg-a", 2, 0x22, 1, 0x11);
    ks_reopen(f);
    ks_assert_keys(f, "sg-a", 2, 0x22, 1, 0x11);
    ks_assert_absent(f, "sg-new");
}

#define KS_CASE(fn) cmocka_unit_test_prestate_setup_teardown(fn, ks_setup, ks_teardown, bs)

/* Runs every case on backend b as one cmocka group; its result. */
static inline int keystore_suite_run(const keystore_backend *b)
{
    void *bs = (void *)b;
    const struct CMUnitTest tests[] = {
        KS_CASE(ks_case_empty),
        KS_CASE(ks_case_put_rules),
        KS_CASE(ks_case_invalid_args),
        KS_CASE(ks_case_list_sorted),
        KS_CASE(ks_case_failed_put_keeps_state),
    };
    return cmocka_run_group_tests_name(b->name, tests, NULL, NULL);
}

#endif
