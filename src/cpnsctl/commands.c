/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pne and sg commands of cpnsctl: each maps to one admin API call
 * (DESIGN.md section 5), except `sg wait`, which polls the SG until its
 * key distribution is complete. Arguments after the command are positional
 * words plus the command's own options, in any order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "daemon.h"
#include "show.h"

#define WAIT_DEFAULT_S 60
#define WAIT_POLL_MS 100
#define MAX_WORDS 4096

typedef struct cmd_opt {
    const char *name;
    const char **value; /* NULL for the flag --json */
} cmd_opt;

/*
 * Splits argv[1..] into positional words (moved to the front of words) and
 * the options in opts (plus --json, accepted after the command too).
 * The number of words, or -1 after a usage message.
 */
static int parse_words(ctl *c, const char *group, int argc, char **argv, const cmd_opt *opts,
                       char **words)
{
    int n = 0;
    int only_words = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_words || a[0] != '-' || a[1] == '\0') {
            if (n == MAX_WORDS) {
                ctl_usage_error("too many arguments");
                return -1;
            }
            words[n++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_words = 1;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            c->json = 1;
            continue;
        }
        const cmd_opt *o = opts;
        for (; o && o->name; o++) {
            size_t len = strlen(o->name);
            if (strncmp(a, o->name, len) != 0 || (a[len] != '\0' && a[len] != '='))
                continue;
            if (a[len] == '=') {
                *o->value = a + len + 1;
            } else if (i + 1 < argc) {
                *o->value = argv[++i];
            } else {
                ctl_usage_error("%s %s: %s needs a value", group, argv[0], o->name);
                return -1;
            }
            break;
        }
        if (!o || !o->name) {
            ctl_usage_error("%s %s: unknown option %s", group, argv[0], a);
            return -1;
        }
    }
    return n;
}

/* Prints the body (JSON) as the server sent it, with one final newline. */
static void print_raw(const ctl_reply *r)
{
    if (r->len == 0)
        return;
    fputs(r->body, stdout);
    if (r->body[r->len - 1] != '\n')
        fputc('\n', stdout);
}

/*
 * Prints the server's "error" of a non-2xx answer to stderr (its hints name
 * cpnsctl commands), or the status when the answer holds none. CTL_FAILED.
 */
static int report_error(const ctl *c, const ctl_reply *r)
{
    json_t *j = json_loads(r->body, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));
    if (msg)
        ctl_fail("%s (HTTP %d)", msg, r->status);
    else
        ctl_fail("%s answered HTTP %d without an error message: is --server the admin API of "
                 "cpns-server?",
                 ctl_http_url(c->http), r->status);
    json_decref(j);
    return CTL_FAILED;
}

/* One call. CTL_OK with the reply on a 2xx answer; else CTL_FAILED after saying why. */
static int call(ctl *c, const char *method, const char *path, const char *body, ctl_reply *r)
{
    if (ctl_http_call(c->http, method, path, body, r) != 0)
        return ctl_fail("%s", r->error);
    if (r->status >= 200 && r->status < 300)
        return CTL_OK;
    report_error(c, r);
    ctl_reply_clear(r);
    return CTL_FAILED;
}

