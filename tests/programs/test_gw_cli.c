/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-gw as a program: the command-line contract (DESIGN.md section 4),
 * refusal of a TLS private key others can read, and the daemon's glue over
 * real sockets between a fake CPNS Server and fake PNEs: GW registration,
 * byte-for-byte forwarding both ways (7.8.6.2-1, 7.8.6.2-2), the detached
 * notification, refusal and reconnect backoff, clean exit on SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progtest.h"

static void run(prog_result *r, const char *const argv[])
{
    prog_run(argv, NULL, 0, r);
}

static void test_help_and_version(void **state)
{
    (void)state;
    prog_result r;
    run(&r, (const char *const[]){"cpns-gw", "--help", NULL});
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Usage: cpns-gw"));
    assert_non_null(strstr(r.out, "--insecure"));
    prog_result_free(&r);

    run(&r, (const char *const[]){"cpns-gw", "--version", NULL});
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "cpns-gw " CPNS_LIB_VERSION " (libcpns " CPNS_LIB_VERSION
                               ", CPNS " CPNS_VERSION "), Apache-2.0\n");
    prog_result_free(&r);
}

#define BASE "--id", "gw-1", "--pnid", "pn-home"

/* Each bad command line exits 2 and names what is wrong. */
static void test_bad_options_exit_2(void **state)
{
    (void)state;
    struct {
        const char *argv[16];
        const char *named;
    } cases[] = {
        {{"cpns-gw", "--bogus", NULL}, "--bogus"},
        {{"cpns-gw", "--pnid", "pn-home", "--server", "127.0.0.1:7460", "--insecure", NULL},
         "--id"},
        {{"cpns-gw", "--id", "gw-1", "--server", "127.0.0.1:7460", "--insecure", NULL}, "--pnid"},
        {{"cpns-gw", BASE, "--insecure", NULL}, "--server"},
        {{"cpns-gw", "--id", "gw/1", "--pnid", "pn-home", "--server", "127.0.0.1:7460",
          "--insecure", NULL},
         "gw/1"},
        {{"cpns-gw", BASE, "--server", "127.0.0.1", "--insecure", NULL}, "127.0.0.1"},
        {{"cpns-gw", BASE, "--server", "127.0.0.1:7460", "--listen", "0.0.0.0:0", "--insecure",
          NULL},
         "0.0.0.0:0"},
        {{"cpns-gw", BASE, "--server", "127.0.0.1:7460", NULL}, "--insecure"},
        {{"cpns-gw", BASE, "--server", "127.0.0.1:7460", "--insecure", "--tls-ca", "ca.pem", NULL},
         "--insecure"},
        {{"cpns-gw", BASE, "--server", "127.0.0.1:7460", "--tls-cert", "c.pem", "--tls-key",
          "k.pem", NULL},
         "--tls-ca"},
        {{"cpns-gw", BASE, "--server", "127.0.0.1:7460", "--insecure", "--max-pnes", "-3", NULL},
         "-3"},
        {{"cpns-gw", BASE, "--server", "127.0.0.1:7460", "--insecure", "--log-level", "chatty",
          NULL},
         "chatty"},
        {{"cpns-gw", BASE, "--server", "127.0.0.1:7460", "--insecure", "--id", "gw-2", NULL},
         "twice"},
        {{"cpns-gw", BASE, "--server", "127.0.0.1:7460", "--insecure", "stray", NULL}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        prog_result r;
        run(&r, cases[i].argv);
        if (r.status != 2 || !strstr(r.err, cases[i].named))
            fail_msg("case %zu: status %d, stderr '%s' (wanted 2 naming '%s')", i, r.status, r.err,
                     cases[i].named);
        prog_result_free(&r);
    }
}

static void test_tls_key_0644_refused(void **state)
{
    (void)state;
    char dir[256], key[300], cert[300];
    prog_tmpdir(dir, sizeof dir);
    snprintf(key, sizeof key, "%s/gw.key", dir);
    snprintf(cert, sizeof cert, "%s/gw.pem", dir);
    prog_write_file(key, "-----BEGIN PRIVATE KEY-----\n", 28, 0644);
    prog_write_file(cert, "-----BEGIN CERTIFICATE-----\n", 28, 0644);
    prog_result r;
    run(&r, (const char *const[]){"cpns-gw", BASE, "--server", "127.0.0.1:7460", "--tls-cert", cert,
                                  "--tls-key", key, "--tls-ca", cert, NULL});
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--tls-key"));
    assert_non_null(strstr(r.err, "0644"));
    prog_result_free(&r);
    unlink(key);
    unlink(cert);
    rmdir(dir);
}

/* --- the daemon between a fake server and fake PNEs --- */

typedef struct live {
    int server_lfd;
    uint16_t server_port;
    uint16_t listen_port;
    prog_daemon d;
} live;

static void live_start(live *l, const char *max_pnes)
{
    char server[32], listen[32];
    l->server_lfd = tcp_listen_any(&l->server_port);
    l->listen_port = tcp_free_port();
    snprintf(server, sizeof server, "127.0.0.1:%u", l->server_port);
    snprintf(listen, sizeof listen, "127.0.0.1:%u", l->listen_port);
    prog_spawn((const char *const[]){"cpns-gw", BASE, "--server", server, "--listen", listen,
                                     "--insecure", "--log-level", "debug", "--max-pnes", max_pnes,
                                     NULL},
               &l->d);
}

/* Accepts the GW's connection, checks its registration and answers Return. */
static int server_accept(live *l, uint32_t Return)
{
    int fd = tcp_accept(l->server_lfd, 8000);
    assert_true(fd >= 0);
    cpns_msg req, m;
    assert_int_equal(msg_recv(fd, &req, 5000), 0);
    assert_int_equal(req.kind, CPNS_MSG_PNGW_REGISTRATION_REQUEST);
    assert_string_equal(req.PNGWID, "gw-1");
    assert_string_equal(req.PNID, "pn-home");
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, req.TransactionID);
    m.Return = Return;
    m.present |= CPNS_F_RETURN;
    assert_int_equal(msg_send(fd, &m), 0);
    return fd;
}

