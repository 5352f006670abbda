/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CPNS programs as the integration tests start and query them
 * (cluster.h). Command lines follow DESIGN.md section 4 to the letter, so a
 * drift in a program's options shows up here first.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cluster.h"

#define MAX_ARGS 64
#define POLL_MS 100

const char *const cl_programs[] = {"cpns-server", "cpns-gw", "cpns-pne", "cpnsctl", NULL};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Collects NULL-terminated varargs after `first` into args (NULL-terminated). */
static size_t collect(char **args, size_t n, va_list ap)
{
    char *a;
    while ((a = va_arg(ap, char *)) != NULL) {
        if (n == MAX_ARGS)
            fail_msg("too many arguments");
        args[n++] = a;
    }
    args[n] = NULL;
    return n;
}

char *cl_pki(harness *h, ...)
{
    char *dir = h_path(h, "pki");
    char *args[MAX_ARGS + 1] = {dir};
    va_list ap;
    va_start(ap, h);
    collect(args, 1, ap);
    va_end(ap);
    h_out o = h_runv(h, NULL, 60000, h_fmt(h, "%s/scripts/pki.sh", h->src_dir), args);
    if (o.status != 0)
        fail_msg("scripts/pki.sh failed (%d): %s", o.status, o.err);
    h_out_free(&o);
    return dir;
}

void cl_server_start(harness *h, cl_server *s, bool tls, ...)
{
    if (s->p) {
        h_restart(h, s->p);
    } else {
        s->tls = tls;
        s->listen_port = h_free_port();
        s->admin_port = h_free_port();
        while (s->admin_port == s->listen_port)
            s->admin_port = h_free_port();
        s->listen = h_fmt(h, "127.0.0.1:%u", (unsigned)s->listen_port);
        s->admin = h_fmt(h, "127.0.0.1:%u", (unsigned)s->admin_port);
        s->url = h_fmt(h, "http://%s", s->admin);
        s->db = h_path(h, "server.db");
        s->master_key = h_path(h, "master.key");
        char *args[MAX_ARGS + 1];
        size_t n = 0;
        const char *fixed[] = {"--listen", s->listen, "--admin",      s->admin,
                               "--db",     s->db,     "--master-key", s->master_key};
        for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
            args[n++] = (char *)fixed[i];
        if (tls) {
            char *pki = h_path(h, "pki");
            args[n++] = "--tls-cert";
            args[n++] = h_fmt(h, "%s/server.crt", pki);
            args[n++] = "--tls-key";
            args[n++] = h_fmt(h, "%s/server.key", pki);
            args[n++] = "--tls-ca";
            args[n++] = h_fmt(h, "%s/ca.crt", pki);
        } else {
            args[n++] = "--insecure";
        }
        va_list ap;
        va_start(ap, tls);
        collect(args, n, ap);
        va_end(ap);
        s->p = h_startv(h, "server", "cpns-server", args);
    }
    /*
     * The GW port is bound before the admin API, so /healthz answering means
     * both are up; probing the GW port would only leave a failed TLS
     * handshake in the server's log.
     */
    h_wait_http_ok(h, s->p, s->admin_port, "/healthz", CL_START_MS);
}

void cl_gw_start(harness *h, cl_gw *g, const cl_server *s, const char *PNGWID, const char *PNID)
{
    if (g->p) {
        h_restart(h, g->p);
    } else {
        g->PNGWID = PNGWID;
        g->PNID = PNID;
        g->port = h_free_port();
        g->listen = h_fmt(h, "127.0.0.1:%u", (unsigned)g->port);
        char *name = h_fmt(h, "gw-%s", PNGWID);
        if (s->tls) {
            char *pki = h_path(h, "pki");
            g->p =
                h_start(h, name, "cpns-gw", "--id", PNGWID, "--pnid", PNID, "--server", s->listen,
                        "--listen", g->listen, "--tls-cert", h_fmt(h, "%s/%s.crt", pki, PNGWID),
                        "--tls-key", h_fmt(h, "%s/%s.key", pki, PNGWID), "--tls-ca",
                        h_fmt(h, "%s/ca.crt", pki), NULL);
        } else {
            g->p = h_start(h, name, "cpns-gw", "--id", PNGWID, "--pnid", PNID, "--server",
                           s->listen, "--listen", g->listen, "--insecure", NULL);
        }
    }
    h_wait_port(h, g->p, g->port, CL_START_MS);
}

void cl_pne_provision(harness *h, const cl_server *s, cl_pne *n, const char *PNEID)
{
    n->PNEID = PNEID;
    n->key_file = h_fmt(h, "%s/%s.key", h->dir, PNEID);
    n->store = h_fmt(h, "%s/%s.store", h->dir, PNEID);
    h_out o = cl_ctl(h, s, "pne", "add", PNEID, "--key-out", n->key_file, NULL);
    if (o.status != 0)
        fail_msg("cpnsctl pne add %s: exit %d: %s", PNEID, o.status, o.err);
    h_out_free(&o);
    /* DESIGN.md section 4: base64 of 32 bytes and a newline, mode 0600. */
    assert_int_equal(h_file_mode(n->key_file), 0600);
    struct stat st;
    assert_int_equal(stat(n->key_file, &st), 0);
    assert_int_equal(st.st_size, 45);
}

void cl_pne_start(harness *h, cl_pne *n, const cl_gw *g)
{
    if (n->p) {
        h_restart(h, n->p);
        return;
    }
    n->p = h_start(h, h_fmt(h, "pne-%s", n->PNEID), "cpns-pne", "--id", n->PNEID, "--gw", g->listen,
                   "--key-file", n->key_file, "--store", n->store, NULL);
}

