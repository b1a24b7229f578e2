/*
 * sim.h — the tick's game logic: pure C, deterministic, no I/O.
 *
 * The only public header of sim/. It holds three things:
 *
 *   1. The CPU rules players see (Screeps' limit, bucket and tickLimit): sim_cpu_*.
 *   2. The game-module interface: a table of functions (sim_game) that a game maker
 *      implements to define a world — its state and LMDB encoding, the per-room views
 *      player code reads, the intents player code sends back, the per-tick rules, the
 *      room feed for websocket subscribers and a state hash — plus the generic helpers
 *      built on it (view sharing, room-feed diffs, the hash). The server talks to a world
 *      only through this interface, so a different game is a different sim_game.
 *   3. The default world, sim_default_game(): a small Screeps-like world in which the
 *      official tutorial's code runs unmodified. It is the only part of isoworld that knows
 *      Screeps' rules; its player API is the JavaScript in sim/js/.
 *
 * What sim/ must not do: I/O of any kind (files, network, clocks — the only time it sees
 * is the game time it is given and the deadline flag a caller passes), global mutable
 * state, or anything nondeterministic (no floating point in the rules, no iteration over
 * hash tables in an order that depends on addresses). It does not know V8: values cross
 * to player code as bytes and strings that the server copies into isolates.
 *
 * Ownership: every handle is owned by its caller and freed with its _free function
 * (_free(NULL) is a no-op). Functions that fill a sim_buf append to it; the buffer stays
 * the caller's. Pointers a function returns are borrowed and say for how long.
 *
 * Thread-safety: a world is used by one thread at a time, with one exception, which the
 * tick relies on: between two calls that modify it (create/load, add/remove player, tick,
 * saved) any number of threads may call the const functions at once — views, room objects,
 * terrain, host functions (path finding from every player's isolate in parallel), hash.
 *
 * Errors: functions that return int return SIM_OK (0) or a negative sim_status. Errors
 * about data (a world that does not decode, an intent array that does not parse) never
 * crash and never read out of bounds; where a message helps, an `err` buffer of
 * SIM_ERRMSG_MAX bytes gets a one-line detail.
 *
 * A tick, as the server drives it (DESIGN.md "A tick"; T = sim_world_time(w) + 1):
 *   2. sim_views_reset(v, w); sim_views_build_all(v, w, players, n) — each room's view
 *      once; then each player's job gets sim_views_for_player(v, w, id, ...) as its views.
 *   3. players run; their API calls the game's host functions (sim_world_host_fn) on the
 *      const world, from the worker threads, with the run's deadline flag.
 *   4. sim_world_tick(w, T, batches, n): every player's intent bytes, validated and
 *      applied; then sim_feed_diff for the rooms that have subscribers.
 *   5. sim_world_save(w, false, put, ud) with put = store_world_put into the tick's write
 *      txn; commit; then sim_world_saved(w) — and publish the diffs.
 * At start: sim_world_load(records of store_world_iter), or for an empty store
 * sim_world_create and sim_world_save(w, true, ...). Formats of the default world:
 * sim/world/README.md (stored records, rules) and sim/js/README.md (views, host
 * functions, wiring of its JS).
 */
#ifndef ISOWORLD_SIM_H
#define ISOWORLD_SIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================== CPU rules */

#define SIM_BUCKET_MAX 10000   /* ms of unused CPU a player can save up */
#define SIM_TICK_LIMIT_MAX 500 /* ms: no single tick may use more */
#define SIM_BUCKET_START SIM_BUCKET_MAX

/* One player's CPU account, in milliseconds. A plain value. */
typedef struct sim_cpu {
  int32_t limit;  /* Game.cpu.limit */
  int64_t bucket; /* Game.cpu.bucket */
} sim_cpu;

/* Game.cpu.tickLimit: min(500, bucket + limit), never below 0. */
double sim_cpu_tick_limit(const sim_cpu *c);

/* A player whose bucket is below zero at tick start is skipped (Screeps: "CPU bucket
 * is empty"); the skipped tick still earns `limit`. */
bool sim_cpu_must_skip(const sim_cpu *c);

/* After a run (or a skip, with used_ms = 0): the bucket gains limit - used, capped at
 * SIM_BUCKET_MAX. It can go negative when a run overran its budget inside a builtin
 * that ignored termination: the overrun is billed. */
