/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/keystore_pkcs11.c on a throwaway SoftHSM2 token (softhsm.h):
 * the key store suite (keystore_suite.h) twice, once straight on SoftHSM2
 * with a file that cannot be written and once through the fault module
 * (p11fault.c) with a token that is full; and what is the PKCS#11 backend's
 * own: the key that seals the files is sensitive and not extractable and the
 * files show neither the EUK nor a Group Key, a copy of DIR opens on no other
 * token and not with the EUK alone, clear errors for a wrong PIN, a missing
 * token, a missing module, a first start without the EUK and another EUK,
 * and a token lost, reset or full mid-run: put() fails, nothing changes, and
 * the same keystore works again once the token is back.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>

#include <p11-kit-1/p11-kit/pkcs11.h>

#include "keystore_suite.h"
#include "softhsm.h"

#define LABEL "cpns-test"
#define LABEL_OTHER "cpns-other"

static sh_env env;
static unsigned dirs;

typedef struct p11_fx {
    char dir[200];
    char groupkeys[160];
    char tmp[160];
    char euk_path[160];
    uint8_t EUK[CPNS_KEY_LEN];
    const char *module;
    char err[256];
} p11_fx;

static void fx_init(p11_fx *f, const char *module)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/store-%u", env.root, ++dirs);
    snprintf(f->groupkeys, sizeof f->groupkeys, "%.128s/groupkeys", f->dir);
    snprintf(f->tmp, sizeof f->tmp, "%.128s/groupkeys.tmp", f->dir);
    snprintf(f->euk_path, sizeof f->euk_path, "%.128s/token-euk", f->dir);
    assert_int_equal(cpns_random(NULL, f->EUK, CPNS_KEY_LEN), 0);
    f->module = module;
}

static int open_with(p11_fx *f, const char *label, const char *pin, const uint8_t *EUK,
                     cpns_keystore **out)
{
    cpns_keystore_pkcs11_config cfg = {
        .module = f->module,
        .token_label = label,
        .pin = pin,
        .dir = f->dir,
        .EUK = EUK,
    };
    return cpns_keystore_pkcs11_open(out, &cfg, f->err, sizeof f->err);
}

static cpns_keystore *open_ok(p11_fx *f)
{
    cpns_keystore *ks = NULL;
    int rv = open_with(f, LABEL, SH_PIN, f->EUK, &ks);
    if (rv != 0)
        fail_msg("open: %s: %s", cpns_strerror(rv), f->err);
    return ks;
}

/* --- the suite, on SoftHSM2 and through the fault module --- */

static int p11_setup(void **ctx)
{
    p11_fx *f = malloc(sizeof *f);
    assert_non_null(f);
    fx_init(f, env.module);
    *ctx = f;
    return 0;
}

static int fault_setup(void **ctx)
{
    p11_setup(ctx);
    ((p11_fx *)*ctx)->module = env.fault_module;
    return 0;
}

static void p11_teardown(void *ctx)
{
    sh_fault(&env, "");
    free(ctx);
}

static int p11_open(void *ctx, cpns_keystore **out)
{
    p11_fx *f = ctx;
    int rv = open_with(f, LABEL, SH_PIN, f->EUK, out);
    if (rv)
        print_error("open: %s\n", f->err);
    return rv;
}

static void file_fail_puts(void *ctx, cpns_keystore *ks, bool on)
{
    p11_fx *f = ctx;
    (void)ks;
    if (on)
        assert_int_equal(mkdir(f->tmp, 0700), 0);
    else
        assert_int_equal(rmdir(f->tmp), 0);
}

static void token_full_puts(void *ctx, cpns_keystore *ks, bool on)
{
    (void)ctx;
    (void)ks;
    sh_fault(&env, on ? "full" : "");
}

static const keystore_backend p11_backend = {
    .name = "keystore_suite_pkcs11",
    .setup = p11_setup,
    .teardown = p11_teardown,
    .open = p11_open,
    .durable = true,
    .fail_puts = file_fail_puts,
};

