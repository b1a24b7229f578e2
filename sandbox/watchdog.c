/*
 * watchdog.c — one thread that ends runs past their CPU or wall budget, and gives up on
 * threads stuck in V8 past the hard limit.
 *
 * Why a thread and not timers: V8 only stops at interrupt checks, and some builtins
 * ignore them for seconds (shared/V8-NOTES.md). So enforcement has three layers: the
 * watchdog requests termination the moment a budget is spent (re-requesting it while the
 * run goes on); the run is billed its whole CPU time afterwards; and past the hard limit
 * the run is abandoned — the pool counts the job as done and replaces the thread.
 *
 * The CPU deadline is found without polling: CPU time cannot grow faster than wall time,
 * so after checking a run the watchdog sleeps until (budget - used) later at the
 * earliest. A run that starts wakes the watchdog only when its deadline comes before
 * the watchdog's next wake-up, so an idle watchdog costs nothing per run.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  int users;
  bool stop;
  sbx__run *runs;      /* watched runs, singly linked */
  uint64_t next_wake;  /* monotonic ns the watchdog sleeps until */
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

#define WD_IDLE_NS 1000000000ull
#define WD_RETERMINATE_NS 10000000ull

static void wd_remove(sbx__run *run) {
  for (sbx__run **p = &wd.runs; *p; p = &(*p)->wd_next) {
    if (*p == run) {
      *p = run->wd_next;
      run->wd_next = NULL;
      return;
    }
  }
}

static void *wd_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&wd.mu);
  while (!wd.stop) {
    uint64_t now = sbx__now_ns(CLOCK_MONOTONIC);
    uint64_t next = now + WD_IDLE_NS;
    sbx__run *run = wd.runs;
    while (run) {
      sbx__run *following = run->wd_next;
      uint64_t wall = now - run->wall_start_ns;
      if (!run->wd_terminated_at) {
        uint64_t cpu = sbx__now_ns(run->cpu_clock) - run->cpu_start_ns;
        if (cpu >= run->cpu_budget_ns) {
          sbx__iso_terminate(run->iso, SBX_CPU_LIMIT);
          run->wd_terminated_at = now;
        } else if (wall >= run->wall_budget_ns) {
          sbx__iso_terminate(run->iso, SBX_WALL_LIMIT);
          run->wd_terminated_at = now;
        } else {
          uint64_t a = now + (run->cpu_budget_ns - cpu);
          uint64_t b = run->wall_start_ns + run->wall_budget_ns;
          uint64_t d = a < b ? a : b;
          if (d < next) next = d;
        }
      }
      if (run->wd_terminated_at) {
        if (run->on_abandon && wall >= run->hard_ns) {
          wd_remove(run);
          __atomic_store_n(&run->wd_state, 2, __ATOMIC_SEQ_CST);
          run->on_abandon(run, run->on_abandon_ud);
        } else {
          /* A builtin may swallow the request: ask again until the run ends. */
          if (now - run->wd_terminated_at >= WD_RETERMINATE_NS) {
            sbx__iso_terminate(run->iso, SBX_CPU_LIMIT);
            run->wd_terminated_at = now;
          }
          uint64_t d = now + WD_RETERMINATE_NS;
          if (run->on_abandon && run->wall_start_ns + run->hard_ns < d) d = run->wall_start_ns + run->hard_ns;
          if (d < next) next = d;
        }
      }
      run = following;
    }
    wd.next_wake = next;
    struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
    pthread_cond_timedwait(&wd.cv, &wd.mu, &ts);
  }
  pthread_mutex_unlock(&wd.mu);
  return NULL;
}

int sbx_watchdog_start(void) {
  pthread_mutex_lock(&wd.mu);
  int rc = SBX_OK;
  if (wd.users++ == 0) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&wd.cv);
    pthread_cond_init(&wd.cv, &ca);
    pthread_condattr_destroy(&ca);
    wd.stop = false;
    wd.next_wake = UINT64_MAX;
    if (pthread_create(&wd.thread, NULL, wd_main, NULL) != 0) {
      wd.users--;
      rc = SBX_NOMEM;
    }
  }
  pthread_mutex_unlock(&wd.mu);
  return rc;
}

void sbx_watchdog_stop(void) {
  pthread_mutex_lock(&wd.mu);
  if (wd.users == 0 || --wd.users > 0) {
    pthread_mutex_unlock(&wd.mu);
    return;
  }
  wd.stop = true;
  pthread_cond_signal(&wd.cv);
  pthread_mutex_unlock(&wd.mu);
  pthread_join(wd.thread, NULL);
}

