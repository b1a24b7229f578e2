/*
 * isoworld-sandbox — the standalone runner of the sandbox library: runs a JavaScript
 * project directory in an isolated V8 VM with limits, without the game.
 *
 *   isoworld-sandbox run DIR [options] [-- ARGS...]
 *
 * The directory is loaded into the VM's virtual file tree; the entry file (main.js) runs
 * as a module; console output goes to stdout (warn/error to stderr); then the runner
 * keeps the VM's event loop going (timers, host functions, workers) until nothing is
 * pending. With --ticks N it runs as the game server does instead: N ticks, each calling
 * the entry's exported loop() with Game and Memory, on a one-thread pool (so a thread
 * stuck in a builtin is given up on after --hard-ms). See --help.
 *
 * Libraries: console, codebase (require, fs, path over the tree), timers, ipc (host.*),
 * threads (startThread), measure, crypto; with --ticks also guards, memory and game.
 * Exit status: 0, or the failing status as a positive number (see --help).
 */
#include "sandbox.h"
#include "sandbox_crypto.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 64
#define EXIT_NOINPUT 66

typedef struct options {
  const char *dir, *entry, *memory, *call;
  long ticks;
  double time;
  size_t heap_mb, thread_heap_mb, max_timers, max_threads, max_bytes, max_files;
  double cpu_ms, wall_ms, hard_ms, timeout_ms, response_ms, thread_response_ms;
  const char *mocks[32];
  size_t n_mocks;
  bool json, stats;
  char **args;
  int n_args;
} options;

static options g_opt;
static int g_uncaught; /* errors reported by the VM (timer callbacks, rejections) */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ output */

