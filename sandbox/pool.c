/*
 * pool.c — worker threads that run batches of ticks in parallel.
 *
 * A batch is an array of jobs; workers take the next index from a shared counter, so
 * the cost per job is one uncontended lock. A job whose thread the watchdog gives up on
 * (stuck in V8 past the hard limit) is finished here on the thread's behalf: the job
 * gets SBX_ABANDONED, the vm loses its isolate (the stuck thread owns it now and disposes
 * it when V8 returns), and a new thread takes the stuck one's place. The stuck thread
 * never touches the pool, the job or the vm again; it frees its own worker record.
 */
#include "internal.h"

#include <stdatomic.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool sbx__vm_tick(sbx_vm *vm, const sbx_tick_in *in, sbx_tick_out *out,
                  void (*on_abandon)(sbx__run *, void *), void *abandon_ud, bool (*abandoned)(void *));
sbx__iso *sbx__vm_detach_iso(sbx_vm *vm, sbx__zombie *z);

#define POOL_STACK_SIZE (8u << 20)

typedef struct worker {
  struct sbx_pool *pool;
  pthread_t thread;
  atomic_bool retired;
  sbx_job *job; /* the job in progress, under pool->mu */
  struct worker *next;
} worker;

struct sbx_pool {
  pthread_mutex_t mu;
  pthread_cond_t work_cv, done_cv;
  int nthreads;
  worker *workers; /* live (not retired) workers */
  sbx_job *jobs;
  size_t n;
  atomic_size_t done;
  /* (batch << 32) | next job index: claimed with a CAS, without the lock. The batch in
   * the high bits keeps a worker still leaving batch k from taking a job of batch k+1
   * with batch k's array. */
  _Atomic uint64_t claim;
  uint64_t batch;      /* incremented per sbx_pool_run */
  bool stop;
  atomic_uint_fast64_t abandoned;
};

static void *worker_main(void *arg);

static int spawn_worker(sbx_pool *p) {
  worker *w = calloc(1, sizeof *w);
  if (!w) return SBX_NOMEM;
  w->pool = p;
  atomic_init(&w->retired, false);
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setstacksize(&at, POOL_STACK_SIZE);
  int rc = pthread_create(&w->thread, &at, worker_main, w);
  pthread_attr_destroy(&at);
  if (rc != 0) {
    free(w);
    return SBX_NOMEM;
  }
  w->next = p->workers;
  p->workers = w;
  return SBX_OK;
}

static bool worker_abandoned(void *ud) { return atomic_load(&((worker *)ud)->retired); }

/* Watchdog thread, under the watchdog's lock. */
static void worker_abandon(sbx__run *run, void *ud) {
  worker *w = ud;
  sbx_pool *p = w->pool;
  /* The caller may free the job's input once it is counted done. */
  sbx__run_revoke_in(run);
  pthread_mutex_lock(&p->mu);
  /* The vm gets a fresh isolate next time, but not while this thread is still stuck.
   * Set before `retired`, which the stuck thread reads (seq_cst) before run->zombie. */
  sbx__zombie *z = malloc(sizeof *z);
  if (z) {
    z->alive = 1;
    z->refs = 2; /* the vm's and the run's */
    z->orphan = NULL;
  }
  run->zombie = z;
  sbx__stuck_add(1);
  atomic_store(&w->retired, true);
  for (worker **q = &p->workers; *q; q = &(*q)->next) {
    if (*q == w) {
      *q = w->next;
      break;
    }
  }
  pthread_detach(w->thread);
  sbx_job *job = __atomic_load_n(&w->job, __ATOMIC_ACQUIRE);
  __atomic_store_n(&w->job, NULL, __ATOMIC_RELEASE);
  if (job) {
    sbx__vm_detach_iso(job->vm, z);
    memset(&job->out, 0, sizeof job->out);
    job->out.status = SBX_ABANDONED;
    job->out.error = strdup(sbx_strerror(SBX_ABANDONED));
    job->out.lines = calloc(1, sizeof *job->out.lines);
    if (job->out.lines) {
      job->out.lines[0] = (sbx_line){SBX_ERROR, false, strdup(sbx_strerror(SBX_ABANDONED)), 0};
      if (job->out.lines[0].text) {
        job->out.lines[0].len = strlen(job->out.lines[0].text);
        job->out.n_lines = 1;
      }
    }
    job->out.wall_ns = run->hard_ns;
    job->out.cpu_ns = sbx__run_cpu_since(run, sbx__now_ns(run->cpu_clock));
    if (atomic_fetch_add(&p->done, 1) + 1 == p->n) pthread_cond_broadcast(&p->done_cv);
  } else if (z) {
    z->refs = 1; /* no vm holds it */
  }
  atomic_fetch_add(&p->abandoned, 1);
  if (!p->stop) spawn_worker(p);
  pthread_mutex_unlock(&p->mu);
}

