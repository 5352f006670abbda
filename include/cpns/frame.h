/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief The cpns/1 framing (PROTOCOL.md section 2): writer and incremental reader.
 *
 * Every message on a TCP (or TLS) stream is one frame, a 4-byte unsigned big-endian length N
 * followed by N bytes of payload (one XML document, cpns_msg_encode() / cpns_msg_decode()). 1 <= N
 * <= CPNS_FRAME_MAX; a frame outside that range closes the connection.
 *
 * The writer is cpns_frame_header() (or cpns_frame_encode() for header and
 * payload in one buffer). The reader, cpns_frame_reader, is incremental and
 * sans-I/O: the caller feeds it the bytes as they arrive, in pieces of any
 * size, and it hands back whole payloads. It checks a length as soon as the
 * 4 header bytes are there, so a bad peer is refused before it sends (or the
 * reader buffers) a single byte of an oversized payload. It copies only what
 * it must: a frame that arrives whole within one piece is handed back in
 * place; one split across pieces is gathered in a buffer sized to that frame.
 *
 * A typical read loop (error handling shortened):
 *
 * @code
 *     ssize_t n = read(fd, buf, sizeof buf);
 *     const uint8_t *p = buf;
 *     while (n > 0) {
 *         size_t used, len;
 *         const uint8_t *payload;
 *         int rv = cpns_frame_reader_feed(r, p, (size_t)n, &used, &payload, &len);
 *         if (rv < 0)
 *             close the connection (cpns_strerror(rv) says why);
 *         p += used;
 *         n -= used;
 *         if (rv == 1)
 *             handle payload[0..len);
 *     }
 * @endcode
 *
 * Errors are negative enum cpns_error values (common.h); every function says
 * which ones it returns.
 */
#ifndef CPNS_FRAME_H
#define CPNS_FRAME_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CPNS_FRAME_HDR 4      /**< the length prefix, bytes */
#define CPNS_FRAME_MAX 65536u /**< largest frame payload (the smallest is 1 byte) */

/**
 * Writes the header of a frame whose payload is len bytes.
 * On error hdr is left untouched.
 *
 * @param hdr the 4 bytes to write.
 * @param len the payload's length, 1..CPNS_FRAME_MAX.
 * @return 0 with hdr written.
 * @retval CPNS_ERR_INVALID_ARG when hdr is NULL or len is 0 (an empty frame
 *         is not allowed).
 * @retval CPNS_ERR_TOO_LARGE when len is over CPNS_FRAME_MAX.
 */
CPNS_API int cpns_frame_header(uint8_t hdr[CPNS_FRAME_HDR], size_t len);

/**
 * Writes one whole frame, header and payload[0..len), into buf: ready for
 * one write().
 *
 * @param payload the payload.
 * @param len its length, 1..CPNS_FRAME_MAX.
 * @param buf where to write the frame.
 * @param cap buf's size in bytes.
 * @param out_len set to CPNS_FRAME_HDR + len.
 * @return 0 with the frame in buf.
 * @retval CPNS_ERR_INVALID_ARG when payload, buf or out_len is NULL or len is 0.
 * @retval CPNS_ERR_TOO_LARGE when len is over CPNS_FRAME_MAX or the frame
 *         does not fit in cap bytes (then nothing is written).
 */
CPNS_API int cpns_frame_encode(const uint8_t *payload, size_t len, uint8_t *buf, size_t cap,
                               size_t *out_len);

/** The incremental reader: one per connection (it holds that stream's partial frame). */
typedef struct cpns_frame_reader cpns_frame_reader;

/**
 * Creates a reader. A receiver that knows its peer sends less than the
 * protocol allows may choose a smaller bound. Allocates through the
 * allocator hook (common.h); the reader holds no buffer until a frame
 * arrives split.
 *
 * @param out set to the new reader (NULL on failure when out is not NULL).
 * @param max the largest payload accepted, bytes; 0 means CPNS_FRAME_MAX,
 *        the protocol's limit.
 * @return 0 with *out set.
 * @retval CPNS_ERR_INVALID_ARG when out is NULL or max is over CPNS_FRAME_MAX.
 * @retval CPNS_ERR_NOMEM when the allocation fails.
 */
CPNS_API int cpns_frame_reader_new(cpns_frame_reader **out, size_t max);

/**
 * Frees the reader and any partial frame it holds.
 *
 * @param r the reader; NULL is a no-op.
 */
CPNS_API void cpns_frame_reader_del(cpns_frame_reader *r);

/**
 * Consumes bytes of data[0..len) up to the end of the first frame they
 * complete, and sets *used to the number of bytes consumed.
 *
 * When a frame is complete, *payload points into data or into the reader's
 * buffer, and stays valid until the next call on the reader (and, when it
 * points into data, as long as data does). The bytes after *used are not
 * looked at: feed them (data + *used) next.
 * On every return other than 1, *payload is NULL and *payload_len 0.
 *
 * @param r the reader.
 * @param data the bytes received (NULL only when len is 0).
 * @param len how many.
 * @param used set to the number of bytes consumed.
 * @param payload set to the payload of the completed frame.
 * @param payload_len set to its length (1..max bytes).
 * @retval 1 when a frame is complete: *payload and *payload_len are its payload.
 * @retval 0 when every byte was consumed (*used == len, len 0 included) and
 *         no frame is complete yet: the reader keeps the partial frame.
 * @retval CPNS_ERR_MALFORMED when a header announced a length of 0. Sticky:
 *         the stream cannot be resynchronised, every later call returns the
 *         same error until cpns_frame_reader_reset() (the caller closes the
 *         connection). *used counts the header bytes consumed.
 * @retval CPNS_ERR_TOO_LARGE when a header announced a length over max;
 *         sticky, like CPNS_ERR_MALFORMED.
 * @retval CPNS_ERR_NOMEM when there is no buffer for a split frame. Not
 *         sticky: the bytes from data + *used on were not consumed and may be
 *         fed again later.
 * @retval CPNS_ERR_INVALID_ARG when r, used, payload or payload_len is NULL,
 *         or data is NULL while len is not 0 (nothing is consumed, *used is 0
 *         when used is not NULL).
 */
CPNS_API int cpns_frame_reader_feed(cpns_frame_reader *r, const uint8_t *data, size_t len,
                                    size_t *used, const uint8_t **payload, size_t *payload_len);

/**
 * The bytes of an incomplete frame the reader holds (its header bytes
 * included). A connection can time out a peer that leaves a frame half-sent
 * (PROTOCOL.md, INTERPRETATIONS 33) by it.
 *
 * @param r the reader.
 * @return the count; 0 exactly at a frame boundary, and for NULL.
 */
CPNS_API size_t cpns_frame_reader_pending(const cpns_frame_reader *r);

/**
 * Forgets the partial frame and a sticky error: the reader is as new (for a
 * new connection on the same object).
 *
 * @param r the reader; NULL is a no-op.
 */
CPNS_API void cpns_frame_reader_reset(cpns_frame_reader *r);

#ifdef __cplusplus
}
#endif
#endif