void sim_cpu_charge(sim_cpu *c, double used_ms);

/* ================================================================== basics */

/* Status codes: 0 is OK, errors negative. X(name, value, text). */
#define SIM_STATUS_MAP(X)                                           \
  X(OK, 0, "ok")                                                    \
  X(INVALID, -1, "invalid argument")                                \
  X(NOMEM, -2, "out of memory")                                     \
  X(CORRUPT, -3, "malformed world data")                            \
  X(VERSION, -4, "unsupported world data version")                  \
  X(NOTFOUND, -5, "not found")                                      \
  X(EXISTS, -6, "already exists")                                   \
  X(NOROOM, -7, "no free room or no place for a spawn")             \
  X(DEADLINE, -8, "stopped: the caller's deadline flag was raised") \
  X(UNSUPPORTED, -9, "not supported by this game")                  \
  X(TOOBIG, -10, "a size limit was exceeded")

typedef enum {
#define SIM__ENUM(name, value, text) SIM_##name = value,
  SIM_STATUS_MAP(SIM__ENUM)
#undef SIM__ENUM
} sim_status;

/* Text of a status; never NULL ("unknown error" for unknown codes). */
const char *sim_strerror(int status);

#define SIM_ERRMSG_MAX 256

/* A growable byte buffer the caller owns (embed it, _init it, _release it). Functions
 * that produce bytes or text append to it and keep it NUL-terminated (the NUL is not
 * counted in len), so text can be used as a C string. */
typedef struct sim_buf {
  char *data;
  size_t len, cap;
} sim_buf;

void sim_buf_init(sim_buf *b);
void sim_buf_release(sim_buf *b);
/* Empties b without freeing its memory. */
void sim_buf_clear(sim_buf *b);
/* Append bytes; SIM_NOMEM on failure (b is then unchanged). */
int sim_buf_append(sim_buf *b, const void *data, size_t len);
/* Makes room for `extra` more bytes (and the NUL) without changing the contents. */
int sim_buf_reserve(sim_buf *b, size_t extra);

/* 64-bit hash of bytes (not cryptographic; stable across platforms and releases of
 * this header's major version, so hashes can be compared between runs and machines). */
uint64_t sim_hash_bytes(const void *data, size_t len, uint64_t seed);

/* The caller's deadline: a flag another thread (the sandbox's watchdog) raises when the
 * player's run is over budget. V8 cannot interrupt a host function, so long host
 * functions poll it themselves (the default path finder every 256 expansions) and return
 * early with SIM_DEADLINE. NULL: no deadline. */
typedef atomic_int sim_flag;

/* ================================================================== the game interface */

/* A world of some game. Games embed this as the first member of their own world struct;
 * everyone else treats it as opaque and goes through sim_world_* below. */
typedef struct sim_world sim_world;
typedef struct sim_game sim_game;
struct sim_world {
  const sim_game *game;
};

/* Parameters of a new world. Unknown-to-the-game fields are ignored. */
typedef struct sim_world_options {
  uint64_t seed;   /* everything random in the world derives from it */
  uint32_t width;  /* rooms across; 0 = game default (default world: 1) */
  uint32_t height; /* rooms down; 0 = game default (default world: 1) */
  uint64_t time;   /* the game time it starts at (a server's current time); 0 for a new server */
} sim_world_options;

/* One stored record of a world: a key (NUL-terminated, 1..255 bytes) and its bytes. The
 * server keeps them with store_world_put under these keys. Borrowed by whoever receives
 * it, for the duration of the call. */
typedef struct sim_record {
  const char *key;
  const void *data;
  size_t len;
} sim_record;

/* A growable list of records, e.g. a world's records read from a store's iterator before
 * sim_world_load: keys are copied, data is borrowed (it must outlive the list's use).
 * Zero-initialise it; release frees the keys and the array. */
typedef struct sim_record_list {
  sim_record *r;
  size_t n, cap;
} sim_record_list;
int sim_record_list_add(sim_record_list *l, const char *key, const void *data, size_t len); /* SIM_NOMEM */
void sim_record_list_release(sim_record_list *l);

/* Receives one record to store (save) — return 0, or a non-zero value to stop saving,
 * which save then returns. */
typedef int (*sim_put_fn)(const char *key, const void *data, size_t len, void *ud);