h_out cl_ctlv(harness *h, const cl_server *s, int timeout_ms, char *const *args)
{
    char *all[MAX_ARGS + 3] = {"--server", s->url};
    size_t n = 2;
    for (size_t i = 0; args[i]; i++) {
        if (n == MAX_ARGS + 2)
            fail_msg("too many arguments");
        all[n++] = args[i];
    }
    all[n] = NULL;
    return h_runv(h, NULL, timeout_ms, "cpnsctl", all);
}

h_out cl_ctl(harness *h, const cl_server *s, ...)
{
    char *args[MAX_ARGS + 1];
    va_list ap;
    va_start(ap, s);
    collect(args, 0, ap);
    va_end(ap);
    return cl_ctlv(h, s, CL_CTL_MS, args);
}

int cl_sg_wait(harness *h, const cl_server *s, const char *SGID, int timeout_s, char **err)
{
    char *args[] = {"sg", "wait", (char *)SGID, "--timeout", h_fmt(h, "%d", timeout_s), NULL};
    h_out o = cl_ctlv(h, s, timeout_s * 1000 + CL_CTL_MS, args);
    int status = o.status;
    if (err)
        *err = h_fmt(h, "%s", o.err);
    h_out_free(&o);
    return status;
}

json_t *cl_sg_json(harness *h, const cl_server *s, const char *SGID)
{
    h_out o = cl_ctl(h, s, "--json", "sg", "show", SGID, NULL);
    if (o.status != 0)
        fail_msg("cpnsctl sg show %s: exit %d: %s", SGID, o.status, o.err);
    json_error_t e;
    json_t *j = json_loads(o.out, 0, &e);
    if (!j)
        fail_msg("sg show %s: not JSON (%s): %s", SGID, e.text, o.out);
    h_out_free(&o);
    return j;
}

json_t *cl_member(json_t *sg, const char *PNEID)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(sg, "members"), i, m)
    {
        if (json_is_string(json_object_get(m, "pneid")) &&
            strcmp(json_string_value(json_object_get(m, "pneid")), PNEID) == 0)
            return m;
    }
    return NULL;
}

void cl_wait_registered(harness *h, const cl_server *s, const char *PNEID, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        h_out o = cl_ctl(h, s, "--json", "pne", "list", NULL);
        json_t *list = o.status == 0 ? json_loads(o.out, 0, NULL) : NULL;
        h_out_free(&o);
        size_t i;
        json_t *p;
        bool registered = false;
        json_array_foreach(list, i, p)
        {
            const char *id = json_string_value(json_object_get(p, "pneid"));
            if (id && strcmp(id, PNEID) == 0)
                registered = json_is_true(json_object_get(p, "registered"));
        }
        json_decref(list);
        if (registered)
            return;
        if (now_ms() >= deadline)
            fail_msg("PNE %s not registered after %d ms", PNEID, timeout_ms);
        sleep_ms(POLL_MS);
    }
}

void cl_wait_delivered(harness *h, const cl_server *s, const char *SGID, const char *PNEID,
                       int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        json_t *sg = cl_sg_json(h, s, SGID);
        const char *state = json_string_value(json_object_get(cl_member(sg, PNEID), "state"));
        bool done = state && strcmp(state, "delivered") == 0;
        json_decref(sg);
        if (done)
            return;
        if (now_ms() >= deadline)
            fail_msg("SG %s: member %s not delivered after %d ms", SGID, PNEID, timeout_ms);
        sleep_ms(POLL_MS);
    }
}

static bool is_fingerprint(const char *t)
{
    if (strlen(t) != 16)
        return false;
    for (; *t; t++)
        if (!((*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'f')))
            return false;
    return true;
}

/*
 * `cpns-pne keys` prints one row per SG: SGID, the current KeyVersion and its
 * fingerprint, then the previous ones. The current pair is the first number
 * and the first fingerprint after the SGID.
 */
void cl_pne_fingerprint(harness *h, const cl_pne *n, const char *SGID, char fp[17],
                        unsigned *KeyVersion)
{
    h_out o = h_run(h, NULL, CL_CTL_MS, "cpns-pne", "keys", "--store", n->store, "--key-file",
                    n->key_file, NULL);
    if (o.status != 0)
        fail_msg("cpns-pne keys (%s): exit %d: %s", n->PNEID, o.status, o.err);
    bool found = false;
    char *save_line = NULL;
    for (char *line = strtok_r(o.out, "\n", &save_line); line && !found;
         line = strtok_r(NULL, "\n", &save_line)) {
        char *save_tok = NULL;
        char *tok = strtok_r(line, " \t", &save_tok);
        if (!tok || strcmp(tok, SGID) != 0)
            continue;
        long version = -1;
        while ((tok = strtok_r(NULL, " \t", &save_tok)) != NULL) {
            char *end;
            long v = strtol(tok, &end, 10);
            if (version < 0 && *end == '\0' && v > 0) {
                version = v;
            } else if (is_fingerprint(tok)) {
                snprintf(fp, 17, "%s", tok);
                found = version > 0;
                break;
            }
        }
        if (found)
            *KeyVersion = (unsigned)version;
    }
    h_out_free(&o);
    if (!found)
        fail_msg("cpns-pne keys (%s): no key listed for SG %s", n->PNEID, SGID);
}

void cl_stop_clean(h_proc *p)
{
    int status = h_stop(p, CL_STOP_MS);
    if (status != 0)
        fail_msg("%s: exit status %d after SIGTERM (want 0)", p->name, status);
}
