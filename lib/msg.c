/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cpns/1 message model (msg.h): kind names, construction helpers (the
 * delivery response's echo among them) and the per-kind field rules of
 * PROTOCOL.md 3.1 shared by the encoder and the decoder (codec.h). Nothing
 * here touches XML.
 */
#include <string.h>

#include "codec.h"
#include "internal.h"

static const char *const kind_names[] = {
    [CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST] = "SGroupKeyDeliveryRequest",
    [CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE] = "SGroupKeyDeliveryResponse",
    [CPNS_MSG_PNGW_REGISTRATION_REQUEST] = "PNGWRegistrationRequest",
    [CPNS_MSG_PNGW_REGISTRATION_RESPONSE] = "PNGWRegistrationResponse",
    [CPNS_MSG_PNE_REGISTRATION_REQUEST] = "PNERegistrationRequest",
    [CPNS_MSG_PNE_REGISTRATION_RESPONSE] = "PNERegistrationResponse",
    [CPNS_MSG_PNE_STATUS_NOTIFICATION] = "PNEStatusNotification",
};

const char *cpns_msg_kind_name(cpns_msg_kind kind)
{
    if ((unsigned)kind >= CPNS_ARRAY_LEN(kind_names) || !kind_names[kind])
        return "?";
    return kind_names[kind];
}

cpns_msg_kind cpns_msg_kind_from_name(const char *name)
{
    for (size_t k = 1; k < CPNS_ARRAY_LEN(kind_names); k++)
        if (strcmp(name, kind_names[k]) == 0)
            return (cpns_msg_kind)k;
    return CPNS_MSG_NONE;
}

uint32_t cpns_msg_fields(cpns_msg_kind kind)
{
    switch (kind) {
    case CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST:
        return CPNS_F_TID | CPNS_F_SGID | CPNS_F_GROUPKEYINFO | CPNS_F_PNEID | CPNS_F_KEYVERSION |
               CPNS_F_EGK;
    case CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE:
        return CPNS_F_TID | CPNS_F_RETURN | CPNS_F_PNID | CPNS_F_SGID | CPNS_F_PNEID |
               CPNS_F_KEYVERSION | CPNS_F_KC;
    case CPNS_MSG_PNGW_REGISTRATION_REQUEST:
        return CPNS_F_TID | CPNS_F_PNGWID | CPNS_F_PNID;
    case CPNS_MSG_PNGW_REGISTRATION_RESPONSE:
        return CPNS_F_TID | CPNS_F_RETURN;
    case CPNS_MSG_PNE_REGISTRATION_REQUEST:
        return CPNS_F_TID | CPNS_F_PNEID | CPNS_F_NONCE | CPNS_F_TIME | CPNS_F_PROOF;
    case CPNS_MSG_PNE_REGISTRATION_RESPONSE:
        return CPNS_F_TID | CPNS_F_RETURN | CPNS_F_PNEID | CPNS_F_PNID;
    case CPNS_MSG_PNE_STATUS_NOTIFICATION:
        return CPNS_F_TID | CPNS_F_PNEID | CPNS_F_STATUS;
    default:
        return 0;
    }
}

uint32_t cpns_msg_required(const cpns_msg *m)
{
    if (m->kind != CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE)
        return cpns_msg_fields(m->kind);
    /* The echoes may be missing only from a Return 4 answer to a request that lacked them. */
    uint32_t req = CPNS_F_TID | CPNS_F_RETURN | CPNS_F_PNID | CPNS_F_PNEID;
    if (!(m->present & CPNS_F_RETURN) || m->Return != CPNS_RETURN_MALFORMED)
        req |= CPNS_F_SGID | CPNS_F_KEYVERSION;
    if ((m->present & CPNS_F_RETURN) && m->Return == CPNS_RETURN_SUCCESS)
        req |= CPNS_F_KC;
    return req;
}

void cpns_msg_init(cpns_msg *m, cpns_msg_kind kind, uint64_t TransactionID)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->TransactionID = TransactionID;
    m->present = CPNS_F_TID;
}

/*
 * An identifier made only of dots (".", "..", ...) is refused (#10.14): SGIDs
 * and PNEIDs are admin API path segments, and a normalising proxy on the way
 * turns /v1/service-groups/./members into another resource. Dots among other
 * characters ("a.b", ".a") are fine.
 */
int cpns_id_valid(const char *s)
{
    if (!s)
        return 0;
    size_t n = 0;
    int only_dots = 1;
    for (; s[n]; n++) {
        char c = s[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
        if (!ok || n >= CPNS_ID_MAX)
            return 0;
        only_dots &= c == '.';
    }
    return n > 0 && !only_dots;
}

int cpns_msg_set_id(cpns_msg *m, uint32_t bit, const char *src)
{
    char *dst = m ? cpns_msg_id_field(m, bit) : NULL;
    if (!dst || !cpns_id_valid(src))
        return CPNS_ERR_INVALID_ARG;
    /* NUL-padded, so two models with the same identifiers compare equal bytewise */
    memset(dst, 0, CPNS_ID_MAX + 1);
    memcpy(dst, src, strlen(src));
    m->present |= bit;
    return 0;
}

int cpns_msg_set_blob(cpns_msg *m, uint32_t bit, const uint8_t *data, size_t len)
{
    cpns_blob *b = m ? cpns_msg_blob_field(m, bit) : NULL;
    if (!b || len > CPNS_BLOB_MAX || (len && !data))
        return CPNS_ERR_INVALID_ARG;
    memset(b->data, 0, sizeof b->data);
    if (len)
        memcpy(b->data, data, len);
    b->len = len;
    m->present |= bit;
    return 0;
}

int cpns_msg_delivery_response(cpns_msg *m, const cpns_msg *req, uint32_t Return, const char *PNID,
                               const char *PNEID)
{
    cpns_msg_init(m, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE, req->TransactionID);
    m->Return = Return;
    m->present |= CPNS_F_RETURN;
    int rv = cpns_msg_set_id(m, CPNS_F_PNID, PNID);
    if (rv == 0)
        rv = cpns_msg_set_id(m, CPNS_F_PNEID, PNEID);
    if (rv == 0 && (req->present & CPNS_F_SGID))
        rv = cpns_msg_set_id(m, CPNS_F_SGID, req->SGID);
    if (rv == 0 && (req->present & CPNS_F_KEYVERSION)) {
        m->KeyVersion = req->KeyVersion;
        m->present |= CPNS_F_KEYVERSION;
    }
    return rv;
}

int cpns_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || !s[0] || (s[0] == '0' && s[1]))
        return CPNS_ERR_MALFORMED;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return CPNS_ERR_MALFORMED;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return CPNS_ERR_MALFORMED;
        v = v * 10 + d;
    }
    if (v < min || v > max)
        return CPNS_ERR_MALFORMED;
    *out = v;
    return 0;
}
