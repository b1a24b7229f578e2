/*
 * internal.h — what the C files of sandbox/ and the V8 shim (sandbox/v8/shim.cc) share.
 * Not a public header: nothing outside sandbox/ includes it.
 *
 * The split: the shim owns everything that touches V8 (isolates, contexts, the
 * snapshot, host callbacks, value conversion, termination, the drain loop); the C side
 * owns threads, clocks, the watchdog, the console buffer, the player's modules, the
 * libraries' C halves, mailboxes and the vm's lifecycle. The shim calls back into the C
 * side through the sbx__run of the run in progress and its vm.
 *
 * Atomics: this header is shared with C++, so shared counters are plain ints/u64s used
 * with the __atomic builtins (GCC and Clang, C and C++ alike).
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

/* ------------------------------------------------------------ arena */

/* Bump allocation in chunks that never move; freed at once. A caller may start it on a
 * buffer of its own (cur/left set, 16-byte aligned): only chunks beyond it are malloc'd. */
typedef struct sbx__arena {
  struct sbx__arena_chunk *chunks;
  char *cur;
  size_t left;
} sbx__arena;
void *sbx__arena_alloc(sbx__arena *a, size_t n);
void sbx__arena_release(sbx__arena *a);

/* ------------------------------------------------------------ values */

/* Bytes of sbx_value_dup(v), and the copy into a buffer of that size. */
size_t sbx__value_size(const sbx_value *v);
void sbx__value_copy_into(const sbx_value *v, sbx_value *dst, char **heap);

/* ------------------------------------------------------------ blobs */

struct sbx_blob {
  int refs; /* __atomic */
  const char *data;
  size_t len;
  bool ascii;
  void (*free_fn)(void *data, void *ud);
  void *ud;
};

/* ------------------------------------------------------------ runtime and libraries */

/* The JS/C contract of the shared io buffer (a Float64Array both sides read directly). */
enum {
  SBX__IO_TIME = 0,   /* host -> JS: Game.time */
  SBX__IO_CPU_LIMIT,  /* host -> JS */
  SBX__IO_TICK_LIMIT, /* host -> JS */
  SBX__IO_BUCKET,     /* host -> JS */
  SBX__IO_END,        /* JS -> host: call end() at the end of the tick (Memory touched...) */
  SBX__IO_TIMER,      /* JS -> host: earliest due timer, Date.now() ms; 0: no timer */
  SBX__IO_SEQ,        /* host -> JS: +1 per tick (libraries reset per-tick state lazily) */
  SBX__IO_N = 16
};

/* Host functions implemented in the shim (V8 callbacks), named by id in a library's
 * sbx_host_fn_def (flags SBX__FN_BUILTIN, ud = (void *)id). */
#define SBX__FN_BUILTIN 0x80000000u
enum {
  SBX__B_COMPILE = 1, /* modules: (name) -> module function | ArrayBuffer | undefined */
  SBX__B_MEMORY,      /* memory: () -> RawMemory string */
  SBX__B_SEGMENTS,    /* memory: () -> [id, text, ...] */
  SBX__B_MEMORY_OUT,  /* memory: (memory, segments, active) at the end of a tick */
  SBX__B_CPU,         /* game: Game.cpu.getUsed */
  SBX__B_HEAP,        /* game: Game.cpu.getHeapStatistics */
  SBX__B_HALT,        /* game: Game.cpu.halt */
  SBX__B_LOAD,        /* codebase: (path) -> module function | JSON text | ArrayBuffer */
  SBX__B_EXTERNAL,    /* codebase: (name, from) -> module function | undefined (resolver) */
  SBX__B_N
};

