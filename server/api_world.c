/*
 * api_world.c — the world's HTTP endpoints (PROTOCOL.md "World"):
 *
 *   GET  /api/game/room-terrain?room=W1N1[&encoded=1]
 *        encoded: {ok, terrain:[{_id, room, terrain:"<2500 digits>", type:"terrain"}]}
 *        else:    {ok, terrain:[{room, x, y, type:"wall"|"swamp"}, ...]} (plain tiles left out)
 *   GET  /api/game/world-size               {ok, width, height} in rooms
 *   GET  /api/game/room-objects?room=W1N1   {ok, objects:[...], users:{...}}
 *   POST /api/game/place-spawn {room, x, y, name}   {ok} — only for a player without a room
 *   GET  /api/user/world-status             {ok, status:"empty"|"normal"|"lost"}
 *   GET  /api/user/world-start-room         {ok, room:["W1N1"]}
 *   GET  /api/user/rooms?id=<user id>       {ok, rooms:[...]}
 *
 * The world belongs to the tick thread, so every read is a query (srv_query_submit): it
 * runs between two ticks, builds the answer's text there, and the loop thread sends it.
 * place-spawn is an op: the world changes and its rooms are saved in the op's txn.
 */
#include "api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ queries */

typedef enum { Q_TERRAIN, Q_TERRAIN_ENCODED, Q_SIZE, Q_OBJECTS, Q_STATUS, Q_START_ROOM, Q_ROOMS } q_kind;

typedef struct wquery {
  web_req *req;
  q_kind kind;
  uint64_t uid;
  char room[16];
  char *answer;  /* JSON text, built on the tick thread */
  char err[160]; /* else: a logical error */
} wquery;

static int lit(sim_buf *b, const char *s) {
  return sim_buf_append(b, s, strlen(s));
}

/* A JSON array of room names. */
static int rooms_json(sim_buf *b, const sim_world *w, const size_t *rooms, size_t n) {
  int rc = lit(b, "[");
  for (size_t i = 0; rc == SIM_OK && i < n; i++) {
    if (i) rc = lit(b, ",");
    if (rc == SIM_OK) rc = lit(b, "\"");
    if (rc == SIM_OK) rc = lit(b, sim_world_room_name(w, rooms[i]));
    if (rc == SIM_OK) rc = lit(b, "\"");
  }
  return rc == SIM_OK ? lit(b, "]") : rc;
}

static int terrain_answer(const sim_world *w, size_t room, bool encoded, sim_buf *b) {
  sim_buf t;
  sim_buf_init(&t);
  int rc = sim_world_room_terrain(w, room, &t);
  const char *name = sim_world_room_name(w, room);
  char head[96];
  if (rc == SIM_OK && t.len != 2500) rc = SIM_CORRUPT;
  if (rc == SIM_OK && encoded) {
    snprintf(head, sizeof head, "{\"ok\":1,\"terrain\":[{\"_id\":\"%s\",\"room\":\"%s\",\"terrain\":\"", name, name);
    rc = lit(b, head);
    if (rc == SIM_OK) rc = sim_buf_append(b, t.data, t.len);
    if (rc == SIM_OK) rc = lit(b, "\",\"type\":\"terrain\"}]}");
  } else if (rc == SIM_OK) {
    rc = lit(b, "{\"ok\":1,\"terrain\":[");
    bool first = true;
    for (int i = 0; rc == SIM_OK && i < 2500; i++) {
      if (t.data[i] == '0') continue;
      /* Screeps' mask: 1 wall, 2 swamp, 3 both (a wall) */
      snprintf(head, sizeof head, "%s{\"room\":\"%s\",\"x\":%d,\"y\":%d,\"type\":\"%s\"}", first ? "" : ",", name, i % 50,
               i / 50, (t.data[i] - '0') & 1 ? "wall" : "swamp");
      rc = lit(b, head);
      first = false;
    }
    if (rc == SIM_OK) rc = lit(b, "]}");
  }
  sim_buf_release(&t);
  return rc;
}

