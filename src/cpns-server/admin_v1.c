/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The /v1 resources of the admin API (DESIGN.md section 5): PNEs and Service
 * Groups, mapped onto the engine's administration functions (server.h).
 *
 * Each call checks its request against the engine's state before changing
 * anything, so that every failure gets its own status and a message naming
 * the offending value: 400 for what is wrong in the request itself (JSON,
 * types, identifiers, base64, a PNEID listed twice), 404 for an unknown SG or
 * PNE, 409 for a conflict with the state (a duplicate PNE or SG, adding a
 * present member, removing an absent one). The engine's own error codes are
 * then only a fallback (admin_reply_engine), chiefly for store failures.
 * A change runs a loop turn before the answer, so the answer shows what was
 * committed and sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "admin.h"
#include "daemon.h"

#define ID_RULE "1-64 of A-Z a-z 0-9 . _ : @ -"
/* GET .../status?missing=N lists at most this many members without the current key. */
#define MISSING_MAX 100

static void note_sg(admin_req *r, const char *SGID)
{
    snprintf(r->SGID, sizeof r->SGID, "%s", SGID);
}

static void note_pne(admin_req *r, const char *PNEID)
{
    snprintf(r->PNEID, sizeof r->PNEID, "%s", PNEID);
}

/* A mandatory identifier field. NULL after answering 400. */
static const char *get_id(admin_req *r, json_t *body, const char *field)
{
    json_t *v = json_object_get(body, field);
    if (!v) {
        admin_reply_error(r, 400, "\"%s\" is required", field);
        return NULL;
    }
    if (!json_is_string(v)) {
        admin_reply_error(r, 400, "\"%s\" must be a string", field);
        return NULL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v) || !cpns_id_valid(s)) {
        admin_reply_error(r, 400, "\"%s\": '%.80s' is not an identifier (" ID_RULE ")", field, s);
        return NULL;
    }
    return s;
}

/*
 * An array of PNEIDs. The ids point into body; `seen`, when given, collects
 * them (value: the field) across the fields of one call, so a PNEID given
 * twice, in one field or in two, is refused. A missing field is an empty
 * list unless required. -1 after answering 400.
 */
