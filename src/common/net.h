/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network layer of the daemons, on libevent: listeners and outgoing
 * connections carrying cpns/1 frames (4-byte big-endian length, payload of
 * 1..65536 bytes), over plain TCP or TLS 1.3 (bufferevent_openssl).
 *
 * A frame outside the size limit closes the connection; so does a peer that
 * leaves a frame half-sent for longer than the stall timeout (counted from the
 * last bytes received), an accepted TLS connection whose handshake takes
 * longer than that, and a close that flushes to a peer that stops reading.
 * TCP keepalive is on for every connection. A listener whose accept() fails
 * (out of descriptors or memory) pauses 100 ms instead of retrying at once.
 */
#ifndef CPNS_NET_H
#define CPNS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

typedef struct net_conn net_conn;
typedef struct net_listener net_listener;

typedef struct net_conn_cbs {
    /* The connection is usable (TCP connected and, with TLS, handshake done). */
    void (*on_open)(net_conn *c, void *arg);
    /* One complete frame payload; valid during the call only. */
    void (*on_frame)(net_conn *c, const uint8_t *data, size_t len, void *arg);
    /* The connection is gone (never called after net_conn_close()). reason is for the log. */
    void (*on_close)(net_conn *c, const char *reason, void *arg);
} net_conn_cbs;

/* Called for every accepted connection; the callee sets its callbacks with net_conn_set_cbs. */
typedef void (*net_accept_fn)(net_conn *c, void *arg);

/*
 * TLS contexts, TLS 1.3 only. The server side requires and verifies a client
 * certificate against ca when require_client is true. 0 or -1 with err.
 */
SSL_CTX *net_tls_server_ctx(const char *cert, const char *key, const char *ca, bool require_client,
                            char *err, size_t errlen);
SSL_CTX *net_tls_client_ctx(const char *cert, const char *key, const char *ca, char *err,
                            size_t errlen);

/*
 * Listens on "HOST:PORT" (port 0 picks a free one: see net_listener_port).
 * tls NULL = plain TCP. NULL with err on failure.
 */
net_listener *net_listen(struct event_base *base, const char *addr, SSL_CTX *tls,
                         net_accept_fn on_accept, void *arg, char *err, size_t errlen);
uint16_t net_listener_port(const net_listener *l);

/*
 * At most n connections from one source address open at once through this
 * listener (0: no limit, the default); more are closed at accept, logged
 * (rate-limited), and never reach on_accept.
 */
void net_listener_set_per_addr_cap(net_listener *l, size_t n);
/*
 * Whether the cap spares loopback peers (127.0.0.0/8, ::1): default false. A
 * daemon's default cap can spare them (the host's own processes, one address
 * for all: test rigs, benchmarks) while an explicit one applies to all.
 */
void net_listener_set_loopback_exempt(net_listener *l, bool exempt);
void net_listener_free(net_listener *l);

/*
 * Every TCP connection, accepted or made, is tuned so that a peer that
 * vanishes (its host powered off, a cable pulled: no FIN, no RST) is found
 * dead in about two minutes, whether the connection is idle or not:
 * - idle: keepalive probes after NET_KEEPIDLE_S, every NET_KEEPINTVL_S,
 *   NET_KEEPCNT unanswered ones close it (60 + 6 x 10 s);
 * - with data unacknowledged (the kernel's retransmissions would otherwise
 *   go on for ~15 minutes, and keepalive does not probe then):
 *   TCP_USER_TIMEOUT, the same two minutes.
 * A GW whose server instance vanished then fails over to the next address
 * (cluster mode, active/standby) instead of waiting on a dead socket.
 * TCP_NODELAY too: frames are small and each one is a whole message.
 */
#define NET_KEEPIDLE_S 60
#define NET_KEEPINTVL_S 10
#define NET_KEEPCNT 6
#define NET_USER_TIMEOUT_MS ((NET_KEEPIDLE_S + NET_KEEPINTVL_S * NET_KEEPCNT) * 1000u)
void net_socket_tune(int fd);

/* Connects to "HOST:PORT"; on_open or on_close follows. NULL with err on immediate failure. */
net_conn *net_connect(struct event_base *base, const char *addr, SSL_CTX *tls,
                      const net_conn_cbs *cbs, void *arg, char *err, size_t errlen);

void net_conn_set_cbs(net_conn *c, const net_conn_cbs *cbs, void *arg);

/* Queues one frame. 0, or -1 if the payload is empty or over the limit. */
int net_conn_send(net_conn *c, const uint8_t *data, size_t len);

/* Bytes queued for sending and not yet written. */
size_t net_conn_pending(const net_conn *c);

/*
 * Backpressure: stops (true) or resumes (false) reading from the connection.
 * Frames already buffered are not delivered while paused.
 */
void net_conn_pause_read(net_conn *c, bool pause);

/*
 * A deadline for a connection to authenticate: unless net_conn_clear_deadline()
 * is called within `seconds` (from this call; it covers the TLS handshake), the
 * connection is closed and on_close() is called with `reason` (a static string).
 */
void net_conn_set_deadline(net_conn *c, int seconds, const char *reason);
void net_conn_clear_deadline(net_conn *c);
/* Whether a deadline is set and not cleared (nor expired). */
bool net_conn_deadline_pending(const net_conn *c);

/*
 * Calls on_drain(c, arg of the connection's callbacks) whenever a write
 * leaves at most `low` bytes queued for sending (libevent's write low
 * watermark): the sender's cue to resume what net_conn_pending() made it
 * stop. NULL stops the calls.
 */
void net_conn_set_on_drain(net_conn *c, size_t low, void (*on_drain)(net_conn *c, void *arg));

/* The peer's address without the port ("192.0.2.1", "::1"), for per-address caps and logs. */
const char *net_conn_peer_ip(const net_conn *c);

/* The verified peer certificate's subject CN, or NULL (plain TCP, no cert). */
const char *net_conn_peer_cn(const net_conn *c);
/* "ip:port" of the peer, for the log. */
const char *net_conn_peer_addr(const net_conn *c);

/* The glue's handle for the connection (engines' conn/link ids). */
void net_conn_set_id(net_conn *c, uint64_t id);
uint64_t net_conn_id(const net_conn *c);

/* Sets how long a half-received frame may stall before the connection is dropped (default 30 s). */
void net_conn_set_stall_timeout(net_conn *c, int seconds);

/*
 * Frees an event base at shutdown. A connection closed just before can still
 * have a deferred callback that holds its bufferevent: those run first, since
 * freeing the base would drop them and leak the bufferevent with its buffers
 * (found by LeakSanitizer). NULL is fine.
 */
void net_base_free(struct event_base *base);

/* Closes after flushing what is queued (flush=true) or at once; no on_close callback follows. */
void net_conn_close(net_conn *c, bool flush);

#endif
