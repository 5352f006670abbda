/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reconnect pacing and the clock for the programs that dial out (cpns-gw
 * dials the server, cpns-pne dials its GW): capped exponential backoff with
 * jitter, so that a thousand PNEs behind a restarted GW do not all reconnect
 * in the same millisecond; and the clocks: monotonic for every interval (the
 * engines' now_ms), wall for what the protocol dates.
 */
#ifndef CPNS_BACKOFF_H
#define CPNS_BACKOFF_H

#include <stdint.h>
#include <sys/time.h>

typedef struct backoff {
    int64_t min_ms;
    int64_t max_ms;
    int64_t next_ms; /* the delay before jitter of the next retry */
} backoff;

/* Starts at min_ms, doubles on every retry, never above max_ms. */
void backoff_init(backoff *b, int64_t min_ms, int64_t max_ms);

/* The delay before the next retry (next_ms minus up to 25 % jitter), then doubles next_ms. */
int64_t backoff_next(backoff *b);

/* After a success: the next retry waits min_ms again. */
void backoff_reset(backoff *b);

/* Unix time in milliseconds (CLOCK_REALTIME): for the protocol's Time and logs only. */
int64_t clock_wall_ms(void);

/*
 * Milliseconds on CLOCK_MONOTONIC (any epoch): the engines' now_ms and every
 * interval (timers, backoff, deadlines), so that a clock stepped by NTP
 * neither fires nor stalls them.
 */
int64_t clock_mono_ms(void);

/* cpns_clock_fn for the engines' wall_clock: clock_wall_ms(), arg unused. */
int64_t clock_wall_cb(void *arg);

/* Milliseconds as a struct timeval for evtimer_add (negative counts as 0). */
struct timeval ms_to_timeval(int64_t ms);

#endif
