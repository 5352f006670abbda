/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns/1 framing over libevent bufferevents, plain or TLS (net.h).
 *
 * Reading: the input buffer's chunks are fed, in place, to the connection's
 * frame reader (cpns/frame.h); each complete payload is delivered, then its
 * bytes are drained. A frame split across chunks is gathered by the reader.
 * A bad length closes the connection at once. Writing: header
 * (cpns_frame_header) and payload are appended to the output buffer;
 * libevent writes them as the socket allows.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "cpns/frame.h"
#include "cpns/msg.h"
#include "daemon.h"
#include "net.h"

/* Bytes one read or write callback may move (the default is 16 KB). */
#define NET_MAX_SINGLE_IO (256 * 1024)

/*
 * A listener whose accept() fails for want of a descriptor or memory leaves
 * the connection queued: retried at once, it would fail again on every loop
 * turn (a spin, and a log line each time). It pauses this long instead.
 */
#define ACCEPT_PAUSE_MS 100

/* The stall reason while an accepted TLS connection has not completed its handshake. */
static const char HANDSHAKE_STALLED[] = "the TLS handshake stalled";

/* Buckets of a listener's per-address table (chained; any number of addresses). */
#define ADDR_BUCKETS 256

/*
 * The live accepted connections from one source address through one
 * listener. Each connection holds its slot and releases it when freed,
 * however it closes; a listener freed first detaches its slots (owner NULL),
 * and the last connection of a detached slot frees it.
 */
typedef struct addr_slot {
    struct addr_slot *next, *prev;
    struct net_listener *owner;
    size_t bucket;
    size_t n;
    char ip[INET6_ADDRSTRLEN];
} addr_slot;

struct net_conn {
    struct bufferevent *bev;
    SSL *ssl;
    cpns_frame_reader *reader; /* the partial frame received so far */
    net_conn_cbs cbs;
    void *arg;
    uint64_t id;
    bool open;
    bool closing; /* closed by the glue: no more callbacks */
    bool flush;   /* ... after writing what is queued */
    int in_cb;    /* inside a callback: freeing waits until it returns */
    char peer_cn[CPNS_ID_MAX + 1];
    bool has_peer_cn;
    char peer_addr[64];
    char peer_ip[INET6_ADDRSTRLEN];
    struct event *stall;
    int stall_seconds;
    const char *stall_reason;
    struct event *deadline; /* net_conn_set_deadline(), created on first use */
    const char *deadline_reason;
    bool paused; /* net_conn_pause_read(true) */
    void (*on_drain)(net_conn *c, void *arg);
    addr_slot *slot; /* the listener's count of connections from peer_ip */
};

struct net_listener {
    struct evconnlistener *lev;
    SSL_CTX *tls;
    net_accept_fn on_accept;
    void *arg;
    uint16_t port;
    struct event *resume; /* re-enables accepting after a failed accept() */
    size_t per_addr_cap;  /* 0: no limit */
    bool loopback_exempt;
    addr_slot *addrs[ADDR_BUCKETS];
};

static void tls_error(const char *what, char *err, size_t errlen)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s: %s", what, buf);
    ERR_clear_error();
}

static SSL_CTX *tls_ctx(const SSL_METHOD *method, const char *cert, const char *key, const char *ca,
                        char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx) {
        tls_error("TLS", err, errlen);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    char what[600];
    if (keyfile_check_private(key, what, sizeof what) != 0) {
        snprintf(err, errlen, "--tls-key %s", what);
        goto fail_quiet;
    }
    snprintf(what, sizeof what, "--tls-cert %s", cert);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        goto fail;
    snprintf(what, sizeof what, "--tls-key %s", key);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    snprintf(what, sizeof what, "--tls-ca %s", ca);
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        goto fail;
    return ctx;
fail:
    tls_error(what, err, errlen);
fail_quiet:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *net_tls_server_ctx(const char *cert, const char *key, const char *ca, bool require_client,
                            char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_ctx(TLS_server_method(), cert, key, ca, err, errlen);
    if (ctx && require_client)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return ctx;
}

SSL_CTX *net_tls_client_ctx(const char *cert, const char *key, const char *ca, char *err,
                            size_t errlen)
{
    SSL_CTX *ctx = tls_ctx(TLS_client_method(), cert, key, ca, err, errlen);
    if (ctx)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static size_t addr_hash(const char *ip)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *ip; ip++)
        h = (h ^ (uint8_t)*ip) * 16777619u;
    return h % ADDR_BUCKETS;
}