static int get_ids(admin_req *r, json_t *body, const char *field, bool required, json_t *seen,
                   const char ***ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    json_t *arr = json_object_get(body, field);
    if (!arr && !required)
        return 0;
    if (!arr) {
        admin_reply_error(r, 400, "\"%s\" is required (an array of PNEIDs)", field);
        return -1;
    }
    if (!json_is_array(arr)) {
        admin_reply_error(r, 400, "\"%s\" must be an array of PNEIDs", field);
        return -1;
    }
    size_t count = json_array_size(arr);
    *ids = calloc(count ? count : 1, sizeof **ids);
    if (!*ids) {
        admin_reply_error(r, 500, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *v = json_array_get(arr, i);
        const char *s = json_string_value(v);
        if (!s) {
            admin_reply_error(r, 400, "\"%s\"[%zu] must be a string (a PNEID)", field, i);
            return -1;
        }
        if (strlen(s) != json_string_length(v) || !cpns_id_valid(s)) {
            admin_reply_error(r, 400, "\"%s\": '%.80s' is not a PNEID (" ID_RULE ")", field, s);
            return -1;
        }
        json_t *before = seen ? json_object_get(seen, s) : NULL;
        if (before) {
            const char *other = json_string_value(before);
            if (strcmp(other, field) == 0)
                admin_reply_error(r, 400, "\"%s\": PNE '%s' is listed twice", field, s);
            else
                admin_reply_error(r, 400, "PNE '%s' is both in \"%s\" and in \"%s\"", s, other,
                                  field);
            return -1;
        }
        if (seen && json_object_set_new(seen, s, json_string(field)) != 0) {
            admin_reply_error(r, 500, "out of memory");
            return -1;
        }
        (*ids)[(*n)++] = s;
    }
    return 0;
}

/* 404 for an SG that does not exist. */
static void sg_missing(admin_req *r, const char *SGID)
{
    admin_reply_error(r, 404, "SG '%s' does not exist (cpnsctl sg list shows the SGs)", SGID);
}

/*
 * A change the engine refused because of one identifier (which PNEID is not
 * provisioned, which SG does not exist, ...: cpns_server_last_error): the
 * 404 or 409 naming it. SGID is the SG of the call, for the hint. true when
 * answered; false when no identifier is to blame (or one the request's own
 * checks answer before the engine is called: a bad or repeated identifier).
 */
static bool reply_culprit(admin_req *r, const char *SGID)
{
    cpns_server_error e;
    if (cpns_server_last_error(r->d->server, &e) != 0)
        return false;
    switch (e.culprit) {
    case CPNS_CULPRIT_PNE_UNKNOWN:
        note_pne(r, e.id);
        admin_reply_error(r, 404, "PNE '%s' is not provisioned (cpnsctl pne add %s)", e.id, e.id);
        return true;
    case CPNS_CULPRIT_PNE_EXISTS:
        admin_reply_error(
            r, 409, "PNE '%s' already exists (cpnsctl pne set-key %s changes its key)", e.id, e.id);
        return true;
    case CPNS_CULPRIT_PNE_MEMBER:
        note_pne(r, e.id);
        admin_reply_error(r, 409, "PNE '%s' is already a member of SG '%s' (cpnsctl sg show %s)",
                          e.id, SGID, SGID);
        return true;
    case CPNS_CULPRIT_PNE_NOT_MEMBER:
        note_pne(r, e.id);
        admin_reply_error(r, 409, "PNE '%s' is not a member of SG '%s' (cpnsctl sg show %s)", e.id,
                          SGID, SGID);
        return true;
    case CPNS_CULPRIT_SG_UNKNOWN:
        sg_missing(r, e.id);
        return true;
    case CPNS_CULPRIT_SG_EXISTS:
        admin_reply_error(r, 409, "SG '%s' already exists (cpnsctl sg show %s)", e.id, e.id);
        return true;
    default:
        return false;
    }
}

/* --- JSON of the engine's objects --- */

static json_t *id_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/*
 * The SG object is written straight into the answer: a 100,000-member group
 * is 7 JSON values per member, and building them as a jansson tree first cost
 * more than creating the group. Identifiers need no escaping (ID_RULE).
 */
typedef struct sg_writer {
    struct evbuffer *out;
    bool first;
    const cpns_server *server; /* for a list of SGs */
} sg_writer;

/* Appends text at *p (the line below has room for the longest member). */
static void put(char **p, const char *text)
{
    size_t n = strlen(text);
    memcpy(*p, text, n);
    *p += n;
}

static void put_int(char **p, long long v)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%lld", v);
    put(p, digits);
}

/* One member, built with copies rather than a printf per member (100,000 of them). */
static int member_write(void *arg, const cpns_member_info *m)
{
    sg_writer *w = arg;
    char line[512]; /* 2 identifiers of <= 64 and the rest: < 250 */
    char *p = line;
    put(&p, w->first ? "{\"pneid\":\"" : ",{\"pneid\":\"");
    put(&p, m->PNEID);
    put(&p, "\",\"state\":\"");
    put(&p, cpns_member_state_name(m->state));
    put(&p, "\",\"return\":");
    if (m->Return >= 0)
        put_int(&p, m->Return);
    else
        put(&p, "null");
    put(&p, ",\"attempts\":");
    put_int(&p, m->attempts);
    put(&p, ",\"pnid\":");
    if (m->PNID && *m->PNID) {
        put(&p, "\"");
        put(&p, m->PNID);
        put(&p, "\"");
    } else {
        put(&p, "null");
    }
    put(&p, ",\"key_version\":");
    put_int(&p, m->KeyVersion);
    put(&p, "}");
    w->first = false;
    return evbuffer_add(w->out, line, (size_t)(p - line)) == 0 ? 0 : CPNS_ERR_NOMEM;
}

