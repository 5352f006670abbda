/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resource limits of the real daemons (issue #5, item 5), over loopback
 * sockets: a peer that leaves a frame half-sent is dropped after
 * --stall-timeout while an idle one stays; a frame length over 65,536 (or
 * 0) closes the link at once while a 65,536-byte frame does not; cpns-server
 * --max-gws and cpns-gw --max-pnes cap the connections; 1,000 PNE
 * connections register through one GW at once. Plus the option checks of
 * the new options, the admin-address refusal and cpnsctl's refusal of a
 * readable token file (item 6).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "progtest.h"

#define BASE_GW "--id", "gw-1", "--pnid", "pn-home"

static void has(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("expected '%s' in:\n%s", needle, text);
}

static void send_bytes(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* --- cpns-server --- */

typedef struct srv {
    char dir[256], db[300], mk[300], listen[32], admin[32];
    uint16_t port, admin_port;
    prog_daemon d;
} srv;

static void srv_start(srv *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    prog_tmpdir(s->dir, sizeof s->dir);
    snprintf(s->db, sizeof s->db, "%s/server.db", s->dir);
    snprintf(s->mk, sizeof s->mk, "%s/master.key", s->dir);
    s->port = tcp_free_port();
    s->admin_port = tcp_free_port();
    snprintf(s->listen, sizeof s->listen, "127.0.0.1:%u", s->port);
    snprintf(s->admin, sizeof s->admin, "127.0.0.1:%u", s->admin_port);
    const char *argv[24] = {"cpns-server", "--db",     s->db,     "--master-key", s->mk,
                            "--insecure",  "--listen", s->listen, "--admin",      s->admin};
    size_t n = 10;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    prog_spawn(argv, &s->d);
    if (!prog_wait_log(&s->d, "GWs connect to", 1, 5000)) {
        char *log = prog_log(&s->d);
        fail_msg("the server did not start:\n%s", log);
    }
}

static char *srv_stop(srv *s)
{
    char *log = prog_log(&s->d);
    assert_int_equal(prog_stop(&s->d, SIGTERM), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    assert_int_equal(system(cmd), 0);
    return log;
}

/* A fake GW registers on fd; 0 when Return 1 came back. */
static int gw_register(int fd, const char *PNGWID, uint64_t tid)
{
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, tid);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNGWID, PNGWID), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-home"), 0);
    if (msg_send(fd, &m) != 0 || msg_recv(fd, &m, 5000) != 0)
        return -1;
    return m.kind == CPNS_MSG_PNGW_REGISTRATION_RESPONSE && m.TransactionID == tid &&
                   m.Return == CPNS_RETURN_SUCCESS
               ? 0
               : -1;
}

static void run_expect_2(const char *const argv[], const char *needle)
{
    prog_result r;
    prog_run(argv, NULL, 0, &r);
    if (r.status != 2)
        fail_msg("%s %s %s: exit %d, want 2: %s", argv[0], argv[1], argv[2], r.status, r.err);
    has(r.err, needle);
    prog_result_free(&r);
}

static void test_options_validated(void **state)
{
    (void)state;
#define SRV                                                                                        \
    "cpns-server", "--db", "/nonexistent/x.db", "--master-key", "/nonexistent/k", "--insecure"
    run_expect_2((const char *const[]){SRV, "--max-gws", "-1", NULL}, "--max-gws '-1'");
    run_expect_2((const char *const[]){SRV, "--max-gws", "lots", NULL}, "--max-gws 'lots'");
    run_expect_2((const char *const[]){SRV, "--max-gws", "1000001", NULL}, "--max-gws");
    run_expect_2((const char *const[]){SRV, "--stall-timeout", "0", NULL}, "--stall-timeout '0'");
    run_expect_2((const char *const[]){SRV, "--stall-timeout", "3601", NULL}, "--stall-timeout");
    run_expect_2((const char *const[]){SRV, "--commit-interval", "-1", NULL},
                 "--commit-interval '-1'");
    run_expect_2((const char *const[]){SRV, "--commit-interval", "1001", NULL},
                 "--commit-interval");
    run_expect_2((const char *const[]){SRV, "--commit-interval", "soon", NULL},
                 "--commit-interval 'soon'");
    /* Item 6: an admin API off loopback without a token is refused at start-up. */
    run_expect_2((const char *const[]){SRV, "--admin", "10.1.2.3:7462", NULL}, "loopback");
    run_expect_2((const char *const[]){SRV, "--admin", "0.0.0.0:7462", NULL}, "--admin-token-file");
    run_expect_2((const char *const[]){SRV, "--admin", "example.com:7462", NULL}, "loopback");
#define GW "cpns-gw", BASE_GW, "--server", "127.0.0.1:1", "--insecure"
    run_expect_2((const char *const[]){GW, "--stall-timeout", "0", NULL}, "--stall-timeout '0'");
    run_expect_2((const char *const[]){GW, "--stall-timeout", "x", NULL}, "--stall-timeout 'x'");
    run_expect_2((const char *const[]){GW, "--max-pnes", "-5", NULL}, "--max-pnes");

    /* cpnsctl refuses a token file that others can read, before any request. */
    char dir[256], token[300];
    prog_tmpdir(dir, sizeof dir);
    snprintf(token, sizeof token, "%s/token", dir);
    prog_write_file(token, "s3cret\n", 7, 0644);
    run_expect_2((const char *const[]){"cpnsctl", "--server", "http://127.0.0.1:1", "--token-file",
                                       token, "pne", "list", NULL},
                 "--token-file");
    unlink(token);
    rmdir(dir);

    prog_result r;
    prog_run((const char *const[]){"cpns-server", "--help", NULL}, NULL, 0, &r);
    assert_int_equal(r.status, 0);
    has(r.out, "--max-gws N");
    has(r.out, "--stall-timeout S");
    has(r.out, "--commit-interval MS");
    prog_result_free(&r);
    prog_run((const char *const[]){"cpns-gw", "--help", NULL}, NULL, 0, &r);
    assert_int_equal(r.status, 0);
    has(r.out, "--stall-timeout S");
    has(r.out, "--max-pnes N");
    prog_result_free(&r);
}

/* A half-sent frame is dropped after --stall-timeout; an idle connection is not. */
static void test_server_stalled_frame_dropped(void **state)
{
    (void)state;
    srv s;
    srv_start(&s, (const char *const[]){"--stall-timeout", "1", NULL});
    int idle = tcp_connect(s.port, 3000);
    int gw = tcp_connect(s.port, 3000);
    assert_true(idle >= 0 && gw >= 0);
    assert_int_equal(gw_register(gw, "gw-1", 1), 0);
    uint8_t half[4 + 10] = {0, 0, 0, 100, '<', '?', 'x', 'm', 'l'};
    send_bytes(gw, half, sizeof half);
    int ms = closed_within(gw, 5000);
    if (ms < 0)
        fail_msg("a stalled frame did not close the connection within 5 s");
    assert_true(ms >= 700); /* not before the timeout */
    /* The idle connection (no frame started) is still served. */
    assert_int_equal(gw_register(idle, "gw-2", 2), 0);
    close(idle);
    close(gw);
    char *log = srv_stop(&s);
    has(log, "stalled");
    free(log);
}

/* Lengths 0 and 65,537 close the link at once; a 65,536-byte frame does not. */
static void test_server_frame_sizes(void **state)
{
    (void)state;
    srv s;
    srv_start(&s, NULL);
    static const uint8_t bad[][4] = {{0, 1, 0, 1}, {0, 0, 0, 0}, {0xff, 0xff, 0xff, 0xff}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = tcp_connect(s.port, 3000);
        assert_true(fd >= 0);
        send_bytes(fd, bad[i], 4);
        if (closed_within(fd, 2000) < 0)
            fail_msg("frame length %02x%02x%02x%02x did not close the link", bad[i][0], bad[i][1],
                     bad[i][2], bad[i][3]);
        close(fd);
    }
    /* The largest frame allowed, of garbage: dropped as malformed, the link stays. */
    int fd = tcp_connect(s.port, 3000);
    assert_true(fd >= 0);
    static uint8_t big[4 + 65536];
    big[1] = 1; /* 0x00010000 */
    memset(big + 4, 'A', 65536);
    send_bytes(fd, big, sizeof big);
    assert_int_equal(gw_register(fd, "gw-1", 7), 0);
    close(fd);
    free(srv_stop(&s));
}

/* --max-gws 2: a third connection is refused; once one closes, a new one gets in. */
static void test_server_max_gws(void **state)
{
    (void)state;
    srv s;
    srv_start(&s, (const char *const[]){"--max-gws", "2", NULL});
    int a = tcp_connect(s.port, 3000), b = tcp_connect(s.port, 3000);
    assert_int_equal(gw_register(a, "gw-a", 1), 0);
    assert_int_equal(gw_register(b, "gw-b", 2), 0);
    int c = tcp_connect(s.port, 3000);
    assert_true(c >= 0);
    assert_true(closed_within(c, 3000) >= 0);
    close(c);
    assert_int_equal(gw_register(a, "gw-a", 3), 0); /* the two others are untouched */
    close(b);
    /* The server notices b's close on its next read; retry until a slot is free. */
    int ok = -1;
    for (int i = 0; i < 50 && ok != 0; i++) {
        int d = tcp_connect(s.port, 3000);
        ok = gw_register(d, "gw-d", 10 + (uint64_t)i);
        close(d);
        if (ok != 0) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(ok, 0);
    close(a);
    char *log = srv_stop(&s);
    has(log, "(--max-gws): connection from");
    free(log);
}

/* --- cpns-gw between a fake server and fake PNEs --- */

typedef struct gwd {
    int server_lfd, server_fd;
    uint16_t server_port, listen_port;
    prog_daemon d;
} gwd;

/* Starts cpns-gw with extra options and, when registered, answers its registration. */
static void gw_start(gwd *g, const char *const *extra, int registered)
{
    char server[32], listen[32];
    g->server_lfd = tcp_listen_any(&g->server_port);
    g->listen_port = tcp_free_port();
    snprintf(server, sizeof server, "127.0.0.1:%u", g->server_port);
    snprintf(listen, sizeof listen, "127.0.0.1:%u", g->listen_port);
    const char *argv[24] = {"cpns-gw",  BASE_GW, "--server",  server,
                            "--listen", listen,  "--insecure"};
    size_t n = 10;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    prog_spawn(argv, &g->d);
    g->server_fd = -1;
    if (registered) {
        g->server_fd = tcp_accept(g->server_lfd, 8000);
        assert_true(g->server_fd >= 0);
        cpns_msg m;
        assert_int_equal(msg_recv(g->server_fd, &m, 5000), 0);
        assert_int_equal(m.kind, CPNS_MSG_PNGW_REGISTRATION_REQUEST);
        uint64_t tid = m.TransactionID;
        cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, tid);
        m.Return = CPNS_RETURN_SUCCESS;
        m.present |= CPNS_F_RETURN;
        assert_int_equal(msg_send(g->server_fd, &m), 0);
        assert_true(prog_wait_log(&g->d, "registered with the server", 1, 5000));
    }
    assert_true(prog_wait_log(&g->d, "listening for PNEs", 1, 5000));
}

static char *gw_stop(gwd *g)
{
    char *log = prog_log(&g->d);
    assert_int_equal(prog_stop(&g->d, SIGTERM), 0);
    if (g->server_fd >= 0)
        close(g->server_fd);
    close(g->server_lfd);
    return log;
}

static void test_gw_stall_and_sizes(void **state)
{
    (void)state;
    gwd g;
    gw_start(&g, (const char *const[]){"--stall-timeout", "1", NULL}, 1);
    /* A PNE that stalls mid-frame is dropped; one that stays idle is not. */
    int idle = tcp_connect(g.listen_port, 3000), pne = tcp_connect(g.listen_port, 3000);
    uint8_t half[4 + 3] = {0, 0, 0, 50, '<', '?', 'x'};
    send_bytes(pne, half, sizeof half);
    int ms = closed_within(pne, 5000);
    assert_true(ms >= 700);
    close(pne);
    assert_int_equal(closed_within(idle, 300), -1);
    close(idle);
    /* Oversize and empty frame lengths close the PNE link at once. */
    static const uint8_t bad[][4] = {{0, 1, 0, 1}, {0, 0, 0, 0}};
    for (size_t i = 0; i < 2; i++) {
        int fd = tcp_connect(g.listen_port, 3000);
        send_bytes(fd, bad[i], 4);
        assert_true(closed_within(fd, 2000) >= 0);
        close(fd);
    }
    /* The server side: a stalled frame from the server drops that connection too. */
    send_bytes(g.server_fd, half, sizeof half);
    assert_true(closed_within(g.server_fd, 5000) >= 700);
    char *log = gw_stop(&g);
    has(log, "stalled");
    has(log, "server connection");
    free(log);
}

/* --max-pnes 2 caps the PNE connections at 2 + 64 (room for reconnecting PNEs). */
static void test_gw_connection_cap(void **state)
{
    (void)state;
    gwd g;
    gw_start(&g, (const char *const[]){"--max-pnes", "2", NULL}, 0);
    enum { CAP = 2 + 64 };
    int fds[CAP + 1];
    for (int i = 0; i < CAP; i++) {
        fds[i] = tcp_connect(g.listen_port, 3000);
        assert_true(fds[i] >= 0);
    }
    assert_true(prog_wait_log(&g.d, "link 66", 1, 5000));
    fds[CAP] = tcp_connect(g.listen_port, 3000);
    assert_true(fds[CAP] >= 0);
    assert_true(closed_within(fds[CAP], 3000) >= 0);
    for (int i = 0; i < CAP; i++)
        assert_int_equal(closed_within(fds[i], 1), -1);
    for (int i = 0; i <= CAP; i++)
        close(fds[i]);
    char *log = gw_stop(&g);
    has(log, "66 PNE connections open: connection from");
    free(log);
}

/* 1,000 PNE connections register through one GW at the same time. */
static void test_gw_1000_pnes(void **state)
{
    (void)state;
    enum { N = 1000 };
    gwd g;
    gw_start(&g, NULL, 1);
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect(g.listen_port, 3000);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < N; i++) {
        cpns_msg m;
        char PNEID[32];
        snprintf(PNEID, sizeof PNEID, "pne-%04d", i);
        uint8_t Nonce[CPNS_NONCE_LEN] = {(uint8_t)i, (uint8_t)(i >> 8)},
                Proof[CPNS_PROOF_LEN] = {1};
        cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_REQUEST, 100000 + (uint64_t)i);
        assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, PNEID), 0);
        assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_NONCE, Nonce, sizeof Nonce), 0);
        assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_PROOF, Proof, sizeof Proof), 0);
        m.Time = 1795000000;
        m.present |= CPNS_F_TIME;
        assert_int_equal(msg_send(fds[i], &m), 0);
    }
    /* The fake server answers every forwarded registration with Return 1. */
    static char seen[N];
    for (int k = 0; k < N; k++) {
        cpns_msg m;
        assert_int_equal(msg_recv(g.server_fd, &m, 10000), 0);
        assert_int_equal(m.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
        int i = atoi(m.PNEID + 4);
        assert_true(i >= 0 && i < N && !seen[i]);
        seen[i] = 1;
        uint64_t tid = m.TransactionID;
        char PNEID[CPNS_ID_MAX + 1];
        strcpy(PNEID, m.PNEID);
        cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, tid);
        m.Return = CPNS_RETURN_SUCCESS;
        m.present |= CPNS_F_RETURN;
        assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, PNEID), 0);
        assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-home"), 0);
        assert_int_equal(msg_send(g.server_fd, &m), 0);
    }
    /* Each PNE gets its own answer on its own connection. */
    for (int i = 0; i < N; i++) {
        cpns_msg m;
        assert_int_equal(msg_recv(fds[i], &m, 10000), 0);
        assert_int_equal(m.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
        assert_int_equal(m.TransactionID, 100000 + (uint64_t)i);
        assert_int_equal(m.Return, CPNS_RETURN_SUCCESS);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    free(gw_stop(&g));
}

/* --- file-descriptor exhaustion --- */

/* Starts CPNS_BIN_DIR/argv[0] with RLIMIT_NOFILE at nofile (soft and hard), stderr to d's log. */
static void spawn_with_nofile(const char *const argv[], rlim_t nofile, prog_daemon *d)
{
    char dir[256], path[400];
    prog_tmpdir(dir, sizeof dir);
    snprintf(d->log_path, sizeof d->log_path, "%s/log", dir);
    snprintf(path, sizeof path, "%s/%s", getenv("CPNS_BIN_DIR"), argv[0]);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {nofile, nofile};
        int fd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDWR);
        if (fd < 0 || null < 0 || setrlimit(RLIMIT_NOFILE, &rl) != 0 || dup2(null, 0) < 0 ||
            dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        for (int i = 3; i < 1024; i++)
            close(i);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
}

static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields 14 and 15 (utime, stime) follow the ")" that ends the command name. */
    char *p = strrchr(buf, ')');
    assert_non_null(p);
    long utime = 0, stime = 0;
    assert_int_equal(
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime), 2);
    return utime + stime;
}

