/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The 4-byte framing of PROTOCOL.md section 2 (frame.h): the header writer
 * and the incremental reader every stream of the daemons goes through.
 *
 * The reader has three places a frame's bytes can be: still in the caller's
 * piece (handed back in place when the whole frame is there), in hdr while
 * the 4 length bytes trickle in, and in buf once a payload is split across
 * pieces. buf is sized to the frame being gathered and kept for the next one
 * while small; a large one is freed after its frame was handed back (on the
 * next call, since the payload stays valid until then), so that a connection
 * that once received a 64 KiB frame does not hold 64 KiB for good.
 */
#include <string.h>

#include "cpns/frame.h"
#include "internal.h"

/* A gathering buffer up to this size is kept between frames. */
#define KEEP_BUF 4096

struct cpns_frame_reader {
    size_t max;
    uint8_t hdr[CPNS_FRAME_HDR];
    size_t hdr_have; /* header bytes held, 0..CPNS_FRAME_HDR */
    size_t need;     /* the payload length, once hdr is complete */
    uint8_t *buf;    /* payload bytes gathered so far */
    size_t cap, have;
    int err;           /* sticky: a bad length was read */
    int release_after; /* buf held the last payload and is too big to keep */
};

int cpns_frame_header(uint8_t hdr[CPNS_FRAME_HDR], size_t len)
{
    if (!hdr || len == 0)
        return CPNS_ERR_INVALID_ARG;
    if (len > CPNS_FRAME_MAX)
        return CPNS_ERR_TOO_LARGE;
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
    return 0;
}

int cpns_frame_encode(const uint8_t *payload, size_t len, uint8_t *buf, size_t cap, size_t *out_len)
{
    if (!payload || !buf || !out_len || len == 0)
        return CPNS_ERR_INVALID_ARG;
    if (len > CPNS_FRAME_MAX || cap < CPNS_FRAME_HDR || cap - CPNS_FRAME_HDR < len)
        return CPNS_ERR_TOO_LARGE;
    cpns_frame_header(buf, len);
    memcpy(buf + CPNS_FRAME_HDR, payload, len);
    *out_len = CPNS_FRAME_HDR + len;
    return 0;
}

int cpns_frame_reader_new(cpns_frame_reader **out, size_t max)
{
    if (out)
        *out = NULL;
    if (!out || max > CPNS_FRAME_MAX)
        return CPNS_ERR_INVALID_ARG;
    cpns_frame_reader *r = cpns_calloc(1, sizeof *r);
    if (!r)
        return CPNS_ERR_NOMEM;
    r->max = max ? max : CPNS_FRAME_MAX;
    *out = r;
    return 0;
}

static void drop_buf(cpns_frame_reader *r)
{
    cpns_free(r->buf);
    r->buf = NULL;
    r->cap = 0;
    r->release_after = 0;
}

void cpns_frame_reader_free(cpns_frame_reader *r)
{
    if (!r)
        return;
    drop_buf(r);
    cpns_free(r);
}

void cpns_frame_reader_reset(cpns_frame_reader *r)
{
    if (!r)
        return;
    if (r->release_after || r->cap > KEEP_BUF)
        drop_buf(r);
    r->hdr_have = r->need = r->have = 0;
    r->err = 0;
}

size_t cpns_frame_reader_pending(const cpns_frame_reader *r)
{
    return r ? r->hdr_have + r->have : 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The length check, before any payload byte is accepted; sticky on failure. */
static int check_len(cpns_frame_reader *r, uint32_t n)
{
    if (n == 0)
        r->err = CPNS_ERR_MALFORMED;
    else if (n > r->max)
        r->err = CPNS_ERR_TOO_LARGE;
    return r->err;
}

/* Hands back the gathered payload and starts the next frame. */
static int deliver_buf(cpns_frame_reader *r, const uint8_t **payload, size_t *payload_len)
{
    *payload = r->buf;
    *payload_len = r->need;
    r->release_after = r->cap > KEEP_BUF;
    r->hdr_have = r->need = r->have = 0;
    return 1;
}

int cpns_frame_reader_feed(cpns_frame_reader *r, const uint8_t *data, size_t len, size_t *used,
                           const uint8_t **payload, size_t *payload_len)
{
    if (used)
        *used = 0;
    if (payload)
        *payload = NULL;
    if (payload_len)
        *payload_len = 0;
    if (!r || !used || !payload || !payload_len || (!data && len))
        return CPNS_ERR_INVALID_ARG;
    if (r->err)
        return r->err;
    if (r->release_after)
        drop_buf(r); /* the payload handed back last time is no longer in use */

    size_t off = 0;
    if (r->hdr_have < CPNS_FRAME_HDR) {
        /* The common case: a whole frame at the start of the piece, handed back in place. */
        if (r->hdr_have == 0 && len >= CPNS_FRAME_HDR) {
            uint32_t n = be32(data);
            if (check_len(r, n)) {
                *used = CPNS_FRAME_HDR;
                return r->err;
            }
            if (len - CPNS_FRAME_HDR >= n) {
                *payload = data + CPNS_FRAME_HDR;
                *payload_len = n;
                *used = CPNS_FRAME_HDR + (size_t)n;
                return 1;
            }
        }
        size_t take = CPNS_FRAME_HDR - r->hdr_have;
        if (take > len)
            take = len;
        if (take)
            memcpy(r->hdr + r->hdr_have, data, take);
        r->hdr_have += take;
        off = take;
        *used = off;
        if (r->hdr_have < CPNS_FRAME_HDR)
            return 0;
        if (check_len(r, be32(r->hdr)))
            return r->err;
        r->need = be32(r->hdr);
        r->have = 0;
    }

    size_t rest = len - off;
    /* The header came split but the payload is whole in this piece: no copy either. */
    if (r->have == 0 && rest >= r->need) {
        *payload = data + off;
        *payload_len = r->need;
        *used = off + r->need;
        r->hdr_have = r->need = 0;
        return 1;
    }
    if (rest == 0)
        return 0;
    if (r->cap < r->need) {
        /* have is 0 here (a new frame): nothing to carry over, so no realloc */
        drop_buf(r);
        r->buf = cpns_malloc(r->need);
        if (!r->buf)
            return CPNS_ERR_NOMEM; /* *used == off: the payload bytes can come again */
        r->cap = r->need;
    }
    size_t take = r->need - r->have;
    if (take > rest)
        take = rest;
    memcpy(r->buf + r->have, data + off, take);
    r->have += take;
    *used = off + take;
    if (r->have < r->need)
        return 0;
    return deliver_buf(r, payload, payload_len);
}
