/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One option table per daemon drives both its command line and its
 * configuration file (issue #13 item 4). Each entry names a long option,
 * which is also its key in the file, and where its value goes: a field of
 * the daemon's options struct, given as an offset so that the same table
 * fills a fresh struct when SIGHUP re-reads the file.
 *
 * The file (--config FILE): `name = value` one per line, `#` starts a
 * comment line, blank lines are ignored; a flag is `name` or
 * `name = true|false`; a repeatable option (OPT_LIST) may appear more than
 * once. Unknown names, a second value of a non-repeatable option and bad
 * values are errors naming FILE:LINE. The command line overrides the file:
 * its value replaces the file's (a list given on the command line replaces
 * the file's list).
 *
 * Every table gets --config FILE, --check-config (parse and validate, then
 * exit 0 without opening a file or a socket), --help and --version, which
 * cannot be set in a file.
 *
 * To add an option: one OPT_* line in the daemon's table (and its line in
 * the hand-written --help, the man page and packaging/etc/<daemon>.conf);
 * checks that involve several options go in the daemon's validate function.
 */
#ifndef CPNS_OPTIONS_H
#define CPNS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum opt_kind {
    OPT_STRING, /* const char *: the value as given */
    OPT_INT,    /* an integer field of any width: a whole number in [min, max], times scale */
    OPT_FLAG,   /* bool: no value on the command line; name or name = true|false in a file */
    OPT_LIST,   /* const char *[cap] and a size_t count: repeatable, in order */
    OPT_PARSE,  /* parse(value, field) converts; on failure "'value': not <expect>" */
} opt_kind;

/* How the option may change while running (SIGHUP): the daemon applies OPT_LIVE ones. */
#define OPT_LIVE 1u
/* Command line only: not a configuration file key (--sg of cpns-pne's subcommands). */
#define OPT_CLI_ONLY 2u

typedef struct opt_spec {
    const char *name; /* the long option without "--" and the file's key */
    opt_kind kind;
    size_t off;  /* offsetof the field in the options struct */
    size_t size; /* sizeof the field (OPT_INT, OPT_PARSE) */
    int64_t min, max;
    int64_t scale;      /* OPT_INT: stored as value * scale (0: 1) */
    const char *unit;   /* OPT_INT: "seconds" -> "not a number of seconds of 1-60" */
    const char *expect; /* OPT_PARSE: what a good value is; OPT_LIST: what the entries are */
    int (*parse)(const char *value, void *field); /* OPT_PARSE: 0 or -1 */
    size_t count_off, cap;                        /* OPT_LIST: the count field and the capacity */
    unsigned flags;                               /* OPT_LIVE, OPT_CLI_ONLY */
} opt_spec;

#define OPT_STR(T, n, field, fl)                                                                   \
    {                                                                                              \
        .name = n, .kind = OPT_STRING, .off = offsetof(T, field), .flags = fl                      \
    }
#define OPT_NUM(T, n, field, lo, hi, sc, u, fl)                                                    \
    {                                                                                              \
        .name = n, .kind = OPT_INT, .off = offsetof(T, field), .size = sizeof(((T *)0)->field),    \
        .min = lo, .max = hi, .scale = sc, .unit = u, .flags = fl                                  \
    }
#define OPT_BOOL(T, n, field, fl)                                                                  \
    {                                                                                              \
        .name = n, .kind = OPT_FLAG, .off = offsetof(T, field), .flags = fl                        \
    }
#define OPT_ARRAY(T, n, field, count, what, fl)                                                    \
    {                                                                                              \
        .name = n, .kind = OPT_LIST, .off = offsetof(T, field), .count_off = offsetof(T, count),   \
        .cap = sizeof(((T *)0)->field) / sizeof(((T *)0)->field[0]), .expect = what, .flags = fl   \
    }
