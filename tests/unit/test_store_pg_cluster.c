/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared-mode ops of the PostgreSQL store in cluster mode
 * (lib/store_pg_cluster.c, issue #12), with two store handles standing for
 * two instances on one real database (tests/support/pg.h):
 *   - a progress write is a compare-and-set on the owner token: after a
 *     newer claim of the GW by the other instance it writes nothing and the
 *     row comes back from take_fenced;
 *   - two new keys for one version, committed concurrently from both
 *     handles: exactly one wins, the other gets CPNS_ERR_EXISTS, one sg_key
 *     row;
 *   - a registration Nonce recorded by one handle is refused to the other;
 *   - claim_pnes claims several PNEs in one transaction: a replayed Nonce
 *     in the batch is refused alone, the others' routes and member rows
 *     move (a PNE routed through the other instance's GW included), and
 *     every row is handed to the loader;
 *   - an admin change committed by one handle reaches the other by NOTIFY
 *     (its descriptor becomes readable) and, without a notification, by the
 *     sweep of the change feed; its own changes are not handed back;
 *   - load_scope of one SG: its key and members, CPNS_ERR_NOT_FOUND once gone.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "support.h"

typedef struct fx {
    char uri[256];
    uint8_t master_key[CPNS_KEY_LEN];
    cpns_store *a, *b; /* instances "inst-a" and "inst-b" */
} fx;

static cpns_store *open_as(fx *f, const char *id)
{
    cpns_store_pg_config cfg = {f->uri, f->master_key, id, 1};
    cpns_store *st = NULL;
    char err[512];
    assert_int_equal(cpns_store_pg_open(&st, &cfg, err, sizeof err), 0);
    return st;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(test_pg_create_db(&test_pg_group, f->uri, sizeof f->uri), 0);
    for (size_t i = 0; i < CPNS_KEY_LEN; i++)
        f->master_key[i] = (uint8_t)(0x33 + i);
    f->a = open_as(f, "inst-a");
    f->b = open_as(f, "inst-b");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    cpns_store_free(f->a);
    cpns_store_free(f->b);
    free(f);
    return 0;
}

/* --- loaders that count --- */

typedef struct seen {
    int pnes, sgs, members;
    cpns_store_member last;
    cpns_store_sg sg;
} seen;

static int see_pne(void *arg, const cpns_store_pne *p)
{
    (void)p;
    ((seen *)arg)->pnes++;
    return 0;
}

static int see_sg(void *arg, const cpns_store_sg *sg)
{
    ((seen *)arg)->sgs++;
    ((seen *)arg)->sg = *sg;
    return 0;
}

static int see_member(void *arg, const cpns_store_member *m)
{
    ((seen *)arg)->members++;
    ((seen *)arg)->last = *m;
    return 0;
}

static int see_nonce(void *arg, const cpns_store_nonce *n)
{
    (void)arg, (void)n;
    return 0;
}

static const cpns_store_loader loader = {see_pne, see_sg, see_member, see_nonce};

static cpns_store_member member(const char *SGID, const char *PNEID, uint32_t v,
                                cpns_member_state st, int unfenced)
{
    cpns_store_member m;
    memset(&m, 0, sizeof m);
    strcpy(m.SGID, SGID);
    strcpy(m.PNEID, PNEID);
    m.KeyVersion = v;
    m.state = st;
    m.Return = -1;
    m.fail_reason = -1;
    m.unfenced = unfenced;
    return m;
}

static cpns_store_nonce nonce(const char *PNEID, uint8_t fill)
{
    cpns_store_nonce n;
    memset(&n, 0, sizeof n);
    strcpy(n.PNEID, PNEID);
    memset(n.Nonce, fill, CPNS_NONCE_LEN);
    n.seen_ms = 1700000000000;
    return n;
}

static cpns_store_pne_claim claim(const char *PNEID, uint8_t fill, const char *PNGWID,
                                  const char *PNID)
{
    cpns_store_pne_claim c;
    memset(&c, 0, sizeof c);
    c.nonce = nonce(PNEID, fill);
    strcpy(c.PNGWID, PNGWID);
    strcpy(c.PNID, PNID);
    return c;
}

/* A batch of one: the op's error, else the claim's result. */
static int claim_one(cpns_store *st, const cpns_store_nonce *n, const char *PNGWID,
                     const char *PNID, seen *s)
{
    cpns_store_pne_claim c = claim(n->PNEID, 0, PNGWID, PNID);
    c.nonce = *n;
    int result = 1;
    int rv = st->ops->claim_pnes(st, &c, 1, &result, &loader, s);
    if (rv == 0)
        assert_true(result == 0 || result == CPNS_ERR_EXISTS);
    return rv ? rv : result;
}

/* pne-1 provisioned, sg-x at KeyVersion 1 with pne-1 as a member (all through a). */
static void make_group(fx *f)
{
    cpns_store_pne p;
    memset(&p, 0, sizeof p);
    strcpy(p.PNEID, "pne-1");
    memset(p.EUK, 7, sizeof p.EUK);
    assert_int_equal(f->a->ops->put_pne(f->a, &p), 0);
    cpns_store_sg sg;
    memset(&sg, 0, sizeof sg);
    strcpy(sg.SGID, "sg-x");
    assert_int_equal(f->a->ops->put_sg(f->a, &sg), 0);
    cpns_store_member m = member("sg-x", "pne-1", 0, CPNS_MEMBER_PENDING, 1);
    assert_int_equal(f->a->ops->put_member(f->a, &m), 0);
    assert_int_equal(f->a->ops->commit(f->a), 0);
    sg.KeyVersion = 1;
    memset(sg.GK, 1, sizeof sg.GK);
    assert_int_equal(f->a->ops->put_sg(f->a, &sg), 0);
    assert_int_equal(f->a->ops->commit(f->a), 0);
}

static long long state_of(const fx *f)
{
    return test_pg_scalar(f->uri, "SELECT state FROM member WHERE sgid = 'sg-x'");
}

static void fenced_after_newer_claim(void **state)
{
    fx *f = *state;
    make_group(f);
    seen s = {0};
    int64_t epoch = 0;
    /* a holds gw-1, and pne-1 registers through it: its row is a's (gw-1, epoch 1). */
    assert_int_equal(f->a->ops->claim_gw(f->a, "gw-1", "pn-1", &loader, &s, &epoch), 0);
    assert_int_equal(epoch, 1);
    cpns_store_nonce n = nonce("pne-1", 1);
    assert_int_equal(claim_one(f->a, &n, "gw-1", "pn-1", &s), 0);
    assert_int_equal(s.members, 1);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT owner_epoch FROM member"), 1);

    /* a's progress passes while its token holds. */
    cpns_store_member m = member("sg-x", "pne-1", 1, CPNS_MEMBER_SENT, 0);
    assert_int_equal(f->a->ops->put_member(f->a, &m), 0);
    assert_int_equal(f->a->ops->commit(f->a), 0);
    assert_int_equal(f->a->ops->take_fenced(f->a, NULL, NULL), 0);
    assert_int_equal(state_of(f), CPNS_MEMBER_SENT);

    /* gw-1 registers on b: epoch 2, the open row is b's (sent becomes pending). */
    memset(&s, 0, sizeof s);
    assert_int_equal(f->b->ops->claim_gw(f->b, "gw-1", "pn-1", &loader, &s, &epoch), 0);
    assert_int_equal(epoch, 2);
    assert_int_equal(s.members, 1);
    assert_int_equal(s.pnes, 1); /* pne-1 is routed through gw-1 */
    assert_int_equal(s.last.state, CPNS_MEMBER_PENDING);

    /* a's stale write of a delivery is fenced: nothing written, the row reported. */
    m.state = CPNS_MEMBER_DELIVERED;
    assert_int_equal(f->a->ops->put_member(f->a, &m), 0);
    assert_int_equal(f->a->ops->commit(f->a), 0);
    assert_int_equal(f->a->ops->take_fenced(f->a, NULL, NULL), 1);
    assert_int_equal(f->a->ops->take_fenced(f->a, NULL, NULL), 0);
    assert_int_equal(state_of(f), CPNS_MEMBER_PENDING);

    /* b's write passes. */
    assert_int_equal(f->b->ops->put_member(f->b, &m), 0);
    assert_int_equal(f->b->ops->commit(f->b), 0);
    assert_int_equal(f->b->ops->take_fenced(f->b, NULL, NULL), 0);
    assert_int_equal(state_of(f), CPNS_MEMBER_DELIVERED);
}

static void one_key_per_version(void **state)
{
    fx *f = *state;
    make_group(f);
    cpns_store_sg ka, kb;
    memset(&ka, 0, sizeof ka);
    strcpy(ka.SGID, "sg-x");
    ka.KeyVersion = 2;
    kb = ka;
    memset(ka.GK, 0xaa, sizeof ka.GK);
    memset(kb.GK, 0xbb, sizeof kb.GK);
    assert_int_equal(f->a->ops->put_sg(f->a, &ka), 0);
    assert_int_equal(f->b->ops->put_sg(f->b, &kb), 0);
    /* Both in flight at once: the second waits for the first's row lock. */
    assert_int_equal(f->a->ops->commit_start(f->a), 0);
    assert_int_equal(f->b->ops->commit_start(f->b), 0);
    int ra = f->a->ops->commit(f->a), rb = f->b->ops->commit(f->b);
    assert_true((ra == 0 && rb == CPNS_ERR_EXISTS) || (ra == CPNS_ERR_EXISTS && rb == 0));
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM sg_key WHERE key_version = 2"),
                     1);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT key_version FROM sg"), 2);
    /* The loser's store forgot that batch: its next commit works. */
    cpns_store *loser = ra ? f->a : f->b;
    assert_int_equal(loser->ops->commit(loser), 0);
    /* The next version after the winner's works from either handle. */
    ka.KeyVersion = 3;
    assert_int_equal(loser->ops->put_sg(loser, &ka), 0);
    assert_int_equal(loser->ops->commit(loser), 0);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM sg_key"), 3);
}

static void nonce_replay_refused_across_handles(void **state)
{
    fx *f = *state;
    make_group(f);
    seen s = {0};
    int64_t epoch;
    assert_int_equal(f->a->ops->claim_gw(f->a, "gw-1", "pn-1", &loader, &s, &epoch), 0);
    assert_int_equal(f->b->ops->claim_gw(f->b, "gw-2", "pn-2", &loader, &s, &epoch), 0);
    cpns_store_nonce n = nonce("pne-1", 9);
    assert_int_equal(claim_one(f->a, &n, "gw-1", "pn-1", &s), 0);
    assert_int_equal(claim_one(f->b, &n, "gw-2", "pn-2", &s), CPNS_ERR_EXISTS);
    /* Refused: nothing of it written, the route stays a's. */
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM pne WHERE pngwid = 'gw-1'"), 1);
    cpns_store_nonce other = nonce("pne-1", 10);
    assert_int_equal(claim_one(f->b, &other, "gw-2", "pn-2", &s), 0);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM member WHERE owner_gw = 'gw-2'"),
                     1);
}