/* Appends the SG object of DESIGN.md section 5 (plus the current key's fingerprint). */
static int sg_write(const cpns_server *s, const cpns_sg_info *sg, struct evbuffer *out)
{
    sg_writer w = {out, true, s};
    if (evbuffer_add_printf(out,
                            "{\"sgid\":\"%s\",\"key_version\":%u,\"state\":\"%s\","
                            "\"key_fingerprint\":\"%s\",\"members\":[",
                            sg->SGID, (unsigned)sg->KeyVersion,
                            sg->complete ? "complete" : "distributing", sg->fingerprint) < 0)
        return CPNS_ERR_NOMEM;
    int rv = cpns_server_sg_members(s, sg->SGID, member_write, &w);
    if (rv == 0 && evbuffer_add(out, "]}", 2) != 0)
        rv = CPNS_ERR_NOMEM;
    return rv;
}

/* Answers the SG object of SGID (after a change: the turn has run). */
static void reply_sg(admin_req *r, int status, const char *SGID)
{
    cpns_sg_info info;
    if (cpns_server_sg_get(r->d->server, SGID, &info) != 0) {
        sg_missing(r, SGID);
        return;
    }
    struct evbuffer *out = evbuffer_new();
    if (!out || sg_write(r->d->server, &info, out) != 0) {
        if (out)
            evbuffer_free(out);
        admin_reply_error(r, 500, "out of memory");
        return;
    }
    admin_reply_buffer(r, status, out);
}

/*
 * After a change and its turn: whether the turn's commit worked. When it did
 * not, the change lives only in the engine's memory (it is committed at a
 * later turn, or lost if the server stops first): answer 503 rather than
 * acknowledge what is not durable, and say what happened.
 */
/* Cluster mode: PNEs this instance does not know may have been provisioned on another. */
static void refresh_unknown(admin_req *r, const char *const *ids, size_t n)
{
    cpns_pne_info info;
    for (size_t i = 0; r->d->opt.cluster && i < n; i++)
        if (cpns_server_pne_get(r->d->server, ids[i], &info) != 0)
            srvd_cluster_refresh(r->d, "pne", ids[i]);
}

/*
 * Cluster mode: the call's commit lost a race to another instance (a new
 * key for the same version, or the SG deleted there): 409, and a turn that
 * commits what is left. true when answered.
 */
static bool lost_race(admin_req *r, const char *SGID)
{
    if (!cpns_server_take_conflict(r->d->server))
        return false;
    srvd_turn(r->d);
    admin_reply_error(r, 409,
                      "SG '%s' was changed on another instance at the same time and that change "
                      "won; this one was not made (the SG is reloaded): try again",
                      SGID);
    return true;
}

static bool stored(admin_req *r, const char *what)
{
    if (r->d->store_ok)
        return true;
    admin_reply_error(r, 503,
                      "%s: done in memory but the store cannot commit it (%s); it is stored "
                      "once the store works again, and lost if the server stops before",
                      what, srvd_store_error(r->d, CPNS_ERR_STORE));
    return false;
}

static int pne_json(void *arg, const cpns_pne_info *p)
{
    json_t *o = json_pack("{s:s, s:b, s:b, s:o, s:o}", "pneid", p->PNEID, "registered",
                          p->registered, "reachable", p->reachable, "pngwid", id_or_null(p->PNGWID),
                          "pnid", id_or_null(p->PNID));
    return o && json_array_append_new(arg, o) == 0 ? 0 : CPNS_ERR_NOMEM;
}

static int sg_list_write(void *arg, const cpns_sg_info *sg)
{
    sg_writer *w = arg;
    if (!w->first && evbuffer_add(w->out, ",", 1) != 0)
        return CPNS_ERR_NOMEM;
    w->first = false;
    return sg_write(w->server, sg, w->out);
}

/*
 * The light status of an SG (an extension of DESIGN.md section 5): what
 * `cpnsctl sg wait` polls and `sg list` shows, read from the counts the engine
 * keeps per member state, so it costs the same for 10 members as for 100,000.
 */
