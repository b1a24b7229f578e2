/*
 * isoworld-bench — the tick benchmark, scenario for scenario the same as the Node +
 * isolated-vm baseline in shared/bench/ivm-tick-bench.js, so the two can be run one
 * after the other on one machine and compared as a ratio.
 *
 * Each player has its own persistent vm (isolate + global from the startup snapshot)
 * and a 1 KB Memory (the baseline's generator, byte for byte in shape). Each tick runs
 * every player on the sandbox's worker pool: build Game, call module.exports.loop,
 * serialise Memory if touched. Scenarios:
 *   noop   an empty loop that does not touch Memory (the cost of entering a player)
 *   empty  an empty loop with the 1 KB Memory parsed and serialised every tick (the
 *          baseline's "empty": it always round-trips Memory)
 *   log    Memory.ticks++ and one console line with Game.cpu.getUsed()
 *   work   as log, plus ~1 ms of computation (calibrated like the baseline's)
 * Figures: isolate creation (median), tick time p50/p99, per-player µs, RSS per idle
 * player, and how far past its budget an infinite loop runs before it is stopped.
 *
 * Not a test: it prints figures. The README holds the figures and the command.
 */
#include "sandbox.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *xs, size_t n, double p) {
  if (!n) return NAN;
  qsort(xs, n, sizeof *xs, cmp_double);
  size_t i = (size_t)(p / 100.0 * (double)n);
  if (i >= n) i = n - 1;
  if (p == 50 && n % 2 == 0) return (xs[n / 2 - 1] + xs[n / 2]) / 2;
  return xs[i];
}

static double rss_mb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
  }
  return (double)res * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

/* The baseline's makeMemoryJson(1024): creeps with role/working/target/born until the
 * JSON is at least `bytes` long. */
static char *make_memory(size_t bytes) {
  static const char *roles[] = {"harvester", "upgrader", "builder"};
  size_t cap = bytes + 512;
  char *creeps = calloc(1, cap);
  size_t clen = 0;
  char *out = malloc(cap + 256);
  for (int i = 0;; i++) {
    snprintf(out, cap + 256,
             "{\"creeps\":{%s},\"rooms\":{\"W1N1\":{\"sources\":[\"a1b2\",\"c3d4\"],\"level\":3}},\"spawns\":{},"
             "\"ticks\":0}",
             creeps);
    if (strlen(out) >= bytes) break;
    clen += (size_t)snprintf(creeps + clen, cap - clen,
                             "%s\"creep%d\":{\"role\":\"%s\",\"working\":%s,\"target\":\"id%x\",\"born\":%d}",
                             i ? "," : "", i, roles[i % 3], i % 2 == 0 ? "true" : "false", i * 7919, i);
  }
  free(creeps);
  return out;
}

static const char WORK_FN[] =
    "function __work(n, t) { let x = 0; for (let i = 0; i < n; i++) { x += Math.sqrt(i ^ t); } return x; }\n";

static char *player_code(const char *scenario, long work_iters) {
  char *s = malloc(1024);
  if (!strcmp(scenario, "noop"))
    snprintf(s, 1024, "module.exports.loop = function () {};");
  else if (!strcmp(scenario, "empty"))
    snprintf(s, 1024, "module.exports.loop = function () { Memory; };");
  else if (!strcmp(scenario, "log"))
    snprintf(s, 1024,
             "module.exports.loop = function () {\n  Memory.ticks = (Memory.ticks | 0) + 1;\n"
             "  console.log('tick ' + Game.time + ' used ' + Game.cpu.getUsed());\n};");
  else
    snprintf(s, 1024,
             "%smodule.exports.loop = function () {\n  Memory.ticks = (Memory.ticks | 0) + 1;\n"
             "  Memory.x = __work(%ld, Game.time);\n  console.log('tick ' + Game.time + ' x ' + Memory.x);\n};",
             WORK_FN, work_iters);
  return s;
}

typedef struct player {
  sbx_vm *vm;
  char *memory;
  size_t memory_len;
} player;

static void run_tick(sbx_pool *pool, player *ps, sbx_job *jobs, int n, uint64_t time, double budget_ms,
                     size_t *lines, double *cpu_ms_sum) {
  for (int i = 0; i < n; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].vm = ps[i].vm;
    jobs[i].in.time = time;
    jobs[i].in.cpu_limit_ms = 100;
    jobs[i].in.tick_limit_ms = budget_ms;
    jobs[i].in.bucket = 10000;
    jobs[i].in.memory = ps[i].memory;
    jobs[i].in.memory_len = ps[i].memory_len;
  }
  sbx_pool_run(pool, jobs, (size_t)n);
  for (int i = 0; i < n; i++) {
    sbx_tick_out *o = &jobs[i].out;
    if (o->status != SBX_OK) {
      fprintf(stderr, "player %d: %s\n", i, o->error ? o->error : sbx_strerror(o->status));
    }
    if (o->memory_changed) {
      free(ps[i].memory);
      ps[i].memory = o->memory;
      ps[i].memory_len = o->memory_len;
      o->memory = NULL;
    }
    if (lines) *lines += o->n_lines;
    if (cpu_ms_sum) *cpu_ms_sum += (double)o->cpu_ns / 1e6;
    sbx_tick_out_release(o);
  }
}

