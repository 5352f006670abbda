/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the library's modules share and do not export: the allocation
 * wrappers behind the allocator hook, a small hash map, the engines' output
 * queue and the logging helper.
 */
#ifndef CPNS_INTERNAL_H
#define CPNS_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "cpns/common.h"
#include "cpns/msg.h"

/*
 * CPNS_PRIVATE marks the few helpers of lib/ that libcpns-store.so (the
 * SQLite and PostgreSQL stores, a library of their own) calls in libcpns.so:
 * the allocation wrappers (so that cpns_set_allocator covers the stores
 * too), the hash map, cpns_u64_to_str and, in crypto_internal.h, the GCM
 * and join helpers. They are exported, but declared only here and in
 * crypto_internal.h, never installed, and are no part of the API:
 * libcpns-store needs libcpns of the very same version (cpns-store.pc and
 * the Debian package libcpns-store0 say so). tests/abi checks the list.
 */
#if defined(__GNUC__) || defined(__clang__)
#define CPNS_PRIVATE __attribute__((visibility("default")))
#else
#define CPNS_PRIVATE
#endif

/* --- allocation: every allocation of libcpns goes through these --- */
CPNS_PRIVATE void *cpns_malloc(size_t n);
CPNS_PRIVATE void *cpns_calloc(size_t count, size_t size); /* checks the multiplication */
CPNS_PRIVATE void *cpns_realloc(void *p, size_t n);
CPNS_PRIVATE void cpns_free(void *p);
/*
 * cpns_calloc for one big long-lived array (a large group's members, a big
 * map's slots). With the default allocator and 4 MB or more, it is 2 MB
 * aligned and advised for transparent huge pages: touching it the first time
 * then costs a few page faults instead of one per 4 KB page (~12 us each on
 * the benchmark's VM, docs/PERFORMANCE.md), and lookups miss the TLB less.
 * Freed with cpns_free.
 */
void *cpns_calloc_large(size_t count, size_t size);
CPNS_PRIVATE char *cpns_strdup(const char *s);

/*
 * An open-addressing hash map (linear probing, entries inline in one array)
 * from a string or a uint64 to a pointer. It does not copy string keys: the
 * key must live as long as its entry (engines point it at the identifier
 * inside the value). A zeroed cpns_map is an empty map. Values may be NULL
 * (then get cannot tell them from absent keys). String and uint64 keys may
 * share a map (a string key never equals a uint64 key), though no caller
 * mixes them.
 */
typedef struct cpns_map_slot cpns_map_slot;
typedef struct cpns_map {
    cpns_map_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t count;
} cpns_map;

CPNS_PRIVATE void *cpns_map_get(const cpns_map *m, const char *key);
/*
 * Inserts, or replaces the value and the key pointer. 0 or CPNS_ERR_NOMEM
 * (then the map is unchanged). When the table cannot grow but still has room,
 * the entry goes in anyway at a higher load and the next insertion retries.
 */
CPNS_PRIVATE int cpns_map_put(cpns_map *m, const char *key, void *val);
/* Removes the entry and returns its value, or NULL. */
CPNS_PRIVATE void *cpns_map_remove(cpns_map *m, const char *key);

void *cpns_map_get_u64(const cpns_map *m, uint64_t key);
int cpns_map_put_u64(cpns_map *m, uint64_t key, void *val);
void *cpns_map_remove_u64(cpns_map *m, uint64_t key);

/* Frees the map's own memory (not the values). */
CPNS_PRIVATE void cpns_map_clear(cpns_map *m);
/*
 * Room for n entries in all without allocating again: 0 or CPNS_ERR_NOMEM
 * (the map is unchanged). It never shrinks the table.
 */
int cpns_map_reserve(cpns_map *m, size_t n);

/*
 * Iteration: `for (cpns_map_iter it = cpns_map_begin(m); cpns_map_next(&it);)`
 * then it.key / it.ikey / it.val, in no particular order. The map must not
 * change during the walk (a removal moves later entries back, so the walk
 * would miss or repeat some); freeing the values is fine.
 */
typedef struct cpns_map_iter {
    const cpns_map *m;
    size_t slot; /* the next slot to look at */
    const char *key;
    uint64_t ikey;
    void *val;
} cpns_map_iter;
CPNS_PRIVATE cpns_map_iter cpns_map_begin(const cpns_map *m);
CPNS_PRIVATE int cpns_map_next(cpns_map_iter *it);

/*
 * The values of a string-keyed map in key order, in a new array the caller
 * frees with cpns_free(). 0 (with *out NULL when the map is empty) or CPNS_ERR_NOMEM.
 */
CPNS_PRIVATE int cpns_map_sorted(const cpns_map *m, void ***out, size_t *n);

/*
 * The keyed hash of string keys (SipHash-1-3 under the process's random key,
 * before map.c marks its top bits), and a test hook that replaces that key.
 * Tests only: string entries of maps alive across the change are lost.
 */
uint64_t cpns_map_str_hash(const char *key);
void cpns_map_set_hash_key(const uint8_t key[16]);

