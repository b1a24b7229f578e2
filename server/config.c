/*
 * config.c — the server's configuration: defaults, a config file, command-line flags.
 *
 * The file has one `key = value` per line (`#` starts a comment); its keys are the long
 * flags without their dashes (`tick-ms = 500`). Flags given on the command line win
 * over the file. Every value is checked; a bad one stops the server with a message
 * naming the flag or the file and line.
 */
#include "server.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fprintf(f,
          "Usage: isoworld [options]\n"
          "A Screeps-style game server: every tick each player's JavaScript runs in its own\n"
          "persistent V8 isolate under CPU, wall-time and heap budgets; the world is committed\n"
          "to LMDB once per tick. HTTP (Screeps private-server protocol) on --bind:--port.\n\n"
          "  --config FILE      read options from FILE (key = value lines; keys are these flags)\n"
          "  --data-dir DIR     LMDB data directory (default ./data; created if missing)\n"
          "  --bind ADDR        address for HTTP and websockets (default 0.0.0.0)\n"
          "  --port N           TCP port (default 21025, Screeps' own)\n"
          "  --tick-ms MS       tick interval in ms (default 1000; 0 = as fast as possible)\n"
          "  --workers N        threads running players (default: number of cores)\n"
          "  --cpu-limit MS     Game.cpu.limit of new players (default 100)\n"
          "  --heap-mb MB       heap limit of each player's isolate (default 256)\n"
          "  --wall-ms MS       wall-clock budget of one run (default 2 x tickLimit + 50)\n"
          "  --hard-ms MS       give up on a run stuck in a builtin after MS (default 5000)\n"
          "  --max-ticks N      stop after N ticks (default: run until SIGINT/SIGTERM)\n"
          "  --registration open|closed\n"
          "                     whether anyone may register at /api/register/submit (default open)\n"
          "  --token-ttl S      lifetime of a session token in seconds; each authenticated\n"
          "                     response carries a fresh one (default 3600)\n"
          "  --admin-port N     port of the admin API (default: --port + 1, i.e. 21026; with\n"
          "                     --port 0 an ephemeral one). isoworld-admin finds it in\n"
          "                     DIR/admin.json and its token in DIR/admin.token (mode 0600)\n"
          "  --admin-bind ADDR  address of the admin API (default 127.0.0.1: loopback only)\n"
          "  --admin-remote     let the admin API answer clients not on loopback (needs\n"
          "                     --admin-bind; the token is then all that protects it)\n"
          "  --backup-dir DIR   admin backups only under DIR (default: anywhere the server\n"
          "                     may write; with --admin-remote, only <data-dir>/backups)\n"
          "  --no-admin         no admin API\n"
          "  --paused           start with time paused (isoworld-admin world resume)\n"
          "  --static-dir DIR   the browser page served at / (default: share/isoworld/client\n"
          "                     beside the binary's bin/, as built; 'none' serves no page)\n"
          "  --ws-queue-kb N    websocket: bytes queued per connection before its oldest\n"
          "                     frames are dropped (default 1024)\n"
          "  --ws-stall-s S     websocket: close a connection that has read nothing for S\n"
          "                     seconds while its frames were being dropped (default 30)\n"
          "  --world-size N     rooms a side of the world generated for a new data directory\n"
          "                     (default 3: W1N1..W3N3; at most 64)\n"
          "  --world-seed N     seed of that world's terrain (default 1)\n"
          "  --no-auto-spawn    new users get no room until POST /api/game/place-spawn\n"
          "                     (default: the server gives each a free room and Spawn1)\n"
          "  --no-demo          do not seed the two demo players into a new data directory\n"
          "  --quiet            do not echo players' console output\n"
          "  --stats-every N    print a tick summary every N ticks (default 10; 0 = never)\n"
          "  --nosync           do not fsync each tick's commit (benchmarks only: a machine\n"
          "                     crash may then lose recent ticks)\n"
          "  --version          print the version and exit\n"
          "  -h, --help         this text\n");
}

