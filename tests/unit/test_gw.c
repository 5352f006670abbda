/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the PN GW engine (lib/gw.c): forwarding of 7.8.6.2 byte for byte,
 * the Return 6 / Return 4 answers it gives on a PNE's behalf, the routing
 * table (registration pass-through, one PNEID per link, route takeover),
 * status notifications, the server connection's life cycle and max_pnes.
 * The "server" and the PNEs are scripted frames; one test wires a real PNE
 * engine behind the GW.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define GW_ID "gw-1"
#define GW_PNID "pn-home"
#define T0 1795000000000LL
#define SRV CPNS_GW_LINK_SERVER

typedef struct frame {
    uint64_t link;
    size_t len;
    uint8_t data[4096];
} frame;

typedef struct fixture {
    uint64_t seed;
    cpns_gw *gw;
} fixture;

static cpns_gw *new_gw(uint64_t *seed, size_t max_pnes)
{
    cpns_gw *gw = NULL;
    cpns_gw_config cfg = {0};
    cfg.PNGWID = GW_ID;
    cfg.PNID = GW_PNID;
    cfg.max_pnes = max_pnes;
    cfg.rand = test_rand;
    cfg.rand_arg = seed;
    cfg.log = test_log;
    assert_int_equal(cpns_gw_new(&gw, &cfg), 0);
    return gw;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->seed = 7;
    f->gw = new_gw(&f->seed, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cpns_gw_free(f->gw);
    free(f);
    return 0;
}

/* --- helpers --- */

static size_t encode(const cpns_msg *m, uint8_t *buf, size_t cap)
{
    size_t len;
    assert_int_equal(cpns_msg_encode(m, buf, cap, &len), 0);
    return len;
}

static int pop_frame(cpns_gw *gw, frame *fr)
{
    cpns_out out;
    int rv = cpns_gw_pop(gw, &out);
    assert_true(rv == 0 || rv == 1);
    if (rv == 1) {
        assert_true(out.len <= sizeof fr->data);
        fr->link = out.link;
        fr->len = out.len;
        memcpy(fr->data, out.data, out.len);
    }
    return rv;
}

static void assert_nothing_queued(cpns_gw *gw)
{
    frame fr;
    assert_int_equal(pop_frame(gw, &fr), 0);
}

/* Pops the next frame, checks its destination and decodes it. */
static void pop_msg(cpns_gw *gw, uint64_t link, cpns_msg *m)
{
    frame fr;
    assert_int_equal(pop_frame(gw, &fr), 1);
    assert_int_equal(fr.link, link);
    assert_int_equal(cpns_msg_decode(fr.data, fr.len, m), 0);
}

/* Pops the next frame and checks it is exactly data[0..len) for link. */
static void pop_exact(cpns_gw *gw, uint64_t link, const uint8_t *data, size_t len)
{
    frame fr;
    assert_int_equal(pop_frame(gw, &fr), 1);
    assert_int_equal(fr.link, link);
    assert_int_equal(fr.len, len);
    assert_memory_equal(fr.data, data, len);
}

static void from_server(cpns_gw *gw, const cpns_msg *m)
{
    uint8_t buf[2048];
    size_t len = encode(m, buf, sizeof buf);
    assert_int_equal(cpns_gw_recv_server(gw, buf, len, T0), 0);
}

static void from_server_str(cpns_gw *gw, const char *xml)
{
    assert_int_equal(cpns_gw_recv_server(gw, (const uint8_t *)xml, strlen(xml), T0), 0);
}

static void from_link_str(cpns_gw *gw, uint64_t link, const char *xml)
{
    assert_int_equal(cpns_gw_recv_link(gw, link, (const uint8_t *)xml, strlen(xml), T0), 0);
}

static void gw_registration_response(cpns_gw *gw, uint64_t tid, uint32_t Return)
{
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_PNGW_REGISTRATION_RESPONSE, tid);
    m.Return = Return;
    m.present |= CPNS_F_RETURN;
    from_server(gw, &m);
}

/* server_up, check the PNGWRegistrationRequest, answer Return. */
static void bring_up(cpns_gw *gw, uint32_t Return)
{
    cpns_msg req;
    assert_int_equal(cpns_gw_server_up(gw, T0), 0);
    assert_int_equal(cpns_gw_get_state(gw), CPNS_GW_REGISTERING);
    pop_msg(gw, SRV, &req);
    assert_int_equal(req.kind, CPNS_MSG_PNGW_REGISTRATION_REQUEST);
    assert_string_equal(req.PNGWID, GW_ID);
    assert_string_equal(req.PNID, GW_PNID);
    gw_registration_response(gw, req.TransactionID, Return);
}

static void bring_online(cpns_gw *gw)
{
    bring_up(gw, CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_gw_get_state(gw), CPNS_GW_ONLINE);
}

/* A PNERegistrationRequest as a PNE sends it (Nonce/Proof are opaque to the GW). */
static size_t pne_registration_request(uint64_t tid, const char *PNEID, uint8_t *buf, size_t cap)
{
    cpns_msg m;
    uint8_t nonce[CPNS_NONCE_LEN], proof[CPNS_PROOF_LEN];
    memset(nonce, 0x11, sizeof nonce);
    memset(proof, 0x22, sizeof proof);
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_REQUEST, tid);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, PNEID), 0);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_NONCE, nonce, sizeof nonce), 0);
    assert_int_equal(cpns_msg_set_blob(&m, CPNS_F_PROOF, proof, sizeof proof), 0);
    m.Time = (uint64_t)(T0 / 1000);
    m.present |= CPNS_F_TIME;
    return encode(&m, buf, cap);
}

static size_t pne_registration_response(uint64_t tid, const char *PNEID, uint32_t Return,
                                        uint8_t *buf, size_t cap)
{
    cpns_msg m;
    cpns_msg_init(&m, CPNS_MSG_PNE_REGISTRATION_RESPONSE, tid);
    m.Return = Return;
    m.present |= CPNS_F_RETURN;
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNEID, PNEID), 0);
    assert_int_equal(cpns_msg_set_id(&m, CPNS_F_PNID, GW_PNID), 0);
    return encode(&m, buf, cap);
}

/* Link sends a registration, the server answers Return; both pass byte for byte. */
static void register_on_link(cpns_gw *gw, uint64_t link, const char *PNEID, uint32_t Return)
{
    uint8_t req[1024], resp[1024];
    static uint64_t tid = 500;
    tid++;
    size_t req_len = pne_registration_request(tid, PNEID, req, sizeof req);
    assert_int_equal(cpns_gw_recv_link(gw, link, req, req_len, T0), 0);
    pop_exact(gw, SRV, req, req_len);
    size_t resp_len = pne_registration_response(tid, PNEID, Return, resp, sizeof resp);
    assert_int_equal(cpns_gw_recv_server(gw, resp, resp_len, T0), 0);
    pop_exact(gw, link, resp, resp_len);
    assert_nothing_queued(gw);
}

static void attach(cpns_gw *gw, uint64_t link, const char *PNEID)
{
    assert_int_equal(cpns_gw_link_open(gw, link, T0), 0);
    register_on_link(gw, link, PNEID, CPNS_RETURN_SUCCESS);
}

/*
 * A SGroupKeyDeliveryRequest as text, laid out in a way a re-encoder would
 * not reproduce (line breaks, an unknown attribute), so equality proves the
 * GW forwarded the received bytes.
 */
static void delivery_request_xml(char *buf, size_t cap, uint64_t tid, const char *SGID,
                                 const char *PNEID, const char *EncryptedGroupKey)
{
    snprintf(buf, cap,
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
             "TransactionID=\"%llu\">\n"
             "  <SGroupKeyDeliveryRequest   SGID=\"%s\" Future=\"ignored\">\n"
             "    <GroupKeyInfo PNEID=\"%s\" KeyVersion=\"3\"\n"
             "                  EncryptedGroupKey=\"%s\"/>\n"
             "  </SGroupKeyDeliveryRequest>\n"
             "</CPNSMessage>\n",
             (unsigned long long)tid, SGID, PNEID, EncryptedGroupKey);
}