/* ~work_ms of the baseline's __work, measured on this machine's isolates. */
static long calibrate(sbx_runtime *rt, sbx_pool *pool, double work_ms) {
  long iters = 100000;
  sbx_vm *vm;
  sbx_vm_new(rt, NULL, &vm);
  for (int k = 0; k < 6; k++) {
    char src[512];
    snprintf(src, sizeof src, "%smodule.exports.loop = function () { __work(%ld, Game.time); };", WORK_FN, iters);
    sbx_module m = {"main", src, strlen(src), false};
    sbx_vm_set_code(vm, &m, 1);
    double xs[15];
    for (int i = 0; i < 15; i++) {
      sbx_job job = {.vm = vm, .in = {.time = (uint64_t)i + 1, .cpu_limit_ms = 100, .tick_limit_ms = 500}};
      sbx_pool_run(pool, &job, 1);
      xs[i] = (double)job.out.cpu_ns / 1e6;
      sbx_tick_out_release(&job.out);
    }
    double med = pct(xs + 3, 12, 50); /* the first runs compile */
    iters = (long)((double)iters * work_ms / (med > 0.001 ? med : 0.001));
    if (iters < 1000) iters = 1000;
  }
  sbx_vm_free(vm);
  return iters;
}

/* How far past its CPU budget an infinite loop runs before it is stopped, by the thread's
 * CPU clock (what the budget measures: on a busy machine the wall clock also counts the
 * time the thread waited for a core); *wall_out gets the same by the wall clock. */
static double kill_overshoot(sbx_runtime *rt, sbx_pool *pool, int reps, double budget_ms, double *max_out,
                             double *wall_out) {
  sbx_vm *vm;
  sbx_vm_new(rt, NULL, &vm);
  const char *src = "module.exports.loop = function () { for (;;) {} };";
  sbx_module m = {"main", src, strlen(src), false};
  sbx_vm_set_code(vm, &m, 1);
  double *xs = calloc((size_t)reps, sizeof *xs);
  double *ws = calloc((size_t)reps, sizeof *ws);
  double mx = 0;
  /* warm: create the isolate and global first */
  sbx_job warm = {.vm = vm, .in = {.time = 1, .cpu_limit_ms = budget_ms, .tick_limit_ms = budget_ms}};
  sbx_pool_run(pool, &warm, 1);
  sbx_tick_out_release(&warm.out);
  for (int i = 0; i < reps; i++) {
    sbx_job job = {.vm = vm, .in = {.time = (uint64_t)i + 2, .cpu_limit_ms = budget_ms, .tick_limit_ms = budget_ms}};
    sbx_pool_run(pool, &job, 1);
    if (job.out.status != SBX_CPU_LIMIT) fprintf(stderr, "kill: unexpected status %d\n", job.out.status);
    xs[i] = (double)job.out.cpu_ns / 1e6 - budget_ms;
    ws[i] = (double)job.out.wall_ns / 1e6 - budget_ms;
    if (xs[i] > mx) mx = xs[i];
    sbx_tick_out_release(&job.out);
  }
  double med = pct(xs, (size_t)reps, 50);
  if (wall_out) *wall_out = pct(ws, (size_t)reps, 50);
  free(xs);
  free(ws);
  sbx_vm_free(vm);
  if (max_out) *max_out = mx;
  return med;
}

static void usage(FILE *f) {
  fprintf(f,
          "Usage: isoworld-bench [options]\n"
          "Runs N players' persistent isolates for T ticks on the sandbox's worker pool and prints\n"
          "tick time p50/p99, per-player cost, isolate creation time, RSS per player and the\n"
          "kill latency of an infinite loop past its CPU budget. Same scenarios as the Node +\n"
          "isolated-vm baseline (shared/bench/ivm-tick-bench.js).\n\n"
          "  --scenario S     noop|empty|log|work (default empty: empty loop + 1 KB Memory round trip)\n"
          "  --players N      number of players (default 1000)\n"
          "  --ticks T        measured ticks (default 20; work: 5)\n"
          "  --warmup W       unmeasured ticks first (default 3)\n"
          "  --workers K      worker threads (default: number of cores)\n"
          "  --memory-bytes B size of each player's Memory JSON (default 1024)\n"
          "  --heap-mb M      heap limit per isolate (default 64, as the baseline)\n"
          "  --work-ms X      CPU per player per tick in the work scenario (default 1)\n"
          "  --kill-reps R    repetitions of the kill-latency probe (default 10; 0 skips it)\n"
          "  --v8-flags S     extra V8 flags, space separated (experiments)\n"
          "  --json           print one JSON object instead of text\n"
          "  -h, --help       this text\n");
}

