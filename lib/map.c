/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A hash map from a string or a uint64 to a pointer, for the engines' tables
 * (PNEs, SGs, members, links, outstanding TransactionIDs). Keys are not
 * copied.
 *
 * Open addressing with linear probing: the entries live in one array, so a
 * put allocates nothing unless the table grows, and a lookup reads one or two
 * adjacent slots, comparing the stored 64-bit hash before it touches a key
 * string. A removal shifts the entries after it back instead of leaving a
 * tombstone, so the churn of the TransactionID table (put, remove, put, ...)
 * never lengthens the probes. The table doubles past a load of 11/16.
 *
 * String keys are mostly identifiers a peer chose (PNEIDs in the GW's tables,
 * SGIDs and PNEIDs in the server's), so they are hashed with a keyed hash,
 * SipHash-1-3, under a 128-bit key drawn once per process from the OS CSPRNG:
 * with an unkeyed hash (FNV-1a before issue #10, finding 13) anyone could
 * compute a set of names that share one home slot and turn every lookup into
 * a walk of the whole table. uint64 keys are not peer-chosen (link and
 * connection handles come from the glue, TransactionIDs in the server's table
 * from its CSPRNG; a peer's TransactionID is only looked up), so they keep a
 * cheap unkeyed mix.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpns/crypto.h"
#include "internal.h"

/*
 * 24 bytes: a map holds either kind of key in the one word, and the hash
 * says which. Against 32 bytes with both, that is a quarter less memory, so
 * fewer TLB and cache misses in the tables of 100,000 members; the hash,
 * which every probe reads, is 8-aligned and never straddles a cache line.
 */
struct cpns_map_slot {
    uint64_t hash; /* 0: an empty slot; else the key's hash with USED, and STR for a string */
    union {
        const char *str;
        uint64_t u64;
    } key;
    void *val;
};

/*
 * The marks of an occupied slot and of a string key, over the top two bits
 * of the hash. USED lets a calloc'd array be all empty slots while NULL values
 * stay allowed; STR keeps a string key from ever equalling a uint64 key (a
 * map may hold both). No slot index of a table under 2^62 slots uses them.
 */
#define USED ((uint64_t)1 << 63)
#define STR ((uint64_t)1 << 62)
/* Small: many maps hold one or two entries (a PNE's keystore holds its groups' keys). */
#define MIN_CAP 4

/*
 * The SipHash key, drawn on the first string hash of the process. pthread_once
 * because engines may run on several threads (one per engine) and must all see
 * the one key; its fast path is a single acquire load.
 */
static uint64_t sip_k0, sip_k1;
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static uint64_t load64_le(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static void sip_init(void)
{
    uint8_t k[16];
    if (cpns_random(NULL, k, sizeof k) != 0) {
        /*
         * No CSPRNG (it does not fail on a working system): the addresses of a
         * static and a stack object still differ per process under ASLR, which
         * beats a key everyone knows. Nothing to report to: hashing cannot fail.
         */
        uint64_t a = (uint64_t)(uintptr_t)&sip_k0, b = (uint64_t)(uintptr_t)k;
        memcpy(k, &a, 8);
        memcpy(k + 8, &b, 8);
    }
    sip_k0 = load64_le(k);
    sip_k1 = load64_le(k + 8);
    cpns_wipe(k, sizeof k);
}

void cpns_map_set_hash_key(const uint8_t key[16])
{
    pthread_once(&sip_once, sip_init); /* so that a later first use does not overwrite it */
    sip_k0 = load64_le(key);
    sip_k1 = load64_le(key + 8);
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/*
 * SipHash-1-3 (Aumasson and Bernstein; the variant Rust's and Python's hash
 * tables use) of the key's bytes, without the NUL. Written here rather than
 * taken from OpenSSL: EVP_MAC's SipHash allocates a context and goes through
 * a provider per call, far too slow for a lookup on the server's hot paths
 * (maps of 100,000 members, `make bench`); this one adds ~8 ns to a lookup of
 * a 10-byte ID over FNV-1a (cache-resident table; a 100,000-entry table is
 * dominated by its cache misses either way).
 */
uint64_t cpns_map_str_hash(const char *key)
{
    pthread_once(&sip_once, sip_init);
    const unsigned char *p = (const unsigned char *)key;
    size_t len = strlen(key);
    uint64_t v0 = sip_k0 ^ 0x736f6d6570736575u, v1 = sip_k1 ^ 0x646f72616e646f6du;
    uint64_t v2 = sip_k0 ^ 0x6c7967656e657261u, v3 = sip_k1 ^ 0x7465646279746573u;
    const unsigned char *end = p + (len & ~(size_t)7);
    for (; p != end; p += 8) {
        uint64_t m = load64_le(p);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t hash_str(const char *s)
{
    return cpns_map_str_hash(s) | USED | STR;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; /* the finaliser of MurmurHash3 */
    x *= 0xff51afd7ed558ccdu;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53u;
    x ^= x >> 33;
    return (x & ~STR) | USED;
}

/* The most entries a table of cap slots holds before it doubles. */
static size_t max_load(size_t cap)
{
    return cap - cap / 4 - cap / 16;
}

/*
 * The slot holding the key (a string key, or ikey when key is NULL), or the
 * empty slot where it would go. The table must be allocated; it always keeps
 * an empty slot, which ends the probe. Equal hashes mean equal kinds of key.
 */
static size_t find(const cpns_map *m, uint64_t h, const char *key, uint64_t ikey)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const cpns_map_slot *s = &m->slots[i];
        if (s->hash == h) {
            if (key ? strcmp(s->key.str, key) == 0 : s->key.u64 == ikey)
                return i;
        } else if (!s->hash) {
            return i;
        }
    }
}

static size_t first_empty(const cpns_map *m, uint64_t h)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    while (m->slots[i].hash)
        i = (i + 1) & mask;
    return i;
}

/* Moves every entry to a new table of cap slots; on failure nothing changed. */
static int resize(cpns_map *m, size_t cap)
{
    cpns_map_slot *old = m->slots;
    size_t old_cap = m->cap;
    cpns_map_slot *slots = cpns_calloc_large(cap, sizeof *slots);
    if (!slots)
        return CPNS_ERR_NOMEM;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].hash)
            m->slots[first_empty(m, old[i].hash)] = old[i];
    cpns_free(old);
    return 0;
}

/* The smallest table that holds n entries, or 0 if its size would overflow. */
static size_t cap_for(size_t n)
{
    size_t cap = MIN_CAP;
    while (max_load(cap) < n) {
        if (cap > SIZE_MAX / 2 / sizeof(cpns_map_slot))
            return 0;
        cap *= 2;
    }
    return cap;
}

int cpns_map_reserve(cpns_map *m, size_t n)
{
    if (n <= max_load(m->cap))
        return 0;
    size_t cap = cap_for(n);
    return cap ? resize(m, cap) : CPNS_ERR_NOMEM;
}

static int put(cpns_map *m, uint64_t h, const char *key, uint64_t ikey, void *val)
{
    size_t i = 0;
    if (m->cap) {
        i = find(m, h, key, ikey);
        cpns_map_slot *s = &m->slots[i];
        if (s->hash) {
            s->val = val;
            if (key)
                s->key.str = key; /* the engines point it at the new value's identifier */
            return 0;
        }
    }
    if (m->count + 1 > max_load(m->cap)) {
        size_t cap = cap_for(m->count + 1);
        if (cap && resize(m, cap) == 0) {
            i = first_empty(m, h);
        } else if (m->count + 2 > m->cap) {
            return CPNS_ERR_NOMEM;
        }
        /*
         * A failed grow of a table with room left only makes the probes
         * longer (one slot always stays empty to end them): the put succeeds,
         * as it did when the map was chained, and the next one retries.
         */
    }
    cpns_map_slot *s = &m->slots[i];
    s->hash = h;
    if (key)
        s->key.str = key;
    else
        s->key.u64 = ikey;
    s->val = val;
    m->count++;
    return 0;
}

static void *take(cpns_map *m, uint64_t h, const char *key, uint64_t ikey)
{
    if (!m->cap)
        return NULL;
    size_t i = find(m, h, key, ikey);
    if (!m->slots[i].hash)
        return NULL;
    void *val = m->slots[i].val;
    /*
     * Backward shift: walk the run after the hole; an entry whose home slot
     * is not between the hole and itself (cyclically) may fill the hole,
     * which then moves to where that entry was.
     */
    size_t mask = m->cap - 1;
    for (size_t j = (i + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
        size_t home = (size_t)m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    memset(&m->slots[i], 0, sizeof m->slots[i]);
    m->count--;
    return val;
}

static void *get(const cpns_map *m, uint64_t h, const char *key, uint64_t ikey)
{
    if (!m->cap)
        return NULL;
    const cpns_map_slot *s = &m->slots[find(m, h, key, ikey)];
    return s->hash ? s->val : NULL;
}

void *cpns_map_get(const cpns_map *m, const char *key)
{
    return get(m, hash_str(key), key, 0);
}

int cpns_map_put(cpns_map *m, const char *key, void *val)
{
    return put(m, hash_str(key), key, 0, val);
}

void *cpns_map_remove(cpns_map *m, const char *key)
{
    return take(m, hash_str(key), key, 0);
}

void *cpns_map_get_u64(const cpns_map *m, uint64_t key)
{
    return get(m, hash_u64(key), NULL, key);
}

int cpns_map_put_u64(cpns_map *m, uint64_t key, void *val)
{
    return put(m, hash_u64(key), NULL, key, val);
}

void *cpns_map_remove_u64(cpns_map *m, uint64_t key)
{
    return take(m, hash_u64(key), NULL, key);
}

void cpns_map_clear(cpns_map *m)
{
    cpns_free(m->slots);
    memset(m, 0, sizeof *m);
}

cpns_map_iter cpns_map_begin(const cpns_map *m)
{
    cpns_map_iter it;
    memset(&it, 0, sizeof it);
    it.m = m;
    return it;
}

int cpns_map_next(cpns_map_iter *it)
{
    const cpns_map *m = it->m;
    for (size_t i = it->slot; i < m->cap; i++) {
        const cpns_map_slot *s = &m->slots[i];
        if (s->hash) {
            it->slot = i + 1;
            it->key = s->hash & STR ? s->key.str : NULL;
            it->ikey = s->hash & STR ? 0 : s->key.u64;
            it->val = s->val;
            return 1;
        }
    }
    it->slot = m->cap;
    return 0;
}

typedef struct {
    const char *key;
    void *val;
} kv;

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const kv *)a)->key, ((const kv *)b)->key);
}

int cpns_map_sorted(const cpns_map *m, void ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!m->count)
        return 0;
    kv *tmp = cpns_calloc(m->count, sizeof *tmp);
    void **vals = cpns_calloc(m->count, sizeof *vals);
    if (!tmp || !vals) {
        cpns_free(tmp);
        cpns_free(vals);
        return CPNS_ERR_NOMEM;
    }
    size_t i = 0;
    for (cpns_map_iter it = cpns_map_begin(m); cpns_map_next(&it);)
        tmp[i++] = (kv){it.key, it.val};
    qsort(tmp, i, sizeof *tmp, kv_cmp);
    for (size_t j = 0; j < i; j++)
        vals[j] = tmp[j].val;
    cpns_free(tmp);
    *out = vals;
    *n = i;
    return 0;
}
