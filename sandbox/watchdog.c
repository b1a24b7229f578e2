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
 *
 * A run is published in a slot of its own thread (a small stack: worker VMs run nested
 * in their parent's run), without a lock: a global mutex taken twice per run had the two
 * workers' runs bounce its cache line. Each entry's state says who may read the run:
 * WATCHED (the watchdog may take it), LOCKED (the watchdog inspecting it, or its own
 * thread changing its budget: the other waits, briefly), DROPPED (abandoned: the watchdog
 * no longer looks), IDLE. A run ends only once its entry is not LOCKED, so the watchdog
 * never terminates an isolate whose run ended. Wake-ups: a run publishes its entry, then
 * reads next_wake; the watchdog stores next_wake, then reads the entries (all seq_cst):
 * one of them sees the other, so a run whose deadline comes first is never slept through.
 * Runs nested deeper than a slot holds use the locked list, as before.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  int users;
  bool stop;
  sbx__run *runs;      /* watched runs nested too deep for their slot, singly linked */
  struct wd_slot *slots; /* every thread's slot */
  uint64_t next_wake;  /* monotonic ns the watchdog sleeps until; __atomic (read without mu) */
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

enum { E_IDLE = 0, E_WATCHED, E_LOCKED, E_DROPPED };
#define WD_DEPTH 4
typedef struct sbx__wd_entry {
  int state;         /* E_*; __atomic */
  uint64_t deadline; /* wall ns the watchdog should look at the run by; __atomic */
  sbx__run *run;
} wd_entry;
/* One per thread that ran something; its own line(s), written by that thread per run. */
typedef struct wd_slot {
  wd_entry e[WD_DEPTH];
  int depth;             /* entries in use (the thread's own) */
  struct wd_slot *next;  /* under wd.mu */
} __attribute__((aligned(64))) wd_slot;

static pthread_key_t slot_key;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;
static __thread wd_slot *tls_slot;

static void slot_free(void *p) {
  wd_slot *s = p;
  pthread_mutex_lock(&wd.mu);
  for (wd_slot **q = &wd.slots; *q; q = &(*q)->next) {
    if (*q == s) {
      *q = s->next;
      break;
    }
  }
  pthread_mutex_unlock(&wd.mu);
  free(s);
}

static void slot_key_make(void) { pthread_key_create(&slot_key, slot_free); }

static wd_slot *my_slot(void) {
  if (tls_slot) return tls_slot;
  pthread_once(&slot_once, slot_key_make);
  wd_slot *s = aligned_alloc(64, sizeof *s);
  if (!s) return NULL;
  memset(s, 0, sizeof *s);
  pthread_mutex_lock(&wd.mu);
  s->next = wd.slots;
  wd.slots = s;
  pthread_mutex_unlock(&wd.mu);
  pthread_setspecific(slot_key, s);
  return tls_slot = s;
}

/* Locks an entry from its own thread (budget change, end): false if it was dropped. */
static bool entry_lock(wd_entry *e) {
  for (;;) {
    int st = E_WATCHED;
    if (__atomic_compare_exchange_n(&e->state, &st, E_LOCKED, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return true;
    if (st != E_LOCKED) return false;
    sched_yield(); /* the watchdog is looking at it: a clock read, at most a termination */
  }
}

/* The watchdog is to wake by `deadline` at the latest. */
static void wd_wake(uint64_t deadline) {
  pthread_mutex_lock(&wd.mu);
  if (deadline < wd.next_wake) {
    __atomic_store_n(&wd.next_wake, deadline, __ATOMIC_SEQ_CST);
    pthread_cond_signal(&wd.cv);
  }
  pthread_mutex_unlock(&wd.mu);
}

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

/* Looks at a watched run (under wd.mu; a slot's run with its entry locked): terminates
 * it past its budget, asks again while it goes on, gives up on it past the hard limit.
 * Returns true when it was given up on; *wake: when to look again. */
static bool wd_check(sbx__run *run, uint64_t now, uint64_t *wake) {
  uint64_t next = UINT64_MAX;
  uint64_t wall = now - run->wall_start_ns;
  if (!run->wd_terminated_at) {
    uint64_t cpu = sbx__run_cpu_since(run, sbx__now_ns(run->cpu_clock));
    if (cpu >= run->cpu_budget_ns) {
      sbx__iso_terminate(run->iso, SBX_CPU_LIMIT);
      run->wd_terminated_at = now;
    } else if (wall >= run->wall_budget_ns) {
      sbx__iso_terminate(run->iso, SBX_WALL_LIMIT);
      run->wd_terminated_at = now;
    } else {
      uint64_t a = now + (run->cpu_budget_ns - cpu);
      uint64_t b = run->wall_start_ns + run->wall_budget_ns;
      next = a < b ? a : b;
    }
  }
  if (run->wd_terminated_at) {
    if (run->on_abandon && wall >= run->hard_ns) {
      __atomic_store_n(&run->wd_state, 2, __ATOMIC_SEQ_CST);
      run->on_abandon(run, run->on_abandon_ud);
      *wake = UINT64_MAX;
      return true;
    }
    /* A builtin may swallow the request: ask again until the run ends. */
    if (now - run->wd_terminated_at >= WD_RETERMINATE_NS) {
      sbx__iso_terminate(run->iso, SBX_CPU_LIMIT);
      run->wd_terminated_at = now;
    }
    uint64_t d = now + WD_RETERMINATE_NS;
    if (run->on_abandon && run->wall_start_ns + run->hard_ns < d) d = run->wall_start_ns + run->hard_ns;
    if (d < next) next = d;
  }
  *wake = next;
  return false;
}

static void *wd_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&wd.mu);
  while (!wd.stop) {
    uint64_t now = sbx__now_ns(CLOCK_MONOTONIC);
    uint64_t next = now + WD_IDLE_NS, d;
    for (wd_slot *s = wd.slots; s; s = s->next) {
      for (int i = 0; i < WD_DEPTH; i++) {
        wd_entry *e = &s->e[i];
        int st = E_WATCHED;
        if (!__atomic_compare_exchange_n(&e->state, &st, E_LOCKED, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
          continue;
        /* Read after taking the entry: the run may have started after `now` was read. */
        if (wd_check(e->run, sbx__now_ns(CLOCK_MONOTONIC), &d)) {
          __atomic_store_n(&e->state, E_DROPPED, __ATOMIC_SEQ_CST);
          continue;
        }
        __atomic_store_n(&e->deadline, d, __ATOMIC_RELAXED);
        __atomic_store_n(&e->state, E_WATCHED, __ATOMIC_SEQ_CST);
        if (d < next) next = d;
      }
    }
    sbx__run *run = wd.runs;
    while (run) {
      sbx__run *following = run->wd_next;
      if (wd_check(run, now, &d)) wd_remove(run);
      else if (d < next) next = d;
      run = following;
    }
    __atomic_store_n(&wd.next_wake, next, __ATOMIC_SEQ_CST);
    /* A run published after its entry was scanned, due before `next`: look again now. */
    bool again = false;
    for (wd_slot *s = wd.slots; s && !again; s = s->next)
      for (int i = 0; i < WD_DEPTH && !again; i++)
        again = __atomic_load_n(&s->e[i].state, __ATOMIC_SEQ_CST) == E_WATCHED &&
                __atomic_load_n(&s->e[i].deadline, __ATOMIC_RELAXED) < next;
    if (again) continue;
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
    __atomic_store_n(&wd.next_wake, UINT64_MAX, __ATOMIC_SEQ_CST);
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
/* The end of a run reads the clock only when the run was long enough for it to matter:
 * a run under CPU_SHORT_NS of wall time (an empty tick takes ~5 us) is billed its wall
 * time, which can only be more than its CPU time, and the next run chains from there. At
 * most CPU_CHAIN_MAX runs in a row end that way before a real read, so the chained
 * estimates stay within microseconds of the thread's clock — unless the thread was
 * preempted during them, which can put a chained start up to CPU_CHAIN_MAX x CPU_SHORT_NS
 * (0.8 ms) ahead of the clock: every use of a start saturates (sbx__run_cpu_since). The
 * watchdog always reads the real clock of a run it checks. */
#define CPU_SHORT_NS 50000u
#define CPU_CHAIN_MAX 16u
static __thread unsigned tls_chain;

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
  uint64_t cpu_deadline = run->wall_start_ns + run->cpu_budget_ns;
  __atomic_store_n(&run->wd_state, 1, __ATOMIC_SEQ_CST);
  wd_slot *s = my_slot();
  if (s && s->depth < WD_DEPTH) {
    wd_entry *e = &s->e[s->depth++];
    e->run = run;
    run->wd_entry = e;
    __atomic_store_n(&e->deadline, cpu_deadline, __ATOMIC_RELAXED);
    __atomic_store_n(&e->state, E_WATCHED, __ATOMIC_SEQ_CST);
    if (cpu_deadline < __atomic_load_n(&wd.next_wake, __ATOMIC_SEQ_CST)) wd_wake(cpu_deadline);
    return;
  }
  run->wd_entry = NULL;
  pthread_mutex_lock(&wd.mu);
  run->wd_next = wd.runs;
  wd.runs = run;
  if (cpu_deadline < wd.next_wake) {
    __atomic_store_n(&wd.next_wake, cpu_deadline, __ATOMIC_SEQ_CST);
    pthread_cond_signal(&wd.cv);
  }
  pthread_mutex_unlock(&wd.mu);
}

void sbx__run_end(sbx__run *run) {
  run->wall_end_ns = sbx__now_ns(CLOCK_MONOTONIC);
  uint64_t wall = run->wall_end_ns - run->wall_start_ns;
  if (wall < CPU_SHORT_NS && tls_chain < CPU_CHAIN_MAX && !run->wd_terminated_at) {
    run->cpu_end_ns = run->cpu_start_ns + wall;
    tls_chain++;
  } else {
    run->cpu_end_ns = sbx__now_ns(OWN_CPU);
    /* a start chained from estimates may be ahead of the clock (a thread preempted during
     * short runs): never less than nothing */
    if (run->cpu_end_ns < run->cpu_start_ns) run->cpu_end_ns = run->cpu_start_ns;
    tls_chain = 0;
  }
  tls_cpu_end = run->cpu_end_ns;
  tls_wall_end = run->wall_end_ns;
  wd_entry *e = run->wd_entry;
  if (e) {
    entry_lock(e); /* watched or dropped: either way the watchdog is done with it */
    if (__atomic_load_n(&run->wd_state, __ATOMIC_SEQ_CST) == 1) __atomic_store_n(&run->wd_state, 0, __ATOMIC_SEQ_CST);
    e->run = NULL;
    __atomic_store_n(&e->state, E_IDLE, __ATOMIC_SEQ_CST);
    run->wd_entry = NULL;
    tls_slot->depth = (int)(e - tls_slot->e); /* runs nest: this is the top entry */
    return;
  }
  pthread_mutex_lock(&wd.mu);
  if (__atomic_load_n(&run->wd_state, __ATOMIC_SEQ_CST) == 1) {
    wd_remove(run);
    __atomic_store_n(&run->wd_state, 0, __ATOMIC_SEQ_CST);
  }
  pthread_mutex_unlock(&wd.mu);
}

void sbx__run_rearm(sbx__run *run, double extra_ms) {
  uint64_t extra = (uint64_t)(extra_ms * 1e6);
  wd_entry *e = run->wd_entry;
  if (e) {
    bool locked = entry_lock(e); /* false: dropped (abandoned), nobody watches it */
    uint64_t now = sbx__now_ns(CLOCK_MONOTONIC);
    run->cpu_budget_ns = sbx__run_cpu_since(run, sbx__now_ns(OWN_CPU)) + extra;
    run->wall_budget_ns = now - run->wall_start_ns + 2 * extra;
    run->wd_terminated_at = 0;
    if (!locked) return;
    __atomic_store_n(&e->deadline, now + extra, __ATOMIC_RELAXED);
    __atomic_store_n(&e->state, E_WATCHED, __ATOMIC_SEQ_CST);
    if (now + extra < __atomic_load_n(&wd.next_wake, __ATOMIC_SEQ_CST)) wd_wake(now + extra);
    return;
  }
  pthread_mutex_lock(&wd.mu);
  uint64_t now = sbx__now_ns(CLOCK_MONOTONIC);
  run->cpu_budget_ns = sbx__run_cpu_since(run, sbx__now_ns(OWN_CPU)) + extra;
  run->wall_budget_ns = now - run->wall_start_ns + 2 * extra;
  run->wd_terminated_at = 0;
  if (now + extra < wd.next_wake) {
    __atomic_store_n(&wd.next_wake, now + extra, __ATOMIC_SEQ_CST);
    pthread_cond_signal(&wd.cv);
  }
  pthread_mutex_unlock(&wd.mu);
}

double sbx__run_cpu_ms(const sbx__run *run) {
  return (double)sbx__run_cpu_since(run, sbx__now_ns(OWN_CPU)) / 1e6;
}

uint64_t sbx__run_cpu_left(const sbx__run *run) {
  uint64_t used = sbx__run_cpu_since(run, sbx__now_ns(OWN_CPU));
  return used >= run->cpu_budget_ns ? 0 : run->cpu_budget_ns - used;
}

uint64_t sbx__run_wall_left(const sbx__run *run) {
  uint64_t used = sbx__now_ns(CLOCK_MONOTONIC) - run->wall_start_ns;
  return used >= run->wall_budget_ns ? 0 : run->wall_budget_ns - used;
}

bool sbx__run_abandoned(const sbx__run *run) { return __atomic_load_n(&run->wd_state, __ATOMIC_SEQ_CST) == 2; }
