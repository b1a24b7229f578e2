/*
 * isoworld-admin — manage a running isoworld world from the command line.
 *
 * This file: the command table (with every command's help), argument parsing, and the
 * output conventions: aligned tables for people, one JSON document with --json for
 * scripts, one-line errors on stderr, colour only on a terminal (and never with
 * NO_COLOR), confirmation on a terminal for destructive commands and --yes otherwise,
 * and exit codes that mean something (admin.h).
 */
#include "admin.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VERSION "0.1.0"

/* ------------------------------------------------------------------ the commands */

typedef struct cmd_spec {
  const char *group; /* NULL: top level */
  const char *name;
  const char *args;    /* usage after the name */
  const char *summary; /* one line */
  const char *help;    /* the rest of --help */
  const char *flags;   /* the command's own options: "email= cpu= password-stdin" (= takes a value) */
  int min_pos, max_pos;
  adm_run_fn run;
} cmd_spec;

static const cmd_spec cmds[] = {
    {"users", "list", "", "list every user",
     "Columns: id, name, email, CPU limit (ms), status, bucket, the last tick\n"
     "the user's code ran, and when the account was made.\n",
     "", 0, 0, cmd_users_list},
    {"users", "show", "NAME", "one user: account, CPU, branches, tokens, Memory size",
     "Shows the account (never its password), its CPU account, its code branches, its\n"
     "long-lived tokens (ids, labels, expiry; the tokens themselves are never stored) and\n"
     "the size of its Memory.\n",
     "", 1, 1, cmd_users_show},
    {"users", "create", "NAME", "create a user",
     "Creates a player account with a 'default' branch holding an empty main module.\n"
     "Without a password the user cannot sign in: give it a token with issue-token.\n\n"
     "Options:\n"
     "  --email EMAIL        the user's email (sign-in works with it too)\n"
     "  --password PASS      the password (8 to 256 characters); visible in `ps`, so\n"
     "  --password-stdin     prefer reading it from the first line of standard input\n"
     "  --cpu MS             Game.cpu.limit (default: the server's --cpu-limit)\n\n"
     "Example:\n"
     "  echo 'a long password' | isoworld-admin users create alice --email a@example.org --password-stdin\n",
     "email= password= password-stdin cpu=", 1, 1, cmd_users_create},
    {"users", "ban", "NAME", "ban a user: their code stops, sign-in and tokens are refused",
     "Takes effect at once: the next tick does not run the user's code, and every request\n"
     "of the user to the player API is refused (the account, code and Memory are kept;\n"
     "unban restores everything). Asks for confirmation on a terminal; --yes otherwise.\n",
     "", 1, 1, cmd_users_ban},
    {"users", "unban", "NAME", "lift a ban", "", "", 1, 1, cmd_users_unban},
    {"users", "set-cpu", "NAME MS", "set a user's CPU limit (Game.cpu.limit, ms per tick)",
     "MS is 1 to 10000. The new limit holds from the user's next tick (the bucket is kept).\n", "", 2, 2,
     cmd_users_set_cpu},
    {"users", "reset-password", "NAME", "set a new password (generated unless given)",
     "Without --password/--password-stdin a random 24-character password is made and\n"
     "printed once. Asks for confirmation on a terminal; --yes otherwise.\n\n"
     "Options:\n"
     "  --password PASS      the new password (8 to 256 characters)\n"
     "  --password-stdin     read it from the first line of standard input\n",
     "password= password-stdin", 1, 1, cmd_users_reset_password},
    {"users", "issue-token", "NAME", "make a long-lived API token for a user (shown once)",
     "The token works where a session token does (X-Token), for uploaders and CI. Only a\n"
     "hash of it is stored: it is printed once, on standard output, alone on its line.\n\n"
     "Options:\n"
     "  --label TEXT         a name for it (shown by users show)\n"
     "  --days N             expire after N days (1 to 3650; default: never)\n\n"
     "Example:\n"
     "  TOKEN=$(isoworld-admin users issue-token alice --label ci --days 90)\n",
     "label= days=", 1, 1, cmd_users_issue_token},
    {"users", "revoke-token", "NAME [ID]", "revoke one long-lived token (by id) or --all",
     "ID is the 16-digit id users show lists. Asks for confirmation on a terminal;\n"
     "--yes otherwise.\n\nOptions:\n  --all                revoke every token of the user\n",
     "all", 1, 2, cmd_users_revoke_token},
    {"world", "status", "", "game time, tick rate and measured durations, players, rooms, paused",
     "The measured figures cover the last 100 ticks: how long a tick takes (run and\n"
     "commit) and how far apart ticks end. The state hash (BLAKE2b of everything the\n"
     "server persists: game time, users, code, Memory, segments, CPU, tokens, world) is\n"
     "computed from one snapshot; equal hashes mean equal worlds.\n\n"
     "Options:\n  --no-hash            skip the state hash (it reads the whole store)\n",
     "no-hash", 0, 0, cmd_world_status},
    {"world", "pause", "", "stop time after the tick in progress (kept across restarts)",
     "Admin actions and player API changes still work while time is paused.\n", "", 0, 0, cmd_world_pause},
    {"world", "resume", "", "start time again", "", "", 0, 0, cmd_world_resume},
    {"world", "step", "[N]", "while paused, run exactly N ticks (default 1), then pause again",
     "Answers once the N ticks are committed, with the new game time.\n", "", 0, 1, cmd_world_step},
    {"world", "tick-rate", "MS", "set the tick interval (0: as fast as possible)",
     "Until the server stops; its configuration (--tick-ms) says what a start uses.\n", "", 1, 1, cmd_world_tick_rate},
    {"world", "generate", "ROOMS", "replace the world with a new one of at least ROOMS rooms",
     "The new world is square: ceil(sqrt(ROOMS)) rooms a side, at most 64 (4096 rooms).\n"
     "Every room and object of the old world is lost. Players keep their accounts, code\n"
     "and Memory; every player who had a room is placed again in a free room of the new\n"
     "world (in id order, with a new Spawn1), and every global starts over. Players with\n"
     "no room left are listed (place them with player place-spawn). Asks for confirmation\n"
     "on a terminal; --yes otherwise.\n\n"
     "Options:\n  --seed N             the generator's seed (default: the current world's)\n\n"
     "Example:\n  isoworld-admin world generate 16 --seed 7 --yes    # 4x4 rooms\n",
     "seed=", 1, 1, cmd_world_generate},
    {"world", "reset", "", "put the world back to its generated state, players placed again",
     "A fresh start: a new world of the same size and (unless --seed) the same seed, so\n"
     "rooms and terrain are as generated, with no creeps or structures left; every player\n"
     "who had a room is placed again as world generate does. Asks for confirmation on a\n"
     "terminal; --yes otherwise.\n\n"
     "Options:\n  --seed N             a different seed\n",
     "seed=", 0, 0, cmd_world_reset},
    {"player", "stats", "NAME", "a player's CPU, bucket, last tick, Memory, segments, code", "", "", 1, 1,
     cmd_player_stats},
    {"player", "reset-global", "NAME", "give a player a fresh global (as after a code upload)",
     "From the player's next tick its isolate starts over (Memory is kept). For a player\n"
     "whose global is stuck in a bad state. Asks for confirmation on a terminal; --yes\n"
     "otherwise.\n",
     "", 1, 1, cmd_player_reset_global},
    {"player", "console", "NAME", "a player's console output, as committed",
     "Prints the console lines of the next tick the player runs and exits; with\n"
     "--follow, keeps printing until interrupted (Ctrl-C).\n\n"
     "Options:\n  --follow, -f         keep following\n",
     "follow", 1, 1, cmd_player_console},
    {"player", "respawn", "NAME", "remove a player's rooms and objects and start them again in a free room",
     "Every object of the player goes and its rooms are released; the player is then\n"
     "placed in a free room with a new Spawn1, and its global starts over (code and Memory\n"
     "are kept). Refused, with nothing changed, when no room is free. Asks for\n"
     "confirmation on a terminal; --yes otherwise.\n",
     "", 1, 1, cmd_player_respawn},
    {"player", "place-spawn", "NAME ROOM X Y", "place the first spawn of a player who has no room",
     "Claims ROOM for the player and puts its spawn at X,Y (1 to 48: not on the room's\n"
     "edge, not on a wall or another object). Refused for a player who owns a room\n"
     "already (respawn them instead). For servers started with --no-auto-spawn, or players\n"
     "left without a room by world generate.\n\n"
     "Options:\n  --name NAME          the spawn's name (default Spawn1)\n\n"
     "Example:\n  isoworld-admin player place-spawn alice W2N1 25 25 --name Home\n",
     "name=", 4, 4, cmd_player_place_spawn},
    {NULL, "backup", "FILE", "a consistent copy of the running world into FILE",
     "LMDB's consistent copy, taken while the server runs (ticks go on). The server\n"
     "writes FILE (a path on the server's machine; relative paths are made absolute\n"
     "here), reads it back to verify it, and reports its game time and state hash.\n"
     "A progress bar is shown on a terminal.\n\n"
     "A server may confine backups to a directory (its --backup-dir; with --admin-remote,\n"
     "<data-dir>/backups).\n\n"
     "Options:\n"
     "  --no-compact         copy the file as is (faster, bigger: free pages included)\n"
     "  --force              replace FILE if it is a backup (never any other file)\n\n"
     "Example:\n"
     "  isoworld-admin backup /var/backups/isoworld/$(date +%F).backup\n",
     "no-compact force", 1, 1, cmd_backup},
    {NULL, "restore", "FILE", "replace the world in --data-dir with a backup (server stopped)",
     "Refused while a server uses the data directory (stop it first). FILE is verified\n"
     "first; the current data.mdb is kept beside it as data.mdb.before-restore-<time>\n"
     "unless --discard-old. Asks for confirmation on a terminal; --yes otherwise.\n\n"
     "Options:\n  --discard-old        delete the current world instead of keeping it\n",
     "discard-old", 1, 1, cmd_restore},
    {NULL, "verify", "[PATH]", "check a data directory or a backup file (offline, read-only)",
     "Opens PATH read-only (default: --data-dir) and checks every record: the schema\n"
     "version, that every kind of record decodes, that indexes agree with the users and\n"
     "that nothing belongs to a user who does not exist; prints the counts and the state\n"
     "hash. Works while a server runs on the directory. Exit 1 when anything is wrong.\n",
     "", 0, 1, cmd_verify},
    {NULL, "broadcast", "TEXT", "send TEXT to every connected client (server-message)",
     "Every websocket connection gets [\"server-message\", TEXT], the channel Screeps clients\n"
     "show as a server notice. TEXT is at most 1023 bytes.\n",
     "", 1, 1, cmd_broadcast},
    {NULL, "log", "", "what admins did, newest first",
     "Every change made through the admin API is recorded with who, what and when, in\n"
     "the same transaction as the change.\n\nOptions:\n  --limit N            how many entries (default 20)\n",
     "limit=", 0, 0, cmd_log},
};
#define N_CMDS (sizeof cmds / sizeof cmds[0])

