/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief The cpns/1 messages (PROTOCOL.md section 3): the model, the XML
 * codec, the cheap routing peek (the 4-byte framing is in frame.h).
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

#define CPNS_NAMESPACE "urn:oma:xml:cpns:message:1.1" /**< the XML namespace of CPNSMessage */
#define CPNS_VERSION "1.1"                            /**< the Version attribute */
#define CPNS_ID_MAX 64                 /**< identifiers are 1..64 of [A-Za-z0-9._:@-] */
#define CPNS_KEY_LEN 32                /**< EUK and GK, bytes */
#define CPNS_EGK_LEN 61                /**< EncryptedGroupKey, decoded */
#define CPNS_NONCE_LEN 16              /**< PNERegistrationRequest Nonce, decoded */
#define CPNS_PROOF_LEN 32              /**< Proof, decoded */
#define CPNS_KC_LEN 16                 /**< KeyConfirmation, decoded */
#define CPNS_BLOB_MAX 64               /**< room for a decoded binary attribute in the model */
#define CPNS_TID_MAX INT64_MAX         /**< TransactionID is 1 .. 2^63-1 */
#define CPNS_KEYVERSION_MAX UINT32_MAX /**< the largest KeyVersion (the smallest is 1) */

/** The seven messages of cpns/1 (PROTOCOL.md 3.1). */
typedef enum cpns_msg_kind {
    CPNS_MSG_NONE = 0,                    /**< not (yet) recognised */
    CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST,  /**< server -> PNE: a Group Key */
    CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE, /**< PNE -> server: its Return and KeyConfirmation */
    CPNS_MSG_PNGW_REGISTRATION_REQUEST,   /**< GW -> server */
    CPNS_MSG_PNGW_REGISTRATION_RESPONSE,  /**< server -> GW */
    CPNS_MSG_PNE_REGISTRATION_REQUEST,    /**< PNE -> server, through its GW */
    CPNS_MSG_PNE_REGISTRATION_RESPONSE,   /**< server -> PNE, through its GW */
    CPNS_MSG_PNE_STATUS_NOTIFICATION,     /**< GW -> server: a PNE attached or detached */
} cpns_msg_kind;

/**
 * The element name of a message kind.
 *
 * @param kind the kind.
 * @return "SGroupKeyDeliveryRequest", ..., or "?" for CPNS_MSG_NONE and
 *         unknown values; a static string.
 */
CPNS_API const char *cpns_msg_kind_name(cpns_msg_kind kind);

/**
 * Return values, PROTOCOL.md 3.2 (who sends each and how the server reacts
 * is there). Never mixed with enum cpns_error.
 */
enum cpns_return {
    CPNS_RETURN_OTHER = 0,       /**< 0: other failure */
    CPNS_RETURN_SUCCESS = 1,     /**< 1: success */
    CPNS_RETURN_DECRYPT = 2,     /**< 2: decryption or integrity failure of EncryptedGroupKey */
    CPNS_RETURN_STORAGE = 3,     /**< 3: secure storage failure */
    CPNS_RETURN_MALFORMED = 4,   /**< 4: malformed message */
    CPNS_RETURN_NOT_MINE = 5,    /**< 5: not addressed to this entity (PNEID is not mine) */
    CPNS_RETURN_UNREACHABLE = 6, /**< 6: PNE not reachable (answered by the PN GW) */
    CPNS_RETURN_STALE = 7,       /**< 7: stale key version (older than stored, or another key) */
    CPNS_RETURN_AUTH = 8,    /**< 8: authentication failed (registration Proof, GW certificate) */
    CPNS_RETURN_UNKNOWN = 9, /**< 9: unknown entity (PNEID not provisioned) */
};

/** The Status of a PNEStatusNotification. */
typedef enum cpns_pne_status {
    CPNS_STATUS_ATTACHED = 1, /**< "attached": the PNE is reachable through the GW */
    CPNS_STATUS_DETACHED = 2, /**< "detached": it is not any more */
} cpns_pne_status;

/**
 * @name Bits of cpns_msg.present
 * @{
 */
