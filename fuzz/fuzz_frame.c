/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the incremental frame reader (lib/frame.c), the
 * first code every byte from a peer goes through.
 *
 * A differential check: the input's stream is cut into frames by a plain
 * reference reader that sees it whole, then fed to cpns_frame_reader in
 * pieces whose sizes come from the input too, and the two must agree, or the
 * harness abort()s:
 * - the same payloads, byte for byte, in the same order;
 * - the same end: the same sticky error (CPNS_ERR_MALFORMED for a length of
 *   0, CPNS_ERR_TOO_LARGE over the reader's max), returned again by the next
 *   call with nothing consumed; or, without one, cpns_frame_reader_pending()
 *   equal to the bytes of the incomplete last frame;
 * - every call consumes something or says why not (0 means all of it);
 * - an allocation failure (the input asks for some) returns CPNS_ERR_NOMEM,
 *   consumes nothing of what it could not buffer, and feeding the same bytes
 *   again goes on as if it had not happened.
 * Then cpns_frame_reader_reset() and the whole stream in one piece (the
 * in-place path) must give the same result.
 *
 * Input: byte 0 picks the reader's max, bytes 1-2 seed the piece sizes and
 * the allocation failures, the rest is the stream.
 * The same file is replayed over fuzz/corpus/frame/ by the normal test run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpns/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* --- an allocator that fails when told to --- */

static int fail_next;

static void *fz_malloc(size_t n, void *arg)
{
    (void)arg;
    if (fail_next) {
        fail_next = 0;
        return NULL;
    }
    return malloc(n);
}

static void *fz_realloc(void *p, size_t n, void *arg)
{
    (void)arg;
    if (fail_next) {
        fail_next = 0;
        return NULL;
    }
    return realloc(p, n);
}

static void fz_free(void *p, void *arg)
{
    (void)arg;
    free(p);
}

/* --- the reference: the stream seen whole --- */

typedef struct ref_frame {
    size_t off, len; /* the payload, in the stream */
} ref_frame;

typedef struct ref_result {
    ref_frame *frames;
    size_t n;
    int err;        /* 0, CPNS_ERR_MALFORMED or CPNS_ERR_TOO_LARGE */
    size_t pending; /* without err: the bytes of the incomplete last frame */
} ref_result;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void reference(const uint8_t *s, size_t len, size_t max, ref_result *r)
{
    memset(r, 0, sizeof *r);
    r->frames = malloc((len / (CPNS_FRAME_HDR + 1) + 1) * sizeof *r->frames);
    CHECK(r->frames);
    size_t off = 0;
    while (len - off >= CPNS_FRAME_HDR) {
        uint32_t n = be32(s + off);
        if (n == 0 || n > max) {
            r->err = n == 0 ? CPNS_ERR_MALFORMED : CPNS_ERR_TOO_LARGE;
            return;
        }
        if (len - off - CPNS_FRAME_HDR < n)
            break;
        r->frames[r->n].off = off + CPNS_FRAME_HDR;
        r->frames[r->n].len = n;
        r->n++;
        off += CPNS_FRAME_HDR + n;
    }
    r->pending = len - off;
}

/* --- the reader, fed in pieces --- */

static uint32_t rng; /* xorshift32, seeded by the input */

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* 1..len: mostly small pieces, now and then a large one. */
static size_t piece_size(size_t left)
{
    uint32_t x = next();
    size_t n = (x & 7) == 0 ? 1 + (x >> 3) % 70000 : 1 + (x >> 3) % 9;
    return n < left ? n : left;
}

/* Checks one delivered payload against the reference's next frame. */
static void got_frame(const uint8_t *s, const ref_result *ref, size_t *k, const uint8_t *payload,
                      size_t len)
{
    CHECK(*k < ref->n);
    CHECK(payload && len == ref->frames[*k].len);
    CHECK(memcmp(payload, s + ref->frames[*k].off, len) == 0);
    (*k)++;
}

/* The end both must reach: the same sticky error, or the same partial frame. */
static void check_end(cpns_frame_reader *r, const ref_result *ref, size_t k, int err)
{
    CHECK(k == ref->n);
    CHECK(err == ref->err);
    if (err) {
        size_t used = 1, len = 1;
        const uint8_t *payload = (const uint8_t *)"";
        static const uint8_t more[1] = {0};
        CHECK(cpns_frame_reader_feed(r, more, sizeof more, &used, &payload, &len) == err);
        CHECK(used == 0 && payload == NULL && len == 0);
    } else {
        CHECK(cpns_frame_reader_pending(r) == ref->pending);
    }
}

/* Feeds s[0..len) in pieces (whole: one piece); returns the sticky error or 0. */
static int feed_all(cpns_frame_reader *r, const uint8_t *s, size_t len, int whole,
                    const ref_result *ref, size_t *k)
{
    size_t off = 0;
    while (off < len) {
        size_t n = whole ? len - off : piece_size(len - off);
        const uint8_t *p = s + off;
        while (n > 0) {
            size_t used = 0, plen = 0;
            const uint8_t *payload = NULL;
            fail_next = !whole && (next() & 15) == 0;
            int rv = cpns_frame_reader_feed(r, p, n, &used, &payload, &plen);
            fail_next = 0;
            CHECK(used <= n);
            if (rv == CPNS_ERR_NOMEM) {
                CHECK(payload == NULL && plen == 0);
                p += used; /* consumed before the failure; the rest goes again */
                n -= used;
                off += used;
                continue;
            }
            if (rv < 0) {
                CHECK(payload == NULL && plen == 0);
                return rv;
            }
            if (rv == 1) {
                got_frame(s, ref, k, payload, plen);
            } else {
                CHECK(rv == 0 && used == n && payload == NULL && plen == 0);
            }
            CHECK(used > 0 || rv == 1);
            p += used;
            n -= used;
            off += used;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int installed;
    if (!installed) {
        static const cpns_allocator a = {fz_malloc, fz_realloc, fz_free, NULL};
        cpns_set_allocator(&a);
        installed = 1;
    }
    if (size < 3)
        return 0;
    /* max: 0 (the protocol's limit), or 1..CPNS_FRAME_MAX in coarse steps, both ends included */
    size_t max = data[0] == 0 ? 0 : data[0] == 255 ? CPNS_FRAME_MAX : (size_t)data[0] * 257u;
    rng = 0x9e3779b9u ^ ((uint32_t)data[1] << 8 | data[2]);
    const uint8_t *s = data + 3;
    size_t len = size - 3;

    ref_result ref;
    reference(s, len, max ? max : CPNS_FRAME_MAX, &ref);

    cpns_frame_reader *r = NULL;
    CHECK(cpns_frame_reader_new(&r, max) == 0 && r);
    size_t k = 0;
    int err = feed_all(r, s, len, 0, &ref, &k);
    check_end(r, &ref, k, err);

    cpns_frame_reader_reset(r);
    CHECK(cpns_frame_reader_pending(r) == 0);
    k = 0;
    err = feed_all(r, s, len, 1, &ref, &k);
    check_end(r, &ref, k, err);

    cpns_frame_reader_free(r);
    free(ref.frames);
    return 0;
}
