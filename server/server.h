/*
 * server.h — what the files of server/ share. Nothing outside server/ includes it
 * (nothing depends on the server).
 *
 * Threads: the loop thread (libuv: HTTP, signals), the tick thread (sequences ticks,
 * the only LMDB writer), the sandbox's worker pool and watchdog, and libuv's thread
 * pool (password hashing, heavy reads). The loop thread reads the tick thread's results
 * only through atomics and LMDB read transactions (committed state); it never touches a
 * player or V8. Every change it wants made goes to the tick thread as an op (below).
 */
#ifndef ISOWORLD_SERVER_H
#define ISOWORLD_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "players.h"
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
  bool registration;  /* POST /api/register/submit is open (default true) */
  int token_ttl_s;    /* lifetime of a session token, seconds (default 3600) */
  /* websockets and the page (publish.c, main.c) */
  char static_dir[1024]; /* the browser page; "" = beside the binary; "none" = no page */
  int ws_queue_kb;       /* websocket bytes queued per connection (default 1024) */
  int ws_stall_s;        /* close a websocket that stalls this long while dropping (30) */
  /* administration (admin*.c) */
  bool admin; /* serve the admin API (default true; --no-admin) */
  char admin_bind[128];
  int admin_port;    /* after srv_config_load: --admin-port, else port + 1 (0 if port is 0) */
  bool admin_remote; /* answer admin clients that are not on loopback */
  bool paused;       /* start with time paused */
  /* backups only under this directory ("": anywhere; with admin_remote <data-dir>/backups) */
  char backup_dir[1024];
  /* the world (world.c) */
  int world_size;      /* rooms a side of a world generated for a new data directory (3) */
  uint64_t world_seed; /* its seed (default 1) */
  bool auto_spawn;     /* a new user gets a room and Spawn1 at once (default true) */
} srv_config;

/* Fills defaults, reads --config FILE if given, then the other flags (which win).
 * Returns 0 to go on, 1 when --help/--version was printed (exit 0), -1 on a bad
 * argument (a message was printed; exit 2). */
int srv_config_load(srv_config *cfg, int argc, char **argv);

/* ------------------------------------------------------------------ players */

/* A console expression waiting for the player's next run. */
typedef struct srv_cmd {
  uint64_t seq; /* its number in the store's console queue */
  char *expr;   /* NUL-terminated, owned */
} srv_cmd;

/* A player in RAM: owned by the tick thread, a write-through copy of what is committed. */
typedef struct srv_player {
  uint64_t id;
  char name[64];
  uint32_t flags;                /* SRV_USER_* */
  char branch[STORE_BRANCH_MAX]; /* the branch that runs (activeWorld) */
  sbx_vm *vm;
  bool has_code;
  uint64_t code_stamp;
  char *memory; /* the committed Memory (NUL-terminated), owned */
  size_t memory_len;
  bool memory_dirty; /* changed since the last commit */
  sim_cpu cpu;
  int32_t last_used_ms;
  uint64_t last_tick;
  srv_cmd *cmds; /* console queue, oldest first */
  size_t n_cmds, cap_cmds;
  int active_segments[SBX_SEGMENTS_ACTIVE_MAX]; /* readable this tick (setActiveSegments) */
  size_t n_active_segments;
  uint64_t skipped_tick; /* the last tick it was skipped for an empty bucket (publish.c) */
} srv_player;

typedef struct srv srv;

/* players.c — the registry of players in RAM. Tick thread only. */
/* The player with this id, or NULL. */
srv_player *srv_player_find(srv *s, uint64_t id);
/* Adds a player for user u (state as committed in txn: code of its active branch,
 * Memory, CPU, console queue, active segments). 0 or a store status. */
int srv_player_add(srv *s, store_txn *txn, const store_user *u);
/* Replaces the player's code with the modules of its branch p->branch as committed in
 * txn; the global resets on its next run. 0 or a store status. */
int srv_player_load_code(srv *s, store_txn *txn, srv_player *p);
/* Replaces the player's code with these modules (names as players write them). */
int srv_player_set_code(srv_player *p, const sbx_module *mods, size_t n);
/* Appends a queued console expression (copied). 0 or -1 (out of memory). */
int srv_player_push_cmd(srv_player *p, uint64_t seq, const char *expr);
/* Drops the queued expressions numbered <= upto. */
void srv_player_drop_cmds(srv_player *p, uint64_t upto);
void srv_player_free(srv_player *p);
/* Brings users written before branch records existed (schema 1) up to date: each gets a
 * record for every branch it has code in, and a "default" branch if it has none. Runs
 * in srv_open's write txn. */