/* A player joining the world (admin action or /api/game/place-spawn). */
typedef struct sim_player_spec {
  uint64_t id;            /* the server's user id, > 0 */
  const char *username;   /* 1..63 bytes, NUL-terminated */
  const char *room;       /* a room name, or NULL: the game picks a free room */
  int x, y;               /* where to put the first spawn; x < 0: the game chooses */
  const char *spawn_name; /* NULL: "Spawn1" */
} sim_player_spec;

/* Intents of one player for one tick: the bytes the player API produced (format defined
 * by the game; the default world's is "The intent wire format" below). The out fields
 * are filled by the tick. */
typedef struct sim_intents {
  uint64_t player;  /* user id */
  const char *data; /* borrowed for the duration of the tick call */
  size_t len;
  /* Optional: where to write the result code of each intent, in input order (the default
   * world: OK, a Screeps ERR_* code, or SIM_INTENT_SUPERSEDED). NULL: not wanted. */
  int32_t *codes;
  size_t codes_cap;
  /* out */
  int status;       /* SIM_OK, or SIM_CORRUPT if the bytes did not parse (the
                       intents before the damage are still applied), SIM_TOOBIG if
                       they were cut at a limit */
  size_t n_intents; /* intents found */
  size_t accepted;  /* intents that took effect */
  size_t rejected;  /* intents refused or superseded */
} sim_intents;

/* The most intent text one player may hand over in a tick, whatever the game (the sandbox
 * library refuses more; a game may take less). */
#define SIM_INTENTS_MAX_BYTES (4u << 20)

/* Result code of an intent replaced by a later one of the same kind for the same object
 * (last call wins, as on Screeps), or dropped by Screeps' action priorities. */
#define SIM_INTENT_SUPERSEDED 1

/* A value passed to a host function by player code (copied by the binding). */
typedef enum { SIM_ARG_UNDEFINED = 0, SIM_ARG_NUMBER, SIM_ARG_STRING } sim_arg_kind;
typedef struct sim_arg {
  sim_arg_kind kind;
  double num;      /* SIM_ARG_NUMBER */
  const char *str; /* SIM_ARG_STRING: UTF-8, not necessarily NUL-terminated */
  size_t len;
} sim_arg;

/* The context of one host-function call. */
typedef struct sim_host_ctx {
  const sim_world *world;
  uint64_t player;          /* the calling player's user id */
  const sim_flag *deadline; /* may be NULL */
} sim_host_ctx;

/* A host function the game's player API calls (bound under `host.<name>` by the server).
 * It must treat every argument as hostile. Returns 1 with a string result appended to
 * *str, 0 with a number result in *num, or a negative sim_status (the binding then
 * returns undefined to JS, after SIM_DEADLINE the isolate is being terminated anyway).
 * Called concurrently from many threads on a const world (see Thread-safety). */
typedef int (*sim_host_fn)(const sim_host_ctx *ctx, const sim_arg *args, size_t nargs, sim_buf *str, double *num);

typedef struct sim_host_fn_def {
  const char *name;
  sim_host_fn fn;
} sim_host_fn_def;

/* The table a game implements. Every function pointer is required unless marked
 * optional. "room" arguments are room indices, 0 <= room < room_count(w). */
struct sim_game {
  const char *name;      /* "default" */
  uint32_t data_version; /* version of the encoding written by save */

  /* --- lifecycle ------------------------------------------------------------------- */
  /* A new world, generated from o->seed; deterministic: same options, same world. */
  int (*create)(const sim_world_options *o, sim_world **out, char *err);
  /* A world from its stored records (any order; extra keys the game does not know are an
   * error). Every byte is checked: a truncated, garbage or inconsistent record gives
   * SIM_CORRUPT (or SIM_VERSION) and a detail in err, never a crash. */
  int (*load)(const sim_record *records, size_t n, sim_world **out, char *err);
  void (*free)(sim_world *w);

  /* --- persistence ----------------------------------------------------------------- */
  /* Calls put for each record that changed since the last saved() (all records if
   * `all`). Keys are stable: a room is one record, so a tick rewrites only the rooms it
   * changed. save does not clear the changes; saved() does, once the caller has
   * committed them. */
  int (*save)(sim_world *w, bool all, sim_put_fn put, void *ud);
  void (*saved)(sim_world *w);