static addr_slot *addr_find(net_listener *l, const char *ip)
{
    for (addr_slot *s = l->addrs[addr_hash(ip)]; s; s = s->next)
        if (strcmp(s->ip, ip) == 0)
            return s;
    return NULL;
}

/* Counts one more connection from ip; NULL when out of memory. */
static addr_slot *addr_take(net_listener *l, const char *ip)
{
    addr_slot *s = addr_find(l, ip);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        snprintf(s->ip, sizeof s->ip, "%s", ip);
        s->owner = l;
        s->bucket = addr_hash(ip);
        s->next = l->addrs[s->bucket];
        if (s->next)
            s->next->prev = s;
        l->addrs[s->bucket] = s;
    }
    s->n++;
    return s;
}

static void addr_release(addr_slot *s)
{
    if (!s || --s->n > 0)
        return;
    if (s->owner) {
        if (s->prev)
            s->prev->next = s->next;
        else
            s->owner->addrs[s->bucket] = s->next;
        if (s->next)
            s->next->prev = s->prev;
    }
    free(s);
}

static void conn_free(net_conn *c)
{
    addr_release(c->slot);
    if (c->stall)
        event_free(c->stall);
    if (c->deadline)
        event_free(c->deadline);
    if (c->bev)
        bufferevent_free(c->bev); /* frees the SSL too (BEV_OPT_CLOSE_ON_FREE) */
    cpns_frame_reader_free(c->reader);
    free(c);
}

static void conn_fail(net_conn *c, const char *reason)
{
    net_conn_cbs cbs = c->cbs;
    void *arg = c->arg;
    bool notify = !c->closing;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    c->in_cb++; /* a net_conn_close() from on_close must not free c under us */
    if (notify && cbs.on_close)
        cbs.on_close(c, reason, arg);
    conn_free(c);
}

static void read_peer_cn(net_conn *c)
{
    if (!c->ssl)
        return;
    X509 *cert = SSL_get1_peer_certificate(c->ssl);
    if (!cert)
        return;
    if (SSL_get_verify_result(c->ssl) == X509_V_OK) {
        X509_NAME *name = X509_get_subject_name(cert);
        int n = X509_NAME_get_text_by_NID(name, NID_commonName, c->peer_cn, sizeof c->peer_cn);
        c->has_peer_cn = n > 0 && (size_t)n < sizeof c->peer_cn;
    }
    X509_free(cert);
}

/* Completes net_conn_close() once no callback is running. */
static void finish_close(net_conn *c)
{
    if (c->flush && c->open && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return; /* write_cb frees it once the output is written */
    conn_free(c);
}

static void arm_stall(net_conn *c, const char *reason)
{
    struct timeval tv = {c->stall_seconds, 0};
    c->stall_reason = reason;
    evtimer_add(c->stall, &tv); /* re-arms a pending timer: the deadline moves on */
}

static void stall_cb(evutil_socket_t fd, short what, void *arg)
{
    net_conn *c = arg;
    (void)fd;
    (void)what;
    /* A close that flushes to a peer that never reads gives up here (no callback). */
    if (c->closing) {
        conn_free(c);
        return;
    }
    conn_fail(c, c->stall_reason);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    net_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->closing) {
        conn_free(c);
        return;
    }
    conn_fail(c, c->deadline_reason);
}

/* Why the reader refused a header, for on_close (the tests look for "length"). */
static const char *frame_error(int rv)
{
    switch (rv) {
    case CPNS_ERR_MALFORMED:
        return "frame length out of range: 0";
    case CPNS_ERR_TOO_LARGE:
        return "frame length out of range: over 65536";
    case CPNS_ERR_NOMEM:
        return "out of memory";
    default:
        return cpns_strerror(rv);
    }
}

/*
 * The first non-empty chunk of the input, to feed to the reader in place:
 * 1 with *v, 0 when the input is empty, -1 out of memory.
 */
