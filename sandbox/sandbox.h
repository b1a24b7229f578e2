/*
 * sandbox.h — run untrusted JavaScript in isolated V8 isolates, under budgets, extended
 * by libraries. A C library of its own: usable without the game (tools/isoworld-sandbox
 * is a standalone runner built on it), and the game's player API is just a set of its
 * libraries.
 *
 * The only public header of sandbox/. Pure C: no V8 type, handle or exception ever
 * crosses it. It depends on nothing else of isoworld.
 *
 * Objects and their lifetimes:
 *   engine   process-wide V8 start/stop; flags are set once, before the first isolate.
 *   library  JavaScript prelude code + host functions + lifecycle hooks (sbx_library,
 *            "Writing a library" below). A group bundles several. Built-in ones: console,
 *            inject, ipc, timers, codebase (modules + virtual file tree + fs), measure,
 *            threads, and the player API (guards, modules, memory, game).
 *   runtime  an immutable startup snapshot holding the libraries' JavaScript. Shared by
 *            every VM made from it; free it after the last of them (VMs hold a
 *            reference, so freeing it early is safe).
 *   vm       one persistent isolate + global. Its global survives between runs until the
 *            code changes, sbx_vm_reset(), Game.cpu.halt(), or the heap limit is hit. The
 *            isolate itself is created lazily on the first run, on the thread that runs
 *            it, so a pool creates many isolates in parallel.
 *   pool     worker threads that run batches of jobs (one tick of one vm each) in
 *            parallel. A watchdog thread enforces the CPU and wall budgets of every run
 *            and gives up on a thread stuck in a non-interruptible builtin past the hard
 *            limit, so a batch always finishes.
 *
 * Two ways to drive a vm:
 *   - ticks, as the game server does: sbx_vm_tick / sbx_pool_run call the entry module's
 *     exported loop() with Game and Memory (the player libraries);
 *   - the general API, as any embedder does: sbx_vm_init, sbx_vm_run (code) or
 *     sbx_vm_run_entry (a file of the virtual tree), sbx_vm_call (a function the VM
 *     exports, awaiting its promise, with a timeout), sbx_vm_run_pending (timers and
 *     async completions), sbx_vm_free.
 *
 * Runs. A VM executes JavaScript only inside a *run*: one call of sbx_vm_tick, sbx_vm_init,
 * sbx_vm_run, sbx_vm_run_entry, sbx_vm_call or sbx_vm_run_pending, on the calling thread
 * (or a pool worker), under a v8::Locker, with a CPU budget, a wall budget and the heap
 * limit. Every run ends with a bounded *drain*: microtasks, then up to 16 rounds of
 * {completions of async host functions that arrived, due timers, host calls queued with
 * sbx_vm_call_async, work of the VM's worker threads, microtasks}, stopping early when a
 * round finds nothing to do. So promises, timers and IPC settle inside a run's budget,
 * never outside one, and a VM that uses none of them pays one check per run.
 * sbx_vm_call keeps draining (and sleeps between drains, without CPU) until its promise
 * settles or its timeout passes. Between runs nothing executes: work that arrives
 * (an sbx_async completed from another thread, a timer coming due) waits for the next run;
 * sbx_vm_has_pending says whether there is any, and sbx_vm_run_pending waits for it and
 * runs it — an embedder's event loop is `while (sbx_vm_has_pending(vm))
 * sbx_vm_run_pending(vm, -1, NULL);`, which is what the standalone runner does.
 *
 * Budgets of one run: CPU time (the thread's CPU clock while it is inside the isolate, GC
 * included: V8 runs with --single-threaded-gc; a run that starts within 20 us of the end
 * of the previous run on the same thread is clocked from that end, saving a system call:
 * it is billed the sandbox's few microseconds in between; a run shorter than 50 us of
 * wall time is billed its wall time, an upper bound of its CPU time, without reading the
 * clock — at most 16 in a row), wall time, heap (per vm), external memory
 * (ArrayBuffers, per vm), and the size of strings given to eval/Function. Each ends a run
 * with its own status. For ticks they come from sbx_tick_in; for the general API from
 * sbx_vm_options (cpu_limit_ms, wall_limit_ms) and the call's timeout.
 *
 * Thread-safety: the engine and runtime calls are made from one thread. A vm is used by
 * one thread at a time (the pool guarantees it); sbx_vm_set_code/reset may be called
 * while no run of that vm is in progress. Thread-safe from any thread at any time:
 * sbx_async_resolve/reject, sbx_vm_dispose, sbx_vm_ping, sbx_vm_stats, the measure
 * master, and the sbx_fs functions.
 *
 * A short embedding example (error handling left out):
 *
 *   sbx_engine_start(NULL);
 *   sbx_library *con, *ipc;
 *   sbx_console_library_new(&(sbx_console_options){.sink = print_line}, &con);
 *   static const sbx_host_fn_def fns[] = {{"add", host_add, 0, NULL}};
 *   sbx_ipc_library_new(&(sbx_ipc_options){.fns = fns, .n_fns = 1}, &ipc);
 *   const sbx_library *libs[] = {con, ipc};
 *   sbx_vm *vm;
 *   sbx_vm_create(libs, 2, NULL, &vm, NULL);
 *   sbx_vm_run(vm, "return { main: async (a, b) => await add(a, b) * 2 };", "main", NULL);
 *   sbx_value args[2] = {sbx_number(1), sbx_number(2)};
 *   sbx_result r;
 *   sbx_vm_call(vm, "main", args, 2, 1000, &r);   // r.value->u.number == 6
 *   sbx_result_release(&r);
 *   sbx_vm_free(vm);
 *   sbx_library_free(ipc); sbx_library_free(con);
 *   sbx_engine_stop();
 *
 * with   static void host_add(sbx_call *c, const sbx_value *a, size_t n) {
 *          sbx_call_return_number(c, sbx_value_number(&a[0]) + sbx_value_number(&a[1])); }
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
  X(BUSY, -11, "skipped: this player's previous run is still stuck in a builtin")              \
  X(TIMEOUT, -12, "the call timed out")                                                   \
  X(RESPONSE_LIMIT, -13, "Script execution has been terminated: response time limit exceeded") \
  X(DISPOSED, -14, "the VM is disposed or being disposed")                                \
  X(NOT_FOUND, -15, "not found")                                                          \
  X(LIMIT, -16, "a size or count limit was reached")                                      \
  X(EXISTS, -17, "already exists")                                                        \
  X(NOT_DIR, -18, "not a directory")                                                      \
  X(IS_DIR, -19, "is a directory")                                                        \
  X(NOT_EMPTY, -20, "directory not empty")

typedef enum {
#define SBX__ENUM(name, value, text) SBX_##name = value,
  SBX_STATUS_MAP(SBX__ENUM)
#undef SBX__ENUM
} sbx_status;

/* Text of a status; never NULL. */
const char *sbx_strerror(int status);