/* pne-1 .. pne-4, each a member of sg-x and sg-y. */
static void make_groups(fx *f)
{
    static const char *const sgs[] = {"sg-x", "sg-y"};
    for (int k = 0; k < 2; k++) {
        cpns_store_sg sg;
        memset(&sg, 0, sizeof sg);
        strcpy(sg.SGID, sgs[k]);
        assert_int_equal(f->a->ops->put_sg(f->a, &sg), 0);
    }
    for (int i = 1; i <= 4; i++) {
        cpns_store_pne p;
        memset(&p, 0, sizeof p);
        snprintf(p.PNEID, sizeof p.PNEID, "pne-%d", i);
        memset(p.EUK, i, sizeof p.EUK);
        assert_int_equal(f->a->ops->put_pne(f->a, &p), 0);
        for (int k = 0; k < 2; k++) {
            cpns_store_member m = member(sgs[k], p.PNEID, 0, CPNS_MEMBER_PENDING, 1);
            assert_int_equal(f->a->ops->put_member(f->a, &m), 0);
        }
    }
    assert_int_equal(f->a->ops->commit(f->a), 0);
}

typedef struct per_pne {
    int members[5]; /* rows handed to the loader, by PNE number */
} per_pne;

static int count_member(void *arg, const cpns_store_member *m)
{
    int i = atoi(m->PNEID + 4);
    assert_true(i >= 1 && i <= 4);
    ((per_pne *)arg)->members[i]++;
    return 0;
}

