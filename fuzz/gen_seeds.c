/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writes the seed corpora of the engine and key-store harnesses:
 *   gen_seeds DIR   -> DIR/pne/, DIR/gw/, DIR/server/, DIR/keystore/
 * (run as `build/tests/gen_seeds fuzz/corpus`; rerun after changing
 * fuzz_util.h or fuzz_server_world.h, whose world the seeds assume).
 * Seeds are real traffic made with the library: delivery requests that
 * unwrap under the harness PNE's EUK, responses with real KeyConfirmations
 * (the generator runs the server harness's own world and answers the
 * requests it sends), registrations with real Proofs, key-store files
 * written by the file backend, plus a few broken variants of each so that
 * the fuzzers start on both sides of every check.
 */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_server_world.h"
#include "internal.h" /* cpns_msg_delivery_response */

#define SEED_MAX (256 * 1024)

typedef struct seed {
    uint8_t buf[SEED_MAX];
    size_t len;
} seed;

static const char *outdir;

static void put_bytes(seed *s, const void *p, size_t n)
{
    FZ_CHECK(s->len + n <= SEED_MAX);
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void put_op(seed *s, uint8_t op)
{
    put_bytes(s, &op, 1);
}

static void put_frame(seed *s, uint8_t op, const uint8_t *f, size_t n)
{
    uint8_t hdr[3] = {op, (uint8_t)(n >> 8), (uint8_t)n};
    put_bytes(s, hdr, 3);
    put_bytes(s, f, n);
}

static void put_msg(seed *s, uint8_t op, const cpns_msg *m)
{
    static uint8_t buf[CPNS_FRAME_MAX];
    put_frame(s, op, buf, fz_encode(m, buf));
}

static void put_xml(seed *s, uint8_t op, const char *xml)
{
    put_frame(s, op, (const uint8_t *)xml, strlen(xml));
}

/* The encoding of m with the first `from` replaced by `to` (a broken variant). */
static void put_msg_edit(seed *s, uint8_t op, const cpns_msg *m, const char *from, const char *to)
{
    static uint8_t buf[CPNS_FRAME_MAX];
    static char xml[CPNS_FRAME_MAX + 64];
    size_t len = fz_encode(m, buf);
    memcpy(xml, buf, len);
    xml[len] = 0;
    char *at = strstr(xml, from);
    FZ_CHECK(at != NULL);
    size_t fl = strlen(from), tl = strlen(to);
    memmove(at + tl, at + fl, strlen(at + fl) + 1);
    memcpy(at, to, tl);
    put_xml(s, op, xml);
}

static void save(const char *sub, const char *name, const seed *s)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", outdir, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", outdir, sub, name);
    FILE *fp = fopen(path, "wb");
    FZ_CHECK(fp != NULL);
    FZ_CHECK(fwrite(s->buf, 1, s->len, fp) == s->len);
    FZ_CHECK(fclose(fp) == 0);
}

/* --- PNE --- */

static void delivery_request(cpns_msg *m, uint64_t tid, const char *SGID, const char *PNEID,
                             uint32_t KeyVersion, uint8_t gk_byte)
{
    uint8_t EUK[CPNS_KEY_LEN], K_wrap[CPNS_KEY_LEN], GK[CPNS_KEY_LEN], EGK[CPNS_EGK_LEN];
    uint8_t nonce[CPNS_GCM_NONCE_LEN];
    fz_euk(FZ_PNE1,
           EUK); /* always the harness PNE's key: a request to another PNEID still unwraps */
    FZ_CHECK(cpns_kdf(EUK, CPNS_INFO_WRAP, K_wrap) == 0);
    memset(GK, gk_byte, sizeof GK);
    memset(nonce, (uint8_t)tid, sizeof nonce);
    FZ_CHECK(cpns_egk_wrap(K_wrap, SGID, PNEID, KeyVersion, GK, nonce, EGK) == 0);
    cpns_msg_init(m, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, tid);
    FZ_CHECK(cpns_msg_set_id(m, CPNS_F_SGID, SGID) == 0);
    FZ_CHECK(cpns_msg_set_id(m, CPNS_F_PNEID, PNEID) == 0);
    m->KeyVersion = KeyVersion;
    m->present |= CPNS_F_KEYVERSION;
    FZ_CHECK(cpns_msg_set_blob(m, CPNS_F_EGK, EGK, sizeof EGK) == 0);
}