static void defaults(srv_config *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->data_dir, sizeof c->data_dir, "./data");
  snprintf(c->bind, sizeof c->bind, "0.0.0.0");
  c->port = 21025;
  c->tick_ms = 1000;
  c->cpu_limit = 100;
  c->heap_mb = 256;
  c->demo = true;
  c->stats_every = 10;
  c->registration = true;
  c->token_ttl_s = 3600;
  c->ws_queue_kb = 1024;
  c->ws_stall_s = 30;
  snprintf(c->admin_bind, sizeof c->admin_bind, "127.0.0.1");
  c->admin_port = -1; /* --port + 1 */
  c->admin = true;
  c->world_size = 3;
  c->world_seed = 1;
  c->auto_spawn = true;
}

static int parse_int(const char *key, const char *v, long lo, long hi, long *out, const char *where) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  while (*end && isspace((unsigned char)*end)) end++;
  if (errno || end == v || *end || n < lo || n > hi) {
    fprintf(stderr, "isoworld: %s%s'%s' for %s: expected a whole number from %ld to %ld\n", where ? where : "",
            where ? ": " : "", v, key, lo, hi);
    return -1;
  }
  *out = n;
  return 0;
}

static int set_string(char *dst, size_t cap, const char *key, const char *v, const char *where) {
  if (!*v || strlen(v) >= cap) {
    fprintf(stderr, "isoworld: %s%s%s must be 1 to %zu characters\n", where ? where : "", where ? ": " : "", key,
            cap - 1);
    return -1;
  }
  memcpy(dst, v, strlen(v) + 1);
  return 0;
}

