/* SPDX-License-Identifier: Apache-2.0 */
/* libcpns: CPNS 1.1 section 7.8.6, Simplified Group Key management. */
#ifndef CPNS_H
#define CPNS_H

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