int main(int argc, char **argv) {
  const char *scenario = "empty";
  int players = 1000, ticks = -1, warmup = 3, workers = 0, kill_reps = 10;
  size_t memory_bytes = 1024, heap_mb = 64;
  double work_ms = 1;
  bool json = false;
  const char *v8_flags = NULL;
  static struct option opts[] = {{"v8-flags", required_argument, 0, 'v'},{"scenario", required_argument, 0, 's'}, {"players", required_argument, 0, 'n'},
                                 {"ticks", required_argument, 0, 't'},    {"warmup", required_argument, 0, 'w'},
                                 {"workers", required_argument, 0, 'k'},  {"memory-bytes", required_argument, 0, 'b'},
                                 {"heap-mb", required_argument, 0, 'm'},  {"work-ms", required_argument, 0, 'x'},
                                 {"kill-reps", required_argument, 0, 'r'}, {"json", no_argument, 0, 'j'},
                                 {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 's': scenario = optarg; break;
      case 'n': players = atoi(optarg); break;
      case 't': ticks = atoi(optarg); break;
      case 'w': warmup = atoi(optarg); break;
      case 'k': workers = atoi(optarg); break;
      case 'b': memory_bytes = (size_t)atol(optarg); break;
      case 'm': heap_mb = (size_t)atol(optarg); break;
      case 'x': work_ms = atof(optarg); break;
      case 'r': kill_reps = atoi(optarg); break;
      case 'j': json = true; break;
      case 'v': v8_flags = optarg; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (strcmp(scenario, "noop") && strcmp(scenario, "empty") && strcmp(scenario, "log") && strcmp(scenario, "work")) {
    fprintf(stderr, "isoworld-bench: unknown scenario '%s' (noop|empty|log|work)\n", scenario);
    return 2;
  }
  if (players < 1 || players > 100000 || warmup < 0 || kill_reps < 0 || heap_mb < 8) {
    fprintf(stderr, "isoworld-bench: bad numbers (see --help)\n");
    return 2;
  }
  if (ticks < 0) ticks = strcmp(scenario, "work") ? 20 : 5;
  if (ticks < 1) ticks = 1;

  double rss0 = rss_mb();
  sbx_engine_options eo = {.v8_flags = v8_flags};
  if (sbx_engine_start(&eo) != SBX_OK) {
    fprintf(stderr, "isoworld-bench: V8 failed to start\n");
    return 1;
  }
  sbx_runtime *rt;
  char *err = NULL;
  if (sbx_runtime_new(NULL, &rt, &err) != SBX_OK) {
    fprintf(stderr, "isoworld-bench: snapshot: %s\n", err ? err : "?");
    return 1;
  }
  sbx_pool *pool;
  if (sbx_pool_new(workers, &pool) != SBX_OK) return 1;
  long work_iters = strcmp(scenario, "work") ? 0 : calibrate(rt, pool, work_ms);

  char *memory = make_memory(memory_bytes);
  char *code = player_code(scenario, work_iters);
  sbx_module mod = {"main", code, strlen(code), false};
  sbx_vm_options vo = {.heap_limit_mb = heap_mb};
  player *ps = calloc((size_t)players, sizeof *ps);
  sbx_job *jobs = calloc((size_t)players, sizeof *jobs);
  double rss_start = rss_mb();
  for (int i = 0; i < players; i++) {
    sbx_vm_new(rt, &vo, &ps[i].vm);
    sbx_vm_set_code(ps[i].vm, &mod, 1);
    ps[i].memory = strdup(memory);
    ps[i].memory_len = strlen(memory);
  }
  /* Creation: the first tick creates every isolate + global, in parallel on the pool. */
  double *create = calloc((size_t)players, sizeof *create);
  for (int i = 0; i < players; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].vm = ps[i].vm;
    jobs[i].in = (sbx_tick_in){.time = 1, .cpu_limit_ms = 100, .tick_limit_ms = 500, .bucket = 10000,
                               .memory = ps[i].memory, .memory_len = ps[i].memory_len};
  }
  double t0 = now_ms();
  sbx_pool_run(pool, jobs, (size_t)players);
  double create_all_ms = now_ms() - t0;
  for (int i = 0; i < players; i++) {
    create[i] = jobs[i].out.create_ms;
    if (jobs[i].out.memory_changed) {
      free(ps[i].memory);
      ps[i].memory = jobs[i].out.memory;
      ps[i].memory_len = jobs[i].out.memory_len;
      jobs[i].out.memory = NULL;
    }
    sbx_tick_out_release(&jobs[i].out);
  }
  double create_p50 = pct(create, (size_t)players, 50);
  double rss_after = rss_mb();
  double rss_per_player = (rss_after - rss_start) / players;

  uint64_t time = 2;
  for (int t = 0; t < warmup; t++) run_tick(pool, ps, jobs, players, time++, 500, NULL, NULL);
  double *tick_ms = calloc((size_t)ticks, sizeof *tick_ms);
  double cpu_sum = 0;
  size_t lines = 0;
  for (int t = 0; t < ticks; t++) {
    double a = now_ms();
    run_tick(pool, ps, jobs, players, time++, 500, &lines, &cpu_sum);
    tick_ms[t] = now_ms() - a;
  }
  double p50 = pct(tick_ms, (size_t)ticks, 50), p99 = pct(tick_ms, (size_t)ticks, 99);
  double rss_end = rss_mb();
  long mem_ticks = -1;
  const char *tk = strstr(ps[0].memory, "\"ticks\":");
  if (tk) mem_ticks = atol(tk + 8);

  for (int i = 0; i < players; i++) {
    sbx_vm_free(ps[i].vm);
    free(ps[i].memory);
  }
  double kill_max = 0, kill_wall = NAN;
  double kill_p50 = kill_reps ? kill_overshoot(rt, pool, kill_reps, 50, &kill_max, &kill_wall) : NAN;

  int nthreads = sbx_pool_threads(pool);
  if (json) {
    char kill_json[200];
    if (kill_reps)
      snprintf(kill_json, sizeof kill_json,
               "\"kill_overshoot_ms_p50\":%.3f,\"kill_overshoot_ms_max\":%.3f,\"kill_overshoot_wall_ms_p50\":%.3f",
               kill_p50, kill_max, kill_wall);
    else
      snprintf(kill_json, sizeof kill_json,
               "\"kill_overshoot_ms_p50\":null,\"kill_overshoot_ms_max\":null,\"kill_overshoot_wall_ms_p50\":null");
    printf("{\"scenario\":\"%s\",\"players\":%d,\"ticks\":%d,\"workers\":%d,\"v8\":\"%s\","
           "\"tick_ms_p50\":%.3f,\"tick_ms_p99\":%.3f,\"per_player_us\":%.2f,"
           "\"cpu_per_player_us\":%.2f,\"create_ms_p50\":%.3f,\"create_all_ms\":%.1f,"
           "\"rss_per_player_mb\":%.3f,\"rss_start_mb\":%.1f,\"rss_end_mb\":%.1f,"
           "%s,\"console_lines\":%zu,"
           "\"memory_ticks\":%ld,\"work_iters\":%ld,\"snapshot_bytes\":%zu}\n",
           scenario, players, ticks, nthreads, sbx_engine_version(), p50, p99, p50 * 1000 / players,
           cpu_sum * 1000 / ((double)players * ticks), create_p50, create_all_ms, rss_per_player, rss0, rss_end,
           kill_json, lines, mem_ticks, work_iters, sbx_runtime_snapshot_size(rt));
  } else {
    printf("# isoworld-bench  V8 %s  %d workers  scenario %s  %d players  %d ticks\n", sbx_engine_version(),
           nthreads, scenario, players, ticks);
    printf("isolate + global from snapshot: median %.2f ms (all %d in parallel: %.0f ms)\n", create_p50, players,
           create_all_ms);
    printf("tick: p50 %.3f ms  p99 %.3f ms  -> %.2f us per player (CPU inside isolates %.2f us per player)\n", p50,
           p99, p50 * 1000 / players, cpu_sum * 1000 / ((double)players * ticks));
    printf("RSS: %.3f MB per idle player (%.0f MB -> %.0f MB; %.0f MB at the end)\n", rss_per_player, rss_start,
           rss_after, rss_end);
    if (kill_reps)
      printf("infinite loop past a 50 ms CPU budget: stopped %.3f ms of CPU late (median of %d; max %.3f); "
             "%.3f ms by the wall clock\n",
             kill_p50, kill_reps, kill_max, kill_wall);
    printf("console lines delivered: %zu; Memory.ticks of player 0: %ld\n", lines, mem_ticks);
  }
  free(tick_ms);
  free(create);
  free(jobs);
  free(ps);
  free(code);
  free(memory);
  sbx_pool_free(pool);
  sbx_runtime_free(rt);
  free(err);
  sbx_engine_stop();
  return 0;
}
