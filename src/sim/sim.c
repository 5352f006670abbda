/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-process CPNS network of sim.h: the three real engines, joined by
 * function calls instead of sockets, on a virtual clock.
 */
#include <string.h>

#include <openssl/sha.h>

#include "cpns/crypto.h"
#include "cpns/testing.h"
#include "sim.h"

#define GW_CONN 1

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* A seeded stream (SHA-256 of a counter), so that a test run can be replayed. */
static int sim_rand(void *arg, uint8_t *buf, size_t len)
{
    uint64_t *ctr = arg;
    uint8_t block[SHA256_DIGEST_LENGTH], in[8];
    while (len) {
        for (int i = 0; i < 8; i++)
            in[i] = (uint8_t)(*ctr >> (8 * i));
        (*ctr)++;
        SHA256(in, sizeof in, block);
        size_t n = len < sizeof block ? len : sizeof block;
        memcpy(buf, block, n);
        buf += n;
        len -= n;
    }
    return 0;
}

static int new_server(sim *s)
{
    cpns_server_config cfg = {0};
    cfg.store = s->store;
    cfg.rand = s->rand;
    cfg.rand_arg = &s->seed;
    cfg.log = s->log;
    cfg.log_arg = s->log_arg;
    cfg.log_debug = true;
    return cpns_server_new(&s->server, &cfg, s->now);
}

int sim_init(sim *s, uint64_t seed, cpns_log_fn log, void *log_arg)
{
    memset(s, 0, sizeof *s);
    s->now = SIM_START_MS;
    s->seed = seed;
    s->log = log;
    s->log_arg = log_arg;
    s->gw_conn = GW_CONN;
    s->rand = seed ? sim_rand : NULL;
    int rv = cpns_store_mem_new(&s->store);
    if (rv)
        return rv;
    if ((rv = new_server(s)) != 0)
        return rv;
    cpns_gw_config gcfg = {0};
    gcfg.PNGWID = "gw-home";
    gcfg.PNID = "pn-home";
    gcfg.rand = s->rand;
    gcfg.rand_arg = &s->seed;
    gcfg.log = log;
    gcfg.log_arg = log_arg;
    gcfg.log_debug = true;
    return cpns_gw_new(&s->gw, &gcfg);
}

void sim_fini(sim *s)
{
    for (int i = 0; i < s->n_pnes; i++) {
        cpns_pne_free(s->pnes[i].pne);
        cpns_keystore_free(s->pnes[i].keystore);
        cpns_wipe(s->pnes[i].EUK, sizeof s->pnes[i].EUK);
    }
    cpns_gw_free(s->gw);
    cpns_server_free(s->server);
    cpns_store_free(s->store);
    memset(s, 0, sizeof *s);
}

int sim_add_pne(sim *s, const char *PNEID, const uint8_t *server_euk)
{
    if (s->n_pnes == SIM_MAX_PNES)
        return CPNS_ERR_TOO_LARGE;
    sim_pne *p = &s->pnes[s->n_pnes];
    memset(p, 0, sizeof *p);
    if (!cpns_id_valid(PNEID))
        return CPNS_ERR_INVALID_ARG;
    strcpy(p->PNEID, PNEID);
    int rv = s->rand ? s->rand(&s->seed, p->EUK, sizeof p->EUK)
                     : cpns_random(NULL, p->EUK, sizeof p->EUK);
    if (rv)
        return rv;
    if ((rv = cpns_server_pne_add(s->server, PNEID, server_euk ? server_euk : p->EUK)) != 0)
        return rv;
    if ((rv = cpns_keystore_mem_new(&p->keystore)) != 0)
        return rv;
    cpns_pne_config cfg = {0};
    cfg.PNEID = PNEID;
    cfg.EUK = p->EUK;
    cfg.keystore = p->keystore;
    cfg.rand = s->rand;
    cfg.rand_arg = &s->seed;
    cfg.log = s->log;
    cfg.log_arg = s->log_arg;
    if ((rv = cpns_pne_new(&p->pne, &cfg)) != 0) {
        cpns_keystore_free(p->keystore);
        return rv;
    }
    p->link = (uint64_t)s->n_pnes + 100;
    return s->n_pnes++;
}

int sim_gw_connect(sim *s)
{
    int rv = cpns_server_conn_open(s->server, s->gw_conn, "gw-home", s->now);
    if (rv)
        return rv;
    s->gw_connected = true;
    if ((rv = cpns_gw_server_up(s->gw, s->now)) != 0)
        return rv;
    return sim_run(s);
}

int sim_gw_disconnect(sim *s)
{
    s->gw_connected = false;
    int rv = cpns_server_conn_close(s->server, s->gw_conn, s->now);
    if (rv == 0)
        rv = cpns_gw_server_down(s->gw, s->now);
    s->gw_conn++; /* a new connection gets a new handle, as in the daemon */
    return rv ? rv : sim_run(s);
}

int sim_pne_up(sim *s, int i)
{
    sim_pne *p = &s->pnes[i];
    int rv = cpns_gw_link_open(s->gw, p->link, s->now);
    if (rv)
        return rv;
    p->link_up = true;
    if ((rv = cpns_pne_link_up(p->pne, s->now)) != 0)
        return rv;
    return sim_run(s);
}

int sim_pne_down(sim *s, int i)
{
    sim_pne *p = &s->pnes[i];
    p->link_up = false;
    int rv = cpns_pne_link_down(p->pne, s->now);
    if (rv == 0)
        rv = cpns_gw_link_close(s->gw, p->link, s->now);
    return rv ? rv : sim_run(s);
}