#define VALID_EGK                                                                                  \
    "AQABAgMEBQYHCAkKC45q4IHgR6NOzNjPvzx/4bpRc46Qq5o/KxsQcqMJyl2i9QN21K5E0iH8ECZuJd7D+w=="

static void delivery_response_xml(char *buf, size_t cap, uint64_t tid, const char *PNEID)
{
    snprintf(buf, cap,
             "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
             "TransactionID=\"%llu\"><SGroupKeyDeliveryResponse Return=\"1\" PNID=\"pn-home\" "
             "SGID=\"sg-family\" PNEID=\"%s\" KeyVersion=\"3\" "
             "KeyConfirmation=\"SyIoa3oG/Z50VPpF4+qQ4w==\"  Extra=\"x\"/></CPNSMessage>",
             (unsigned long long)tid, PNEID);
}

/* --- tests --- */

static void test_new_and_links(void **state)
{
    fixture *f = *state;
    cpns_gw *gw = NULL;
    cpns_gw_config cfg = {0};
    cfg.PNGWID = "bad id";
    cfg.PNID = GW_PNID;
    assert_int_equal(cpns_gw_new(&gw, &cfg), CPNS_ERR_INVALID_ARG);
    cfg.PNGWID = GW_ID;
    cfg.PNID = NULL;
    assert_int_equal(cpns_gw_new(&gw, &cfg), CPNS_ERR_INVALID_ARG);
    assert_null(gw);
    cpns_gw_free(NULL);

    assert_int_equal(cpns_gw_get_state(f->gw), CPNS_GW_OFFLINE);
    assert_int_equal(cpns_gw_last_return(f->gw), -1);
    assert_int_equal(cpns_gw_link_open(f->gw, SRV, T0), CPNS_ERR_INVALID_ARG);
    assert_int_equal(cpns_gw_link_open(f->gw, 5, T0), 0);
    assert_int_equal(cpns_gw_link_open(f->gw, 5, T0), CPNS_ERR_EXISTS);
    assert_int_equal(cpns_gw_recv_link(f->gw, 6, (const uint8_t *)"x", 1, T0), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_gw_link_close(f->gw, 6, T0), CPNS_ERR_NOT_FOUND);
    assert_int_equal(cpns_gw_link_close(f->gw, 5, T0), 0);
    assert_nothing_queued(f->gw);
}

/* 7.8.6.2-1: a request from the server reaches the PNE's link, byte for byte. */
static void test_7_8_6_2_1_forward_request_byte_for_byte(void **state)
{
    fixture *f = *state;
    char xml[2048];
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    attach(f->gw, 12, "pne-radio");
    delivery_request_xml(xml, sizeof xml, 8812, "sg-family", "pne-radio", VALID_EGK);
    from_server_str(f->gw, xml);
    pop_exact(f->gw, 12, (const uint8_t *)xml, strlen(xml));
    delivery_request_xml(xml, sizeof xml, 8813, "sg-family", "pne-tv", VALID_EGK);
    from_server_str(f->gw, xml);
    pop_exact(f->gw, 11, (const uint8_t *)xml, strlen(xml));
    assert_nothing_queued(f->gw);
}

/*
 * 7.8.6.2-1: the GW never holds the key in clear: it does not decode the
 * blob, so valid-base64 garbage and even undecodable base64 pass unchanged
 * (the PNE is the one that judges EncryptedGroupKey).
 */
static void test_7_8_6_2_1_blob_not_decoded(void **state)
{
    fixture *f = *state;
    char xml[2048];
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    delivery_request_xml(xml, sizeof xml, 9001, "sg-family", "pne-tv", "AAAAAAAA");
    from_server_str(f->gw, xml);
    pop_exact(f->gw, 11, (const uint8_t *)xml, strlen(xml));
    delivery_request_xml(xml, sizeof xml, 9002, "sg-family", "pne-tv", "**not base64**");
    from_server_str(f->gw, xml);
    pop_exact(f->gw, 11, (const uint8_t *)xml, strlen(xml));
    assert_nothing_queued(f->gw);
}

/* 7.8.6.2-2: a response from the PNE reaches the server, byte for byte. */
static void test_7_8_6_2_2_forward_response_byte_for_byte(void **state)
{
    fixture *f = *state;
    char xml[2048];
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    delivery_response_xml(xml, sizeof xml, 8812, "pne-tv");
    from_link_str(f->gw, 11, xml);
    pop_exact(f->gw, SRV, (const uint8_t *)xml, strlen(xml));
    assert_nothing_queued(f->gw);
}

static void assert_gw_answer(cpns_gw *gw, uint64_t tid, uint32_t Return, const char *PNEID)
{
    cpns_msg m;
    pop_msg(gw, SRV, &m);
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
    assert_int_equal(m.TransactionID, tid);
    assert_int_equal(m.Return, Return);
    assert_string_equal(m.PNID, GW_PNID);
    assert_string_equal(m.PNEID, PNEID);
    assert_string_equal(m.SGID, "sg-family");
    assert_int_equal(m.KeyVersion, 3);
    assert_false(m.present & CPNS_F_KC);
}

/* Return 6 when the PNE is not attached: same TransactionID, the GW's PNID, the echoes. */
static void test_return6_pne_absent(void **state)
{
    fixture *f = *state;
    char xml[2048];
    bring_online(f->gw);
    delivery_request_xml(xml, sizeof xml, 4711, "sg-family", "pne-tv", VALID_EGK);
    from_server_str(f->gw, xml);
    assert_gw_answer(f->gw, 4711, CPNS_RETURN_UNREACHABLE, "pne-tv");
    assert_nothing_queued(f->gw);

    /* Once attached and gone again, the same. */
    attach(f->gw, 11, "pne-tv");
    assert_int_equal(cpns_gw_link_close(f->gw, 11, T0), 0);
    cpns_msg n;
    pop_msg(f->gw, SRV, &n); /* detached */
    delivery_request_xml(xml, sizeof xml, 4712, "sg-family", "pne-tv", VALID_EGK);
    from_server_str(f->gw, xml);
    assert_gw_answer(f->gw, 4712, CPNS_RETURN_UNREACHABLE, "pne-tv");
    assert_nothing_queued(f->gw);

    /* Counted (cpns-gw's cpns_gw_delivery_answers_total{return="6"}), as Return 6 only. */
    cpns_gw_stats st;
    cpns_gw_get_stats(f->gw, &st);
    assert_int_equal(st.answered_unreachable, 2);
    assert_int_equal(st.answered_malformed, 0);
}

/* A request the peek cannot route but whose TransactionID and PNEID are readable: Return 4. */
static void test_return4_unroutable_request(void **state)
{
    fixture *f = *state;
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    from_server_str(f->gw, "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                           "TransactionID=\"31\"><SGroupKeyDeliveryRequest SGID=\"sg-family\">"
                           "<GroupKeyInfo PNEID=\"pne-tv\" KeyVersion=\"0\" "
                           "EncryptedGroupKey=\"AAAA\"/></SGroupKeyDeliveryRequest>"
                           "</CPNSMessage>");
    cpns_msg m;
    pop_msg(f->gw, SRV, &m);
    assert_int_equal(m.kind, CPNS_MSG_SGROUPKEY_DELIVERY_RESPONSE);
    assert_int_equal(m.TransactionID, 31);
    assert_int_equal(m.Return, CPNS_RETURN_MALFORMED);
    assert_string_equal(m.PNID, GW_PNID);
    assert_string_equal(m.PNEID, "pne-tv");
    assert_false(m.present & CPNS_F_KEYVERSION);
    assert_nothing_queued(f->gw);
    cpns_gw_stats st;
    cpns_gw_get_stats(f->gw, &st);
    assert_int_equal(st.answered_malformed, 1);
    assert_int_equal(st.answered_unreachable, 0);
}