static void gen_pne(void)
{
    static seed s;
    cpns_msg m;

    s.len = 0;
    delivery_request(&m, 100, FZ_SGID, FZ_PNE1, 1, 0x11);
    put_msg(&s, 0, &m);
    save("pne", "deliver-v1", &s);

    s.len = 0;
    for (uint32_t v = 1; v <= 3; v++) {
        delivery_request(&m, 100 + v, FZ_SGID, FZ_PNE1, v, (uint8_t)v);
        put_msg(&s, 0, &m);
    }
    delivery_request(&m, 110, FZ_SGID, FZ_PNE1, 2, 2); /* the previous version again */
    put_msg(&s, 0, &m);
    delivery_request(&m, 111, FZ_SGID, FZ_PNE1, 1, 1); /* older than previous */
    put_msg(&s, 0, &m);
    delivery_request(&m, 112, FZ_SGID, FZ_PNE1, 3, 9); /* same version, another key */
    put_msg(&s, 0, &m);
    save("pne", "rekeys-and-replays", &s);

    s.len = 0;
    delivery_request(&m, 120, FZ_SGID, FZ_PNE2, 1, 1);
    put_msg(&s, 0, &m);
    delivery_request(&m, 121, "sg-2", FZ_PNE1, 1, 1);
    m.EncryptedGroupKey.data[20] ^= 1;
    put_msg(&s, 0, &m);
    delivery_request(&m, 122, "sg-3", FZ_PNE1, 1, 1);
    m.EncryptedGroupKey.len = 60;
    put_msg(&s, 0, &m);
    delivery_request(&m, 123, "sg-4", FZ_PNE1, 7, 1);
    put_msg_edit(&s, 0, &m, "KeyVersion=\"7\"", "KeyVersion=\"0\"");
    put_msg_edit(&s, 0, &m, "KeyVersion=\"7\"", "KeyVersion=\"4294967296\"");
    put_msg_edit(&s, 0, &m, "SGID=\"sg-4\"", "SGID=\"sg 4\"");
    put_msg_edit(&s, 0, &m, "EncryptedGroupKey=\"", "EncryptedGroupKey=\"!");
    save("pne", "wrong-pne-tampered-malformed", &s);

    s.len = 0;
    put_op(&s, 0x82); /* the keystore's next put fails: Return 3 */
    delivery_request(&m, 130, FZ_SGID, FZ_PNE1, 1, 1);
    put_msg(&s, 0, &m);
    put_msg(&s, 0, &m); /* the server's retry succeeds */
    put_op(&s, 0x81);   /* link bounce: registering again, PNID kept */
    delivery_request(&m, 131, FZ_SGID, FZ_PNE1, 2, 2);
    put_msg(&s, 0, &m);
    put_op(&s, 0x80);
    put_op(&s, 0x80);
    save("pne", "storage-failure-link-bounce", &s);

    s.len = 0;
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, 77);
    FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNEID, FZ_PNE1) == 0);
    FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-other") == 0);
    m.Return = CPNS_RETURN_SUCCESS;
    m.present |= CPNS_F_RETURN;
    put_msg(&s, 0, &m);
    put_xml(&s, 0, "<?xml version=\"1.0\"?><x/>");
    put_xml(&s, 0, "");
    delivery_request(&m, 140, FZ_SGID, FZ_PNE1, 1, 1);
    {
        static uint8_t buf[CPNS_FRAME_MAX];
        size_t len = fz_encode(&m, buf);
        put_frame(&s, 0, buf, len / 2); /* cut short */
    }
    save("pne", "other-kinds-and-junk", &s);
}

/* --- GW --- */

