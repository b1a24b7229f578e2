/*
 * seed.c — two demo players for a new data directory, so that a first `make run` shows
 * a world that ticks: alice's code logs every tick, keeps a count in Memory and shows
 * the persistent global at work; bob runs a starter bot in the world (creeps harvest,
 * fill the spawn, upgrade the controller: watch his room on the page). `--no-demo` leaves a new data directory empty.
 *
 * They have no password, so nobody can sign in as them: they are there to be watched.
 */
#include "server.h"

#include <stdio.h>
#include <string.h>

static const char ALICE_MAIN[] =
    "// Demo player: counts ticks in Memory (saved every tick) and in the global\n"
    "// (kept between ticks until the code changes).\n"
    "global.runs = (global.runs || 0) + 1;\n"
    "module.exports.loop = function () {\n"
    "  Memory.ticks = (Memory.ticks || 0) + 1;\n"
    "  global.runs++;\n"
    "  console.log(`hello from tick ${Game.time}: Memory.ticks=${Memory.ticks}, this global has run ` +\n"
    "              `${global.runs} times, CPU ${Game.cpu.getUsed().toFixed(2)} ms of ${Game.cpu.limit}, ` +\n"
    "              `bucket ${Game.cpu.bucket}`);\n"
    "};\n";

/* Demo player bob: the starter bot of server/demo/ (harvesters, upgraders, a builder). */
extern const char srv_demo_main[], srv_demo_role_harvester[], srv_demo_role_upgrader[], srv_demo_role_builder[];

static int put_user(srv *s, store_txn *txn, const char *name, const char *const *mods, const char *const *srcs,
                    size_t n) {
  store_user u;
  memset(&u, 0, sizeof u);
  snprintf(u.username, sizeof u.username, "%s", name);
  sbx_module m[4];
  for (size_t i = 0; i < n && i < 4; i++) m[i] = (sbx_module){mods[i], srcs[i], strlen(srcs[i]), false};
  return srv_user_create(s, txn, &u, m, n);
}

int srv_seed_demo(srv *s, store_txn *txn) {
  const char *am[] = {"main"}, *as[] = {ALICE_MAIN};
  const char *bm[] = {"main", "role.harvester", "role.upgrader", "role.builder"};
  const char *bs[] = {srv_demo_main, srv_demo_role_harvester, srv_demo_role_upgrader, srv_demo_role_builder};
  int rc = put_user(s, txn, "alice", am, as, 1);
  if (rc == STORE_OK) rc = put_user(s, txn, "bob", bm, bs, 4);
  return rc;
}
