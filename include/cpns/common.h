/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief Things every libcpns module shares: C error codes, the allocator
 * hook, the log callback and the shape of an engine's output.
 *
 * Error codes and protocol Return values are different things and never mix:
 * a function returns 0 or a negative enum cpns_error; a Return value travels in
 * a message (cpns_msg.Return, enum cpns_return in msg.h).
 */
#ifndef CPNS_COMMON_H
#define CPNS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * C error codes: every function that can fail returns 0 or one of these
 * negative values, and its documentation lists which ones.
 * cpns_strerror() describes them.
 */
enum cpns_error {
    CPNS_OK = 0,               /**< success */
    CPNS_ERR_NOMEM = -1,       /**< an allocation failed */
    CPNS_ERR_INVALID_ARG = -2, /**< the caller passed something the function cannot take */
    CPNS_ERR_MALFORMED = -3,   /**< a message breaks a rule of PROTOCOL.md section 3 */
    CPNS_ERR_TOO_LARGE = -4,   /**< does not fit: frame over 64 KiB, output buffer too small */
    CPNS_ERR_CRYPTO = -5,      /**< OpenSSL failed (not an authentication failure) */
    CPNS_ERR_AUTH = -6,        /**< a tag, MAC or proof did not verify */
    CPNS_ERR_IO = -7,          /**< a file operation failed; errno tells more */
    CPNS_ERR_CORRUPT = -8,     /**< stored data is damaged or was tampered with */
    CPNS_ERR_NOT_FOUND = -9,   /**< no such PNE, SG, key or file */
    CPNS_ERR_EXISTS = -10,     /**< already there */
    CPNS_ERR_STATE = -11,      /**< not possible in the object's current state */
    CPNS_ERR_PERM = -12,       /**< a key file is readable by group or others */
    CPNS_ERR_STORE = -13,      /**< the durable store failed */
    CPNS_ERR_BUSY = -14,       /**< held by another process (a store's database) */
    CPNS_ERR_AGAIN = -15,      /**< not finished yet: wait (e.g. for a descriptor) and ask again */
    CPNS_ERR_FENCED = -16,     /**< this server instance no longer holds its lease: stop writing */
};

/**
 * The version of the libcpns linked at run time, to compare with
 * CPNS_LIB_VERSION, the version of the headers compiled against.
 *
 * @return "MAJOR.MINOR.PATCH", a static string.
 */
CPNS_API const char *cpns_version(void);

/**
 * A static English description of an error code.
 *
 * @param err a negative enum cpns_error, or 0.
 * @return the description, a static string (a generic one for an unknown code).
 */
CPNS_API const char *cpns_strerror(int err);

/**
 * The allocator hook. Every allocation of the library goes through it, so an
 * embedder can use its own heap and tests can fail the Nth allocation.
 * It is process-wide, like sqlite3_config(SQLITE_CONFIG_MALLOC): set it before
 * any other libcpns call, not while objects exist (cpns_set_allocator()).
 */
typedef struct cpns_allocator {
    void *(*malloc)(size_t size, void *arg);             /**< like malloc(); arg is `arg` */
    void *(*realloc)(void *ptr, size_t size, void *arg); /**< like realloc() */
    void (*free)(void *ptr, void *arg);                  /**< like free(); ptr may be NULL */
    void *arg;                                           /**< passed to the three functions */
} cpns_allocator;

/**
 * Installs the allocator hook (copied): set it before any other libcpns
 * call, not while objects exist.
 *
 * @param a the allocator; NULL restores malloc/realloc/free.
 */
CPNS_API void cpns_set_allocator(const cpns_allocator *a);

/** The level of a cpns_log_event. */
typedef enum cpns_log_level {
    CPNS_LOG_ERROR = 0, /**< something failed */
    CPNS_LOG_WARN = 1,  /**< unexpected, handled */
    CPNS_LOG_INFO = 2,  /**< a step of the protocol */
    CPNS_LOG_DEBUG = 3, /**< per frame or per member detail, off unless asked for */
} cpns_log_level;

/**
 * One event, as the engines report it. Strings are NULL when they do not
 * apply; TransactionID is 0 when none applies. Nothing secret is ever in an
 * event: keys appear as fingerprints only. The strings live until the
 * callback returns.
 */
typedef struct cpns_log_event {
    cpns_log_level level;   /**< how serious */
    const char *entity;     /**< "server", "gw" or "pne" */
    const char *id;         /**< that entity's own identifier, when it has one */
    const char *SGID;       /**< the Service Group concerned, or NULL */
    const char *PNEID;      /**< the PNE concerned, or NULL */
    uint64_t TransactionID; /**< the transaction concerned, or 0 */
    const char *text;       /**< the message, formatted */
    /**
     * The format string text was made from: one per call site, so a sink can
     * rate-limit repeated lines by it (the daemons do). Never NULL from libcpns.
     */
    const char *format;
} cpns_log_event;

/**
 * The log callback of the engines' configs.
 *
 * @param arg the config's log_arg.
 * @param ev the event, valid until the callback returns.
 */
typedef void (*cpns_log_fn)(void *arg, const cpns_log_event *ev);

/**
 * Randomness comes in through this function so that tests can script it.
 * A NULL cpns_rand_fn in a config means the OS CSPRNG (cpns_random()).
 *
 * @param arg the config's rand_arg.
 * @param buf where to write.
 * @param len how many bytes to write.
 * @return 0 with buf filled, or a negative cpns_error (the engine fails the
 *         operation with it).
 */
typedef int (*cpns_rand_fn)(void *arg, uint8_t *buf, size_t len);

/**
 * The wall clock, Unix time in milliseconds, for what the protocol dates: a
 * PNE's registration Time, the server's Time window and its persisted nonce
 * cache. The engines' now_ms arguments are a monotonic clock (any epoch) for
 * every interval. A NULL cpns_clock_fn in a config means now_ms is the wall
 * clock too (a virtual clock in tests, an embedder with one clock).
 *
 * @param arg the config's wall_clock_arg.
 * @return Unix time in milliseconds.
 */
typedef int64_t (*cpns_clock_fn)(void *arg);

/**
 * One message an engine wants sent: a frame payload (the XML document,
 * without the 4-byte length). The bytes belong to the engine and stay valid
 * until the next call on it.
 */
typedef struct cpns_out {
    /**
     * Where to: for the server the GW connection, for the GW
     * CPNS_GW_LINK_SERVER or a PNE link, for the PNE 0.
     */
    uint64_t link;
    const uint8_t *data; /**< the payload */
    size_t len;          /**< its length in bytes */
} cpns_out;

/** "No timer armed", as returned by the engines' get_expiry functions. */
#define CPNS_NEVER INT64_MAX

#ifdef __cplusplus
}
#endif
#endif