static void json_str(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", f);
    else if (c == '\t')
      fputs("\\t", f);
    else if (c == '\r')
      fputs("\\r", f);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

static pthread_mutex_t g_out = PTHREAD_MUTEX_INITIALIZER;

static void sink(sbx_vm *vm, sbx_level level, const char *text, size_t len, void *ud) {
  int tid = sbx_vm_thread_id(vm);
  pthread_mutex_lock(&g_out);
  if (g_opt.json) {
    printf("{\"console\":{\"level\":%d,\"thread\":%d,\"text\":", (int)level, tid);
    json_str(stdout, text, len);
    printf("}}\n");
    fflush(stdout);
  } else {
    FILE *f = level == SBX_WARN || level == SBX_ERROR ? stderr : stdout;
    if (tid) fprintf(f, "[thread %d] ", tid);
    fwrite(text, 1, len, f);
    fputc('\n', f);
    fflush(f);
  }
  pthread_mutex_unlock(&g_out);
}

static void on_error(sbx_vm *vm, int status, const char *msg, void *ud) {
  g_uncaught++;
}

static void on_catastrophic(sbx_vm *vm, int status, const char *msg, void *ud) {
  pthread_mutex_lock(&g_out);
  if (!g_opt.json) fprintf(stderr, "isoworld-sandbox: the VM was stopped: %s\n", msg);
  pthread_mutex_unlock(&g_out);
}

static int exit_code(int status) {
  return status == SBX_OK ? 0 : -status;
}

static void report_result(const char *what, const char *name, const sbx_result *r) {
  if (g_opt.json) {
    printf("{\"%s\":", what);
    json_str(stdout, name, strlen(name));
    printf(",\"status\":%d,\"status_text\":", r->status);
    json_str(stdout, sbx_strerror(r->status), strlen(sbx_strerror(r->status)));
    if (r->error) {
      printf(",\"error\":");
      json_str(stdout, r->error, strlen(r->error));
    }
    if (r->value) {
      char *j = sbx_value_to_json(r->value);
      printf(",\"value\":%s", j ? j : "null");
      free(j);
    }
    printf(",\"cpu_ms\":%.3f,\"wall_ms\":%.3f}\n", (double)r->cpu_ns / 1e6, (double)r->wall_ns / 1e6);
    fflush(stdout);
    return;
  }
  if (r->status != SBX_OK) {
    fprintf(stderr, "isoworld-sandbox: %s %s: %s\n", what, name, sbx_strerror(r->status));
    if (r->error && strcmp(r->error, sbx_strerror(r->status)) != 0) fprintf(stderr, "%s\n", r->error);
  } else if (strcmp(what, "call") == 0) {
    char *j = sbx_value_to_json(r->value);
    printf("%s\n", j ? j : "null");
    free(j);
  }
  fflush(stdout);
}

/* ------------------------------------------------------------------ host functions */

static void h_echo(sbx_call *c, const sbx_value *a, size_t n) {
  if (n > 0) sbx_call_return(c, &a[0]);
}

static void h_args(sbx_call *c, const sbx_value *a, size_t n) {
  sbx_value *items = calloc((size_t)g_opt.n_args + 1, sizeof *items);
  if (!items) return;
  for (int i = 0; i < g_opt.n_args; i++) items[i] = sbx_string(g_opt.args[i]);
  sbx_value arr = sbx_array(items, (size_t)g_opt.n_args);
  sbx_call_return(c, &arr);
  free(items);
}

/* host.sleep(ms): one thread completes every sleep in due order (at most 1024 pending). */
#define MAX_SLEEPS 1024
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool started, stop;
  double due[MAX_SLEEPS];
  sbx_async *done[MAX_SLEEPS];
  int n;
} g_sleep = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *sleeper(void *arg) {
  (void)arg;
  pthread_mutex_lock(&g_sleep.mu);
  while (!g_sleep.stop) {
    int best = -1;
    for (int i = 0; i < g_sleep.n; i++)
      if (best < 0 || g_sleep.due[i] < g_sleep.due[best]) best = i;
    double now = now_ms();
    if (best >= 0 && g_sleep.due[best] <= now) {
      sbx_async *a = g_sleep.done[best];
      g_sleep.due[best] = g_sleep.due[g_sleep.n - 1];
      g_sleep.done[best] = g_sleep.done[g_sleep.n - 1];
      g_sleep.n--;
      pthread_mutex_unlock(&g_sleep.mu);
      sbx_async_resolve(a, NULL);
      pthread_mutex_lock(&g_sleep.mu);
      continue;
    }
    if (best < 0) {
      pthread_cond_wait(&g_sleep.cv, &g_sleep.mu);
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      double wait = g_sleep.due[best] - now;
      long ns = ts.tv_nsec + (long)((wait - (long)(wait / 1000) * 1000) * 1e6);
      ts.tv_sec += (time_t)(wait / 1000) + ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&g_sleep.cv, &g_sleep.mu, &ts);
    }
  }
  /* the process is ending: what is left is dropped */
  for (int i = 0; i < g_sleep.n; i++) sbx_async_reject(g_sleep.done[i], "the runner is exiting");
  g_sleep.n = 0;
  pthread_mutex_unlock(&g_sleep.mu);
  return NULL;
}

static void h_sleep(sbx_call *c, const sbx_value *a, size_t n) {
  double ms = n > 0 ? sbx_value_number(&a[0]) : 0;
  if (!(ms >= 0) || ms > 86400000) {
    sbx_call_throw(c, "host.sleep expects milliseconds from 0 to 86400000");
    return;
  }
  pthread_mutex_lock(&g_sleep.mu);
  if (g_sleep.n >= MAX_SLEEPS) {
    pthread_mutex_unlock(&g_sleep.mu);
    sbx_call_throw(c, "host.sleep: at most %d sleeps may be pending", MAX_SLEEPS);
    return;
  }
  sbx_async *done = sbx_call_defer(c);
  if (!done) {
    pthread_mutex_unlock(&g_sleep.mu);
    sbx_call_throw(c, "out of memory");
    return;
  }
  g_sleep.due[g_sleep.n] = now_ms() + ms;
  g_sleep.done[g_sleep.n] = done;
  g_sleep.n++;
  if (!g_sleep.started && pthread_create(&g_sleep.thread, NULL, sleeper, NULL) == 0) g_sleep.started = true;
  pthread_cond_signal(&g_sleep.cv);
  pthread_mutex_unlock(&g_sleep.mu);
}

static void stop_sleeper(void) {
  pthread_mutex_lock(&g_sleep.mu);
  g_sleep.stop = true;
  pthread_cond_signal(&g_sleep.cv);
  bool started = g_sleep.started;
  pthread_mutex_unlock(&g_sleep.mu);
  if (started) pthread_join(g_sleep.thread, NULL);
}

