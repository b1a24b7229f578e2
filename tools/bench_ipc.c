/*
 * isoworld-bench-ipc — what an IPC round trip costs through the sandbox library, and the
 * same four round trips through Node + isolated-vm (tools/bench_ipc_ivm.js), run in the
 * same invocation and printed side by side with the ratio (isolated-vm / isoworld: how
 * many times faster the sandbox is).
 *
 *   call_sync    host -> isolate: sbx_vm_call of a function the VM exports, sync result
 *                (a whole run each: lock, budgets and watchdog, copied argument and result)
 *   call_async   host -> isolate: sbx_vm_call of an async function (its promise awaited)
 *   host_async   isolate -> host: `await echo(i)` in a loop (an async host function of the
 *                ipc library, settled at once)
 *   host_sync    isolate -> host: `add(i, 1)` in a loop (a sync host function)
 * Figures: microseconds per round trip, the median of --runs batches of --n after a
 * warm-up batch. Not a test: it prints figures (the README holds them).
 *
 *   isoworld-bench-ipc [--n N] [--runs R] [--ivm PATH] [--node NODE] [--no-ivm] [--json]
 *
 * PATH: the isolated-vm package or a directory whose node_modules holds it (default
 * $ISOWORLD_IVM_PATH); without it (or with --no-ivm) only the sandbox's figures print.
 */
#include "sandbox.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ISOWORLD_SOURCE_DIR
#define ISOWORLD_SOURCE_DIR "."
#endif

