/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PN GW engine (PROTOCOL.md 5.2, CR 7.8.6.2), sans-I/O.
 *
 * The GW routes and nothing else. It forwards SGroupKeyDeliveryRequest from
 * the server to the PNE named by GroupKeyInfo/@PNEID (7.8.6.2-1) and
 * SGroupKeyDeliveryResponse from the PNE to the server (7.8.6.2-2), byte for
 * byte: it reads frames with the peek only (cpns_msg_decoder_peek, on one
 * decoder the engine owns, created on the first frame), never base64-decodes
 * EncryptedGroupKey, and queues the very bytes it received. So it never holds
 * a Group Key in clear and cannot alter what it relays.
 *
 * Its state is small:
 *  - links:  link handle -> gw_link; a link speaks for at most one PNEID, the
 *            one of its first PNERegistrationRequest, for its whole life;
 *  - claims: PNEID -> the link whose PNERegistrationRequest for it is in
 *            flight, with that request's TransactionID (where the
 *            PNERegistrationResponse goes back to); at most one per PNEID;
 *  - routes: PNEID -> the link of the PNE's last successful registration
 *            (where SGroupKeyDeliveryRequest goes).
 * Map keys point at the PNEID inside the gw_link, which never changes.
 *
 * Anyone on the PN can open a link and send a registration for any PNEID
 * with a bogus Proof. Before issue #10 (finding 1) such a registration took
 * the PNEID's claim over, so the server's answer to the real PNE went to the
 * attacker's link and made it the route. Now a response goes only to the
 * link whose request it answers (PNEID and TransactionID), a claim in flight
 * is never handed to another link (that link is answered Return 0 and its
 * PNE retries at its timer: an attacker can delay a registration, not steal
 * it), and claims end with their response, their link, the server
 * connection, or CPNS_GW_CLAIM_TIMEOUT_MS. The timeout is checked lazily, on
 * every call that passes now_ms: nothing else depends on a claim's end, so
 * the engine needs no timer of its own.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cpns/gw.h"
#include "internal.h"

/* An intrusive doubly linked list: a head is a node whose next/prev point at itself. */
typedef struct gw_node {
    struct gw_node *next, *prev;
} gw_node;

typedef struct gw_link {
    uint64_t link;
    char PNEID[CPNS_ID_MAX + 1]; /* "" until the link sends a PNERegistrationRequest */
    int superseded; /* another link registered the same PNEID after this one: ignore it */
    /* The claim: this link's PNERegistrationRequest in flight, if claiming. */
    int claiming;
    uint64_t claim_tid;
    int64_t claim_expiry;
    gw_node claim_node; /* in gw->claim_fifo, oldest first */
    /* Token buckets, in thousandths of a frame, refilled from now_ms. */
    int64_t frame_tokens, reg_tokens, refilled_ms;
    /*
     * Delivery requests forwarded to this link: each lets one frame (its
     * response) through beyond the rate, so a PNE in many SGs answering a
     * catch-up or a rekey of all of them is never taken for a flood.
     */
    uint32_t credit;
    int closing;        /* queued for cpns_gw_pop_close() or handed out: frames dropped */
    gw_node close_node; /* in gw->close_queue until handed out */
} gw_link;

#define LINK_OF(node, member) ((gw_link *)((char *)(node)-offsetof(gw_link, member)))

struct cpns_gw {
    char PNGWID[CPNS_ID_MAX + 1];
    char PNID[CPNS_ID_MAX + 1];
    size_t max_pnes;
    cpns_rand_fn rand;
    void *rand_arg;
    cpns_logger log;

    cpns_gw_state state;
    int last_return;
    uint64_t registration_tid; /* of the PNGWRegistrationRequest in flight, 0: none */
    cpns_map links;            /* uint64 link -> gw_link */
    cpns_map claims;           /* PNEID -> gw_link, claiming */
    cpns_map routes;           /* PNEID -> gw_link */
    gw_node claim_fifo;        /* claiming links by claim time, so by expiry */
    gw_node close_queue;       /* links for cpns_gw_pop_close() */
    cpns_outq outq;
    cpns_msg_decoder *decoder; /* NULL until the first frame */
    cpns_gw_stats stats;
};