/* Malformed frames are dropped: from the server without a readable TID or PNEID, from links. */
static void test_malformed_frames_dropped(void **state)
{
    fixture *f = *state;
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    from_server_str(f->gw, "garbage");
    from_server_str(f->gw, "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                           "TransactionID=\"0\"><SGroupKeyDeliveryRequest SGID=\"sg-family\">"
                           "<GroupKeyInfo PNEID=\"pne-tv\" KeyVersion=\"1\" "
                           "EncryptedGroupKey=\"AAAA\"/></SGroupKeyDeliveryRequest>"
                           "</CPNSMessage>");
    from_server_str(f->gw, "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                           "TransactionID=\"32\"><SGroupKeyDeliveryRequest SGID=\"sg-family\">"
                           "<GroupKeyInfo PNEID=\"bad pneid\" KeyVersion=\"1\" "
                           "EncryptedGroupKey=\"AAAA\"/></SGroupKeyDeliveryRequest>"
                           "</CPNSMessage>");
    assert_nothing_queued(f->gw);

    from_link_str(f->gw, 11, "garbage");
    from_link_str(f->gw, 11,
                  "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                  "TransactionID=\"33\"><SGroupKeyDeliveryResponse Return=\"1\" "
                  "PNID=\"pn-home\" PNEID=\"pne-tv\" SGID=\"sg family\" "
                  "KeyVersion=\"1\"/></CPNSMessage>");
    from_link_str(f->gw, 11, "<!DOCTYPE x [<!ENTITY a \"b\">]><CPNSMessage/>");
    assert_nothing_queued(f->gw);
    /* The link is still usable afterwards. */
    char xml[2048];
    delivery_response_xml(xml, sizeof xml, 34, "pne-tv");
    from_link_str(f->gw, 11, xml);
    pop_exact(f->gw, SRV, (const uint8_t *)xml, strlen(xml));
}

/* Registration passes through; only Return 1 sets a route. */
static void test_registration_pass_through_route_on_return1(void **state)
{
    fixture *f = *state;
    char xml[2048];
    bring_online(f->gw);
    assert_int_equal(cpns_gw_link_open(f->gw, 11, T0), 0);
    register_on_link(f->gw, 11, "pne-tv", CPNS_RETURN_UNKNOWN);
    assert_int_equal(cpns_gw_attached(f->gw), 0);
    delivery_request_xml(xml, sizeof xml, 100, "sg-family", "pne-tv", VALID_EGK);
    from_server_str(f->gw, xml);
    assert_gw_answer(f->gw, 100, CPNS_RETURN_UNREACHABLE, "pne-tv");
    /* Without a route the link's responses do not pass either. */
    delivery_response_xml(xml, sizeof xml, 100, "pne-tv");
    from_link_str(f->gw, 11, xml);
    assert_nothing_queued(f->gw);

    register_on_link(f->gw, 11, "pne-tv", CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_gw_attached(f->gw), 1);
    delivery_request_xml(xml, sizeof xml, 101, "sg-family", "pne-tv", VALID_EGK);
    from_server_str(f->gw, xml);
    pop_exact(f->gw, 11, (const uint8_t *)xml, strlen(xml));

    /* A response for a PNEID no link is registering goes nowhere. */
    uint8_t resp[1024];
    size_t len = pne_registration_response(102, "pne-nobody", 1, resp, sizeof resp);
    assert_int_equal(cpns_gw_recv_server(f->gw, resp, len, T0), 0);
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_attached(f->gw), 1);
}

/* A link may only speak for the PNEID it registered. */
static void test_link_speaks_for_one_pneid(void **state)
{
    fixture *f = *state;
    char xml[2048];
    uint8_t req[1024];
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    attach(f->gw, 12, "pne-radio");

    size_t len = pne_registration_request(200, "pne-radio", req, sizeof req);
    assert_int_equal(cpns_gw_recv_link(f->gw, 11, req, len, T0), 0);
    assert_nothing_queued(f->gw);

    delivery_response_xml(xml, sizeof xml, 201, "pne-radio");
    from_link_str(f->gw, 11, xml);
    assert_nothing_queued(f->gw);

    /* A link that never registered speaks for nobody. */
    assert_int_equal(cpns_gw_link_open(f->gw, 13, T0), 0);
    from_link_str(f->gw, 13, xml);
    assert_nothing_queued(f->gw);

    /* A link whose registration is pending is bound already, but not registered. */
    len = pne_registration_request(202, "pne-new", req, sizeof req);
    assert_int_equal(cpns_gw_recv_link(f->gw, 13, req, len, T0), 0);
    pop_exact(f->gw, SRV, req, len);
    len = pne_registration_request(203, "pne-tv", req, sizeof req);
    assert_int_equal(cpns_gw_recv_link(f->gw, 13, req, len, T0), 0);
    delivery_response_xml(xml, sizeof xml, 204, "pne-new");
    from_link_str(f->gw, 13, xml);
    assert_nothing_queued(f->gw);

    /* Other kinds from a link are dropped. */
    from_link_str(f->gw, 12,
                  "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                  "TransactionID=\"205\"><PNEStatusNotification PNEID=\"pne-radio\" "
                  "Status=\"detached\"/></CPNSMessage>");
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_attached(f->gw), 2);
}

/* Closing a registered link: route removed, Status="detached" with a fresh TransactionID. */
static void test_detach_on_close(void **state)
{
    fixture *f = *state;
    cpns_msg n;
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    assert_int_equal(cpns_gw_link_open(f->gw, 12, T0), 0);
    assert_int_equal(cpns_gw_link_close(f->gw, 12, T0), 0); /* never registered: silent */
    assert_nothing_queued(f->gw);

    assert_int_equal(cpns_gw_link_close(f->gw, 11, T0), 0);
    pop_msg(f->gw, SRV, &n);
    assert_int_equal(n.kind, CPNS_MSG_PNE_STATUS_NOTIFICATION);
    assert_string_equal(n.PNEID, "pne-tv");
    assert_int_equal(n.Status, CPNS_STATUS_DETACHED);
    assert_true(n.TransactionID >= 1);
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_attached(f->gw), 0);
}

/* A link's queued frames go when it closes. */
static void test_close_drops_link_frames(void **state)
{
    fixture *f = *state;
    char xml[2048];
    cpns_msg n;
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    delivery_request_xml(xml, sizeof xml, 300, "sg-family", "pne-tv", VALID_EGK);
    from_server_str(f->gw, xml);
    assert_int_equal(cpns_gw_link_close(f->gw, 11, T0), 0);
    pop_msg(f->gw, SRV, &n);
    assert_int_equal(n.Status, CPNS_STATUS_DETACHED);
    assert_nothing_queued(f->gw);
}

/* After (re)connecting and GW registration Return 1: Status="attached" for each PNE still up. */
static void test_attached_after_reconnect(void **state)
{
    fixture *f = *state;
    cpns_msg req, n1, n2;
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    attach(f->gw, 12, "pne-radio");
    attach(f->gw, 13, "pne-fridge");
    assert_int_equal(cpns_gw_server_down(f->gw, T0), 0);
    assert_int_equal(cpns_gw_get_state(f->gw), CPNS_GW_OFFLINE);
    /* Closed while offline: no detached now, and not announced later. */
    assert_int_equal(cpns_gw_link_close(f->gw, 13, T0), 0);
    assert_nothing_queued(f->gw);

    assert_int_equal(cpns_gw_server_up(f->gw, T0), 0);
    pop_msg(f->gw, SRV, &req);
    assert_int_equal(req.kind, CPNS_MSG_PNGW_REGISTRATION_REQUEST);
    assert_nothing_queued(f->gw); /* nothing before the server accepted us */
    gw_registration_response(f->gw, req.TransactionID, CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_gw_get_state(f->gw), CPNS_GW_ONLINE);
    pop_msg(f->gw, SRV, &n1);
    pop_msg(f->gw, SRV, &n2);
    assert_nothing_queued(f->gw);
    assert_int_equal(n1.kind, CPNS_MSG_PNE_STATUS_NOTIFICATION);
    assert_int_equal(n2.kind, CPNS_MSG_PNE_STATUS_NOTIFICATION);
    assert_int_equal(n1.Status, CPNS_STATUS_ATTACHED);
    assert_int_equal(n2.Status, CPNS_STATUS_ATTACHED);
    assert_string_equal(n1.PNEID, "pne-radio"); /* sorted by PNEID */
    assert_string_equal(n2.PNEID, "pne-tv");
    assert_int_not_equal(n1.TransactionID, n2.TransactionID);
}

