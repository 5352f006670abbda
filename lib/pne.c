/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PNE engine (PROTOCOL.md 5.1, CR 7.8.6.1), sans-I/O.
 *
 * Two small machines live here. The registration machine proves to the
 * server, through the GW, that this PNE holds its Entity User Key and learns
 * the PNID of the PN it is in (OFFLINE -> REGISTERING -> REGISTERED or
 * REFUSED, with a resend timer). The delivery handler answers every
 * SGroupKeyDeliveryRequest: check and decrypt EncryptedGroupKey with the EUK
 * (7.8.6.1-1), store the Group Key if, and only if, it was decrypted
 * (7.8.6.1-2), and answer in the CPNS format with Return and PNID
 * (7.8.6.1-3/-4/-5) plus the echo attributes and KeyConfirmation.
 *
 * The EUK itself is not kept: only the two keys derived from it, K_auth for
 * the registration Proof and K_wrap for EncryptedGroupKey, both wiped on del.
 */
#include <string.h>

#include "cpns/crypto.h"
#include "cpns/pne.h"
#include "internal.h"

#define PNE_DEFAULT_REGISTER_TIMEOUT_MS 10000

struct cpns_pne {
    char PNEID[CPNS_ID_MAX + 1];
    char PNID[CPNS_ID_MAX + 1]; /* "" until a registration succeeded */
    uint8_t K_auth[CPNS_KEY_LEN];
    uint8_t K_wrap[CPNS_KEY_LEN];
    cpns_keystore *keystore;
    cpns_rand_fn rand;
    void *rand_arg;
    cpns_clock_fn wall_clock; /* NULL: now_ms is wall time */
    void *wall_clock_arg;
    cpns_logger log;
    int64_t register_timeout_ms;
    cpns_msg_decoder *decoder; /* the config's, or our own (own_decoder) once a frame came */
    int own_decoder;
    cpns_gcm *gcm; /* the config's, or our own (own_gcm) once a delivery request came */
    int own_gcm;
    cpns_sha256 *sha256; /* the config's, or our own (own_sha256), like gcm */
    int own_sha256;

    cpns_pne_state state;
    int last_return;
    uint64_t registration_tid; /* TransactionID of the outstanding registration, 0: none */
    int64_t registration_expiry;
    cpns_outq outq;
};

static const char *state_name(cpns_pne_state s)
{
    switch (s) {
    case CPNS_PNE_OFFLINE:
        return "OFFLINE";
    case CPNS_PNE_REGISTERING:
        return "REGISTERING";
    case CPNS_PNE_REGISTERED:
        return "REGISTERED";
    case CPNS_PNE_REFUSED:
        return "REFUSED";
    }
    return "?";
}

/* Every state change goes through here so that the log tells the whole story. */
static void set_state(cpns_pne *pne, cpns_pne_state s, uint64_t TransactionID)
{
    if (pne->state == s)
        return;
    cpns_log(&pne->log, CPNS_LOG_INFO, NULL, pne->PNEID, TransactionID, "state %s -> %s",
             state_name(pne->state), state_name(s));
    pne->state = s;
}

static int pne_rand(cpns_pne *pne, uint8_t *buf, size_t len)
{
    return pne->rand ? pne->rand(pne->rand_arg, buf, len) : cpns_random(NULL, buf, len);
}

int cpns_pne_new(cpns_pne **out, const cpns_pne_config *cfg)
{
    if (!out || !cfg || !cfg->PNEID || !cpns_id_valid(cfg->PNEID) || !cfg->EUK || !cfg->keystore ||
        cfg->register_timeout_ms < 0)
        return CPNS_ERR_INVALID_ARG;
    cpns_pne *pne = cpns_calloc(1, sizeof *pne);
    if (!pne)
        return CPNS_ERR_NOMEM;
    strcpy(pne->PNEID, cfg->PNEID);
    int rv = cpns_kdf(cfg->EUK, CPNS_INFO_AUTH, pne->K_auth);
    if (rv == 0)
        rv = cpns_kdf(cfg->EUK, CPNS_INFO_WRAP, pne->K_wrap);
    if (rv != 0) {
        cpns_pne_free(pne);
        return rv;
    }
    pne->keystore = cfg->keystore;
    pne->rand = cfg->rand;
    pne->rand_arg = cfg->rand_arg;
    pne->wall_clock = cfg->wall_clock;
    pne->wall_clock_arg = cfg->wall_clock_arg;
    pne->log = (cpns_logger){cfg->log, cfg->log_arg, "pne", pne->PNEID, 0};
    pne->register_timeout_ms =
        cfg->register_timeout_ms ? cfg->register_timeout_ms : PNE_DEFAULT_REGISTER_TIMEOUT_MS;
    pne->decoder = cfg->decoder;
    pne->gcm = cfg->gcm;
    pne->sha256 = cfg->sha256;
    pne->state = CPNS_PNE_OFFLINE;
    pne->last_return = -1;
    pne->registration_expiry = CPNS_NEVER;
    *out = pne;
    return 0;
}