static const sbx_host_fn_def host_fns[] = {
    {"echo", h_echo, SBX_FN_ASYNC, NULL},
    {"sleep", h_sleep, SBX_FN_ASYNC, NULL},
    {"args", h_args, SBX_FN_ASYNC, NULL},
};

/* ------------------------------------------------------------------ response monitor */

static struct {
  sbx_vm *vm;
  pthread_t thread;
  volatile int stop;
} g_mon;

static void *monitor(void *arg) {
  (void)arg;
  while (!g_mon.stop) {
    sbx_vm_ping(g_mon.vm);
    usleep((useconds_t)(g_opt.response_ms * 1000 / 4 > 1000 ? g_opt.response_ms * 1000 / 4 : 1000));
    sbx_stats st;
    sbx_vm_stats(g_mon.vm, &st); /* checks the limit */
  }
  return NULL;
}

/* ------------------------------------------------------------------ usage */

static void usage(FILE *f) {
  fprintf(f,
          "Usage: isoworld-sandbox run DIR [options] [-- ARGS...]\n"
          "\n"
          "Runs a JavaScript project directory inside the isoworld sandbox: an isolated V8 VM\n"
          "with heap, CPU and wall-time limits, no access to the host (no process, no real file\n"
          "system, no network). DIR is loaded into the VM's virtual file tree; the entry file runs\n"
          "as a CommonJS module (require with relative and absolute paths, .json, index.js;\n"
          "require('fs'), 'fs/promises' and 'path' see only the tree); console output is printed\n"
          "(log/info/debug on stdout, warn/error on stderr); then the runner keeps running until\n"
          "no work is pending (timers, host calls, worker threads).\n"
          "\n"
          "In the VM, besides the language: console, require, setTimeout/setInterval and their\n"
          "clear functions, startThread(path) (worker VMs from files of the tree, calling what\n"
          "they pass to exposeCallables({...})), crypto.sha256/sha256Async/randomBytes/\n"
          "getRandomValues, and the host's functions, each returning a promise:\n"
          "  host.echo(value)   resolves with a copy of value\n"
          "  host.sleep(ms)     resolves after ms milliseconds\n"
          "  host.args()        the ARGS given after --\n"
          "\n"
          "Options:\n"
          "  --entry FILE            the entry file (default main.js)\n"
          "  --call NAME             then call the function NAME the entry exports (module.exports\n"
          "                          or exposeCallables) with ARGS as strings, await it, print the\n"
          "                          result as JSON\n"
          "  --ticks N               run as the game server does: N ticks, each calling the\n"
          "                          entry's exported loop() with Game and Memory, under the tick\n"
          "                          budgets; console output per tick\n"
          "  --time T                Game.time of the first tick (default 1)\n"
          "  --memory JSON           Memory before the first tick (default empty)\n"
          "  --heap-mb N             heap limit in MB (default 64)\n"
          "  --cpu-ms N              CPU budget of each run or tick (default 1000; ticks: 100)\n"
          "  --wall-ms N             wall-clock budget of each run or tick (default 2 x cpu + 1000;\n"
          "                          ticks: 2 x cpu + 50)\n"
          "  --hard-ms N             ticks: give up on a thread stuck in a builtin after N ms\n"
          "                          (default 5000)\n"
          "  --timeout N             give up on pending work after N ms in all, and on --call\n"
          "                          after N ms (default: wait as long as work is pending)\n"
          "  --timers N              at most N live timers (default 100; 0: no timers)\n"
          "  --threads N             at most N live worker threads (default 4; 0: no threads)\n"
          "  --thread-heap-mb N      heap limit of each worker (default 16)\n"
          "  --thread-response-ms N  a worker stops answering (and is disposed) past N ms of one\n"
          "                          run (default 1000)\n"
          "  --max-bytes N           the tree's size limit in bytes (default 10485760)\n"
          "  --max-files N           the tree's limit of files and directories (default 1000)\n"
          "  --mock NAME             require(NAME) gives an empty object (repeatable; other Node\n"
          "                          built-in module names are refused)\n"
          "  --response-ms N         ping the VM every N/4 ms; one that does not answer within N ms\n"
          "                          (stuck in a builtin) is stopped\n"
          "  --json                  machine-readable output: one JSON object per line\n"
          "  --stats                 print heap, CPU, wall and response-time figures at the end\n"
          "  -h, --help              this text\n"
          "\n"
          "Exit status: 0 when everything succeeded; else the sandbox status of the failure as a\n"
          "positive number: 1 exception (also when an error was reported from a timer or an\n"
          "unhandled rejection), 2 CPU limit, 3 wall limit, 4 heap limit, 5 thread given up on,\n"
          "6 halted, 12 timeout, 13 response limit; %d for a usage error, %d when DIR cannot be\n"
          "read.\n",
          EXIT_USAGE, EXIT_NOINPUT);
}

