// Sequentially consistent loads and stores of 32- and 64-bit words in memory that another process maps
// too (a pool worker's channel, see Dataflow's Executors/Processes/WorkerChannel.swift). Swift's
// `Atomic` lives in a Swift object; these work on a raw address in a shared mapping.
#ifndef DATAFLOW_SHARED_WORDS_H
#define DATAFLOW_SHARED_WORDS_H
#include <stdint.h>

static inline uint32_t dataflow_word_load(const uint32_t *word) { return __atomic_load_n(word, __ATOMIC_SEQ_CST); }
static inline void dataflow_word_store(uint32_t *word, uint32_t value) { __atomic_store_n(word, value, __ATOMIC_SEQ_CST); }
static inline uint64_t dataflow_word64_load(const uint64_t *word) { return __atomic_load_n(word, __ATOMIC_SEQ_CST); }
static inline void dataflow_word64_store(uint64_t *word, uint64_t value) { __atomic_store_n(word, value, __ATOMIC_SEQ_CST); }

/// The CPU's spin-wait hint (x86's pause), between two loads of a word another process writes.
static inline void dataflow_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