void cpns_pne_free(cpns_pne *pne)
{
    if (!pne)
        return;
    cpns_outq_clear(&pne->outq);
    if (pne->own_decoder)
        cpns_msg_decoder_free(pne->decoder);
    if (pne->own_gcm)
        cpns_gcm_free(pne->gcm);
    if (pne->own_sha256)
        cpns_sha256_free(pne->sha256);
    cpns_wipe(pne, sizeof *pne);
    cpns_free(pne);
}

cpns_pne_state cpns_pne_get_state(const cpns_pne *pne)
{
    return pne->state;
}

const char *cpns_pne_pnid(const cpns_pne *pne)
{
    return pne->PNID[0] ? pne->PNID : NULL;
}

int cpns_pne_last_return(const cpns_pne *pne)
{
    return pne->last_return;
}

/*
 * Queues one PNERegistrationRequest. Each attempt has its own TransactionID
 * and Nonce, because the server rejects a (PNEID, Nonce) pair it has seen.
 */
static int send_registration(cpns_pne *pne, int64_t now_ms)
{
    cpns_msg m;
    uint64_t tid;
    uint8_t Nonce[CPNS_NONCE_LEN];
    char Nonce_b64[CPNS_B64_LEN(CPNS_NONCE_LEN) + 1];
    char Time_str[21];
    uint8_t Proof[CPNS_PROOF_LEN];

    int rv = cpns_random_tid(pne->rand, pne->rand_arg, &tid);
    if (rv == 0)
        rv = pne_rand(pne, Nonce, sizeof Nonce);
    if (rv != 0)
        return rv;
    /*
     * Time is a date the server checks against its own wall clock (#10.12);
     * now_ms is only the monotonic clock of the registration timer.
     */
    int64_t wall_ms = pne->wall_clock ? pne->wall_clock(pne->wall_clock_arg) : now_ms;
    uint64_t Time = wall_ms > 0 ? (uint64_t)(wall_ms / 1000) : 0;
    cpns_u64_to_str(Time, Time_str);
    /* The Proof covers the attribute strings exactly as the encoder will write them. */
    if (cpns_b64_encode(Nonce, sizeof Nonce, Nonce_b64, sizeof Nonce_b64) < 0)
        return CPNS_ERR_INVALID_ARG;
    rv = cpns_proof(pne->K_auth, pne->PNEID, Nonce_b64, Time_str, Proof);
    if (rv != 0)
        return rv;

    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_REQUEST, tid);
    rv = cpns_msg_set_id(&m, CPNS_F_PNEID, pne->PNEID);
    if (rv == 0)
        rv = cpns_msg_set_blob(&m, CPNS_F_NONCE, Nonce, sizeof Nonce);
    if (rv == 0)
        rv = cpns_msg_set_blob(&m, CPNS_F_PROOF, Proof, sizeof Proof);
    if (rv != 0)
        return rv;
    m.Time = Time;
    m.present |= CPNS_F_TIME;
    rv = cpns_outq_push_msg(&pne->outq, 0, &m);
    if (rv != 0)
        return rv;

    pne->registration_tid = tid;
    pne->registration_expiry = now_ms + pne->register_timeout_ms;
    set_state(pne, CPNS_PNE_REGISTERING, tid);
    cpns_log(&pne->log, CPNS_LOG_INFO, NULL, pne->PNEID, tid,
             "PNERegistrationRequest sent (Time=%s)", Time_str);
    return 0;
}

int cpns_pne_link_up(cpns_pne *pne, int64_t now_ms)
{
    cpns_log(&pne->log, CPNS_LOG_DEBUG, NULL, pne->PNEID, 0, "link to the GW up");
    return send_registration(pne, now_ms);
}