static int first_chunk(struct evbuffer *in, struct evbuffer_iovec *v)
{
    if (evbuffer_get_length(in) == 0)
        return 0;
    struct evbuffer_iovec vs[4];
    int n = evbuffer_peek(in, -1, NULL, vs, 4);
    for (int i = 0; i < n && i < 4; i++) {
        if (vs[i].iov_len > 0) {
            *v = vs[i];
            return 1;
        }
    }
    /* Leading empty chunks (libevent keeps none, but costs nothing to cover). */
    const unsigned char *p = evbuffer_pullup(in, 1);
    if (!p)
        return -1;
    v->iov_base = (void *)p;
    v->iov_len = 1;
    return 1;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    net_conn *c = arg;
    /* A read deferred before net_conn_close(c, true) still runs: the glue has let go of c. */
    if (c->closing)
        return;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        if (c->paused) {
            evtimer_del(c->stall); /* not the peer's delay: resuming re-arms it */
            return;
        }
        struct evbuffer_iovec v;
        int got = first_chunk(in, &v);
        if (got == 0)
            break;
        size_t used = 0, len;
        const uint8_t *p;
        int rv = got < 0
                     ? CPNS_ERR_NOMEM
                     : cpns_frame_reader_feed(c->reader, v.iov_base, v.iov_len, &used, &p, &len);
        if (rv < 0) {
            conn_fail(c, frame_error(rv));
            return;
        }
        if (rv == 1 && c->cbs.on_frame) {
            c->in_cb++;
            c->cbs.on_frame(c, p, len, c->arg);
            c->in_cb--;
        }
        if (c->closing) {
            finish_close(c);
            return;
        }
        /* After the callback: the payload may point into this chunk. */
        evbuffer_drain(in, used);
    }
    /*
     * Part of a frame is left. This callback runs when bytes arrived, so the
     * peer is making progress: the stall deadline starts again from now
     * (#10.9: re-arming only when idle dropped a steady peer that always had
     * half a frame in flight).
     */
    if (cpns_frame_reader_pending(c->reader) > 0 || evbuffer_get_length(in) > 0)
        arm_stall(c, "a frame stalled half-received");
    else
        evtimer_del(c->stall);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    net_conn *c = arg;
    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_free(c);
        return;
    }
    if (c->on_drain) {
        c->in_cb++;
        c->on_drain(c, c->arg);
        c->in_cb--;
        if (c->closing)
            finish_close(c);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    net_conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        c->open = true;
        if (c->stall_reason == HANDSHAKE_STALLED && !c->closing)
            evtimer_del(c->stall); /* the handshake's own stall timer (accept_cb) */
        read_peer_cn(c);
        if (c->cbs.on_open) {
            c->in_cb++;
            c->cbs.on_open(c, c->arg);
            c->in_cb--;
        }
        if (c->closing)
            finish_close(c);
        return;
    }
    char reason[300];
    if (what & BEV_EVENT_EOF) {
        snprintf(reason, sizeof reason, "closed by peer");
    } else {
        unsigned long e = c->bev ? bufferevent_get_openssl_error(c->bev) : 0;
        if (e) {
            char buf[256];
            ERR_error_string_n(e, buf, sizeof buf);
            snprintf(reason, sizeof reason, "TLS: %s", buf);
        } else {
            int err = EVUTIL_SOCKET_ERROR();
            snprintf(reason, sizeof reason, "%s",
                     err ? evutil_socket_error_to_string(err) : "connection error");
        }
    }
    if (c->closing) {
        conn_free(c);
        return;
    }
    conn_fail(c, reason);
}