static void list_init(gw_node *head)
{
    head->next = head->prev = head;
}

static int list_empty(const gw_node *head)
{
    return head->next == head;
}

static void list_push(gw_node *head, gw_node *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static void list_unlink(gw_node *n)
{
    if (!n->next)
        return; /* never linked */
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

static const char *state_name(cpns_gw_state s)
{
    switch (s) {
    case CPNS_GW_OFFLINE:
        return "OFFLINE";
    case CPNS_GW_REGISTERING:
        return "REGISTERING";
    case CPNS_GW_ONLINE:
        return "ONLINE";
    case CPNS_GW_REFUSED:
        return "REFUSED";
    }
    return "?";
}

static void set_state(cpns_gw *gw, cpns_gw_state s, uint64_t TransactionID)
{
    if (gw->state == s)
        return;
    cpns_log(&gw->log, CPNS_LOG_INFO, NULL, NULL, TransactionID, "state %s -> %s",
             state_name(gw->state), state_name(s));
    gw->state = s;
}

int cpns_gw_new(cpns_gw **out, const cpns_gw_config *cfg)
{
    if (!out || !cfg || !cfg->PNGWID || !cpns_id_valid(cfg->PNGWID) || !cfg->PNID ||
        !cpns_id_valid(cfg->PNID))
        return CPNS_ERR_INVALID_ARG;
    cpns_gw *gw = cpns_calloc(1, sizeof *gw);
    if (!gw)
        return CPNS_ERR_NOMEM;
    strcpy(gw->PNGWID, cfg->PNGWID);
    strcpy(gw->PNID, cfg->PNID);
    gw->max_pnes = cfg->max_pnes;
    gw->rand = cfg->rand;
    gw->rand_arg = cfg->rand_arg;
    gw->log = (cpns_logger){cfg->log, cfg->log_arg, "gw", gw->PNGWID, !cfg->log_debug};
    gw->state = CPNS_GW_OFFLINE;
    gw->last_return = -1;
    list_init(&gw->claim_fifo);
    list_init(&gw->close_queue);
    *out = gw;
    return 0;
}

void cpns_gw_free(cpns_gw *gw)
{
    if (!gw)
        return;
    for (cpns_map_iter it = cpns_map_begin(&gw->links); cpns_map_next(&it);)
        cpns_free(it.val);
    cpns_map_clear(&gw->links);
    cpns_map_clear(&gw->claims);
    cpns_map_clear(&gw->routes);
    cpns_outq_clear(&gw->outq);
    cpns_msg_decoder_free(gw->decoder);
    cpns_free(gw);
}

/* cpns_msg_peek on the engine's own parser: one per engine, reset per frame. */
static int gw_peek(cpns_gw *gw, const uint8_t *data, size_t len, cpns_msg *m)
{
    if (!gw->decoder) {
        int rv = cpns_msg_decoder_new(&gw->decoder);
        if (rv)
            return rv;
    }
    return cpns_msg_decoder_peek(gw->decoder, data, len, m);
}

cpns_gw_state cpns_gw_get_state(const cpns_gw *gw)
{
    return gw->state;
}

int cpns_gw_last_return(const cpns_gw *gw)
{
    return gw->last_return;
}

size_t cpns_gw_attached(const cpns_gw *gw)
{
    return gw->routes.count;
}

void cpns_gw_get_stats(const cpns_gw *gw, cpns_gw_stats *out)
{
    *out = gw->stats;
}

void cpns_gw_set_log_debug(cpns_gw *gw, bool on)
{
    if (gw)
        gw->log.no_debug = !on;
}

int cpns_gw_link_routed(const cpns_gw *gw, uint64_t link)
{
    const gw_link *l = cpns_map_get_u64(&gw->links, link);
    return l && l->PNEID[0] && cpns_map_get(&gw->routes, l->PNEID) == l;
}

int cpns_gw_pop(cpns_gw *gw, cpns_out *out)
{
    return cpns_outq_pop(&gw->outq, out);
}

int cpns_gw_pop_close(cpns_gw *gw, uint64_t *link)
{
    if (list_empty(&gw->close_queue))
        return 0;
    gw_link *l = LINK_OF(gw->close_queue.next, close_node);
    list_unlink(&l->close_node);
    *link = l->link;
    return 1;
}

/* --- claims: registrations in flight --- */

static void claim_drop(cpns_gw *gw, gw_link *l)
{
    if (!l->claiming)
        return;
    cpns_map_remove(&gw->claims, l->PNEID);
    list_unlink(&l->claim_node);
    l->claiming = 0;
    l->claim_tid = 0;
}

/* l (bound to its PNEID) claims it for the request tid; 0 or CPNS_ERR_NOMEM. */
static int claim_set(cpns_gw *gw, gw_link *l, uint64_t tid, int64_t now_ms)
{
    if (!l->claiming) {
        int rv = cpns_map_put(&gw->claims, l->PNEID, l);
        if (rv != 0)
            return rv;
        l->claiming = 1;
    }
    list_unlink(&l->claim_node); /* a resend starts the timeout again */
    list_push(&gw->claim_fifo, &l->claim_node);
    l->claim_tid = tid;
    l->claim_expiry = now_ms + CPNS_GW_CLAIM_TIMEOUT_MS;
    return 0;
}

/* Ends the claims whose timeout passed (the oldest first: they expire in that order). */
static void expire_claims(cpns_gw *gw, int64_t now_ms)
{
    while (!list_empty(&gw->claim_fifo)) {
        gw_link *l = LINK_OF(gw->claim_fifo.next, claim_node);
        if (now_ms < l->claim_expiry)
            return;
        cpns_log(&gw->log, CPNS_LOG_INFO, NULL, l->PNEID, l->claim_tid,
                 "no PNERegistrationResponse for link %llu in time: registration forgotten",
                 (unsigned long long)l->link);
        claim_drop(gw, l);
    }
}

static void drop_all_claims(cpns_gw *gw)
{
    while (!list_empty(&gw->claim_fifo))
        claim_drop(gw, LINK_OF(gw->claim_fifo.next, claim_node));
}

/* --- per-link limits --- */

static void refill(gw_link *l, int64_t now_ms)
{
    int64_t dt = now_ms - l->refilled_ms;
    l->refilled_ms = now_ms;
    if (dt <= 0)
        return;
    if (dt > 1000000)
        dt = 1000000; /* full buckets by then; keeps the products small */
    l->frame_tokens += dt * CPNS_GW_LINK_FRAME_PER_S;
    if (l->frame_tokens > CPNS_GW_LINK_FRAME_BURST * 1000)
        l->frame_tokens = CPNS_GW_LINK_FRAME_BURST * 1000;
    l->reg_tokens += dt * CPNS_GW_LINK_REG_PER_S;
    if (l->reg_tokens > CPNS_GW_LINK_REG_BURST * 1000)
        l->reg_tokens = CPNS_GW_LINK_REG_BURST * 1000;
}

static int take_token(int64_t *tokens)
{
    if (*tokens < 1000)
        return 0;
    *tokens -= 1000;
    return 1;
}

/* The link broke a limit: its frame is dropped, and the glue is asked to close it. */
static void abuse(cpns_gw *gw, gw_link *l, uint64_t tid, const char *why)
{
    cpns_log(&gw->log, CPNS_LOG_WARN, NULL, l->PNEID[0] ? l->PNEID : NULL, tid,
             "link %llu: %s: frame dropped, link to be closed", (unsigned long long)l->link, why);
    if (!l->closing) {
        l->closing = 1;
        list_push(&gw->close_queue, &l->close_node);
        gw->stats.links_abusive++;
    }
}

static int send_status(cpns_gw *gw, const char *PNEID, cpns_pne_status Status)
{
    cpns_msg m;
    uint64_t tid;
    int rv = cpns_random_tid(gw->rand, gw->rand_arg, &tid);
    if (rv != 0)
        return rv;
    cpns_msg_init(&m, CPNS_MSG_PNE_STATUS_NOTIFICATION, tid);
    rv = cpns_msg_set_id(&m, CPNS_F_PNEID, PNEID);
    if (rv != 0)
        return rv;
    m.Status = Status;
    m.present |= CPNS_F_STATUS;
    rv = cpns_outq_push_msg(&gw->outq, CPNS_GW_LINK_SERVER, &m);
    if (rv == 0)
        cpns_log(&gw->log, CPNS_LOG_INFO, NULL, PNEID, tid, "PNEStatusNotification Status=%s",
                 Status == CPNS_STATUS_ATTACHED ? "attached" : "detached");
    return rv;
}

int cpns_gw_server_up(cpns_gw *gw, int64_t now_ms)
{
    expire_claims(gw, now_ms);
    cpns_msg m;
    uint64_t tid;
    int rv = cpns_random_tid(gw->rand, gw->rand_arg, &tid);
    if (rv != 0)
        return rv;
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, tid);
    rv = cpns_msg_set_id(&m, CPNS_F_PNGWID, gw->PNGWID);
    if (rv == 0)
        rv = cpns_msg_set_id(&m, CPNS_F_PNID, gw->PNID);
    if (rv == 0)
        rv = cpns_outq_push_msg(&gw->outq, CPNS_GW_LINK_SERVER, &m);
    if (rv != 0)
        return rv;
    gw->registration_tid = tid;
    set_state(gw, CPNS_GW_REGISTERING, tid);
    cpns_log(&gw->log, CPNS_LOG_INFO, NULL, NULL, tid, "PNGWRegistrationRequest PNID=%s", gw->PNID);
    return 0;
}

int cpns_gw_server_down(cpns_gw *gw, int64_t now_ms)
{
    (void)now_ms;
    cpns_outq_drop_link(&gw->outq, CPNS_GW_LINK_SERVER);
    drop_all_claims(gw); /* the server will not answer what it was sent on that connection */
    gw->registration_tid = 0;
    set_state(gw, CPNS_GW_OFFLINE, 0);
    return 0;
}

/* After a successful GW registration: tell the server which PNEs are behind us. */
static int announce_attached(cpns_gw *gw)
{
    void **vals;
    size_t n;
    int rv = cpns_map_sorted(&gw->routes, &vals, &n);
    if (rv != 0)
        return rv;
    for (size_t i = 0; i < n && rv == 0; i++)
        rv = send_status(gw, ((gw_link *)vals[i])->PNEID, CPNS_STATUS_ATTACHED);
    cpns_free(vals);
    return rv;
}

static int on_gw_registration_response(cpns_gw *gw, const cpns_msg *m)
{
    uint64_t tid = m->TransactionID;
    if (gw->state != CPNS_GW_REGISTERING || tid != gw->registration_tid ||
        !(m->present & CPNS_F_RETURN)) {
        cpns_log(&gw->log, CPNS_LOG_WARN, NULL, NULL, tid,
                 "unexpected PNGWRegistrationResponse dropped");
        return 0;
    }
    gw->registration_tid = 0;
    gw->last_return = (int)m->Return;
    if (m->Return != CPNS_RETURN_SUCCESS) {
        cpns_log(&gw->log, CPNS_LOG_ERROR, NULL, NULL, tid, "the server refused this GW, Return=%u",
                 (unsigned)m->Return);
        set_state(gw, CPNS_GW_REFUSED, tid);
        return 0;
    }
    set_state(gw, CPNS_GW_ONLINE, tid);
    return announce_attached(gw);
}

/* Counts a frame forwarded when rv (of its push) is 0; returns rv. */
static int forwarded(uint64_t *counter, int rv)
{
    if (rv == 0)
        (*counter)++;
    return rv;
}

/*
 * Answers a SGroupKeyDeliveryRequest on the PNE's behalf (Return 6 or 4):
 * same TransactionID, the GW's own PNID, the echo of what the peek could read.
 */
static int answer_delivery(cpns_gw *gw, const cpns_msg *req, uint32_t Return)
{
    cpns_msg m;
    int rv = cpns_msg_delivery_response(&m, req, Return, gw->PNID, req->PNEID);
    if (rv != 0)
        return rv;
    rv = cpns_outq_push_msg(&gw->outq, CPNS_GW_LINK_SERVER, &m);
    if (rv == 0 && Return == CPNS_RETURN_UNREACHABLE)
        gw->stats.answered_unreachable++;
    else if (rv == 0)
        gw->stats.answered_malformed++;
    return rv;
}

/* 7.8.6.2-1 */
static int on_delivery_request(cpns_gw *gw, const cpns_msg *m, int peeked, const uint8_t *data,
                               size_t len)
{
    uint64_t tid = m->TransactionID;
    const char *SGID = cpns_msg_id(m, CPNS_F_SGID);
    const char *PNEID = cpns_msg_id(m, CPNS_F_PNEID);
    if (!(m->present & CPNS_F_TID) || !PNEID) {
        /* The response needs both; without them there is nobody to answer for. */
        cpns_log(&gw->log, CPNS_LOG_WARN, SGID, PNEID, tid,
                 "SGroupKeyDeliveryRequest without TransactionID or PNEID dropped");
        return 0;
    }
    if (!peeked) {
        cpns_log(&gw->log, CPNS_LOG_WARN, SGID, PNEID, tid,
                 "malformed SGroupKeyDeliveryRequest: answering Return 4");
        return answer_delivery(gw, m, CPNS_RETURN_MALFORMED);
    }
    gw_link *l = cpns_map_get(&gw->routes, PNEID);
    if (!l) {
        cpns_log(&gw->log, CPNS_LOG_INFO, SGID, PNEID, tid, "PNE not attached: answering Return 6");
        return answer_delivery(gw, m, CPNS_RETURN_UNREACHABLE);
    }
    cpns_log(&gw->log, CPNS_LOG_DEBUG, SGID, PNEID, tid,
             "SGroupKeyDeliveryRequest KeyVersion=%u -> link %llu", (unsigned)m->KeyVersion,
             (unsigned long long)l->link);
    if (l->credit < CPNS_GW_LINK_CREDIT_MAX)
        l->credit++;
    return forwarded(&gw->stats.frames_to_pnes, cpns_outq_push(&gw->outq, l->link, data, len));
}

static void supersede(cpns_gw *gw, gw_link *old, const gw_link *l)
{
    old->superseded = 1;
    cpns_log(&gw->log, CPNS_LOG_INFO, NULL, old->PNEID, 0,
             "link %llu replaced by link %llu: its frames are ignored from now on",
             (unsigned long long)old->link, (unsigned long long)l->link);
}

static int on_pne_registration_response(cpns_gw *gw, const cpns_msg *m, const uint8_t *data,
                                        size_t len)
{
    uint64_t tid = m->TransactionID;
    const char *PNEID = cpns_msg_id(m, CPNS_F_PNEID);
    gw_link *l = PNEID ? cpns_map_get(&gw->claims, PNEID) : NULL;
    if (!l || !(m->present & CPNS_F_TID) || tid != l->claim_tid) {
        /* Late (its claim ended), or an answer to a request this GW did not forward. */
        cpns_log(&gw->log, CPNS_LOG_INFO, NULL, PNEID, tid,
                 "PNERegistrationResponse that answers no registration in flight: dropped");
        return 0;
    }
    claim_drop(gw, l);
    int rv = forwarded(&gw->stats.frames_to_pnes, cpns_outq_push(&gw->outq, l->link, data, len));
    if (rv != 0)
        return rv;
    if (!(m->present & CPNS_F_RETURN) || m->Return != CPNS_RETURN_SUCCESS) {
        cpns_log(&gw->log, CPNS_LOG_INFO, NULL, l->PNEID, tid,
                 "PNERegistrationResponse Return=%u -> link %llu, no route", (unsigned)m->Return,
                 (unsigned long long)l->link);
        return 0;
    }
    gw_link *old = cpns_map_get(&gw->routes, l->PNEID);
    if (old != l) {
        /* Remove first: the map keeps its key pointer, which lives in the old link. */
        cpns_map_remove(&gw->routes, l->PNEID);
        rv = cpns_map_put(&gw->routes, l->PNEID, l);
        if (rv != 0)
            return rv;
        if (old)
            supersede(gw, old, l);
    }
    cpns_log(&gw->log, CPNS_LOG_DEBUG, NULL, l->PNEID, tid,
             "route set: PNEID reached through link %llu", (unsigned long long)l->link);
    return 0;
}

int cpns_gw_recv_server(cpns_gw *gw, const uint8_t *data, size_t len, int64_t now_ms)
{
    expire_claims(gw, now_ms);
    cpns_msg m;
    memset(&m, 0, sizeof m);
    int rv = gw_peek(gw, data, len, &m);
    if (rv == CPNS_ERR_NOMEM)
        return rv;
    int peeked = rv == 0;
    uint64_t tid = (m.present & CPNS_F_TID) ? m.TransactionID : 0;

    if (m.kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST)
        return on_delivery_request(gw, &m, peeked, data, len);
    if (!peeked) {
        cpns_log(&gw->log, CPNS_LOG_WARN, NULL, NULL, tid,
                 "malformed frame from the server dropped");
        return 0;
    }
    switch (m.kind) {
    case CPNS_MSG_PNE_REGISTRATION_RESPONSE:
        return on_pne_registration_response(gw, &m, data, len);
    case CPNS_MSG_PNGW_REGISTRATION_RESPONSE:
        return on_gw_registration_response(gw, &m);
    default:
        cpns_log(&gw->log, CPNS_LOG_WARN, NULL, NULL, tid, "%s from the server dropped",
                 cpns_msg_kind_name(m.kind));
        return 0;
    }
}

int cpns_gw_link_open(cpns_gw *gw, uint64_t link, int64_t now_ms)
{
    expire_claims(gw, now_ms);
    if (link == CPNS_GW_LINK_SERVER)
        return CPNS_ERR_INVALID_ARG;
    if (cpns_map_get_u64(&gw->links, link))
        return CPNS_ERR_EXISTS;
    gw_link *l = cpns_calloc(1, sizeof *l);
    if (!l)
        return CPNS_ERR_NOMEM;
    l->link = link;
    l->frame_tokens = CPNS_GW_LINK_FRAME_BURST * 1000;
    l->reg_tokens = CPNS_GW_LINK_REG_BURST * 1000;
    l->refilled_ms = now_ms;
    int rv = cpns_map_put_u64(&gw->links, link, l);
    if (rv != 0) {
        cpns_free(l);
        return rv;
    }
    cpns_log(&gw->log, CPNS_LOG_DEBUG, NULL, NULL, 0, "link %llu open", (unsigned long long)link);
    return 0;
}

/*
 * The number of PNEs this GW speaks for: routed PNEIDs, and PNEIDs with a
 * registration in flight (so that a flood of registrations is bounded too).
 * A claim ends with its response, so a failed registration holds no slot.
 */
static size_t pnes_in_use(const cpns_gw *gw)
{
    size_t n = gw->routes.count;
    for (cpns_map_iter it = cpns_map_begin(&gw->claims); cpns_map_next(&it);)
        if (!cpns_map_get(&gw->routes, it.key))
            n++;
    return n;
}

/* The GW answers a registration itself with Return 0: the PNE retries at its timer. */
static int refuse_registration(cpns_gw *gw, gw_link *l, const cpns_msg *req, const char *why)
{
    cpns_msg m;
    cpns_log(&gw->log, CPNS_LOG_WARN, NULL, req->PNEID, req->TransactionID,
             "%s: registration on link %llu refused, Return 0", why, (unsigned long long)l->link);
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, req->TransactionID);
    m.Return = CPNS_RETURN_OTHER;
    m.present |= CPNS_F_RETURN;
    int rv = cpns_msg_set_id(&m, CPNS_F_PNEID, req->PNEID);
    if (rv == 0)
        rv = cpns_msg_set_id(&m, CPNS_F_PNID, gw->PNID);
    if (rv == 0)
        rv = cpns_outq_push_msg(&gw->outq, l->link, &m);
    if (rv == 0)
        gw->stats.registrations_refused++;
    return rv;
}

