/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A network attacker against the GW <-> server link (PROTOCOL.md section 2,
 * TLS 1.3 with client certificates), with the real programs: plain TCP to
 * the TLS port, a GW certificate from another CA, a rogue server with a
 * certificate from another CA, and a GW certificate whose CN is not the
 * PNGWID. None of them gets a registered link; a genuine GW beside them
 * does (so the test fails if TLS is broken in general, not only for them).
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "cluster.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls a log for a needle for up to timeout_ms. */
static bool log_has(const char *path, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        if (h_file_contains(path, needle))
            return true;
        sleep_ms(100);
    }
    return false;
}

/* Plain TCP speaking cpns/1 to the TLS port: the server closes it without a frame being read. */
static void plain_tcp_refused(harness *h, const cl_server *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(s->listen_port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    static const char frame[] = "\0\0\0\x20<PNGWRegistrationRequest x=\"1\"/>";
    assert_int_equal(send(fd, frame, sizeof frame - 1, MSG_NOSIGNAL), (ssize_t)sizeof frame - 1);
    bool closed = false;
    for (int i = 0; i < 50 && !closed; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) == 1) {
            char buf[256];
            ssize_t n = read(fd, buf, sizeof buf);
            closed = n <= 0; /* a TLS alert may come first, then the close */
        }
    }
    close(fd);
    assert_true(closed);
    h_note(h, "plain TCP to the TLS port: closed by the server");
    assert_true(log_has(s->p->log, "refused before it opened", 5000));
}

static void test_network_attacker(void **state)
{
    harness *h = *state;
    char *pki = cl_pki(h, "gw-1", "gw-2", NULL);
    char *other = h_path(h, "pki-other");
    h_out o = h_run(h, NULL, 60000, h_fmt(h, "%s/scripts/pki.sh", h->src_dir), other, "gw-1", NULL);
    assert_int_equal(o.status, 0);
    h_out_free(&o);

    cl_server s = {0};
    cl_server_start(h, &s, true, NULL);
    plain_tcp_refused(h, &s);

    /* A GW certificate for the right CN, issued by another CA: the handshake fails. */
    uint16_t port1 = h_free_port();
    h_proc *forged =
        h_start(h, "gw-forged", "cpns-gw", "--id", "gw-1", "--pnid", "pn-1", "--server", s.listen,
                "--listen", h_fmt(h, "127.0.0.1:%u", (unsigned)port1), "--tls-cert",
                h_fmt(h, "%s/gw-1.crt", other), "--tls-key", h_fmt(h, "%s/gw-1.key", other),
                "--tls-ca", h_fmt(h, "%s/ca.crt", pki), NULL);
    assert_true(log_has(forged->log, "server connection lost", 10000) ||
                log_has(forged->log, "cannot connect to the server", 100));
    assert_false(h_file_contains(forged->log, "registered with the server"));
    cl_stop_clean(forged);

    /* A GW whose certificate CN is another PNGWID refuses to start (the server would answer 8). */
    o = h_run(h, NULL, 10000, "cpns-gw", "--id", "gw-1", "--pnid", "pn-1", "--server", s.listen,
              "--tls-cert", h_fmt(h, "%s/gw-2.crt", pki), "--tls-key", h_fmt(h, "%s/gw-2.key", pki),
              "--tls-ca", h_fmt(h, "%s/ca.crt", pki), NULL);
    assert_int_equal(o.status, 2);
    assert_non_null(strstr(o.err, "CN"));
    h_out_free(&o);

    /* A rogue server with a certificate of another CA: the genuine GW does not talk to it. */
    uint16_t rogue_port = h_free_port(), rogue_admin = h_free_port();
    char *rogue_listen = h_fmt(h, "127.0.0.1:%u", (unsigned)rogue_port);
    h_proc *rogue =
        h_start(h, "rogue-server", "cpns-server", "--listen", rogue_listen, "--admin",
                h_fmt(h, "127.0.0.1:%u", (unsigned)rogue_admin), "--db", h_path(h, "rogue.db"),
                "--master-key", h_path(h, "rogue.key"), "--tls-cert",
                h_fmt(h, "%s/server.crt", other), "--tls-key", h_fmt(h, "%s/server.key", other),
                "--tls-ca", h_fmt(h, "%s/ca.crt", other), NULL);
    h_wait_http_ok(h, rogue, rogue_admin, "/healthz", CL_START_MS);
    uint16_t port2 = h_free_port();
    h_proc *victim =
        h_start(h, "gw-victim", "cpns-gw", "--id", "gw-2", "--pnid", "pn-2", "--server",
                rogue_listen, "--listen", h_fmt(h, "127.0.0.1:%u", (unsigned)port2), "--tls-cert",
                h_fmt(h, "%s/gw-2.crt", pki), "--tls-key", h_fmt(h, "%s/gw-2.key", pki), "--tls-ca",
                h_fmt(h, "%s/ca.crt", pki), NULL);
    assert_true(log_has(victim->log, "server connection lost", 10000) ||
                log_has(victim->log, "cannot connect to the server", 100));
    assert_false(h_file_contains(victim->log, "registered with the server"));
    assert_false(h_file_contains(rogue->log, "registered on connection"));
    cl_stop_clean(victim);
    cl_stop_clean(rogue);

    /* The genuine GW registers with the genuine server. */
    cl_gw g = {0};
    cl_gw_start(h, &g, &s, "gw-1", "pn-1");
    assert_true(log_has(g.p->log, "registered with the server", 10000));
    assert_true(h_file_contains(s.p->log, "CN=gw-1"));
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
        cmocka_unit_test_setup_teardown(test_network_attacker, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
