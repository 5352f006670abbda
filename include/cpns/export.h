/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief Which declarations of the public headers are libcpns.so's ABI.
 *
 * The library is compiled with -fvisibility=hidden: a function or object is
 * exported from libcpns.so only when its declaration in include/cpns/ starts
 * with CPNS_API. Everything else in lib/ (the engines' internals, the store
 * backends' helpers) stays inside the library, so that it can change without
 * breaking a program linked against libcpns.so. The archive libcpns.a, which
 * the project's programs and tests link, still resolves every symbol.
 *
 *   CPNS_API int cpns_example(cpns_server *s);
 *   CPNS_API extern const int64_t cpns_example_table[4];
 *
 * CPNS_TESTING marks the test hooks (fault injection, the memory store's
 * inspection): declared in the public headers for the project's tests, which
 * link libcpns.a, and never exported, so no program can come to depend on
 * them. The abi test (tests/abi/check-abi.sh) fails when a declaration has
 * neither macro or the exports of libcpns.so differ from the CPNS_API
 * declarations.
 */
#ifndef CPNS_EXPORT_H
#define CPNS_EXPORT_H

/**
 * @def CPNS_API
 * Starts the declaration of a function or object that libcpns.so exports
 * (default visibility), i.e. part of the ABI.
 */
/**
 * @def CPNS_TESTING
 * Starts the declaration of a test hook: visible to the project's tests
 * through libcpns.a, hidden in libcpns.so, not part of the API.
 */
#if defined(__GNUC__) || defined(__clang__)
#define CPNS_API __attribute__((visibility("default")))
#define CPNS_TESTING __attribute__((visibility("hidden")))
#else
#define CPNS_API
#define CPNS_TESTING
#endif

#endif