static void gen_gw(void)
{
    static seed s;
    cpns_msg m;
    uint8_t Nonce[CPNS_NONCE_LEN] = {1};

    s.len = 0;
    fz_pne_registration(&m, 500, FZ_PNE1, Nonce, FZ_T0 / 1000);
    put_msg(&s, 1, &m); /* link 1 registers pne-1 */
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, 500);
    FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNEID, FZ_PNE1) == 0);
    FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNID, FZ_PNID) == 0);
    m.Return = CPNS_RETURN_SUCCESS;
    m.present |= CPNS_F_RETURN;
    put_msg(&s, 0, &m); /* the server accepts: route set */
    delivery_request(&m, 501, FZ_SGID, FZ_PNE1, 1, 1);
    put_msg(&s, 0, &m); /* forwarded to link 1 */
    delivery_request(&m, 502, FZ_SGID, "pne-9", 1, 1);
    put_msg(&s, 0, &m); /* unknown PNE: Return 6 */
    cpns_msg_init(&m, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE, 501);
    FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_SGID, FZ_SGID) == 0);
    FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNEID, FZ_PNE1) == 0);
    FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNID, FZ_PNID) == 0);
    m.KeyVersion = 1;
    m.Return = CPNS_RETURN_SUCCESS;
    m.present |= CPNS_F_KEYVERSION | CPNS_F_RETURN;
    uint8_t KC[CPNS_KC_LEN] = {0};
    FZ_CHECK(cpns_msg_set_blob(&m, CPNS_F_KC, KC, sizeof KC) == 0);
    put_msg(&s, 1, &m); /* to the server */
    put_msg(&s, 2, &m); /* from a link that is not pne-1's: dropped */
    put_op(&s, 6);      /* server down */
    put_op(&s, 7 | 8);  /* server up, accepted: pne-1 announced attached */
    put_op(&s, 4);      /* link 1 closes: detached */
    put_op(&s, 5);      /* and reopens */
    save("gw", "register-deliver-answer", &s);

    s.len = 0;
    for (int l = 1; l <= 3; l++) {
        char id[16];
        snprintf(id, sizeof id, "pne-%d", l);
        Nonce[0] = (uint8_t)l;
        fz_pne_registration(&m, 600 + (uint64_t)l, id, Nonce, FZ_T0 / 1000);
        put_msg(&s, (uint8_t)l, &m); /* the third is over max_pnes */
    }
    fz_pne_registration(&m, 610, FZ_PNE1, Nonce, FZ_T0 / 1000);
    put_msg(&s, 2, &m); /* link 2 claims pne-1 too */
    put_msg(&s, 0, &m); /* a registration request from the server side */
    cpns_msg_init(&m, CPNS_MSG_PNE_STATUS_NOTIFICATION, 611);
    FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNEID, FZ_PNE1) == 0);
    m.Status = CPNS_STATUS_ATTACHED;
    m.present |= CPNS_F_STATUS;
    put_msg(&s, 1, &m);
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, 612);
    m.Return = 8;
    m.present |= CPNS_F_RETURN;
    put_msg(&s, 0, &m); /* a response to nothing */
    put_op(&s, 7);      /* server up, not accepted */
    put_msg(&s, 0, &m);
    save("gw", "max-pnes-claims-wrong-side", &s);

    s.len = 0;
    delivery_request(&m, 700, FZ_SGID, FZ_PNE1, 1, 1);
    put_msg_edit(&s, 0, &m, "TransactionID=\"700\"", "TransactionID=\"x\"");
    put_msg_edit(&s, 0, &m, "PNEID=\"pne-1\"", "");
    put_msg_edit(&s, 1, &m, "SGroupKeyDeliveryRequest", "SGroupKeyDeliveryRespons");
    put_xml(&s, 3, "<a");
    save("gw", "malformed", &s);
}

/* --- server --- */

#define MAX_OUT 64

typedef struct srv_gen {
    fz_server w;
    seed s;
    cpns_msg out[MAX_OUT];
    uint64_t link[MAX_OUT];
    size_t n;
} srv_gen;

