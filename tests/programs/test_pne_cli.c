/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-pne as a program: the command-line contract (DESIGN.md section 4),
 * the offline keys/seal/open commands on a key store filled through the
 * library, refusal of unsafe or wrong key material, and the daemon's glue
 * over a real socket against a fake GW (registration, one Group Key
 * delivery, reconnect backoff, clean exit on SIGTERM).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "progtest.h"

/* PROTOCOL.md 4.1: the test vector's Group Key and its group message. */
#define VECTOR_GK "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeeab12"
#define VECTOR_GROUP_MSG "AQAAAAEAAQIDBAUGBwgJCgvwn2MHcayFFl0MiRC/wcpHlV9OyFNBoWTQAWw="

typedef struct fixture {
    char dir[256];
    char store[300];
    char key[300];
    uint8_t EUK[CPNS_KEY_LEN];
    uint8_t GK1[CPNS_KEY_LEN]; /* sg-family version 1: the test vector's key */
    uint8_t GK2[CPNS_KEY_LEN]; /* sg-family version 2 */
    uint8_t GK3[CPNS_KEY_LEN]; /* sg-other version 5 */
} fixture;

static void rand_key(uint8_t *k)
{
    assert_int_equal(cpns_random(NULL, k, CPNS_KEY_LEN), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    prog_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->store, sizeof f->store, "%s/store", f->dir);
    snprintf(f->key, sizeof f->key, "%s/euk", f->dir);
    rand_key(f->EUK);
    test_hex(VECTOR_GK, f->GK1, CPNS_KEY_LEN);
    rand_key(f->GK2);
    rand_key(f->GK3);
    prog_write_key(f->key, f->EUK, 0600);

    cpns_keystore *ks;
    assert_int_equal(cpns_keystore_file_open(&ks, f->store, f->EUK), 0);
    assert_int_equal(ks->ops->put(ks, "sg-family", 1, f->GK1), 0);
    assert_int_equal(ks->ops->put(ks, "sg-family", 2, f->GK2), 0);
    assert_int_equal(ks->ops->put(ks, "sg-other", 5, f->GK3), 0);
    cpns_keystore_free(ks);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void run(prog_result *r, const char *const argv[], const char *in)
{
    prog_run(argv, in, in ? strlen(in) : 0, r);
}

/* --- the command-line contract --- */

static void test_help_and_version(void **state)
{
    (void)state;
    prog_result r;
    run(&r, (const char *const[]){"cpns-pne", "--help", NULL}, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Usage: cpns-pne"));
    assert_non_null(strstr(r.out, "seal"));
    prog_result_free(&r);

    run(&r, (const char *const[]){"cpns-pne", "--version", NULL}, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "cpns-pne " CPNS_LIB_VERSION " (libcpns " CPNS_LIB_VERSION
                               ", CPNS " CPNS_VERSION "), Apache-2.0\n");
    prog_result_free(&r);
}

/* Each bad command line exits 2 and names what is wrong. */
static void test_bad_options_exit_2(void **state)
{
    fixture *f = *state;
    struct {
        const char *argv[12];
        const char *named;
    } cases[] = {
        {{"cpns-pne", "--bogus", NULL}, "--bogus"},
        {{"cpns-pne", "frobnicate", NULL}, "frobnicate"},
        {{"cpns-pne", "--gw", "127.0.0.1:7461", "--key-file", f->key, "--store", f->store, NULL},
         "--id"},
        {{"cpns-pne", "--id", "pne-1", "--key-file", f->key, "--store", f->store, NULL}, "--gw"},
        {{"cpns-pne", "--id", "pne 1", "--gw", "127.0.0.1:7461", "--key-file", f->key, "--store",
          f->store, NULL},
         "pne 1"},
        {{"cpns-pne", "--id", "pne-1", "--gw", "nowhere", "--key-file", f->key, "--store", f->store,
          NULL},
         "nowhere"},
        {{"cpns-pne", "--id", "pne-1", "--gw", "127.0.0.1:70000", "--key-file", f->key, "--store",
          f->store, NULL},
         "127.0.0.1:70000"},
        {{"cpns-pne", "--id", "pne-1", "--gw", "127.0.0.1:7461", "--store", f->store, NULL},
         "--key-file"},
        {{"cpns-pne", "--id", "pne-1", "--gw", "127.0.0.1:7461", "--key-file", f->key, "--store",
          f->store, "--log-level", "loud", NULL},
         "loud"},
        {{"cpns-pne", "keys", "--key-file", f->key, NULL}, "--store"},
        {{"cpns-pne", "seal", "--key-file", f->key, "--store", f->store, NULL}, "--sg"},
        {{"cpns-pne", "open", "--key-file", f->key, "--store", f->store, "--sg", "bad/sg", NULL},
         "bad/sg"},
        {{"cpns-pne", "keys", "--key-file", f->key, "--store", f->store, "--sg", "sg-family", NULL},
         "--sg"},
        {{"cpns-pne", "keys", "--key-file", f->key, "--store", f->store, "extra", NULL}, "extra"},
        {{"cpns-pne", "keys", "--key-file", f->key, "--key-file", f->key, "--store", f->store,
          NULL},
         "twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        prog_result r;
        run(&r, cases[i].argv, NULL);
        if (r.status != 2 || !strstr(r.err, cases[i].named))
            fail_msg("case %zu: status %d, stderr '%s' (wanted 2 naming '%s')", i, r.status, r.err,
                     cases[i].named);
        prog_result_free(&r);
    }
}

/* An EUK file that group or others can read is refused before anything else happens. */
static void test_key_file_0644_refused(void **state)
{
    fixture *f = *state;
    char key[400], store[400];
    snprintf(key, sizeof key, "%s/euk-0644", f->dir);
    snprintf(store, sizeof store, "%s/store-0644", f->dir);
    prog_write_key(key, f->EUK, 0644);
    const char *const daemon[] = {"cpns-pne",   "--id", "pne-1",   "--gw", "127.0.0.1:9",
                                  "--key-file", key,    "--store", store,  NULL};
    const char *const keys[] = {"cpns-pne", "keys", "--key-file", key, "--store", f->store, NULL};
    const char *const *argvs[] = {daemon, keys};
    for (int i = 0; i < 2; i++) {
        prog_result r;
        run(&r, argvs[i], NULL);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "--key-file"));
        assert_non_null(strstr(r.err, "0644"));
        prog_result_free(&r);
    }
    struct stat st;
    assert_int_not_equal(stat(store, &st), 0); /* refused before the store was created */
}

/* --- keys, seal, open --- */

static void assert_no_key(const char *text, const uint8_t key[CPNS_KEY_LEN])
{
    char b64[CPNS_B64_LEN(CPNS_KEY_LEN) + 1], hex[2 * CPNS_KEY_LEN + 1];
    assert_true(cpns_b64_encode(key, CPNS_KEY_LEN, b64, sizeof b64) > 0);
    for (int i = 0; i < CPNS_KEY_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    assert_null(strstr(text, b64));
    assert_null(strstr(text, hex));
}

static void test_keys_lists_versions_and_fingerprints(void **state)
{
    fixture *f = *state;
    prog_result r;
    run(&r,
        (const char *const[]){"cpns-pne", "keys", "--store", f->store, "--key-file", f->key, NULL},
        NULL);
    assert_int_equal(r.status, 0);
    char fp1[CPNS_FINGERPRINT_LEN + 1], fp2[CPNS_FINGERPRINT_LEN + 1],
        fp3[CPNS_FINGERPRINT_LEN + 1];
    cpns_fingerprint(f->GK1, CPNS_KEY_LEN, fp1);
    cpns_fingerprint(f->GK2, CPNS_KEY_LEN, fp2);
    cpns_fingerprint(f->GK3, CPNS_KEY_LEN, fp3);

    const char *family = strstr(r.out, "sg-family");
    const char *other = strstr(r.out, "sg-other");
    assert_non_null(family);
    assert_non_null(other);
    char line[256];
    unsigned cur, prev;
    char cfp[32], pfp[32], sg[80];
    assert_int_equal(sscanf(family, "%79s %u %31s %u %31s", sg, &cur, cfp, &prev, pfp), 5);
    assert_int_equal(cur, 2);
    assert_string_equal(cfp, fp2);
    assert_int_equal(prev, 1);
    assert_string_equal(pfp, fp1);
    assert_int_equal(sscanf(other, "%79s %u %31s %31s", sg, &cur, cfp, line), 4);
    assert_int_equal(cur, 5);
    assert_string_equal(cfp, fp3);
    assert_string_equal(line, "-"); /* no previous version */

    assert_no_key(r.out, f->GK1);
    assert_no_key(r.out, f->GK2);
    assert_no_key(r.out, f->GK3);
    assert_no_key(r.err, f->GK2);
    prog_result_free(&r);
}

static void seal(const fixture *f, const char *SGID, const char *pt, prog_result *r)
{
    run(r,
        (const char *const[]){"cpns-pne", "seal", "--store", f->store, "--key-file", f->key, "--sg",
                              SGID, NULL},
        pt);
}

static void open_msg(const fixture *f, const char *SGID, const char *msg, prog_result *r)
{
    run(r,
        (const char *const[]){"cpns-pne", "open", "--store", f->store, "--key-file", f->key, "--sg",
                              SGID, NULL},
        msg);
}

static void test_seal_open_round_trip(void **state)
{
    fixture *f = *state;
    const char *pt = "movie night at 8\nbring popcorn\n";
    prog_result s1, s2, o;
    seal(f, "sg-family", pt, &s1);
    assert_int_equal(s1.status, 0);
    assert_true(s1.out_len > 1 && s1.out[s1.out_len - 1] == '\n');
    seal(f, "sg-family", pt, &s2);
    assert_int_equal(s2.status, 0);
    assert_string_not_equal(s1.out, s2.out); /* a fresh nonce every time */

    /* Sealed with the current key: KeyVersion 2 in bytes 1..4. */
    uint8_t blob[256];
    size_t len;
    assert_int_equal(cpns_b64_decode(s1.out, s1.out_len - 1, blob, sizeof blob, &len), 0);
    uint32_t KeyVersion;
    assert_int_equal(cpns_group_msg_version(blob, len, &KeyVersion), 0);
    assert_int_equal(KeyVersion, 2);

    open_msg(f, "sg-family", s1.out, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.out_len, strlen(pt));
    assert_memory_equal(o.out, pt, strlen(pt));
    prog_result_free(&o);

    /* The same message does not open as another group's. */
    open_msg(f, "sg-other", s1.out, &o);
    assert_int_equal(o.status, 1);
    assert_int_equal(o.out_len, 0);
    prog_result_free(&o);
    prog_result_free(&s1);
    prog_result_free(&s2);

    /* Empty input seals and opens to empty output. */
    seal(f, "sg-other", "", &s1);
    assert_int_equal(s1.status, 0);
    open_msg(f, "sg-other", s1.out, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.out_len, 0);
    prog_result_free(&o);
    prog_result_free(&s1);
}

/* PROTOCOL.md 4.1: the normative group message opens with the previous key (version 1). */
static void test_open_vector_with_previous_key(void **state)
{
    fixture *f = *state;
    prog_result o;
    open_msg(f, "sg-family", VECTOR_GROUP_MSG "\n", &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.out_len, strlen("hello group"));
    assert_memory_equal(o.out, "hello group", strlen("hello group"));
    prog_result_free(&o);
}

static void test_open_tampered_fails(void **state)
{
    fixture *f = *state;
    prog_result s, o;
    seal(f, "sg-family", "attack at dawn", &s);
    assert_int_equal(s.status, 0);
    uint8_t blob[256];
    size_t len;
    char b64[512];
    assert_int_equal(cpns_b64_decode(s.out, s.out_len - 1, blob, sizeof blob, &len), 0);
    for (size_t i = 1 + 4; i < len; i += 7) { /* every part after the version: nonce, ct, tag */
        blob[i] ^= 0x01;
        assert_true(cpns_b64_encode(blob, len, b64, sizeof b64) > 0);
        open_msg(f, "sg-family", b64, &o);
        if (o.status != 1 || o.out_len != 0 || !*o.err)
            fail_msg("byte %zu flipped: status %d, %zu bytes out", i, o.status, o.out_len);
        prog_result_free(&o);
        blob[i] ^= 0x01;
    }
    /* A version that is not stored, garbage, and nothing at all. */
    blob[4] = 9;
    assert_true(cpns_b64_encode(blob, len, b64, sizeof b64) > 0);
    const char *bad[] = {b64, "not base64!", ""};
    for (size_t i = 0; i < 3; i++) {
        open_msg(f, "sg-family", bad[i], &o);
        assert_int_equal(o.status, 1);
        assert_int_equal(o.out_len, 0);
        prog_result_free(&o);
    }
    prog_result_free(&s);
}

static void test_seal_limits_and_unknown_group(void **state)
{
    fixture *f = *state;
    prog_result r;
    seal(f, "sg-nobody", "hi", &r);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "sg-nobody"));
    assert_int_equal(r.out_len, 0);
    prog_result_free(&r);

    size_t big = 48 * 1024 + 1;
    char *in = malloc(big + 1);
    assert_non_null(in);
    memset(in, 'x', big);
    in[big] = '\0';
    seal(f, "sg-family", in, &r);
    assert_int_equal(r.status, 1);
    assert_int_equal(r.out_len, 0);
    prog_result_free(&r);
    in[big - 1] = '\0'; /* exactly the limit seals */
    seal(f, "sg-family", in, &r);
    assert_int_equal(r.status, 0);
    prog_result_free(&r);
    free(in);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 20, fp);
    fclose(fp);
    return buf;
}

