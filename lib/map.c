/*
 * A chained hash map from a string or a uint64 to a pointer, for the engines'
 * tables (PNEs, SGs, links, outstanding TransactionIDs). Keys are not copied.
 * The table doubles when it holds more entries than buckets.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct cpns_map_node {
    cpns_map_node *next;
    uint64_t hash;
    const char *key; /* NULL for a uint64 key */
    uint64_t ikey;
    void *val;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3u;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; /* the finaliser of MurmurHash3 */
    x *= 0xff51afd7ed558ccdu;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53u;
    x ^= x >> 33;
    return x;
}

static cpns_map_node **find(const cpns_map *m, uint64_t h, const char *key, uint64_t ikey)
{
    if (!m->nbuckets)
        return NULL;
    cpns_map_node **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        cpns_map_node *n = *pp;
        if (n->hash != h)
            continue;
        if (key ? (n->key && strcmp(n->key, key) == 0) : (!n->key && n->ikey == ikey))
            return pp;
    }
    return pp;
}

static int rehash(cpns_map *m, size_t nb)
{
    cpns_map_node **b = cpns_calloc(nb, sizeof *b);
    if (!b)
        return CPNS_ERR_NOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        cpns_map_node *n = m->buckets[i];
        while (n) {
            cpns_map_node *next = n->next;
            size_t j = n->hash & (nb - 1);
            n->next = b[j];
            b[j] = n;
            n = next;
        }
    }
    cpns_free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

static int grow(cpns_map *m)
{
    return rehash(m, m->nbuckets ? m->nbuckets * 2 : 16);
}

int cpns_map_reserve(cpns_map *m, size_t n)
{
    size_t nb = m->nbuckets ? m->nbuckets : 16;
    while (nb < n)
        nb *= 2;
    return nb == m->nbuckets ? 0 : rehash(m, nb);
}

static int put(cpns_map *m, uint64_t h, const char *key, uint64_t ikey, void *val)
{
    cpns_map_node **pp = find(m, h, key, ikey);
    if (pp && *pp) {
        (*pp)->val = val;
        if (key)
            (*pp)->key = key;
        return 0;
    }
    cpns_map_node *n = cpns_malloc(sizeof *n);
    if (!n)
        return CPNS_ERR_NOMEM;
    if (m->count >= m->nbuckets && grow(m) != 0 && m->nbuckets == 0) {
        cpns_free(n);
        return CPNS_ERR_NOMEM;
    }
    /* A failed grow of a non-empty table only makes the chains longer. */
    n->hash = h;
    n->key = key;
    n->ikey = ikey;
    n->val = val;
    size_t j = h & (m->nbuckets - 1);
    n->next = m->buckets[j];
    m->buckets[j] = n;
    m->count++;
    return 0;
}

static void *take(cpns_map *m, uint64_t h, const char *key, uint64_t ikey)
{
    cpns_map_node **pp = find(m, h, key, ikey);
    if (!pp || !*pp)
        return NULL;
    cpns_map_node *n = *pp;
    void *val = n->val;
    *pp = n->next;
    cpns_free(n);
    m->count--;
    return val;
}

void *cpns_map_get(const cpns_map *m, const char *key)
{
    cpns_map_node **pp = find(m, hash_str(key), key, 0);
    return pp && *pp ? (*pp)->val : NULL;
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
    cpns_map_node **pp = find(m, hash_u64(key), NULL, key);
    return pp && *pp ? (*pp)->val : NULL;
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
    for (size_t i = 0; i < m->nbuckets; i++) {
        cpns_map_node *n = m->buckets[i];
        while (n) {
            cpns_map_node *next = n->next;
            cpns_free(n);
            n = next;
        }
    }
    cpns_free(m->buckets);
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
    cpns_map_node *n = it->node ? it->node->next : NULL;
    if (!it->node)
        it->bucket = 0;
    else if (!n)
        it->bucket++;
    while (!n && it->bucket < m->nbuckets) {
        n = m->buckets[it->bucket];
        if (!n)
            it->bucket++;
    }
    it->node = n;
    if (!n)
        return 0;
    it->key = n->key;
    it->ikey = n->ikey;
    it->val = n->val;
    return 1;
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
