/* See alloc_counter.h. The wrappers cost one relaxed load when no thread is counting. */
#include "alloc_counter.h"
#include <stdlib.h>   /* defines __GLIBC__ on glibc */

#if defined(__linux__) && defined(__GLIBC__)
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static _Atomic int counting_threads = 0;
static __thread int counting = 0;
static __thread long counted = 0;

static inline void note(void) {
    if (atomic_load_explicit(&counting_threads, memory_order_relaxed) != 0 && counting) counted++;
}

void *malloc(size_t size) { note(); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { note(); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { note(); return __libc_realloc(p, size); }
void *memalign(size_t align, size_t size) { note(); return __libc_memalign(align, size); }
void *aligned_alloc(size_t align, size_t size) { note(); return __libc_memalign(align, size); }
int posix_memalign(void **out, size_t align, size_t size) {
    note();
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(align, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

int alloc_counter_available(void) { return 1; }
void alloc_counter_begin(void) {
    counted = 0;
    if (!counting) { counting = 1; atomic_fetch_add(&counting_threads, 1); }
}
long alloc_counter_end(void) {
    if (counting) { counting = 0; atomic_fetch_sub(&counting_threads, 1); }
    return counted;
}
#else
int alloc_counter_available(void) { return 0; }
void alloc_counter_begin(void) {}
long alloc_counter_end(void) { return 0; }
#endif