  /* --- players --------------------------------------------------------------------- */
  /* Gives a player a starting room: claims its controller and places a spawn. The room
   * name chosen is written to room_out (at least 16 bytes) if not NULL.
   * Errors: SIM_EXISTS (player already has objects), SIM_NOTFOUND (no such room),
   * SIM_NOROOM (room taken, or no place for a spawn / at x,y), SIM_INVALID. */
  int (*add_player)(sim_world *w, const sim_player_spec *p, char *room_out);
  /* Removes every object of the player and releases their rooms. SIM_NOTFOUND if the
   * world does not know the player. */
  int (*remove_player)(sim_world *w, uint64_t player);
  /* A free room for a new player (the first by index), written to room_out (16 bytes).
   * SIM_NOROOM if none. */
  int (*suggest_room)(const sim_world *w, char *room_out);

  /* --- rooms ----------------------------------------------------------------------- */
  size_t (*room_count)(const sim_world *w);
  /* Borrowed, valid as long as w. */
  const char *(*room_name)(const sim_world *w, size_t room);
  int (*room_index)(const sim_world *w, const char *name, size_t *out);
  /* The rooms whose objects player code of `player` sees this tick, in increasing index
   * order. Writes up to cap indices, and the total count to *n (may exceed cap). */
  int (*visible_rooms)(const sim_world *w, uint64_t player, size_t *out, size_t cap, size_t *n);
  /* Rooms the player owns (controller), for /api/user/rooms; same conventions. */
  int (*owned_rooms)(const sim_world *w, uint64_t player, size_t *out, size_t cap, size_t *n);

  /* --- the tick -------------------------------------------------------------------- */
  /* One room's view for this tick, appended to out: everything in the room player code
   * may read, in a form the game's JS consumes. It depends only on the world, not on
   * who looks: build it once per room per tick and give the same bytes to every player
   * who sees the room (sim_views does this). */
  int (*room_view)(const sim_world *w, size_t room, sim_buf *out);
  /* The room's static terrain, appended as 2500 ASCII digits, y*50+x, '0' plain,
   * '1' wall, '2' swamp — the /api/game/room-terrain encoding. */
  int (*room_terrain)(const sim_world *w, size_t room, sim_buf *out);
  /* Applies one tick: validates and applies every player's intents, in an order that
   * depends only on the world and the intents (not on the order of `batches`), then runs
   * the per-tick updates. time must be sim_world_time(w) + 1 (else SIM_INVALID, nothing
   * done). Per-player problems are reported in the batches; the return value is SIM_OK
   * unless the world could not be updated at all (SIM_NOMEM: the world is then unusable
   * and must be reloaded from the last commit). */
  int (*tick)(sim_world *w, uint64_t time, sim_intents *batches, size_t n);
  /* The game time of the last tick applied (0 for a new world). */
  uint64_t (*time)(const sim_world *w);
  /* A 64-bit hash of the whole state: equal worlds have equal hashes; a save/load round
   * trip keeps it. Cheap when little changed (games cache per room). */
  uint64_t (*hash)(const sim_world *w);
  /* Optional: the seed the world was generated from (for a reset to the same world). */
  uint64_t (*seed)(const sim_world *w);

  /* --- the room feed (websocket room:<NAME>, /api/game/room-objects) ---------------- */
  /* Appends {"objects":{"<id>":{...},...},"users":{"<uid>":{...},...}} — the room's objects
   * as subscribers see them, with Screeps' field names (PROTOCOL.md "World"). The generic
   * sim_feed turns successive snapshots into diffs. */
  int (*room_objects)(const sim_world *w, size_t room, sim_buf *out);

  /* --- the player API -------------------------------------------------------------- */
  /* Host functions the game's JS calls (e.g. the path finder); may be empty. */
  const sim_host_fn_def *host_fns;
  size_t n_host_fns;
  /* The JS of the player API: classic scripts, evaluated in this order with globalThis as
   * their global when the startup snapshot is built (sim_library_new), after the
   * sandbox's player prelude (console, require, Memory, Game.cpu). They define the
   * game's globals and leave one hidden, non-enumerable global, the factory
   *   __isoworld_world(host) -> { begin(Game, time, user, views, info), end() }
   * which the library takes (and deletes) before any player code exists, and calls once
   * per new global with `host` holding the host functions above. Every tick, after Game
   * is made and before the player's loop: begin(Game, Game.time, {id: "<user id>",
   * username}, [view text of each visible room], {worldSize}); after the loop and the
   * console commands (also after a loop that ran out of CPU): end() returns the tick's
   * intents as text in the game's wire format ("" for none). A global `_` becomes what
   * require('lodash') answers. */
  const char *const *js_sources;
  size_t n_js_sources;
};

