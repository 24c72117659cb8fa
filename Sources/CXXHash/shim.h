// The system's libxxhash (Debian: libxxhash-dev): XXH3-64 checksums of spill files.
#include <xxhash.h>
