/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Capped exponential backoff with jitter, and the clock (backoff.h).
 */
#include <time.h>

#include "backoff.h"
#include "cpns/crypto.h"

void backoff_init(backoff *b, int64_t min_ms, int64_t max_ms)
{
    b->min_ms = min_ms;
    b->max_ms = max_ms;
    b->next_ms = min_ms;
}

int64_t backoff_next(backoff *b)
{
    int64_t delay = b->next_ms;
    uint8_t r[2] = {0, 0};
    /* Jitter is only spread, so a failing CSPRNG just means no jitter. */
    if (cpns_random(NULL, r, sizeof r) == 0)
        delay -= delay / 4 * ((int64_t)r[0] << 8 | r[1]) / 65536;
    b->next_ms = b->next_ms > b->max_ms / 2 ? b->max_ms : b->next_ms * 2;
    return delay;
}

void backoff_reset(backoff *b)
{
    b->next_ms = b->min_ms;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t clock_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t clock_wall_cb(void *arg)
{
    (void)arg;
    return clock_ms(CLOCK_REALTIME);
}

struct timeval ms_to_timeval(int64_t ms)
{
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}