/* The watchdog reads a run's CPU clock from its own thread through the clock id of the
 * run's thread (pthread_getcpuclockid); the run itself reads CLOCK_THREAD_CPUTIME_ID,
 * the same clock, which the kernel serves without looking the thread up (measured: a
 * third less time per read). */
#define OWN_CPU CLOCK_THREAD_CPUTIME_ID
static __thread clockid_t tls_cpu_clock;
static __thread bool tls_have_clock;
/* A thread CPU clock read is a system call (0.6-0.9 us here, a tenth of an empty tick).
 * A run that starts within CPU_REUSE_NS of the end of the previous run on the same thread
 * (a pool worker going from job to job, a host calling sbx_vm_call in a loop) starts its
 * CPU clock at that run's end instead of reading it: it is billed the sandbox's own work
 * in between (at most CPU_REUSE_NS, typically 1-3 us), never less than it used. */
#define CPU_REUSE_NS 20000u
static __thread uint64_t tls_cpu_end, tls_wall_end;

void sbx__run_begin(sbx__run *run) {
  if (!tls_have_clock) {
    if (pthread_getcpuclockid(pthread_self(), &tls_cpu_clock) != 0) tls_cpu_clock = CLOCK_THREAD_CPUTIME_ID;
    tls_have_clock = true;
  }
  run->cpu_clock = tls_cpu_clock;
  run->wall_start_ns = sbx__now_ns(CLOCK_MONOTONIC);
  if (tls_wall_end && run->wall_start_ns - tls_wall_end < CPU_REUSE_NS) run->cpu_start_ns = tls_cpu_end;
  else run->cpu_start_ns = sbx__now_ns(OWN_CPU);
  run->wd_terminated_at = 0;
  pthread_mutex_lock(&wd.mu);
  run->wd_next = wd.runs;
  wd.runs = run;
  __atomic_store_n(&run->wd_state, 1, __ATOMIC_SEQ_CST);
  uint64_t cpu_deadline = run->wall_start_ns + run->cpu_budget_ns;
  if (cpu_deadline < wd.next_wake) {
    wd.next_wake = cpu_deadline;
    pthread_cond_signal(&wd.cv);
  }
  pthread_mutex_unlock(&wd.mu);
}

void sbx__run_end(sbx__run *run) {
  run->cpu_end_ns = sbx__now_ns(OWN_CPU);
  run->wall_end_ns = sbx__now_ns(CLOCK_MONOTONIC);
  tls_cpu_end = run->cpu_end_ns;
  tls_wall_end = run->wall_end_ns;
  pthread_mutex_lock(&wd.mu);
  if (__atomic_load_n(&run->wd_state, __ATOMIC_SEQ_CST) == 1) {
    wd_remove(run);
    __atomic_store_n(&run->wd_state, 0, __ATOMIC_SEQ_CST);
  }
  pthread_mutex_unlock(&wd.mu);
}

void sbx__run_rearm(sbx__run *run, double extra_ms) {
  uint64_t extra = (uint64_t)(extra_ms * 1e6);
  pthread_mutex_lock(&wd.mu);
  uint64_t now = sbx__now_ns(CLOCK_MONOTONIC);
  run->cpu_budget_ns = sbx__now_ns(OWN_CPU) - run->cpu_start_ns + extra;
  run->wall_budget_ns = now - run->wall_start_ns + 2 * extra;
  run->wd_terminated_at = 0;
  if (now + extra < wd.next_wake) {
    wd.next_wake = now + extra;
    pthread_cond_signal(&wd.cv);
  }
  pthread_mutex_unlock(&wd.mu);
}

double sbx__run_cpu_ms(const sbx__run *run) {
  return (double)(sbx__now_ns(OWN_CPU) - run->cpu_start_ns) / 1e6;
}

uint64_t sbx__run_cpu_left(const sbx__run *run) {
  uint64_t used = sbx__now_ns(OWN_CPU) - run->cpu_start_ns;
  return used >= run->cpu_budget_ns ? 0 : run->cpu_budget_ns - used;
}

uint64_t sbx__run_wall_left(const sbx__run *run) {
  uint64_t used = sbx__now_ns(CLOCK_MONOTONIC) - run->wall_start_ns;
  return used >= run->wall_budget_ns ? 0 : run->wall_budget_ns - used;
}

bool sbx__run_abandoned(const sbx__run *run) { return __atomic_load_n(&run->wd_state, __ATOMIC_SEQ_CST) == 2; }