static void capture(void *arg, const cpns_out *out)
{
    srv_gen *g = arg;
    if (g->n < MAX_OUT) {
        FZ_CHECK(cpns_msg_decode(out->data, out->len, &g->out[g->n]) == 0);
        g->link[g->n++] = out->link;
    }
}

static void srv_begin(srv_gen *g)
{
    g->n = 0;
    g->s.len = 0;
    fz_server_start(&g->w, capture, g);
}

static void srv_step(srv_gen *g, uint8_t op, const cpns_msg *m)
{
    static uint8_t buf[CPNS_FRAME_MAX];
    size_t len = 0;
    if (m) {
        len = fz_encode(m, buf);
        put_frame(&g->s, op, buf, len);
    } else {
        put_op(&g->s, op);
    }
    g->n = 0;
    fz_server_step(&g->w, op, buf, len);
}

static void srv_end(srv_gen *g, const char *name)
{
    save("server", name, &g->s);
    fz_server_stop(&g->w);
}

/* Answers every captured SGroupKeyDeliveryRequest with Return (Return 1: a real KeyConfirmation).
 */
static void srv_answer(srv_gen *g, uint32_t Return, int good_kc)
{
    cpns_msg reqs[MAX_OUT];
    uint64_t links[MAX_OUT];
    size_t n = g->n;
    memcpy(reqs, g->out, n * sizeof reqs[0]);
    memcpy(links, g->link, n * sizeof links[0]);
    for (size_t i = 0; i < n; i++) {
        const cpns_msg *req = &reqs[i];
        if (req->kind != CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST)
            continue;
        uint8_t EUK[CPNS_KEY_LEN], K_wrap[CPNS_KEY_LEN], GK[CPNS_KEY_LEN], KC[CPNS_KC_LEN];
        fz_euk(req->PNEID, EUK);
        FZ_CHECK(cpns_kdf(EUK, CPNS_INFO_WRAP, K_wrap) == 0);
        FZ_CHECK(cpns_egk_unwrap(K_wrap, req->SGID, req->PNEID, req->KeyVersion,
                                 req->EncryptedGroupKey.data, req->EncryptedGroupKey.len, GK) == 0);
        FZ_CHECK(cpns_key_confirmation(GK, req->SGID, req->PNEID, req->KeyVersion, KC) == 0);
        if (!good_kc)
            KC[0] ^= 1;
        cpns_msg r;
        FZ_CHECK(cpns_msg_delivery_response(&r, req, Return, FZ_PNID, req->PNEID) == 0);
        if (Return == CPNS_RETURN_SUCCESS)
            FZ_CHECK(cpns_msg_set_blob(&r, CPNS_F_KC, KC, sizeof KC) == 0);
        srv_step(g, (uint8_t)(links[i] - 1), &r);
    }
}

/* The seeds are only worth having if they reach where they mean to. */
static void srv_expect_complete(srv_gen *g, int complete)
{
    cpns_sg_info sg;
    FZ_CHECK(cpns_server_sg_get(g->w.s, FZ_SGID, &sg) == 0);
    FZ_CHECK(sg.complete == complete);
}

static void srv_register(srv_gen *g, uint8_t op, const char *PNEID, uint8_t nonce_byte,
                         int64_t dt_s)
{
    uint8_t Nonce[CPNS_NONCE_LEN] = {nonce_byte};
    cpns_msg m;
    fz_pne_registration(&m, 900 + nonce_byte, PNEID, Nonce, (uint64_t)(FZ_T0 / 1000 + dt_s));
    srv_step(g, op, &m);
}