#define OPT_FN(T, n, field, fn, what, fl)                                                          \
    {                                                                                              \
        .name = n, .kind = OPT_PARSE, .off = offsetof(T, field), .size = sizeof(((T *)0)->field),  \
        .parse = fn, .expect = what, .flags = fl                                                   \
    }

#define OPT_MAX_SPECS 64
#define OPT_ERR_LEN 1024

/* Where an option's value came from. */
typedef enum opt_source { OPT_UNSET = 0, OPT_FROM_FILE, OPT_FROM_ARGV } opt_source;

typedef struct opt_string opt_string;

typedef struct opt_parser {
    const char *prog; /* "cpns-server": messages and --version */
    const opt_spec *specs;
    size_t n_specs;
    /* Set by opt_parse. */
    const char *config;         /* --config FILE, or NULL */
    bool check_only;            /* --check-config */
    uint8_t src[OPT_MAX_SPECS]; /* per spec: an opt_source */
    char err[OPT_ERR_LEN];      /* what is wrong, after -1 */
    opt_string *strings;        /* the file's values: freed by opt_free */
} opt_parser;

/* opt_parse results besides 0 (parsed) and -1 (p->err says why). */
#define OPT_HELP 1
#define OPT_VERSION 2

/*
 * Parses argv[1..argc-1] (getopt_long) and the --config file into the struct
 * at base, which holds the defaults: the file's values first, then the
 * command line's. 0, OPT_HELP, OPT_VERSION (the caller prints), or -1.
 */
int opt_parse(opt_parser *p, int argc, char **argv, void *base);

/* The source of the named option's value (OPT_UNSET for an unknown name). */
opt_source opt_src(const opt_parser *p, const char *name);

/* Formats what is wrong into p->err (for the daemon's validate function); -1. */
int opt_fail(opt_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An OPT_PARSE function for --log-level (a cpns_log_level field). */
int opt_parse_level(const char *value, void *field);
#define OPT_LEVEL_EXPECT "error, warn, info or debug"

/* Prints p->err as a usage error: "prog: <err>\nTry 'prog --help'." */
void opt_print_error(const opt_parser *p);

/*
 * "prog 0.1.0 (libcpns 0.1.0, CPNS 1.1), Apache-2.0" on stdout: the program's
 * version, the library's at run time (cpns_version()), the protocol's and
 * the licence.
 */
void opt_print_version(const char *prog);

/*
 * After a reload: the names of the options whose value differs between the
 * structs a and b, split into those with OPT_LIVE (live) and the others
 * (restart), comma-separated ("" when none).
 */
void opt_changes(const opt_parser *p, const void *a, const void *b, char *live, size_t live_len,
                 char *restart, size_t restart_len);

/*
 * SIGHUP (daemon_sighup): the command line and the file are parsed again into
 * a fresh struct by load (the daemon's defaults, opt_parse, its validation).
 * A configuration that does not load is refused with an error line and the
 * daemon keeps running on the one it has. Otherwise apply() takes the OPT_LIVE
 * values it needs from fresh and re-reads what it re-reads at every reload
 * (TLS files), saying what it did in done; it may refuse (-1, err). Then the
 * OPT_LIVE fields are copied into running and parsed, and one line is logged:
 * what was applied, and the options that changed but wait for a restart.
 */
typedef struct opt_reload {
    opt_parser *p;
    int argc;
    char **argv;
    size_t size;   /* sizeof the options struct */
    void *running; /* the options in use */
    void *parsed;  /* as parsed (running may be adjusted at start, e.g. capped): compared */
    int (*load)(opt_parser *p, int argc, char **argv, void *o);
    int (*apply)(void *arg, const void *fresh, char *done, size_t done_len, char *err,
                 size_t err_len);
    void (*release)(void *o); /* frees what load allocated in a struct (NULL: nothing) */
    void *arg;
} opt_reload;

void opt_reload_run(const opt_reload *r);

/* Frees the strings read from files. */
void opt_free(opt_parser *p);

#endif