/* The cap the daemon logged at start ("<prefix><N> ..."). */
static int logged_cap(const prog_daemon *d, const char *prefix)
{
    char *log = prog_log(d);
    const char *p = strstr(log, prefix);
    if (!p)
        fail_msg("expected '%s' in:\n%s", prefix, log);
    int cap = atoi(p + strlen(prefix));
    free(log);
    assert_true(cap > 0);
    return cap;
}

/*
 * Waits until `want` of the n connections in fds were closed by the daemon
 * (EOF or reset; closed[i] set), for up to timeout_ms; the number closed.
 */
static int wait_closed(const int *fds, int n, bool *closed, int want, int timeout_ms)
{
    int done = 0;
    for (int i = 0; i < n; i++)
        done += closed[i];
    int64_t deadline = mono_ms() + timeout_ms;
    while (done < want && mono_ms() < deadline) {
        struct pollfd p[128];
        int idx[128], k = 0;
        for (int i = 0; i < n && k < 128; i++)
            if (!closed[i]) {
                p[k] = (struct pollfd){fds[i], POLLIN, 0};
                idx[k++] = i;
            }
        if (poll(p, (nfds_t)k, 100) <= 0)
            continue;
        for (int j = 0; j < k; j++) {
            if (!(p[j].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[256];
            ssize_t r = read(fds[idx[j]], buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                closed[idx[j]] = true;
                done++;
            }
        }
    }
    return done;
}

/*
 * 80 connections to a daemon allowed 64 open files: the connections beyond
 * its cap are closed at once, the daemon does not spin on a failing accept()
 * nor flood its log (it did both before the cap followed the open-file
 * limit: 34% of a core and 65,000 log lines a second), and serves normally
 * afterwards.
 *
 * #10 section 2: this used to sleep 300 ms for the flood to "settle", then
 * demand that every connection beyond a hard-coded cap of 32 be closed within
 * 1 ms of polling, and measure the daemon's CPU over a second that could
 * still hold its handling of the flood when the machine was busy. It now
 * reads the cap from the daemon's log, waits (up to 20 s) until the daemon
 * has closed every connection beyond it, and only then measures an idle
 * second: a daemon that spins burns that second whatever the load, one that
 * does not uses next to nothing of it.
 */
static void flood_past_fd_limit(prog_daemon *d, uint16_t port, const char *cap_prefix)
{
    enum { N = 80 };
    int cap = logged_cap(d, cap_prefix);
    assert_true(cap < N);
    int fds[N];
    bool closed[N] = {false};
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect(port, 10000);
        assert_true(fds[i] >= 0);
    }
    int n_closed = wait_closed(fds, N, closed, N - cap, 20000);
    if (n_closed < N - cap)
        fail_msg("only %d of the %d connections beyond the cap of %d were closed", n_closed,
                 N - cap, cap);
    long t0 = cpu_ticks(d->pid);
    struct timespec second = {1, 0};
    nanosleep(&second, NULL);
    long busy = cpu_ticks(d->pid) - t0;
    for (int i = 0; i < N; i++)
        close(fds[i]);
    char *log = prog_log(d);
    /*
     * libevent accepts a whole backlog in one go and the closes of the
     * refused ones take effect on the next loop turn, so a batch may still
     * run out (libevent's "Error from accept() call", or the daemons' own
     * "cannot accept a connection ...: pausing"); what must not happen is an
     * accept() failing turn after turn.
     */
    int accept_errors = 0;
    for (const char *p = log; (p = strstr(p, "accept() call")) != NULL; p++)
        accept_errors++;
    for (const char *p = log; (p = strstr(p, "cannot accept a connection")) != NULL; p++)
        accept_errors++;
    if (accept_errors > 5)
        fail_msg("accept() failed %d times under the flood:\n%s", accept_errors, log);
    free(log);
    if (busy > sysconf(_SC_CLK_TCK) / 5)
        fail_msg("the daemon used %ld clock ticks in one idle second after the flood", busy);
    /* Still serving: an oversize frame length closes a new connection. */
    int fd = tcp_connect(port, 10000);
    assert_true(fd >= 0);
    send_bytes(fd, (const uint8_t[]){0, 1, 0, 1}, 4);
    bool c = false;
    assert_int_equal(wait_closed(&fd, 1, &c, 1, 20000), 1);
    close(fd);
}

/* The daemon of the flood tests, stopped by flood_teardown when a test fails midway. */
static prog_daemon flood_daemon;

static int flood_teardown(void **state)
{
    (void)state;
    if (flood_daemon.pid > 0)
        prog_stop(&flood_daemon, SIGKILL);
    memset(&flood_daemon, 0, sizeof flood_daemon);
    return 0;
}

static void test_fd_exhaustion_server(void **state)
{
    (void)state;
    char dir[256], db[300], mk[300], listen[32], admin[32];
    prog_tmpdir(dir, sizeof dir);
    snprintf(db, sizeof db, "%s/server.db", dir);
    snprintf(mk, sizeof mk, "%s/master.key", dir);
    uint16_t port = tcp_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    snprintf(admin, sizeof admin, "127.0.0.1:%u", tcp_free_port());
    prog_daemon *d = &flood_daemon;
    spawn_with_nofile((const char *const[]){"cpns-server", "--db", db, "--master-key", mk,
                                            "--insecure", "--listen", listen, "--admin", admin,
                                            NULL},
                      64, d);
    assert_true(prog_wait_log(d, "GWs connect to", 1, 5000));
    flood_past_fd_limit(d, port, "GW connections capped at ");
    assert_int_equal(prog_stop(d, SIGTERM), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The admin API under the same flood: no accept() loop, and it answers once the flood is gone. */
static void test_fd_exhaustion_admin(void **state)
{
    (void)state;
    char dir[256], db[300], mk[300], listen[32], admin[32];
    prog_tmpdir(dir, sizeof dir);
    snprintf(db, sizeof db, "%s/server.db", dir);
    snprintf(mk, sizeof mk, "%s/master.key", dir);
    uint16_t admin_port = tcp_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%u", tcp_free_port());
    snprintf(admin, sizeof admin, "127.0.0.1:%u", admin_port);
    prog_daemon *d = &flood_daemon;
    spawn_with_nofile((const char *const[]){"cpns-server", "--db", db, "--master-key", mk,
                                            "--insecure", "--listen", listen, "--admin", admin,
                                            NULL},
                      64, d);
    assert_true(prog_wait_log(d, "GWs connect to", 1, 5000));
    enum { N = 80 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect(admin_port, 3000);
        assert_true(fds[i] >= 0);
    }
    struct timespec settle = {0, 300 * 1000 * 1000}, second = {1, 0};
    nanosleep(&settle, NULL);
    long t0 = cpu_ticks(d->pid);
    nanosleep(&second, NULL);
    long busy = cpu_ticks(d->pid) - t0;
    for (int i = 0; i < N; i++)
        close(fds[i]);
    char *log = prog_log(d);
    int accept_errors = 0;
    for (const char *p = log; (p = strstr(p, "accept() call")) != NULL; p++)
        accept_errors++;
    free(log);
    if (busy > sysconf(_SC_CLK_TCK) / 5 || accept_errors > 50)
        fail_msg("under the flood: %ld clock ticks in one second, %d accept() errors logged", busy,
                 accept_errors);
    /* Served again: GET /healthz answers 200 (the listener may wait a moment to resume). */
    int ok = 0;
    for (int i = 0; i < 50 && !ok; i++) {
        int fd = tcp_connect(admin_port, 3000);
        static const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
        send_bytes(fd, req, sizeof req - 1);
        char buf[256] = "";
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 1000) == 1 && read(fd, buf, sizeof buf - 1) > 0)
            ok = strstr(buf, " 200 ") != NULL;
        close(fd);
        if (!ok)
            nanosleep(&settle, NULL);
    }
    assert_true(ok);
    assert_int_equal(prog_stop(d, SIGTERM), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_fd_exhaustion_gw(void **state)
{
    (void)state;
    char server[32], listen[32];
    uint16_t port = tcp_free_port();
    snprintf(server, sizeof server, "127.0.0.1:%u", tcp_free_port());
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    prog_daemon *d = &flood_daemon;
    spawn_with_nofile((const char *const[]){"cpns-gw", BASE_GW, "--server", server, "--listen",
                                            listen, "--insecure", NULL},
                      64, d);
    assert_true(prog_wait_log(d, "listening for PNEs", 1, 5000));
    flood_past_fd_limit(d, port, "PNE connections capped at ");
    assert_int_equal(prog_stop(d, SIGTERM), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_validated),
        cmocka_unit_test(test_server_stalled_frame_dropped),
        cmocka_unit_test(test_server_frame_sizes),
        cmocka_unit_test(test_server_max_gws),
        cmocka_unit_test(test_gw_stall_and_sizes),
        cmocka_unit_test(test_gw_connection_cap),
        cmocka_unit_test(test_gw_1000_pnes),
        cmocka_unit_test_teardown(test_fd_exhaustion_server, flood_teardown),
        cmocka_unit_test_teardown(test_fd_exhaustion_gw, flood_teardown),
        cmocka_unit_test_teardown(test_fd_exhaustion_admin, flood_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
