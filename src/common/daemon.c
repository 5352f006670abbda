/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging, key files, addresses and numbers for the programs (daemon.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "backoff.h"
#include "daemon.h"

static struct {
    const char *entity;
    char id[CPNS_ID_MAX + 1];
    cpns_log_level level;
    bool journal; /* stderr is journald's stream: syslog prefixes, no timestamp */
} logcfg = {"cpns", "", CPNS_LOG_INFO, false};

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

/* The syslog priorities of ERROR, WARN, INFO, DEBUG: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const int level_priorities[] = {3, 4, 6, 7};

bool log_stderr_is_journal(void)
{
    /*
     * systemd sets JOURNAL_STREAM to "DEV:INO" of the stream it connects to
     * stderr (systemd.exec(5)); a child that inherited the variable but has
     * another stderr (a pipe, a file) must keep the plain format.
     */
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char end;
    if (!e || sscanf(e, "%llu:%llu%c", &dev, &ino, &end) != 2)
        return false;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_setup(const char *entity, const char *id, cpns_log_level level)
{
    logcfg.entity = entity;
    snprintf(logcfg.id, sizeof logcfg.id, "%s", id ? id : "");
    logcfg.level = level;
    logcfg.journal = log_stderr_is_journal();
}

void log_set_level(cpns_log_level level)
{
    logcfg.level = level;
}

cpns_log_level log_get_level(void)
{
    return logcfg.level;
}

int log_parse_level(const char *s, cpns_log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (cpns_log_level)i;
            return 0;
        }
    }
    return -1;
}

static void emit(cpns_log_level level, const char *entity, const char *id, const char *SGID,
                 const char *PNEID, uint64_t TransactionID, const char *text)
{
    if (level > logcfg.level)
        return;
    char ctx[256] = "";
    size_t n = 0;
    if (SGID)
        n += (size_t)snprintf(ctx + n, sizeof ctx - n, " SGID=%s", SGID);
    if (PNEID && n < sizeof ctx)
        n += (size_t)snprintf(ctx + n, sizeof ctx - n, " PNEID=%s", PNEID);
    if (TransactionID && n < sizeof ctx)
        snprintf(ctx + n, sizeof ctx - n, " TID=%llu", (unsigned long long)TransactionID);
    /* journald: "<N>" gives the line its priority; the journal has its own timestamps */
    char head[64];
    if (logcfg.journal) {
        snprintf(head, sizeof head, "<%d>", level_priorities[level]);
    } else {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        char ts[32];
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(head, sizeof head, "%s.%03dZ ", ts, (int)(tv.tv_usec / 1000));
    }
    fprintf(stderr, "%s%-5s %s%s%s%s%s: %s\n", head, level_names[level], entity,
            id && *id ? "[" : "", id ? id : "", id && *id ? "]" : "", ctx, text);
}

/* --- rate limiting of repeated lines (#10.6) --- */

static log_limit_slot *slot_of(log_limiter *l, uint64_t key)
{
    key ^= key >> 33; /* a 64-bit finaliser: every bit of the key reaches the index */
    key *= 0xff51afd7ed558ccdu;
    key ^= key >> 33;
    return &l->slots[key % LOG_KEYS];
}

static void refill(double *tokens, int64_t *last_ms, int64_t now_ms, double per_s, double burst)
{
    if (now_ms > *last_ms) {
        *tokens += (double)(now_ms - *last_ms) * per_s / 1000.0;
        if (*tokens > burst)
            *tokens = burst;
    }
    *last_ms = now_ms;
}

static void report_slot(log_limiter *l, log_limit_slot *s, int64_t now_ms, log_report_fn report,
                        void *arg)
{
    if (s->suppressed == 0)
        return;
    report(arg, s->suppressed, s->level, s->sample, now_ms - s->since_ms);
    s->suppressed = 0;
    l->pending--;
}

void log_limit_flush(log_limiter *l, int64_t now_ms, bool all, log_report_fn report, void *arg)
{
    for (size_t i = 0; i < LOG_KEYS && l->pending > 0; i++) {
        log_limit_slot *s = &l->slots[i];
        if (s->suppressed && (all || now_ms - s->since_ms >= 1000))
            report_slot(l, s, now_ms, report, arg);
    }
}