static void gen_server(void)
{
    static srv_gen g;

    /* the setup's requests (pne-1, pne-2) are in the capture after start */
    srv_begin(&g);
    srv_answer(&g, CPNS_RETURN_SUCCESS, 1);
    srv_register(&g, 0, FZ_PNE3, 3, 0); /* pne-3 registers: its request goes out */
    srv_answer(&g, CPNS_RETURN_SUCCESS, 1);
    srv_expect_complete(&g, 1);
    srv_step(&g, 3, NULL); /* rekey */
    srv_expect_complete(&g, 0);
    srv_answer(&g, CPNS_RETURN_SUCCESS, 1);
    srv_expect_complete(&g, 1);
    srv_end(&g, "complete-then-rekey");

    srv_begin(&g);
    srv_answer(&g, CPNS_RETURN_SUCCESS, 0); /* wrong KeyConfirmations */
    srv_expect_complete(&g, 0);
    srv_end(&g, "wrong-key-confirmation");

    for (uint32_t Return = 0; Return <= 9; Return++) {
        char name[32];
        if (Return == CPNS_RETURN_SUCCESS)
            continue;
        srv_begin(&g);
        srv_answer(&g, Return, 1);
        for (int i = 0; i < 3; i++)
            srv_step(&g, 2 | (15 << 2), NULL); /* 16 s: past the delivery timeout */
        srv_answer(&g, CPNS_RETURN_SUCCESS, 1);
        snprintf(name, sizeof name, "return-%u-then-retry", (unsigned)Return);
        srv_end(&g, name);
    }

    srv_begin(&g);
    srv_register(&g, 0, FZ_PNE1, 1, 0);    /* the setup's Nonce again: a replay */
    srv_register(&g, 0, FZ_PNE3, 4, 1000); /* Time outside the window */
    srv_register(&g, 1, FZ_PNE3, 5, 0);    /* through an unregistered connection */
    {
        uint8_t Nonce[CPNS_NONCE_LEN] = {6};
        cpns_msg m;
        fz_pne_registration(&m, 906, FZ_PNE3, Nonce, FZ_T0 / 1000);
        m.Proof.data[0] ^= 1;
        srv_step(&g, 0, &m); /* a bad Proof */
        fz_pne_registration(&m, 907, "pne-9", Nonce, FZ_T0 / 1000);
        srv_step(&g, 0, &m); /* not provisioned */
    }
    srv_end(&g, "registration-refusals");

    srv_begin(&g);
    {
        cpns_msg m;
        cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_REQUEST, 950);
        FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNGWID, "gw-2") == 0);
        FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNID, "pn-2") == 0);
        srv_step(&g, 1, &m);                /* a second GW on connection 2 */
        srv_register(&g, 1, FZ_PNE2, 7, 0); /* pne-2 moves to it */
        cpns_msg_init(&m, CPNS_MSG_PNE_STATUS_NOTIFICATION, 951);
        FZ_CHECK(cpns_msg_set_id(&m, CPNS_F_PNEID, FZ_PNE1) == 0);
        m.Status = CPNS_STATUS_DETACHED;
        m.present |= CPNS_F_STATUS;
        srv_step(&g, 0, &m);
        m.Status = CPNS_STATUS_ATTACHED;
        m.TransactionID = 952;
        srv_step(&g, 0, &m);
    }
    srv_answer(&g, CPNS_RETURN_SUCCESS, 1);
    srv_step(&g, 3 | (1 << 2), NULL); /* connection 2 bounces */
    srv_step(&g, 3 | (2 << 2), NULL); /* pne-2 leaves: rekey */
    srv_answer(&g, CPNS_RETURN_SUCCESS, 1);
    srv_step(&g, 3 | (2 << 2), NULL); /* and comes back */
    srv_end(&g, "second-gw-status-membership");

    srv_begin(&g);
    srv_step(&g, 3 | (3 << 2), NULL); /* crash and restart: requests go out again */
    srv_register(&g, 0, FZ_PNE1, 8, 0);
    srv_register(&g, 0, FZ_PNE2, 9, 0);
    srv_answer(&g, CPNS_RETURN_SUCCESS, 1);
    for (int i = 0; i < 8; i++)
        srv_step(&g, 2 | (63 << 2), NULL); /* 64 s at a time: resends, backoff, give up */
    srv_end(&g, "crash-restart-and-timeouts");
}

/* --- key store --- */

static void ks_dir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/gen_seeds.XXXXXX");
    FZ_CHECK(mkdtemp(dir) != NULL);
}