#define CPNS_F_TID (1u << 0)           /**< TransactionID */
#define CPNS_F_SGID (1u << 1)          /**< SGID */
#define CPNS_F_PNEID (1u << 2)         /**< PNEID */
#define CPNS_F_PNID (1u << 3)          /**< PNID */
#define CPNS_F_PNGWID (1u << 4)        /**< PNGWID */
#define CPNS_F_KEYVERSION (1u << 5)    /**< KeyVersion */
#define CPNS_F_RETURN (1u << 6)        /**< Return */
#define CPNS_F_EGK (1u << 7)           /**< EncryptedGroupKey */
#define CPNS_F_KC (1u << 8)            /**< KeyConfirmation */
#define CPNS_F_NONCE (1u << 9)         /**< Nonce */
#define CPNS_F_PROOF (1u << 10)        /**< Proof */
#define CPNS_F_TIME (1u << 11)         /**< Time */
#define CPNS_F_STATUS (1u << 12)       /**< Status */
#define CPNS_F_GROUPKEYINFO (1u << 13) /**< the GroupKeyInfo child was seen */
/** @} */

/**
 * A decoded base64 attribute. `len` is the decoded length even when it is
 * larger than CPNS_BLOB_MAX; then only the first CPNS_BLOB_MAX bytes are kept
 * and the value can never be valid (every valid blob is shorter). This keeps
 * the model fixed-size while letting the PNE tell "wrong length" (Return 2)
 * from "not base64" (Return 4).
 */
typedef struct cpns_blob {
    uint8_t data[CPNS_BLOB_MAX]; /**< the decoded bytes (the first CPNS_BLOB_MAX of them) */
    size_t len;                  /**< the decoded length */
} cpns_blob;

/**
 * One message: the union of the attributes of the seven kinds, named as in
 * the protocol. Only the fields whose CPNS_F_* bit is in `present` mean
 * anything.
 */
typedef struct cpns_msg {
    cpns_msg_kind kind;           /**< which message */
    uint32_t present;             /**< CPNS_F_* bits of the fields that are set and valid */
    uint64_t TransactionID;       /**< CPNS_F_TID; 1..CPNS_TID_MAX */
    char SGID[CPNS_ID_MAX + 1];   /**< CPNS_F_SGID: the Service Group */
    char PNEID[CPNS_ID_MAX + 1];  /**< CPNS_F_PNEID: the PN Entity */
    char PNID[CPNS_ID_MAX + 1];   /**< CPNS_F_PNID: the personal network */
    char PNGWID[CPNS_ID_MAX + 1]; /**< CPNS_F_PNGWID: the PN Gateway */
    uint32_t KeyVersion;          /**< CPNS_F_KEYVERSION; 1..CPNS_KEYVERSION_MAX */
    uint32_t Return;              /**< CPNS_F_RETURN: an enum cpns_return value */
    cpns_blob EncryptedGroupKey;  /**< CPNS_F_EGK */
    cpns_blob KeyConfirmation;    /**< CPNS_F_KC */
    cpns_blob Nonce;              /**< CPNS_F_NONCE */
    cpns_blob Proof;              /**< CPNS_F_PROOF */
    uint64_t Time;                /**< CPNS_F_TIME: Unix seconds */
    cpns_pne_status Status;       /**< CPNS_F_STATUS */
} cpns_msg;

/**
 * Zeroes m and sets its kind and TransactionID (and the CPNS_F_TID bit).
 *
 * @param m the message.
 * @param kind its kind.
 * @param TransactionID its TransactionID.
 */
CPNS_API void cpns_msg_init(cpns_msg *m, cpns_msg_kind kind, uint64_t TransactionID);

/**
 * Checks an identifier: 1..64 characters of [A-Za-z0-9._:@-], not only dots
 * (".", ".." and "..." are refused).
 *
 * @param s the string (NULL is invalid).
 * @return 1 if s is a valid identifier, else 0.
 */
CPNS_API int cpns_id_valid(const char *s);

/**
 * Copies an identifier into one of the identifier fields of m and sets its
 * bit in m->present; for building messages.
 *
 * @param m the message.
 * @param bit which field: CPNS_F_SGID, CPNS_F_PNEID, CPNS_F_PNID or CPNS_F_PNGWID.
 * @param src the identifier.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when m is NULL, bit is not an identifier
 *         field or src is not a valid identifier (then nothing changes).
 */
CPNS_API int cpns_msg_set_id(cpns_msg *m, uint32_t bit, const char *src);