/* Serializes j (stolen) for a request body; NULL on OOM. free() the result. */
static char *dump(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static json_t *string_array(char **words, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(words[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/*
 * An identifier made only of dots is no identifier, and as a path segment a
 * normalising proxy would send the request to another resource (#10.14).
 */
static int dot_id_error(const char *what, const char *id)
{
    return ctl_usage_error("'%s' is not a valid %s (made only of dots)", id, what);
}

/* Path of one SG, with the SGID made safe for a path segment. NULL on OOM. */
static char *sg_path(const char *SGID, const char *suffix)
{
    char *seg = ctl_http_segment(SGID);
    if (!seg)
        return NULL;
    size_t n = strlen("/v1/service-groups/") + strlen(seg) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "/v1/service-groups/%s%s", seg, suffix);
    free(seg);
    return p;
}

/* Prints an SG object answer as a table, or raw with --json. */
static int print_sg_reply(ctl *c, const ctl_reply *r, int list)
{
    if (c->json) {
        print_raw(r);
        return CTL_OK;
    }
    if (r->len == 0)
        return CTL_OK;
    json_t *j = json_loads(r->body, 0, NULL);
    int rv = list ? show_sgs(stdout, j) : show_sg(stdout, j);
    json_decref(j);
    return rv == 0 ? CTL_OK : ctl_fail("unexpected answer from the server: %s", r->body);
}

/* --- pne --- */

/*
 * The server's key answer: written to key_out, or printed on stdout. done
 * ("provisioned", "re-provisioned") is what the call did, for the messages.
 */
static int pne_take_key(ctl *c, const char *PNEID, const char *key_out, ctl_reply *r,
                        const char *done)
{
    json_t *j = json_loads(r->body, 0, NULL);
    const char *b64 = json_string_value(json_object_get(j, "entity_user_key"));
    uint8_t EUK[CPNS_KEY_LEN];
    size_t len = 0;
    int rv = CTL_OK;
    if (!b64 || cpns_b64_decode(b64, strlen(b64), EUK, sizeof EUK, &len) != 0 ||
        len != CPNS_KEY_LEN) {
        rv = ctl_fail("PNE %s %s, but the answer holds no usable entity_user_key", PNEID, done);
    } else if (!key_out) {
        if (c->json)
            print_raw(r);
        else
            printf("%s\n", b64);
    } else {
        char err[512], fp[CPNS_FINGERPRINT_LEN + 1];
        if (keyfile_write(key_out, EUK, err, sizeof err) != 0) {
            /* The server will never show this key again: hand it out rather than lose it. */
            printf("%s\n", b64);
            rv = ctl_fail("PNE %s %s, but its key could not be written (%s); "
                          "the key is on stdout",
                          PNEID, done, err);
        } else if (c->json) {
            json_object_del(j, "entity_user_key");
            char *s = json_dumps(j, JSON_COMPACT);
            if (s)
                printf("%s\n", s);
            free(s);
        } else {
            cpns_fingerprint(EUK, sizeof EUK, fp);
            printf("PNE %s %s; Entity User Key written to %s (fingerprint %s)\n", PNEID, done,
                   key_out, fp);
        }
    }
    cpns_wipe(EUK, sizeof EUK);
    json_decref(j);
    return rv;
}

/*
 * Puts the base64 of key_file's EUK into req as "entity_user_key" and its
 * fingerprint into fp. CTL_OK, or CTL_USAGE after a message.
 */
static int key_from_file(json_t *req, const char *key_file, char fp[CPNS_FINGERPRINT_LEN + 1])
{
    uint8_t EUK[CPNS_KEY_LEN];
    char err[512], b64[CPNS_B64_LEN(CPNS_KEY_LEN) + 1];
    if (keyfile_read(key_file, EUK, err, sizeof err) != 0)
        return ctl_usage_error("--key-file %s", err);
    cpns_b64_encode(EUK, sizeof EUK, b64, sizeof b64);
    cpns_fingerprint(EUK, sizeof EUK, fp);
    cpns_wipe(EUK, sizeof EUK);
    int rv = json_object_set_new(req, "entity_user_key", json_string(b64));
    cpns_wipe(b64, sizeof b64);
    return rv == 0 ? CTL_OK : ctl_fail("out of memory");
}

/*
 * The one call of pne add and pne set-key: req (stolen) to path, then the
 * answer: the key the server generated goes to key_out (or stdout); a key
 * from key_file (fingerprint fp) is only confirmed.
 */
static int pne_key_call(ctl *c, const char *method, const char *path, json_t *req,
                        const char *PNEID, const char *key_out, const char *key_file,
                        const char *fp, const char *done)
{
    char *body = dump(req);
    if (!body)
        return ctl_fail("out of memory");
    ctl_reply r;
    int rv = call(c, method, path, body, &r);
    cpns_wipe(body, strlen(body));
    free(body);
    if (rv != CTL_OK)
        return rv;
    if (key_file) {
        if (c->json)
            print_raw(&r);
        else
            printf("PNE %s %s with the Entity User Key of %s (fingerprint %s)\n", PNEID, done,
                   key_file, fp);
    } else {
        rv = pne_take_key(c, PNEID, key_out, &r, done);
    }
    if (r.body)
        cpns_wipe(r.body, r.len);
    ctl_reply_clear(&r);
    return rv;
}

/* Checked before the call: once the server generated the key, it is too late. */
static int check_key_out(const char *key_out)
{
    struct stat st;
    if (key_out && lstat(key_out, &st) == 0)
        return ctl_usage_error("--key-out %s: the file exists; it is never overwritten", key_out);
    return CTL_OK;
}

static int pne_add(ctl *c, char **words, int n, const char *key_out, const char *key_file)
{
    if (n != 1)
        return ctl_usage_error("usage: pne add PNEID [--key-out FILE | --key-file FILE]");
    if (key_out && key_file)
        return ctl_usage_error("pne add: --key-out and --key-file exclude each other");
    const char *PNEID = words[0];
    if (check_key_out(key_out) != CTL_OK)
        return CTL_USAGE;
    json_t *req = json_pack("{s:s}", "pneid", PNEID);
    char fp[CPNS_FINGERPRINT_LEN + 1] = "";
    if (!req)
        return ctl_fail("out of memory");
    if (key_file) {
        int rv = key_from_file(req, key_file, fp);
        if (rv != CTL_OK) {
            json_decref(req);
            return rv;
        }
    }
    return pne_key_call(c, "POST", "/v1/pnes", req, PNEID, key_out, key_file, fp, "provisioned");
}

/*
 * Re-provisioning (PUT /v1/pnes/PNEID): the server takes a new EUK and
 * retries the PNE's members that failed by Return 2. Exactly one of the key
 * options, so a key is never changed without the operator holding the new one.
 */
static int pne_set_key(ctl *c, char **words, int n, const char *key_out, const char *key_file)
{
    static const char usage[] = "usage: pne set-key PNEID (--key-file FILE | --key-out FILE)";
    if (n != 1)
        return ctl_usage_error("%s", usage);
    if (key_out && key_file)
        return ctl_usage_error("pne set-key: --key-out and --key-file exclude each other");
    if (!key_out && !key_file)
        return ctl_usage_error("pne set-key: give the new key (--key-file FILE) or where to "
                               "write the one the server generates (--key-out FILE)");
    const char *PNEID = words[0];
    if (ctl_http_dot_segment(PNEID))
        return dot_id_error("PNEID", PNEID);
    if (check_key_out(key_out) != CTL_OK)
        return CTL_USAGE;
    json_t *req = json_object();
    char fp[CPNS_FINGERPRINT_LEN + 1] = "";
    if (!req)
        return ctl_fail("out of memory");
    if (key_file) {
        int rv = key_from_file(req, key_file, fp);
        if (rv != CTL_OK) {
            json_decref(req);
            return rv;
        }
    }
    char *seg = ctl_http_segment(PNEID);
    size_t len = seg ? strlen("/v1/pnes/") + strlen(seg) + 1 : 0;
    char *path = seg ? malloc(len) : NULL;
    if (!path) {
        free(seg);
        json_decref(req);
        return ctl_fail("out of memory");
    }
    snprintf(path, len, "/v1/pnes/%s", seg);
    free(seg);
    int rv = pne_key_call(c, "PUT", path, req, PNEID, key_out, key_file, fp, "re-provisioned");
    free(path);
    return rv;
}

int cmd_pne(ctl *c, int argc, char **argv)
{
    if (argc < 2)
        return ctl_usage_error("pne: give a subcommand: add, set-key or list");
    const char *key_out = NULL, *key_file = NULL;
    const cmd_opt add_opts[] = {{"--key-out", &key_out}, {"--key-file", &key_file}, {NULL, NULL}};
    const char *sub = argv[1];
    char **words = malloc(MAX_WORDS * sizeof *words);
    if (!words)
        return ctl_fail("out of memory");
    int rv;
    int keyed = strcmp(sub, "add") == 0 || strcmp(sub, "set-key") == 0;
    int n = parse_words(c, "pne", argc - 1, argv + 1, keyed ? add_opts : NULL, words);
    if (n < 0) {
        rv = CTL_USAGE;
    } else if (strcmp(sub, "add") == 0) {
        rv = pne_add(c, words, n, key_out, key_file);
    } else if (strcmp(sub, "set-key") == 0) {
        rv = pne_set_key(c, words, n, key_out, key_file);
    } else if (strcmp(sub, "list") == 0) {
        ctl_reply r;
        if (n != 0)
            rv = ctl_usage_error("usage: pne list");
        else if ((rv = call(c, "GET", "/v1/pnes", NULL, &r)) == CTL_OK) {
            if (c->json) {
                print_raw(&r);
            } else {
                json_t *j = json_loads(r.body, 0, NULL);
                if (show_pnes(stdout, j) != 0)
                    rv = ctl_fail("unexpected answer from the server: %s", r.body);
                json_decref(j);
            }
            ctl_reply_clear(&r);
        }
    } else {
        rv = ctl_usage_error("pne: unknown subcommand '%s'", sub);
    }
    free(words);
    return rv;
}

/* --- sg --- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What one poll of GET .../status said. */
typedef struct wait_status {
    json_int_t key_version, total, pending, sent, delivered, failed;
    int done;
} wait_status;

static int parse_status(const json_t *j, wait_status *st)
{
    const json_t *counts = json_object_get(j, "counts");
    if (!json_is_object(j) || !json_is_integer(json_object_get(j, "key_version")) ||
        !json_is_integer(json_object_get(j, "total")) ||
        !json_is_boolean(json_object_get(j, "done")) || !json_is_object(counts))
        return -1;
    st->key_version = json_integer_value(json_object_get(j, "key_version"));
    st->total = json_integer_value(json_object_get(j, "total"));
    st->done = json_is_true(json_object_get(j, "done"));
    st->pending = json_integer_value(json_object_get(counts, "pending"));
    st->sent = json_integer_value(json_object_get(counts, "sent"));
    st->delivered = json_integer_value(json_object_get(counts, "delivered"));
    st->failed = json_integer_value(json_object_get(counts, "failed"));
    return 0;
}

/*
 * The progress of `sg wait` on a terminal: one line, rewritten in place.
 * The rate counts deliveries since the wait (or the key version) began.
 */
typedef struct wait_progress {
    int on;    /* stderr is a terminal */
    int shown; /* a line is on the screen */
    json_int_t key_version, base_delivered;
    int64_t base_ms;
    char line[256]; /* on the screen */
} wait_progress;

static void progress_show(wait_progress *p, const char *SGID, const wait_status *st, int64_t now)
{
    if (!p->on)
        return;
    if (!p->base_ms || st->key_version != p->key_version || st->delivered < p->base_delivered) {
        p->key_version = st->key_version;
        p->base_delivered = st->delivered;
        p->base_ms = now;
    }
    char rate[64] = "-/s", left[64] = "time left -";
    double elapsed = (double)(now - p->base_ms) / 1000.0;
    json_int_t gained = st->delivered - p->base_delivered;
    if (elapsed >= 1.0 && gained > 0) {
        double r = (double)gained / elapsed;
        snprintf(rate, sizeof rate, "%.0f/s", r);
        double eta = (double)(st->total - st->delivered) / r;
        snprintf(left, sizeof left, "about %.0f s left", eta + 0.5);
    }
    char line[sizeof p->line];
    int n =
        snprintf(line, sizeof line, "SG %s key_version %lld: %lld/%lld delivered (%lld%%), %s, %s",
                 SGID, (long long)st->key_version, (long long)st->delivered, (long long)st->total,
                 (long long)(st->total ? st->delivered * 100 / st->total : 100), rate, left);
    if (st->failed && n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n,
                 ", %lld failed (retried at their next registration)", (long long)st->failed);
    if (p->shown && strcmp(line, p->line) == 0)
        return; /* redrawn only when it changes */
    memcpy(p->line, line, sizeof line);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    p->shown = 1;
}

static void progress_clear(wait_progress *p)
{
    if (p->shown)
        fputs("\r\033[K", stderr);
    p->shown = 0;
}

#define WAIT_MISSING_SHOWN 5

/*
 * The timeout message: the counts, then at most WAIT_MISSING_SHOWN of the
 * members that lack the current key (one more call, with ?missing=N) and how
 * many more there are. With --json, that status object goes to stdout.
 */
static void wait_timed_out(ctl *c, const char *SGID, const char *path, int64_t wait_s,
                           const wait_status *last, const char *last_error)
{
    char *p = malloc(strlen(path) + 32);
    ctl_reply r = {0};
    json_t *j = NULL;
    wait_status st;
    if (p) {
        sprintf(p, "%s?missing=%d", path, WAIT_MISSING_SHOWN);
        if (ctl_http_call(c->http, "GET", p, NULL, &r) == 0 && r.status == 200)
            j = json_loads(r.body, 0, NULL);
    }
    if (!j || parse_status(j, &st) != 0) {
        json_decref(j);
        j = NULL;
        if (last)
            st = *last;
    }
    fprintf(stderr, "cpnsctl: sg wait: SG %s not complete after %lld s", SGID, (long long)wait_s);
    if (j || last) {
        fprintf(stderr,
                ": key_version %lld held by %lld of %lld members (pending %lld, sent %lld, "
                "failed %lld)",
                (long long)st.key_version, (long long)st.delivered, (long long)st.total,
                (long long)st.pending, (long long)st.sent, (long long)st.failed);
    }
    const json_t *missing = json_object_get(j, "missing");
    if (json_array_size(missing) > 0) {
        fputs("; not yet: ", stderr);
        show_missing(stderr, missing);
        json_int_t more = st.total - st.delivered - (json_int_t)json_array_size(missing);
        if (more > 0)
            fprintf(stderr, " and %lld more", (long long)more);
        fprintf(stderr, " ('cpnsctl sg show %s' lists every member)", SGID);
    }
    if (last_error[0])
        fprintf(stderr, " (last poll: %s)", last_error);
    fputc('\n', stderr);
    if (c->json && j) {
        char *s = json_dumps(j, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
    }
    json_decref(j);
    ctl_reply_clear(&r);
    free(p);
}

/*
 * Polls the SG's status (counts only: as cheap for 100,000 members as for
 * 10) until it is done. A server that is briefly unreachable (restarting) is
 * polled again until the deadline; an error answer (unknown SG, ...) ends
 * the wait at once. On a terminal, a progress line on stderr.
 */
static int sg_wait(ctl *c, const char *SGID, const char *timeout)
{
    int64_t wait_s = WAIT_DEFAULT_S;
    if (timeout && parse_i64(timeout, 0, 31536000, &wait_s) != 0)
        return ctl_usage_error("sg wait --timeout %s: give whole seconds", timeout);
    char *path = sg_path(SGID, "/status");
    if (!path)
        return ctl_fail("out of memory");
    int64_t deadline = now_ms() + wait_s * 1000;
    wait_status last;
    int have_last = 0;
    wait_progress prog = {.on = isatty(STDERR_FILENO)};
    char last_error[256] = "";
    int rv = CTL_FAILED;
    for (;;) {
        ctl_reply r;
        if (ctl_http_call(c->http, "GET", path, NULL, &r) != 0) {
            snprintf(last_error, sizeof last_error, "%s", r.error);
        } else if (r.status != 200) {
            progress_clear(&prog);
            rv = report_error(c, &r);
            ctl_reply_clear(&r);
            break;
        } else {
            json_t *j = json_loads(r.body, 0, NULL);
            wait_status st;
            if (parse_status(j, &st) != 0) {
                progress_clear(&prog);
                rv = ctl_fail("unexpected answer from the server: %s", r.body);
                json_decref(j);
                ctl_reply_clear(&r);
                break;
            }
            json_decref(j);
            last = st;
            have_last = 1;
            last_error[0] = '\0';
            if (st.done) {
                progress_clear(&prog);
                if (c->json)
                    print_raw(&r);
                else if (st.total == 0)
                    printf("SG %s complete: it has no members (add them with 'cpnsctl sg add "
                           "%s PNEID...')\n",
                           SGID, SGID);
                else
                    printf("SG %s complete: key_version %lld held by all %lld members\n", SGID,
                           (long long)st.key_version, (long long)st.total);
                rv = CTL_OK;
                ctl_reply_clear(&r);
                break;
            }
            progress_show(&prog, SGID, &st, now_ms());
        }
        ctl_reply_clear(&r);
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            progress_clear(&prog);
            wait_timed_out(c, SGID, path, wait_s, have_last ? &last : NULL, last_error);
            break;
        }
        struct timespec ts = {0, (left < WAIT_POLL_MS ? left : WAIT_POLL_MS) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    free(path);
    return rv;
}

/* sg add / sg remove: one members call. */
static int sg_members(ctl *c, const char *verb, char **words, int n)
{
    if (n < 2)
        return ctl_usage_error("usage: sg %s SGID PNEID...", verb);
    json_t *req = json_object();
    json_object_set_new(req, verb, string_array(words + 1, n - 1));
    char *body = dump(req);
    char *path = sg_path(words[0], "/members");
    int rv = CTL_FAILED;
    ctl_reply r;
    if (!body || !path)
        rv = ctl_fail("out of memory");
    else if ((rv = call(c, "POST", path, body, &r)) == CTL_OK) {
        rv = print_sg_reply(c, &r, 0);
        ctl_reply_clear(&r);
    }
    free(body);
    free(path);
    return rv;
}

/* sg create, show, list, rekey, delete: at most one call with a fixed shape. */
static int sg_simple(ctl *c, const char *sub, char **words, int n)
{
    const char *method = "GET";
    char *path = NULL;
    char *body = NULL;
    int list = 0;
    if (strcmp(sub, "create") == 0) {
        if (n < 1)
            return ctl_usage_error("usage: sg create SGID [PNEID...]");
        method = "POST";
        path = strdup("/v1/service-groups");
        body = dump(
            json_pack("{s:s,s:o}", "sgid", words[0], "members", string_array(words + 1, n - 1)));
        if (!body) {
            free(path);
            return ctl_fail("out of memory");
        }
    } else if (strcmp(sub, "list") == 0) {
        if (n != 0)
            return ctl_usage_error("usage: sg list");
        /* Counts per SG, not every member of every group. */
        path = strdup("/v1/service-groups?view=status");
        list = 1;
    } else {
        if (n != 1)
            return ctl_usage_error("usage: sg %s SGID", sub);
        if (strcmp(sub, "rekey") == 0) {
            method = "POST";
            path = sg_path(words[0], "/rekey");
        } else {
            method = strcmp(sub, "delete") == 0 ? "DELETE" : "GET";
            path = sg_path(words[0], "");
        }
    }
    int rv;
    ctl_reply r;
    if (!path)
        rv = ctl_fail("out of memory");
    else if ((rv = call(c, method, path, body, &r)) == CTL_OK) {
        if (strcmp(sub, "delete") == 0 && !c->json)
            printf("SG %s deleted\n", words[0]);
        else
            rv = print_sg_reply(c, &r, list);
        /* Allowed: the SG holds its key, and members added later get it. */
        if (rv == CTL_OK && strcmp(sub, "create") == 0 && n == 1 && !c->json)
            printf("SG %s has no members: nothing to distribute until 'cpnsctl sg add %s "
                   "PNEID...'\n",
                   words[0], words[0]);
        ctl_reply_clear(&r);
    }
    free(path);
    free(body);
    return rv;
}

int cmd_sg(ctl *c, int argc, char **argv)
{
    if (argc < 2)
        return ctl_usage_error("sg: give a subcommand: create, show, list, add, remove, rekey, "
                               "delete or wait");
    const char *sub = argv[1];
    static const char *const subs[] = {"create", "show",   "list", "add", "remove",
                                       "rekey",  "delete", "wait", NULL};
    size_t k = 0;
    while (subs[k] && strcmp(subs[k], sub) != 0)
        k++;
    if (!subs[k])
        return ctl_usage_error("sg: unknown subcommand '%s'", sub);
    const char *timeout = NULL;
    const cmd_opt wait_opts[] = {{"--timeout", &timeout}, {NULL, NULL}};
    char **words = malloc(MAX_WORDS * sizeof *words);
    if (!words)
        return ctl_fail("out of memory");
    int rv;
    int n = parse_words(c, "sg", argc - 1, argv + 1, strcmp(sub, "wait") == 0 ? wait_opts : NULL,
                        words);
    int by_path = strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0;
    if (n < 0)
        rv = CTL_USAGE;
    else if (by_path && n >= 1 && ctl_http_dot_segment(words[0]))
        rv = dot_id_error("SGID", words[0]);
    else if (strcmp(sub, "wait") == 0)
        rv = n == 1 ? sg_wait(c, words[0], timeout)
                    : ctl_usage_error("usage: sg wait SGID [--timeout S]");
    else if (strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0)
        rv = sg_members(c, sub, words, n);
    else
        rv = sg_simple(c, sub, words, n);
    free(words);
    return rv;
}
