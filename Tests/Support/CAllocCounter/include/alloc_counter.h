#ifndef ALLOC_COUNTER_H
#define ALLOC_COUNTER_H
/* Test support: counts the heap allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign) made by
 * the calling thread between alloc_counter_begin and alloc_counter_end. Works on glibc, where this target's definitions
 * interpose the allocator of the test executable and forward to glibc's own (__libc_malloc, ...); elsewhere
 * alloc_counter_available returns 0 and nothing is counted. */
int alloc_counter_available(void);
void alloc_counter_begin(void);
/* Allocations since alloc_counter_begin on this thread; stops counting. */
long alloc_counter_end(void);
#endif