/* A wrong EUK and a damaged store are refused with exit 1, and the store is left as it was. */
static void test_wrong_key_or_damaged_store_exit_1(void **state)
{
    fixture *f = *state;
    char other_key[400], file[400];
    snprintf(other_key, sizeof other_key, "%s/other-euk", f->dir);
    snprintf(file, sizeof file, "%s/groupkeys", f->store);
    uint8_t k[CPNS_KEY_LEN];
    rand_key(k);
    prog_write_key(other_key, k, 0600);
    size_t before_len, after_len;
    char *before = read_file(file, &before_len);

    prog_result r;
    run(&r,
        (const char *const[]){"cpns-pne", "keys", "--store", f->store, "--key-file", other_key,
                              NULL},
        NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, f->store));
    prog_result_free(&r);
    prog_daemon d;
    prog_spawn((const char *const[]){"cpns-pne", "--id", "pne-1", "--gw", "127.0.0.1:9",
                                     "--key-file", other_key, "--store", f->store, NULL},
               &d);
    assert_int_equal(prog_stop(&d, 0), 1); /* signal 0: just wait for it to exit */

    /* One flipped byte in the ciphertext. */
    before[before_len / 2] ^= 0x40;
    prog_write_file(file, before, before_len, 0600);
    run(&r,
        (const char *const[]){"cpns-pne", "keys", "--store", f->store, "--key-file", f->key, NULL},
        NULL);
    assert_int_equal(r.status, 1);
    prog_result_free(&r);
    char *after = read_file(file, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(before);
    free(after);
}