static bool parse_num(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= 0)) return false;
  *out = v;
  return true;
}

static int parse_args(int argc, char **argv) {
  options *o = &g_opt;
  o->entry = "main.js";
  o->time = 1;
  o->heap_mb = 64;
  o->thread_heap_mb = 16;
  o->max_timers = 100;
  o->max_threads = 4;
  o->thread_response_ms = 1000;
  enum {
    O_ENTRY = 1000,
    O_CALL,
    O_TICKS,
    O_TIME,
    O_MEMORY,
    O_HEAP,
    O_CPU,
    O_WALL,
    O_HARD,
    O_TIMEOUT,
    O_TIMERS,
    O_THREADS,
    O_THEAP,
    O_TRESP,
    O_MAXB,
    O_MAXF,
    O_MOCK,
    O_RESP,
    O_JSON,
    O_STATS
  };
  static struct option opts[] = {{"entry", required_argument, 0, O_ENTRY},
                                 {"call", required_argument, 0, O_CALL},
                                 {"ticks", required_argument, 0, O_TICKS},
                                 {"time", required_argument, 0, O_TIME},
                                 {"memory", required_argument, 0, O_MEMORY},
                                 {"heap-mb", required_argument, 0, O_HEAP},
                                 {"cpu-ms", required_argument, 0, O_CPU},
                                 {"wall-ms", required_argument, 0, O_WALL},
                                 {"hard-ms", required_argument, 0, O_HARD},
                                 {"timeout", required_argument, 0, O_TIMEOUT},
                                 {"timers", required_argument, 0, O_TIMERS},
                                 {"threads", required_argument, 0, O_THREADS},
                                 {"thread-heap-mb", required_argument, 0, O_THEAP},
                                 {"thread-response-ms", required_argument, 0, O_TRESP},
                                 {"max-bytes", required_argument, 0, O_MAXB},
                                 {"max-files", required_argument, 0, O_MAXF},
                                 {"mock", required_argument, 0, O_MOCK},
                                 {"response-ms", required_argument, 0, O_RESP},
                                 {"json", no_argument, 0, O_JSON},
                                 {"stats", no_argument, 0, O_STATS},
                                 {"help", no_argument, 0, 'h'},
                                 {0, 0, 0, 0}};
  if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    usage(stdout);
    exit(0);
  }
  if (argc < 3 || strcmp(argv[1], "run") != 0) {
    usage(stderr);
    return EXIT_USAGE;
  }
  o->dir = argv[2];
  optind = 3;
  int c;
  double v;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    bool num_ok = true;
    switch (c) {
      case 'h': usage(stdout); exit(0);
      case O_ENTRY: o->entry = optarg; break;
      case O_CALL: o->call = optarg; break;
      case O_MEMORY: o->memory = optarg; break;
      case O_JSON: o->json = true; break;
      case O_STATS: o->stats = true; break;
      case O_MOCK:
        if (o->n_mocks < 32) o->mocks[o->n_mocks++] = optarg;
        break;
      default:
        if (c < O_TICKS || !(num_ok = parse_num(optarg, &v))) {
          if (!num_ok)
            fprintf(stderr, "isoworld-sandbox: not a number: %s\n", optarg);
          else
            usage(stderr);
          return EXIT_USAGE;
        }
        switch (c) {
          case O_TICKS: o->ticks = (long)v; break;
          case O_TIME: o->time = v; break;
          case O_HEAP: o->heap_mb = (size_t)v; break;
          case O_CPU: o->cpu_ms = v; break;
          case O_WALL: o->wall_ms = v; break;
          case O_HARD: o->hard_ms = v; break;
          case O_TIMEOUT: o->timeout_ms = v; break;
          case O_TIMERS: o->max_timers = (size_t)v; break;
          case O_THREADS: o->max_threads = (size_t)v; break;
          case O_THEAP: o->thread_heap_mb = (size_t)v; break;
          case O_TRESP: o->thread_response_ms = v; break;
          case O_MAXB: o->max_bytes = (size_t)v; break;
          case O_MAXF: o->max_files = (size_t)v; break;
          case O_RESP: o->response_ms = v; break;
        }
    }
  }
  o->args = argv + optind;
  o->n_args = argc - optind;
  if (o->heap_mb < 8) {
    fprintf(stderr, "isoworld-sandbox: --heap-mb must be at least 8\n");
    return EXIT_USAGE;
  }
  return 0;
}

