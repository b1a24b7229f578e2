/*
 * seed.c — two demo players for a new data directory, so that a first `make run` shows
 * a world that ticks: their code logs every tick, keeps a count in Memory and shows the
 * persistent global at work. `--no-demo` leaves a new data directory empty.
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

static const char BOB_MAIN[] =
    "// Demo player: two modules; finds the next prime every tick and remembers it.\n"
    "const primes = require('lib.primes');\n"
    "module.exports.loop = function () {\n"
    "  const last = Memory.lastPrime || 1;\n"
    "  Memory.lastPrime = primes.next(last);\n"
    "  Memory.found = (Memory.found || 0) + 1;\n"
    "  if (Game.time % 5 === 0) console.log(`prime #${Memory.found} is ${Memory.lastPrime}`);\n"
    "};\n";

static const char BOB_PRIMES[] =
    "module.exports.next = function (n) {\n"
    "  for (let c = n + 1; ; c++) {\n"
    "    let prime = c > 1;\n"
    "    for (let d = 2; d * d <= c; d++) if (c % d === 0) { prime = false; break; }\n"
    "    if (prime) return c;\n"
    "  }\n"
    "};\n";

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
  const char *bm[] = {"main", "lib.primes"}, *bs[] = {BOB_MAIN, BOB_PRIMES};
  int rc = put_user(s, txn, "alice", am, as, 1);
  if (rc == STORE_OK) rc = put_user(s, txn, "bob", bm, bs, 2);
  return rc;
}
