/*
 * lib_threads.c — the threads library: startThread(path) starts a worker vm from a file
 * of the vm's tree; the worker offers functions with exposeCallables({...}); the parent
 * calls them as async methods (sandbox/js/threads.js).
 *
 * Where workers run, and why. A worker is a vm of its own (own isolate, heap limit,
 * libraries chosen by the host, sharing the parent's file tree), but it executes only
 * inside its parent's runs, on the parent's thread: startThread runs the worker's entry
 * file right away (nested in the host call), and calls to a worker are queued to it and
 * run at the parent's drain points (this library's drain hook), each as a run of the
 * worker nested in the parent's run. So:
 *   - CPU a worker uses is the parent's: the parent's CPU clock runs on (it is the same
 *     thread) and each worker run's budget is capped by what is left of the parent's.
 *     A hostile parent cannot get more CPU, or more cores, through workers;
 *   - heap: each worker has its own limit (heap_limit_mb), at most max_threads of them;
 *   - a worker run past response_limit_ms (CPU or wall), or terminated mid-call for any
 *     reason, means the worker stopped answering: it is disposed and its pending calls
 *     reject. This is the threads watchdog: the sandbox's watchdog thread enforces the
 *     worker run's budget like any other;
 *   - the game server needs nothing new: workers of a player run inside that player's
 *     tick, billed to it, on the pool thread that runs it.
 * The price is parallelism: workers of one vm do not run at the same time as it. A
 * parent awaiting a worker's promise still gets it within the same run (sbx_vm_call,
 * sbx_vm_run_pending) or the next tick.
 *
 * Workers cannot start workers. All workers are disposed with their parent, or when the
 * parent's global is reset.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct worker {
  struct worker *next;
  int id;
  sbx_vm *vm;
} worker;

typedef struct threads_lib {
  sbx_library lib; /* first */
  sbx_threads_options opt;
  sbx_runtime *rt;        /* the workers' runtime */
  sbx_library worker_lib; /* exposeCallables and isThread, in every worker */
  sbx_library *codebase;  /* require over the parent's tree, in every worker */
  sbx__lib_ext ext;
} threads_lib;

typedef struct threads_state {
  const threads_lib *lib;
  worker *workers;
  int next_id;
  int live;
} threads_state;

/* ------------------------------------------------------------------ workers */

static worker *find_worker(threads_state *st, int id) {
  for (worker *w = st->workers; w; w = w->next)
    if (w->id == id) return w;
  return NULL;
}

/* Disposes w: its calls still pending reject with reason. */
static void kill_worker(threads_state *st, sbx_vm *parent, worker *w, const char *reason) {
  for (worker **p = &st->workers; *p; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      break;
    }
  }
  sbx__vm_fail_calls(w->vm, SBX_DISPOSED, reason);
  sbx__mail *m = sbx__mailbox_close(w->vm->mb);
  while (m) {
    sbx__mail *next = m->next;
    if (m->call && m->call->done) m->call->done(SBX_DISPOSED, NULL, reason, m->call->ud);
    sbx__mail_free(m);
    m = next;
  }
  sbx_vm_free(w->vm);
  free(w);
  st->live--;
  __atomic_sub_fetch(&parent->threads_live, 1, __ATOMIC_RELAXED);
}

static void kill_all(threads_state *st, sbx_vm *parent, const char *reason) {
  while (st->workers) kill_worker(st, parent, st->workers, reason);
}

