/* A small spinning thread pool: workers spin briefly after each job (so back-to-back kernels don't pay
 * a wake-up), then sleep on a condition variable. One job at a time; nested or concurrent callers run
 * their job inline.
 *
 * Protocol: the caller publishes a job (fields, counters, `state` = 0) and bumps `generation`. A worker
 * that sees a new generation joins by incrementing `state`, unless the caller has already closed the
 * job (CLOSED bit), and only then reads the job. The caller runs indices itself, closes the job, and waits
 * only for the workers that joined, so a descheduled or sleeping worker never delays a job. */
#include "cfloatkernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_WORKERS 63
#define CLOSED (1L << 40)

static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cond = PTHREAD_COND_INITIALIZER;
static int n_workers = 0;
static atomic_long generation = 0;
static atomic_int sleepers = 0;
static atomic_long state = CLOSED;   /* joined workers | CLOSED */
static atomic_long checked_out = 0;  /* joined workers that finished */
static atomic_long next_index = 0;
static long job_n = 0;
static cfk_task_fn job_fn = NULL;
static void *job_ctx = NULL;
static atomic_long spin_iterations = 2000;
static _Thread_local int in_pool_job = 0;
static atomic_long stat_pooled = 0, stat_inline = 0, stat_joins = 0;

void cfk_pool_stats(long *pooled_jobs, long *inline_jobs) {
    if (pooled_jobs) *pooled_jobs = atomic_load(&stat_pooled);
    if (inline_jobs) *inline_jobs = atomic_load(&stat_inline);
}

long cfk_pool_worker_joins(void) { return atomic_load(&stat_joins); }

static void run_indices(long n, cfk_task_fn fn, void *ctx) {
    for (;;) {
        long i = atomic_fetch_add_explicit(&next_index, 1, memory_order_acq_rel);
        if (i >= n) break;
        fn(ctx, i);
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    in_pool_job = 1;
    long seen = 0;
    for (;;) {
        long g = atomic_load_explicit(&generation, memory_order_acquire);
        long spins = atomic_load_explicit(&spin_iterations, memory_order_relaxed);
        for (long s = 0; g == seen && s < spins; s++) {
            CPU_RELAX();
            g = atomic_load_explicit(&generation, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&sleep_lock);
            atomic_fetch_add(&sleepers, 1);
            while ((g = atomic_load(&generation)) == seen) pthread_cond_wait(&sleep_cond, &sleep_lock);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&sleep_lock);
        }
        seen = g;
        long st = atomic_fetch_add_explicit(&state, 1, memory_order_acq_rel);
        if (st & CLOSED) continue; /* too late: the caller finished without us */
        atomic_fetch_add_explicit(&stat_joins, 1, memory_order_relaxed);
        run_indices(job_n, job_fn, job_ctx);
        atomic_fetch_add_explicit(&checked_out, 1, memory_order_acq_rel);
    }
    return NULL;
}

void cfk_pool_set_spin(long iterations) { atomic_store(&spin_iterations, iterations < 0 ? 0 : iterations); }

void cfk_parallel_for(long n, int threads, cfk_task_fn fn, void *ctx) {
    if (n <= 0) return;
    if (n == 1 || threads <= 1 || in_pool_job || pthread_mutex_trylock(&submit_lock) != 0) {
        if (n > 1) atomic_fetch_add_explicit(&stat_inline, 1, memory_order_relaxed);
        for (long i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    atomic_fetch_add_explicit(&stat_pooled, 1, memory_order_relaxed);
    if (n_workers == 0) {
        const char *env = getenv("CFK_POOL_SPIN"); /* override of the idle spin, in pause iterations */
        if (env && *env) cfk_pool_set_spin(atol(env));
    }
    int want = threads - 1 > MAX_WORKERS ? MAX_WORKERS : threads - 1;
    while (n_workers < want) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker_main, NULL) != 0) break;
        pthread_detach(t);
        n_workers++;
    }
    job_n = n; job_fn = fn; job_ctx = ctx;
    atomic_store(&next_index, 0);
    atomic_store(&checked_out, 0);
    atomic_store(&state, 0);           /* open for joining (release of the fields above) */
    atomic_fetch_add(&generation, 1);  /* publish */
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&sleep_cond);
        pthread_mutex_unlock(&sleep_lock);
    }
    in_pool_job = 1;
    run_indices(n, fn, ctx);
    in_pool_job = 0;
    long joined = atomic_fetch_or(&state, CLOSED) & (CLOSED - 1);
    /* Wait for the workers that joined. Yield after a short spin: if a worker shares this core
     * (another process holds the other one), spinning here would only delay it. */
    for (long s = 0; atomic_load_explicit(&checked_out, memory_order_acquire) < joined; s++) {
        if (s < 2000) CPU_RELAX();
        else sched_yield();
    }
    pthread_mutex_unlock(&submit_lock);
}
