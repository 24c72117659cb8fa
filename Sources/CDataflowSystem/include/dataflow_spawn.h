// posix_spawn extensions that glibc declares only with _GNU_SOURCE, for Dataflow's
// Internals/Syscalls.swift (Swift's Glibc module does not define it).
#ifndef DATAFLOW_SPAWN_H
#define DATAFLOW_SPAWN_H
#include <spawn.h>

/// POSIX_SPAWN_SETSID: the child gets a session (and process group) of its own.
short dataflow_spawn_setsid_flag(void);

/// posix_spawn_file_actions_addchdir_np: the child changes to `path` before exec.
int dataflow_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/// posix_spawn_file_actions_addclosefrom_np: the child closes every descriptor >= `lowest`
/// (after the actions before it), so it inherits nothing it was not given on purpose.
int dataflow_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int lowest);

#endif