/* Extra hooks of the sandbox's own libraries (sbx_library.internal). */
typedef struct sbx__run sbx__run;
typedef struct sbx__lib_ext {
  /* work that can be done now, inside a run of vm */
  bool (*ready)(sbx_vm *vm, void *state);
  /* do it (on the vm's thread, inside run) */
  void (*drain)(sbx_vm *vm, void *state, sbx__run *run);
  /* any work pending, ready or not (between runs) */
  bool (*pending)(sbx_vm *vm, void *state);
  /* the earliest time (Date.now() ms) work becomes ready by itself; 0: none */
  double (*next_due)(sbx_vm *vm, void *state);
  int kind; /* SBX__LIB_* */
} sbx__lib_ext;
enum { SBX__LIB_OTHER = 0, SBX__LIB_CONSOLE, SBX__LIB_CODEBASE, SBX__LIB_THREADS, SBX__LIB_MEASURE };

typedef struct sbx__fnrec {
  const sbx_library *lib;
  size_t lib_index; /* in the runtime's flattened list */
  const sbx_host_fn_def *def;
} sbx__fnrec;

#define SBX__MAX_LIBS 64

struct sbx_runtime {
  int refs; /* __atomic */
  void *blob;
  size_t blob_len;
  const sbx_library **libs; /* flattened, in snapshot order */
  size_t n_libs;
  sbx__fnrec *fns;          /* every library's host functions, library by library */
  size_t n_fns;
  size_t *fn_first;         /* per library: index of its first function in fns */
  /* libraries with each hook, as indices into libs (so a run pays nothing for hooks no
   * library has) */
  uint8_t start[SBX__MAX_LIBS], after_start[SBX__MAX_LIBS], run_begin[SBX__MAX_LIBS],
      run_end[SBX__MAX_LIBS], drains[SBX__MAX_LIBS];
  size_t n_start, n_after_start, n_run_begin, n_run_end, n_drains;
  sbx_library *extra;       /* sbx_runtime_new's extra prelude (owned) */
};

/* ------------------------------------------------------------ mailbox */

/* What reaches a vm from other threads (and from its own host functions): completions
 * of deferred async host functions and queued host -> isolate calls. The vm takes them
 * at its drain points. Reference-counted: the vm and every sbx_async hold one, so a late
 * completion after sbx_vm_free finds a closed mailbox, not freed memory. */
enum { SBX__MB_RESOLVE = 1, SBX__MB_REJECT, SBX__MB_CALL };
/* A host -> isolate call; its name and arguments live in the same allocation. */
typedef struct sbx__hcall {
  struct sbx__hcall *next;
  uint32_t id;
  char *name;
  sbx_value *args; /* an ARRAY value */
  sbx_call_done_fn done; /* NULL once its waiter gave up */
  void *ud;
} sbx__hcall;
typedef struct sbx__mail {
  struct sbx__mail *next;
  int kind;
  uint32_t id;        /* RESOLVE/REJECT: the promise's id */
  sbx_value *value;   /* RESOLVE (dup; may be NULL: undefined) */
  char *message;      /* REJECT */
  sbx__hcall *call;   /* CALL */
} sbx__mail;
typedef struct sbx__mailbox {
  int refs;     /* __atomic */
  int count;    /* items queued; __atomic (read without the lock) */
  int kicks;    /* bumped by a worker's mailbox: wake up, check the workers */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  sbx__mail *head, *tail;
  bool closed;
  struct sbx__mailbox *wake; /* also signal this one (a worker's: its parent's); ref'd */
} sbx__mailbox;

sbx__mailbox *sbx__mailbox_new(void);
void sbx__mailbox_unref(sbx__mailbox *mb);
/* Queues m (the mailbox takes it; freed at once if closed). */
void sbx__mailbox_push(sbx__mailbox *mb, sbx__mail *m);
/* Takes everything queued (a list, oldest first). */
sbx__mail *sbx__mailbox_take(sbx__mailbox *mb);
void sbx__mail_free(sbx__mail *m);
/* Closes it: later pushes are dropped; returns what was queued. */
sbx__mail *sbx__mailbox_close(sbx__mailbox *mb);

struct sbx_async {
  sbx__mailbox *mb;
  uint32_t id;
};

/* ------------------------------------------------------------ the vm */