static json_t *sg_status_json(const cpns_sg_info *sg)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:b, s:I, s:{s:I, s:I, s:I, s:I}}", "sgid", sg->SGID,
                     "key_version", (json_int_t)sg->KeyVersion, "state",
                     sg->complete ? "complete" : "distributing", "key_fingerprint", sg->fingerprint,
                     "done", sg->complete, "total", (json_int_t)sg->n_members, "counts", "pending",
                     (json_int_t)sg->n_pending, "sent", (json_int_t)sg->n_sent, "delivered",
                     (json_int_t)sg->n_delivered, "failed", (json_int_t)sg->n_failed);
}

typedef struct missing_list {
    json_t *arr;
    size_t left;
} missing_list;

/* Collects members without the current key until `left` of them are found. */
static int missing_member(void *arg, const cpns_member_info *m)
{
    missing_list *ml = arg;
    if (m->state == CPNS_MEMBER_DELIVERED)
        return 0; /* delivered means the current version: a new key starts them all over */
    json_t *o = json_pack("{s:s, s:s, s:o, s:I, s:o, s:I}", "pneid", m->PNEID, "state",
                          cpns_member_state_name(m->state), "return",
                          m->Return >= 0 ? json_integer(m->Return) : json_null(), "attempts",
                          (json_int_t)m->attempts, "pnid", id_or_null(m->PNID), "key_version",
                          (json_int_t)m->KeyVersion);
    if (!o || json_array_append_new(ml->arr, o) != 0)
        return CPNS_ERR_NOMEM;
    return --ml->left == 0 ? 1 : 0;
}

/*
 * The query string of r as key/value pairs, every key one of `allowed`
 * (NULL-ended). -1 after answering 400.
 */
static int query_parse(admin_req *r, const char *const *allowed, struct evkeyvalq *q)
{
    q->tqh_first = NULL; /* TAILQ_INIT, which libevent's headers do not export */
    q->tqh_last = &q->tqh_first;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (!query || !*query)
        return 0;
    if (evhttp_parse_query_str(query, q) != 0) {
        admin_reply_error(r, 400, "malformed query string: %.80s", query);
        return -1;
    }
    for (struct evkeyval *kv = q->tqh_first; kv; kv = kv->next.tqe_next) {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], kv->key) != 0)
            i++;
        if (!allowed[i]) {
            admin_reply_error(r, 400, "unknown query parameter '%.64s' for %s", kv->key, r->path);
            evhttp_clear_headers(q);
            return -1;
        }
    }
    return 0;
}

/* GET /v1/service-groups/SGID/status[?missing=N] */
static void get_sg_status(admin_req *r, const char *SGID)
{
    static const char *const params[] = {"missing", NULL};
    struct evkeyvalq q;
    if (query_parse(r, params, &q) != 0)
        return;
    const char *missing = evhttp_find_header(&q, "missing");
    int64_t n_missing = 0;
    cpns_sg_info info;
    if (missing && parse_i64(missing, 0, MISSING_MAX, &n_missing) != 0) {
        admin_reply_error(r, 400, "missing=%.20s: give a count of 0 to %d", missing, MISSING_MAX);
    } else if (cpns_server_sg_get(r->d->server, SGID, &info) != 0) {
        sg_missing(r, SGID);
    } else {
        json_t *o = sg_status_json(&info);
        missing_list ml = {json_array(), (size_t)n_missing};
        int rv = o && ml.arr ? 0 : CPNS_ERR_NOMEM;
        if (rv == 0 && n_missing > 0 && !info.complete)
            rv = cpns_server_sg_members(r->d->server, SGID, missing_member, &ml);
        if (rv == 0 || rv == 1) {
            if (missing)
                json_object_set(o, "missing", ml.arr);
            admin_reply_json(r, 200, o);
        } else {
            json_decref(o);
            admin_reply_error(r, 500, "out of memory");
        }
        json_decref(ml.arr);
    }
    evhttp_clear_headers(&q);
}

static int sg_status_list(void *arg, const cpns_sg_info *sg)
{
    json_t *o = sg_status_json(sg);
    return o && json_array_append_new(arg, o) == 0 ? 0 : CPNS_ERR_NOMEM;
}

