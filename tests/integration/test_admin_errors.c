/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin API's errors (DESIGN.md section 5): each kind of mistake gets its
 * status and a JSON {"error": "..."} of its own, through raw HTTP (for what
 * cpnsctl cannot send, like a malformed body) and through cpnsctl (exit 1,
 * the server's message on stderr). Also the bearer token of --admin-token-file,
 * and how cpnsctl puts identifiers into paths (percent-encoded, never a dot
 * segment).
 */
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster.h"

#define VALID_EUK "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

/*
 * Sends one request and checks the status; for an error, also that the body
 * is {"error": "<non-empty>"}. Returns the parsed body (json_decref it).
 */
static json_t *expect(harness *h, const cl_server *s, const char *method, const char *path,
                      const char *body, int want_status)
{
    char *resp = NULL;
    int status = h_http(s->admin_port, method, path, NULL, body, &resp);
    /* In the transcript too, so that a failure shows what was asked and answered. */
    h_note(h, "HTTP %s %s %s\n[status %d] %s", method, path, body ? body : "", status,
           resp ? resp : "");
    if (status != want_status)
        fail_msg("%s %s %s: status %d, want %d (%s)", method, path, body ? body : "", status,
                 want_status, resp ? resp : "");
    json_t *j = resp && *resp ? json_loads(resp, 0, NULL) : NULL;
    if (want_status >= 400) {
        const char *msg = json_string_value(json_object_get(j, "error"));
        if (!msg || !*msg)
            fail_msg("%s %s: error body is not {\"error\": \"...\"}: %s", method, path,
                     resp ? resp : "");
    }
    free(resp);
    return j;
}

static char *error_of(harness *h, json_t *j)
{
    char *s = h_fmt(h, "%s", json_string_value(json_object_get(j, "error")));
    json_decref(j);
    return s;
}

static void test_admin_errors(void **state)
{
    harness *h = *state;
    cl_server s = {0};
    cl_server_start(h, &s, false, NULL);

    /* A generated key is returned once, with the PNEID. */
    json_t *j = expect(h, &s, "POST", "/v1/pnes", "{\"pneid\":\"pne-1\"}", 201);
    assert_string_equal(json_string_value(json_object_get(j, "pneid")), "pne-1");
    const char *euk = json_string_value(json_object_get(j, "entity_user_key"));
    assert_non_null(euk);
    assert_int_equal(strlen(euk), 44);
    json_decref(j);
    /* A provided key is not echoed. */
    j = expect(h, &s, "POST", "/v1/pnes",
               "{\"pneid\":\"pne-2\",\"entity_user_key\":\"" VALID_EUK "\"}", 201);
    assert_null(json_object_get(j, "entity_user_key"));
    json_decref(j);

    char *bad_id = error_of(h, expect(h, &s, "POST", "/v1/pnes", "{\"pneid\":\"bad id!\"}", 400));
    char *dup = error_of(h, expect(h, &s, "POST", "/v1/pnes", "{\"pneid\":\"pne-1\"}", 409));
    char *malformed = error_of(h, expect(h, &s, "POST", "/v1/pnes", "{\"pneid\": ", 400));
    char *unknown = error_of(h, expect(h, &s, "GET", "/v1/service-groups/nope", NULL, 404));
    /* Each kind of mistake has its own message. */
    assert_string_not_equal(bad_id, dup);
    assert_string_not_equal(bad_id, malformed);
    assert_string_not_equal(bad_id, unknown);
    assert_string_not_equal(dup, malformed);
    assert_string_not_equal(dup, unknown);
    assert_string_not_equal(malformed, unknown);

    json_decref(expect(h, &s, "POST", "/v1/pnes", "{\"pneid\":5}", 400));
    json_decref(expect(h, &s, "POST", "/v1/pnes", "[\"pne-3\"]", 400));
    json_decref(expect(h, &s, "POST", "/v1/pnes", "{}", 400));
    json_decref(expect(h, &s, "POST", "/v1/pnes",
                       "{\"pneid\":\"pne-3\",\"entity_user_key\":\"not base64!\"}", 400));
    json_decref(expect(h, &s, "POST", "/v1/pnes",
                       "{\"pneid\":\"pne-3\",\"entity_user_key\":\"AAECAwQ=\"}", 400));
    json_decref(expect(h, &s, "POST", "/v1/pnes",
                       "{\"pneid\":\"this-identifier-is-longer-than-sixty-four-characters-"
                       "and-so-it-is-bad\"}",
                       400));

    json_decref(
        expect(h, &s, "POST", "/v1/service-groups", "{\"sgid\":\"bad sg\",\"members\":[]}", 400));
    json_decref(expect(h, &s, "POST", "/v1/service-groups",
                       "{\"sgid\":\"sg-1\",\"members\":\"pne-1\"}", 400));
    json_decref(expect(h, &s, "POST", "/v1/service-groups",
                       "{\"sgid\":\"sg-1\",\"members\":[\"pne-1\",\"pne-1\"]}", 400));
    json_decref(expect(h, &s, "POST", "/v1/service-groups", "{\"sgid\":", 400));
    /* An unknown member is a 404 (DESIGN.md: an unknown PNE), and nothing is created. */
    json_decref(expect(h, &s, "POST", "/v1/service-groups",
                       "{\"sgid\":\"sg-1\",\"members\":[\"pne-1\",\"pne-nobody\"]}", 404));
    json_decref(expect(h, &s, "GET", "/v1/service-groups/sg-1", NULL, 404));

    json_decref(expect(h, &s, "POST", "/v1/service-groups",
                       "{\"sgid\":\"sg-1\",\"members\":[\"pne-1\"]}", 201));
    json_decref(expect(h, &s, "POST", "/v1/service-groups",
                       "{\"sgid\":\"sg-1\",\"members\":[\"pne-2\"]}", 409));
    json_decref(expect(h, &s, "POST", "/v1/service-groups/sg-1/members", "{\"add\":", 400));
    json_decref(expect(h, &s, "POST", "/v1/service-groups/sg-1/members",
                       "{\"add\":[\"pne-nobody\"]}", 404));
    json_decref(
        expect(h, &s, "POST", "/v1/service-groups/nope/members", "{\"add\":[\"pne-2\"]}", 404));
    json_decref(expect(h, &s, "POST", "/v1/service-groups/nope/rekey", NULL, 404));
    json_decref(expect(h, &s, "DELETE", "/v1/service-groups/nope", NULL, 404));
    json_decref(expect(h, &s, "GET", "/v1/no-such-thing", NULL, 404));

    /* The same mistakes through cpnsctl: exit 1 and the server's message on stderr. */
    h_out o = cl_ctl(h, &s, "pne", "add", "bad id!", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, bad_id));
    assert_string_equal(o.out, "");
    h_out_free(&o);
    o = cl_ctl(h, &s, "pne", "add", "pne-1", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, dup));
    assert_string_equal(o.out, "");
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "show", "nope", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "404"));
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "wait", "nope", "--timeout", "5", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "404"));
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "create", "sg-1", "pne-2", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "409"));
    h_out_free(&o);
    /* A key file that exists is never overwritten, and the server is not asked. */
    char *existing = h_path(h, "existing.key");
    h_write_file(existing, "keep me\n", 0600);
    o = cl_ctl(h, &s, "pne", "add", "pne-4", "--key-out", existing, NULL);
    assert_int_equal(o.status, 2);
    h_out_free(&o);
    assert_true(h_file_contains(existing, "keep me"));
    o = cl_ctl(h, &s, "--json", "pne", "list", NULL);
    assert_int_equal(o.status, 0);
    assert_null(strstr(o.out, "pne-4"));
    h_out_free(&o);

    cl_stop_clean(s.p);
    /* No server at all. */
    o = cl_ctl(h, &s, "pne", "list", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "refused"));
    h_out_free(&o);
    h_passed(h);
}