static const keystore_backend fault_backend = {
    .name = "keystore_suite_pkcs11_token_full",
    .setup = fault_setup,
    .teardown = p11_teardown,
    .open = p11_open,
    .durable = true,
    .fail_puts = token_full_puts,
};

/* --- helpers of the backend's own tests --- */

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, fp);
    fclose(fp);
    return buf;
}

static int contains(const uint8_t *buf, size_t len, const uint8_t *what, size_t n)
{
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, what, n) == 0)
            return 1;
    return 0;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void put_ok(cpns_keystore *ks, const char *SGID, uint32_t KeyVersion, uint8_t tag)
{
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, tag, sizeof GK);
    assert_int_equal(ks->ops->put(ks, SGID, KeyVersion, GK), 0);
}

static void assert_current(cpns_keystore *ks, const char *SGID, uint32_t KeyVersion, uint8_t tag)
{
    cpns_stored_keys k;
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, tag, sizeof GK);
    assert_int_equal(ks->ops->get(ks, SGID, &k), 0);
    assert_int_equal(k.current.KeyVersion, KeyVersion);
    assert_memory_equal(k.current.GK, GK, CPNS_KEY_LEN);
}

/* --- the backend's own tests --- */

/* The token key, looked at with the module directly: it cannot leave the token. */
static void test_p11_key_is_sensitive_and_files_show_nothing(void **state)
{
    (void)state;
    p11_fx f;
    fx_init(&f, env.module);
    cpns_keystore *ks = open_ok(&f);
    put_ok(ks, "sg-a", 1, 0x5a);
    uint8_t EUK[CPNS_KEY_LEN];
    assert_int_equal(cpns_keystore_pkcs11_euk(ks, EUK), 0);
    assert_memory_equal(EUK, f.EUK, CPNS_KEY_LEN);
    cpns_keystore_free(ks);

    assert_int_equal(mode_of(f.dir), 0700);
    assert_int_equal(mode_of(f.groupkeys), 0600);
    assert_int_equal(mode_of(f.euk_path), 0600);
    size_t glen, elen;
    uint8_t *g = slurp(f.groupkeys, &glen), *e = slurp(f.euk_path, &elen);
    assert_non_null(g);
    assert_non_null(e);
    assert_memory_equal(g, "CPNSKEYS\x02", 9);
    assert_int_equal(elen, 85);
    assert_memory_equal(e, "CPNSTEUK\x02", 9);
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, 0x5a, sizeof GK);
    assert_false(contains(g, glen, GK, sizeof GK));
    assert_false(contains(g, glen, (const uint8_t *)"sg-a", 4));
    assert_false(contains(e, elen, f.EUK, sizeof f.EUK));
    assert_false(contains(g, glen, f.EUK, sizeof f.EUK));

    void *dl = dlopen(env.module, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(dl);
    CK_C_GetFunctionList get = NULL;
    *(void **)&get = dlsym(dl, "C_GetFunctionList");
    CK_FUNCTION_LIST_PTR p = NULL;
    assert_int_equal(get(&p), CKR_OK);
    assert_int_equal(p->C_Initialize(NULL), CKR_OK);
    CK_SLOT_ID slots[8];
    CK_ULONG n = 8;
    assert_int_equal(p->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    for (CK_ULONG i = 0; i < n && s == CK_INVALID_HANDLE; i++) {
        CK_TOKEN_INFO info;
        assert_int_equal(p->C_GetTokenInfo(slots[i], &info), CKR_OK);
        if (memcmp(info.label, LABEL " ", sizeof LABEL) == 0)
            assert_int_equal(p->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &s),
                             CKR_OK);
    }
    assert_true(s != CK_INVALID_HANDLE);
    assert_int_equal(p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)SH_PIN, strlen(SH_PIN)), CKR_OK);
    CK_ATTRIBUTE by_id = {CKA_ID, e + 9, 16};
    assert_int_equal(p->C_FindObjectsInit(s, &by_id, 1), CKR_OK);
    CK_OBJECT_HANDLE key;
    assert_int_equal(p->C_FindObjects(s, &key, 1, &n), CKR_OK);
    assert_int_equal(n, 1);
    p->C_FindObjectsFinal(s);
    CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE, token = CK_FALSE, wrap = CK_TRUE;
    CK_KEY_TYPE type = 0;
    CK_ATTRIBUTE attrs[] = {
        {CKA_SENSITIVE, &sensitive, sizeof sensitive},
        {CKA_EXTRACTABLE, &extractable, sizeof extractable},
        {CKA_TOKEN, &token, sizeof token},
        {CKA_WRAP, &wrap, sizeof wrap},
        {CKA_KEY_TYPE, &type, sizeof type},
    };
    assert_int_equal(p->C_GetAttributeValue(s, key, attrs, 5), CKR_OK);
    assert_true(sensitive);
    assert_false(extractable);
    assert_true(token);
    assert_false(wrap);
    assert_int_equal(type, CKK_AES);
    uint8_t value[64];
    CK_ATTRIBUTE val = {CKA_VALUE, value, sizeof value};
    assert_int_equal(p->C_GetAttributeValue(s, key, &val, 1), CKR_ATTRIBUTE_SENSITIVE);
    p->C_CloseSession(s);
    p->C_Finalize(NULL);
    dlclose(dl);
    free(g);
    free(e);
}