static int on_pne_registration_request(cpns_gw *gw, gw_link *l, const cpns_msg *m,
                                       const uint8_t *data, size_t len, int64_t now_ms)
{
    uint64_t tid = m->TransactionID;
    if (l->PNEID[0] && strcmp(l->PNEID, m->PNEID) != 0) {
        cpns_log(&gw->log, CPNS_LOG_WARN, NULL, m->PNEID, tid,
                 "link %llu speaks for PNEID %s: registration for another PNEID dropped",
                 (unsigned long long)l->link, l->PNEID);
        return 0;
    }
    gw_link *claimer = cpns_map_get(&gw->claims, m->PNEID);
    if (claimer && claimer != l) {
        /*
         * Another link's registration for this PNEID is in flight: its answer
         * is that link's. Answering Return 0 (rather than dropping) tells the
         * PNE at once; it retries at its timer, by when the claim has ended.
         */
        char why[64 + CPNS_ID_MAX];
        snprintf(why, sizeof why, "a registration is in flight on link %llu",
                 (unsigned long long)claimer->link);
        return refuse_registration(gw, l, m, why);
    }
    if (gw->max_pnes && !claimer && !cpns_map_get(&gw->routes, m->PNEID) &&
        pnes_in_use(gw) >= gw->max_pnes)
        return refuse_registration(gw, l, m, "max_pnes reached");

    if (!l->PNEID[0])
        strcpy(l->PNEID, m->PNEID);
    if (gw->state != CPNS_GW_ONLINE) {
        cpns_log(&gw->log, CPNS_LOG_INFO, NULL, l->PNEID, tid,
                 "PNERegistrationRequest while %s: dropped (the PNE retries)",
                 state_name(gw->state));
        return 0;
    }
    int rv = claim_set(gw, l, tid, now_ms);
    if (rv != 0)
        return rv;
    cpns_log(&gw->log, CPNS_LOG_DEBUG, NULL, l->PNEID, tid,
             "PNERegistrationRequest link %llu -> server", (unsigned long long)l->link);
    rv = forwarded(&gw->stats.frames_to_server,
                   cpns_outq_push(&gw->outq, CPNS_GW_LINK_SERVER, data, len));
    if (rv != 0)
        claim_drop(gw, l); /* not sent: no answer will come */
    return rv;
}

