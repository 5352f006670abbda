/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cpns/1 decoder and the routing peek (PROTOCOL.md section 3), on expat.
 *
 * One streaming pass with namespace processing. The parser is forced to
 * UTF-8 (a declaration naming another encoding is rejected; invalid UTF-8 is
 * a well-formedness error), any DOCTYPE stops it at once, so there is never a
 * DTD and so never a user-defined entity (billion laughs needs one), and the
 * nesting depth is bounded. Expat allocates through the library's allocator
 * hook, so an allocation failure surfaces as CPNS_ERR_NOMEM.
 *
 * A bad value does not stop the parse: the decoder keeps reading so that the
 * model holds every field that was readable and valid, which is what a
 * receiver needs to answer Return 4 with the right echoes. Structural faults
 * (wrong root, unknown message, a second child, a DOCTYPE) stop it.
 *
 * The peek runs the same machine but ignores blob attributes and stops as
 * soon as the routing information has been read: after the message start tag,
 * or after GroupKeyInfo for a SGroupKeyDeliveryRequest.
 *
 * Creating an expat parser costs several allocations, environment lookups and
 * a getrandom call, more than parsing a message, so cpns_msg_decoder keeps one
 * and resets it between documents (with a salt drawn once); the one-shot
 * calls run the same code on a decoder that lives for one document.
 */
#include <string.h>
#include <strings.h>

#include <expat.h>

#include "codec.h"
#include "cpns/crypto.h"
#include "internal.h"

#define NS_PREFIX CPNS_NAMESPACE "\x01"
#define MAX_DEPTH 32 /* far beyond any real message; bounds handler recursion and state */
/* Messages are a few hundred bytes; a reused parser is dropped after anything above this. */
#define KEEP_MAX 4096

typedef struct decoder {
    XML_Parser parser;
    cpns_msg *m;
    int peek;
    int depth;
    int children;  /* elements seen directly under the root */
    int err;       /* first failure, 0 while the message is fine */
    int stopped;   /* XML_StopParser was called: ignore late callbacks */
    int peek_done; /* the peek read all it needs */
} decoder;

/*
 * The reusable decoder (cpns_msg_decoder_new). The parser is NULL until it is
 * needed again after a document that made it big or ran out of memory.
 */
struct cpns_msg_decoder {
    XML_Parser parser;
    unsigned long salt; /* expat's hash salt for every document; 0: expat draws one */
};

static void drop_parser(cpns_msg_decoder *dec)
{
    if (dec->parser)
        XML_ParserFree(dec->parser);
    dec->parser = NULL;
}

typedef enum attr_type { T_ID, T_KEYVERSION, T_RETURN, T_TIME, T_BLOB, T_STATUS } attr_type;

typedef struct attr_rule {
    const char *name;
    uint32_t bit;
    attr_type type;
} attr_rule;

/* Every attribute the protocol knows; the kind decides which of them count. */
static const attr_rule attr_rules[] = {
    {"SGID", CPNS_F_SGID, T_ID},
    {"PNEID", CPNS_F_PNEID, T_ID},
    {"PNID", CPNS_F_PNID, T_ID},
    {"PNGWID", CPNS_F_PNGWID, T_ID},
    {"KeyVersion", CPNS_F_KEYVERSION, T_KEYVERSION},
    {"Return", CPNS_F_RETURN, T_RETURN},
    {"Time", CPNS_F_TIME, T_TIME},
    {"Status", CPNS_F_STATUS, T_STATUS},
    {"EncryptedGroupKey", CPNS_F_EGK, T_BLOB},
    {"KeyConfirmation", CPNS_F_KC, T_BLOB},
    {"Nonce", CPNS_F_NONCE, T_BLOB},
    {"Proof", CPNS_F_PROOF, T_BLOB},
};

static void *xml_malloc(size_t n)
{
    return cpns_malloc(n);
}

static void *xml_realloc(void *p, size_t n)
{
    return cpns_realloc(p, n);
}

static void xml_free(void *p)
{
    cpns_free(p);
}

static const XML_Memory_Handling_Suite xml_memory = {xml_malloc, xml_realloc, xml_free};

