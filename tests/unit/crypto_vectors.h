/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The normative test vectors of PROTOCOL.md section 4.1, copied literally
 * (base64 and hex as the document prints them), for the crypto and keystore
 * tests, and a base64 decoder on OpenSSL so that the vectors are checked
 * independently of the library's own codec.
 */
#ifndef CPNS_TEST_CRYPTO_VECTORS_H
#define CPNS_TEST_CRYPTO_VECTORS_H

#include <string.h>

#include <openssl/evp.h>

#include "support.h"

#define V_EUK_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define V_GK_HEX "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeeab12"
#define V_K_WRAP_HEX "2e209cad2bf2df5701f910c6aa6ddb3e0a0bb6d05b0225c9ebadc3ca97fa33fe"
#define V_K_AUTH_HEX "fea05b9c48f3b289f703f1e4d2e3449e0dfd9c39f39b2d272127b75ef8af5c6f"
#define V_K_CONFIRM_HEX "fbf2ba8d59b5d326b90fb7de022a39596962ab5a1e2fe5433094029e50b78d3d"
#define V_K_GROUP_MSG_HEX "e94e882eac232c0bed5850b0277561d7653f87ee1d612d27227761c5a184e933"
#define V_SGID "sg-family"
#define V_PNEID "pne-tv"
#define V_KEYVERSION 1
#define V_NONCE_HEX "000102030405060708090a0b"
#define V_EGK_B64                                                                                  \
    "AQABAgMEBQYHCAkKC45q4IHgR6NOzNjPvzx/4bpRc46Qq5o/KxsQcqMJyl2i9QN21K5E0iH8ECZuJd7D+w=="
#define V_REG_NONCE "AAECAwQFBgcICQoLDA0ODw=="
#define V_REG_TIME "1795000000"
#define V_PROOF_B64 "IG6OVa07Ua8kAvA2hcTp23dr17ipMlco/SzHwLXYeGk="
#define V_KC_B64 "SyIoa3oG/Z50VPpF4+qQ4w=="
#define V_GROUP_PT "hello group"
#define V_GROUP_MSG_B64 "AQAAAAEAAQIDBAUGBwgJCgvwn2MHcayFFl0MiRC/wcpHlV9OyFNBoWTQAWw="

/* Decodes padded base64 into out (cap bytes) and returns the decoded length. */
static inline size_t v_b64_decode(const char *s, uint8_t *out, size_t cap)
{
    uint8_t tmp[256];
    size_t n = strlen(s);
    assert_true(n % 4 == 0 && n / 4 * 3 <= sizeof tmp);
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    assert_true(len >= 0);
    /* EVP_DecodeBlock counts the padding as zero bytes */
    while (n && s[n - 1] == '=') {
        n--;
        len--;
    }
    assert_true((size_t)len <= cap);
    memcpy(out, tmp, (size_t)len);
    return (size_t)len;
}

/* Encodes len bytes as padded base64 into out (CPNS_B64_LEN(len) + 1 bytes). */
static inline void v_b64_encode(const uint8_t *data, size_t len, char *out)
{
    assert_int_equal(EVP_EncodeBlock((unsigned char *)out, data, (int)len), (int)CPNS_B64_LEN(len));
}

static inline void v_euk(uint8_t EUK[CPNS_KEY_LEN])
{
    assert_int_equal(v_b64_decode(V_EUK_B64, EUK, CPNS_KEY_LEN), CPNS_KEY_LEN);
}

static inline void v_assert_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i], 0);
}

#endif