/* 7.8.6.2-2 */
static int on_delivery_response(cpns_gw *gw, gw_link *l, const cpns_msg *m, const uint8_t *data,
                                size_t len)
{
    uint64_t tid = m->TransactionID;
    const char *SGID = cpns_msg_id(m, CPNS_F_SGID);
    if (!l->PNEID[0] || cpns_map_get(&gw->routes, l->PNEID) != l ||
        strcmp(m->PNEID, l->PNEID) != 0) {
        cpns_log(&gw->log, CPNS_LOG_WARN, SGID, m->PNEID, tid,
                 "SGroupKeyDeliveryResponse for a PNEID link %llu is not registered for: dropped",
                 (unsigned long long)l->link);
        return 0;
    }
    if (gw->state != CPNS_GW_ONLINE) {
        cpns_log(&gw->log, CPNS_LOG_INFO, SGID, m->PNEID, tid,
                 "SGroupKeyDeliveryResponse while %s: dropped (the server resends)",
                 state_name(gw->state));
        return 0;
    }
    cpns_log(&gw->log, CPNS_LOG_DEBUG, SGID, m->PNEID, tid,
             "SGroupKeyDeliveryResponse Return=%u link %llu -> server", (unsigned)m->Return,
             (unsigned long long)l->link);
    return forwarded(&gw->stats.frames_to_server,
                     cpns_outq_push(&gw->outq, CPNS_GW_LINK_SERVER, data, len));
}

