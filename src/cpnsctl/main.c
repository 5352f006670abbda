/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpnsctl: the operator's command line for cpns-server's admin API
 * (DESIGN.md sections 4 and 5). This file parses the global options, reads
 * the bearer token and hands over to the pne and sg commands (commands.c).
 */
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "daemon.h"
#include "options.h"

#define DEFAULT_SERVER "http://127.0.0.1:7462"
#define DEFAULT_TIMEOUT_S 10
#define TOKEN_MAX 512

static const char usage_text[] =
    "Usage: cpnsctl [OPTIONS] COMMAND ...\n"
    "\n"
    "Administers a CPNS Server through its admin API (HTTP/JSON).\n"
    "\n"
    "Options (before the command):\n"
    "  --server HOST:PORT|URL\n"
    "                      admin API of the server: HOST:PORT (as cpns-server's\n"
    "                      --admin) or an http:// URL (default " DEFAULT_SERVER ")\n"
    "  --token-file FILE   send the token on the file's first line as\n"
    "                      'Authorization: Bearer <token>' (the file must be mode 0600)\n"
    "  --json              print the server's JSON instead of tables (also after the command)\n"
    "  --timeout S         seconds to wait for each answer (default 10)\n"
    "  --help, --version\n"
    "\n"
    "Commands:\n"
    "  pne add PNEID [--key-out FILE]\n"
    "                      provision a PNE; the server generates its Entity User Key\n"
    "                      and returns it once: written to FILE (base64 and a newline,\n"
    "                      mode 0600, never overwriting) or else printed on stdout\n"
    "  pne add PNEID --key-file FILE\n"
    "                      (extension) provision a PNE with the existing key in FILE\n"
    "  pne set-key PNEID (--key-file FILE | --key-out FILE)\n"
    "                      (extension) re-provision a PNE with a new Entity User Key:\n"
    "                      the key in FILE, or one the server generates, written to\n"
    "                      FILE as for pne add; its members that failed by Return 2\n"
    "                      (the keys disagreed) are retried\n"
    "  pne list            the PNEs: whether they registered, whether they are\n"
    "                      reachable now (their GW is connected and routes to them),\n"
    "                      through which GW and PN\n"
    "  sg create SGID [PNEID...]\n"
    "                      create a Service Group; its Group Key goes to every member.\n"
    "                      With no PNEID the SG starts empty (state complete: nothing\n"
    "                      to distribute); members added with sg add get its key\n"
    "  sg show SGID        the SG's key version and state, and each member's delivery\n"
    "  sg list             every SG with its delivery counts (no member lists)\n"
    "  sg add SGID PNEID...     add members (they get the current key)\n"
    "  sg remove SGID PNEID...  remove members (the group is rekeyed)\n"
    "  sg rekey SGID       a new Group Key version for every member\n"
    "  sg delete SGID      delete the SG\n"
    "  sg wait SGID [--timeout S]\n"
    "                      wait until every member holds the current key (exit 0),\n"
    "                      or give up after S seconds (default 60, exit 1) naming at\n"
    "                      most 5 members still without it and how many more; on a\n"
    "                      terminal, progress (delivered/total, rate, time left) on stderr\n"
    "\n"
    "Exit status: 0 success, 1 the operation failed, 2 bad usage.\n";

int ctl_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cpnsctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'cpnsctl --help'.\n", stderr);
    va_end(ap);
    return CTL_USAGE;
}

int ctl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cpnsctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CTL_FAILED;
}

/*
 * The token is a secret like a key, so its file gets the same mode check.
 * Only visible ASCII is accepted: anything else could split the header.
 */
static int read_token(const char *path, char *token, size_t cap)
{
    char err[512];
    if (keyfile_check_private(path, err, sizeof err) != 0)
        return ctl_usage_error("--token-file %s", err);
    FILE *f = fopen(path, "r");
    if (!f)
        return ctl_usage_error("--token-file %s: cannot open it", path);
    int ok = fgets(token, (int)cap, f) != NULL;
    fclose(f);
    size_t n = ok ? strlen(token) : 0;
    while (n && (token[n - 1] == '\n' || token[n - 1] == '\r'))
        token[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (token[i] <= ' ' || token[i] > '~')
            ok = 0;
    if (!ok || n == 0) {
        cpns_wipe(token, cap);
        return ctl_usage_error("--token-file %s: the first line must hold the token", path);
    }
    return CTL_OK;
}

/*
 * Matches "--name VALUE" and "--name=VALUE" at argv[*i]; advances *i past
 * the value. 1 matched, 0 not this option, -1 value missing.
 */
static int option_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

int main(int argc, char **argv)
{
    const char *server = DEFAULT_SERVER;
    const char *token_file = NULL;
    const char *timeout = NULL;
    ctl c = {.timeout_s = DEFAULT_TIMEOUT_S};
    log_setup("cpnsctl", NULL, CPNS_LOG_WARN);
    /* a server that closes the connection mid-request is a clear error, not a silent 141 */
    signal(SIGPIPE, SIG_IGN);

    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        int m;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return CTL_OK;
        } else if (strcmp(a, "--version") == 0) {
            opt_print_version("cpnsctl");
            return CTL_OK;
        } else if (strcmp(a, "--json") == 0) {
            c.json = 1;
        } else if ((m = option_value(argc, argv, &i, "--server", &server)) != 0 ||
                   (m = option_value(argc, argv, &i, "--token-file", &token_file)) != 0 ||
                   (m = option_value(argc, argv, &i, "--timeout", &timeout)) != 0) {
            if (m < 0)
                return ctl_usage_error("%s needs a value", a);
        } else {
            return ctl_usage_error("unknown option %s", a);
        }
    }
    if (timeout) {
        int64_t v;
        if (parse_i64(timeout, 1, 3600, &v) != 0)
            return ctl_usage_error("--timeout %s: give whole seconds, 1 to 3600", timeout);
        c.timeout_s = (int)v;
    }
    if (i >= argc)
        return ctl_usage_error("no command given");

    char token[TOKEN_MAX];
    if (token_file) {
        int rv = read_token(token_file, token, sizeof token);
        if (rv != CTL_OK)
            return rv;
    }
    char err[512];
    c.http = ctl_http_new(server, token_file ? token : NULL, c.timeout_s, err, sizeof err);
    if (token_file)
        cpns_wipe(token, sizeof token);
    if (!c.http)
        return ctl_usage_error("%s", err);

    int rv;
    if (strcmp(argv[i], "pne") == 0)
        rv = cmd_pne(&c, argc - i, argv + i);
    else if (strcmp(argv[i], "sg") == 0)
        rv = cmd_sg(&c, argc - i, argv + i);
    else
        rv = ctl_usage_error("unknown command '%s'", argv[i]);
    ctl_http_free(c.http);
    return rv;
}
