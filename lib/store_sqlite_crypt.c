/*
 * Encryption at rest for the SQLite store: EUKs, Group Keys and the master
 * key check value are sealed with AES-256-GCM under K_store =
 * cpns_kdf(master_key, "CPNS 1.1 server store") as
 * version byte ‖ nonce(12) ‖ ciphertext ‖ tag(16), with a fresh random nonce
 * per write. The AAD names the row ("pne" ‖ 0 ‖ PNEID, "sg" ‖ 0 ‖ SGID ‖ 0 ‖
 * KeyVersion), so a blob copied into another row, or a Group Key row whose
 * KeyVersion was edited, fails to open instead of handing the engine the
 * wrong key. One cipher context serves every seal and open: a registration
 * re-seals its PNE's EUK, and a fetch of the cipher per call was most of it.
 */
#include <string.h>

#include "crypto_internal.h"
#include "internal.h"
#include "store_sqlite_internal.h"

int sqlite_seal(const cpns_store_sqlite *s, const char *const *aad_parts, size_t n_parts,
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
    out[0] = SQLITE_BLOB_FORMAT;
    uint8_t *ct = nonce + CPNS_GCM_NONCE_LEN;
    rv = cpns_gcm_seal_ctx(s->gcm, s->K_store, nonce, aad, aad_len, pt, pt_len, ct, ct + pt_len);
    if (rv)
        cpns_wipe(out, pt_len + SQLITE_BLOB_OVERHEAD);
    return rv;
}

int sqlite_open_blob(const cpns_store_sqlite *s, const char *const *aad_parts, size_t n_parts,
                     const uint8_t *blob, size_t blob_len, uint8_t *pt, size_t pt_len)
{
    if (!blob || blob_len != pt_len + SQLITE_BLOB_OVERHEAD || blob[0] != SQLITE_BLOB_FORMAT) {
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

int sqlite_seal_euk(const cpns_store_sqlite *s, const char *PNEID, const uint8_t EUK[CPNS_KEY_LEN],
                    uint8_t out[SQLITE_SECRET_BLOB_LEN])
{
    const char *aad[] = {"pne", PNEID};
    return sqlite_seal(s, aad, CPNS_ARRAY_LEN(aad), EUK, CPNS_KEY_LEN, out);
}

int sqlite_open_euk(const cpns_store_sqlite *s, const char *PNEID, const uint8_t *blob,
                    size_t blob_len, uint8_t EUK[CPNS_KEY_LEN])
{
    const char *aad[] = {"pne", PNEID};
    return sqlite_open_blob(s, aad, CPNS_ARRAY_LEN(aad), blob, blob_len, EUK, CPNS_KEY_LEN);
}

int sqlite_seal_gk(const cpns_store_sqlite *s, const char *SGID, uint32_t KeyVersion,
                   const uint8_t GK[CPNS_KEY_LEN], uint8_t out[SQLITE_SECRET_BLOB_LEN])
{
    char version[21];
    const char *aad[] = {"sg", SGID, cpns_u64_to_str(KeyVersion, version)};
    return sqlite_seal(s, aad, CPNS_ARRAY_LEN(aad), GK, CPNS_KEY_LEN, out);
}

int sqlite_open_gk(const cpns_store_sqlite *s, const char *SGID, uint32_t KeyVersion,
                   const uint8_t *blob, size_t blob_len, uint8_t GK[CPNS_KEY_LEN])
{
    char version[21];
    const char *aad[] = {"sg", SGID, cpns_u64_to_str(KeyVersion, version)};
    return sqlite_open_blob(s, aad, CPNS_ARRAY_LEN(aad), blob, blob_len, GK, CPNS_KEY_LEN);
}

static const char *const check_aad[] = {"meta", "check"};

int sqlite_seal_check(const cpns_store_sqlite *s, uint8_t out[SQLITE_CHECK_BLOB_LEN])
{
    return sqlite_seal(s, check_aad, CPNS_ARRAY_LEN(check_aad), (const uint8_t *)SQLITE_CHECK_TEXT,
                       sizeof(SQLITE_CHECK_TEXT) - 1, out);
}

int sqlite_verify_check(const cpns_store_sqlite *s, const uint8_t *blob, size_t blob_len)
{
    uint8_t pt[sizeof(SQLITE_CHECK_TEXT) - 1];
    int rv =
        sqlite_open_blob(s, check_aad, CPNS_ARRAY_LEN(check_aad), blob, blob_len, pt, sizeof pt);
    if (rv == 0 && memcmp(pt, SQLITE_CHECK_TEXT, sizeof pt) != 0)
        rv = CPNS_ERR_AUTH;
    return rv;
}