/*
 * The engines' output queue: owned copies of frames, in order. pop() hands out
 * the head and keeps it alive until the next pop() or clear().
 */
typedef struct cpns_outq_item cpns_outq_item;
typedef struct cpns_outq {
    cpns_outq_item *head, *tail;
    cpns_outq_item *popped;
    size_t count;
} cpns_outq;

int cpns_outq_push(cpns_outq *q, uint64_t link, const uint8_t *data, size_t len);
/* Encodes m and queues it. 0, CPNS_ERR_NOMEM, or cpns_msg_encode()'s error. */
int cpns_outq_push_msg(cpns_outq *q, uint64_t link, const cpns_msg *m);
int cpns_outq_pop(cpns_outq *q, cpns_out *out);
/* Drops every queued frame for `link`. */
void cpns_outq_drop_link(cpns_outq *q, uint64_t link);
void cpns_outq_clear(cpns_outq *q);

/*
 * The one logging entry point of the engines. fn may be NULL (silent).
 * Formats into a bounded buffer; never logs secrets (callers pass fingerprints).
 */
typedef struct cpns_logger {
    cpns_log_fn fn;
    void *arg;
    const char *entity;
    const char *id;
    int no_debug; /* drop CPNS_LOG_DEBUG before formatting (a format per frame adds up) */
} cpns_logger;

#if defined(__GNUC__)
#define CPNS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CPNS_PRINTF(a, b)
#endif

void cpns_log(const cpns_logger *lg, cpns_log_level level, const char *SGID, const char *PNEID,
              uint64_t TransactionID, const char *fmt, ...) CPNS_PRINTF(6, 7);

/*
 * The model's fields by their CPNS_F_* bit (msg.h), the one place that maps
 * a bit to its field: the message builders (cpns_msg_set_id/_blob), the
 * decoder, and the engines reading what a message carries.
 * cpns_msg_id_field: the identifier array of SGID, PNEID, PNID or PNGWID,
 * NULL for any other bit. cpns_msg_blob_field: the blob of EncryptedGroupKey,
 * KeyConfirmation, Nonce or Proof, NULL for any other bit.
 * cpns_msg_id: the identifier if m has it (its bit is in m->present), else
 * NULL (what the log takes for "none").
 */
static inline char *cpns_msg_id_field(cpns_msg *m, uint32_t bit)
{
    switch (bit) {
    case CPNS_F_SGID:
        return m->SGID;
    case CPNS_F_PNEID:
        return m->PNEID;
    case CPNS_F_PNID:
        return m->PNID;
    case CPNS_F_PNGWID:
        return m->PNGWID;
    default:
        return NULL;
    }
}

static inline cpns_blob *cpns_msg_blob_field(cpns_msg *m, uint32_t bit)
{
    switch (bit) {
    case CPNS_F_EGK:
        return &m->EncryptedGroupKey;
    case CPNS_F_KC:
        return &m->KeyConfirmation;
    case CPNS_F_NONCE:
        return &m->Nonce;
    case CPNS_F_PROOF:
        return &m->Proof;
    default:
        return NULL;
    }
}

static inline const char *cpns_msg_id(const cpns_msg *m, uint32_t bit)
{
    return (m->present & bit) ? cpns_msg_id_field((cpns_msg *)m, bit) : NULL;
}

/*
 * Starts the SGroupKeyDeliveryResponse to req (7.8.6.1-3/-4/-5, and the GW's
 * answers on a PNE's behalf, 7.8.6.2-1): req's TransactionID, Return, the
 * answering side's PNID and the PNEID given, and the echo of req's SGID and
 * KeyVersion when req has them (a Return 4 answer may lack them). The caller
 * adds the KeyConfirmation of a Return 1. 0, or CPNS_ERR_INVALID_ARG when PNID,
 * PNEID or the echoed SGID is not an identifier.
 */
int cpns_msg_delivery_response(cpns_msg *m, const cpns_msg *req, uint32_t Return, const char *PNID,
                               const char *PNEID);

/* Draws a TransactionID (1 .. 2^63-1) from rand. 0 or rand's error. */
int cpns_random_tid(cpns_rand_fn rand, void *rand_arg, uint64_t *tid);

/* Decimal rendering of a uint64 into buf (at least 21 bytes); returns buf. */
CPNS_PRIVATE char *cpns_u64_to_str(uint64_t v, char *buf);

/*
 * The map key of a registration Nonce (the engine's nonce cache, the memory
 * store, the PostgreSQL store's write batch): "PNEID\x01<hex of Nonce>". '\x01' sorts below every
 * identifier character, so keys sort by PNEID, then Nonce (the memory store hands nonces back in
 * key order, as the SQL stores do). Never persisted: the stores keep PNEID and Nonce apart.
 */
#define CPNS_NONCE_KEY_LEN (CPNS_ID_MAX + 1 + 2 * CPNS_NONCE_LEN + 1)
CPNS_PRIVATE void cpns_nonce_key(const char *PNEID, const uint8_t *Nonce,
                                 char out[CPNS_NONCE_KEY_LEN]);

#define CPNS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