int cpns_pne_link_down(cpns_pne *pne, int64_t now_ms)
{
    (void)now_ms;
    cpns_log(&pne->log, CPNS_LOG_INFO, NULL, pne->PNEID, 0, "link to the GW down");
    cpns_outq_clear(&pne->outq);
    pne->registration_tid = 0;
    pne->registration_expiry = CPNS_NEVER;
    set_state(pne, CPNS_PNE_OFFLINE, 0);
    return 0;
}

int64_t cpns_pne_get_expiry(const cpns_pne *pne)
{
    return pne->state == CPNS_PNE_REGISTERING ? pne->registration_expiry : CPNS_NEVER;
}

int cpns_pne_handle_expiry(cpns_pne *pne, int64_t now_ms)
{
    if (pne->state != CPNS_PNE_REGISTERING || now_ms < pne->registration_expiry)
        return 0;
    cpns_log(&pne->log, CPNS_LOG_INFO, NULL, pne->PNEID, pne->registration_tid,
             "no PNERegistrationResponse in time: registering again");
    return send_registration(pne, now_ms);
}

static void on_registration_response(cpns_pne *pne, const cpns_msg *m, int decoded)
{
    uint64_t tid = m->TransactionID;
    if (pne->state != CPNS_PNE_REGISTERING || !(m->present & CPNS_F_TID) ||
        tid != pne->registration_tid) {
        cpns_log(&pne->log, CPNS_LOG_DEBUG, NULL, pne->PNEID, tid,
                 "PNERegistrationResponse with an unknown TransactionID ignored");
        return;
    }
    if (!decoded || strcmp(m->PNEID, pne->PNEID) != 0) {
        cpns_log(&pne->log, CPNS_LOG_WARN, NULL, pne->PNEID, tid,
                 "malformed or misaddressed PNERegistrationResponse ignored");
        return;
    }
    pne->last_return = (int)m->Return;
    switch (m->Return) {
    case CPNS_RETURN_SUCCESS:
        if (strcmp(pne->PNID, m->PNID) != 0)
            cpns_log(&pne->log, CPNS_LOG_INFO, NULL, pne->PNEID, tid, "PNID %s -> %s",
                     pne->PNID[0] ? pne->PNID : "(none)", m->PNID);
        strcpy(pne->PNID, m->PNID);
        pne->registration_tid = 0;
        set_state(pne, CPNS_PNE_REGISTERED, tid);
        break;
    case CPNS_RETURN_AUTH:
    case CPNS_RETURN_UNKNOWN:
        /* Resending cannot help until someone re-provisions this PNE. */
        cpns_log(&pne->log, CPNS_LOG_ERROR, NULL, pne->PNEID, tid,
                 "registration refused, Return=%u", (unsigned)m->Return);
        pne->registration_tid = 0;
        set_state(pne, CPNS_PNE_REFUSED, tid);
        break;
    default:
        cpns_log(&pne->log, CPNS_LOG_WARN, NULL, pne->PNEID, tid,
                 "registration failed, Return=%u: retrying at the timer", (unsigned)m->Return);
        break;
    }
}

/* Is the stored state of the request's SGID compatible with its KeyVersion and GK? */
static void check_stored(cpns_pne *pne, const cpns_msg *req, const uint8_t GK[CPNS_KEY_LEN],
                         uint32_t *Return, int *store)
{
    const char *SGID = req->SGID;
    uint32_t KeyVersion = req->KeyVersion;
    cpns_stored_keys keys;
    memset(&keys, 0, sizeof keys);
    int rv = pne->keystore->ops->get(pne->keystore, SGID, &keys);
    *store = 0;
    if (rv == CPNS_ERR_NOT_FOUND) {
        *Return = CPNS_RETURN_SUCCESS;
        *store = 1;
    } else if (rv != 0) {
        cpns_log(&pne->log, CPNS_LOG_ERROR, SGID, pne->PNEID, req->TransactionID,
                 "keystore get failed: %s", cpns_strerror(rv));
        *Return = CPNS_RETURN_STORAGE;
    } else if (KeyVersion < keys.current.KeyVersion ||
               (KeyVersion == keys.current.KeyVersion &&
                !cpns_mem_equal(GK, keys.current.GK, CPNS_KEY_LEN))) {
        cpns_log(&pne->log, CPNS_LOG_WARN, SGID, pne->PNEID, req->TransactionID,
                 "stale KeyVersion=%u (stored %u): possible replay", (unsigned)KeyVersion,
                 (unsigned)keys.current.KeyVersion);
        *Return = CPNS_RETURN_STALE;
    } else if (KeyVersion == keys.current.KeyVersion) {
        *Return = CPNS_RETURN_SUCCESS; /* a resend of what we hold: idempotent */
    } else {
        *Return = CPNS_RETURN_SUCCESS;
        *store = 1;
    }
    cpns_wipe(&keys, sizeof keys);
}

