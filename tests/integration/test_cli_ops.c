/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue #13 item 7, cpnsctl as people use it, against the real daemons:
 *  - GET /v1/service-groups/SGID/status: counts per member state, total and
 *    done, no member list; ?missing=N lists at most N members without the
 *    current key; bad parameters are 400, an unknown SG 404;
 *  - `sg list` reads ?view=status: counts, no members;
 *  - `sg wait` that times out names at most 5 missing members with their
 *    state and the count of the rest, and prints no progress when stderr is
 *    not a terminal; on a terminal (a pty) it draws its progress line in place;
 *  - `pne list` shows REACHABLE: yes for a PNE behind a connected GW, no for
 *    one that never connected;
 *  - `--server HOST:PORT` works like the URL;
 *  - `sg create` with no PNE succeeds and says how to add members; `sg wait`
 *    on it is done at once;
 *  - error messages name cpnsctl commands, never REST paths.
 */
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"

#define SGID "sg-ops"
#define N_OFF 7 /* members that never connect */

static json_t *get_json(const cl_server *s, const char *path, int want_status)
{
    char *body = NULL;
    int status = h_http(s->admin_port, "GET", path, NULL, NULL, &body);
    if (status != want_status)
        fail_msg("GET %s: %d, want %d: %s", path, status, want_status, body ? body : "");
    json_t *j = json_loads(body ? body : "", 0, NULL);
    if (!j)
        fail_msg("GET %s: not JSON: %s", path, body ? body : "");
    free(body);
    return j;
}

static json_int_t count_of(const json_t *status, const char *state)
{
    return json_integer_value(json_object_get(json_object_get(status, "counts"), state));
}

/* Runs cpnsctl on a pseudo-terminal: what it wrote there, its exit status in *status. */
static char *run_on_pty(harness *h, char *const *argv, int *status)
{
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) {
        execv(h_fmt(h, "%s/cpnsctl", h->bin_dir), argv);
        _exit(127);
    }
    size_t len = 0, cap = 65536;
    char *out = malloc(cap);
    assert_non_null(out);
    for (;;) {
        struct pollfd p = {master, POLLIN, 0};
        if (poll(&p, 1, 60000) <= 0)
            break;
        if (len + 4096 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        ssize_t n = read(master, out + len, 4096);
        if (n <= 0)
            break; /* EIO once the child has exited and closed the terminal */
        len += (size_t)n;
    }
    out[len] = '\0';
    close(master);
    int ws = 0;
    waitpid(pid, &ws, 0);
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    h_note(h, "on a pty: cpnsctl %s %s ...: exit %d, wrote:\n%s", argv[1], argv[2], *status, out);
    return out;
}