/* server_down drops the server-bound frames queued so far; link-bound ones stay. */
static void test_server_down_drops_server_frames(void **state)
{
    fixture *f = *state;
    char req[2048], resp[2048];
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    delivery_response_xml(resp, sizeof resp, 400, "pne-tv");
    from_link_str(f->gw, 11, resp);
    delivery_request_xml(req, sizeof req, 401, "sg-family", "pne-tv", VALID_EGK);
    from_server_str(f->gw, req);
    delivery_request_xml(req, sizeof req, 402, "sg-family", "pne-absent", VALID_EGK);
    from_server_str(f->gw, req); /* a Return 6 answer, server-bound */
    assert_int_equal(cpns_gw_server_down(f->gw, T0), 0);
    delivery_request_xml(req, sizeof req, 401, "sg-family", "pne-tv", VALID_EGK);
    pop_exact(f->gw, 11, (const uint8_t *)req, strlen(req));
    assert_nothing_queued(f->gw);

    /* While offline, what a PNE sends for the server is dropped, not queued. */
    from_link_str(f->gw, 11, resp);
    uint8_t reg[1024];
    size_t len = pne_registration_request(403, "pne-tv", reg, sizeof reg);
    assert_int_equal(cpns_gw_recv_link(f->gw, 11, reg, len, T0), 0);
    assert_nothing_queued(f->gw);
}

/* The server refuses the GW (Return 8): REFUSED, and PNE registrations do not go through. */
static void test_refused_on_return8(void **state)
{
    fixture *f = *state;
    bring_up(f->gw, CPNS_RETURN_AUTH);
    assert_int_equal(cpns_gw_get_state(f->gw), CPNS_GW_REFUSED);
    assert_int_equal(cpns_gw_last_return(f->gw), 8);
    assert_int_equal(cpns_gw_link_open(f->gw, 11, T0), 0);
    uint8_t reg[1024];
    size_t len = pne_registration_request(500, "pne-tv", reg, sizeof reg);
    assert_int_equal(cpns_gw_recv_link(f->gw, 11, reg, len, T0), 0);
    assert_nothing_queued(f->gw);
}

/* A PNGWRegistrationResponse that does not answer our request changes nothing. */
static void test_gw_registration_response_wrong_tid(void **state)
{
    fixture *f = *state;
    cpns_msg req;
    assert_int_equal(cpns_gw_server_up(f->gw, T0), 0);
    pop_msg(f->gw, SRV, &req);
    gw_registration_response(f->gw, req.TransactionID + 1, CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_gw_get_state(f->gw), CPNS_GW_REGISTERING);
    assert_int_equal(cpns_gw_last_return(f->gw), -1);
    gw_registration_response(f->gw, req.TransactionID, CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_gw_get_state(f->gw), CPNS_GW_ONLINE);
    assert_int_equal(cpns_gw_last_return(f->gw), 1);
    /* Other kinds from the server are dropped. */
    from_server_str(f->gw, "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                           "TransactionID=\"9\"><PNEStatusNotification PNEID=\"pne-tv\" "
                           "Status=\"attached\"/></CPNSMessage>");
    assert_nothing_queued(f->gw);
}

/* max_pnes: a registration that would exceed it is answered Return 0 by the GW itself. */
static void test_max_pnes(void **state)
{
    fixture *f = *state;
    cpns_gw *gw = new_gw(&f->seed, 2);
    uint8_t reg[1024];
    cpns_msg m;
    bring_online(gw);
    attach(gw, 11, "pne-tv");
    attach(gw, 12, "pne-radio");
    assert_int_equal(cpns_gw_link_open(gw, 13, T0), 0);
    size_t len = pne_registration_request(600, "pne-fridge", reg, sizeof reg);
    assert_int_equal(cpns_gw_recv_link(gw, 13, reg, len, T0), 0);
    pop_msg(gw, 13, &m);
    assert_nothing_queued(gw);
    assert_int_equal(m.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    assert_int_equal(m.TransactionID, 600);
    assert_int_equal(m.Return, CPNS_RETURN_OTHER);
    assert_string_equal(m.PNEID, "pne-fridge");
    assert_string_equal(m.PNID, GW_PNID);

    /* A PNE already counted may register again, on a new link too. */
    assert_int_equal(cpns_gw_link_open(gw, 14, T0), 0);
    register_on_link(gw, 14, "pne-tv", CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_gw_attached(gw), 2);

    /* Room again after a PNE leaves; the refused link was not bound and may retry. */
    assert_int_equal(cpns_gw_link_close(gw, 12, T0), 0);
    pop_msg(gw, SRV, &m);
    assert_int_equal(m.Status, CPNS_STATUS_DETACHED);
    register_on_link(gw, 13, "pne-fridge", CPNS_RETURN_SUCCESS);
    assert_int_equal(cpns_gw_attached(gw), 2);
    cpns_gw_free(gw);
}

/*
 * A PNE re-registering on a new link takes the route over: requests go to the
 * new link, the old link's frames are dropped, and closing the old link sends
 * no detached.
 */
static void test_route_takeover(void **state)
{
    fixture *f = *state;
    char xml[2048];
    cpns_msg n;
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    attach(f->gw, 12, "pne-tv");
    assert_int_equal(cpns_gw_attached(f->gw), 1);
    delivery_request_xml(xml, sizeof xml, 700, "sg-family", "pne-tv", VALID_EGK);
    from_server_str(f->gw, xml);
    pop_exact(f->gw, 12, (const uint8_t *)xml, strlen(xml));

    delivery_response_xml(xml, sizeof xml, 700, "pne-tv");
    from_link_str(f->gw, 11, xml);
    assert_nothing_queued(f->gw);
    uint8_t reg[1024];
    size_t len = pne_registration_request(701, "pne-tv", reg, sizeof reg);
    assert_int_equal(cpns_gw_recv_link(f->gw, 11, reg, len, T0), 0);
    assert_nothing_queued(f->gw);
    from_link_str(f->gw, 12, xml);
    pop_exact(f->gw, SRV, (const uint8_t *)xml, strlen(xml));

    assert_int_equal(cpns_gw_link_close(f->gw, 11, T0), 0);
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_attached(f->gw), 1);
    assert_int_equal(cpns_gw_link_close(f->gw, 12, T0), 0);
    pop_msg(f->gw, SRV, &n);
    assert_int_equal(n.Status, CPNS_STATUS_DETACHED);
    assert_string_equal(n.PNEID, "pne-tv");
}

/* A registration refused by the server on a new link leaves the old route in place. */
static void test_failed_reregistration_keeps_route(void **state)
{
    fixture *f = *state;
    char xml[2048];
    bring_online(f->gw);
    attach(f->gw, 11, "pne-tv");
    assert_int_equal(cpns_gw_link_open(f->gw, 12, T0), 0);
    register_on_link(f->gw, 12, "pne-tv", CPNS_RETURN_AUTH);
    delivery_request_xml(xml, sizeof xml, 800, "sg-family", "pne-tv", VALID_EGK);
    from_server_str(f->gw, xml);
    pop_exact(f->gw, 11, (const uint8_t *)xml, strlen(xml));
    /* The failed link closing sends nothing. */
    assert_int_equal(cpns_gw_link_close(f->gw, 12, T0), 0);
    assert_nothing_queued(f->gw);
}

