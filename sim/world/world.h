/*
 * world.h — internals of the default world (sim_default_game). Not a public header:
 * only the files of sim/world and white-box tests include it.
 *
 * Shape of the state: a world is a grid of rooms; a room holds its terrain and its
 * objects, each object allocated on its own (pointers stay valid while objects come and
 * go) and listed in the room in increasing id order. An index maps ids to objects.
 * Objects removed during a tick are flagged dead and swept at fixed points, so loops
 * over a room never see the array change under them.
 *
 * Determinism: everything iterates rooms by index and objects by id; ids come from a
 * counter in the world; the only arithmetic is integer; the random numbers of world
 * generation come from splitmix64 seeded from the world seed.
 */
#ifndef ISOWORLD_SIM_WORLD_H
#define ISOWORLD_SIM_WORLD_H

#include "../sim.h"
#include "constants.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DW_SIZE 50
#define DW_TILES 2500
#define DW_NAME_MAX 100 /* bytes of a creep or spawn name (UTF-8) */
#define DW_SAY_MAX 40   /* bytes of a say message: 10 UTF-16 units at most */
#define DW_SAY_UNITS 10
#define DW_USERNAME_MAX 63
#define DW_ROOM_NAME_MAX 16
#define DW_ID_HEX 15 /* object ids are 15 lowercase hex digits */

enum { DW_PLAIN = 0, DW_WALL = 1, DW_SWAMP = 2 };

/* Object types. Structure types share the numbering (a site's structureType). */
enum {
  DW_T_NONE = 0,
  DW_T_SOURCE,
  DW_T_CONTROLLER,
  DW_T_SPAWN,
  DW_T_EXTENSION,
  DW_T_ROAD,
  DW_T_WALL, /* constructedWall */
  DW_T_CONTAINER,
  DW_T_TOWER,
  DW_T_CREEP,
  DW_T_SITE,   /* constructionSite */
  DW_T_ENERGY, /* dropped energy */
  DW_T_COUNT
};

enum { DW_MOVE = 0, DW_WORK, DW_CARRY, DW_ATTACK, DW_RANGED_ATTACK, DW_TOUGH, DW_HEAL, DW_CLAIM, DW_PARTS };

typedef struct dw_creep {
  uint8_t n; /* body parts, 1..50 */
  uint8_t part[DW_MAX_CREEP_SIZE];
  uint8_t part_hits[DW_MAX_CREEP_SIZE];
  int32_t fatigue;
  uint64_t age_time; /* 0 while spawning */
  bool spawning;
  bool say_public;
  uint8_t say_len; /* 0: said nothing this tick */
  char say[DW_SAY_MAX + 1];
} dw_creep;

typedef struct dw_obj {
  uint64_t id;
  uint64_t user; /* owner's user id, 0: none */
  uint32_t room; /* index of its room */
  uint8_t type, x, y;
  bool dead;                  /* removed; swept at the next sweep point */
  int32_t hits, hits_max;     /* structures and creeps */
  int32_t energy;             /* store.energy / source energy / dropped amount */
  int32_t energy_cap;         /* store capacity / source energyCapacity */
  char name[DW_NAME_MAX + 1]; /* creep, spawn, spawn site */
  union {
    struct {
      uint64_t next_regen;
    } src; /* 0: none */
    struct {
      uint8_t level;
      int64_t progress;
      uint64_t downgrade_time;
      int32_t upgraded;
    } ctl;
    struct {
      uint64_t creep;
      uint32_t need_time;
      uint64_t spawn_time;
    } spawn; /* creep 0: idle */
    struct {
      uint64_t next_decay;
    } decay; /* road, container */
    dw_creep creep;
    struct {
      uint8_t stype;
      int32_t progress, total;
    } site;
  } u;
} dw_obj;

