#define _GNU_SOURCE
#include "dataflow_spawn.h"

short dataflow_spawn_setsid_flag(void) { return POSIX_SPAWN_SETSID; }

int dataflow_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

int dataflow_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}
