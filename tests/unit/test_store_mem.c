/*
 * Tests of lib/store_mem.c: the memory backend of the store ops. Writes are
 * invisible until commit, lost on rollback and on a simulated crash, applied
 * all together by commit; injected faults fail writes and commits (a failed
 * commit keeps its writes for a retry); load() reports everything in order.
 */
#include <string.h>

#include "support.h"

static cpns_store_sg sg_row(const char *SGID, uint32_t KeyVersion)
{
    cpns_store_sg r;
    memset(&r, 0, sizeof r);
    strcpy(r.SGID, SGID);
    r.KeyVersion = KeyVersion;
    memset(r.GK, (int)KeyVersion, sizeof r.GK);
    return r;
}

static cpns_store_member member_row(const char *SGID, const char *PNEID, cpns_member_state st)
{
    cpns_store_member r;
    memset(&r, 0, sizeof r);
    strcpy(r.SGID, SGID);
    strcpy(r.PNEID, PNEID);
    r.KeyVersion = 1;
    r.state = st;
    r.Return = -1;
    r.fail_reason = -1;
    return r;
}

static void test_commit_rollback_crash(void **state)
{
    cpns_store *st;
    assert_int_equal(cpns_store_mem_new(&st), 0);
    const cpns_store_ops *ops = st->ops;
    cpns_store_sg sg = sg_row("sg-1", 1), got;
    cpns_store_member m = member_row("sg-1", "pne-a", CPNS_MEMBER_PENDING), gm;
    assert_int_equal(ops->put_sg(st, &sg), 0);
    assert_int_equal(ops->put_member(st, &m), 0);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &got), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_store_mem_commits(st), 0);
    assert_int_equal(ops->commit(st), 0);
    assert_int_equal(cpns_store_mem_commits(st), 1);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &got), 0);
    assert_memory_equal(&got, &sg, sizeof sg);
    assert_int_equal(cpns_store_mem_get_member(st, "sg-1", "pne-a", &gm), 0);
    assert_int_equal(gm.state, CPNS_MEMBER_PENDING);

    /* Rollback and crash forget uncommitted writes. */
    m.state = CPNS_MEMBER_DELIVERED;
    assert_int_equal(ops->put_member(st, &m), 0);
    assert_int_equal(ops->rollback(st), 0);
    assert_int_equal(ops->commit(st), 0);
    assert_int_equal(cpns_store_mem_get_member(st, "sg-1", "pne-a", &gm), 0);
    assert_int_equal(gm.state, CPNS_MEMBER_PENDING);
    assert_int_equal(ops->put_member(st, &m), 0);
    assert_int_equal(ops->del_sg(st, "sg-1"), 0);
    cpns_store_mem_crash(st);
    assert_int_equal(ops->commit(st), 0);
    assert_int_equal(cpns_store_mem_get_member(st, "sg-1", "pne-a", &gm), 0);
    assert_int_equal(gm.state, CPNS_MEMBER_PENDING);

    /* Replace, delete a member, delete an SG with its members. */
    assert_int_equal(ops->put_member(st, &m), 0);
    cpns_store_member m2 = member_row("sg-1", "pne-b", CPNS_MEMBER_SENT);
    assert_int_equal(ops->put_member(st, &m2), 0);
    assert_int_equal(ops->del_member(st, "sg-1", "pne-a"), 0);
    assert_int_equal(ops->del_member(st, "sg-1", "pne-zz"), 0);
    assert_int_equal(ops->commit(st), 0);
    assert_int_equal(cpns_store_mem_get_member(st, "sg-1", "pne-a", &gm), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_store_mem_get_member(st, "sg-1", "pne-b", &gm), 0);
    assert_int_equal(ops->del_sg(st, "sg-1"), 0);
    assert_int_equal(ops->commit(st), 0);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &got), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_store_mem_get_member(st, "sg-1", "pne-b", &gm), CPNS_ERR_NOT_FOUND);
    cpns_store_close(st);
    cpns_store_close(NULL);
}