static void claims_batch(void **state)
{
    fx *f = *state;
    make_groups(f);
    seen s = {0};
    int64_t epoch;
    assert_int_equal(f->a->ops->claim_gw(f->a, "gw-1", "pn-1", &loader, &s, &epoch), 0);
    assert_int_equal(f->b->ops->claim_gw(f->b, "gw-2", "pn-2", &loader, &s, &epoch), 0);
    assert_int_equal(epoch, 1);
    assert_int_equal(f->a->ops->claim_gw(f->a, "gw-1", "pn-1", &loader, &s, &epoch), 0);
    assert_int_equal(epoch, 2); /* gw-1's session here is at epoch 2, gw-2's on b at 1 */
    /* On b: pne-3 registered through gw-2 (its rows are b's), pne-4's Nonce 0x44 seen. */
    cpns_store_nonce n3 = nonce("pne-3", 0x33), n4 = nonce("pne-4", 0x44);
    assert_int_equal(claim_one(f->b, &n3, "gw-2", "pn-2", &s), 0);
    assert_int_equal(claim_one(f->b, &n4, "gw-2", "pn-2", &s), 0);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM member WHERE owner_gw = 'gw-2'"),
                     4);

    /* On a, one batch: pne-1, pne-2 new, pne-3 moves to gw-1, pne-4's Nonce replayed. */
    cpns_store_pne_claim c[4] = {
        claim("pne-4", 0x44, "gw-1", "pn-1"),
        claim("pne-2", 0x22, "gw-1", "pn-1"),
        claim("pne-1", 0x11, "gw-1", "pn-1"),
        claim("pne-3", 0x34, "gw-1", "pn-1"),
    };
    int result[4] = {1, 1, 1, 1};
    per_pne got = {{0}};
    const cpns_store_loader counting = {see_pne, see_sg, count_member, see_nonce};
    assert_int_equal(f->a->ops->claim_pnes(f->a, c, 4, result, &counting, &got), 0);
    assert_int_equal(result[0], CPNS_ERR_EXISTS);
    assert_int_equal(result[1], 0);
    assert_int_equal(result[2], 0);
    assert_int_equal(result[3], 0);
    /* Every row of the accepted PNEs handed over, none of the refused one. */
    assert_int_equal(got.members[1], 2);
    assert_int_equal(got.members[2], 2);
    assert_int_equal(got.members[3], 2);
    assert_int_equal(got.members[4], 0);
    /* Routes and owner tokens: gw-1 at this session's epoch 2; pne-4 stays b's. */
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM pne WHERE registered AND"
                                            " pngwid = 'gw-1' AND pnid = 'pn-1'"),
                     3);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM pne WHERE pneid = 'pne-4' AND"
                                            " pngwid = 'gw-2'"),
                     1);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM member WHERE owner_gw = 'gw-1'"
                                            " AND owner_epoch = 2 AND pneid <> 'pne-4'"),
                     6);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM member WHERE owner_gw = 'gw-2'"),
                     2);
    /* One transaction: the three routes were written by one (their rows' xmin). */
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(DISTINCT xmin::text) FROM pne"
                                            " WHERE pngwid = 'gw-1'"),
                     1);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM nonce"), 5);

    /* The same batch again: every Nonce is a replay now, nothing moves. */
    memset(&got, 0, sizeof got);
    assert_int_equal(f->b->ops->claim_pnes(f->b, c, 4, result, &counting, &got), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(result[i], CPNS_ERR_EXISTS);
    assert_int_equal(got.members[1] + got.members[2] + got.members[3] + got.members[4], 0);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM pne WHERE pngwid = 'gw-1'"), 3);

    /* A PNEID twice in one batch is refused whole; an empty batch does nothing. */
    c[1] = claim("pne-1", 0x55, "gw-1", "pn-1");
    assert_int_equal(f->a->ops->claim_pnes(f->a, c + 1, 2, result, &counting, &got),
                     CPNS_ERR_INVALID_ARG);
    assert_int_equal(test_pg_scalar(f->uri, "SELECT count(*) FROM nonce"), 5);
    assert_int_equal(f->a->ops->claim_pnes(f->a, NULL, 0, NULL, &counting, &got), 0);
}

