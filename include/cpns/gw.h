/*
 * The PN GW engine (7.8.6.2), sans-I/O.
 *
 * The GW only routes. Its state is the routing table PNEID -> PNE link and,
 * per link, the PNEID it registered (or is registering). It parses no more of
 * a frame than routing needs (cpns_msg_peek) and forwards the frame it
 * received, byte for byte: it never sees a Group Key in clear.
 *
 * Links are the glue's non-zero handles for PNE connections; the server
 * connection is CPNS_GW_LINK_SERVER in cpns_out.link.
 */
#ifndef CPNS_GW_H
#define CPNS_GW_H

#include <stdbool.h>
#include "common.h"
#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CPNS_GW_LINK_SERVER 0

typedef struct cpns_gw cpns_gw;

typedef struct cpns_gw_config {
    const char *PNGWID; /* required; copied */
    const char *PNID;   /* required; copied: the PN this GW serves */
    size_t max_pnes;    /* 0: no limit; links over it are refused registration */
    cpns_rand_fn rand;  /* for TransactionIDs; NULL: OS CSPRNG */
    void *rand_arg;
    cpns_log_fn log;
    void *log_arg;
    bool log_debug; /* also pass CPNS_LOG_DEBUG messages (one per forwarded frame) to log */
} cpns_gw_config;

typedef enum cpns_gw_state {
    CPNS_GW_OFFLINE = 0,     /* no server connection */
    CPNS_GW_REGISTERING = 1, /* PNGWRegistrationRequest sent */
    CPNS_GW_ONLINE = 2,      /* registered with the server */
    CPNS_GW_REFUSED = 3,     /* the server answered Return != 1 */
} cpns_gw_state;

/* 0, CPNS_ERR_INVALID_ARG (bad PNGWID/PNID), CPNS_ERR_NOMEM. */
int cpns_gw_new(cpns_gw **out, const cpns_gw_config *cfg);
void cpns_gw_del(cpns_gw *gw);

cpns_gw_state cpns_gw_get_state(const cpns_gw *gw);
/* The Return of the last PNGWRegistrationResponse, -1 before one arrived. */
int cpns_gw_last_return(const cpns_gw *gw);

/*
 * The server connection is up: queues PNGWRegistrationRequest. Once the server
 * answers Return 1, queues PNEStatusNotification Status="attached" for every
 * PNE whose registration succeeded and whose link is still up.
 */
int cpns_gw_server_up(cpns_gw *gw, int64_t now_ms);

/* The server connection is gone: server-bound frames queued so far are dropped. */
int cpns_gw_server_down(cpns_gw *gw, int64_t now_ms);

/*
 * A frame from the server. SGroupKeyDeliveryRequest goes to the link of
 * GroupKeyInfo/@PNEID, or is answered Return 6 (same TransactionID, the GW's
 * PNID) when that PNE is not attached. PNERegistrationResponse goes to the
 * link registering that PNEID. Unroutable frames are dropped (logged).
 * 0, CPNS_ERR_NOMEM.
 */
int cpns_gw_recv_server(cpns_gw *gw, const uint8_t *data, size_t len, int64_t now_ms);

/* A PNE connection opened (link != CPNS_GW_LINK_SERVER). 0, CPNS_ERR_EXISTS, CPNS_ERR_NOMEM. */
int cpns_gw_link_open(cpns_gw *gw, uint64_t link, int64_t now_ms);

/*
 * A frame from a PNE link. PNERegistrationRequest binds the link to its PNEID
 * and goes to the server; SGroupKeyDeliveryResponse goes to the server when
 * its PNEID is the link's registered PNEID. Anything else is dropped.
 * 0, CPNS_ERR_NOT_FOUND (unknown link), CPNS_ERR_NOMEM.
 */
int cpns_gw_recv_link(cpns_gw *gw, uint64_t link, const uint8_t *data, size_t len, int64_t now_ms);

/* The PNE link closed: queues Status="detached" if it was the PNE's route. */
int cpns_gw_link_close(cpns_gw *gw, uint64_t link, int64_t now_ms);

/* Next frame to send: 1 with *out, 0 when none (cpns_out in common.h). */
int cpns_gw_pop(cpns_gw *gw, cpns_out *out);

/* Number of PNEs attached (registered, link up). */
size_t cpns_gw_attached(const cpns_gw *gw);

#ifdef __cplusplus
}
#endif
#endif