/* --admin-token-file: every call needs the bearer token; cpnsctl sends it with --token-file. */
static void test_admin_token(void **state)
{
    harness *h = *state;
    char *token = h_path(h, "admin.token");
    h_write_file(token, "s3cret-token-0123456789\n", 0600);
    char *wrong = h_path(h, "wrong.token");
    h_write_file(wrong, "not-the-token\n", 0600);
    uint16_t listen = h_free_port(), admin = h_free_port();
    cl_server s = {.admin_port = admin, .url = h_fmt(h, "http://127.0.0.1:%u", (unsigned)admin)};
    s.p = h_start(
        h, "server", "cpns-server", "--listen", h_fmt(h, "127.0.0.1:%u", (unsigned)listen),
        "--admin", h_fmt(h, "127.0.0.1:%u", (unsigned)admin), "--db", h_path(h, "server.db"),
        "--master-key", h_path(h, "master.key"), "--insecure", "--admin-token-file", token, NULL);
    h_wait_port(h, s.p, admin, CL_START_MS);

    char *body = NULL;
    int status = h_http(admin, "GET", "/v1/pnes", NULL, NULL, &body);
    assert_int_equal(status, 401);
    json_t *j = json_loads(body ? body : "", 0, NULL);
    assert_non_null(json_object_get(j, "error"));
    json_decref(j);
    free(body);
    status = h_http(admin, "GET", "/v1/pnes", "Authorization: Bearer not-the-token", NULL, NULL);
    assert_true(status == 401 || status == 403);
    status = h_http(admin, "GET", "/v1/pnes", "Authorization: Bearer s3cret-token-0123456789", NULL,
                    NULL);
    assert_int_equal(status, 200);

    h_out o = cl_ctl(h, &s, "pne", "add", "pne-1", NULL);
    assert_int_equal(o.status, 1);
    h_out_free(&o);
    o = cl_ctl(h, &s, "--token-file", wrong, "pne", "add", "pne-1", NULL);
    assert_int_equal(o.status, 1);
    h_out_free(&o);
    o = cl_ctl(h, &s, "--token-file", token, "pne", "add", "pne-1", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    o = cl_ctl(h, &s, "--token-file", token, "--json", "pne", "list", NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "pne-1"));
    h_out_free(&o);
    /* The token is a secret: cpnsctl refuses a file others can read. */
    h_write_file(token, "s3cret-token-0123456789\n", 0644);
    o = cl_ctl(h, &s, "--token-file", token, "pne", "list", NULL);
    assert_int_equal(o.status, 2);
    h_out_free(&o);

    cl_stop_clean(s.p);
    h_passed(h);
}

