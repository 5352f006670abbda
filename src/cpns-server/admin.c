/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side of the admin API (DESIGN.md section 5) on libevent's evhttp:
 * binding, the bearer token of --admin-token-file, routing by path segment,
 * reading JSON bodies, writing JSON answers, and one log line per call.
 * The /v1 resources are in admin_v1.c; /metrics is rendered by metrics.c.
 *
 * /healthz needs no token: it reveals nothing but whether the store commits,
 * and liveness probes seldom carry credentials. Successful GETs are logged at
 * DEBUG (cpnsctl sg wait polls ten times a second); every change and every
 * error is logged at INFO.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <strings.h>

#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/crypto.h>

#include "admin.h"
#include "daemon.h"

/* evhttp reads at most this much of a body; between ADMIN_BODY_MAX and it, we answer in JSON. */
#define HTTP_BODY_HARD_MAX (2 * ADMIN_BODY_MAX)
#define HTTP_HEADERS_MAX (64 * 1024)
#define HTTP_TIMEOUT_S 30
#define PATH_SEGMENTS_MAX 6

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return status < 500 ? "Error" : "Internal Server Error";
    }
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "?";
}

static void send_reply(admin_req *r, int status, struct evbuffer *body, const char *type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    if (type)
        evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    r->status = status;
    evhttp_send_reply(r->req, status, reason_phrase(status), body);
}

void admin_reply_json(admin_req *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        admin_reply_error(r, 500, "out of memory");
        return;
    }
    struct evbuffer *buf = evbuffer_new();
    if (!buf || evbuffer_add(buf, text, strlen(text)) != 0 || evbuffer_add(buf, "\n", 1) != 0) {
        if (buf)
            evbuffer_free(buf);
        free(text);
        send_reply(r, 500, NULL, NULL);
        return;
    }
    free(text);
    send_reply(r, status, buf, "application/json");
    evbuffer_free(buf);
}

void admin_reply_buffer(admin_req *r, int status, struct evbuffer *body)
{
    if (evbuffer_add(body, "\n", 1) != 0) {
        evbuffer_free(body);
        admin_reply_error(r, 500, "out of memory");
        return;
    }
    send_reply(r, status, body, "application/json");
    evbuffer_free(body);
}

void admin_reply_error(admin_req *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    json_t *body = json_pack("{s:s}", "error", r->error);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct evbuffer *buf = evbuffer_new();
    if (buf && text) {
        evbuffer_add(buf, text, strlen(text));
        evbuffer_add(buf, "\n", 1);
    }
    free(text);
    send_reply(r, status, buf, "application/json");
    if (buf)
        evbuffer_free(buf);
}

void admin_reply_empty(admin_req *r)
{
    send_reply(r, 204, NULL, NULL);
}

void admin_reply_method(admin_req *r, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Allow", allow);
    admin_reply_error(r, 405, "%s is not allowed on %s (allowed: %s)", r->method, r->path, allow);
}

void admin_reply_engine(admin_req *r, int rv, const char *what)
{
    switch (rv) {
    case CPNS_ERR_NOMEM:
        admin_reply_error(r, 500, "%s: out of memory", what);
        break;
    case CPNS_ERR_STORE:
        admin_reply_error(r, 503, "%s: the store failed: %s", what, srvd_store_error(r->d, rv));
        break;
    case CPNS_ERR_NOT_FOUND:
        admin_reply_error(r, 404, "%s: not found", what);
        break;
    case CPNS_ERR_EXISTS:
    case CPNS_ERR_STATE:
        admin_reply_error(r, 409, "%s: %s", what, cpns_strerror(rv));
        break;
    case CPNS_ERR_INVALID_ARG:
        admin_reply_error(r, 400, "%s: %s", what, cpns_strerror(rv));
        break;
    default:
        admin_reply_error(r, 500, "%s: %s", what, cpns_strerror(rv));
        break;
    }
}

void admin_wipe_string(json_t *s)
{
    const char *v = json_string_value(s);
    if (v)
        cpns_wipe((char *)v, json_string_length(s));
}

