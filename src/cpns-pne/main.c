/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-pne: the PNE daemon (CPNS 7.8.6.1) as thin glue around the PNE engine
 * (cpns/pne.h), plus the offline subcommands of commands.c.
 *
 * The daemon reads its Entity User Key, opens its secure storage (the file
 * keystore), dials its GW over plain TCP (the Group Key is protected end to
 * end by the EUK) and moves frames between the socket and the engine: after
 * every event it drains cpns_pne_pop() and re-arms its one timer from
 * cpns_pne_get_expiry(). A connection that fails or drops, or a registration
 * the server refuses, is retried with capped exponential backoff, reset once
 * the PNE is registered: the dialer cpns-gw uses for its server
 * (src/common/dialer.c).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "backoff.h"
#include "cli.h"
#include "dialer.h"
#include "net.h"
#include "notify.h"
#include "options.h"

#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 30000
#define CONNECT_TIMEOUT_MS 10000
/* A GW that does not read: past this much queued output the connection is dropped. */
#define PENDING_MAX (1u << 20)

typedef struct pne_daemon {
    pne_options opt;
    struct event_base *base;
    cpns_keystore *ks;
    cpns_pne *pne;
    dialer *gw; /* the link to the GW (dialer.h) */
    struct event *expiry_timer;
    struct event *sigterm;
    struct event *sigint;
    cpns_pne_state last_state;
} pne_daemon;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: cpns-pne --id PNEID --gw HOST:PORT --key-file FILE --store DIR\n"
            "                [--log-level LEVEL] [--config FILE] [--check-config]\n"
            "       cpns-pne keys --store DIR --key-file FILE\n"
            "       cpns-pne seal --store DIR --key-file FILE --sg SGID  < plaintext\n"
            "       cpns-pne open --store DIR --key-file FILE --sg SGID  < group message\n"
            "       cpns-pne ... --pkcs11-module PATH --token-label LABEL --pin-file FILE\n"
            "       cpns-pne --help | --version\n"
            "\n"
            "A PNE of CPNS 7.8.6: registers through its PN GW, receives Group Keys\n"
            "encrypted with its Entity User Key and keeps them in its key store.\n"
            "\n"
            "  --id PNEID          this PNE's identifier\n"
            "  --gw HOST:PORT      its PN GW (the GW's usual port is 7461)\n"
            "  --key-file FILE     its Entity User Key (base64 of 32 bytes, mode 0600)\n"
            "  --store DIR         its key store (created 0700 if missing)\n"
            "  --sg SGID           the Service Group (seal, open)\n"
            "  --log-level LEVEL   error, warn, info (default) or debug\n"
            "  --config FILE       read options from FILE: 'name = value' lines with the\n"
            "                      names of the long options above but --sg ('#'\n"
            "                      comments); the command line overrides it. The\n"
            "                      commands take --store and --key-file from it too.\n"
            "                      SIGHUP re-reads it and applies --log-level\n"
            "  --check-config      check the options and the --config file, then exit\n"
            "                      (0: valid, 2: not; no file but FILE is opened)\n"
            "  --pkcs11-module PATH  seal the key store and the EUK with a key in a PKCS#11\n"
            "                      token (e.g. /usr/lib/softhsm/libsofthsm2.so); --key-file is\n"
            "                      then needed only at the store's first start\n"
            "  --token-label LABEL the token's label (with --pkcs11-module)\n"
            "  --pin-file FILE     its user PIN, one line, mode 0600 (with --pkcs11-module)\n"
            "\n"
            "  keys   lists the stored Group Keys: SGID, KeyVersion and fingerprint of the\n"
            "         current and the previous key (never a key)\n"
            "  seal   seals stdin (at most %u bytes) with the current Group Key of SGID and\n"
            "         prints the base64 group message\n"
            "  open   opens a base64 group message from stdin with the stored key of its\n"
            "         KeyVersion (current or previous) and prints the plaintext\n",
            PNE_SEAL_MAX);
}

static const char *const mode_names[] = {"", "keys", "seal", "open"};

