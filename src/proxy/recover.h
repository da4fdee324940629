/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Bringing a new daemon up to the kernel's state after a restart (recover.c).
 */
#pragma once

#include "proxy_i.h"

/*
 * Gives the new daemon the saved INIT, looks every node up again, reopens every handle, takes
 * every lock again, sends the write windows again and settles the requests the dead daemon left
 * (docs/design.md, "A restart"); the relay then resumes (PX_UP). Returns 0, or -errno when this
 * start failed (logged): what is left waits for the next daemon. Under no lock; the k2d thread
 * waits meanwhile.
 */
int recover(struct proxy *p);

