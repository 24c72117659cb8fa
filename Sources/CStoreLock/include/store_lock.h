// Locking the object store's process-shared, robust mutex with a short spin first.
//
// A robust mutex never spins by itself: a thread that finds it held sleeps on the futex at once,
// and its owner then pays a futex wake on unlock. The store's critical sections last well under
// a microsecond, so two threads that meet would pay two system calls and a context switch each
// time. Here a waiter first watches the lock word (a plain load, no cache-line ping-pong) with the
// CPU's spin-wait hint, and tries again when it looks free; only then does it sleep.
//
// Reading `__data.__lock` is glibc-specific (the owner's thread id, 0 when free); elsewhere the
// spin uses trylock alone.
#ifndef DATAFLOW_STORE_LOCK_H
#define DATAFLOW_STORE_LOCK_H

#include <errno.h>
#include <pthread.h>

static inline void dataflow_spin_hint(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Locks `mutex`, spinning for up to `spins` rounds before sleeping. Returns what
/// pthread_mutex_lock returns (0, EOWNERDEAD, ENOTRECOVERABLE, ...).
static inline int dataflow_store_mutex_lock(pthread_mutex_t *mutex, int spins) {
    int code = pthread_mutex_trylock(mutex);
    for (int round = 0; code == EBUSY && round < spins; round++) {
        dataflow_spin_hint();
#if defined(__GLIBC__)
        if (__atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED) != 0) continue;
#endif
        code = pthread_mutex_trylock(mutex);
    }
    if (code == EBUSY) code = pthread_mutex_lock(mutex);
    return code;
}

#endif
