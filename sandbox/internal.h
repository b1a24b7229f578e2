/*
 * internal.h — what the C files of sandbox/ and the V8 shim (sandbox/v8/shim.cc) share.
 * Not a public header: nothing outside sandbox/ includes it.
 *
 * The split: the shim owns everything that touches V8 (isolates, contexts, the
 * snapshot, host callbacks, termination); the C side owns threads, clocks, the
 * watchdog, the console buffer and the player's modules. The shim calls back into the
 * C side through the sbx__run of the run in progress.
 */
#ifndef ISOWORLD_SANDBOX_INTERNAL_H
#define ISOWORLD_SANDBOX_INTERNAL_H

#include "sandbox.h"

#include <pthread.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ console buffer */

/* Keeps the first max_lines/2 lines and a ring of the last max_lines/2; counts what falls
 * in between; collapses a line repeated back to back. */
typedef struct sbx__console {
  size_t max_lines, max_bytes;
  sbx_line *head;
  size_t n_head;
  sbx_line *tail; /* ring */
  size_t n_tail, tail_pos;
  size_t bytes;
  size_t omitted;
  sbx_line last;          /* last line pushed (for repeat collapsing), borrowed */
  size_t repeats;         /* how many times `last` repeated after its first time */
  bool have_last;
} sbx__console;

void sbx__console_init(sbx__console *c, size_t max_lines, size_t max_bytes);
void sbx__console_push(sbx__console *c, sbx_level level, const char *text, size_t len, bool unsafe);
/* Moves the lines out, in order, with "[Omitted N lines]" where lines were dropped. */
void sbx__console_take(sbx__console *c, sbx_line **lines, size_t *n, size_t *omitted);
void sbx__console_release(sbx__console *c);

/* ------------------------------------------------------------ code (modules) */

/* Immutable once made; shared by a vm and the isolates running it (refcounted), so a
 * thread given up on can still read it after the vm moved on. */
typedef struct sbx__code {
  int refs; /* __atomic builtins: this header is shared with C++ */
  size_t count;
  sbx_module *modules; /* names and sources owned here */
} sbx__code;

sbx__code *sbx__code_new(const sbx_module *mods, size_t n);
sbx__code *sbx__code_ref(sbx__code *c);
void sbx__code_unref(sbx__code *c);
const sbx_module *sbx__code_find(const sbx__code *c, const char *name, size_t len);

/* ------------------------------------------------------------ the shim's side */

typedef struct sbx__iso sbx__iso;

typedef struct sbx__iso_config {
  const void *blob;        /* snapshot; must outlive the isolate */
  size_t blob_len;
  size_t heap_limit;       /* bytes */
  size_t external_limit;   /* bytes */
  size_t max_eval;         /* bytes */
} sbx__iso_config;

typedef struct sbx__run sbx__run;

int sbx__v8_start(const sbx_engine_options *opt);
void sbx__v8_stop(void);
const char *sbx__v8_version(void);
/* blob is malloc'd. */
int sbx__v8_snapshot(const char *prelude, const char *extra, void **blob, size_t *len, char **err);

int sbx__iso_new(const sbx__iso_config *cfg, sbx__iso **out);
/* Disposes the isolate. No thread may be inside it. */
void sbx__iso_free(sbx__iso *iso);
/* Thread-safe: ends the run in progress with reason (the first reason wins). */
void sbx__iso_terminate(sbx__iso *iso, int reason);
/* Runs one tick (see sbx_vm_tick) on the calling thread. */
void sbx__iso_run(sbx__iso *iso, sbx__run *run);

/* ------------------------------------------------------------ a run in progress */

/* Shared between a vm and the thread running it when the pool gives up on that thread:
 * the vm does not run again while `alive` (no pile-up of stuck threads per player). */
typedef struct sbx__zombie {
  int alive; /* __atomic builtins */
  int refs;
} sbx__zombie;

struct sbx__run {
  /* in: a private copy of the caller's sbx_tick_in (strings included), so a thread the
   * pool gave up on never reads the caller's memory after sbx_pool_run returned */
  const sbx_tick_in *in;
  sbx_tick_in in_copy;
  void *in_arena;
  sbx__code *code;
  bool new_global;          /* make a fresh global before running */
  sbx__iso *iso;
  size_t stack_room;        /* bytes of this thread's stack V8 may use */
  /* clocks: the thread that runs it */
  clockid_t cpu_clock;
  uint64_t cpu_start_ns, wall_start_ns;
  uint64_t cpu_end_ns, wall_end_ns;
  uint64_t cpu_budget_ns, wall_budget_ns, hard_ns;
  /* watchdog bookkeeping */
  struct sbx__run *wd_next;
  int wd_state;             /* 0 idle, 1 watched, 2 abandoned; __atomic builtins */
  uint64_t wd_terminated_at;
  sbx__zombie *zombie;      /* set by the pool when it gives up on this run */
  void (*on_abandon)(sbx__run *run, void *ud);
  void *on_abandon_ud;
  /* out */
  sbx__console console;
  int status;
  bool created_global;
  uint64_t global_ns;        /* time spent creating the global */
  char *error;
  char *memory;
  size_t memory_len;
  bool memory_changed;
  bool dispose_iso;         /* heap limit or halt: drop the isolate after the run */
  bool commands_run;
  sbx_segment *segments_written; /* malloc'd, moved to sbx_tick_out */
  size_t n_segments_written;
  bool active_segments_set;
  int active_segments[SBX_SEGMENTS_ACTIVE_MAX];
  size_t n_active_segments;
  sbx_heap heap;
};

/* Called by the shim once it is inside the isolate, just before player code runs:
 * starts the clocks and puts the run under the watchdog. */
void sbx__run_begin(sbx__run *run);
/* Called by the shim when player code is done (before heap checks). */
void sbx__run_end(sbx__run *run);
/* Gives a terminated run a fresh budget of extra_ms (CPU and wall) from now: console
 * commands still run after a CPU timeout. The hard limit is unchanged. */
void sbx__run_rearm(sbx__run *run, double extra_ms);
/* CPU milliseconds since sbx__run_begin (Game.cpu.getUsed). */
double sbx__run_cpu_ms(const sbx__run *run);

uint64_t sbx__now_ns(clockid_t clock);

/* Threads given up on that are still inside V8 (sandbox.c). */
void sbx__stuck_add(int delta);

#ifdef __cplusplus
}
#endif
#endif