/* Tick thread. */
static int query_run(srv *s, store_txn *txn, void *ud) {
  (void)txn;
  wquery *q = ud;
  const sim_world *w = srv_world_get(s);
  if (!w) {
    snprintf(q->err, sizeof q->err, "this server has no world");
    return 1;
  }
  sim_buf b;
  sim_buf_init(&b);
  size_t room = 0, rooms[64], n = 0;
  int rc = SIM_OK;
  bool by_room = q->kind == Q_TERRAIN || q->kind == Q_TERRAIN_ENCODED || q->kind == Q_OBJECTS;
  if (by_room && sim_world_room_index(w, q->room, &room) != SIM_OK) {
    snprintf(q->err, sizeof q->err, "invalid room");
    return 1;
  }
  char num[128];
  switch (q->kind) {
    case Q_TERRAIN:
    case Q_TERRAIN_ENCODED: rc = terrain_answer(w, room, q->kind == Q_TERRAIN_ENCODED, &b); break;
    case Q_OBJECTS: rc = sim_room_objects_api(w, room, &b); break;
    case Q_SIZE:
      snprintf(num, sizeof num, "{\"ok\":1,\"width\":%u,\"height\":%u}", srv_world_size(s), srv_world_size(s));
      rc = lit(&b, num);
      break;
    case Q_STATUS: {
      size_t seen = 0;
      rc = sim_world_owned_rooms(w, q->uid, rooms, 64, &n);
      if (rc == SIM_OK && n == 0) rc = sim_world_visible_rooms(w, q->uid, rooms, 64, &seen);
      if (rc == SIM_OK)
        rc = lit(&b, n ? "{\"ok\":1,\"status\":\"normal\"}"
                       : seen ? "{\"ok\":1,\"status\":\"lost\"}" : "{\"ok\":1,\"status\":\"empty\"}");
      break;
    }
    case Q_START_ROOM: {
      rc = sim_world_owned_rooms(w, q->uid, rooms, 64, &n);
      char name[16] = "";
      if (rc == SIM_OK && n) snprintf(name, sizeof name, "%s", sim_world_room_name(w, rooms[0]));
      if (rc == SIM_OK && !n && sim_world_suggest_room(w, name) != SIM_OK)
        snprintf(name, sizeof name, "%s", sim_world_room_name(w, 0));
      snprintf(num, sizeof num, "{\"ok\":1,\"room\":[\"%s\"]}", name);
      if (rc == SIM_OK) rc = lit(&b, num);
      break;
    }
    case Q_ROOMS:
      rc = sim_world_owned_rooms(w, q->uid, rooms, 64, &n);
      if (n > 64) n = 64;
      if (rc == SIM_OK) rc = lit(&b, "{\"ok\":1,\"rooms\":");
      if (rc == SIM_OK) rc = rooms_json(&b, w, rooms, n);
      if (rc == SIM_OK) rc = lit(&b, "}");
      break;
  }
  if (rc != SIM_OK) {
    sim_buf_release(&b);
    snprintf(q->err, sizeof q->err, "the world could not answer: %s", sim_strerror(rc));
    return 1;
  }
  q->answer = b.data; /* the buffer's memory is the answer's */
  return 0;
}

/* Loop thread. */
static void query_done(srv *s, int status, void *ud) {
  (void)s;
  wquery *q = ud;
  if (status == 0 && q->answer)
    web_respond_json(q->req, 200, q->answer);
  else if (status > 0)
    api_fail(q->req, q->err);
  else
    api_op_failed(q->req, status);
  free(q->answer);
  free(q);
}

static void query(srv_api *api, web_req *req, q_kind kind, uint64_t uid, const char *room) {
  wquery *q = calloc(1, sizeof *q);
  if (!q) {
    web_respond_error(req, 500, "out of memory");
    return;
  }
  q->req = req;
  q->kind = kind;
  q->uid = uid;
  if (room) snprintf(q->room, sizeof q->room, "%s", room);
  int rc = srv_query_submit(api->s, query_run, query_done, q);
  if (rc != 0) {
    api_op_failed(req, rc);
    free(q);
  }
}

/* A room name from the query string, or NULL after answering the request. */
static const char *room_param(web_req *req) {
  const char *room = web_req_query(req, "room");
  if (!room || !*room || strlen(room) >= 16) {
    api_fail(req, "invalid room");
    return NULL;
  }
  return room;
}

static void h_room_terrain(web_req *req, void *ud) {
  const char *room = room_param(req);
  if (!room) return;
  const char *enc = web_req_query(req, "encoded");
  bool encoded = enc && strcmp(enc, "0") && strcmp(enc, "false");
  query(ud, req, encoded ? Q_TERRAIN_ENCODED : Q_TERRAIN, 0, room);
}

static void h_room_objects(web_req *req, void *ud) {
  const char *room = room_param(req);
  if (room) query(ud, req, Q_OBJECTS, 0, room);
}

