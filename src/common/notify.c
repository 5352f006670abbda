/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sd_notify for the daemons (notify.h). libsystemd's sd_notify knows the
 * socket forms systemd may hand over (a path, an abstract "@" name, vsock)
 * and sends our credentials with the message, which systemd checks against
 * the unit's main PID: not worth hand-writing.
 */
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "notify.h"

void notify_ready(const char *program)
{
    char msg[128];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s %s running", program, CPNS_LIB_VERSION);
    /* unset_environment 0: a daemon has no children that could misuse the socket */
    int rv = sd_notify(0, msg);
    if (rv < 0)
        log_warn("sd_notify READY=1: %s (systemd will time the start out)", strerror(-rv));
}

void notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
}