int srv_players_fixup(srv *s, store_txn *txn);

/* ------------------------------------------------------------------ ops */

/*
 * The op queue: how the loop thread changes persistent state. LMDB has one writer, the
 * tick thread; the loop thread must never wait for it. So a change is an op, submitted
 * from the loop thread and run by the tick thread between two ticks (an op waits at
 * most for the tick in progress):
 *   prepare(s, txn, ud)  tick thread: the LMDB writes, in the op's own write txn. It may
 *                        read the players (RAM) but must not change them. Returns 0 to
 *                        commit, > 0 to refuse (a logical error the op describes in its
 *                        ud), < 0 a store status. Anything but 0 aborts the txn.
 *   apply(s, ud)         tick thread, only after the commit succeeded: update RAM (a new
 *                        player, new code, Memory, queued commands...). May be NULL.
 *   done(s, status, ud)  loop thread, always exactly once: prepare's status, the
 *                        commit's failure, or SRV_OP_STOPPED when the server stopped
 *                        before the op ran. The HTTP answer is sent here, so an answer
 *                        is never given before the commit is on disk.
 */
#define SRV_OP_STOPPED (-1000)

typedef int (*srv_op_prepare_fn)(srv *s, store_txn *txn, void *ud);
typedef void (*srv_op_apply_fn)(srv *s, void *ud);
typedef void (*srv_op_done_fn)(srv *s, int status, void *ud);

typedef struct srv_op srv_op;

/* Loop thread: starts the queue's completion handle on `loop`. 0 or a uv error. */
int srv_ops_init(srv *s, uv_loop_t *loop);
/* Loop thread: queues an op. 0, or SRV_OP_STOPPED (the tick thread has stopped: no
 * callback will be made) or -1 (out of memory). */
int srv_op_submit(srv *s, srv_op_prepare_fn prepare, srv_op_apply_fn apply, srv_op_done_fn done, void *ud);
/* Loop thread: queues a query — run(s, NULL, ud) on the tick thread between ticks, with
 * no txn (reads of what only the tick thread may touch: the world), then done(s, status,
 * ud) on the loop thread. Same returns as srv_op_submit. */
int srv_query_submit(srv *s, srv_op_prepare_fn run, srv_op_done_fn done, void *ud);
/* Loop thread, after the tick thread has stopped: completes every op (done callbacks
 * with their status, or SRV_OP_STOPPED) and closes the handle. */
void srv_ops_close(srv *s);
/* Tick thread: runs every queued op, each in its own write txn. True if any ran. */
bool srv_ops_run_pending(srv *s);
/* Tick thread, when it stops: refuses further ops and completes the queued ones with
 * SRV_OP_STOPPED. */
void srv_ops_stop(srv *s);

/* ------------------------------------------------------------------ the server */

struct srv {
  srv_config cfg;
  store *db;
  sbx_runtime *rt;
  sbx_pool *pool;
  srv_player **players; /* in increasing id order */
  size_t n_players, cap_players;
  uint64_t game_time;                           /* tick thread's copy */
  unsigned char token_key[SRV_TOKEN_KEY_BYTES]; /* set by srv_open, then read-only */

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

  /* op queue: pending ops and `ops_closed` under mu; completed ops under done_mu */
  srv_op *ops_head, *ops_tail;
  bool ops_closed;
  pthread_mutex_t done_mu;
  srv_op *done_head, *done_tail;
  uv_async_t ops_async;
  bool ops_live;
  struct srv_pub *pub; /* websocket publishing (publish.c); NULL: nothing is published */

