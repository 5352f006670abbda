/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cpns/1 messages (PROTOCOL.md section 3): the model, the XML codec, the
 * cheap routing peek (the 4-byte framing is in frame.h).
 *
 * The model is one flat struct for all seven messages; each kind uses the
 * fields PROTOCOL.md 3.1 gives it, and `present` says which fields are set.
 * Field names are the attribute names of the protocol, so code reads side by
 * side with the change request.
 */
#ifndef CPNS_MSG_H
#define CPNS_MSG_H

#include "common.h"
#include "frame.h" /* CPNS_FRAME_MAX; the framing itself */

#ifdef __cplusplus
extern "C" {
#endif

#define CPNS_NAMESPACE "urn:oma:xml:cpns:message:1.1"
#define CPNS_VERSION "1.1"
#define CPNS_ID_MAX 64         /* identifiers are 1..64 of [A-Za-z0-9._:@-] */
#define CPNS_KEY_LEN 32        /* EUK and GK */
#define CPNS_EGK_LEN 61        /* EncryptedGroupKey, decoded */
#define CPNS_NONCE_LEN 16      /* PNERegistrationRequest Nonce, decoded */
#define CPNS_PROOF_LEN 32      /* Proof, decoded */
#define CPNS_KC_LEN 16         /* KeyConfirmation, decoded */
#define CPNS_BLOB_MAX 64       /* room for a decoded binary attribute in the model */
#define CPNS_TID_MAX INT64_MAX /* TransactionID is 1 .. 2^63-1 */
#define CPNS_KEYVERSION_MAX UINT32_MAX

typedef enum cpns_msg_kind {
    CPNS_MSG_NONE = 0,
    CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST,
    CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE,
    CPNS_MSG_PNGW_REGISTRATION_REQUEST,
    CPNS_MSG_PNGW_REGISTRATION_RESPONSE,
    CPNS_MSG_PNE_REGISTRATION_REQUEST,
    CPNS_MSG_PNE_REGISTRATION_RESPONSE,
    CPNS_MSG_PNE_STATUS_NOTIFICATION,
} cpns_msg_kind;

/* The element name of a kind ("SGroupKeyDeliveryRequest", ...), or "?" */
CPNS_API const char *cpns_msg_kind_name(cpns_msg_kind kind);

/* Return values, PROTOCOL.md 3.2. Never mixed with enum cpns_error. */
enum cpns_return {
    CPNS_RETURN_OTHER = 0,
    CPNS_RETURN_SUCCESS = 1,
    CPNS_RETURN_DECRYPT = 2,
    CPNS_RETURN_STORAGE = 3,
    CPNS_RETURN_MALFORMED = 4,
    CPNS_RETURN_NOT_MINE = 5,
    CPNS_RETURN_UNREACHABLE = 6,
    CPNS_RETURN_STALE = 7,
    CPNS_RETURN_AUTH = 8,
    CPNS_RETURN_UNKNOWN = 9,
};

typedef enum cpns_pne_status {
    CPNS_STATUS_ATTACHED = 1,
    CPNS_STATUS_DETACHED = 2,
} cpns_pne_status;

/* Bits of cpns_msg.present */
#define CPNS_F_TID (1u << 0)
#define CPNS_F_SGID (1u << 1)
#define CPNS_F_PNEID (1u << 2)
#define CPNS_F_PNID (1u << 3)
#define CPNS_F_PNGWID (1u << 4)
#define CPNS_F_KEYVERSION (1u << 5)
#define CPNS_F_RETURN (1u << 6)
#define CPNS_F_EGK (1u << 7) /* EncryptedGroupKey */
#define CPNS_F_KC (1u << 8)  /* KeyConfirmation */
#define CPNS_F_NONCE (1u << 9)
#define CPNS_F_PROOF (1u << 10)
#define CPNS_F_TIME (1u << 11)
#define CPNS_F_STATUS (1u << 12)
#define CPNS_F_GROUPKEYINFO (1u << 13) /* the GroupKeyInfo child was seen */

/*
 * A decoded base64 attribute. `len` is the decoded length even when it is
 * larger than CPNS_BLOB_MAX; then only the first CPNS_BLOB_MAX bytes are kept
 * and the value can never be valid (every valid blob is shorter). This keeps
 * the model fixed-size while letting the PNE tell "wrong length" (Return 2)
 * from "not base64" (Return 4).
 */
typedef struct cpns_blob {
    uint8_t data[CPNS_BLOB_MAX];
    size_t len;
} cpns_blob;

typedef struct cpns_msg {
    cpns_msg_kind kind;
    uint32_t present; /* CPNS_F_* bits of the fields that are set and valid */
    uint64_t TransactionID;
    char SGID[CPNS_ID_MAX + 1];
    char PNEID[CPNS_ID_MAX + 1];
    char PNID[CPNS_ID_MAX + 1];
    char PNGWID[CPNS_ID_MAX + 1];
    uint32_t KeyVersion;
    uint32_t Return;
    cpns_blob EncryptedGroupKey;
    cpns_blob KeyConfirmation;
    cpns_blob Nonce;
    cpns_blob Proof;
    uint64_t Time; /* Unix seconds */
    cpns_pne_status Status;
} cpns_msg;

/* Zeroes m and sets its kind and TransactionID (and the CPNS_F_TID bit). */
CPNS_API void cpns_msg_init(cpns_msg *m, cpns_msg_kind kind, uint64_t TransactionID);

/*
 * 1 if s is a valid identifier (1..64 characters of [A-Za-z0-9._:@-], not
 * only dots: ".", ".." and "..." are refused), else 0.
 */
CPNS_API int cpns_id_valid(const char *s);

/*
 * Copies identifier src into dst (CPNS_ID_MAX + 1 bytes) and sets `bit` in
 * m->present; for building messages. CPNS_ERR_INVALID_ARG if src is not a
 * valid identifier (then nothing changes).
 */
CPNS_API int cpns_msg_set_id(cpns_msg *m, uint32_t bit, const char *src);

/* Copies len bytes into a blob field and sets `bit`. CPNS_ERR_INVALID_ARG if len > CPNS_BLOB_MAX.
 */
CPNS_API int cpns_msg_set_blob(cpns_msg *m, uint32_t bit, const uint8_t *data, size_t len);

/*
 * Encodes m as one XML document (a frame payload) into buf.
 * Writes exactly the fields whose present bit is set, after checking that
 * every mandatory field of the kind is there and valid (PROTOCOL.md 3.1:
 * in a SGroupKeyDeliveryResponse, SGID and KeyVersion may be left out only
 * when Return is 4, and KeyConfirmation is required when Return is 1).
 * Returns 0 and sets *out_len; CPNS_ERR_INVALID_ARG for an invalid model;
 * CPNS_ERR_TOO_LARGE when cap is too small.
 * Present bits of fields the kind does not carry are ignored (not written).
 * A blob must hold 1..CPNS_BLOB_MAX bytes (a Nonce exactly CPNS_NONCE_LEN),
 * so that everything encoded decodes back to the same model. Never allocates.
 */
CPNS_API int cpns_msg_encode(const cpns_msg *m, uint8_t *buf, size_t cap, size_t *out_len);

/*
 * Decodes one frame payload with every rule of PROTOCOL.md section 3:
 * well-formed UTF-8 XML, one root CPNSMessage in CPNS_NAMESPACE with
 * Version="1.1" and a TransactionID, exactly one child (the message), no
 * DOCTYPE or entity declaration, identifiers, numbers and base64 valid,
 * mandatory attributes present, length 1..CPNS_FRAME_MAX. Unknown attributes
 * and unknown child elements inside the message element are ignored.
 *
 * Returns 0 with m filled, or CPNS_ERR_MALFORMED / CPNS_ERR_TOO_LARGE /
 * CPNS_ERR_NOMEM. Even on failure m holds what could be read: m->kind is set
 * when the message element was recognised and m->present has the bits of the
 * fields that were read and valid (CPNS_F_TID among them when the
 * TransactionID was readable), so the receiver can answer Return 4.
 * An empty blob attribute is malformed (base64 of nothing is no value). A UTF-8
 * byte order mark is accepted; a UTF-16 document, with or without its mark,
 * is not. Character data, comments and processing instructions are ignored
 * anywhere; elements nest at most 32 deep. CPNS_ERR_INVALID_ARG when m or
 * data is NULL.
 */
CPNS_API int cpns_msg_decode(const uint8_t *data, size_t len, cpns_msg *m);

/*
 * The cheap peek used for routing: reads kind, TransactionID and the
 * identifier and number attributes (SGID, PNEID, PNID, PNGWID, KeyVersion,
 * Return, Status) of the message and its GroupKeyInfo, and stops there. It
 * does not decode base64 blobs and does not look at the rest of the document.
 * Rejects DOCTYPE/entities and invalid values of what it reads.
 * Returns 0, or CPNS_ERR_MALFORMED / CPNS_ERR_TOO_LARGE / CPNS_ERR_NOMEM with m
 * holding what was readable, as for cpns_msg_decode().
 * Success means the mandatory non-blob fields of the kind are present and
 * valid; blob attributes are neither checked nor set in m->present.
 */
CPNS_API int cpns_msg_peek(const uint8_t *data, size_t len, cpns_msg *m);

/*
 * A reusable decoder: it keeps one XML parser and resets it between messages
 * instead of creating and freeing one per message, with an expat hash salt
 * drawn once from the OS CSPRNG. cpns_msg_decoder_decode() and
 * cpns_msg_decoder_peek() have exactly the contracts (and results) of
 * cpns_msg_decode() and cpns_msg_peek(); nothing of one message, failed or
 * not, carries over into the next. Not thread-safe: one decoder per thread
 * (or per engine, or shared by engines run from one thread).
 * CPNS_ERR_INVALID_ARG also when d is NULL.
 */
typedef struct cpns_msg_decoder cpns_msg_decoder;

/* NULL on allocation failure. */
CPNS_API cpns_msg_decoder *cpns_msg_decoder_new(void);
CPNS_API int cpns_msg_decoder_decode(cpns_msg_decoder *d, const uint8_t *data, size_t len,
                                     cpns_msg *m);
CPNS_API int cpns_msg_decoder_peek(cpns_msg_decoder *d, const uint8_t *data, size_t len,
                                   cpns_msg *m);
/* NULL is a no-op. */
CPNS_API void cpns_msg_decoder_free(cpns_msg_decoder *d);

/*
 * Strict base64 (RFC 4648, standard alphabet, with padding, no whitespace,
 * zero pad bits), as every blob attribute must be.
 * cpns_b64_encode writes the encoding and a NUL into out (cap bytes) and
 * returns its length, or CPNS_ERR_TOO_LARGE.
 * cpns_b64_decode decodes s[0..n) into out (cap bytes), sets *out_len to the
 * decoded length and returns 0; CPNS_ERR_MALFORMED for anything not strict
 * base64; if the decoded length exceeds cap, *out_len is still the full
 * length, only cap bytes are written, and it returns CPNS_ERR_TOO_LARGE.
 */
#define CPNS_B64_LEN(n) ((((n) + 2) / 3) * 4)
CPNS_API int cpns_b64_encode(const uint8_t *data, size_t len, char *out, size_t cap);
CPNS_API int cpns_b64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
