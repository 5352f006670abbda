/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-loadgen fanout: N simulated PNEs, each on its own TCP connection to a
 * real cpns-gw (as cpns-pne would be), register through it and receive Group
 * Keys through it. Two modes:
 *
 * The benchmark (--admin, --gw-pid): the GW's memory per attached PNE is the
 * growth of its RSS from before the first connection to all N registered,
 * divided by N; its forwarding rate is the frames it carried (one request and
 * one response per member) over the time from POST /v1/sgs to complete.
 * One line on stdout: BENCH {"name":"gw_fanout",...}.
 *
 * Serve (--report FILE; issue #11's failover test): the PNEs are spread over
 * the GWs of --gw A,B,... (PNE i behind GW i mod G), register, and stay: they
 * answer whatever the servers send through their GWs until SIGTERM or SIGINT,
 * registration retries run on their timers, and a lost connection is dialled
 * again (the PNE then registers again) instead of ending the run. Once every
 * PNE has registered, stderr gets the line "fanout: all N PNEs registered".
 * At the end FILE (written whole, then renamed into place) holds, for every
 * PNE, each (SGID, KeyVersion, fingerprint) it ever stored — a key replaced
 * by another under the same version shows as two entries, which the
 * keystore itself would hide — and what its keystore holds at the end.
 * --answer-rate R hands at most R delivery requests a second to the PNEs
 * (slow devices, or a slow PN), so that a test can act in the middle of a
 * distribution whatever the speed of the machine; SIGUSR1 lifts the limit
 * (what waited is handed over at once), so that what the test then measures
 * is the servers' time, not the limit's. --answer-hold K (with or without a
 * rate) makes the middle certain: once K PNEs have been handed a delivery
 * request, PNEs that were handed none are handed none until SIGUSR1 (the whole
 * limit) or SIGHUP (the hold only; the rate stays), while the first K still
 * get what is sent to them again. A test that waits for K' < K members
 * delivered and then acts cannot find the group complete however slow the
 * machine is. Each PNE also counts the delivery
 * requests it was handed (a member sent its key twice shows 2) and its answers
 * by Return code (the report's "deliveries" and "returns"; a Return 7 is a PNE
 * refusing an older KeyVersion than it holds). --move-every K (issue #12's
 * cluster tests): at SIGUSR2 every K-th PNE (lg-0, lg-K, ...) drops its
 * connection and dials the next GW of the list instead (GW i+1 mod G), where
 * it registers again: a PNE moving between GWs, possibly between instances.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "loadgen.h"

#define FAN_MAX_GWS 64
/* Serve mode: a lost PNE connection is dialled again after this (ms). */
#define RECONNECT_MS 250
/* Serve mode housekeeping (registration retries, reconnects, the answer rate) runs this often. */
#define MAINT_MS 20
/* Return codes counted one by one in the report (PROTOCOL.md 3.2); the rest as "other". */
#define FAN_RETURNS 16

/* One key a PNE stored, as `cpns-pne keys` would list it. */
typedef struct fan_key {
    char SGID[CPNS_ID_MAX + 1];
    uint32_t KeyVersion;
    char fp[CPNS_FINGERPRINT_LEN + 1];
} fan_key;

typedef struct fan_pne {
    uint32_t gw;         /* index into fan.gws */
    uint32_t gen;        /* bumped at every connect: frames queued for an older one are dropped */
    int64_t lost_us;     /* serve mode: when its connection was lost; 0 while it has one */
    uint32_t losses;     /* connections lost */
    bool registered;     /* registered at least once */
    uint32_t moves;      /* SIGUSR2 moves to the next GW */
    uint32_t deliveries; /* delivery requests handed to the PNE (duplicates included) */
    uint32_t returns[FAN_RETURNS + 1]; /* its answers by Return code; [FAN_RETURNS]: others */
    fan_key *keys;                     /* every key it stored, in the order first seen */
    size_t n_keys, cap_keys;
} fan_pne;

/* A delivery request waiting for --answer-rate. */
typedef struct fan_frame {
    struct fan_frame *next;
    uint32_t pne, gen;
    size_t len;
    uint8_t data[];
} fan_frame;

typedef struct fan {
    lg *g;
    bool serve;
    char *gw_list; /* --gw, split in place */
    const char *gws[FAN_MAX_GWS];
    uint32_t n_gws;
    fan_pne *pnes;
    uint32_t opened, closed;
    double rate, tokens; /* --answer-rate: 0 = none; tokens refilled at that rate */
    uint32_t hold;       /* --answer-hold: 0 = none; else PNEs handed a request at most */
    uint32_t handed;     /* PNEs handed at least one delivery request */
    int64_t tokens_us;
    fan_frame *q_head, *q_tail;
    size_t queued;
    bool stop, announced;
    uint32_t move_every; /* --move-every K: SIGUSR2 moves lg-0, lg-K, ... (0: never) */
    struct event *maint, *sigterm, *sigint, *sigusr1, *sigusr2, *sighup;
} fan;

static fan *F;

static uint32_t pne_index(const lg_pne *p)
{
    return (uint32_t)(p - F->g->pnes);
}

static void flush_pne(lg_pne *p)
{
    cpns_out out;
    while (cpns_pne_pop(p->eng, &out) == 1)
        if (p->conn)
            net_conn_send(p->conn, out.data, out.len);
}

/* Keystore walk: adds the slots not seen before to the PNE's list. */
static void note_slot(fan_pne *fp, const char *SGID, const cpns_key_slot *s)
{
    if (s->KeyVersion == 0)
        return;
    fan_key k = {.KeyVersion = s->KeyVersion};
    snprintf(k.SGID, sizeof k.SGID, "%s", SGID);
    cpns_fingerprint(s->GK, CPNS_KEY_LEN, k.fp);
    for (size_t i = 0; i < fp->n_keys; i++)
        if (fp->keys[i].KeyVersion == k.KeyVersion && strcmp(fp->keys[i].SGID, k.SGID) == 0 &&
            strcmp(fp->keys[i].fp, k.fp) == 0)
            return;
    if (fp->n_keys == fp->cap_keys) {
        size_t cap = fp->cap_keys ? 2 * fp->cap_keys : 2;
        fan_key *nk = realloc(fp->keys, cap * sizeof *nk);
        if (!nk) {
            F->g->failed = true;
            return;
        }
        fp->keys = nk;
        fp->cap_keys = cap;
    }
    fp->keys[fp->n_keys++] = k;
}

static int visit_note(void *arg, const char *SGID, const cpns_stored_keys *keys)
{
    note_slot(arg, SGID, &keys->current);
    note_slot(arg, SGID, &keys->previous);
    return 0;
}

/*
 * After every frame: a PNE stores at most one key per frame, so looking at
 * its keystore then sees every key it ever stored (the memory keystore holds
 * a handful of SGs: cheap).
 */
static void note_keys(lg_pne *p)
{
    if (F->serve)
        p->ks->ops->list(p->ks, visit_note, &F->pnes[pne_index(p)]);
}

/*
 * A frame for a registered PNE: a delivery request (counted) whose answers,
 * popped and sent here, are counted by Return code. Peeked, not decoded: the
 * PNE engine made them.
 */
static void count_answers(fan_pne *fp, lg_pne *p, const uint8_t *data, size_t len)
{
    cpns_msg m;
    if (cpns_msg_decoder_peek(F->g->decoder, data, len, &m) == 0 &&
        m.kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST)
        fp->deliveries++;
    cpns_out out;
    while (cpns_pne_pop(p->eng, &out) == 1) {
        if (cpns_msg_decoder_peek(F->g->decoder, out.data, out.len, &m) == 0 &&
            m.kind == CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE)
            fp->returns[m.Return < FAN_RETURNS ? m.Return : FAN_RETURNS]++;
        if (p->conn)
            net_conn_send(p->conn, out.data, out.len);
    }
}

static void give_frame(lg_pne *p, const uint8_t *data, size_t len)
{
    lg *g = F->g;
    fan_pne *fp = &F->pnes[pne_index(p)];
    cpns_pne_state before = cpns_pne_get_state(p->eng);
    cpns_pne_recv(p->eng, data, len, lg_now_ms());
    if (before == CPNS_PNE_REGISTERED)
        count_answers(fp, p, data, len);
    flush_pne(p);
    if (before != CPNS_PNE_REGISTERED && cpns_pne_get_state(p->eng) == CPNS_PNE_REGISTERED) {
        if (!fp->registered)
            g->pnes_registered++;
        fp->registered = true;
    } else if (before == CPNS_PNE_REGISTERED) {
        g->responses++;
    }
    note_keys(p);
}

static void pne_on_open(net_conn *c, void *arg)
{
    lg_pne *p = arg;
    (void)c;
    F->opened++;
    cpns_pne_link_up(p->eng, lg_now_ms());
    flush_pne(p);
}

static void pne_on_frame(net_conn *c, const uint8_t *data, size_t len, void *arg)
{
    lg_pne *p = arg;
    (void)c;
    if ((F->rate <= 0 && F->hold == 0) || cpns_pne_get_state(p->eng) != CPNS_PNE_REGISTERED) {
        give_frame(p, data, len);
        return;
    }
    /* registered: a delivery request, answered when the rate and the hold allow */
    fan_frame *fr = malloc(sizeof *fr + len);
    if (!fr) {
        F->g->failed = true;
        return;
    }
    fr->next = NULL;
    fr->pne = pne_index(p);
    fr->gen = F->pnes[fr->pne].gen;
    fr->len = len;
    memcpy(fr->data, data, len);
    if (F->q_tail)
        F->q_tail->next = fr;
    else
        F->q_head = fr;
    F->q_tail = fr;
    F->queued++;
}

static void pne_on_close(net_conn *c, const char *reason, void *arg)
{
    lg_pne *p = arg;
    (void)c;
    p->conn = NULL;
    fan_pne *fp = &F->pnes[pne_index(p)];
    if (F->closed++ == 0 || (F->serve && F->closed <= 10))
        fprintf(stderr, "cpns-loadgen: a PNE connection (%u) closed: %s\n", pne_index(p), reason);
    if (!F->serve) {
        F->g->failed = true;
        return;
    }
    fp->losses++;
    fp->lost_us = lg_now_us();
    cpns_pne_link_down(p->eng, lg_now_ms());
}

static const net_conn_cbs pne_cbs = {pne_on_open, pne_on_frame, pne_on_close};

static int connect_pne(uint32_t i)
{
    lg *g = F->g;
    fan_pne *fp = &F->pnes[i];
    char err[300];
    fp->gen++;
    fp->lost_us = 0;
    g->pnes[i].conn =
        net_connect(g->base, F->gws[fp->gw], NULL, &pne_cbs, &g->pnes[i], err, sizeof err);
    if (!g->pnes[i].conn) {
        fprintf(stderr, "cpns-loadgen: PNE %u: %s\n", i, err);
        fp->lost_us = lg_now_us(); /* serve mode tries again */
        return -1;
    }
    return 0;
}

/* --answer-hold: whether a request for this PNE waits (it was handed none yet, and K others were).
 */
static bool held(const fan_pne *fp)
{
    return F->hold && F->handed >= F->hold && fp->deliveries == 0;
}

/*
 * --answer-rate, --answer-hold: hands the queued delivery requests to their
 * PNEs, in the order they came, as the tokens allow, passing over the held
 * ones; all of them once SIGUSR1 lifted the limit (rate 0, no hold).
 */
static void drain_queue(void)
{
    int64_t now = lg_now_us();
    if (F->rate <= 0)
        F->tokens = (double)F->queued;
    F->tokens += F->rate * (double)(now - F->tokens_us) / 1e6;
    F->tokens_us = now;
    /* no bursts beyond a tenth of a second's worth after an idle time */
    double burst = F->rate / 10.0 > 1.0 ? F->rate / 10.0 : 1.0;
    if (!F->q_head && F->tokens > burst)
        F->tokens = burst;
    fan_frame **link = &F->q_head, *last = NULL;
    while (*link && F->tokens >= 1.0) {
        fan_frame *fr = *link;
        fan_pne *fp = &F->pnes[fr->pne];
        lg_pne *p = &F->g->pnes[fr->pne];
        bool stale = fr->gen != fp->gen || !p->conn;
        if (!stale && held(fp)) {
            last = fr;
            link = &fr->next;
            continue;
        }
        *link = fr->next;
        F->queued--;
        if (!stale) {
            if (fp->deliveries == 0)
                F->handed++;
            give_frame(p, fr->data, fr->len);
            F->tokens -= 1.0;
        }
        free(fr);
    }
    /* the tail moved only if its frame was handed: then the last one kept is the tail */
    if (!*link)
        F->q_tail = last;
}

static void on_maint(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    lg *g = F->g;
    int64_t now_ms = lg_now_ms(), now_us = lg_now_us();
    for (uint32_t i = 0; i < g->n_pnes; i++) {
        fan_pne *fp = &F->pnes[i];
        if (!g->pnes[i].conn) {
            if (fp->lost_us && now_us - fp->lost_us >= RECONNECT_MS * 1000LL)
                connect_pne(i);
            continue;
        }
        if (cpns_pne_get_expiry(g->pnes[i].eng) <= now_ms) {
            cpns_pne_handle_expiry(g->pnes[i].eng, now_ms);
            flush_pne(&g->pnes[i]);
        }
    }
    if (F->q_head)
        drain_queue();
    if (!F->announced && g->pnes_registered == g->n_pnes) {
        F->announced = true;
        fprintf(stderr, "fanout: all %u PNEs registered through %u GWs\n", g->n_pnes, F->n_gws);
    }
}

/* SIGUSR2: every move_every-th PNE leaves its GW for the next one (dialled by the housekeeping). */
static void move_pnes(void)
{
    lg *g = F->g;
    uint32_t moved = 0;
    for (uint32_t i = 0; F->move_every && i < g->n_pnes; i += F->move_every) {
        fan_pne *fp = &F->pnes[i];
        fp->gw = (fp->gw + 1) % F->n_gws;
        fp->moves++;
        moved++;
        if (g->pnes[i].conn) {
            net_conn_close(g->pnes[i].conn, false); /* no on_close after this */
            g->pnes[i].conn = NULL;
            cpns_pne_link_down(g->pnes[i].eng, lg_now_ms());
        }
        fp->gen++; /* what waits for --answer-rate was for the old connection */
        fp->lost_us = lg_now_us() - RECONNECT_MS * 1000LL; /* dialled at the next turn */
    }
    fprintf(stderr, "fanout: SIGUSR2: %u PNEs moved to the next GW\n", moved);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (fd == SIGUSR2) {
        move_pnes();
        return;
    }
    if (fd == SIGUSR1) {
        if (F->rate > 0 || F->hold)
            fprintf(stderr, "fanout: SIGUSR1: the answer rate is no longer limited (%zu waiting)\n",
                    F->queued);
        F->rate = 0;
        F->hold = 0;
        drain_queue();
        return;
    }
    if (fd == SIGHUP) {
        if (F->hold)
            fprintf(stderr, "fanout: SIGHUP: the hold at %u PNEs is lifted (%zu waiting)\n",
                    F->hold, F->queued);
        F->hold = 0;
        drain_queue();
        return;
    }
    F->stop = true;
    event_base_loopbreak(F->g->base);
}

/* A JSON string of an identifier (they are printable, but a stray quote must not break the file).
 */
static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void put_key(FILE *f, bool first, const char *SGID, uint32_t KeyVersion, const char *fp,
                    const char *slot)
{
    fprintf(f, "%s{\"sgid\":", first ? "" : ",");
    put_str(f, SGID);
    fprintf(f, ",\"key_version\":%u,\"fingerprint\":\"%s\"", KeyVersion, fp);
    if (slot)
        fprintf(f, ",\"slot\":\"%s\"", slot);
    fputc('}', f);
}

typedef struct holds_walk {
    FILE *f;
    bool first;
} holds_walk;

static int visit_holds(void *arg, const char *SGID, const cpns_stored_keys *keys)
{
    holds_walk *w = arg;
    const cpns_key_slot *slots[2] = {&keys->current, &keys->previous};
    static const char *const names[2] = {"current", "previous"};
    for (int i = 0; i < 2; i++) {
        if (slots[i]->KeyVersion == 0)
            continue;
        char fp[CPNS_FINGERPRINT_LEN + 1];
        cpns_fingerprint(slots[i]->GK, CPNS_KEY_LEN, fp);
        put_key(w->f, w->first, SGID, slots[i]->KeyVersion, fp, names[i]);
        w->first = false;
    }
    return 0;
}

/*
 * {"pnes":[{"pneid":"lg-0","gw":"HOST:PORT","registered":true,
 *   "connections_lost":0,"stored":[{"sgid":..,"key_version":..,"fingerprint":..}],
 *   "holds":[{...,"slot":"current"}]}, ...]}
 */
static int write_report(const char *path)
{
    lg *g = F->g;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "cpns-loadgen: cannot write %s\n", tmp);
        return -1;
    }
    size_t stored = 0, lost = 0, deliveries = 0, answers = 0, ret7 = 0;
    fputs("{\"pnes\":[", f);
    for (uint32_t i = 0; i < g->n_pnes; i++) {
        fan_pne *fp = &F->pnes[i];
        char PNEID[CPNS_ID_MAX + 1];
        lg_pneid(i, PNEID);
        fprintf(f, "%s\n{\"pneid\":", i ? "," : "");
        put_str(f, PNEID);
        fprintf(f,
                ",\"gw\":\"%s\",\"registered\":%s,\"connections_lost\":%u,\"moves\":%u,"
                "\"deliveries\":%u,\"returns\":{",
                F->gws[fp->gw], fp->registered ? "true" : "false", fp->losses, fp->moves,
                fp->deliveries);
        bool first_ret = true;
        for (int r = 0; r <= FAN_RETURNS; r++) {
            if (!fp->returns[r])
                continue;
            if (r < FAN_RETURNS)
                fprintf(f, "%s\"%d\":%u", first_ret ? "" : ",", r, fp->returns[r]);
            else
                fprintf(f, "%s\"other\":%u", first_ret ? "" : ",", fp->returns[r]);
            first_ret = false;
            answers += fp->returns[r];
            if (r == 7)
                ret7 += fp->returns[r];
        }
        deliveries += fp->deliveries;
        fputs("},\"stored\":[", f);
        for (size_t k = 0; k < fp->n_keys; k++)
            put_key(f, k == 0, fp->keys[k].SGID, fp->keys[k].KeyVersion, fp->keys[k].fp, NULL);
        fputs("],\"holds\":[", f);
        holds_walk w = {f, true};
        g->pnes[i].ks->ops->list(g->pnes[i].ks, visit_holds, &w);
        fputs("]}", f);
        stored += fp->n_keys;
        lost += fp->losses;
    }
    fputs("\n]}\n", f);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "cpns-loadgen: cannot write %s\n", path);
        return -1;
    }
    fprintf(stderr,
            "fanout: report %s: %u PNEs, %zu keys stored, %zu connections lost, %zu delivery "
            "requests, %zu answers, %zu of them Return 7\n",
            path, g->n_pnes, stored, lost, deliveries, answers, ret7);
    return 0;
}