/* Copying the device's files reveals nothing: the copy opens on no other token, nor with the EUK.
 */
static void test_p11_copy_of_dir_is_useless(void **state)
{
    (void)state;
    p11_fx f;
    fx_init(&f, env.module);
    cpns_keystore *ks = open_ok(&f);
    put_ok(ks, "sg-a", 3, 0x33);
    cpns_keystore_free(ks);

    p11_fx copy = f;
    snprintf(copy.dir, sizeof copy.dir, "%.128s-copy", f.dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", f.dir, copy.dir);
    assert_int_equal(sh_run(cmd), 0);
    /* another token, even with the same PIN: it has no key for this store */
    ks = (cpns_keystore *)1;
    assert_int_equal(open_with(&copy, LABEL_OTHER, SH_PIN, NULL, &ks), CPNS_ERR_NOT_FOUND);
    assert_null(ks);
    assert_non_null(strstr(copy.err, "no key for this store"));
    /* and the EUK alone does not open it */
    assert_int_equal(cpns_keystore_file_open(&ks, copy.dir, f.EUK), CPNS_ERR_CORRUPT);
    /* the same token does */
    assert_int_equal(open_with(&copy, LABEL, SH_PIN, NULL, &ks), 0);
    assert_current(ks, "sg-a", 3, 0x33);
    cpns_keystore_free(ks);
}

static void test_p11_open_errors_are_clear(void **state)
{
    (void)state;
    p11_fx f;
    fx_init(&f, env.module);
    cpns_keystore *ks = (cpns_keystore *)1;

    /* a first start needs the EUK, and leaves nothing behind without it */
    assert_int_equal(open_with(&f, LABEL, SH_PIN, NULL, &ks), CPNS_ERR_NOT_FOUND);
    assert_null(ks);
    assert_non_null(strstr(f.err, "first start needs the EUK"));
    assert_int_equal(access(f.euk_path, F_OK), -1);

    ks = open_ok(&f);
    put_ok(ks, "sg-a", 1, 0x11);
    cpns_keystore_free(ks);

    assert_int_equal(open_with(&f, LABEL, "0000", NULL, &ks), CPNS_ERR_AUTH);
    assert_non_null(strstr(f.err, "CKR_PIN_INCORRECT"));
    assert_int_equal(open_with(&f, "no-such-token", SH_PIN, NULL, &ks), CPNS_ERR_NOT_FOUND);
    assert_non_null(strstr(f.err, "no token labelled 'no-such-token'"));
    uint8_t other[CPNS_KEY_LEN];
    memcpy(other, f.EUK, sizeof other);
    other[5] ^= 1;
    assert_int_equal(open_with(&f, LABEL, SH_PIN, other, &ks), CPNS_ERR_EXISTS);
    assert_non_null(strstr(f.err, "another EUK"));
    assert_int_equal(chmod(f.euk_path, 0640), 0);
    assert_int_equal(open_with(&f, LABEL, SH_PIN, NULL, &ks), CPNS_ERR_PERM);
    assert_int_equal(chmod(f.euk_path, 0600), 0);
    p11_fx bad = f;
    bad.module = "/nonexistent/libnothing.so";
    assert_int_equal(open_with(&bad, LABEL, SH_PIN, NULL, &ks), CPNS_ERR_IO);
    assert_non_null(strstr(bad.err, "cannot load the PKCS#11 module"));
    assert_int_equal(cpns_keystore_pkcs11_open(&ks, NULL, NULL, 0), CPNS_ERR_INVALID_ARG);
    assert_null(ks);

    /* nothing was lost */
    assert_int_equal(open_with(&f, LABEL, SH_PIN, NULL, &ks), 0);
    assert_current(ks, "sg-a", 1, 0x11);
    cpns_keystore *mem;
    uint8_t EUK[CPNS_KEY_LEN];
    assert_int_equal(cpns_keystore_mem_new(&mem), 0);
    assert_int_equal(cpns_keystore_pkcs11_euk(mem, EUK), CPNS_ERR_INVALID_ARG);
    cpns_keystore_free(mem);
    cpns_keystore_free(ks);
}

typedef struct captured {
    char last[512];
    int errors;
} captured;

static void capture(void *arg, const cpns_log_event *ev)
{
    captured *c = arg;
    snprintf(c->last, sizeof c->last, "%s", ev->text);
    c->errors += ev->level == CPNS_LOG_ERROR;
}

/* Removed, reset with a new PIN, full: put() fails with the reason logged, nothing changes; then it
 * works again. */
static void test_p11_token_lost_mid_run_then_back(void **state)
{
    (void)state;
    p11_fx f;
    fx_init(&f, env.fault_module);
    captured log = {{0}, 0};
    cpns_keystore_pkcs11_config cfg = {
        .module = f.module,
        .token_label = LABEL,
        .pin = SH_PIN,
        .dir = f.dir,
        .EUK = f.EUK,
        .log = capture,
        .log_arg = &log,
    };
    cpns_keystore *ks;
    assert_int_equal(cpns_keystore_pkcs11_open(&ks, &cfg, NULL, 0), 0);
    put_ok(ks, "sg-a", 1, 0x11);
    size_t len0, len1;
    uint8_t *before = slurp(f.groupkeys, &len0);

    static const struct {
        const char *fault, *logged;
    } faults[] = {
        {"removed", "no token labelled 'cpns-test' is present"},
        {"pin", "C_Login: CKR_PIN_INCORRECT (the PIN is wrong)"},
        {"full", "C_EncryptInit: CKR_DEVICE_MEMORY (the token is full)"},
    };
    uint8_t GK[CPNS_KEY_LEN];
    memset(GK, 0x22, sizeof GK);
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        sh_fault(&env, faults[i].fault);
        log.last[0] = '\0';
        assert_int_equal(ks->ops->put(ks, "sg-a", 2, GK), CPNS_ERR_STORE);
        assert_int_equal(ks->ops->put(ks, "sg-b", 1, GK), CPNS_ERR_STORE);
        if (!strstr(log.last, faults[i].logged))
            fail_msg("fault %s logged '%s'", faults[i].fault, log.last);
        assert_current(ks, "sg-a", 1, 0x11);
        cpns_stored_keys k;
        assert_int_equal(ks->ops->get(ks, "sg-b", &k), CPNS_ERR_NOT_FOUND);
        uint8_t *after = slurp(f.groupkeys, &len1);
        assert_int_equal(len0, len1);
        assert_memory_equal(before, after, len0);
        free(after);
    }
    /* the token is back: the same keystore logs in again and stores */
    sh_fault(&env, "");
    put_ok(ks, "sg-a", 2, 0x22);
    cpns_keystore_free(ks);
    assert_int_equal(cpns_keystore_pkcs11_open(&ks, &cfg, NULL, 0), 0);
    assert_current(ks, "sg-a", 2, 0x22);
    cpns_keystore_free(ks);
    free(before);
}

