/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin API client of cpnsctl (http.h): evhttp requests run to completion
 * one at a time on a private event base. No DNS base is given to evhttp, so a
 * host name is resolved with the blocking resolver, which is what a CLI wants.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "daemon.h"
#include "http.h"

#define CTL_DEFAULT_PORT 7462

struct ctl_http {
    struct event_base *base;
    struct evhttp_connection *conn;
    char *url;
    char host[256];
    uint16_t port;
    char *authorization; /* "Bearer <token>" or NULL */
    int timeout_s;
};

typedef struct call_state {
    ctl_reply *reply;
    int done;
    int failed;
    enum evhttp_request_error error;
    int error_cb_fired;
} call_state;

/*
 * --server HOST:PORT (or [V6]:PORT, or HOST) is read as http://HOST:PORT:
 * the form every daemon's address options take.
 */
static char *as_url(const char *server)
{
    if (strstr(server, "://"))
        return strdup(server);
    size_t n = strlen(server) + sizeof "http://";
    char *url = malloc(n);
    if (url)
        snprintf(url, n, "http://%s", server);
    return url;
}

ctl_http *ctl_http_new(const char *server, const char *token, int timeout_s, char *err,
                       size_t errlen)
{
    char *url = as_url(server);
    if (!url) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct evhttp_uri *uri = evhttp_uri_parse(url);
    if (!uri) {
        snprintf(err, errlen, "--server %s: not HOST:PORT or a URL", server);
        free(url);
        return NULL;
    }
    const char *scheme = evhttp_uri_get_scheme(uri);
    const char *host = evhttp_uri_get_host(uri);
    int port = evhttp_uri_get_port(uri);
    const char *path = evhttp_uri_get_path(uri);
    int ok = 1;
    if (!scheme || strcmp(scheme, "http") != 0) {
        /* The admin API is plain HTTP on loopback (DESIGN.md section 5). */
        snprintf(err, errlen, "--server %s: only http:// URLs are supported", server);
        ok = 0;
    } else if (!host || !*host || strlen(host) >= 256) {
        snprintf(err, errlen, "--server %s: no host", server);
        ok = 0;
    } else if (port == 0 || port > 65535) {
        snprintf(err, errlen, "--server %s: bad port", server);
        ok = 0;
    } else if (path && *path && strcmp(path, "/") != 0) {
        snprintf(err, errlen, "--server %s: give the server's root URL, without a path", server);
        ok = 0;
    }
    ctl_http *h = NULL;
    if (ok && (h = calloc(1, sizeof *h)) != NULL) {
        snprintf(h->host, sizeof h->host, "%s", host);
        h->port = (uint16_t)(port < 0 ? CTL_DEFAULT_PORT : port);
        h->timeout_s = timeout_s;
        h->url = url;
        url = NULL;
        h->base = event_base_new();
        if (token) {
            size_t n = strlen(token) + sizeof "Bearer ";
            h->authorization = malloc(n);
            if (h->authorization)
                snprintf(h->authorization, n, "Bearer %s", token);
        }
        if (h->base)
            h->conn = evhttp_connection_base_new(h->base, NULL, h->host, h->port);
        if (!h->url || !h->base || !h->conn || (token && !h->authorization)) {
            snprintf(err, errlen, "out of memory");
            ctl_http_free(h);
            h = NULL;
        } else {
            evhttp_connection_set_timeout(h->conn, timeout_s);
        }
    } else if (ok) {
        snprintf(err, errlen, "out of memory");
    }
    evhttp_uri_free(uri);
    free(url);
    return h;
}

void ctl_http_free(ctl_http *h)
{
    if (!h)
        return;
    if (h->conn)
        evhttp_connection_free(h->conn);
    if (h->base)
        event_base_free(h->base);
    if (h->authorization) {
        cpns_wipe(h->authorization, strlen(h->authorization));
        free(h->authorization);
    }
    free(h->url);
    free(h);
}

