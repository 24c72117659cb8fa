// The system's liblz4 (Debian: liblz4-dev): block API for sampling, frame API for spill files.
#include <lz4.h>
#include <lz4frame.h>
