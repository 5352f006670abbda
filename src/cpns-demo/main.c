/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpns-demo: the procedure of CPNS 7.8.6 end to end, in one process.
 *
 * The real server, GW and PNE engines of libcpns, wired by src/sim (no
 * sockets, a virtual clock), with every frame printed as it crosses a hop:
 * a Service Group is created, every member ends up holding the same Group
 * Key, a message sealed by one member opens on another, and removing a
 * member rekeys the group so that the removed one cannot open new messages.
 * Exits 0 only if every step did what the protocol says.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static int failures;

static void step(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("\n== ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void check(int ok, const char *what)
{
    printf("   [%s] %s\n", ok ? " ok " : "FAIL", what);
    if (!ok)
        failures++;
}

static const char *hop_name(sim_hop hop)
{
    switch (hop) {
    case SIM_SERVER_TO_GW:
        return "server -> gw    ";
    case SIM_GW_TO_SERVER:
        return "gw     -> server";
    case SIM_GW_TO_PNE:
        return "gw     -> pne   ";
    case SIM_PNE_TO_GW:
        return "pne    -> gw    ";
    }
    return "?";
}

/* Prints every frame that moves; drops none. */
static bool trace(void *arg, sim_hop hop, int pne, const cpns_msg *m)
{
    const sim *s = arg;
    printf("   %s %-26s TID=%-19llu", hop_name(hop), cpns_msg_kind_name(m->kind),
           (unsigned long long)m->TransactionID);
    if (pne >= 0)
        printf(" [%s]", s->pnes[pne].PNEID);
    else if (m->present & CPNS_F_PNEID)
        printf(" PNEID=%s", m->PNEID);
    if (m->present & CPNS_F_RETURN)
        printf(" Return=%u", m->Return);
    printf("\n");
    return false;
}

static int print_member(void *arg, const cpns_member_info *m)
{
    (void)arg;
    printf("   %-12s %-10s Return=%-3d attempts=%u PNID=%-8s KeyVersion=%u\n", m->PNEID,
           cpns_member_state_name(m->state), m->Return, m->attempts, m->PNID ? m->PNID : "-",
           m->KeyVersion);
    return 0;
}

static void print_fingerprints(sim *s, const char *SGID, const char *expect_fp, int n)
{
    for (int i = 0; i < n; i++) {
        cpns_key_slot k;
        char fp[CPNS_FINGERPRINT_LEN + 1] = "(none)";
        uint32_t v = 0;
        if (sim_pne_key(s, i, SGID, &k) == 0) {
            cpns_fingerprint(k.GK, CPNS_KEY_LEN, fp);
            v = k.KeyVersion;
            cpns_wipe(&k, sizeof k);
        }
        printf("   %-12s version %u fingerprint %s\n", s->pnes[i].PNEID, v, fp);
        if (expect_fp)
            check(strcmp(fp, expect_fp) == 0, "holds the server's current Group Key");
    }
}

/* Seals text with the current key of PNE i into out (base64). */
static int seal(sim *s, int i, const char *SGID, const char *text, char *out, size_t cap)
{
    cpns_key_slot k;
    if (sim_pne_key(s, i, SGID, &k) != 0)
        return -1;
    uint8_t nonce[CPNS_GCM_NONCE_LEN], blob[256];
    size_t len;
    int rv = cpns_random(NULL, nonce, sizeof nonce);
    if (rv == 0)
        rv = cpns_group_seal(k.GK, SGID, k.KeyVersion, nonce, (const uint8_t *)text, strlen(text),
                             blob, &len);
    cpns_wipe(&k, sizeof k);
    return rv == 0 && cpns_b64_encode(blob, len, out, cap) > 0 ? 0 : -1;
}

/* Opens a sealed message on PNE i with the stored key of its version; 0 and the text, or -1. */
static int open_msg(sim *s, int i, const char *SGID, const char *b64, char *text, size_t cap)
{
    uint8_t blob[256], pt[256];
    size_t len, pt_len;
    uint32_t version;
    if (cpns_b64_decode(b64, strlen(b64), blob, sizeof blob, &len) != 0 ||
        cpns_group_msg_version(blob, len, &version) != 0)
        return -1;
    cpns_stored_keys keys;
    cpns_keystore *ks = s->pnes[i].keystore;
    if (ks->ops->get(ks, SGID, &keys) != 0)
        return -1;
    const cpns_key_slot *k = keys.current.KeyVersion == version    ? &keys.current
                             : keys.previous.KeyVersion == version ? &keys.previous
                                                                   : NULL;
    int rv = k ? cpns_group_open(k->GK, SGID, blob, len, pt, &pt_len) : -1;
    cpns_wipe(&keys, sizeof keys);
    if (rv != 0 || pt_len >= cap)
        return -1;
    memcpy(text, pt, pt_len);
    text[pt_len] = '\0';
    return 0;
}

int main(void)
{
    static sim s;
    static const char *members[] = {"pne-tv", "pne-phone", "pne-laptop"};
    const char *SGID = "sg-family";

    printf("CPNS 7.8.6 Simplified Group Key management: in-process demo\n");
    printf(
        "(libcpns engines joined by function calls; every frame is printed as it crosses a hop)\n");
    if (sim_init(&s, 0, NULL, NULL) != 0) {
        fprintf(stderr, "cpns-demo: cannot create the simulation\n");
        return 1;
    }
    s.filter = trace;
    s.filter_arg = &s;

    step("Provisioning three PNEs on the server (each with its own Entity User Key)");
    for (int i = 0; i < 3; i++)
        check(sim_add_pne(&s, members[i], NULL) == i, members[i]);

    step("The PN GW 'gw-home' connects to the server and registers");
    check(sim_gw_connect(&s) == 0 && cpns_gw_get_state(s.gw) == CPNS_GW_ONLINE, "GW online");

    step("The PNEs attach to the GW and register (Proof of their EUK)");
    for (int i = 0; i < 3; i++)
        check(sim_pne_up(&s, i) == 0 && cpns_pne_get_state(s.pnes[i].pne) == CPNS_PNE_REGISTERED,
              members[i]);

    step("Creating Service Group %s: the server stores the inventory, generates a Group Key "
         "and delivers it",
         SGID);
    check(cpns_server_sg_create(s.server, SGID, members, 3, s.now) == 0, "SG created");
    check(sim_run(&s) == 0, "frames delivered");
    cpns_sg_info sg;
    check(cpns_server_sg_get(s.server, SGID, &sg) == 0 && sg.complete,
          "distribution complete: every member answered Return 1");
    printf("\n   server: SG %s KeyVersion %u fingerprint %s\n", SGID, sg.KeyVersion,
           sg.fingerprint);
    cpns_server_sg_members(s.server, SGID, print_member, NULL);
    print_fingerprints(&s, SGID, sg.fingerprint, 3);

    step("pne-tv seals a group message; pne-phone opens it");
    char sealed[512], text[256];
    check(seal(&s, 0, SGID, "dinner is ready", sealed, sizeof sealed) == 0, "sealed");
    printf("   message: %s\n", sealed);
    check(open_msg(&s, 1, SGID, sealed, text, sizeof text) == 0 &&
              strcmp(text, "dinner is ready") == 0,
          "pne-phone reads \"dinner is ready\"");

    step("Removing pne-laptop from %s: the group is rekeyed", SGID);
    const char *gone[] = {"pne-laptop"};
    check(cpns_server_sg_update(s.server, SGID, NULL, 0, gone, 1, s.now) == 0, "member removed");
    check(sim_run(&s) == 0, "frames delivered");
    check(cpns_server_sg_get(s.server, SGID, &sg) == 0 && sg.complete && sg.KeyVersion == 2,
          "version 2 complete");
    cpns_server_sg_members(s.server, SGID, print_member, NULL);
    print_fingerprints(&s, SGID, NULL, 3);

    step("pne-tv seals a new message under version 2");
    check(seal(&s, 0, SGID, "the laptop is gone", sealed, sizeof sealed) == 0, "sealed");
    check(open_msg(&s, 1, SGID, sealed, text, sizeof text) == 0, "pne-phone opens it");
    check(open_msg(&s, 2, SGID, sealed, text, sizeof text) != 0,
          "pne-laptop cannot open it (it only holds version 1)");

    printf("\n%llu frames moved. %s\n", (unsigned long long)s.frames_moved,
           failures ? "SOME STEPS FAILED" : "Every step succeeded.");
    sim_fini(&s);
    return failures ? 1 : 0;
}