typedef struct got {
    int n;
    char kind[8], key[80];
} got;

static int on_change(void *arg, const char *kind, const char *key)
{
    got *g = arg;
    g->n++;
    snprintf(g->kind, sizeof g->kind, "%s", kind);
    snprintf(g->key, sizeof g->key, "%s", key);
    return 0;
}

static void change_feed_by_notify_and_sweep(void **state)
{
    fx *f = *state;
    assert_int_equal(cpns_store_pg_changes_start(f->a), 0);
    assert_int_equal(cpns_store_pg_changes_start(f->b), 0);
    int fd = cpns_store_pg_changes_fd(f->b);
    assert_true(fd >= 0);

    /* By NOTIFY: b's descriptor becomes readable and the change is handed out. */
    assert_int_equal(f->a->ops->note_change(f->a, "sg", "sg-new"), 0);
    assert_int_equal(f->a->ops->commit(f->a), 0);
    got g = {0};
    size_t n = 0;
    for (int i = 0; i < 100 && g.n == 0; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 100);
        assert_int_equal(cpns_store_pg_changes(f->b, 0, on_change, &g, &n), 0);
    }
    assert_int_equal(g.n, 1);
    assert_string_equal(g.kind, "sg");
    assert_string_equal(g.key, "sg-new");

    /* Its maker does not get its own change back. */
    got mine = {0};
    assert_int_equal(cpns_store_pg_changes(f->a, 1, on_change, &mine, &n), 0);
    assert_int_equal(mine.n, 0);

    /* Without a notification (a lost one): only the sweep finds it. */
    assert_int_equal(test_pg_exec(f->uri, "INSERT INTO change (kind, key, instance_id)"
                                          " VALUES ('pne', 'pne-9', 'inst-a')"),
                     0);
    memset(&g, 0, sizeof g);
    assert_int_equal(cpns_store_pg_changes(f->b, 0, on_change, &g, &n), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(cpns_store_pg_changes(f->b, 1, on_change, &g, &n), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.kind, "pne");
    assert_string_equal(g.key, "pne-9");
    /* Handed out once. */
    assert_int_equal(cpns_store_pg_changes(f->b, 1, on_change, &g, &n), 0);
    assert_int_equal(g.n, 1);
}

