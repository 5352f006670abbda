/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pne-minimal: a complete CPNS PNE in one file, on plain POSIX sockets and
 * poll(): how to embed libcpns's sans-I/O PNE engine (cpns/pne.h) in your own
 * event loop. The engine never touches a socket or a clock. This program
 * connects to the PN GW's PNE port (plain TCP: the Group Key is protected end
 * to end by the Entity User Key), feeds the engine the frames that arrive
 * (cpns_frame_reader -> cpns_pne_recv), sends what it queues (cpns_pne_pop ->
 * cpns_frame_encode) and runs its one timer (cpns_pne_get_expiry). The engine
 * registers (PNERegistrationRequest with its Proof), decrypts each Group Key
 * delivered, stores it in the key store (cpns/keystore.h; here the file
 * backend, the format cpns-pne uses, so `cpns-pne keys` lists the keys) and
 * answers. This program prints what was stored and exits after N keys or on
 * SIGINT/SIGTERM; it reconnects after 1 s when the connection drops.
 *
 * Build against the installed library:
 *     cc -std=c11 -o pne-minimal pne-minimal.c $(pkg-config --cflags --libs cpns)
 * Run, with the key file `cpnsctl pne add PNEID --key-out FILE` wrote:
 *     ./pne-minimal -i PNEID -g HOST:PORT -k KEY_FILE -s STORE_DIR [-n N]
 * Prints "registered PNID" once registered and "key SGID KeyVersion FINGERPRINT"
 * for each Group Key stored (the fingerprint `cpnsctl sg show` shows). Exits 0
 * after N keys (-n; 0, the default: until a signal), 1 on an error or when
 * the server refuses the PNE, 2 on a bad command line.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cpns/cpns.h>

typedef struct app {
    cpns_pne *pne;
    cpns_keystore *ks;
    cpns_frame_reader *reader;
    int fd;
    long keys, want;
} app;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The engine's now_ms only times intervals (monotonic); the registration's Time is wall time. */
static int64_t now(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

static int64_t wall_clock(void *arg)
{
    (void)arg;
    return clock_ms(CLOCK_REALTIME);
}

/* The Entity User Key: base64 of 32 bytes and a newline, as cpnsctl writes it. */
static int read_euk(const char *path, uint8_t EUK[CPNS_KEY_LEN])
{
    char line[128];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line, f), len = 0;
    fclose(f);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    int rv = cpns_b64_decode(line, n, EUK, CPNS_KEY_LEN, &len);
    cpns_wipe(line, sizeof line);
    return rv == 0 && len == CPNS_KEY_LEN ? 0 : -1;
}