/* Splits --gw at its commas into F->gws. */
static int split_gws(const char *list)
{
    F->gw_list = strdup(list);
    if (!F->gw_list)
        return -1;
    char *save = NULL;
    for (char *t = strtok_r(F->gw_list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (F->n_gws == FAN_MAX_GWS)
            return -1;
        F->gws[F->n_gws++] = t;
    }
    return F->n_gws > 0 ? 0 : -1;
}

/* Opens every PNE's connection, a few hundred at a time so that the GWs' accept queues keep up. */
static int connect_all(lg *g)
{
    for (uint32_t i = 0; i < g->n_pnes; i++) {
        F->pnes[i].gw = i % F->n_gws;
        if (connect_pne(i) != 0 && !F->serve)
            return -1;
        if (i % 256 == 255)
            while (F->opened + 64 < i && !g->failed && !F->stop)
                event_base_loop(g->base, EVLOOP_ONCE);
    }
    return 0;
}

static int serve(lg *g, const char *report)
{
    F->maint = event_new(g->base, -1, EV_PERSIST, on_maint, NULL);
    F->sigterm = evsignal_new(g->base, SIGTERM, on_signal, NULL);
    F->sigint = evsignal_new(g->base, SIGINT, on_signal, NULL);
    F->sigusr1 = evsignal_new(g->base, SIGUSR1, on_signal, NULL);
    F->sigusr2 = evsignal_new(g->base, SIGUSR2, on_signal, NULL);
    F->sighup = evsignal_new(g->base, SIGHUP, on_signal, NULL);
    struct timeval tv = {0, MAINT_MS * 1000};
    if (!F->maint || !F->sigterm || !F->sigint || !F->sigusr1 || !F->sigusr2 || !F->sighup ||
        event_add(F->maint, &tv) != 0 || event_add(F->sigterm, NULL) != 0 ||
        event_add(F->sigint, NULL) != 0 || event_add(F->sigusr1, NULL) != 0 ||
        event_add(F->sigusr2, NULL) != 0 || event_add(F->sighup, NULL) != 0)
        return 1;
    F->tokens_us = lg_now_us();
    connect_all(g);
    while (!F->stop && !g->failed)
        event_base_loop(g->base, EVLOOP_ONCE);
    if (g->failed)
        fprintf(stderr, "cpns-loadgen: fanout failed (out of memory)\n");
    int rv = write_report(report) == 0 && !g->failed ? 0 : 1;
    for (uint32_t i = 0; i < g->n_pnes; i++)
        if (g->pnes[i].conn)
            net_conn_close(g->pnes[i].conn, false);
    while (F->q_head) {
        fan_frame *fr = F->q_head;
        F->q_head = fr->next;
        free(fr);
    }
    event_free(F->maint);
    event_free(F->sigterm);
    event_free(F->sigint);
    event_free(F->sigusr1);
    event_free(F->sigusr2);
    event_free(F->sighup);
    return rv;
}

static int bench(lg *g, int64_t gw_pid)
{
    long rss0 = lg_rss_kb(gw_pid, "VmRSS");
    int64_t t0 = lg_now_us();
    if (connect_all(g) != 0)
        return 1;
    int64_t last_retry = lg_now_us();
    while (g->pnes_registered < g->n_pnes && !g->failed) {
        if (lg_now_us() - t0 > 300 * 1000000LL) {
            fprintf(stderr, "cpns-loadgen: %u of %u PNEs registered through the GW\n",
                    g->pnes_registered, g->n_pnes);
            return 1;
        }
        lg_run_until_count(g, &g->pnes_registered, g->n_pnes, 500);
        if (lg_now_us() - last_retry < 500000)
            continue;
        last_retry = lg_now_us();
        int64_t now = lg_now_ms();
        for (uint32_t i = 0; i < g->n_pnes; i++)
            if (cpns_pne_get_expiry(g->pnes[i].eng) <= now) {
                cpns_pne_handle_expiry(g->pnes[i].eng, now);
                flush_pne(&g->pnes[i]);
            }
    }
    if (g->failed)
        return 1;
    long rss1 = lg_rss_kb(gw_pid, "VmRSS");
    fprintf(stderr, "%u PNEs attached to the GW and registered in %.2f s; GW RSS %ld -> %ld kB\n",
            g->n_pnes, (double)(lg_now_us() - t0) / 1e6, rss0, rss1);

    char SGID[64];
    snprintf(SGID, sizeof SGID, "fanout-%d", (int)getpid());
    size_t body_len;
    char *body = lg_sg_body(SGID, 0, g->n_pnes, &body_len);
    int64_t before = lg_delivered(g);
    lg_http_req post;
    g->responses = 0;
    long log_from = lg_file_size(g->server_log);
    int64_t t1 = lg_now_us();
    if (!body || before < 0 ||
        lg_http_start(g, "POST", "/v1/service-groups", body, body_len, &post) != 0) {
        free(body);
        return 1;
    }
    int rv = lg_wait_responses(g, &post, g->n_pnes, 300000);
    int64_t done = -1;
    if (rv == 0 && log_from >= 0)
        rv = lg_wait_log_complete(g, g->server_log, log_from, SGID, 300000);
    while (rv == 0 && log_from < 0 && (done = lg_delivered(g)) >= 0 && done - before < g->n_pnes)
        ;
    double seconds = (double)(lg_now_us() - t1) / 1e6;
    if (rv == 0 && log_from >= 0 && (done = lg_delivered(g)) - before < g->n_pnes)
        done = -1;
    if (rv == 0)
        rv = lg_run_until(g, &post.done, 60000);
    free(body);
    if (rv != 0 || post.status != 201 || done < 0) {
        fprintf(stderr, "cpns-loadgen: fanout group failed (POST %d, %u responses)\n", post.status,
                g->responses);
        free(post.body);
        return 1;
    }
    free(post.body);
    long rss2 = lg_rss_kb(gw_pid, "VmRSS");
    printf("BENCH {\"name\":\"gw_fanout\",\"pne_connections\":%u,\"rss_kb_per_pne\":%.2f,"
           "\"gw_rss_mb\":%.1f,\"gw_rss_mb_idle\":%.1f,\"msgs_per_s\":%.0f,\"seconds\":%.3f}\n",
           g->n_pnes, (double)(rss1 - rss0) / (double)g->n_pnes, (double)rss2 / 1024.0,
           (double)rss0 / 1024.0, 2.0 * g->n_pnes / seconds, seconds);
    fflush(stdout);
    for (uint32_t i = 0; i < g->n_pnes; i++)
        if (g->pnes[i].conn)
            net_conn_close(g->pnes[i].conn, false);
    return 0;
}

int lg_fanout_main(int argc, char **argv)
{
    const char *gw_addr = NULL, *report = NULL;
    int64_t n = 0, gw_pid = 0, rate = 0, move_every = 0, hold = 0;
    lg g = {.seed = "cpns-bench"};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--gw") == 0)
            gw_addr = v;
        else if (strcmp(k, "--admin") == 0)
            g.admin = v;
        else if (strcmp(k, "--server-log") == 0)
            g.server_log = v;
        else if (strcmp(k, "--seed") == 0)
            g.seed = v;
        else if (strcmp(k, "--pnes") == 0)
            parse_i64(v, 1, 1000000, &n);
        else if (strcmp(k, "--gw-pid") == 0)
            parse_i64(v, 1, INT32_MAX, &gw_pid);
        else if (strcmp(k, "--report") == 0)
            report = v;
        else if (strcmp(k, "--answer-rate") == 0)
            parse_i64(v, 1, 10000000, &rate);
        else if (strcmp(k, "--answer-hold") == 0)
            parse_i64(v, 1, 1000000, &hold);
        else if (strcmp(k, "--move-every") == 0)
            parse_i64(v, 1, 1000000, &move_every);
    }
    /* the rate is applied by serve mode's housekeeping: the benchmark answers at once */
    fan f = {.g = &g,
             .serve = report != NULL,
             .rate = report ? (double)rate : 0.0,
             .hold = report ? (uint32_t)hold : 0,
             .move_every = (uint32_t)move_every};
    F = &f;
    if (!gw_addr || n <= 0 || (!report && (!g.admin || gw_pid <= 0)) || split_gws(gw_addr) != 0) {
        fprintf(stderr,
                "usage: cpns-loadgen fanout --gw HOST:PORT --admin HOST:PORT --pnes N "
                "--gw-pid PID [--seed S] [--server-log F]\n"
                "       cpns-loadgen fanout --gw HOST:PORT[,HOST:PORT...] --pnes N --report FILE "
                "[--seed S] [--answer-rate R] [--answer-hold K] [--move-every K]\n");
        free(f.gw_list);
        return 2;
    }
    lg_raise_nofile();
    g.base = event_base_new();
    f.pnes = calloc((size_t)n, sizeof *f.pnes);
    int rv = 1;
    if (g.base && f.pnes && lg_pnes_new(&g, (uint32_t)n) == 0)
        rv = report ? serve(&g, report) : bench(&g, gw_pid);
    for (uint32_t i = 0; f.pnes && i < (uint32_t)n; i++)
        free(f.pnes[i].keys);
    free(f.pnes);
    free(f.gw_list);
    lg_pnes_free(&g);
    return rv;
}