/* Applies one option; `where` names the file and line for messages (NULL: command line). */
static int apply(srv_config *c, const char *key, const char *v, const char *where) {
  long n;
  if (!strcmp(key, "data-dir")) return set_string(c->data_dir, sizeof c->data_dir, key, v, where);
  if (!strcmp(key, "bind")) return set_string(c->bind, sizeof c->bind, key, v, where);
  if (!strcmp(key, "static-dir")) return set_string(c->static_dir, sizeof c->static_dir, key, v, where);
  if (!strcmp(key, "ws-queue-kb"))
    return parse_int(key, v, 16, 1024 * 1024, &n, where) ? -1 : (c->ws_queue_kb = (int)n, 0);
  if (!strcmp(key, "ws-stall-s")) return parse_int(key, v, 1, 86400, &n, where) ? -1 : (c->ws_stall_s = (int)n, 0);
  if (!strcmp(key, "admin-bind")) return set_string(c->admin_bind, sizeof c->admin_bind, key, v, where);
  if (!strcmp(key, "backup-dir")) return set_string(c->backup_dir, sizeof c->backup_dir, key, v, where);
  if (!strcmp(key, "admin-port")) return parse_int(key, v, 0, 65535, &n, where) ? -1 : (c->admin_port = (int)n, 0);
  if (!strcmp(key, "port")) return parse_int(key, v, 0, 65535, &n, where) ? -1 : (c->port = (int)n, 0);
  if (!strcmp(key, "tick-ms")) return parse_int(key, v, 0, 3600000, &n, where) ? -1 : (c->tick_ms = (int)n, 0);
  if (!strcmp(key, "workers")) return parse_int(key, v, 0, 256, &n, where) ? -1 : (c->workers = (int)n, 0);
  if (!strcmp(key, "cpu-limit")) return parse_int(key, v, 1, 10000, &n, where) ? -1 : (c->cpu_limit = (int)n, 0);
  if (!strcmp(key, "heap-mb")) return parse_int(key, v, 16, 4096, &n, where) ? -1 : (c->heap_mb = (int)n, 0);
  if (!strcmp(key, "wall-ms")) return parse_int(key, v, 0, 600000, &n, where) ? -1 : (c->wall_ms = (int)n, 0);
  if (!strcmp(key, "hard-ms")) return parse_int(key, v, 0, 600000, &n, where) ? -1 : (c->hard_ms = (int)n, 0);
  if (!strcmp(key, "max-ticks"))
    return parse_int(key, v, 0, LONG_MAX, &n, where) ? -1 : (c->max_ticks = (uint64_t)n, 0);
  if (!strcmp(key, "stats-every")) return parse_int(key, v, 0, 1000000, &n, where) ? -1 : (c->stats_every = (int)n, 0);
  if (!strcmp(key, "world-size")) return parse_int(key, v, 1, SIM_DW_MAX_ROOMS_SIDE, &n, where) ? -1 : (c->world_size = (int)n, 0);
  if (!strcmp(key, "world-seed"))
    return parse_int(key, v, 0, LONG_MAX, &n, where) ? -1 : (c->world_seed = (uint64_t)n, 0);
  if (!strcmp(key, "token-ttl")) return parse_int(key, v, 5, 30 * 86400, &n, where) ? -1 : (c->token_ttl_s = (int)n, 0);
  if (!strcmp(key, "registration")) {
    if (!strcmp(v, "open") || !strcmp(v, "closed")) {
      c->registration = !strcmp(v, "open");
      return 0;
    }
    fprintf(stderr, "isoworld: %s%s'%s' for registration: expected open or closed\n", where ? where : "",
            where ? ": " : "", v);
    return -1;
  }
  bool on = !strcmp(v, "") || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on");
  bool off = !strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off");
  if (!strcmp(key, "no-demo") || !strcmp(key, "quiet") || !strcmp(key, "nosync") || !strcmp(key, "demo") ||
      !strcmp(key, "admin-remote") || !strcmp(key, "no-admin") || !strcmp(key, "admin") || !strcmp(key, "paused") ||
      !strcmp(key, "no-auto-spawn") || !strcmp(key, "auto-spawn")) {
    if (!on && !off) {
      fprintf(stderr, "isoworld: %s%s'%s' for %s: expected true or false\n", where ? where : "", where ? ": " : "", v,
              key);
      return -1;
    }
    if (!strcmp(key, "no-demo")) c->demo = !on;
    if (!strcmp(key, "demo")) c->demo = on;
    if (!strcmp(key, "quiet")) c->quiet = on;
    if (!strcmp(key, "nosync")) c->nosync = on;
    if (!strcmp(key, "admin-remote")) c->admin_remote = on;
    if (!strcmp(key, "no-admin")) c->admin = !on;
    if (!strcmp(key, "admin")) c->admin = on;
    if (!strcmp(key, "paused")) c->paused = on;
    if (!strcmp(key, "no-auto-spawn")) c->auto_spawn = !on;
    if (!strcmp(key, "auto-spawn")) c->auto_spawn = on;
    return 0;
  }
  fprintf(stderr, "isoworld: %s%sunknown option '%s' (see --help)\n", where ? where : "", where ? ": " : "", key);
  return -1;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

static int load_file(srv_config *c, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "isoworld: cannot read config file %s: %s\n", path, strerror(errno));
    return -1;
  }
  char line[2048], where[1200];
  int lineno = 0, rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    snprintf(where, sizeof where, "%s:%d", path, lineno);
    if (!strchr(line, '\n') && !feof(f)) {
      fprintf(stderr, "isoworld: %s: line too long\n", where);
      rc = -1;
      break;
    }
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *s = trim(line);
    if (!*s) continue;
    char *eq = strchr(s, '=');
    char *key = s, *val = (char *)"";
    if (eq) {
      *eq = 0;
      key = trim(s);
      val = trim(eq + 1);
    }
    if (!strcmp(key, "config")) {
      fprintf(stderr, "isoworld: %s: a config file cannot include another\n", where);
      rc = -1;
      break;
    }
    rc = apply(c, key, val, where);
  }
  fclose(f);
  return rc;
}

