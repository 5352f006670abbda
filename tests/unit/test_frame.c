/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of lib/frame.c (cpns/frame.h): the header writer and whole-frame
 * encoder with their bounds, and the incremental reader: a stream of frames
 * split at every byte position comes out whole and in order, lengths 0 and
 * over the bound are refused as soon as the header is complete (sticky until
 * reset), a failed allocation loses nothing, and the reader frees what it
 * allocates.
 */
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* Three frames back to back: lengths 5, 1 and 300 (the last one bigger than a small piece). */
static size_t stream(uint8_t *buf, size_t cap, size_t lens[3], uint8_t fill[3])
{
    static const size_t L[3] = {5, 1, 300};
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        lens[i] = L[i];
        fill[i] = (uint8_t)('a' + i);
        assert_true(off + CPNS_FRAME_HDR + L[i] <= cap);
        assert_int_equal(cpns_frame_header(buf + off, L[i]), 0);
        memset(buf + off + CPNS_FRAME_HDR, fill[i], L[i]);
        /* a recognisable first and last byte, so that an off-by-one shows */
        buf[off + CPNS_FRAME_HDR] = (uint8_t)('0' + i);
        buf[off + CPNS_FRAME_HDR + L[i] - 1] = (uint8_t)('A' + i);
        off += CPNS_FRAME_HDR + L[i];
    }
    return off;
}

static void check_payload(const uint8_t *p, size_t len, int i, size_t want_len, uint8_t fill)
{
    assert_int_equal(len, want_len);
    if (len == 1) {
        assert_int_equal(p[0], 'A' + i); /* the last byte written wins */
        return;
    }
    assert_int_equal(p[0], '0' + i);
    assert_int_equal(p[len - 1], 'A' + i);
    for (size_t k = 1; k + 1 < len; k++)
        assert_int_equal(p[k], fill);
}

/* Feeds data[0..len) completely; checks each frame that comes out against the next expected one. */
static void feed_all(cpns_frame_reader *r, const uint8_t *data, size_t len, int *next,
                     const size_t lens[3], const uint8_t fill[3])
{
    while (len > 0) {
        size_t used = 99, plen = 99;
        const uint8_t *p = (const uint8_t *)"x";
        int rv = cpns_frame_reader_feed(r, data, len, &used, &p, &plen);
        assert_true(rv == 0 || rv == 1);
        assert_true(used <= len);
        if (rv == 0) {
            assert_int_equal(used, len);
            assert_null(p);
            assert_int_equal(plen, 0);
        } else {
            assert_true(*next < 3);
            check_payload(p, plen, *next, lens[*next], fill[*next]);
            (*next)++;
            assert_int_equal(cpns_frame_reader_pending(r), 0);
        }
        data += used;
        len -= used;
    }
}

