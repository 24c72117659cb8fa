// Everything is in include/store_lock.h (static inline); this file gives the target a source.
#include "store_lock.h"