static const char *groups[] = {"users", "world", "player"};

/* Options every command takes. */
static const char *const global_value[] = {"data-dir", "url", "token", "token-file", "as", "timeout", "color", NULL};
static const char *const global_switch[] = {"json", "yes", "help", "no-color", "version", NULL};

static const char overview[] =
    "Usage: isoworld-admin [options] COMMAND [ARGS]\n"
    "Manage a running isoworld world through its admin API (loopback, token-protected).\n\n"
    "Commands:\n";

static const char global_help[] =
    "\nOptions (any command):\n"
    "  --data-dir DIR     the server's data directory (default ./data, or $ISOWORLD_DATA_DIR):\n"
    "                     the server's address is read from DIR/admin.json, its token from\n"
    "                     DIR/admin.token (readable only by the server's user)\n"
    "  --url URL          the admin API (http://127.0.0.1:21026), instead of DIR/admin.json\n"
    "  --token TOKEN      the admin token ($ISOWORLD_ADMIN_TOKEN), instead of DIR/admin.token\n"
    "  --token-file FILE  read the token from FILE\n"
    "  --as NAME          who you are in the admin log (default: $USER)\n"
    "  --json             print one JSON document (stable field names) instead of text\n"
    "  --yes, -y          do not ask before destructive commands (needed when not on a terminal)\n"
    "  --color WHEN       auto (default: only on a terminal, never with NO_COLOR), always, never\n"
    "  --timeout S        give up on the server after S seconds (default 30)\n"
    "  --help, -h         help (also: isoworld-admin help COMMAND, isoworld-admin COMMAND --help)\n"
    "  --version          the version\n\n"
    "Exit codes: 0 ok, 1 refused (by the server, or a check failed), 2 bad usage,\n"
    "3 server unreachable.\n";

