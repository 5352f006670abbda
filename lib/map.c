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
 */
#include <stdlib.h>
#include <string.h>

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

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3u;
    }
    return (h ^ (h >> 29)) | USED | STR;
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