/* ------------------------------------------------------------------ ticks */

static void print_tick(long k, uint64_t time, const sbx_tick_out *o, uint64_t generation) {
  if (g_opt.json) {
    printf("{\"tick\":%ld,\"time\":%llu,\"status\":%d,\"status_text\":", k, (unsigned long long)time, o->status);
    json_str(stdout, sbx_strerror(o->status), strlen(sbx_strerror(o->status)));
    if (o->error) {
      printf(",\"error\":");
      json_str(stdout, o->error, strlen(o->error));
    }
    printf(
        ",\"cpu_ns\":%llu,\"wall_ns\":%llu,\"created\":%s,\"global_reset\":%s,\"create_ms\":%.3f,\"omitted\":%zu,"
        "\"generation\":%llu,\"heap_used\":%zu,\"heap_external\":%zu,\"memory_changed\":%s",
        (unsigned long long)o->cpu_ns, (unsigned long long)o->wall_ns, o->created ? "true" : "false",
        o->global_reset ? "true" : "false", o->create_ms, o->omitted_lines, (unsigned long long)generation,
        o->heap.used, o->heap.external, o->memory_changed ? "true" : "false");
    if (o->memory_changed && o->memory) {
      printf(",\"memory\":");
      json_str(stdout, o->memory, o->memory_len);
    }
    printf(",\"lines\":[");
    for (size_t i = 0; i < o->n_lines; i++) {
      printf("%s{\"level\":%d,\"text\":", i ? "," : "", (int)o->lines[i].level);
      json_str(stdout, o->lines[i].text, o->lines[i].len);
      printf("}");
    }
    printf("]}\n");
    fflush(stdout);
    return;
  }
  for (size_t i = 0; i < o->n_lines; i++) {
    FILE *f = o->lines[i].level == SBX_WARN || o->lines[i].level == SBX_ERROR ? stderr : stdout;
    fprintf(f, "[%llu] %s\n", (unsigned long long)time, o->lines[i].text);
  }
  if (o->status != SBX_OK)
    fprintf(stderr, "[%llu] tick failed: %s\n", (unsigned long long)time, sbx_strerror(o->status));
  fflush(stdout);
  fflush(stderr);
}

static int run_ticks(sbx_vm *vm) {
  sbx_pool *pool;
  if (sbx_pool_new(1, &pool) != SBX_OK) return SBX_NOMEM;
  char *memory = g_opt.memory ? strdup(g_opt.memory) : NULL;
  int last_failure = SBX_OK;
  double cpu = g_opt.cpu_ms > 0 ? g_opt.cpu_ms : 100;
  for (long k = 0; k < g_opt.ticks; k++) {
    uint64_t time = (uint64_t)g_opt.time + (uint64_t)k;
    sbx_job job = {.vm = vm,
                   .in = {.time = time,
                          .cpu_limit_ms = cpu,
                          .tick_limit_ms = cpu,
                          .bucket = 10000,
                          .wall_limit_ms = g_opt.wall_ms,
                          .hard_limit_ms = g_opt.hard_ms,
                          .memory = memory,
                          .memory_len = memory ? strlen(memory) : 0}};
    sbx_pool_run(pool, &job, 1);
    sbx_tick_out *o = &job.out;
    print_tick(k, time, o, sbx_vm_generation(vm));
    if (o->memory_changed && o->memory) {
      free(memory);
      memory = o->memory;
      o->memory = NULL;
    }
    if (o->status != SBX_OK) last_failure = o->status;
    sbx_tick_out_release(o);
  }
  if (g_opt.json) {
    printf("{\"done\":true,\"generation\":%llu,\"memory\":", (unsigned long long)sbx_vm_generation(vm));
    if (memory)
      json_str(stdout, memory, strlen(memory));
    else
      printf("null");
    printf(",\"exit\":%d}\n", exit_code(last_failure));
  }
  free(memory);
  sbx_pool_free(pool);
  return last_failure;
}

