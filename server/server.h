/*
 * server.h — what the files of server/ share. Nothing outside server/ includes it
 * (nothing depends on the server).
 *
 * Threads: the loop thread (libuv: HTTP, signals), the tick thread (sequences ticks,
 * the only LMDB writer), the sandbox's worker pool and watchdog. The loop thread reads
 * the tick thread's results only through atomics; it never touches a player or V8.
 */
#ifndef ISOWORLD_SERVER_H
#define ISOWORLD_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"
#include "sim.h"
#include "store.h"

#define ISOWORLD_VERSION "0.1.0"

/* ------------------------------------------------------------------ configuration */

typedef struct srv_config {
  char data_dir[1024];
  char bind[128];
  int port;
  int tick_ms;        /* 0: as fast as possible */
  int workers;        /* 0: number of cores */
  int cpu_limit;      /* default Game.cpu.limit for new players, ms */
  int heap_mb;        /* heap limit per player isolate */
  int wall_ms;        /* wall-clock budget per run; 0: 2 x tickLimit + 50 */
  int hard_ms;        /* give up on a run stuck in a builtin after this; 0: 5000 */
  uint64_t max_ticks; /* stop after this many ticks (0: run forever) */
  bool demo;          /* seed two demo players into an empty data directory */
  bool quiet;         /* do not echo players' console output */
  bool nosync;        /* LMDB without fsync per commit (benchmarks only) */
  int stats_every;    /* print a tick summary every N ticks (0: never) */
} srv_config;

/* Fills defaults, reads --config FILE if given, then the other flags (which win).
 * Returns 0 to go on, 1 when --help/--version was printed (exit 0), -1 on a bad
 * argument (a message was printed; exit 2). */
int srv_config_load(srv_config *cfg, int argc, char **argv);

/* ------------------------------------------------------------------ players */

typedef struct srv_player {
  uint64_t id;
  char name[64];
  sbx_vm *vm;
  bool has_code;
  uint64_t code_stamp;
  char *memory;     /* the committed Memory (NUL-terminated), owned */
  size_t memory_len;
  bool memory_dirty; /* changed since the last commit */
  sim_cpu cpu;
  int32_t last_used_ms;
  uint64_t last_tick;
} srv_player;

/* ------------------------------------------------------------------ the server */

typedef struct srv {
  srv_config cfg;
  store *db;
  sbx_runtime *rt;
  sbx_pool *pool;
  srv_player *players;
  size_t n_players, cap_players;
  uint64_t game_time;        /* tick thread's copy */

  /* read by the loop thread */
  atomic_uint_fast64_t pub_game_time;
  atomic_size_t pub_users;
  atomic_int_fast64_t pub_last_tick_us;

  /* tick thread control */
  pthread_t tick_thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  int exit_code;
  void (*on_tick_thread_exit)(void *ud); /* called from the tick thread when it stops */
  void *on_exit_ud;
} srv;

/* Opens the data directory, seeds demo players if it is new, loads players. */
int srv_open(srv *s);
/* Starts the tick thread. */
int srv_start_ticking(srv *s);
/* Asks the tick thread to stop after the tick in progress, and waits for it. */
void srv_stop_ticking(srv *s);
void srv_close(srv *s);

/* Demo players for a new data directory (seed.c). */
int srv_seed_demo(srv *s, store_txn *txn);

/* Logging to stderr with a timestamp; console output of players goes to stdout. */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
