/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The crypto micro-benchmark of `make bench`: the server's cryptographic work
 * per member as the server does it, cpns_egk_wrap_ctx on one reused cpns_gcm
 * context with the member's cached K_wrap (AAD built and checked, a re-key
 * with the new nonce, seal, tag), against a bare EVP AES-256-GCM encryption
 * of 32 bytes (one reused context, new key and nonce each time, no AAD), both
 * measured in this run, in alternating slices, so that the ratio depends
 * neither on the machine nor much on the load of others sharing it.
 * The one-shot cpns_egk_wrap (an OpenSSL context set up per call) is shown
 * on stderr for comparison only. Prints a summary on stderr and one line
 * BENCH {"name":"crypto",...} on stdout.
 *   cpns-bench-crypto [SECONDS]      (per measurement, default 1)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/evp.h>

#include "cpns/cpns.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs batches of fn until `seconds` passed; adds the operations and the time taken. */
static void run(int (*fn)(void *), void *arg, double seconds, double *ops, double *took)
{
    unsigned long n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 256; i++)
            if (fn(arg) != 0) {
                fprintf(stderr, "cpns-bench-crypto: an operation failed\n");
                exit(1);
            }
        n += 256;
    } while ((t = now_s() - t0) < seconds);
    *ops += (double)n;
    *took += t;
}

/*
 * Operations per second of a and b, `seconds` each, measured in alternating
 * slices: on a shared machine the load then drifts over both alike instead of
 * skewing the ratio.
 */
#define SLICES 10
static void rates(int (*a)(void *), int (*b)(void *), void *arg, double seconds, double *rate_a,
                  double *rate_b)
{
    double ops_a = 0, took_a = 0, ops_b = 0, took_b = 0;
    for (int i = 0; i < SLICES; i++) {
        run(a, arg, seconds / SLICES, &ops_a, &took_a);
        run(b, arg, seconds / SLICES, &ops_b, &took_b);
    }
    *rate_a = ops_a / took_a;
    *rate_b = ops_b / took_b;
}

typedef struct state {
    uint8_t key[32], GK[32], nonce[12], out[64], tag[16];
    EVP_CIPHER_CTX *ctx;
    cpns_gcm *gcm;
    unsigned long i;
} state;

static int wrap_once(void *arg)
{
    state *s = arg;
    /* every member has its own K_wrap, as in bare GCM below */
    s->nonce[0] = (uint8_t)s->i++;
    s->key[0] = (uint8_t)s->i;
    return cpns_egk_wrap_ctx(s->gcm, s->key, "sg-bench", "pne-000042", 1, s->GK, s->nonce, s->out);
}

static int wrap_oneshot_once(void *arg)
{
    state *s = arg;
    s->nonce[0] = (uint8_t)s->i++;
    return cpns_egk_wrap(s->key, "sg-bench", "pne-000042", 1, s->GK, s->nonce, s->out);
}

static int raw_once(void *arg)
{
    state *s = arg;
    int outl;
    s->nonce[0] = (uint8_t)s->i++;
    s->key[0] = (uint8_t)s->i;
    if (EVP_EncryptInit_ex(s->ctx, NULL, NULL, s->key, s->nonce) != 1 ||
        EVP_EncryptUpdate(s->ctx, s->out, &outl, s->GK, 32) != 1 ||
        EVP_EncryptFinal_ex(s->ctx, s->out + 32, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_GET_TAG, 16, s->tag) != 1)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    if (seconds <= 0)
        seconds = 1.0;
    state s = {0};
    for (int i = 0; i < 32; i++) {
        s.key[i] = (uint8_t)i;
        s.GK[i] = (uint8_t)(0xc0 + i);
    }
    s.ctx = EVP_CIPHER_CTX_new();
    if (!s.ctx || cpns_gcm_new(&s.gcm) != 0 ||
        EVP_EncryptInit_ex(s.ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1)
        return 1;
    /* warm up every path (provider fetch, page faults) before measuring */
    double wrap, raw, oneshot, raw2;
    rates(wrap_once, raw_once, &s, seconds / 10, &wrap, &raw);
    rates(wrap_oneshot_once, raw_once, &s, seconds / 10, &oneshot, &raw2);
    rates(wrap_once, raw_once, &s, seconds, &wrap, &raw);
    rates(wrap_oneshot_once, raw_once, &s, seconds / 2, &oneshot, &raw2);
    EVP_CIPHER_CTX_free(s.ctx);
    cpns_gcm_free(s.gcm);
    fprintf(stderr,
            "crypto: EncryptedGroupKey wrap on a reused context %.0f/s, bare AES-256-GCM(32 "
            "bytes) %.0f/s, ratio %.2f (one-shot cpns_egk_wrap %.0f/s, ratio %.2f)\n",
            wrap, raw, wrap / raw, oneshot, oneshot / raw2);
    printf("BENCH {\"name\":\"crypto\",\"ops_per_s\":%.0f,\"raw_gcm_ops_per_s\":%.0f,"
           "\"ratio\":%.3f}\n",
           wrap, raw, wrap / raw);
    return 0;
}
