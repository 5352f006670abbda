/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The systemd service protocol for Type=notify units (sd_notify(3)): a daemon
 * says READY=1 once it listens (systemd then starts what is ordered after
 * it and `systemctl start` returns) and STOPPING=1 when it begins to shut
 * down. Without NOTIFY_SOCKET (not started by systemd) both do nothing.
 * Only the daemons link this (libsystemd): libcpns and cpnsctl do not.
 */
#ifndef CPNS_NOTIFY_H
#define CPNS_NOTIFY_H

/* READY=1 with a STATUS= line naming the program and version. */
void notify_ready(const char *program);
/* STOPPING=1: the event loop has ended, the final commit and cleanup follow. */
void notify_stopping(void);

#endif
