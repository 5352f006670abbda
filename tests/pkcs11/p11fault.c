/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A PKCS#11 module for the tests that passes every call to a real module
 * (SoftHSM2) and, while a control file says so, makes the token fail the way
 * a real one does, so that the PNE's handling of a token lost mid-run can be
 * tested on the real token:
 *
 *   CPNS_P11FAULT_MODULE  the real module (default /usr/lib/softhsm/libsofthsm2.so)
 *   CPNS_P11FAULT_FILE    its first word, read on every call:
 *     removed  the token is gone: no slot lists it, C_OpenSession says
 *              CKR_TOKEN_NOT_PRESENT, operations CKR_DEVICE_REMOVED
 *     pin      the token was reset with a new PIN: operations say
 *              CKR_USER_NOT_LOGGED_IN, C_Login CKR_PIN_INCORRECT
 *     full     the token has no memory left: C_GenerateKey, C_CreateObject and
 *              the start of an operation say CKR_DEVICE_MEMORY
 *     (anything else, or no file: no fault)
 *
 * It counts nothing and changes nothing in the token: crypto is SoftHSM2's.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit-1/p11-kit/pkcs11.h>

enum fault { F_NONE, F_REMOVED, F_PIN, F_FULL };

static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST wrapped;

static enum fault fault(void)
{
    const char *path = getenv("CPNS_P11FAULT_FILE");
    FILE *fp = path ? fopen(path, "r") : NULL;
    if (!fp)
        return F_NONE;
    char word[16] = "";
    int n = fscanf(fp, "%15s", word);
    fclose(fp);
    if (n != 1)
        return F_NONE;
    if (strcmp(word, "removed") == 0)
        return F_REMOVED;
    if (strcmp(word, "pin") == 0)
        return F_PIN;
    if (strcmp(word, "full") == 0)
        return F_FULL;
    return F_NONE;
}

static CK_RV op_fault(void)
{
    switch (fault()) {
    case F_REMOVED:
        return CKR_DEVICE_REMOVED;
    case F_PIN:
        return CKR_USER_NOT_LOGGED_IN;
    case F_FULL:
        return CKR_DEVICE_MEMORY;
    default:
        return CKR_OK;
    }
}

static CK_RV w_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
    if (fault() == F_REMOVED && present) {
        *count = 0;
        return CKR_OK;
    }
    return real->C_GetSlotList(present, list, count);
}

static CK_RV w_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, void *app, CK_NOTIFY notify,
                           CK_SESSION_HANDLE_PTR session)
{
    if (fault() == F_REMOVED)
        return CKR_TOKEN_NOT_PRESENT;
    return real->C_OpenSession(slot, flags, app, notify, session);
}

static CK_RV w_Login(CK_SESSION_HANDLE session, CK_USER_TYPE type, CK_UTF8CHAR_PTR pin,
                     CK_ULONG len)
{
    enum fault f = fault();
    if (f == F_PIN)
        return CKR_PIN_INCORRECT;
    if (f == F_REMOVED)
        return CKR_DEVICE_REMOVED;
    return real->C_Login(session, type, pin, len);
}

static CK_RV w_EncryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
    CK_RV rv = op_fault();
    return rv != CKR_OK ? rv : real->C_EncryptInit(session, mech, key);
}

static CK_RV w_DecryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
    CK_RV rv = op_fault();
    return rv != CKR_OK ? rv : real->C_DecryptInit(session, mech, key);
}

static CK_RV w_FindObjectsInit(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
    enum fault f = fault();
    if (f == F_REMOVED || f == F_PIN)
        return op_fault();
    return real->C_FindObjectsInit(session, tmpl, n);
}

static CK_RV w_GenerateKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl,
                           CK_ULONG n, CK_OBJECT_HANDLE_PTR key)
{
    CK_RV rv = op_fault();
    return rv != CKR_OK ? rv : real->C_GenerateKey(session, mech, tmpl, n, key);
}

static CK_RV w_CreateObject(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                            CK_OBJECT_HANDLE_PTR obj)
{
    CK_RV rv = op_fault();
    return rv != CKR_OK ? rv : real->C_CreateObject(session, tmpl, n, obj);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    if (!real) {
        const char *path = getenv("CPNS_P11FAULT_MODULE");
        void *dl = dlopen(path ? path : "/usr/lib/softhsm/libsofthsm2.so", RTLD_NOW | RTLD_LOCAL);
        if (!dl)
            return CKR_GENERAL_ERROR;
        CK_C_GetFunctionList get = NULL;
        *(void **)&get = dlsym(dl, "C_GetFunctionList");
        if (!get || get(&real) != CKR_OK)
            return CKR_GENERAL_ERROR;
        /* the real module stays loaded for the life of the process */
        wrapped = *real;
        wrapped.C_GetSlotList = w_GetSlotList;
        wrapped.C_OpenSession = w_OpenSession;
        wrapped.C_Login = w_Login;
        wrapped.C_EncryptInit = w_EncryptInit;
        wrapped.C_DecryptInit = w_DecryptInit;
        wrapped.C_FindObjectsInit = w_FindObjectsInit;
        wrapped.C_GenerateKey = w_GenerateKey;
        wrapped.C_CreateObject = w_CreateObject;
    }
    *list = &wrapped;
    return CKR_OK;
}