/* ------------------------------------------------------------------ types */

typedef struct sbx_runtime sbx_runtime;
typedef struct sbx_vm sbx_vm;
typedef struct sbx_library sbx_library;
typedef struct sbx_call sbx_call;
typedef struct sbx_async sbx_async;
typedef struct sbx_blob sbx_blob;
typedef struct sbx_fs sbx_fs;
typedef struct sbx_measure_master sbx_measure_master;

/* ------------------------------------------------------------------ values */

/* A value copied across the boundary: JSON-compatible values plus binary buffers. From
 * JavaScript: undefined, null, booleans, numbers, strings, arrays, plain objects (own
 * enumerable string keys; getters run), ArrayBuffers and views (their bytes), Dates (ISO
 * string). Functions and symbols become undefined (object members holding them are
 * skipped), BigInts and values nested deeper than 64 levels or larger than 64 MiB are
 * refused with a TypeError in the isolate. To JavaScript: BYTES become an ArrayBuffer.
 *
 * An sbx_value the sandbox hands out (host function arguments, call results) is
 * read-only; its lifetime is stated where it is handed out. Values the host builds are
 * plain structs (sbx_number(), sbx_array(), ... below, pointing at the host's memory):
 * the sandbox copies what it is given and never keeps the host's pointers. */
typedef enum {
  SBX_VAL_UNDEFINED = 0,
  SBX_VAL_NULL,
  SBX_VAL_BOOL,
  SBX_VAL_NUMBER,
  SBX_VAL_STRING,  /* UTF-8, NUL-terminated (len excludes the NUL) */
  SBX_VAL_BYTES,
  SBX_VAL_ARRAY,   /* len items */
  SBX_VAL_OBJECT,  /* len items, each with its key */
} sbx_val_type;

typedef struct sbx_value {
  sbx_val_type type;
  const char *key; /* an object's member: its key (UTF-8, NUL-terminated); else NULL */
  size_t len;      /* STRING/BYTES: bytes; ARRAY/OBJECT: items */
  union {
    bool boolean;
    double number;
    const char *string;
    const unsigned char *bytes;
    const struct sbx_value *items;
  } u;
} sbx_value;

static inline sbx_value sbx_undefined(void) { sbx_value v = {SBX_VAL_UNDEFINED, 0, 0, {0}}; return v; }
static inline sbx_value sbx_null(void) { sbx_value v = {SBX_VAL_NULL, 0, 0, {0}}; return v; }
static inline sbx_value sbx_bool(bool b) { sbx_value v = {SBX_VAL_BOOL, 0, 0, {0}}; v.u.boolean = b; return v; }
static inline sbx_value sbx_number(double x) { sbx_value v = {SBX_VAL_NUMBER, 0, 0, {0}}; v.u.number = x; return v; }
/* s is NUL-terminated here; sbx_string_n takes a length (s[len] need not be NUL). */
sbx_value sbx_string(const char *s);
static inline sbx_value sbx_string_n(const char *s, size_t len) {
  sbx_value v = {SBX_VAL_STRING, 0, len, {0}}; v.u.string = s; return v; }