static void test_header_and_encode(void **state)
{
    (void)state;
    uint8_t hdr[CPNS_FRAME_HDR] = {9, 9, 9, 9};
    assert_int_equal(cpns_frame_header(hdr, 0x0102), 0);
    assert_memory_equal(hdr, "\x00\x00\x01\x02", 4);
    assert_int_equal(cpns_frame_header(hdr, CPNS_FRAME_MAX), 0);
    assert_memory_equal(hdr, "\x00\x01\x00\x00", 4);
    assert_int_equal(cpns_frame_header(hdr, 1), 0);
    assert_memory_equal(hdr, "\x00\x00\x00\x01", 4);
    /* out of range: refused, hdr untouched */
    assert_int_equal(cpns_frame_header(hdr, 0), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_frame_header(hdr, CPNS_FRAME_MAX + 1), CPNS_ERR_TOO_LARGE);
    assert_int_equal(cpns_frame_header(hdr, SIZE_MAX), CPNS_ERR_TOO_LARGE);
    assert_memory_equal(hdr, "\x00\x00\x00\x01", 4);
    assert_int_equal(cpns_frame_header(NULL, 5), CPNS_ERR_INVALID_ARG);

    uint8_t buf[16];
    size_t n = 0;
    assert_int_equal(cpns_frame_encode((const uint8_t *)"hello", 5, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 9);
    assert_memory_equal(buf, "\x00\x00\x00\x05hello", 9);
    /* exactly fitting, one byte short */
    assert_int_equal(cpns_frame_encode((const uint8_t *)"hello", 5, buf, 9, &n), 0);
    memset(buf, 0, sizeof buf);
    assert_int_equal(cpns_frame_encode((const uint8_t *)"hello", 5, buf, 8, &n),
                     CPNS_ERR_TOO_LARGE);
    assert_int_equal(cpns_frame_encode((const uint8_t *)"hello", 5, buf, 3, &n),
                     CPNS_ERR_TOO_LARGE);
    assert_memory_equal(buf, "\x00\x00\x00\x00\x00\x00\x00\x00\x00", 9); /* nothing written */
    assert_int_equal(cpns_frame_encode((const uint8_t *)"", 0, buf, sizeof buf, &n),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_frame_encode(NULL, 5, buf, sizeof buf, &n), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_frame_encode((const uint8_t *)"x", 1, NULL, 0, &n), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_frame_encode((const uint8_t *)"x", 1, buf, sizeof buf, NULL),
                     CPNS_ERR_INVALID_ARG);
    static uint8_t big[CPNS_FRAME_MAX + 2 + CPNS_FRAME_HDR];
    static uint8_t out[sizeof big + CPNS_FRAME_HDR];
    assert_int_equal(cpns_frame_encode(big, CPNS_FRAME_MAX, out, sizeof out, &n), 0);
    assert_int_equal(n, CPNS_FRAME_HDR + CPNS_FRAME_MAX);
    assert_int_equal(cpns_frame_encode(big, CPNS_FRAME_MAX + 1, out, sizeof out, &n),
                     CPNS_ERR_TOO_LARGE);
}

/* The whole stream in one piece: every frame handed back in place, in order. */
static void test_reader_whole_stream(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t lens[3];
    uint8_t fill[3];
    size_t total = stream(buf, sizeof buf, lens, fill);
    cpns_frame_reader *r = NULL;
    assert_int_equal(cpns_frame_reader_new(&r, 0), 0);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        size_t used, plen;
        const uint8_t *p;
        assert_int_equal(cpns_frame_reader_feed(r, buf + off, total - off, &used, &p, &plen), 1);
        assert_ptr_equal(p, buf + off + CPNS_FRAME_HDR); /* no copy */
        check_payload(p, plen, i, lens[i], fill[i]);
        assert_int_equal(used, CPNS_FRAME_HDR + lens[i]);
        off += used;
    }
    assert_int_equal(off, total);
    size_t used = 7, plen = 7;
    const uint8_t *p = buf;
    assert_int_equal(cpns_frame_reader_feed(r, buf + off, 0, &used, &p, &plen), 0);
    assert_int_equal(used, 0);
    assert_null(p);
    assert_int_equal(cpns_frame_reader_feed(r, NULL, 0, &used, &p, &plen), 0);
    assert_int_equal(cpns_frame_reader_pending(r), 0);
    cpns_frame_reader_free(r);
}

/*
 * The stream cut in two at every position, then in three at every pair of
 * positions, then fed one byte at a time: always the same three frames.
 */
static void test_reader_split_everywhere(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t lens[3];
    uint8_t fill[3];
    size_t total = stream(buf, sizeof buf, lens, fill);
    cpns_frame_reader *r = NULL;
    assert_int_equal(cpns_frame_reader_new(&r, 0), 0);

    for (size_t cut = 0; cut <= total; cut++) {
        int next = 0;
        feed_all(r, buf, cut, &next, lens, fill);
        /* what is held is exactly the unfinished frame's bytes so far */
        size_t boundary = 0, k = 0;
        while (k < 3 && boundary + CPNS_FRAME_HDR + lens[k] <= cut)
            boundary += CPNS_FRAME_HDR + lens[k++];
        assert_int_equal(cpns_frame_reader_pending(r), cut - boundary);
        assert_int_equal(next, (int)k);
        feed_all(r, buf + cut, total - cut, &next, lens, fill);
        assert_int_equal(next, 3);
        assert_int_equal(cpns_frame_reader_pending(r), 0);
    }
    for (size_t a = 0; a <= total; a += 3) {
        for (size_t b = a; b <= total; b++) {
            int next = 0;
            feed_all(r, buf, a, &next, lens, fill);
            feed_all(r, buf + a, b - a, &next, lens, fill);
            feed_all(r, buf + b, total - b, &next, lens, fill);
            assert_int_equal(next, 3);
        }
    }
    int next = 0;
    for (size_t i = 0; i < total; i++)
        feed_all(r, buf + i, 1, &next, lens, fill);
    assert_int_equal(next, 3);
    cpns_frame_reader_free(r);
}