/*
 * 7.8.6.1-1 and 7.8.6.1-2: the Return for a well-formed request addressed to
 * this PNE, storing the Group Key when it decrypted. GK is left holding the
 * key when the answer is 1 (for the KeyConfirmation).
 */
static uint32_t process_delivery(cpns_pne *pne, const cpns_msg *req, uint8_t GK[CPNS_KEY_LEN])
{
    const cpns_blob *EncryptedGroupKey = &req->EncryptedGroupKey;
    /* A decoded length over the model's room is never a valid blob: a wrong length. */
    int rv =
        EncryptedGroupKey->len > CPNS_BLOB_MAX
            ? CPNS_ERR_AUTH
            : cpns_egk_unwrap_ctx(pne->gcm, pne->K_wrap, req->SGID, pne->PNEID, req->KeyVersion,
                                  EncryptedGroupKey->data, EncryptedGroupKey->len, GK);
    if (rv != 0 && rv != CPNS_ERR_AUTH) {
        /* Our own failure, not the blob's: Return 2 would stop the server for good. */
        cpns_wipe(GK, CPNS_KEY_LEN);
        cpns_log(&pne->log, CPNS_LOG_ERROR, req->SGID, pne->PNEID, req->TransactionID,
                 "cannot unwrap EncryptedGroupKey: %s", cpns_strerror(rv));
        return CPNS_RETURN_OTHER;
    }
    if (rv != 0) {
        cpns_wipe(GK, CPNS_KEY_LEN);
        cpns_log(&pne->log, CPNS_LOG_WARN, req->SGID, pne->PNEID, req->TransactionID,
                 "EncryptedGroupKey does not decrypt with our EUK (KeyVersion=%u)",
                 (unsigned)req->KeyVersion);
        return CPNS_RETURN_DECRYPT;
    }
    uint32_t Return;
    int store;
    check_stored(pne, req, GK, &Return, &store);
    if (store) {
        rv = pne->keystore->ops->put(pne->keystore, req->SGID, req->KeyVersion, GK);
        if (rv != 0) {
            cpns_log(&pne->log, CPNS_LOG_ERROR, req->SGID, pne->PNEID, req->TransactionID,
                     "keystore put failed: %s", cpns_strerror(rv));
            Return = CPNS_RETURN_STORAGE;
        }
    }
    if (Return == CPNS_RETURN_SUCCESS && pne->log.fn) {
        /* a hash per delivery only for a log line: not when nobody reads the log */
        char fp[CPNS_FINGERPRINT_LEN + 1];
        cpns_fingerprint(GK, CPNS_KEY_LEN, fp);
        cpns_log(&pne->log, CPNS_LOG_INFO, req->SGID, pne->PNEID, req->TransactionID,
                 "Group Key KeyVersion=%u fingerprint %s %s", (unsigned)req->KeyVersion, fp,
                 store ? "stored" : "already stored");
    } else if (Return != CPNS_RETURN_SUCCESS) {
        cpns_wipe(GK, CPNS_KEY_LEN);
    }
    return Return;
}

/* 7.8.6.1-3/-4/-5: the SGroupKeyDeliveryResponse in the CPNS format. */
static int send_delivery_response(cpns_pne *pne, const cpns_msg *req, uint32_t Return,
                                  const uint8_t GK[CPNS_KEY_LEN])
{
    cpns_msg m;
    int rv = cpns_msg_delivery_response(&m, req, Return, pne->PNID, pne->PNEID);
    if (rv != 0)
        return rv;
    if (Return == CPNS_RETURN_SUCCESS) {
        uint8_t KeyConfirmation[CPNS_KC_LEN];
        rv = cpns_key_confirmation_ctx(pne->sha256, GK, req->SGID, pne->PNEID, req->KeyVersion,
                                       KeyConfirmation);
        if (rv == 0)
            rv = cpns_msg_set_blob(&m, CPNS_F_KC, KeyConfirmation, sizeof KeyConfirmation);
        if (rv != 0) {
            /* Return 1 needs a KeyConfirmation; without one the honest answer is 0 (retry). */
            cpns_log(&pne->log, CPNS_LOG_ERROR, req->SGID, pne->PNEID, req->TransactionID,
                     "cannot compute KeyConfirmation: %s", cpns_strerror(rv));
            m.Return = Return = CPNS_RETURN_OTHER;
        }
    }
    rv = cpns_outq_push_msg(&pne->outq, 0, &m);
    if (rv == 0)
        cpns_log(&pne->log, CPNS_LOG_INFO, cpns_msg_id(&m, CPNS_F_SGID), pne->PNEID,
                 m.TransactionID, "SGroupKeyDeliveryResponse Return=%u PNID=%s", (unsigned)Return,
                 pne->PNID);
    return rv;
}

