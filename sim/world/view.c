/*
 * view.c — the default world as JSON text: a room's view for player code, a room's objects
 * for subscribers (/api/game/room-objects, room:<NAME>), and its terrain.
 *
 * Both use one emitter per object type, so the player API and the web client see the
 * same Screeps field names ("_id", "type", "x", "y", "user", "store", "body", ...). The
 * view differs only where it makes the player's JSON.parse cheaper or must say more:
 * objects are an array (a fast array, not a dictionary keyed by ids), there is no
 * per-object "room", a creep's body is packed into one string (see below), and private
 * say messages are included with their isPublic flag (the JS API shows them to the owner
 * only; the public feed leaves them out).
 *
 * Written by hand, integers formatted in place and strings escaped — no allocation
 * per object, and the text for a room is a function of the room alone.
 */
#include "world.h"

#include <string.h>

typedef struct out {
  sim_buf *b;
  int rc;
} out;

/* Appends without the per-call bookkeeping of sim_buf_append: views are built every
 * tick, from hundreds of small pieces per object. The buffer is NUL-terminated at the
 * end (finish). */
static void raw(out *o, const char *s, size_t n) {
  if (o->rc != SIM_OK) return;
  sim_buf *b = o->b;
  if (b->len + n + 1 > b->cap && (o->rc = sim_buf_reserve(b, n < 4096 ? 4096 : n)) != SIM_OK) return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
}
static void lit(out *o, const char *s) {
  raw(o, s, strlen(s));
}
static void finish(out *o) {
  if (o->rc == SIM_OK) o->rc = sim_buf_reserve(o->b, 0);
  if (o->rc == SIM_OK) o->b->data[o->b->len] = 0;
}