#define T pne_options
/* The command line and the configuration file (options.h). */
static const opt_spec pne_option_table[] = {
    OPT_STR(T, "id", PNEID, 0),
    OPT_STR(T, "gw", gw, 0),
    OPT_STR(T, "key-file", key_file, 0),
    OPT_STR(T, "store", store, 0),
    OPT_STR(T, "sg", SGID, OPT_CLI_ONLY),
    OPT_STR(T, "pkcs11-module", pkcs11_module, 0),
    OPT_STR(T, "token-label", token_label, 0),
    OPT_STR(T, "pin-file", pin_file, 0),
    OPT_FN(T, "log-level", log_level, opt_parse_level, OPT_LEVEL_EXPECT, OPT_LIVE),
};
#undef T

/*
 * The checks that involve several options or the subcommand. A subcommand
 * given a --config meant for the daemon takes its --store and --key-file
 * and leaves its --id and --gw alone; given on the command line they are
 * refused.
 */
static int validate(opt_parser *p, pne_options *o)
{
    bool daemon = o->mode == PNE_MODE_DAEMON;
    bool group = o->mode == PNE_MODE_SEAL || o->mode == PNE_MODE_OPEN;
    const char *cmd = daemon ? "the daemon" : mode_names[o->mode];
    char host[256];
    uint16_t port;
    if (daemon) {
        if (!o->PNEID)
            return opt_fail(p, "--id PNEID is required");
        if (!cpns_id_valid(o->PNEID))
            return opt_fail(p, "--id '%s': not an identifier (1-64 of A-Z a-z 0-9 . _ : @ -)",
                            o->PNEID);
        if (!o->gw)
            return opt_fail(p, "--gw HOST:PORT is required");
        if (addr_parse(o->gw, host, sizeof host, &port) != 0 || port == 0)
            return opt_fail(p, "--gw '%s': not HOST:PORT with a port of 1-65535", o->gw);
    } else {
        if (opt_src(p, "id") == OPT_FROM_ARGV)
            return opt_fail(p, "--id is not used by '%s'", cmd);
        if (opt_src(p, "gw") == OPT_FROM_ARGV)
            return opt_fail(p, "--gw is not used by '%s'", cmd);
        o->PNEID = o->gw = NULL;
    }
    if (group) {
        if (!o->SGID)
            return opt_fail(p, "--sg SGID is required by '%s'", cmd);
        if (!cpns_id_valid(o->SGID))
            return opt_fail(p, "--sg '%s': not an identifier (1-64 of A-Z a-z 0-9 . _ : @ -)",
                            o->SGID);
    } else if (o->SGID) {
        return opt_fail(p, "--sg is not used by %s%s%s", daemon ? "" : "'", cmd, daemon ? "" : "'");
    }
    /* PKCS#11 (pkcs11.c): the three go together; the EUK is then in the store */
    if (o->pkcs11_module && (!o->token_label || !o->pin_file))
        return opt_fail(p, "--pkcs11-module needs --token-label LABEL and --pin-file FILE");
    if (!o->pkcs11_module && (o->token_label || o->pin_file))
        return opt_fail(p, "--%s is used only with --pkcs11-module",
                        o->token_label ? "token-label" : "pin-file");
    if (o->token_label && (!*o->token_label || strlen(o->token_label) > 32))
        return opt_fail(p, "--token-label '%s': not 1-32 characters", o->token_label);
    if (!o->key_file && !o->pkcs11_module)
        return opt_fail(p, "--key-file FILE is required");
    if (!o->store)
        return opt_fail(p, "--store DIR is required");
    if (!*o->store)
        return opt_fail(p, "--store '': not a directory name");
    return 0;
}

/*
 * The subcommand (argv[1] when it is not an option), the defaults, then the
 * file and the command line, validated: at start and on SIGHUP. 0,
 * OPT_HELP, OPT_VERSION, or -1 with p->err.
 */
static int load_options(opt_parser *p, int argc, char **argv, void *out)
{
    pne_options *o = out;
    *o = (pne_options){.mode = PNE_MODE_DAEMON, .log_level = CPNS_LOG_INFO};
    if (argc > 1 && argv[1][0] != '-') {
        for (int m = PNE_MODE_KEYS; m <= PNE_MODE_OPEN; m++)
            if (strcmp(argv[1], mode_names[m]) == 0)
                o->mode = (pne_mode)m;
        if (o->mode == PNE_MODE_DAEMON)
            return opt_fail(p, "unknown command '%s' (keys, seal or open)", argv[1]);
        argc--; /* getopt_long skips the first argument: the command takes the program's place */
        argv++;
    }
    int rv = opt_parse(p, argc, argv, o);
    return rv != 0 ? rv : validate(p, o);
}

/* --- the daemon --- */

