/* SPDX-License-Identifier: Apache-2.0 */
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
 *
 * The _ctx variants run the same code on a caller's cpns_gcm, so that the
 * server's per-member work is the AAD and a re-key, not OpenSSL setup.
 */
#include <string.h>

#include "crypto_internal.h"
#include "internal.h"

#define EGK_AAD_LABEL "CPNS 1.1 SGroupKeyDelivery"
#define EGK_OFF_NONCE 1
#define EGK_OFF_CT (EGK_OFF_NONCE + CPNS_GCM_NONCE_LEN)
#define EGK_OFF_TAG (EGK_OFF_CT + CPNS_KEY_LEN)

_Static_assert(EGK_OFF_TAG + CPNS_GCM_TAG_LEN == CPNS_EGK_LEN, "EncryptedGroupKey layout");

/*
 * The AAD is built by hand rather than with cpns_crypto_join: it is on the
 * server's per-member path, and cpns_id_valid already bounds both identifiers
 * (CPNS_ID_MAX), so the lengths need no further checks.
 */
#define EGK_AAD_MAX (sizeof EGK_AAD_LABEL + 2 * (CPNS_ID_MAX + 1) + 10)

_Static_assert(EGK_AAD_MAX <= CPNS_JOIN_MAX, "EncryptedGroupKey AAD size");

static int egk_aad(uint8_t aad[EGK_AAD_MAX], size_t *aad_len, const char *SGID, const char *PNEID,
                   uint32_t KeyVersion)
{
    if (!cpns_id_valid(SGID) || !cpns_id_valid(PNEID) || KeyVersion == 0)
        return CPNS_ERR_INVALID_ARG;
    size_t off = sizeof EGK_AAD_LABEL; /* the label and its 0x00 separator */
    memcpy(aad, EGK_AAD_LABEL, off);
    size_t n = strlen(SGID);
    memcpy(aad + off, SGID, n + 1);
    off += n + 1;
    n = strlen(PNEID);
    memcpy(aad + off, PNEID, n + 1);
    off += n + 1;
    char kv[21];
    n = strlen(cpns_u64_to_str(KeyVersion, kv));
    memcpy(aad + off, kv, n);
    *aad_len = off + n;
    return 0;
}

/* c NULL: the one-shot GCM */
static int egk_wrap(cpns_gcm *c, const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID,
                    const char *PNEID, uint32_t KeyVersion, const uint8_t GK[CPNS_KEY_LEN],
                    const uint8_t nonce[CPNS_GCM_NONCE_LEN], uint8_t out[CPNS_EGK_LEN])
{
    if (!K_wrap || !GK || !nonce || !out)
        return CPNS_ERR_INVALID_ARG;
    uint8_t aad[EGK_AAD_MAX];
    size_t aad_len;
    int rv = egk_aad(aad, &aad_len, SGID, PNEID, KeyVersion);
    if (rv)
        return rv;
    out[0] = CPNS_EGK_FORMAT;
    memcpy(out + EGK_OFF_NONCE, nonce, CPNS_GCM_NONCE_LEN);
    if (c)
        rv = cpns_gcm_seal_ctx(c, K_wrap, nonce, aad, aad_len, GK, CPNS_KEY_LEN, out + EGK_OFF_CT,
                               out + EGK_OFF_TAG);
    else
        rv = cpns_gcm_seal(K_wrap, nonce, aad, aad_len, GK, CPNS_KEY_LEN, out + EGK_OFF_CT,
                           out + EGK_OFF_TAG);
    if (rv)
        memset(out, 0, CPNS_EGK_LEN);
    return rv;
}

static int egk_unwrap(cpns_gcm *c, const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID,
                      const char *PNEID, uint32_t KeyVersion, const uint8_t *blob, size_t blob_len,
                      uint8_t GK[CPNS_KEY_LEN])
{
    if (!GK)
        return CPNS_ERR_INVALID_ARG;
    /* whatever happens below, GK holds either the Group Key or zeros */
    cpns_wipe(GK, CPNS_KEY_LEN);
    if (!K_wrap || (!blob && blob_len))
        return CPNS_ERR_INVALID_ARG;
    uint8_t aad[EGK_AAD_MAX];
    size_t aad_len;
    int rv = egk_aad(aad, &aad_len, SGID, PNEID, KeyVersion);
    if (rv)
        return rv;
    if (blob_len != CPNS_EGK_LEN || blob[0] != CPNS_EGK_FORMAT)
        return CPNS_ERR_AUTH;
    if (c)
        rv = cpns_gcm_open_ctx(c, K_wrap, blob + EGK_OFF_NONCE, aad, aad_len, blob + EGK_OFF_CT,
                               CPNS_KEY_LEN, blob + EGK_OFF_TAG, GK);
    else
        rv = cpns_gcm_open(K_wrap, blob + EGK_OFF_NONCE, aad, aad_len, blob + EGK_OFF_CT,
                           CPNS_KEY_LEN, blob + EGK_OFF_TAG, GK);
    if (rv)
        cpns_wipe(GK, CPNS_KEY_LEN);
    return rv;
}

int cpns_egk_wrap(const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID, const char *PNEID,
                  uint32_t KeyVersion, const uint8_t GK[CPNS_KEY_LEN],
                  const uint8_t nonce[CPNS_GCM_NONCE_LEN], uint8_t out[CPNS_EGK_LEN])
{
    return egk_wrap(NULL, K_wrap, SGID, PNEID, KeyVersion, GK, nonce, out);
}

int cpns_egk_unwrap(const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID, const char *PNEID,
                    uint32_t KeyVersion, const uint8_t *blob, size_t blob_len,
                    uint8_t GK[CPNS_KEY_LEN])
{
    return egk_unwrap(NULL, K_wrap, SGID, PNEID, KeyVersion, blob, blob_len, GK);
}

int cpns_egk_wrap_ctx(cpns_gcm *c, const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID,
                      const char *PNEID, uint32_t KeyVersion, const uint8_t GK[CPNS_KEY_LEN],
                      const uint8_t nonce[CPNS_GCM_NONCE_LEN], uint8_t out[CPNS_EGK_LEN])
{
    if (!c)
        return CPNS_ERR_INVALID_ARG;
    return egk_wrap(c, K_wrap, SGID, PNEID, KeyVersion, GK, nonce, out);
}

int cpns_egk_unwrap_ctx(cpns_gcm *c, const uint8_t K_wrap[CPNS_KEY_LEN], const char *SGID,
                        const char *PNEID, uint32_t KeyVersion, const uint8_t *blob,
                        size_t blob_len, uint8_t GK[CPNS_KEY_LEN])
{
    if (!c) {
        if (GK)
            cpns_wipe(GK, CPNS_KEY_LEN);
        return CPNS_ERR_INVALID_ARG;
    }
    return egk_unwrap(c, K_wrap, SGID, PNEID, KeyVersion, blob, blob_len, GK);
}
