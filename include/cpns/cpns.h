/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file
 * @brief libcpns: CPNS 1.1 section 7.8.6, Simplified Group Key management.
 *
 * The one header to include for the whole API: it includes every public
 * header of the library.
 */
#ifndef CPNS_H
#define CPNS_H

/**
 * The version of the headers compiled against, "MAJOR.MINOR.PATCH"; the
 * library linked at run time tells its own with cpns_version().
 */
#define CPNS_LIB_VERSION "0.1.0"

#include "common.h"
#include "msg.h"
#include "crypto.h"
#include "keystore.h"
#include "store.h"
#include "pne.h"
#include "gw.h"
#include "server.h"

#endif
