/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The command line and the configuration file from one table (options.h).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpns/cpns.h"
#include "daemon.h"
#include "options.h"

/* A value read from a file: it must live as long as the options struct that points to it. */
struct opt_string {
    opt_string *next;
    char s[];
};

/* The options every table has, after the daemon's own. */
enum { X_CONFIG, X_CHECK, X_HELP, X_VERSION, X_COUNT };
static const char *const builtin_names[X_COUNT] = {"config", "check-config", "help", "version"};

#define LINE_MAX_LEN 4096

int opt_fail(opt_parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    return -1;
}

void opt_print_error(const opt_parser *p)
{
    fprintf(stderr, "%s: %s\nTry '%s --help'.\n", p->prog, p->err, p->prog);
}

int opt_parse_level(const char *value, void *field)
{
    return log_parse_level(value, field);
}

void opt_print_version(const char *prog)
{
    printf("%s %s (libcpns %s, CPNS %s), Apache-2.0\n", prog, CPNS_LIB_VERSION, cpns_version(),
           CPNS_VERSION);
}

static const opt_spec *find_spec(const opt_parser *p, const char *name)
{
    for (size_t i = 0; i < p->n_specs; i++)
        if (strcmp(p->specs[i].name, name) == 0)
            return &p->specs[i];
    return NULL;
}

opt_source opt_src(const opt_parser *p, const char *name)
{
    const opt_spec *s = find_spec(p, name);
    return s ? (opt_source)p->src[s - p->specs] : OPT_UNSET;
}

static char *keep(opt_parser *p, const char *s)
{
    size_t len = strlen(s);
    opt_string *k = malloc(sizeof *k + len + 1);
    if (!k)
        return NULL;
    memcpy(k->s, s, len + 1);
    k->next = p->strings;
    p->strings = k;
    return k->s;
}

void opt_free(opt_parser *p)
{
    while (p->strings) {
        opt_string *k = p->strings;
        p->strings = k->next;
        free(k);
    }
}

/* Stores n in an integer field of 1, 2, 4 or 8 bytes (signed or not: n is in range). */
static void store_int(void *field, size_t size, int64_t n)
{
    switch (size) {
    case 1: {
        int8_t v = (int8_t)n;
        memcpy(field, &v, 1);
        break;
    }
    case 2: {
        int16_t v = (int16_t)n;
        memcpy(field, &v, 2);
        break;
    }
    case 4: {
        int32_t v = (int32_t)n;
        memcpy(field, &v, 4);
        break;
    }
    default:
        memcpy(field, &n, sizeof n);
        break;
    }
}

/*
 * Sets one option from value (NULL: a flag on the command line). where is ""
 * on the command line and "FILE:LINE: " in a file, which names the option
 * without the dashes. first_from_argv: the first command-line value of a list
 * (it replaces the file's entries). 0 or -1.
 */
static int set_value(opt_parser *p, const opt_spec *s, void *base, const char *value,
                     const char *where, bool first_from_argv)
{
    const char *dashes = *where ? "" : "--";
    void *field = (char *)base + s->off;
    switch (s->kind) {
    case OPT_STRING:
        *(const char **)field = value;
        return 0;
    case OPT_INT: {
        int64_t n;
        if (parse_i64(value, s->min, s->max, &n) != 0) {
            char unit[64] = "";
            if (s->unit)
                snprintf(unit, sizeof unit, "of %s ", s->unit);
            return opt_fail(p, "%s%s%s '%s': not a number %sof %lld-%lld", where, dashes, s->name,
                            value, unit, (long long)s->min, (long long)s->max);
        }
        store_int(field, s->size, n * (s->scale ? s->scale : 1));
        return 0;
    }
    case OPT_FLAG:
        if (!value || !*value || strcmp(value, "true") == 0)
            *(bool *)field = true;
        else if (strcmp(value, "false") == 0)
            *(bool *)field = false;
        else
            return opt_fail(p, "%s%s%s '%s': not true or false", where, dashes, s->name, value);
        return 0;
    case OPT_LIST: {
        size_t *count = (size_t *)((char *)base + s->count_off);
        if (first_from_argv)
            *count = 0;
        if (*count == s->cap)
            return opt_fail(p, "%s%s%s: more than %zu %s", where, dashes, s->name, s->cap,
                            s->expect ? s->expect : "values");
        ((const char **)field)[(*count)++] = value;
        return 0;
    }
    case OPT_PARSE:
        if (s->parse(value, field) != 0)
            return opt_fail(p, "%s%s%s '%s': not %s", where, dashes, s->name, value, s->expect);
        return 0;
    }
    return -1;
}

