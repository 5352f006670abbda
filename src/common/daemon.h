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

/* Sets who logs ("server", "gw", "pne", "cpnsctl"), its identifier and the level. */
void log_setup(const char *entity, const char *id, cpns_log_level level);
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

/* --- options --- */

/* Parses a whole decimal number in [min, max]. 0 or -1. */
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