static long g_n = 20000;
static int g_runs = 5;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *xs, int n) {
  qsort(xs, (size_t)n, sizeof *xs, cmp);
  return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

static void h_echo(sbx_call *c, const sbx_value *a, size_t n) {
  if (n) sbx_call_return(c, &a[0]);
}
static void h_add(sbx_call *c, const sbx_value *a, size_t n) {
  sbx_call_return_number(c, sbx_value_number(&a[0]) + sbx_value_number(&a[1]));
}

/* A library with one sync host function, as a game's path finder would be. */
static const sbx_host_fn_def add_fns[] = {{"add", h_add, 0, NULL}};
static const sbx_library add_lib = {
    .name = "add", .js = "lib.onAttach((h) => { globalThis.add = h.add; });", .fns = add_fns, .n_fns = 1};

typedef double (*batch_fn)(sbx_vm *vm, long n);

static double b_call(sbx_vm *vm, long n, const char *fn) {
  double t0 = now_us();
  for (long i = 0; i < n; i++) {
    sbx_value arg = sbx_number((double)i);
    sbx_result r;
    if (sbx_vm_call(vm, fn, &arg, 1, 1000, &r) != SBX_OK || r.value->u.number != (double)i + 1) {
      fprintf(stderr, "call failed: %s\n", r.error ? r.error : sbx_strerror(r.status));
      exit(1);
    }
    sbx_result_release(&r);
  }
  return (now_us() - t0) / (double)n;
}
static double b_call_sync(sbx_vm *vm, long n) {
  return b_call(vm, n, "inc");
}
static double b_call_async(sbx_vm *vm, long n) {
  return b_call(vm, n, "incAsync");
}

static double b_loop(sbx_vm *vm, long n, const char *fn) {
  sbx_value arg = sbx_number((double)n);
  sbx_result r;
  double t0 = now_us();
  if (sbx_vm_call(vm, fn, &arg, 1, 600000, &r) != SBX_OK) {
    fprintf(stderr, "%s failed: %s\n", fn, r.error ? r.error : sbx_strerror(r.status));
    exit(1);
  }
  double us = (now_us() - t0) / (double)n;
  sbx_result_release(&r);
  return us;
}
static double b_host_async(sbx_vm *vm, long n) {
  return b_loop(vm, n, "loopAsync");
}
static double b_host_sync(sbx_vm *vm, long n) {
  return b_loop(vm, n, "loopSync");
}

static double measure(sbx_vm *vm, batch_fn f) {
  f(vm, g_n / 4 > 100 ? g_n / 4 : 100);
  double xs[64];
  for (int r = 0; r < g_runs; r++) xs[r] = f(vm, g_n);
  return median(xs, g_runs);
}

static void json_text(const char *json, const char *key, char *out, size_t cap) {
  char k[64];
  snprintf(k, sizeof k, "\"%s\":\"", key);
  const char *p = json ? strstr(json, k) : NULL;
  snprintf(out, cap, "?");
  if (p) snprintf(out, cap, "%.*s", (int)strcspn(p + strlen(k), "\""), p + strlen(k));
}

static double json_num(const char *json, const char *key) {
  char k[64];
  snprintf(k, sizeof k, "\"%s\":", key);
  const char *p = json ? strstr(json, k) : NULL;
  return p ? atof(p + strlen(k)) : NAN;
}

static void usage(FILE *f) {
  fprintf(f,
          "Usage: isoworld-bench-ipc [options]\n"
          "Measures IPC round trips through the sandbox library (host -> isolate calls, sync and\n"
          "async; isolate -> host calls, async and sync) and, in the same run, the same round\n"
          "trips through Node + isolated-vm (tools/bench_ipc_ivm.js), side by side with the ratio.\n\n"
          "  --n N        round trips per batch (default 20000)\n"
          "  --runs R     batches; the median is reported (default 5)\n"
          "  --ivm PATH   isolated-vm's package directory, or a directory whose node_modules\n"
          "               holds it (default: $ISOWORLD_IVM_PATH)\n"
          "  --node NODE  the node binary (default: node)\n"
          "  --script F   the isolated-vm side (default: %s/tools/bench_ipc_ivm.js)\n"
          "  --no-ivm     only the sandbox's figures\n"
          "  --only NAME  measure one round trip (call_sync, call_async, host_async, host_sync)\n"
          "  --json       one JSON object instead of the table\n"
          "  -h, --help   this text\n",
          ISOWORLD_SOURCE_DIR);
}

int main(int argc, char **argv) {
  const char *ivm = getenv("ISOWORLD_IVM_PATH"), *node = "node",
             *script = ISOWORLD_SOURCE_DIR "/tools/bench_ipc_ivm.js";
  bool no_ivm = false, json = false;
  const char *only = NULL;
  static struct option opts[] = {{"n", required_argument, 0, 'n'},      {"runs", required_argument, 0, 'r'},
                                 {"ivm", required_argument, 0, 'i'},    {"node", required_argument, 0, 'N'},
                                 {"script", required_argument, 0, 's'}, {"no-ivm", no_argument, 0, 'x'},
                                 {"json", no_argument, 0, 'j'},         {"help", no_argument, 0, 'h'},
                                 {"only", required_argument, 0, 'o'},   {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'n': g_n = atol(optarg); break;
      case 'r': g_runs = atoi(optarg); break;
      case 'i': ivm = optarg; break;
      case 'N': node = optarg; break;
      case 's': script = optarg; break;
      case 'x': no_ivm = true; break;
      case 'j': json = true; break;
      case 'o': only = optarg; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (g_n < 1 || g_runs < 1 || g_runs > 64) {
    usage(stderr);
    return 2;
  }
  if (sbx_engine_start(NULL) != SBX_OK) return 1;
  static const sbx_host_fn_def fns[] = {{"echo", h_echo, 0, NULL}};
  sbx_ipc_options io = {fns, 1, NULL};
  sbx_library *ipc;
  sbx_ipc_library_new(&io, &ipc);
  const sbx_library *libs[] = {ipc, &add_lib};
  sbx_vm_options o = {.heap_limit_mb = 64, .cpu_limit_ms = 600000, .wall_limit_ms = 600000};
  sbx_vm *vm;
  char *err = NULL;
  if (sbx_vm_create(libs, 2, &o, &vm, &err) != SBX_OK) {
    fprintf(stderr, "isoworld-bench-ipc: %s\n", err ? err : "cannot create the vm");
    return 1;
  }
  sbx_result r;
  sbx_vm_run(vm,
             "return {\n"
             "  inc: (x) => x + 1,\n"
             "  incAsync: async (x) => { await null; return x + 1; },\n"
             "  loopAsync: async (n) => { let s = 0; for (let i = 0; i < n; i++) s += await echo(i); return s; },\n"
             "  loopSync: (n) => { let s = 0; for (let i = 0; i < n; i++) s += add(i, 1); return s; },\n"
             "};",
             "bench", &r);
  if (r.status != SBX_OK) {
    fprintf(stderr, "isoworld-bench-ipc: %s\n", r.error);
    return 1;
  }
  sbx_result_release(&r);
  static const char *names[4] = {"call_sync", "call_async", "host_async", "host_sync"};
  static const char *what[4] = {"host -> isolate, sync function", "host -> isolate, async function (awaited)",
                                "isolate -> host, async (await echo(i))", "isolate -> host, sync (add(i, 1))"};
  batch_fn fs[4] = {b_call_sync, b_call_async, b_host_async, b_host_sync};
  double ours[4], theirs[4] = {NAN, NAN, NAN, NAN};
  for (int i = 0; i < 4; i++) ours[i] = only && strcmp(only, names[i]) ? NAN : measure(vm, fs[i]);
  sbx_vm_free(vm);
  sbx_library_free(ipc);
  sbx_engine_stop();

  char *ivm_json = NULL;
  if (!no_ivm && ivm) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' --no-node-snapshot '%s' --n %ld --runs %d --ivm '%s'", node, script, g_n, g_runs,
             ivm);
    FILE *p = popen(cmd, "r");
    if (p) {
      size_t cap = 8192, n = 0;
      ivm_json = calloc(1, cap);
      size_t got;
      while (ivm_json && (got = fread(ivm_json + n, 1, cap - n - 1, p)) > 0) n += got;
      if (pclose(p) != 0 || !ivm_json || !strchr(ivm_json, '{')) {
        fprintf(stderr, "isoworld-bench-ipc: the isolated-vm side failed (%s)\n", cmd);
        free(ivm_json);
        ivm_json = NULL;
      }
    }
    for (int i = 0; ivm_json && i < 4; i++) {
      char key[32];
      snprintf(key, sizeof key, "%s_us", names[i]);
      theirs[i] = json_num(ivm_json, key);
    }
  }
  if (json) {
    printf("{\"v8\":\"%s\",\"n\":%ld,\"runs\":%d", sbx_engine_version(), g_n, g_runs);
    for (int i = 0; i < 4; i++) {
      printf(",\"%s_us\":%.4f", names[i], ours[i]);
      if (!isnan(theirs[i]))
        printf(",\"ivm_%s_us\":%.4f,\"ratio_%s\":%.2f", names[i], theirs[i], names[i], theirs[i] / ours[i]);
    }
    printf("}\n");
  } else {
    char nv[32], iv[32];
    json_text(ivm_json, "node", nv, sizeof nv);
    json_text(ivm_json, "isolated_vm", iv, sizeof iv);
    printf("# isoworld-bench-ipc  V8 %s  n=%ld  runs=%d (median of batches)", sbx_engine_version(), g_n, g_runs);
    if (ivm_json) printf("  vs Node %s + isolated-vm %s", nv, iv);
    printf("\n");
    printf("%-44s %14s %18s %8s\n", "round trip", "isoworld (us)", "isolated-vm (us)", "ratio");
    for (int i = 0; i < 4; i++) {
      if (isnan(theirs[i]))
        printf("%-44s %14.3f %18s %8s\n", what[i], ours[i], "-", "-");
      else
        printf("%-44s %14.3f %18.3f %7.1fx\n", what[i], ours[i], theirs[i], theirs[i] / ours[i]);
    }
    printf("ratio = isolated-vm time / isoworld time (above 1: isoworld is faster)\n");
  }
  free(ivm_json);
  return 0;
}
