/*
 * The two HMAC-SHA256 proofs of PROTOCOL.md section 4: the registration
 * Proof (a PNE shows it holds its EUK, so that only the real PNE can attract
 * its deliveries to a GW) and the KeyConfirmation (a PNE shows it holds the
 * Group Key, so that a GW cannot fake Return 1 and end 7.8.6.3 for a member
 * that never got the key).
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto_internal.h"
#include "internal.h"

#define SHA256_LEN 32

static int hmac_sha256(const uint8_t key[CPNS_KEY_LEN], const uint8_t *msg, size_t msg_len,
                       uint8_t out[SHA256_LEN])
{
    unsigned int out_len = 0;
    if (!HMAC(EVP_sha256(), key, CPNS_KEY_LEN, msg, msg_len, out, &out_len) ||
        out_len != SHA256_LEN) {
        cpns_wipe(out, SHA256_LEN);
        return CPNS_ERR_CRYPTO;
    }
    return 0;
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

int cpns_key_confirmation(const uint8_t GK[CPNS_KEY_LEN], const char *SGID, const char *PNEID,
                          uint32_t KeyVersion, uint8_t out[CPNS_KC_LEN])
{
    if (!GK || !out || !SGID || !PNEID || !cpns_id_valid(SGID) || !cpns_id_valid(PNEID) ||
        KeyVersion == 0)
        return CPNS_ERR_INVALID_ARG;
    uint8_t msg[CPNS_JOIN_MAX];
    size_t msg_len;
    char kv[21];
    const char *parts[] = {"SGroupKeyDeliveryResponse", SGID, PNEID,
                           cpns_u64_to_str(KeyVersion, kv)};
    int rv = cpns_crypto_join(msg, &msg_len, parts, CPNS_ARRAY_LEN(parts));
    if (rv)
        return rv;

    uint8_t K_confirm[CPNS_KEY_LEN];
    uint8_t mac[SHA256_LEN];
    rv = cpns_kdf(GK, CPNS_INFO_CONFIRM, K_confirm);
    if (!rv)
        rv = hmac_sha256(K_confirm, msg, msg_len, mac);
    if (!rv)
        memcpy(out, mac, CPNS_KC_LEN);
    cpns_wipe(K_confirm, sizeof K_confirm);
    cpns_wipe(mac, sizeof mac);
    return rv;
}