/* Wipes the bytes of an evbuffer where they lie (a body that carried a key). */
static void wipe_evbuffer(struct evbuffer *b)
{
    struct evbuffer_iovec v[16];
    int n = evbuffer_peek(b, -1, NULL, v, 16);
    for (int i = 0; i < n && i < 16; i++)
        cpns_wipe(v[i].iov_base, v[i].iov_len);
}

static json_t *read_body(admin_req *r, const char *const *fields, bool secret, bool null_ok)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(in);
    if (len > ADMIN_BODY_MAX) {
        admin_reply_error(r, 413, "the request body has %zu bytes; at most %zu are accepted", len,
                          ADMIN_BODY_MAX);
        return NULL;
    }
    if (len == 0) {
        admin_reply_error(r, 400, "%s %s needs a JSON object as its body", r->method, r->path);
        return NULL;
    }
    char *text = malloc(len);
    if (!text) {
        admin_reply_error(r, 500, "out of memory");
        return NULL;
    }
    evbuffer_copyout(in, text, len);
    if (secret)
        wipe_evbuffer(in);
    json_error_t je;
    json_t *j =
        json_loadb(text, len, JSON_REJECT_DUPLICATES | (null_ok ? JSON_DECODE_ANY : 0), &je);
    if (secret)
        cpns_wipe(text, len);
    free(text);
    if (!j) {
        admin_reply_error(r, 400, "malformed JSON at line %d, column %d: %s", je.line, je.column,
                          je.text);
        return NULL;
    }
    if (null_ok && json_is_null(j)) {
        json_decref(j);
        j = json_object();
        if (!j)
            admin_reply_error(r, 500, "out of memory");
        return j;
    }
    if (!json_is_object(j)) {
        admin_reply_error(r, 400,
                          null_ok ? "the body must be a JSON object or null"
                                  : "the body must be a JSON object");
        json_decref(j);
        return NULL;
    }
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val)
    {
        size_t i = 0;
        while (fields[i] && strcmp(fields[i], key) != 0)
            i++;
        if (!fields[i]) {
            char allowed[256] = "";
            for (size_t k = 0; fields[k]; k++)
                snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s\"%s\"",
                         k ? ", " : "", fields[k]);
            admin_reply_error(r, 400, "unknown field \"%.64s\" (this call takes %s)", key, allowed);
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

json_t *admin_body(admin_req *r, const char *const *fields, bool secret)
{
    return read_body(r, fields, secret, false);
}

json_t *admin_body_or_null(admin_req *r, const char *const *fields, bool secret)
{
    return read_body(r, fields, secret, true);
}

/* --- authentication --- */

static bool authorized(const srvd *d, struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *token = h + 7;
    while (*token == ' ')
        token++;
    size_t len = strlen(token);
    while (len && token[len - 1] == ' ')
        len--;
    return len == d->token_len && CRYPTO_memcmp(token, d->token, len) == 0;
}

/* --- the routes outside /v1 --- */

static void get_healthz(admin_req *r)
{
    if (!r->d->server) { /* a standby: alive, not serving */
        admin_reply_json(r, 200,
                         json_pack("{s:s, s:s, s:s, s:s}", "status", "standby", "instance",
                                   r->d->opt.instance_id, "active_instance", r->d->active_instance,
                                   "active_admin", r->d->active_admin));
        return;
    }
    /* A turn commits whatever is pending: the store is usable if that works. */
    srvd_turn(r->d);
    if (r->d->store_ok)
        admin_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
    else
        admin_reply_error(r, 503, "the store cannot commit: %s",
                          srvd_store_error(r->d, CPNS_ERR_STORE));
}

static void get_metrics(admin_req *r)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf || srvd_metrics(r->d, buf) != 0) {
        if (buf)
            evbuffer_free(buf);
        admin_reply_error(r, 500, "out of memory");
        return;
    }
    send_reply(r, 200, buf, "text/plain; version=0.0.4; charset=utf-8");
    evbuffer_free(buf);
}

