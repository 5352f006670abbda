/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cpns/1 encoder (PROTOCOL.md section 3); the 4-byte framing is lib/frame.c.
 *
 * Output is deterministic and compact: the XML declaration, the root with the
 * default namespace, the message element, no whitespace between elements, and
 * attributes in the order of the PROTOCOL.md 3.1 table. Every value written is
 * an identifier, a decimal number or base64, none of which needs XML escaping,
 * so the model check below is also what makes the output well-formed. Encoding
 * never allocates.
 */
#include <string.h>

#include "codec.h"
#include "internal.h"

/* A bounded writer: remembers overflow instead of failing each call. */
typedef struct writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int overflow;
} writer;

static void put(writer *w, const char *s)
{
    size_t n = strlen(s);
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_attr(writer *w, const char *name, const char *value)
{
    put(w, " ");
    put(w, name);
    put(w, "=\"");
    put(w, value);
    put(w, "\"");
}

static void put_u64(writer *w, const char *name, uint64_t v)
{
    char s[21];
    put_attr(w, name, cpns_u64_to_str(v, s));
}

static void put_blob(writer *w, const char *name, const cpns_blob *b)
{
    char s[CPNS_B64_LEN(CPNS_BLOB_MAX) + 1];
    cpns_b64_encode(b->data, b->len, s, sizeof s);
    put_attr(w, name, s);
}

/* Attributes of the message element (or of GroupKeyInfo) that the model has. */
static void put_fields(writer *w, const cpns_msg *m, uint32_t which)
{
    uint32_t f = m->present & which;
    if (f & CPNS_F_RETURN)
        put_u64(w, "Return", m->Return);
    if (f & CPNS_F_PNGWID)
        put_attr(w, "PNGWID", m->PNGWID);
    if (f & CPNS_F_PNID)
        put_attr(w, "PNID", m->PNID);
    if (f & CPNS_F_SGID)
        put_attr(w, "SGID", m->SGID);
    if (f & CPNS_F_PNEID)
        put_attr(w, "PNEID", m->PNEID);
    if (f & CPNS_F_KEYVERSION)
        put_u64(w, "KeyVersion", m->KeyVersion);
    if (f & CPNS_F_EGK)
        put_blob(w, "EncryptedGroupKey", &m->EncryptedGroupKey);
    if (f & CPNS_F_KC)
        put_blob(w, "KeyConfirmation", &m->KeyConfirmation);
    if (f & CPNS_F_NONCE)
        put_blob(w, "Nonce", &m->Nonce);
    if (f & CPNS_F_TIME)
        put_u64(w, "Time", m->Time);
    if (f & CPNS_F_PROOF)
        put_blob(w, "Proof", &m->Proof);
    if (f & CPNS_F_STATUS)
        put_attr(w, "Status", m->Status == CPNS_STATUS_ATTACHED ? "attached" : "detached");
}

static int id_ok(const cpns_msg *m, uint32_t f, uint32_t bit, const char *id)
{
    /* bounded: the model's array may lack its NUL if the caller wrote it directly */
    return !(f & bit) || (memchr(id, '\0', CPNS_ID_MAX + 1) && cpns_id_valid(id));
}

static int blob_ok(uint32_t f, uint32_t bit, const cpns_blob *b)
{
    /* an empty blob is never a valid value; the decoder rejects it too */
    return !(f & bit) || (b->len >= 1 && b->len <= CPNS_BLOB_MAX);
}

/* The model check: every value the encoder writes could be decoded back as is. */
static int model_valid(const cpns_msg *m)
{
    uint32_t fields = cpns_msg_fields(m->kind);
    if (!fields)
        return 0;
    uint32_t f = m->present & fields;
    if ((cpns_msg_required(m) & ~CPNS_F_GROUPKEYINFO) & ~f)
        return 0;
    if (m->TransactionID < 1 || m->TransactionID > (uint64_t)CPNS_TID_MAX)
        return 0;
    if (!id_ok(m, f, CPNS_F_SGID, m->SGID) || !id_ok(m, f, CPNS_F_PNEID, m->PNEID) ||
        !id_ok(m, f, CPNS_F_PNID, m->PNID) || !id_ok(m, f, CPNS_F_PNGWID, m->PNGWID))
        return 0;
    if ((f & CPNS_F_KEYVERSION) && m->KeyVersion < 1)
        return 0;
    if ((f & CPNS_F_TIME) && m->Time > (uint64_t)INT64_MAX)
        return 0;
    if ((f & CPNS_F_STATUS) && m->Status != CPNS_STATUS_ATTACHED &&
        m->Status != CPNS_STATUS_DETACHED)
        return 0;
    if (!blob_ok(f, CPNS_F_EGK, &m->EncryptedGroupKey) ||
        !blob_ok(f, CPNS_F_KC, &m->KeyConfirmation) || !blob_ok(f, CPNS_F_PROOF, &m->Proof))
        return 0;
    if ((f & CPNS_F_NONCE) && m->Nonce.len != CPNS_NONCE_LEN)
        return 0;
    return 1;
}

int cpns_msg_encode(const cpns_msg *m, uint8_t *buf, size_t cap, size_t *out_len)
{
    if (!m || !out_len || (!buf && cap))
        return CPNS_ERR_INVALID_ARG;
    if (!model_valid(m))
        return CPNS_ERR_INVALID_ARG;
    writer w = {buf, cap, 0, 0};
    const char *name = cpns_msg_kind_name(m->kind);
    const uint32_t gki = CPNS_F_PNEID | CPNS_F_KEYVERSION | CPNS_F_EGK;

    put(&w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CPNSMessage xmlns=\"" CPNS_NAMESPACE
            "\" Version=\"" CPNS_VERSION "\"");
    put_u64(&w, "TransactionID", m->TransactionID);
    put(&w, "><");
    put(&w, name);
    if (m->kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST) {
        put_fields(&w, m, CPNS_F_SGID);
        put(&w, "><GroupKeyInfo");
        put_fields(&w, m, gki);
        put(&w, "/></");
        put(&w, name);
        put(&w, ">");
    } else {
        put_fields(&w, m, cpns_msg_fields(m->kind) & ~CPNS_F_TID);
        put(&w, "/>");
    }
    put(&w, "</CPNSMessage>");
    if (w.overflow)
        return CPNS_ERR_TOO_LARGE;
    *out_len = w.len;
    return 0;
}