static bool dropped(sim *s, sim_hop hop, int pne, const cpns_out *out)
{
    if (!s->filter)
        return false;
    cpns_msg m;
    cpns_msg_peek(out->data, out->len, &m);
    if (!s->filter(s->filter_arg, hop, pne, &m))
        return false;
    s->frames_dropped++;
    return true;
}

static int pne_by_link(const sim *s, uint64_t link)
{
    for (int i = 0; i < s->n_pnes; i++)
        if (s->pnes[i].link == link)
            return i;
    return -1;
}

/* The server's output to the GW; returns the number of frames moved, or an error. */
static int pump_server(sim *s)
{
    int moved = 0, rv;
    cpns_out out;
    while ((rv = cpns_server_pop(s->server, &out)) == 1) {
        moved++;
        if (!s->gw_connected || dropped(s, SIM_SERVER_TO_GW, -1, &out))
            continue;
        if ((rv = cpns_gw_recv_server(s->gw, out.data, out.len, s->now)) != 0)
            return rv;
    }
    return rv < 0 ? rv : moved;
}

/* One pass over every engine's output; returns the number of frames moved, or an error. */
static int pump_once(sim *s)
{
    int moved, rv;
    cpns_out out;

    if ((moved = pump_server(s)) < 0)
        return moved;
    /*
     * One commit per pass, as the daemon makes one per loop turn. Registration
     * answers held for it (cpns_server_commit_wanted) leave right after.
     */
    int released = cpns_server_commit_wanted(s->server);
    if ((rv = cpns_server_flush(s->server)) != 0)
        return rv;
    if (released) {
        if ((rv = pump_server(s)) < 0)
            return rv;
        moved += rv;
    }
    /* The sim's GW reconnects only after closing, so nothing is superseded; drained anyway. */
    uint64_t conn;
    while (cpns_server_pop_close(s->server, &conn))
        if ((rv = cpns_server_conn_close(s->server, conn, s->now)) != 0)
            return rv;

    while ((rv = cpns_gw_pop(s->gw, &out)) == 1) {
        moved++;
        if (out.link == CPNS_GW_LINK_SERVER) {
            if (!s->gw_connected || dropped(s, SIM_GW_TO_SERVER, -1, &out))
                continue;
            if ((rv = cpns_server_recv(s->server, s->gw_conn, out.data, out.len, s->now)) != 0)
                return rv;
            continue;
        }
        int i = pne_by_link(s, out.link);
        if (i < 0 || !s->pnes[i].link_up || dropped(s, SIM_GW_TO_PNE, i, &out))
            continue;
        if ((rv = cpns_pne_recv(s->pnes[i].pne, out.data, out.len, s->now)) != 0)
            return rv;
    }
    if (rv < 0)
        return rv;

    for (int i = 0; i < s->n_pnes; i++) {
        sim_pne *p = &s->pnes[i];
        while ((rv = cpns_pne_pop(p->pne, &out)) == 1) {
            moved++;
            if (!p->link_up || dropped(s, SIM_PNE_TO_GW, i, &out))
                continue;
            if ((rv = cpns_gw_recv_link(s->gw, p->link, out.data, out.len, s->now)) != 0)
                return rv;
        }
        if (rv < 0)
            return rv;
    }
    return moved;
}

int sim_run(sim *s)
{
    for (;;) {
        int moved = pump_once(s);
        if (moved < 0)
            return moved;
        if (moved == 0)
            return 0;
        s->frames_moved += (uint64_t)moved;
    }
}

int sim_advance(sim *s, int64_t ms)
{
    int64_t end = s->now + ms;
    for (;;) {
        int64_t next = cpns_server_get_expiry(s->server);
        for (int i = 0; i < s->n_pnes; i++)
            next = min64(next, cpns_pne_get_expiry(s->pnes[i].pne));
        if (next > end)
            break;
        if (next > s->now)
            s->now = next;
        int rv = 0;
        if (cpns_server_get_expiry(s->server) <= s->now)
            rv = cpns_server_handle_expiry(s->server, s->now);
        for (int i = 0; rv == 0 && i < s->n_pnes; i++)
            if (cpns_pne_get_expiry(s->pnes[i].pne) <= s->now)
                rv = cpns_pne_handle_expiry(s->pnes[i].pne, s->now);
        if (rv == 0)
            rv = sim_run(s);
        if (rv)
            return rv;
    }
    s->now = end;
    return sim_run(s);
}

int sim_server_restart(sim *s)
{
    bool was_connected = s->gw_connected;
    if (was_connected) {
        s->gw_connected = false;
        int rv = cpns_gw_server_down(s->gw, s->now);
        if (rv)
            return rv;
        s->gw_conn++;
    }
    cpns_server_free(s->server);
    s->server = NULL;
    cpns_store_mem_crash(s->store);
    int rv = new_server(s);
    if (rv == 0 && was_connected)
        rv = sim_gw_connect(s);
    return rv;
}

int sim_pne_key(sim *s, int i, const char *SGID, cpns_key_slot *out)
{
    cpns_stored_keys keys;
    sim_pne *p = &s->pnes[i];
    int rv = p->keystore->ops->get(p->keystore, SGID, &keys);
    if (rv == 0)
        *out = keys.current;
    cpns_wipe(&keys, sizeof keys);
    return rv;
}