/* PROTOCOL.md 2: 1 <= N <= 65536, and a frame outside that closes the connection. */
static void test_reader_bounds(void **state)
{
    (void)state;
    cpns_frame_reader *r = NULL;
    assert_int_equal(cpns_frame_reader_new(&r, 0), 0);
    size_t used, plen;
    const uint8_t *p;

    /* length 0: refused as soon as the 4th header byte arrives */
    const uint8_t zero[] = {0, 0, 0, 0, 'x'};
    assert_int_equal(cpns_frame_reader_feed(r, zero, 3, &used, &p, &plen), 0);
    assert_int_equal(used, 3);
    assert_int_equal(cpns_frame_reader_feed(r, zero + 3, 2, &used, &p, &plen), CPNS_ERR_MALFORMED);
    assert_int_equal(used, 1);
    assert_null(p);
    /* sticky: nothing more is read from this stream */
    const uint8_t good[] = {0, 0, 0, 1, 'y'};
    assert_int_equal(cpns_frame_reader_feed(r, good, sizeof good, &used, &p, &plen),
                     CPNS_ERR_MALFORMED);
    assert_int_equal(used, 0);
    cpns_frame_reader_reset(r);
    assert_int_equal(cpns_frame_reader_feed(r, good, sizeof good, &used, &p, &plen), 1);
    assert_int_equal(plen, 1);
    assert_int_equal(p[0], 'y');

    /* 65537 and 0xffffffff: too large, before any payload byte is taken */
    const uint8_t over[] = {0, 1, 0, 1, 'z', 'z'};
    assert_int_equal(cpns_frame_reader_feed(r, over, sizeof over, &used, &p, &plen),
                     CPNS_ERR_TOO_LARGE);
    assert_int_equal(used, CPNS_FRAME_HDR);
    assert_int_equal(cpns_frame_reader_feed(r, over, sizeof over, &used, &p, &plen),
                     CPNS_ERR_TOO_LARGE);
    cpns_frame_reader_reset(r);
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(cpns_frame_reader_feed(r, huge, 2, &used, &p, &plen), 0);
    assert_int_equal(cpns_frame_reader_feed(r, huge + 2, 2, &used, &p, &plen), CPNS_ERR_TOO_LARGE);
    assert_int_equal(cpns_frame_reader_pending(r), CPNS_FRAME_HDR);
    cpns_frame_reader_reset(r);
    assert_int_equal(cpns_frame_reader_pending(r), 0);

    /* 65536 is allowed: gathered over pieces of 1000 bytes, then handed back whole */
    static uint8_t max[CPNS_FRAME_HDR + CPNS_FRAME_MAX];
    assert_int_equal(cpns_frame_header(max, CPNS_FRAME_MAX), 0);
    for (size_t i = 0; i < CPNS_FRAME_MAX; i++)
        max[CPNS_FRAME_HDR + i] = (uint8_t)(i * 7);
    size_t off = 0;
    int rv = 0;
    while (rv == 0) {
        size_t n = sizeof max - off < 1000 ? sizeof max - off : 1000;
        rv = cpns_frame_reader_feed(r, max + off, n, &used, &p, &plen);
        off += used;
    }
    assert_int_equal(rv, 1);
    assert_int_equal(off, sizeof max);
    assert_int_equal(plen, CPNS_FRAME_MAX);
    assert_memory_equal(p, max + CPNS_FRAME_HDR, CPNS_FRAME_MAX);
    assert_int_equal(cpns_frame_reader_feed(r, good, sizeof good, &used, &p, &plen), 1);
    cpns_frame_reader_free(r);

    /* a smaller bound of the receiver's choice */
    assert_int_equal(cpns_frame_reader_new(&r, 4), 0);
    const uint8_t five[] = {0, 0, 0, 5, 1, 2, 3, 4, 5};
    assert_int_equal(cpns_frame_reader_feed(r, five, sizeof five, &used, &p, &plen),
                     CPNS_ERR_TOO_LARGE);
    cpns_frame_reader_reset(r);
    const uint8_t four[] = {0, 0, 0, 4, 1, 2, 3, 4};
    assert_int_equal(cpns_frame_reader_feed(r, four, sizeof four, &used, &p, &plen), 1);
    assert_int_equal(plen, 4);
    cpns_frame_reader_free(r);
}

static void test_reader_invalid_args(void **state)
{
    (void)state;
    cpns_frame_reader *r = (cpns_frame_reader *)1;
    assert_int_equal(cpns_frame_reader_new(&r, CPNS_FRAME_MAX + 1), CPNS_ERR_INVALID_ARG);
    assert_null(r);
    assert_int_equal(cpns_frame_reader_new(NULL, 0), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_frame_reader_new(&r, CPNS_FRAME_MAX), 0);
    size_t used = 5, plen = 5;
    const uint8_t *p = (const uint8_t *)"";
    const uint8_t one[] = {0, 0, 0, 1, 'q'};
    assert_int_equal(cpns_frame_reader_feed(NULL, one, 5, &used, &p, &plen), CPNS_ERR_INVALID_ARG);
    assert_int_equal(used, 0);
    assert_int_equal(cpns_frame_reader_feed(r, NULL, 5, &used, &p, &plen), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_frame_reader_feed(r, one, 5, NULL, &p, &plen), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_frame_reader_feed(r, one, 5, &used, NULL, &plen), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_frame_reader_feed(r, one, 5, &used, &p, NULL), CPNS_ERR_INVALID_ARG);
    /* nothing was consumed by the refused calls */
    assert_int_equal(cpns_frame_reader_pending(r), 0);
    assert_int_equal(cpns_frame_reader_feed(r, one, 5, &used, &p, &plen), 1);
    assert_int_equal(p[0], 'q');
    assert_int_equal(cpns_frame_reader_pending(NULL), 0);
    cpns_frame_reader_reset(NULL);
    cpns_frame_reader_free(NULL);
    cpns_frame_reader_free(r);
}