/* A listening loopback socket on a free port, for a fake admin API. */
static int fake_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/*
 * Runs cpnsctl against the fake API on lfd and returns the request line it
 * sent (free it); the fake answers 404 with a JSON error.
 */
static char *request_line_of(harness *h, int lfd, uint16_t port, char *const *args)
{
    char *argv[16];
    size_t n = 0;
    argv[n++] = "--server";
    argv[n++] = h_fmt(h, "http://127.0.0.1:%u", port);
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    h_proc *p = h_startv(h, "ctl-fake", "cpnsctl", argv);
    struct pollfd pfd = {lfd, POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, CL_CTL_MS), 1);
    int c = accept(lfd, NULL, NULL);
    assert_true(c >= 0);
    char buf[4096];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        struct pollfd cp = {c, POLLIN, 0};
        assert_int_equal(poll(&cp, 1, CL_CTL_MS), 1);
        ssize_t r = read(c, buf + got, sizeof buf - 1 - got);
        assert_true(r > 0);
        got += (size_t)r;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    static const char answer[] = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 20\r\nConnection: close\r\n\r\n"
                                 "{\"error\":\"fake 404\"}";
    assert_int_equal(write(c, answer, sizeof answer - 1), (ssize_t)(sizeof answer - 1));
    close(c);
    assert_int_equal(h_wait_exit(p, CL_CTL_MS), 1);
    char *eol = strstr(buf, "\r\n");
    assert_non_null(eol);
    *eol = '\0';
    h_note(h, "cpnsctl sent: %s", buf);
    return strdup(buf);
}

