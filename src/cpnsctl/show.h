/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How cpnsctl prints the admin API's JSON for people: aligned tables, one
 * row per PNE, SG or member (with --json the commands print the JSON itself).
 * Each function returns 0, or -1 when the JSON is not of the documented
 * shape (DESIGN.md section 5), so a caller can say the answer was unexpected.
 */
#ifndef CPNSCTL_SHOW_H
#define CPNSCTL_SHOW_H

#include <stdio.h>

#include <jansson.h>

/* GET /v1/pnes: PNEID, REGISTERED, PNGWID, PNID. */
int show_pnes(FILE *out, const json_t *pnes);

/* One SG object: a line with SGID, key_version and state, then its members. */
int show_sg(FILE *out, const json_t *sg);

/* GET /v1/service-groups: one row per SG with its delivery count. */
int show_sgs(FILE *out, const json_t *sgs);

/*
 * A member holds the SG's current key: state "delivered" and the SG's
 * key_version. `sg wait` and the delivery counts use this.
 */
int member_done(const json_t *sg, const json_t *member);

/* Writes "pne-1 (pending, 2 attempts, Return 6), ..." for the members not done. */
void show_not_done(FILE *out, const json_t *sg);

#endif
