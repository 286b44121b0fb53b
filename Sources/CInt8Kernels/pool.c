/* A small persistent thread pool for the runtime's many short parallel loops (a ViT-Tiny inference is ~120 ops of
 * 20–500 µs each). Workers spin for a short while after each job before sleeping on a condition variable, so the
 * next op's hand-off costs a cache-line write instead of a futex wake-up (which DispatchQueue.concurrentPerform
 * pays, tens of µs on a 2-core VM, often ending with the caller running every item itself).
 *
 * One job at a time: a caller that finds the pool busy (another thread's job, or a parallel loop nested inside a
 * job) gets 0 back and runs the loop some other way. Items are claimed with a CAS on (generation << 32 | index),
 * so a worker that wakes late can never take an item of a newer job; the caller returns only after every item of its
 * job has finished. */
#include "internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define I8K_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define I8K_PAUSE() __asm__ __volatile__("yield")
#else
#define I8K_PAUSE() ((void)0)
#endif

#define I8K_POOL_MAX_WORKERS 63
#define I8K_POOL_SPIN_NS 200000 /* keep spinning this long after a job before sleeping */

static pthread_mutex_t pool_job = PTHREAD_MUTEX_INITIALIZER;    /* held by the caller for its whole job */
static pthread_mutex_t pool_sleep = PTHREAD_MUTEX_INITIALIZER;  /* guards sleeping and the condition */
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static _Atomic uint64_t pool_gen = 0;                            /* job generation, bumped to publish a job */
static _Atomic uint64_t pool_next = 0;                           /* generation << 32 | next item index */
static _Atomic size_t pool_left = 0;                             /* items of the current job not yet finished */
static _Atomic(i8k_slot_task_fn) pool_fn = NULL;
static _Atomic(void *) pool_ctx = NULL;
static _Atomic size_t pool_count = 0;
static _Atomic int pool_helpers = 0;                             /* workers that take part in the current job */
static _Atomic int pool_sleeping = 0;
static int pool_workers = 0;                                     /* started workers (under pool_job) */

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Claims and runs items of job `gen` until none is left; `slot` is 0 for the caller, 1 + id for worker `id`. */
static void run_items(uint64_t gen, size_t slot) {
    i8k_slot_task_fn fn = atomic_load_explicit(&pool_fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&pool_ctx, memory_order_relaxed);
    size_t count = atomic_load_explicit(&pool_count, memory_order_relaxed);
    uint64_t v = atomic_load_explicit(&pool_next, memory_order_acquire);
    for (;;) {
        if ((v >> 32) != (gen & 0xFFFFFFFFu) || (v & 0xFFFFFFFFu) >= count) return;
        if (!atomic_compare_exchange_weak_explicit(&pool_next, &v, v + 1, memory_order_acq_rel, memory_order_acquire)) continue;
        fn(ctx, (size_t)(v & 0xFFFFFFFFu), slot);
        atomic_fetch_sub_explicit(&pool_left, 1, memory_order_release);
        v = atomic_load_explicit(&pool_next, memory_order_acquire);
    }
}

static void *worker(void *arg) {
    const int id = (int)(intptr_t)arg;
    uint64_t seen = atomic_load_explicit(&pool_gen, memory_order_acquire);
    for (;;) {
        uint64_t g = atomic_load_explicit(&pool_gen, memory_order_acquire);
        if (g == seen) {
            uint64_t start = now_ns();
            unsigned spins = 0;
            while ((g = atomic_load_explicit(&pool_gen, memory_order_acquire)) == seen) {
                I8K_PAUSE();
                if ((++spins & 255) == 0 && now_ns() - start > I8K_POOL_SPIN_NS) {
                    pthread_mutex_lock(&pool_sleep);
                    atomic_fetch_add(&pool_sleeping, 1);
                    /* seq_cst with the caller's store of pool_gen and load of pool_sleeping: one of them sees the other */
                    while ((g = atomic_load(&pool_gen)) == seen) pthread_cond_wait(&pool_wake, &pool_sleep);
                    atomic_fetch_sub(&pool_sleeping, 1);
                    pthread_mutex_unlock(&pool_sleep);
                    break;
                }
            }
        }
        seen = g;
        if (id < atomic_load_explicit(&pool_helpers, memory_order_relaxed)) run_items(g, (size_t)id + 1);
    }
    return NULL;
}

int i8k_parallel_for_slots(size_t count, size_t threads, i8k_slot_task_fn fn, void *ctx) {
    if (count == 0) return 1;
    if (threads > I8K_POOL_MAX_WORKERS + 1) threads = I8K_POOL_MAX_WORKERS + 1;
    if (count > 0xFFFFFFFFu || threads < 2) return 0;
    if (pthread_mutex_trylock(&pool_job) != 0) return 0;   /* busy: the caller runs the loop another way */
    while (pool_workers < (int)threads - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, worker, (void *)(intptr_t)pool_workers);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool_workers++;
    }
    int helpers = pool_workers < (int)threads - 1 ? pool_workers : (int)threads - 1;
    if ((size_t)helpers > count - 1) helpers = (int)(count - 1);
    uint64_t gen = atomic_load_explicit(&pool_gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&pool_fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool_ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&pool_count, count, memory_order_relaxed);
    atomic_store_explicit(&pool_helpers, helpers, memory_order_relaxed);
    atomic_store_explicit(&pool_left, count, memory_order_relaxed);
    atomic_store_explicit(&pool_next, (gen & 0xFFFFFFFFu) << 32, memory_order_relaxed);
    atomic_store(&pool_gen, gen);
    if (atomic_load(&pool_sleeping) > 0) {
        pthread_mutex_lock(&pool_sleep);
        pthread_cond_broadcast(&pool_wake);
        pthread_mutex_unlock(&pool_sleep);
    }
    run_items(gen, 0);
    unsigned spins = 0;
    while (atomic_load_explicit(&pool_left, memory_order_acquire) != 0) {
        I8K_PAUSE();
        if ((++spins & 1023) == 0) sched_yield();
    }
    pthread_mutex_unlock(&pool_job);
    return 1;
}

/* i8k_parallel_for over i8k_parallel_for_slots: the plain task ignores its slot. */
typedef struct { i8k_task_fn fn; void *ctx; } plain_task;
static void run_plain(void *ctx, size_t index, size_t slot) {
    (void)slot;
    const plain_task *t = (const plain_task *)ctx;
    t->fn(t->ctx, index);
}

int i8k_parallel_for(size_t count, size_t threads, i8k_task_fn fn, void *ctx) {
    plain_task t = { fn, ctx };
    return i8k_parallel_for_slots(count, threads, run_plain, &t);
}