/*
 * Every allocation of the reader fails in turn: the error is CPNS_ERR_NOMEM,
 * nothing is lost (the same bytes fed again complete the frame), and every
 * block is freed in the end.
 */
static void test_reader_alloc_failure(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t lens[3];
    uint8_t fill[3];
    size_t total = stream(buf, sizeof buf, lens, fill);
    for (long fail_at = 1; fail_at <= 4; fail_at++) {
        test_counting cnt = {.fail_at = fail_at};
        cpns_allocator a = test_counting_allocator(&cnt);
        cpns_set_allocator(&a);
        cpns_frame_reader *r = NULL;
        int rv = cpns_frame_reader_new(&r, 0);
        if (rv != 0) {
            assert_int_equal(rv, CPNS_ERR_NOMEM);
            assert_null(r);
            cpns_set_allocator(NULL);
            assert_int_equal(cnt.live, 0);
            continue;
        }
        /* in pieces of 10 bytes: the 300-byte frame needs a buffer */
        int next = 0, nomem = 0;
        size_t off = 0;
        while (off < total) {
            size_t n = total - off < 10 ? total - off : 10;
            size_t used, plen;
            const uint8_t *p;
            rv = cpns_frame_reader_feed(r, buf + off, n, &used, &p, &plen);
            off += used;
            if (rv == CPNS_ERR_NOMEM) {
                nomem++;
                assert_true(nomem < 3);
                continue;
            }
            assert_true(rv == 0 || rv == 1);
            if (rv == 1) {
                check_payload(p, plen, next, lens[next], fill[next]);
                next++;
            }
        }
        assert_int_equal(next, 3);
        cpns_frame_reader_free(r);
        cpns_set_allocator(NULL);
        assert_int_equal(cnt.live, 0);
    }
}

/* A big frame's buffer is freed after use; a small one is kept (and nothing leaks: ASan/valgrind).
 */
static void test_reader_buffer_release(void **state)
{
    (void)state;
    test_counting cnt = {0};
    cpns_allocator a = test_counting_allocator(&cnt);
    cpns_set_allocator(&a);
    cpns_frame_reader *r = NULL;
    assert_int_equal(cpns_frame_reader_new(&r, 0), 0);
    assert_int_equal(cnt.live, 1);
    static uint8_t big[CPNS_FRAME_HDR + 10000];
    assert_int_equal(cpns_frame_header(big, 10000), 0);
    size_t used, plen;
    const uint8_t *p;
    assert_int_equal(cpns_frame_reader_feed(r, big, 100, &used, &p, &plen), 0);
    assert_int_equal(cnt.live, 2);
    assert_int_equal(cpns_frame_reader_feed(r, big + 100, sizeof big - 100, &used, &p, &plen), 1);
    assert_int_equal(plen, 10000);
    assert_int_equal(cnt.live, 2); /* still valid until the next call */
    uint8_t small[CPNS_FRAME_HDR + 100];
    assert_int_equal(cpns_frame_header(small, 100), 0);
    memset(small + CPNS_FRAME_HDR, 's', 100);
    assert_int_equal(cpns_frame_reader_feed(r, small, 50, &used, &p, &plen), 0);
    assert_int_equal(cnt.live, 2); /* the big one went, a small one came */
    assert_int_equal(cpns_frame_reader_feed(r, small + 50, 54, &used, &p, &plen), 1);
    assert_int_equal(cpns_frame_reader_feed(r, small, 50, &used, &p, &plen), 0);
    assert_int_equal(cnt.live, 2); /* kept */
    cpns_frame_reader_reset(r);
    assert_int_equal(cnt.live, 2);
    cpns_frame_reader_free(r);
    assert_int_equal(cnt.live, 0);
    cpns_set_allocator(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_and_encode),       cmocka_unit_test(test_reader_whole_stream),
        cmocka_unit_test(test_reader_split_everywhere), cmocka_unit_test(test_reader_bounds),
        cmocka_unit_test(test_reader_invalid_args),     cmocka_unit_test(test_reader_alloc_failure),
        cmocka_unit_test(test_reader_buffer_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