/* --- PNEs --- */

/* The answer that carries a generated EUK: its buffer is wiped once written. */
static void wipe_and_free(const void *data, size_t len, void *arg)
{
    (void)arg;
    cpns_wipe((void *)data, len);
    free((void *)data);
}

/*
 * Answers status with the PNE and the EUK the server generated for it, the
 * only time that key leaves the server. `done` says what happened, for the
 * message when the answer cannot be built.
 */
static void reply_new_key(admin_req *r, int status, const char *PNEID,
                          const uint8_t EUK[CPNS_KEY_LEN], const char *done)
{
    char b64[CPNS_B64_LEN(CPNS_KEY_LEN) + 1];
    cpns_b64_encode(EUK, CPNS_KEY_LEN, b64, sizeof b64);
    /* No JSON library copy: identifiers and base64 need no escaping. */
    size_t cap = strlen(PNEID) + sizeof b64 + 64;
    char *text = malloc(cap);
    struct evbuffer *buf = evbuffer_new();
    int len =
        text ? snprintf(text, cap, "{\"pneid\":\"%s\",\"entity_user_key\":\"%s\"}\n", PNEID, b64)
             : -1;
    cpns_wipe(b64, sizeof b64);
    if (!buf || len < 0 ||
        evbuffer_add_reference(buf, text, (size_t)len, wipe_and_free, NULL) != 0) {
        if (text)
            wipe_and_free(text, cap, NULL);
        if (buf)
            evbuffer_free(buf);
        admin_reply_error(r, 500,
                          "PNE '%s' %s, but its key could not be answered: "
                          "re-provision it with a key of your own (cpnsctl pne set-key %s "
                          "--key-file FILE)",
                          PNEID, done, PNEID);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
                      "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
    r->status = status;
    evhttp_send_reply(r->req, status, status == 201 ? "Created" : "OK", buf);
    evbuffer_free(buf);
}

/*
 * The "entity_user_key" field of a body: decoded into EUK, or drawn at
 * random when it is absent or null (*generated then). -1 after answering.
 */
static int get_key(admin_req *r, json_t *key, uint8_t EUK[CPNS_KEY_LEN], bool *generated)
{
    *generated = !key || json_is_null(key);
    if (!*generated) {
        const char *b64 = json_string_value(key);
        size_t len = 0;
        if (!b64 || cpns_b64_decode(b64, json_string_length(key), EUK, CPNS_KEY_LEN, &len) != 0 ||
            len != CPNS_KEY_LEN) {
            admin_reply_error(r, 400, "\"entity_user_key\" is not the base64 of a 32-byte key");
            return -1;
        }
    } else if (cpns_random(NULL, EUK, CPNS_KEY_LEN) != 0) {
        admin_reply_error(r, 500, "no randomness for a new Entity User Key");
        return -1;
    }
    return 0;
}

/*
 * The answer to (re-)provisioning a PNE with the engine's result rv: its
 * error, the generated key (once), or the PNEID.
 */
static void reply_provisioned(admin_req *r, int rv, int status, const char *PNEID,
                              const uint8_t EUK[CPNS_KEY_LEN], bool generated, const char *doing,
                              const char *done)
{
    if (rv != 0) {
        char what[128];
        snprintf(what, sizeof what, "%s PNE '%s'", doing, PNEID);
        admin_reply_engine(r, rv, what);
    } else if (generated) {
        reply_new_key(r, status, PNEID, EUK, done);
    } else {
        admin_reply_json(r, status, json_pack("{s:s}", "pneid", PNEID));
    }
}

static void post_pne(admin_req *r)
{
    static const char *const fields[] = {"pneid", "entity_user_key", NULL};
    json_t *body = admin_body(r, fields, true);
    if (!body)
        return;
    uint8_t EUK[CPNS_KEY_LEN];
    bool generated = false;
    const char *PNEID = get_id(r, body, "pneid");
    if (PNEID)
        srvd_cluster_refresh(r->d, "pne", PNEID);
    json_t *key = json_object_get(body, "entity_user_key");
    if (!PNEID)
        goto out;
    note_pne(r, PNEID);
    if (get_key(r, key, EUK, &generated) != 0)
        goto out;
    int rv = cpns_server_pne_add(r->d->server, PNEID, EUK);
    srvd_turn(r->d);
    if (rv == 0 || !reply_culprit(r, NULL))
        reply_provisioned(r, rv, 201, PNEID, EUK, generated, "provisioning", "provisioned");
out:
    cpns_wipe(EUK, sizeof EUK);
    admin_wipe_string(key);
    json_decref(body);
}

/*
 * Re-provisioning (an extension of DESIGN.md section 5): a new EUK for a
 * known PNE. The engine revives the members that failed by Return 2
 * (PROTOCOL.md 3.2: "not retried until the PNE is re-provisioned") and logs
 * the new key's fingerprint. An empty object or null asks the server for a
 * fresh key, answered once like POST /v1/pnes.
 */
static void put_pne(admin_req *r, const char *PNEID)
{
    static const char *const fields[] = {"entity_user_key", NULL};
    note_pne(r, PNEID);
    json_t *body = admin_body_or_null(r, fields, true);
    if (!body)
        return;
    uint8_t EUK[CPNS_KEY_LEN];
    bool generated = false;
    json_t *key = json_object_get(body, "entity_user_key");
    if (get_key(r, key, EUK, &generated) != 0)
        goto out;
    srvd_cluster_refresh(r->d, "pne", PNEID);
    int rv = cpns_server_pne_set_key(r->d->server, PNEID, EUK, srvd_now());
    srvd_turn(r->d);
    if (rv == 0 || !reply_culprit(r, NULL))
        reply_provisioned(r, rv, 200, PNEID, EUK, generated, "re-provisioning", "re-provisioned");
out:
    cpns_wipe(EUK, sizeof EUK);
    admin_wipe_string(key);
    json_decref(body);
}

static void get_pnes(admin_req *r)
{
    json_t *arr = json_array();
    if (!arr || cpns_server_pne_foreach(r->d->server, pne_json, arr) != 0) {
        json_decref(arr);
        admin_reply_error(r, 500, "out of memory");
        return;
    }
    admin_reply_json(r, 200, arr);
}

/* --- Service Groups --- */

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Sorts ids (PNEID order, as the engine stores and sends them, so it need not
 * sort again) and refuses one listed twice: -1 after answering 400. A sort
 * instead of a set: at 100,000 members a jansson object cost ~0.1 s.
 */
static int sort_distinct(admin_req *r, const char *field, const char **ids, size_t n)
{
    size_t in_order = 1;
    while (in_order < n && strcmp(ids[in_order - 1], ids[in_order]) < 0)
        in_order++;
    if (in_order < n) /* not in strict order already */
        qsort(ids, n, sizeof *ids, cmp_id);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(ids[i - 1], ids[i]) == 0) {
            admin_reply_error(r, 400, "\"%s\": PNE '%s' is listed twice", field, ids[i]);
            return -1;
        }
    }
    return 0;
}

