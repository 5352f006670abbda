/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-server as a program: the command-line contract (DESIGN.md section 4),
 * the master key file (created 0600 when absent, refused when others can
 * read it or it is not a key, a wrong one refused by the store), the admin
 * API of DESIGN.md section 5 through a real process and a small HTTP client
 * (every resource, the shapes and field names of the answers, every error
 * status with its JSON error naming the offending value), the bearer token
 * of --admin-token-file, /metrics and /healthz, and the GW link glue over
 * real sockets against fake GWs (each answer goes back on its own connection).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "progtest.h"

#define KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

typedef struct fixture {
    char dir[256];
    char db[300];
    char mk[300];
    char token[300];
    uint16_t port;  /* --listen */
    uint16_t admin; /* --admin */
    prog_daemon d;  /* pid 0 when not running */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    prog_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->db, sizeof f->db, "%s/server.db", f->dir);
    snprintf(f->mk, sizeof f->mk, "%s/master.key", f->dir);
    snprintf(f->token, sizeof f->token, "%s/admin.token", f->dir);
    signal(SIGPIPE, SIG_IGN);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->d.pid)
        prog_stop(&f->d, SIGKILL);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* --- running the server --- */

/* argv of an insecure server on fresh ports, with up to 4 extra arguments. */
static void server_argv(fixture *f, const char *argv[16], char *listen, char *admin,
                        const char *const *extra)
{
    f->port = tcp_free_port();
    f->admin = tcp_free_port();
    sprintf(listen, "127.0.0.1:%u", f->port);
    sprintf(admin, "127.0.0.1:%u", f->admin);
    size_t n = 0;
    const char *base[] = {"cpns-server", "--db", f->db,     "--master-key", f->mk, "--insecure",
                          "--listen",    listen, "--admin", admin,          NULL};
    for (size_t i = 0; base[i]; i++)
        argv[n++] = base[i];
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
}

/* Starts the server and waits until its admin API accepts connections. */
static void server_start(fixture *f, const char *const *extra)
{
    const char *argv[16];
    char listen[32], admin[32];
    server_argv(f, argv, listen, admin, extra);
    prog_spawn(argv, &f->d);
    if (!prog_wait_log(&f->d, "cpns-server 0.1.0:", 1, 5000)) {
        char *log = prog_log(&f->d);
        fail_msg("the server did not start:\n%s", log);
    }
    int fd = tcp_connect(f->admin, 3000);
    assert_true(fd >= 0);
    close(fd);
}

/* Runs the server to completion (it is expected to refuse to start). */
static void server_run(fixture *f, const char *const *extra, prog_result *r)
{
    const char *argv[16];
    char listen[32], admin[32];
    server_argv(f, argv, listen, admin, extra);
    prog_run(argv, NULL, 0, r);
}

/* SIGTERM; the exit status must be 0. Returns the log (free it). */
static char *server_stop(fixture *f)
{
    char *log = prog_log(&f->d);
    assert_int_equal(prog_stop(&f->d, SIGTERM), 0);
    return log;
}

/* --- a small HTTP/1.1 client --- */

typedef struct http_reply {
    int status;
    char *raw;        /* the whole answer, NUL-terminated */
    const char *body; /* into raw */
} http_reply;

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static http_reply http_raw(uint16_t port, const char *method, const char *path, const char *auth,
                           const char *body, size_t body_len)
{
    int fd = tcp_connect(port, 3000);
    assert_true(fd >= 0);
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "%s%s%sContent-Length: %zu\r\n\r\n",
                     method, path, auth ? "Authorization: " : "", auth ? auth : "",
                     auth ? "\r\n" : "", body ? body_len : 0);
    send_all(fd, head, (size_t)n);
    if (body)
        send_all(fd, body, body_len);
    size_t cap = 1 << 16, len = 0;
    char *raw = malloc(cap + 1);
    assert_non_null(raw);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        assert_true(poll(&p, 1, 10000) == 1);
        if (len == cap) {
            cap *= 2;
            raw = realloc(raw, cap + 1);
            assert_non_null(raw);
        }
        ssize_t r = recv(fd, raw + len, cap - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    raw[len] = '\0';
    http_reply rep = {0, raw, ""};
    assert_int_equal(sscanf(raw, "HTTP/1.1 %d", &rep.status), 1);
    char *sep = strstr(raw, "\r\n\r\n");
    assert_non_null(sep);
    rep.body = sep + 4;
    return rep;
}