const char *ctl_http_url(const ctl_http *h)
{
    return h->url;
}

static void on_error(enum evhttp_request_error error, void *arg)
{
    call_state *st = arg;
    st->failed = 1;
    st->error = error;
    st->error_cb_fired = 1;
}

static void on_reply(struct evhttp_request *req, void *arg)
{
    call_state *st = arg;
    st->done = 1;
    if (!req || evhttp_request_get_response_code(req) == 0) {
        st->failed = 1;
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *body = malloc(n + 1);
    if (!body) {
        st->failed = 1;
        return;
    }
    evbuffer_remove(in, body, n);
    body[n] = '\0';
    st->reply->status = evhttp_request_get_response_code(req);
    st->reply->body = body;
    st->reply->len = n;
}

/*
 * evhttp's error callback fires for a timeout; a refused or dropped
 * connection only shows as a reply without a status.
 */
static void describe(const ctl_http *h, const call_state *st, char *out, size_t len)
{
    if (st->error_cb_fired && st->error == EVREQ_HTTP_TIMEOUT)
        snprintf(out, len, "%s: no answer within %d s (see --timeout)", h->url, h->timeout_s);
    else
        snprintf(out, len,
                 "%s: cannot connect: connection refused or closed "
                 "(is cpns-server running with --admin at this address? "
                 "cpnsctl --server HOST:PORT names another)",
                 h->url);
}

int ctl_http_call(ctl_http *h, const char *method, const char *path, const char *body,
                  ctl_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    enum evhttp_cmd_type cmd;
    if (strcmp(method, "GET") == 0)
        cmd = EVHTTP_REQ_GET;
    else if (strcmp(method, "POST") == 0)
        cmd = EVHTTP_REQ_POST;
    else if (strcmp(method, "PUT") == 0)
        cmd = EVHTTP_REQ_PUT;
    else if (strcmp(method, "DELETE") == 0)
        cmd = EVHTTP_REQ_DELETE;
    else {
        snprintf(reply->error, sizeof reply->error, "unsupported method %s", method);
        return -1;
    }
    call_state st = {.reply = reply};
    struct evhttp_request *req = evhttp_request_new(on_reply, &st);
    if (!req) {
        snprintf(reply->error, sizeof reply->error, "out of memory");
        return -1;
    }
    evhttp_request_set_error_cb(req, on_error);
    struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
    evhttp_add_header(hdr, "Host", h->host);
    evhttp_add_header(hdr, "Accept", "application/json");
    if (h->authorization)
        evhttp_add_header(hdr, "Authorization", h->authorization);
    if (body) {
        evhttp_add_header(hdr, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    }
    /* On failure evhttp_make_request frees req itself. */
    if (evhttp_make_request(h->conn, req, cmd, path) != 0) {
        snprintf(reply->error, sizeof reply->error, "cannot send the request to %s", h->url);
        return -1;
    }
    while (!st.done)
        if (event_base_loop(h->base, EVLOOP_ONCE) < 0)
            break;
    if (!st.done || st.failed || !reply->body) {
        free(reply->body);
        reply->body = NULL;
        reply->status = 0;
        describe(h, &st, reply->error, sizeof reply->error);
        return -1;
    }
    return 0;
}

void ctl_reply_clear(ctl_reply *reply)
{
    free(reply->body);
    memset(reply, 0, sizeof *reply);
}

int ctl_http_dot_segment(const char *s)
{
    if (!*s)
        return 0;
    while (*s == '.')
        s++;
    return *s == '\0';
}

char *ctl_http_segment(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1);
    if (!out)
        return NULL;
    char *p = out;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        /*
         * Only RFC 3986's unreserved characters go as they are (#10.14): ':'
         * and '@' are legal in a segment, but a proxy or a router on the way
         * may still read them; the server decodes every segment.
         */
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            (c && strchr("-._~", c))) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return out;
}