static void post_sg(admin_req *r)
{
    static const char *const fields[] = {"sgid", "members", NULL};
    json_t *body = admin_body(r, fields, false);
    if (!body)
        return;
    const char **ids = NULL;
    size_t n = 0;
    const char *SGID = get_id(r, body, "sgid");
    if (!SGID)
        goto out;
    note_sg(r, SGID);
    srvd_cluster_refresh(r->d, "sg", SGID);
    if (get_ids(r, body, "members", true, NULL, &ids, &n) != 0 ||
        sort_distinct(r, "members", ids, n) != 0) {
        /* answered */
    } else {
        refresh_unknown(r, ids, n);
        cpns_server_take_conflict(r->d->server);
        int rv = cpns_server_sg_create(r->d->server, SGID, ids, n, srvd_now());
        srvd_turn(r->d);
        /* The engine checks that the SG is new and every PNEID provisioned, and names the culprit.
         */
        if (lost_race(r, SGID))
            ; /* answered 409 */
        else if (rv != 0 && reply_culprit(r, SGID))
            ; /* answered 404 or 409 naming it */
        else if (rv != 0)
            admin_reply_engine(r, rv, "creating the SG");
        else if (stored(r, "creating the SG"))
            reply_sg(r, 201, SGID);
    }
out:
    free(ids);
    json_decref(body);
}