static inline sbx_value sbx_bytes(const void *p, size_t len) {
  sbx_value v = {SBX_VAL_BYTES, 0, len, {0}}; v.u.bytes = (const unsigned char *)p; return v; }
static inline sbx_value sbx_array(const sbx_value *items, size_t n) {
  sbx_value v = {SBX_VAL_ARRAY, 0, n, {0}}; v.u.items = items; return v; }
/* members: values with their key set (sbx_member). */
static inline sbx_value sbx_object(const sbx_value *members, size_t n) {
  sbx_value v = {SBX_VAL_OBJECT, 0, n, {0}}; v.u.items = members; return v; }
static inline sbx_value sbx_member(const char *key, sbx_value v) { v.key = key; return v; }

/* A number's value (NaN for anything else), a bool's truth (false for anything else). */
double sbx_value_number(const sbx_value *v);
bool sbx_value_bool(const sbx_value *v);
/* An object's member by key, or NULL (also when v is not an object). */
const sbx_value *sbx_value_get(const sbx_value *v, const char *key);
/* A deep copy in one allocation (free with sbx_value_free); NULL when out of memory. */
sbx_value *sbx_value_dup(const sbx_value *v);
void sbx_value_free(sbx_value *v);
/* JSON text of v (malloc'd): undefined as null, BYTES as {"bytes":N} — for printing and
 * tests, not a serialisation format. */
char *sbx_value_to_json(const sbx_value *v);

/* ------------------------------------------------------------------ blobs */

/* Immutable, reference-counted bytes, shareable between VMs and runs: the way to hand
 * per-run data built once (e.g. one room's view, read by every player who sees the room)
 * to many VMs without copying it per VM. sbx_call_return_blob gives it to JavaScript as
 * a string that points at the blob (no copy) when it is ASCII. */
int sbx_blob_new(const void *data, size_t len, sbx_blob **out); /* copies data */
/* Takes ownership of data: free_fn(data, ud) runs when the last reference goes. */
int sbx_blob_wrap(void *data, size_t len, void (*free_fn)(void *data, void *ud), void *ud, sbx_blob **out);
sbx_blob *sbx_blob_ref(sbx_blob *b);
void sbx_blob_unref(sbx_blob *b); /* NULL: no-op */
const void *sbx_blob_data(const sbx_blob *b);
size_t sbx_blob_len(const sbx_blob *b);

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

/* Builds the startup snapshot: the built-in player prelude (console, module system,
 * Game.cpu, Memory/RawMemory) followed by extra_prelude (may be NULL), which runs with
 * `globalThis` as its global and may define more of the player API. A prelude that throws
 * fails with SBX_SNAPSHOT and *error (malloc'd, caller frees) says why. */
int sbx_runtime_new(const char *extra_prelude, sbx_runtime **out, char **error);
/* Builds the startup snapshot of libs (each a library or a group, flattened depth first,
 * a library met twice kept once): the sandbox's core, then each library's JavaScript in
 * order. The libraries are borrowed: they must outlive the runtime and every vm made from
 * it. sbx_runtime_new(extra, ...) is sbx_runtime_new_libs of {sbx_player_library(), a
 * library holding extra as a script}. Errors as sbx_runtime_new; SBX_INVALID if a library
 * is malformed (a host function without a name or function, more than 64 libraries). */
int sbx_runtime_new_libs(const sbx_library *const *libs, size_t n, sbx_runtime **out, char **error);
void sbx_runtime_free(sbx_runtime *rt);
/* Size of the snapshot blob in bytes. */
size_t sbx_runtime_snapshot_size(const sbx_runtime *rt);

/* ------------------------------------------------------------------ vm */

/* Callbacks of a vm (sbx_vm_options). They run on the thread running the vm, except
 * on_dispose, which runs in sbx_vm_free. message is borrowed for the call. */
typedef void (*sbx_vm_error_fn)(sbx_vm *vm, int status, const char *message, void *ud);
typedef void (*sbx_vm_event_fn)(sbx_vm *vm, void *ud);