static void fail(decoder *d)
{
    if (!d->err)
        d->err = CPNS_ERR_MALFORMED;
}

static void stop(decoder *d)
{
    d->stopped = 1;
    XML_StopParser(d->parser, XML_FALSE);
}

static void fail_stop(decoder *d)
{
    fail(d);
    stop(d);
}

/* The local name of a CPNS-namespace element, or NULL for any other namespace. */
static const char *cpns_local(const XML_Char *name)
{
    size_t n = sizeof NS_PREFIX - 1;
    return strncmp(name, NS_PREFIX, n) == 0 ? name + n : NULL;
}

/* Parses one known attribute into m; 0 or CPNS_ERR_MALFORMED (then m is unchanged). */
static int read_value(cpns_msg *m, const attr_rule *r, const char *v)
{
    uint64_t n;
    switch (r->type) {
    case T_ID:
        if (!cpns_id_valid(v))
            return CPNS_ERR_MALFORMED;
        /* valid means 1..CPNS_ID_MAX characters; NUL-padded as cpns_msg_set_id does */
        memset(cpns_msg_id_field(m, r->bit), 0, CPNS_ID_MAX + 1);
        memcpy(cpns_msg_id_field(m, r->bit), v, strlen(v));
        return 0;
    case T_KEYVERSION:
        if (cpns_parse_u64(v, 1, CPNS_KEYVERSION_MAX, &n))
            return CPNS_ERR_MALFORMED;
        m->KeyVersion = (uint32_t)n;
        return 0;
    case T_RETURN:
        if (cpns_parse_u64(v, 0, UINT32_MAX, &n))
            return CPNS_ERR_MALFORMED;
        m->Return = (uint32_t)n;
        return 0;
    case T_TIME:
        if (cpns_parse_u64(v, 0, (uint64_t)INT64_MAX, &m->Time))
            return CPNS_ERR_MALFORMED;
        return 0;
    case T_STATUS:
        if (strcmp(v, "attached") == 0)
            m->Status = CPNS_STATUS_ATTACHED;
        else if (strcmp(v, "detached") == 0)
            m->Status = CPNS_STATUS_DETACHED;
        else
            return CPNS_ERR_MALFORMED;
        return 0;
    case T_BLOB: {
        cpns_blob *b = cpns_msg_blob_field(m, r->bit);
        size_t len = 0;
        int rv = cpns_b64_decode(v, strlen(v), b->data, sizeof b->data, &len);
        /* TOO_LARGE is valid base64 that the engine will refuse by its length */
        if ((rv && rv != CPNS_ERR_TOO_LARGE) || len == 0 ||
            (r->bit == CPNS_F_NONCE && len != CPNS_NONCE_LEN)) {
            memset(b, 0, sizeof *b);
            return CPNS_ERR_MALFORMED;
        }
        b->len = len;
        return 0;
    }
    }
    return CPNS_ERR_MALFORMED;
}

/*
 * Reads the attributes in `which` (CPNS_F_* bits) from one start tag. Unknown
 * attributes, and known ones the element does not carry, are ignored.
 */
static void read_attrs(decoder *d, const XML_Char **atts, uint32_t which)
{
    if (d->peek)
        which &= ~CPNS_F_BLOBS;
    for (; atts[0]; atts += 2) {
        for (size_t i = 0; i < CPNS_ARRAY_LEN(attr_rules); i++) {
            const attr_rule *r = &attr_rules[i];
            if (!(r->bit & which) || strcmp(atts[0], r->name) != 0)
                continue;
            if (read_value(d->m, r, atts[1]) == 0)
                d->m->present |= r->bit;
            else
                fail(d);
            break;
        }
    }
}

static void read_root(decoder *d, const XML_Char *name, const XML_Char **atts)
{
    const char *local = cpns_local(name);
    if (!local || strcmp(local, "CPNSMessage") != 0) {
        fail_stop(d);
        return;
    }
    int version_ok = 0;
    for (; atts[0]; atts += 2) {
        if (strcmp(atts[0], "Version") == 0) {
            version_ok = strcmp(atts[1], CPNS_VERSION) == 0;
        } else if (strcmp(atts[0], "TransactionID") == 0) {
            if (cpns_parse_u64(atts[1], 1, (uint64_t)CPNS_TID_MAX, &d->m->TransactionID) == 0)
                d->m->present |= CPNS_F_TID;
            else
                fail(d);
        }
    }
    if (!version_ok || !(d->m->present & CPNS_F_TID))
        fail(d);
}

