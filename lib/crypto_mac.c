/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The two HMAC-SHA256 proofs of PROTOCOL.md section 4: the registration
 * Proof (a PNE shows it holds its EUK, so that only the real PNE can attract
 * its deliveries to a GW) and the KeyConfirmation (a PNE shows it holds the
 * Group Key, so that a GW cannot fake Return 1 and end 7.8.6.3 for a member
 * that never got the key).
 */
#include <string.h>

#include <openssl/evp.h>

#include "crypto_internal.h"
#include "internal.h"

#define SHA256_LEN 32
#define SHA256_BLOCK 64

/*
 * HMAC-SHA256 under a 32-byte key as two keyed digest states: the inner one
 * has absorbed K xor ipad, the outer one K xor opad (RFC 2104). A MAC then
 * costs two state copies and two short digests, with no fetch, allocation or
 * key schedule per message. OpenSSL's one-shot HMAC() fetches the MAC and
 * the digest on every call, which made the server's KeyConfirmation check
 * the largest crypto cost of a 100,000-member delivery.
 */
struct cpns_hmac {
    EVP_MD_CTX *inner, *outer, *work;
};

static int keyed_state(EVP_MD_CTX *ctx, const EVP_MD *md, const uint8_t key[CPNS_KEY_LEN],
                       uint8_t fill)
{
    uint8_t pad[SHA256_BLOCK];
    memset(pad, fill, sizeof pad);
    for (size_t i = 0; i < CPNS_KEY_LEN; i++)
        pad[i] ^= key[i];
    int ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, pad, sizeof pad) == 1;
    cpns_wipe(pad, sizeof pad);
    return ok;
}

/* Keys h (zeroed by the caller); on failure the caller still runs hmac_clear. */
static int hmac_init(cpns_hmac *h, const uint8_t key[CPNS_KEY_LEN])
{
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (md) {
        h->inner = EVP_MD_CTX_new();
        h->outer = EVP_MD_CTX_new();
        h->work = EVP_MD_CTX_new();
    }
    int ok = md && h->inner && h->outer && h->work && keyed_state(h->inner, md, key, 0x36) &&
             keyed_state(h->outer, md, key, 0x5c);
    EVP_MD_free(md); /* the states keep their own reference */
    return ok ? 0 : CPNS_ERR_CRYPTO;
}

static void hmac_clear(cpns_hmac *h)
{
    /* EVP_MD_CTX_free cleanses the digest state, which holds the padded key. */
    EVP_MD_CTX_free(h->inner);
    EVP_MD_CTX_free(h->outer);
    EVP_MD_CTX_free(h->work);
}

int cpns_hmac_new(const uint8_t key[CPNS_KEY_LEN], cpns_hmac **out)
{
    *out = NULL;
    cpns_hmac *h = cpns_calloc(1, sizeof *h);
    if (!h)
        return CPNS_ERR_NOMEM;
    int rv = hmac_init(h, key);
    if (rv) {
        cpns_hmac_free(h);
        return rv;
    }
    *out = h;
    return 0;
}

int cpns_hmac_run(cpns_hmac *h, const uint8_t *msg, size_t msg_len, uint8_t out[SHA256_LEN])
{
    uint8_t inner[SHA256_LEN];
    int ok = EVP_MD_CTX_copy_ex(h->work, h->inner) == 1 &&
             EVP_DigestUpdate(h->work, msg, msg_len) == 1 &&
             EVP_DigestFinal_ex(h->work, inner, NULL) == 1 &&
             EVP_MD_CTX_copy_ex(h->work, h->outer) == 1 &&
             EVP_DigestUpdate(h->work, inner, sizeof inner) == 1 &&
             EVP_DigestFinal_ex(h->work, out, NULL) == 1;
    cpns_wipe(inner, sizeof inner);
    if (!ok) {
        cpns_wipe(out, SHA256_LEN);
        return CPNS_ERR_CRYPTO;
    }
    return 0;
}

void cpns_hmac_free(cpns_hmac *h)
{
    if (!h)
        return;
    hmac_clear(h);
    cpns_free(h);
}

/* A digest context and the fetched SHA-256: held by a PNE, or for one call on the stack. */
struct cpns_sha256 {
    EVP_MD *md;
    EVP_MD_CTX *ctx;
};

/* Fills h (zeroed); on failure the caller still runs sha256_close. */
static int sha256_open(cpns_sha256 *h)
{
    h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    h->ctx = h->md ? EVP_MD_CTX_new() : NULL;
    return h->ctx ? 0 : CPNS_ERR_CRYPTO;
}

static void sha256_close(cpns_sha256 *h)
{
    EVP_MD_CTX_free(h->ctx); /* cleanses the last state */
    EVP_MD_free(h->md);
}

int cpns_sha256_new(cpns_sha256 **out)
{
    *out = NULL;
    cpns_sha256 *h = cpns_calloc(1, sizeof *h);
    if (!h)
        return CPNS_ERR_NOMEM;
    int rv = sha256_open(h);
    if (rv != 0) {
        cpns_sha256_free(h);
        return rv;
    }
    *out = h;
    return 0;
}

void cpns_sha256_free(cpns_sha256 *h)
{
    if (!h)
        return;
    sha256_close(h);
    cpns_free(h);
}