void net_socket_tune(int fd)
{
    int on = 1, idle = NET_KEEPIDLE_S, intvl = NET_KEEPINTVL_S, cnt = NET_KEEPCNT;
    unsigned user_timeout = NET_USER_TIMEOUT_MS;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static net_conn *conn_new(struct event_base *base, evutil_socket_t fd, SSL_CTX *tls, bool accepting)
{
    net_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->stall_seconds = 30;
    c->stall_reason = "a frame stalled half-received";
    c->stall = evtimer_new(base, stall_cb, c);
    if (!c->stall || cpns_frame_reader_new(&c->reader, 0) != 0) {
        if (c->stall)
            event_free(c->stall);
        free(c);
        return NULL;
    }
    int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    if (tls) {
        c->ssl = SSL_new(tls);
        if (!c->ssl) {
            conn_free(c);
            return NULL;
        }
        c->bev = bufferevent_openssl_socket_new(
            base, fd, c->ssl, accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
            opts);
        if (!c->bev)
            SSL_free(c->ssl);
    } else {
        c->bev = bufferevent_socket_new(base, fd, opts);
    }
    if (!c->bev) {
        conn_free(c);
        return NULL;
    }
    /*
     * libevent reads and writes at most 16 KB per callback by default: a few
     * dozen frames. The server commits once per loop turn, so a bigger bite
     * per turn means fewer commits (fsyncs) for the same frames.
     */
    bufferevent_set_max_single_read(c->bev, NET_MAX_SINGLE_IO);
    bufferevent_set_max_single_write(c->bev, NET_MAX_SINGLE_IO);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return c;
}

/* "192.0.2.1" or "2001:db8::1" (an IPv4-mapped IPv6 address as IPv4), and the port. */
static void sockaddr_ip(const struct sockaddr *sa, char *host, size_t hostlen, int *port)
{
    snprintf(host, hostlen, "?");
    *port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &sin->sin_addr, host, hostlen);
        *port = ntohs(sin->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            evutil_inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], host, hostlen);
        else
            evutil_inet_ntop(AF_INET6, &sin6->sin6_addr, host, hostlen);
        *port = ntohs(sin6->sin6_port);
    }
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family != AF_INET6)
        return false;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    net_listener *l = arg;
    (void)salen;
    char host[INET6_ADDRSTRLEN];
    int port;
    sockaddr_ip(sa, host, sizeof host, &port);
    addr_slot *slot = addr_find(l, host);
    if (l->per_addr_cap && slot && slot->n >= l->per_addr_cap &&
        !(l->loopback_exempt && is_loopback(sa))) {
        /* Before any allocation or handshake: the cheapest refusal there is. */
        evutil_closesocket(fd);
        log_warn("port %u: connection from %s refused: %zu connections from that address "
                 "already open (the per-address limit)",
                 l->port, host, slot->n);
        return;
    }
    net_socket_tune(fd);
    net_conn *c = conn_new(evconnlistener_get_base(lev), fd, l->tls, true);
    if (c)
        c->slot = addr_take(l, host);
    if (!c || !c->slot) {
        if (c)
            conn_free(c); /* closes fd */
        else
            evutil_closesocket(fd);
        log_error("cannot accept a connection: out of memory");
        return;
    }
    snprintf(c->peer_ip, sizeof c->peer_ip, "%s", host);
    snprintf(c->peer_addr, sizeof c->peer_addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
             port);
    c->in_cb++;
    l->on_accept(c, l->arg);
    /*
     * A TLS handshake that never completes would hold the slot for good (the
     * frame stall timer only starts on a partial frame): the stall timeout
     * (as the glue set it in on_accept) covers it, whatever deadline it set.
     */
    if (l->tls && !c->closing)
        arm_stall(c, HANDSHAKE_STALLED);
    /* Plain TCP is usable at once; with TLS, on_open follows the handshake. */
    if (!l->tls && !c->closing) {
        c->open = true;
        if (c->cbs.on_open)
            c->cbs.on_open(c, c->arg);
    }
    c->in_cb--;
    if (c->closing)
        finish_close(c);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    net_listener *l = arg;
    (void)fd;
    (void)what;
    evconnlistener_enable(l->lev);
}

/*
 * accept() failed for a reason other than a retriable one (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM): pause, log once per pause, and retry later (#10.4).
 */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
    net_listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    evconnlistener_disable(lev);
    if (!evtimer_pending(l->resume, NULL))
        log_warn("port %u: cannot accept a connection (%s): pausing for %d ms", l->port,
                 evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    evtimer_add(l->resume, &tv);
}

static int resolve(const char *addr, bool listening, struct sockaddr_storage *ss, int *sslen,
                   char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (addr_parse(addr, host, sizeof host, &port) != 0 || (port == 0 && !listening)) {
        snprintf(err, errlen, "%s: not HOST:PORT", addr);
        return -1;
    }
    struct evutil_addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    int rv = evutil_getaddrinfo(host, portstr, &hints, &res);
    if (rv != 0 || !res) {
        snprintf(err, errlen, "%s: %s", addr, evutil_gai_strerror(rv));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (int)res->ai_addrlen;
    evutil_freeaddrinfo(res);
    return 0;
}

net_listener *net_listen(struct event_base *base, const char *addr, SSL_CTX *tls,
                         net_accept_fn on_accept, void *arg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen;
    if (resolve(addr, true, &ss, &sslen, err, errlen) != 0)
        return NULL;
    net_listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->tls = tls;
    l->on_accept = on_accept;
    l->arg = arg;
    l->resume = evtimer_new(base, resume_cb, l);
    if (!l->resume) {
        snprintf(err, errlen, "out of memory");
        free(l);
        return NULL;
    }
    l->lev = evconnlistener_new_bind(
        base, accept_cb, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 512,
        (struct sockaddr *)&ss, sslen);
    if (!l->lev) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        event_free(l->resume);
        free(l);
        return NULL;
    }
    evconnlistener_set_error_cb(l->lev, accept_error_cb);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&bound, &blen) == 0) {
        if (bound.ss_family == AF_INET)
            l->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        else if (bound.ss_family == AF_INET6)
            l->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    return l;
}

uint16_t net_listener_port(const net_listener *l)
{
    return l->port;
}

void net_listener_set_per_addr_cap(net_listener *l, size_t n)
{
    l->per_addr_cap = n;
}

