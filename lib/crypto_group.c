/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Group messages (PROTOCOL.md section 4): what members of a Service Group do
 * with the Group Key once 7.8.6 has delivered it, used by the PNE's seal and
 * open commands.
 *
 * Layout: 0x01 ‖ KeyVersion (4 bytes, big-endian) ‖ nonce(12) ‖ ciphertext ‖
 * tag(16), AES-256-GCM under HKDF(GK, "CPNS 1.1 group message") with
 * AAD = SGID ‖ 0x00 ‖ KeyVersion. The version travels in clear so that the
 * receiver can pick the matching stored key (current or previous) and
 * messages sealed just before a rekey still open.
 */
#include <limits.h>
#include <string.h>

#include "crypto_internal.h"
#include "internal.h"

#define GM_OFF_VERSION 1
#define GM_OFF_NONCE (GM_OFF_VERSION + 4)
#define GM_OFF_CT (GM_OFF_NONCE + CPNS_GCM_NONCE_LEN)

_Static_assert(GM_OFF_CT + CPNS_GCM_TAG_LEN == CPNS_GROUP_MSG_OVERHEAD, "group message layout");

static int group_aad(uint8_t aad[CPNS_JOIN_MAX], size_t *aad_len, const char *SGID,
                     uint32_t KeyVersion)
{
    char kv[21];
    const char *parts[] = {SGID, cpns_u64_to_str(KeyVersion, kv)};
    return cpns_crypto_join(aad, aad_len, parts, CPNS_ARRAY_LEN(parts));
}

int cpns_group_seal(const uint8_t GK[CPNS_KEY_LEN], const char *SGID, uint32_t KeyVersion,
                    const uint8_t nonce[CPNS_GCM_NONCE_LEN], const uint8_t *pt, size_t pt_len,
                    uint8_t *out, size_t *out_len)
{
    if (!GK || !SGID || !cpns_id_valid(SGID) || KeyVersion == 0 || !nonce || (!pt && pt_len) ||
        !out || !out_len || pt_len > INT_MAX - CPNS_GROUP_MSG_OVERHEAD)
        return CPNS_ERR_INVALID_ARG;
    uint8_t aad[CPNS_JOIN_MAX];
    size_t aad_len;
    int rv = group_aad(aad, &aad_len, SGID, KeyVersion);
    if (rv)
        return rv;

    uint8_t K_msg[CPNS_KEY_LEN];
    rv = cpns_kdf(GK, CPNS_INFO_GROUP_MSG, K_msg);
    if (rv)
        return rv;
    out[0] = CPNS_GROUP_MSG_FORMAT;
    out[GM_OFF_VERSION] = (uint8_t)(KeyVersion >> 24);
    out[GM_OFF_VERSION + 1] = (uint8_t)(KeyVersion >> 16);
    out[GM_OFF_VERSION + 2] = (uint8_t)(KeyVersion >> 8);
    out[GM_OFF_VERSION + 3] = (uint8_t)KeyVersion;
    memcpy(out + GM_OFF_NONCE, nonce, CPNS_GCM_NONCE_LEN);
    rv = cpns_gcm_seal(K_msg, nonce, aad, aad_len, pt, pt_len, out + GM_OFF_CT,
                       out + GM_OFF_CT + pt_len);
    cpns_wipe(K_msg, sizeof K_msg);
    *out_len = rv ? 0 : pt_len + CPNS_GROUP_MSG_OVERHEAD;
    return rv;
}

int cpns_group_msg_version(const uint8_t *blob, size_t blob_len, uint32_t *KeyVersion)
{
    if (!KeyVersion || (!blob && blob_len))
        return CPNS_ERR_INVALID_ARG;
    if (blob_len < CPNS_GROUP_MSG_OVERHEAD || blob[0] != CPNS_GROUP_MSG_FORMAT)
        return CPNS_ERR_AUTH;
    uint32_t v = (uint32_t)blob[GM_OFF_VERSION] << 24 | (uint32_t)blob[GM_OFF_VERSION + 1] << 16 |
                 (uint32_t)blob[GM_OFF_VERSION + 2] << 8 | (uint32_t)blob[GM_OFF_VERSION + 3];
    if (v == 0) /* no key ever has version 0, so nothing can open it */
        return CPNS_ERR_AUTH;
    *KeyVersion = v;
    return 0;
}

int cpns_group_open(const uint8_t GK[CPNS_KEY_LEN], const char *SGID, const uint8_t *blob,
                    size_t blob_len, uint8_t *pt, size_t *pt_len)
{
    if (!GK || !SGID || !cpns_id_valid(SGID) || !pt_len || (!blob && blob_len))
        return CPNS_ERR_INVALID_ARG;
    *pt_len = 0;
    uint32_t KeyVersion;
    int rv = cpns_group_msg_version(blob, blob_len, &KeyVersion);
    if (rv)
        return rv;
    size_t ct_len = blob_len - CPNS_GROUP_MSG_OVERHEAD;
    if (!pt && ct_len)
        return CPNS_ERR_INVALID_ARG;
    if (ct_len > INT_MAX)
        return CPNS_ERR_AUTH;
    uint8_t aad[CPNS_JOIN_MAX];
    size_t aad_len;
    rv = group_aad(aad, &aad_len, SGID, KeyVersion);
    if (rv)
        return rv;

    uint8_t K_msg[CPNS_KEY_LEN];
    rv = cpns_kdf(GK, CPNS_INFO_GROUP_MSG, K_msg);
    if (rv)
        return rv;
    rv = cpns_gcm_open(K_msg, blob + GM_OFF_NONCE, aad, aad_len, blob + GM_OFF_CT, ct_len,
                       blob + blob_len - CPNS_GCM_TAG_LEN, pt);
    cpns_wipe(K_msg, sizeof K_msg);
    if (!rv)
        *pt_len = ct_len;
    return rv;
}