static void h_world_size(web_req *req, void *ud) {
  query(ud, req, Q_SIZE, 0, NULL);
}

static void h_world_status(web_req *req, void *ud) {
  store_user u;
  if (api_authenticate(ud, req, &u)) query(ud, req, Q_STATUS, u.id, NULL);
}

static void h_start_room(web_req *req, void *ud) {
  store_user u;
  if (api_authenticate(ud, req, &u)) query(ud, req, Q_START_ROOM, u.id, NULL);
}

static void h_user_rooms(web_req *req, void *ud) {
  const char *id = web_req_query(req, "id");
  char *end = NULL;
  unsigned long long v = id && *id >= '1' && *id <= '9' ? strtoull(id, &end, 10) : 0;
  if (!v || !end || *end) {
    api_fail(req, "invalid id");
    return;
  }
  query(ud, req, Q_ROOMS, (uint64_t)v, NULL);
}

/* ------------------------------------------------------------------ place-spawn */

typedef struct spawn_op {
  uop o;
  char username[64];
  char room[16];
  char name[64];
  int x, y;
} spawn_op;

static int spawn_prepare(srv *s, store_txn *txn, void *ud) {
  spawn_op *c = ud;
  const sim_world *w = srv_world_get(s);
  if (!w) return api_uop_refuse(&c->o, "this server has no world");
  size_t rooms[1], n = 0;
  if (sim_world_owned_rooms(w, c->o.uid, rooms, 1, &n) == SIM_OK && n)
    return api_uop_refuse(&c->o, "already playing");
  char got[16];
  int rc = srv_world_join(s, txn, c->o.uid, c->username, c->room, c->x, c->y, c->name, got);
  switch (rc) {
    case SIM_OK: return 0;
    case SIM_EXISTS: return api_uop_refuse(&c->o, "already playing");
    case SIM_NOTFOUND: return api_uop_refuse(&c->o, "invalid room");
    case SIM_NOROOM: return api_uop_refuse(&c->o, "invalid position: the room is taken, or the tile is not free");
    case SIM_INVALID: return api_uop_refuse(&c->o, "invalid params");
    default: return STORE_NOMEM;
  }
}

static void h_place_spawn(web_req *req, void *ud) {
  json_t *body;
  store_user u;
  spawn_op *c = api_uop_begin(ud, req, sizeof *c, NULL, &body, &u);
  if (!c) return;
  snprintf(c->username, sizeof c->username, "%s", u.username);
  const char *room = api_jstr(body, "room"), *name = api_jstr(body, "name");
  json_t *jx = json_object_get(body, "x"), *jy = json_object_get(body, "y");
  int rc = 0;
  if (!room || !*room || strlen(room) >= sizeof c->room) rc = api_uop_refuse(&c->o, "invalid room");
  if (!rc && (!json_is_integer(jx) || !json_is_integer(jy) || json_integer_value(jx) < 0 ||
              json_integer_value(jx) > 49 || json_integer_value(jy) < 0 || json_integer_value(jy) > 49))
    rc = api_uop_refuse(&c->o, "invalid params");
  if (!rc && name && strlen(name) >= sizeof c->name) rc = api_uop_refuse(&c->o, "invalid name");
  if (!rc) {
    snprintf(c->room, sizeof c->room, "%s", room);
    snprintf(c->name, sizeof c->name, "%s", name ? name : "");
    c->x = (int)json_integer_value(jx);
    c->y = (int)json_integer_value(jy);
  }
  json_decref(body);
  if (rc) {
    api_fail(req, c->o.err);
    api_uop_free(&c->o);
    return;
  }
  api_uop_submit(&c->o, spawn_prepare, NULL);
}

int api_world_install(srv_api *api) {
  web *w = api->w;
  int rc;
  if ((rc = web_route(w, "GET", "/api/game/room-terrain", h_room_terrain, api)) ||
      (rc = web_route(w, "GET", "/api/game/room-objects", h_room_objects, api)) ||
      (rc = web_route(w, "GET", "/api/game/world-size", h_world_size, api)) ||
      (rc = web_route(w, "POST", "/api/game/place-spawn", h_place_spawn, api)) ||
      (rc = web_route(w, "GET", "/api/user/world-status", h_world_status, api)) ||
      (rc = web_route(w, "GET", "/api/user/world-start-room", h_start_room, api)) ||
      (rc = web_route(w, "GET", "/api/user/rooms", h_user_rooms, api)))
    return rc;
  return 0;
}