/* Through a real PNE engine: the key reaches the PNE's keystore, the answer the server. */
static void test_7_8_6_2_with_real_pne(void **state)
{
    fixture *f = *state;
    uint64_t pne_seed = 99;
    uint8_t EUK[CPNS_KEY_LEN], K_wrap[CPNS_KEY_LEN], GK[CPNS_KEY_LEN], nonce[12], egk[CPNS_EGK_LEN];
    cpns_keystore *ks;
    cpns_pne *pne;
    cpns_out out;
    frame fr;
    for (int i = 0; i < CPNS_KEY_LEN; i++) {
        EUK[i] = (uint8_t)(3 * i);
        GK[i] = (uint8_t)(0xf0 ^ i);
    }
    memset(nonce, 9, sizeof nonce);
    assert_int_equal(cpns_keystore_mem_new(&ks), 0);
    cpns_pne_config pcfg = {0};
    pcfg.PNEID = "pne-tv";
    pcfg.EUK = EUK;
    pcfg.keystore = ks;
    pcfg.rand = test_rand;
    pcfg.rand_arg = &pne_seed;
    pcfg.log = test_log;
    assert_int_equal(cpns_pne_new(&pne, &pcfg), 0);

    bring_online(f->gw);
    assert_int_equal(cpns_gw_link_open(f->gw, 11, T0), 0);
    assert_int_equal(cpns_pne_link_up(pne, T0), 0);
    assert_int_equal(cpns_pne_pop(pne, &out), 1);
    assert_int_equal(cpns_gw_recv_link(f->gw, 11, out.data, out.len, T0), 0);
    assert_int_equal(pop_frame(f->gw, &fr), 1);
    assert_int_equal(fr.link, SRV);
    cpns_msg reg;
    assert_int_equal(cpns_msg_decode(fr.data, fr.len, &reg), 0);
    uint8_t buf[2048];
    size_t len = pne_registration_response(reg.TransactionID, "pne-tv", 1, buf, sizeof buf);
    assert_int_equal(cpns_gw_recv_server(f->gw, buf, len, T0), 0);
    assert_int_equal(pop_frame(f->gw, &fr), 1);
    assert_int_equal(cpns_pne_recv(pne, fr.data, fr.len, T0), 0);
    assert_int_equal(cpns_pne_get_state(pne), CPNS_PNE_REGISTERED);

    cpns_msg req;
    assert_int_equal(cpns_kdf(EUK, CPNS_INFO_WRAP, K_wrap), 0);
    assert_int_equal(cpns_egk_wrap(K_wrap, "sg-family", "pne-tv", 5, GK, nonce, egk), 0);
    cpns_msg_init(&req, CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST, 1234);
    assert_int_equal(cpns_msg_set_id(&req, CPNS_F_SGID, "sg-family"), 0);
    assert_int_equal(cpns_msg_set_id(&req, CPNS_F_PNEID, "pne-tv"), 0);
    assert_int_equal(cpns_msg_set_blob(&req, CPNS_F_EGK, egk, sizeof egk), 0);
    req.KeyVersion = 5;
    req.present |= CPNS_F_KEYVERSION | CPNS_F_GROUPKEYINFO;
    from_server(f->gw, &req);
    assert_int_equal(pop_frame(f->gw, &fr), 1);
    assert_int_equal(fr.link, 11);
    assert_int_equal(cpns_pne_recv(pne, fr.data, fr.len, T0), 0);
    assert_int_equal(cpns_pne_pop(pne, &out), 1);
    assert_int_equal(cpns_gw_recv_link(f->gw, 11, out.data, out.len, T0), 0);
    assert_int_equal(pop_frame(f->gw, &fr), 1);
    assert_int_equal(fr.link, SRV);
    assert_int_equal(fr.len, out.len);
    assert_memory_equal(fr.data, out.data, out.len);

    cpns_msg resp;
    uint8_t kc[CPNS_KC_LEN];
    assert_int_equal(cpns_msg_decode(fr.data, fr.len, &resp), 0);
    assert_int_equal(resp.TransactionID, 1234);
    assert_int_equal(resp.Return, CPNS_RETURN_SUCCESS);
    assert_string_equal(resp.PNID, GW_PNID);
    assert_int_equal(cpns_key_confirmation(GK, "sg-family", "pne-tv", 5, kc), 0);
    assert_memory_equal(kc, resp.KeyConfirmation.data, CPNS_KC_LEN);
    cpns_stored_keys keys;
    assert_int_equal(ks->ops->get(ks, "sg-family", &keys), 0);
    assert_int_equal(keys.current.KeyVersion, 5);
    assert_memory_equal(keys.current.GK, GK, CPNS_KEY_LEN);

    cpns_pne_free(pne);
    cpns_keystore_free(ks);
}

/* --- issue #10: a hostile PNE port --- */

/* Sends a registration (tid, PNEID) on link at now; returns its length, the frame in req. */
static size_t send_reg(cpns_gw *gw, uint64_t link, uint64_t tid, const char *PNEID, int64_t now,
                       uint8_t *req, size_t cap)
{
    size_t len = pne_registration_request(tid, PNEID, req, cap);
    assert_int_equal(cpns_gw_recv_link(gw, link, req, len, now), 0);
    return len;
}

/* The registration goes to the server byte for byte, and nothing else moves. */
static void reg_forwarded(cpns_gw *gw, uint64_t link, uint64_t tid, const char *PNEID, int64_t now)
{
    uint8_t req[1024];
    size_t len = send_reg(gw, link, tid, PNEID, now, req, sizeof req);
    pop_exact(gw, SRV, req, len);
    assert_nothing_queued(gw);
}

/* The GW answers the registration itself, Return 0, on that link only. */
static void reg_refused(cpns_gw *gw, uint64_t link, uint64_t tid, const char *PNEID, int64_t now)
{
    uint8_t req[1024];
    cpns_msg m;
    send_reg(gw, link, tid, PNEID, now, req, sizeof req);
    pop_msg(gw, link, &m);
    assert_int_equal(m.kind, CPNS_MSG_PNE_REGISTRATION_RESPONSE);
    assert_int_equal(m.TransactionID, tid);
    assert_int_equal(m.Return, CPNS_RETURN_OTHER);
    assert_string_equal(m.PNEID, PNEID);
    assert_string_equal(m.PNID, GW_PNID);
    assert_nothing_queued(gw);
}

/* The server answers tid; the GW passes it to link byte for byte (link 0: drops it). */
static void server_answers(cpns_gw *gw, uint64_t tid, const char *PNEID, uint32_t Return,
                           uint64_t link, int64_t now)
{
    uint8_t resp[1024];
    size_t len = pne_registration_response(tid, PNEID, Return, resp, sizeof resp);
    assert_int_equal(cpns_gw_recv_server(gw, resp, len, now), 0);
    if (link != SRV)
        pop_exact(gw, link, resp, len);
    assert_nothing_queued(gw);
}

/* A delivery request for PNEID reaches link (the PNE's route). */
static void routed_to(cpns_gw *gw, const char *PNEID, uint64_t link, uint64_t tid)
{
    char xml[2048];
    delivery_request_xml(xml, sizeof xml, tid, "sg-family", PNEID, VALID_EGK);
    from_server_str(gw, xml);
    pop_exact(gw, link, (const uint8_t *)xml, strlen(xml));
    assert_nothing_queued(gw);
}

static void no_close_wanted(cpns_gw *gw)
{
    uint64_t link = 0;
    assert_int_equal(cpns_gw_pop_close(gw, &link), 0);
}

