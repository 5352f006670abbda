/*
 * The crypto micro-benchmark of `make bench`: EncryptedGroupKey wrap (the
 * server's work per member, with its cached K_wrap) against a bare EVP
 * AES-256-GCM encryption of 32 bytes (one reused context, new key and nonce
 * each time, no AAD), both measured in this run so that the ratio does not
 * depend on the machine. Prints a summary on stderr and one line
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

/* Runs batches of fn until `seconds` passed; operations per second. */
static double rate(int (*fn)(void *), void *arg, double seconds)
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
    return (double)n / t;
}

typedef struct state {
    uint8_t key[32], GK[32], nonce[12], out[64], tag[16];
    EVP_CIPHER_CTX *ctx;
    unsigned long i;
} state;

static int wrap_once(void *arg)
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
    if (!s.ctx || EVP_EncryptInit_ex(s.ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1)
        return 1;
    /* warm up both paths (provider fetch, page faults) before measuring */
    rate(wrap_once, &s, seconds / 10);
    rate(raw_once, &s, seconds / 10);
    double wrap = rate(wrap_once, &s, seconds);
    double raw = rate(raw_once, &s, seconds);
    EVP_CIPHER_CTX_free(s.ctx);
    fprintf(stderr,
            "crypto: EncryptedGroupKey wrap %.0f/s, bare AES-256-GCM(32 bytes) %.0f/s, "
            "ratio %.2f\n",
            wrap, raw, wrap / raw);
    printf("BENCH {\"name\":\"crypto\",\"ops_per_s\":%.0f,\"raw_gcm_ops_per_s\":%.0f,"
           "\"ratio\":%.3f}\n",
           wrap, raw, wrap / raw);
    return 0;
}
