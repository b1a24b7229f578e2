/*
 * sandbox.c — engine, runtime and vm lifecycles, the console buffer and the player's
 * modules. Threads live in pool.c and watchdog.c; V8 lives in v8/shim.cc.
 *
 * Must not: touch V8 directly (only through internal.h), keep global mutable state
 * other than the engine's started flag, or block on anything but the calling run.
 */
#include "internal.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char sbx__prelude_js[];

const char *sbx_strerror(int status) {
  switch (status) {
#define SBX__CASE(name, value, text) \
  case value:                        \
    return text;
    SBX_STATUS_MAP(SBX__CASE)
#undef SBX__CASE
  }
  return "unknown sandbox status";
}

uint64_t sbx__now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ engine */

static bool engine_started;
static int stuck_threads; /* __atomic */

void sbx__stuck_add(int delta) { __atomic_add_fetch(&stuck_threads, delta, __ATOMIC_SEQ_CST); }
int sbx_engine_stuck_threads(void) { return __atomic_load_n(&stuck_threads, __ATOMIC_SEQ_CST); }

int sbx_engine_start(const sbx_engine_options *opt) {
  if (engine_started) return SBX_OK;
  int rc = sbx__v8_start(opt);
  if (rc == SBX_OK) engine_started = true;
  return rc;
}

bool sbx_engine_stop(void) {
  if (!engine_started) return true;
  for (int i = 0; i < 3000 && sbx_engine_stuck_threads() > 0; i++) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  if (sbx_engine_stuck_threads() > 0) return false;
  sbx__v8_stop();
  engine_started = false;
  return true;
}

const char *sbx_engine_version(void) { return sbx__v8_version(); }

/* ------------------------------------------------------------------ runtime */

struct sbx_runtime {
  atomic_int refs;
  void *blob;
  size_t blob_len;
};

int sbx_runtime_new(const char *extra_prelude, sbx_runtime **out, char **error) {
  *out = NULL;
  if (error) *error = NULL;
  if (!engine_started) return SBX_ENGINE;
  sbx_runtime *rt = calloc(1, sizeof *rt);
  if (!rt) return SBX_NOMEM;
  int rc = sbx__v8_snapshot(sbx__prelude_js, extra_prelude, &rt->blob, &rt->blob_len, error);
  if (rc != SBX_OK) {
    free(rt);
    return rc;
  }
  atomic_init(&rt->refs, 1);
  *out = rt;
  return SBX_OK;
}

static void runtime_unref(sbx_runtime *rt) {
  if (rt && atomic_fetch_sub(&rt->refs, 1) == 1) {
    free(rt->blob);
    free(rt);
  }
}

void sbx_runtime_free(sbx_runtime *rt) { runtime_unref(rt); }

size_t sbx_runtime_snapshot_size(const sbx_runtime *rt) { return rt ? rt->blob_len : 0; }

/* ------------------------------------------------------------------ code */

sbx__code *sbx__code_new(const sbx_module *mods, size_t n) {
  sbx__code *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->refs = 1;
  c->modules = calloc(n ? n : 1, sizeof *c->modules);
  if (!c->modules) goto fail;
  for (size_t i = 0; i < n; i++) {
    sbx_module *m = &c->modules[i];
    m->name = strdup(mods[i].name ? mods[i].name : "");
    char *src = malloc(mods[i].len + 1);
    if (!m->name || !src) {
      free(src);
      c->count = i + 1;
      goto fail;
    }
    if (mods[i].len) memcpy(src, mods[i].source, mods[i].len);
    src[mods[i].len] = 0;
    m->source = src;
    m->len = mods[i].len;
    m->binary = mods[i].binary;
    c->count = i + 1;
  }
  return c;
fail:
  sbx__code_unref(c);
  return NULL;
}

sbx__code *sbx__code_ref(sbx__code *c) {
  if (c) __atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
  return c;
}

void sbx__code_unref(sbx__code *c) {
  if (!c || __atomic_fetch_sub(&c->refs, 1, __ATOMIC_ACQ_REL) != 1) return;
  for (size_t i = 0; i < c->count; i++) {
    free((char *)c->modules[i].name);
    free((char *)c->modules[i].source);
  }
  free(c->modules);
  free(c);
}

const sbx_module *sbx__code_find(const sbx__code *c, const char *name, size_t len) {
  if (!c) return NULL;
  for (size_t i = 0; i < c->count; i++) {
    const sbx_module *m = &c->modules[i];
    if (strlen(m->name) == len && memcmp(m->name, name, len) == 0) return m;
  }
  return NULL;
}

/* ------------------------------------------------------------------ console buffer */

void sbx__console_init(sbx__console *c, size_t max_lines, size_t max_bytes) {
  memset(c, 0, sizeof *c);
  c->max_lines = max_lines < 2 ? 2 : max_lines;
  c->max_bytes = max_bytes < 256 ? 256 : max_bytes;
}

static void line_free(sbx_line *l) {
  free(l->text);
  l->text = NULL;
}