typedef struct sbx_vm_options {
  size_t heap_limit_mb;      /* V8 heap limit; 0 = 64 */
  size_t external_limit_mb;  /* ArrayBuffer + wasm memory cap; 0 = heap_limit_mb */
  size_t max_eval_bytes;     /* longest string eval/new Function accept; 0 = 1 MiB */
  size_t console_max_lines;  /* lines kept per run (first half + last half); 0 = 100 */
  size_t console_max_bytes;  /* bytes kept per run; 0 = 64 KiB */
  /* --- the general API (not ticks) --- */
  double cpu_limit_ms;       /* CPU budget of one run; 0 = 1000 */
  double wall_limit_ms;      /* wall budget of one run (a call's timeout replaces it); 0 = 2 x CPU + 1000 */
  /* Recoverable errors: an exception of run code, of a timer callback, an unhandled
   * promise rejection, a run over its CPU or wall budget. The vm goes on. */
  sbx_vm_error_fn on_error;
  /* What forces the vm down: heap limit, response-time limit, a thread given up on. The
   * isolate is disposed; the next run starts a fresh one (general API: after
   * sbx_vm_init again). */
  sbx_vm_error_fn on_catastrophic_error;
  /* A run ended and nothing is pending any more (no timer, no host call awaited, no
   * queued call): the vm's event loop is empty. Called once per such transition. */
  sbx_vm_event_fn on_end;
  sbx_vm_event_fn on_dispose; /* sbx_vm_free, before the libraries' dispose hooks */
  void *cb_ud;               /* passed to the callbacks */
  /* codebase library: use this tree (referenced) instead of a new one. */
  sbx_fs *fs;
} sbx_vm_options;

typedef struct sbx_module {
  const char *name;   /* "main", "role.harvester", "lib/util" */
  const char *source; /* JS source, or the bytes of a binary module */
  size_t len;
  bool binary;        /* require() returns an ArrayBuffer of the bytes */
} sbx_module;

/* Makes a vm (cheap: no isolate yet). opt may be NULL. The vm holds a reference to rt. */
int sbx_vm_new(sbx_runtime *rt, const sbx_vm_options *opt, sbx_vm **out);
/* Frees the vm and its isolate. Not while a run of it is in progress. A vm whose last
 * run's thread the pool gave up on (still stuck in V8: SBX_BUSY) is released by that
 * thread when V8 lets it go (on_dispose then runs there); this returns at once. */
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
  const struct sbx_lib_data *lib_data; /* per-run data of libraries (see sbx_call_data) */
  size_t n_lib_data;
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

/* ================================================================== the general API */

/* The outcome of one run of the general API. Release with sbx_result_release. */
typedef struct sbx_result {
  int status;          /* sbx_status; also the return value of the call that filled it */
  char *error;         /* a failed run: message and stack, cleaned of sandbox frames */
  sbx_value *value;    /* sbx_vm_call: the result; sbx_vm_run/_run_entry: an array of the
                          names the host may now call; NULL otherwise */
  uint64_t cpu_ns;     /* CPU time of the run (its worker threads' included) */
  uint64_t wall_ns;
} sbx_result;
void sbx_result_release(sbx_result *r);

/* A private runtime built from libs (sbx_runtime_new_libs) and a vm on it, freed with
 * the vm. For one-off VMs; VMs that share libraries should share one runtime. error as
 * sbx_runtime_new (may be NULL). */
int sbx_vm_create(const sbx_library *const *libs, size_t n, const sbx_vm_options *opt, sbx_vm **out,
                  char **error);

/* Creates the isolate and the global now, on this thread (each run would otherwise do it
 * when needed), and runs the libraries' start hooks. res may be NULL (then so may it be
 * below). */
int sbx_vm_init(sbx_vm *vm, sbx_result *res);
/* Runs code as the body of a function (so `return { main }` works; name is what stack
 * traces call it, NULL = "main"). The object it returns (or resolves to) becomes what the
 * host can call. Then the run's drain. */
int sbx_vm_run(sbx_vm *vm, const char *code, const char *name, sbx_result *res);
/* Runs a module of the vm's codebase tree (sbx_codebase_library), e.g. "/main.js", as
 * require() does; its module.exports (or what it passed to exposeCallables) becomes what
 * the host can call. Then the run's drain. */
int sbx_vm_run_entry(sbx_vm *vm, const char *path, sbx_result *res);
/* Calls the function `fn` the VM exports with copies of args, and waits for its result:
 * a value, or the settlement of the promise it returns, draining timers and async host
 * functions meanwhile. timeout_ms (<= 0: the vm's wall_limit_ms) bounds the wall time of
 * the whole call: past it, JavaScript in progress is terminated and the call returns
 * SBX_TIMEOUT (a promise still pending stays pending in the VM). A rejection or throw is
 * SBX_EXCEPTION with res->error. res->value is the result (undefined if none). */
int sbx_vm_call(sbx_vm *vm, const char *fn, const sbx_value *args, size_t nargs, double timeout_ms,
                sbx_result *res);
/* The same, without waiting: the call is queued and made at the vm's next run (of any
 * kind, its drain included); done(status, value, error, ud) runs on the thread of the
 * run where the result came (value and error borrowed for the callback; value NULL on
 * failure). Every queued call gets exactly one done, SBX_DISPOSED ones at the latest in
 * sbx_vm_free. Thread-safe. */
