/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side of cpnsctl: one small blocking client of the admin API on
 * libevent's evhttp. Each call runs the event loop until the reply (or the
 * timeout) arrives, so the commands read as straight-line code. The
 * connection is kept between calls, which `sg wait` uses to poll cheaply.
 */
#ifndef CPNSCTL_HTTP_H
#define CPNSCTL_HTTP_H

#include <stddef.h>

typedef struct ctl_http ctl_http;

typedef struct ctl_reply {
    int status; /* HTTP status; 0 when no reply came (see error) */
    char *body; /* NUL-terminated, possibly empty; free() it */
    size_t len;
    char error[256]; /* why no reply came: connection refused, timeout, ... */
} ctl_reply;

/*
 * Parses server ("http://HOST[:PORT]", or "HOST:PORT" read as http://HOST:PORT;
 * default port 7462) and prepares a client.
 * token (may be NULL) is sent as a bearer token; timeout_s bounds each call.
 * NULL with a message in err when the URL is not usable.
 */
ctl_http *ctl_http_new(const char *server, const char *token, int timeout_s, char *err,
                       size_t errlen);
void ctl_http_free(ctl_http *h);

/* The server's URL (http://... also when HOST:PORT was given), for messages. */
const char *ctl_http_url(const ctl_http *h);

/*
 * One request; body (JSON) may be NULL. Always fills *reply: 0 when an HTTP
 * reply came (any status), -1 when none did (reply->error says why).
 */
int ctl_http_call(ctl_http *h, const char *method, const char *path, const char *body,
                  ctl_reply *reply);
void ctl_reply_clear(ctl_reply *reply);

/*
 * Percent-encodes one path segment (an SGID as typed by the user): RFC 3986's
 * unreserved characters [A-Za-z0-9-._~] as they are, every other byte %XX.
 * free() the result.
 */
char *ctl_http_segment(const char *s);

/*
 * 1 if s, as a path segment, is made only of dots ("." or ".."): a dot segment
 * that URL normalisation (RFC 3986 5.2.4, and %2E decoded first) resolves to
 * another resource, so it is never sent (#10.14).
 */
int ctl_http_dot_segment(const char *s);

#endif