static void report(int rv, const char *what)
{
    if (rv < 0)
        log_error("%s: %s", what, cpns_strerror(rv));
}

/* Sends what the engine queued, re-arms its timer and acts on its state. */
static void after_event(pne_daemon *d)
{
    cpns_out out;
    net_conn *gw = dialer_conn(d->gw);
    while (cpns_pne_pop(d->pne, &out) == 1) {
        if (!gw) {
            log_debug("frame with no link to the GW: dropped");
            continue;
        }
        if (net_conn_send(gw, out.data, out.len) != 0)
            log_warn("cannot queue a %zu-byte frame to the GW", out.len);
    }
    if (gw && net_conn_pending(gw) > PENDING_MAX) {
        dialer_lost(d->gw, "the GW does not read what is sent to it");
        return;
    }

    int64_t expiry = cpns_pne_get_expiry(d->pne);
    if (expiry == CPNS_NEVER) {
        evtimer_del(d->expiry_timer);
    } else {
        struct timeval tv = ms_to_timeval(expiry - clock_mono_ms());
        evtimer_add(d->expiry_timer, &tv);
    }

    cpns_pne_state st = cpns_pne_get_state(d->pne);
    if (st == d->last_state)
        return;
    d->last_state = st;
    if (st == CPNS_PNE_REGISTERED) {
        dialer_settled(d->gw);
        log_info("registered through the GW at %s: PNID=%s", d->opt.gw, cpns_pne_pnid(d->pne));
    } else if (st == CPNS_PNE_REFUSED) {
        int Return = cpns_pne_last_return(d->pne);
        log_error("the server refused this PNE (Return %d: %s)", Return,
                  Return == CPNS_RETURN_AUTH      ? "authentication failed, check --key-file"
                  : Return == CPNS_RETURN_UNKNOWN ? "PNEID not provisioned on the server"
                                                  : "see the server's log");
        dialer_lost(d->gw, "registration refused");
    }
}

/* --- the link to the GW (dialer.h: the backoff, the connect timeout) --- */

static void gw_on_open(void *arg)
{
    pne_daemon *d = arg;
    log_info("connected to the GW at %s", d->opt.gw);
    report(cpns_pne_link_up(d->pne, clock_mono_ms()), "link up");
    after_event(d);
}

static void gw_on_frame(void *arg, const uint8_t *data, size_t len)
{
    pne_daemon *d = arg;
    report(cpns_pne_recv(d->pne, data, len, clock_mono_ms()), "frame from the GW");
    after_event(d);
}

static void gw_on_down(void *arg, bool was_open)
{
    pne_daemon *d = arg;
    if (was_open)
        report(cpns_pne_link_down(d->pne, clock_mono_ms()), "link down");
    after_event(d);
}

static void on_expiry_timer(evutil_socket_t fd, short what, void *arg)
{
    pne_daemon *d = arg;
    (void)fd;
    (void)what;
    report(cpns_pne_handle_expiry(d->pne, clock_mono_ms()), "timer");
    after_event(d);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    pne_daemon *d = arg;
    (void)what;
    log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(d->base);
}

/* SIGHUP (opt_reload_run): the new --log-level; the rest waits for a restart. */
static int reload_apply(void *arg, const void *fresh, char *done, size_t done_len, char *err,
                        size_t err_len)
{
    (void)arg;
    (void)done;
    (void)done_len;
    (void)err;
    (void)err_len;
    log_set_level(((const pne_options *)fresh)->log_level);
    return 0;
}

static void on_sighup(void *arg)
{
    opt_reload_run(arg);
}

static void daemon_free(pne_daemon *d)
{
    daemon_sighup_free();
    dialer_free(d->gw);
    cpns_pne_free(d->pne);
    cpns_keystore_free(d->ks);
    struct event *events[] = {d->expiry_timer, d->sigterm, d->sigint};
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        if (events[i])
            event_free(events[i]);
    net_base_free(d->base);
}

