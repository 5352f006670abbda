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

static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
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
