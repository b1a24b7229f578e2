/*
 * sandbox.h — run untrusted JavaScript in isolated V8 isolates, under budgets.
 *
 * The only public header of sandbox/. Pure C: no V8 type, handle or exception ever
 * crosses it. It depends on nothing else of isoworld.
 *
 * Objects and their lifetimes:
 *   engine   process-wide V8 start/stop; flags are set once, before the first isolate.
 *   runtime  an immutable startup snapshot holding the prelude (player API). Shared by
 *            every VM made from it; free it after the last of them.
 *   vm       one persistent isolate + global per player. Its global survives between
 *            runs until the code changes, sbx_vm_reset(), Game.cpu.halt(), or the heap
 *            limit is hit. The isolate itself is created lazily on the first run, on the
 *            thread that runs it, so a pool creates many isolates in parallel.
 *   pool     worker threads that run batches of jobs (one tick of one vm each) in
 *            parallel. A watchdog thread enforces the CPU and wall budgets of every run
 *            and gives up on a thread stuck in a non-interruptible builtin past the hard
 *            limit, so a batch always finishes.
 *
 * Budgets of one run (sbx_tick_in): CPU time (the worker thread's CPU clock while it is
 * inside the isolate, GC included: V8 runs with --single-threaded-gc), wall time, heap
 * (per vm), external memory (ArrayBuffers, per vm), and the size of strings given to
 * eval/Function. Each ends a run with its own status.
 *
 * Thread-safety: the engine and runtime calls are made from one thread. A vm is used by
 * one thread at a time (the pool guarantees it); sbx_vm_set_code/reset may be called
 * while no run of that vm is in progress.
 */
#ifndef ISOWORLD_SANDBOX_H
#define ISOWORLD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes: 0 is OK, errors negative. X(name, value, text). */
#define SBX_STATUS_MAP(X)                                                                 \
  X(OK, 0, "ok")                                                                          \
  X(EXCEPTION, -1, "the script threw an exception")                                       \
  X(CPU_LIMIT, -2, "Script execution timed out: CPU time limit reached")                  \
  X(WALL_LIMIT, -3, "Script execution timed out: wall time limit reached")                \
  X(HEAP_LIMIT, -4, "Script execution has been terminated: memory allocation limit reached") \
  X(ABANDONED, -5, "Script execution has been terminated: stuck in a builtin past the hard time limit") \
  X(HALTED, -6, "CPU halted")                                                             \
  X(INVALID, -7, "invalid argument")                                                      \
  X(NOMEM, -8, "out of memory")                                                           \
  X(ENGINE, -9, "the V8 engine failed or is not started")                                 \
  X(SNAPSHOT, -10, "the startup snapshot could not be built")                             \
  X(BUSY, -11, "skipped: this player's previous run is still stuck in a builtin")

typedef enum {
#define SBX__ENUM(name, value, text) SBX_##name = value,
  SBX_STATUS_MAP(SBX__ENUM)
#undef SBX__ENUM
} sbx_status;

/* Text of a status; never NULL. */
const char *sbx_strerror(int status);

/* ------------------------------------------------------------------ engine */

typedef struct sbx_engine_options {
  int wasm_max_pages;       /* cap of one WebAssembly memory, 64 KiB pages; 0 = 256 (16 MiB) */
  bool multi_threaded_gc;   /* default false: GC on the isolate's thread, so it is billed */
  const char *v8_flags;     /* extra V8 flags, space separated; may be NULL */
} sbx_engine_options;

/* Starts V8 for this process (once). opt may be NULL for defaults. */
int sbx_engine_start(const sbx_engine_options *opt);
/* Stops V8. Every vm, runtime and pool must have been freed. Threads the pool gave up
 * on may still be inside V8: this waits up to 30 s for them; if some are still stuck
 * then, V8 is left running (disposing it under them would crash) and false is
 * returned — the process should just exit. */
bool sbx_engine_stop(void);
/* Threads given up on (stuck in V8 past their hard limit) that have not finished yet. */
int sbx_engine_stuck_threads(void);
/* The V8 version string, e.g. "10.2.154.26-node.31". */
const char *sbx_engine_version(void);