  /* time control by admins (admin_time.c), under mu */
  bool paused;              /* no tick starts (ops still run) */
  uint64_t step_left;       /* ticks still to run while paused (world step N) */
  bool hold, held;          /* a backup asks the tick thread to park between ticks */
  bool tick_rate_changed;   /* cfg.tick_ms changed: the tick thread reschedules */
  pthread_cond_t hold_cv;   /* signalled when `held` becomes true */
  atomic_int pub_tick_ms;   /* cfg.tick_ms, for the loop thread */
  struct srv_admin *admin;  /* the admin API's state, NULL without one */
  struct srv_world *world;  /* the game world (world.c), tick thread only */
  atomic_size_t pub_rooms;  /* rooms in the world, for the loop thread */
  atomic_uint_fast64_t pub_world_seed; /* the seed it was generated from */
  store_dir_lock *dir_lock; /* held from srv_admin_lock_data_dir to exit */
};

/* Opens the data directory, seeds demo players if it is new, loads players. */
int srv_open(srv *s);
/* Starts the tick thread. */
int srv_start_ticking(srv *s);
/* Asks the tick thread to stop after the tick in progress, and waits for it. */
void srv_stop_ticking(srv *s);
void srv_close(srv *s);

/* ------------------------------------------------------------------ the world */
/*
 * world.c — the game world in RAM (tick thread only), a write-through copy of its records
 * in the store. Ops that change it do so in their prepare and save it into their txn;
 * ops.c calls srv_world_committed after each successful commit and srv_world_rollback
 * after a failed or refused one (a world changed but not committed is reloaded).
 */
typedef struct srv_world srv_world;
/* In srv_open's write txn: loads the world, or generates one for a store without. 0/-1. */
int srv_world_open(srv *s, store_txn *txn);
void srv_world_free(srv *s);
/* The player API library (for the runtime), the world (tick thread; NULL: none), its size. */
const sbx_library *srv_world_library(const srv *s);
const sim_world *srv_world_get(const srv *s);
uint32_t srv_world_size(const srv *s);
/* Rooms a side of a square world of `rooms` rooms (0 for none). Any thread. */
uint32_t srv_world_side(size_t rooms);
void srv_world_committed(srv *s);
int srv_world_rollback(srv *s);
/* Changes, each saving what changed into txn. Return a sim_status. join: room NULL lets
 * the game choose (x, y ignored), spawn_name NULL is "Spawn1"; room_out (16 bytes) gets
 * the room. */
int srv_world_join(srv *s, store_txn *txn, uint64_t id, const char *username, const char *room, int x, int y,
                   const char *spawn_name, char *room_out);
int srv_world_leave(srv *s, store_txn *txn, uint64_t id);
/* A new world of side x side rooms from seed replaces the old one (players lose their
 * rooms). err gets a one-line reason on failure. */
int srv_world_replace(srv *s, store_txn *txn, int side, uint64_t seed, char *err, size_t errcap);
/* The tick (tick.c): views of the rooms the n players see; a job's lib_data (views is a
 * malloc'd array of borrowed blobs the caller frees after the run); intents; save into the
 * tick's txn; end (committed: the save is on disk). */
int srv_world_begin_tick(srv *s, const uint64_t *players, size_t n);
int srv_world_run_data(srv *s, uint64_t id, sim_run *run, const char *username, sbx_blob ***views, size_t *n_views,
                       sbx_lib_data *out);
char *srv_world_take_intents(srv *s, sbx_vm *vm, size_t *len);
int srv_world_apply(srv *s, uint64_t time, sim_intents *batches, size_t n);
int srv_world_save(srv *s, store_txn *txn);
void srv_world_end_tick(srv *s, bool committed);
/* Demo players for a new data directory (seed.c). */
int srv_seed_demo(srv *s, store_txn *txn);

/* Writes a new user with its "default" branch (active for world and sim) holding
 * `mods` (names as players write them; an empty main is added if there is none),
 * Memory {}, and a CPU record. u->id is allocated here. 0, a store status, or
 * STORE_INVALID for a bad module name. */
int srv_user_create(srv *s, store_txn *txn, store_user *u, const sbx_module *mods, size_t n);

/* ------------------------------------------------------------------ HTTP */

typedef struct web web;
/* Registers the player routes (auth, registration, code, branches, Memory, segments,
 * console, tokens) on w. The routes answer on the loop thread. 0 or a web status. */
int srv_api_install(srv *s, web *w, uv_loop_t *loop);

/* ------------------------------------------------------------------ administration */