bool log_limit_allow(log_limiter *l, uint64_t key, cpns_log_level level, const char *text,
                     int64_t now_ms, log_report_fn report, void *arg)
{
    if (!l->started) {
        l->started = true;
        l->total_tokens = LOG_TOTAL_BURST;
        l->total_last_ms = now_ms;
    }
    if (l->pending)
        log_limit_flush(l, now_ms, false, report, arg);
    log_limit_slot *s = slot_of(l, key);
    if (s->key != key) {
        /* Another message had this slot: its count goes out before it is reused. */
        report_slot(l, s, now_ms, report, arg);
        s->key = key;
        s->tokens = LOG_BURST;
        s->last_ms = now_ms;
    }
    refill(&s->tokens, &s->last_ms, now_ms, LOG_PER_S, LOG_BURST);
    refill(&l->total_tokens, &l->total_last_ms, now_ms, LOG_TOTAL_PER_S, LOG_TOTAL_BURST);
    if (s->tokens >= 1.0 && l->total_tokens >= 1.0) {
        s->tokens -= 1.0;
        l->total_tokens -= 1.0;
        report_slot(l, s, now_ms, report, arg);
        return true;
    }
    if (s->suppressed++ == 0) {
        l->pending++;
        s->since_ms = now_ms;
        s->level = level;
        snprintf(s->sample, sizeof s->sample, "%s", text);
    }
    return false;
}

uint64_t log_text_key(cpns_log_level level, const char *text)
{
    /*
     * Two lines of one message differ in their numbers (link, TransactionID,
     * KeyVersion) and quoted values: leave those out, and look at the first
     * 48 characters that remain (identifiers further on do not split a key).
     */
    uint64_t h = 14695981039346656037u ^ (uint64_t)(level + 1); /* FNV-1a */
    bool quoted = false;
    int n = 0;
    for (const char *p = text; *p && n < 48; p++) {
        if (*p == '\'')
            quoted = !quoted;
        if (quoted || (*p >= '0' && *p <= '9'))
            continue;
        h = (h ^ (uint8_t)*p) * 1099511628211u;
        n++;
    }
    return h ? h : 1;
}

static log_limiter limiter;
static bool flush_at_exit;

static void emit_report(void *arg, uint64_t count, cpns_log_level level, const char *sample,
                        int64_t for_ms)
{
    (void)arg;
    char text[LOG_SAMPLE + 128];
    snprintf(text, sizeof text, "... %llu similar lines suppressed in %.1f s (the first: \"%s\")",
             (unsigned long long)count, (double)for_ms / 1000.0, sample);
    emit(level, logcfg.entity, logcfg.id, NULL, NULL, 0, text);
}

static void flush_suppressed(void)
{
    log_limit_flush(&limiter, clock_mono_ms(), true, emit_report, NULL);
}

/* Whether a line may be written now; due reports are written first. */
static bool limit(uint64_t key, cpns_log_level level, const char *text)
{
    if (!flush_at_exit) {
        flush_at_exit = true;
        atexit(flush_suppressed); /* the counts of the last second are not lost */
    }
    return log_limit_allow(&limiter, key, level, text, clock_mono_ms(), emit_report, NULL);
}

/* One call site, one format string: its address is the key. */
static uint64_t format_key(cpns_log_level level, const char *fmt)
{
    return (uint64_t)(uintptr_t)fmt << 2 | (uint64_t)level;
}

void log_msg(cpns_log_level level, const char *SGID, const char *PNEID, uint64_t TransactionID,
             const char *fmt, ...)
{
    if (level > logcfg.level)
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!limit(format_key(level, fmt), level, text))
        return;
    emit(level, logcfg.entity, logcfg.id, SGID, PNEID, TransactionID, text);
}

void log_engine(void *arg, const cpns_log_event *ev)
{
    (void)arg;
    if (ev->level > logcfg.level)
        return;
    uint64_t key = ev->format ? format_key(ev->level, ev->format)
                              : log_text_key(ev->level, ev->text); /* another producer */
    if (!limit(key, ev->level, ev->text))
        return;
    emit(ev->level, ev->entity ? ev->entity : logcfg.entity, ev->id ? ev->id : logcfg.id, ev->SGID,
         ev->PNEID, ev->TransactionID, ev->text);
}

int keyfile_check_private(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return -1;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen, "%s: mode %04o lets group or others access a key (chmod 600 it)",
                 path, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}

