/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A throwaway SoftHSM2 token for the PKCS#11 tests: a temporary directory
 * with its own softhsm2.conf (directories.tokendir inside it), SOFTHSM2_CONF
 * pointing at it for this process and the programs it starts, and tokens
 * made with `softhsm2-util --init-token --free`. Nothing outside the
 * directory is touched; sh_cleanup removes it.
 *
 * The module is found at $CPNS_SOFTHSM2_MODULE or at the Debian paths; when
 * SoftHSM2 is not installed (scripts/install-deps.sh installs softhsm2) the
 * test exits 77, which CTest reports as skipped.
 */
#ifndef CPNS_TEST_SOFTHSM_H
#define CPNS_TEST_SOFTHSM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SH_PIN "8642"
#define SH_SO_PIN "97531"

typedef struct sh_env {
    char root[64];          /* mkdtemp */
    char conf[96];          /* root/softhsm2.conf */
    char tokens[96];        /* root/tokens */
    const char *module;     /* the SoftHSM2 module */
    char fault_module[512]; /* build/tests/libcpns_p11fault.so */
    char fault_file[96];    /* root/fault: its control file */
} sh_env;

static inline const char *sh_find_module(void)
{
    static const char *const paths[] = {
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    };
    const char *env = getenv("CPNS_SOFTHSM2_MODULE");
    if (env && *env)
        return access(env, R_OK) == 0 ? env : NULL;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (access(paths[i], R_OK) == 0)
            return paths[i];
    return NULL;
}

/* 0, or 77 (skip) after saying why. */
static inline int sh_present(void)
{
    if (!sh_find_module() || system("softhsm2-util --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SoftHSM2 is not installed (apt-get install softhsm2): skipped\n");
        return 77;
    }
    return 0;
}

static inline int sh_run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The directory, its softhsm2.conf and SOFTHSM2_CONF. 0 or -1. */
static inline int sh_setup(sh_env *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->root, sizeof e->root, "/tmp/cpns-p11-XXXXXX");
    if (!mkdtemp(e->root))
        return -1;
    snprintf(e->conf, sizeof e->conf, "%s/softhsm2.conf", e->root);
    snprintf(e->tokens, sizeof e->tokens, "%s/tokens", e->root);
    snprintf(e->fault_file, sizeof e->fault_file, "%s/fault", e->root);
    if (mkdir(e->tokens, 0700) != 0)
        return -1;
    FILE *fp = fopen(e->conf, "w");
    if (!fp)
        return -1;
    fprintf(fp,
            "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
            "slots.removable = false\n",
            e->tokens);
    fclose(fp);
    e->module = sh_find_module();
    const char *bin = getenv("CPNS_BINARY_DIR");
    snprintf(e->fault_module, sizeof e->fault_module, "%s/tests/libcpns_p11fault.so",
             bin ? bin : ".");
    setenv("SOFTHSM2_CONF", e->conf, 1);
    setenv("CPNS_P11FAULT_MODULE", e->module ? e->module : "", 1);
    setenv("CPNS_P11FAULT_FILE", e->fault_file, 1);
    return e->module ? 0 : -1;
}

/* A new token labelled label with SH_PIN and SH_SO_PIN. 0 or -1. */
static inline int sh_init_token(const sh_env *e, const char *label)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "softhsm2-util --init-token --free --label '%s' --pin %s --so-pin %s >/dev/null",
             label, SH_PIN, SH_SO_PIN);
    return sh_run(cmd) == 0 ? 0 : -1;
}

/* Makes the fault module (p11fault.c) fail as word says; "" for no fault. */
static inline void sh_fault(const sh_env *e, const char *word)
{
    FILE *fp = fopen(e->fault_file, "w");
    if (fp) {
        fprintf(fp, "%s\n", word);
        fclose(fp);
    }
}

static inline void sh_cleanup(const sh_env *e)
{
    if (!e->root[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->root);
    sh_run(cmd);
}

#endif