static http_reply http(uint16_t port, const char *method, const char *path, const char *body)
{
    return http_raw(port, method, path, NULL, body, body ? strlen(body) : 0);
}

static void has(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("'%s' not in: %s", needle, text);
}

/* A JSON answer with the expected status. */
static void expect_json(const http_reply *r, int status)
{
    if (r->status != status)
        fail_msg("status %d, want %d: %s", r->status, status, r->raw);
    has(r->raw, "Content-Type: application/json");
    assert_true(r->body[0] == '{' || r->body[0] == '[');
}

/* An error answer: its status, {"error": "..."} and the value it must name. */
static void expect_error(fixture *f, const char *method, const char *path, const char *body,
                         int status, const char *names)
{
    http_reply r = http(f->admin, method, path, body);
    expect_json(&r, status);
    has(r.body, "{\"error\":\"");
    if (names)
        has(r.body, names);
    free(r.raw);
}

static http_reply expect_ok(fixture *f, const char *method, const char *path, const char *body,
                            int status)
{
    http_reply r = http(f->admin, method, path, body);
    expect_json(&r, status);
    return r;
}

/* --- the command-line contract --- */

static void test_help_and_version(void **state)
{
    (void)state;
    prog_result r;
    prog_run((const char *const[]){"cpns-server", "--help", NULL}, NULL, 0, &r);
    assert_int_equal(r.status, 0);
    has(r.out, "--master-key");
    has(r.out, "--admin-token-file");
    has(r.out, "127.0.0.1:7460");
    has(r.out, "127.0.0.1:7462");
    prog_result_free(&r);
    prog_run((const char *const[]){"cpns-server", "--version", NULL}, NULL, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "cpns-server " CPNS_LIB_VERSION " (libcpns " CPNS_LIB_VERSION
                               ", CPNS " CPNS_VERSION "), Apache-2.0\n");
    prog_result_free(&r);
}

static void test_bad_options(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *argv[12];
        const char *names;
    } cases[] = {
        {{"--bogus"}, "--bogus"},
        {{"--db"}, "--db"},
        {{"--master-key", "k", "--insecure"}, "--db"},
        {{"--db", "x.db", "--insecure"}, "--master-key"},
        {{"--db", "x.db", "--master-key", "k"}, "--insecure"},
        {{"--db", "x.db", "--master-key", "k", "--tls-cert", "c"}, "--tls-key"},
        {{"--db", "x.db", "--master-key", "k", "--insecure", "--tls-ca", "c"}, "--insecure"},
        {{"--db", "postgresql://db/cpns", "--master-key", "k", "--insecure"}, "--instance-id"},
        {{"--db", "postgresql://db/cpns", "--master-key", "k", "--insecure", "--instance-id", ".."},
         "--instance-id '..'"},
        {{"--db", "x.db", "--master-key", "k", "--insecure", "--instance-id", "a"},
         "PostgreSQL --db only"},
        {{"--db", "postgres://db/cpns", "--master-key", "k", "--insecure", "--instance-id", "a",
          "--lease-ttl", "1"},
         "--lease-ttl '1'"},
        {{"--db", "postgresql://db/cpns", "--master-key", "nonexistent.key", "--insecure",
          "--instance-id", "a"},
         "never created"},
        {{"--db", "x.db", "--master-key", "k", "--insecure", "--listen", "7460"}, "'7460'"},
        {{"--db", "x.db", "--master-key", "k", "--insecure", "--admin", "h:0"}, "'h:0'"},
        {{"--db", "x.db", "--master-key", "k", "--insecure", "--admin", "0.0.0.0:7462"},
         "--admin-token-file"},
        {{"--db", "x.db", "--master-key", "k", "--insecure", "--delivery-timeout", "0"},
         "--delivery-timeout '0'"},
        {{"--db", "x.db", "--master-key", "k", "--insecure", "--max-attempts", "five"},
         "--max-attempts 'five'"},
        {{"--db", "x.db", "--master-key", "k", "--insecure", "--log-level", "loud"}, "'loud'"},
        {{"--db", "x.db", "--db", "y.db", "--master-key", "k", "--insecure"}, "twice"},
        {{"--db", "x.db", "--master-key", "k", "--insecure", "extra"}, "'extra'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[14] = {"cpns-server"};
        for (size_t k = 0; cases[i].argv[k]; k++)
            argv[k + 1] = cases[i].argv[k];
        prog_result r;
        prog_run(argv, NULL, 0, &r);
        if (r.status != 2 || !strstr(r.err, cases[i].names))
            fail_msg("case %zu: status %d, stderr: %s", i, r.status, r.err);
        prog_result_free(&r);
    }
    /* None of these got as far as creating a master key. */
    struct stat st;
    assert_int_not_equal(stat(f->mk, &st), 0);
}