void net_listener_set_loopback_exempt(net_listener *l, bool exempt)
{
    l->loopback_exempt = exempt;
}

void net_listener_free(net_listener *l)
{
    if (!l)
        return;
    evconnlistener_free(l->lev);
    event_free(l->resume);
    /* Connections still open keep their slots, detached from the table. */
    for (size_t i = 0; i < ADDR_BUCKETS; i++)
        for (addr_slot *s = l->addrs[i]; s; s = s->next)
            s->owner = NULL;
    free(l);
}

net_conn *net_connect(struct event_base *base, const char *addr, SSL_CTX *tls,
                      const net_conn_cbs *cbs, void *arg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen;
    if (resolve(addr, false, &ss, &sslen, err, errlen) != 0)
        return NULL;
    net_conn *c = conn_new(base, -1, tls, false);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->cbs = *cbs;
    c->arg = arg;
    snprintf(c->peer_addr, sizeof c->peer_addr, "%s", addr);
    int port;
    sockaddr_ip((struct sockaddr *)&ss, c->peer_ip, sizeof c->peer_ip, &port);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, sslen) != 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(errno));
        conn_free(c);
        return NULL;
    }
    net_socket_tune(bufferevent_getfd(c->bev));
    return c;
}

void net_conn_set_cbs(net_conn *c, const net_conn_cbs *cbs, void *arg)
{
    c->cbs = *cbs;
    c->arg = arg;
}

int net_conn_send(net_conn *c, const uint8_t *data, size_t len)
{
    uint8_t hdr[CPNS_FRAME_HDR];
    if (c->closing || cpns_frame_header(hdr, len) != 0)
        return -1;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_add(out, hdr, sizeof hdr) != 0 || evbuffer_add(out, data, len) != 0)
        return -1;
    return 0;
}

size_t net_conn_pending(const net_conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void net_conn_pause_read(net_conn *c, bool pause)
{
    if (c->closing || c->paused == pause)
        return;
    c->paused = pause;
    if (pause) {
        bufferevent_disable(c->bev, EV_READ);
        evtimer_del(c->stall);
        return;
    }
    bufferevent_enable(c->bev, EV_READ);
    /*
     * Frames that arrived before the pause are still buffered, and no new
     * byte may come to run read_cb for them: run it, deferred, so that a
     * resume from inside a callback does not re-enter this connection.
     */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void net_conn_set_deadline(net_conn *c, int seconds, const char *reason)
{
    if (c->closing)
        return;
    if (!c->deadline) {
        c->deadline = evtimer_new(bufferevent_get_base(c->bev), deadline_cb, c);
        if (!c->deadline) {
            /* Cannot time it: refuse the connection rather than trust it forever. */
            net_conn_close(c, false);
            return;
        }
    }
    c->deadline_reason = reason;
    struct timeval tv = {seconds, 0};
    evtimer_add(c->deadline, &tv);
}

void net_conn_clear_deadline(net_conn *c)
{
    if (c->deadline)
        evtimer_del(c->deadline);
}

bool net_conn_deadline_pending(const net_conn *c)
{
    return c->deadline && evtimer_pending(c->deadline, NULL);
}

void net_conn_set_on_drain(net_conn *c, size_t low, void (*on_drain)(net_conn *c, void *arg))
{
    c->on_drain = on_drain;
    bufferevent_setwatermark(c->bev, EV_WRITE, on_drain ? low : 0, 0);
}

const char *net_conn_peer_ip(const net_conn *c)
{
    return c->peer_ip;
}

const char *net_conn_peer_cn(const net_conn *c)
{
    return c->has_peer_cn ? c->peer_cn : NULL;
}

const char *net_conn_peer_addr(const net_conn *c)
{
    return c->peer_addr;
}

void net_conn_set_id(net_conn *c, uint64_t id)
{
    c->id = id;
}

uint64_t net_conn_id(const net_conn *c)
{
    return c->id;
}

void net_conn_set_stall_timeout(net_conn *c, int seconds)
{
    c->stall_seconds = seconds;
}

void net_base_free(struct event_base *base)
{
    if (!base)
        return;
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
}

void net_conn_close(net_conn *c, bool flush)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->flush = flush;
    /*
     * A flushing close waits for the peer to read what is queued; one that
     * never reads would hold the connection (and its slot) for good, so the
     * stall timeout bounds the wait too.
     */
    if (flush)
        arm_stall(c, "closing");
    else
        evtimer_del(c->stall);
    if (c->deadline)
        evtimer_del(c->deadline);
    bufferevent_disable(c->bev, EV_READ);
    if (!c->in_cb)
        finish_close(c);
}
