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
    cpns_gw_del(f->gw);
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
    cpns_gw_del(NULL);

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
    cpns_gw_del(gw);
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

    cpns_pne_del(pne);
    cpns_keystore_close(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