static size_t tail_cap(const sbx__console *c) { return c->max_lines - c->max_lines / 2; }

static void console_store(sbx__console *c, sbx_level level, const char *text, size_t len, bool unsafe) {
  /* One line may take at most a quarter of the byte budget. */
  static const char cut[] = " [line truncated]";
  size_t keep = len, limit = c->max_bytes / 4;
  bool truncated = false;
  if (keep > limit) {
    keep = limit;
    while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80) keep--; /* UTF-8 boundary */
    truncated = true;
  }
  size_t total = keep + (truncated ? sizeof cut - 1 : 0);
  sbx_line l = {level, unsafe, malloc(total + 1), total};
  if (!l.text) {
    c->omitted++;
    return;
  }
  memcpy(l.text, text, keep);
  if (truncated) memcpy(l.text + keep, cut, sizeof cut - 1);
  l.text[total] = 0;

  /* The head may take half the byte budget only: the rest is for the most recent lines
   * (an error or the kill message at the end of a run must not be dropped). */
  if (c->n_head < c->max_lines / 2 && c->n_tail == 0 && c->omitted == 0 && c->bytes + total <= c->max_bytes / 2) {
    if (!c->head && !(c->head = calloc(c->max_lines / 2, sizeof *c->head))) goto drop;
    c->head[c->n_head++] = l;
    c->bytes += total;
    return;
  }
  if (!c->tail && !(c->tail = calloc(tail_cap(c), sizeof *c->tail))) goto drop;
  /* Make room: drop the oldest of the tail until the line fits both budgets. */
  while (c->n_tail > 0 && (c->n_tail == tail_cap(c) || c->bytes + total > c->max_bytes)) {
    size_t oldest = (c->tail_pos + tail_cap(c) - c->n_tail) % tail_cap(c);
    c->bytes -= c->tail[oldest].len;
    line_free(&c->tail[oldest]);
    c->n_tail--;
    c->omitted++;
  }
  if (c->bytes + total > c->max_bytes) goto drop;
  c->tail[c->tail_pos] = l;
  c->tail_pos = (c->tail_pos + 1) % tail_cap(c);
  c->n_tail++;
  c->bytes += total;
  return;
drop:
  free(l.text);
  c->omitted++;
}

static void console_flush_repeats(sbx__console *c) {
  if (c->repeats == 0) return;
  char msg[64];
  int n = snprintf(msg, sizeof msg, "[Previous message repeated %zu times]", c->repeats);
  c->repeats = 0;
  console_store(c, c->last.level, msg, (size_t)n, false);
}

void sbx__console_push(sbx__console *c, sbx_level level, const char *text, size_t len, bool unsafe) {
  if (c->have_last && c->last.level == level && c->last.len == len && memcmp(c->last.text, text, len) == 0) {
    c->repeats++;
    return;
  }
  console_flush_repeats(c);
  console_store(c, level, text, len, unsafe);
  /* Remember the line for collapsing (bounded: only short lines are compared). */
  if (len <= 1024) {
    char *t = realloc(c->last.text, len + 1);
    if (t) {
      memcpy(t, text, len);
      t[len] = 0;
      c->last = (sbx_line){level, unsafe, t, len};
      c->have_last = true;
      return;
    }
  }
  c->have_last = false;
}

void sbx__console_take(sbx__console *c, sbx_line **lines, size_t *n, size_t *omitted) {
  console_flush_repeats(c);
  size_t total = c->n_head + c->n_tail + (c->omitted ? 1 : 0);
  *lines = NULL;
  *n = 0;
  *omitted = c->omitted;
  if (total) {
    sbx_line *out = calloc(total, sizeof *out);
    if (out) {
      size_t k = 0;
      for (size_t i = 0; i < c->n_head; i++) out[k++] = c->head[i];
      if (c->omitted) {
        char msg[64];
        int len = snprintf(msg, sizeof msg, "[Omitted %zu lines]", c->omitted);
        out[k] = (sbx_line){SBX_LOG, false, strdup(msg), (size_t)len};
        if (out[k].text) k++;
      }
      for (size_t i = 0; i < c->n_tail; i++) {
        size_t idx = (c->tail_pos + tail_cap(c) - c->n_tail + i) % tail_cap(c);
        out[k++] = c->tail[idx];
      }
      *lines = out;
      *n = k;
      c->n_head = c->n_tail = 0;
    }
  }
  sbx__console_release(c);
}

void sbx__console_release(sbx__console *c) {
  for (size_t i = 0; i < c->n_head; i++) line_free(&c->head[i]);
  for (size_t i = 0; i < c->n_tail; i++) {
    size_t idx = (c->tail_pos + tail_cap(c) - c->n_tail + i) % tail_cap(c);
    line_free(&c->tail[idx]);
  }
  free(c->head);
  free(c->tail);
  free(c->last.text);
  size_t ml = c->max_lines, mb = c->max_bytes;
  sbx__console_init(c, ml, mb);
}