/* A blocking TCP connection to "HOST:PORT" ("[::1]:7461" too), or -1. */
static int dial(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    if (!colon || hl >= sizeof host)
        return -1;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    char *h = host;
    if (h[0] == '[' && hl > 1 && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(h, colon + 1, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The engine's answers say what it stored: a SGroupKeyDeliveryResponse with Return 1. */
static void report(app *a, const uint8_t *data, size_t len)
{
    cpns_msg m;
    if (cpns_msg_decode(data, len, &m) != 0 || m.kind != CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE)
        return;
    if (m.Return != CPNS_RETURN_SUCCESS) {
        fprintf(stderr, "pne-minimal: a delivery answered with Return %u\n", (unsigned)m.Return);
        return;
    }
    cpns_stored_keys keys;
    if (a->ks->ops->get(a->ks, m.SGID, &keys) != 0)
        return;
    const cpns_key_slot *k =
        keys.current.KeyVersion == m.KeyVersion ? &keys.current : &keys.previous;
    char fp[CPNS_FINGERPRINT_LEN + 1];
    cpns_fingerprint(k->GK, CPNS_KEY_LEN, fp);
    cpns_wipe(&keys, sizeof keys);
    printf("key %s %u %s\n", m.SGID, (unsigned)m.KeyVersion, fp);
    fflush(stdout);
    a->keys++;
}

/* Sends every frame the engine queued. 0, or -1 when the connection failed. */
static int flush(app *a)
{
    cpns_out out;
    while (cpns_pne_pop(a->pne, &out) == 1) {
        uint8_t frame[CPNS_FRAME_HDR + 4096]; /* a PNE's frames are all far smaller */
        size_t n;
        if (cpns_frame_encode(out.data, out.len, frame, sizeof frame, &n) != 0 ||
            send_all(a->fd, frame, n) != 0)
            return -1;
        report(a, out.data, out.len);
    }
    return 0;
}

/* Until the engine's timer (the registration resend) expires; -1: no timer. */
static int poll_timeout(const cpns_pne *pne)
{
    int64_t expiry = cpns_pne_get_expiry(pne);
    if (expiry == CPNS_NEVER)
        return -1;
    int64_t wait = expiry - now();
    return wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait;
}

/* One connection: 0 when done (N keys, a signal), 1 when it dropped, -1 when refused. */
static int session(app *a)
{
    cpns_pne_state last = CPNS_PNE_OFFLINE;
    cpns_frame_reader_reset(a->reader);
    if (cpns_pne_link_up(a->pne, now()) != 0 || flush(a) != 0)
        return 1;
    while (!stop && (a->want == 0 || a->keys < a->want)) {
        struct pollfd p = {.fd = a->fd, .events = POLLIN};
        int n = poll(&p, 1, poll_timeout(a->pne));
        if (n < 0 && errno != EINTR)
            return 1;
        if (n == 0 && (cpns_pne_handle_expiry(a->pne, now()) != 0 || flush(a) != 0))
            return 1;
        if (n <= 0)
            continue;
        uint8_t buf[4096];
        ssize_t got = recv(a->fd, buf, sizeof buf, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 1; /* the GW closed the connection, or it failed */
        const uint8_t *at = buf;
        size_t left = (size_t)got;
        while (left > 0) {
            size_t used, len;
            const uint8_t *payload;
            int rv = cpns_frame_reader_feed(a->reader, at, left, &used, &payload, &len);
            if (rv < 0) {
                fprintf(stderr, "pne-minimal: bad frame from the GW: %s\n", cpns_strerror(rv));
                return 1;
            }
            at += used;
            left -= used;
            if (rv == 1 && (cpns_pne_recv(a->pne, payload, len, now()) != 0 || flush(a) != 0))
                return 1;
        }
        cpns_pne_state st = cpns_pne_get_state(a->pne);
        if (st == CPNS_PNE_REGISTERED && last != st) {
            printf("registered %s\n", cpns_pne_pnid(a->pne));
            fflush(stdout);
        }
        if (st == CPNS_PNE_REFUSED) {
            fprintf(stderr, "pne-minimal: the server refused this PNE (Return %d)\n",
                    cpns_pne_last_return(a->pne));
            return -1;
        }
        last = st;
    }
    return 0;
}

/* Connects, runs sessions and reconnects until done. The exit status. */
static int run(app *a, const char *gw)
{
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int status = 1, rv;
    while (!stop) {
        a->fd = dial(gw);
        rv = a->fd < 0 ? 1 : session(a);
        if (a->fd >= 0) {
            /* Graceful: our last answer reaches the GW before the connection goes. */
            shutdown(a->fd, SHUT_WR);
            uint8_t drain[512];
            struct pollfd p = {.fd = a->fd, .events = POLLIN};
            while (poll(&p, 1, 1000) > 0 && recv(a->fd, drain, sizeof drain, 0) > 0)
                ;
            close(a->fd);
            cpns_pne_link_down(a->pne, now());
        }
        if (rv <= 0) {
            status = -rv;
            break;
        }
        fprintf(stderr, "pne-minimal: no connection to the GW at %s; again in 1 s\n", gw);
        poll(NULL, 0, 1000);
    }
    return stop ? 0 : status;
}

int main(int argc, char **argv)
{
    const char *PNEID = NULL, *gw = NULL, *key_file = NULL, *store = NULL;
    app a = {.fd = -1};
    int c;
    while ((c = getopt(argc, argv, "i:g:k:s:n:")) != -1) {
        if (c == 'i')
            PNEID = optarg;
        else if (c == 'g')
            gw = optarg;
        else if (c == 'k')
            key_file = optarg;
        else if (c == 's')
            store = optarg;
        else if (c == 'n')
            a.want = strtol(optarg, NULL, 10);
        else
            return 2;
    }
    if (!PNEID || !gw || !key_file || !store || a.want < 0 || optind != argc) {
        fprintf(stderr,
                "usage: pne-minimal -i PNEID -g HOST:PORT -k KEY_FILE -s STORE_DIR [-n N]\n");
        return 2;
    }
    uint8_t EUK[CPNS_KEY_LEN];
    if (read_euk(key_file, EUK) != 0) {
        fprintf(stderr, "pne-minimal: %s: not the base64 of a 32-byte key\n", key_file);
        return 1;
    }
    int rv = cpns_keystore_file_open(&a.ks, store, EUK);
    cpns_pne_config cfg = {.PNEID = PNEID, .EUK = EUK, .keystore = a.ks, .wall_clock = wall_clock};
    if (rv == 0)
        rv = cpns_pne_new(&a.pne, &cfg);
    if (rv == 0)
        rv = cpns_frame_reader_new(&a.reader, 0);
    cpns_wipe(EUK, sizeof EUK); /* the engine keeps only what it derived from it */
    int status = 1;
    if (rv != 0)
        fprintf(stderr, "pne-minimal: %s\n", cpns_strerror(rv));
    else
        status = run(&a, gw);
    cpns_frame_reader_free(a.reader);
    cpns_pne_free(a.pne);
    cpns_keystore_free(a.ks);
    return status;
}