/*
 * GET /v1/service-groups: every SG object with its members, or with
 * ?view=status every SG's status object (counts, no members): `cpnsctl sg
 * list` need not fetch every member of every group.
 */
static void get_sgs(admin_req *r)
{
    static const char *const params[] = {"view", NULL};
    struct evkeyvalq q;
    if (query_parse(r, params, &q) != 0)
        return;
    const char *view = evhttp_find_header(&q, "view");
    bool status = view && strcmp(view, "status") == 0;
    if (view && !status && strcmp(view, "full") != 0) {
        admin_reply_error(r, 400, "view=%.20s: give view=status or view=full", view);
        evhttp_clear_headers(&q);
        return;
    }
    evhttp_clear_headers(&q);
    if (status) {
        json_t *arr = json_array();
        if (!arr || cpns_server_sg_foreach(r->d->server, sg_status_list, arr) != 0) {
            json_decref(arr);
            admin_reply_error(r, 500, "out of memory");
        } else {
            admin_reply_json(r, 200, arr);
        }
        return;
    }
    struct evbuffer *out = evbuffer_new();
    sg_writer w = {out, true, r->d->server};
    if (!out || evbuffer_add(out, "[", 1) != 0 ||
        cpns_server_sg_foreach(r->d->server, sg_list_write, &w) != 0 ||
        evbuffer_add(out, "]", 1) != 0) {
        if (out)
            evbuffer_free(out);
        admin_reply_error(r, 500, "out of memory");
        return;
    }
    admin_reply_buffer(r, 200, out);
}

static void post_members(admin_req *r, const char *SGID)
{
    static const char *const fields[] = {"add", "remove", NULL};
    json_t *body = admin_body(r, fields, false);
    if (!body)
        return;
    json_t *seen = json_object();
    const char **add = NULL, **remove = NULL;
    size_t n_add = 0, n_remove = 0;
    if (!seen) {
        admin_reply_error(r, 500, "out of memory");
    } else if (get_ids(r, body, "add", false, seen, &add, &n_add) != 0 ||
               get_ids(r, body, "remove", false, seen, &remove, &n_remove) != 0) {
        /* answered */
    } else if (n_add + n_remove == 0) {
        admin_reply_error(r, 400, "nothing to do: give PNEIDs in \"add\" and/or \"remove\"");
    } else {
        refresh_unknown(r, add, n_add);
        cpns_server_take_conflict(r->d->server);
        int rv =
            cpns_server_sg_update(r->d->server, SGID, add, n_add, remove, n_remove, srvd_now());
        srvd_turn(r->d);
        /* The engine checks the SG, the PNEIDs and the membership, and names the culprit. */
        if (lost_race(r, SGID))
            ; /* answered 409 */
        else if (rv != 0 && reply_culprit(r, SGID))
            ; /* answered 404 or 409 naming it */
        else if (rv == CPNS_ERR_STATE)
            admin_reply_error(r, 409,
                              "SG '%s' has reached the last KeyVersion: it cannot be "
                              "rekeyed; delete and create it again (cpnsctl sg delete %s, "
                              "cpnsctl sg create %s)",
                              SGID, SGID, SGID);
        else if (rv != 0)
            admin_reply_engine(r, rv, "changing the members");
        else if (stored(r, "changing the members"))
            reply_sg(r, 200, SGID);
    }
    free(add);
    free(remove);
    json_decref(seen);
    json_decref(body);
}