/* ----- generic calls, dispatching through w->game (w may not be NULL unless stated) */

int sim_world_create(const sim_game *g, const sim_world_options *o, sim_world **out, char *err);
int sim_world_load(const sim_game *g, const sim_record *records, size_t n, sim_world **out, char *err);
void sim_world_free(sim_world *w); /* NULL: no-op */
const sim_game *sim_world_game(const sim_world *w);
int sim_world_save(sim_world *w, bool all, sim_put_fn put, void *ud);
void sim_world_saved(sim_world *w);
int sim_world_add_player(sim_world *w, const sim_player_spec *p, char *room_out);
int sim_world_remove_player(sim_world *w, uint64_t player);
int sim_world_suggest_room(const sim_world *w, char *room_out);
size_t sim_world_room_count(const sim_world *w);
const char *sim_world_room_name(const sim_world *w, size_t room);
int sim_world_room_index(const sim_world *w, const char *name, size_t *out);
int sim_world_visible_rooms(const sim_world *w, uint64_t player, size_t *out, size_t cap, size_t *n);
int sim_world_owned_rooms(const sim_world *w, uint64_t player, size_t *out, size_t cap, size_t *n);
int sim_world_room_view(const sim_world *w, size_t room, sim_buf *out);
int sim_world_room_terrain(const sim_world *w, size_t room, sim_buf *out);
int sim_world_room_objects(const sim_world *w, size_t room, sim_buf *out);
int sim_world_tick(sim_world *w, uint64_t time, sim_intents *batches, size_t n);
uint64_t sim_world_time(const sim_world *w);
uint64_t sim_world_hash(const sim_world *w);
/* The seed it was generated from; 0 when the game does not say. */
uint64_t sim_world_seed(const sim_world *w);
/* The host function `name` of w's game, or NULL. */
sim_host_fn sim_world_host_fn(const sim_world *w, const char *name);

/* ----- shared views: build each room's view once per tick ------------------------ */

/* Per-tick cache of room views. Typical tick: sim_views_reset(v, w) after the previous
 * tick was applied; then for each player sim_views_for_player (from one thread: views
 * are built on first use), or sim_views_build_all first and then for_player from many
 * threads (read-only after build_all). */
typedef struct sim_views sim_views;

int sim_views_new(sim_views **out);
void sim_views_free(sim_views *v);
/* Forgets every view (keeps memory) and binds v to w's current state. */
void sim_views_reset(sim_views *v, const sim_world *w);
/* Builds the view of every room one of the n players sees (each room once). After it,
 * sim_views_for_player for those players only reads. */
int sim_views_build_all(sim_views *v, const sim_world *w, const uint64_t *players, size_t n);
/* The views of the rooms `player` sees, in increasing room order: writes up to cap
 * {room index, text} entries to out and the total count to *n (may exceed cap). The text
 * is borrowed, valid until the next reset or free. Builds missing views, so it is not
 * thread-safe — unless build_all ran since the last reset: then it only reads, and many
 * threads may call it at once. */
typedef struct sim_view_ref {
  size_t room;
  const char *data; /* NUL-terminated text (the default world's is JSON) */
  size_t len;
} sim_view_ref;
int sim_views_for_player(sim_views *v, const sim_world *w, uint64_t player, sim_view_ref *out, size_t cap, size_t *n);
/* Bytes of views built since the last reset, and how many rooms. */
size_t sim_views_bytes(const sim_views *v);
size_t sim_views_rooms_built(const sim_views *v);

/* ----- the room feed: snapshots and diffs for room:<NAME> subscribers -------------- */

/* Remembers what subscribers of one room last got and turns the room's current objects
 * into the payload of the next room:<NAME> event. Uses JSON text only (libjansson inside). */
typedef struct sim_feed sim_feed;

