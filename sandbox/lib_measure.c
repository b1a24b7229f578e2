/*
 * lib_measure.c — measurement: heap statistics, CPU and wall time, response time with a
 * limit, and a master that aggregates many vms.
 *
 * Heap figures are those of the last full heap check at the end of a run (the first run,
 * every 16th, any run over 1 ms, any near the limit): reading them live would need the
 * isolate's lock, which a running vm holds, and reading them after every run would cost a
 * fifth of a short run. CPU and wall time are totals over
 * every run (a worker's run is inside its parent's, so the parent's CPU includes it).
 *
 * Response time: sbx_vm_ping records when it asked; the vm answers at once when none of
 * its JavaScript is running (an idle vm is responsive), else at its next interrupt check
 * (isolate->RequestInterrupt), or when its run ends. A vm stuck in a builtin that ignores
 * interrupts does not answer: its response time grows, and past the measure library's
 * limit the vm is stopped (terminated with SBX_RESPONSE_LIMIT, its isolate disposed after
 * the run, on_catastrophic_error). The limit is checked by sbx_vm_ping and sbx_vm_stats,
 * and so by a master's ping_all and stats.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct sbx_measure_master {
  pthread_mutex_t mu;
  sbx_vm **vms;
  size_t n, cap;
};

/* ------------------------------------------------------------------ ping */

void sbx__vm_pong(sbx_vm *vm) {
  uint64_t at = __atomic_exchange_n(&vm->ping_at_ns, 0, __ATOMIC_ACQ_REL);
  if (!at) return;
  uint64_t now = sbx__now_ns(CLOCK_MONOTONIC);
  __atomic_store_n(&vm->response_ns, now > at ? now - at : 0, __ATOMIC_RELEASE);
}

/* A ping unanswered past the limit stops the vm. */
static void check_limit(sbx_vm *vm) {
  uint64_t at = __atomic_load_n(&vm->ping_at_ns, __ATOMIC_ACQUIRE);
  if (!at || !(vm->response_limit_ms > 0)) return;
  uint64_t now = sbx__now_ns(CLOCK_MONOTONIC);
  if ((double)(now - at) / 1e6 <= vm->response_limit_ms) return;
  pthread_mutex_lock(&vm->mu);
  if (vm->iso) sbx__iso_terminate(vm->iso, SBX_RESPONSE_LIMIT);
  pthread_mutex_unlock(&vm->mu);
}

int sbx_vm_ping(sbx_vm *vm) {
  if (!vm) return SBX_INVALID;
  if (__atomic_load_n(&vm->disposed, __ATOMIC_ACQUIRE)) return SBX_DISPOSED;
  check_limit(vm);
  uint64_t expected = 0, now = sbx__now_ns(CLOCK_MONOTONIC);
  if (!__atomic_compare_exchange_n(&vm->ping_at_ns, &expected, now, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return SBX_OK; /* the previous ping is still out */
  pthread_mutex_lock(&vm->mu);
  if (vm->iso)
    sbx__iso_ping(vm->iso, vm);
  else
    sbx__vm_pong(vm);
  pthread_mutex_unlock(&vm->mu);
  return SBX_OK;
}

int sbx_vm_stats(sbx_vm *vm, sbx_stats *st) {
  memset(st, 0, sizeof *st);
  if (!vm) return SBX_INVALID;
  check_limit(vm);
  st->heap_used = __atomic_load_n(&vm->heap.used, __ATOMIC_RELAXED);
  st->heap_total = __atomic_load_n(&vm->heap.total, __ATOMIC_RELAXED);
  st->heap_limit = __atomic_load_n(&vm->heap.limit, __ATOMIC_RELAXED);
  if (!st->heap_limit) st->heap_limit = vm->opt.heap_limit_mb << 20;
  st->external = __atomic_load_n(&vm->heap.external, __ATOMIC_RELAXED);
  st->heap_used_pct = st->heap_limit ? (double)st->heap_used * 100.0 / (double)st->heap_limit : 0;
  st->cpu_ns = __atomic_load_n(&vm->cpu_total_ns, __ATOMIC_RELAXED);
  st->wall_ns = __atomic_load_n(&vm->wall_total_ns, __ATOMIC_RELAXED);
  st->runs = __atomic_load_n(&vm->runs, __ATOMIC_RELAXED);
  uint64_t at = __atomic_load_n(&vm->ping_at_ns, __ATOMIC_ACQUIRE);
  if (at) {
    st->response_pending = true;
    st->response_ms = (double)(sbx__now_ns(CLOCK_MONOTONIC) - at) / 1e6;
  } else {
    uint64_t r = __atomic_load_n(&vm->response_ns, __ATOMIC_ACQUIRE);
    st->response_ms = r == UINT64_MAX ? -1 : (double)r / 1e6;
  }
  st->threads = __atomic_load_n(&vm->threads_live, __ATOMIC_RELAXED);
  return SBX_OK;
}

/* ------------------------------------------------------------------ master */

int sbx_measure_master_new(sbx_measure_master **out) {
  *out = calloc(1, sizeof **out);
  if (!*out) return SBX_NOMEM;
  pthread_mutex_init(&(*out)->mu, NULL);
  return SBX_OK;
}

void sbx_measure_master_free(sbx_measure_master *m) {
  if (!m) return;
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < m->n; i++) {
    pthread_mutex_lock(&m->vms[i]->mu);
    m->vms[i]->master = NULL;
    pthread_mutex_unlock(&m->vms[i]->mu);
  }
  pthread_mutex_unlock(&m->mu);
  free(m->vms);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

int sbx_measure_master_add(sbx_measure_master *m, sbx_vm *vm) {
  if (!m || !vm) return SBX_INVALID;
  pthread_mutex_lock(&vm->mu);
  bool member = vm->master != NULL;
  pthread_mutex_unlock(&vm->mu);
  if (member) return SBX_EXISTS;
  pthread_mutex_lock(&m->mu);
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 8;
    sbx_vm **v = realloc(m->vms, cap * sizeof *v);
    if (!v) {
      pthread_mutex_unlock(&m->mu);
      return SBX_NOMEM;
    }
    m->vms = v;
    m->cap = cap;
  }
  m->vms[m->n++] = vm;
  pthread_mutex_lock(&vm->mu);
  vm->master = m;
  pthread_mutex_unlock(&vm->mu);
  pthread_mutex_unlock(&m->mu);
  return SBX_OK;
}

void sbx_measure_master_remove(sbx_measure_master *m, sbx_vm *vm) {
  if (!m || !vm) return;
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < m->n; i++) {
    if (m->vms[i] != vm) continue;
    m->vms[i] = m->vms[--m->n];
    pthread_mutex_lock(&vm->mu);
    vm->master = NULL;
    pthread_mutex_unlock(&vm->mu);
    break;
  }
  pthread_mutex_unlock(&m->mu);
}

