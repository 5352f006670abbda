/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The process, port and HTTP half of the integration harness (harness.h).
 * Everything here fails the running cmocka test on a problem of the test
 * environment, with a message naming the program and what it did, so that a
 * red test points at its cause without a debugger.
 */
#include <arpa/inet.h>
#include <dirent.h>
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
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "harness.h"

#define LOG_TAIL_LINES 40
#define MAX_ARGS 64

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "harness: out of memory\n");
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

/* --- directory and fixtures --- */

static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[H_PATH_MAX * 2];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Prints the last lines of a file to stderr, framed with its name. */
static void print_tail(const char *path, int lines)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long start = size > 65536 ? size - 65536 : 0;
    fseek(f, start, SEEK_SET);
    char *buf = xmalloc((size_t)(size - start) + 1);
    size_t n = fread(buf, 1, (size_t)(size - start), f);
    buf[n] = '\0';
    fclose(f);
    const char *p = buf + n;
    int seen = 0;
    while (p > buf && seen <= lines)
        if (*--p == '\n' && p + 1 < buf + n)
            seen++;
    if (seen > lines)
        p++;
    fprintf(stderr, "----- %s (last %d lines) -----\n%s", path, lines, p);
    if (n && buf[n - 1] != '\n')
        fputc('\n', stderr);
    free(buf);
}