static void test_injected_faults(void **state)
{
    cpns_store *st;
    assert_int_equal(cpns_store_mem_new(&st), 0);
    const cpns_store_ops *ops = st->ops;
    cpns_store_sg sg = sg_row("sg-1", 1), got;
    cpns_store_mem_fail_writes(st, 1);
    assert_int_equal(ops->put_sg(st, &sg), CPNS_ERR_STORE);
    assert_int_equal(ops->put_sg(st, &sg), 0);
    /* A failed commit keeps the transaction for a retry. */
    cpns_store_mem_fail_writes(st, 1);
    assert_int_equal(ops->commit(st), CPNS_ERR_STORE);
    assert_int_equal(cpns_store_mem_commits(st), 0);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &got), CPNS_ERR_NOT_FOUND);
    assert_int_equal(ops->commit(st), 0);
    assert_int_equal(cpns_store_mem_get_sg(st, "sg-1", &got), 0);
    assert_int_equal(cpns_store_mem_commits(st), 1);
    cpns_store_close(st);
}

typedef struct seen {
    char order[16];
    int n;
    cpns_store_pne pne;
    cpns_store_member member;
    cpns_store_nonce nonce;
} seen;

static int on_pne(void *arg, const cpns_store_pne *p)
{
    seen *s = arg;
    s->order[s->n++] = 'p';
    s->pne = *p;
    return 0;
}

static int on_sg(void *arg, const cpns_store_sg *sg)
{
    seen *s = arg;
    s->order[s->n++] = 's';
    return 0;
}

static int on_member(void *arg, const cpns_store_member *m)
{
    seen *s = arg;
    s->order[s->n++] = 'm';
    s->member = *m;
    return 0;
}

static int on_nonce(void *arg, const cpns_store_nonce *n)
{
    seen *s = arg;
    s->order[s->n++] = 'n';
    s->nonce = *n;
    return 0;
}

static int abort_on_sg(void *arg, const cpns_store_sg *sg)
{
    return CPNS_ERR_CORRUPT;
}

static void test_load_order_and_nonce_expiry(void **state)
{
    cpns_store *st;
    assert_int_equal(cpns_store_mem_new(&st), 0);
    const cpns_store_ops *ops = st->ops;
    cpns_store_pne p;
    memset(&p, 0, sizeof p);
    strcpy(p.PNEID, "pne-a");
    memset(p.EUK, 0x5a, sizeof p.EUK);
    p.registered = 1;
    strcpy(p.PNGWID, "gw-1");
    strcpy(p.PNID, "pn-1");
    cpns_store_sg sg1 = sg_row("sg-1", 1), sg2 = sg_row("sg-2", 3);
    cpns_store_member m = member_row("sg-2", "pne-a", CPNS_MEMBER_FAILED);
    m.fail_reason = 2;
    cpns_store_nonce old = {"pne-a", {1}, 1000}, fresh = {"pne-a", {2}, 5000};
    /* Written out of order; load() still reports PNEs, SGs, members, nonces. */
    assert_int_equal(ops->put_sg(st, &sg2), 0);
    assert_int_equal(ops->put_member(st, &m), 0);
    assert_int_equal(ops->put_sg(st, &sg1), 0);
    assert_int_equal(ops->put_pne(st, &p), 0);
    assert_int_equal(ops->put_nonce(st, &old), 0);
    assert_int_equal(ops->put_nonce(st, &fresh), 0);
    assert_int_equal(ops->expire_nonces(st, 2000), 0);
    assert_int_equal(ops->commit(st), 0);

    seen s;
    memset(&s, 0, sizeof s);
    cpns_store_loader l = {on_pne, on_sg, on_member, on_nonce};
    assert_int_equal(ops->load(st, &l, &s), 0);
    assert_string_equal(s.order, "pssmn");
    assert_memory_equal(&s.pne, &p, sizeof p);
    assert_memory_equal(&s.member, &m, sizeof m);
    assert_int_equal(s.nonce.seen_ms, 5000);
    assert_int_equal(s.nonce.Nonce[0], 2);
    l.sg = abort_on_sg;
    memset(&s, 0, sizeof s);
    assert_int_equal(ops->load(st, &l, &s), CPNS_ERR_CORRUPT);
    cpns_store_close(st);
}

static void test_member_state_names(void **state)
{
    assert_string_equal(cpns_member_state_name(CPNS_MEMBER_PENDING), "pending");
    assert_string_equal(cpns_member_state_name(CPNS_MEMBER_SENT), "sent");
    assert_string_equal(cpns_member_state_name(CPNS_MEMBER_DELIVERED), "delivered");
    assert_string_equal(cpns_member_state_name(CPNS_MEMBER_FAILED), "failed");
    assert_string_equal(cpns_member_state_name((cpns_member_state)9), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_rollback_crash),
        cmocka_unit_test(test_injected_faults),
        cmocka_unit_test(test_load_order_and_nonce_expiry),
        cmocka_unit_test(test_member_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