/* ------------------------------------------------------------------ a project */

static int run_project(sbx_vm *vm) {
  char entry[4096];
  snprintf(entry, sizeof entry, "%s%s", g_opt.entry[0] == '/' ? "" : "/", g_opt.entry);
  sbx_result r;
  int status = sbx_vm_run_entry(vm, entry, &r);
  report_result("run", entry, &r);
  sbx_result_release(&r);
  if (status != SBX_OK) return status;
  if (g_opt.call) {
    sbx_value *args = calloc((size_t)g_opt.n_args + 1, sizeof *args);
    for (int i = 0; args && i < g_opt.n_args; i++) args[i] = sbx_string(g_opt.args[i]);
    status = sbx_vm_call(vm, g_opt.call, args, args ? (size_t)g_opt.n_args : 0, g_opt.timeout_ms, &r);
    free(args);
    report_result("call", g_opt.call, &r);
    sbx_result_release(&r);
    if (status != SBX_OK) return status;
  }
  double t0 = now_ms();
  while (sbx_vm_has_pending(vm)) {
    double wait = -1;
    if (g_opt.timeout_ms > 0) {
      wait = g_opt.timeout_ms - (now_ms() - t0);
      if (wait <= 0) {
        if (!g_opt.json)
          fprintf(stderr, "isoworld-sandbox: work still pending after --timeout %.0f ms\n", g_opt.timeout_ms);
        return SBX_TIMEOUT;
      }
    }
    status = sbx_vm_run_pending(vm, wait, &r);
    if (status != SBX_OK) report_result("pending", "work", &r);
    sbx_result_release(&r);
    if (status != SBX_OK) return status;
  }
  return SBX_OK;
}