int sim_feed_new(sim_feed **out);
void sim_feed_free(sim_feed *f);
/* Appends the full snapshot {"objects":{...},"users":{...},"gameTime":N,
 * "info":{"mode":"world"}} of `room` to out and makes it the baseline. Send it to a new
 * subscriber (an existing subscriber may get it too: it is the current state). */
int sim_feed_snapshot(sim_feed *f, const sim_world *w, size_t room, sim_buf *out);
/* Appends the diff since the baseline, {"objects":{"<id>":{changed keys...},
 * "<gone id>":null},"gameTime":N} (objects new since the baseline appear whole; in a
 * changed object, nested objects are diffed the same way, removed keys are null, arrays
 * are sent whole), and makes the current state the baseline. *changed (may be NULL) tells
 * whether any object changed. Without a baseline it produces a snapshot. */
int sim_feed_diff(sim_feed *f, const sim_world *w, size_t room, sim_buf *out, bool *changed);
/* /api/game/room-objects: appends {"ok":1,"objects":[{...},...],"users":{...}}. */
int sim_room_objects_api(const sim_world *w, size_t room, sim_buf *out);

/* ================================================================== the player API in the sandbox */

/* A game's player API as a sandbox library (sandbox.h): its js_sources and the generic glue
 * (sim/library.js) in the snapshot, its host functions bound under `host`, and the tick's
 * hand-over — views in, intents out. The server builds the runtime of every player from
 * the player prelude (sbx_player_library()) followed by this library.
 *
 * Per run, the server passes what the player's tick needs as the library's sbx_lib_data
 * (sim_library_run_data): the world (read-only during the run; host functions read it from
 * the worker threads), the player, and one blob per room the player sees, holding that
 * room's view (sim_views, built once per room and shared by every player who sees it).
 * After the run, sim_library_take_intents gives the intents it handed over. */
struct sbx_library;
struct sbx_vm;
struct sbx_blob;
struct sbx_lib_data;

typedef struct sim_run {
  const sim_world *world; /* must stay unchanged until the run ends */
  uint64_t player;
  const char *username;   /* borrowed until the run ends */
  uint32_t world_size;    /* Game.map.getWorldSize() */
} sim_run;

/* The library of game g (freed with sbx_library_free, after the runtimes built from it). */
int sim_library_new(const sim_game *g, struct sbx_library **out);
/* Fills *out, the per-run data of a tick of lib: run and views are borrowed until the run
 * ends (the blobs are referenced by the run). */
void sim_library_run_data(const struct sbx_library *lib, const sim_run *run, struct sbx_blob *const *views,
                          size_t n_views, struct sbx_lib_data *out);
/* The intents the vm's last run handed over (malloc'd, NUL-terminated, ownership to the
 * caller; *len its length), or NULL when there are none. Call between runs. */
char *sim_library_take_intents(const struct sbx_library *lib, struct sbx_vm *vm, size_t *len);

/* ================================================================== the default world */

/* The default game: Screeps-like rooms W<x>N<y>, sources, controllers, spawns, extensions,
 * creeps, construction sites, roads, walls, containers, dropped energy. See
 * sim/world/README.md for the rules and the encodings, and sim/js/ for its player API. */
const sim_game *sim_default_game(void);

/* Limits of the default world. */
#define SIM_DW_MAX_ROOMS_SIDE 64            /* width and height in rooms */
#define SIM_DW_INTENTS_MAX_BYTES SIM_INTENTS_MAX_BYTES /* one player's intent text per tick */
#define SIM_DW_INTENTS_MAX 20000            /* intents of one player per tick */

/* The intent wire format of the default world (what sim/js/ produces, what tick takes):
 * UTF-8 JSON text of an array of arrays, one per intent, [code, subject, args...]:
 *
 *   code  subject        args                                  Screeps call
 *   1     creep id       direction 1..8                        creep.move
 *   2     creep id       source id                             creep.harvest
 *   3     creep id       target id, resourceType, amount|null  creep.transfer
 *   4     creep id       target id, resourceType, amount|null  creep.withdraw
 *   5     creep id       resource id                           creep.pickup
 *   6     creep id       resourceType, amount|null             creep.drop
 *   7     creep id       site id                               creep.build
 *   8     creep id       structure id                          creep.repair
 *   9     creep id       controller id                         creep.upgradeController
 *   10    creep id       message, isPublic                     creep.say
 *   11    creep id       —                                     creep.suicide
 *   12    spawn id       name, [bodypart...], [energy struct id...]|null
 *                                                              spawn.spawnCreep
 *   13    room name      x, y, structureType, name|null        room.createConstructionSite
 *   14    site id        —                                     constructionSite.remove
 *   15    structure id   —                                     structure.destroy
 *   16    spawn id       —                                     spawn.spawning.cancel
 * Ids are the strings the views carry. amount null means "as much as possible". Only
 * numbers, strings, arrays, true/false/null are accepted; anything else (objects, depth
 * over 3, a number where a string belongs) rejects that intent with ERR_INVALID_ARGS.
 * A syntax error stops the parse: the intents before it still count. */