static void scope_and_instance_row(void **state)
{
    fx *f = *state;
    make_group(f);
    seen s = {0};
    assert_int_equal(f->b->ops->load_scope(f->b, "sg-x", NULL, &loader, &s), 0);
    assert_int_equal(s.sgs, 1);
    assert_int_equal(s.sg.KeyVersion, 1);
    assert_int_equal(s.sg.GK[0], 1);
    assert_int_equal(s.members, 1);
    memset(&s, 0, sizeof s);
    assert_int_equal(f->b->ops->load_scope(f->b, NULL, "pne-1", &loader, &s), 0);
    assert_int_equal(s.pnes, 1);
    assert_int_equal(s.members, 1);
    assert_int_equal(f->a->ops->del_sg(f->a, "sg-x"), 0);
    assert_int_equal(f->a->ops->commit(f->a), 0);
    assert_int_equal(f->b->ops->load_scope(f->b, "sg-x", NULL, &loader, &s), CPNS_ERR_NOT_FOUND);

    /* One live process per instance id. */
    int held = 0;
    assert_int_equal(cpns_store_pg_heartbeat(f->a, 15000, "", "", &held), 0);
    assert_int_equal(held, 1);
    cpns_store *twin = open_as(f, "inst-a");
    assert_int_equal(cpns_store_pg_heartbeat(twin, 15000, "", "", &held), 0);
    assert_int_equal(held, 0);
    assert_int_equal(cpns_store_pg_release(f->a), 0);
    assert_int_equal(cpns_store_pg_heartbeat(twin, 15000, "", "", &held), 0);
    assert_int_equal(held, 1);
    cpns_store_free(twin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fenced_after_newer_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(claims_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(one_key_per_version, setup, teardown),
        cmocka_unit_test_setup_teardown(nonce_replay_refused_across_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(change_feed_by_notify_and_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(scope_and_instance_row, setup, teardown),
    };
    return cmocka_run_group_tests(tests, test_pg_group_setup, test_pg_group_teardown);
}