/* --- the daemon --- */

static void test_daemon_retries_with_backoff(void **state)
{
    fixture *f = *state;
    char gw[32];
    snprintf(gw, sizeof gw, "127.0.0.1:%u", tcp_free_port());
    prog_daemon d;
    prog_spawn((const char *const[]){"cpns-pne", "--id", "pne-1", "--gw", gw, "--key-file", f->key,
                                     "--store", f->store, NULL},
               &d);
    assert_true(prog_wait_log(&d, "connecting to the GW again in", 3, 8000));
    char *log = prog_log(&d);
    /* The delays grow: 0.5 s, then 1 s, then 2 s, each less up to 25 % jitter. */
    double delays[3];
    const char *p = log;
    for (int i = 0; i < 3; i++) {
        p = strstr(p, "again in ") + strlen("again in ");
        delays[i] = strtod(p, NULL);
    }
    assert_true(delays[0] >= 0.3 && delays[0] <= 0.5);
    assert_true(delays[1] >= 0.7 && delays[1] <= 1.0);
    assert_true(delays[2] >= 1.4 && delays[2] <= 2.0);
    free(log);
    assert_int_equal(prog_stop(&d, SIGTERM), 0);
}

/*
 * The daemon against a fake GW: it registers with a Proof made from its EUK
 * file, takes a Group Key delivery, stores it (7.8.6.1-2) and answers Return 1
 * with the PNID it learned and a KeyConfirmation (7.8.6.1-3, -4, -5).
 */
