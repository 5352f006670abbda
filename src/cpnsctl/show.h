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

/* GET /v1/pnes: PNEID, REGISTERED, REACHABLE, PNGWID, PNID. */
int show_pnes(FILE *out, const json_t *pnes);

/* One SG object: a line with SGID, key_version and state, then its members. */
int show_sg(FILE *out, const json_t *sg);

/* GET /v1/service-groups?view=status: one row per SG with its delivery counts. */
int show_sgs(FILE *out, const json_t *sgs);

/*
 * A member holds the SG's current key: state "delivered" and the SG's
 * key_version. The delivery count of `sg show` uses this.
 */
int member_done(const json_t *sg, const json_t *member);

/* Writes "pne-1 (pending, 2 attempts, last Return 6), ..." for an array of member objects. */
void show_missing(FILE *out, const json_t *members);

#endif