struct sbx_vm {
  sbx_runtime *rt;
  sbx_vm_options opt;
  struct sbx__iso *iso;  /* changed under mu */
  sbx__code *code;
  bool reset_pending;
  void *ud;
  uint64_t generation;
  struct sbx__zombie *zombie; /* the last run the pool gave up on, while it may be alive */
  bool own_rt;           /* sbx_vm_create's private runtime */
  bool wd_user;          /* holds a reference on the watchdog */
  pthread_mutex_t mu;    /* iso pointer vs ping/stats; heap; master membership */
  void **states;         /* per library: what its attach hook made */
  sbx__mailbox *mb;
  sbx__hcall *inflight;  /* host -> isolate calls started, awaiting their result (vm thread) */
  uint32_t next_id;      /* call and promise ids; __atomic */
  sbx_console_sink sink;
  void *sink_ud;
  /* statistics, __atomic */
  uint64_t cpu_total_ns, wall_total_ns, runs;
  sbx_heap heap;         /* under mu */
  /* between runs: what the last run left pending (vm thread) */
  double next_timer_ms;  /* 0: none */
  size_t open_promises;  /* deferred async host functions not completed */
  bool ended;            /* on_end was called since the last work */
  bool entry_ran;        /* after_start hooks ran for this global */
  /* measure */
  double response_limit_ms;
  sbx_measure_master *master; /* under mu */
  uint64_t ping_at_ns;   /* __atomic: 0 = no ping pending */
  uint64_t response_ns;  /* __atomic: last answer; UINT64_MAX = never pinged */
  int disposed;          /* __atomic */
  /* threads */
  sbx_vm *parent;
  int thread_id;
  int threads_live;      /* __atomic */
};

/* Answers a pending ping (any thread). */
void sbx__vm_pong(sbx_vm *vm);
/* The library index of lib in vm's runtime, or -1. */
int sbx__vm_lib_index(const sbx_vm *vm, const sbx_library *lib);
/* Runs the hooks of every library that has one. */
void sbx__vm_hook_start(sbx_vm *vm);
void sbx__vm_hook_after_start(sbx_vm *vm);
/* Host -> isolate calls: the result of call id (vm thread); ok=false: error text. */
void sbx__vm_call_finish(sbx_vm *vm, uint32_t id, int status, const sbx_value *value, const char *error);
/* Fails every call in flight (a new global, or free). */
void sbx__vm_fail_calls(sbx_vm *vm, int status, const char *error);
/* Runs a general-API run of vm (op in run) on this thread: isolate creation if needed,
 * budgets, status handling, stats, callbacks. parent: the run of the vm that owns this
 * one (threads), whose remaining budget caps this run's; else NULL. */
int sbx__vm_exec(sbx_vm *vm, sbx__run *run, sbx__run *parent);

/* ------------------------------------------------------------ host calls */

struct sbx_call {
  sbx__run *run;
  sbx_vm *vm;
  const sbx__fnrec *rec;
  void *state;
  void *info;          /* const v8::FunctionCallbackInfo<v8::Value> * */
  void *resolver;      /* v8::Local<v8::Promise::Resolver> * (async) */
  bool async, settled, deferred;
};

/* ------------------------------------------------------------ the shim's side */

typedef struct sbx__iso sbx__iso;

typedef struct sbx__iso_config {
  const void *blob;        /* snapshot; must outlive the isolate */
  size_t blob_len;
  size_t heap_limit;       /* bytes */
  size_t external_limit;   /* bytes */
  size_t max_eval;         /* bytes */
} sbx__iso_config;

int sbx__v8_start(const sbx_engine_options *opt);
void sbx__v8_stop(void);
const char *sbx__v8_version(void);
/* Builds the snapshot of the core and rt's libraries into rt->blob (malloc'd). */
int sbx__v8_snapshot(const char *core_js, sbx_runtime *rt, char **err);