/* The admin API (admin*.c): a second HTTP listener, loopback by default, authenticated by
 * the random token in <data-dir>/admin.token; every change goes through the op queue and
 * is logged (server log and the store's admin log). Lifecycle, from main:
 *   srv_admin_lock_data_dir  before srv_open: takes the data directory's lock (a second
 *                            server or a running `isoworld-admin restore` is refused);
 *                            held until the process exits. 0 or -1 (message printed).
 *   srv_admin_start          loop thread, after srv_open and srv_ops_init, before
 *                            srv_start_ticking: reads the persisted pause, writes the
 *                            token and admin.json, starts the listener. 0 or -1.
 *   srv_admin_shutdown       loop thread, when the loop is to end: closes the listener
 *                            and the admin's handles (after the tick thread stopped).
 *   srv_admin_close          after uv_run returned, before srv_close: waits for a backup
 *                            in progress, frees everything, removes admin.json.
 * Without srv_admin_start (tests), the tick thread's hooks below are no-ops. */
int srv_admin_lock_data_dir(srv *s);
int srv_admin_start(srv *s, uv_loop_t *loop);
void srv_admin_shutdown(srv *s);
void srv_admin_close(srv *s);

/* Tick thread. With mu held: waits between ticks until a tick is due (not paused, or a
 * step is pending, and *next reached), an op is queued (not while a backup holds the
 * thread) or stop is set. Consumes one pending step when it returns for a tick. */
void srv_time_wait(srv *s, uint64_t *next);
/* Tick thread, after each committed tick: tick statistics, and wakes admin requests
 * waiting for ticks (world step, player console). */
void srv_admin_after_tick(srv *s);
/* Tick thread, after the commit: a player's console lines of tick t, kept for admins
 * following that player (copied; nothing is kept when nobody follows). */
void srv_admin_console_feed(srv *s, const srv_player *p, uint64_t t, const sbx_line *lines, size_t n);

/* ------------------------------------------------------------------ websockets */

/*
 * publish.c — streams what players' runs produce to websocket subscribers (channels
 * user:<id>/console, /cpu, /code, /memory/<path>, and server-message; PROTOCOL.md). The
 * tick thread builds each listened-to channel's frame once, after the tick's commit; the
 * loop thread fans it out through web (web_ws_publish). Without srv_publish_init every
 * function here is a no-op.
 */
#define SRV_PUB_MEMORY_PATHS 50 /* user:<id>/memory/<path> channels watched per user */
#define SRV_SKIP_TEXT "Script execution has been terminated: CPU bucket is empty"

typedef struct srv_pub srv_pub;
typedef struct srv_pub_tick srv_pub_tick;
typedef struct web_ws_options web_ws_options;

/* Loop thread, before the tick thread starts: installs the websocket backend on w (token
 * auth, who may subscribe to what, the first cpu frame) with options opt (NULL: web's
 * defaults). 0, or a uv/web error. */
int srv_publish_init(srv *s, uv_loop_t *loop, web *w, const web_ws_options *opt);
/* Loop thread, after the tick thread stopped and after web_free(): releases it all. */
void srv_publish_close(srv *s);
/* Tick thread, after a tick's commit: begin (NULL when nobody listens to any player; the
 * other calls accept NULL), one run() per player that ran (p as updated by the tick),
 * end() hands the frames to the loop thread in order — also the console message of the
 * players skipped this tick (p->skipped_tick == time). */
srv_pub_tick *srv_publish_begin(srv *s, uint64_t time);
void srv_publish_run(srv_pub_tick *t, const srv_player *p, const sbx_tick_out *out);
/* room:<NAME> frames of the rooms somebody listens to (a snapshot for new subscribers,
 * else the diff of this tick), from the world as committed. Between begin and end. */
void srv_publish_rooms(srv_pub_tick *t, const sim_world *w);
void srv_publish_end(srv *s, srv_pub_tick *t);
/* Tick thread, after an upload's commit: user:<id>/code with these modules (names as
 * players write them). hash: the upload's _hash (borrowed; may be NULL). */
void srv_publish_code(srv *s, uint64_t uid, const char *branch, const sbx_module *mods, size_t n, int64_t timestamp,
                      json_t *hash);
/* Any thread (normally the loop thread, for the admin API): sends ["server-message",
 * text] to every websocket connection. */
void srv_publish_server_message(srv *s, const char *text);

/* Logging to stderr with a timestamp; console output of players goes to stdout. */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
