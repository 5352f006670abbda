/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One outgoing connection kept up: what cpns-gw does with the server (a list
 * of servers, active/standby) and cpns-pne with its GW. It dials, reports the
 * connection's life to the daemon through callbacks, and after a failure
 * dials again: the next address of the list at once, and only after a whole
 * pass over the list failed (with one address, every failure) after a capped
 * exponential backoff with jitter (backoff.h), reset once the daemon says the
 * session is up (dialer_settled). A timeout bounds each attempt: until the
 * connection opens, or until the daemon settles it (a registration).
 *
 * The log lines name the peer ("server", "GW") and its address:
 *   "connecting to the P at A" (debug), "cannot connect to the P at A: why",
 *   "P connection lost (A): why", "P connection to A closed: why",
 *   "not registered with the P at A after N s",
 *   "connecting to the P again in S s", "moving to the next P: A (i of n)",
 *   "all n Ps failed: connecting to the P again in S s, at A (i of n)".
 * Tests and docs/OPERATIONS.md read them.
 */
#ifndef CPNS_COMMON_DIALER_H
#define CPNS_COMMON_DIALER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

typedef struct dialer dialer;

/* What ends an attempt's timeout. */
typedef enum dialer_timeout {
    DIALER_UNTIL_OPEN,    /* the connection opens ("no connection within N s") */
    DIALER_UNTIL_SETTLED, /* dialer_settled() ("not registered ... after N s") */
} dialer_timeout;

typedef struct dialer_config {
    struct event_base *base;
    const char *const *addrs; /* HOST:PORT each, tried in turn; kept by the caller */
    size_t n_addrs;           /* at least 1 */
    /* NULL: plain TCP. Read at each dial, so a context changed in place applies next time. */
    SSL_CTX *tls;
    const char *peer; /* "server", "GW": for the log */
    int64_t retry_min_ms, retry_max_ms;
    int64_t timeout_ms;
    dialer_timeout timeout_until;
    int stall_timeout_s; /* net_conn_set_stall_timeout; 0: the net layer's default */
    /* The connection is open (TCP, and TLS when tls is set). */
    void (*on_open)(void *arg);
    /* One frame from the peer, as net.h's on_frame. */
    void (*on_frame)(void *arg, const uint8_t *data, size_t len);
    /*
     * The connection is gone (closed by the peer or the dialer, or never
     * opened); was_open says whether on_open had come. The next attempt is
     * scheduled once this returns.
     */
    void (*on_down)(void *arg, bool was_open);
    /* Optional: the peer took what was queued down to drain_low bytes (net_conn_set_on_drain). */
    void (*on_drain)(void *arg);
    size_t drain_low;
    void *arg;
} dialer_config;

/* NULL when out of memory. Nothing is dialed before dialer_start(). */
dialer *dialer_new(const dialer_config *cfg);
/* Closes the connection (no callback follows) and frees. NULL is fine. */
void dialer_free(dialer *d);

/* Dials the current address now. */
void dialer_start(dialer *d);
/* The session is up (a registration): the backoff and the pass start again, the timeout stops. */
void dialer_settled(dialer *d);
/* Gives up the connection (if any) for `reason`, calls on_down, and schedules the next attempt. */
void dialer_lost(dialer *d, const char *reason);

/* The connection once open, else NULL. */
net_conn *dialer_conn(const dialer *d);
/* Bytes queued on the connection, open or still connecting (0 without one). */
size_t dialer_pending(const dialer *d);
/* The address dialed or connected, and its index in the list. */
const char *dialer_addr(const dialer *d);
size_t dialer_index(const dialer *d);

#endif