int sbx__iso_new(const sbx__iso_config *cfg, sbx__iso **out);
/* Disposes the isolate. No thread may be inside it. */
void sbx__iso_free(sbx__iso *iso);
/* Thread-safe: ends the run in progress with reason (the first reason wins). */
void sbx__iso_terminate(sbx__iso *iso, int reason);
/* Runs one run (run->op) on the calling thread. */
void sbx__iso_run(sbx__iso *iso, sbx__run *run);
/* Asks the thread inside the isolate (if any) to answer vm's ping at its next interrupt
 * check; answers at once when no JavaScript runs. Caller holds vm->mu. */
void sbx__iso_ping(sbx__iso *iso, sbx_vm *vm);
/* The deadline flag (non-zero once terminated), for sbx_call_deadline. */
const int *sbx__iso_deadline(sbx__iso *iso);

/* ------------------------------------------------------------ a run in progress */

/* Shared between a vm and the thread running it when the pool gives up on that thread:
 * the vm does not run again while `alive` (no pile-up of stuck threads per player).
 * alive: 1 while the thread is in V8, 0 once it left, 2 if sbx_vm_free came meanwhile:
 * then the thread, when it leaves V8, finishes freeing `orphan` (the vm), because a host
 * function in progress on that thread (a worker's run nested in it, say) may still use
 * the vm's libraries. */
typedef struct sbx__zombie {
  int alive; /* __atomic builtins */
  int refs;
  struct sbx_vm *orphan;
} sbx__zombie;

/* What a run does. */
enum {
  SBX__OP_TICK = 0, /* sbx_vm_tick: begin hooks, loop, drain, commands, end */
  SBX__OP_INIT,     /* sbx_vm_init: the global only */
  SBX__OP_RUN,      /* sbx_vm_run: code as a function body */
  SBX__OP_ENTRY,    /* sbx_vm_run_entry */
  SBX__OP_DRAIN,    /* sbx_vm_run_pending */
  SBX__OP_CALL      /* sbx_vm_call: drain until the call `wait` finished or the deadline */
};

