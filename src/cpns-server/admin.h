/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the two halves of the admin API share: admin.c is the HTTP side
 * (evhttp, routing, the bearer token, bodies, answers and their log line),
 * admin_v1.c the /v1 resources that map onto the engine's admin functions.
 *
 * Every answer is JSON ({"error": "..."} for failures) except /metrics and
 * the empty 204 of a DELETE; every request gets exactly one answer and one
 * log line.
 */
#ifndef CPNS_SRVD_ADMIN_H
#define CPNS_SRVD_ADMIN_H

#include <stdbool.h>

#include <jansson.h>

#include "srvd.h"

/* Request bodies above this get a JSON 413 (a 100,000-member SG fits). */
#define ADMIN_BODY_MAX ((size_t)8 << 20)

typedef struct admin_req {
    srvd *d;
    struct evhttp_request *req;
    enum evhttp_cmd_type cmd;
    const char *method;
    const char *path;
    /* For the log line: the SG and PNE the call was about, when there is one. */
    char SGID[CPNS_ID_MAX + 1];
    char PNEID[CPNS_ID_MAX + 1];
    int status;
    char error[512];
} admin_req;

/* Answers with body (the reference is taken; NULL means out of memory: 500). */
void admin_reply_json(admin_req *r, int status, json_t *body);
/* Answers a JSON text already written into body, which it frees. */
void admin_reply_buffer(admin_req *r, int status, struct evbuffer *body);
/* Answers {"error": "<message>"}. */
void admin_reply_error(admin_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Answers 204 without a body. */
void admin_reply_empty(admin_req *r);
/* 405 naming the methods the path takes. */
void admin_reply_method(admin_req *r, const char *allow);
/*
 * Answers an engine failure that the checks before the call did not foresee:
 * NOMEM 500, STORE 503 with the store's message, the others by their meaning.
 */
void admin_reply_engine(admin_req *r, int rv, const char *what);

/*
 * The request body as a JSON object whose fields are all in `fields` (NULL
 * ended). NULL after answering 400 or 413. With secret, the copies of the
 * body that this side holds are wiped.
 */
json_t *admin_body(admin_req *r, const char *const *fields, bool secret);
/* The same, but a body that is JSON null reads as an empty object. */
json_t *admin_body_or_null(admin_req *r, const char *const *fields, bool secret);

/* Wipes a JSON string value in place (a key that passed through jansson). */
void admin_wipe_string(json_t *s);

/* admin_v1.c: the resources under /v1 (seg: the path segments after "v1"). */
void v1_route(admin_req *r, char **seg, size_t n);

#endif