/* ------------------------------------------------------------------ runtime */

typedef struct sbx_runtime sbx_runtime;

/* Builds the startup snapshot: the built-in player prelude (console, module system,
 * Game.cpu, Memory/RawMemory) followed by extra_prelude (may be NULL), which runs with
 * `globalThis` as its global and may define more of the player API. A prelude that throws
 * fails with SBX_SNAPSHOT and *error (malloc'd, caller frees) says why. */
int sbx_runtime_new(const char *extra_prelude, sbx_runtime **out, char **error);
void sbx_runtime_free(sbx_runtime *rt);
/* Size of the snapshot blob in bytes. */
size_t sbx_runtime_snapshot_size(const sbx_runtime *rt);

/* ------------------------------------------------------------------ vm */

typedef struct sbx_vm sbx_vm;

typedef struct sbx_vm_options {
  size_t heap_limit_mb;      /* V8 heap limit; 0 = 64 */
  size_t external_limit_mb;  /* ArrayBuffer + wasm memory cap; 0 = heap_limit_mb */
  size_t max_eval_bytes;     /* longest string eval/new Function accept; 0 = 1 MiB */
  size_t console_max_lines;  /* lines kept per run (first half + last half); 0 = 100 */
  size_t console_max_bytes;  /* bytes kept per run; 0 = 64 KiB */
} sbx_vm_options;

typedef struct sbx_module {
  const char *name;   /* "main", "role.harvester", "lib/util" */
  const char *source; /* JS source, or the bytes of a binary module */
  size_t len;
  bool binary;        /* require() returns an ArrayBuffer of the bytes */
} sbx_module;

/* Makes a vm (cheap: no isolate yet). opt may be NULL. The vm holds a reference to rt. */
int sbx_vm_new(sbx_runtime *rt, const sbx_vm_options *opt, sbx_vm **out);
/* Frees the vm and its isolate. Not while a run of it is in progress. */
void sbx_vm_free(sbx_vm *vm);
/* Replaces the vm's modules (copied). The global is reset before the next run, which
 * evaluates `main` and calls its exported loop. */
int sbx_vm_set_code(sbx_vm *vm, const sbx_module *modules, size_t count);
/* Resets the global before the next run (as after an upload). */
void sbx_vm_reset(sbx_vm *vm);
/* Sets an opaque user pointer (e.g. the player). */
void sbx_vm_set_userdata(sbx_vm *vm, void *ud);
void *sbx_vm_userdata(const sbx_vm *vm);
/* True while the vm has a live isolate. */
bool sbx_vm_has_isolate(const sbx_vm *vm);
/* Number of times this vm's global was (re)created. */
uint64_t sbx_vm_generation(const sbx_vm *vm);

/* ------------------------------------------------------------------ one run */

typedef enum { SBX_LOG = 0, SBX_INFO, SBX_WARN, SBX_ERROR, SBX_DEBUG, SBX_RESULT } sbx_level;

typedef struct sbx_line {
  sbx_level level;
  bool unsafe;  /* console.logUnsafe: the text is not to be HTML-escaped */
  char *text;   /* UTF-8, NUL-terminated */
  size_t len;
} sbx_line;

/* RawMemory segments, as on Screeps: ids 0..99, at most 10 active (readable) per tick,
 * each at most 100 KiB. */
#define SBX_SEGMENT_IDS 100
#define SBX_SEGMENTS_ACTIVE_MAX 10
#define SBX_SEGMENT_MAX_BYTES (100 * 1024)

typedef struct sbx_segment {
  int id;           /* 0..SBX_SEGMENT_IDS-1 */
  char *data;       /* in: borrowed (const); out: malloc'd, owned by the sbx_tick_out */
  size_t len;
} sbx_segment;