static void print_overview(FILE *f) {
  fputs(overview, f);
  for (size_t i = 0; i < N_CMDS; i++) {
    char name[64];
    snprintf(name, sizeof name, "%s%s%s %s", cmds[i].group ? cmds[i].group : "", cmds[i].group ? " " : "", cmds[i].name,
             cmds[i].args);
    fprintf(f, "  %-34s %s\n", name, cmds[i].summary);
  }
  fputs(global_help, f);
}

static void print_group(FILE *f, const char *g) {
  fprintf(f, "Usage: isoworld-admin %s SUBCOMMAND [ARGS] [options]\n\nSubcommands:\n", g);
  for (size_t i = 0; i < N_CMDS; i++) {
    if (!cmds[i].group || strcmp(cmds[i].group, g)) continue;
    char name[64];
    snprintf(name, sizeof name, "%s %s", cmds[i].name, cmds[i].args);
    fprintf(f, "  %-28s %s\n", name, cmds[i].summary);
  }
  fprintf(f, "\nisoworld-admin %s SUBCOMMAND --help says more; isoworld-admin --help lists the options.\n", g);
}

static void print_cmd(FILE *f, const cmd_spec *c) {
  fprintf(f, "Usage: isoworld-admin %s%s%s%s%s [options]\n%c%s.\n", c->group ? c->group : "", c->group ? " " : "",
          c->name, c->args[0] ? " " : "", c->args, toupper((unsigned char)c->summary[0]), c->summary + 1);
  if (c->help[0]) fprintf(f, "\n%s", c->help);
  fprintf(f,
          "\nCommon options: --data-dir DIR, --url URL, --token TOKEN, --json, --yes, --color WHEN\n"
          "(isoworld-admin --help explains them). Exit codes: 0 ok, 1 refused, 2 bad usage,\n"
          "3 server unreachable.\n");
}