typedef struct dw_room {
  char name[DW_ROOM_NAME_MAX];
  uint32_t ix, iy;           /* position in the world grid, 0..width-1, 0..height-1 */
  uint8_t terrain[DW_TILES]; /* y*50+x */
  dw_obj **objs;             /* sorted by id */
  uint32_t n, cap;
  bool touched;        /* changed since its hash was last computed */
  uint64_t hash;       /* of its encoding; valid unless touched */
  uint64_t saved_hash; /* as of the last saved(); write when it differs */
  bool ever_saved;
} dw_room;

typedef struct dw_player {
  uint64_t id;
  char username[DW_USERNAME_MAX + 1];
} dw_player;

typedef struct dw_world {
  sim_world base;
  uint64_t seed;
  uint32_t width, height;
  uint64_t time;
  uint64_t next_id; /* counter behind object ids */
  dw_room *rooms;
  size_t n_rooms;
  dw_player *players; /* sorted by id */
  size_t n_players, cap_players;
  /* id -> object: open addressing, linear probing, power-of-two capacity */
  dw_obj **index;
  size_t index_cap, index_n;
  uint64_t meta_saved_hash;
  bool meta_ever_saved;
} dw_world;

static inline dw_world *dw_of(sim_world *w) {
  return (dw_world *)w;
}
static inline const dw_world *dw_cof(const sim_world *w) {
  return (const dw_world *)w;
}

/* ----- world.c: objects, ids, players */
dw_obj *dw_find(const dw_world *w, uint64_t id);
/* A new object of `type` in room at x,y with a fresh id, zeroed, added to the room and the
 * index. NULL on allocation failure. */
dw_obj *dw_spawn_object(dw_world *w, uint32_t room, uint8_t type, int x, int y);
/* Adds an object whose id is already set (decode). SIM_EXISTS for a duplicate id. */
int dw_insert(dw_world *w, dw_obj *o);
/* Flags o dead (removed at the next sweep) and drops it from the index. */
void dw_kill(dw_world *w, dw_obj *o);
/* Frees dead objects of every room. */
void dw_sweep(dw_world *w);
/* Moves o to another room (keeps the id order of both rooms). SIM_NOMEM. */
int dw_move_room(dw_world *w, dw_obj *o, uint32_t room, int x, int y);
void dw_touch(dw_world *w, const dw_obj *o);
uint64_t dw_id_of_counter(uint64_t c);
uint64_t dw_counter_of_id(uint64_t id); /* the inverse */
/* "%015x" of id into buf (16 bytes). */
void dw_id_format(uint64_t id, char *buf);
/* Parses an id string: exactly 15 lowercase hex digits; 0 if not an id. */
uint64_t dw_id_parse(const char *s, size_t len);
const dw_player *dw_player_get(const dw_world *w, uint64_t id);
int dw_player_put(dw_world *w, uint64_t id, const char *username);
dw_world *dw_world_alloc(uint32_t width, uint32_t height, uint64_t seed);
void dw_world_free(dw_world *w);
void dw_room_name(uint32_t ix, uint32_t iy, uint32_t width, uint32_t height, char *out);
int dw_room_lookup(const dw_world *w, const char *name, size_t len, uint32_t *out);
/* The controller of a room, or NULL. */
dw_obj *dw_controller(const dw_world *w, uint32_t room);
/* Recomputes the hash of every touched room. SIM_NOMEM. */
int dw_rehash(dw_world *w);

/* Small helpers on objects. */
int dw_active_parts(const dw_obj *c, int part);
int dw_parts(const dw_obj *c, int part);
int dw_creep_capacity(const dw_obj *c);
static inline int dw_cheb(int ax, int ay, int bx, int by) {
  int dx = ax > bx ? ax - bx : bx - ax, dy = ay > by ? ay - by : by - ay;
  return dx > dy ? dx : dy;
}
bool dw_is_obstacle_type(int type);  /* OBSTACLE_OBJECT_TYPES */
bool dw_is_structure_type(int type); /* has a CONSTRUCTION_COST */
int dw_construction_cost(int stype);
int dw_controller_structures(int stype, int level);
/* Screeps' string names: types ("creep", "constructedWall"), parts ("work"). */
const char *dw_type_name(int type);
int dw_type_from_name(const char *s, size_t len); /* DW_T_NONE if unknown */
const char *dw_part_name(int part);
int dw_part_from_name(const char *s, size_t len); /* -1 if unknown */
extern const int DW_BODYPART_COST[DW_PARTS];
static const int8_t DW_DIR_DX[9] = {0, 0, 1, 1, 1, 0, -1, -1, -1};
static const int8_t DW_DIR_DY[9] = {0, -1, -1, 0, 1, 1, 1, 0, -1};
int dw_direction(int dx, int dy); /* 1..8, 0 for (0,0) */

