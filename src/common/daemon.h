/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the four programs share: logging to stderr (one line per event),
 * key files (base64 of 32 bytes, refused when group or others can read them),
 * HOST:PORT parsing and option-error reporting. The network layer is net.h.
 */
#ifndef CPNS_DAEMON_H
#define CPNS_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpns/cpns.h"

#define EXIT_USAGE 2 /* bad option or file: the contract of DESIGN.md section 4 */

/* --- logging --- */

/*
 * Sets who logs ("server", "gw", "pne", "cpnsctl"), its identifier and the
 * level. Lines go to stderr as "2026-01-02T03:04:05.678Z INFO  server: text";
 * when stderr is journald's stream (log_stderr_is_journal), as
 * "<6>INFO  server: text" instead: the syslog priority (<3> error, <4> warn,
 * <6> info, <7> debug) and no timestamp (the journal keeps its own).
 */
void log_setup(const char *entity, const char *id, cpns_log_level level);
/* Changes the level (SIGHUP); the current one. */
void log_set_level(cpns_log_level level);
cpns_log_level log_get_level(void);
/* Whether JOURNAL_STREAM names stderr's device and inode (systemd.exec(5)). */
bool log_stderr_is_journal(void);
/* Parses "error", "warn", "info", "debug". 0 or -1. */
int log_parse_level(const char *s, cpns_log_level *out);
void log_msg(cpns_log_level level, const char *SGID, const char *PNEID, uint64_t TransactionID,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define log_error(...) log_msg(CPNS_LOG_ERROR, NULL, NULL, 0, __VA_ARGS__)
#define log_warn(...) log_msg(CPNS_LOG_WARN, NULL, NULL, 0, __VA_ARGS__)
#define log_info(...) log_msg(CPNS_LOG_INFO, NULL, NULL, 0, __VA_ARGS__)
#define log_debug(...) log_msg(CPNS_LOG_DEBUG, NULL, NULL, 0, __VA_ARGS__)
/* A cpns_log_fn for the engines' configs. */
void log_engine(void *arg, const cpns_log_event *ev);

/*
 * Repeated lines are rate-limited (#10.6): a flood of bogus frames must not
 * turn into a flood of log lines. Each message has a key (log_msg: its format
 * string; log_engine: the shape of its text, digits and quoted parts left
 * out) with a bucket of LOG_BURST lines refilled at LOG_PER_S lines a second,
 * and all keys share one of LOG_TOTAL_BURST / LOG_TOTAL_PER_S (against many
 * distinct messages). A line over its budget is counted, not written; the
 * count is written ("N similar lines suppressed ...") once its key may write
 * again, or on the next line logged a second or more after the first
 * suppression, or at exit: nothing is lost without a trace.
 */
#define LOG_BURST 100
#define LOG_PER_S 10
#define LOG_TOTAL_BURST 1000
#define LOG_TOTAL_PER_S 200
#define LOG_KEYS 256
#define LOG_SAMPLE 120

typedef struct log_limit_slot {
    uint64_t key; /* 0: unused */
    double tokens;
    int64_t last_ms;
    uint64_t suppressed;
    int64_t since_ms; /* the first suppression not yet reported */
    cpns_log_level level;
    char sample[LOG_SAMPLE]; /* that line's text, for the report */
} log_limit_slot;

typedef struct log_limiter {
    log_limit_slot slots[LOG_KEYS];
    size_t pending; /* slots with suppressed > 0 */
    double total_tokens;
    int64_t total_last_ms;
    bool started;
} log_limiter;

/* A report of suppressed lines: how many, and the first one's level and text. */
typedef void (*log_report_fn)(void *arg, uint64_t count, cpns_log_level level, const char *sample,
                              int64_t for_ms);

/*
 * The limiter as a pure function of its state and now_ms (tests inject the
 * clock): true when the line (key non-zero) may be written. Due reports go to
 * report first, in the order they must appear before the line.
 */
bool log_limit_allow(log_limiter *l, uint64_t key, cpns_log_level level, const char *text,
                     int64_t now_ms, log_report_fn report, void *arg);
/* Reports every pending count (all) or those a second old or more. */
void log_limit_flush(log_limiter *l, int64_t now_ms, bool all, log_report_fn report, void *arg);
/* The key of an engine's message text (never 0). */
uint64_t log_text_key(cpns_log_level level, const char *text);

/* --- key files --- */

/*
 * Checks that path is a regular file that neither group nor others can
 * access. 0, or -1 with a message in err.
 */
int keyfile_check_private(const char *path, char *err, size_t errlen);

/* Reads a key file: base64 of 32 bytes and a newline, mode 0600. 0 or -1 with err. */
int keyfile_read(const char *path, uint8_t key[CPNS_KEY_LEN], char *err, size_t errlen);

/* Creates a key file (0600, refusing to overwrite) holding key. 0 or -1 with err. */
int keyfile_write(const char *path, const uint8_t key[CPNS_KEY_LEN], char *err, size_t errlen);

/* --- addresses --- */

/*
 * Splits "HOST:PORT" or "[V6]:PORT" into host (NUL-terminated) and port.
 * 0, or -1 if it is not of that form or the port is not 0..65535 (port 0
 * means "any free port" to a listener; connecting to it fails).
 */
int addr_parse(const char *s, char *host, size_t hostlen, uint16_t *port);

/* --- file descriptors --- */

/*
 * Every connection costs a file descriptor, and an accept() that fails for
 * want of one leaves the connection queued, so libevent's listener retries
 * (and logs) on every loop turn: a flood of connections would make a daemon
 * spin. So the soft limit on open files is raised to the hard one (at most
 * 2^20), and the connection budget returned is kept 32 below it for the
 * listeners, the loop, the store files and the log. 0 when the limit cannot
 * be read.
 */
size_t fd_budget(void);

/* --- SIGHUP --- */

struct event_base;
typedef struct ssl_ctx_st SSL_CTX;

/*
 * SIGHUP would kill the daemon (exit 129): from now on it calls fn(arg) in
 * the loop instead, never more than once per loop turn. 0 or -1.
 * daemon_sighup_free() removes the event (before the base is freed).
 */
int daemon_sighup(struct event_base *base, void (*fn)(void *arg), void *arg);
void daemon_sighup_free(void);

/*
 * TLS rotation: gives live the certificate (with its chain), the private key
 * and the CA store of fresh, a context built from the files by net.h. Every
 * TLS session is made from its context when it starts (SSL_new copies the
 * certificate and key), so new connections use the new files and open ones
 * keep theirs. 0 or -1.
 */
int tls_ctx_adopt(SSL_CTX *live, SSL_CTX *fresh);
/* The first 8 bytes of the SHA-256 of ctx's certificate in hex ("?" without one). */
void tls_cert_fingerprint(SSL_CTX *ctx, char *out, size_t len);

/* --- options --- */

/* Parses a whole decimal number in [min, max]. 0 or -1. */
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