/* A token with no room for the store's key: a clear error, and nothing written. */
static void test_p11_full_at_first_start(void **state)
{
    (void)state;
    p11_fx f;
    fx_init(&f, env.fault_module);
    cpns_keystore *ks;
    sh_fault(&env, "full");
    assert_int_equal(open_with(&f, LABEL, SH_PIN, f.EUK, &ks), CPNS_ERR_STORE);
    assert_non_null(strstr(f.err, "C_GenerateKey: CKR_DEVICE_MEMORY (the token is full)"));
    assert_int_equal(access(f.euk_path, F_OK), -1);
    assert_int_equal(access(f.groupkeys, F_OK), -1);
    sh_fault(&env, "removed");
    assert_int_equal(open_with(&f, LABEL, SH_PIN, f.EUK, &ks), CPNS_ERR_NOT_FOUND);
    assert_non_null(strstr(f.err, "no token labelled 'cpns-test' is present"));
    sh_fault(&env, "");
    ks = open_ok(&f);
    put_ok(ks, "sg-a", 1, 0x11);
    cpns_keystore_free(ks);
}

/* Two PNEs' stores in one token, open at once in one process: each has its own key. */
static void test_p11_two_stores_one_token(void **state)
{
    (void)state;
    p11_fx a, b;
    fx_init(&a, env.module);
    fx_init(&b, env.module);
    cpns_keystore *ka = open_ok(&a), *kb = open_ok(&b);
    put_ok(ka, "sg-x", 1, 0xa1);
    put_ok(kb, "sg-x", 5, 0xb5);
    cpns_keystore_free(ka);
    /* the module stays initialised for b */
    put_ok(kb, "sg-y", 1, 0xb1);
    ka = open_ok(&a);
    assert_current(ka, "sg-x", 1, 0xa1);
    assert_current(kb, "sg-x", 5, 0xb5);
    cpns_keystore_free(kb);
    cpns_keystore_free(ka);
    /* a's EUK file with b's key id swapped in: b's key does not open a's sealed EUK */
    size_t la, lb;
    uint8_t *ea = slurp(a.euk_path, &la), *eb = slurp(b.euk_path, &lb);
    memcpy(ea + 9, eb + 9, 16);
    FILE *fp = fopen(a.euk_path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(ea, 1, la, fp), la);
    fclose(fp);
    cpns_keystore *ks;
    int rv_swap = open_with(&a, LABEL, SH_PIN, a.EUK, &ks);
    assert_non_null(strstr(a.err, "does not decrypt"));
    assert_int_equal(rv_swap, CPNS_ERR_CORRUPT);
    free(ea);
    free(eb);
}

int main(void)
{
    int skip = sh_present();
    if (skip)
        return skip;
    if (sh_setup(&env) != 0 || sh_init_token(&env, LABEL) != 0 ||
        sh_init_token(&env, LABEL_OTHER) != 0) {
        fprintf(stderr, "cannot make a SoftHSM2 token in %s\n", env.root);
        sh_cleanup(&env);
        return 1;
    }
    int failed = keystore_suite_run(&p11_backend);
    failed += keystore_suite_run(&fault_backend);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_p11_key_is_sensitive_and_files_show_nothing),
        cmocka_unit_test(test_p11_copy_of_dir_is_useless),
        cmocka_unit_test(test_p11_open_errors_are_clear),
        cmocka_unit_test(test_p11_token_lost_mid_run_then_back),
        cmocka_unit_test(test_p11_full_at_first_start),
        cmocka_unit_test(test_p11_two_stores_one_token),
    };
    failed += cmocka_run_group_tests_name("keystore_pkcs11", tests, NULL, NULL);
    sh_cleanup(&env);
    return failed;
}
