/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the message modules (msg.c, codec_encode.c, codec_decode.c):
 * the per-kind field rules of PROTOCOL.md 3.1, kept in one place so the
 * encoder's model check and the decoder's mandatory-attribute check can never
 * disagree.
 */
#ifndef CPNS_CODEC_H
#define CPNS_CODEC_H

#include <stdint.h>

#include "cpns/msg.h"

/* The protocol's XML names, qualified the way expat reports them with CPNS_NS_SEP. */
#define CPNS_NS_SEP '\x01'

/* CPNS_F_* bits of the blob (base64) fields. */
#define CPNS_F_BLOBS (CPNS_F_EGK | CPNS_F_KC | CPNS_F_NONCE | CPNS_F_PROOF)

/* CPNS_F_* bits of every field a kind can carry (CPNS_F_TID included), 0 for an unknown kind. */
uint32_t cpns_msg_fields(cpns_msg_kind kind);

/*
 * CPNS_F_* bits that must be present in m for its kind. Depends on m->Return
 * for a SGroupKeyDeliveryResponse (SGID/KeyVersion unless Return 4,
 * KeyConfirmation with Return 1), so call it once Return is known.
 */
uint32_t cpns_msg_required(const cpns_msg *m);

/* The kind whose element name is the local name `name`, or CPNS_MSG_NONE. */
cpns_msg_kind cpns_msg_kind_from_name(const char *name);

/*
 * Strict ASCII decimal: no sign, no leading zero (except "0"), no overflow,
 * min <= value <= max. 0 and *out set, or CPNS_ERR_MALFORMED.
 */
int cpns_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