/* One-shot HMAC-SHA256 under a 32-byte key (no allocation through the library's hook). */
static int hmac_sha256(const uint8_t key[CPNS_KEY_LEN], const uint8_t *msg, size_t msg_len,
                       uint8_t out[SHA256_LEN])
{
    cpns_sha256 h = {NULL, NULL};
    int rv = sha256_open(&h);
    if (!rv && !cpns_hmac_sha256_on(h.ctx, h.md, key, CPNS_KEY_LEN, msg, msg_len, NULL, 0, out))
        rv = CPNS_ERR_CRYPTO;
    sha256_close(&h);
    if (rv)
        cpns_wipe(out, SHA256_LEN);
    return rv;
}

int cpns_proof(const uint8_t K_auth[CPNS_KEY_LEN], const char *PNEID, const char *Nonce,
               const char *Time, uint8_t out[CPNS_PROOF_LEN])
{
    if (!K_auth || !out || !PNEID || !Nonce || !Time || !cpns_id_valid(PNEID))
        return CPNS_ERR_INVALID_ARG;
    uint8_t msg[CPNS_JOIN_MAX];
    size_t msg_len;
    const char *parts[] = {"PNERegistrationRequest", PNEID, Nonce, Time};
    int rv = cpns_crypto_join(msg, &msg_len, parts, CPNS_ARRAY_LEN(parts));
    if (rv)
        return rv;
    return hmac_sha256(K_auth, msg, msg_len, out);
}

static int confirmation_input(uint8_t msg[CPNS_JOIN_MAX], size_t *msg_len, const char *SGID,
                              const char *PNEID, uint32_t KeyVersion)
{
    if (!SGID || !PNEID || !cpns_id_valid(SGID) || !cpns_id_valid(PNEID) || KeyVersion == 0)
        return CPNS_ERR_INVALID_ARG;
    char kv[21];
    const char *parts[] = {"SGroupKeyDeliveryResponse", SGID, PNEID,
                           cpns_u64_to_str(KeyVersion, kv)};
    return cpns_crypto_join(msg, msg_len, parts, CPNS_ARRAY_LEN(parts));
}

int cpns_key_confirmation_key(const uint8_t GK[CPNS_KEY_LEN], cpns_hmac **out)
{
    *out = NULL;
    uint8_t K_confirm[CPNS_KEY_LEN];
    int rv = cpns_kdf(GK, CPNS_INFO_CONFIRM, K_confirm);
    if (!rv)
        rv = cpns_hmac_new(K_confirm, out);
    cpns_wipe(K_confirm, sizeof K_confirm);
    return rv;
}

int cpns_key_confirmation_with(cpns_hmac *K_confirm, const char *SGID, const char *PNEID,
                               uint32_t KeyVersion, uint8_t out[CPNS_KC_LEN])
{
    if (!K_confirm || !out)
        return CPNS_ERR_INVALID_ARG;
    uint8_t msg[CPNS_JOIN_MAX], mac[SHA256_LEN];
    size_t msg_len;
    int rv = confirmation_input(msg, &msg_len, SGID, PNEID, KeyVersion);
    if (!rv)
        rv = cpns_hmac_run(K_confirm, msg, msg_len, mac);
    if (!rv)
        memcpy(out, mac, CPNS_KC_LEN);
    cpns_wipe(mac, sizeof mac);
    return rv;
}

int cpns_key_confirmation_ctx(cpns_sha256 *h, const uint8_t GK[CPNS_KEY_LEN], const char *SGID,
                              const char *PNEID, uint32_t KeyVersion, uint8_t out[CPNS_KC_LEN])
{
    if (!h || !GK || !out)
        return CPNS_ERR_INVALID_ARG;
    uint8_t msg[CPNS_JOIN_MAX];
    size_t msg_len;
    int rv = confirmation_input(msg, &msg_len, SGID, PNEID, KeyVersion);
    if (rv)
        return rv;
    uint8_t K_confirm[CPNS_KEY_LEN], mac[SHA256_LEN];
    rv = cpns_kdf_on(h->ctx, h->md, GK, CPNS_INFO_CONFIRM, K_confirm);
    if (!rv && !cpns_hmac_sha256_on(h->ctx, h->md, K_confirm, sizeof K_confirm, msg, msg_len, NULL,
                                    0, mac))
        rv = CPNS_ERR_CRYPTO;
    if (!rv)
        memcpy(out, mac, CPNS_KC_LEN);
    cpns_wipe(K_confirm, sizeof K_confirm);
    cpns_wipe(mac, sizeof mac);
    return rv;
}

int cpns_key_confirmation(const uint8_t GK[CPNS_KEY_LEN], const char *SGID, const char *PNEID,
                          uint32_t KeyVersion, uint8_t out[CPNS_KC_LEN])
{
    if (!GK || !out)
        return CPNS_ERR_INVALID_ARG;
    cpns_sha256 h = {NULL, NULL};
    int rv = sha256_open(&h);
    if (!rv)
        rv = cpns_key_confirmation_ctx(&h, GK, SGID, PNEID, KeyVersion, out);
    sha256_close(&h);
    return rv;
}