int cpns_gw_recv_link(cpns_gw *gw, uint64_t link, const uint8_t *data, size_t len, int64_t now_ms)
{
    gw_link *l = cpns_map_get_u64(&gw->links, link);
    if (!l)
        return CPNS_ERR_NOT_FOUND;
    expire_claims(gw, now_ms);
    if (l->closing) {
        cpns_log(&gw->log, CPNS_LOG_DEBUG, NULL, l->PNEID[0] ? l->PNEID : NULL, 0,
                 "frame from link %llu, which is being closed, dropped", (unsigned long long)link);
        return 0;
    }
    /* Limits first, before the frame costs a parse (issue #10, finding 3). */
    refill(l, now_ms);
    if (l->credit)
        l->credit--;
    else if (!take_token(&l->frame_tokens)) {
        abuse(gw, l, 0, "over its frame rate");
        return 0;
    }
    if (len > CPNS_GW_PNE_FRAME_MAX) {
        abuse(gw, l, 0, "frame over CPNS_GW_PNE_FRAME_MAX");
        return 0;
    }
    cpns_msg m;
    memset(&m, 0, sizeof m);
    int rv = gw_peek(gw, data, len, &m);
    if (rv == CPNS_ERR_NOMEM)
        return rv;
    uint64_t tid = (m.present & CPNS_F_TID) ? m.TransactionID : 0;
    if (rv != 0) {
        cpns_log(&gw->log, CPNS_LOG_WARN, NULL, l->PNEID[0] ? l->PNEID : NULL, tid,
                 "malformed frame from link %llu dropped", (unsigned long long)link);
        return 0;
    }
    if (m.kind == CPNS_MSG_PNE_REGISTRATION_REQUEST) {
        /* Forwarded whole, a big one would cost the GW its server connection. */
        if (len > CPNS_GW_REGISTRATION_MAX) {
            abuse(gw, l, tid, "PNERegistrationRequest over CPNS_GW_REGISTRATION_MAX");
            return 0;
        }
        if (!take_token(&l->reg_tokens)) {
            abuse(gw, l, tid, "over its registration rate");
            return 0;
        }
    }
    if (l->superseded) {
        cpns_log(&gw->log, CPNS_LOG_INFO, NULL, l->PNEID, tid, "%s from replaced link %llu dropped",
                 cpns_msg_kind_name(m.kind), (unsigned long long)link);
        return 0;
    }
    switch (m.kind) {
    case CPNS_MSG_PNE_REGISTRATION_REQUEST:
        return on_pne_registration_request(gw, l, &m, data, len, now_ms);
    case CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE:
        return on_delivery_response(gw, l, &m, data, len);
    default:
        cpns_log(&gw->log, CPNS_LOG_WARN, NULL, l->PNEID[0] ? l->PNEID : NULL, tid,
                 "%s from link %llu dropped", cpns_msg_kind_name(m.kind), (unsigned long long)link);
        return 0;
    }
}

int cpns_gw_link_close(cpns_gw *gw, uint64_t link, int64_t now_ms)
{
    gw_link *l = cpns_map_remove_u64(&gw->links, link);
    if (!l)
        return CPNS_ERR_NOT_FOUND;
    int rv = 0;
    cpns_outq_drop_link(&gw->outq, link);
    claim_drop(gw, l);
    list_unlink(&l->close_node);
    expire_claims(gw, now_ms);
    if (l->PNEID[0]) {
        if (cpns_map_get(&gw->routes, l->PNEID) == l) {
            cpns_map_remove(&gw->routes, l->PNEID);
            cpns_log(&gw->log, CPNS_LOG_INFO, NULL, l->PNEID, 0, "link %llu closed: route removed",
                     (unsigned long long)link);
            if (gw->state == CPNS_GW_ONLINE)
                rv = send_status(gw, l->PNEID, CPNS_STATUS_DETACHED);
        }
    }
    cpns_log(&gw->log, CPNS_LOG_DEBUG, NULL, l->PNEID[0] ? l->PNEID : NULL, 0, "link %llu closed",
             (unsigned long long)link);
    cpns_free(l);
    return rv;
}
