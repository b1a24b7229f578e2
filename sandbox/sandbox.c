/*
 * sandbox.c — engine and runtime lifecycles (a runtime is the libraries flattened and
 * their JavaScript in a startup snapshot), the console buffer and the player's modules.
 * VMs and runs live in vm.c; threads in pool.c and watchdog.c; V8 in v8/shim.cc.
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

/* Depth first, groups' members before the group's own JavaScript, each library once. */
static int flatten(const sbx_library *lib, const sbx_library **out, size_t *n, int depth) {
  if (!lib || depth > 16) return SBX_INVALID;
  for (size_t i = 0; i < *n; i++)
    if (out[i] == lib) return SBX_OK;
  for (size_t i = 0; i < lib->n_group; i++) {
    int rc = flatten(lib->group[i], out, n, depth + 1);
    if (rc != SBX_OK) return rc;
  }
  if (lib->n_group && !lib->js && !lib->n_fns && !lib->attach && !lib->start && !lib->after_start &&
      !lib->run_begin && !lib->run_end && !lib->dispose && !lib->internal)
    return SBX_OK; /* a pure group leaves no entry of its own */
  if (*n >= SBX__MAX_LIBS) return SBX_INVALID;
  for (size_t i = 0; i < lib->n_fns; i++)
    if (!lib->fns[i].name || (!lib->fns[i].fn && !(lib->fns[i].flags & SBX__FN_BUILTIN))) return SBX_INVALID;
  out[(*n)++] = lib;
  return SBX_OK;
}

static void runtime_destroy(sbx_runtime *rt) {
  if (!rt) return;
  free(rt->blob);
  free(rt->libs);
  free(rt->fns);
  free(rt->fn_first);
  free(rt->extra);
  free(rt);
}

int sbx_runtime_new_libs(const sbx_library *const *libs, size_t n, sbx_runtime **out, char **error) {
  *out = NULL;
  if (error) *error = NULL;
  if (!engine_started) return SBX_ENGINE;
  if (n && !libs) return SBX_INVALID;
  sbx_runtime *rt = calloc(1, sizeof *rt);
  if (!rt) return SBX_NOMEM;
  int rc = SBX_NOMEM;
  rt->libs = calloc(SBX__MAX_LIBS, sizeof *rt->libs);
  if (!rt->libs) goto fail;
  for (size_t i = 0; i < n; i++) {
    rc = flatten(libs[i], rt->libs, &rt->n_libs, 0);
    if (rc != SBX_OK) goto fail;
  }
  rc = SBX_NOMEM;
  rt->fn_first = calloc(rt->n_libs + 1, sizeof *rt->fn_first);
  if (!rt->fn_first) goto fail;
  for (size_t i = 0; i < rt->n_libs; i++) {
    rt->fn_first[i] = rt->n_fns;
    rt->n_fns += rt->libs[i]->n_fns;
  }
  rt->fns = calloc(rt->n_fns + 1, sizeof *rt->fns);
  if (!rt->fns) goto fail;
  for (size_t i = 0; i < rt->n_libs; i++) {
    const sbx_library *lib = rt->libs[i];
    for (size_t k = 0; k < lib->n_fns; k++) rt->fns[rt->fn_first[i] + k] = (sbx__fnrec){lib, i, &lib->fns[k]};
    if (lib->start) rt->start[rt->n_start++] = (uint8_t)i;
    if (lib->after_start) rt->after_start[rt->n_after_start++] = (uint8_t)i;
    if (lib->run_begin) rt->run_begin[rt->n_run_begin++] = (uint8_t)i;
    if (lib->run_end) rt->run_end[rt->n_run_end++] = (uint8_t)i;
    const sbx__lib_ext *ext = lib->internal;
    if (ext && ext->ready && ext->drain) rt->drains[rt->n_drains++] = (uint8_t)i;
  }
  rc = sbx__v8_snapshot(sbx__js_core, rt, error);
  if (rc != SBX_OK) goto fail;
  rt->refs = 1;
  *out = rt;
  return SBX_OK;
fail:
  runtime_destroy(rt);
  return rc;
}

int sbx_runtime_new(const char *extra_prelude, sbx_runtime **out, char **error) {
  *out = NULL;
  if (error) *error = NULL;
  sbx_library *extra = NULL;
  if (extra_prelude) {
    extra = calloc(1, sizeof *extra);
    if (!extra) return SBX_NOMEM;
    extra->name = "extra";
    extra->js = extra_prelude;
    extra->flags = SBX_LIB_SCRIPT;
  }
  const sbx_library *libs[2] = {sbx_player_library(), extra};
  int rc = sbx_runtime_new_libs(libs, extra ? 2 : 1, out, error);
  if (rc != SBX_OK) {
    free(extra);
    return rc;
  }
  (*out)->extra = extra; /* the snapshot holds its JavaScript; keep the record alive */
  return SBX_OK;
}

void sbx__runtime_ref(sbx_runtime *rt) { __atomic_add_fetch(&rt->refs, 1, __ATOMIC_RELAXED); }

void sbx__runtime_unref(sbx_runtime *rt) {
  if (rt && __atomic_sub_fetch(&rt->refs, 1, __ATOMIC_ACQ_REL) == 0) runtime_destroy(rt);
}

void sbx_runtime_free(sbx_runtime *rt) { sbx__runtime_unref(rt); }

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