/* ----- terrain.c: generation */
int dw_generate(dw_world *w);
/* Tiles reachable from (x, y) without crossing walls or obstacle objects (and `extra`
 * blocked tile, -1 for none), into seen[2500]; returns the count. */
int dw_flood(const dw_world *w, uint32_t room, int x, int y, int extra_block, uint8_t *seen);
bool dw_tile_blocked(const dw_world *w, uint32_t room, int x, int y); /* wall or obstacle */
int dw_place_spawn(dw_world *w, uint32_t room, int *x, int *y);

/* ----- encode.c */
int dw_encode_meta(const dw_world *w, sim_buf *b);
int dw_encode_room(const dw_world *w, uint32_t room, sim_buf *b);
int dw_encode_terrain(const dw_world *w, uint32_t room, sim_buf *b);
int dw_load(const sim_record *recs, size_t n, sim_world **out, char *err);
int dw_save(sim_world *sw, bool all, sim_put_fn put, void *ud);
void dw_saved(sim_world *sw);

/* ----- view.c */
int dw_room_view(const sim_world *sw, size_t room, sim_buf *out);
int dw_room_objects(const sim_world *sw, size_t room, sim_buf *out);
int dw_room_terrain(const sim_world *sw, size_t room, sim_buf *out);

/* ----- intents.c: parsing the wire format */
typedef struct dw_intent {
  uint8_t code;   /* SIM_DW_* */
  int32_t rc;     /* parse result: DW_OK, or the error that rejects it */
  uint32_t seq;   /* index in the player's array */
  uint32_t batch; /* index of the player's batch */
  uint64_t player;
  uint64_t subject; /* object id (0 for a room intent or a bad id) */
  uint32_t room;    /* SIM_DW_CREATE_SITE: room index */
  uint64_t target;  /* target object id */
  int32_t a, b;     /* direction | amount (-1: null) | x, y */
  uint8_t stype;    /* structure type of a site */
  bool flag;        /* say: isPublic */
  uint16_t str_len; /* name / message */
  char str[DW_NAME_MAX + 1];
  uint8_t n_body;
  uint8_t body[DW_MAX_CREEP_SIZE];
  bool has_energy; /* energyStructures given (else: Screeps' default order) */
  uint16_t n_energy;
  uint32_t energy_off; /* first of n_energy ids in the list's ids arena */
  uint8_t rtype;       /* resourceType: 0 energy, 1 another Screeps resource */
} dw_intent;

typedef struct dw_intent_list {
  dw_intent *v;
  size_t n, cap;
  uint64_t *ids; /* arena for energyStructures lists */
  size_t ids_n, ids_cap;
} dw_intent_list;

/* Parses one player's batch, appending to list. Returns SIM_OK, SIM_CORRUPT (syntax error:
 * the intents before it are kept), SIM_TOOBIG (cut at a limit), SIM_NOMEM. */
int dw_parse_intents(const dw_world *w, const char *data, size_t len, uint64_t player, uint32_t batch,
                     dw_intent_list *list);
void dw_intent_list_release(dw_intent_list *l);

/* ----- apply.c: the tick */
int dw_tick(sim_world *sw, uint64_t time, sim_intents *batches, size_t n);

/* ----- path.c */
int dw_host_find_path(const sim_host_ctx *ctx, const sim_arg *args, size_t nargs, sim_buf *str, double *num);
int dw_host_terrain(const sim_host_ctx *ctx, const sim_arg *args, size_t nargs, sim_buf *str, double *num);

#endif
