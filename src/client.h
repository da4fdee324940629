/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The sub-commands that talk to running keepers through their control sockets (control.h):
 * `fusekeeper status` and `fusekeeper restart`.
 */
#pragma once

#include <stdbool.h>

/* Whether @name is a sub-command's name. */
bool client_is_command(const char *name);

/* Runs the sub-command argv[0] with its arguments. Returns the exit status: 0, 1 (failed) or 2
 * (bad usage). */
int client_main(int argc, char **argv);