/* Everything that can fail before the loop runs. 0, or the exit status. */
static int daemon_init(pne_daemon *d, opt_reload *reload)
{
    uint8_t EUK[CPNS_KEY_LEN];
    int status = pne_open_store(&d->opt, 1, &d->ks, EUK);
    if (status != 0)
        return status;
    cpns_pne_config cfg = {
        .PNEID = d->opt.PNEID,
        .EUK = EUK,
        .keystore = d->ks,
        .log = log_engine,
        /* now_ms is the monotonic clock; the registration Time is wall time (#10.12). */
        .wall_clock = clock_wall_cb,
    };
    int rv = cpns_pne_new(&d->pne, &cfg);
    cpns_wipe(EUK, sizeof EUK);
    if (rv != 0) {
        log_error("cannot create the PNE engine: %s", cpns_strerror(rv));
        return EXIT_FAILURE;
    }
    d->last_state = cpns_pne_get_state(d->pne);
    d->base = event_base_new();
    if (!d->base || daemon_sighup(d->base, on_sighup, reload) != 0)
        return EXIT_FAILURE;
    /* Plain TCP: the Group Key is protected end to end by the EUK. */
    dialer_config link = {
        .base = d->base,
        .addrs = &d->opt.gw,
        .n_addrs = 1,
        .peer = "GW",
        .retry_min_ms = RETRY_MIN_MS,
        .retry_max_ms = RETRY_MAX_MS,
        .timeout_ms = CONNECT_TIMEOUT_MS,
        .timeout_until = DIALER_UNTIL_OPEN,
        .on_open = gw_on_open,
        .on_frame = gw_on_frame,
        .on_down = gw_on_down,
        .arg = d,
    };
    d->gw = dialer_new(&link);
    d->expiry_timer = evtimer_new(d->base, on_expiry_timer, d);
    d->sigterm = evsignal_new(d->base, SIGTERM, on_signal, d);
    d->sigint = evsignal_new(d->base, SIGINT, on_signal, d);
    if (!d->gw || !d->expiry_timer || !d->sigterm || !d->sigint ||
        evsignal_add(d->sigterm, NULL) != 0 || evsignal_add(d->sigint, NULL) != 0) {
        log_error("cannot set up the event loop");
        return EXIT_FAILURE;
    }
    return 0;
}

static int run_daemon(const pne_options *opt, opt_parser *parser, int argc, char **argv)
{
    pne_daemon d;
    memset(&d, 0, sizeof d);
    d.opt = *opt;
    pne_options parsed = *opt;
    opt_reload reload = {
        .p = parser,
        .argc = argc,
        .argv = argv,
        .size = sizeof d.opt,
        .running = &d.opt,
        .parsed = &parsed,
        .load = load_options,
        .apply = reload_apply,
        .arg = &d,
    };
    log_setup("pne", opt->PNEID, opt->log_level);
    /* A GW closing mid-write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    int status = daemon_init(&d, &reload);
    if (status == 0) {
        log_info("cpns-pne %s: key store %s%s%s%s, GW %s", CPNS_LIB_VERSION, opt->store,
                 opt->pkcs11_module ? " sealed by PKCS#11 token '" : "",
                 opt->pkcs11_module ? opt->token_label : "", opt->pkcs11_module ? "'" : "",
                 opt->gw);
        dialer_start(d.gw);
        notify_ready("cpns-pne");
        event_base_dispatch(d.base);
        notify_stopping();
        log_info("stopped");
    }
    daemon_free(&d);
    return status;
}

int main(int argc, char **argv)
{
    static opt_parser parser = {
        .prog = "cpns-pne",
        .specs = pne_option_table,
        .n_specs = sizeof pne_option_table / sizeof pne_option_table[0],
    };
    pne_options opt;
    int rv = load_options(&parser, argc, argv, &opt);
    if (rv == OPT_HELP)
        usage(stdout);
    else if (rv == OPT_VERSION)
        opt_print_version(parser.prog);
    else if (rv != 0)
        opt_print_error(&parser);
    else if (parser.check_only)
        printf("cpns-pne: the options%s%s are valid\n", parser.config ? " and " : "",
               parser.config ? parser.config : "");
    if (rv != 0 || parser.check_only) {
        opt_free(&parser);
        return rv < 0 ? EXIT_USAGE : EXIT_SUCCESS;
    }
    int status = EXIT_FAILURE;
    switch (opt.mode) {
    case PNE_MODE_KEYS:
        status = pne_cmd_keys(&opt);
        break;
    case PNE_MODE_SEAL:
        status = pne_cmd_seal(&opt);
        break;
    case PNE_MODE_OPEN:
        status = pne_cmd_open(&opt);
        break;
    case PNE_MODE_DAEMON:
        status = run_daemon(&opt, &parser, argc, argv);
        break;
    }
    opt_free(&parser);
    return status;
}