/* --- the master key file --- */

static void test_master_key_created_0600(void **state)
{
    fixture *f = *state;
    server_start(f, NULL);
    struct stat st;
    assert_int_equal(stat(f->mk, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    FILE *fp = fopen(f->mk, "r");
    assert_non_null(fp);
    char line[128] = "";
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    uint8_t key[CPNS_KEY_LEN];
    size_t len = 0;
    assert_int_equal(line[strlen(line) - 1], '\n');
    assert_int_equal(cpns_b64_decode(line, strlen(line) - 1, key, sizeof key, &len), 0);
    assert_int_equal(len, CPNS_KEY_LEN);
    http_reply r = expect_ok(f, "POST", "/v1/pnes", "{\"pneid\":\"pne-1\"}", 201);
    free(r.raw);
    char *log = server_stop(f);
    has(log, "created the master key file");
    /* The key itself is never logged. */
    line[strlen(line) - 1] = '\0';
    assert_null(strstr(log, line));
    free(log);

    /* Restarted on the same key and database: the PNE is still there. */
    server_start(f, NULL);
    r = expect_ok(f, "GET", "/v1/pnes", NULL, 200);
    has(r.body, "\"pneid\":\"pne-1\"");
    free(r.raw);
    free(server_stop(f));

    /* Another valid key cannot read that database: exit 1, the store says why. */
    assert_int_equal(unlink(f->mk), 0);
    prog_write_file(f->mk, KEY_B64 "\n", strlen(KEY_B64) + 1, 0600);
    prog_result pr;
    server_run(f, NULL, &pr);
    assert_int_equal(pr.status, 1);
    has(pr.err, "cannot open the store");
    prog_result_free(&pr);
}

/*
 * #10.10: a second server on the same --db used to start and silently diverge
 * from the first. It now refuses to start, naming the database, the lock file
 * and the PID that holds it; the first server carries on.
 */
static void test_second_server_on_same_db(void **state)
{
    fixture *f = *state;
    server_start(f, NULL);
    http_reply r = expect_ok(f, "POST", "/v1/pnes", "{\"pneid\":\"pne-1\"}", 201);
    free(r.raw);
    uint16_t port = f->port, admin = f->admin;
    prog_result pr;
    server_run(f, NULL, &pr); /* fresh ports, the same --db */
    f->port = port;
    f->admin = admin;
    assert_int_equal(pr.status, 2); /* like any --db it cannot use */
    has(pr.err, f->db);
    has(pr.err, "in use by another process");
    char want[64];
    snprintf(want, sizeof want, "PID %ld holds", (long)f->d.pid);
    has(pr.err, want);
    prog_result_free(&pr);

    r = expect_ok(f, "GET", "/v1/pnes", NULL, 200);
    has(r.body, "\"pneid\":\"pne-1\"");
    free(r.raw);
    free(server_stop(f));
    /* Once the first has stopped, the database opens again. */
    server_start(f, NULL);
    free(server_stop(f));
}

static void test_master_key_refused(void **state)
{
    fixture *f = *state;
    prog_result r;
    prog_write_file(f->mk, KEY_B64 "\n", strlen(KEY_B64) + 1, 0644);
    server_run(f, NULL, &r);
    assert_int_equal(r.status, 2);
    has(r.err, "--master-key");
    has(r.err, "0644");
    prog_result_free(&r);

    unlink(f->mk);
    prog_write_file(f->mk, "not a key\n", 10, 0600);
    server_run(f, NULL, &r);
    assert_int_equal(r.status, 2);
    has(r.err, "--master-key");
    has(r.err, "not the base64 of a 32-byte key");
    prog_result_free(&r);
    /* Nothing was opened. */
    struct stat st;
    assert_int_not_equal(stat(f->db, &st), 0);
}

/* --- the admin API --- */

static void test_admin_resources(void **state)
{
    fixture *f = *state;
    server_start(f, NULL);

    http_reply r = expect_ok(f, "GET", "/healthz", NULL, 200);
    has(r.body, "{\"status\":\"ok\"}");
    free(r.raw);

    /* A generated key comes back once, as the base64 of 32 bytes. */
    r = expect_ok(f, "POST", "/v1/pnes", "{\"pneid\":\"pne-1\"}", 201);
    has(r.body, "\"pneid\":\"pne-1\"");
    const char *k = strstr(r.body, "\"entity_user_key\":\"");
    assert_non_null(k);
    k += strlen("\"entity_user_key\":\"");
    char b64[64] = "";
    size_t klen = strcspn(k, "\"");
    assert_true(klen < sizeof b64);
    memcpy(b64, k, klen);
    uint8_t EUK[CPNS_KEY_LEN];
    size_t len = 0;
    assert_int_equal(cpns_b64_decode(b64, klen, EUK, sizeof EUK, &len), 0);
    assert_int_equal(len, CPNS_KEY_LEN);
    free(r.raw);
    /* A key of the caller's is not echoed. */
    r = expect_ok(f, "POST", "/v1/pnes",
                  "{\"pneid\":\"pne-2\",\"entity_user_key\":\"" KEY_B64 "\"}", 201);
    assert_null(strstr(r.body, "entity_user_key"));
    free(r.raw);
    r = expect_ok(f, "POST", "/v1/pnes", "{\"pneid\":\"pne-3\",\"entity_user_key\":null}", 201);
    has(r.body, "entity_user_key");
    free(r.raw);

    r = expect_ok(f, "GET", "/v1/pnes", NULL, 200);
    assert_true(r.body[0] == '[');
    has(r.body, "{\"pneid\":\"pne-1\",\"registered\":false,");
    has(r.body, "\"pngwid\":null,\"pnid\":null}");
    has(r.body, "\"pneid\":\"pne-3\"");
    free(r.raw);

    r = expect_ok(f, "POST", "/v1/service-groups",
                  "{\"sgid\":\"sg-1\",\"members\":[\"pne-2\",\"pne-1\"]}", 201);
    has(r.body, "\"sgid\":\"sg-1\",\"key_version\":1,\"state\":\"distributing\"");
    has(r.body, "\"members\":[{\"pneid\":\"pne-1\",\"state\":\"pending\",\"return\":null,"
                "\"attempts\":0,\"pnid\":null,\"key_version\":1},{\"pneid\":\"pne-2\"");
    free(r.raw);
    r = expect_ok(f, "GET", "/v1/service-groups/sg-1", NULL, 200);
    has(r.body, "{\"sgid\":\"sg-1\",\"key_version\":1,");
    has(r.body, "\"key_fingerprint\":\"");
    free(r.raw);
    r = expect_ok(f, "POST", "/v1/service-groups", "{\"sgid\":\"sg-empty\",\"members\":[]}", 201);
    /* No member to deliver to: the group holds its key everywhere it should. */
    has(r.body, "\"state\":\"complete\",");
    has(r.body, "\"members\":[]");
    free(r.raw);
    r = expect_ok(f, "GET", "/v1/service-groups", NULL, 200);
    assert_true(r.body[0] == '[');
    has(r.body, "{\"sgid\":\"sg-1\"");
    has(r.body, "{\"sgid\":\"sg-empty\"");
    free(r.raw);

    /* An addition keeps the version; a removal rekeys; so does rekey. */
    r = expect_ok(f, "POST", "/v1/service-groups/sg-1/members", "{\"add\":[\"pne-3\"]}", 200);
    has(r.body, "\"key_version\":1,");
    has(r.body, "\"pneid\":\"pne-3\"");
    free(r.raw);
    r = expect_ok(f, "POST", "/v1/service-groups/sg-1/members",
                  "{\"remove\":[\"pne-3\",\"pne-2\"]}", 200);
    has(r.body, "\"key_version\":2,");
    assert_null(strstr(r.body, "pne-3"));
    assert_null(strstr(r.body, "pne-2"));
    free(r.raw);
    r = expect_ok(f, "POST", "/v1/service-groups/sg-1/rekey", NULL, 200);
    has(r.body, "{\"sgid\":\"sg-1\",\"key_version\":3,");
    free(r.raw);

    r = http(f->admin, "DELETE", "/v1/service-groups/sg-empty", NULL);
    assert_int_equal(r.status, 204);
    assert_string_equal(r.body, "");
    free(r.raw);
    expect_error(f, "GET", "/v1/service-groups/sg-empty", NULL, 404, "sg-empty");

    r = http(f->admin, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    has(r.raw, "Content-Type: text/plain; version=0.0.4");
    has(r.body, "# TYPE cpns_deliveries_sent_total counter\ncpns_deliveries_sent_total 0\n");
    has(r.body, "cpns_deliveries_delivered_total 0\n");
    has(r.body, "cpns_deliveries_failed_total 0\n");
    has(r.body, "cpns_responses_total{return=\"1\"} 0\n");
    has(r.body, "cpns_registrations_total{return=\"8\"} 0\n");
    has(r.body, "cpns_gw_registrations_total{return=\"1\"} 0\n");
    has(r.body, "# TYPE cpns_gws_connected gauge\ncpns_gws_connected 0\n");
    has(r.body, "cpns_pnes_reachable 0\n");
    has(r.body, "# TYPE cpns_delivery_latency_seconds histogram\n");
    has(r.body, "cpns_delivery_latency_seconds_bucket{le=\"0.01\"} 0\n");
    has(r.body, "cpns_delivery_latency_seconds_bucket{le=\"+Inf\"} 0\n");
    has(r.body, "cpns_delivery_latency_seconds_count 0\n");
    free(r.raw);

    char *log = server_stop(f);
    has(log, "PNEID=pne-1: admin POST /v1/pnes -> 201");
    has(log, "SGID=sg-1: admin POST /v1/service-groups/sg-1/rekey -> 200");
    /* The generated key is never logged. */
    assert_null(strstr(log, b64));
    free(log);
}

static void test_admin_errors(void **state)
{
    fixture *f = *state;
    server_start(f, NULL);
    http_reply r = expect_ok(f, "POST", "/v1/pnes", "{\"pneid\":\"pne-1\"}", 201);
    free(r.raw);
    r = expect_ok(f, "POST", "/v1/pnes", "{\"pneid\":\"pne-2\"}", 201);
    free(r.raw);
    r = expect_ok(f, "POST", "/v1/service-groups", "{\"sgid\":\"sg-1\",\"members\":[\"pne-1\"]}",
                  201);
    free(r.raw);

    /* 400: the request itself is wrong. */
    expect_error(f, "POST", "/v1/pnes", "{\"pneid\":", 400, "malformed JSON");
    expect_error(f, "POST", "/v1/pnes", NULL, 400, "JSON object");
    expect_error(f, "POST", "/v1/pnes", "[\"pne-9\"]", 400, "JSON object");
    expect_error(f, "POST", "/v1/pnes", "{\"pneid\":\"a\",\"pneid\":\"b\"}", 400, "duplicate");
    expect_error(f, "POST", "/v1/pnes", "{\"pneid\":9}", 400, "\\\"pneid\\\" must be a string");
    expect_error(f, "POST", "/v1/pnes", "{}", 400, "\\\"pneid\\\" is required");
    expect_error(f, "POST", "/v1/pnes", "{\"pneid\":\"bad id!\"}", 400, "'bad id!'");
    expect_error(f, "POST", "/v1/pnes", "{\"pneid\":\"pne-9\",\"entity_user_key\":\"AAECAwQ=\"}",
                 400, "entity_user_key");
    expect_error(f, "POST", "/v1/pnes", "{\"pneid\":\"pne-9\",\"entity_user_key\":\"!!\"}", 400,
                 "base64");
    expect_error(f, "POST", "/v1/pnes", "{\"pneid\":\"pne-9\",\"colour\":\"red\"}", 400, "colour");
    expect_error(f, "POST", "/v1/service-groups", "{\"sgid\":\"sg 2\",\"members\":[]}", 400,
                 "'sg 2'");
    expect_error(f, "POST", "/v1/service-groups", "{\"sgid\":\"sg-2\"}", 400, "members");
    expect_error(f, "POST", "/v1/service-groups", "{\"sgid\":\"sg-2\",\"members\":\"pne-1\"}", 400,
                 "array");
    expect_error(f, "POST", "/v1/service-groups", "{\"sgid\":\"sg-2\",\"members\":[1]}", 400,
                 "[0]");
    expect_error(f, "POST", "/v1/service-groups",
                 "{\"sgid\":\"sg-2\",\"members\":[\"pne-1\",\"pne-2\",\"pne-1\"]}", 400,
                 "'pne-1' is listed twice");
    expect_error(f, "POST", "/v1/service-groups/sg-1/members",
                 "{\"add\":[\"pne-2\"],\"remove\":[\"pne-2\"]}", 400, "'pne-2'");
    expect_error(f, "POST", "/v1/service-groups/sg-1/members", "{\"add\":[]}", 400,
                 "nothing to do");
    expect_error(f, "GET", "/v1/service-groups/bad%20sg", NULL, 400, "'bad sg'");

    /* 404: an unknown PNE, SG or path. */
    expect_error(f, "POST", "/v1/service-groups",
                 "{\"sgid\":\"sg-2\",\"members\":[\"pne-1\",\"pne-nobody\"]}", 404, "pne-nobody");
    expect_error(f, "GET", "/v1/service-groups/sg-2", NULL, 404, "sg-2");
    expect_error(f, "POST", "/v1/service-groups/sg-1/members", "{\"add\":[\"pne-nobody\"]}", 404,
                 "pne-nobody");
    expect_error(f, "POST", "/v1/service-groups/sg-9/members", "{\"add\":[\"pne-2\"]}", 404,
                 "sg-9");
    expect_error(f, "POST", "/v1/service-groups/sg-9/rekey", NULL, 404, "sg-9");
    expect_error(f, "DELETE", "/v1/service-groups/sg-9", NULL, 404, "sg-9");
    expect_error(f, "GET", "/v1/no-such-thing", NULL, 404, "/v1/no-such-thing");
    expect_error(f, "GET", "/v1/pnes/", NULL, 404, NULL);
    expect_error(f, "GET", "/v1/service-groups/sg-1/keys", NULL, 404, NULL);

    /* 405: a known path, the wrong method (and Allow says which). */
    r = http(f->admin, "PUT", "/v1/pnes", "{}");
    expect_json(&r, 405);
    has(r.raw, "Allow: GET, POST");
    has(r.body, "PUT");
    free(r.raw);
    expect_error(f, "GET", "/v1/service-groups/sg-1/rekey", NULL, 405, "POST");
    expect_error(f, "POST", "/healthz", "{}", 405, "GET");

    /* 409: a conflict with what exists. */
    expect_error(f, "POST", "/v1/pnes", "{\"pneid\":\"pne-1\"}", 409, "'pne-1' already exists");
    expect_error(f, "POST", "/v1/service-groups", "{\"sgid\":\"sg-1\",\"members\":[]}", 409,
                 "'sg-1' already exists");
    expect_error(f, "POST", "/v1/service-groups/sg-1/members", "{\"add\":[\"pne-1\"]}", 409,
                 "'pne-1' is already a member");
    expect_error(f, "POST", "/v1/service-groups/sg-1/members", "{\"remove\":[\"pne-2\"]}", 409,
                 "'pne-2' is not a member");

    /* 413: a body over the limit, answered in JSON. */
    size_t big = (size_t)9 << 20;
    char *body = malloc(big);
    assert_non_null(body);
    memset(body, ' ', big);
    r = http_raw(f->admin, "POST", "/v1/service-groups", NULL, body, big);
    free(body);
    expect_json(&r, 413);
    has(r.body, "{\"error\":\"");
    free(r.raw);

    /* None of that changed anything. */
    r = expect_ok(f, "GET", "/v1/service-groups", NULL, 200);
    has(r.body, "\"key_version\":1,");
    assert_null(strstr(r.body, "sg-2"));
    assert_null(strstr(r.body, "pne-2"));
    free(r.raw);
    char *log = server_stop(f);
    has(log, "admin POST /v1/pnes -> 409: PNE 'pne-1' already exists");
    free(log);
}

static void test_admin_token(void **state)
{
    fixture *f = *state;
    const char *const extra[] = {"--admin-token-file", f->token, NULL};
    prog_result pr;
    prog_write_file(f->token, "s3cret-t0ken\n", 13, 0644);
    server_run(f, extra, &pr);
    assert_int_equal(pr.status, 2);
    has(pr.err, "--admin-token-file");
    prog_result_free(&pr);
    unlink(f->token);
    prog_write_file(f->token, "\n", 1, 0600);
    server_run(f, extra, &pr);
    assert_int_equal(pr.status, 2);
    has(pr.err, "no token");
    prog_result_free(&pr);

    unlink(f->token);
    prog_write_file(f->token, "s3cret-t0ken\n", 13, 0600);
    server_start(f, extra);
    http_reply r = http(f->admin, "GET", "/v1/pnes", NULL);
    expect_json(&r, 401);
    has(r.raw, "WWW-Authenticate: Bearer");
    has(r.body, "Bearer");
    free(r.raw);
    static const char *const wrong[] = {"Bearer s3cret-t0keN", "Bearer s3cret-t0ken2",
                                        "Bearer s3cret", "Basic s3cret-t0ken", "s3cret-t0ken"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        r = http_raw(f->admin, "GET", "/v1/pnes", wrong[i], NULL, 0);
        expect_json(&r, 401);
        free(r.raw);
    }
    r = http_raw(f->admin, "GET", "/metrics", NULL, NULL, 0);
    assert_int_equal(r.status, 401);
    free(r.raw);
    r = http_raw(f->admin, "GET", "/v1/pnes", "Bearer s3cret-t0ken", NULL, 0);
    expect_json(&r, 200);
    free(r.raw);
    const char *pne = "{\"pneid\":\"pne-1\"}";
    r = http_raw(f->admin, "POST", "/v1/pnes", "Bearer s3cret-t0ken", pne, strlen(pne));
    expect_json(&r, 201);
    free(r.raw);
    /* Liveness probes carry no credentials. */
    r = http(f->admin, "GET", "/healthz", NULL);
    expect_json(&r, 200);
    free(r.raw);
    char *log = server_stop(f);
    assert_null(strstr(log, "s3cret"));
    free(log);
}

/* --- the GW link glue --- */

/* A fake GW: connects and registers; returns the socket. */
static int fake_gw(fixture *f, const char *PNGWID, uint64_t tid)
{
    int fd = tcp_connect(f->port, 3000);
    assert_true(fd >= 0);
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, tid);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNGWID, PNGWID), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-home"), 0);
    assert_int_equal(msg_send(fd, &m), 0);
    return fd;
}

static void expect_registered(int fd, uint64_t tid)
{
    cpns_msg m;
    assert_int_equal(msg_recv(fd, &m, 5000), 0);
    assert_int_equal(m.kind, CPNS_MSG_PNGW_REGISTRATION_RESPONSE);
    assert_int_equal(m.TransactionID, tid);
    assert_int_equal(m.Return, CPNS_RETURN_SUCCESS);
}

static void expect_metric(fixture *f, const char *line)
{
    /* The server sees a closed connection a moment after the close. */
    for (int i = 0; i < 100; i++) {
        http_reply r = http(f->admin, "GET", "/metrics", NULL);
        int found = strstr(r.body, line) != NULL;
        free(r.raw);
        if (found)
            return;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("no '%s' in /metrics", line);
}

static void test_gw_links(void **state)
{
    fixture *f = *state;
    server_start(f, NULL);
    /* Two GWs at once: each answer goes back on the connection its request came in on. */
    int gw1 = fake_gw(f, "gw-1", 101);
    int gw2 = fake_gw(f, "gw-2", 202);
    expect_registered(gw2, 202);
    expect_registered(gw1, 101);
    expect_metric(f, "cpns_gws_connected 2\n");
    expect_metric(f, "cpns_gw_registrations_total{return=\"1\"} 2\n");

    /* A frame length out of range closes that connection only. */
    uint8_t bad[4] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(send(gw2, bad, sizeof bad, MSG_NOSIGNAL), 4);
    expect_metric(f, "cpns_gws_connected 1\n");
    close(gw2);
    close(gw1);
    expect_metric(f, "cpns_gws_connected 0\n");
    char *log = server_stop(f);
    has(log, "NOT authenticated");
    has(log, "GW connection 1 from 127.0.0.1:");
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_help_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_key_created_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_server_on_same_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_resources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gw_links, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