/* Workers claim jobs with one atomic increment and count them done with another; the
 * lock is taken only to sleep and to wake the waiter at the end of a batch. w->job is
 * read only by the watchdog's abandon path, which can only happen while the run is
 * watched, i.e. inside sbx__vm_tick: it needs no lock here. */
static void job_done(sbx_pool *p, size_t n) {
  if (atomic_fetch_add(&p->done, 1) + 1 == n) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->done_cv);
    pthread_mutex_unlock(&p->mu);
  }
}

static void *worker_main(void *arg) {
  worker *w = arg;
  sbx_pool *p = w->pool;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && (p->batch == seen || (uint32_t)atomic_load(&p->claim) >= p->n))
      pthread_cond_wait(&p->work_cv, &p->mu);
    if (p->stop) break;
    seen = p->batch;
    sbx_job *jobs = p->jobs;
    size_t n = p->n;
    pthread_mutex_unlock(&p->mu);
    uint64_t v = atomic_load(&p->claim);
    for (;;) {
      if ((v >> 32) != (seen & 0xffffffffu) || (uint32_t)v >= n) break;
      if (!atomic_compare_exchange_weak(&p->claim, &v, v + 1)) continue;
      sbx_job *job = &jobs[(uint32_t)v];
      __atomic_store_n(&w->job, job, __ATOMIC_RELEASE);
      if (!sbx__vm_tick(job->vm, &job->in, &job->out, worker_abandon, w, worker_abandoned)) {
        free(w); /* retired: the pool counted the job and forgot us */
        return NULL;
      }
      __atomic_store_n(&w->job, NULL, __ATOMIC_RELEASE);
      job_done(p, n);
      v = atomic_load(&p->claim);
    }
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int sbx_pool_new(int threads, sbx_pool **out) {
  *out = NULL;
  if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (threads <= 0) threads = 1;
  sbx_pool *p = calloc(1, sizeof *p);
  if (!p) return SBX_NOMEM;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  p->nthreads = threads;
  int rc = sbx_watchdog_start();
  if (rc != SBX_OK) goto fail_wd;
  pthread_mutex_lock(&p->mu);
  for (int i = 0; i < threads && rc == SBX_OK; i++) rc = spawn_worker(p);
  pthread_mutex_unlock(&p->mu);
  if (rc != SBX_OK) {
    sbx_pool_free(p);
    return rc;
  }
  *out = p;
  return SBX_OK;
fail_wd:
  pthread_cond_destroy(&p->done_cv);
  pthread_cond_destroy(&p->work_cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
  return rc;
}

int sbx_pool_run(sbx_pool *p, sbx_job *jobs, size_t n) {
  if (!p || (n && !jobs) || n > 0xffffffffu) return SBX_INVALID;
  if (n == 0) return SBX_OK;
  pthread_mutex_lock(&p->mu);
  p->jobs = jobs;
  p->n = n;
  atomic_store(&p->done, 0);
  p->batch++;
  atomic_store(&p->claim, (p->batch & 0xffffffffu) << 32);
  pthread_cond_broadcast(&p->work_cv);
  while (atomic_load(&p->done) < p->n) pthread_cond_wait(&p->done_cv, &p->mu);
  p->jobs = NULL;
  p->n = 0;
  pthread_mutex_unlock(&p->mu);
  return SBX_OK;
}

void sbx_pool_free(sbx_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->work_cv);
  worker *w = p->workers;
  p->workers = NULL;
  pthread_mutex_unlock(&p->mu);
  while (w) {
    worker *next = w->next;
    pthread_join(w->thread, NULL);
    free(w);
    w = next;
  }
  sbx_watchdog_stop();
  pthread_cond_destroy(&p->done_cv);
  pthread_cond_destroy(&p->work_cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

int sbx_pool_threads(const sbx_pool *p) { return p ? p->nthreads : 0; }
uint64_t sbx_pool_abandoned(const sbx_pool *p) { return p ? atomic_load(&((sbx_pool *)p)->abandoned) : 0; }
