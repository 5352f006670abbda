/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The small primitives every other part of libcpns leans on: the OS CSPRNG
 * (every Group Key, nonce and TransactionID comes from here unless a test
 * scripts the randomness), wiping, constant-time comparison and the key
 * fingerprints that logs show instead of keys.
 */
#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cpns/crypto.h"

int cpns_random(void *arg, uint8_t *buf, size_t len)
{
    (void)arg;
    /* RAND_bytes takes an int: draw in chunks so any size_t works */
    while (len) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(buf, n) != 1)
            return CPNS_ERR_CRYPTO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

void cpns_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

int cpns_mem_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void cpns_fingerprint(const uint8_t *key, size_t len, char out[CPNS_FINGERPRINT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(key, len, md, &md_len, EVP_sha256(), NULL) != 1 ||
        md_len < CPNS_FINGERPRINT_LEN / 2) {
        /* only for logs: a visibly impossible value rather than a wrong one */
        for (size_t i = 0; i < CPNS_FINGERPRINT_LEN; i++)
            out[i] = '?';
        out[CPNS_FINGERPRINT_LEN] = '\0';
        return;
    }
    for (size_t i = 0; i < CPNS_FINGERPRINT_LEN / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[CPNS_FINGERPRINT_LEN] = '\0';
}