struct sbx__run {
  int op;                   /* SBX__OP_* */
  sbx_vm *vm;               /* host functions refuse to run when the run was abandoned */
  const char *src;          /* RUN: the code; ENTRY: the path */
  const char *src_name;     /* RUN: its name */
  uint32_t wait_id;         /* CALL: the call waited for */
  bool wait_done;
  int result_status;        /* CALL: its status */
  sbx_value *value;         /* RUN/ENTRY: callable names; CALL: the result (dup) */
  sbx__console *console_target; /* where console lines go: &console, or the parent's */
  sbx__run *parent;         /* a worker's run inside its parent's */
  bool generic;             /* not a tick: full heap check, on_error... */
  bool drained_work;        /* the drain did something (on_end bookkeeping) */
  void *lib_data_arena;     /* copies of in->lib_data (blobs referenced) */
  /* in: a private copy of the caller's sbx_tick_in (strings included), so a thread the
   * pool gave up on never reads the caller's memory after sbx_pool_run returned */
  const sbx_tick_in *in;
  sbx_tick_in in_copy;
  void *in_arena;
  /* ...except Memory, which most ticks never read: in_copy.memory stays the caller's
   * until sbx__run_memory copies it (mem_state 0 -> 1 -> 2); the pool, giving up on the
   * run, revokes it (0 -> 3, waiting out a copy in progress) before the caller may free it */
  int mem_state;            /* __atomic */
  char *mem_copy;
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
  struct sbx__run *wd_next;  /* in the watchdog's locked list (runs nested too deep for a slot) */
  struct sbx__wd_entry *wd_entry; /* its entry in its thread's watchdog slot, or NULL */
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

void sbx__zombie_unref(sbx__zombie *z);

/* The run's Memory (in->memory, in->memory_len bytes): a private copy made on first use.
 * NULL when there is none, when it was revoked, or when the copy failed (*failed). */
const char *sbx__run_memory(sbx__run *run, bool *failed);
/* The pool gives up on run: from now on the run's thread does not read the caller's
 * Memory (waits for a copy in progress). Watchdog thread. */
void sbx__run_revoke_in(sbx__run *run);

/* Called by the shim once it is inside the isolate, just before player code runs:
 * starts the clocks and puts the run under the watchdog. */
void sbx__run_begin(sbx__run *run);
/* Called by the shim when player code is done (before heap checks). */
void sbx__run_end(sbx__run *run);
/* Gives a terminated run a fresh budget of extra_ms (CPU and wall) from now: console
 * commands still run after a CPU timeout. The hard limit is unchanged. */
void sbx__run_rearm(sbx__run *run, double extra_ms);
/* CPU time of run up to the clock reading `now`, never negative: a run's start may be an
 * estimate chained from short runs billed their wall time (watchdog.c), which a thread
 * preempted during them can put ahead of its clock. */
static inline uint64_t sbx__run_cpu_since(const sbx__run *run, uint64_t now) {
  uint64_t start = __atomic_load_n(&run->cpu_start_ns, __ATOMIC_RELAXED);
  return now > start ? now - start : 0;
}
/* CPU milliseconds since sbx__run_begin (Game.cpu.getUsed). */
double sbx__run_cpu_ms(const sbx__run *run);
/* Remaining CPU and wall budget of a run in progress, ns (0 when spent). */
uint64_t sbx__run_cpu_left(const sbx__run *run);
uint64_t sbx__run_wall_left(const sbx__run *run);
/* True when the watchdog gave up on the run (its host functions must not touch the vm). */
bool sbx__run_abandoned(const sbx__run *run);

/* ------------------------------------------------------------ drain support (C side) */

/* Work a run's drain can do now besides the mailbox and timers: libraries with drains. */
bool sbx__run_libs_ready(sbx__run *run);
void sbx__run_libs_drain(sbx__run *run);
/* Sleeps (no run work) until the vm's mailbox gets something, a worker kicks, or
 * until_ns (monotonic) passes. */
void sbx__vm_wait(sbx_vm *vm, uint64_t until_ns);
/* The data of the run for library lib_index, or NULL. */
const sbx_lib_data *sbx__run_lib_data(const sbx__run *run, const sbx_library *lib);
/* A console line of the run (to the vm's sink, or the run's buffer). */
void sbx__run_log(sbx__run *run, int level, const char *text, size_t len, bool unsafe);
/* on_error of the run's vm, if any. */
void sbx__run_error(sbx__run *run, int status, const char *text);

/* ------------------------------------------------------------ the libraries' C halves */

/* codebase: path lookups and reads for require (the shim compiles). */
typedef struct sbx__codebase sbx__codebase;
/* Resolves name required from directory `from` (see codebase.js) into a path of the
 * tree: malloc'd, or NULL. */
char *sbx__codebase_resolve(sbx__codebase *cb, const char *name, const char *from);
/* A file: malloc'd bytes, length, binary flag; SBX_OK or an error status. */
int sbx__codebase_read(sbx__codebase *cb, const char *path, char **data, size_t *len, bool *binary);
/* The host resolver: 0 with a malloc'd source, or non-0. */
int sbx__codebase_external(sbx__codebase *cb, const char *name, const char *from, char **src, size_t *len);
/* The name of a module in stack traces: "/lib/util.js" -> "lib/util" (malloc'd). */
char *sbx__module_display_name(const char *path);

extern const char sbx__js_core[], sbx__js_guards[], sbx__js_console[], sbx__js_modules[], sbx__js_memory[],
    sbx__js_game[], sbx__js_timers[], sbx__js_ipc[], sbx__js_inject[], sbx__js_codebase[], sbx__js_threads[],
    sbx__js_worker[];

uint64_t sbx__now_ns(clockid_t clock);

/* Threads given up on that are still inside V8 (sandbox.c). */
void sbx__stuck_add(int delta);

#ifdef __cplusplus
}
#endif
#endif