typedef struct sbx_tick_in {
  uint64_t time;            /* Game.time */
  double cpu_limit_ms;      /* Game.cpu.limit */
  double tick_limit_ms;     /* Game.cpu.tickLimit: the CPU budget of this run */
  double bucket;            /* Game.cpu.bucket */
  double wall_limit_ms;     /* wall-clock budget; 0 = 2 x tick_limit_ms + 50 */
  double hard_limit_ms;     /* give up on the thread after this (pool only); 0 = 5000 */
  const char *memory;       /* RawMemory at tick start (UTF-8 JSON); may be NULL */
  size_t memory_len;
  size_t memory_max;        /* longest Memory string accepted back; 0 = 2 MiB */
  const char *const *commands; /* console expressions evaluated after loop(), also when it
                                  threw or ran out of CPU (then with a budget of their own) */
  size_t n_commands;
  const sbx_segment *segments; /* RawMemory.segments readable this tick (borrowed) */
  size_t n_segments;
} sbx_tick_in;

typedef struct sbx_heap {
  size_t used, total, limit, external;
} sbx_heap;

typedef struct sbx_tick_out {
  int status;               /* sbx_status */
  uint64_t cpu_ns;          /* CPU time inside the isolate, including overrun */
  uint64_t wall_ns;
  bool created;             /* this run created the isolate */
  bool global_reset;        /* this run (re)created the global */
  double create_ms;         /* when created: isolate + global from the snapshot, ms */
  bool memory_changed;      /* memory holds the new RawMemory */
  char *memory;             /* malloc'd, NUL-terminated; NULL when unchanged */
  size_t memory_len;
  sbx_line *lines;          /* console output of the run, capped (see sbx_vm_options) */
  size_t n_lines;
  size_t omitted_lines;     /* lines dropped by the cap ("[Omitted N lines]" is among lines) */
  char *error;              /* for a failed run: message and cleaned stack; else NULL */
  bool commands_run;        /* the console commands were evaluated (false: keep them queued) */
  sbx_segment *segments_written; /* segments the player changed this tick (owned) */
  size_t n_segments_written;
  bool active_segments_set; /* RawMemory.setActiveSegments was called: ids for next tick */
  int active_segments[SBX_SEGMENTS_ACTIVE_MAX];
  size_t n_active_segments;
  sbx_heap heap;            /* as of the last full heap check (at most 16 runs old) */
} sbx_tick_out;

/* Runs one tick of vm on the calling thread: (re)creates the isolate/global if needed,
 * evaluates `main` on a new global, calls module.exports.loop(), runs microtasks and
 * pending tasks, evaluates console commands, and serialises Memory if touched. Budgets
 * from in. The result is in *out (release with sbx_tick_out_release); the return value
 * equals out->status. The watchdog must be running (sbx_pool_new starts it, or
 * sbx_watchdog_start for callers without a pool). No hard-limit backstop here: a caller
 * that must never block uses a pool. */
int sbx_vm_tick(sbx_vm *vm, const sbx_tick_in *in, sbx_tick_out *out);
void sbx_tick_out_release(sbx_tick_out *out);

/* Without a pool: the watchdog that enforces CPU/wall budgets of sbx_vm_tick. */
int sbx_watchdog_start(void);
void sbx_watchdog_stop(void);

/* ------------------------------------------------------------------ pool */

typedef struct sbx_pool sbx_pool;

typedef struct sbx_job {
  sbx_vm *vm;
  sbx_tick_in in;   /* borrowed by the pool until sbx_pool_run returns */
  sbx_tick_out out; /* filled by sbx_pool_run */
} sbx_job;

/* Starts threads workers (0 = number of cores) and the watchdog. */
int sbx_pool_new(int threads, sbx_pool **out);
/* Runs every job, in parallel, and returns when each has finished or was abandoned
 * (SBX_ABANDONED: the thread stayed in V8 past hard_limit_ms; it is replaced, and the
 * vm gets a fresh isolate on its next run). A vm may appear once per batch. */
int sbx_pool_run(sbx_pool *pool, sbx_job *jobs, size_t n);
void sbx_pool_free(sbx_pool *pool);
int sbx_pool_threads(const sbx_pool *pool);
/* Threads given up on so far (stuck in V8 past the hard limit). */
uint64_t sbx_pool_abandoned(const sbx_pool *pool);

#ifdef __cplusplus
}
#endif
#endif
