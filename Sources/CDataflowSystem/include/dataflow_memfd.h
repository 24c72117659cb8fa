// memfd_create, which glibc declares only with _GNU_SOURCE (Swift's Glibc module does not).
#ifndef DATAFLOW_MEMFD_H
#define DATAFLOW_MEMFD_H

/// memfd_create(name, MFD_CLOEXEC): an anonymous file in memory, close-on-exec. -1 and errno
/// on failure.
int dataflow_memfd_create(const char *name);

#endif
