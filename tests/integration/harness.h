/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The integration-test harness: real programs (cpns-server, cpns-gw,
 * cpns-pne, cpnsctl from CPNS_BIN_DIR) on loopback, driven from cmocka tests.
 *
 * Each test gets a harness in its setup: a fresh temporary directory, free
 * ports, processes started with their stderr in a log file of that directory.
 * The teardown kills what still runs and removes the directory, also after a
 * failed assertion; a test that did not reach h_passed() gets the tail of every
 * log (and of the cpnsctl transcript) printed to stderr first. Children also
 * die with the test process (PR_SET_PDEATHSIG), so a crash or a CTest timeout
 * leaves nothing behind. Set CPNS_KEEP_TMP=1 to keep the directory.
 *
 * The lower half (h_*) knows processes, ports and HTTP; the upper half
 * (cluster.c, cl_*) knows the CPNS programs and their command lines.
 */
#ifndef CPNS_IT_HARNESS_H
#define CPNS_IT_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#define H_MAX_PROCS 32
#define H_PATH_MAX 512

typedef struct h_proc {
    pid_t pid;  /* 0 once reaped */
    int status; /* wait status once reaped */
    char name[64];
    char log[H_PATH_MAX + 80];
    char prog[64];
    char **argv; /* kept for restarts */
} h_proc;

typedef struct harness {
    char dir[H_PATH_MAX];
    const char *bin_dir;
    const char *src_dir;
    h_proc procs[H_MAX_PROCS];
    size_t n_procs;
    bool passed;
    char *last_entry; /* of commands.log, to fold repeated polls */
    unsigned repeats;
    char **strings; /* from h_fmt, freed at teardown */
    size_t n_strings, cap_strings;
} harness;

/* What a finished command printed and how it ended. */
typedef struct h_out {
    int status; /* exit status, or 128 + signal, or -1 if it had to be killed */
    char *out;  /* stdout, NUL-terminated */
    char *err;  /* stderr, NUL-terminated */
} h_out;

/* cmocka fixtures: *state becomes a harness. */
int h_setup(void **state);
int h_teardown(void **state);

/* Marks the test as passed: the teardown then prints no logs. */
void h_passed(harness *h);

/*
 * Returns 77 (CTest's skip code for these tests) with a message when one of
 * the programs is not part of this source tree yet, else 0. Programs whose
 * source is there but whose binary is missing are a failure, not a skip.
 */
int h_programs_present(const char *const *progs);

/* A string owned by the harness (freed at teardown), printf-style. */
char *h_fmt(harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A path inside the temporary directory. */
char *h_path(harness *h, const char *name);

/* A loopback port that was free a moment ago. */
uint16_t h_free_port(void);

/* --- processes --- */

/*
 * Starts CPNS_BIN_DIR/prog with the NULL-terminated arguments; stdout and
 * stderr go to <dir>/<name>.log (appended, so a restart keeps the history).
 */
h_proc *h_start(harness *h, const char *name, const char *prog, ...) __attribute__((sentinel));
h_proc *h_startv(harness *h, const char *name, const char *prog, char *const *args);

/* Starts p again with the same arguments (after it exited). */
void h_restart(harness *h, h_proc *p);

/* True while p runs (reaps it when it has exited). */
bool h_running(h_proc *p);

/* SIGTERM, then waits up to timeout_ms; the exit status, 128 + signal, or -1 (killed). */
int h_stop(h_proc *p, int timeout_ms);

/* SIGKILL and reap: the crash of a test. */
void h_kill9(h_proc *p);

/* Waits for p to exit on its own; its status as h_stop, -1 after killing it at the timeout. */
int h_wait_exit(h_proc *p, int timeout_ms);

/*
 * Waits until 127.0.0.1:port accepts a connection; fails the test when p
 * (may be NULL) exits first or timeout_ms passes.
 */
void h_wait_port(harness *h, h_proc *p, uint16_t port, int timeout_ms);

/* Waits until GET path on 127.0.0.1:port answers 200; fails like h_wait_port. */
void h_wait_http_ok(harness *h, h_proc *p, uint16_t port, const char *path, int timeout_ms);

/*
 * Runs CPNS_BIN_DIR/prog (or an absolute path) to completion with stdin_data
 * (may be NULL) on its stdin and captures stdout and stderr; the command and
 * its output are appended to <dir>/commands.log. Killed after timeout_ms.
 * free the result with h_out_free.
 */
h_out h_runv(harness *h, const char *stdin_data, int timeout_ms, const char *prog,
             char *const *args);
h_out h_run(harness *h, const char *stdin_data, int timeout_ms, const char *prog, ...)
    __attribute__((sentinel));
void h_out_free(h_out *o);

/* Appends a line to the transcript (<dir>/commands.log), e.g. a raw HTTP exchange. */
void h_note(harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether file at path contains needle (a plain substring). */
bool h_file_contains(const char *path, const char *needle);

/* Mode bits (07777) of path, or -1. */
int h_file_mode(const char *path);

/* Writes data to path with mode. */
void h_write_file(const char *path, const char *data, int mode);

/* --- raw HTTP, for what cpnsctl cannot express --- */

/*
 * One HTTP/1.1 request to 127.0.0.1:port (Connection: close). extra_header
 * (may be NULL) is one "Name: value" line. Returns the status (0 when no
 * answer came) and the body in *body (NUL-terminated, free it; may be NULL).
 */
int h_http(uint16_t port, const char *method, const char *path, const char *extra_header,
           const char *body, char **resp_body);

#endif