static void unum(out *o, unsigned long long v) {
  char t[24];
  int i = 24;
  do {
    t[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  raw(o, t + i, (size_t)(24 - i));
}

static void num(out *o, long long v) {
  if (v < 0) {
    raw(o, "-", 1);
    unum(o, 0ull - (unsigned long long)v);
  } else {
    unum(o, (unsigned long long)v);
  }
}

/* A JSON string of UTF-8 bytes (valid by construction: everything stored was checked). */
static void jstr(out *o, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  lit(o, "\"");
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    raw(o, s + run, i - run);
    run = i + 1;
    if (c == '"')
      lit(o, "\\\"");
    else if (c == '\\')
      lit(o, "\\\\");
    else {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      raw(o, e, 6);
    }
  }
  raw(o, s + run, n - run);
  lit(o, "\"");
}

static void key(out *o, const char *k) {
  lit(o, ",\"");
  lit(o, k);
  lit(o, "\":");
}

static void user(out *o, uint64_t u) {
  if (!u) {
    lit(o, "null");
    return;
  }
  lit(o, "\"");
  unum(o, u);
  lit(o, "\"");
}

static void store(out *o, int32_t energy) {
  key(o, "store");
  lit(o, "{\"energy\":");
  num(o, energy);
  lit(o, "}");
}

static void hits(out *o, const dw_obj *x) {
  key(o, "hits");
  num(o, x->hits);
  key(o, "hitsMax");
  num(o, x->hits_max);
}

enum { MODE_VIEW, MODE_PUBLIC };

static void emit_object(out *o, const dw_world *w, const dw_obj *x, int mode) {
  char id[16];
  dw_id_format(x->id, id);
  lit(o, "{\"_id\":\"");
  lit(o, id);
  lit(o, "\",\"type\":\"");
  lit(o, dw_type_name(x->type));
  lit(o, "\",\"x\":");
  num(o, x->x);
  lit(o, ",\"y\":");
  num(o, x->y);
  if (mode == MODE_PUBLIC) {
    key(o, "room");
    jstr(o, w->rooms[x->room].name, strlen(w->rooms[x->room].name));
  }
  switch (x->type) {
    case DW_T_SOURCE:
      key(o, "energy");
      num(o, x->energy);
      key(o, "energyCapacity");
      num(o, x->energy_cap);
      key(o, "nextRegenerationTime");
      if (x->u.src.next_regen)
        unum(o, x->u.src.next_regen);
      else
        lit(o, "null");
      break;
    case DW_T_CONTROLLER: {
      int lvl = x->u.ctl.level;
      key(o, "user");
      user(o, x->user);
      key(o, "level");
      num(o, lvl);
      key(o, "progress");
      num(o, x->u.ctl.progress);
      key(o, "progressTotal");
      num(o, lvl >= 1 && lvl <= 7 ? DW_CONTROLLER_LEVELS[lvl] : 0);
      key(o, "downgradeTime");
      if (x->u.ctl.downgrade_time)
        unum(o, x->u.ctl.downgrade_time);
      else
        lit(o, "null");
      break;
    }
    case DW_T_SPAWN: {
      key(o, "name");
      jstr(o, x->name, strlen(x->name));
      key(o, "user");
      user(o, x->user);
      store(o, x->energy);
      key(o, "storeCapacityResource");
      lit(o, "{\"energy\":");
      num(o, x->energy_cap);
      lit(o, "}");
      hits(o, x);
      key(o, "spawning");
      const dw_obj *c = x->u.spawn.creep ? dw_find(w, x->u.spawn.creep) : NULL;
      if (c) {
        lit(o, "{\"name\":");
        jstr(o, c->name, strlen(c->name));
        lit(o, ",\"needTime\":");
        num(o, x->u.spawn.need_time);
        lit(o, ",\"spawnTime\":");
        unum(o, x->u.spawn.spawn_time);
        lit(o, "}");
      } else {
        lit(o, "null");
      }
      break;
    }
    case DW_T_EXTENSION:
    case DW_T_TOWER:
      key(o, "user");
      user(o, x->user);
      store(o, x->energy);
      key(o, "storeCapacityResource");
      lit(o, "{\"energy\":");
      num(o, x->energy_cap);
      lit(o, "}");
      hits(o, x);
      break;
    case DW_T_ROAD:
      hits(o, x);
      key(o, "nextDecayTime");
      unum(o, x->u.decay.next_decay);
      break;
    case DW_T_WALL: hits(o, x); break;
    case DW_T_CONTAINER:
      store(o, x->energy);
      key(o, "storeCapacity");
      num(o, x->energy_cap);
      hits(o, x);
      key(o, "nextDecayTime");
      unum(o, x->u.decay.next_decay);
      break;
    case DW_T_CREEP: {
      const dw_creep *c = &x->u.creep;
      key(o, "name");
      jstr(o, x->name, strlen(x->name));
      key(o, "user");
      user(o, x->user);
      key(o, "body");
      if (mode == MODE_VIEW) {
        /* The view packs the body as one letter per part ("wcm"), and the parts' hits
         * only when one is damaged: JSON.parse then makes one string instead of an
         * object per part; the JS API builds creep.body when it is read. */
        static const char letters[DW_PARTS] = {'m', 'w', 'c', 'a', 'r', 't', 'h', 'k'};
        char packed[DW_MAX_CREEP_SIZE + 2];
        bool damaged = false;
        packed[0] = '"';
        for (int i = 0; i < c->n; i++) {
          packed[1 + i] = letters[c->part[i]];
          damaged |= c->part_hits[i] != DW_BODYPART_HITS;
        }
        packed[1 + c->n] = '"';
        raw(o, packed, (size_t)c->n + 2);
        if (damaged) {
          key(o, "bodyHits");
          lit(o, "[");
          for (int i = 0; i < c->n; i++) {
            if (i) lit(o, ",");
            num(o, c->part_hits[i]);
          }
          lit(o, "]");
        }
      } else {
        lit(o, "[");
        for (int i = 0; i < c->n; i++) {
          lit(o, i ? ",{\"type\":\"" : "{\"type\":\"");
          lit(o, dw_part_name(c->part[i]));
          lit(o, "\",\"hits\":");
          num(o, c->part_hits[i]);
          lit(o, "}");
        }
        lit(o, "]");
      }
      store(o, x->energy);
      key(o, "storeCapacity");
      num(o, x->energy_cap);
      key(o, "fatigue");
      num(o, c->fatigue);
      hits(o, x);
      key(o, "spawning");
      lit(o, c->spawning ? "true" : "false");
      if (c->age_time) {
        key(o, "ageTime");
        unum(o, c->age_time);
      }
      if (c->say_len && (mode == MODE_VIEW || c->say_public)) {
        key(o, "actionLog");
        lit(o, "{\"say\":{\"message\":");
        jstr(o, c->say, c->say_len);
        lit(o, c->say_public ? ",\"isPublic\":true}}" : ",\"isPublic\":false}}");
      }
      break;
    }
    case DW_T_SITE:
      key(o, "structureType");
      lit(o, "\"");
      lit(o, dw_type_name(x->u.site.stype));
      lit(o, "\"");
      key(o, "user");
      user(o, x->user);
      key(o, "progress");
      num(o, x->u.site.progress);
      key(o, "progressTotal");
      num(o, x->u.site.total);
      if (x->name[0]) {
        key(o, "name");
        jstr(o, x->name, strlen(x->name));
      }
      break;
    case DW_T_ENERGY:
      key(o, "energy");
      num(o, x->energy);
      key(o, "resourceType");
      lit(o, "\"energy\"");
      break;
    default: break;
  }
  lit(o, "}");
}

/* "users":{...}: the owners of the room's objects, in increasing user id. */
static void emit_users(out *o, const dw_world *w, const dw_room *r) {
  size_t n = 0;
  key(o, "users");
  lit(o, "{");
  /* Owners in increasing id order: repeatedly take the smallest not yet written. */
  uint64_t last = 0;
  for (;;) {
    uint64_t next = 0;
    for (uint32_t i = 0; i < r->n; i++) {
      uint64_t u = r->objs[i]->user;
      if (!r->objs[i]->dead && u > last && (!next || u < next)) next = u;
    }
    if (!next) break;
    const dw_player *p = dw_player_get(w, next);
    if (n) lit(o, ",");
    lit(o, "\"");
    unum(o, next);
    lit(o, "\":{\"_id\":\"");
    unum(o, next);
    lit(o, "\",\"username\":");
    jstr(o, p ? p->username : "", p ? strlen(p->username) : 0);
    lit(o, ",\"badge\":{}}");
    n++;
    last = next;
  }
  lit(o, "}");
}

int dw_room_view(const sim_world *sw, size_t room, sim_buf *b) {
  const dw_world *w = dw_cof(sw);
  const dw_room *r = &w->rooms[room];
  out o = {b, SIM_OK};
  long long avail = 0, cap = 0;
  const dw_obj *ctl = dw_controller(w, (uint32_t)room);
  for (uint32_t i = 0; i < r->n; i++) {
    const dw_obj *x = r->objs[i];
    if (x->dead || (x->type != DW_T_SPAWN && x->type != DW_T_EXTENSION)) continue;
    if (ctl && ctl->user && x->user != ctl->user) continue;
    avail += x->energy;
    cap += x->energy_cap;
  }
  lit(&o, "{\"room\":");
  jstr(&o, r->name, strlen(r->name));
  key(&o, "energyAvailable");
  num(&o, avail);
  key(&o, "energyCapacityAvailable");
  num(&o, cap);
  key(&o, "objects");
  lit(&o, "[");
  bool first = true;
  for (uint32_t i = 0; i < r->n; i++) {
    if (r->objs[i]->dead) continue;
    if (!first) lit(&o, ",");
    first = false;
    emit_object(&o, w, r->objs[i], MODE_VIEW);
  }
  lit(&o, "]");
  emit_users(&o, w, r);
  lit(&o, "}");
  finish(&o);
  return o.rc;
}

int dw_room_objects(const sim_world *sw, size_t room, sim_buf *b) {
  const dw_world *w = dw_cof(sw);
  const dw_room *r = &w->rooms[room];
  out o = {b, SIM_OK};
  lit(&o, "{\"objects\":{");
  bool first = true;
  for (uint32_t i = 0; i < r->n; i++) {
    const dw_obj *x = r->objs[i];
    if (x->dead) continue;
    char id[16];
    dw_id_format(x->id, id);
    lit(&o, first ? "\"" : ",\"");
    first = false;
    lit(&o, id);
    lit(&o, "\":");
    emit_object(&o, w, x, MODE_PUBLIC);
  }
  lit(&o, "}");
  emit_users(&o, w, r);
  lit(&o, "}");
  finish(&o);
  return o.rc;
}

int dw_room_terrain(const sim_world *sw, size_t room, sim_buf *b) {
  const dw_world *w = dw_cof(sw);
  char t[DW_TILES];
  for (int i = 0; i < DW_TILES; i++) t[i] = (char)('0' + w->rooms[room].terrain[i]);
  return sim_buf_append(b, t, sizeof t);
}