/*
 * Issue #10, finding 1: route hijack through the PNE port. An attacker link
 * sprays registrations for the victim's PNEID (bogus Proof) around the
 * victim's own registration. Before the fix the last registration took the
 * claim, so the server's Return 1 for the victim went to the attacker and
 * made it the route. Now: the victim's Return 1 goes to the victim only and
 * makes it the route; the attacker's answers (Return 0 from the GW while the
 * victim's request is in flight, Return 8 from the server) go to the attacker
 * only and never route; its delivery responses for the victim are dropped.
 */
static void test_hijack_spray_cannot_take_route(void **state)
{
    fixture *f = *state;
    char xml[2048];
    bring_online(f->gw);
    assert_int_equal(cpns_gw_link_open(f->gw, 21, T0), 0); /* the attacker */
    assert_int_equal(cpns_gw_link_open(f->gw, 22, T0), 0); /* the victim, pne-tv */

    /* The attacker first: its request is in flight, the victim is told to retry. */
    reg_forwarded(f->gw, 21, 9001, "pne-tv", T0);
    reg_refused(f->gw, 22, 9101, "pne-tv", T0);
    server_answers(f->gw, 9001, "pne-tv", CPNS_RETURN_AUTH, 21, T0);
    assert_int_equal(cpns_gw_attached(f->gw), 0);

    /* The victim retries; the attacker's spray meanwhile is answered by the GW. */
    reg_forwarded(f->gw, 22, 9102, "pne-tv", T0 + 1000);
    reg_refused(f->gw, 21, 9002, "pne-tv", T0 + 1000);
    reg_refused(f->gw, 21, 9003, "pne-tv", T0 + 1000);
    reg_refused(f->gw, 21, 9004, "pne-tv", T0 + 1000);
    /* An answer carrying an attacker's TransactionID is no answer to the victim's request. */
    server_answers(f->gw, 9003, "pne-tv", CPNS_RETURN_SUCCESS, SRV, T0 + 1000);
    assert_int_equal(cpns_gw_attached(f->gw), 0);
    assert_false(cpns_gw_link_routed(f->gw, 21));
    server_answers(f->gw, 9102, "pne-tv", CPNS_RETURN_SUCCESS, 22, T0 + 1000);
    assert_int_equal(cpns_gw_attached(f->gw), 1);
    assert_true(cpns_gw_link_routed(f->gw, 22)); /* what cpns-gw clears its deadline on */
    assert_false(cpns_gw_link_routed(f->gw, 21));
    assert_false(cpns_gw_link_routed(f->gw, 99)); /* no such link */
    routed_to(f->gw, "pne-tv", 22, 9201);

    /* With nothing in flight the attacker's request goes through, and fails, to it alone. */
    reg_forwarded(f->gw, 21, 9005, "pne-tv", T0 + 5000);
    server_answers(f->gw, 9005, "pne-tv", CPNS_RETURN_AUTH, 21, T0 + 5000);
    routed_to(f->gw, "pne-tv", 22, 9202);

    /* The attacker answers the victim's deliveries: dropped; the victim's pass. */
    delivery_response_xml(xml, sizeof xml, 9202, "pne-tv");
    assert_int_equal(cpns_gw_recv_link(f->gw, 21, (const uint8_t *)xml, strlen(xml), T0 + 5000), 0);
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_recv_link(f->gw, 22, (const uint8_t *)xml, strlen(xml), T0 + 5000), 0);
    pop_exact(f->gw, SRV, (const uint8_t *)xml, strlen(xml));

    /* The attacker leaving changes nothing for the victim. */
    assert_int_equal(cpns_gw_link_close(f->gw, 21, T0 + 5000), 0);
    assert_nothing_queued(f->gw);
    routed_to(f->gw, "pne-tv", 22, 9203);
    no_close_wanted(f->gw);
}

/*
 * Issue #10, finding 1: a claim in flight is not replaced by another link,
 * and it does not live forever: it ends after CPNS_GW_CLAIM_TIMEOUT_MS, when
 * the server connection goes down, and when its link closes. A response that
 * comes after its claim ended is dropped.
 */
static void test_claim_kept_then_expires(void **state)
{
    fixture *f = *state;
    cpns_msg req;
    bring_online(f->gw);
    for (uint64_t l = 11; l <= 16; l++)
        assert_int_equal(cpns_gw_link_open(f->gw, l, T0), 0);

    /* Time out. The same link may resend (its PNE's retry): that restarts the timeout. */
    reg_forwarded(f->gw, 11, 101, "pne-tv", T0);
    reg_refused(f->gw, 12, 201, "pne-tv", T0 + 5000);
    reg_forwarded(f->gw, 11, 102, "pne-tv", T0 + 5000);
    reg_refused(f->gw, 12, 202, "pne-tv", T0 + 5000 + CPNS_GW_CLAIM_TIMEOUT_MS - 1);
    reg_forwarded(f->gw, 12, 203, "pne-tv", T0 + 5000 + CPNS_GW_CLAIM_TIMEOUT_MS);
    /* The late answer to link 11's request is dropped; link 12's goes to link 12. */
    server_answers(f->gw, 102, "pne-tv", CPNS_RETURN_SUCCESS, SRV, T0 + 16000);
    server_answers(f->gw, 203, "pne-tv", CPNS_RETURN_SUCCESS, 12, T0 + 16000);
    routed_to(f->gw, "pne-tv", 12, 301);

    /* Server down: no answer can come, the claim goes. */
    reg_forwarded(f->gw, 13, 401, "pne-radio", T0 + 16000);
    assert_int_equal(cpns_gw_server_down(f->gw, T0 + 16000), 0);
    assert_int_equal(cpns_gw_server_up(f->gw, T0 + 16000), 0);
    pop_msg(f->gw, SRV, &req);
    gw_registration_response(f->gw, req.TransactionID, CPNS_RETURN_SUCCESS);
    pop_msg(f->gw, SRV, &req); /* attached, pne-tv */
    assert_int_equal(req.kind, CPNS_MSG_PNE_STATUS_NOTIFICATION);
    assert_nothing_queued(f->gw);
    server_answers(f->gw, 401, "pne-radio", CPNS_RETURN_SUCCESS, SRV, T0 + 16000);
    reg_forwarded(f->gw, 14, 402, "pne-radio", T0 + 16000);
    server_answers(f->gw, 402, "pne-radio", CPNS_RETURN_SUCCESS, 14, T0 + 16000);
    routed_to(f->gw, "pne-radio", 14, 403);

    /* Link close: the claim goes with its link. */
    reg_forwarded(f->gw, 15, 501, "pne-fridge", T0 + 16000);
    assert_int_equal(cpns_gw_link_close(f->gw, 15, T0 + 16000), 0);
    assert_nothing_queued(f->gw);
    reg_forwarded(f->gw, 16, 502, "pne-fridge", T0 + 16000);
    server_answers(f->gw, 501, "pne-fridge", CPNS_RETURN_SUCCESS, SRV, T0 + 16000);
    server_answers(f->gw, 502, "pne-fridge", CPNS_RETURN_SUCCESS, 16, T0 + 16000);
    routed_to(f->gw, "pne-fridge", 16, 503);
    assert_int_equal(cpns_gw_attached(f->gw), 3);
}

/*
 * Issue #10, finding 1: a PNERegistrationResponse whose TransactionID matches
 * no registration in flight is dropped and changes nothing, even with the
 * PNEID of a claim in flight; the right one still gets through afterwards.
 */