static void sg_resource(admin_req *r, const char *SGID, const char *action)
{
    cpns_sg_info info;
    /* Cluster mode: the database's truth, not this instance's memory of another's work. */
    srvd_cluster_refresh(r->d, "sg", SGID);
    if (!action) {
        if (r->cmd != EVHTTP_REQ_GET && r->cmd != EVHTTP_REQ_DELETE) {
            admin_reply_method(r, "GET, DELETE");
        } else if (r->cmd == EVHTTP_REQ_GET) {
            if (cpns_server_sg_get(r->d->server, SGID, &info) != 0)
                sg_missing(r, SGID);
            else
                reply_sg(r, 200, SGID);
        } else {
            int rv = cpns_server_sg_delete(r->d->server, SGID);
            srvd_turn(r->d);
            if (rv != 0 && reply_culprit(r, SGID))
                ; /* answered 404 */
            else if (rv != 0)
                admin_reply_engine(r, rv, "deleting the SG");
            else if (stored(r, "deleting the SG"))
                admin_reply_empty(r);
        }
    } else if (strcmp(action, "status") == 0) {
        if (r->cmd != EVHTTP_REQ_GET)
            admin_reply_method(r, "GET");
        else
            get_sg_status(r, SGID);
    } else if (strcmp(action, "members") == 0) {
        if (r->cmd != EVHTTP_REQ_POST)
            admin_reply_method(r, "POST");
        else
            post_members(r, SGID);
    } else if (strcmp(action, "rekey") == 0) {
        if (r->cmd != EVHTTP_REQ_POST) {
            admin_reply_method(r, "POST");
        } else {
            cpns_server_take_conflict(r->d->server);
            int rv = cpns_server_sg_rekey(r->d->server, SGID, srvd_now());
            srvd_turn(r->d);
            if (lost_race(r, SGID))
                ; /* answered 409 */
            else if (rv != 0 && reply_culprit(r, SGID))
                ; /* answered 404 */
            else if (rv == CPNS_ERR_STATE)
                admin_reply_error(r, 409,
                                  "SG '%s' has reached the last KeyVersion: delete and create "
                                  "it again (cpnsctl sg delete %s, cpnsctl sg create %s)",
                                  SGID, SGID, SGID);
            else if (rv != 0)
                admin_reply_engine(r, rv, "rekeying the SG");
            else if (stored(r, "rekeying the SG"))
                reply_sg(r, 200, SGID);
        }
    } else {
        admin_reply_error(r, 404, "no such path: %s", r->path);
    }
}

void v1_route(admin_req *r, char **seg, size_t n)
{
    if (n == 1 && strcmp(seg[0], "pnes") == 0) {
        if (r->cmd == EVHTTP_REQ_GET)
            get_pnes(r);
        else if (r->cmd == EVHTTP_REQ_POST)
            post_pne(r);
        else
            admin_reply_method(r, "GET, POST");
    } else if (n == 2 && strcmp(seg[0], "pnes") == 0) {
        if (!cpns_id_valid(seg[1]))
            admin_reply_error(r, 400, "'%.80s' in the path is not a PNEID (" ID_RULE ")", seg[1]);
        else if (r->cmd != EVHTTP_REQ_PUT)
            admin_reply_method(r, "PUT");
        else
            put_pne(r, seg[1]);
    } else if (n == 1 && strcmp(seg[0], "service-groups") == 0) {
        if (r->cmd == EVHTTP_REQ_GET)
            get_sgs(r);
        else if (r->cmd == EVHTTP_REQ_POST)
            post_sg(r);
        else
            admin_reply_method(r, "GET, POST");
    } else if ((n == 2 || n == 3) && strcmp(seg[0], "service-groups") == 0) {
        if (n == 3 && strcmp(seg[2], "members") != 0 && strcmp(seg[2], "rekey") != 0 &&
            strcmp(seg[2], "status") != 0) {
            admin_reply_error(r, 404, "no such path: %s", r->path);
        } else if (!cpns_id_valid(seg[1])) {
            admin_reply_error(r, 400, "'%.80s' in the path is not an SGID (" ID_RULE ")", seg[1]);
        } else {
            note_sg(r, seg[1]);
            sg_resource(r, seg[1], n == 3 ? seg[2] : NULL);
        }
    } else {
        admin_reply_error(r, 404, "no such path: %s", r->path);
    }
}
