/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the cpns/1 decoder and peek (lib/codec_decode.c).
 *
 * Besides "no crash, no sanitizer report" it checks the codec's own promises
 * and abort()s when one breaks:
 * - whatever decode accepts, peek accepts too, with the same routing fields;
 * - a decoded model re-encodes (unless a blob is longer than the model keeps,
 *   which the encoder must then refuse), decodes back to the same model, and
 *   encodes to the same bytes again: one canonical encoding per model.
 * The same file is replayed over fuzz/corpus/decode/ by the normal test run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpns/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static int blob_equal(const cpns_blob *a, const cpns_blob *b)
{
    size_t kept = a->len < CPNS_BLOB_MAX ? a->len : CPNS_BLOB_MAX;
    return a->len == b->len && memcmp(a->data, b->data, kept) == 0;
}

static int same_model(const cpns_msg *a, const cpns_msg *b)
{
    return a->kind == b->kind && a->present == b->present && a->TransactionID == b->TransactionID &&
           strcmp(a->SGID, b->SGID) == 0 && strcmp(a->PNEID, b->PNEID) == 0 &&
           strcmp(a->PNID, b->PNID) == 0 && strcmp(a->PNGWID, b->PNGWID) == 0 &&
           a->KeyVersion == b->KeyVersion && a->Return == b->Return && a->Time == b->Time &&
           a->Status == b->Status && blob_equal(&a->EncryptedGroupKey, &b->EncryptedGroupKey) &&
           blob_equal(&a->KeyConfirmation, &b->KeyConfirmation) &&
           blob_equal(&a->Nonce, &b->Nonce) && blob_equal(&a->Proof, &b->Proof);
}

/* The peek's fields are a subset of the decode's, with the same values. */
static void check_peek(const cpns_msg *full, const cpns_msg *peek)
{
    const uint32_t blobs = CPNS_F_EGK | CPNS_F_KC | CPNS_F_NONCE | CPNS_F_PROOF;
    CHECK(peek->kind == full->kind);
    CHECK(peek->present == (full->present & ~blobs));
    CHECK(peek->TransactionID == full->TransactionID);
    CHECK(strcmp(peek->SGID, full->SGID) == 0 && strcmp(peek->PNEID, full->PNEID) == 0);
    CHECK(strcmp(peek->PNID, full->PNID) == 0 && strcmp(peek->PNGWID, full->PNGWID) == 0);
    CHECK(peek->KeyVersion == full->KeyVersion && peek->Return == full->Return);
    CHECK(peek->Status == full->Status);
}

static int blobs_fit(const cpns_msg *m)
{
    return m->EncryptedGroupKey.len <= CPNS_BLOB_MAX && m->KeyConfirmation.len <= CPNS_BLOB_MAX &&
           m->Nonce.len <= CPNS_BLOB_MAX && m->Proof.len <= CPNS_BLOB_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[CPNS_FRAME_MAX], buf2[CPNS_FRAME_MAX];
    cpns_msg m, p, back;
    int rv = cpns_msg_decode(data, size, &m);
    int prv = cpns_msg_peek(data, size, &p);
    CHECK(rv == 0 || rv == CPNS_ERR_MALFORMED || rv == CPNS_ERR_TOO_LARGE);
    CHECK(prv == 0 || prv == CPNS_ERR_MALFORMED || prv == CPNS_ERR_TOO_LARGE);
    if (rv == CPNS_ERR_TOO_LARGE)
        CHECK(prv == CPNS_ERR_TOO_LARGE && (size == 0 || size > CPNS_FRAME_MAX));
    if (rv != 0)
        return 0;
    CHECK(prv == 0);
    check_peek(&m, &p);

    size_t len = 0, len2 = 0;
    int erv = cpns_msg_encode(&m, buf, sizeof buf, &len);
    if (!blobs_fit(&m)) {
        CHECK(erv == CPNS_ERR_INVALID_ARG);
        return 0;
    }
    CHECK(erv == 0);
    CHECK(cpns_msg_decode(buf, len, &back) == 0);
    CHECK(same_model(&m, &back));
    CHECK(cpns_msg_encode(&back, buf2, sizeof buf2, &len2) == 0);
    CHECK(len == len2 && memcmp(buf, buf2, len) == 0);
    return 0;
}