static void test_response_unknown_tid_dropped(void **state)
{
    fixture *f = *state;
    bring_online(f->gw);
    assert_int_equal(cpns_gw_link_open(f->gw, 11, T0), 0);
    assert_int_equal(cpns_gw_link_open(f->gw, 12, T0), 0);
    reg_forwarded(f->gw, 11, 610, "pne-tv", T0);
    reg_forwarded(f->gw, 12, 620, "pne-radio", T0);
    server_answers(f->gw, 611, "pne-tv", CPNS_RETURN_SUCCESS, SRV, T0);
    server_answers(f->gw, 620, "pne-tv", CPNS_RETURN_SUCCESS, SRV, T0); /* the other claim's */
    server_answers(f->gw, 610, "pne-radio", CPNS_RETURN_SUCCESS, SRV, T0);
    server_answers(f->gw, 610, "pne-nobody", CPNS_RETURN_SUCCESS, SRV, T0);
    from_server_str(f->gw, "<CPNSMessage xmlns=\"urn:oma:xml:cpns:message:1.1\" Version=\"1.1\" "
                           "TransactionID=\"610\"><PNERegistrationResponse Return=\"1\" "
                           "PNID=\"pn-home\"/></CPNSMessage>"); /* no PNEID */
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_attached(f->gw), 0);
    server_answers(f->gw, 610, "pne-tv", CPNS_RETURN_SUCCESS, 11, T0);
    server_answers(f->gw, 620, "pne-radio", CPNS_RETURN_SUCCESS, 12, T0);
    assert_int_equal(cpns_gw_attached(f->gw), 2);
    /* Answered once: a second copy answers nothing. */
    server_answers(f->gw, 610, "pne-tv", CPNS_RETURN_UNKNOWN, SRV, T0);
    routed_to(f->gw, "pne-tv", 11, 630);
}

/* A registration as the PNE sends it, with `pad` spaces inside its start tag. */
static size_t padded_registration(uint64_t tid, const char *PNEID, size_t pad, uint8_t *buf,
                                  size_t cap)
{
    uint8_t plain[1024];
    size_t len = pne_registration_request(tid, PNEID, plain, sizeof plain);
    const char *tag = "<PNERegistrationRequest";
    uint8_t *at = NULL;
    for (size_t i = 0; i + strlen(tag) <= len && !at; i++)
        if (memcmp(plain + i, tag, strlen(tag)) == 0)
            at = plain + i + strlen(tag);
    assert_non_null(at);
    size_t head = (size_t)(at - plain);
    assert_true(len + pad <= cap);
    memcpy(buf, plain, head);
    memset(buf + head, ' ', pad);
    memcpy(buf + head + pad, at, len - head);
    return len + pad;
}

/*
 * Issue #10, finding 3: a registration over CPNS_GW_REGISTRATION_MAX bytes is
 * refused and never forwarded (a 64 KiB one used to pass and cost the GW its
 * server connection), and the link is handed to the glue to close; its later
 * frames are dropped unread. One at the bound passes byte for byte. A frame
 * over CPNS_GW_PNE_FRAME_MAX is refused before it is parsed.
 */
static void test_oversized_registration_refused(void **state)
{
    fixture *f = *state;
    static uint8_t big[CPNS_FRAME_MAX];
    uint64_t link;
    bring_online(f->gw);
    for (uint64_t l = 11; l <= 13; l++)
        assert_int_equal(cpns_gw_link_open(f->gw, l, T0), 0);

    size_t plain = pne_registration_request(700, "pne-tv", big, sizeof big);
    size_t len =
        padded_registration(700, "pne-tv", CPNS_GW_REGISTRATION_MAX - plain, big, sizeof big);
    assert_int_equal(len, CPNS_GW_REGISTRATION_MAX);
    assert_int_equal(cpns_gw_recv_link(f->gw, 11, big, len, T0), 0);
    pop_exact(f->gw, SRV, big, len);
    assert_nothing_queued(f->gw);
    no_close_wanted(f->gw);

    len = padded_registration(701, "pne-radio", CPNS_GW_REGISTRATION_MAX - plain + 1, big,
                              sizeof big);
    assert_int_equal(cpns_gw_recv_link(f->gw, 12, big, len, T0), 0);
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_pop_close(f->gw, &link), 1);
    assert_int_equal(link, 12);
    no_close_wanted(f->gw); /* handed out once */
    /* Until the glue has closed it, the link's frames are dropped, even well-formed ones. */
    uint8_t req[1024];
    send_reg(f->gw, 12, 702, "pne-radio", T0, req, sizeof req);
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_link_close(f->gw, 12, T0), 0);
    assert_nothing_queued(f->gw);

    /* The 64 KiB registration of the finding. */
    len = padded_registration(703, "pne-fridge", CPNS_FRAME_MAX - plain - 16, big, sizeof big);
    assert_int_equal(cpns_gw_recv_link(f->gw, 13, big, len, T0), 0);
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_pop_close(f->gw, &link), 1);
    assert_int_equal(link, 13);
    assert_int_equal(cpns_gw_link_close(f->gw, 13, T0), 0);

    /* The first link was not concerned. */
    server_answers(f->gw, 700, "pne-tv", CPNS_RETURN_SUCCESS, 11, T0);
    routed_to(f->gw, "pne-tv", 11, 704);
}

/*
 * Issue #10, finding 3: per-link rate limits. Registrations: a burst of
 * CPNS_GW_LINK_REG_BURST, then CPNS_GW_LINK_REG_PER_S a second; every frame:
 * a burst of CPNS_GW_LINK_FRAME_BURST, then CPNS_GW_LINK_FRAME_PER_S a
 * second. A frame over the rate is dropped and the link handed to the glue to
 * close; other links are not affected.
 */
#define FRAME_INTERVAL_MS ((1000 + CPNS_GW_LINK_FRAME_PER_S - 1) / CPNS_GW_LINK_FRAME_PER_S)

static void test_link_rate_limited(void **state)
{
    fixture *f = *state;
    char xml[2048];
    uint64_t link;
    bring_online(f->gw);
    assert_int_equal(cpns_gw_link_open(f->gw, 11, T0), 0);
    assert_int_equal(cpns_gw_link_open(f->gw, 12, T0), 0);

    /* Registrations: the burst, one more a second later, then too many. */
    for (int i = 0; i < CPNS_GW_LINK_REG_BURST; i++)
        reg_forwarded(f->gw, 11, 800 + (uint64_t)i, "pne-tv", T0);
    reg_forwarded(f->gw, 11, 810, "pne-tv", T0 + 1000 / CPNS_GW_LINK_REG_PER_S);
    no_close_wanted(f->gw);
    uint8_t req[1024];
    send_reg(f->gw, 11, 811, "pne-tv", T0 + 1000 / CPNS_GW_LINK_REG_PER_S, req, sizeof req);
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_pop_close(f->gw, &link), 1);
    assert_int_equal(link, 11);
    assert_int_equal(cpns_gw_link_close(f->gw, 11, T0 + 1000), 0);
    assert_nothing_queued(f->gw); /* never routed: silent */

    /* Every frame: link 12 registers (one frame), then answers deliveries. */
    reg_forwarded(f->gw, 12, 820, "pne-radio", T0);
    server_answers(f->gw, 820, "pne-radio", CPNS_RETURN_SUCCESS, 12, T0);
    delivery_response_xml(xml, sizeof xml, 821, "pne-radio");
    for (int i = 1; i < CPNS_GW_LINK_FRAME_BURST; i++) {
        assert_int_equal(cpns_gw_recv_link(f->gw, 12, (const uint8_t *)xml, strlen(xml), T0), 0);
        pop_exact(f->gw, SRV, (const uint8_t *)xml, strlen(xml));
    }
    assert_int_equal(
        cpns_gw_recv_link(f->gw, 12, (const uint8_t *)xml, strlen(xml), T0 + FRAME_INTERVAL_MS), 0);
    pop_exact(f->gw, SRV, (const uint8_t *)xml, strlen(xml));
    no_close_wanted(f->gw);
    assert_int_equal(
        cpns_gw_recv_link(f->gw, 12, (const uint8_t *)xml, strlen(xml), T0 + FRAME_INTERVAL_MS), 0);
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_pop_close(f->gw, &link), 1);
    assert_int_equal(link, 12);
    /* Still the route until the glue closes it; then detached as usual. */
    routed_to(f->gw, "pne-radio", 12, 822);
    assert_int_equal(cpns_gw_link_close(f->gw, 12, T0 + 1000), 0);
    cpns_msg n;
    pop_msg(f->gw, SRV, &n);
    assert_int_equal(n.Status, CPNS_STATUS_DETACHED);
    assert_nothing_queued(f->gw);
}