enum {
  SIM_DW_MOVE = 1,
  SIM_DW_HARVEST,
  SIM_DW_TRANSFER,
  SIM_DW_WITHDRAW,
  SIM_DW_PICKUP,
  SIM_DW_DROP,
  SIM_DW_BUILD,
  SIM_DW_REPAIR,
  SIM_DW_UPGRADE,
  SIM_DW_SAY,
  SIM_DW_SUICIDE,
  SIM_DW_SPAWN,
  SIM_DW_CREATE_SITE,
  SIM_DW_REMOVE_SITE,
  SIM_DW_DESTROY,
  SIM_DW_CANCEL_SPAWN,
  SIM_DW_INTENT_CODES /* one past the last */
};

/* The default world's path finder, also bound as host.findPath (see sim/js/README.md for
 * the JS signature): A* over one room's 50x50 grid, 8 directions, costs as Screeps'
 * Room.findPath (plain 2, swamp 10, road 1, obstacles and — unless ignored — creeps
 * impassable), heuristic admissible so a complete path is a cheapest one. Cross-room
 * paths are the caller's business (the JS API paths to the exit toward the target room).
 */
typedef struct sim_dw_goal {
  int x, y, range;
} sim_dw_goal;

#define SIM_DW_PATH_IGNORE_CREEPS 1u
#define SIM_DW_PATH_IGNORE_ROADS 2u
#define SIM_DW_PATH_IGNORE_STRUCTURES 4u /* ignoreDestructibleStructures */
#define SIM_DW_PATH_TERRAIN_ONLY 8u      /* PathFinder.search: terrain and `costs` only */
#define SIM_DW_PATH_MAX_GOALS 256
#define SIM_DW_PATH_DEFAULT_OPS 2000
#define SIM_DW_PATH_MAX_OPS 100000

typedef struct sim_dw_path_opts {
  uint64_t player;            /* whose path: their own obstacle construction sites block */
  unsigned flags;             /* SIM_DW_PATH_* */
  int max_ops;                /* 0: SIM_DW_PATH_DEFAULT_OPS; capped at SIM_DW_PATH_MAX_OPS */
  int plain_cost, swamp_cost; /* 0: 2 and 10 (1 and 5 with IGNORE_ROADS), 1..254 */
  const uint8_t *costs;       /* NULL, or 2500 bytes y*50+x: 0 keep, 1..254 cost,
                                 255 impassable (a Screeps CostMatrix) */
  const sim_flag *deadline;   /* polled every 256 expansions; NULL: none */
} sim_dw_path_opts;

typedef struct sim_dw_path {
  int n;                               /* steps */
  uint8_t x[2500], y[2500], dir[2500]; /* position after each step, and its direction */
  bool incomplete;                     /* no goal reached: the path leads to the closest tile found */
  int ops;                             /* expansions */
  int cost;
} sim_dw_path;

/* Finds a path in room `room` from (x, y) to any goal. Errors: SIM_INVALID (bad room,
 * coordinates, goals, options), SIM_DEADLINE. A path that reaches no goal is not an
 * error: out->incomplete says so. */
int sim_dw_find_path(const sim_world *w, size_t room, int x, int y, const sim_dw_goal *goals, size_t n_goals,
                     const sim_dw_path_opts *o, sim_dw_path *out);

/* Appends a path in Screeps' Room.serializePath form: "xxyy" of the first step, then one
 * direction digit per step ("" for an empty path). */
int sim_dw_serialize_path(const sim_dw_path *p, sim_buf *out);

#ifdef __cplusplus
}
#endif

#endif