/* A file line without its comment and surrounding blanks (in place). */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int parse_file(opt_parser *p, void *base)
{
    const char *path = p->config;
    FILE *f = fopen(path, "r");
    if (!f)
        return opt_fail(p, "--config %s: %s", path, strerror(errno));
    int seen[OPT_MAX_SPECS] = {0};
    char line[LINE_MAX_LEN + 2];
    int lineno = 0, rv = 0;
    while (rv == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char where[600];
        snprintf(where, sizeof where, "%s:%d: ", path, lineno);
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rv = opt_fail(p, "%sa line longer than %d characters", where, LINE_MAX_LEN);
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        const char *value = NULL;
        if (eq) {
            *eq = '\0';
            value = trim(eq + 1);
        }
        char *name = trim(s);
        if (strncmp(name, "--", 2) == 0)
            name += 2; /* a pasted command-line option */
        const opt_spec *spec = find_spec(p, name);
        if (!spec) {
            bool builtin = false;
            for (int i = 0; i < X_COUNT; i++)
                builtin |= strcmp(name, builtin_names[i]) == 0;
            rv = builtin ? opt_fail(p, "%s'%s' is a command-line option only", where, name)
                         : opt_fail(p, "%sunknown option '%s'", where, name);
            break;
        }
        if (spec->flags & OPT_CLI_ONLY) {
            rv = opt_fail(p, "%s'%s' is a command-line option only", where, name);
            break;
        }
        size_t i = (size_t)(spec - p->specs);
        if (seen[i] && spec->kind != OPT_LIST) {
            rv = opt_fail(p, "%s'%s' given twice (line %d)", where, name, seen[i]);
            break;
        }
        seen[i] = lineno;
        if (spec->kind != OPT_FLAG && (!value || !*value)) {
            rv = opt_fail(p, "%s'%s' needs a value (%s = VALUE)", where, name, name);
            break;
        }
        if (value && spec->kind != OPT_FLAG && !(value = keep(p, value))) {
            rv = opt_fail(p, "%sout of memory", where);
            break;
        }
        rv = set_value(p, spec, base, value, where, false);
        p->src[i] = OPT_FROM_FILE;
    }
    if (rv == 0 && ferror(f))
        rv = opt_fail(p, "--config %s: %s", path, strerror(errno));
    fclose(f);
    return rv;
}

int opt_parse(opt_parser *p, int argc, char **argv, void *base)
{
    size_t n = p->n_specs;
    if (n + X_COUNT > OPT_MAX_SPECS)
        return opt_fail(p, "too many options (OPT_MAX_SPECS)");
    struct option longopts[OPT_MAX_SPECS + 1];
    for (size_t i = 0; i < n; i++)
        longopts[i] = (struct option){
            p->specs[i].name, p->specs[i].kind == OPT_FLAG ? no_argument : required_argument, NULL,
            (int)i + 1};
    for (int i = 0; i < X_COUNT; i++)
        longopts[n + (size_t)i] =
            (struct option){builtin_names[i], i == X_CONFIG ? required_argument : no_argument, NULL,
                            (int)(n + (size_t)i) + 1};
    longopts[n + X_COUNT] = (struct option){NULL, 0, NULL, 0};

    /* The command line first, only recorded: the file's values go in before it. */
    const char *vals[OPT_MAX_SPECS * 4];
    int idx[OPT_MAX_SPECS * 4];
    size_t nvals = 0;
    bool seen[OPT_MAX_SPECS] = {false};
    memset(p->src, 0, sizeof p->src);
    p->config = NULL;
    p->check_only = false;
    p->err[0] = '\0';
    opterr = 0;
    optind = 0; /* glibc: start over (a reload parses the same argv again) */
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c == '?')
            return opt_fail(p, "unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            return opt_fail(p, "option '%s' needs a value", argv[optind - 1]);
        size_t i = (size_t)c - 1;
        bool list = i < n && p->specs[i].kind == OPT_LIST;
        if (seen[i] && !list)
            return opt_fail(p, "option '%s' given twice", argv[optind - 1]);
        seen[i] = true;
        if (i >= n) {
            switch ((int)(i - n)) {
            case X_CONFIG:
                p->config = optarg;
                break;
            case X_CHECK:
                p->check_only = true;
                break;
            case X_HELP:
                return OPT_HELP;
            case X_VERSION:
                return OPT_VERSION;
            }
            continue;
        }
        if (nvals == sizeof vals / sizeof vals[0])
            return opt_fail(p, "too many options");
        idx[nvals] = (int)i;
        vals[nvals++] = optarg;
    }
    if (optind < argc)
        return opt_fail(p, "unexpected argument '%s'", argv[optind]);
    if (p->config && parse_file(p, base) != 0)
        return -1;
    bool replaced[OPT_MAX_SPECS] = {false};
    for (size_t k = 0; k < nvals; k++) {
        size_t i = (size_t)idx[k];
        if (set_value(p, &p->specs[i], base, vals[k], "", !replaced[i]) != 0)
            return -1;
        replaced[i] = true;
        p->src[i] = OPT_FROM_ARGV;
    }
    return 0;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_value(const opt_spec *s, const void *a, const void *b)
{
    const char *fa = (const char *)a + s->off, *fb = (const char *)b + s->off;
    switch (s->kind) {
    case OPT_STRING:
        return str_eq(*(const char *const *)fa, *(const char *const *)fb);
    case OPT_FLAG:
        return *(const bool *)fa == *(const bool *)fb;
    case OPT_INT:
    case OPT_PARSE:
        return memcmp(fa, fb, s->size) == 0;
    case OPT_LIST: {
        size_t na = *(const size_t *)((const char *)a + s->count_off);
        size_t nb = *(const size_t *)((const char *)b + s->count_off);
        if (na != nb)
            return false;
        for (size_t i = 0; i < na; i++)
            if (!str_eq(((const char *const *)fa)[i], ((const char *const *)fb)[i]))
                return false;
        return true;
    }
    }
    return false;
}