/* Polls `pne list` until PNEID's REACHABLE column says want. */
static void wait_reachable(harness *h, const cl_server *s, const char *PNEID, const char *want)
{
    for (int i = 0; i < 300; i++) {
        h_out o = cl_ctl(h, s, "pne", "list", NULL);
        assert_int_equal(o.status, 0);
        assert_non_null(strstr(o.out, "REACHABLE"));
        char *line = strstr(o.out, h_fmt(h, "\n%s ", PNEID));
        bool ok = false;
        if (line) {
            char pneid[80], registered[8], reachable[8];
            ok = sscanf(line + 1, "%79s %7s %7s", pneid, registered, reachable) == 3 &&
                 strcmp(reachable, want) == 0;
        }
        h_out_free(&o);
        if (ok)
            return;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fail_msg("pne list: %s never REACHABLE %s", PNEID, want);
}

static void no_rest_path(const h_out *o, const char *what)
{
    if (strstr(o->err, "/v1/"))
        fail_msg("%s: the message names a REST path: %s", what, o->err);
}

static void test_cli_ops(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, NULL);
    cl_pne on = {0};
    cl_pne_provision(h, &s, &on, "pne-on");
    cl_pne off[N_OFF];
    memset(off, 0, sizeof off);
    char *create[N_OFF + 5] = {"sg", "create", SGID, "pne-on"};
    for (int i = 0; i < N_OFF; i++) {
        cl_pne_provision(h, &s, &off[i], h_fmt(h, "pne-off-%d", i));
        create[4 + i] = (char *)off[i].PNEID;
    }
    create[4 + N_OFF] = NULL;
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    cl_pne_start(h, &on, &g);
    cl_wait_registered(h, &s, "pne-on", 30000);

    /* pne list: reachability. */
    wait_reachable(h, &s, "pne-on", "yes");
    wait_reachable(h, &s, "pne-off-0", "no");

    h_out o = cl_ctlv(h, &s, CL_CTL_MS, create);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    cl_wait_delivered(h, &s, SGID, "pne-on", 30000);

    /* The light status: counts only. */
    json_t *st = get_json(&s, "/v1/service-groups/" SGID "/status", 200);
    assert_int_equal(json_integer_value(json_object_get(st, "total")), N_OFF + 1);
    assert_int_equal(count_of(st, "delivered"), 1);
    assert_int_equal(count_of(st, "pending") + count_of(st, "sent") + count_of(st, "failed"),
                     N_OFF);
    assert_true(json_is_false(json_object_get(st, "done")));
    assert_int_equal(json_integer_value(json_object_get(st, "key_version")), 1);
    assert_null(json_object_get(st, "members"));
    assert_null(json_object_get(st, "missing"));
    json_decref(st);
    st = get_json(&s, "/v1/service-groups/" SGID "/status?missing=2", 200);
    assert_int_equal(json_array_size(json_object_get(st, "missing")), 2);
    json_decref(st);
    json_decref(get_json(&s, "/v1/service-groups/" SGID "/status?missing=101", 400));
    json_decref(get_json(&s, "/v1/service-groups/" SGID "/status?members=1", 400));
    st = get_json(&s, "/v1/service-groups/nope/status", 404);
    assert_non_null(strstr(json_string_value(json_object_get(st, "error")), "cpnsctl sg list"));
    json_decref(st);

    /* sg list: counts from the status view, no member lists. */
    o = cl_ctl(h, &s, "--json", "sg", "list", NULL);
    assert_int_equal(o.status, 0);
    json_t *list = json_loads(o.out, 0, NULL);
    assert_int_equal(json_array_size(list), 1);
    assert_null(json_object_get(json_array_get(list, 0), "members"));
    assert_int_equal(count_of(json_array_get(list, 0), "delivered"), 1);
    json_decref(list);
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "list", NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, h_fmt(h, "1/%d", N_OFF + 1)));
    h_out_free(&o);

    /* sg wait times out: at most 5 missing members named, the rest counted, no progress noise. */
    char *err = NULL;
    assert_int_equal(cl_sg_wait(h, &s, SGID, 1, &err), 1);
    assert_non_null(strstr(err, h_fmt(h, "held by 1 of %d members", N_OFF + 1)));
    int named = 0;
    for (int i = 0; i < N_OFF; i++)
        named += strstr(err, h_fmt(h, "pne-off-%d (", i)) != NULL;
    assert_int_equal(named, 5);
    assert_non_null(strstr(err, h_fmt(h, " and %d more", N_OFF - 5)));
    assert_null(strstr(err, "pne-on ("));
    assert_null(strchr(err, '\r'));
    assert_null(strstr(err, "\033["));

    /* On a terminal: the progress line, drawn in place. */
    int status = -1;
    char *tty = run_on_pty(
        h, (char *[]){"cpnsctl", "--server", s.url, "sg", "wait", SGID, "--timeout", "1", NULL},
        &status);
    assert_int_equal(status, 1);
    assert_non_null(strstr(tty, h_fmt(h, "\r\033[KSG %s key_version 1: 1/%d delivered (%d%%)", SGID,
                                      N_OFF + 1, 100 / (N_OFF + 1))));
    assert_non_null(strstr(tty, "not complete after 1 s"));
    free(tty);

    /* An SG with no PNE: allowed, complete at once, and cpnsctl says how to fill it. */
    o = cl_ctl(h, &s, "sg", "create", "sg-empty", NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "has no members"));
    assert_non_null(strstr(o.out, "cpnsctl sg add sg-empty PNEID"));
    h_out_free(&o);
    assert_int_equal(cl_sg_wait(h, &s, "sg-empty", 5, &err), 0);

    /* Errors name cpnsctl commands. */
    o = cl_ctl(h, &s, "sg", "add", SGID, "pne-nobody", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "cpnsctl pne add pne-nobody"));
    no_rest_path(&o, "sg add of an unknown PNE");
    h_out_free(&o);
    o = cl_ctl(h, &s, "pne", "add", "pne-on", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "cpnsctl pne set-key pne-on"));
    no_rest_path(&o, "pne add of a known PNE");
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "show", "nope", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "cpnsctl sg list"));
    no_rest_path(&o, "sg show of an unknown SG");
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "create", SGID, NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "cpnsctl sg show " SGID));
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "remove", SGID, "pne-nobody", NULL);
    assert_int_equal(o.status, 1);
    no_rest_path(&o, "sg remove");
    h_out_free(&o);
    o = cl_ctl(h, &s, "pne", "set-key", "pne-nobody", "--key-out", h_path(h, "x.key"), NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "cpnsctl pne add pne-nobody"));
    no_rest_path(&o, "pne set-key of an unknown PNE");
    h_out_free(&o);

    /* --server forms: HOST:PORT is http://HOST:PORT; a bad one is a usage error. */
    o = h_run(h, NULL, CL_CTL_MS, "cpnsctl", "--server", s.admin, "sg", "show", SGID, NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    o = h_run(h, NULL, CL_CTL_MS, "cpnsctl", "--server", "127.0.0.1:notaport", "sg", "list", NULL);
    assert_int_equal(o.status, 2);
    h_out_free(&o);

    cl_stop_clean(on.p);
    cl_stop_clean(g.p);
    cl_stop_clean(s.p);
    h_passed(h);
}

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cli_ops, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
