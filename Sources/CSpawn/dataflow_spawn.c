#define _GNU_SOURCE
#include "dataflow_spawn.h"

short dataflow_spawn_setsid_flag(void) { return POSIX_SPAWN_SETSID; }

int dataflow_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}
