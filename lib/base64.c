/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict base64 (RFC 4648 section 4: standard alphabet, '=' padding) for the
 * blob attributes. Strict means canonical: the length is a multiple of 4, no
 * whitespace or line breaks, padding only at the end, and the unused bits of
 * the last symbol are zero, so every byte string has exactly one accepted
 * encoding. That keeps Proof and KeyConfirmation comparisons free of
 * encoding games and makes decode/encode round trips exact.
 */
#include <limits.h>

#include "internal.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int cpns_b64_encode(const uint8_t *data, size_t len, char *out, size_t cap)
{
    if (len > (size_t)INT_MAX / 4 * 3 - 3)
        return CPNS_ERR_TOO_LARGE;
    size_t need = CPNS_B64_LEN(len);
    if (!out || cap < need + 1)
        return CPNS_ERR_TOO_LARGE;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

/*
 * Each symbol's value plus one; 0 for every byte outside the alphabet. A
 * lookup instead of range tests: the symbols of a key are random, and the
 * branches mispredicted on most of them.
 */
static const uint8_t sextet_plus_1[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

static int sextet(char c)
{
    return (int)sextet_plus_1[(unsigned char)c] - 1;
}

int cpns_b64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    if ((n && !s) || n % 4)
        return CPNS_ERR_MALFORMED;
    size_t pad = 0;
    if (n && s[n - 1] == '=')
        pad = s[n - 2] == '=' ? 2 : 1;
    size_t total = n / 4 * 3 - pad;
    size_t o = 0;
    /* Validate everything before reporting TOO_LARGE, so that code means "valid but long". */
    for (size_t i = 0; i < n; i += 4) {
        int last = i + 4 == n;
        int c0 = sextet(s[i]), c1 = sextet(s[i + 1]);
        int c2 = last && pad == 2 ? 0 : sextet(s[i + 2]);
        int c3 = last && pad >= 1 ? 0 : sextet(s[i + 3]);
        if (c0 < 0 || c1 < 0 || c2 < 0 || c3 < 0)
            return CPNS_ERR_MALFORMED;
        /* non-zero pad bits would give a second spelling of the same bytes */
        if (last && pad == 2 && (c1 & 0x0f))
            return CPNS_ERR_MALFORMED;
        if (last && pad == 1 && (c2 & 0x03))
            return CPNS_ERR_MALFORMED;
        uint32_t v = (uint32_t)c0 << 18 | (uint32_t)c1 << 12 | (uint32_t)c2 << 6 | (uint32_t)c3;
        uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        size_t nb = last ? 3 - pad : 3;
        for (size_t k = 0; k < nb; k++, o++)
            if (o < cap)
                out[o] = b[k];
    }
    if (out_len)
        *out_len = total;
    return total > cap ? CPNS_ERR_TOO_LARGE : 0;
}