static void encode(const cpns_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
    assert_int_equal(cpns_msg_encode(m, buf, cap, len), 0);
}

static void registration_request(const char *PNEID, uint64_t tid, uint8_t *buf, size_t *len)
{
    cpns_msg m;
    uint8_t Nonce[CPNS_NONCE_LEN] = {1, 2, 3}, Proof[CPNS_PROOF_LEN] = {4, 5, 6};
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_REQUEST, tid);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, PNEID), 0);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_NONCE, Nonce, sizeof Nonce), 0);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_PROOF, Proof, sizeof Proof), 0);
    m.Time = 1795000000;
    m.present |= CPNS_F_TIME;
    encode(&m, buf, 4096, len);
}

/* Receives one frame and checks it is exactly want (the GW forwards byte for byte). */
static void expect_frame(int fd, const uint8_t *want, size_t want_len)
{
    uint8_t buf[CPNS_FRAME_MAX];
    size_t len;
    assert_int_equal(frame_recv(fd, buf, sizeof buf, &len, 5000), 0);
    assert_int_equal(len, want_len);
    assert_memory_equal(buf, want, want_len);
}

/*
 * 7.8.6.2-1 and 7.8.6.2-2 through the real daemon: registration and key
 * delivery frames cross it unchanged in both directions, and a PNE whose
 * connection closes is reported detached.
 */
static void test_forwards_between_server_and_pne_7_8_6_2_1_and_2(void **state)
{
    (void)state;
    live l;
    live_start(&l, "0");
    int srv = server_accept(&l, CPNS_RETURN_SUCCESS);
    assert_true(prog_wait_log(&l.d, "registered with the server", 1, 5000));
    assert_true(prog_wait_log(&l.d, "NOT protected", 1, 100));

    int pne = tcp_connect(l.listen_port, 5000);
    assert_true(pne >= 0);
    uint8_t buf[4096];
    size_t len;
    registration_request("pne-tv", 77, buf, &len);
    assert_int_equal(frame_send(pne, buf, len), 0);
    expect_frame(srv, buf, len);

    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, 77);
    m.Return = CPNS_RETURN_SUCCESS;
    m.present |= CPNS_F_RETURN;
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, "pne-tv"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-home"), 0);
    encode(&m, buf, sizeof buf, &len);
    assert_int_equal(frame_send(srv, buf, len), 0);
    expect_frame(pne, buf, len);

    /* 7.8.6.2-1: the request reaches the PNE unchanged. */
    uint8_t egk[CPNS_EGK_LEN];
    assert_int_equal(cpns_random(NULL, egk, sizeof egk), 0);
    egk[0] = CPNS_EGK_FORMAT;
    cpns_msg_init(&m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, 9001);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, "sg-family"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, "pne-tv"), 0);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_EGK, egk, sizeof egk), 0);
    m.KeyVersion = 1;
    m.present |= CPNS_F_KEYVERSION | CPNS_F_GROUPKEYINFO;
    encode(&m, buf, sizeof buf, &len);
    assert_int_equal(frame_send(srv, buf, len), 0);
    expect_frame(pne, buf, len);

    /* 7.8.6.2-2: the response reaches the server unchanged. */
    cpns_msg_init(&m, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE, 9001);
    m.Return = CPNS_RETURN_STORAGE;
    m.present |= CPNS_F_RETURN;
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, "sg-family"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, "pne-tv"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-home"), 0);
    m.KeyVersion = 1;
    m.present |= CPNS_F_KEYVERSION;
    encode(&m, buf, sizeof buf, &len);
    assert_int_equal(frame_send(pne, buf, len), 0);
    expect_frame(srv, buf, len);

    /* The PNE goes away: the server hears it is detached; a request for it is answered 6. */
    close(pne);
    assert_int_equal(msg_recv(srv, &m, 5000), 0);
    assert_int_equal(m.kind, CPNS_MSG_PNE_STATUS_NOTIFICATION);
    assert_string_equal(m.PNEID, "pne-tv");
    assert_int_equal(m.Status, CPNS_STATUS_DETACHED);
    cpns_msg_init(&m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, 9002);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, "sg-family"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, "pne-tv"), 0);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_EGK, egk, sizeof egk), 0);
    m.KeyVersion = 1;
    m.present |= CPNS_F_KEYVERSION | CPNS_F_GROUPKEYINFO;
    assert_int_equal(msg_send(srv, &m), 0);
    assert_int_equal(msg_recv(srv, &m, 5000), 0);
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
    assert_int_equal(m.TransactionID, 9002);
    assert_int_equal(m.Return, CPNS_RETURN_UNREACHABLE);

    char *log = prog_log(&l.d);
    assert_non_null(strstr(log, "PNEID=pne-tv"));
    assert_non_null(strstr(log, "TID=9001"));
    free(log);
    assert_int_equal(prog_stop(&l.d, SIGTERM), 0);
    close(srv);
    close(l.server_lfd);
}