int main(int argc, char **argv) {
  int rc = parse_args(argc, argv);
  if (rc) return rc;
  struct stat st;
  if (stat(g_opt.dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "isoworld-sandbox: %s is not a directory\n", g_opt.dir);
    return EXIT_NOINPUT;
  }
  if (sbx_engine_start(NULL) != SBX_OK) {
    fprintf(stderr, "isoworld-sandbox: V8 failed to start\n");
    return EXIT_USAGE;
  }
  bool ticks = g_opt.ticks > 0;
  sbx_library *console = NULL, *codebase = NULL, *timers = NULL, *ipc = NULL, *threads = NULL, *measure = NULL,
              *crypto = NULL, *wconsole = NULL;
  sbx_console_options co = {ticks ? NULL : sink, NULL};
  char entry[4096];
  snprintf(entry, sizeof entry, "%s%s", g_opt.entry[0] == '/' ? "" : "/", g_opt.entry);
  sbx_codebase_options cbo = {.max_bytes = g_opt.max_bytes,
                              .max_files = g_opt.max_files,
                              .entry = entry,
                              .mock_modules = g_opt.mocks,
                              .n_mock_modules = g_opt.n_mocks};
  sbx_ipc_options io = {host_fns, sizeof host_fns / sizeof host_fns[0], "host"};
  sbx_measure_options mo = {.response_limit_ms = g_opt.response_ms};
  char *err = NULL;
  const sbx_library *libs[16];
  size_t n = 0;
  int status = SBX_NOMEM;
  if (sbx_console_library_new(&co, &console) != SBX_OK || sbx_codebase_library_new(&cbo, &codebase) != SBX_OK ||
      sbx_ipc_library_new(&io, &ipc) != SBX_OK || sbx_measure_library_new(&mo, &measure) != SBX_OK ||
      sbx_crypto_library_new(&crypto) != SBX_OK || sbx_console_library_new(&co, &wconsole) != SBX_OK)
    goto out;
  if (g_opt.max_timers) {
    sbx_timers_options to = {g_opt.max_timers};
    if (sbx_timers_library_new(&to, &timers) != SBX_OK) goto out;
  }
  if (g_opt.max_threads) {
    const sbx_library *wl[4];
    size_t wn = 0;
    wl[wn++] = wconsole;
    if (timers) wl[wn++] = timers;
    wl[wn++] = ipc;
    wl[wn++] = crypto;
    sbx_threads_options tho = {wl, wn, g_opt.thread_heap_mb, g_opt.max_threads, g_opt.thread_response_ms};
    if ((status = sbx_threads_library_new(&tho, &threads, &err)) != SBX_OK) goto out;
  }
  if (ticks) libs[n++] = sbx_guards_library();
  libs[n++] = console;
  libs[n++] = codebase;
  if (ticks) {
    libs[n++] = sbx_memory_library();
    libs[n++] = sbx_game_library();
  }
  if (timers) libs[n++] = timers;
  libs[n++] = ipc;
  if (threads) libs[n++] = threads;
  libs[n++] = measure;
  libs[n++] = crypto;
  sbx_vm_options vo = {.heap_limit_mb = g_opt.heap_mb,
                       .cpu_limit_ms = g_opt.cpu_ms,
                       .wall_limit_ms = g_opt.wall_ms,
                       .on_error = on_error,
                       .on_catastrophic_error = on_catastrophic};
  sbx_vm *vm = NULL;
  if ((status = sbx_vm_create(libs, n, &vo, &vm, &err)) != SBX_OK) goto out;
  char *lerr = NULL;
  int lrc = sbx_fs_load_dir(sbx_vm_fs(vm), g_opt.dir, "/", &lerr);
  if (lrc != SBX_OK) {
    fprintf(stderr, "isoworld-sandbox: cannot load %s: %s\n", g_opt.dir, lerr ? lerr : sbx_strerror(lrc));
    free(lerr);
    sbx_vm_free(vm);
    status = EXIT_NOINPUT;
    goto out_code;
  }
  if (g_opt.response_ms > 0) {
    g_mon.vm = vm;
    pthread_create(&g_mon.thread, NULL, monitor, NULL);
  }
  status = ticks ? run_ticks(vm) : run_project(vm);
  if (g_opt.response_ms > 0) {
    g_mon.stop = 1;
    pthread_join(g_mon.thread, NULL);
  }
  if (status == SBX_OK && g_uncaught && !ticks) status = SBX_EXCEPTION;
  if (g_opt.stats) {
    sbx_stats s;
    sbx_vm_stats(vm, &s);
    FILE *f = g_opt.json ? stdout : stderr;
    if (g_opt.json)
      fprintf(f,
              "{\"stats\":{\"heap_used\":%zu,\"heap_total\":%zu,\"heap_limit\":%zu,\"heap_used_pct\":%.2f,"
              "\"external\":%zu,\"cpu_ms\":%.3f,\"wall_ms\":%.3f,\"runs\":%llu,\"response_ms\":%.3f}}\n",
              s.heap_used, s.heap_total, s.heap_limit, s.heap_used_pct, s.external, (double)s.cpu_ns / 1e6,
              (double)s.wall_ns / 1e6, (unsigned long long)s.runs, s.response_ms);
    else
      fprintf(f,
              "stats: heap %.2f MB used of %.0f MB (%.1f%%), external %.2f MB, CPU %.1f ms, wall %.1f ms in %llu runs, "
              "response %.2f ms\n",
              (double)s.heap_used / 1048576, (double)s.heap_limit / 1048576, s.heap_used_pct,
              (double)s.external / 1048576, (double)s.cpu_ns / 1e6, (double)s.wall_ns / 1e6, (unsigned long long)s.runs,
              s.response_ms);
  }
  sbx_vm_free(vm);
out:
  if (err) {
    fprintf(stderr, "isoworld-sandbox: %s\n", err);
    free(err);
  }
  status = exit_code(status);
out_code:
  stop_sleeper();
  sbx_library_free(threads);
  sbx_library_free(console);
  sbx_library_free(wconsole);
  sbx_library_free(codebase);
  sbx_library_free(timers);
  sbx_library_free(ipc);
  sbx_library_free(measure);
  sbx_library_free(crypto);
  if (!sbx_engine_stop()) _exit(status); /* a thread is still stuck in V8: just leave */
  return status;
}