static bool worker_ready(const worker *w) {
  if (__atomic_load_n(&w->vm->mb->count, __ATOMIC_ACQUIRE) > 0) return true;
  double due = w->vm->next_timer_ms;
  if (due == 0) return false;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return due <= (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool is_kill(int status) {
  return status == SBX_CPU_LIMIT || status == SBX_WALL_LIMIT || status == SBX_HEAP_LIMIT ||
         status == SBX_RESPONSE_LIMIT || status == SBX_TIMEOUT || status == SBX_ENGINE || status == SBX_NOMEM;
}

static void stopped(threads_state *st, sbx_vm *parent, worker *w, const sbx__run *r) {
  char reason[256];
  snprintf(reason, sizeof reason, "thread %d stopped answering (%s) and was disposed", w->id, sbx_strerror(r->status));
  kill_worker(st, parent, w, reason);
}

/* ------------------------------------------------------------------ drain hooks */

static bool threads_ready(sbx_vm *vm, void *state) {
  threads_state *st = state;
  for (worker *w = st ? st->workers : NULL; w; w = w->next)
    if (worker_ready(w)) return true;
  return false;
}

static void threads_drain(sbx_vm *vm, void *state, sbx__run *run) {
  threads_state *st = state;
  worker *w = st->workers;
  while (w) {
    worker *next = w->next;
    if (sbx__run_cpu_left(run) == 0 || sbx__run_wall_left(run) == 0) return; /* the parent's budget is spent */
    if (worker_ready(w)) {
      sbx__run r;
      memset(&r, 0, sizeof r);
      r.op = SBX__OP_DRAIN;
      r.cpu_budget_ns = (uint64_t)(st->lib->opt.response_limit_ms * 1e6);
      r.wall_budget_ns = r.cpu_budget_ns;
      sbx__vm_exec(w->vm, &r, run);
      if (is_kill(r.status)) stopped(st, vm, w, &r);
      free(r.error);
      sbx_value_free(r.value);
    }
    w = next;
  }
}

static bool threads_pending(sbx_vm *vm, void *state) {
  threads_state *st = state;
  for (worker *w = st ? st->workers : NULL; w; w = w->next)
    if (sbx_vm_has_pending(w->vm)) return true;
  return false;
}

static double threads_next_due(sbx_vm *vm, void *state) {
  threads_state *st = state;
  double due = 0;
  for (worker *w = st ? st->workers : NULL; w; w = w->next)
    if (w->vm->next_timer_ms != 0 && (due == 0 || w->vm->next_timer_ms < due)) due = w->vm->next_timer_ms;
  return due;
}

/* ------------------------------------------------------------------ host functions */

static void fn_start(sbx_call *c, const sbx_value *a, size_t n) {
  threads_state *st = sbx_call_state(c);
  const threads_lib *l = st->lib;
  sbx_vm *parent = sbx_call_vm(c);
  if (n < 1 || a[0].type != SBX_VAL_STRING || strlen(a[0].u.string) != a[0].len) {
    sbx_call_throw(c, "startThread expects a path");
    return;
  }
  if (parent->parent) {
    sbx_call_throw(c, "a thread cannot start threads");
    return;
  }
  if ((size_t)st->live >= l->opt.max_threads) {
    sbx_call_throw(c, "thread limit reached: at most %zu threads may be live", l->opt.max_threads);
    return;
  }
  sbx_fs *fs = sbx_vm_fs(parent);
  if (!fs) {
    sbx_call_throw(c, "startThread needs the codebase library (a file tree)");
    return;
  }
  sbx__codebase *cb = NULL;
  for (size_t i = 0; i < parent->rt->n_libs && !cb; i++) {
    const sbx__lib_ext *ext = parent->rt->libs[i]->internal;
    if (ext && ext->kind == SBX__LIB_CODEBASE) cb = parent->states[i];
  }
  char *path = cb ? sbx__codebase_resolve(cb, a[0].u.string, "/") : NULL;
  if (!path) {
    sbx_call_throw(c, "startThread: no file '%.200s' in the tree", a[0].u.string);
    return;
  }
  worker *w = calloc(1, sizeof *w);
  sbx_vm_options o = {.heap_limit_mb = l->opt.heap_limit_mb,
                      .cpu_limit_ms = l->opt.response_limit_ms,
                      .wall_limit_ms = l->opt.response_limit_ms,
                      .fs = fs};
  if (!w || sbx_vm_new(l->rt, &o, &w->vm) != SBX_OK) {
    free(w);
    free(path);
    sbx_call_throw(c, "startThread: out of memory");
    return;
  }
  w->id = ++st->next_id;
  w->vm->parent = parent;
  w->vm->thread_id = w->id;
  w->vm->mb->wake = parent->mb;
  __atomic_add_fetch(&parent->mb->refs, 1, __ATOMIC_ACQ_REL);
  w->next = st->workers;
  st->workers = w;
  st->live++;
  __atomic_add_fetch(&parent->threads_live, 1, __ATOMIC_RELAXED);

  sbx__run r;
  memset(&r, 0, sizeof r);
  r.op = SBX__OP_ENTRY;
  r.src = path;
  r.cpu_budget_ns = (uint64_t)(l->opt.response_limit_ms * 1e6);
  r.wall_budget_ns = r.cpu_budget_ns;
  sbx__vm_exec(w->vm, &r, c->run);
  free(path);
  if (r.status != SBX_OK) {
    char msg[800];
    snprintf(msg, sizeof msg, "startThread('%.200s') failed: %.380s", a[0].u.string,
             r.error ? r.error : sbx_strerror(r.status));
    kill_worker(st, parent, w, msg);
    sbx_call_throw(c, "%s", msg);
  } else {
    sbx_value none = sbx_array(NULL, 0);
    sbx_value items[2] = {sbx_number(w->id), r.value ? *r.value : none};
    sbx_value ret = sbx_array(items, 2);
    sbx_call_return(c, &ret);
  }
  free(r.error);
  sbx_value_free(r.value);
}

static void call_done(int status, const sbx_value *value, const char *error, void *ud) {
  sbx_async *a = ud;
  if (status == SBX_OK)
    sbx_async_resolve(a, value);
  else
    sbx_async_reject(a, error ? error : sbx_strerror(status));
}

static void fn_call(sbx_call *c, const sbx_value *a, size_t n) {
  threads_state *st = sbx_call_state(c);
  worker *w = n >= 3 && a[0].type == SBX_VAL_NUMBER ? find_worker(st, (int)a[0].u.number) : NULL;
  if (!w) {
    sbx_call_throw(c, "the thread is disposed");
    return;
  }
  if (a[1].type != SBX_VAL_STRING || a[2].type != SBX_VAL_ARRAY) {
    sbx_call_throw(c, "bad thread call");
    return;
  }
  sbx_async *h = sbx_call_defer(c);
  if (!h) {
    sbx_call_throw(c, "out of memory");
    return;
  }
  int rc = sbx_vm_call_async(w->vm, a[1].u.string, a[2].u.items, a[2].len, call_done, h);
  if (rc != SBX_OK) sbx_async_reject(h, sbx_strerror(rc));
}

static void fn_dispose(sbx_call *c, const sbx_value *a, size_t n) {
  threads_state *st = sbx_call_state(c);
  worker *w = n >= 1 && a[0].type == SBX_VAL_NUMBER ? find_worker(st, (int)a[0].u.number) : NULL;
  if (w) {
    char reason[96];
    snprintf(reason, sizeof reason, "thread %d was disposed", w->id);
    kill_worker(st, sbx_call_vm(c), w, reason);
  }
}

static void fn_disposed(sbx_call *c, const sbx_value *a, size_t n) {
  threads_state *st = sbx_call_state(c);
  worker *w = n >= 1 && a[0].type == SBX_VAL_NUMBER ? find_worker(st, (int)a[0].u.number) : NULL;
  sbx_value v = sbx_bool(w == NULL);
  sbx_call_return(c, &v);
}

static const sbx_host_fn_def threads_fns[] = {
    {"start", fn_start, 0, NULL},
    {"call", fn_call, SBX_FN_ASYNC, NULL},
    {"dispose", fn_dispose, 0, NULL},
    {"disposed", fn_disposed, 0, NULL},
};

static void fn_id(sbx_call *c, const sbx_value *a, size_t n) {
  sbx_call_return_number(c, sbx_vm_thread_id(sbx_call_vm(c)));
}

static const sbx_host_fn_def worker_fns[] = {{"id", fn_id, 0, NULL}};

/* ------------------------------------------------------------------ the library */

static int threads_attach(const sbx_library *lib, sbx_vm *vm, void **state) {
  threads_state *st = calloc(1, sizeof *st);
  if (!st) return SBX_NOMEM;
  st->lib = (const threads_lib *)lib;
  *state = st;
  return 0;
}

static void threads_start(const sbx_library *lib, sbx_vm *vm, void *state) {
  kill_all(state, vm, "the parent's global was reset");
}

static void threads_dispose(const sbx_library *lib, sbx_vm *vm, void *state) {
  threads_state *st = state;
  if (!st) return;
  kill_all(st, vm, "the parent VM was disposed");
  free(st);
}

static void threads_free(sbx_library *lib) {
  threads_lib *l = (threads_lib *)lib;
  sbx_runtime_free(l->rt);
  sbx_library_free(l->codebase);
  free(l);
}

int sbx_threads_library_new(const sbx_threads_options *o, sbx_library **out, char **error) {
  *out = NULL;
  if (error) *error = NULL;
  if (o && o->n_libs && !o->libs) return SBX_INVALID;
  threads_lib *l = calloc(1, sizeof *l);
  if (!l) return SBX_NOMEM;
  if (o) l->opt = *o;
  if (!l->opt.heap_limit_mb) l->opt.heap_limit_mb = 16;
  if (!l->opt.max_threads) l->opt.max_threads = 4;
  if (!(l->opt.response_limit_ms > 0)) l->opt.response_limit_ms = 1000;
  l->worker_lib.name = "worker";
  l->worker_lib.js = sbx__js_worker;
  l->worker_lib.fns = worker_fns;
  l->worker_lib.n_fns = 1;
  int rc = sbx_codebase_library_new(NULL, &l->codebase);
  if (rc != SBX_OK) {
    free(l);
    return rc;
  }
  size_t n = 2 + l->opt.n_libs;
  const sbx_library **libs = calloc(n, sizeof *libs);
  if (!libs) {
    threads_free(&l->lib);
    return SBX_NOMEM;
  }
  libs[0] = &l->worker_lib;
  libs[1] = l->codebase;
  for (size_t i = 0; i < l->opt.n_libs; i++) libs[2 + i] = l->opt.libs[i];
  rc = sbx_runtime_new_libs(libs, n, &l->rt, error);
  free(libs);
  if (rc != SBX_OK) {
    threads_free(&l->lib);
    return rc;
  }
  l->ext.kind = SBX__LIB_THREADS;
  l->ext.ready = threads_ready;
  l->ext.drain = threads_drain;
  l->ext.pending = threads_pending;
  l->ext.next_due = threads_next_due;
  l->lib.name = "threads";
  l->lib.js = sbx__js_threads;
  l->lib.fns = threads_fns;
  l->lib.n_fns = sizeof threads_fns / sizeof threads_fns[0];
  l->lib.attach = threads_attach;
  l->lib.start = threads_start;
  l->lib.dispose = threads_dispose;
  l->lib.free = threads_free;
  l->lib.internal = &l->ext;
  *out = &l->lib;
  return SBX_OK;
}