static void ks_save(const char *dir, const char *name, int flip)
{
    static seed s;
    char path[256];
    snprintf(path, sizeof path, "%s/groupkeys", dir);
    FILE *fp = fopen(path, "rb");
    FZ_CHECK(fp != NULL);
    s.buf[0] = 0; /* raw file mode */
    s.len = 1 + fread(s.buf + 1, 1, SEED_MAX - 1, fp);
    fclose(fp);
    if (flip && s.len > 30)
        s.buf[30] ^= 1;
    save("keystore", name, &s);
}

static void ks_cleanup(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/groupkeys", dir);
    unlink(path);
    rmdir(dir);
}

static void put_be32(seed *s, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put_bytes(s, b, 4);
}

static void put_record(seed *s, const char *SGID, uint32_t cur, uint32_t prev)
{
    uint8_t L = (uint8_t)strlen(SGID), key[CPNS_KEY_LEN];
    put_bytes(s, &L, 1);
    put_bytes(s, SGID, L);
    put_be32(s, cur);
    memset(key, (uint8_t)cur, sizeof key);
    put_bytes(s, key, sizeof key);
    put_be32(s, prev);
    memset(key, prev ? (uint8_t)prev : 0, sizeof key);
    put_bytes(s, key, sizeof key);
}

static void gen_keystore(void)
{
    uint8_t EUK[CPNS_KEY_LEN], GK[CPNS_KEY_LEN];
    char dir[64];
    cpns_keystore *ks;
    fz_euk(FZ_PNE1, EUK);

    ks_dir(dir, sizeof dir);
    FZ_CHECK(cpns_keystore_file_open(&ks, dir, EUK) == 0);
    memset(GK, 1, sizeof GK);
    FZ_CHECK(ks->ops->put(ks, FZ_SGID, 1, GK) == 0);
    ks_save(dir, "file-one-group", 0);
    ks_save(dir, "file-one-group-flipped", 1);
    const char *more[] = {"sg-0", "sg-2", "a", "zz:@.-_"};
    for (size_t i = 0; i < 4; i++) {
        memset(GK, (int)(i + 2), sizeof GK);
        FZ_CHECK(ks->ops->put(ks, more[i], (uint32_t)(i + 1), GK) == 0);
    }
    FZ_CHECK(ks->ops->put(ks, FZ_SGID, 2, GK) == 0);
    FZ_CHECK(ks->ops->put(ks, "sg-0", UINT32_MAX, GK) == 0);
    ks_save(dir, "file-five-groups-with-previous", 0);
    cpns_keystore_free(ks);
    ks_cleanup(dir);

    static seed s;
    uint8_t mode = 1; /* plaintext records, sealed by the harness */
    s.len = 0;
    put_op(&s, mode);
    put_be32(&s, 0);
    save("keystore", "records-empty", &s);

    s.len = 0;
    put_op(&s, mode);
    put_be32(&s, 3);
    put_record(&s, "a", 1, 0);
    put_record(&s, "sg-1", 5, 4);
    put_record(&s, "sg-2", UINT32_MAX, UINT32_MAX - 1);
    save("keystore", "records-three", &s);

    s.len = 0;
    put_op(&s, mode);
    put_be32(&s, 2);
    put_record(&s, "sg-2", 1, 0);
    put_record(&s, "sg-1", 1, 0); /* unsorted */
    save("keystore", "records-unsorted", &s);

    s.len = 0;
    put_op(&s, mode);
    put_be32(&s, 2);
    put_record(&s, "sg-1", 1, 0);
    put_record(&s, "sg-1", 2, 1); /* duplicate */
    put_bytes(&s, "x", 1);        /* and a trailing byte */
    save("keystore", "records-duplicate-trailing", &s);

    s.len = 0;
    put_op(&s, mode);
    put_be32(&s, 1);
    put_record(&s, "sg-1", 0, 3); /* current version 0 */
    save("keystore", "records-version-zero", &s);

    s.len = 0;
    put_op(&s, mode);
    put_be32(&s, 0xffffffffu); /* a count far beyond the data */
    put_record(&s, "sg-1", 1, 0);
    save("keystore", "records-huge-count", &s);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    gen_pne();
    gen_gw();
    gen_server();
    gen_keystore();
    return 0;
}