/* ------------------------------------------------------------------ vm */

struct sbx_vm {
  sbx_runtime *rt;
  sbx_vm_options opt;
  sbx__iso *iso;
  sbx__code *code;
  bool reset_pending;
  void *ud;
  uint64_t generation;
  sbx__zombie *zombie; /* the last run the pool gave up on, while it may be alive */
};

void sbx__zombie_unref(sbx__zombie *z) {
  if (z && __atomic_sub_fetch(&z->refs, 1, __ATOMIC_ACQ_REL) == 0) free(z);
}

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
  vm->code = sbx__code_new(NULL, 0);
  if (!vm->code) {
    free(vm);
    return SBX_NOMEM;
  }
  atomic_fetch_add(&rt->refs, 1);
  vm->rt = rt;
  *out = vm;
  return SBX_OK;
}

void sbx_vm_free(sbx_vm *vm) {
  if (!vm) return;
  sbx__zombie_unref(vm->zombie);
  sbx__iso_free(vm->iso);
  sbx__code_unref(vm->code);
  runtime_unref(vm->rt);
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

void sbx_vm_set_userdata(sbx_vm *vm, void *ud) { vm->ud = ud; }
void *sbx_vm_userdata(const sbx_vm *vm) { return vm->ud; }
bool sbx_vm_has_isolate(const sbx_vm *vm) { return vm && vm->iso; }
uint64_t sbx_vm_generation(const sbx_vm *vm) { return vm ? vm->generation : 0; }

/* Detaches the vm from its isolate (the caller now owns it). Used when a thread is
 * given up on: the stuck thread disposes the isolate when V8 lets it go. */
sbx__iso *sbx__vm_detach_iso(sbx_vm *vm, sbx__zombie *z) {
  sbx__iso *iso = vm->iso;
  vm->iso = NULL;
  sbx__zombie_unref(vm->zombie);
  vm->zombie = z;
  return iso;
}

/* Copies in (and everything it points to) into run->in_copy, one allocation. */
static bool copy_in(sbx__run *run, const sbx_tick_in *in) {
  size_t need = in->memory ? in->memory_len + 1 : 0;
  need += in->n_commands * sizeof(char *);
  for (size_t i = 0; i < in->n_commands; i++) need += in->commands[i] ? strlen(in->commands[i]) + 1 : 0;
  need += in->n_segments * sizeof(sbx_segment);
  for (size_t i = 0; i < in->n_segments; i++) need += in->segments[i].len + 1;
  run->in_copy = *in;
  run->in = &run->in_copy;
  if (need == 0) return true;
  char *a = malloc(need + 16);
  if (!a) return false;
  run->in_arena = a;
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
  if (in->memory) {
    memcpy(a, in->memory, in->memory_len);
    a[in->memory_len] = 0;
    run->in_copy.memory = a;
  }
  return true;
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

/* The body of a run, shared by sbx_vm_tick and the pool. When abandon is given, the
 * run may be given up on by the watchdog: then this returns false and the caller's
 * out was already filled by the pool. */
bool sbx__vm_tick(sbx_vm *vm, const sbx_tick_in *in, sbx_tick_out *out,
                  void (*on_abandon)(sbx__run *, void *), void *abandon_ud, bool (*abandoned)(void *)) {
  memset(out, 0, sizeof *out);
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
    sbx__iso_config cfg = {vm->rt->blob, vm->rt->blob_len, vm->opt.heap_limit_mb << 20,
                           vm->opt.external_limit_mb << 20, vm->opt.max_eval_bytes};
    int rc = sbx__iso_new(&cfg, &vm->iso);
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
  atomic_fetch_add(&rt->refs, 1);
  run.code = sbx__code_ref(vm->code);
  run.new_global = vm->reset_pending || out->created;
  run.iso = vm->iso;
  run.stack_room = 1u << 20;
  run.on_abandon = on_abandon;
  run.on_abandon_ud = abandon_ud;
  fill_budgets(&run, run.in);
  sbx__console_init(&run.console, vm->opt.console_max_lines, vm->opt.console_max_bytes);
  vm->reset_pending = false;

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
    free(run.in_arena);
    runtime_unref(rt);
    if (run.zombie) {
      __atomic_store_n(&run.zombie->alive, 0, __ATOMIC_RELEASE);
      sbx__zombie_unref(run.zombie);
    }
    sbx__stuck_add(-1);
    return false;
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
      push_fixed(&run, sbx_strerror(run.status));
      break;
    default:
      break;
  }
  if (run.status == SBX_HEAP_LIMIT)
    push_fixed(&run, "The isolate was disposed; a fresh global starts next tick.");
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
  sbx__console_take(&run.console, &out->lines, &out->n_lines, &out->omitted_lines);
  sbx__code_unref(run.code);
  free(run.in_arena);
  runtime_unref(rt);
  if (run.dispose_iso) {
    sbx__iso_free(vm->iso);
    vm->iso = NULL;
    malloc_trim(0);
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