int keyfile_read(const char *path, uint8_t key[CPNS_KEY_LEN], char *err, size_t errlen)
{
    if (keyfile_check_private(path, err, errlen) != 0)
        return -1;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[128];
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    size_t len = 0;
    int rv = cpns_b64_decode(line, n, key, CPNS_KEY_LEN, &len);
    cpns_wipe(line, sizeof line);
    if (rv != 0 || len != CPNS_KEY_LEN) {
        cpns_wipe(key, CPNS_KEY_LEN);
        snprintf(err, errlen, "%s: not the base64 of a 32-byte key", path);
        return -1;
    }
    return 0;
}

int keyfile_write(const char *path, const uint8_t key[CPNS_KEY_LEN], char *err, size_t errlen)
{
    char b64[CPNS_B64_LEN(CPNS_KEY_LEN) + 2];
    int n = cpns_b64_encode(key, CPNS_KEY_LEN, b64, sizeof b64 - 1);
    if (n < 0) {
        snprintf(err, errlen, "%s: cannot encode the key", path);
        return -1;
    }
    b64[n++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        cpns_wipe(b64, sizeof b64);
        return -1;
    }
    int ok = fchmod(fd, 0600) == 0 && write(fd, b64, (size_t)n) == n && fsync(fd) == 0;
    int saved = errno;
    cpns_wipe(b64, sizeof b64);
    if (close(fd) != 0)
        ok = 0;
    if (!ok) {
        unlink(path);
        snprintf(err, errlen, "%s: %s", path, strerror(saved));
        return -1;
    }
    return 0;
}

int addr_parse(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    int64_t p;
    if (parse_i64(colon + 1, 0, 65535, &p) != 0)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static struct {
    struct event *ev;
    void (*fn)(void *arg);
    void *arg;
} sighup;

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    sighup.fn(sighup.arg);
}

int daemon_sighup(struct event_base *base, void (*fn)(void *arg), void *arg)
{
    daemon_sighup_free();
    sighup.fn = fn;
    sighup.arg = arg;
    sighup.ev = evsignal_new(base, SIGHUP, on_sighup, NULL);
    if (!sighup.ev || evsignal_add(sighup.ev, NULL) != 0) {
        daemon_sighup_free();
        return -1;
    }
    return 0;
}

void daemon_sighup_free(void)
{
    if (sighup.ev)
        event_free(sighup.ev);
    sighup.ev = NULL;
}

int tls_ctx_adopt(SSL_CTX *live, SSL_CTX *fresh)
{
    X509 *cert = SSL_CTX_get0_certificate(fresh);
    EVP_PKEY *key = SSL_CTX_get0_privatekey(fresh);
    STACK_OF(X509) *chain = NULL;
    if (!cert || !key || SSL_CTX_get0_chain_certs(fresh, &chain) != 1)
        return -1;
    /* The old key is dropped when it does not match the new certificate: then the new one goes in.
     */
    if (SSL_CTX_use_certificate(live, cert) != 1 || SSL_CTX_use_PrivateKey(live, key) != 1 ||
        SSL_CTX_set1_chain(live, chain) != 1 || SSL_CTX_check_private_key(live) != 1)
        return -1;
    SSL_CTX_set1_cert_store(live, SSL_CTX_get_cert_store(fresh));
    return 0;
}

void tls_cert_fingerprint(SSL_CTX *ctx, char *out, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    snprintf(out, len, "?");
    if (!cert || X509_digest(cert, EVP_sha256(), md, &n) != 1)
        return;
    for (unsigned int i = 0; i < 8 && i < n && 2 * i + 2 < len; i++)
        snprintf(out + 2 * i, len - 2 * i, "%02x", md[i]);
}

#define FD_RESERVE 32
#define FD_MAX ((rlim_t)1 << 20)

size_t fd_budget(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > FD_MAX ? FD_MAX : rl.rlim_max;
        if (want > rl.rlim_cur) {
            rl.rlim_cur = want;
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
                return 0;
        }
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > FD_MAX)
        return FD_MAX - FD_RESERVE;
    return rl.rlim_cur > 2 * FD_RESERVE ? (size_t)rl.rlim_cur - FD_RESERVE
                                        : (size_t)rl.rlim_cur / 2;
}
