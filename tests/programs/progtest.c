/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The program tests' helpers (progtest.h): fork/exec with files for the
 * standard streams (no pipe to deadlock on), polling waits with deadlines,
 * and blocking loopback sockets with poll() timeouts for the fake peers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progtest.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void prog_path(const char *name, char *buf, size_t len)
{
    const char *dir = getenv("CPNS_BIN_DIR");
    if (!dir)
        fail_msg("CPNS_BIN_DIR is not set (run the tests through ctest)");
    snprintf(buf, len, "%s/%s", dir, name);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    if (f) {
        size_t r;
        while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
            n += r;
            if (n == cap) {
                cap *= 2;
                buf = realloc(buf, cap + 1);
                assert_non_null(buf);
            }
        }
        fclose(f);
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Waits for pid up to timeout_ms; its exit status, or -1 (signal, or killed on timeout). */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int st;
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_ms(10);
    }
}

static pid_t spawn(const char *const argv[], const char *in_path, const char *out_path,
                   const char *err_path)
{
    char path[512];
    prog_path(argv[0], path, sizeof path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open(in_path, O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        /* The test's own sockets must not live on in the program. */
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

void prog_run(const char *const argv[], const void *in, size_t in_len, prog_result *r)
{
    char dir[256], in_path[300], out_path[300], err_path[300];
    prog_tmpdir(dir, sizeof dir);
    snprintf(in_path, sizeof in_path, "%s/stdin", dir);
    snprintf(out_path, sizeof out_path, "%s/stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    prog_write_file(in_path, in, in_len, 0600);
    pid_t pid = spawn(argv, in_path, out_path, err_path);
    r->status = wait_exit(pid, 10000);
    r->out = slurp(out_path, &r->out_len);
    r->err = slurp(err_path, NULL);
    unlink(in_path);
    unlink(out_path);
    unlink(err_path);
    rmdir(dir);
}

void prog_result_free(prog_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

void prog_spawn(const char *const argv[], prog_daemon *d)
{
    char dir[256];
    prog_tmpdir(dir, sizeof dir);
    snprintf(d->log_path, sizeof d->log_path, "%s/log", dir);
    d->pid = spawn(argv, "/dev/null", "/dev/null", d->log_path);
}

char *prog_log(const prog_daemon *d)
{
    return slurp(d->log_path, NULL);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

int prog_wait_log(const prog_daemon *d, const char *needle, int count, int timeout_ms)
{
    for (int waited = 0;; waited += 20) {
        char *log = prog_log(d);
        int n = count_of(log, needle);
        free(log);
        if (n >= count)
            return 1;
        if (waited >= timeout_ms)
            return 0;
        sleep_ms(20);
    }
}

int prog_stop(prog_daemon *d, int sig)
{
    kill(d->pid, sig);
    return prog_wait_exit(d, 5000);
}

int prog_wait_exit(prog_daemon *d, int timeout_ms)
{
    int status = wait_exit(d->pid, timeout_ms);
    d->pid = 0;
    unlink(d->log_path);
    char *slash = strrchr(d->log_path, '/');
    if (slash) {
        *slash = '\0';
        rmdir(d->log_path);
    }
    return status;
}

void prog_tmpdir(char *buf, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, len, "%s/cpns-prog-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(buf));
}

void prog_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    if (len)
        assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, (mode_t)mode), 0);
    close(fd);
}

void prog_write_key(const char *path, const uint8_t key[CPNS_KEY_LEN], unsigned mode)
{
    char b64[CPNS_B64_LEN(CPNS_KEY_LEN) + 2];
    int n = cpns_b64_encode(key, CPNS_KEY_LEN, b64, sizeof b64 - 1);
    assert_true(n > 0);
    b64[n++] = '\n';
    prog_write_file(path, b64, (size_t)n, mode);
}

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sin;
}

int tcp_listen_any(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = loopback(0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

uint16_t tcp_free_port(void)
{
    uint16_t port;
    close(tcp_listen_any(&port));
    return port;
}

static int wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1 ? 0 : -1;
}

int tcp_accept(int lfd, int timeout_ms)
{
    if (wait_readable(lfd, timeout_ms) != 0)
        return -1;
    return accept(lfd, NULL, NULL);
}

int tcp_connect(uint16_t port, int timeout_ms)
{
    for (int waited = 0;; waited += 50) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        struct sockaddr_in sin = loopback(port);
        if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0)
            return fd;
        close(fd);
        if (waited >= timeout_ms)
            return -1;
        sleep_ms(50);
    }
}

int frame_send(int fd, const uint8_t *data, size_t len)
{
    uint8_t hdr[CPNS_FRAME_HDR];
    cpns_frame_header(hdr, (uint32_t)len);
    if (write(fd, hdr, sizeof hdr) != (ssize_t)sizeof hdr)
        return -1;
    return write(fd, data, len) == (ssize_t)len ? 0 : -1;
}

static int read_exact(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
    size_t n = 0;
    while (n < len) {
        if (wait_readable(fd, timeout_ms) != 0)
            return -1;
        ssize_t r = read(fd, buf + n, len - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
    }
    return 0;
}

int frame_recv(int fd, uint8_t *buf, size_t cap, size_t *len, int timeout_ms)
{
    uint8_t hdr[CPNS_FRAME_HDR];
    if (read_exact(fd, hdr, sizeof hdr, timeout_ms) != 0)
        return -1;
    size_t n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
    if (n == 0 || n > cap)
        return -1;
    *len = n;
    return read_exact(fd, buf, n, timeout_ms);
}

int msg_send(int fd, const cpns_msg *m)
{
    uint8_t buf[4096];
    size_t len;
    if (cpns_msg_encode(m, buf, sizeof buf, &len) != 0)
        return -1;
    return frame_send(fd, buf, len);
}

int msg_recv(int fd, cpns_msg *m, int timeout_ms)
{
    uint8_t buf[CPNS_FRAME_MAX];
    size_t len;
    if (frame_recv(fd, buf, sizeof buf, &len, timeout_ms) != 0)
        return -1;
    return cpns_msg_decode(buf, len, m) == 0 ? 0 : -1;
}

int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int closed_within(int fd, int timeout_ms)
{
    int64_t t0 = mono_ms();
    for (;;) {
        int left = timeout_ms - (int)(mono_ms() - t0);
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left) != 1)
            return -1;
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return (int)(mono_ms() - t0);
        /* Data (an answer) is not a close: keep waiting. */
    }
}