/*
 * Splits the path into at most PATH_SEGMENTS_MAX percent-decoded segments
 * (freed by the caller). -1 when there are more, an empty one (a doubled or
 * trailing slash) or one that decodes to a NUL.
 */
static int split_path(const char *path, char **seg, size_t *n)
{
    *n = 0;
    if (path[0] != '/')
        return -1;
    const char *p = path + 1;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || *n == PATH_SEGMENTS_MAX)
            return -1;
        char *raw = strndup(p, len);
        size_t dlen = 0;
        char *dec = raw ? evhttp_uridecode(raw, 0, &dlen) : NULL;
        free(raw);
        if (!dec)
            return -1;
        seg[(*n)++] = dec;
        if (strlen(dec) != dlen)
            return -1;
        p += len;
        if (*p == '/' && p[1] == '\0')
            return -1;
        if (*p == '/')
            p++;
    }
    return 0;
}

static void route(admin_req *r)
{
    char *seg[PATH_SEGMENTS_MAX];
    size_t n = 0;
    int ok = split_path(r->path, seg, &n);
    bool healthz = ok == 0 && n == 1 && strcmp(seg[0], "healthz") == 0;
    if (r->d->token && !healthz && !authorized(r->d, r->req)) {
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate",
                          "Bearer realm=\"cpns-server\"");
        admin_reply_error(r, 401,
                          "this server needs 'Authorization: Bearer <token>' with the token "
                          "of its --admin-token-file (cpnsctl --token-file FILE)");
    } else if (ok != 0 || n == 0) {
        admin_reply_error(r, 404, "no such path: %s", r->path);
    } else if (healthz || (n == 1 && strcmp(seg[0], "metrics") == 0)) {
        if (r->cmd != EVHTTP_REQ_GET)
            admin_reply_method(r, "GET");
        else if (healthz)
            get_healthz(r);
        else
            get_metrics(r);
    } else if (strcmp(seg[0], "v1") == 0 && n > 1 && !r->d->server) {
        srvd_ha_forward(r->d, r->req); /* a standby: the active instance answers */
        r->status = -1;
    } else if (strcmp(seg[0], "v1") == 0 && n > 1) {
        v1_route(r, seg + 1, n - 1);
    } else {
        admin_reply_error(r, 404, "no such path: %s", r->path);
    }
    for (size_t i = 0; i < n; i++)
        free(seg[i]);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    admin_req r;
    memset(&r, 0, sizeof r);
    r.d = arg;
    r.req = req;
    r.cmd = evhttp_request_get_command(req);
    r.method = method_name(r.cmd);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    r.path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!r.path || !*r.path)
        r.path = "/";
    route(&r);

    bool quiet = r.cmd == EVHTTP_REQ_GET && r.status < 300;
    cpns_log_level level = quiet ? CPNS_LOG_DEBUG : CPNS_LOG_INFO;
    const char *SGID = r.SGID[0] ? r.SGID : NULL;
    const char *PNEID = r.PNEID[0] ? r.PNEID : NULL;
    if (r.status < 0)
        log_msg(CPNS_LOG_DEBUG, NULL, NULL, 0, "admin %s %.200s -> forwarded to %s", r.method,
                r.path, r.d->active_instance);
    else if (r.error[0])
        log_msg(level, SGID, PNEID, 0, "admin %s %.200s -> %d: %s", r.method, r.path, r.status,
                r.error);
    else
        log_msg(level, SGID, PNEID, 0, "admin %s %.200s -> %d", r.method, r.path, r.status);
}

/*
 * An accept() that fails for want of a file descriptor leaves the connection
 * queued, and libevent's listener would retry it on every loop turn: a
 * connection flood made the daemon spin and log some 150,000 lines a second.
 * The listener pauses instead and resumes ACCEPT_PAUSE_MS later, and the
 * failures are logged at most every ACCEPT_LOG_MS. evhttp gives the
 * listener's callbacks its own argument, so the daemon that owns the listener
 * is found here (one per process, like the logger).
 */
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_LOG_MS 10000
/* Connections closed at accept in one go while the admin API is full. */
#define SHED_BATCH 64
static srvd *admin_daemon;