/*
 * Issue #10, finding 3: the rate limit must not take a PNE in many SGs for a
 * flood. A catch-up (or a rekey of every group) sends it 300 requests at
 * once; its 300 responses, at the same instant, all go to the server and the
 * link stays open. Unsolicited frames beyond that still meet the rate.
 */
static void test_responses_to_forwarded_requests_not_limited(void **state)
{
    fixture *f = *state;
    char xml[2048];
    uint64_t link;
    enum { N = 300 };
    bring_online(f->gw);
    assert_int_equal(cpns_gw_link_open(f->gw, 12, T0), 0);
    reg_forwarded(f->gw, 12, 900, "pne-radio", T0);
    server_answers(f->gw, 900, "pne-radio", CPNS_RETURN_SUCCESS, 12, T0);
    for (uint64_t i = 0; i < N; i++)
        routed_to(f->gw, "pne-radio", 12, 1000 + i);
    for (uint64_t i = 0; i < N; i++) {
        delivery_response_xml(xml, sizeof xml, 1000 + i, "pne-radio");
        assert_int_equal(cpns_gw_recv_link(f->gw, 12, (const uint8_t *)xml, strlen(xml), T0), 0);
        pop_exact(f->gw, SRV, (const uint8_t *)xml, strlen(xml));
    }
    no_close_wanted(f->gw);
    /* The credit is spent: the bucket (one token went to the registration) is next. */
    delivery_response_xml(xml, sizeof xml, 2000, "pne-radio");
    for (int i = 1; i < CPNS_GW_LINK_FRAME_BURST; i++) {
        assert_int_equal(cpns_gw_recv_link(f->gw, 12, (const uint8_t *)xml, strlen(xml), T0), 0);
        pop_exact(f->gw, SRV, (const uint8_t *)xml, strlen(xml));
    }
    no_close_wanted(f->gw);
    assert_int_equal(cpns_gw_recv_link(f->gw, 12, (const uint8_t *)xml, strlen(xml), T0), 0);
    assert_nothing_queued(f->gw);
    assert_int_equal(cpns_gw_pop_close(f->gw, &link), 1);
    assert_int_equal(link, 12);
}

/*
 * Issue #10, finding 7: max_pnes counts routed PNEs and registrations in
 * flight; a failed registration frees its slot at once (before, its claim
 * stayed and held the slot for good).
 */
static void test_max_pnes_failed_claims_free_slots(void **state)
{
    fixture *f = *state;
    cpns_gw *gw = new_gw(&f->seed, 2);
    bring_online(gw);
    for (uint64_t l = 11; l <= 18; l++)
        assert_int_equal(cpns_gw_link_open(gw, l, T0), 0);

    /* Failed registrations, many of them: none holds a slot. */
    reg_forwarded(gw, 11, 901, "pne-a", T0);
    server_answers(gw, 901, "pne-a", CPNS_RETURN_UNKNOWN, 11, T0);
    reg_forwarded(gw, 12, 902, "pne-b", T0);
    server_answers(gw, 902, "pne-b", CPNS_RETURN_AUTH, 12, T0);
    reg_forwarded(gw, 13, 903, "pne-c", T0);
    server_answers(gw, 903, "pne-c", CPNS_RETURN_AUTH, 13, T0);

    /* Two in flight fill the GW. */
    reg_forwarded(gw, 14, 904, "pne-d", T0);
    reg_forwarded(gw, 15, 905, "pne-e", T0);
    reg_refused(gw, 16, 906, "pne-f", T0);
    /* One routed, one failed: a slot again. */
    server_answers(gw, 904, "pne-d", CPNS_RETURN_SUCCESS, 14, T0);
    server_answers(gw, 905, "pne-e", CPNS_RETURN_AUTH, 15, T0);
    reg_forwarded(gw, 16, 907, "pne-f", T0);
    reg_refused(gw, 17, 908, "pne-g", T0); /* d routed, f in flight */
    server_answers(gw, 907, "pne-f", CPNS_RETURN_SUCCESS, 16, T0);
    assert_int_equal(cpns_gw_attached(gw), 2);
    reg_refused(gw, 17, 909, "pne-g", T0); /* d and f routed */

    /* A claim that times out frees its slot too; a routed PNE may always register again. */
    assert_int_equal(cpns_gw_link_close(gw, 16, T0), 0);
    cpns_msg n;
    pop_msg(gw, SRV, &n);
    assert_int_equal(n.Status, CPNS_STATUS_DETACHED);
    reg_forwarded(gw, 17, 910, "pne-g", T0);
    reg_refused(gw, 18, 911, "pne-h", T0);
    reg_forwarded(gw, 18, 912, "pne-h", T0 + CPNS_GW_CLAIM_TIMEOUT_MS); /* g's timed out */
    server_answers(gw, 910, "pne-g", CPNS_RETURN_SUCCESS, SRV, T0 + CPNS_GW_CLAIM_TIMEOUT_MS);
    assert_int_equal(cpns_gw_link_open(gw, 19, T0 + CPNS_GW_CLAIM_TIMEOUT_MS), 0);
    reg_forwarded(gw, 19, 913, "pne-d", T0 + CPNS_GW_CLAIM_TIMEOUT_MS); /* d and h: full */
    server_answers(gw, 913, "pne-d", CPNS_RETURN_SUCCESS, 19, T0 + CPNS_GW_CLAIM_TIMEOUT_MS);
    routed_to(gw, "pne-d", 19, 914);
    cpns_gw_free(gw);
}

static void count_debug(void *arg, const cpns_log_event *ev)
{
    if (ev->level == CPNS_LOG_DEBUG)
        ++*(int *)arg;
}

/* The debug lines can be turned on and off while the GW runs (cpns-gw's SIGHUP to log-level debug).
 */
static void test_set_log_debug(void **state)
{
    (void)state;
    int debug = 0;
    cpns_gw_config cfg = {.PNGWID = GW_ID, .PNID = GW_PNID, .log = count_debug, .log_arg = &debug};
    cpns_gw *gw = NULL;
    assert_int_equal(cpns_gw_new(&gw, &cfg), 0);
    assert_int_equal(cpns_gw_link_open(gw, 1, T0), 0);
    assert_int_equal(debug, 0);
    cpns_gw_set_log_debug(gw, true);
    assert_int_equal(cpns_gw_link_open(gw, 2, T0), 0); /* "link 2 open" */
    assert_int_equal(debug, 1);
    cpns_gw_set_log_debug(gw, false);
    assert_int_equal(cpns_gw_link_open(gw, 3, T0), 0);
    assert_int_equal(debug, 1);
    cpns_gw_set_log_debug(NULL, true);
    cpns_gw_free(gw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_log_debug),
        cmocka_unit_test_setup_teardown(test_new_and_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_2_1_forward_request_byte_for_byte, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_2_1_blob_not_decoded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_2_2_forward_response_byte_for_byte, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_return6_pne_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return4_unroutable_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_frames_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_pass_through_route_on_return1, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_link_speaks_for_one_pneid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_on_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drops_link_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attached_after_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_down_drops_server_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_on_return8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gw_registration_response_wrong_tid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_pnes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_reregistration_keeps_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7_8_6_2_with_real_pne, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hijack_spray_cannot_take_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_kept_then_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_unknown_tid_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_registration_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_responses_to_forwarded_requests_not_limited, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_max_pnes_failed_claims_free_slots, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
