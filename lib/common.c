/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error strings, the allocator hook, the logging helper and small shared
 * helpers. The allocator hook is the library's only process-wide state (see
 * cpns_set_allocator() in common.h for why).
 */
#define _DEFAULT_SOURCE /* MADV_HUGEPAGE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpns/crypto.h"
#include "internal.h"

const char *cpns_version(void)
{
    return CPNS_VERSION_STRING; /* the CMake project's version (CMakeLists.txt) */
}

const char *cpns_strerror(int err)
{
    switch (err) {
    case CPNS_OK:
        return "success";
    case CPNS_ERR_NOMEM:
        return "out of memory";
    case CPNS_ERR_INVALID_ARG:
        return "invalid argument";
    case CPNS_ERR_MALFORMED:
        return "malformed message";
    case CPNS_ERR_TOO_LARGE:
        return "too large";
    case CPNS_ERR_CRYPTO:
        return "cryptographic library failure";
    case CPNS_ERR_AUTH:
        return "authentication failed";
    case CPNS_ERR_IO:
        return "input/output error";
    case CPNS_ERR_CORRUPT:
        return "stored data is corrupt or was tampered with";
    case CPNS_ERR_NOT_FOUND:
        return "not found";
    case CPNS_ERR_EXISTS:
        return "already exists";
    case CPNS_ERR_STATE:
        return "not possible in the current state";
    case CPNS_ERR_PERM:
        return "key file is accessible to group or others";
    case CPNS_ERR_STORE:
        return "store failure";
    case CPNS_ERR_BUSY:
        return "in use by another process";
    case CPNS_ERR_AGAIN:
        return "not finished yet";
    case CPNS_ERR_FENCED:
        return "this instance no longer holds the lease";
    default:
        return "unknown error";
    }
}

static void *default_malloc(size_t n, void *arg)
{
    (void)arg;
    return malloc(n);
}

static void *default_realloc(void *p, size_t n, void *arg)
{
    (void)arg;
    return realloc(p, n);
}

static void default_free(void *p, void *arg)
{
    (void)arg;
    free(p);
}

static const cpns_allocator default_allocator = {default_malloc, default_realloc, default_free,
                                                 NULL};
static cpns_allocator allocator = {default_malloc, default_realloc, default_free, NULL};

void cpns_set_allocator(const cpns_allocator *a)
{
    allocator = a ? *a : default_allocator;
}

void *cpns_malloc(size_t n)
{
    return allocator.malloc(n ? n : 1, allocator.arg);
}

void *cpns_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t n = count * size;
    void *p = cpns_malloc(n);
    if (p)
        memset(p, 0, n ? n : 1);
    return p;
}

#define LARGE_MIN ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

void *cpns_calloc_large(size_t count, size_t size)
{
#ifdef MADV_HUGEPAGE
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t n = count * size;
    if (n >= LARGE_MIN && allocator.malloc == default_malloc) {
        void *p = NULL;
        if (posix_memalign(&p, HUGE_PAGE, n) != 0)
            return NULL;
        /* Only a hint: without transparent huge pages the array is as cpns_calloc's. */
        (void)madvise(p, n, MADV_HUGEPAGE);
        memset(p, 0, n);
        return p;
    }
#endif
    return cpns_calloc(count, size);
}

void *cpns_realloc(void *p, size_t n)
{
    return allocator.realloc(p, n ? n : 1, allocator.arg);
}

void cpns_free(void *p)
{
    if (p)
        allocator.free(p, allocator.arg);
}

char *cpns_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = cpns_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void cpns_log(const cpns_logger *lg, cpns_log_level level, const char *SGID, const char *PNEID,
              uint64_t TransactionID, const char *fmt, ...)
{
    if (!lg || !lg->fn || (level == CPNS_LOG_DEBUG && lg->no_debug))
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cpns_log_event ev = {level, lg->entity, lg->id, SGID, PNEID, TransactionID, text, fmt};
    lg->fn(lg->arg, &ev);
}

int cpns_random_tid(cpns_rand_fn rand, void *rand_arg, uint64_t *tid)
{
    uint8_t b[8];
    uint64_t v;
    do {
        int rv = rand ? rand(rand_arg, b, sizeof b) : cpns_random(NULL, b, sizeof b);
        if (rv)
            return rv;
        v = 0;
        for (size_t i = 0; i < sizeof b; i++)
            v = (v << 8) | b[i];
        v &= (uint64_t)INT64_MAX;
    } while (v == 0);
    *tid = v;
    return 0;
}

char *cpns_u64_to_str(uint64_t v, char *buf)
{
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return buf;
}

void cpns_nonce_key(const char *PNEID, const uint8_t *Nonce, char out[CPNS_NONCE_KEY_LEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(PNEID);
    memcpy(out, PNEID, n);
    out[n++] = '\x01';
    for (size_t i = 0; i < CPNS_NONCE_LEN; i++) {
        out[n++] = hex[Nonce[i] >> 4];
        out[n++] = hex[Nonce[i] & 15];
    }
    out[n] = '\0';
}