typedef void (*sbx_call_done_fn)(int status, const sbx_value *value, const char *error, void *ud);
int sbx_vm_call_async(sbx_vm *vm, const char *fn, const sbx_value *args, size_t nargs, sbx_call_done_fn done,
                      void *ud);
/* True when work is pending: a live timer, an async host function not yet completed, a
 * queued call or completion, a call in progress awaiting a promise, a worker with any of
 * these. */
bool sbx_vm_has_pending(sbx_vm *vm);
/* Waits (without a run: no CPU) up to wait_ms (< 0: as long as work is pending) for work
 * to be ready — a completion or queued call arrived, a timer came due — then runs it: a
 * run with the vm's budgets, whose drain does the work. SBX_OK also when there was
 * nothing to do. */
int sbx_vm_run_pending(sbx_vm *vm, double wait_ms, sbx_result *res);
/* Stops the vm for good, from any thread: a run in progress is terminated, host
 * functions called from now on are refused (async ones reject with "the VM is being
 * disposed", sync ones throw), completions are dropped, and every later run returns
 * SBX_DISPOSED. Memory is released by sbx_vm_free. */
void sbx_vm_dispose(sbx_vm *vm);
bool sbx_vm_is_disposed(const sbx_vm *vm);
/* The state the library's attach hook made for this vm, or NULL. */
void *sbx_vm_library_state(const sbx_vm *vm, const sbx_library *lib);
/* Worker threads (threads library): the vm that started this one (NULL for others),
 * and its thread id (0 for others). */
sbx_vm *sbx_vm_parent(const sbx_vm *vm);
int sbx_vm_thread_id(const sbx_vm *vm);

/* ================================================================== writing a library */

/* A library contributes JavaScript prelude code (in the runtime's snapshot), host
 * functions, a config value and hooks. Fill the struct (static, or allocated with a free
 * function for sbx_library_free); unused members stay 0/NULL.
 *
 * JavaScript. `js` is the body of `function (lib, core)`, run once when a runtime's
 * snapshot is built (or, with SBX_LIB_SCRIPT, a classic script with no lib/core, as
 * sbx_runtime_new's extra prelude). It defines globals and registers hooks:
 *   lib.onAttach(fn(host, config, io))  each new global: `host` holds this library's host
 *       functions (by name), `config` a copy of lib->config. Keep them in the closure:
 *       never let player code reach `host`, `lib` or `core`.
 *   lib.onRunBegin(fn)   each tick, before the entry's loop()
 *   lib.onRunEnd(fn)     at the end of a tick in which lib.requestEnd() was called
 *   core.log(level, text)   a console line (sbx_level); core.report(error): an error line
 *       with its stack cleaned of sandbox frames (scripts named isoworld:*), and on_error
 *   core.require(name)   the VM's module loader (when a module library is present)
 *   core.exposeCallables(obj)  what sbx_vm_call may call
 * Capture the intrinsics you use after player code started (const apply = Reflect.apply)
 * before it can replace them.
 *
 * Host functions. Each is called on the thread running the vm, inside a run, with copies
 * of the JavaScript arguments (valid until it returns). A sync function returns its value
 * (sbx_call_return*) or throws (sbx_call_throw) before it returns; returning neither
 * gives undefined. An async function (SBX_FN_ASYNC) makes the call return a promise; it
 * settles it the same ways before returning, or defers it (sbx_call_defer) and completes
 * the sbx_async later, from any thread (sbx_async_resolve/reject, exactly once); the
 * promise then settles at the vm's next drain. A host function must validate its
 * arguments: they come from untrusted code. V8 cannot interrupt a host function: a long
 * one polls its deadline flag (sbx_call_deadline) and gives up when it is raised.
 *
 * Hooks (all optional; lib is the library, state what attach made):
 *   attach       vm created (sbx_vm_new): make *state (per-vm data); non-0 fails sbx_vm_new
 *   start        a new global was made and the JavaScript attached (first run, reset)
 *   after_start  the entry code ran (sbx_vm_run, sbx_vm_run_entry, a tick's first loop)
 *   run_begin    a tick starts (data: this library's sbx_tick_in.lib_data, or NULL)
 *   run_end      a tick ended
 *   dispose      sbx_vm_free: free state
 * Hooks run on the thread running the vm (dispose: the one calling sbx_vm_free). */
typedef void (*sbx_host_fn)(sbx_call *call, const sbx_value *args, size_t nargs);

#define SBX_FN_ASYNC 1u /* the function returns a promise (see above) */

typedef struct sbx_host_fn_def {
  const char *name; /* the property of `host` in the library's JavaScript */
  sbx_host_fn fn;
  unsigned flags;   /* SBX_FN_* */
  void *ud;         /* sbx_call_fn_ud() */
} sbx_host_fn_def;