static void test_daemon_registers_and_stores_a_key(void **state)
{
    fixture *f = *state;
    uint16_t port;
    int lfd = tcp_listen_any(&port);
    char gw[32];
    snprintf(gw, sizeof gw, "127.0.0.1:%u", port);
    prog_daemon d;
    prog_spawn((const char *const[]){"cpns-pne", "--id", "pne-tv", "--gw", gw, "--key-file", f->key,
                                     "--store", f->store, "--log-level", "debug", NULL},
               &d);
    int fd = tcp_accept(lfd, 5000);
    assert_true(fd >= 0);

    cpns_msg req, m;
    assert_int_equal(msg_recv(fd, &req, 5000), 0);
    assert_int_equal(req.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
    assert_string_equal(req.PNEID, "pne-tv");
    uint8_t K_auth[CPNS_KEY_LEN], Proof[CPNS_PROOF_LEN];
    char Nonce[64], Time[24];
    assert_int_equal(cpns_kdf(f->EUK, CPNS_INFO_AUTH, K_auth), 0);
    assert_true(cpns_b64_encode(req.Nonce.data, req.Nonce.len, Nonce, sizeof Nonce) > 0);
    snprintf(Time, sizeof Time, "%llu", (unsigned long long)req.Time);
    assert_int_equal(cpns_proof(K_auth, "pne-tv", Nonce, Time, Proof), 0);
    assert_int_equal(req.Proof.len, CPNS_PROOF_LEN);
    assert_memory_equal(req.Proof.data, Proof, CPNS_PROOF_LEN);

    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, req.TransactionID);
    m.Return = CPNS_RETURN_SUCCESS;
    m.present |= CPNS_F_RETURN;
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, "pne-tv"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-home"), 0);
    assert_int_equal(msg_send(fd, &m), 0);
    assert_true(prog_wait_log(&d, "PNID=pn-home", 1, 5000));

    uint8_t GK[CPNS_KEY_LEN], K_wrap[CPNS_KEY_LEN], nonce[CPNS_GCM_NONCE_LEN], egk[CPNS_EGK_LEN];
    rand_key(GK);
    assert_int_equal(cpns_random(NULL, nonce, sizeof nonce), 0);
    assert_int_equal(cpns_kdf(f->EUK, CPNS_INFO_WRAP, K_wrap), 0);
    assert_int_equal(cpns_egk_wrap(K_wrap, "sg-live", "pne-tv", 3, GK, nonce, egk), 0);
    cpns_msg_init(&m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, 4242);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_SGID, "sg-live"), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, "pne-tv"), 0);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_EGK, egk, sizeof egk), 0);
    m.KeyVersion = 3;
    m.present |= CPNS_F_KEYVERSION | CPNS_F_GROUPKEYINFO;
    assert_int_equal(msg_send(fd, &m), 0);

    assert_int_equal(msg_recv(fd, &m, 5000), 0);
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
    assert_int_equal(m.TransactionID, 4242);
    assert_int_equal(m.Return, CPNS_RETURN_SUCCESS);
    assert_string_equal(m.PNID, "pn-home");
    uint8_t KC[CPNS_KC_LEN];
    assert_int_equal(cpns_key_confirmation(GK, "sg-live", "pne-tv", 3, KC), 0);
    assert_int_equal(m.KeyConfirmation.len, CPNS_KC_LEN);
    assert_memory_equal(m.KeyConfirmation.data, KC, CPNS_KC_LEN);

    char *log = prog_log(&d);
    assert_no_key(log, GK);
    assert_no_key(log, f->EUK);
    free(log);
    assert_int_equal(prog_stop(&d, SIGTERM), 0);
    close(fd);
    close(lfd);

    /* Durable in the store: `keys` shows version 3 with the key's fingerprint. */
    prog_result r;
    run(&r,
        (const char *const[]){"cpns-pne", "keys", "--store", f->store, "--key-file", f->key, NULL},
        NULL);
    assert_int_equal(r.status, 0);
    char fp[CPNS_FINGERPRINT_LEN + 1];
    cpns_fingerprint(GK, CPNS_KEY_LEN, fp);
    const char *line = strstr(r.out, "sg-live");
    assert_non_null(line);
    unsigned v;
    char sg[80], cfp[32];
    assert_int_equal(sscanf(line, "%79s %u %31s", sg, &v, cfp), 3);
    assert_int_equal(v, 3);
    assert_string_equal(cfp, fp);
    prog_result_free(&r);
}

