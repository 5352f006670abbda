/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief Which declarations of the public headers are libcpns.so's ABI.
 *
 * The library is compiled with -fvisibility=hidden: a function or object is
 * exported from libcpns.so only when its declaration in include/cpns/ starts
 * with CPNS_API. Everything else in lib/ (the engines' internals, the store
 * backends' helpers) stays inside the library, so that it can change without
 * breaking a program linked against libcpns.so (the few CPNS_PRIVATE helpers
 * of lib/internal.h are exported for libcpns-store.so of the same version
 * only, and declared in no installed header). The archive libcpns.a, which
 * the project's programs and tests link, still resolves every symbol.
 *
 *   CPNS_API int cpns_example(cpns_server *s);
 *   CPNS_API extern const int64_t cpns_example_table[4];
 *
 * The test hooks (fault injection, the memory store's inspection) are not
 * in the installed headers: a header of the source tree declares them,
 * hidden, for the project's tests, which link libcpns.a. libcpns-store.so
 * (cpns/store_db.h) follows the same rules. The abi test
 * (tests/abi/check-abi.sh) fails when a declaration has no macro or the
 * exports of either library differ from its CPNS_API declarations.
 */
#ifndef CPNS_EXPORT_H
#define CPNS_EXPORT_H

/**
 * @def CPNS_API
 * Starts the declaration of a function or object that libcpns.so (or
 * libcpns-store.so, for store_db.h) exports (default visibility), i.e. part
 * of the ABI.
 */
#if defined(__GNUC__) || defined(__clang__)
#define CPNS_API __attribute__((visibility("default")))
#else
#define CPNS_API
#endif

#endif
