/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The codec micro-benchmark of `make bench`: encode + decode of a
 * SGroupKeyDeliveryRequest with the cpns/1 codec (expat underneath, every
 * rule of PROTOCOL.md section 3 checked) against libxml2 merely parsing the
 * same bytes into a tree (xmlReadMemory, no network, no entity expansion),
 * both in this run, and the same encode + decode on one reused
 * cpns_msg_decoder (what the engines do). Prints a summary on stderr and one line
 * BENCH {"name":"codec",...} on stdout.
 *   cpns-bench-codec [SECONDS]      (per measurement, default 1)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>

#include "cpns/cpns.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct state {
    cpns_msg_decoder *decoder;
    cpns_msg m, back;
    uint8_t buf[2048];
    size_t len;
} state;

static int ours_once(state *s)
{
    size_t len;
    if (cpns_msg_encode(&s->m, s->buf, sizeof s->buf, &len) != 0)
        return -1;
    return cpns_msg_decode(s->buf, len, &s->back);
}

static int reused_once(state *s)
{
    size_t len;
    if (cpns_msg_encode(&s->m, s->buf, sizeof s->buf, &len) != 0)
        return -1;
    return cpns_msg_decoder_decode(s->decoder, s->buf, len, &s->back);
}

static int libxml2_once(state *s)
{
    xmlDocPtr doc = xmlReadMemory((const char *)s->buf, (int)s->len, NULL, NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOBLANKS);
    if (!doc)
        return -1;
    xmlFreeDoc(doc);
    return 0;
}

static double rate(int (*fn)(state *), state *s, double seconds)
{
    unsigned long n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 256; i++)
            if (fn(s) != 0) {
                fprintf(stderr, "cpns-bench-codec: an operation failed\n");
                exit(1);
            }
        n += 256;
    } while ((t = now_s() - t0) < seconds);
    return (double)n / t;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    if (seconds <= 0)
        seconds = 1.0;
    state s;
    uint8_t egk[CPNS_EGK_LEN];
    for (size_t i = 0; i < sizeof egk; i++)
        egk[i] = (uint8_t)(i * 7 + 1);
    egk[0] = CPNS_EGK_FORMAT;
    cpns_msg_init(&s.m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, 4611686018427387904ull);
    if (cpns_msg_set_id(&s.m, CPNS_F_SGID, "sg-family") ||
        cpns_msg_set_id(&s.m, CPNS_F_PNEID, "pne-000042") ||
        cpns_msg_set_blob(&s.m, CPNS_F_EGK, egk, sizeof egk))
        return 1;
    s.m.KeyVersion = 1;
    s.m.present |= CPNS_F_KEYVERSION | CPNS_F_GROUPKEYINFO;
    if (cpns_msg_encode(&s.m, s.buf, sizeof s.buf, &s.len) != 0)
        return 1;
    if (cpns_msg_decoder_new(&s.decoder) != 0)
        return 1;
    xmlInitParser();
    rate(ours_once, &s, seconds / 10);
    rate(libxml2_once, &s, seconds / 10);
    double ours = rate(ours_once, &s, seconds);
    rate(reused_once, &s, seconds / 10);
    double reused = rate(reused_once, &s, seconds);
    cpns_msg_decoder_free(s.decoder);
    /* ours_once rewrote buf with the same bytes: libxml2 parses what we encode */
    double theirs = rate(libxml2_once, &s, seconds);
    xmlCleanupParser();
    fprintf(stderr,
            "codec: SGroupKeyDeliveryRequest (%zu bytes) encode+decode %.0f/s (reused "
            "decoder %.0f/s), libxml2 parse %.0f/s, ratio %.2f\n",
            s.len, ours, reused, theirs, ours / theirs);
    printf("BENCH {\"name\":\"codec\",\"msgs_per_s\":%.0f,\"reused_decoder_msgs_per_s\":%.0f,"
           "\"libxml2_msgs_per_s\":%.0f,\"ratio\":%.3f,\"bytes\":%zu}\n",
           ours, reused, theirs, ours / theirs, s.len);
    return 0;
}