int srv_config_load(srv_config *c, int argc, char **argv) {
  defaults(c);
  enum {
    O_CONFIG = 256,
    O_NODEMO,
    O_QUIET,
    O_NOSYNC,
    O_VERSION,
    O_ADMIN_PORT,
    O_ADMIN_BIND,
    O_ADMIN_REMOTE,
    O_NO_ADMIN,
    O_PAUSED,
    O_BACKUP_DIR,
    O_WORLD_SIZE,
    O_WORLD_SEED,
    O_NO_AUTO_SPAWN
  };
  static struct option opts[] = {{"config", required_argument, 0, O_CONFIG},
                                 {"data-dir", required_argument, 0, 'd'},
                                 {"static-dir", required_argument, 0, 'S'},
                                 {"ws-queue-kb", required_argument, 0, 'Q'},
                                 {"ws-stall-s", required_argument, 0, 'L'},
                                 {"bind", required_argument, 0, 'b'},
                                 {"port", required_argument, 0, 'p'},
                                 {"tick-ms", required_argument, 0, 't'},
                                 {"workers", required_argument, 0, 'w'},
                                 {"cpu-limit", required_argument, 0, 'c'},
                                 {"heap-mb", required_argument, 0, 'm'},
                                 {"wall-ms", required_argument, 0, 'W'},
                                 {"hard-ms", required_argument, 0, 'H'},
                                 {"max-ticks", required_argument, 0, 'x'},
                                 {"stats-every", required_argument, 0, 's'},
                                 {"registration", required_argument, 0, 'r'},
                                 {"token-ttl", required_argument, 0, 'T'},
                                 {"no-demo", no_argument, 0, O_NODEMO},
                                 {"quiet", no_argument, 0, O_QUIET},
                                 {"nosync", no_argument, 0, O_NOSYNC},
                                 {"admin-port", required_argument, 0, O_ADMIN_PORT},
                                 {"admin-bind", required_argument, 0, O_ADMIN_BIND},
                                 {"admin-remote", no_argument, 0, O_ADMIN_REMOTE},
                                 {"backup-dir", required_argument, 0, O_BACKUP_DIR},
                                 {"no-admin", no_argument, 0, O_NO_ADMIN},
                                 {"paused", no_argument, 0, O_PAUSED},
                                 {"world-size", required_argument, 0, O_WORLD_SIZE},
                                 {"world-seed", required_argument, 0, O_WORLD_SEED},
                                 {"no-auto-spawn", no_argument, 0, O_NO_AUTO_SPAWN},
                                 {"version", no_argument, 0, O_VERSION},
                                 {"help", no_argument, 0, 'h'},
                                 {0, 0, 0, 0}};
  /* Pass 1: --config (and --help/--version), so the file comes before the flags. */
  opterr = 0;
  optind = 1;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (ch == 'h') {
      usage(stdout);
      return 1;
    }
    if (ch == O_VERSION) {
      printf("isoworld %s (V8 %s)\n", ISOWORLD_VERSION, sbx_engine_version());
      return 1;
    }
    if (ch == O_CONFIG && load_file(c, optarg) != 0) return -1;
  }
  /* Pass 2: every other flag. */
  opterr = 1;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    int idx = -1;
    for (int i = 0; opts[i].name; i++)
      if (opts[i].val == ch) idx = i;
    if (ch == '?' || ch == ':' || idx < 0) {
      fprintf(stderr, "isoworld: see --help\n");
      return -1;
    }
    if (ch == O_CONFIG) continue;
    if (apply(c, opts[idx].name, optarg ? optarg : "", NULL) != 0) return -1;
  }
  if (optind < argc) {
    fprintf(stderr, "isoworld: unexpected argument '%s' (see --help)\n", argv[optind]);
    return -1;
  }
  if (c->admin_port < 0) c->admin_port = c->port == 0 ? 0 : c->port + 1;
  if (c->admin_port > 65535) {
    fprintf(stderr, "isoworld: --port 65535 leaves no port for the admin API: give --admin-port\n");
    return -1;
  }
  if (c->admin && c->admin_port != 0 && c->admin_port == c->port) {
    fprintf(stderr, "isoworld: --admin-port must differ from --port (%d)\n", c->port);
    return -1;
  }
  return 0;
}
