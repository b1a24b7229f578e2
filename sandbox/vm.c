/*
 * vm.c — the vm: lifecycle, ticks (sbx_vm_tick, and the pool's jobs through
 * sbx__vm_tick), the runs of the general API (init, run, run_entry, call, run_pending),
 * host -> isolate calls, libraries' hooks, dispose.
 *
 * Every run goes through sbx__iso_run (shim.cc) on the calling thread. A tick keeps the
 * path it always had, plus one check for pending work (timers, mailbox, workers) and the
 * libraries' run hooks where a library has them; nothing else per tick. The general API's
 * runs read full heap statistics and call the vm's callbacks.
 *
 * Must not: touch V8 (internal.h only), call a host callback while holding vm->mu.
 */
#include "internal.h"

#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbx__runtime_ref(sbx_runtime *rt);
void sbx__runtime_unref(sbx_runtime *rt);
void sbx__measure_leave(sbx_vm *vm);

void sbx__zombie_unref(sbx__zombie *z) {
  if (z && __atomic_sub_fetch(&z->refs, 1, __ATOMIC_ACQ_REL) == 0) free(z);
}

/* ------------------------------------------------------------------ lifecycle */

int sbx_vm_new(sbx_runtime *rt, const sbx_vm_options *opt, sbx_vm **out) {
  *out = NULL;
  if (!rt) return SBX_INVALID;
  sbx_vm *vm = calloc(1, sizeof *vm);
  if (!vm) return SBX_NOMEM;
  if (opt) vm->opt = *opt;
  if (!vm->opt.heap_limit_mb) vm->opt.heap_limit_mb = 64;
  if (!vm->opt.external_limit_mb) vm->opt.external_limit_mb = vm->opt.heap_limit_mb;
  if (!vm->opt.max_eval_bytes) vm->opt.max_eval_bytes = 1u << 20;
  if (!vm->opt.console_max_lines) vm->opt.console_max_lines = 100;
  if (!vm->opt.console_max_bytes) vm->opt.console_max_bytes = 64u << 10;
  if (!(vm->opt.cpu_limit_ms > 0)) vm->opt.cpu_limit_ms = 1000;
  if (!(vm->opt.wall_limit_ms > 0)) vm->opt.wall_limit_ms = 2 * vm->opt.cpu_limit_ms + 1000;
  vm->response_ns = UINT64_MAX;
  pthread_mutex_init(&vm->mu, NULL);
  int rc = SBX_NOMEM;
  vm->code = sbx__code_new(NULL, 0);
  vm->mb = sbx__mailbox_new();
  vm->states = calloc(rt->n_libs + 1, sizeof *vm->states);
  if (!vm->code || !vm->mb || !vm->states) goto fail;
  sbx__runtime_ref(rt);
  vm->rt = rt;
  size_t attached = 0;
  for (; attached < rt->n_libs; attached++) {
    const sbx_library *lib = rt->libs[attached];
    if (lib->attach && (rc = lib->attach(lib, vm, &vm->states[attached])) != 0) {
      if (rc > 0) rc = SBX_INVALID;
      goto fail_attach;
    }
  }
  *out = vm;
  return SBX_OK;
fail_attach:
  while (attached-- > 0) {
    const sbx_library *lib = rt->libs[attached];
    if (lib->dispose) lib->dispose(lib, vm, vm->states[attached]);
  }
  sbx__measure_leave(vm);
  sbx__runtime_unref(rt);
fail:
  free(vm->states);
  sbx__mailbox_unref(vm->mb);
  sbx__code_unref(vm->code);
  pthread_mutex_destroy(&vm->mu);
  free(vm);
  return rc;
}

int sbx_vm_create(const sbx_library *const *libs, size_t n, const sbx_vm_options *opt, sbx_vm **out, char **error) {
  *out = NULL;
  sbx_runtime *rt = NULL;
  int rc = sbx_runtime_new_libs(libs, n, &rt, error);
  if (rc != SBX_OK) return rc;
  rc = sbx_vm_new(rt, opt, out);
  if (rc == SBX_OK) (*out)->own_rt = true;
  sbx_runtime_free(rt); /* the vm holds its own reference */
  return rc;
}

static void fail_mails(sbx__mail *m) {
  while (m) {
    sbx__mail *next = m->next;
    if (m->call && m->call->done) m->call->done(SBX_DISPOSED, NULL, sbx_strerror(SBX_DISPOSED), m->call->ud);
    sbx__mail_free(m);
    m = next;
  }
}

static void vm_free_now(sbx_vm *vm);