/* ------------------------------------------------------------------ output */

static bool want_color(const char *mode, int fd) {
  if (mode && !strcmp(mode, "always")) return true;
  if (mode && !strcmp(mode, "never")) return false;
  const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
  return isatty(fd) && !(nc && *nc) && !(term && !strcmp(term, "dumb"));
}

const char *adm_c(const adm *a, bool err, const char *style) {
  if (!(err ? a->color_err : a->color_out)) return "";
  if (!strcmp(style, "bold")) return "\033[1m";
  if (!strcmp(style, "dim")) return "\033[2m";
  if (!strcmp(style, "red")) return "\033[31m";
  if (!strcmp(style, "green")) return "\033[32m";
  if (!strcmp(style, "yellow")) return "\033[33m";
  if (!strcmp(style, "cyan")) return "\033[36m";
  return "\033[0m";
}

int adm_fail(adm *a, int code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "isoworld-admin: %s%s%s\n", adm_c(a, true, code == EXIT_USAGE ? "yellow" : "red"), msg,
          adm_c(a, true, "reset"));
  if (a->json) adm_print_json(json_pack("{s:i, s:s, s:i}", "ok", 0, "error", msg, "exit", code));
  return code;
}

void adm_print_json(json_t *j) {
  if (!j) return;
  char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
  if (s) {
    puts(s);
    free(s);
  }
  json_decref(j);
}