void sbx__measure_leave(sbx_vm *vm) {
  pthread_mutex_lock(&vm->mu);
  sbx_measure_master *m = vm->master;
  pthread_mutex_unlock(&vm->mu);
  if (m) sbx_measure_master_remove(m, vm);
}

void sbx_measure_master_ping_all(sbx_measure_master *m) {
  if (!m) return;
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < m->n; i++) sbx_vm_ping(m->vms[i]);
  pthread_mutex_unlock(&m->mu);
}

void sbx_measure_master_stats(sbx_measure_master *m, sbx_measure_totals *out) {
  memset(out, 0, sizeof *out);
  if (!m) return;
  size_t responding = 0;
  double sum = 0;
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < m->n; i++) {
    sbx_stats st;
    sbx_vm_stats(m->vms[i], &st);
    out->count++;
    out->heap_used += st.heap_used;
    out->heap_total += st.heap_total;
    out->heap_limit += st.heap_limit;
    out->external += st.external;
    out->cpu_ns += st.cpu_ns;
    out->wall_ns += st.wall_ns;
    if (st.response_ms >= 0) {
      responding++;
      sum += st.response_ms;
      if (st.response_ms > out->response_max_ms) out->response_max_ms = st.response_ms;
    }
  }
  pthread_mutex_unlock(&m->mu);
  out->heap_used_pct = out->heap_limit ? (double)out->heap_used * 100.0 / (double)out->heap_limit : 0;
  out->response_avg_ms = responding ? sum / (double)responding : 0;
}

/* ------------------------------------------------------------------ the library */

typedef struct measure_lib {
  sbx_library lib; /* first */
  sbx_measure_options opt;
  sbx__lib_ext ext;
} measure_lib;

static int measure_attach(const sbx_library *lib, sbx_vm *vm, void **state) {
  const measure_lib *l = (const measure_lib *)lib;
  vm->response_limit_ms = l->opt.response_limit_ms;
  *state = NULL;
  if (l->opt.master) return sbx_measure_master_add(l->opt.master, vm) == SBX_OK ? 0 : SBX_NOMEM;
  return 0;
}

static void measure_free(sbx_library *lib) {
  free(lib);
}

int sbx_measure_library_new(const sbx_measure_options *o, sbx_library **out) {
  *out = NULL;
  measure_lib *l = calloc(1, sizeof *l);
  if (!l) return SBX_NOMEM;
  if (o) l->opt = *o;
  l->ext.kind = SBX__LIB_MEASURE;
  l->lib.name = "measure";
  l->lib.attach = measure_attach;
  l->lib.free = measure_free;
  l->lib.internal = &l->ext;
  *out = &l->lib;
  return SBX_OK;
}