void sbx_vm_free(sbx_vm *vm) {
  if (!vm) return;
  __atomic_store_n(&vm->disposed, 1, __ATOMIC_RELEASE);
  if (vm->zombie) {
    /* Its last run's thread is still stuck in V8 and may come back into the vm's
     * libraries: that thread frees the vm when it leaves V8. */
    int alive = 1;
    vm->zombie->orphan = vm;
    if (__atomic_compare_exchange_n(&vm->zombie->alive, &alive, 2, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
  }
  vm_free_now(vm);
}

static void vm_free_now(sbx_vm *vm) {
  if (vm->opt.on_dispose) vm->opt.on_dispose(vm, vm->opt.cb_ud);
  sbx__measure_leave(vm);
  sbx__vm_fail_calls(vm, SBX_DISPOSED, sbx_strerror(SBX_DISPOSED));
  fail_mails(sbx__mailbox_close(vm->mb));
  for (size_t i = vm->rt->n_libs; i-- > 0;) {
    const sbx_library *lib = vm->rt->libs[i];
    if (lib->dispose) lib->dispose(lib, vm, vm->states[i]);
  }
  sbx__zombie_unref(vm->zombie);
  sbx__iso_free(vm->iso);
  sbx__code_unref(vm->code);
  sbx__mailbox_unref(vm->mb);
  sbx__runtime_unref(vm->rt);
  if (vm->wd_user) sbx_watchdog_stop();
  free(vm->states);
  pthread_mutex_destroy(&vm->mu);
  free(vm);
}

int sbx_vm_set_code(sbx_vm *vm, const sbx_module *modules, size_t count) {
  if (!vm || (count && !modules)) return SBX_INVALID;
  for (size_t i = 0; i < count; i++)
    if (!modules[i].name || (!modules[i].source && modules[i].len)) return SBX_INVALID;
  sbx__code *c = sbx__code_new(modules, count);
  if (!c) return SBX_NOMEM;
  sbx__code_unref(vm->code);
  vm->code = c;
  vm->reset_pending = true;
  return SBX_OK;
}

void sbx_vm_reset(sbx_vm *vm) {
  if (vm) vm->reset_pending = true;
}

void sbx_vm_set_userdata(sbx_vm *vm, void *ud) {
  vm->ud = ud;
}
void *sbx_vm_userdata(const sbx_vm *vm) {
  return vm->ud;
}
bool sbx_vm_has_isolate(const sbx_vm *vm) {
  return vm && vm->iso;
}
uint64_t sbx_vm_generation(const sbx_vm *vm) {
  return vm ? vm->generation : 0;
}
sbx_vm *sbx_vm_parent(const sbx_vm *vm) {
  return vm ? vm->parent : NULL;
}
int sbx_vm_thread_id(const sbx_vm *vm) {
  return vm ? vm->thread_id : 0;
}

int sbx__vm_lib_index(const sbx_vm *vm, const sbx_library *lib) {
  for (size_t i = 0; vm && i < vm->rt->n_libs; i++)
    if (vm->rt->libs[i] == lib) return (int)i;
  return -1;
}

void *sbx_vm_library_state(const sbx_vm *vm, const sbx_library *lib) {
  int i = sbx__vm_lib_index(vm, lib);
  return i < 0 ? NULL : vm->states[i];
}

void sbx_vm_dispose(sbx_vm *vm) {
  if (!vm || __atomic_exchange_n(&vm->disposed, 1, __ATOMIC_ACQ_REL)) return;
  pthread_mutex_lock(&vm->mu);
  if (vm->iso) sbx__iso_terminate(vm->iso, SBX_DISPOSED);
  pthread_mutex_unlock(&vm->mu);
  pthread_mutex_lock(&vm->mb->mu);
  pthread_cond_broadcast(&vm->mb->cv);
  pthread_mutex_unlock(&vm->mb->mu);
}

bool sbx_vm_is_disposed(const sbx_vm *vm) {
  return !vm || __atomic_load_n(&vm->disposed, __ATOMIC_ACQUIRE);
}

/* Detaches the vm from its isolate (the caller now owns it). Used when a thread is
 * given up on: the stuck thread disposes the isolate when V8 lets it go. */
sbx__iso *sbx__vm_detach_iso(sbx_vm *vm, sbx__zombie *z) {
  pthread_mutex_lock(&vm->mu);
  sbx__iso *iso = vm->iso;
  vm->iso = NULL;
  pthread_mutex_unlock(&vm->mu);
  sbx__zombie_unref(vm->zombie);
  vm->zombie = z;
  return iso;
}

static int create_iso(sbx_vm *vm) {
  sbx__iso_config cfg = {vm->rt->blob, vm->rt->blob_len, vm->opt.heap_limit_mb << 20, vm->opt.external_limit_mb << 20,
                         vm->opt.max_eval_bytes};
  sbx__iso *iso = NULL;
  int rc = sbx__iso_new(&cfg, &iso);
  if (rc != SBX_OK) return rc;
  pthread_mutex_lock(&vm->mu);
  vm->iso = iso;
  pthread_mutex_unlock(&vm->mu);
  return SBX_OK;
}

/* After a heap limit, halt or response limit: the isolate goes, and with it every call
 * in flight (a worker's are failed by its parent's threads library, with its reason). */
static void drop_iso(sbx_vm *vm, int status) {
  pthread_mutex_lock(&vm->mu);
  sbx__iso *iso = vm->iso;
  vm->iso = NULL;
  pthread_mutex_unlock(&vm->mu);
  sbx__iso_free(iso);
  vm->next_timer_ms = 0;
  vm->open_promises = 0;
  if (!vm->parent) {
    char why[200];
    snprintf(why, sizeof why, "the VM's isolate was disposed (%s)", sbx_strerror(status));
    sbx__vm_fail_calls(vm, SBX_DISPOSED, why);
  }
  malloc_trim(0);
}

static void store_heap(sbx_vm *vm, const sbx_heap *h) {
  __atomic_store_n(&vm->heap.used, h->used, __ATOMIC_RELAXED);
  __atomic_store_n(&vm->heap.total, h->total, __ATOMIC_RELAXED);
  __atomic_store_n(&vm->heap.limit, h->limit, __ATOMIC_RELAXED);
  __atomic_store_n(&vm->heap.external, h->external, __ATOMIC_RELAXED);
}

static void add_stats(sbx_vm *vm, const sbx__run *run) {
  __atomic_add_fetch(&vm->cpu_total_ns, run->cpu_end_ns - run->cpu_start_ns, __ATOMIC_RELAXED);
  __atomic_add_fetch(&vm->wall_total_ns, run->wall_end_ns - run->wall_start_ns, __ATOMIC_RELAXED);
  __atomic_add_fetch(&vm->runs, 1, __ATOMIC_RELAXED);
  store_heap(vm, &run->heap);
}

/* ------------------------------------------------------------------ hooks */

void sbx__vm_hook_start(sbx_vm *vm) {
  const sbx_runtime *rt = vm->rt;
  for (size_t i = 0; i < rt->n_start; i++) {
    const sbx_library *lib = rt->libs[rt->start[i]];
    lib->start(lib, vm, vm->states[rt->start[i]]);
  }
}

void sbx__vm_hook_after_start(sbx_vm *vm) {
  const sbx_runtime *rt = vm->rt;
  for (size_t i = 0; i < rt->n_after_start; i++) {
    const sbx_library *lib = rt->libs[rt->after_start[i]];
    lib->after_start(lib, vm, vm->states[rt->after_start[i]]);
  }
}

const sbx_lib_data *sbx__run_lib_data(const sbx__run *run, const sbx_library *lib) {
  const sbx_tick_in *in = run->in;
  for (size_t i = 0; in && i < in->n_lib_data; i++)
    if (in->lib_data[i].lib == lib) return &in->lib_data[i];
  return NULL;
}

bool sbx__run_libs_ready(sbx__run *run) {
  sbx_vm *vm = run->vm;
  const sbx_runtime *rt = vm->rt;
  for (size_t i = 0; i < rt->n_drains; i++) {
    const sbx__lib_ext *ext = rt->libs[rt->drains[i]]->internal;
    if (ext->ready(vm, vm->states[rt->drains[i]])) return true;
  }
  return false;
}

void sbx__run_libs_drain(sbx__run *run) {
  sbx_vm *vm = run->vm;
  const sbx_runtime *rt = vm->rt;
  for (size_t i = 0; i < rt->n_drains; i++) {
    const sbx__lib_ext *ext = rt->libs[rt->drains[i]]->internal;
    if (ext->ready(vm, vm->states[rt->drains[i]])) ext->drain(vm, vm->states[rt->drains[i]], run);
  }
}

static bool libs_pending(sbx_vm *vm) {
  const sbx_runtime *rt = vm->rt;
  for (size_t i = 0; i < rt->n_drains; i++) {
    const sbx__lib_ext *ext = rt->libs[rt->drains[i]]->internal;
    if (ext->pending && ext->pending(vm, vm->states[rt->drains[i]])) return true;
  }
  return false;
}

static double libs_next_due(sbx_vm *vm) {
  double due = 0;
  const sbx_runtime *rt = vm->rt;
  for (size_t i = 0; i < rt->n_drains; i++) {
    const sbx__lib_ext *ext = rt->libs[rt->drains[i]]->internal;
    if (!ext->next_due) continue;
    double d = ext->next_due(vm, vm->states[rt->drains[i]]);
    if (d != 0 && (due == 0 || d < due)) due = d;
  }
  return due;
}

/* ------------------------------------------------------------------ console and errors */

void sbx__run_log(sbx__run *run, int level, const char *text, size_t len, bool unsafe) {
  sbx_vm *vm = run->vm;
  if (vm->sink)
    vm->sink(vm, (sbx_level)level, text, len, vm->sink_ud);
  else
    sbx__console_push(run->console_target ? run->console_target : &run->console, (sbx_level)level, text, len, unsafe);
}

void sbx__run_error(sbx__run *run, int status, const char *text) {
  sbx_vm *vm = run->vm;
  if (vm->opt.on_error) vm->opt.on_error(vm, status, text, vm->opt.cb_ud);
}

/* ------------------------------------------------------------------ host -> isolate calls */

void sbx__vm_call_finish(sbx_vm *vm, uint32_t id, int status, const sbx_value *value, const char *error) {
  for (sbx__hcall **p = &vm->inflight; *p; p = &(*p)->next) {
    sbx__hcall *c = *p;
    if (c->id != id) continue;
    *p = c->next;
    if (c->done) c->done(status, status == SBX_OK ? value : NULL, status == SBX_OK ? NULL : error, c->ud);
    free(c); /* name and args included */
    return;
  }
}

void sbx__vm_fail_calls(sbx_vm *vm, int status, const char *error) {
  sbx__hcall *c = vm->inflight;
  vm->inflight = NULL;
  while (c) {
    sbx__hcall *next = c->next;
    if (c->done) c->done(status, NULL, error, c->ud);
    free(c); /* name and args included */
    c = next;
  }
}

static int queue_call(sbx_vm *vm, const char *fn, const sbx_value *args, size_t nargs, sbx_call_done_fn done, void *ud,
                      uint32_t *id_out) {
  if (!vm || !fn || (nargs && !args)) return SBX_INVALID;
  if (__atomic_load_n(&vm->disposed, __ATOMIC_ACQUIRE)) return SBX_DISPOSED;
  /* One allocation for the call, its name and its arguments (freed as one). */
  sbx_value arr = sbx_array(args, nargs);
  size_t nl = strlen(fn) + 1, head = (sizeof(sbx__hcall) + nl + 15) & ~(size_t)15;
  sbx__mail *m = calloc(1, sizeof *m);
  sbx__hcall *c = malloc(head + sbx__value_size(&arr));
  if (!m || !c) {
    free(m);
    free(c);
    return SBX_NOMEM;
  }
  memset(c, 0, sizeof *c);
  c->name = (char *)(c + 1);
  memcpy(c->name, fn, nl);
  c->args = (sbx_value *)((char *)c + head);
  char *heap = (char *)c->args + ((sizeof(sbx_value) + 15) & ~(size_t)15);
  sbx__value_copy_into(&arr, c->args, &heap);
  c->done = done;
  c->ud = ud;
  c->id = __atomic_add_fetch(&vm->next_id, 1, __ATOMIC_RELAXED);
  if (c->id == 0) c->id = __atomic_add_fetch(&vm->next_id, 1, __ATOMIC_RELAXED);
  if (id_out) *id_out = c->id;
  m->kind = SBX__MB_CALL;
  m->call = c;
  sbx__mailbox_push(vm->mb, m);
  return SBX_OK;
}

int sbx_vm_call_async(sbx_vm *vm, const char *fn, const sbx_value *args, size_t nargs, sbx_call_done_fn done,
                      void *ud) {
  return queue_call(vm, fn, args, nargs, done, ud, NULL);
}

/* ------------------------------------------------------------------ ticks */

/* Copies in (and everything it points to) into run->in_copy, one allocation; references
 * the blobs of the libraries' data. */
static bool copy_in(sbx__run *run, const sbx_tick_in *in) {
  size_t need = in->n_commands * sizeof(char *);
  for (size_t i = 0; i < in->n_commands; i++) need += in->commands[i] ? strlen(in->commands[i]) + 1 : 0;
  need += in->n_segments * sizeof(sbx_segment);
  for (size_t i = 0; i < in->n_segments; i++) need += in->segments[i].len + 1;
  need += in->n_lib_data * sizeof(sbx_lib_data) + 16;
  for (size_t i = 0; i < in->n_lib_data; i++) need += in->lib_data[i].n_blobs * sizeof(sbx_blob *);
  run->in_copy = *in;
  run->in = &run->in_copy;
  if (need == 16 && in->n_lib_data == 0) return true;
  char *a = malloc(need + 16);
  if (!a) return false;
  run->in_arena = a;
  if (in->n_lib_data) { /* first: it is pointer-aligned */
    sbx_lib_data *ld = (sbx_lib_data *)a;
    a += in->n_lib_data * sizeof(sbx_lib_data);
    for (size_t i = 0; i < in->n_lib_data; i++) {
      ld[i] = in->lib_data[i];
      sbx_blob **blobs = (sbx_blob **)a;
      a += ld[i].n_blobs * sizeof(sbx_blob *);
      for (size_t k = 0; k < ld[i].n_blobs; k++) blobs[k] = sbx_blob_ref(in->lib_data[i].blobs[k]);
      ld[i].blobs = blobs;
    }
    run->in_copy.lib_data = ld;
  }
  /* pointers first (aligned), then bytes */
  if (in->n_commands) {
    char **cmds = (char **)a;
    a += in->n_commands * sizeof(char *);
    run->in_copy.commands = (const char *const *)cmds;
    for (size_t i = 0; i < in->n_commands; i++) {
      cmds[i] = NULL;
      if (!in->commands[i]) continue;
      size_t l = strlen(in->commands[i]) + 1;
      memcpy(a, in->commands[i], l);
      cmds[i] = a;
      a += l;
    }
  }
  a = (char *)(((uintptr_t)a + 7) & ~(uintptr_t)7);
  if (in->n_segments) {
    sbx_segment *segs = (sbx_segment *)a;
    a += in->n_segments * sizeof(sbx_segment);
    run->in_copy.segments = segs;
    for (size_t i = 0; i < in->n_segments; i++) {
      segs[i] = in->segments[i];
      segs[i].data = a;
      if (in->segments[i].len) memcpy(a, in->segments[i].data, in->segments[i].len);
      a[in->segments[i].len] = 0;
      a += in->segments[i].len + 1;
    }
  }
  return true;
}

/* Memory is copied on first use (sbx__run_memory), not with the rest of the input: a tick
 * that leaves Memory alone (the common case, as Memory is parsed lazily) saved a malloc,
 * a copy of the caller's cold buffer and a free, ~5% of an empty tick at 1000 players. */
const char *sbx__run_memory(sbx__run *run, bool *failed) {
  *failed = false;
  const sbx_tick_in *in = run->in;
  if (!in->memory) return NULL;
  int st = __atomic_load_n(&run->mem_state, __ATOMIC_ACQUIRE);
  if (st == 2) return run->mem_copy;
  if (st != 0 || !__atomic_compare_exchange_n(&run->mem_state, &st, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return NULL; /* revoked: the pool gave up on this run */
  char *c = malloc(in->memory_len + 1);
  if (c) {
    memcpy(c, in->memory, in->memory_len);
    c[in->memory_len] = 0;
  }
  run->mem_copy = c;
  __atomic_store_n(&run->mem_state, c ? 2 : 0, __ATOMIC_RELEASE);
  *failed = !c;
  return c;
}

void sbx__run_revoke_in(sbx__run *run) {
  int st = 0;
  while (!__atomic_compare_exchange_n(&run->mem_state, &st, 3, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    if (st != 1) return; /* copied (or revoked): the caller's buffer is no longer read */
    sched_yield();       /* a memcpy in progress */
    st = 0;
  }
}

static void free_in(sbx__run *run) {
  const sbx_tick_in *in = run->in;
  if (in && run->in_arena)
    for (size_t i = 0; i < in->n_lib_data; i++)
      for (size_t k = 0; k < in->lib_data[i].n_blobs; k++) sbx_blob_unref(in->lib_data[i].blobs[k]);
  free(run->in_arena);
  run->in_arena = NULL;
  free(run->mem_copy);
  run->mem_copy = NULL;
}

static void fill_budgets(sbx__run *run, const sbx_tick_in *in) {
  double tl = in->tick_limit_ms > 0 ? in->tick_limit_ms : 500;
  double wl = in->wall_limit_ms > 0 ? in->wall_limit_ms : 2 * tl + 50;
  double hl = in->hard_limit_ms > 0 ? in->hard_limit_ms : 5000;
  if (hl < wl) hl = wl;
  run->cpu_budget_ns = (uint64_t)(tl * 1e6);
  run->wall_budget_ns = (uint64_t)(wl * 1e6);
  run->hard_ns = (uint64_t)(hl * 1e6);
}

static void push_fixed(sbx__run *run, const char *text) {
  sbx__console_push(&run->console, SBX_ERROR, text, strlen(text), false);
}

static bool catastrophic(int status) {
  return status == SBX_HEAP_LIMIT || status == SBX_RESPONSE_LIMIT;
}

/* The vm's callbacks after a run (not for a run the pool gave up on). */
static void after_run_callbacks(sbx_vm *vm, sbx__run *run) {
  int st = run->status;
  if (st != SBX_OK) {
    const char *msg = run->error ? run->error : sbx_strerror(st);
    if (catastrophic(st)) {
      if (vm->opt.on_catastrophic_error) vm->opt.on_catastrophic_error(vm, st, msg, vm->opt.cb_ud);
    } else if (st != SBX_DISPOSED && !(run->op == SBX__OP_CALL && run->wait_done) && vm->opt.on_error) {
      vm->opt.on_error(vm, st, msg, vm->opt.cb_ud);
    }
  }
  if (vm->opt.on_end && !vm->ended && !sbx_vm_has_pending(vm)) {
    vm->ended = true;
    vm->opt.on_end(vm, vm->opt.cb_ud);
  }
}

/* The body of a run, shared by sbx_vm_tick and the pool. When abandon is given, the
 * run may be given up on by the watchdog: then this returns false and the caller's
 * out was already filled by the pool. */
bool sbx__vm_tick(sbx_vm *vm, const sbx_tick_in *in, sbx_tick_out *out, void (*on_abandon)(sbx__run *, void *),
                  void *abandon_ud, bool (*abandoned)(void *)) {
  memset(out, 0, sizeof *out);
  if (__atomic_load_n(&vm->disposed, __ATOMIC_ACQUIRE)) {
    out->status = SBX_DISPOSED;
    out->error = strdup(sbx_strerror(SBX_DISPOSED));
    return true;
  }
  if (vm->zombie) {
    if (__atomic_load_n(&vm->zombie->alive, __ATOMIC_ACQUIRE)) {
      out->status = SBX_BUSY;
      out->error = strdup(sbx_strerror(SBX_BUSY));
      return true;
    }
    sbx__zombie_unref(vm->zombie);
    vm->zombie = NULL;
  }
  if (!vm->iso) {
    uint64_t t0 = sbx__now_ns(CLOCK_MONOTONIC);
    int rc = create_iso(vm);
    if (rc != SBX_OK) {
      out->status = rc;
      out->error = strdup(sbx_strerror(rc));
      return true;
    }
    out->created = true;
    out->create_ms = (double)(sbx__now_ns(CLOCK_MONOTONIC) - t0) / 1e6;
    vm->reset_pending = false;
  }
  sbx__run run;
  memset(&run, 0, sizeof run);
  if (!copy_in(&run, in)) {
    out->status = SBX_NOMEM;
    out->error = strdup(sbx_strerror(SBX_NOMEM));
    return true;
  }
  sbx_runtime *rt = vm->rt; /* a thread given up on still needs the snapshot blob */
  sbx__runtime_ref(rt);
  run.op = SBX__OP_TICK;
  run.vm = vm;
  run.console_target = &run.console;
  run.new_global = vm->reset_pending || out->created;
  run.iso = vm->iso;
  run.stack_room = 1u << 20;
  run.on_abandon = on_abandon;
  run.on_abandon_ud = abandon_ud;
  run.code = sbx__code_ref(vm->code);
  fill_budgets(&run, run.in);
  sbx__console_init(&run.console, vm->opt.console_max_lines, vm->opt.console_max_bytes);
  vm->reset_pending = false;
  vm->ended = false;
  for (size_t i = 0; i < rt->n_run_begin; i++) {
    const sbx_library *lib = rt->libs[rt->run_begin[i]];
    lib->run_begin(lib, vm, vm->states[rt->run_begin[i]], sbx__run_lib_data(&run, lib));
  }

  sbx__iso_run(run.iso, &run);

  if (abandoned && abandoned(abandon_ud)) {
    /* Given up on while we were inside V8: the vm, the job and out belong to others now;
     * only the isolate (detached from the vm) and this run are ours. */
    sbx__iso_free(run.iso);
    sbx__code_unref(run.code);
    sbx__console_release(&run.console);
    free(run.memory);
    free(run.error);
    for (size_t i = 0; i < run.n_segments_written; i++) free(run.segments_written[i].data);
    free(run.segments_written);
    free_in(&run);
    sbx__runtime_unref(rt);
    if (run.zombie) {
      int alive = 1;
      if (!__atomic_compare_exchange_n(&run.zombie->alive, &alive, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        vm_free_now(run.zombie->orphan); /* sbx_vm_free came while we were stuck */
      sbx__zombie_unref(run.zombie);
    }
    sbx__stuck_add(-1);
    return false;
  }

  for (size_t i = 0; i < rt->n_run_end; i++) {
    const sbx_library *lib = rt->libs[rt->run_end[i]];
    lib->run_end(lib, vm, vm->states[rt->run_end[i]]);
  }
  if (run.created_global) {
    vm->generation++;
    out->global_reset = true;
    if (out->created) out->create_ms += (double)run.global_ns / 1e6;
  }
  switch (run.status) {
    case SBX_CPU_LIMIT:
    case SBX_WALL_LIMIT:
    case SBX_HEAP_LIMIT:
    case SBX_HALTED:
    case SBX_RESPONSE_LIMIT:
    case SBX_DISPOSED: push_fixed(&run, sbx_strerror(run.status)); break;
    default: break;
  }
  if (run.status == SBX_HEAP_LIMIT) push_fixed(&run, "The isolate was disposed; a fresh global starts next tick.");
  out->status = run.status;
  out->cpu_ns = run.cpu_end_ns - run.cpu_start_ns;
  out->wall_ns = run.wall_end_ns - run.wall_start_ns;
  out->memory = run.memory;
  out->memory_len = run.memory_len;
  out->memory_changed = run.memory_changed;
  out->error = run.error;
  out->commands_run = run.commands_run || in->n_commands == 0;
  out->segments_written = run.segments_written;
  out->n_segments_written = run.n_segments_written;
  out->active_segments_set = run.active_segments_set;
  memcpy(out->active_segments, run.active_segments, sizeof out->active_segments);
  out->n_active_segments = run.n_active_segments;
  if (!out->error && run.status < 0 && run.status != SBX_EXCEPTION) out->error = strdup(sbx_strerror(run.status));
  out->heap = run.heap;
  add_stats(vm, &run);
  sbx__console_take(&run.console, &out->lines, &out->n_lines, &out->omitted_lines);
  sbx__code_unref(run.code);
  free_in(&run);
  sbx__runtime_unref(rt);
  if (run.dispose_iso) drop_iso(vm, run.status);
  if (vm->opt.on_error || vm->opt.on_catastrophic_error || vm->opt.on_end) {
    run.error = out->error;
    after_run_callbacks(vm, &run);
    run.error = NULL;
  }
  return true;
}

int sbx_vm_tick(sbx_vm *vm, const sbx_tick_in *in, sbx_tick_out *out) {
  if (!vm || !in || !out) return SBX_INVALID;
  sbx__vm_tick(vm, in, out, NULL, NULL, NULL);
  return out->status;
}

void sbx_tick_out_release(sbx_tick_out *out) {
  if (!out) return;
  for (size_t i = 0; i < out->n_lines; i++) free(out->lines[i].text);
  free(out->lines);
  for (size_t i = 0; i < out->n_segments_written; i++) free(out->segments_written[i].data);
  free(out->segments_written);
  free(out->memory);
  free(out->error);
  memset(out, 0, sizeof *out);
}

/* ------------------------------------------------------------------ the general API */

/* Bytes of stack V8 may use from here on this thread: up to 1 MiB, leaving room for the
 * C frames of host functions. The stack's low end is read once per thread. */
static size_t stack_room(void) {
  static __thread uintptr_t low;
  char here;
  if (!low) {
    pthread_attr_t a;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
      pthread_attr_getstack(&a, &addr, &size);
      pthread_attr_destroy(&a);
    }
    low = addr ? (uintptr_t)addr : (uintptr_t)&here - (2u << 20);
  }
  uintptr_t sp = (uintptr_t)&here;
  size_t avail = sp > low ? sp - low : 0;
  size_t margin = 192u << 10;
  size_t room = avail > 2 * margin ? avail - margin : avail / 2;
  return room < (1u << 20) ? room : (1u << 20);
}

int sbx__vm_exec(sbx_vm *vm, sbx__run *run, sbx__run *parent) {
  if (__atomic_load_n(&vm->disposed, __ATOMIC_ACQUIRE)) return run->status = SBX_DISPOSED;
  if (vm->zombie) return run->status = SBX_BUSY;
  if (!parent && !vm->wd_user) {
    if (sbx_watchdog_start() != SBX_OK) return run->status = SBX_NOMEM;
    vm->wd_user = true;
  }
  bool created = false;
  if (!vm->iso) {
    int rc = create_iso(vm);
    if (rc != SBX_OK) return run->status = rc;
    created = true;
  }
  run->vm = vm;
  run->in = &run->in_copy;
  run->code = vm->code;
  run->generic = true;
  run->new_global = vm->reset_pending || created;
  run->iso = vm->iso;
  run->stack_room = stack_room();
  if (!run->cpu_budget_ns) run->cpu_budget_ns = (uint64_t)(vm->opt.cpu_limit_ms * 1e6);
  if (!run->wall_budget_ns) run->wall_budget_ns = (uint64_t)(vm->opt.wall_limit_ms * 1e6);
  if (parent) {
    uint64_t c = sbx__run_cpu_left(parent), w = sbx__run_wall_left(parent);
    if (c < run->cpu_budget_ns) run->cpu_budget_ns = c;
    if (w < run->wall_budget_ns) run->wall_budget_ns = w;
    if (run->cpu_budget_ns < 1000000) run->cpu_budget_ns = 1000000; /* room to notice */
    run->parent = parent;
    run->console_target = parent->console_target;
  } else {
    run->console_target = &run->console;
  }
  run->hard_ns = run->wall_budget_ns;
  sbx__console_init(&run->console, vm->opt.console_max_lines, vm->opt.console_max_bytes);
  vm->reset_pending = false;
  vm->ended = false;

  sbx__iso_run(run->iso, run);

  if (run->created_global) vm->generation++;
  if (run->status != SBX_OK && !run->error) run->error = strdup(sbx_strerror(run->status));
  add_stats(vm, run);
  sbx__console_release(&run->console);
  if (run->dispose_iso) drop_iso(vm, run->status);
  after_run_callbacks(vm, run);
  return run->status;
}

static int finish(sbx__run *run, sbx_result *res) {
  int st = run->status;
  if (res) {
    res->status = st;
    res->error = run->error;
    res->value = run->value;
    res->cpu_ns = run->cpu_end_ns - run->cpu_start_ns;
    res->wall_ns = run->wall_end_ns - run->wall_start_ns;
  } else {
    free(run->error);
    sbx_value_free(run->value);
  }
  return st;
}

static void clear_result(sbx_result *res) {
  if (res) memset(res, 0, sizeof *res);
}

int sbx_vm_init(sbx_vm *vm, sbx_result *res) {
  clear_result(res);
  if (!vm) return SBX_INVALID;
  sbx__run run;
  memset(&run, 0, sizeof run);
  run.op = SBX__OP_INIT;
  sbx__vm_exec(vm, &run, NULL);
  return finish(&run, res);
}

int sbx_vm_run(sbx_vm *vm, const char *code, const char *name, sbx_result *res) {
  clear_result(res);
  if (!vm || !code) return SBX_INVALID;
  sbx__run run;
  memset(&run, 0, sizeof run);
  run.op = SBX__OP_RUN;
  run.src = code;
  run.src_name = name;
  sbx__vm_exec(vm, &run, NULL);
  return finish(&run, res);
}

int sbx_vm_run_entry(sbx_vm *vm, const char *path, sbx_result *res) {
  clear_result(res);
  if (!vm || !path) return SBX_INVALID;
  sbx__run run;
  memset(&run, 0, sizeof run);
  run.op = SBX__OP_ENTRY;
  run.src = path;
  sbx__vm_exec(vm, &run, NULL);
  return finish(&run, res);
}

/* sbx_vm_call's own call: its result lands in the run that waits for it. */
typedef struct waiter {
  sbx__run *run;
  bool done;
} waiter;

static void waited_done(int status, const sbx_value *value, const char *error, void *ud) {
  waiter *w = ud;
  w->done = true;
  w->run->wait_done = true;
  w->run->result_status = status;
  if (status == SBX_OK) {
    w->run->value = sbx_value_dup(value);
  } else {
    free(w->run->error);
    w->run->error = strdup(error ? error : sbx_strerror(status));
  }
}

/* The call id still queued or in flight after its waiter gave up: forget the waiter. */
static void detach_call(sbx_vm *vm, uint32_t id) {
  for (sbx__hcall *c = vm->inflight; c; c = c->next)
    if (c->id == id) c->done = NULL;
  pthread_mutex_lock(&vm->mb->mu);
  for (sbx__mail *m = vm->mb->head; m; m = m->next)
    if (m->call && m->call->id == id) m->call->done = NULL;
  pthread_mutex_unlock(&vm->mb->mu);
}

int sbx_vm_call(sbx_vm *vm, const char *fn, const sbx_value *args, size_t nargs, double timeout_ms, sbx_result *res) {
  clear_result(res);
  if (!vm || !fn) return SBX_INVALID;
  sbx__run run;
  memset(&run, 0, sizeof run);
  waiter w = {&run, false};
  uint32_t id = 0;
  int rc = queue_call(vm, fn, args, nargs, waited_done, &w, &id);
  if (rc != SBX_OK) {
    if (res) res->status = rc;
    return rc;
  }
  run.op = SBX__OP_CALL;
  run.wait_id = id;
  if (timeout_ms > 0) run.wall_budget_ns = (uint64_t)(timeout_ms * 1e6);
  sbx__vm_exec(vm, &run, NULL);
  if (!w.done) {
    detach_call(vm, id);
    if (run.status == SBX_OK) run.status = SBX_TIMEOUT;
  }
  if (run.status == SBX_TIMEOUT && run.error && strcmp(run.error, sbx_strerror(SBX_TIMEOUT)) == 0) {
    free(run.error);
    size_t n = strlen(fn) + 96;
    run.error = malloc(n);
    if (run.error)
      snprintf(run.error, n, "the call of '%s' timed out after %.0f ms", fn, (double)run.wall_budget_ns / 1e6);
  }
  return finish(&run, res);
}

bool sbx_vm_has_pending(sbx_vm *vm) {
  if (!vm || __atomic_load_n(&vm->disposed, __ATOMIC_ACQUIRE)) return false;
  if (__atomic_load_n(&vm->mb->count, __ATOMIC_ACQUIRE) > 0 || vm->inflight || vm->next_timer_ms != 0 ||
      vm->open_promises > 0)
    return true;
  return vm->rt->n_drains && libs_pending(vm);
}

static double epoch_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int sbx_vm_run_pending(sbx_vm *vm, double wait_ms, sbx_result *res) {
  clear_result(res);
  if (!vm) return SBX_INVALID;
  if (__atomic_load_n(&vm->disposed, __ATOMIC_ACQUIRE)) {
    if (res) res->status = SBX_DISPOSED;
    return SBX_DISPOSED;
  }
  if (!sbx_vm_has_pending(vm)) return SBX_OK;
  uint64_t now = sbx__now_ns(CLOCK_MONOTONIC);
  uint64_t until = wait_ms < 0 ? UINT64_MAX : now + (uint64_t)(wait_ms * 1e6);
  double due = vm->next_timer_ms;
  double ldue = vm->rt->n_drains ? libs_next_due(vm) : 0;
  if (ldue != 0 && (due == 0 || ldue < due)) due = ldue;
  if (due != 0) {
    double in_ms = due - epoch_ms();
    uint64_t at = in_ms <= 0 ? now : now + (uint64_t)(in_ms * 1e6);
    if (at < until) until = at;
  }
  bool ready = __atomic_load_n(&vm->mb->count, __ATOMIC_ACQUIRE) > 0 || until <= now;
  if (!ready && vm->rt->n_drains) {
    const sbx_runtime *rt = vm->rt;
    for (size_t i = 0; i < rt->n_drains && !ready; i++) {
      const sbx__lib_ext *ext = rt->libs[rt->drains[i]]->internal;
      ready = ext->ready(vm, vm->states[rt->drains[i]]);
    }
  }
  if (!ready) {
    if (until == UINT64_MAX) until = now + 3600ull * 1000000000ull;
    sbx__vm_wait(vm, until);
  }
  sbx__run run;
  memset(&run, 0, sizeof run);
  run.op = SBX__OP_DRAIN;
  sbx__vm_exec(vm, &run, NULL);
  return finish(&run, res);
}

/* ------------------------------------------------------------------ sbx_call accessors */

sbx_vm *sbx_call_vm(const sbx_call *call) {
  return call ? call->vm : NULL;
}
void *sbx_call_state(const sbx_call *call) {
  return call ? call->state : NULL;
}
void *sbx_call_fn_ud(const sbx_call *call) {
  return call ? call->rec->def->ud : NULL;
}
void *sbx_call_library_ud(const sbx_call *call) {
  return call ? call->rec->lib->ud : NULL;
}
const sbx_lib_data *sbx_call_data(const sbx_call *call) {
  return call ? sbx__run_lib_data(call->run, call->rec->lib) : NULL;
}
const atomic_int *sbx_call_deadline(const sbx_call *call) {
  return (const atomic_int *)sbx__iso_deadline(call->run->iso);
}
bool sbx_call_expired(const sbx_call *call) {
  return call && __atomic_load_n(sbx__iso_deadline(call->run->iso), __ATOMIC_ACQUIRE) != 0;
}