static void accept_failed(srvd *d, int err)
{
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    int64_t now = srvd_now();
    if (d->admin_error_logged_ms == 0 || now - d->admin_error_logged_ms >= ACCEPT_LOG_MS) {
        log_warn("admin API: cannot accept a connection (%s): pausing for %d ms (%llu more "
                 "failures since the last report)",
                 evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS,
                 (unsigned long long)d->admin_errors_unlogged);
        d->admin_error_logged_ms = now;
        d->admin_errors_unlogged = 0;
    } else {
        d->admin_errors_unlogged++;
    }
    evtimer_add(d->admin_resume, &tv);
}

static void refused(srvd *d, uint64_t n)
{
    if (!n)
        return;
    d->admin_refused += n;
    int64_t now = srvd_now();
    if (d->admin_refusal_logged_ms == 0 || now - d->admin_refusal_logged_ms >= ACCEPT_LOG_MS) {
        log_warn("admin API: %zu connections open (the most allowed): further connections are "
                 "closed at once (%llu so far)",
                 d->admin_conns, (unsigned long long)d->admin_refused);
        d->admin_refusal_logged_ms = now;
    }
}

/*
 * Below admin_max open connections the listener accepts; at admin_max it is
 * disabled and the shed event closes what comes in (so that a client is told
 * at once and the backlog does not fill). Neither while an accept() failure
 * pauses them both.
 */
static void admin_accepting(srvd *d)
{
    if (!d->admin_listener || evtimer_pending(d->admin_resume, NULL))
        return;
    if (d->admin_conns + d->admin_new_len >= d->admin_max) {
        evconnlistener_disable(d->admin_listener);
        event_add(d->admin_shed, NULL);
    } else {
        event_del(d->admin_shed);
        evconnlistener_enable(d->admin_listener);
    }
}

static void on_admin_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    admin_accepting(arg);
}

static void on_admin_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    srvd *d = admin_daemon;
    if (!d || lev != d->admin_listener)
        return;
    evconnlistener_disable(lev);
    event_del(d->admin_shed);
    accept_failed(d, err);
}

/* The admin API is full: accept and close at once (a bounded batch per wake-up). */
static void on_admin_shed(evutil_socket_t fd, short what, void *arg)
{
    srvd *d = arg;
    (void)what;
    uint64_t n = 0;
    for (int i = 0; i < SHED_BATCH; i++) {
        evutil_socket_t c = accept(fd, NULL, NULL);
        if (c < 0) {
            int err = errno;
            if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR && err != ECONNABORTED) {
                event_del(d->admin_shed);
                accept_failed(d, err);
            }
            break;
        }
        evutil_closesocket(c);
        n++;
    }
    refused(d, n);
}

/*
 * The count of admin connections. evhttp has no cap and hands an accepted
 * socket to no callback of ours; but it asks us for the bufferevent of every
 * new connection (admin_bevcb), then makes that bufferevent's callback
 * argument its evhttp_connection. So each new bufferevent is held (a
 * reference) until admin_check runs in the same loop iteration, before any
 * byte is read: there the connection is counted, with a close callback that
 * uncounts it. A bufferevent freed meanwhile has no callbacks left. The
 * listener accepts a whole backlog in one callback; admin_bevcb disables it
 * when the cap is reached, which ends that loop at once.
 */
static void on_admin_conn_close(struct evhttp_connection *evcon, void *arg)
{
    srvd *d = arg;
    (void)evcon;
    if (d->admin_conns)
        d->admin_conns--;
    admin_accepting(d);
}

static struct bufferevent *admin_bevcb(struct event_base *base, void *arg)
{
    srvd *d = arg;
    if (d->admin_new_len == d->admin_new_cap) {
        size_t cap = d->admin_new_cap ? 2 * d->admin_new_cap : 16;
        struct bufferevent **grown = realloc(d->admin_new, cap * sizeof *grown);
        if (!grown)
            return NULL; /* evhttp makes its own: that one connection is not counted */
        d->admin_new = grown;
        d->admin_new_cap = cap;
    }
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;
    bufferevent_incref(bev);
    d->admin_new[d->admin_new_len++] = bev;
    event_active(d->admin_check, EV_TIMEOUT, 0);
    admin_accepting(d);
    return bev;
}