int h_setup(void **state)
{
    harness *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->bin_dir = getenv("CPNS_BIN_DIR");
    h->src_dir = getenv("CPNS_SOURCE_DIR");
    if (!h->bin_dir || !h->src_dir) {
        fprintf(stderr, "harness: CPNS_BIN_DIR and CPNS_SOURCE_DIR must be set (ctest does)\n");
        free(h);
        return -1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(h->dir, sizeof h->dir, "%s/cpns-it-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(h->dir)) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", h->dir, strerror(errno));
        free(h);
        return -1;
    }
    /* A child that dies while we write its stdin must not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    *state = h;
    return 0;
}

int h_teardown(void **state)
{
    harness *h = *state;
    if (!h)
        return 0;
    for (size_t i = 0; i < h->n_procs; i++) {
        h_proc *p = &h->procs[i];
        if (p->pid > 0)
            h_kill9(p);
    }
    if (h->repeats)
        h_note(h, "(end of the test)");
    if (!h->passed) {
        fprintf(stderr, "===== logs of the failed test (in %s) =====\n", h->dir);
        for (size_t i = 0; i < h->n_procs; i++)
            print_tail(h->procs[i].log, LOG_TAIL_LINES);
        char cmds[H_PATH_MAX + 32];
        snprintf(cmds, sizeof cmds, "%s/commands.log", h->dir);
        print_tail(cmds, LOG_TAIL_LINES * 2);
    }
    const char *keep = getenv("CPNS_KEEP_TMP");
    if (keep && *keep && strcmp(keep, "0") != 0)
        fprintf(stderr, "harness: kept %s\n", h->dir);
    else
        remove_tree(h->dir);
    for (size_t i = 0; i < h->n_procs; i++) {
        for (char **a = h->procs[i].argv; a && *a; a++)
            free(*a);
        free(h->procs[i].argv);
    }
    free(h->last_entry);
    for (size_t i = 0; i < h->n_strings; i++)
        free(h->strings[i]);
    free(h->strings);
    free(h);
    *state = NULL;
    return 0;
}

void h_passed(harness *h)
{
    h->passed = true;
}

int h_programs_present(const char *const *progs)
{
    const char *src = getenv("CPNS_SOURCE_DIR");
    const char *bin = getenv("CPNS_BIN_DIR");
    if (!src || !bin) {
        fprintf(stderr, "harness: CPNS_BIN_DIR and CPNS_SOURCE_DIR must be set (ctest does)\n");
        return 1;
    }
    for (; *progs; progs++) {
        char path[H_PATH_MAX];
        snprintf(path, sizeof path, "%s/src/%s/CMakeLists.txt", src, *progs);
        if (access(path, F_OK) != 0) {
            fprintf(stderr, "skipped: %s is not in this source tree yet\n", *progs);
            return 77;
        }
    }
    return 0;
}

char *h_fmt(harness *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (h->n_strings == h->cap_strings) {
        h->cap_strings = h->cap_strings ? h->cap_strings * 2 : 64;
        char **a = realloc(h->strings, h->cap_strings * sizeof *a);
        if (!a)
            abort();
        h->strings = a;
    }
    h->strings[h->n_strings++] = s;
    return s;
}

char *h_path(harness *h, const char *name)
{
    return h_fmt(h, "%s/%s", h->dir, name);
}

uint16_t h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        fail_msg("cannot pick a free port: %s", strerror(errno));
    }
    close(fd);
    return ntohs(sa.sin_port);
}

/* --- processes --- */

static const char *program_path(harness *h, const char *prog, char *buf, size_t len)
{
    if (strchr(prog, '/'))
        snprintf(buf, len, "%s", prog);
    else
        snprintf(buf, len, "%s/%s", h->bin_dir, prog);
    if (access(buf, X_OK) != 0)
        fail_msg("program %s is not built (%s)", prog, buf);
    return buf;
}

static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* In the child: die with the test, whatever happens to it. */
static void child_common(pid_t parent)
{
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    if (getppid() != parent)
        _exit(127);
    signal(SIGPIPE, SIG_DFL);
}

static void spawn(harness *h, h_proc *p)
{
    char path[H_PATH_MAX];
    program_path(h, p->prog, path, sizeof path);
    int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        fail_msg("cannot open %s: %s", p->log, strerror(errno));
    char stamp[128];
    int n = snprintf(stamp, sizeof stamp, "===== harness: starting %s =====\n", p->name);
    if (write(fd, stamp, (size_t)n) != n)
        fail_msg("cannot write %s", p->log);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        child_common(parent);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(path, p->argv);
        dprintf(2, "harness: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(fd);
    p->pid = pid;
    p->status = 0;
}

h_proc *h_startv(harness *h, const char *name, const char *prog, char *const *args)
{
    if (h->n_procs == H_MAX_PROCS)
        fail_msg("too many processes");
    h_proc *p = &h->procs[h->n_procs];
    /* name may point into h (a restart passes p->name): build everything before touching p */
    h_proc fresh;
    memset(&fresh, 0, sizeof fresh);
    snprintf(fresh.name, sizeof fresh.name, "%s", name);
    snprintf(fresh.prog, sizeof fresh.prog, "%s", prog);
    snprintf(fresh.log, sizeof fresh.log, "%s/%s.log", h->dir, name);
    *p = fresh;
    h->n_procs++;
    size_t n = 0;
    while (args[n])
        n++;
    p->argv = xmalloc((n + 2) * sizeof *p->argv);
    p->argv[0] = xstrdup(prog);
    for (size_t i = 0; i < n; i++)
        p->argv[i + 1] = xstrdup(args[i]);
    p->argv[n + 1] = NULL;
    spawn(h, p);
    return p;
}

h_proc *h_start(harness *h, const char *name, const char *prog, ...)
{
    char *args[MAX_ARGS + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, prog);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && n < MAX_ARGS)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return h_startv(h, name, prog, args);
}

void h_restart(harness *h, h_proc *p)
{
    if (h_running(p))
        fail_msg("%s: restarted while it still runs", p->name);
    spawn(h, p);
}

bool h_running(h_proc *p)
{
    if (p->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
        p->status = status;
        p->pid = 0;
        return false;
    }
    return true;
}

int h_wait_exit(h_proc *p, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (h_running(p)) {
        if (now_ms() >= deadline) {
            h_kill9(p);
            return -1;
        }
        sleep_ms(10);
    }
    return exit_code(p->status);
}

int h_stop(h_proc *p, int timeout_ms)
{
    if (p->pid > 0)
        kill(p->pid, SIGTERM);
    return h_wait_exit(p, timeout_ms);
}

void h_kill9(h_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    int status;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
        ;
    p->status = status;
    p->pid = 0;
}

static bool port_accepts(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void check_alive(h_proc *p, const char *what)
{
    if (p && !h_running(p))
        fail_msg("%s exited with status %d before %s", p->name, exit_code(p->status), what);
}

void h_wait_port(harness *h, h_proc *p, uint16_t port, int timeout_ms)
{
    (void)h;
    int64_t deadline = now_ms() + timeout_ms;
    char what[64];
    snprintf(what, sizeof what, "port %u accepted", (unsigned)port);
    for (;;) {
        check_alive(p, what);
        if (port_accepts(port))
            return;
        if (now_ms() >= deadline)
            fail_msg("%s: port %u not accepting after %d ms", p ? p->name : "?", (unsigned)port,
                     timeout_ms);
        sleep_ms(25);
    }
}

void h_wait_http_ok(harness *h, h_proc *p, uint16_t port, const char *path, int timeout_ms)
{
    (void)h;
    int64_t deadline = now_ms() + timeout_ms;
    char what[128];
    snprintf(what, sizeof what, "GET %s answered 200", path);
    int last = 0;
    for (;;) {
        check_alive(p, what);
        last = h_http(port, "GET", path, NULL, NULL, NULL);
        if (last == 200)
            return;
        if (now_ms() >= deadline)
            fail_msg("%s: GET %s on port %u: status %d after %d ms", p ? p->name : "?", path,
                     (unsigned)port, last, timeout_ms);
        sleep_ms(50);
    }
}

/* --- commands run to completion --- */

typedef struct growbuf {
    char *data;
    size_t len, cap;
} growbuf;

static void grow_append(growbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            abort();
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/*
 * Appends the command and its output to commands.log. Polls repeat the same
 * entry many times; those are folded into one line saying how often.
 */
static void transcript(harness *h, char *const *argv, const h_out *o)
{
    growbuf e = {0};
    grow_append(&e, "$", 1);
    for (; *argv; argv++) {
        grow_append(&e, " ", 1);
        grow_append(&e, *argv, strlen(*argv));
    }
    char st[32];
    int n = snprintf(st, sizeof st, "\n[exit %d]\n", o->status);
    grow_append(&e, st, (size_t)n);
    if (*o->out) {
        grow_append(&e, o->out, strlen(o->out));
        if (o->out[strlen(o->out) - 1] != '\n')
            grow_append(&e, "\n", 1);
    }
    if (*o->err) {
        grow_append(&e, "(stderr) ", 9);
        grow_append(&e, o->err, strlen(o->err));
        if (o->err[strlen(o->err) - 1] != '\n')
            grow_append(&e, "\n", 1);
    }
    if (h->last_entry && strcmp(h->last_entry, e.data) == 0) {
        h->repeats++;
        free(e.data);
        return;
    }
    char path[H_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/commands.log", h->dir);
    FILE *f = fopen(path, "a");
    if (f) {
        if (h->repeats)
            fprintf(f, "(the same %u more times)\n", h->repeats);
        fputs(e.data, f);
        fclose(f);
    }
    free(h->last_entry);
    h->last_entry = e.data;
    h->repeats = 0;
}

void h_note(harness *h, const char *fmt, ...)
{
    char path[H_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/commands.log", h->dir);
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    if (h->repeats)
        fprintf(f, "(the same %u more times)\n", h->repeats);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
    free(h->last_entry);
    h->last_entry = NULL;
    h->repeats = 0;
}

h_out h_runv(harness *h, const char *stdin_data, int timeout_ms, const char *prog,
             char *const *args)
{
    char path[H_PATH_MAX];
    program_path(h, prog, path, sizeof path);
    char *argv[MAX_ARGS + 2];
    size_t n = 0;
    argv[n++] = (char *)prog;
    for (; args[n - 1] && n < MAX_ARGS + 1; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;

    int in[2], out[2], err[2];
    if (pipe(in) != 0 || pipe(out) != 0 || pipe(err) != 0)
        fail_msg("pipe: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        child_common(parent);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        for (int i = 0; i < 2; i++) {
            close(in[i]);
            close(out[i]);
            close(err[i]);
        }
        execv(path, argv);
        dprintf(2, "harness: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    const char *feed = stdin_data ? stdin_data : "";
    size_t feed_left = strlen(feed);
    int fd_in = in[1];
    if (feed_left == 0) {
        close(fd_in);
        fd_in = -1;
    }
    growbuf bo = {0}, be = {0};
    grow_append(&bo, "", 0);
    grow_append(&be, "", 0);
    int fds_open = 2;
    int64_t deadline = now_ms() + timeout_ms;
    bool killed = false;
    while (fds_open > 0 || fd_in >= 0) {
        struct pollfd pf[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {fd_in, POLLOUT, 0}};
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            killed = true;
            break;
        }
        if (poll(pf, 3, (int)(left > 100 ? 100 : left)) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t r = read(pf[i].fd, buf, sizeof buf);
            if (r > 0) {
                grow_append(i == 0 ? &bo : &be, buf, (size_t)r);
            } else if (r == 0 || errno != EINTR) {
                close(pf[i].fd);
                if (i == 0)
                    out[0] = -1;
                else
                    err[0] = -1;
                fds_open--;
            }
        }
        if (fd_in >= 0 && (pf[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(fd_in, feed, feed_left);
            if (w > 0) {
                feed += w;
                feed_left -= (size_t)w;
            }
            if (feed_left == 0 || (w < 0 && errno != EAGAIN && errno != EINTR)) {
                close(fd_in);
                fd_in = -1;
            }
        }
    }
    if (fd_in >= 0)
        close(fd_in);
    if (out[0] >= 0)
        close(out[0]);
    if (err[0] >= 0)
        close(err[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    h_out o = {.status = killed ? -1 : exit_code(status), .out = bo.data, .err = be.data};
    transcript(h, argv, &o);
    return o;
}

h_out h_run(harness *h, const char *stdin_data, int timeout_ms, const char *prog, ...)
{
    char *args[MAX_ARGS + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, prog);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && n < MAX_ARGS)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return h_runv(h, stdin_data, timeout_ms, prog, args);
}

void h_out_free(h_out *o)
{
    free(o->out);
    free(o->err);
    o->out = o->err = NULL;
}

bool h_file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    growbuf b = {0};
    char buf[4096];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0)
        grow_append(&b, buf, r);
    fclose(f);
    bool found = b.data && strstr(b.data, needle) != NULL;
    free(b.data);
    return found;
}

int h_file_mode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

void h_write_file(const char *path, const char *data, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    size_t n = strlen(data);
    if (write(fd, data, n) != (ssize_t)n || fchmod(fd, (mode_t)mode) != 0)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    close(fd);
}

/* --- raw HTTP --- */

/* Undoes chunked transfer coding in place; false when it is not well formed. */
static bool dechunk(char *body, size_t *len)
{
    char *r = body, *w = body, *end = body + *len;
    for (;;) {
        char *eol = strstr(r, "\r\n");
        if (!eol)
            return false;
        unsigned long n = strtoul(r, NULL, 16);
        r = eol + 2;
        if (n == 0)
            break;
        if ((size_t)(end - r) < n)
            return false;
        memmove(w, r, n);
        w += n;
        r += n + 2;
        if (r > end)
            return false;
    }
    *w = '\0';
    *len = (size_t)(w - body);
    return true;
}

int h_http(uint16_t port, const char *method, const char *path, const char *extra_header,
           const char *body, char **resp_body)
{
    if (resp_body)
        *resp_body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return 0;
    }
    growbuf req = {0};
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n%s%s%s\r\n",
                     method, path, (unsigned)port, body ? strlen(body) : (size_t)0,
                     body ? "Content-Type: application/json\r\n" : "",
                     extra_header ? extra_header : "", extra_header ? "\r\n" : "");
    grow_append(&req, head, (size_t)n);
    if (body)
        grow_append(&req, body, strlen(body));
    size_t sent = 0;
    while (sent < req.len) {
        ssize_t w = send(fd, req.data + sent, req.len - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    free(req.data);
    growbuf resp = {0};
    char buf[4096];
    ssize_t r;
    while ((r = recv(fd, buf, sizeof buf, 0)) > 0)
        grow_append(&resp, buf, (size_t)r);
    close(fd);
    int status = 0;
    if (resp.data && sscanf(resp.data, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    char *sep = resp.data ? strstr(resp.data, "\r\n\r\n") : NULL;
    if (sep && resp_body) {
        *sep = '\0';
        char *b = sep + 4;
        size_t blen = resp.len - (size_t)(b - resp.data);
        /* Header names are case-insensitive; evhttp writes them capitalized. */
        bool chunked = strstr(resp.data, "Transfer-Encoding: chunked") ||
                       strstr(resp.data, "transfer-encoding: chunked");
        if (chunked && !dechunk(b, &blen))
            blen = 0;
        *resp_body = xmalloc(blen + 1);
        memcpy(*resp_body, b, blen);
        (*resp_body)[blen] = '\0';
    }
    free(resp.data);
    return status;
}
