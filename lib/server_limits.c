/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flood control of the server engine: a token bucket per GW connection caps
 * the PNERegistrationRequests it may pass (cpns_server_config.reg_rate_per_s
 * and reg_burst). A registration costs the server an HMAC, a replay-cache
 * entry and a durable write, and a GW (or whoever holds its certificate)
 * could otherwise relay an unbounded stream of them; with the bucket, one
 * GW cannot starve the others or fill the nonce table faster than the rate.
 *
 * A request over the limit is answered Return 0 before its Proof is checked:
 * the PNE treats 0 as "other failure" and retries at its registration timer,
 * so an honest PNE behind a busy GW registers a little later, not never.
 * The bucket lives in the connection, so a GW that reconnects starts full;
 * reconnecting costs it a TLS handshake and a PNGWRegistration.
 */
#include "server_internal.h"

#define DEFAULT_REG_RATE_PER_S 1000u
#define DEFAULT_REG_BURST 10000u

int srv_limits_admit_registration(cpns_server *s, srv_conn *c)
{
    uint64_t rate = s->cfg.reg_rate_per_s ? s->cfg.reg_rate_per_s : DEFAULT_REG_RATE_PER_S;
    uint64_t burst = s->cfg.reg_burst ? s->cfg.reg_burst : DEFAULT_REG_BURST;
    uint64_t cap = burst * 1000;
    srv_bucket *b = &c->reg_bucket;
    if (!b->used) {
        b->milli_tokens = cap;
    } else if (s->now > b->last_ms) {
        /* rate tokens a second = rate thousandths a millisecond */
        uint64_t elapsed = (uint64_t)(s->now - b->last_ms);
        uint64_t room = cap - b->milli_tokens;
        b->milli_tokens += elapsed >= room / rate + 1 ? room : elapsed * rate;
    }
    /* A clock that steps back refills nothing until it passes last_ms again. */
    if (s->now > b->last_ms || !b->used)
        b->last_ms = s->now;
    b->used = 1;
    if (b->milli_tokens < 1000) {
        s->stats.registrations_limited++;
        return 0;
    }
    b->milli_tokens -= 1000;
    return 1;
}
