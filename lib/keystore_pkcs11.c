/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PKCS#11 keystore: the PNE's secure storage (7.8.6.1 step 2) with its
 * secrets sealed by a key that never leaves a PKCS#11 token (docs/PKCS11.md).
 *
 * It is the file keystore (keystore_file.c: same records, same durable
 * atomic replace) whose sealer is the token: DIR/groupkeys is format 0x02,
 * AES-256-GCM done by C_Encrypt/C_Decrypt with CKM_AES_GCM under the store's
 * token key. The EUK is sealed the same way in DIR/token-euk:
 *
 *   offset  size  field
 *   0       8     magic "CPNSTEUK"
 *   8       1     format version, 0x02
 *   9       16    CKA_ID of the token key (random, made with the key)
 *   25      12    nonce, fresh from the CSPRNG
 *   37      32    AES-256-GCM ciphertext of the EUK, AAD = bytes 0..24
 *   69      16    GCM tag
 *
 * The token key: CKK_AES, 32 bytes, CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE,
 * not CKA_EXTRACTABLE, CKA_ENCRYPT and CKA_DECRYPT only, generated in the
 * token (CKM_AES_KEY_GEN) the first time a store is opened with an EUK.
 * A key found with CKA_EXTRACTABLE or without CKA_SENSITIVE is refused.
 *
 * What leaves the token: the EUK, when cpns_keystore_pkcs11_euk() is called
 * (cpns-pne: once at start, to derive the engine's keys); the records of
 * DIR/groupkeys when the store is opened (the Group Keys then live in the
 * key table in process memory, as the keystore API hands them out); nothing
 * else, and never the token key. Every put() sends the new records into the
 * token to be sealed.
 *
 * Token failures: every call that fails because the session, the login or
 * the token itself was lost (removed, reset) closes the session; the next
 * operation finds the token by its label again, opens a session, logs in
 * with the PIN and looks the key up by its CKA_ID, so that a token put back
 * works without restarting the PNE. A put() that fails leaves the table and
 * the file as they were (the engine answers Return 3).
 *
 * The module is loaded with dlopen() and C_GetFunctionList (the PKCS#11
 * headers come from p11-kit, nothing is linked), initialised once per
 * process and finalised when its last keystore closes.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Debian's libp11-kit-dev: the standard header, self-contained, under p11-kit-1/. */
#include <p11-kit-1/p11-kit/pkcs11.h>

#include "cpns/crypto.h"
#include "keystore_internal.h"

#define EUK_FILE "token-euk"
#define EUK_TMP "token-euk.tmp"
#define EUK_MAGIC "CPNSTEUK"
#define EUK_MAGIC_LEN 8
#define KS_FORMAT_TOKEN 0x02
#define KEY_ID_LEN 16
#define EUK_OFF_ID (EUK_MAGIC_LEN + 1)
#define EUK_AAD_LEN (EUK_OFF_ID + KEY_ID_LEN)
#define EUK_OFF_NONCE EUK_AAD_LEN
#define EUK_OFF_CT (EUK_OFF_NONCE + CPNS_GCM_NONCE_LEN)
#define EUK_OFF_TAG (EUK_OFF_CT + CPNS_KEY_LEN)
#define EUK_FILE_LEN (EUK_OFF_TAG + CPNS_GCM_TAG_LEN)
#define KEY_LABEL "cpns-pne key store"
#define PIN_MAX 256

/* --- the modules, shared by the keystores of a process --- */

typedef struct p11_module {
    struct p11_module *next;
    char *path;
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    int refs;
    int finalize; /* we initialised it, so we finalise it */
} p11_module;

static p11_module *modules;

typedef struct p11_keystore {
    cpns_keystore base;   /* first, so that the two pointers convert */
    cpns_keystore *files; /* the file keystore that this token seals */
    p11_module *mod;
    char label[33]; /* blank-padded like CK_TOKEN_INFO.label, NUL-terminated */
    char name[33];  /* the label as given, for messages */
    char *pin;
    CK_SESSION_HANDLE session; /* CK_INVALID_HANDLE while there is none */
    CK_OBJECT_HANDLE key;
    uint8_t key_id[KEY_ID_LEN];
    uint8_t euk_file[EUK_FILE_LEN]; /* DIR/token-euk as read or written: ciphertext */
    cpns_logger log;
    char *err;
    size_t err_len;
} p11_keystore;

static const struct {
    CK_RV rv;
    const char *name;
} rv_names[] = {
    {CKR_OK, "CKR_OK"},
    {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
    {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
    {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
    {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
    {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
    {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
    {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
    {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
    {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
    {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"},
    {CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE"},
    {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
    {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
    {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
    {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
    {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
    {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
    {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
    {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
    {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
    {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
    {CKR_SESSION_COUNT, "CKR_SESSION_COUNT"},
    {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
    {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
    {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
    {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
    {CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED"},
    {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
    {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
    {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
    {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
};

static void rv_name(CK_RV rv, char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof rv_names / sizeof rv_names[0]; i++)
        if (rv_names[i].rv == rv) {
            snprintf(buf, len, "%s", rv_names[i].name);
            return;
        }
    snprintf(buf, len, "CKR 0x%lx", (unsigned long)rv);
}

/* The token, its session or its login is gone: a new session may help. */
static int session_lost(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
           rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_ERROR || rv == CKR_KEY_HANDLE_INVALID ||
           rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_SLOT_ID_INVALID;
}

static int map_rv(CK_RV rv)
{
    switch (rv) {
    case CKR_OK:
        return 0;
    case CKR_HOST_MEMORY:
        return CPNS_ERR_NOMEM;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_LOCKED:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_LEN_RANGE:
    case CKR_USER_PIN_NOT_INITIALIZED:
        return CPNS_ERR_AUTH;
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_DEVICE_REMOVED:
    case CKR_SLOT_ID_INVALID:
        return CPNS_ERR_NOT_FOUND;
    default:
        return CPNS_ERR_STORE;
    }
}

static void set_err(p11_keystore *ps, const char *fmt, ...) CPNS_PRINTF(2, 3);
static void set_err(p11_keystore *ps, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (ps->err && ps->err_len)
        snprintf(ps->err, ps->err_len, "%s", text);
    else
        cpns_log(&ps->log, CPNS_LOG_ERROR, NULL, NULL, 0, "PKCS#11 token '%s': %s", ps->name, text);
}

/* Records that fn failed with rv and returns the cpns_error for it. */
static int token_fail(p11_keystore *ps, const char *fn, CK_RV rv)
{
    char name[48];
    rv_name(rv, name, sizeof name);
    const char *hint = "";
    if (rv == CKR_DEVICE_MEMORY)
        hint = " (the token is full)";
    else if (rv == CKR_PIN_INCORRECT)
        hint = " (the PIN is wrong)";
    else if (rv == CKR_PIN_LOCKED)
        hint = " (the PIN is locked)";
    else if (rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT)
        hint = " (the token was removed)";
    set_err(ps, "%s: %s%s", fn, name, hint);
    return map_rv(rv);
}

static int module_get(p11_keystore *ps, const char *path)
{
    for (p11_module *m = modules; m; m = m->next)
        if (strcmp(m->path, path) == 0) {
            m->refs++;
            ps->mod = m;
            return 0;
        }
    p11_module *m = cpns_calloc(1, sizeof *m);
    if (!m || !(m->path = cpns_strdup(path))) {
        cpns_free(m);
        return CPNS_ERR_NOMEM;
    }
    m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!m->dl) {
        const char *why = dlerror();
        set_err(ps, "cannot load the PKCS#11 module %s: %s", path, why ? why : "dlopen failed");
        cpns_free(m->path);
        cpns_free(m);
        return CPNS_ERR_IO;
    }
    CK_C_GetFunctionList get = NULL;
    /* POSIX allows this conversion for dlsym() results */
    *(void **)&get = dlsym(m->dl, "C_GetFunctionList");
    CK_RV rv = get ? get(&m->f) : CKR_GENERAL_ERROR;
    int result = 0;
    if (rv != CKR_OK || !m->f) {
        set_err(ps, "%s is not a PKCS#11 module (no C_GetFunctionList)", path);
        result = CPNS_ERR_IO;
    } else {
        CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
        rv = m->f->C_Initialize(&args);
        if (rv == CKR_OK)
            m->finalize = 1;
        else if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) /* by someone else in this process */
            result = token_fail(ps, "C_Initialize", rv);
    }
    if (result) {
        dlclose(m->dl);
        cpns_free(m->path);
        cpns_free(m);
        return result;
    }
    m->refs = 1;
    m->next = modules;
    modules = m;
    ps->mod = m;
    return 0;
}

static void module_put(p11_module *m)
{
    if (!m || --m->refs > 0)
        return;
    for (p11_module **pp = &modules; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    if (m->finalize)
        m->f->C_Finalize(NULL);
    dlclose(m->dl);
    cpns_free(m->path);
    cpns_free(m);
}

/* --- the session --- */

static void session_close(p11_keystore *ps)
{
    if (ps->session != CK_INVALID_HANDLE)
        ps->mod->f->C_CloseSession(ps->session);
    ps->session = CK_INVALID_HANDLE;
    ps->key = CK_INVALID_HANDLE;
}

/* The slot whose token has our label. */
static int find_slot(p11_keystore *ps, CK_SLOT_ID *slot)
{
    CK_FUNCTION_LIST_PTR f = ps->mod->f;
    CK_ULONG n = 0;
    CK_RV rv = f->C_GetSlotList(CK_TRUE, NULL, &n);
    if (rv != CKR_OK)
        return token_fail(ps, "C_GetSlotList", rv);
    CK_SLOT_ID *slots = cpns_calloc(n ? n : 1, sizeof *slots);
    if (!slots)
        return CPNS_ERR_NOMEM;
    rv = f->C_GetSlotList(CK_TRUE, slots, &n);
    int result = CPNS_ERR_NOT_FOUND;
    CK_RV info_rv = CKR_OK; /* a slot whose token did not answer, which may be ours */
    for (CK_ULONG i = 0; rv == CKR_OK && i < n && result == CPNS_ERR_NOT_FOUND; i++) {
        CK_TOKEN_INFO info;
        CK_RV irv = f->C_GetTokenInfo(slots[i], &info);
        if (irv != CKR_OK)
            info_rv = irv;
        else if (memcmp(info.label, ps->label, sizeof info.label) == 0) {
            *slot = slots[i];
            result = 0;
        }
    }
    cpns_free(slots);
    if (rv != CKR_OK)
        return token_fail(ps, "C_GetSlotList", rv);
    if (result && info_rv != CKR_OK)
        return token_fail(ps, "C_GetTokenInfo", info_rv);
    if (result)
        set_err(ps, "no token labelled '%s' is present", ps->name);
    return result;
}

/* Looks the store's key up by its CKA_ID and checks that it cannot leave the token. */
static int find_key(p11_keystore *ps)
{
    CK_FUNCTION_LIST_PTR f = ps->mod->f;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_ID, ps->key_id, KEY_ID_LEN},
    };
    CK_RV rv = f->C_FindObjectsInit(ps->session, tmpl, sizeof tmpl / sizeof tmpl[0]);
    if (rv != CKR_OK)
        return token_fail(ps, "C_FindObjectsInit", rv);
    CK_OBJECT_HANDLE found[2];
    CK_ULONG n = 0;
    rv = f->C_FindObjects(ps->session, found, 2, &n);
    f->C_FindObjectsFinal(ps->session);
    if (rv != CKR_OK)
        return token_fail(ps, "C_FindObjects", rv);
    if (n != 1) {
        set_err(ps, n ? "two keys have this store's CKA_ID"
                      : "the token holds no key for this "
                        "store (another token?)");
        return n ? CPNS_ERR_CORRUPT : CPNS_ERR_NOT_FOUND;
    }
    CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE;
    CK_ATTRIBUTE check[] = {
        {CKA_SENSITIVE, &sensitive, sizeof sensitive},
        {CKA_EXTRACTABLE, &extractable, sizeof extractable},
    };
    rv = f->C_GetAttributeValue(ps->session, found[0], check, 2);
    if (rv != CKR_OK)
        return token_fail(ps, "C_GetAttributeValue", rv);
    if (!sensitive || extractable) {
        set_err(ps, "the store's key can leave the token (CKA_SENSITIVE false or "
                    "CKA_EXTRACTABLE true): refused");
        return CPNS_ERR_PERM;
    }
    ps->key = found[0];
    return 0;
}

/* A session, logged in, with the store's key; find_key is 0 while the key does not exist yet. */
static int session_open(p11_keystore *ps, int with_key)
{
    CK_SLOT_ID slot = 0;
    int rv = find_slot(ps, &slot);
    if (rv)
        return rv;
    CK_FUNCTION_LIST_PTR f = ps->mod->f;
    CK_RV crv =
        f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &ps->session);
    if (crv != CKR_OK) {
        ps->session = CK_INVALID_HANDLE;
        return token_fail(ps, "C_OpenSession", crv);
    }
    crv = f->C_Login(ps->session, CKU_USER, (CK_UTF8CHAR_PTR)ps->pin, strlen(ps->pin));
    /* another keystore of this process may have logged in to the same token */
    if (crv != CKR_OK && crv != CKR_USER_ALREADY_LOGGED_IN) {
        rv = token_fail(ps, "C_Login", crv);
        session_close(ps);
        return rv;
    }
    rv = with_key ? find_key(ps) : 0;
    if (rv)
        session_close(ps);
    return rv;
}

/* --- AES-256-GCM in the token --- */

/*
 * in -> out (encrypt: out is in_len + tag; decrypt: in is ct + tag), with one
 * new session and one more try when the old session turns out to be lost.
 */
static int token_gcm(p11_keystore *ps, int encrypt, const uint8_t *nonce, const uint8_t *aad,
                     size_t aad_len, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap)
{
    CK_GCM_PARAMS params = {
        .iv_ptr = (CK_BYTE_PTR)nonce,
        .iv_len = CPNS_GCM_NONCE_LEN,
        .iv_bits = CPNS_GCM_NONCE_LEN * 8,
        .aad_ptr = (CK_BYTE_PTR)aad,
        .aad_len = aad_len,
        .tag_bits = CPNS_GCM_TAG_LEN * 8,
    };
    CK_MECHANISM mech = {CKM_AES_GCM, &params, sizeof params};
    CK_FUNCTION_LIST_PTR f = ps->mod->f;
    for (int attempt = 0;; attempt++) {
        if (ps->session == CK_INVALID_HANDLE) {
            int rv = session_open(ps, 1);
            if (rv)
                return rv;
        }
        const char *fn = encrypt ? "C_EncryptInit" : "C_DecryptInit";
        CK_RV crv = encrypt ? f->C_EncryptInit(ps->session, &mech, ps->key)
                            : f->C_DecryptInit(ps->session, &mech, ps->key);
        if (crv == CKR_OK) {
            CK_ULONG n = out_cap;
            fn = encrypt ? "C_Encrypt" : "C_Decrypt";
            crv = encrypt ? f->C_Encrypt(ps->session, (CK_BYTE_PTR)in, in_len, out, &n)
                          : f->C_Decrypt(ps->session, (CK_BYTE_PTR)in, in_len, out, &n);
            if (crv == CKR_OK &&
                n != (encrypt ? in_len + CPNS_GCM_TAG_LEN : in_len - CPNS_GCM_TAG_LEN))
                crv = CKR_GENERAL_ERROR;
        }
        if (crv == CKR_OK)
            return 0;
        /*
         * The tag: not sealed by this key, or tampered with. SoftHSM2 2.6
         * answers a failed GCM tag with CKR_GENERAL_ERROR, which is read the
         * same way when decrypting: the file is refused and left untouched.
         */
        if (!encrypt && (crv == CKR_ENCRYPTED_DATA_INVALID || crv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
                         crv == CKR_GENERAL_ERROR))
            return CPNS_ERR_AUTH;
        if (!session_lost(crv) || attempt > 0) {
            int rv = token_fail(ps, fn, crv);
            if (session_lost(crv))
                session_close(ps);
            return rv;
        }
        session_close(ps);
    }
}

static int token_seal(void *ctx, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                      const uint8_t *pt, size_t len, uint8_t *ct, uint8_t *tag)
{
    p11_keystore *ps = ctx;
    size_t out_len = len + CPNS_GCM_TAG_LEN;
    uint8_t *out = cpns_malloc(out_len);
    if (!out)
        return CPNS_ERR_NOMEM;
    int rv = token_gcm(ps, 1, nonce, aad, aad_len, pt, len, out, out_len);
    /* what failed is logged; to the key table it is the store failing (Return 3) */
    if (rv && rv != CPNS_ERR_NOMEM)
        rv = CPNS_ERR_STORE;
    if (!rv) {
        memcpy(ct, out, len);
        memcpy(tag, out + len, CPNS_GCM_TAG_LEN);
    }
    cpns_free(out); /* ciphertext only */
    return rv;
}

static int token_open(void *ctx, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                      const uint8_t *ct, size_t len, const uint8_t *tag, uint8_t *pt)
{
    p11_keystore *ps = ctx;
    size_t in_len = len + CPNS_GCM_TAG_LEN;
    uint8_t *in = cpns_malloc(in_len);
    uint8_t *out = cpns_malloc(in_len); /* some tokens want room for the tag too */
    int rv = CPNS_ERR_NOMEM;
    if (in && out) {
        memcpy(in, ct, len);
        memcpy(in + len, tag, CPNS_GCM_TAG_LEN);
        rv = token_gcm(ps, 0, nonce, aad, aad_len, in, in_len, out, in_len);
        if (!rv)
            memcpy(pt, out, len);
    }
    if (out)
        cpns_wipe(out, in_len);
    cpns_free(out);
    cpns_free(in);
    return rv;
}

/* --- DIR/token-euk --- */

static void euk_header(uint8_t *file, const uint8_t key_id[KEY_ID_LEN])
{
    memcpy(file, EUK_MAGIC, EUK_MAGIC_LEN);
    file[EUK_MAGIC_LEN] = KS_FORMAT_TOKEN;
    memcpy(file + EUK_OFF_ID, key_id, KEY_ID_LEN);
}

static int euk_unseal(p11_keystore *ps, uint8_t EUK[CPNS_KEY_LEN])
{
    const uint8_t *f = ps->euk_file;
    int rv = token_open(ps, f + EUK_OFF_NONCE, f, EUK_AAD_LEN, f + EUK_OFF_CT, CPNS_KEY_LEN,
                        f + EUK_OFF_TAG, EUK);
    if (rv == CPNS_ERR_AUTH) {
        set_err(ps, "%s does not decrypt with the store's token key", EUK_FILE);
        rv = CPNS_ERR_CORRUPT;
    }
    if (rv)
        cpns_wipe(EUK, CPNS_KEY_LEN);
    return rv;
}

/* Reads DIR/token-euk: 0 with ps->key_id and ps->euk_file, or CPNS_ERR_NOT_FOUND (a new store). */
static int euk_read(p11_keystore *ps, int dirfd)
{
    uint8_t *file;
    size_t len;
    int rv = cpns_ks_read_file(dirfd, EUK_FILE, EUK_FILE_LEN, EUK_FILE_LEN, &file, &len);
    if (rv == CPNS_ERR_PERM)
        set_err(ps, "%s is accessible to group or others", EUK_FILE);
    else if (rv == CPNS_ERR_CORRUPT)
        set_err(ps, "%s has the wrong size", EUK_FILE);
    else if (rv == CPNS_ERR_IO)
        set_err(ps, "cannot read %s", EUK_FILE);
    if (rv)
        return rv;
    if (memcmp(file, EUK_MAGIC, EUK_MAGIC_LEN) != 0 || file[EUK_MAGIC_LEN] != KS_FORMAT_TOKEN) {
        set_err(ps, "%s is not a sealed EUK", EUK_FILE);
        rv = CPNS_ERR_CORRUPT;
    } else {
        memcpy(ps->euk_file, file, EUK_FILE_LEN);
        memcpy(ps->key_id, file + EUK_OFF_ID, KEY_ID_LEN);
    }
    cpns_free(file);
    return rv;
}

/* A new store: a new token key, the EUK sealed with it into DIR/token-euk. */
static int euk_create(p11_keystore *ps, int dirfd, const uint8_t EUK[CPNS_KEY_LEN])
{
    int rv = cpns_random(NULL, ps->key_id, KEY_ID_LEN);
    if (rv)
        return rv;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG value_len = CPNS_KEY_LEN;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    char label[] = KEY_LABEL;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_VALUE_LEN, &value_len, sizeof value_len},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_MODIFIABLE, &no, sizeof no},
        {CKA_ENCRYPT, &yes, sizeof yes},
        {CKA_DECRYPT, &yes, sizeof yes},
        {CKA_WRAP, &no, sizeof no},
        {CKA_UNWRAP, &no, sizeof no},
        {CKA_SIGN, &no, sizeof no},
        {CKA_VERIFY, &no, sizeof no},
        {CKA_DERIVE, &no, sizeof no},
        {CKA_ID, ps->key_id, KEY_ID_LEN},
        {CKA_LABEL, label, sizeof label - 1},
    };
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
    CK_FUNCTION_LIST_PTR f = ps->mod->f;
    CK_RV crv = f->C_GenerateKey(ps->session, &mech, tmpl, sizeof tmpl / sizeof tmpl[0], &ps->key);
    if (crv != CKR_OK)
        return token_fail(ps, "C_GenerateKey", crv);

    uint8_t *file = ps->euk_file;
    euk_header(file, ps->key_id);
    rv = cpns_random(NULL, file + EUK_OFF_NONCE, CPNS_GCM_NONCE_LEN);
    if (!rv)
        rv = token_seal(ps, file + EUK_OFF_NONCE, file, EUK_AAD_LEN, EUK, CPNS_KEY_LEN,
                        file + EUK_OFF_CT, file + EUK_OFF_TAG);
    if (!rv) {
        rv = cpns_ks_replace_file(dirfd, EUK_FILE, EUK_TMP, file, EUK_FILE_LEN);
        if (rv)
            set_err(ps, "cannot write %s", EUK_FILE);
    }
    if (rv && ps->session != CK_INVALID_HANDLE) {
        /* nothing refers to the key: do not leave it behind in the token */
        f->C_DestroyObject(ps->session, ps->key);
        ps->key = CK_INVALID_HANDLE;
    }
    return rv;
}

/* --- the ops --- */

static int p11_get(cpns_keystore *ks, const char *SGID, cpns_stored_keys *out)
{
    p11_keystore *ps = (p11_keystore *)ks;
    return ps->files->ops->get(ps->files, SGID, out);
}

static int p11_put(cpns_keystore *ks, const char *SGID, uint32_t KeyVersion,
                   const uint8_t GK[CPNS_KEY_LEN])
{
    p11_keystore *ps = (p11_keystore *)ks;
    return ps->files->ops->put(ps->files, SGID, KeyVersion, GK);
}

static int p11_list(cpns_keystore *ks, cpns_keystore_visit_fn fn, void *arg)
{
    p11_keystore *ps = (p11_keystore *)ks;
    return ps->files->ops->list(ps->files, fn, arg);
}

static void p11_close(cpns_keystore *ks)
{
    p11_keystore *ps = (p11_keystore *)ks;
    cpns_keystore_free(ps->files);
    if (ps->mod) {
        session_close(ps);
        module_put(ps->mod);
    }
    if (ps->pin) {
        cpns_wipe(ps->pin, strlen(ps->pin));
        cpns_free(ps->pin);
    }
    cpns_wipe(ps, sizeof *ps);
    cpns_free(ps);
}

static const cpns_keystore_ops p11_ops = {p11_get, p11_put, p11_list, p11_close};

/*
 * Reads DIR/token-euk and opens a session with the store's key, or, in a
 * new DIR and given an EUK, makes both; an EUK given for an existing store
 * must be the sealed one.
 */
static int open_euk(p11_keystore *ps, const cpns_keystore_pkcs11_config *cfg)
{
    int dirfd;
    int rv = cpns_ks_open_dir(cfg->dir, &dirfd);
    if (rv) {
        set_err(ps,
                rv == CPNS_ERR_PERM ? "%s is accessible to group or others"
                                    : "cannot open or create the directory %s",
                cfg->dir);
        return rv;
    }
    rv = euk_read(ps, dirfd);
    if (rv == CPNS_ERR_NOT_FOUND) {
        if (!cfg->EUK) {
            set_err(ps, "%s holds no EUK yet: the first start needs the EUK (--key-file)",
                    cfg->dir);
        } else {
            rv = session_open(ps, 0);
            if (!rv)
                rv = euk_create(ps, dirfd, cfg->EUK);
        }
    } else if (!rv) {
        rv = session_open(ps, 1);
        if (!rv && cfg->EUK) {
            uint8_t sealed[CPNS_KEY_LEN];
            rv = euk_unseal(ps, sealed);
            if (!rv && !cpns_mem_equal(sealed, cfg->EUK, CPNS_KEY_LEN)) {
                set_err(ps, "%s holds another EUK than the one given", cfg->dir);
                rv = CPNS_ERR_EXISTS;
            }
            cpns_wipe(sealed, sizeof sealed);
        }
    }
    close(dirfd);
    return rv;
}

int cpns_keystore_pkcs11_open(cpns_keystore **out, const cpns_keystore_pkcs11_config *cfg,
                              char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (!out)
        return CPNS_ERR_INVALID_ARG;
    *out = NULL;
    if (!cfg || !cfg->module || !cfg->token_label || !cfg->pin || !cfg->dir || !*cfg->dir ||
        strlen(cfg->token_label) > 32 || strlen(cfg->pin) > PIN_MAX)
        return CPNS_ERR_INVALID_ARG;
    p11_keystore *ps = cpns_calloc(1, sizeof *ps);
    if (!ps)
        return CPNS_ERR_NOMEM;
    ps->base.ops = &p11_ops;
    ps->session = CK_INVALID_HANDLE;
    ps->key = CK_INVALID_HANDLE;
    ps->log = (cpns_logger){cfg->log, cfg->log_arg, "pne", NULL, 0};
    ps->err = err;
    ps->err_len = err_len;
    memset(ps->label, ' ', 32);
    memcpy(ps->label, cfg->token_label, strlen(cfg->token_label));
    memcpy(ps->name, cfg->token_label, strlen(cfg->token_label));
    ps->pin = cpns_strdup(cfg->pin);
    int rv = ps->pin ? module_get(ps, cfg->module) : CPNS_ERR_NOMEM;
    if (!rv)
        rv = open_euk(ps, cfg);
    if (!rv) {
        cpns_ks_sealer sealer = {KS_FORMAT_TOKEN, token_seal, token_open, ps};
        rv = cpns_ks_file_open_sealed(&ps->files, cfg->dir, &sealer);
        if (rv == CPNS_ERR_AUTH || rv == CPNS_ERR_CORRUPT) {
            set_err(ps, "groupkeys does not decrypt with the store's token key, or is damaged");
            rv = CPNS_ERR_CORRUPT;
        } else if (rv == CPNS_ERR_PERM) {
            set_err(ps, "groupkeys is accessible to group or others");
        }
    }
    /* from now on failures go to the log */
    ps->err = NULL;
    ps->err_len = 0;
    if (rv) {
        p11_close(&ps->base);
        return rv;
    }
    *out = &ps->base;
    return 0;
}

int cpns_keystore_pkcs11_euk(cpns_keystore *ks, uint8_t EUK[CPNS_KEY_LEN])
{
    if (!ks || ks->ops != &p11_ops || !EUK)
        return CPNS_ERR_INVALID_ARG;
    return euk_unseal((p11_keystore *)ks, EUK);
}