/*
 * #10.14: cpnsctl put identifiers into URL paths with ':' and '@' as they
 * are, and "." and ".." were valid identifiers, which a normalising proxy
 * resolves to another resource (`sg add . X` acting on another path). Path
 * segments are now percent-encoded beyond RFC 3986's unreserved characters,
 * cpnsctl refuses a dot-only identifier before any request, and the server
 * refuses one that arrives anyway.
 */
static void test_ctl_path_ids(void **state)
{
    harness *h = *state;
    uint16_t port;
    int lfd = fake_listen(&port);
    char *line = request_line_of(h, lfd, port, (char *[]){"sg", "show", "sg:1@home", NULL});
    assert_string_equal(line, "GET /v1/service-groups/sg%3A1%40home HTTP/1.1");
    free(line);
    line = request_line_of(h, lfd, port, (char *[]){"sg", "add", "a/b?c", "pne-1", NULL});
    assert_string_equal(line, "POST /v1/service-groups/a%2Fb%3Fc/members HTTP/1.1");
    free(line);
    line = request_line_of(
        h, lfd, port,
        (char *[]){"pne", "set-key", "p#1~x", "--key-out", h_path(h, "new.key"), NULL});
    assert_string_equal(line, "PUT /v1/pnes/p%231~x HTTP/1.1");
    free(line);
    close(lfd);

    /* The real server: such identifiers reach their resource. */
    cl_server s = {0};
    cl_server_start(h, &s, false, NULL);
    h_out o = cl_ctl(h, &s, "pne", "add", "pne:1@x", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "create", "sg:1@home", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    o = cl_ctl(h, &s, "--json", "sg", "add", "sg:1@home", "pne:1@x", NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "\"pne:1@x\""));
    h_out_free(&o);
    o = cl_ctl(h, &s, "--json", "sg", "show", "sg:1@home", NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "\"sgid\":\"sg:1@home\""));
    h_out_free(&o);
    /* A slash stays inside its segment: the server names the whole value. */
    o = cl_ctl(h, &s, "sg", "show", "a/b", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "'a/b'"));
    h_out_free(&o);

    /* Dot-only identifiers: refused by cpnsctl (exit 2, no request) ... */
    static const char *const dots[] = {".", "..", "..."};
    for (size_t i = 0; i < 3; i++) {
        char *d = (char *)dots[i];
        o = cl_ctl(h, &s, "sg", "add", d, "pne:1@x", NULL);
        assert_int_equal(o.status, 2);
        assert_non_null(strstr(o.err, "made only of dots"));
        h_out_free(&o);
        o = cl_ctl(h, &s, "sg", "show", d, NULL);
        assert_int_equal(o.status, 2);
        h_out_free(&o);
        o = cl_ctl(h, &s, "pne", "set-key", d, "--key-out", h_path(h, "dots.key"), NULL);
        assert_int_equal(o.status, 2);
        h_out_free(&o);
        /* ... and by the server, in a body or in a path */
        o = cl_ctl(h, &s, "sg", "create", d, NULL);
        assert_int_equal(o.status, 1);
        h_out_free(&o);
        o = cl_ctl(h, &s, "pne", "add", d, NULL);
        assert_int_equal(o.status, 1);
        h_out_free(&o);
    }
    json_decref(expect(h, &s, "GET", "/v1/service-groups/%2E%2E", NULL, 400));
    json_decref(expect(h, &s, "GET", "/v1/service-groups/%2E", NULL, 400));
    json_decref(expect(h, &s, "PUT", "/v1/pnes/%2E%2E%2E", "{}", 400));
    /* dots among other characters are fine */
    o = cl_ctl(h, &s, "sg", "create", ".sg..1.", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);
    o = cl_ctl(h, &s, "sg", "show", ".sg..1.", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);

    cl_stop_clean(s.p);
    h_passed(h);
}

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admin_errors, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_admin_token, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_ctl_path_ids, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