static void on_admin_check(evutil_socket_t fd, short what, void *arg)
{
    srvd *d = arg;
    (void)fd;
    (void)what;
    uint64_t over = 0;
    size_t n = d->admin_new_len;
    d->admin_new_len = 0;
    for (size_t i = 0; i < n; i++) {
        struct bufferevent *bev = d->admin_new[i];
        void *cbarg = NULL;
        bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
        struct evhttp_connection *evcon = cbarg;
        if (evcon && d->admin_conns >= d->admin_max) {
            /* Accepted past the cap (a resume after a failure): closed at once. */
            over++;
            evhttp_connection_free(evcon);
        } else if (evcon) {
            d->admin_conns++;
            evhttp_connection_set_closecb(evcon, on_admin_conn_close, d);
        }
        bufferevent_decref(bev);
    }
    refused(d, over);
    admin_accepting(d);
}

int srvd_admin_start(srvd *d, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (addr_parse(d->opt.admin, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "%s: not HOST:PORT", d->opt.admin);
        return -1;
    }
    d->http = evhttp_new(d->base);
    if (!d->http) {
        snprintf(err, errlen, "%s: out of memory", d->opt.admin);
        return -1;
    }
    /* Every method reaches on_request, which answers a wrong one with a JSON 405. */
    evhttp_set_allowed_methods(d->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(d->http, (ev_ssize_t)HTTP_BODY_HARD_MAX);
    evhttp_set_max_headers_size(d->http, HTTP_HEADERS_MAX);
    evhttp_set_timeout(d->http, HTTP_TIMEOUT_S);
    evhttp_set_gencb(d->http, on_request, d);
    evhttp_set_bevcb(d->http, admin_bevcb, d);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(d->http, host, port);
    if (!bound) {
        snprintf(err, errlen, "cannot listen on %s: %s", d->opt.admin,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    d->admin_listener = evhttp_bound_socket_get_listener(bound);
    d->admin_resume = evtimer_new(d->base, on_admin_resume, d);
    d->admin_check = event_new(d->base, -1, 0, on_admin_check, d);
    d->admin_shed = event_new(d->base, evconnlistener_get_fd(d->admin_listener),
                              EV_READ | EV_PERSIST, on_admin_shed, d);
    if (!d->admin_resume || !d->admin_check || !d->admin_shed) {
        snprintf(err, errlen, "%s: out of memory", d->opt.admin);
        return -1;
    }
    admin_daemon = d;
    evconnlistener_set_error_cb(d->admin_listener, on_admin_accept_error);
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    log_info("admin API on %s (port %u)%s, at most %zu connections at once", d->opt.admin, port,
             d->opt.token_file ? ", bearer token required" : "", d->admin_max);
    return 0;
}

void srvd_admin_stop(srvd *d)
{
    if (admin_daemon == d)
        admin_daemon = NULL;
    if (d->admin_resume) {
        event_free(d->admin_resume);
        d->admin_resume = NULL;
    }
    if (d->admin_shed) {
        event_free(d->admin_shed);
        d->admin_shed = NULL;
    }
    /* evhttp_free() frees the listener, then the connections (whose close callbacks run). */
    d->admin_listener = NULL;
    if (d->http)
        evhttp_free(d->http);
    d->http = NULL;
    /* Accepted, not counted yet: evhttp_free() freed them, our references remain. */
    for (size_t i = 0; i < d->admin_new_len; i++)
        bufferevent_decref(d->admin_new[i]);
    d->admin_new_len = 0;
    free(d->admin_new);
    d->admin_new = NULL;
    d->admin_new_cap = 0;
    if (d->admin_check) {
        event_free(d->admin_check);
        d->admin_check = NULL;
    }
}