/* A refused registration is an ERROR in the log, and the daemon keeps trying. */
static void test_daemon_refused_retries(void **state)
{
    fixture *f = *state;
    uint16_t port;
    int lfd = tcp_listen_any(&port);
    char gw[32];
    snprintf(gw, sizeof gw, "127.0.0.1:%u", port);
    prog_daemon d;
    prog_spawn((const char *const[]){"cpns-pne", "--id", "pne-x", "--gw", gw, "--key-file", f->key,
                                     "--store", f->store, NULL},
               &d);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = tcp_accept(lfd, 5000);
        assert_true(fd >= 0);
        cpns_msg req, m;
        assert_int_equal(msg_recv(fd, &req, 5000), 0);
        assert_int_equal(req.kind, CPNS_MSG_PNE_REGISTRATION_REQUEST);
        cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, req.TransactionID);
        m.Return = CPNS_RETURN_UNKNOWN;
        m.present |= CPNS_F_RETURN;
        assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, "pne-x"), 0);
        assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-home"), 0);
        assert_int_equal(msg_send(fd, &m), 0);
        assert_true(prog_wait_log(&d, "ERROR", attempt + 1, 5000));
        close(fd);
    }
    char *log = prog_log(&d);
    assert_non_null(strstr(log, "Return 9"));
    free(log);
    assert_int_equal(prog_stop(&d, SIGINT), 0);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_help_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options_exit_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_0644_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_lists_versions_and_fingerprints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_open_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_vector_with_previous_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_tampered_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_limits_and_unknown_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_or_damaged_store_exit_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_retries_with_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_registers_and_stores_a_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_refused_retries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