/* Per-run data of one library, given with a tick (sbx_tick_in.lib_data). */
typedef struct sbx_lib_data {
  const sbx_library *lib;   /* the library it is for */
  void *ptr;                /* anything; borrowed until the run ends (a run the pool gave up
                               on may still be inside V8 later: prefer blobs) */
  sbx_blob *const *blobs;   /* referenced by the run until it really ends */
  size_t n_blobs;
} sbx_lib_data;

#define SBX_LIB_SCRIPT 1u /* js is a classic script (no lib, no core), run with globalThis */

struct sbx_library {
  const char *name;                    /* unique within a runtime, e.g. "crypto" */
  const char *js;                      /* NULL: none */
  unsigned flags;                      /* SBX_LIB_* */
  const sbx_value *config;             /* copied into each new global; NULL: undefined */
  const sbx_host_fn_def *fns;          /* host functions (names unique in the library) */
  size_t n_fns;
  const sbx_library *const *group;     /* a group: these come first, in order */
  size_t n_group;
  void *ud;                            /* the library's own data (sbx_call_library_ud) */
  int (*attach)(const sbx_library *lib, sbx_vm *vm, void **state);
  void (*start)(const sbx_library *lib, sbx_vm *vm, void *state);
  void (*after_start)(const sbx_library *lib, sbx_vm *vm, void *state);
  void (*run_begin)(const sbx_library *lib, sbx_vm *vm, void *state, const sbx_lib_data *data);
  void (*run_end)(const sbx_library *lib, sbx_vm *vm, void *state);
  void (*dispose)(const sbx_library *lib, sbx_vm *vm, void *state);
  void (*free)(sbx_library *lib);      /* sbx_library_free calls it (allocated libraries) */
  const void *internal;                /* reserved for the sandbox's own libraries: NULL */
};

/* Frees a library made by an sbx_*_library_new function (or any with a free hook).
 * Not while a runtime built from it is alive. NULL: no-op. */
void sbx_library_free(sbx_library *lib);
/* A group bundling libs (borrowed: they must outlive the group), named name. */
int sbx_library_group_new(const char *name, const sbx_library *const *libs, size_t n, sbx_library **out);

/* Inside a host function. */
void sbx_call_return(sbx_call *call, const sbx_value *v);   /* copies v */
void sbx_call_return_number(sbx_call *call, double x);
void sbx_call_return_string(sbx_call *call, const char *s, size_t len);
/* A string pointing at the blob's bytes when they are ASCII (else a copy), or an
 * ArrayBuffer copy of them (as_string false). */
