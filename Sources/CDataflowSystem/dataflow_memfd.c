#define _GNU_SOURCE
#include <sys/mman.h>
#include "dataflow_memfd.h"

int dataflow_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
