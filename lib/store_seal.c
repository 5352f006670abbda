/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encryption at rest for the server stores (store_seal.h): EUKs, Group Keys
 * and the master key check value are sealed with AES-256-GCM under K_store =
 * cpns_kdf(master_key, "CPNS 1.1 server store") as
 * version byte ‖ nonce(12) ‖ ciphertext ‖ tag(16), with a fresh random nonce
 * per write. The AAD names the row ("pne" ‖ 0 ‖ PNEID, "sg" ‖ 0 ‖ SGID ‖ 0 ‖
 * KeyVersion), so a blob copied into another row, or a Group Key row whose
 * KeyVersion was edited, fails to open instead of handing the engine the
 * wrong key. One cipher context serves every seal and open: a registration
 * re-seals its PNE's EUK, and a fetch of the cipher per call was most of it.
 *
 * The SQLite and PostgreSQL backends both use this module, so their blobs
 * are byte for byte the same format (and a row could move between them).
 */
#include <string.h>

#include "crypto_internal.h"
#include "internal.h"
#include "store_seal.h"

struct cpns_seal {
    uint8_t K_store[CPNS_KEY_LEN];
    cpns_gcm *gcm;
};

int cpns_seal_new(cpns_seal **out, const uint8_t master_key[CPNS_KEY_LEN])
{
    *out = NULL;
    cpns_seal *s = cpns_calloc(1, sizeof *s);
    if (!s)
        return CPNS_ERR_NOMEM;
    int rv = cpns_gcm_new(&s->gcm);
    if (rv) {
        cpns_free(s);
        return rv;
    }
    rv = cpns_kdf(master_key, CPNS_INFO_SERVER_STORE, s->K_store);
    if (rv) {
        cpns_seal_free(s);
        return rv;
    }
    *out = s;
    return 0;
}

void cpns_seal_free(cpns_seal *s)
{
    if (!s)
        return;
    cpns_gcm_free(s->gcm);
    cpns_wipe(s, sizeof *s);
    cpns_free(s);
}

int cpns_seal_blob(const cpns_seal *s, const char *const *aad_parts, size_t n_parts,
                   const uint8_t *pt, size_t pt_len, uint8_t *out)
{
    uint8_t aad[CPNS_JOIN_MAX];
    size_t aad_len = 0;
    int rv = cpns_crypto_join(aad, &aad_len, aad_parts, n_parts);
    if (rv)
        return rv;
    uint8_t *nonce = out + 1;
    rv = cpns_random(NULL, nonce, CPNS_GCM_NONCE_LEN);
    if (rv)
        return rv;
    out[0] = CPNS_SEAL_FORMAT;
    uint8_t *ct = nonce + CPNS_GCM_NONCE_LEN;
    rv = cpns_gcm_seal_ctx(s->gcm, s->K_store, nonce, aad, aad_len, pt, pt_len, ct, ct + pt_len);
    if (rv)
        cpns_wipe(out, pt_len + CPNS_SEAL_OVERHEAD);
    return rv;
}

int cpns_seal_open_blob(const cpns_seal *s, const char *const *aad_parts, size_t n_parts,
                        const uint8_t *blob, size_t blob_len, uint8_t *pt, size_t pt_len)
{
    if (!blob || blob_len != pt_len + CPNS_SEAL_OVERHEAD || blob[0] != CPNS_SEAL_FORMAT) {
        cpns_wipe(pt, pt_len);
        return CPNS_ERR_AUTH;
    }
    uint8_t aad[CPNS_JOIN_MAX];
    size_t aad_len = 0;
    int rv = cpns_crypto_join(aad, &aad_len, aad_parts, n_parts);
    if (rv)
        return rv;
    const uint8_t *nonce = blob + 1;
    const uint8_t *ct = nonce + CPNS_GCM_NONCE_LEN;
    return cpns_gcm_open_ctx(s->gcm, s->K_store, nonce, aad, aad_len, ct, pt_len, ct + pt_len, pt);
}

int cpns_seal_euk(const cpns_seal *s, const char *PNEID, const uint8_t EUK[CPNS_KEY_LEN],
                  uint8_t out[CPNS_SEAL_SECRET_LEN])
{
    const char *aad[] = {"pne", PNEID};
    return cpns_seal_blob(s, aad, CPNS_ARRAY_LEN(aad), EUK, CPNS_KEY_LEN, out);
}

int cpns_seal_open_euk(const cpns_seal *s, const char *PNEID, const uint8_t *blob, size_t blob_len,
                       uint8_t EUK[CPNS_KEY_LEN])
{
    const char *aad[] = {"pne", PNEID};
    return cpns_seal_open_blob(s, aad, CPNS_ARRAY_LEN(aad), blob, blob_len, EUK, CPNS_KEY_LEN);
}

int cpns_seal_gk(const cpns_seal *s, const char *SGID, uint32_t KeyVersion,
                 const uint8_t GK[CPNS_KEY_LEN], uint8_t out[CPNS_SEAL_SECRET_LEN])
{
    char version[21];
    const char *aad[] = {"sg", SGID, cpns_u64_to_str(KeyVersion, version)};
    return cpns_seal_blob(s, aad, CPNS_ARRAY_LEN(aad), GK, CPNS_KEY_LEN, out);
}

int cpns_seal_open_gk(const cpns_seal *s, const char *SGID, uint32_t KeyVersion,
                      const uint8_t *blob, size_t blob_len, uint8_t GK[CPNS_KEY_LEN])
{
    char version[21];
    const char *aad[] = {"sg", SGID, cpns_u64_to_str(KeyVersion, version)};
    return cpns_seal_open_blob(s, aad, CPNS_ARRAY_LEN(aad), blob, blob_len, GK, CPNS_KEY_LEN);
}

static const char *const check_aad[] = {"meta", "check"};

int cpns_seal_check_make(const cpns_seal *s, uint8_t out[CPNS_SEAL_CHECK_LEN])
{
    return cpns_seal_blob(s, check_aad, CPNS_ARRAY_LEN(check_aad),
                          (const uint8_t *)CPNS_SEAL_CHECK_TEXT, sizeof(CPNS_SEAL_CHECK_TEXT) - 1,
                          out);
}

int cpns_seal_check_verify(const cpns_seal *s, const uint8_t *blob, size_t blob_len)
{
    uint8_t pt[sizeof(CPNS_SEAL_CHECK_TEXT) - 1];
    int rv =
        cpns_seal_open_blob(s, check_aad, CPNS_ARRAY_LEN(check_aad), blob, blob_len, pt, sizeof pt);
    if (rv == 0 && memcmp(pt, CPNS_SEAL_CHECK_TEXT, sizeof pt) != 0)
        rv = CPNS_ERR_AUTH;
    return rv;
}