static void append(char *buf, size_t len, const char *name)
{
    size_t used = strlen(buf);
    if (used < len)
        snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
}

void opt_changes(const opt_parser *p, const void *a, const void *b, char *live, size_t live_len,
                 char *restart, size_t restart_len)
{
    *live = *restart = '\0';
    for (size_t i = 0; i < p->n_specs; i++) {
        const opt_spec *s = &p->specs[i];
        if (same_value(s, a, b))
            continue;
        if (s->flags & OPT_LIVE)
            append(live, live_len, s->name);
        else
            append(restart, restart_len, s->name);
    }
}

static size_t field_size(const opt_spec *s)
{
    switch (s->kind) {
    case OPT_STRING:
        return sizeof(const char *);
    case OPT_FLAG:
        return sizeof(bool);
    case OPT_INT:
    case OPT_PARSE:
        return s->size;
    case OPT_LIST:
        break;
    }
    return 0; /* lists are not live */
}

void opt_reload_run(const opt_reload *r)
{
    const char *from = r->p->config ? r->p->config : "the command line (no --config)";
    void *fresh = calloc(1, r->size);
    if (!fresh) {
        log_error("SIGHUP: out of memory: the configuration was not reloaded");
        return;
    }
    if (r->load(r->p, r->argc, r->argv, fresh) != 0) {
        log_error("SIGHUP: %s; still running with the previous configuration", r->p->err);
        if (r->release)
            r->release(fresh);
        free(fresh);
        return;
    }
    from = r->p->config ? r->p->config : "the command line (no --config)";
    char live[512], restart[512], done[512] = "", err[600] = "";
    opt_changes(r->p, r->parsed, fresh, live, sizeof live, restart, sizeof restart);
    if (r->apply(r->arg, fresh, done, sizeof done, err, sizeof err) != 0) {
        log_error("SIGHUP: %s; still running with the previous configuration", err);
        if (r->release)
            r->release(fresh);
        free(fresh);
        return;
    }
    for (size_t i = 0; i < r->p->n_specs; i++) {
        const opt_spec *s = &r->p->specs[i];
        size_t n = field_size(s);
        if (!(s->flags & OPT_LIVE) || n == 0)
            continue;
        memcpy((char *)r->running + s->off, (char *)fresh + s->off, n);
        memcpy((char *)r->parsed + s->off, (char *)fresh + s->off, n);
    }
    log_info("SIGHUP: reloaded %s: %s%s%s%s%s%s (the log is stderr: nothing to reopen)", from,
             *live ? "changed " : "no live option changed", live, *done ? "; " : "", done,
             *restart ? "; changed but kept until a restart: " : "", restart);
    if (r->release)
        r->release(fresh);
    free(fresh);
}