static int on_delivery_request(cpns_pne *pne, const cpns_msg *req, int decoded)
{
    uint64_t tid = req->TransactionID;
    const char *SGID = cpns_msg_id(req, CPNS_F_SGID);
    if (!(req->present & CPNS_F_TID)) {
        cpns_log(&pne->log, CPNS_LOG_WARN, SGID, pne->PNEID, 0,
                 "SGroupKeyDeliveryRequest without a readable TransactionID dropped");
        return 0;
    }
    if (!pne->PNID[0]) {
        /* PNID is mandatory in the response and unknown before a registration succeeded. */
        cpns_log(&pne->log, CPNS_LOG_WARN, SGID, pne->PNEID, tid,
                 "SGroupKeyDeliveryRequest before any registration: dropped");
        return 0;
    }
    cpns_log(&pne->log, CPNS_LOG_INFO, SGID, pne->PNEID, tid,
             "SGroupKeyDeliveryRequest for PNEID=%s KeyVersion=%u",
             (req->present & CPNS_F_PNEID) ? req->PNEID : "?",
             (req->present & CPNS_F_KEYVERSION) ? (unsigned)req->KeyVersion : 0u);

    uint8_t GK[CPNS_KEY_LEN];
    uint32_t Return;
    memset(GK, 0, sizeof GK);
    if (!decoded) {
        Return = CPNS_RETURN_MALFORMED;
    } else if (strcmp(req->PNEID, pne->PNEID) != 0) {
        Return = CPNS_RETURN_NOT_MINE;
    } else {
        /*
         * Like the decoder: one context for the engine's lifetime instead of
         * a cipher fetch and context per request. Failing to make it is ours,
         * so nothing is answered and the same request can be given again.
         */
        if (!pne->gcm) {
            int rv = cpns_gcm_new(&pne->gcm);
            if (rv)
                return rv;
            pne->own_gcm = 1;
        }
        if (!pne->sha256) {
            int rv = cpns_sha256_new(&pne->sha256);
            if (rv)
                return rv;
            pne->own_sha256 = 1;
        }
        Return = process_delivery(pne, req, GK);
    }
    int rv = send_delivery_response(pne, req, Return, GK);
    cpns_wipe(GK, sizeof GK);
    return rv;
}

int cpns_pne_recv(cpns_pne *pne, const uint8_t *data, size_t len, int64_t now_ms)
{
    (void)now_ms;
    cpns_msg m;
    memset(&m, 0, sizeof m);
    /* a device runs one engine, so one parser for its lifetime is the cheap way */
    if (!pne->decoder) {
        int rv = cpns_msg_decoder_new(&pne->decoder);
        if (rv)
            return rv;
        pne->own_decoder = 1;
    }
    int rv = cpns_msg_decoder_decode(pne->decoder, data, len, &m);
    if (rv == CPNS_ERR_NOMEM) {
        cpns_wipe(&m, sizeof m);
        return rv;
    }
    int decoded = rv == 0;
    switch (m.kind) {
    case CPNS_MSG_PNE_REGISTRATION_RESPONSE:
        on_registration_response(pne, &m, decoded);
        rv = 0;
        break;
    case CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST:
        rv = on_delivery_request(pne, &m, decoded);
        break;
    default:
        cpns_log(&pne->log, CPNS_LOG_DEBUG, NULL, pne->PNEID,
                 (m.present & CPNS_F_TID) ? m.TransactionID : 0, "%s frame dropped",
                 decoded ? cpns_msg_kind_name(m.kind) : "malformed");
        rv = 0;
        break;
    }
    cpns_wipe(&m, sizeof m);
    return rv;
}

int cpns_pne_pop(cpns_pne *pne, cpns_out *out)
{
    return cpns_outq_pop(&pne->outq, out);
}
