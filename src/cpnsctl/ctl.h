/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What main.c (options) and commands.c (the pne and sg commands) share.
 * Exit statuses follow DESIGN.md section 4: 0 success, 1 the operation
 * failed (server error, unreachable server, sg wait timeout), 2 bad usage.
 */
#ifndef CPNSCTL_CTL_H
#define CPNSCTL_CTL_H

#include "http.h"

enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

typedef struct ctl {
    ctl_http *http;
    int json;      /* print the server's JSON instead of tables */
    int timeout_s; /* per request */
} ctl;

/* Prints "cpnsctl: <message>" and a hint to stderr; returns CTL_USAGE. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "cpnsctl: <message>" to stderr; returns CTL_FAILED. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* `cpnsctl pne ...` and `cpnsctl sg ...`; argv[0] is "pne" or "sg". */
int cmd_pne(ctl *c, int argc, char **argv);
int cmd_sg(ctl *c, int argc, char **argv);

#endif
