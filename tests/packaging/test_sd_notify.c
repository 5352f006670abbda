/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The systemd service protocol of the daemons (issue #13 item 5, src/common/
 * notify.h): started with NOTIFY_SOCKET naming a datagram socket this test
 * listens on, as systemd does for a Type=notify unit, each daemon sends
 * READY=1 only once its listeners accept connections (the server's GW port
 * and admin API, the GW's PNE port; the PNE, which listens nowhere, once its
 * key store is open), and STOPPING=1 when SIGTERM ends its loop, before it
 * exits 0.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "progtest.h"

typedef struct notify_sock {
    char dir[256];
    char path[300];
    int fd;
} notify_sock;

/* A datagram socket in a fresh directory, named by NOTIFY_SOCKET for the next spawn. */
static void notify_open(notify_sock *n)
{
    prog_tmpdir(n->dir, sizeof n->dir);
    snprintf(n->path, sizeof n->path, "%s/notify", n->dir);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(n->fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(n->path) < sizeof sa.sun_path);
    strcpy(sa.sun_path, n->path);
    assert_int_equal(bind(n->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", n->path, 1), 0);
}

static void notify_close(notify_sock *n)
{
    unsetenv("NOTIFY_SOCKET");
    close(n->fd);
    unlink(n->path);
    rmdir(n->dir);
}

/* The next datagram (NUL-terminated in buf) within timeout_ms; 0, or -1 on timeout. */
static int notify_recv(notify_sock *n, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {.fd = n->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    ssize_t got = recv(n->fd, buf, cap - 1, 0);
    if (got < 0)
        return -1;
    buf[got] = '\0';
    return 0;
}

/* Whether the message has this line (sd_notify messages are newline-separated assignments). */
static int has_line(const char *msg, const char *line)
{
    size_t len = strlen(line);
    for (const char *p = msg; p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0'))
            return 1;
    }
    return 0;
}

/* One connect() to 127.0.0.1:port, no retry: 1 when it is accepted. */
static int connects_now(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* Waits for READY=1 (the first message: nothing is sent before it), checks the ports, stops. */
static void ready_then_stopping(notify_sock *n, prog_daemon *d, const uint16_t *ports,
                                size_t n_ports)
{
    char msg[512];
    assert_int_equal(notify_recv(n, msg, sizeof msg, 30000), 0);
    assert_true(has_line(msg, "READY=1"));
    assert_non_null(strstr(msg, "STATUS=cpns-"));
    for (size_t i = 0; i < n_ports; i++)
        assert_true(connects_now(ports[i])); /* listening by the time it said so */
    assert_int_equal(prog_stop(d, SIGTERM), 0);
    assert_int_equal(notify_recv(n, msg, sizeof msg, 5000), 0);
    assert_true(has_line(msg, "STOPPING=1"));
    assert_int_equal(notify_recv(n, msg, sizeof msg, 0), -1); /* and nothing after */
}

static void test_server(void **state)
{
    (void)state;
    notify_sock n;
    notify_open(&n);
    char dir[256], db[300], mk[300], listen[32], admin[32];
    prog_tmpdir(dir, sizeof dir);
    snprintf(db, sizeof db, "%s/cpns.db", dir);
    snprintf(mk, sizeof mk, "%s/master.key", dir);
    uint16_t ports[2] = {tcp_free_port(), tcp_free_port()};
    snprintf(listen, sizeof listen, "127.0.0.1:%u", ports[0]);
    snprintf(admin, sizeof admin, "127.0.0.1:%u", ports[1]);
    prog_daemon d;
    prog_spawn((const char *const[]){"cpns-server", "--db", db, "--master-key", mk, "--insecure",
                                     "--listen", listen, "--admin", admin, NULL},
               &d);
    ready_then_stopping(&n, &d, ports, 2);
    notify_close(&n);
    unlink(db);
    unlink(mk);
    char side[320];
    snprintf(side, sizeof side, "%s-wal", db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db);
    unlink(side);
    rmdir(dir);
}

static void test_gw(void **state)
{
    (void)state;
    notify_sock n;
    notify_open(&n);
    char server[32], listen[32];
    uint16_t port = tcp_free_port();
    snprintf(server, sizeof server, "127.0.0.1:%u", tcp_free_port()); /* no server: it retries */
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    prog_daemon d;
    prog_spawn((const char *const[]){"cpns-gw", "--id", "gw-1", "--pnid", "pn-1", "--server",
                                     server, "--listen", listen, "--insecure", NULL},
               &d);
    ready_then_stopping(&n, &d, &port, 1);
    notify_close(&n);
}

static void test_pne(void **state)
{
    (void)state;
    notify_sock n;
    notify_open(&n);
    char dir[256], key[300], store[300], gw[32];
    prog_tmpdir(dir, sizeof dir);
    snprintf(key, sizeof key, "%s/pne.euk", dir);
    snprintf(store, sizeof store, "%s/store", dir);
    snprintf(gw, sizeof gw, "127.0.0.1:%u", tcp_free_port()); /* no GW: it retries */
    uint8_t EUK[CPNS_KEY_LEN] = {7};
    prog_write_key(key, EUK, 0600);
    prog_daemon d;
    prog_spawn((const char *const[]){"cpns-pne", "--id", "pne-1", "--gw", gw, "--key-file", key,
                                     "--store", store, NULL},
               &d);
    ready_then_stopping(&n, &d, NULL, 0);
    notify_close(&n);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server),
        cmocka_unit_test(test_gw),
        cmocka_unit_test(test_pne),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
