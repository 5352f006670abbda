/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for the program tests: run a built program (found through
 * CPNS_BIN_DIR) with some stdin and collect its exit status and output, run
 * a daemon in the background and watch its log, and play a fake peer on a
 * loopback socket (framed cpns/1 messages) so that the glue of cpns-gw and
 * cpns-pne is exercised over real sockets.
 */
#ifndef CPNS_PROGTEST_H
#define CPNS_PROGTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "support.h"

typedef struct prog_result {
    int status; /* exit status, or -1 when killed by a signal or the timeout */
    char *out;  /* stdout, NUL-terminated */
    size_t out_len;
    char *err; /* stderr, NUL-terminated */
} prog_result;

/* Runs argv (argv[0] is a program name in CPNS_BIN_DIR) with in as stdin, for up to 10 s. */
void prog_run(const char *const argv[], const void *in, size_t in_len, prog_result *r);
void prog_result_free(prog_result *r);

typedef struct prog_daemon {
    pid_t pid;
    char log_path[320];
} prog_daemon;

/* Starts argv in the background, its stderr going to a file. */
void prog_spawn(const char *const argv[], prog_daemon *d);
/* What the daemon logged so far (free it). */
char *prog_log(const prog_daemon *d);
/* Waits until the log holds needle `count` times; 1, or 0 on timeout. */
int prog_wait_log(const prog_daemon *d, const char *needle, int count, int timeout_ms);
/* Sends sig and returns the exit status (-1 if it did not exit within 5 s, then killed);
 * the log is removed. */
int prog_stop(prog_daemon *d, int sig);
/* The same for a daemon that exits by itself: no signal; killed after timeout_ms (-1). */
int prog_wait_exit(prog_daemon *d, int timeout_ms);

/* A fresh private temporary directory (0700); the path lives in buf. */
void prog_tmpdir(char *buf, size_t len);
/* Writes a file with the given mode. */
void prog_write_file(const char *path, const void *data, size_t len, unsigned mode);
/* Writes an EUK key file (base64 and a newline). */
void prog_write_key(const char *path, const uint8_t key[CPNS_KEY_LEN], unsigned mode);

/* Loopback sockets. A listener on 127.0.0.1 with a free port. */
int tcp_listen_any(uint16_t *port);
/* A port nothing listens on (bound once, then closed). */
uint16_t tcp_free_port(void);
/* Accepts one connection within timeout_ms; -1 on timeout. */
int tcp_accept(int lfd, int timeout_ms);
/* Connects to 127.0.0.1:port, retrying for up to timeout_ms. -1 on failure. */
int tcp_connect(uint16_t port, int timeout_ms);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t mono_ms(void);
/* How long until the peer closes fd (EOF or reset), or -1 if it is still open after timeout_ms. */
int closed_within(int fd, int timeout_ms);

/* One frame out / in. Receiving: 0, or -1 on timeout, EOF or a bad length. */
int frame_send(int fd, const uint8_t *data, size_t len);
int frame_recv(int fd, uint8_t *buf, size_t cap, size_t *len, int timeout_ms);
/* Encodes and sends m; receives and decodes one message (0, or -1). */
int msg_send(int fd, const cpns_msg *m);
int msg_recv(int fd, cpns_msg *m, int timeout_ms);

#endif