/**
 * Copies bytes into one of the blob fields of m and sets its bit.
 *
 * @param m the message.
 * @param bit which field: CPNS_F_EGK, CPNS_F_KC, CPNS_F_NONCE or CPNS_F_PROOF.
 * @param data the bytes (NULL only when len is 0).
 * @param len how many, 0..CPNS_BLOB_MAX.
 * @return 0.
 * @retval CPNS_ERR_INVALID_ARG when m is NULL, bit is not a blob field, len
 *         is over CPNS_BLOB_MAX or data is NULL with a non-zero len.
 */
CPNS_API int cpns_msg_set_blob(cpns_msg *m, uint32_t bit, const uint8_t *data, size_t len);

/**
 * Encodes m as one XML document (a frame payload) into buf.
 * Writes exactly the fields whose present bit is set, after checking that
 * every mandatory field of the kind is there and valid (PROTOCOL.md 3.1:
 * in a SGroupKeyDeliveryResponse, SGID and KeyVersion may be left out only
 * when Return is 4, and KeyConfirmation is required when Return is 1).
 * Present bits of fields the kind does not carry are ignored (not written).
 * A blob must hold 1..CPNS_BLOB_MAX bytes (a Nonce exactly CPNS_NONCE_LEN),
 * so that everything encoded decodes back to the same model. Never allocates.
 *
 * @param m the message.
 * @param buf where to write (NULL only when cap is 0).
 * @param cap buf's size.
 * @param out_len set to the document's length.
 * @return 0 with *out_len set.
 * @retval CPNS_ERR_INVALID_ARG for an invalid model, or m or out_len NULL.
 * @retval CPNS_ERR_TOO_LARGE when cap is too small.
 */
CPNS_API int cpns_msg_encode(const cpns_msg *m, uint8_t *buf, size_t cap, size_t *out_len);

/**
 * Decodes one frame payload with every rule of PROTOCOL.md section 3:
 * well-formed UTF-8 XML, one root CPNSMessage in CPNS_NAMESPACE with
 * Version="1.1" and a TransactionID, exactly one child (the message), no
 * DOCTYPE or entity declaration, identifiers, numbers and base64 valid,
 * mandatory attributes present, length 1..CPNS_FRAME_MAX. Unknown attributes
 * and unknown child elements inside the message element are ignored.
 *
 * Even on failure m holds what could be read: m->kind is set when the
 * message element was recognised and m->present has the bits of the fields
 * that were read and valid (CPNS_F_TID among them when the TransactionID was
 * readable), so the receiver can answer Return 4.
 * An empty blob attribute is malformed (base64 of nothing is no value). A UTF-8
 * byte order mark is accepted; a UTF-16 document, with or without its mark,
 * is not. Character data, comments and processing instructions are ignored
 * anywhere; elements nest at most 32 deep.
 *
 * @param data the payload.
 * @param len its length.
 * @param m filled with the message.
 * @return 0 with m filled.
 * @retval CPNS_ERR_MALFORMED when the document breaks a rule.
 * @retval CPNS_ERR_TOO_LARGE when len is 0 or over CPNS_FRAME_MAX.
 * @retval CPNS_ERR_NOMEM when the XML parser cannot allocate.
 * @retval CPNS_ERR_INVALID_ARG when m is NULL, or data is NULL with a non-zero len.
 */
CPNS_API int cpns_msg_decode(const uint8_t *data, size_t len, cpns_msg *m);

/**
 * The cheap peek used for routing: reads kind, TransactionID and the
 * identifier and number attributes (SGID, PNEID, PNID, PNGWID, KeyVersion,
 * Return, Status) of the message and its GroupKeyInfo, and stops there. It
 * does not decode base64 blobs and does not look at the rest of the document.
 * Rejects DOCTYPE/entities and invalid values of what it reads.
 * Success means the mandatory non-blob fields of the kind are present and
 * valid; blob attributes are neither checked nor set in m->present. On
 * failure m holds what was readable, as for cpns_msg_decode().
 *
 * @param data the payload.
 * @param len its length.
 * @param m filled with what was read.
 * @return 0 with m filled.
 * @retval CPNS_ERR_MALFORMED when what it reads breaks a rule.
 * @retval CPNS_ERR_TOO_LARGE when len is 0 or over CPNS_FRAME_MAX.
 * @retval CPNS_ERR_NOMEM when the XML parser cannot allocate.
 * @retval CPNS_ERR_INVALID_ARG when m is NULL, or data is NULL with a non-zero len.
 */