/* With the server down, a PNE's registration is dropped and the GW keeps dialing. */
static void test_server_down_drops_and_retries(void **state)
{
    (void)state;
    live l;
    live_start(&l, "0");
    close(l.server_lfd); /* nobody answers on the server port */
    assert_true(prog_wait_log(&l.d, "connecting to the server again in", 2, 5000));
    int pne = tcp_connect(l.listen_port, 5000);
    assert_true(pne >= 0);
    uint8_t buf[4096];
    size_t len;
    registration_request("pne-1", 5, buf, &len);
    assert_int_equal(frame_send(pne, buf, len), 0);
    assert_true(prog_wait_log(&l.d, "PNERegistrationRequest while OFFLINE: dropped", 1, 5000));
    close(pne);
    assert_true(prog_wait_log(&l.d, "closed by peer", 1, 5000));
    assert_int_equal(prog_stop(&l.d, SIGINT), 0);
}

/* A refusal (Return 8) is an ERROR; the GW closes and registers again after a backoff. */
static void test_refused_registration_retries(void **state)
{
    (void)state;
    live l;
    live_start(&l, "0");
    int first = server_accept(&l, CPNS_RETURN_AUTH);
    assert_true(prog_wait_log(&l.d, "refused this GW (Return 8)", 1, 5000));
    int second = server_accept(&l, CPNS_RETURN_SUCCESS);
    assert_true(prog_wait_log(&l.d, "registered with the server", 1, 5000));
    char *log = prog_log(&l.d);
    assert_non_null(strstr(log, "ERROR"));
    assert_non_null(strstr(log, "connecting to the server again in"));
    free(log);
    assert_int_equal(prog_stop(&l.d, SIGTERM), 0);
    close(first);
    close(second);
    close(l.server_lfd);
}

/* The server drops the connection: the GW reconnects and registers again. */
static void test_reconnects_after_server_drop(void **state)
{
    (void)state;
    live l;
    live_start(&l, "0");
    int srv = server_accept(&l, CPNS_RETURN_SUCCESS);
    assert_true(prog_wait_log(&l.d, "registered with the server", 1, 5000));
    close(srv);
    assert_true(prog_wait_log(&l.d, "server connection lost", 1, 5000));
    srv = server_accept(&l, CPNS_RETURN_SUCCESS);
    assert_true(prog_wait_log(&l.d, "registered with the server", 2, 5000));
    assert_int_equal(prog_stop(&l.d, SIGTERM), 0);
    close(srv);
    close(l.server_lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_bad_options_exit_2),
        cmocka_unit_test(test_tls_key_0644_refused),
        cmocka_unit_test(test_forwards_between_server_and_pne_7_8_6_2_1_and_2),
        cmocka_unit_test(test_server_down_drops_and_retries),
        cmocka_unit_test(test_refused_registration_retries),
        cmocka_unit_test(test_reconnects_after_server_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
