/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The supervisor: mounts, runs the daemon and restarts it, and stops cleanly. */
#pragma once

#include "keeper.h"

/*
 * Mounts cfg->mountpoint, runs the daemon under cfg->mode until the filesystem is unmounted or a
 * stop signal arrives (or, under REEXEC_IMAGE_ENV of reexec.h, serves on what a replaced keeper
 * left). Returns the process exit status: 0 after a clean stop, 1 if start-up
 * failed or the keeper had given up.
 */
int supervise(const struct keeper_config *cfg);