/* The fields the peek must have seen: the mandatory ones, blobs aside. */
static void peek_finish(decoder *d)
{
    uint32_t need = cpns_msg_required(d->m) & ~CPNS_F_BLOBS;
    if (need & ~d->m->present)
        fail(d);
    d->peek_done = 1;
    stop(d);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    decoder *d = ud;
    if (d->stopped)
        return;
    if (++d->depth > MAX_DEPTH) {
        fail_stop(d);
        return;
    }
    cpns_msg *m = d->m;
    if (d->depth == 1) {
        read_root(d, name, atts);
    } else if (d->depth == 2) {
        const char *local = cpns_local(name);
        cpns_msg_kind kind = local ? cpns_msg_kind_from_name(local) : CPNS_MSG_NONE;
        if (++d->children > 1 || kind == CPNS_MSG_NONE) {
            fail_stop(d);
            return;
        }
        m->kind = kind;
        uint32_t which = cpns_msg_fields(kind) & ~CPNS_F_TID;
        if (kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST)
            which = CPNS_F_SGID;
        read_attrs(d, atts, which);
        if (d->peek && kind != CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST)
            peek_finish(d);
    } else if (d->depth == 3 && m->kind == CPNS_MSG_SGROUPKEY_DELIVERY_REQUEST) {
        const char *local = cpns_local(name);
        if (!local || strcmp(local, "GroupKeyInfo") != 0)
            return;
        if (m->present & CPNS_F_GROUPKEYINFO) {
            fail_stop(d);
            return;
        }
        m->present |= CPNS_F_GROUPKEYINFO;
        read_attrs(d, atts, CPNS_F_PNEID | CPNS_F_KEYVERSION | CPNS_F_EGK);
        if (d->peek)
            peek_finish(d);
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    decoder *d = ud;
    (void)name;
    if (!d->stopped)
        d->depth--;
}

static void XMLCALL on_xml_decl(void *ud, const XML_Char *version, const XML_Char *encoding,
                                int standalone)
{
    decoder *d = ud;
    (void)version;
    (void)standalone;
    /* the parser is forced to UTF-8; a document claiming otherwise is lying or broken */
    if (encoding && strcasecmp(encoding, "UTF-8") != 0)
        fail_stop(d);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    fail_stop(ud);
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    /* unreachable while DOCTYPE is refused; kept so that never silently changes */
    fail_stop(ud);
}

/*
 * Expat sniffs a UTF-16 byte order mark, or the "<" of a UTF-16 document
 * without one, in the first two bytes and switches to UTF-16 even though the
 * parser was created for UTF-8. Those two bytes are all it looks at.
 */
static int looks_like_utf16(const uint8_t *data, size_t len)
{
    if (data[0] == 0 || (len >= 2 && data[1] == 0))
        return 1;
    return len >= 2 &&
           ((data[0] == 0xff && data[1] == 0xfe) || (data[0] == 0xfe && data[1] == 0xff));
}

/*
 * Hands out the decoder's parser ready for a new document: reset (or created
 * when there is none), forced to UTF-8, the salt and every handler installed.
 * XML_ParserReset clears the handlers, the user data and the salt, but keeps
 * the namespace processing chosen at creation. Its encoding argument is
 * copied without reporting an allocation failure (the parser would then
 * follow the document's declaration), so the encoding is set separately with
 * XML_SetEncoding, which does report it. A parser that cannot be reset is
 * replaced by a new one. NULL on allocation failure.
 */
static XML_Parser parser_ready(cpns_msg_decoder *dec, decoder *d)
{
    XML_Parser p = dec->parser;
    if (p && !XML_ParserReset(p, NULL)) {
        XML_ParserFree(p);
        p = NULL;
    }
    if (!p) {
        const XML_Char sep[] = {CPNS_NS_SEP, '\0'};
        p = XML_ParserCreate_MM(NULL, &xml_memory, sep);
    }
    dec->parser = p;
    if (!p)
        return NULL;
    if (XML_SetEncoding(p, "UTF-8") != XML_STATUS_OK) {
        drop_parser(dec);
        return NULL;
    }
    if (dec->salt)
        XML_SetHashSalt(p, dec->salt);
    XML_SetUserData(p, d);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetXmlDeclHandler(p, on_xml_decl);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    XML_SetEntityDeclHandler(p, on_entity_decl);
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
    return p;
}

static int run(cpns_msg_decoder *dec, const uint8_t *data, size_t len, cpns_msg *m, int peek)
{
    if (!m)
        return CPNS_ERR_INVALID_ARG;
    memset(m, 0, sizeof *m);
    if (!dec)
        return CPNS_ERR_INVALID_ARG;
    if (len < 1 || len > CPNS_FRAME_MAX)
        return CPNS_ERR_TOO_LARGE;
    if (!data)
        return CPNS_ERR_INVALID_ARG;
    if (looks_like_utf16(data, len))
        return CPNS_ERR_MALFORMED;

    decoder d = {0};
    d.m = m;
    d.peek = peek;
    d.parser = parser_ready(dec, &d);
    if (!d.parser)
        return CPNS_ERR_NOMEM;

    enum XML_Status st = XML_Parse(d.parser, (const char *)data, (int)len, XML_TRUE);
    enum XML_Error xerr = st == XML_STATUS_OK ? XML_ERROR_NONE : XML_GetErrorCode(d.parser);
    /* a reset keeps every buffer the last document grew: do not keep a big one,
     * nor a parser that ran out of memory half-way */
    if (len > KEEP_MAX || xerr == XML_ERROR_NO_MEMORY)
        drop_parser(dec);

    if (xerr == XML_ERROR_NO_MEMORY)
        return CPNS_ERR_NOMEM;
    if (d.err)
        return d.err;
    if (peek && d.peek_done)
        return 0;
    if (xerr != XML_ERROR_NONE || m->kind == CPNS_MSG_NONE)
        return CPNS_ERR_MALFORMED;
    uint32_t need = cpns_msg_required(m);
    if (peek)
        need &= ~CPNS_F_BLOBS;
    return (need & ~m->present) ? CPNS_ERR_MALFORMED : 0;
}

/* The one-shot calls: a decoder on the stack, without a salt of its own (expat
 * draws one per parser), its parser freed at once. */
static int run_once(const uint8_t *data, size_t len, cpns_msg *m, int peek)
{
    cpns_msg_decoder one = {NULL, 0};
    int rv = run(&one, data, len, m, peek);
    drop_parser(&one);
    return rv;
}

int cpns_msg_decode(const uint8_t *data, size_t len, cpns_msg *m)
{
    return run_once(data, len, m, 0);
}

int cpns_msg_peek(const uint8_t *data, size_t len, cpns_msg *m)
{
    return run_once(data, len, m, 1);
}

int cpns_msg_decoder_new(cpns_msg_decoder **out)
{
    *out = NULL;
    cpns_msg_decoder *dec = cpns_calloc(1, sizeof *dec);
    if (!dec)
        return CPNS_ERR_NOMEM;
    /* without a CSPRNG the salt stays 0 and expat draws one per document, as the one-shot calls do
     */
    if (cpns_random(NULL, (uint8_t *)&dec->salt, sizeof dec->salt) != 0)
        dec->salt = 0;
    decoder d = {0};
    if (!parser_ready(dec, &d)) {
        cpns_msg_decoder_free(dec);
        return CPNS_ERR_NOMEM;
    }
    *out = dec;
    return 0;
}

int cpns_msg_decoder_decode(cpns_msg_decoder *d, const uint8_t *data, size_t len, cpns_msg *m)
{
    return run(d, data, len, m, 0);
}

int cpns_msg_decoder_peek(cpns_msg_decoder *d, const uint8_t *data, size_t len, cpns_msg *m)
{
    return run(d, data, len, m, 1);
}

void cpns_msg_decoder_free(cpns_msg_decoder *d)
{
    if (!d)
        return;
    drop_parser(d);
    cpns_wipe(&d->salt, sizeof d->salt);
    cpns_free(d);
}
