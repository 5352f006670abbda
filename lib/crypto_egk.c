/*
 * EncryptedGroupKey (PROTOCOL.md section 4): how the server hands a PNE the
 * Group Key so that the PN GW in between never sees it (7.8.6.3 step 2:
 * "encrypted Group Key with PNE's Entity User Key"), and how the PNE checks
 * and decrypts it (7.8.6.1 step 1).
 *
 * The 61-byte blob is 0x01 ‖ nonce(12) ‖ ciphertext(32) ‖ tag(16), AES-256-GCM
 * under K_wrap = HKDF(EUK, "CPNS 1.1 group key wrap"). The AAD names the SGID,
 * the PNEID and the KeyVersion, so a GW can neither move a blob to another
 * member or group nor replay an old version as a new one.
 */
#include <string.h>

#include "crypto_internal.h"
#include "internal.h"

#define EGK_AAD_LABEL "CPNS 1.1 SGroupKeyDelivery"
#define EGK_OFF_NONCE 1
#define EGK_OFF_CT (EGK_OFF_NONCE + CPNS_GCM_NONCE_LEN)
#define EGK_OFF_TAG (EGK_OFF_CT + CPNS_KEY_LEN)

_Static_assert(EGK_OFF_TAG + CPNS_GCM_TAG_LEN == CPNS_EGK_LEN, "EncryptedGroupKey layout");

static int egk_aad(uint8_t aad[CPNS_JOIN_MAX], size_t *aad_len, const char *SGID, const char *PNEID,
                   uint32_t KeyVersion)
{
    if (!SGID || !PNEID || !cpns_id_valid(SGID) || !cpns_id_valid(PNEID) || KeyVersion == 0)
        return CPNS_ERR_INVALID_ARG;
    char kv[21];
    const char *parts[] = {EGK_AAD_LABEL, SGID, PNEID, cpns_u64_to_str(KeyVersion, kv)};
    return cpns_crypto_join(aad, aad_len, parts, CPNS_ARRAY_LEN(parts));
}

int cpns_egk_wrap(const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID, const char *PNEID,
                  uint32_t KeyVersion, const uint8_t GK[CPNS_KEY_LEN],
                  const uint8_t nonce[CPNS_GCM_NONCE_LEN], uint8_t out[CPNS_EGK_LEN])
{
    if (!K_wrap || !GK || !nonce || !out)
        return CPNS_ERR_INVALID_ARG;
    uint8_t aad[CPNS_JOIN_MAX];
    size_t aad_len;
    int rv = egk_aad(aad, &aad_len, SGID, PNEID, KeyVersion);
    if (rv)
        return rv;
    out[0] = CPNS_EGK_FORMAT;
    memcpy(out + EGK_OFF_NONCE, nonce, CPNS_GCM_NONCE_LEN);
    rv = cpns_gcm_seal(K_wrap, nonce, aad, aad_len, GK, CPNS_KEY_LEN, out + EGK_OFF_CT,
                       out + EGK_OFF_TAG);
    if (rv)
        memset(out, 0, CPNS_EGK_LEN);
    return rv;
}

int cpns_egk_unwrap(const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID, const char *PNEID,
                    uint32_t KeyVersion, const uint8_t *blob, size_t blob_len,
                    uint8_t GK[CPNS_KEY_LEN])
{
    if (!GK)
        return CPNS_ERR_INVALID_ARG;
    /* whatever happens below, GK holds either the Group Key or zeros */
    cpns_wipe(GK, CPNS_KEY_LEN);
    if (!K_wrap || (!blob && blob_len))
        return CPNS_ERR_INVALID_ARG;
    uint8_t aad[CPNS_JOIN_MAX];
    size_t aad_len;
    int rv = egk_aad(aad, &aad_len, SGID, PNEID, KeyVersion);
    if (rv)
        return rv;
    if (blob_len != CPNS_EGK_LEN || blob[0] != CPNS_EGK_FORMAT)
        return CPNS_ERR_AUTH;
    rv = cpns_gcm_open(K_wrap, blob + EGK_OFF_NONCE, aad, aad_len, blob + EGK_OFF_CT, CPNS_KEY_LEN,
                       blob + EGK_OFF_TAG, GK);
    if (rv)
        cpns_wipe(GK, CPNS_KEY_LEN);
    return rv;
}