CPNS_API int cpns_msg_peek(const uint8_t *data, size_t len, cpns_msg *m);

/**
 * A reusable decoder: it keeps one XML parser and resets it between messages
 * instead of creating and freeing one per message, with an expat hash salt
 * drawn once from the OS CSPRNG. cpns_msg_decoder_decode() and
 * cpns_msg_decoder_peek() have exactly the contracts (and results) of
 * cpns_msg_decode() and cpns_msg_peek(); nothing of one message, failed or
 * not, carries over into the next. Not thread-safe: one decoder per thread
 * (or per engine, or shared by engines run from one thread).
 */
typedef struct cpns_msg_decoder cpns_msg_decoder;

/**
 * Creates a reusable decoder.
 *
 * @return the decoder, or NULL on allocation failure.
 */
CPNS_API cpns_msg_decoder *cpns_msg_decoder_new(void);

/**
 * cpns_msg_decode() on a reusable decoder: the same contract and results.
 *
 * @param d the decoder.
 * @param data the payload.
 * @param len its length.
 * @param m filled with the message.
 * @return 0 with m filled.
 * @retval CPNS_ERR_MALFORMED when the document breaks a rule.
 * @retval CPNS_ERR_TOO_LARGE when len is 0 or over CPNS_FRAME_MAX.
 * @retval CPNS_ERR_NOMEM when the XML parser cannot allocate.
 * @retval CPNS_ERR_INVALID_ARG when d or m is NULL, or data is NULL with a non-zero len.
 */
CPNS_API int cpns_msg_decoder_decode(cpns_msg_decoder *d, const uint8_t *data, size_t len,
                                     cpns_msg *m);

/**
 * cpns_msg_peek() on a reusable decoder: the same contract and results.
 *
 * @param d the decoder.
 * @param data the payload.
 * @param len its length.
 * @param m filled with what was read.
 * @return 0 with m filled.
 * @retval CPNS_ERR_MALFORMED when what it reads breaks a rule.
 * @retval CPNS_ERR_TOO_LARGE when len is 0 or over CPNS_FRAME_MAX.
 * @retval CPNS_ERR_NOMEM when the XML parser cannot allocate.
 * @retval CPNS_ERR_INVALID_ARG when d or m is NULL, or data is NULL with a non-zero len.
 */
CPNS_API int cpns_msg_decoder_peek(cpns_msg_decoder *d, const uint8_t *data, size_t len,
                                   cpns_msg *m);

/**
 * Frees a decoder.
 *
 * @param d the decoder; NULL is a no-op.
 */
CPNS_API void cpns_msg_decoder_free(cpns_msg_decoder *d);

/**
 * The length of the base64 encoding of n bytes, without the NUL.
 *
 * @param n the number of bytes to encode.
 */
#define CPNS_B64_LEN(n) ((((n) + 2) / 3) * 4)

/**
 * Strict base64 encoding (RFC 4648, standard alphabet, with padding), as
 * every blob attribute must be.
 *
 * @param data the bytes.
 * @param len how many.
 * @param out the encoding and a NUL.
 * @param cap out's size: at least CPNS_B64_LEN(len) + 1.
 * @return the encoding's length (without the NUL).
 * @retval CPNS_ERR_TOO_LARGE when out is NULL, cap is too small or len is too
 *         large for an int result.
 */
CPNS_API int cpns_b64_encode(const uint8_t *data, size_t len, char *out, size_t cap);

/**
 * Strict base64 decoding (RFC 4648, standard alphabet, with padding, no
 * whitespace, zero pad bits), as every blob attribute must be.
 *
 * @param s the encoding (NULL only when n is 0).
 * @param n its length.
 * @param out the decoded bytes.
 * @param cap out's size.
 * @param out_len set to the decoded length (may be NULL).
 * @return 0 with out and *out_len set.
 * @retval CPNS_ERR_MALFORMED for anything not strict base64.
 * @retval CPNS_ERR_TOO_LARGE when the decoded length exceeds cap: *out_len
 *         is still the full length, only cap bytes are written.
 */
CPNS_API int cpns_b64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