void adm_note(adm *a, const char *fmt, ...) {
  if (a->json) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

bool adm_confirm(adm *a, int *code, const char *fmt, ...) {
  *code = EXIT_OK;
  if (a->yes) return true;
  char q[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  if (!isatty(0) || !isatty(2)) {
    *code = adm_fail(a, EXIT_USAGE, "%s: this needs --yes when not run on a terminal", a->cmd_name);
    return false;
  }
  fprintf(stderr, "%s%s%s [y/N] ", adm_c(a, true, "bold"), q, adm_c(a, true, "reset"));
  fflush(stderr);
  char line[32];
  if (!fgets(line, sizeof line, stdin)) line[0] = '\0';
  char *p = line;
  while (isspace((unsigned char)*p)) p++;
  if (*p == 'y' || *p == 'Y') return true;
  *code = adm_fail(a, EXIT_REFUSED, "cancelled");
  return false;
}

/* Display width of UTF-8 text (code points; good enough for names and numbers). */
static int width(const char *s) {
  int w = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if ((*p & 0xc0) != 0x80) w++;
  return w;
}

void adm_table_init(adm_table *t, int cols, ...) {
  memset(t, 0, sizeof *t);
  t->cols = cols;
  va_list ap;
  va_start(ap, cols);
  t->cap = 16;
  t->cells = calloc((size_t)t->cap * (size_t)cols, sizeof *t->cells);
  for (int i = 0; i < cols; i++) {
    const char *h = va_arg(ap, const char *);
    if (t->cells) t->cells[i] = strdup(h ? h : "");
  }
  va_end(ap);
  t->rows = 1;
}

void adm_table_add(adm_table *t, ...) {
  if (!t->cells) return;
  if (t->rows == t->cap) {
    char **n = realloc(t->cells, (size_t)t->cap * 2 * (size_t)t->cols * sizeof *n);
    if (!n) return;
    t->cells = n;
    t->cap *= 2;
  }
  va_list ap;
  va_start(ap, t);
  for (int i = 0; i < t->cols; i++) {
    const char *v = va_arg(ap, const char *);
    t->cells[t->rows * t->cols + i] = strdup(v ? v : "");
  }
  va_end(ap);
  t->rows++;
}

void adm_table_print(const adm *a, adm_table *t) {
  if (!t->cells) return;
  int w[16] = {0};
  for (int r = 0; r < t->rows; r++)
    for (int c = 0; c < t->cols && c < 16; c++) {
      const char *s = t->cells[r * t->cols + c];
      int x = s ? width(s) : 0;
      if (x > w[c]) w[c] = x;
    }
  for (int r = 0; r < t->rows; r++) {
    if (r == 0) fputs(adm_c(a, false, "bold"), stdout);
    for (int c = 0; c < t->cols; c++) {
      const char *s = t->cells[r * t->cols + c];
      if (!s) s = "";
      int pad = w[c] - width(s);
      bool last = c == t->cols - 1;
      if (t->right[c] && r > 0) printf("%*s", pad, "");
      fputs(s, stdout);
      if (!last && !(t->right[c] && r > 0)) printf("%*s", pad, "");
      if (!last) fputs("  ", stdout);
    }
    if (r == 0) fputs(adm_c(a, false, "reset"), stdout);
    fputc('\n', stdout);
  }
}

void adm_table_release(adm_table *t) {
  if (t->cells)
    for (int i = 0; i < t->rows * t->cols; i++) free(t->cells[i]);
  free(t->cells);
  memset(t, 0, sizeof *t);
}

void adm_bytes(uint64_t n, char *out, size_t cap) {
  if (n < 1024)
    snprintf(out, cap, "%llu B", (unsigned long long)n);
  else if (n < 1024 * 1024)
    snprintf(out, cap, "%.1f KiB", (double)n / 1024.0);
  else if (n < 1024ull * 1024 * 1024)
    snprintf(out, cap, "%.1f MiB", (double)n / 1048576.0);
  else
    snprintf(out, cap, "%.2f GiB", (double)n / 1073741824.0);
}

void adm_time_ms(int64_t ms, char *out, size_t cap) {
  if (ms <= 0) {
    snprintf(out, cap, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%d %H:%M", &tm);
}

void adm_progress(adm *a, const char *label, uint64_t done, uint64_t total, bool final) {
  if (a->json || !isatty(2)) return;
  if (total < done) total = done;
  double f = total ? (double)done / (double)total : 0;
  if (!final && f > 0.99) f = 0.99;
  if (final) f = 1;
  int bar = 30, fill = (int)(f * bar + 0.5);
  char d[32], t[32];
  adm_bytes(done, d, sizeof d);
  adm_bytes(total, t, sizeof t);
  fprintf(stderr, "\r%s [%s", label, adm_c(a, true, "green"));
  for (int i = 0; i < bar; i++) fputc(i < fill ? '#' : '.', stderr);
  fprintf(stderr, "%s] %3d%%  %s / %s\033[K", adm_c(a, true, "reset"), (int)(f * 100 + 0.5), d, t);
  if (final) fputc('\n', stderr);
  fflush(stderr);
}

bool adm_int_arg(adm *a, const char *what, const char *s, long long lo, long long hi, long long *out, int *code) {
  char *end;
  errno = 0;
  long long v = s ? strtoll(s, &end, 10) : 0;
  if (!s || !*s || *end || errno || v < lo || v > hi) {
    *code = adm_fail(a, EXIT_USAGE, "%s: %s must be a whole number from %lld to %lld (got '%s')", a->cmd_name, what, lo,
                     hi, s ? s : "");
    return false;
  }
  *out = v;
  return true;
}

/* ------------------------------------------------------------------ arguments */

const char *adm_flag(const adm *a, const char *name) {
  for (int i = 0; i < a->n_flags; i++)
    if (!strcmp(a->flag_name[i], name)) return a->flag_value[i];
  return NULL;
}

bool adm_has(const adm *a, const char *name) {
  for (int i = 0; i < a->n_flags; i++)
    if (!strcmp(a->flag_name[i], name)) return true;
  return false;
}

static bool in_list(const char *const *list, const char *name) {
  for (size_t i = 0; list[i]; i++)
    if (!strcmp(list[i], name)) return true;
  return false;
}

/* Whether `name` is one of a command's flags; *value: it takes a value. */
static bool cmd_has_flag(const cmd_spec *c, const char *name, bool *value) {
  size_t n = strlen(name);
  for (const char *p = c->flags; *p;) {
    while (*p == ' ') p++;
    size_t l = strcspn(p, " =");
    if (l == n && !strncmp(p, name, n)) {
      if (value) *value = p[l] == '=';
      return true;
    }
    p += l;
    if (*p == '=') p++;
  }
  return false;
}

/* Whether any command knows `name`, and whether it takes a value there. */
static bool any_flag(const char *name, bool *value) {
  for (size_t i = 0; i < N_CMDS; i++)
    if (cmd_has_flag(&cmds[i], name, value)) return true;
  return false;
}

static const cmd_spec *find_cmd(const char *group, const char *name) {
  for (size_t i = 0; i < N_CMDS; i++) {
    if (!name || strcmp(cmds[i].name, name)) continue;
    if ((group == NULL) != (cmds[i].group == NULL)) continue;
    if (group && strcmp(group, cmds[i].group)) continue;
    return &cmds[i];
  }
  return NULL;
}

static bool is_group(const char *s) {
  for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
    if (!strcmp(groups[i], s)) return true;
  return false;
}

int main(int argc, char **argv) {
  static adm a;
  a.data_dir = getenv("ISOWORLD_DATA_DIR");
  if (!a.data_dir || !*a.data_dir) a.data_dir = "./data";
  a.timeout_s = 30;
  const char *color = NULL, *timeout = NULL;
  bool version = false, no_color = false, rest_positional = false;
  a.cmd_name = "isoworld-admin";
  a.color_err = want_color(NULL, 2);

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (rest_positional || arg[0] != '-' || !arg[1] || (arg[1] >= '0' && arg[1] <= '9')) {
      if (a.n_pos == ADM_MAX_POS) return adm_fail(&a, EXIT_USAGE, "too many arguments");
      a.pos[a.n_pos++] = arg;
      continue;
    }
    if (!strcmp(arg, "--")) {
      rest_positional = true;
      continue;
    }
    char name[64];
    const char *value = NULL;
    if (arg[1] != '-') { /* short options */
      if (!strcmp(arg, "-h"))
        snprintf(name, sizeof name, "help");
      else if (!strcmp(arg, "-y"))
        snprintf(name, sizeof name, "yes");
      else if (!strcmp(arg, "-f"))
        snprintf(name, sizeof name, "follow");
      else
        return adm_fail(&a, EXIT_USAGE, "unknown option '%s' (see --help)", arg);
    } else {
      const char *eq = strchr(arg + 2, '=');
      size_t n = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
      if (n == 0 || n >= sizeof name) return adm_fail(&a, EXIT_USAGE, "unknown option '%s' (see --help)", arg);
      memcpy(name, arg + 2, n);
      name[n] = '\0';
      if (eq) value = eq + 1;
    }
    bool takes = false;
    bool global_v = in_list(global_value, name), global_s = in_list(global_switch, name);
    bool known = global_v || global_s || any_flag(name, &takes);
    if (!known) return adm_fail(&a, EXIT_USAGE, "unknown option '--%s' (see --help)", name);
    if (global_v) takes = true;
    if (takes && !value) {
      if (i + 1 >= argc) return adm_fail(&a, EXIT_USAGE, "option --%s needs a value", name);
      value = argv[++i];
    }
    if (!takes && value) return adm_fail(&a, EXIT_USAGE, "option --%s takes no value", name);
    if (!strcmp(name, "data-dir"))
      a.data_dir = value;
    else if (!strcmp(name, "url"))
      a.url = value;
    else if (!strcmp(name, "token"))
      a.token = value;
    else if (!strcmp(name, "token-file"))
      a.token_file = value;
    else if (!strcmp(name, "as"))
      a.as = value;
    else if (!strcmp(name, "timeout"))
      timeout = value;
    else if (!strcmp(name, "color"))
      color = value;
    else if (!strcmp(name, "json"))
      a.json = true;
    else if (!strcmp(name, "yes"))
      a.yes = true;
    else if (!strcmp(name, "help"))
      a.help = true;
    else if (!strcmp(name, "no-color"))
      no_color = true;
    else if (!strcmp(name, "version"))
      version = true;
    else {
      if (a.n_flags == ADM_MAX_FLAGS) return adm_fail(&a, EXIT_USAGE, "too many options");
      a.flag_name[a.n_flags] = strdup(name);
      a.flag_value[a.n_flags++] = value;
    }
  }
  if (color && strcmp(color, "auto") && strcmp(color, "always") && strcmp(color, "never"))
    return adm_fail(&a, EXIT_USAGE, "--color must be auto, always or never");
  if (no_color) color = "never";
  a.color_out = want_color(color, 1);
  a.color_err = want_color(color, 2);
  if (timeout) {
    char *end;
    long t = strtol(timeout, &end, 10);
    if (!*timeout || *end || t < 1 || t > 86400)
      return adm_fail(&a, EXIT_USAGE, "--timeout must be 1 to 86400 seconds");
    a.timeout_s = (int)t;
  }
  if (version) {
    if (a.json)
      adm_print_json(json_pack("{s:s}", "version", VERSION));
    else
      printf("isoworld-admin %s\n", VERSION);
    return EXIT_OK;
  }

  /* `help X Y` is `X Y --help` */
  int first = 0;
  if (a.n_pos && !strcmp(a.pos[0], "help")) {
    a.help = true;
    first = 1;
  }
  if (a.n_pos <= first) {
    if (a.help) {
      print_overview(stdout);
      return EXIT_OK;
    }
    print_overview(stderr);
    return EXIT_USAGE;
  }
  const char *group = NULL, *name = a.pos[first];
  int used = 1;
  if (is_group(name)) {
    group = name;
    if (a.n_pos <= first + 1) {
      if (a.help) {
        print_group(stdout, group);
        return EXIT_OK;
      }
      print_group(stderr, group);
      return EXIT_USAGE;
    }
    name = a.pos[first + 1];
    used = 2;
  }
  const cmd_spec *c = find_cmd(group, name);
  if (!c) {
    if (group)
      return adm_fail(&a, EXIT_USAGE, "unknown command '%s %s' (see isoworld-admin %s --help)", group, name, group);
    return adm_fail(&a, EXIT_USAGE, "unknown command '%s' (see isoworld-admin --help)", name);
  }
  static char cmd_name[64];
  snprintf(cmd_name, sizeof cmd_name, "%s%s%s", group ? group : "", group ? " " : "", c->name);
  a.cmd_name = cmd_name;
  if (a.help) {
    print_cmd(stdout, c);
    return EXIT_OK;
  }
  for (int i = 0; i < a.n_flags; i++)
    if (!cmd_has_flag(c, a.flag_name[i], NULL))
      return adm_fail(&a, EXIT_USAGE, "%s does not take --%s (see isoworld-admin %s --help)", cmd_name, a.flag_name[i],
                      cmd_name);
  /* Positional arguments of the command itself. */
  memmove(a.pos, a.pos + first + used, (size_t)(a.n_pos - first - used) * sizeof a.pos[0]);
  a.n_pos -= first + used;
  if (a.n_pos < c->min_pos || a.n_pos > c->max_pos)
    return adm_fail(&a, EXIT_USAGE, "usage: isoworld-admin %s %s (see --help)", cmd_name, c->args);
  return c->run(&a);
}
