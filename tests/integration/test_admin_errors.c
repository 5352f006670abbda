/*
 * The admin API's errors (DESIGN.md section 5): each kind of mistake gets its
 * status and a JSON {"error": "..."} of its own, through raw HTTP (for what
 * cpnsctl cannot send, like a malformed body) and through cpnsctl (exit 1,
 * the server's message on stderr). Also the bearer token of --admin-token-file.
 */
#include <stdio.h>
#include <string.h>

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

int main(void)
{
    int skip = h_programs_present(cl_programs);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admin_errors, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_admin_token, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