void sbx_call_return_blob(sbx_call *call, sbx_blob *b, bool as_string);
/* Throws an Error (sync) or rejects the promise (async) with the formatted message. */
void sbx_call_throw(sbx_call *call, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Async functions only: settle later through the returned handle (NULL for a sync
 * function, or when out of memory: the promise then rejects). */
sbx_async *sbx_call_defer(sbx_call *call);
sbx_vm *sbx_call_vm(const sbx_call *call);
void *sbx_call_state(const sbx_call *call);        /* the library's per-vm state */
void *sbx_call_fn_ud(const sbx_call *call);        /* sbx_host_fn_def.ud */
void *sbx_call_library_ud(const sbx_call *call);   /* sbx_library.ud */
const sbx_lib_data *sbx_call_data(const sbx_call *call); /* this run's, or NULL */
/* True once the run is over budget (the deadline flag below is raised). */
bool sbx_call_expired(const sbx_call *call);
#ifndef __cplusplus
#include <stdatomic.h>
/* The deadline flag of the run: non-zero once the watchdog terminated it (the status
 * that ends it). Valid during the call; poll it in long host functions. */
const atomic_int *sbx_call_deadline(const sbx_call *call);
#endif

/* Complete a deferred call, from any thread, exactly once (the handle is freed). v is
 * copied (may be NULL: undefined). If the vm was disposed meanwhile, nothing happens. */
void sbx_async_resolve(sbx_async *a, const sbx_value *v);
void sbx_async_reject(sbx_async *a, const char *message);

/* ================================================================== built-in libraries */

/* Each sbx_*_library_new returns a library to free with sbx_library_free once no runtime
 * built from it is alive. Their limits and behaviour are detailed in sandbox/lib_*.c. */

/* The player API of the game server, as a group: guards (builtins that could abort the
 * process on huge strings refuse them), console (into the tick's lines), modules
 * (require over sbx_vm_set_code's modules, Screeps names), memory (Memory, RawMemory,
 * segments), game (Game, and the tick: the entry's loop()). Static: never freed. */
const sbx_library *sbx_player_library(void);
const sbx_library *sbx_guards_library(void);
const sbx_library *sbx_modules_library(void);
const sbx_library *sbx_memory_library(void);
const sbx_library *sbx_game_library(void);

/* console: console.log/info/warn/error/debug(/logUnsafe). Lines go to sink as they are
 * written (level, UTF-8 text, its length; on the vm's thread), or without a sink into the
 * tick's capped buffer (sbx_tick_out.lines). */
typedef void (*sbx_console_sink)(sbx_vm *vm, sbx_level level, const char *text, size_t len, void *ud);
typedef struct sbx_console_options {
  sbx_console_sink sink; /* NULL: the tick's lines */
  void *ud;
} sbx_console_options;
int sbx_console_library_new(const sbx_console_options *o, sbx_library **out);

/* inject: each member of values (an object) becomes a global of that name holding a copy
 * of its value in every new global; frozen deeply (and read-only) when freeze. */
int sbx_inject_library_new(const sbx_value *values, bool freeze, sbx_library **out);

/* ipc: the host's functions, each returning a promise in the VM (SBX_FN_ASYNC is
 * implied), as globals or grouped under the global object `object`; and
 * exposeCallables({...}) for sbx_vm_call. fns are copied. */
typedef struct sbx_ipc_options {
  const sbx_host_fn_def *fns;
  size_t n_fns;
  const char *object; /* NULL: each function is a global */
} sbx_ipc_options;
int sbx_ipc_library_new(const sbx_ipc_options *o, sbx_library **out);

/* timers: setTimeout/setInterval/clearTimeout/clearInterval, at most max_timers live at
 * once (setTimeout then throws a RangeError). setTimeout(f, 0) fires at the next drain
 * point (in a tick: before the tick ends); intervals wait at least 1 ms. Timers fire in
 * runs' drains (see Runs), in due order. */
typedef struct sbx_timers_options {
  size_t max_timers; /* 0 = 100 */
} sbx_timers_options;
int sbx_timers_library_new(const sbx_timers_options *o, sbx_library **out);

/* codebase: a virtual file tree per vm (sbx_vm_fs) with a byte and a file-count limit;
 * require() over it (relative and absolute paths, .js, .json, index.js, cycles, a module
 * cache, Screeps' dotted names from the root, binary files as ArrayBuffers), the built-in
 * modules fs (sync functions and fs.promises), fs/promises and path, over the tree only;
 * mock_modules (each an empty object); other Node built-in names refused with a clear
 * error; then the host's resolver for names it does not find. */
typedef struct sbx_codebase_options {
  size_t max_bytes;           /* 0 = 10 MiB */
  size_t max_files;           /* files and directories; 0 = 1000 */
  const char *entry;          /* the entry module of ticks; NULL = "/main.js" */
  const char *const *mock_modules;
  size_t n_mock_modules;
  /* Source of a module the tree does not have (name as required, from = the requiring
   * module's directory): return 0 with *source malloc'd (the sandbox frees it) and *len,
   * or non-0 if unknown. Called on the vm's thread, inside a run. */
  int (*resolver)(const char *name, const char *from, char **source, size_t *len, void *ud);
  void *resolver_ud;
} sbx_codebase_options;
int sbx_codebase_library_new(const sbx_codebase_options *o, sbx_library **out);
/* The vm's tree (borrowed, valid until sbx_vm_free), or NULL without a codebase library. */
sbx_fs *sbx_vm_fs(const sbx_vm *vm);

/* measure: response time (sbx_vm_ping) with a limit that stops the vm, and membership
 * of a master. Heap, CPU and wall statistics (sbx_vm_stats) work on any vm. */
typedef struct sbx_measure_options {
  double response_limit_ms;   /* 0: none */
  sbx_measure_master *master; /* NULL: none; each vm joins it at creation, leaves at free */
} sbx_measure_options;
int sbx_measure_library_new(const sbx_measure_options *o, sbx_library **out);

/* threads: startThread(path) in the VM starts a worker VM from a file of its tree (needs
 * the codebase library) with the libraries chosen here and its own heap limit; the worker
 * offers functions with exposeCallables({...}), which the parent calls as async methods;
 * workers can call the host functions their libraries give them; the parent can dispose
 * a worker. Workers run on their parent's thread, at its drain points, inside its budget
 * (so their CPU is the parent's); one that exceeds response_limit_ms in a run, or is
 * terminated mid-call, stops answering and is disposed (its calls reject). At most
 * max_threads live workers per vm; workers cannot start workers; all are disposed with
 * their parent (or when its global is reset). The worker runtime (snapshot) is built
 * here: the engine must be started; error as sbx_runtime_new. */
typedef struct sbx_threads_options {
  const sbx_library *const *libs; /* the workers' libraries (borrowed, outlive the library) */
  size_t n_libs;
  size_t heap_limit_mb;           /* per worker; 0 = 16 */
  size_t max_threads;             /* 0 = 4 */
  double response_limit_ms;       /* a worker run's wall and CPU cap; 0 = 1000 */
} sbx_threads_options;
int sbx_threads_library_new(const sbx_threads_options *o, sbx_library **out, char **error);

/* ================================================================== the virtual file tree */

/* A tree of files and directories in memory, with limits. Paths are '/'-separated;
 * relative ones are taken from the root; '.' and '..' are resolved and can never leave
 * the tree ('/../../etc' is '/etc' of the tree); NUL bytes are refused. Thread-safe;
 * reference-counted (a vm's codebase library holds one). */
typedef struct sbx_fs_limits {
  size_t max_bytes; /* 0 = 10 MiB */
  size_t max_files; /* files and directories, the root excluded; 0 = 1000 */
} sbx_fs_limits;
int sbx_fs_new(const sbx_fs_limits *lim, sbx_fs **out);
sbx_fs *sbx_fs_ref(sbx_fs *fs);
void sbx_fs_free(sbx_fs *fs); /* drops a reference; NULL: no-op */

#define SBX_FS_BINARY 1u  /* require() gives the bytes (ArrayBuffer), not a module */
#define SBX_FS_APPEND 2u
#define SBX_FS_PARENTS 4u /* create missing parent directories */
/* Writes (replaces) a file. SBX_LIMIT past a limit (the tree is unchanged), SBX_IS_DIR,
 * SBX_NOT_FOUND / SBX_NOT_DIR for a missing parent without SBX_FS_PARENTS. */
int sbx_fs_write(sbx_fs *fs, const char *path, const void *data, size_t len, unsigned flags);
/* A malloc'd copy, NUL-terminated (not counted in len). */
int sbx_fs_read(sbx_fs *fs, const char *path, char **data, size_t *len);
int sbx_fs_mkdir(sbx_fs *fs, const char *path, bool parents);
/* Removes a file, or a directory (recursive: with everything in it; else it must be
 * empty, SBX_NOT_EMPTY). */
int sbx_fs_remove(sbx_fs *fs, const char *path, bool recursive);
/* Names in a directory, sorted (malloc'd array of malloc'd strings: sbx_fs_list_free). */
int sbx_fs_list(sbx_fs *fs, const char *dir, char ***names, size_t *n);
void sbx_fs_list_free(char **names, size_t n);
typedef struct sbx_fs_stat {
  bool dir, binary;
  size_t size;
  double mtime_ms; /* wall clock, ms since the epoch */
} sbx_fs_stat;
int sbx_fs_stat_path(sbx_fs *fs, const char *path, sbx_fs_stat *st);
size_t sbx_fs_bytes(sbx_fs *fs);
size_t sbx_fs_files(sbx_fs *fs);
/* Loads a host directory into the tree under `at` (e.g. "/"): regular files and
 * directories, recursively, symlinks and special files skipped; a file with a NUL byte or
 * invalid UTF-8 is binary. *error (malloc'd, may be NULL) names what failed. */
int sbx_fs_load_dir(sbx_fs *fs, const char *host_dir, const char *at, char **error);

/* ================================================================== measure */

typedef struct sbx_stats {
  size_t heap_used, heap_total, heap_limit, external; /* as of the last full heap check: the
                             end of the first run, of every 16th, of any run over 1 ms or near
                             the limit (reading them costs a fifth of a short run) */
  double heap_used_pct;     /* heap_used / heap_limit * 100 */
  uint64_t cpu_ns, wall_ns; /* totals over every run (workers' CPU included) */
  uint64_t runs;
  double response_ms;       /* the last ping's answer time, or the time an unanswered ping
                               has waited so far; -1 if never pinged */
  bool response_pending;
  int threads;              /* live worker VMs */
} sbx_stats;
/* Thread-safe. A response over the measure library's limit stops the vm first. */
int sbx_vm_stats(sbx_vm *vm, sbx_stats *st);
/* Pings the vm: answered at once when no JavaScript of it is running, else at its next
 * interrupt check (V8 checks at loop back-edges and calls; a builtin stuck for seconds
 * does not answer). Thread-safe. A ping still unanswered past the measure library's
 * response limit stops the vm (terminated, SBX_RESPONSE_LIMIT, on_catastrophic_error). */
int sbx_vm_ping(sbx_vm *vm);

/* A master aggregates many vms (each joins through its measure library, or with
 * sbx_measure_master_add). Thread-safe. */
int sbx_measure_master_new(sbx_measure_master **out);
void sbx_measure_master_free(sbx_measure_master *m); /* vms still in it leave it */
int sbx_measure_master_add(sbx_measure_master *m, sbx_vm *vm);
void sbx_measure_master_remove(sbx_measure_master *m, sbx_vm *vm);
void sbx_measure_master_ping_all(sbx_measure_master *m);
typedef struct sbx_measure_totals {
  size_t count;
  size_t heap_used, heap_total, heap_limit, external; /* sums */
  double heap_used_pct;     /* heap_used / heap_limit * 100 */
  double response_avg_ms;   /* over the vms that have a response time */
  double response_max_ms;   /* the worst */
  uint64_t cpu_ns, wall_ns; /* sums */
} sbx_measure_totals;
void sbx_measure_master_stats(sbx_measure_master *m, sbx_measure_totals *out);

#ifdef __cplusplus
}
#endif
#endif
